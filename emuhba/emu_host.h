/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the emuhba device model needs from its host, and nothing more.
 * The kernel module implements these over the VF's IOMMU domain, a host
 * block device and the MSI-X eventfds; userspace tests over a plain buffer.
 *
 * Calls into the model are serialised by the host; callbacks are made with
 * that serialisation held and must not call back into the model, except
 * that emu_nvme_blk_complete() may be called from inside blk_submit when a
 * backend completes synchronously.
 */
#ifndef EMU_HOST_H
#define EMU_HOST_H

#include "emu_compat.h"

enum emu_blk_op {
	EMU_BLK_READ = 1,
	EMU_BLK_WRITE,
	EMU_BLK_FLUSH,
	EMU_BLK_WRITE_ZEROES,
	EMU_BLK_DISCARD,
};

/*
 * One backend request. The model owns the structure until it is handed
 * back with emu_nvme_blk_complete(); the host may use host_priv freely.
 * len is the range in bytes, nlb << lba_shift computed by the model in 64
 * bits: a Dataset Management range or a Write Zeroes of 64 KiB blocks
 * reaches 4 GiB and more, so a host that shifted itself in 32 bits would
 * discard or zero only part of it and report success. Reads and writes
 * move their data through buf (len bytes), which the model obtained from
 * buf_alloc; a flush has no range (len 0).
 */
struct emu_blk_req {
	u32 op;			/* enum emu_blk_op */
	u32 nsid;		/* 0xffffffff: every namespace (flush) */
	u64 slba;
	u64 len;		/* bytes of the range, nlb << lba_shift */
	u32 nlb;		/* number of logical blocks, not 0's based */
	u32 lba_shift;
	void *buf;
	void *host_priv;
};

struct emu_host_ops {
	/*
	 * Guest memory by IOVA. Return 0, or a negative errno when any part
	 * of the range is not mapped; the model turns that into an NVMe Data
	 * Transfer Error and never retries. dma_write marks the pages dirty.
	 */
	int (*dma_read)(void *host, u64 iova, void *buf, u32 len);
	int (*dma_write)(void *host, u64 iova, const void *buf, u32 len);
	/*
	 * Bounce buffers for backend data (at most MDTS bytes, or one page
	 * for Dataset Management ranges). NULL makes the model leave the
	 * command in its submission queue and retry on a later poll.
	 */
	void *(*buf_alloc)(void *host, u32 len);
	void (*buf_free)(void *host, void *buf, u32 len);
	/*
	 * Start a backend request. 0: accepted, emu_nvme_blk_complete()
	 * follows (possibly before blk_submit returns). -EAGAIN: busy, the
	 * model retries later. Any other negative errno fails the command.
	 */
	int (*blk_submit)(void *host, struct emu_blk_req *req);
	/* Signal MSI-X (or the pin/MSI) vector. */
	void (*irq_raise)(void *host, u16 vector);
	/* Monotonic time in nanoseconds, for coalescing and Keep Alive. */
	u64 (*now_ns)(void *host);
};

#endif /* EMU_HOST_H */
