// SPDX-License-Identifier: GPL-2.0-only
/*
 * Writes the golden state images golden/nvme-v1.<minor>.img from a fixed
 * scenario (Linux-style bring-up, 4 queue pairs of 64, shadow doorbells, an
 * armed AER, some writes). Run only when the format gains a version: the
 * committed files are what older emuhba versions produced.
 */
#include <stdio.h>
#include "emu_test_stream.h"

static int put(const char *dir, const char *name, const u8 *b, int n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(b, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		return 1;
	}
	fclose(f);
	printf("%s: %d bytes\n", path, n);
	return 0;
}

int main(int argc, char **argv)
{
	static u8 img[65536];
	struct th th;
	struct drv d;
	struct stream s;
	int i, n, rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	if (drv_start(&d, &th, 1) || drv_bringup(&d, 4, 64, 1, 1))
		return 1;
	stream_init(&s, &d);
	for (i = 0; i < 50; i++)
		stream_step(&s, 4);
	if (stream_finish(&s))
		return 1;
	n = emu_img_export(th.ctrl, img, sizeof(img), EMU_IMG_EXPORT_V1_0);
	rc |= n < 0 || put(argv[1], "nvme-v1.0.img", img, n);
	n = emu_img_export(th.ctrl, img, sizeof(img), 0);
	rc |= n < 0 || put(argv[1], "nvme-v1.1.img", img, n);
	stream_fini(&s);
	th_fini(&th);
	return rc;
}
