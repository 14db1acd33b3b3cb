// SPDX-License-Identifier: GPL-2.0-only
/*
 * BAR0 of an NVMe VF as the VFIO user sees it. The controller registers
 * (the first 4 KiB) are never mapped into the user: every access traps here,
 * so that the register state the switch needs is known and so that the
 * registers can be emulated while the model owns the guest's device. The
 * doorbells (from 4 KiB on) stay mapped straight to the VF: no trap per I/O.
 */
#include <linux/pci.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>

#include "emuhba.h"

static bool emuhba_is_regs(struct emuhba_adapter *a, loff_t pos, size_t count)
{
	u64 off = pos & VFIO_PCI_OFFSET_MASK;

	return VFIO_PCI_OFFSET_TO_INDEX(pos) == VFIO_PCI_BAR0_REGION_INDEX &&
	       off < EMUHBA_REGS_SIZE;
}

/* The doorbell pages of BAR0, which a switch or the model may hold. */
static bool emuhba_is_doorbells(struct emuhba_adapter *a, loff_t pos)
{
	u64 off = pos & VFIO_PCI_OFFSET_MASK;

	return VFIO_PCI_OFFSET_TO_INDEX(pos) == VFIO_PCI_BAR0_REGION_INDEX &&
	       off >= EMUHBA_REGS_SIZE &&
	       off < EMUHBA_REGS_SIZE + ((u64)a->db_pages << PAGE_SHIFT);
}

/*
 * Pages of BAR0 holding the MSI-X table or the pending bit array, which the
 * VMM emulates itself: [start, end) each, or empty.
 */
static void emuhba_msix_pages(struct emuhba_adapter *a, u64 *start, u64 *end)
{
	struct vfio_pci_core_device *core = &a->core;
	struct pci_dev *pdev = core->pdev;
	u16 flags = 0;
	u32 pba = 0;
	u64 off, len;

	start[0] = 0;
	end[0] = 0;
	start[1] = 0;
	end[1] = 0;
	if (!pdev->msix_cap)
		return;
	if (core->msix_bar == VFIO_PCI_BAR0_REGION_INDEX && core->msix_size) {
		start[0] = round_down(core->msix_offset, PAGE_SIZE);
		end[0] = round_up(core->msix_offset + core->msix_size, PAGE_SIZE);
	}
	pci_read_config_dword(pdev, pdev->msix_cap + PCI_MSIX_PBA, &pba);
	pci_read_config_word(pdev, pdev->msix_cap + PCI_MSIX_FLAGS, &flags);
	if ((pba & PCI_MSIX_PBA_BIR) != VFIO_PCI_BAR0_REGION_INDEX)
		return;
	off = pba & PCI_MSIX_PBA_OFFSET;
	len = DIV_ROUND_UP((flags & PCI_MSIX_FLAGS_QSIZE) + 1, 64) * 8;
	start[1] = round_down(off, PAGE_SIZE);
	end[1] = round_up(off + len, PAGE_SIZE);
}

/*
 * The areas the VFIO user may map: BAR0 after the registers page, without
 * the MSI-X pages. Those are left to the VMM's own emulation (and BAR0 is
 * not reported MSIX_MAPPABLE): a mapping split around them at sub-page
 * edges gives QEMU memory sections that type1 dirty tracking refuses, and
 * with them every migration.
 */
static unsigned int emuhba_mmap_areas(struct emuhba_adapter *a, u64 bar_len,
				      struct vfio_region_sparse_mmap_area *areas)
{
	u64 start[2], end[2], pos = EMUHBA_REGS_SIZE, stop;
	unsigned int n = 0, i;
	bool moved;

	emuhba_msix_pages(a, start, end);
	while (pos < bar_len && n < 3) {
		/* Skip MSI-X pages at pos. */
		do {
			moved = false;
			for (i = 0; i < 2; i++) {
				if (start[i] <= pos && pos < end[i]) {
					pos = end[i];
					moved = true;
				}
			}
		} while (moved);
		if (pos >= bar_len)
			break;
		stop = bar_len;
		for (i = 0; i < 2; i++)
			if (start[i] > pos && start[i] < stop)
				stop = start[i];
		areas[n].offset = pos;
		areas[n].size = stop - pos;
		n++;
		pos = stop;
	}
	return n;
}

