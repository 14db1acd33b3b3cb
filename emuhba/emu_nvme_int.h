/* SPDX-License-Identifier: GPL-2.0-only */
/* emuhba NVMe model: definitions shared by the model's own files only. */
#ifndef EMU_NVME_INT_H
#define EMU_NVME_INT_H

#include "emu_nvme.h"

/* Admin opcodes */
#define EMU_ADM_DELETE_SQ	0x00
#define EMU_ADM_CREATE_SQ	0x01
#define EMU_ADM_GET_LOG		0x02
#define EMU_ADM_DELETE_CQ	0x04
#define EMU_ADM_CREATE_CQ	0x05
#define EMU_ADM_IDENTIFY	0x06
#define EMU_ADM_ABORT		0x08
#define EMU_ADM_SET_FEAT	0x09
#define EMU_ADM_GET_FEAT	0x0a
#define EMU_ADM_AER		0x0c
#define EMU_ADM_KEEP_ALIVE	0x18
#define EMU_ADM_DBBUF		0x7c

/* NVM opcodes */
#define EMU_IO_FLUSH		0x00
#define EMU_IO_WRITE		0x01
#define EMU_IO_READ		0x02
#define EMU_IO_COMPARE		0x05
#define EMU_IO_WRITE_ZEROES	0x08
#define EMU_IO_DSM		0x09

/* Asynchronous event types */
#define EMU_AET_ERROR		0
#define EMU_AET_SMART		1
#define EMU_AET_NOTICE		2
/* SMART / Health event information, and the AEC bit enabling each */
#define EMU_AEI_SMART_RELIABILITY	0
#define EMU_AEI_SMART_TEMP		1
#define EMU_AEI_SMART_SPARE		2

/* Identify Controller offsets the model interprets */
#define EMU_IDC_MDTS		77
#define EMU_IDC_OACS		256
#define EMU_IDC_ACL		258
#define EMU_IDC_AERL		259
#define EMU_IDC_FRMW		260
#define EMU_IDC_LPA		261
#define EMU_IDC_ELPE		262
#define EMU_IDC_NPSS		263
#define EMU_IDC_APSTA		265
#define EMU_IDC_KAS		320
#define EMU_IDC_HCTMA		322
#define EMU_IDC_SQES		512
#define EMU_IDC_CQES		513
#define EMU_IDC_NN		516
#define EMU_IDC_ONCS		520
#define EMU_IDC_VWC		525
#define EMU_IDC_SGLS		536
#define EMU_IDC_FR		64

#define EMU_OACS_DBBUF		EMU_BIT(8)
#define EMU_ONCS_COMPARE	EMU_BIT(0)
#define EMU_ONCS_DSM		EMU_BIT(2)
#define EMU_ONCS_WRITE_ZEROES	EMU_BIT(3)
#define EMU_ONCS_SAVE		EMU_BIT(4)
#define EMU_ONCS_TIMESTAMP	EMU_BIT(6)

#define EMU_CNS_NS		0x00
#define EMU_CNS_CTRL		0x01
#define EMU_CNS_NS_LIST		0x02
#define EMU_CNS_NS_DESC		0x03

enum emu_req_state {
	EMU_REQ_FREE = 0,
	EMU_REQ_BLK,		/* owned by the backend */
	EMU_REQ_RETRY,		/* the backend was busy: resubmit on poll */
	EMU_REQ_DONE,		/* completed inside blk_submit: finish later */
};

struct emu_nvme_req {
	struct emu_blk_req blk;	/* first: the host hands this pointer back */
	u8 sqe[EMU_NVME_SQE];
	u16 sqid;
	u16 next_free;
	u8 state;
	u8 aborted;
	u16 range_idx;
	u16 nr_ranges;
	u16 next_done;
	s32 status;		/* backend status of an EMU_REQ_DONE request */
	u32 xfer;		/* guest data bytes */
	u32 buf_len;
};

struct emu_nvme_nsrt {
	u32 nsid;
	u8 lba_shift;
	u8 usable;		/* no metadata, so the model can serve it */
	u8 rsvd[2];
	u64 nsze;
};

