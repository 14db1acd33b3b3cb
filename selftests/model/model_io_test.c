// SPDX-License-Identifier: GPL-2.0-only
/*
 * emuhba model: Linux-style bring-up, then randomized multi-queue I/O
 * against a reference copy; shadow doorbells, EventIdx and interrupts.
 */
#include "emu_test_stream.h"
#include "kselftest_harness.h"

FIXTURE(io) {
	struct th th;
	struct drv d;
	struct stream s;
};

FIXTURE_SETUP(io)
{
	ASSERT_EQ(0, drv_start(&self->d, &self->th, th_seed(0x5eed)));
}

FIXTURE_TEARDOWN(io)
{
	th_fini(&self->th);
}

static void run_stream(struct __test_metadata *_metadata, struct stream *s,
		       int steps)
{
	int i;

	for (i = 0; i < steps; i++)
		stream_step(s, 1 + (int)(th_rand(s->d->th) % 8));
	EXPECT_EQ(0, stream_finish(s)) {
		TH_LOG("%s / %s", s->why, s->d->why);
	}
	EXPECT_GT(s->verified, 100);
	EXPECT_EQ(0, (long)s->d->th->dma_errors);
	EXPECT_EQ(0, (long)s->d->th->bufs);
	stream_fini(s);
}

TEST_F(io, linux_bringup_identity)
{
	const struct emu_nvme_state *st;
	u8 page[4096];
	u8 sqe[64];
	u64 buf;

	ASSERT_EQ(0, drv_bringup(&self->d, 4, 64, 1, 1));
	st = emu_nvme_state(self->th.ctrl);
	EXPECT_EQ(1, st->dbbuf.enabled);
	EXPECT_EQ(1, st->aer.nr_cid);
	EXPECT_EQ(1000, st->aer.cid[0]);
	EXPECT_EQ(64, st->sq[4].size);
	EXPECT_EQ(4, st->sq[4].cqid);
	EXPECT_EQ(4, st->cq[4].vector);
	EXPECT_EQ(0, st->sq[5].valid);
	/* The guest sees exactly the captured Identify page. */
	buf = th_alloc(&self->th, 4096, 4096);
	drv_sqe(sqe, 0x06, 0);
	drv_set_dw(sqe, 10, 1);
	drv_set_prp(sqe, buf, 0);
	ASSERT_EQ(0, drv_admin(&self->d, sqe, NULL));
	th_idctrl_page(page);
	EXPECT_EQ(0, memcmp(page, th_ptr(&self->th, buf), 4096));
	drv_sqe(sqe, 0x06, 1);
	drv_set_prp(sqe, buf, 0);
	ASSERT_EQ(0, drv_admin(&self->d, sqe, NULL));
	th_idns_page(page, 12);
	EXPECT_EQ(0, memcmp(page, th_ptr(&self->th, buf), 4096));
	EXPECT_EQ(0, self->d.errors);
}

TEST_F(io, stream_prp_sgl_shadow_doorbells)
{
	ASSERT_EQ(0, drv_bringup(&self->d, 4, 64, 1, 1));
	stream_init(&self->s, &self->d);
	run_stream(_metadata, &self->s, 1500);
	/* EventIdx let the guest skip most doorbell writes. */
	EXPECT_LT(self->d.mmio_sq_doorbells, (u64)self->s.issued);
}

TEST_F(io, stream_mmio_doorbells_small_queues)
{
	ASSERT_EQ(0, drv_bringup(&self->d, 8, 8, 0, 1));
	stream_init(&self->s, &self->d);
	run_stream(_metadata, &self->s, 1500);
}

/*
 * The fixture's controller disabled, given CAP.DSTRD dstrd (doorbells and
 * shadow slots 2^(2 + dstrd) bytes apart) and enabled again by a fresh
 * driver.
 */
static int reattach_dstrd(struct th *th, struct drv *d, u32 dstrd)
{
	const struct emu_nvme_state *st = emu_nvme_state(th->ctrl);

	drv_wreg(d, EMU_REG_CC, 0, 4);
	if (drv_wait_csts(d, 1, 0))
		return -1;
	emu_nvme_set_hw(th->ctrl, (st->id.cap & ~(0xfULL << 32)) |
			((u64)dstrd << 32), 0x10400, 17, 16, 16);
	return drv_attach(d, th, 32);
}

static int reattach_stride_8(struct th *th, struct drv *d)
{
	return reattach_dstrd(th, d, 1);
}

TEST_F(io, stream_doorbell_stride_8)
{
	ASSERT_EQ(0, reattach_stride_8(&self->th, &self->d));
	ASSERT_EQ(8, self->d.stride);
	ASSERT_EQ(0, drv_bringup(&self->d, 3, 32, 1, 1));
	stream_init(&self->s, &self->d);
	run_stream(_metadata, &self->s, 600);
	EXPECT_LT(self->d.mmio_sq_doorbells, (u64)self->s.issued);
}

TEST_F(io, stream_sync_backend_with_eagain)
{
	self->th.sync = 1;
	ASSERT_EQ(0, drv_bringup(&self->d, 3, 32, 1, 1));
	self->th.eagain_pct = 20;
	stream_init(&self->s, &self->d);
	run_stream(_metadata, &self->s, 1000);
}

TEST_F(io, shadow_doorbell_without_mmio)
{
	u8 sqe[64];
	u64 buf;
	u8 *db, *ei;
	struct drv_q *q;

	ASSERT_EQ(0, drv_bringup(&self->d, 2, 16, 1, 1));
	q = &self->d.q[2];
	buf = th_alloc(&self->th, 4096, 4096);
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, buf, 0);
	emu_put_le16(sqe + 2, 7);
	memcpy(th_ptr(&self->th, q->sq), sqe, 64);
	q->cmd[7].busy = 1;
	q->outstanding++;
	q->sq_tail = 1;
	/* Only the shadow slot moves: the model must find it by polling. */
	db = th_ptr(&self->th, self->d.dbs + 8 * 2);
	emu_put_le32(db, 1);
	emu_nvme_poll(self->th.ctrl, 16);
	th_run_backend(&self->th, 16);
	EXPECT_EQ(1, drv_reap(&self->d, 2));
	EXPECT_EQ(0, q->cmd[7].status);
	emu_nvme_poll(self->th.ctrl, 16);
	/* EventIdx reports what the controller consumed. */
	ei = th_ptr(&self->th, self->d.eis + 8 * 2);
	EXPECT_EQ(1, emu_get_le32(ei));
	EXPECT_EQ(1, emu_get_le32(ei + 4));
	/* Out-of-range shadow values are ignored, not trusted. */
	emu_put_le32(db, 999);
	emu_nvme_poll(self->th.ctrl, 16);
	EXPECT_EQ(1, emu_nvme_state(self->th.ctrl)->sq[2].tail);
}

static int io_burst(struct drv *d, u16 qid, int n)
{
	u64 buf = th_alloc(d->th, 4096, 4096);
	u8 sqe[64];
	int i;

	for (i = 0; i < n; i++) {
		drv_sqe(sqe, 0x02, 1);
		drv_set_dw(sqe, 10, (u32)i);
		drv_set_prp(sqe, buf, 0);
		if (drv_submit(d, qid, sqe) < 0)
			return -1;
	}
	return drv_drain(d, 10000);
}

