// SPDX-License-Identifier: GPL-2.0-only
/*
 * Read-only views for admins and tests: sysfs attributes under the VF
 * (/sys/bus/pci/devices/BDF/emuhba/) and, in debugfs, the device state the
 * model holds (/sys/kernel/debug/emuhba/BDF/state).
 */
#include <linux/debugfs.h>
#include <linux/pci.h>
#include <linux/seq_file.h>
#include <linux/sysfs.h>

#include "emuhba.h"

static struct dentry *emuhba_debugfs_root;

static struct emuhba_adapter *dev_to_adapter(struct device *dev)
{
	struct vfio_pci_core_device *core = dev_get_drvdata(dev);

	return emuhba_from_core(core);
}

static const char *const emuhba_mode_names[] = {
	[EMUHBA_MODE_DIRECT] = "direct",
	[EMUHBA_MODE_EMULATED] = "emulated",
	[EMUHBA_MODE_SWITCHING] = "switching",
};

static ssize_t mode_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	struct emuhba_adapter *a = dev_to_adapter(dev);
	u32 mode;

	mutex_lock(&a->state_lock);
	mode = a->mode;
	mutex_unlock(&a->state_lock);
	if (mode >= ARRAY_SIZE(emuhba_mode_names) || !emuhba_mode_names[mode])
		return sysfs_emit(buf, "unknown\n");
	return sysfs_emit(buf, "%s\n", emuhba_mode_names[mode]);
}
static DEVICE_ATTR_RO(mode);

static ssize_t adapter_id_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", dev_to_adapter(dev)->id);
}
static DEVICE_ATTR_RO(adapter_id);

static ssize_t reg_traps_show(struct device *dev, struct device_attribute *attr,
			      char *buf)
{
	return sysfs_emit(buf, "%lld\n",
			  atomic64_read(&dev_to_adapter(dev)->reg_traps));
}
static DEVICE_ATTR_RO(reg_traps);

/* Counters that move with the model are read under its lock. */
static ssize_t emuhba_model_counter_show(struct device *dev, char *buf,
					 size_t offset)
{
	struct emuhba_adapter *a = dev_to_adapter(dev);
	u64 n;

	mutex_lock(&a->model_lock);
	n = *(u64 *)((u8 *)&a->counters + offset);
	mutex_unlock(&a->model_lock);
	return sysfs_emit(buf, "%llu\n", n);
}

static ssize_t admin_observed_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return emuhba_model_counter_show(dev, buf,
		offsetof(struct emuhba_counters, admin_observed));
}
static DEVICE_ATTR_RO(admin_observed);

static ssize_t observer_show(struct device *dev, struct device_attribute *attr,
			     char *buf)
{
	struct emuhba_adapter *a = dev_to_adapter(dev);
	const char *s;

	mutex_lock(&a->model_lock);
	s = a->obs.lost ? "lost" : a->obs.enabled ? "following" : "idle";
	mutex_unlock(&a->model_lock);
	return sysfs_emit(buf, "%s\n", s);
}
static DEVICE_ATTR_RO(observer);

static ssize_t emulated_cmds_show(struct device *dev,
				  struct device_attribute *attr, char *buf)
{
	return emuhba_model_counter_show(dev, buf,
		offsetof(struct emuhba_counters, emulated_cmds));
}
static DEVICE_ATTR_RO(emulated_cmds);

static ssize_t identify_answered_show(struct device *dev,
				      struct device_attribute *attr, char *buf)
{
	return emuhba_model_counter_show(dev, buf,
		offsetof(struct emuhba_counters, identify_answered));
}
static DEVICE_ATTR_RO(identify_answered);

static ssize_t identify_unanswered_show(struct device *dev,
					struct device_attribute *attr,
					char *buf)
{
	return emuhba_model_counter_show(dev, buf,
		offsetof(struct emuhba_counters, identify_unanswered));
}
static DEVICE_ATTR_RO(identify_unanswered);

/* Whose identity the guest sees: the VF's own or one it came with. */
static ssize_t identity_show(struct device *dev,
			     struct device_attribute *attr, char *buf)
{
	struct emuhba_adapter *a = dev_to_adapter(dev);
	bool foreign;

	mutex_lock(&a->model_lock);
	foreign = a->id_foreign;
	mutex_unlock(&a->model_lock);
	return sysfs_emit(buf, "%s\n", foreign ? "guest" : "own");
}
static DEVICE_ATTR_RO(identity);

/* Doorbell writes switch windows caught; state_lock, as the switch counts. */
static ssize_t window_doorbells_show(struct device *dev,
				     struct device_attribute *attr, char *buf)
{
	struct emuhba_adapter *a = dev_to_adapter(dev);
	u64 n;

