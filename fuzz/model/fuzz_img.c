// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: the state image decoder and compatibility check with
 * hostile input. The field-by-field verdict must agree with the check, on
 * the model's own limits and on a destination that lacks the features a
 * guest may enable, and with import on whether an image is malformed. A
 * decoded image must export again and decode to the same state, and that
 * export, imported, must export again byte for byte.
 */
#include <stdlib.h>
#include <string.h>
#include "fuzz_host.h"
#include "../../emuhba/emu_verdict.h"

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

/* A verdict is the check's, spelled out: they agree on every input. */
static void fz_compat(const u8 *data, size_t size,
		      const struct emu_nvme_limits *lim)
{
	static struct emu_verdict v;
	char err[128], verr[128];
	u32 i, refused = 0;
	int c, ret;

	c = emu_img_check_compat(data, size, lim, err, sizeof(err));
	if (strlen(err) >= sizeof(err))
		abort();
	ret = emu_verdict_judge(data, size, lim, &v, verr, sizeof(verr));
	if (ret && (ret != -EINVAL || !c))
		abort();
	if (ret)
		return;
	if (!v.compatible != !!c || v.nr > EMU_VERDICT_MAX_FIELDS)
		abort();
	if (c && strcmp(err, verr))
		abort();
	/* A refusal names a field the verdict refuses too, and only then. */
	for (i = 0; i < v.nr; i++)
		refused += !v.f[i].ok;
	if (!c != !refused)
		abort();
}

/*
 * Mutations almost never keep the CRC right, which would stop every input
 * at the header: judge a copy whose CRC is made to match as well.
 */
static void fz_compat_crc(const u8 *data, size_t size,
			  const struct emu_nvme_limits *lim)
{
	static u8 b[1 << 17];

	if (size < EMU_IMG_HDR_LEN || size > sizeof(b))
		return;
	memcpy(b, data, size);
	emu_put_le32(b + 20, 0);
	emu_put_le32(b + 20, emu_crc32c(0, b, size));
	fz_compat(b, size, lim);
}

/* Destinations that lack one feature each, so none hides another. */
static void fz_lack(const u8 *data, size_t size,
		    const struct emu_nvme_limits *lim)
{
	struct emu_nvme_limits l = *lim;

	l.vwc = 0;
	fz_compat_crc(data, size, &l);
	l = *lim;
	l.npss = l.npss ? l.npss - 1 : 0;
	fz_compat_crc(data, size, &l);
	l = *lim;
	l.kas = 0;
	fz_compat_crc(data, size, &l);
	l = *lim;
	l.oacs = 0;
	fz_compat_crc(data, size, &l);
	/* A storage copy's destination: other identities, a larger disk. */
	l = *lim;
	l.ns_copied = 1;
	l.ns[0].nguid[0] ^= 1;
	l.ns[0].nsze++;
	fz_compat_crc(data, size, &l);
}

/*
 * Import and the verdict validate an image the same way: malformed for
 * one is malformed for the other, and an image import refuses only for
 * the destination's limits is one the verdict refuses too.
 */
static int fz_import(struct fh *fh, const u8 *img, size_t size,
		     const struct emu_nvme_limits *lim)
{
	static struct emu_verdict v;
	char err[128], verr[128];
	int ret, vret;

	ret = emu_img_import(fh->ctrl, img, size, err, sizeof(err));
	vret = emu_verdict_judge(img, size, lim, &v, verr, sizeof(verr));
	if (ret && !strncmp(err, "header.flags: a stable image", 28))
		return ret;
	if (!ret && vret)
		abort();
	if (ret && !strncmp(err, "limits.", 7)) {
		if (vret || v.compatible)
			abort();
	} else if (!!ret != !!vret || (ret && strcmp(err, verr))) {
		abort();
	}
	return ret;
}

/*
 * A destination VF without a transfer limit, so that images of any MDTS
 * get past import to the round trip below.
 */
static void fz_unlimited(struct fh *fh, struct emu_nvme_limits *lim)
{
	static u8 page[4096];
	const struct emu_nvme_state *st = emu_nvme_state(fh->ctrl);
	int i;

	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++)
		if (st->id.pages[i].valid && st->id.pages[i].cns == 1)
			memcpy(page, st->id.pages[i].data, sizeof(page));
	page[77] = 0;
	emu_nvme_load_identify(fh->ctrl, 1, 0, 0, 1, page);
	emu_nvme_get_limits(fh->ctrl, lim);
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static u8 out[1 << 17], fixed[1 << 17], again[1 << 17];
	static struct emu_nvme_state first;
	struct fh *fh = fh_get();
	struct emu_nvme_limits lim;
	char err[128];
	int n;

	fh_reset(fh);
	emu_nvme_get_limits(fh->ctrl, &lim);
	fz_compat(data, size, &lim);
	fz_compat_crc(data, size, &lim);
	fz_lack(data, size, &lim);
	fz_unlimited(fh, &lim);
	if (fz_import(fh, data, size, &lim)) {
		/* Past the CRC, as fz_compat_crc() judges it. */
		if (size < EMU_IMG_HDR_LEN || size > sizeof(fixed))
			return 0;
		memcpy(fixed, data, size);
		emu_put_le32(fixed + 20, 0);
		emu_put_le32(fixed + 20, emu_crc32c(0, fixed, size));
		data = fixed;
		if (fz_import(fh, data, size, &lim))
			return 0;
	}
	/*
	 * The image's own identity as the destination: the namespaces and
	 * limits match, so the features decide.
	 */
	emu_nvme_get_limits(fh->ctrl, &lim);
	fz_compat_crc(data, size, &lim);
	fz_lack(data, size, &lim);
	memcpy(&first, emu_nvme_state(fh->ctrl), sizeof(first));
	n = emu_img_export(fh->ctrl, out, sizeof(out), 0);
	if (n <= 0)
		abort();
	if (emu_img_import(fh->ctrl, out, (size_t)n, err, sizeof(err)))
		abort();
	/* Timestamp bookkeeping is host time, not state. */
	first.feat.ts_set_ns = emu_nvme_state(fh->ctrl)->feat.ts_set_ns;
	first.feat.ts_value = emu_nvme_state(fh->ctrl)->feat.ts_value;
	if (memcmp(&first, emu_nvme_state(fh->ctrl), sizeof(first)))
		abort();
	/*
	 * The model's own export is a fixed point: imported, it exports
	 * again byte for byte (what the controller keeps outside the
	 * state, such as pending interrupts, included).
	 */
	if (emu_img_export(fh->ctrl, again, sizeof(again), 0) != n ||
	    memcmp(out, again, (size_t)n))
		abort();
	/* And the controller keeps working on whatever was loaded. */
	emu_nvme_poll(fh->ctrl, 64);
	fh_backend(fh, 64);
	emu_nvme_poll(fh->ctrl, 64);
	return 0;
}
