// SPDX-License-Identifier: GPL-2.0-only
/* "hbamig quiesce tcp|conns|budget": command line of the TCP quiescer. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>

#include "quiesce.h"

#define MAX_CONNS	64

struct tcp_args {
	struct quiesce_selection	sel;
	const char			*dev;
	long				for_ms;		/* -1: until a signal */
	long				lease_ms;	/* 0: default */
	bool				extend;
	long				interval_ms;	/* conns: sample period */
	long				count;
	const char			*fwd_dev;	/* forwarded: guest side */
	long				learn_ms;
};

enum {
	OPT_NVME = 256, OPT_ISCSI, OPT_CONN, OPT_DEV, OPT_FOR, OPT_LEASE,
	OPT_EXTEND, OPT_INTERVAL, OPT_COUNT, OPT_FORWARDED, OPT_LEARN,
};

static const struct option tcp_opts[] = {
	{ "nvme-tcp",		required_argument, NULL, OPT_NVME },
	{ "iscsi",		required_argument, NULL, OPT_ISCSI },
	{ "conn",		required_argument, NULL, OPT_CONN },
	{ "dev",		required_argument, NULL, OPT_DEV },
	{ "for",		required_argument, NULL, OPT_FOR },
	{ "lease",		required_argument, NULL, OPT_LEASE },
	{ "extend-timers",	no_argument,	   NULL, OPT_EXTEND },
	{ "interval",		required_argument, NULL, OPT_INTERVAL },
	{ "count",		required_argument, NULL, OPT_COUNT },
	{ "forwarded",		required_argument, NULL, OPT_FORWARDED },
	{ "learn",		required_argument, NULL, OPT_LEARN },
	{ NULL, 0, NULL, 0 }
};

static int parse_tcp_args(int argc, char **argv, struct tcp_args *a)
{
	int c;

	memset(a, 0, sizeof(*a));
	a->for_ms = -1;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", tcp_opts, NULL)) != -1) {
		switch (c) {
		case OPT_NVME:
			quiesce_sel_add_nvme(&a->sel, optarg);
			break;
		case OPT_ISCSI:
			quiesce_sel_add_iscsi(&a->sel, optarg);
			break;
		case OPT_CONN:
			if (quiesce_sel_parse_conn(&a->sel, optarg)) {
				fprintf(stderr,
					"hbamig: quiesce: bad --conn \"%s\"\n",
					optarg);
				return QUIESCE_EXIT_USAGE;
			}
			break;
		case OPT_DEV:
			a->dev = optarg;
			break;
		case OPT_FOR:
			if (quiesce_parse_ms(optarg, &a->for_ms))
				goto range;
			break;
		case OPT_LEASE:
			if (quiesce_parse_ms(optarg, &a->lease_ms) || !a->lease_ms)
				goto range;
			break;
		case OPT_EXTEND:
			a->extend = true;
			break;
		case OPT_INTERVAL:
			if (quiesce_parse_ms(optarg, &a->interval_ms))
				goto range;
			break;
		case OPT_COUNT:
			a->count = atol(optarg);
			break;
		case OPT_FORWARDED:
			a->fwd_dev = optarg;
			break;
		case OPT_LEARN:
			if (quiesce_parse_ms(optarg, &a->learn_ms))
				goto range;
			break;
		default:
			return QUIESCE_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "hbamig: quiesce: unexpected \"%s\"\n",
			argv[optind]);
		return QUIESCE_EXIT_USAGE;
	}
	if (a->fwd_dev && (a->sel.nr_nvme || a->sel.nr_iscsi || !a->sel.nr ||
			   !a->dev)) {
		fprintf(stderr,
			"hbamig: quiesce: --forwarded takes the connections with --conn (LOCAL is the guest's end, \"*\" for any) and the interface towards the peers with --dev\n");
		return QUIESCE_EXIT_USAGE;
	}
	if (a->learn_ms && !a->fwd_dev) {
		fprintf(stderr, "hbamig: quiesce: --learn needs --forwarded\n");
		return QUIESCE_EXIT_USAGE;
	}
	if (!a->lease_ms)
		a->lease_ms = a->for_ms >= 0 ? a->for_ms + 1000 :
					       QUIESCE_LEASE_DEF_MS;
	if (a->lease_ms > QUIESCE_LEASE_MAX_MS)
		a->lease_ms = QUIESCE_LEASE_MAX_MS;
	if (a->for_ms > a->lease_ms) {
		fprintf(stderr, "hbamig: quiesce: --for %ld exceeds the lease %ld ms\n",
			a->for_ms, a->lease_ms);
		return QUIESCE_EXIT_USAGE;
	}
	return 0;
