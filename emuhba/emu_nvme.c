// SPDX-License-Identifier: GPL-2.0-only
/*
 * emuhba NVMe controller model: registers, doorbells, queue processing,
 * completion posting, interrupts, and the switch between observing a VF and
 * running the emulation.
 */
#include "emu_nvme_int.h"

size_t emu_nvme_ctrl_size(void)
{
	return sizeof(struct emu_nvme_ctrl);
}

static size_t emu_puts(char *err, size_t errlen, size_t pos, const char *s)
{
	while (*s && pos + 1 < errlen)
		err[pos++] = *s++;
	return pos;
}

void emu_msg(char *err, size_t errlen, const char *field, const char *why,
	     u64 val)
{
	char num[24];
	size_t pos;
	int n = (int)sizeof(num) - 1;

	if (!err || !errlen)
		return;
	pos = emu_puts(err, errlen, 0, field);
	pos = emu_puts(err, errlen, pos, ": ");
	pos = emu_puts(err, errlen, pos, why);
	if (val != (u64)-1) {
		num[n] = '\0';
		do {
			num[--n] = (char)('0' + val % 10);
			val /= 10;
		} while (val && n > 0);
		pos = emu_puts(err, errlen, pos, " (");
		pos = emu_puts(err, errlen, pos, num + n);
		pos = emu_puts(err, errlen, pos, ")");
	}
	err[pos] = '\0';
}

void emu_nvme_init(struct emu_nvme_ctrl *ctrl, const struct emu_host_ops *ops,
		   void *host)
{
	u16 i;

	ctrl->ops = ops;
	ctrl->host = host;
	ctrl->mode = EMU_NVME_MODE_OBSERVE;
	for (i = 0; i < EMU_NVME_MAX_REQS; i++) {
		ctrl->reqs[i].state = EMU_REQ_FREE;
		ctrl->reqs[i].next_free = i + 1;
	}
	ctrl->free_head = 0;
	ctrl->done_head = EMU_NVME_MAX_REQS;
	emu_nvme_feat_defaults(ctrl);
}

enum emu_nvme_mode emu_nvme_get_mode(const struct emu_nvme_ctrl *ctrl)
{
	return (enum emu_nvme_mode)ctrl->mode;
}

const struct emu_nvme_state *emu_nvme_state(const struct emu_nvme_ctrl *ctrl)
{
	return &ctrl->st;
}

u32 emu_nvme_inflight(const struct emu_nvme_ctrl *ctrl)
{
	return ctrl->nr_inflight;
}

bool emu_nvme_cq_counts_one_sq(const struct emu_nvme_ctrl *ctrl, u16 cqid)
{
	return cqid < EMU_NVME_NR_Q && ctrl->cq_sqs[cqid] <= 1;
}

struct emu_nvme_req *emu_nvme_req_get(struct emu_nvme_ctrl *ctrl)
{
	struct emu_nvme_req *req;

	if (ctrl->free_head >= EMU_NVME_MAX_REQS)
		return NULL;
	req = &ctrl->reqs[ctrl->free_head];
	ctrl->free_head = req->next_free;
	req->state = EMU_REQ_BLK;
	req->aborted = 0;
	req->range_idx = 0;
	req->nr_ranges = 0;
	req->buf_len = 0;
	req->xfer = 0;
	memset(&req->blk, 0, sizeof(req->blk));
	ctrl->nr_inflight++;
	return req;
}

void emu_nvme_req_put(struct emu_nvme_ctrl *ctrl, struct emu_nvme_req *req)
{
	if (req->blk.buf)
		ctrl->ops->buf_free(ctrl->host, req->blk.buf, req->buf_len);
	req->blk.buf = NULL;
	req->state = EMU_REQ_FREE;
	req->next_free = ctrl->free_head;
	ctrl->free_head = (u16)(req - ctrl->reqs);
	ctrl->nr_inflight--;
}

/* Identity ------------------------------------------------------------ */

struct emu_nvme_idpage *emu_nvme_find_id(struct emu_nvme_state *st, u8 cns,
					 u8 csi, u32 nsid)
{
	int i;

	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++) {
		struct emu_nvme_idpage *p = &st->id.pages[i];

		if (!p->valid || p->cns != cns)
			continue;
		if (cns == EMU_CNS_CTRL)
			return p;
		if (p->csi == csi && p->nsid == nsid)
			return p;
	}
	return NULL;
}

int emu_nvme_store_id(struct emu_nvme_state *st, u8 cns, u8 csi, u32 nsid,
		      u16 cntid, const void *page)
{
	struct emu_nvme_idpage *p = emu_nvme_find_id(st, cns, csi, nsid);
	int i;

	/* Lists depend on the starting NSID; the model builds them. */
	if (cns == EMU_CNS_NS_LIST)
		return 0;
	for (i = 0; !p && i < EMU_NVME_MAX_IDPAGES; i++)
		if (!st->id.pages[i].valid)
			p = &st->id.pages[i];
	if (!p)
		return -ENOSPC;
	p->valid = 1;
	p->cns = cns;
	p->csi = csi;
	p->nsid = cns == EMU_CNS_CTRL ? 0 : nsid;
	p->cntid = cntid;
	memcpy(p->data, page, EMU_NVME_PAGE);
	return 0;
}

static void emu_nvme_parse_ns(struct emu_nvme_nsrt *ns, u32 nsid,
			      const u8 *id)
{
	u8 flbas = id[26];
	u32 fmt = (flbas & 0xf) | ((flbas >> 1) & 0x30);
	const u8 *lbaf;

	ns->nsid = nsid;
	ns->nsze = emu_get_le64(id);
	ns->usable = 0;
	ns->lba_shift = 9;
	if (fmt >= 64)
		return;
	lbaf = id + 128 + 4 * fmt;
	ns->lba_shift = lbaf[2];
	/* Metadata would need a second data stream the model lacks. */
	ns->usable = emu_get_le16(lbaf) == 0 && lbaf[2] >= 9 && lbaf[2] <= 16;
}

