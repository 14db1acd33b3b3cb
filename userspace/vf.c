// SPDX-License-Identifier: GPL-2.0-only
/*
 * hbamig vf: the SR-IOV VFs of a PF. The VF list comes from sysfs (it
 * exists for every PF); the per-VF settings that `ip link set PF vf N`
 * manages come from and go to rtnetlink (IFLA_VFINFO_LIST), which only a
 * PF with a network interface has. NVMe PFs have none.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "hbamig.h"

#define PCI_DEVICES "/sys/bus/pci/devices"

static const char vf_usage_text[] =
"Usage: hbamig vf show PF\n"
"       hbamig vf set PF N [mac LLADDR] [vlan VID [qos QOS]]\n"
"                          [min_tx_rate MBPS] [max_tx_rate MBPS]\n"
"                          [spoofchk on|off] [trust on|off]\n"
"                          [state auto|enable|disable] [query_rss on|off]\n"
"PF is a network interface name or the PF's PCI address.\n"
"vf set needs a PF with a network interface (rtnetlink); NVMe PFs have\n"
"none: their VFs get resources with nvme virt-mgmt.\n";

static void vf_usage(FILE *f)
{
	fputs(vf_usage_text, f);
}

struct pf {
	char dir[PATH_MAX];	/* sysfs directory of the PF device */
	char bdf[HBA_BDF_LEN];
	char ifname[IF_NAMESIZE];
	char driver[64];
	bool has_netdev;
};

static int resolve_pf(const char *arg, struct pf *pf)
{
	char p[PATH_MAX + 64], t[PATH_MAX];
	struct dirent *de;
	ssize_t n;
	DIR *d;

	memset(pf, 0, sizeof(*pf));
	pf->driver[0] = 0;
	if (valid_bdf(arg)) {
		if (!pci_exists(arg))
			return fail(HBAMIG_EXIT_NODEV, "vf: no PCI device %s",
				    arg);
		snprintf(pf->bdf, sizeof(pf->bdf), "%.15s", arg);
		snprintf(pf->dir, sizeof(pf->dir), PCI_DEVICES "/%s", arg);
		snprintf(p, sizeof(p), PCI_DEVICES "/%s/net", arg);
		d = opendir(p);
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.' ||
			    strlen(de->d_name) >= sizeof(pf->ifname))
				continue;
			snprintf(pf->ifname, sizeof(pf->ifname), "%.15s",
				 de->d_name);
			pf->has_netdev = true;
			break;
		}
		if (d)
			closedir(d);
	} else {
		if (strlen(arg) >= sizeof(pf->ifname) || strchr(arg, '/'))
			return usage_error("vf: \"%s\" is not an interface or a PCI address",
					   arg);
		snprintf(p, sizeof(p), "/sys/class/net/%s", arg);
		if (access(p, F_OK))
			return fail(HBAMIG_EXIT_NODEV, "vf: no interface %s",
				    arg);
		/*
		 * Not necessarily PCI (netdevsim PFs have VFs too), and
		 * possibly no device at all: rtnetlink still answers.
		 */
		snprintf(p, sizeof(p), "/sys/class/net/%s/device", arg);
		n = readlink(p, t, sizeof(t) - 1);
		if (n > 0 && realpath(p, pf->dir)) {
			t[n] = 0;
			snprintf(pf->bdf, sizeof(pf->bdf), "%.15s",
				 strrchr(t, '/') ? strrchr(t, '/') + 1 : t);
		} else {
			pf->dir[0] = 0;
		}
		snprintf(pf->ifname, sizeof(pf->ifname), "%s", arg);
		pf->has_netdev = true;
	}
	snprintf(p, sizeof(p), "%s/driver", pf->dir);
	n = pf->dir[0] ? readlink(p, t, sizeof(t) - 1) : -1;
	if (n > 0) {
		t[n] = 0;
		snprintf(pf->driver, sizeof(pf->driver), "%.63s",
			 strrchr(t, '/') ? strrchr(t, '/') + 1 : t);
	}
	if (!pf->driver[0])
		snprintf(pf->driver, sizeof(pf->driver), "none");
	return 0;
}