/*
 * SQHD is the SQ head when the CQE is posted (NVMe base 4.2.4, CQE DW2):
 * with a backend that completes at submission and commands left unfetched
 * behind it (a poll budget of one), each CQE reports exactly the entry
 * after its own command's, never the tail.
 */
TEST_F(io, sqhd_exact)
{
	struct drv_q *q;
	int n, i, cid[64];
	u64 buf;
	u8 sqe[64];

	ASSERT_EQ(0, drv_bringup(&self->d, 1, 16, 0, 1));
	self->th.sync = 1;
	q = &self->d.q[1];
	buf = th_alloc(&self->th, 4096, 4096);
	n = 20 + (int)(th_rand(&self->th) % 30);
	for (i = 0; i < n; i++) {
		int k = i % 8;

		drv_sqe(sqe, 0x02, 1);
		drv_set_prp(sqe, buf, 0);
		cid[k] = drv_submit(&self->d, 1, sqe);
		ASSERT_LE(0, cid[k]);
		if (k < 7 && i < n - 1)
			continue;
		/* Up to eight entries queued: fetch and complete one by one. */
		while (q->outstanding) {
			ASSERT_EQ(1, emu_nvme_poll(self->th.ctrl, 1));
			ASSERT_EQ(1, drv_reap(&self->d, 1));
		}
		for (; k >= 0; k--) {
			struct drv_cmd *c = &q->cmd[cid[k]];

			EXPECT_EQ((c->slot + 1) % q->size, c->sqhd) {
				TH_LOG("entry %u: SQHD %u", c->slot, c->sqhd);
			}
		}
	}
	EXPECT_EQ(0, self->d.errors) {
		TH_LOG("%s", self->d.why);
	}
}

/*
 * Aggregation Threshold (Interrupt Coalescing, FID 08h, 0's based): with
 * no aggregation time, exactly threshold + 1 completions on a vector raise
 * its interrupt, one fewer raises none.
 */
TEST_F(io, coalescing_threshold_exact)
{
	u64 buf;
	u8 sqe[64];
	int thr, i;

	ASSERT_EQ(0, drv_bringup(&self->d, 1, 64, 0, 1));
	thr = 1 + (int)(th_rand(&self->th) % 30);
	/* TIME 25.5 ms: the test's clock (1 us per reading) never gets there. */
	ASSERT_EQ(0, drv_set_feature(&self->d, 0x08, 0xff00 | (u32)thr));
	self->th.sync = 1;
	buf = th_alloc(&self->th, 4096, 4096);
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	for (i = 0; i <= thr; i++) {
		drv_sqe(sqe, 0x02, 1);
		drv_set_prp(sqe, buf, 0);
		ASSERT_LE(0, drv_submit(&self->d, 1, sqe));
		emu_nvme_poll(self->th.ctrl, 64);
		if (i < thr)
			ASSERT_EQ(0, (long)self->th.irqs[1]) {
				TH_LOG("threshold %d: interrupt after %d completions",
				       thr + 1, i + 1);
			}
	}
	EXPECT_EQ(1, (long)self->th.irqs[1]) {
		TH_LOG("threshold %d: no interrupt after %d completions",
		       thr + 1, thr + 1);
	}
	EXPECT_EQ(thr + 1, drv_reap(&self->d, 1));
	EXPECT_EQ(0, self->d.errors);
}

/*
 * Interrupt Coalescing (Set Features, FID 08h): an Aggregation Time of 0h
 * "corresponds to no delay", so a threshold without a time holds nothing
 * (one completion, one interrupt, even with THR 255); nor does a time with
 * THR 0h (0's based: one entry).
 */
TEST_F(io, coalescing_without_time_does_not_delay)
{
	u64 buf;
	u8 sqe[64];

	ASSERT_EQ(0, drv_bringup(&self->d, 1, 64, 0, 1));
	ASSERT_EQ(0, drv_set_feature(&self->d, 0x08, 0x00ff));
	self->th.sync = 1;
	buf = th_alloc(&self->th, 4096, 4096);
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, buf, 0);
	ASSERT_LE(0, drv_submit(&self->d, 1, sqe));
	emu_nvme_poll(self->th.ctrl, 64);
	EXPECT_EQ(1, (long)self->th.irqs[1]);
	EXPECT_EQ(0, (long)emu_nvme_timer_ns(self->th.ctrl));
	EXPECT_EQ(1, drv_reap(&self->d, 1));

	ASSERT_EQ(0, drv_set_feature(&self->d, 0x08, 0xff00));
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	ASSERT_LE(0, drv_submit(&self->d, 1, sqe));
	emu_nvme_poll(self->th.ctrl, 64);
	EXPECT_EQ(1, (long)self->th.irqs[1]);
	EXPECT_EQ(1, drv_reap(&self->d, 1));
	EXPECT_EQ(0, self->d.errors);
}

TEST_F(io, interrupts_ien_and_coalescing)
{
	u8 sqe[64];
	int i;

	/* ien = 0: only queue 1 raises interrupts */
	ASSERT_EQ(0, drv_bringup(&self->d, 3, 64, 0, 0));
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	ASSERT_EQ(0, io_burst(&self->d, 2, 40));
	EXPECT_EQ(0, (long)self->th.irqs[2]);
	/* No coalescing: one interrupt for each poll that posts entries. */
	self->th.sync = 1;
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, th_alloc(&self->th, 4096, 4096), 0);
	for (i = 0; i < 40; i++)
		ASSERT_LE(0, drv_submit(&self->d, 1, sqe));
	for (i = 0; i < 5; i++) {
		ASSERT_EQ(8, emu_nvme_poll(self->th.ctrl, 8));
		EXPECT_EQ(i + 1, (long)self->th.irqs[1]);
	}
	EXPECT_EQ(40, drv_reap(&self->d, 1));

	/*
	 * Aggregation threshold 8 (0's based 7), time 25.5 ms: one entry a
	 * poll, the interrupt comes with every eighth, 7 for 56.
	 */
	ASSERT_EQ(0, drv_set_feature(&self->d, 0x08, 0xff07));
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	for (i = 0; i < 56; i++)
		ASSERT_LE(0, drv_submit(&self->d, 1, sqe));
	for (i = 0; i < 56; i++) {
		ASSERT_EQ(1, emu_nvme_poll(self->th.ctrl, 1));
		ASSERT_EQ((i + 1) / 8, (long)self->th.irqs[1]) {
			TH_LOG("after %d entries", i + 1);
		}
	}
	EXPECT_EQ(56, drv_reap(&self->d, 1));

	/* Coalescing disabled for vector 1: one interrupt per poll batch. */
	ASSERT_EQ(0, drv_set_feature(&self->d, 0x09, (1U << 16) | 1));
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	drv_submit(&self->d, 1, sqe);
	emu_nvme_poll(self->th.ctrl, 8);
	EXPECT_EQ(1, (long)self->th.irqs[1]);
	drv_reap(&self->d, 1);

	/* INTMS holds the vector's interrupt until INTMC. */
	drv_wreg(&self->d, EMU_REG_INTMS, 1U << 1, 4);
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	drv_submit(&self->d, 1, sqe);
	emu_nvme_poll(self->th.ctrl, 8);
	EXPECT_EQ(0, (long)self->th.irqs[1]);
	EXPECT_EQ(2, (long)drv_reg(&self->d, EMU_REG_INTMS, 4));
	drv_wreg(&self->d, EMU_REG_INTMC, 1U << 1, 4);
	EXPECT_EQ(1, (long)self->th.irqs[1]);
	drv_reap(&self->d, 1);
	EXPECT_EQ(0, self->d.errors);
}