void emu_nvme_refresh_identity(struct emu_nvme_ctrl *ctrl)
{
	struct emu_nvme_state *st = &ctrl->st;
	struct emu_nvme_idpage *c = emu_nvme_find_id(st, EMU_CNS_CTRL, 0, 0);
	u32 i, j, mps_min;

	ctrl->nr_ns = 0;
	ctrl->mdts_bytes = 0;
	ctrl->oacs = 0;
	ctrl->oncs = 0;
	ctrl->sgls = 0;
	ctrl->aerl = 0;
	ctrl->elpe = 0;
	if (c) {
		mps_min = 12 + ((st->id.cap >> 48) & 0xf);
		if (c->data[EMU_IDC_MDTS] &&
		    c->data[EMU_IDC_MDTS] + mps_min < 31)
			ctrl->mdts_bytes = 1U << (c->data[EMU_IDC_MDTS] +
						  mps_min);
		ctrl->oacs = emu_get_le16(c->data + EMU_IDC_OACS);
		ctrl->oncs = emu_get_le16(c->data + EMU_IDC_ONCS);
		ctrl->sgls = emu_get_le32(c->data + EMU_IDC_SGLS);
		ctrl->aerl = EMU_MIN(c->data[EMU_IDC_AERL],
				     EMU_NVME_MAX_AER - 1);
		ctrl->elpe = c->data[EMU_IDC_ELPE];
	}
	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++) {
		struct emu_nvme_idpage *p = &st->id.pages[i];
		struct emu_nvme_nsrt ns;

		/* An inactive NSID reads as a zeroed page. */
		if (!p->valid || ctrl->nr_ns >= EMU_NVME_MAX_NS ||
		    !emu_ns_served(p->cns, p->csi, p->nsid,
				   emu_get_le64(p->data)))
			continue;
		emu_nvme_parse_ns(&ns, p->nsid, p->data);
		/* Keep the table sorted by NSID for the active list. */
		for (j = ctrl->nr_ns; j > 0 && ctrl->ns[j - 1].nsid > ns.nsid;
		     j--)
			ctrl->ns[j] = ctrl->ns[j - 1];
		ctrl->ns[j] = ns;
		ctrl->nr_ns++;
	}
}

const struct emu_nvme_nsrt *emu_nvme_ns(const struct emu_nvme_ctrl *ctrl,
					u32 nsid)
{
	u32 i;

	for (i = 0; i < ctrl->nr_ns; i++)
		if (ctrl->ns[i].nsid == nsid)
			return &ctrl->ns[i];
	return NULL;
}

int emu_nvme_set_hw(struct emu_nvme_ctrl *ctrl, u64 cap, u32 vs,
		    u16 nr_vectors, u16 max_sqs, u16 max_cqs)
{
	struct emu_nvme_identity *id = &ctrl->st.id;

	if (!nr_vectors || nr_vectors > EMU_NVME_MAX_VEC ||
	    !max_sqs || !max_cqs)
		return -EINVAL;
	id->cap = cap;
	id->vs = vs;
	id->nr_vectors = nr_vectors;
	id->max_sqs = EMU_MIN(max_sqs, EMU_NVME_MAX_QID);
	id->max_cqs = EMU_MIN(max_cqs, EMU_NVME_MAX_QID);
	emu_nvme_refresh_identity(ctrl);
	/* Defaults derive from the identity; never undo what was learned. */
	if (!(ctrl->st.regs.cc & EMU_CC_EN))
		emu_nvme_feat_defaults(ctrl);
	return 0;
}

int emu_nvme_set_identity(struct emu_nvme_ctrl *ctrl,
			  const struct emu_nvme_identity *id)
{
	if (ctrl->mode != EMU_NVME_MODE_OBSERVE ||
	    (ctrl->st.regs.cc & EMU_CC_EN))
		return -EBUSY;
	ctrl->st.id = *id;
	emu_nvme_refresh_identity(ctrl);
	emu_nvme_feat_defaults(ctrl);
	return 0;
}

static bool emu_idpage_same(const struct emu_nvme_idpage *p,
			    const struct emu_nvme_idpage *q)
{
	return p->cns == q->cns && p->csi == q->csi && p->nsid == q->nsid &&
	       p->cntid == q->cntid && !memcmp(p->data, q->data, sizeof(p->data));
}

/* Every valid page of x has its twin in y. */
static bool emu_idpages_in(const struct emu_nvme_identity *x,
			   const struct emu_nvme_identity *y)
{
	int i, j;

	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++) {
		if (!x->pages[i].valid)
			continue;
		for (j = 0; j < EMU_NVME_MAX_IDPAGES; j++)
			if (y->pages[j].valid &&
			    emu_idpage_same(&x->pages[i], &y->pages[j]))
				break;
		if (j == EMU_NVME_MAX_IDPAGES)
			return false;
	}
	return true;
}

bool emu_nvme_identity_same(const struct emu_nvme_identity *x,
			    const struct emu_nvme_identity *y)
{
	return x->cap == y->cap && x->vs == y->vs && emu_idpages_in(x, y) &&
	       emu_idpages_in(y, x);
}

int emu_nvme_load_identify(struct emu_nvme_ctrl *ctrl, u8 cns, u8 csi,
			   u32 nsid, u16 cntid, const void *page)
{
	int ret = emu_nvme_store_id(&ctrl->st, cns, csi, nsid, cntid, page);

	if (!ret)
		emu_nvme_refresh_identity(ctrl);
	if (!ret && cns == EMU_CNS_CTRL && !(ctrl->st.regs.cc & EMU_CC_EN))
		emu_nvme_feat_defaults(ctrl);
	return ret;
}

void emu_nvme_get_limits(const struct emu_nvme_ctrl *ctrl,
			 struct emu_nvme_limits *lim)
{
	const struct emu_nvme_state *st = &ctrl->st;
	u32 i;

	memset(lim, 0, sizeof(*lim));
	lim->max_sqs = st->id.max_sqs;
	lim->max_cqs = st->id.max_cqs;
	lim->mqes = (u16)(st->id.cap & 0xffff);
	lim->nr_vectors = st->id.nr_vectors;
	lim->mpsmin = (u8)((st->id.cap >> 48) & 0xf);
	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++) {
		const u8 *idc = st->id.pages[i].data;

		if (!st->id.pages[i].valid ||
		    st->id.pages[i].cns != EMU_CNS_CTRL)
			continue;
		lim->mdts = idc[EMU_IDC_MDTS];
		lim->vwc = idc[EMU_IDC_VWC];
		lim->npss = idc[EMU_IDC_NPSS];
		lim->kas = emu_get_le16(idc + EMU_IDC_KAS);
	}
	lim->sgls = ctrl->sgls;
	lim->oacs = ctrl->oacs;
	lim->oncs = ctrl->oncs;
	lim->nr_ns = (u8)ctrl->nr_ns;
	for (i = 0; i < ctrl->nr_ns; i++) {
		struct emu_nvme_ns_limits *n = &lim->ns[i];
		const struct emu_nvme_idpage *p;
		u32 off;

		n->nsid = ctrl->ns[i].nsid;
		n->nsze = ctrl->ns[i].nsze;
		n->lba_shift = ctrl->ns[i].lba_shift;
		p = emu_nvme_find_id((struct emu_nvme_state *)st, EMU_CNS_NS,
				     0, n->nsid);
		if (p) {
			memcpy(n->nguid, p->data + 104, 16);
			memcpy(n->eui64, p->data + 120, 8);
		}
		p = emu_nvme_find_id((struct emu_nvme_state *)st,
				     EMU_CNS_NS_DESC, 0, n->nsid);
		/* Descriptors override the (possibly zero) NS page fields. */
		for (off = 0; p && off + 4 <= EMU_NVME_PAGE;) {
			u8 t = p->data[off], l = p->data[off + 1];

			if (!t || off + 4 + l > EMU_NVME_PAGE)
				break;
			if (t == 1 && l == 8)
				memcpy(n->eui64, p->data + off + 4, 8);
			if (t == 2 && l == 16)
				memcpy(n->nguid, p->data + off + 4, 16);
			off += 4 + l;
		}
	}
}

