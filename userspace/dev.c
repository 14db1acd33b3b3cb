// SPDX-License-Identifier: GPL-2.0-only
/*
 * hbamig dev: adapters bound to emuhba (show, set) and binding VFs to and
 * from emuhba through sysfs (driver_override, unbind, drivers_probe).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/emuhba.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include "hbamig.h"
#include "compat.h"

#define PCI_DEVICES "/sys/bus/pci/devices"
#define EMUHBA_DRIVER "emuhba"
/*
 * One file per chosen VF, named by its address: the udev rule only needs a
 * TEST on the path to leave every other device alone. HBAMIG_BIND_DIR moves
 * it (tests, or a system whose rule reads another directory).
 */
#define HBA_BIND_DIR_HELP "/etc/emuhba/bind.d"

static void dev_usage(FILE *f)
{
	fprintf(f,
"Usage: hbamig dev show [BDF]\n"
"       hbamig dev set BDF [backend PATH|auto]\n"
"                          [policy] [auto-switch on|off]\n"
"                          [quiesce-required on|off] [switch-timeout MS]\n"
"                          [idle-after MS]\n"
"       hbamig dev compat SRC_BDF DST_BDF\n"
"       hbamig dev bind [--persist] BDF\n"
"       hbamig dev unbind [--persist] BDF [driver NAME|none]\n"
"BDF is a VF's PCI address as in sysfs, e.g. 0000:01:00.1.\n"
"backend auto finds the host block device that reaches the adapter's\n"
"namespace (by NGUID, EUI64, or subsystem NQN and NSID) and sets it.\n"
"compat asks DST_BDF whether it can take SRC_BDF's guest; it exits 0 when\n"
"compatible, 1 when not, and prints the verdict field by field.\n"
"bind and unbind refuse a VF that a process, a mount or a VMM uses.\n"
"--persist also records (bind) or forgets (unbind) the choice in\n"
HBA_BIND_DIR_HELP "/BDF, so that the VF is bound to emuhba\n"
"whenever it appears, e.g. at boot (udev rule 90-emuhba.rules); bind\n"
"--persist records a VF that does not exist yet.\n");
}

/* ---- sysfs ---- */

int sysfs_read(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return 0;
}

int sysfs_write(const char *path, const char *val)
{
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	if (n < 0)
		return -errno;
	return (size_t)n == strlen(val) ? 0 : -EIO;
}

bool pci_exists(const char *bdf)
{
	char p[PATH_MAX];
	struct stat st;

	snprintf(p, sizeof(p), PCI_DEVICES "/%s", bdf);
	return !stat(p, &st);
}

/* Name of the bound driver, "" when unbound. */
int pci_driver_of(const char *bdf, char *buf, size_t len)
{
	char p[PATH_MAX], t[PATH_MAX];
	ssize_t n;
	char *s;

	snprintf(p, sizeof(p), PCI_DEVICES "/%s/driver", bdf);
	n = readlink(p, t, sizeof(t) - 1);
	if (n < 0) {
		if (errno != ENOENT)
			return -errno;
		buf[0] = 0;
		return 0;
	}
	t[n] = 0;
	s = strrchr(t, '/');
	snprintf(buf, len, "%s", s ? s + 1 : t);
	return 0;
}

/* ---- genl requests ---- */

static int put_bdf(struct nl_msg *msg, const char *bdf)
{
	return nla_put_string(msg, EMUHBA_A_ADAPTER_BDF, bdf);
}

struct show_ctx {
	int count;
	struct hba_msg last;
};

static int show_cb(const struct hba_msg *m, void *arg)
{
	struct show_ctx *c = arg;

	if (m->cmd != EMUHBA_CMD_ADAPTER_GET)
		return 0;
	c->count++;
	c->last = *m;
	hba_print_adapter(m);
	return 0;
}

/* Fetch one adapter's state without printing (bind/unbind checks). */
static int keep_cb(const struct hba_msg *m, void *arg)
{
	struct show_ctx *c = arg;

	if (m->cmd == EMUHBA_CMD_ADAPTER_GET) {
		c->count++;
		c->last = *m;
	}
	return 0;
}

static int adapter_get(struct hba_genl *g, const char *bdf,
		       struct hba_msg *m, struct hba_nlerr *err)
{
	struct show_ctx c = { 0 };
	struct nl_msg *msg;
	int ret;

	msg = hba_genl_msg(g, EMUHBA_CMD_ADAPTER_GET, 0);
	if (!msg || put_bdf(msg, bdf)) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	ret = hba_genl_talk(g, msg, keep_cb, &c, err);
	if (!ret && !c.count)
		ret = -ENODEV;
	if (!ret)
		*m = c.last;
	return ret;
}

