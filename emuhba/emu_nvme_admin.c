// SPDX-License-Identifier: GPL-2.0-only
/*
 * emuhba NVMe model: admin command set, and the admin observer that learns
 * the same state from a VF executing the guest's admin queue.
 */
#include "emu_nvme_int.h"

static void emu_done(struct emu_nvme_ctrl *ctrl, u16 cid, u16 status,
		     u32 dw0)
{
	/* Retrying a malformed admin command cannot succeed. */
	if (status)
		status |= EMU_SC_DNR;
	emu_nvme_cq_post(ctrl, 0, cid, status, dw0);
}

static u32 emu_nn(struct emu_nvme_ctrl *ctrl)
{
	struct emu_nvme_idpage *c = emu_nvme_find_id(&ctrl->st, EMU_CNS_CTRL,
						     0, 0);

	return c ? emu_get_le32(c->data + EMU_IDC_NN) : 0;
}

static const u8 *emu_idc(struct emu_nvme_ctrl *ctrl)
{
	struct emu_nvme_idpage *c = emu_nvme_find_id(&ctrl->st, EMU_CNS_CTRL,
						     0, 0);
	static const u8 zero[EMU_NVME_PAGE];

	return c ? c->data : zero;
}

/* Identify --------------------------------------------------------------- */

static u16 emu_ns_desc(struct emu_nvme_ctrl *ctrl, u32 nsid, u8 *buf)
{
	struct emu_nvme_idpage *p = emu_nvme_find_id(&ctrl->st, EMU_CNS_NS, 0,
						     nsid);
	static const u8 zero[16];
	u32 off = 0;

	/* Same identifiers as the captured namespace page, as descriptors. */
	if (!p)
		return EMU_SC_INVALID_NS;
	if (memcmp(p->data + 120, zero, 8)) {
		buf[off] = 1;
		buf[off + 1] = 8;
		memcpy(buf + off + 4, p->data + 120, 8);
		off += 12;
	}
	if (memcmp(p->data + 104, zero, 16)) {
		buf[off] = 2;
		buf[off + 1] = 16;
		memcpy(buf + off + 4, p->data + 104, 16);
		off += 20;
	}
	buf[off] = 4;
	buf[off + 1] = 1;
	return EMU_SC_SUCCESS;
}

/* The data of an Identify into buf (EMU_NVME_PAGE bytes); its status. */
static u16 emu_identify_build(struct emu_nvme_ctrl *ctrl, const u8 *sqe,
			      u8 *buf)
{
	u32 dw10 = emu_sqe_dw(sqe, 10), nsid = emu_sqe_nsid(sqe);
	u8 cns = dw10 & 0xff, csi = emu_sqe_dw(sqe, 11) >> 24;
	struct emu_nvme_idpage *p;
	u32 nn = emu_nn(ctrl), i, n;
	u16 st = EMU_SC_SUCCESS;

	memset(buf, 0, EMU_NVME_PAGE);
	switch (cns) {
	case EMU_CNS_CTRL:
		p = emu_nvme_find_id(&ctrl->st, cns, 0, 0);
		if (!p)
			return EMU_SC_INVALID_FIELD;
		memcpy(buf, p->data, EMU_NVME_PAGE);
		break;
	case EMU_CNS_NS:
		if (!nsid || (nsid > nn && nsid != 0xffffffff))
			return EMU_SC_INVALID_NS;
		p = emu_nvme_find_id(&ctrl->st, cns, 0, nsid);
		if (p)
			memcpy(buf, p->data, EMU_NVME_PAGE);
		else if (nsid == 0xffffffff)
			return EMU_SC_INVALID_NS;
		break;
	case EMU_CNS_NS_LIST:
		if (nsid >= 0xfffffffe)
			return EMU_SC_INVALID_NS;
		for (i = 0, n = 0; i < ctrl->nr_ns; i++)
			if (ctrl->ns[i].nsid > nsid)
				emu_put_le32(buf + 4 * n++, ctrl->ns[i].nsid);
		break;
	case EMU_CNS_NS_DESC:
		if (!nsid || nsid > nn)
			return EMU_SC_INVALID_NS;
		p = emu_nvme_find_id(&ctrl->st, cns, 0, nsid);
		if (p)
			memcpy(buf, p->data, EMU_NVME_PAGE);
		else if (emu_nvme_ns(ctrl, nsid))
			st = emu_ns_desc(ctrl, nsid, buf);
		else
			st = EMU_SC_INVALID_NS;
		break;
	default:
		p = emu_nvme_find_id(&ctrl->st, cns, csi, nsid);
		if (!p)
			return EMU_SC_INVALID_FIELD;
		memcpy(buf, p->data, EMU_NVME_PAGE);
	}
	return st;
}

static u16 emu_identify(struct emu_nvme_ctrl *ctrl, const u8 *sqe)
{
	u16 st = emu_identify_build(ctrl, sqe, ctrl->scratch);

	if (st)
		return st;
	return emu_nvme_xfer(ctrl, sqe, true, ctrl->scratch, EMU_NVME_PAGE,
			     true);
}

u16 emu_nvme_identify_answer(struct emu_nvme_ctrl *ctrl, const void *sqe,
			     void *buf)
{
	u16 st = emu_identify_build(ctrl, sqe, buf);

	/* As emu_done() posts it. */
	return st ? st | EMU_SC_DNR : st;
}

/* Log pages ------------------------------------------------------------ */

static void emu_put_u128(u8 *p, u64 v)
{
	emu_put_le64(p, v);
	emu_put_le64(p + 8, 0);
}

