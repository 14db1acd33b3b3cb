// SPDX-License-Identifier: GPL-2.0-only
/*
 * Writes the golden state images golden/nvme-v1.<minor>.img (and the stable
 * image of the current minor, nvme-v1.<minor>-stable.img) from a fixed
 * scenario (Linux-style bring-up, 4 queue pairs of 64, shadow doorbells, an
 * armed AER, some writes). Run only when the format gains a version: the
 * committed files are what older emuhba versions produced, and a file that
 * exists is never written again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include "emu_test_stream.h"

static int put(const char *dir, const char *name, const u8 *b, int n)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0 && errno == EEXIST) {
		printf("%s: exists, kept\n", path);
		return 0;
	}
	if (fd < 0 || write(fd, b, (size_t)n) != n) {
		perror(path);
		if (fd >= 0)
			close(fd);
		return 1;
	}
	close(fd);
	printf("%s: %d bytes\n", path, n);
	return 0;
}

int main(int argc, char **argv)
{
	static u8 img[65536];
	char name[64];
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
	snprintf(name, sizeof(name), "nvme-v1.%d.img", EMU_IMG_MINOR);
	n = emu_img_export(th.ctrl, img, sizeof(img), 0);
	rc |= n < 0 || put(argv[1], name, img, n);
	snprintf(name, sizeof(name), "nvme-v1.%d-stable.img", EMU_IMG_MINOR);
	n = emu_img_export_stable(th.ctrl, img, sizeof(img));
	rc |= n < 0 || put(argv[1], name, img, n);
	stream_fini(&s);
	th_fini(&th);
	return rc;
}
