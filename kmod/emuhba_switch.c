// SPDX-License-Identifier: GPL-2.0-only
/*
 * The switch from direct to emulated mode with the guest running.
 *
 *  1. re-point: the doorbell pages are backed by driver pages: every
 *     doorbell write of the guest reaches the VF only through the switch;
 *  2. wait: forward completion heads and each queue's first tail, hold
 *     later tails, until every queue's completion tail equals the tail the
 *     VF was given (it then holds no command of the guest's), then hold
 *     every tail; disable the VF (CC.EN = 0);
 *  3. capture: the same look with the VF stopped gives every position;
 *  4. load: the model takes the queues over at those positions.
 *
 * Documentation/queue-positions.rst argues why the positions are exact.
 * When they cannot be known within the switch deadline the switch is
 * undone and refused, leaving the guest on the VF with nothing lost.
 */
#include <linux/delay.h>
#include <linux/io.h>
#include <linux/iommu.h>
#include <linux/ktime.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/vfio.h>

#include "emuhba.h"

struct emuhba_switch_req {
	struct work_struct work;
	struct emuhba_adapter *a;
	struct emuhba_switch_timing t;
	char msg[EMUHBA_BACKEND_MAX + 64];
	int ret;
	u32 window_doorbells;	/* doorbell writes the window caught */
	struct completion done;
};

/* What a switch knows of one queue while it holds the doorbell pages. */
struct emuhba_winq {
	u16 vf_tail;		/* the last tail the VF was given */
	u16 tail;		/* the guest's last tail */
	u16 cq_head;		/* the guest's last completion queue head */
	u16 cq_tail0;		/* the completion queue's tail as the window opened */
	bool vf_tail_known;	/* vf_tail is exact: written in the window */
	bool tail_seen;
	bool head_seen;
	bool cq_tail0_known;
	bool stray;		/* rung while the queue did not exist */
};

struct emuhba_capture {
	struct emu_nvme_positions pos;
	struct emuhba_winq q[EMU_NVME_NR_Q];
	u32 stride;		/* doorbell stride in bytes */
	bool dbbuf;		/* I/O tails come from the shadow doorbell buffer */
	bool frozen;		/* no tail reaches the VF any more */
	/*
	 * idle_after_ms has passed since the window opened: a queue neither
	 * rung nor completing since holds nothing (the administrator's bound)
	 */
	bool idle_proven;
	bool vf_stopped;	/* nothing reaches the VF any more */
	bool release;		/* the switch is undone: everything goes on */
	bool mem_locked;	/* core.memory_lock is held for writing */
	u32 caught;		/* doorbell writes caught */
	/* a completion queue, read from guest memory */
	struct nvme_completion *ring;
};

static int emuhba_dbbuf_read(struct emuhba_adapter *a, u64 base, u32 stride,
			     u32 qid, bool cq, u16 *val)
{
	__le32 v = 0;
	int ret;

	ret = emuhba_guest_read(a, base + (2 * qid + cq) * stride, &v, sizeof(v));
	*val = le32_to_cpu(v);
	return ret;
}

/*
 * Where the controller posts next in a completion queue, from the phase
 * tags alone: the controller fills the ring in order, inverting the phase
 * at each wrap, and the guest zeroed it before creating the queue, so the
 * ring holds one run of the current phase from slot 0 followed by one run
 * of the other. *last is the newest entry; *posted is false while the ring
 * has never been written (I/O completions name a non-zero queue).
 * -EAGAIN: two phase changes, as in a ring being written while it is read.
 */
static int emuhba_cq_ring_scan(struct emuhba_adapter *a,
			       struct emuhba_capture *c,
			       const struct emu_nvme_cq *cq, u16 *tail,
			       u8 *phase, struct nvme_completion *last,
			       bool *posted)
{
	struct nvme_completion again;
	u32 i, edge;
	u8 p0;
	int ret;

	ret = emuhba_guest_read(a, cq->base, c->ring,
				(size_t)cq->size * sizeof(*c->ring));
	if (ret)
		return ret;
	p0 = emuhba_cqe_phase(&c->ring[0]);
	for (edge = 1; edge < cq->size; edge++)
		if (emuhba_cqe_phase(&c->ring[edge]) != p0)
			break;
	for (i = edge; i < cq->size; i++)
		if (emuhba_cqe_phase(&c->ring[i]) == p0)
			return -EAGAIN;
	if (edge == cq->size) {
		*tail = 0;
		*phase = !p0;
	} else {
		*tail = edge;
		*phase = p0;
	}
	*last = c->ring[(*tail + cq->size - 1) % cq->size];
	*posted = last->sq_id != 0;
	if (!*posted)
		return 0;
	/* The newest entry once more: not one read while it was written. */
	ret = emuhba_guest_read(a, cq->base + (u64)((*tail + cq->size - 1) %
						     cq->size) * sizeof(again),
				&again, sizeof(again));
	if (!ret && memcmp(&again, last, sizeof(again)))
		ret = -EAGAIN;
	return ret;
}

/* The same, with msg saying why completion queue cqid cannot be read. */
static int emuhba_cq_scan(struct emuhba_adapter *a, struct emuhba_capture *c,
			  u16 cqid, u16 *tail, u8 *phase,
			  struct nvme_completion *last, bool *posted,
			  char *msg, size_t len)
{
	int ret;

	ret = emuhba_cq_ring_scan(a, c, &emu_nvme_state(a->model)->cq[cqid],
				  tail, phase, last, posted);
	if (ret)
		snprintf(msg, len, "completion queue %u: %s (%d)", cqid,
			 ret == -EAGAIN ? "phase tags out of order" : "unreadable",
			 ret);
	return ret;
}

