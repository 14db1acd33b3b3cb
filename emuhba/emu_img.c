// SPDX-License-Identifier: GPL-2.0-only
/*
 * emuhba state image codec. The decoder treats its input as hostile: it
 * decodes into the controller's staging state, validates every field and
 * the cross-section invariants, and only then commits.
 */
#include "emu_img.h"
#include "emu_nvme_int.h"

#define EMU_NOVAL	((u64)-1)

struct emu_w {
	u8 *buf;
	size_t cap;
	size_t pos;
};

static void emu_wbytes(struct emu_w *w, const void *p, size_t n)
{
	if (w->pos + n <= w->cap && w->buf)
		memcpy(w->buf + w->pos, p, n);
	w->pos += n;
}

static void emu_w8(struct emu_w *w, u8 v)
{
	emu_wbytes(w, &v, 1);
}

static void emu_w16(struct emu_w *w, u16 v)
{
	u8 b[2];

	emu_put_le16(b, v);
	emu_wbytes(w, b, 2);
}

static void emu_w32(struct emu_w *w, u32 v)
{
	u8 b[4];

	emu_put_le32(b, v);
	emu_wbytes(w, b, 4);
}

static void emu_w64(struct emu_w *w, u64 v)
{
	u8 b[8];

	emu_put_le64(b, v);
	emu_wbytes(w, b, 8);
}

static size_t emu_sec_begin(struct emu_w *w, u16 type, u16 flags)
{
	size_t at = w->pos;

	emu_w16(w, type);
	emu_w16(w, flags);
	emu_w32(w, 0);
	return at;
}

static void emu_sec_end(struct emu_w *w, size_t at, u32 *nsec)
{
	if (at + EMU_IMG_SEC_HDR_LEN <= w->cap && w->pos <= w->cap)
		emu_put_le32(w->buf + at + 4,
			     (u32)(w->pos - at - EMU_IMG_SEC_HDR_LEN));
	(*nsec)++;
}

/* Non-zero runs of a 4 KiB page: most of an Identify page is zero. */
static void emu_w_page(struct emu_w *w, const u8 *page)
{
	size_t cnt_at = w->pos;
	u16 runs = 0;
	u32 i = 0, start;

	emu_w16(w, 0);
	while (i < EMU_NVME_PAGE) {
		while (i < EMU_NVME_PAGE && !page[i])
			i++;
		if (i == EMU_NVME_PAGE)
			break;
		start = i;
		/* A run ends at 8 zero bytes; shorter gaps stay inline. */
		while (i < EMU_NVME_PAGE) {
			u32 z = 0;

			while (i + z < EMU_NVME_PAGE && !page[i + z] && z < 8)
				z++;
			if (z == 8 || i + z == EMU_NVME_PAGE)
				break;
			i += z ? z : 1;
		}
		emu_w16(w, (u16)start);
		emu_w16(w, (u16)(i - start));
		emu_wbytes(w, page + start, i - start);
		runs++;
	}
	if (cnt_at + 2 <= w->cap)
		emu_put_le16(w->buf + cnt_at, runs);
}

static void emu_w_identity(struct emu_w *w, const struct emu_nvme_state *st,
			   u32 *nsec)
{
	const struct emu_nvme_identity *id = &st->id;
	size_t at = emu_sec_begin(w, EMU_IMG_SEC_IDENTITY, EMU_IMG_S_CRITICAL);
	u16 n = 0, i;

	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++)
		n += id->pages[i].valid;
	emu_w64(w, id->cap);
	emu_w32(w, id->vs);
	emu_w16(w, id->nr_vectors);
	emu_w16(w, id->max_sqs);
	emu_w16(w, id->max_cqs);
	emu_w16(w, n);
	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++) {
		const struct emu_nvme_idpage *p = &id->pages[i];

		if (!p->valid)
			continue;
		emu_w8(w, p->cns);
		emu_w8(w, p->csi);
		emu_w16(w, p->cntid);
		emu_w32(w, p->nsid);
		emu_w_page(w, p->data);
	}
	emu_sec_end(w, at, nsec);
}

static void emu_w_header(struct emu_w *w, u16 minor, u32 flags)
{
	emu_w32(w, EMU_IMG_MAGIC);
	emu_w16(w, EMU_IMG_MAJOR);
	emu_w16(w, minor);
	emu_w32(w, EMU_IMG_PERS_NVME);
	emu_w32(w, flags);
	emu_w32(w, 0);		/* total length */
	emu_w32(w, 0);		/* CRC32C */
	emu_w32(w, 0);		/* sections */
	emu_w32(w, 0);
}

static int emu_w_finish(struct emu_w *w, u32 nsec)
{
	u32 crc;

	if (w->pos > w->cap || w->pos > 0x7fffffff)
		return -ENOSPC;
	emu_put_le32(w->buf + 16, (u32)w->pos);
	emu_put_le32(w->buf + 24, nsec);
	crc = emu_crc32c(0, w->buf, w->pos);
	emu_put_le32(w->buf + 20, crc);
	return (int)w->pos;
}

static void emu_w_queues(struct emu_w *w, const struct emu_nvme_state *st,
			 u32 *nsec)
{
	size_t at = emu_sec_begin(w, EMU_IMG_SEC_QUEUES, EMU_IMG_S_CRITICAL);
	u16 nsq = 0, ncq = 0, q;

	for (q = 0; q < EMU_NVME_NR_Q; q++) {
		nsq += st->sq[q].valid;
		ncq += st->cq[q].valid;
	}
	emu_w16(w, nsq);
	emu_w16(w, ncq);
	for (q = 0; q < EMU_NVME_NR_Q; q++) {
		const struct emu_nvme_cq *cq = &st->cq[q];

		if (!cq->valid)
			continue;
		emu_w16(w, q);
		emu_w16(w, cq->size);
		emu_w16(w, cq->vector);
		emu_w16(w, cq->head);
		emu_w16(w, cq->tail);
		emu_w16(w, (u16)(cq->phase | (cq->ien << 1) | (cq->pc << 2)));
		emu_w64(w, cq->base);
	}
	for (q = 0; q < EMU_NVME_NR_Q; q++) {
		const struct emu_nvme_sq *sq = &st->sq[q];

		if (!sq->valid)
			continue;
		emu_w16(w, q);
		emu_w16(w, sq->cqid);
		emu_w16(w, sq->size);
		emu_w16(w, sq->head);
		emu_w16(w, sq->tail);
		emu_w16(w, (u16)(sq->pc | (sq->qprio << 1)));
		emu_w64(w, sq->base);
	}
	emu_sec_end(w, at, nsec);
}

