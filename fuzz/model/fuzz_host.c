// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzzing host: guest memory is one small buffer at FH_BASE; every access
 * outside it is refused, so any model access out of bounds is either an
 * error status or an ASan report, never silent.
 */
#include <stdlib.h>
#include <string.h>
#include "fuzz_host.h"

u8 fh_byte(struct fh *fh)
{
	return fh->in_pos < fh->in_len ? fh->in[fh->in_pos++] : 0;
}

static int fh_range(u64 iova, u32 len)
{
	return iova >= FH_BASE && iova - FH_BASE <= FH_MEM &&
	       len <= FH_MEM - (iova - FH_BASE);
}

static int fh_read(void *h, u64 iova, void *buf, u32 len)
{
	struct fh *fh = h;

	if (!fh_range(iova, len))
		return -EFAULT;
	memcpy(buf, fh->mem + (iova - FH_BASE), len);
	return 0;
}

static int fh_write(void *h, u64 iova, const void *buf, u32 len)
{
	struct fh *fh = h;

	if (!fh_range(iova, len))
		return -EFAULT;
	memcpy(fh->mem + (iova - FH_BASE), buf, len);
	return 0;
}

static void *fh_alloc(void *h, u32 len)
{
	struct fh *fh = h;

	if (fh->bufs > 32)
		return NULL;
	fh->bufs++;
	return malloc(len ? len : 1);
}

static void fh_free(void *h, void *buf, u32 len)
{
	struct fh *fh = h;

	(void)len;
	fh->bufs--;
	free(buf);
}

static int fh_do(struct fh *fh, struct emu_blk_req *r)
{
	u64 off = r->slba << r->lba_shift, n = r->len;

	if (r->op == EMU_BLK_FLUSH)
		return 0;
	/* The model validated the range: anything else is a model bug. */
	if (r->lba_shift != 12 || off > sizeof(fh->disk) ||
	    n > sizeof(fh->disk) - off || n != (u64)r->nlb << r->lba_shift)
		abort();
	if (r->op == EMU_BLK_READ)
		memcpy(r->buf, fh->disk + off, n);
	else if (r->op == EMU_BLK_WRITE)
		memcpy(fh->disk + off, r->buf, n);
	else
		memset(fh->disk + off, 0, n);
	switch (fh_byte(fh) & 7) {
	case 1:
		return -EIO;
	case 2:
		return -ENOSPC;
	default:
		return 0;
	}
}

static int fh_submit(void *h, struct emu_blk_req *r)
{
	struct fh *fh = h;
	u8 b = fh_byte(fh);

	if ((b & 0xf) == 1 || fh->npend >= FH_PEND)
		return -EAGAIN;
	if ((b & 0xf) == 2)
		return -EIO;
	if ((b & 0xf) == 3) {
		emu_nvme_blk_complete(fh->ctrl, r, fh_do(fh, r));
		return 0;
	}
	fh->pend[fh->npend++] = r;
	return 0;
}

int fh_backend(struct fh *fh, int n)
{
	int done = 0;

	while (fh->npend && done < n) {
		int i = fh_byte(fh) % fh->npend;
		struct emu_blk_req *r = fh->pend[i];

		fh->pend[i] = fh->pend[--fh->npend];
		emu_nvme_blk_complete(fh->ctrl, r, fh_do(fh, r));
		done++;
	}
	return done;
}

static void fh_irq(void *h, u16 v)
{
	(void)h;
	(void)v;
}

static u64 fh_now(void *h)
{
	struct fh *fh = h;

	return fh->now += 50000;
}

const struct emu_host_ops fh_ops = {
	.dma_read = fh_read,
	.dma_write = fh_write,
	.buf_alloc = fh_alloc,
	.buf_free = fh_free,
	.blk_submit = fh_submit,
	.irq_raise = fh_irq,
	.now_ns = fh_now,
};

struct fh *fh_get(void)
{
	static struct fh *fh;

	if (!fh) {
		fh = calloc(1, sizeof(*fh));
		fh->ctrl = calloc(1, emu_nvme_ctrl_size());
	}
	return fh;
}

void fh_reset(struct fh *fh)
{
	static u8 idc[4096], idns[4096];
	u64 cap = 63 | (1ULL << 16) | (15ULL << 24) | (1ULL << 36) |
		  (1ULL << 37) | (1ULL << 43) | (4ULL << 52);
	int i;

	while (fh->npend)
		emu_nvme_blk_complete(fh->ctrl, fh->pend[--fh->npend], 0);
	if (!idc[0]) {
		idc[0] = 0x36;
		idc[77] = 3;
		emu_put_le16(idc + 256, 0x1aa);
		idc[259] = 3;
		idc[262] = 3;
		idc[512] = 0x66;
		idc[513] = 0x44;
		emu_put_le32(idc + 516, 1);
		emu_put_le16(idc + 520, 0x5d);
		idc[525] = 1;
		idc[265] = 1;
		emu_put_le32(idc + 536, 0x80001);
		emu_put_le64(idns, FH_BLOCKS);
		emu_put_le64(idns + 8, FH_BLOCKS);
		for (i = 0; i < 16; i++)
			idns[104 + i] = (u8)i;
		idns[130] = 12;
	}
	memset(fh->ctrl, 0, emu_nvme_ctrl_size());
	emu_nvme_init(fh->ctrl, &fh_ops, fh);
	emu_nvme_set_hw(fh->ctrl, cap, 0x10400, 4, 4, 4);
	emu_nvme_load_identify(fh->ctrl, 1, 0, 0, 1, idc);
	emu_nvme_load_identify(fh->ctrl, 0, 0, 1, 1, idns);
	emu_nvme_start_disabled(fh->ctrl);
	memset(fh->mem, 0, sizeof(fh->mem));
	fh->bufs = 0;
	fh->npend = 0;
}