/* Features and queue tables --------------------------------------------- */

void emu_nvme_feat_defaults(struct emu_nvme_ctrl *ctrl)
{
	emu_nvme_feat_fill_defaults(ctrl, &ctrl->st.feat);
}

/* What a reset leaves, and what Get Features reports as default. */
void emu_nvme_feat_fill_defaults(struct emu_nvme_ctrl *ctrl,
				 struct emu_nvme_features *f)
{
	struct emu_nvme_idpage *c;
	u32 v, t;

	memset(f, 0, sizeof(*f));
	for (t = 0; t < 9; t++) {
		f->temp_thr[t][0] = 0xffff;
		f->temp_thr[t][1] = 0;
	}
	/* 70 degrees Celsius on the composite sensor. */
	f->temp_thr[0][0] = 343;
	c = emu_nvme_find_id(&ctrl->st, EMU_CNS_CTRL, 0, 0);
	if (c && (c->data[EMU_IDC_VWC] & 1))
		f->vwc = 1;
	if (ctrl->st.id.max_sqs && ctrl->st.id.max_cqs)
		f->nq = ((u32)(ctrl->st.id.max_cqs - 1) << 16) |
			(u32)(ctrl->st.id.max_sqs - 1);
	for (v = 0; v < EMU_NVME_MAX_VEC; v++)
		f->ivc[v] = v;
}

void emu_nvme_queue_reset(struct emu_nvme_ctrl *ctrl)
{
	struct emu_nvme_state *st = &ctrl->st;
	u32 i;

	for (i = 0; i < EMU_NVME_MAX_REQS; i++)
		if (ctrl->reqs[i].state != EMU_REQ_FREE)
			ctrl->reqs[i].aborted = 1;
	memset(st->sq, 0, sizeof(st->sq));
	memset(st->cq, 0, sizeof(st->cq));
	memset(ctrl->sq_inflight, 0, sizeof(ctrl->sq_inflight));
	memset(ctrl->cq_reserved, 0, sizeof(ctrl->cq_reserved));
	memset(ctrl->sq_deleting, 0, sizeof(ctrl->sq_deleting));
	memset(ctrl->cq_sqs, 0, sizeof(ctrl->cq_sqs));
	memset(ctrl->cq_head_guess, 0, sizeof(ctrl->cq_head_guess));
	ctrl->nr_unrec = 0;
	memset(ctrl->vec, 0, sizeof(ctrl->vec));
	memset(&st->aer, 0, sizeof(st->aer));
	memset(&st->dbbuf, 0, sizeof(st->dbbuf));
	ctrl->ei_len = 0;
	emu_nvme_feat_defaults(ctrl);
}

/* Completions and interrupts ------------------------------------------- */

static u32 emu_cq_used(const struct emu_nvme_cq *cq)
{
	return (u32)(cq->tail + cq->size - cq->head) % cq->size;
}

static u32 emu_cq_free(const struct emu_nvme_ctrl *ctrl, u16 cqid)
{
	const struct emu_nvme_cq *cq = &ctrl->st.cq[cqid];
	u32 used = emu_cq_used(cq) + ctrl->cq_reserved[cqid];

	return used + 1 >= cq->size ? 0 : cq->size - 1 - used;
}

static void emu_fatal(struct emu_nvme_ctrl *ctrl)
{
	ctrl->st.regs.csts |= EMU_CSTS_CFS;
}

static bool emu_cq_write(struct emu_nvme_ctrl *ctrl, u16 sqid, u16 cid,
			 u16 status, u32 dw0)
{
	struct emu_nvme_sq *sq = &ctrl->st.sq[sqid];
	struct emu_nvme_cq *cq = &ctrl->st.cq[sq->cqid];
	u8 cqe[EMU_NVME_CQE];
	u16 sf;

	if (!sq->valid || !cq->valid)
		return false;
	sf = (u16)((status << 1) | cq->phase);
	emu_put_le32(cqe, dw0);
	emu_put_le32(cqe + 4, 0);
	emu_put_le16(cqe + 8, sq->head);
	emu_put_le16(cqe + 10, sqid);
	emu_put_le16(cqe + 12, cid);
	emu_put_le16(cqe + 14, sf);
	if (ctrl->ops->dma_write(ctrl->host, cq->base + (u64)cq->tail * 16,
				 cqe, EMU_NVME_CQE)) {
		emu_fatal(ctrl);
		return false;
	}
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase ^= 1;
	}
	if (cq->ien && cq->vector < EMU_NVME_MAX_VEC) {
		struct emu_nvme_vec *v = &ctrl->vec[cq->vector];

		if (!v->pending)
			v->first_ns = ctrl->ops->now_ns(ctrl->host);
		if (v->pending < EMU_NVME_MAX_PENDING)
			v->pending++;
		/*
		 * "Interrupts for commands that complete in error should not
		 * be coalesced" (Interrupt Coalescing, FID 08h): the guest
		 * hears of a failure at once, with what is pending with it.
		 */
		if (status & 0x7ff)
			v->urgent = 1;
	}
	if (status & 0x7ff)
		emu_nvme_log_error(ctrl, sqid, cid, sf);
	return true;
}

void emu_nvme_cq_release(struct emu_nvme_ctrl *ctrl, u16 sqid)
{
	u16 cqid = ctrl->st.sq[sqid].cqid;

	if (ctrl->cq_reserved[cqid])
		ctrl->cq_reserved[cqid]--;
	if (ctrl->sq_inflight[sqid] && !--ctrl->sq_inflight[sqid] &&
	    ctrl->sq_deleting[sqid])
		emu_nvme_sq_deleted(ctrl, sqid);
}

bool emu_nvme_cq_post(struct emu_nvme_ctrl *ctrl, u16 sqid, u16 cid,
		      u16 status, u32 dw0)
{
	bool ok;

	ctrl->cmds++;
	ok = emu_cq_write(ctrl, sqid, cid, status, dw0);
	emu_nvme_cq_release(ctrl, sqid);
	return ok;
}