static void emu_w_features(struct emu_w *w, struct emu_nvme_ctrl *ctrl,
			   u32 *nsec)
{
	const struct emu_nvme_state *st = &ctrl->st;
	const struct emu_nvme_features *f = &st->feat;
	size_t at = emu_sec_begin(w, EMU_IMG_SEC_FEATURES, EMU_IMG_S_CRITICAL);
	u16 nivc = 0, v, t;
	u64 ts = 0;

	/* The timestamp travels as its current value; bit 63: host set it. */
	if (f->ts_set_ns)
		ts = (f->ts_value + (ctrl->ops->now_ns(ctrl->host) -
				     f->ts_set_ns) / 1000000) |
		     (1ULL << 63);

	emu_w32(w, f->arb);
	emu_w32(w, f->pm);
	emu_w32(w, f->err_rec);
	emu_w32(w, f->vwc);
	emu_w32(w, f->nq);
	emu_w32(w, f->irq_coal);
	emu_w32(w, f->atomic);
	emu_w32(w, f->aec);
	emu_w32(w, f->apst_en);
	emu_w32(w, f->kato);
	emu_w32(w, f->hctm);
	emu_w32(w, f->nopsc);
	emu_w32(w, f->swpm);
	emu_w8(w, f->nq_set);
	for (t = 0; t < 9; t++) {
		emu_w16(w, f->temp_thr[t][0]);
		emu_w16(w, f->temp_thr[t][1]);
	}
	emu_w64(w, ts);
	for (t = 0; t < 32; t++)
		emu_w64(w, f->apst[t]);
	emu_wbytes(w, f->hbs, sizeof(f->hbs));
	/* Only vectors whose configuration differs from the default. */
	for (v = 0; v < EMU_NVME_MAX_VEC; v++)
		nivc += f->ivc[v] != v;
	emu_w16(w, nivc);
	for (v = 0; v < EMU_NVME_MAX_VEC; v++) {
		if (f->ivc[v] == v)
			continue;
		emu_w16(w, v);
		emu_w32(w, f->ivc[v]);
	}
	emu_sec_end(w, at, nsec);
}

int emu_img_export(struct emu_nvme_ctrl *ctrl, void *buf, size_t cap,
		   u32 opts)
{
	const struct emu_nvme_state *st = &ctrl->st;
	struct emu_w w = { .buf = buf, .cap = cap };
	u32 nsec = 0, i;
	size_t at;

	if (ctrl->nr_inflight)
		return -EBUSY;
	/* Only a running model has consistent positions to export. */
	if (ctrl->mode != EMU_NVME_MODE_RUN)
		return -EINVAL;
	if (cap < EMU_IMG_HDR_LEN)
		return -ENOSPC;
	emu_w_header(&w, opts & EMU_IMG_EXPORT_V1_0 ? 0 : EMU_IMG_MINOR, 0);

	at = emu_sec_begin(&w, EMU_IMG_SEC_REGS, EMU_IMG_S_CRITICAL);
	emu_w32(&w, st->regs.cc);
	emu_w32(&w, st->regs.csts);
	emu_w32(&w, st->regs.aqa);
	emu_w32(&w, st->regs.intms);
	emu_w64(&w, st->regs.asq);
	emu_w64(&w, st->regs.acq);
	emu_sec_end(&w, at, &nsec);

	emu_w_queues(&w, st, &nsec);
	emu_w_features(&w, ctrl, &nsec);

	at = emu_sec_begin(&w, EMU_IMG_SEC_AER, EMU_IMG_S_CRITICAL);
	emu_w8(&w, st->aer.nr_cid);
	emu_w8(&w, st->aer.nr_events);
	emu_w8(&w, st->aer.masked);
	emu_w8(&w, 0);
	for (i = 0; i < st->aer.nr_cid; i++)
		emu_w16(&w, st->aer.cid[i]);
	for (i = 0; i < st->aer.nr_events; i++)
		emu_w32(&w, st->aer.events[i]);
	emu_sec_end(&w, at, &nsec);

	at = emu_sec_begin(&w, EMU_IMG_SEC_DBBUF, EMU_IMG_S_CRITICAL);
	emu_w8(&w, st->dbbuf.enabled);
	emu_w64(&w, st->dbbuf.dbs);
	emu_w64(&w, st->dbbuf.eis);
	emu_sec_end(&w, at, &nsec);

	emu_w_identity(&w, st, &nsec);

	if (!(opts & EMU_IMG_EXPORT_V1_0)) {
		const struct emu_nvme_logs *l = &st->logs;
		u8 nerr = (u8)EMU_MIN(l->err_count, (u64)EMU_NVME_MAX_ERRLOG);

		at = emu_sec_begin(&w, EMU_IMG_SEC_LOGS, 0);
		emu_w64(&w, l->data_units_read);
		emu_w64(&w, l->data_units_written);
		emu_w64(&w, l->host_reads);
		emu_w64(&w, l->host_writes);
		emu_w64(&w, l->err_count);
		emu_w8(&w, nerr);
		emu_w8(&w, l->nr_changed_ns);
		for (i = 0; i < nerr; i++)
			emu_wbytes(&w, l->err[i], 64);
		for (i = 0; i < l->nr_changed_ns; i++)
			emu_w32(&w, l->changed_ns[i]);
		emu_sec_end(&w, at, &nsec);
	}

	at = emu_sec_begin(&w, EMU_IMG_SEC_EMU_RUNTIME, EMU_IMG_S_EXTENDED);
	emu_w16(&w, ctrl->rr_next);
	for (i = 0; i < EMU_NVME_MAX_VEC; i++) {
		if (!ctrl->vec[i].pending)
			continue;
		emu_w16(&w, (u16)i);
		emu_w32(&w, ctrl->vec[i].pending);
	}
	emu_sec_end(&w, at, &nsec);

	return emu_w_finish(&w, nsec);
}

