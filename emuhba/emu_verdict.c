// SPDX-License-Identifier: GPL-2.0-only
/*
 * The destination's compatibility verdict, field by field. An image is
 * first validated as an import validates it (emu_img_validate()); the
 * decision is then emu_img_check_compat()'s, the check every migration
 * destination runs, and this file reads the image's basic profile once
 * more to show, for each field that check compares, what the image
 * demands and what the destination offers.
 */
#include "emu_img.h"
#include "emu_verdict.h"
#include "emu_nvme_int.h"

static u32 emu_cr_le(struct emu_r *r, u32 n)
{
	const u8 *p = emu_rbytes(r, n);

	if (!p)
		return 0;
	return n == 1 ? p[0] : n == 2 ? emu_get_le16(p) : emu_get_le32(p);
}

static u64 emu_cr_le64(struct emu_r *r)
{
	const u8 *p = emu_rbytes(r, 8);

	return p ? emu_get_le64(p) : 0;
}

/*
 * Bytes [off, off + n) of a run-encoded page (zero where no run covers
 * them); the encoding is skipped in r. Returns false on a bad encoding.
 */
static bool emu_cr_page(struct emu_r *r, u32 off, u8 *out, u32 n)
{
	u16 runs = (u16)emu_cr_le(r, 2), i, ro, rl;
	const u8 *b;
	u32 k;

	if (out)
		memset(out, 0, n);
	for (i = 0; i < runs && !r->bad; i++) {
		ro = (u16)emu_cr_le(r, 2);
		rl = (u16)emu_cr_le(r, 2);
		b = emu_rbytes(r, rl);
		if (!b || (u32)ro + rl > EMU_NVME_PAGE)
			return false;
		for (k = 0; out && k < n; k++)
			if (off + k >= ro && off + k < (u32)ro + rl)
				out[k] = b[off + k - ro];
	}
	return !r->bad;
}

/* What the image says, gathered before any comparison. */
struct emu_csrc_ns {
	u32 nsid;
	u64 nsze;
	u8 lba_shift;
	u8 nguid[16];
	u8 eui64[8];
};

struct emu_csrc {
	bool have_q;
	bool have_feat;
	bool have_usage;
	bool dbbuf;
	bool use_dbbuf;
	u16 nr_vectors, max_sqs, max_cqs;
	u32 mqes;
	u16 used_sq, used_cq, used_vec;
	u32 used_size;
	u8 mdts;
	u8 mpsmin;
	u8 vwc;
	u16 kas;
	u16 oacs;
	u32 sgls, oncs;
	u32 f_pm, f_vwc, f_kato;
	u32 nr_ns;
	struct emu_csrc_ns ns[EMU_NVME_MAX_NS];
};

static bool emu_cs_queues(struct emu_r *r, struct emu_csrc *s)
{
	u16 nsq = (u16)emu_cr_le(r, 2), ncq = (u16)emu_cr_le(r, 2), q;

	s->have_q = true;
	for (q = 0; q < ncq && !r->bad; q++) {
		u16 qid = (u16)emu_cr_le(r, 2), size = (u16)emu_cr_le(r, 2);
		u16 vec = (u16)emu_cr_le(r, 2);

		emu_rbytes(r, 14);
		s->used_cq = EMU_MAX(s->used_cq, qid);
		s->used_size = EMU_MAX(s->used_size, (u32)size);
		s->used_vec = EMU_MAX(s->used_vec, (u16)(vec + 1));
	}
	for (q = 0; q < nsq && !r->bad; q++) {
		u16 qid = (u16)emu_cr_le(r, 2), size;

		emu_cr_le(r, 2);
		size = (u16)emu_cr_le(r, 2);
		emu_rbytes(r, 14);
		s->used_sq = EMU_MAX(s->used_sq, qid);
		s->used_size = EMU_MAX(s->used_size, (u32)size);
	}
	return !r->bad;
}

/* Bytes of the page whose encoding starts where at points. */
static void emu_cr_peek(const struct emu_r *at, u32 off, u8 *out, u32 n)
{
	struct emu_r c = *at;

	emu_cr_page(&c, off, out, n);
}