/*
 * INTMS and INTMC hold one bit per vector 0 to 31 (NVMe 2.0, 3.1.3 and
 * 3.1.4): with every bit set, vector 31's interrupt waits for INTMC bit 31;
 * vector 32 has no bit and is never held. 33 vectors; queue 1 completes
 * on vector 31, queue 2 on vector 32.
 */
TEST_F(io, intms_covers_vectors_0_to_31)
{
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	struct drv *d = &self->d;
	u64 buf = th_alloc(&self->th, 4096, 4096);
	u8 sqe[64];
	u16 qid;

	drv_wreg(d, EMU_REG_CC, 0, 4);
	ASSERT_EQ(0, drv_wait_csts(d, 1, 0));
	ASSERT_EQ(0, emu_nvme_set_hw(self->th.ctrl, st->id.cap, 0x10400, 33,
				     16, 16));
	memset(d, 0, sizeof(*d));
	d->th = &self->th;
	ASSERT_EQ(0, drv_enable(d, 32));
	ASSERT_EQ(0, drv_bringup(d, 2, 16, 0, 1));
	for (qid = 1; qid <= 2; qid++) {
		drv_sqe(sqe, 0x00, 0);
		drv_set_dw(sqe, 10, qid);
		ASSERT_EQ(0, drv_admin(d, sqe, NULL));
		drv_sqe(sqe, 0x04, 0);
		drv_set_dw(sqe, 10, qid);
		ASSERT_EQ(0, drv_admin(d, sqe, NULL));
		d->q[qid].vector = (u16)(29 + qid);
		drv_sqe(sqe, 0x05, 0);
		drv_set_prp(sqe, d->q[qid].cq, 0);
		drv_set_dw(sqe, 10, (15U << 16) | qid);
		drv_set_dw(sqe, 11, ((u32)(30 + qid) << 16) | 3);
		ASSERT_EQ(0, drv_admin(d, sqe, NULL));
		drv_sqe(sqe, 0x01, 0);
		drv_set_prp(sqe, d->q[qid].sq, 0);
		drv_set_dw(sqe, 10, (15U << 16) | qid);
		drv_set_dw(sqe, 11, ((u32)qid << 16) | 1);
		ASSERT_EQ(0, drv_admin(d, sqe, NULL));
	}
	ASSERT_EQ(31, st->cq[1].vector);
	ASSERT_EQ(32, st->cq[2].vector);
	drv_wreg(d, EMU_REG_INTMS, 0xffffffff, 4);
	EXPECT_EQ(0xffffffffULL, drv_reg(d, EMU_REG_INTMS, 4));
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, buf, 0);
	ASSERT_LE(0, drv_submit(d, 1, sqe));
	ASSERT_LE(0, drv_submit(d, 2, sqe));
	emu_nvme_poll(self->th.ctrl, 8);
	ASSERT_EQ(2, th_run_backend(&self->th, 8));
	EXPECT_EQ(1, st->cq[1].tail);
	EXPECT_EQ(1, st->cq[2].tail);
	EXPECT_EQ(0, (long)self->th.irqs[31]);
	EXPECT_EQ(1, (long)self->th.irqs[32]);
	drv_wreg(d, EMU_REG_INTMC, 1U << 31, 4);
	EXPECT_EQ(0x7fffffffULL, drv_reg(d, EMU_REG_INTMS, 4));
	EXPECT_EQ(1, (long)self->th.irqs[31]);
	EXPECT_EQ(1, drv_reap(d, 1));
	EXPECT_EQ(1, drv_reap(d, 2));
	drv_wreg(d, EMU_REG_INTMC, 0xffffffff, 4);
	EXPECT_EQ(0, d->errors);
}

/*
 * Aggregation Time (FID 08h, TIME in 100 us units): the interrupt falls due
 * exactly TIME x 100 us after the first entry it holds, not a nanosecond
 * earlier, and emu_nvme_timer_ns() names that moment.
 */
TEST_F(io, coalescing_time_limit)
{
	u8 sqe[64];
	u64 due;

	ASSERT_EQ(0, drv_bringup(&self->d, 1, 64, 0, 1));
	/* threshold 64 entries, time 1 x 100 us */
	ASSERT_EQ(0, drv_set_feature(&self->d, 0x08, (1U << 8) | 63));
	self->th.sync = 1;
	self->th.clock_frozen = 1;
	self->th.now = 5000000;
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, th_alloc(&self->th, 4096, 4096), 0);
	drv_submit(&self->d, 1, sqe);
	emu_nvme_poll(self->th.ctrl, 8);
	EXPECT_EQ(0, (long)self->th.irqs[1]);
	/* The host learns when to poll again: first entry + 100 us. */
	due = emu_nvme_timer_ns(self->th.ctrl);
	EXPECT_EQ(5000000ULL + 100000, due);
	self->th.now = due - 1;
	emu_nvme_poll(self->th.ctrl, 8);
	EXPECT_EQ(0, (long)self->th.irqs[1]);
	EXPECT_EQ(due, emu_nvme_timer_ns(self->th.ctrl));
	self->th.now = due;
	emu_nvme_poll(self->th.ctrl, 8);
	EXPECT_EQ(1, (long)self->th.irqs[1]);
	EXPECT_EQ(0, (long)emu_nvme_timer_ns(self->th.ctrl));
	EXPECT_EQ(1, drv_reap(&self->d, 1));
	EXPECT_EQ(0, self->d.errors);
}

/*
 * Interrupt Coalescing "applies only to the I/O Submission and I/O
 * Completion Queues" (NVMe Base 2.0, Interrupt Coalescing, FID 08h): with
 * THR 8 and TIME 25.5 ms set, an admin command's completion raises vector
 * 0 in the very poll that posts it, and leaves no timer behind.
 */
TEST_F(io, admin_vector_never_coalesced)
{
	u8 sqe[64];
	int cid;

	ASSERT_EQ(0, drv_bringup(&self->d, 1, 64, 0, 1));
	ASSERT_EQ(0, drv_set_feature(&self->d, 0x08, 0xff07));
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	drv_sqe(sqe, 0x0a, 0);
	drv_set_dw(sqe, 10, 0x07);
	cid = drv_submit(&self->d, 0, sqe);
	ASSERT_LE(0, cid);
	ASSERT_EQ(1, emu_nvme_poll(self->th.ctrl, 64));
	EXPECT_EQ(1, (long)self->th.irqs[0]);
	EXPECT_EQ(0, (long)emu_nvme_timer_ns(self->th.ctrl));
	EXPECT_EQ(1, drv_reap(&self->d, 0));
	EXPECT_EQ(0, self->d.q[0].cmd[cid].status);
	EXPECT_EQ(0x000f000f, self->d.q[0].cmd[cid].dw0);
	EXPECT_EQ(0, self->d.errors);
}

/*
 * "Interrupts for commands that complete in error should not be coalesced"
 * (NVMe Base 2.0, Interrupt Coalescing, FID 08h). THR 8, TIME 1 ms: a
 * successful Read is held; a Read past the namespace's end (LBA Out of
 * Range, DNR|80h) raises the vector in the poll that posts it, for both
 * entries; the next success is held again.
 */