int emu_img_export_stable(struct emu_nvme_ctrl *ctrl, void *buf, size_t cap)
{
	struct emu_w w = { .buf = buf, .cap = cap };
	u32 nsec = 0;

	if (cap < EMU_IMG_HDR_LEN)
		return -ENOSPC;
	emu_w_header(&w, EMU_IMG_MINOR, EMU_IMG_F_STABLE);
	emu_w_identity(&w, &ctrl->st, &nsec);
	return emu_w_finish(&w, nsec);
}

/* Decoder -------------------------------------------------------------- */

static u8 emu_r8(struct emu_r *r)
{
	const u8 *p = emu_rbytes(r, 1);

	return p ? p[0] : 0;
}

static u16 emu_r16(struct emu_r *r)
{
	const u8 *p = emu_rbytes(r, 2);

	return p ? emu_get_le16(p) : 0;
}

static u32 emu_r32(struct emu_r *r)
{
	const u8 *p = emu_rbytes(r, 4);

	return p ? emu_get_le32(p) : 0;
}

static u64 emu_r64(struct emu_r *r)
{
	const u8 *p = emu_rbytes(r, 8);

	return p ? emu_get_le64(p) : 0;
}

struct emu_dec {
	char *err;
	size_t errlen;
	u32 seen;		/* bit per basic section type */
	u16 minor;
	u16 rr_next;
	u16 nr_vec_pending;
	u8 vec_seen;		/* the extended runtime section was present */
};

static int emu_bad(struct emu_dec *d, const char *field, const char *why,
		   u64 val)
{
	emu_msg(d->err, d->errlen, field, why, val);
	return -EINVAL;
}

/* Decode one page's runs; out NULL only validates. */
static int emu_r_page(struct emu_r *r, u8 *out)
{
	u16 runs = emu_r16(r), i, off, len;
	u32 end = 0;
	const u8 *b;

	if (out)
		memset(out, 0, EMU_NVME_PAGE);
	for (i = 0; i < runs; i++) {
		off = emu_r16(r);
		len = emu_r16(r);
		if (r->bad || (u32)off + len > EMU_NVME_PAGE || off < end ||
		    !len)
			return -EINVAL;
		b = emu_rbytes(r, len);
		if (!b)
			return -EINVAL;
		if (out)
			memcpy(out + off, b, len);
		end = (u32)off + len;
	}
	return r->bad ? -EINVAL : 0;
}

static int emu_d_identity(struct emu_dec *d, struct emu_r *r,
			  struct emu_nvme_identity *id)
{
	u16 n, i, j;

	id->cap = emu_r64(r);
	id->vs = emu_r32(r);
	id->nr_vectors = emu_r16(r);
	id->max_sqs = emu_r16(r);
	id->max_cqs = emu_r16(r);
	n = emu_r16(r);
	if (r->bad)
		return emu_bad(d, "identity", "truncated", EMU_NOVAL);
	if (!id->nr_vectors || id->nr_vectors > EMU_NVME_MAX_VEC)
		return emu_bad(d, "identity.nr_vectors", "out of range",
			       id->nr_vectors);
	if (!id->max_sqs || id->max_sqs > EMU_NVME_MAX_QID)
		return emu_bad(d, "identity.max_sqs", "out of range",
			       id->max_sqs);
	if (!id->max_cqs || id->max_cqs > EMU_NVME_MAX_QID)
		return emu_bad(d, "identity.max_cqs", "out of range",
			       id->max_cqs);
	if (n > EMU_NVME_MAX_IDPAGES)
		return emu_bad(d, "identity.nr_pages", "too many", n);
	for (i = 0; i < n; i++) {
		struct emu_nvme_idpage *p = &id->pages[i];

		p->valid = 1;
		p->cns = emu_r8(r);
		p->csi = emu_r8(r);
		p->cntid = emu_r16(r);
		p->nsid = emu_r32(r);
		if (emu_r_page(r, p->data))
			return emu_bad(d, "identity.page", "bad encoding", i);
		if (p->cns == EMU_CNS_NS_LIST)
			return emu_bad(d, "identity.page.cns",
				       "list pages are not stored", i);
		for (j = 0; j < i; j++)
			if (id->pages[j].cns == p->cns &&
			    id->pages[j].csi == p->csi &&
			    id->pages[j].nsid == p->nsid)
				return emu_bad(d, "identity.page",
					       "duplicate", i);
	}
	for (i = 0; i < n; i++)
		if (id->pages[i].cns == EMU_CNS_CTRL)
			return 0;
	return emu_bad(d, "identity.page", "no Identify Controller page",
		       EMU_NOVAL);
}

static int emu_d_queues(struct emu_dec *d, struct emu_r *r,
			struct emu_nvme_state *st)
{
	u16 nsq = emu_r16(r), ncq = emu_r16(r), i, qid, fl;

	if (nsq > EMU_NVME_NR_Q || ncq > EMU_NVME_NR_Q)
		return emu_bad(d, "queues.count", "too many",
			       EMU_MAX(nsq, ncq));
	for (i = 0; i < ncq; i++) {
		struct emu_nvme_cq *cq;

		qid = emu_r16(r);
		if (r->bad)
			break;
		if (qid > EMU_NVME_MAX_QID)
			return emu_bad(d, "queues.cq.qid", "out of range", qid);
		cq = &st->cq[qid];
		if (cq->valid)
			return emu_bad(d, "queues.cq.qid", "duplicate", qid);
		cq->valid = 1;
		cq->size = emu_r16(r);
		cq->vector = emu_r16(r);
		cq->head = emu_r16(r);
		cq->tail = emu_r16(r);
		fl = emu_r16(r);
		cq->base = emu_r64(r);
		if (fl & ~7U)
			return emu_bad(d, "queues.cq.flags", "reserved bits",
				       qid);
		cq->phase = fl & 1;
		cq->ien = (fl >> 1) & 1;
		cq->pc = (fl >> 2) & 1;
	}
	for (i = 0; i < nsq && !r->bad; i++) {
		struct emu_nvme_sq *sq;

		qid = emu_r16(r);
		if (r->bad)
			break;
		if (qid > EMU_NVME_MAX_QID)
			return emu_bad(d, "queues.sq.qid", "out of range", qid);
		sq = &st->sq[qid];
		if (sq->valid)
			return emu_bad(d, "queues.sq.qid", "duplicate", qid);
		sq->valid = 1;
		sq->cqid = emu_r16(r);
		sq->size = emu_r16(r);
		sq->head = emu_r16(r);
		sq->tail = emu_r16(r);
		fl = emu_r16(r);
		sq->base = emu_r64(r);
		if (fl & ~7U)
			return emu_bad(d, "queues.sq.flags", "reserved bits",
				       qid);
		sq->pc = fl & 1;
		sq->qprio = (fl >> 1) & 3;
	}
	return r->bad ? emu_bad(d, "queues", "truncated", EMU_NOVAL) : 0;
}

