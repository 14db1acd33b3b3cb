// SPDX-License-Identifier: GPL-2.0-only
/*
 * VFIO DMA logging. In direct mode the VF's own writes are not tracked: the
 * log only starts after the switch, and the switch to emulated mode happens
 * when logging starts, so what the log reports is exactly the pages the
 * model wrote since the last read.
 */
#include <linux/iova_bitmap.h>
#include <linux/log2.h>
#include <linux/pci.h>
#include <linux/vfio.h>

#include "emuhba.h"

static int emuhba_log_start(struct vfio_device *vdev,
			    struct rb_root_cached *ranges, u32 nnodes,
			    u64 *page_size)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);
	struct emuhba_dirty_log *log = &a->log;
	u64 psize = max_t(u64, *page_size, PAGE_SIZE);

	if (!is_power_of_2(psize))
		return -EINVAL;
	/*
	 * The VF's own DMA cannot be logged: a log is only honest once the
	 * model owns the device and does every write itself.
	 */
	if (!emuhba_model_owns_regs(a)) {
		pci_info_ratelimited(a->core.pdev,
				     "DMA logging refused: the adapter is in direct mode\n");
		return -EOPNOTSUPP;
	}
	mutex_lock(&log->lock);
	xa_destroy(&log->pages);
	log->page_shift = ilog2(psize);
	log->overflow = false;
	log->running = true;
	mutex_unlock(&log->lock);
	*page_size = psize;
	return 0;
}

static int emuhba_log_stop(struct vfio_device *vdev)
{
	struct emuhba_dirty_log *log = &emuhba_from_vdev(vdev)->log;

	mutex_lock(&log->lock);
	log->running = false;
	log->overflow = false;
	xa_destroy(&log->pages);
	mutex_unlock(&log->lock);
	return 0;
}

static int emuhba_log_read_and_clear(struct vfio_device *vdev,
				     unsigned long iova, unsigned long length,
				     struct iova_bitmap *dirty)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);
	struct emuhba_dirty_log *log = &a->log;
	unsigned long first, last, index;
	unsigned long reported = 0;
	void *entry;

	if (!length)
		return 0;
	mutex_lock(&log->lock);
	if (!log->running) {
		mutex_unlock(&log->lock);
		return -EINVAL;
	}
	if (log->overflow) {
		/* Better every page than a missed one. */
		iova_bitmap_set(dirty, iova, length);
		mutex_unlock(&log->lock);
		return 0;
	}
	first = iova >> log->page_shift;
	last = (iova + length - 1) >> log->page_shift;
	xa_for_each_range(&log->pages, index, entry, first, last) {
		iova_bitmap_set(dirty, index << log->page_shift,
				1UL << log->page_shift);
		xa_erase(&log->pages, index);
		reported++;
	}
	mutex_unlock(&log->lock);

	mutex_lock(&a->state_lock);
	a->counters.dirty_pages += reported;
	mutex_unlock(&a->state_lock);
	return 0;
}

const struct vfio_log_ops emuhba_log_ops = {
	.log_start = emuhba_log_start,
	.log_stop = emuhba_log_stop,
	.log_read_and_clear = emuhba_log_read_and_clear,
};
