/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * emuhba: internal interface between the adapter core (emuhba_main.c and the
 * migration/switch code) and the control plane (emuhba_genl.c).
 */
#ifndef EMUHBA_H
#define EMUHBA_H

#include <linux/atomic.h>
#include <linux/bitfield.h>
#include <linux/eventfd.h>
#include <linux/llist.h>
#include <linux/spinlock.h>
#include <linux/mutex.h>
#include <linux/netlink.h>
#include <linux/nvme.h>
#include <linux/poll.h>
#include <linux/types.h>
#include <linux/vfio_pci_core.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "emu_nvme.h"

#define EMUHBA_BACKEND_MAX	256
#define EMUHBA_SWITCH_TIMEOUT_MIN_MS	10
#define EMUHBA_SWITCH_TIMEOUT_MAX_MS	60000
#define EMUHBA_SWITCH_TIMEOUT_DEFAULT_MS	2000

/*
 * The NVMe controller registers: never mapped to the user. Doorbells start
 * at 4 KiB; with larger pages they share the first page and are trapped too.
 */
#define EMUHBA_REGS_SIZE	max_t(u64, SZ_4K, PAGE_SIZE)
#define EMUHBA_MAX_VECTORS	2048
#define EMUHBA_MAX_DB_PAGES	4
/* Bounce buffers of one adapter's commands in flight, at most. */
#define EMUHBA_BOUNCE_MAX	(64UL << 20)
/* A shadow doorbell word nobody wrote: no doorbell value has all bits set. */
#define EMUHBA_DB_EMPTY		0xffffffffU

enum emuhba_personality {
	EMUHBA_PERS_NVME = 1,
};

/*
 * Where a switch to emulated mode takes the guest's queue positions from:
 * the shadow doorbell buffer the guest configured on the VF, or doorbell
 * writes the driver catches and forwards while it switches.
 */
enum emuhba_position_source {
	EMUHBA_POS_SHADOW_DOORBELLS = 1,
	EMUHBA_POS_TRAPPED_DOORBELLS,
};

enum emuhba_mode {
	EMUHBA_MODE_DIRECT = 1,
	EMUHBA_MODE_EMULATED,
	EMUHBA_MODE_SWITCHING,
};

struct emuhba_policy {
	bool auto_switch;	/* switch to emulated when migration starts */
	bool quiesce_required;	/* refuse a switch unless peers are quiesced */
	u32 switch_timeout_ms;
	/*
	 * Without shadow doorbells: how long the administrator vouches any
	 * command takes on the VF; 0 when nobody does, and a queue the guest
	 * leaves alone during a switch then cannot be placed.
	 */
	u32 idle_after_ms;
	/* the destination of a storage copy (emu_nvme_limits.ns_copied) */
	bool ns_copy;
};

/* Phases of the last switch, in nanoseconds; zero when not run. */
struct emuhba_switch_timing {
	u64 stop_ns;
	u64 capture_ns;
	u64 load_ns;
	u64 repoint_ns;
	u64 total_ns;
	int result;		/* 0 or a negative errno */
	u32 from_mode;
	u32 to_mode;
};

/*
 * In struct emuhba_adapter, switches, switch_failures, window_doorbells and
 * dirty_pages are protected by state_lock, admin_observed and emulated_cmds
 * by model_lock, and reg_traps is kept in emuhba_adapter.reg_traps instead.
 */
struct emuhba_counters {
	u64 reg_traps;		/* trapped accesses to the registers page */
	u64 admin_observed;	/* admin completions seen by the observer */
	u64 emulated_cmds;	/* commands the model executed */
	u64 switches;
	u64 switch_failures;
	u64 dirty_pages;	/* pages reported through the DMA log */
	/* Identify completions answered with the guest's identity */
	u64 identify_answered;
	/* ... and left to the VF because the guest may have seen them */
	u64 identify_unanswered;
	/* doorbell writes caught while a switch held the doorbell pages */
	u64 window_doorbells;
};