/* VF BDFs and drivers from virtfnN links. */
static int sysfs_vfs(const struct pf *pf, struct hba_link *l)
{
	char p[PATH_MAX + 64], t[PATH_MAX], v[32];
	unsigned int i;

	if (!pf->dir[0])
		return 0;
	snprintf(p, sizeof(p), "%s/sriov_totalvfs", pf->dir);
	if (!sysfs_read(p, v, sizeof(v)))
		l->total_vfs = strtoul(v, NULL, 10);
	else if (!l->has_netdev)
		return fail(HBAMIG_EXIT_NOTSUPP,
			    "vf: %s is not an SR-IOV physical function",
			    pf->bdf);
	snprintf(p, sizeof(p), "%s/sriov_numvfs", pf->dir);
	if (!sysfs_read(p, v, sizeof(v)) && !l->has_netdev)
		l->num_vf = strtoul(v, NULL, 10);
	for (i = 0; i < HBA_MAX_VFS; i++) {
		struct hba_vf *vf = NULL;
		ssize_t n;

		snprintf(p, sizeof(p), "%s/virtfn%u", pf->dir, i);
		n = readlink(p, t, sizeof(t) - 1);
		if (n < 0)
			break;
		t[n] = 0;
		for (u32 k = 0; k < l->n; k++)
			if (l->vfs[k].vf == i)
				vf = &l->vfs[k];
		if (!vf) {
			if (l->n >= HBA_MAX_VFS)
				break;
			vf = &l->vfs[l->n++];
			memset(vf, 0, sizeof(*vf));
			vf->vf = i;
		}
		vf->has_sys = true;
		snprintf(vf->bdf, sizeof(vf->bdf), "%.15s",
			 strrchr(t, '/') ? strrchr(t, '/') + 1 : t);
		pci_driver_of(vf->bdf, vf->driver, sizeof(vf->driver));
		if (!vf->driver[0])
			snprintf(vf->driver, sizeof(vf->driver), "none");
	}
	return 0;
}

static struct nl_sock *rtnl_open(void)
{
	struct nl_sock *sk = nl_socket_alloc();

	if (!sk)
		return NULL;
	if (nl_connect(sk, NETLINK_ROUTE) < 0) {
		nl_socket_free(sk);
		return NULL;
	}
	hba_set_ext_ack(sk);
	return sk;
}

static int link_cb(const void *nlh, void *arg)
{
	struct hba_link *l = arg;
	struct nlmsghdr h;

	memcpy(&h, nlh, sizeof(h));
	if (hba_parse_link(nlh, h.nlmsg_len, l))
		return -EBADMSG;
	l->has_netdev = true;
	return 0;
}

/* The PF's link with its VF list (RTEXT_FILTER_VF), into *l. */
static int get_link(const char *what, const struct pf *pf, int ifindex,
		    struct hba_link *l)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC,
				 .ifi_index = ifindex };
	struct hba_nlerr err;
	struct nl_msg *msg;
	struct nl_sock *sk;
	int ret;

	sk = rtnl_open();
	if (!sk)
		return fail(HBAMIG_EXIT_FAIL,
			    "%s: cannot open an rtnetlink socket", what);
	msg = nlmsg_alloc_simple(RTM_GETLINK, 0);
	if (!msg || nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) ||
	    nla_put_u32(msg, IFLA_EXT_MASK, RTEXT_FILTER_VF)) {
		nlmsg_free(msg);
		nl_socket_free(sk);
		return fail(HBAMIG_EXIT_FAIL, "out of memory");
	}
	/* A GETLINK "do" has no NLMSG_DONE: ask for the ACK. */
	ret = hba_talk(sk, msg, 0, NULL, l, RTM_NEWLINK, link_cb, &err);
	nl_socket_free(sk);
	if (ret)
		return hba_report_nlerr(what, &err);
	if (!l->has_netdev)
		return fail(HBAMIG_EXIT_FAIL, "%s: no link reply for %s", what,
			    pf->ifname);
	return 0;
}