static int dev_show(int argc, char **argv)
{
	struct show_ctx c = { 0 };
	struct hba_nlerr err;
	struct hba_genl g;
	struct nl_msg *msg;
	const char *bdf = NULL;
	int ret;

	if (argc > 1 && is_help(argv[1])) {
		dev_usage(stdout);
		return HBAMIG_EXIT_OK;
	}
	if (argc > 2)
		return usage_error("dev show: unexpected \"%s\"", argv[2]);
	if (argc == 2) {
		bdf = argv[1];
		if (!valid_bdf(bdf))
			return usage_error("dev show: \"%s\" is not a PCI address (DDDD:BB:DD.F)",
					   bdf);
	}
	ret = hba_genl_open(&g);
	if (ret)
		return ret;
	msg = hba_genl_msg(&g, EMUHBA_CMD_ADAPTER_GET, bdf ? 0 : NLM_F_DUMP);
	if (!msg || (bdf && put_bdf(msg, bdf))) {
		nlmsg_free(msg);
		hba_genl_close(&g);
		return fail(HBAMIG_EXIT_FAIL, "out of memory");
	}
	if (hba_out.json)
		out_arr_start(NULL);
	ret = hba_genl_talk(&g, msg, show_cb, &c, &err);
	if (hba_out.json) {
		out_arr_end();
		out_eol();
	}
	hba_genl_close(&g);
	if (ret)
		return hba_report_nlerr(bdf ? bdf : "dev show", &err);
	return HBAMIG_EXIT_OK;
}

/* ---- backend auto: the host block device of the adapter's namespace ---- */

struct ns_ident {
	bool got;
	u32 nsid;
	bool has_nguid, has_eui64;
	u8 nguid[16];
	u8 eui64[8];
	char subnqn[EMUHBA_SUBNQN_MAX_LEN + 1];
};

static int ident_attr_str(const struct nlattr *a, char *buf, size_t size)
{
	const char *d = nla_data(a), *nul;
	int len = nla_len(a);

	nul = len > 0 ? memchr(d, 0, len) : NULL;
	if (!nul || (size_t)(nul - d) + 1 > size)
		return -EBADMSG;
	memcpy(buf, d, nul - d + 1);
	return 0;
}

/* The identity attributes of an adapter-get reply (parse.c skips them). */
static int ident_cb(const void *nlh, void *arg)
{
	const struct nlmsghdr *h = nlh;
	const struct genlmsghdr *gh;
	struct ns_ident *id = arg;
	const struct nlattr *a;
	int rem, err = 0;

	if (h->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN))
		return -EBADMSG;
	gh = nlmsg_data((struct nlmsghdr *)h);
	if (gh->cmd != EMUHBA_CMD_ADAPTER_GET)
		return 0;
	id->got = true;
	nla_for_each_attr(a, genlmsg_attrdata(gh, 0), genlmsg_attrlen(gh, 0),
			  rem) {
		switch (nla_type(a)) {
		case EMUHBA_A_ADAPTER_NSID:
			if (nla_len(a) != sizeof(u32))
				return -EBADMSG;
			id->nsid = nla_get_u32((struct nlattr *)a);
			break;
		case EMUHBA_A_ADAPTER_NGUID:
			if (nla_len(a) != sizeof(id->nguid))
				return -EBADMSG;
			memcpy(id->nguid, nla_data(a), sizeof(id->nguid));
			id->has_nguid = true;
			break;
		case EMUHBA_A_ADAPTER_EUI64:
			if (nla_len(a) != sizeof(id->eui64))
				return -EBADMSG;
			memcpy(id->eui64, nla_data(a), sizeof(id->eui64));
			id->has_eui64 = true;
			break;
		case EMUHBA_A_ADAPTER_SUBNQN:
			err = ident_attr_str(a, id->subnqn, sizeof(id->subnqn));
			break;
		}
		if (err)
			return err;
	}
	return 0;
}

/*
 * The hex digits of a sysfs identifier ("%pU" NGUID, "%8ph" EUI64) as
 * bytes; -1 unless there are exactly n bytes' worth.
 */
static int hex_id(const char *s, u8 *out, size_t n)
{
	size_t digits = 0;

	memset(out, 0, n);
	for (; *s; s++) {
		int v;

		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			v = *s - 'A' + 10;
		else
			continue;
		if (digits == 2 * n)
			return -1;
		out[digits / 2] |= (u8)(v << (digits % 2 ? 0 : 4));
		digits++;
	}
	return digits == 2 * n ? 0 : -1;
}

