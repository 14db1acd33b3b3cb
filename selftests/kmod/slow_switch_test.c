// SPDX-License-Identifier: GPL-2.0-only
/*
 * The switch to emulated mode while commands are slow: the shared
 * namespace's drive is throttled (selftests/vm/run --nvme-throttle
 * iops-write=N, selftests/slowsw/vm-options), so a write stays on the VF
 * for 100 ms and more while reads pass at once. The guest (the mini-VMM)
 * has writes and reads in flight on several I/O queues, so completions
 * come out of submission order, and one queue has gone idle (no new
 * submission) with writes still outstanding when `hbamig switch` runs;
 * it keeps submitting on the other queues during the switch.
 *
 *  - With a switch deadline longer than the slow writes, the switch
 *    succeeds and nothing is lost, repeated or corrupted: every command
 *    submitted completes once, with good data.
 *    With MMIO doorbells the idle queue is placed only because the test
 *    vouches for a bound on a command's life (policy idle-after).
 *  - Without that bound, the idle queue's position is unknown with MMIO
 *    doorbells and the switch is refused, naming it; with shadow
 *    doorbells the same switch succeeds.
 *  - With a deadline shorter than a write's life, the switch is refused
 *    cleanly (hbamig exits non-zero and says why, the adapter stays
 *    direct) and the guest continues on its VF, again with nothing lost.
 *
 * Each case runs with shadow doorbells (skipped on a VF without them) and
 * with MMIO doorbells.
 *
 * Usage: slow_switch_test  (EMUHBA_VF=<bdf> bound to emuhba,
 *                           EMUHBA_BACKEND=<block device of the namespace>,
 *                           HBAMIG=<path to hbamig>)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "minivmm.h"

#define NR_IOQ		4
#define IDLE_Q		(NR_IOQ - 1)	/* the queue that goes idle */
#define NR_LBAS		256
#define PREP		32		/* blocks written first, for reads */
#define SLOW_MS		100		/* a throttled write's life, at least */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

/* Run hbamig with args, its output into out; the exit status or -1. */
static int hbamig(const char *out, const char *fmt, ...)
{
	char args[256], cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s %s >%s 2>&1", getenv("HBAMIG"), args,
		 out ? out : "/dev/null");
	return system(cmd);
}

/* What hbamig printed, on one line. */
static void read_msg(const char *path, char *buf, size_t len)
{
	ssize_t n = -1, i;
	int fd = open(path, O_RDONLY);

	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	if (n < 0)
		n = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = 0;
	for (i = 0; i < n; i++)
		if (buf[i] == '\n')
			buf[i] = ' ';
}

static void mode_of(const char *bdf, char *buf, size_t len)
{
	if (mvmm_attr(bdf, "emuhba/mode", buf, len))
		snprintf(buf, len, "?");
	buf[strcspn(buf, "\n")] = 0;
}

/* The adapter's switch deadline, from hbamig -j dev show; -1 if unknown. */
static long switch_timeout_ms(const char *bdf)
{
	char cmd[300], buf[4096], *p;
	size_t n;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s -j dev show %s", getenv("HBAMIG"), bdf);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	pclose(f);
	buf[n] = 0;
	p = strstr(buf, "\"switch_timeout_ms\":");
	return p ? strtol(p + strlen("\"switch_timeout_ms\":"), NULL, 10) : -1;
}

/*
 * The guest's load: on every queue not held, keep up to qd commands out,
 * reads of blocks written before (verified when they complete) and every
 * write_every-th a write. The number submitted.
 */
static int top_up(struct mvmm *vm, int qd, int write_every, unsigned int *seed)
{
	static unsigned int nth;
	int qi, n = 0, tries;

	for (qi = 0; qi < vm->nr_ioq; qi++) {
		struct mvmm_queue *q = &vm->ioq[qi];

		for (tries = 0; !q->hold && q->nr_busy < (uint32_t)qd &&
		     tries < 4 * qd; tries++) {
			bool write = write_every && !(++nth % write_every);
			uint64_t lba = write ? PREP + rand_r(seed) % (NR_LBAS - PREP) :
					       rand_r(seed) % PREP;

			if (!mvmm_io_submit(vm, qi, lba, !write))
				n++;
		}
	}
	return n;
}

