// SPDX-License-Identifier: GPL-2.0-only
/*
 * A hostile guest and a misbehaving VFIO user against emuhba.ko. Each test
 * did oops, leak or hang the host before the fix it covers; now the host
 * stays sound and the guest's device keeps working (or, where the guest
 * broke it itself, works again after the guest resets it).
 *
 * Usage: hostile_test  (EMUHBA_VF=A and EMUHBA_VF_MDTS0=M bound to emuhba
 *                       with EMUHBA_BACKEND set as their backend, HBAMIG;
 *                       EMUHBA_IDLE_AFTER: the idle-after a rebound VF gets)
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "minivmm.h"

#define MEM		(64u << 20)
#define BIG		(2u << 20)	/* 512 pages: twice what one bio holds */

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static int hbamig(const char *fmt, const char *bdf)
{
	char args[256], cmd[512];

	snprintf(args, sizeof(args), fmt, bdf);
	snprintf(cmd, sizeof(cmd), "%s %s >/dev/null 2>&1", env("HBAMIG"), args);
	return system(cmd);
}

static void mode_of(const char *bdf, char *buf, size_t len)
{
	if (mvmm_attr(bdf, "emuhba/mode", buf, len))
		snprintf(buf, len, "?");
	buf[strcspn(buf, "\n")] = 0;
}

/*
 * The guest's I/O so far: nothing failed, miscompared or completed twice,
 * and everything it wrote reads back.
 */
static void expect_clean(struct __test_metadata *_metadata, struct mvmm *vm)
{
	EXPECT_EQ(0, vm->mismatches);
	EXPECT_EQ(0, vm->errors);
	EXPECT_EQ(0, vm->duplicates);
	MVMM_EXPECT_READ_BACK(vm);
}

static void fill(uint8_t *p, size_t len, uint32_t seed)
{
	size_t i;

	for (i = 0; i < len; i += 4) {
		seed = seed * 1103515245u + 12345u;
		memcpy(p + i, &seed, 4);
	}
}

/* A Read, Write or Compare of BIG bytes at LBA 0 through a PRP list. */
static int big_rw(struct mvmm *vm, uint8_t opc, uint64_t buf_iova,
		  uint64_t list_iova, uint8_t *list)
{
	uint8_t sqe[64] = { 0 };
	unsigned int i, pages = BIG / 4096;
	int ret;

	for (i = 1; i < pages; i++)
		put64(list + (i - 1) * 8, buf_iova + (uint64_t)i * 4096);
	sqe[0] = opc;
	put32(sqe + 4, vm->nsid);
	put64(sqe + 24, buf_iova);
	put64(sqe + 32, list_iova);
	put64(sqe + 40, 0);
	put32(sqe + 48, (BIG >> vm->lba_shift) - 1);
	ret = mvmm_io_cmd(vm, 0, sqe, 20000);
	return ret > 0 ? ret & 0x7ff : ret;	/* without DNR and More */
}

/*
 * On a VF without a transfer limit (MDTS 0) a guest may move more than one
 * bio holds in one command; in emulated mode that BUG()ed the host.
 */
