// SPDX-License-Identifier: GPL-2.0-only
/*
 * Faults around the switch and the migration. In every case the guest (the
 * mini-VMM) keeps a consistent device: its checksummed I/O goes on with no
 * lost, repeated or corrupted command, and the adapters stay usable.
 *
 * Usage: fault_test  (EMUHBA_VF=A, EMUHBA_VF_B=B bound to emuhba with a
 *                     backend set, EMUHBA_BACKEND, HBAMIG)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "minivmm.h"
#include "emu_compat.h"

#define IMG_PERS_OFF	8
#define IMG_LEN_OFF	16
#define IMG_CRC_OFF	20

static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* Offset of the last (full) image in a migration stream. */
static size_t last_image(const uint8_t *s, size_t len)
{
	size_t off = 0, last = 0;

	while (off + 32 <= len && get32(s + off + IMG_LEN_OFF)) {
		last = off;
		off += get32(s + off + IMG_LEN_OFF);
	}
	return last;
}

static void tamper_corrupt(uint8_t *s, size_t *len)
{
	s[*len - 7] ^= 0x5a;	/* inside the last section: CRC no longer holds */
}

static void tamper_truncate(uint8_t *s, size_t *len)
{
	(void)s;
	*len -= 40;
}

static void tamper_personality(uint8_t *s, size_t *len)
{
	size_t off;

	/* A well-formed image of another personality: CRC recomputed. */
	for (off = 0; off + 32 <= *len; off += get32(s + off + IMG_LEN_OFF)) {
		uint32_t ilen = get32(s + off + IMG_LEN_OFF);

		put32(s + off + IMG_PERS_OFF, 0x42);
		put32(s + off + IMG_CRC_OFF, 0);
		put32(s + off + IMG_CRC_OFF, emu_crc32c(0, s + off, ilen));
		if (!ilen)
			break;
	}
	(void)last_image;
}

static int hbamig(const char *args)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "%s %s", getenv("HBAMIG"), args);
	return system(cmd);
}

static void mode_of(const char *bdf, char *buf, size_t len)
{
	if (mvmm_attr(bdf, "emuhba/mode", buf, len))
		snprintf(buf, len, "?");
}

FIXTURE(fault) {
	struct mvmm vm;
	const char *a, *b;
	char mode[32];
};

FIXTURE_SETUP(fault)
{
	self->a = getenv("EMUHBA_VF");
	self->b = getenv("EMUHBA_VF_B");
	ASSERT_NE(NULL, self->a);
	ASSERT_NE(NULL, self->b);
	ASSERT_NE(NULL, getenv("HBAMIG"));
	ASSERT_EQ(0, mvmm_open(&self->vm, self->a, 16 << 20));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 4, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 200, 16));
}

FIXTURE_TEARDOWN(fault)
{
	mvmm_close(&self->vm);
}

static void expect_clean(struct __test_metadata *_metadata, struct mvmm *vm)
{
	EXPECT_EQ(0, mvmm_io_run(vm, 300, 16));
	EXPECT_EQ(0, vm->errors);
	EXPECT_EQ(0, vm->mismatches);
	EXPECT_EQ(0, vm->duplicates);
	MVMM_EXPECT_READ_BACK(vm);
}

static void refused_migration(struct __test_metadata *_metadata,
			      FIXTURE_DATA(fault) *self,
			      void (*tamper)(uint8_t *, size_t *))
{
	struct mvmm_mig_stats st;

	mvmm_io_fill(&self->vm, 16);
	self->vm.tamper = tamper;
	EXPECT_NE(0, mvmm_migrate(&self->vm, self->b, &st));
	self->vm.tamper = NULL;
	/*
	 * Still on A, back on its VF when its vCPUs resumed; B is free
	 * again.
	 */
	EXPECT_STREQ(self->a, self->vm.bdf);
	mode_of(self->a, self->mode, sizeof(self->mode));
	EXPECT_STREQ("direct\n", self->mode);
	mode_of(self->b, self->mode, sizeof(self->mode));
	EXPECT_STREQ("direct\n", self->mode);
	expect_clean(_metadata, &self->vm);
	/* And B takes a good image afterwards. */
	EXPECT_EQ(0, mvmm_migrate(&self->vm, self->b, &st));
	expect_clean(_metadata, &self->vm);
}

TEST_F_TIMEOUT(fault, corrupt_image_refused, 300)
{
	refused_migration(_metadata, self, tamper_corrupt);
}

TEST_F_TIMEOUT(fault, truncated_image_refused, 300)
{
	refused_migration(_metadata, self, tamper_truncate);
}

TEST_F_TIMEOUT(fault, wrong_personality_refused, 300)
{
	refused_migration(_metadata, self, tamper_personality);
}

TEST_F_TIMEOUT(fault, guest_resets_controller_while_emulated, 300)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "dev set %s backend %s", self->a,
		 getenv("EMUHBA_BACKEND"));
	ASSERT_EQ(0, hbamig(cmd));
	snprintf(cmd, sizeof(cmd), "switch %s emulated", self->a);
	ASSERT_EQ(0, hbamig(cmd));
	mode_of(self->a, self->mode, sizeof(self->mode));
	ASSERT_STREQ("emulated\n", self->mode);
	/* The guest's driver resets and re-initialises the controller. */
	ASSERT_EQ(0, mvmm_nvme_disable(&self->vm));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 4, MVMM_DB_LINUX));
	expect_clean(_metadata, &self->vm);
	EXPECT_LE(300, mvmm_attr_ll(self->a, "emuhba/emulated_cmds"));
}