range:
	fprintf(stderr, "hbamig: quiesce: bad duration \"%s\" (0..%d ms)\n",
		optarg, QUIESCE_LEASE_MAX_MS);
	return QUIESCE_EXIT_USAGE;
}

static int find(struct tcp_args *a, struct quiesce_conn *conns)
{
	int n;

	if (!a->sel.nr) {
		if (a->sel.nr_nvme || a->sel.nr_iscsi)
			fprintf(stderr,
				"hbamig: quiesce: no TCP session found for the target\n");
		else
			fprintf(stderr,
				"hbamig: quiesce: select connections with --nvme-tcp, --iscsi or --conn\n");
		return -ENOENT;
	}
	n = quiesce_conns_find(&a->sel, conns, MAX_CONNS);
	if (n < 0) {
		fprintf(stderr, "hbamig: quiesce: sock_diag: %s\n",
			strerror(-n));
		return n;
	}
	if (!n) {
		fprintf(stderr,
			"hbamig: quiesce: no established connection matches\n");
		return -ENOENT;
	}
	return n;
}

static void print_conn_json(const struct quiesce_conn *c)
{
	char l[64], r[64];

	quiesce_conn_str(c, true, l, sizeof(l));
	quiesce_conn_str(c, false, r, sizeof(r));
	printf("{\"local\":\"%s\",\"remote\":\"%s\",\"origin\":", l, r);
	quiesce_json_str(c->origin);
	printf(",\"snd_wnd\":%u,\"rcv_wnd\":%u,\"bytes_received\":%llu,\"bytes_acked\":%llu,\"rtt_us\":%u,\"probes\":%u,\"backoff\":%u}",
	       c->snd_wnd, c->rcv_wnd, (unsigned long long)c->bytes_received,
	       (unsigned long long)c->bytes_acked, c->rtt_us, c->probes,
	       c->backoff);
}

static int conns_sample(struct tcp_args *a, bool json, bool stamped)
{
	struct quiesce_conn conns[MAX_CONNS];
	int i, n;

	n = find(a, conns);
	if (n < 0)
		return n;
	if (stamped)
		printf("{\"at_ms\":%.3f,\"conns\":", quiesce_now_ns() / 1e6);
	if (json)
		printf("[");
	for (i = 0; i < n; i++) {
		const struct quiesce_conn *c = &conns[i];
		char l[64], r[64];

		if (json) {
			printf(i ? "," : "");
			print_conn_json(c);
			continue;
		}
		quiesce_conn_str(c, true, l, sizeof(l));
		quiesce_conn_str(c, false, r, sizeof(r));
		printf("%s %s (%s) snd_wnd %u rcv_wnd %u bytes_received %llu bytes_acked %llu rtt %u us probes %u backoff %u\n",
		       l, r, c->origin, c->snd_wnd, c->rcv_wnd,
		       (unsigned long long)c->bytes_received,
		       (unsigned long long)c->bytes_acked, c->rtt_us,
		       c->probes, c->backoff);
	}
	if (json)
		printf("]");
	if (stamped)
		printf("}");
	if (json)
		printf("\n");
	fflush(stdout);
	return 0;
}

int quiesce_conns_main(int argc, char **argv, bool json)
{
	struct tcp_args a;
	long i;
	int ret;

	ret = parse_tcp_args(argc, argv, &a);
	if (ret)
		return ret;
	if (!a.interval_ms) {
		ret = conns_sample(&a, json, false);
		if (ret < 0)
			return ret == -ENOENT ? QUIESCE_EXIT_NOTFOUND :
						QUIESCE_EXIT_FAIL;
		return QUIESCE_EXIT_OK;
	}
	/* Periodic samples, one JSON line each, timed on CLOCK_MONOTONIC. */
	for (i = 0; !a.count || i < a.count; i++) {
		uint64_t t0 = quiesce_now_ns();

		conns_sample(&a, true, true);
		while (quiesce_ms_since(t0) < a.interval_ms)
			usleep(1000);
	}
	return QUIESCE_EXIT_OK;
}

