/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The destination's compatibility verdict on a state image (emu_verdict.c):
 * the check a migration destination runs (emu_img_check_compat()), spelled
 * out field by field so that a refusal can be shown with both sides' values.
 */
#ifndef EMU_VERDICT_H
#define EMU_VERDICT_H

#include "emu_nvme.h"

#define EMU_VERDICT_MAX_FIELDS	64
#define EMU_VERDICT_ID_MAX	16

enum emu_verdict_fmt {
	EMU_VERDICT_DEC,	/* decimal number */
	EMU_VERDICT_HEX,	/* mask: 0x... */
	EMU_VERDICT_ID,		/* identifier bytes (NGUID, EUI64) */
	EMU_VERDICT_NONE,	/* no value (a refusal without one) */
};

struct emu_verdict_field {
	const char *name;	/* static: "limits.max_sqs", ... */
	u32 nsid;		/* namespace.* fields only */
	u8 fmt;			/* enum emu_verdict_fmt */
	u8 ok;
	u8 id_len;
	u8 dst_present;		/* 0: the destination has no such thing */
	u64 src, dst;
	u8 src_id[EMU_VERDICT_ID_MAX];
	u8 dst_id[EMU_VERDICT_ID_MAX];
};

struct emu_verdict {
	u32 nr;
	bool full;		/* the image holds the guest's queue table */
	bool compatible;
	struct emu_verdict_field f[EMU_VERDICT_MAX_FIELDS];
};

/*
 * Judge the (stable or full) image img against lim. Returns 0 with the
 * verdict in v (v->compatible; when false, err names the first refusing
 * field as a refused migration would), or -EINVAL for an image that is
 * not well formed, with err naming the bad field.
 */
int emu_verdict_judge(const void *img, size_t len,
		      const struct emu_nvme_limits *lim,
		      struct emu_verdict *v, char *err, size_t errlen);

#endif /* EMU_VERDICT_H */