/* A consistent copy of an adapter's state, for the control plane. */
struct emuhba_snapshot {
	u32 id;
	char bdf[16];
	u32 personality;
	u32 mode;
	u32 mig_state;		/* enum vfio_device_mig_state */
	bool open;		/* a VFIO user holds the device */
	bool guest_identity;	/* the guest sees another VF's identity */
	u32 position_source;	/* enum emuhba_position_source */
	char backend[EMUHBA_BACKEND_MAX];
	struct emuhba_policy policy;
	struct emuhba_counters counters;
	struct emuhba_switch_timing last_switch;
};

/* One MSI-X vector as the VFIO user last registered it. */
struct emuhba_vector {
	struct eventfd_ctx *trigger;
};

/*
 * What the admin observer knows of the guest's admin queue in direct mode:
 * the next completion to look at and the entries the VF has fetched.
 */
struct emuhba_observer {
	u64 asq, acq;
	u16 sq_size, cq_size;	/* entries */
	u16 sq_head;		/* next SQ slot not yet read */
	u16 cq_head;
	bool phase;
	bool enabled;		/* CC.EN observed set and admin queue known */
	bool lost;		/* an observation failed: switch refused */
	struct nvme_command *pending;	/* fetched SQEs by slot, sq_size */
	u16 pending_slots;	/* entries pending was allocated for */
	u16 budget;		/* completions left to read until an interrupt */
	/* woken by the admin vector's interrupt and by CC.EN */
	struct work_struct work;
	/* an admin interrupt waits for the work to pass it on */
	atomic_t held;
	/* admin interrupts since the work last looked: each refills budget */
	atomic_t irqs;
	u8 deferred;		/* passes that put off passing it on; work only */
};

/* Pages the model wrote while VFIO DMA logging is on. */
struct emuhba_dirty_log {
	/*
	 * Protects running, overflow, page_shift and pages; a mutex, since
	 * iova_bitmap_set() may fault in the user's bitmap.
	 */
	struct mutex lock;
	bool running;
	bool overflow;		/* a page could not be recorded: report all */
	u8 page_shift;
	struct xarray pages;	/* dirty page numbers */
};

struct emuhba_mig_file;