static int emu_d_features(struct emu_dec *d, struct emu_r *r,
			  struct emu_nvme_features *f)
{
	const u8 *hbs;
	u16 n, i, v, t;

	f->arb = emu_r32(r);
	f->pm = emu_r32(r);
	f->err_rec = emu_r32(r);
	f->vwc = emu_r32(r);
	f->nq = emu_r32(r);
	f->irq_coal = emu_r32(r);
	f->atomic = emu_r32(r);
	f->aec = emu_r32(r);
	f->apst_en = emu_r32(r);
	f->kato = emu_r32(r);
	f->hctm = emu_r32(r);
	f->nopsc = emu_r32(r);
	f->swpm = emu_r32(r);
	f->nq_set = emu_r8(r);
	for (t = 0; t < 9; t++) {
		f->temp_thr[t][0] = emu_r16(r);
		f->temp_thr[t][1] = emu_r16(r);
	}
	f->ts_value = emu_r64(r);
	/* Marks "set by the host"; emu_img_import() restarts the clock. */
	f->ts_set_ns = f->ts_value >> 63;
	f->ts_value &= 0xffffffffffffULL;
	for (t = 0; t < 32; t++)
		f->apst[t] = emu_r64(r);
	hbs = emu_rbytes(r, sizeof(f->hbs));
	if (hbs)
		memcpy(f->hbs, hbs, sizeof(f->hbs));
	for (v = 0; v < EMU_NVME_MAX_VEC; v++)
		f->ivc[v] = v;
	n = emu_r16(r);
	if (r->bad)
		return emu_bad(d, "features", "truncated", EMU_NOVAL);
	if (n > EMU_NVME_MAX_VEC)
		return emu_bad(d, "features.ivc.count", "too many", n);
	for (i = 0; i < n; i++) {
		v = emu_r16(r);
		if (v >= EMU_NVME_MAX_VEC)
			return emu_bad(d, "features.ivc.vector", "out of range",
				       v);
		f->ivc[v] = emu_r32(r);
		if ((f->ivc[v] & 0xffff) != v || (f->ivc[v] >> 17))
			return emu_bad(d, "features.ivc", "inconsistent", v);
	}
	if (f->nq_set > 1 || f->vwc > 1 || f->atomic > 1 || f->apst_en > 1 ||
	    f->nopsc > 1)
		return emu_bad(d, "features", "flag out of range", EMU_NOVAL);
	if ((f->nq & 0xffff) == 0xffff || (f->nq >> 16) == 0xffff)
		return emu_bad(d, "features.nq", "out of range", f->nq);
	if (f->err_rec & ~0xffffU)
		return emu_bad(d, "features.err_rec", "out of range",
			       f->err_rec);
	return r->bad ? emu_bad(d, "features", "truncated", EMU_NOVAL) : 0;
}

static int emu_d_aer(struct emu_dec *d, struct emu_r *r, struct emu_nvme_aer *a)
{
	u32 i;

	a->nr_cid = emu_r8(r);
	a->nr_events = emu_r8(r);
	a->masked = emu_r8(r);
	emu_r8(r);
	if (a->nr_cid > EMU_NVME_MAX_AER)
		return emu_bad(d, "aer.nr_cid", "too many", a->nr_cid);
	if (a->nr_events > EMU_NVME_MAX_EVENTS)
		return emu_bad(d, "aer.nr_events", "too many", a->nr_events);
	for (i = 0; i < a->nr_cid; i++)
		a->cid[i] = emu_r16(r);
	for (i = 0; i < a->nr_events; i++) {
		a->events[i] = emu_r32(r);
		if (a->events[i] & 0xff0000f8)
			return emu_bad(d, "aer.events", "reserved bits", i);
	}
	return r->bad ? emu_bad(d, "aer", "truncated", EMU_NOVAL) : 0;
}

static int emu_d_logs(struct emu_dec *d, struct emu_r *r,
		      struct emu_nvme_logs *l)
{
	u8 nerr;
	u32 i;

	l->data_units_read = emu_r64(r);
	l->data_units_written = emu_r64(r);
	l->host_reads = emu_r64(r);
	l->host_writes = emu_r64(r);
	l->err_count = emu_r64(r);
	nerr = emu_r8(r);
	l->nr_changed_ns = emu_r8(r);
	if (nerr > EMU_NVME_MAX_ERRLOG || nerr > l->err_count)
		return emu_bad(d, "logs.nr_err", "out of range", nerr);
	if (l->nr_changed_ns > EMU_NVME_MAX_NS)
		return emu_bad(d, "logs.nr_changed_ns", "too many",
			       l->nr_changed_ns);
	for (i = 0; i < nerr && !r->bad; i++) {
		const u8 *b = emu_rbytes(r, 64);

		if (b)
			memcpy(l->err[i], b, 64);
	}
	for (i = 0; i < l->nr_changed_ns; i++)
		l->changed_ns[i] = emu_r32(r);
	return r->bad ? emu_bad(d, "logs", "truncated", EMU_NOVAL) : 0;
}

static int emu_d_runtime(struct emu_dec *d, struct emu_r *r,
			 struct emu_nvme_ctrl *ctrl, bool commit)
{
	u16 v;
	u32 pending;

	d->rr_next = emu_r16(r);
	if (d->rr_next >= EMU_NVME_MAX_QID)
		return emu_bad(d, "emu_runtime.rr_next", "out of range",
			       d->rr_next);
	while (!r->bad && r->pos < r->len) {
		v = emu_r16(r);
		pending = emu_r32(r);
		if (r->bad)
			break;
		if (v >= EMU_NVME_MAX_VEC)
			return emu_bad(d, "emu_runtime.vector", "out of range",
				       v);
		if (commit)
			ctrl->vec[v].pending = pending;
	}
	d->vec_seen = 1;
	return r->bad ? emu_bad(d, "emu_runtime", "truncated", EMU_NOVAL) : 0;
}