TEST(large_transfer_emulated)
{
	const char *bdf = env("EMUHBA_VF_MDTS0");
	uint8_t *buf, *list, *check, sqe[64];
	uint64_t buf_iova, list_iova, check_iova;
	void *va;
	struct mvmm vm;
	char mode[32];

	if (!bdf)
		SKIP(return, "EMUHBA_VF_MDTS0 not set (selftests/kmod/vm-options adds the PF)");
	ASSERT_EQ(0, mvmm_open(&vm, bdf, MEM));
	ASSERT_EQ(0, mvmm_nvme_init(&vm, 1, MVMM_DB_LINUX));
	buf_iova = mvmm_mem_alloc(&vm, BIG, &va);
	buf = va;
	check_iova = mvmm_mem_alloc(&vm, BIG, &va);
	check = va;
	list_iova = mvmm_mem_alloc(&vm, 4096, &va);
	list = va;
	ASSERT_NE(0, buf_iova);
	ASSERT_NE(0, check_iova);
	ASSERT_NE(0, list_iova);

	/* The VF itself takes it: the limit is really absent. */
	fill(buf, BIG, 1);
	ASSERT_EQ(0, big_rw(&vm, 0x01, buf_iova, list_iova, list));

	ASSERT_EQ(0, hbamig("switch %s emulated", bdf));
	mode_of(bdf, mode, sizeof(mode));
	ASSERT_STREQ("emulated", mode);
	fill(buf, BIG, 2);
	ASSERT_EQ(0, big_rw(&vm, 0x01, buf_iova, list_iova, list));
	memset(check, 0, BIG);
	ASSERT_EQ(0, big_rw(&vm, 0x02, check_iova, list_iova, list));
	ASSERT_EQ(0, memcmp(buf, check, BIG));
	/* A Flush names no blocks: the backend must not look for any. */
	memset(sqe, 0, sizeof(sqe));
	put32(sqe + 4, vm.nsid);
	EXPECT_EQ(0, mvmm_io_cmd(&vm, 0, sqe, 10000));
	/* Compare needs twice the bounce memory. */
	ASSERT_EQ(0, big_rw(&vm, 0x05, buf_iova, list_iova, list));
	buf[12345] ^= 1;
	ASSERT_EQ(0x285, big_rw(&vm, 0x05, buf_iova, list_iova, list));
	buf[12345] ^= 1;

	/* Back on the VF (a stop and continue), the data is the model's. */
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING, NULL));
	mode_of(bdf, mode, sizeof(mode));
	ASSERT_STREQ("direct", mode);
	memset(check, 0, BIG);
	ASSERT_EQ(0, big_rw(&vm, 0x02, check_iova, list_iova, list));
	ASSERT_EQ(0, memcmp(buf, check, BIG));
	EXPECT_EQ(0, vm.duplicates);
	MVMM_EXPECT_CQES_EXACT(&vm);
	mvmm_close(&vm);
}

/* A failed resume, then the uAPI's way out: a reset. It oopsed the host. */
TEST(failed_resume_then_reset)
{
	const char *bdf = env("EMUHBA_VF");
	uint8_t junk[4096];
	struct mvmm vm;
	int fd = -1;

	ASSERT_NE(NULL, bdf);
	ASSERT_EQ(0, mvmm_open(&vm, bdf, MEM));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RESUMING, &fd));
	ASSERT_LE(0, fd);
	/* A header that promises more than ever comes: a truncated image. */
	memset(junk, 0, sizeof(junk));
	memcpy(junk, "EMUHBAIM", 8);
	put32(junk + 16, 3000);
	EXPECT_EQ(64, write(fd, junk, 64));
	close(fd);
	EXPECT_NE(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_STOP, NULL));
	EXPECT_EQ(VFIO_DEVICE_STATE_ERROR, mvmm_get_mig_state(&vm));
	/* No arc leaves ERROR, and none may crash trying. */
	EXPECT_NE(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_STOP, NULL));
	EXPECT_NE(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, ioctl(vm.device, VFIO_DEVICE_RESET));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, mvmm_get_mig_state(&vm));

	/* Reset while RESUMING, with the session open. */
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RESUMING, &fd));
	ASSERT_EQ(0, ioctl(vm.device, VFIO_DEVICE_RESET));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, mvmm_get_mig_state(&vm));
	EXPECT_EQ(-1, write(fd, junk, 64));
	close(fd);

	ASSERT_EQ(0, mvmm_nvme_init(&vm, 2, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_io_run(&vm, 300, 8));
	expect_clean(_metadata, &vm);
	mvmm_close(&vm);
}

/*
 * STOP -> STOP_COPY with the controller never enabled started an emulation
 * thread nothing stopped; it outlived the device.
 */
