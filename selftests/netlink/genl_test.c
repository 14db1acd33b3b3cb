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
#include "genl_lib.h"

FIXTURE(genl)
{
	int fd;
	struct fam f;
	const char *vf;
	int nvfs;
	struct adapter self;	/* the EMUHBA_VF adapter */
};

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
	/*
	 * adapter-get do+dump count once; backend-set, policy-set, switch,
	 * image-get, compat-check.
	 */
	EXPECT_EQ(6, self->f.nops);
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

/*
 * POLICY_SET of idle-after and/or switch-timeout (0 leaves the timeout
 * out); returns the offset of the idle-after attribute, -1 when not sent.
 */
static int policy_set_idle(int fd, int fam, const char *vf, int idle,
			   __u32 timeout, struct reply *rep)
{
	struct nlattr *nest;
	struct req r;
	int off = -1;

	req_init(&r, fam, EMUHBA_CMD_POLICY_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, vf);
	nest = nest_start(&r, EMUHBA_A_ADAPTER_POLICY);
	if (timeout)
		put_u32(&r, EMUHBA_A_POLICY_SWITCH_TIMEOUT, timeout);
	if (idle >= 0)
		off = put_u32(&r, EMUHBA_A_POLICY_IDLE_AFTER, idle);
	nest_end(&r, nest);
	if (talk(fd, &r, rep, NULL, NULL, BUF_SIZE, NULL))
		return -2;
	return off;
}

/*
 * idle-after: reported in every adapter reply, 0 accepted, above 60000
 * refused by the attribute policy, at or above the switch timeout (set in
 * the same request or before) refused with the kernel's message; a
 * refusal changes nothing, a valid value round-trips.
 */
TEST_F(genl, policy_idle_after)
{
	static const char below[] = "idle-after must be below the switch timeout";
	struct adapter a = self->self, b;
	struct nlattr *nest;
	struct reply rep;
	struct req r;
	int off;

	ASSERT_TRUE(a.has_idle_after) TH_LOG("no idle-after in the policy nest");
	ASSERT_LE(0, policy_set_idle(self->fd, self->f.id, self->vf, 0, 1000,
				     &rep));
	EXPECT_EQ(0, rep.error) TH_LOG("%s", rep.msg);
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->vf, &b, &rep));
	EXPECT_TRUE(b.has_idle_after);
	EXPECT_EQ(0, b.idle_after);
	EXPECT_EQ(1000, b.timeout);

	/* The attribute policy: 0..60000. */
	off = policy_set_idle(self->fd, self->f.id, self->vf, 60001, 0, &rep);
	ASSERT_LE(0, off);
	EXPECT_REJECT(rep, ERANGE, off);
	EXPECT_EQ(NULL, strstr(rep.msg, "switch timeout")) TH_LOG("%s", rep.msg);

	/* Wrong type inside the nest. */
	req_init(&r, self->f.id, EMUHBA_CMD_POLICY_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	nest = nest_start(&r, EMUHBA_A_ADAPTER_POLICY);
	off = put_u8(&r, EMUHBA_A_POLICY_IDLE_AFTER, 1);
	nest_end(&r, nest);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_NE(0, rep.error);
	EXPECT_EQ(off, rep.offs);

	/* Equal to, then above, the current switch timeout. */
	ASSERT_LE(0, policy_set_idle(self->fd, self->f.id, self->vf, 1000, 0,
				     &rep));
	EXPECT_REJECT(rep, ERANGE, -1);
	EXPECT_STREQ(below, rep.msg);
	ASSERT_LE(0, policy_set_idle(self->fd, self->f.id, self->vf, 60000, 0,
				     &rep));
	EXPECT_REJECT(rep, ERANGE, -1);
	EXPECT_STREQ(below, rep.msg);
	/* With a timeout in the same request: the new one counts. */
	ASSERT_LE(0, policy_set_idle(self->fd, self->f.id, self->vf, 500, 500,
				     &rep));
	EXPECT_REJECT(rep, ERANGE, -1);
	EXPECT_STREQ(below, rep.msg);
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->vf, &b, &rep));
	EXPECT_EQ(0, b.idle_after);
	EXPECT_EQ(1000, b.timeout);

	/* Valid values round-trip; the other fields stay. */
	ASSERT_LE(0, policy_set_idle(self->fd, self->f.id, self->vf, 999, 0,
				     &rep));
	EXPECT_EQ(0, rep.error) TH_LOG("%s", rep.msg);
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->vf, &b, &rep));
	EXPECT_EQ(999, b.idle_after);
	EXPECT_EQ(1000, b.timeout);
	EXPECT_EQ(a.auto_switch, b.auto_switch);
	EXPECT_EQ(a.quiesce_required, b.quiesce_required);
	ASSERT_LE(0, policy_set_idle(self->fd, self->f.id, self->vf, 250, 300,
				     &rep));
	EXPECT_EQ(0, rep.error) TH_LOG("%s", rep.msg);
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->vf, &b, &rep));
	EXPECT_EQ(250, b.idle_after);
	EXPECT_EQ(300, b.timeout);

	/* A timeout at or below a non-zero idle-after is refused too. */
	ASSERT_EQ(-1, policy_set_idle(self->fd, self->f.id, self->vf, -1, 250,
				      &rep));
	EXPECT_REJECT(rep, ERANGE, -1);
	EXPECT_STREQ(below, rep.msg);
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->vf, &b, &rep));
	EXPECT_EQ(250, b.idle_after);
	EXPECT_EQ(300, b.timeout);

	/* Back to what the fixture found. */
	ASSERT_LE(0, policy_set_idle(self->fd, self->f.id, self->vf,
				     a.idle_after, a.timeout, &rep));
	EXPECT_EQ(0, rep.error) TH_LOG("%s", rep.msg);
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->vf, &b, &rep));
	EXPECT_EQ(a.idle_after, b.idle_after);
	EXPECT_EQ(a.timeout, b.timeout);
}

