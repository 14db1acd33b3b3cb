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

static int emuhba_bio_add_buf(struct bio *bio, void *buf, u32 len)
{
	while (len) {
		u32 off = offset_in_page(buf);
		u32 n = min_t(u32, len, PAGE_SIZE - off);
		struct page *page = is_vmalloc_addr(buf) ?
			vmalloc_to_page(buf) : virt_to_page(buf);

		if (bio_add_page(bio, page, n, off) != n)
			return -EIO;
		buf += n;
		len -= n;
	}
	return 0;
}

int emuhba_backend_submit(struct emuhba_adapter *a, struct emu_blk_req *req)
{
	struct block_device *bdev;
	struct emuhba_bio_ctx *ctx;
	unsigned int nr_vecs = 0;
	blk_opf_t opf;
	struct bio *bio;
	int ret;

	if (!a->backend_file)
		return -ENODEV;
	bdev = file_bdev(a->backend_file);

	switch (req->op) {
	case EMU_BLK_READ:
		opf = REQ_OP_READ;
		break;
	case EMU_BLK_WRITE:
		opf = REQ_OP_WRITE;
		break;
	case EMU_BLK_FLUSH:
		opf = REQ_OP_WRITE | REQ_PREFLUSH;
		break;
	case EMU_BLK_WRITE_ZEROES:
		opf = REQ_OP_WRITE_ZEROES;
		break;
	case EMU_BLK_DISCARD:
		opf = REQ_OP_DISCARD;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (op_is_write(opf) && bdev_read_only(bdev))
		return -EROFS;
	if (req->op == EMU_BLK_READ || req->op == EMU_BLK_WRITE) {
		if (!req->buf || req->len < ((u64)req->nlb << req->lba_shift))
			return -EINVAL;
		nr_vecs = DIV_ROUND_UP(req->len + offset_in_page(req->buf),
				       PAGE_SIZE);
	}

	bio = bio_alloc_bioset(bdev, nr_vecs, opf | REQ_ALLOC_CACHE, GFP_KERNEL,
			       &emuhba_bio_set);
	if (!bio)
		return -EAGAIN;
	ctx = container_of(bio, struct emuhba_bio_ctx, bio);
	ctx->a = a;
	ctx->req = req;
	bio->bi_end_io = emuhba_bio_end_io;
	/* Requests are in the namespace's LBAs; bios in 512-byte sectors. */
	bio->bi_iter.bi_sector = req->slba << (req->lba_shift - SECTOR_SHIFT);
	if (nr_vecs) {
		ret = emuhba_bio_add_buf(bio, req->buf,
					 req->nlb << req->lba_shift);
		if (ret)
			goto out_put;
		if (is_vmalloc_addr(req->buf))
			flush_kernel_vmap_range(req->buf, req->len);
	} else if (req->op != EMU_BLK_FLUSH) {
		bio->bi_iter.bi_size = req->nlb << req->lba_shift;
	}
	atomic_inc(&a->backend_inflight);
	submit_bio(bio);
	return 0;

out_put:
	bio_put(bio);
	return ret;
}

/* Open the configured backend; called before the model starts running. */
int emuhba_backend_open(struct emuhba_adapter *a, struct netlink_ext_ack *extack)
{
	struct file *f;

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
