/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Raw generic netlink helpers shared by the emuhba netlink selftests: build
 * requests attribute by attribute (so that malformed ones can be built
 * too), read replies, extended ACKs, dumps and events.
 */
#ifndef EMUHBA_GENL_LIB_H
#define EMUHBA_GENL_LIB_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/emuhba.h>

#define BUF_SIZE 32768

/* Room for an image attribute of the largest size an attribute can have. */
struct req {
	struct nlmsghdr n;
	struct genlmsghdr g;
	char attrs[70000];
};

struct reply {
	int error;		/* positive errno, 0 for ACK */
	char msg[256];
	int offs;		/* -1 when absent */
	int miss;		/* -1 when absent */
};

static inline int nl_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int fd, one = 1;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (fd < 0)
		return -1;
	/* Multicasts skip unbound sockets (port 0 is the kernel's). */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	return fd;
}

static inline void req_init(struct req *r, __u16 type, __u8 cmd, __u16 flags)
{
	memset(r, 0, sizeof(*r));
	r->n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	r->n.nlmsg_type = type;
	r->n.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	r->n.nlmsg_seq = 1;
	r->g.cmd = cmd;
	r->g.version = EMUHBA_FAMILY_VERSION;
}

/* Appends an attribute; returns its offset in the message. */
static inline int put(struct req *r, __u16 type, const void *data, int len)
{
	struct nlattr *a = (void *)((char *)r + NLMSG_ALIGN(r->n.nlmsg_len));
	int off = (char *)a - (char *)r;

	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	if (len)
		memcpy((char *)a + NLA_HDRLEN, data, len);
	r->n.nlmsg_len = NLMSG_ALIGN(r->n.nlmsg_len) + NLA_ALIGN(a->nla_len);
	return off;
}

static inline int put_u32(struct req *r, __u16 type, __u32 v)
{
	return put(r, type, &v, sizeof(v));
}

static inline int put_u8(struct req *r, __u16 type, __u8 v)
{
	return put(r, type, &v, sizeof(v));
}

static inline int put_str(struct req *r, __u16 type, const char *s)
{
	return put(r, type, s, strlen(s) + 1);
}

static inline struct nlattr *nest_start(struct req *r, __u16 type)
{
	struct nlattr *a = (void *)((char *)r + NLMSG_ALIGN(r->n.nlmsg_len));

	put(r, type | NLA_F_NESTED, NULL, 0);
	return a;
}

static inline void nest_end(struct req *r, struct nlattr *a)
{
	a->nla_len = (char *)r + r->n.nlmsg_len - (char *)a;
}

static inline void parse_ack(const struct nlmsghdr *h, struct reply *rep)
{
	const struct nlmsgerr *e = NLMSG_DATA(h);
	const char *p = (const char *)e + sizeof(*e);
	int rem = h->nlmsg_len - NLMSG_HDRLEN - sizeof(*e);

	rep->error = -e->error;
	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(h->nlmsg_flags & NLM_F_CAPPED)) {
		p += NLMSG_ALIGN(e->msg.nlmsg_len) - sizeof(e->msg);
		rem -= NLMSG_ALIGN(e->msg.nlmsg_len) - sizeof(e->msg);
	}
	while (rem >= (int)NLA_HDRLEN) {
		const struct nlattr *a = (const void *)p;

		if (a->nla_len < NLA_HDRLEN || a->nla_len > rem)
			break;
		if (a->nla_type == NLMSGERR_ATTR_MSG)
			snprintf(rep->msg, sizeof(rep->msg), "%s",
				 (const char *)a + NLA_HDRLEN);
		else if (a->nla_type == NLMSGERR_ATTR_OFFS)
			rep->offs = *(const __u32 *)((const char *)a + NLA_HDRLEN);
		else if (a->nla_type == NLMSGERR_ATTR_MISS_TYPE)
			rep->miss = *(const __u32 *)((const char *)a + NLA_HDRLEN);
		p += NLA_ALIGN(a->nla_len);
		rem -= NLA_ALIGN(a->nla_len);
	}
}

typedef void (*msg_fn)(const struct nlmsghdr *h, void *arg);

/*
 * Sends @r and reads until the ACK or NLMSG_DONE; data messages go to @fn.
 * @bufsz is the size of each recv() buffer.
 */
