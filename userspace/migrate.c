// SPDX-License-Identifier: GPL-2.0-only
/*
 * hbamig migrate: the whole method for one VM. Check the source adapter
 * (and the destination's compatibility) before anything stops, quiesce
 * the fabric peers, switch the source adapter to emulated, have QEMU
 * migrate over QMP while watching it, resume the peers, confirm the
 * destination adapter is direct again, and report. Any failure after the
 * switch cancels the migration and brings the VM back to where it was: on
 * the source, running, its adapter asked back to direct.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/emuhba.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <json-c/json.h>

#include "hbamig.h"
#include "qmp.h"
#include "quiesce.h"
#include "storage.h"
#ifdef HBAMIG_HAVE_COMPAT
#include "compat.h"
#endif

#define MIG_MAX_PEERS		8
#define MIG_MAX_VFIO		16
#define MIG_PEER_ARGS		32
#define MIG_PEER_CONNS		64
#define MIG_QMP_TIMEOUT_MS	10000
#define MIG_POLL_MS		100
#define MIG_CANCEL_MS		30000
#define MIG_DEST_WAIT_MS	10000
#define MIG_DEF_TIMEOUT_S	600

static void migrate_usage(FILE *f)
{
	fprintf(f,
"Usage: hbamig [-j] migrate --qmp SOCKET --to URI [--dev BDF]\n"
"                  [--dest-dev BDF] [--dest-qmp SOCKET] [--peer PEER]...\n"
"                  [--timeout S] [--downtime-limit MS]\n"
"                  [--copy-storage TARGET]\n"
"PEER := \"tcp SELECTION [--dev IFNAME] [--extend-timers]\"\n"
"      | \"tcp --conn GUEST,PEER... --dev IFNAME --forwarded GUESTDEV\n"
"             [--netns PATH]\"\n"
"      | \"pfc --dev IFNAME { --prio P[,P...] | --link } [--quanta Q]\n"
"             [--refresh MS] [--speed MBPS]\"\n"
"SELECTION := { --nvme-tcp NQN | --iscsi TARGET | --conn LOCAL,REMOTE } ...\n"
"\n"
"Live-migrates the VM whose QMP monitor listens on SOCKET to URI (as QEMU's\n"
"\"migrate\" takes it, e.g. tcp:HOST:PORT), the destination QEMU waiting\n"
"with -incoming. The source adapter is --dev, or the one emuhba adapter\n"
"among the VM's vfio-pci devices; it must be in direct mode. Before anything\n"
"stops: the destination adapter --dest-dev is checked for compatibility,\n"
"the destination QEMU (--dest-qmp) must be waiting, QEMU must not block the\n"
"migration. Then: source adapter switched to emulated, migration with\n"
"progress once a second on a terminal; with peers, QEMU is held before\n"
"its switchover until RAM has gone once, the peers are paused (each a\n"
"lease, ended by --timeout or by hbamig's death) and QEMU let switch over,\n"
"so the pause spans the downtime; the destination VM awaited running,\n"
"peers resumed, the destination adapter confirmed direct, and a report\n"
"(total time, QEMU's downtime, switch times and share of downtime, device\n"
"state and RAM bytes, when the peers were paused).\n"
"On failure, timeout (--timeout, default %d s) or SIGINT/SIGTERM the\n"
"migration is cancelled, the VM keeps running on the source, the peers are\n"
"resumed and the source adapter is asked back to direct mode.\n"
"--copy-storage TARGET (as \"hbamig storage export\" prints it on the\n"
"destination): the source adapter's namespace is local and the\n"
"destination's empty; after the checks the adapter is switched to emulated\n"
"with a device-mapper mirror of its namespace and the remote one as backend,\n"
"the data is copied while the guest runs (progress once a second), and the\n"
"migration starts once both are in sync; QEMU pauses before the switchover\n"
"until the mirror is confirmed healthy and flushed. A failure (link, leg,\n"
"destination QEMU, signal) cancels it as above; the destination's namespace\n"
"content is then undefined. Not with --peer. --timeout counts from the end of\n"
"the copy.\n"
"Exit status: 0 migrated; 1 migration failed or cancelled (VM on the\n"
"source) or destination refused; 2 usage; 3 emuhba not loaded; 4 not\n"
"permitted; 5 no such socket or adapter (or the VM has none); 6 busy (a\n"
"migration in progress, adapter not direct, destination not waiting);\n"
"7 QEMU or the kernel cannot (migration blocked, switch not supported).\n",
		MIG_DEF_TIMEOUT_S);
}

/* ---- peers: the quiescers of userspace/quiesce, driven by a lease ---- */

enum { PEER_TCP = 1, PEER_PFC };

struct mig_peer {
	char *spec;		/* as given, for messages and the report */
	char *words;		/* spec split in place */
	int argc;
	char *argv[MIG_PEER_ARGS];
	int kind;
	const char *dev;
	/* tcp */
	struct quiesce_selection sel;
	bool extend;
	const char *fwd_dev;	/* a guest's connections, through this bridge */
	const char *netns;	/* network namespace of --dev (a file) */
	struct quiesce_conn conns[MIG_PEER_CONNS];
	int nr_conns;
	char oif[IF_NAMESIZE];
	struct quiesce_budget budget;
	bool budget_extended;
	struct quiesce_tcp *tcp;
	/* pfc */
	u8 prio_mask;
	bool link;
	long quanta, mbps;
	double refresh_us;
	struct quiesce_pfc_lease *pfc;
	/* state and report */
	bool paused;
	double pause_ms, resume_ms, held_ms;
	u64 paused_at;
	double paused_after_ms;	/* from "migrate" (<0: before it) */
	int resume_err;
	int reopened;
	u64 zeroed[MIG_PEER_CONNS];	/* forwarded: per learned connection */
	uint64_t seen, unmatched;	/* TCP segments the program saw */
};

struct mig_args {
	const char *qmp, *to, *dev, *dest_dev, *dest_qmp;
	struct mig_peer peers[MIG_MAX_PEERS];
	int nr_peers;
	long timeout_s;
	bool has_downtime;
	u32 downtime_ms;
	const char *copy_storage;	/* TARGET of --copy-storage */
};

static int peer_usage(const struct mig_peer *p, const char *why)
{
	return usage_error("migrate: --peer \"%s\": %s", p->spec, why);
}

static int parse_prios(const char *s, u8 *mask)
{
	char *end;
	long v;

	while (*s) {
		v = strtol(s, &end, 10);
		if (end == s || v < 0 || v > 7)
			return -EINVAL;
		*mask |= 1u << v;
		s = end;
		if (*s == ',')
			s++;
		else if (*s)
			return -EINVAL;
	}
	return *mask ? 0 : -EINVAL;
}

/* Split the spec into words and check it; nothing is looked up yet. */
static int peer_parse(struct mig_peer *p, const char *spec)
{
	char *w, *save = NULL, *end;
	int i;

	p->spec = strdup(spec);
	p->words = strdup(spec);
	if (!p->spec || !p->words)
		return fail(HBAMIG_EXIT_FAIL, "out of memory");
	for (w = strtok_r(p->words, " \t", &save); w;
	     w = strtok_r(NULL, " \t", &save)) {
		if (p->argc == MIG_PEER_ARGS)
			return peer_usage(p, "too many words");
		p->argv[p->argc++] = w;
	}
	if (!p->argc)
		return peer_usage(p, "empty");
	if (!strcmp(p->argv[0], "tcp"))
		p->kind = PEER_TCP;
	else if (!strcmp(p->argv[0], "pfc"))
		p->kind = PEER_PFC;
	else
		return peer_usage(p, "kind is not \"tcp\" or \"pfc\"");
	p->quanta = 0xffff;
	for (i = 1; i < p->argc; i++) {
		const char *k = p->argv[i];
		const char *v = i + 1 < p->argc ? p->argv[i + 1] : NULL;
		bool tcp = p->kind == PEER_TCP;

		if (!strcmp(k, "--extend-timers") && tcp) {
			p->extend = true;
			continue;
		}
		if (!strcmp(k, "--link") && !tcp) {
			p->link = true;
			continue;
		}
		if (!v)
			return peer_usage(p, "an option lacks its value");
		i++;
		if (!strcmp(k, "--dev")) {
			if (strlen(v) >= IF_NAMESIZE)
				return peer_usage(p, "interface name too long");
			p->dev = v;
		} else if (tcp && !strcmp(k, "--nvme-tcp")) {
			quiesce_sel_add_nvme(&p->sel, v);
		} else if (tcp && !strcmp(k, "--iscsi")) {
			quiesce_sel_add_iscsi(&p->sel, v);
		} else if (tcp && !strcmp(k, "--conn")) {
			if (quiesce_sel_parse_conn(&p->sel, v))
				return peer_usage(p, "bad --conn");
		} else if (tcp && !strcmp(k, "--netns")) {
			p->netns = v;
		} else if (tcp && !strcmp(k, "--forwarded")) {
			if (strlen(v) >= IF_NAMESIZE)
				return peer_usage(p, "interface name too long");
			p->fwd_dev = v;
		} else if (!tcp && !strcmp(k, "--prio")) {
			if (parse_prios(v, &p->prio_mask))
				return peer_usage(p, "bad --prio (0..7, comma separated)");
		} else if (!tcp && !strcmp(k, "--quanta")) {
			p->quanta = strtol(v, &end, 0);
			if (*end || p->quanta <= 0 || p->quanta > 0xffff)
				return peer_usage(p, "bad --quanta (1..65535)");
		} else if (!tcp && !strcmp(k, "--refresh")) {
			p->refresh_us = strtod(v, &end) * 1000;
			if (*end || !(p->refresh_us > 0))
				return peer_usage(p, "bad --refresh");
		} else if (!tcp && !strcmp(k, "--speed")) {
			p->mbps = strtol(v, &end, 10);
			if (*end || p->mbps <= 0)
				return peer_usage(p, "bad --speed");
		} else {
			return peer_usage(p, "unknown option");
		}
	}
	if (p->kind == PEER_TCP && !p->sel.nr && !p->sel.nr_nvme &&
	    !p->sel.nr_iscsi)
		return peer_usage(p, "select connections with --nvme-tcp, --iscsi or --conn");
	if (p->fwd_dev && (p->sel.nr_nvme || p->sel.nr_iscsi || !p->dev ||
			   p->extend))
		return peer_usage(p, "--forwarded takes --conn GUEST,PEER and --dev (the interface towards the peers) only");
	if (p->kind == PEER_PFC && (!p->dev || p->link == !!p->prio_mask))
		return peer_usage(p, "pfc needs --dev and one of --prio or --link");
	return 0;
}

