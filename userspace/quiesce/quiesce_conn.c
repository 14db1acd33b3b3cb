// SPDX-License-Identifier: GPL-2.0-only
/*
 * Which TCP connections to pause: an explicit 4-tuple, or every connection
 * of an NVMe/TCP subsystem or an iSCSI target found through sysfs, matched
 * against the sockets INET_DIAG reports in the current network namespace.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/socket.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>

#include "quiesce.h"

static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -errno;
	if (!fgets(buf, len, f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

int quiesce_read_attr(const char *dir, const char *name, char *buf,
		      size_t len)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return read_line(path, buf, len);
}

static int parse_addr(const char *s, int *family, uint8_t *addr)
{
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

/* "ADDR:PORT", "[V6ADDR]:PORT", "ADDR", "*:PORT" or "*". */
static int parse_endpoint(const char *arg, int *family, bool *has_addr,
			  uint8_t *addr, uint16_t *port)
{
	char buf[128], *p, *colon;
	long v;

	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
		return -EINVAL;
	*has_addr = false;
	*port = 0;
	p = buf;
	if (*p == '[') {
		char *rb = strchr(p, ']');

		if (!rb)
			return -EINVAL;
		*rb = '\0';
		colon = rb[1] == ':' ? rb + 1 : NULL;
		p++;
	} else {
		colon = strrchr(p, ':');
		/* More than one colon without brackets: a bare IPv6 address. */
		if (colon && strchr(p, ':') != colon)
			colon = NULL;
	}
	if (colon) {
		*colon = '\0';
		if (strcmp(colon + 1, "*")) {
			char *endp;

			v = strtol(colon + 1, &endp, 10);
			if (*endp || v <= 0 || v > 65535)
				return -EINVAL;
			*port = v;
		}
	}
	p = buf[0] == '[' ? buf + 1 : buf;
	if (!strcmp(p, "*") || !*p)
		return 0;
	*has_addr = true;
	return parse_addr(p, family, addr);
}

/* "LOCAL,REMOTE" with LOCAL and REMOTE endpoints as above. */
int quiesce_sel_parse_conn(struct quiesce_selection *s, const char *arg)
{
	struct quiesce_sel *e;
	char buf[256], *comma;
	int fl = 0, fr = 0;

	if (s->nr >= QUIESCE_MAX_SEL ||
	    snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
		return -E2BIG;
	comma = strchr(buf, ',');
	if (!comma)
		return -EINVAL;
	*comma = '\0';
	e = &s->sel[s->nr];
	memset(e, 0, sizeof(*e));
	if (parse_endpoint(buf, &fl, &e->has_laddr, e->laddr, &e->lport) ||
	    parse_endpoint(comma + 1, &fr, &e->has_raddr, e->raddr, &e->rport))
		return -EINVAL;
	if (fl && fr && fl != fr)
		return -EINVAL;
	e->family = fl ? fl : fr;
	snprintf(e->origin, sizeof(e->origin), "conn %.58s", arg);
	s->nr++;
	return 0;
}

/* "traddr=10.0.0.2,trsvcid=4420,src_addr=10.0.0.1" */
static int nvme_addr_field(const char *addr, const char *key, char *out,
			   size_t len)
{
	size_t kl = strlen(key);
	const char *p = addr;

	while (p && *p) {
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, ",");

			if (n >= len)
				return -E2BIG;
			memcpy(out, p + kl + 1, n);
			out[n] = '\0';
			return 0;
		}
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return -ENOENT;
}

int quiesce_sel_add_nvme(struct quiesce_selection *s, const char *nqn)
{
	char dir[300], buf[512], tr[64], svc[16], src[64];
	struct quiesce_sel *e;
	struct dirent *d;
	int found = 0;
	DIR *dd;

	if (s->nr_nvme < 8)
		s->nvme_nqn[s->nr_nvme++] = nqn;
	dd = opendir("/sys/class/nvme");
	if (!dd)
		return 0;
	while ((d = readdir(dd))) {
		if (strncmp(d->d_name, "nvme", 4))
			continue;
		snprintf(dir, sizeof(dir), "/sys/class/nvme/%s", d->d_name);
		if (quiesce_read_attr(dir, "transport", buf, sizeof(buf)) ||
		    strcmp(buf, "tcp"))
			continue;
		if (quiesce_read_attr(dir, "subsysnqn", buf, sizeof(buf)) ||
		    strcmp(buf, nqn))
			continue;
		if (quiesce_read_attr(dir, "address", buf, sizeof(buf)) ||
		    nvme_addr_field(buf, "traddr", tr, sizeof(tr)) ||
		    nvme_addr_field(buf, "trsvcid", svc, sizeof(svc)))
			continue;
		if (s->nr >= QUIESCE_MAX_SEL)
			break;
		e = &s->sel[s->nr];
		memset(e, 0, sizeof(*e));
		if (parse_addr(tr, &e->family, e->raddr))
			continue;
		e->has_raddr = true;
		e->rport = atoi(svc);
		/* The kernel reports the source address once it is known. */
		if (!nvme_addr_field(buf, "src_addr", src, sizeof(src))) {
			int f;

			if (!parse_addr(src, &f, e->laddr) && f == e->family)
				e->has_laddr = true;
		}
		snprintf(e->origin, sizeof(e->origin), "%.60s", d->d_name);
		s->nr++;
		found++;
	}
	closedir(dd);
	return found;
}