TEST_F(io, errors_not_coalesced)
{
	u64 buf;
	u8 sqe[64];
	int ok, bad;

	ASSERT_EQ(0, drv_bringup(&self->d, 1, 64, 0, 1));
	ASSERT_EQ(0, drv_set_feature(&self->d, 0x08, (10U << 8) | 7));
	self->th.sync = 1;
	self->th.clock_frozen = 1;
	buf = th_alloc(&self->th, 4096, 4096);
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, buf, 0);
	ok = drv_submit(&self->d, 1, sqe);
	ASSERT_LE(0, ok);
	ASSERT_EQ(1, emu_nvme_poll(self->th.ctrl, 64));
	EXPECT_EQ(0, (long)self->th.irqs[1]);
	drv_set_dw(sqe, 10, TH_NS_BLOCKS);
	bad = drv_submit(&self->d, 1, sqe);
	ASSERT_LE(0, bad);
	ASSERT_EQ(1, emu_nvme_poll(self->th.ctrl, 64));
	EXPECT_EQ(1, (long)self->th.irqs[1]);
	EXPECT_EQ(0, (long)emu_nvme_timer_ns(self->th.ctrl));
	EXPECT_EQ(2, drv_reap(&self->d, 1));
	EXPECT_EQ(0, self->d.q[1].cmd[ok].status);
	EXPECT_EQ(0x4000 | 0x80, self->d.q[1].cmd[bad].status);
	drv_set_dw(sqe, 10, 0);
	ASSERT_LE(0, drv_submit(&self->d, 1, sqe));
	ASSERT_EQ(1, emu_nvme_poll(self->th.ctrl, 64));
	EXPECT_EQ(1, (long)self->th.irqs[1]);
	EXPECT_NE(0, (long)emu_nvme_timer_ns(self->th.ctrl));
	EXPECT_EQ(0, self->d.errors);
}

/*
 * Shadow CQ head values the controller must not believe: beyond the queue
 * (999 of 16) or ahead of what it posted (5 with one entry posted). Both
 * are ignored, without an error event; the true head (1) is taken.
 */
TEST_F(io, shadow_cq_head_out_of_range_ignored)
{
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	u8 sqe[64], *db;
	int aers, cid;

	ASSERT_EQ(0, drv_bringup(&self->d, 2, 16, 1, 1));
	aers = self->d.aer_done;
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, th_alloc(&self->th, 4096, 4096), 0);
	cid = drv_submit(&self->d, 2, sqe);
	ASSERT_LE(0, cid);
	emu_nvme_poll(self->th.ctrl, 16);
	ASSERT_EQ(1, th_run_backend(&self->th, 16));
	ASSERT_EQ(1, st->cq[2].tail);
	db = th_ptr(&self->th, self->d.dbs + 4 * (2 * 2 + 1));
	emu_put_le32(db, 999);
	emu_nvme_poll(self->th.ctrl, 16);
	EXPECT_EQ(0, st->cq[2].head);
	emu_put_le32(db, 5);
	emu_nvme_poll(self->th.ctrl, 16);
	EXPECT_EQ(0, st->cq[2].head);
	drv_reap(&self->d, 0);
	EXPECT_EQ(aers, self->d.aer_done);
	EXPECT_EQ(1, self->d.aer_outstanding);
	emu_put_le32(db, 1);
	emu_nvme_poll(self->th.ctrl, 16);
	EXPECT_EQ(1, st->cq[2].head);
}

/*
 * CAP.DSTRD 1: shadow slots and EventIdx slots are 8 bytes apart (queue
 * y's SQ at 2y x 8, its CQ at (2y + 1) x 8). A command announced only in
 * the shadow slot of SQ 2 is found there, EventIdx lands in SQ 2's and
 * CQ 2's slots, and the four bytes between slots stay untouched.
 */
TEST_F(io, shadow_doorbells_at_stride_8)
{
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	struct drv_q *q;
	u8 sqe[64], *ei;
	int i;

	ASSERT_EQ(0, reattach_stride_8(&self->th, &self->d));
	ASSERT_EQ(8, self->d.stride);
	ASSERT_EQ(0, drv_bringup(&self->d, 3, 16, 1, 1));
	ei = th_ptr(&self->th, self->d.eis);
	for (i = 0; i < 2 * 4; i++)
		memset(ei + 8 * i + 4, 0xa5, 4);
	q = &self->d.q[2];
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, th_alloc(&self->th, 4096, 4096), 0);
	emu_put_le16(sqe + 2, 7);
	memcpy(th_ptr(&self->th, q->sq), sqe, 64);
	q->cmd[7].busy = 1;
	q->outstanding++;
	q->sq_tail = 1;
	emu_put_le32(th_ptr(&self->th, self->d.dbs + 8 * (2 * 2)), 1);
	ASSERT_EQ(1, emu_nvme_poll(self->th.ctrl, 16));
	EXPECT_EQ(1, st->sq[2].head);
	EXPECT_EQ(1, emu_get_le32(ei + 8 * (2 * 2)));
	ASSERT_EQ(1, th_run_backend(&self->th, 16));
	EXPECT_EQ(1, drv_reap(&self->d, 2));
	emu_nvme_poll(self->th.ctrl, 16);
	EXPECT_EQ(1, st->cq[2].head);
	EXPECT_EQ(1, emu_get_le32(ei + 8 * (2 * 2 + 1)));
	for (i = 0; i < 2 * 4; i++)
		EXPECT_EQ(0xa5a5a5a5U, emu_get_le32(ei + 8 * i + 4)) {
			TH_LOG("between slots %d and %d", i, i + 1);
		}
	EXPECT_EQ(0, self->d.errors);
}

/*
 * A shadow doorbell slot is a 32-bit value (CAP.DSTRD 1: slots 8 bytes
 * apart, read one at a time): a tail of 1 with any bit of the slot's top
 * byte set is out of the queue's range and ignored; the plain 1 is taken.
 * Likewise the CQ head slot.
 */
TEST_F(io, shadow_slot_is_32_bits_at_stride_8)
{
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	static const u32 hi[] = { 0x01000000, 0x80000000, 0xff000000 };
	struct drv_q *q;
	u8 sqe[64], *sdb, *cdb;
	unsigned int i;

	ASSERT_EQ(0, reattach_stride_8(&self->th, &self->d));
	ASSERT_EQ(8, self->d.stride);
	ASSERT_EQ(0, drv_bringup(&self->d, 2, 16, 1, 1));
	q = &self->d.q[2];
	sdb = th_ptr(&self->th, self->d.dbs + 8 * (2 * 2));
	cdb = th_ptr(&self->th, self->d.dbs + 8 * (2 * 2 + 1));
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, th_alloc(&self->th, 4096, 4096), 0);
	emu_put_le16(sqe + 2, 7);
	memcpy(th_ptr(&self->th, q->sq), sqe, 64);
	q->cmd[7].busy = 1;
	q->outstanding++;
	q->sq_tail = 1;
	for (i = 0; i < sizeof(hi) / sizeof(hi[0]); i++) {
		emu_put_le32(sdb, hi[i] | 1);
		EXPECT_EQ(0, emu_nvme_poll(self->th.ctrl, 16))
			TH_LOG("slot %#x", hi[i] | 1);
		EXPECT_EQ(0, st->sq[2].tail);
	}
	emu_put_le32(sdb, 1);
	ASSERT_EQ(1, emu_nvme_poll(self->th.ctrl, 16));
	EXPECT_EQ(1, st->sq[2].head);
	ASSERT_EQ(1, th_run_backend(&self->th, 16));
	EXPECT_EQ(1, st->cq[2].tail);
	/* The driver's reap would write the head; write it by hand. */
	for (i = 0; i < sizeof(hi) / sizeof(hi[0]); i++) {
		emu_put_le32(cdb, hi[i] | 1);
		emu_nvme_poll(self->th.ctrl, 16);
		EXPECT_EQ(0, st->cq[2].head) TH_LOG("slot %#x", hi[i] | 1);
	}
	EXPECT_EQ(1, drv_reap(&self->d, 2));
	EXPECT_EQ(1, emu_get_le32(cdb));
	emu_nvme_poll(self->th.ctrl, 16);
	EXPECT_EQ(1, st->cq[2].head);
	EXPECT_EQ(1, q->cmd[7].done);
	EXPECT_EQ(0, q->cmd[7].status);
	EXPECT_EQ(0, self->d.errors);
}

