// SPDX-License-Identifier: GPL-2.0-only
/*
 * The switch from direct to emulated mode with the guest running.
 *
 *  1. re-point: the doorbell pages are backed by driver pages, so no new
 *     submission reaches the VF;
 *  2. stop: wait until the VF has completed everything it fetched (each
 *     queue's last completion reports the head the VF announced in EventIdx
 *     and nothing moves for a few polls: drain and settle), then disable the
 *     VF (CC.EN = 0);
 *  3. capture: establish every queue's position from the guest's shadow
 *     doorbell buffer and from the completion queues in guest memory;
 *  4. load: the model takes the queues over at those positions.
 *
 * Positions are only taken when they are certain; otherwise the switch is
 * undone and refused, leaving the guest on the VF as before.
 */
#include <linux/delay.h>
#include <linux/io.h>
#include <linux/iommu.h>
#include <linux/ktime.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/vfio.h>

#include "emuhba.h"

#define EMUHBA_SETTLE_POLLS	3
#define EMUHBA_MSG_NO_DBBUF \
	"the guest does not use shadow doorbells: queue positions cannot be established"

struct emuhba_switch_req {
	struct work_struct work;
	struct emuhba_adapter *a;
	struct emuhba_switch_timing t;
	char msg[EMUHBA_BACKEND_MAX + 64];
	int ret;
	struct completion done;
};

struct emuhba_capture {
	struct emu_nvme_positions pos;
	struct emu_nvme_positions prev;
	u32 stride;		/* doorbell stride in bytes */
	/* a completion queue, read from guest memory */
	struct nvme_completion *ring;
};

static int emuhba_dbbuf_read(struct emuhba_adapter *a, u64 base, u32 stride,
			     u32 qid, bool cq, u16 *val)
{
	__le32 v;
	int ret;

	ret = emuhba_guest_read(a, base + (2 * qid + cq) * stride, &v, sizeof(v));
	*val = le32_to_cpu(v);
	return ret;
}

/*
 * Where the controller posts the next entry of a completion queue whose
 * consumer is at head: the guest's phase at head is the phase of the entry
 * just before it (it consumed that one in its current lap); the posted but
 * unconsumed entries follow with that phase.
 */
static int emuhba_cq_tail(struct emuhba_adapter *a, struct emuhba_capture *c,
			  const struct emu_nvme_cq *cq, u16 head, u16 *tail,
			  u8 *phase, u16 *last_sqid, u16 *last_sqhd)
{
	u16 prev, i, idx;
	u8 ph;
	int ret;

	ret = emuhba_guest_read(a, cq->base, c->ring,
				(size_t)cq->size * sizeof(*c->ring));
	if (ret)
		return ret;
	prev = head ? head - 1 : cq->size - 1;
	ph = emuhba_cqe_phase(&c->ring[prev]);
	if (!head)
		ph ^= 1;
	idx = head;
	for (i = 0; i < cq->size; i++) {
		if (emuhba_cqe_phase(&c->ring[idx]) != ph)
			break;
		if (++idx == cq->size) {
			idx = 0;
			ph ^= 1;
		}
	}
	if (i == cq->size)
		return -ERANGE;	/* a full ring cannot be told from an empty one */
	*tail = idx;
	*phase = ph;
	prev = idx ? idx - 1 : cq->size - 1;
	*last_sqhd = le16_to_cpu(c->ring[prev].sq_head);
	*last_sqid = le16_to_cpu(c->ring[prev].sq_id);
	return 0;
}

/*
 * One look at every I/O queue. Returns 1 when settled (each completion
 * queue consumed up to the controller's tail, each submission queue's last
 * completion reporting the head the controller announced in EventIdx), 0
 * when not yet, or a negative errno when positions cannot be read.
 */
