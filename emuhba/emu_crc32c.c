// SPDX-License-Identifier: GPL-2.0-only
/*
 * CRC32C (Castagnoli) for the state image. Bitwise: the image is small and
 * written once per migration, so a table would cost more than it saves.
 */
#include "emu_compat.h"

u32 emu_crc32c(u32 crc, const void *buf, size_t len)
{
	const u8 *p = buf;
	int k;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78U & (0U - (crc & 1)));
	}
	return ~crc;
}