static void emu_cs_ns(const struct emu_r *pg, u32 nsid, struct emu_csrc *s)
{
	struct emu_csrc_ns *ns = &s->ns[s->nr_ns];
	u8 tmp[32], lbaf[4], f;

	emu_cr_peek(pg, 0, tmp, sizeof(tmp));
	/* Only namespaces the model serves: the check skips the others. */
	if (!emu_ns_served(EMU_CNS_NS, 0, nsid, emu_get_le64(tmp)))
		return;
	ns->nsid = nsid;
	ns->nsze = emu_get_le64(tmp);
	f = (tmp[26] & 0xf) | ((tmp[26] >> 1) & 0x30);
	emu_cr_peek(pg, 128 + 4 * f, lbaf, sizeof(lbaf));
	ns->lba_shift = lbaf[2];
	emu_cr_peek(pg, 104, ns->nguid, sizeof(ns->nguid));
	emu_cr_peek(pg, 120, ns->eui64, sizeof(ns->eui64));
	s->nr_ns++;
}

static bool emu_cs_identity(struct emu_r *r, struct emu_csrc *s)
{
	u16 npages, j;
	u8 b[4];
	u64 cap;

	cap = emu_cr_le64(r);
	s->mqes = (u32)(cap & 0xffff);
	s->mpsmin = (u8)((cap >> 48) & 0xf);
	emu_cr_le(r, 4);
	s->nr_vectors = (u16)emu_cr_le(r, 2);
	s->max_sqs = (u16)emu_cr_le(r, 2);
	s->max_cqs = (u16)emu_cr_le(r, 2);
	npages = (u16)emu_cr_le(r, 2);
	for (j = 0; j < npages && !r->bad; j++) {
		u8 cns = (u8)emu_cr_le(r, 1), csi = (u8)emu_cr_le(r, 1);
		struct emu_r pg;
		u32 nsid;

		emu_cr_le(r, 2);
		nsid = emu_cr_le(r, 4);
		pg = *r;
		if (!emu_cr_page(r, 0, NULL, 0))
			return false;
		if (cns == EMU_CNS_CTRL) {
			emu_cr_peek(&pg, EMU_IDC_MDTS, &s->mdts, 1);
			emu_cr_peek(&pg, EMU_IDC_SGLS, b, 4);
			s->sgls = emu_get_le32(b);
			emu_cr_peek(&pg, EMU_IDC_ONCS, b, 2);
			s->oncs = emu_get_le16(b);
			emu_cr_peek(&pg, EMU_IDC_VWC, &s->vwc, 1);
			emu_cr_peek(&pg, EMU_IDC_KAS, b, 2);
			s->kas = emu_get_le16(b);
			emu_cr_peek(&pg, EMU_IDC_OACS, b, 2);
			s->oacs = emu_get_le16(b);
		} else if (cns == EMU_CNS_NS && !csi &&
			   s->nr_ns < EMU_NVME_MAX_NS) {
			emu_cs_ns(&pg, nsid, s);
		}
	}
	return !r->bad;
}

/* The features a destination must take back: see the image's layout. */
static bool emu_cs_features(struct emu_r *r, struct emu_csrc *s)
{
	s->have_feat = true;
	emu_cr_le(r, 4);
	s->f_pm = emu_cr_le(r, 4);
	emu_cr_le(r, 4);
	s->f_vwc = emu_cr_le(r, 4);
	emu_rbytes(r, 5 * 4);
	s->f_kato = emu_cr_le(r, 4);
	return !r->bad;
}

