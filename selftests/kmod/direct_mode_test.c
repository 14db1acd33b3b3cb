// SPDX-License-Identifier: GPL-2.0-only
/*
 * Direct mode of an emuhba VF, driven as Linux's nvme driver drives it:
 * I/O runs on the VF with zero register traps, and the admin observer
 * learns the queue table, the doorbell buffer and the outstanding AER.
 *
 * Usage: direct_mode_test   (EMUHBA_VF=<bdf>, the VF bound to emuhba)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "minivmm.h"

#define NR_IOQ	4

static long long traps(const char *bdf)
{
	return mvmm_attr_ll(bdf, "emuhba/reg_traps");
}

FIXTURE(direct) {
	struct mvmm vm;
	char state[8192];
};

FIXTURE_VARIANT(direct) {
	enum mvmm_doorbells db;
};

/* Skipped, with the reason, on a VF without Doorbell Buffer Config. */
FIXTURE_VARIANT_ADD(direct, shadow_doorbells) {
	.db = MVMM_DB_SHADOW,
};

FIXTURE_VARIANT_ADD(direct, mmio_doorbells) {
	.db = MVMM_DB_MMIO,
};

FIXTURE_SETUP(direct)
{
	const char *bdf = getenv("EMUHBA_VF");
	int ret;

	ASSERT_NE(NULL, bdf) TH_LOG("set EMUHBA_VF");
	ret = mvmm_open(&self->vm, bdf, 64 << 20);
	ASSERT_EQ(0, ret) TH_LOG("open %s: %s", bdf, strerror(-ret));
	ret = mvmm_nvme_init(&self->vm, NR_IOQ, variant->db);
	MVMM_SKIP_IF_NO_DBBUF(ret, &self->vm);
	ASSERT_EQ(0, ret) TH_LOG("controller init: %d", ret);
}

FIXTURE_TEARDOWN(direct)
{
	mvmm_close(&self->vm);
}

static int read_state(struct __test_metadata *_metadata, const char *bdf,
		      char *buf, size_t len)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/kernel/debug/emuhba/%s/state", bdf);
	/* The observer runs after the completion interrupt: let it catch up. */
	for (int i = 0; i < 50; i++) {
		if (mvmm_attr(bdf, path, buf, len))
			return -1;
		if (strstr(buf, "aer_outstanding 1"))
			break;
		usleep(20000);
	}
	TH_LOG("%s", buf);
	return 0;
}

TEST_F(direct, zero_traps_per_io)
{
	long long before, after;

	before = traps(self->vm.bdf);
	ASSERT_LE(0, before);
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 2000, 16));
	after = traps(self->vm.bdf);
	EXPECT_EQ(2000, self->vm.completions);
	EXPECT_EQ(0, self->vm.errors);
	EXPECT_EQ(0, self->vm.mismatches);
	EXPECT_EQ(0, self->vm.duplicates);
	EXPECT_EQ(before, after) TH_LOG("%lld register traps during 2000 I/Os",
					after - before);
	MVMM_EXPECT_READ_BACK(&self->vm);
}

TEST_F(direct, registers_trap)
{
	long long before = traps(self->vm.bdf);
	uint32_t vs = mvmm_reg_read32(&self->vm, 0x08);

	EXPECT_EQ(before + 1, traps(self->vm.bdf));
	EXPECT_LE(0x10000u, vs);
}

TEST_F(direct, observer_learns_queue_table)
{
	uint8_t sqe[64] = { 0x0a };	/* Get Features: Arbitration */
	char line[160];
	int i;

	/*
	 * The AER was fetched but never completes; the observer learns of it
	 * from the SQ head of the next completion.
	 */
	sqe[40] = 0x01;
	ASSERT_EQ(0, mvmm_admin(&self->vm, sqe, NULL));
	ASSERT_EQ(0, read_state(_metadata, self->vm.bdf, self->state,
				sizeof(self->state)));
	EXPECT_NE(NULL, strstr(self->state, "observer following"));
	EXPECT_NE(NULL, strstr(self->state, "aer_outstanding 1"));
	for (i = 0; i < self->vm.nr_ioq; i++) {
		struct mvmm_queue *q = &self->vm.ioq[i];

		snprintf(line, sizeof(line), "cq %u base 0x%llx size %u vector %u ien 1",
			 q->qid, (unsigned long long)q->cq_iova, q->depth, q->vector);
		EXPECT_NE(NULL, strstr(self->state, line)) TH_LOG("missing: %s", line);
		snprintf(line, sizeof(line), "sq %u base 0x%llx size %u cqid %u",
			 q->qid, (unsigned long long)q->sq_iova, q->depth, q->qid);
		EXPECT_NE(NULL, strstr(self->state, line)) TH_LOG("missing: %s", line);
	}
	snprintf(line, sizeof(line), "dbbuf %u dbs 0x%llx eis 0x%llx",
		 self->vm.dbbuf, (unsigned long long)self->vm.dbs_iova,
		 (unsigned long long)self->vm.eis_iova);
	EXPECT_NE(NULL, strstr(self->state, line)) TH_LOG("missing: %s", line);
	MVMM_EXPECT_CQES_EXACT(&self->vm);
}

TEST_F(direct, reset_forgets_queues)
{
	ASSERT_EQ(0, mvmm_nvme_disable(&self->vm));
	ASSERT_EQ(0, read_state(_metadata, self->vm.bdf, self->state,
				sizeof(self->state)));
	EXPECT_NE(NULL, strstr(self->state, "observer idle"));
	EXPECT_EQ(NULL, strstr(self->state, "\nsq 1 "));
	EXPECT_EQ(NULL, strstr(self->state, "\ncq 1 "));
}

TEST_HARNESS_MAIN
