// SPDX-License-Identifier: GPL-2.0-only
/*
 * rnr_agent: the side of the RNR pause that lives in the process owning
 * the queue pairs (see rnr_agent.h for the protocol).
 *
 * Why a wrapper around ibv_post_recv() and not a hook on completions: the
 * one thing that pauses an RC peer is an empty receive queue, and only the
 * owner's own posting refills it. Withholding posts needs nothing else of
 * the owner (no callback, no change to its completion loop), and resume is
 * then the agent posting what it kept, in the order the owner posted it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "rnr_agent.h"

struct rnr_agent_held {
	struct rnr_agent_held	*next;
	struct ibv_qp		*qp;
	uint64_t		wr_id;
	int			num_sge;
	struct ibv_sge		sge[];
};

struct rnr_agent_qp {
	struct ibv_qp	*qp;
	uint8_t		pause_timer;
	uint8_t		own_timer;
};

struct rnr_agent {
	struct rnr_agent_opts	opts;
	char			path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int			lfd, cfd, stop[2];
	pthread_t		thread;
	/* Held across ibv_post_recv(): a resume never overtakes a post. */
	pthread_mutex_t		lock;
	struct rnr_agent_qp	qps[RNR_AGENT_MAX_QPS];
	int			nr_qps;
	bool			paused;
	struct rnr_agent_held	*head, **tail;
	unsigned int		withheld, lease_ms;
	uint64_t		t_paused, deadline;
	/* The last resume, for "resume" after the lease ended by itself. */
	char			last[160];
	bool			has_last;
	char			buf[RNR_AGENT_LINE_MAX];
	size_t			len;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int rnr_agent_parse(const char *line, size_t len, struct rnr_agent_req *req)
{
	unsigned long v = 0;
	size_t i;

	if (len >= RNR_AGENT_LINE_MAX)
		return -E2BIG;
	for (i = 0; i < len; i++)
		if (line[i] < 0x20 || line[i] > 0x7e)
			return -EINVAL;
	memset(req, 0, sizeof(*req));
	if (len == 6 && !memcmp(line, "resume", 6)) {
		req->cmd = RNR_AGENT_RESUME;
		return 0;
	}
	if (len == 6 && !memcmp(line, "status", 6)) {
		req->cmd = RNR_AGENT_STATUS;
		return 0;
	}
	if (len < 7 || memcmp(line, "pause ", 6))
		return -EINVAL;
	/* Seven digits already exceed any lease: no overflow below. */
	if (len - 6 > 7)
		return -ERANGE;
	for (i = 6; i < len; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -EINVAL;
		v = v * 10 + (line[i] - '0');
	}
	if (!v || v > RNR_AGENT_MAX_MS)
		return -ERANGE;
	req->cmd = RNR_AGENT_PAUSE;
	req->ms = v;
	return 0;
}

static const char *reply_find(const char *reply, const char *key)
{
	size_t kl = strlen(key);
	const char *p = reply;

	while ((p = strchr(p, ' '))) {
		p++;
		if (!strncmp(p, key, kl) && p[kl] == '=')
			return p + kl + 1;
	}
	return NULL;
}

int rnr_agent_reply_num(const char *reply, const char *key, double *val)
{
	const char *p = reply_find(reply, key);
	char *end;

	if (!p)
		return -ENOENT;
	errno = 0;
	*val = strtod(p, &end);
	if (end == p || errno || (*end && *end != ' ' && *end != '\n'))
		return -ENOENT;
	return 0;
}

int rnr_agent_reply_str(const char *reply, const char *key, char *buf,
			size_t len)
{
	const char *p = reply_find(reply, key);
	size_t n;

	if (!p || !len)
		return -ENOENT;
	n = strcspn(p, " \n");
	if (n >= len)
		return -E2BIG;
	memcpy(buf, p, n);
	buf[n] = 0;
	return 0;
}

static struct rnr_agent_qp *find_qp(struct rnr_agent *a, struct ibv_qp *qp)
{
	int i;

	for (i = 0; i < a->nr_qps; i++)
		if (a->qps[i].qp == qp)
			return &a->qps[i];
	return NULL;
}

