// SPDX-License-Identifier: GPL-2.0-only
/*
 * guestio: the end-to-end guest's workload. Threads write checksummed 4 KiB
 * blocks with O_DIRECT, read each one back and verify it; a reporter prints
 * one line per interval of guest time; on 'q' from stdin (or after -s
 * seconds) every block written is read once more and checked against the
 * last generation written, and a summary line follows. 'i' prints the
 * identity of the NVMe controller as the guest's driver knows it; 'r'
 * resets that controller first (the driver reads Identify again); 'v'
 * pauses the writers, reads every block written and checks it against its
 * last generation, and resumes them (the disk then holds exactly what the
 * guest wrote). Output is meant to be parsed from a serial console; each
 * line starts with -N NAME (default "guestio"), so that two instances
 * sharing one console (the end-to-end guest's local disk and its fabric
 * disk) can be told apart:
 *
 *   guestio tick t_ms=.. ios=.. d_ios=.. err=.. mis=.. max_lat_us=..
 *   guestio identity now|after_reset cntlid=.. model=.. serial=.. ...
 *   guestio verify verified=.. verify_mis=.. (after 'v')
 *   guestio summary ios=.. err=.. mis=.. verified=.. verify_mis=.. ...
 *
 * Each thread owns a disjoint range of blocks, so the last generation of
 * each block is known without locks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define gio_out(fmt, ...) printf("%s " fmt, gio_name, ##__VA_ARGS__)

typedef uint64_t u64;
typedef uint32_t u32;
typedef uint8_t u8;

#define GIO_BS 4096
#define GIO_MAGIC 0x67696f626c6b3031ULL	/* "giobl k01" */
#define GIO_MAX_THREADS 16

struct gio_hdr {
	u64 magic;
	u64 block;
	u64 gen;
	u32 thread;
	u32 crc;		/* over the whole block with crc = 0 */
};

struct gio_thread {
	pthread_t tid;
	unsigned int idx;
	u64 first, count;	/* block range owned */
	u32 *gen;		/* last generation written per block, 0 none */
	u64 ios, errs, mis;
	u64 max_lat_ns;	/* since the reporter last took it */
	u64 max_lat_all_ns;
	u64 cur_start_ns;	/* start of the I/O in flight, 0 idle */
	int first_errno;
};

static const char *gio_dev = "/dev/nvme0n1";
/* first word of every line: two instances on one console stay apart */
static const char *gio_name = "guestio";
static unsigned int gio_nthreads = 4;
static u64 gio_blocks = 4096;
static u64 gio_offset_blocks;
static unsigned int gio_interval_ms = 100;
static unsigned int gio_seconds;
static int gio_fd;
static int gio_stop;		/* read by the workers, set once by main */
static int gio_pause;		/* set by main: the workers wait */
static unsigned int gio_paused;	/* workers waiting */
static struct gio_thread gio_threads[GIO_MAX_THREADS];
static u32 gio_crc_table[256];

static void gio_crc_init(void)
{
	for (u32 i = 0; i < 256; i++) {
		u32 c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320U ^ (c >> 1) : c >> 1;
		gio_crc_table[i] = c;
	}
}

static u32 gio_crc(const void *buf, size_t len)
{
	const u8 *p = buf;
	u32 c = 0xffffffffU;

	while (len--)
		c = gio_crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffU;
}

