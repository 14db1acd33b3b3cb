// SPDX-License-Identifier: GPL-2.0-only
/*
 * Timer budget: a zero window stops the peer's replies too, so every
 * keep-alive or command timer that waits for the peer keeps running during
 * the pause. The shortest one bounds the pause; --extend-timers raises the
 * ones that can be changed on a live session and restores them afterwards.
 */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>

#include "quiesce.h"

/*
 * The part of the kernel's struct iscsi_uevent (include/scsi/iscsi_if.h,
 * not exported as uapi) that ISCSI_UEVENT_SET_PARAM uses: 56 bytes, then
 * the value as a NUL-terminated string.
 */
#define QUIESCE_NETLINK_ISCSI		8
#define QUIESCE_ISCSI_UEVENT_SET_PARAM	16
#define QUIESCE_ISCSI_PARAM_PING_TMO	30

struct quiesce_iscsi_uevent {
	uint32_t	type;
	uint32_t	iferror;
	uint64_t	transport_handle;
	uint32_t	sid;		/* u.set_param */
	uint32_t	cid;
	uint32_t	param;
	uint32_t	len;
	uint8_t		u_rest[8];
	uint8_t		r[16];
};

/* Headroom added when a timer is raised, over the lease it must cover. */
#define QUIESCE_EXTEND_SLACK_MS	5000

static struct quiesce_timer *add(struct quiesce_budget *b, const char *name,
				 const char *path, long value, long scale_ms,
				 bool extendable)
{
	struct quiesce_timer *t;

	if (b->nr >= QUIESCE_MAX_TIMERS)
		return NULL;
	t = &b->t[b->nr++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	snprintf(t->path, sizeof(t->path), "%s", path);
	t->value = value;
	t->scale_ms = scale_ms;
	t->budget_ms = value * scale_ms;
	t->extendable = extendable;
	return t;
}

static int read_long(const char *path, long *v)
{
	char buf[64], *end;
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	*v = strtol(buf, &end, 10);
	return end == buf ? -EINVAL : 0;
}

static int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	int ret = 0;

	if (!f)
		return -errno;
	if (fprintf(f, "%ld\n", v) < 0)
		ret = -EIO;
	if (fclose(f))
		ret = -errno;
	return ret;
}

/*
 * open-iscsi exposes noop_out_timeout read-only in sysfs, but the kernel
 * takes a new value on a live connection through the same netlink message
 * iscsid uses at login.
 */
static int iscsi_set_param(const struct quiesce_timer *t, long v)
{
	struct {
		struct nlmsghdr			nlh;
		struct quiesce_iscsi_uevent	ev;
		char				val[24];
	} m = {};
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	char buf[256] __aligned(8);
	unsigned long long handle;
	ssize_t n;
	int fd, ret;
	FILE *f;

	/* A kernel pointer printed as %llu: beyond the range of a long. */
	f = fopen("/sys/class/iscsi_transport/tcp/handle", "r");
	if (!f)
		return -ENOENT;
	ret = fscanf(f, "%llu", &handle);
	fclose(f);
	if (ret != 1)
		return -EINVAL;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
		    QUIESCE_NETLINK_ISCSI);
	if (fd < 0)
		return -errno;
	snprintf(m.val, sizeof(m.val), "%ld", v);
	m.ev.type = QUIESCE_ISCSI_UEVENT_SET_PARAM;
	m.ev.transport_handle = handle;
	m.ev.sid = t->iscsi_sid;
	m.ev.cid = t->iscsi_cid;
	m.ev.param = t->iscsi_param;
	m.ev.len = strlen(m.val) + 1;
	m.nlh.nlmsg_len = NLMSG_LENGTH(sizeof(m.ev) + m.ev.len);
	m.nlh.nlmsg_type = QUIESCE_ISCSI_UEVENT_SET_PARAM;
	m.nlh.nlmsg_flags = NLM_F_REQUEST;
	if (sendto(fd, &m, m.nlh.nlmsg_len, 0, (struct sockaddr *)&sa,
		   sizeof(sa)) < 0) {
		ret = -errno;
		goto out;
	}
	/* The reply is the event echoed back, its iferror the result. */
	n = recv(fd, buf, sizeof(buf), 0);
	ret = -EIO;
	if (n >= (ssize_t)NLMSG_LENGTH(sizeof(m.ev))) {
		struct quiesce_iscsi_uevent *ev = NLMSG_DATA((void *)buf);
		int e = (int)ev->iferror;

		ret = e > -4096 && e <= 0 ? e : -EIO;
	}
