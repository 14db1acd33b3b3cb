// SPDX-License-Identifier: GPL-2.0-only
/*
 * hbamig migrate's exit 9: the migration completed, but the destination
 * adapter did not return to direct mode. Two mini-VMMs (selftests/kmod)
 * stand in for the QEMUs: one runs a guest on EMUHBA_VF_SRC, the adapter
 * hbamig switches; the other migrates a guest from EMUHBA_VF_GUEST to
 * EMUHBA_VF_DST and, while the destination is loaded but not yet resumed
 * (VFIO STOP, hence emulated), runs
 *
 *   hbamig -j migrate --qmp EMUHBA_QMP --to ... --dev SRC --dest-dev DST
 *
 * against a scripted QMP monitor that reports the migration completed.
 * hbamig must wait for DST to return to direct, give up, say why on
 * stderr, report "dest_mode": "emulated" and exit 9. The guest is then
 * resumed on DST and must go on running there.
 *
 * Usage: exit9_test  (EMUHBA_HBAMIG, EMUHBA_QMP, EMUHBA_OUT, and the VFs
 *                     above bound to emuhba with a backend)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "minivmm.h"

static int hbamig_status = -1;
static char out_json[256], out_err[256];

static int run_hbamig(void)
{
	const char *h = getenv("EMUHBA_HBAMIG"), *qmp = getenv("EMUHBA_QMP");
	const char *src = getenv("EMUHBA_VF_SRC"), *dst = getenv("EMUHBA_VF_DST");
	int st, fo, fe;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		fo = open(out_json, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		fe = open(out_err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
			_exit(127);
		execl(h, h, "-j", "migrate", "--qmp", qmp, "--to",
		      "unix:/nonexistent/exit9.sock", "--dev", src,
		      "--dest-dev", dst, "--timeout", "60", (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) != pid)
		return -errno;
	hbamig_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
}

/*
 * The destination is loaded (RESUMING -> STOP) and not resumed: its VMM
 * has not run the guest yet. hbamig runs now.
 */
static int resume_stop_then_hbamig(struct mvmm *vm, struct mvmm *dst)
{
	int ret = mvmm_set_mig_state(dst, VFIO_DEVICE_STATE_STOP, NULL);

	(void)vm;
	return ret ? ret : run_hbamig();
}

static int grep_file(const char *path, const char *needle)
{
	static char buf[16384];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return !!strstr(buf, needle);
}

TEST(migrate_exit_9_destination_stays_emulated)
{
	const char *out = getenv("EMUHBA_OUT") ?: "/tmp";
	const char *guest = getenv("EMUHBA_VF_GUEST");
	const char *src = getenv("EMUHBA_VF_SRC");
	const char *dst = getenv("EMUHBA_VF_DST");
	static struct mvmm a, b;
	struct mvmm_mig_stats st;
	char want[128];
	int ret;

	ASSERT_TRUE(guest && src && dst && getenv("EMUHBA_HBAMIG") &&
		    getenv("EMUHBA_QMP"))
		TH_LOG("EMUHBA_VF_GUEST, _SRC, _DST, EMUHBA_HBAMIG, EMUHBA_QMP");
	snprintf(out_json, sizeof(out_json), "%s/exit9.json", out);
	snprintf(out_err, sizeof(out_err), "%s/exit9.err", out);

	/*
	 * Shadow doorbells give the switches the guest's queue positions
	 * while it is idle. The VM hbamig migrates: direct and open.
	 */
	ret = mvmm_open(&b, src, 64 << 20);
	ASSERT_EQ(0, ret) TH_LOG("open %s: %s", src, strerror(-ret));
	ASSERT_EQ(0, mvmm_nvme_init(&b, 1, MVMM_DB_SHADOW));
	ASSERT_EQ(0, mvmm_io_run(&b, 50, 4));

	/* The destination's guest, migrated in but not resumed. */
	ret = mvmm_open(&a, guest, 64 << 20);
	ASSERT_EQ(0, ret) TH_LOG("open %s: %s", guest, strerror(-ret));
	ASSERT_EQ(0, mvmm_nvme_init(&a, 1, MVMM_DB_SHADOW));
	ASSERT_EQ(0, mvmm_io_run(&a, 50, 4));
	a.resume_stop = resume_stop_then_hbamig;
	ret = mvmm_migrate(&a, dst, &st);
	ASSERT_EQ(0, ret) TH_LOG("migrate %s -> %s: %s", guest, dst,
				 strerror(-ret));

	EXPECT_EQ(9, hbamig_status);
	snprintf(want, sizeof(want), "destination adapter %s is in emulated mode, not direct",
		 dst);
	EXPECT_TRUE(grep_file(out_err, want))
		TH_LOG("stderr (%s) lacks \"%s\"", out_err, want);
	EXPECT_TRUE(grep_file(out_json, "\"dest_mode\":\"emulated\"") ||
		    grep_file(out_json, "\"dest_mode\": \"emulated\""))
		TH_LOG("report (%s) does not give dest_mode emulated", out_json);

	/* hbamig did ask QEMU to migrate: the 9 is about the destination. */
	if (getenv("EMUHBA_QMP_LOG"))
		EXPECT_TRUE(grep_file(getenv("EMUHBA_QMP_LOG"), "\nmigrate\n"))
			TH_LOG("hbamig never sent migrate (%s)",
			       getenv("EMUHBA_QMP_LOG"));

	/* Resumed, the guest runs on the destination. */
	EXPECT_EQ(0, mvmm_io_run(&a, 50, 4));
	EXPECT_EQ(0, a.mismatches);
	mvmm_close(&a);
	mvmm_close(&b);
}

TEST_HARNESS_MAIN
