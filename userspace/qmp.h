/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A QMP client (QEMU Machine Protocol, docs/interop/qmp-spec.rst of QEMU)
 * for hbamig migrate: the framing of the JSON stream, the decoding of
 * replies and events, and the migration commands. Everything QEMU sends is
 * treated as untrusted: sizes, nesting and types are checked before use.
 */
#ifndef HBAMIG_QMP_H
#define HBAMIG_QMP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;
struct json_tokener;

/* One message may not exceed this; QEMU's replies here are < 64 KiB. */
#define QMP_MSG_MAX		(1 << 20)
#define QMP_DEPTH_MAX		32
#define QMP_STR_MAX		256

/* ---- framing: bytes in, JSON values out ---- */
struct qmp_rx {
	struct json_tokener *tok;
	char *buf;
	size_t len;
	size_t cap;
	/* Where the scan for the end of the current message stands. */
	size_t scan;
	int depth;
	bool in_str, esc;
	char open[QMP_DEPTH_MAX];	/* the brackets to close, innermost last */
};

int qmp_rx_init(struct qmp_rx *rx);
void qmp_rx_free(struct qmp_rx *rx);
/* Append received bytes; -EMSGSIZE when a message grows past QMP_MSG_MAX. */
int qmp_rx_feed(struct qmp_rx *rx, const void *data, size_t len);
/*
 * Take the next complete JSON value: 1 and *out (the caller owns it), 0
 * when more bytes are needed, -EPROTO when the stream is not JSON.
 */
int qmp_rx_next(struct qmp_rx *rx, struct json_object **out);

/* ---- one message ---- */
enum qmp_kind {
	QMP_MSG_INVALID = 0,
	QMP_MSG_GREETING,
	QMP_MSG_RETURN,
	QMP_MSG_ERROR,
	QMP_MSG_EVENT,
};

struct qmp_msg {
	enum qmp_kind kind;
	bool has_id;
	int64_t id;		/* ours are numbers; others leave has_id false */
	struct json_object *ret;	/* "return" (borrowed from the message) */
	char err_class[64];
	char err_desc[QMP_STR_MAX];
	char event[64];
	struct json_object *data;	/* event "data" (borrowed), or NULL */
	int ver_major, ver_minor, ver_micro;	/* greeting */
};

/* Classify a decoded value; returns 0, or -EPROTO for a non-QMP value. */
int qmp_classify(struct json_object *o, struct qmp_msg *m);

/* ---- decoded replies ---- */
struct qmp_mig_info {
	char status[32];	/* "" when QEMU has not migrated yet */
	bool has_total_time, has_downtime, has_expected_downtime;
	bool has_setup_time;
	int64_t total_time_ms, downtime_ms, expected_downtime_ms;
	int64_t setup_time_ms;
	bool has_ram;
	uint64_t ram_transferred, ram_total, ram_remaining;
	uint64_t ram_dirty_rate;	/* pages/s */
	uint64_t ram_dirty_sync_count;
	double ram_mbps;
	bool has_vfio;
	uint64_t vfio_transferred;	/* device state, QEMU >= 8.1 */
	char error_desc[QMP_STR_MAX];
	int nr_blocked;		/* blocked-reasons: migration refused */
	char blocked[4][QMP_STR_MAX];
};

/* query-migrate's return value; -EPROTO for a wrong type anywhere. */
int qmp_parse_mig_info(struct json_object *ret, struct qmp_mig_info *mi);
/* Terminal states: nothing will change without a new command. */
bool qmp_mig_done(const char *status);

/* query-status: "running", "paused", "inmigrate", "postmigrate", ... */
int qmp_parse_status(struct json_object *ret, char *status, size_t len,
		     bool *running);

/* qom-list: calls @cb for every property; a non-zero return stops. */
typedef int (*qmp_prop_cb)(const char *name, const char *type, void *arg);
int qmp_parse_qom_list(struct json_object *ret, qmp_prop_cb cb, void *arg);

/* ---- the client ---- */
typedef void (*qmp_event_cb)(const struct qmp_msg *m, void *arg);

struct qmp {
	int fd;
	struct qmp_rx rx;
	int64_t next_id;
	int timeout_ms;		/* for one command */
	qmp_event_cb on_event;
	void *event_arg;
	unsigned int events;	/* events seen */
	char mig_event[32];	/* last MIGRATION event's status */
	int ver_major, ver_minor, ver_micro;
	/* The last error QEMU or the transport reported, for messages. */
	char err_class[64];
	char err_desc[QMP_STR_MAX];
};