static void id_hex(const u8 *b, size_t n, char *buf)
{
	for (size_t i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02x", b[i]);
}

#define SYS_BLOCK "/sys/class/block"
#define AUTO_MAX_CANDS 32

struct auto_cand {
	char name[NAME_MAX + 1];	/* block device, or its dm-multipath holder */
	char path_of[NAME_MAX + 1];	/* the matching nvme device */
	const char *by;
	bool own;			/* reached through the adapter's VF */
	bool multipath;
};

/* Does a sysfs device lie below the PCI function @bdf? */
static bool sys_below(const char *sys, const char *bdf)
{
	char real[PATH_MAX], pat[HBA_BDF_LEN + 3];

	if (!realpath(sys, real))
		return false;
	snprintf(pat, sizeof(pat), "/%s/", bdf);
	return strstr(real, pat) != NULL;
}

/*
 * The device itself or any path of a native multipath head: the head
 * nvme<S>n<N> has its paths as hidden devices nvme<S>c<C>n<N>.
 */
static bool reached_through(const char *name, const char *bdf, bool *mp)
{
	unsigned int s, n, ps, pc, pn;
	char p[PATH_MAX], tail;
	struct dirent *de;
	bool own = false;
	DIR *d;

	snprintf(p, sizeof(p), SYS_BLOCK "/%s", name);
	if (sys_below(p, bdf))
		return true;
	if (sscanf(name, "nvme%un%u%c", &s, &n, &tail) != 2)
		return false;
	d = opendir(SYS_BLOCK);
	while (d && (de = readdir(d))) {
		if (sscanf(de->d_name, "nvme%uc%un%u%c", &ps, &pc, &pn,
			   &tail) != 3 || ps != s || pn != n)
			continue;
		*mp = true;
		snprintf(p, sizeof(p), SYS_BLOCK "/%s", de->d_name);
		if (sys_below(p, bdf))
			own = true;
	}
	if (d)
		closedir(d);
	return own;
}

/* A dm-multipath map holding the device: the path to use instead. */
static bool mpath_holder(const char *name, char *holder, size_t len)
{
	char p[PATH_MAX], uuid[128];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(p, sizeof(p), SYS_BLOCK "/%s/holders", name);
	d = opendir(p);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		snprintf(p, sizeof(p), SYS_BLOCK "/%s/dm/uuid", de->d_name);
		if (!sysfs_read(p, uuid, sizeof(uuid)) &&
		    !strncmp(uuid, "mpath-", 6))
			snprintf(holder, len, "%s", de->d_name);
		else
			n = 100;
	}
	if (d)
		closedir(d);
	return n == 1;
}

static const char *auto_match(const char *name, const struct ns_ident *id)
{
	char p[PATH_MAX], v[EMUHBA_SUBNQN_MAX_LEN + 2];
	bool compared = false;
	u8 b[16];
	u32 nsid;

	snprintf(p, sizeof(p), SYS_BLOCK "/%s/nguid", name);
	if (id->has_nguid && !sysfs_read(p, v, sizeof(v)) &&
	    !hex_id(v, b, 16)) {
		if (!memcmp(b, id->nguid, 16))
			return "nguid";
		compared = true;
	}
	snprintf(p, sizeof(p), SYS_BLOCK "/%s/eui", name);
	if (id->has_eui64 && !sysfs_read(p, v, sizeof(v)) &&
	    !hex_id(v, b, 8)) {
		if (!memcmp(b, id->eui64, 8))
			return "eui64";
		compared = true;
	}
	/* Identifiers that differ decide: the NQN is only the fallback. */
	if (compared || !id->subnqn[0] || !id->nsid)
		return NULL;
	snprintf(p, sizeof(p), SYS_BLOCK "/%s/nsid", name);
	if (sysfs_read(p, v, sizeof(v)) || sscanf(v, "%u", &nsid) != 1 ||
	    nsid != id->nsid)
		return NULL;
	snprintf(p, sizeof(p), SYS_BLOCK "/%s/device/subsysnqn", name);
	if (sysfs_read(p, v, sizeof(v)) || strcmp(v, id->subnqn))
		return NULL;
	return "subnqn+nsid";
}

