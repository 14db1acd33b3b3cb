/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * emuhba: internal interface between the adapter core (emuhba_main.c and the
 * migration/switch code) and the control plane (emuhba_genl.c).
 */
#ifndef EMUHBA_H
#define EMUHBA_H

#include <linux/mutex.h>
#include <linux/netlink.h>
#include <linux/types.h>
#include <linux/vfio_pci_core.h>

#define EMUHBA_BACKEND_MAX	256
#define EMUHBA_SWITCH_TIMEOUT_MIN_MS	10
#define EMUHBA_SWITCH_TIMEOUT_MAX_MS	60000
#define EMUHBA_SWITCH_TIMEOUT_DEFAULT_MS	2000

enum emuhba_personality {
	EMUHBA_PERS_NVME = 1,
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

struct emuhba_counters {
	u64 reg_traps;		/* trapped accesses to the registers page */
	u64 admin_observed;	/* admin completions seen by the observer */
	u64 emulated_cmds;	/* commands the model executed */
	u64 switches;
	u64 switch_failures;
	u64 dirty_pages;	/* pages reported through the DMA log */
};

/* A consistent copy of an adapter's state, for the control plane. */
struct emuhba_snapshot {
	u32 id;
	char bdf[16];
	u32 personality;
	u32 mode;
	u32 mig_state;		/* enum vfio_device_mig_state */
	bool open;		/* a VFIO user holds the device */
	char backend[EMUHBA_BACKEND_MAX];
	struct emuhba_policy policy;
	struct emuhba_counters counters;
	struct emuhba_switch_timing last_switch;
};

struct emuhba_adapter {
	struct vfio_pci_core_device core;
	u32 id;			/* stable while bound; key of emuhba_adapters */
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
int emuhba_adapter_set_backend(struct emuhba_adapter *a, const char *path,
			       struct netlink_ext_ack *extack);
int emuhba_adapter_set_policy(struct emuhba_adapter *a,
			      const struct emuhba_policy *p,
			      struct netlink_ext_ack *extack);
int emuhba_adapter_switch(struct emuhba_adapter *a, enum emuhba_mode to,
			  struct emuhba_switch_timing *timing,
			  struct netlink_ext_ack *extack);

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