static int emuhba_capture_io(struct emuhba_adapter *a, struct emuhba_capture *c,
			     char *msg, size_t len)
{
	const struct emu_nvme_state *st = emu_nvme_state(a->model);
	u16 qid, sqhd[EMU_NVME_NR_Q], sqid[EMU_NVME_NR_Q];
	bool settled = true;
	int ret;

	memcpy(&c->prev, &c->pos, sizeof(c->prev));

	for (qid = 1; qid < EMU_NVME_NR_Q; qid++) {
		const struct emu_nvme_cq *cq = &st->cq[qid];
		struct emu_nvme_qpos *p = &c->pos.q[qid];

		sqid[qid] = 0;
		if (!cq->valid)
			continue;
		ret = emuhba_dbbuf_read(a, st->dbbuf.dbs, c->stride, qid, true,
					&p->cq_head);
		if (!ret && p->cq_head >= cq->size)
			ret = -ERANGE;
		if (!ret)
			ret = emuhba_cq_tail(a, c, cq, p->cq_head, &p->cq_tail,
					     &p->cq_phase, &sqid[qid],
					     &sqhd[qid]);
		if (ret) {
			snprintf(msg, len, "completion queue %u: position unknown (%d)",
				 qid, ret);
			return ret;
		}
	}
	for (qid = 1; qid < EMU_NVME_NR_Q; qid++) {
		const struct emu_nvme_sq *sq = &st->sq[qid];
		struct emu_nvme_qpos *p = &c->pos.q[qid];
		u16 seen, tail;

		if (!sq->valid)
			continue;
		ret = emuhba_dbbuf_read(a, st->dbbuf.eis, c->stride, qid, false,
					&seen);
		if (!ret)
			ret = emuhba_dbbuf_read(a, st->dbbuf.dbs, c->stride, qid,
						false, &tail);
		if (!ret && (seen >= sq->size || tail >= sq->size))
			ret = -ERANGE;
		if (ret) {
			snprintf(msg, len, "submission queue %u: position unknown (%d)",
				 qid, ret);
			return ret;
		}
		/* The VF fetched up to seen; the model fetches the rest. */
		p->sq_head = seen;
		p->sq_tail = seen;
		if (sqid[sq->cqid] == qid && sqhd[sq->cqid] != seen)
			settled = false;
	}
	/* Nothing posted or fetched since the last look. */
	if (memcmp(&c->prev.q[1], &c->pos.q[1],
		   sizeof(c->pos.q) - sizeof(c->pos.q[0])))
		settled = false;
	return settled;
}

/*
 * The admin queue: the observer has every completion; the VF mirrors the
 * admin doorbells into the shadow buffer, so its tail is known, and what
 * it fetched beyond the last completion must be AERs only.
 */
static int emuhba_capture_admin(struct emuhba_adapter *a,
				struct emuhba_capture *c, char *msg, size_t len)
{
	const struct emu_nvme_state *st = emu_nvme_state(a->model);
	struct emuhba_observer *obs = &a->obs;
	struct emu_nvme_qpos *p = &c->pos.q[0];
	struct nvme_command sqe;
	u16 tail, head, slot;
	int ret;

	ret = emuhba_dbbuf_read(a, st->dbbuf.dbs, c->stride, 0, false, &tail);
	if (!ret)
		ret = emuhba_dbbuf_read(a, st->dbbuf.dbs, c->stride, 0, true,
					&head);
	if (!ret && (tail >= obs->sq_size || head >= obs->cq_size))
		ret = -ERANGE;
	if (ret) {
		snprintf(msg, len, "admin queue: doorbells unknown (%d)", ret);
		return ret;
	}
	for (slot = obs->sq_head; slot != tail; slot = (slot + 1) % obs->sq_size) {
		ret = emuhba_guest_read(a, obs->asq + (u64)slot * sizeof(sqe),
					&sqe, sizeof(sqe));
		if (ret)
			return ret;
		if (sqe.common.opcode != nvme_admin_async_event) {
			snprintf(msg, len,
				 "admin queue: command 0x%02x in flight at the switch",
				 sqe.common.opcode);
			return 0;
		}
	}
	p->sq_head = tail;
	p->sq_tail = tail;
	p->cq_head = head;
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
		else if (!st->dbbuf.enabled)
			why = EMUHBA_MSG_NO_DBBUF;
		else if (emu_nvme_check(a->model, msg, len))
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
static void emuhba_to_emu_disabled(struct emuhba_adapter *a,
				   struct emuhba_switch_req *r)
{
	u64 t0;

