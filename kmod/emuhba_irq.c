// SPDX-License-Identifier: GPL-2.0-only
/*
 * MSI-X as the VFIO user set it up. vfio_pci_core keeps its triggers to
 * itself, so SET_IRQS is looked at on its way to the core: the model raises
 * the guest's interrupts through the same eventfds while it owns the device.
 *
 * The admin vector (0) never reaches the core: its host interrupt is
 * requested here. The core would register an interrupt bypass producer for
 * it, through which KVM posts the interrupt into the guest without any host
 * handler seeing it, and the admin observer must see every admin completion
 * before the guest does when the guest came with another model's identity
 * (the observer then answers Identify with it and passes the interrupt on).
 */
#include <linux/eventfd.h>
#include <linux/interrupt.h>
#include <linux/mman.h>
#include <linux/msi.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>
#include <linux/xarray.h>

#include "emuhba.h"

static void emuhba_vector_put(struct emuhba_vector *v)
{
	if (v->trigger)
		eventfd_ctx_put(v->trigger);
	v->trigger = NULL;
}

/*
 * MSI-X table writes need memory decoding, which the user may have turned
 * off; the core does the same around its own request_irq().
 */
static u16 emuhba_mem_lock_enable(struct vfio_pci_core_device *core)
{
	u16 cmd;

	down_write(&core->memory_lock);
	pci_read_config_word(core->pdev, PCI_COMMAND, &cmd);
	if (!(cmd & PCI_COMMAND_MEMORY))
		pci_write_config_word(core->pdev, PCI_COMMAND,
				      cmd | PCI_COMMAND_MEMORY);
	return cmd;
}

static void emuhba_mem_unlock_restore(struct vfio_pci_core_device *core,
				      u16 cmd)
{
	pci_write_config_word(core->pdev, PCI_COMMAND, cmd);
	up_write(&core->memory_lock);
}

static irqreturn_t emuhba_admin_irq(int irq, void *arg)
{
	struct emuhba_adapter *a = arg;

	atomic_inc(&a->obs.irqs);
	if (READ_ONCE(a->id_foreign))
		atomic_set(&a->obs.held, 1);
	else
		eventfd_signal(a->admin_trigger);
	queue_work(system_highpri_wq, &a->obs.work);
	return IRQ_HANDLED;
}

/* An admin interrupt the observer held, once it has seen its completions. */
void emuhba_admin_irq_forward(struct emuhba_adapter *a)
{
	mutex_lock(&a->irq_lock);
	if (a->admin_trigger)
		eventfd_signal(a->admin_trigger);
	mutex_unlock(&a->irq_lock);
}

/* irq_lock held, MSI-X enabled by the core, admin_trigger set. */
static int emuhba_admin_irq_request(struct emuhba_adapter *a)
{
	struct pci_dev *pdev = a->core.pdev;
	struct msi_msg msg;
	int irq, ret;
	u16 cmd;

	lockdep_assert_held(&a->irq_lock);

	irq = pci_irq_vector(pdev, 0);
	if (irq <= 0)
		return irq ? irq : -EINVAL;
	scnprintf(a->admin_irq_name, sizeof(a->admin_irq_name),
		  "emuhba-admin(%s)", pci_name(pdev));
	cmd = emuhba_mem_lock_enable(&a->core);
	/* As the core does: a reset behind its back may have lost it. */
	get_cached_msi_msg(irq, &msg);
	pci_write_msi_msg(irq, &msg);
	ret = request_irq(irq, emuhba_admin_irq, 0, a->admin_irq_name, a);
	emuhba_mem_unlock_restore(&a->core, cmd);
	if (ret)
		return ret;
	a->admin_irq = irq;
	return 0;
}

/*
 * irq_lock held. While the interrupt is freed the vector is masked and a
 * message the VF sends waits in the PBA. An interrupt the observer holds
 * stays held (the observer passes it on to the trigger of the moment),
 * unless MSI-X goes away for good.
 */