/*
 * EventIdx is written only when it changes (each write dirties a guest
 * page the migration copies again): idle polls write nothing, a fetch
 * writes the buffer once, a completion the host has not consumed nothing,
 * the host's new CQ head once more.
 */
TEST_F(io, eventidx_written_only_when_changed)
{
	u8 sqe[64];

	ASSERT_EQ(0, drv_bringup(&self->d, 2, 16, 1, 1));
	emu_nvme_poll(self->th.ctrl, 16);
	self->th.watch_lo = self->d.eis;
	self->th.watch_hi = self->d.eis + 4096;
	self->th.watch_writes = 0;
	emu_nvme_poll(self->th.ctrl, 16);
	emu_nvme_poll(self->th.ctrl, 16);
	EXPECT_EQ(0, (long)self->th.watch_writes);
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, th_alloc(&self->th, 4096, 4096), 0);
	ASSERT_LE(0, drv_submit(&self->d, 1, sqe));
	ASSERT_EQ(1, emu_nvme_poll(self->th.ctrl, 16));
	EXPECT_EQ(1, (long)self->th.watch_writes);
	ASSERT_EQ(1, th_run_backend(&self->th, 16));
	emu_nvme_poll(self->th.ctrl, 16);
	EXPECT_EQ(1, (long)self->th.watch_writes);
	EXPECT_EQ(1, drv_reap(&self->d, 1));
	emu_nvme_poll(self->th.ctrl, 16);
	EXPECT_EQ(2, (long)self->th.watch_writes);
	emu_nvme_poll(self->th.ctrl, 16);
	EXPECT_EQ(2, (long)self->th.watch_writes);
	EXPECT_EQ(0, self->d.errors);
}

/*
 * The admin queue's doorbells stay register writes with a doorbell
 * buffer; the model copies them into the admin shadow slots (SQ 0 tail at
 * 0, CQ 0 head at 4), and a tail written only to the shadow slot is never
 * fetched.
 */
TEST_F(io, admin_doorbells_mirrored_not_polled)
{
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	struct drv_q *q = &self->d.q[0];
	u8 sqe[64], *dbs;
	u16 tail;

	ASSERT_EQ(0, drv_bringup(&self->d, 1, 16, 1, 1));
	dbs = th_ptr(&self->th, self->d.dbs);
	ASSERT_EQ(0, drv_set_feature(&self->d, 0x0f, 5000));
	ASSERT_NE(0, q->sq_tail);
	EXPECT_EQ(q->sq_tail, emu_get_le32(dbs));
	EXPECT_EQ(q->sq_tail, st->sq[0].tail);
	EXPECT_EQ(q->cq_head, emu_get_le32(dbs + 4));
	EXPECT_EQ(q->cq_head, st->cq[0].head);
	/* an admin SQE in the ring, its tail only in the shadow slot */
	tail = q->sq_tail;
	drv_sqe(sqe, 0x18, 0);
	emu_put_le16(sqe + 2, 77);
	memcpy(th_ptr(&self->th, q->sq + 64ULL * tail), sqe, 64);
	emu_put_le32(dbs, (tail + 1) % q->size);
	EXPECT_EQ(0, emu_nvme_poll(self->th.ctrl, 16));
	EXPECT_EQ(tail, st->sq[0].tail);
	EXPECT_EQ(tail, st->sq[0].head);
	EXPECT_EQ(0, self->d.errors);
}

/*
 * Ranges of 4 GiB and more reach the backend whole: a Write Zeroes of
 * 65536 blocks of 64 KiB and a Dataset Management range of 2^20 blocks
 * carry their length in bytes, which does not fit 32 bits.
 */
/*
 * Two submission queues share a completion queue of 4 entries, which holds
 * at most 3 completions (a full queue has head == tail + 1). With 3
 * commands on each, the controller fetches only as many as it has room to
 * complete, posts 3 entries and waits; once the host moves the head, it
 * fetches and completes the other 3. No entry is overwritten.
 */
TEST_F(io, full_completion_queue_stops_fetching)
{
	const struct emu_nvme_state *st;
	u64 cq, sq[2], buf;
	u8 sqe[64], *e;
	u32 dw2, dw3;
	int i, j, posted = 0, seen[3] = { 0 };
	u16 stride = self->d.stride;

	ASSERT_EQ(0, drv_bringup(&self->d, 1, 64, 0, 1));
	self->th.sync = 1;
	cq = th_alloc(&self->th, 4096, 4096);
	buf = th_alloc(&self->th, 4096, 4096);
	drv_sqe(sqe, 0x05, 0);
	drv_set_prp(sqe, cq, 0);
	drv_set_dw(sqe, 10, (3U << 16) | 2);
	drv_set_dw(sqe, 11, (2U << 16) | 3);
	ASSERT_EQ(0, drv_admin(&self->d, sqe, NULL));
	for (i = 0; i < 2; i++) {
		sq[i] = th_alloc(&self->th, 4096, 4096);
		drv_sqe(sqe, 0x01, 0);
		drv_set_prp(sqe, sq[i], 0);
		drv_set_dw(sqe, 10, (15U << 16) | (u32)(i + 2));
		drv_set_dw(sqe, 11, (2U << 16) | 1);
		ASSERT_EQ(0, drv_admin(&self->d, sqe, NULL));
		for (j = 0; j < 3; j++) {
			drv_sqe(sqe, 0x02, 1);
			drv_set_prp(sqe, buf, 0);
			emu_put_le16(sqe + 2, (u16)(0x100 * (i + 1) + j));
			memcpy(th_ptr(&self->th, sq[i] + 64ULL * j), sqe, 64);
		}
		emu_nvme_doorbell_write(self->th.ctrl,
					0x1000 + 2 * (i + 2) * stride, 3);
	}
	st = emu_nvme_state(self->th.ctrl);
	for (i = 0; i < 4; i++)
		emu_nvme_poll(self->th.ctrl, 64);
	EXPECT_EQ(3, st->sq[2].head + st->sq[3].head);
	/* Slot 3 is still empty: phase 0. */
	EXPECT_EQ(0, emu_get_le32((u8 *)th_ptr(&self->th, cq + 48) + 12) >> 16 & 1);
	/* The host consumes the 3 entries and rings the head. */
	for (i = 0; i < 6; i++) {
		if (i == 3) {
			emu_nvme_doorbell_write(self->th.ctrl,
						0x1000 + (2 * 2 + 1) * stride, 3);
			for (j = 0; j < 4; j++)
				emu_nvme_poll(self->th.ctrl, 64);
		}
		e = th_ptr(&self->th, cq + 16ULL * (i % 4));
		dw2 = emu_get_le32(e + 8);
		dw3 = emu_get_le32(e + 12);
		/* Phase 1 on the first pass, 0 after the wrap. */
		ASSERT_EQ(i < 4 ? 1U : 0U, dw3 >> 16 & 1) TH_LOG("entry %d", i);
		EXPECT_EQ(0, dw3 >> 17) TH_LOG("entry %d status", i);
		EXPECT_TRUE((dw2 >> 16) == 2 || (dw2 >> 16) == 3);
		EXPECT_EQ(((dw2 >> 16) - 1) * 0x100, (dw3 & 0xffff) & 0xff00);
		seen[(dw3 & 0xff) % 3]++;
		posted++;
	}
	EXPECT_EQ(6, posted);
	EXPECT_EQ(3, st->sq[2].head);
	EXPECT_EQ(3, st->sq[3].head);
	for (i = 0; i < 3; i++)
		EXPECT_EQ(2, seen[i]);
}

