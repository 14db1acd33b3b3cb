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

static void vf_usage(FILE *f)
{
	fprintf(f,
"Usage: hbamig vf show PF\n"
"       hbamig vf set PF N [mac LLADDR] [vlan VID [qos QOS]]\n"
"                          [min_tx_rate MBPS] [max_tx_rate MBPS]\n"
"                          [spoofchk on|off] [trust on|off]\n"
"                          [state auto|enable|disable] [query_rss on|off]\n"
"PF is a network interface name or the PF's PCI address.\n"
"vf set needs a PF with a network interface (rtnetlink); NVMe PFs have\n"
"none: their VFs get resources with nvme virt-mgmt.\n");
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
			return usage_error("vf: \"%s\" is neither an interface name nor a PCI address",
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

static int vf_show(int argc, char **argv)
{
	static struct hba_link l;
	struct hba_nlerr err;
	struct nl_msg *msg;
	struct nl_sock *sk;
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
		struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };

		ifi.ifi_index = if_nametoindex(pf.ifname);
		if (!ifi.ifi_index)
			return fail(HBAMIG_EXIT_NODEV, "vf show: %s: %s",
				    pf.ifname, strerror(errno));
		sk = rtnl_open();
		if (!sk)
			return fail(HBAMIG_EXIT_FAIL,
				    "vf show: cannot open an rtnetlink socket");
		msg = nlmsg_alloc_simple(RTM_GETLINK, 0);
		if (!msg || nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) ||
		    nla_put_u32(msg, IFLA_EXT_MASK, RTEXT_FILTER_VF)) {
			nlmsg_free(msg);
			nl_socket_free(sk);
			return fail(HBAMIG_EXIT_FAIL, "out of memory");
		}
		/* A GETLINK "do" has no NLMSG_DONE: ask for the ACK. */
		ret = hba_talk(sk, msg, 0, NULL, &l, RTM_NEWLINK, link_cb,
			       &err);
		nl_socket_free(sk);
		if (ret)
			return hba_report_nlerr("vf show", &err);
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

static int parse_mac(const char *s, u8 *mac)
{
	unsigned int b[6];
	char tail;

	if (!s || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2],
			 &b[3], &b[4], &b[5], &tail) != 6)
		return usage_error("vf set: mac \"%s\" is not xx:xx:xx:xx:xx:xx",
				   s ? s : "");
	for (int i = 0; i < 6; i++)
		mac[i] = b[i];
	return 0;
}