static const __u8 cmds[] = {
	EMUHBA_CMD_ADAPTER_GET, EMUHBA_CMD_BACKEND_SET,
	EMUHBA_CMD_POLICY_SET, EMUHBA_CMD_SWITCH,
	EMUHBA_CMD_IMAGE_GET, EMUHBA_CMD_COMPAT_CHECK,
};

/* A well-formed image: only the adapter lookup can fail. */
static const __u8 img_hdr_only[EMUHBA_IMAGE_MIN_LEN] = { 'E', 'M', 'U', 'H' };

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
		if (cmds[i] == EMUHBA_CMD_COMPAT_CHECK)
			put(&r, EMUHBA_A_ADAPTER_IMAGE, img_hdr_only,
			    sizeof(img_hdr_only));
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
		{ EMUHBA_CMD_COMPAT_CHECK, EMUHBA_A_ADAPTER_IMAGE },
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

/* ---- state image and compatibility verdict ---- */

struct vfield {
	char name[40];
	__u32 nsid;
	char src[64], dst[64];
	int ok;
};

struct verdict {
	int got;
	int compatible;		/* -1: absent */
	int n;
	struct vfield f[64];
};

static void verdict_cb(const struct nlmsghdr *h, void *arg)
{
	const struct genlmsghdr *g = NLMSG_DATA(h);
	struct verdict *v = arg;
	const struct nlattr *a, *b;
	int rem, rem2;

	if (g->cmd != EMUHBA_CMD_COMPAT_CHECK)
		return;
	v->got++;
	for_attrs(a, (char *)g + GENL_HDRLEN,
		  h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), rem) {
		const char *d = (const char *)a + NLA_HDRLEN;
		struct vfield *f;

		if (a->nla_type == EMUHBA_A_ADAPTER_COMPATIBLE)
			v->compatible = *(const __u8 *)d;
		if ((a->nla_type & NLA_TYPE_MASK) !=
		    EMUHBA_A_ADAPTER_COMPAT_FIELD || v->n == 64)
			continue;
		f = &v->f[v->n++];
		memset(f, 0, sizeof(*f));
		f->ok = -1;
		for_attrs(b, d, a->nla_len - NLA_HDRLEN, rem2) {
			const char *bd = (const char *)b + NLA_HDRLEN;

			switch (b->nla_type) {
			case EMUHBA_A_COMPAT_FIELD_NAME:
				snprintf(f->name, sizeof(f->name), "%s", bd);
				break;
			case EMUHBA_A_COMPAT_FIELD_NSID:
				f->nsid = *(const __u32 *)bd;
				break;
			case EMUHBA_A_COMPAT_FIELD_SRC:
				snprintf(f->src, sizeof(f->src), "%s", bd);
				break;
			case EMUHBA_A_COMPAT_FIELD_DST:
				snprintf(f->dst, sizeof(f->dst), "%s", bd);
				break;
			case EMUHBA_A_COMPAT_FIELD_OK:
				f->ok = *(const __u8 *)bd;
				break;
			}
		}
	}
}

static const struct vfield *vfind(const struct verdict *v, const char *name)
{
	for (int i = 0; i < v->n; i++)
		if (!strcmp(v->f[i].name, name))
			return &v->f[i];
	return NULL;
}

