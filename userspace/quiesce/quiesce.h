/* SPDX-License-Identifier: GPL-2.0-only */
/* Fabric peer quiescers: the "hbamig quiesce" command family. */
#ifndef QUIESCE_H
#define QUIESCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "hbamig_exit.h"

#ifndef __aligned
#define __aligned(x)	__attribute__((aligned(x)))
#endif

/*
 * Entry point of "hbamig quiesce ..."; argv[0] is "quiesce".
 * Returns a process exit code (see hbamig(8), EXIT STATUS).
 */
int quiesce_main(int argc, char **argv, bool json);

/* Exit codes of quiesce_main(): hbamig's list (hbamig_exit.h), named here. */
enum {
	QUIESCE_EXIT_OK		= HBAMIG_EXIT_OK,
	QUIESCE_EXIT_FAIL	= HBAMIG_EXIT_FAIL,	/* pause not established */
	QUIESCE_EXIT_USAGE	= HBAMIG_EXIT_USAGE,
	QUIESCE_EXIT_PERM	= HBAMIG_EXIT_PERM,	/* no CAP_BPF/NET_ADMIN */
	QUIESCE_EXIT_NOTFOUND	= HBAMIG_EXIT_NODEV,	/* nothing matched */
	/* Refused: a session timer is shorter than the lease. */
	QUIESCE_EXIT_BUDGET	= HBAMIG_EXIT_NOTSUPP,
};

/* Longest lease anyone may ask for, and the default one. */
#define QUIESCE_LEASE_MAX_MS	300000
#define QUIESCE_LEASE_DEF_MS	10000

/* A duration option in ms, 0..QUIESCE_LEASE_MAX_MS; 0 or -EINVAL. */
int quiesce_parse_ms(const char *s, long *v);

/* --- Connection selection (INET_DIAG) ------------------------------------ */

struct quiesce_conn {
	int		family;		/* AF_INET or AF_INET6 */
	uint8_t		laddr[16];
	uint8_t		raddr[16];
	uint16_t	lport;		/* host byte order */
	uint16_t	rport;
	uint8_t		state;		/* TCP_ESTABLISHED, ... */
	/* From tcp_info, at the time of the dump. */
	uint32_t	snd_wnd;	/* the peer's advertised window */
	uint32_t	rcv_wnd;	/* ours */
	uint64_t	bytes_received;
	uint64_t	bytes_acked;
	uint32_t	rtt_us;
	uint8_t		probes;
	uint8_t		backoff;
	/* What selected it, for the report and the timer budget. */
	char		origin[64];
};

struct quiesce_sel {
	int		family;		/* 0: any */
	bool		has_laddr, has_raddr;
	uint8_t		laddr[16];
	uint8_t		raddr[16];
	uint16_t	lport, rport;	/* 0: any */
	char		origin[64];
};

#define QUIESCE_MAX_SEL		64

struct quiesce_selection {
	struct quiesce_sel	sel[QUIESCE_MAX_SEL];
	int			nr;
	/* Session identities, for the timer budget. */
	const char		*nvme_nqn[8];
	int			nr_nvme;
	const char		*iscsi_iqn[8];
	int			nr_iscsi;
};

int quiesce_sel_parse_conn(struct quiesce_selection *s, const char *arg);
int quiesce_sel_add_nvme(struct quiesce_selection *s, const char *nqn);
int quiesce_sel_add_iscsi(struct quiesce_selection *s, const char *iqn);
/* Dump established TCP sockets of the current netns matching @s. */
int quiesce_conns_find(const struct quiesce_selection *s,
		       struct quiesce_conn *out, int max);
void quiesce_conn_str(const struct quiesce_conn *c, bool local, char *buf,
		      size_t len);
/* Name of the interface @c leaves through (IF_NAMESIZE bytes). */
int quiesce_conn_oif(const struct quiesce_conn *c, char *ifname);