/*
 * A controller whose one namespace has NSZE blocks of 2^LBADS bytes (more
 * than the test's memory could hold: only the commands are looked at),
 * enabled, with one I/O queue pair of 64 entries.
 */
static int big_ns_bringup(struct th *th, struct drv *d, u32 seed, int lbads,
			  u64 nsze)
{
	static u8 page[4096];
	int ret;

	th_init(th, seed);
	th_new_ctrl(th);
	th_load_identity(th, lbads, 2048, 16);
	th_idns_page(page, lbads);
	emu_put_le64(page, nsze);
	emu_put_le64(page + 8, nsze);
	ret = emu_nvme_load_identify(th->ctrl, 0, 0, 1, 1, page);
	if (ret)
		return ret;
	emu_nvme_start_disabled(th->ctrl);
	ret = drv_attach(d, th, 32);
	return ret ? ret : drv_bringup(d, 1, 64, 0, 1);
}

TEST(large_ranges_reach_the_backend_whole)
{
	struct emu_blk_req *r;
	struct th th;
	struct drv d;
	u8 sqe[64], *rng;
	u64 buf;
	int cid;

	ASSERT_EQ(0, big_ns_bringup(&th, &d, 0x1a26e, 16, 1ULL << 32));

	drv_sqe(sqe, 0x08, 1);
	drv_set_dw(sqe, 12, 0xffff);
	cid = drv_submit(&d, 1, sqe);
	ASSERT_GE(cid, 0);
	emu_nvme_poll(th.ctrl, 8);
	ASSERT_EQ(1, th.npend);
	r = th.pend[--th.npend];
	EXPECT_EQ(EMU_BLK_WRITE_ZEROES, r->op);
	EXPECT_EQ(65536, r->nlb);
	EXPECT_EQ(1ULL << 32, r->len);
	emu_nvme_blk_complete(th.ctrl, r, 0);
	drv_reap(&d, 1);
	EXPECT_EQ(0, d.q[1].cmd[cid].status);

	buf = th_alloc(&th, 4096, 4096);
	rng = th_ptr(&th, buf);
	emu_put_le32(rng + 4, 1U << 20);
	emu_put_le64(rng + 8, 1ULL << 20);
	drv_sqe(sqe, 0x09, 1);
	drv_set_dw(sqe, 11, EMU_BIT(2));
	drv_set_prp(sqe, buf, 0);
	cid = drv_submit(&d, 1, sqe);
	ASSERT_GE(cid, 0);
	emu_nvme_poll(th.ctrl, 8);
	ASSERT_EQ(1, th.npend);
	r = th.pend[--th.npend];
	EXPECT_EQ(EMU_BLK_DISCARD, r->op);
	EXPECT_EQ(1ULL << 20, r->slba);
	EXPECT_EQ(1ULL << 36, r->len);
	emu_nvme_blk_complete(th.ctrl, r, 0);
	drv_reap(&d, 1);
	EXPECT_EQ(0, d.q[1].cmd[cid].status);
	EXPECT_EQ(0, d.errors);
	th_fini(&th);
}

/*
 * Write Zeroes takes a 64-bit Starting LBA, CDW11 its upper half (NVMe NVM
 * Command Set, Write Zeroes): on a namespace of 2^34 blocks, LBA 3_00000010h
 * reaches the backend as such; the last block, NSZE - 1, is in range, one
 * more block from it or NSZE itself is LBA Out of Range.
 */
TEST(write_zeroes_starting_lba_is_64_bits)
{
	static struct drv d;
	const u64 nsze = 1ULL << 34;
	struct emu_blk_req *r;
	struct th th;
	u8 sqe[64];
	int cid;

	ASSERT_EQ(0, big_ns_bringup(&th, &d, 0x64b1a, 12, nsze));

	drv_sqe(sqe, 0x08, 1);
	drv_set_dw(sqe, 10, 0x10);
	drv_set_dw(sqe, 11, 3);
	drv_set_dw(sqe, 12, 7);
	cid = drv_submit(&d, 1, sqe);
	ASSERT_GE(cid, 0);
	emu_nvme_poll(th.ctrl, 8);
	ASSERT_EQ(1, th.npend);
	r = th.pend[--th.npend];
	EXPECT_EQ(EMU_BLK_WRITE_ZEROES, r->op);
	EXPECT_EQ(0x300000010ULL, r->slba);
	EXPECT_EQ(8, r->nlb);
	emu_nvme_blk_complete(th.ctrl, r, 0);
	drv_reap(&d, 1);
	EXPECT_EQ(0, d.q[1].cmd[cid].status);

	drv_set_dw(sqe, 10, (u32)(nsze - 1));
	drv_set_dw(sqe, 11, (u32)((nsze - 1) >> 32));
	drv_set_dw(sqe, 12, 0);
	cid = drv_submit(&d, 1, sqe);
	ASSERT_GE(cid, 0);
	emu_nvme_poll(th.ctrl, 8);
	ASSERT_EQ(1, th.npend);
	r = th.pend[--th.npend];
	EXPECT_EQ(nsze - 1, r->slba);
	EXPECT_EQ(1, r->nlb);
	emu_nvme_blk_complete(th.ctrl, r, 0);
	drv_reap(&d, 1);
	EXPECT_EQ(0, d.q[1].cmd[cid].status);

	drv_set_dw(sqe, 12, 1);
	cid = drv_submit(&d, 1, sqe);
	ASSERT_GE(cid, 0);
	emu_nvme_poll(th.ctrl, 8);
	EXPECT_EQ(0, th.npend);
	drv_reap(&d, 1);
	EXPECT_EQ(EMU_SC_DNR | EMU_SC_LBA_RANGE, d.q[1].cmd[cid].status);

	drv_set_dw(sqe, 10, 0);
	drv_set_dw(sqe, 11, (u32)(nsze >> 32));
	drv_set_dw(sqe, 12, 0);
	cid = drv_submit(&d, 1, sqe);
	ASSERT_GE(cid, 0);
	emu_nvme_poll(th.ctrl, 8);
	EXPECT_EQ(0, th.npend);
	drv_reap(&d, 1);
	EXPECT_EQ(EMU_SC_DNR | EMU_SC_LBA_RANGE, d.q[1].cmd[cid].status);
	EXPECT_EQ(0, d.errors);
	th_fini(&th);
}

