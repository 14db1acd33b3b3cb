// SPDX-License-Identifier: GPL-2.0-only
/*
 * The emulated mode's backend: a host block device that reaches the same
 * namespace as the VF (the PF's path to the shared namespace, a multipath
 * head, a fabric path). Requests are bios; completions come back in
 * interrupt context and are handed to the model by the emulation thread.
 */
#include <linux/bio.h>
#include <linux/delay.h>
#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/llist.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "emuhba.h"

/*
 * One allocation per backend request: its context sits in front of its
 * bio (the bio_set's front pad), and the bio comes from the bio_set's
 * per-CPU cache. The bio_set is shared by the adapters whose backend is
 * open.
 */
struct emuhba_bio_ctx {
	struct emuhba_adapter *a;
	struct emu_blk_req *req;
	struct llist_node node;
	struct bio bio;		/* last: its inline vecs follow it */
};

static struct bio_set emuhba_bio_set;
static unsigned int emuhba_bio_set_users;
static DEFINE_MUTEX(emuhba_bio_set_lock);

static int emuhba_bio_set_get(void)
{
	int ret = 0;

	mutex_lock(&emuhba_bio_set_lock);
	if (!emuhba_bio_set_users)
		ret = bioset_init(&emuhba_bio_set, BIO_POOL_SIZE,
				  offsetof(struct emuhba_bio_ctx, bio),
				  BIOSET_NEED_BVECS | BIOSET_PERCPU_CACHE);
	if (!ret)
		emuhba_bio_set_users++;
	mutex_unlock(&emuhba_bio_set_lock);
	return ret;
}

static void emuhba_bio_set_put(void)
{
	mutex_lock(&emuhba_bio_set_lock);
	if (!--emuhba_bio_set_users)
		bioset_exit(&emuhba_bio_set);
	mutex_unlock(&emuhba_bio_set_lock);
}

/*
 * The bio stays until the emulation thread takes its status: freed there,
 * in task context, it goes back to the per-CPU cache.
 */
static void emuhba_bio_end_io(struct bio *bio)
{
	struct emuhba_bio_ctx *ctx = container_of(bio, struct emuhba_bio_ctx,
						  bio);
	struct emuhba_adapter *a = ctx->a;

	llist_add(&ctx->node, &a->backend_done);
	emuhba_emul_kick(a);
	/* The last access to the adapter: a drain waits for it. */
	atomic_dec(&a->backend_inflight);
}

/*
 * Hand finished requests to the model, in the order they finished, with
 * one interrupt flush for all of them. Returns how many there were.
 */
int emuhba_backend_reap_locked(struct emuhba_adapter *a)
{
	struct llist_node *list = llist_del_all(&a->backend_done);
	struct emuhba_bio_ctx *ctx;
	struct emu_blk_req *req;
	int n = 0, status;

	lockdep_assert_held(&a->model_lock);
	list = llist_reverse_order(list);
	while (list) {
		ctx = llist_entry(list, struct emuhba_bio_ctx, node);
		list = list->next;
		req = ctx->req;
		status = blk_status_to_errno(ctx->bio.bi_status);
		bio_put(&ctx->bio);
		if (list)
			emu_nvme_blk_complete_more(a->model, req, status);
		else
			emu_nvme_blk_complete(a->model, req, status);
		n++;
	}
	return n;
}

void emuhba_backend_reap(struct emuhba_adapter *a)
{
	mutex_lock(&a->model_lock);
	emuhba_backend_reap_locked(a);
	mutex_unlock(&a->model_lock);
}

/*
 * A bio carries at most BIO_MAX_VECS pages and 4 GiB - 1 bytes: a longer
 * request is a chain of bios, the last of which completes the request
 * once every other has (bio_chain). Each bio's size stays a multiple of
 * 64 KiB, and so of any logical block.
 */
#define EMUHBA_BIO_MAX_BYTES	((u64)UINT_MAX & ~(u64)(SZ_64K - 1))

struct emuhba_bio_chain {
	struct block_device *bdev;
	blk_opf_t opf;
	sector_t sector;	/* of the next bio */
	struct bio *bio;	/* being filled; the one to complete last */
};

