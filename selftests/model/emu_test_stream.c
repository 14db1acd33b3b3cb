// SPDX-License-Identifier: GPL-2.0-only
/* Randomized I/O streams against a reference copy of the namespace. */
#include <string.h>
#include "emu_test_stream.h"

static void st_bad(struct stream *s, const char *what, u16 qid, u16 cid,
		   u32 v)
{
	if (!s->bad++)
		snprintf(s->why, sizeof(s->why), "%s (qid %u cid %u: %u)",
			 what, qid, cid, v);
}

static void st_done(struct drv *d, u16 qid, struct drv_cmd *c)
{
	struct stream *s = d->priv;
	u32 i;

	if (!qid)
		return;
	s->completed++;
	if (c->status)
		st_bad(s, "unexpected status", qid, emu_get_le16(c->sqe + 2),
		       c->status);
	if (c->opc == 0x02 && !c->status) {
		if (memcmp(th_ptr(d->th, c->data_iova),
			   s->ref + (c->slba << 12), (u64)c->nlb << 12))
			st_bad(s, "read data differs from the reference", qid,
			       emu_get_le16(c->sqe + 2), (u32)c->slba);
		else
			s->verified++;
	}
	for (i = 0; i < c->nlb; i++)
		s->busy[c->slba + i]--;
}

void stream_init(struct stream *s, struct drv *d)
{
	int q, k;

	memset(s, 0, sizeof(*s));
	s->d = d;
	s->ref = calloc(1, (u64)TH_NS_BLOCKS << 12);
	memcpy(s->ref, d->th->disk, (u64)TH_NS_BLOCKS << 12);
	for (q = 1; q <= d->nr_io; q++)
		for (k = 0; k < ST_SLOTS; k++)
			s->buf[q][k] = th_alloc(d->th,
						(ST_MAXBLK + 1) * 4096ULL,
						4096);
	d->on_done = st_done;
	d->priv = s;
	d->cid_wrap = ST_SLOTS;
	s->sgl_pct = 30;
}

void stream_fini(struct stream *s)
{
	free(s->ref);
}

static int st_submit(struct stream *s)
{
	struct drv *d = s->d;
	struct th *th = d->th;
	u16 qid = (u16)(1 + th_rand(th) % (unsigned int)d->nr_io);
	u32 r = th_rand(th) % 100, nlb, i, off, len;
	u8 opc, sqe[64];
	u64 slba = 0, iova;
	int tries, cid;
	struct drv_cmd *c;

	opc = r < 40 ? 0x02 : r < 80 ? 0x01 : r < 86 ? 0x00 :
	      r < 93 ? 0x08 : 0x09;
	nlb = 1 + th_rand(th) % ST_MAXBLK;
	for (tries = 0; tries < 8; tries++) {
		slba = th_rand(th) % (TH_NS_BLOCKS - nlb);
		for (i = 0; i < nlb && !s->busy[slba + i]; i++)
			;
		if (i == nlb)
			break;
	}
	if (tries == 8)
		return 0;
	if (opc == 0x00)
		nlb = 0;
	/* The slot is the CID: d->cid_wrap == ST_SLOTS. */
	cid = d->q[qid].next_cid;
	if (d->q[qid].cmd[cid].busy)
		return 0;
	off = (th_rand(th) % 1024) * 4;
	iova = s->buf[qid][cid] + off;
	len = nlb << 12;
	drv_sqe(sqe, opc, 1);
	drv_set_dw(sqe, 10, (u32)slba);
	drv_set_dw(sqe, 11, (u32)(slba >> 32));
	if (nlb)
		drv_set_dw(sqe, 12, nlb - 1);
	if (opc == 0x01)
		for (i = 0; i < len; i++)
			((u8 *)th_ptr(th, iova))[i] = (u8)th_rand(th);
	if (opc == 0x09) {
		u8 *rg = th_ptr(th, iova);

		memset(rg, 0, 16);
		emu_put_le32(rg + 4, nlb);
		emu_put_le64(rg + 8, slba);
		drv_set_dw(sqe, 10, 0);
		drv_set_dw(sqe, 11, 4);
		drv_set_dw(sqe, 12, 0);
		len = 16;
	}
	if (opc == 0x01 || opc == 0x02 || opc == 0x09) {
		if (opc != 0x09 && (int)(th_rand(th) % 100) < s->sgl_pct)
			drv_map_sgl(d, sqe, iova, len, 1 + th_rand(th) % 3);
		else
			drv_map_prp(d, sqe, iova, len);
	}
	if (drv_submit_cid(d, qid, sqe, (u16)cid) < 0)
		return 0;
	d->q[qid].next_cid = (u16)((cid + 1) % ST_SLOTS);
	c = &d->q[qid].cmd[cid];
	c->data_iova = iova;
	c->slba = slba;
	c->nlb = nlb;
	for (i = 0; i < nlb; i++)
		s->busy[slba + i]++;
	/* Nothing overlaps in flight, so the reference can move now. */
	if (opc == 0x01)
		memcpy(s->ref + (slba << 12), th_ptr(th, iova), len);
	if (opc == 0x08 || opc == 0x09)
		memset(s->ref + (slba << 12), 0, (u64)nlb << 12);
	s->issued++;
	return 1;
}