/* 0 when the VF got the write. */
static int emuhba_win_forward(struct emuhba_adapter *a,
			      struct emuhba_capture *c, u32 word, u32 val)
{
	void __iomem *io = a->core.barmap[VFIO_PCI_BAR0_REGION_INDEX] +
			   EMUHBA_REGS_SIZE + word * 4;

	if (!c->mem_locked)
		return vfio_pci_core_iowrite32(&a->core, true, val, io);
	if (!emuhba_vf_mem_ok(a))
		return -EIO;
	return vfio_pci_core_iowrite32(&a->core, false, val, io);
}

/*
 * Take the doorbell writes the guest made since the last look. Each value
 * supersedes the ones before it in the same register, so only the last
 * matters. A completion queue head is passed on to the VF (it frees
 * entries); a queue's first tail is passed on and fixes what the VF was
 * given; later tails are held for the model. With a shadow doorbell buffer
 * the VF reads I/O tails from memory: their register writes are held.
 * Writes that are no queue's doorbell go to the VF as the guest made them.
 * model_lock held.
 */
static void emuhba_win_pump(struct emuhba_adapter *a, struct emuhba_capture *c)
{
	const struct emu_nvme_state *st = emu_nvme_state(a->model);
	u32 per_q = c->stride / 4, w, v, qid;
	struct emuhba_winq *q;
	u32 *db;

	lockdep_assert_held(&a->model_lock);
	for (w = 0; w < a->db_words; w++) {
		db = (u32 *)page_address(a->db_shadow[w / (PAGE_SIZE / 4)]) +
		     w % (PAGE_SIZE / 4);
		if (READ_ONCE(*db) == EMUHBA_DB_EMPTY)
			continue;
		v = xchg(db, EMUHBA_DB_EMPTY);
		c->caught++;
		qid = w / per_q / 2;
		if (w % per_q || qid >= EMU_NVME_NR_Q ||
		    ((w / per_q) & 1 ? !st->cq[qid].valid : !st->sq[qid].valid)) {
			/* The VF judges it; a queue created later is refused. */
			if (!(w % per_q) && qid < EMU_NVME_NR_Q)
				c->q[qid].stray = true;
			if (!c->vf_stopped)
				emuhba_win_forward(a, c, w, v);
			continue;
		}
		q = &c->q[qid];
		if ((w / per_q) & 1) {
			q->cq_head = v;
			q->head_seen = true;
			if (!c->vf_stopped)
				emuhba_win_forward(a, c, w, v);
			continue;
		}
		q->tail = v;
		q->tail_seen = true;
		if (!c->release && (c->frozen || (qid && c->dbbuf)))
			continue;
		if (!emuhba_win_forward(a, c, w, v)) {
			q->vf_tail = v;
			q->vf_tail_known = true;
		}
	}
}

/*
 * With shadow doorbells the guest's newest I/O tails are in its buffer, not
 * in the register writes the window held: those go to the VF on an undo.
 */
static void emuhba_win_shadow_tails(struct emuhba_adapter *a,
				    struct emuhba_capture *c)
{
	const struct emu_nvme_state *st = emu_nvme_state(a->model);
	u16 qid, v;

	if (!c->dbbuf)
		return;
	mutex_lock(&a->model_lock);
	for (qid = 1; qid < EMU_NVME_NR_Q; qid++) {
		struct emuhba_winq *q = &c->q[qid];

		if (st->sq[qid].valid && q->tail_seen &&
		    !emuhba_dbbuf_read(a, st->dbbuf.dbs, c->stride, qid, false,
				       &v) && v < st->sq[qid].size)
			q->tail = v;
	}
	mutex_unlock(&a->model_lock);
}

/*
 * The switch is undone with the VF running: what was held goes to the VF,
 * older before newer, before the guest's writes reach it directly again.
 * Called with the doorbell pages taken back and core.memory_lock held for
 * writing, so that no such write can come first; model_lock held.
 */
static void emuhba_win_release(struct emuhba_adapter *a, void *arg)
{
	const struct emu_nvme_state *st = emu_nvme_state(a->model);
	struct emuhba_capture *c = arg;
	u16 qid;

	c->mem_locked = true;
	for (qid = 0; qid < EMU_NVME_NR_Q; qid++) {
		struct emuhba_winq *q = &c->q[qid];

		if (!st->sq[qid].valid || !q->tail_seen ||
		    (q->vf_tail_known && q->vf_tail == q->tail))
			continue;
		if (!emuhba_win_forward(a, c, 2 * qid * (c->stride / 4),
					q->tail)) {
			q->vf_tail = q->tail;
			q->vf_tail_known = true;
		}
	}
	c->release = true;
	emuhba_win_pump(a, c);
	c->mem_locked = false;
}

/*
 * One I/O queue pair, with its completion queue serving it alone and of
 * the same size N (emuhba_switch_precheck()). Its completion queue tail
 * then counts the queue's completions and its tail its submissions, both
 * modulo N; the guest never has N commands outstanding on a queue of N
 * entries. So once the VF has been given tail T and nothing more, the VF
 * holds no command of the queue exactly when the completion tail is T (and
 * the newest completion then reports head T). Without T, the newest
 * completion says how many commands were outstanding when it was posted:
 * its head minus the completion tail. Returns 1 when the VF holds nothing
 * of the queue and fills the positions, 0 when it still does (msg says
 * what), -EAGAIN to look again, another negative errno when positions
 * cannot be known.
 */
