/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A miniature VMM for the in-VM tests: "guest memory" mapped through a VFIO
 * type1 container, an NVMe VF opened through VFIO, and a driver that brings
 * the controller up the way Linux's nvme driver does (admin queue, Identify,
 * Number of Queues, I/O queues with MSI-X eventfds, optional shadow
 * doorbells with EventIdx, an outstanding AER), then runs checksummed I/O.
 */
#ifndef MINIVMM_H
#define MINIVMM_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>

#define MVMM_MAX_IOQ	8
#define MVMM_QDEPTH	32
#define MVMM_ADMIN_Q	32

/*
 * Which doorbells the guest rings. Real SSDs lack Doorbell Buffer Config
 * (OACS bit 8), QEMU's VFs have it unless dbcs=off: a test that is about
 * shadow doorbells asks for them and skips without them; a test that only
 * needs "a guest" behaves as Linux's nvme driver does.
 */
enum mvmm_doorbells {
	MVMM_DB_MMIO,		/* MMIO doorbell writes only */
	MVMM_DB_SHADOW,		/* shadow doorbells, -EOPNOTSUPP without them */
	MVMM_DB_LINUX,		/* shadow doorbells when OACS bit 8 is set */
};

struct mvmm_queue {
	uint16_t qid;
	uint16_t depth;
	uint64_t sq_iova, cq_iova;
	uint8_t *sq, *cq;
	uint16_t sq_tail, cq_head;
	uint8_t phase;
	uint16_t vector;
	int efd;		/* eventfd of the CQ's vector */
	uint16_t next_cid;
	/* outstanding commands by CID: LBA written or read, 0 = free */
	uint64_t busy[MVMM_QDEPTH];
	uint32_t nr_busy;
	/*
	 * By CID: submission number (vm-wide) and time, to tell completions
	 * that overtook older commands and how long a command was out.
	 */
	uint64_t seq[MVMM_QDEPTH];
	uint64_t sub_us[MVMM_QDEPTH];
	/*
	 * The guest submits nothing more here (its completions are still
	 * reaped): a queue that goes idle with commands outstanding.
	 */
	bool hold;
	/*
	 * By SQ slot: the CID submitted there, and whether its completion is
	 * still due. sq_head: the SQ Head Pointer of the last completion
	 * consumed. Together they bound what each completion's SQHD may be
	 * (the controller fetches in order, and completes only what it
	 * fetched).
	 */
	uint16_t slot_cid[MVMM_QDEPTH];
	bool slot_out[MVMM_QDEPTH];
	uint16_t sq_head;
};

