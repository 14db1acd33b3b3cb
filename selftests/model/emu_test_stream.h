/* SPDX-License-Identifier: GPL-2.0-only */
/* Randomized I/O streams against a reference copy of the namespace. */
#ifndef EMU_TEST_STREAM_H
#define EMU_TEST_STREAM_H

#include "emu_test_lib.h"

#define ST_SLOTS	64
#define ST_MAXBLK	8

struct stream {
	struct drv *d;
	u8 *ref;
	u8 busy[TH_NS_BLOCKS];
	u64 buf[DRV_MAXQ][ST_SLOTS];
	long issued;
	long completed;
	long verified;
	long bad;
	int sgl_pct;
	char why[256];
};

void stream_init(struct stream *s, struct drv *d);
void stream_fini(struct stream *s);
/* Submit up to n commands, then poll, run some backend work and reap. */
void stream_step(struct stream *s, int n);
/* Complete everything outstanding; 0 when every check passed. */
int stream_finish(struct stream *s);
/* Quiesce, export, destroy the model, import into a new one. */
int stream_migrate(struct stream *s, int *img_len);

#endif
