// SPDX-License-Identifier: GPL-2.0-only
/*
 * emuhba model: state image export/import in the middle of I/O streams,
 * strict rejection of malformed images, golden images of older versions,
 * the admin observer and takeover, and destination compatibility.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "emu_test_stream.h"
#include "../../emuhba/emu_verdict.h"
#include "kselftest_harness.h"

static u8 img[65536];

FIXTURE(img) {
	struct th th;
	struct drv d;
	struct stream s;
	int len;
};

FIXTURE_SETUP(img)
{
	ASSERT_EQ(0, drv_start(&self->d, &self->th, th_seed(0xbeef)));
	ASSERT_EQ(0, drv_bringup(&self->d, 4, 64, 1, 1));
	self->len = emu_img_export(self->th.ctrl, img, sizeof(img), 0);
	ASSERT_GT(self->len, 0);
}

FIXTURE_TEARDOWN(img)
{
	th_fini(&self->th);
}

TEST_F(img, save_restore_mid_stream)
{
	int i, next, migrations = 0, len = 0;

	/*
	 * Features away from their defaults, so that an import that drops
	 * one fails the byte-for-byte round trip of every migration:
	 * Arbitration (burst and weights) and an Interrupt Coalescing
	 * threshold, so that completions stay pending across migrations.
	 * No aggregation time: with one, import signals what is pending at
	 * once (the time has passed during the migration), so the image
	 * exported after it rightly differs.
	 */
	ASSERT_EQ(0, drv_set_feature(&self->d, 0x01,
				     th_rand(&self->th) & 0xffffff07));
	ASSERT_EQ(0, drv_set_feature(&self->d, 0x08,
				     1 + th_rand(&self->th) % 0xff));
	stream_init(&self->s, &self->d);
	next = 20 + (int)(th_rand(&self->th) % 80);
	for (i = 0; i < 3000; i++) {
		stream_step(&self->s, 1 + (int)(th_rand(&self->th) % 8));
		if (i == next) {
			ASSERT_EQ(0, stream_migrate(&self->s, &len)) {
				TH_LOG("%s", self->s.why);
			}
			migrations++;
			next = i + 1 + (int)(th_rand(&self->th) % 120);
		}
	}
	EXPECT_EQ(0, stream_finish(&self->s)) {
		TH_LOG("%s / %s", self->s.why, self->d.why);
	}
	EXPECT_GT(migrations, 20);
	EXPECT_GT(self->s.verified, 500);
	EXPECT_EQ(0, self->d.errors);
	EXPECT_EQ(0, (long)self->th.dma_errors);
	/* The AER armed at bring-up survived every migration. */
	EXPECT_EQ(1, emu_nvme_state(self->th.ctrl)->aer.nr_cid);
	stream_fini(&self->s);
}

/* One read taken by the model and still with the backend. */
static int read_at_backend(struct th *th, struct drv *d)
{
	u8 sqe[64];

	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, th_alloc(th, 4096, 4096), 0);
	if (drv_submit(d, 1, sqe) < 0)
		return -1;
	emu_nvme_poll(th->ctrl, 8);
	return th->npend == 1 ? 0 : -1;
}

TEST_F(img, export_refused_with_backend_requests)
{
	ASSERT_EQ(0, read_at_backend(&self->th, &self->d));
	EXPECT_EQ(-EBUSY, emu_img_export(self->th.ctrl, img, sizeof(img), 0));
	EXPECT_EQ(-EBUSY, emu_img_import(self->th.ctrl, img, self->len, NULL,
					 0));
	EXPECT_EQ(-EBUSY, emu_nvme_handback(self->th.ctrl));
	th_run_backend(&self->th, 1);
	EXPECT_GT(emu_img_export(self->th.ctrl, img, sizeof(img), 0), 0);
	EXPECT_EQ(-ENOSPC, emu_img_export(self->th.ctrl, img, 100, 0));
}

/* Walk to a section's payload; returns its offset or -1. */
static int sec_find(u8 *b, int len, u16 type, u32 *slen)
{
	u32 n = emu_get_le32(b + 24), i, pos = 32;

	for (i = 0; i < n && pos + 8 <= (u32)len; i++) {
		u32 l = emu_get_le32(b + pos + 4);

		if (emu_get_le16(b + pos) == type) {
			*slen = l;
			return (int)pos + 8;
		}
		pos += 8 + l;
	}
	return -1;
}

static void img_fix(u8 *b, int len)
{
	emu_put_le32(b + 16, (u32)len);
	emu_put_le32(b + 20, 0);
	emu_put_le32(b + 20, emu_crc32c(0, b, (size_t)len));
}

/* Import must fail naming field, and leave the controller untouched. */
static int reject(struct th *th, u8 *b, int len, const char *field,
		  char *err)
{
	static u8 before[sizeof(struct emu_nvme_state)];
	const struct emu_nvme_state *st = emu_nvme_state(th->ctrl);
	int ret;

	memcpy(before, st, sizeof(*st));
	ret = emu_img_import(th->ctrl, b, (size_t)len, err, 200);
	if (!ret)
		return -1;
	if (memcmp(before, st, sizeof(*st)))
		return -2;
	if (!strstr(err, field))
		return -3;
	return 0;
}

TEST_F(img, rejects_malformed_images)
{
	static u8 b[65536];
	char err[200];
	int off, len = self->len, i;
	u32 slen;

#define MUTATE(expr, field) do {					\
		memcpy(b, img, (size_t)len);				\
		expr;							\
		EXPECT_EQ(0, reject(&self->th, b, len, field, err)) {	\
			TH_LOG("%s: got '%s'", field, err);		\
		}							\
	} while (0)
#define MUTATE_FIX(expr, field) MUTATE({ expr; img_fix(b, len); }, field)

	MUTATE(b[0] ^= 1, "header.magic");
	MUTATE(emu_put_le16(b + 4, 2), "header.major");
	MUTATE(emu_put_le32(b + 8, 7), "header.personality");
	MUTATE(b[len - 1] ^= 0x40, "header.crc32c");
	MUTATE(emu_put_le32(b + 16, (u32)len + 1), "header.length");
	MUTATE_FIX(emu_put_le32(b + 12, 0x80), "header.flags");
	/* Truncation anywhere: the header length catches it first... */
	for (i = 0; i < len; i += 97) {
		EXPECT_NE(0, emu_img_import(self->th.ctrl, img, (size_t)i,
					    err, sizeof(err)));
	}
	/* ...and with a consistent header, the sections do. */
	for (i = 32; i < len; i += 61) {
		memcpy(b, img, (size_t)len);
		img_fix(b, i);
		EXPECT_NE(0, emu_img_import(self->th.ctrl, b, (size_t)i, err,
					    sizeof(err)));
	}

	off = sec_find(img, len, EMU_IMG_SEC_QUEUES, &slen);
	ASSERT_GT(off, 0);
	/* CQ entries first (20 bytes each): 5 CQs, then 5 SQs. */
	ASSERT_EQ(5, emu_get_le16(img + off));
	ASSERT_EQ(5, emu_get_le16(img + off + 2));
#define CQ(n) (off + 4 + 20 * (n))
#define SQ(n) (off + 4 + 100 + 20 * (n))
	MUTATE_FIX(emu_put_le16(b + CQ(2), 1), "queues.cq.qid");
	MUTATE_FIX(emu_put_le16(b + SQ(3), 2), "queues.sq.qid");
	MUTATE_FIX(emu_put_le16(b + SQ(2) + 2, 9), "queues.sq.cqid");
	MUTATE_FIX(emu_put_le16(b + SQ(2) + 2, 0), "queues.sq.cqid");
	MUTATE_FIX(emu_put_le16(b + SQ(1) + 4, 4096), "queues.sq.size");
	MUTATE_FIX(emu_put_le16(b + CQ(1) + 2, 1), "queues.cq.size");
	MUTATE_FIX(emu_put_le16(b + SQ(1) + 6, 64), "queues.sq.position");
	MUTATE_FIX(emu_put_le16(b + CQ(1) + 8, 64), "queues.cq.position");
	MUTATE_FIX(emu_put_le16(b + CQ(1) + 10, 9), "queues.cq.flags");
	MUTATE_FIX(emu_put_le16(b + CQ(1) + 4, 40), "queues.cq.vector");
	MUTATE_FIX(emu_put_le16(b + CQ(4), 200), "queues.cq.qid");
	MUTATE_FIX(b[CQ(3) + 12] |= 0x10, "queues.cq.base");
	MUTATE_FIX(emu_put_le16(b + off, 200), "queues.count");
	MUTATE_FIX(emu_put_le16(b + CQ(0) + 2, 16), "queues.admin");

	off = sec_find(img, len, EMU_IMG_SEC_REGS, &slen);
	MUTATE_FIX(emu_put_le32(b + off + 4, 0x80000000), "regs.csts");
	MUTATE_FIX(emu_put_le32(b + off, 0x80000000), "regs.cc");
	off = sec_find(img, len, EMU_IMG_SEC_AER, &slen);
	MUTATE_FIX(b[off] = 17, "aer.nr_cid");
	off = sec_find(img, len, EMU_IMG_SEC_DBBUF, &slen);
	MUTATE_FIX(b[off + 1] |= 1, "dbbuf.dbs");
	MUTATE_FIX(b[off] = 2, "dbbuf.enabled");
	off = sec_find(img, len, EMU_IMG_SEC_IDENTITY, &slen);
	MUTATE_FIX(emu_put_le16(b + off + 12, 0), "identity.nr_vectors");
	MUTATE_FIX(emu_put_le16(b + off + 14, 999), "identity.max_sqs");
	MUTATE_FIX(emu_put_le16(b + off + 18, 99), "identity.nr_pages");
	/* Duplicate and unknown sections, flags. */
	off = sec_find(img, len, EMU_IMG_SEC_REGS, &slen);
	MUTATE_FIX(emu_put_le16(b + off - 6, 0x10), "section.flags");
	MUTATE_FIX(emu_put_le32(b + off - 4, 0x7fffffff), "section.length");
	MUTATE_FIX(emu_put_le16(b + off - 8, 0x0033), "section");
	MUTATE_FIX(emu_put_le32(b + 24, 99), "section");
#undef MUTATE
#undef MUTATE_FIX
}

TEST_F(img, unknown_sections_and_older_minor)
{
	static u8 b[65536];
	char err[200];
	int len = self->len;

	/* An unknown optional section (a newer minor) is skipped. */
	memcpy(b, img, (size_t)len);
	emu_put_le16(b + len, 0x0040);
	emu_put_le16(b + len + 2, 0);
	emu_put_le32(b + len + 4, 3);
	memcpy(b + len + 8, "new", 3);
	emu_put_le32(b + 24, emu_get_le32(b + 24) + 1);
	emu_put_le16(b + 6, EMU_IMG_MINOR + 1);
	img_fix(b, len + 11);
	EXPECT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)len + 11, err,
				    sizeof(err))) {
		TH_LOG("%s", err);
	}
	/* A basic section twice is refused. */
	{
		u32 slen;
		int off = sec_find(img, len, EMU_IMG_SEC_DBBUF, &slen);

		memcpy(b, img, (size_t)len);
		memcpy(b + len, img + off - 8, slen + 8);
		emu_put_le32(b + 24, emu_get_le32(b + 24) + 1);
		img_fix(b, len + 8 + (int)slen);
		EXPECT_EQ(0, reject(&self->th, b, len + 8 + (int)slen,
				    "section: duplicate", err));
		memcpy(b, img, (size_t)len);
		emu_put_le16(b + len, 0x0040);
		emu_put_le16(b + len + 2, 0);
		emu_put_le32(b + len + 4, 3);
		memcpy(b + len + 8, "new", 3);
		emu_put_le32(b + 24, emu_get_le32(b + 24) + 1);
	}
	/* The same section marked critical is refused. */
	emu_put_le16(b + len + 2, EMU_IMG_S_CRITICAL);
	img_fix(b, len + 11);
	EXPECT_EQ(0, reject(&self->th, b, len + 11, "unknown critical", err));

	/* Exporting for a 1.0 destination drops the 1.1 section. */
	len = emu_img_export(self->th.ctrl, b, sizeof(b), EMU_IMG_EXPORT_V1_0);
	ASSERT_GT(len, 0);
	EXPECT_EQ(0, emu_get_le16(b + 6));
	EXPECT_LT(len, self->len);
	EXPECT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)len, err,
				    sizeof(err)));
}

/*
 * Set the Timestamp feature (FID 0Eh) to 7,000,000 ms, let @before_ns of
 * host time pass, migrate, let @after_ns pass, and read it back: the
 * timestamp field, and in *@attr byte 6 (the attributes).
 */
static u64 timestamp_across_migration(struct th *th, struct drv *d,
				      u64 before_ns, u64 after_ns, u8 *attr)
{
	u64 p = th_alloc(th, 4096, 4096);
	u8 *b = th_ptr(th, p), sqe[64];
	struct stream s;

	drv_sqe(sqe, 0x09, 0);
	drv_set_dw(sqe, 10, 0x0e);
	drv_set_prp(sqe, p, 0);
	emu_put_le64(b, 7000000);
	if (drv_admin(d, sqe, NULL))
		return 0;
	th->now += before_ns;
	stream_init(&s, d);
	if (stream_migrate(&s, NULL))
		return 0;
	th->now += after_ns;
	memset(b, 0, 8);
	sqe[0] = 0x0a;
	if (drv_admin(d, sqe, NULL))
		return 0;
	stream_fini(&s);
	*attr = b[6];
	return emu_get_le64(b) & 0xffffffffffffULL;
}

TEST_F(img, timestamp_runs_on_across_migration)
{
	u8 attr = 0;
	u64 v = timestamp_across_migration(&self->th, &self->d,
					   3000000000ULL, 2000000000ULL, &attr);

	/* 7000 s + 3 s before and 2 s after the migration */
	EXPECT_EQ(7005000ULL, v);
	EXPECT_EQ(2, attr);
}

/*
 * The Timestamp feature (FID 0Eh) counts milliseconds since the host set it:
 * after 1000 s of the host clock it has moved by 1,000,000, not a few
 * more or less; the test clock is exact, so the only slack is the
 * truncation to whole milliseconds at each hop (set, export, import).
 */
TEST_F(img, timestamp_counts_milliseconds)
{
	u8 attr = 0;
	u64 v = timestamp_across_migration(&self->th, &self->d,
					   1000000000000ULL, 2000000000ULL,
					   &attr);

	EXPECT_LE(v, 7000000ULL + 1000000 + 2000);
	EXPECT_GE(v, 7000000ULL + 1000000 + 2000 - 2);
}