static int emu_d_header(struct emu_dec *d, const u8 *b, size_t len,
			u32 *flags)
{
	u8 tmp[EMU_IMG_HDR_LEN];
	u32 crc;

	if (len < EMU_IMG_HDR_LEN)
		return emu_bad(d, "header", "truncated", len);
	if (emu_get_le32(b) != EMU_IMG_MAGIC)
		return emu_bad(d, "header.magic", "not a state image",
			       emu_get_le32(b));
	if (emu_get_le16(b + 4) != EMU_IMG_MAJOR)
		return emu_bad(d, "header.major", "unsupported version",
			       emu_get_le16(b + 4));
	d->minor = emu_get_le16(b + 6);
	if (emu_get_le32(b + 8) != EMU_IMG_PERS_NVME)
		return emu_bad(d, "header.personality", "not NVMe",
			       emu_get_le32(b + 8));
	*flags = emu_get_le32(b + 12);
	if (*flags & ~EMU_IMG_F_STABLE)
		return emu_bad(d, "header.flags", "unknown flags", *flags);
	if (emu_get_le32(b + 16) != len)
		return emu_bad(d, "header.length", "does not match the data",
			       emu_get_le32(b + 16));
	if (emu_get_le32(b + 28))
		return emu_bad(d, "header.reserved", "not zero", EMU_NOVAL);
	memcpy(tmp, b, sizeof(tmp));
	emu_put_le32(tmp + 20, 0);
	crc = emu_crc32c(0, tmp, sizeof(tmp));
	crc = emu_crc32c(crc, b + EMU_IMG_HDR_LEN, len - EMU_IMG_HDR_LEN);
	if (crc != emu_get_le32(b + 20))
		return emu_bad(d, "header.crc32c", "mismatch", crc);
	return 0;
}

/*
 * Walk the sections. st receives the basic profile; ctrl (may be NULL) the
 * extended one when commit is set.
 */
static int emu_d_sections(struct emu_dec *d, const u8 *b, size_t len,
			  struct emu_nvme_state *st, struct emu_nvme_ctrl *ctrl,
			  bool commit)
{
	u32 nsec = emu_get_le32(b + 24), i, pos = EMU_IMG_HDR_LEN;
	int ret;

	for (i = 0; i < nsec; i++) {
		struct emu_r r = { 0 };
		u16 type, fl;
		u32 slen;

		if (len - pos < EMU_IMG_SEC_HDR_LEN)
			return emu_bad(d, "section", "truncated header", i);
		type = emu_get_le16(b + pos);
		fl = emu_get_le16(b + pos + 2);
		slen = emu_get_le32(b + pos + 4);
		pos += EMU_IMG_SEC_HDR_LEN;
		if (slen > len - pos)
			return emu_bad(d, "section.length", "beyond the image",
				       type);
		r.p = b + pos;
		r.len = slen;
		pos += slen;
		if (fl & ~(EMU_IMG_S_CRITICAL | EMU_IMG_S_EXTENDED))
			return emu_bad(d, "section.flags", "unknown flags",
				       type);
		if (type < 32 && (d->seen & EMU_BIT(type)))
			return emu_bad(d, "section", "duplicate", type);
		if (type < 32)
			d->seen |= EMU_BIT(type);
		switch (type) {
		case EMU_IMG_SEC_REGS:
			st->regs.cc = emu_r32(&r);
			st->regs.csts = emu_r32(&r);
			st->regs.aqa = emu_r32(&r);
			st->regs.intms = emu_r32(&r);
			st->regs.asq = emu_r64(&r);
			st->regs.acq = emu_r64(&r);
			ret = r.bad ? emu_bad(d, "regs", "truncated",
					      EMU_NOVAL) : 0;
			break;
		case EMU_IMG_SEC_QUEUES:
			ret = emu_d_queues(d, &r, st);
			break;
		case EMU_IMG_SEC_FEATURES:
			ret = emu_d_features(d, &r, &st->feat);
			break;
		case EMU_IMG_SEC_AER:
			ret = emu_d_aer(d, &r, &st->aer);
			break;
		case EMU_IMG_SEC_DBBUF:
			st->dbbuf.enabled = emu_r8(&r);
			st->dbbuf.dbs = emu_r64(&r);
			st->dbbuf.eis = emu_r64(&r);
			ret = r.bad ? emu_bad(d, "dbbuf", "truncated",
					      EMU_NOVAL) : 0;
			break;
		case EMU_IMG_SEC_IDENTITY:
			ret = emu_d_identity(d, &r, &st->id);
			break;
		case EMU_IMG_SEC_LOGS:
			ret = emu_d_logs(d, &r, &st->logs);
			break;
		case EMU_IMG_SEC_EMU_RUNTIME:
			ret = emu_d_runtime(d, &r, ctrl, commit);
			break;
		default:
			ret = fl & EMU_IMG_S_CRITICAL ?
			      emu_bad(d, "section", "unknown critical section",
				      type) : 0;
		}
		if (ret)
			return ret;
	}
	if (pos != len)
		return emu_bad(d, "image", "trailing bytes after the sections",
			       len - pos);
	return 0;
}

static int emu_d_state(struct emu_dec *d, const struct emu_nvme_state *st);

static int emu_d_check(struct emu_dec *d, struct emu_nvme_state *st)
{
	static const u16 need[] = { EMU_IMG_SEC_REGS, EMU_IMG_SEC_QUEUES,
		EMU_IMG_SEC_FEATURES, EMU_IMG_SEC_AER, EMU_IMG_SEC_DBBUF,
		EMU_IMG_SEC_IDENTITY };
	u32 i;

	for (i = 0; i < EMU_ARRAY_SIZE(need); i++)
		if (!(d->seen & EMU_BIT(need[i])))
			return emu_bad(d, "section", "missing", need[i]);
	return emu_d_state(d, st);
}

/*
 * The invariants the running model relies on. Shared by the image decoder
 * and by takeover (state learned by observing a VF).
 */