/*
 * The model holds at most EMU_NVME_MAX_REQS commands at the backend. The
 * next one stays in its submission queue, where SQ Head still points (a
 * controller leaves unfetched what it cannot hold), and is fetched as soon
 * as a backend request finishes: every command completes, none fails.
 */
TEST_F(io, request_pool_full_leaves_commands_queued)
{
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	const int n = EMU_NVME_MAX_REQS + 88;
	struct drv *d = &self->d;
	struct drv_q *q = &d->q[1];
	u64 buf = th_alloc(&self->th, 4096ULL * n, 4096);
	u8 sqe[64], *blk;
	int i;

	ASSERT_EQ(0, drv_bringup(d, 1, 1024, 0, 1));
	for (i = 0; i < n; i++) {
		blk = self->th.disk + ((u64)i << 12);
		memset(blk, i, 4096);
		emu_put_le32(blk, 0x5a000000 | (u32)i);
	}
	for (i = 0; i < n; i++) {
		drv_sqe(sqe, 0x02, 1);
		drv_set_dw(sqe, 10, (u32)i);
		drv_set_prp(sqe, buf + 4096ULL * i, 0);
		ASSERT_EQ(i, drv_submit_cid(d, 1, sqe, (u16)i));
	}
	emu_nvme_poll(self->th.ctrl, 2 * n);
	emu_nvme_poll(self->th.ctrl, 2 * n);
	EXPECT_EQ(EMU_NVME_MAX_REQS, emu_nvme_inflight(self->th.ctrl));
	EXPECT_EQ(EMU_NVME_MAX_REQS, self->th.npend);
	EXPECT_EQ(EMU_NVME_MAX_REQS, st->sq[1].head);
	EXPECT_EQ(0, drv_reap(d, 1));
	/* One request finishes: its command completes, one more is taken. */
	ASSERT_EQ(1, th_run_backend(&self->th, 1));
	EXPECT_EQ(1, drv_reap(d, 1));
	emu_nvme_poll(self->th.ctrl, 2 * n);
	EXPECT_EQ(EMU_NVME_MAX_REQS, emu_nvme_inflight(self->th.ctrl));
	EXPECT_EQ(EMU_NVME_MAX_REQS + 1, st->sq[1].head);
	ASSERT_EQ(0, drv_drain(d, 1000));
	EXPECT_EQ(n, (int)q->completions);
	for (i = 0; i < n; i++) {
		EXPECT_EQ(1, q->cmd[i].done);
		EXPECT_EQ(0, q->cmd[i].status);
		EXPECT_EQ(0, memcmp(th_ptr(&self->th, buf + 4096ULL * i),
				    self->th.disk + ((u64)i << 12), 4096)) {
			TH_LOG("block %d", i);
		}
	}
	EXPECT_EQ(0, emu_nvme_inflight(self->th.ctrl));
	EXPECT_EQ(0, (long)self->th.bufs);
	EXPECT_EQ(0, d->errors) {
		TH_LOG("%s", d->why);
	}
}

/*
 * CAP.DSTRD is 4 bits: doorbells 2^(2 + DSTRD) bytes apart, up to 128 KiB
 * (NVMe Base, Controller Capabilities; doorbell of queue y at 1000h +
 * (2y [+ 1]) * stride). At DSTRD 12 and 15 the admin and I/O queues work
 * through their doorbells with no error event; a write 4 bytes past the
 * admin SQ doorbell, inside the stride, is an asynchronous event of type
 * Error Status, "Write to Invalid Doorbell Register" (information 00h, log
 * page 01h).
 */
TEST_F(io, doorbells_at_the_largest_strides)
{
	static const u32 dstrd[] = { 12, 15 };
	struct drv *d = &self->d;
	u32 i;

	for (i = 0; i < EMU_ARRAY_SIZE(dstrd); i++) {
		ASSERT_EQ(0, reattach_dstrd(&self->th, d, dstrd[i]));
		ASSERT_EQ(4U << dstrd[i], d->stride);
		ASSERT_EQ(0, drv_bringup(d, 2, 16, 0, 1)) {
			TH_LOG("DSTRD %u", dstrd[i]);
		}
		ASSERT_EQ(0, io_burst(d, 2, 12));
		EXPECT_EQ(12, (long)d->q[2].completions);
		EXPECT_EQ(0, d->aer_done);
		EXPECT_EQ(0, d->errors) {
			TH_LOG("DSTRD %u: %s", dstrd[i], d->why);
		}
		emu_nvme_doorbell_write(self->th.ctrl, EMU_REG_DBS + 4, 0);
		drv_reap(d, 0);
		EXPECT_EQ(1, d->aer_done);
		EXPECT_EQ(0x010000, d->aer_dw0);
	}
}

/*
 * Once shutdown processing is complete (CSTS.SHST 10b) the controller
 * processes no command and leaves guest memory alone, the host being free
 * to tear down its buffers: a tail the host puts in a shadow doorbell then
 * is neither taken nor answered with a new EventIdx.
 */
TEST_F(io, shutdown_complete_ignores_shadow_doorbells)
{
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	struct drv *d = &self->d;
	u64 submits;
	struct drv_q *q;
	u8 sqe[64];
	u16 tail;

	ASSERT_EQ(0, drv_bringup(d, 1, 16, 1, 1));
	q = &d->q[1];
	emu_nvme_poll(self->th.ctrl, 16);
	drv_wreg(d, EMU_REG_CC, drv_reg(d, EMU_REG_CC, 4) |
		 (1U << EMU_CC_SHN_SHIFT), 4);
	ASSERT_EQ(0, drv_wait_csts(d, EMU_CSTS_SHST_MASK, EMU_CSTS_SHST_CMPLT));
	tail = q->sq_tail;
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, th_alloc(&self->th, 4096, 4096), 0);
	emu_put_le16(sqe + 2, 5);
	memcpy(th_ptr(&self->th, q->sq + 64ULL * tail), sqe, 64);
	self->th.watch_lo = d->eis;
	self->th.watch_hi = d->eis + 4096;
	self->th.watch_writes = 0;
	submits = self->th.submits;
	/* SQ 1's shadow tail slot (stride 4) */
	emu_put_le32(th_ptr(&self->th, d->dbs + 8 * 1), tail + 1U);
	emu_nvme_poll(self->th.ctrl, 16);
	emu_nvme_poll(self->th.ctrl, 16);
	EXPECT_EQ(tail, st->sq[1].tail);
	EXPECT_EQ(tail, st->sq[1].head);
	EXPECT_EQ(0, (long)self->th.watch_writes);
	EXPECT_EQ(submits, self->th.submits);
	EXPECT_EQ(0, self->d.errors);
}

/*
 * Asynchronous Event Configuration (FID 0Bh) bit 2 enables the SMART /
 * Health event "NVM subsystem reliability", Asynchronous Event Information
 * 00h with log page 02h (NVMe Base 2.0, Set Features, Asynchronous Event
 * Configuration; Asynchronous Event Request, SMART / Health Status): with
 * every other critical warning bit set and bit 2 clear it is not reported,
 * with bit 2 alone it is.
 */
