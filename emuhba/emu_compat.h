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

/*
 * Compatibility verdict (emu_compat.c): the destination's check of a state
 * image against its limits, the one a migration destination runs
 * (emu_img_check_compat()), spelled out field by field so that a refusal
 * can be shown with both sides' values.
 */
#define EMU_COMPAT_MAX_FIELDS	64
#define EMU_COMPAT_ID_MAX	16

/*
 * Identify Controller fields that only the check reads: the destination
 * must have the power states and Keep Alive the guest may use.
 */
#define EMU_IDC_NPSS		263
#define EMU_IDC_KAS		320

enum emu_compat_fmt {
	EMU_COMPAT_DEC,		/* decimal number */
	EMU_COMPAT_HEX,		/* mask: 0x... */
	EMU_COMPAT_ID,		/* identifier bytes (NGUID, EUI64) */
	EMU_COMPAT_NONE,	/* no value (a refusal without one) */
};

struct emu_compat_field {
	const char *name;	/* static: "limits.max_sqs", ... */
	u32 nsid;		/* namespace.* fields only */
	u8 fmt;			/* enum emu_compat_fmt */
	u8 ok;
	u8 id_len;
	u8 dst_present;		/* 0: the destination has no such thing */
	u64 src, dst;
	u8 src_id[EMU_COMPAT_ID_MAX];
	u8 dst_id[EMU_COMPAT_ID_MAX];
};

struct emu_compat_verdict {
	u32 nr;
	bool full;		/* the image holds the guest's queue table */
	bool compatible;
	struct emu_compat_field f[EMU_COMPAT_MAX_FIELDS];
};

struct emu_nvme_limits;

/*
 * Judge the (stable or full) image img against lim. Returns 0 with the
 * verdict in v (v->compatible; when false, err names the first refusing
 * field as a refused migration would), or -EINVAL for an image that is
 * not well formed, with err naming the bad field.
 */
int emu_compat_verdict(const void *img, size_t len,
		       const struct emu_nvme_limits *lim,
		       struct emu_compat_verdict *v, char *err, size_t errlen);

#endif /* EMU_COMPAT_H */
