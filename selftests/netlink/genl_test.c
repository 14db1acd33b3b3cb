// SPDX-License-Identifier: GPL-2.0-only
/*
 * The emuhba generic netlink family seen from a raw netlink socket: every
 * operation's happy path, strict validation of every attribute (wrong
 * type, out of range, missing, unknown, oversized) with the extended ACK
 * pointing at the offending attribute, events, and multi-part dumps.
 *
 * Needs the module loaded and VFs bound to emuhba: EMUHBA_VF (one of them)
 * and EMUHBA_NVFS (how many are bound). Runs in the test VM.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/emuhba.h>

#include "kselftest_harness.h"

#define BUF_SIZE 32768

struct req {
	struct nlmsghdr n;
	struct genlmsghdr g;
	char attrs[2048];
};

struct reply {
	int error;		/* positive errno, 0 for ACK */
	char msg[256];
	int offs;		/* -1 when absent */
	int miss;		/* -1 when absent */
};

static int nl_open(void)
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

static void req_init(struct req *r, __u16 type, __u8 cmd, __u16 flags)
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
static int put(struct req *r, __u16 type, const void *data, int len)
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

static int put_u32(struct req *r, __u16 type, __u32 v)
{
	return put(r, type, &v, sizeof(v));
}

static int put_u8(struct req *r, __u16 type, __u8 v)
{
	return put(r, type, &v, sizeof(v));
}

static int put_str(struct req *r, __u16 type, const char *s)
{
	return put(r, type, s, strlen(s) + 1);
}

static struct nlattr *nest_start(struct req *r, __u16 type)
{
	struct nlattr *a = (void *)((char *)r + NLMSG_ALIGN(r->n.nlmsg_len));

	put(r, type | NLA_F_NESTED, NULL, 0);
	return a;
}

static void nest_end(struct req *r, struct nlattr *a)
{
	a->nla_len = (char *)r + r->n.nlmsg_len - (char *)a;
}

static void parse_ack(const struct nlmsghdr *h, struct reply *rep)
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
static int talk(int fd, struct req *r, struct reply *rep, msg_fn fn,
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

static const struct nlattr *attr_next(const struct nlattr *a, int *rem)
{
	*rem -= NLA_ALIGN(a->nla_len);
	return (const void *)((const char *)a + NLA_ALIGN(a->nla_len));
}

#define for_attrs(a, start, len, rem) \
	for (a = (const void *)(start), rem = (len); \
	     rem >= (int)NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && \
	     a->nla_len <= rem; a = attr_next(a, &rem))

static void fam_cb(const struct nlmsghdr *h, void *arg)
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

static int resolve(int fd, struct fam *f)
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
	int has_policy;
	__u8 auto_switch, quiesce_required;
	__u32 timeout;
	int has_counters;
};

struct adapters {
	int n;
	int multi;		/* messages that carried NLM_F_MULTI */
	__u8 cmd;
	struct adapter a[64];
};

static void adapter_cb(const struct nlmsghdr *h, void *arg)
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
		case EMUHBA_A_ADAPTER_COUNTERS:
			x->has_counters = 1;
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
			}
			break;
		}
	}
}

FIXTURE(genl)
{
	int fd;
	struct fam f;
	const char *vf;
	int nvfs;
	struct adapter self;	/* the EMUHBA_VF adapter */
};

static int get_adapter(int fd, int fam, const char *bdf, struct adapter *out,
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

FIXTURE_SETUP(genl)
{
	struct reply rep;

	self->vf = getenv("EMUHBA_VF");
	self->nvfs = getenv("EMUHBA_NVFS") ? atoi(getenv("EMUHBA_NVFS")) : 1;
	if (!self->vf)
		SKIP(return, "EMUHBA_VF not set (run from selftests/netlink/vm-suite)");
	self->fd = nl_open();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, resolve(self->fd, &self->f)) {
		TH_LOG("family %s not registered", EMUHBA_FAMILY_NAME);
	}
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->vf, &self->self,
				 &rep)) {
		TH_LOG("%s: error %d %s", self->vf, rep.error, rep.msg);
	}
}