struct child {
	pid_t pid;
	int status;
};

/*
 * Run hbamig (output into out) while the guest keeps its load going, as
 * a guest's vCPUs do during a switch; the exit status, or a negative errno.
 */
static int hbamig_during_io(struct mvmm *vm, const char *out, int write_every,
			    const char *fmt, const char *bdf)
{
	unsigned int seed = 4711;
	uint64_t deadline = now_ms() + 120000;
	struct child c = { 0 };
	char args[256], cmd[512];

	snprintf(args, sizeof(args), fmt, bdf);
	snprintf(cmd, sizeof(cmd), "exec %s %s >%s 2>&1", getenv("HBAMIG"),
		 args, out);
	c.pid = fork();
	if (c.pid < 0)
		return -errno;
	if (!c.pid) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (;;) {
		if (waitpid(c.pid, &c.status, WNOHANG) == c.pid)
			break;
		if (now_ms() > deadline) {
			kill(c.pid, SIGKILL);
			waitpid(c.pid, NULL, 0);
			return -ETIMEDOUT;
		}
		if (!mvmm_io_reap(vm) && !top_up(vm, 8, write_every, &seed))
			usleep(500);
	}
	return WIFEXITED(c.status) ? WEXITSTATUS(c.status) : 128;
}

/*
 * Wait for every command out; when some never complete, say which, with
 * the guest's queues and the adapter's state.
 */
static int drain(struct mvmm *vm)
{
	char path[160], buf[8192], *line, *save;
	int ret = mvmm_io_drain(vm, 60000);

	if (!ret)
		return 0;
	fprintf(stderr, "# %u commands never completed:\n",
		mvmm_io_outstanding(vm));
	mvmm_io_dump(vm, stderr);
	snprintf(path, sizeof(path), "/sys/kernel/debug/emuhba/%s/state", vm->bdf);
	if (!mvmm_attr(vm->bdf, path, buf, sizeof(buf)))
		for (line = strtok_r(buf, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save))
			fprintf(stderr, "# emuhba state: %s\n", line);
	return ret;
}

/*
 * Nothing lost, repeated or corrupted; every command submitted completed,
 * and every block written reads back.
 */
static void expect_exact(struct __test_metadata *_metadata, struct mvmm *vm)
{
	ASSERT_EQ(0, drain(vm));
	EXPECT_EQ(vm->submitted, vm->completions);
	EXPECT_EQ(0, vm->errors);
	EXPECT_EQ(0, vm->mismatches);
	EXPECT_EQ(0, vm->duplicates);
	MVMM_EXPECT_READ_BACK(vm);
	TH_LOG("%llu commands, %llu completed before an older one of their queue, longest write %llu ms, read %llu ms",
	       (unsigned long long)vm->submitted,
	       (unsigned long long)vm->reordered,
	       (unsigned long long)vm->max_lat_us[0] / 1000,
	       (unsigned long long)vm->max_lat_us[1] / 1000);
}

FIXTURE(slow) {
	struct mvmm vm;
	const char *bdf;
	long timeout_before;
	char out[64];
	char msg[1024];
	char mode[32];
};

FIXTURE_VARIANT(slow) {
	enum mvmm_doorbells db;
};

/* Skipped, with the reason, on a VF without Doorbell Buffer Config. */
FIXTURE_VARIANT_ADD(slow, shadow_doorbells) {
	.db = MVMM_DB_SHADOW,
};

/* A guest that rings MMIO doorbells, as on every real SSD's VF. */
FIXTURE_VARIANT_ADD(slow, mmio_doorbells) {
	.db = MVMM_DB_MMIO,
};

