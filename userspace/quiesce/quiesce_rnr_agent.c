// SPDX-License-Identifier: GPL-2.0-only
/*
 * "hbamig quiesce rnr --agent SOCKET": pause the RDMA RC peers of another
 * process through the rnr_agent it embeds (rnr_agent.h has the protocol).
 *
 * hbamig keeps the connection open for the whole pause: the agent ends the
 * lease when it closes, so a killed hbamig cannot leave a peer paused for
 * longer than it takes the kernel to close the socket.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "quiesce.h"
#include "rnr_agent.h"

/* An agent that does not answer within this is stuck, not slow. */
#define AGENT_REPLY_MS	5000

static int read_line(int fd, char *buf, size_t len)
{
	uint64_t t0 = quiesce_now_ns();
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t n;

	while (got + 1 < len) {
		long left = AGENT_REPLY_MS - (long)quiesce_ms_since(t0);

		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -ETIMEDOUT;
		n = read(fd, buf + got, 1);
		if (n <= 0)
			return -ECONNRESET;
		if (buf[got] == '\n') {
			buf[got] = 0;
			return 0;
		}
		got++;
	}
	return -EPROTO;
}

static int request(int fd, const char *req, char *rep, size_t len)
{
	size_t l = strlen(req);

	if (send(fd, req, l, MSG_NOSIGNAL) != (ssize_t)l)
		return -errno;
	return read_line(fd, rep, len);
}

/* "err ERANGE ..." -> -ERANGE and the agent's words in @rep->msg. */
static int agent_error(const char *line, struct quiesce_rnr_agent_report *rep)
{
	static const struct { const char *name; int err; } codes[] = {
		{ "ERANGE", ERANGE }, { "EBUSY", EBUSY }, { "EPERM", EPERM },
		{ "EALREADY", EALREADY }, { "EINVAL", EINVAL },
		{ "E2BIG", E2BIG },
	};
	size_t i;

	snprintf(rep->msg, sizeof(rep->msg), "%s", line);
	if (strncmp(line, "err ", 4))
		return -EPROTO;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (!strncmp(line + 4, codes[i].name, strlen(codes[i].name)))
			return -codes[i].err;
	return -EPROTO;
}

static double num(const char *line, const char *key)
{
	double v;

	return rnr_agent_reply_num(line, key, &v) ? -1 : v;
}

int quiesce_rnr_agent_pause(const char *path, long max_ms, int *fdp,
			    struct quiesce_rnr_agent_report *rep)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[256], req[32];
	uint64_t t0;
	int fd, ret;

	memset(rep, 0, sizeof(*rep));
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		close(fd);
		return ret;
	}
	snprintf(req, sizeof(req), "pause %ld\n", max_ms);
	t0 = quiesce_now_ns();
	ret = request(fd, req, line, sizeof(line));
	rep->rtt_ms = quiesce_ms_since(t0);
	if (!ret && strncmp(line, "ok paused ", 10))
		ret = agent_error(line, rep);
	if (ret) {
		close(fd);
		return ret;
	}
	rep->pause_ms = num(line, "pause_ms");
	rep->qps = num(line, "qps");
	rep->max_ms = num(line, "max_ms");
	rep->rnr_timer = num(line, "rnr_timer");
	*fdp = fd;
	return 0;
}

int quiesce_rnr_agent_resume(int fd, struct quiesce_rnr_agent_report *rep)
{
	char line[256];
	uint64_t t0 = quiesce_now_ns();
	int ret;

	ret = request(fd, "resume\n", line, sizeof(line));
	rep->resume_rtt_ms = quiesce_ms_since(t0);
	close(fd);
	if (!ret && strncmp(line, "ok resumed ", 11))
		ret = agent_error(line, rep);
	if (ret)
		return ret;
	if (rnr_agent_reply_str(line, "by", rep->by, sizeof(rep->by)))
		snprintf(rep->by, sizeof(rep->by), "?");
	rep->resume_ms = num(line, "resume_ms");
	rep->held_ms = num(line, "held_ms");
	rep->withheld = num(line, "withheld");
	rep->post_errors = num(line, "post_errors");
	rep->rnr_timer_after = num(line, "rnr_timer");
	return rep->post_errors ? -EIO : 0;
}

enum { OPT_AGENT = 300, OPT_MAX, OPT_FOR };

static const struct option agent_opts[] = {
	{ "agent",	required_argument, NULL, OPT_AGENT },
	{ "max-ms",	required_argument, NULL, OPT_MAX },
	{ "lease",	required_argument, NULL, OPT_MAX },
	{ "for",	required_argument, NULL, OPT_FOR },
	{ NULL, 0, NULL, 0 }
};

static int ms_arg(const char *s, long *v)
{
	if (quiesce_parse_ms(s, v)) {
		fprintf(stderr, "hbamig: quiesce: bad duration \"%s\" (0..%d ms)\n",
			s, QUIESCE_LEASE_MAX_MS);
		return -1;
	}
	return 0;
}

