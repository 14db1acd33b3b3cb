// SPDX-License-Identifier: GPL-2.0-only
/*
 * emuhba NVMe model: data transfer (PRP lists, SGLs) and the NVM command set
 * against the host's block backend.
 */
#include "emu_nvme_int.h"

/* Upper bound on one command's data when the identity sets no MDTS. */
#define EMU_MAX_XFER	(2U << 20)

/*
 * Segments that follow each other in IOVA are moved with one host access:
 * a guest's buffer is often contiguous across its PRP entries or SGL
 * descriptors, and each access has a fixed cost (a lookup of the mapping,
 * a lock, an address space switch from a kernel thread). A run is moved
 * when the next segment does not extend it, and at the end.
 */
struct emu_xfer {
	struct emu_nvme_ctrl *ctrl;
	u8 *buf;
	u32 off;
	u32 rem;
	bool to_guest;
	u64 run_iova;	/* the run not moved yet: buf + run_off, run_len */
	u32 run_off;
	u32 run_len;
};

static u16 emu_run_flush(struct emu_xfer *x)
{
	struct emu_nvme_ctrl *ctrl = x->ctrl;
	int ret;

	if (!x->run_len)
		return EMU_SC_SUCCESS;
	if (x->to_guest)
		ret = ctrl->ops->dma_write(ctrl->host, x->run_iova,
					   x->buf + x->run_off, x->run_len);
	else
		ret = ctrl->ops->dma_read(ctrl->host, x->run_iova,
					  x->buf + x->run_off, x->run_len);
	x->run_len = 0;
	return ret ? EMU_SC_DATA_XFER_ERROR : EMU_SC_SUCCESS;
}

static u16 emu_seg(struct emu_xfer *x, u64 iova, u32 len, bool bucket)
{
	u16 st;

	len = EMU_MIN(len, x->rem);
	if (!len)
		return EMU_SC_SUCCESS;
	/* A run never wraps around the end of the IOVA space. */
	if (bucket || !x->run_len || iova != x->run_iova + x->run_len ||
	    iova < x->run_iova) {
		st = emu_run_flush(x);
		if (st)
			return st;
		x->run_iova = iova;
		x->run_off = x->off;
	}
	/* A bit bucket moves nothing: the bytes are skipped. */
	if (!bucket)
		x->run_len += len;
	x->off += len;
	x->rem -= len;
	return EMU_SC_SUCCESS;
}

static u16 emu_prp(struct emu_xfer *x, const u8 *sqe)
{
	u32 mps = emu_mps(x->ctrl), chains = 0, i, n, in_page;
	u64 prp1 = emu_get_le64(sqe + 24), prp2 = emu_get_le64(sqe + 32);
	u64 list;
	u8 ent[16 * 8];
	u16 st;

	if (prp1 & 3)
		return EMU_SC_PRP_INVALID_OFFSET;
	st = emu_seg(x, prp1, mps - (u32)(prp1 & (mps - 1)), false);
	if (st || !x->rem)
		return st;
	if (x->rem <= mps) {
		if (prp2 & (mps - 1))
			return EMU_SC_PRP_INVALID_OFFSET;
		return emu_seg(x, prp2, x->rem, false);
	}
	list = prp2;
	if (list & 7)
		return EMU_SC_PRP_INVALID_OFFSET;
	while (x->rem) {
		in_page = (mps - (u32)(list & (mps - 1))) / 8;
		n = EMU_MIN(in_page, (u32)EMU_ARRAY_SIZE(ent) / 8);
		n = EMU_MIN(n, (x->rem + mps - 1) / mps + 1);
		if (x->ctrl->ops->dma_read(x->ctrl->host, list, ent, n * 8))
			return EMU_SC_DATA_XFER_ERROR;
		for (i = 0; i < n && x->rem; i++) {
			u64 e = emu_get_le64(ent + 8 * i);

			/*
			 * The last entry of a list page chains to the next;
			 * like every entry but PRP1 and PRP2, at offset 0h.
			 */
			if (i == in_page - 1 && x->rem > mps) {
				if ((e & (mps - 1)) ||
				    ++chains > EMU_MAX_XFER / 4096)
					return EMU_SC_PRP_INVALID_OFFSET;
				list = e;
				break;
			}
			if (e & (mps - 1))
				return EMU_SC_PRP_INVALID_OFFSET;
			st = emu_seg(x, e, mps, false);
			if (st)
				return st;
		}
		if (i == n)
			list += (u64)n * 8;
	}
	return EMU_SC_SUCCESS;
}

