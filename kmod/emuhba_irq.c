// SPDX-License-Identifier: GPL-2.0-only
/*
 * MSI-X as the VFIO user set it up. vfio_pci_core keeps its triggers to
 * itself, so SET_IRQS is looked at on its way to the core: the model raises
 * the guest's interrupts through the same eventfds while it owns the device,
 * and the admin observer hooks the admin queue's vector.
 */
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>

#include "emuhba.h"

static void emuhba_vector_put(struct emuhba_vector *v)
{
	if (v->trigger)
		eventfd_ctx_put(v->trigger);
	v->trigger = NULL;
}

void emuhba_irq_release_all(struct emuhba_adapter *a)
{
	u16 i;

	mutex_lock(&a->irq_lock);
	for (i = 0; i < a->nr_vectors; i++)
		emuhba_vector_put(&a->vectors[i]);
	mutex_unlock(&a->irq_lock);
	emuhba_observer_hook(a, NULL);
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
			      struct eventfd_ctx **ctx, struct file **admin)
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
	if (admin && fds[0] >= 0)
		*admin = fget(fds[0]);
	return 0;
}

long emuhba_set_irqs(struct emuhba_adapter *a, void __user *arg)
{
	size_t minsz = offsetofend(struct vfio_irq_set, count), data_size;
	struct vfio_device *vdev = &a->core.vdev;
	struct eventfd_ctx **ctx = NULL;
	struct file *admin = NULL;
	struct vfio_irq_set hdr;
	s32 *fds = NULL;
	u32 i;
	long ret;

	if (copy_from_user(&hdr, arg, minsz))
		return -EFAULT;
	if (hdr.index != VFIO_PCI_MSIX_IRQ_INDEX ||
	    (hdr.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) !=
	    VFIO_IRQ_SET_ACTION_TRIGGER)
		return vfio_pci_core_ioctl(vdev, VFIO_DEVICE_SET_IRQS,
					   (unsigned long)arg);

	ret = vfio_set_irqs_validate_and_prepare(&hdr, a->nr_vectors,
						 VFIO_PCI_NUM_IRQS, &data_size);
	if (ret)
		return ret;

	if (hdr.flags & VFIO_IRQ_SET_DATA_EVENTFD && hdr.count) {
		fds = memdup_user(arg + minsz, data_size);
		if (IS_ERR(fds))
			return PTR_ERR(fds);
		ctx = kcalloc(hdr.count, sizeof(*ctx), GFP_KERNEL);
		if (!ctx) {
			ret = -ENOMEM;
			goto out_free;
		}
		ret = emuhba_irq_get_fds(fds, hdr.count, ctx,
					 hdr.start == 0 ? &admin : NULL);
		if (ret)
			goto out_free;
	}

	mutex_lock(&a->irq_lock);
	ret = vfio_pci_core_ioctl(vdev, VFIO_DEVICE_SET_IRQS,
				  (unsigned long)arg);
	if (ret) {
		mutex_unlock(&a->irq_lock);
		goto out_put;
	}
	if (hdr.flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		for (i = 0; i < hdr.count; i++) {
			emuhba_vector_put(&a->vectors[hdr.start + i]);
			a->vectors[hdr.start + i].trigger = ctx[i];
			ctx[i] = NULL;
		}
	} else if (hdr.flags & VFIO_IRQ_SET_DATA_NONE && !hdr.count) {
		/* MSI-X disabled as a whole. */
		for (i = 0; i < a->nr_vectors; i++)
			emuhba_vector_put(&a->vectors[i]);
	}
	mutex_unlock(&a->irq_lock);

	if (hdr.flags & VFIO_IRQ_SET_DATA_EVENTFD && hdr.start == 0 && hdr.count)
		emuhba_observer_hook(a, admin);
	else if (hdr.flags & VFIO_IRQ_SET_DATA_NONE && !hdr.count)
		emuhba_observer_hook(a, NULL);

out_put:
	if (ctx)
		for (i = 0; i < hdr.count; i++)
			if (ctx[i])
				eventfd_ctx_put(ctx[i]);
	if (admin)
		fput(admin);
out_free:
	kfree(ctx);
	if (!IS_ERR_OR_NULL(fds))
		kfree(fds);
	return ret;
}
