// SPDX-License-Identifier: GPL-2.0-only
/*
 * The model's host in the kernel: guest memory through the VF's IOMMU
 * domain (vfio_dma_rw, from a kthread or the VFIO user's own context, never
 * from another process), the DMA log of every page the model writes, bounce
 * buffers, interrupts through the VFIO user's eventfds, and time.
 */
#include <linux/blkdev.h>
#include <linux/hrtimer.h>
#include <linux/kthread.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/pci.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/vfio.h>

#include "emuhba.h"

bool emuhba_model_owns_regs(struct emuhba_adapter *a)
{
	return emu_nvme_get_mode(a->model) == EMU_NVME_MODE_RUN;
}

/* Bit of emul_flags: something for the emulation thread since it last ran. */
#define EMUHBA_EMUL_KICKED	0

/*
 * A register write, a finished backend request: wake the emulation thread
 * (any context). Only the first kick since the thread last looked wakes it.
 */
void emuhba_emul_kick(struct emuhba_adapter *a)
{
	if (!test_and_set_bit(EMUHBA_EMUL_KICKED, &a->emul_flags))
		wake_up(&a->emul_wq);
}

/*
 * Doorbell pages. In direct mode a fault maps the VF's page (the core's own
 * fault handler); while the model owns the device the same user addresses
 * are backed by driver pages, so that doorbell writes land where the model
 * can read them and never reach the stopped VF. Every other page of BAR0
 * stays with the core.
 */
static const struct vm_operations_struct *emuhba_core_vm_ops;

/*
 * Whether the VF's BAR may be touched, as the VFIO core judges it for its
 * own mappings and accesses (its helper is private); memory_lock held.
 */
bool emuhba_vf_mem_ok(struct emuhba_adapter *a)
{
	struct pci_dev *pdev = a->core.pdev;
	u16 cmd = le16_to_cpu(*(__le16 *)&a->core.vconfig[PCI_COMMAND]);

	lockdep_assert_held(&a->core.memory_lock);
	return !a->core.pm_runtime_engaged &&
	       (__force int)pdev->current_state < (__force int)PCI_D3hot &&
	       (pdev->no_command_memory || (cmd & PCI_COMMAND_MEMORY));
}

/*
 * A doorbell page is mapped here, to the driver's page or the VF's, under
 * the same hold of memory_lock that reads db_shadowed: a switch taking the
 * pages (which zaps under the lock held for writing) cannot slip between
 * the check and the mapping.
 */
static vm_fault_t emuhba_db_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	/* vfio_pci_core_mmap() keeps the core device there. */
	struct vfio_pci_core_device *core = vma->vm_private_data;
	struct emuhba_adapter *a = emuhba_from_core(core);
	unsigned long pgoff, first = EMUHBA_REGS_SIZE >> PAGE_SHIFT;
	vm_fault_t ret = VM_FAULT_SIGBUS;

	/* Offset of the faulting page in BAR0, in pages. */
	pgoff = (vma->vm_pgoff & (BIT(VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT) - 1)) +
		((vmf->address - vma->vm_start) >> PAGE_SHIFT);
	if (pgoff < first || pgoff >= first + a->db_pages)
		return emuhba_core_vm_ops->fault(vmf);
	down_read(&a->core.memory_lock);
	if (READ_ONCE(a->db_shadowed))
		/* Ordinary memory: mapped cacheable, as the driver reads it. */
		ret = vmf_insert_pfn_prot(vma, vmf->address & PAGE_MASK,
					  page_to_pfn(a->db_shadow[pgoff - first]),
					  vm_get_page_prot(vma->vm_flags));
	else if (emuhba_vf_mem_ok(a))
		ret = vmf_insert_pfn(vma, vmf->address & PAGE_MASK,
				     (pci_resource_start(a->core.pdev,
							 VFIO_PCI_BAR0_REGION_INDEX) >>
				      PAGE_SHIFT) + pgoff);
	up_read(&a->core.memory_lock);
	return ret;
}

static const struct vm_operations_struct emuhba_db_vm_ops = {
	.fault = emuhba_db_fault,
};

