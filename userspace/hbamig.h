/* SPDX-License-Identifier: GPL-2.0-only */
/* hbamig: shared declarations of the command's modules. */
#ifndef HBAMIG_H
#define HBAMIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hbamig_exit.h"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int32_t s32;

/* ---- output (out.c): text or JSON, selected once at start ---- */
struct hba_out {
	FILE *f;
	bool json;
	bool pretty;
	int depth;
	bool first[16];		/* no member printed yet at this depth */
};

extern struct hba_out hba_out;

void out_init(FILE *f, bool json, bool pretty);
void out_obj_start(const char *key);	/* key NULL inside arrays/top */
void out_obj_end(void);
void out_arr_start(const char *key);
void out_arr_end(void);
void out_str(const char *key, const char *val);
void out_u64(const char *key, u64 val);
void out_s64(const char *key, int64_t val);
void out_bool(const char *key, bool val);
void out_null(const char *key);
void out_eol(void);		/* ends a top-level JSON value */

/* ---- decoded emuhba messages (parse.c) ---- */
#define HBA_BDF_LEN	16
#define HBA_BACKEND_LEN	256
#define HBA_ERRMSG_LEN	256
#define HBA_SUBNQN_LEN	256	/* EMUHBA_SUBNQN_MAX_LEN + NUL */

struct hba_policy {
	bool has_auto_switch, has_quiesce_required, has_switch_timeout;
	bool has_idle_after;	/* false from kernels that do not report it */
	bool has_ns_copy;	/* likewise */
	bool auto_switch, quiesce_required;
	bool ns_copy;		/* the destination of a storage copy */
	u32 switch_timeout_ms;
	u32 idle_after_ms;
};

struct hba_counters {
	bool present;
	u64 reg_traps, admin_observed, emulated_cmds;
	u64 switches, switch_failures, dirty_pages;
	bool has_identify_answered;
	u64 identify_answered;
	bool has_window_doorbells;
	u64 window_doorbells;
};

struct hba_timing {
	bool present;
	s32 result;
	u32 from_mode, to_mode;
	u64 stop_ns, capture_ns, load_ns, repoint_ns, total_ns;
};

/* One emuhba message: a reply or an event; has_* say what was present. */
struct hba_msg {
	u8 cmd;
	bool has_id, has_bdf, has_personality, has_mode, has_old_mode;
	bool has_mig_state, has_old_mig_state, has_open, has_backend;
	bool has_policy, has_error, has_error_msg;
	bool has_nsid, has_nguid, has_eui64, has_subnqn, has_guest_identity;
	bool has_position_source;
	u32 id;
	char bdf[HBA_BDF_LEN];
	u32 personality, mode, old_mode, mig_state, old_mig_state;
	bool open;
	char backend[HBA_BACKEND_LEN];
	/* the VF's own namespace and subsystem; guest_identity: another's */
	u32 nsid;
	u8 nguid[16], eui64[8];
	char subnqn[HBA_SUBNQN_LEN];
	bool guest_identity;
	/* enum emuhba_adapter_position_source: where a switch finds positions */
	u32 position_source;
	struct hba_policy policy;
	struct hba_counters counters;
	struct hba_timing last_switch;
	s32 error;
	char error_msg[HBA_ERRMSG_LEN];
};

/* Kernel's answer to a request: errno and extended ACK. */
struct hba_nlerr {
	int error;		/* 0 or a positive errno */
	char msg[HBA_ERRMSG_LEN];
	bool has_offs;
	u32 offs;		/* offset of the bad attribute in the request */
	bool has_miss;
	u32 miss_type;		/* attribute that was missing */
};

/* Parser results. */
enum {
	HBA_PARSE_MORE = 0,	/* need the next buffer */
	HBA_PARSE_DONE = 1,	/* NLMSG_DONE or ACK/error seen */
};

/*
 * Called for every message of the expected family; returns 0 to go on or
 * a negative value to stop the parse with that value.
 */
typedef int (*hba_msg_cb)(const struct hba_msg *m, void *arg);
typedef int (*hba_raw_cb)(const void *nlh, void *arg);

/*
 * Walk one buffer of netlink messages (a recv() result). Messages of
 * family @family are decoded into struct hba_msg and passed to @cb;
 * NLMSG_ERROR/NLMSG_DONE fill @err. Messages of @raw_type (when not 0)
 * go to @raw undecoded. Returns HBA_PARSE_MORE, HBA_PARSE_DONE or a
 * negative errno for a malformed buffer.
 */