void stream_step(struct stream *s, int n)
{
	struct drv *d = s->d;
	int i;

	for (i = 0; i < n; i++)
		st_submit(s);
	emu_nvme_poll(d->th->ctrl, 1 + (int)(th_rand(d->th) % 128));
	th_run_backend(d->th, (int)(th_rand(d->th) % 48));
	for (i = 0; i <= d->nr_io; i++)
		drv_reap(d, (u16)i);
}

int stream_finish(struct stream *s)
{
	if (drv_drain(s->d, 100000)) {
		st_bad(s, "commands never completed", 0, 0, 0);
		return -1;
	}
	if (s->completed != s->issued)
		st_bad(s, "completions differ from submissions", 0, 0,
		       (u32)(s->issued - s->completed));
	if (memcmp(s->ref, s->d->th->disk, (u64)TH_NS_BLOCKS << 12))
		st_bad(s, "namespace differs from the reference", 0, 0, 0);
	return s->bad || s->d->errors ? -1 : 0;
}

/*
 * What the fresh controller imported, it must export again byte for byte:
 * a field that import drops or mangles (arbitration, a queue's priority, a
 * CQ's interrupt enable) shows here even when the stream never exercises
 * it. Exporting has no side effect the stream could notice.
 */
static int img_round_trip(struct stream *s, const u8 *img, int len)
{
	static u8 again[65536];
	int n, i;

	n = emu_img_export(s->d->th->ctrl, again, sizeof(again), 0);
	if (n != len) {
		snprintf(s->why, sizeof(s->why),
			 "re-export after import: %d bytes, not %d", n, len);
		s->bad++;
		return -EIO;
	}
	for (i = 0; i < len && again[i] == img[i]; i++)
		;
	if (i < len) {
		snprintf(s->why, sizeof(s->why),
			 "re-export after import differs at byte %d of %d: 0x%02x, not 0x%02x",
			 i, len, again[i], img[i]);
		s->bad++;
		return -EIO;
	}
	return 0;
}

int stream_migrate(struct stream *s, int *img_len)
{
	static u8 img[65536];
	struct th *th = s->d->th;
	char err[160];
	int len, ret;

	/* The host's quiesce: stop polling, let the backend finish. */
	while (th->npend)
		th_run_backend(th, th->npend);
	len = emu_img_export(th->ctrl, img, sizeof(img), 0);
	if (len < 0) {
		st_bad(s, "export failed", 0, 0, (u32)-len);
		return len;
	}
	if (img_len)
		*img_len = len;
	th_free_ctrl(th);
	th_new_ctrl(th);
	ret = emu_img_import(th->ctrl, img, (size_t)len, err, sizeof(err));
	if (ret) {
		snprintf(s->why, sizeof(s->why), "import: %s", err);
		s->bad++;
		return ret;
	}
	return img_round_trip(s, img, len);
}
