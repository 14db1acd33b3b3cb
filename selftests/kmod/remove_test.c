// SPDX-License-Identifier: GPL-2.0-only
/*
 * The VF removed through sysfs (SR-IOV disabled on its PF) with I/O in
 * flight, and a switch to emulated mode while the removal waits for the
 * VFIO user (as it does with vfio-pci): the control plane stops offering
 * the adapter, the VFIO user's migration still switches it, the guest keeps
 * a consistent device until it lets go, and then the removal finishes and
 * the module unloads.
 *
 * Usage: remove_test  (EMUHBA_VF=BDF bound to emuhba with a backend set,
 *                      EMUHBA_PF=its PF, HBAMIG=path of hbamig). Every VF
 *                      of the PF is gone afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "minivmm.h"

/*
 * Children that exec at once: they must not keep the device open (an
 * inherited descriptor or mapping would be what the removal waits for).
 */
static pid_t spawn(const char *prog, const char *a1, const char *a2,
		   const char *a3)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	closefrom(3);
	execl(prog, prog, a1, a2, a3, (char *)NULL);
	_exit(127);
}

/* Exit status of pid within timeout_ms, or -1 if it is still running. */
static int wait_for(pid_t pid, int timeout_ms)
{
	int status, i;

	for (i = 0; i <= timeout_ms / 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
		usleep(10000);
	}
	return -1;
}

FIXTURE(rm) {
	struct mvmm vm;
	const char *bdf;
	bool open;
};

FIXTURE_SETUP(rm)
{
	self->bdf = getenv("EMUHBA_VF");
	ASSERT_NE(NULL, self->bdf);
	ASSERT_NE(NULL, getenv("HBAMIG"));
	ASSERT_EQ(0, mvmm_open(&self->vm, self->bdf, 16 << 20));
	self->open = true;
	ASSERT_EQ(0, mvmm_nvme_init(&self->vm, 4, MVMM_DB_LINUX));
	ASSERT_EQ(0, mvmm_io_run(&self->vm, 200, 16));
}

FIXTURE_TEARDOWN(rm)
{
	if (self->open)
		mvmm_close(&self->vm);
}

TEST_F_TIMEOUT(rm, vf_removed_during_switch, 300)
{
	char path[128], cmd[192];
	int i, ret, data_fd = -1;
	pid_t sw, rm;

	ASSERT_NE(NULL, getenv("EMUHBA_PF"));
	mvmm_io_fill(&self->vm, 16);
	snprintf(cmd, sizeof(cmd), "echo 0 > /sys/bus/pci/devices/%s/sriov_numvfs",
		 getenv("EMUHBA_PF"));
	rm = spawn("/bin/sh", "-c", cmd, NULL);
	ASSERT_LT(0, rm);
	/* The driver's attributes go first, then remove() waits for us. */
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/emuhba", self->bdf);
	for (i = 0; i < 3000 && !access(path, F_OK); i++)
		usleep(1000);
	ASSERT_NE(0, access(path, F_OK)) TH_LOG("the removal did not start");
	usleep(100000);
	EXPECT_EQ(-1, wait_for(rm, 0));

	/* The control plane no longer offers the adapter ... */
	sw = spawn(getenv("HBAMIG"), "switch", self->bdf, "emulated");
	ASSERT_LT(0, sw);
	ret = wait_for(sw, 30000);
	ASSERT_NE(-1, ret) TH_LOG("hbamig switch hung");
	EXPECT_EQ(5, ret) TH_LOG("hbamig switch during removal: exit %d", ret);

	/*
	 * ... but the VFIO user still holds the device and starts a
	 * migration: the switch to emulated runs with the removal pending.
	 */
	ret = mvmm_set_mig_state(&self->vm, VFIO_DEVICE_STATE_PRE_COPY, &data_fd);
	ASSERT_EQ(0, ret) TH_LOG("PRE_COPY during removal: %s", strerror(-ret));
	EXPECT_EQ(0, mvmm_io_run(&self->vm, 200, 16));
	EXPECT_LT(0, self->vm.completions);
	/* Cancelled: the model goes on serving the guest. */
	EXPECT_EQ(0, mvmm_set_mig_state(&self->vm, VFIO_DEVICE_STATE_RUNNING,
					NULL));
	if (data_fd >= 0)
		close(data_fd);
	EXPECT_EQ(0, mvmm_io_run(&self->vm, 200, 16));
	EXPECT_EQ(0, self->vm.errors);
	EXPECT_EQ(0, self->vm.mismatches);
	EXPECT_EQ(0, self->vm.duplicates);
	MVMM_EXPECT_READ_BACK(&self->vm);
	EXPECT_EQ(-1, wait_for(rm, 0));

	/* The VFIO user lets go, as QEMU does on the device request. */
	mvmm_close(&self->vm);
	self->open = false;
	ret = wait_for(rm, 30000);
	ASSERT_NE(-1, ret) TH_LOG("the removal did not finish after close");
	EXPECT_EQ(0, ret);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", self->bdf);
	EXPECT_NE(0, access(path, F_OK));
}

TEST_HARNESS_MAIN