static int emuhba_capture_pair(struct emuhba_adapter *a,
			       struct emuhba_capture *c, u16 qid,
			       char *msg, size_t len)
{
	const struct emu_nvme_state *st = emu_nvme_state(a->model);
	const struct emu_nvme_sq *sq = &st->sq[qid];
	const struct emu_nvme_cq *cq = &st->cq[sq->cqid];
	/* The submission queue's records, and its completion queue's. */
	struct emu_nvme_qpos *p = &c->pos.q[qid], *cp = &c->pos.q[sq->cqid];
	struct emuhba_winq *q = &c->q[qid], *cw = &c->q[sq->cqid];
	struct nvme_completion last;
	u16 tail, vf_tail, guest_tail, head, sqhd, n = sq->size;
	bool posted;
	u8 phase;
	int ret;

	ret = emuhba_cq_scan(a, c, sq->cqid, &tail, &phase, &last, &posted,
			     msg, len);
	if (ret)
		return ret;
	sqhd = le16_to_cpu(last.sq_head);
	if (posted && (le16_to_cpu(last.sq_id) != qid || sqhd >= n)) {
		snprintf(msg, len,
			 "completion queue %u: its newest entry (queue %u, head %u) is not queue %u's",
			 sq->cqid, le16_to_cpu(last.sq_id), sqhd, qid);
		return -EPROTO;
	}
	if (!cw->cq_tail0_known) {
		cw->cq_tail0 = tail;
		cw->cq_tail0_known = true;
	}

	if (c->dbbuf) {
		/* The VF announces in EventIdx the tail it read last. */
		ret = emuhba_dbbuf_read(a, st->dbbuf.eis, c->stride, qid, false,
					&vf_tail);
		if (!ret)
			ret = emuhba_dbbuf_read(a, st->dbbuf.dbs, c->stride, qid,
						false, &guest_tail);
		if (!ret)
			ret = emuhba_dbbuf_read(a, st->dbbuf.dbs, c->stride,
						sq->cqid, true, &head);
		if (!ret && (vf_tail >= n || guest_tail >= n || head >= cq->size))
			ret = -ERANGE;
		if (ret) {
			snprintf(msg, len, "queue %u: shadow doorbells unreadable (%d)",
				 qid, ret);
			return ret;
		}
	} else {
		if (q->vf_tail_known) {
			vf_tail = q->vf_tail;
		} else {
			/*
			 * No tail written since the window opened: the last
			 * tail the VF was given cannot be read back, and no
			 * completion proves the VF fetched it (a controller
			 * may post before fetching what was rung). Only the
			 * administrator's bound on a command's time places
			 * the queue: once it has passed without a doorbell or
			 * a completion, everything rung before the window has
			 * completed, and the newest completion's head is the
			 * tail (Documentation/queue-positions.rst).
			 */
			if (!c->idle_proven) {
				snprintf(msg, len,
					 "queue %u: not rung, tail unknown%s",
					 qid, a->policy.idle_after_ms ? " yet" :
					 " (idle-after 0)");
				return 0;
			}
			if (posted && (u16)((sqhd + n - tail) % n)) {
				snprintf(msg, len,
					 "queue %u: %u commands on the VF after idle-after",
					 qid, (sqhd + n - tail) % n);
				return -EPROTO;
			}
			vf_tail = posted ? sqhd : 0;
		}
		guest_tail = q->tail_seen ? q->tail : vf_tail;
		head = cw->head_seen ? cw->cq_head : cw->cq_tail0;
		if (vf_tail >= n || guest_tail >= n || head >= cq->size) {
			snprintf(msg, len, "queue %u: doorbell value out of range",
				 qid);
			return -ERANGE;
		}
	}
	/* Before the freeze only what the VF was given must be known. */
	if (!c->frozen)
		return 1;
	if (tail != vf_tail) {
		snprintf(msg, len, "queue %u: %u commands still on the VF", qid,
			 (vf_tail + n - tail) % n);
		return 0;
	}
	if (posted && sqhd != vf_tail) {
		snprintf(msg, len,
			 "queue %u: completions account for tail %u but the VF reports head %u",
			 qid, vf_tail, sqhd);
		return -EPROTO;
	}
	p->sq_head = vf_tail;
	p->sq_tail = guest_tail;
	cp->cq_tail = tail;
	cp->cq_phase = phase;
	cp->cq_head = head;
	cp->flags = c->dbbuf || cw->head_seen ? 0 : EMU_QPOS_CQ_HEAD_GUESS;
	return 1;
}

/* Every I/O queue; 1 when the VF holds none of their commands. */
static int emuhba_capture_io(struct emuhba_adapter *a, struct emuhba_capture *c,
			     char *msg, size_t len)
{
	const struct emu_nvme_state *st = emu_nvme_state(a->model);
	struct nvme_completion last;
	int ret, settled = 1;
	bool posted;
	u16 qid;

	for (qid = 1; qid < EMU_NVME_NR_Q; qid++) {
		if (!st->sq[qid].valid)
			continue;
		ret = emuhba_capture_pair(a, c, qid, msg, len);
		if (ret < 0 && ret != -EAGAIN)
			return ret;
		if (ret <= 0)
			settled = 0;
	}
	/* Completion queues without a submission queue post nothing. */
	for (qid = 1; qid < EMU_NVME_NR_Q; qid++) {
		const struct emu_nvme_cq *cq = &st->cq[qid];
		struct emu_nvme_qpos *p = &c->pos.q[qid];
		u16 i;

		if (!cq->valid)
			continue;
		for (i = 1; i < EMU_NVME_NR_Q; i++)
			if (st->sq[i].valid && st->sq[i].cqid == qid)
				break;
		if (i < EMU_NVME_NR_Q)
			continue;
		ret = emuhba_cq_scan(a, c, qid, &p->cq_tail, &p->cq_phase, &last,
				     &posted, msg, len);
		if (ret)
			return ret;
		p->cq_head = c->q[qid].head_seen ? c->q[qid].cq_head :
			     p->cq_tail;
		p->flags = c->q[qid].head_seen ? 0 : EMU_QPOS_CQ_HEAD_GUESS;
		if (p->cq_head >= cq->size)
			return -ERANGE;
	}
	return settled;
}

