/* SPDX-License-Identifier: GPL-2.0-only */
/* A small, fast host for fuzzing the emuhba model. */
#ifndef FUZZ_HOST_H
#define FUZZ_HOST_H

#include "../../emuhba/emu_nvme.h"
#include "../../emuhba/emu_img.h"

#define FH_BASE		0x10000ULL
#define FH_MEM		(256U << 10)
#define FH_BLOCKS	256
#define FH_PEND		64

struct fh {
	struct emu_nvme_ctrl *ctrl;
	u8 mem[FH_MEM];
	u8 disk[FH_BLOCKS * 4096];
	struct emu_blk_req *pend[FH_PEND];
	int npend;
	int bufs;
	u64 now;
	const u8 *in;			/* input bytes for backend decisions */
	size_t in_len;
	size_t in_pos;
};

extern const struct emu_host_ops fh_ops;
struct fh *fh_get(void);
/* Fresh controller with the identity of a QEMU-like VF, disabled. */
void fh_reset(struct fh *fh);
u8 fh_byte(struct fh *fh);
int fh_backend(struct fh *fh, int n);

#endif