/* Find the one backend; the chosen path goes to @path. */
static int auto_backend(const char *bdf, const struct ns_ident *id,
			char *path, size_t len)
{
	struct auto_cand c[AUTO_MAX_CANDS], *pick = NULL;
	int n = 0, usable = 0, own = 0, i, j;
	char p[PATH_MAX], idstr[40] = "";
	struct dirent *de;
	struct stat st;
	DIR *d;

	if (!id->has_nguid && !id->has_eui64 && !(id->subnqn[0] && id->nsid))
		return fail(HBAMIG_EXIT_NOTSUPP,
			    "dev set: %s: backend auto: the adapter reports no NGUID, EUI64 or subsystem NQN",
			    bdf);
	d = opendir(SYS_BLOCK);
	if (!d)
		return fail(HBAMIG_EXIT_FAIL, "dev set: %s: %s", SYS_BLOCK,
			    strerror(errno));
	while ((de = readdir(d)) && n < AUTO_MAX_CANDS) {
		struct auto_cand *x = &c[n];
		const char *by;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), SYS_BLOCK "/%s/partition", de->d_name);
		if (!stat(p, &st))
			continue;
		/* Per-path devices of a multipath head have no node. */
		snprintf(p, sizeof(p), "/dev/%s", de->d_name);
		if (stat(p, &st) || !S_ISBLK(st.st_mode))
			continue;
		by = auto_match(de->d_name, id);
		if (!by)
			continue;
		memset(x, 0, sizeof(*x));
		snprintf(x->path_of, sizeof(x->path_of), "%s", de->d_name);
		snprintf(x->name, sizeof(x->name), "%s", de->d_name);
		x->by = by;
		x->own = reached_through(de->d_name, bdf, &x->multipath);
		if (mpath_holder(de->d_name, p, sizeof(p))) {
			snprintf(x->name, sizeof(x->name), "%.*s", NAME_MAX, p);
			x->multipath = true;
		}
		n++;
	}
	closedir(d);

	for (i = 0; i < n; i++) {
		bool dup = false;

		if (c[i].own) {
			own++;
			continue;
		}
		for (j = 0; j < i; j++)
			if (!c[j].own && !strcmp(c[j].name, c[i].name))
				dup = true;
		if (dup)
			continue;
		usable++;
		if (!pick)
			pick = &c[i];
	}
	if (id->has_nguid)
		id_hex(id->nguid, 16, idstr);
	else if (id->has_eui64)
		id_hex(id->eui64, 8, idstr);
	if (!usable && own)
		return fail(HBAMIG_EXIT_FAIL,
			    "dev set: %s: backend auto: the namespace is reached only through %s itself (%s); the backend must be another path",
			    bdf, bdf, c[0].path_of);
	if (!usable)
		return fail(HBAMIG_EXIT_NODEV,
			    "dev set: %s: backend auto: no host block device reaches namespace %u (%s%s%s)",
			    bdf, id->nsid, idstr[0] ? idstr : "",
			    idstr[0] ? ", " : "", id->subnqn);
	if (usable > 1) {
		fprintf(stderr, "%s: dev set: %s: backend auto: %d block devices reach the namespace and are not one multipath device:",
			hba_prog, bdf, usable);
		for (i = 0; i < n; i++)
			if (!c[i].own)
				fprintf(stderr, " /dev/%s (by %s)", c[i].name,
					c[i].by);
		fprintf(stderr, "; set one with \"backend PATH\"\n");
		return HBAMIG_EXIT_FAIL;
	}
	snprintf(path, len, "/dev/%s", pick->name);
	if (hba_out.json) {
		out_obj_start(NULL);
		out_str("bdf", bdf);
		out_str("backend", path);
		out_str("matched_by", pick->by);
		out_u64("nsid", id->nsid);
		if (!strcmp(pick->by, "subnqn+nsid"))
			out_str("id", id->subnqn);
		else
			out_str("id", !strcmp(pick->by, "nguid") ? idstr :
				(id_hex(id->eui64, 8, idstr), idstr));
		out_str("device", pick->path_of);
		out_bool("multipath", pick->multipath);
		out_u64("refused_own_paths", own);
		out_obj_end();
		out_eol();
	} else {
		if (strcmp(pick->by, "nguid") && id->has_eui64)
			id_hex(id->eui64, 8, idstr);
		printf("%s: backend %s: %s matches namespace %u by %s %s%s%s\n",
		       bdf, path, pick->path_of, id->nsid, pick->by,
		       !strcmp(pick->by, "subnqn+nsid") ? id->subnqn : idstr,
		       pick->multipath ? " (multipath device)" : "",
		       own ? " (paths through the VF itself refused)" : "");
	}
	return 0;
}