/*
 * The admin tail the VF was given, when the guest wrote none in the window:
 * the head its newest completion reported, and after it any entry the
 * guest placed since the VF last fetched that slot (it differs from the
 * observer's copy of the slot). Such AERs the model does not count
 * outstanding are taken as given (Linux submits its AER on its own after
 * one completes); any other such command is still to complete, and *opc
 * names it. An identical command in the same slot as one lap before
 * cannot be told from the old one.
 */
static u16 emuhba_admin_inferred_tail(struct emuhba_adapter *a, int *opc)
{
	const struct emu_nvme_aer *aer = &emu_nvme_state(a->model)->aer;
	struct emuhba_observer *obs = &a->obs;
	struct nvme_command sqe, old;
	u16 tail = obs->sq_head, cid;
	unsigned int n, k;

	*opc = -1;
	for (n = aer->nr_cid; n <= EMU_NVME_MAX_AER; n++) {
		if ((tail + 1) % obs->sq_size == obs->sq_head ||
		    emuhba_guest_read(a, obs->asq + (u64)tail * sizeof(sqe),
				      &sqe, sizeof(sqe)))
			break;
		old = obs->pending[tail];
		emuhba_sqe_set_outstanding(&old, false);
		emuhba_sqe_set_outstanding(&sqe, false);
		if (!memcmp(&old, &sqe, sizeof(sqe)))
			break;
		if (sqe.common.opcode != nvme_admin_async_event ||
		    n == EMU_NVME_MAX_AER) {
			*opc = sqe.common.opcode;
			break;
		}
		cid = emuhba_sqe_cid(&sqe);
		for (k = 0; k < aer->nr_cid && aer->cid[k] != cid; k++)
			;
		if (k < aer->nr_cid)
			break;
		tail = (tail + 1) % obs->sq_size;
	}
	return tail;
}

/*
 * The admin queue: the observer has read every completion and the entries
 * the VF reported fetched. What the VF fetched beyond the newest
 * completion, up to the tail it was given, must be AERs only, and no
 * fetched command but an AER may be outstanding. Without a tail written in
 * the window, the VF was given what the newest completion reports.
 */
static int emuhba_capture_admin(struct emuhba_adapter *a,
				struct emuhba_capture *c, char *msg, size_t len)
{
	struct emuhba_observer *obs = &a->obs;
	struct emu_nvme_qpos *p = &c->pos.q[0];
	struct emuhba_winq *q = &c->q[0];
	struct nvme_completion cqe;
	struct nvme_command sqe;
	int ret, opc;
	u16 tail, slot;

	if (obs->lost) {
		strscpy(msg, "admin queue observation was lost", len);
		return -EIO;
	}
	if (!obs->pending || obs->pending_slots != obs->sq_size ||
	    obs->sq_head >= obs->sq_size || obs->cq_head >= obs->cq_size) {
		strscpy(msg, "admin queue: not observed", len);
		return -EIO;
	}
	/* A completion the observer has not read yet. */
	ret = emuhba_guest_read(a, obs->acq + (u64)obs->cq_head * sizeof(cqe),
				&cqe, sizeof(cqe));
	if (ret)
		return ret;
	if (emuhba_cqe_phase(&cqe) == obs->phase) {
		strscpy(msg, "admin queue: completions not observed yet", len);
		return 0;
	}
	if (q->vf_tail_known) {
		tail = q->vf_tail;
	} else {
		tail = emuhba_admin_inferred_tail(a, &opc);
		if (opc >= 0) {
			snprintf(msg, len,
				 "admin queue: command 0x%02x submitted before the switch still on the VF",
				 opc);
			return 0;
		}
	}
	if (tail >= obs->sq_size ||
	    (q->tail_seen && q->tail >= obs->sq_size) ||
	    (q->head_seen && q->cq_head >= obs->cq_size)) {
		strscpy(msg, "admin queue: doorbell value out of range", len);
		return -ERANGE;
	}
	for (slot = 0; slot < obs->sq_size; slot++) {
		const struct nvme_command *f = &obs->pending[slot];

		if (emuhba_sqe_outstanding(f) &&
		    f->common.opcode != nvme_admin_async_event) {
			snprintf(msg, len,
				 "admin queue: command 0x%02x still on the VF",
				 f->common.opcode);
			return 0;
		}
	}
	for (slot = obs->sq_head; slot != tail; slot = (slot + 1) % obs->sq_size) {
		ret = emuhba_guest_read(a, obs->asq + (u64)slot * sizeof(sqe),
					&sqe, sizeof(sqe));
		if (ret)
			return ret;
		if (sqe.common.opcode != nvme_admin_async_event) {
			snprintf(msg, len,
				 "admin queue: command 0x%02x still on the VF",
				 sqe.common.opcode);
			return 0;
		}
	}
	if (!q->cq_tail0_known) {
		q->cq_tail0 = obs->cq_head;
		q->cq_tail0_known = true;
	}
	p->sq_head = tail;
	p->sq_tail = q->tail_seen ? q->tail : tail;
	p->cq_head = q->head_seen ? q->cq_head : q->cq_tail0;
	p->flags = q->head_seen ? 0 : EMU_QPOS_CQ_HEAD_GUESS;
	p->cq_tail = obs->cq_head;
	p->cq_phase = obs->phase;
	return 1;
}