static void print_budget(const struct quiesce_budget *b, bool json)
{
	const struct quiesce_timer *m = quiesce_budget_min(b);
	int i;

	if (!json) {
		for (i = 0; i < b->nr; i++)
			printf("timer %s %ld ms%s%s\n", b->t[i].name,
			       b->t[i].budget_ms,
			       b->t[i].extendable ? " extendable" : "",
			       &b->t[i] == m ? " (limits the pause)" : "");
		return;
	}
	printf("\"budget_ms\":%ld,\"timers\":[", m ? m->budget_ms : -1L);
	for (i = 0; i < b->nr; i++) {
		printf(i ? "," : "");
		printf("{\"name\":");
		quiesce_json_str(b->t[i].name);
		printf(",\"path\":");
		quiesce_json_str(b->t[i].path);
		printf(",\"ms\":%ld,\"extendable\":%s}", b->t[i].budget_ms,
		       b->t[i].extendable ? "true" : "false");
	}
	printf("]");
}

int quiesce_budget_main(int argc, char **argv, bool json)
{
	struct quiesce_budget b;
	struct tcp_args a;
	int ret;

	ret = parse_tcp_args(argc, argv, &a);
	if (ret)
		return ret;
	quiesce_budget_collect(&a.sel, NULL, 0, &b);
	if (json) {
		printf("{");
		print_budget(&b, true);
		printf("}\n");
	} else {
		print_budget(&b, false);
	}
	return QUIESCE_EXIT_OK;
}

/* Refuse (or extend) when a session timer is shorter than the lease. */
static int check_budget(struct tcp_args *a, struct quiesce_budget *b)
{
	const struct quiesce_timer *m;
	int err;

	quiesce_budget_collect(&a->sel, NULL, 0, b);
	m = quiesce_budget_min(b);
	if (!m || m->budget_ms > a->lease_ms)
		return 0;
	if (a->extend) {
		err = quiesce_budget_extend(b, a->lease_ms, &m);
		if (!err)
			return 0;
		if (err == -EPERM)
			fprintf(stderr,
				"hbamig: quiesce: refused: lease %ld ms exceeds %s (%ld ms), which cannot be raised on a live session (set at connect/login)\n",
				a->lease_ms, m->name, m->budget_ms);
		else
			fprintf(stderr,
				"hbamig: quiesce: refused: lease %ld ms exceeds %s (%ld ms) and raising it failed: %s\n",
				a->lease_ms, m->name, m->budget_ms,
				strerror(-err));
		return QUIESCE_EXIT_BUDGET;
	}
	fprintf(stderr,
		"hbamig: quiesce: refused: lease %ld ms exceeds %s (%ld ms at %s); shorten --lease/--for or use --extend-timers\n",
		a->lease_ms, m->name, m->budget_ms, m->path);
	return QUIESCE_EXIT_BUDGET;
}

static void print_tcp_conns(struct quiesce_tcp *q, bool json)
{
	const struct quiesce_conn *c;
	int i, n = quiesce_tcp_conns(q, &c);

	for (i = 0; i < n; i++) {
		char l[64], r[64];

		quiesce_conn_str(&c[i], true, l, sizeof(l));
		quiesce_conn_str(&c[i], false, r, sizeof(r));
		if (json) {
			printf("%s{\"local\":\"%s\",\"remote\":\"%s\",\"origin\":",
			       i ? "," : "", l, r);
			quiesce_json_str(c[i].origin);
			printf(",\"zeroed\":%llu}",
			       (unsigned long long)quiesce_tcp_zeroed(q, i));
		} else {
			printf("  %s -> %s (%s): %llu segments zeroed\n", l, r,
			       c[i].origin,
			       (unsigned long long)quiesce_tcp_zeroed(q, i));
		}
	}
}

/*
 * A guest's connections through this host: learned for --learn ms (and on
 * through the pause), paused on --dev, kicked through --forwarded. No
 * timer of this host limits them; the guest's own are its business.
 */