int quiesce_read_attr(const char *dir, const char *name, char *buf,
		      size_t len);

/* --- Timer budget ---------------------------------------------------------- */

#define QUIESCE_MAX_TIMERS	32

struct quiesce_timer {
	char		name[96];	/* "nvme0 kato", "session1 noop_out_timeout" */
	char		path[160];	/* where it lives, to extend and restore */
	long		value;		/* in the file's own unit */
	long		budget_ms;	/* the pause it allows */
	long		scale_ms;	/* ms per unit of value */
	bool		extendable;
	/* Set through NETLINK_ISCSI (iSCSI connection parameter) if > 0. */
	int		iscsi_param;
	uint32_t	iscsi_sid, iscsi_cid;
};

struct quiesce_budget {
	struct quiesce_timer	t[QUIESCE_MAX_TIMERS];
	int			nr;
};

int quiesce_budget_collect(const struct quiesce_selection *s,
			   const struct quiesce_conn *conns, int nr,
			   struct quiesce_budget *b);
/* The binding timer, or NULL when nothing limits the pause. */
const struct quiesce_timer *quiesce_budget_min(const struct quiesce_budget *b);
/* Raise every extendable timer so it allows @pause_ms; restore undoes it. */
int quiesce_budget_extend(struct quiesce_budget *b, long pause_ms,
			  const struct quiesce_timer **failed);
void quiesce_budget_restore(struct quiesce_budget *b);

/* --- TCP zero-window lease ------------------------------------------------- */

struct quiesce_tcp;

struct quiesce_tcp_report {
	double		prepare_ms;	/* loading and attaching, inactive */
	double		pause_ms;	/* activation to every peer told "window 0" */
	double		resume_ms;	/* request to every window update sent */
	int		nr;
	int		confirmed;	/* connections whose peer saw window 0 */
	int		reopened;	/* connections sent a window update */
	int		kick_err;	/* errno of a failed loop-back, or 0 */
};

/*
 * Start a zero-window lease on the connections @conns leaving through
 * @ifname. The lease ends by itself after @lease_ms, or when this process
 * dies, whichever comes first.
 */
int quiesce_tcp_pause(const char *ifname, const struct quiesce_conn *conns,
		      int nr, long lease_ms, struct quiesce_tcp **out,
		      struct quiesce_tcp_report *rep);
/*
 * The same in two steps, so that an orchestrator can load and attach the
 * program early (it then only watches) and make the pause itself cost
 * little: prepare, then activate. The lease runs from activation.
 */
int quiesce_tcp_prepare(const char *ifname, const struct quiesce_conn *conns,
			int nr, long lease_ms, struct quiesce_tcp **out);
/*
 * Forwarded connections (a guest's, through a bridge or router here): not
 * this host's sockets, so they are learned from their segments leaving
 * through @ifname that match one of @pat (local: the guest's end), from
 * now on; the ACKs that announce the windows are drawn from the guest by
 * frames sent out of @guest_ifname, the interface on the guest's side.
 */
int quiesce_tcp_prepare_fwd(const char *ifname, const char *guest_ifname,
			    const struct quiesce_sel *pat, int npat,
			    long lease_ms, struct quiesce_tcp **out);
int quiesce_tcp_activate(struct quiesce_tcp *q, struct quiesce_tcp_report *rep);
/* TCP segments the program saw leave, and those of no selected connection. */
void quiesce_tcp_counts(struct quiesce_tcp *q, uint64_t *seen,
			uint64_t *unmatched);
/* The connections paused (for forwarded ones: learned so far). */
int quiesce_tcp_conns(struct quiesce_tcp *q, const struct quiesce_conn **out);
int quiesce_tcp_resume(struct quiesce_tcp *q, struct quiesce_tcp_report *rep);
/* Per-connection counters (segments rewritten) after pause or resume. */
uint64_t quiesce_tcp_zeroed(struct quiesce_tcp *q, int i);
/*
 * For the tests: run the program on @frame (an Ethernet frame) as if it
 * had left (@ingress false) or entered (@ingress true) the interface, and
 * read what it keeps of connection @i.
 */