void emu_nvme_irq_flush(struct emu_nvme_ctrl *ctrl)
{
	u32 thr = ctrl->st.feat.irq_coal & 0xff;
	u64 time = (u64)((ctrl->st.feat.irq_coal >> 8) & 0xff) * 100000;
	u32 nr = EMU_MIN(ctrl->st.id.nr_vectors, EMU_NVME_MAX_VEC);
	u64 now = 0;
	u32 v;

	for (v = 0; v < nr; v++) {
		struct emu_nvme_vec *vec = &ctrl->vec[v];
		bool coalesce;

		if (!vec->pending)
			continue;
		if (v < 32 && (ctrl->st.regs.intms & EMU_BIT(v)))
			continue;
		/*
		 * The admin queue's vector is never coalesced: the feature
		 * "applies only to the I/O Submission and I/O Completion
		 * Queues" (5.21.1.8), nor is one holding an error entry. An
		 * Aggregation Time of 0h "corresponds to no delay": the
		 * threshold alone never holds an interrupt back, or a guest
		 * waiting on fewer commands than the threshold would wait
		 * for ever.
		 */
		coalesce = v && !(ctrl->st.feat.ivc[v] & EMU_BIT(16)) && time &&
			   !vec->urgent;
		if (coalesce && vec->pending < thr + 1) {
			if (!now)
				now = ctrl->ops->now_ns(ctrl->host);
			if (now - vec->first_ns < time)
				continue;
		}
		vec->pending = 0;
		vec->urgent = 0;
		ctrl->ops->irq_raise(ctrl->host, (u16)v);
	}
}

u64 emu_nvme_timer_ns(const struct emu_nvme_ctrl *ctrl)
{
	u64 time = (u64)((ctrl->st.feat.irq_coal >> 8) & 0xff) * 100000;
	u32 nr = EMU_MIN(ctrl->st.id.nr_vectors, EMU_NVME_MAX_VEC);
	u64 due = 0;
	u32 v;

	if (!time)
		return 0;
	for (v = 1; v < nr; v++) {
		const struct emu_nvme_vec *vec = &ctrl->vec[v];

		if (!vec->pending || (ctrl->st.feat.ivc[v] & EMU_BIT(16)))
			continue;
		if (!due || vec->first_ns + time < due)
			due = vec->first_ns + time;
	}
	return due;
}

/*
 * sf: the completion entry's Status Field with its Phase Tag in bit 0, as
 * the Error Information log entry holds it (bytes 12-13).
 */
void emu_nvme_log_error(struct emu_nvme_ctrl *ctrl, u16 sqid, u16 cid,
			u16 sf)
{
	struct emu_nvme_logs *l = &ctrl->st.logs;
	u8 *e;

	l->err_count++;
	memmove(l->err[1], l->err[0], sizeof(l->err[0]) *
		(EMU_NVME_MAX_ERRLOG - 1));
	e = l->err[0];
	memset(e, 0, 64);
	emu_put_le64(e, l->err_count);
	emu_put_le16(e + 8, sqid);
	emu_put_le16(e + 10, cid);
	emu_put_le16(e + 12, sf);
	emu_put_le16(e + 14, 0xffff);
}

/* Asynchronous events --------------------------------------------------- */

void emu_nvme_aer_process(struct emu_nvme_ctrl *ctrl)
{
	struct emu_nvme_aer *a = &ctrl->st.aer;
	u32 i;

	if (ctrl->mode != EMU_NVME_MODE_RUN ||
	    !(ctrl->st.regs.csts & EMU_CSTS_RDY) || !ctrl->st.cq[0].valid)
		return;
	for (i = 0; i < a->nr_events && a->nr_cid;) {
		u32 ev = a->events[i];
		u8 type = ev & 7;

		if (a->masked & EMU_BIT(type)) {
			i++;
			continue;
		}
		if (!emu_cq_free(ctrl, 0))
			return;
		if (!emu_cq_write(ctrl, 0, a->cid[0], 0, ev))
			return;
		ctrl->cmds++;
		a->masked |= EMU_BIT(type);
		a->nr_cid--;
		memmove(&a->cid[0], &a->cid[1], a->nr_cid * sizeof(a->cid[0]));
		a->nr_events--;
		memmove(&a->events[i], &a->events[i + 1],
			(a->nr_events - i) * sizeof(a->events[0]));
	}
}

void emu_nvme_async_event(struct emu_nvme_ctrl *ctrl, u8 type, u8 info,
			  u8 lid)
{
	struct emu_nvme_aer *a = &ctrl->st.aer;
	u32 ev = (u32)(type & 7) | ((u32)info << 8) | ((u32)lid << 16);
	u32 aec = ctrl->st.feat.aec;
	u32 i;

	/*
	 * AEC bits 7:0 follow the SMART log's Critical Warning bits: spare
	 * (0), temperature (1), reliability (2); the event information
	 * numbers them reliability (0), temperature (1), spare (2).
	 */
	if (type == EMU_AET_SMART &&
	    !((info == EMU_AEI_SMART_RELIABILITY && (aec & EMU_BIT(2))) ||
	      (info == EMU_AEI_SMART_TEMP && (aec & EMU_BIT(1))) ||
	      (info == EMU_AEI_SMART_SPARE && (aec & EMU_BIT(0)))))
		return;
	if (type == EMU_AET_NOTICE && !(info < 8 && (aec & EMU_BIT(8 + info))))
		return;
	for (i = 0; i < a->nr_events; i++)
		if (a->events[i] == ev)
			return;
	if (a->nr_events >= EMU_NVME_MAX_EVENTS)
		return;
	a->events[a->nr_events++] = ev;
	emu_nvme_aer_process(ctrl);
	emu_nvme_irq_flush(ctrl);
}

void emu_nvme_ns_changed(struct emu_nvme_ctrl *ctrl, u32 nsid)
{
	struct emu_nvme_logs *l = &ctrl->st.logs;
	u32 i;

	for (i = 0; i < l->nr_changed_ns; i++)
		if (l->changed_ns[i] == nsid)
			break;
	/* An overflowed list stays so until read: a host rescans all. */
	if (l->nr_changed_ns == 1 && l->changed_ns[0] == 0xffffffff)
		i = 0;
	if (i == l->nr_changed_ns) {
		if (l->nr_changed_ns < EMU_NVME_MAX_NS) {
			l->changed_ns[l->nr_changed_ns++] = nsid;
		} else {
			/* More than the list holds: report overflow. */
			l->changed_ns[0] = 0xffffffff;
			l->nr_changed_ns = 1;
		}
	}
	emu_nvme_async_event(ctrl, EMU_AET_NOTICE, 0, 0x04);
}

/* Registers ------------------------------------------------------------ */