out:
	close(fd);
	return ret;
}

static int timer_write(const struct quiesce_timer *t, long v)
{
	if (t->iscsi_param)
		return iscsi_set_param(t, v);
	return write_long(t->path, v);
}

/*
 * Every file matching @pattern holding a timer in units of @scale_ms, named
 * "@what COMPONENT @label" after the path component just before @marker.
 */
static void add_glob(struct quiesce_budget *b, const char *pattern,
		     const char *what, const char *marker, const char *label,
		     long scale_ms, bool extendable)
{
	glob_t g;
	size_t i;

	if (glob(pattern, 0, NULL, &g))
		return;
	for (i = 0; i < g.gl_pathc; i++) {
		char name[96], comp[64] = "?", *p = g.gl_pathv[i], *m, *c;
		long v;

		/* 0 disables these timers: they do not limit the pause. */
		if (read_long(p, &v) || !v)
			continue;
		m = strstr(p, marker);
		if (m) {
			for (c = m; c > p && c[-1] != '/'; c--)
				;
			snprintf(comp, sizeof(comp), "%.*s", (int)(m - c), c);
		}
		snprintf(name, sizeof(name), "%s %s %s", what, comp, label);
		add(b, name, p, v, scale_ms, extendable);
	}
	globfree(&g);
}

static void collect_nvme(struct quiesce_budget *b, const char *nqn)
{
	char pat[256], buf[256], dir[128];
	glob_t g;
	size_t i;

	if (glob("/sys/class/nvme/nvme*", 0, NULL, &g))
		return;
	for (i = 0; i < g.gl_pathc; i++) {
		const char *ctrl = strrchr(g.gl_pathv[i], '/') + 1;
		long kato;

		snprintf(dir, sizeof(dir), "%s", g.gl_pathv[i]);
		if (quiesce_read_attr(dir, "subsysnqn", buf, sizeof(buf)) ||
		    strcmp(buf, nqn))
			continue;
		snprintf(pat, sizeof(pat), "%s/kato", dir);
		/*
		 * The host sends Keep Alive every kato/2; its completion is
		 * held back by the zero window, and the controller is reset
		 * when it is kato late. Negotiated at connect: not live.
		 */
		if (!read_long(pat, &kato) && kato) {
			snprintf(buf, sizeof(buf), "%s kato", ctrl);
			add(b, buf, pat, kato, 1000, false);
		}
		/* Commands in flight time out after io_timeout (ms). */
		snprintf(pat, sizeof(pat), "%s/nvme*/queue/io_timeout", dir);
		add_glob(b, pat, "namespace", "/queue/", "io_timeout", 1, true);
	}
	globfree(&g);
}

