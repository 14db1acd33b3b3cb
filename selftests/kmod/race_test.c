// SPDX-License-Identifier: GPL-2.0-only
/*
 * Races with the VFIO user that a one-vCPU test VM never loses by chance,
 * forced here by stalling the kernel at the racy point:
 *
 * - a register write whose buffer another thread of the user changes
 *   while the kernel copies it: the kernel's copy faults on a userfaultfd
 *   page, and the fault handler changes the buffer before it resolves the
 *   fault. The VF and the model must hold the same value (one fetch);
 * - VFIO_IOMMU_UNMAP_DMA of guest memory while the driver pins a page of
 *   it (the "exact dirty scope" pin of a resume). type1's pin cannot wait
 *   for userfaultfd (its GUP has no FAULT_FLAG_ALLOW_RETRY: the fault
 *   gives SIGBUS), so the page is a private mapping of an NBD device whose
 *   server is this test: the pin's GUP waits for a read the server holds.
 *   The unmap must wait for the pin and then succeed; type1 must not
 *   BUG() on the pin it finds, and the guest's device must work after.
 *   Once the read is answered, the unmap (real-time, on the pinning
 *   thread's CPU) takes type1's lock before the driver's unpin does, and
 *   so finds the pin: the case that made type1 BUG().
 *
 * Usage: race_test  (EMUHBA_VF=A, EMUHBA_VF_B=B bound to emuhba with a
 *                    backend set, HBAMIG; the nbd module available)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <endian.h>
#include <linux/fs.h>
#include <linux/nbd.h>
#include <linux/userfaultfd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "minivmm.h"

#define PAGE		4096u
#define MEM		(8u << 20)
#define REG_CC		0x14
#define REG_AQA		0x24
#define REG_ASQ		0x28
#define REG_ACQ		0x30
/* /proc/sys/kernel/tainted: a WARN (W) or an oops (D) since boot. */
#define TAINT_DIE	(1u << 7)
#define TAINT_WARN	(1u << 9)

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static unsigned long tainted(void)
{
	FILE *f = fopen("/proc/sys/kernel/tainted", "r");
	unsigned long t = ~0ul;

	if (f) {
		if (fscanf(f, "%lu", &t) != 1)
			t = ~0ul;
		fclose(f);
	}
	return t;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int hbamig(const char *fmt, const char *bdf)
{
	char args[256], cmd[512];

	snprintf(args, sizeof(args), fmt, bdf);
	snprintf(cmd, sizeof(cmd), "%s %s >/dev/null 2>&1", env("HBAMIG"), args);
	return system(cmd);
}

/* The model's admin SQ base, as the debugfs state file shows it. */
static int model_asq(const char *bdf, uint64_t *asq)
{
	char path[128], buf[2048];
	const char *p;

	snprintf(path, sizeof(path), "/sys/kernel/debug/emuhba/%s/state", bdf);
	if (mvmm_attr(bdf, path, buf, sizeof(buf)))
		return -1;
	p = strstr(buf, " asq 0x");
	if (!p)
		return -1;
	*asq = strtoull(p + 7, NULL, 16);
	return 0;
}

/* ---- a register write from a buffer that changes during the copy ---- */

struct uffd_job {
	int uffd;
	uint8_t *page1, *page2;	/* page2 registered MISSING, not present */
	uint32_t lo_new;	/* what page1's part becomes during the fault */
	uint32_t hi;		/* what page2's part is once resolved */
	int faults;
	uint64_t fault_addr;
	int err;
};

static void *uffd_handler(void *arg)
{
	struct uffd_job *j = arg;
	struct pollfd pfd = { .fd = j->uffd, .events = POLLIN };
	struct uffdio_copy copy = { 0 };
	struct uffd_msg msg;
	static uint8_t src[PAGE] __attribute__((aligned(PAGE)));

	if (poll(&pfd, 1, 20000) != 1) {
		j->err = -ETIMEDOUT;
		return NULL;
	}
	if (read(j->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
	    msg.event != UFFD_EVENT_PAGEFAULT) {
		j->err = -EIO;
		return NULL;
	}
	j->faults++;
	j->fault_addr = msg.arg.pagefault.address;
	/* The kernel's copy is stalled here: the "other thread" writes. */
	memcpy(j->page1 + PAGE - 4, &j->lo_new, 4);
	memcpy(src, &j->hi, 4);
	copy.dst = (uintptr_t)j->page2;
	copy.src = (uintptr_t)src;
	copy.len = PAGE;
	if (ioctl(j->uffd, UFFDIO_COPY, &copy))
		j->err = -errno;
	return NULL;
}

/* ---- the resume's pin, stalled in its GUP, and an unmap meanwhile ---- */

/* Shared with the NBD server process. */
struct nbd_ctl {
	uint64_t hold_off;	/* a read covering this offset is held ... */
	int armed;		/* ... while armed */
	int held;		/* the server holds such a read */
	int release;		/* and answers it once this is set */
	int reads, writes;
	uint8_t disk[MEM];
};

static int read_full(int fd, void *p, size_t len)
{
	ssize_t n;

	while (len) {
		n = read(fd, p, len);
		if (n <= 0)
			return -1;
		p = (uint8_t *)p + n;
		len -= n;
	}
	return 0;
}

static int write_full(int fd, const void *p, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n <= 0)
			return -1;
		p = (const uint8_t *)p + n;
		len -= n;
	}
	return 0;
}

