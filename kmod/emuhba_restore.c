// SPDX-License-Identifier: GPL-2.0-only
/*
 * The switch from emulated back to direct mode, with the vCPUs stopped (the
 * migration destination's RUNNING_P2P -> RUNNING arc, or a source whose VM was
 * stopped and continued). An NVMe controller's queue pointers cannot be set,
 * so the VF is brought to the guest's positions by running commands through
 * the guest's own queues:
 *
 *  1. save every ring and the shadow doorbell buffer the VF will write;
 *  2. enable the VF with the guest's admin queue, re-apply the features the
 *     guest has (where the VF's differ), re-create the I/O queues;
 *  3. advance each I/O queue pair to the guest's positions with harmless
 *     commands (Dataset Management without Deallocate, which changes
 *     nothing, or Flush), then configure the doorbell buffer, then advance
 *     the admin queue with Get Features; the numbers are chosen so that
 *     submission head, completion tail and phase all match;
 *  4. put the saved memory back (the guest never sees these commands),
 *     re-arm the guest's outstanding AERs, and ring the guest's tails.
 *
 * Any failure disables the VF, puts the memory back and leaves the model in
 * charge: the guest goes on with the emulated device it had.
 */
#include <linux/delay.h>
#include <linux/io.h>
#include <linux/ktime.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/vfio.h>

#include "emuhba.h"

/* Command identifiers of our own commands: never outstanding with a guest's. */
#define EMUHBA_RST_CID		0xe000
#define EMUHBA_RST_MAX_SAVED	(2 * EMU_NVME_NR_Q + 2)

struct emuhba_saved {
	u64 iova;
	u32 len;
	u8 *data;
};

struct emuhba_restore {
	struct work_struct work;
	struct emuhba_adapter *a;
	const struct emu_nvme_state *st;
	struct emuhba_switch_timing t;
	char msg[EMUHBA_BACKEND_MAX + 64];
	int ret;
	struct completion done;

	void __iomem *bar;
	u32 stride;		/* doorbell stride in bytes */
	u32 nsid;		/* the namespace our I/O commands name */
	u8 io_opc;		/* the harmless I/O command */
	unsigned long deadline;	/* of the whole switch, in jiffies */
	/* the VF's admin queue as we drive it */
	u16 asq_tail;
	u16 acq_tail;
	u8 acq_phase;
	u32 admin_posted;
	u32 admin_consumed;
	u32 admin_consume_max;	/* never free entries the guest still has */
	u16 cid;
	/* guest positions the VF must end at */
	u16 sq_tail[EMU_NVME_NR_Q];
	u16 cq_head[EMU_NVME_NR_Q];

	struct emuhba_saved saved[EMUHBA_RST_MAX_SAVED];
	unsigned int nr_saved;
	struct nvme_command *sqes;	/* a batch of submission entries */
};

static int emuhba_rst_w32(struct emuhba_restore *r, u32 off, u32 val)
{
	return vfio_pci_core_iowrite32(&r->a->core, true, val, r->bar + off);
}

/* A lost doorbell shows up as a missing completion, reported there. */
static void emuhba_rst_db(struct emuhba_restore *r, u16 qid, bool cq, u16 val)
{
	emuhba_rst_w32(r, NVME_REG_DBS + (2 * qid + cq) * r->stride, val);
}

static int emuhba_rst_csts(struct emuhba_restore *r, u32 *csts)
{
	int ret;

	ret = vfio_pci_core_ioread32(&r->a->core, true, csts,
				     r->bar + NVME_REG_CSTS);
	if (ret)
		return ret;
	if (*csts == ~0U)
		return -ENODEV;	/* the VF is gone */
	if (*csts & NVME_CSTS_CFS)
		return -EIO;
	return 0;
}

static int emuhba_rst_save(struct emuhba_restore *r, u64 iova, u32 len)
{
	struct emuhba_saved *s;
	int ret;

	if (WARN_ON(r->nr_saved == ARRAY_SIZE(r->saved)))
		return -ENOSPC;
	s = &r->saved[r->nr_saved];
	s->data = kvmalloc(len, GFP_KERNEL);
	if (!s->data)
		return -ENOMEM;
	ret = emuhba_guest_read(r->a, iova, s->data, len);
	if (ret) {
		kvfree(s->data);
		s->data = NULL;
		return ret;
	}
	s->iova = iova;
	s->len = len;
	r->nr_saved++;
	return 0;
}

/* Put back what the guest's memory held; false if any write failed. */
static bool emuhba_rst_put_back(struct emuhba_restore *r)
{
	bool ok = true;
	unsigned int i;

	for (i = 0; i < r->nr_saved; i++)
		if (vfio_dma_rw(&r->a->core.vdev, r->saved[i].iova,
				r->saved[i].data, r->saved[i].len, true))
			ok = false;
	return ok;
}

static void emuhba_rst_free(struct emuhba_restore *r)
{
	while (r->nr_saved)
		kvfree(r->saved[--r->nr_saved].data);
	kvfree(r->sqes);
}

static void emuhba_rst_sqe(struct nvme_command *c, u8 opc, u16 cid, u32 nsid,
			   u64 prp1, u64 prp2, u32 cdw10, u32 cdw11)
{
	memset(c, 0, sizeof(*c));
	c->common.opcode = opc;
	emuhba_sqe_set_cid(c, cid);
	c->common.nsid = cpu_to_le32(nsid);
	c->common.dptr.prp1 = cpu_to_le64(prp1);
	c->common.dptr.prp2 = cpu_to_le64(prp2);
	c->common.cdw10 = cpu_to_le32(cdw10);
	c->common.cdw11 = cpu_to_le32(cdw11);
}