/* Feed the AERs the VF fetched after the last completion to the model. */
static int emuhba_capture_aers(struct emuhba_adapter *a, u16 tail)
{
	struct emuhba_observer *obs = &a->obs;
	struct nvme_command sqe;
	int ret;

	while (obs->sq_head != tail) {
		ret = emuhba_guest_read(a, obs->asq + (u64)obs->sq_head *
					sizeof(sqe), &sqe, sizeof(sqe));
		if (ret)
			return ret;
		emu_nvme_observe_admin(a->model, &sqe, NULL, NULL, 0);
		obs->sq_head = (obs->sq_head + 1) % obs->sq_size;
	}
	return 0;
}

/*
 * Positions are counted per queue pair: every I/O submission queue needs a
 * completion queue of its own, of the same size, that has served no other
 * submission queue since it was created. Linux, SPDK and Windows create
 * their queues so. 1 with msg set when a queue is not counted so.
 */
static int emuhba_pairs_check(struct emuhba_adapter *a, char *msg, size_t len)
{
	const struct emu_nvme_state *st = emu_nvme_state(a->model);
	u16 qid, other;

	for (qid = 1; qid < EMU_NVME_NR_Q; qid++) {
		const struct emu_nvme_sq *sq = &st->sq[qid];
		const struct emu_nvme_cq *cq;

		if (!sq->valid)
			continue;
		cq = &st->cq[sq->cqid];
		if (!cq->valid || cq->size != sq->size) {
			snprintf(msg, len,
				 "submission queue %u (%u entries) and its completion queue %u (%u entries) differ in size: outstanding commands cannot be counted",
				 qid, sq->size, sq->cqid, cq->valid ? cq->size : 0);
			return 1;
		}
		for (other = 1; other < EMU_NVME_NR_Q; other++) {
			if (other != qid && st->sq[other].valid &&
			    st->sq[other].cqid == sq->cqid) {
				snprintf(msg, len,
					 "submission queues %u and %u share completion queue %u: outstanding commands cannot be counted",
					 qid, other, sq->cqid);
				return 1;
			}
		}
		if (!emu_nvme_cq_counts_one_sq(a->model, sq->cqid)) {
			snprintf(msg, len,
				 "completion queue %u served another submission queue before %u: outstanding commands cannot be counted",
				 sq->cqid, qid);
			return 1;
		}
	}
	return 0;
}

/*
 * One look at the window: doorbells, then every queue. 1 when the VF holds
 * no command of the guest's, 0 when it still does, else a negative errno;
 * msg says what is outstanding or wrong. model_lock held.
 */
static int emuhba_capture(struct emuhba_adapter *a, struct emuhba_capture *c,
			  char *msg, size_t len)
{
	const struct emu_nvme_state *st = emu_nvme_state(a->model);
	char amsg[96] = "";
	int io, adm;
	u16 qid;

	lockdep_assert_held(&a->model_lock);
	emuhba_win_pump(a, c);
	msg[0] = 0;
	if (atomic_read(&a->reset_pending)) {
		strscpy(msg, "the VF was reset during the switch", len);
		return -EBUSY;
	}
	if (!(st->regs.cc & EMU_CC_EN) || st->dbbuf.enabled != c->dbbuf) {
		strscpy(msg, "the guest reconfigured its controller during the switch",
			len);
		return -EBUSY;
	}
	for (qid = 0; qid < EMU_NVME_NR_Q; qid++) {
		if (c->q[qid].stray) {
			snprintf(msg, len,
				 "the guest rang queue %u, which the switch does not know",
				 qid);
			return -EPROTO;
		}
	}
	/* Queues created during the window must pair up too. */
	if (emuhba_pairs_check(a, msg, len))
		return -EOPNOTSUPP;
	io = emuhba_capture_io(a, c, msg, len);
	if (io < 0)
		return io;
	adm = emuhba_capture_admin(a, c, amsg, sizeof(amsg));
	if (adm < 0 || (io && !adm))
		strscpy(msg, amsg, len);
	if (adm < 0)
		return adm;
	return io && adm;
}

int emuhba_vf_disable(struct emuhba_adapter *a)
{
	void __iomem *bar;
	int i, ret;
	u32 csts;

	ret = vfio_pci_core_setup_barmap(&a->core, 0);
	if (ret)
		return ret;
	bar = a->core.barmap[0];
	ret = vfio_pci_core_iowrite32(&a->core, true, 0, bar + NVME_REG_CC);
	if (ret)
		return ret;
	for (i = 0; i < 2000; i++) {
		ret = vfio_pci_core_ioread32(&a->core, true, &csts,
					     bar + NVME_REG_CSTS);
		if (ret)
			return ret;
		if (csts == ~0U)
			return -ENODEV;
		if (!(csts & NVME_CSTS_RDY))
			return 0;
		usleep_range(500, 1000);
	}
	return -ETIMEDOUT;
}

/* What makes a switch impossible before it starts. */
static int emuhba_switch_precheck(struct emuhba_adapter *a, char *msg,
				  size_t len)
{
	const struct emu_nvme_state *st = emu_nvme_state(a->model);
	const char *why = NULL;

	mutex_lock(&a->model_lock);
	if (st->regs.cc & EMU_CC_EN) {
		if (a->obs.lost)
			why = "admin queue observation was lost";
		else if (!a->obs.enabled)
			why = "the guest has not enabled the controller";
		else if (PAGE_SIZE != SZ_4K)
			why = "host pages above 4 KiB: the doorbells bypass the switch";
		else if (emu_nvme_check(a->model, msg, len) ||
			 emuhba_pairs_check(a, msg, len))
			why = msg;
	}
	mutex_unlock(&a->model_lock);
	if (!why)
		return 0;
	if (why != msg)
		strscpy(msg, why, len);
	return -EOPNOTSUPP;
}

