// SPDX-License-Identifier: GPL-2.0-only
/*
 * The switch from direct to emulated mode with I/O in flight: the guest
 * (the mini-VMM) keeps submitting and verifying while `hbamig switch` runs;
 * afterwards the model serves the same queues from the backend block device
 * (the same namespace through the PF), and nothing is lost, repeated or
 * corrupted.
 *
 * Usage: switch_test   (EMUHBA_VF=<bdf> bound to emuhba,
 *                       EMUHBA_BACKEND=<block device of the same namespace>,
 *                       HBAMIG=<path to hbamig>)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "minivmm.h"

#define NR_IOQ	4

static int hbamig(const char *a1, const char *a2, const char *a3,
		  const char *a4, const char *a5)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "%s %s %s %s %s %s", getenv("HBAMIG"),
		 a1, a2, a3 ? a3 : "", a4 ? a4 : "", a5 ? a5 : "");
	return system(cmd);
}

FIXTURE(sw) {
	struct mvmm vm;
	const char *bdf;
	char mode[32];
};

FIXTURE_VARIANT(sw) {
	enum mvmm_doorbells db;
};

/* Skipped, with the reason, on a VF without Doorbell Buffer Config. */
FIXTURE_VARIANT_ADD(sw, shadow_doorbells) {
	.db = MVMM_DB_SHADOW,
};

/* A guest that rings MMIO doorbells, as on every real SSD's VF. */
FIXTURE_VARIANT_ADD(sw, mmio_doorbells) {
	.db = MVMM_DB_MMIO,
};

FIXTURE_SETUP(sw)
{
	int ret;

	self->bdf = getenv("EMUHBA_VF");
	ASSERT_NE(NULL, self->bdf);
	ASSERT_NE(NULL, getenv("HBAMIG"));
	ASSERT_NE(NULL, getenv("EMUHBA_BACKEND"));
	ASSERT_EQ(0, hbamig("dev", "set", self->bdf, "backend",
			    getenv("EMUHBA_BACKEND")));
	ret = mvmm_open(&self->vm, self->bdf, 64 << 20);
	ASSERT_EQ(0, ret) TH_LOG("open: %s", strerror(-ret));
	ret = mvmm_nvme_init(&self->vm, NR_IOQ, variant->db);
	MVMM_SKIP_IF_NO_DBBUF(ret, &self->vm);
	ASSERT_EQ(0, ret) TH_LOG("controller init: %d", ret);
}

FIXTURE_TEARDOWN(sw)
{
	mvmm_close(&self->vm);
}

TEST_F(sw, to_emulated_with_io_in_flight)
{
	char *argv[] = { getenv("HBAMIG"), "switch", (char *)self->bdf,
			 "emulated", NULL };
	long long cmds;
	int rc;

	ASSERT_EQ(0, mvmm_io_run(&self->vm, 500, 16));
	rc = mvmm_exec_during_io(&self->vm, 16, false, argv);
	ASSERT_EQ(0, mvmm_attr(self->bdf, "emuhba/mode", self->mode,
			       sizeof(self->mode)));
	/* With shadow doorbells or without, the switch must work. */
	EXPECT_EQ(0, rc) TH_LOG("hbamig switch exited %d (%s doorbells)", rc,
				mvmm_doorbells_name(&self->vm));
	EXPECT_STREQ("emulated\n", self->mode);
	/* The guest goes on, on a consistent device. */
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 1000, 16));
	EXPECT_EQ(0, self->vm.errors);
	EXPECT_EQ(0, self->vm.mismatches);
	EXPECT_EQ(0, self->vm.duplicates);
	cmds = mvmm_attr_ll(self->bdf, "emuhba/emulated_cmds");
	EXPECT_LE(1000, cmds) TH_LOG("the model executed %lld commands", cmds);
	TH_LOG("%llu completions, %lld by the model", (unsigned long long)
	       self->vm.completions, cmds);
	MVMM_EXPECT_READ_BACK(&self->vm);
}

TEST_HARNESS_MAIN
