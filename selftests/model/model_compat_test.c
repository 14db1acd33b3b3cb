// SPDX-License-Identifier: GPL-2.0-only
/*
 * The field-by-field compatibility verdict (emuhba/emu_compat.c) against
 * the check a migration destination runs (emu_img_check_compat()), in
 * userspace under ASan/UBSan, on images of the real model driven the way
 * Linux's nvme driver does (selftests/model's host library): each limit the
 * destination lacks refuses exactly its field, with both sides' values;
 * the verdict and the check agree on random destinations; damaged images
 * are refused as malformed, never half-judged.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "emu_test_lib.h"
#include "../../emuhba/emu_compat.h"

static u8 full[65536], stable[65536];

FIXTURE(cv)
{
	struct th th;
	struct drv d;
	struct emu_nvme_limits lim;
	int full_len, stable_len;
};

FIXTURE_SETUP(cv)
{
	ASSERT_EQ(0, drv_start(&self->d, &self->th, 0xc0de + (unsigned int)getpid()));
	/* 4 I/O queue pairs of 64 entries, shadow doorbells on. */
	ASSERT_EQ(0, drv_bringup(&self->d, 4, 64, 1, 1));
	self->full_len = emu_img_export(self->th.ctrl, full, sizeof(full), 0);
	ASSERT_GT(self->full_len, 0);
	self->stable_len = emu_img_export_stable(self->th.ctrl, stable,
						 sizeof(stable));
	ASSERT_GT(self->stable_len, 0);
	emu_nvme_get_limits(self->th.ctrl, &self->lim);
}

FIXTURE_TEARDOWN(cv)
{
	th_fini(&self->th);
}

static const struct emu_compat_field *field(const struct emu_compat_verdict *v,
					    const char *name)
{
	for (u32 i = 0; i < v->nr; i++)
		if (!strcmp(v->f[i].name, name))
			return &v->f[i];
	return NULL;
}

static int refused(const struct emu_compat_verdict *v)
{
	int n = 0;

	for (u32 i = 0; i < v->nr; i++)
		n += !v->f[i].ok;
	return n;
}

TEST_F(cv, own_limits_accept_both_images)
{
	static struct emu_compat_verdict v;
	char err[160];

	ASSERT_EQ(0, emu_compat_verdict(full, self->full_len, &self->lim, &v,
					err, sizeof(err)));
	EXPECT_TRUE(v.compatible);
	EXPECT_TRUE(v.full);
	EXPECT_EQ(0, refused(&v));
	EXPECT_STREQ("", err);
	/* 8 controller fields, 5 per namespace. */
	EXPECT_EQ(8 + 5 * self->lim.nr_ns, v.nr);
	/* The guest created 4 queue pairs of 64 entries, used dbbuf. */
	EXPECT_EQ(4, field(&v, "limits.max_sqs")->src);
	EXPECT_EQ(64, field(&v, "limits.mqes")->src);
	EXPECT_EQ(EMU_BIT(8), field(&v, "limits.oacs")->src);
	EXPECT_EQ(self->lim.max_sqs, field(&v, "limits.max_sqs")->dst);

	ASSERT_EQ(0, emu_compat_verdict(stable, self->stable_len, &self->lim,
					&v, err, sizeof(err)));
	EXPECT_TRUE(v.compatible);
	EXPECT_FALSE(v.full);
	/* A stable image demands what the guest may use: the source's all. */
	EXPECT_EQ(self->lim.max_sqs, field(&v, "limits.max_sqs")->src);
	EXPECT_EQ((u64)self->lim.mqes + 1, field(&v, "limits.mqes")->src);
	EXPECT_EQ(0, field(&v, "limits.oacs")->src);
}