struct emuhba_adapter {
	struct vfio_pci_core_device core;
	u32 id;			/* stable while bound; key of emuhba_adapters */
	atomic64_t reg_traps;	/* accesses to the registers page */
	/*
	 * Serialises every call into the model and the observer state; taken
	 * after state_lock when both are needed.
	 */
	struct mutex model_lock;
	struct emu_nvme_ctrl *model;
	/*
	 * The VF's own identity, read at bind time: the model takes it back
	 * when a guest that brought another model's identity goes away.
	 */
	struct emu_nvme_identity *own_id;
	/* the namespace the VF itself reaches (NGUID, EUI64), from own_id */
	u8 own_nguid[16];
	u8 own_eui64[8];
	struct emuhba_observer obs;
	/*
	 * Protects vectors[], nr_vectors, admin_irq and admin_trigger against
	 * SET_IRQS; taken before core.memory_lock.
	 */
	struct mutex irq_lock;
	struct emuhba_vector *vectors;
	u16 nr_vectors;
	/*
	 * The admin vector (MSI-X 0) is requested by this driver, not by the
	 * VFIO core, so that no interrupt bypass delivers it behind the
	 * observer's back. admin_trigger only changes while admin_irq is not
	 * requested, so the handler reads it without a lock.
	 */
	int admin_irq;		/* host IRQ of MSI-X 0 while requested, or 0 */
	struct eventfd_ctx *admin_trigger;	/* = vectors[0].trigger */
	char admin_irq_name[32];
	/*
	 * The model's identity (the guest's) is not the VF's: the observer
	 * answers Identify before the guest sees the completion. Written under
	 * model_lock, read by the interrupt handler.
	 */
	bool id_foreign;
	/*
	 * While a switch stops the VF and takes its queues over, register
	 * accesses wait on regs_wq: none may reach the VF it is disabling.
	 * Written under model_lock.
	 */
	bool regs_held;
	wait_queue_head_t regs_wq;
	/* the emulation thread sleeps here; EMUHBA_EMUL_KICKED wakes it */
	wait_queue_head_t emul_wq;
	unsigned long emul_flags;
	/* polls doorbells while emulated; both under state_lock */
	struct task_struct *emul_thread;
	bool emul_running;	/* emul_thread was woken */
	/*
	 * A reset of the VF (FLR through config space, AER) ran where our
	 * locks could not be taken; the next entry point processes it and the
	 * emulation thread does nothing meanwhile.
	 */
	atomic_t reset_pending;
	struct work_struct reset_work;
	/* set across the dirty-scope pin and unpin; dma_unmap waits on it */
	atomic_t pinning;
	/*
	 * The model's host DMA and interrupts do nothing: set while a
	 * teardown drains the model, which may run after the VFIO user's mm
	 * is gone (close from exit) or after the guest reset the device.
	 */
	bool dma_off;
	/* driver pages behind the doorbell mapping while emulated */
	struct page *db_shadow[EMUHBA_MAX_DB_PAGES];
	unsigned int db_pages;
	unsigned int db_words;
	bool db_shadowed;	/* written under core.memory_lock */
	struct emuhba_dirty_log log;
	struct file *backend_file;	/* open while emulated */
	struct llist_head backend_done;	/* finished backend requests */
	atomic_long_t bounce_bytes;	/* in buffers above a page */
	/* the VFIO user's, charged for bounce buffers; set while open */
	struct mem_cgroup *memcg;
	atomic_t backend_inflight;
	struct dentry *debugfs;
	/* migration data sessions, under state_lock */
	struct emuhba_mig_file *save;
	struct emuhba_mig_file *resume;
	/* serialises mode, migration state, policy, backend and switches */
	struct mutex state_lock;
	enum emuhba_mode mode;
	enum vfio_device_mig_state mig_state;
	char backend[EMUHBA_BACKEND_MAX];
	struct emuhba_policy policy;
	struct emuhba_counters counters;
	struct emuhba_switch_timing last_switch;
	bool open;
	bool removing;
	bool dirty_scope_exact;	/* the container logs only our writes */
};

/*
 * Adapter registry (emuhba_main.c). The getters return the adapter with a
 * reference on its vfio_device; drop it with emuhba_adapter_put().
 */
struct emuhba_adapter *emuhba_adapter_get(u32 id);
struct emuhba_adapter *emuhba_adapter_get_next(u32 *id);
struct emuhba_adapter *emuhba_adapter_get_by_bdf(const char *bdf);
void emuhba_adapter_put(struct emuhba_adapter *a);
void emuhba_adapter_snapshot(struct emuhba_adapter *a,
			     struct emuhba_snapshot *s);
enum emuhba_position_source
emuhba_position_source_locked(struct emuhba_adapter *a);
int emuhba_adapter_set_backend(struct emuhba_adapter *a, const char *path,
			       struct netlink_ext_ack *extack);
int emuhba_adapter_set_policy(struct emuhba_adapter *a,
			      const struct emuhba_policy *p,
			      struct netlink_ext_ack *extack);
int emuhba_adapter_switch(struct emuhba_adapter *a, enum emuhba_mode to,
			  struct emuhba_switch_timing *timing,
			  struct netlink_ext_ack *extack);

static inline struct emuhba_adapter *
emuhba_from_core(struct vfio_pci_core_device *core)
{
	return container_of(core, struct emuhba_adapter, core);
}

static inline struct emuhba_adapter *emuhba_from_vdev(struct vfio_device *v)
{
	return emuhba_from_core(container_of(v, struct vfio_pci_core_device,
					     vdev));
}

/*
 * Read guest memory by IOVA through the VF's IOMMU domain. Only from a
 * kernel thread or the VFIO user's own context (vfio_dma_rw uses its mm).
 */