int rnr_agent_add_qp(struct rnr_agent *a, struct ibv_qp *qp,
		     uint8_t pause_rnr_timer)
{
	struct ibv_qp_init_attr ia;
	struct ibv_qp_attr attr;
	int ret = 0;

	if (qp->qp_type != IBV_QPT_RC || pause_rnr_timer > 31)
		return -EINVAL;
	if (ibv_query_qp(qp, &attr, IBV_QP_MIN_RNR_TIMER, &ia))
		return -errno;
	if (ia.srq)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&a->lock);
	if (find_qp(a, qp)) {
		ret = -EEXIST;
	} else if (a->nr_qps == RNR_AGENT_MAX_QPS) {
		ret = -ENOSPC;
	} else {
		a->qps[a->nr_qps].qp = qp;
		a->qps[a->nr_qps].pause_timer = pause_rnr_timer;
		a->qps[a->nr_qps].own_timer = attr.min_rnr_timer;
		a->nr_qps++;
	}
	pthread_mutex_unlock(&a->lock);
	return ret;
}

int rnr_agent_post_recv(struct rnr_agent *a, struct ibv_qp *qp,
			struct ibv_recv_wr *wr, struct ibv_recv_wr **bad_wr)
{
	struct rnr_agent_held *h;
	int ret = 0;

	pthread_mutex_lock(&a->lock);
	if (!a->paused || !find_qp(a, qp)) {
		ret = ibv_post_recv(qp, wr, bad_wr);
		goto out;
	}
	for (; wr; wr = wr->next) {
		if (wr->num_sge < 0 || wr->num_sge > 1024) {
			ret = EINVAL;
			break;
		}
		h = malloc(sizeof(*h) + wr->num_sge * sizeof(h->sge[0]));
		if (!h) {
			ret = ENOMEM;
			break;
		}
		h->next = NULL;
		h->qp = qp;
		h->wr_id = wr->wr_id;
		h->num_sge = wr->num_sge;
		if (wr->num_sge)
			memcpy(h->sge, wr->sg_list,
			       wr->num_sge * sizeof(h->sge[0]));
		*a->tail = h;
		a->tail = &h->next;
		a->withheld++;
	}
	if (ret)
		*bad_wr = wr;
out:
	pthread_mutex_unlock(&a->lock);
	return ret;
}

bool rnr_agent_paused(struct rnr_agent *a)
{
	bool p;

	pthread_mutex_lock(&a->lock);
	p = a->paused;
	pthread_mutex_unlock(&a->lock);
	return p;
}

static void set_timers(struct rnr_agent *a, bool pause)
{
	struct ibv_qp_attr attr = {};
	int i;

	for (i = 0; i < a->nr_qps; i++) {
		if (!a->qps[i].pause_timer)
			continue;
		attr.min_rnr_timer = pause ? a->qps[i].pause_timer :
					     a->qps[i].own_timer;
		/* RTS -> RTS: min_rnr_timer is one of its optional attributes. */
		ibv_modify_qp(a->qps[i].qp, &attr, IBV_QP_MIN_RNR_TIMER);
	}
}

/* The QP's min_rnr_timer now, as the device reports it (-1: no QP). */
static int cur_timer(struct rnr_agent *a)
{
	struct ibv_qp_init_attr ia;
	struct ibv_qp_attr attr;

	if (!a->nr_qps ||
	    ibv_query_qp(a->qps[0].qp, &attr, IBV_QP_MIN_RNR_TIMER, &ia))
		return -1;
	return attr.min_rnr_timer;
}

static void do_pause(struct rnr_agent *a, unsigned int ms, char *out,
		     size_t len)
{
	uint64_t t0 = now_ns();

	pthread_mutex_lock(&a->lock);
	if (a->paused) {
		pthread_mutex_unlock(&a->lock);
		snprintf(out, len, "err EBUSY already paused\n");
		return;
	}
	if (ms > a->opts.max_ms) {
		pthread_mutex_unlock(&a->lock);
		snprintf(out, len,
			 "err ERANGE pause %u ms exceeds the owner's maximum %u ms\n",
			 ms, a->opts.max_ms);
		return;
	}
	a->paused = true;
	a->has_last = false;
	a->withheld = 0;
	a->lease_ms = ms;
	set_timers(a, true);
	a->t_paused = now_ns();
	a->deadline = a->t_paused + (uint64_t)ms * 1000000;
	snprintf(out, len, "ok paused pause_ms=%.3f qps=%d max_ms=%u rnr_timer=%d\n",
		 (a->t_paused - t0) / 1e6, a->nr_qps, a->opts.max_ms,
		 cur_timer(a));
	pthread_mutex_unlock(&a->lock);
}