int emu_nvme_state_check(const struct emu_nvme_state *st, char *err,
			 size_t errlen)
{
	struct emu_dec d = { .err = err, .errlen = errlen };

	return emu_d_state(&d, st);
}

static int emu_d_state(struct emu_dec *d, const struct emu_nvme_state *st)
{
	const struct emu_nvme_regs *rg = &st->regs;
	u32 mqes = emu_mqes(st), mps, i, q, aerl;
	bool en = rg->cc & EMU_CC_EN, rdy = rg->csts & EMU_CSTS_RDY;
	const struct emu_nvme_idpage *c = NULL;

	if (rg->cc & ~0x01fffff1U)
		return emu_bad(d, "regs.cc", "reserved bits", rg->cc);
	if (rg->csts & ~0x1fU)
		return emu_bad(d, "regs.csts", "reserved bits", rg->csts);
	if (!en && (rg->csts & EMU_CSTS_RDY))
		return emu_bad(d, "regs.csts", "ready while disabled",
			       rg->csts);
	if (rg->aqa & ~0x0fff0fffU)
		return emu_bad(d, "regs.aqa", "reserved bits", rg->aqa);
	if ((rg->asq | rg->acq) & 0xfff)
		return emu_bad(d, "regs.asq", "not page aligned", EMU_NOVAL);
	mps = 12 + ((rg->cc >> 7) & 0xf);
	/* CC.EN with CSTS.RDY clear: an enable the controller refused. */
	if (rdy != (st->sq[0].valid && st->cq[0].valid) ||
	    st->sq[0].valid != st->cq[0].valid)
		return emu_bad(d, "queues.admin", "inconsistent with csts.rdy",
			       EMU_NOVAL);
	if (rdy && (st->sq[0].size != (rg->aqa & 0xfff) + 1 ||
		    st->cq[0].size != ((rg->aqa >> 16) & 0xfff) + 1 ||
		    st->sq[0].base != rg->asq || st->cq[0].base != rg->acq ||
		    st->sq[0].cqid || st->cq[0].vector))
		return emu_bad(d, "queues.admin", "inconsistent with aqa/asq/acq",
			       EMU_NOVAL);
	for (q = 0; q < EMU_NVME_NR_Q; q++) {
		const struct emu_nvme_cq *cq = &st->cq[q];
		const struct emu_nvme_sq *sq = &st->sq[q];

		if (cq->valid) {
			if (cq->size < 2 || cq->size > mqes)
				return emu_bad(d, "queues.cq.size",
					       "outside 2..MQES for qid", q);
			if (cq->head >= cq->size || cq->tail >= cq->size)
				return emu_bad(d, "queues.cq.position",
					       "out of range for qid", q);
			if (cq->ien && cq->vector >= st->id.nr_vectors)
				return emu_bad(d, "queues.cq.vector",
					       "out of range for qid", q);
			if (q && (!cq->pc || (cq->base & ((1ULL << mps) - 1))))
				return emu_bad(d, "queues.cq.base",
					       "not page aligned or not contiguous",
					       q);
			if (q > st->id.max_cqs)
				return emu_bad(d, "queues.cq.qid",
					       "above the granted queues", q);
		}
		if (sq->valid) {
			if (sq->size < 2 || sq->size > mqes)
				return emu_bad(d, "queues.sq.size",
					       "outside 2..MQES for qid", q);
			if (sq->head >= sq->size || sq->tail >= sq->size)
				return emu_bad(d, "queues.sq.position",
					       "out of range for qid", q);
			if (sq->cqid > EMU_NVME_MAX_QID ||
			    !st->cq[sq->cqid].valid || (q && !sq->cqid))
				return emu_bad(d, "queues.sq.cqid",
					       "references a missing CQ for qid",
					       q);
			if (q && (!sq->pc || (sq->base & ((1ULL << mps) - 1))))
				return emu_bad(d, "queues.sq.base",
					       "not page aligned or not contiguous",
					       q);
			if (q > st->id.max_sqs)
				return emu_bad(d, "queues.sq.qid",
					       "above the granted queues", q);
		}
	}
	if (st->aer.nr_cid && !rdy)
		return emu_bad(d, "aer.nr_cid", "outstanding while not ready",
			       st->aer.nr_cid);
	if (st->dbbuf.enabled > 1)
		return emu_bad(d, "dbbuf.enabled", "out of range",
			       st->dbbuf.enabled);
	if (st->dbbuf.enabled && (!st->dbbuf.dbs || !st->dbbuf.eis ||
				  ((st->dbbuf.dbs | st->dbbuf.eis) &
				   ((1ULL << mps) - 1))))
		return emu_bad(d, "dbbuf.dbs", "invalid buffer address",
			       EMU_NOVAL);
	for (i = 0; i < EMU_NVME_MAX_VEC; i++)
		if (i >= st->id.nr_vectors && st->feat.ivc[i] != i)
			return emu_bad(d, "features.ivc",
				       "vector beyond nr_vectors", i);
	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++)
		if (st->id.pages[i].valid && st->id.pages[i].cns == EMU_CNS_CTRL)
			c = &st->id.pages[i];
	if (!c)
		return emu_bad(d, "identity.page", "no Identify Controller page",
			       EMU_NOVAL);
	/* AERL comes from the identity. */
	aerl = c->data[EMU_IDC_AERL];
	if (st->aer.nr_cid > aerl + 1 || st->aer.nr_cid > EMU_NVME_MAX_AER)
		return emu_bad(d, "aer.nr_cid", "exceeds AERL", st->aer.nr_cid);
	if (st->aer.nr_events > EMU_NVME_MAX_EVENTS)
		return emu_bad(d, "aer.nr_events", "too many",
			       st->aer.nr_events);
	if (st->logs.nr_changed_ns > EMU_NVME_MAX_NS)
		return emu_bad(d, "logs.nr_changed_ns", "too many",
			       st->logs.nr_changed_ns);
	return 0;
}