static long link_mbps(const char *dev)
{
	char p[PATH_MAX], v[32];

	snprintf(p, sizeof(p), "/sys/class/net/%s/speed", dev);
	if (sysfs_read(p, v, sizeof(v)))
		return -1;
	return atol(v);
}

/*
 * Everything that may fail before the guest is touched: connections found,
 * session timers checked against the lease, BPF program loaded inactive.
 */
static int peer_prepare_here(struct mig_peer *p, long lease_ms)
{
	const struct quiesce_timer *m;
	double quanta_us;
	int err, i;

	if (p->kind == PEER_PFC) {
		if (!p->mbps)
			p->mbps = link_mbps(p->dev);
		if (p->mbps <= 0)
			return fail(HBAMIG_EXIT_USAGE,
				    "migrate: peer \"%s\": %s reports no link speed: add --speed MBPS",
				    p->spec, p->dev);
		quanta_us = quiesce_pfc_quanta_us(p->quanta, p->mbps);
		/* Half the quanta time: one late refresh is still in time. */
		if (!p->refresh_us)
			p->refresh_us = quanta_us / 2;
		if (p->refresh_us >= quanta_us)
			return fail(HBAMIG_EXIT_USAGE,
				    "migrate: peer \"%s\": refresh %.1f us is not shorter than the quanta time %.1f us",
				    p->spec, p->refresh_us, quanta_us);
		return 0;
	}
	if (p->fwd_dev) {
		/* A guest's sessions: learned from here on, no host timer. */
		err = quiesce_tcp_prepare_fwd(p->dev, p->fwd_dev, p->sel.sel,
					      p->sel.nr, lease_ms, &p->tcp);
		if (err)
			return fail(err == -EPERM || err == -EACCES ?
				    HBAMIG_EXIT_PERM : err == -ENODEV ?
				    HBAMIG_EXIT_NODEV : HBAMIG_EXIT_FAIL,
				    "migrate: peer \"%s\": cannot load the quiescer on %s for %s: %s",
				    p->spec, p->dev, p->fwd_dev, strerror(-err));
		return 0;
	}

	p->nr_conns = quiesce_conns_find(&p->sel, p->conns, MIG_PEER_CONNS);
	if (p->nr_conns < 0)
		return fail(HBAMIG_EXIT_FAIL, "migrate: peer \"%s\": sock_diag: %s",
			    p->spec, strerror(-p->nr_conns));
	if (!p->nr_conns)
		return fail(HBAMIG_EXIT_NODEV,
			    "migrate: peer \"%s\": no established connection matches",
			    p->spec);
	if (!p->dev) {
		char oif2[IF_NAMESIZE];

		/* One program sees one interface: all must leave through it. */
		for (i = 0; i < p->nr_conns; i++) {
			err = quiesce_conn_oif(&p->conns[i], i ? oif2 : p->oif);
			if (err || (i && strcmp(p->oif, oif2)))
				return fail(HBAMIG_EXIT_USAGE,
					    "migrate: peer \"%s\": %s: add --dev IFNAME",
					    p->spec, err ? "no route found" :
					    "connections leave through different interfaces");
		}
		p->dev = p->oif;
	}
	quiesce_budget_collect(&p->sel, p->conns, p->nr_conns, &p->budget);
	m = quiesce_budget_min(&p->budget);
	if (m && m->budget_ms <= lease_ms) {
		if (!p->extend)
			return fail(HBAMIG_EXIT_NOTSUPP,
				    "migrate: peer \"%s\": refused: the pause may last %ld ms (the lease, from --timeout) but %s allows %ld ms; lower --timeout or add --extend-timers",
				    p->spec, lease_ms, m->name, m->budget_ms);
		err = quiesce_budget_extend(&p->budget, lease_ms, &m);
		if (err)
			return fail(HBAMIG_EXIT_NOTSUPP,
				    "migrate: peer \"%s\": refused: %s (%ld ms) cannot be raised to %ld ms: %s",
				    p->spec, m->name, m->budget_ms, lease_ms,
				    strerror(-err));
		p->budget_extended = true;
	}
	err = quiesce_tcp_prepare(p->dev, p->conns, p->nr_conns, lease_ms,
				  &p->tcp);
	if (err)
		return fail(err == -EPERM || err == -EACCES ? HBAMIG_EXIT_PERM :
			    HBAMIG_EXIT_FAIL,
			    "migrate: peer \"%s\": cannot load the quiescer on %s: %s",
			    p->spec, p->dev, strerror(-err));
	return 0;
}

/*
 * With --netns, the sockets and the attachment are made in that network
 * namespace (where --dev lives) and keep it; hbamig itself goes back to
 * its own, where the emuhba family is.
 */
static int peer_prepare(struct mig_peer *p, long lease_ms)
{
	int self, there, ret;

	if (!p->netns)
		return peer_prepare_here(p, lease_ms);
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	there = open(p->netns, O_RDONLY | O_CLOEXEC);
	if (self < 0 || there < 0 || setns(there, CLONE_NEWNET)) {
		ret = fail(HBAMIG_EXIT_NODEV, "migrate: peer \"%s\": network namespace %s: %s",
			   p->spec, p->netns, strerror(errno));
		goto out;
	}
	ret = peer_prepare_here(p, lease_ms);
	if (setns(self, CLONE_NEWNET)) {
		fprintf(stderr, "%s: migrate: cannot return to the network namespace: %s\n",
			hba_prog, strerror(errno));
		exit(HBAMIG_EXIT_FAIL);
	}
out:
	if (self >= 0)
		close(self);
	if (there >= 0)
		close(there);
	return ret;
}

static int peer_pause(struct mig_peer *p, long lease_ms)
{
	struct quiesce_tcp_report rep;
	int err;

	if (p->kind == PEER_TCP) {
		memset(&rep, 0, sizeof(rep));
		err = quiesce_tcp_activate(p->tcp, &rep);
		p->pause_ms = rep.pause_ms;
	} else {
		err = quiesce_pfc_pause(p->dev, p->prio_mask,
					(uint16_t)p->quanta, p->refresh_us,
					lease_ms, &p->pfc, &p->pause_ms);
	}
	if (err)
		return fail(HBAMIG_EXIT_FAIL, "migrate: peer \"%s\": pause failed: %s",
			    p->spec, strerror(-err));
	p->paused = true;
	p->paused_at = quiesce_now_ns();
	return 0;
}

static void peer_resume(struct mig_peer *p)
{
	struct quiesce_tcp_report trep;
	struct quiesce_pfc_report prep;

	if (!p->paused)
		return;
	p->held_ms = quiesce_ms_since(p->paused_at);
	if (p->kind == PEER_TCP) {
		memset(&trep, 0, sizeof(trep));
		p->resume_err = quiesce_tcp_resume(p->tcp, &trep);
		p->resume_ms = trep.resume_ms;
		p->reopened = trep.reopened;
		if (p->fwd_dev) {
			const struct quiesce_conn *c;
			int n = quiesce_tcp_conns(p->tcp, &c);

			p->nr_conns = n < MIG_PEER_CONNS ? n : MIG_PEER_CONNS;
			memcpy(p->conns, c, p->nr_conns * sizeof(*c));
			for (int i = 0; i < p->nr_conns; i++)
				p->zeroed[i] = quiesce_tcp_zeroed(p->tcp, i);
			quiesce_tcp_counts(p->tcp, &p->seen, &p->unmatched);
		}
	} else {
		memset(&prep, 0, sizeof(prep));
		p->resume_err = quiesce_pfc_resume(p->pfc, &prep);
		p->resume_ms = prep.resume_ms;
		p->pfc = NULL;
	}
	p->paused = false;
	if (p->resume_err)
		fprintf(stderr, "%s: migrate: peer \"%s\": resume not confirmed: %s (the lease ends it anyway)\n",
			hba_prog, p->spec, strerror(-p->resume_err));
}

static void peer_free(struct mig_peer *p)
{
	if (p->tcp)
		quiesce_tcp_free(p->tcp);
	p->tcp = NULL;
	if (p->budget_extended)
		quiesce_budget_restore(&p->budget);
	p->budget_extended = false;
	free(p->spec);
	free(p->words);
}

/* ---- the adapters, over the emuhba genl family ---- */

struct mig_get {
	int count;
	struct hba_msg m;
};

static int mig_get_cb(const struct hba_msg *m, void *arg)
{
	struct mig_get *c = arg;

	if (m->cmd == EMUHBA_CMD_ADAPTER_GET || m->cmd == EMUHBA_CMD_SWITCH) {
		c->count++;
		c->m = *m;
	}
	return 0;
}

static int mig_adapter_get(struct hba_genl *g, const char *bdf,
			   struct hba_msg *m, struct hba_nlerr *err)
{
	struct mig_get c = { 0 };
	struct nl_msg *msg;
	int ret;

	msg = hba_genl_msg(g, EMUHBA_CMD_ADAPTER_GET, 0);
	if (!msg || nla_put_string(msg, EMUHBA_A_ADAPTER_BDF, bdf)) {
		nlmsg_free(msg);
		memset(err, 0, sizeof(*err));
		err->error = ENOMEM;
		return -ENOMEM;
	}
	ret = hba_genl_talk(g, msg, mig_get_cb, &c, err);
	if (!ret && !c.count) {
		err->error = ENODEV;
		ret = -ENODEV;
	}
	if (!ret)
		*m = c.m;
	return ret;
}

static int mig_switch(struct hba_genl *g, const char *bdf, u32 mode,
		      struct hba_msg *m, struct hba_nlerr *err)
{
	struct mig_get c = { 0 };
	struct nl_msg *msg;
	int ret;