/* The NBD server: the disk is ctl->disk; runs in a process of its own. */
static void nbd_serve(int sock, struct nbd_ctl *ctl)
{
	struct nbd_request rq;
	struct nbd_reply rp = { .magic = htobe32(NBD_REPLY_MAGIC) };
	uint64_t from;
	uint32_t len, type;

	while (!read_full(sock, &rq, sizeof(rq))) {
		type = be32toh(rq.type) & 0xffff;
		from = be64toh(rq.from);
		len = be32toh(rq.len);
		memcpy(rp.handle, rq.handle, sizeof(rp.handle));
		rp.error = 0;
		if (type == NBD_CMD_DISC)
			return;
		if ((type == NBD_CMD_READ || type == NBD_CMD_WRITE) &&
		    (from > MEM || len > MEM - from))
			rp.error = htobe32(EINVAL);
		if (type == NBD_CMD_WRITE) {
			if (read_full(sock, ctl->disk + (rp.error ? 0 : from),
				      rp.error ? 0 : len))
				return;
			__atomic_add_fetch(&ctl->writes, 1, __ATOMIC_SEQ_CST);
		}
		if (type == NBD_CMD_READ && !rp.error) {
			__atomic_add_fetch(&ctl->reads, 1, __ATOMIC_SEQ_CST);
			if (__atomic_load_n(&ctl->armed, __ATOMIC_SEQ_CST) &&
			    from <= ctl->hold_off && ctl->hold_off < from + len) {
				__atomic_store_n(&ctl->held, 1, __ATOMIC_SEQ_CST);
				while (!__atomic_load_n(&ctl->release,
							__ATOMIC_SEQ_CST))
					usleep(1000);
			}
			if (write_full(sock, &rp, sizeof(rp)) ||
			    write_full(sock, ctl->disk + from, len))
				return;
			continue;
		}
		if (write_full(sock, &rp, sizeof(rp)))
			return;
	}
}

static void *nbd_do_it(void *arg)
{
	ioctl(*(int *)arg, NBD_DO_IT);
	return NULL;
}

struct nbd {
	char dev[32];
	int fd;			/* the test's own open of the device */
	pid_t server;
	struct nbd_ctl *ctl;
};

