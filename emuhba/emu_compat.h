/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Portability shim of the emuhba device model: the same sources build in the
 * kernel module and in userspace (tests, fuzzers, benchmarks), so nothing in
 * emuhba/ includes a Linux header except through this file.
 */
#ifndef EMU_COMPAT_H
#define EMU_COMPAT_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/string.h>
#include <linux/errno.h>
#include <linux/stddef.h>
#else
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef long long s64;
#endif

#ifndef fallthrough
#define fallthrough __attribute__((__fallthrough__))
#endif

#define EMU_MIN(a, b) ({				\
	typeof(a) _emu_a = (a);				\
	typeof(b) _emu_b = (b);				\
	_emu_a < _emu_b ? _emu_a : _emu_b; })
#define EMU_MAX(a, b) ({				\
	typeof(a) _emu_a = (a);				\
	typeof(b) _emu_b = (b);				\
	_emu_a > _emu_b ? _emu_a : _emu_b; })
#define EMU_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define EMU_BIT(n)		(1U << (n))

/*
 * Guest structures and the state image are little-endian byte streams; the
 * model never casts them to host integers, it assembles values bytewise so
 * that alignment and host byte order cannot matter.
 */
static inline u16 emu_get_le16(const void *p)
{
	const u8 *b = p;

	return (u16)(b[0] | (b[1] << 8));
}

static inline u32 emu_get_le32(const void *p)
{
	const u8 *b = p;

	return (u32)b[0] | ((u32)b[1] << 8) | ((u32)b[2] << 16) |
	       ((u32)b[3] << 24);
}

static inline u64 emu_get_le64(const void *p)
{
	const u8 *b = p;

	return (u64)emu_get_le32(b) | ((u64)emu_get_le32(b + 4) << 32);
}

static inline void emu_put_le16(void *p, u16 v)
{
	u8 *b = p;

	b[0] = v & 0xff;
	b[1] = (v >> 8) & 0xff;
}

static inline void emu_put_le32(void *p, u32 v)
{
	u8 *b = p;

	b[0] = v & 0xff;
	b[1] = (v >> 8) & 0xff;
	b[2] = (v >> 16) & 0xff;
	b[3] = (v >> 24) & 0xff;
}

static inline void emu_put_le64(void *p, u64 v)
{
	u8 *b = p;

	emu_put_le32(b, v & 0xffffffff);
	emu_put_le32(b + 4, (u32)(v >> 32));
}

u32 emu_crc32c(u32 crc, const void *buf, size_t len);

#endif /* EMU_COMPAT_H */