static u64 gio_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void gio_fill(void *buf, u64 block, u64 gen, u32 thread)
{
	struct gio_hdr *h = buf;
	u64 x = block * 0x9e3779b97f4a7c15ULL ^ gen;
	u64 *w = buf;

	for (size_t i = sizeof(*h) / 8; i < GIO_BS / 8; i++) {
		/* xorshift: cheap, and differs for every block and gen */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
	h->magic = GIO_MAGIC;
	h->block = block;
	h->gen = gen;
	h->thread = thread;
	h->crc = 0;
	h->crc = gio_crc(buf, GIO_BS);
}

/* 0 when the block holds generation gen of block, else why not. */
static const char *gio_check(void *buf, u64 block, u64 gen)
{
	struct gio_hdr *h = buf;
	u32 crc = h->crc;

	h->crc = 0;
	if (gio_crc(buf, GIO_BS) != crc)
		return "crc";
	if (h->magic != GIO_MAGIC)
		return "magic";
	if (h->block != block)
		return "block";
	if (h->gen != gen)
		return "gen";
	return NULL;
}

static int gio_io(struct gio_thread *t, void *buf, u64 block, int write)
{
	off_t off = (off_t)block * GIO_BS;
	u64 start = gio_now_ns(), lat;
	ssize_t n;

	__atomic_store_n(&t->cur_start_ns, start, __ATOMIC_RELAXED);
	n = write ? pwrite(gio_fd, buf, GIO_BS, off) :
		    pread(gio_fd, buf, GIO_BS, off);
	lat = gio_now_ns() - start;
	__atomic_store_n(&t->cur_start_ns, 0, __ATOMIC_RELAXED);
	if (lat > t->max_lat_all_ns)
		t->max_lat_all_ns = lat;
	/* the reporter resets max_lat_ns; a lost update only loses a tick */
	if (lat > __atomic_load_n(&t->max_lat_ns, __ATOMIC_RELAXED))
		__atomic_store_n(&t->max_lat_ns, lat, __ATOMIC_RELAXED);
	__atomic_add_fetch(&t->ios, 1, __ATOMIC_RELAXED);
	if (n != GIO_BS) {
		if (!t->first_errno)
			t->first_errno = n < 0 ? errno : EIO;
		__atomic_add_fetch(&t->errs, 1, __ATOMIC_RELAXED);
		return -1;
	}
	return 0;
}

static void *gio_worker(void *arg)
{
	struct gio_thread *t = arg;
	void *wbuf, *rbuf;
	u64 i = 0;

	if (posix_memalign(&wbuf, GIO_BS, GIO_BS) ||
	    posix_memalign(&rbuf, GIO_BS, GIO_BS)) {
		t->errs++;
		return NULL;
	}
	while (!__atomic_load_n(&gio_stop, __ATOMIC_RELAXED)) {
		u64 rel;

		if (__atomic_load_n(&gio_pause, __ATOMIC_ACQUIRE)) {
			__atomic_add_fetch(&gio_paused, 1, __ATOMIC_ACQ_REL);
			while (__atomic_load_n(&gio_pause, __ATOMIC_ACQUIRE))
				usleep(1000);
			__atomic_sub_fetch(&gio_paused, 1, __ATOMIC_ACQ_REL);
			continue;
		}
		rel = i++ % t->count;
		u64 block = t->first + rel;
		u32 gen = t->gen[rel] + 1;
		const char *why;

		gio_fill(wbuf, block, gen, t->idx);
		if (gio_io(t, wbuf, block, 1))
			continue;
		t->gen[rel] = gen;
		memset(rbuf, 0, GIO_BS);
		if (gio_io(t, rbuf, block, 0))
			continue;
		why = gio_check(rbuf, block, gen);
		if (why) {
			__atomic_add_fetch(&t->mis, 1, __ATOMIC_RELAXED);
			gio_out("mismatch block=%" PRIu64 " gen=%u why=%s\n",
			       block, gen, why);
			fflush(stdout);
		}
	}
	free(wbuf);
	free(rbuf);
	return NULL;
}

static void gio_sum(u64 *ios, u64 *errs, u64 *mis)
{
	*ios = *errs = *mis = 0;
	for (unsigned int i = 0; i < gio_nthreads; i++) {
		*ios += __atomic_load_n(&gio_threads[i].ios, __ATOMIC_RELAXED);
		*errs += __atomic_load_n(&gio_threads[i].errs, __ATOMIC_RELAXED);
		*mis += __atomic_load_n(&gio_threads[i].mis, __ATOMIC_RELAXED);
	}
}

/* Longest latency in the tick, counting an I/O still in flight. */
static u64 gio_tick_max_lat(u64 now)
{
	u64 max = 0;

	for (unsigned int i = 0; i < gio_nthreads; i++) {
		struct gio_thread *t = &gio_threads[i];
		u64 l = __atomic_exchange_n(&t->max_lat_ns, 0,
						 __ATOMIC_RELAXED);
		u64 s = __atomic_load_n(&t->cur_start_ns,
					     __ATOMIC_RELAXED);

		if (s && now > s && now - s > l)
			l = now - s;
		if (l > max)
			max = l;
	}
	return max;
}

/* "/dev/nvme0n1" -> "/sys/class/nvme/nvme0"; 0 when not an NVMe disk. */
static int gio_ctrl_dir(char *dir, size_t len)
{
	const char *b = strrchr(gio_dev, '/');
	int n = 0;

	b = b ? b + 1 : gio_dev;
	if (strncmp(b, "nvme", 4))
		return 0;
	while (b[4 + n] >= '0' && b[4 + n] <= '9')
		n++;
	if (!n)
		return 0;
	snprintf(dir, len, "/sys/class/nvme/%.*s", 4 + n, b);
	return 1;
}

static void gio_identity(const char *when)
{
	static const char *const attrs[] = {
		"cntlid", "model", "serial", "firmware_rev", "state",
	};
	char dir[64], path[128], val[128];
	unsigned int i;
	size_t n;
	FILE *f;

	if (!gio_ctrl_dir(dir, sizeof(dir))) {
		gio_out("identity %s none\n", when);
		return;
	}
	gio_out("identity %s", when);
	for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, attrs[i]);
		f = fopen(path, "r");
		n = f ? fread(val, 1, sizeof(val) - 1, f) : 0;
		if (f)
			fclose(f);
		while (n && (val[n - 1] == '\n' || val[n - 1] == ' '))
			n--;
		val[n] = 0;
		/* one token per value on the console line */
		for (char *c = val; *c; c++)
			if (*c == ' ')
				*c = '_';
		printf(" %s=%s", attrs[i], n ? val : "?");
	}
	printf("\n");
}

