// SPDX-License-Identifier: GPL-2.0-only
/*
 * The control plane around a real switch: a mini-VMM (selftests/kmod)
 * holds the VF through VFIO and runs I/O, the switch is requested over
 * generic netlink, and a listener on the "events" group checks what the
 * family says: for a switch that happens, mode-change events that lead
 * from direct to emulated in order and a reply carrying the breakdown; for
 * a refused one, exactly one error event with the extack's reason and no
 * mode change.
 *
 * Usage: switch_events_test  (EMUHBA_VF=<bdf> bound to emuhba,
 *                             EMUHBA_BACKEND=<block device of the namespace>)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "genl_lib.h"
#include "minivmm.h"

FIXTURE(sw) {
	struct mvmm vm;
	int fd, lfd;
	struct fam f;
	const char *bdf;
	struct adapter before;
};

FIXTURE_VARIANT(sw) {
	bool dbbuf;
};

/* Queue positions come from the shadow doorbells: the switch happens. */
FIXTURE_VARIANT_ADD(sw, shadow_doorbells) {
	.dbbuf = true,
};

/* No way to establish the positions: the switch is refused. */
FIXTURE_VARIANT_ADD(sw, mmio_doorbells) {
	.dbbuf = false,
};

FIXTURE_SETUP(sw)
{
	struct reply rep;
	struct req r;
	int ret;

	self->bdf = getenv("EMUHBA_VF");
	if (!self->bdf || !getenv("EMUHBA_BACKEND"))
		SKIP(return, "EMUHBA_VF/EMUHBA_BACKEND not set (run from vm-suite)");
	self->fd = nl_open();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, resolve(self->fd, &self->f));
	req_init(&r, self->f.id, EMUHBA_CMD_BACKEND_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, self->bdf);
	put_str(&r, EMUHBA_A_ADAPTER_BACKEND, getenv("EMUHBA_BACKEND"));
	ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL));
	ASSERT_EQ(0, rep.error) TH_LOG("backend: %s", rep.msg);

	ret = mvmm_open(&self->vm, self->bdf, 64 << 20);
	ASSERT_EQ(0, ret) TH_LOG("open: %s", strerror(-ret));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 2, variant->dbbuf));
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 200, 8));
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->bdf,
				 &self->before, &rep));
	ASSERT_EQ(EMUHBA_ADAPTER_MODE_DIRECT, self->before.mode);
	self->lfd = listener(self->f.grp);
	ASSERT_LE(0, self->lfd);
}

FIXTURE_TEARDOWN(sw)
{
	if (self->bdf && getenv("EMUHBA_BACKEND")) {
		mvmm_close(&self->vm);
		close(self->lfd);
		close(self->fd);
	}
}

static int switch_req(struct __test_metadata *_metadata, int fd, int fam,
		      const char *bdf, __u32 mode, struct adapters *as,
		      struct reply *rep)
{
	struct req r;

	req_init(&r, fam, EMUHBA_CMD_SWITCH, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, bdf);
	put_u32(&r, EMUHBA_A_ADAPTER_MODE, mode);
	EXPECT_EQ(0, talk(fd, &r, rep, adapter_cb, as, BUF_SIZE, NULL));
	return rep->error;
}

TEST_F(sw, events_in_order)
{
	struct adapters as = { 0 };
	struct adapter after;
	struct reply rep, rep2;
	struct event ev;
	__u32 at = EMUHBA_ADAPTER_MODE_DIRECT;
	int nmode = 0, nerr = 0;
	char errmsg[256] = "";

	switch_req(_metadata, self->fd, self->f.id, self->bdf,
		   EMUHBA_ADAPTER_MODE_EMULATED, &as, &rep);

	/* Everything the family said about this adapter, in order. */
	while (!read_event(self->lfd, &ev, 500)) {
		if (strcmp(ev.bdf, self->bdf))
			continue;
		if (ev.cmd == EMUHBA_CMD_MODE_CHANGE_NTF) {
			EXPECT_EQ(at, ev.old_mode)
				TH_LOG("mode event %u->%u does not follow %u",
				       ev.old_mode, ev.mode, at);
			at = ev.mode;
			nmode++;
		} else if (ev.cmd == EMUHBA_CMD_ERROR_NTF) {
			nerr++;
			snprintf(errmsg, sizeof(errmsg), "%s", ev.msg);
			EXPECT_EQ(-rep.error, ev.error);
		}
	}
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->bdf, &after,
				 &rep2));

	if (variant->dbbuf) {
		ASSERT_EQ(0, rep.error) TH_LOG("switch failed: %s", rep.msg);
		ASSERT_EQ(1, as.n);
		EXPECT_EQ(EMUHBA_CMD_SWITCH, as.cmd);
		EXPECT_EQ(EMUHBA_ADAPTER_MODE_EMULATED, as.a[0].mode);
		EXPECT_TRUE(as.a[0].has_last_switch);
		EXPECT_EQ(0, as.a[0].sw_result);
		EXPECT_EQ(EMUHBA_ADAPTER_MODE_DIRECT, as.a[0].sw_from);
		EXPECT_EQ(EMUHBA_ADAPTER_MODE_EMULATED, as.a[0].sw_to);
		EXPECT_LT(0, as.a[0].sw_total_ns);
		EXPECT_LE(1, nmode);
		EXPECT_EQ(EMUHBA_ADAPTER_MODE_EMULATED, at);
		EXPECT_EQ(0, nerr) TH_LOG("error event: %s", errmsg);
		EXPECT_EQ(EMUHBA_ADAPTER_MODE_EMULATED, after.mode);
		EXPECT_EQ(self->before.switches + 1, after.switches);
		TH_LOG("switched in %llu ns, %d mode event(s)",
		       (unsigned long long)as.a[0].sw_total_ns, nmode);
	} else {
		EXPECT_NE(0, rep.error);
		EXPECT_NE(0, rep.msg[0]);
		EXPECT_EQ(0, as.n);
		EXPECT_EQ(0, nmode);
		EXPECT_EQ(1, nerr);
		EXPECT_STREQ(rep.msg, errmsg);
		EXPECT_EQ(EMUHBA_ADAPTER_MODE_DIRECT, after.mode);
		TH_LOG("refused: %s (%s)", strerror(rep.error), rep.msg);
	}
	/* The guest goes on either way. */
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 200, 8));
	EXPECT_EQ(0, self->vm.errors);
	EXPECT_EQ(0, self->vm.mismatches);
}

TEST_HARNESS_MAIN