FIXTURE_SETUP(slow)
{
	uint64_t lba, t0;
	int ret;

	self->bdf = getenv("EMUHBA_VF");
	ASSERT_NE(NULL, self->bdf) TH_LOG("set EMUHBA_VF");
	ASSERT_NE(NULL, getenv("HBAMIG"));
	ASSERT_NE(NULL, getenv("EMUHBA_BACKEND"));
	snprintf(self->out, sizeof(self->out), "/tmp/slow_switch.%d", getpid());
	ASSERT_EQ(0, hbamig(NULL, "dev set %s backend %s", self->bdf,
			    getenv("EMUHBA_BACKEND")));
	self->timeout_before = switch_timeout_ms(self->bdf);
	ASSERT_LT(0, self->timeout_before);
	ret = mvmm_open(&self->vm, self->bdf, 64 << 20);
	ASSERT_EQ(0, ret) TH_LOG("open %s: %s", self->bdf, strerror(-ret));
	ret = mvmm_nvme_init(&self->vm, NR_IOQ, variant->db);
	MVMM_SKIP_IF_NO_DBBUF(ret, &self->vm);
	ASSERT_EQ(0, ret) TH_LOG("controller init: %d", ret);
	ASSERT_EQ(NR_IOQ, self->vm.nr_ioq);
	self->vm.nr_lbas = NR_LBAS;

	/* The blocks the reads will verify, a few at a time (throttled). */
	t0 = now_ms();
	for (lba = 0; lba < PREP; lba++) {
		while (mvmm_io_submit(&self->vm, lba % NR_IOQ, lba, false))
			if (!mvmm_io_reap(&self->vm))
				usleep(1000);
	}
	ASSERT_EQ(0, drain(&self->vm));
	ASSERT_EQ(0, self->vm.errors);
	TH_LOG("%d writes took %llu ms; %s doorbells", PREP,
	       (unsigned long long)(now_ms() - t0),
	       mvmm_doorbells_name(&self->vm));
	/* Without a throttled drive this test proves nothing. */
	ASSERT_LE(SLOW_MS * 1000, self->vm.max_lat_us[0])
		TH_LOG("writes are not slow: is the drive throttled (selftests/slowsw/vm-options)?");
	/* The tests look at what happens from here on. */
	self->vm.max_lat_us[0] = self->vm.max_lat_us[1] = 0;
	self->vm.reordered = 0;
}

FIXTURE_TEARDOWN(slow)
{
	mvmm_close(&self->vm);
	unlink(self->out);
	/* idle-after first: it must stay below the timeout. */
	hbamig(NULL, "dev set %s policy idle-after 0", self->bdf);
	if (self->timeout_before > 0)
		hbamig(NULL, "dev set %s policy switch-timeout %ld", self->bdf,
		       self->timeout_before);
}

/*
 * Writes and reads in flight on every queue, completions out of order,
 * one queue idle with writes outstanding: the switch waits for the slow
 * writes (deadline 30 s) and takes every queue over exactly. Ten writes at
 * ten per second are all done within 10 s: that is the bound the test
 * vouches for, which places the idle queue with MMIO doorbells.
 */