static int emuhba_mmap_allowed(struct emuhba_adapter *a, u64 start, u64 len)
{
	struct vfio_region_sparse_mmap_area areas[3];
	u64 bar_len = pci_resource_len(a->core.pdev, VFIO_PCI_BAR0_REGION_INDEX);
	unsigned int i, n = emuhba_mmap_areas(a, bar_len, areas);

	for (i = 0; i < n; i++)
		if (start >= areas[i].offset &&
		    start + len <= areas[i].offset + areas[i].size)
			return 0;
	return -EINVAL;
}

long emuhba_get_region_info(struct emuhba_adapter *a, void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_region_info, offset);
	struct vfio_pci_core_device *core = &a->core;
	struct vfio_info_cap caps = { .buf = NULL, .size = 0 };
	struct vfio_region_info_cap_sparse_mmap *sparse;
	struct vfio_region_info info;
	u64 bar_len;
	size_t size;
	int ret;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	bar_len = pci_resource_len(core->pdev, VFIO_PCI_BAR0_REGION_INDEX);
	if (info.index != VFIO_PCI_BAR0_REGION_INDEX || !bar_len ||
	    !core->bar_mmap_supported[VFIO_PCI_BAR0_REGION_INDEX] ||
	    bar_len <= EMUHBA_REGS_SIZE)
		return vfio_pci_core_ioctl(&core->vdev,
					   VFIO_DEVICE_GET_REGION_INFO,
					   (unsigned long)arg);

	size = struct_size(sparse, areas, 3);
	sparse = kzalloc(size, GFP_KERNEL);
	if (!sparse)
		return -ENOMEM;
	sparse->header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
	sparse->header.version = 1;
	sparse->nr_areas = emuhba_mmap_areas(a, bar_len, sparse->areas);
	size = struct_size(sparse, areas, sparse->nr_areas);
	ret = vfio_info_add_capability(&caps, &sparse->header, size);
	kfree(sparse);
	if (ret)
		return ret;

	info.offset = VFIO_PCI_INDEX_TO_OFFSET(info.index);
	info.size = bar_len;
	info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
		     VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
	if (info.argsz < sizeof(info) + caps.size) {
		info.argsz = sizeof(info) + caps.size;
		info.cap_offset = 0;
	} else {
		vfio_info_cap_shift(&caps, sizeof(info));
		if (copy_to_user(arg + sizeof(info), caps.buf, caps.size)) {
			ret = -EFAULT;
			goto out_free;
		}
		info.cap_offset = sizeof(info);
	}
	ret = copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
out_free:
	kfree(caps.buf);
	return ret;
}

int emuhba_mmap(struct vfio_device *vdev, struct vm_area_struct *vma)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);
	unsigned int index;
	u64 start;

	index = vma->vm_pgoff >> (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT);
	start = ((u64)vma->vm_pgoff << PAGE_SHIFT) & VFIO_PCI_OFFSET_MASK;
	if (index == VFIO_PCI_BAR0_REGION_INDEX &&
	    emuhba_mmap_allowed(a, start, vma->vm_end - vma->vm_start))
		return -EINVAL;
	return emuhba_doorbell_mmap(a, vma);
}

/*
 * Registers accesses are 4 or 8 bytes at a naturally aligned offset (NVMe
 * 3.1.2); anything else is refused rather than half-emulated.
 */
static int emuhba_reg_access_ok(loff_t pos, size_t count)
{
	u64 off = pos & VFIO_PCI_OFFSET_MASK;

	if (count != 4 && count != 8)
		return -EINVAL;
	if (off & (count - 1) || off + count > EMUHBA_REGS_SIZE)
		return -EINVAL;
	return 0;
}

/*
 * Take model_lock for a register access, once no switch holds the
 * registers; -EINTR (without the lock) if the caller was killed meanwhile.
 */
static int emuhba_regs_lock(struct emuhba_adapter *a)
{
	mutex_lock(&a->model_lock);
	while (a->regs_held) {
		mutex_unlock(&a->model_lock);
		if (wait_event_killable(a->regs_wq, !READ_ONCE(a->regs_held)))
			return -EINTR;
		mutex_lock(&a->model_lock);
	}
	return 0;
}