/* The composite temperature the model reports: 50 degrees Celsius. */
#define EMU_SMART_TEMP_K	323

/* At or over its over-temperature, at or under its under-temperature. */
static bool emu_temp_warning(const struct emu_nvme_features *f)
{
	return f->temp_thr[0][0] <= EMU_SMART_TEMP_K ||
	       f->temp_thr[0][1] >= EMU_SMART_TEMP_K;
}

static u32 emu_build_log(struct emu_nvme_ctrl *ctrl, u8 lid, u8 *buf)
{
	struct emu_nvme_logs *l = &ctrl->st.logs;
	const u8 *idc = emu_idc(ctrl);
	u32 i, n;

	memset(buf, 0, EMU_NVME_PAGE);
	switch (lid) {
	case 0x01:
		n = EMU_MIN((u32)ctrl->elpe + 1, (u32)EMU_NVME_PAGE / 64);
		for (i = 0; i < n && i < EMU_NVME_MAX_ERRLOG; i++)
			memcpy(buf + 64 * i, l->err[i], 64);
		return n * 64;
	case 0x02:
		if (emu_temp_warning(&ctrl->st.feat))
			buf[0] |= EMU_BIT(1);	/* temperature */
		emu_put_le16(buf + 1, EMU_SMART_TEMP_K);
		buf[3] = 100;			/* available spare */
		buf[4] = 10;			/* spare threshold */
		/* Thousands of 512-byte units, rounded up (NVMe 2.0 5.16.1.3). */
		emu_put_u128(buf + 32, l->data_units_read / 1000 +
			     !!(l->data_units_read % 1000));
		emu_put_u128(buf + 48, l->data_units_written / 1000 +
			     !!(l->data_units_written % 1000));
		emu_put_u128(buf + 64, l->host_reads);
		emu_put_u128(buf + 80, l->host_writes);
		emu_put_u128(buf + 160, l->err_count);
		return 512;
	case 0x03:
		buf[0] = 1;
		memcpy(buf + 8, idc + EMU_IDC_FR, 8);
		return 512;
	case 0x04:
		for (i = 0; i < l->nr_changed_ns; i++)
			emu_put_le32(buf + 4 * i, l->changed_ns[i]);
		return EMU_NVME_PAGE;
	case 0x05: {
		static const u8 adm[] = { EMU_ADM_DELETE_SQ, EMU_ADM_CREATE_SQ,
			EMU_ADM_GET_LOG, EMU_ADM_DELETE_CQ, EMU_ADM_CREATE_CQ,
			EMU_ADM_IDENTIFY, EMU_ADM_ABORT, EMU_ADM_SET_FEAT,
			EMU_ADM_GET_FEAT, EMU_ADM_AER, EMU_ADM_KEEP_ALIVE };
		static const u8 io[] = { EMU_IO_FLUSH, EMU_IO_WRITE,
			EMU_IO_READ, EMU_IO_COMPARE, EMU_IO_WRITE_ZEROES,
			EMU_IO_DSM };

		for (i = 0; i < sizeof(adm); i++)
			emu_put_le32(buf + 4 * adm[i], 1);
		if (ctrl->oacs & EMU_OACS_DBBUF)
			emu_put_le32(buf + 4 * EMU_ADM_DBBUF, 1);
		for (i = 0; i < sizeof(io); i++)
			/* CSUPP, and LBCC for the commands that write */
			emu_put_le32(buf + 1024 + 4 * io[i],
				     io[i] == EMU_IO_WRITE ||
				     io[i] == EMU_IO_WRITE_ZEROES ||
				     io[i] == EMU_IO_DSM ? 3 : 1);
		return EMU_NVME_PAGE;
	}
	default:
		return 0;
	}
}

static void emu_log_read(struct emu_nvme_ctrl *ctrl, u8 lid, bool rae)
{
	struct emu_nvme_aer *a = &ctrl->st.aer;

	if (lid == 0x04)
		ctrl->st.logs.nr_changed_ns = 0;
	if (rae)
		return;
	if (lid == 0x01)
		a->masked &= ~EMU_BIT(EMU_AET_ERROR);
	else if (lid == 0x02)
		a->masked &= ~EMU_BIT(EMU_AET_SMART);
	else if (lid == 0x04)
		a->masked &= ~EMU_BIT(EMU_AET_NOTICE);
}

static u16 emu_get_log(struct emu_nvme_ctrl *ctrl, const u8 *sqe)
{
	u32 dw10 = emu_sqe_dw(sqe, 10);
	u8 lid = dw10 & 0xff;
	bool rae = dw10 & EMU_BIT(15);
	u64 numd = ((u64)(emu_sqe_dw(sqe, 11) & 0xffff) << 16) | (dw10 >> 16);
	u64 off = emu_sqe_dw(sqe, 12) | ((u64)emu_sqe_dw(sqe, 13) << 32);
	u64 len = (numd + 1) * 4;
	u32 size;
	u16 st;

	size = emu_build_log(ctrl, lid, ctrl->scratch);
	if (!size)
		return EMU_SC_INVALID_LOG_PAGE;
	if ((off & 3) || off >= size || len > EMU_NVME_PAGE)
		return EMU_SC_INVALID_FIELD;
	memmove(ctrl->scratch, ctrl->scratch + off, size - off);
	memset(ctrl->scratch + size - off, 0, EMU_NVME_PAGE - (size - off));
	st = emu_nvme_xfer(ctrl, sqe, true, ctrl->scratch, (u32)len, true);
	if (!st)
		emu_log_read(ctrl, lid, rae);
	return st;
}

