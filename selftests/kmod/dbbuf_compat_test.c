// SPDX-License-Identifier: GPL-2.0-only
/*
 * Shadow doorbells across a migration: a VF that offers Doorbell Buffer
 * Config (OACS bit 8, as QEMU's do) and one that does not (as real SSDs'
 * VFs). A guest that configured shadow doorbells cannot go direct on the
 * second: the destination refuses it while the guest still runs, from the
 * pre-copy data, naming features.dbbuf, and the guest stays on its VF with
 * nothing lost. A guest without them moves there. A guest that turns them
 * on during pre-copy is refused as soon as the device's next pre-copy data
 * arrives, and may still move to a VF that has them.
 *
 * Usage: dbbuf_compat_test  (EMUHBA_VF, EMUHBA_VF_B: VFs that offer shadow
 *                            doorbells; EMUHBA_VF_NODB: a VF that does not;
 *                            all bound to emuhba with a backend; HBAMIG)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "minivmm.h"

#define OACS_DBBUF	(1u << 8)

static void mode_is(struct __test_metadata *_metadata, const char *bdf,
		    const char *want)
{
	char mode[32] = "";

	ASSERT_EQ(0, mvmm_attr(bdf, "emuhba/mode", mode, sizeof(mode)));
	EXPECT_STREQ(want, mode) TH_LOG("mode of %s", bdf);
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

/* The controller's OACS, as the guest reads it. */
static unsigned int oacs(struct mvmm *vm)
{
	uint8_t id[4096];

	if (mvmm_identify(vm, 1, 0, id, 0))
		return ~0u;
	return id[256] | id[257] << 8;
}

/*
 * "hbamig dev compat SRC DST": its exit status, and the features.dbbuf row
 * (source, destination, verdict) and the refusal line of its output.
 */
static int compat(const char *src, const char *dst, char *row, size_t rlen,
		  char *why, size_t wlen)
{
	char cmd[256], line[256];
	FILE *f;
	int st;

	row[0] = why[0] = '\0';
	snprintf(cmd, sizeof(cmd), "%s dev compat %s %s 2>&1",
		 getenv("HBAMIG"), src, dst);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char name[64], ns[16], s[32], d[32], v[16];

		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "  refused: ", 11))
			snprintf(why, wlen, "%s", line + 11);
		if (sscanf(line, "%63s %15s %31s %31s %15s", name, ns, s, d,
			   v) == 5 && !strcmp(name, "features.dbbuf"))
			snprintf(row, rlen, "%s %s %s", s, d, v);
	}
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

FIXTURE(dbc) {
	struct mvmm vm;
	const char *a, *b, *nodb;
};

FIXTURE_SETUP(dbc)
{
	struct mvmm probe;

	self->a = getenv("EMUHBA_VF");
	self->b = getenv("EMUHBA_VF_B");
	self->nodb = getenv("EMUHBA_VF_NODB");
	ASSERT_NE(NULL, self->a);
	ASSERT_NE(NULL, self->b);
	ASSERT_NE(NULL, self->nodb);
	ASSERT_NE(NULL, getenv("HBAMIG"));
	/* The premise: one kind offers shadow doorbells, the other not. */
	ASSERT_EQ(0, mvmm_open(&probe, self->nodb, 4 << 20));
	ASSERT_EQ(0, mvmm_nvme_init(&probe, 1, MVMM_DB_MMIO));
	ASSERT_EQ(0, oacs(&probe) & OACS_DBBUF)
		TH_LOG("%s offers Doorbell Buffer Config (OACS %#x): is its PF dbcs=off?",
		       self->nodb, oacs(&probe));
	mvmm_close(&probe);
	ASSERT_EQ(0, mvmm_open(&self->vm, self->a, 16 << 20));
}

FIXTURE_TEARDOWN(dbc)
{
	mvmm_close(&self->vm);
}

/*
 * A refused migration: the source, still emulated, goes on with clean I/O,
 * is paused and resumed as QEMU does after a failed migration, and is back
 * on its VF; the destination never left direct mode.
 */