TEST(no_thread_leak)
{
	const char *bdf = env("EMUHBA_VF");
	struct mvmm vm;
	int fd = -1, before = mvmm_emul_threads();
	uint8_t *stream = NULL;
	size_t len = 0;
	char mode[32];

	ASSERT_NE(NULL, bdf);
	ASSERT_LE(0, before);
	ASSERT_EQ(0, mvmm_open(&vm, bdf, MEM));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_STOP_COPY, &fd));
	EXPECT_EQ(0, mvmm_read_stream(fd, &stream, &len));
	EXPECT_LT(0, len);
	free(stream);
	close(fd);
	EXPECT_EQ(before, mvmm_emul_threads());	/* STOP_COPY: stopped */
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING, NULL));
	mode_of(bdf, mode, sizeof(mode));
	EXPECT_STREQ("direct", mode);
	EXPECT_EQ(before, mvmm_emul_threads());

	/* A cancelled pre-copy leaves the model running: one thread. */
	ASSERT_EQ(0, mvmm_nvme_init(&vm, 1, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	close(fd);
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(before + 1, mvmm_emul_threads());
	ASSERT_EQ(0, mvmm_io_run(&vm, 100, 4));
	expect_clean(_metadata, &vm);
	mvmm_close(&vm);
	EXPECT_EQ(before, mvmm_emul_threads());
}

/* The arcs a VMM with several devices uses; all of them, in order. */
TEST(p2p_arcs)
{
	const char *bdf = env("EMUHBA_VF");
	struct vfio_precopy_info info = { .argsz = sizeof(info) };
	struct pollfd pfd;
	struct mvmm vm;
	char mode[32];
	int fd = -1;

	ASSERT_NE(NULL, bdf);
	ASSERT_EQ(0, mvmm_open(&vm, bdf, MEM));
	ASSERT_EQ(0, mvmm_nvme_init(&vm, 2, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_io_run(&vm, 200, 8));
	/* RUNNING_P2P stops the VF: the model, which does no P2P, runs on. */
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	mode_of(bdf, mode, sizeof(mode));
	EXPECT_STREQ("emulated", mode);
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_PRE_COPY_P2P, &fd));
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &info));
	EXPECT_LT(0, info.initial_bytes);
	pfd.fd = fd;
	pfd.events = POLLIN;
	EXPECT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_TRUE(pfd.revents & POLLIN);
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_PRE_COPY, NULL));
	ASSERT_EQ(0, mvmm_io_run(&vm, 200, 8));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING, NULL));
	/* The session ended with the arc. */
	EXPECT_EQ(-1, ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &info));
	close(fd);
	ASSERT_EQ(0, mvmm_io_run(&vm, 200, 8));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING, NULL));
	mode_of(bdf, mode, sizeof(mode));
	EXPECT_STREQ("direct", mode);
	ASSERT_EQ(0, mvmm_io_run(&vm, 200, 8));
	expect_clean(_metadata, &vm);
	mvmm_close(&vm);
}

/*
 * A STOP_COPY that fails after the model was paused left it paused: the
 * guest's device hung in PRE_COPY_P2P. A guest makes the append fail on
 * its own: each time it turns shadow doorbells on or off during pre-copy,
 * a new stable image joins the stream, until the stream is at its bound.
 */
FIXTURE(stream) {
};

FIXTURE_SETUP(stream)
{
}

FIXTURE_TEARDOWN(stream)
{
}