int emuhba_doorbell_mmap(struct emuhba_adapter *a, struct vm_area_struct *vma)
{
	unsigned int index = vma->vm_pgoff >> (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT);
	int ret;

	ret = vfio_pci_core_mmap(&a->core.vdev, vma);
	if (ret || index != VFIO_PCI_BAR0_REGION_INDEX)
		return ret;
	/* The core's handler serves every page the model does not shadow. */
	if (!emuhba_core_vm_ops)
		emuhba_core_vm_ops = vma->vm_ops;
	if (WARN_ON_ONCE(vma->vm_ops != emuhba_core_vm_ops))
		return -EINVAL;
	vma->vm_ops = &emuhba_db_vm_ops;
	return 0;
}

static void emuhba_db_zap(struct emuhba_adapter *a)
{
	unmap_mapping_range(a->core.vdev.inode->i_mapping,
			    VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_BAR0_REGION_INDEX) +
			    EMUHBA_REGS_SIZE, (u64)a->db_pages << PAGE_SHIFT,
			    true);
}

/* Back the doorbell pages with driver pages holding "nothing written". */
void emuhba_db_shadow_on(struct emuhba_adapter *a)
{
	unsigned int i;

	for (i = 0; i < a->db_pages; i++)
		memset32(page_address(a->db_shadow[i]), EMUHBA_DB_EMPTY,
			 PAGE_SIZE / 4);
	down_write(&a->core.memory_lock);
	WRITE_ONCE(a->db_shadowed, true);
	emuhba_db_zap(a);
	up_write(&a->core.memory_lock);
}

void emuhba_db_shadow_off(struct emuhba_adapter *a)
{
	emuhba_db_unshadow(a, NULL, NULL);
}

/*
 * Give the doorbell pages back to the VF; flush, if any, runs once no
 * write can reach the driver pages any more and before any can reach the
 * VF (faults and region writes wait on memory_lock meanwhile).
 */
void emuhba_db_unshadow(struct emuhba_adapter *a,
			void (*flush)(struct emuhba_adapter *a, void *arg),
			void *arg)
{
	down_write(&a->core.memory_lock);
	WRITE_ONCE(a->db_shadowed, false);
	emuhba_db_zap(a);
	if (flush)
		flush(a, arg);
	up_write(&a->core.memory_lock);
}

/*
 * A doorbell written through the region (pwrite) lands where one written
 * through the mapping would: in the driver page while the pages are
 * shadowed, else in the VF. false: not a doorbell page.
 */
bool emuhba_db_region_write(struct emuhba_adapter *a, u64 off, u32 val)
{
	u64 word = (off - EMUHBA_REGS_SIZE) / 4;
	bool shadowed;
	u32 *db;

	if (off < EMUHBA_REGS_SIZE || word >= (u64)a->db_pages * (PAGE_SIZE / 4) ||
	    vfio_pci_core_setup_barmap(&a->core, VFIO_PCI_BAR0_REGION_INDEX))
		return false;
	/* Decided and done under one hold, as the fault handler maps. */
	down_read(&a->core.memory_lock);
	shadowed = READ_ONCE(a->db_shadowed);
	if (shadowed) {
		db = page_address(a->db_shadow[word / (PAGE_SIZE / 4)]);
		WRITE_ONCE(db[word % (PAGE_SIZE / 4)], val);
	} else if (emuhba_vf_mem_ok(a)) {
		vfio_pci_core_iowrite32(&a->core, false, val,
					a->core.barmap[VFIO_PCI_BAR0_REGION_INDEX] +
					off);
	}
	up_read(&a->core.memory_lock);
	if (shadowed)
		emuhba_emul_kick(a);
	return true;
}

/* Hand the doorbell writes that reached the shadow pages to the model. */
void emuhba_db_collect(struct emuhba_adapter *a)
{
	unsigned int i, j;
	u32 *db, v;

	lockdep_assert_held(&a->model_lock);

	for (i = 0; i < a->db_pages; i++) {
		db = page_address(a->db_shadow[i]);
		for (j = 0; j < PAGE_SIZE / 4 && i * PAGE_SIZE / 4 + j < a->db_words;
		     j++) {
			if (READ_ONCE(db[j]) == EMUHBA_DB_EMPTY)
				continue;
			v = xchg(&db[j], EMUHBA_DB_EMPTY);
			emu_nvme_doorbell_write(a->model, EMUHBA_REGS_SIZE +
						(i * PAGE_SIZE / 4 + j) * 4, v);
		}
	}
}