/*
 * Wait until the VF has posted the completion queue entry at slot with the
 * given phase; the entries before it in the ring are then posted too.
 */
static int emuhba_rst_wait_cqe(struct emuhba_restore *r, u64 cq_base, u16 slot,
			       u8 phase, struct nvme_completion *cqe)
{
	u32 csts;
	int ret;

	for (;;) {
		ret = emuhba_guest_read(r->a, cq_base + (u64)slot * sizeof(*cqe),
					cqe, sizeof(*cqe));
		if (ret)
			return ret;
		if (emuhba_cqe_phase(cqe) == phase)
			return 0;
		ret = emuhba_rst_csts(r, &csts);
		if (ret)
			return ret;
		if (time_after(jiffies, r->deadline))
			return -ETIMEDOUT;
		usleep_range(20, 100);
	}
}

/* One admin command on the VF; returns the NVMe status or a negative errno. */
static int emuhba_rst_admin(struct emuhba_restore *r, u8 opc, u32 nsid,
			    u64 prp1, u64 prp2, u32 cdw10, u32 cdw11, u32 *dw0)
{
	const struct emu_nvme_regs *regs = &r->st->regs;
	u16 asize = (regs->aqa & 0xfff) + 1, csize = ((regs->aqa >> 16) & 0xfff) + 1;
	struct nvme_completion cqe;
	struct nvme_command sqe;
	int ret;

	emuhba_rst_sqe(&sqe, opc, EMUHBA_RST_CID | (r->cid++ & 0xfff), nsid, prp1,
		       prp2, cdw10, cdw11);
	ret = vfio_dma_rw(&r->a->core.vdev, regs->asq + (u64)r->asq_tail * sizeof(sqe),
			  &sqe, sizeof(sqe), true);
	if (ret)
		return ret;
	r->asq_tail = (r->asq_tail + 1) % asize;
	emuhba_rst_db(r, 0, false, r->asq_tail);
	ret = emuhba_rst_wait_cqe(r, regs->acq, r->acq_tail, r->acq_phase, &cqe);
	if (ret)
		return ret;
	if (++r->acq_tail == csize) {
		r->acq_tail = 0;
		r->acq_phase ^= 1;
	}
	r->admin_posted++;
	if (r->admin_consumed < min(r->admin_posted, r->admin_consume_max)) {
		r->admin_consumed = min(r->admin_posted, r->admin_consume_max);
		emuhba_rst_db(r, 0, true, r->admin_consumed % csize);
	}
	if (dw0)
		*dw0 = le32_to_cpu(cqe.result.u32);
	return emuhba_cqe_status(&cqe) & NVME_SCT_SC_MASK;
}

static int emuhba_rst_admin_ok(struct emuhba_restore *r, const char *what,
			       u8 opc, u32 nsid, u64 prp1, u64 prp2, u32 cdw10,
			       u32 cdw11, u32 *dw0)
{
	int ret = emuhba_rst_admin(r, opc, nsid, prp1, prp2, cdw10, cdw11, dw0);

	if (ret > 0) {
		snprintf(r->msg, sizeof(r->msg),
			 "the VF refused %s (status 0x%03x)", what, ret);
		return -EIO;
	}
	if (ret < 0)
		snprintf(r->msg, sizeof(r->msg), "%s: %s (%d)", what,
			 ret == -ETIMEDOUT ? "no completion from the VF" :
			 ret == -ENODEV ? "the VF is gone" : "failed", ret);
	return ret;
}

/* Give the VF a feature's value as the guest has it, if it differs. */
static int emuhba_rst_feature(struct emuhba_restore *r, u8 fid, u32 nsid,
			      u32 sel, u32 want, u32 mask)
{
	u32 cur;
	int ret;

	ret = emuhba_rst_admin(r, nvme_admin_get_features, nsid, 0, 0, fid, sel,
			       &cur);
	if (ret < 0) {
		snprintf(r->msg, sizeof(r->msg),
			 "Get Features 0x%02x: no answer from the VF (%d)", fid, ret);
		return ret;
	}
	/* A feature the VF does not have was never set by the guest either. */
	if (ret > 0 || (cur & mask) == (want & mask))
		return 0;
	ret = emuhba_rst_admin(r, nvme_admin_set_features, nsid, 0, 0, fid,
			       (sel & ~mask) | (want & mask), NULL);
	/*
	 * Not changeable on the VF: the guest could not have changed it on
	 * one either, the value it knows is a model default.
	 */
	if (ret == NVME_SC_FEATURE_NOT_CHANGEABLE || !ret)
		return 0;
	snprintf(r->msg, sizeof(r->msg), ret > 0 ?
		 "the VF refused Set Features 0x%02x (status 0x%03x)" :
		 "Set Features 0x%02x: no answer from the VF (%d)", fid, ret);
	return ret > 0 ? -EIO : ret;
}