/* Features --------------------------------------------------------------- */

#define EMU_FEAT_ARB		0x01
#define EMU_FEAT_PM		0x02
#define EMU_FEAT_TEMP		0x04
#define EMU_FEAT_ERR_REC	0x05
#define EMU_FEAT_VWC		0x06
#define EMU_FEAT_NQ		0x07
#define EMU_FEAT_IRQ_COAL	0x08
#define EMU_FEAT_IVC		0x09
#define EMU_FEAT_ATOMIC		0x0a
#define EMU_FEAT_AEC		0x0b
#define EMU_FEAT_APST		0x0c
#define EMU_FEAT_TIMESTAMP	0x0e
#define EMU_FEAT_KATO		0x0f
#define EMU_FEAT_HCTM		0x10
#define EMU_FEAT_NOPSC		0x11
#define EMU_FEAT_HBS		0x16
#define EMU_FEAT_SWPM		0x80

static bool emu_feat_supported(struct emu_nvme_ctrl *ctrl, u8 fid)
{
	const u8 *idc = emu_idc(ctrl);

	switch (fid) {
	case EMU_FEAT_ARB:
	case EMU_FEAT_PM:
	case EMU_FEAT_TEMP:
	case EMU_FEAT_ERR_REC:
	case EMU_FEAT_NQ:
	case EMU_FEAT_IRQ_COAL:
	case EMU_FEAT_IVC:
	case EMU_FEAT_ATOMIC:
	case EMU_FEAT_AEC:
	case EMU_FEAT_KATO:
	case EMU_FEAT_NOPSC:
	case EMU_FEAT_HBS:
	case EMU_FEAT_SWPM:
		return true;
	case EMU_FEAT_VWC:
		return idc[EMU_IDC_VWC] & 1;
	case EMU_FEAT_APST:
		return idc[EMU_IDC_APSTA] & 1;
	case EMU_FEAT_TIMESTAMP:
		return ctrl->oncs & EMU_ONCS_TIMESTAMP;
	case EMU_FEAT_HCTM:
		return emu_get_le16(idc + EMU_IDC_HCTMA) & 1;
	default:
		return false;
	}
}

static u32 emu_feat_data_len(u8 fid)
{
	switch (fid) {
	case EMU_FEAT_APST:
		return 256;
	case EMU_FEAT_TIMESTAMP:
		return 8;
	case EMU_FEAT_HBS:
		return 512;
	default:
		return 0;
	}
}

static bool emu_io_queues_exist(struct emu_nvme_ctrl *ctrl)
{
	u32 q;

	for (q = 1; q < EMU_NVME_NR_Q; q++)
		if (ctrl->st.sq[q].valid || ctrl->st.cq[q].valid)
			return true;
	return false;
}

/*
 * Apply Set Features. data holds the command's data buffer when the
 * feature has one. observe: the VF already accepted it, only record.
 */
static u16 emu_feat_set(struct emu_nvme_ctrl *ctrl, const u8 *sqe,
			const u8 *data, u32 cqe_dw0, bool observe, u32 *dw0)
{
	struct emu_nvme_features *f = &ctrl->st.feat;
	u32 dw11 = emu_sqe_dw(sqe, 11);
	u8 fid = emu_sqe_dw(sqe, 10) & 0xff;
	const u8 *idc = emu_idc(ctrl);
	u32 i, tmpsel, thsel, nsq, ncq;

	switch (fid) {
	case EMU_FEAT_ARB:
		f->arb = dw11;
		break;
	case EMU_FEAT_PM:
		if ((dw11 & 0x1f) > idc[263])
			return EMU_SC_INVALID_FIELD;
		f->pm = dw11 & 0xff;
		break;
	case EMU_FEAT_TEMP:
		tmpsel = (dw11 >> 16) & 0xf;
		thsel = (dw11 >> 20) & 3;
		if (tmpsel > 8 || thsel > 1)
			return EMU_SC_INVALID_FIELD;
		f->temp_thr[tmpsel][thsel] = dw11 & 0xffff;
		/*
		 * A threshold the temperature now crosses; while the model
		 * only observes, the VF reports it itself.
		 */
		if (!observe && emu_temp_warning(f))
			emu_nvme_async_event(ctrl, EMU_AET_SMART,
					     EMU_AEI_SMART_TEMP, 0x02);
		break;
	case EMU_FEAT_ERR_REC:
		/* Deallocated blocks read as zeroes, never as errors. */
		if (dw11 & EMU_BIT(16))
			return EMU_SC_INVALID_FIELD;
		f->err_rec = dw11 & 0xffff;
		break;
	case EMU_FEAT_VWC:
		f->vwc = dw11 & 1;
		break;
	case EMU_FEAT_NQ:
		if (observe) {
			/*
			 * What the guest may use: a VF of another model than
			 * the guest's identity may grant more than the
			 * identity has, and the model serves the identity.
			 */
			nsq = cqe_dw0 & 0xffff;
			ncq = cqe_dw0 >> 16;
			if (nsq > (u32)ctrl->st.id.max_sqs - 1)
				nsq = ctrl->st.id.max_sqs - 1;
			if (ncq > (u32)ctrl->st.id.max_cqs - 1)
				ncq = ctrl->st.id.max_cqs - 1;
			f->nq = ncq << 16 | nsq;
			f->nq_set = 1;
			break;
		}
		if (emu_io_queues_exist(ctrl))
			return EMU_SC_CMD_SEQ_ERROR;
		nsq = dw11 & 0xffff;
		ncq = dw11 >> 16;
		if (nsq == 0xffff || ncq == 0xffff)
			return EMU_SC_INVALID_FIELD;
		/* Like the VF: grant what it has, the host takes the min. */
		f->nq = ((u32)(ctrl->st.id.max_cqs - 1) << 16) |
			(u32)(ctrl->st.id.max_sqs - 1);
		f->nq_set = 1;
		*dw0 = f->nq;
		break;
	case EMU_FEAT_IRQ_COAL:
		f->irq_coal = dw11 & 0xffff;
		break;
	case EMU_FEAT_IVC:
		i = dw11 & 0xffff;
		if (i >= ctrl->st.id.nr_vectors || i >= EMU_NVME_MAX_VEC)
			return EMU_SC_INVALID_FIELD;
		f->ivc[i] = dw11 & 0x1ffff;
		break;
	case EMU_FEAT_ATOMIC:
		f->atomic = dw11 & 1;
		break;
	case EMU_FEAT_AEC:
		f->aec = dw11;
		break;
	case EMU_FEAT_APST:
		f->apst_en = dw11 & 1;
		for (i = 0; data && i < 32; i++)
			f->apst[i] = emu_get_le64(data + 8 * i);
		break;
	case EMU_FEAT_TIMESTAMP:
		if (data) {
			f->ts_value = emu_get_le64(data) & 0xffffffffffffULL;
			f->ts_set_ns = ctrl->ops->now_ns(ctrl->host) | 1;
		}
		break;
	case EMU_FEAT_KATO:
		f->kato = dw11;
		break;
	case EMU_FEAT_HCTM:
		f->hctm = dw11;
		break;
	case EMU_FEAT_NOPSC:
		f->nopsc = dw11 & 1;
		break;
	case EMU_FEAT_HBS:
		if (data)
			memcpy(f->hbs, data, sizeof(f->hbs));
		break;
	case EMU_FEAT_SWPM:
		f->swpm = dw11 & 0xff;
		break;
	default:
		return EMU_SC_INVALID_FIELD;
	}
	return EMU_SC_SUCCESS;
}

