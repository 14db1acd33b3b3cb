/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * emuhba NVMe controller model: public interface for the host glue.
 *
 * The host allocates emu_nvme_ctrl_size() bytes (zeroed), calls
 * emu_nvme_init(), loads the identity of the VF being replaced, and then
 * either observes the VF (DIRECT mode) or runs the emulation.
 */
#ifndef EMU_NVME_H
#define EMU_NVME_H

#include "emu_compat.h"
#include "emu_host.h"

#define EMU_NVME_MAX_QID	128	/* highest queue identifier */
#define EMU_NVME_NR_Q		(EMU_NVME_MAX_QID + 1)
#define EMU_NVME_MAX_VEC	(EMU_NVME_MAX_QID + 1)
#define EMU_NVME_MAX_NS		8
#define EMU_NVME_MAX_IDPAGES	24
#define EMU_NVME_MAX_AER	16
#define EMU_NVME_MAX_EVENTS	16
#define EMU_NVME_MAX_REQS	512
#define EMU_NVME_MAX_ERRLOG	4
#define EMU_NVME_PAGE		4096
#define EMU_NVME_SQE		64
#define EMU_NVME_CQE		16

/* Controller register offsets (NVMe base specification, 3.1). */
#define EMU_REG_CAP	0x00
#define EMU_REG_VS	0x08
#define EMU_REG_INTMS	0x0c
#define EMU_REG_INTMC	0x10
#define EMU_REG_CC	0x14
#define EMU_REG_CSTS	0x1c
#define EMU_REG_NSSR	0x20
#define EMU_REG_AQA	0x24
#define EMU_REG_ASQ	0x28
#define EMU_REG_ACQ	0x30
#define EMU_REG_DBS	0x1000

#define EMU_CC_EN		EMU_BIT(0)
#define EMU_CC_SHN_SHIFT	14
#define EMU_CC_SHN_MASK		(3U << EMU_CC_SHN_SHIFT)
#define EMU_CSTS_RDY		EMU_BIT(0)
#define EMU_CSTS_CFS		EMU_BIT(1)
#define EMU_CSTS_SHST_SHIFT	2
#define EMU_CSTS_SHST_MASK	(3U << EMU_CSTS_SHST_SHIFT)
#define EMU_CSTS_SHST_OCCUR	EMU_BIT(EMU_CSTS_SHST_SHIFT)
#define EMU_CSTS_SHST_CMPLT	(2U << EMU_CSTS_SHST_SHIFT)
#define EMU_CSTS_NSSRO		EMU_BIT(4)
#define EMU_NSSR_MAGIC		0x4e564d65	/* "NVMe" */

/* Status codes as placed in CQE DW3 bits 31:17 (SCT << 8 | SC). */
#define EMU_SC_SUCCESS		0x000
#define EMU_SC_INVALID_OPCODE	0x001
#define EMU_SC_INVALID_FIELD	0x002
#define EMU_SC_DATA_XFER_ERROR	0x004
#define EMU_SC_ABORT_SQ_DEL	0x008
#define EMU_SC_INTERNAL		0x006
#define EMU_SC_INVALID_NS	0x00b
#define EMU_SC_CMD_SEQ_ERROR	0x00c
#define EMU_SC_SGL_INVALID_LAST	0x00d
#define EMU_SC_SGL_INVALID_COUNT 0x00e
#define EMU_SC_SGL_INVALID_DATA	0x00f
#define EMU_SC_SGL_INVALID_TYPE	0x011
#define EMU_SC_PRP_INVALID_OFFSET 0x013
#define EMU_SC_SGL_INVALID_OFFSET 0x016
#define EMU_SC_LBA_RANGE	0x080
#define EMU_SC_CAP_EXCEEDED	0x081
#define EMU_SC_CQ_INVALID	0x100
#define EMU_SC_QID_INVALID	0x101
#define EMU_SC_QUEUE_SIZE	0x102
#define EMU_SC_ABORT_LIMIT	0x103
#define EMU_SC_AER_LIMIT	0x105
#define EMU_SC_INVALID_VECTOR	0x108
#define EMU_SC_INVALID_LOG_PAGE	0x109
#define EMU_SC_INVALID_QDEL	0x10c
#define EMU_SC_FEAT_NOT_SAVE	0x10d
#define EMU_SC_FEAT_NOT_CHANGE	0x10e
#define EMU_SC_CMP_FAILED	0x285
#define EMU_SC_WRITE_FAULT	0x280
#define EMU_SC_READ_ERROR	0x281
#define EMU_SC_DNR		0x4000