TEST_F_TIMEOUT(slow, switch_with_slow_writes_in_flight, 300)
{
	struct mvmm *vm = &self->vm;
	struct mvmm_queue *idle = &vm->ioq[IDLE_Q];
	uint64_t lba = PREP, deadline;
	long long cmds_before, cmds;
	unsigned int seed = 99;
	int qi, i, rc;
	uint32_t idle_out;

	ASSERT_EQ(0, hbamig(NULL, "dev set %s policy switch-timeout 30000",
			    self->bdf));
	ASSERT_EQ(0, hbamig(NULL, "dev set %s policy idle-after 10000",
			    self->bdf));
	cmds_before = mvmm_attr_ll(self->bdf, "emuhba/emulated_cmds");

	/*
	 * Writes first (they queue up in the throttle, the idle queue's
	 * last, so they stay longest), then reads of written blocks on the
	 * busy queues, which overtake the writes.
	 */
	for (qi = 0; qi < IDLE_Q; qi++)
		for (i = 0; i < 2; i++)
			ASSERT_EQ(0, mvmm_io_submit(vm, qi, lba++, false));
	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, mvmm_io_submit(vm, IDLE_Q, lba++, false));
	for (qi = 0; qi < IDLE_Q; qi++)
		for (i = 0; i < 4; i++)
			ASSERT_EQ(0, mvmm_io_submit(vm, qi, qi * 4 + i, true));
	/* The reads are back while the writes wait. */
	deadline = now_ms() + 5000;
	while (!vm->reordered && now_ms() < deadline)
		if (!mvmm_io_reap(vm))
			usleep(500);
	EXPECT_LT(0, vm->reordered) TH_LOG("no completion overtook a write");

	/* The idle queue submits nothing more, its writes still out. */
	idle->hold = true;
	idle_out = idle->nr_busy;
	ASSERT_LT(0, idle_out) TH_LOG("the idle queue's writes completed already");
	rc = hbamig_during_io(vm, self->out, 4, "switch %s emulated", self->bdf);
	read_msg(self->out, self->msg, sizeof(self->msg));
	mode_of(self->bdf, self->mode, sizeof(self->mode));
	TH_LOG("switch with %u writes outstanding on idle queue %d: exit %d, mode %s, %u commands out after it; hbamig: %s",
	       idle_out, idle->qid, rc, self->mode, mvmm_io_outstanding(vm),
	       self->msg[0] ? self->msg : "(nothing)");
	EXPECT_EQ(0, rc);
	EXPECT_STREQ("emulated", self->mode);

	/* More I/O on every queue, the idle one too. */
	idle->hold = false;
	for (i = 0; i < 3; i++) {
		top_up(vm, 6, 3, &seed);
		ASSERT_EQ(0, drain(vm));
	}
	expect_exact(_metadata, vm);
	EXPECT_LT(0, vm->reordered);
	EXPECT_LE(SLOW_MS * 1000, vm->max_lat_us[0]);
	cmds = mvmm_attr_ll(self->bdf, "emuhba/emulated_cmds");
	if (!rc)
		EXPECT_LT(cmds_before, cmds) TH_LOG("the model executed nothing");
}

/*
 * The same guest, nobody vouching for a command's life (idle-after 0):
 * the idle queue's tail cannot be known from MMIO doorbells, so the switch
 * is refused and names it, and the guest goes on on its VF with nothing
 * lost. Shadow doorbells give the tail (EventIdx): there it switches.
 */
TEST_F_TIMEOUT(slow, idle_queue_without_a_bound, 300)
{
	struct mvmm *vm = &self->vm;
	struct mvmm_queue *idle = &vm->ioq[IDLE_Q];
	uint64_t lba = PREP + 96;
	unsigned int seed = 5;
	char want[64];
	int qi, i, rc;

	ASSERT_EQ(0, hbamig(NULL, "dev set %s policy idle-after 0", self->bdf));
	ASSERT_EQ(0, hbamig(NULL, "dev set %s policy switch-timeout 10000",
			    self->bdf));
	for (qi = 0; qi < NR_IOQ; qi++)
		ASSERT_EQ(0, mvmm_io_submit(vm, qi, lba++, false));
	idle->hold = true;
	ASSERT_LT(0, idle->nr_busy);

	rc = hbamig_during_io(vm, self->out, 4, "switch %s emulated", self->bdf);
	read_msg(self->out, self->msg, sizeof(self->msg));
	mode_of(self->bdf, self->mode, sizeof(self->mode));
	TH_LOG("%s doorbells, idle queue %d without a bound: exit %d, mode %s; hbamig: %s",
	       mvmm_doorbells_name(vm), idle->qid, rc, self->mode,
	       self->msg[0] ? self->msg : "(nothing)");
	if (variant->db == MVMM_DB_SHADOW) {
		EXPECT_EQ(0, rc);
		EXPECT_STREQ("emulated", self->mode);
	} else {
		EXPECT_NE(0, rc);
		EXPECT_NE(2, rc);
		EXPECT_NE(7, rc);
		EXPECT_GT(128, rc);
		EXPECT_STREQ("direct", self->mode);
		snprintf(want, sizeof(want), "queue %d: not rung", idle->qid);
		EXPECT_NE(NULL, strstr(self->msg, want))
			TH_LOG("the refusal does not name the idle queue");
		EXPECT_NE(NULL, strstr(self->msg, "tail unknown (idle-after 0)"));
	}

	idle->hold = false;
	for (i = 0; i < 2; i++) {
		top_up(vm, 6, 3, &seed);
		ASSERT_EQ(0, drain(vm));
	}
	expect_exact(_metadata, vm);
}

