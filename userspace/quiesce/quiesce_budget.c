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

#include "quiesce.h"

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
				snprintf(name, sizeof(name),
					 "%s noop_out_timeout", sess);
				add(b, name, dir, ping, 1000, false);
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
		err = write_long(t->path, want);
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
		if (write_long(b->t[i].path, saved[i]))
			fprintf(stderr,
				"hbamig: quiesce: could not restore %s to %ld\n",
				b->t[i].path, saved[i]);
		b->t[i].value = saved[i];
		b->t[i].budget_ms = saved[i] * b->t[i].scale_ms;
		changed[i] = false;
	}
}