/* The write returns once the driver has reset and re-identified it. */
static void gio_reset(void)
{
	char dir[64], path[128];
	int fd;

	if (!gio_ctrl_dir(dir, sizeof(dir))) {
		gio_out("reset none\n");
		return;
	}
	snprintf(path, sizeof(path), "%s/reset_controller", dir);
	fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, "1", 1) != 1)
		gio_out("reset failed errno=%d\n", errno);
	if (fd >= 0)
		close(fd);
	gio_identity("after_reset");
}

/*
 * Every block written must hold its last generation; the workers are
 * stopped or paused. Adds to *done and *mis.
 */
static int gio_verify_all(u64 *done, u64 *mis)
{
	void *buf;

	if (posix_memalign(&buf, GIO_BS, GIO_BS))
		return -1;
	for (unsigned int i = 0; i < gio_nthreads; i++) {
		struct gio_thread *t = &gio_threads[i];

		for (u64 r = 0; r < t->count; r++) {
			const char *why;

			if (!t->gen[r])
				continue;
			if (gio_io(t, buf, t->first + r, 0))
				continue;
			(*done)++;
			why = gio_check(buf, t->first + r, t->gen[r]);
			if (why) {
				(*mis)++;
				gio_out("verify-mismatch block=%" PRIu64
				       " gen=%u why=%s\n", t->first + r,
				       t->gen[r], why);
			}
		}
	}
	free(buf);
	return 0;
}

/* 'v': pause the writers, verify everything written, resume. */
static void gio_verify_now(void)
{
	u64 done = 0, mis = 0;

	__atomic_store_n(&gio_pause, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&gio_paused, __ATOMIC_ACQUIRE) < gio_nthreads)
		usleep(1000);
	gio_verify_all(&done, &mis);
	gio_out("verify verified=%" PRIu64 " verify_mis=%" PRIu64 "\n",
	       done, mis);
	fflush(stdout);
	__atomic_store_n(&gio_pause, 0, __ATOMIC_RELEASE);
}

/* Commands from stdin; 1 when asked to stop. */
static int gio_stdin_cmd(int timeout_ms)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };
	char c[64];
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return 0;
	if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
		/* no usable stdin: stop being asked */
		close(0);
		return 0;
	}
	n = read(0, c, sizeof(c));
	if (n <= 0)
		return 0;
	if (memchr(c, 'i', n))
		gio_identity("now");
	if (memchr(c, 'r', n))
		gio_reset();
	if (memchr(c, 'v', n))
		gio_verify_now();
	return memchr(c, 'q', n) != NULL;
}

