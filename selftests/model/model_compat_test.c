// SPDX-License-Identifier: GPL-2.0-only
/*
 * The field-by-field compatibility verdict (emuhba/emu_verdict.c) against
 * the check a migration destination runs (emu_img_check_compat()), in
 * userspace under ASan/UBSan, on images of the real model driven the way
 * Linux's nvme driver does (selftests/model's host library): each limit the
 * destination lacks refuses exactly its field, with both sides' values;
 * the verdict and the check agree on random destinations; damaged images
 * are refused as malformed, never half-judged. A second source, whose
 * controller has power states and Keep Alive, has a guest that uses them:
 * the features the guest enabled must be honoured too, and a feature it
 * left off never refuses a destination. Shadow doorbells are judged by
 * what the guest uses already in the stable (pre-copy) image.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "emu_test_lib.h"
#include "../../emuhba/emu_verdict.h"

static u8 full[65536], stable[65536];

/* The second source: NPSS 3, KAS 10 (1 s), VWC; its guest's images. */
#define FS_NPSS		3
#define FS_KAS		10
static struct th fth;
static struct drv fdrv;
static u8 ffull[65536], fstable[65536];
static int ffull_len, fstable_len;

/*
 * drv_start() on a controller whose Identify Controller page has power
 * states 0..npss, Keep Alive Support kas and a volatile write cache.
 */
static int start_feat(struct drv *d, struct th *th, unsigned int seed,
		      u8 npss, u16 kas)
{
	static u8 page[4096];

	th_init(th, seed);
	th_new_ctrl(th);
	th_load_identity(th, 12, 2048, 16);
	th_idctrl_page(page);
	page[263] = npss;
	emu_put_le16(page + 320, kas);
	if (emu_nvme_load_identify(th->ctrl, 1, 0, 0, 1, page))
		return -1;
	emu_nvme_start_disabled(th->ctrl);
	return drv_attach(d, th, 32);
}

FIXTURE(cv)
{
	struct th th;
	struct drv d;
	struct emu_nvme_limits lim;
	int full_len, stable_len;
};

FIXTURE_SETUP(cv)
{
	ASSERT_EQ(0, drv_start(&self->d, &self->th, th_seed(0xc0de)));
	/* 4 I/O queue pairs of 64 entries, shadow doorbells on. */
	ASSERT_EQ(0, drv_bringup(&self->d, 4, 64, 1, 1));
	self->full_len = emu_img_export(self->th.ctrl, full, sizeof(full), 0);
	ASSERT_GT(self->full_len, 0);
	self->stable_len = emu_img_export_stable(self->th.ctrl, stable,
						 sizeof(stable));
	ASSERT_GT(self->stable_len, 0);
	emu_nvme_get_limits(self->th.ctrl, &self->lim);

	/* Power state 2, keep-alive every 5 s, the write cache left on. */
	ASSERT_EQ(0, start_feat(&fdrv, &fth, th_seed(0xfea7),
				FS_NPSS, FS_KAS));
	ASSERT_EQ(0, drv_bringup(&fdrv, 4, 64, 1, 1));
	ASSERT_EQ(0, drv_set_feature(&fdrv, 0x02, 2));
	ASSERT_EQ(0, drv_set_feature(&fdrv, 0x0f, 5000));
	ffull_len = emu_img_export(fth.ctrl, ffull, sizeof(ffull), 0);
	ASSERT_GT(ffull_len, 0);
	fstable_len = emu_img_export_stable(fth.ctrl, fstable,
					    sizeof(fstable));
	ASSERT_GT(fstable_len, 0);
}

FIXTURE_TEARDOWN(cv)
{
	th_fini(&self->th);
	th_fini(&fth);
}

static const struct emu_verdict_field *field(const struct emu_verdict *v,
					    const char *name)
{
	for (u32 i = 0; i < v->nr; i++)
		if (!strcmp(v->f[i].name, name))
			return &v->f[i];
	return NULL;
}

static int refused(const struct emu_verdict *v)
{
	int n = 0;

	for (u32 i = 0; i < v->nr; i++)
		n += !v->f[i].ok;
	return n;
}