static inline int talk(int fd, struct req *r, struct reply *rep, msg_fn fn,
		void *arg, size_t bufsz, int *nrecv)
{
	static char buf[BUF_SIZE];

	memset(rep, 0, sizeof(*rep));
	rep->offs = -1;
	rep->miss = -1;
	if (send(fd, r, r->n.nlmsg_len, 0) != (ssize_t)r->n.nlmsg_len)
		return -errno;
	for (;;) {
		struct nlmsghdr *h;
		ssize_t n;

		n = recv(fd, buf, bufsz, 0);
		if (n < 0)
			return -errno;
		if (nrecv)
			(*nrecv)++;
		for (h = (void *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != r->n.nlmsg_seq)
				continue;
			if (h->nlmsg_type == NLMSG_ERROR) {
				parse_ack(h, rep);
				return 0;
			}
			if (h->nlmsg_type == NLMSG_DONE) {
				rep->error = -*(int *)NLMSG_DATA(h);
				return 0;
			}
			if (fn)
				fn(h, arg);
		}
	}
}

/* Resolve the family id and the events group through nlctrl. */
struct fam {
	int id;
	int grp;
	int version;
	int nops;
	int nops_admin;
};

static inline const struct nlattr *attr_next(const struct nlattr *a, int *rem)
{
	*rem -= NLA_ALIGN(a->nla_len);
	return (const void *)((const char *)a + NLA_ALIGN(a->nla_len));
}

#define for_attrs(a, start, len, rem) \
	for (a = (const void *)(start), rem = (len); \
	     rem >= (int)NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && \
	     a->nla_len <= rem; a = attr_next(a, &rem))

static inline void fam_cb(const struct nlmsghdr *h, void *arg)
{
	const struct nlattr *a, *b, *c;
	struct fam *f = arg;
	int rem, rem2, rem3;

	for_attrs(a, (char *)NLMSG_DATA(h) + GENL_HDRLEN,
		  h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), rem) {
		const void *d = (const char *)a + NLA_HDRLEN;

		switch (a->nla_type & NLA_TYPE_MASK) {
		case CTRL_ATTR_FAMILY_ID:
			f->id = *(const __u16 *)d;
			break;
		case CTRL_ATTR_VERSION:
			f->version = *(const __u32 *)d;
			break;
		case CTRL_ATTR_OPS:
			for_attrs(b, d, a->nla_len - NLA_HDRLEN, rem2) {
				f->nops++;
				for_attrs(c, (const char *)b + NLA_HDRLEN,
					  b->nla_len - NLA_HDRLEN, rem3)
					if (c->nla_type == CTRL_ATTR_OP_FLAGS &&
					    (*(const __u32 *)((const char *)c +
					       NLA_HDRLEN) & GENL_ADMIN_PERM))
						f->nops_admin++;
			}
			break;
		case CTRL_ATTR_MCAST_GROUPS:
			for_attrs(b, d, a->nla_len - NLA_HDRLEN, rem2) {
				int id = -1;
				bool ev = false;

				for_attrs(c, (const char *)b + NLA_HDRLEN,
					  b->nla_len - NLA_HDRLEN, rem3) {
					const char *cd = (const char *)c +
							 NLA_HDRLEN;

					if (c->nla_type == CTRL_ATTR_MCAST_GRP_ID)
						id = *(const __u32 *)cd;
					if (c->nla_type ==
					    CTRL_ATTR_MCAST_GRP_NAME &&
					    !strcmp(cd, EMUHBA_MCGRP_EVENTS))
						ev = true;
				}
				if (ev)
					f->grp = id;
			}
			break;
		}
	}
}

