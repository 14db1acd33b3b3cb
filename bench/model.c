// SPDX-License-Identifier: GPL-2.0-only
/*
 * emuhba model benchmark: state image size for 64 queue pairs of 1024
 * entries, image export/import time, and commands per second for 4 KiB
 * reads against the in-memory backend on one core. Prints name=value.
 */
#include <time.h>
#include "emu_test_lib.h"

static u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000000ULL + (u64)ts.tv_nsec;
}

/* 64 queue pairs exceed the test driver's table: create them directly. */
static int create_64(struct th *th, struct drv *d)
{
	u8 sqe[64];
	u32 q;

	for (q = 5; q <= 64; q++) {
		drv_sqe(sqe, 0x05, 0);
		drv_set_prp(sqe, th_alloc(th, 16 * 1024, 4096), 0);
		drv_set_dw(sqe, 10, (1023U << 16) | q);
		drv_set_dw(sqe, 11, (q << 16) | 3);
		if (drv_admin(d, sqe, NULL))
			return -1;
		drv_sqe(sqe, 0x01, 0);
		drv_set_prp(sqe, th_alloc(th, 64 * 1024, 4096), 0);
		drv_set_dw(sqe, 10, (1023U << 16) | q);
		drv_set_dw(sqe, 11, (q << 16) | 1);
		if (drv_admin(d, sqe, NULL))
			return -1;
	}
	return 0;
}

static int setup(struct th *th, struct drv *d, int nq, u16 qsize)
{
	th_init(th, 1);
	th_new_ctrl(th);
	th_load_identity(th, 12, 1024, 64);
	/* 64 I/O queues need 65 vectors: the identity says so. */
	emu_nvme_set_hw(th->ctrl, emu_nvme_state(th->ctrl)->id.cap, 0x10400,
			65, 64, 64);
	emu_nvme_start_disabled(th->ctrl);
	memset(d, 0, sizeof(*d));
	d->th = th;
	if (drv_enable(d, 32))
		return -1;
	return drv_bringup(d, nq, qsize, 1, 1);
}

int main(void)
{
	static u8 img[1 << 17];
	static struct th th;
	static struct drv d;
	u64 t0, t1, n = 0, iters = 0;
	int len, i, q, r;
	char err[128];
	u8 sqe[64];
	u64 buf;

	if (setup(&th, &d, 4, 1024) || create_64(&th, &d)) {
		fprintf(stderr, "bring-up with 64 queue pairs failed\n");
		return 1;
	}
	len = emu_img_export(th.ctrl, img, sizeof(img), 0);
	printf("state_image_bytes_64qp=%d\n", len);
	t0 = now_ns();
	for (i = 0; i < 1000; i++)
		emu_img_export(th.ctrl, img, sizeof(img), 0);
	t1 = now_ns();
	printf("image_export_ns_64qp=%llu\n",
	       (unsigned long long)((t1 - t0) / 1000));
	t0 = now_ns();
	for (i = 0; i < 1000; i++)
		if (emu_img_import(th.ctrl, img, (size_t)len, err,
				   sizeof(err))) {
			fprintf(stderr, "import: %s\n", err);
			return 1;
		}
	t1 = now_ns();
	printf("image_import_ns_64qp=%llu\n",
	       (unsigned long long)((t1 - t0) / 1000));
	len = emu_img_export_stable(th.ctrl, img, sizeof(img));
	printf("stable_image_bytes=%d\n", len);
	printf("model_ctrl_bytes=%zu\n", emu_nvme_ctrl_size());
	th_fini(&th);

	/* 4 KiB reads, 4 queues of 256, synchronous memory backend. */
	if (setup(&th, &d, 4, 256))
		return 1;
	th.sync = 1;
	buf = th_alloc(&th, 4096, 4096);
	t0 = now_ns();
	do {
		for (q = 1; q <= 4; q++) {
			for (r = 0; r < 128; r++) {
				drv_sqe(sqe, 0x02, 1);
				drv_set_dw(sqe, 10, (u32)(r * 7 % TH_NS_BLOCKS));
				drv_set_prp(sqe, buf, 0);
				if (drv_submit(&d, (u16)q, sqe) < 0)
					break;
			}
		}
		while (emu_nvme_poll(th.ctrl, 1024) > 0)
			;
		for (q = 1; q <= 4; q++)
			n += (u64)drv_reap(&d, (u16)q);
		iters++;
		t1 = now_ns();
	} while (t1 - t0 < 2000000000ULL);
	if (d.errors) {
		fprintf(stderr, "completion check failed: %s\n", d.why);
		return 1;
	}
	printf("model_cmds_per_sec=%llu\n",
	       (unsigned long long)(n * 1000000000ULL / (t1 - t0)));
	printf("model_ns_per_cmd=%llu\n",
	       (unsigned long long)((t1 - t0) / (n ? n : 1)));
	th_fini(&th);
	return 0;
}
