// SPDX-License-Identifier: GPL-2.0-only
/*
 * The admin observer. In direct mode the VF executes the guest's admin
 * queue; the switch needs what the guest configured through it (I/O queue
 * table, features, doorbell buffer, outstanding AERs). Every interrupt on
 * the admin vector wakes a work item that reads the new admin completions
 * and the submission entries the VF consumed from guest memory, and hands
 * them to the model's observer. A submission slot cannot be reused before
 * the guest wraps its admin queue, so reading after the interrupt is in
 * time; an observation that fails marks the state lost and the switch is
 * then refused rather than guessed.
 *
 * After a migration from another adapter model the guest keeps the
 * identity it was given, but the VF answers Identify with its own. The
 * interrupt is then held (emuhba_irq.c) until this work has written the
 * model's answer, which is the guest's identity, over the VF's data and
 * status; only then does the guest learn of the completion. With several
 * admin commands in flight the guest may take a completion early; see
 * emuhba_obs_identify() for how that is kept safe.
 */
#include <linux/nvme.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/vfio.h>

#include "emuhba.h"

#define EMUHBA_OBS_BATCH	64

/*
 * Length of the data that goes with a completed admin command, if the
 * model needs it: only what Set Features transfers to the controller (APST,
 * timestamp, host behaviour). Data the controller returned (Identify, logs)
 * is not needed: the identity comes from the VF itself at bind time
 * (emuhba_obs_identify() only checks what the VF wrote before replacing it).
 */
static u32 emuhba_obs_data_len(const struct nvme_command *c, u64 *prp1)
{
	*prp1 = le64_to_cpu(c->common.dptr.prp1);
	if (c->common.opcode != nvme_admin_set_features ||
	    (c->common.flags & NVME_CMD_SGL_ALL) || !*prp1)
		return 0;
	return SZ_4K - (*prp1 & (SZ_4K - 1));
}

/* The VF's own answer to an Identify, as captured at bind time, or NULL. */
static const u8 *emuhba_own_page(const struct emu_nvme_identity *id,
				 const struct nvme_command *c)
{
	u8 cns = c->identify.cns;
	u8 csi = c->identify.csi;
	u32 nsid = le32_to_cpu(c->identify.nsid);
	unsigned int i;

	for (i = 0; id && i < EMU_NVME_MAX_IDPAGES; i++) {
		const struct emu_nvme_idpage *p = &id->pages[i];

		if (p->valid && p->cns == cns &&
		    (cns == NVME_ID_CNS_CTRL ||
		     (p->csi == csi && p->nsid == nsid)))
			return p->data;
	}
	return NULL;
}

/* Identify data: one controller page or less, so PRP1 and PRP2 (no SGLs). */
static int emuhba_identify_rw(struct emuhba_adapter *a,
			      const struct nvme_command *c, u8 *buf, bool write)
{
	u32 mps = 4096U << ((emu_nvme_state(a->model)->regs.cc >>
			     NVME_CC_MPS_SHIFT) & 0xf);
	u64 prp1 = le64_to_cpu(c->identify.dptr.prp1);
	u64 prp2 = le64_to_cpu(c->identify.dptr.prp2);
	u32 len1 = min_t(u32, SZ_4K, mps - (prp1 & (mps - 1)));
	struct vfio_device *vdev = &a->core.vdev;
	int ret;

	ret = vfio_dma_rw(vdev, prp1, buf, len1, write);
	if (!ret && len1 < SZ_4K)
		ret = vfio_dma_rw(vdev, prp2 & ~(u64)(mps - 1), buf + len1,
				  SZ_4K - len1, write);
	return ret;
}

/*
 * Identify executed by a VF of another model: the guest gets the model's
 * data and status (its own identity). The guest looks at a completion once
 * the interrupt is passed on, but with several admin commands in flight it
 * may also take one the VF posted just before, and free its buffer. So the
 * VF's answer is only replaced while it is provably untouched: the buffer
 * still holds the VF's own page and the entry is still the one read.
 * Otherwise the guest keeps the VF's answer (a rate-limited warning says
 * so): never a write into memory the guest may have reused. Writes go
 * through vfio_dma_rw(), which the type1 container logs as dirty.
 */
