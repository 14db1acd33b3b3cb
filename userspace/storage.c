// SPDX-License-Identifier: GPL-2.0-only
/*
 * hbamig storage: the copy of a local namespace to the destination's, by
 * kernel engines only.
 *
 *   destination  "storage export BDF --listen ADDR[:PORT]": the block
 *                device behind the adapter's backend exported by nvmet over
 *                TCP (configfs), held until a signal, --timeout or EOF on
 *                stdin, then removed;
 *   source       the engine migrate --copy-storage drives: nvme-tcp connect
 *                (/dev/nvme-fabrics), a dm device (linear over the local
 *                backend, then "mirror" of local and remote with a core
 *                log), progress from the mirror's status, release;
 *   both         "storage cleanup [BDF]": every leftover emuhba-named
 *                object removed.
 *
 * "storage mirror" runs the source engine on a plain block device, without
 * an adapter or a VM: for tests and for measuring a link.
 */
#define _GNU_SOURCE	/* setns */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/dm-ioctl.h>
#include <linux/emuhba.h>
#include <json-c/json.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include "storage.h"

#define NVMET		"/sys/kernel/config/nvmet"
#define FABRICS		"/dev/nvme-fabrics"
#define NVME_CLASS	"/sys/class/nvme"
#define NS_WAIT_MS	10000
#define NODE_WAIT_MS	3000
#define POLL_MS		200

extern char **environ;

static volatile sig_atomic_t stor_stop;

static void stor_on_signal(int sig)
{
	stor_stop = sig;
}

u64 stor_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000000ull + (u64)ts.tv_nsec;
}

