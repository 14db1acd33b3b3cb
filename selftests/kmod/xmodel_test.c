// SPDX-License-Identifier: GPL-2.0-only
/*
 * Migration between two adapter models: VFs of two NVMe PFs of one
 * subsystem (one namespace) with other limits. A guest that used more than
 * the destination offers is refused while it still runs (the pre-copy
 * image is checked on arrival) and stays on its VF; a guest that fits
 * moves, with nothing lost, and keeps the controller registers and the
 * Identify data it saw.
 *
 * Usage: xmodel_test  (EMUHBA_VF=VF of the larger PF, EMUHBA_VF_B=VF of
 *                      the smaller one, EMUHBA_VF_C=VF whose namespace has
 *                      4 KiB blocks; all bound to emuhba with a backend)
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

static void attr_is(struct __test_metadata *_metadata, const char *bdf,
		    const char *attr, const char *want)
{
	char got[32] = "";

	ASSERT_EQ(0, mvmm_attr(bdf, attr, got, sizeof(got)));
	EXPECT_STREQ(want, got) TH_LOG("%s of %s", attr, bdf);
}

/* More I/O; nothing failed or was lost so far: all written reads back. */
static void clean_io(struct __test_metadata *_metadata, struct mvmm *vm)
{
	EXPECT_EQ(0, mvmm_io_run(vm, 200, 8));
	EXPECT_EQ(0, vm->errors);
	EXPECT_EQ(0, vm->mismatches);
	EXPECT_EQ(0, vm->duplicates);
	MVMM_EXPECT_READ_BACK(vm);
}

FIXTURE(xm) {
	struct mvmm vm;
	const char *big, *small, *lbaf;
};

FIXTURE_SETUP(xm)
{
	self->big = getenv("EMUHBA_VF");
	self->small = getenv("EMUHBA_VF_B");
	self->lbaf = getenv("EMUHBA_VF_C");
	ASSERT_NE(NULL, self->big);
	ASSERT_NE(NULL, self->small);
}

FIXTURE_TEARDOWN(xm)
{
	mvmm_close(&self->vm);
}

/*
 * A guest using nr_ioq queues on the larger model's VF tries to move to dst
 * and is refused while it runs: the model serves it, nothing is lost, and
 * a pause and resume (stop, cont) takes it back to its VF.
 */
static void refused_in_precopy(struct __test_metadata *_metadata,
			       struct mvmm *vm, const char *src,
			       const char *dst, int nr_ioq)
{
	struct mvmm_mig_stats st;

	ASSERT_EQ(0, mvmm_open(vm, src, 16 << 20));
	ASSERT_EQ(0, mvmm_nvme_init(vm, nr_ioq, MVMM_DB_LINUX));
	ASSERT_EQ(9, vm->lba_shift);
	ASSERT_EQ(0, mvmm_io_run(vm, 200, 8));
	mvmm_io_fill(vm, 8);
	vm->precopy_to_dest = true;
	EXPECT_NE(0, mvmm_migrate(vm, dst, &st));
	EXPECT_TRUE(st.refused_in_precopy)
		TH_LOG("%s took an image it cannot honour", dst);
	EXPECT_STREQ(src, vm->bdf);
	mode_is(_metadata, src, "emulated\n");
	clean_io(_metadata, vm);
	ASSERT_EQ(0, mvmm_set_mig_state(vm, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(vm, VFIO_DEVICE_STATE_RUNNING, NULL));
	mode_is(_metadata, src, "direct\n");
	clean_io(_metadata, vm);
	mode_is(_metadata, dst, "direct\n");
}

/* Four I/O queues in use; the destination grants one. */
TEST_F_TIMEOUT(xm, refused_before_stop_copy, 300)
{
	refused_in_precopy(_metadata, &self->vm, self->big, self->small, 4);
}

/*
 * The same namespace in every other respect, formatted with 4 KiB blocks:
 * the guest's 512-byte LBAs would address other data.
 */
TEST_F_TIMEOUT(xm, refused_other_lba_format, 300)
{
	if (!self->lbaf)
		SKIP(return, "no VF with another LBA format (EMUHBA_VF_C)");
	refused_in_precopy(_metadata, &self->vm, self->big, self->lbaf, 1);
}

/* One I/O queue: fits both; there and back. */
TEST_F_TIMEOUT(xm, small_to_big_and_back, 300)
{
	struct mvmm_mig_stats st;
	uint64_t cap, cap_after;
	uint32_t vs, vs_after;

	ASSERT_EQ(0, mvmm_open(&self->vm, self->small, 16 << 20));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 1, MVMM_DB_LINUX));
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

#define ID_PAGE 4096