	t0 = ktime_get_ns();
	emuhba_db_shadow_on(a);
	mutex_lock(&a->model_lock);
	emu_nvme_start_disabled(a->model);
	mutex_unlock(&a->model_lock);
	r->t.load_ns = ktime_get_ns() - t0;
	emuhba_emul_start(a);
}

/* 1. No new submission reaches the VF: the doorbells are the driver's. */
static void emuhba_to_emu_repoint(struct emuhba_adapter *a)
{
	emuhba_db_shadow_on(a);
}

/*
 * 2a. Wait until the VF has completed everything it fetched and nothing
 * has moved for EMUHBA_SETTLE_POLLS looks. 0 when settled, else a
 * negative errno with msg saying why.
 */
static int emuhba_to_emu_wait_settled(struct emuhba_adapter *a,
				      struct emuhba_switch_req *r,
				      struct emuhba_capture *c)
{
	unsigned long deadline;
	int stable = 0, ret, adm;

	deadline = jiffies + msecs_to_jiffies(a->policy.switch_timeout_ms);
	for (;;) {
		flush_work(&a->obs.work);
		mutex_lock(&a->model_lock);
		ret = emuhba_capture_io(a, c, r->msg, sizeof(r->msg));
		adm = ret < 0 ? ret : emuhba_capture_admin(a, c, r->msg,
							   sizeof(r->msg));
		mutex_unlock(&a->model_lock);
		if (ret < 0 || adm < 0)
			return ret < 0 ? ret : adm;
		stable = ret && adm ? stable + 1 : 0;
		if (stable >= EMUHBA_SETTLE_POLLS)
			return 0;
		if (time_after(jiffies, deadline)) {
			if (!r->msg[0])
				snprintf(r->msg, sizeof(r->msg),
					 "the VF did not settle within %u ms",
					 a->policy.switch_timeout_ms);
			return -ETIMEDOUT;
		}
		r->msg[0] = 0;
		usleep_range(1000, 2000);
	}
}

/* 2b. The VF settled: disable it (CC.EN = 0). */
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
 * 3. Every queue's position, with the VF stopped, and the AERs it fetched
 * after the last admin completion; model_lock held. A negative errno when
 * a position cannot be read, else what emuhba_capture_io() and
 * emuhba_capture_admin() said last (0 lets the load go ahead).
 */
static int emuhba_to_emu_capture(struct emuhba_adapter *a,
				 struct emuhba_switch_req *r,
				 struct emuhba_capture *c)
{
	int ret;

	lockdep_assert_held(&a->model_lock);
	ret = emuhba_capture_io(a, c, r->msg, sizeof(r->msg));
	if (ret >= 0)
		ret = emuhba_capture_admin(a, c, r->msg, sizeof(r->msg));
	if (ret > 0)
		ret = emuhba_capture_aers(a, c->pos.q[0].sq_tail);
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
	struct emuhba_capture *c;
	u64 t0, t1, t2, t3;
	bool enabled;
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

	mutex_lock(&a->model_lock);
	enabled = st->regs.cc & EMU_CC_EN;
	mutex_unlock(&a->model_lock);
	if (!enabled) {
		ret = emuhba_to_emu_open(a, r);
		if (ret)
			goto out_free;
		ret = emuhba_emul_prepare(a);
		if (ret)
			goto out_undo;
		emuhba_to_emu_disabled(a, r);
		goto out_done;
	}
	/* Checked again: the observer may have lost track since. */
	ret = emuhba_switch_precheck(a, r->msg, sizeof(r->msg));
	if (ret)
		goto out_free;
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

	ret = emuhba_to_emu_wait_settled(a, r, c);
	if (!ret)
		ret = emuhba_to_emu_stop(a, r);
	if (ret)
		goto out_undo;
	t2 = ktime_get_ns();
	r->t.stop_ns = t2 - t1;

	mutex_lock(&a->model_lock);
	ret = emuhba_to_emu_capture(a, r, c);
	t3 = ktime_get_ns();
	r->t.capture_ns = t3 - t2;
	if (!ret)
		ret = emuhba_to_emu_load(a, r, c);
	r->t.load_ns = ktime_get_ns() - t3;
	mutex_unlock(&a->model_lock);
	if (ret) {
		/* The VF is stopped: the guest's controller is lost. */
		pci_err(a->core.pdev, "takeover failed after the VF stopped: %s (%pe)\n",
			r->msg, ERR_PTR(ret));
		goto out_undo;
	}

	emuhba_dirty_scope_exact(a, a->obs.asq);
	emuhba_emul_start(a);
out_done:
	kvfree(c->ring);
	kfree(c);
	return 0;

out_undo:
	emuhba_emul_stop(a);
	emuhba_db_shadow_off(a);
	emuhba_backend_close(a);
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
