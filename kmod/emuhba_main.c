// SPDX-License-Identifier: GPL-2.0-only
/*
 * emuhba: a vfio-pci variant driver for NVMe SR-IOV virtual functions that
 * keeps the guest on native passthrough and can hand the device over to a
 * software model of the same controller, so that the VM can be migrated.
 *
 * This file is the PCI/VFIO glue and the adapter registry.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/memcontrol.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>
#include <linux/xarray.h>

#include "emuhba.h"
#include "emuhba_image.h"

/* Adapters by id; the xarray's own lock makes lookups safe against removal. */
static DEFINE_XARRAY_ALLOC(emuhba_adapters);

static u16 emuhba_max_qid(struct emuhba_adapter *a)
{
	const struct emu_nvme_identity *id = &emu_nvme_state(a->model)->id;

	return max(id->max_sqs, id->max_cqs);
}

static bool emuhba_adapter_tryget(struct emuhba_adapter *a)
{
	return a && !READ_ONCE(a->removing) &&
	       get_device(&a->core.vdev.device);
}

struct emuhba_adapter *emuhba_adapter_get(u32 id)
{
	struct emuhba_adapter *a;

	xa_lock(&emuhba_adapters);
	a = xa_load(&emuhba_adapters, id);
	if (!emuhba_adapter_tryget(a))
		a = NULL;
	xa_unlock(&emuhba_adapters);
	return a;
}

/* Returns the adapter with the smallest id >= *id and sets *id to it. */
struct emuhba_adapter *emuhba_adapter_get_next(u32 *id)
{
	unsigned long index = *id;
	struct emuhba_adapter *a;

	xa_lock(&emuhba_adapters);
	xa_for_each_start(&emuhba_adapters, index, a, *id) {
		if (emuhba_adapter_tryget(a)) {
			*id = index;
			xa_unlock(&emuhba_adapters);
			return a;
		}
	}
	xa_unlock(&emuhba_adapters);
	return NULL;
}

struct emuhba_adapter *emuhba_adapter_get_by_bdf(const char *bdf)
{
	struct emuhba_adapter *a;
	unsigned long index;

	xa_lock(&emuhba_adapters);
	xa_for_each(&emuhba_adapters, index, a) {
		if (!strcmp(pci_name(a->core.pdev), bdf) &&
		    emuhba_adapter_tryget(a)) {
			xa_unlock(&emuhba_adapters);
			return a;
		}
	}
	xa_unlock(&emuhba_adapters);
	return NULL;
}

void emuhba_adapter_put(struct emuhba_adapter *a)
{
	vfio_put_device(&a->core.vdev);
}

/*
 * Where a switch would take the queue positions from: the guest's shadow
 * doorbells when it configured them (Doorbell Buffer Config), otherwise
 * doorbell writes caught during the switch. It only matters while the
 * guest's controller is enabled; a guest that has not configured shadow
 * doorbells (yet) is reported as trapped. model_lock held.
 */
enum emuhba_position_source
emuhba_position_source_locked(struct emuhba_adapter *a)
{
	lockdep_assert_held(&a->model_lock);
	return emu_nvme_state(a->model)->dbbuf.enabled ?
	       EMUHBA_POS_SHADOW_DOORBELLS : EMUHBA_POS_TRAPPED_DOORBELLS;
}

void emuhba_adapter_snapshot(struct emuhba_adapter *a,
			     struct emuhba_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->id = a->id;
	strscpy(s->bdf, pci_name(a->core.pdev), sizeof(s->bdf));
	s->personality = EMUHBA_PERS_NVME;
	mutex_lock(&a->state_lock);
	s->mode = a->mode;
	s->mig_state = a->mig_state;
	s->open = a->open;
	strscpy(s->backend, a->backend, sizeof(s->backend));
	s->policy = a->policy;
	s->counters = a->counters;
	s->counters.reg_traps = atomic64_read(&a->reg_traps);
	/* These two move with the model, under its lock. */
	mutex_lock(&a->model_lock);
	s->counters.admin_observed = a->counters.admin_observed;
	s->counters.emulated_cmds = a->counters.emulated_cmds;
	s->counters.identify_answered = a->counters.identify_answered;
	s->guest_identity = a->id_foreign;
	s->position_source = emuhba_position_source_locked(a);
	mutex_unlock(&a->model_lock);
	s->last_switch = a->last_switch;
	mutex_unlock(&a->state_lock);
}

