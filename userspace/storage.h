/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Local storage: the namespace of a VF on a local disk is copied to the
 * destination's namespace before the VM moves, by kernel engines only:
 * nvmet (TCP) exports the destination's namespace, nvme-tcp connects the
 * source to it, and a device-mapper "mirror" (core log) of the local and
 * the remote namespace becomes the source adapter's emulated backend.
 *
 * storage_parse.c holds what reads text from the kernel or the user (pure,
 * unit-tested and fuzzed); storage_dm.c the device-mapper ioctls;
 * storage.c the engine and the "storage" commands.
 */
#ifndef HBAMIG_STORAGE_H
#define HBAMIG_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hbamig.h"

/* Names: the nvmet subsystem, the dm device, nvmet port ids. */
#define STOR_NQN_PREFIX		"nqn.2014-08.org.emuhba:copy:"
#define STOR_DM_PREFIX		"emuhba-copy-"
#define STOR_DM_UUID_PREFIX	"EMUHBA-COPY-"
#define STOR_PORTID_MIN		0xeb00	/* nvmet port ids hbamig uses */
#define STOR_PORTID_MAX		0xebff
#define STOR_DEF_PORT		4420
#define STOR_NQN_MAX		223	/* NVMe: NQN at most 223 bytes */
#define STOR_ADDR_MAX		46	/* INET6_ADDRSTRLEN */

/* nvme-tcp options: a cut link fails I/O within seconds. */
#define STOR_CTRL_LOSS_TMO	15
#define STOR_FAST_IO_FAIL_TMO	2
#define STOR_RECONNECT_DELAY	2
#define STOR_KATO		5

/* ---- parsers (storage_parse.c): strict, for hostile text ---- */

/* tcp://ADDR:PORT/NQN, ADDR an IPv4 address or [IPv6]. */
struct stor_target {
	bool ipv6;
	char addr[STOR_ADDR_MAX];	/* without brackets */
	u16 port;
	char nqn[STOR_NQN_MAX + 1];
};

int stor_parse_target(const char *s, struct stor_target *t);
/* Back to the string form; -ENOSPC when @len is too small. */
int stor_format_target(const struct stor_target *t, char *buf, size_t len);
/* ADDR[:PORT] or [ADDR6][:PORT] of --listen; wildcards refused. */
int stor_parse_listen(const char *s, struct stor_target *t);
/*
 * An NQN hbamig passes on: "nqn." then [A-Za-z0-9.:_-], at most 223
 * bytes. Nothing else may reach the comma-separated options string of
 * /dev/nvme-fabrics.
 */
bool stor_valid_nqn(const char *s);

/* 8-4-4-4-12 hex digits (a host ID). */
bool stor_valid_uuid(const char *s);
/* The nvme-fabrics options string for @t, or -ENOSPC. */
int stor_fabrics_options(const struct stor_target *t, const char *hostnqn,
			 const char *hostid, char *buf, size_t len);
/* What /dev/nvme-fabrics answers to a connect: "instance=N,cntlid=M\n". */
int stor_parse_fabrics_reply(const char *s, int *instance, int *cntlid);

/* One unsigned decimal number and an optional newline (sysfs). */
int stor_parse_u64(const char *s, u64 *v);
/* "MAJ:MIN\n" (sysfs dev). */
int stor_parse_devnum(const char *s, unsigned int *maj, unsigned int *min);

/*
 * A namespace entry below /sys/class/nvme/nvmeN: "nvmeXnY" (no native
 * multipath) or "nvmeXcNnY" (a path; the block device is the head,
 * "nvmeXnY"). Fills @disk with the block device's name and @nsid.
 */
int stor_parse_ns_entry(const char *name, char *disk, size_t len, u32 *nsid);

enum stor_ctrl_state {
	STOR_CTRL_UNKNOWN = 0,
	STOR_CTRL_NEW,
	STOR_CTRL_LIVE,
	STOR_CTRL_RESETTING,
	STOR_CTRL_CONNECTING,
	STOR_CTRL_DELETING,
	STOR_CTRL_DELETING_NOIO,
	STOR_CTRL_DEAD,
};

/* /sys/class/nvme/nvmeN/state. */
enum stor_ctrl_state stor_parse_ctrl_state(const char *s);
const char *stor_ctrl_state_name(enum stor_ctrl_state st);

#define STOR_MIRROR_LEGS	8

/*
 * The dm "mirror" target's status (STATUSTYPE_INFO):
 * "N DEV... SYNC/TOTAL 1 HEALTH LOGARGC LOGARGS..." with HEALTH one
 * character per leg: A alive, D write, S sync, R read, F flush failure,
 * U unknown.
 */
struct stor_mirror_status {
	int legs;
	unsigned int maj[STOR_MIRROR_LEGS], min[STOR_MIRROR_LEGS];
	char health[STOR_MIRROR_LEGS + 1];
	u64 in_sync, regions;
	char log[16];		/* "core", "disk", ... */
};

