// SPDX-License-Identifier: GPL-2.0-only
/* Userspace host and Linux-like guest driver for the emuhba model tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "emu_test_lib.h"

/*
 * Every random workload is seeded from one base per test process: the pid,
 * so that runs differ, or EMUHBA_SEED to repeat a failing one. The base is
 * printed where the test's own log is, for the failure report to carry it.
 */
unsigned int th_seed(unsigned int salt)
{
	const char *env = getenv("EMUHBA_SEED");
	unsigned int base = (unsigned int)getpid();
	char *end;

	if (env && *env) {
		base = (unsigned int)strtoul(env, &end, 0);
		if (*end) {
			fprintf(stderr, "# EMUHBA_SEED=%s is not a number\n", env);
			abort();
		}
	}
	fprintf(stderr, "# seed: EMUHBA_SEED=%u repeats this run\n", base);
	return salt + base;
}

unsigned int th_rand(struct th *th)
{
	th->seed = th->seed * 1103515245u + 12345u;
	return (th->seed >> 8) & 0xffffff;
}

static int th_dma_read(void *h, u64 iova, void *buf, u32 len)
{
	struct th *th = h;

	if (iova < TH_MEM_BASE || iova - TH_MEM_BASE > TH_MEM_SIZE ||
	    len > TH_MEM_SIZE - (iova - TH_MEM_BASE)) {
		th->dma_errors++;
		return -EFAULT;
	}
	memcpy(buf, th->mem + (iova - TH_MEM_BASE), len);
	return 0;
}

static int th_dma_write(void *h, u64 iova, const void *buf, u32 len)
{
	struct th *th = h;

	if (iova < TH_MEM_BASE || iova - TH_MEM_BASE > TH_MEM_SIZE ||
	    len > TH_MEM_SIZE - (iova - TH_MEM_BASE)) {
		th->dma_errors++;
		return -EFAULT;
	}
	if (iova < th->watch_hi && iova + len > th->watch_lo)
		th->watch_writes++;
	memcpy(th->mem + (iova - TH_MEM_BASE), buf, len);
	return 0;
}

static void *th_buf_alloc(void *h, u32 len)
{
	struct th *th = h;
	void *p;

	if (th->nobuf_next) {
		th->nobuf_next--;
		return NULL;
	}
	p = malloc(len ? len : 1);

	if (p)
		th->bufs++;
	return p;
}

static void th_buf_free(void *h, void *buf, u32 len)
{
	struct th *th = h;

	(void)len;
	th->bufs--;
	free(buf);
}