FIXTURE_TEARDOWN(genl)
{
	if (self->fd > 0)
		close(self->fd);
}

/* ---- family shape ---- */

TEST_F(genl, family_version_ops_admin_perm_group)
{
	EXPECT_EQ(EMUHBA_FAMILY_VERSION, self->f.version);
	/* adapter-get do+dump count once; backend-set, policy-set, switch. */
	EXPECT_EQ(4, self->f.nops);
	EXPECT_EQ(self->f.nops, self->f.nops_admin);
	EXPECT_LE(0, self->f.grp);
}

/* ---- happy paths ---- */

TEST_F(genl, get_by_bdf_by_id_and_both)
{
	struct adapters as = { 0 };
	struct reply rep;
	struct req r;

	EXPECT_STREQ(self->vf, self->self.bdf);
	EXPECT_TRUE(self->self.has_policy);
	EXPECT_TRUE(self->self.has_counters);

	req_init(&r, self->f.id, EMUHBA_CMD_ADAPTER_GET, 0);
	put_u32(&r, EMUHBA_A_ADAPTER_ID, self->self.id);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, adapter_cb, &as, BUF_SIZE, NULL));
	EXPECT_EQ(0, rep.error);
	ASSERT_EQ(1, as.n);
	EXPECT_STREQ(self->vf, as.a[0].bdf);
	EXPECT_EQ(EMUHBA_CMD_ADAPTER_GET, as.cmd);

	as.n = 0;
	req_init(&r, self->f.id, EMUHBA_CMD_ADAPTER_GET, 0);
	put_u32(&r, EMUHBA_A_ADAPTER_ID, self->self.id);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, adapter_cb, &as, BUF_SIZE, NULL));
	EXPECT_EQ(0, rep.error);
	EXPECT_EQ(1, as.n);
}

TEST_F(genl, dump_all_adapters)
{
	struct adapters as = { 0 };
	struct reply rep;
	struct req r;

	req_init(&r, self->f.id, EMUHBA_CMD_ADAPTER_GET, NLM_F_DUMP);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, adapter_cb, &as, BUF_SIZE, NULL));
	EXPECT_EQ(0, rep.error);
	EXPECT_EQ(self->nvfs, as.n);
	EXPECT_EQ(as.n, as.multi);
	for (int i = 1; i < as.n; i++)
		EXPECT_LT(as.a[i - 1].id, as.a[i].id);
}

/*
 * The kernel never builds a dump skb smaller than NLMSG_GOODSIZE, so with
 * the few adapters the test VM has, all fit in one part; reading with a
 * small SO_RCVBUF must still return every adapter exactly once and the
 * NLMSG_DONE, and every part must be marked NLM_F_MULTI.
 */
TEST_F(genl, dump_small_rcvbuf)
{
	struct adapters as = { 0 };
	int fd, small = 1, nrecv = 0;
	struct reply rep;
	struct req r;

	fd = nl_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small,
				sizeof(small)));
	req_init(&r, self->f.id, EMUHBA_CMD_ADAPTER_GET, NLM_F_DUMP);
	ASSERT_EQ(0, talk(fd, &r, &rep, adapter_cb, &as, 8192, &nrecv));
	EXPECT_EQ(0, rep.error);
	EXPECT_EQ(self->nvfs, as.n);
	EXPECT_EQ(as.n, as.multi);
	for (int i = 1; i < as.n; i++)
		EXPECT_LT(as.a[i - 1].id, as.a[i].id);
	TH_LOG("%d adapters in %d recv() calls", as.n, nrecv);
	close(fd);
}