TEST_F(img, coalesced_interrupt_survives_migration)
{
	static u8 b[65536];
	u8 sqe[64];
	char err[200];
	int len, off;
	u32 slen;

	/* Threshold 64, time 1 x 100 us: one completion stays pending. */
	ASSERT_EQ(0, drv_set_feature(&self->d, 0x08, (1U << 8) | 63));
	self->th.sync = 1;
	drv_sqe(sqe, 0x00, 1);
	ASSERT_GE(drv_submit(&self->d, 2, sqe), 0);
	emu_nvme_poll(self->th.ctrl, 8);
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	len = emu_img_export(self->th.ctrl, b, sizeof(b), 0);
	ASSERT_GT(len, 0);
	th_free_ctrl(&self->th);
	th_new_ctrl(&self->th);
	ASSERT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)len, err,
				    sizeof(err)));
	/*
	 * The image says what was pending (the coalesced completion on
	 * vector 2 only): nothing fires on import, on no vector.
	 */
	EXPECT_EQ(0, (long)th_irq_total(&self->th));
	self->th.now += 1000000;
	emu_nvme_poll(self->th.ctrl, 8);
	EXPECT_EQ(1, (long)self->th.irqs[2]);

	/* Without the extended section every vector fires once. */
	off = sec_find(b, len, EMU_IMG_SEC_EMU_RUNTIME, &slen);
	ASSERT_GT(off, 0);
	ASSERT_EQ(len, off + (int)slen);
	emu_put_le32(b + 24, emu_get_le32(b + 24) - 1);
	len = off - 8;
	img_fix(b, len);
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	ASSERT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)len, err,
				    sizeof(err)));
	EXPECT_EQ(1, (long)self->th.irqs[0]);
	EXPECT_EQ(1, (long)self->th.irqs[2]);
	EXPECT_EQ(1, (long)self->th.irqs[16]);
	drv_reap(&self->d, 2);
	EXPECT_EQ(0, self->d.errors);
}

/*
 * Interrupt Vector Configuration (FID 09h) of every vector the model can
 * have, the highest (EMU_NVME_MAX_VEC - 1) too, survives a migration: the
 * guest reads back each Coalescing Disable it set, the others' defaults.
 */
TEST(vector_configuration_of_the_last_vectors_migrates)
{
	static const u16 set[] = { 1, 7, 8, 119, 120, EMU_NVME_MAX_VEC - 1 };
	struct stream s;
	struct drv d;
	struct th th;
	u8 sqe[64];
	u32 dw0, v;
	int i, cd;

	th_init(&th, th_seed(0x1fc));
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 2048, 16);
	ASSERT_EQ(0, emu_nvme_set_hw(th.ctrl, emu_nvme_state(th.ctrl)->id.cap,
				     0x10400, EMU_NVME_MAX_VEC, 16, 16));
	emu_nvme_start_disabled(th.ctrl);
	ASSERT_EQ(0, drv_attach(&d, &th, 32));
	ASSERT_EQ(0, drv_bringup(&d, 2, 64, 1, 1));
	for (i = 0; i < (int)EMU_ARRAY_SIZE(set); i++)
		ASSERT_EQ(0, drv_set_feature(&d, 0x09, (1U << 16) | set[i]));
	/* One past the last vector is refused. */
	EXPECT_EQ(0x4002, drv_set_feature(&d, 0x09,
					  (1U << 16) | EMU_NVME_MAX_VEC));
	stream_init(&s, &d);
	ASSERT_EQ(0, stream_migrate(&s, NULL)) TH_LOG("%s", s.why);
	stream_fini(&s);
	d.on_done = NULL;
	for (v = 0; v < EMU_NVME_MAX_VEC; v++) {
		cd = 0;
		for (i = 0; i < (int)EMU_ARRAY_SIZE(set); i++)
			cd |= set[i] == v;
		drv_sqe(sqe, 0x0a, 0);
		drv_set_dw(sqe, 10, 0x09);
		drv_set_dw(sqe, 11, v);
		dw0 = ~0U;
		ASSERT_EQ(0, drv_admin(&d, sqe, &dw0));
		EXPECT_EQ(((u32)cd << 16) | v, dw0) TH_LOG("vector %u", v);
	}
	EXPECT_EQ(0, d.errors) TH_LOG("%s", d.why);
	th_fini(&th);
}

static int read_file(const char *path, u8 *b, int cap)
{
	int fd = open(path, O_RDONLY), n;

	if (fd < 0)
		return -1;
	n = (int)read(fd, b, (size_t)cap);
	close(fd);
	return n;
}

TEST_F(img, golden_images_decode)
{
	static const char *const files[] = {
		"golden/nvme-v1.0.img", "golden/nvme-v1.1.img",
		"golden/nvme-v1.2.img",
	};
	static u8 b[65536];
	const struct emu_nvme_state *st;
	char err[200];
	unsigned int i;
	int n;

	for (i = 0; i < EMU_ARRAY_SIZE(files); i++) {
		n = read_file(files[i], b, sizeof(b));
		ASSERT_GT(n, 0) {
			TH_LOG("missing %s", files[i]);
		}
		EXPECT_EQ(i, emu_get_le16(b + 6));
		ASSERT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)n, err,
					    sizeof(err))) {
			TH_LOG("%s: %s", files[i], err);
		}
		st = emu_nvme_state(self->th.ctrl);
		/* What golden-gen built: 4 queue pairs of 64, dbbuf, AER. */
		EXPECT_EQ(64, st->sq[4].size);
		EXPECT_EQ(1, st->dbbuf.enabled);
		EXPECT_EQ(1, st->aer.nr_cid);
		EXPECT_EQ(EMU_CSTS_RDY, st->regs.csts);
		EXPECT_EQ(0, memcmp(emu_nvme_state(self->th.ctrl)->id.pages[0]
				    .data + 4, "pf0 ", 4));
		/* 1.0 had no log section: counters start from zero. */
		if (i == 0) {
			EXPECT_EQ(0, (long)st->logs.host_writes);
		} else {
			EXPECT_GT((long)st->logs.host_writes, 0);
		}
	}
}

TEST_F(img, compat_check_names_the_field)
{
	struct emu_nvme_limits lim;
	static u8 stable[65536];
	char err[200];
	int n;

	n = emu_img_export_stable(self->th.ctrl, stable, sizeof(stable));
	ASSERT_GT(n, 0);
	EXPECT_LT(n, self->len);
	emu_nvme_get_limits(self->th.ctrl, &lim);
	EXPECT_EQ(0, emu_img_check_compat(stable, (size_t)n, &lim, err,
					  sizeof(err))) {
		TH_LOG("%s", err);
	}
	EXPECT_EQ(0, emu_img_check_compat(img, (size_t)self->len, &lim, err,
					  sizeof(err)));
	/* A stable image cannot be loaded as controller state. */
	EXPECT_EQ(0, reject(&self->th, stable, n, "header.flags", err));

#define BAD(change, field, image, ilen) do {				\
		struct emu_nvme_limits l = lim;				\
		change;							\
		EXPECT_NE(0, emu_img_check_compat(image, (size_t)ilen, &l, \
						  err, sizeof(err)));	\
		EXPECT_NE(NULL, strstr(err, field)) {			\
			TH_LOG("%s: got '%s'", field, err);		\
		}							\
	} while (0)
	/* The full image needs 4 queues; the stable one all 16. */
	BAD(l.max_sqs = 3, "limits.max_sqs", img, self->len);
	BAD(l.max_sqs = 8, "limits.max_sqs", stable, n);
	BAD(l.max_cqs = 2, "limits.max_cqs", img, self->len);
	BAD(l.mqes = 31, "limits.mqes", img, self->len);
	BAD(l.nr_vectors = 2, "limits.nr_vectors", img, self->len);
	BAD(l.mdts = 5, "limits.mdts", img, self->len);
	BAD(l.sgls = 0, "limits.sgls", img, self->len);
	BAD(l.oncs = 0x1, "limits.oncs", img, self->len);
	BAD(l.oacs = 0, "features.dbbuf", img, self->len);
	/* The guest uses shadow doorbells: the stable image says so. */
	BAD(l.oacs = 0, "features.dbbuf", stable, n);
	BAD(l.ns[0].nguid[3] ^= 1, "namespace.nguid", img, self->len);
	BAD(l.ns[0].eui64[0] ^= 1, "namespace.eui64", img, self->len);
	BAD(l.ns[0].nsze--, "namespace.nsze", img, self->len);
	BAD(l.ns[0].lba_shift = 9, "namespace.lba_format", img, self->len);
	BAD(l.ns[0].nsid = 2, "namespace.nsid", img, self->len);
	/* A cross-model destination with more of everything is fine. */
	lim.max_sqs = 64;
	lim.mqes = 4095;
	lim.mdts = 9;
	EXPECT_EQ(0, emu_img_check_compat(img, (size_t)self->len, &lim, err,
					  sizeof(err)));
#undef BAD
}

/* Observer: a second model learns from the first one's admin traffic. */
static struct emu_nvme_ctrl *obs;
static struct th *obs_th;

static void obs_submit(struct drv *d, u16 qid, const u8 *sqe)
{
	if (!qid)
		emu_nvme_observe_admin(obs, sqe, NULL, NULL, 0);
}

static void obs_done(struct drv *d, u16 qid, struct drv_cmd *c)
{
	u8 cqe[16];
	u64 prp1 = emu_get_le64(c->sqe + 24);

	if (qid)
		return;
	emu_put_le32(cqe, c->dw0);
	emu_put_le32(cqe + 4, 0);
	emu_put_le16(cqe + 8, d->q[0].last_sqhd);
	emu_put_le16(cqe + 10, 0);
	emu_put_le16(cqe + 12, emu_get_le16(c->sqe + 2));
	emu_put_le16(cqe + 14, (u16)(c->status << 1));
	/* The glue copies the returned data out of guest memory. */
	emu_nvme_observe_admin(obs, c->sqe, cqe,
			       prp1 ? th_ptr(obs_th, prp1) : NULL,
			       prp1 ? 4096 : 0);
}

static void obs_wreg(struct drv *d, u32 off, u64 val, u32 size)
{
	emu_nvme_observe_reg_write(obs, off, val, size);
}

TEST(observe_then_takeover)
{
	struct th th;
	struct drv d;
	struct stream s;
	struct emu_nvme_positions pos;
	const struct emu_nvme_state *a, *b;
	struct emu_nvme_ctrl *vf;
	char err[200];
	u8 sqe[64];
	u32 acq_db;
	int i, q;

	th_init(&th, 77);
	vf = th_new_ctrl(&th);
	th_load_identity(&th, 12, 2048, 16);
	emu_nvme_start_disabled(vf);
	obs = calloc(1, emu_nvme_ctrl_size());
	obs_th = &th;
	emu_nvme_init(obs, &th_ops, &th);
	/* The glue reads CAP/VS and the MSI-X size from the VF itself. */
	emu_nvme_set_hw(obs, emu_nvme_state(vf)->id.cap, 0x10400, 17, 16, 16);
	memset(&d, 0, sizeof(d));
	d.th = &th;
	d.on_submit = obs_submit;
	d.on_done = obs_done;
	d.on_wreg = obs_wreg;
	ASSERT_EQ(0, drv_enable(&d, 32));
	ASSERT_EQ(0, drv_bringup(&d, 4, 64, 1, 1));
	ASSERT_EQ(0, drv_set_feature(&d, 0x08, 0x0103));
	/* Queue 4 goes away again: the observer must follow. */
	drv_sqe(sqe, 0x00, 0);
	drv_set_dw(sqe, 10, 4);
	ASSERT_EQ(0, drv_admin(&d, sqe, NULL));
	drv_sqe(sqe, 0x04, 0);
	drv_set_dw(sqe, 10, 4);
	ASSERT_EQ(0, drv_admin(&d, sqe, NULL));
	d.nr_io = 3;
	d.on_submit = NULL;
	d.on_wreg = NULL;

	/* Some I/O on the "VF", then stop it and take over. */
	stream_init(&s, &d);
	for (i = 0; i < 300; i++)
		stream_step(&s, 4);
	while (th.npend)
		th_run_backend(&th, th.npend);
	a = emu_nvme_state(vf);
	b = emu_nvme_state(obs);
	memset(&pos, 0, sizeof(pos));
	for (q = 0; q < EMU_NVME_NR_Q; q++) {
		EXPECT_EQ(a->sq[q].valid, b->sq[q].valid);
		EXPECT_EQ(a->cq[q].valid, b->cq[q].valid);
		EXPECT_EQ(a->sq[q].base, b->sq[q].base);
		EXPECT_EQ(a->cq[q].vector, b->cq[q].vector);
		EXPECT_EQ(a->sq[q].cqid, b->sq[q].cqid);
		pos.q[q].sq_head = a->sq[q].head;
		pos.q[q].sq_tail = a->sq[q].tail;
		pos.q[q].cq_head = a->cq[q].head;
		pos.q[q].cq_tail = a->cq[q].tail;
		pos.q[q].cq_phase = a->cq[q].phase;
	}
	EXPECT_EQ(0, b->sq[4].valid);
	EXPECT_EQ(a->feat.irq_coal, b->feat.irq_coal);
	EXPECT_EQ(a->feat.nq, b->feat.nq);
	EXPECT_EQ(a->feat.aec, b->feat.aec);
	EXPECT_EQ(a->dbbuf.dbs, b->dbbuf.dbs);
	EXPECT_EQ(1, b->dbbuf.enabled);
	EXPECT_EQ(1, b->aer.nr_cid);
	EXPECT_EQ(1000, b->aer.cid[0]);
	EXPECT_EQ(a->regs.cc, b->regs.cc);
	EXPECT_EQ(0, memcmp(a->id.pages[0].data, b->id.pages[0].data, 4096));

	pos.q[1].sq_tail = 999;
	EXPECT_EQ(-EINVAL, emu_nvme_takeover(obs, &pos, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "sq position"));
	pos.q[1].sq_tail = a->sq[1].tail;
	/*
	 * The admin completion head a guess at its tail (as the switch makes
	 * one when the guest wrote none): the host may write one behind. (I/O
	 * heads come from the shadow doorbells here.)
	 */
	pos.q[0].cq_head = a->cq[0].tail;
	pos.q[0].flags = EMU_QPOS_CQ_HEAD_GUESS;
	ASSERT_EQ(0, emu_nvme_takeover(obs, &pos, err, sizeof(err))) {
		TH_LOG("%s", err);
	}
	EXPECT_EQ(EMU_NVME_MODE_RUN, emu_nvme_get_mode(obs));
	q = (a->cq[0].tail + a->cq[0].size - 1) % a->cq[0].size;
	acq_db = EMU_REG_DBS + (4U << ((a->id.cap >> 32) & 0xf));
	emu_nvme_doorbell_write(obs, acq_db, q);
	EXPECT_EQ(q, b->cq[0].head);
	/* No Invalid Doorbell Write Value event took the AER. */
	EXPECT_EQ(1, b->aer.nr_cid);
	EXPECT_EQ(0, b->aer.nr_events);
	/* The driver's own head, at the tail, is valid from there. */
	emu_nvme_doorbell_write(obs, acq_db, a->cq[0].tail);
	EXPECT_EQ(a->cq[0].tail, b->cq[0].head);
	/* The guest never notices: the stream continues on the model. */
	th.ctrl = obs;
	d.on_done = NULL;
	d.on_done = s.d->on_done;
	stream_init(&s, &d);
	for (i = 0; i < 400; i++)
		stream_step(&s, 4);
	EXPECT_EQ(0, stream_finish(&s)) {
		TH_LOG("%s / %s", s.why, d.why);
	}
	EXPECT_GT(s.verified, 50);
	/* Back to a VF: the glue programs it from the state. */
	EXPECT_EQ(0, emu_nvme_handback(obs));
	EXPECT_EQ(EMU_NVME_MODE_OBSERVE, emu_nvme_get_mode(obs));
	EXPECT_EQ(-EINVAL, emu_nvme_takeover(vf, &pos, err, sizeof(err)));
	stream_fini(&s);
	free(obs);
	th.ctrl = vf;
	th_fini(&th);
}