struct mvmm {
	const char *bdf;
	int container, group, device;
	/* guest memory */
	uint8_t *mem;
	uint64_t mem_iova;
	size_t mem_size, mem_used;
	/* BAR0 */
	uint64_t bar0_off;	/* region offset for pread/pwrite */
	uint64_t bar0_size;
	volatile uint32_t *db;	/* mmap of BAR0 from 4 KiB on */
	/* doorbells through the region (pwrite), as a VMM without the mmap */
	bool db_pwrite;
	void *db_map;
	size_t db_map_len;
	uint64_t cap;
	uint32_t dstrd;
	/* MSI-X */
	int nr_vectors;
	int efd[MVMM_MAX_IOQ + 1];
	/* controller */
	struct mvmm_queue admin;
	struct mvmm_queue ioq[MVMM_MAX_IOQ];
	int nr_ioq;
	bool dbbuf;		/* the guest uses shadow doorbells */
	uint16_t oacs;		/* Identify Controller's OACS */
	/* why the last mvmm_nvme_init() could not use shadow doorbells */
	char no_dbbuf_why[160];
	uint64_t dbs_iova, eis_iova;
	uint32_t *dbs, *eis;
	uint32_t nsid;
	uint32_t lba_shift;
	uint64_t nsze;
	uint16_t mdts_bytes;
	uint16_t aer_cid;
	char sn[21], mn[41];
	uint16_t cntlid;
	uint64_t id_iova;	/* two pages for mvmm_identify() */
	/* data: one buffer page per queue slot */
	uint64_t data_iova;
	uint8_t *data;
	/*
	 * By LBA (from lba_base): the generation of the last write submitted
	 * (0: never written), and that of the last write that completed
	 * successfully. They differ after a write failed or was aborted by a
	 * controller reset: the block may then hold any generation between.
	 */
	uint32_t *gen;
	uint32_t *ok_gen;
	/* blocks the I/O uses: set before the first I/O for fewer than 4096 */
	uint64_t nr_lbas;
	/*
	 * The first of them (0 by default): guests that share a namespace in
	 * one test keep apart, so each can read back exactly what it wrote.
	 */
	uint64_t lba_base;
	/*
	 * Completions checked for SQ Identifier and SQ Head Pointer, those
	 * where one SQHD only was right, and those wrong (the first one's
	 * details in cqe_bad_why).
	 */
	uint64_t cqe_checked, cqe_exact, cqe_bad;
	char cqe_bad_why[200];
	/* the read-back under way (mvmm_read_back), or NULL */
	struct mvmm_readback *rb;
	uint64_t completions, mismatches, errors, duplicates;
	uint64_t submitted;	/* I/O commands submitted (mvmm_io_*) */
	/* completions that came before an older command of their queue */
	uint64_t reordered;
	uint64_t next_seq;
	/* the longest time a write [0] and a read [1] were outstanding */
	uint64_t max_lat_us[2];
	uint64_t *gdirty;	/* pages the guest wrote since the last sync */
	/* fault injection: alters the migration stream before the resume */
	void (*tamper)(uint8_t *stream, size_t *len);
	/*
	 * Commands per queue the guest submits once the source device has
	 * stopped (its last submissions before the vCPUs stop, which only
	 * the destination can run); 0 for none.
	 */
	int fill_at_stop;
	/*
	 * Commands per queue the guest keeps out on every queue while the
	 * device enters pre-copy (and switches), as a running VM does; 0:
	 * the guest is idle then.
	 */
	int io_during_switch;
	/* send the pre-copy data to the destination while the guest runs */
	bool precopy_to_dest;
	/*
	 * What the guest does during pre-copy, once the first pre-copy data
	 * has been read (NULL: nothing); a non-zero return ends the
	 * migration with that error.
	 */
	int (*in_precopy)(struct mvmm *vm);
	/*
	 * Makes the destination's RESUMING -> STOP arc instead of
	 * mvmm_migrate() (NULL: the plain arc), with dst's container, VF
	 * and guest memory ready; it may replace dst->mem (the same size, at
	 * the same IOVA). 0 or a negative errno, which ends the migration.
	 */
	int (*resume_stop)(struct mvmm *vm, struct mvmm *dst);
	/*
	 * The next mvmm_nvme_init() enables the controller without disabling
	 * it first, as a driver may right after a reset (CC is 0 then).
	 */
	bool no_disable_first;
};

int mvmm_open(struct mvmm *vm, const char *bdf, size_t mem_size);
void mvmm_close(struct mvmm *vm);
/*
 * Bring the controller up as Linux does; returns 0 or a negative errno,
 * -EOPNOTSUPP when MVMM_DB_SHADOW is asked of a controller without
 * Doorbell Buffer Config (OACS bit 8 clear, or the command refused), with
 * the reason in vm->no_dbbuf_why.
 */
int mvmm_nvme_init(struct mvmm *vm, int nr_ioq, enum mvmm_doorbells db);
/* "shadow" or "mmio": the doorbells the guest rings now. */
const char *mvmm_doorbells_name(const struct mvmm *vm);
/*
 * For kselftest_harness tests that ask for MVMM_DB_SHADOW: when
 * mvmm_nvme_init() returned -EOPNOTSUPP (a VF without shadow doorbells, as
 * real SSDs' are), close vm and skip the test with the reason, which the
 * harness prints as "SKIP <reason>" and on the test's "ok ... # SKIP"
 * line (scripts/ktap-summary names every skipped test). Usable in
 * FIXTURE_SETUP and in test bodies.
 */
#define MVMM_SKIP_IF_NO_DBBUF(ret, vm) do {				\
	if ((ret) == -EOPNOTSUPP) {					\
		mvmm_close(vm);						\
		SKIP(return, "%s", (vm)->no_dbbuf_why);		\
	}								\
} while (0)
/* Disable the controller (CC.EN = 0) and wait for CSTS.RDY = 0. */
int mvmm_nvme_disable(struct mvmm *vm);
/*
 * Run nr_ios checksummed writes and read-back verifications over nr_lbas
 * blocks, spread over all I/O queues with up to qd commands each in flight.
 */
int mvmm_io_run(struct mvmm *vm, uint64_t nr_ios, int qd);
/* The same, going on while more(arg) is true even past nr_ios. */
int mvmm_io_run_while(struct mvmm *vm, uint64_t nr_ios, int qd,
		      bool (*more)(void *arg), void *arg);
/*
 * Run argv (a path and its arguments; stdout dropped when quiet) while the
 * I/O goes on at qd per queue; its exit status, or a negative errno.
 */
int mvmm_exec_during_io(struct mvmm *vm, int qd, bool quiet,
			char *const argv[]);