static void source_goes_on(struct __test_metadata *_metadata,
			   FIXTURE_DATA(dbc) *self)
{
	mode_is(_metadata, self->a, "emulated\n");
	clean_io(_metadata, &self->vm);
	ASSERT_EQ(0, mvmm_set_mig_state(&self->vm, VFIO_DEVICE_STATE_STOP,
					NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(&self->vm, VFIO_DEVICE_STATE_RUNNING,
					NULL));
	mode_is(_metadata, self->a, "direct\n");
	clean_io(_metadata, &self->vm);
	mode_is(_metadata, self->nodb, "direct\n");
}

/* The verdict of a guest in direct mode, as "hbamig dev compat" shows it. */
TEST_F_TIMEOUT(dbc, verdict_by_what_the_guest_uses, 300)
{
	char row[128], why[256];

	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 2, MVMM_DB_SHADOW));
	ASSERT_NE(0, oacs(&self->vm) & OACS_DBBUF);
	clean_io(_metadata, &self->vm);
	EXPECT_EQ(1, compat(self->a, self->nodb, row, sizeof(row), why,
			    sizeof(why)));
	EXPECT_STREQ("1 0 refused", row);
	EXPECT_STREQ("features.dbbuf: guest uses shadow doorbells, destination has none",
		     why);
	EXPECT_EQ(0, compat(self->a, self->b, row, sizeof(row), why,
			    sizeof(why))) TH_LOG("%s", why);
	EXPECT_STREQ("1 1 ok", row);

	/* The same guest after a reset without them: taken by both. */
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 2, MVMM_DB_MMIO));
	clean_io(_metadata, &self->vm);
	EXPECT_EQ(0, compat(self->a, self->nodb, row, sizeof(row), why,
			    sizeof(why))) TH_LOG("%s", why);
	EXPECT_STREQ("0 0 ok", row);
	EXPECT_EQ(0, compat(self->a, self->b, row, sizeof(row), why,
			    sizeof(why))) TH_LOG("%s", why);
	EXPECT_STREQ("0 1 ok", row);
}

/*
 * A guest that uses shadow doorbells: refused from the pre-copy data, so
 * the VM never stops; it goes on on its VF (the model serves it until a
 * pause and resume gives it back to the VF), nothing lost.
 */
TEST_F_TIMEOUT(dbc, dbbuf_guest_refused_in_precopy, 300)
{
	struct mvmm_mig_stats st;

	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 2, MVMM_DB_SHADOW));
	clean_io(_metadata, &self->vm);
	mvmm_io_fill(&self->vm, 8);
	self->vm.precopy_to_dest = true;
	EXPECT_NE(0, mvmm_migrate(&self->vm, self->nodb, &st));
	EXPECT_TRUE(st.refused_in_precopy)
		TH_LOG("%s took a guest with shadow doorbells", self->nodb);
	EXPECT_LT(0, st.precopy_bytes);
	EXPECT_STREQ(self->a, self->vm.bdf);
	source_goes_on(_metadata, self);

	/* The same guest moves to a VF that has them. */
	mvmm_io_fill(&self->vm, 8);
	self->vm.fill_at_stop = 8;
	ASSERT_EQ(0, mvmm_migrate(&self->vm, self->b, &st));
	EXPECT_STREQ(self->b, self->vm.bdf);
	mode_is(_metadata, self->b, "direct\n");
	EXPECT_EQ(0, st.stale_pages);
	clean_io(_metadata, &self->vm);
}

/*
 * A guest whose controller is enabled without shadow doorbells moves to
 * the VF without them, and back. Needs a switch that establishes the
 * queue positions without the guest's shadow doorbell buffer. (Such a
 * guest's doorbell writes are MMIO only: none may follow the stop, as
 * with a hypervisor, whose vCPUs stop first; fill_at_stop stays 0.)
 */
