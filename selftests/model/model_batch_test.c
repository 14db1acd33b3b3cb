// SPDX-License-Identifier: GPL-2.0-only
/*
 * emuhba model: batched backend completions (emu_nvme_blk_complete_more()).
 * Each command of a batch is finished at once, its completion entry in
 * guest memory; the interrupts wait for the end of the batch, one per
 * vector. Requests of aborted commands are given back without an entry.
 */
#include <string.h>
#include "emu_test_lib.h"
#include "kselftest_harness.h"

#define NR_BATCH	6
#define PAT(slba)	((u8)(0x40 + (slba)))

FIXTURE(batch) {
	struct th th;
	struct drv d;
	u64 buf[NR_BATCH * 2];
	int cid[NR_BATCH * 2];
};

FIXTURE_SETUP(batch)
{
	u64 slba;
	int i;

	ASSERT_EQ(0, drv_start(&self->d, &self->th, th_seed(0xba7c)));
	/* Two I/O queues on vectors 1 and 2, interrupts enabled, no dbbuf. */
	ASSERT_EQ(0, drv_bringup(&self->d, 2, 64, 0, 1));
	for (slba = 0; slba < 64; slba++)
		memset(self->th.disk + (slba << 12), PAT(slba), 4096);
	for (i = 0; i < NR_BATCH * 2; i++) {
		self->buf[i] = th_alloc(&self->th, 4096, 4096);
		memset(th_ptr(&self->th, self->buf[i]), 0xcc, 4096);
	}
}

FIXTURE_TEARDOWN(batch)
{
	th_fini(&self->th);
}

static int submit_read(struct drv *d, u16 qid, u64 slba, u64 buf)
{
	u8 sqe[64];

	drv_sqe(sqe, 0x02, 1);
	drv_set_dw(sqe, 10, (u32)slba);
	drv_set_prp(sqe, buf, 0);
	return drv_submit(d, qid, sqe);
}

/*
 * The k-th entry past the driver's CQ head, as the guest would see it:
 * NULL while the controller has not posted it (phase tag still old).
 */
static const u8 *cqe_at(struct drv *d, u16 qid, u16 k)
{
	struct drv_q *q = &d->q[qid];
	u32 idx = (u32)q->cq_head + k;
	u8 phase = (u8)(q->phase ^ (idx >= q->size));
	const u8 *cqe = th_ptr(d->th, q->cq + 16ULL * (idx % q->size));

	return (emu_get_le16(cqe + 14) & 1) == phase ? cqe : NULL;
}