#define EMU_SGL_DATA		0
#define EMU_SGL_BUCKET		1
#define EMU_SGL_SEG		2
#define EMU_SGL_LAST		3

static u16 emu_sgl_data(struct emu_xfer *x, const u8 *d)
{
	u8 type = d[15] >> 4;

	if (d[15] & 0xf)
		return EMU_SC_SGL_INVALID_TYPE;
	/*
	 * A bit bucket only where SGLS bit 16 offers it, and only for data
	 * the host discards.
	 */
	if (type == EMU_SGL_BUCKET &&
	    (!x->to_guest || !(x->ctrl->sgls & EMU_BIT(16))))
		return EMU_SC_SGL_INVALID_TYPE;
	return emu_seg(x, emu_get_le64(d), emu_get_le32(d + 8),
		       type == EMU_SGL_BUCKET);
}

static u16 emu_sgl(struct emu_xfer *x, const u8 *d0)
{
	u8 type = d0[15] >> 4, d[16 * 8];
	u64 seg = emu_get_le64(d0);
	u32 nr = emu_get_le32(d0 + 8) / 16, segs = 0, i, j, k;
	bool last = type == EMU_SGL_LAST;
	const u8 *next;
	u16 st;

	if (type == EMU_SGL_DATA || type == EMU_SGL_BUCKET) {
		st = emu_sgl_data(x, d0);
		return st ? st : x->rem ? EMU_SC_SGL_INVALID_DATA : 0;
	}
	if (type != EMU_SGL_SEG && type != EMU_SGL_LAST)
		return EMU_SC_SGL_INVALID_TYPE;
	if ((d0[15] & 0xf) || !nr || (emu_get_le32(d0 + 8) & 15))
		return EMU_SC_SGL_INVALID_COUNT;
	while (x->rem) {
		if (++segs > 256)
			return EMU_SC_SGL_INVALID_COUNT;
		next = NULL;
		for (i = 0; i < nr && x->rem && !next; i += k) {
			k = EMU_MIN(nr - i, (u32)EMU_ARRAY_SIZE(d) / 16);
			if (x->ctrl->ops->dma_read(x->ctrl->host,
						   seg + (u64)i * 16, d, k * 16))
				return EMU_SC_DATA_XFER_ERROR;
			for (j = 0; j < k && x->rem; j++) {
				const u8 *e = d + 16 * j;
				u8 t = e[15] >> 4;

				if (t == EMU_SGL_SEG || t == EMU_SGL_LAST) {
					if (last || i + j != nr - 1)
						return EMU_SC_SGL_INVALID_LAST;
					next = e;
					break;
				}
				if (t != EMU_SGL_DATA && t != EMU_SGL_BUCKET)
					return EMU_SC_SGL_INVALID_TYPE;
				st = emu_sgl_data(x, e);
				if (st)
					return st;
			}
		}
		if (!x->rem)
			break;
		if (!next)
			return EMU_SC_SGL_INVALID_DATA;
		if ((next[15] & 0xf) || !(emu_get_le32(next + 8) / 16) ||
		    (emu_get_le32(next + 8) & 15))
			return EMU_SC_SGL_INVALID_COUNT;
		last = (next[15] >> 4) == EMU_SGL_LAST;
		seg = emu_get_le64(next);
		nr = emu_get_le32(next + 8) / 16;
	}
	return EMU_SC_SUCCESS;
}

u16 emu_nvme_xfer(struct emu_nvme_ctrl *ctrl, const u8 *sqe, bool admin,
		  void *buf, u32 len, bool to_guest)
{
	struct emu_xfer x = {
		.ctrl = ctrl, .buf = buf, .rem = len, .to_guest = to_guest,
	};
	u8 psdt = (sqe[1] >> 6) & 3;
	u16 st;

	if (!len)
		return EMU_SC_SUCCESS;
	if (psdt && (admin || psdt == 3 || !(ctrl->sgls & 3)))
		return EMU_SC_INVALID_FIELD;
	st = psdt ? emu_sgl(&x, sqe + 24) : emu_prp(&x, sqe);
	/* A command that fails moves nothing more. */
	return st ? st : emu_run_flush(&x);
}