/* About 9000 toggles of some 460 bytes each fill the 4 MiB stream. */
TEST_F_TIMEOUT(stream, stop_copy_fails_device_runs_on, 600)
{
	const char *bdf = env("EMUHBA_VF");
	struct vfio_precopy_info info = { .argsz = sizeof(info) };
	int fd = -1, toggles = 0, ret;
	struct mvmm vm;
	char mode[32];
	size_t mark;

	ASSERT_NE(NULL, bdf);
	ASSERT_EQ(0, mvmm_open(&vm, bdf, MEM));
	ret = mvmm_nvme_init(&vm, 1, MVMM_DB_SHADOW);
	MVMM_SKIP_IF_NO_DBBUF(ret, &vm);
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, mvmm_io_run(&vm, 100, 4));
	/* QEMU's arcs: PRE_COPY while the VM runs, then PRE_COPY_P2P. */
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	/* Never read: the stream only grows. */
	mark = vm.mem_used;
	while (toggles < 40000) {
		ASSERT_EQ(0, mvmm_nvme_disable(&vm));
		toggles++;
		/* A driver's re-initialisation reuses its memory. */
		vm.mem_used = mark;
		ASSERT_EQ(0, mvmm_nvme_init(&vm, 1, toggles % 2 ? MVMM_DB_MMIO :
								MVMM_DB_SHADOW));
		if (ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &info))
			break;
	}
	TH_LOG("%d toggles of shadow doorbells, %llu bytes of stable images; PRECOPY_INFO: %s",
	       toggles, (unsigned long long)info.dirty_bytes, strerror(errno));
	ASSERT_GT(40000, toggles) TH_LOG("the stream never reached its bound");
	/* Each re-initialisation's admin commands, and nothing else, ran. */
	MVMM_EXPECT_CQES_EXACT(&vm);
	ASSERT_EQ(0, mvmm_io_run(&vm, 100, 4));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL));
	EXPECT_NE(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	/* Still PRE_COPY_P2P: the guest's device runs on the model. */
	mode_of(bdf, mode, sizeof(mode));
	EXPECT_STREQ("emulated", mode);
	EXPECT_EQ(0, mvmm_io_run(&vm, 100, 4)) TH_LOG("the guest's device hung");
	close(fd);
	/* Cancelled as QEMU does, then back to the VF. */
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_PRE_COPY, NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(0, mvmm_io_run(&vm, 100, 4));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING, NULL));
	mode_of(bdf, mode, sizeof(mode));
	EXPECT_STREQ("direct", mode);
	EXPECT_EQ(0, mvmm_io_run(&vm, 100, 4));
	expect_clean(_metadata, &vm);
	mvmm_close(&vm);
}

/*
 * The saving fd held no reference on the adapter: used after the VF was
 * unbound, it read freed memory.
 */
TEST(mig_fd_outlives_adapter)
{
	const char *bdf = env("EMUHBA_VF");
	struct vfio_precopy_info info = { .argsz = sizeof(info) };
	struct pollfd pfd;
	struct mvmm vm;
	char buf[64], path[128];
	int fd = -1;
	FILE *f;

	ASSERT_NE(NULL, bdf);
	ASSERT_EQ(0, mvmm_open(&vm, bdf, MEM));
	ASSERT_EQ(0, mvmm_nvme_init(&vm, 1, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	MVMM_EXPECT_CQES_EXACT(&vm);
	mvmm_close(&vm);
	f = fopen("/sys/bus/pci/drivers/emuhba/unbind", "w");
	ASSERT_NE(NULL, f);
	fprintf(f, "%s", bdf);
	ASSERT_EQ(0, fclose(f));

	EXPECT_EQ(-1, ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &info));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-1, read(fd, buf, sizeof(buf)));
	pfd.fd = fd;
	pfd.events = POLLIN;
	EXPECT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_TRUE(pfd.revents & (POLLERR | POLLHUP));
	close(fd);

	/* driver_override still names emuhba: probe it again. */
	f = fopen("/sys/bus/pci/drivers_probe", "w");
	ASSERT_NE(NULL, f);
	fprintf(f, "%s", bdf);
	ASSERT_EQ(0, fclose(f));
	/* A new adapter: the suite's settings again. */
	snprintf(path, sizeof(path), "dev set %%s backend %s idle-after %s",
		 env("EMUHBA_BACKEND"), env("EMUHBA_IDLE_AFTER") ?: "0");
	ASSERT_EQ(0, hbamig(path, bdf));
}