TEST_F(genl, backend_set_and_clear)
{
	struct adapter a;
	struct reply rep;
	struct req r;

	req_init(&r, self->f.id, EMUHBA_CMD_BACKEND_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	put_str(&r, EMUHBA_A_ADAPTER_BACKEND, "/dev/emuhba-test-backend");
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_EQ(0, rep.error) TH_LOG("%s", rep.msg);
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->vf, &a, &rep));
	EXPECT_STREQ("/dev/emuhba-test-backend", a.backend);

	req_init(&r, self->f.id, EMUHBA_CMD_BACKEND_SET, 0);
	put_u32(&r, EMUHBA_A_ADAPTER_ID, self->self.id);
	put_str(&r, EMUHBA_A_ADAPTER_BACKEND, "auto");
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_EQ(0, rep.error) TH_LOG("%s", rep.msg);
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->vf, &a, &rep));
	EXPECT_STREQ("auto", a.backend);
}

TEST_F(genl, policy_set_partial_keeps_the_rest)
{
	struct adapter a, b;
	struct nlattr *nest;
	struct reply rep;
	struct req r;

	a = self->self;
	req_init(&r, self->f.id, EMUHBA_CMD_POLICY_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	nest = nest_start(&r, EMUHBA_A_ADAPTER_POLICY);
	put_u32(&r, EMUHBA_A_POLICY_SWITCH_TIMEOUT, 1234);
	nest_end(&r, nest);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_EQ(0, rep.error) TH_LOG("%s", rep.msg);
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->vf, &b, &rep));
	EXPECT_EQ(1234, b.timeout);
	EXPECT_EQ(a.auto_switch, b.auto_switch);
	EXPECT_EQ(a.quiesce_required, b.quiesce_required);

	req_init(&r, self->f.id, EMUHBA_CMD_POLICY_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	nest = nest_start(&r, EMUHBA_A_ADAPTER_POLICY);
	put_u8(&r, EMUHBA_A_POLICY_AUTO_SWITCH, !a.auto_switch);
	put_u8(&r, EMUHBA_A_POLICY_QUIESCE_REQUIRED, !a.quiesce_required);
	put_u32(&r, EMUHBA_A_POLICY_SWITCH_TIMEOUT, a.timeout);
	nest_end(&r, nest);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_EQ(0, rep.error) TH_LOG("%s", rep.msg);
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->vf, &b, &rep));
	EXPECT_EQ(!a.auto_switch, b.auto_switch);
	EXPECT_EQ(!a.quiesce_required, b.quiesce_required);
	EXPECT_EQ(a.timeout, b.timeout);
}

/* ---- validation: every failure carries a message and, where one
 * attribute is to blame, its offset (or the missing type) ---- */

#define EXPECT_REJECT(rep, err, off) do {				\
	EXPECT_EQ(err, (rep).error);					\
	EXPECT_NE(0, (rep).msg[0]) TH_LOG("no extack message");	\
	if ((off) >= 0)							\
		EXPECT_EQ(off, (rep).offs) TH_LOG("msg: %s", (rep).msg); \
} while (0)

static const __u8 cmds[] = {
	EMUHBA_CMD_ADAPTER_GET, EMUHBA_CMD_BACKEND_SET,
	EMUHBA_CMD_POLICY_SET, EMUHBA_CMD_SWITCH,
};

TEST_F(genl, unknown_attribute_rejected_by_every_op)
{
	struct reply rep;
	struct req r;
	int off;

	for (size_t i = 0; i < sizeof(cmds); i++) {
		req_init(&r, self->f.id, cmds[i], 0);
		put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
		off = put_u32(&r, EMUHBA_A_ADAPTER_MAX + 5, 1);
		ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE,
				  NULL));
		EXPECT_REJECT(rep, EINVAL, off);
		/* Known to the family, but not part of this op's request. */
		req_init(&r, self->f.id, cmds[i], 0);
		put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
		off = put_u32(&r, EMUHBA_A_ADAPTER_ERROR, 1);
		ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE,
				  NULL));
		EXPECT_REJECT(rep, EINVAL, off);
	}
}