static int vf_show(int argc, char **argv)
{
	static struct hba_link l;
	struct pf pf;
	int ret;

	if (argc > 1 && is_help(argv[1])) {
		vf_usage(stdout);
		return HBAMIG_EXIT_OK;
	}
	if (argc != 2)
		return usage_error("vf show: expected \"vf show PF\"");
	ret = resolve_pf(argv[1], &pf);
	if (ret)
		return ret;
	memset(&l, 0, sizeof(l));
	if (pf.has_netdev) {
		int ifindex = if_nametoindex(pf.ifname);

		if (!ifindex)
			return fail(HBAMIG_EXIT_NODEV, "vf show: %s: %s",
				    pf.ifname, strerror(errno));
		ret = get_link("vf show", &pf, ifindex, &l);
		if (ret)
			return ret;
	}
	ret = sysfs_vfs(&pf, &l);
	if (ret)
		return ret;
	if (!l.has_netdev)
		snprintf(l.ifname, sizeof(l.ifname), "%s", "");
	hba_print_link(&l, pf.bdf, pf.driver);
	if (hba_out.json)
		out_eol();
	return HBAMIG_EXIT_OK;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Six groups of one or two hex digits separated by ':', as ip(8) takes
 * them; nothing else (no signs, no 0x, no trailing text). All zeros is
 * accepted: drivers take it as "remove the administrative MAC".
 */
static int parse_mac(const char *s, u8 *mac)
{
	const char *p = s;

	for (int i = 0; i < 6; i++) {
		int hi = hexval(p[0]), lo;

		if (hi < 0)
			goto bad;
		lo = hexval(p[1]);
		mac[i] = lo < 0 ? hi : hi << 4 | lo;
		p += lo < 0 ? 1 : 2;
		if (*p != (i < 5 ? ':' : '\0'))
			goto bad;
		p++;
	}
	if (mac[0] & 1)
		return usage_error("vf set: mac %s is multicast, not unicast",
				   s);
	return 0;
bad:
	return usage_error("vf set: mac \"%s\" is not a MAC address (xx:xx:xx:xx:xx:xx)",
			   s);
}

/* One IFLA_VF_* attribute: a request the kernel accepts or refuses whole. */
enum vf_item {
	VF_MAC, VF_VLAN, VF_RATE, VF_SPOOFCHK, VF_TRUST, VF_RSS, VF_STATE,
	VF_NITEMS,
};

static const char *const vf_item_name[VF_NITEMS] = {
	[VF_MAC] = "mac", [VF_VLAN] = "vlan", [VF_RATE] = "rate",
	[VF_SPOOFCHK] = "spoofchk", [VF_TRUST] = "trust",
	[VF_RSS] = "query_rss", [VF_STATE] = "state",
};

static int put_vf_item(struct nl_msg *msg, enum vf_item it,
		       const struct hba_vf *v)
{
	switch (it) {
	case VF_MAC: {
		struct ifla_vf_mac x = { .vf = v->vf };

		memcpy(x.mac, v->mac, 6);
		return nla_put(msg, IFLA_VF_MAC, sizeof(x), &x);
	}
	case VF_VLAN: {
		struct ifla_vf_vlan x = { .vf = v->vf, .vlan = v->vlan,
					  .qos = v->qos };

		return nla_put(msg, IFLA_VF_VLAN, sizeof(x), &x);
	}
	case VF_RATE: {
		struct ifla_vf_rate x = { .vf = v->vf,
					  .min_tx_rate = v->min_tx_rate,
					  .max_tx_rate = v->max_tx_rate };

		return nla_put(msg, IFLA_VF_RATE, sizeof(x), &x);
	}
	case VF_SPOOFCHK: {
		struct ifla_vf_spoofchk x = { .vf = v->vf,
					      .setting = v->spoofchk };

		return nla_put(msg, IFLA_VF_SPOOFCHK, sizeof(x), &x);
	}
	case VF_TRUST: {
		struct ifla_vf_trust x = { .vf = v->vf, .setting = v->trust };

		return nla_put(msg, IFLA_VF_TRUST, sizeof(x), &x);
	}
	case VF_RSS: {
		struct ifla_vf_rss_query_en x = { .vf = v->vf,
						  .setting = v->rss_query };

		return nla_put(msg, IFLA_VF_RSS_QUERY_EN, sizeof(x), &x);
	}
	case VF_STATE: {
		struct ifla_vf_link_state x = { .vf = v->vf,
						.link_state = v->link_state };

		return nla_put(msg, IFLA_VF_LINK_STATE, sizeof(x), &x);
	}
	default:
		return -EINVAL;
	}
}

/* "vlan 42 qos 3", as given, for error messages. */
static void vf_item_str(enum vf_item it, const struct hba_vf *v, char *buf,
			size_t len)
{
	static const char *const state[] = {
		[IFLA_VF_LINK_STATE_AUTO] = "auto",
		[IFLA_VF_LINK_STATE_ENABLE] = "enable",
		[IFLA_VF_LINK_STATE_DISABLE] = "disable",
	};

	switch (it) {
	case VF_MAC:
		snprintf(buf, len, "mac %02x:%02x:%02x:%02x:%02x:%02x",
			 v->mac[0], v->mac[1], v->mac[2], v->mac[3], v->mac[4],
			 v->mac[5]);
		break;
	case VF_VLAN:
		snprintf(buf, len, "vlan %u qos %u", v->vlan, v->qos);
		break;
	case VF_RATE:
		snprintf(buf, len, "min_tx_rate %u max_tx_rate %u",
			 v->min_tx_rate, v->max_tx_rate);
		break;
	case VF_SPOOFCHK:
		snprintf(buf, len, "spoofchk %s", v->spoofchk ? "on" : "off");
		break;
	case VF_TRUST:
		snprintf(buf, len, "trust %s", v->trust ? "on" : "off");
		break;
	case VF_RSS:
		snprintf(buf, len, "query_rss %s", v->rss_query ? "on" : "off");
		break;
	case VF_STATE:
		snprintf(buf, len, "state %s", v->link_state < 3 ?
			 state[v->link_state] : "?");
		break;
	default:
		snprintf(buf, len, "?");
	}
}

static int send_vf_item(int ifindex, enum vf_item it, const struct hba_vf *v,
			struct hba_nlerr *err)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC,
				 .ifi_index = ifindex };
	struct nlattr *list, *info;
	struct nl_msg *msg;
	struct nl_sock *sk;
	int ret;

	memset(err, 0, sizeof(*err));
	msg = nlmsg_alloc_simple(RTM_SETLINK, 0);
	if (!msg || nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO))
		goto nomem;
	list = nla_nest_start(msg, IFLA_VFINFO_LIST);
	info = list ? nla_nest_start(msg, IFLA_VF_INFO) : NULL;
	if (!info || put_vf_item(msg, it, v))
		goto nomem;
	nla_nest_end(msg, info);
	nla_nest_end(msg, list);
	sk = rtnl_open();
	if (!sk) {
		nlmsg_free(msg);
		err->error = EIO;
		snprintf(err->msg, sizeof(err->msg),
			 "cannot open an rtnetlink socket");
		return -EIO;
	}
	ret = hba_talk(sk, msg, 0, NULL, NULL, 0, NULL, err);
	nl_socket_free(sk);
	return ret;