/*
 * A deadline shorter than a throttled write's life: the switch must give
 * up cleanly, say why, and leave the guest on its VF with nothing lost.
 */
TEST_F_TIMEOUT(slow, switch_deadline_shorter_than_a_write, 300)
{
	struct mvmm *vm = &self->vm;
	uint64_t lba = PREP + 64;
	const int deadline_ms = 50;
	long long cmds_before, cmds;
	unsigned int seed = 7;
	int qi, i, rc;
	uint32_t out;

	ASSERT_EQ(0, hbamig(NULL, "dev set %s policy switch-timeout %d",
			    self->bdf, deadline_ms));
	cmds_before = mvmm_attr_ll(self->bdf, "emuhba/emulated_cmds");

	/* Eight writes: the last is out for about 8 / iops-write seconds. */
	for (qi = 0; qi < NR_IOQ; qi++)
		for (i = 0; i < 2; i++)
			ASSERT_EQ(0, mvmm_io_submit(vm, qi, lba++, false));
	for (qi = 0; qi < NR_IOQ; qi++)
		for (i = 0; i < 2; i++)
			ASSERT_EQ(0, mvmm_io_submit(vm, qi, qi * 2 + i, true));
	vm->ioq[IDLE_Q].hold = true;
	out = mvmm_io_outstanding(vm);

	rc = hbamig_during_io(vm, self->out, 8, "switch %s emulated", self->bdf);
	read_msg(self->out, self->msg, sizeof(self->msg));
	mode_of(self->bdf, self->mode, sizeof(self->mode));
	TH_LOG("switch with deadline %d ms, %u commands outstanding: exit %d, mode %s; hbamig: %s",
	       deadline_ms, out, rc, self->mode,
	       self->msg[0] ? self->msg : "(nothing)");
	/*
	 * Refused, not a usage error or a crash, and still direct; refused
	 * for its deadline: a switch refused as unsupported (exit 7) proves
	 * nothing here.
	 */
	EXPECT_NE(0, rc);
	EXPECT_NE(2, rc);
	EXPECT_NE(7, rc) TH_LOG("refused as not supported, not for its deadline");
	EXPECT_GT(128, rc);
	EXPECT_STREQ("direct", self->mode);
	/* The refusal says why (the kernel names queue and command). */
	EXPECT_NE(0, strlen(self->msg)) TH_LOG("hbamig printed no reason");

	/* The guest continues on its VF. */
	vm->ioq[IDLE_Q].hold = false;
	for (i = 0; i < 2; i++) {
		top_up(vm, 6, 3, &seed);
		ASSERT_EQ(0, drain(vm));
	}
	expect_exact(_metadata, vm);
	/* The premise: a write lived longer than the deadline. */
	EXPECT_LT(deadline_ms * 1000ull, vm->max_lat_us[0]);
	cmds = mvmm_attr_ll(self->bdf, "emuhba/emulated_cmds");
	TH_LOG("the model executed %lld commands", cmds - cmds_before);
	mode_of(self->bdf, self->mode, sizeof(self->mode));
	EXPECT_STREQ("direct", self->mode);
}

TEST_HARNESS_MAIN