int emuhba_adapter_set_backend(struct emuhba_adapter *a, const char *path,
			       struct netlink_ext_ack *extack)
{
	if (strcmp(path, "auto") && path[0] != '/') {
		NL_SET_ERR_MSG(extack, "backend must be an absolute path or \"auto\"");
		return -EINVAL;
	}
	if (strlen(path) >= sizeof(a->backend)) {
		NL_SET_ERR_MSG(extack, "backend path too long");
		return -ENAMETOOLONG;
	}
	/*
	 * Any mode: a model already running keeps the device it opened until
	 * it stops, and the path is opened at the next switch or resume. A
	 * migration that moved its storage through a temporary device must be
	 * able to point the adapter back at the namespace before the VMM
	 * closes it, or the next user would open the stale path.
	 */
	mutex_lock(&a->state_lock);
	strscpy(a->backend, path, sizeof(a->backend));
	mutex_unlock(&a->state_lock);
	return 0;
}

int emuhba_adapter_set_policy(struct emuhba_adapter *a,
			      const struct emuhba_policy *p,
			      struct netlink_ext_ack *extack)
{
	if (p->switch_timeout_ms < EMUHBA_SWITCH_TIMEOUT_MIN_MS ||
	    p->switch_timeout_ms > EMUHBA_SWITCH_TIMEOUT_MAX_MS) {
		NL_SET_ERR_MSG(extack, "switch timeout out of range");
		return -ERANGE;
	}
	if (p->idle_after_ms && p->idle_after_ms >= p->switch_timeout_ms) {
		NL_SET_ERR_MSG(extack,
			       "idle-after must be below the switch timeout");
		return -ERANGE;
	}
	mutex_lock(&a->state_lock);
	a->policy = *p;
	mutex_unlock(&a->state_lock);
	return 0;
}

static void emuhba_reset_work(struct work_struct *work);

static const struct vfio_migration_ops emuhba_mig_ops = {
	.migration_set_state = emuhba_migration_set_state,
	.migration_get_state = emuhba_migration_get_state,
	.migration_get_data_size = emuhba_migration_get_data_size,
};

static int emuhba_init_dev(struct vfio_device *vdev)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);
	int ret;

	ret = vfio_pci_core_init_dev(vdev);
	if (ret)
		return ret;

	mutex_init(&a->state_lock);
	a->mode = EMUHBA_MODE_DIRECT;
	a->mig_state = VFIO_DEVICE_STATE_RUNNING;
	strscpy(a->backend, "auto", sizeof(a->backend));
	a->policy.auto_switch = true;
	a->policy.switch_timeout_ms = EMUHBA_SWITCH_TIMEOUT_DEFAULT_MS;

	vdev->migration_flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
				VFIO_MIGRATION_PRE_COPY;
	vdev->mig_ops = &emuhba_mig_ops;
	/*
	 * Without IOMMUFD_DRIVER the iova_bitmap helpers are stubs and the
	 * VFIO core fails every DMA logging report: advertising logging would
	 * make QEMU choose it and fail at the first sync. The type1
	 * container's dirty tracking is used instead.
	 */
	if (IS_ENABLED(CONFIG_IOMMUFD_DRIVER))
		vdev->log_ops = &emuhba_log_ops;

	mutex_init(&a->model_lock);
	mutex_init(&a->irq_lock);
	atomic_set(&a->pinning, 0);
	atomic_set(&a->reset_pending, 0);
	INIT_WORK(&a->reset_work, emuhba_reset_work);
	atomic_long_set(&a->bounce_bytes, 0);
	atomic64_set(&a->reg_traps, 0);
	init_llist_head(&a->backend_done);
	atomic_set(&a->backend_inflight, 0);
	emuhba_emul_init(a);
	emuhba_observer_init(a);

	a->model = kvzalloc(emu_nvme_ctrl_size(), GFP_KERNEL);
	if (!a->model)
		goto out_nomem;
	emu_nvme_init(a->model, &emuhba_host_ops, a);

	ret = pci_msix_vec_count(a->core.pdev);
	a->nr_vectors = ret > 0 ? min(ret, EMUHBA_MAX_VECTORS) : 0;
	a->vectors = kcalloc(max_t(u16, a->nr_vectors, 1),
			     sizeof(*a->vectors), GFP_KERNEL);
	if (!a->vectors)
		goto out_nomem;
	return 0;