/* Start the next bio of the chain and submit the one before it. */
static void emuhba_bio_next(struct emuhba_bio_chain *c, unsigned short nr_vecs)
{
	struct bio *bio = bio_alloc_bioset(c->bdev, nr_vecs, c->opf, GFP_KERNEL,
					   &emuhba_bio_set);

	bio->bi_iter.bi_sector = c->sector;
	if (c->bio) {
		bio_chain(c->bio, bio);
		submit_bio(c->bio);
	}
	c->bio = bio;
}

/*
 * Each bio holds whole logical blocks and at most BIO_MAX_VECS pages, so
 * that no bio of the chain splits a block (with blocks above a page, a bio
 * cut where it happened to fill up could).
 */
static int emuhba_bio_add_buf(struct emuhba_bio_chain *c, void *buf, u64 len,
			      u32 lba_shift)
{
	u64 max = ALIGN_DOWN((u64)(BIO_MAX_VECS - 1) << PAGE_SHIFT,
			     1ULL << lba_shift);

	while (len) {
		u64 chunk = min(len, max), done = 0;

		emuhba_bio_next(c, DIV_ROUND_UP_ULL(chunk + offset_in_page(buf),
						    PAGE_SIZE));
		while (done < chunk) {
			u32 off = offset_in_page(buf);
			u32 n = min_t(u64, chunk - done, PAGE_SIZE - off);
			struct page *page = is_vmalloc_addr(buf) ?
				vmalloc_to_page(buf) : virt_to_page(buf);

			if (bio_add_page(c->bio, page, n, off) != n)
				return -EIO;
			buf += n;
			done += n;
		}
		c->sector += chunk >> SECTOR_SHIFT;
		len -= chunk;
	}
	return 0;
}

/* Discard and Write Zeroes: no data, only a size, split at 4 GiB. */
static void emuhba_bio_add_size(struct emuhba_bio_chain *c, u64 len)
{
	do {
		u32 n = min(len, EMUHBA_BIO_MAX_BYTES);

		emuhba_bio_next(c, 0);
		c->bio->bi_iter.bi_size = n;
		c->sector += n >> SECTOR_SHIFT;
		len -= n;
	} while (len);
}