enum emu_nvme_mode {
	EMU_NVME_MODE_OBSERVE = 1,	/* the VF runs; the model learns */
	EMU_NVME_MODE_RUN,		/* the model is the controller */
};

struct emu_nvme_sq {
	u64 base;
	u16 size;		/* entries, not 0's based */
	u16 cqid;
	u16 head;		/* next entry the controller fetches */
	u16 tail;		/* last tail doorbell value */
	u8 qprio;
	u8 pc;
	u8 valid;
	u8 rsvd;
};

struct emu_nvme_cq {
	u64 base;
	u16 size;
	u16 vector;
	u16 head;		/* last head doorbell value */
	u16 tail;		/* next entry the controller posts */
	u8 phase;		/* phase tag of the entry at tail */
	u8 ien;
	u8 pc;
	u8 valid;
};

/* A captured Identify data structure, keyed like the command that read it. */
struct emu_nvme_idpage {
	u8 valid;
	u8 cns;
	u8 csi;
	u8 rsvd;
	u32 nsid;
	u16 cntid;
	u16 rsvd2;
	u8 data[EMU_NVME_PAGE];
};

struct emu_nvme_identity {
	u64 cap;		/* CAP register of the VF */
	u32 vs;			/* VS register of the VF */
	u16 nr_vectors;		/* MSI-X (or MSI) vectors the guest has */
	u16 max_sqs;		/* I/O SQs the VF grants (Number of Queues) */
	u16 max_cqs;
	u16 rsvd;
	struct emu_nvme_idpage pages[EMU_NVME_MAX_IDPAGES];
};

struct emu_nvme_features {
	u32 arb;		/* 01h */
	u32 pm;			/* 02h */
	u16 temp_thr[9][2];	/* 04h, [TMPSEL][THSEL] */
	u32 err_rec;		/* 05h */
	u32 vwc;		/* 06h */
	u32 nq;			/* 07h, 0's based NCQA << 16 | NSQA */
	u32 irq_coal;		/* 08h */
	u32 atomic;		/* 0Ah */
	u32 aec;		/* 0Bh */
	u32 apst_en;		/* 0Ch dw11 */
	u64 apst[32];		/* 0Ch data */
	u64 ts_value;		/* 0Eh, milliseconds as set by the host */
	u64 ts_set_ns;		/* host time when it was set (not migrated) */
	u32 kato;		/* 0Fh */
	u32 hctm;		/* 10h */
	u32 nopsc;		/* 11h */
	u8 hbs[16];		/* 16h data, the defined bytes */
	u32 swpm;		/* 80h */
	u8 nq_set;		/* Number of Queues was set since reset */
	u8 rsvd[3];
	u32 ivc[EMU_NVME_MAX_VEC];	/* 09h per vector */
};

struct emu_nvme_aer {
	u16 cid[EMU_NVME_MAX_AER];	/* outstanding AER commands */
	u8 nr_cid;
	u8 nr_events;
	u8 masked;		/* event types awaiting their log page */
	u8 rsvd;
	u32 events[EMU_NVME_MAX_EVENTS];	/* queued CQE DW0 values */
};

struct emu_nvme_dbbuf {
	u8 enabled;
	u8 rsvd[7];
	u64 dbs;
	u64 eis;
};

struct emu_nvme_regs {
	u32 cc;
	u32 csts;
	u32 aqa;
	u32 intms;
	u64 asq;
	u64 acq;
};

/* Log page contents the controller accumulates. */
struct emu_nvme_logs {
	u64 data_units_read;	/* 512-byte units; the log reports thousands */
	u64 data_units_written;
	u64 host_reads;
	u64 host_writes;
	u64 err_count;		/* Error Information Log error count */
	u8 err[EMU_NVME_MAX_ERRLOG][64];
	u32 changed_ns[EMU_NVME_MAX_NS];
	u8 nr_changed_ns;
	u8 rsvd[7];
};

