// SPDX-License-Identifier: GPL-2.0-only
/*
 * One measurement for bench/vfio-io: bring the VF up through VFIO as a
 * Linux guest's driver would (selftests/kmod/minivmm.c) and run random
 * 4 KiB reads at the given queue depth per queue.
 *
 * Usage: vfio_io [-m irq|poll] [-d on|off] BDF QD MS [switch|roundtrip HBAMIG]
 *   -m irq (default): completions are taken when the queue's MSI-X vector
 *   fires, the thread sleeping in poll() on the eventfds meanwhile, as a
 *   guest's interrupt-driven driver does; -m poll: the completion queues
 *   are busy-polled, as with a guest's polled queues. -d off: the guest
 *   does not configure shadow doorbells (as on a VF that lacks them): it
 *   rings MMIO doorbells only, and a switch takes the positions from the
 *   doorbell writes it catches.
 *   Prints "mode=M iops=N traps_per_io=X irqs_per_io=Y stalls=S"; with
 *   "switch", the adapter is switched to emulated mode first; with
 *   "roundtrip", it is switched to emulated, measured, then paused and
 *   resumed through the VFIO migration states as QEMU's stop and cont do
 *   (the way back to direct mode), and measured again: "iops_after=M".
 *   stalls counts waits of a second that ended with a completion in a CQ
 *   but no interrupt: a lost interrupt, 0 in a correct device.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "minivmm.h"

static void bad_args(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-m irq|poll] [-d on|off] BDF QD MS [switch|roundtrip HBAMIG]\n",
		prog);
	exit(2);
}

int main(int argc, char **argv)
{
	struct mvmm_bench b = { .irq = true };
	long long traps0, traps1, win0 = 0, win1 = 0;
	bool dbbuf = true;
	const char *bdf, *how = NULL, *hbamig = NULL;
	struct mvmm vm;
	int qd, ms, ret, opt;
	uint64_t stalls;

	while ((opt = getopt(argc, argv, "m:d:")) != -1) {
		if (opt == 'd' && (!strcmp(optarg, "on") || !strcmp(optarg, "off")))
			dbbuf = !strcmp(optarg, "on");
		else if (opt == 'm' && !strcmp(optarg, "irq"))
			b.irq = true;
		else if (opt == 'm' && !strcmp(optarg, "poll"))
			b.irq = false;
		else
			bad_args(argv[0]);
	}
	if (argc - optind != 3 && argc - optind != 5)
		bad_args(argv[0]);
	bdf = argv[optind];
	qd = atoi(argv[optind + 1]);
	ms = atoi(argv[optind + 2]);
	if (argc - optind == 5) {
		how = argv[optind + 3];
		hbamig = argv[optind + 4];
		if (strcmp(how, "switch") && strcmp(how, "roundtrip"))
			bad_args(argv[0]);
	}
	if (qd < 1 || ms < 1)
		bad_args(argv[0]);

	ret = mvmm_open(&vm, bdf, 16 << 20);
	if (!ret)
		ret = mvmm_nvme_init(&vm, 4, dbbuf ? MVMM_DB_LINUX : MVMM_DB_MMIO);
	if (ret) {
		fprintf(stderr, "vfio_io: %s: %s\n", bdf, strerror(-ret));
		return 1;
	}
	/* Warm up: every LBA read once, so no read finds an unwritten one. */
	if (mvmm_io_run(&vm, 200, qd)) {
		fprintf(stderr, "vfio_io: warm-up failed\n");
		return 1;
	}
	if (how) {
		char *sw[] = { (char *)hbamig, "switch", (char *)bdf,
			       "emulated", NULL };

		win0 = mvmm_attr_ll(bdf, "emuhba/window_doorbells");
		ret = mvmm_exec_during_io(&vm, qd, true, sw);
		win1 = mvmm_attr_ll(bdf, "emuhba/window_doorbells");
		if (ret || vm.errors) {
			fprintf(stderr, "vfio_io: switch failed (%d, %llu errors)\n",
				ret, (unsigned long long)vm.errors);
			return 1;
		}
	}
	traps0 = mvmm_attr_ll(bdf, "emuhba/reg_traps");
	ret = mvmm_bench_reads(&vm, qd, ms, &b);
	traps1 = mvmm_attr_ll(bdf, "emuhba/reg_traps");
	if (ret) {
		fprintf(stderr, "vfio_io: run failed (%d, %llu errors)\n", ret,
			(unsigned long long)vm.errors);
		return 1;
	}
	stalls = b.stalls;
	printf("mode=%s iops=%llu", b.irq ? "irq" : "poll",
	       (unsigned long long)(b.ios * 1000 / ms));
	if (traps0 >= 0)
		printf(" traps_per_io=%.4f",
		       b.ios ? (double)(traps1 - traps0) / b.ios : 0);
	if (how && win0 >= 0 && win1 >= 0)
		printf(" window_traps=%lld", win1 - win0);
	if (b.irq)
		printf(" irqs_per_io=%.4f",
		       b.ios ? (double)b.irqs / b.ios : 0);
	if (how && !strcmp(how, "roundtrip")) {
		ret = mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_STOP, NULL);
		if (!ret)
			ret = mvmm_set_mig_state(&vm, VFIO_DEVICE_STATE_RUNNING,
						 NULL);
		if (!ret)
			ret = mvmm_bench_reads(&vm, qd, ms, &b);
		if (ret || vm.errors) {
			fprintf(stderr, "vfio_io: after the pause: %d, %llu errors\n",
				ret, (unsigned long long)vm.errors);
			return 1;
		}
		stalls += b.stalls;
		printf(" iops_after=%llu",
		       (unsigned long long)(b.ios * 1000 / ms));
	}
	printf(" stalls=%llu\n", (unsigned long long)stalls);
	mvmm_close(&vm);
	return 0;
}