/* An NBD device of MEM bytes served by a child process; 0 or -errno. */
static int nbd_start(struct nbd *nbd)
{
	char path[64];
	int sv[2], i, dfd;

	if (access("/dev/nbd0", F_OK))
		system("modprobe nbd >/dev/null 2>&1");
	for (i = 0; i < 16; i++) {
		snprintf(path, sizeof(path), "/sys/block/nbd%d/pid", i);
		snprintf(nbd->dev, sizeof(nbd->dev), "/dev/nbd%d", i);
		if (access(path, F_OK) && !access(nbd->dev, F_OK))
			break;
	}
	if (i == 16)
		return -ENODEV;
	nbd->ctl = mmap(NULL, sizeof(*nbd->ctl), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (nbd->ctl == MAP_FAILED)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return -errno;
	nbd->server = fork();
	if (nbd->server < 0)
		return -errno;
	if (!nbd->server) {
		pthread_t t;

		dfd = open(nbd->dev, O_RDWR);
		if (dfd < 0 || ioctl(dfd, NBD_SET_BLKSIZE, PAGE) ||
		    ioctl(dfd, NBD_SET_SIZE_BLOCKS, MEM / PAGE) ||
		    ioctl(dfd, NBD_SET_SOCK, sv[0]))
			_exit(1);
		if (pthread_create(&t, NULL, nbd_do_it, &dfd))
			_exit(1);
		close(sv[0]);
		nbd_serve(sv[1], nbd->ctl);
		ioctl(dfd, NBD_CLEAR_SOCK);
		_exit(0);
	}
	close(sv[0]);
	close(sv[1]);
	snprintf(path, sizeof(path), "/sys/block/%s/pid", nbd->dev + 5);
	for (i = 0; i < 500 && access(path, F_OK); i++)
		usleep(10000);
	if (i == 500)
		return -ETIMEDOUT;
	nbd->fd = open(nbd->dev, O_RDONLY);
	return nbd->fd < 0 ? -errno : 0;
}

static void nbd_stop(struct nbd *nbd)
{
	if (nbd->server <= 0)
		return;
	__atomic_store_n(&nbd->ctl->release, 1, __ATOMIC_SEQ_CST);
	if (nbd->fd >= 0) {
		ioctl(nbd->fd, NBD_DISCONNECT);
		close(nbd->fd);
	}
	waitpid(nbd->server, NULL, 0);
	nbd->server = 0;
}

struct bg {
	pthread_t t;
	pid_t tid;
	struct mvmm *dst;
	int container;
	uint64_t iova, size;
	volatile int go;	/* for the unmap: issue it now */
	int ret;
	uint64_t unmapped;
	int done;
};

/*
 * The arc and the unmap share CPU 0, the unmap at a real-time priority:
 * when the pin returns and type1's lock wakes the unmap, the arc thread
 * gives the CPU up at the might_resched() of its unpin's mutex_lock(), so
 * the unmap takes the lock and finds the pin. A dma_unmap op that does not
 * sleep until the unpin then never lets the arc run, and type1 BUG()s
 * after ten retries.
 */
static int on_cpu0(bool rt)
{
	struct sched_param sp = { .sched_priority = 1 };
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
		return -1;
	return rt ? pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) : 0;
}