static int emuhba_rst_features(struct emuhba_restore *r)
{
	const struct emu_nvme_features *f = &r->st->feat;
	static const struct {
		u8 fid;
		u16 off;	/* of the value in struct emu_nvme_features */
	} plain[] = {
		{ NVME_FEAT_ARBITRATION,
		  offsetof(struct emu_nvme_features, arb) },
		{ NVME_FEAT_POWER_MGMT,
		  offsetof(struct emu_nvme_features, pm) },
		{ NVME_FEAT_ERR_RECOVERY,
		  offsetof(struct emu_nvme_features, err_rec) },
		{ NVME_FEAT_VOLATILE_WC,
		  offsetof(struct emu_nvme_features, vwc) },
		{ NVME_FEAT_IRQ_COALESCE,
		  offsetof(struct emu_nvme_features, irq_coal) },
		{ NVME_FEAT_WRITE_ATOMIC,
		  offsetof(struct emu_nvme_features, atomic) },
		{ NVME_FEAT_ASYNC_EVENT,
		  offsetof(struct emu_nvme_features, aec) },
		{ NVME_FEAT_KATO,
		  offsetof(struct emu_nvme_features, kato) },
	};
	unsigned int i, th;
	u16 qid;
	int ret;

	for (i = 0; i < ARRAY_SIZE(plain); i++) {
		/* Error recovery is per namespace (DULBE). */
		ret = emuhba_rst_feature(r, plain[i].fid,
					 plain[i].fid == NVME_FEAT_ERR_RECOVERY ?
					 r->nsid : 0, 0,
					 *(const u32 *)((const u8 *)f + plain[i].off),
					 ~0U);
		if (ret)
			return ret;
	}
	/* Composite temperature thresholds: over (THSEL 0) and under (1). */
	for (th = 0; th < 2; th++) {
		ret = emuhba_rst_feature(r, NVME_FEAT_TEMP_THRESH, 0,
					 th ? NVME_TEMP_THRESH_TYPE_UNDER : 0,
					 f->temp_thr[0][th],
					 NVME_TEMP_THRESH_MASK);
		if (ret)
			return ret;
	}
	/*
	 * Per-vector coalescing opt-outs only matter when coalescing is on;
	 * otherwise the VF's own choice is as good as the guest's.
	 */
	for (qid = 1; f->irq_coal && qid < EMU_NVME_NR_Q; qid++) {
		const struct emu_nvme_cq *cq = &r->st->cq[qid];

		if (!cq->valid || !cq->ien || cq->vector >= EMU_NVME_MAX_VEC)
			continue;
		ret = emuhba_rst_feature(r, NVME_FEAT_IRQ_CONFIG, 0, cq->vector,
					 f->ivc[cq->vector], BIT(16));
		if (ret)
			return ret;
	}
	return 0;
}

