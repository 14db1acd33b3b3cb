// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device-mapper through its ioctls on /dev/mapper/control
 * (<linux/dm-ioctl.h>), without libdevmapper and without udev: the device
 * node is the kernel's own /dev/dm-MINOR (devtmpfs). Replies are checked
 * against the buffer before use.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/dm-ioctl.h>

#include "storage.h"

#define DM_CONTROL	"/dev/mapper/control"
#define DM_BUF		16384
#define DM_BUF_MAX	(1 << 20)

/* 4.27 has DM_DEFERRED_REMOVE; the kernel refuses a newer minor only. */
static void dm_init(struct dm_ioctl *io, size_t size, const char *name)
{
	memset(io, 0, size);
	io->version[0] = 4;
	io->version[1] = 27;
	io->version[2] = 0;
	io->data_size = (u32)size;
	io->data_start = sizeof(*io);
	if (name)
		snprintf(io->name, sizeof(io->name), "%s", name);
}

static int dm_ioctl(int fd, unsigned long cmd, struct dm_ioctl *io)
{
	if (ioctl(fd, cmd, io) < 0)
		return -errno;
	return 0;
}

int stor_dm_open(void)
{
	int fd = open(DM_CONTROL, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static void dm_fill(const struct dm_ioctl *io, struct stor_dm_dev *d)
{
	if (!d)
		return;
	memset(d, 0, sizeof(*d));
	memcpy(d->name, io->name, sizeof(d->name) - 1);
	d->major = major((dev_t)io->dev);
	d->minor = minor((dev_t)io->dev);
	d->open_count = (u32)io->open_count;
	d->has_table = io->flags & DM_ACTIVE_PRESENT_FLAG;
}

int stor_dm_create(int fd, const char *name, const char *uuid,
		   struct stor_dm_dev *d)
{
	struct dm_ioctl io;
	int r;

	if (strlen(name) >= DM_NAME_LEN || (uuid && strlen(uuid) >= DM_UUID_LEN))
		return -ENAMETOOLONG;
	dm_init(&io, sizeof(io), name);
	if (uuid)
		snprintf(io.uuid, sizeof(io.uuid), "%s", uuid);
	r = dm_ioctl(fd, DM_DEV_CREATE, &io);
	if (!r)
		dm_fill(&io, d);
	return r;
}

int stor_dm_resume(int fd, const char *name)
{
	struct dm_ioctl io;

	dm_init(&io, sizeof(io), name);
	/*
	 * A table swap suspends first: noflush, so that writes a mirror
	 * holds after a leg failed are requeued to the new table instead
	 * of failing.
	 */
	io.flags = DM_NOFLUSH_FLAG | DM_SKIP_LOCKFS_FLAG;
	return dm_ioctl(fd, DM_DEV_SUSPEND, &io);
}

/*
 * Every dm event (a mirror finishing its resync, a leg failing) after this
 * call makes @fd readable: the copy sleeps in poll() and still sees the end
 * of the resync the moment dm reports it.
 */
int stor_dm_arm_poll(int fd)
{
	struct dm_ioctl io;

	dm_init(&io, sizeof(io), NULL);
	return dm_ioctl(fd, DM_DEV_ARM_POLL, &io);
}

int stor_dm_load(int fd, const char *name, u64 sectors, const char *type,
		 const char *params, bool activate)
{
	size_t plen = strlen(params) + 1, size;
	struct dm_target_spec *sp;
	struct dm_ioctl *io;
	int r;

	if (strlen(type) >= DM_MAX_TYPE_NAME)
		return -EINVAL;
	size = sizeof(*io) + sizeof(*sp) + ((plen + 7) & ~(size_t)7);
	io = calloc(1, size);
	if (!io)
		return -ENOMEM;
	dm_init(io, size, name);
	io->target_count = 1;
	sp = (struct dm_target_spec *)(io + 1);
	sp->sector_start = 0;
	sp->length = sectors;
	snprintf(sp->target_type, sizeof(sp->target_type), "%s", type);
	sp->next = (u32)(size - sizeof(*io));
	memcpy(sp + 1, params, plen);
	r = dm_ioctl(fd, DM_TABLE_LOAD, io);
	free(io);
	if (!r && activate)
		r = stor_dm_resume(fd, name);
	return r;
}

/*
 * An ioctl whose answer follows the header, in a buffer grown until it
 * fits (or DM_BUF_MAX); *iop (NULL when none could be had) is the
 * caller's to free whatever the result, *sizep its size.
 */
static int dm_ioctl_data(int fd, unsigned long cmd, const char *name,
			 u32 flags, struct dm_ioctl **iop, size_t *sizep)
{
	size_t size = DM_BUF;
	struct dm_ioctl *io;
	int r;

	*iop = NULL;
	for (;;) {
		io = calloc(1, size);
		if (!io)
			return -ENOMEM;
		dm_init(io, size, name);
		io->flags = flags;
		r = dm_ioctl(fd, cmd, io);
		if (r || !(io->flags & DM_BUFFER_FULL_FLAG) || size >= DM_BUF_MAX)
			break;
		free(io);
		size *= 2;
	}
	*iop = io;
	*sizep = size;
	return r;
}

int stor_dm_status(int fd, const char *name, bool table, char *type,
		   size_t tlen, char *buf, size_t len)
{
	struct dm_target_spec sp;
	struct dm_ioctl *io;
	const char *s, *end;
	size_t size;
	int r;

	r = dm_ioctl_data(fd, DM_TABLE_STATUS, name, DM_NOFLUSH_FLAG |
			  (table ? DM_STATUS_TABLE_FLAG : 0), &io, &size);
	if (r)
		goto out;
	r = -ENODATA;
	if (!io->target_count)
		goto out;
	r = -EPROTO;
	if (io->data_start < sizeof(*io) || io->data_size > size ||
	    io->data_start + sizeof(sp) > io->data_size)
		goto out;
	memcpy(&sp, (char *)io + io->data_start, sizeof(sp));
	s = (char *)io + io->data_start + sizeof(sp);
	end = (char *)io + io->data_size;
	if (!memchr(s, 0, (size_t)(end - s)))
		goto out;
	r = -ENOSPC;
	if (strlen(s) >= len)
		goto out;
	strcpy(buf, s);
	if (type)
		snprintf(type, tlen, "%.*s", (int)sizeof(sp.target_type),
			 sp.target_type);
	r = 0;
out:
	free(io);
	return r;
}

int stor_dm_remove(int fd, const char *name, bool deferred)
{
	struct dm_ioctl io;

	dm_init(&io, sizeof(io), name);
	if (deferred)
		io.flags = DM_DEFERRED_REMOVE;
	return dm_ioctl(fd, DM_DEV_REMOVE, &io);
}

int stor_dm_info(int fd, const char *name, struct stor_dm_dev *d)
{
	struct dm_ioctl io;
	int r;

	dm_init(&io, sizeof(io), name);
	r = dm_ioctl(fd, DM_DEV_STATUS, &io);
	if (!r)
		dm_fill(&io, d);
	return r;
}

int stor_dm_list(int fd, stor_dm_list_cb cb, void *arg)
{
	size_t size, off, n;
	struct dm_name_list nl;
	struct dm_ioctl *io;
	const char *base, *name;
	int r;

	r = dm_ioctl_data(fd, DM_LIST_DEVICES, NULL, 0, &io, &size);
	if (r)
		goto out;
	r = -EPROTO;
	if (io->data_start < sizeof(*io) || io->data_size > size)
		goto out;
	base = (char *)io + io->data_start;
	n = io->data_size - io->data_start;
	off = 0;
	r = 0;
	/* An empty list is one entry with dev 0. */
	while (off + sizeof(nl) <= n) {
		memcpy(&nl, base + off, sizeof(nl));
		if (!nl.dev)
			break;
		name = base + off + offsetof(struct dm_name_list, name);
		if (!memchr(name, 0, n - off - offsetof(struct dm_name_list, name))) {
			r = -EPROTO;
			break;
		}
		r = cb(name, major((dev_t)nl.dev), minor((dev_t)nl.dev), arg);
		if (r || !nl.next)
			break;
		if (nl.next > n - off) {
			r = -EPROTO;
			break;
		}
		off += nl.next;
	}
out:
	free(io);
	return r;
}