static void obs_cmd(struct emu_nvme_ctrl *c, u8 opc, u16 cid, u32 nsid,
		    u32 dw10, u32 dw11, u64 prp1, u64 prp2, u16 status,
		    u32 dw0, const void *data, u32 len)
{
	u8 sqe[64], cqe[16];

	drv_sqe(sqe, opc, nsid);
	emu_put_le16(sqe + 2, cid);
	drv_set_dw(sqe, 10, dw10);
	drv_set_dw(sqe, 11, dw11);
	drv_set_prp(sqe, prp1, prp2);
	memset(cqe, 0, sizeof(cqe));
	emu_put_le32(cqe, dw0);
	emu_put_le16(cqe + 12, cid);
	emu_put_le16(cqe + 14, (u16)(status << 1));
	emu_nvme_observe_admin(c, sqe, NULL, NULL, 0);
	if (opc != 0x0c)
		emu_nvme_observe_admin(c, sqe, cqe, data, len);
}

/* The glue's view: synthetic admin traffic of a VF, fed to the observer. */
TEST(observer_learns_everything)
{
	const struct emu_nvme_state *st;
	struct emu_nvme_positions pos;
	struct emu_nvme_limits lim;
	struct emu_nvme_ctrl *c;
	struct drv d;
	struct th th;
	static u8 page[4096];
	u8 sqe[64], cqe[16];
	char err[200];
	u32 dw0;
	int i;

	th_init(&th, 9);
	c = th_new_ctrl(&th);
	emu_nvme_set_hw(c, 2047 | (1ULL << 16) | (1ULL << 37) |
			(4ULL << 52), 0x10400, 17, 8, 8);
	emu_nvme_observe_reg_write(c, EMU_REG_AQA, 0x001f001f, 4);
	emu_nvme_observe_reg_write(c, EMU_REG_ASQ, TH_MEM_BASE + 0x10fff, 8);
	emu_nvme_observe_reg_write(c, EMU_REG_ACQ, TH_MEM_BASE + 0x11000, 4);
	emu_nvme_observe_reg_write(c, EMU_REG_ACQ + 4, 0, 4);
	emu_nvme_observe_reg_write(c, EMU_REG_INTMS, 6, 4);
	emu_nvme_observe_reg_write(c, EMU_REG_INTMC, 2, 4);
	emu_nvme_observe_reg_write(c, EMU_REG_CC, (6U << 16) | (4U << 20) | 1,
				   4);
	st = emu_nvme_state(c);
	EXPECT_EQ(TH_MEM_BASE + 0x10000, st->sq[0].base);
	EXPECT_EQ(32, st->cq[0].size);
	EXPECT_EQ(4, st->regs.intms);
	emu_nvme_observe_reg_write(c, EMU_REG_INTMC, 4, 4);
	th_idctrl_page(page);
	page[265] = 1;				/* APSTA */
	obs_cmd(c, 0x06, 1, 0, 1, 0, TH_MEM_BASE, 0, 0, 0, page, 4096);
	th_idns_page(page, 12);
	obs_cmd(c, 0x06, 2, 1, 0, 0, TH_MEM_BASE, 0, 0, 0, page, 4096);
	obs_cmd(c, 0x09, 3, 0, 0x07, 0x00070007, 0, 0, 0, 0x00030003, NULL, 0);
	obs_cmd(c, 0x09, 4, 0, 0x08, 0x0105, 0, 0, 0, 0, NULL, 0);
	obs_cmd(c, 0x09, 5, 0, 0x0b, 0x100, 0, 0, 0, 0, NULL, 0);
	memset(page, 0, 256);
	page[8] = 0x18;
	obs_cmd(c, 0x09, 6, 0, 0x0c, 1, TH_MEM_BASE, 0, 0, 0, page, 256);
	obs_cmd(c, 0x0a, 7, 0, 0x06, 0, 0, 0, 0, 0, NULL, 0);
	obs_cmd(c, 0x0a, 8, 0, 0x04, 1U << 20, 0, 0, 0, 17, NULL, 0);
	obs_cmd(c, 0x0a, 9, 0, 0x09, 2, 0, 0, 0, (1U << 16) | 2, NULL, 0);
	/* A refused command teaches nothing. */
	obs_cmd(c, 0x09, 10, 0, 0x0f, 999, 0, 0, 0x02, 0, NULL, 0);
	/* A Timestamp whose data the glue could not read teaches nothing. */
	obs_cmd(c, 0x09, 10, 0, 0x0e, 0, TH_MEM_BASE, 0, 0, 0, NULL, 0);
	obs_cmd(c, 0x09, 10, 0, 0x0e, 0, TH_MEM_BASE, 0, 0, 0, page, 4);
	EXPECT_EQ(0ULL, emu_nvme_state(c)->feat.ts_set_ns);
	for (i = 1; i <= 3; i++) {
		obs_cmd(c, 0x05, 11, 0, (63U << 16) | (u32)i, ((u32)i << 16) | 3,
			TH_MEM_BASE + 0x20000 + 0x1000 * (u64)i, 0, 0, 0, NULL, 0);
		obs_cmd(c, 0x01, 12, 0, (63U << 16) | (u32)i,
			((u32)i << 16) | 1,
			TH_MEM_BASE + 0x30000 + 0x1000 * (u64)i, 0, 0, 0, NULL, 0);
	}
	obs_cmd(c, 0x00, 13, 0, 3, 0, 0, 0, 0, 0, NULL, 0);
	obs_cmd(c, 0x04, 14, 0, 3, 0, 0, 0, 0, 0, NULL, 0);
	obs_cmd(c, 0x7c, 15, 0, 0, 0, TH_MEM_BASE + 0x40000,
		TH_MEM_BASE + 0x41000, 0, 0, NULL, 0);
	/* Two AERs go out, one comes back with a notice. */
	obs_cmd(c, 0x0c, 20, 0, 0, 0, 0, 0, 0, 0, NULL, 0);
	obs_cmd(c, 0x0c, 21, 0, 0, 0, 0, 0, 0, 0, NULL, 0);
	drv_sqe(sqe, 0x0c, 0);
	emu_put_le16(sqe + 2, 20);
	memset(cqe, 0, sizeof(cqe));
	emu_put_le32(cqe, 0x040002);
	emu_put_le16(cqe + 12, 20);
	emu_nvme_observe_admin(c, sqe, cqe, NULL, 0);
	EXPECT_EQ(1, st->aer.nr_cid);
	EXPECT_EQ(21, st->aer.cid[0]);
	EXPECT_EQ(1 << 2, st->aer.masked);
	obs_cmd(c, 0x02, 22, 0, (1023U << 16) | 0x04, 0, TH_MEM_BASE, 0, 0, 0,
		page, 4096);
	EXPECT_EQ(0, st->aer.masked);

	EXPECT_EQ(0x00030003, st->feat.nq);
	EXPECT_EQ(0x0105, st->feat.irq_coal);
	EXPECT_EQ(0x100, st->feat.aec);
	EXPECT_EQ(1, st->feat.apst_en);
	EXPECT_EQ(0x18, st->feat.apst[1]);
	EXPECT_EQ(0, st->feat.vwc);
	EXPECT_EQ(17, st->feat.temp_thr[0][1]);
	EXPECT_EQ((1U << 16) | 2, st->feat.ivc[2]);
	EXPECT_EQ(0, st->feat.kato);
	EXPECT_EQ(1, st->sq[2].valid);
	EXPECT_EQ(0, st->sq[3].valid);
	EXPECT_EQ(0, st->cq[3].valid);
	EXPECT_EQ(1, st->dbbuf.enabled);
	emu_nvme_get_limits(c, &lim);
	EXPECT_EQ(1, lim.nr_ns);
	EXPECT_EQ(0x10, lim.ns[0].nguid[0]);
	EXPECT_EQ(7, lim.mdts);

	/* Take over and answer as the VF did. */
	memset(&pos, 0, sizeof(pos));
	pos.q[0].sq_head = pos.q[0].sq_tail = 23;
	pos.q[0].cq_tail = 23;
	pos.q[0].cq_head = 23;
	pos.q[0].cq_phase = 1;
	for (i = 1; i <= 2; i++)
		pos.q[i].cq_phase = 1;
	ASSERT_EQ(0, emu_nvme_takeover(c, &pos, err, sizeof(err))) {
		TH_LOG("%s", err);
	}
	memset(&d, 0, sizeof(d));
	d.th = &th;
	d.q[0].size = 32;
	d.q[0].sq = st->sq[0].base;
	d.q[0].cq = st->cq[0].base;
	d.q[0].sq_tail = d.q[0].sq_head = 23;
	d.q[0].cq_head = 23;
	d.q[0].phase = 1;
	drv_sqe(sqe, 0x0a, 0);
	drv_set_dw(sqe, 10, 0x08);
	ASSERT_EQ(0, drv_admin(&d, sqe, &dw0));
	EXPECT_EQ(0x0105, dw0);
	drv_sqe(sqe, 0x0a, 0);
	drv_set_dw(sqe, 10, 0x0c);
	drv_set_prp(sqe, TH_MEM_BASE + 0x50000, 0);
	ASSERT_EQ(0, drv_admin(&d, sqe, &dw0));
	EXPECT_EQ(1, dw0);
	EXPECT_EQ(0x18, ((u8 *)th_ptr(&th, TH_MEM_BASE + 0x50000))[8]);
	/* The outstanding AER (CID 21) carries the next event. */
	d.q[0].cmd[21].busy = 1;
	d.q[0].outstanding++;
	d.aer_cid = 21;
	emu_nvme_ns_changed(c, 1);
	drv_reap(&d, 0);
	EXPECT_EQ(1, d.aer_done);
	EXPECT_EQ(0x040002, d.aer_dw0);
	EXPECT_EQ(0, d.errors);
	/* Handed back, a reset of the VF clears what was learned. */
	ASSERT_EQ(0, emu_nvme_handback(c));
	emu_nvme_observe_reg_write(c, EMU_REG_NSSR, EMU_NSSR_MAGIC, 4);
	EXPECT_EQ(0, st->sq[1].valid);
	EXPECT_EQ(0, st->sq[0].valid);
	th_fini(&th);
}

/* A completion as the VF posted it: Status Field and Phase Tag. */
static void obs_completion(struct emu_nvme_ctrl *c, u8 opc, u16 cid,
			   u32 dw10, u32 dw11, u16 status, int phase, u32 dw0)
{
	u8 sqe[64], cqe[16];

	drv_sqe(sqe, opc, 0);
	emu_put_le16(sqe + 2, cid);
	drv_set_dw(sqe, 10, dw10);
	drv_set_dw(sqe, 11, dw11);
	memset(cqe, 0, sizeof(cqe));
	emu_put_le32(cqe, dw0);
	emu_put_le16(cqe + 12, cid);
	emu_put_le16(cqe + 14, (u16)((status << 1) | (phase & 1)));
	emu_nvme_observe_admin(c, sqe, NULL, NULL, 0);
	emu_nvme_observe_admin(c, sqe, cqe, NULL, 0);
}

/*
 * The glue hands the observer the VF's completion entries as they are:
 * every other pass through the admin CQ has the Phase Tag (bit 0 of the
 * last word) set. The status is the field above it, whatever the phase.
 */
TEST(observer_status_whatever_the_phase)
{
	const struct emu_nvme_state *st;
	struct emu_nvme_ctrl *c;
	struct th th;
	int phase;

	th_init(&th, 11);
	c = th_new_ctrl(&th);
	emu_nvme_set_hw(c, 2047 | (1ULL << 16) | (1ULL << 37) |
			(4ULL << 52), 0x10400, 17, 8, 8);
	emu_nvme_observe_reg_write(c, EMU_REG_AQA, 0x001f001f, 4);
	emu_nvme_observe_reg_write(c, EMU_REG_ASQ, TH_MEM_BASE + 0x10000, 8);
	emu_nvme_observe_reg_write(c, EMU_REG_ACQ, TH_MEM_BASE + 0x11000, 8);
	emu_nvme_observe_reg_write(c, EMU_REG_CC, (6U << 16) | (4U << 20) | 1,
				   4);
	st = emu_nvme_state(c);
	for (phase = 0; phase < 2; phase++) {
		u32 coal = 0x0100 | (u32)(phase + 1);

		/* Success: the Interrupt Coalescing the guest set is learned. */
		obs_completion(c, 0x09, 1, 0x08, coal, 0, phase, 0);
		EXPECT_EQ(coal, st->feat.irq_coal) TH_LOG("phase %d", phase);
		/* Invalid Field in Command: the VF kept the old value. */
		obs_completion(c, 0x09, 2, 0x08, 0x0707, 0x02, phase, 0);
		EXPECT_EQ(coal, st->feat.irq_coal) TH_LOG("phase %d", phase);
		/* A notice masks its type until the guest reads the log. */
		obs_completion(c, 0x0c, 3, 0, 0, 0, phase, 0x040002);
		EXPECT_EQ(0, st->aer.nr_cid);
		EXPECT_EQ(1 << 2, st->aer.masked) TH_LOG("phase %d", phase);
		obs_completion(c, 0x02, 4, (1023U << 16) | 0x04, 0, 0, phase,
			       0);
		EXPECT_EQ(0, st->aer.masked) TH_LOG("phase %d", phase);
	}
	th_fini(&th);
}