	msg = hba_genl_msg(g, EMUHBA_CMD_SWITCH, 0);
	if (!msg || nla_put_string(msg, EMUHBA_A_ADAPTER_BDF, bdf) ||
	    nla_put_u32(msg, EMUHBA_A_ADAPTER_MODE, mode)) {
		nlmsg_free(msg);
		memset(err, 0, sizeof(*err));
		err->error = ENOMEM;
		return -ENOMEM;
	}
	ret = hba_genl_talk(g, msg, mig_get_cb, &c, err);
	if (!ret)
		*m = c.m;
	return ret;
}

static int mig_set_backend(struct hba_genl *g, const char *bdf,
			   const char *path, struct hba_nlerr *err)
{
	struct nl_msg *msg;

	msg = hba_genl_msg(g, EMUHBA_CMD_BACKEND_SET, 0);
	if (!msg || nla_put_string(msg, EMUHBA_A_ADAPTER_BDF, bdf) ||
	    nla_put_string(msg, EMUHBA_A_ADAPTER_BACKEND, path)) {
		nlmsg_free(msg);
		memset(err, 0, sizeof(*err));
		err->error = ENOMEM;
		return -ENOMEM;
	}
	return hba_genl_talk(g, msg, NULL, NULL, err);
}

/* ---- the VM's VFIO devices, from QOM ---- */

struct vm_vfio {
	int n;
	char bdf[MIG_MAX_VFIO][HBA_BDF_LEN];
	char path[MIG_MAX_VFIO][2 * QMP_STR_MAX];
};

struct qom_walk {
	const char *container;
	struct vm_vfio *v;
	char child[MIG_MAX_VFIO][QMP_STR_MAX];
	int n;
};

static int qom_child_cb(const char *name, const char *type, void *arg)
{
	struct qom_walk *w = arg;

	/* vfio-pci, or its variant QEMU uses when hotplug is off. */
	if (strcmp(type, "child<vfio-pci>") &&
	    strcmp(type, "child<vfio-pci-nohotplug>"))
		return 0;
	if (w->n < MIG_MAX_VFIO)
		snprintf(w->child[w->n++], QMP_STR_MAX, "%s", name);
	return 0;
}

/*
 * The PCI address of every vfio-pci device of the VM: its "host" property,
 * or the last component of "sysfsdev". -ENOENT when QOM has neither
 * container (a machine without devices).
 */
static int vm_find_vfio(struct qmp *q, struct vm_vfio *v)
{
	static const char *const containers[] = {
		"/machine/peripheral", "/machine/peripheral-anon",
	};
	struct json_object *ret, *args;
	struct qom_walk w;
	char val[QMP_STR_MAX], *s;
	int i, j, r, found = 0;

	memset(v, 0, sizeof(*v));
	for (i = 0; i < 2; i++) {
		memset(&w, 0, sizeof(w));
		w.container = containers[i];
		w.v = v;
		args = json_object_new_object();
		if (!args)
			return -ENOMEM;
		json_object_object_add(args, "path",
				       json_object_new_string(containers[i]));
		r = qmp_exec(q, "qom-list", args, &ret);
		if (r == -EREMOTEIO)
			continue;	/* no such container */
		if (r)
			return r;
		found++;
		r = qmp_parse_qom_list(ret, qom_child_cb, &w);
		json_object_put(ret);
		if (r)
			return r;
		for (j = 0; j < w.n && v->n < MIG_MAX_VFIO; j++) {
			char path[2 * QMP_STR_MAX];

			snprintf(path, sizeof(path), "%s/%s", containers[i],
				 w.child[j]);
			r = qmp_qom_get_str(q, path, "host", val, sizeof(val));
			/* Given by sysfsdev=, "host" keeps its unset value. */
			if ((r == -ENOENT || (!r && !valid_bdf(val))) &&
			    !qmp_qom_get_str(q, path, "sysfsdev", val,
					     sizeof(val))) {
				s = strrchr(val, '/');
				if (s)
					memmove(val, s + 1, strlen(s));
				r = 0;
			}
			if (r && r != -ENOENT)
				return r;
			if (r || !valid_bdf(val)) {
				fprintf(stderr, "%s: migrate: %s: cannot tell which PCI device it is (host \"%s\"); ignored\n",
					hba_prog, path, r ? "" : val);
				continue;
			}
			snprintf(v->bdf[v->n], HBA_BDF_LEN, "%.15s", val);
			snprintf(v->path[v->n], sizeof(v->path[0]), "%s", path);
			v->n++;
		}
	}
	return found ? 0 : -ENOENT;
}

/* ---- the run ---- */

static volatile sig_atomic_t mig_stop;

static void mig_on_signal(int sig)
{
	mig_stop = sig;
}

struct mig {
	struct mig_args a;
	struct qmp src, dst;
	bool have_src, have_dst, have_genl;
	struct hba_genl g;
	char bdf[HBA_BDF_LEN];
	struct hba_msg before, sw, after;
	bool have_dest_before, have_dest_after;
	struct hba_msg dest_before, dest_after;
	const char *compat;
	bool tty;
	bool was_running;
	bool started;		/* "migrate" accepted by QEMU */
	bool switched;		/* source switched to emulated by us */
	double switch_ms;	/* as hbamig saw it: request to reply */
	u64 t0;
	long lease_ms;
	struct qmp_mig_info info;
	int64_t last_progress_s;
	char dest_status[32];
	bool dest_running;
	/* failure path */
	const char *reason;
	char detail[2 * QMP_STR_MAX];
	int restore_err;	/* switch back to direct: 0 or -errno */
	char restore_msg[HBA_ERRMSG_LEN];
	bool restore_tried;
	bool restore_paused;	/* done through a stop/cont of the VM */
	double restore_pause_ms;
	char vm_status[32];
	bool vm_running;
	/* --copy-storage */
	struct stor_copy *copy;
	bool copy_prepared;	/* connected, checked: release on exit */
	bool backend_moved;	/* the adapter's backend is the dm device */
	bool copy_failed;	/* the mirror or the link failed */
	bool preswitch_set;	/* pause-before-switchover set by us */
	/* --peer: QEMU held before its switchover until the peers pause */
	bool hold_set;		/* threshold lowered by us: restore it */
	struct qmp_guard hold_guard;	/* restores it if hbamig dies */
	bool pause_early;	/* QEMU cannot be held: pause before "migrate" */
	uint64_t user_downtime_ms, user_switchover_bw;
	const char *pause_scope;
	u64 t_migrate;		/* "migrate" accepted */
	double first_pass_ms;	/* from "migrate": RAM sent once, synced */
	double announce_ms;	/* held after the pause for the guests' ACKs */
	bool announced;		/* ... and every learned connection had one */
	u64 t_emul0, t_emul1;	/* the source guest emulated: from, to */
};