static void *arc_stop(void *arg)
{
	struct bg *b = arg;

	__atomic_store_n(&b->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	if (on_cpu0(false)) {
		b->ret = -EPERM;
		__atomic_store_n(&b->done, 1, __ATOMIC_SEQ_CST);
		return NULL;
	}
	b->ret = mvmm_set_mig_state(b->dst, VFIO_DEVICE_STATE_STOP, NULL);
	__atomic_store_n(&b->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *unmap_dma(void *arg)
{
	struct bg *b = arg;
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u) };

	__atomic_store_n(&b->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	if (on_cpu0(true)) {
		b->ret = -EPERM;
		__atomic_store_n(&b->done, 1, __ATOMIC_SEQ_CST);
		return NULL;
	}
	while (!b->go)
		usleep(1000);
	u.iova = b->iova;
	u.size = b->size;
	b->ret = ioctl(b->container, VFIO_IOMMU_UNMAP_DMA, &u) ? -errno : 0;
	b->unmapped = u.size;
	__atomic_store_n(&b->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static int map_dma(int container, void *va, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m) };

	m.vaddr = (uintptr_t)va;
	m.iova = iova;
	m.size = size;
	m.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	return ioctl(container, VFIO_IOMMU_MAP_DMA, &m) ? -errno : 0;
}

static int wait_flag(int *flag, unsigned int ms)
{
	uint64_t end = now_ms() + ms;

	while (!__atomic_load_n(flag, __ATOMIC_SEQ_CST)) {
		if (now_ms() > end)
			return -ETIMEDOUT;
		usleep(1000);
	}
	return 0;
}

/* What the destination's stalled arc and the unmap did. */
static struct pin_race {
	struct nbd nbd;
	bool resident;		/* the ASQ page was still in memory */
	int held;		/* the pin's read reached the server */
	int arc_done_early;	/* the arc ended while its read was held */
	int unmap_done_early;	/* the unmap returned while the pin waited */
	uint64_t held_ms;
	int arc_ret, unmap_ret, remap_ret, setup_ret;
	uint64_t unmapped, size;
	int arc_timeout, unmap_timeout;
	/* the kernel stacks of the arc and of the unmap while the pin waits */
	char arc_stack[2048], unmap_stack[2048];
} pr;

/* A thread's kernel stack, without allocating (the pin holds mmap_lock). */
static void kstack(pid_t tid, char *buf, size_t len)
{
	char path[64];
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stack", tid);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = 0;
}

/*
 * The destination's RESUMING -> STOP arc pins the page of the guest's
 * admin SQ (emuhba_dirty_scope_exact()), the first access to it there.
 * Guest memory becomes a private mapping of the NBD device, that page is
 * dropped, and the arc's pin waits in GUP for the held read; meanwhile
 * the whole of guest memory is unmapped from the container.
 */
static int resume_stop_stalled(struct mvmm *vm, struct mvmm *dst)
{
	uint64_t off = vm->admin.sq_iova - dst->mem_iova, t0;
	struct bg arc = { .dst = dst }, um = { 0 };
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u) };
	unsigned char vec;
	uint8_t *p;
	int ret;

	/* Guest memory, the same content, now backed by the NBD device. */
	u.iova = dst->mem_iova;
	u.size = dst->mem_size;
	if (ioctl(dst->container, VFIO_IOMMU_UNMAP_DMA, &u))
		return pr.setup_ret = -errno;
	p = mmap(NULL, dst->mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
		 pr.nbd.fd, 0);
	if (p == MAP_FAILED)
		return pr.setup_ret = -errno;
	memcpy(p, dst->mem, dst->mem_size);
	ret = map_dma(dst->container, p, dst->mem_iova, dst->mem_size);
	if (ret)
		return pr.setup_ret = ret;
	munmap(dst->mem, dst->mem_size);
	dst->mem = p;

	/*
	 * The ASQ page: the disk gets its content, the process forgets it
	 * (type1 still holds the page it pinned at the map) and the page
	 * cache drops it, so that the next GUP of it reads the disk.
	 */
	memcpy(pr.nbd.ctl->disk + off, p + off, PAGE);
	if (madvise(p + off, PAGE, MADV_DONTNEED) ||
	    ioctl(pr.nbd.fd, BLKFLSBUF))
		return pr.setup_ret = -errno;
	pr.resident = !mincore(p + off, PAGE, &vec) ? vec & 1 : true;
	if (pr.resident)
		return pr.setup_ret = -EEXIST;
	pr.nbd.ctl->hold_off = off;
	__atomic_store_n(&pr.nbd.ctl->armed, 1, __ATOMIC_SEQ_CST);

	um.container = dst->container;
	um.iova = dst->mem_iova;
	um.size = pr.size = dst->mem_size;
	if (pthread_create(&um.t, NULL, unmap_dma, &um))
		return pr.setup_ret = -EAGAIN;
	if (pthread_create(&arc.t, NULL, arc_stop, &arc)) {
		um.go = 1;
		pthread_join(um.t, NULL);
		return pr.setup_ret = -EAGAIN;
	}
	/*
	 * From here until the release, the pin holds this process's
	 * mmap_lock for reading: nothing here may mmap, munmap or print.
	 */
	pr.held = !wait_flag(&pr.nbd.ctl->held, 60000);
	t0 = now_ms();
	pr.arc_done_early = __atomic_load_n(&arc.done, __ATOMIC_SEQ_CST);
	if (pr.held) {
		um.go = 1;
		usleep(300000);
		pr.unmap_done_early = __atomic_load_n(&um.done,
						      __ATOMIC_SEQ_CST);
		kstack(arc.tid, pr.arc_stack, sizeof(pr.arc_stack));
		kstack(um.tid, pr.unmap_stack, sizeof(pr.unmap_stack));
		pr.arc_done_early |= __atomic_load_n(&arc.done,
						     __ATOMIC_SEQ_CST);
	}
	pr.held_ms = now_ms() - t0;
	__atomic_store_n(&pr.nbd.ctl->release, 1, __ATOMIC_SEQ_CST);
	um.go = 1;
	pr.arc_timeout = wait_flag(&arc.done, 60000);
	pr.unmap_timeout = wait_flag(&um.done, 60000);
	if (pr.arc_timeout || pr.unmap_timeout) {
		/* Stuck in the kernel: the harness reports the timeout. */
		return -ETIMEDOUT;
	}
	pthread_join(arc.t, NULL);
	pthread_join(um.t, NULL);
	pr.arc_ret = arc.ret;
	pr.unmap_ret = um.ret;
	pr.unmapped = um.unmapped;
	/* A VMM maps the memory again before its guest runs. */
	pr.remap_ret = map_dma(dst->container, p, dst->mem_iova,
			       dst->mem_size);
	if (pr.remap_ret)
		return pr.remap_ret;
	return arc.ret;
}

FIXTURE(race) {
	struct mvmm vm;
	const char *bdf;
	unsigned long taint0;
};

