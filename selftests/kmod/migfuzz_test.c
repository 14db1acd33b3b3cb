// SPDX-License-Identifier: GPL-2.0-only
/*
 * A VFIO user that does everything in the wrong order: random migration
 * arcs (every state the uAPI defines, and numbers it does not), device
 * resets, FLR, closing and reopening the device, random, truncated and
 * corrupted stream bytes, reads of ended sessions, switches requested over
 * netlink, and the guest memory unmapped under a switch. Nothing it does
 * may oops, WARN, leak a thread or leave the VF unusable: afterwards a
 * fresh user gets a working VF in direct mode (the suite also checks the
 * kernel log and that the module unloads).
 *
 * Usage: migfuzz_test  (EMUHBA_VF bound to emuhba with a backend, HBAMIG;
 *                       EMUHBA_FUZZ_STEPS, default 4000; EMUHBA_SEED to
 *                       replay a run, whose seed is printed)
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "minivmm.h"

#define MEM	(16u << 20)

static unsigned int seed;

static unsigned int rnd(unsigned int n)
{
	seed = seed * 1103515245u + 12345u;
	return (seed >> 8) % n;
}

struct fuzz {
	struct mvmm vm;
	bool open, inited;
	int save_fd, resume_fd;
	uint8_t *stream;	/* the last stream read from a saving fd */
	size_t stream_len;
	unsigned long actions[16];
};

static void close_fds(struct fuzz *f)
{
	if (f->save_fd >= 0)
		close(f->save_fd);
	if (f->resume_fd >= 0)
		close(f->resume_fd);
	f->save_fd = f->resume_fd = -1;
}

static void dev_open(struct fuzz *f, const char *bdf)
{
	if (f->open)
		return;
	if (mvmm_open(&f->vm, bdf, MEM)) {
		mvmm_close(&f->vm);
		return;
	}
	f->open = true;
	f->inited = false;
}

static void dev_close(struct fuzz *f)
{
	if (!f->open)
		return;
	mvmm_close(&f->vm);
	f->open = false;
	f->inited = false;
}

static void read_save(struct fuzz *f)
{
	if (f->save_fd < 0)
		return;
	f->stream_len = 0;
	mvmm_read_stream(f->save_fd, &f->stream, &f->stream_len);
}

/* Bytes for a resuming session: a real stream, altered, or noise. */
static void write_resume(struct fuzz *f)
{
	uint8_t noise[512];
	size_t len, i;

	if (f->resume_fd < 0)
		return;
	if (f->stream_len && rnd(3)) {
		uint8_t *s = malloc(f->stream_len);

		if (!s)
			return;
		memcpy(s, f->stream, f->stream_len);
		len = f->stream_len;
		switch (rnd(4)) {
		case 0:
			len = rnd(len + 1);		/* truncated */
			break;
		case 1:
			for (i = 0; i < 1 + rnd(8); i++)
				s[rnd(len)] ^= 1 << rnd(8);
			break;
		case 2:
			break;				/* as it was */
		default:
			len = rnd(len + 1);
			s[rnd(len + 1) % (len ? len : 1)] ^= 0xff;
		}
		if (write(f->resume_fd, s, len) < 0)
			f->actions[15]++;
		free(s);
		return;
	}
	for (i = 0; i < sizeof(noise); i++)
		noise[i] = rnd(256);
	len = rnd(sizeof(noise) + 1);
	if (write(f->resume_fd, noise, len) < 0)
		f->actions[15]++;
}

static void hbamig_switch(const char *bdf)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "%s switch %s emulated >/dev/null 2>&1",
		 getenv("HBAMIG"), bdf);
	if (system(cmd) < 0)
		return;
}

struct unmapper {
	struct mvmm *vm;
	volatile bool stop;
	unsigned long rounds;
};

/* The guest's memory taken away and given back, over and over. */
static void *unmap_loop(void *arg)
{
	struct unmapper *u = arg;
	struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un) };
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map) };

	while (!u->stop) {
		un.iova = u->vm->mem_iova;
		un.size = u->vm->mem_size;
		ioctl(u->vm->container, VFIO_IOMMU_UNMAP_DMA, &un);
		map.vaddr = (uintptr_t)u->vm->mem;
		map.iova = u->vm->mem_iova;
		map.size = u->vm->mem_size;
		map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
		ioctl(u->vm->container, VFIO_IOMMU_MAP_DMA, &map);
		u->rounds++;
		usleep(rnd(500));
	}
	return NULL;
}

static void switch_under_unmap(struct fuzz *f, const char *bdf)
{
	struct unmapper u = { .vm = &f->vm };
	pthread_t t;

	if (pthread_create(&t, NULL, unmap_loop, &u))
		return;
	hbamig_switch(bdf);
	u.stop = true;
	pthread_join(t, NULL);
}