int quiesce_tcp_test_frame(struct quiesce_tcp *q, bool ingress,
			   const void *frame, uint32_t len);
struct quiesce_tcp_val;
int quiesce_tcp_conn_val(struct quiesce_tcp *q, int i,
			 struct quiesce_tcp_val *v);
void quiesce_tcp_free(struct quiesce_tcp *q);

/* --- PFC / PAUSE ------------------------------------------------------------ */

/* A 60-byte MAC control frame; @prio_mask 0 makes an 802.3x PAUSE. */
size_t quiesce_pfc_frame(uint8_t *f, const uint8_t *src, uint8_t prio_mask,
			 uint16_t quanta);
double quiesce_pfc_quanta_us(uint16_t quanta, long mbps);

struct quiesce_pfc_lease;

struct quiesce_pfc_report {
	uint64_t	frames;		/* pause frames sent, XON excluded */
	double		max_gap_us;	/* longest interval between refreshes */
	double		resume_ms;	/* time to send the XON */
	uint64_t	xon_at_ns;	/* CLOCK_MONOTONIC */
	bool		xon;
	bool		lease_expired;
};

/*
 * Send a PAUSE (@prio_mask 0) or PFC frame on @dev now and keep refreshing
 * it every @refresh_us from a child process until quiesce_pfc_resume(),
 * the caller's death, or @lease_ms; each of those ends with an XON.
 */
int quiesce_pfc_pause(const char *dev, uint8_t prio_mask, uint16_t quanta,
		      double refresh_us, long lease_ms,
		      struct quiesce_pfc_lease **out, double *pause_ms);
int quiesce_pfc_resume(struct quiesce_pfc_lease *l,
		       struct quiesce_pfc_report *rep);

/* --- RDMA RC peers of another process (its rnr_agent) -------------------- */

struct quiesce_rnr_agent_report {
	double		rtt_ms;		/* pause request to reply, as hbamig saw it */
	double		pause_ms;	/* the agent closing its gates */
	double		resume_ms;	/* the agent posting what it withheld */
	double		resume_rtt_ms;
	double		held_ms;
	long		qps, max_ms, withheld, post_errors;
	int		rnr_timer;	/* min_rnr_timer code during the pause */
	int		rnr_timer_after;	/* and after the resume */
	char		by[16];		/* request, lease, hangup, stop */
	char		msg[160];	/* the agent's refusal, verbatim */
};

/*
 * Ask the agent listening at @path to pause for at most @max_ms; the lease
 * lasts while *@fd stays open. -ERANGE: over the owner's maximum.
 */
int quiesce_rnr_agent_pause(const char *path, long max_ms, int *fd,
			    struct quiesce_rnr_agent_report *rep);
/* Resume and close @fd; -EIO when withheld receives failed to post. */
int quiesce_rnr_agent_resume(int fd, struct quiesce_rnr_agent_report *rep);

/* --- Helpers shared by the quiescers ---------------------------------------- */

uint64_t quiesce_now_ns(void);
double quiesce_ms_since(uint64_t t0);
/* Wait @ms or until SIGINT/SIGTERM/SIGUSR1; returns the signal or 0. */
int quiesce_hold(long ms);
void quiesce_block_signals(void);
void quiesce_ignore_sigpipe(void);
void quiesce_json_str(const char *s);

int quiesce_tcp_main(int argc, char **argv, bool json);
int quiesce_conns_main(int argc, char **argv, bool json);
int quiesce_budget_main(int argc, char **argv, bool json);
int quiesce_pfc_main(int argc, char **argv, bool json);
int quiesce_rnr_main(int argc, char **argv, bool json);
int quiesce_rnr_agent_main(int argc, char **argv, bool json);

#endif