FIXTURE_SETUP(race)
{
	self->bdf = env("EMUHBA_VF");
	ASSERT_NE(NULL, self->bdf) TH_LOG("EMUHBA_VF not set");
	ASSERT_NE(NULL, env("HBAMIG")) TH_LOG("HBAMIG not set");
	self->taint0 = tainted();
	ASSERT_EQ(0, mvmm_open(&self->vm, self->bdf, MEM));
}

FIXTURE_TEARDOWN(race)
{
	mvmm_close(&self->vm);
	nbd_stop(&pr.nbd);
	/* No WARN and no oops, whatever the test did. */
	EXPECT_EQ(0, (tainted() & ~self->taint0) & (TAINT_WARN | TAINT_DIE))
		TH_LOG("the kernel tainted itself: %lu (was %lu)", tainted(),
		       self->taint0);
}

/*
 * A 64-bit ASQ write whose low half lies at the end of one page and whose
 * high half begins the next, missing page. While the kernel's copy waits
 * for that page, the low half changes. Read once, the buffer gives the VF
 * and the model one value (old or new low half, depending on how far the
 * copy got before the fault); read twice, the second read sees the new low
 * half and the first may not.
 */
TEST_F_TIMEOUT(race, register_write_read_once, 300)
{
	struct mvmm *vm = &self->vm;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { 0 };
	struct uffd_job j = { 0 };
	uint64_t sq_old, sq_new, cq, vf_asq, mdl_asq, emu_asq;
	uint32_t lo_old;
	uint8_t *buf;
	void *va;
	pthread_t t;
	ssize_t n;
	char mode[32];

	vm->cap = mvmm_reg_read64(vm, 0);
	ASSERT_EQ(0, mvmm_nvme_disable(vm));
	/* Either value the race can give is a valid admin SQ. */
	sq_old = mvmm_mem_alloc(vm, PAGE, &va);
	sq_new = mvmm_mem_alloc(vm, PAGE, &va);
	cq = mvmm_mem_alloc(vm, PAGE, &va);
	ASSERT_NE(0, sq_old);
	ASSERT_NE(0, sq_new);
	ASSERT_NE(0, cq);
	ASSERT_EQ(0, sq_old >> 32);
	ASSERT_EQ(0, sq_new >> 32);
	lo_old = (uint32_t)sq_old;
	j.lo_new = (uint32_t)sq_new;
	j.hi = 0;

	j.uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	ASSERT_LE(0, j.uffd) TH_LOG("userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(j.uffd, UFFDIO_API, &api));
	j.page1 = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, j.page1);
	j.page2 = j.page1 + PAGE;
	memset(j.page1, 0xa5, PAGE);
	reg.range.start = (uintptr_t)j.page2;
	reg.range.len = PAGE;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	ASSERT_EQ(0, ioctl(j.uffd, UFFDIO_REGISTER, &reg));
	buf = j.page2 - 4;
	memcpy(buf, &lo_old, 4);

	mvmm_reg_write32(vm, REG_AQA, 31 << 16 | 31);
	ASSERT_EQ(0, pthread_create(&t, NULL, uffd_handler, &j));
	n = pwrite(vm->device, buf, 8, vm->bar0_off + REG_ASQ);
	pthread_join(t, NULL);
	ASSERT_EQ(8, n) TH_LOG("ASQ write: %s", strerror(errno));
	ASSERT_EQ(0, j.err);
	/* Without the stall the test shows nothing. */
	ASSERT_EQ(1, j.faults);
	ASSERT_EQ((uintptr_t)j.page2, j.fault_addr & ~(uint64_t)(PAGE - 1));

	vf_asq = mvmm_reg_read64(vm, REG_ASQ);
	ASSERT_EQ(0, model_asq(self->bdf, &mdl_asq));
	TH_LOG("written 0x%llx, changed to 0x%llx during the copy; the VF holds 0x%llx, the model 0x%llx",
	       (unsigned long long)sq_old, (unsigned long long)sq_new,
	       (unsigned long long)vf_asq, (unsigned long long)mdl_asq);
	if (vf_asq == sq_new && mdl_asq == sq_new)
		TH_LOG("the copy restarted whole after the fault: a second read would have agreed too");
	ASSERT_EQ(vf_asq, mdl_asq);
	ASSERT_TRUE(vf_asq == sq_old || vf_asq == sq_new);

	/* The model then serves the guest with the admin queue the VF had. */
	{
		uint64_t v = cq;

		ASSERT_EQ(8, pwrite(vm->device, &v, 8, vm->bar0_off + REG_ACQ));
	}
	mvmm_reg_write32(vm, REG_CC, 1 | 6u << 16 | 4u << 20);
	ASSERT_EQ(0, hbamig("switch %s emulated", self->bdf));
	ASSERT_EQ(0, mvmm_attr(self->bdf, "emuhba/mode", mode, sizeof(mode)));
	ASSERT_EQ(0, strncmp(mode, "emulated", 8)) TH_LOG("mode %s", mode);
	emu_asq = mvmm_reg_read64(vm, REG_ASQ);
	EXPECT_EQ(vf_asq, emu_asq) TH_LOG("emulated ASQ 0x%llx",
					  (unsigned long long)emu_asq);
	close(j.uffd);
	munmap(j.page1, 2 * PAGE);
}