/*
 * The glue may give the VF's identity in parts, its Identify Controller
 * page after CAP (emu_nvme_set_hw()): while the controller is off, the
 * features' defaults follow the page as loaded. A guest that never set
 * Volatile Write Cache finds it as the VF had it, enabled when the VF
 * has one, also after the takeover.
 */
TEST(defaults_follow_the_identify_controller_page)
{
	const struct emu_nvme_state *st;
	struct emu_nvme_positions pos;
	struct emu_nvme_ctrl *c;
	static u8 page[4096];
	struct drv d;
	struct th th;
	char err[200];
	u8 sqe[64];
	u64 asq, acq;
	u32 dw0;

	th_init(&th, 12);
	c = th_new_ctrl(&th);
	st = emu_nvme_state(c);
	ASSERT_EQ(0, emu_nvme_set_hw(c, 2047 | (1ULL << 16) | (1ULL << 37) |
				     (4ULL << 52), 0x10400, 17, 8, 8));
	EXPECT_EQ(0, st->feat.vwc);
	th_idctrl_page(page);
	page[525] = 0;				/* VWC: none */
	ASSERT_EQ(0, emu_nvme_load_identify(c, 1, 0, 0, 1, page));
	EXPECT_EQ(0, st->feat.vwc);
	page[525] = 0x7;			/* VWC: present */
	ASSERT_EQ(0, emu_nvme_load_identify(c, 1, 0, 0, 1, page));
	EXPECT_EQ(1, st->feat.vwc);
	th_idns_page(page, 12);
	ASSERT_EQ(0, emu_nvme_load_identify(c, 0, 0, 1, 1, page));
	EXPECT_EQ(1, st->feat.vwc);

	/* The guest enables the VF and never sets the feature. */
	asq = th_alloc(&th, 4096, 4096);
	acq = th_alloc(&th, 4096, 4096);
	emu_nvme_observe_reg_write(c, EMU_REG_AQA, 0x001f001f, 4);
	emu_nvme_observe_reg_write(c, EMU_REG_ASQ, asq, 8);
	emu_nvme_observe_reg_write(c, EMU_REG_ACQ, acq, 8);
	emu_nvme_observe_reg_write(c, EMU_REG_CC, (6U << 16) | (4U << 20) | 1,
				   4);
	memset(&pos, 0, sizeof(pos));
	pos.q[0].cq_phase = 1;
	ASSERT_EQ(0, emu_nvme_takeover(c, &pos, err, sizeof(err))) {
		TH_LOG("%s", err);
	}
	memset(&d, 0, sizeof(d));
	d.th = &th;
	d.q[0].size = 32;
	d.q[0].sq = asq;
	d.q[0].cq = acq;
	d.q[0].phase = 1;
	drv_sqe(sqe, 0x0a, 0);
	drv_set_dw(sqe, 10, 0x06);
	dw0 = 0;
	ASSERT_EQ(0, drv_admin(&d, sqe, &dw0));
	EXPECT_EQ(1, dw0);
	EXPECT_EQ(0, d.errors) TH_LOG("%s", d.why);
	th_fini(&th);
}

/* Replace n bytes at at with the m bytes of p, in section sec's payload. */
static int img_splice(u8 *b, int len, u16 sec, int at, int n, const void *p,
		      int m)
{
	u32 slen;
	int off = sec_find(b, len, sec, &slen);

	memmove(b + at + m, b + at + n, (size_t)(len - at - n));
	if (m)
		memcpy(b + at, p, (size_t)m);
	emu_put_le32(b + off - 4, slen + (u32)(m - n));
	len += m - n;
	img_fix(b, len);
	return len;
}

/* Append an Identify page (its first n bytes as one run). */
static int img_add_page(u8 *b, int len, u8 cns, u32 nsid, const u8 *page,
			int n)
{
	static u8 e[4200];
	u32 slen;
	int off = sec_find(b, len, EMU_IMG_SEC_IDENTITY, &slen);

	memset(e, 0, 8);
	e[0] = cns;
	emu_put_le32(e + 4, nsid);
	emu_put_le16(e + 8, 1);
	emu_put_le16(e + 10, 0);
	emu_put_le16(e + 12, (u16)n);
	memcpy(e + 14, page, (size_t)n);
	len = img_splice(b, len, EMU_IMG_SEC_IDENTITY, off + (int)slen, 0, e,
			 14 + n);
	emu_put_le16(b + off + 18, emu_get_le16(b + off + 18) + 1);
	img_fix(b, len);
	return len;
}

/*
 * Refused by import as malformed, naming field, and by the verdict and
 * the check the same way: never judged compatible.
 */
static int malformed(struct th *th, u8 *b, int len, const char *field,
		     char *err)
{
	static struct emu_verdict v;
	struct emu_nvme_limits lim;
	char verr[200];
	int ret = reject(th, b, len, field, err);

	if (ret)
		return ret;
	emu_nvme_get_limits(th->ctrl, &lim);
	if (emu_verdict_judge(b, (size_t)len, &lim, &v, verr,
			      sizeof(verr)) != -EINVAL || strcmp(err, verr))
		return -4;
	if (emu_img_check_compat(b, (size_t)len, &lim, verr, sizeof(verr)) !=
	    -EINVAL || strcmp(err, verr))
		return -5;
	return 0;
}

/*
 * Stable (pre-copy) images of 1.1, identity only, and of 1.2, which adds
 * USAGE: both decode; a 1.1 one is judged by what its source offers (the
 * golden scenario's VF offers shadow doorbells), a 1.2 one by what the
 * guest uses (the scenario's guest does).
 */
TEST_F(img, golden_stable_images)
{
	static const char *const files[] = {
		"golden/nvme-v1.1-stable.img", "golden/nvme-v1.2-stable.img",
	};
	static const char *const why[] = {
		"features.dbbuf: guest may use shadow doorbells, destination has none",
		"features.dbbuf: guest uses shadow doorbells, destination has none",
	};
	static struct emu_verdict v;
	static u8 b[65536];
	struct emu_nvme_limits lim;
	char err[200];
	unsigned int i;
	u32 slen;
	int n;

	for (i = 0; i < EMU_ARRAY_SIZE(files); i++) {
		n = read_file(files[i], b, sizeof(b));
		ASSERT_GT(n, 0) TH_LOG("missing %s", files[i]);
		EXPECT_EQ(i + 1, emu_get_le16(b + 6));
		EXPECT_EQ(EMU_IMG_F_STABLE, emu_get_le32(b + 12));
		EXPECT_EQ(i ? 1 : -1, sec_find(b, n, EMU_IMG_SEC_USAGE, &slen) > 0 ?
			  (int)slen : -1);
		/* Well formed, and fits the VF it came from. */
		emu_nvme_get_limits(self->th.ctrl, &lim);
		EXPECT_EQ(0, emu_img_check_compat(b, (size_t)n, &lim, err,
						  sizeof(err)))
			TH_LOG("%s: %s", files[i], err);
		lim.oacs = 0;
		EXPECT_EQ(-EINVAL, emu_img_check_compat(b, (size_t)n, &lim, err,
							sizeof(err)));
		EXPECT_STREQ(why[i], err);
		ASSERT_EQ(0, emu_verdict_judge(b, (size_t)n, &lim, &v, err,
						sizeof(err)));
		EXPECT_FALSE(v.compatible);
		EXPECT_STREQ(why[i], err);
		/* A stable image is never controller state. */
		EXPECT_EQ(0, reject(&self->th, b, n, "header.flags", err))
			TH_LOG("%s: %s", files[i], err);
	}
}

/* The USAGE section: in stable images only, once, its value 0 or 1. */
TEST_F(img, usage_section)
{
	static u8 stable[65536], b[65536];
	struct emu_nvme_limits lim;
	int n, len, off;
	char err[200];
	u32 slen;

#define STABLE_BAD(expr, field) do {					\
		memcpy(b, stable, (size_t)n);				\
		len = n;						\
		expr;							\
		EXPECT_EQ(0, malformed(&self->th, b, len, field, err))	\
			TH_LOG("%s: got '%s'", field, err);		\
	} while (0)
	n = emu_img_export_stable(self->th.ctrl, stable, sizeof(stable));
	ASSERT_GT(n, 0);
	EXPECT_EQ(EMU_IMG_MINOR, emu_get_le16(stable + 6));
	off = sec_find(stable, n, EMU_IMG_SEC_USAGE, &slen);
	ASSERT_GT(off, 0);
	/* Optional and basic: a 1.1 decoder skips it. */
	EXPECT_EQ(0, emu_get_le16(stable + off - 6));
	EXPECT_EQ(1, slen);
	EXPECT_EQ(1, stable[off]);
	STABLE_BAD({ b[off] = 2; img_fix(b, len); },
		   "usage.dbbuf: out of range (2)");
	STABLE_BAD(len = img_splice(b, len, EMU_IMG_SEC_USAGE, off, 1, NULL,
				    0), "usage: truncated");
	STABLE_BAD({ memcpy(b + len, stable + off - 8, slen + 8);
		     emu_put_le32(b + 24, emu_get_le32(b + 24) + 1);
		     len += 8 + (int)slen; img_fix(b, len); },
		   "section: duplicate (8)");
	/* A full image says it in its DBBUF section. */
	memcpy(b, img, (size_t)self->len);
	len = self->len;
	memcpy(b + len, stable + off - 8, slen + 8);
	emu_put_le32(b + 24, emu_get_le32(b + 24) + 1);
	len += 8 + (int)slen;
	img_fix(b, len);
	EXPECT_EQ(0, malformed(&self->th, b, len,
			       "section: only in a stable image (8)", err))
		TH_LOG("got '%s'", err);
#undef STABLE_BAD

	/* Fields a later minor appends are ignored. */
	memcpy(b, stable, (size_t)n);
	len = img_splice(b, n, EMU_IMG_SEC_USAGE, off + 1, 0, "\x07\x00", 2);
	emu_nvme_get_limits(self->th.ctrl, &lim);
	EXPECT_EQ(0, emu_img_check_compat(b, (size_t)len, &lim, err,
					  sizeof(err))) TH_LOG("%s", err);
	lim.oacs = 0;
	EXPECT_EQ(-EINVAL, emu_img_check_compat(b, (size_t)len, &lim, err,
						sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "features.dbbuf")) TH_LOG("%s", err);
	/* Without it (a 1.1 source), still well formed. */
	ASSERT_EQ(n, off + (int)slen);
	memcpy(b, stable, (size_t)n);
	len = off - 8;
	emu_put_le32(b + 24, emu_get_le32(b + 24) - 1);
	img_fix(b, len);
	lim.oacs = EMU_BIT(8);
	EXPECT_EQ(0, emu_img_check_compat(b, (size_t)len, &lim, err,
					  sizeof(err))) TH_LOG("%s", err);
}

/* What import refuses, the verdict never calls compatible. */
TEST_F(img, verdict_refuses_what_import_refuses)
{
	static u8 b[65536];
	char err[200];
	int len, off;
	u32 slen;

#define SAME(expr, field) do {						\
		memcpy(b, img, (size_t)self->len);			\
		len = self->len;					\
		expr;							\
		EXPECT_EQ(0, malformed(&self->th, b, len, field, err))	\
			TH_LOG("%s: got '%s'", field, err);		\
	} while (0)
	/* An unknown critical section. */
	SAME({ memset(b + len, 0, 8);
	       b[len] = 0x40;
	       b[len + 2] = EMU_IMG_S_CRITICAL;
	       emu_put_le32(b + 24, emu_get_le32(b + 24) + 1);
	       len += 8; img_fix(b, len); },
	     "section: unknown critical");
	/* A basic section twice. */
	off = sec_find(img, self->len, EMU_IMG_SEC_DBBUF, &slen);
	SAME({ memcpy(b + len, img + off - 8, slen + 8);
	       emu_put_le32(b + 24, emu_get_le32(b + 24) + 1);
	       len += 8 + (int)slen; img_fix(b, len); },
	     "section: duplicate");
	/* A basic section missing. */
	SAME({ memmove(b + off - 8, b + off + slen,
		       (size_t)self->len - off - slen);
	       emu_put_le32(b + 24, emu_get_le32(b + 24) - 1);
	       len -= 8 + (int)slen; img_fix(b, len); },
	     "section: missing");
	/* Bytes after the last section. */
	SAME({ memset(b + len, 0, 4); len += 4; img_fix(b, len); },
	     "trailing bytes");
#undef SAME
}

/*
 * A second Identify Controller page under another NSID: the running model
 * shows the first, the AER limit and the compatibility check read the
 * last (8 AERs against a guest-visible limit of 4, MDTS 5 against 7).
 */
TEST_F(img, second_identify_controller_page)
{
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	static u8 b[65536], page[4096];
	struct emu_nvme_limits lim;
	char err[200];
	int i, len;

	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++)
		if (st->id.pages[i].valid && st->id.pages[i].cns == 1)
			memcpy(page, st->id.pages[i].data, sizeof(page));
	ASSERT_EQ(3, page[259]);
	page[259] = 7;
	page[77] = 5;
	memcpy(b, img, (size_t)self->len);
	len = img_add_page(b, self->len, 1, 1, page, 4096);
	EXPECT_EQ(0, malformed(&self->th, b, len, "identity.page", err))
		TH_LOG("got '%s'", err);
	emu_nvme_get_limits(self->th.ctrl, &lim);
	lim.mdts = 5;
	EXPECT_NE(0, emu_img_check_compat(b, (size_t)len, &lim, err,
					  sizeof(err)));
	/* Under NSID 0 it is a duplicate as well. */
	memcpy(b, img, (size_t)self->len);
	len = img_add_page(b, self->len, 1, 0, page, 4096);
	EXPECT_EQ(0, malformed(&self->th, b, len, "identity.page", err))
		TH_LOG("got '%s'", err);
}

/* More namespaces than the model serves: refused, naming the field. */
TEST_F(img, more_namespaces_than_served)
{
	static u8 b[65536], page[4096];
	char err[200];
	int len = self->len;
	u32 ns;

	memcpy(b, img, (size_t)len);
	th_idns_page(page, 12);
	for (ns = 2; ns <= EMU_NVME_MAX_NS + 1; ns++)
		len = img_add_page(b, len, 0, ns, page, 136);
	EXPECT_EQ(0, malformed(&self->th, b, len, "identity.page.nsid", err))
		TH_LOG("got '%s'", err);
}

