// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: command processing. The input is a program of guest
 * actions: admin and I/O submissions with arbitrary SQEs, arbitrary guest
 * memory contents (PRP lists, SGLs), doorbell and register writes, polls,
 * backend completions, state image round trips and observer calls. The
 * model must not crash, hang or touch memory outside the guest's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_host.h"

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

#define ASQ	(FH_BASE + 0x0000)
#define ACQ	(FH_BASE + 0x1000)

static void wreg(struct fh *fh, u32 off, u32 v)
{
	emu_nvme_reg_write(fh->ctrl, off, v, 4);
}

static void admin(struct fh *fh, u16 *tail, const u8 *sqe)
{
	memcpy(fh->mem + (ASQ - FH_BASE) + 64 * *tail, sqe, 64);
	*tail = (*tail + 1) % 16;
	emu_nvme_doorbell_write(fh->ctrl, 0x1000, *tail);
	emu_nvme_poll(fh->ctrl, 16);
}

static void setup(struct fh *fh, u16 *atail)
{
	u8 sqe[64];
	u16 q;

	wreg(fh, EMU_REG_AQA, 0x000f000f);
	wreg(fh, EMU_REG_ASQ, (u32)ASQ);
	wreg(fh, EMU_REG_ACQ, (u32)ACQ);
	wreg(fh, EMU_REG_CC, (6U << 4) | (6U << 16) | (4U << 20) | 1);
	/* Two I/O queue pairs of 16 entries at fixed places. */
	for (q = 1; q <= 2; q++) {
		memset(sqe, 0, 64);
		sqe[0] = 0x05;
		emu_put_le64(sqe + 24, FH_BASE + 0x2000 * q + 0x1000);
		emu_put_le32(sqe + 40, (15U << 16) | q);
		emu_put_le32(sqe + 44, ((u32)q << 16) | 3);
		admin(fh, atail, sqe);
		sqe[0] = 0x01;
		emu_put_le64(sqe + 24, FH_BASE + 0x2000 * q);
		emu_put_le32(sqe + 44, ((u32)q << 16) | 1);
		admin(fh, atail, sqe);
	}
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static u8 img[1 << 17];
	struct fh *fh = fh_get();
	u16 atail = 0, tails[3] = { 0, 0, 0 };
	char err[128];
	int steps = 0;

	fh_reset(fh);
	fh->in = data;
	fh->in_len = size;
	fh->in_pos = 0;
	setup(fh, &atail);
	tails[0] = atail;
	while (fh->in_pos < size && steps++ < 256) {
		u8 op = fh_byte(fh), sqe[64];
		u32 off, v, i, n;
		u16 q;

		switch (op % 10) {
		case 0:	/* admin command */
		case 1:	/* I/O command */
			q = op % 10 ? 1 + fh_byte(fh) % 2 : 0;
			for (i = 0; i < 64; i++)
				sqe[i] = fh_byte(fh);
			/* Aim data pointers into guest memory most times. */
			if (!(sqe[63] & 0x80)) {
				emu_put_le64(sqe + 24, FH_BASE + 0x8000 +
					     (emu_get_le32(sqe + 24) % 0x30000));
				emu_put_le64(sqe + 32, FH_BASE + 0x8000 +
					     (emu_get_le32(sqe + 32) % 0x30000));
			}
			if (!q)
				sqe[1] &= 0x3f;
			off = q ? FH_BASE + 0x2000 * q : ASQ;
			memcpy(fh->mem + (off - FH_BASE) + 64 * tails[q], sqe,
			       64);
			tails[q] = (tails[q] + 1) % 16;
			emu_nvme_doorbell_write(fh->ctrl, 0x1000 + 8 * q,
						tails[q]);
			break;
		case 2:	/* doorbell */
			off = 0x1000 + fh_byte(fh) * 4;
			v = fh_byte(fh) | (fh_byte(fh) << 8);
			emu_nvme_doorbell_write(fh->ctrl, off, v);
			break;
		case 3:	/* guest memory: PRP lists, SGLs, ranges, shadows */
			off = (fh_byte(fh) | (fh_byte(fh) << 8)) * 4 % FH_MEM;
			n = fh_byte(fh) % 64;
			for (i = 0; i < n && off + i < FH_MEM; i++)
				fh->mem[off + i] = fh_byte(fh);
			break;
		case 4:
			emu_nvme_poll(fh->ctrl, fh_byte(fh));
			break;
		case 5:
			fh_backend(fh, fh_byte(fh) % 16);
			break;
		case 6:	/* register write */
			off = (fh_byte(fh) % 16) * 4;
			v = fh_byte(fh) | (fh_byte(fh) << 8) |
			    ((u32)fh_byte(fh) << 24);
			emu_nvme_reg_write(fh->ctrl, off, v, 4);
			emu_nvme_reg_read(fh->ctrl, off, fh_byte(fh) & 1 ? 8 : 4);
			break;
		case 7:	/* migrate: quiesce, export, import */
			fh_backend(fh, FH_PEND);
			n = (u32)emu_img_export(fh->ctrl, img, sizeof(img), 0);
			if ((int)n > 0 && emu_img_import(fh->ctrl, img, n, err,
							 sizeof(err))) {
				fprintf(stderr, "re-import refused: %s\n",
					err);
				abort();
			}
			break;
		case 8:	/* events */
			emu_nvme_async_event(fh->ctrl, fh_byte(fh) % 8,
					     fh_byte(fh), fh_byte(fh));
			emu_nvme_ns_changed(fh->ctrl, fh_byte(fh));
			break;
		case 9:	/* observer on an arbitrary admin pair */
			for (i = 0; i < 64; i++)
				sqe[i] = fh_byte(fh);
			emu_nvme_handback(fh->ctrl);
			emu_nvme_observe_admin(fh->ctrl, sqe, sqe + 48,
					       fh->mem, 4096);
			emu_nvme_observe_reg_write(fh->ctrl, fh_byte(fh) % 0x40,
						   emu_get_le32(sqe), 4);
			{
				struct emu_nvme_positions *p =
					calloc(1, sizeof(*p));

				emu_nvme_takeover(fh->ctrl, p, err,
						  sizeof(err));
				free(p);
			}
			break;
		}
	}
	/* Whatever happened, everything handed out comes back. */
	for (steps = 0; steps < 64 && (fh->npend ||
				       emu_nvme_inflight(fh->ctrl)); steps++) {
		fh_backend(fh, FH_PEND);
		emu_nvme_poll(fh->ctrl, 64);
	}
	if (fh->npend)
		abort();
	return 0;
}