static int dev_set(int argc, char **argv)
{
	struct hba_policy p = { 0 };
	const char *bdf, *backend = NULL;
	char auto_path[PATH_MAX];
	struct hba_nlerr err;
	struct hba_genl g;
	struct nl_msg *msg;
	int i, ret;

	if (argc < 2 || is_help(argv[1])) {
		dev_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? HBAMIG_EXIT_USAGE : HBAMIG_EXIT_OK;
	}
	bdf = argv[1];
	if (!valid_bdf(bdf))
		return usage_error("dev set: \"%s\" is not a PCI address (DDDD:BB:DD.F)",
				   bdf);
	for (i = 2; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(k, "policy"))
			continue;
		if (!strcmp(k, "backend")) {
			if (!v)
				return usage_error("dev set: backend needs PATH or \"auto\"");
			if (!strcmp(v, "auto") || v[0] == '/')
				backend = v;
			else
				return usage_error("dev set: backend \"%s\" is neither an absolute path nor \"auto\"",
						   v);
			if (strlen(backend) > EMUHBA_BACKEND_MAX_LEN)
				return usage_error("dev set: backend path longer than %d bytes",
						   EMUHBA_BACKEND_MAX_LEN);
			/* Caught here, not at the first switch. */
			if (strcmp(backend, "auto")) {
				struct stat st;

				if (stat(backend, &st))
					return fail(HBAMIG_EXIT_NODEV,
						    "dev set: backend %s: %s",
						    backend, strerror(errno));
				if (!S_ISBLK(st.st_mode))
					return fail(HBAMIG_EXIT_FAIL,
						    "dev set: backend %s is not a block device",
						    backend);
			}
		} else if (!strcmp(k, "auto-switch")) {
			if (parse_on_off(k, v, &p.auto_switch))
				return HBAMIG_EXIT_USAGE;
			p.has_auto_switch = true;
		} else if (!strcmp(k, "quiesce-required")) {
			if (parse_on_off(k, v, &p.quiesce_required))
				return HBAMIG_EXIT_USAGE;
			p.has_quiesce_required = true;
		} else if (!strcmp(k, "switch-timeout")) {
			if (parse_u32(k, v, &p.switch_timeout_ms))
				return HBAMIG_EXIT_USAGE;
			p.has_switch_timeout = true;
		} else if (!strcmp(k, "idle-after")) {
			if (parse_u32(k, v, &p.idle_after_ms))
				return HBAMIG_EXIT_USAGE;
			p.has_idle_after = true;
		} else if (!strcmp(k, "ns-copy")) {
			if (parse_on_off(k, v, &p.ns_copy))
				return HBAMIG_EXIT_USAGE;
			p.has_ns_copy = true;
		} else {
			return usage_error("dev set: unknown setting \"%s\"", k);
		}
		i++;
	}
	if (!backend && !p.has_auto_switch && !p.has_quiesce_required &&
	    !p.has_switch_timeout && !p.has_idle_after && !p.has_ns_copy)
		return usage_error("dev set: nothing to set");

	ret = hba_genl_open(&g);
	if (ret)
		return ret;
	if (backend && !strcmp(backend, "auto")) {
		struct ns_ident id = { 0 };

		msg = hba_genl_msg(&g, EMUHBA_CMD_ADAPTER_GET, 0);
		if (!msg || put_bdf(msg, bdf)) {
			nlmsg_free(msg);
			ret = fail(HBAMIG_EXIT_FAIL, "out of memory");
			goto out;
		}
		if (hba_talk(g.sk, msg, 0, NULL, &id, g.family, ident_cb,
			     &err)) {
			ret = hba_report_nlerr("dev set backend auto", &err);
			goto out;
		}
		ret = id.got ? auto_backend(bdf, &id, auto_path,
					    sizeof(auto_path)) :
			       fail(HBAMIG_EXIT_FAIL, "dev set: %s: no reply",
				    bdf);
		if (ret)
			goto out;
		backend = auto_path;
	}
	if (backend) {
		msg = hba_genl_msg(&g, EMUHBA_CMD_BACKEND_SET, 0);
		if (!msg || put_bdf(msg, bdf) ||
		    nla_put_string(msg, EMUHBA_A_ADAPTER_BACKEND, backend)) {
			nlmsg_free(msg);
			ret = fail(HBAMIG_EXIT_FAIL, "out of memory");
			goto out;
		}
		if (hba_genl_talk(&g, msg, NULL, NULL, &err)) {
			ret = hba_report_nlerr("dev set backend", &err);
			goto out;
		}
	}
	if (p.has_auto_switch || p.has_quiesce_required ||
	    p.has_switch_timeout || p.has_idle_after || p.has_ns_copy) {
		struct nlattr *nest;

		msg = hba_genl_msg(&g, EMUHBA_CMD_POLICY_SET, 0);
		if (!msg || put_bdf(msg, bdf)) {
			nlmsg_free(msg);
			ret = fail(HBAMIG_EXIT_FAIL, "out of memory");
			goto out;
		}
		nest = nla_nest_start(msg, EMUHBA_A_ADAPTER_POLICY);
		if (p.has_auto_switch)
			nla_put_u8(msg, EMUHBA_A_POLICY_AUTO_SWITCH,
				   p.auto_switch);
		if (p.has_quiesce_required)
			nla_put_u8(msg, EMUHBA_A_POLICY_QUIESCE_REQUIRED,
				   p.quiesce_required);
		if (p.has_switch_timeout)
			nla_put_u32(msg, EMUHBA_A_POLICY_SWITCH_TIMEOUT,
				    p.switch_timeout_ms);
		if (p.has_idle_after)
			nla_put_u32(msg, EMUHBA_A_POLICY_IDLE_AFTER,
				    p.idle_after_ms);
		if (p.has_ns_copy)
			nla_put_u8(msg, EMUHBA_A_POLICY_NS_COPY, p.ns_copy);
		nla_nest_end(msg, nest);
		if (hba_genl_talk(&g, msg, NULL, NULL, &err)) {
			ret = hba_report_nlerr("dev set policy", &err);
			goto out;
		}
	}
	ret = HBAMIG_EXIT_OK;
out:
	hba_genl_close(&g);
	return ret;
}

/* ---- in-use detection for bind/unbind ---- */

#define MAX_DEVT 64

struct devt_set {
	int n;
	dev_t t[MAX_DEVT];
	char name[MAX_DEVT][64];
};

static void devt_add(struct devt_set *s, dev_t t, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (s->t[i] == t)
			return;
	if (s->n < MAX_DEVT) {
		snprintf(s->name[s->n], sizeof(s->name[0]), "%.63s", name);
		s->t[s->n++] = t;
	}
}

/*
 * Device numbers of every node the function exposes (nvme controller and
 * namespaces, vfio cdev, ...): "dev" files below its sysfs directory.
 * Symlinks are not followed, so the PF, driver and subsystem stay out.
 */
static void collect_devts(const char *dir, int depth, struct devt_set *s)
{
	struct dirent *de;
	char p[PATH_MAX], v[32];
	unsigned int ma, mi;
	DIR *d;

	if (depth > 4)
		return;
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR) {
			collect_devts(p, depth + 1, s);
		} else if (de->d_type == DT_REG && !strcmp(de->d_name, "dev") &&
			   !sysfs_read(p, v, sizeof(v)) &&
			   sscanf(v, "%u:%u", &ma, &mi) == 2) {
			const char *name = strrchr(dir, '/');

			devt_add(s, makedev(ma, mi), name ? name + 1 : dir);
		}
	}
	closedir(d);
}