/*
 * The type1 container reports every mapped page dirty while a group in it
 * has never pinned a page (the VF could have written anywhere). From the
 * switch on, the VF writes nothing and every write of the model goes
 * through vfio_dma_rw, which type1 logs: one pin and unpin moves the group
 * to the "pinned page" dirty scope, and the log becomes exact. This must
 * not happen before the VF is stopped. The container keeps the scope until
 * it goes away: when the adapter returns to direct mode in it, the VF's
 * own writes are no longer reported, which is sound because a hypervisor
 * stops the device (PRE_COPY or STOP, and so this switch) before it sends
 * any guest memory, as QEMU does.
 */
void emuhba_dirty_scope_exact(struct emuhba_adapter *a, u64 iova)
{
	struct page *page;
	int ret;

	if (a->dirty_scope_exact)
		return;
	/*
	 * type1 retries an unmap that finds a pin of ours only a few times
	 * before it BUG()s: emuhba_dma_unmap() gives the unpin time.
	 */
	/* Seen by any unmap that finds the pin: type1's lock orders both. */
	atomic_set(&a->pinning, 1);
	ret = vfio_pin_pages(&a->core.vdev, iova & PAGE_MASK, 1, IOMMU_READ,
			     &page);
	if (ret == 1)
		vfio_unpin_pages(&a->core.vdev, iova & PAGE_MASK, 1);
	atomic_set_release(&a->pinning, 0);
	if (ret != 1) {
		pci_info(a->core.pdev, "dirty log stays coarse: pin failed (%d)\n",
			 ret);
		return;
	}
	a->dirty_scope_exact = true;
	pci_dbg(a->core.pdev, "dirty log now exact (pinned 0x%llx)\n", iova);
}

/* The backend the model will use; msg says why it cannot be opened. */
static int emuhba_to_emu_open(struct emuhba_adapter *a,
			      struct emuhba_switch_req *r)
{
	int ret;

	ret = emuhba_backend_open(a, NULL);
	if (ret)
		snprintf(r->msg, sizeof(r->msg), "cannot open backend '%s' (%d)",
			 a->backend, ret);
	return ret;
}

/*
 * The guest has not enabled the controller: there are no queues, the
 * model starts as a disabled controller.
 */
static int emuhba_to_emu_disabled(struct emuhba_adapter *a,
				  struct emuhba_switch_req *r)
{
	u64 t0;

	t0 = ktime_get_ns();
	/* Under the lock register writes take: CC.EN cannot change meanwhile. */
	mutex_lock(&a->model_lock);
	if (emu_nvme_state(a->model)->regs.cc & EMU_CC_EN) {
		mutex_unlock(&a->model_lock);
		strscpy(r->msg, "the guest enabled the controller during the switch",
			sizeof(r->msg));
		return -EBUSY;
	}
	emuhba_db_shadow_on(a);
	emu_nvme_start_disabled(a->model);
	mutex_unlock(&a->model_lock);
	r->t.load_ns = ktime_get_ns() - t0;
	emuhba_emul_start(a);
	return 0;
}

/* 1. No doorbell write reaches the VF but through the switch. */
static void emuhba_to_emu_repoint(struct emuhba_adapter *a)
{
	emuhba_db_shadow_on(a);
}

/*
 * 2a. Forward doorbell writes until every queue's tail on the VF is known
 * and the VF holds no command of the guest's, then hold every tail. 0 when
 * so, else a negative errno with msg saying why (at the deadline: which
 * queue and what is outstanding).
 */
static int emuhba_to_emu_wait_idle(struct emuhba_adapter *a,
				   struct emuhba_switch_req *r,
				   struct emuhba_capture *c)
{
	unsigned long deadline, idle;
	int ret;

	deadline = jiffies + msecs_to_jiffies(a->policy.switch_timeout_ms);
	idle = jiffies + msecs_to_jiffies(a->policy.idle_after_ms);
	for (;;) {
		if (a->policy.idle_after_ms && !c->idle_proven &&
		    time_after(jiffies, idle))
			c->idle_proven = true;
		flush_work(&a->obs.work);
		mutex_lock(&a->model_lock);
		ret = emuhba_capture(a, c, r->msg, sizeof(r->msg));
		if (ret > 0 && !c->frozen) {
			/*
			 * From here no tail reaches the VF; one more look
			 * covers what was forwarded during this one.
			 */
			c->frozen = true;
			ret = emuhba_capture(a, c, r->msg, sizeof(r->msg));
		}
		mutex_unlock(&a->model_lock);
		if (ret > 0)
			return 0;
		if (ret < 0 && ret != -EAGAIN)
			return ret;
		if (time_after(jiffies, deadline)) {
			char why[sizeof(r->msg)];

			strscpy(why, r->msg[0] ? r->msg : "positions unknown",
				sizeof(why));
			/* The prefix takes at most 21 bytes of the message. */
			snprintf(r->msg, sizeof(r->msg), "after %u ms, %.*s",
				 a->policy.switch_timeout_ms,
				 (int)sizeof(r->msg) - 22, why);
			return -ETIMEDOUT;
		}
		usleep_range(50, 100);
	}
}

/* 2b. The VF holds nothing of the guest's: disable it (CC.EN = 0). */
static int emuhba_to_emu_stop(struct emuhba_adapter *a,
			      struct emuhba_switch_req *r)
{
	int ret;

	ret = emuhba_vf_disable(a);
	if (ret)
		snprintf(r->msg, sizeof(r->msg), "cannot stop the VF (%d)", ret);
	return ret;
}

/*
 * 3. Every queue's position, with the VF stopped: the same look, which
 * must find what the last one found, and the AERs the VF fetched after the
 * last admin completion; model_lock held.
 */