out_nomem:
	kvfree(a->model);
	a->model = NULL;
	vfio_pci_core_release_dev(vdev);
	return -ENOMEM;
}

static void emuhba_release_dev(struct vfio_device *vdev)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);

	cancel_work_sync(&a->reset_work);
	emuhba_emul_destroy(a);
	kfree(a->vectors);
	kvfree(a->own_id);
	kvfree(a->model);
	mutex_destroy(&a->irq_lock);
	mutex_destroy(&a->model_lock);
	mutex_destroy(&a->state_lock);
	vfio_pci_core_release_dev(vdev);
}

static int emuhba_open_device(struct vfio_device *vdev)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);
	int ret;

	ret = vfio_pci_core_enable(&a->core);
	if (ret)
		return ret;

	mutex_lock(&a->state_lock);
	a->memcg = get_mem_cgroup_from_mm(current->mm);
	a->mig_state = VFIO_DEVICE_STATE_RUNNING;
	a->mode = EMUHBA_MODE_DIRECT;
	a->open = true;
	a->dirty_scope_exact = false;
	mutex_unlock(&a->state_lock);

	vfio_pci_core_finish_enable(&a->core);
	return 0;
}

/*
 * What ends a VFIO session or resets the VF: no migration session, the
 * model no longer the guest's controller (the VF itself is reset by the
 * VFIO core). own_id: the VF answers with its own identity again (a new
 * VFIO user, or the VMM's reset); a reset the guest made keeps the
 * guest's identity, as a controller reset does.
 */
static void emuhba_device_reset_locked(struct emuhba_adapter *a, bool own_id)
{
	lockdep_assert_held(&a->state_lock);
	emuhba_mig_reset(a);
	emuhba_switch_teardown(a);
	emuhba_observer_reset(a, own_id);
}

static void emuhba_device_reset(struct emuhba_adapter *a)
{
	mutex_lock(&a->state_lock);
	emuhba_device_reset_locked(a, true);
	mutex_unlock(&a->state_lock);
}

/*
 * A reset that happened where our locks could not be taken (reset_done).
 * Under state_lock, so that of two callers one processes it and a reset
 * arriving meanwhile stays pending for the next.
 */
void emuhba_reset_flush(struct emuhba_adapter *a)
{
	int seen;

	if (!atomic_read(&a->reset_pending))
		return;
	mutex_lock(&a->state_lock);
	seen = atomic_read(&a->reset_pending);
	if (seen) {
		emuhba_device_reset_locked(a, false);
		atomic_sub(seen, &a->reset_pending);
	}
	mutex_unlock(&a->state_lock);
}

static void emuhba_reset_work(struct work_struct *work)
{
	emuhba_reset_flush(container_of(work, struct emuhba_adapter,
					reset_work));
}