static void emuhba_obs_identify(struct emuhba_adapter *a,
				const struct nvme_command *c,
				struct nvme_completion *cqe, u64 cqe_iova,
				u8 *data)
{
	const u8 *own = emuhba_own_page(a->own_id, c);
	struct nvme_completion now;
	u8 *cur = data + SZ_4K;
	u16 status;

	/* The VF refused it (a bad buffer, say): the guest keeps that. */
	if (emuhba_cqe_status(cqe) || (c->common.flags & NVME_CMD_SGL_ALL))
		return;
	/* Lists, and pages the VF did not give at bind time, stay its own. */
	if (!own)
		return;
	status = emu_nvme_identify_answer(a->model, c, data);
	if (emuhba_identify_rw(a, c, cur, false) ||
	    memcmp(cur, own, SZ_4K) ||
	    vfio_dma_rw(&a->core.vdev, cqe_iova, &now, sizeof(now), false) ||
	    memcmp(&now, cqe, sizeof(now))) {
		a->counters.identify_unanswered++;
		dev_warn_ratelimited(&a->core.pdev->dev,
				     "Identify (CNS %#x) answered by the VF itself: the guest may have seen it already\n",
				     c->identify.cns);
		return;
	}
	if (!status && emuhba_identify_rw(a, c, data, true))
		status = EMU_SC_INTERNAL;
	if (status) {
		cqe->status = cpu_to_le16(status << 1 | emuhba_cqe_phase(cqe));
		if (vfio_dma_rw(&a->core.vdev,
				cqe_iova + offsetof(struct nvme_completion, status),
				&cqe->status, sizeof(cqe->status), true))
			a->obs.lost = true;
	}
	a->counters.identify_answered++;
}

static void emuhba_obs_complete(struct emuhba_adapter *a,
				struct nvme_completion *cqe, u64 cqe_iova,
				u8 *data)
{
	struct emuhba_observer *obs = &a->obs;
	u16 cid = emuhba_cqe_cid(cqe);
	struct nvme_command *sqe;
	u32 i, len = 0;
	u64 prp1;

	/* The most recently fetched slot with this command identifier. */
	for (i = 0; i < obs->sq_size; i++) {
		u16 slot = (obs->sq_head + obs->sq_size - 1 - i) % obs->sq_size;

		sqe = &obs->pending[slot];
		if (emuhba_sqe_cid(sqe) == cid && emuhba_sqe_outstanding(sqe))
			break;
	}
	if (i == obs->sq_size) {
		/*
		 * An AER outlives its slot: the guest reuses a slot once the
		 * VF fetched it. The model knows its outstanding AERs.
		 */
		const struct emu_nvme_aer *aer = &emu_nvme_state(a->model)->aer;
		struct nvme_command aer_sqe = { };
		unsigned int k;

		for (k = 0; k < aer->nr_cid && aer->cid[k] != cid; k++)
			;
		if (k == aer->nr_cid) {
			obs->lost = true;
			return;
		}
		aer_sqe.common.opcode = nvme_admin_async_event;
		emuhba_sqe_set_cid(&aer_sqe, cid);
		emu_nvme_observe_admin(a->model, &aer_sqe, cqe, NULL, 0);
		return;
	}
	emuhba_sqe_set_outstanding(sqe, false);	/* see emuhba_obs_fetch() */
	if (sqe->common.opcode == nvme_admin_identify && a->id_foreign)
		emuhba_obs_identify(a, sqe, cqe, cqe_iova, data);

	len = emuhba_obs_data_len(sqe, &prp1);
	if (len && emuhba_guest_read(a, prp1, data, len))
		len = 0;
	emu_nvme_observe_admin(a->model, sqe, cqe, len ? data : NULL, len);
}

/*
 * Read the submission entries the VF consumed up to new_head. The last byte
 * of a copy (reserved in every admin command) marks it outstanding.
 */
static int emuhba_obs_fetch(struct emuhba_adapter *a, u16 new_head)
{
	struct emuhba_observer *obs = &a->obs;
	struct nvme_command *sqe;
	int ret;

	while (obs->sq_head != new_head) {
		sqe = &obs->pending[obs->sq_head];
		ret = emuhba_guest_read(a, obs->asq + (u64)obs->sq_head *
					sizeof(*sqe), sqe, sizeof(*sqe));
		if (ret)
			return ret;
		emu_nvme_observe_admin(a->model, sqe, NULL, NULL, 0);
		emuhba_sqe_set_outstanding(sqe, true);
		obs->sq_head = (obs->sq_head + 1) % obs->sq_size;
	}
	return 0;
}