/* CAP.MQES 0xffff: 65536 entries, not 0, in a stable image's demand. */
TEST_F(img, stable_mqes_ffff)
{
	static struct emu_verdict v;
	static u8 b[65536];
	struct emu_nvme_limits lim;
	char err[200];
	int len, off;
	u32 slen;

	len = emu_img_export_stable(self->th.ctrl, b, sizeof(b));
	ASSERT_GT(len, 0);
	off = sec_find(b, len, EMU_IMG_SEC_IDENTITY, &slen);
	emu_put_le16(b + off, 0xffff);
	img_fix(b, len);
	emu_nvme_get_limits(self->th.ctrl, &lim);
	EXPECT_NE(0, emu_img_check_compat(b, (size_t)len, &lim, err,
					  sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "limits.mqes")) TH_LOG("got '%s'", err);
	ASSERT_EQ(0, emu_verdict_judge(b, (size_t)len, &lim, &v, err,
				       sizeof(err)));
	EXPECT_FALSE(v.compatible);
	EXPECT_NE(NULL, strstr(err, "limits.mqes")) TH_LOG("got '%s'", err);
}

/*
 * CAP.MQES 1, the smallest a controller may have (0's based: queues of
 * two entries): a guest on such queues migrates, and its stable image is
 * judged compatible with the controller itself.
 */
TEST(smallest_queues_migrate)
{
	static u8 b[65536];
	struct emu_nvme_limits lim;
	struct stream s;
	struct drv d;
	struct th th;
	char err[200];
	int i, len, off, migrations = 0;
	u32 slen;

	th_init(&th, th_seed(0x2e2));
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 2, 4);
	emu_nvme_start_disabled(th.ctrl);
	ASSERT_EQ(1, emu_nvme_state(th.ctrl)->id.cap & 0xffff);
	ASSERT_EQ(0, drv_attach(&d, &th, 2));
	ASSERT_EQ(0, drv_bringup(&d, 2, 2, 0, 1));
	stream_init(&s, &d);
	for (i = 0; i < 400; i++) {
		stream_step(&s, 2);
		if (i % 40 == 39) {
			ASSERT_EQ(0, stream_migrate(&s, NULL)) {
				TH_LOG("%s", s.why);
			}
			migrations++;
		}
	}
	EXPECT_EQ(0, stream_finish(&s)) {
		TH_LOG("%s / %s", s.why, d.why);
	}
	EXPECT_EQ(10, migrations);
	EXPECT_GT(s.verified, 100);
	stream_fini(&s);

	len = emu_img_export_stable(th.ctrl, b, sizeof(b));
	ASSERT_GT(len, 0);
	off = sec_find(b, len, EMU_IMG_SEC_IDENTITY, &slen);
	ASSERT_GT(off, 0);
	EXPECT_EQ(1, emu_get_le16(b + off));
	emu_nvme_get_limits(th.ctrl, &lim);
	EXPECT_EQ(1, lim.mqes);
	EXPECT_EQ(0, emu_img_check_compat(b, (size_t)len, &lim, err,
					  sizeof(err))) TH_LOG("%s", err);
	th_fini(&th);
}

/*
 * MDTS counts in units of 2^(12 + CAP.MPSMIN): a larger MPSMIN in the
 * image raises the guest's transfers beyond the destination's.
 */
TEST_F(img, transfer_limit_in_bytes)
{
	static struct emu_verdict v;
	static u8 b[65536], page[4096];
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	struct emu_nvme_limits lim;
	struct th th;
	char err[200];
	int len, off, i;
	u32 slen;
	u64 cap;

	len = emu_img_export_stable(self->th.ctrl, b, sizeof(b));
	ASSERT_GT(len, 0);
	off = sec_find(b, len, EMU_IMG_SEC_IDENTITY, &slen);
	cap = emu_get_le64(b + off);
	emu_put_le64(b + off, cap | (4ULL << 48));
	img_fix(b, len);
	emu_nvme_get_limits(self->th.ctrl, &lim);
	EXPECT_EQ(0, lim.mpsmin);
	EXPECT_NE(0, emu_img_check_compat(b, (size_t)len, &lim, err,
					  sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "limits.mdts")) TH_LOG("got '%s'", err);
	ASSERT_EQ(0, emu_verdict_judge(b, (size_t)len, &lim, &v, err,
				       sizeof(err)));
	EXPECT_FALSE(v.compatible);
	/* The same MPSMIN at the destination takes it. */
	lim.mpsmin = 4;
	EXPECT_EQ(0, emu_img_check_compat(b, (size_t)len, &lim, err,
					  sizeof(err))) TH_LOG("%s", err);

	/* Import into a model whose VF transfers less: refused. */
	th_init(&th, 0x3d75);
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 2048, 16);
	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++)
		if (st->id.pages[i].valid && st->id.pages[i].cns == 1)
			memcpy(page, st->id.pages[i].data, sizeof(page));
	page[77] = 5;
	ASSERT_EQ(0, emu_nvme_load_identify(th.ctrl, 1, 0, 0, 1, page));
	EXPECT_EQ(-EINVAL, emu_img_import(th.ctrl, img, (size_t)self->len,
					  err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "limits.mdts")) TH_LOG("got '%s'", err);
	page[77] = 7;
	ASSERT_EQ(0, emu_nvme_load_identify(th.ctrl, 1, 0, 0, 1, page));
	EXPECT_EQ(0, emu_img_import(th.ctrl, img, (size_t)self->len, err,
				    sizeof(err))) TH_LOG("%s", err);
	th_fini(&th);
}

/*
 * A section cut short anywhere (its length and the image's kept
 * consistent) is refused as truncated, naming the section: no field is
 * judged from bytes the image does not have. An Identify page cut short
 * is a bad page encoding.
 */
TEST_F(img, cut_sections_refused_as_truncated)
{
	static const struct {
		u16 type;
		const char *name;
	} sec[] = {
		{ EMU_IMG_SEC_REGS, "regs" },
		{ EMU_IMG_SEC_QUEUES, "queues" },
		{ EMU_IMG_SEC_FEATURES, "features" },
		{ EMU_IMG_SEC_AER, "aer" },
		{ EMU_IMG_SEC_DBBUF, "dbbuf" },
		{ EMU_IMG_SEC_IDENTITY, "identity" },
		{ EMU_IMG_SEC_LOGS, "logs" },
		{ EMU_IMG_SEC_EMU_RUNTIME, "emu_runtime" },
	};
	static u8 b[65536];
	char err[200], want[64];
	const char *page = "identity.page: bad encoding";
	int off, len, i, n;
	u32 slen, k;

	/* The runtime section holds only the round-robin position here. */
	off = sec_find(img, self->len, EMU_IMG_SEC_EMU_RUNTIME, &slen);
	ASSERT_EQ(2, slen);
	for (i = 0; i < (int)EMU_ARRAY_SIZE(sec); i++) {
		off = sec_find(img, self->len, sec[i].type, &slen);
		ASSERT_GT(off, 0) TH_LOG("%s", sec[i].name);
		snprintf(want, sizeof(want), "%s: truncated", sec[i].name);
		for (k = 0; k < slen; k++) {
			len = self->len;
			memcpy(b, img, (size_t)len);
			len = img_splice(b, len, sec[i].type, off + (int)k,
					 (int)(slen - k), NULL, 0);
			n = reject(&self->th, b, len, sec[i].name, err);
			EXPECT_EQ(0, n) TH_LOG("%s cut at %u: %d", sec[i].name,
					       k, n);
			/* Past its 20 bytes of CAP .. page count, a page is cut. */
			if (sec[i].type == EMU_IMG_SEC_IDENTITY && k >= 20) {
				EXPECT_EQ(0, strncmp(err, page, strlen(page)))
					TH_LOG("cut at %u: '%s'", k, err);
				continue;
			}
			EXPECT_STREQ(want, err) TH_LOG("cut at %u", k);
		}
	}
}

/* States the model never runs, which an image must not carry either. */
TEST_F(img, rejects_invalid_states)
{
	static u8 b[65536];
	static const u8 p6[6] = { 1, 0, 0xff, 0xff, 0xff, 0xff };
	static const u8 pv[6] = { EMU_NVME_MAX_VEC & 0xff, EMU_NVME_MAX_VEC >> 8 };
	int qoff, roff, aoff, foff, doff, len, ro;
	char err[200];
	u32 slen, rl;
	u8 c2[2];
	u16 cid;

	qoff = sec_find(img, self->len, EMU_IMG_SEC_QUEUES, &slen);
	roff = sec_find(img, self->len, EMU_IMG_SEC_REGS, &slen);
	aoff = sec_find(img, self->len, EMU_IMG_SEC_AER, &slen);
	foff = sec_find(img, self->len, EMU_IMG_SEC_FEATURES, &slen);
	doff = sec_find(img, self->len, EMU_IMG_SEC_DBBUF, &slen);
	ASSERT_GT(qoff, 0);
#define QC(n) (qoff + 4 + 20 * (n))
#define QS(n) (qoff + 4 + 100 + 20 * (n))
#define BAD(expr, field) do {						\
		memcpy(b, img, (size_t)self->len);			\
		len = self->len;					\
		expr;							\
		img_fix(b, len);					\
		EXPECT_EQ(0, malformed(&self->th, b, len, field, err))	\
			TH_LOG("%s: got '%s'", field, err);		\
	} while (0)
	/* I/O queues in a disabled controller (no admin queues, no AER). */
	BAD({ emu_put_le32(b + roff, 0);
	      emu_put_le32(b + roff + 4, 0);
	      b[aoff] = 0;
	      b[doff] = 0;
	      len = img_splice(b, len, EMU_IMG_SEC_QUEUES, QS(0), 20, NULL, 0);
	      len = img_splice(b, len, EMU_IMG_SEC_QUEUES, QC(0), 20, NULL, 0);
	      emu_put_le16(b + qoff, 4);
	      emu_put_le16(b + qoff + 2, 4); },
	    "qid: I/O queue in a disabled controller");
	/* Number of Queues above the granted 16. */
	BAD(emu_put_le32(b + foff + 16, (15U << 16) | 31), "features.nq");
	/* A queue id above Number of Queues. */
	BAD(emu_put_le32(b + foff + 16, (15U << 16) | 2), "queues.sq.qid");
	/* Rings wrapping past 2^64, at IOVA 0, overlapping. */
	BAD({ emu_put_le64(b + QS(1) + 12, 0xfffffffffffff000ULL);
	      emu_put_le16(b + QS(1) + 4, 65); }, "queues.sq.base: wraps");
	BAD(emu_put_le64(b + QS(1) + 12, 0), "queues.sq.base: at IOVA 0");
	/* ... while a ring whose last byte is the last of the space is fine. */
	memcpy(b, img, (size_t)self->len);
	ASSERT_EQ(64, emu_get_le16(b + QS(1) + 4));
	emu_put_le64(b + QS(1) + 12, 0xfffffffffffff000ULL);
	img_fix(b, self->len);
	EXPECT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)self->len, err,
				    sizeof(err))) TH_LOG("%s", err);
	BAD(emu_put_le64(b + QS(2) + 12, emu_get_le64(b + QS(1) + 12)),
	    "queues.sq.base: overlaps");
	BAD(emu_put_le64(b + QC(2) + 12, emu_get_le64(b + QS(1) + 12) + 4096 - 16),
	    "overlaps");
	/* The admin CQ with interrupts off. */
	BAD(b[QC(0) + 10] &= ~2, "queues.admin: interrupts off");
	/* Two outstanding AERs with one CID. */
	cid = emu_get_le16(img + aoff + 4);
	c2[0] = (u8)cid;
	c2[1] = (u8)(cid >> 8);
	BAD({ len = img_splice(b, len, EMU_IMG_SEC_AER, aoff + 4, 0, c2, 2);
	      b[aoff] = 2; }, "aer.cid: duplicate");
	/* CC the controller would not have enabled: CSS 1, IOSQES 7. */
	BAD(b[roff] |= 0x10, "regs.cc");
	BAD(emu_put_le32(b + roff, emu_get_le32(b + roff) + (1U << 16)),
	    "regs.cc");
	/* Error Recovery: bits 31:17 are reserved. */
	BAD(emu_put_le32(b + foff + 8, 0x80000000U),
	    "features.err_rec: out of range (2147483648)");
	/* Number of Queues: 65535 is invalid (0's based 65536), granted or not. */
	BAD(emu_put_le32(b + foff + 16, 0xffff), "features.nq: out of range");
	BAD(emu_put_le32(b + foff + 16, 0xffff0000U), "features.nq: out of range");
	/* A pending count on the first vector past the last one. */
	BAD({ ro = sec_find(b, len, EMU_IMG_SEC_EMU_RUNTIME, &rl);
	      len = img_splice(b, len, EMU_IMG_SEC_EMU_RUNTIME, ro + (int)rl,
			       0, pv, 6); },
	    "emu_runtime.vector: out of range");
	/* A pending count the model would wrap on a masked vector. */
	BAD({ ro = sec_find(b, len, EMU_IMG_SEC_EMU_RUNTIME, &rl);
	      len = img_splice(b, len, EMU_IMG_SEC_EMU_RUNTIME, ro + (int)rl,
			       0, p6, 6); },
	    "emu_runtime.pending");
#undef BAD
#undef QC
#undef QS
}

/*
 * An image of a disabled controller may carry a shutdown or fatal status
 * (another model's, a foreign one): enabling the controller clears both.
 */
TEST_F(img, enable_clears_shutdown_and_fatal_status)
{
	static u8 b[65536];
	struct drv *d = &self->d;
	char err[200];
	int len, roff;
	u32 slen;

	drv_wreg(d, EMU_REG_CC, drv_reg(d, EMU_REG_CC, 4) & ~1ULL, 4);
	ASSERT_EQ(0, drv_wait_csts(d, 1, 0));
	len = emu_img_export(self->th.ctrl, b, sizeof(b), 0);
	ASSERT_GT(len, 0);
	roff = sec_find(b, len, EMU_IMG_SEC_REGS, &slen);
	ASSERT_GT(roff, 0);
	emu_put_le32(b + roff + 4, EMU_CSTS_CFS | EMU_CSTS_SHST_CMPLT);
	img_fix(b, len);
	ASSERT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)len, err,
				    sizeof(err))) TH_LOG("%s", err);
	EXPECT_EQ(EMU_CSTS_CFS | EMU_CSTS_SHST_CMPLT,
		  drv_reg(d, EMU_REG_CSTS, 4) & 0xf);
	memset(d, 0, sizeof(*d));
	d->th = &self->th;
	ASSERT_EQ(0, drv_enable(d, 16));
	EXPECT_EQ(EMU_CSTS_RDY, drv_reg(d, EMU_REG_CSTS, 4) & 0xf);
}

/*
 * No image, or one longer than the format's 2^31 - 1 bytes; one of exactly
 * 2^31 - 1 bytes is not refused for its size but judged by its header
 * (whose length field says otherwise here). The big one is address space
 * only: untouched pages of the mapping cost nothing.
 */