int quiesce_sel_add_iscsi(struct quiesce_selection *s, const char *iqn)
{
	char dir[300], buf[256], addr[64], port[16], lport[16];
	struct quiesce_sel *e;
	struct dirent *d;
	int found = 0, sid;
	DIR *dd;

	if (s->nr_iscsi < 8)
		s->iscsi_iqn[s->nr_iscsi++] = iqn;
	dd = opendir("/sys/class/iscsi_connection");
	if (!dd)
		return 0;
	while ((d = readdir(dd))) {
		if (sscanf(d->d_name, "connection%d:", &sid) != 1)
			continue;
		snprintf(dir, sizeof(dir),
			 "/sys/class/iscsi_session/session%d", sid);
		if (quiesce_read_attr(dir, "targetname", buf, sizeof(buf)) ||
		    strcmp(buf, iqn))
			continue;
		snprintf(dir, sizeof(dir), "/sys/class/iscsi_connection/%s",
			 d->d_name);
		if (quiesce_read_attr(dir, "address", addr, sizeof(addr)) ||
		    quiesce_read_attr(dir, "port", port, sizeof(port)))
			continue;
		if (s->nr >= QUIESCE_MAX_SEL)
			break;
		e = &s->sel[s->nr];
		memset(e, 0, sizeof(*e));
		if (parse_addr(addr, &e->family, e->raddr))
			continue;
		e->has_raddr = true;
		e->rport = atoi(port);
		if (!quiesce_read_attr(dir, "local_port", lport, sizeof(lport)))
			e->lport = atoi(lport);
		snprintf(e->origin, sizeof(e->origin), "session%d", sid);
		s->nr++;
		found++;
	}
	closedir(dd);
	return found;
}

static bool sel_match(const struct quiesce_sel *e, const struct quiesce_conn *c)
{
	size_t alen = c->family == AF_INET ? 4 : 16;

	if (e->family && e->family != c->family)
		return false;
	if (e->lport && e->lport != c->lport)
		return false;
	if (e->rport && e->rport != c->rport)
		return false;
	if (e->has_laddr && memcmp(e->laddr, c->laddr, alen))
		return false;
	if (e->has_raddr && memcmp(e->raddr, c->raddr, alen))
		return false;
	return true;
}

/*
 * A dual-stack socket talking IPv4 reports ::ffff:a.b.c.d addresses; on
 * the wire its segments are IPv4, so that is how it must be matched.
 */
static void conn_unmap_v4(struct quiesce_conn *c)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (c->family != AF_INET6 || memcmp(c->laddr, mapped, 12) ||
	    memcmp(c->raddr, mapped, 12))
		return;
	c->family = AF_INET;
	memmove(c->laddr, c->laddr + 12, 4);
	memset(c->laddr + 4, 0, 12);
	memmove(c->raddr, c->raddr + 12, 4);
	memset(c->raddr + 4, 0, 12);
}

static int diag_dump(int family, const struct quiesce_selection *s,
		     struct quiesce_conn *out, int max, int n)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} rq = {
		.nlh = {
			.nlmsg_len = sizeof(rq),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		},
		.req = {
			.sdiag_family = family,
			.sdiag_protocol = IPPROTO_TCP,
			.idiag_ext = 1 << (INET_DIAG_INFO - 1),
			.idiag_states = (1 << 1 /* TCP_ESTABLISHED */) |
					(1 << 8 /* TCP_CLOSE_WAIT */),
		},
	};
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	static char buf[32768] __aligned(8);
	int fd, ret = n;
	bool done = false;

	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	if (sendto(fd, &rq, sizeof(rq), 0, (struct sockaddr *)&sa,
		   sizeof(sa)) < 0) {
		ret = -errno;
		goto out;
	}
	while (!done) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h;

		if (len < 0) {
			ret = -errno;
			goto out;
		}
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len);
		     h = NLMSG_NEXT(h, len)) {
			struct inet_diag_msg *m = NLMSG_DATA(h);
			struct quiesce_conn c = {};
			struct rtattr *a;
			int alen, i;

			if (h->nlmsg_type == NLMSG_DONE) {
				done = true;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);

				/* ENOENT: no tcp_diag module for this family. */
				ret = e->error ? e->error : -EPROTO;
				goto out;
			}
			c.family = m->idiag_family;
			memcpy(c.laddr, m->id.idiag_src, 16);
			memcpy(c.raddr, m->id.idiag_dst, 16);
			c.lport = ntohs(m->id.idiag_sport);
			c.rport = ntohs(m->id.idiag_dport);
			c.state = m->idiag_state;
			conn_unmap_v4(&c);
			for (i = 0; i < s->nr; i++)
				if (sel_match(&s->sel[i], &c))
					break;
			if (i == s->nr)
				continue;
			snprintf(c.origin, sizeof(c.origin), "%.63s",
				 s->sel[i].origin);
			alen = h->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
			for (a = (struct rtattr *)(m + 1); RTA_OK(a, alen);
			     a = RTA_NEXT(a, alen)) {
				struct tcp_info ti = {};
				size_t l = RTA_PAYLOAD(a);

				if (a->rta_type != INET_DIAG_INFO)
					continue;
				memcpy(&ti, RTA_DATA(a),
				       l < sizeof(ti) ? l : sizeof(ti));
				c.snd_wnd = ti.tcpi_snd_wnd;
				c.rcv_wnd = ti.tcpi_rcv_wnd;
				c.bytes_received = ti.tcpi_bytes_received;
				c.bytes_acked = ti.tcpi_bytes_acked;
				c.rtt_us = ti.tcpi_rtt;
				c.probes = ti.tcpi_probes;
				c.backoff = ti.tcpi_backoff;
			}
			if (ret < max)
				out[ret] = c;
			ret++;
		}
	}