TEST_F(cv, own_limits_accept_both_images)
{
	static struct emu_verdict v;
	struct emu_nvme_limits l;
	char err[160];

	ASSERT_EQ(0, emu_verdict_judge(full, self->full_len, &self->lim, &v,
					err, sizeof(err)));
	EXPECT_TRUE(v.compatible);
	EXPECT_TRUE(v.full);
	EXPECT_EQ(0, refused(&v));
	EXPECT_STREQ("", err);
	/* The destination has every one of them. */
	for (u32 i = 0; i < v.nr; i++) {
		EXPECT_EQ(1, v.f[i].dst_present) TH_LOG("%s", v.f[i].name);
	}
	/* 7 limits, 4 features, 5 per namespace. */
	EXPECT_EQ(11 + 5 * self->lim.nr_ns, v.nr);
	EXPECT_EQ(NULL, field(&v, "limits.oacs"));
	/* The guest created 4 queue pairs of 64 entries, used dbbuf. */
	EXPECT_EQ(4, field(&v, "limits.max_sqs")->src);
	EXPECT_EQ(64, field(&v, "limits.mqes")->src);
	EXPECT_EQ(1, field(&v, "features.dbbuf")->src);
	EXPECT_EQ(1, field(&v, "features.dbbuf")->dst);
	EXPECT_EQ(self->lim.max_sqs, field(&v, "limits.max_sqs")->dst);
	/* The write cache is on (the controller's default), nothing else. */
	EXPECT_EQ(1, field(&v, "features.vwc")->src);
	EXPECT_EQ(1, field(&v, "features.vwc")->dst);
	EXPECT_EQ(0, field(&v, "features.power_state")->src);
	EXPECT_EQ(0, field(&v, "features.keep_alive")->src);
	EXPECT_EQ(0, field(&v, "features.keep_alive")->dst);

	ASSERT_EQ(0, emu_verdict_judge(stable, self->stable_len, &self->lim,
					&v, err, sizeof(err)));
	EXPECT_TRUE(v.compatible);
	EXPECT_FALSE(v.full);
	/* A stable image demands what the guest may use: the source's all. */
	EXPECT_EQ(self->lim.max_sqs, field(&v, "limits.max_sqs")->src);
	EXPECT_EQ((u64)self->lim.mqes + 1, field(&v, "limits.mqes")->src);
	/* ...but shadow doorbells as the guest uses them. */
	EXPECT_EQ(1, field(&v, "features.dbbuf")->src);
	EXPECT_EQ(1, field(&v, "features.vwc")->src);
	EXPECT_EQ(0, field(&v, "features.power_state")->src);

	/* The second source's own limits, as its destination would have. */
	emu_nvme_get_limits(fth.ctrl, &l);
	EXPECT_EQ(FS_NPSS, l.npss);
	EXPECT_EQ(FS_KAS, l.kas);
	EXPECT_EQ(1, l.vwc & 1);
	ASSERT_EQ(0, emu_verdict_judge(ffull, ffull_len, &l, &v, err,
					sizeof(err)));
	EXPECT_TRUE(v.compatible) TH_LOG("%s", err);
	EXPECT_EQ(2, field(&v, "features.power_state")->src);
	EXPECT_EQ(FS_NPSS, field(&v, "features.power_state")->dst);
	EXPECT_EQ(1, field(&v, "features.keep_alive")->src);
	EXPECT_EQ(1, field(&v, "features.keep_alive")->dst);
	EXPECT_EQ(0, emu_img_check_compat(ffull, ffull_len, &l, err,
					  sizeof(err)));
	ASSERT_EQ(0, emu_verdict_judge(fstable, fstable_len, &l, &v, err,
					sizeof(err)));
	EXPECT_TRUE(v.compatible) TH_LOG("%s", err);
	/* Before the guest stops, any power state may still be chosen... */
	EXPECT_EQ(0, field(&v, "features.power_state")->src);
	/* ...and Keep Alive is whatever the source offers. */
	EXPECT_EQ(1, field(&v, "features.keep_alive")->src);
}

/* Each lack refuses its own field and no other, as the check names it. */
TEST_F(cv, each_lack_refuses_its_field)
{
	static struct emu_verdict v;
	struct emu_nvme_limits l, fl;
	char err[160], cerr[160];

#define LACK_IN(img, len, base, change, name) do {			\
		const struct emu_verdict_field *f;			\
		l = base;						\
		change;							\
		ASSERT_EQ(0, emu_verdict_judge(img, len, &l,		\
						&v, err, sizeof(err)));	\
		EXPECT_FALSE(v.compatible) TH_LOG("%s", name);		\
		f = field(&v, name);					\
		ASSERT_NE(NULL, f) TH_LOG("%s", name);			\
		EXPECT_FALSE(f->ok) TH_LOG("%s", name);			\
		EXPECT_EQ(1, refused(&v)) TH_LOG("%s", name);		\
		EXPECT_NE(NULL, strstr(err, name)) TH_LOG("%s: %s", name, err); \
		EXPECT_NE(0, emu_img_check_compat(img, len, &l,	\
						  cerr, sizeof(cerr)));	\
		EXPECT_STREQ(cerr, err);				\
	} while (0)
#define LACK(change, name)						\
	LACK_IN(full, self->full_len, self->lim, change, name)
	LACK(l.max_sqs = 3, "limits.max_sqs");
	LACK(l.max_cqs = 2, "limits.max_cqs");
	LACK(l.mqes = 31, "limits.mqes");
	LACK(l.nr_vectors = 2, "limits.nr_vectors");
	LACK(l.mdts = 5, "limits.mdts");
	LACK(l.sgls = 0, "limits.sgls");
	LACK(l.oncs = 0x1, "limits.oncs");
	LACK(l.oacs = 0, "features.dbbuf");
	LACK(l.oacs &= ~EMU_BIT(8), "features.dbbuf");
	LACK(l.ns[0].nguid[3] ^= 1, "namespace.nguid");
	LACK(l.ns[0].eui64[0] ^= 1, "namespace.eui64");
	LACK(l.ns[0].nsze--, "namespace.nsze");
	LACK(l.ns[0].lba_shift = 9, "namespace.lba_format");
	LACK(l.vwc = 0, "features.vwc");
	LACK(l.vwc = 6, "features.vwc");
	/* A stable image: the source's cache may be on when the guest stops. */
	LACK_IN(stable, self->stable_len, self->lim, l.vwc = 0,
		"features.vwc");
	/* ...and the guest's shadow doorbells refuse already in pre-copy. */
	LACK_IN(stable, self->stable_len, self->lim, l.oacs = 0,
		"features.dbbuf");

	/* The second source: its guest uses power state 2 and Keep Alive. */
	emu_nvme_get_limits(fth.ctrl, &fl);
	LACK_IN(ffull, ffull_len, fl, l.vwc = 0, "features.vwc");
	LACK_IN(ffull, ffull_len, fl, l.npss = 1, "features.power_state");
	LACK_IN(ffull, ffull_len, fl, l.npss = 0, "features.power_state");
	LACK_IN(ffull, ffull_len, fl, l.kas = 0, "features.keep_alive");
	LACK_IN(fstable, fstable_len, fl, l.vwc = 0, "features.vwc");
	LACK_IN(fstable, fstable_len, fl, l.kas = 0, "features.keep_alive");