static int tcp_forwarded(struct tcp_args *a, bool json)
{
	struct quiesce_tcp_report rep = {};
	struct quiesce_tcp *q;
	uint64_t t0, t_paused, t_resume;
	double held_ms;
	int err, sig;

	t0 = quiesce_now_ns();
	err = quiesce_tcp_prepare_fwd(a->dev, a->fwd_dev, a->sel.sel,
				      a->sel.nr, a->lease_ms, &q);
	if (err) {
		fprintf(stderr, "hbamig: quiesce: forwarded pause on %s via %s: %s\n",
			a->dev, a->fwd_dev, strerror(-err));
		return err == -EPERM || err == -EACCES ? QUIESCE_EXIT_PERM :
			err == -ENODEV ? QUIESCE_EXIT_NOTFOUND :
					 QUIESCE_EXIT_FAIL;
	}
	quiesce_block_signals();
	if (a->learn_ms && quiesce_hold(a->learn_ms)) {
		quiesce_tcp_free(q);
		return QUIESCE_EXIT_FAIL;
	}
	rep.prepare_ms = quiesce_ms_since(t0);
	err = quiesce_tcp_activate(q, &rep);
	if (err) {
		fprintf(stderr, "hbamig: quiesce: pause on %s failed: %s\n",
			a->dev, strerror(-err));
		quiesce_tcp_free(q);
		return QUIESCE_EXIT_FAIL;
	}
	t_paused = quiesce_now_ns();
	if (json)
		printf("{\"event\":\"paused\",\"kind\":\"tcp\",\"forwarded\":true,\"dev\":\"%s\",\"lease_ms\":%ld,\"prepare_ms\":%.3f,\"pause_ms\":%.3f,\"connections\":%d,\"confirmed\":%d,\"at_ms\":%.3f}\n",
		       a->dev, a->lease_ms, rep.prepare_ms, rep.pause_ms,
		       rep.nr, rep.confirmed, t_paused / 1e6);
	else
		printf("paused %d forwarded connection%s on %s in %.3f ms (%d confirmed), lease %ld ms\n",
		       rep.nr, rep.nr == 1 ? "" : "s", a->dev, rep.pause_ms,
		       rep.confirmed, a->lease_ms);
	fflush(stdout);
	sig = quiesce_hold(a->for_ms >= 0 ? a->for_ms : a->lease_ms);
	held_ms = quiesce_ms_since(t_paused);
	t_resume = quiesce_now_ns();
	quiesce_tcp_resume(q, &rep);
	if (json) {
		printf("{\"event\":\"resumed\",\"kind\":\"tcp\",\"forwarded\":true,\"dev\":\"%s\",\"lease_ms\":%ld,\"pause_ms\":%.3f,\"held_ms\":%.3f,\"resume_ms\":%.3f,\"signal\":%d,\"reopened\":%d,\"at_ms\":%.3f,\"connections\":[",
		       a->dev, a->lease_ms, rep.pause_ms, held_ms,
		       rep.resume_ms, sig, rep.reopened, t_resume / 1e6);
		print_tcp_conns(q, true);
		printf("]}\n");
	} else {
		print_tcp_conns(q, false);
		printf("resumed after %.1f ms: %d of %d window updates seen leaving %s (the others' guests are idle, or no longer behind this host)\n",
		       held_ms, rep.reopened, rep.nr, a->dev);
	}
	quiesce_tcp_free(q);
	if (rep.kick_err)
		fprintf(stderr, "hbamig: quiesce: could not send a frame through %s: %s\n",
			a->fwd_dev, strerror(-rep.kick_err));
	if (!rep.nr)
		fprintf(stderr, "hbamig: quiesce: no forwarded connection matched: nothing was paused\n");
	return rep.nr ? QUIESCE_EXIT_OK : QUIESCE_EXIT_NOTFOUND;
}