static int emuhba_rst_queues(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	char what[40];
	u16 qid;
	int ret;

	for (qid = 1; qid < EMU_NVME_NR_Q; qid++) {
		const struct emu_nvme_cq *cq = &st->cq[qid];

		if (!cq->valid)
			continue;
		snprintf(what, sizeof(what), "Create I/O CQ %u", qid);
		ret = emuhba_rst_admin_ok(r, what, nvme_admin_create_cq, 0,
					  cq->base, 0,
					  (u32)(cq->size - 1) << 16 | qid,
					  (u32)cq->vector << 16 |
					  (cq->ien ? NVME_CQ_IRQ_ENABLED : 0) |
					  (cq->pc ? NVME_QUEUE_PHYS_CONTIG : 0),
					  NULL);
		if (ret)
			return ret;
	}
	for (qid = 1; qid < EMU_NVME_NR_Q; qid++) {
		const struct emu_nvme_sq *sq = &st->sq[qid];

		if (!sq->valid)
			continue;
		snprintf(what, sizeof(what), "Create I/O SQ %u", qid);
		ret = emuhba_rst_admin_ok(r, what, nvme_admin_create_sq, 0,
					  sq->base, 0,
					  (u32)(sq->size - 1) << 16 | qid,
					  (u32)sq->cqid << 16 |
					  (sq->qprio & 3) << 1 |
					  (sq->pc ? NVME_QUEUE_PHYS_CONTIG : 0),
					  NULL);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * How many completions (at least min) a fresh queue pair must post so that
 * its completion queue ends at tail with phase, and its submission queue
 * (which also fetched extra commands that do not complete) at head. A fresh
 * completion queue posts with phase 1 and flips at each wrap. Returns
 * false when no number fits: the positions are not those of one queue pair.
 */
static bool emuhba_rst_solve(u32 min, u16 tail, u8 phase, u16 cq_size,
			     u32 extra, u16 head, u16 sq_size, u32 *n)
{
	u32 laps, max_laps = 2 * (u32)sq_size + 2 + min / cq_size;

	for (laps = 0; laps <= max_laps; laps++) {
		u32 cand = tail + laps * (u32)cq_size;

		if (cand < min || (laps & 1) == phase)
			continue;
		if ((cand + extra) % sq_size == head) {
			*n = cand;
			return true;
		}
	}
	return false;
}

/*
 * Run harmless commands through I/O queue pair qid, a batch at a time, until
 * its positions are the guest's. Completions the guest has not consumed
 * stay unconsumed on the VF too: the head doorbell never passes the
 * guest's head.
 */
static int emuhba_rst_advance_io(struct emuhba_restore *r, u16 qid)
{
	const struct emu_nvme_sq *sq = &r->st->sq[qid];
	const struct emu_nvme_cq *cq = &r->st->cq[sq->cqid];
	u16 sq_tail = 0, cq_tail = 0, b, i, last;
	struct nvme_completion cqe;
	u8 phase = 1;
	u32 n, left, posted = 0, consumed = 0, unread;

	unread = (cq->tail + cq->size - r->cq_head[sq->cqid]) % cq->size;
	if (!emuhba_rst_solve(unread, cq->tail, cq->phase, cq->size, 0,
			      sq->head, sq->size, &n)) {
		snprintf(r->msg, sizeof(r->msg),
			 "queue %u: head %u and completion tail %u/%u do not belong together",
			 qid, sq->head, cq->tail, cq->phase);
		return -ERANGE;
	}
	for (left = n; left; left -= b) {
		int ret;

		b = min3(left, (u32)sq->size - 1,
			 (u32)cq->size - 1 - (posted - consumed));
		/*
		 * Dataset Management without Deallocate changes nothing and
		 * costs nothing; its range list (never read without
		 * Deallocate) points into the ring. Flush otherwise.
		 */
		for (i = 0; i < b; i++)
			emuhba_rst_sqe(&r->sqes[i], r->io_opc, EMUHBA_RST_CID | i,
				       r->nsid,
				       r->io_opc == nvme_cmd_dsm ? sq->base : 0,
				       0, 0, 0);
		/* The batch may wrap around the end of the ring. */
		i = min_t(u16, b, sq->size - sq_tail);
		ret = vfio_dma_rw(&r->a->core.vdev,
				  sq->base + (u64)sq_tail * sizeof(*r->sqes),
				  r->sqes, (size_t)i * sizeof(*r->sqes), true);
		if (!ret && i < b)
			ret = vfio_dma_rw(&r->a->core.vdev, sq->base, &r->sqes[i],
					  (size_t)(b - i) * sizeof(*r->sqes),
					  true);
		if (ret)
			return ret;
		sq_tail = (sq_tail + b) % sq->size;
		emuhba_rst_db(r, qid, false, sq_tail);

		last = (cq_tail + b - 1) % cq->size;
		ret = emuhba_rst_wait_cqe(r, cq->base, last,
					  last < cq_tail ? !phase : phase, &cqe);
		if (ret) {
			snprintf(r->msg, sizeof(r->msg),
				 "queue %u: the VF did not complete %u %s commands (%d)",
				 qid, b, r->io_opc == nvme_cmd_dsm ?
				 "Dataset Management" : "Flush", ret);
			return ret;
		}
		if (cq_tail + b >= cq->size)
			phase ^= 1;
		cq_tail = (cq_tail + b) % cq->size;
		posted += b;
		if (consumed < min(posted, n - unread)) {
			consumed = min(posted, n - unread);
			emuhba_rst_db(r, sq->cqid, true, consumed % cq->size);
		}
	}
	return 0;
}

/*
 * Where the guest is: tails and heads from its shadow doorbell buffer when
 * it has one (fresher than the model's copy), else from the model.
 */
static int emuhba_rst_guest_positions(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	__le32 v;
	u16 qid;
	int ret;

	for (qid = 0; qid < EMU_NVME_NR_Q; qid++) {
		const struct emu_nvme_sq *sq = &st->sq[qid];
		const struct emu_nvme_cq *cq = &st->cq[qid];

		r->sq_tail[qid] = sq->tail;
		r->cq_head[qid] = cq->head;
		if (!qid || !st->dbbuf.enabled)
			continue;
		if (sq->valid) {
			ret = emuhba_guest_read(r->a, st->dbbuf.dbs +
						2 * qid * r->stride, &v, sizeof(v));
			if (ret)
				return ret;
			r->sq_tail[qid] = le32_to_cpu(v);
			if (r->sq_tail[qid] >= sq->size)
				return -ERANGE;
		}
		if (cq->valid) {
			ret = emuhba_guest_read(r->a, st->dbbuf.dbs +
						(2 * qid + 1) * r->stride, &v,
						sizeof(v));
			if (ret)
				return ret;
			r->cq_head[qid] = le32_to_cpu(v);
			if (r->cq_head[qid] >= cq->size)
				return -ERANGE;
		}
	}
	return 0;
}

static int emuhba_rst_check(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	u16 qid, other;

	if (st->regs.csts & (EMU_CSTS_CFS | EMU_CSTS_SHST_MASK) ||
	    !(st->regs.csts & EMU_CSTS_RDY)) {
		strscpy(r->msg, "the controller is failed, shut down or not ready",
			sizeof(r->msg));
		return -EINVAL;
	}
	if (emu_nvme_inflight(r->a->model)) {
		snprintf(r->msg, sizeof(r->msg), "%u commands still held by the model",
			 emu_nvme_inflight(r->a->model));
		return -EBUSY;
	}
	/* The VF would not know them: they stay with the model. */
	if (st->aer.nr_events) {
		snprintf(r->msg, sizeof(r->msg),
			 "%u asynchronous events not yet reported to the guest (first: type %u info %#x log %#x, %u AERs outstanding)",
			 st->aer.nr_events, st->aer.events[0] & 7,
			 (st->aer.events[0] >> 8) & 0xff,
			 (st->aer.events[0] >> 16) & 0xff, st->aer.nr_cid);
		return -EBUSY;
	}
	for (qid = 1; qid < EMU_NVME_NR_Q; qid++) {
		if (!st->sq[qid].valid)
			continue;
		if (!st->sq[qid].pc || !st->cq[st->sq[qid].cqid].pc) {
			snprintf(r->msg, sizeof(r->msg),
				 "queue %u is not physically contiguous", qid);
			return -EOPNOTSUPP;
		}
		for (other = 1; other < qid; other++) {
			if (st->sq[other].valid &&
			    st->sq[other].cqid == st->sq[qid].cqid) {
				snprintf(r->msg, sizeof(r->msg),
					 "submission queues %u and %u share completion queue %u: positions cannot be reproduced",
					 other, qid, st->sq[qid].cqid);
				return -EOPNOTSUPP;
			}
		}
	}
	if ((r->sq_tail[0] + ((st->regs.aqa & 0xfff) + 1) - st->sq[0].head) %
	    ((st->regs.aqa & 0xfff) + 1) + st->aer.nr_cid >
	    (st->regs.aqa & 0xfff)) {
		strscpy(r->msg, "too many outstanding AERs", sizeof(r->msg));
		return -ERANGE;
	}
	return 0;
}

/*
 * The VF must lay out its doorbells as the guest knows them and take every
 * queue size the guest uses (the image check covers the rest).
 */
static int emuhba_rst_check_vf(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	u32 lo, hi, mqes;
	u64 cap;
	u16 qid;
	int ret;

	ret = vfio_pci_core_ioread32(&r->a->core, true, &lo,
				     r->bar + NVME_REG_CAP);
	if (!ret)
		ret = vfio_pci_core_ioread32(&r->a->core, true, &hi,
					     r->bar + NVME_REG_CAP + 4);
	if (!ret && lo == ~0U && hi == ~0U)
		ret = -ENODEV;
	if (ret) {
		snprintf(r->msg, sizeof(r->msg), "cannot read the VF's CAP (%d)", ret);
		return ret;
	}
	cap = (u64)hi << 32 | lo;
	if (NVME_CAP_STRIDE(cap) != NVME_CAP_STRIDE(st->id.cap)) {
		snprintf(r->msg, sizeof(r->msg),
			 "cap.dstrd: the VF's doorbell stride %u is not the guest's %u",
			 (u32)NVME_CAP_STRIDE(cap),
			 (u32)NVME_CAP_STRIDE(st->id.cap));
		return -EOPNOTSUPP;
	}
	mqes = NVME_CAP_MQES(cap) + 1;
	for (qid = 0; qid < EMU_NVME_NR_Q; qid++) {
		if ((st->sq[qid].valid && st->sq[qid].size > mqes) ||
		    (st->cq[qid].valid && st->cq[qid].size > mqes)) {
			snprintf(r->msg, sizeof(r->msg),
				 "cap.mqes: queue %u is larger than the VF's %u entries",
				 qid, mqes);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

/* Everything the VF will write into the guest's memory, saved first. */
static int emuhba_rst_save_all(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	u16 qid;
	int ret;

	ret = emuhba_rst_save(r, st->regs.asq,
			      ((st->regs.aqa & 0xfff) + 1) *
			      sizeof(struct nvme_command));
	if (!ret)
		ret = emuhba_rst_save(r, st->regs.acq,
				      (((st->regs.aqa >> 16) & 0xfff) + 1) *
				      sizeof(struct nvme_completion));
	for (qid = 1; !ret && qid < EMU_NVME_NR_Q; qid++) {
		if (st->sq[qid].valid)
			ret = emuhba_rst_save(r, st->sq[qid].base,
					      st->sq[qid].size *
					      sizeof(struct nvme_command));
		if (!ret && st->cq[qid].valid)
			ret = emuhba_rst_save(r, st->cq[qid].base,
					      st->cq[qid].size *
					      sizeof(struct nvme_completion));
	}
	if (!ret && st->dbbuf.enabled) {
		ret = emuhba_rst_save(r, st->dbbuf.dbs, EMU_NVME_PAGE);
		if (!ret)
			ret = emuhba_rst_save(r, st->dbbuf.eis, EMU_NVME_PAGE);
	}
	if (ret && !r->msg[0])
		snprintf(r->msg, sizeof(r->msg),
			 "cannot read the guest's queues (%d)", ret);
	return ret;
}

/*
 * Completion queues start all zeroes: the VF's first lap posts phase 1, its
 * second phase 0 over its own first lap, so a posted entry is never
 * mistaken for what the guest's queue held before.
 */
static int emuhba_rst_clear_cqs(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	const size_t cqe_size = sizeof(struct nvme_completion);
	u32 len, max = (((st->regs.aqa >> 16) & 0xfff) + 1) * cqe_size;
	u16 qid;
	u8 *zero;
	int ret;

	for (qid = 1; qid < EMU_NVME_NR_Q; qid++)
		if (st->cq[qid].valid)
			max = max_t(u32, max, st->cq[qid].size * cqe_size);
	zero = kvzalloc(max, GFP_KERNEL);
	if (!zero)
		return -ENOMEM;
	ret = vfio_dma_rw(&r->a->core.vdev, st->regs.acq, zero,
			  (((st->regs.aqa >> 16) & 0xfff) + 1) * cqe_size, true);
	for (qid = 1; !ret && qid < EMU_NVME_NR_Q; qid++) {
		if (!st->cq[qid].valid)
			continue;
		len = st->cq[qid].size * cqe_size;
		ret = vfio_dma_rw(&r->a->core.vdev, st->cq[qid].base, zero, len,
				  true);
	}
	kvfree(zero);
	if (ret)
		snprintf(r->msg, sizeof(r->msg),
			 "cannot prepare the guest's completion queues (%d)", ret);
	return ret;
}

/* The admin queue registers as the guest set them. */
static int emuhba_rst_regs(struct emuhba_restore *r)
{
	const struct emu_nvme_regs *regs = &r->st->regs;
	int ret;

	ret = emuhba_rst_w32(r, NVME_REG_AQA, regs->aqa);
	if (!ret)
		ret = emuhba_rst_w32(r, NVME_REG_ASQ, lower_32_bits(regs->asq));
	if (!ret)
		ret = emuhba_rst_w32(r, NVME_REG_ASQ + 4, upper_32_bits(regs->asq));
	if (!ret)
		ret = emuhba_rst_w32(r, NVME_REG_ACQ, lower_32_bits(regs->acq));
	if (!ret)
		ret = emuhba_rst_w32(r, NVME_REG_ACQ + 4, upper_32_bits(regs->acq));
	return ret;
}

/* The VF enabled with the guest's admin queue, and ready. */
static int emuhba_rst_vf_enable(struct emuhba_restore *r)
{
	const struct emu_nvme_regs *regs = &r->st->regs;
	u32 csts;
	int ret;

	ret = emuhba_vf_disable(r->a);
	if (ret)
		return ret;
	ret = emuhba_rst_regs(r);
	if (!ret)
		ret = emuhba_rst_w32(r, NVME_REG_CC, regs->cc | NVME_CC_ENABLE);
	if (ret)
		return ret;
	for (;;) {
		ret = emuhba_rst_csts(r, &csts);
		if (ret)
			return ret;
		if (csts & NVME_CSTS_RDY)
			return 0;
		if (time_after(jiffies, r->deadline))
			return -ETIMEDOUT;
		usleep_range(200, 500);
	}
}

/* The admin queue's last stretch and the guest's outstanding AERs. */
static int emuhba_rst_admin_finish(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	u16 asize = (st->regs.aqa & 0xfff) + 1;
	u16 csize = ((st->regs.aqa >> 16) & 0xfff) + 1;
	u32 n, x, unread;
	int ret;

	unread = (st->cq[0].tail + csize - r->cq_head[0]) % csize;
	if (!emuhba_rst_solve(r->admin_posted + unread, st->cq[0].tail,
			      st->cq[0].phase, csize, st->aer.nr_cid,
			      st->sq[0].head, asize, &n)) {
		snprintf(r->msg, sizeof(r->msg),
			 "admin queue: head %u, %u AERs and completion tail %u/%u do not belong together",
			 st->sq[0].head, st->aer.nr_cid, st->cq[0].tail,
			 st->cq[0].phase);
		return -ERANGE;
	}
	r->admin_consume_max = n - unread;
	for (x = r->admin_posted; x < n; x++) {
		ret = emuhba_rst_admin_ok(r, "Get Features",
					  nvme_admin_get_features, 0, 0, 0,
					  NVME_FEAT_NUM_QUEUES, 0, NULL);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * The guest's outstanding AERs go into the slots just before its head
 * (slots it has consumed), in the saved copy of the admin queue, so that
 * they are in place when the memory goes back.
 */
static void emuhba_rst_place_aers(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	struct emuhba_observer *obs = &r->a->obs;
	/* The first saved range is the admin submission queue. */
	struct nvme_command *asq = (struct nvme_command *)r->saved[0].data;
	u16 asize = (st->regs.aqa & 0xfff) + 1, slot;
	struct nvme_command *sqe;
	unsigned int i;

	for (i = 0; i < st->aer.nr_cid; i++) {
		slot = (r->asq_tail + i) % asize;
		sqe = &asq[slot];
		emuhba_rst_sqe(sqe, nvme_admin_async_event, st->aer.cid[i], 0, 0,
			       0, 0, 0);
		/* The observer knows them as fetched and not completed. */
		obs->pending[slot] = *sqe;
		emuhba_sqe_set_outstanding(&obs->pending[slot], true);
	}
}

/* After the saved memory is back: the AERs, then the guest's own tails. */
static int emuhba_rst_go(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	struct emuhba_observer *obs = &r->a->obs;
	u16 asize = (st->regs.aqa & 0xfff) + 1, qid;
	u32 csts;
	int ret;

	r->asq_tail = (r->asq_tail + st->aer.nr_cid) % asize;
	if (WARN_ON(r->asq_tail != st->sq[0].head))
		return -EINVAL;
	obs->sq_head = r->asq_tail;
	obs->cq_head = r->acq_tail;
	obs->phase = r->acq_phase;
	ret = emuhba_rst_w32(r, NVME_REG_DBS, r->asq_tail);
	if (!ret && r->sq_tail[0] != r->asq_tail)
		ret = emuhba_rst_w32(r, NVME_REG_DBS, r->sq_tail[0]);
	for (qid = 1; !ret && qid < EMU_NVME_NR_Q; qid++) {
		if (st->sq[qid].valid)
			ret = emuhba_rst_w32(r, NVME_REG_DBS + 2 * qid * r->stride,
					     r->sq_tail[qid]);
	}
	/* Also flushes the posted doorbell writes. */
	if (!ret)
		ret = emuhba_rst_csts(r, &csts);
	if (ret)
		snprintf(r->msg, sizeof(r->msg),
			 "the VF did not take the guest's doorbells (%d)", ret);
	return ret;
}

static int emuhba_rst_observer(struct emuhba_restore *r)
{
	const struct emu_nvme_regs *regs = &r->st->regs;
	struct emuhba_observer *obs = &r->a->obs;

	kvfree(obs->pending);
	obs->asq = regs->asq;
	obs->acq = regs->acq;
	obs->sq_size = (regs->aqa & 0xfff) + 1;
	obs->cq_size = ((regs->aqa >> 16) & 0xfff) + 1;
	obs->pending = kvcalloc(obs->sq_size, sizeof(*obs->pending), GFP_KERNEL);
	obs->pending_slots = obs->pending ? obs->sq_size : 0;
	obs->enabled = !!obs->pending;
	obs->lost = !obs->pending;
	obs->budget = obs->cq_size;
	return obs->pending ? 0 : -ENOMEM;
}

static u32 emuhba_rst_first_nsid(const struct emu_nvme_state *st)
{
	unsigned int i;

	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++)
		if (st->id.pages[i].valid && st->id.pages[i].cns == 0 &&
		    st->id.pages[i].nsid)
			return st->id.pages[i].nsid;
	return 1;
}

static u32 emuhba_rst_oncs(struct emuhba_adapter *a)
{
	struct emu_nvme_limits *lim = kzalloc(sizeof(*lim), GFP_KERNEL);
	u32 oncs = 0;

	if (lim) {
		emu_nvme_get_limits(a->model, lim);
		oncs = lim->oncs;
		kfree(lim);
	}
	return oncs;
}

/* What the whole switch goes by: the guest's controller and the VF's BAR. */
static int emuhba_rst_init(struct emuhba_restore *r)
{
	struct emuhba_adapter *a = r->a;
	const struct emu_nvme_state *st;
	int ret;

	st = emu_nvme_state(a->model);
	r->st = st;
	r->stride = 4 << NVME_CAP_STRIDE(st->id.cap);
	r->nsid = emuhba_rst_first_nsid(st);
	r->io_opc = emuhba_rst_oncs(a) & NVME_CTRL_ONCS_DSM ? nvme_cmd_dsm :
		    nvme_cmd_flush;
	r->deadline = jiffies + msecs_to_jiffies(a->policy.switch_timeout_ms);
	r->acq_phase = 1;
	r->admin_consume_max = U32_MAX;
	ret = vfio_pci_core_setup_barmap(&a->core, 0);
	if (ret)
		return ret;
	r->bar = a->core.barmap[0];
	return 0;
}

/*
 * The guest has not enabled the controller. No queues: the VF only needs
 * the registers the guest set. model_lock held.
 */
static int emuhba_rst_disabled(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	struct emuhba_adapter *a = r->a;
	int ret;

	lockdep_assert_held(&a->model_lock);
	emuhba_observer_stop_locked(a);
	ret = emuhba_vf_disable(a);
	if (!ret)
		ret = emuhba_rst_regs(r);
	if (!ret)
		ret = emuhba_rst_w32(r, NVME_REG_CC,
				     st->regs.cc & ~NVME_CC_ENABLE);
	if (ret) {
		snprintf(r->msg, sizeof(r->msg),
			 "cannot program the VF's registers (%d)", ret);
		return ret;
	}
	a->obs.asq = st->regs.asq;
	a->obs.acq = st->regs.acq;
	a->obs.sq_size = (st->regs.aqa & 0xfff) + 1;
	a->obs.cq_size = ((st->regs.aqa >> 16) & 0xfff) + 1;
	WARN_ON_ONCE(emu_nvme_handback(a->model));
	return 0;
}

/*
 * 1. Where the guest is, whether the VF can be brought there, and every
 * ring and the shadow doorbell buffer saved; model_lock held.
 */
static int emuhba_rst_prepare(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	u16 qid, max_sq;
	int ret;

	lockdep_assert_held(&r->a->model_lock);
	ret = emuhba_rst_guest_positions(r);
	if (!ret)
		ret = emuhba_rst_check(r);
	if (!ret)
		ret = emuhba_rst_check_vf(r);
	if (!ret)
		ret = emuhba_rst_save_all(r);
	/* A batch is at most one ring, less one entry. */
	for (qid = 1, max_sq = 0; qid < EMU_NVME_NR_Q; qid++)
		if (st->sq[qid].valid)
			max_sq = max(max_sq, st->sq[qid].size);
	r->sqes = ret || !max_sq ? NULL :
		  kvmalloc_array(max_sq, sizeof(*r->sqes), GFP_KERNEL);
	if (!ret && max_sq && !r->sqes)
		ret = -ENOMEM;
	if (ret && !r->msg[0])
		snprintf(r->msg, sizeof(r->msg),
			 "guest queue positions unknown (%d)", ret);
	return ret;
}

/*
 * 2. The VF enabled with the guest's admin queue, the guest's features,
 * its I/O queues created.
 */
static int emuhba_rst_enable(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	int ret;

	ret = emuhba_rst_clear_cqs(r);
	if (ret)
		return ret;
	ret = emuhba_rst_vf_enable(r);
	if (ret) {
		snprintf(r->msg, sizeof(r->msg), "the VF did not become ready (%d)",
			 ret);
		return ret;
	}
	if (st->feat.nq_set) {
		ret = emuhba_rst_admin_ok(r, "Set Features Number of Queues",
					  nvme_admin_set_features, 0, 0, 0,
					  NVME_FEAT_NUM_QUEUES, st->feat.nq,
					  NULL);
		if (ret)
			return ret;
	}
	ret = emuhba_rst_features(r);
	if (!ret)
		ret = emuhba_rst_queues(r);
	return ret;
}

/*
 * 3. Every queue at the guest's positions: the I/O queues, the doorbell
 * buffer, the admin queue; the observer then follows the admin queue.
 */
static int emuhba_rst_advance(struct emuhba_restore *r)
{
	const struct emu_nvme_state *st = r->st;
	int ret = 0;
	u16 qid;

	for (qid = 1; !ret && qid < EMU_NVME_NR_Q; qid++)
		if (st->sq[qid].valid)
			ret = emuhba_rst_advance_io(r, qid);
	/* After the I/O queues: from here the VF reads tails from memory. */
	if (!ret && st->dbbuf.enabled)
		ret = emuhba_rst_admin_ok(r, "Doorbell Buffer Config",
					  nvme_admin_dbbuf, 0, st->dbbuf.dbs,
					  st->dbbuf.eis, 0, 0, NULL);
	if (!ret)
		ret = emuhba_rst_admin_finish(r);
	if (!ret)
		ret = emuhba_rst_observer(r);
	return ret;
}

/* 4. The saved memory back, with the guest's outstanding AERs in place. */
static int emuhba_rst_finish(struct emuhba_restore *r)
{
	emuhba_rst_place_aers(r);
	if (!emuhba_rst_put_back(r)) {
		strscpy(r->msg, "cannot restore the guest's queues", sizeof(r->msg));
		return -EFAULT;
	}
	/* The guest's admin slots as they are now, ours put back. */
	emuhba_observer_snapshot(r->a);
	/* Before the VF completes anything of the guest's. */
	emuhba_identity_refresh_locked(r->a);
	return 0;
}

/* Runs in a kernel thread: vfio_dma_rw needs one. */
static int emuhba_to_direct(struct emuhba_restore *r)
{
	struct emuhba_adapter *a = r->a;
	u64 t0, t1, t2;
	int ret;

	ret = emuhba_rst_init(r);
	if (ret)
		return ret;

	t0 = ktime_get_ns();
	mutex_lock(&a->model_lock);
	emuhba_db_collect(a);
	if (!(r->st->regs.cc & EMU_CC_EN)) {
		ret = emuhba_rst_disabled(r);
		mutex_unlock(&a->model_lock);
		r->t.load_ns = ktime_get_ns() - t0;
		return ret;
	}
	ret = emuhba_rst_prepare(r);
	t1 = ktime_get_ns();
	r->t.capture_ns = t1 - t0;
	if (ret)
		goto out_unlock;

	ret = emuhba_rst_enable(r);
	if (!ret)
		ret = emuhba_rst_advance(r);
	if (ret)
		goto out_undo;
	t2 = ktime_get_ns();
	r->t.load_ns = t2 - t1;

	ret = emuhba_rst_finish(r);
	if (!ret)
		ret = emuhba_rst_go(r);
	if (ret)
		goto out_undo;
	WARN_ON_ONCE(emu_nvme_handback(a->model));
	mutex_unlock(&a->model_lock);
	r->t.repoint_ns = ktime_get_ns() - t2;
	return 0;

out_undo:
	r->t.load_ns = ktime_get_ns() - t1;
	/* The VF stops before the memory goes back: it writes nothing after. */
	if (emuhba_vf_disable(a))
		pci_clear_master(a->core.pdev);
	if (!emuhba_rst_put_back(r))
		pci_err(a->core.pdev, "the guest's queues could not be restored\n");
out_unlock:
	mutex_unlock(&a->model_lock);
	return ret;
}

static void emuhba_restore_work(struct work_struct *work)
{
	struct emuhba_restore *r = container_of(work, struct emuhba_restore,
						work);
	u64 start = ktime_get_ns();

	r->ret = emuhba_to_direct(r);
	r->t.total_ns = ktime_get_ns() - start;
	complete(&r->done);
}

/*
 * Switch to direct mode with the vCPUs stopped and the model paused; the
 * caller holds state_lock. On failure msg says why and the model still
 * owns the device (the caller restarts it).
 */
int emuhba_switch_to_direct(struct emuhba_adapter *a,
			    struct emuhba_switch_timing *timing,
			    char *msg, size_t msglen)
{
	struct emuhba_restore *r;
	int ret;

	lockdep_assert_held(&a->state_lock);
	memset(timing, 0, sizeof(*timing));
	if (a->mode != EMUHBA_MODE_EMULATED)
		return 0;
	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	r->a = a;
	init_completion(&r->done);
	a->mode = EMUHBA_MODE_SWITCHING;
	emuhba_genl_notify_mode(a, EMUHBA_MODE_EMULATED, EMUHBA_MODE_SWITCHING);
	INIT_WORK(&r->work, emuhba_restore_work);
	queue_work(system_unbound_wq, &r->work);
	wait_for_completion(&r->done);
	emuhba_rst_free(r);

	ret = r->ret;
	r->t.result = ret;
	r->t.from_mode = EMUHBA_MODE_EMULATED;
	r->t.to_mode = EMUHBA_MODE_DIRECT;
	a->last_switch = r->t;
	a->counters.switches++;
	*timing = r->t;
	strscpy(msg, r->msg, msglen);
	if (ret) {
		a->counters.switch_failures++;
		a->mode = EMUHBA_MODE_EMULATED;
		pci_info(a->core.pdev,
			 "switch to direct refused, the adapter stays emulated: %s (%pe)\n",
			 r->msg, ERR_PTR(ret));
		emuhba_genl_notify_mode(a, EMUHBA_MODE_SWITCHING,
					EMUHBA_MODE_EMULATED);
		emuhba_genl_notify_error(a, ret, r->msg);
	} else {
		emuhba_db_shadow_off(a);
		emuhba_backend_close(a);
		a->mode = EMUHBA_MODE_DIRECT;
		pci_info(a->core.pdev,
			 "switched to direct mode in %llu us (capture %llu, load %llu, repoint %llu)\n",
			 r->t.total_ns / 1000, r->t.capture_ns / 1000,
			 r->t.load_ns / 1000, r->t.repoint_ns / 1000);
		emuhba_genl_notify_mode(a, EMUHBA_MODE_SWITCHING,
					EMUHBA_MODE_DIRECT);
		/* Catch up with admin completions the VF posted meanwhile. */
		queue_work(system_highpri_wq, &a->obs.work);
	}
	kfree(r);
	return ret;
}