/* NVM command set ------------------------------------------------------ */

static void emu_io_fail(struct emu_nvme_ctrl *ctrl, u16 sqid, u16 cid,
			u16 status)
{
	emu_nvme_cq_post(ctrl, sqid, cid, status | EMU_SC_DNR, 0);
}

static int emu_io_submit(struct emu_nvme_ctrl *ctrl, struct emu_nvme_req *req)
{
	int ret = emu_nvme_blk_submit(ctrl, req);

	if (ret == -EAGAIN)
		emu_nvme_req_put(ctrl, req);
	else if (ret)
		emu_nvme_io_done(ctrl, req, ret);
	return ret == -EAGAIN ? -EAGAIN : 0;
}

static bool emu_lba_ok(const struct emu_nvme_nsrt *ns, u64 slba, u64 nlb)
{
	return slba < ns->nsze && nlb <= ns->nsze - slba;
}

static int emu_io_rw(struct emu_nvme_ctrl *ctrl, u16 sqid, const u8 *sqe,
		     const struct emu_nvme_nsrt *ns)
{
	u8 opc = sqe[0];
	u16 cid = emu_sqe_cid(sqe), st;
	u64 slba = emu_sqe_dw(sqe, 10) | ((u64)emu_sqe_dw(sqe, 11) << 32);
	u32 nlb = (emu_sqe_dw(sqe, 12) & 0xffff) + 1;
	u64 len = (u64)nlb << ns->lba_shift;
	u32 max = ctrl->mdts_bytes ? ctrl->mdts_bytes : EMU_MAX_XFER;
	struct emu_nvme_req *req;

	if (!emu_lba_ok(ns, slba, nlb)) {
		emu_io_fail(ctrl, sqid, cid, EMU_SC_LBA_RANGE);
		return 0;
	}
	if (len > max) {
		emu_io_fail(ctrl, sqid, cid, EMU_SC_INVALID_FIELD);
		return 0;
	}
	req = emu_nvme_req_get(ctrl);
	if (!req)
		return -EAGAIN;
	req->buf_len = (u32)len * (opc == EMU_IO_COMPARE ? 2 : 1);
	req->blk.buf = ctrl->ops->buf_alloc(ctrl->host, req->buf_len);
	if (!req->blk.buf) {
		emu_nvme_req_put(ctrl, req);
		return -EAGAIN;
	}
	memcpy(req->sqe, sqe, EMU_NVME_SQE);
	req->sqid = sqid;
	req->xfer = (u32)len;
	req->blk.op = opc == EMU_IO_WRITE ? EMU_BLK_WRITE : EMU_BLK_READ;
	req->blk.nsid = ns->nsid;
	req->blk.slba = slba;
	req->blk.nlb = nlb;
	req->blk.lba_shift = ns->lba_shift;
	req->blk.len = len;
	if (opc == EMU_IO_WRITE) {
		st = emu_nvme_xfer(ctrl, sqe, false, req->blk.buf, (u32)len,
				   false);
		if (st) {
			emu_nvme_req_put(ctrl, req);
			emu_io_fail(ctrl, sqid, cid, st);
			return 0;
		}
	}
	return emu_io_submit(ctrl, req);
}

static int emu_io_dsm(struct emu_nvme_ctrl *ctrl, u16 sqid, const u8 *sqe,
		      const struct emu_nvme_nsrt *ns)
{
	u16 cid = emu_sqe_cid(sqe), st;
	u32 nr = (emu_sqe_dw(sqe, 10) & 0xff) + 1, i;
	struct emu_nvme_req *req;
	u8 *r;

	/* Only Deallocate has an effect; the other attributes are hints. */
	if (!(emu_sqe_dw(sqe, 11) & EMU_BIT(2))) {
		emu_nvme_cq_post(ctrl, sqid, cid, EMU_SC_SUCCESS, 0);
		return 0;
	}
	req = emu_nvme_req_get(ctrl);
	if (!req)
		return -EAGAIN;
	req->buf_len = nr * 16;
	req->blk.buf = ctrl->ops->buf_alloc(ctrl->host, req->buf_len);
	if (!req->blk.buf) {
		emu_nvme_req_put(ctrl, req);
		return -EAGAIN;
	}
	r = req->blk.buf;
	st = emu_nvme_xfer(ctrl, sqe, false, r, nr * 16, false);
	for (i = 0; !st && i < nr; i++)
		if (!emu_lba_ok(ns, emu_get_le64(r + 16 * i + 8),
				emu_get_le32(r + 16 * i + 4)))
			st = EMU_SC_LBA_RANGE;
	if (st) {
		emu_nvme_req_put(ctrl, req);
		emu_io_fail(ctrl, sqid, cid, st);
		return 0;
	}
	memcpy(req->sqe, sqe, EMU_NVME_SQE);
	req->sqid = sqid;
	req->nr_ranges = (u16)nr;
	req->range_idx = 0;
	/* Ranges go to the backend one after another (emu_nvme_io_done()). */
	emu_nvme_io_done(ctrl, req, 1);
	return 0;
}

