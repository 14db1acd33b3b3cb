/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * rnr_agent: lets hbamig pause the RDMA RC peers of another process.
 *
 * libibverbs gives no process a handle on another's queue pairs, so the
 * process that owns them (a userspace storage initiator or target) embeds
 * this agent. The owner registers its QPs and posts receives through
 * rnr_agent_post_recv() instead of ibv_post_recv(); the agent listens on a
 * UNIX socket and, while paused, keeps the receives the owner posts instead
 * of posting them. Once the receives already posted are consumed, the
 * responder answers every SEND with an RNR NAK and a requester with
 * rnr_retry 7 retries until resumed. Resume posts the withheld receives in
 * their order at once.
 *
 * Protocol (SOCK_STREAM, ASCII lines ending in '\n', at most
 * RNR_AGENT_LINE_MAX bytes with the newline; one reply line per request):
 *
 *   pause MS   ->  ok paused pause_ms=F qps=N max_ms=M rnr_timer=C
 *                  err ERANGE ... | err EBUSY ...
 *   resume     ->  ok resumed by=request|lease|hangup|stop resume_ms=F
 *                     held_ms=F withheld=N post_errors=N rnr_timer=C
 *                  err EALREADY not paused
 *   status     ->  ok status state=paused|running qps=N max_ms=M
 *                     withheld=N remaining_ms=N rnr_timer=C
 *   other      ->  err EINVAL ... (E2BIG and the connection closed when a
 *                  line is too long)
 *
 * A pause is a lease: it ends by itself after MS, or when the connection
 * that asked for it closes (its requester died). MS above the owner's
 * maximum is refused. One connection at a time; only root and the owner's
 * own user are served (SO_PEERCRED), and the socket is created mode 0600.
 */
#ifndef RNR_AGENT_H
#define RNR_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <infiniband/verbs.h>

#define RNR_AGENT_LINE_MAX	64
/* No lease is longer, whatever the owner allows (hbamig's own maximum). */
#define RNR_AGENT_MAX_MS	300000
#define RNR_AGENT_MAX_QPS	64

enum rnr_agent_cmd {
	RNR_AGENT_PAUSE = 1,
	RNR_AGENT_RESUME,
	RNR_AGENT_STATUS,
};

struct rnr_agent_req {
	enum rnr_agent_cmd	cmd;
	unsigned int		ms;	/* pause only */
};

/*
 * Parse one request line of @len bytes (without its '\n'). Returns 0,
 * -E2BIG (too long), -ERANGE (pause MS out of 1..RNR_AGENT_MAX_MS) or
 * -EINVAL (anything else, including NUL and control bytes).
 */
int rnr_agent_parse(const char *line, size_t len, struct rnr_agent_req *req);

/* Value of " KEY=" in a reply line; -ENOENT when absent or not a number. */
int rnr_agent_reply_num(const char *reply, const char *key, double *val);
/* The same as a word (up to the next space), NUL-terminated in @buf. */
int rnr_agent_reply_str(const char *reply, const char *key, char *buf,
			size_t len);

struct rnr_agent;

struct rnr_agent_opts {
	const char	*path;		/* UNIX socket to create */
	unsigned int	max_ms;		/* longest pause the owner accepts */
	/*
	 * Called from the agent's thread with each reply it sends and each
	 * lease that ends without a request ("resumed by=lease ..."), for
	 * the owner's log. May be NULL.
	 */
	void		(*log)(void *arg, const char *line);
	void		*log_arg;
};

/* Create the socket and start the agent's thread. */
int rnr_agent_start(const struct rnr_agent_opts *opts, struct rnr_agent **out);
/*
 * Register an RC @qp. @pause_rnr_timer (an IBA RNR timer code, 1..31) is
 * set as the QP's min_rnr_timer for the pause and the QP's own restored at
 * resume, so that a long pause costs fewer retries; 0 keeps the QP's own.
 */
int rnr_agent_add_qp(struct rnr_agent *a, struct ibv_qp *qp,
		     uint8_t pause_rnr_timer);
/*
 * ibv_post_recv() for the owner: posts, or while paused keeps a copy of
 * @wr (and its scatter list) to post at resume. The buffers stay the
 * owner's: they must not be reused until their completion, as always.
 */
int rnr_agent_post_recv(struct rnr_agent *a, struct ibv_qp *qp,
			struct ibv_recv_wr *wr, struct ibv_recv_wr **bad_wr);
bool rnr_agent_paused(struct rnr_agent *a);
/* Resume (by=stop) if paused, stop the thread, remove the socket. */
void rnr_agent_stop(struct rnr_agent *a);

#endif