/* Submit one admin command and wait for it; returns the NVMe status. */
int mvmm_admin(struct mvmm *vm, uint8_t *sqe, uint32_t *result);
/* Submit one admin command and return its CID at once (no wait, no reap). */
int mvmm_admin_submit(struct mvmm *vm, uint8_t *sqe);
/* Identify, interrupt-driven, into out (4096 bytes); the NVMe status. */
int mvmm_identify(struct mvmm *vm, uint8_t cns, uint32_t nsid,
		  uint8_t *out, unsigned int offset);
uint32_t mvmm_reg_read32(struct mvmm *vm, uint32_t off);
uint64_t mvmm_reg_read64(struct mvmm *vm, uint32_t off);
void mvmm_reg_write32(struct mvmm *vm, uint32_t off, uint32_t val);
/* Read a sysfs or debugfs attribute of the VF into buf; -1 on failure. */
struct mvmm_mig_stats {
	uint64_t total_ms, downtime_ms;
	size_t precopy_bytes, state_bytes;
	size_t sync0_pages;	/* reported by the sync before PRE_COPY */
	size_t dirty_pages;	/* reported by the syncs after it */
	size_t stale_pages;	/* differing after the last copy: must be 0 */
	size_t pending_at_stop;	/* submitted after the source stopped */
	bool refused_in_precopy;	/* the destination refused the pre-copy */
	/* PRE_COPY_INFO before the iteration's read of device data */
	uint64_t iter_initial_bytes, iter_dirty_bytes;
	size_t iter_bytes;	/* pre-copy data that read gave */
};

/* Submit up to qd commands on every I/O queue and return at once. */
int mvmm_io_fill(struct mvmm *vm, int qd);
/*
 * One checksummed write, or a verifying read, of lba on I/O queue qi; no
 * wait. -EBUSY when the queue is full or lba has a command outstanding.
 * For tests that need a given mix per queue (mvmm_io_run picks at random).
 */
int mvmm_io_submit(struct mvmm *vm, int qi, uint64_t lba, bool read);
/* Reap every I/O queue once; the number of completions. */
int mvmm_io_reap(struct mvmm *vm);
/* Reap until nothing is outstanding: 0, or -ETIMEDOUT after timeout_ms. */
int mvmm_io_drain(struct mvmm *vm, int timeout_ms);
/*
 * What mvmm_read_back() found. Uncertain LBAs are those whose last write
 * failed or was aborted by a reset: old or new contents both pass.
 */
struct mvmm_readback {
	bool allow_uncertain;
	uint64_t lbas;		/* LBAs read back */
	uint64_t exact;		/* holding the last write, which succeeded */
	uint64_t uncertain;	/* holding an acceptable generation */
	uint64_t unreadable;	/* uncertain, never written successfully, unreadable */
	uint64_t bad;		/* wrong contents or read error */
	uint64_t ms;		/* how long it took */
};

/*
 * Drain, then read back every LBA vm ever wrote, on the device as it is
 * now, each checked against the last write the guest saw succeed. Each
 * difference is printed ("# read-back: LBA ..."). Without allow_uncertain
 * an LBA whose last write did not succeed is a difference too. 0, -EIO
 * on a difference, -EPROTO after a wrong completion entry (SQ Identifier
 * or SQHD), or another negative errno.
 */
int mvmm_read_back(struct mvmm *vm, bool allow_uncertain,
		   struct mvmm_readback *rb);
/*
 * For kselftest_harness tests, at the end of a guest's workload (after
 * its last switch or migration): everything vm wrote reads back exactly,
 * and every completion entry it consumed had the right SQ Identifier and
 * SQHD; logs how many LBAs and completions that covered.
 */
#define MVMM_EXPECT_READ_BACK(vm) \
	_MVMM_EXPECT_READ_BACK(vm, false)
/* The same where the test makes writes fail: see mvmm_readback. */
#define MVMM_EXPECT_READ_BACK_UNCERTAIN(vm) \
	_MVMM_EXPECT_READ_BACK(vm, true)