static u32 emu_feat_value(const struct emu_nvme_features *f, u8 fid, u32 dw11)
{
	u32 tmpsel, thsel;

	switch (fid) {
	case EMU_FEAT_ARB:
		return f->arb;
	case EMU_FEAT_PM:
		return f->pm;
	case EMU_FEAT_TEMP:
		tmpsel = (dw11 >> 16) & 0xf;
		thsel = (dw11 >> 20) & 3;
		if (tmpsel > 8 || thsel > 1)
			return 0;
		return f->temp_thr[tmpsel][thsel] | (tmpsel << 16) |
		       (thsel << 20);
	case EMU_FEAT_ERR_REC:
		return f->err_rec;
	case EMU_FEAT_VWC:
		return f->vwc;
	case EMU_FEAT_NQ:
		return f->nq;
	case EMU_FEAT_IRQ_COAL:
		return f->irq_coal;
	case EMU_FEAT_IVC:
		return (dw11 & 0xffff) < EMU_NVME_MAX_VEC ?
		       f->ivc[dw11 & 0xffff] : 0;
	case EMU_FEAT_ATOMIC:
		return f->atomic;
	case EMU_FEAT_AEC:
		return f->aec;
	case EMU_FEAT_APST:
		return f->apst_en;
	case EMU_FEAT_KATO:
		return f->kato;
	case EMU_FEAT_HCTM:
		return f->hctm;
	case EMU_FEAT_NOPSC:
		return f->nopsc;
	case EMU_FEAT_SWPM:
		return f->swpm;
	default:
		return 0;
	}
}

static void emu_feat_data(struct emu_nvme_ctrl *ctrl,
			  const struct emu_nvme_features *f, u8 fid, u8 *buf)
{
	u64 ts;
	u32 i;

	memset(buf, 0, 512);
	switch (fid) {
	case EMU_FEAT_APST:
		for (i = 0; i < 32; i++)
			emu_put_le64(buf + 8 * i, f->apst[i]);
		break;
	case EMU_FEAT_TIMESTAMP:
		ts = f->ts_value;
		if (f->ts_set_ns)
			ts += (ctrl->ops->now_ns(ctrl->host) - f->ts_set_ns) /
			      1000000;
		emu_put_le64(buf, ts & 0xffffffffffffULL);
		/* Timestamp origin: set by a Set Features command. */
		buf[6] = f->ts_set_ns ? 0x2 : 0;
		break;
	case EMU_FEAT_HBS:
		memcpy(buf, f->hbs, sizeof(f->hbs));
		break;
	}
}

static u16 emu_set_features(struct emu_nvme_ctrl *ctrl, const u8 *sqe,
			    u32 *dw0)
{
	u32 dw10 = emu_sqe_dw(sqe, 10);
	u8 fid = dw10 & 0xff;
	u32 dlen = emu_feat_data_len(fid);
	u16 st;

	/*
	 * No feature is saveable, whether or not ONCS bit 4 says the Save
	 * field is supported: a saved value would have to survive a power
	 * cycle of a VF the model only stands in for. SV set is Feature
	 * Identifier Not Saveable (NVMe 2.0, Set Features, Save bit).
	 */
	if (dw10 & EMU_BIT(31))
		return EMU_SC_FEAT_NOT_SAVE;
	if (!emu_feat_supported(ctrl, fid))
		return EMU_SC_INVALID_FIELD;
	if (dlen) {
		st = emu_nvme_xfer(ctrl, sqe, true, ctrl->scratch, dlen, false);
		if (st)
			return st;
	}
	return emu_feat_set(ctrl, sqe, dlen ? ctrl->scratch : NULL, 0, false,
			    dw0);
}