static void stor_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * snprintf for paths and messages that may be cut (they are bounded by
 * the kernel's limits long before): no truncation warning per call.
 */
static int sfmt(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int sfmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

/* JSON through json-c: strings from the user or the kernel are escaped. */
static struct json_object *jo(void)
{
	return json_object_new_object();
}

static void js(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static void ju(struct json_object *o, const char *k, u64 v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

static void jd(struct json_object *o, const char *k, double v)
{
	char s[64];

	sfmt(s, sizeof(s), "%.1f", v);
	json_object_object_add(o, k, json_object_new_double_s(v, s));
}

static void jout(struct json_object *o)
{
	int flags = JSON_C_TO_STRING_NOSLASHESCAPE | JSON_C_TO_STRING_PLAIN;

	fprintf(hba_out.f, "%s\n", json_object_to_json_string_ext(o, flags));
	fflush(hba_out.f);
	json_object_put(o);
}

static const char *sig_name(int sig)
{
	return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" :
	       sig == SIGHUP ? "SIGHUP" : "a signal";
}

/* modprobe -q NAME; 0 when it loaded (or was there). */
static int modprobe(const char *name)
{
	char *argv[] = { "modprobe", "-q", (char *)name, NULL };
	pid_t pid;
	int st;

	if (posix_spawnp(&pid, "modprobe", NULL, NULL, argv, environ))
		return -ENOENT;
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -ENOENT;
}

static bool exists(const char *path)
{
	struct stat st;

	return !lstat(path, &st);
}

static int errno_exit(int err)
{
	return hba_exit_from_errno(err);
}

/* ---- block devices ---- */

struct blk {
	unsigned int maj, min;
	char sys[PATH_MAX];
	u64 sectors;
	u32 lbs, meta;
};

static int read_u64(const char *path, u64 *v)
{
	char buf[64];
	int r = sysfs_read(path, buf, sizeof(buf));

	return r ? r : stor_parse_u64(buf, v);
}

/* Size, logical block size and metadata bytes from sysfs. */
static int blk_geometry(struct blk *b)
{
	char p[PATH_MAX + 64];
	u64 v;
	int r;

	sfmt(p, sizeof(p), "%s/size", b->sys);
	r = read_u64(p, &b->sectors);
	if (r)
		return r;
	/* A partition's queue is its disk's. */
	sfmt(p, sizeof(p), "%s/queue/logical_block_size", b->sys);
	if (!exists(p))
		sfmt(p, sizeof(p), "%s/../queue/logical_block_size",
			 b->sys);
	r = read_u64(p, &v);
	if (r)
		return r;
	if (v < 512 || v > 65536 || (v & (v - 1)))
		return -ERANGE;
	b->lbs = (u32)v;
	/* NVMe namespaces say how many metadata bytes a block carries. */
	sfmt(p, sizeof(p), "%s/metadata_bytes", b->sys);
	v = 0;
	r = read_u64(p, &v);
	if (r && r != -ENOENT)
		return r;
	if (v > 4096)
		return -ERANGE;
	b->meta = (u32)v;
	return 0;
}

static int blk_of_path(const char *path, struct blk *b)
{
	struct stat st;

	memset(b, 0, sizeof(*b));
	if (stat(path, &st))
		return -errno;
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	b->maj = major(st.st_rdev);
	b->min = minor(st.st_rdev);
	sfmt(b->sys, sizeof(b->sys), "/sys/dev/block/%u:%u", b->maj,
		 b->min);
	return blk_geometry(b);
}

static int blk_of_disk(const char *disk, struct blk *b)
{
	char p[PATH_MAX], buf[32];
	int r;

	memset(b, 0, sizeof(*b));
	sfmt(p, sizeof(p), "/sys/block/%s/dev", disk);
	r = sysfs_read(p, buf, sizeof(buf));
	if (r)
		return r;
	r = stor_parse_devnum(buf, &b->maj, &b->min);
	if (r)
		return r;
	sfmt(b->sys, sizeof(b->sys), "/sys/block/%s", disk);
	return blk_geometry(b);
}

/* A /dev/NAME node of @maj:@min (devtmpfs makes it; udev may be late). */
static int wait_node(const char *path, unsigned int maj, unsigned int min)
{
	u64 t0 = stor_now_ns();
	struct stat st;

	for (;;) {
		if (!stat(path, &st) && S_ISBLK(st.st_mode) &&
		    major(st.st_rdev) == maj && minor(st.st_rdev) == min)
			return 0;
		if (stor_now_ns() - t0 > NODE_WAIT_MS * 1000000ull)
			return -ETIMEDOUT;
		stor_sleep_ms(20);
	}
}

/* ---- the adapter over genl ---- */

struct get_one {
	int n;
	struct hba_msg m;
};

static int get_cb(const struct hba_msg *m, void *arg)
{
	struct get_one *g = arg;

	if (m->cmd == EMUHBA_CMD_ADAPTER_GET) {
		g->n++;
		g->m = *m;
	}
	return 0;
}

static int adapter_backend(const char *bdf, char *buf, size_t len)
{
	struct get_one one = { 0 };
	struct hba_nlerr err;
	struct hba_genl g;
	struct nl_msg *msg;
	int r;

	r = hba_genl_open(&g);
	if (r)
		return r;
	msg = hba_genl_msg(&g, EMUHBA_CMD_ADAPTER_GET, 0);
	if (!msg || nla_put_string(msg, EMUHBA_A_ADAPTER_BDF, bdf)) {
		nlmsg_free(msg);
		hba_genl_close(&g);
		return fail(HBAMIG_EXIT_FAIL, "out of memory");
	}
	r = hba_genl_talk(&g, msg, get_cb, &one, &err);
	hba_genl_close(&g);
	if (r || !one.n) {
		if (!r || err.error == ENODEV || err.error == ENOENT)
			return fail(HBAMIG_EXIT_NODEV,
				    "storage: %s is not an emuhba adapter",
				    bdf);
		return hba_report_nlerr(bdf, &err);
	}
	if (!one.m.has_backend || !one.m.backend[0] ||
	    !strcmp(one.m.backend, "auto"))
		return fail(HBAMIG_EXIT_NODEV,
			    "storage: %s has no backend block device (\"%s\"): set it with \"hbamig dev set %s backend PATH\"",
			    bdf, one.m.has_backend ? one.m.backend : "",
			    bdf);
	sfmt(buf, len, "%s", one.m.backend);
	return 0;
}

/*
 * The adapter's ns-copy policy: while its namespace is exported for a
 * storage copy, a migration into it takes a source namespace with another
 * identity (the guest keeps its own) and a size up to its own.
 */
static int adapter_ns_copy(const char *bdf, bool on)
{
	struct hba_nlerr err;
	struct hba_genl g;
	struct nl_msg *msg;
	struct nlattr *nest;
	int r;

	r = hba_genl_open(&g);
	if (r)
		return r;
	msg = hba_genl_msg(&g, EMUHBA_CMD_POLICY_SET, 0);
	if (!msg || nla_put_string(msg, EMUHBA_A_ADAPTER_BDF, bdf)) {
		nlmsg_free(msg);
		hba_genl_close(&g);
		return fail(HBAMIG_EXIT_FAIL, "out of memory");
	}
	nest = nla_nest_start(msg, EMUHBA_A_ADAPTER_POLICY);
	nla_put_u8(msg, EMUHBA_A_POLICY_NS_COPY, on);
	nla_nest_end(msg, nest);
	r = hba_genl_talk(&g, msg, NULL, NULL, &err);
	hba_genl_close(&g);
	return r ? hba_report_nlerr("storage: ns-copy", &err) : 0;
}

/* ---- nvmet (configfs) ---- */

struct exp {
	char bdf[HBA_BDF_LEN];
	char dev[HBA_BACKEND_LEN];
	struct stor_target t;
	const char *allow_host;
	const char *netns;	/* listen in this network namespace */
	u16 portid;
	char subsys[PATH_MAX], ns[PATH_MAX], port[PATH_MAX];
	char link[PATH_MAX * 2], host[PATH_MAX], hostlink[PATH_MAX * 2];
	bool mk_subsys, mk_ns, ns_on, mk_port, mk_link, mk_host, mk_hostlink;
};

static int cfs_write(const char *dir, const char *attr, const char *val)
{
	char p[PATH_MAX * 2];

	sfmt(p, sizeof(p), "%s/%s", dir, attr);
	return sysfs_write(p, val);
}

static void warn_undo(const char *what, const char *path, int err)
{
	fprintf(stderr, "%s: storage: could not remove %s %s: %s (\"hbamig storage cleanup\" retries)\n",
		hba_prog, what, path, strerror(-err));
}

static void undo_unlink(const char *p)
{
	if (unlink(p) && errno != ENOENT)
		warn_undo("link", p, -errno);
}

static void undo_rmdir(const char *p)
{
	if (rmdir(p) && errno != ENOENT)
		warn_undo("directory", p, -errno);
}

/* Reverse order of exp_setup; every step only if it was made. */
static void exp_teardown(struct exp *e)
{
	if (e->mk_link)
		undo_unlink(e->link);
	if (e->mk_port)
		undo_rmdir(e->port);
	if (e->ns_on)
		cfs_write(e->ns, "enable", "0");
	if (e->mk_ns)
		undo_rmdir(e->ns);
	if (e->mk_hostlink)
		undo_unlink(e->hostlink);
	if (e->mk_subsys)
		undo_rmdir(e->subsys);
	/* A host entry another subsystem still allows stays. */
	if (e->mk_host && rmdir(e->host) && errno != ENOENT &&
	    errno != EBUSY && errno != ENOTEMPTY)
		warn_undo("host", e->host, -errno);
	e->mk_link = e->mk_port = e->ns_on = e->mk_ns = false;
	e->mk_hostlink = e->mk_subsys = e->mk_host = false;
}

static int nvmet_ready(void)
{
	/*
	 * The port asks for its transport by module alias when enabled;
	 * where the kernel cannot load modules by itself that fails with
	 * a bare EINVAL, so load it here.
	 */
	modprobe("nvmet-tcp");
	if (exists(NVMET))
		return 0;
	if (!exists("/sys/kernel/config/"))
		return fail(HBAMIG_EXIT_NOTSUPP,
			    "storage: configfs is not mounted: mount -t configfs none /sys/kernel/config");
	modprobe("nvmet");
	if (!exists(NVMET))
		return fail(HBAMIG_EXIT_NOTSUPP,
			    "storage: the NVMe target (nvmet) is not available: load the nvmet and nvmet-tcp modules");
	return 0;
}

/* symlink(2) from inside network namespace @netns (/run/netns/NAME). */
static int netns_symlink(const char *netns, const char *target,
			 const char *link)
{
	char p[PATH_MAX];
	int self, ns, r = 0;

	if (!netns)
		return symlink(target, link) ? -errno : 0;
	sfmt(p, sizeof(p), "/run/netns/%s", netns);
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	ns = open(p, O_RDONLY | O_CLOEXEC);
	if (self < 0 || ns < 0 || setns(ns, CLONE_NEWNET)) {
		r = -errno;
		fprintf(stderr, "%s: storage: network namespace %s: %s\n",
			hba_prog, netns, strerror(-r));
		goto out;
	}
	if (symlink(target, link))
		r = -errno;
	if (setns(self, CLONE_NEWNET)) {
		fprintf(stderr, "%s: storage: cannot return to the original network namespace: %s\n",
			hba_prog, strerror(errno));
		abort();
	}
out:
	if (self >= 0)
		close(self);
	if (ns >= 0)
		close(ns);
	return r;
}

static int exp_setup(struct exp *e)
{
	char v[16];
	int r;

	sfmt(e->subsys, sizeof(e->subsys), NVMET "/subsystems/%s",
		 e->t.nqn);
	if (mkdir(e->subsys, 0755)) {
		r = -errno;
		if (r == -EEXIST)
			return fail(HBAMIG_EXIT_BUSY,
				    "storage: %s is already exported (%s exists): another \"hbamig storage export\" runs, or a leftover: \"hbamig storage cleanup %s\"",
				    e->bdf, e->subsys, e->bdf);
		return fail(errno_exit(r), "storage: cannot create %s: %s",
			    e->subsys, strerror(-r));
	}
	e->mk_subsys = true;
	if (e->allow_host) {
		sfmt(e->host, sizeof(e->host), NVMET "/hosts/%s",
			 e->allow_host);
		if (!mkdir(e->host, 0755))
			e->mk_host = true;
		else if (errno != EEXIST)
			goto fail_errno;
		sfmt(e->hostlink, sizeof(e->hostlink),
			 "%s/allowed_hosts/%s", e->subsys, e->allow_host);
		if (symlink(e->host, e->hostlink))
			goto fail_errno;
		e->mk_hostlink = true;
		r = cfs_write(e->subsys, "attr_allow_any_host", "0");
	} else {
		r = cfs_write(e->subsys, "attr_allow_any_host", "1");
	}
	if (r) {
		fail(errno_exit(r), "storage: %s/attr_allow_any_host: %s",
		     e->subsys, strerror(-r));
		goto fail;
	}
	sfmt(e->ns, sizeof(e->ns), "%s/namespaces/1", e->subsys);
	if (mkdir(e->ns, 0755))
		goto fail_errno;
	e->mk_ns = true;
	r = cfs_write(e->ns, "device_path", e->dev);
	/* A block device: the bdev backend, never the page cache. */
	if (!r) {
		r = cfs_write(e->ns, "buffered_io", "0");
		if (r == -ENOENT)
			r = 0;
	}
	if (r) {
		fail(errno_exit(r), "storage: namespace %s: %s", e->dev,
		     strerror(-r));
		goto fail;
	}
	r = cfs_write(e->ns, "enable", "1");
	if (r) {
		fail(errno_exit(r), "storage: nvmet cannot open %s: %s (the kernel log says why)",
		     e->dev, strerror(-r));
		goto fail;
	}
	e->ns_on = true;
	/* A port id of hbamig's range that is free. */
	for (u32 id = STOR_PORTID_MIN; id <= STOR_PORTID_MAX; id++) {
		sfmt(e->port, sizeof(e->port), NVMET "/ports/%u", id);
		if (!mkdir(e->port, 0755)) {
			e->mk_port = true;
			e->portid = (u16)id;
			break;
		}
		if (errno != EEXIST)
			goto fail_errno;
	}
	if (!e->mk_port) {
		fail(HBAMIG_EXIT_BUSY, "storage: every nvmet port id %#x..%#x is taken: \"hbamig storage cleanup\"",
		     STOR_PORTID_MIN, STOR_PORTID_MAX);
		goto fail;
	}
	sfmt(v, sizeof(v), "%u", e->t.port);
	r = cfs_write(e->port, "addr_trtype", "tcp");
	if (!r)
		r = cfs_write(e->port, "addr_adrfam", e->t.ipv6 ? "ipv6" : "ipv4");
	if (!r)
		r = cfs_write(e->port, "addr_traddr", e->t.addr);
	if (!r)
		r = cfs_write(e->port, "addr_trsvcid", v);
	if (r) {
		fail(errno_exit(r), "storage: nvmet port %s: %s", e->port,
		     strerror(-r));
		goto fail;
	}
	sfmt(e->link, sizeof(e->link), "%s/subsystems/%s", e->port,
		 e->t.nqn);
	/*
	 * The link enables the port: nvmet-tcp binds ADDR:PORT now, in the
	 * network namespace of the writer.
	 */
	r = netns_symlink(e->netns, e->subsys, e->link);
	if (r) {
		fail(r == -EADDRINUSE ? HBAMIG_EXIT_BUSY : errno_exit(r),
		     "storage: nvmet cannot listen on %s:%u: %s%s", e->t.addr,
		     e->t.port, strerror(-r),
		     r == -EADDRINUSE ? " (another listener has it)" :
		     r == -EADDRNOTAVAIL ? " (no interface has that address)" :
		     " (is nvmet-tcp available? the kernel log says why)");
		goto fail;
	}
	e->mk_link = true;
	return 0;

fail_errno:
	r = -errno;
	fail(errno_exit(r), "storage: nvmet configuration failed: %s",
	     strerror(-r));
fail:
	exp_teardown(e);
	return r < 0 ? errno_exit(r) : HBAMIG_EXIT_FAIL;
}

/* ---- nvme-tcp ---- */

static int ctrl_path(const struct stor_copy *c, const char *attr, char *p,
		     size_t len)
{
	int n = sfmt(p, len, NVME_CLASS "/%s/%s", c->ctrl, attr);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Still the controller we made (instance numbers are reused)? */
static bool ctrl_is_ours(const struct stor_copy *c)
{
	char p[PATH_MAX], v[STOR_NQN_MAX + 2];

	return !ctrl_path(c, "subsysnqn", p, sizeof(p)) &&
	       !sysfs_read(p, v, sizeof(v)) && !strcmp(v, c->tgt.nqn);
}

static enum stor_ctrl_state ctrl_state(const struct stor_copy *c)
{
	char p[PATH_MAX], v[64];

	if (ctrl_path(c, "state", p, sizeof(p)) || sysfs_read(p, v, sizeof(v)))
		return STOR_CTRL_DEAD;
	return stor_parse_ctrl_state(v);
}

static void disconnect(struct stor_copy *c)
{
	char p[PATH_MAX];
	int r;

	if (!c->connected)
		return;
	c->connected = false;
	if (!ctrl_is_ours(c))
		return;
	r = ctrl_path(c, "delete_controller", p, sizeof(p));
	if (!r)
		r = sysfs_write(p, "1");
	if (r && r != -ENOENT)
		fprintf(stderr, "%s: storage: cannot disconnect %s: %s (\"nvme disconnect -d %s\" or \"hbamig storage cleanup\")\n",
			hba_prog, c->ctrl, strerror(-r), c->ctrl);
}

static int connect_target(struct stor_copy *c)
{
	char opts[1024], reply[128], hn[STOR_NQN_MAX + 2];
	ssize_t n;
	int fd, r;

	/*
	 * The host NQN and ID nvme-cli uses, when there are: the ID from
	 * /etc/nvme/hostid, or the UUID of a uuid-style NQN. Without an ID
	 * the kernel's default host (NQN and ID) is used: it refuses a
	 * known ID with another NQN.
	 */
	if (!sysfs_read("/etc/nvme/hostnqn", hn, sizeof(hn)) &&
	    stor_valid_nqn(hn)) {
		char id[64];
		const char *u = strstr(hn, ":uuid:");

		if (!sysfs_read("/etc/nvme/hostid", id, sizeof(id)) &&
		    stor_valid_uuid(id))
			sfmt(c->hostid, sizeof(c->hostid), "%s", id);
		else if (u && stor_valid_uuid(u + 6))
			sfmt(c->hostid, sizeof(c->hostid), "%s", u + 6);
		if (c->hostid[0])
			sfmt(c->hostnqn, sizeof(c->hostnqn), "%s", hn);
	}
	r = stor_fabrics_options(&c->tgt, c->hostnqn[0] ? c->hostnqn : NULL,
				 c->hostid[0] ? c->hostid : NULL, opts,
				 sizeof(opts));
	if (r)
		return fail(HBAMIG_EXIT_USAGE, "storage: bad target or host NQN");
	/* As for nvmet-tcp: the transport is not always loaded on demand. */
	modprobe("nvme-tcp");
	fd = open(FABRICS, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && !modprobe("nvme-fabrics"))
		fd = open(FABRICS, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		return fail(r == -ENOENT ? HBAMIG_EXIT_NOTSUPP : errno_exit(r),
			    "storage: %s: %s (load nvme-fabrics and nvme-tcp)",
			    FABRICS, strerror(-r));
	}
	n = write(fd, opts, strlen(opts));
	if (n < 0) {
		r = -errno;
		close(fd);
		return fail(r == -EALREADY ? HBAMIG_EXIT_BUSY : HBAMIG_EXIT_FAIL,
			    "storage: cannot connect to %s:%u (%s): %s%s",
			    c->tgt.addr, c->tgt.port, c->tgt.nqn, strerror(-r),
			    r == -EALREADY ? "; this host is connected to it already: \"hbamig storage cleanup\"" :
			    "; is \"hbamig storage export\" running there, reachable through the firewall, allowing this host's NQN?");
	}
	n = read(fd, reply, sizeof(reply) - 1);
	r = n < 0 ? -errno : 0;
	close(fd);
	if (n < 0)
		n = 0;
	reply[n] = 0;
	if (r || stor_parse_fabrics_reply(reply, &c->instance, &c->cntlid))
		return fail(HBAMIG_EXIT_FAIL,
			    "storage: %s answered \"%.60s\", not instance=N,cntlid=M: the controller's state is unknown; \"hbamig storage cleanup\"",
			    FABRICS, reply);
	sfmt(c->ctrl, sizeof(c->ctrl), "nvme%d", c->instance);
	c->connected = true;
	return 0;
}

/*
 * A disk the kernel has finished adding: its /dev node opens. add_disk
 * makes /sys/block/NAME/dev and the node first, then the queue's sysfs
 * directory, and only then the block device that opens (6.12
 * device_add_disk()); a namespace read in between has no logical block
 * size yet (seen when a loaded machine connected during a link cut).
 */
static bool disk_ready(const char *disk)
{
	char p[PATH_MAX];
	int fd;

	sfmt(p, sizeof(p), "/dev/%s", disk);
	fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Namespace 1 of our controller: "nvmeXcNn1" (multipath) or "nvmeNn1". */
static int find_remote_ns(struct stor_copy *c)
{
	u64 t0 = stor_now_ns();
	char p[PATH_MAX], disk[32];
	struct dirent *d;
	DIR *dir;
	u32 nsid;

	for (;;) {
		sfmt(p, sizeof(p), NVME_CLASS "/%s", c->ctrl);
		dir = opendir(p);
		while (dir && (d = readdir(dir))) {
			if (stor_parse_ns_entry(d->d_name, disk, sizeof(disk),
						&nsid) || nsid != 1)
				continue;
			sfmt(c->disk, sizeof(c->disk), "%s", disk);
			if (disk_ready(disk)) {
				closedir(dir);
				return 0;
			}
		}
		if (dir)
			closedir(dir);
		if (stor_now_ns() - t0 > NS_WAIT_MS * 1000000ull)
			return fail(HBAMIG_EXIT_FAIL,
				    "storage: %s (%s) shows no namespace 1 after %d s",
				    c->ctrl, c->tgt.nqn, NS_WAIT_MS / 1000);
		stor_sleep_ms(50);
	}
}

/* ---- the copy engine ---- */

void stor_copy_init(struct stor_copy *c)
{
	memset(c, 0, sizeof(*c));
	c->dmfd = -1;
}

double stor_copy_ms(const struct stor_copy *c)
{
	if (!c->t_mirror)
		return 0;
	return ((c->t_sync ? c->t_sync : stor_now_ns()) - c->t_mirror) / 1e6;
}

static int dm_ready(struct stor_copy *c)
{
	int fd;

	modprobe("dm-mirror");
	fd = stor_dm_open();
	if (fd == -ENOENT && !modprobe("dm_mod"))
		fd = stor_dm_open();
	if (fd < 0)
		return fail(fd == -ENOENT ? HBAMIG_EXIT_NOTSUPP : errno_exit(fd),
			    "storage: /dev/mapper/control: %s (load dm_mod and dm_mirror)",
			    strerror(-fd));
	c->dmfd = fd;
	return 0;
}

int stor_copy_prepare(struct stor_copy *c, const char *tag,
		      const char *local, const char *target)
{
	struct blk lb, rb;
	char p[PATH_MAX + 16], name[128];
	int r;

	if (stor_parse_target(target, &c->tgt))
		return usage_error("storage: \"%s\" is not a target (tcp://ADDR:PORT/NQN as \"hbamig storage export\" prints it)",
				   target);
	sfmt(c->bdf, sizeof(c->bdf), "%s", tag);
	sfmt(c->local, sizeof(c->local), "%s", local);
	r = sfmt(c->dm_name, sizeof(c->dm_name), STOR_DM_PREFIX "%s", tag);
	if (r < 0 || (size_t)r >= sizeof(c->dm_name))
		return usage_error("storage: name \"%s\" too long", tag);
	if (!local[0] || !strcmp(local, "auto") || local[0] != '/')
		return fail(HBAMIG_EXIT_NODEV,
			    "storage: the source's backend is \"%s\", not a block device path: set it with \"hbamig dev set BDF backend PATH\"",
			    local);
	r = blk_of_path(local, &lb);
	if (r)
		return fail(r == -ENOTBLK ? HBAMIG_EXIT_NODEV : errno_exit(r), "storage: backend %s: %s", local,
			    r == -ENOTBLK ? "not a block device" : strerror(-r));
	/* A leftover copy device must not become the next copy's source. */
	sfmt(p, sizeof(p), "%s/dm/name", lb.sys);
	if (!sysfs_read(p, name, sizeof(name)) &&
	    !strncmp(name, STOR_DM_PREFIX, strlen(STOR_DM_PREFIX)))
		return fail(HBAMIG_EXIT_BUSY,
			    "storage: the backend %s is the copy device %s of an earlier run: point the adapter at its namespace and run \"hbamig storage cleanup\"",
			    local, name);
	if (lb.meta)
		return fail(HBAMIG_EXIT_NOTSUPP,
			    "storage: %s has %u metadata bytes per block: device-mapper copies data only",
			    local, lb.meta);
	c->lmaj = lb.maj;
	c->lmin = lb.min;
	c->sectors = lb.sectors;
	c->lbs = lb.lbs;
	c->lmeta = lb.meta;
	if (!c->sectors)
		return fail(HBAMIG_EXIT_FAIL, "storage: %s is empty", local);
	r = dm_ready(c);
	if (r)
		return r;
	r = connect_target(c);
	if (r)
		goto fail;
	r = find_remote_ns(c);
	if (r)
		goto fail;
	r = blk_of_disk(c->disk, &rb);
	if (r) {
		r = fail(HBAMIG_EXIT_FAIL, "storage: remote namespace %s: %s",
			 c->disk, strerror(-r));
		goto fail;
	}
	c->rmaj = rb.maj;
	c->rmin = rb.min;
	c->rsectors = rb.sectors;
	c->rlbs = rb.lbs;
	c->rmeta = rb.meta;
	if (c->rsectors < c->sectors) {
		r = fail(HBAMIG_EXIT_FAIL,
			 "storage: destination refused: its namespace (%s, %llu bytes) is smaller than %s (%llu bytes); nothing was changed",
			 c->disk, (unsigned long long)c->rsectors * 512, local,
			 (unsigned long long)c->sectors * 512);
		goto fail;
	}
	if (c->rlbs != c->lbs || c->rmeta != c->lmeta) {
		r = fail(HBAMIG_EXIT_FAIL,
			 "storage: destination refused: its namespace (%s) has %u-byte blocks with %u metadata bytes, %s has %u with %u; nothing was changed",
			 c->disk, c->rlbs, c->rmeta, local, c->lbs, c->lmeta);
		goto fail;
	}
	c->region = stor_region_sectors(c->sectors);
	return 0;
fail:
	disconnect(c);
	close(c->dmfd);
	c->dmfd = -1;
	return r;
}

int stor_copy_linear(struct stor_copy *c)
{
	struct stor_dm_dev d;
	char uuid[DM_UUID_LEN], params[64];
	int r;

	sfmt(uuid, sizeof(uuid), STOR_DM_UUID_PREFIX "%s", c->bdf);
	r = stor_dm_create(c->dmfd, c->dm_name, uuid, &d);
	if (r)
		return fail(r == -EBUSY || r == -EEXIST ? HBAMIG_EXIT_BUSY :
			    errno_exit(r),
			    "storage: cannot create dm device %s: %s%s",
			    c->dm_name, strerror(-r),
			    r == -EBUSY || r == -EEXIST ?
			    " (a leftover: \"hbamig storage cleanup\")" : "");
	c->dm_created = true;
	c->dm_minor = d.minor;
	sfmt(c->dm_path, sizeof(c->dm_path), "/dev/dm-%u", d.minor);
	sfmt(params, sizeof(params), "%u:%u 0", c->lmaj, c->lmin);
	r = stor_dm_load(c->dmfd, c->dm_name, c->sectors, "linear", params,
			 true);
	if (r) {
		fail(errno_exit(r), "storage: dm %s: linear table: %s",
		     c->dm_name, strerror(-r));
		goto fail;
	}
	r = wait_node(c->dm_path, d.major, d.minor);
	if (r) {
		fail(HBAMIG_EXIT_FAIL, "storage: %s did not appear (is devtmpfs mounted on /dev?)",
		     c->dm_path);
		goto fail;
	}
	return 0;
fail:
	stor_dm_remove(c->dmfd, c->dm_name, true);
	c->dm_created = false;
	return r < 0 ? errno_exit(r) : HBAMIG_EXIT_FAIL;
}

int stor_copy_mirror(struct stor_copy *c)
{
	char params[256];
	int r;

	/* Resync from local (the first leg, also the one reads use). */
	sfmt(params, sizeof(params),
		 "core 2 %u sync 2 %u:%u 0 %u:%u 0 1 handle_errors",
		 c->region, c->lmaj, c->lmin, c->rmaj, c->rmin);
	c->t_mirror = stor_now_ns();
	c->last_t = c->t_mirror;
	r = stor_dm_load(c->dmfd, c->dm_name, c->sectors, "mirror", params,
			 true);
	if (r)
		return fail(errno_exit(r), "storage: dm %s: mirror table: %s (is dm_mirror available?)",
			    c->dm_name, strerror(-r));
	c->mirrored = true;
	return 0;
}

int stor_copy_unmirror(struct stor_copy *c)
{
	char params[64];
	int r;

	if (!c->mirrored)
		return 0;
	sfmt(params, sizeof(params), "%u:%u 0", c->lmaj, c->lmin);
	r = stor_dm_load(c->dmfd, c->dm_name, c->sectors, "linear", params,
			 true);
	if (r) {
		fprintf(stderr, "%s: storage: dm %s: back to linear: %s; the remote leg stays (\"hbamig storage cleanup\")\n",
			hba_prog, c->dm_name, strerror(-r));
		return r;
	}
	c->mirrored = false;
	return 0;
}

void stor_copy_release(struct stor_copy *c)
{
	int r;

	if (c->mirrored && stor_copy_unmirror(c))
		return;	/* the remote leg is in use: keep it connected */
	disconnect(c);
	if (c->dm_created) {
		/* Goes now, or once its last user (the model) closes it. */
		r = stor_dm_remove(c->dmfd, c->dm_name, true);
		if (r && r != -ENXIO)
			fprintf(stderr, "%s: storage: dm %s: remove: %s\n",
				hba_prog, c->dm_name, strerror(-r));
		c->dm_created = false;
	}
	if (c->dmfd >= 0)
		close(c->dmfd);
	c->dmfd = -1;
}

static const char *health_name(char h)
{
	switch (h) {
	case 'D':
		return "write failure";
	case 'S':
		return "resync failure";
	case 'R':
		return "read failure";
	case 'F':
		return "flush failure";
	default:
		return "failure";
	}
}

int stor_copy_poll(struct stor_copy *c)
{
	char type[32], line[512];
	enum stor_ctrl_state cs;
	u64 bytes, total = c->sectors * 512;
	int r, leg;

	r = stor_dm_status(c->dmfd, c->dm_name, false, type, sizeof(type),
			   line, sizeof(line));
	if (r || strcmp(type, "mirror") ||
	    stor_parse_mirror_status(line, &c->st)) {
		sfmt(c->why, sizeof(c->why),
			 "dm %s: unreadable mirror status (%s)", c->dm_name,
			 r ? strerror(-r) : line);
		return -1;
	}
	leg = stor_mirror_failed_leg(&c->st);
	if (leg >= 0) {
		sfmt(c->why, sizeof(c->why),
			 "dm %s reports a %s of its %s leg (%s)", c->dm_name,
			 health_name(c->st.health[leg]),
			 leg ? "remote" : "local",
			 leg ? c->disk : c->local);
		return -1;
	}
	cs = ctrl_state(c);
	if (cs != STOR_CTRL_LIVE) {
		sfmt(c->why, sizeof(c->why),
			 "the nvme-tcp controller %s to %s:%u is %s: the link to the destination is broken",
			 c->ctrl, c->tgt.addr, c->tgt.port,
			 stor_ctrl_state_name(cs));
		return -1;
	}
	bytes = c->st.in_sync * (u64)c->region * 512;
	c->copy_bytes = bytes > total ? total : bytes;
	if (c->st.in_sync == c->st.regions) {
		if (!c->t_sync)
			c->t_sync = stor_now_ns();
		return 1;
	}
	return 0;
}

int stor_copy_check(struct stor_copy *c)
{
	/*
	 * Armed before the status is read, so that an event between the
	 * read and the wait still ends the wait. Without the ioctl (dm
	 * before 4.37) the wait is a plain sleep.
	 */
	c->armed = !stor_dm_arm_poll(c->dmfd);
	return stor_copy_poll(c);
}

void stor_copy_wait(struct stor_copy *c, int ms)
{
	struct pollfd pfd = { .fd = c->dmfd, .events = POLLIN };

	if (!c->armed || poll(&pfd, 1, ms) < 0)
		stor_sleep_ms(ms);
	c->armed = false;
}

void stor_copy_progress(struct stor_copy *c, bool json, bool tty)
{
	u64 now = stor_now_ns(), total = c->sectors * 512;
	double dt = (now - c->last_t) / 1e9, eta = -1;

	if (dt < 1 && c->copy_bytes < total)
		return;
	if (dt > 0)
		c->mbps = (double)(c->copy_bytes - c->last_bytes) / 1e6 / dt;
	c->last_t = now;
	c->last_bytes = c->copy_bytes;
	if (c->mbps > 0)
		eta = (double)(total - c->copy_bytes) / 1e6 / c->mbps;
	if (json) {
		struct json_object *o = jo();

		js(o, "event", "copy-progress");
		js(o, "dev", c->bdf);
		ju(o, "copied_bytes", c->copy_bytes);
		ju(o, "total_bytes", total);
		ju(o, "regions_in_sync", c->st.in_sync);
		ju(o, "regions", c->st.regions);
		jd(o, "mb_per_s", c->mbps);
		if (eta >= 0)
			jd(o, "eta_s", eta);
		else
			json_object_object_add(o, "eta_s", NULL);
		jout(o);
	} else if (tty) {
		printf("copy: %5.1f %%  %.1f/%.1f MiB  %.1f MB/s  ETA %s%.0f s\n",
		       total ? 100.0 * c->copy_bytes / total : 100.0,
		       c->copy_bytes / 1048576.0, total / 1048576.0, c->mbps,
		       eta < 0 ? "> " : "", eta < 0 ? 0 : eta);
		fflush(stdout);
	}
}

int stor_copy_flush(struct stor_copy *c)
{
	int fd = open(c->dm_path, O_RDWR | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		r = -errno;
	close(fd);
	return r;
}

/* ---- storage export ---- */

static void storage_usage(FILE *f)
{
	fprintf(f,
"Usage: hbamig [-j] storage export BDF --listen ADDR[:PORT]\n"
"                     [--allow-host HOSTNQN] [--timeout S] [--netns NAME]\n"
"       hbamig [-j] storage cleanup [BDF]\n"
"       hbamig [-j] storage mirror DEVICE TARGET [--name TAG] [--hold]\n"
"\n"
"export (destination): exports the block device behind adapter BDF's\n"
"backend with the kernel NVMe target over TCP (nvmet), prints the TARGET\n"
"(tcp://ADDR:PORT/NQN) for \"hbamig migrate --copy-storage TARGET\" on the\n"
"source, and holds it until SIGINT/SIGTERM/SIGHUP, --timeout S or the end\n"
"of stdin (a pipe or terminal); then removes everything it made.\n"
"PORT defaults to %d. Without --allow-host any host reaching the port may\n"
"connect. --netns NAME: listen in network namespace NAME (ip netns).\n"
"cleanup: removes leftover emuhba copy objects (dm devices %s*,\n"
"nvme-tcp controllers and nvmet subsystems %s*, nvmet ports\n"
"%#x..%#x without subsystems), of BDF only when given.\n"
"mirror (test and debugging): the source's engine on DEVICE without an\n"
"adapter or VM: connect to TARGET, mirror DEVICE onto it through\n"
"/dev/dm-N, report progress until in sync; --hold keeps the mirror (and\n"
"watches it) until a signal or the end of stdin.\n"
"Exit status: 0 ok, 1 failed or refused, 2 usage, 4 not permitted,\n"
"5 no such adapter or device, 6 busy, 7 the kernel lacks nvmet, nvme-tcp\n"
"or device-mapper.\n",
		STOR_DEF_PORT, STOR_DM_PREFIX, STOR_NQN_PREFIX,
		STOR_PORTID_MIN, STOR_PORTID_MAX);
}

static void set_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = stor_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Stdin counts when it can end: a pipe, a socket or a terminal. */
static bool watch_stdin(void)
{
	struct stat st;

	if (fstat(STDIN_FILENO, &st))
		return false;
	return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
	       isatty(STDIN_FILENO);
}

/* A watched stdin that has ended (non-blocking look). */
static bool stdin_ended(void)
{
	struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
	char buf[256];
	ssize_t n;

	if (!watch_stdin() || poll(&pfd, 1, 0) <= 0)
		return false;
	n = read(STDIN_FILENO, buf, sizeof(buf));
	return n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN);
}

/*
 * Wait for a reason to end: a signal, @deadline_ns (0: none), stdin's end,
 * or @check returning non-zero (called every POLL_MS). Returns a static
 * string naming the reason, or NULL when @check ended it.
 */
static const char *hold(u64 deadline_ns, int (*check)(void *), void *arg)
{
	struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
	bool in = watch_stdin();
	char buf[256];
	ssize_t n;

	for (;;) {
		if (stor_stop)
			return sig_name(stor_stop);
		if (deadline_ns && stor_now_ns() >= deadline_ns)
			return "--timeout";
		if (check && check(arg))
			return NULL;
		if (in && poll(&pfd, 1, POLL_MS) > 0) {
			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EINTR &&
				       errno != EAGAIN))
				return "end of stdin";
		} else if (!in) {
			stor_sleep_ms(POLL_MS);
		}
	}
}

static int do_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "allow-host", required_argument, NULL, 'a' },
		{ "timeout", required_argument, NULL, 't' },
		{ "netns", required_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 },
	};
	struct exp e;
	struct blk b;
	char target[STOR_NQN_MAX + 80];
	const char *listen = NULL, *why;
	u32 timeout = 0;
	u64 deadline = 0;
	int c, r;

	memset(&e, 0, sizeof(e));
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case 'a':
			if (!stor_valid_nqn(optarg))
				return usage_error("storage export: --allow-host \"%s\" is not an NQN (nqn. then letters, digits, . : _ -)",
						   optarg);
			e.allow_host = optarg;
			break;
		case 'N':
			if (!optarg[0] || strchr(optarg, '/') ||
			    strlen(optarg) > 64)
				return usage_error("storage export: --netns \"%s\" is not a network namespace name",
						   optarg);
			e.netns = optarg;
			break;
		case 't':
			if (parse_u32("--timeout", optarg, &timeout))
				return HBAMIG_EXIT_USAGE;
			if (!timeout || timeout > 7 * 86400)
				return usage_error("storage export: --timeout: 1..604800 s");
			break;
		default:
			return usage_error("storage export: unknown option or missing value \"%s\"",
					   argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return usage_error("storage export: BDF and --listen ADDR[:PORT] are required");
	if (!valid_bdf(argv[optind]))
		return usage_error("storage export: \"%s\" is not a PCI address (DDDD:BB:DD.F)",
				   argv[optind]);
	if (!listen)
		return usage_error("storage export: --listen ADDR[:PORT] is required");
	r = stor_parse_listen(listen, &e.t);
	if (r)
		return usage_error("storage export: --listen \"%s\": %s", listen,
				   r == -EADDRNOTAVAIL ?
				   "a wildcard address cannot be given to the source: name the address it reaches" :
				   "not ADDR[:PORT] (IPv4, or [IPv6])");
	sfmt(e.bdf, sizeof(e.bdf), "%s", argv[optind]);
	sfmt(e.t.nqn, sizeof(e.t.nqn), STOR_NQN_PREFIX "%s", e.bdf);
	if (timeout)
		deadline = stor_now_ns() + timeout * 1000000000ull;

	r = adapter_backend(e.bdf, e.dev, sizeof(e.dev));
	if (r)
		return r;
	r = blk_of_path(e.dev, &b);
	if (r)
		return fail(r == -ENOTBLK ? HBAMIG_EXIT_NODEV : errno_exit(r), "storage export: backend %s of %s: %s",
			    e.dev, e.bdf,
			    r == -ENOTBLK ? "not a block device" : strerror(-r));
	r = nvmet_ready();
	if (r)
		return r;
	/* From here every exit goes through exp_teardown(). */
	set_signals();
	r = exp_setup(&e);
	if (r)
		return r;
	r = adapter_ns_copy(e.bdf, true);
	if (r) {
		exp_teardown(&e);
		return r;
	}
	stor_format_target(&e.t, target, sizeof(target));
	if (hba_out.json) {
		struct json_object *o = jo();

		js(o, "dev", e.bdf);
		js(o, "device", e.dev);
		ju(o, "size_bytes", b.sectors * 512);
		ju(o, "block_size", b.lbs);
		js(o, "target", target);
		js(o, "nqn", e.t.nqn);
		js(o, "addr", e.t.addr);
		ju(o, "port", e.t.port);
		ju(o, "nvmet_port", e.portid);
		js(o, "allow_host", e.allow_host);
		jout(o);
	} else {
		printf("%s\n", target);
	}
	fflush(stdout);
	if (!hba_out.json)
		fprintf(stderr, "%s: storage export: %s (%llu bytes) exported as %s; holding until SIGINT/SIGTERM%s%s\n",
			hba_prog, e.dev, (unsigned long long)b.sectors * 512,
			target, watch_stdin() ? ", end of stdin" : "",
			timeout ? " or --timeout" : "");
	why = hold(deadline, NULL, NULL);
	exp_teardown(&e);
	/* The adapter may be gone (unbound, module unloaded): said, not fatal. */
	adapter_ns_copy(e.bdf, false);
	if (!hba_out.json)
		fprintf(stderr, "%s: storage export: %s: export of %s removed\n",
			hba_prog, why, e.dev);
	return HBAMIG_EXIT_OK;
}

/* ---- storage cleanup ---- */

struct clean {
	const char *bdf;
	int removed, failed;
	int dmfd;
};

static bool name_matches(const char *name, const char *prefix,
			 const char *bdf)
{
	size_t n = strlen(prefix);

	if (strncmp(name, prefix, n))
		return false;
	return !bdf || !strcmp(name + n, bdf);
}

static void said(struct clean *cl, int r, const char *what, const char *name)
{
	if (r) {
		cl->failed++;
		fprintf(stderr, "%s: storage cleanup: %s %s: %s\n", hba_prog,
			what, name, strerror(-r));
		return;
	}
	cl->removed++;
	if (hba_out.json) {
		struct json_object *o = jo();

		js(o, "removed", what);
		js(o, "name", name);
		jout(o);
	}
	else
		printf("removed %s %s\n", what, name);
}

static int clean_dm_one(const char *name, u32 maj, u32 min, void *arg)
{
	struct clean *cl = arg;
	struct stor_mirror_status st;
	char type[32], line[512], params[64];
	struct stor_dm_dev d;
	int r;

	(void)maj;
	(void)min;
	if (!name_matches(name, STOR_DM_PREFIX, cl->bdf))
		return 0;
	/* A mirror first becomes its local leg: the remote one is let go. */
	if (!stor_dm_status(cl->dmfd, name, true, type, sizeof(type), line,
			    sizeof(line)) && !strcmp(type, "mirror") &&
	    !stor_parse_mirror_table(line, &st) &&
	    !stor_dm_info(cl->dmfd, name, &d)) {
		u64 sectors = 0;
		char p[64], v[32];

		sfmt(p, sizeof(p), "/sys/dev/block/%u:%u/size", d.major,
			 d.minor);
		if (!sysfs_read(p, v, sizeof(v)) &&
		    !stor_parse_u64(v, &sectors) && sectors) {
			sfmt(params, sizeof(params), "%u:%u 0", st.maj[0],
				 st.min[0]);
			r = stor_dm_load(cl->dmfd, name, sectors, "linear",
					 params, true);
			said(cl, r, "mirror leg of", name);
		}
	}
	r = stor_dm_remove(cl->dmfd, name, true);
	if (!r && !stor_dm_info(cl->dmfd, name, &d)) {
		if (!hba_out.json)
			printf("dm device %s is open (%u): removed when its user closes it\n",
			       name, d.open_count);
	}
	said(cl, r, "dm device", name);
	return 0;
}

static bool nvme_unheld(const char *ctrl)
{
	char p[PATH_MAX], disk[32];
	struct dirent *d, *h;
	bool unheld = true;
	DIR *dir, *hd;
	u32 nsid;

	sfmt(p, sizeof(p), NVME_CLASS "/%s", ctrl);
	dir = opendir(p);
	while (dir && (d = readdir(dir))) {
		if (stor_parse_ns_entry(d->d_name, disk, sizeof(disk), &nsid))
			continue;
		sfmt(p, sizeof(p), "/sys/block/%s/holders", disk);
		hd = opendir(p);
		while (hd && (h = readdir(hd)))
			if (h->d_name[0] != '.')
				unheld = false;
		if (hd)
			closedir(hd);
	}
	if (dir)
		closedir(dir);
	return unheld;
}

static void clean_nvme(struct clean *cl)
{
	char p[PATH_MAX], nqn[STOR_NQN_MAX + 2];
	struct dirent *d;
	DIR *dir = opendir(NVME_CLASS);
	int r;

	while (dir && (d = readdir(dir))) {
		if (strncmp(d->d_name, "nvme", 4))
			continue;
		sfmt(p, sizeof(p), NVME_CLASS "/%s/subsysnqn", d->d_name);
		if (sysfs_read(p, nqn, sizeof(nqn)))
			continue;
		if (strncmp(nqn, STOR_NQN_PREFIX, strlen(STOR_NQN_PREFIX)))
			continue;
		/* Of BDF, or no longer under a dm device. */
		if (cl->bdf && !name_matches(nqn, STOR_NQN_PREFIX, cl->bdf) &&
		    !nvme_unheld(d->d_name))
			continue;
		sfmt(p, sizeof(p), NVME_CLASS "/%s/delete_controller",
			 d->d_name);
		r = sysfs_write(p, "1");
		if (r == -ENOENT)
			continue;
		said(cl, r, "nvme-tcp controller", d->d_name);
	}
	if (dir)
		closedir(dir);
}

static void unlink_all(const char *dir_path, struct clean *cl)
{
	char p[PATH_MAX * 2];
	struct dirent *d;
	DIR *dir = opendir(dir_path);

	while (dir && (d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		sfmt(p, sizeof(p), "%s/%s", dir_path, d->d_name);
		if (unlink(p))
			said(cl, -errno, "link", p);
	}
	if (dir)
		closedir(dir);
}

static void clean_nvmet(struct clean *cl)
{
	char p[PATH_MAX * 2], q[PATH_MAX * 3];
	struct dirent *d, *s;
	bool empty;
	DIR *dir, *sd;
	long id;
	char *end;
	int r;

	if (!exists(NVMET))
		return;
	/* Links from every port to our subsystems, then empty ports. */
	dir = opendir(NVMET "/ports");
	while (dir && (d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		sfmt(p, sizeof(p), NVMET "/ports/%s/subsystems", d->d_name);
		empty = true;
		sd = opendir(p);
		while (sd && (s = readdir(sd))) {
			if (s->d_name[0] == '.')
				continue;
			if (!name_matches(s->d_name, STOR_NQN_PREFIX, cl->bdf)) {
				empty = false;
				continue;
			}
			sfmt(q, sizeof(q), "%s/%s", p, s->d_name);
			r = unlink(q) ? -errno : 0;
			said(cl, r, "nvmet port link", q);
			if (r)
				empty = false;
		}
		if (sd)
			closedir(sd);
		id = strtol(d->d_name, &end, 10);
		if (!*end && id >= STOR_PORTID_MIN && id <= STOR_PORTID_MAX &&
		    empty) {
			sfmt(p, sizeof(p), NVMET "/ports/%s", d->d_name);
			said(cl, rmdir(p) ? -errno : 0, "nvmet port", p);
		}
	}
	if (dir)
		closedir(dir);
	dir = opendir(NVMET "/subsystems");
	while (dir && (d = readdir(dir))) {
		if (!name_matches(d->d_name, STOR_NQN_PREFIX, cl->bdf))
			continue;
		sfmt(p, sizeof(p), NVMET "/subsystems/%s/namespaces",
			 d->d_name);
		sd = opendir(p);
		while (sd && (s = readdir(sd))) {
			if (s->d_name[0] == '.')
				continue;
			sfmt(q, sizeof(q), "%s/%s", p, s->d_name);
			cfs_write(q, "enable", "0");
			if (rmdir(q))
				said(cl, -errno, "nvmet namespace", q);
		}
		if (sd)
			closedir(sd);
		sfmt(p, sizeof(p), NVMET "/subsystems/%s/allowed_hosts",
			 d->d_name);
		unlink_all(p, cl);
		sfmt(p, sizeof(p), NVMET "/subsystems/%s", d->d_name);
		said(cl, rmdir(p) ? -errno : 0, "nvmet subsystem", d->d_name);
	}
	if (dir)
		closedir(dir);
}

struct ns_copy_set {
	int n;
	char bdf[32][HBA_BDF_LEN];
};

static int ns_copy_cb(const struct hba_msg *m, void *arg)
{
	struct ns_copy_set *set = arg;

	if (m->cmd == EMUHBA_CMD_ADAPTER_GET && m->has_bdf && m->has_policy &&
	    m->policy.has_ns_copy && m->policy.ns_copy &&
	    set->n < (int)(sizeof(set->bdf) / sizeof(set->bdf[0])))
		sfmt(set->bdf[set->n++], HBA_BDF_LEN, "%s", m->bdf);
	return 0;
}

/* Adapters an export killed without its teardown left in ns-copy. */
static void clean_ns_copy(struct clean *cl)
{
	struct ns_copy_set set = { 0 };
	struct hba_nlerr err;
	struct hba_genl g;
	struct nl_msg *msg;
	int i;

	/* Without the module there is no adapter to mend. */
	if (access("/sys/module/emuhba", F_OK) || hba_genl_open(&g))
		return;
	msg = hba_genl_msg(&g, EMUHBA_CMD_ADAPTER_GET, NLM_F_DUMP);
	if (!msg || hba_genl_talk(&g, msg, ns_copy_cb, &set, &err))
		set.n = 0;
	hba_genl_close(&g);
	for (i = 0; i < set.n; i++)
		if (!cl->bdf || !strcmp(cl->bdf, set.bdf[i]))
			said(cl, adapter_ns_copy(set.bdf[i], false) ? -EIO : 0,
			     "ns-copy policy of adapter", set.bdf[i]);
}

static int do_cleanup(int argc, char **argv)
{
	struct clean cl = { .dmfd = -1 };

	if (argc > 2)
		return usage_error("storage cleanup: unexpected \"%s\"", argv[2]);
	if (argc == 2) {
		if (!valid_bdf(argv[1]))
			return usage_error("storage cleanup: \"%s\" is not a PCI address (DDDD:BB:DD.F)",
					   argv[1]);
		cl.bdf = argv[1];
	}
	/* The user first (dm holds the remote leg), then the provider. */
	cl.dmfd = stor_dm_open();
	if (cl.dmfd == -EACCES || cl.dmfd == -EPERM)
		return fail(HBAMIG_EXIT_PERM, "storage cleanup: /dev/mapper/control: %s",
			    strerror(-cl.dmfd));
	if (cl.dmfd >= 0) {
		int r = stor_dm_list(cl.dmfd, clean_dm_one, &cl);

		if (r)
			said(&cl, r, "listing dm devices", "");
		close(cl.dmfd);
	}
	clean_nvme(&cl);
	clean_nvmet(&cl);
	clean_ns_copy(&cl);
	if (!cl.removed && !hba_out.json)
		printf("nothing to remove\n");
	return cl.failed ? HBAMIG_EXIT_FAIL : HBAMIG_EXIT_OK;
}

/* ---- storage mirror (the engine without an adapter) ---- */

static int hold_check(void *arg)
{
	struct stor_copy *c = arg;

	return stor_copy_poll(c) < 0;
}

static void mirror_report(struct stor_copy *c, const char *status,
			  const char *why)
{
	double ms = stor_copy_ms(c);
	double mbps = ms > 0 ? c->copy_bytes / 1e3 / ms : 0;

	if (hba_out.json) {
		struct json_object *o = jo();
		char remote[48];

		sfmt(remote, sizeof(remote), "/dev/%s", c->disk);
		js(o, "status", status);
		js(o, "device", c->local);
		js(o, "dm", c->dm_path);
		js(o, "remote", remote);
		ju(o, "copy_bytes", c->copy_bytes);
		jd(o, "copy_ms", ms);
		jd(o, "copy_mb_per_s", mbps);
		js(o, "error", why);
		jout(o);
	} else {
		printf("mirror %s -> /dev/%s: %s, %llu bytes in %.0f ms (%.1f MB/s)\n",
		       c->local, c->disk, status,
		       (unsigned long long)c->copy_bytes, ms, mbps);
	}
}

static int do_mirror(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "hold", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct stor_copy *c;
	const char *tag = NULL, *why;
	bool hold_on = false, tty = isatty(STDOUT_FILENO);
	int ch, r;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			tag = optarg;
			break;
		case 'H':
			hold_on = true;
			break;
		default:
			return usage_error("storage mirror: unknown option or missing value \"%s\"",
					   argv[optind - 1]);
		}
	}
	if (optind != argc - 2)
		return usage_error("storage mirror: DEVICE and TARGET are required");
	if (!tag) {
		tag = strrchr(argv[optind], '/');
		tag = tag ? tag + 1 : argv[optind];
	}
	for (const char *p = tag; *p; p++)
		if (*p == '/' || *p <= ' ' || *p > '~')
			return usage_error("storage mirror: --name \"%s\": printable, no '/'",
					   tag);
	c = malloc(sizeof(*c));
	if (!c)
		return fail(HBAMIG_EXIT_FAIL, "out of memory");
	stor_copy_init(c);
	set_signals();
	r = stor_copy_prepare(c, tag, argv[optind], argv[optind + 1]);
	if (r)
		goto out;
	r = stor_copy_linear(c);
	if (r)
		goto release;
	r = stor_copy_mirror(c);
	if (r)
		goto release;
	if (hba_out.json) {
		struct json_object *o = jo();
		char remote[48];

		sfmt(remote, sizeof(remote), "/dev/%s", c->disk);
		js(o, "event", "copy-start");
		js(o, "dm", c->dm_path);
		js(o, "remote", remote);
		js(o, "ctrl", c->ctrl);
		ju(o, "bytes", c->sectors * 512);
		ju(o, "region_bytes", (u64)c->region * 512);
		jout(o);
	}
	else
		printf("mirror %s -> /dev/%s (%s) through %s\n", c->local,
		       c->disk, c->ctrl, c->dm_path);
	fflush(stdout);
	for (;;) {
		r = stor_copy_check(c);
		if (r < 0 || stor_stop)
			break;
		if (stdin_ended()) {
			stor_stop = SIGHUP;
			break;
		}
		stor_copy_progress(c, hba_out.json, tty);
		if (r > 0)
			break;
		stor_copy_wait(c, POLL_MS);
	}
	if (r >= 0 && stor_stop) {
		sfmt(c->why, sizeof(c->why), "%s",
		     stor_stop == SIGHUP ? "SIGHUP or the end of stdin" :
		     sig_name(stor_stop));
		r = -1;
	}
	if (r < 0) {
		/* Back to the local device first: held writes complete. */
		stor_copy_unmirror(c);
		mirror_report(c, "failed", c->why);
		fprintf(stderr, "%s: storage mirror: failed: %s; the remote copy is incomplete\n",
			hba_prog, c->why);
		r = HBAMIG_EXIT_FAIL;
		goto release;
	}
	stor_copy_progress(c, hba_out.json, tty);
	mirror_report(c, "in-sync", NULL);
	r = HBAMIG_EXIT_OK;
	if (hold_on) {
		why = hold(0, hold_check, c);
		if (!why) {
			stor_copy_unmirror(c);
			mirror_report(c, "failed", c->why);
			fprintf(stderr, "%s: storage mirror: failed while holding: %s\n",
				hba_prog, c->why);
			r = HBAMIG_EXIT_FAIL;
		} else if (stor_copy_flush(c)) {
			r = fail(HBAMIG_EXIT_FAIL, "storage mirror: flush of %s failed",
				 c->dm_path);
		}
	}
release:
	stor_copy_release(c);
out:
	free(c);
	return r;
}

int do_storage(int argc, char **argv)
{
	if (argc < 2 || is_help(argv[1])) {
		storage_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? HBAMIG_EXIT_USAGE : HBAMIG_EXIT_OK;
	}
	if (matches(argv[1], "export"))
		return do_export(argc - 1, argv + 1);
	if (matches(argv[1], "cleanup"))
		return do_cleanup(argc - 1, argv + 1);
	if (!strcmp(argv[1], "mirror"))
		return do_mirror(argc - 1, argv + 1);
	return usage_error("storage: unknown command \"%s\"", argv[1]);
}