TEST_F(img, import_refuses_no_data)
{
	const size_t max = 0x7fffffffUL;
	char err[200];
	u8 *big;

	EXPECT_EQ(0, reject(&self->th, NULL, 64, "image", err));
	EXPECT_NE(0, emu_img_import(self->th.ctrl, img, 0x80000000UL, err,
				    sizeof(err)));
	EXPECT_EQ(0, strncmp(err, "image", 5)) {
		TH_LOG("got '%s'", err);
	}
	big = mmap(NULL, max + 1, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, big);
	memcpy(big, img, EMU_IMG_HDR_LEN);
	EXPECT_EQ(0, reject(&self->th, big, (int)max, "header.length", err))
		TH_LOG("got '%s'", err);
	EXPECT_EQ(-EINVAL, emu_img_import(self->th.ctrl, big, max + 1, err,
					  sizeof(err)));
	EXPECT_EQ(0, strncmp(err, "image", 5)) TH_LOG("got '%s'", err);
	munmap(big, max + 1);
}

/* A masked vector's count saturates: unmasked, it still interrupts. */
TEST_F(img, pending_count_saturates)
{
	static u8 b[65536];
	char err[200];
	u8 p6[6] = { 1, 0, 0xff, 0xff, 0, 0 };
	int len = self->len, ro;
	u32 rl;

	memcpy(b, img, (size_t)len);
	ro = sec_find(b, len, EMU_IMG_SEC_EMU_RUNTIME, &rl);
	len = img_splice(b, len, EMU_IMG_SEC_EMU_RUNTIME, ro + (int)rl, 0, p6,
			 6);
	/* INTMS masks vector 1. */
	ro = sec_find(b, len, EMU_IMG_SEC_REGS, &rl);
	emu_put_le32(b + ro + 12, 2);
	img_fix(b, len);
	ASSERT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)len, err,
				    sizeof(err))) TH_LOG("%s", err);
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	/* One more completion on vector 1 while masked. */
	{
		u8 sqe[64];

		self->th.sync = 1;
		drv_sqe(sqe, 0x00, 1);
		ASSERT_GE(drv_submit(&self->d, 1, sqe), 0);
		emu_nvme_poll(self->th.ctrl, 8);
	}
	EXPECT_EQ(0, (long)self->th.irqs[1]);
	emu_nvme_reg_write(self->th.ctrl, EMU_REG_INTMC, 2, 4);
	EXPECT_EQ(1, (long)self->th.irqs[1]);
	drv_reap(&self->d, 1);
}

/* Flushes on an I/O queue, run and reaped. */
static int flushes(struct drv *d, u16 qid, int n)
{
	u8 sqe[64];
	int i;

	for (i = 0; i < n; i++) {
		drv_sqe(sqe, 0x00, 1);
		if (drv_submit(d, qid, sqe) < 0)
			return -1;
	}
	return drv_drain(d, 64);
}

/* Delete SQ qid and create it again on CQ qid: it starts at slot 0. */
static int sq_recreate(struct drv *d, u16 qid)
{
	struct drv_q *q = &d->q[qid];
	u8 sqe[64];

	drv_sqe(sqe, 0x00, 0);
	drv_set_dw(sqe, 10, qid);
	if (drv_admin(d, sqe, NULL))
		return -1;
	q->sq = th_alloc(d->th, 64ULL * q->size, 4096);
	q->sq_tail = 0;
	q->sq_head = 0;
	q->last_sqhd = 0;
	drv_sqe(sqe, 0x01, 0);
	drv_set_prp(sqe, q->sq, 0);
	drv_set_dw(sqe, 10, ((u32)(q->size - 1) << 16) | qid);
	drv_set_dw(sqe, 11, ((u32)qid << 16) | 1);
	return drv_admin(d, sqe, NULL) ? -1 : 0;
}

/*
 * A switch counts on a completion queue's tail counting one submission
 * queue's completions; the image carries no queue history, so import must
 * derive it: a pair whose head and tail stand together counts, a CQ whose
 * SQ was recreated (head and tail apart) does not, whichever I/O queue it
 * is (the first and the last of the four here).
 */
TEST_F(img, import_derives_one_sq_per_cq)
{
	struct emu_nvme_ctrl *c = self->th.ctrl;
	u16 qid;

	ASSERT_EQ(0, flushes(&self->d, 1, 5));
	ASSERT_EQ(0, flushes(&self->d, 2, 3));
	ASSERT_EQ(0, flushes(&self->d, 4, 2));
	self->len = emu_img_export(c, img, sizeof(img), 0);
	ASSERT_GT(self->len, 0);
	ASSERT_EQ(0, emu_img_import(c, img, self->len, NULL, 0));
	for (qid = 1; qid <= 4; qid++)
		EXPECT_TRUE(emu_nvme_cq_counts_one_sq(c, qid)) TH_LOG("%u", qid);

	ASSERT_EQ(0, sq_recreate(&self->d, 1));
	ASSERT_EQ(0, flushes(&self->d, 1, 2));
	ASSERT_EQ(0, sq_recreate(&self->d, 4));
	ASSERT_EQ(0, flushes(&self->d, 4, 3));
	EXPECT_FALSE(emu_nvme_cq_counts_one_sq(c, 1));
	EXPECT_FALSE(emu_nvme_cq_counts_one_sq(c, 4));
	self->len = emu_img_export(c, img, sizeof(img), 0);
	ASSERT_GT(self->len, 0);
	ASSERT_EQ(0, emu_img_import(c, img, self->len, NULL, 0));
	EXPECT_NE(emu_nvme_state(c)->sq[1].head, emu_nvme_state(c)->cq[1].tail);
	EXPECT_NE(emu_nvme_state(c)->sq[4].head, emu_nvme_state(c)->cq[4].tail);
	EXPECT_FALSE(emu_nvme_cq_counts_one_sq(c, 1))
		TH_LOG("a recreated SQ's CQ counted as one SQ's after import");
	EXPECT_FALSE(emu_nvme_cq_counts_one_sq(c, 4))
		TH_LOG("the last I/O queue's recreated SQ counted after import");
	EXPECT_TRUE(emu_nvme_cq_counts_one_sq(c, 2));
	EXPECT_TRUE(emu_nvme_cq_counts_one_sq(c, 3));
	EXPECT_EQ(0, self->d.errors);
}

/*
 * A queue the VF accepted but the model cannot hold (65536 entries, an
 * identifier beyond the model's): the switch must refuse, naming it, until
 * the guest deletes it; a controller reset forgets it too.
 */
TEST(observer_refuses_unrecorded_queues)
{
	static u8 page[4096];
	struct emu_nvme_ctrl *c;
	struct th th;
	char err[200];
	int i;

	th_init(&th, 10);
	c = th_new_ctrl(&th);
	emu_nvme_set_hw(c, 0xffff | (1ULL << 16) | (1ULL << 37) |
			(4ULL << 52), 0x10400, 17, 8, 8);
	/* Only a running model has positions to export. */
	EXPECT_EQ(-EINVAL, emu_img_export(c, page, sizeof(page), 0));
	emu_nvme_observe_reg_write(c, EMU_REG_AQA, 0x001f001f, 4);
	emu_nvme_observe_reg_write(c, EMU_REG_ASQ, TH_MEM_BASE + 0x10000, 8);
	emu_nvme_observe_reg_write(c, EMU_REG_ACQ, TH_MEM_BASE + 0x11000, 8);
	emu_nvme_observe_reg_write(c, EMU_REG_CC, (6U << 16) | (4U << 20) | 1,
				   4);
	th_idctrl_page(page);
	obs_cmd(c, 0x06, 1, 0, 1, 0, TH_MEM_BASE, 0, 0, 0, page, 4096);
	th_idns_page(page, 9);
	obs_cmd(c, 0x06, 2, 1, 0, 0, TH_MEM_BASE, 0, 0, 0, page, 4096);
	ASSERT_EQ(0, emu_nvme_check(c, err, sizeof(err))) TH_LOG("%s", err);
	/* CQ 1 and SQ 1 with 65536 entries, CQ 200 beyond the model. */
	obs_cmd(c, 0x05, 1, 0, 0xffff0001, 1, TH_MEM_BASE + 0x100000, 0, 0, 0,
		NULL, 0);
	obs_cmd(c, 0x01, 2, 0, 0xffff0001, (1U << 16) | 1,
		TH_MEM_BASE + 0x200000, 0, 0, 0, NULL, 0);
	obs_cmd(c, 0x05, 3, 0, (63U << 16) | 200, 1, TH_MEM_BASE + 0x300000,
		0, 0, 0, NULL, 0);
	EXPECT_EQ(-EINVAL, emu_nvme_check(c, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "not placeable")) TH_LOG("%s", err);
	EXPECT_NE(NULL, strstr(err, "200")) TH_LOG("%s", err);
	/* A takeover that did not check first refuses as well, changing nothing. */
	{
		struct emu_nvme_positions pos;
		struct emu_nvme_state before;

		memset(&pos, 0, sizeof(pos));
		memcpy(&before, emu_nvme_state(c), sizeof(before));
		err[0] = 0;
		EXPECT_EQ(-EINVAL, emu_nvme_takeover(c, &pos, err, sizeof(err)));
		EXPECT_NE(NULL, strstr(err, "not placeable")) TH_LOG("%s", err);
		EXPECT_EQ(0, memcmp(&before, emu_nvme_state(c), sizeof(before)));
		EXPECT_EQ(EMU_NVME_MODE_OBSERVE, emu_nvme_get_mode(c));
	}
	/* The guest deletes them; a refused delete changes nothing. */
	obs_cmd(c, 0x00, 4, 0, 1, 0, 0, 0, 0x0101, 0, NULL, 0);
	EXPECT_EQ(-EINVAL, emu_nvme_check(c, err, sizeof(err)));
	obs_cmd(c, 0x00, 5, 0, 1, 0, 0, 0, 0, 0, NULL, 0);
	obs_cmd(c, 0x04, 6, 0, 1, 0, 0, 0, 0, 0, NULL, 0);
	EXPECT_EQ(-EINVAL, emu_nvme_check(c, err, sizeof(err)));
	obs_cmd(c, 0x04, 7, 0, 200, 0, 0, 0, 0, 0, NULL, 0);
	EXPECT_EQ(0, emu_nvme_check(c, err, sizeof(err))) TH_LOG("%s", err);
	/* An SQ alone (65536 entries on a recorded CQ 3) is named. */
	obs_cmd(c, 0x05, 20, 0, (63U << 16) | 3, 1, TH_MEM_BASE + 0x400000,
		0, 0, 0, NULL, 0);
	obs_cmd(c, 0x01, 21, 0, 0xffff0005, (3U << 16) | 1,
		TH_MEM_BASE + 0x500000, 0, 0, 0, NULL, 0);
	EXPECT_EQ(-EINVAL, emu_nvme_check(c, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "not placeable (5)")) TH_LOG("%s", err);
	obs_cmd(c, 0x00, 22, 0, 5, 0, 0, 0, 0, 0, NULL, 0);
	obs_cmd(c, 0x04, 23, 0, 3, 0, 0, 0, 0, 0, NULL, 0);
	EXPECT_EQ(0, emu_nvme_check(c, err, sizeof(err))) TH_LOG("%s", err);
	/* Again, then a controller reset. */
	for (i = 0; i < 2; i++)
		obs_cmd(c, 0x05, 8 + i, 0, 0xffff0002 + i, 1,
			TH_MEM_BASE + 0x100000, 0, 0, 0, NULL, 0);
	EXPECT_EQ(-EINVAL, emu_nvme_check(c, err, sizeof(err)));
	emu_nvme_observe_reg_write(c, EMU_REG_CC, 0, 4);
	emu_nvme_observe_reg_write(c, EMU_REG_CC, (6U << 16) | (4U << 20) | 1,
				   4);
	EXPECT_EQ(0, emu_nvme_check(c, err, sizeof(err))) TH_LOG("%s", err);
	th_fini(&th);
}

/* Offset of the first Identify page entry with CNS cns in b, or -1. */
static int id_page_find(const u8 *b, int len, u8 cns)
{
	u32 slen, n, i, runs, k;
	int off = sec_find((u8 *)b, len, EMU_IMG_SEC_IDENTITY, &slen), at;

	if (off < 0)
		return -1;
	n = emu_get_le16(b + off + 18);
	at = off + 20;
	for (i = 0; i < n; i++) {
		if (b[at] == cns)
			return at;
		runs = emu_get_le16(b + at + 8);
		at += 10;
		for (k = 0; k < runs; k++)
			at += 4 + emu_get_le16(b + at + 2);
	}
	return -1;
}

/*
 * The model keeps one Identify Controller page, under NSID 0 (CNS 01h
 * does not use the NSID): an image whose only such page carries another
 * NSID is malformed, naming the field and the NSID.
 */
TEST_F(img, identify_controller_page_under_nsid_0)
{
	static const u32 nsid[] = { 1, 2, 0xffffffff };
	static u8 b[65536];
	char err[200], want[100];
	unsigned int i;
	int at;

	at = id_page_find(img, self->len, 1);
	ASSERT_GT(at, 0);
	ASSERT_EQ(0, emu_get_le32(img + at + 4));
	for (i = 0; i < EMU_ARRAY_SIZE(nsid); i++) {
		memcpy(b, img, (size_t)self->len);
		emu_put_le32(b + at + 4, nsid[i]);
		img_fix(b, self->len);
		snprintf(want, sizeof(want),
			 "identity.page.nsid: not 0 for Identify Controller (%u)",
			 nsid[i]);
		EXPECT_EQ(0, malformed(&self->th, b, self->len, want, err))
			TH_LOG("%s: got '%s'", want, err);
	}
}

/*
 * The features the image holds as flags, one bit in Set Features (Volatile
 * Write Cache WCE, Write Atomicity Normal DN, APST enable, Non-Operational
 * Power State Config NOPPME) and nq_set, are 0 or 1: any other value is
 * malformed; 0 and 1 are taken as they are.
 */