int emu_nvme_io_exec(struct emu_nvme_ctrl *ctrl, u16 sqid, const u8 *sqe)
{
	u8 opc = sqe[0];
	u16 cid = emu_sqe_cid(sqe);
	u32 nsid = emu_sqe_nsid(sqe);
	const struct emu_nvme_nsrt *ns = emu_nvme_ns(ctrl, nsid);
	struct emu_nvme_req *req;

	if ((sqe[1] & 3) || ((sqe[1] >> 6) & 3) == 3 ||
	    (((sqe[1] >> 6) & 3) && !(ctrl->sgls & 3))) {
		emu_io_fail(ctrl, sqid, cid, EMU_SC_INVALID_FIELD);
		return 0;
	}
	if (opc != EMU_IO_FLUSH && (!ns || !ns->usable)) {
		emu_io_fail(ctrl, sqid, cid, EMU_SC_INVALID_NS);
		return 0;
	}
	switch (opc) {
	case EMU_IO_FLUSH:
		if (nsid != 0xffffffff && !ns) {
			emu_io_fail(ctrl, sqid, cid, EMU_SC_INVALID_NS);
			return 0;
		}
		req = emu_nvme_req_get(ctrl);
		if (!req)
			return -EAGAIN;
		memcpy(req->sqe, sqe, EMU_NVME_SQE);
		req->sqid = sqid;
		req->blk.op = EMU_BLK_FLUSH;
		req->blk.nsid = nsid;
		return emu_io_submit(ctrl, req);
	case EMU_IO_READ:
	case EMU_IO_WRITE:
		return emu_io_rw(ctrl, sqid, sqe, ns);
	case EMU_IO_COMPARE:
		if (!(ctrl->oncs & EMU_ONCS_COMPARE))
			break;
		return emu_io_rw(ctrl, sqid, sqe, ns);
	case EMU_IO_WRITE_ZEROES:
		if (!(ctrl->oncs & EMU_ONCS_WRITE_ZEROES))
			break;
		req = emu_nvme_req_get(ctrl);
		if (!req)
			return -EAGAIN;
		memcpy(req->sqe, sqe, EMU_NVME_SQE);
		req->sqid = sqid;
		req->blk.op = EMU_BLK_WRITE_ZEROES;
		req->blk.nsid = nsid;
		req->blk.slba = emu_sqe_dw(sqe, 10) |
				((u64)emu_sqe_dw(sqe, 11) << 32);
		req->blk.nlb = (emu_sqe_dw(sqe, 12) & 0xffff) + 1;
		req->blk.lba_shift = ns->lba_shift;
		req->blk.len = (u64)req->blk.nlb << ns->lba_shift;
		if (!emu_lba_ok(ns, req->blk.slba, req->blk.nlb)) {
			emu_nvme_req_put(ctrl, req);
			emu_io_fail(ctrl, sqid, cid, EMU_SC_LBA_RANGE);
			return 0;
		}
		return emu_io_submit(ctrl, req);
	case EMU_IO_DSM:
		if (!(ctrl->oncs & EMU_ONCS_DSM))
			break;
		return emu_io_dsm(ctrl, sqid, sqe, ns);
	}
	emu_io_fail(ctrl, sqid, cid, EMU_SC_INVALID_OPCODE);
	return 0;
}

static u16 emu_errno_status(u32 op, int err)
{
	if (err == -ENOSPC)
		return EMU_SC_CAP_EXCEEDED;
	if (err == -EIO && op == EMU_BLK_READ)
		return EMU_SC_READ_ERROR;
	if (err == -EIO)
		return EMU_SC_WRITE_FAULT;
	return EMU_SC_INTERNAL;
}