/* The VFIO group node of the function, which a VMM holds open. */
static void collect_vfio_group(const char *bdf, struct devt_set *s)
{
	char p[PATH_MAX], t[PATH_MAX], node[PATH_MAX];
	struct stat st;
	ssize_t n;
	char *g;

	snprintf(p, sizeof(p), PCI_DEVICES "/%s/iommu_group", bdf);
	n = readlink(p, t, sizeof(t) - 1);
	if (n < 0)
		return;
	t[n] = 0;
	g = strrchr(t, '/');
	if (!g)
		return;
	snprintf(node, sizeof(node), "/dev/vfio/%s", g + 1);
	if (!stat(node, &st) && S_ISCHR(st.st_mode))
		devt_add(s, st.st_rdev, node);
}

/* Writes a description of the first user found into @who. */
static bool devts_in_use(const struct devt_set *s, char *who, size_t len)
{
	char p[PATH_MAX], line[1024];
	struct dirent *pe, *fe;
	struct stat st;
	DIR *proc, *fds;
	FILE *mi;
	bool busy = false;

	if (!s->n)
		return false;
	mi = fopen("/proc/self/mountinfo", "re");
	while (mi && !busy && fgets(line, sizeof(line), mi)) {
		unsigned int ma, mn;

		if (sscanf(line, "%*u %*u %u:%u", &ma, &mn) != 2)
			continue;
		for (int i = 0; i < s->n; i++)
			if (s->t[i] == makedev(ma, mn)) {
				snprintf(who, len, "%s is mounted",
					 s->name[i]);
				busy = true;
			}
	}
	if (mi)
		fclose(mi);

	proc = opendir("/proc");
	while (proc && !busy && (pe = readdir(proc))) {
		if (pe->d_name[0] < '1' || pe->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%s/fd", pe->d_name);
		fds = opendir(p);
		while (fds && !busy && (fe = readdir(fds))) {
			if (fe->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "/proc/%s/fd/%s", pe->d_name,
				 fe->d_name);
			if (stat(p, &st) ||
			    !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
				continue;
			for (int i = 0; i < s->n; i++) {
				char comm[64] = "?";

				if (st.st_rdev != s->t[i])
					continue;
				snprintf(p, sizeof(p), "/proc/%s/comm",
					 pe->d_name);
				sysfs_read(p, comm, sizeof(comm));
				snprintf(who, len, "%s is open in process %s (%s)",
					 s->name[i], pe->d_name, comm);
				busy = true;
				break;
			}
		}
		if (fds)
			closedir(fds);
	}
	if (proc)
		closedir(proc);
	return busy;
}

/* Holders (dm, md) of the function's block devices. */
static bool has_holders(const char *dir, int depth, char *who, size_t len)
{
	struct dirent *de;
	char p[PATH_MAX];
	bool busy = false;
	DIR *d;

	if (depth > 4)
		return false;
	d = opendir(dir);
	if (!d)
		return false;
	while (!busy && (de = readdir(d))) {
		if (de->d_name[0] == '.' || de->d_type != DT_DIR)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (!strcmp(de->d_name, "holders")) {
			DIR *h = opendir(p);
			struct dirent *he;

			while (h && (he = readdir(h)))
				if (he->d_name[0] != '.') {
					snprintf(who, len, "%s is held by %s",
						 dir, he->d_name);
					busy = true;
					break;
				}
			if (h)
				closedir(h);
		} else {
			busy = has_holders(p, depth + 1, who, len);
		}
	}
	closedir(d);
	return busy;
}

static bool function_in_use(const char *bdf, char *who, size_t len)
{
	struct devt_set s = { 0 };
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), PCI_DEVICES "/%s", bdf);
	collect_devts(dir, 0, &s);
	collect_vfio_group(bdf, &s);
	return devts_in_use(&s, who, len) || has_holders(dir, 0, who, len);
}

static int rebind(const char *bdf, const char *override, const char *cur)
{
	char p[PATH_MAX];
	int err;

	snprintf(p, sizeof(p), PCI_DEVICES "/%s/driver_override", bdf);
	err = sysfs_write(p, override[0] ? override : "\n");
	if (err)
		return fail(hba_exit_from_errno(err),
			    "%s: cannot write driver_override: %s", bdf,
			    strerror(-err));
	if (cur[0]) {
		snprintf(p, sizeof(p), PCI_DEVICES "/%s/driver/unbind", bdf);
		err = sysfs_write(p, bdf);
		if (err)
			return fail(hba_exit_from_errno(err),
				    "%s: cannot unbind from %s: %s", bdf, cur,
				    strerror(-err));
	}
	/* Probing fails with ENODEV when no driver wants it: not an error. */
	err = sysfs_write("/sys/bus/pci/drivers_probe", bdf);
	if (err && err != -ENODEV && err != -EINVAL)
		return fail(hba_exit_from_errno(err),
			    "%s: drivers_probe: %s", bdf, strerror(-err));
	return 0;
}