/* Returns the image attribute's offset in the request. */
static int compat_req(struct req *r, int fam, const char *bdf,
		      const void *img, int len)
{
	req_init(r, fam, EMUHBA_CMD_COMPAT_CHECK, 0);
	put_str(r, EMUHBA_A_ADAPTER_BDF, bdf);
	return put(r, EMUHBA_A_ADAPTER_IMAGE, img, len);
}

static __u32 le32(const __u8 *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (__u32)p[3] << 24;
}

static void put_le16(__u8 *p, __u16 v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

static void put_le32(__u8 *p, __u32 v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (v >> (8 * i)) & 0xff;
}

/* The image's own CRC32C (Castagnoli), over the header with it zeroed. */
static void reseal(__u8 *b, int len)
{
	__u32 crc = ~0U;

	put_le32(b + 20, 0);
	for (int i = 0; i < len; i++) {
		crc ^= b[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78U & (0U - (crc & 1)));
	}
	put_le32(b + 20, ~crc);
}

/* Offset of the body of section @type (state-image.rst), or -1. */
static int section(const __u8 *b, int len, __u16 type)
{
	int pos = 32, n = le32(b + 24);

	for (int i = 0; i < n && pos + 8 <= len; i++) {
		__u32 slen = le32(b + pos + 4);

		if ((b[pos] | b[pos + 1] << 8) == type)
			return pos + 8;
		pos += 8 + slen;
	}
	return -1;
}

/* Another adapter than the fixture's (the destination), from a dump. */
static int other_adapter(int fd, int fam, const char *vf, char *bdf)
{
	struct adapters as = { 0 };
	struct reply rep;
	struct req r;

	req_init(&r, fam, EMUHBA_CMD_ADAPTER_GET, NLM_F_DUMP);
	if (talk(fd, &r, &rep, adapter_cb, &as, BUF_SIZE, NULL) || rep.error)
		return -1;
	for (int i = 0; i < as.n; i++)
		if (strcmp(as.a[i].bdf, vf)) {
			strcpy(bdf, as.a[i].bdf);
			return 0;
		}
	return -1;
}

TEST_F(genl, identity_in_adapter_get)
{
	/* QEMU's VF: namespace 1 of the PF's subsystem. */
	EXPECT_EQ(1, self->self.nsid);
	EXPECT_NE(0, self->self.subnqn[0]);
	EXPECT_TRUE(self->self.nguid_len == 0 || self->self.nguid_len == 16);
	EXPECT_TRUE(self->self.eui64_len == 0 || self->self.eui64_len == 8);
	TH_LOG("nsid %u subnqn %s nguid %d eui64 %d bytes", self->self.nsid,
	       self->self.subnqn, self->self.nguid_len, self->self.eui64_len);
}

/*
 * Where a switch would take the guest's queue positions from, and the
 * doorbell writes switches caught: present for every bound adapter, the
 * source one of the two the uAPI names.
 */
TEST_F(genl, position_source_in_adapter_get)
{
	struct adapters as = { 0 };
	struct reply rep;
	struct req r;

	ASSERT_TRUE(self->self.has_position_source);
	EXPECT_TRUE(self->self.position_source ==
		    EMUHBA_ADAPTER_POSITION_SOURCE_SHADOW_DOORBELLS ||
		    self->self.position_source ==
		    EMUHBA_ADAPTER_POSITION_SOURCE_TRAPPED_DOORBELLS)
		TH_LOG("position source %u", self->self.position_source);
	EXPECT_TRUE(self->self.has_window_doorbells);

	req_init(&r, self->f.id, EMUHBA_CMD_ADAPTER_GET, NLM_F_DUMP);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, adapter_cb, &as, BUF_SIZE, NULL));
	EXPECT_EQ(0, rep.error);
	ASSERT_LE(1, as.n);
	for (int i = 0; i < as.n; i++) {
		EXPECT_TRUE(as.a[i].has_position_source &&
			    (as.a[i].position_source ==
			     EMUHBA_ADAPTER_POSITION_SOURCE_SHADOW_DOORBELLS ||
			     as.a[i].position_source ==
			     EMUHBA_ADAPTER_POSITION_SOURCE_TRAPPED_DOORBELLS))
			TH_LOG("%s: position source %u", as.a[i].bdf,
			       as.a[i].position_source);
		EXPECT_TRUE(as.a[i].has_window_doorbells)
			TH_LOG("%s: no window_doorbells counter", as.a[i].bdf);
	}
	TH_LOG("%s: position source %u, %llu window doorbells", self->vf,
	       self->self.position_source,
	       (unsigned long long)self->self.window_doorbells);
}