static void print_resumed(const char *path, long max_ms,
			  const struct quiesce_rnr_agent_report *r, int sig,
			  uint64_t t_resume, bool json)
{
	if (json) {
		printf("{\"event\":\"resumed\",\"kind\":\"rnr\",\"agent\":");
		quiesce_json_str(path);
		printf(",\"lease_ms\":%ld,\"pause_ms\":%.3f,\"held_ms\":%.3f,\"resume_ms\":%.3f,\"resume_rtt_ms\":%.3f,\"by\":",
		       max_ms, r->pause_ms, r->held_ms, r->resume_ms,
		       r->resume_rtt_ms);
		quiesce_json_str(r->by);
		printf(",\"withheld\":%ld,\"post_errors\":%ld,\"rnr_timer\":%d,\"signal\":%d,\"at_ms\":%.3f}\n",
		       r->withheld, r->post_errors, r->rnr_timer_after,
		       sig, t_resume / 1e6);
	} else {
		printf("resumed (by %s) in %.3f ms after %.1f ms: %ld receive%s withheld and posted, %ld failed\n",
		       r->by, r->resume_ms, r->held_ms, r->withheld,
		       r->withheld == 1 ? "" : "s", r->post_errors);
	}
}

int quiesce_rnr_agent_main(int argc, char **argv, bool json)
{
	struct quiesce_rnr_agent_report r;
	long max_ms = 0, for_ms = -1;
	const char *path = NULL;
	uint64_t t_paused, t_resume;
	int c, fd, err, sig;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", agent_opts, NULL)) != -1) {
		switch (c) {
		case OPT_AGENT:
			path = optarg;
			break;
		case OPT_MAX:
			if (ms_arg(optarg, &max_ms))
				return QUIESCE_EXIT_USAGE;
			break;
		case OPT_FOR:
			if (ms_arg(optarg, &for_ms))
				return QUIESCE_EXIT_USAGE;
			break;
		default:
			goto usage;
		}
	}
	if (!path || optind != argc)
		goto usage;
	if (!max_ms)
		max_ms = for_ms > 0 ? for_ms + 1000 : QUIESCE_LEASE_DEF_MS;
	if (max_ms > QUIESCE_LEASE_MAX_MS)
		max_ms = QUIESCE_LEASE_MAX_MS;
	if (for_ms > max_ms) {
		fprintf(stderr, "hbamig: quiesce: --for %ld exceeds the lease %ld ms\n",
			for_ms, max_ms);
		return QUIESCE_EXIT_USAGE;
	}

	quiesce_block_signals();
	quiesce_ignore_sigpipe();
	err = quiesce_rnr_agent_pause(path, max_ms, &fd, &r);
	if (err) {
		if (err == -ERANGE) {
			fprintf(stderr, "hbamig: quiesce: rnr: refused by the agent at %s: %s\n",
				path, r.msg);
			return QUIESCE_EXIT_BUDGET;
		}
		fprintf(stderr, "hbamig: quiesce: rnr: agent %s: %s\n", path,
			r.msg[0] ? r.msg : strerror(-err));
		if (err == -ENOENT || err == -ECONNREFUSED)
			return QUIESCE_EXIT_NOTFOUND;
		if (err == -EACCES || err == -EPERM)
			return QUIESCE_EXIT_PERM;
		if (err == -EBUSY)
			return HBAMIG_EXIT_BUSY;
		return QUIESCE_EXIT_FAIL;
	}
	if (!r.qps)
		fprintf(stderr, "hbamig: quiesce: rnr: warning: the agent at %s has no queue pair registered: nothing is paused\n",
			path);
	t_paused = quiesce_now_ns();
	if (json) {
		printf("{\"event\":\"paused\",\"kind\":\"rnr\",\"agent\":");
		quiesce_json_str(path);
		printf(",\"lease_ms\":%ld,\"pause_ms\":%.3f,\"rtt_ms\":%.3f,\"qps\":%ld,\"owner_max_ms\":%ld,\"rnr_timer\":%d,\"at_ms\":%.3f}\n",
		       max_ms, r.pause_ms, r.rtt_ms, r.qps, r.max_ms,
		       r.rnr_timer, t_paused / 1e6);
	} else {
		printf("paused %ld queue pair%s of the agent at %s in %.3f ms (round trip %.3f ms), lease %ld ms\n",
		       r.qps, r.qps == 1 ? "" : "s", path, r.pause_ms, r.rtt_ms,
		       max_ms);
	}
	fflush(stdout);

	sig = quiesce_hold(for_ms >= 0 ? for_ms : max_ms);
	t_resume = quiesce_now_ns();
	err = quiesce_rnr_agent_resume(fd, &r);
	if (err && err != -EIO) {
		fprintf(stderr, "hbamig: quiesce: rnr: resume at %s: %s\n",
			path, r.msg[0] ? r.msg : strerror(-err));
		return QUIESCE_EXIT_FAIL;
	}
	print_resumed(path, max_ms, &r, sig, t_resume, json);
	if (err)
		fprintf(stderr, "hbamig: quiesce: rnr: %ld withheld receives could not be posted (QP no longer ready?)\n",
			r.post_errors);
	return err ? QUIESCE_EXIT_FAIL : QUIESCE_EXIT_OK;
usage:
	fprintf(stderr,
		"Usage: hbamig quiesce rnr --agent SOCKET [--max-ms MS] [--for MS]\n");
	return QUIESCE_EXIT_USAGE;
}