static u16 emu_get_features(struct emu_nvme_ctrl *ctrl, const u8 *sqe,
			    u32 *dw0)
{
	u32 dw10 = emu_sqe_dw(sqe, 10), dw11 = emu_sqe_dw(sqe, 11);
	u8 fid = dw10 & 0xff, sel = (dw10 >> 8) & 7;
	u32 dlen = emu_feat_data_len(fid);
	const struct emu_nvme_features *f = &ctrl->st.feat;

	if (!emu_feat_supported(ctrl, fid))
		return EMU_SC_INVALID_FIELD;
	if (fid == EMU_FEAT_IVC &&
	    (dw11 & 0xffff) >= EMU_MIN((u32)ctrl->st.id.nr_vectors,
				       (u32)EMU_NVME_MAX_VEC))
		return EMU_SC_INVALID_FIELD;
	/* The sensors are 0 to 8, the thresholds over (0) and under (1). */
	if (fid == EMU_FEAT_TEMP &&
	    (((dw11 >> 16) & 0xf) > 8 || ((dw11 >> 20) & 3) > 1))
		return EMU_SC_INVALID_FIELD;
	switch (sel) {
	case 0:	/* current */
		*dw0 = emu_feat_value(f, fid, dw11);
		break;
	case 1:	/* default */
	case 2:	/* saved: nothing is saveable, so the default */
		emu_nvme_feat_fill_defaults(ctrl, &ctrl->feat_def);
		f = &ctrl->feat_def;
		*dw0 = emu_feat_value(f, fid, dw11);
		break;
	case 3:
		/*
		 * Changeable (bit 2), not saveable (bit 0). Bit 1 means
		 * namespace specific: no feature here is, not even the
		 * per-vector 09h or the per-sensor 04h.
		 */
		*dw0 = EMU_BIT(2);
		return EMU_SC_SUCCESS;
	default:
		return EMU_SC_INVALID_FIELD;
	}
	if (!dlen)
		return EMU_SC_SUCCESS;
	emu_feat_data(ctrl, f, fid, ctrl->scratch);
	return emu_nvme_xfer(ctrl, sqe, true, ctrl->scratch, dlen, true);
}

/* Queues ------------------------------------------------------------ */

/*
 * Ring memory a queue may use: not wrapping past the end of the IOVA space
 * and not shared with another queue, which a state image could not carry.
 */
static bool emu_ring_ok(const struct emu_nvme_state *st, u64 base, u64 len)
{
	u64 end = base + len - 1;
	u32 q;

	if (end < base)
		return false;
	for (q = 0; q < EMU_NVME_NR_Q; q++) {
		const struct emu_nvme_sq *sq = &st->sq[q];
		const struct emu_nvme_cq *cq = &st->cq[q];

		if (sq->valid && base <= sq->base + (sq->size * 64ULL - 1) &&
		    sq->base <= end)
			return false;
		if (cq->valid && base <= cq->base + (cq->size * 16ULL - 1) &&
		    cq->base <= end)
			return false;
	}
	return true;
}

static u16 emu_create_cq(struct emu_nvme_ctrl *ctrl, const u8 *sqe,
			 bool observe)
{
	struct emu_nvme_state *st = &ctrl->st;
	u32 dw10 = emu_sqe_dw(sqe, 10), dw11 = emu_sqe_dw(sqe, 11);
	u16 qid = dw10 & 0xffff, vec = dw11 >> 16;
	u32 size = (dw10 >> 16) + 1;
	u64 base = emu_get_le64(sqe + 24);
	struct emu_nvme_cq *cq;

	if (!qid || qid > EMU_NVME_MAX_QID)
		return EMU_SC_QID_INVALID;
	if (!observe) {
		if (qid > ((st->feat.nq >> 16) & 0xffff) + 1 ||
		    st->cq[qid].valid)
			return EMU_SC_QID_INVALID;
		if (size < 2 || size > emu_mqes(st))
			return EMU_SC_QUEUE_SIZE;
		if ((dw11 & 2) && vec >= st->id.nr_vectors)
			return EMU_SC_INVALID_VECTOR;
		if (!(dw11 & 1) || ((st->regs.cc >> 20) & 0xf) != 4)
			return EMU_SC_INVALID_FIELD;
		if (!base || (base & (emu_mps(ctrl) - 1)))
			return EMU_SC_PRP_INVALID_OFFSET;
		if (!emu_ring_ok(st, base, size * (u64)EMU_NVME_CQE))
			return EMU_SC_INVALID_FIELD;
	}
	if (size > 0xffff)
		return EMU_SC_QUEUE_SIZE;
	cq = &st->cq[qid];
	memset(cq, 0, sizeof(*cq));
	cq->base = base;
	cq->size = (u16)size;
	cq->vector = vec;
	cq->ien = (dw11 >> 1) & 1;
	cq->pc = dw11 & 1;
	cq->phase = 1;
	cq->valid = 1;
	ctrl->cq_reserved[qid] = 0;
	ctrl->cq_sqs[qid] = 0;
	ctrl->cq_head_guess[qid] = 0;
	return EMU_SC_SUCCESS;
}