static void emuhba_close_device(struct vfio_device *vdev)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);

	/* Waits for a switch in progress; none can start after this. */
	mutex_lock(&a->state_lock);
	WRITE_ONCE(a->open, false);
	mutex_unlock(&a->state_lock);
	cancel_work_sync(&a->reset_work);
	atomic_set(&a->reset_pending, 0);
	emuhba_device_reset(a);
	emuhba_irq_release_all(a);
	mem_cgroup_put(a->memcg);
	a->memcg = NULL;
	vfio_pci_core_close_device(vdev);
}

static long emuhba_ioctl(struct vfio_device *vdev, unsigned int cmd,
			 unsigned long arg)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);
	void __user *uarg = (void __user *)arg;

	emuhba_reset_flush(a);
	switch (cmd) {
	case VFIO_DEVICE_GET_REGION_INFO:
		return emuhba_get_region_info(a, uarg);
	case VFIO_DEVICE_SET_IRQS:
		return emuhba_set_irqs(a, uarg);
	case VFIO_DEVICE_IOEVENTFD:
		/* Kernel-side writes would bypass the registers page trap. */
		return -ENOTTY;
	case VFIO_DEVICE_RESET:
		/* Also the uAPI's way out of ERROR and RESUMING. */
		emuhba_device_reset(a);
		fallthrough;
	default:
		return vfio_pci_core_ioctl(vdev, cmd, arg);
	}
}

/*
 * The driver pins a page only for an instant (emuhba_dirty_scope_exact());
 * an unmap that finds the pin gives the unpin time, so that type1's next
 * retry finds the range free. The wait is bounded: type1 calls this with
 * its device_list_lock held, and another unmap may hold the iommu lock the
 * unpin needs while it waits for device_list_lock. The op also lets type1
 * accept our pins at all.
 */
static void emuhba_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);
	unsigned int i;

	for (i = 0; i < 100 && atomic_read_acquire(&a->pinning); i++)
		usleep_range(50, 100);
}

/*
 * Through an iommufd the device has no container: vfio_dma_rw() cannot
 * reach the guest's memory, so the admin queue could never be observed
 * nor the device emulated. Say so rather than bind and never migrate.
 */
static int emuhba_bind_iommufd(struct vfio_device *vdev,
			       struct iommufd_ctx *ictx, u32 *out_device_id)
{
	dev_err(vdev->dev, "emuhba needs the VFIO group/container interface; the iommufd interface cannot reach guest memory for the model\n");
	return -EOPNOTSUPP;
}

static const struct vfio_device_ops emuhba_vfio_ops = {
	.name = "emuhba-vfio-pci",
	.init = emuhba_init_dev,
	.release = emuhba_release_dev,
	.open_device = emuhba_open_device,
	.close_device = emuhba_close_device,
	.ioctl = emuhba_ioctl,
	.device_feature = vfio_pci_core_ioctl_feature,
	.read = emuhba_read,
	.write = emuhba_write,
	.mmap = emuhba_mmap,
	.request = vfio_pci_core_request,
	.match = vfio_pci_core_match,
	.bind_iommufd = emuhba_bind_iommufd,
	.unbind_iommufd = vfio_iommufd_physical_unbind,
	.attach_ioas = vfio_iommufd_physical_attach_ioas,
	.detach_ioas = vfio_iommufd_physical_detach_ioas,
	.dma_unmap = emuhba_dma_unmap,
};

/*
 * A function the model cannot serve: a physical function, or another
 * interface of the NVMe class. libvirt picks the variant driver from
 * modules.alias, which cannot tell a VF from its PF, so refusing would
 * fail that guest's start: such a function is passed through as vfio-pci
 * would, without migration. Its drvdata is a bare core device.
 */
static int emuhba_plain_open_device(struct vfio_device *vdev)
{
	struct vfio_pci_core_device *core =
		container_of(vdev, struct vfio_pci_core_device, vdev);
	int ret;

	ret = vfio_pci_core_enable(core);
	if (ret)
		return ret;
	vfio_pci_core_finish_enable(core);
	return 0;
}