bool emu_nvme_cc_valid(u64 cap, const struct emu_nvme_regs *r)
{
	u32 cc = r->cc;
	u32 css = (cc >> 4) & 7, mps = (cc >> 7) & 0xf, ams = (cc >> 11) & 7;
	u32 capcss = (cap >> 37) & 0xff;
	u32 mqes = (u32)(cap & 0xffff) + 1;
	u64 sq_end, cq_end;

	if (mps < ((cap >> 48) & 0xf) || mps > ((cap >> 52) & 0xf))
		return false;
	if (!((css == 0 && (capcss & 1)) || (css == 6 && (capcss & 0x40)) ||
	      (css == 7 && (capcss & 0x80))))
		return false;
	if (ams && !(ams == 1 && (cap & EMU_BIT(17))))
		return false;
	if ((r->aqa & 0xfff) < 1 || ((r->aqa >> 16) & 0xfff) < 1 ||
	    (r->aqa & 0xfff) + 1 > mqes || ((r->aqa >> 16) & 0xfff) + 1 > mqes)
		return false;
	/* ASQB and ACQB are memory page aligned, by CC.MPS. */
	if ((r->asq | r->acq) & ((4096ULL << mps) - 1))
		return false;
	/* Rings at IOVA 0, wrapping or sharing memory are the host's bug. */
	sq_end = r->asq + ((r->aqa & 0xfff) + 1) * (u64)EMU_NVME_SQE - 1;
	cq_end = r->acq + (((r->aqa >> 16) & 0xfff) + 1) * (u64)EMU_NVME_CQE - 1;
	if (!r->asq || !r->acq || sq_end < r->asq || cq_end < r->acq)
		return false;
	return r->asq > cq_end || r->acq > sq_end;
}

static void emu_ctrl_enable(struct emu_nvme_ctrl *ctrl)
{
	struct emu_nvme_state *st = &ctrl->st;

	if (!emu_nvme_cc_valid(st->id.cap, &st->regs))
		return;
	memset(&st->sq[0], 0, sizeof(st->sq[0]));
	memset(&st->cq[0], 0, sizeof(st->cq[0]));
	st->sq[0].base = st->regs.asq;
	st->sq[0].size = (u16)((st->regs.aqa & 0xfff) + 1);
	st->sq[0].valid = 1;
	st->sq[0].pc = 1;
	st->cq[0].base = st->regs.acq;
	st->cq[0].size = (u16)(((st->regs.aqa >> 16) & 0xfff) + 1);
	st->cq[0].phase = 1;
	st->cq[0].ien = 1;
	st->cq[0].pc = 1;
	st->cq[0].valid = 1;
	st->regs.csts &= ~(EMU_CSTS_SHST_MASK | EMU_CSTS_CFS);
	st->regs.csts |= EMU_CSTS_RDY;
}

/* Finish a reset or shutdown once the backend gave every request back. */
static void emu_settle(struct emu_nvme_ctrl *ctrl)
{
	struct emu_nvme_regs *r = &ctrl->st.regs;

	if (ctrl->nr_inflight)
		return;
	if (ctrl->resetting) {
		ctrl->resetting = 0;
		r->csts &= ~(EMU_CSTS_RDY | EMU_CSTS_SHST_MASK | EMU_CSTS_CFS);
		if (ctrl->nssr_pending)
			r->csts |= EMU_CSTS_NSSRO;
		ctrl->nssr_pending = 0;
	}
	if (ctrl->shutting) {
		ctrl->shutting = 0;
		r->csts = (r->csts & ~EMU_CSTS_SHST_MASK) | EMU_CSTS_SHST_CMPLT;
	}
}

static void emu_ctrl_reset(struct emu_nvme_ctrl *ctrl)
{
	emu_nvme_queue_reset(ctrl);
	ctrl->resetting = 1;
	ctrl->shutting = 0;
	emu_settle(ctrl);
}

static void emu_cc_write(struct emu_nvme_ctrl *ctrl, u32 val)
{
	struct emu_nvme_regs *r = &ctrl->st.regs;
	u32 old = r->cc;
	/* EN, CSS, MPS, AMS, SHN, IOSQES, IOCQES, CRIME */
	u32 mask = 0x01fffff1;

	if (old & EMU_CC_EN) {
		/* Only EN and SHN may change while enabled. */
		val = (old & ~(EMU_CC_EN | EMU_CC_SHN_MASK)) |
		      (val & (EMU_CC_EN | EMU_CC_SHN_MASK));
	}
	r->cc = val & mask;
	if ((old & EMU_CC_EN) && !(val & EMU_CC_EN)) {
		emu_ctrl_reset(ctrl);
		return;
	}
	if (!(old & EMU_CC_EN) && (val & EMU_CC_EN)) {
		if (!(r->csts & EMU_CSTS_RDY) && !ctrl->resetting)
			emu_ctrl_enable(ctrl);
		return;
	}
	if ((val & EMU_CC_SHN_MASK) && !(old & EMU_CC_SHN_MASK) &&
	    (val & EMU_CC_EN)) {
		r->csts = (r->csts & ~EMU_CSTS_SHST_MASK) | EMU_CSTS_SHST_OCCUR;
		ctrl->shutting = 1;
		emu_settle(ctrl);
	}
}

u64 emu_nvme_reg_read(struct emu_nvme_ctrl *ctrl, u32 off, u32 size)
{
	const struct emu_nvme_regs *r = &ctrl->st.regs;
	u32 base = off & ~7U;
	u64 v;

	switch (base) {
	case EMU_REG_CAP:
		v = ctrl->st.id.cap;
		break;
	case EMU_REG_VS:
		v = ctrl->st.id.vs | ((u64)r->intms << 32);
		break;
	case EMU_REG_INTMC:
		v = r->intms | ((u64)r->cc << 32);
		break;
	case EMU_REG_CSTS - 4:
		v = (u64)r->csts << 32;
		break;
	case EMU_REG_NSSR:
		v = (u64)r->aqa << 32;
		break;
	case EMU_REG_ASQ:
		v = r->asq;
		break;
	case EMU_REG_ACQ:
		v = r->acq;
		break;
	default:
		v = 0;
	}
	if (off & 4)
		v >>= 32;
	if (size != 8 || (off & 4))
		v &= 0xffffffff;
	return v;
}