TEST_F(genl, adapter_missing)
{
	struct reply rep;
	struct req r;

	for (size_t i = 0; i < sizeof(cmds); i++) {
		req_init(&r, self->f.id, cmds[i], 0);
		if (cmds[i] == EMUHBA_CMD_BACKEND_SET)
			put_str(&r, EMUHBA_A_ADAPTER_BACKEND, "auto");
		if (cmds[i] == EMUHBA_CMD_SWITCH)
			put_u32(&r, EMUHBA_A_ADAPTER_MODE,
				EMUHBA_ADAPTER_MODE_EMULATED);
		if (cmds[i] == EMUHBA_CMD_POLICY_SET) {
			struct nlattr *n = nest_start(&r,
						      EMUHBA_A_ADAPTER_POLICY);

			put_u8(&r, EMUHBA_A_POLICY_AUTO_SWITCH, 1);
			nest_end(&r, n);
		}
		ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE,
				  NULL));
		EXPECT_REJECT(rep, EINVAL, -1);
		EXPECT_EQ(EMUHBA_A_ADAPTER_ID, rep.miss);
	}
}

TEST_F(genl, required_attribute_missing)
{
	static const struct { __u8 cmd; int attr; } t[] = {
		{ EMUHBA_CMD_BACKEND_SET, EMUHBA_A_ADAPTER_BACKEND },
		{ EMUHBA_CMD_POLICY_SET, EMUHBA_A_ADAPTER_POLICY },
		{ EMUHBA_CMD_SWITCH, EMUHBA_A_ADAPTER_MODE },
	};
	struct reply rep;
	struct req r;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		req_init(&r, self->f.id, t[i].cmd, 0);
		put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
		ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE,
				  NULL));
		EXPECT_REJECT(rep, EINVAL, -1);
		EXPECT_EQ(t[i].attr, rep.miss);
	}
}

TEST_F(genl, id_wrong_type_and_unknown)
{
	struct reply rep;
	struct req r;
	int off;

	req_init(&r, self->f.id, EMUHBA_CMD_ADAPTER_GET, 0);
	off = put_u8(&r, EMUHBA_A_ADAPTER_ID, 1);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_NE(0, rep.error);
	EXPECT_EQ(off, rep.offs);

	req_init(&r, self->f.id, EMUHBA_CMD_ADAPTER_GET, 0);
	off = put_u32(&r, EMUHBA_A_ADAPTER_ID, 0x7ffffff0);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, ENODEV, off);

	/* id and bdf naming different adapters. */
	req_init(&r, self->f.id, EMUHBA_CMD_ADAPTER_GET, 0);
	put_u32(&r, EMUHBA_A_ADAPTER_ID, self->self.id);
	off = put_str(&r, EMUHBA_A_ADAPTER_BDF, "0000:ff:1f.7");
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, EINVAL, off);
}

TEST_F(genl, bdf_wrong_type_oversized_unknown)
{
	char big[EMUHBA_BDF_MAX_LEN + 8];
	struct reply rep;
	struct req r;
	int off;

	/* Not NUL-terminated: NLA_NUL_STRING refuses it. */
	req_init(&r, self->f.id, EMUHBA_CMD_ADAPTER_GET, 0);
	off = put(&r, EMUHBA_A_ADAPTER_BDF, self->vf, strlen(self->vf));
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_NE(0, rep.error);
	EXPECT_EQ(off, rep.offs);

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	req_init(&r, self->f.id, EMUHBA_CMD_ADAPTER_GET, 0);
	off = put_str(&r, EMUHBA_A_ADAPTER_BDF, big);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_NE(0, rep.error);
	EXPECT_EQ(off, rep.offs);

	req_init(&r, self->f.id, EMUHBA_CMD_ADAPTER_GET, 0);
	off = put_str(&r, EMUHBA_A_ADAPTER_BDF, "0000:ff:1f.7");
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, ENODEV, off);
}