/*
 * All state that migrates. Export and import of the state image work on
 * this structure; the glue reads it (emu_nvme_state()) to program a VF.
 */
struct emu_nvme_state {
	struct emu_nvme_regs regs;
	struct emu_nvme_sq sq[EMU_NVME_NR_Q];
	struct emu_nvme_cq cq[EMU_NVME_NR_Q];
	struct emu_nvme_features feat;
	struct emu_nvme_aer aer;
	struct emu_nvme_dbbuf dbbuf;
	struct emu_nvme_logs logs;
	struct emu_nvme_identity id;
};

/* Queue positions at takeover, indexed by queue identifier. */
struct emu_nvme_qpos {
	u16 sq_head;
	u16 sq_tail;
	u16 cq_head;
	u16 cq_tail;
	u8 cq_phase;
	u8 flags;		/* EMU_QPOS_* */
	u8 rsvd[2];
};

/*
 * cq_head is a guess (the host wrote none where the glue could see it):
 * the host's first head write is taken wherever it lies in the ring.
 */
#define EMU_QPOS_CQ_HEAD_GUESS	0x01

struct emu_nvme_positions {
	struct emu_nvme_qpos q[EMU_NVME_NR_Q];
};

/* What a destination VF offers, for compatibility checks. */
struct emu_nvme_ns_limits {
	u32 nsid;
	u8 lba_shift;
	u8 rsvd[3];
	u64 nsze;
	u8 nguid[16];
	u8 eui64[8];
};

struct emu_nvme_limits {
	u16 max_sqs;		/* I/O submission queues */
	u16 max_cqs;
	u16 mqes;		/* 0's based, as CAP.MQES */
	u16 nr_vectors;
	u8 mdts;		/* 0: no limit */
	u8 nr_ns;
	u8 vwc;			/* Identify Controller VWC (bit 0: present) */
	u8 npss;		/* highest power state, 0's based */
	u32 sgls;		/* Identify Controller SGLS */
	u32 oacs;
	u32 oncs;
	u16 kas;		/* Keep Alive Support (100 ms); 0: none */
	u8 mpsmin;		/* CAP.MPSMIN: the unit of mdts */
	/*
	 * Set by the host, not the model: the migration brings the
	 * namespaces' data (a storage copy). The source's namespace
	 * identities may then differ (the guest keeps the ones it was
	 * given) and its namespaces may be smaller.
	 */
	u8 ns_copied;
	struct emu_nvme_ns_limits ns[EMU_NVME_MAX_NS];
};

struct emu_nvme_ctrl;

size_t emu_nvme_ctrl_size(void);
/* ctrl must point to emu_nvme_ctrl_size() zeroed bytes. */
void emu_nvme_init(struct emu_nvme_ctrl *ctrl, const struct emu_host_ops *ops,
		   void *host);
enum emu_nvme_mode emu_nvme_get_mode(const struct emu_nvme_ctrl *ctrl);
const struct emu_nvme_state *emu_nvme_state(const struct emu_nvme_ctrl *ctrl);

/* Identity of the VF being replaced (also learned by the observer). */
int emu_nvme_set_hw(struct emu_nvme_ctrl *ctrl, u64 cap, u32 vs,
		    u16 nr_vectors, u16 max_sqs, u16 max_cqs);
/*
 * Replace the whole identity (the VF's own again, after a guest that came
 * with another model's identity has gone); only with the controller off.
 */
int emu_nvme_set_identity(struct emu_nvme_ctrl *ctrl,
			  const struct emu_nvme_identity *id);
/*
 * Whether two identities present the same controller to a guest: the same
 * CAP, VS and Identify data. The VF's resources may differ.
 */
bool emu_nvme_identity_same(const struct emu_nvme_identity *x,
			    const struct emu_nvme_identity *y);
/*
 * What this controller answers to an Identify command (sqe, 64 bytes):
 * the NVMe status, and on success the EMU_NVME_PAGE bytes of data in buf.
 * Works in every mode; the glue uses it to answer with the guest's
 * identity while another model's VF executes the guest's admin queue.
 */