static const struct vfio_device_ops emuhba_plain_ops = {
	.name = "emuhba-vfio-pci-plain",
	.init = vfio_pci_core_init_dev,
	.release = vfio_pci_core_release_dev,
	.open_device = emuhba_plain_open_device,
	.close_device = vfio_pci_core_close_device,
	.ioctl = vfio_pci_core_ioctl,
	.device_feature = vfio_pci_core_ioctl_feature,
	.read = vfio_pci_core_read,
	.write = vfio_pci_core_write,
	.mmap = vfio_pci_core_mmap,
	.request = vfio_pci_core_request,
	.match = vfio_pci_core_match,
	.bind_iommufd = vfio_iommufd_physical_bind,
	.unbind_iommufd = vfio_iommufd_physical_unbind,
	.attach_ioas = vfio_iommufd_physical_attach_ioas,
	.detach_ioas = vfio_iommufd_physical_detach_ioas,
};

bool emuhba_is_plain(struct device *dev)
{
	struct vfio_pci_core_device *core = dev_get_drvdata(dev);

	return core->vdev.ops == &emuhba_plain_ops;
}

static int emuhba_probe_plain(struct pci_dev *pdev)
{
	struct vfio_pci_core_device *core;
	int ret;

	core = vfio_alloc_device(vfio_pci_core_device, vdev, &pdev->dev,
				 &emuhba_plain_ops);
	if (IS_ERR(core))
		return PTR_ERR(core);
	dev_set_drvdata(&pdev->dev, core);
	ret = vfio_pci_core_register_device(core);
	if (ret)
		goto out_put;
	pci_info(pdev, "%s: plain VFIO passthrough, no live migration\n",
		 pdev->is_virtfn ? "not an NVM Express I/O controller" :
		 "not an SR-IOV virtual function");
	return 0;

out_put:
	vfio_put_device(&core->vdev);
	return ret;
}

static int emuhba_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct emuhba_ident_info *info;
	struct emuhba_adapter *a;
	int ret;

	if (!pdev->is_virtfn || pdev->class != PCI_CLASS_STORAGE_EXPRESS)
		return emuhba_probe_plain(pdev);

	a = vfio_alloc_device(emuhba_adapter, core.vdev, &pdev->dev,
			      &emuhba_vfio_ops);
	if (IS_ERR(a))
		return PTR_ERR(a);

	dev_set_drvdata(&pdev->dev, &a->core);
	ret = emuhba_ident_capture(a);
	if (ret) {
		pci_err(pdev, "cannot read the VF's identity: %pe\n", ERR_PTR(ret));
		goto out_put;
	}
	a->own_id = kvmemdup(&emu_nvme_state(a->model)->id, sizeof(*a->own_id),
			     GFP_KERNEL);
	if (!a->own_id) {
		ret = -ENOMEM;
		goto out_put;
	}
	info = kzalloc(sizeof(*info), GFP_KERNEL);
	if (!info) {
		ret = -ENOMEM;
		goto out_put;
	}
	emuhba_ident_info(a, info);
	if (info->has_nguid)
		memcpy(a->own_nguid, info->nguid, sizeof(a->own_nguid));
	if (info->has_eui64)
		memcpy(a->own_eui64, info->eui64, sizeof(a->own_eui64));
	kfree(info);

	ret = emuhba_db_alloc(a, emuhba_max_qid(a) + 1,
			      NVME_CAP_STRIDE(emu_nvme_state(a->model)->id.cap));
	if (ret) {
		pci_err(pdev, "doorbell shadow pages: %pe\n", ERR_PTR(ret));
		goto out_put;
	}

	ret = xa_alloc(&emuhba_adapters, &a->id, a, xa_limit_31b, GFP_KERNEL);
	if (ret)
		goto out_put;

	ret = vfio_pci_core_register_device(&a->core);
	if (ret)
		goto out_erase;

	emuhba_debugfs_add(a);
	emuhba_genl_notify_adapter(a, true);
	pci_info(pdev, "emuhba adapter %u (direct mode)\n", a->id);
	return 0;