static inline int resolve(int fd, struct fam *f)
{
	struct reply rep;
	struct req r;

	memset(f, 0, sizeof(*f));
	f->grp = -1;
	req_init(&r, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
	r.g.version = 2;
	put_str(&r, CTRL_ATTR_FAMILY_NAME, EMUHBA_FAMILY_NAME);
	if (talk(fd, &r, &rep, fam_cb, f, BUF_SIZE, NULL) || rep.error)
		return -1;
	return f->id ? 0 : -1;
}

/* ---- decoded adapters ---- */

struct adapter {
	__u32 id;
	char bdf[32];
	char backend[300];
	__u32 mode;
	__u64 switches;
	int has_last_switch;
	__s32 sw_result;
	__u32 sw_from, sw_to;
	__u64 sw_total_ns;
	int has_policy;
	__u8 auto_switch, quiesce_required;
	__u32 timeout;
	int has_idle_after;
	__u32 idle_after;
	int has_counters;
	int has_window_doorbells;
	__u64 window_doorbells;
	int has_position_source;
	__u32 position_source;
	__u32 nsid;
	char subnqn[300];
	int nguid_len, eui64_len;	/* 0 when absent */
	__u8 nguid[16], eui64[8];
};

struct adapters {
	int n;
	int multi;		/* messages that carried NLM_F_MULTI */
	__u8 cmd;
	struct adapter a[64];
};

static inline void adapter_cb(const struct nlmsghdr *h, void *arg)
{
	const struct genlmsghdr *g = NLMSG_DATA(h);
	struct adapters *as = arg;
	const struct nlattr *a, *b;
	struct adapter *x;
	int rem, rem2;

	if (as->n >= 64)
		return;
	x = &as->a[as->n++];
	memset(x, 0, sizeof(*x));
	as->cmd = g->cmd;
	if (h->nlmsg_flags & NLM_F_MULTI)
		as->multi++;
	for_attrs(a, (char *)g + GENL_HDRLEN,
		  h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), rem) {
		const char *d = (const char *)a + NLA_HDRLEN;

		switch (a->nla_type & NLA_TYPE_MASK) {
		case EMUHBA_A_ADAPTER_ID:
			x->id = *(const __u32 *)d;
			break;
		case EMUHBA_A_ADAPTER_BDF:
			snprintf(x->bdf, sizeof(x->bdf), "%s", d);
			break;
		case EMUHBA_A_ADAPTER_BACKEND:
			snprintf(x->backend, sizeof(x->backend), "%s", d);
			break;
		case EMUHBA_A_ADAPTER_MODE:
			x->mode = *(const __u32 *)d;
			break;
		case EMUHBA_A_ADAPTER_NSID:
			x->nsid = *(const __u32 *)d;
			break;
		case EMUHBA_A_ADAPTER_SUBNQN:
			snprintf(x->subnqn, sizeof(x->subnqn), "%s", d);
			break;
		case EMUHBA_A_ADAPTER_NGUID:
			x->nguid_len = a->nla_len - NLA_HDRLEN;
			memcpy(x->nguid, d, x->nguid_len < 16 ? x->nguid_len : 16);
			break;
		case EMUHBA_A_ADAPTER_EUI64:
			x->eui64_len = a->nla_len - NLA_HDRLEN;
			memcpy(x->eui64, d, x->eui64_len < 8 ? x->eui64_len : 8);
			break;
		case EMUHBA_A_ADAPTER_COUNTERS:
			x->has_counters = 1;
			for_attrs(b, d, a->nla_len - NLA_HDRLEN, rem2) {
				const char *bd = (const char *)b + NLA_HDRLEN;

				if (b->nla_type == EMUHBA_A_COUNTERS_SWITCHES)
					memcpy(&x->switches, bd, 8);
				if (b->nla_type ==
				    EMUHBA_A_COUNTERS_WINDOW_DOORBELLS) {
					memcpy(&x->window_doorbells, bd, 8);
					x->has_window_doorbells = 1;
				}
			}
			break;
		case EMUHBA_A_ADAPTER_POSITION_SOURCE:
			x->position_source = *(const __u32 *)d;
			x->has_position_source = 1;
			break;
		case EMUHBA_A_ADAPTER_LAST_SWITCH:
			x->has_last_switch = 1;
			for_attrs(b, d, a->nla_len - NLA_HDRLEN, rem2) {
				const char *bd = (const char *)b + NLA_HDRLEN;

				switch (b->nla_type) {
				case EMUHBA_A_SWITCH_TIMING_RESULT:
					x->sw_result = *(const __s32 *)bd;
					break;
				case EMUHBA_A_SWITCH_TIMING_FROM_MODE:
					x->sw_from = *(const __u32 *)bd;
					break;
				case EMUHBA_A_SWITCH_TIMING_TO_MODE:
					x->sw_to = *(const __u32 *)bd;
					break;
				case EMUHBA_A_SWITCH_TIMING_TOTAL_NS:
					memcpy(&x->sw_total_ns, bd, 8);
					break;
				}
			}
			break;
		case EMUHBA_A_ADAPTER_POLICY:
			x->has_policy = 1;
			for_attrs(b, d, a->nla_len - NLA_HDRLEN, rem2) {
				const char *bd = (const char *)b + NLA_HDRLEN;

				if (b->nla_type == EMUHBA_A_POLICY_AUTO_SWITCH)
					x->auto_switch = *(const __u8 *)bd;
				if (b->nla_type ==
				    EMUHBA_A_POLICY_QUIESCE_REQUIRED)
					x->quiesce_required = *(const __u8 *)bd;
				if (b->nla_type ==
				    EMUHBA_A_POLICY_SWITCH_TIMEOUT)
					x->timeout = *(const __u32 *)bd;
				if (b->nla_type == EMUHBA_A_POLICY_IDLE_AFTER) {
					x->idle_after = *(const __u32 *)bd;
					x->has_idle_after = 1;
				}
			}
			break;
		}
	}
}