static void emu_reg_write32(struct emu_nvme_ctrl *ctrl, u32 off, u32 val)
{
	struct emu_nvme_regs *r = &ctrl->st.regs;
	bool en = r->cc & EMU_CC_EN;

	switch (off) {
	case EMU_REG_INTMS:
		r->intms |= val;
		break;
	case EMU_REG_INTMC:
		r->intms &= ~val;
		emu_nvme_irq_flush(ctrl);
		break;
	case EMU_REG_CC:
		emu_cc_write(ctrl, val);
		break;
	case EMU_REG_CSTS:
		if (val & EMU_CSTS_NSSRO)
			r->csts &= ~EMU_CSTS_NSSRO;
		break;
	case EMU_REG_NSSR:
		if (val == EMU_NSSR_MAGIC && (ctrl->st.id.cap & (1ULL << 36))) {
			r->cc = 0;
			emu_ctrl_reset(ctrl);
			ctrl->nssr_pending = ctrl->resetting;
			if (!ctrl->resetting)
				r->csts |= EMU_CSTS_NSSRO;
		}
		break;
	/* The admin queue attributes are fixed while enabled. */
	case EMU_REG_AQA:
		if (!en)
			r->aqa = val & 0x0fff0fff;
		break;
	case EMU_REG_ASQ:
		if (!en)
			r->asq = (r->asq & ~0xffffffffULL) | (val & ~0xfffU);
		break;
	case EMU_REG_ASQ + 4:
		if (!en)
			r->asq = (r->asq & 0xffffffffULL) | ((u64)val << 32);
		break;
	case EMU_REG_ACQ:
		if (!en)
			r->acq = (r->acq & ~0xffffffffULL) | (val & ~0xfffU);
		break;
	case EMU_REG_ACQ + 4:
		if (!en)
			r->acq = (r->acq & 0xffffffffULL) | ((u64)val << 32);
		break;
	default:
		break;
	}
}

void emu_nvme_reg_write(struct emu_nvme_ctrl *ctrl, u32 off, u64 val,
			u32 size)
{
	if (ctrl->mode != EMU_NVME_MODE_RUN || (off & 3))
		return;
	if (off >= EMU_REG_DBS) {
		emu_nvme_doorbell_write(ctrl, off, (u32)val);
		return;
	}
	emu_reg_write32(ctrl, off, (u32)val);
	if (size == 8)
		emu_reg_write32(ctrl, off + 4, (u32)(val >> 32));
}

/* Doorbells ------------------------------------------------------------ */

static u32 emu_db_stride(const struct emu_nvme_ctrl *ctrl)
{
	return 4U << ((ctrl->st.id.cap >> 32) & 0xf);
}

static bool emu_cq_head_ok(const struct emu_nvme_cq *cq, u32 val)
{
	/* The host can only free entries the controller has posted. */
	return val < cq->size &&
	       (val + cq->size - cq->head) % cq->size <= emu_cq_used(cq);
}

void emu_nvme_doorbell_write(struct emu_nvme_ctrl *ctrl, u32 off, u32 val)
{
	struct emu_nvme_state *st = &ctrl->st;
	u32 stride = emu_db_stride(ctrl);
	u32 idx, qid;
	u8 v[4];

	if (ctrl->mode != EMU_NVME_MODE_RUN || off < EMU_REG_DBS ||
	    !(st->regs.csts & EMU_CSTS_RDY) || ctrl->resetting)
		return;
	idx = (off - EMU_REG_DBS) / stride;
	qid = idx / 2;
	if ((off - EMU_REG_DBS) % stride || qid > EMU_NVME_MAX_QID ||
	    (idx & 1 ? !st->cq[qid].valid : !st->sq[qid].valid)) {
		emu_nvme_async_event(ctrl, EMU_AET_ERROR, 0, 0x01);
		return;
	}
	/*
	 * With a shadow doorbell buffer an I/O queue's register write only
	 * says "look": the host wrote the value to the buffer first, and
	 * emu_dbbuf_read() takes it from there on every poll. The glue hands
	 * register writes over after the fact, so the value written may be
	 * older than one the buffer already gave: only its range can be
	 * judged.
	 */
	if (qid && st->dbbuf.enabled) {
		if (val >= (idx & 1 ? st->cq[qid].size : st->sq[qid].size))
			emu_nvme_async_event(ctrl, EMU_AET_ERROR, 1, 0x01);
		return;
	}
	if (!(idx & 1)) {
		if (val >= st->sq[qid].size) {
			emu_nvme_async_event(ctrl, EMU_AET_ERROR, 1, 0x01);
			return;
		}
		st->sq[qid].tail = (u16)val;
	} else {
		if (ctrl->cq_head_guess[qid] && val < st->cq[qid].size) {
			ctrl->cq_head_guess[qid] = 0;
		} else if (!emu_cq_head_ok(&st->cq[qid], val)) {
			emu_nvme_async_event(ctrl, EMU_AET_ERROR, 1, 0x01);
			return;
		}
		st->cq[qid].head = (u16)val;
	}
	/*
	 * Linux never shadows the admin queue; keep its shadow slot equal to
	 * the register so that both views agree (the spec requires the host
	 * to keep them equal, and a trap makes enforcing it cheap).
	 */
	if (!qid && st->dbbuf.enabled) {
		emu_put_le32(v, val);
		ctrl->ops->dma_write(ctrl->host, st->dbbuf.dbs + idx * stride,
				     v, 4);
	}
}

static u32 emu_dbbuf_maxq(const struct emu_nvme_ctrl *ctrl)
{
	u32 qid, maxq = 0;

	for (qid = 1; qid < EMU_NVME_NR_Q; qid++)
		if (ctrl->st.sq[qid].valid || ctrl->st.cq[qid].valid)
			maxq = qid;
	return maxq;
}

/* Slot idx of a shadow buffer; ~0 when unreadable. */
static u32 emu_dbbuf_slot(struct emu_nvme_ctrl *ctrl, u64 base, u32 idx)
{
	u32 stride = emu_db_stride(ctrl);
	u8 v[4];

	if (stride == 4)
		return emu_get_le32(ctrl->db_buf + 4 * idx);
	if (ctrl->ops->dma_read(ctrl->host, base + (u64)idx * stride, v, 4))
		return ~0U;
	return emu_get_le32(v);
}

static void emu_dbbuf_read(struct emu_nvme_ctrl *ctrl)
{
	struct emu_nvme_state *st = &ctrl->st;
	u32 qid, maxq = emu_dbbuf_maxq(ctrl);

	if (!maxq)
		return;
	/* With the usual 4-byte stride one read covers every slot. */
	if (emu_db_stride(ctrl) == 4 &&
	    ctrl->ops->dma_read(ctrl->host, st->dbbuf.dbs, ctrl->db_buf,
				8 * (maxq + 1)))
		return;
	for (qid = 1; qid <= maxq; qid++) {
		struct emu_nvme_sq *sq = &st->sq[qid];
		struct emu_nvme_cq *cq = &st->cq[qid];
		u32 t, h;

		if (sq->valid) {
			t = emu_dbbuf_slot(ctrl, st->dbbuf.dbs, 2 * qid);
			if (t < sq->size)
				sq->tail = (u16)t;
		}
		if (cq->valid) {
			h = emu_dbbuf_slot(ctrl, st->dbbuf.dbs, 2 * qid + 1);
			if (emu_cq_head_ok(cq, h))
				cq->head = (u16)h;
		}
	}
}