int emu_img_import(struct emu_nvme_ctrl *ctrl, const void *img, size_t len,
		   char *err, size_t errlen)
{
	struct emu_dec d = { .err = err, .errlen = errlen };
	struct emu_nvme_state *stage = &ctrl->stage;
	const u8 *b = img;
	u32 flags;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (ctrl->nr_inflight) {
		emu_bad(&d, "model", "backend requests in flight",
			ctrl->nr_inflight);
		return -EBUSY;
	}
	if (!img || len > 0x7fffffff)
		return emu_bad(&d, "image", "no data", EMU_NOVAL);
	ret = emu_d_header(&d, b, len, &flags);
	if (ret)
		return ret;
	if (flags & EMU_IMG_F_STABLE)
		return emu_bad(&d, "header.flags",
			       "a stable image carries no controller state",
			       flags);
	memset(stage, 0, sizeof(*stage));
	ret = emu_d_sections(&d, b, len, stage, NULL, false);
	if (!ret)
		ret = emu_d_check(&d, stage);
	if (ret)
		return ret;

	/* Everything validated: commit. */
	memcpy(&ctrl->st, stage, sizeof(*stage));
	if (ctrl->st.feat.ts_set_ns)
		ctrl->st.feat.ts_set_ns = ctrl->ops->now_ns(ctrl->host) | 1;
	memset(ctrl->sq_inflight, 0, sizeof(ctrl->sq_inflight));
	memset(ctrl->cq_reserved, 0, sizeof(ctrl->cq_reserved));
	memset(ctrl->sq_deleting, 0, sizeof(ctrl->sq_deleting));
	memset(ctrl->vec, 0, sizeof(ctrl->vec));
	ctrl->resetting = 0;
	ctrl->shutting = 0;
	ctrl->ei_len = 0;
	ctrl->nssr_pending = 0;
	emu_nvme_refresh_identity(ctrl);
	/* Second pass for the extended profile; the stage is scratch now. */
	d.seen = 0;
	memset(stage, 0, sizeof(*stage));
	if (emu_d_sections(&d, b, len, stage, ctrl, true))
		d.vec_seen = 0;
	ctrl->rr_next = d.rr_next;
	if (!d.vec_seen) {
		u32 v;

		/*
		 * A source of another model did not say which interrupts
		 * were still pending: raise every vector once, spurious
		 * interrupts are harmless and lost ones are not.
		 */
		for (v = 0; v < ctrl->st.id.nr_vectors; v++)
			ctrl->vec[v].pending = 1;
	}
	ctrl->mode = EMU_NVME_MODE_RUN;
	emu_nvme_irq_flush(ctrl);
	return 0;
}

/* Compatibility -------------------------------------------------------- */

/* Bytes [off, off + n) of an encoded page (zero where no run covers). */
static int emu_page_peek(const u8 *enc, u32 enclen, u32 off, u8 *out, u32 n)
{
	struct emu_r r = { .p = enc, .len = enclen };
	u16 runs = emu_r16(&r), i, ro, rl;
	const u8 *b;
	u32 k;

	memset(out, 0, n);
	for (i = 0; i < runs; i++) {
		ro = emu_r16(&r);
		rl = emu_r16(&r);
		b = emu_rbytes(&r, rl);
		if (!b)
			return -EINVAL;
		for (k = 0; k < n; k++)
			if (off + k >= ro && off + k < (u32)ro + rl)
				out[k] = b[off + k - ro];
	}
	return 0;
}

struct emu_src_ns {
	u32 nsid;
	u64 nsze;
	u8 lba_shift;
	u8 nguid[16];
	u8 eui64[8];
};