static void emuhba_admin_irq_free(struct emuhba_adapter *a, bool teardown)
{
	u16 cmd;

	lockdep_assert_held(&a->irq_lock);
	if (a->admin_irq) {
		cmd = emuhba_mem_lock_enable(&a->core);
		free_irq(a->admin_irq, a);
		emuhba_mem_unlock_restore(&a->core, cmd);
		a->admin_irq = 0;
	}
	if (teardown && atomic_xchg(&a->obs.held, 0) && a->admin_trigger)
		eventfd_signal(a->admin_trigger);
	a->admin_trigger = NULL;
}

/*
 * irq_lock held. Vector 0's interrupt is this driver's whenever MSI-X is on,
 * the core holds no context for vector 0 and the user gave it an eventfd.
 * Decided from the core's own state, whatever request it executed.
 */
static int emuhba_admin_irq_resync(struct emuhba_adapter *a)
{
	struct vfio_pci_core_device *core = &a->core;
	int ret;

	lockdep_assert_held(&a->irq_lock);

	if (core->irq_type != VFIO_PCI_MSIX_IRQ_INDEX ||
	    xa_load(&core->ctx, 0) || !a->nr_vectors || !a->vectors[0].trigger)
		return 0;
	a->admin_trigger = a->vectors[0].trigger;
	ret = emuhba_admin_irq_request(a);
	if (ret) {
		a->admin_trigger = NULL;
		pci_err(core->pdev, "cannot request the admin vector: %pe\n",
			ERR_PTR(ret));
	}
	return ret;
}

void emuhba_irq_release_all(struct emuhba_adapter *a)
{
	u16 i;

	mutex_lock(&a->irq_lock);
	emuhba_admin_irq_free(a, true);
	for (i = 0; i < a->nr_vectors; i++)
		emuhba_vector_put(&a->vectors[i]);
	mutex_unlock(&a->irq_lock);
	cancel_work_sync(&a->obs.work);
}

void emuhba_irq_signal(struct emuhba_adapter *a, u16 vector)
{
	mutex_lock(&a->irq_lock);
	if (vector < a->nr_vectors && a->vectors[vector].trigger)
		eventfd_signal(a->vectors[vector].trigger);
	mutex_unlock(&a->irq_lock);
}

/*
 * Take references on the eventfds of a DATA_EVENTFD request before the core
 * sees it, so that the table only changes when the core accepted it.
 */
static int emuhba_irq_get_fds(const s32 *fds, u32 count,
			      struct eventfd_ctx **ctx)
{
	u32 i;

	for (i = 0; i < count; i++) {
		if (fds[i] < 0)
			continue;
		ctx[i] = eventfd_ctx_fdget(fds[i]);
		if (IS_ERR(ctx[i])) {
			int ret = PTR_ERR(ctx[i]);

			ctx[i] = NULL;
			while (i--)
				if (ctx[i])
					eventfd_ctx_put(ctx[i]);
			return ret;
		}
	}
	return 0;
}

/*
 * The core reads a request from user memory only. The same request with
 * vector 0 left alone is given to it from a scratch mapping of the caller,
 * made before irq_lock is taken (mmap_lock may wait behind a DMA mapping).
 * Returns the mapping's address or an errno as IS_ERR_VALUE.
 */
static unsigned long emuhba_scratch_request(const struct vfio_irq_set *hdr,
					    size_t minsz, const s32 *fds,
					    size_t data_size)
{
	struct vfio_irq_set h = *hdr;
	const s32 none = -1;
	unsigned long uaddr;
	void __user *u;

	h.argsz = minsz + data_size;
	uaddr = vm_mmap(NULL, 0, PAGE_ALIGN(h.argsz), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, 0);
	if (IS_ERR_VALUE(uaddr))
		return uaddr;
	u = (void __user *)uaddr;
	if (copy_to_user(u, &h, minsz) ||
	    copy_to_user(u + minsz, fds, data_size) ||
	    copy_to_user(u + minsz, &none, sizeof(none))) {
		vm_munmap(uaddr, PAGE_ALIGN(h.argsz));
		return (unsigned long)-EFAULT;
	}
	return uaddr;
}