TEST_F_TIMEOUT(dbc, no_dbbuf_guest_moves, 300)
{
	struct mvmm_mig_stats st;
	int ret;

	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 2, MVMM_DB_MMIO));
	clean_io(_metadata, &self->vm);
	mvmm_io_fill(&self->vm, 8);
	self->vm.precopy_to_dest = true;
	ret = mvmm_migrate(&self->vm, self->nodb, &st);
	if (ret == -EOPNOTSUPP && !st.precopy_bytes) {
		/* The source refused to switch: nothing was changed. */
		mode_is(_metadata, self->a, "direct\n");
		clean_io(_metadata, &self->vm);
		SKIP(return, "this emuhba.ko cannot switch a guest without shadow doorbells");
	}
	ASSERT_EQ(0, ret) TH_LOG("%s", strerror(-ret));
	EXPECT_FALSE(st.refused_in_precopy);
	EXPECT_STREQ(self->nodb, self->vm.bdf);
	mode_is(_metadata, self->nodb, "direct\n");
	EXPECT_EQ(0, st.stale_pages);
	clean_io(_metadata, &self->vm);

	mvmm_io_fill(&self->vm, 8);
	ASSERT_EQ(0, mvmm_migrate(&self->vm, self->a, &st));
	mode_is(_metadata, self->a, "direct\n");
	clean_io(_metadata, &self->vm);
}

/*
 * The guest's driver comes up during pre-copy, on the model, and leaves
 * commands in flight.
 */
static int up_without_dbbuf(struct mvmm *vm)
{
	int ret = mvmm_nvme_init(vm, 2, MVMM_DB_MMIO);

	if (!ret)
		ret = mvmm_io_run(vm, 100, 8);
	if (!ret)
		mvmm_io_fill(vm, 8);
	return ret;
}

static int up_with_dbbuf(struct mvmm *vm)
{
	int ret = mvmm_nvme_init(vm, 2, MVMM_DB_SHADOW);

	return ret ? ret : mvmm_io_run(vm, 100, 8);
}

/*
 * A VM migrated while it boots: its controller is not enabled when
 * pre-copy starts, and its driver brings it up on the model without
 * shadow doorbells. The device has nothing more to say, and the guest
 * moves to the VF without them.
 */
TEST_F_TIMEOUT(dbc, booting_guest_without_dbbuf_moves, 300)
{
	struct mvmm_mig_stats st;

	self->vm.precopy_to_dest = true;
	self->vm.in_precopy = up_without_dbbuf;
	ASSERT_EQ(0, mvmm_migrate(&self->vm, self->nodb, &st));
	EXPECT_EQ(0, st.iter_initial_bytes);
	EXPECT_EQ(0, st.iter_dirty_bytes);
	EXPECT_EQ(0, st.iter_bytes);
	EXPECT_STREQ(self->nodb, self->vm.bdf);
	mode_is(_metadata, self->nodb, "direct\n");
	EXPECT_EQ(0, st.stale_pages);
	EXPECT_FALSE(self->vm.dbbuf);
	clean_io(_metadata, &self->vm);
}

/*
 * The same boot with shadow doorbells: the pre-copy data said "not in
 * use" and the destination took it, but the device sends a new stable
 * image, which the destination refuses before the VM stops. The guest
 * goes on on its VF, and a VF that has shadow doorbells takes it.
 */
TEST_F_TIMEOUT(dbc, dbbuf_turned_on_in_precopy_refused, 300)
{
	struct mvmm_mig_stats st;

	self->vm.precopy_to_dest = true;
	self->vm.in_precopy = up_with_dbbuf;
	EXPECT_NE(0, mvmm_migrate(&self->vm, self->nodb, &st));
	EXPECT_TRUE(st.refused_in_precopy);
	EXPECT_EQ(0, st.iter_initial_bytes);
	EXPECT_LT(0, st.iter_dirty_bytes);
	EXPECT_EQ(st.iter_dirty_bytes, st.iter_bytes);
	EXPECT_STREQ(self->a, self->vm.bdf);
	EXPECT_TRUE(self->vm.dbbuf);
	source_goes_on(_metadata, self);
}

TEST_F_TIMEOUT(dbc, dbbuf_turned_on_in_precopy_moves_where_offered, 300)
{
	struct mvmm_mig_stats st;

	self->vm.precopy_to_dest = true;
	self->vm.in_precopy = up_with_dbbuf;
	self->vm.fill_at_stop = 8;
	ASSERT_EQ(0, mvmm_migrate(&self->vm, self->b, &st));
	EXPECT_LT(0, st.iter_bytes);
	EXPECT_STREQ(self->b, self->vm.bdf);
	mode_is(_metadata, self->b, "direct\n");
	EXPECT_EQ(0, st.stale_pages);
	clean_io(_metadata, &self->vm);
}

TEST_HARNESS_MAIN