/* Walk the sections of an image emu_img_validate() accepted. */
static bool emu_cs_read(const u8 *b, size_t len, struct emu_csrc *s)
{
	u32 nsec = emu_get_le32(b + 24), i, pos = EMU_IMG_HDR_LEN;

	for (i = 0; i < nsec; i++) {
		struct emu_r r = { 0 };
		u16 type;
		u32 slen;

		if (len - pos < EMU_IMG_SEC_HDR_LEN)
			return false;
		type = emu_get_le16(b + pos);
		slen = emu_get_le32(b + pos + 4);
		pos += EMU_IMG_SEC_HDR_LEN;
		if (slen > len - pos)
			return false;
		r.p = b + pos;
		r.len = slen;
		pos += slen;
		if (type == EMU_IMG_SEC_QUEUES && !emu_cs_queues(&r, s))
			return false;
		if (type == EMU_IMG_SEC_DBBUF)
			s->dbbuf = emu_cr_le(&r, 1) == 1;
		if (type == EMU_IMG_SEC_USAGE) {
			s->have_usage = true;
			s->use_dbbuf = emu_cr_le(&r, 1) == 1;
		}
		if (type == EMU_IMG_SEC_FEATURES && !emu_cs_features(&r, s))
			return false;
		if (type == EMU_IMG_SEC_IDENTITY && !emu_cs_identity(&r, s))
			return false;
	}
	/* A full image says what the guest uses; a stable one what it may. */
	if (!s->have_q) {
		s->used_sq = s->max_sqs;
		s->used_cq = s->max_cqs;
		s->used_size = s->mqes + 1;
		s->used_vec = s->nr_vectors;
	}
	return true;
}

static struct emu_verdict_field *emu_cv_add(struct emu_verdict *v,
					    const char *name, u8 fmt, u64 src,
					    u64 dst, bool ok)
{
	struct emu_verdict_field *f;

	if (v->nr == EMU_VERDICT_MAX_FIELDS)
		return NULL;
	f = &v->f[v->nr++];
	memset(f, 0, sizeof(*f));
	f->name = name;
	f->fmt = fmt;
	f->src = src;
	f->dst = dst;
	f->ok = ok;
	f->dst_present = 1;
	return f;
}

/* An identity field; a copied namespace may have another. */
static void emu_cv_id(struct emu_verdict *v, const char *name, u32 nsid,
		      const u8 *src, const u8 *dst, u8 n, bool copied)
{
	struct emu_verdict_field *f = emu_cv_add(v, name, EMU_VERDICT_ID, 0, 0,
						 copied || !memcmp(src, dst, n));

	if (!f)
		return;
	f->nsid = nsid;
	f->id_len = n;
	memcpy(f->src_id, src, n);
	memcpy(f->dst_id, dst, n);
}