u16 emu_nvme_identify_answer(struct emu_nvme_ctrl *ctrl, const void *sqe,
			     void *buf);
int emu_nvme_load_identify(struct emu_nvme_ctrl *ctrl, u8 cns, u8 csi,
			   u32 nsid, u16 cntid, const void *page);
void emu_nvme_get_limits(const struct emu_nvme_ctrl *ctrl,
			 struct emu_nvme_limits *lim);
/* Enter RUN mode with the controller disabled (CC.EN = 0). */
void emu_nvme_start_disabled(struct emu_nvme_ctrl *ctrl);

/* Emulated registers page (RUN mode). size is 4 or 8. */
u64 emu_nvme_reg_read(struct emu_nvme_ctrl *ctrl, u32 off, u32 size);
void emu_nvme_reg_write(struct emu_nvme_ctrl *ctrl, u32 off, u64 val,
			u32 size);
/* off is relative to the start of BAR0; doorbells start at 0x1000. */
void emu_nvme_doorbell_write(struct emu_nvme_ctrl *ctrl, u32 off, u32 val);
/* Process up to budget commands; returns the number processed. */
int emu_nvme_poll(struct emu_nvme_ctrl *ctrl, int budget);
/* Completion of a backend request; status 0 or a negative errno. */
void emu_nvme_blk_complete(struct emu_nvme_ctrl *ctrl,
			   struct emu_blk_req *req, int status);
/*
 * The same for one of several completions that arrive together: the
 * command finishes (CQE posted) but nothing is signalled. The batch ends
 * with emu_nvme_blk_complete() or emu_nvme_poll(), which raise the
 * interrupts once for all of them.
 */
void emu_nvme_blk_complete_more(struct emu_nvme_ctrl *ctrl,
				struct emu_blk_req *req, int status);
/*
 * When the host must call emu_nvme_poll() even without new doorbells: the
 * now_ns() time at which a coalesced interrupt falls due, or 0 for none.
 */
u64 emu_nvme_timer_ns(const struct emu_nvme_ctrl *ctrl);
/* Backend requests still owned by the host. */
u32 emu_nvme_inflight(const struct emu_nvme_ctrl *ctrl);
/*
 * Whether completion queue cqid has served one submission queue only since
 * it was created: its tail then counts exactly that queue's completions.
 */
bool emu_nvme_cq_counts_one_sq(const struct emu_nvme_ctrl *ctrl, u16 cqid);

/* Admin observer (OBSERVE mode). cqe NULL: submitted, not completed. */
void emu_nvme_observe_admin(struct emu_nvme_ctrl *ctrl, const void *sqe,
			    const void *cqe, const void *data, u32 len);
void emu_nvme_observe_reg_write(struct emu_nvme_ctrl *ctrl, u32 off,
				u64 val, u32 size);
/*
 * Switch from OBSERVE to RUN at the given queue positions. Returns 0 or
 * -EINVAL with a message naming the offending queue in err.
 */
int emu_nvme_takeover(struct emu_nvme_ctrl *ctrl,
		      const struct emu_nvme_positions *pos,
		      char *err, size_t errlen);
/*
 * Whether the state is one a takeover or an image would accept; 0 or
 * -EINVAL with the offending field in err. Cheap: checked before a switch
 * stops anything.
 */
int emu_nvme_check(const struct emu_nvme_ctrl *ctrl, char *err, size_t errlen);
/*
 * Stop emulating so the glue can program a VF from emu_nvme_state().
 * -EBUSY while backend requests are in flight.
 */
int emu_nvme_handback(struct emu_nvme_ctrl *ctrl);

/* Raise an asynchronous event (type | info << 8 | log page << 16). */
void emu_nvme_async_event(struct emu_nvme_ctrl *ctrl, u8 type, u8 info,
			  u8 lid);
/* Report a namespace attribute change (e.g. capacity of nsid changed). */
void emu_nvme_ns_changed(struct emu_nvme_ctrl *ctrl, u32 nsid);

#endif /* EMU_NVME_H */