/*
 * A guest FLR through config space bypasses the driver. In direct mode the
 * observer kept the admin queue of before; in emulated mode the model kept
 * DMAing into queues the guest had reset.
 */
TEST(flr_while_direct)
{
	const char *bdf = env("EMUHBA_VF");
	struct mvmm vm;
	char mode[32];
	int ret;

	ASSERT_NE(NULL, bdf);
	ASSERT_EQ(0, mvmm_open(&vm, bdf, MEM));
	ASSERT_EQ(0, mvmm_nvme_init(&vm, 2, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_io_run(&vm, 200, 8));
	ret = mvmm_flr(&vm);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "the VF does not advertise FLR");
	ASSERT_EQ(0, ret);
	/* CC reads 0 after the FLR: the driver enables straight away. */
	vm.no_disable_first = true;
	ASSERT_EQ(0, mvmm_nvme_init(&vm, 2, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_io_run(&vm, 200, 8));
	/* The observer follows the new admin queue: the switch works. */
	ASSERT_EQ(0, hbamig("switch %s emulated", bdf));
	mode_of(bdf, mode, sizeof(mode));
	EXPECT_STREQ("emulated", mode);
	ASSERT_EQ(0, mvmm_io_run(&vm, 200, 8));
	expect_clean(_metadata, &vm);
	mvmm_close(&vm);
}

TEST(flr_while_emulated)
{
	const char *bdf = env("EMUHBA_VF");
	uint8_t sqe[64] = { 0 }, cq_before[16 * 32];
	struct mvmm vm;
	struct mvmm_queue *q;
	char mode[32];
	int ret;

	ASSERT_NE(NULL, bdf);
	ASSERT_EQ(0, mvmm_open(&vm, bdf, MEM));
	ASSERT_EQ(0, mvmm_nvme_init(&vm, 1, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_io_run(&vm, 100, 8));
	ASSERT_EQ(0, hbamig("switch %s emulated", bdf));
	ret = mvmm_flr(&vm);
	if (ret == -EOPNOTSUPP)
		SKIP(return, "the VF does not advertise FLR");
	ASSERT_EQ(0, ret);
	mode_of(bdf, mode, sizeof(mode));
	EXPECT_STREQ("direct", mode);

	/* A command in the old queue must not be run by anyone. */
	q = &vm.ioq[0];
	memcpy(cq_before, q->cq, sizeof(cq_before));
	sqe[0] = 0x00;		/* Flush */
	put16(sqe + 2, 0x7777);
	put32(sqe + 4, vm.nsid);
	memcpy(q->sq + (size_t)q->sq_tail * 64, sqe, 64);
	q->sq_tail = (q->sq_tail + 1) % q->depth;
	if (vm.dbbuf)
		vm.dbs[2] = q->sq_tail;
	vm.db[2 << vm.dstrd] = q->sq_tail;
	usleep(300 * 1000);
	EXPECT_EQ(0, memcmp(cq_before, q->cq, sizeof(cq_before)));

	ASSERT_EQ(0, mvmm_nvme_init(&vm, 2, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_io_run(&vm, 200, 8));
	expect_clean(_metadata, &vm);
	mvmm_close(&vm);
}

/*
 * A destination that accepted the image but cannot open its backend: the
 * model had taken the registers while the adapter said "direct", and the
 * next tenant of the VF talked to the previous guest's model.
 */
TEST(resume_without_backend)
{
	const char *a_bdf = env("EMUHBA_VF"), *b_bdf = env("EMUHBA_VF_B");
	struct mvmm a, b;
	uint16_t a_cntlid;
	uint8_t *stream = NULL;
	char buf[64], args[300];
	size_t len = 0;
	int fd = -1;

	if (!b_bdf)
		SKIP(return, "EMUHBA_VF_B not set");
	ASSERT_EQ(0, mvmm_open(&a, a_bdf, MEM));
	ASSERT_EQ(0, mvmm_nvme_init(&a, 1, MVMM_DB_LINUX));
	a_cntlid = a.cntlid;
	ASSERT_EQ(0, mvmm_io_run(&a, 100, 8));
	/* One session: the pre-copy image, then the full one. */
	ASSERT_EQ(0, mvmm_set_mig_state(&a, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	ASSERT_EQ(0, mvmm_set_mig_state(&a, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	EXPECT_EQ(0, mvmm_read_stream(fd, &stream, &len));
	close(fd);
	ASSERT_NE(NULL, stream);
	ASSERT_LT(0, len);

	/* A block device node no driver serves: opening it fails. */
	unlink("/tmp/emuhba-nodev");
	ASSERT_EQ(0, mknod("/tmp/emuhba-nodev", S_IFBLK | 0600, makedev(240, 250)));
	ASSERT_EQ(0, hbamig("dev set %s backend /tmp/emuhba-nodev", b_bdf));
	ASSERT_EQ(0, mvmm_open(&b, b_bdf, MEM));
	ASSERT_EQ(0, mvmm_set_mig_state(&b, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(&b, VFIO_DEVICE_STATE_RESUMING, &fd));
	EXPECT_EQ((ssize_t)len, write(fd, stream, len));
	close(fd);
	free(stream);
	EXPECT_NE(0, mvmm_set_mig_state(&b, VFIO_DEVICE_STATE_STOP, NULL));
	EXPECT_EQ(VFIO_DEVICE_STATE_ERROR, mvmm_get_mig_state(&b));
	mode_of(b_bdf, buf, sizeof(buf));
	EXPECT_STREQ("direct", buf);
	ASSERT_EQ(0, ioctl(b.device, VFIO_DEVICE_RESET));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, mvmm_get_mig_state(&b));
	/* The VF answers with its own identity, not the previous guest's. */
	ASSERT_EQ(0, mvmm_attr(b_bdf, "emuhba/identity", buf, sizeof(buf)));
	EXPECT_EQ(0, strncmp(buf, "own", 3));
	ASSERT_EQ(0, mvmm_nvme_init(&b, 1, MVMM_DB_LINUX));
	EXPECT_NE(a_cntlid, b.cntlid);
	/* A and B share the namespace: B writes where A does not. */
	b.lba_base = 4096;
	ASSERT_EQ(0, mvmm_io_run(&b, 100, 8));
	expect_clean(_metadata, &b);
	mvmm_close(&b);
	snprintf(args, sizeof(args), "dev set %%s backend %s", env("EMUHBA_BACKEND"));
	EXPECT_EQ(0, hbamig(args, b_bdf));
	unlink("/tmp/emuhba-nodev");

	/* The source, stopped after STOP_COPY, resumes on its own VF. */
	ASSERT_EQ(0, mvmm_set_mig_state(&a, VFIO_DEVICE_STATE_RUNNING, NULL));
	mode_of(a_bdf, buf, sizeof(buf));
	EXPECT_STREQ("direct", buf);
	ASSERT_EQ(0, mvmm_io_run(&a, 200, 8));
	expect_clean(_metadata, &a);
	mvmm_close(&a);
}

struct forger {
	struct mvmm *vm;
	volatile bool stop;
};

/*
 * Keep the whole admin ring full of self-consistent forged completions
 * (each names a Get Features the guest "submitted" in the slot before),
 * flipping the phase every lap: an observer that read without a bound, or
 * requeued itself, would follow them for as long as this runs.
 */
static void *forge(void *arg)
{
	struct forger *fg = arg;
	struct mvmm_queue *q = &fg->vm->admin;
	unsigned int lap = 0, i;

	while (!fg->stop) {
		for (i = 0; i < q->depth; i++) {
			uint8_t *sqe = q->sq + (size_t)i * 64;
			uint8_t *cqe = q->cq + (size_t)i * 16;

			memset(sqe, 0, 64);
			sqe[0] = 0x0a;
			put16(sqe + 2, 0x6000 + i);
			put32(sqe + 40, 0x07);
			memset(cqe, 0, 14);
			put16(cqe + 8, (i + 1) % q->depth);
			put16(cqe + 12, 0x6000 + i);
			__atomic_store_n((uint16_t *)(cqe + 14),
					 (uint16_t)((lap ^ q->phase) & 1),
					 __ATOMIC_RELEASE);
		}
		lap++;
		usleep(200);
	}
	return NULL;
}

/*
 * A VMM that writes doorbells through the region (pwrite) instead of the
 * mapping, as QEMU does when it cannot mmap: in emulated mode those writes
 * must reach the model, not the stopped VF.
 */
TEST(region_doorbells)
{
	const char *bdf = env("EMUHBA_VF");
	long long before, after;
	struct mvmm vm;
	char mode[32];

	ASSERT_NE(NULL, bdf);
	ASSERT_EQ(0, mvmm_open(&vm, bdf, MEM));
	ASSERT_EQ(0, mvmm_nvme_init(&vm, 2, MVMM_DB_LINUX));
	vm.db_pwrite = true;
	ASSERT_EQ(0, mvmm_io_run(&vm, 100, 8));
	ASSERT_EQ(0, hbamig("switch %s emulated", bdf));
	mode_of(bdf, mode, sizeof(mode));
	ASSERT_STREQ("emulated", mode);
	before = mvmm_attr_ll(bdf, "emuhba/emulated_cmds");
	ASSERT_EQ(0, mvmm_io_run(&vm, 200, 8));
	after = mvmm_attr_ll(bdf, "emuhba/emulated_cmds");
	EXPECT_LE(200, after - before);
	expect_clean(_metadata, &vm);
	mvmm_close(&vm);
}

TEST(forged_admin_completions)
{
	const char *bdf = env("EMUHBA_VF");
	struct forger fg = { 0 };
	long long before, after;
	uint8_t sqe[64] = { 0 };
	struct mvmm vm;
	char obs[32];
	pthread_t t;

	ASSERT_NE(NULL, bdf);
	ASSERT_EQ(0, mvmm_open(&vm, bdf, MEM));
	ASSERT_EQ(0, mvmm_nvme_init(&vm, 1, MVMM_DB_LINUX));
	fg.vm = &vm;
	before = mvmm_attr_ll(bdf, "emuhba/admin_observed");
	ASSERT_LE(0, before);
	ASSERT_EQ(0, pthread_create(&t, NULL, forge, &fg));
	/*
	 * One real admin command, never reaped: its one interrupt wakes the
	 * observer, which must stop after a queue's worth (a guest that
	 * writes CQ head doorbells makes more interrupts, and each allows
	 * another queue's worth, no more).
	 */
	sqe[0] = 0x0a;
	put32(sqe + 40, 0x07);
	mvmm_admin_submit(&vm, sqe);
	usleep(1000 * 1000);
	fg.stop = true;
	pthread_join(t, NULL);
	after = mvmm_attr_ll(bdf, "emuhba/admin_observed");
	/*
	 * At most one queue's worth for the one interrupt, however long
	 * (the forger may also have overwritten the real completion).
	 */
	EXPECT_GE(before + vm.admin.depth, after);
	ASSERT_EQ(0, mvmm_attr(bdf, "emuhba/observer", obs, sizeof(obs)));
	TH_LOG("admin_observed %lld -> %lld, observer %s", before, after, obs);
	/* The guest confused only itself: after a controller reset all works. */
	ASSERT_EQ(0, mvmm_nvme_init(&vm, 1, MVMM_DB_LINUX));
	ASSERT_EQ(0, hbamig("switch %s emulated", bdf));
	ASSERT_EQ(0, mvmm_io_run(&vm, 200, 8));
	expect_clean(_metadata, &vm);
	mvmm_close(&vm);
	(void)get16;
}

TEST_HARNESS_MAIN