int quiesce_tcp_main(int argc, char **argv, bool json)
{
	struct quiesce_conn conns[MAX_CONNS];
	struct quiesce_tcp_report rep;
	struct quiesce_budget b;
	struct quiesce_tcp *q;
	struct tcp_args a;
	char oif[IF_NAMESIZE] = "", oif2[IF_NAMESIZE];
	uint64_t t_paused, t_resume;
	double held_ms;
	int i, n, ret, err, sig;

	ret = parse_tcp_args(argc, argv, &a);
	if (ret)
		return ret;
	if (a.fwd_dev)
		return tcp_forwarded(&a, json);
	n = find(&a, conns);
	if (n < 0)
		return n == -ENOENT ? QUIESCE_EXIT_NOTFOUND : QUIESCE_EXIT_FAIL;
	if (!a.dev) {
		/* One program sees one interface: all must leave through it. */
		for (i = 0; i < n; i++) {
			err = quiesce_conn_oif(&conns[i], i ? oif2 : oif);
			if (err || (i && strcmp(oif, oif2))) {
				fprintf(stderr,
					"hbamig: quiesce: %s: give --dev IFNAME, the interface the connections leave through\n",
					err ? "no route found" :
					      "connections leave through different interfaces");
				return QUIESCE_EXIT_USAGE;
			}
		}
		a.dev = oif;
	}
	ret = check_budget(&a, &b);
	if (ret)
		return ret;

	quiesce_block_signals();
	err = quiesce_tcp_pause(a.dev, conns, n, a.lease_ms, &q, &rep);
	if (err) {
		fprintf(stderr, "hbamig: quiesce: pause on %s failed: %s\n",
			a.dev, strerror(-err));
		quiesce_budget_restore(&b);
		return err == -EPERM || err == -EACCES ? QUIESCE_EXIT_PERM :
							 QUIESCE_EXIT_FAIL;
	}
	t_paused = quiesce_now_ns();
	if (json) {
		printf("{\"event\":\"paused\",\"kind\":\"tcp\",\"dev\":");
		quiesce_json_str(a.dev);
		printf(",\"lease_ms\":%ld,\"prepare_ms\":%.3f,\"pause_ms\":%.3f,\"connections\":%d,\"confirmed\":%d,\"at_ms\":%.3f}\n",
		       a.lease_ms, rep.prepare_ms, rep.pause_ms, rep.nr,
		       rep.confirmed, t_paused / 1e6);
	} else {
		printf("paused %d connection%s on %s in %.3f ms (%d confirmed; loading took %.3f ms), lease %ld ms\n",
		       rep.nr, rep.nr == 1 ? "" : "s", a.dev, rep.pause_ms,
		       rep.confirmed, rep.prepare_ms, a.lease_ms);
	}
	fflush(stdout);

	sig = quiesce_hold(a.for_ms >= 0 ? a.for_ms : a.lease_ms);
	held_ms = quiesce_ms_since(t_paused);
	t_resume = quiesce_now_ns();
	err = quiesce_tcp_resume(q, &rep);
	quiesce_budget_restore(&b);

	if (json) {
		printf("{\"event\":\"resumed\",\"kind\":\"tcp\",\"dev\":");
		quiesce_json_str(a.dev);
		printf(",\"lease_ms\":%ld,\"prepare_ms\":%.3f,\"pause_ms\":%.3f,\"held_ms\":%.3f,\"resume_ms\":%.3f,\"signal\":%d,\"reopened\":%d,\"at_ms\":%.3f,",
		       a.lease_ms, rep.prepare_ms, rep.pause_ms, held_ms,
		       rep.resume_ms, sig, rep.reopened, t_resume / 1e6);
		print_budget(&b, true);
		printf(",\"connections\":[");
		print_tcp_conns(q, true);
		printf("]}\n");
	} else {
		print_tcp_conns(q, false);
		printf("resumed %d connection%s in %.3f ms after %.1f ms (pause took %.3f ms)\n",
		       rep.reopened, rep.reopened == 1 ? "" : "s",
		       rep.resume_ms, held_ms, rep.pause_ms);
	}
	quiesce_tcp_free(q);
	if (rep.kick_err)
		fprintf(stderr,
			"hbamig: quiesce: could not loop a segment back to draw an ACK: %s (is lo up?)\n",
			strerror(-rep.kick_err));
	if (err)
		fprintf(stderr,
			"hbamig: quiesce: not every window update was seen leaving %s\n",
			a.dev);
	return err ? QUIESCE_EXIT_FAIL : QUIESCE_EXIT_OK;
}