TEST_F(genl, backend_wrong_type_oversized_relative)
{
	char big[EMUHBA_BACKEND_MAX_LEN + 16];
	struct reply rep;
	struct req r;
	int off;

	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = 0;
	req_init(&r, self->f.id, EMUHBA_CMD_BACKEND_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	off = put_str(&r, EMUHBA_A_ADAPTER_BACKEND, big);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_NE(0, rep.error);
	EXPECT_EQ(off, rep.offs);

	req_init(&r, self->f.id, EMUHBA_CMD_BACKEND_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	off = put_u32(&r, EMUHBA_A_ADAPTER_BACKEND, 0x41414141);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_NE(0, rep.error);
	EXPECT_EQ(off, rep.offs);

	req_init(&r, self->f.id, EMUHBA_CMD_BACKEND_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	off = put_str(&r, EMUHBA_A_ADAPTER_BACKEND, "relative/path");
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, EINVAL, off);
}

TEST_F(genl, mode_range_and_type)
{
	static const __u32 bad[] = { 0, EMUHBA_ADAPTER_MODE_SWITCHING, 99 };
	struct reply rep;
	struct req r;
	int off;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		req_init(&r, self->f.id, EMUHBA_CMD_SWITCH, 0);
		put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
		off = put_u32(&r, EMUHBA_A_ADAPTER_MODE, bad[i]);
		ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE,
				  NULL));
		EXPECT_REJECT(rep, ERANGE, off);
	}
	req_init(&r, self->f.id, EMUHBA_CMD_SWITCH, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	off = put_u8(&r, EMUHBA_A_ADAPTER_MODE, 1);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_NE(0, rep.error);
	EXPECT_EQ(off, rep.offs);
}

TEST_F(genl, policy_nest_validation)
{
	struct nlattr *nest;
	struct reply rep;
	struct req r;
	int off;

	/* Below the minimum timeout, above the maximum. */
	for (int i = 0; i < 2; i++) {
		req_init(&r, self->f.id, EMUHBA_CMD_POLICY_SET, 0);
		put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
		nest = nest_start(&r, EMUHBA_A_ADAPTER_POLICY);
		off = put_u32(&r, EMUHBA_A_POLICY_SWITCH_TIMEOUT,
			      i ? EMUHBA_SWITCH_TIMEOUT_MAX + 1 :
				  EMUHBA_SWITCH_TIMEOUT_MIN - 1);
		nest_end(&r, nest);
		ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE,
				  NULL));
		EXPECT_REJECT(rep, ERANGE, off);
	}

	/* A flag outside 0..1. */
	req_init(&r, self->f.id, EMUHBA_CMD_POLICY_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	nest = nest_start(&r, EMUHBA_A_ADAPTER_POLICY);
	off = put_u8(&r, EMUHBA_A_POLICY_QUIESCE_REQUIRED, 2);
	nest_end(&r, nest);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, ERANGE, off);

	/* Wrong type inside the nest. */
	req_init(&r, self->f.id, EMUHBA_CMD_POLICY_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	nest = nest_start(&r, EMUHBA_A_ADAPTER_POLICY);
	off = put_u32(&r, EMUHBA_A_POLICY_AUTO_SWITCH, 1);
	nest_end(&r, nest);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_NE(0, rep.error);
	EXPECT_EQ(off, rep.offs);

	/* Unknown attribute inside the nest. */
	req_init(&r, self->f.id, EMUHBA_CMD_POLICY_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	nest = nest_start(&r, EMUHBA_A_ADAPTER_POLICY);
	off = put_u32(&r, EMUHBA_A_POLICY_MAX + 3, 1);
	nest_end(&r, nest);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, EINVAL, off);

	/* Not a nest at all. */
	req_init(&r, self->f.id, EMUHBA_CMD_POLICY_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	off = put_u32(&r, EMUHBA_A_ADAPTER_POLICY, 1);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_NE(0, rep.error);
	EXPECT_EQ(off, rep.offs);

	/* An empty nest changes nothing: refused, not silently accepted. */
	req_init(&r, self->f.id, EMUHBA_CMD_POLICY_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	nest = nest_start(&r, EMUHBA_A_ADAPTER_POLICY);
	off = (char *)nest - (char *)&r;
	nest_end(&r, nest);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, EINVAL, off);
}

TEST_F(genl, unknown_and_notification_commands)
{
	static const __u8 bad[] = {
		0, EMUHBA_CMD_ADAPTER_ADD_NTF, EMUHBA_CMD_ERROR_NTF,
		EMUHBA_CMD_MAX + 1, 200,
	};
	struct reply rep;
	struct req r;

	for (size_t i = 0; i < sizeof(bad); i++) {
		req_init(&r, self->f.id, bad[i], 0);
		put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
		ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE,
				  NULL));
		EXPECT_EQ(EOPNOTSUPP, rep.error) TH_LOG("cmd %u", bad[i]);
	}
}