static int check_vf(const char *cmd, const char *bdf)
{
	char p[PATH_MAX];
	struct stat st;

	if (!valid_bdf(bdf))
		return usage_error("dev %s: \"%s\" is not a PCI address (DDDD:BB:DD.F)",
				   cmd, bdf);
	if (!pci_exists(bdf))
		return fail(HBAMIG_EXIT_NODEV, "dev %s: no PCI device %s",
			    cmd, bdf);
	snprintf(p, sizeof(p), PCI_DEVICES "/%s/physfn", bdf);
	if (lstat(p, &st))
		return fail(HBAMIG_EXIT_NOTSUPP,
			    "dev %s: %s is not an SR-IOV virtual function",
			    cmd, bdf);
	return 0;
}

static void print_binding(const char *bdf, const char *drv)
{
	if (hba_out.json) {
		out_obj_start(NULL);
		out_str("bdf", bdf);
		if (drv[0])
			out_str("driver", drv);
		else
			out_null("driver");
		out_obj_end();
		out_eol();
	} else {
		printf("%s: driver %s\n", bdf, drv[0] ? drv : "none");
	}
}

static const char *bind_dir(void)
{
	const char *d = getenv("HBAMIG_BIND_DIR");

	return d && d[0] ? d : HBA_BIND_DIR_HELP;
}

/* The udev rule matches the kernel's spelling of the address only. */
static bool canonical_bdf(const char *bdf)
{
	unsigned int d, b, dev, fn;
	char buf[HBA_BDF_LEN + 8];

	if (!valid_bdf(bdf) ||
	    sscanf(bdf, "%x:%x:%x.%u", &d, &b, &dev, &fn) != 4)
		return false;
	snprintf(buf, sizeof(buf), "%04x:%02x:%02x.%u", d, b, dev, fn);
	return !strcmp(buf, bdf);
}

static int mkdir_p(const char *dir)
{
	char p[PATH_MAX], *s;

	if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	for (s = p + 1; ; s++) {
		if (*s && *s != '/')
			continue;
		char c = *s;

		*s = 0;
		if (mkdir(p, 0755) && errno != EEXIST)
			return -errno;
		*s = c;
		if (!c)
			return 0;
	}
}

static int persist_record(const char *bdf)
{
	char p[PATH_MAX];
	int err, fd;

	err = mkdir_p(bind_dir());
	if (err)
		return fail(hba_exit_from_errno(err), "dev bind: %s: %s",
			    bind_dir(), strerror(-err));
	snprintf(p, sizeof(p), "%s/%s", bind_dir(), bdf);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, EMUHBA_DRIVER "\n", 7) != 7 || fsync(fd)) {
		err = -errno;
		if (fd >= 0)
			close(fd);
		return fail(hba_exit_from_errno(err), "dev bind: %s: %s", p,
			    strerror(-err));
	}
	close(fd);
	return 0;
}

static int persist_forget(const char *bdf)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", bind_dir(), bdf);
	if (unlink(p) && errno != ENOENT)
		return fail(hba_exit_from_errno(-errno), "dev unbind: %s: %s",
			    p, strerror(errno));
	return 0;
}

/* "[--persist] BDF ...": strips the option, tells whether it was there. */
static bool take_persist(int *argc, char **argv)
{
	if (*argc < 2 || strcmp(argv[1], "--persist"))
		return false;
	memmove(&argv[1], &argv[2], (*argc - 1) * sizeof(*argv));
	(*argc)--;
	return true;
}

static int dev_bind(int argc, char **argv)
{
	bool persist = take_persist(&argc, argv);
	char cur[64], who[PATH_MAX + 128];
	struct stat st;
	const char *bdf;
	int ret;

	if (argc < 2 || is_help(argv[1])) {
		dev_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? HBAMIG_EXIT_USAGE : HBAMIG_EXIT_OK;
	}
	if (argc > 2)
		return usage_error("dev bind: unexpected \"%s\"", argv[2]);
	bdf = argv[1];
	if (persist) {
		if (!canonical_bdf(bdf))
			return usage_error("dev bind: \"%s\" is not a PCI address as sysfs writes it (0000:01:00.1)",
					   bdf);
		ret = persist_record(bdf);
		if (ret)
			return ret;
		/* Recorded for when it appears: nothing to bind now. */
		if (!pci_exists(bdf)) {
			if (hba_out.json) {
				out_obj_start(NULL);
				out_str("bdf", bdf);
				out_null("driver");
				out_bool("persist", true);
				out_obj_end();
				out_eol();
			} else {
				printf("%s: not present; bound to emuhba when it appears\n",
				       bdf);
			}
			return HBAMIG_EXIT_OK;
		}
	}
	ret = check_vf("bind", bdf);
	if (ret)
		return ret;
	if (stat("/sys/bus/pci/drivers/" EMUHBA_DRIVER, &st))
		return fail(HBAMIG_EXIT_NOMOD,
			    "dev bind: the emuhba driver is not loaded");
	ret = pci_driver_of(bdf, cur, sizeof(cur));
	if (ret)
		return fail(HBAMIG_EXIT_FAIL, "dev bind: %s: %s", bdf,
			    strerror(-ret));
	if (!strcmp(cur, EMUHBA_DRIVER)) {
		print_binding(bdf, cur);
		return HBAMIG_EXIT_OK;
	}
	if (cur[0] && function_in_use(bdf, who, sizeof(who)))
		return fail(HBAMIG_EXIT_BUSY,
			    "dev bind: %s (driver %s) is in use: %s", bdf, cur,
			    who);
	ret = rebind(bdf, EMUHBA_DRIVER, cur);
	if (ret)
		return ret;
	pci_driver_of(bdf, cur, sizeof(cur));
	if (strcmp(cur, EMUHBA_DRIVER))
		return fail(HBAMIG_EXIT_FAIL,
			    "dev bind: %s did not bind to emuhba (now %s; see the kernel log)",
			    bdf, cur[0] ? cur : "unbound");
	print_binding(bdf, cur);
	return HBAMIG_EXIT_OK;
}