static void step(struct fuzz *f, const char *bdf)
{
	struct vfio_precopy_info info = { .argsz = sizeof(info) };
	unsigned int a = rnd(24);
	int fd = -1;

	/* About half of all steps are arcs. */
	if (a >= 16)
		a = 0;

	f->actions[a]++;
	if (!f->open && a != 3) {
		dev_open(f, bdf);
		return;
	}
	switch (a) {
	case 0: case 1: case 2: case 4: case 5:
		/* An arc, to a defined state or a made-up one. */
		if (mvmm_set_mig_state(&f->vm, rnd(12) ? rnd(9) : rnd(1000), &fd))
			break;
		if (fd < 0)
			break;
		close_fds(f);
		{
			struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };

			poll(&p, 1, 0);
			if (p.revents & POLLOUT)
				f->resume_fd = fd;
			else
				f->save_fd = fd;
		}
		break;
	case 3:
		if (f->open)
			dev_close(f);
		else
			dev_open(f, bdf);
		break;
	case 6:
		ioctl(f->vm.device, VFIO_DEVICE_RESET);
		f->inited = false;
		break;
	case 7:
		mvmm_flr(&f->vm);
		f->inited = false;
		break;
	case 8:
		read_save(f);
		break;
	case 9:
		write_resume(f);
		break;
	case 10:
		if (f->save_fd >= 0)
			ioctl(f->save_fd, VFIO_MIG_GET_PRECOPY_INFO, &info);
		if (rnd(2))
			close_fds(f);
		break;
	case 11:
		/* A guest bringing its controller up (its vCPUs run). */
		if (mvmm_get_mig_state(&f->vm) == VFIO_DEVICE_STATE_RUNNING)
			f->inited = !mvmm_nvme_init(&f->vm, 1 + rnd(2), rnd(4) ?
						    MVMM_DB_LINUX : MVMM_DB_MMIO);
		break;
	case 12:
		/* Only where a guest's I/O can complete at all. */
		if (f->inited && mvmm_get_mig_state(&f->vm) == VFIO_DEVICE_STATE_RUNNING &&
		    mvmm_io_run(&f->vm, 20 + rnd(50), 1 + rnd(8)))
			f->inited = false;
		break;
	case 13:
		hbamig_switch(bdf);
		break;
	case 14:
		switch_under_unmap(f, bdf);
		break;
	default:
		mvmm_nvme_disable(&f->vm);
		f->inited = false;
	}
}

FIXTURE(fuzz) {
	int unused;
};

FIXTURE_SETUP(fuzz) { }
FIXTURE_TEARDOWN(fuzz) { }

TEST_F_TIMEOUT(fuzz, random_misuse_then_fresh_user, 1500)
{
	const char *bdf = getenv("EMUHBA_VF");
	const char *s = getenv("EMUHBA_SEED");
	const char *n = getenv("EMUHBA_FUZZ_STEPS");
	unsigned long steps = n ? strtoul(n, NULL, 0) : 4000, i;
	struct fuzz f = { .save_fd = -1, .resume_fd = -1 };
	struct mvmm vm;
	char mode[32];

	ASSERT_NE(NULL, bdf);
	seed = s && *s ? strtoul(s, NULL, 0) : (unsigned int)time(NULL) ^ getpid();
	TH_LOG("seed %u (EMUHBA_SEED=%u replays), %lu steps", seed, seed, steps);
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < steps; i++)
		step(&f, bdf);
	close_fds(&f);
	dev_close(&f);
	free(f.stream);
	TH_LOG("actions: arcs %lu, open/close %lu, resets %lu, FLRs %lu, reads %lu, writes %lu, inits %lu, I/O %lu, switches %lu, switches under unmap %lu, failed writes %lu",
	       f.actions[0] + f.actions[1] + f.actions[2] + f.actions[4] +
	       f.actions[5], f.actions[3], f.actions[6], f.actions[7],
	       f.actions[8], f.actions[9], f.actions[11], f.actions[12],
	       f.actions[13], f.actions[14], f.actions[15]);

	/* Nothing of it is left. */
	EXPECT_EQ(0, mvmm_emul_threads());
	ASSERT_EQ(0, mvmm_open(&vm, bdf, MEM));
	ASSERT_EQ(0, mvmm_attr(bdf, "emuhba/mode", mode, sizeof(mode)));
	EXPECT_EQ(0, strncmp(mode, "direct", 6));
	ASSERT_EQ(0, mvmm_nvme_init(&vm, 2, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_io_run(&vm, 300, 8));
	EXPECT_EQ(0, vm.mismatches);
	EXPECT_EQ(0, vm.errors);
	EXPECT_EQ(0, vm.duplicates);
	/* And it still migrates: a stop and continue round trip. */
	hbamig_switch(bdf);
	ASSERT_EQ(0, mvmm_attr(bdf, "emuhba/mode", mode, sizeof(mode)));
	EXPECT_EQ(0, strncmp(mode, "emulated", 8));
	ASSERT_EQ(0, mvmm_io_run(&vm, 200, 8));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, mvmm_attr(bdf, "emuhba/mode", mode, sizeof(mode)));
	EXPECT_EQ(0, strncmp(mode, "direct", 6));
	ASSERT_EQ(0, mvmm_io_run(&vm, 200, 8));
	EXPECT_EQ(0, vm.mismatches);
	EXPECT_EQ(0, vm.errors);
	MVMM_EXPECT_READ_BACK(&vm);
	mvmm_close(&vm);
	EXPECT_EQ(0, mvmm_emul_threads());
}

TEST_HARNESS_MAIN