static void emu_dbbuf_eventidx(struct emu_nvme_ctrl *ctrl)
{
	struct emu_nvme_state *st = &ctrl->st;
	u32 qid, len, maxq = emu_dbbuf_maxq(ctrl);
	u32 stride = emu_db_stride(ctrl);
	u8 *b = ctrl->db_buf;

	/*
	 * EventIdx = the position already consumed: the guest rings the
	 * doorbell register for its next submission, so a host that traps
	 * doorbells learns about new work without polling memory.
	 */
	memset(b, 0, 8);
	for (qid = 1; qid <= maxq; qid++) {
		emu_put_le32(b + 8 * qid, st->sq[qid].valid ? st->sq[qid].tail :
			     0);
		emu_put_le32(b + 8 * qid + 4, st->cq[qid].valid ?
			     st->cq[qid].head : 0);
	}
	len = 8 * (maxq + 1);
	/* Unchanged values are not written: each write dirties a page. */
	if (ctrl->ei_len == len && !memcmp(ctrl->ei_cache, b, len))
		return;
	if (stride == 4 &&
	    ctrl->ops->dma_write(ctrl->host, st->dbbuf.eis, b, len))
		return;
	for (qid = 1; stride != 4 && qid <= maxq; qid++) {
		ctrl->ops->dma_write(ctrl->host, st->dbbuf.eis +
				     2ULL * qid * stride, b + 8 * qid, 4);
		ctrl->ops->dma_write(ctrl->host, st->dbbuf.eis +
				     (2ULL * qid + 1) * stride, b + 8 * qid + 4,
				     4);
	}
	memcpy(ctrl->ei_cache, b, len);
	ctrl->ei_len = len;
}

/* Queue processing ----------------------------------------------------- */

static bool emu_running(const struct emu_nvme_ctrl *ctrl)
{
	u32 csts = ctrl->st.regs.csts;

	return ctrl->mode == EMU_NVME_MODE_RUN && (csts & EMU_CSTS_RDY) &&
	       !(csts & (EMU_CSTS_CFS | EMU_CSTS_SHST_MASK)) &&
	       !ctrl->resetting;
}

static int emu_sq_process(struct emu_nvme_ctrl *ctrl, u16 qid, int max)
{
	struct emu_nvme_sq *sq = &ctrl->st.sq[qid];
	int done = 0;

	while (done < max && sq->valid && sq->head != sq->tail &&
	       !ctrl->sq_deleting[qid] && emu_running(ctrl)) {
		u32 avail = sq->tail >= sq->head ? sq->tail - sq->head :
			    sq->size - sq->head;
		u32 n = EMU_MIN(avail, (u32)(max - done));
		u32 i, cqfree = emu_cq_free(ctrl, sq->cqid);

		n = EMU_MIN(n, EMU_ARRAY_SIZE(ctrl->sqe_buf) / EMU_NVME_SQE);
		n = EMU_MIN(n, cqfree);
		if (!n)
			break;
		if (ctrl->ops->dma_read(ctrl->host,
					sq->base + (u64)sq->head * EMU_NVME_SQE,
					ctrl->sqe_buf, n * EMU_NVME_SQE)) {
			emu_fatal(ctrl);
			break;
		}
		for (i = 0; i < n; i++) {
			const u8 *sqe = ctrl->sqe_buf + i * EMU_NVME_SQE;
			u16 old = sq->head;

			if (!sq->valid || ctrl->sq_deleting[qid] ||
			    !emu_running(ctrl))
				return done;
			sq->head = (u16)((sq->head + 1) % sq->size);
			ctrl->cq_reserved[sq->cqid]++;
			ctrl->sq_inflight[qid]++;
			if (!qid) {
				emu_nvme_admin_exec(ctrl, sqe);
			} else if (emu_nvme_io_exec(ctrl, qid, sqe) ==
				   -EAGAIN) {
				sq->head = old;
				ctrl->cq_reserved[sq->cqid]--;
				ctrl->sq_inflight[qid]--;
				return done;
			}
			done++;
		}
	}
	return done;
}

/*
 * Commands one SQ may issue per arbitration round. With weighted round
 * robin (CC.AMS = 001b), QPRIO picks the weight from the Arbitration
 * feature; urgent queues are only limited by the burst.
 */
static u32 emu_sq_burst(const struct emu_nvme_ctrl *ctrl, u16 qid, u32 burst)
{
	u32 arb = ctrl->st.feat.arb, w;

	if (((ctrl->st.regs.cc >> 11) & 7) != 1)
		return burst;
	switch (ctrl->st.sq[qid].qprio) {
	case 1:
		w = (arb >> 24) & 0xff;
		break;
	case 2:
		w = (arb >> 16) & 0xff;
		break;
	case 3:
		w = (arb >> 8) & 0xff;
		break;
	default:
		return burst;
	}
	return EMU_MIN(burst, w + 1);
}

int emu_nvme_poll(struct emu_nvme_ctrl *ctrl, int budget)
{
	struct emu_nvme_state *st = &ctrl->st;
	u32 burst, ab = st->feat.arb & 7;
	int done = 0, n;
	bool progress = true;
	u16 i, qid;

	if (ctrl->nr_retry)
		emu_nvme_io_retry(ctrl);
	emu_settle(ctrl);
	if (!emu_running(ctrl))
		goto out;
	if (st->dbbuf.enabled)
		emu_dbbuf_read(ctrl);
	done += emu_sq_process(ctrl, 0, budget);
	burst = ab == 7 ? 0xffff : 1U << ab;
	while (progress && done < budget) {
		progress = false;
		for (i = 0; i < EMU_NVME_MAX_QID && done < budget; i++) {
			qid = (u16)(1 + (ctrl->rr_next + i) % EMU_NVME_MAX_QID);
			if (!st->sq[qid].valid)
				continue;
			n = (int)emu_sq_burst(ctrl, qid, burst);
			n = emu_sq_process(ctrl, qid,
					   EMU_MIN(n, budget - done));
			if (n) {
				progress = true;
				done += n;
			}
		}
		ctrl->rr_next = (u16)((ctrl->rr_next + 1) % EMU_NVME_MAX_QID);
	}
	if (st->dbbuf.enabled)
		emu_dbbuf_eventidx(ctrl);
out:
	emu_nvme_done_drain(ctrl);
	emu_settle(ctrl);
	emu_nvme_aer_process(ctrl);
	emu_nvme_irq_flush(ctrl);
	return done;
}

/*
 * A backend may complete inside blk_submit. Finishing the command there
 * would nest (a Dataset Management range submits the next one from its
 * completion), so such completions queue up and finish iteratively.
 */