long emuhba_set_irqs(struct emuhba_adapter *a, void __user *arg)
{
	size_t minsz = offsetofend(struct vfio_irq_set, count), data_size = 0;
	struct vfio_device *vdev = &a->core.vdev;
	struct eventfd_ctx **ctx = NULL;
	bool msix, admin = false, off = false;
	unsigned long scratch = 0;
	struct vfio_irq_set hdr;
	u8 *data = NULL;
	long ret, err;
	u32 i;

	if (copy_from_user(&hdr, arg, minsz))
		return -EFAULT;
	msix = hdr.index == VFIO_PCI_MSIX_IRQ_INDEX &&
	       (hdr.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) ==
	       VFIO_IRQ_SET_ACTION_TRIGGER;
	if (msix) {
		ret = vfio_set_irqs_validate_and_prepare(&hdr, a->nr_vectors,
							 VFIO_PCI_NUM_IRQS,
							 &data_size);
		if (ret)
			return ret;
		admin = hdr.count && hdr.start == 0;
		off = hdr.flags & VFIO_IRQ_SET_DATA_NONE && !hdr.count;
	}
	if (data_size) {
		data = memdup_user(arg + minsz, data_size);
		if (IS_ERR(data))
			return PTR_ERR(data);
	}
	if (msix && hdr.flags & VFIO_IRQ_SET_DATA_EVENTFD && hdr.count) {
		ctx = kcalloc(hdr.count, sizeof(*ctx), GFP_KERNEL);
		if (!ctx) {
			ret = -ENOMEM;
			goto out_free;
		}
		ret = emuhba_irq_get_fds((s32 *)data, hdr.count, ctx);
		if (ret)
			goto out_free;
		if (admin) {
			scratch = emuhba_scratch_request(&hdr, minsz, (s32 *)data,
							 data_size);
			if (IS_ERR_VALUE(scratch)) {
				ret = (long)scratch;
				scratch = 0;
				goto out_put;
			}
		}
	}

	/*
	 * The core reads the request from user memory again, where another
	 * thread of the user may have changed it since: vector 0's interrupt
	 * is let go around every call and taken back from the core's state.
	 */
	mutex_lock(&a->irq_lock);
	emuhba_admin_irq_free(a, off);
	ret = vfio_pci_core_ioctl(vdev, VFIO_DEVICE_SET_IRQS,
				  scratch ? scratch : (unsigned long)arg);
	if (!ret && ctx) {
		for (i = 0; i < hdr.count; i++) {
			emuhba_vector_put(&a->vectors[hdr.start + i]);
			a->vectors[hdr.start + i].trigger = ctx[i];
			ctx[i] = NULL;
		}
	} else if (!ret && off) {
		for (i = 0; i < a->nr_vectors; i++)
			emuhba_vector_put(&a->vectors[i]);
	}
	err = emuhba_admin_irq_resync(a);
	if (err && !ret)
		ret = err;
	/* A loopback trigger of vector 0, which the core does not hold. */
	if (!ret && msix && admin && !ctx && a->admin_trigger &&
	    (hdr.flags & VFIO_IRQ_SET_DATA_NONE || (data && data[0])))
		eventfd_signal(a->admin_trigger);
	mutex_unlock(&a->irq_lock);

	if (scratch)
		vm_munmap(scratch, PAGE_ALIGN(minsz + data_size));
out_put:
	if (ctx)
		for (i = 0; i < hdr.count; i++)
			if (ctx[i])
				eventfd_ctx_put(ctx[i]);
out_free:
	kfree(ctx);
	if (!IS_ERR(data))
		kfree(data);
	return ret;
}