static void collect_iscsi(struct quiesce_budget *b, const char *iqn)
{
	char buf[512], dir[512], pat[300], name[96];
	glob_t g;
	size_t i;

	if (!glob("/sys/class/iscsi_session/session*", 0, NULL, &g)) {
		for (i = 0; i < g.gl_pathc; i++) {
			const char *sess = strrchr(g.gl_pathv[i], '/') + 1;
			long recv, ping;
			int sid;

			snprintf(dir, sizeof(dir), "%s", g.gl_pathv[i]);
			if (quiesce_read_attr(dir, "targetname", buf,
					      sizeof(buf)) || strcmp(buf, iqn))
				continue;
			if (sscanf(sess, "session%d", &sid) != 1)
				continue;
			/*
			 * open-iscsi sends a NOP-Out when nothing was received
			 * for noop_out_interval; the NOP-In answer is held back
			 * and the connection fails noop_out_timeout later. The
			 * worst case, a NOP-Out just sent, leaves the timeout.
			 */
			snprintf(pat, sizeof(pat),
				 "/sys/class/iscsi_connection/connection%d:0",
				 sid);
			snprintf(buf, sizeof(buf), "%s/recv_tmo", pat);
			snprintf(dir, sizeof(dir), "%s/ping_tmo", pat);
			if (!read_long(buf, &recv) && recv &&
			    !read_long(dir, &ping) && ping) {
				struct quiesce_timer *t;

				snprintf(name, sizeof(name),
					 "%s noop_out_timeout", sess);
				t = add(b, name, dir, ping, 1000, true);
				if (t) {
					t->iscsi_param =
						QUIESCE_ISCSI_PARAM_PING_TMO;
					t->iscsi_sid = sid;
					t->iscsi_cid = 0;
				}
			}
			/* SCSI command timeout of every LUN of the session. */
			snprintf(pat, sizeof(pat),
				 "%s/device/target*/*:*:*:*/timeout",
				 g.gl_pathv[i]);
			add_glob(b, pat, "scsi", "/timeout", "timeout", 1000,
				 true);
		}
		globfree(&g);
	}

	/*
	 * A local LIO target: it pings with NOP-In after nopin_timeout of
	 * silence and drops the connection when the answer is
	 * nopin_response_timeout late. Only explicit ACLs are configurable;
	 * demo-mode sessions use the built-in 15 s and 30 s.
	 */
	snprintf(pat, sizeof(pat),
		 "/sys/kernel/config/target/iscsi/%s/tpgt_*/acls/*/attrib/nopin_response_timeout",
		 iqn);
	add_glob(b, pat, "LIO ACL", "/attrib/", "nopin_response_timeout",
		 1000, true);
}

int quiesce_budget_collect(const struct quiesce_selection *s,
			   const struct quiesce_conn *conns, int nr,
			   struct quiesce_budget *b)
{
	int i;

	(void)conns;
	(void)nr;
	memset(b, 0, sizeof(*b));
	for (i = 0; i < s->nr_nvme; i++)
		collect_nvme(b, s->nvme_nqn[i]);
	for (i = 0; i < s->nr_iscsi; i++)
		collect_iscsi(b, s->iscsi_iqn[i]);
	return b->nr;
}

const struct quiesce_timer *quiesce_budget_min(const struct quiesce_budget *b)
{
	const struct quiesce_timer *m = NULL;
	int i;

	for (i = 0; i < b->nr; i++)
		if (!m || b->t[i].budget_ms < m->budget_ms)
			m = &b->t[i];
	return m;
}

/* Saved values live in a parallel array so restore needs no allocation. */
static long saved[QUIESCE_MAX_TIMERS];
static bool changed[QUIESCE_MAX_TIMERS];

int quiesce_budget_extend(struct quiesce_budget *b, long pause_ms,
			  const struct quiesce_timer **failed)
{
	int i, err;

	/* All or nothing: check for a fixed timer before changing any. */
	for (i = 0; i < b->nr; i++) {
		if (b->t[i].budget_ms <= pause_ms && !b->t[i].extendable) {
			*failed = &b->t[i];
			return -EPERM;
		}
	}
	for (i = 0; i < b->nr; i++) {
		struct quiesce_timer *t = &b->t[i];
		long want;

		if (t->budget_ms > pause_ms)
			continue;
		want = (pause_ms + QUIESCE_EXTEND_SLACK_MS + t->scale_ms - 1) /
		       t->scale_ms;
		err = timer_write(t, want);
		if (err) {
			*failed = t;
			quiesce_budget_restore(b);
			return err;
		}
		saved[i] = t->value;
		changed[i] = true;
		t->value = want;
		t->budget_ms = want * t->scale_ms;
	}
	return 0;
}

void quiesce_budget_restore(struct quiesce_budget *b)
{
	int i;

	for (i = 0; i < b->nr; i++) {
		if (!changed[i])
			continue;
		if (timer_write(&b->t[i], saved[i]))
			fprintf(stderr,
				"hbamig: quiesce: could not restore %s to %ld\n",
				b->t[i].path, saved[i]);
		b->t[i].value = saved[i];
		b->t[i].budget_ms = saved[i] * b->t[i].scale_ms;
		changed[i] = false;
	}
}