#undef LACK
#undef LACK_IN

	/* Both sides' values of a refused feature. */
	l = fl;
	l.npss = 1;
	ASSERT_EQ(0, emu_verdict_judge(ffull, ffull_len, &l, &v, err,
					sizeof(err)));
	EXPECT_EQ(2, field(&v, "features.power_state")->src);
	EXPECT_EQ(1, field(&v, "features.power_state")->dst);
	EXPECT_STREQ("features.power_state: beyond the destination's NPSS, power state (2)",
		     err);
	/* Power state 2 fits a destination whose deepest state is 2. */
	l.npss = 2;
	EXPECT_EQ(0, emu_img_check_compat(ffull, ffull_len, &l, err,
					  sizeof(err))) TH_LOG("%s", err);

	/*
	 * The optional commands missing, as ONCS bits: a destination without
	 * Compare (bit 0) lacks exactly that one.
	 */
	l = self->lim;
	ASSERT_EQ(0x4d, l.oncs);
	l.oncs &= ~EMU_BIT(0);
	ASSERT_EQ(0, emu_verdict_judge(full, self->full_len, &l, &v, err,
					sizeof(err)));
	EXPECT_EQ(0x4d, field(&v, "limits.oncs")->src);
	EXPECT_EQ(0x4c, field(&v, "limits.oncs")->dst);
	EXPECT_STREQ("limits.oncs: optional commands missing (1)", err);
	l.oncs = 0;
	EXPECT_NE(0, emu_img_check_compat(full, self->full_len, &l, err,
					  sizeof(err)));
	EXPECT_STREQ("limits.oncs: optional commands missing (77)", err);

	/* A missing namespace: its row says so, its other rows are absent. */
	l = self->lim;
	l.ns[0].nsid = 2;
	ASSERT_EQ(0, emu_verdict_judge(full, self->full_len, &l, &v, err,
					sizeof(err)));
	EXPECT_FALSE(v.compatible);
	EXPECT_FALSE(field(&v, "namespace.nsid")->ok);
	EXPECT_FALSE(field(&v, "namespace.nsid")->dst_present);
	EXPECT_EQ(NULL, field(&v, "namespace.nsze"));
	EXPECT_NE(NULL, strstr(err, "namespace.nsid"));

	/* Values of both sides are reported, not just the decision. */
	l = self->lim;
	l.mqes = 15;
	ASSERT_EQ(0, emu_verdict_judge(full, self->full_len, &l, &v, err,
					sizeof(err)));
	EXPECT_EQ(64, field(&v, "limits.mqes")->src);
	EXPECT_EQ(16, field(&v, "limits.mqes")->dst);
}

/*
 * A feature the guest left off (or turned off again) refuses no
 * destination, even one without it, though the source has it.
 */
TEST_F(cv, features_left_off_refuse_nothing)
{
	static struct emu_verdict v;
	static u8 img[65536];
	struct emu_nvme_limits l;
	char err[160];
	int len;

	ASSERT_EQ(0, drv_set_feature(&fdrv, 0x02, 0));
	ASSERT_EQ(0, drv_set_feature(&fdrv, 0x0f, 0));
	ASSERT_EQ(0, drv_set_feature(&fdrv, 0x06, 0));
	len = emu_img_export(fth.ctrl, img, sizeof(img), 0);
	ASSERT_GT(len, 0);
	emu_nvme_get_limits(fth.ctrl, &l);
	l.vwc = 0;
	l.npss = 0;
	l.kas = 0;
	ASSERT_EQ(0, emu_verdict_judge(img, len, &l, &v, err, sizeof(err)));
	EXPECT_TRUE(v.compatible) TH_LOG("%s", err);
	EXPECT_EQ(0, refused(&v));
	EXPECT_EQ(0, field(&v, "features.vwc")->src);
	EXPECT_EQ(0, field(&v, "features.power_state")->src);
	EXPECT_EQ(0, field(&v, "features.keep_alive")->src);
	EXPECT_EQ(0, emu_img_check_compat(img, len, &l, err, sizeof(err)))
		TH_LOG("%s", err);

	/* The same guest's cache turned on again is refused there. */
	ASSERT_EQ(0, drv_set_feature(&fdrv, 0x06, 1));
	len = emu_img_export(fth.ctrl, img, sizeof(img), 0);
	ASSERT_GT(len, 0);
	EXPECT_NE(0, emu_img_check_compat(img, len, &l, err, sizeof(err)));
	EXPECT_STREQ("features.vwc: volatile write cache enabled, none here",
		     err);
}