out_erase:
	xa_erase(&emuhba_adapters, a->id);
out_put:
	vfio_put_device(&a->core.vdev);
	pci_err(pdev, "probe failed: %pe\n", ERR_PTR(ret));
	return ret;
}

static void emuhba_remove(struct pci_dev *pdev)
{
	struct vfio_pci_core_device *core = dev_get_drvdata(&pdev->dev);
	struct emuhba_adapter *a;

	if (emuhba_is_plain(&pdev->dev)) {
		vfio_pci_core_unregister_device(core);
		vfio_put_device(&core->vdev);
		return;
	}
	a = emuhba_from_core(core);
	WRITE_ONCE(a->removing, true);
	vfio_pci_core_unregister_device(core);
	emuhba_debugfs_remove(a);
	emuhba_genl_notify_adapter(a, false);
	xa_erase(&emuhba_adapters, a->id);
	vfio_put_device(&core->vdev);
}

/*
 * A reset of the VF that does not come through VFIO_DEVICE_RESET: a guest's
 * FLR through emulated config space, AER recovery, sysfs. The core may hold
 * its memory_lock here, which our locks nest outside of: the reset is
 * processed at the next entry point (or by a work item), and the
 * emulation thread stops touching guest memory at once.
 */
static void emuhba_reset_done(struct pci_dev *pdev)
{
	struct vfio_pci_core_device *core = dev_get_drvdata(&pdev->dev);
	struct emuhba_adapter *a;

	if (emuhba_is_plain(&pdev->dev))
		return;
	a = emuhba_from_core(core);
	/* A reset while no user holds the VF leaves nothing to undo. */
	if (!READ_ONCE(a->open))
		return;
	atomic_inc(&a->reset_pending);
	schedule_work(&a->reset_work);
}

static const struct pci_error_handlers emuhba_err_handlers = {
	.error_detected = vfio_pci_core_aer_err_detected,
	.reset_done = emuhba_reset_done,
};

static const struct pci_device_id emuhba_pci_table[] = {
	{
		/*
		 * Any NVMe-class function, only when chosen by driver_override.
		 * The interface is left out of the match so that the alias
		 * reads "...bc01sc08i*": libvirt matches each alias field
		 * whole or as a lone "*", and prefers this to vfio-pci's
		 * all-wildcard one (the probe serves what it cannot model
		 * as plain passthrough).
		 */
		.vendor = PCI_ANY_ID, .device = PCI_ANY_ID,
		.subvendor = PCI_ANY_ID, .subdevice = PCI_ANY_ID,
		.class = PCI_CLASS_STORAGE_EXPRESS, .class_mask = 0xffff00,
		.override_only = PCI_ID_F_VFIO_DRIVER_OVERRIDE,
	},
	{}
};
MODULE_DEVICE_TABLE(pci, emuhba_pci_table);

static struct pci_driver emuhba_pci_driver = {
	.name = KBUILD_MODNAME,
	.id_table = emuhba_pci_table,
	.probe = emuhba_probe,
	.remove = emuhba_remove,
	.err_handler = &emuhba_err_handlers,
	.driver_managed_dma = true,
	.dev_groups = emuhba_dev_groups,
};

static int __init emuhba_init(void)
{
	int ret;

	ret = emuhba_genl_init();
	if (ret)
		return ret;
	emuhba_debugfs_init();

	ret = pci_register_driver(&emuhba_pci_driver);
	if (ret)
		goto out_genl;
	return 0;

out_genl:
	emuhba_debugfs_exit();
	emuhba_genl_exit();
	return ret;
}

static void __exit emuhba_exit(void)
{
	pci_unregister_driver(&emuhba_pci_driver);
	emuhba_debugfs_exit();
	emuhba_genl_exit();
	WARN_ON(!xa_empty(&emuhba_adapters));
}

module_init(emuhba_init);
module_exit(emuhba_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Live-migratable vfio-pci variant driver for NVMe SR-IOV VFs");
