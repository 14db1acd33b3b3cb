// SPDX-License-Identifier: GPL-2.0-only
/*
 * The adapter's model as the control plane needs it: the stable state image
 * (the very bytes emuhba_mig.c puts first in a migration stream) and the
 * limits a destination checks images against, both read under the model's
 * lock like every other access to it.
 */
#include <linux/mm.h>
#include <linux/slab.h>

#include "emuhba.h"
#include "emuhba_image.h"
#include "emu_img.h"

int emuhba_image_stable(struct emuhba_adapter *a, size_t max, u8 **buf)
{
	size_t cap = 4096;
	u8 *b;
	int ret;

	for (;;) {
		b = kvmalloc(cap, GFP_KERNEL);
		if (!b)
			return -ENOMEM;
		mutex_lock(&a->model_lock);
		ret = emu_img_export_stable(a->model, b, cap);
		mutex_unlock(&a->model_lock);
		if (ret != -ENOSPC || cap >= max)
			break;
		kvfree(b);
		cap = min(cap * 2, max);
	}
	if (ret < 0) {
		kvfree(b);
		return ret;
	}
	if ((size_t)ret > max) {
		kvfree(b);
		return -EMSGSIZE;
	}
	*buf = b;
	return ret;
}

void emuhba_image_limits(struct emuhba_adapter *a, struct emu_nvme_limits *lim)
{
	mutex_lock(&a->model_lock);
	emu_nvme_get_limits(a->model, lim);
	mutex_unlock(&a->model_lock);
	lim->ns_copied = READ_ONCE(a->policy.ns_copy);
}