TEST_F_TIMEOUT(race, unmap_during_resume_pin, 600)
{
	struct mvmm *vm = &self->vm;
	struct mvmm_mig_stats st;
	const char *b = env("EMUHBA_VF_B");
	int ret;

	ASSERT_NE(NULL, b) TH_LOG("EMUHBA_VF_B not set");
	memset(&pr, 0, sizeof(pr));
	pr.nbd.fd = -1;
	ret = nbd_start(&pr.nbd);
	ASSERT_EQ(0, ret) TH_LOG("no NBD device served by the test (%s): %s",
				 pr.nbd.dev, strerror(-ret));
	ASSERT_EQ(0, mvmm_nvme_init(vm, 1, MVMM_DB_LINUX));
	vm->nr_lbas = 256;
	ASSERT_EQ(0, mvmm_io_run(vm, 200, 4));

	vm->resume_stop = resume_stop_stalled;
	ret = mvmm_migrate(vm, b, &st);
	vm->resume_stop = NULL;
	TH_LOG("pin held for %llu ms; server reads %d writes %d; arc %d, unmap %d (%llu of %llu bytes), remap %d",
	       (unsigned long long)pr.held_ms, pr.nbd.ctl->reads,
	       pr.nbd.ctl->writes, pr.arc_ret, pr.unmap_ret,
	       (unsigned long long)pr.unmapped, (unsigned long long)pr.size,
	       pr.remap_ret);
	EXPECT_EQ(0, pr.setup_ret);
	EXPECT_FALSE(pr.resident) TH_LOG("the ASQ page stayed in memory: no stall");
	/* The pin really waited in GUP: its read reached the server. */
	EXPECT_TRUE(pr.held) TH_LOG("the arc's pin never read the ASQ page");
	EXPECT_FALSE(pr.arc_done_early) TH_LOG("the arc ended without its pin");
	TH_LOG("the arc, held:\n%s", pr.arc_stack);
	TH_LOG("the unmap, meanwhile:\n%s", pr.unmap_stack);
	/*
	 * ... in the GUP of the driver's pin, reading the disk; the unmap
	 * in type1's ioctl (waiting for the lock the pin holds).
	 */
	EXPECT_NE(NULL, strstr(pr.arc_stack, "emuhba_dirty_scope_exact"));
	EXPECT_NE(NULL, strstr(pr.arc_stack, "pin_user_pages_remote"));
	EXPECT_NE(NULL, strstr(pr.unmap_stack, "vfio_iommu_type1_ioctl"));
	/* The unmap waits for the pin ... */
	EXPECT_FALSE(pr.unmap_done_early)
		TH_LOG("the unmap returned while the pin was in progress");
	/* ... and then unmaps everything; the arc completes. */
	EXPECT_EQ(0, pr.arc_timeout);
	EXPECT_EQ(0, pr.unmap_timeout);
	EXPECT_EQ(0, pr.unmap_ret);
	EXPECT_EQ(pr.size, pr.unmapped);
	EXPECT_EQ(0, pr.arc_ret);
	EXPECT_EQ(0, pr.remap_ret);
	ASSERT_EQ(0, ret) TH_LOG("migration: %s", strerror(-ret));

	/* The guest's device works on the destination. */
	ASSERT_EQ(0, mvmm_io_run(vm, 400, 4));
	EXPECT_EQ(0, vm->mismatches);
	EXPECT_EQ(0, vm->errors);
	EXPECT_EQ(0, vm->duplicates);
	MVMM_EXPECT_READ_BACK(vm);
}

TEST_HARNESS_MAIN