static void identity_is(struct __test_metadata *_metadata, struct mvmm *vm,
			const uint8_t *ctrl, const uint8_t *ns, const char *when)
{
	uint8_t got[ID_PAGE];

	ASSERT_EQ(0, mvmm_identify(vm, 1, 0, got, 0));
	EXPECT_EQ(0, memcmp(ctrl, got, ID_PAGE))
		TH_LOG("%s: Identify Controller differs (CNTLID %u, MDTS %u; the guest was given CNTLID %u, MDTS %u)",
		       when, got[78] | got[79] << 8, got[77],
		       ctrl[78] | ctrl[79] << 8, ctrl[77]);
	/* A buffer that is not page aligned: PRP2 carries the rest. */
	ASSERT_EQ(0, mvmm_identify(vm, 0, vm->nsid, got, 512));
	EXPECT_EQ(0, memcmp(ns, got, ID_PAGE))
		TH_LOG("%s: Identify Namespace differs", when);
}

/*
 * The guest keeps the identity it was given on the other model's VF, in
 * direct mode, across a controller reset, and until it goes away.
 */
TEST_F_TIMEOUT(xm, identity_kept_across_models, 300)
{
	uint8_t own_big[ID_PAGE], ctrl[ID_PAGE], ns[ID_PAGE];
	struct mvmm_mig_stats st;
	long long answered;
	uint64_t cap, cap_big;
	uint32_t vs;

	/* What the larger model's VF says of itself. */
	ASSERT_EQ(0, mvmm_open(&self->vm, self->big, 16 << 20));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 1, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_identify(&self->vm, 1, 0, own_big, 0));
	cap_big = mvmm_reg_read64(&self->vm, 0x00);
	mvmm_close(&self->vm);

	ASSERT_EQ(0, mvmm_open(&self->vm, self->small, 16 << 20));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 1, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_identify(&self->vm, 1, 0, ctrl, 0));
	ASSERT_EQ(0, mvmm_identify(&self->vm, 0, self->vm.nsid, ns, 512));
	cap = mvmm_reg_read64(&self->vm, 0x00);
	vs = mvmm_reg_read32(&self->vm, 0x08);
	/* Otherwise nothing below could tell the two identities apart. */
	ASSERT_NE(0, memcmp(own_big, ctrl, ID_PAGE));
	ASSERT_NE(cap, cap_big) TH_LOG("both models have CAP %#llx",
				       (unsigned long long)cap);
	TH_LOG("guest given CNTLID %u MDTS %u; the other model's VF has CNTLID %u MDTS %u",
	       ctrl[78] | ctrl[79] << 8, ctrl[77],
	       own_big[78] | own_big[79] << 8, own_big[77]);
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 100, 8));

	mvmm_io_fill(&self->vm, 8);
	self->vm.fill_at_stop = 8;
	ASSERT_EQ(0, mvmm_migrate(&self->vm, self->big, &st));
	mode_is(_metadata, self->big, "direct\n");
	attr_is(_metadata, self->big, "emuhba/identity", "guest\n");
	answered = mvmm_attr_ll(self->big, "emuhba/identify_answered");
	identity_is(_metadata, &self->vm, ctrl, ns, "after the migration");
	EXPECT_EQ(answered + 2,
		  mvmm_attr_ll(self->big, "emuhba/identify_answered"));
	EXPECT_EQ(0, mvmm_attr_ll(self->big, "emuhba/identify_unanswered"));
	EXPECT_EQ(cap, mvmm_reg_read64(&self->vm, 0x00));
	EXPECT_EQ(vs, mvmm_reg_read32(&self->vm, 0x08));
	clean_io(_metadata, &self->vm);

	/* A controller reset by the guest keeps what it was given. */
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 1, MVMM_DB_LINUX));
	identity_is(_metadata, &self->vm, ctrl, ns, "after a controller reset");
	EXPECT_EQ(cap, mvmm_reg_read64(&self->vm, 0x00));
	clean_io(_metadata, &self->vm);

	/* Home again: the VF's own identity is the guest's. */
	mvmm_io_fill(&self->vm, 8);
	ASSERT_EQ(0, mvmm_migrate(&self->vm, self->small, &st));
	mode_is(_metadata, self->small, "direct\n");
	attr_is(_metadata, self->small, "emuhba/identity", "own\n");
	identity_is(_metadata, &self->vm, ctrl, ns, "back home");
	clean_io(_metadata, &self->vm);
	mvmm_close(&self->vm);

	/* The guest has gone: the larger model's VF is itself again. */
	attr_is(_metadata, self->big, "emuhba/identity", "own\n");
	ASSERT_EQ(0, mvmm_open(&self->vm, self->big, 16 << 20));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 1, MVMM_DB_LINUX));
	identity_is(_metadata, &self->vm, own_big, ns, "a new guest");
}

TEST_HARNESS_MAIN