static u16 emu_create_sq(struct emu_nvme_ctrl *ctrl, const u8 *sqe,
			 bool observe)
{
	struct emu_nvme_state *st = &ctrl->st;
	u32 dw10 = emu_sqe_dw(sqe, 10), dw11 = emu_sqe_dw(sqe, 11);
	u16 qid = dw10 & 0xffff, cqid = dw11 >> 16;
	u32 size = (dw10 >> 16) + 1;
	u64 base = emu_get_le64(sqe + 24);
	struct emu_nvme_sq *sq;

	if (!qid || qid > EMU_NVME_MAX_QID)
		return EMU_SC_QID_INVALID;
	if (!cqid || cqid > EMU_NVME_MAX_QID)
		return EMU_SC_CQ_INVALID;
	if (!observe) {
		if (!st->cq[cqid].valid)
			return EMU_SC_CQ_INVALID;
		if (qid > (st->feat.nq & 0xffff) + 1 || st->sq[qid].valid)
			return EMU_SC_QID_INVALID;
		if (size < 2 || size > emu_mqes(st))
			return EMU_SC_QUEUE_SIZE;
		if (!(dw11 & 1) || ((st->regs.cc >> 16) & 0xf) != 6)
			return EMU_SC_INVALID_FIELD;
		if (!base || (base & (emu_mps(ctrl) - 1)))
			return EMU_SC_PRP_INVALID_OFFSET;
		if (!emu_ring_ok(st, base, size * (u64)EMU_NVME_SQE))
			return EMU_SC_INVALID_FIELD;
	}
	if (size > 0xffff)
		return EMU_SC_QUEUE_SIZE;
	sq = &st->sq[qid];
	memset(sq, 0, sizeof(*sq));
	sq->base = base;
	sq->size = (u16)size;
	sq->cqid = cqid;
	sq->qprio = (dw11 >> 1) & 3;
	sq->pc = dw11 & 1;
	sq->valid = 1;
	ctrl->sq_inflight[qid] = 0;
	ctrl->sq_deleting[qid] = 0;
	if (ctrl->cq_sqs[cqid] < 0xff)
		ctrl->cq_sqs[cqid]++;
	return EMU_SC_SUCCESS;
}

void emu_nvme_sq_deleted(struct emu_nvme_ctrl *ctrl, u16 sqid)
{
	ctrl->sq_deleting[sqid] = 0;
	memset(&ctrl->st.sq[sqid], 0, sizeof(ctrl->st.sq[sqid]));
	emu_done(ctrl, ctrl->sq_del_cid[sqid], EMU_SC_SUCCESS, 0);
}

/* Returns true when the command completed now. */
static bool emu_delete_sq(struct emu_nvme_ctrl *ctrl, const u8 *sqe,
			  bool observe, u16 *status)
{
	u16 qid = emu_sqe_dw(sqe, 10) & 0xffff;

	*status = EMU_SC_SUCCESS;
	if (!qid || qid > EMU_NVME_MAX_QID || !ctrl->st.sq[qid].valid ||
	    ctrl->sq_deleting[qid]) {
		*status = EMU_SC_QID_INVALID;
		return true;
	}
	/*
	 * Commands the backend still holds complete first; the deletion
	 * completes with the last of them (emu_nvme_cq_release()).
	 */
	if (!observe && ctrl->sq_inflight[qid]) {
		ctrl->sq_deleting[qid] = 1;
		ctrl->sq_del_cid[qid] = emu_sqe_cid(sqe);
		return false;
	}
	memset(&ctrl->st.sq[qid], 0, sizeof(ctrl->st.sq[qid]));
	return true;
}

static u16 emu_delete_cq(struct emu_nvme_ctrl *ctrl, const u8 *sqe,
			 bool observe)
{
	u16 qid = emu_sqe_dw(sqe, 10) & 0xffff;
	u32 i;

	if (!qid || qid > EMU_NVME_MAX_QID || !ctrl->st.cq[qid].valid)
		return EMU_SC_QID_INVALID;
	for (i = 1; !observe && i < EMU_NVME_NR_Q; i++)
		if (ctrl->st.sq[i].valid && ctrl->st.sq[i].cqid == qid)
			return EMU_SC_INVALID_QDEL;
	memset(&ctrl->st.cq[qid], 0, sizeof(ctrl->st.cq[qid]));
	return EMU_SC_SUCCESS;
}

/* Doorbell Buffer Config ------------------------------------------------ */

static void emu_dbbuf_init(struct emu_nvme_ctrl *ctrl)
{
	struct emu_nvme_state *st = &ctrl->st;
	u8 *b = ctrl->db_buf;
	u32 q, stride;

	/* Start both buffers from the queues' current positions. */
	for (q = 0; q < EMU_NVME_NR_Q; q++) {
		emu_put_le32(b + 8 * q, st->sq[q].valid ? st->sq[q].tail : 0);
		emu_put_le32(b + 8 * q + 4, st->cq[q].valid ? st->cq[q].head :
			     0);
	}
	stride = 4U << ((st->id.cap >> 32) & 0xf);
	for (q = 0; q < 2 * EMU_NVME_NR_Q; q++) {
		if (!(q & 1) ? !st->sq[q / 2].valid : !st->cq[q / 2].valid)
			continue;
		ctrl->ops->dma_write(ctrl->host, st->dbbuf.dbs + q * stride,
				     b + 4 * q, 4);
		ctrl->ops->dma_write(ctrl->host, st->dbbuf.eis + q * stride,
				     b + 4 * q, 4);
	}
}