int emuhba_backend_submit(struct emuhba_adapter *a, struct emu_blk_req *req)
{
	struct emuhba_bio_chain c = { };
	struct emuhba_bio_ctx *ctx;
	u64 bytes;
	int ret;

	if (!a->backend_file)
		return -ENODEV;
	c.bdev = file_bdev(a->backend_file);

	switch (req->op) {
	case EMU_BLK_READ:
		c.opf = REQ_OP_READ;
		break;
	case EMU_BLK_WRITE:
		c.opf = REQ_OP_WRITE;
		break;
	case EMU_BLK_FLUSH:
		c.opf = REQ_OP_WRITE | REQ_PREFLUSH;
		break;
	case EMU_BLK_WRITE_ZEROES:
		c.opf = REQ_OP_WRITE_ZEROES;
		break;
	case EMU_BLK_DISCARD:
		c.opf = REQ_OP_DISCARD;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (op_is_write(c.opf) && bdev_read_only(c.bdev))
		return -EROFS;
	ret = 0;
	if (req->op == EMU_BLK_FLUSH) {
		/* No range: a Flush names no blocks. */
		emuhba_bio_next(&c, 0);
		goto out_submit;
	}
	if (req->lba_shift < SECTOR_SHIFT || req->lba_shift > 16)
		return -EINVAL;
	bytes = req->len;
	if (!bytes || bytes != (u64)req->nlb << req->lba_shift)
		return -EINVAL;
	/* Requests are in the namespace's LBAs; bios in 512-byte sectors. */
	c.sector = req->slba << (req->lba_shift - SECTOR_SHIFT);
	if (c.sector >> (req->lba_shift - SECTOR_SHIFT) != req->slba ||
	    c.sector > bdev_nr_sectors(c.bdev) ||
	    bytes >> SECTOR_SHIFT > bdev_nr_sectors(c.bdev) - c.sector)
		return -ERANGE;
	if (req->op == EMU_BLK_READ || req->op == EMU_BLK_WRITE) {
		if (!req->buf)
			return -EINVAL;
		if (is_vmalloc_addr(req->buf))
			flush_kernel_vmap_range(req->buf, bytes);
		c.opf |= REQ_ALLOC_CACHE;
		ret = emuhba_bio_add_buf(&c, req->buf, bytes, req->lba_shift);
	} else {
		emuhba_bio_add_size(&c, bytes);
	}
out_submit:
	ctx = container_of(c.bio, struct emuhba_bio_ctx, bio);
	ctx->a = a;
	ctx->req = req;
	c.bio->bi_end_io = emuhba_bio_end_io;
	atomic_inc(&a->backend_inflight);
	if (ret) {
		/* Bios of the chain are out: the request ends with them. */
		c.bio->bi_status = BLK_STS_IOERR;
		bio_endio(c.bio);
		return 0;
	}
	submit_bio(c.bio);
	return 0;
}

/*
 * The backend must reach the VF's own namespace: a block device that names
 * another namespace (NVMe reports NGUID, else EUI64, as its unique id)
 * would serve the guest someone else's data. A backend without such an id
 * (device-mapper, loop) cannot be checked and is taken as configured.
 */
static int emuhba_backend_check(struct emuhba_adapter *a, struct file *f,
				struct netlink_ext_ack *extack)
{
	struct gendisk *disk = file_bdev(f)->bd_disk;
	u8 uid[16];
	int n;

	if (!disk->fops->get_unique_id)
		return 0;
	n = disk->fops->get_unique_id(disk, uid, BLK_UID_EUI64);
	if (n < 0)
		return 0;
	if (n == sizeof(a->own_nguid) && memchr_inv(a->own_nguid, 0, n) &&
	    !memcmp(uid, a->own_nguid, n))
		return 0;
	if (n == sizeof(a->own_eui64) && memchr_inv(a->own_eui64, 0, n) &&
	    !memcmp(uid, a->own_eui64, n))
		return 0;
	pci_err(a->core.pdev, "backend %s is not the VF's namespace (its %s %*phN)\n",
		a->backend, n == 16 ? "NGUID" : "EUI64", n, uid);
	NL_SET_ERR_MSG(extack,
		       "the backend block device is another namespace than the VF's");
	return -EINVAL;
}

/* Open the configured backend; called before the model starts running. */
int emuhba_backend_open(struct emuhba_adapter *a, struct netlink_ext_ack *extack)
{
	struct file *f;
	int ret;

	/* A model about to run again reaches the guest again. */
	WRITE_ONCE(a->dma_off, false);
	if (a->backend_file)
		return 0;
	if (!strcmp(a->backend, "auto") || !a->backend[0]) {
		NL_SET_ERR_MSG(extack,
			       "no backend block device set for this adapter");
		return -ENODEV;
	}
	/*
	 * Not exclusive: the namespace is shared by design (the source and
	 * the destination adapter of a migration on one host, the PF's own
	 * driver).
	 */
	f = bdev_file_open_by_path(a->backend, BLK_OPEN_READ | BLK_OPEN_WRITE,
				   NULL, NULL);
	if (IS_ERR(f)) {
		NL_SET_ERR_MSG(extack, "cannot open the backend block device");
		return PTR_ERR(f);
	}
	ret = emuhba_backend_check(a, f, extack);
	if (ret) {
		fput(f);
		return ret;
	}
	if (emuhba_bio_set_get()) {
		fput(f);
		NL_SET_ERR_MSG(extack, "out of memory for backend requests");
		return -ENOMEM;
	}
	a->backend_file = f;
	return 0;
}

/* Complete every request in flight; the caller must not hold model_lock. */
void emuhba_backend_drain(struct emuhba_adapter *a)
{
	while (atomic_read(&a->backend_inflight)) {
		emuhba_backend_reap(a);
		usleep_range(100, 200);
	}
	emuhba_backend_reap(a);
}

/* Close it once no request is in flight. */
void emuhba_backend_close(struct emuhba_adapter *a)
{
	emuhba_backend_drain(a);
	if (a->backend_file) {
		fput(a->backend_file);
		emuhba_bio_set_put();
	}
	a->backend_file = NULL;
}