static void emuhba_obs_work(struct work_struct *work)
{
	struct emuhba_adapter *a = container_of(work, struct emuhba_adapter,
						obs.work);
	struct emuhba_observer *obs = &a->obs;
	struct nvme_completion cqe;
	unsigned int n = 0;
	bool held;
	u64 iova;
	u8 *data;
	u16 sqhd;

	/*
	 * Completions posted before a held interrupt are in memory before
	 * it: this pass sees them. One arriving meanwhile queues another.
	 */
	held = atomic_xchg(&obs->held, 0);
	/*
	 * Between two interrupts the VF posts at most a queue's worth of
	 * completions; a guest forging phase-valid entries ahead of the
	 * observer would otherwise keep it reading for ever.
	 */
	if (atomic_xchg(&obs->irqs, 0))
		obs->budget = obs->cq_size;
	data = kmalloc(2 * SZ_4K, GFP_KERNEL);
	if (!data) {
		mutex_lock(&a->model_lock);
		obs->lost = true;
		mutex_unlock(&a->model_lock);
		goto out_forward;
	}

	mutex_lock(&a->model_lock);
	/* The model owns the admin queue: there is nothing to observe. */
	if (emu_nvme_get_mode(a->model) == EMU_NVME_MODE_RUN)
		n = EMUHBA_OBS_BATCH;
	while (obs->enabled && !obs->lost && n++ < EMUHBA_OBS_BATCH) {
		iova = obs->acq + (u64)obs->cq_head * sizeof(cqe);
		if (emuhba_guest_read(a, iova, &cqe, sizeof(cqe))) {
			obs->lost = true;
			break;
		}
		if (emuhba_cqe_phase(&cqe) != obs->phase)
			break;
		if (!obs->budget) {
			dev_warn_ratelimited(&a->core.pdev->dev,
					     "more admin completions than the queue holds since the last interrupt\n");
			obs->lost = true;
			break;
		}
		obs->budget--;
		sqhd = le16_to_cpu(cqe.sq_head);
		if (obs->sq_size != obs->pending_slots || sqhd >= obs->sq_size ||
		    obs->sq_head >= obs->sq_size || emuhba_obs_fetch(a, sqhd)) {
			obs->lost = true;
			break;
		}
		emuhba_obs_complete(a, &cqe, iova, data);
		a->counters.admin_observed++;
		if (++obs->cq_head == obs->cq_size) {
			obs->cq_head = 0;
			obs->phase = !obs->phase;
		}
	}
	if (obs->lost)
		dev_warn_ratelimited(&a->core.pdev->dev,
				     "admin queue observation lost; switching will be refused until the guest resets the controller\n");
	mutex_unlock(&a->model_lock);
	kfree(data);
	if (n > EMUHBA_OBS_BATCH && obs->enabled && !obs->lost &&
	    emu_nvme_get_mode(a->model) != EMU_NVME_MODE_RUN) {
		/* Not caught up: the next pass passes the interrupt on. */
		if (held)
			atomic_set(&obs->held, 1);
		queue_work(system_highpri_wq, &obs->work);
		return;
	}
out_forward:
	if (!held)
		return;
	/*
	 * Another admin interrupt came in during the pass: its completion
	 * may not have been read yet, and passing this one on would let the
	 * guest see it. The next pass passes both on, once, unless that has
	 * happened twice in a row already (a vector shared with busy I/O
	 * queues must not starve).
	 */
	if (atomic_read(&obs->held) && obs->deferred < 2) {
		obs->deferred++;
		queue_work(system_highpri_wq, &obs->work);
		return;
	}
	obs->deferred = 0;
	emuhba_admin_irq_forward(a);
}

static void emuhba_obs_stop(struct emuhba_observer *obs)
{
	obs->enabled = false;
	obs->lost = false;
	kvfree(obs->pending);
	obs->pending = NULL;
	obs->pending_slots = 0;
}

/* The guest's controller is disabled; model_lock held. */
void emuhba_observer_stop_locked(struct emuhba_adapter *a)
{
	lockdep_assert_held(&a->model_lock);
	emuhba_obs_stop(&a->obs);
}

/*
 * The observer's copy of every admin slot starts as what the guest's
 * memory holds: an entry that later differs from it was written by the
 * guest since (the switch tells commands placed after the newest
 * completion from stale ones so). Not fetched, so none is outstanding.
 * From the VFIO user's context or a kernel thread.
 */