static u16 emu_dbbuf_config(struct emu_nvme_ctrl *ctrl, const u8 *sqe,
			    bool observe)
{
	u64 dbs = emu_get_le64(sqe + 24), eis = emu_get_le64(sqe + 32);
	u32 mps = emu_mps(ctrl);

	if (!observe && !(ctrl->oacs & EMU_OACS_DBBUF))
		return EMU_SC_INVALID_OPCODE;
	if (!dbs || !eis || ((dbs | eis) & (mps - 1)))
		return EMU_SC_INVALID_FIELD;
	ctrl->st.dbbuf.dbs = dbs;
	ctrl->st.dbbuf.eis = eis;
	ctrl->st.dbbuf.enabled = 1;
	ctrl->ei_len = 0;
	if (!observe)
		emu_dbbuf_init(ctrl);
	return EMU_SC_SUCCESS;
}

/* Dispatch ------------------------------------------------------------- */

static bool emu_aer_submit(struct emu_nvme_ctrl *ctrl, u16 cid, bool observe)
{
	struct emu_nvme_aer *a = &ctrl->st.aer;
	u32 i;

	for (i = 0; i < a->nr_cid; i++)
		if (a->cid[i] == cid)
			return observe;
	if (a->nr_cid > ctrl->aerl || a->nr_cid >= EMU_NVME_MAX_AER)
		return false;
	a->cid[a->nr_cid++] = cid;
	return true;
}

void emu_nvme_admin_exec(struct emu_nvme_ctrl *ctrl, const u8 *sqe)
{
	u8 opc = sqe[0];
	u16 cid = emu_sqe_cid(sqe), st;
	u32 dw0 = 0;

	/* Admin commands over PCIe use PRPs and are never fused. */
	if (sqe[1]) {
		emu_done(ctrl, cid, EMU_SC_INVALID_FIELD, 0);
		return;
	}
	switch (opc) {
	case EMU_ADM_IDENTIFY:
		st = emu_identify(ctrl, sqe);
		break;
	case EMU_ADM_GET_LOG:
		st = emu_get_log(ctrl, sqe);
		break;
	case EMU_ADM_SET_FEAT:
		st = emu_set_features(ctrl, sqe, &dw0);
		break;
	case EMU_ADM_GET_FEAT:
		st = emu_get_features(ctrl, sqe, &dw0);
		break;
	case EMU_ADM_CREATE_CQ:
		st = emu_create_cq(ctrl, sqe, false);
		break;
	case EMU_ADM_CREATE_SQ:
		st = emu_create_sq(ctrl, sqe, false);
		break;
	case EMU_ADM_DELETE_SQ:
		if (!emu_delete_sq(ctrl, sqe, false, &st))
			return;
		break;
	case EMU_ADM_DELETE_CQ:
		st = emu_delete_cq(ctrl, sqe, false);
		break;
	case EMU_ADM_AER:
		if (!emu_aer_submit(ctrl, cid, false)) {
			st = EMU_SC_AER_LIMIT;
			break;
		}
		/* It completes when an event arrives, holding no CQ slot. */
		emu_nvme_cq_release(ctrl, 0);
		emu_nvme_aer_process(ctrl);
		return;
	case EMU_ADM_ABORT:
		/* Backend requests cannot be recalled: "not aborted". */
		st = EMU_SC_SUCCESS;
		dw0 = 1;
		break;
	case EMU_ADM_KEEP_ALIVE:
		st = EMU_SC_SUCCESS;
		break;
	case EMU_ADM_DBBUF:
		st = emu_dbbuf_config(ctrl, sqe, false);
		break;
	default:
		st = EMU_SC_INVALID_OPCODE;
	}
	emu_done(ctrl, cid, st, dw0);
}

/* Observer ------------------------------------------------------------ */

void emu_nvme_observe_reg_write(struct emu_nvme_ctrl *ctrl, u32 off,
				u64 val, u32 size)
{
	struct emu_nvme_state *st = &ctrl->st;
	struct emu_nvme_regs *r = &st->regs;
	u32 v = (u32)val;

	if (ctrl->mode != EMU_NVME_MODE_OBSERVE)
		return;
	/* The admin queue attributes are fixed while enabled. */
	if ((r->cc & EMU_CC_EN) && off >= EMU_REG_AQA && off < EMU_REG_ACQ + 8)
		return;
	if (size == 8 && (off == EMU_REG_ASQ || off == EMU_REG_ACQ)) {
		if (off == EMU_REG_ASQ)
			r->asq = val & ~0xfffULL;
		else
			r->acq = val & ~0xfffULL;
		return;
	}
	/* Bits 11:0 of ASQ and ACQ are reserved. */
	if (off == EMU_REG_ASQ || off == EMU_REG_ACQ)
		v &= ~0xfffU;
	switch (off) {
	case EMU_REG_INTMS:
		r->intms |= v;
		break;
	case EMU_REG_INTMC:
		r->intms &= ~v;
		break;
	case EMU_REG_AQA:
		r->aqa = v & 0x0fff0fff;
		break;
	case EMU_REG_ASQ:
		r->asq = (r->asq & ~0xffffffffULL) | v;
		break;
	case EMU_REG_ASQ + 4:
		r->asq = (r->asq & 0xffffffffULL) | ((u64)v << 32);
		break;
	case EMU_REG_ACQ:
		r->acq = (r->acq & ~0xffffffffULL) | v;
		break;
	case EMU_REG_ACQ + 4:
		r->acq = (r->acq & 0xffffffffULL) | ((u64)v << 32);
		break;
	case EMU_REG_NSSR:
		if (v != EMU_NSSR_MAGIC)
			break;
		v = 0;
		fallthrough;
	case EMU_REG_CC:
		if ((r->cc & EMU_CC_EN) && !(v & EMU_CC_EN)) {
			emu_nvme_queue_reset(ctrl);
			r->csts = 0;
		} else if (!(r->cc & EMU_CC_EN) && (v & EMU_CC_EN)) {
			memset(&st->sq[0], 0, sizeof(st->sq[0]));
			memset(&st->cq[0], 0, sizeof(st->cq[0]));
			st->sq[0].base = r->asq;
			st->sq[0].size = (u16)((r->aqa & 0xfff) + 1);
			st->sq[0].pc = 1;
			st->sq[0].valid = 1;
			st->cq[0].base = r->acq;
			st->cq[0].size = (u16)(((r->aqa >> 16) & 0xfff) + 1);
			st->cq[0].phase = 1;
			st->cq[0].ien = 1;
			st->cq[0].pc = 1;
			st->cq[0].valid = 1;
			r->csts = EMU_CSTS_RDY;
		}
		r->cc = v & 0x01fffff1;
		break;
	}
}