out:
	close(fd);
	return ret;
}

int quiesce_conns_find(const struct quiesce_selection *s,
		       struct quiesce_conn *out, int max)
{
	int n;

	if (!s->nr)
		return 0;
	n = diag_dump(AF_INET, s, out, max, 0);
	if (n < 0)
		return n;
	n = diag_dump(AF_INET6, s, out, max, n);
	return n < max ? n : max;
}

void quiesce_conn_str(const struct quiesce_conn *c, bool local, char *buf,
		      size_t len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(c->family, local ? c->laddr : c->raddr, a, sizeof(a));
	if (c->family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", a, local ? c->lport : c->rport);
	else
		snprintf(buf, len, "%s:%u", a, local ? c->lport : c->rport);
}

/*
 * The interface the kernel routes @c out of (RTM_GETROUTE from its local
 * address to its peer), for when the caller names none.
 */
int quiesce_conn_oif(const struct quiesce_conn *c, char *ifname)
{
	struct {
		struct nlmsghdr	nlh;
		struct rtmsg	rtm;
		char		attrs[64];
	} rq = {};
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	static char buf[8192] __aligned(8);
	size_t alen = c->family == AF_INET ? 4 : 16;
	struct rtattr *a;
	struct nlmsghdr *h;
	int fd, len, ret = -ENOENT;

	rq.nlh.nlmsg_type = RTM_GETROUTE;
	rq.nlh.nlmsg_flags = NLM_F_REQUEST;
	rq.nlh.nlmsg_len = NLMSG_LENGTH(sizeof(rq.rtm));
	rq.rtm.rtm_family = c->family;
	rq.rtm.rtm_dst_len = alen * 8;
	a = (struct rtattr *)((char *)&rq + NLMSG_ALIGN(rq.nlh.nlmsg_len));
	a->rta_type = RTA_DST;
	a->rta_len = RTA_LENGTH(alen);
	memcpy(RTA_DATA(a), c->raddr, alen);
	rq.nlh.nlmsg_len = NLMSG_ALIGN(rq.nlh.nlmsg_len) + RTA_ALIGN(a->rta_len);
	a = (struct rtattr *)((char *)&rq + rq.nlh.nlmsg_len);
	a->rta_type = RTA_SRC;
	a->rta_len = RTA_LENGTH(alen);
	memcpy(RTA_DATA(a), c->laddr, alen);
	rq.rtm.rtm_src_len = alen * 8;
	rq.nlh.nlmsg_len += RTA_ALIGN(a->rta_len);

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	if (sendto(fd, &rq, rq.nlh.nlmsg_len, 0, (struct sockaddr *)&sa,
		   sizeof(sa)) < 0) {
		ret = -errno;
		goto out;
	}
	len = recv(fd, buf, sizeof(buf), 0);
	for (h = (struct nlmsghdr *)buf; len > 0 && NLMSG_OK(h, (size_t)len);
	     h = NLMSG_NEXT(h, len)) {
		struct rtmsg *r = NLMSG_DATA(h);
		int rlen;

		if (h->nlmsg_type == NLMSG_ERROR) {
			ret = ((struct nlmsgerr *)r)->error;
			break;
		}
		if (h->nlmsg_type != RTM_NEWROUTE)
			continue;
		rlen = RTM_PAYLOAD(h);
		for (a = RTM_RTA(r); RTA_OK(a, rlen); a = RTA_NEXT(a, rlen)) {
			if (a->rta_type != RTA_OIF)
				continue;
			ret = if_indextoname(*(int *)RTA_DATA(a), ifname) ?
			      0 : -errno;
		}
		break;
	}
out:
	close(fd);
	return ret;
}