int emu_img_check_compat(const void *img, size_t len,
			 const struct emu_nvme_limits *lim,
			 char *err, size_t errlen)
{
	struct emu_dec d = { .err = err, .errlen = errlen };
	const u8 *b = img;
	u32 flags, nsec, i, pos = EMU_IMG_HDR_LEN, j;
	u16 nr_vectors = 0, max_sqs = 0, max_cqs = 0, mqes = 0, npages = 0;
	u16 used_sq = 0, used_cq = 0, used_size = 0, used_vec = 0;
	bool have_q = false, have_id = false, dbbuf = false, have_feat = false;
	u8 mdts = 0, sgls[4], oncs[2], tmp[32], vwc = 0, kas[2];
	u32 f_pm = 0, f_vwc = 0, f_kato = 0;
	bool src_vwc, src_ka;
	u8 src_ps;
	struct emu_src_ns ns;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (!img || len > 0x7fffffff)
		return emu_bad(&d, "image", "no data", EMU_NOVAL);
	ret = emu_d_header(&d, b, len, &flags);
	if (ret)
		return ret;
	memset(sgls, 0, sizeof(sgls));
	memset(oncs, 0, sizeof(oncs));
	memset(kas, 0, sizeof(kas));
	nsec = emu_get_le32(b + 24);
	for (i = 0; i < nsec; i++) {
		struct emu_r r;
		u16 type;
		u32 slen;

		if (len - pos < EMU_IMG_SEC_HDR_LEN)
			return emu_bad(&d, "section", "truncated header", i);
		type = emu_get_le16(b + pos);
		slen = emu_get_le32(b + pos + 4);
		pos += EMU_IMG_SEC_HDR_LEN;
		if (slen > len - pos)
			return emu_bad(&d, "section.length",
				       "beyond the image", type);
		r.p = b + pos;
		r.len = slen;
		r.pos = 0;
		r.bad = false;
		pos += slen;
		if (type == EMU_IMG_SEC_QUEUES) {
			u16 nsq = emu_r16(&r), ncq = emu_r16(&r), q;

			have_q = true;
			for (q = 0; q < ncq && !r.bad; q++) {
				u16 qid = emu_r16(&r), size = emu_r16(&r);
				u16 vec = emu_r16(&r);

				emu_rbytes(&r, 14);
				used_cq = EMU_MAX(used_cq, qid);
				used_size = EMU_MAX(used_size, size);
				used_vec = EMU_MAX(used_vec, (u16)(vec + 1));
			}
			for (q = 0; q < nsq && !r.bad; q++) {
				u16 qid = emu_r16(&r), size;

				emu_r16(&r);
				size = emu_r16(&r);
				emu_rbytes(&r, 14);
				used_sq = EMU_MAX(used_sq, qid);
				used_size = EMU_MAX(used_size, size);
			}
			if (r.bad)
				return emu_bad(&d, "queues", "truncated",
					       EMU_NOVAL);
		}
		if (type == EMU_IMG_SEC_DBBUF)
			dbbuf = emu_r8(&r) == 1;
		if (type == EMU_IMG_SEC_FEATURES) {
			/* Arbitration, PM, Error Recovery, VWC, then KATO. */
			have_feat = true;
			emu_r32(&r);
			f_pm = emu_r32(&r);
			emu_r32(&r);
			f_vwc = emu_r32(&r);
			emu_rbytes(&r, 5 * 4);
			f_kato = emu_r32(&r);
			if (r.bad)
				return emu_bad(&d, "features", "truncated",
					       EMU_NOVAL);
		}
		if (type != EMU_IMG_SEC_IDENTITY)
			continue;
		have_id = true;
		mqes = (u16)(emu_r64(&r) & 0xffff);
		emu_r32(&r);
		nr_vectors = emu_r16(&r);
		max_sqs = emu_r16(&r);
		max_cqs = emu_r16(&r);
		npages = emu_r16(&r);
		for (j = 0; j < npages && !r.bad; j++) {
			u8 cns = emu_r8(&r), csi = emu_r8(&r);
			u32 start, nsid, k;
			const struct emu_nvme_ns_limits *dn = NULL;

			emu_r16(&r);
			nsid = emu_r32(&r);
			start = r.pos;
			if (r.bad || emu_r_page(&r, NULL))
				return emu_bad(&d, "identity.page",
					       "bad encoding", j);
			if (cns == EMU_CNS_CTRL) {
				emu_page_peek(r.p + start, r.pos - start,
					      EMU_IDC_MDTS, &mdts, 1);
				emu_page_peek(r.p + start, r.pos - start,
					      EMU_IDC_SGLS, sgls, 4);
				emu_page_peek(r.p + start, r.pos - start,
					      EMU_IDC_ONCS, oncs, 2);
				emu_page_peek(r.p + start, r.pos - start,
					      EMU_IDC_VWC, &vwc, 1);
				emu_page_peek(r.p + start, r.pos - start,
					      EMU_IDC_KAS, kas, 2);
				continue;
			}
			if (cns != EMU_CNS_NS || csi)
				continue;
			emu_page_peek(r.p + start, r.pos - start, 0, tmp, 32);
			ns.nsid = nsid;
			ns.nsze = emu_get_le64(tmp);
			if (!ns.nsze)
				continue;
			{
				u8 flbas = tmp[26], f, lbaf[4];

				f = (flbas & 0xf) | ((flbas >> 1) & 0x30);
				emu_page_peek(r.p + start, r.pos - start,
					      128 + 4 * f, lbaf, 4);
				ns.lba_shift = lbaf[2];
			}
			emu_page_peek(r.p + start, r.pos - start, 104,
				      ns.nguid, 16);
			emu_page_peek(r.p + start, r.pos - start, 120,
				      ns.eui64, 8);
			for (k = 0; k < lim->nr_ns && k < EMU_NVME_MAX_NS; k++)
				if (lim->ns[k].nsid == nsid)
					dn = &lim->ns[k];
			if (!dn)
				return emu_bad(&d, "namespace.nsid",
					       "missing at the destination",
					       nsid);
			if (dn->nsze != ns.nsze)
				return emu_bad(&d, "namespace.nsze",
					       "differs for nsid", nsid);
			if (dn->lba_shift != ns.lba_shift)
				return emu_bad(&d, "namespace.lba_format",
					       "differs for nsid", nsid);
			if (memcmp(dn->nguid, ns.nguid, 16))
				return emu_bad(&d, "namespace.nguid",
					       "differs for nsid", nsid);
			if (memcmp(dn->eui64, ns.eui64, 8))
				return emu_bad(&d, "namespace.eui64",
					       "differs for nsid", nsid);
		}
		if (r.bad)
			return emu_bad(&d, "identity", "truncated", EMU_NOVAL);
	}
	if (!have_id)
		return emu_bad(&d, "section", "missing",
			       EMU_IMG_SEC_IDENTITY);
	/* A full image says what the guest uses; a stable one what it may. */
	if (!have_q) {
		used_sq = max_sqs;
		used_cq = max_cqs;
		used_size = mqes + 1;
		used_vec = nr_vectors;
	}
	if (lim->max_sqs < used_sq)
		return emu_bad(&d, "limits.max_sqs", "too few queues, need",
			       used_sq);
	if (lim->max_cqs < used_cq)
		return emu_bad(&d, "limits.max_cqs", "too few queues, need",
			       used_cq);
	if ((u32)lim->mqes + 1 < used_size)
		return emu_bad(&d, "limits.mqes", "queues too small, need",
			       used_size);
	if (lim->nr_vectors < used_vec)
		return emu_bad(&d, "limits.nr_vectors", "too few, need",
			       used_vec);
	if (lim->mdts && (!mdts || lim->mdts < mdts))
		return emu_bad(&d, "limits.mdts", "smaller than the source",
			       mdts);
	if ((emu_get_le32(sgls) & 3) && !(lim->sgls & 3))
		return emu_bad(&d, "limits.sgls", "SGLs not supported",
			       EMU_NOVAL);
	if (dbbuf && !(lim->oacs & EMU_OACS_DBBUF))
		return emu_bad(&d, "limits.oacs",
			       "Doorbell Buffer Config in use, not supported",
			       EMU_NOVAL);
	if ((emu_get_le16(oncs) & 0x4f) & ~lim->oncs)
		return emu_bad(&d, "limits.oncs", "optional commands missing",
			       emu_get_le16(oncs) & 0x4f & ~lim->oncs);
	/*
	 * Features the guest enabled, which the destination's VF must take
	 * back when it goes direct; a stable image has none yet, so what
	 * the source offers is what the guest may have enabled.
	 */
	src_vwc = have_feat ? f_vwc & 1 : vwc & 1;
	src_ps = have_feat ? f_pm & 0x1f : 0;
	src_ka = have_feat ? f_kato != 0 : emu_get_le16(kas) != 0;
	if (src_vwc && !(lim->vwc & 1))
		return emu_bad(&d, "features.vwc",
			       "volatile write cache enabled, none here",
			       EMU_NOVAL);
	if (src_ps > lim->npss)
		return emu_bad(&d, "features.power_state",
			       "beyond the destination's NPSS, power state",
			       src_ps);
	if (src_ka && !lim->kas)
		return emu_bad(&d, "features.keep_alive",
			       "Keep Alive in use, not supported", EMU_NOVAL);
	return 0;
}