TEST_F(img, feature_flags_are_0_or_1)
{
	static const struct {
		int off;		/* in the FEATURES payload */
		int size;
	} flag[] = {
		{ 3 * 4, 4 },		/* Volatile Write Cache */
		{ 6 * 4, 4 },		/* Write Atomicity Normal */
		{ 8 * 4, 4 },		/* APST enable */
		{ 11 * 4, 4 },		/* NOPSC */
		{ 13 * 4, 1 },		/* nq_set */
	};
	static const u32 bad[] = { 2, 3, 0x80000001 };
	static u8 b[65536], again[65536];
	char err[200];
	unsigned int i, k;
	int foff, at;
	u32 slen, v;

	foff = sec_find(img, self->len, EMU_IMG_SEC_FEATURES, &slen);
	ASSERT_GT(foff, 0);
	for (i = 0; i < EMU_ARRAY_SIZE(flag); i++) {
		at = foff + flag[i].off;
		for (k = 0; k < EMU_ARRAY_SIZE(bad); k++) {
			if (flag[i].size == 1 && bad[k] > 0xff)
				continue;
			memcpy(b, img, (size_t)self->len);
			if (flag[i].size == 1)
				b[at] = (u8)bad[k];
			else
				emu_put_le32(b + at, bad[k]);
			img_fix(b, self->len);
			EXPECT_EQ(0, malformed(&self->th, b, self->len,
					       "features: flag out of range",
					       err))
				TH_LOG("offset %d = %u: got '%s'", flag[i].off,
				       bad[k], err);
		}
		for (v = 0; v <= 1; v++) {
			memcpy(b, img, (size_t)self->len);
			if (flag[i].size == 1)
				b[at] = (u8)v;
			else
				emu_put_le32(b + at, v);
			img_fix(b, self->len);
			ASSERT_EQ(0, emu_img_import(self->th.ctrl, b,
						    (size_t)self->len, err,
						    sizeof(err)))
				TH_LOG("offset %d = %u: %s", flag[i].off, v,
				       err);
			/* Taken as it was: the next export says the same. */
			ASSERT_EQ(self->len, emu_img_export(self->th.ctrl,
							    again,
							    sizeof(again), 0));
			EXPECT_EQ(0, memcmp(b, again, (size_t)self->len))
				TH_LOG("offset %d = %u", flag[i].off, v);
		}
	}
}

/*
 * Every feature the guest set reads back the same after a migration (Get
 * Features, current value): each travels in its own place in the image.
 */
TEST_F(img, features_read_back_after_migration)
{
	static const struct {
		u8 fid;
		u32 val;
	} set[] = {
		{ 0x01, 0x03020105 },	/* Arbitration: burst 32, weights */
		{ 0x04, 360 },		/* Composite over threshold, 360 K */
		{ 0x04, (1U << 20) | (2U << 16) | 250 }, /* sensor 2 under */
		{ 0x05, 0x1234 },	/* Error Recovery: TLER */
		{ 0x06, 0 },		/* Volatile Write Cache off */
		{ 0x08, 0x0a },		/* Interrupt Coalescing: threshold */
		{ 0x0a, 1 },		/* Write Atomicity Normal: DN */
		{ 0x0b, 0x302 },	/* Asynchronous Event Configuration */
		{ 0x0f, 7000 },		/* Keep Alive Timer */
		{ 0x11, 1 },		/* NOPSC: NOPPME */
		{ 0x80, 0x5a },		/* Software Progress Marker: PBSLC */
	};
	static u8 b[65536];
	unsigned int i;
	char err[200];
	u8 sqe[64];
	u32 dw0;
	int len;

	for (i = 0; i < EMU_ARRAY_SIZE(set); i++)
		ASSERT_EQ(0, drv_set_feature(&self->d, set[i].fid, set[i].val))
			TH_LOG("feature %#x", set[i].fid);
	len = emu_img_export(self->th.ctrl, b, sizeof(b), 0);
	ASSERT_GT(len, 0);
	th_free_ctrl(&self->th);
	th_new_ctrl(&self->th);
	ASSERT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)len, err,
				    sizeof(err))) TH_LOG("%s", err);
	for (i = 0; i < EMU_ARRAY_SIZE(set); i++) {
		drv_sqe(sqe, 0x0a, 0);
		drv_set_dw(sqe, 10, set[i].fid);
		drv_set_dw(sqe, 11, set[i].val);
		dw0 = ~0U;
		ASSERT_EQ(0, drv_admin(&self->d, sqe, &dw0))
			TH_LOG("feature %#x", set[i].fid);
		EXPECT_EQ(set[i].val, dw0) TH_LOG("feature %#x", set[i].fid);
	}
	EXPECT_EQ(0, self->d.errors) TH_LOG("%s", self->d.why);
}

/*
 * Queue identifiers run up to EMU_NVME_MAX_QID when the VF grants that
 * many: a guest's SQ that completes on CQ 128 migrates, and goes on
 * completing there.
 */
TEST(sq_on_the_highest_cq_migrates)
{
	static u8 b[65536], again[65536];
	const struct emu_nvme_state *st;
	const u8 *cqe;
	struct drv d;
	struct th th;
	char err[200];
	u8 sqe[64];
	u64 sq, cq;
	u32 dw0;
	int len;

	th_init(&th, th_seed(0x80c));
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 2048, EMU_NVME_MAX_QID);
	emu_nvme_start_disabled(th.ctrl);
	ASSERT_EQ(0, drv_attach(&d, &th, 32));
	/* Number of Queues: the VF grants 128 of each. */
	drv_sqe(sqe, 0x09, 0);
	drv_set_dw(sqe, 10, 0x07);
	drv_set_dw(sqe, 11, ((EMU_NVME_MAX_QID - 1U) << 16) | 0);
	ASSERT_EQ(0, drv_admin(&d, sqe, &dw0));
	ASSERT_EQ(EMU_NVME_MAX_QID - 1U, dw0 >> 16);
	/* CQ 128 of 16 entries on vector 1, then SQ 1 on it. */
	cq = th_alloc(&th, 16 * 16, 4096);
	sq = th_alloc(&th, 64 * 16, 4096);
	drv_sqe(sqe, 0x05, 0);
	drv_set_prp(sqe, cq, 0);
	drv_set_dw(sqe, 10, (15U << 16) | EMU_NVME_MAX_QID);
	drv_set_dw(sqe, 11, (1U << 16) | 3);
	ASSERT_EQ(0, drv_admin(&d, sqe, NULL));
	drv_sqe(sqe, 0x01, 0);
	drv_set_prp(sqe, sq, 0);
	drv_set_dw(sqe, 10, (15U << 16) | 1);
	drv_set_dw(sqe, 11, ((u32)EMU_NVME_MAX_QID << 16) | 1);
	ASSERT_EQ(0, drv_admin(&d, sqe, NULL));

	len = emu_img_export(th.ctrl, b, sizeof(b), 0);
	ASSERT_GT(len, 0);
	th_free_ctrl(&th);
	th_new_ctrl(&th);
	ASSERT_EQ(0, emu_img_import(th.ctrl, b, (size_t)len, err,
				    sizeof(err))) TH_LOG("%s", err);
	st = emu_nvme_state(th.ctrl);
	EXPECT_EQ(EMU_NVME_MAX_QID, st->sq[1].cqid);
	EXPECT_EQ(1, st->cq[EMU_NVME_MAX_QID].valid);
	EXPECT_EQ(len, emu_img_export(th.ctrl, again, sizeof(again), 0));
	EXPECT_EQ(0, memcmp(b, again, (size_t)len));

	/* A Flush on SQ 1 completes in CQ 128's first entry. */
	th.sync = 1;
	memset(th.irqs, 0, sizeof(th.irqs));
	drv_sqe(sqe, 0x00, 1);
	emu_put_le16(sqe + 2, 7);
	memcpy(th_ptr(&th, sq), sqe, 64);
	drv_wreg(&d, 0x1000 + 2 * 1 * d.stride, 1, 4);
	emu_nvme_poll(th.ctrl, 8);
	cqe = th_ptr(&th, cq);
	EXPECT_EQ(1, emu_get_le16(cqe + 14));	/* phase 1, success */
	EXPECT_EQ(7, emu_get_le16(cqe + 12));	/* CID */
	EXPECT_EQ(1, emu_get_le16(cqe + 10));	/* SQ identifier */
	EXPECT_EQ(1, emu_get_le16(cqe + 8));	/* SQ head */
	EXPECT_EQ(1, (long)th.irqs[1]);
	EXPECT_EQ(1, (long)th_irq_total(&th));
	th_fini(&th);
}

/*
 * An I/O queue's ring (PC 1) and the shadow doorbell and EventIdx buffers
 * are memory page aligned (NVMe 2.0, Create I/O Completion Queue and
 * Create I/O Submission Queue, PRP Entry 1; Doorbell Buffer Config, PRP
 * Entries 1 and 2; CC.MPS 0 here: 4 KiB): any of the low 12 bits set is
 * refused, a base on another page is taken.
 */
TEST_F(img, bases_off_the_memory_page_refused)
{
	static u8 b[65536];
	static const struct {
		int off;		/* of the 64-bit base */
		const char *field;
	} at[] = {
		{ 4 + 20 * 3 + 12, "queues.cq.base" },		/* CQ 3 */
		{ 4 + 100 + 20 * 3 + 12, "queues.sq.base" },	/* SQ 3 */
		{ 1, "dbbuf.dbs" },
		{ 9, "dbbuf.dbs" },				/* EventIdx */
	};
	const u64 far = 1ULL << 40;
	int qoff, doff, roff, off, k;
	char err[200];
	unsigned int i;
	u32 slen;

	qoff = sec_find(img, self->len, EMU_IMG_SEC_QUEUES, &slen);
	ASSERT_GT(qoff, 0);
	ASSERT_EQ(5, emu_get_le16(img + qoff + 2));
	doff = sec_find(img, self->len, EMU_IMG_SEC_DBBUF, &slen);
	ASSERT_GT(doff, 0);
	ASSERT_EQ(1, img[doff]);
	roff = sec_find(img, self->len, EMU_IMG_SEC_REGS, &slen);
	ASSERT_GT(roff, 0);
	ASSERT_EQ(0, (emu_get_le32(img + roff) >> 7) & 0xf);
	for (i = 0; i < EMU_ARRAY_SIZE(at); i++) {
		off = (i < 2 ? qoff : doff) + at[i].off;
		for (k = 0; k < 12; k++) {
			memcpy(b, img, (size_t)self->len);
			emu_put_le64(b + off, (far << i) | (1ULL << k));
			img_fix(b, self->len);
			EXPECT_EQ(0, malformed(&self->th, b, self->len,
					       at[i].field, err))
				TH_LOG("%s bit %d: got '%s'", at[i].field, k,
				       err);
		}
		memcpy(b, img, (size_t)self->len);
		emu_put_le64(b + off, far << i);
		img_fix(b, self->len);
		EXPECT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)self->len,
					    err, sizeof(err)))
			TH_LOG("%s: %s", at[i].field, err);
	}
}

/*
 * Interrupt Vector Configuration travels as one entry per configured
 * vector: every vector of the controller (17 here) may have its entry,
 * none two.
 */
TEST_F(img, each_vector_configured_once)
{
	static u8 b[65536], again[65536];
	/* CDW11 .. SWPM, nq_set, thresholds, timestamp, APST, HBS. */
	const int nivc_at = 13 * 4 + 1 + 9 * 4 + 8 + 32 * 8 + 16;
	u8 e[6 * EMU_NVME_MAX_VEC];
	int foff, len, n;
	char err[200];
	u32 slen;
	u16 v;

	ASSERT_EQ(17, emu_nvme_state(self->th.ctrl)->id.nr_vectors);
	foff = sec_find(img, self->len, EMU_IMG_SEC_FEATURES, &slen);
	ASSERT_GT(foff, 0);
	ASSERT_EQ(nivc_at + 2, (int)slen);
	ASSERT_EQ(0, emu_get_le16(img + foff + nivc_at));
	for (v = 0; v < 17; v++) {
		for (n = 0; n < 2; n++) {
			emu_put_le16(e + 6 * n, v);
			emu_put_le32(e + 6 * n + 2, (1U << 16) | v);
		}
		memcpy(b, img, (size_t)self->len);
		len = img_splice(b, self->len, EMU_IMG_SEC_FEATURES,
				 foff + nivc_at + 2, 0, e, 12);
		emu_put_le16(b + foff + nivc_at, 2);
		img_fix(b, len);
		EXPECT_EQ(0, malformed(&self->th, b, len,
				       "features.ivc.vector: duplicate", err))
			TH_LOG("vector %u: got '%s'", v, err);
	}
	/* Each I/O vector once: taken, and exported again as it was. */
	for (v = 1; v < 17; v++) {
		emu_put_le16(e + 6 * (v - 1), v);
		emu_put_le32(e + 6 * (v - 1) + 2, (1U << 16) | v);
	}
	memcpy(b, img, (size_t)self->len);
	len = img_splice(b, self->len, EMU_IMG_SEC_FEATURES, foff + nivc_at + 2,
			 0, e, 6 * 16);
	emu_put_le16(b + foff + nivc_at, 16);
	img_fix(b, len);
	ASSERT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)len, err,
				    sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(len, emu_img_export(self->th.ctrl, again, sizeof(again), 0));
	EXPECT_EQ(0, memcmp(b, again, (size_t)len));
}

/*
 * The round-robin position is one of the model's EMU_NVME_MAX_QID I/O
 * queue slots: the last one migrates as it is, one past it is refused.
 */
TEST_F(img, round_robin_position_range)
{
	static u8 b[65536], again[65536];
	char err[200];
	u32 slen;
	int ro;

	ro = sec_find(img, self->len, EMU_IMG_SEC_EMU_RUNTIME, &slen);
	ASSERT_GT(ro, 0);
	ASSERT_EQ(2, slen);
	memcpy(b, img, (size_t)self->len);
	emu_put_le16(b + ro, EMU_NVME_MAX_QID - 1);
	img_fix(b, self->len);
	ASSERT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)self->len, err,
				    sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(self->len, emu_img_export(self->th.ctrl, again, sizeof(again),
					    0));
	EXPECT_EQ(0, memcmp(b, again, (size_t)self->len));
	memcpy(b, img, (size_t)self->len);
	emu_put_le16(b + ro, EMU_NVME_MAX_QID);
	img_fix(b, self->len);
	EXPECT_EQ(0, malformed(&self->th, b, self->len,
			       "emu_runtime.rr_next: out of range", err))
		TH_LOG("got '%s'", err);
}

/* A check that passes leaves no message from an earlier one behind. */
TEST_F(img, success_leaves_no_message)
{
	struct emu_nvme_limits lim;
	char err[200];

	emu_nvme_get_limits(self->th.ctrl, &lim);
	strcpy(err, "stale");
	EXPECT_EQ(0, emu_img_check_compat(img, (size_t)self->len, &lim, err,
					  sizeof(err)));
	EXPECT_STREQ("", err);
	strcpy(err, "stale");
	EXPECT_EQ(0, emu_img_import(self->th.ctrl, img, (size_t)self->len, err,
				    sizeof(err)));
	EXPECT_STREQ("", err);
}

/*
 * A destination needs as many I/O queues as the highest identifier the
 * guest uses: none while it has only the admin queues, one with one pair.
 */