ssize_t emuhba_read(struct vfio_device *vdev, char __user *buf, size_t count,
		    loff_t *ppos)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);
	u64 off = *ppos & VFIO_PCI_OFFSET_MASK;
	u64 val;
	int ret;

	if (!emuhba_is_regs(a, *ppos, count))
		return vfio_pci_core_read(vdev, buf, count, ppos);

	emuhba_reset_flush(a);
	atomic64_inc(&a->reg_traps);
	ret = emuhba_reg_access_ok(*ppos, count);
	if (ret)
		return ret;

	if (emuhba_regs_lock(a))
		return -EINTR;
	/*
	 * CAP and VS belong to the identity: a guest that came from another
	 * model keeps its own (the switch checked that this VF honours them).
	 */
	if (emuhba_model_owns_regs(a) ||
	    (a->id_foreign && off + count <= EMU_REG_VS + 4)) {
		val = emu_nvme_reg_read(a->model, off, count);
		mutex_unlock(&a->model_lock);
		if (copy_to_user(buf, &val, count))
			return -EFAULT;
		*ppos += count;
		return count;
	}
	mutex_unlock(&a->model_lock);
	return vfio_pci_core_read(vdev, buf, count, ppos);
}

/*
 * The value the model observes is the one the VF gets: the user's buffer
 * is read once (another thread of the user may change it meanwhile).
 */
static int emuhba_reg_write_vf(struct emuhba_adapter *a, u64 off, u64 val,
			       size_t count)
{
	void __iomem *io;
	int ret;

	ret = vfio_pci_core_setup_barmap(&a->core, VFIO_PCI_BAR0_REGION_INDEX);
	if (ret)
		return ret;
	io = a->core.barmap[VFIO_PCI_BAR0_REGION_INDEX] + off;
	if (count == 4)
		return vfio_pci_core_iowrite32(&a->core, true, val, io);
	ret = vfio_pci_core_iowrite32(&a->core, true, lower_32_bits(val), io);
	if (!ret)
		ret = vfio_pci_core_iowrite32(&a->core, true,
					      upper_32_bits(val), io + 4);
	return ret;
}

ssize_t emuhba_write(struct vfio_device *vdev, const char __user *buf,
		     size_t count, loff_t *ppos)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);
	u64 off = *ppos & VFIO_PCI_OFFSET_MASK;
	u64 val = 0;
	ssize_t ret;

	if (emuhba_is_doorbells(a, *ppos)) {
		u32 db;

		/* Doorbells are 32-bit registers (NVMe 3.1.2). */
		if (count != 4 || (off & 3))
			return -EINVAL;
		if (copy_from_user(&db, buf, 4))
			return -EFAULT;
		if (emuhba_db_region_write(a, off, db)) {
			*ppos += count;
			return count;
		}
	}
	if (!emuhba_is_regs(a, *ppos, count))
		return vfio_pci_core_write(vdev, buf, count, ppos);

	emuhba_reset_flush(a);
	atomic64_inc(&a->reg_traps);
	ret = emuhba_reg_access_ok(*ppos, count);
	if (ret)
		return ret;
	if (copy_from_user(&val, buf, count))
		return -EFAULT;

	if (emuhba_regs_lock(a))
		return -EINTR;
	if (emuhba_model_owns_regs(a)) {
		/*
		 * Doorbells the guest stored in the driver pages before this
		 * write reach the model before it: left for the emulation
		 * thread, a tail written before a controller reset was taken
		 * as the new admin queue's after the re-enable.
		 */
		emuhba_db_collect(a);
		emu_nvme_reg_write(a->model, off, val, count);
		mutex_unlock(&a->model_lock);
		emuhba_emul_kick(a);
		*ppos += count;
		return count;
	}

	/*
	 * Direct mode: the VF executes the write; the model observes it under
	 * the same lock, so that a switch sees registers and observations
	 * that agree.
	 */
	ret = emuhba_reg_write_vf(a, off, val, count);
	if (!ret)
		emu_nvme_observe_reg_write(a->model, off, val, count);
	mutex_unlock(&a->model_lock);
	if (ret)
		return ret;
	emuhba_observe_reg_done(a, off, val, count);
	*ppos += count;
	return count;
}