int stor_parse_mirror_status(const char *s, struct stor_mirror_status *st);
/* The first leg failed, or another; -1 when every leg is alive. */
int stor_mirror_failed_leg(const struct stor_mirror_status *st);
/*
 * The dm "mirror" table line (STATUSTYPE_TABLE): "LOG LOGARGC LOGARGS...
 * N DEV OFFSET... [FEATURES]"; fills the legs' device numbers.
 */
int stor_parse_mirror_table(const char *s, struct stor_mirror_status *st);

/* Region size (sectors) for a device of @sectors: 512 KiB, or larger. */
u32 stor_region_sectors(u64 sectors);

/* ---- device-mapper (storage_dm.c) ---- */
struct stor_dm_dev {
	char name[128];
	u32 major, minor;
	u32 open_count;
	bool has_table;
};

int stor_dm_open(void);		/* the control fd, or -errno */
int stor_dm_create(int fd, const char *name, const char *uuid,
		   struct stor_dm_dev *d);
/* Load @type's table "0 @sectors @type @params" and activate it. */
int stor_dm_load(int fd, const char *name, u64 sectors, const char *type,
		 const char *params, bool activate);
int stor_dm_resume(int fd, const char *name);
int stor_dm_arm_poll(int fd);
/* First target's status (@table: the table line) into @buf. */
int stor_dm_status(int fd, const char *name, bool table, char *type,
		   size_t tlen, char *buf, size_t len);
/* Remove; with @deferred, an open device goes once its last user closes. */
int stor_dm_remove(int fd, const char *name, bool deferred);
int stor_dm_info(int fd, const char *name, struct stor_dm_dev *d);
typedef int (*stor_dm_list_cb)(const char *name, u32 major, u32 minor,
			       void *arg);
int stor_dm_list(int fd, stor_dm_list_cb cb, void *arg);

/* ---- the copy engine (storage.c), used by migrate ---- */
struct stor_copy {
	char bdf[HBA_BDF_LEN];		/* source adapter */
	char local[HBA_BACKEND_LEN];	/* its backend before the copy */
	struct stor_target tgt;
	char hostnqn[STOR_NQN_MAX + 1];
	char hostid[40];
	/* the remote namespace */
	int instance, cntlid;
	char ctrl[32];			/* nvmeN */
	char disk[32];			/* nvmeXnY */
	unsigned int lmaj, lmin, rmaj, rmin;
	u64 sectors;			/* the local backend's size */
	u64 rsectors;
	u32 lbs, rlbs, lmeta, rmeta;
	u32 region;			/* sectors */
	/* the dm device */
	int dmfd;
	char dm_name[128];
	char dm_path[32];		/* /dev/dm-N */
	u32 dm_minor;
	/* what exists, for the unwind */
	bool connected, dm_created, mirrored, backend_set;
	bool armed;	/* dm event poll armed on dmfd */
	/* progress and timing (ns, CLOCK_MONOTONIC) */
	u64 t_mirror, t_sync, t_emulated, t_direct;
	u64 copy_bytes;
	u64 last_bytes, last_t;
	double mbps;
	struct stor_mirror_status st;
	char why[256];			/* a failure, for messages */
};

void stor_copy_init(struct stor_copy *c);
/* Preflight: connect, find the remote namespace, compare. Exit code. */
int stor_copy_prepare(struct stor_copy *c, const char *bdf,
		      const char *local, const char *target);
/* dm device as a linear map of the local backend. Exit code. */
int stor_copy_linear(struct stor_copy *c);
/* Replace the table with the mirror (starts the resync). Exit code. */
int stor_copy_mirror(struct stor_copy *c);
/*
 * One look at the mirror and the link: 0 resyncing, 1 in sync, -1 the copy
 * failed (c->why says why).
 */
int stor_copy_poll(struct stor_copy *c);
/* Arms dm's event poll, then stor_copy_poll(); see stor_copy_wait(). */
int stor_copy_check(struct stor_copy *c);
/* Sleeps up to @ms, less when dm reports an event (the resync's end). */
void stor_copy_wait(struct stor_copy *c, int ms);
/* Progress line (terminal) or JSON line; @force: print now. */
void stor_copy_progress(struct stor_copy *c, bool json, bool tty);
/* Flush both legs (fsync of the dm device); 0 or -errno. */
int stor_copy_flush(struct stor_copy *c);
/* Back to linear(local), noflush: held writes go to the local leg. */
int stor_copy_unmirror(struct stor_copy *c);
/* Everything after unmirror: disconnect, deferred remove. */
void stor_copy_release(struct stor_copy *c);
double stor_copy_ms(const struct stor_copy *c);

/* ---- commands ---- */
int do_storage(int argc, char **argv);

u64 stor_now_ns(void);

#endif /* HBAMIG_STORAGE_H */