int hba_parse_buf(const void *buf, size_t len, u16 family, hba_msg_cb cb,
		  void *arg, u16 raw_type, hba_raw_cb raw,
		  struct hba_nlerr *err);

/* Decode the attributes of one emuhba genl message (after genlmsghdr). */
int hba_parse_attrs(const void *attrs, size_t len, struct hba_msg *m);

/* nlctrl DELFAMILY/NEWFAMILY: family name, or NULL when not such. */
const char *hba_parse_ctrl_family(const void *nlh, u8 *cmd);

/* ---- VFs of a PF as rtnetlink reports them (parse.c) ---- */
#define HBA_MAX_VFS	256

struct hba_vf {
	u32 vf;
	bool has_sys;		/* bdf/driver from sysfs (virtfnN) */
	char bdf[HBA_BDF_LEN];
	char driver[32];
	bool has_mac, has_vlan, has_rate, has_spoofchk, has_link_state;
	bool has_trust, has_rss_query;
	u8 mac[6];
	u32 vlan, qos;
	u32 min_tx_rate, max_tx_rate;
	u32 spoofchk, link_state, trust, rss_query;
};

struct hba_link {
	bool has_netdev;	/* rtnetlink data present */
	u32 total_vfs;
	bool has_ifindex;
	int ifindex;
	char ifname[32];
	u32 num_vf;
	u32 n;			/* entries filled in vfs[] */
	struct hba_vf vfs[HBA_MAX_VFS];
};

int hba_parse_link(const void *nlh, size_t len, struct hba_link *l);

/* ---- naming (print.c) ---- */
const char *hba_mode_name(u32 mode);
const char *hba_mig_state_name(u32 st);
const char *hba_personality_name(u32 p);
const char *hba_position_source_name(u32 src);
const char *hba_cmd_name(u8 cmd);
void hba_print_adapter(const struct hba_msg *m);
void hba_print_switch(const struct hba_msg *m);
void hba_print_event(const struct hba_msg *m);
void hba_print_family_event(const char *family, bool removed);
void hba_print_link(const struct hba_link *l, const char *pf_bdf,
		    const char *pf_driver);
const char *hba_errno_name(int err);

/* ---- generic netlink transport (genl.c) ---- */
struct nl_sock;
struct nl_msg;

struct hba_genl {
	struct nl_sock *sk;
	int family;
};

int hba_genl_open(struct hba_genl *g);
void hba_genl_close(struct hba_genl *g);
struct nl_msg *hba_genl_msg(struct hba_genl *g, u8 cmd, int flags);
/* Send @msg (consumed), feed replies to @cb; fills @err on failure. */
int hba_genl_talk(struct hba_genl *g, struct nl_msg *msg, hba_msg_cb cb,
		  void *arg, struct hba_nlerr *err);
/* Turn a kernel error into a message on stderr and an exit code. */
int hba_report_nlerr(const char *what, const struct hba_nlerr *err);
int hba_exit_from_errno(int err);
int hba_set_ext_ack(struct nl_sock *sk);
int hba_talk(struct nl_sock *sk, struct nl_msg *msg, u16 family,
	     hba_msg_cb cb, void *arg, u16 raw_type, hba_raw_cb raw,
	     struct hba_nlerr *err);

/* ---- commands ---- */
int do_dev(int argc, char **argv);
int do_vf(int argc, char **argv);
int do_switch(int argc, char **argv);
int do_monitor(int argc, char **argv);
int do_migrate(int argc, char **argv);	/* migrate.c */

/* ---- helpers (hbamig.c) ---- */
extern const char *hba_prog;
bool matches(const char *arg, const char *word);
bool is_help(const char *arg);
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int parse_on_off(const char *what, const char *arg, bool *val);
int parse_u32(const char *what, const char *arg, u32 *val);
bool valid_bdf(const char *s);

/* ---- sysfs helpers (sysfs.c) ---- */
int sysfs_read(const char *path, char *buf, size_t len);
int sysfs_write(const char *path, const char *val);
int pci_driver_of(const char *bdf, char *buf, size_t len);
bool pci_exists(const char *bdf);

#endif /* HBAMIG_H */
