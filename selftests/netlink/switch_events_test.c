// SPDX-License-Identifier: GPL-2.0-only
/*
 * The control plane around a real switch: a mini-VMM (selftests/kmod)
 * holds the VF through VFIO and runs I/O, the switch is requested over
 * generic netlink, and a listener on the "events" group checks what the
 * family says: mode-change events that lead from direct to emulated in
 * order, a reply carrying the breakdown and no error event, with the
 * guest's positions from shadow doorbells or from trapped MMIO doorbells.
 * (A refused switch's events: vm-suite and genl_test.)
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

/* The adapter's idle-after policy; 0 or the kernel's error. */
static int set_idle_after(int fd, int fam, const char *bdf, __u32 ms)
{
	struct nlattr *nest;
	struct reply rep;
	struct req r;

	req_init(&r, fam, EMUHBA_CMD_POLICY_SET, 0);
	put_str(&r, EMUHBA_A_ADAPTER_BDF, bdf);
	nest = nest_start(&r, EMUHBA_A_ADAPTER_POLICY);
	put_u32(&r, EMUHBA_A_POLICY_IDLE_AFTER, ms);
	nest_end(&r, nest);
	if (talk(fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL))
		return -EIO;
	return rep.error;
}

/* Positions from the doorbell writes the switch catches. */
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
	/*
	 * With MMIO doorbells the idle guest's queues are placed by the
	 * administrator's bound on a command's life; QEMU's drive completes
	 * every command here within milliseconds.
	 */
	ASSERT_EQ(0, set_idle_after(self->fd, self->f.id, self->bdf, 500));

	ret = mvmm_open(&self->vm, self->bdf, 64 << 20);
	ASSERT_EQ(0, ret) TH_LOG("open: %s", strerror(-ret));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 2, variant->dbbuf));
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 200, 8));
	ASSERT_EQ(0, get_adapter(self->fd, self->f.id, self->bdf,
				 &self->before, &rep));
	ASSERT_EQ(EMUHBA_ADAPTER_MODE_DIRECT, self->before.mode);
	/* The guest's doorbell buffer decides where positions come from. */
	ASSERT_TRUE(self->before.has_position_source);
	EXPECT_EQ(variant->dbbuf ?
		  EMUHBA_ADAPTER_POSITION_SOURCE_SHADOW_DOORBELLS :
		  EMUHBA_ADAPTER_POSITION_SOURCE_TRAPPED_DOORBELLS,
		  self->before.position_source);
	EXPECT_TRUE(self->before.has_window_doorbells);
	self->lfd = listener(self->f.grp);
	ASSERT_LE(0, self->lfd);
}

FIXTURE_TEARDOWN(sw)
{
	if (self->bdf && getenv("EMUHBA_BACKEND")) {
		set_idle_after(self->fd, self->f.id, self->bdf, 0);
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

	/* With shadow doorbells or without them, the switch succeeds. */
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
	/* The guest goes on. */
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 200, 8));
	EXPECT_EQ(0, self->vm.errors);
	EXPECT_EQ(0, self->vm.mismatches);
}

/*
 * A migration as QEMU drives it (the mini-VMM: PRE_COPY, STOP_COPY,
 * RESUMING, RUNNING) from EMUHBA_VF to EMUHBA_VF_DST: each adapter's
 * mig-state events form one chain, the source goes through PRE_COPY and
 * STOP_COPY and switches to emulated, the destination resumes and ends
 * RUNNING, and nothing is reported as an error.
 */
FIXTURE(mig) {
	struct mvmm vm;
	int fd, lfd;
	struct fam f;
	const char *src, *dst;
};

FIXTURE_SETUP(mig)
{
	struct nlattr *nest;
	const char *bdfs[2];
	struct reply rep;
	struct req r;
	int ret;

	self->src = getenv("EMUHBA_VF");
	self->dst = getenv("EMUHBA_VF_DST");
	if (!self->src || !self->dst || !getenv("EMUHBA_BACKEND"))
		SKIP(return, "EMUHBA_VF/EMUHBA_VF_DST/EMUHBA_BACKEND not set");
	self->fd = nl_open();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, resolve(self->fd, &self->f));
	bdfs[0] = self->src;
	bdfs[1] = self->dst;
	for (int i = 0; i < 2; i++) {
		req_init(&r, self->f.id, EMUHBA_CMD_BACKEND_SET, 0);
		put_str(&r, EMUHBA_A_ADAPTER_BDF, bdfs[i]);
		put_str(&r, EMUHBA_A_ADAPTER_BACKEND, getenv("EMUHBA_BACKEND"));
		ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE,
				  NULL));
		ASSERT_EQ(0, rep.error) TH_LOG("backend: %s", rep.msg);
		/* No fabric peer to quiesce here: do not require it. */
		req_init(&r, self->f.id, EMUHBA_CMD_POLICY_SET, 0);
		put_str(&r, EMUHBA_A_ADAPTER_BDF, bdfs[i]);
		nest = nest_start(&r, EMUHBA_A_ADAPTER_POLICY);
		put_u8(&r, EMUHBA_A_POLICY_AUTO_SWITCH, 1);
		put_u8(&r, EMUHBA_A_POLICY_QUIESCE_REQUIRED, 0);
		nest_end(&r, nest);
		ASSERT_EQ(0, talk(self->fd, &r, &rep, NULL, NULL, BUF_SIZE,
				  NULL));
		ASSERT_EQ(0, rep.error) TH_LOG("policy: %s", rep.msg);
	}
	ret = mvmm_open(&self->vm, self->src, 64 << 20);
	ASSERT_EQ(0, ret) TH_LOG("open: %s", strerror(-ret));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 2, true));
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 200, 8));
	self->lfd = listener(self->f.grp);
	ASSERT_LE(0, self->lfd);
}