#define _MVMM_EXPECT_READ_BACK(vm, allow) do {				\
	struct mvmm_readback __rb;					\
	int __ret = mvmm_read_back(vm, allow, &__rb);			\
									\
	EXPECT_EQ(0, __ret) TH_LOG("read-back on %s: %d (%s)",	\
				   (vm)->bdf, __ret, strerror(-__ret)); \
	EXPECT_EQ(0, __rb.bad);						\
	EXPECT_LT(0, __rb.lbas) TH_LOG("nothing to read back");	\
	EXPECT_EQ(0, (vm)->cqe_bad) TH_LOG("%s", (vm)->cqe_bad_why);	\
	TH_LOG("read back %llu LBAs on %s in %llu ms: %llu exact, %llu uncertain (%llu of them unreadable), %llu wrong; %llu completions checked for SQID and SQHD, %llu with one SQHD right, %llu wrong", \
	       (unsigned long long)__rb.lbas, (vm)->bdf,		\
	       (unsigned long long)__rb.ms,				\
	       (unsigned long long)__rb.exact,				\
	       (unsigned long long)__rb.uncertain,			\
	       (unsigned long long)__rb.unreadable,			\
	       (unsigned long long)__rb.bad,				\
	       (unsigned long long)(vm)->cqe_checked,			\
	       (unsigned long long)(vm)->cqe_exact,			\
	       (unsigned long long)(vm)->cqe_bad);			\
} while (0)
/*
 * For tests that consume completions without reading anything back: every
 * completion entry had the right SQ Identifier and SQHD.
 */
#define MVMM_EXPECT_CQES_EXACT(vm) do {					\
	EXPECT_EQ(0, (vm)->cqe_bad) TH_LOG("%s", (vm)->cqe_bad_why);	\
	EXPECT_LT(0, (vm)->cqe_checked);				\
	TH_LOG("%llu completions checked for SQID and SQHD, %llu with one SQHD right", \
	       (unsigned long long)(vm)->cqe_checked,			\
	       (unsigned long long)(vm)->cqe_exact);			\
} while (0)
/*
 * Forget what the guest wrote so far, as when the test gave it another
 * disk: reads and the read-back cover only the writes from here on.
 */
void mvmm_io_forget(struct mvmm *vm);
/* Commands outstanding on all I/O queues. */
uint32_t mvmm_io_outstanding(const struct mvmm *vm);
/*
 * For a test's failure report: every I/O queue's positions and the
 * commands it still has out (CID, read or write, LBA, age), as "# " lines.
 */
void mvmm_io_dump(const struct mvmm *vm, FILE *f);
/*
 * Migrate the VF's state to dst_bdf through the VFIO migration uAPI as QEMU
 * does (type1 dirty tracking, PRE_COPY, one iteration that sends memory and
 * the device's further pre-copy data, STOP_COPY, RESUMING, RUNNING), with a
 * new container and a copy of guest memory made from the dirty log; the
 * guest (vm) then runs on dst_bdf.
 */
int mvmm_migrate(struct mvmm *vm, const char *dst_bdf,
		 struct mvmm_mig_stats *st);
/*
 * Append what a saving fd gives, up to its (temporary) end, to *buf
 * (*len bytes so far); 0 or a negative errno.
 */
int mvmm_read_stream(int fd, uint8_t **buf, size_t *len);
/* The device's VFIO migration state, or ~0u when it cannot be read. */
uint32_t mvmm_get_mig_state(struct mvmm *vm);
/* Emulation threads (named emuhba/N) of every adapter, or -1. */
int mvmm_emul_threads(void);
/* One VFIO migration state change of the device; data_fd may be NULL. */
int mvmm_set_mig_state(struct mvmm *vm, uint32_t state, int *data_fd);
/* How mvmm_bench_reads() waits for completions, and what it saw. */
struct mvmm_bench {
	bool irq;		/* on the MSI-X eventfds (else busy-polling) */
	uint64_t ios;		/* commands completed */
	uint64_t wakeups;	/* poll() returns with a vector fired */
	uint64_t irqs;		/* vectors handled */
	uint64_t stalls;	/* waits that timed out with completions in a CQ */
};

/* Random reads at depth qd per queue for ms. */
int mvmm_bench_reads(struct mvmm *vm, int qd, unsigned int ms,
		     struct mvmm_bench *b);
/* Guest memory for a test's own buffers: the IOVA (0 if full) and *va. */
uint64_t mvmm_mem_alloc(struct mvmm *vm, size_t len, void **va);
/*
 * One command on I/O queue qi with a CID of its own; nothing else may be in
 * flight there. Returns the NVMe status or a negative errno.
 */
int mvmm_io_cmd(struct mvmm *vm, int qi, uint8_t *sqe, int timeout_ms);
/* A Function Level Reset through the emulated config space, as a guest. */
int mvmm_flr(struct mvmm *vm);
/* The IOMMU group number of a PCI device, or -1. */
int mvmm_iommu_group(const char *bdf);
int mvmm_attr(const char *bdf, const char *attr, char *buf, size_t len);
long long mvmm_attr_ll(const char *bdf, const char *attr);

#endif