/* Remove a stable image's USAGE section, as a 1.1 source wrote it. */
static int strip_usage(u8 *b, int len)
{
	u32 n = emu_get_le32(b + 24), i, pos = 32, slen;

	for (i = 0; i < n; i++) {
		slen = emu_get_le32(b + pos + 4);
		if (emu_get_le16(b + pos) == EMU_IMG_SEC_USAGE) {
			memmove(b + pos, b + pos + 8 + slen,
				(size_t)len - pos - 8 - slen);
			len -= 8 + (int)slen;
			break;
		}
		pos += 8 + slen;
	}
	if (i == n)
		return -1;
	emu_put_le16(b + 6, 1);
	emu_put_le32(b + 24, n - 1);
	emu_put_le32(b + 16, (u32)len);
	emu_put_le32(b + 20, 0);
	emu_put_le32(b + 20, emu_crc32c(0, b, (size_t)len));
	return len;
}

/*
 * Shadow doorbells (Doorbell Buffer Config), which VFs of real SSDs do not
 * offer: a guest that uses them is refused by such a destination already
 * in its stable (pre-copy) image, naming features.dbbuf; a guest that does
 * not is taken, though its source offers them; one that turns them on
 * later says so in the next stable image.
 */
TEST_F(cv, shadow_doorbells_judged_by_use)
{
	static const char uses[] =
		"features.dbbuf: guest uses shadow doorbells, destination has none";
	static const char may[] =
		"features.dbbuf: guest may use shadow doorbells, destination has none";
	static struct emu_verdict v;
	static u8 s2[65536], f2[65536], old[65536];
	struct emu_nvme_limits none = self->lim;
	char err[160], cerr[160];
	int s2_len, f2_len, old_len;
	struct th th2;
	struct drv d2;
	u8 sqe[64];

	none.oacs &= ~EMU_BIT(8);
	/* The fixture's guest uses them: refused, stable and full alike. */
	EXPECT_EQ(-EINVAL, emu_img_check_compat(stable, self->stable_len,
						&none, err, sizeof(err)));
	EXPECT_STREQ(uses, err);
	ASSERT_EQ(0, emu_verdict_judge(stable, self->stable_len, &none, &v,
					cerr, sizeof(cerr)));
	EXPECT_FALSE(v.compatible);
	EXPECT_STREQ(uses, cerr);
	EXPECT_EQ(1, field(&v, "features.dbbuf")->src);
	EXPECT_EQ(0, field(&v, "features.dbbuf")->dst);
	EXPECT_FALSE(field(&v, "features.dbbuf")->ok);
	EXPECT_EQ(-EINVAL, emu_img_check_compat(full, self->full_len, &none,
						err, sizeof(err)));
	EXPECT_STREQ(uses, err);
	EXPECT_EQ(EMU_IMG_USE_DBBUF, emu_img_usage(self->th.ctrl));

	/* A guest on the same kind of VF that does not use them. */
	ASSERT_EQ(0, drv_start(&d2, &th2, th_seed(0xdb0f)));
	ASSERT_EQ(0, drv_bringup(&d2, 4, 64, 0, 1));
	EXPECT_EQ(0, emu_img_usage(th2.ctrl));
	s2_len = emu_img_export_stable(th2.ctrl, s2, sizeof(s2));
	ASSERT_GT(s2_len, 0);
	f2_len = emu_img_export(th2.ctrl, f2, sizeof(f2), 0);
	ASSERT_GT(f2_len, 0);
	EXPECT_EQ(0, emu_img_check_compat(s2, s2_len, &none, err,
					  sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(0, emu_img_check_compat(f2, f2_len, &none, err,
					  sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, emu_verdict_judge(s2, s2_len, &none, &v, err,
					sizeof(err)));
	EXPECT_TRUE(v.compatible) TH_LOG("%s", err);
	EXPECT_EQ(0, refused(&v));
	EXPECT_EQ(0, field(&v, "features.dbbuf")->src);
	EXPECT_EQ(0, field(&v, "features.dbbuf")->dst);
	/* And by a destination that has them: either way is fine. */
	EXPECT_EQ(0, emu_img_check_compat(s2, s2_len, &self->lim, err,
					  sizeof(err))) TH_LOG("%s", err);

	/* A 1.1 source's stable image does not say: judged by the offer. */
	memcpy(old, s2, (size_t)s2_len);
	old_len = strip_usage(old, s2_len);
	ASSERT_GT(old_len, 0);
	EXPECT_EQ(-EINVAL, emu_img_check_compat(old, old_len, &none, err,
						sizeof(err)));
	EXPECT_STREQ(may, err);
	ASSERT_EQ(0, emu_verdict_judge(old, old_len, &none, &v, cerr,
					sizeof(cerr)));
	EXPECT_STREQ(may, cerr);
	EXPECT_EQ(1, field(&v, "features.dbbuf")->src);
	EXPECT_EQ(1, refused(&v));
	EXPECT_EQ(0, emu_img_check_compat(old, old_len, &self->lim, err,
					  sizeof(err))) TH_LOG("%s", err);

	/* The guest turns them on later (nvme_dbbuf_set() after a reset). */
	drv_sqe(sqe, 0x7c, 0);
	drv_set_prp(sqe, th_alloc(&th2, 4096, 4096), th_alloc(&th2, 4096, 4096));
	ASSERT_EQ(0, drv_admin(&d2, sqe, NULL));
	EXPECT_EQ(EMU_IMG_USE_DBBUF, emu_img_usage(th2.ctrl));
	s2_len = emu_img_export_stable(th2.ctrl, s2, sizeof(s2));
	ASSERT_GT(s2_len, 0);
	EXPECT_EQ(-EINVAL, emu_img_check_compat(s2, s2_len, &none, err,
						sizeof(err)));
	EXPECT_STREQ(uses, err);
	/* A controller reset drops the buffer: nothing in use again. */
	drv_wreg(&d2, EMU_REG_CC, drv_reg(&d2, EMU_REG_CC, 4) & ~EMU_CC_EN, 4);
	ASSERT_EQ(0, drv_wait_csts(&d2, EMU_CSTS_RDY, 0));
	EXPECT_EQ(0, emu_img_usage(th2.ctrl));
	s2_len = emu_img_export_stable(th2.ctrl, s2, sizeof(s2));
	ASSERT_GT(s2_len, 0);
	EXPECT_EQ(0, emu_img_check_compat(s2, s2_len, &none, err,
					  sizeof(err))) TH_LOG("%s", err);
	th_fini(&th2);
}

/*
 * A 1.1 stable image of a source that offers no shadow doorbells (as real
 * SSDs' VFs) refuses no destination for them.
 */
TEST_F(cv, old_stable_image_without_offer)
{
	static struct emu_verdict v;
	static u8 page[4096], s3[65536];
	struct emu_nvme_limits none = self->lim;
	struct th th3;
	struct drv d3;
	char err[160];
	u8 sqe[64];
	int len;

	none.oacs = 0;
	th_init(&th3, th_seed(0xdb11));
	th_new_ctrl(&th3);
	th_load_identity(&th3, 12, 2048, 16);
	th_idctrl_page(page);
	emu_put_le16(page + 256, 0xaa);
	ASSERT_EQ(0, emu_nvme_load_identify(th3.ctrl, 1, 0, 0, 1, page));
	emu_nvme_start_disabled(th3.ctrl);
	memset(&d3, 0, sizeof(d3));
	d3.th = &th3;
	ASSERT_EQ(0, drv_enable(&d3, 32));
	ASSERT_EQ(0, drv_bringup(&d3, 2, 64, 0, 1));
	/* The controller refuses the command it does not offer. */
	drv_sqe(sqe, 0x7c, 0);
	drv_set_prp(sqe, th_alloc(&th3, 4096, 4096), th_alloc(&th3, 4096, 4096));
	EXPECT_NE(0, drv_admin(&d3, sqe, NULL));
	len = emu_img_export_stable(th3.ctrl, s3, sizeof(s3));
	ASSERT_GT(len, 0);
	len = strip_usage(s3, len);
	ASSERT_GT(len, 0);
	ASSERT_EQ(0, emu_verdict_judge(s3, len, &none, &v, err, sizeof(err)));
	EXPECT_TRUE(v.compatible) TH_LOG("%s", err);
	EXPECT_EQ(0, field(&v, "features.dbbuf")->src);
	EXPECT_EQ(0, emu_img_check_compat(s3, len, &none, err, sizeof(err)))
		TH_LOG("%s", err);
	th_fini(&th3);
}

/* Random destinations: the verdict and the migration check agree. */
TEST_F(cv, agrees_with_the_check_on_random_destinations)
{
	static struct emu_verdict v;
	char err[160], cerr[160];
	const u8 *imgs[] = { stable, full, fstable, ffull };
	const int lens[] = { self->stable_len, self->full_len, fstable_len,
			     ffull_len };
	int disagree = 0, accepted = 0, refusals = 0, feat_refusals = 0;
	struct emu_nvme_limits fl;

	emu_nvme_get_limits(fth.ctrl, &fl);
	for (int i = 0; i < 6000; i++) {
		struct emu_nvme_limits l = i & 2 ? fl : self->lim;
		const u8 *img = imgs[i & 3];
		int len = lens[i & 3];
		int c;

		switch (th_rand(&self->th) % 12) {
		case 0: l.max_sqs = th_rand(&self->th) % 20; break;
		case 1: l.max_cqs = th_rand(&self->th) % 20; break;
		case 2: l.mqes = th_rand(&self->th) % 4096; break;
		case 3: l.nr_vectors = th_rand(&self->th) % 20; break;
		case 4: l.mdts = th_rand(&self->th) % 10; break;
		case 5: l.sgls = th_rand(&self->th) % 4; break;
		case 6: l.oncs = th_rand(&self->th) & 0x7f; break;
		case 7: l.oacs = th_rand(&self->th) & 0x1ff; break;
		case 8: l.vwc = th_rand(&self->th) & 7; break;
		case 9: l.npss = th_rand(&self->th) % 5; break;
		case 10: l.kas = th_rand(&self->th) % 3; break;
		default: l.ns[0].lba_shift = 9 + th_rand(&self->th) % 4;
		}
		ASSERT_EQ(0, emu_verdict_judge(img, len, &l, &v, err,
						sizeof(err)));
		c = emu_img_check_compat(img, len, &l, cerr, sizeof(cerr));
		if (!!v.compatible != !c || (!v.compatible && !refused(&v)))
			disagree++;
		accepted += v.compatible;
		refusals += !v.compatible;
		feat_refusals += !v.compatible && !strncmp(cerr, "features.", 9);
	}
	EXPECT_EQ(0, disagree);
	EXPECT_LT(100, feat_refusals);
	/* Both outcomes were exercised. */
	EXPECT_LT(100, accepted);
	EXPECT_LT(100, refusals);
}

/* Damage: refused as malformed (-EINVAL, the field named), or judged. */
TEST_F(cv, damaged_images)
{
	static struct emu_verdict v;
	static u8 b[65536];
	char err[160];

	EXPECT_EQ(-EINVAL, emu_verdict_judge(full, 10, &self->lim, &v, err,
					      sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "header"));
	EXPECT_EQ(-EINVAL, emu_verdict_judge(full, self->full_len - 4,
					      &self->lim, &v, err,
					      sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "header.length")) TH_LOG("%s", err);
	memcpy(b, full, self->full_len);
	b[self->full_len - 1] ^= 0x10;
	EXPECT_EQ(-EINVAL, emu_verdict_judge(b, self->full_len, &self->lim,
					      &v, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "header.crc32c")) TH_LOG("%s", err);

	/* Random bytes with a valid CRC: no crash, consistent answers. */
	for (int i = 0; i < 3000; i++) {
		int len = i & 1 ? self->full_len : self->stable_len;
		int ret, c;
		u32 crc;

		memcpy(b, i & 1 ? full : stable, len);
		for (int k = 0; k < 1 + (int)(th_rand(&self->th) % 4); k++)
			b[32 + th_rand(&self->th) % (len - 32)] =
				(u8)th_rand(&self->th);
		emu_put_le32(b + 20, 0);
		crc = emu_crc32c(0, b, len);
		emu_put_le32(b + 20, crc);
		ret = emu_verdict_judge(b, len, &self->lim, &v, err,
					 sizeof(err));
		c = emu_img_check_compat(b, len, &self->lim, NULL, 0);
		if (ret) {
			EXPECT_EQ(-EINVAL, ret);
			EXPECT_NE(0, c);
		} else {
			EXPECT_EQ(!c, !!v.compatible);
		}
	}
}

/*
 * A storage copy's destination (ns_copied): another namespace identity is
 * taken (the guest keeps its own), a larger namespace too; a smaller one
 * or another LBA format is still refused; verdict and check agree.
 */
TEST_F(cv, copied_namespace)
{
	static struct emu_verdict v;
	struct emu_nvme_limits l;
	char err[160], cerr[160];
	const u8 *img[2] = { full, stable };
	int len[2] = { self->full_len, self->stable_len };

	for (int i = 0; i < 2; i++) {
		l = self->lim;
		l.ns_copied = 1;
		l.ns[0].nguid[3] ^= 1;
		l.ns[0].eui64[0] ^= 1;
		l.ns[0].nsze += 8;
		ASSERT_EQ(0, emu_verdict_judge(img[i], len[i], &l, &v, err,
					       sizeof(err)));
		EXPECT_TRUE(v.compatible) TH_LOG("%s", err);
		EXPECT_EQ(0, emu_img_check_compat(img[i], len[i], &l, cerr,
						  sizeof(cerr))) TH_LOG("%s", cerr);
		/* Without the copy the same destination is another disk. */
		l.ns_copied = 0;
		ASSERT_EQ(0, emu_verdict_judge(img[i], len[i], &l, &v, err,
					       sizeof(err)));
		EXPECT_FALSE(v.compatible);
		EXPECT_EQ(3, refused(&v));

		l = self->lim;
		l.ns_copied = 1;
		l.ns[0].nsze--;
		ASSERT_EQ(0, emu_verdict_judge(img[i], len[i], &l, &v, err,
					       sizeof(err)));
		EXPECT_FALSE(v.compatible);
		EXPECT_NE(NULL, strstr(err, "namespace.nsze")) TH_LOG("%s", err);
		EXPECT_NE(0, emu_img_check_compat(img[i], len[i], &l, cerr,
						  sizeof(cerr)));
		EXPECT_STREQ(cerr, err);

		l = self->lim;
		l.ns_copied = 1;
		l.ns[0].lba_shift = l.ns[0].lba_shift == 9 ? 12 : 9;
		ASSERT_EQ(0, emu_verdict_judge(img[i], len[i], &l, &v, err,
					       sizeof(err)));
		EXPECT_FALSE(v.compatible);
		EXPECT_NE(NULL, strstr(err, "namespace.lba_format"))
			TH_LOG("%s", err);
	}
}

/*
 * FLBAS bits 3:0 select the LBA format in use, bits 6:5 its upper two bits
 * (NVMe 2.0, Identify Namespace): a namespace on format 1 or 16 (4 KiB;
 * format 0 is 512 B) is compared by that format's size, in the check and
 * in the verdict, which shows both sides' sizes.
 */
TEST(lba_format_one)
{
	static const u8 fmts[] = { 1, 16 };
	static struct th th;
	static struct emu_verdict v;
	static u8 page[4096], img[65536];
	const struct emu_verdict_field *f;
	struct emu_nvme_limits lim;
	char err[200], verr[200];
	unsigned int i;
	int len;

	for (i = 0; i < sizeof(fmts); i++) {
		th_init(&th, 0x1baf + i);
		th_new_ctrl(&th);
		th_load_identity(&th, 12, 2048, 16);
		th_idns_page(page, 12);
		page[25] = fmts[i];	/* NLBAF: 0's based */
		page[26] = (fmts[i] & 0xf) | ((fmts[i] & 0x30) << 1);
		page[128 + 2] = 9;			/* LBAF0: 512 B */
		page[128 + 4 * fmts[i] + 2] = 12;	/* 4 KiB */
		ASSERT_EQ(0, emu_nvme_load_identify(th.ctrl, 0, 0, 1, 1, page));
		emu_nvme_get_limits(th.ctrl, &lim);
		ASSERT_EQ(12, lim.ns[0].lba_shift);
		len = emu_img_export_stable(th.ctrl, img, sizeof(img));
		ASSERT_GT(len, 0);
		EXPECT_EQ(0, emu_img_check_compat(img, (size_t)len, &lim, err,
						  sizeof(err))) TH_LOG("%s", err);
		ASSERT_EQ(0, emu_verdict_judge(img, (size_t)len, &lim, &v, verr,
						sizeof(verr)));
		EXPECT_TRUE(v.compatible) TH_LOG("format %u: %s", fmts[i], verr);
		f = field(&v, "namespace.lba_format");
		ASSERT_NE(NULL, f);
		EXPECT_TRUE(f->ok);
		EXPECT_EQ(12, f->src);
		EXPECT_EQ(12, f->dst);
		/* The same namespace on 512-byte blocks is another format. */
		lim.ns[0].lba_shift = 9;
		EXPECT_NE(0, emu_img_check_compat(img, (size_t)len, &lim, err,
						  sizeof(err)));
		EXPECT_NE(NULL, strstr(err, "namespace.lba_format"))
			TH_LOG("%s", err);
		ASSERT_EQ(0, emu_verdict_judge(img, (size_t)len, &lim, &v, verr,
						sizeof(verr)));
		EXPECT_FALSE(v.compatible);
		EXPECT_EQ(1, refused(&v));
		f = field(&v, "namespace.lba_format");
		ASSERT_NE(NULL, f);
		EXPECT_FALSE(f->ok);
		EXPECT_EQ(12, f->src);
		EXPECT_EQ(9, f->dst);
		EXPECT_STREQ(err, verr);
		th_fini(&th);
	}
}

/*
 * KAS is a 16-bit count of 100 ms: a source offering 25.6 s (0x100) offers
 * Keep Alive, which a destination without it cannot honour.
 */
TEST(keep_alive_granularity_is_16_bits)
{
	static struct th th;
	static u8 page[4096], img[65536];
	struct emu_nvme_limits lim;
	char err[200];
	int len;

	th_init(&th, 0x4a5);
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 2048, 16);
	th_idctrl_page(page);
	emu_put_le16(page + 320, 0x100);
	ASSERT_EQ(0, emu_nvme_load_identify(th.ctrl, 1, 0, 0, 1, page));
	emu_nvme_get_limits(th.ctrl, &lim);
	len = emu_img_export_stable(th.ctrl, img, sizeof(img));
	ASSERT_GT(len, 0);
	EXPECT_EQ(0, emu_img_check_compat(img, (size_t)len, &lim, err,
					  sizeof(err))) TH_LOG("%s", err);
	lim.kas = 0;
	EXPECT_NE(0, emu_img_check_compat(img, (size_t)len, &lim, err,
					  sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "features.keep_alive")) TH_LOG("%s", err);
	th_fini(&th);
}

/* The limits carry CAP.MPSMIN (bits 51:48) as the identity gives it. */
TEST(limits_mpsmin)
{
	struct emu_nvme_limits l;
	struct th th;

	th_init(&th, 3);
	th_new_ctrl(&th);
	ASSERT_EQ(0, emu_nvme_set_hw(th.ctrl, 63 | (1ULL << 16) | (1ULL << 37) |
				     (2ULL << 48) | (4ULL << 52), 0x10400, 17,
				     8, 8));
	emu_nvme_get_limits(th.ctrl, &l);
	EXPECT_EQ(2, l.mpsmin);
	EXPECT_EQ(63, l.mqes);
	th_fini(&th);
}

/*
 * A refused verdict's message is the check's, in its words: whatever the
 * size of the caller's buffer, the verdict's err holds what
 * emu_img_check_compat() writes into one of the same size (the message
 * cut to the buffer, always terminated).
 */
TEST_F(cv, refusal_message_cut_like_the_check)
{
	static struct emu_verdict v;
	struct emu_nvme_limits l = self->lim;
	char err[160], cerr[160];
	size_t n, whole;

	l.mqes = 31;
	ASSERT_NE(0, emu_img_check_compat(full, self->full_len, &l, cerr,
					  sizeof(cerr)));
	whole = strlen(cerr);
	ASSERT_LT(10, whole);
	for (n = 1; n <= whole + 2; n++) {
		memset(err, 'x', sizeof(err));
		memset(cerr, 'y', sizeof(cerr));
		ASSERT_EQ(0, emu_verdict_judge(full, self->full_len, &l, &v,
					       err, n));
		EXPECT_FALSE(v.compatible);
		EXPECT_NE(0, emu_img_check_compat(full, self->full_len, &l,
						  cerr, n));
		EXPECT_EQ(n - 1 < whole ? n - 1 : whole, strlen(err))
			TH_LOG("errlen %zu: '%s'", n, err);
		EXPECT_STREQ(cerr, err) TH_LOG("errlen %zu", n);
	}
}

/*
 * MDTS counts in units of 2^(12 + CAP.MPSMIN) on both sides: for every
 * MPSMIN of the source (0..4) and of the destination, a destination whose
 * largest transfer in bytes is the source's is taken, one of half as
 * many bytes is refused as limits.mdts.
 */
TEST(transfer_limit_in_bytes_for_every_page_size)
{
	static struct th th;
	static u8 page[4096], img[65536];
	struct emu_nvme_limits lim;
	int len, smps, dmps, mdts, tried = 0;
	char err[200];
	u64 cap;

	for (smps = 0; smps <= 4; smps++) {
		th_init(&th, 0x6d0 + smps);
		th_new_ctrl(&th);
		/* MQES 2047, CQR, CSS NVM, MPSMIN smps, MPSMAX 15. */
		cap = 2047 | (1ULL << 16) | (1ULL << 37) |
		      ((u64)smps << 48) | (15ULL << 52);
		ASSERT_EQ(0, emu_nvme_set_hw(th.ctrl, cap, 0x10400, 17, 16,
					     16));
		th_idctrl_page(page);
		page[77] = 5;		/* MDTS: 2^5 minimum pages */
		ASSERT_EQ(0, emu_nvme_load_identify(th.ctrl, 1, 0, 0, 1,
						    page));
		th_idns_page(page, 12);
		ASSERT_EQ(0, emu_nvme_load_identify(th.ctrl, 0, 0, 1, 1,
						    page));
		emu_nvme_get_limits(th.ctrl, &lim);
		ASSERT_EQ(smps, lim.mpsmin);
		ASSERT_EQ(5, lim.mdts);
		len = emu_img_export_stable(th.ctrl, img, sizeof(img));
		ASSERT_GT(len, 0);
		for (dmps = 0; dmps <= 15; dmps++) {
			/* The source's 2^(12 + smps + 5) bytes. */
			mdts = smps + 5 - dmps;
			if (mdts < 2)
				continue;
			lim.mpsmin = (u8)dmps;
			lim.mdts = (u8)mdts;
			EXPECT_EQ(0, emu_img_check_compat(img, (size_t)len,
							  &lim, err,
							  sizeof(err)))
				TH_LOG("MPSMIN %d -> %d: %s", smps, dmps, err);
			lim.mdts = (u8)(mdts - 1);
			EXPECT_NE(0, emu_img_check_compat(img, (size_t)len,
							  &lim, err,
							  sizeof(err)))
				TH_LOG("MPSMIN %d -> %d, MDTS %d", smps, dmps,
				       mdts - 1);
			EXPECT_NE(NULL, strstr(err, "limits.mdts"))
				TH_LOG("%s", err);
			tried++;
		}
		th_fini(&th);
	}
	EXPECT_EQ(4 + 5 + 6 + 7 + 8, tried);
}

/*
 * A stable image carries no Set Features record: the source's VWC field
 * stands for what its guest may enable.  VWC bit 0 is "present" (NVMe 2.0
 * Identify Controller, byte 525); bits 2:1 only say how Flush to all
 * namespaces behaves, so a source whose VWC is 6 has no cache to carry.
 */
TEST(stable_source_without_cache_needs_none)
{
	static struct emu_verdict v;
	static u8 page[4096], img[65536];
	struct emu_nvme_limits l;
	struct th th;
	struct drv d;
	char err[160];
	int len;

	th_init(&th, th_seed(0x7c0f));
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 2048, 16);
	th_idctrl_page(page);
	page[525] = 6;
	ASSERT_EQ(0, emu_nvme_load_identify(th.ctrl, 1, 0, 0, 1, page));
	emu_nvme_start_disabled(th.ctrl);
	ASSERT_EQ(0, drv_attach(&d, &th, 32));
	ASSERT_EQ(0, drv_bringup(&d, 2, 32, 1, 0));
	len = emu_img_export_stable(th.ctrl, img, sizeof(img));
	ASSERT_GT(len, 0);
	emu_nvme_get_limits(th.ctrl, &l);
	l.vwc = 0;
	ASSERT_EQ(0, emu_verdict_judge(img, len, &l, &v, err, sizeof(err)));
	EXPECT_TRUE(v.compatible) TH_LOG("%s", err);
	EXPECT_EQ(0, refused(&v));
	EXPECT_EQ(0, field(&v, "features.vwc")->src);
	EXPECT_TRUE(field(&v, "features.vwc")->ok);
	EXPECT_EQ(0, emu_img_check_compat(img, len, &l, err, sizeof(err)))
		TH_LOG("%s", err);
	th_fini(&th);
}

TEST_HARNESS_MAIN