static int buf_is(struct th *th, u64 iova, u8 v)
{
	const u8 *p = th_ptr(th, iova);
	int i;

	for (i = 0; i < 4096; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

/* NR_BATCH reads on qid for slba base.., held by the backend. */
static void submit_batch(struct __test_metadata *_metadata,
			 FIXTURE_DATA(batch) *self, u16 qid, u64 base,
			 int first_buf)
{
	int i, npend = self->th.npend;

	for (i = 0; i < NR_BATCH; i++) {
		self->cid[first_buf + i] = submit_read(&self->d, qid, base + i,
						       self->buf[first_buf + i]);
		ASSERT_GE(self->cid[first_buf + i], 0);
	}
	emu_nvme_poll(self->th.ctrl, 64);
	ASSERT_EQ(npend + NR_BATCH, self->th.npend);
	ASSERT_EQ(NULL, cqe_at(&self->d, qid, 0));
}

static void expect_cqe(struct __test_metadata *_metadata, struct drv *d,
		       u16 qid, u16 k, int cid)
{
	const u8 *cqe = cqe_at(d, qid, k);

	ASSERT_NE(NULL, cqe) {
		TH_LOG("no completion entry %u on queue %u", k, qid);
	}
	EXPECT_EQ(cid, emu_get_le16(cqe + 12));
	EXPECT_EQ(qid, emu_get_le16(cqe + 10));
	EXPECT_EQ(0, emu_get_le16(cqe + 14) >> 1);
}

/* The order the backend finishes them in: not the order of submission. */
static const int order[NR_BATCH] = { 3, 0, 5, 1, 4, 2 };

TEST_F(batch, entries_at_once_one_interrupt)
{
	struct th *th = &self->th;
	struct drv *d = &self->d;
	u8 sqe[64];
	u32 dw0 = ~0U;
	int k, i;

	/* Interrupt Coalescing as the guest sees it: off. */
	drv_sqe(sqe, 0x0a, 0);
	drv_set_dw(sqe, 10, 0x08);
	ASSERT_EQ(0, drv_admin(d, sqe, &dw0));
	ASSERT_EQ(0, dw0);
	submit_batch(_metadata, self, 1, 0, 0);
	memset(th->irqs, 0, sizeof(th->irqs));
	ASSERT_EQ(NR_BATCH, emu_nvme_inflight(th->ctrl));

	for (k = 0; k < NR_BATCH - 1; k++) {
		i = order[k];
		ASSERT_EQ(0, th_complete_at(th, th_find_pend(th, (u64)i), 1));
		/* Entry and data are in guest memory now ... */
		expect_cqe(_metadata, d, 1, (u16)k, self->cid[i]);
		EXPECT_TRUE(buf_is(th, self->buf[i], PAT(i)));
		EXPECT_EQ(NULL, cqe_at(d, 1, (u16)(k + 1)));
		EXPECT_EQ((u32)(NR_BATCH - 1 - k), emu_nvme_inflight(th->ctrl));
		/* ... the interrupt is not, nor is one scheduled. */
		EXPECT_EQ(0, (long)th_irq_total(th));
		EXPECT_EQ(0, (long)emu_nvme_timer_ns(th->ctrl));
	}
	i = order[NR_BATCH - 1];
	EXPECT_TRUE(buf_is(th, self->buf[i], 0xcc));
	ASSERT_EQ(0, th_complete_at(th, th_find_pend(th, (u64)i), 0));
	expect_cqe(_metadata, d, 1, NR_BATCH - 1, self->cid[i]);
	EXPECT_TRUE(buf_is(th, self->buf[i], PAT(i)));
	EXPECT_EQ(1, (long)th->irqs[1]);
	EXPECT_EQ(1, (long)th_irq_total(th));
	EXPECT_EQ(0, emu_nvme_inflight(th->ctrl));

	/* Nothing was left over for a later poll to signal. */
	emu_nvme_poll(th->ctrl, 64);
	EXPECT_EQ(1, (long)th_irq_total(th));
	EXPECT_EQ(NR_BATCH, drv_reap(d, 1));
	for (i = 0; i < NR_BATCH; i++) {
		EXPECT_EQ(1, d->q[1].cmd[self->cid[i]].done);
		EXPECT_EQ(0, d->q[1].cmd[self->cid[i]].status);
	}
	EXPECT_EQ(0, d->errors) {
		TH_LOG("%s", d->why);
	}
	EXPECT_EQ(0, (long)th->bufs);
	EXPECT_EQ(0, (long)th->dma_errors);
}

/* The baseline the batch is measured against: one interrupt each. */
TEST_F(batch, single_completions_one_interrupt_each)
{
	struct th *th = &self->th;
	int k;

	submit_batch(_metadata, self, 1, 0, 0);
	memset(th->irqs, 0, sizeof(th->irqs));
	for (k = 0; k < NR_BATCH; k++) {
		ASSERT_EQ(0, th_complete_at(th, th_find_pend(th, order[k]), 0));
		expect_cqe(_metadata, &self->d, 1, (u16)k,
			   self->cid[order[k]]);
		EXPECT_EQ(k + 1, (long)th->irqs[1]);
	}
	EXPECT_EQ(NR_BATCH, drv_reap(&self->d, 1));
	EXPECT_EQ(0, self->d.errors);
}

TEST_F(batch, poll_ends_the_batch)
{
	struct th *th = &self->th;
	int k;

	submit_batch(_metadata, self, 1, 0, 0);
	memset(th->irqs, 0, sizeof(th->irqs));
	for (k = 0; k < NR_BATCH; k++) {
		ASSERT_EQ(0, th_complete_at(th, th_find_pend(th, order[k]), 1));
		expect_cqe(_metadata, &self->d, 1, (u16)k,
			   self->cid[order[k]]);
	}
	EXPECT_EQ(0, (long)th_irq_total(th));
	EXPECT_EQ(0, emu_nvme_inflight(th->ctrl));
	emu_nvme_poll(th->ctrl, 64);
	EXPECT_EQ(1, (long)th->irqs[1]);
	EXPECT_EQ(1, (long)th_irq_total(th));
	EXPECT_EQ(NR_BATCH, drv_reap(&self->d, 1));
	EXPECT_EQ(0, self->d.errors);
}

/* One batch over two queues on two vectors: one interrupt per vector. */
TEST_F(batch, two_queues_one_interrupt_per_vector)
{
	struct th *th = &self->th;
	int k, q1 = 0, q2 = 0;

	submit_batch(_metadata, self, 1, 0, 0);
	submit_batch(_metadata, self, 2, 32, NR_BATCH);
	memset(th->irqs, 0, sizeof(th->irqs));
	for (k = 0; k < 2 * NR_BATCH; k++) {
		/* Alternate queues; q2's slbas are 32.. */
		int on2 = k & 1, i = on2 ? q2++ : q1++;
		u64 slba = on2 ? 32 + (u64)order[i] : (u64)order[i];
		int more = k < 2 * NR_BATCH - 1;

		ASSERT_EQ(0, th_complete_at(th, th_find_pend(th, slba), more));
		expect_cqe(_metadata, &self->d, on2 ? 2 : 1, (u16)i,
			   self->cid[order[i] + (on2 ? NR_BATCH : 0)]);
		if (more)
			EXPECT_EQ(0, (long)th_irq_total(th));
	}
	EXPECT_EQ(1, (long)th->irqs[1]);
	EXPECT_EQ(1, (long)th->irqs[2]);
	EXPECT_EQ(2, (long)th_irq_total(th));
	EXPECT_EQ(NR_BATCH, drv_reap(&self->d, 1));
	EXPECT_EQ(NR_BATCH, drv_reap(&self->d, 2));
	EXPECT_EQ(0, self->d.errors);
}

/*
 * A Dataset Management command goes to the backend one range at a time:
 * a range finished in a batch starts the next one, and only the last
 * range posts the entry.
 */
TEST_F(batch, dsm_ranges_continue_inside_a_batch)
{
	struct th *th = &self->th;
	struct drv *d = &self->d;
	u64 rl = th_alloc(th, 4096, 4096);
	u8 *r = th_ptr(th, rl), sqe[64];
	static const u64 slbas[3] = { 40, 44, 50 };
	int cid, k, rd;

	for (k = 0; k < 3; k++) {
		emu_put_le32(r + 16 * k + 4, 2);
		emu_put_le64(r + 16 * k + 8, slbas[k]);
	}
	drv_sqe(sqe, 0x09, 1);
	drv_set_dw(sqe, 10, 2);
	drv_set_dw(sqe, 11, 4);		/* deallocate */
	drv_set_prp(sqe, rl, 0);
	cid = drv_submit(d, 1, sqe);
	ASSERT_GE(cid, 0);
	rd = submit_read(d, 1, 7, self->buf[0]);
	ASSERT_GE(rd, 0);
	emu_nvme_poll(th->ctrl, 64);
	ASSERT_EQ(2, th->npend);
	memset(th->irqs, 0, sizeof(th->irqs));
	for (k = 0; k < 3; k++) {
		ASSERT_EQ(0, th_complete_at(th, th_find_pend(th, slbas[k]), 1));
		EXPECT_EQ(0, th->disk[slbas[k] << 12]);
		EXPECT_EQ(0, th->disk[(slbas[k] + 1) << 12]);
		if (k < 2) {
			/* The next range is with the backend already. */
			EXPECT_LE(0, th_find_pend(th, slbas[k + 1]));
			EXPECT_EQ(NULL, cqe_at(d, 1, 0));
		}
	}
	expect_cqe(_metadata, d, 1, 0, cid);
	EXPECT_EQ(PAT(slbas[2] + 2), th->disk[(slbas[2] + 2) << 12]);
	EXPECT_EQ(0, (long)th_irq_total(th));
	ASSERT_EQ(0, th_complete_at(th, th_find_pend(th, 7), 0));
	expect_cqe(_metadata, d, 1, 1, rd);
	EXPECT_EQ(1, (long)th_irq_total(th));
	EXPECT_EQ(0, emu_nvme_inflight(th->ctrl));
	EXPECT_EQ(0, (long)th->bufs);
	EXPECT_EQ(2, drv_reap(d, 1));
	EXPECT_EQ(0, d->errors);
}

/*
 * A stale second completion of a request already handed back is refused:
 * no second entry, no change to what is in flight.
 */
TEST_F(batch, second_completion_is_ignored)
{
	struct th *th = &self->th;
	struct emu_blk_req *r;
	int i;

	submit_batch(_metadata, self, 1, 0, 0);
	memset(th->irqs, 0, sizeof(th->irqs));
	i = th_find_pend(th, 2);
	ASSERT_LE(0, i);
	r = th->pend[i];
	ASSERT_EQ(0, th_complete_at(th, i, 1));
	expect_cqe(_metadata, &self->d, 1, 0, self->cid[2]);
	emu_nvme_blk_complete_more(th->ctrl, r, 0);
	emu_nvme_blk_complete_more(th->ctrl, r, -EIO);
	EXPECT_EQ(NULL, cqe_at(&self->d, 1, 1));
	EXPECT_EQ(NR_BATCH - 1, emu_nvme_inflight(th->ctrl));
	EXPECT_EQ(NR_BATCH - 1, (long)th->bufs);
	EXPECT_EQ(0, (long)th_irq_total(th));
	while (th->npend)
		ASSERT_EQ(0, th_complete_at(th, 0, th->npend > 1));
	EXPECT_EQ(1, (long)th->irqs[1]);
	EXPECT_EQ(NR_BATCH, drv_reap(&self->d, 1));
	EXPECT_EQ(0, self->d.errors) {
		TH_LOG("%s", self->d.why);
	}
}

/* A backend finishing inside blk_submit may use the batch call too. */
TEST_F(batch, inside_submit_is_deferred_to_the_poll)
{
	struct th *th = &self->th;
	int i;

	th->sync = 1;
	th->sync_more = 1;
	memset(th->irqs, 0, sizeof(th->irqs));
	for (i = 0; i < NR_BATCH; i++) {
		self->cid[i] = submit_read(&self->d, 1, (u64)i, self->buf[i]);
		ASSERT_GE(self->cid[i], 0);
	}
	emu_nvme_poll(th->ctrl, 64);
	for (i = 0; i < NR_BATCH; i++) {
		expect_cqe(_metadata, &self->d, 1, (u16)i, self->cid[i]);
		EXPECT_TRUE(buf_is(th, self->buf[i], PAT(i)));
	}
	EXPECT_EQ(1, (long)th->irqs[1]);
	EXPECT_EQ(0, emu_nvme_inflight(th->ctrl));
	EXPECT_EQ(0, (long)th->bufs);
	EXPECT_EQ(NR_BATCH, drv_reap(&self->d, 1));
	EXPECT_EQ(0, self->d.errors);
}

/*
 * Controller reset with the backend holding reads: each request completed
 * in a batch is freed there (bounce buffer returned, no longer in flight)
 * and leaves guest memory alone: no entry, no data, no interrupt.
 */
static void reset_then_batch(struct __test_metadata *_metadata,
			     FIXTURE_DATA(batch) *self, int end_with_poll)
{
	struct th *th = &self->th;
	struct drv *d = &self->d;
	static u8 cq1[16 * 64], cq0[16 * 32];
	int k, last;

	submit_batch(_metadata, self, 1, 0, 0);
	ASSERT_EQ(NR_BATCH, (long)th->bufs);
	memcpy(cq1, th_ptr(th, d->q[1].cq), sizeof(cq1));
	memcpy(cq0, th_ptr(th, d->q[0].cq), sizeof(cq0));
	drv_wreg(d, EMU_REG_CC, drv_reg(d, EMU_REG_CC, 4) & ~EMU_CC_EN, 4);
	/* Ready stays set while the backend holds requests. */
	ASSERT_EQ(EMU_CSTS_RDY, drv_reg(d, EMU_REG_CSTS, 4) & EMU_CSTS_RDY);
	memset(th->irqs, 0, sizeof(th->irqs));
	last = end_with_poll ? NR_BATCH : NR_BATCH - 1;
	for (k = 0; k < last; k++) {
		ASSERT_EQ(0, th_complete_at(th, th_find_pend(th, order[k]), 1));
		EXPECT_EQ((u32)(NR_BATCH - 1 - k), emu_nvme_inflight(th->ctrl));
		EXPECT_EQ(NR_BATCH - 1 - k, (long)th->bufs);
		EXPECT_TRUE(buf_is(th, self->buf[order[k]], 0xcc));
	}
	if (end_with_poll)
		emu_nvme_poll(th->ctrl, 64);
	else
		ASSERT_EQ(0, th_complete_at(th, 0, 0));
	EXPECT_EQ(0, emu_nvme_inflight(th->ctrl));
	EXPECT_EQ(0, (long)th->bufs);
	EXPECT_EQ(0, memcmp(cq1, th_ptr(th, d->q[1].cq), sizeof(cq1)));
	EXPECT_EQ(0, memcmp(cq0, th_ptr(th, d->q[0].cq), sizeof(cq0)));
	EXPECT_EQ(0, (long)th_irq_total(th));
	for (k = 0; k < NR_BATCH; k++)
		EXPECT_TRUE(buf_is(th, self->buf[k], 0xcc));
	/* With everything given back the reset completes. */
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & EMU_CSTS_RDY);
	EXPECT_EQ(0, emu_nvme_state(th->ctrl)->sq[1].valid);
	/* And the driver brings the controller up again. */
	ASSERT_EQ(0, drv_attach(d, th, 32));
	ASSERT_EQ(0, drv_bringup(d, 2, 64, 0, 1));
	self->cid[0] = submit_read(d, 1, 9, self->buf[0]);
	ASSERT_EQ(0, drv_drain(d, 100));
	EXPECT_EQ(0, d->q[1].cmd[self->cid[0]].status);
	EXPECT_TRUE(buf_is(th, self->buf[0], PAT(9)));
	EXPECT_EQ(0, d->errors);
}

TEST_F(batch, aborted_by_reset_batch_ends_with_complete)
{
	reset_then_batch(_metadata, self, 0);
}

TEST_F(batch, aborted_by_reset_batch_ends_with_poll)
{
	reset_then_batch(_metadata, self, 1);
}

/*
 * Delete I/O SQ while the backend holds its reads: the model finishes
 * them (entries posted in the batch), then completes the deletion; the
 * interrupts for both queues come at the end of the batch.
 */
TEST_F(batch, delete_sq_completes_with_the_batch)
{
	struct th *th = &self->th;
	struct drv *d = &self->d;
	u8 sqe[64];
	int k, del;

	submit_batch(_metadata, self, 2, 32, 0);
	drv_sqe(sqe, 0x00, 0);
	drv_set_dw(sqe, 10, 2);
	del = drv_submit(d, 0, sqe);
	ASSERT_GE(del, 0);
	emu_nvme_poll(th->ctrl, 64);
	drv_reap(d, 0);
	ASSERT_EQ(0, d->q[0].cmd[del].done);
	memset(th->irqs, 0, sizeof(th->irqs));
	for (k = 0; k < NR_BATCH; k++) {
		ASSERT_EQ(0, th_complete_at(th, th_find_pend(th,
							     32 + order[k]), 1));
		expect_cqe(_metadata, d, 2, (u16)k, self->cid[order[k]]);
	}
	EXPECT_EQ(0, emu_nvme_inflight(th->ctrl));
	EXPECT_EQ(0, (long)th_irq_total(th));
	EXPECT_EQ(0, emu_nvme_state(th->ctrl)->sq[2].valid);
	expect_cqe(_metadata, d, 0, 0, del);
	emu_nvme_poll(th->ctrl, 64);
	EXPECT_EQ(1, (long)th->irqs[0]);
	EXPECT_EQ(1, (long)th->irqs[2]);
	EXPECT_EQ(2, (long)th_irq_total(th));
	EXPECT_EQ(NR_BATCH, drv_reap(d, 2));
	EXPECT_EQ(1, drv_reap(d, 0));
	EXPECT_EQ(1, d->q[0].cmd[del].done);
	EXPECT_EQ(0, d->errors);
}

/*
 * A Dataset Management command whose first range the backend refused as
 * busy waits for a retry. A controller reset aborts it there: the retry
 * gives the request back instead of starting its ranges, so after the
 * reset the backend receives nothing, the blocks keep their data, and the
 * reset completes at the next poll.
 */
TEST_F(batch, reset_drops_a_dsm_waiting_for_retry)
{
	struct th *th = &self->th;
	struct drv *d = &self->d;
	u64 rl = th_alloc(th, 4096, 4096), submits;
	u8 *r = th_ptr(th, rl), sqe[64];
	static const u64 slbas[2] = { 40, 50 };
	static u8 cq1[16 * 64];
	int k;

	for (k = 0; k < 2; k++) {
		emu_put_le32(r + 16 * k + 4, 2);
		emu_put_le64(r + 16 * k + 8, slbas[k]);
	}
	drv_sqe(sqe, 0x09, 1);
	drv_set_dw(sqe, 10, 1);
	drv_set_dw(sqe, 11, 4);		/* deallocate */
	drv_set_prp(sqe, rl, 0);
	ASSERT_GE(drv_submit(d, 1, sqe), 0);
	th->eagain_next = 1;
	submits = th->submits;
	emu_nvme_poll(th->ctrl, 64);
	ASSERT_EQ(submits + 1, th->submits);
	ASSERT_EQ(0, th->npend);
	ASSERT_EQ(1, emu_nvme_inflight(th->ctrl));
	memcpy(cq1, th_ptr(th, d->q[1].cq), sizeof(cq1));
	drv_wreg(d, EMU_REG_CC, drv_reg(d, EMU_REG_CC, 4) & ~EMU_CC_EN, 4);
	submits = th->submits;
	emu_nvme_poll(th->ctrl, 64);
	EXPECT_EQ(submits, th->submits);
	EXPECT_EQ(0, th->npend);
	EXPECT_EQ(0, emu_nvme_inflight(th->ctrl));
	EXPECT_EQ(0, (long)th->bufs);
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & EMU_CSTS_RDY);
	EXPECT_EQ(0, memcmp(cq1, th_ptr(th, d->q[1].cq), sizeof(cq1)));
	for (k = 0; k < 2; k++) {
		EXPECT_EQ(PAT(slbas[k]), th->disk[slbas[k] << 12]);
		EXPECT_EQ(PAT(slbas[k] + 1), th->disk[(slbas[k] + 1) << 12]);
	}
}

TEST_HARNESS_MAIN