FIXTURE_TEARDOWN(mig)
{
	if (self->src && self->dst && getenv("EMUHBA_BACKEND")) {
		mvmm_close(&self->vm);
		close(self->lfd);
		close(self->fd);
	}
}

/* The first image of the migration stream: the pre-copy stage's. */
static __u8 first_image[66000];
static size_t first_len;

static void capture_first(uint8_t *stream, size_t *len)
{
	size_t ilen;

	first_len = 0;
	if (*len < 32)
		return;
	ilen = stream[16] | stream[17] << 8 | stream[18] << 16 |
	       (size_t)stream[19] << 24;
	if (ilen <= *len && ilen <= sizeof(first_image)) {
		memcpy(first_image, stream, ilen);
		first_len = ilen;
	}
}

struct chain {
	const char *bdf;
	int n;
	__u32 at;		/* last new state */
	bool seen[8];
	bool emulated;
};

static void follow(struct __test_metadata *_metadata, struct chain *c,
		   const struct event *ev)
{
	if (strcmp(ev->bdf, c->bdf))
		return;
	if (ev->cmd == EMUHBA_CMD_MODE_CHANGE_NTF &&
	    ev->mode == EMUHBA_ADAPTER_MODE_EMULATED)
		c->emulated = true;
	if (ev->cmd != EMUHBA_CMD_MIG_STATE_NTF)
		return;
	if (c->n)
		EXPECT_EQ(c->at, ev->old_mig_state)
			TH_LOG("%s: %u->%u does not follow %u", c->bdf,
			       ev->old_mig_state, ev->mig_state, c->at);
	c->at = ev->mig_state;
	if (ev->mig_state < 8)
		c->seen[ev->mig_state] = true;
	c->n++;
}

TEST_F(mig, mig_state_events_in_order)
{
	struct chain src = { .bdf = self->src }, dst = { .bdf = self->dst };
	static struct image im;
	struct mvmm_mig_stats st;
	struct reply rep;
	struct event ev;
	int nerr = 0, ret;

	/* What image-get says the pre-copy stage will send. */
	ASSERT_EQ(0, get_image(self->fd, self->f.id, self->src, &im, &rep)) {
		TH_LOG("image-get: %s (%s)", strerror(rep.error), rep.msg);
	}
	self->vm.tamper = capture_first;
	ret = mvmm_migrate(&self->vm, self->dst, &st);
	ASSERT_EQ(0, ret) TH_LOG("migration: %s", strerror(-ret));
	while (!read_event(self->lfd, &ev, 500)) {
		if (ev.cmd == EMUHBA_CMD_ERROR_NTF) {
			nerr++;
			TH_LOG("error event on %s: %s", ev.bdf, ev.msg);
		}
		follow(_metadata, &src, &ev);
		follow(_metadata, &dst, &ev);
	}
	EXPECT_EQ(0, nerr);
	/* image-get returned, byte for byte, the stream's pre-copy image. */
	ASSERT_EQ((size_t)im.len, first_len);
	EXPECT_EQ(0, memcmp(im.b, first_image, first_len));
	EXPECT_EQ(1, first_image[12] & 1) TH_LOG("first image not stable");
	/* enum vfio_device_mig_state */
	EXPECT_LE(2, src.n);
	EXPECT_TRUE(src.seen[6]) TH_LOG("source never reported PRE_COPY");
	EXPECT_TRUE(src.seen[3]) TH_LOG("source never reported STOP_COPY");
	EXPECT_TRUE(src.emulated) TH_LOG("source never switched to emulated");
	EXPECT_LE(2, dst.n);
	EXPECT_TRUE(dst.seen[4]) TH_LOG("destination never reported RESUMING");
	EXPECT_EQ(2, dst.at) TH_LOG("destination ends in state %u", dst.at);
	TH_LOG("%d source and %d destination state events, downtime %llu ms",
	       src.n, dst.n, (unsigned long long)st.downtime_ms);
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 200, 8));
	EXPECT_EQ(0, self->vm.errors);
	EXPECT_EQ(0, self->vm.mismatches);
}

TEST_HARNESS_MAIN