TEST_F(genl, image_get_is_a_stable_image)
{
	static struct image im, im2;
	struct reply rep;
	struct req r;

	ASSERT_EQ(0, get_image(self->fd, self->f.id, self->vf, &im, &rep)) {
		TH_LOG("image-get: %s (%s)", strerror(rep.error), rep.msg);
	}
	EXPECT_EQ(self->self.id, im.id);
	ASSERT_LE(EMUHBA_IMAGE_MIN_LEN, im.len);
	EXPECT_EQ(0, memcmp(im.b, "EMUH", 4));
	EXPECT_EQ(1, im.b[4] | im.b[5] << 8);		/* major */
	EXPECT_EQ(1, le32(im.b + 12) & 1);		/* stable */
	EXPECT_EQ((__u32)im.len, le32(im.b + 16));	/* length */
	EXPECT_LT(0, section(im.b, im.len, 6));		/* identity */
	EXPECT_GT(0, section(im.b, im.len, 2));		/* no queues */

	/* By id: the same bytes (identity does not change while bound). */
	memset(&im2, 0, sizeof(im2));
	req_init(&r, self->f.id, EMUHBA_CMD_IMAGE_GET, 0);
	put_u32(&r, EMUHBA_A_ADAPTER_ID, self->self.id);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, image_cb, &im2, BUF_SIZE, NULL));
	EXPECT_EQ(0, rep.error);
	ASSERT_EQ(im.len, im2.len);
	EXPECT_EQ(0, memcmp(im.b, im2.b, im.len));
}

TEST_F(genl, compat_two_vfs_of_one_pf)
{
	static struct image im;
	static struct verdict v;
	static const char *const want[] = {
		"limits.max_sqs", "limits.max_cqs", "limits.mqes",
		"limits.nr_vectors", "limits.mdts", "limits.sgls",
		"limits.oncs", "namespace.nsid", "namespace.nsze",
		"namespace.lba_format", "namespace.nguid", "namespace.eui64",
		"features.vwc", "features.power_state", "features.keep_alive",
		"features.dbbuf",
	};
	char dst[32];
	struct reply rep;
	struct req r;

	ASSERT_EQ(0, other_adapter(self->fd, self->f.id, self->vf, dst))
		TH_LOG("needs a second adapter");
	ASSERT_EQ(0, get_image(self->fd, self->f.id, self->vf, &im, &rep));
	compat_req(&r, self->f.id, dst, im.b, im.len);
	memset(&v, 0, sizeof(v));
	v.compatible = -1;
	ASSERT_EQ(0, talk(self->fd, &r, &rep, verdict_cb, &v, BUF_SIZE, NULL));
	ASSERT_EQ(0, rep.error) TH_LOG("%s", rep.msg);
	EXPECT_EQ(1, v.got);
	EXPECT_EQ(1, v.compatible);
	EXPECT_EQ(0, rep.msg[0]) TH_LOG("warning on success: %s", rep.msg);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct vfield *f = vfind(&v, want[i]);

		EXPECT_NE(NULL, f) TH_LOG("no field %s", want[i]);
		if (!f)
			continue;
		EXPECT_EQ(1, f->ok) TH_LOG("%s: %s vs %s", f->name, f->src,
					   f->dst);
		EXPECT_NE(0, f->src[0]);
		EXPECT_NE(0, f->dst[0]);
		if (!strncmp(want[i], "namespace.", 10))
			EXPECT_EQ(1, f->nsid);
	}
	/* VFs of one PF, same resources: same values on both sides. */
	EXPECT_STREQ(vfind(&v, "limits.max_sqs")->src,
		     vfind(&v, "limits.max_sqs")->dst);
}