/* Connect to a unix socket, read the greeting, negotiate capabilities. */
int qmp_connect(struct qmp *q, const char *path, int timeout_ms);
/* The same on a connected socket (takes ownership of @fd). */
int qmp_open_fd(struct qmp *q, int fd, int timeout_ms);
void qmp_close(struct qmp *q);
/*
 * Run @cmd with @args (consumed; may be NULL). On success returns 0 and,
 * if @ret, the "return" value (the caller puts it). Errors: -EREMOTEIO
 * (QEMU said no: q->err_class/err_desc), -ETIMEDOUT, -EPIPE (QEMU went
 * away), -EPROTO (not QMP), -ENOMEM.
 */
int qmp_exec(struct qmp *q, const char *cmd, struct json_object *args,
	     struct json_object **ret);

int qmp_query_migrate(struct qmp *q, struct qmp_mig_info *mi);
int qmp_query_status(struct qmp *q, char *status, size_t len, bool *running);
/* qom-get of a string property; -ENOENT when the object has no such one. */
int qmp_qom_get_str(struct qmp *q, const char *path, const char *prop,
		    char *buf, size_t len);

/* ---- migration ---- */
int qmp_mig_set_downtime(struct qmp *q, uint64_t ms);
/*
 * The switchover threshold's two parameters (query-migrate-parameters):
 * downtime-limit (ms) and avail-switchover-bandwidth (bytes/s, 0: QEMU's
 * own estimate). -ENOENT when QEMU does not report one of them.
 */
int qmp_mig_get_threshold(struct qmp *q, uint64_t *downtime_ms,
			  uint64_t *switchover_bw);
int qmp_mig_set_threshold(struct qmp *q, uint64_t downtime_ms,
			  uint64_t switchover_bw);
int qmp_mig_start(struct qmp *q, const char *uri);
/*
 * A command that must reach QEMU even if this process dies first, SIGKILL
 * included: a child shares the monitor's socket and waits on a pipe; when
 * the pipe ends without qmp_guard_release() it sends @cmd (one QMP
 * command, as JSON) and waits up to 2 s for QEMU's answer. The monitor is
 * untouched meanwhile: the child writes only once no one else can.
 */
struct qmp_guard {
	int pid;		/* the child, 0 when none */
	int fd;			/* the pipe's writing end */
};

int qmp_guard_start(struct qmp *q, const char *cmd, struct qmp_guard *g);
/* The command is not needed any more: the child ends without sending. */
void qmp_guard_release(struct qmp_guard *g);
/* Send it now, as if this process had died; waits for the child. */
void qmp_guard_fire(struct qmp_guard *g);
/* The restore of qmp_mig_set_threshold(), as a command for a guard. */
int qmp_mig_threshold_cmd(char *buf, size_t len, uint64_t downtime_ms,
			  uint64_t switchover_bw);

/* migrate-set-capabilities with one capability. */
int qmp_mig_set_capability(struct qmp *q, const char *cap, bool on);
/* migrate-continue from @state (e.g. "pre-switchover"). */
int qmp_mig_continue(struct qmp *q, const char *state);

enum qmp_mig_result {
	QMP_MIG_COMPLETED = 0,
	QMP_MIG_FAILED,		/* QEMU reported failed (error_desc says why) */
	QMP_MIG_CANCELLED,	/* cancelled, by us or someone else */
	QMP_MIG_TIMEOUT,
	QMP_MIG_STOPPED,	/* *stop became non-zero */
	/* paused before switchover (the capability pause-before-switchover) */
	QMP_MIG_PRE_SWITCHOVER,
	/* RAM sent once whole and its dirty log synced again (until_synced) */
	QMP_MIG_SYNCED,
};

struct qmp_mig_wait {
	int timeout_ms;
	int poll_ms;
	volatile sig_atomic_t *stop;
	/* Return QMP_MIG_PRE_SWITCHOVER when QEMU waits there. */
	bool until_preswitch;
	/* Return QMP_MIG_SYNCED once ram.dirty-sync-count reaches 2. */
	bool until_synced;
	/* Called after every query-migrate while in progress. */
	void (*progress)(const struct qmp_mig_info *mi, void *arg);
	void *arg;
};

/* Poll query-migrate until a result; <0 on a transport error. */
int qmp_mig_wait(struct qmp *q, const struct qmp_mig_wait *w,
		 struct qmp_mig_info *last);
/*
 * migrate_cancel, then wait up to @timeout_ms for a terminal state, which
 * is returned (QMP_MIG_COMPLETED when it finished before the cancel took).
 */
int qmp_mig_cancel(struct qmp *q, int timeout_ms, struct qmp_mig_info *last);

const char *qmp_mig_result_name(int r);

#endif /* HBAMIG_QMP_H */
