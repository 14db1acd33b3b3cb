// SPDX-License-Identifier: GPL-2.0-only
/*
 * One measurement for bench/vfio-io: bring the VF up through VFIO as a
 * Linux guest's driver would (selftests/kmod/minivmm.c) and run random
 * 4 KiB reads, busy-polling, at the given queue depth per queue.
 *
 * Usage: vfio_io BDF QD MS [switch|roundtrip HBAMIG]
 *   prints "iops=N traps_per_io=X"; with "switch", the adapter is switched
 *   to emulated mode first; with "roundtrip", it is switched to emulated,
 *   measured, then paused and resumed through the VFIO migration states as
 *   QEMU's stop and cont do (the way back to direct mode), and measured
 *   again: "iops=N iops_after=M".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/vfio.h>

#include "minivmm.h"

int main(int argc, char **argv)
{
	long long traps0, traps1;
	struct mvmm vm;
	uint64_t ios = 0;
	int qd, ms, ret;
	char cmd[256];

	if (argc < 4) {
		fprintf(stderr, "usage: %s BDF QD MS [switch|roundtrip HBAMIG]\n",
			argv[0]);
		return 2;
	}
	qd = atoi(argv[2]);
	ms = atoi(argv[3]);
	ret = mvmm_open(&vm, argv[1], 16 << 20);
	if (!ret)
		ret = mvmm_nvme_init(&vm, 4, true);
	if (ret) {
		fprintf(stderr, "vfio_io: %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	/* Warm up: every LBA read once, so no read finds an unwritten one. */
	if (mvmm_io_run(&vm, 200, qd)) {
		fprintf(stderr, "vfio_io: warm-up failed\n");
		return 1;
	}
	if (argc > 5 && (!strcmp(argv[4], "switch") ||
			 !strcmp(argv[4], "roundtrip"))) {
		snprintf(cmd, sizeof(cmd), "%s switch %s emulated >/dev/null",
			 argv[5], argv[1]);
		if (system(cmd)) {
			fprintf(stderr, "vfio_io: switch failed\n");
			return 1;
		}
	}
	traps0 = mvmm_attr_ll(argv[1], "emuhba/reg_traps");
	ret = mvmm_bench_reads(&vm, qd, ms, &ios);
	traps1 = mvmm_attr_ll(argv[1], "emuhba/reg_traps");
	if (ret) {
		fprintf(stderr, "vfio_io: run failed (%d, %llu errors)\n", ret,
			(unsigned long long)vm.errors);
		return 1;
	}
	printf("iops=%llu", (unsigned long long)(ios * 1000 / ms));
	if (traps0 >= 0)
		printf(" traps_per_io=%.4f", ios ? (double)(traps1 - traps0) / ios : 0);
	if (argc > 5 && !strcmp(argv[4], "roundtrip")) {
		ret = mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_STOP, NULL);
		if (!ret)
			ret = mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING,
						 NULL);
		ios = 0;
		if (!ret)
			ret = mvmm_bench_reads(&vm, qd, ms, &ios);
		if (ret || vm.errors) {
			fprintf(stderr, "vfio_io: after the pause: %d, %llu errors\n",
				ret, (unsigned long long)vm.errors);
			return 1;
		}
		printf(" iops_after=%llu", (unsigned long long)(ios * 1000 / ms));
	}
	printf("\n");
	mvmm_close(&vm);
	return 0;
}
