/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Userspace host for the emuhba NVMe model (guest memory, memory block
 * backend with asynchronous completion, interrupts, clock) and a guest-side
 * driver that programs the model the way Linux's nvme driver does.
 */
#ifndef EMU_TEST_LIB_H
#define EMU_TEST_LIB_H

#include <stdio.h>
#include <stdlib.h>
#include "../../emuhba/emu_nvme.h"
#include "../../emuhba/emu_img.h"

#define TH_MEM_BASE	0x10000000ULL
#define TH_MEM_SIZE	(48U << 20)
#define TH_MAX_PEND	1024
#define TH_NS_BLOCKS	4096	/* 16 MiB of 4 KiB blocks */

struct th {
	struct emu_nvme_ctrl *ctrl;
	u8 *mem;
	u64 brk;			/* guest page allocator */
	u8 *disk;
	u64 disk_bytes;
	u32 lba_shift;
	struct emu_blk_req *pend[TH_MAX_PEND];
	int npend;
	int sync;			/* complete inside blk_submit */
	int sync_more;			/* ... as one of a batch */
	int eagain_pct;			/* refuse this share of submissions */
	int fail_next;			/* -errno for the next backend op */
	int eagain_next;		/* refuse so many next submissions */
	int nobuf_next;			/* fail so many next buf_allocs */
	u64 submits;			/* blk_submit calls */
	u64 irqs[EMU_NVME_MAX_VEC];
	u64 dma_errors;
	u64 now;
	int clock_frozen;		/* now_ns() does not advance */
	u64 watch_lo, watch_hi;		/* guest memory [lo, hi) ... */
	u64 watch_writes;		/* ... dma_write calls touching it */
	u64 bufs;			/* bounce buffers outstanding */
	unsigned int seed;
};

extern const struct emu_host_ops th_ops;

unsigned int th_seed(unsigned int salt);
unsigned int th_rand(struct th *th);
void th_init(struct th *th, unsigned int seed);
void th_fini(struct th *th);
struct emu_nvme_ctrl *th_new_ctrl(struct th *th);
void th_free_ctrl(struct th *th);
/* Identity modelled on QEMU 10's NVMe VF (see PLATFORM.md). */
void th_load_identity(struct th *th, u32 lba_shift, u16 mqes, u16 nq);
void th_idctrl_page(u8 *p);
void th_idns_page(u8 *p, u32 lba_shift);
u64 th_alloc(struct th *th, u64 size, u64 align);
void *th_ptr(struct th *th, u64 iova);
/* Complete up to n pending backend requests in random order. */
int th_run_backend(struct th *th, int n);
/* Index in pend[] of the pending request for slba, or -1. */
int th_find_pend(const struct th *th, u64 slba);
/*
 * Complete pend[i], the others keeping their order; more: as one of a
 * batch (emu_nvme_blk_complete_more()). 0, or -1 without such a request.
 */
int th_complete_at(struct th *th, int i, int more);
/* Interrupts raised on all vectors. */
u64 th_irq_total(const struct th *th);

/* Guest driver ---------------------------------------------------------- */

#define DRV_MAXQ	17
#define DRV_MAXCID	1024

struct drv_cmd {
	int busy;
	u8 sqe[64];
	u16 status;
	u32 dw0;
	int done;
	u64 data_iova;
	u32 len;
	u64 slba;
	u32 nlb;
	u8 opc;
	u16 slot;		/* its SQ entry */
	u16 sqhd;		/* SQHD of its CQE */
};

struct drv_q {
	u16 qid;
	u16 size;
	u64 sq;
	u64 cq;
	u16 sq_tail;
	u16 sq_head;			/* from SQHD */
	u16 cq_head;
	u16 last_sqhd;
	u8 phase;
	u16 vector;
	int ien;
	u16 next_cid;
	int outstanding;
	struct drv_cmd cmd[DRV_MAXCID];
	u64 completions;
};

struct drv {
	struct th *th;
	struct drv_q q[DRV_MAXQ];
	int nr_io;
	int dbbuf;
	u64 dbs;
	u64 eis;
	u16 aer_cid;
	int aer_outstanding;
	u32 aer_dw0;
	int aer_done;
	int errors;			/* CQE checks that failed */
	void (*on_done)(struct drv *d, u16 qid, struct drv_cmd *c);
	void (*on_submit)(struct drv *d, u16 qid, const u8 *sqe);
	void (*on_wreg)(struct drv *d, u32 off, u64 val, u32 size);
	u16 cid_wrap;			/* CIDs cycle below this (default 512) */
	u64 mmio_doorbells;
	u64 mmio_sq_doorbells;
	u32 stride;			/* doorbell stride, from CAP */
	void *priv;
	char why[256];
};

u64 drv_reg(struct drv *d, u32 off, u32 size);
void drv_wreg(struct drv *d, u32 off, u64 val, u32 size);
int drv_wait_csts(struct drv *d, u32 mask, u32 val);
/* Linux nvme: disable, admin queue, enable. 0 or -1. */
/* A fresh driver on TH's controller, enabling it (drv_enable()). */
int drv_attach(struct drv *d, struct th *th, u16 aq_size);
int drv_enable(struct drv *d, u16 aq_size);
/*
 * The usual start: a new controller with the default identity (4 KiB LBAs,
 * MQES 2048, 16 queues), enabled by the driver with a 32-entry admin
 * queue. 0 or -1.
 */
int drv_start(struct drv *d, struct th *th, unsigned int seed);
/* The rest of Linux's bring-up: identify, queues, dbbuf, AER. */
int drv_bringup(struct drv *d, int nr_io, u16 qsize, int dbbuf, int ien);
/* Submit on queue qid; returns the CID. */
int drv_submit(struct drv *d, u16 qid, u8 *sqe);
int drv_submit_cid(struct drv *d, u16 qid, u8 *sqe, u16 cid);
/* Reap completions; returns the number reaped. */
int drv_reap(struct drv *d, u16 qid);
/* One synchronous admin command; returns status, dw0 in *dw0. */
int drv_admin(struct drv *d, u8 *sqe, u32 *dw0);
/* Set Features @fid to @val (CDW11); returns the status. */
int drv_set_feature(struct drv *d, u8 fid, u32 val);
void drv_sqe(u8 *sqe, u8 opc, u32 nsid);
void drv_set_dw(u8 *sqe, int n, u32 v);
void drv_set_prp(u8 *sqe, u64 prp1, u64 prp2);
/* Build PRPs (with a list when needed) for a contiguous guest buffer. */
void drv_map_prp(struct drv *d, u8 *sqe, u64 iova, u32 len);
/* Build an SGL of n data segments chained through a segment list. */
void drv_map_sgl(struct drv *d, u8 *sqe, u64 iova, u32 len, int nseg);
/* Poll model and backend until every command on every queue is done. */
int drv_drain(struct drv *d, int max_rounds);
int drv_aer_arm(struct drv *d);

#endif /* EMU_TEST_LIB_H */