/* The VF accepted a queue the model cannot hold. */
static void emu_obs_unrecorded(struct emu_nvme_ctrl *ctrl, u16 qid)
{
	if (ctrl->nr_unrec < 0xffff)
		ctrl->nr_unrec++;
	ctrl->unrec_qid = qid;
}

void emu_nvme_observe_admin(struct emu_nvme_ctrl *ctrl, const void *sqep,
			    const void *cqep, const void *datap, u32 len)
{
	const u8 *sqe = sqep, *cqe = cqep, *data = datap;
	struct emu_nvme_aer *a = &ctrl->st.aer;
	u8 opc, fid, cns, csi;
	u32 dw0, dw10, nsid, i;
	u16 cid, status;

	if (ctrl->mode != EMU_NVME_MODE_OBSERVE || !sqe)
		return;
	opc = sqe[0];
	cid = emu_sqe_cid(sqe);
	dw10 = emu_sqe_dw(sqe, 10);
	nsid = emu_sqe_nsid(sqe);
	if (!cqe) {
		if (opc == EMU_ADM_AER)
			emu_aer_submit(ctrl, cid, true);
		return;
	}
	dw0 = emu_get_le32(cqe);
	status = (emu_get_le16(cqe + 14) >> 1) & 0x7ff;
	if (opc == EMU_ADM_AER) {
		for (i = 0; i < a->nr_cid; i++) {
			if (a->cid[i] != cid)
				continue;
			a->nr_cid--;
			memmove(&a->cid[i], &a->cid[i + 1],
				(a->nr_cid - i) * sizeof(a->cid[0]));
			break;
		}
		if (!status)
			a->masked |= EMU_BIT(dw0 & 7);
		return;
	}
	if (status)
		return;
	switch (opc) {
	case EMU_ADM_CREATE_CQ:
		if (emu_create_cq(ctrl, sqe, true))
			emu_obs_unrecorded(ctrl, dw10 & 0xffff);
		break;
	case EMU_ADM_CREATE_SQ:
		if (emu_create_sq(ctrl, sqe, true))
			emu_obs_unrecorded(ctrl, dw10 & 0xffff);
		break;
	case EMU_ADM_DELETE_SQ:
		emu_delete_sq(ctrl, sqe, true, &status);
		/* The VF deleted a queue the model never had. */
		if (status && ctrl->nr_unrec)
			ctrl->nr_unrec--;
		break;
	case EMU_ADM_DELETE_CQ:
		if (emu_delete_cq(ctrl, sqe, true) && ctrl->nr_unrec)
			ctrl->nr_unrec--;
		break;
	case EMU_ADM_IDENTIFY:
		cns = dw10 & 0xff;
		csi = emu_sqe_dw(sqe, 11) >> 24;
		if (data && len >= EMU_NVME_PAGE &&
		    !emu_nvme_store_id(&ctrl->st, cns, csi, nsid,
				       (u16)(dw10 >> 16), data))
			emu_nvme_refresh_identity(ctrl);
		break;
	case EMU_ADM_SET_FEAT:
		fid = dw10 & 0xff;
		emu_feat_set(ctrl, sqe,
			     len >= emu_feat_data_len(fid) ? data : NULL,
			     dw0, true, &i);
		break;
	case EMU_ADM_GET_FEAT:
		fid = dw10 & 0xff;
		/* Only the current value teaches the model anything. */
		if (((dw10 >> 8) & 7) || fid == EMU_FEAT_NQ ||
		    fid == EMU_FEAT_TIMESTAMP)
			break;
		if (emu_feat_data_len(fid) &&
		    (!data || len < emu_feat_data_len(fid)))
			break;
		{
			u8 fake[EMU_NVME_SQE];

			memcpy(fake, sqe, sizeof(fake));
			emu_put_le32(fake + 44, fid == EMU_FEAT_TEMP ?
				     (emu_sqe_dw(sqe, 11) & ~0xffffU) |
				     (dw0 & 0xffff) : dw0);
			emu_feat_set(ctrl, fake, data, dw0, true, &i);
		}
		break;
	case EMU_ADM_GET_LOG:
		emu_log_read(ctrl, dw10 & 0xff, dw10 & EMU_BIT(15));
		break;
	case EMU_ADM_DBBUF:
		emu_dbbuf_config(ctrl, sqe, true);
		break;
	}
}