static void do_resume(struct rnr_agent *a, const char *by)
{
	struct rnr_agent_held *h, *n;
	struct ibv_recv_wr wr, *bad;
	unsigned int errs = 0;
	uint64_t t0 = now_ns();

	pthread_mutex_lock(&a->lock);
	if (!a->paused) {
		pthread_mutex_unlock(&a->lock);
		return;
	}
	set_timers(a, false);
	for (h = a->head; h; h = n) {
		n = h->next;
		memset(&wr, 0, sizeof(wr));
		wr.wr_id = h->wr_id;
		wr.sg_list = h->sge;
		wr.num_sge = h->num_sge;
		if (ibv_post_recv(h->qp, &wr, &bad))
			errs++;
		free(h);
	}
	a->head = NULL;
	a->tail = &a->head;
	a->paused = false;
	snprintf(a->last, sizeof(a->last),
		 "resumed by=%s resume_ms=%.3f held_ms=%.3f withheld=%u post_errors=%u rnr_timer=%d",
		 by, (now_ns() - t0) / 1e6, (t0 - a->t_paused) / 1e6,
		 a->withheld, errs, cur_timer(a));
	a->has_last = true;
	pthread_mutex_unlock(&a->lock);
}

static void log_line(struct rnr_agent *a, const char *line)
{
	if (a->opts.log)
		a->opts.log(a->opts.log_arg, line);
}

/* The requester is gone: its lease ends with it. */
static void hangup(struct rnr_agent *a)
{
	close(a->cfd);
	a->cfd = -1;
	a->len = 0;
	if (rnr_agent_paused(a)) {
		do_resume(a, "hangup");
		log_line(a, a->last);
	}
}