int emu_nvme_blk_submit(struct emu_nvme_ctrl *ctrl, struct emu_nvme_req *req)
{
	int ret;

	ctrl->in_submit++;
	ret = ctrl->ops->blk_submit(ctrl->host, &req->blk);
	ctrl->in_submit--;
	return ret;
}

static void emu_req_finish(struct emu_nvme_ctrl *ctrl,
			   struct emu_nvme_req *req, int status)
{
	if (req->aborted)
		emu_nvme_req_put(ctrl, req);
	else
		emu_nvme_io_done(ctrl, req, status);
}

void emu_nvme_done_drain(struct emu_nvme_ctrl *ctrl)
{
	while (!ctrl->in_submit && ctrl->done_head < EMU_NVME_MAX_REQS) {
		struct emu_nvme_req *req = &ctrl->reqs[ctrl->done_head];

		ctrl->done_head = req->next_done;
		req->state = EMU_REQ_BLK;
		emu_req_finish(ctrl, req, req->status);
	}
}

void emu_nvme_blk_complete(struct emu_nvme_ctrl *ctrl,
			   struct emu_blk_req *blk, int status)
{
	struct emu_nvme_req *req = (struct emu_nvme_req *)blk;
	size_t idx = (size_t)(req - ctrl->reqs);

	if (idx >= EMU_NVME_MAX_REQS || &ctrl->reqs[idx] != req ||
	    req->state != EMU_REQ_BLK)
		return;
	if (ctrl->in_submit) {
		req->state = EMU_REQ_DONE;
		req->status = status;
		req->next_done = EMU_NVME_MAX_REQS;
		if (ctrl->done_head >= EMU_NVME_MAX_REQS)
			ctrl->done_head = (u16)idx;
		else
			ctrl->reqs[ctrl->done_tail].next_done = (u16)idx;
		ctrl->done_tail = (u16)idx;
		return;
	}
	emu_req_finish(ctrl, req, status);
	/* A completion frees backend capacity for a busy retry. */
	if (ctrl->nr_retry)
		emu_nvme_io_retry(ctrl);
	emu_nvme_done_drain(ctrl);
	emu_settle(ctrl);
	emu_nvme_aer_process(ctrl);
	emu_nvme_irq_flush(ctrl);
}

/* Mode switches -------------------------------------------------------- */

void emu_nvme_start_disabled(struct emu_nvme_ctrl *ctrl)
{
	emu_nvme_queue_reset(ctrl);
	memset(&ctrl->st.regs, 0, sizeof(ctrl->st.regs));
	ctrl->mode = EMU_NVME_MODE_RUN;
}

int emu_nvme_check(const struct emu_nvme_ctrl *ctrl, char *err, size_t errlen)
{
	if (ctrl->nr_unrec) {
		emu_msg(err, errlen, "queue", "created on the VF, not placeable",
			ctrl->unrec_qid);
		return -EINVAL;
	}
	return emu_nvme_state_check(&ctrl->st, err, errlen);
}

int emu_nvme_takeover(struct emu_nvme_ctrl *ctrl,
		      const struct emu_nvme_positions *pos,
		      char *err, size_t errlen)
{
	struct emu_nvme_state *st = &ctrl->st;
	u32 qid;

	if (ctrl->mode != EMU_NVME_MODE_OBSERVE) {
		emu_msg(err, errlen, "mode", "not observing", (u64)-1);
		return -EINVAL;
	}
	if (!(st->regs.cc & EMU_CC_EN) || !st->sq[0].valid) {
		emu_msg(err, errlen, "cc.en", "controller not enabled",
			(u64)-1);
		return -EINVAL;
	}
	/*
	 * The host's check before the switch does not cover the queues the
	 * guest created between it and this moment: a queue the model cannot
	 * hold would never be served.
	 */
	if (ctrl->nr_unrec) {
		emu_msg(err, errlen, "queue", "created on the VF, not placeable",
			ctrl->unrec_qid);
		return -EINVAL;
	}
	for (qid = 0; qid < EMU_NVME_NR_Q; qid++) {
		const struct emu_nvme_qpos *p = &pos->q[qid];

		if (st->sq[qid].valid && (p->sq_head >= st->sq[qid].size ||
					  p->sq_tail >= st->sq[qid].size)) {
			emu_msg(err, errlen, "sq position", "out of range",
				qid);
			return -EINVAL;
		}
		if (st->cq[qid].valid && (p->cq_head >= st->cq[qid].size ||
					  p->cq_tail >= st->cq[qid].size ||
					  p->cq_phase > 1)) {
			emu_msg(err, errlen, "cq position", "out of range",
				qid);
			return -EINVAL;
		}
	}
	/* Check on a copy: a refused takeover leaves the model as it was. */
	memcpy(&ctrl->stage, st, sizeof(*st));
	st = &ctrl->stage;
	for (qid = 0; qid < EMU_NVME_NR_Q; qid++) {
		const struct emu_nvme_qpos *p = &pos->q[qid];

		if (st->sq[qid].valid) {
			st->sq[qid].head = p->sq_head;
			st->sq[qid].tail = p->sq_tail;
		}
		if (st->cq[qid].valid) {
			st->cq[qid].head = p->cq_head;
			st->cq[qid].tail = p->cq_tail;
			st->cq[qid].phase = p->cq_phase;
		}
	}

	st->regs.csts = (st->regs.csts & ~(EMU_CSTS_CFS | EMU_CSTS_SHST_MASK))
			| EMU_CSTS_RDY;
	if (emu_nvme_state_check(st, err, errlen))
		return -EINVAL;
	memcpy(&ctrl->st, st, sizeof(*st));
	for (qid = 0; qid < EMU_NVME_NR_Q; qid++)
		ctrl->cq_head_guess[qid] = st->cq[qid].valid &&
			(pos->q[qid].flags & EMU_QPOS_CQ_HEAD_GUESS);
	ctrl->ei_len = 0;
	emu_nvme_refresh_identity(ctrl);
	memset(ctrl->vec, 0, sizeof(ctrl->vec));
	memset(ctrl->sq_inflight, 0, sizeof(ctrl->sq_inflight));
	memset(ctrl->cq_reserved, 0, sizeof(ctrl->cq_reserved));
	memset(ctrl->sq_deleting, 0, sizeof(ctrl->sq_deleting));
	ctrl->mode = EMU_NVME_MODE_RUN;
	emu_nvme_aer_process(ctrl);
	return 0;
}

int emu_nvme_handback(struct emu_nvme_ctrl *ctrl)
{
	if (ctrl->nr_inflight)
		return -EBUSY;
	ctrl->mode = EMU_NVME_MODE_OBSERVE;
	return 0;
}