TEST_F(genl, compat_refuses_more_queues_naming_the_field)
{
	static struct image im;
	static struct verdict v;
	const struct vfield *f;
	char dst[32];
	struct reply rep;
	struct req r;
	int id;

	ASSERT_EQ(0, other_adapter(self->fd, self->f.id, self->vf, dst));
	ASSERT_EQ(0, get_image(self->fd, self->f.id, self->vf, &im, &rep));
	id = section(im.b, im.len, 6);
	ASSERT_LT(0, id);
	/* identity: cap u64, vs u32, nr_vectors u16, max_sqs u16. */
	put_le16(im.b + id + 14, 100);
	reseal(im.b, im.len);
	compat_req(&r, self->f.id, dst, im.b, im.len);
	memset(&v, 0, sizeof(v));
	v.compatible = -1;
	ASSERT_EQ(0, talk(self->fd, &r, &rep, verdict_cb, &v, BUF_SIZE, NULL));
	/* A verdict, not a failed request; the ACK names the field. */
	ASSERT_EQ(0, rep.error) TH_LOG("%s", rep.msg);
	EXPECT_EQ(0, v.compatible);
	EXPECT_NE(NULL, strstr(rep.msg, "limits.max_sqs")) TH_LOG("%s", rep.msg);
	f = vfind(&v, "limits.max_sqs");
	ASSERT_NE(NULL, f);
	EXPECT_EQ(0, f->ok);
	EXPECT_STREQ("100", f->src);
	/* Only that field. */
	for (int i = 0; i < v.n; i++) {
		if (strcmp(v.f[i].name, "limits.max_sqs")) {
			EXPECT_EQ(1, v.f[i].ok) {
				TH_LOG("%s", v.f[i].name);
			}
		}
	}
	TH_LOG("refused: %s (src %s dst %s)", rep.msg, f->src, f->dst);
}

TEST_F(genl, compat_image_bounds_type_and_damage)
{
	static struct image im;
	static __u8 big[EMUHBA_IMAGE_MAX_LEN + 1];
	struct reply rep;
	struct req r;
	int off;

	ASSERT_EQ(0, get_image(self->fd, self->f.id, self->vf, &im, &rep));

	/* Shorter than a header, longer than the bound: the policy. */
	off = compat_req(&r, self->f.id, self->vf, im.b,
			 EMUHBA_IMAGE_MIN_LEN - 1);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, ERANGE, off);
	off = compat_req(&r, self->f.id, self->vf, big, sizeof(big));
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, ERANGE, off);

	/* Wrong type: a nest where bytes belong. */
	req_init(&r, self->f.id, EMUHBA_CMD_COMPAT_CHECK, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->vf);
	off = put(&r, EMUHBA_A_ADAPTER_IMAGE | NLA_F_NESTED, im.b, im.len);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, EINVAL, off);

	/* Header-sized garbage: the decoder names the field. */
	memset(big, 0xa5, EMUHBA_IMAGE_MIN_LEN);
	off = compat_req(&r, self->f.id, self->vf, big, EMUHBA_IMAGE_MIN_LEN);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, EINVAL, off);
	EXPECT_NE(NULL, strstr(rep.msg, "header.magic")) TH_LOG("%s", rep.msg);

	/* Truncated: the header's length no longer matches. */
	off = compat_req(&r, self->f.id, self->vf, im.b, im.len - 8);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, EINVAL, off);
	EXPECT_NE(NULL, strstr(rep.msg, "header.length")) TH_LOG("%s", rep.msg);

	/* One flipped bit: the CRC. */
	im.b[im.len - 1] ^= 1;
	off = compat_req(&r, self->f.id, self->vf, im.b, im.len);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, EINVAL, off);
	EXPECT_NE(NULL, strstr(rep.msg, "header.crc32c")) TH_LOG("%s", rep.msg);
	im.b[im.len - 1] ^= 1;

	/* id of the wrong size. */
	req_init(&r, self->f.id, EMUHBA_CMD_COMPAT_CHECK, 0);
	off = put_u8(&r, EMUHBA_A_ADAPTER_ID, 1);
	put(&r, EMUHBA_A_ADAPTER_IMAGE, im.b, im.len);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_NE(0, rep.error);
	EXPECT_EQ(off, rep.offs);
}

TEST_F(genl, image_and_compat_unknown_adapter)
{
	static struct image im;
	struct reply rep;
	struct req r;
	int off;

	ASSERT_EQ(0, get_image(self->fd, self->f.id, self->vf, &im, &rep));
	req_init(&r, self->f.id, EMUHBA_CMD_IMAGE_GET, 0);
	off = put_str(&r, EMUHBA_A_ADAPTER_BDF, "0000:ff:1f.7");
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, ENODEV, off);

	req_init(&r, self->f.id, EMUHBA_CMD_COMPAT_CHECK, 0);
	off = put_str(&r, EMUHBA_A_ADAPTER_BDF, "0000:ff:1f.7");
	put(&r, EMUHBA_A_ADAPTER_IMAGE, im.b, im.len);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, ENODEV, off);

	req_init(&r, self->f.id, EMUHBA_CMD_COMPAT_CHECK, 0);
	off = put_u32(&r, EMUHBA_A_ADAPTER_ID, 0x7ffffff0);
	put(&r, EMUHBA_A_ADAPTER_IMAGE, im.b, im.len);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	EXPECT_REJECT(rep, ENODEV, off);
}

TEST_HARNESS_MAIN