static int th_do(struct th *th, struct emu_blk_req *r)
{
	u64 off = r->slba << r->lba_shift, n = r->len;

	if (th->fail_next) {
		int e = th->fail_next;

		th->fail_next = 0;
		return e;
	}
	/* The model says the range in bytes; a mismatch is a model bug. */
	if (r->op != EMU_BLK_FLUSH && n != (u64)r->nlb << r->lba_shift)
		return -EINVAL;
	if (r->op != EMU_BLK_FLUSH &&
	    (r->lba_shift != th->lba_shift || off > th->disk_bytes ||
	     n > th->disk_bytes - off))
		return -EIO;
	switch (r->op) {
	case EMU_BLK_READ:
		memcpy(r->buf, th->disk + off, n);
		break;
	case EMU_BLK_WRITE:
		memcpy(th->disk + off, r->buf, n);
		break;
	case EMU_BLK_WRITE_ZEROES:
	case EMU_BLK_DISCARD:
		memset(th->disk + off, 0, n);
		break;
	case EMU_BLK_FLUSH:
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

static int th_blk_submit(void *h, struct emu_blk_req *r)
{
	struct th *th = h;

	th->submits++;
	if (th->eagain_next) {
		th->eagain_next--;
		return -EAGAIN;
	}
	if (th->eagain_pct && (int)(th_rand(th) % 100) < th->eagain_pct)
		return -EAGAIN;
	if (th->sync && th->sync_more) {
		emu_nvme_blk_complete_more(th->ctrl, r, th_do(th, r));
		return 0;
	}
	if (th->sync) {
		emu_nvme_blk_complete(th->ctrl, r, th_do(th, r));
		return 0;
	}
	if (th->npend >= TH_MAX_PEND)
		return -EAGAIN;
	th->pend[th->npend++] = r;
	return 0;
}

int th_run_backend(struct th *th, int n)
{
	int done = 0;

	while (th->npend && done < n) {
		int i = (int)(th_rand(th) % (unsigned int)th->npend);
		struct emu_blk_req *r = th->pend[i];

		th->pend[i] = th->pend[--th->npend];
		emu_nvme_blk_complete(th->ctrl, r, th_do(th, r));
		done++;
	}
	return done;
}

int th_find_pend(const struct th *th, u64 slba)
{
	int i;

	for (i = 0; i < th->npend; i++)
		if (th->pend[i]->slba == slba)
			return i;
	return -1;
}

int th_complete_at(struct th *th, int i, int more)
{
	struct emu_blk_req *r;
	int st;

	if (i < 0 || i >= th->npend)
		return -1;
	r = th->pend[i];
	memmove(&th->pend[i], &th->pend[i + 1],
		sizeof(th->pend[0]) * (size_t)(th->npend - i - 1));
	th->npend--;
	st = th_do(th, r);
	if (more)
		emu_nvme_blk_complete_more(th->ctrl, r, st);
	else
		emu_nvme_blk_complete(th->ctrl, r, st);
	return 0;
}

u64 th_irq_total(const struct th *th)
{
	u64 n = 0;
	int v;

	for (v = 0; v < EMU_NVME_MAX_VEC; v++)
		n += th->irqs[v];
	return n;
}

static void th_irq(void *h, u16 v)
{
	struct th *th = h;

	if (v < EMU_NVME_MAX_VEC)
		th->irqs[v]++;
}

static u64 th_now(void *h)
{
	struct th *th = h;

	if (th->clock_frozen)
		return th->now;
	return th->now += 1000;
}

const struct emu_host_ops th_ops = {
	.dma_read = th_dma_read,
	.dma_write = th_dma_write,
	.buf_alloc = th_buf_alloc,
	.buf_free = th_buf_free,
	.blk_submit = th_blk_submit,
	.irq_raise = th_irq,
	.now_ns = th_now,
};

void th_init(struct th *th, unsigned int seed)
{
	memset(th, 0, sizeof(*th));
	th->seed = seed;
	th->mem = calloc(1, TH_MEM_SIZE);
	th->lba_shift = 12;
	th->disk_bytes = (u64)TH_NS_BLOCKS << 12;
	th->disk = calloc(1, th->disk_bytes);
	th->brk = 0x10000;
}

struct emu_nvme_ctrl *th_new_ctrl(struct th *th)
{
	th->ctrl = calloc(1, emu_nvme_ctrl_size());
	emu_nvme_init(th->ctrl, &th_ops, th);
	return th->ctrl;
}

void th_free_ctrl(struct th *th)
{
	/* Poison first: a later use by the model would show. */
	memset(th->ctrl, 0xa5, emu_nvme_ctrl_size());
	free(th->ctrl);
	th->ctrl = NULL;
}

void th_fini(struct th *th)
{
	while (th->npend)
		th_run_backend(th, th->npend);
	if (th->ctrl)
		th_free_ctrl(th);
	free(th->mem);
	free(th->disk);
}

u64 th_alloc(struct th *th, u64 size, u64 align)
{
	u64 at = (th->brk + align - 1) & ~(align - 1);

	if (at + size > TH_MEM_SIZE) {
		fprintf(stderr, "test guest memory exhausted\n");
		abort();
	}
	th->brk = at + size;
	memset(th->mem + at, 0, size);
	return TH_MEM_BASE + at;
}

void *th_ptr(struct th *th, u64 iova)
{
	return th->mem + (iova - TH_MEM_BASE);
}

static void th_str(u8 *p, const char *s, int n)
{
	int i, l = (int)strlen(s);

	for (i = 0; i < n; i++)
		p[i] = i < l ? (u8)s[i] : ' ';
}

void th_idctrl_page(u8 *p)
{
	memset(p, 0, 4096);
	emu_put_le16(p, 0x1b36);		/* VID */
	emu_put_le16(p + 2, 0x1af4);		/* SSVID */
	th_str(p + 4, "pf0", 20);		/* SN */
	th_str(p + 24, "QEMU NVMe Ctrl", 40);	/* MN */
	th_str(p + 64, "10.0.0", 8);		/* FR */
	p[72] = 0;				/* RAB */
	p[77] = 7;				/* MDTS */
	emu_put_le16(p + 78, 1);		/* CNTLID */
	emu_put_le32(p + 80, 0x10400);		/* VER */
	emu_put_le32(p + 92, 0x100);		/* OAES: ns attribute */
	p[111] = 1;				/* CNTRLTYPE I/O */
	emu_put_le16(p + 256, 0x1aa);		/* OACS incl. dbbuf */
	p[258] = 3;				/* ACL */
	p[259] = 3;				/* AERL */
	p[260] = 3;				/* FRMW */
	p[261] = 0x7;				/* LPA */
	p[262] = 3;				/* ELPE */
	p[512] = 0x66;				/* SQES */
	p[513] = 0x44;				/* CQES */
	emu_put_le32(p + 516, 1);		/* NN */
	emu_put_le16(p + 520, 0x4d);		/* ONCS */
	p[525] = 0x7;				/* VWC */
	emu_put_le32(p + 536, 0x80001);		/* SGLS */
	memcpy(p + 768, "nqn.2026-11.test:subsys0", 24);
	emu_put_le16(p + 2048, 0x9c4);		/* PSD0 MP 25 W */
}

void th_idns_page(u8 *p, u32 lba_shift)
{
	u64 blocks = ((u64)TH_NS_BLOCKS << 12) >> lba_shift;
	int i;

	memset(p, 0, 4096);
	emu_put_le64(p, blocks);
	emu_put_le64(p + 8, blocks);
	emu_put_le64(p + 16, blocks);
	p[25] = 0;				/* NLBAF */
	p[26] = 0;				/* FLBAS */
	p[33] = 0x1;				/* DLFEAT: reads zeroes */
	for (i = 0; i < 16; i++)
		p[104 + i] = (u8)(0x10 + i);	/* NGUID */
	for (i = 0; i < 8; i++)
		p[120 + i] = (u8)(0xe0 + i);	/* EUI64 */
	p[128 + 2] = (u8)lba_shift;		/* LBAF0 */
}

void th_load_identity(struct th *th, u32 lba_shift, u16 mqes, u16 nq)
{
	u8 page[4096];
	/* MQES, CQR, TO 7.5 s, NSSRS, CSS NVM+CSI, MPSMAX 64 KiB */
	u64 cap = (u64)(mqes - 1) | (1ULL << 16) | (15ULL << 24) |
		  (1ULL << 36) | (1ULL << 37) | (1ULL << 43) | (4ULL << 52);

	th->lba_shift = lba_shift;
	emu_nvme_set_hw(th->ctrl, cap, 0x10400, 17, nq, nq);
	th_idctrl_page(page);
	emu_nvme_load_identify(th->ctrl, 1, 0, 0, 1, page);
	th_idns_page(page, lba_shift);
	emu_nvme_load_identify(th->ctrl, 0, 0, 1, 1, page);
}

/* Driver -------------------------------------------------------------- */

u64 drv_reg(struct drv *d, u32 off, u32 size)
{
	return emu_nvme_reg_read(d->th->ctrl, off, size);
}

void drv_wreg(struct drv *d, u32 off, u64 val, u32 size)
{
	if (d->on_wreg)
		d->on_wreg(d, off, val, size);
	emu_nvme_reg_write(d->th->ctrl, off, val, size);
}

int drv_wait_csts(struct drv *d, u32 mask, u32 val)
{
	int i;

	for (i = 0; i < 1000; i++) {
		if (((u32)drv_reg(d, EMU_REG_CSTS, 4) & mask) == val)
			return 0;
		emu_nvme_poll(d->th->ctrl, 64);
		th_run_backend(d->th, 64);
	}
	return -1;
}

void drv_sqe(u8 *sqe, u8 opc, u32 nsid)
{
	memset(sqe, 0, 64);
	sqe[0] = opc;
	emu_put_le32(sqe + 4, nsid);
}

void drv_set_dw(u8 *sqe, int n, u32 v)
{
	emu_put_le32(sqe + 4 * n, v);
}

void drv_set_prp(u8 *sqe, u64 prp1, u64 prp2)
{
	emu_put_le64(sqe + 24, prp1);
	emu_put_le64(sqe + 32, prp2);
}

void drv_map_prp(struct drv *d, u8 *sqe, u64 iova, u32 len)
{
	u64 first = 4096 - (iova & 4095), p;
	u32 n, i, slot = 0;
	u64 list, page, *l;

	if (len <= first) {
		drv_set_prp(sqe, iova, 0);
		return;
	}
	if (len <= first + 4096) {
		drv_set_prp(sqe, iova, (iova + first));
		return;
	}
	n = (u32)((len - first + 4095) / 4096);
	/*
	 * The last slot of a list page chains to the next page only when
	 * more than one entry is left (NVMe 2.0 §4.1.1): a page holds 512
	 * entries when they are the last, 511 and the chain otherwise.
	 */
	list = th_alloc(d->th, ((n / 511) + 1) * 4096, 4096);
	page = list;
	l = th_ptr(d->th, page);
	p = iova + first;
	for (i = 0; i < n; i++) {
		if (slot == 511 && n - i > 1) {
			emu_put_le64(&l[511], page + 4096);
			page += 4096;
			l = th_ptr(d->th, page);
			slot = 0;
		}
		emu_put_le64(&l[slot++], p);
		p += 4096;
	}
	drv_set_prp(sqe, iova, list);
}

void drv_map_sgl(struct drv *d, u8 *sqe, u64 iova, u32 len, int nseg)
{
	u64 seg = th_alloc(d->th, 16 * (u64)(nseg + 1), 16);
	u8 *s = th_ptr(d->th, seg);
	u32 per = len / (u32)nseg, off = 0;
	int i;

	sqe[1] = (u8)((sqe[1] & 0x3f) | 0x40);	/* PSDT: SGL */
	for (i = 0; i < nseg; i++) {
		u32 l = i == nseg - 1 ? len - off : per;

		emu_put_le64(s + 16 * i, iova + off);
		emu_put_le32(s + 16 * i + 8, l);
		s[16 * i + 15] = 0;		/* data block */
		off += l;
	}
	emu_put_le64(sqe + 24, seg);
	emu_put_le32(sqe + 32, 16 * (u32)nseg);
	sqe[39] = 0x30;				/* last segment */
}

static int drv_need_event(u16 event_idx, u16 new_idx, u16 old)
{
	return (u16)(new_idx - event_idx - 1) < (u16)(new_idx - old);
}

static void drv_ring(struct drv *d, u16 qid, int cq, u16 val)
{
	u32 idx = 2 * qid + (cq ? 1 : 0);
	u32 stride = d->stride ? d->stride : 4;

	if (d->dbbuf && qid) {
		u8 *db = th_ptr(d->th, d->dbs + stride * idx);
		u8 *ei = th_ptr(d->th, d->eis + stride * idx);
		u16 old = (u16)emu_get_le32(db);

		emu_put_le32(db, val);
		if (!drv_need_event((u16)emu_get_le32(ei), val, old))
			return;
	}
	d->mmio_doorbells++;
	d->mmio_sq_doorbells += !cq && qid;
	emu_nvme_doorbell_write(d->th->ctrl, 0x1000 + stride * idx, val);
}

int drv_submit_cid(struct drv *d, u16 qid, u8 *sqe, u16 cid)
{
	struct drv_q *q = &d->q[qid];
	struct drv_cmd *c = &q->cmd[cid];

	if ((u16)((q->sq_tail + 1) % q->size) == q->sq_head || c->busy)
		return -1;
	emu_put_le16(sqe + 2, cid);
	memcpy(th_ptr(d->th, q->sq + 64ULL * q->sq_tail), sqe, 64);
	memcpy(c->sqe, sqe, 64);
	if (d->on_submit)
		d->on_submit(d, qid, sqe);
	c->busy = 1;
	c->done = 0;
	c->opc = sqe[0];
	c->slot = q->sq_tail;
	q->outstanding++;
	q->sq_tail = (u16)((q->sq_tail + 1) % q->size);
	drv_ring(d, qid, 0, q->sq_tail);
	return cid;
}

int drv_submit(struct drv *d, u16 qid, u8 *sqe)
{
	struct drv_q *q = &d->q[qid];
	int i;

	for (i = 0; i < DRV_MAXCID; i++) {
		u16 cid = q->next_cid;

		q->next_cid = (u16)((q->next_cid + 1) %
				    (d->cid_wrap ? d->cid_wrap : 512));
		if (!q->cmd[cid].busy && cid != d->aer_cid)
			return drv_submit_cid(d, qid, sqe, cid);
	}
	return -1;
}

static void drv_err(struct drv *d, const char *what, u16 qid, u32 v)
{
	d->errors++;
	if (d->errors == 1)
		snprintf(d->why, sizeof(d->why), "%s (qid %u, value %u)",
			 what, qid, v);
}

int drv_reap(struct drv *d, u16 qid)
{
	struct drv_q *q = &d->q[qid];
	int n = 0;

	for (;;) {
		u8 *cqe = th_ptr(d->th, q->cq + 16ULL * q->cq_head);
		u16 sp = emu_get_le16(cqe + 14), cid = emu_get_le16(cqe + 12);
		u16 sqid = emu_get_le16(cqe + 10), sqhd = emu_get_le16(cqe + 8);
		u16 dist_hd, dist_tail;
		struct drv_cmd *c;

		if ((sp & 1) != q->phase)
			break;
		if (sqid != qid)
			drv_err(d, "CQE SQID", qid, sqid);
		/* DW1 is reserved for every command the model implements. */
		if (emu_get_le32(cqe + 4))
			drv_err(d, "CQE DW1 not zero", qid, emu_get_le32(cqe + 4));
		dist_hd = (u16)((sqhd + q->size - q->sq_head) % q->size);
		dist_tail = (u16)((q->sq_tail + q->size - q->sq_head) % q->size);
		if (sqhd >= q->size || dist_hd > dist_tail)
			drv_err(d, "CQE SQHD out of window", qid, sqhd);
		else
			q->sq_head = sqhd;
		if (cid >= DRV_MAXCID || !q->cmd[cid].busy) {
			drv_err(d, "CQE for a CID not outstanding", qid, cid);
		} else {
			c = &q->cmd[cid];
			/*
			 * The controller fetched the command before completing
			 * it: SQHD is past its entry, not in [slot, tail).
			 */
			if ((u16)((c->slot + q->size - sqhd) % q->size) <
			    (u16)((q->sq_tail + q->size - sqhd) % q->size))
				drv_err(d, "CQE SQHD before its command's entry",
					qid, sqhd);
			c->sqhd = sqhd;
			c->busy = 0;
			c->done = 1;
			c->status = sp >> 1;
			c->dw0 = emu_get_le32(cqe);
			q->last_sqhd = sqhd;
			q->outstanding--;
			q->completions++;
			if (qid == 0 && cid == d->aer_cid) {
				d->aer_outstanding = 0;
				d->aer_done++;
				d->aer_dw0 = c->dw0;
			}
			if (d->on_done)
				d->on_done(d, qid, c);
		}
		q->cq_head = (u16)((q->cq_head + 1) % q->size);
		if (!q->cq_head)
			q->phase ^= 1;
		n++;
	}
	if (n)
		drv_ring(d, qid, 1, q->cq_head);
	return n;
}

int drv_admin(struct drv *d, u8 *sqe, u32 *dw0)
{
	int cid = drv_submit(d, 0, sqe), i;

	if (cid < 0)
		return -1;
	for (i = 0; i < 1000; i++) {
		emu_nvme_poll(d->th->ctrl, 64);
		th_run_backend(d->th, 64);
		drv_reap(d, 0);
		if (d->q[0].cmd[cid].done)
			break;
	}
	if (!d->q[0].cmd[cid].done)
		return -1;
	if (dw0)
		*dw0 = d->q[0].cmd[cid].dw0;
	return d->q[0].cmd[cid].status;
}

int drv_set_feature(struct drv *d, u8 fid, u32 val)
{
	u8 sqe[64];

	drv_sqe(sqe, 0x09, 0);
	drv_set_dw(sqe, 10, fid);
	drv_set_dw(sqe, 11, val);
	return drv_admin(d, sqe, NULL);
}

int drv_start(struct drv *d, struct th *th, unsigned int seed)
{
	th_init(th, seed);
	th_new_ctrl(th);
	th_load_identity(th, 12, 2048, 16);
	emu_nvme_start_disabled(th->ctrl);
	return drv_attach(d, th, 32);
}

int drv_attach(struct drv *d, struct th *th, u16 aq_size)
{
	memset(d, 0, sizeof(*d));
	d->th = th;
	return drv_enable(d, aq_size);
}

int drv_enable(struct drv *d, u16 aq_size)
{
	struct drv_q *q = &d->q[0];
	u64 cap = drv_reg(d, EMU_REG_CAP, 8);
	u32 cc;

	d->stride = 4U << ((cap >> 32) & 0xf);
	/* nvme_pci_configure_admin_queue() */
	if (drv_reg(d, EMU_REG_CSTS, 4) & EMU_CSTS_NSSRO)
		drv_wreg(d, EMU_REG_CSTS, EMU_CSTS_NSSRO, 4);
	cc = (u32)drv_reg(d, EMU_REG_CC, 4);
	if (cc & EMU_CC_EN) {
		drv_wreg(d, EMU_REG_CC, cc & ~EMU_CC_EN, 4);
		if (drv_wait_csts(d, EMU_CSTS_RDY, 0))
			return -1;
	}
	memset(q, 0, sizeof(*q));
	q->size = aq_size;
	q->sq = th_alloc(d->th, 64ULL * aq_size, 4096);
	q->cq = th_alloc(d->th, 16ULL * aq_size, 4096);
	q->phase = 1;
	q->ien = 1;
	drv_wreg(d, EMU_REG_AQA, ((u32)(aq_size - 1) << 16) | (aq_size - 1), 4);
	/* lo_hi_writeq() */
	drv_wreg(d, EMU_REG_ASQ, (u32)q->sq, 4);
	drv_wreg(d, EMU_REG_ASQ + 4, q->sq >> 32, 4);
	drv_wreg(d, EMU_REG_ACQ, (u32)q->cq, 4);
	drv_wreg(d, EMU_REG_ACQ + 4, q->cq >> 32, 4);
	/* nvme_enable_ctrl() */
	cc = (cap & (1ULL << 43)) ? (6U << 4) : 0;
	cc |= (0U << 7) | (0U << 11) | (6U << 16) | (4U << 20);
	drv_wreg(d, EMU_REG_CC, cc, 4);
	drv_reg(d, EMU_REG_CAP, 8);
	drv_wreg(d, EMU_REG_CC, cc | EMU_CC_EN, 4);
	return drv_wait_csts(d, EMU_CSTS_RDY, EMU_CSTS_RDY);
}

int drv_bringup(struct drv *d, int nr_io, u16 qsize, int dbbuf, int ien)
{
	u64 page = th_alloc(d->th, 4096, 4096);
	u8 sqe[64], *p = th_ptr(d->th, page);
	u32 dw0, nsid;
	int i, st;

	d->aer_cid = 1000;
	/* nvme_init_ctrl_finish(): Identify Controller */
	drv_sqe(sqe, 0x06, 0);
	drv_set_dw(sqe, 10, 1);
	drv_set_prp(sqe, page, 0);
	if (drv_admin(d, sqe, NULL))
		return -1;
	if (memcmp(p + 24, "QEMU NVMe Ctrl", 14))
		return -2;
	/* nvme_set_queue_count() */
	drv_sqe(sqe, 0x09, 0);
	drv_set_dw(sqe, 10, 0x07);
	drv_set_dw(sqe, 11, ((u32)(nr_io - 1) << 16) | (u32)(nr_io - 1));
	if (drv_admin(d, sqe, &dw0))
		return -3;
	if ((int)(dw0 & 0xffff) + 1 < nr_io)
		return -4;
	/* nvme_enable_aen() */
	drv_sqe(sqe, 0x09, 0);
	drv_set_dw(sqe, 10, 0x0b);
	drv_set_dw(sqe, 11, 0x100);
	if (drv_admin(d, sqe, NULL))
		return -5;
	/* nvme_scan_ns_list() */
	drv_sqe(sqe, 0x06, 0);
	drv_set_dw(sqe, 10, 2);
	drv_set_prp(sqe, page, 0);
	if (drv_admin(d, sqe, NULL))
		return -6;
	nsid = emu_get_le32(p);
	if (nsid != 1)
		return -7;
	drv_sqe(sqe, 0x06, nsid);
	drv_set_dw(sqe, 10, 3);
	drv_set_prp(sqe, page, 0);
	if (drv_admin(d, sqe, NULL) || p[0] != 1)
		return -8;
	drv_sqe(sqe, 0x06, nsid);
	drv_set_dw(sqe, 10, 0);
	drv_set_prp(sqe, page, 0);
	if (drv_admin(d, sqe, NULL) || emu_get_le64(p) == 0)
		return -9;
	/* nvme_create_io_queues(): CQ then SQ, vector = qid */
	for (i = 1; i <= nr_io; i++) {
		struct drv_q *q = &d->q[i];

		memset(q, 0, sizeof(*q));
		q->qid = (u16)i;
		q->size = qsize;
		q->sq = th_alloc(d->th, 64ULL * qsize, 4096);
		q->cq = th_alloc(d->th, 16ULL * qsize, 4096);
		q->phase = 1;
		q->vector = (u16)i;
		q->ien = ien || i == 1;
		drv_sqe(sqe, 0x05, 0);
		drv_set_prp(sqe, q->cq, 0);
		drv_set_dw(sqe, 10, ((u32)(qsize - 1) << 16) | (u32)i);
		drv_set_dw(sqe, 11, ((u32)i << 16) | (q->ien ? 3 : 1));
		st = drv_admin(d, sqe, NULL);
		if (st)
			return -100 - st;
		drv_sqe(sqe, 0x01, 0);
		drv_set_prp(sqe, q->sq, 0);
		drv_set_dw(sqe, 10, ((u32)(qsize - 1) << 16) | (u32)i);
		drv_set_dw(sqe, 11, ((u32)i << 16) | 1);
		st = drv_admin(d, sqe, NULL);
		if (st)
			return -200 - st;
	}
	d->nr_io = nr_io;
	if (dbbuf) {
		/* nvme_dbbuf_set() after the queues exist */
		d->dbs = th_alloc(d->th, 4096, 4096);
		d->eis = th_alloc(d->th, 4096, 4096);
		drv_sqe(sqe, 0x7c, 0);
		drv_set_prp(sqe, d->dbs, d->eis);
		if (drv_admin(d, sqe, NULL))
			return -10;
		d->dbbuf = 1;
	}
	/* nvme_queue_async_events() */
	if (drv_aer_arm(d))
		return -11;
	return 0;
}

/* Submit the Asynchronous Event Request (CID aer_cid) and let it be fetched. */
int drv_aer_arm(struct drv *d)
{
	u8 sqe[64];

	drv_sqe(sqe, 0x0c, 0);
	if (drv_submit_cid(d, 0, sqe, d->aer_cid) < 0)
		return -1;
	d->aer_outstanding = 1;
	emu_nvme_poll(d->th->ctrl, 64);
	return 0;
}

int drv_drain(struct drv *d, int max_rounds)
{
	int r, i, busy;

	for (r = 0; r < max_rounds; r++) {
		emu_nvme_poll(d->th->ctrl, 256);
		th_run_backend(d->th, 1 + (int)(th_rand(d->th) % 64));
		busy = 0;
		for (i = 0; i <= d->nr_io; i++) {
			drv_reap(d, (u16)i);
			busy += d->q[i].outstanding - (i == 0 &&
						       d->aer_outstanding);
		}
		if (!busy && !d->th->npend)
			return 0;
	}
	return -1;
}