TEST_F(io, aec_bit_2_gates_the_reliability_event)
{
	struct drv *d = &self->d;

	ASSERT_EQ(0, drv_bringup(d, 1, 16, 0, 1));
	ASSERT_EQ(1, d->aer_outstanding);
	ASSERT_EQ(0, drv_set_feature(d, 0x0b, 0x100 | (0xff & ~EMU_BIT(2))));
	emu_nvme_async_event(self->th.ctrl, 1, 0, 0x02);
	emu_nvme_poll(self->th.ctrl, 16);
	drv_reap(d, 0);
	EXPECT_EQ(0, d->aer_done);
	ASSERT_EQ(0, drv_set_feature(d, 0x0b, EMU_BIT(2)));
	emu_nvme_async_event(self->th.ctrl, 1, 0, 0x02);
	drv_reap(d, 0);
	EXPECT_EQ(1, d->aer_done);
	EXPECT_EQ(0x020001, d->aer_dw0);
	EXPECT_EQ(0, d->errors);
}

static void observe_wreg(struct drv *d, u32 off, u64 val, u32 size)
{
	emu_nvme_observe_reg_write(d->priv, off, val, size);
}

/*
 * Takeover puts every queue where the host says it is, the admin queue
 * too: a VF that ran admin commands the observer never saw (SQ head and
 * tail 5, CQ head and tail 9) goes on from there. The guest's next
 * command, in SQ slot 5, is the only one fetched, answered in CQ slot 9;
 * no other entry is written.
 */
TEST(takeover_sets_admin_queue_positions)
{
	static struct drv d;
	struct emu_nvme_positions pos;
	const struct emu_nvme_state *st;
	struct emu_nvme_ctrl *obs, *vf;
	u8 page[4096], sqe[64], *cq;
	char err[200];
	struct th th;
	u64 buf;
	int i;

	th_init(&th, th_seed(0x7a0e));
	vf = th_new_ctrl(&th);
	th_load_identity(&th, 12, 2048, 16);
	emu_nvme_start_disabled(vf);
	obs = calloc(1, emu_nvme_ctrl_size());
	ASSERT_NE(NULL, obs);
	emu_nvme_init(obs, &th_ops, &th);
	emu_nvme_set_hw(obs, emu_nvme_state(vf)->id.cap, 0x10400, 17, 16, 16);
	th_idctrl_page(page);
	ASSERT_EQ(0, emu_nvme_load_identify(obs, 1, 0, 0, 1, page));
	memset(&d, 0, sizeof(d));
	d.th = &th;
	d.priv = obs;
	d.on_wreg = observe_wreg;
	ASSERT_EQ(0, drv_enable(&d, 32));
	d.on_wreg = NULL;

	memset(&pos, 0, sizeof(pos));
	pos.q[0].sq_head = pos.q[0].sq_tail = 5;
	pos.q[0].cq_head = pos.q[0].cq_tail = 9;
	pos.q[0].cq_phase = 1;
	ASSERT_EQ(0, emu_nvme_takeover(obs, &pos, err, sizeof(err))) {
		TH_LOG("%s", err);
	}
	th.ctrl = obs;
	d.q[0].sq_tail = d.q[0].sq_head = 5;
	d.q[0].cq_head = 9;
	buf = th_alloc(&th, 4096, 4096);
	drv_sqe(sqe, 0x06, 0);
	drv_set_dw(sqe, 10, 1);
	drv_set_prp(sqe, buf, 0);
	ASSERT_EQ(0, drv_admin(&d, sqe, NULL));
	EXPECT_EQ(0, memcmp(page, th_ptr(&th, buf), 4096));
	st = emu_nvme_state(obs);
	EXPECT_EQ(6, st->sq[0].head);
	EXPECT_EQ(10, st->cq[0].tail);
	cq = th_ptr(&th, d.q[0].cq);
	for (i = 0; i < 32; i++) {
		if (i == 9)
			continue;
		EXPECT_EQ(0, emu_get_le32(cq + 16 * i + 12)) {
			TH_LOG("CQ slot %d written", i);
		}
	}
	EXPECT_EQ(0, d.errors) {
		TH_LOG("%s", d.why);
	}
	th.ctrl = vf;
	th_fini(&th);
	free(obs);
}

/*
 * CDW0 PSDT (NVMe base 4.2.1, Figure "Command Dword 0"): bits 7:6, 01b
 * and 10b select SGLs, 11b is reserved and refused with Invalid Field in
 * Command, even by a controller that supports SGLs.
 */
TEST_F(io, psdt_reserved_value_refused_with_sgls)
{
	u64 buf;
	u8 sqe[64];
	int ok, bad, rsvd;

	ASSERT_EQ(0, drv_bringup(&self->d, 1, 64, 0, 1));
	self->th.sync = 1;
	buf = th_alloc(&self->th, 4096, 4096);
	drv_sqe(sqe, 0x02, 1);
	drv_map_sgl(&self->d, sqe, buf, 4096, 1);
	ASSERT_EQ(0x40, sqe[1] & 0xc0);
	ok = drv_submit(&self->d, 1, sqe);
	ASSERT_LE(0, ok);
	sqe[1] |= 0xc0;
	bad = drv_submit(&self->d, 1, sqe);
	ASSERT_LE(0, bad);
	/* Bit 5 is reserved, not part of PSDT: 01b with it set is an SGL. */
	sqe[1] = (sqe[1] & ~0xc0) | 0x60;
	rsvd = drv_submit(&self->d, 1, sqe);
	ASSERT_LE(0, rsvd);
	ASSERT_EQ(0, drv_drain(&self->d, 1000));
	EXPECT_EQ(0, self->d.q[1].cmd[ok].status);
	EXPECT_EQ(0, self->d.q[1].cmd[rsvd].status);
	EXPECT_EQ(EMU_SC_DNR | EMU_SC_INVALID_FIELD,
		  self->d.q[1].cmd[bad].status);
}

/*
 * A controller reset deletes every I/O queue (NVMe base 3.7.2): an
 * interrupt held back by coalescing for a completion posted before it is
 * not raised afterwards, when no queue uses the vector any more.
 */
TEST_F(io, reset_drops_a_coalesced_interrupt)
{
	u64 buf;
	u8 sqe[64];

	ASSERT_EQ(0, drv_bringup(&self->d, 1, 64, 0, 1));
	ASSERT_EQ(0, drv_set_feature(&self->d, 0x08, (10U << 8) | 7));
	self->th.sync = 1;
	self->th.clock_frozen = 1;
	buf = th_alloc(&self->th, 4096, 4096);
	memset(self->th.irqs, 0, sizeof(self->th.irqs));
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, buf, 0);
	ASSERT_LE(0, drv_submit(&self->d, 1, sqe));
	ASSERT_EQ(1, emu_nvme_poll(self->th.ctrl, 64));
	ASSERT_EQ(0, (long)self->th.irqs[1]);
	drv_wreg(&self->d, EMU_REG_CC, 0, 4);
	ASSERT_EQ(0, drv_wait_csts(&self->d, 1, 0));
	ASSERT_EQ(0, drv_attach(&self->d, &self->th, 32));
	emu_nvme_poll(self->th.ctrl, 64);
	EXPECT_EQ(0, (long)self->th.irqs[1]);
}

TEST_HARNESS_MAIN