static int vf_set(int argc, char **argv)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct nlattr *list, *info;
	struct hba_vf v = { 0 };
	struct hba_nlerr err;
	struct nl_msg *msg;
	struct nl_sock *sk;
	struct pf pf;
	bool any = false, min_set = false, max_set = false;
	int i, ret;

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
		bool b;

		any = true;
		if (!val)
			return usage_error("vf set: %s needs a value", k);
		if (!strcmp(k, "mac")) {
			if (parse_mac(val, v.mac))
				return HBAMIG_EXIT_USAGE;
			v.has_mac = true;
		} else if (!strcmp(k, "vlan")) {
			if (parse_u32(k, val, &v.vlan))
				return HBAMIG_EXIT_USAGE;
			if (v.vlan > 4095)
				return usage_error("vf set: vlan %u is not in 0..4095",
						   v.vlan);
			v.has_vlan = true;
		} else if (!strcmp(k, "qos")) {
			if (!v.has_vlan)
				return usage_error("vf set: qos needs vlan first");
			if (parse_u32(k, val, &v.qos))
				return HBAMIG_EXIT_USAGE;
		} else if (!strcmp(k, "min_tx_rate")) {
			if (parse_u32(k, val, &v.min_tx_rate))
				return HBAMIG_EXIT_USAGE;
			min_set = true;
		} else if (!strcmp(k, "max_tx_rate") || !strcmp(k, "rate")) {
			if (parse_u32(k, val, &v.max_tx_rate))
				return HBAMIG_EXIT_USAGE;
			max_set = true;
		} else if (!strcmp(k, "spoofchk")) {
			if (parse_on_off(k, val, &b))
				return HBAMIG_EXIT_USAGE;
			v.spoofchk = b;
			v.has_spoofchk = true;
		} else if (!strcmp(k, "trust")) {
			if (parse_on_off(k, val, &b))
				return HBAMIG_EXIT_USAGE;
			v.trust = b;
			v.has_trust = true;
		} else if (!strcmp(k, "query_rss")) {
			if (parse_on_off(k, val, &b))
				return HBAMIG_EXIT_USAGE;
			v.rss_query = b;
			v.has_rss_query = true;
		} else if (!strcmp(k, "state")) {
			if (!strcmp(val, "auto"))
				v.link_state = IFLA_VF_LINK_STATE_AUTO;
			else if (!strcmp(val, "enable"))
				v.link_state = IFLA_VF_LINK_STATE_ENABLE;
			else if (!strcmp(val, "disable"))
				v.link_state = IFLA_VF_LINK_STATE_DISABLE;
			else
				return usage_error("vf set: state \"%s\" is not auto, enable or disable",
						   val);
			v.has_link_state = true;
		} else {
			return usage_error("vf set: unknown setting \"%s\"", k);
		}
	}
	if (!any)
		return usage_error("vf set: nothing to set");

	ret = resolve_pf(argv[1], &pf);
	if (ret)
		return ret;
	if (!pf.has_netdev)
		return fail(HBAMIG_EXIT_NOTSUPP,
			    "vf set: PF %s (driver %s) has no network interface; "
			    "VF settings go through rtnetlink, which only network "
			    "PFs have (NVMe VFs get resources with nvme virt-mgmt)",
			    pf.bdf, pf.driver);
	ifi.ifi_index = if_nametoindex(pf.ifname);
	if (!ifi.ifi_index)
		return fail(HBAMIG_EXIT_NODEV, "vf set: %s: %s", pf.ifname,
			    strerror(errno));

	msg = nlmsg_alloc_simple(RTM_SETLINK, 0);
	if (!msg || nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO))
		goto nomem;
	list = nla_nest_start(msg, IFLA_VFINFO_LIST);
	info = list ? nla_nest_start(msg, IFLA_VF_INFO) : NULL;
	if (!info)
		goto nomem;
	if (v.has_mac) {
		struct ifla_vf_mac x = { .vf = v.vf };

		memcpy(x.mac, v.mac, 6);
		if (nla_put(msg, IFLA_VF_MAC, sizeof(x), &x))
			goto nomem;
	}
	if (v.has_vlan) {
		struct ifla_vf_vlan x = { .vf = v.vf, .vlan = v.vlan,
					  .qos = v.qos };

		if (nla_put(msg, IFLA_VF_VLAN, sizeof(x), &x))
			goto nomem;
	}
	if (min_set || max_set) {
		struct ifla_vf_rate x = { .vf = v.vf,
					  .min_tx_rate = v.min_tx_rate,
					  .max_tx_rate = v.max_tx_rate };

		/* Like ip(8): the unspecified half keeps its current value. */
		if (!min_set || !max_set) {
			static struct hba_link cur;
			struct ifinfomsg gi = ifi;
			struct nl_msg *g;

			sk = rtnl_open();
			g = nlmsg_alloc_simple(RTM_GETLINK, 0);
			if (!sk || !g ||
			    nlmsg_append(g, &gi, sizeof(gi), NLMSG_ALIGNTO) ||
			    nla_put_u32(g, IFLA_EXT_MASK, RTEXT_FILTER_VF) ||
			    hba_talk(sk, g, 0, NULL, &cur, RTM_NEWLINK,
				     link_cb, &err)) {
				if (sk)
					nl_socket_free(sk);
				nlmsg_free(msg);
				return hba_report_nlerr("vf set", &err);
			}
			nl_socket_free(sk);
			for (u32 k = 0; k < cur.n; k++) {
				if (cur.vfs[k].vf != v.vf)
					continue;
				if (!min_set)
					x.min_tx_rate = cur.vfs[k].min_tx_rate;
				if (!max_set)
					x.max_tx_rate = cur.vfs[k].max_tx_rate;
			}
		}
		if (nla_put(msg, IFLA_VF_RATE, sizeof(x), &x))
			goto nomem;
	}
	if (v.has_spoofchk) {
		struct ifla_vf_spoofchk x = { .vf = v.vf, .setting = v.spoofchk };

		if (nla_put(msg, IFLA_VF_SPOOFCHK, sizeof(x), &x))
			goto nomem;
	}
	if (v.has_trust) {
		struct ifla_vf_trust x = { .vf = v.vf, .setting = v.trust };

		if (nla_put(msg, IFLA_VF_TRUST, sizeof(x), &x))
			goto nomem;
	}
	if (v.has_rss_query) {
		struct ifla_vf_rss_query_en x = { .vf = v.vf,
						  .setting = v.rss_query };

		if (nla_put(msg, IFLA_VF_RSS_QUERY_EN, sizeof(x), &x))
			goto nomem;
	}
	if (v.has_link_state) {
		struct ifla_vf_link_state x = { .vf = v.vf,
						.link_state = v.link_state };

		if (nla_put(msg, IFLA_VF_LINK_STATE, sizeof(x), &x))
			goto nomem;
	}
	nla_nest_end(msg, info);
	nla_nest_end(msg, list);

	sk = rtnl_open();
	if (!sk) {
		nlmsg_free(msg);
		return fail(HBAMIG_EXIT_FAIL,
			    "vf set: cannot open an rtnetlink socket");
	}
	ret = hba_talk(sk, msg, 0, NULL, NULL, 0, NULL, &err);
	nl_socket_free(sk);
	if (ret)
		return hba_report_nlerr("vf set", &err);
	return HBAMIG_EXIT_OK;

nomem:
	nlmsg_free(msg);
	return fail(HBAMIG_EXIT_FAIL, "out of memory");
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
