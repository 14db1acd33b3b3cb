// SPDX-License-Identifier: GPL-2.0-only
/*
 * VFIO migration v2. The device state is the model's state image
 * (emuhba/emu_img.h): the stream of one saving session is a sequence of
 * images, the stable one (identity, limits and what the guest uses of them)
 * first, during pre-copy, so that a destination refuses an incompatible
 * source while the VM still runs, then the full one at STOP_COPY. The guest
 * runs on the model during pre-copy and may start or stop using shadow
 * doorbells (a controller reset): a new stable image then follows, as
 * pre-copy data. A destination keeps what it is given, checks each complete
 * image as it arrives and loads the last full one when RESUMING ends.
 *
 * The switch to emulated mode happens on RUNNING -> PRE_COPY (guest running)
 * or, without pre-copy, on RUNNING_P2P -> STOP (vCPUs stopped). A resumed
 * destination runs emulated from RUNNING_P2P on.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/unaligned.h>
#include <linux/vfio.h>
#include <linux/vmalloc.h>

#include "emuhba.h"
#include "emu_img.h"
#include "emuhba_image.h"

/* Far above any image (64 queue pairs take a few KiB), far below harm. */
#define EMUHBA_MIG_MAX		(4 << 20)
#define EMUHBA_IMG_LEN_OFF	16
#define EMUHBA_IMG_FLAGS_OFF	12

struct emuhba_mig_file {
	struct file *filp;
	struct emuhba_adapter *a;
	struct mutex lock;	/* protects everything below */
	u8 *buf;
	size_t len;		/* bytes in buf */
	size_t cap;
	size_t checked;		/* resuming: bytes of complete images checked */
	loff_t pos;		/* saving: bytes read */
	size_t initial;		/* saving: bytes of the first image */
	u32 usage;		/* saving: the last stable image's EMU_IMG_USE_* */
	bool resuming;
	bool final;		/* saving: the full image is in buf */
	bool precopy;		/* saving: the device is in a PRE_COPY state */
	/*
	 * The session ended: I/O fails. Set before the adapter may go away,
	 * so that nothing past this check touches it (the fd holds no
	 * reference on the adapter).
	 */
	bool disabled;
};

