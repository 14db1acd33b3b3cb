/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * emuhba: what the control plane reads of an adapter's model beyond the
 * snapshot: its stable state image, its limits as a migration destination
 * and the namespace identity a host path to the same namespace shows.
 */
#ifndef EMUHBA_IMAGE_H
#define EMUHBA_IMAGE_H

#include <linux/types.h>

struct emuhba_adapter;
struct emu_nvme_limits;

#define EMUHBA_SUBNQN_LEN	256

/* Identity of the namespace the adapter's guest sees (emuhba_ident.c). */
struct emuhba_ident_info {
	u32 nsid;		/* 0: the VF reported no active namespace */
	bool has_nguid;		/* an all-zero NGUID means "none" */
	bool has_eui64;
	u8 nguid[16];
	u8 eui64[8];
	char subnqn[EMUHBA_SUBNQN_LEN];	/* "" when the VF reports none */
};

void emuhba_ident_info(struct emuhba_adapter *a, struct emuhba_ident_info *id);

/*
 * The stable image (identity, limits and the guest's use of shadow
 * doorbells), as the pre-copy stage sends it, into a kvmalloc'ed buffer the
 * caller frees with kvfree(). Returns its length or a negative errno.
 */
int emuhba_image_stable(struct emuhba_adapter *a, size_t max, u8 **buf);

/* The adapter's limits as a migration destination. */
void emuhba_image_limits(struct emuhba_adapter *a, struct emu_nvme_limits *lim);

#endif /* EMUHBA_IMAGE_H */