int emuhba_db_alloc(struct emuhba_adapter *a, u32 nr_queues, u32 dstrd)
{
	u64 bar_len = pci_resource_len(a->core.pdev, VFIO_PCI_BAR0_REGION_INDEX);
	unsigned int i, pages;
	u64 words;

	/* Both come from the device: a stride or queue count we cannot shadow. */
	if (dstrd > 15)
		return -EINVAL;
	words = (u64)2 * nr_queues << dstrd;
	pages = DIV_ROUND_UP_ULL(words * 4, PAGE_SIZE);
	if (pages > EMUHBA_MAX_DB_PAGES ||
	    EMUHBA_REGS_SIZE + ((u64)pages << PAGE_SHIFT) > bar_len)
		return -EINVAL;
	a->db_words = words;
	a->db_pages = pages;
	for (i = 0; i < a->db_pages; i++) {
		a->db_shadow[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!a->db_shadow[i])
			goto out_free;
	}
	return 0;

out_free:
	while (i--)
		__free_page(a->db_shadow[i]);
	a->db_pages = 0;
	return -ENOMEM;
}

void emuhba_db_free(struct emuhba_adapter *a)
{
	unsigned int i;

	for (i = 0; i < a->db_pages; i++)
		__free_page(a->db_shadow[i]);
	a->db_pages = 0;
}

/* Record [iova, iova + len) in the DMA log when logging is on. */
static void emuhba_log_mark(struct emuhba_adapter *a, u64 iova, u32 len)
{
	struct emuhba_dirty_log *log = &a->log;
	u64 pfn, last;

	if (!len)
		return;
	mutex_lock(&log->lock);
	if (log->running) {
		last = (iova + len - 1) >> log->page_shift;
		for (pfn = iova >> log->page_shift; pfn <= last; pfn++) {
			if (xa_err(xa_store(&log->pages, pfn, xa_mk_value(1),
					    GFP_KERNEL)))
				log->overflow = true;
		}
	}
	mutex_unlock(&log->lock);
}

static int emuhba_host_dma_read(void *host, u64 iova, void *buf, u32 len)
{
	struct emuhba_adapter *a = host;

	if (READ_ONCE(a->dma_off))
		return -ENODEV;
	return emuhba_guest_read(a, iova, buf, len);
}

static int emuhba_host_dma_write(void *host, u64 iova, const void *buf,
				 u32 len)
{
	struct emuhba_adapter *a = host;
	int ret;

	if (READ_ONCE(a->dma_off))
		return -ENODEV;
	ret = vfio_dma_rw(&a->core.vdev, iova, (void *)buf, len, true);
	if (!ret)
		emuhba_log_mark(a, iova, len);
	return ret;
}

/*
 * Bounce buffers of up to a page (every 4 KiB command) are recycled:
 * allocating and freeing one per command cost more than its copy. The
 * cache is shared by the adapters and kept while an emulation thread
 * runs; larger buffers come from kvmalloc() each time. A recycled buffer
 * is always filled (by the backend or from the guest) before it is read.
 */
#define EMUHBA_BUF_CACHE	256

static struct {
	spinlock_t lock;	/* guards the other fields */
	unsigned int users;	/* running emulation threads */
	unsigned int nr;
	void *bufs[EMUHBA_BUF_CACHE];
} emuhba_bufs = {
	.lock = __SPIN_LOCK_UNLOCKED(emuhba_bufs.lock),
};

/*
 * Buffers above a page are charged to the VFIO user's memory cgroup and
 * bounded per adapter: a guest with MDTS 0 and deep queues would otherwise
 * have the host allocate gigabytes on its behalf. NULL leaves the command
 * in its queue until a buffer is given back; one buffer is always allowed,
 * so that a command larger than the budget still runs, alone.
 */