/*
 * A guest rewrites the admin queue registers while its controller runs
 * (they take effect only at the next enable): the observer must go on
 * following the queue it knows, not one of the size written.
 */
TEST_F_TIMEOUT(fault, admin_registers_rewritten_while_enabled, 300)
{
	uint8_t sqe[64];
	char cmd[128], obs[32];
	int i;

	mvmm_reg_write32(&self->vm, 0x24, 0x0fff0fff);	/* AQA: 4096 entries */
	mvmm_reg_write32(&self->vm, 0x28, 0x1000);	/* ASQ low */
	for (i = 0; i < 40; i++) {
		memset(sqe, 0, sizeof(sqe));
		sqe[0] = 0x0a;				/* Get Features */
		sqe[40] = 0x07;				/* Number of Queues */
		ASSERT_EQ(0, mvmm_admin(&self->vm, sqe, NULL));
	}
	ASSERT_EQ(0, mvmm_attr(self->a, "emuhba/observer", obs, sizeof(obs)));
	EXPECT_STREQ("following\n", obs);
	snprintf(cmd, sizeof(cmd), "dev set %s backend %s", self->a,
		 getenv("EMUHBA_BACKEND"));
	ASSERT_EQ(0, hbamig(cmd));
	snprintf(cmd, sizeof(cmd), "switch %s emulated", self->a);
	ASSERT_EQ(0, hbamig(cmd));
	expect_clean(_metadata, &self->vm);
}

TEST_F_TIMEOUT(fault, device_closed_mid_migration, 300)
{
	struct {
		struct vfio_device_feature hdr;
		struct vfio_device_feature_mig_state st;
	} f = { 0 };

	mvmm_io_fill(&self->vm, 16);
	f.hdr.argsz = sizeof(f);
	f.hdr.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	f.st.device_state = VFIO_DEVICE_STATE_PRE_COPY;
	ASSERT_EQ(0, ioctl(self->vm.device, VFIO_DEVICE_FEATURE, &f.hdr));
	/* The VMM dies with the data fd open. */
	close(f.st.data_fd);
	mvmm_close(&self->vm);
	mode_of(self->a, self->mode, sizeof(self->mode));
	EXPECT_STREQ("direct\n", self->mode);
	/* A new VMM gets a working VF. */
	ASSERT_EQ(0, mvmm_open(&self->vm, self->a, 16 << 20));
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 4, MVMM_DB_LINUX));
	expect_clean(_metadata, &self->vm);
}

/*
 * A backend that fails part of the I/O (a 1 MiB loop device behind a
 * namespace the guest uses 2 MiB of): every command still completes, the
 * failed ones with an NVMe error status, none hangs or is lost.
 */
TEST_F_TIMEOUT(fault, backend_errors_reach_the_guest, 300)
{
	uint64_t before = self->vm.completions;
	char cmd[256], loopdev[64] = "";
	FILE *f;

	ASSERT_EQ(0, system("modprobe loop && truncate -s 1M /tmp/emuhba-small.img"));
	f = popen("losetup -f --show /tmp/emuhba-small.img", "r");
	ASSERT_NE(NULL, f);
	ASSERT_NE(NULL, fgets(loopdev, sizeof(loopdev), f));
	pclose(f);
	loopdev[strcspn(loopdev, "\n")] = 0;
	snprintf(cmd, sizeof(cmd), "dev set %s backend %s", self->a, loopdev);
	ASSERT_EQ(0, hbamig(cmd));
	snprintf(cmd, sizeof(cmd), "switch %s emulated", self->a);
	ASSERT_EQ(0, hbamig(cmd));
	/* Another disk: what was written before is not on it. */
	mvmm_io_forget(&self->vm);

	EXPECT_EQ(0, mvmm_io_run(&self->vm, 400, 16));
	EXPECT_EQ(before + 400, self->vm.completions)
		TH_LOG("%llu of 400 commands completed",
		       (unsigned long long)(self->vm.completions - before));
	EXPECT_LT(0, self->vm.errors) TH_LOG("no command failed");
	EXPECT_EQ(0, self->vm.duplicates);
	TH_LOG("%llu of 400 commands failed with an NVMe status",
	       (unsigned long long)self->vm.errors);
	/*
	 * What succeeded reads back exactly; a block whose write failed
	 * holds the old or the new contents (or cannot be read, if no write
	 * of it ever succeeded).
	 */
	EXPECT_EQ(0, self->vm.mismatches);
	MVMM_EXPECT_READ_BACK_UNCERTAIN(&self->vm);

	/* Back to the real namespace for whoever comes next. */
	mvmm_close(&self->vm);
	snprintf(cmd, sizeof(cmd), "dev set %s backend %s", self->a,
		 getenv("EMUHBA_BACKEND"));
	EXPECT_EQ(0, hbamig(cmd));
	snprintf(cmd, sizeof(cmd), "losetup -d %s", loopdev);
	EXPECT_EQ(0, system(cmd));
	ASSERT_EQ(0, mvmm_open(&self->vm, self->a, 16 << 20));
}

TEST_HARNESS_MAIN