static void reply(struct rnr_agent *a, const char *line)
{
	log_line(a, line);
	/* A requester that cannot hear the reply is gone too. */
	if (a->cfd >= 0 &&
	    send(a->cfd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		hangup(a);
}

static void handle(struct rnr_agent *a, const char *line, size_t len)
{
	struct rnr_agent_req req;
	char out[224];
	int ret;

	ret = rnr_agent_parse(line, len, &req);
	if (ret) {
		reply(a, ret == -ERANGE ?
			 "err ERANGE pause must be 1..300000 ms\n" :
			 "err EINVAL bad request\n");
		return;
	}
	switch (req.cmd) {
	case RNR_AGENT_PAUSE:
		do_pause(a, req.ms, out, sizeof(out));
		break;
	case RNR_AGENT_RESUME:
		do_resume(a, "request");
		pthread_mutex_lock(&a->lock);
		if (a->has_last)
			snprintf(out, sizeof(out), "ok %s\n", a->last);
		else
			snprintf(out, sizeof(out), "err EALREADY not paused\n");
		a->has_last = false;
		pthread_mutex_unlock(&a->lock);
		break;
	case RNR_AGENT_STATUS:
		pthread_mutex_lock(&a->lock);
		snprintf(out, sizeof(out),
			 "ok status state=%s qps=%d max_ms=%u withheld=%u remaining_ms=%llu rnr_timer=%d\n",
			 a->paused ? "paused" : "running", a->nr_qps,
			 a->opts.max_ms, a->paused ? a->withheld : 0,
			 a->paused && a->deadline > now_ns() ?
			 (unsigned long long)(a->deadline - now_ns()) / 1000000 :
			 0ull, cur_timer(a));
		pthread_mutex_unlock(&a->lock);
		break;
	}
	reply(a, out);
}

static void do_read(struct rnr_agent *a)
{
	char *nl;
	ssize_t n;
	size_t l;

	n = read(a->cfd, a->buf + a->len, sizeof(a->buf) - a->len);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		hangup(a);
		return;
	}
	a->len += n;
	while (a->cfd >= 0 && (nl = memchr(a->buf, '\n', a->len))) {
		l = nl - a->buf;
		handle(a, a->buf, l);
		a->len -= l + 1;
		memmove(a->buf, nl + 1, a->len);
	}
	if (a->cfd >= 0 && a->len == sizeof(a->buf)) {
		reply(a, "err E2BIG request too long\n");
		hangup(a);
	}
}

static void do_accept(struct rnr_agent *a)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	int fd;

	fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) ||
	    (cr.uid != 0 && cr.uid != geteuid())) {
		send(fd, "err EPERM\n", 10, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	if (a->cfd >= 0) {
		static const char busy[] = "err EBUSY another client is connected\n";

		send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	a->cfd = fd;
	a->len = 0;
	pthread_mutex_lock(&a->lock);
	a->has_last = false;
	pthread_mutex_unlock(&a->lock);
}

static void *agent_thread(void *arg)
{
	struct rnr_agent *a = arg;
	struct pollfd p[3];
	int timeout, n;
	uint64_t now;

	for (;;) {
		timeout = -1;
		pthread_mutex_lock(&a->lock);
		if (a->paused) {
			now = now_ns();
			timeout = a->deadline > now ?
				  (a->deadline - now + 999999) / 1000000 : 0;
		}
		pthread_mutex_unlock(&a->lock);
		p[0] = (struct pollfd){ .fd = a->stop[0], .events = POLLIN };
		p[1] = (struct pollfd){ .fd = a->lfd, .events = POLLIN };
		p[2] = (struct pollfd){ .fd = a->cfd, .events = POLLIN };
		n = poll(p, a->cfd >= 0 ? 3 : 2, timeout);
		if (n < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		pthread_mutex_lock(&a->lock);
		now = now_ns();
		n = a->paused && now >= a->deadline;
		pthread_mutex_unlock(&a->lock);
		if (n) {
			do_resume(a, "lease");
			log_line(a, a->last);
		}
		if (p[1].revents & POLLIN)
			do_accept(a);
		if (a->cfd >= 0 && p[2].fd == a->cfd && p[2].revents)
			do_read(a);
	}
	return NULL;
}

int rnr_agent_start(const struct rnr_agent_opts *opts, struct rnr_agent **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rnr_agent *a;
	struct stat st;
	mode_t um;
	int ret;

	if (!opts->path || strlen(opts->path) >= sizeof(sa.sun_path) ||
	    !opts->max_ms || opts->max_ms > RNR_AGENT_MAX_MS)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->opts = *opts;
	strcpy(a->path, opts->path);
	strcpy(sa.sun_path, opts->path);
	a->cfd = -1;
	a->stop[0] = a->stop[1] = -1;
	a->tail = &a->head;
	pthread_mutex_init(&a->lock, NULL);
	/* A socket left by a dead owner goes; any other file stays. */
	if (!lstat(a->path, &st) && S_ISSOCK(st.st_mode))
		unlink(a->path);
	a->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a->lfd < 0 || pipe2(a->stop, O_CLOEXEC)) {
		ret = -errno;
		goto err;
	}
	/* 0600 from the start: chmod after bind would leave a window. */
	um = umask(0177);
	ret = bind(a->lfd, (struct sockaddr *)&sa, sizeof(sa));
	umask(um);
	if (ret || listen(a->lfd, 4)) {
		ret = -errno;
		goto err;
	}
	ret = -pthread_create(&a->thread, NULL, agent_thread, a);
	if (ret) {
		unlink(a->path);
		goto err;
	}
	*out = a;
	return 0;
err:
	if (a->lfd >= 0)
		close(a->lfd);
	if (a->stop[0] >= 0) {
		close(a->stop[0]);
		close(a->stop[1]);
	}
	pthread_mutex_destroy(&a->lock);
	free(a);
	return ret;
}

void rnr_agent_stop(struct rnr_agent *a)
{
	if (!a)
		return;
	if (write(a->stop[1], "x", 1) != 1)
		pthread_cancel(a->thread);
	pthread_join(a->thread, NULL);
	do_resume(a, "stop");
	if (a->cfd >= 0)
		close(a->cfd);
	close(a->lfd);
	close(a->stop[0]);
	close(a->stop[1]);
	unlink(a->path);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