static int emuhba_mig_reserve(struct emuhba_mig_file *mf, size_t more)
{
	size_t need = mf->len + more;
	u8 *buf;

	if (need > EMUHBA_MIG_MAX)
		return -EFBIG;
	if (need <= mf->cap)
		return 0;
	buf = kvrealloc(mf->buf, max(need, 2 * mf->cap), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	mf->buf = buf;
	mf->cap = max(need, 2 * mf->cap);
	return 0;
}

/* Append an image to the saving session's stream; mf->lock held. */
static int emuhba_mig_append_locked(struct emuhba_mig_file *mf, bool stable)
{
	struct emuhba_adapter *a = mf->a;
	size_t room = 64 * 1024;
	u32 usage = 0;
	int ret;

	lockdep_assert_held(&mf->lock);
	for (;;) {
		ret = emuhba_mig_reserve(mf, room);
		if (ret)
			break;
		mutex_lock(&a->model_lock);
		if (stable) {
			ret = emu_img_export_stable(a->model, mf->buf + mf->len,
						    room);
			usage = emu_img_usage(a->model);
		} else {
			ret = emu_img_export(a->model, mf->buf + mf->len, room,
					     0);
		}
		mutex_unlock(&a->model_lock);
		if (ret != -ENOSPC)
			break;
		room *= 2;
	}
	if (ret > 0) {
		if (!mf->len)
			mf->initial = ret;
		mf->len += ret;
		mf->final = !stable;
		if (stable)
			mf->usage = usage;
		ret = 0;
	}
	return ret;
}

/*
 * Pre-copy: the guest runs on the model and may turn on what the last
 * stable image said it did not use (shadow doorbells, after a controller
 * reset), or turn it off. Send a new stable image then, which the
 * destination judges on arrival as it did the first one. Only what the
 * hypervisor reads before it stops the VM is judged while the VM runs; a
 * change after that is refused with the full image, and the VM resumes on
 * its source. mf->lock held, the session not ended.
 */
static int emuhba_mig_restable(struct emuhba_mig_file *mf)
{
	struct emuhba_adapter *a = mf->a;
	u32 usage;

	lockdep_assert_held(&mf->lock);
	if (!mf->precopy || mf->final)
		return 0;
	mutex_lock(&a->model_lock);
	usage = emu_img_usage(a->model);
	mutex_unlock(&a->model_lock);
	if (usage == mf->usage)
		return 0;
	return emuhba_mig_append_locked(mf, true);
}

static ssize_t emuhba_mig_read(struct file *filp, char __user *ubuf,
			       size_t len, loff_t *ppos)
{
	struct emuhba_mig_file *mf = filp->private_data;
	ssize_t ret;

	if (ppos)
		return -ESPIPE;
	mutex_lock(&mf->lock);
	if (mf->disabled || mf->resuming) {
		ret = -ENODEV;
		goto out;
	}
	if (mf->pos >= mf->len) {
		ret = emuhba_mig_restable(mf);
		if (ret)
			goto out;
	}
	if (mf->pos >= mf->len) {
		/* Pre-copy's temporary end of stream, or the real one. */
		ret = mf->final ? 0 : -ENOMSG;
		goto out;
	}
	len = min_t(size_t, len, mf->len - mf->pos);
	if (copy_to_user(ubuf, mf->buf + mf->pos, len)) {
		ret = -EFAULT;
		goto out;
	}
	mf->pos += len;
	ret = len;
out:
	mutex_unlock(&mf->lock);
	return ret;
}

/*
 * Check every image that became complete. A stable image is checked
 * against this VF's limits at once, so that an incompatible source is
 * refused during pre-copy.
 */
static int emuhba_mig_check(struct emuhba_mig_file *mf)
{
	struct emuhba_adapter *a = mf->a;
	struct emu_nvme_limits *lim;
	char err[128];
	u32 ilen;
	int ret = 0;

	lim = kzalloc(sizeof(*lim), GFP_KERNEL);
	if (!lim)
		return -ENOMEM;
	emuhba_image_limits(a, lim);

	while (mf->len - mf->checked >= EMU_IMG_HDR_LEN) {
		ilen = get_unaligned_le32(mf->buf + mf->checked +
					  EMUHBA_IMG_LEN_OFF);
		if (ilen < EMU_IMG_HDR_LEN || ilen > EMUHBA_MIG_MAX) {
			pci_err(a->core.pdev, "migration stream: image length %u out of range\n",
				ilen);
			ret = -EINVAL;
			break;
		}
		if (mf->len - mf->checked < ilen)
			break;
		ret = emu_img_check_compat(mf->buf + mf->checked, ilen, lim,
					   err, sizeof(err));
		if (ret) {
			pci_err(a->core.pdev, "migration refused: %s\n", err);
			emuhba_genl_notify_error(a, ret, err);
			break;
		}
		mf->checked += ilen;
	}
	kfree(lim);
	return ret;
}

static ssize_t emuhba_mig_write(struct file *filp, const char __user *ubuf,
				size_t len, loff_t *ppos)
{
	struct emuhba_mig_file *mf = filp->private_data;
	ssize_t ret;

	if (ppos)
		return -ESPIPE;
	mutex_lock(&mf->lock);
	if (mf->disabled || !mf->resuming) {
		ret = -ENODEV;
		goto out;
	}
	ret = emuhba_mig_reserve(mf, len);
	if (ret)
		goto out;
	if (copy_from_user(mf->buf + mf->len, ubuf, len)) {
		ret = -EFAULT;
		goto out;
	}
	mf->len += len;
	ret = emuhba_mig_check(mf);
	if (!ret)
		ret = len;
out:
	mutex_unlock(&mf->lock);
	return ret;
}

static long emuhba_mig_ioctl(struct file *filp, unsigned int cmd,
			     unsigned long arg)
{
	struct emuhba_mig_file *mf = filp->private_data;
	struct vfio_precopy_info info;
	unsigned long minsz;
	long ret = 0;

	if (cmd != VFIO_MIG_GET_PRECOPY_INFO)
		return -ENOTTY;
	minsz = offsetofend(struct vfio_precopy_info, dirty_bytes);
	if (copy_from_user(&info, (void __user *)arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;

	mutex_lock(&mf->lock);
	if (mf->disabled || mf->resuming) {
		ret = -ENODEV;
	} else if (!mf->precopy) {
		ret = -EINVAL;
	} else {
		ret = emuhba_mig_restable(mf);
		/*
		 * The first stable image is the initial data, a later one
		 * dirty data; the running state is sent whole at STOP_COPY.
		 */
		info.initial_bytes = mf->pos < mf->initial ?
				     mf->initial - mf->pos : 0;
		info.dirty_bytes = mf->len - max_t(size_t, mf->pos,
						   mf->initial);
		info.flags = 0;
	}
	mutex_unlock(&mf->lock);
	if (ret)
		return ret;
	return copy_to_user((void __user *)arg, &info, minsz) ? -EFAULT : 0;
}

/* Reads and writes never block: the data is there or the stream is over. */
static __poll_t emuhba_mig_poll(struct file *filp, struct poll_table_struct *wait)
{
	struct emuhba_mig_file *mf = filp->private_data;
	__poll_t mask;

	mutex_lock(&mf->lock);
	if (mf->disabled)
		mask = EPOLLERR | EPOLLHUP;
	else if (mf->resuming)
		mask = EPOLLOUT | EPOLLWRNORM;
	else
		mask = EPOLLIN | EPOLLRDNORM;
	mutex_unlock(&mf->lock);
	return mask;
}

static int emuhba_mig_release(struct inode *inode, struct file *filp)
{
	struct emuhba_mig_file *mf = filp->private_data;

	kvfree(mf->buf);
	mutex_destroy(&mf->lock);
	kfree(mf);
	return 0;
}

static const struct file_operations emuhba_save_fops = {
	.owner = THIS_MODULE,
	.read = emuhba_mig_read,
	.poll = emuhba_mig_poll,
	.unlocked_ioctl = emuhba_mig_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = emuhba_mig_release,
};

static const struct file_operations emuhba_resume_fops = {
	.owner = THIS_MODULE,
	.write = emuhba_mig_write,
	.poll = emuhba_mig_poll,
	.release = emuhba_mig_release,
};

static struct emuhba_mig_file *emuhba_mig_file_new(struct emuhba_adapter *a,
						   bool resuming)
{
	struct emuhba_mig_file *mf;
	struct file *filp;

	mf = kzalloc(sizeof(*mf), GFP_KERNEL);
	if (!mf)
		return ERR_PTR(-ENOMEM);
	mutex_init(&mf->lock);
	mf->a = a;
	mf->resuming = resuming;
	filp = anon_inode_getfile("emuhba_mig",
				  resuming ? &emuhba_resume_fops :
				  &emuhba_save_fops, mf,
				  resuming ? O_WRONLY : O_RDONLY);
	if (IS_ERR(filp)) {
		mutex_destroy(&mf->lock);
		kfree(mf);
		return ERR_CAST(filp);
	}
	stream_open(filp->f_inode, filp);
	mf->filp = filp;
	return mf;
}

/* End a session: the user's fd stays valid but its I/O fails. */
static void emuhba_mig_file_end(struct emuhba_mig_file **pmf)
{
	struct emuhba_mig_file *mf = *pmf;

	if (!mf)
		return;
	mutex_lock(&mf->lock);
	mf->disabled = true;
	mutex_unlock(&mf->lock);
	fput(mf->filp);
	*pmf = NULL;
}

static int emuhba_mig_append(struct emuhba_adapter *a, bool stable)
{
	struct emuhba_mig_file *mf = a->save;
	int ret;

	mutex_lock(&mf->lock);
	ret = emuhba_mig_append_locked(mf, stable);
	mutex_unlock(&mf->lock);
	return ret;
}

/* Stop the model between commands: nothing runs, nothing is in flight. */
static void emuhba_mig_pause(struct emuhba_adapter *a)
{
	emuhba_emul_stop(a);
	emuhba_backend_drain(a);
	/* Doorbells rung before the stop are state: they go in the image. */
	mutex_lock(&a->model_lock);
	if (emuhba_model_owns_regs(a) && READ_ONCE(a->db_shadowed))
		emuhba_db_collect(a);
	mutex_unlock(&a->model_lock);
}

/* The saving session's PRE_COPY_INFO answers only in a PRE_COPY state. */
static void emuhba_mig_set_precopy(struct emuhba_adapter *a, bool on)
{
	if (!a->save)
		return;
	mutex_lock(&a->save->lock);
	a->save->precopy = on;
	mutex_unlock(&a->save->lock);
}

static int emuhba_mig_start_save(struct emuhba_adapter *a)
{
	struct emuhba_mig_file *mf;
	int ret;

	if (WARN_ON_ONCE(a->save))
		emuhba_mig_file_end(&a->save);
	mf = emuhba_mig_file_new(a, false);
	if (IS_ERR(mf))
		return PTR_ERR(mf);
	a->save = mf;
	ret = emuhba_mig_append(a, true);
	if (ret)
		emuhba_mig_file_end(&a->save);
	return ret;
}

static bool emuhba_guest_enabled(struct emuhba_adapter *a)
{
	bool en;

	mutex_lock(&a->model_lock);
	en = emu_nvme_state(a->model)->regs.cc & EMU_CC_EN;
	mutex_unlock(&a->model_lock);
	return en;
}

/*
 * The model must own the guest's device. all: even a controller the guest
 * never enabled (a state image can only be taken from the model).
 */
static int emuhba_mig_need_emulated(struct emuhba_adapter *a, bool all)
{
	struct emuhba_switch_timing t;
	char msg[EMUHBA_BACKEND_MAX + 64];

	if (a->mode == EMUHBA_MODE_EMULATED)
		return 0;
	if (!all && !emuhba_guest_enabled(a))
		return 0;
	if (!a->policy.auto_switch) {
		pci_err(a->core.pdev, "migration refused: auto-switch is off and the adapter is in direct mode\n");
		return -EPERM;
	}
	return emuhba_switch_to_emulated(a, &t, msg, sizeof(msg));
}

/* The destination takes the last full image it was given. */
static int emuhba_mig_load(struct emuhba_adapter *a)
{
	struct emuhba_mig_file *mf = a->resume;
	size_t off = 0, last = 0, last_len = 0;
	char err[128];
	u32 ilen, flags;
	int ret;

	if (WARN_ON_ONCE(!mf))
		return -EINVAL;
	mutex_lock(&mf->lock);
	ret = emuhba_mig_check(mf);
	if (!ret && mf->checked != mf->len) {
		pci_err(a->core.pdev, "migration stream: %zu trailing bytes\n",
			mf->len - mf->checked);
		ret = -EINVAL;
	}
	while (!ret && off < mf->checked) {
		ilen = get_unaligned_le32(mf->buf + off + EMUHBA_IMG_LEN_OFF);
		flags = get_unaligned_le32(mf->buf + off + EMUHBA_IMG_FLAGS_OFF);
		if (!(flags & EMU_IMG_F_STABLE)) {
			last = off;
			last_len = ilen;
		}
		off += ilen;
	}
	if (!ret && !last_len) {
		pci_err(a->core.pdev, "migration stream has no full image\n");
		ret = -EINVAL;
	}
	if (!ret) {
		mutex_lock(&a->model_lock);
		ret = emu_img_import(a->model, mf->buf + last, last_len, err,
				     sizeof(err));
		mutex_unlock(&a->model_lock);
		if (ret) {
			pci_err(a->core.pdev, "migration image refused: %s\n", err);
			emuhba_genl_notify_error(a, ret, err);
		}
	}
	mutex_unlock(&mf->lock);
	return ret;
}

/* After a successful load: the model owns the guest's device here. */
static int emuhba_mig_become_emulated(struct emuhba_adapter *a)
{
	int ret;

	ret = emuhba_backend_open(a, NULL);
	if (ret) {
		pci_err(a->core.pdev, "resumed device has no backend (set one with hbamig dev set BDF backend PATH): %pe\n",
			ERR_PTR(ret));
		return ret;
	}
	emuhba_db_shadow_on(a);
	/* The VF never ran here: the log may be exact from the start. */
	if (emu_nvme_state(a->model)->regs.cc & EMU_CC_EN)
		emuhba_dirty_scope_exact(a, emu_nvme_state(a->model)->regs.asq);
	emuhba_genl_notify_mode(a, a->mode, EMUHBA_MODE_EMULATED);
	a->mode = EMUHBA_MODE_EMULATED;
	return 0;
}

/*
 * The vCPUs are stopped and about to run (the user does not touch the
 * device in RUNNING_P2P): the one moment the VF can be given the guest's
 * queues. If it cannot, the model goes on serving the guest and the arc
 * still succeeds.
 */
static int emuhba_mig_back_to_direct(struct emuhba_adapter *a)
{
	struct emuhba_switch_timing t;
	char msg[EMUHBA_BACKEND_MAX + 64];

	emuhba_mig_pause(a);
	if (!emuhba_switch_to_direct(a, &t, msg, sizeof(msg)))
		return 0;
	return emuhba_emul_start(a);
}

/*
 * One arc. The P2P states stop the VF's DMA by handing the device to the
 * model, whose DMA only ever reaches system memory (vfio_dma_rw() pins
 * the user's pages): it cannot initiate peer-to-peer transactions, so it
 * may keep running. STOP and STOP_COPY stop the model too. Returns the
 * data fd, NULL, or an error with a->mig_state unchanged, or set to ERROR
 * when the device cannot be put back.
 */
static struct file *emuhba_mig_step(struct emuhba_adapter *a,
				    enum vfio_device_mig_state next)
{
	enum vfio_device_mig_state cur = a->mig_state;
	int ret = 0;

	if ((cur == VFIO_DEVICE_STATE_RUNNING &&
	     next == VFIO_DEVICE_STATE_PRE_COPY) ||
	    (cur == VFIO_DEVICE_STATE_RUNNING_P2P &&
	     next == VFIO_DEVICE_STATE_PRE_COPY_P2P)) {
		ret = emuhba_mig_need_emulated(a, true);
		if (!ret)
			ret = emuhba_emul_start(a);
		if (!ret)
			ret = emuhba_mig_start_save(a);
		if (ret)
			return ERR_PTR(ret);
		emuhba_mig_set_precopy(a, true);
		return get_file(a->save->filp);
	}
	if ((cur == VFIO_DEVICE_STATE_PRE_COPY &&
	     next == VFIO_DEVICE_STATE_PRE_COPY_P2P) ||
	    (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P &&
	     next == VFIO_DEVICE_STATE_PRE_COPY))
		return NULL;	/* the model is P2P quiescent by itself */
	if (cur == VFIO_DEVICE_STATE_RUNNING &&
	    next == VFIO_DEVICE_STATE_RUNNING_P2P) {
		/* The VF may be pointed at another device's BAR: stop it. */
		ret = emuhba_mig_need_emulated(a, false);
		return ret ? ERR_PTR(ret) : NULL;
	}
	if (cur == VFIO_DEVICE_STATE_RUNNING_P2P &&
	    next == VFIO_DEVICE_STATE_RUNNING) {
		if (a->mode == EMUHBA_MODE_EMULATED)
			ret = emuhba_mig_back_to_direct(a);
		return ret ? ERR_PTR(ret) : NULL;
	}
	if (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P &&
	    next == VFIO_DEVICE_STATE_STOP_COPY) {
		emuhba_mig_pause(a);
		ret = emuhba_mig_append(a, false);
		if (ret) {
			/* Still PRE_COPY_P2P: the guest's device runs on. */
			if (emuhba_emul_start(a))
				a->mig_state = VFIO_DEVICE_STATE_ERROR;
			return ERR_PTR(ret);
		}
		emuhba_mig_set_precopy(a, false);
		return NULL;
	}
	if ((cur == VFIO_DEVICE_STATE_PRE_COPY &&
	     next == VFIO_DEVICE_STATE_RUNNING) ||
	    (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P &&
	     next == VFIO_DEVICE_STATE_RUNNING_P2P)) {
		/* Cancelled: the model goes on serving the guest. */
		emuhba_mig_file_end(&a->save);
		return NULL;
	}
	if (cur == VFIO_DEVICE_STATE_RUNNING_P2P &&
	    next == VFIO_DEVICE_STATE_STOP) {
		ret = emuhba_mig_need_emulated(a, false);
		if (ret)
			return ERR_PTR(ret);
		emuhba_mig_pause(a);
		return NULL;
	}
	if (cur == VFIO_DEVICE_STATE_STOP &&
	    next == VFIO_DEVICE_STATE_RUNNING_P2P) {
		if (a->mode == EMUHBA_MODE_EMULATED)
			ret = emuhba_emul_start(a);
		return ret ? ERR_PTR(ret) : NULL;
	}
	if (cur == VFIO_DEVICE_STATE_STOP &&
	    next == VFIO_DEVICE_STATE_STOP_COPY) {
		ret = emuhba_mig_need_emulated(a, true);
		/* A switch made here started the model: STOP_COPY is stopped. */
		emuhba_mig_pause(a);
		if (!ret)
			ret = emuhba_mig_start_save(a);
		if (!ret)
			ret = emuhba_mig_append(a, false);
		if (ret) {
			emuhba_mig_file_end(&a->save);
			return ERR_PTR(ret);
		}
		return get_file(a->save->filp);
	}
	if (cur == VFIO_DEVICE_STATE_STOP_COPY &&
	    next == VFIO_DEVICE_STATE_STOP) {
		emuhba_mig_file_end(&a->save);
		return NULL;
	}
	if (cur == VFIO_DEVICE_STATE_STOP &&
	    next == VFIO_DEVICE_STATE_RESUMING) {
		struct emuhba_mig_file *mf;

		if (a->mode != EMUHBA_MODE_DIRECT)
			return ERR_PTR(-EBUSY);
		mf = emuhba_mig_file_new(a, true);
		if (IS_ERR(mf))
			return ERR_CAST(mf);
		a->resume = mf;
		return get_file(mf->filp);
	}
	if (cur == VFIO_DEVICE_STATE_RESUMING &&
	    next == VFIO_DEVICE_STATE_STOP) {
		ret = emuhba_mig_load(a);
		if (!ret)
			ret = emuhba_mig_become_emulated(a);
		emuhba_mig_file_end(&a->resume);
		if (ret) {
			/* The model must not keep registers the VF answers. */
			emuhba_switch_teardown(a);
			/* Nothing to resume from: only a reset leaves ERROR. */
			a->mig_state = VFIO_DEVICE_STATE_ERROR;
			return ERR_PTR(ret);
		}
		return NULL;
	}
	return ERR_PTR(-EINVAL);
}

struct file *emuhba_migration_set_state(struct vfio_device *vdev,
					enum vfio_device_mig_state new_state)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);
	enum vfio_device_mig_state next, old;
	struct file *res = NULL;
	int ret;

	emuhba_reset_flush(a);
	mutex_lock(&a->state_lock);
	old = a->mig_state;
	/*
	 * Only VFIO_DEVICE_RESET leaves ERROR; the core WARNs if asked. And
	 * 6.12's vfio_mig_get_next_state() loops for ever on the arcs its
	 * table maps to ERROR (STOP_COPY -> PRE_COPY, PRE_COPY_P2P): the
	 * uAPI refuses them, so do we, before asking it.
	 */
	if (old == VFIO_DEVICE_STATE_ERROR ||
	    (old == VFIO_DEVICE_STATE_STOP_COPY &&
	     (new_state == VFIO_DEVICE_STATE_PRE_COPY ||
	      new_state == VFIO_DEVICE_STATE_PRE_COPY_P2P))) {
		mutex_unlock(&a->state_lock);
		return ERR_PTR(-EINVAL);
	}
	while (new_state != a->mig_state) {
		ret = vfio_mig_get_next_state(vdev, a->mig_state, new_state,
					      &next);
		if (ret) {
			res = ERR_PTR(ret);
			break;
		}
		res = emuhba_mig_step(a, next);
		if (IS_ERR(res))
			break;
		a->mig_state = next;
		if (WARN_ON(res && new_state != a->mig_state)) {
			fput(res);
			res = ERR_PTR(-EINVAL);
			break;
		}
	}
	if (old != a->mig_state)
		emuhba_genl_notify_mig_state(a, old, a->mig_state);
	mutex_unlock(&a->state_lock);
	return res;
}

int emuhba_migration_get_state(struct vfio_device *vdev,
			       enum vfio_device_mig_state *state)
{
	struct emuhba_adapter *a = emuhba_from_vdev(vdev);

	mutex_lock(&a->state_lock);
	*state = a->mig_state;
	mutex_unlock(&a->state_lock);
	return 0;
}

int emuhba_migration_get_data_size(struct vfio_device *vdev,
				   unsigned long *stop_copy_length)
{
	/* Every section at its largest; the real image is far smaller. */
	*stop_copy_length = 256 * 1024;
	return 0;
}

/* Device closed or reset: every session ends, back to RUNNING. */
void emuhba_mig_reset(struct emuhba_adapter *a)
{
	lockdep_assert_held(&a->state_lock);
	emuhba_mig_file_end(&a->save);
	emuhba_mig_file_end(&a->resume);
	a->mig_state = VFIO_DEVICE_STATE_RUNNING;
}