nomem:
	nlmsg_free(msg);
	err->error = ENOMEM;
	return -ENOMEM;
}

static int vf_set(int argc, char **argv)
{
	enum vf_item order[VF_NITEMS];
	static struct hba_link cur;
	bool want[VF_NITEMS] = { false };
	bool min_set = false, max_set = false;
	struct hba_vf v = { 0 };
	struct hba_nlerr err;
	char what[320], item[64], done[96] = "";
	unsigned int n = 0;
	struct pf pf;
	int i, ret, ifindex;

	if (argc > 1 && is_help(argv[1])) {
		vf_usage(stdout);
		return HBAMIG_EXIT_OK;
	}
	if (argc < 4)
		return usage_error("vf set: expected \"vf set PF N SETTING VALUE ...\"");
	if (parse_u32("vf set: VF number", argv[2], &v.vf))
		return HBAMIG_EXIT_USAGE;
	for (i = 3; i < argc; i += 2) {
		const char *k = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		enum vf_item it;
		bool b;

		if (!val)
			return usage_error("vf set: %s needs a value", k);
		if (!strcmp(k, "mac")) {
			if (parse_mac(val, v.mac))
				return HBAMIG_EXIT_USAGE;
			it = VF_MAC;
		} else if (!strcmp(k, "vlan")) {
			if (parse_u32(k, val, &v.vlan))
				return HBAMIG_EXIT_USAGE;
			if (v.vlan > 4095)
				return usage_error("vf set: vlan %u is not in 0..4095",
						   v.vlan);
			it = VF_VLAN;
		} else if (!strcmp(k, "qos")) {
			if (!want[VF_VLAN])
				return usage_error("vf set: qos needs vlan first");
			if (parse_u32(k, val, &v.qos))
				return HBAMIG_EXIT_USAGE;
			if (v.qos > 7)
				return usage_error("vf set: qos %u is not in 0..7",
						   v.qos);
			continue;
		} else if (!strcmp(k, "min_tx_rate")) {
			if (parse_u32(k, val, &v.min_tx_rate))
				return HBAMIG_EXIT_USAGE;
			min_set = true;
			it = VF_RATE;
		} else if (!strcmp(k, "max_tx_rate") || !strcmp(k, "rate")) {
			if (parse_u32(k, val, &v.max_tx_rate))
				return HBAMIG_EXIT_USAGE;
			max_set = true;
			it = VF_RATE;
		} else if (!strcmp(k, "spoofchk")) {
			if (parse_on_off(k, val, &b))
				return HBAMIG_EXIT_USAGE;
			v.spoofchk = b;
			it = VF_SPOOFCHK;
		} else if (!strcmp(k, "trust")) {
			if (parse_on_off(k, val, &b))
				return HBAMIG_EXIT_USAGE;
			v.trust = b;
			it = VF_TRUST;
		} else if (!strcmp(k, "query_rss")) {
			if (parse_on_off(k, val, &b))
				return HBAMIG_EXIT_USAGE;
			v.rss_query = b;
			it = VF_RSS;
		} else if (!strcmp(k, "state")) {
			if (!strcmp(val, "auto"))
				v.link_state = IFLA_VF_LINK_STATE_AUTO;
			else if (!strcmp(val, "enable"))
				v.link_state = IFLA_VF_LINK_STATE_ENABLE;
			else if (!strcmp(val, "disable"))
				v.link_state = IFLA_VF_LINK_STATE_DISABLE;
			else
				return usage_error("vf set: state \"%s\": not auto|enable|disable",
						   val);
			it = VF_STATE;
		} else {
			return usage_error("vf set: unknown setting \"%s\"", k);
		}
		if (!want[it])
			order[n++] = it;
		want[it] = true;
	}
	if (!n)
		return usage_error("vf set: nothing to set");

	ret = resolve_pf(argv[1], &pf);
	if (ret)
		return ret;
	if (!pf.has_netdev)
		return fail(HBAMIG_EXIT_NOTSUPP,
			    "vf set: PF %s (driver %s) has no network interface, %s",
			    pf.bdf, pf.driver,
			    "which rtnetlink needs (NVMe VFs get resources with nvme virt-mgmt)");
	ifindex = if_nametoindex(pf.ifname);
	if (!ifindex)
		return fail(HBAMIG_EXIT_NODEV, "vf set: %s: %s", pf.ifname,
			    strerror(errno));

	/*
	 * Drivers answer a VF number out of range with a bare EINVAL: check
	 * first. IFLA_NUM_VF counts PCI VFs only (netdevsim's are not), so
	 * other PFs are left to the kernel.
	 */
	memset(&cur, 0, sizeof(cur));
	ret = get_link("vf set", &pf, ifindex, &cur);
	if (ret)
		return ret;
	if (valid_bdf(pf.bdf) && v.vf >= cur.num_vf)
		return cur.num_vf ?
		       fail(HBAMIG_EXIT_NODEV,
			    "vf set: %s has %u VFs (0..%u): no VF %u",
			    pf.ifname, cur.num_vf, cur.num_vf - 1, v.vf) :
		       fail(HBAMIG_EXIT_NODEV,
			    "vf set: %s has no VFs (enable them with sriov_numvfs)",
			    pf.ifname);
	/* Like ip(8): the unspecified half of the rate keeps its value. */
	for (u32 k = 0; k < cur.n; k++) {
		if (cur.vfs[k].vf != v.vf)
			continue;
		if (!min_set)
			v.min_tx_rate = cur.vfs[k].min_tx_rate;
		if (!max_set)
			v.max_tx_rate = cur.vfs[k].max_tx_rate;
	}

	/*
	 * One request per setting, in the order given: the kernel stops at
	 * the first setting a driver refuses, and most drivers refuse with
	 * a bare errno, so only this way can the error name the setting.
	 */
	for (unsigned int k = 0; k < n; k++) {
		if (!send_vf_item(ifindex, order[k], &v, &err)) {
			snprintf(done + strlen(done), sizeof(done) - strlen(done),
				 "%s%s", done[0] ? ", " : "",
				 vf_item_name[order[k]]);
			continue;
		}
		if (err.error == ENOMEM)
			return fail(HBAMIG_EXIT_FAIL, "out of memory");
		vf_item_str(order[k], &v, item, sizeof(item));
		snprintf(what, sizeof(what),
			 "vf set: %s (driver %s) vf %u %s%s%s%s",
			 pf.ifname, pf.driver, v.vf, item,
			 done[0] ? " (already applied: " : "", done,
			 done[0] ? ")" : "");
		return hba_report_nlerr(what, &err);
	}
	return HBAMIG_EXIT_OK;
}

int do_vf(int argc, char **argv)
{
	argc--;
	argv++;
	if (argc < 1 || is_help(argv[0])) {
		vf_usage(argc < 1 ? stderr : stdout);
		return argc < 1 ? HBAMIG_EXIT_USAGE : HBAMIG_EXIT_OK;
	}
	if (matches(argv[0], "show") || matches(argv[0], "list"))
		return vf_show(argc, argv);
	if (matches(argv[0], "set"))
		return vf_set(argc, argv);
	return usage_error("vf: unknown command \"%s\"", argv[0]);
}