static inline int emuhba_guest_read(struct emuhba_adapter *a, u64 iova,
				    void *buf, size_t len)
{
	return vfio_dma_rw(&a->core.vdev, iova, buf, len, false);
}

/*
 * Submission and completion queue entries as they are in guest memory:
 * little-endian, the command identifier included (struct nvme_command and
 * struct nvme_completion keep it in the byte order of the host that wrote
 * it, which for a guest's queue is the NVMe one).
 */
static inline u16 emuhba_sqe_cid(const struct nvme_command *c)
{
	return le16_to_cpu((__force __le16)c->common.command_id);
}

static inline void emuhba_sqe_set_cid(struct nvme_command *c, u16 cid)
{
	c->common.command_id = (__force u16)cpu_to_le16(cid);
}

static inline u16 emuhba_cqe_cid(const struct nvme_completion *cqe)
{
	return le16_to_cpu((__force __le16)cqe->command_id);
}

/* The phase tag, bit 0 of the status field. */
static inline u16 emuhba_cqe_phase(const struct nvme_completion *cqe)
{
	return le16_to_cpu(cqe->status) & 1;
}

/* The status field without the phase tag (SC, SCT, CRD, M, DNR). */
static inline u16 emuhba_cqe_status(const struct nvme_completion *cqe)
{
	return le16_to_cpu(cqe->status) >> 1;
}

/*
 * The observer's copy of a fetched admin command is marked outstanding in
 * its last byte, the top byte of CDW15 (reserved in every admin command).
 */
#define EMUHBA_SQE_OUTSTANDING	GENMASK(31, 24)

static inline bool emuhba_sqe_outstanding(const struct nvme_command *c)
{
	return le32_to_cpu(c->common.cdw15) & EMUHBA_SQE_OUTSTANDING;
}

static inline void emuhba_sqe_set_outstanding(struct nvme_command *c,
					      bool outstanding)
{
	u32 dw15 = le32_to_cpu(c->common.cdw15) & ~EMUHBA_SQE_OUTSTANDING;

	c->common.cdw15 = cpu_to_le32(dw15 | FIELD_PREP(EMUHBA_SQE_OUTSTANDING,
							outstanding));
}

/* Registers page and BAR0 (emuhba_regs.c). */
long emuhba_get_region_info(struct emuhba_adapter *a, void __user *arg);
ssize_t emuhba_read(struct vfio_device *vdev, char __user *buf, size_t count,
		    loff_t *ppos);
ssize_t emuhba_write(struct vfio_device *vdev, const char __user *buf,
		     size_t count, loff_t *ppos);
int emuhba_mmap(struct vfio_device *vdev, struct vm_area_struct *vma);
bool emuhba_model_owns_regs(struct emuhba_adapter *a);

/* Emulated mode host (emuhba_emul.c, emuhba_backend.c). */
extern const struct emu_host_ops emuhba_host_ops;
extern const struct vfio_log_ops emuhba_log_ops;
int emuhba_doorbell_mmap(struct emuhba_adapter *a, struct vm_area_struct *vma);
void emuhba_emul_kick(struct emuhba_adapter *a);
void emuhba_emul_init(struct emuhba_adapter *a);
void emuhba_emul_destroy(struct emuhba_adapter *a);
int emuhba_emul_prepare(struct emuhba_adapter *a);
int emuhba_emul_start(struct emuhba_adapter *a);
void emuhba_emul_stop(struct emuhba_adapter *a);
int emuhba_emul_poll(struct emuhba_adapter *a);
/* Pending doorbell writes to the model; under model_lock. */
void emuhba_db_collect(struct emuhba_adapter *a);
int emuhba_db_alloc(struct emuhba_adapter *a, u32 nr_queues, u32 dstrd);
void emuhba_db_free(struct emuhba_adapter *a);
void emuhba_db_shadow_on(struct emuhba_adapter *a);
void emuhba_db_shadow_off(struct emuhba_adapter *a);
void emuhba_db_unshadow(struct emuhba_adapter *a,
			void (*flush)(struct emuhba_adapter *a, void *arg),
			void *arg);
