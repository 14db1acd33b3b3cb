// SPDX-License-Identifier: GPL-2.0-only
/*
 * Migration between two adapter models: VFs of two NVMe PFs of one
 * subsystem (one namespace) with other limits. A guest that used more than
 * the destination offers is refused while it still runs (the pre-copy
 * image is checked on arrival) and stays on its VF; a guest that fits
 * moves, with nothing lost, and keeps the controller registers it saw.
 *
 * Usage: xmodel_test  (EMUHBA_VF=VF of the larger PF, EMUHBA_VF_B=VF of
 *                      the smaller one; both bound to emuhba with a backend)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "minivmm.h"

static void mode_is(struct __test_metadata *_metadata, const char *bdf,
		    const char *want)
{
	char mode[32] = "";

	ASSERT_EQ(0, mvmm_attr(bdf, "emuhba/mode", mode, sizeof(mode)));
	EXPECT_STREQ(want, mode);
}

static void clean_io(struct __test_metadata *_metadata, struct mvmm *vm)
{
	EXPECT_EQ(0, mvmm_io_run(vm, 200, 8));
	EXPECT_EQ(0, vm->errors);
	EXPECT_EQ(0, vm->mismatches);
	EXPECT_EQ(0, vm->duplicates);
}

FIXTURE(xm) {
	struct mvmm vm;
	const char *big, *small;
};

FIXTURE_SETUP(xm)
{
	self->big = getenv("EMUHBA_VF");
	self->small = getenv("EMUHBA_VF_B");
	ASSERT_NE(NULL, self->big);
	ASSERT_NE(NULL, self->small);
}

FIXTURE_TEARDOWN(xm)
{
	mvmm_close(&self->vm);
}

/* Four I/O queues in use; the destination grants one. */
TEST_F_TIMEOUT(xm, refused_before_stop_copy, 300)
{
	struct mvmm_mig_stats st;

	ASSERT_EQ(0, mvmm_open(&self->vm, self->big, 16 << 20));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 4, true));
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 200, 8));
	mvmm_io_fill(&self->vm, 8);
	self->vm.precopy_to_dest = true;
	EXPECT_NE(0, mvmm_migrate(&self->vm, self->small, &st));
	EXPECT_TRUE(st.refused_in_precopy)
		TH_LOG("the destination took an image it cannot honour");
	EXPECT_STREQ(self->big, self->vm.bdf);
	/* The guest never stopped: the model serves it, nothing lost. */
	mode_is(_metadata, self->big, "emulated\n");
	clean_io(_metadata, &self->vm);
	/* A pause and resume (stop, cont) takes it back to its VF. */
	ASSERT_EQ(0, mvmm_set_mig_state(&self->vm, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(&self->vm, VFIO_DEVICE_STATE_RUNNING,
					NULL));
	mode_is(_metadata, self->big, "direct\n");
	clean_io(_metadata, &self->vm);
	mode_is(_metadata, self->small, "direct\n");
}

/* One I/O queue: fits both; there and back. */
TEST_F_TIMEOUT(xm, small_to_big_and_back, 300)
{
	struct mvmm_mig_stats st;
	uint64_t cap, cap_after;
	uint32_t vs, vs_after;

	ASSERT_EQ(0, mvmm_open(&self->vm, self->small, 16 << 20));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 1, true));
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 200, 8));
	cap = mvmm_reg_read64(&self->vm, 0x00);
	vs = mvmm_reg_read32(&self->vm, 0x08);

	mvmm_io_fill(&self->vm, 8);
	self->vm.precopy_to_dest = true;
	self->vm.fill_at_stop = 8;
	ASSERT_EQ(0, mvmm_migrate(&self->vm, self->big, &st));
	EXPECT_STREQ(self->big, self->vm.bdf);
	mode_is(_metadata, self->big, "direct\n");
	EXPECT_EQ(0, st.stale_pages);
	clean_io(_metadata, &self->vm);
	cap_after = mvmm_reg_read64(&self->vm, 0x00);
	vs_after = mvmm_reg_read32(&self->vm, 0x08);
	EXPECT_EQ(cap, cap_after) TH_LOG("CAP changed under the guest");
	EXPECT_EQ(vs, vs_after);

	mvmm_io_fill(&self->vm, 8);
	ASSERT_EQ(0, mvmm_migrate(&self->vm, self->small, &st));
	mode_is(_metadata, self->small, "direct\n");
	EXPECT_EQ(0, st.stale_pages);
	clean_io(_metadata, &self->vm);
	TH_LOG("%llu completions across the two models, %zu submitted after a stop",
	       (unsigned long long)self->vm.completions, st.pending_at_stop);
}

TEST_HARNESS_MAIN