static double ms_since(u64 t0)
{
	return quiesce_ms_since(t0);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int qmp_fail(struct qmp *q, const char *what, int r)
{
	int code = r == -EREMOTEIO ? HBAMIG_EXIT_FAIL :
		   r == -ENOENT || r == -ECONNREFUSED ? HBAMIG_EXIT_NODEV :
		   r == -EACCES || r == -EPERM ? HBAMIG_EXIT_PERM :
		   HBAMIG_EXIT_FAIL;

	if (r == -EREMOTEIO || r == -ETIMEDOUT || r == -EPIPE || r == -EPROTO)
		return fail(code, "migrate: %s: QEMU: %s", what, q->err_desc);
	return fail(code, "migrate: %s: %s", what, strerror(-r));
}

static void progress(const struct qmp_mig_info *mi, void *arg)
{
	struct mig *m = arg;
	int64_t s = (int64_t)(ms_since(m->t0) / 1000);

	m->info = *mi;
	/* The mirror must stay healthy until QEMU has switched over. */
	if (m->copy_prepared && m->copy->mirrored && !m->copy_failed &&
	    stor_copy_poll(m->copy) < 0) {
		m->copy_failed = true;
		mig_stop = -1;
	}
	if (!m->tty || s == m->last_progress_s)
		return;
	m->last_progress_s = s;
	printf("migrate: %-9s %3lld s  RAM %.1f/%.1f MiB  remaining %.1f MiB  %.0f Mbps",
	       mi->status[0] ? mi->status : "starting", (long long)s,
	       mi->ram_transferred / 1048576.0, mi->ram_total / 1048576.0,
	       mi->ram_remaining / 1048576.0, mi->ram_mbps);
	if (mi->ram_dirty_rate)
		printf("  dirty %llu pages/s",
		       (unsigned long long)mi->ram_dirty_rate);
	if (mi->has_expected_downtime)
		printf("  expected downtime %lld ms",
		       (long long)mi->expected_downtime_ms);
	if (mi->has_vfio)
		printf("  device %llu B",
		       (unsigned long long)mi->vfio_transferred);
	printf("\n");
	fflush(stdout);
}

static void resume_peers(struct mig *m)
{
	for (int i = 0; i < m->a.nr_peers; i++)
		peer_resume(&m->a.peers[i]);
}

/* ---- the report: JSON through json-c (numbers with fractions) ---- */

static void jadd(struct json_object *o, const char *k, struct json_object *v)
{
	json_object_object_add(o, k, v);
}

static struct json_object *jnum(double v, const char *fmt)
{
	char s[64];

	snprintf(s, sizeof(s), fmt, v);
	return json_object_new_double_s(v, s);
}

static struct json_object *ju64(u64 v)
{
	return json_object_new_uint64(v);
}

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static struct json_object *jtiming(const struct hba_timing *t)
{
	struct json_object *o;

	if (!t->present)
		return NULL;
	o = json_object_new_object();
	jadd(o, "stop_ns", ju64(t->stop_ns));
	jadd(o, "capture_ns", ju64(t->capture_ns));
	jadd(o, "load_ns", ju64(t->load_ns));
	jadd(o, "repoint_ns", ju64(t->repoint_ns));
	jadd(o, "total_ns", ju64(t->total_ns));
	return o;
}

static const char *pause_scope_text(const struct mig *m)
{
	static char s[160];

	if (!m->pause_scope)
		return "not reached";
	if (!strcmp(m->pause_scope, "switchover"))
		snprintf(s, sizeof(s), "at the switchover: RAM was sent once in %.0f ms, QEMU was held until the peers were paused",
			 m->first_pass_ms);
	else if (!strcmp(m->pause_scope, "migration"))
		snprintf(s, sizeof(s), "for the whole migration (QEMU cannot be held before its switchover)");
	else
		snprintf(s, sizeof(s), "missed: QEMU switched over while held (the guest's memory did not change during an iteration)");
	return s;
}

static void jpause(struct json_object *o, const struct mig *m)
{
	if (!m->a.nr_peers)
		return;
	jadd(o, "peer_pause_scope", jstr(m->pause_scope ? m->pause_scope :
						      "not reached"));
	jadd(o, "ram_first_pass_ms", m->first_pass_ms > 0 ?
	     jnum(m->first_pass_ms, "%.1f") : NULL);
	jadd(o, "peer_announce_ms", m->first_pass_ms > 0 ?
	     jnum(m->announce_ms, "%.1f") : NULL);
	jadd(o, "peer_announced", m->first_pass_ms > 0 ?
	     json_object_new_boolean(m->announced) : NULL);
}

static struct json_object *jpeers(const struct mig *m)
{
	struct json_object *a = json_object_new_array(), *o;

	for (int i = 0; i < m->a.nr_peers; i++) {
		const struct mig_peer *p = &m->a.peers[i];

		o = json_object_new_object();
		jadd(o, "spec", jstr(p->spec));
		jadd(o, "kind", jstr(p->kind == PEER_TCP ? "tcp" : "pfc"));
		jadd(o, "dev", jstr(p->dev));
		jadd(o, "pause_ms", jnum(p->pause_ms, "%.3f"));
		jadd(o, "paused_after_ms", p->paused ||
		     p->held_ms > 0 ? jnum(p->paused_after_ms, "%.1f") : NULL);
		jadd(o, "held_ms", jnum(p->held_ms, "%.1f"));
		jadd(o, "resume_ms", jnum(p->resume_ms, "%.3f"));
		jadd(o, "resumed", json_object_new_boolean(!p->resume_err));
		if (p->fwd_dev) {
			struct json_object *c = json_object_new_array();

			jadd(o, "forwarded", jstr(p->fwd_dev));
			jadd(o, "window_updates_seen", json_object_new_int(p->reopened));
			jadd(o, "tcp_segments_seen", json_object_new_int64((int64_t)p->seen));
			jadd(o, "tcp_segments_unmatched", json_object_new_int64((int64_t)p->unmatched));
			for (int j = 0; j < p->nr_conns; j++) {
				struct json_object *e = json_object_new_object();
				char l[64], r[64];

				quiesce_conn_str(&p->conns[j], true, l, sizeof(l));
				quiesce_conn_str(&p->conns[j], false, r, sizeof(r));
				jadd(e, "local", jstr(l));
				jadd(e, "remote", jstr(r));
				jadd(e, "zeroed", json_object_new_int64((int64_t)p->zeroed[j]));
				json_object_array_add(c, e);
			}
			jadd(o, "connections", c);
		}
		json_object_array_add(a, o);
	}
	return a;
}

static void jprint(struct json_object *o)
{
	int flags = JSON_C_TO_STRING_NOSLASHESCAPE;

	flags |= hba_out.pretty ? JSON_C_TO_STRING_PRETTY |
				  JSON_C_TO_STRING_SPACED :
				  JSON_C_TO_STRING_PLAIN;
	fprintf(hba_out.f, "%s\n", json_object_to_json_string_ext(o, flags));
	fflush(hba_out.f);
	json_object_put(o);
}

/* The storage copy and the time the source guest ran emulated. */
static double emulated_ms(const struct mig *m)
{
	if (!m->t_emul0)
		return -1;
	return ((m->t_emul1 ? m->t_emul1 : quiesce_now_ns()) - m->t_emul0) /
	       1e6;
}

static void jcopy(struct json_object *o, const struct mig *m)
{
	const struct stor_copy *c = m->copy;
	double ms = c ? stor_copy_ms(c) : 0, em = emulated_ms(m);
	bool has = c && c->t_mirror;

	jadd(o, "copy_storage", jstr(m->a.copy_storage));
	jadd(o, "copy_bytes", has ? ju64(c->copy_bytes) : NULL);
	jadd(o, "copy_ms", has ? jnum(ms, "%.1f") : NULL);
	jadd(o, "copy_mb_per_s", has && ms > 0 ?
	     jnum(c->copy_bytes / 1e3 / ms, "%.1f") : NULL);
	jadd(o, "emulated_ms", em >= 0 ? jnum(em, "%.1f") : NULL);
}

static void print_copy(const struct mig *m)
{
	const struct stor_copy *c = m->copy;
	double ms = c ? stor_copy_ms(c) : 0, em = emulated_ms(m);

	if (c && c->t_mirror)
		printf("  storage copy      %llu bytes in %.0f ms (%.1f MB/s) to %s\n",
		       (unsigned long long)c->copy_bytes, ms,
		       ms > 0 ? c->copy_bytes / 1e3 / ms : 0.0,
		       m->a.copy_storage);
	if (em >= 0)
		printf("  emulated          %.0f ms (the source guest on the device model)\n",
		       em);
}

/* The destination's emulated -> direct switch, when it did one for us. */
static bool dest_switch(const struct mig *m, double *ms)
{
	const struct hba_timing *t = &m->dest_after.last_switch;

	if (!m->have_dest_before || !m->have_dest_after || !t->present ||
	    t->result || t->to_mode != EMUHBA_ADAPTER_MODE_DIRECT ||
	    m->dest_after.counters.switches <= m->dest_before.counters.switches)
		return false;
	*ms = t->total_ns / 1e6;
	return true;
}

static void print_report(struct mig *m)
{
	const struct qmp_mig_info *mi = &m->info;
	double total = ms_since(m->t0), dms = 0;
	bool has_dsw = dest_switch(m, &dms);
	const char *dmode = m->have_dest_after ?
			    hba_mode_name(m->dest_after.mode) : NULL;
	u64 dirty = m->after.counters.dirty_pages -
		    m->before.counters.dirty_pages;
	/*
	 * The longest time the guest's device took no command, as the host
	 * sees it (there is no guest agent): the source switch, or QEMU's
	 * downtime plus the destination's switch back.
	 */
	double src_stall = m->sw.last_switch.present ?
			   m->sw.last_switch.total_ns / 1e6 : m->switch_ms;
	double dst_stall = (mi->has_downtime ? mi->downtime_ms : 0) +
			   (has_dsw ? dms : 0);
	double stall = src_stall > dst_stall ? src_stall : dst_stall;

	if (hba_out.json) {
		struct json_object *o = json_object_new_object();

		jadd(o, "status", jstr("completed"));
		jadd(o, "dev", jstr(m->bdf));
		jadd(o, "to", jstr(m->a.to));
		jadd(o, "total_ms", jnum(total, "%.1f"));
		jadd(o, "qemu_total_ms", mi->has_total_time ?
			ju64(mi->total_time_ms) : NULL);
		jadd(o, "downtime_ms", mi->has_downtime ?
			ju64(mi->downtime_ms) : NULL);
		jadd(o, "setup_ms", mi->has_setup_time ?
			ju64(mi->setup_time_ms) : NULL);
		jadd(o, "switch_ms", jnum(m->switch_ms, "%.3f"));
		jadd(o, "switch", jtiming(&m->sw.last_switch));
		jadd(o, "dest_switch_ms", has_dsw ? jnum(dms, "%.3f") : NULL);
		jadd(o, "dest_switch", has_dsw ?
			jtiming(&m->dest_after.last_switch) : NULL);
		jadd(o, "switch_share_of_downtime",
		     has_dsw && mi->has_downtime && mi->downtime_ms > 0 ?
		     jnum(dms / mi->downtime_ms, "%.4f") : NULL);
		jadd(o, "device_max_stall_ms", mi->has_downtime ?
		     jnum(stall, "%.3f") : NULL);
		jadd(o, "state_bytes", mi->has_vfio ?
			ju64(mi->vfio_transferred) : NULL);
		jadd(o, "ram_bytes", ju64(mi->ram_transferred));
		jadd(o, "dirty_pages", ju64(dirty));
		jadd(o, "dest_dev", jstr(m->a.dest_dev));
		jadd(o, "dest_mode", jstr(dmode));
		jadd(o, "dest_vm", m->dest_status[0] ?
			jstr(m->dest_status) : NULL);
		jadd(o, "compat", jstr(m->compat));
		jadd(o, "peers", jpeers(m));
		jpause(o, m);
		jcopy(o, m);
		jprint(o);
		return;
	}
	printf("migrated %s to %s: completed\n", m->bdf, m->a.to);
	printf("  total             %.0f ms", total);
	if (mi->has_total_time)
		printf(" (QEMU %lld ms", (long long)mi->total_time_ms);
	if (mi->has_setup_time)
		printf(", setup %lld ms", (long long)mi->setup_time_ms);
	printf("%s\n", mi->has_total_time ? ")" : "");
	if (mi->has_downtime)
		printf("  downtime          %lld ms (as QEMU measured it)\n",
		       (long long)mi->downtime_ms);
	else
		printf("  downtime          not reported by QEMU\n");
	printf("  source switch     %.3f ms direct -> emulated, vCPUs running",
	       m->switch_ms);
	if (m->sw.last_switch.present) {
		const struct hba_timing *t = &m->sw.last_switch;

		printf(" (kernel %.3f ms: stop %.3f, capture %.3f, load %.3f, repoint %.3f)",
		       t->total_ns / 1e6, t->stop_ns / 1e6, t->capture_ns / 1e6,
		       t->load_ns / 1e6, t->repoint_ns / 1e6);
	}
	printf("\n");
	if (has_dsw) {
		printf("  dest switch       %.3f ms emulated -> direct, vCPUs stopped",
		       dms);
		if (mi->has_downtime && mi->downtime_ms > 0)
			printf(", %.1f %% of the downtime",
			       100.0 * dms / mi->downtime_ms);
		printf("\n");
	} else {
		printf("  dest switch       not known (%s)\n",
		       !m->a.dest_dev ? "no --dest-dev" :
		       "the destination adapter reports no switch to direct");
	}
	if (mi->has_downtime)
		printf("  guest I/O stall   at most %.1f ms as the device saw it (the longer of the source switch and downtime plus the destination switch)\n",
		       stall);
	if (mi->has_vfio)
		printf("  device state      %llu bytes\n",
		       (unsigned long long)mi->vfio_transferred);
	else
		printf("  device state      not reported by QEMU\n");
	printf("  RAM               %llu bytes\n",
	       (unsigned long long)mi->ram_transferred);
	printf("  dirty pages       %llu logged by the source adapter (device DMA log; 0 where the container tracks them)\n",
	       (unsigned long long)dirty);
	if (m->a.dest_dev)
		printf("  destination       %s %s%s%s\n", m->a.dest_dev,
		       dmode ? dmode : "unknown",
		       m->dest_status[0] ? ", VM " : "", m->dest_status);
	printf("  compatibility     %s\n", m->compat);
	print_copy(m);
	for (int i = 0; i < m->a.nr_peers; i++) {
		const struct mig_peer *p = &m->a.peers[i];

		if (p->held_ms <= 0) {
			printf("  peer              %s: not paused\n", p->spec);
			continue;
		}
		printf("  peer              %s: paused in %.3f ms", p->spec,
		       p->pause_ms);
		if (p->paused_after_ms >= 0)
			printf(" %.0f ms after the migration began",
			       p->paused_after_ms);
		printf(", held %.0f ms, resumed in %.3f ms%s\n", p->held_ms,
		       p->resume_ms, p->resume_err ? " (not confirmed)" : "");
	}
	if (m->a.nr_peers)
		printf("  peer pause        %s\n", pause_scope_text(m));
}

/* ---- failure: the VM stays on the source, running, on a direct VF ---- */

/*
 * The kernel switches a running guest's adapter back to the VF only with
 * the vCPUs stopped (on the RUNNING_P2P -> RUNNING arc QEMU takes when a
 * stopped VM resumes); asked while they run, it answers EOPNOTSUPP. Then
 * the VM is paused and resumed at once, which costs the guest a pause of
 * about one switch.
 */
static void restore_by_pause(struct mig *m)
{
	struct hba_nlerr err;
	struct hba_msg a;
	bool running = false;
	u64 ts;
	int r, i;

	if (!m->have_src || !m->vm_running)
		return;
	ts = quiesce_now_ns();
	r = qmp_exec(&m->src, "stop", NULL, NULL);
	if (r) {
		fprintf(stderr, "%s: migrate: QMP stop: %s\n", hba_prog,
			m->src.err_desc);
		return;
	}
	/* A paused VM is worse than an emulated adapter: insist on cont. */
	for (i = 0; i < 3; i++) {
		r = qmp_exec(&m->src, "cont", NULL, NULL);
		if (!r)
			break;
		sleep_ms(100);
	}
	m->restore_pause_ms = ms_since(ts);
	if (r)
		fprintf(stderr, "%s: migrate: QMP cont: %s: the VM is PAUSED\n",
			hba_prog, m->src.err_desc);
	if (!qmp_query_status(&m->src, m->vm_status, sizeof(m->vm_status),
			      &running))
		m->vm_running = running;
	if (mig_adapter_get(&m->g, m->bdf, &a, &err))
		return;
	if (a.mode == EMUHBA_ADAPTER_MODE_DIRECT) {
		m->restore_err = 0;
		m->restore_paused = true;
	} else {
		snprintf(m->restore_msg + strlen(m->restore_msg),
			 sizeof(m->restore_msg) - strlen(m->restore_msg),
			 "; still %s after a stop/cont of the VM",
			 hba_mode_name(a.mode));
	}
}

static void restore_source(struct mig *m)
{
	struct hba_nlerr err;
	struct hba_msg r;

	if (!m->switched || !m->have_genl)
		return;
	m->restore_tried = true;
	m->restore_err = mig_switch(&m->g, m->bdf, EMUHBA_ADAPTER_MODE_DIRECT,
				    &r, &err);
	if (m->restore_err) {
		m->restore_err = -err.error;
		snprintf(m->restore_msg, sizeof(m->restore_msg), "%s",
			 err.msg[0] ? err.msg : strerror(err.error));
	}
	if (m->restore_err == -EOPNOTSUPP)
		restore_by_pause(m);
}

static void print_failure(struct mig *m)
{
	const char *mode = "direct";

	if (m->switched)
		mode = m->restore_tried && !m->restore_err ? "direct" :
							     "emulated";
	if (hba_out.json) {
		struct json_object *o = json_object_new_object();

		jadd(o, "status", jstr(m->reason));
		jadd(o, "error", jstr(m->detail));
		jadd(o, "dev", jstr(m->bdf[0] ? m->bdf : NULL));
		jadd(o, "to", jstr(m->a.to));
		jadd(o, "total_ms", jnum(ms_since(m->t0), "%.1f"));
		jadd(o, "vm", m->vm_status[0] ? jstr(m->vm_status) : NULL);
		jadd(o, "vm_running", m->vm_status[0] ?
			json_object_new_boolean(m->vm_running) : NULL);
		jadd(o, "switch_ms", m->switched ?
			jnum(m->switch_ms, "%.3f") : NULL);
		jadd(o, "dev_mode", jstr(m->bdf[0] ? mode : NULL));
		jadd(o, "restore_error", m->restore_err ?
			jstr(m->restore_msg) : NULL);
		jadd(o, "restore_pause_ms", m->restore_paused ?
			jnum(m->restore_pause_ms, "%.1f") : NULL);
		jadd(o, "peers", jpeers(m));
		jpause(o, m);
		jcopy(o, m);
		jprint(o);
	}
	fprintf(stderr, "%s: migrate: %s: %s\n", hba_prog, m->reason,
		m->detail);
	if (m->copy && m->copy->t_mirror)
		fprintf(stderr, "%s: migrate: the destination's namespace holds an incomplete copy (%llu of %llu bytes): its content is undefined\n",
			hba_prog, (unsigned long long)m->copy->copy_bytes,
			(unsigned long long)m->copy->sectors * 512);
	if (m->vm_status[0])
		fprintf(stderr, "%s: migrate: the VM is %s on the source (%s)\n",
			hba_prog, m->vm_running ? "running" : "NOT running",
			m->vm_status);
	else if (m->started)
		fprintf(stderr, "%s: migrate: the source QEMU does not answer; the VM's state is unknown\n",
			hba_prog);
	if (!m->switched)
		return;
	if (!m->restore_err && m->restore_paused)
		fprintf(stderr, "%s: migrate: %s is back in direct mode, switched while the VM was paused for %.1f ms (QMP stop/cont: the kernel switches to the VF only with the vCPUs stopped)\n",
			hba_prog, m->bdf, m->restore_pause_ms);
	else if (!m->restore_err)
		fprintf(stderr, "%s: migrate: %s is back in direct mode\n",
			hba_prog, m->bdf);
	else if (m->restore_err == -EOPNOTSUPP)
		fprintf(stderr, "%s: migrate: %s stays in EMULATED mode: the kernel cannot switch it back to direct (EOPNOTSUPP: \"%s\"); the guest runs correctly but slower; retry with \"hbamig switch %s direct\" once supported\n",
			hba_prog, m->bdf, m->restore_msg, m->bdf);
	else
		fprintf(stderr, "%s: migrate: %s stays in EMULATED mode: switching back to direct failed: %s\n",
			hba_prog, m->bdf, m->restore_msg);
}

/* ---- --copy-storage ---- */

static int mig_failed(struct mig *m, const char *reason, int code,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * The remote leg released (writes a failed leg holds go to the local one)
 * and the adapter's backend pointed back at its namespace; a running model
 * keeps the dm device, now linear, until it stops.
 */
static void storage_unmirror(struct mig *m)
{
	struct hba_nlerr err;

	if (!m->copy_prepared)
		return;
	stor_copy_unmirror(m->copy);
	if (m->backend_moved && m->have_genl) {
		if (mig_set_backend(&m->g, m->bdf, m->copy->local, &err)) {
			hba_report_nlerr("migrate: pointing the backend back at the namespace",
					 &err);
			fprintf(stderr, "%s: migrate: run \"hbamig dev set %s backend %s\"\n",
				hba_prog, m->bdf, m->copy->local);
		} else {
			m->backend_moved = false;
		}
	}
}

/* Then the connection and the dm device (gone once the model closes it). */
static void storage_release(struct mig *m)
{
	if (!m->copy_prepared)
		return;
	storage_unmirror(m);
	stor_copy_release(m->copy);
	m->copy_prepared = false;
}

static int copy_prepare(struct mig *m)
{
	int r;

	m->copy = malloc(sizeof(*m->copy));
	if (!m->copy)
		return fail(HBAMIG_EXIT_FAIL, "out of memory");
	stor_copy_init(m->copy);
	if (!m->before.has_backend)
		return fail(HBAMIG_EXIT_NOTSUPP,
			    "migrate: --copy-storage: the kernel does not report %s's backend",
			    m->bdf);
	r = stor_copy_prepare(m->copy, m->bdf, m->before.backend,
			      m->a.copy_storage);
	if (r)
		return r;
	m->copy_prepared = true;
	return 0;
}

/* Before the switch: the dm device (linear, local) becomes the backend. */
static int copy_setup(struct mig *m)
{
	struct hba_nlerr err;
	int r;

	r = stor_copy_linear(m->copy);
	if (!r) {
		r = mig_set_backend(&m->g, m->bdf, m->copy->dm_path, &err);
		if (r)
			r = hba_report_nlerr("migrate: setting the backend to the copy device",
					     &err);
		else
			m->backend_moved = true;
	}
	if (r) {
		storage_release(m);
		return fail(r, "migrate: the storage copy could not be set up; nothing was changed");
	}
	return 0;
}

/* The guest runs emulated: mirror, resync, until in sync or a failure. */
static int copy_storage(struct mig *m)
{
	struct stor_copy *c = m->copy;
	u64 last_dst = quiesce_now_ns();
	bool running;
	char st[32];
	int r;

	r = stor_copy_mirror(c);
	if (r)
		return mig_failed(m, "failed", r,
				  "the storage mirror could not start");
	for (;;) {
		r = stor_copy_check(c);
		if (r < 0) {
			m->copy_failed = true;
			return mig_failed(m, "failed", HBAMIG_EXIT_FAIL,
					  "storage copy failed: %s", c->why);
		}
		stor_copy_progress(c, hba_out.json, m->tty);
		if (r > 0)
			return 0;
		if (mig_stop)
			return mig_failed(m, "interrupted", HBAMIG_EXIT_FAIL,
					  "%s received during the storage copy",
					  mig_stop == SIGINT ? "SIGINT" : "SIGTERM");
		if (m->have_dst && ms_since(last_dst) >= 1000) {
			last_dst = quiesce_now_ns();
			r = qmp_query_status(&m->dst, st, sizeof(st), &running);
			if (r)
				return mig_failed(m, "failed", HBAMIG_EXIT_FAIL,
						  "the destination QEMU (%s) stopped answering during the storage copy: %s",
						  m->a.dest_qmp, m->dst.err_desc);
		}
		stor_copy_wait(c, 2 * MIG_POLL_MS);
	}
}

/*
 * QEMU paused before the switchover: the VM is stopped and its device
 * drained. Only a healthy, in-sync, flushed mirror lets it go on.
 */
static bool copy_switchover_ok(struct mig *m)
{
	int r = stor_copy_poll(m->copy);

	if (r == 1) {
		r = stor_copy_flush(m->copy);
		if (r) {
			snprintf(m->copy->why, sizeof(m->copy->why),
				 "flushing %s failed: %s", m->copy->dm_path,
				 strerror(-r));
			return false;
		}
		r = stor_copy_poll(m->copy);
	} else if (r == 0) {
		snprintf(m->copy->why, sizeof(m->copy->why),
			 "the mirror is not in sync (%llu/%llu regions)",
			 (unsigned long long)m->copy->st.in_sync,
			 (unsigned long long)m->copy->st.regions);
	}
	return r == 1;
}

/*
 * Undo a started migration. Returns 1 when QEMU completed it before the
 * cancel took effect (the VM runs on the destination), 0 otherwise.
 */
static int rollback(struct mig *m)
{
	struct qmp_mig_info ci;
	bool running = false;
	int r;

	/* First: writes a failed mirror leg holds must complete locally. */
	storage_unmirror(m);
	if (m->started && m->have_src) {
		r = qmp_mig_cancel(&m->src, MIG_CANCEL_MS, &ci);
		if (r == QMP_MIG_COMPLETED) {
			m->info = ci;
			return 1;
		}
		if (r < 0)
			fprintf(stderr, "%s: migrate: migrate_cancel: %s\n",
				hba_prog, m->src.err_desc);
		else if (r == QMP_MIG_TIMEOUT)
			fprintf(stderr, "%s: migrate: QEMU did not finish cancelling within %d s (status %s)\n",
				hba_prog, MIG_CANCEL_MS / 1000, ci.status);
		else if (ci.error_desc[0] && !strstr(m->detail, ci.error_desc))
			fprintf(stderr, "%s: migrate: QEMU: %s\n", hba_prog,
				ci.error_desc);
	}
	if (m->have_src &&
	    !qmp_query_status(&m->src, m->vm_status, sizeof(m->vm_status),
			      &running)) {
		/* QEMU resumes a cancelled VM itself; make sure of it. */
		if (!running && m->was_running &&
		    strcmp(m->vm_status, "postmigrate") &&
		    !qmp_exec(&m->src, "cont", NULL, NULL))
			qmp_query_status(&m->src, m->vm_status,
					 sizeof(m->vm_status), &running);
		m->vm_running = running;
	}
	resume_peers(m);
	restore_source(m);
	if (m->t_emul0 && !m->t_emul1)
		m->t_emul1 = quiesce_now_ns();
	storage_release(m);
	return 0;
}

static int mig_failed(struct mig *m, const char *reason, int code,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int mig_failed(struct mig *m, const char *reason, int code,
		      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->detail, sizeof(m->detail), fmt, ap);
	va_end(ap);
	m->reason = reason;
	if (rollback(m)) {
		fprintf(stderr, "%s: migrate: %s, but QEMU had already completed the migration: the VM runs on the destination\n",
			hba_prog, m->detail);
		return -1;
	}
	print_failure(m);
	return code;
}

/* ---- command line ---- */

enum {
	OPT_QMP = 256, OPT_TO, OPT_DEV, OPT_DEST_DEV, OPT_DEST_QMP, OPT_PEER,
	OPT_TIMEOUT, OPT_DOWNTIME, OPT_COPY_STORAGE,
};

static int parse_args(int argc, char **argv, struct mig_args *a)
{
	static const struct option opts[] = {
		{ "qmp", required_argument, NULL, OPT_QMP },
		{ "to", required_argument, NULL, OPT_TO },
		{ "dev", required_argument, NULL, OPT_DEV },
		{ "dest-dev", required_argument, NULL, OPT_DEST_DEV },
		{ "dest-qmp", required_argument, NULL, OPT_DEST_QMP },
		{ "peer", required_argument, NULL, OPT_PEER },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "downtime-limit", required_argument, NULL, OPT_DOWNTIME },
		{ "copy-storage", required_argument, NULL, OPT_COPY_STORAGE },
		{ NULL, 0, NULL, 0 },
	};
	u32 v;
	int c, r;

	a->timeout_s = MIG_DEF_TIMEOUT_S;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case OPT_QMP:
			a->qmp = optarg;
			break;
		case OPT_TO:
			a->to = optarg;
			break;
		case OPT_DEV:
		case OPT_DEST_DEV:
			if (!valid_bdf(optarg))
				return usage_error("migrate: \"%s\" is not a PCI address (DDDD:BB:DD.F)",
						   optarg);
			if (c == OPT_DEV)
				a->dev = optarg;
			else
				a->dest_dev = optarg;
			break;
		case OPT_DEST_QMP:
			a->dest_qmp = optarg;
			break;
		case OPT_PEER:
			if (a->nr_peers == MIG_MAX_PEERS)
				return usage_error("migrate: at most %d --peer",
						   MIG_MAX_PEERS);
			r = peer_parse(&a->peers[a->nr_peers++], optarg);
			if (r)
				return r;
			break;
		case OPT_TIMEOUT:
			if (parse_u32("--timeout", optarg, &v))
				return HBAMIG_EXIT_USAGE;
			if (!v || v > 86400)
				return usage_error("migrate: --timeout: 1..86400 s");
			a->timeout_s = v;
			break;
		case OPT_DOWNTIME:
			if (parse_u32("--downtime-limit", optarg, &v))
				return HBAMIG_EXIT_USAGE;
			/* QEMU's own bound (MAX_MIGRATE_DOWNTIME, 2000 s). */
			if (!v || v > 2000000)
				return usage_error("migrate: --downtime-limit: 1..2000000 ms");
			a->has_downtime = true;
			a->downtime_ms = v;
			break;
		case OPT_COPY_STORAGE: {
			struct stor_target t;

			if (stor_parse_target(optarg, &t))
				return usage_error("migrate: --copy-storage \"%s\" is not a target (tcp://ADDR:PORT/NQN as \"hbamig storage export\" prints it)",
						   optarg);
			a->copy_storage = optarg;
			break;
		}
		default:
			return usage_error("migrate: unknown option or missing value \"%s\"",
					   argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("migrate: unexpected \"%s\"", argv[optind]);
	if (!a->qmp || !a->to)
		return usage_error("migrate: --qmp SOCKET and --to URI are required");
	if (a->dev && a->dest_dev && !strcmp(a->dev, a->dest_dev))
		return usage_error("migrate: --dev and --dest-dev are the same adapter");
	if (a->copy_storage && a->nr_peers)
		return usage_error("migrate: --copy-storage is for a namespace on a local disk, which has no fabric peer to pause: no --peer");
	return 0;
}

/* ---- before anything stops ---- */

static int pick_source(struct mig *m)
{
	struct hba_nlerr err;
	struct vm_vfio v;
	int i, r, found = -1;
	bool listed;

	r = vm_find_vfio(&m->src, &v);
	if (r && r != -ENOENT)
		return qmp_fail(&m->src, "looking for the VM's VFIO devices", r);
	if (!v.n && !m->a.dev)
		return fail(HBAMIG_EXIT_NODEV,
			    "migrate: the VM has no vfio-pci device, hence no emuhba adapter: nothing for hbamig to do (use QEMU's migrate directly)");
	if (m->a.dev) {
		listed = false;
		for (i = 0; i < v.n; i++)
			listed |= !strcmp(v.bdf[i], m->a.dev);
		if (!listed)
			return fail(HBAMIG_EXIT_NODEV,
				    "migrate: the VM at %s does not use %s (its vfio-pci devices: %d)",
				    m->a.qmp, m->a.dev, v.n);
	}
	r = hba_genl_open(&m->g);
	if (r)
		return r;
	m->have_genl = true;

	/* Every VF of the VM must be an emuhba adapter: QEMU migrates all. */
	for (i = 0; i < v.n; i++) {
		struct hba_msg a;

		r = mig_adapter_get(&m->g, v.bdf[i], &a, &err);
		if (r == -ENODEV || err.error == ENODEV || err.error == ENOENT) {
			if (m->a.dev && !strcmp(v.bdf[i], m->a.dev))
				return fail(HBAMIG_EXIT_NODEV,
					    "migrate: %s is not an emuhba adapter (bind it with \"hbamig dev bind\")",
					    m->a.dev);
			return fail(HBAMIG_EXIT_NOTSUPP,
				    "migrate: the VM also uses %s (%s), which is not an emuhba adapter: QEMU cannot migrate it",
				    v.bdf[i], v.path[i]);
		}
		if (r)
			return hba_report_nlerr(v.bdf[i], &err);
		if (m->a.dev ? !strcmp(v.bdf[i], m->a.dev) : found < 0) {
			found = i;
			m->before = a;
		} else if (!m->a.dev) {
			return usage_error("migrate: the VM has several emuhba adapters (%s, %s): name the one to switch with --dev",
					   v.bdf[found], v.bdf[i]);
		}
	}
	if (found < 0)
		return fail(HBAMIG_EXIT_NODEV, "migrate: no emuhba adapter found");
	snprintf(m->bdf, sizeof(m->bdf), "%s", v.bdf[found]);
	if (m->before.mode != EMUHBA_ADAPTER_MODE_DIRECT)
		return fail(HBAMIG_EXIT_BUSY,
			    "migrate: %s is in %s mode, not direct", m->bdf,
			    hba_mode_name(m->before.mode));
	if (m->before.has_open && !m->before.open)
		return fail(HBAMIG_EXIT_BUSY,
			    "migrate: %s is not open by a VMM, although QEMU lists it",
			    m->bdf);
	return 0;
}

/*
 * Compatibility of the destination adapter: "hbamig dev compat" (compat.c)
 * when this build has it.
 */
static int check_compat(struct mig *m)
{
	struct hba_nlerr err;
	int r;

	if (!m->a.dest_dev) {
		m->compat = "not checked (no --dest-dev)";
		return 0;
	}
	r = mig_adapter_get(&m->g, m->a.dest_dev, &m->dest_before, &err);
	if (r)
		return err.error == ENODEV || err.error == ENOENT ?
		       fail(HBAMIG_EXIT_NODEV,
			    "migrate: destination %s is not an emuhba adapter",
			    m->a.dest_dev) :
		       hba_report_nlerr(m->a.dest_dev, &err);
	m->have_dest_before = true;
#ifdef HBAMIG_HAVE_COMPAT
	r = compat_check(m->bdf, m->a.dest_dev, false);
	/* The verdict names the refusing fields: show it on a refusal. */
	if (r == HBAMIG_EXIT_FAIL && !hba_out.json)
		compat_check(m->bdf, m->a.dest_dev, true);
	if (r == HBAMIG_EXIT_FAIL)
		return fail(HBAMIG_EXIT_FAIL,
			    "migrate: destination %s cannot take the guest of %s (see \"hbamig dev compat %s %s\"); nothing was changed",
			    m->a.dest_dev, m->bdf, m->bdf, m->a.dest_dev);
	if (r)
		return fail(r, "migrate: the compatibility check of %s against %s could not run",
			    m->a.dest_dev, m->bdf);
	m->compat = "ok";
#else
	m->compat = "not checked (this hbamig has no \"dev compat\")";
#endif
	return 0;
}

static int check_qemu(struct mig *m)
{
	struct qmp_mig_info mi;
	char st[32];
	bool running;
	int r;

	r = qmp_query_status(&m->src, st, sizeof(st), &running);
	if (r)
		return qmp_fail(&m->src, "query-status", r);
	if (!strcmp(st, "inmigrate"))
		return fail(HBAMIG_EXIT_BUSY,
			    "migrate: the QEMU at %s is waiting for an incoming migration: it is a destination",
			    m->a.qmp);
	m->was_running = running;
	r = qmp_query_migrate(&m->src, &mi);
	if (r)
		return qmp_fail(&m->src, "query-migrate", r);
	if (mi.status[0] && !qmp_mig_done(mi.status))
		return fail(HBAMIG_EXIT_BUSY,
			    "migrate: QEMU is already migrating (status %s)",
			    mi.status);
	if (mi.nr_blocked)
		return fail(HBAMIG_EXIT_NOTSUPP,
			    "migrate: QEMU blocks the migration: %s%s",
			    mi.blocked[0], mi.nr_blocked > 1 ? " (and more)" : "");
	if (!m->a.dest_qmp)
		return 0;
	r = qmp_connect(&m->dst, m->a.dest_qmp, MIG_QMP_TIMEOUT_MS);
	m->have_dst = m->dst.fd >= 0;
	if (r)
		return qmp_fail(&m->dst, m->a.dest_qmp, r);
	r = qmp_query_status(&m->dst, st, sizeof(st), &running);
	if (r)
		return qmp_fail(&m->dst, "destination query-status", r);
	if (strcmp(st, "inmigrate"))
		return fail(HBAMIG_EXIT_BUSY,
			    "migrate: the destination QEMU at %s is not waiting for a migration (status %s; start it with -incoming)",
			    m->a.dest_qmp, st);
	return 0;
}

/* After completion: the destination VM runs. */
static void wait_dest_running(struct mig *m)
{
	u64 t0 = quiesce_now_ns();

	m->dest_running = false;
	while (m->have_dst && ms_since(t0) < MIG_DEST_WAIT_MS) {
		if (qmp_query_status(&m->dst, m->dest_status,
				     sizeof(m->dest_status), &m->dest_running) ||
		    m->dest_running)
			break;
		sleep_ms(20);
	}
}

/* ... and its adapter is direct. */
static void confirm_dest(struct mig *m)
{
	u64 t0 = quiesce_now_ns();
	struct hba_nlerr err;

	if (m->have_dst && !m->dest_running)
		fprintf(stderr, "%s: migrate: warning: the destination VM is %s, not running\n",
			hba_prog, m->dest_status[0] ? m->dest_status : "unknown");
	if (!m->a.dest_dev)
		return;
	for (;;) {
		if (mig_adapter_get(&m->g, m->a.dest_dev, &m->dest_after,
				    &err)) {
			m->have_dest_after = false;
			hba_report_nlerr(m->a.dest_dev, &err);
			break;
		}
		m->have_dest_after = true;
		if (m->dest_after.mode == EMUHBA_ADAPTER_MODE_DIRECT ||
		    ms_since(t0) >= MIG_DEST_WAIT_MS)
			break;
		sleep_ms(50);
	}
	if (m->have_dest_after &&
	    m->dest_after.mode != EMUHBA_ADAPTER_MODE_DIRECT)
		fprintf(stderr, "%s: migrate: the destination adapter %s is in %s mode, not direct: the guest runs there, but emulated (slower); the kernel log says why, and pausing and resuming the destination VM (QMP stop, cont) retries\n",
			hba_prog, m->a.dest_dev,
			hba_mode_name(m->dest_after.mode));
}

/*
 * QEMU switches over once what is left would take less than downtime-limit
 * at the expected bandwidth. A limit of 1 ms at 1000 bytes/s makes that one
 * byte: QEMU keeps iterating while the guest changes any page at all, and
 * the peers can be paused when RAM has been sent once, just before the
 * switchover, instead of for the whole migration. A guest whose memory
 * did not change during one iteration still switches over (QEMU completes
 * with nothing pending); the report then says "missed".
 */
static int hold_switchover(struct mig *m)
{
	char cmd[256];
	int r;

	r = qmp_mig_get_threshold(&m->src, &m->user_downtime_ms,
				  &m->user_switchover_bw);
	/*
	 * Held, QEMU would never switch over: if hbamig dies (SIGKILL
	 * included) before letting it go, a child puts the threshold back.
	 */
	if (!r)
		r = qmp_mig_threshold_cmd(cmd, sizeof(cmd), m->user_downtime_ms,
					  m->user_switchover_bw);
	if (!r) {
		r = qmp_guard_start(&m->src, cmd, &m->hold_guard);
		if (r) {
			fprintf(stderr, "%s: migrate: cannot guard a hold of QEMU's switchover (%s): the peers are paused for the whole migration\n",
				hba_prog, strerror(-r));
			m->pause_early = true;
			return 0;
		}
		r = qmp_mig_set_threshold(&m->src, 1, 1000);
		if (!r) {
			m->hold_set = true;
			return 0;
		}
		qmp_guard_release(&m->hold_guard);
	}
	if (r != -ENOENT && r != -EREMOTEIO)
		return qmp_fail(&m->src, "migrate-set-parameters", r);
	/* QEMU < 8.2 has no avail-switchover-bandwidth. */
	fprintf(stderr, "%s: migrate: QEMU cannot be held before its switchover (%s): the peers are paused for the whole migration\n",
		hba_prog, r == -ENOENT ? "no avail-switchover-bandwidth" :
		m->src.err_desc);
	m->pause_early = true;
	return 0;
}

static int release_switchover(struct mig *m)
{
	int r;

	if (!m->hold_set)
		return 0;
	r = qmp_mig_set_threshold(&m->src, m->user_downtime_ms,
				  m->user_switchover_bw);
	if (!r) {
		m->hold_set = false;
		qmp_guard_release(&m->hold_guard);
	}
	return r;
}

static void mig_cleanup(struct mig *m)
{
	storage_release(m);
	if (m->preswitch_set && m->have_src)
		qmp_mig_set_capability(&m->src, "pause-before-switchover",
				       false);
	if (m->hold_set && m->have_src && release_switchover(m))
		fprintf(stderr, "%s: migrate: could not set downtime-limit %llu ms and avail-switchover-bandwidth %llu back: %s\n",
			hba_prog, (unsigned long long)m->user_downtime_ms,
			(unsigned long long)m->user_switchover_bw,
			m->src.err_desc);
	/* Not let go: the guard tries once more on its own. */
	if (m->hold_set)
		qmp_guard_fire(&m->hold_guard);
	qmp_guard_release(&m->hold_guard);
	free(m->copy);
	for (int i = 0; i < m->a.nr_peers; i++)
		peer_free(&m->a.peers[i]);
	/* Also once QEMU went away (have_src off): the socket, its buffer. */
	qmp_close(&m->src);
	if (m->have_dst)
		qmp_close(&m->dst);
	if (m->have_genl)
		hba_genl_close(&m->g);
}

/* What is left of --timeout since @ts, at least 1 ms. */
static int time_left_ms(const struct mig *m, u64 ts)
{
	double left = m->a.timeout_s * 1000 - ms_since(ts);

	return left < 1 ? 1 : (int)left;
}

static int pause_peers(struct mig *m)
{
	for (int i = 0; i < m->a.nr_peers; i++) {
		struct mig_peer *p = &m->a.peers[i];
		int r = peer_pause(p, m->lease_ms);

		if (r)
			return mig_failed(m, "failed", r,
					  "pausing peer \"%s\" failed", p->spec);
		p->paused_after_ms = m->t_migrate ?
				     ms_since(m->t_migrate) : -1;
	}
	return 0;
}

/*
 * A forwarded connection is paused once the guest's own ACK has carried
 * the zero window out; the guest stops with the VM. Keep QEMU held until
 * every learned connection has announced it, for at most
 * MIG_ANNOUNCE_MS: a guest answers in microseconds on real hardware,
 * and one that stands still (nested emulation) is let go all the same.
 */
#define MIG_ANNOUNCE_MS		3000

static void wait_announced(struct mig *m)
{
	u64 t0 = quiesce_now_ns();

	for (;;) {
		bool all = true;

		for (int i = 0; i < m->a.nr_peers && all; i++) {
			struct mig_peer *p = &m->a.peers[i];
			const struct quiesce_conn *c;
			int n;

			if (!p->fwd_dev || !p->tcp)
				continue;
			n = quiesce_tcp_conns(p->tcp, &c);
			for (int j = 0; j < n && all; j++)
				all = quiesce_tcp_zeroed(p->tcp, j) > 0;
		}
		m->announce_ms = ms_since(t0);
		m->announced = all;
		if (all || m->announce_ms >= MIG_ANNOUNCE_MS || mig_stop)
			return;
		sleep_ms(5);
	}
}

/* RAM went once whole: pause the peers, then let QEMU switch over. */
static int pause_at_switchover(struct mig *m)
{
	int r;

	m->first_pass_ms = ms_since(m->t_migrate);
	r = pause_peers(m);
	if (r)
		return r;
	wait_announced(m);
	r = release_switchover(m);
	if (r)
		return mig_failed(m, "failed", HBAMIG_EXIT_FAIL,
				  "migrate-set-parameters (the switchover threshold back to downtime-limit %llu ms): %s",
				  (unsigned long long)m->user_downtime_ms,
				  m->src.err_desc);
	m->pause_scope = "switchover";
	return 0;
}

static int completed(struct mig *m)
{
	struct hba_nlerr err;

	if (m->t_emul0 && !m->t_emul1)
		m->t_emul1 = quiesce_now_ns();
	storage_release(m);
	if (m->a.nr_peers && !m->pause_scope)
		m->pause_scope = "missed";
	/* The guest answers the resume's window updates once it runs. */
	wait_dest_running(m);
	resume_peers(m);
	if (mig_adapter_get(&m->g, m->bdf, &m->after, &err))
		m->after = m->before;
	confirm_dest(m);
	print_report(m);
	if (m->have_dest_after &&
	    m->dest_after.mode != EMUHBA_ADAPTER_MODE_DIRECT)
		return HBAMIG_EXIT_DEST_EMULATED;
	return HBAMIG_EXIT_OK;
}

static int run(struct mig *m)
{
	struct qmp_mig_wait w = { .poll_ms = MIG_POLL_MS, .stop = &mig_stop };
	struct hba_nlerr err;
	u64 ts;
	int i, r;

	r = qmp_connect(&m->src, m->a.qmp, MIG_QMP_TIMEOUT_MS);
	m->have_src = m->src.fd >= 0;
	if (r)
		return qmp_fail(&m->src, m->a.qmp, r);
	r = check_qemu(m);
	if (!r)
		r = pick_source(m);
	if (!r)
		r = check_compat(m);
	for (i = 0; !r && i < m->a.nr_peers; i++)
		r = peer_prepare(&m->a.peers[i], m->lease_ms);
	if (!r && m->a.has_downtime) {
		r = qmp_mig_set_downtime(&m->src, m->a.downtime_ms);
		if (r)
			r = qmp_fail(&m->src, "migrate-set-parameters", r);
	}
	if (!r && m->a.nr_peers)
		r = hold_switchover(m);
	/* The VM stops only once the mirror is confirmed at the switchover. */
	if (!r && m->a.copy_storage) {
		r = qmp_mig_set_capability(&m->src, "pause-before-switchover",
					   true);
		if (r)
			r = qmp_fail(&m->src, "pause-before-switchover", r);
		else
			m->preswitch_set = true;
	}
	if (!r && m->a.copy_storage)
		r = copy_prepare(m);
	if (r)
		return r;
	if (mig_stop)
		return fail(HBAMIG_EXIT_FAIL, "migrate: interrupted; nothing was changed");
	if (m->copy_prepared) {
		r = copy_setup(m);
		if (r)
			return r;
	}

	/* From here on, every failure goes through rollback(). */
	if (m->pause_early) {
		r = pause_peers(m);
		if (r)
			return r;
		m->pause_scope = "migration";
	}
	ts = quiesce_now_ns();
	r = mig_switch(&m->g, m->bdf, EMUHBA_ADAPTER_MODE_EMULATED, &m->sw,
		       &err);
	m->switch_ms = ms_since(ts);
	if (r) {
		r = hba_report_nlerr("migrate: switch to emulated", &err);
		mig_failed(m, "failed", r,
			   "switching %s to emulated failed; it stays direct",
			   m->bdf);
		return r;
	}
	m->switched = true;
	m->t_emul0 = quiesce_now_ns();
	if (m->copy_prepared) {
		r = copy_storage(m);
		if (r)
			return r;
		ts = quiesce_now_ns();	/* --timeout counts from here */
	} else {
		ts = m->t0;
	}
	if (mig_stop)
		return mig_failed(m, "interrupted", HBAMIG_EXIT_FAIL,
				  "%s received before the migration started",
				  mig_stop == SIGINT ? "SIGINT" : "SIGTERM");

	r = qmp_mig_start(&m->src, m->a.to);
	if (r)
		return mig_failed(m, "failed", HBAMIG_EXIT_FAIL,
				  "QEMU refused to migrate to %s: %s", m->a.to,
				  m->src.err_desc);
	m->started = true;
	m->t_migrate = quiesce_now_ns();
	w.timeout_ms = time_left_ms(m, ts);
	w.progress = progress;
	w.arg = m;
	w.until_preswitch = m->copy_prepared;
	w.until_synced = m->hold_set;
	r = qmp_mig_wait(&m->src, &w, &m->info);
	if (r == QMP_MIG_SYNCED) {
		r = pause_at_switchover(m);
		if (r)
			return r;
		w.until_synced = false;
		w.timeout_ms = time_left_ms(m, ts);
		r = qmp_mig_wait(&m->src, &w, &m->info);
	}
	if (r == QMP_MIG_PRE_SWITCHOVER) {
		if (!copy_switchover_ok(m)) {
			m->copy_failed = true;
			return mig_failed(m, "failed", HBAMIG_EXIT_FAIL,
					  "storage copy failed at the switchover: %s; the migration is cancelled",
					  m->copy->why);
		}
		if (qmp_mig_continue(&m->src, "pre-switchover"))
			return mig_failed(m, "failed", HBAMIG_EXIT_FAIL,
					  "migrate-continue: %s",
					  m->src.err_desc);
		w.until_preswitch = false;
		w.timeout_ms = time_left_ms(m, ts);
		r = qmp_mig_wait(&m->src, &w, &m->info);
	}
	switch (r) {
	case QMP_MIG_COMPLETED:
		return completed(m);
	case QMP_MIG_FAILED:
		r = mig_failed(m, "failed", HBAMIG_EXIT_FAIL,
			       "QEMU reports the migration failed: %s",
			       m->info.error_desc[0] ? m->info.error_desc :
						       "(no reason given)");
		break;
	case QMP_MIG_CANCELLED:
		r = mig_failed(m, "cancelled", HBAMIG_EXIT_FAIL,
			       "the migration was cancelled by someone else");
		break;
	case QMP_MIG_TIMEOUT:
		r = mig_failed(m, "timeout", HBAMIG_EXIT_FAIL,
			       "not completed within %ld s (status %s); the migration is cancelled",
			       m->a.timeout_s, m->info.status);
		break;
	case QMP_MIG_STOPPED:
		if (m->copy_failed) {
			r = mig_failed(m, "failed", HBAMIG_EXIT_FAIL,
				       "storage copy failed during the migration: %s; the migration is cancelled",
				       m->copy->why);
			break;
		}
		r = mig_failed(m, "interrupted", HBAMIG_EXIT_FAIL,
			       "%s received; the migration is cancelled",
				  mig_stop == SIGINT ? "SIGINT" : "SIGTERM");
		break;
	default:
		/* QEMU went away or spoke nonsense: nothing to cancel. */
		if (r == -EPIPE)
			m->have_src = false;
		r = mig_failed(m, "failed", HBAMIG_EXIT_FAIL,
			       "lost the source QEMU's QMP: %s",
			       m->src.err_desc);
		break;
	}
	return r < 0 ? completed(m) : r;
}

int do_migrate(int argc, char **argv)
{
	struct sigaction sa, old_int, old_term;
	struct mig *m;
	int r;

	if (argc > 1 && is_help(argv[1])) {
		migrate_usage(stdout);
		return HBAMIG_EXIT_OK;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return fail(HBAMIG_EXIT_FAIL, "out of memory");
	m->src.fd = -1;
	m->dst.fd = -1;
	m->t0 = quiesce_now_ns();
	r = parse_args(argc, argv, &m->a);
	if (r) {
		mig_cleanup(m);
		free(m);
		return r;
	}
	m->tty = !hba_out.json && isatty(STDOUT_FILENO);
	m->last_progress_s = -1;
	m->compat = "not checked";
	m->lease_ms = m->a.timeout_s * 1000 + 5000;
	if (m->lease_ms > QUIESCE_LEASE_MAX_MS)
		m->lease_ms = QUIESCE_LEASE_MAX_MS;

	/* No SA_RESTART: a signal ends the waits early, run() looks. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mig_on_signal;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	quiesce_ignore_sigpipe();

	r = run(m);

	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	mig_cleanup(m);
	free(m);
	return r;
}