/* The same comparisons, in the same order, as emu_img_check_compat(). */
static void emu_cv_fields(struct emu_verdict *v,
			  const struct emu_csrc *s,
			  const struct emu_nvme_limits *lim)
{
	bool src_vwc, src_ka, src_db, dst_db;
	u8 src_ps;
	u32 i, k;

	for (i = 0; i < s->nr_ns; i++) {
		const struct emu_csrc_ns *ns = &s->ns[i];
		const struct emu_nvme_ns_limits *dn = NULL;
		struct emu_verdict_field *f;

		for (k = 0; k < lim->nr_ns && k < EMU_NVME_MAX_NS; k++)
			if (lim->ns[k].nsid == ns->nsid)
				dn = &lim->ns[k];
		f = emu_cv_add(v, "namespace.nsid", EMU_VERDICT_DEC, ns->nsid,
			       ns->nsid, dn);
		if (!f)
			return;
		f->nsid = ns->nsid;
		if (!dn) {
			f->dst_present = 0;
			continue;
		}
		f = emu_cv_add(v, "namespace.nsze", EMU_VERDICT_DEC, ns->nsze,
			       dn->nsze, lim->ns_copied ? dn->nsze >= ns->nsze :
			       dn->nsze == ns->nsze);
		if (f)
			f->nsid = ns->nsid;
		f = emu_cv_add(v, "namespace.lba_format", EMU_VERDICT_DEC,
			       ns->lba_shift, dn->lba_shift,
			       dn->lba_shift == ns->lba_shift);
		if (f)
			f->nsid = ns->nsid;
		emu_cv_id(v, "namespace.nguid", ns->nsid, ns->nguid, dn->nguid,
			  16, lim->ns_copied);
		emu_cv_id(v, "namespace.eui64", ns->nsid, ns->eui64, dn->eui64,
			  8, lim->ns_copied);
	}
	emu_cv_add(v, "limits.max_sqs", EMU_VERDICT_DEC, s->used_sq,
		   lim->max_sqs, lim->max_sqs >= s->used_sq);
	emu_cv_add(v, "limits.max_cqs", EMU_VERDICT_DEC, s->used_cq,
		   lim->max_cqs, lim->max_cqs >= s->used_cq);
	/* In entries (MQES + 1): a full image's queues are counted so. */
	emu_cv_add(v, "limits.mqes", EMU_VERDICT_DEC, s->used_size,
		   (u32)lim->mqes + 1, (u32)lim->mqes + 1 >= s->used_size);
	emu_cv_add(v, "limits.nr_vectors", EMU_VERDICT_DEC, s->used_vec,
		   lim->nr_vectors, lim->nr_vectors >= s->used_vec);
	/* MDTS in units of each side's MPSMIN: compared in bytes. */
	emu_cv_add(v, "limits.mdts", EMU_VERDICT_DEC, s->mdts, lim->mdts,
		   emu_xfer_fits(emu_xfer_shift(s->mdts, (u64)s->mpsmin << 48),
				 emu_xfer_shift(lim->mdts,
						(u64)lim->mpsmin << 48)));
	emu_cv_add(v, "limits.sgls", EMU_VERDICT_HEX, s->sgls & 3,
		   lim->sgls & 3, !((s->sgls & 3) && !(lim->sgls & 3)));
	emu_cv_add(v, "limits.oncs", EMU_VERDICT_HEX, s->oncs & 0x4f,
		   lim->oncs & 0x4f, !(s->oncs & 0x4f & ~lim->oncs));
	/* What the guest enabled; in a stable image, what it may enable. */
	src_vwc = s->have_feat ? s->f_vwc & 1 : s->vwc & 1;
	src_ps = s->have_feat ? s->f_pm & 0x1f : 0;
	src_ka = s->have_feat ? s->f_kato != 0 : s->kas != 0;
	emu_cv_add(v, "features.vwc", EMU_VERDICT_DEC, src_vwc, lim->vwc & 1,
		   !(src_vwc && !(lim->vwc & 1)));
	emu_cv_add(v, "features.power_state", EMU_VERDICT_DEC, src_ps,
		   lim->npss, src_ps <= lim->npss);
	emu_cv_add(v, "features.keep_alive", EMU_VERDICT_DEC, src_ka,
		   lim->kas != 0, !(src_ka && !lim->kas));
	/* A stable image's USAGE; before 1.2, what the source offers. */
	src_db = s->have_q ? s->dbbuf : s->have_usage ? s->use_dbbuf :
		 !!(s->oacs & EMU_OACS_DBBUF);
	dst_db = !!(lim->oacs & EMU_OACS_DBBUF);
	emu_cv_add(v, "features.dbbuf", EMU_VERDICT_DEC, src_db, dst_db,
		   !(src_db && !dst_db));
}

static void emu_cv_copy(char *dst, size_t n, const char *src)
{
	size_t i;

	if (!dst || !n)
		return;
	for (i = 0; i + 1 < n && src[i]; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

int emu_verdict_judge(const void *img, size_t len,
		      const struct emu_nvme_limits *lim,
		      struct emu_verdict *v, char *err, size_t errlen)
{
	struct emu_csrc s;
	char msg[128];
	bool refused;
	int ret;
	u32 i;

	memset(v, 0, sizeof(*v));
	if (err && errlen)
		err[0] = '\0';
	/* Malformed exactly when an import would say so, in its words. */
	ret = emu_img_validate(img, len, err, errlen);
	if (ret)
		return ret;
	refused = emu_img_check_compat(img, len, lim, msg, sizeof(msg));
	memset(&s, 0, sizeof(s));
	if (!emu_cs_read(img, len, &s)) {
		emu_msg(err, errlen, "image", "malformed section", (u64)-1);
		return -EINVAL;
	}
	v->full = s.have_q;
	emu_cv_fields(v, &s, lim);

	v->compatible = !refused;
	for (i = 0; i < v->nr; i++)
		if (!v->f[i].ok)
			v->compatible = false;
	if (refused)
		emu_cv_copy(err, errlen, msg);
	else if (!v->compatible)
		for (i = 0; i < v->nr; i++)
			if (!v->f[i].ok) {
				emu_msg(err, errlen, v->f[i].name, "refused",
					(u64)-1);
				break;
			}
	return 0;
}
