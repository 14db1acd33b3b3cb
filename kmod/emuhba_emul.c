// SPDX-License-Identifier: GPL-2.0-only
/*
 * The model's host in the kernel: guest memory through the VF's IOMMU
 * domain (vfio_dma_rw, from a kthread or the VFIO user's own context, never
 * from another process), the DMA log of every page the model writes, bounce
 * buffers, interrupts through the VFIO user's eventfds, and time.
 */
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/vfio.h>

#include "emuhba.h"

bool emuhba_model_owns_regs(struct emuhba_adapter *a)
{
	return emu_nvme_get_mode(a->model) == EMU_NVME_MODE_RUN;
}

void emuhba_emul_kick(struct emuhba_adapter *a)
{
	if (emuhba_model_owns_regs(a))
		queue_work(system_highpri_wq, &a->emul_work);
}

/* Doorbells stay mapped to the VF in direct mode. */
int emuhba_doorbell_mmap(struct emuhba_adapter *a, struct vm_area_struct *vma)
{
	return vfio_pci_core_mmap(&a->core.vdev, vma);
}

/* Record [iova, iova + len) in the DMA log when logging is on. */
static void emuhba_log_mark(struct emuhba_adapter *a, u64 iova, u32 len)
{
	struct emuhba_dirty_log *log = &a->log;
	u64 pfn, last;

	if (!len)
		return;
	spin_lock(&log->lock);
	if (log->running) {
		last = (iova + len - 1) >> log->page_shift;
		for (pfn = iova >> log->page_shift; pfn <= last; pfn++) {
			if (xa_err(xa_store(&log->pages, pfn, xa_mk_value(1),
					    GFP_ATOMIC)))
				log->overflow = true;
		}
	}
	spin_unlock(&log->lock);
}

static int emuhba_host_dma_read(void *host, u64 iova, void *buf, u32 len)
{
	struct emuhba_adapter *a = host;

	return vfio_dma_rw(&a->core.vdev, iova, buf, len, false);
}

static int emuhba_host_dma_write(void *host, u64 iova, const void *buf,
				 u32 len)
{
	struct emuhba_adapter *a = host;
	int ret;

	ret = vfio_dma_rw(&a->core.vdev, iova, (void *)buf, len, true);
	if (!ret)
		emuhba_log_mark(a, iova, len);
	return ret;
}

static void *emuhba_host_buf_alloc(void *host, u32 len)
{
	return kvmalloc(len, GFP_KERNEL);
}

static void emuhba_host_buf_free(void *host, void *buf, u32 len)
{
	kvfree(buf);
}

static int emuhba_host_blk_submit(void *host, struct emu_blk_req *req)
{
	struct emuhba_adapter *a = host;

	return emuhba_backend_submit(a, req);
}

static void emuhba_host_irq_raise(void *host, u16 vector)
{
	emuhba_irq_signal(host, vector);
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

static void emuhba_emul_work(struct work_struct *work)
{
	struct emuhba_adapter *a = container_of(work, struct emuhba_adapter,
						emul_work);
	int done;

	emuhba_backend_reap(a);
	mutex_lock(&a->model_lock);
	done = emuhba_model_owns_regs(a) ? emu_nvme_poll(a->model, 64) : 0;
	mutex_unlock(&a->model_lock);
	if (done)
		queue_work(system_highpri_wq, &a->emul_work);
}

void emuhba_emul_init(struct emuhba_adapter *a)
{
	INIT_WORK(&a->emul_work, emuhba_emul_work);
	spin_lock_init(&a->log.lock);
	xa_init(&a->log.pages);
}

void emuhba_emul_destroy(struct emuhba_adapter *a)
{
	cancel_work_sync(&a->emul_work);
	xa_destroy(&a->log.pages);
}