bool emuhba_vf_mem_ok(struct emuhba_adapter *a);
/* A doorbell write through the region instead of the mapping. */
bool emuhba_db_region_write(struct emuhba_adapter *a, u64 off, u32 val);
int emuhba_backend_open(struct emuhba_adapter *a,
			struct netlink_ext_ack *extack);
void emuhba_backend_close(struct emuhba_adapter *a);
int emuhba_backend_submit(struct emuhba_adapter *a, struct emu_blk_req *req);
void emuhba_backend_reap(struct emuhba_adapter *a);
int emuhba_backend_reap_locked(struct emuhba_adapter *a);
void emuhba_backend_drain(struct emuhba_adapter *a);

/* Interrupts (emuhba_irq.c). */
long emuhba_set_irqs(struct emuhba_adapter *a, void __user *arg);
void emuhba_irq_release_all(struct emuhba_adapter *a);
void emuhba_irq_signal(struct emuhba_adapter *a, u16 vector);
void emuhba_admin_irq_forward(struct emuhba_adapter *a);

/* Admin observer (emuhba_observe.c). */
int emuhba_observer_init(struct emuhba_adapter *a);
void emuhba_observer_reset(struct emuhba_adapter *a, bool own_id);
void emuhba_observe_reg_done(struct emuhba_adapter *a, u32 off, u64 val,
			     u32 size);
void emuhba_observer_stop_locked(struct emuhba_adapter *a);
void emuhba_observer_snapshot(struct emuhba_adapter *a);
/* Whether the guest's identity differs from the VF's; under model_lock. */
void emuhba_identity_refresh_locked(struct emuhba_adapter *a);

/* sysfs and debugfs views (emuhba_sysfs.c). */
extern const struct attribute_group *emuhba_dev_groups[];
bool emuhba_is_plain(struct device *dev);
void emuhba_debugfs_add(struct emuhba_adapter *a);
void emuhba_debugfs_remove(struct emuhba_adapter *a);
void emuhba_debugfs_init(void);
void emuhba_debugfs_exit(void);

/* VFIO migration (emuhba_mig.c). */
struct file *emuhba_migration_set_state(struct vfio_device *vdev,
					enum vfio_device_mig_state new_state);
int emuhba_migration_get_state(struct vfio_device *vdev,
			       enum vfio_device_mig_state *state);
int emuhba_migration_get_data_size(struct vfio_device *vdev,
				   unsigned long *stop_copy_length);
void emuhba_mig_reset(struct emuhba_adapter *a);
void emuhba_reset_flush(struct emuhba_adapter *a);

/* The switch (emuhba_switch.c). */
int emuhba_switch_to_emulated(struct emuhba_adapter *a,
			      struct emuhba_switch_timing *timing,
			      char *msg, size_t msglen);
void emuhba_switch_teardown(struct emuhba_adapter *a);
void emuhba_dirty_scope_exact(struct emuhba_adapter *a, u64 iova);
int emuhba_vf_disable(struct emuhba_adapter *a);
/* Back to the VF with the vCPUs stopped (emuhba_restore.c). */
int emuhba_switch_to_direct(struct emuhba_adapter *a,
			    struct emuhba_switch_timing *timing,
			    char *msg, size_t msglen);

/* Identity of the VF, read at bind time (emuhba_ident.c). */
int emuhba_ident_capture(struct emuhba_adapter *a);

/* Control plane (emuhba_genl.c). Notifications may sleep. */
int emuhba_genl_init(void);
void emuhba_genl_exit(void);
void emuhba_genl_notify_adapter(struct emuhba_adapter *a, bool added);
void emuhba_genl_notify_mode(struct emuhba_adapter *a, u32 old_mode,
			     u32 new_mode);
void emuhba_genl_notify_mig_state(struct emuhba_adapter *a, u32 old_state,
				  u32 new_state);
void emuhba_genl_notify_error(struct emuhba_adapter *a, int err,
			      const char *msg);

#endif /* EMUHBA_H */
