/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * emuhba state image: the migration stream of one adapter.
 * Layout and rules: Documentation/state-image.rst.
 */
#ifndef EMU_IMG_H
#define EMU_IMG_H

#include "emu_nvme.h"

#define EMU_IMG_MAGIC		0x48554d45	/* "EMUH" */
#define EMU_IMG_MAJOR		1
#define EMU_IMG_MINOR		2
#define EMU_IMG_HDR_LEN		32
#define EMU_IMG_SEC_HDR_LEN	8
#define EMU_IMG_PERS_NVME	1

/* Header flags */
#define EMU_IMG_F_STABLE	EMU_BIT(0)	/* identity and usage (pre-copy) */

/* Section flags */
#define EMU_IMG_S_CRITICAL	EMU_BIT(0)	/* a decoder must understand it */
#define EMU_IMG_S_EXTENDED	EMU_BIT(1)	/* extended (model) profile */

/* Basic profile sections */
#define EMU_IMG_SEC_REGS	0x0001
#define EMU_IMG_SEC_QUEUES	0x0002
#define EMU_IMG_SEC_FEATURES	0x0003
#define EMU_IMG_SEC_AER		0x0004
#define EMU_IMG_SEC_DBBUF	0x0005
#define EMU_IMG_SEC_IDENTITY	0x0006
#define EMU_IMG_SEC_LOGS	0x0007	/* since 1.1 */
#define EMU_IMG_SEC_USAGE	0x0008	/* since 1.2, stable images only */
/* Extended profile of this model */
#define EMU_IMG_SEC_EMU_RUNTIME	0x8001

/* Export options */
#define EMU_IMG_EXPORT_V1_0	EMU_BIT(0)	/* for a 1.0 destination */

/*
 * Export the running model's state. Returns the image length, -ENOSPC if
 * cap is too small, -EBUSY while backend requests are in flight (the host
 * stops polling and waits for them first), -EINVAL when not in RUN mode.
 */
int emu_img_export(struct emu_nvme_ctrl *ctrl, void *buf, size_t cap,
		   u32 opts);
/*
 * Identity, and what the guest uses that a destination must offer, for the
 * pre-copy phase.
 */
int emu_img_export_stable(struct emu_nvme_ctrl *ctrl, void *buf, size_t cap);
/*
 * What the guest uses, as the USAGE section of a stable image exported now
 * would say it (EMU_IMG_USE_* bits): a saving session sends a new stable
 * image when it changes.
 */
#define EMU_IMG_USE_DBBUF	EMU_BIT(0)	/* shadow doorbells */
u32 emu_img_usage(const struct emu_nvme_ctrl *ctrl);
/*
 * Decode, validate fully, then load into ctrl and enter RUN mode. On any
 * error ctrl is unchanged and err names the first offending field.
 */
int emu_img_import(struct emu_nvme_ctrl *ctrl, const void *img, size_t len,
		   char *err, size_t errlen);
/*
 * Can a destination with limits lim honour this (stable or full) image?
 * 0, or -EINVAL with the first incompatible field named in err.
 */
int emu_img_check_compat(const void *img, size_t len,
			 const struct emu_nvme_limits *lim,
			 char *err, size_t errlen);

#endif /* EMU_IMG_H */