/* ---- events ---- */

struct event {
	__u8 cmd;
	__u32 id;
	char bdf[32];
	__s32 error;
	char msg[256];
};

static int read_event(int fd, struct event *ev, int timeout_ms)
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
		case EMUHBA_A_ADAPTER_ERROR_MSG:
			snprintf(ev->msg, sizeof(ev->msg), "%s", d);
			break;
		}
	}
	return 0;
}

static int listener(int grp)
{
	int fd = nl_open();

	if (fd >= 0 && setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP,
				  &grp, sizeof(grp))) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A refused switch (no VFIO user holds the VF here) answers with an
 * extack and sends exactly one error event carrying the same reason.
 */
TEST_F(genl, failed_switch_error_event)
{
	struct event ev;
	struct reply rep;
	struct req r;
	int lfd;

	lfd = listener(self->f.grp);
	ASSERT_LE(0, lfd);
	req_init(&r, self->f.id, EMUHBA_CMD_SWITCH, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	put_u32(&r, EMUHBA_A_ADAPTER_MODE, EMUHBA_ADAPTER_MODE_EMULATED);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	ASSERT_NE(0, rep.error) TH_LOG("switch without a VFIO user succeeded");
	EXPECT_NE(0, rep.msg[0]);
	TH_LOG("switch refused: %s (%s)", strerror(rep.error), rep.msg);

	ASSERT_EQ(0, read_event(lfd, &ev, 2000));
	EXPECT_EQ(EMUHBA_CMD_ERROR_NTF, ev.cmd);
	EXPECT_EQ(self->self.id, ev.id);
	EXPECT_STREQ(self->vf, ev.bdf);
	EXPECT_EQ(-rep.error, ev.error);
	EXPECT_STREQ(rep.msg, ev.msg);
	/* Exactly one. */
	EXPECT_EQ(-ETIMEDOUT, read_event(lfd, &ev, 300));
	close(lfd);
}

/* Unbind then rebind through sysfs: adapter-del, then adapter-add. */
TEST_F(genl, unbind_bind_events_in_order)
{
	char path[256];
	struct event ev;
	FILE *f;
	int lfd;

	lfd = listener(self->f.grp);
	ASSERT_LE(0, lfd);
	f = fopen("/sys/bus/pci/drivers/emuhba/unbind", "w");
	ASSERT_NE(NULL, f);
	fputs(self->vf, f);
	ASSERT_EQ(0, fclose(f));
	f = fopen("/sys/bus/pci/drivers_probe", "w");
	ASSERT_NE(NULL, f);
	fputs(self->vf, f);
	ASSERT_EQ(0, fclose(f));
	snprintf(path, sizeof(path), "/sys/bus/pci/drivers/emuhba/%s",
		 self->vf);
	ASSERT_EQ(0, access(path, F_OK)) TH_LOG("%s did not rebind", self->vf);

	ASSERT_EQ(0, read_event(lfd, &ev, 2000));
	EXPECT_EQ(EMUHBA_CMD_ADAPTER_DEL_NTF, ev.cmd);
	EXPECT_STREQ(self->vf, ev.bdf);
	EXPECT_EQ(self->self.id, ev.id);
	ASSERT_EQ(0, read_event(lfd, &ev, 2000));
	EXPECT_EQ(EMUHBA_CMD_ADAPTER_ADD_NTF, ev.cmd);
	EXPECT_STREQ(self->vf, ev.bdf);
	EXPECT_EQ(-ETIMEDOUT, read_event(lfd, &ev, 300));
	close(lfd);
}

TEST_HARNESS_MAIN