static int dev_unbind(int argc, char **argv)
{
	bool persist = take_persist(&argc, argv);
	char cur[64], who[PATH_MAX + 128];
	const char *bdf, *to = "";
	struct hba_nlerr err;
	struct hba_genl g;
	struct hba_msg m;
	int ret;

	if (argc < 2 || is_help(argv[1])) {
		dev_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? HBAMIG_EXIT_USAGE : HBAMIG_EXIT_OK;
	}
	bdf = argv[1];
	if (argc == 4 && !strcmp(argv[2], "driver"))
		to = !strcmp(argv[3], "none") ? "none" : argv[3];
	else if (argc != 2)
		return usage_error("dev unbind: expected \"dev unbind [--persist] BDF [driver NAME|none]\"");
	if (persist) {
		if (!canonical_bdf(bdf))
			return usage_error("dev unbind: \"%s\" is not a PCI address as sysfs writes it (0000:01:00.1)",
					   bdf);
		ret = persist_forget(bdf);
		if (ret)
			return ret;
		if (!pci_exists(bdf)) {
			print_binding(bdf, "");
			return HBAMIG_EXIT_OK;
		}
	}
	ret = check_vf("unbind", bdf);
	if (ret)
		return ret;
	ret = pci_driver_of(bdf, cur, sizeof(cur));
	if (ret)
		return fail(HBAMIG_EXIT_FAIL, "dev unbind: %s: %s", bdf,
			    strerror(-ret));
	/* Forgotten; a VF on another driver already is where it should be. */
	if (persist && strcmp(cur, EMUHBA_DRIVER)) {
		print_binding(bdf, cur);
		return HBAMIG_EXIT_OK;
	}
	if (strcmp(cur, EMUHBA_DRIVER))
		return fail(HBAMIG_EXIT_FAIL,
			    "dev unbind: %s is bound to %s, not emuhba", bdf,
			    cur[0] ? cur : "no driver");

	/* The driver's own view first: a VMM may hold it, or it may be emulated. */
	ret = hba_genl_open(&g);
	if (ret)
		return ret;
	ret = adapter_get(&g, bdf, &m, &err);
	hba_genl_close(&g);
	if (ret)
		return hba_report_nlerr("dev unbind", &err);
	if (m.open)
		return fail(HBAMIG_EXIT_BUSY,
			    "dev unbind: %s is open by a VFIO user (a VMM)", bdf);
	if (m.mode != EMUHBA_ADAPTER_MODE_DIRECT)
		return fail(HBAMIG_EXIT_BUSY,
			    "dev unbind: %s is in %s mode", bdf,
			    hba_mode_name(m.mode));
	if (function_in_use(bdf, who, sizeof(who)))
		return fail(HBAMIG_EXIT_BUSY, "dev unbind: %s is in use: %s",
			    bdf, who);
	ret = rebind(bdf, to, cur);
	if (ret)
		return ret;
	pci_driver_of(bdf, cur, sizeof(cur));
	print_binding(bdf, cur);
	return HBAMIG_EXIT_OK;
}

int do_dev(int argc, char **argv)
{
	argc--;
	argv++;
	if (argc < 1)
		return dev_show(1, (char *[]){ "show", NULL });
	if (is_help(argv[0])) {
		dev_usage(stdout);
		return HBAMIG_EXIT_OK;
	}
	if (matches(argv[0], "show") || matches(argv[0], "list"))
		return dev_show(argc, argv);
	if (matches(argv[0], "set"))
		return dev_set(argc, argv);
	if (matches(argv[0], "bind"))
		return dev_bind(argc, argv);
	if (matches(argv[0], "compat") && strlen(argv[0]) >= 2) {
		if (argc > 1 && is_help(argv[1])) {
			dev_usage(stdout);
			return HBAMIG_EXIT_OK;
		}
		if (argc != 3)
			return usage_error("dev compat: expected \"dev compat SRC_BDF DST_BDF\"");
		return compat_check(argv[1], argv[2], true);
	}
	if (matches(argv[0], "unbind"))
		return dev_unbind(argc, argv);
	return usage_error("dev: unknown command \"%s\"", argv[0]);
}