static int emuhba_to_emu_capture(struct emuhba_adapter *a,
				 struct emuhba_switch_req *r,
				 struct emuhba_capture *c)
{
	int ret;

	lockdep_assert_held(&a->model_lock);
	c->vf_stopped = true;
	ret = emuhba_capture(a, c, r->msg, sizeof(r->msg));
	if (!ret) {
		/* The VF took or lost commands after it was found idle. */
		pci_err(a->core.pdev, "the VF took commands after it was idle: %s\n",
			r->msg);
		ret = -EIO;
	}
	if (ret > 0)
		ret = emuhba_capture_aers(a, c->pos.q[0].sq_head);
	return ret;
}

/* 4. The model takes the queues over at those positions; model_lock held. */
static int emuhba_to_emu_load(struct emuhba_adapter *a,
			      struct emuhba_switch_req *r,
			      struct emuhba_capture *c)
{
	lockdep_assert_held(&a->model_lock);
	return emu_nvme_takeover(a->model, &c->pos, r->msg, sizeof(r->msg));
}

static int emuhba_to_emulated(struct emuhba_adapter *a,
			      struct emuhba_switch_req *r)
{
	const struct emu_nvme_state *st = emu_nvme_state(a->model);
	bool enabled, vf_running = false;
	struct emuhba_capture *c;
	u64 t0, t1, t2, t3;
	int ret;

	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c)
		return -ENOMEM;
	/* The largest completion queue there can be. */
	c->ring = kvmalloc_array(65536, sizeof(*c->ring), GFP_KERNEL);
	if (!c->ring) {
		ret = -ENOMEM;
		goto out_free;
	}
	c->stride = 4 << NVME_CAP_STRIDE(st->id.cap);
	ret = vfio_pci_core_setup_barmap(&a->core, VFIO_PCI_BAR0_REGION_INDEX);
	if (ret)
		goto out_free;

	mutex_lock(&a->model_lock);
	enabled = st->regs.cc & EMU_CC_EN;
	mutex_unlock(&a->model_lock);
	if (!enabled) {
		ret = emuhba_to_emu_open(a, r);
		if (ret)
			goto out_free;
		ret = emuhba_emul_prepare(a);
		if (!ret)
			ret = emuhba_to_emu_disabled(a, r);
		if (ret) {
			emuhba_emul_stop(a);
			emuhba_backend_close(a);
			goto out_free;
		}
		goto out_done;
	}
	/* Checked again: the observer may have lost track since. */
	ret = emuhba_switch_precheck(a, r->msg, sizeof(r->msg));
	if (ret)
		goto out_free;
	mutex_lock(&a->model_lock);
	c->dbbuf = st->dbbuf.enabled;
	mutex_unlock(&a->model_lock);
	ret = emuhba_to_emu_open(a, r);
	if (ret)
		goto out_free;
	/* Once the VF stops, starting the model must not fail. */
	ret = emuhba_emul_prepare(a);
	if (ret) {
		snprintf(r->msg, sizeof(r->msg),
			 "cannot create the emulation thread (%d)", ret);
		goto out_undo;
	}

	t0 = ktime_get_ns();
	emuhba_to_emu_repoint(a);
	t1 = ktime_get_ns();
	r->t.repoint_ns = t1 - t0;

	vf_running = true;
	ret = emuhba_to_emu_wait_idle(a, r, c);
	if (ret)
		goto out_undo;
	/* No register access reaches the VF from here to the takeover. */
	mutex_lock(&a->model_lock);
	a->regs_held = true;
	mutex_unlock(&a->model_lock);
	ret = emuhba_to_emu_stop(a, r);
	if (ret)
		goto out_undo;
	vf_running = false;
	t2 = ktime_get_ns();
	r->t.stop_ns = t2 - t1;

	/* The admin completions the VF posted before it stopped. */
	flush_work(&a->obs.work);
	mutex_lock(&a->model_lock);
	ret = emuhba_to_emu_capture(a, r, c);
	t3 = ktime_get_ns();
	r->t.capture_ns = t3 - t2;
	if (!ret)
		ret = emuhba_to_emu_load(a, r, c);
	r->t.load_ns = ktime_get_ns() - t3;
	if (ret)
		/* The VF lost the guest's queues: no switch until it resets. */
		a->obs.lost = true;
	a->regs_held = false;
	mutex_unlock(&a->model_lock);
	wake_up_all(&a->regs_wq);
	if (ret) {
		pci_err(a->core.pdev, "takeover failed after the VF stopped: %s (%pe)\n",
			r->msg, ERR_PTR(ret));
		goto out_undo;
	}

	emuhba_dirty_scope_exact(a, a->obs.asq);
	emuhba_emul_start(a);
out_done:
	r->window_doorbells = c->caught;
	kvfree(c->ring);
	kfree(c);
	return 0;

out_undo:
	emuhba_emul_stop(a);
	if (vf_running) {
		/* Guest memory is read before memory_lock is taken. */
		emuhba_win_shadow_tails(a, c);
		mutex_lock(&a->model_lock);
		emuhba_db_unshadow(a, emuhba_win_release, c);
		a->regs_held = false;
		mutex_unlock(&a->model_lock);
		wake_up_all(&a->regs_wq);
	} else {
		emuhba_db_shadow_off(a);
	}
	emuhba_backend_close(a);
	r->window_doorbells = c->caught;
out_free:
	kvfree(c->ring);
	kfree(c);
	return ret;
}

static void emuhba_switch_work(struct work_struct *work)
{
	struct emuhba_switch_req *r = container_of(work, struct emuhba_switch_req,
						   work);
	u64 start = ktime_get_ns();

	r->ret = emuhba_to_emulated(r->a, r);
	r->t.total_ns = ktime_get_ns() - start;
	complete(&r->done);
}

