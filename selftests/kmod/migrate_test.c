// SPDX-License-Identifier: GPL-2.0-only
/*
 * Live migration of an emuhba VF through the VFIO migration uAPI only, as
 * QEMU does it, with I/O in flight: the mini-VMM's device moves from VF A to
 * VF B (a new container, guest memory copied from the type1 dirty log) and
 * back, many times, while its checksummed write/read-back stream goes on.
 *
 * Usage: migrate_test  (EMUHBA_VF=A, EMUHBA_VF_B=B, both bound to emuhba with
 *                       a backend set; EMUHBA_MIGRATIONS=N, default 50)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "minivmm.h"

FIXTURE(mig) {
	struct mvmm vm;
	const char *a, *b;
	char mode[32];
};

FIXTURE_SETUP(mig)
{
	int ret;

	self->a = getenv("EMUHBA_VF");
	self->b = getenv("EMUHBA_VF_B");
	ASSERT_NE(NULL, self->a);
	ASSERT_NE(NULL, self->b);
	ret = mvmm_open(&self->vm, self->a, 16 << 20);
	ASSERT_EQ(0, ret) TH_LOG("open %s: %s", self->a, strerror(-ret));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 4, MVMM_DB_LINUX));
}

FIXTURE_TEARDOWN(mig)
{
	mvmm_close(&self->vm);
}

TEST_F_TIMEOUT(mig, a_to_b_and_back_with_io_in_flight, 900)
{
	const char *env = getenv("EMUHBA_MIGRATIONS");
	int n = env ? atoi(env) : 50, i, ret;
	struct mvmm_mig_stats st, worst = { 0 };
	uint64_t in_flight = 0, state_bytes = 0, pending = 0;
	size_t max_dirty = 0;

	ASSERT_EQ(0, mvmm_io_run(&self->vm, 200, 16));
	for (i = 0; i < n; i++) {
		const char *to = i % 2 ? self->a : self->b;

		in_flight += mvmm_io_fill(&self->vm, 16);
		/* Every other time, submissions the source never saw. */
		self->vm.fill_at_stop = i % 2 ? 0 : 24;
		/*
		 * The guest runs on while the device enters pre-copy: the
		 * switch places every queue by its doorbells, without any
		 * bound on a command's life (the suite sets none here).
		 */
		self->vm.io_during_switch = 8;
		ret = mvmm_migrate(&self->vm, to, &st);
		ASSERT_EQ(0, ret) TH_LOG("migration %d to %s: %s", i + 1, to,
					 strerror(-ret));
		pending += st.pending_at_stop;
		/* The destination's VF took the guest's queues over. */
		ASSERT_EQ(0, mvmm_attr(to, "emuhba/mode", self->mode,
				       sizeof(self->mode)));
		EXPECT_STREQ("direct\n", self->mode);
		if (strcmp(self->mode, "direct\n"))
			/* Why the switch back was refused: the driver says. */
			system("dmesg | grep -i 'emuhba.*direct' | tail -n 2 | sed 's/^/# /'");
		/* The log covered every page the device wrote ... */
		EXPECT_EQ(0, st.stale_pages);
		/* ... and after the switch only what the model wrote. */
		EXPECT_GT(self->vm.mem_size / 4096 / 8, st.dirty_pages)
			TH_LOG("%zu of %zu pages reported dirty after the switch",
			       st.dirty_pages, self->vm.mem_size / 4096);
		max_dirty = st.dirty_pages > max_dirty ? st.dirty_pages : max_dirty;
		if (st.downtime_ms > worst.downtime_ms)
			worst = st;
		state_bytes = st.state_bytes;
		ASSERT_EQ(0, mvmm_io_run(&self->vm, 100, 16))
			TH_LOG("I/O after migration %d", i + 1);
		ASSERT_EQ(0, self->vm.errors);
		ASSERT_EQ(0, self->vm.mismatches);
		ASSERT_EQ(0, self->vm.duplicates);
	}
	EXPECT_LT(0, pending) TH_LOG("no submission was left for a destination");
	TH_LOG("%d migrations, %llu commands in flight across them, %llu submitted after the source stopped, %llu completions; state stream %llu bytes; at most %zu pages logged after a switch; worst downtime %llu ms",
	       n, (unsigned long long)in_flight, (unsigned long long)pending,
	       (unsigned long long)self->vm.completions,
	       (unsigned long long)state_bytes, max_dirty,
	       (unsigned long long)worst.downtime_ms);
	MVMM_EXPECT_READ_BACK(&self->vm);
}

TEST_HARNESS_MAIN