static void *emuhba_host_buf_alloc(void *host, u32 len)
{
	struct emuhba_adapter *a = host;
	struct mem_cgroup *old;
	void *buf = NULL;

	if (len > PAGE_SIZE) {
		long held = atomic_long_read(&a->bounce_bytes);

		if (held && held + len > EMUHBA_BOUNCE_MAX)
			return NULL;
		old = set_active_memcg(a->memcg);
		buf = kvmalloc(len, GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
		set_active_memcg(old);
		if (buf)
			atomic_long_add(len, &a->bounce_bytes);
		return buf;
	}
	spin_lock(&emuhba_bufs.lock);
	if (emuhba_bufs.nr)
		buf = emuhba_bufs.bufs[--emuhba_bufs.nr];
	spin_unlock(&emuhba_bufs.lock);
	return buf ? buf : (void *)__get_free_page(GFP_KERNEL);
}

static void emuhba_host_buf_free(void *host, void *buf, u32 len)
{
	struct emuhba_adapter *a = host;

	if (len > PAGE_SIZE) {
		kvfree(buf);
		atomic_long_sub(len, &a->bounce_bytes);
		return;
	}
	spin_lock(&emuhba_bufs.lock);
	if (emuhba_bufs.users && emuhba_bufs.nr < EMUHBA_BUF_CACHE) {
		emuhba_bufs.bufs[emuhba_bufs.nr++] = buf;
		buf = NULL;
	}
	spin_unlock(&emuhba_bufs.lock);
	if (buf)
		free_page((unsigned long)buf);
}

static void emuhba_bufs_get(void)
{
	spin_lock(&emuhba_bufs.lock);
	emuhba_bufs.users++;
	spin_unlock(&emuhba_bufs.lock);
}

/* The last thread to stop empties the cache. */
static void emuhba_bufs_put(void)
{
	void *buf;

	spin_lock(&emuhba_bufs.lock);
	emuhba_bufs.users--;
	spin_unlock(&emuhba_bufs.lock);
	for (;;) {
		spin_lock(&emuhba_bufs.lock);
		buf = !emuhba_bufs.users && emuhba_bufs.nr ?
		      emuhba_bufs.bufs[--emuhba_bufs.nr] : NULL;
		spin_unlock(&emuhba_bufs.lock);
		if (!buf)
			break;
		free_page((unsigned long)buf);
	}
}

static int emuhba_host_blk_submit(void *host, struct emu_blk_req *req)
{
	struct emuhba_adapter *a = host;

	return emuhba_backend_submit(a, req);
}

static void emuhba_host_irq_raise(void *host, u16 vector)
{
	struct emuhba_adapter *a = host;

	if (!READ_ONCE(a->dma_off))
		emuhba_irq_signal(a, vector);
}

static u64 emuhba_host_now_ns(void *host)
{
	return ktime_get_ns();
}

const struct emu_host_ops emuhba_host_ops = {
	.dma_read = emuhba_host_dma_read,
	.dma_write = emuhba_host_dma_write,
	.buf_alloc = emuhba_host_buf_alloc,
	.buf_free = emuhba_host_buf_free,
	.blk_submit = emuhba_host_blk_submit,
	.irq_raise = emuhba_host_irq_raise,
	.now_ns = emuhba_host_now_ns,
};

/*
 * One pass of the emulation: backend completions, doorbells, queues, all
 * under one hold of the model's lock. The backend requests of one pass
 * leave under one plug, so that the backend's driver rings its doorbell
 * once per batch rather than once per command. Returns the commands
 * started plus the backend requests finished; *due_ns is the time a
 * coalesced interrupt falls due (0: none).
 */
static int emuhba_emul_pass(struct emuhba_adapter *a, u64 *due_ns)
{
	struct blk_plug plug;
	int done, n;

	*due_ns = 0;
	/* A reset of the VF is being processed: no DMA from here on. */
	if (atomic_read(&a->reset_pending))
		return 0;
	mutex_lock(&a->model_lock);
	done = emuhba_backend_reap_locked(a);
	if (emuhba_model_owns_regs(a)) {
		emuhba_db_collect(a);
		blk_start_plug(&plug);
		n = emu_nvme_poll(a->model, 64);
		blk_finish_plug(&plug);
		a->counters.emulated_cmds += n;
		done += n;
		*due_ns = emu_nvme_timer_ns(a->model);
	}
	mutex_unlock(&a->model_lock);
	return done;
}

int emuhba_emul_poll(struct emuhba_adapter *a)
{
	u64 due;

	return emuhba_emul_pass(a, &due);
}

/*
 * The guest does not announce submissions (shadow doorbells in memory,
 * MMIO doorbells into driver pages), so they are found by polling. After
 * a pass that found nothing the thread naps rather than spins: a guest
 * answers completions with new commands only when it gets the CPU, and a
 * spinning thread can keep it from running (vCPUs sharing host CPUs, or
 * an emulated machine running every vCPU on one thread). The first nap
 * after work is short, since a guest that just took its completions
 * usually submits again at once, and each empty pass doubles it, up to
 * EMUHBA_EMUL_NAP_MAX while work is recent and a tick after
 * EMUHBA_EMUL_BUSY empty passes: a submission waits at most about as
 * long again as the guest took to make it. A backend completion or a
 * register write ends a nap at once, and a coalesced interrupt falling
 * due bounds it.
 */
#define EMUHBA_EMUL_BUSY	100
#define EMUHBA_EMUL_NAP_MIN	(5 * NSEC_PER_USEC)
#define EMUHBA_EMUL_NAP_MAX	(100 * NSEC_PER_USEC)

static void emuhba_emul_nap(struct emuhba_adapter *a, unsigned int idle,
			    u64 due)
{
	u64 now, ns = jiffies_to_nsecs(1);
	DEFINE_WAIT(wait);
	ktime_t t;

	if (idle < EMUHBA_EMUL_BUSY)
		ns = idle > 5 ? EMUHBA_EMUL_NAP_MAX :
		     min_t(u64, EMUHBA_EMUL_NAP_MIN << (idle - 1),
			   EMUHBA_EMUL_NAP_MAX);
	if (due) {
		now = ktime_get_ns();
		if (due <= now)
			return;
		ns = min(ns, due - now);
	}
	t = ns_to_ktime(ns);
	prepare_to_wait(&a->emul_wq, &wait, TASK_INTERRUPTIBLE);
	if (!test_bit(EMUHBA_EMUL_KICKED, &a->emul_flags) &&
	    !kthread_should_stop())
		schedule_hrtimeout_range(&t, ns / 4, HRTIMER_MODE_REL);
	finish_wait(&a->emul_wq, &wait);
}

/* Runs the model while it owns the device: the only context that polls. */
static int emuhba_emul_thread(void *data)
{
	struct emuhba_adapter *a = data;
	unsigned int idle = 0;
	u64 due;

	while (!kthread_should_stop()) {
		clear_bit(EMUHBA_EMUL_KICKED, &a->emul_flags);
		/* Kicks after this point are seen by the next nap. */
		smp_mb__after_atomic();
		if (emuhba_emul_pass(a, &due)) {
			idle = 0;
			cond_resched();
			continue;
		}
		if (idle < EMUHBA_EMUL_BUSY)
			idle++;
		emuhba_emul_nap(a, idle, due);
	}
	return 0;
}

/*
 * Create the emulation thread without running it: a switch does this
 * before anything it cannot undo, so that starting the model afterwards
 * cannot fail. The callers hold state_lock.
 */
int emuhba_emul_prepare(struct emuhba_adapter *a)
{
	struct task_struct *t;

	if (a->emul_thread)
		return 0;
	t = kthread_create(emuhba_emul_thread, a, "emuhba/%u", a->id);
	if (IS_ERR(t))
		return PTR_ERR(t);
	emuhba_bufs_get();
	a->emul_thread = t;
	a->emul_running = false;
	return 0;
}

/* Run the model; at most one thread per adapter, however often called. */
int emuhba_emul_start(struct emuhba_adapter *a)
{
	int ret = emuhba_emul_prepare(a);

	if (ret)
		return ret;
	if (!a->emul_running) {
		wake_up_process(a->emul_thread);
		a->emul_running = true;
	}
	return 0;
}

void emuhba_emul_stop(struct emuhba_adapter *a)
{
	/* kthread_stop() also ends a thread that was never woken. */
	if (a->emul_thread) {
		kthread_stop(a->emul_thread);
		emuhba_bufs_put();
	}
	a->emul_thread = NULL;
	a->emul_running = false;
}

void emuhba_emul_init(struct emuhba_adapter *a)
{
	init_waitqueue_head(&a->emul_wq);
	init_waitqueue_head(&a->regs_wq);
	mutex_init(&a->log.lock);
	xa_init(&a->log.pages);
}

void emuhba_emul_destroy(struct emuhba_adapter *a)
{
	emuhba_emul_stop(a);
	emuhba_db_free(a);
	xa_destroy(&a->log.pages);
	mutex_destroy(&a->log.lock);
}