/*
 * Switch to emulated mode; the caller holds state_lock. On failure msg says
 * why and the adapter is back in the mode it was in.
 */
int emuhba_switch_to_emulated(struct emuhba_adapter *a,
			      struct emuhba_switch_timing *timing,
			      char *msg, size_t msglen)
{
	enum emuhba_mode from = a->mode;
	struct emuhba_switch_req *r;
	int ret;

	lockdep_assert_held(&a->state_lock);
	memset(timing, 0, sizeof(*timing));
	if (from == EMUHBA_MODE_EMULATED)
		return 0;
	/* Refused before anything changes: no mode events, one error. */
	ret = emuhba_switch_precheck(a, msg, msglen);
	if (ret) {
		pci_info(a->core.pdev, "switch to emulated refused: %s (%pe)\n",
			 msg, ERR_PTR(ret));
		a->counters.switch_failures++;
		emuhba_genl_notify_error(a, ret, msg);
		return ret;
	}
	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	a->mode = EMUHBA_MODE_SWITCHING;
	emuhba_genl_notify_mode(a, from, EMUHBA_MODE_SWITCHING);
	r->a = a;
	init_completion(&r->done);
	/* vfio_dma_rw needs a kernel thread or the VFIO user's own context. */
	INIT_WORK(&r->work, emuhba_switch_work);
	queue_work(system_unbound_wq, &r->work);
	wait_for_completion(&r->done);

	ret = r->ret;
	r->t.result = ret;
	r->t.from_mode = from;
	r->t.to_mode = EMUHBA_MODE_EMULATED;
	a->mode = ret ? from : EMUHBA_MODE_EMULATED;
	a->last_switch = r->t;
	a->counters.switches++;
	a->counters.window_doorbells += r->window_doorbells;
	if (ret)
		a->counters.switch_failures++;
	*timing = r->t;
	strscpy(msg, r->msg, msglen);

	if (ret) {
		pci_info(a->core.pdev, "switch to emulated refused: %s (%pe)\n",
			 r->msg, ERR_PTR(ret));
		emuhba_genl_notify_mode(a, EMUHBA_MODE_SWITCHING, from);
		emuhba_genl_notify_error(a, ret, r->msg);
	} else {
		pci_info(a->core.pdev,
			 "switched to emulated mode in %llu us (repoint %llu, stop %llu, capture %llu, load %llu)\n",
			 r->t.total_ns / 1000, r->t.repoint_ns / 1000,
			 r->t.stop_ns / 1000, r->t.capture_ns / 1000,
			 r->t.load_ns / 1000);
		emuhba_genl_notify_mode(a, EMUHBA_MODE_SWITCHING,
					EMUHBA_MODE_EMULATED);
	}
	kfree(r);
	return ret;
}

int emuhba_adapter_switch(struct emuhba_adapter *a, enum emuhba_mode to,
			  struct emuhba_switch_timing *timing,
			  struct netlink_ext_ack *extack)
{
	char msg[EMUHBA_BACKEND_MAX + 64] = "";
	int ret;

	memset(timing, 0, sizeof(*timing));
	if (to != EMUHBA_MODE_DIRECT && to != EMUHBA_MODE_EMULATED) {
		NL_SET_ERR_MSG(extack, "target mode must be direct or emulated");
		return -EINVAL;
	}
	mutex_lock(&a->state_lock);
	if (a->mode == to) {
		mutex_unlock(&a->state_lock);
		return 0;
	}
	if (!a->open) {
		mutex_unlock(&a->state_lock);
		NL_SET_ERR_MSG(extack, "no VFIO user holds the adapter");
		return -ENODEV;
	}
	if (a->mig_state != VFIO_DEVICE_STATE_RUNNING) {
		mutex_unlock(&a->state_lock);
		NL_SET_ERR_MSG(extack, "a migration is in progress");
		return -EBUSY;
	}
	if (to == EMUHBA_MODE_DIRECT) {
		mutex_unlock(&a->state_lock);
		NL_SET_ERR_MSG(extack,
			       "the switch back to the VF needs the vCPUs stopped: it happens when a stopped VM resumes (QMP stop, then cont)");
		return -EOPNOTSUPP;
	}
	ret = emuhba_switch_to_emulated(a, timing, msg, sizeof(msg));
	mutex_unlock(&a->state_lock);
	if (ret && msg[0])
		NL_SET_ERR_MSG_FMT(extack, "%s", msg);
	return ret;
}

/*
 * Device closed or reset, or a resume that could not finish: back to a
 * consistent direct mode, whatever mode the adapter thinks it is in (no
 * thread, no shadowed doorbells, no backend, the model handing the
 * registers to the VF). The caller holds state_lock.
 */
void emuhba_switch_teardown(struct emuhba_adapter *a)
{
	lockdep_assert_held(&a->state_lock);
	/* What the model finishes from here on reaches no guest. */
	WRITE_ONCE(a->dma_off, true);
	emuhba_emul_stop(a);
	if (READ_ONCE(a->db_shadowed))
		emuhba_db_shadow_off(a);
	emuhba_backend_close(a);
	mutex_lock(&a->model_lock);
	if (emu_nvme_get_mode(a->model) == EMU_NVME_MODE_RUN &&
	    emu_nvme_handback(a->model))
		pci_err(a->core.pdev, "the model still has commands in flight after the drain\n");
	mutex_unlock(&a->model_lock);
	if (a->mode != EMUHBA_MODE_DIRECT)
		emuhba_genl_notify_mode(a, a->mode, EMUHBA_MODE_DIRECT);
	a->mode = EMUHBA_MODE_DIRECT;
}