/* ---- events ---- */

struct event {
	__u8 cmd;
	__u32 mode, old_mode;
	__u32 mig_state, old_mig_state;
	__u32 id;
	char bdf[32];
	__s32 error;
	char msg[256];
};

static inline int read_event(int fd, struct event *ev, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	static char buf[BUF_SIZE];
	const struct nlattr *a;
	struct nlmsghdr *h;
	ssize_t n;
	int rem;

	if (poll(&p, 1, timeout_ms) != 1)
		return -ETIMEDOUT;
	n = recv(fd, buf, sizeof(buf), 0);
	if (n < (ssize_t)NLMSG_LENGTH(GENL_HDRLEN))
		return -EIO;
	h = (void *)buf;
	memset(ev, 0, sizeof(*ev));
	ev->cmd = ((struct genlmsghdr *)NLMSG_DATA(h))->cmd;
	for_attrs(a, (char *)NLMSG_DATA(h) + GENL_HDRLEN,
		  h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), rem) {
		const char *d = (const char *)a + NLA_HDRLEN;

		switch (a->nla_type) {
		case EMUHBA_A_ADAPTER_ID:
			ev->id = *(const __u32 *)d;
			break;
		case EMUHBA_A_ADAPTER_BDF:
			snprintf(ev->bdf, sizeof(ev->bdf), "%s", d);
			break;
		case EMUHBA_A_ADAPTER_ERROR:
			ev->error = *(const __s32 *)d;
			break;
		case EMUHBA_A_ADAPTER_MODE:
			ev->mode = *(const __u32 *)d;
			break;
		case EMUHBA_A_ADAPTER_OLD_MODE:
			ev->old_mode = *(const __u32 *)d;
			break;
		case EMUHBA_A_ADAPTER_MIG_STATE:
			ev->mig_state = *(const __u32 *)d;
			break;
		case EMUHBA_A_ADAPTER_OLD_MIG_STATE:
			ev->old_mig_state = *(const __u32 *)d;
			break;
		case EMUHBA_A_ADAPTER_ERROR_MSG:
			snprintf(ev->msg, sizeof(ev->msg), "%s", d);
			break;
		}
	}
	return 0;
}

static inline int listener(int grp)
{
	int fd = nl_open();

	if (fd >= 0 && setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP,
				  &grp, sizeof(grp))) {
		close(fd);
		return -1;
	}
	return fd;
}

static inline int get_adapter(int fd, int fam, const char *bdf, struct adapter *out,
		       struct reply *rep)
{
	struct adapters as = { 0 };
	struct req r;
	int ret;

	req_init(&r, fam, EMUHBA_CMD_ADAPTER_GET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, bdf);
	ret = talk(fd, &r, rep, adapter_cb, &as, BUF_SIZE, NULL);
	if (ret || rep->error || as.n != 1)
		return -1;
	*out = as.a[0];
	return 0;
}

/* ---- state images (image-get) ---- */

struct image {
	int got;
	__u32 id;
	int len;
	__u8 b[66000];
};

static inline void image_cb(const struct nlmsghdr *h, void *arg)
{
	const struct genlmsghdr *g = NLMSG_DATA(h);
	struct image *im = arg;
	const struct nlattr *a;
	int rem;

	if (g->cmd != EMUHBA_CMD_IMAGE_GET)
		return;
	im->got++;
	for_attrs(a, (char *)g + GENL_HDRLEN,
		  h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), rem) {
		const char *d = (const char *)a + NLA_HDRLEN;
		int l = a->nla_len - NLA_HDRLEN;

		if (a->nla_type == EMUHBA_A_ADAPTER_ID)
			im->id = *(const __u32 *)d;
		if (a->nla_type == EMUHBA_A_ADAPTER_IMAGE &&
		    l <= (int)sizeof(im->b)) {
			memcpy(im->b, d, l);
			im->len = l;
		}
	}
}

static inline int get_image(int fd, int fam, const char *bdf, struct image *im,
		     struct reply *rep)
{
	struct req r;

	memset(im, 0, sizeof(*im));
	req_init(&r, fam, EMUHBA_CMD_IMAGE_GET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, bdf);
	if (talk(fd, &r, rep, image_cb, im, BUF_SIZE, NULL) || rep->error)
		return -1;
	return im->got == 1 && im->len ? 0 : -1;
}

#endif /* EMUHBA_GENL_LIB_H */