/* Each lack refuses its own field and no other, as the check names it. */
TEST_F(cv, each_lack_refuses_its_field)
{
	static struct emu_compat_verdict v;
	struct emu_nvme_limits l;
	char err[160], cerr[160];

#define LACK(change, name) do {						\
		const struct emu_compat_field *f;			\
		l = self->lim;						\
		change;							\
		ASSERT_EQ(0, emu_compat_verdict(full, self->full_len, &l, \
						&v, err, sizeof(err)));	\
		EXPECT_FALSE(v.compatible) TH_LOG("%s", name);		\
		f = field(&v, name);					\
		ASSERT_NE(NULL, f) TH_LOG("%s", name);			\
		EXPECT_FALSE(f->ok) TH_LOG("%s", name);			\
		EXPECT_EQ(1, refused(&v)) TH_LOG("%s", name);		\
		EXPECT_NE(NULL, strstr(err, name)) TH_LOG("%s: %s", name, err); \
		EXPECT_NE(0, emu_img_check_compat(full, self->full_len, &l, \
						  cerr, sizeof(cerr)));	\
		EXPECT_STREQ(cerr, err);				\
	} while (0)
	LACK(l.max_sqs = 3, "limits.max_sqs");
	LACK(l.max_cqs = 2, "limits.max_cqs");
	LACK(l.mqes = 31, "limits.mqes");
	LACK(l.nr_vectors = 2, "limits.nr_vectors");
	LACK(l.mdts = 5, "limits.mdts");
	LACK(l.sgls = 0, "limits.sgls");
	LACK(l.oncs = 0x1, "limits.oncs");
	LACK(l.oacs = 0, "limits.oacs");
	LACK(l.ns[0].nguid[3] ^= 1, "namespace.nguid");
	LACK(l.ns[0].eui64[0] ^= 1, "namespace.eui64");
	LACK(l.ns[0].nsze--, "namespace.nsze");
	LACK(l.ns[0].lba_shift = 9, "namespace.lba_format");
#undef LACK

	/* A missing namespace: its row says so, its other rows are absent. */
	l = self->lim;
	l.ns[0].nsid = 2;
	ASSERT_EQ(0, emu_compat_verdict(full, self->full_len, &l, &v, err,
					sizeof(err)));
	EXPECT_FALSE(v.compatible);
	EXPECT_FALSE(field(&v, "namespace.nsid")->ok);
	EXPECT_FALSE(field(&v, "namespace.nsid")->dst_present);
	EXPECT_EQ(NULL, field(&v, "namespace.nsze"));
	EXPECT_NE(NULL, strstr(err, "namespace.nsid"));

	/* Values of both sides are reported, not just the decision. */
	l = self->lim;
	l.mqes = 15;
	ASSERT_EQ(0, emu_compat_verdict(full, self->full_len, &l, &v, err,
					sizeof(err)));
	EXPECT_EQ(64, field(&v, "limits.mqes")->src);
	EXPECT_EQ(16, field(&v, "limits.mqes")->dst);
}

/* Random destinations: the verdict and the migration check agree. */
TEST_F(cv, agrees_with_the_check_on_random_destinations)
{
	static struct emu_compat_verdict v;
	char err[160], cerr[160];
	int disagree = 0, accepted = 0, refusals = 0;

	for (int i = 0; i < 4000; i++) {
		struct emu_nvme_limits l = self->lim;
		const u8 *img = i & 1 ? full : stable;
		int len = i & 1 ? self->full_len : self->stable_len;
		int c;

		switch (th_rand(&self->th) % 9) {
		case 0: l.max_sqs = th_rand(&self->th) % 20; break;
		case 1: l.max_cqs = th_rand(&self->th) % 20; break;
		case 2: l.mqes = th_rand(&self->th) % 4096; break;
		case 3: l.nr_vectors = th_rand(&self->th) % 20; break;
		case 4: l.mdts = th_rand(&self->th) % 10; break;
		case 5: l.sgls = th_rand(&self->th) % 4; break;
		case 6: l.oncs = th_rand(&self->th) & 0x7f; break;
		case 7: l.oacs = th_rand(&self->th) & 0x1ff; break;
		default: l.ns[0].lba_shift = 9 + th_rand(&self->th) % 4;
		}
		ASSERT_EQ(0, emu_compat_verdict(img, len, &l, &v, err,
						sizeof(err)));
		c = emu_img_check_compat(img, len, &l, cerr, sizeof(cerr));
		if (!!v.compatible != !c || (!v.compatible && !refused(&v)))
			disagree++;
		accepted += v.compatible;
		refusals += !v.compatible;
	}
	EXPECT_EQ(0, disagree);
	/* Both outcomes were exercised. */
	EXPECT_LT(100, accepted);
	EXPECT_LT(100, refusals);
}

/* Damage: refused as malformed (-EINVAL, the field named), or judged. */
TEST_F(cv, damaged_images)
{
	static struct emu_compat_verdict v;
	static u8 b[65536];
	char err[160];

	EXPECT_EQ(-EINVAL, emu_compat_verdict(full, 10, &self->lim, &v, err,
					      sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "header"));
	EXPECT_EQ(-EINVAL, emu_compat_verdict(full, self->full_len - 4,
					      &self->lim, &v, err,
					      sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "header.length")) TH_LOG("%s", err);
	memcpy(b, full, self->full_len);
	b[self->full_len - 1] ^= 0x10;
	EXPECT_EQ(-EINVAL, emu_compat_verdict(b, self->full_len, &self->lim,
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
		ret = emu_compat_verdict(b, len, &self->lim, &v, err,
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

TEST_HARNESS_MAIN