	mutex_lock(&a->state_lock);
	n = a->counters.window_doorbells;
	mutex_unlock(&a->state_lock);
	return sysfs_emit(buf, "%llu\n", n);
}
static DEVICE_ATTR_RO(window_doorbells);

/* Where a switch would take the guest's queue positions from. */
static ssize_t position_source_show(struct device *dev,
				    struct device_attribute *attr, char *buf)
{
	struct emuhba_adapter *a = dev_to_adapter(dev);
	enum emuhba_position_source src;

	mutex_lock(&a->model_lock);
	src = emuhba_position_source_locked(a);
	mutex_unlock(&a->model_lock);
	return sysfs_emit(buf, "%s\n", src == EMUHBA_POS_SHADOW_DOORBELLS ?
			  "shadow-doorbells" : "trapped-doorbells");
}
static DEVICE_ATTR_RO(position_source);

static struct attribute *emuhba_attrs[] = {
	&dev_attr_window_doorbells.attr,
	&dev_attr_position_source.attr,
	&dev_attr_identify_answered.attr,
	&dev_attr_identify_unanswered.attr,
	&dev_attr_identity.attr,
	&dev_attr_emulated_cmds.attr,
	&dev_attr_adapter_id.attr,
	&dev_attr_mode.attr,
	&dev_attr_reg_traps.attr,
	&dev_attr_admin_observed.attr,
	&dev_attr_observer.attr,
	NULL
};

/* A function passed through plainly has no adapter: no directory. */
static bool emuhba_group_visible(struct kobject *kobj)
{
	return !emuhba_is_plain(kobj_to_dev(kobj));
}

DEFINE_SIMPLE_SYSFS_GROUP_VISIBLE(emuhba);

static const struct attribute_group emuhba_attr_group = {
	.name = "emuhba",
	.attrs = emuhba_attrs,
	.is_visible = SYSFS_GROUP_VISIBLE(emuhba),
};

const struct attribute_group *emuhba_dev_groups[] = {
	&emuhba_attr_group,
	NULL
};

static int emuhba_state_show(struct seq_file *m, void *unused)
{
	struct emuhba_adapter *a = m->private;
	const struct emu_nvme_state *st;
	unsigned int q;

	mutex_lock(&a->model_lock);
	st = emu_nvme_state(a->model);
	seq_printf(m, "mode %s\n",
		   emu_nvme_get_mode(a->model) == EMU_NVME_MODE_RUN ?
		   "run" : "observe");
	seq_printf(m, "cc 0x%x csts 0x%x aqa 0x%x asq 0x%llx acq 0x%llx\n",
		   st->regs.cc, st->regs.csts, st->regs.aqa, st->regs.asq,
		   st->regs.acq);
	seq_printf(m, "observer %s admin_sq_head %u admin_cq_head %u phase %u\n",
		   a->obs.lost ? "lost" : a->obs.enabled ? "following" : "idle",
		   a->obs.sq_head, a->obs.cq_head, a->obs.phase);
	seq_printf(m, "dbbuf %u dbs 0x%llx eis 0x%llx\n", st->dbbuf.enabled,
		   st->dbbuf.dbs, st->dbbuf.eis);
	seq_printf(m, "nq 0x%x aec 0x%x kato %u aer_outstanding %u\n",
		   st->feat.nq, st->feat.aec, st->feat.kato, st->aer.nr_cid);
	for (q = 1; q < EMU_NVME_NR_Q; q++) {
		if (st->cq[q].valid)
			seq_printf(m, "cq %u base 0x%llx size %u vector %u ien %u\n",
				   q, st->cq[q].base, st->cq[q].size,
				   st->cq[q].vector, st->cq[q].ien);
		if (st->sq[q].valid)
			seq_printf(m, "sq %u base 0x%llx size %u cqid %u qprio %u\n",
				   q, st->sq[q].base, st->sq[q].size,
				   st->sq[q].cqid, st->sq[q].qprio);
	}
	mutex_unlock(&a->model_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(emuhba_state);

void emuhba_debugfs_add(struct emuhba_adapter *a)
{
	if (IS_ERR_OR_NULL(emuhba_debugfs_root))
		return;
	a->debugfs = debugfs_create_dir(pci_name(a->core.pdev),
					emuhba_debugfs_root);
	debugfs_create_file("state", 0400, a->debugfs, a, &emuhba_state_fops);
}

void emuhba_debugfs_remove(struct emuhba_adapter *a)
{
	debugfs_remove_recursive(a->debugfs);
	a->debugfs = NULL;
}

void emuhba_debugfs_init(void)
{
	emuhba_debugfs_root = debugfs_create_dir(KBUILD_MODNAME, NULL);
}

void emuhba_debugfs_exit(void)
{
	debugfs_remove_recursive(emuhba_debugfs_root);
}