TEST(guest_without_io_queues_needs_none)
{
	static u8 b[65536];
	struct emu_nvme_limits lim, l;
	struct drv d;
	struct th th;
	char err[200];
	int len;

	ASSERT_EQ(0, drv_start(&d, &th, th_seed(0x1a0)));
	len = emu_img_export(th.ctrl, b, sizeof(b), 0);
	ASSERT_GT(len, 0);
	emu_nvme_get_limits(th.ctrl, &lim);
	l = lim;
	l.max_sqs = 0;
	l.max_cqs = 0;
	EXPECT_EQ(0, emu_img_check_compat(b, (size_t)len, &l, err,
					  sizeof(err))) TH_LOG("%s", err);

	ASSERT_EQ(0, drv_bringup(&d, 1, 64, 0, 1));
	len = emu_img_export(th.ctrl, b, sizeof(b), 0);
	ASSERT_GT(len, 0);
	EXPECT_EQ(-EINVAL, emu_img_check_compat(b, (size_t)len, &l, err,
						sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "limits.max_sqs")) TH_LOG("%s", err);
	l.max_sqs = 1;
	EXPECT_EQ(-EINVAL, emu_img_check_compat(b, (size_t)len, &l, err,
						sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "limits.max_cqs")) TH_LOG("%s", err);
	l.max_cqs = 1;
	EXPECT_EQ(0, emu_img_check_compat(b, (size_t)len, &l, err,
					  sizeof(err))) TH_LOG("%s", err);
	th_fini(&th);
}

/*
 * The AER section's fourth byte is reserved (Documentation/state-image.rst):
 * an exporter writes it as zero, so that a later minor can give it a
 * meaning without older images saying something by accident.
 */
TEST_F(img, aer_reserved_byte_exported_as_zero)
{
	int aoff;
	u32 slen;

	aoff = sec_find(img, self->len, EMU_IMG_SEC_AER, &slen);
	ASSERT_GT(aoff, 0);
	/* The AER armed at bring-up: one CID follows the 4-byte head. */
	ASSERT_EQ(1, img[aoff]);
	ASSERT_EQ(4U + 2, slen);
	EXPECT_EQ(0, img[aoff + 3]);
}

/*
 * CAP.MPSMIN above CAP.MPSMAX (NVMe 2.0 3.1.4.1: the minimum cannot exceed
 * the maximum) is malformed, named with the MPSMIN value, whatever the
 * other checks would say; MPSMIN equal to MPSMAX is a valid CAP.
 */
TEST_F(img, mpsmin_above_mpsmax_refused)
{
	static u8 b[65536];
	char err[200], want[100];
	u64 cap;
	int ioff;
	u32 slen, mx;

	ioff = sec_find(img, self->len, EMU_IMG_SEC_IDENTITY, &slen);
	ASSERT_GT(ioff, 0);
	cap = emu_get_le64(img + ioff);
	mx = (cap >> 52) & 0xf;
	/* CC.MPS is 0, so MPSMIN 0 is the only one import could load. */
	ASSERT_EQ(0, (cap >> 48) & 0xf);
	ASSERT_GT(mx, 0);
	ASSERT_LT(mx, 15);
	/* At the limit: MPSMIN equal to MPSMAX 0 is accepted. */
	memcpy(b, img, (size_t)self->len);
	emu_put_le64(b + ioff, cap & ~(0xffULL << 48));
	img_fix(b, self->len);
	EXPECT_EQ(0, emu_img_import(self->th.ctrl, b, (size_t)self->len, err,
				    sizeof(err))) TH_LOG("%s", err);
	/* One past: MPSMIN 1 above MPSMAX 0, and MPSMAX + 1 above MPSMAX. */
	emu_put_le64(b + ioff, (cap & ~(0xffULL << 48)) | (1ULL << 48));
	img_fix(b, self->len);
	EXPECT_EQ(0, malformed(&self->th, b, self->len,
			       "identity.cap: MPSMIN above MPSMAX (1)", err))
		TH_LOG("got '%s'", err);
	memcpy(b, img, (size_t)self->len);
	emu_put_le64(b + ioff, cap | ((u64)(mx + 1) << 48));
	img_fix(b, self->len);
	snprintf(want, sizeof(want), "identity.cap: MPSMIN above MPSMAX (%u)",
		 mx + 1);
	EXPECT_EQ(0, malformed(&self->th, b, self->len, want, err))
		TH_LOG("%s: got '%s'", want, err);
}

/* Bytes of the Identify page entry at at (header, runs). */
static int id_page_len(const u8 *b, int at)
{
	u32 runs = emu_get_le16(b + at + 8), k;
	int n = 10;

	for (k = 0; k < runs; k++)
		n += 4 + emu_get_le16(b + at + n + 2);
	return n;
}

/*
 * The model answers Identify Controller from the image: an image without
 * that page is malformed, whatever other pages it carries.
 */
TEST_F(img, identify_controller_page_required)
{
	static u8 b[65536];
	struct emu_nvme_limits lim;
	char err[200];
	u32 slen;
	int ioff, at, len;

	ioff = sec_find(img, self->len, EMU_IMG_SEC_IDENTITY, &slen);
	at = id_page_find(img, self->len, 1);
	ASSERT_GT(ioff, 0);
	ASSERT_GT(at, 0);
	ASSERT_GT(emu_get_le16(img + ioff + 18), 1);
	memcpy(b, img, (size_t)self->len);
	len = img_splice(b, self->len, EMU_IMG_SEC_IDENTITY, at,
			 id_page_len(b, at), NULL, 0);
	emu_put_le16(b + ioff + 18, emu_get_le16(b + ioff + 18) - 1);
	img_fix(b, len);
	ASSERT_LT(id_page_find(b, len, 1), 0);
	EXPECT_EQ(0, malformed(&self->th, b, len,
			       "identity.page: no Identify Controller page",
			       err)) TH_LOG("got '%s'", err);
	/* A stable (pre-copy) image without it is refused the same way. */
	len = emu_img_export_stable(self->th.ctrl, b, sizeof(b));
	ASSERT_GT(len, 0);
	ioff = sec_find(b, len, EMU_IMG_SEC_IDENTITY, &slen);
	at = id_page_find(b, len, 1);
	ASSERT_GT(ioff, 0);
	ASSERT_GT(at, 0);
	len = img_splice(b, len, EMU_IMG_SEC_IDENTITY, at, id_page_len(b, at),
			 NULL, 0);
	emu_put_le16(b + ioff + 18, emu_get_le16(b + ioff + 18) - 1);
	img_fix(b, len);
	emu_nvme_get_limits(self->th.ctrl, &lim);
	EXPECT_EQ(-EINVAL, emu_img_check_compat(b, (size_t)len, &lim, err,
						sizeof(err)));
	EXPECT_STREQ("identity.page: no Identify Controller page", err);
}

/*
 * A queue id twice is refused as a duplicate for every qid, also those
 * past the first eight (a second byte of the decoder's bitmap).
 */
TEST_F(img, duplicate_qid_past_eight)
{
	static u8 b[65536];
	char err[200], want[100];
	u16 qid;
	u32 slen;
	int qoff;

	qoff = sec_find(img, self->len, EMU_IMG_SEC_QUEUES, &slen);
	ASSERT_GT(qoff, 0);
	ASSERT_EQ(5, emu_get_le16(img + qoff));
	ASSERT_EQ(5, emu_get_le16(img + qoff + 2));
	for (qid = 7; qid <= 15; qid++) {
		memcpy(b, img, (size_t)self->len);
		/* SQs 3 and 4 (20-byte entries after the 5 CQs) as qid. */
		emu_put_le16(b + qoff + 4 + 100 + 20 * 3, qid);
		emu_put_le16(b + qoff + 4 + 100 + 20 * 4, qid);
		img_fix(b, self->len);
		snprintf(want, sizeof(want), "queues.sq.qid: duplicate (%u)",
			 qid);
		EXPECT_EQ(0, malformed(&self->th, b, self->len, want, err))
			TH_LOG("%s: got '%s'", want, err);
		/* The same for two CQs. */
		memcpy(b, img, (size_t)self->len);
		emu_put_le16(b + qoff + 4 + 20 * 3, qid);
		emu_put_le16(b + qoff + 4 + 20 * 4, qid);
		img_fix(b, self->len);
		snprintf(want, sizeof(want), "queues.cq.qid: duplicate (%u)",
			 qid);
		EXPECT_EQ(0, malformed(&self->th, b, self->len, want, err))
			TH_LOG("%s: got '%s'", want, err);
	}
}

/* The LOGS section with nerr zeroed Error Information entries, count c4. */
static int logs_with_errors(u8 *b, int len, u8 nerr, u64 c4)
{
	static u8 e[64 * 256];
	u32 slen;
	int loff = sec_find(b, len, EMU_IMG_SEC_LOGS, &slen);

	if (loff < 0 || b[loff + 40])
		return -1;
	memset(e, 0, sizeof(e));
	len = img_splice(b, len, EMU_IMG_SEC_LOGS, loff + 42, 0, e, 64 * nerr);
	emu_put_le64(b + loff + 32, c4);
	b[loff + 40] = nerr;
	img_fix(b, len);
	return len;
}

/*
 * The Error Information log keeps at most the model's entries (ELPE + 1)
 * and never more than the errors counted: an image with more of either is
 * malformed; at the limits it loads.
 */
TEST_F(img, error_log_entries_within_limits)
{
	static const struct {
		u8 nerr;
		u64 count;
		int ok;
	} c[] = {
		{ EMU_NVME_MAX_ERRLOG, EMU_NVME_MAX_ERRLOG, 1 },
		{ EMU_NVME_MAX_ERRLOG, 1000, 1 },
		{ 1, 1, 1 },
		{ EMU_NVME_MAX_ERRLOG + 1, 1000, 0 },
		{ EMU_NVME_MAX_ERRLOG + 1, EMU_NVME_MAX_ERRLOG + 1, 0 },
		{ 1, 0, 0 },
		{ EMU_NVME_MAX_ERRLOG, EMU_NVME_MAX_ERRLOG - 1, 0 },
	};
	static u8 b[65536];
	char err[200], want[100];
	unsigned int i;
	int len;

	for (i = 0; i < EMU_ARRAY_SIZE(c); i++) {
		memcpy(b, img, (size_t)self->len);
		len = logs_with_errors(b, self->len, c[i].nerr, c[i].count);
		ASSERT_GT(len, 0);
		if (c[i].ok) {
			EXPECT_EQ(0, emu_img_import(self->th.ctrl, b,
						    (size_t)len, err,
						    sizeof(err)))
				TH_LOG("%u of %llu: %s", c[i].nerr,
				       (unsigned long long)c[i].count, err);
			continue;
		}
		snprintf(want, sizeof(want), "logs.nr_err: out of range (%u)",
			 c[i].nerr);
		EXPECT_EQ(0, malformed(&self->th, b, len, want, err))
			TH_LOG("%llu: %s: got '%s'",
			       (unsigned long long)c[i].count, want, err);
	}
}

/*
 * The shadow doorbell and EventIdx buffers are memory page aligned (NVMe
 * 2.0 5.8: PRP1/PRP2 of Doorbell Buffer Config are page aligned), the page
 * being CC.MPS's: with 8 KiB pages, a buffer at 4 KiB into one is refused.
 */
TEST_F(img, dbbuf_aligned_to_cc_mps_pages)
{
	static u8 b[65536];
	const u64 far = 1ULL << 40;
	int qoff, roff, doff, n, k;
	char err[200];
	u32 slen;
	u64 base;

	qoff = sec_find(img, self->len, EMU_IMG_SEC_QUEUES, &slen);
	roff = sec_find(img, self->len, EMU_IMG_SEC_REGS, &slen);
	doff = sec_find(img, self->len, EMU_IMG_SEC_DBBUF, &slen);
	ASSERT_GT(qoff, 0);
	ASSERT_GT(roff, 0);
	ASSERT_GT(doff, 0);
	ASSERT_EQ(1, img[doff]);
	ASSERT_EQ(5, emu_get_le16(img + qoff));
	ASSERT_EQ(5, emu_get_le16(img + qoff + 2));
	ASSERT_EQ(0, (emu_get_le32(img + roff) >> 7) & 0xf);
	for (k = 0; k < 3; k++) {
		memcpy(b, img, (size_t)self->len);
		/* CC.MPS 1 (8 KiB), every ring moved to its own 1 MiB. */
		emu_put_le32(b + roff, emu_get_le32(b + roff) | (1U << 7));
		for (n = 0; n < 10; n++) {
			base = far + ((u64)n << 20);
			emu_put_le64(b + qoff + 4 + 20 * n + 12, base);
		}
		emu_put_le64(b + roff + 16, emu_get_le64(b + qoff + 4 + 100 + 12));
		emu_put_le64(b + roff + 24, emu_get_le64(b + qoff + 4 + 12));
		emu_put_le64(b + doff + 1, far + (32ULL << 20));
		emu_put_le64(b + doff + 9, far + (33ULL << 20));
		if (k)
			emu_put_le64(b + doff + 1 + 8 * (k - 1),
				     far + ((u64)(34 + k) << 20) + 4096);
		img_fix(b, self->len);
		if (!k) {
			EXPECT_EQ(0, emu_img_import(self->th.ctrl, b,
						    (size_t)self->len, err,
						    sizeof(err)))
				TH_LOG("%s", err);
			continue;
		}
		EXPECT_EQ(0, malformed(&self->th, b, self->len,
				       "dbbuf.dbs: invalid buffer address",
				       err)) TH_LOG("%d: got '%s'", k, err);
	}
}

/*
 * A reset (CC.EN cleared) waits for the backend; the request given back
 * as part of a batch ends it without a poll. Importing an image then
 * loads a controller that runs: no reset left over to finish, which
 * would take CSTS.RDY away from the imported controller.
 */
TEST_F(img, import_after_a_reset_the_backend_ended)
{
	char err[200];

	ASSERT_EQ(0, read_at_backend(&self->th, &self->d));
	drv_wreg(&self->d, EMU_REG_CC,
		 drv_reg(&self->d, EMU_REG_CC, 4) & ~EMU_CC_EN, 4);
	ASSERT_EQ(0, th_complete_at(&self->th, 0, 1));
	ASSERT_EQ(0, emu_nvme_inflight(self->th.ctrl));
	ASSERT_EQ(0, emu_img_import(self->th.ctrl, img, (size_t)self->len,
				    err, sizeof(err))) TH_LOG("%s", err);
	emu_nvme_poll(self->th.ctrl, 8);
	EXPECT_EQ(EMU_CSTS_RDY, drv_reg(&self->d, EMU_REG_CSTS, 4) &
		  (EMU_CSTS_RDY | EMU_CSTS_CFS | EMU_CSTS_SHST_MASK));
	/* The guest's admin queue, as the image left it, still works. */
	EXPECT_EQ(0, drv_set_feature(&self->d, 0x08, 0x0101));
	EXPECT_EQ(0, self->d.errors) TH_LOG("%s", self->d.why);
}

TEST_HARNESS_MAIN