struct emu_nvme_vec {
	u32 pending;		/* completions not yet signalled */
	u64 first_ns;
	u8 urgent;		/* one of them is an error: not coalesced */
};

struct emu_nvme_ctrl {
	const struct emu_host_ops *ops;
	void *host;
	u32 mode;
	u32 nr_inflight;
	struct emu_nvme_state st;
	struct emu_nvme_state stage;	/* state image decode target */
	struct emu_nvme_features feat_def;	/* Get Features SEL 1 and 2 */

	/* runtime, derived or transient: never migrated */
	u16 sq_inflight[EMU_NVME_NR_Q];
	u16 cq_reserved[EMU_NVME_NR_Q];
	u8 sq_deleting[EMU_NVME_NR_Q];
	u16 sq_del_cid[EMU_NVME_NR_Q];
	/*
	 * Submission queues created on each completion queue since it was:
	 * with more than one, its tail no longer counts one SQ's completions.
	 */
	u8 cq_sqs[EMU_NVME_NR_Q];
	/* the head given at takeover was a guess (EMU_QPOS_CQ_HEAD_GUESS) */
	u8 cq_head_guess[EMU_NVME_NR_Q];
	/*
	 * Queues the VF created that the observer could not record (65536
	 * entries, an identifier beyond the model's): a switch cannot place
	 * them. unrec_qid is the newest, for the refusal.
	 */
	u16 nr_unrec;
	u16 unrec_qid;
	struct emu_nvme_vec vec[EMU_NVME_MAX_VEC];
	struct emu_nvme_nsrt ns[EMU_NVME_MAX_NS];
	u32 nr_ns;
	u32 mdts_bytes;		/* 0: unlimited */
	u32 oacs;
	u32 oncs;
	u32 sgls;
	u8 aerl;		/* 0's based */
	u8 elpe;
	u8 resetting;		/* CC.EN cleared, waiting for the backend */
	u8 shutting;		/* CC.SHN set, waiting for the backend */
	u8 nssr_pending;
	u8 rsvd[3];
	u16 rr_next;
	u16 free_head;
	u32 nr_retry;
	u32 in_submit;		/* inside ops->blk_submit */
	u16 done_head;		/* completions deferred out of blk_submit */
	u16 done_tail;
	u64 cmds;
	u8 scratch[EMU_NVME_PAGE];
	u8 sqe_buf[EMU_NVME_SQE * 8];
	u8 db_buf[8 * EMU_NVME_NR_Q];
	u8 ei_cache[8 * EMU_NVME_NR_Q];	/* EventIdx last written */
	u32 ei_len;			/* 0: nothing written yet */
	struct emu_nvme_req reqs[EMU_NVME_MAX_REQS];
};

/* emu_nvme.c */
bool emu_nvme_cq_post(struct emu_nvme_ctrl *ctrl, u16 sqid, u16 cid,
		      u16 status, u32 dw0);
void emu_nvme_cq_release(struct emu_nvme_ctrl *ctrl, u16 sqid);
void emu_nvme_irq_flush(struct emu_nvme_ctrl *ctrl);
void emu_nvme_refresh_identity(struct emu_nvme_ctrl *ctrl);
struct emu_nvme_idpage *emu_nvme_find_id(struct emu_nvme_state *st, u8 cns,
					 u8 csi, u32 nsid);
int emu_nvme_store_id(struct emu_nvme_state *st, u8 cns, u8 csi, u32 nsid,
		      u16 cntid, const void *page);
void emu_nvme_queue_reset(struct emu_nvme_ctrl *ctrl);
void emu_nvme_feat_defaults(struct emu_nvme_ctrl *ctrl);
void emu_nvme_feat_fill_defaults(struct emu_nvme_ctrl *ctrl,
				 struct emu_nvme_features *f);
struct emu_nvme_req *emu_nvme_req_get(struct emu_nvme_ctrl *ctrl);
void emu_nvme_req_put(struct emu_nvme_ctrl *ctrl, struct emu_nvme_req *req);
void emu_nvme_aer_process(struct emu_nvme_ctrl *ctrl);
void emu_nvme_log_error(struct emu_nvme_ctrl *ctrl, u16 sqid, u16 cid,
			u16 sf);