static void gio_usage(void)
{
	fprintf(stderr,
		"usage: guestio [-d DEV] [-t THREADS] [-n BLOCKS] [-o OFFSET_BLOCKS]\n"
		"               [-i INTERVAL_MS] [-s SECONDS] [-N NAME]\n"
		"Stops on 'q' from stdin or after SECONDS (0: never); 'i' prints the\n"
		"controller's identity, 'r' resets the controller and prints it,\n"
		"'v' pauses the writers and verifies every block written. NAME\n"
		"(default guestio) starts every output line.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	u64 start, next, ios, errs, mis, last_ios = 0, vmis = 0, vdone = 0;
	u64 max_all = 0;
	int opt, first_errno = 0;

	while ((opt = getopt(argc, argv, "d:t:n:o:i:s:N:")) != -1) {
		switch (opt) {
		case 'd':
			gio_dev = optarg;
			break;
		case 't':
			gio_nthreads = strtoul(optarg, NULL, 0);
			break;
		case 'n':
			gio_blocks = strtoull(optarg, NULL, 0);
			break;
		case 'o':
			gio_offset_blocks = strtoull(optarg, NULL, 0);
			break;
		case 'i':
			gio_interval_ms = strtoul(optarg, NULL, 0);
			break;
		case 's':
			gio_seconds = strtoul(optarg, NULL, 0);
			break;
		case 'N':
			gio_name = optarg;
			break;
		default:
			gio_usage();
		}
	}
	if (!gio_nthreads || gio_nthreads > GIO_MAX_THREADS ||
	    gio_blocks < gio_nthreads || !gio_interval_ms)
		gio_usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	/*
	 * nvme-tcp (6.12) sends a request from the submitting task without
	 * MSG_NOSIGNAL: when the connection breaks, the workload itself
	 * gets SIGPIPE, although its I/O is only requeued.
	 */
	signal(SIGPIPE, SIG_IGN);
	gio_crc_init();
	gio_fd = open(gio_dev, O_RDWR | O_DIRECT);
	if (gio_fd < 0) {
		gio_out("fatal open %s: %s\n", gio_dev, strerror(errno));
		return 1;
	}
	gio_out("start dev=%s threads=%u blocks=%" PRIu64
	       " interval_ms=%u\n", gio_dev, gio_nthreads, gio_blocks,
	       gio_interval_ms);
	for (unsigned int i = 0; i < gio_nthreads; i++) {
		struct gio_thread *t = &gio_threads[i];
		u64 per = gio_blocks / gio_nthreads;

		t->idx = i;
		t->first = gio_offset_blocks + i * per;
		t->count = per;
		t->gen = calloc(per, sizeof(*t->gen));
		if (!t->gen ||
		    pthread_create(&t->tid, NULL, gio_worker, t)) {
			gio_out("fatal thread %u\n", i);
			return 1;
		}
	}

	start = gio_now_ns();
	next = start + gio_interval_ms * 1000000ULL;
	for (;;) {
		u64 now = gio_now_ns();
		int wait_ms = now < next ? (int)((next - now) / 1000000) : 0;

		if (gio_stdin_cmd(wait_ms))
			break;
		now = gio_now_ns();
		if (now < next)
			continue;
		next += gio_interval_ms * 1000000ULL;
		if (next < now)	/* the guest was stopped: do not catch up */
			next = now + gio_interval_ms * 1000000ULL;
		gio_sum(&ios, &errs, &mis);
		gio_out("tick t_ms=%" PRIu64 " ios=%" PRIu64
		       " d_ios=%" PRIu64 " err=%" PRIu64 " mis=%" PRIu64
		       " max_lat_us=%" PRIu64 "\n", (now - start) / 1000000,
		       ios, ios - last_ios, errs, mis,
		       gio_tick_max_lat(now) / 1000);
		last_ios = ios;
		if (gio_seconds && now - start >= gio_seconds * 1000000000ULL)
			break;
	}
	__atomic_store_n(&gio_stop, 1, __ATOMIC_RELAXED);
	for (unsigned int i = 0; i < gio_nthreads; i++)
		pthread_join(gio_threads[i].tid, NULL);

	/* Every block written must still hold its last generation. */
	if (gio_verify_all(&vdone, &vmis))
		return 1;
	for (unsigned int i = 0; i < gio_nthreads; i++) {
		struct gio_thread *t = &gio_threads[i];

		if (t->max_lat_all_ns > max_all)
			max_all = t->max_lat_all_ns;
		if (!first_errno)
			first_errno = t->first_errno;
	}
	gio_sum(&ios, &errs, &mis);
	gio_out("summary ios=%" PRIu64 " err=%" PRIu64 " mis=%" PRIu64
	       " verified=%" PRIu64 " verify_mis=%" PRIu64
	       " max_lat_us=%" PRIu64 " runtime_ms=%" PRIu64 " errno=%d\n",
	       ios, errs, mis, vdone, vmis, max_all / 1000,
	       (gio_now_ns() - start) / 1000000, first_errno);
	return errs || mis || vmis ? 1 : 0;
}