void emuhba_observer_snapshot(struct emuhba_adapter *a)
{
	struct emuhba_observer *obs = &a->obs;
	u16 slot;

	if (!obs->pending || obs->pending_slots != obs->sq_size)
		return;
	if (emuhba_guest_read(a, obs->asq, obs->pending,
			      (size_t)obs->sq_size * sizeof(*obs->pending)))
		memset(obs->pending, 0,
		       (size_t)obs->sq_size * sizeof(*obs->pending));
	for (slot = 0; slot < obs->sq_size; slot++)
		emuhba_sqe_set_outstanding(&obs->pending[slot], false);
}

static void emuhba_obs_start(struct emuhba_adapter *a)
{
	struct emuhba_observer *obs = &a->obs;

	emuhba_obs_stop(obs);
	obs->sq_head = 0;
	obs->cq_head = 0;
	obs->phase = 1;
	obs->pending = kvcalloc(obs->sq_size, sizeof(*obs->pending), GFP_KERNEL);
	obs->pending_slots = obs->pending ? obs->sq_size : 0;
	obs->enabled = obs->pending && obs->sq_size && obs->cq_size;
	obs->lost = !obs->enabled;
	obs->budget = obs->cq_size;
	emuhba_observer_snapshot(a);
}

/* After the VF accepted a register write in direct mode. */
void emuhba_observe_reg_done(struct emuhba_adapter *a, u32 off, u64 val,
			     u32 size)
{
	struct emuhba_observer *obs = &a->obs;

	mutex_lock(&a->model_lock);
	/*
	 * The admin queue registers take effect when the controller is
	 * enabled; written while it runs they change nothing on the VF and
	 * must not change what the observer reads either.
	 */
	if (obs->enabled && off >= NVME_REG_AQA && off < NVME_REG_ACQ + 8)
		off = 0;
	switch (off) {
	case NVME_REG_AQA:
		obs->sq_size = (val & 0xfff) + 1;
		obs->cq_size = ((val >> 16) & 0xfff) + 1;
		break;
	case NVME_REG_ASQ:
		obs->asq = size == 8 ? val : (obs->asq & ~0xffffffffULL) | (u32)val;
		break;
	case NVME_REG_ASQ + 4:
		obs->asq = (obs->asq & 0xffffffffULL) | (val << 32);
		break;
	case NVME_REG_ACQ:
		obs->acq = size == 8 ? val : (obs->acq & ~0xffffffffULL) | (u32)val;
		break;
	case NVME_REG_ACQ + 4:
		obs->acq = (obs->acq & 0xffffffffULL) | (val << 32);
		break;
	case NVME_REG_CC:
		/*
		 * Not read before the admin vector fires: until then the CQ
		 * may still hold entries of the controller's previous life
		 * (Linux clears it only once CSTS.RDY is set).
		 */
		if ((val & NVME_CC_ENABLE) && !obs->enabled)
			emuhba_obs_start(a);
		else if (!(val & NVME_CC_ENABLE) && obs->enabled)
			emuhba_obs_stop(obs);
		break;
	}
	mutex_unlock(&a->model_lock);
}

int emuhba_observer_init(struct emuhba_adapter *a)
{
	struct emuhba_observer *obs = &a->obs;

	INIT_WORK(&obs->work, emuhba_obs_work);
	atomic_set(&obs->held, 0);
	atomic_set(&obs->irqs, 0);
	return 0;
}

/*
 * Device closed or reset: nothing of the old admin queue remains, and the
 * model forgets the controller as a reset does (the VF itself is reset by
 * the VFIO core).
 */
void emuhba_observer_reset(struct emuhba_adapter *a, bool own_id)
{
	cancel_work_sync(&a->obs.work);
	/* The work may have been the one to pass an interrupt on. */
	if (atomic_xchg(&a->obs.held, 0))
		emuhba_admin_irq_forward(a);
	mutex_lock(&a->model_lock);
	emuhba_obs_stop(&a->obs);
	if (emu_nvme_get_mode(a->model) == EMU_NVME_MODE_OBSERVE) {
		emu_nvme_observe_reg_write(a->model, EMU_REG_CC, 0, 4);
		if (own_id && a->own_id)
			emu_nvme_set_identity(a->model, a->own_id);
	}
	emuhba_identity_refresh_locked(a);
	mutex_unlock(&a->model_lock);
}

void emuhba_identity_refresh_locked(struct emuhba_adapter *a)
{
	lockdep_assert_held(&a->model_lock);
	WRITE_ONCE(a->id_foreign, a->own_id &&
		   !emu_nvme_identity_same(&emu_nvme_state(a->model)->id,
					   a->own_id));
}