static void emu_account(struct emu_nvme_ctrl *ctrl, u8 opc, u32 len)
{
	struct emu_nvme_logs *l = &ctrl->st.logs;

	if (opc == EMU_IO_READ || opc == EMU_IO_COMPARE) {
		l->host_reads++;
		l->data_units_read += len >> 9;
	} else if (opc == EMU_IO_WRITE) {
		l->host_writes++;
		l->data_units_written += len >> 9;
	}
}

void emu_nvme_io_retry(struct emu_nvme_ctrl *ctrl)
{
	u32 i;

	for (i = 0; i < EMU_NVME_MAX_REQS && ctrl->nr_retry; i++) {
		struct emu_nvme_req *req = &ctrl->reqs[i];

		if (req->state != EMU_REQ_RETRY)
			continue;
		ctrl->nr_retry--;
		req->state = EMU_REQ_BLK;
		if (req->aborted)
			emu_nvme_req_put(ctrl, req);
		else
			emu_nvme_io_done(ctrl, req, 1);
	}
}

/*
 * status: 0 or -errno from the backend; 1 starts a Dataset Management
 * command's first range.
 */
void emu_nvme_io_done(struct emu_nvme_ctrl *ctrl, struct emu_nvme_req *req,
		      int status)
{
	u8 opc = req->sqe[0], *r = req->blk.buf;
	u16 sqid = req->sqid, cid = emu_sqe_cid(req->sqe), st = 0;
	int ret;

	if (status < 0) {
		st = emu_errno_status(req->blk.op, status);
		goto post;
	}
	if (opc == EMU_IO_DSM) {
		while (req->range_idx < req->nr_ranges) {
			u8 *e = r + 16 * req->range_idx++;

			if (!emu_get_le32(e + 4))
				continue;
			req->blk.op = EMU_BLK_DISCARD;
			req->blk.nsid = emu_sqe_nsid(req->sqe);
			req->blk.nlb = emu_get_le32(e + 4);
			req->blk.slba = emu_get_le64(e + 8);
			req->blk.lba_shift =
				emu_nvme_ns(ctrl, req->blk.nsid)->lba_shift;
			req->blk.len = (u64)req->blk.nlb << req->blk.lba_shift;
			ret = emu_nvme_blk_submit(ctrl, req);
			if (!ret)
				return;
			if (ret == -EAGAIN) {
				/* Busy: the same range again from poll. */
				req->range_idx--;
				req->state = EMU_REQ_RETRY;
				ctrl->nr_retry++;
				return;
			}
			/* DLFEAT promises zeroes: a lost range is an error. */
			st = emu_errno_status(EMU_BLK_DISCARD, ret);
			break;
		}
		goto post;
	}
	if (opc == EMU_IO_READ) {
		st = emu_nvme_xfer(ctrl, req->sqe, false, req->blk.buf,
				   req->xfer, true);
	} else if (opc == EMU_IO_COMPARE) {
		st = emu_nvme_xfer(ctrl, req->sqe, false, r + req->xfer,
				   req->xfer, false);
		if (!st && memcmp(r, r + req->xfer, req->xfer))
			st = EMU_SC_CMP_FAILED;
	}
	if (!st)
		emu_account(ctrl, opc, req->xfer);
	if (st)
		st |= EMU_SC_DNR;
post:
	emu_nvme_req_put(ctrl, req);
	emu_nvme_cq_post(ctrl, sqid, cid, st, 0);
}

void emu_nvme_blk_complete_more(struct emu_nvme_ctrl *ctrl,
				struct emu_blk_req *blk, int status)
{
	struct emu_nvme_req *req = (struct emu_nvme_req *)blk;
	size_t idx = (size_t)(req - ctrl->reqs);

	/*
	 * Inside blk_submit the completion is deferred anyway, and a request
	 * the model does not own is refused: both as a single completion.
	 */
	if (ctrl->in_submit || idx >= EMU_NVME_MAX_REQS ||
	    &ctrl->reqs[idx] != req || req->state != EMU_REQ_BLK) {
		emu_nvme_blk_complete(ctrl, blk, status);
		return;
	}
	if (req->aborted)
		emu_nvme_req_put(ctrl, req);
	else
		emu_nvme_io_done(ctrl, req, status);
}