const struct emu_nvme_nsrt *emu_nvme_ns(const struct emu_nvme_ctrl *ctrl,
					u32 nsid);

/* emu_nvme_admin.c */
/* Returns true when the command completed (CQE posted or queued). */
void emu_nvme_admin_exec(struct emu_nvme_ctrl *ctrl, const u8 *sqe);
void emu_nvme_sq_deleted(struct emu_nvme_ctrl *ctrl, u16 sqid);

/* emu_nvme_io.c */
/* Returns -EAGAIN when resources are short: leave the command queued. */
int emu_nvme_io_exec(struct emu_nvme_ctrl *ctrl, u16 sqid, const u8 *sqe);
void emu_nvme_io_done(struct emu_nvme_ctrl *ctrl, struct emu_nvme_req *req,
		      int status);
void emu_nvme_io_retry(struct emu_nvme_ctrl *ctrl);
int emu_nvme_blk_submit(struct emu_nvme_ctrl *ctrl, struct emu_nvme_req *req);
void emu_nvme_done_drain(struct emu_nvme_ctrl *ctrl);
u16 emu_nvme_xfer(struct emu_nvme_ctrl *ctrl, const u8 *sqe, bool admin,
		  void *buf, u32 len, bool to_guest);

/*
 * A bounded reader over untrusted bytes (state images): a read past the end
 * marks it bad and returns NULL, never more than was given.
 */
struct emu_r {
	const u8 *p;
	u32 len;
	u32 pos;
	bool bad;
};

static inline const u8 *emu_rbytes(struct emu_r *r, u32 n)
{
	const u8 *p;

	if (r->bad || n > r->len - r->pos) {
		r->bad = true;
		return NULL;
	}
	p = r->p + r->pos;
	r->pos += n;
	return p;
}

/* emu_img.c: the invariants of a runnable state. */
int emu_nvme_state_check(const struct emu_nvme_state *st, char *err,
			 size_t errlen);
/*
 * The one validation of an image's structure and state, which import and
 * the compatibility check share; 0 or -EINVAL naming the field in err.
 */
int emu_img_validate(const void *img, size_t len, char *err, size_t errlen);
u32 emu_xfer_shift(u8 mdts, u64 cap);
bool emu_xfer_fits(u32 src, u32 dst);

/* emu_nvme.c: a CC (with AQA, ASQ, ACQ) the controller accepts to enable. */
bool emu_nvme_cc_valid(u64 cap, const struct emu_nvme_regs *r);

/*
 * Completions counted for a vector beyond this are not counted: only
 * "none", and more than the coalescing threshold, matter, and a count
 * that wrapped to none would lose the interrupt.
 */
#define EMU_NVME_MAX_PENDING	0xffff

/* A namespace the model serves I/O for (emu_nvme_refresh_identity()). */
static inline bool emu_ns_served(u8 cns, u8 csi, u32 nsid, u64 nsze)
{
	return cns == EMU_CNS_NS && !csi && nsid && nsid != 0xffffffff &&
	       nsze;
}

/* Small portable message formatting for rejection reasons. */
void emu_msg(char *err, size_t errlen, const char *field, const char *why,
	     u64 val);

static inline u32 emu_sqe_dw(const u8 *sqe, int n)
{
	return emu_get_le32(sqe + 4 * n);
}

static inline u16 emu_sqe_cid(const u8 *sqe)
{
	return emu_get_le16(sqe + 2);
}

static inline u32 emu_sqe_nsid(const u8 *sqe)
{
	return emu_get_le32(sqe + 4);
}

static inline u32 emu_mps(const struct emu_nvme_ctrl *ctrl)
{
	return 1U << (12 + ((ctrl->st.regs.cc >> 7) & 0xf));
}

static inline u32 emu_mqes(const struct emu_nvme_state *st)
{
	return (u32)(st->id.cap & 0xffff) + 1;
}

#endif /* EMU_NVME_INT_H */
