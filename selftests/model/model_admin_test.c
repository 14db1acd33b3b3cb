// SPDX-License-Identifier: GPL-2.0-only
/*
 * emuhba model: the spec's error statuses for each admin command and for
 * data transfer, asynchronous events, reset and shutdown in the middle of
 * I/O, NVM subsystem reset.
 */
#include "emu_test_lib.h"
#include "kselftest_harness.h"

#define DNR 0x4000

FIXTURE(adm) {
	struct th th;
	struct drv d;
	u64 page;
};

FIXTURE_SETUP(adm)
{
	ASSERT_EQ(0, drv_start(&self->d, &self->th, th_seed(0xadd)));
	ASSERT_EQ(0, drv_bringup(&self->d, 4, 64, 1, 1));
	self->page = th_alloc(&self->th, 8192, 4096);
}

FIXTURE_TEARDOWN(adm)
{
	th_fini(&self->th);
}

static int adm(struct drv *d, u8 opc, u32 nsid, u32 dw10, u32 dw11,
	       u64 prp1, u32 *dw0)
{
	u8 sqe[64];

	drv_sqe(sqe, opc, nsid);
	drv_set_dw(sqe, 10, dw10);
	drv_set_dw(sqe, 11, dw11);
	drv_set_prp(sqe, prp1, 0);
	return drv_admin(d, sqe, dw0);
}

static int io(struct drv *d, u16 qid, u8 *sqe)
{
	int cid = drv_submit(d, qid, sqe);

	if (cid < 0 || drv_drain(d, 1000))
		return -1;
	return d->q[qid].cmd[cid].status;
}

TEST_F(adm, identify_errors)
{
	struct drv *d = &self->d;
	u64 p = self->page;
	u8 sqe[64];

	EXPECT_EQ(DNR | 0x0b, adm(d, 0x06, 0, 0, 0, p, NULL));
	EXPECT_EQ(DNR | 0x0b, adm(d, 0x06, 2, 0, 0, p, NULL));
	EXPECT_EQ(DNR | 0x0b, adm(d, 0x06, 0xffffffff, 0, 0, p, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x06, 0, 0x1f, 0, p, NULL));
	EXPECT_EQ(DNR | 0x0b, adm(d, 0x06, 0xfffffffe, 2, 0, p, NULL));
	EXPECT_EQ(DNR | 0x0b, adm(d, 0x06, 5, 3, 0, p, NULL));
	/* The active list above NSID 1 is empty. */
	EXPECT_EQ(0, adm(d, 0x06, 1, 2, 0, p, NULL));
	EXPECT_EQ(0, emu_get_le32(th_ptr(&self->th, p)));
	/* Admin commands take PRPs only. */
	drv_sqe(sqe, 0x06, 0);
	drv_set_dw(sqe, 10, 1);
	sqe[1] = 0x40;
	EXPECT_EQ(DNR | 0x02, drv_admin(d, sqe, NULL));
	/* Data beyond guest memory is a transfer error, not a crash. */
	EXPECT_EQ(DNR | 0x04, adm(d, 0x06, 0, 1, 0, 0x1000, NULL));
	EXPECT_EQ(DNR | 0x13, adm(d, 0x06, 0, 1, 0, p + 2, NULL));
	/* Unknown and unsupported opcodes. */
	EXPECT_EQ(DNR | 0x01, adm(d, 0x80, 0, 0, 0, 0, NULL));
	EXPECT_EQ(DNR | 0x01, adm(d, 0x10, 0, 0, 0, 0, NULL));
}

/*
 * What the glue writes over another model's Identify data is exactly what
 * the model itself answers to the command: status and data.
 */
TEST_F(adm, identify_answer_is_the_execution)
{
	static const struct { u32 nsid, cns; } cmds[] = {
		{ 0, 1 }, { 1, 0 }, { 0, 2 }, { 1, 3 }, { 0xffffffff, 0 },
		{ 0, 0x1f }, { 7, 0 }, { 0xfffffffe, 2 },
	};
	struct drv *d = &self->d;
	u8 sqe[64], want[4096];
	unsigned int i;
	int st;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		memset(th_ptr(&self->th, self->page), 0x5a, 4096);
		st = adm(d, 0x06, cmds[i].nsid, cmds[i].cns, 0, self->page,
			 NULL);
		memcpy(want, th_ptr(&self->th, self->page), 4096);
		drv_sqe(sqe, 0x06, cmds[i].nsid);
		drv_set_dw(sqe, 10, cmds[i].cns);
		drv_set_prp(sqe, self->page, 0);
		EXPECT_EQ(st, emu_nvme_identify_answer(self->th.ctrl, sqe,
						       th_ptr(&self->th,
							      self->page)))
			TH_LOG("cns %u nsid %#x", cmds[i].cns, cmds[i].nsid);
		if (!st)
			EXPECT_EQ(0, memcmp(want, th_ptr(&self->th, self->page),
					    4096))
				TH_LOG("cns %u nsid %#x", cmds[i].cns,
				       cmds[i].nsid);
	}
}

/*
 * Any other CNS is answered from the page captured for that CNS and CSI
 * (CDW11 bits 31:24): the I/O Command Set specific Identify Controller
 * (CNS 06h) for the NVM Command Set (CSI 00h) reads back exactly; the same
 * CNS for a command set never captured (Zoned Namespace, CSI 02h) is
 * Invalid Field in Command.
 */
TEST_F(adm, identify_other_cns_from_captured_pages)
{
	struct drv *d = &self->d;
	u8 *b = th_ptr(&self->th, self->page), page[4096];
	int i;

	for (i = 0; i < 4096; i++)
		page[i] = (u8)(i * 7 + 3);
	ASSERT_EQ(0, emu_nvme_load_identify(self->th.ctrl, 0x06, 0, 0, 1,
					    page));
	memset(b, 0x5a, 4096);
	EXPECT_EQ(0, adm(d, 0x06, 0, 0x06, 0, self->page, NULL));
	EXPECT_EQ(0, memcmp(page, b, 4096));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x06, 0, 0x06, 2U << 24, self->page,
				  NULL));
	EXPECT_EQ(0, d->errors);
}

/*
 * CNS 03h from the namespace page: an EUI64 descriptor (NIDT 1, 8 bytes)
 * when EUI64 (bytes 120-127) is not zero, an NGUID one (NIDT 2, 16 bytes)
 * when NGUID (bytes 104-119) is not zero, then the Command Set Identifier
 * (NIDT 4, 1 byte: NVM), then zeroes. An identifier with only its first
 * or only its last byte set is not zero.
 */
TEST_F(adm, ns_descriptors)
{
	static const u8 zero[4096];
	struct drv *d = &self->d;
	u8 *b = th_ptr(&self->th, self->page), ns[4096], want[64];
	int round, off;

	for (round = 0; round < 5; round++) {
		th_idns_page(ns, 12);
		if (round == 1)
			memset(ns + 104, 0, 16);	/* no NGUID */
		if (round == 2)
			memset(ns + 120, 0, 8);		/* no EUI64 */
		if (round >= 3) {
			memset(ns + 104, 0, 16);
			memset(ns + 120, 0, 8);
		}
		if (round == 3) {			/* first bytes only */
			ns[104] = 0x01;
			ns[120] = 0x01;
		}
		if (round == 4) {			/* last bytes only */
			ns[119] = 0x80;
			ns[127] = 0x80;
		}
		ASSERT_EQ(0, emu_nvme_load_identify(self->th.ctrl, 0, 0, 1, 1,
						    ns));
		memset(want, 0, sizeof(want));
		off = 0;
		if (round != 2) {
			want[0] = 1;
			want[1] = 8;
			memcpy(want + 4, ns + 120, 8);
			off = 12;
		}
		if (round != 1) {
			want[off] = 2;
			want[off + 1] = 16;
			memcpy(want + off + 4, ns + 104, 16);
			off += 20;
		}
		want[off] = 4;
		want[off + 1] = 1;
		memset(b, 0x5a, 4096);
		EXPECT_EQ(0, adm(d, 0x06, 1, 3, 0, self->page, NULL));
		EXPECT_EQ(0, memcmp(want, b, sizeof(want)))
			TH_LOG("round %d", round);
		EXPECT_EQ(0, memcmp(zero, b + sizeof(want),
				    4096 - sizeof(want)));
	}
}

/*
 * The Error Information log holds ELPE + 1 entries of 64 bytes, at most a
 * page here: with ELPE 255, offset 4032 is its last entry, 4096 beyond it.
 */
TEST_F(adm, error_log_size_follows_elpe)
{
	static const u8 zero[4096];
	struct drv *d = &self->d;
	u8 page[4096], *b = th_ptr(&self->th, self->page);
	u8 sqe[64];
	u64 count;
	int i;

	th_idctrl_page(page);
	page[262] = 255;
	ASSERT_EQ(0, emu_nvme_load_identify(self->th.ctrl, 1, 0, 0, 1, page));
	memset(b, 0x5a, 64);
	drv_sqe(sqe, 0x02, 0);
	drv_set_dw(sqe, 10, (15U << 16) | 0x01);
	drv_set_dw(sqe, 12, 4032);
	drv_set_prp(sqe, self->page, 0);
	EXPECT_EQ(0, drv_admin(d, sqe, NULL));
	EXPECT_EQ(0, b[0]);
	EXPECT_EQ(0, b[63]);
	drv_set_dw(sqe, 12, 4096);
	EXPECT_EQ(DNR | 0x02, drv_admin(d, sqe, NULL));
	/*
	 * The model keeps the newest EMU_NVME_MAX_ERRLOG (4) entries: with
	 * five errors logged, entries 0-3 count down from the newest, the
	 * rest of the 64-entry log is zero (Error Count 0: no entry).
	 */
	for (i = 0; i < 5; i++)
		EXPECT_EQ(DNR | 0x01, adm(d, 0x80, 0, 0, 0, 0, NULL));
	emu_nvme_ns_changed(self->th.ctrl, 1);
	emu_nvme_ns_changed(self->th.ctrl, 5);
	memset(b, 0x5a, 4096);
	drv_set_dw(sqe, 10, (1023U << 16) | 0x01);
	drv_set_dw(sqe, 12, 0);
	EXPECT_EQ(0, drv_admin(d, sqe, NULL));
	count = emu_get_le64(b);
	EXPECT_LE(5, count);
	for (i = 1; i < 4; i++)
		EXPECT_EQ(count - i, emu_get_le64(b + 64 * i));
	EXPECT_EQ(0, memcmp(zero, b + 256, 4096 - 256));
	drv_set_dw(sqe, 10, (15U << 16) | 0x01);
	/* ELPE 3: four entries, 256 bytes */
	page[262] = 3;
	ASSERT_EQ(0, emu_nvme_load_identify(self->th.ctrl, 1, 0, 0, 1, page));
	drv_set_dw(sqe, 12, 192);
	EXPECT_EQ(0, drv_admin(d, sqe, NULL));
	drv_set_dw(sqe, 12, 256);
	EXPECT_EQ(DNR | 0x02, drv_admin(d, sqe, NULL));
}

/* Queue identifier 128, the model's highest, is a queue like any other. */
TEST(highest_queue_id)
{
	static struct th th;
	static struct drv d;
	u64 m;

	th_init(&th, th_seed(0x128));
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 64, 128);
	emu_nvme_start_disabled(th.ctrl);
	ASSERT_EQ(0, drv_attach(&d, &th, 16));
	m = th_alloc(&th, 2 * 4096, 4096);
	ASSERT_EQ(0, adm(&d, 0x09, 0, 0x07, (127U << 16) | 127, 0, NULL));
	EXPECT_EQ(0, adm(&d, 0x05, 0, (15U << 16) | 128, 1, m, NULL));
	EXPECT_EQ(0, adm(&d, 0x01, 0, (15U << 16) | 128, (128U << 16) | 1,
			 m + 4096, NULL));
	EXPECT_EQ(DNR | 0x101, adm(&d, 0x00, 0, 129, 0, 0, NULL));
	EXPECT_EQ(0, adm(&d, 0x00, 0, 128, 0, 0, NULL));
	EXPECT_EQ(DNR | 0x101, adm(&d, 0x00, 0, 128, 0, 0, NULL));
	EXPECT_EQ(0, adm(&d, 0x04, 0, 128, 0, 0, NULL));
	EXPECT_EQ(0, d.errors);
	th_fini(&th);
}

TEST_F(adm, identity_same)
{
	const struct emu_nvme_identity *own = &emu_nvme_state(self->th.ctrl)->id;
	struct emu_nvme_identity *other = malloc(sizeof(*other));
	int i;

	ASSERT_NE(NULL, other);
	*other = *own;
	EXPECT_TRUE(emu_nvme_identity_same(own, other));
	/* Resources are not identity. */
	other->max_sqs++;
	other->nr_vectors++;
	EXPECT_TRUE(emu_nvme_identity_same(own, other));
	/* Pages in another order are the same pages. */
	for (i = 0; i < EMU_NVME_MAX_IDPAGES && own->pages[i].valid; i++)
		;
	ASSERT_GT(i, 1);
	other->pages[0] = own->pages[1];
	other->pages[1] = own->pages[0];
	EXPECT_TRUE(emu_nvme_identity_same(own, other));
	other->pages[0].data[78] ^= 1;	/* CNTLID of another controller */
	EXPECT_FALSE(emu_nvme_identity_same(own, other));
	EXPECT_FALSE(emu_nvme_identity_same(other, own));
	*other = *own;
	other->cap ^= 1;
	EXPECT_FALSE(emu_nvme_identity_same(own, other));
	*other = *own;
	other->pages[i].valid = 1;	/* one page more */
	EXPECT_FALSE(emu_nvme_identity_same(own, other));
	free(other);
}

TEST_F(adm, queue_errors)
{
	struct drv *d = &self->d;
	u64 q = th_alloc(&self->th, 65536, 4096);

	/* Create I/O CQ */
	EXPECT_EQ(DNR | 0x101, adm(d, 0x05, 0, (63 << 16) | 0, 3, q, NULL));
	EXPECT_EQ(DNR | 0x101, adm(d, 0x05, 0, (63 << 16) | 1, 3, q, NULL));
	EXPECT_EQ(DNR | 0x101, adm(d, 0x05, 0, (63 << 16) | 17, 3, q, NULL));
	EXPECT_EQ(DNR | 0x102, adm(d, 0x05, 0, (0 << 16) | 5, 3, q, NULL));
	EXPECT_EQ(DNR | 0x102, adm(d, 0x05, 0, (2048U << 16) | 5, 3, q, NULL));
	EXPECT_EQ(DNR | 0x108, adm(d, 0x05, 0, (63 << 16) | 5,
				   (17U << 16) | 3, q, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x05, 0, (63 << 16) | 5, 2, q, NULL));
	EXPECT_EQ(DNR | 0x13, adm(d, 0x05, 0, (63 << 16) | 5, 3, q + 64,
				  NULL));
	EXPECT_EQ(0, adm(d, 0x05, 0, (63 << 16) | 5, (5U << 16) | 3, q, NULL));
	/* Create I/O SQ */
	EXPECT_EQ(DNR | 0x100, adm(d, 0x01, 0, (63 << 16) | 5, (9U << 16) | 1,
				   q + 8192, NULL));
	EXPECT_EQ(DNR | 0x100, adm(d, 0x01, 0, (63 << 16) | 5, 1, q + 8192,
				   NULL));
	EXPECT_EQ(DNR | 0x101, adm(d, 0x01, 0, (63 << 16) | 0, (5U << 16) | 1,
				   q + 8192, NULL));
	EXPECT_EQ(DNR | 0x101, adm(d, 0x01, 0, (63 << 16) | 1, (5U << 16) | 1,
				   q + 8192, NULL));
	EXPECT_EQ(DNR | 0x102, adm(d, 0x01, 0, (4095U << 16) | 5,
				   (5U << 16) | 1, q + 8192, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x01, 0, (63 << 16) | 5, 5U << 16,
				  q + 8192, NULL));
	EXPECT_EQ(0, adm(d, 0x01, 0, (63 << 16) | 5, (5U << 16) | 1,
			 q + 8192, NULL));
	/* Deletion */
	EXPECT_EQ(DNR | 0x10c, adm(d, 0x04, 0, 5, 0, 0, NULL));
	EXPECT_EQ(DNR | 0x101, adm(d, 0x00, 0, 0, 0, 0, NULL));
	EXPECT_EQ(DNR | 0x101, adm(d, 0x00, 0, 9, 0, 0, NULL));
	EXPECT_EQ(DNR | 0x101, adm(d, 0x04, 0, 0, 0, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x00, 0, 5, 0, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x04, 0, 5, 0, 0, NULL));
	EXPECT_EQ(DNR | 0x101, adm(d, 0x04, 0, 5, 0, 0, NULL));
	/* Number of Queues only before I/O queues exist. */
	EXPECT_EQ(DNR | 0x0c, adm(d, 0x09, 0, 0x07, 0, 0, NULL));
	EXPECT_EQ(0, d->errors);
}

TEST_F(adm, delete_sq_waits_for_backend)
{
	struct drv *d = &self->d;
	u8 sqe[64];
	int cid, del;

	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, self->page, 0);
	cid = drv_submit(d, 2, sqe);
	emu_nvme_poll(self->th.ctrl, 8);
	ASSERT_EQ(1, self->th.npend);
	drv_sqe(sqe, 0x00, 0);
	drv_set_dw(sqe, 10, 2);
	del = drv_submit(d, 0, sqe);
	emu_nvme_poll(self->th.ctrl, 8);
	drv_reap(d, 0);
	EXPECT_EQ(0, d->q[0].cmd[del].done);
	th_run_backend(&self->th, 1);
	drv_reap(d, 2);
	drv_reap(d, 0);
	EXPECT_EQ(1, d->q[2].cmd[cid].done);
	EXPECT_EQ(1, d->q[0].cmd[del].done);
	EXPECT_EQ(0, d->q[0].cmd[del].status);
	EXPECT_EQ(0, emu_nvme_state(self->th.ctrl)->sq[2].valid);
}

TEST_F(adm, features)
{
	struct drv *d = &self->d;
	u64 p = self->page;
	u8 *b = th_ptr(&self->th, p);
	u32 dw0 = 0;
	int i;

	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x06, 0, 0, &dw0));
	EXPECT_EQ(1, dw0);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x04, (1U << 20) | 250, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x04, 1U << 20, 0, &dw0));
	EXPECT_EQ(250, dw0 & 0xffff);
	EXPECT_EQ(DNR | 0x02, adm(d, 0x09, 0, 0x04, 9U << 16, 0, NULL));
	EXPECT_EQ(DNR | 0x10d, adm(d, 0x09, 0, 0x80000001, 0, 0, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x09, 0, 0x0d, 0, 0, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x09, 0, 0x0c, 1, p, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x09, 0, 0x09, 40, 0, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x0a, 0, 0x09, 40, 0, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x09, 0, 0x05, 1U << 16, 0, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x09, 0, 0x02, 5, 0, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x0a, 0, 0x401, 0, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x301, 0, 0, &dw0));
	EXPECT_EQ(4, dw0);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x07, 0, 0, &dw0));
	EXPECT_EQ(0x000f000f, dw0);
	/* Simple dword features round-trip. */
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x01, 0x03020107, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x01, 0, 0, &dw0));
	EXPECT_EQ(0x03020107, dw0);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x0f, 5000, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x0f, 0, 0, &dw0));
	EXPECT_EQ(5000, dw0);
	/* Write Atomicity Normal: DN (bit 0) only, and it reads back. */
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x0a, 1, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x0a, 0, 0, &dw0));
	EXPECT_EQ(1, dw0);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x0a, 0, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x0a, 0, 0, &dw0));
	EXPECT_EQ(0, dw0);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x0a, 1, 0, NULL));
	/*
	 * Temperature Threshold: sensors are 0 (composite) to 8, TMPSEL 9 is
	 * reserved, THSEL 2 and 3 too: Invalid Field both ways.
	 */
	EXPECT_EQ(DNR | 0x02, adm(d, 0x0a, 0, 0x04, 9U << 16, 0, &dw0));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x0a, 0, 0x04, 2U << 20, 0, &dw0));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x09, 0, 0x04, 2U << 20, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x04, (8U << 16) | (1U << 20), 0, &dw0));
	EXPECT_EQ((8U << 16) | (1U << 20), dw0);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x11, 1, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x80, 3, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x80, 0, 0, &dw0));
	EXPECT_EQ(3, dw0);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x06, 0, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x06, 0, 0, &dw0));
	EXPECT_EQ(0, dw0);
	/* Timestamp: data in, time moves on. */
	memset(b, 0, 8);
	emu_put_le64(b, 1000000);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x0e, 0, p, NULL));
	memset(b, 0, 8);
	self->th.now += 5000000000ULL;
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x0e, 0, p, NULL));
	/* the test clock is exact: 1000 s + 5000 ms, origin 001b, Synch 0 */
	EXPECT_EQ(1005000ULL, emu_get_le64(b) & 0xffffffffffffULL);
	EXPECT_EQ(2, b[6]);
	EXPECT_EQ(0, b[7]);
	/*
	 * Host Behavior Support data round-trip. Bytes 511:16 are reserved
	 * (NVMe 2.0, Host Behavior Support data structure) and the model
	 * keeps 16 bytes: whatever the host wrote there reads back as 0h,
	 * up to the last byte of the 512.
	 */
	memset(b, 0, 512);
	memset(b + 16, 0xff, 512 - 16);
	b[0] = 1;
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x16, 0, p, NULL));
	memset(b, 0x5a, 512);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x16, 0, p, NULL));
	EXPECT_EQ(1, b[0]);
	for (i = 16; i < 512; i++)
		if (b[i])
			break;
	EXPECT_EQ(512, i);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x09, (1U << 16) | 2, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x09, 2, 0, &dw0));
	EXPECT_EQ((1U << 16) | 2, dw0);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x02, 0, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x05, 100, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x05, 0, 0, &dw0));
	EXPECT_EQ(100, dw0);
}

/*
 * Get Features SEL: 000b current, 001b default, 010b saved (nothing is
 * saveable, so the default), 011b capabilities: bit 0 saveable, bit 1
 * namespace specific, bit 2 changeable.
 */
TEST_F(adm, features_select)
{
	struct drv *d = &self->d;
	u64 p = self->page;
	u8 *b = th_ptr(&self->th, p);
	u32 dw0 = 0, sel, over0 = 0;

	/* the threshold a reset leaves (the model's own choice) */
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x04, 0, 0, &over0));
	EXPECT_NE(300, over0);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x01, 0x03020107, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x08, 0x0107, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x04, 300, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x09, (1U << 16) | 2, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x0f, 5000, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x01, 0, 0, &dw0));
	EXPECT_EQ(0x03020107, dw0);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x04, 0, 0, &dw0));
	EXPECT_EQ(300, dw0);
	for (sel = 1; sel <= 2; sel++) {
		dw0 = 0xdead;
		EXPECT_EQ(0, adm(d, 0x0a, 0, (sel << 8) | 0x01, 0, 0, &dw0));
		EXPECT_EQ(0, dw0);
		dw0 = 0xdead;
		EXPECT_EQ(0, adm(d, 0x0a, 0, (sel << 8) | 0x08, 0, 0, &dw0));
		EXPECT_EQ(0, dw0);
		dw0 = 0xdead;
		EXPECT_EQ(0, adm(d, 0x0a, 0, (sel << 8) | 0x0f, 0, 0, &dw0));
		EXPECT_EQ(0, dw0);
		/* composite over-temperature: what a reset leaves */
		EXPECT_EQ(0, adm(d, 0x0a, 0, (sel << 8) | 0x04, 0, 0, &dw0));
		EXPECT_EQ(over0, dw0);
		/* vector 2: coalescing not disabled, the vector itself */
		EXPECT_EQ(0, adm(d, 0x0a, 0, (sel << 8) | 0x09, 2, 0, &dw0));
		EXPECT_EQ(2, dw0);
		/* Number of Queues: what the identity offers (16 and 16) */
		EXPECT_EQ(0, adm(d, 0x0a, 0, (sel << 8) | 0x07, 0, 0, &dw0));
		EXPECT_EQ(0x000f000f, dw0);
	}
	/* the current values are untouched by reading the defaults */
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x08, 0, 0, &dw0));
	EXPECT_EQ(0x0107, dw0);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x09, 2, 0, &dw0));
	EXPECT_EQ((1U << 16) | 2, dw0);
	/* Timestamp: set, then its default is zero with origin 000b. */
	memset(b, 0, 8);
	emu_put_le64(b, 1000000);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x0e, 0, p, NULL));
	memset(b, 0xff, 8);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x10e, 0, p, NULL));
	EXPECT_EQ(0ULL, emu_get_le64(b));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x00e, 0, p, NULL));
	EXPECT_EQ(1000000ULL, emu_get_le64(b) & 0xffffffffffffULL);
	EXPECT_EQ(2, b[6]);
	/* capabilities: changeable, not saveable, none namespace specific */
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x301, 0, 0, &dw0));
	EXPECT_EQ(4, dw0);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x304, 0, 0, &dw0));
	EXPECT_EQ(4, dw0);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x309, 1, 0, &dw0));
	EXPECT_EQ(4, dw0);
	EXPECT_EQ(DNR | 0x02, adm(d, 0x0a, 0, 0x401, 0, 0, NULL));
}

TEST_F(adm, log_pages)
{
	struct drv *d = &self->d;
	u64 p = self->page;
	u8 *b = th_ptr(&self->th, p);
	u32 over = 0;
	u16 temp;
	u8 crit;
	int aer;

	EXPECT_EQ(0, adm(d, 0x02, 0xffffffff, (127U << 16) | 0x02, 0, p,
			 NULL));
	/*
	 * Available Spare and its threshold are percentages (0-100, NVMe
	 * 2.0 SMART / Health log bytes 3 and 4); the values are the
	 * model's own, the relations are the specification's: critical
	 * warning bit 0 is set exactly when the spare is below its
	 * threshold, bit 1 exactly when the composite temperature (bytes
	 * 1-2, in kelvins) is at or over its over-temperature threshold.
	 */
	EXPECT_LE(b[3], 100);
	EXPECT_LE(b[4], 100);
	EXPECT_EQ(b[3] < b[4], b[0] & 1);
	temp = (u16)(b[1] | b[2] << 8);
	crit = b[0];
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x04, 0, 0, &over));
	EXPECT_GT(temp, 0);
	EXPECT_EQ(temp >= (over & 0xffff), !!(crit & 2));
	/*
	 * Crossing a threshold is a SMART / Health event, Temperature
	 * Threshold (information 01h, log 02h), when AEC bit 1 (the
	 * Critical Warning's temperature bit) enables it, not bit 0.
	 */
	ASSERT_EQ(1, d->aer_outstanding);
	aer = d->aer_done;
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x0b, 0x1, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x04, temp, 0, NULL));
	drv_reap(d, 0);
	EXPECT_EQ(aer, d->aer_done);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x04, over & 0xffff, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x0b, 0x2, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x04, temp, 0, NULL));
	drv_reap(d, 0);
	EXPECT_EQ(aer + 1, d->aer_done);
	EXPECT_EQ(0x020101, d->aer_dw0);
	EXPECT_EQ(0, adm(d, 0x02, 0xffffffff, (127U << 16) | 0x02, 0, p,
			 NULL));
	EXPECT_EQ(2, b[0] & 2);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x04, over & 0xffff, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x02, 0xffffffff, (127U << 16) | 0x02, 0, p,
			 NULL));
	EXPECT_EQ(crit, b[0]);
	EXPECT_EQ(0, adm(d, 0x02, 0, (127U << 16) | 0x03, 0, p, NULL));
	EXPECT_EQ(0, memcmp(b + 8, "10.0.0  ", 8));
	EXPECT_EQ(0, adm(d, 0x02, 0, (1023U << 16) | 0x05, 0, p, NULL));
	EXPECT_EQ(1, emu_get_le32(b + 4 * 0x06));
	EXPECT_EQ(3, emu_get_le32(b + 1024 + 4 * 0x01));
	EXPECT_EQ(DNR | 0x109, adm(d, 0x02, 0, (127U << 16) | 0x70, 0, p,
				   NULL));
	/* Offset beyond the log, misaligned offset, too long. */
	{
		u8 sqe[64];

		drv_sqe(sqe, 0x02, 0);
		drv_set_dw(sqe, 10, (127U << 16) | 0x02);
		drv_set_dw(sqe, 12, 512);
		drv_set_prp(sqe, p, 0);
		EXPECT_EQ(DNR | 0x02, drv_admin(d, sqe, NULL));
		drv_set_dw(sqe, 12, 2);
		EXPECT_EQ(DNR | 0x02, drv_admin(d, sqe, NULL));
		drv_set_dw(sqe, 12, 0);
		drv_set_dw(sqe, 11, 1);
		EXPECT_EQ(DNR | 0x02, drv_admin(d, sqe, NULL));
	}
	/* The errors above went to the error log. */
	EXPECT_EQ(0, adm(d, 0x02, 0, (63U << 16) | 0x01, 0, p, NULL));
	EXPECT_GE(emu_get_le64(b), 3ULL);
	EXPECT_EQ(0, emu_get_le16(b + 8));
}

TEST_F(adm, async_events)
{
	struct drv *d = &self->d;
	u64 p = self->page;
	u8 sqe[64];
	u32 dw0;
	int i;

	ASSERT_EQ(1, d->aer_outstanding);
	emu_nvme_ns_changed(self->th.ctrl, 1);
	drv_reap(d, 0);
	EXPECT_EQ(1, d->aer_done);
	EXPECT_EQ(0x040002, d->aer_dw0);
	/* Re-arm; a second notice stays masked until the log is read. */
	ASSERT_EQ(0, drv_aer_arm(d));
	emu_nvme_ns_changed(self->th.ctrl, 1);
	emu_nvme_poll(self->th.ctrl, 8);
	drv_reap(d, 0);
	EXPECT_EQ(1, d->aer_done);
	EXPECT_EQ(0, adm(d, 0x02, 0, (1023U << 16) | 0x04, 0, p, NULL));
	EXPECT_EQ(1, emu_get_le32(th_ptr(&self->th, p)));
	emu_nvme_poll(self->th.ctrl, 8);
	drv_reap(d, 0);
	EXPECT_EQ(2, d->aer_done);
	/* Invalid doorbells report an error event. */
	drv_sqe(sqe, 0x0c, 0);
	ASSERT_GE(drv_submit_cid(d, 0, sqe, d->aer_cid), 0);
	emu_nvme_poll(self->th.ctrl, 8);
	emu_nvme_doorbell_write(self->th.ctrl, 0x1000 + 8 * 9, 1);
	drv_reap(d, 0);
	EXPECT_EQ(3, d->aer_done);
	EXPECT_EQ(0x010000, d->aer_dw0);
	EXPECT_EQ(0, adm(d, 0x02, 0, (63U << 16) | 0x01, 0, p, NULL));
	ASSERT_GE(drv_submit_cid(d, 0, sqe, d->aer_cid), 0);
	emu_nvme_poll(self->th.ctrl, 8);
	emu_nvme_doorbell_write(self->th.ctrl, 0x1000 + 8 * 1, 64);
	drv_reap(d, 0);
	EXPECT_EQ(4, d->aer_done);
	EXPECT_EQ(0x010100, d->aer_dw0);
	/*
	 * A CQ head beyond its queue: Invalid Doorbell Write Value too (the
	 * admin CQ's, a register write even with shadow doorbells).
	 */
	EXPECT_EQ(0, adm(d, 0x02, 0, (63U << 16) | 0x01, 0, p, NULL));
	ASSERT_GE(drv_submit_cid(d, 0, sqe, d->aer_cid), 0);
	emu_nvme_poll(self->th.ctrl, 8);
	emu_nvme_doorbell_write(self->th.ctrl, 0x1000 + 4,
				emu_nvme_state(self->th.ctrl)->cq[0].size);
	drv_reap(d, 0);
	EXPECT_EQ(5, d->aer_done);
	EXPECT_EQ(0x010100, d->aer_dw0);
	/* AERL is 3: the fifth outstanding request is refused. */
	for (i = 0; i < 4; i++) {
		ASSERT_GE(drv_submit_cid(d, 0, sqe, (u16)(900 + i)), 0);
	}
	ASSERT_GE(drv_submit_cid(d, 0, sqe, 904), 0);
	emu_nvme_poll(self->th.ctrl, 16);
	drv_reap(d, 0);
	EXPECT_EQ(DNR | 0x105, d->q[0].cmd[904].status);
	/*
	 * Abort cannot recall a backend request: success, with Dword 0 bit 0
	 * set, the Abort command's "command not aborted" (NVMe Base, Abort
	 * command, completion queue entry Dword 0).
	 */
	dw0 = 0;
	EXPECT_EQ(0, adm(d, 0x08, 0, (5U << 16) | 1, 0, 0, &dw0));
	EXPECT_EQ(1, dw0 & 1);
	EXPECT_EQ(0, adm(d, 0x18, 0, 0, 0, 0, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x7c, 0, 0, 0, 0, NULL));
}

/*
 * With shadow doorbells the glue hands register writes over after the fact:
 * one older than what the shadow buffer already said is no error and does
 * not move the queue back.
 */
TEST_F(adm, register_doorbell_behind_shadow)
{
	struct drv *d = &self->d;
	u64 p = th_alloc(&self->th, 4096, 4096);
	int aers = d->aer_done;
	u8 sqe[64];
	int i;

	ASSERT_EQ(1, d->aer_outstanding);
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, p, 0);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, io(d, 1, sqe));
	/* SQ 1 tail and CQ 1 head as they were before the last command. */
	emu_nvme_doorbell_write(self->th.ctrl, 0x1000 + 8 * 1, 2);
	emu_nvme_doorbell_write(self->th.ctrl, 0x1000 + 8 * 1 + 4, 2);
	emu_nvme_poll(self->th.ctrl, 8);
	drv_reap(d, 0);
	EXPECT_EQ(aers, d->aer_done) TH_LOG("an error event for a stale doorbell");
	EXPECT_EQ(1, d->aer_outstanding);
	/* Nothing is run twice and the queue goes on. */
	EXPECT_EQ(0, io(d, 1, sqe));
	EXPECT_EQ(0, drv_drain(d, 100));
}

static u64 smart_u64(struct drv *d, u64 p, u8 *b, int off)
{
	memset(b, 0, 512);
	if (adm(d, 0x02, 0xffffffff, (127U << 16) | 0x02, 0, p, NULL))
		return ~0ULL;
	return emu_get_le64(b + off);
}

/* SMART / Health: Host Write Commands counts writes, not reads. */
TEST_F(adm, smart_counts_commands)
{
	struct drv *d = &self->d;
	u64 p = self->page, data = th_alloc(&self->th, 4096, 4096);
	u8 *b = th_ptr(&self->th, p), sqe[64];
	u64 w0 = smart_u64(d, p, b, 80), r0 = smart_u64(d, p, b, 64);
	int i;

	for (i = 0; i < 3; i++) {
		drv_sqe(sqe, 0x01, 1);
		drv_set_dw(sqe, 10, (u32)i);
		drv_set_prp(sqe, data, 0);
		EXPECT_EQ(0, io(d, 1, sqe));
	}
	EXPECT_EQ(w0 + 3, smart_u64(d, p, b, 80));
	EXPECT_EQ(r0, smart_u64(d, p, b, 64));
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, data, 0);
	EXPECT_EQ(0, io(d, 1, sqe));
	EXPECT_EQ(w0 + 3, smart_u64(d, p, b, 80));
	EXPECT_EQ(r0 + 1, smart_u64(d, p, b, 64));
	EXPECT_EQ(0, d->errors);
}

/*
 * SMART / Health: Data Units Read/Written are thousands of 512-byte units,
 * rounded up (NVMe 2.0, SMART / Health Information log, bytes 32-63): one
 * for 1 to 1000 units, two for 1001 to 2000. The namespace has 4 KiB
 * blocks: a one-block command moves 8 units.
 */
TEST_F(adm, smart_data_units_in_thousands_rounded_up)
{
	struct drv *d = &self->d;
	u64 p = self->page, data = th_alloc(&self->th, 4096, 4096);
	u8 *b = th_ptr(&self->th, p), sqe[64];
	int i;

	ASSERT_EQ(12, (int)self->th.lba_shift);
	EXPECT_EQ(0, smart_u64(d, p, b, 48));
	EXPECT_EQ(0, smart_u64(d, p, b, 32));
	for (i = 1; i <= 126; i++) {
		drv_sqe(sqe, 0x01, 1);
		drv_set_dw(sqe, 10, (u32)i);
		drv_set_prp(sqe, data, 0);
		ASSERT_EQ(0, io(d, 1, sqe));
		if (i == 1 || i == 125)	/* 8 and 1000 units */
			EXPECT_EQ(1, smart_u64(d, p, b, 48)) TH_LOG("after %d writes", i);
	}
	EXPECT_EQ(2, smart_u64(d, p, b, 48));	/* 1008 units */
	EXPECT_EQ(0, smart_u64(d, p, b, 32));
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, data, 0);
	ASSERT_EQ(0, io(d, 1, sqe));
	EXPECT_EQ(1, smart_u64(d, p, b, 32));
	EXPECT_EQ(0, d->errors);
}

TEST_F(adm, io_errors)
{
	struct drv *d = &self->d;
	u64 p = th_alloc(&self->th, 1 << 20, 4096);
	u8 sqe[64], *s;
	static u8 idp[4096];

	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, 0x100, 0);
	EXPECT_EQ(DNR | 0x04, io(d, 1, sqe));
	drv_set_prp(sqe, p + 2, 0);
	EXPECT_EQ(DNR | 0x13, io(d, 1, sqe));
	drv_set_dw(sqe, 12, 1);
	drv_set_prp(sqe, p, p + 8);
	EXPECT_EQ(DNR | 0x13, io(d, 1, sqe));
	drv_set_dw(sqe, 12, 3);
	drv_set_prp(sqe, p, p + 4);
	EXPECT_EQ(DNR | 0x13, io(d, 1, sqe));
	emu_put_le64(th_ptr(&self->th, p + 8192), p + 1);
	drv_set_prp(sqe, p, p + 8192);
	EXPECT_EQ(DNR | 0x13, io(d, 1, sqe));
	/* A PRP list chained from the last slot of a page. */
	emu_put_le64(th_ptr(&self->th, p + 16384 - 16), p + 4096);
	emu_put_le64(th_ptr(&self->th, p + 16384 - 8), p + 20480);
	emu_put_le64(th_ptr(&self->th, p + 20480), p + 8192);
	emu_put_le64(th_ptr(&self->th, p + 20488), p + 12288);
	drv_set_prp(sqe, p, p + 16384 - 16);
	EXPECT_EQ(0, io(d, 1, sqe));
	/* A list chaining to itself ends, with an error. */
	emu_put_le64(th_ptr(&self->th, p + 24576 - 8), p + 24576 - 8);
	drv_set_dw(sqe, 12, 2);
	drv_set_prp(sqe, p, p + 24576 - 8);
	EXPECT_EQ(DNR | 0x13, io(d, 1, sqe));
	drv_set_dw(sqe, 12, 0);
	drv_set_prp(sqe, p, 0);
	drv_set_dw(sqe, 10, TH_NS_BLOCKS);
	EXPECT_EQ(DNR | 0x80, io(d, 1, sqe));
	drv_set_dw(sqe, 10, 0);
	drv_set_dw(sqe, 11, 1);
	EXPECT_EQ(DNR | 0x80, io(d, 1, sqe));
	drv_set_dw(sqe, 11, 0);
	drv_set_dw(sqe, 12, 128);
	EXPECT_EQ(DNR | 0x02, io(d, 1, sqe));
	drv_set_dw(sqe, 12, 0);
	sqe[1] = 1;
	EXPECT_EQ(DNR | 0x02, io(d, 1, sqe));
	sqe[1] = 0xc0;
	EXPECT_EQ(DNR | 0x02, io(d, 1, sqe));
	sqe[1] = 0;
	emu_put_le32(sqe + 4, 2);
	EXPECT_EQ(DNR | 0x0b, io(d, 1, sqe));
	emu_put_le32(sqe + 4, 1);
	sqe[0] = 0x7f;
	EXPECT_EQ(DNR | 0x01, io(d, 1, sqe));
	sqe[0] = 0x00;
	emu_put_le32(sqe + 4, 3);
	EXPECT_EQ(DNR | 0x0b, io(d, 1, sqe));
	emu_put_le32(sqe + 4, 0xffffffff);
	EXPECT_EQ(0, io(d, 1, sqe));
	/* SGL: bit bucket only for reads; too short; bad types. */
	drv_sqe(sqe, 0x01, 1);
	drv_map_sgl(d, sqe, p, 4096, 2);
	s = th_ptr(&self->th, emu_get_le64(sqe + 24));
	s[15] = 0x10;
	EXPECT_EQ(DNR | 0x11, io(d, 1, sqe));
	sqe[0] = 0x02;
	/* SGLS 0x80001 (QEMU's) lacks bit 16: no bit bucket at all */
	EXPECT_EQ(DNR | 0x11, io(d, 1, sqe));
	th_idctrl_page(idp);
	emu_put_le32(idp + 536, 0x90001);
	ASSERT_EQ(0, emu_nvme_load_identify(self->th.ctrl, 1, 0, 0, 1, idp));
	EXPECT_EQ(0, io(d, 1, sqe));
	sqe[0] = 0x01;
	EXPECT_EQ(DNR | 0x11, io(d, 1, sqe));
	sqe[0] = 0x02;
	s[15] = 0x50;
	EXPECT_EQ(DNR | 0x11, io(d, 1, sqe));
	s[15] = 0x01;
	EXPECT_EQ(DNR | 0x11, io(d, 1, sqe));
	s[15] = 0;
	emu_put_le32(s + 8, 100);
	EXPECT_EQ(DNR | 0x0f, io(d, 1, sqe));
	emu_put_le32(s + 8, 2048);
	s[16 + 15] = 0x30;
	EXPECT_EQ(DNR | 0x0d, io(d, 1, sqe));
	emu_put_le32(sqe + 32, 17);
	EXPECT_EQ(DNR | 0x0e, io(d, 1, sqe));
	emu_put_le32(sqe + 32, 16 * 2);
	emu_put_le64(sqe + 24, 0x200);
	EXPECT_EQ(DNR | 0x04, io(d, 1, sqe));
	/* A segment chained to a last segment, and an inline data block. */
	drv_sqe(sqe, 0x02, 1);
	drv_map_sgl(d, sqe, p, 8192, 2);
	s = th_ptr(&self->th, emu_get_le64(sqe + 24));
	{
		u64 seg2 = th_alloc(&self->th, 64, 16);
		u8 *s2 = th_ptr(&self->th, seg2);

		memcpy(s2, s + 16, 16);
		emu_put_le64(s + 16, seg2);
		emu_put_le32(s + 24, 16);
		s[31] = 0x30;
		sqe[39] = 0x20;
		drv_set_dw(sqe, 12, 1);
		EXPECT_EQ(0, io(d, 1, sqe));
	}
	drv_sqe(sqe, 0x02, 1);
	sqe[1] = 0x40;
	emu_put_le64(sqe + 24, p);
	emu_put_le32(sqe + 32, 4096);
	EXPECT_EQ(0, io(d, 1, sqe));
	emu_put_le32(sqe + 32, 4000);
	EXPECT_EQ(DNR | 0x0f, io(d, 1, sqe));
	sqe[39] = 0x70;
	EXPECT_EQ(DNR | 0x11, io(d, 1, sqe));
	EXPECT_EQ(0, d->errors);
}

TEST_F(adm, large_chained_prp_list)
{
	struct drv *d = &self->d;
	u64 data = th_alloc(&self->th, 128 * 4096, 4096);
	u64 back = th_alloc(&self->th, 128 * 4096, 4096);
	u64 lists = th_alloc(&self->th, 3 * 4096, 4096);
	u64 l1 = lists + 4096 - 8 * 60, l2 = lists + 8192;
	u8 sqe[64], *m = th_ptr(&self->th, data);
	u32 i, k = 0;

	for (i = 0; i < 128 * 4096; i++)
		m[i] = (u8)(i * 7 + (i >> 12));
	/* 127 list entries: 59 in a page tail, a chain, 68 in the next. */
	for (i = 1; i < 128; i++) {
		if (k == 59 && l1 != l2) {
			emu_put_le64(th_ptr(&self->th, l1 + 8 * k), l2);
			k = 0;
			l1 = l2;
		}
		emu_put_le64(th_ptr(&self->th, l1 + 8 * k++), data + 4096ULL * i);
	}
	drv_sqe(sqe, 0x01, 1);
	drv_set_dw(sqe, 10, 100);
	drv_set_dw(sqe, 12, 127);
	drv_set_prp(sqe, data, lists + 4096 - 8 * 60);
	EXPECT_EQ(0, io(d, 1, sqe));
	drv_sqe(sqe, 0x02, 1);
	drv_set_dw(sqe, 10, 100);
	drv_set_dw(sqe, 12, 127);
	drv_map_prp(d, sqe, back, 128 * 4096);
	EXPECT_EQ(0, io(d, 1, sqe));
	EXPECT_EQ(0, memcmp(m, th_ptr(&self->th, back), 128 * 4096));
	EXPECT_EQ(0, memcmp(m, self->th.disk + 100 * 4096, 128 * 4096));
}

/*
 * PRP lists that end at the last slot of a list page. NVMe 2.0 §4.1.1: the
 * last entry of a list page points to the next list page only when more
 * than one entry is still needed; when exactly one is, that slot is data.
 * An entry that is neither the first PRP entry nor the list pointer in the
 * command has a page offset of 0h, else Invalid PRP Offset (13h); memory
 * the controller cannot reach is a Data Transfer Error (04h). MDTS 10
 * (4 MiB at 4 KiB pages) lets one command fill a whole list page.
 */
#define PG 4096ULL
#define FULL (1 + 512)		/* PRP1 and one full list page */

struct prp {
	struct th th;
	struct drv d;
	u64 src, back, l1, l2;
	u8 *m;
};

static int prp_start(struct prp *t)
{
	static u8 page[4096];
	const struct emu_nvme_state *st;
	u32 i;

	th_init(&t->th, th_seed(0x9e9));
	th_new_ctrl(&t->th);
	th_load_identity(&t->th, 12, 2048, 16);
	st = emu_nvme_state(t->th.ctrl);
	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++)
		if (st->id.pages[i].valid && st->id.pages[i].cns == 1)
			memcpy(page, st->id.pages[i].data, sizeof(page));
	page[77] = 10;
	if (emu_nvme_load_identify(t->th.ctrl, 1, 0, 0, 1, page))
		return -1;
	emu_nvme_start_disabled(t->th.ctrl);
	memset(&t->d, 0, sizeof(t->d));
	t->d.th = &t->th;
	if (drv_enable(&t->d, 32) || drv_bringup(&t->d, 1, 64, 0, 1))
		return -1;
	t->src = th_alloc(&t->th, (FULL + 1) * PG, PG);
	t->back = th_alloc(&t->th, (FULL + 1) * PG, PG);
	t->l1 = th_alloc(&t->th, PG, PG);
	t->l2 = th_alloc(&t->th, PG, PG);
	t->m = th_ptr(&t->th, t->src);
	for (i = 0; i < (FULL + 1) * PG; i++)
		t->m[i] = (u8)(i * 13 + (i >> 12) * 101 + 1);
	return 0;
}

static void prp_ent(struct prp *t, u64 list, u32 slot, u64 v)
{
	emu_put_le64(th_ptr(&t->th, list + 8 * slot), v);
}

/* One command of npg 4 KiB blocks at LBA 64, PRP1 at the base. */
static int prp_io(struct prp *t, u8 opc, u64 base, u64 prp2, u32 npg)
{
	u8 sqe[64];

	drv_sqe(sqe, opc, 1);
	drv_set_dw(sqe, 10, 64);
	drv_set_dw(sqe, 12, npg - 1);
	drv_set_prp(sqe, base, prp2);
	return io(&t->d, 1, sqe);
}

/* Transfer page k of the read-back lands at this page: scattered. */
static u64 prp_back(struct prp *t, u32 k)
{
	return t->back + PG * ((k * 7) % FULL);
}

TEST(prp_list_last_slot_is_data_when_the_page_is_full)
{
	static struct prp t;
	u8 sqe[64];
	u32 k;

	ASSERT_EQ(0, prp_start(&t));
	/* Write: slots 0..511 of one list page are all data, slot 511 too. */
	for (k = 1; k < FULL; k++)
		prp_ent(&t, t.l1, k - 1, t.src + PG * k);
	EXPECT_EQ(0, prp_io(&t, 0x01, t.src, t.l1, FULL));
	EXPECT_EQ(0, memcmp(t.m, t.th.disk + 64 * PG, FULL * PG));
	/* Read back through a list whose pages are out of order. */
	for (k = 1; k < FULL; k++)
		prp_ent(&t, t.l2, k - 1, prp_back(&t, k));
	EXPECT_EQ(0, prp_io(&t, 0x02, prp_back(&t, 0), t.l2, FULL));
	for (k = 0; k < FULL; k++)
		EXPECT_EQ(0, memcmp(t.m + PG * k, th_ptr(&t.th, prp_back(&t, k)), PG)) {
			TH_LOG("transfer page %u (list slot %u) misplaced", k, k - 1);
		}
	/* The test driver's own mapping of this size agrees. */
	memset(th_ptr(&t.th, t.back), 0, FULL * PG);
	drv_sqe(sqe, 0x02, 1);
	drv_set_dw(sqe, 10, 64);
	drv_set_dw(sqe, 12, FULL - 1);
	drv_map_prp(&t.d, sqe, t.back, FULL * PG);
	EXPECT_EQ(0, io(&t.d, 1, sqe));
	EXPECT_EQ(0, memcmp(t.m, th_ptr(&t.th, t.back), FULL * PG));
	EXPECT_EQ(0, t.d.errors);
	th_fini(&t.th);
}

TEST(prp_list_last_slot_chains_when_two_entries_remain)
{
	static struct prp t;
	u8 sqe[64];
	u32 k;

	ASSERT_EQ(0, prp_start(&t));
	/* FULL + 1 pages: 511 data slots, the chain, two slots after it. */
	for (k = 1; k < FULL - 1; k++)
		prp_ent(&t, t.l1, k - 1, t.src + PG * k);
	prp_ent(&t, t.l1, 511, t.l2);
	prp_ent(&t, t.l2, 0, t.src + PG * (FULL - 1));
	prp_ent(&t, t.l2, 1, t.src + PG * FULL);
	/* Entries past the transfer are never used, whatever they hold. */
	prp_ent(&t, t.l2, 2, 0x3);
	EXPECT_EQ(0, prp_io(&t, 0x01, t.src, t.l1, FULL + 1));
	EXPECT_EQ(0, memcmp(t.m, t.th.disk + 64 * PG, (FULL + 1) * PG));
	drv_sqe(sqe, 0x02, 1);
	drv_set_dw(sqe, 10, 64);
	drv_set_dw(sqe, 12, FULL);
	drv_map_prp(&t.d, sqe, t.back, (FULL + 1) * PG);
	EXPECT_EQ(0, io(&t.d, 1, sqe));
	EXPECT_EQ(0, memcmp(t.m, th_ptr(&t.th, t.back), (FULL + 1) * PG));
	EXPECT_EQ(0, t.d.errors);
	th_fini(&t.th);
}

TEST(prp_list_last_slot_misuse)
{
	static struct prp t;
	u8 *l2;
	u32 k;

	ASSERT_EQ(0, prp_start(&t));
	l2 = th_ptr(&t.th, t.l2);
	for (k = 1; k < FULL - 1; k++)
		prp_ent(&t, t.l1, k - 1, t.src + PG * k);
	/* A chain pointer with an offset: 13h, nothing written. */
	memset(t.th.disk + 64 * PG, 0, (FULL + 1) * PG);
	prp_ent(&t, t.l1, 511, t.l2 + 8);
	prp_ent(&t, t.l2, 1, t.src + PG * (FULL - 1));
	prp_ent(&t, t.l2, 2, t.src + PG * FULL);
	EXPECT_EQ(DNR | 0x13, prp_io(&t, 0x01, t.src, t.l1, FULL + 1));
	/* A chain pointer to memory the controller cannot reach: 04h. */
	prp_ent(&t, t.l1, 511, 0x1000);
	EXPECT_EQ(DNR | 0x04, prp_io(&t, 0x01, t.src, t.l1, FULL + 1));
	/* A data pointer in the last slot that cannot be reached: 04h. */
	EXPECT_EQ(DNR | 0x04, prp_io(&t, 0x01, t.src, t.l1, FULL));
	/* ... or with an offset: 13h. */
	prp_ent(&t, t.l1, 511, t.src + PG * (FULL - 1) + 512);
	EXPECT_EQ(DNR | 0x13, prp_io(&t, 0x01, t.src, t.l1, FULL));
	/*
	 * A list that chains where exactly one entry remains runs past the
	 * transfer: the controller takes the last slot as data, as the spec
	 * says, so a read lands in the would-be next list page.
	 */
	prp_ent(&t, t.l1, 511, t.src + PG * (FULL - 1));
	ASSERT_EQ(0, prp_io(&t, 0x01, t.src, t.l1, FULL));
	prp_ent(&t, t.l1, 511, t.l2);
	prp_ent(&t, t.l2, 0, t.back);
	EXPECT_EQ(0, prp_io(&t, 0x02, t.src, t.l1, FULL));
	EXPECT_EQ(0, memcmp(l2, t.m + PG * (FULL - 1), PG));
	EXPECT_EQ(0, t.d.errors);
	th_fini(&t.th);
}

TEST_F(adm, backend_errors_and_compare)
{
	struct drv *d = &self->d;
	u64 p = th_alloc(&self->th, 8192, 4096);
	u8 sqe[64], *r;

	memset(th_ptr(&self->th, p), 0x5a, 4096);
	drv_sqe(sqe, 0x01, 1);
	drv_set_dw(sqe, 10, 7);
	drv_set_prp(sqe, p, 0);
	EXPECT_EQ(0, io(d, 1, sqe));
	sqe[0] = 0x05;
	EXPECT_EQ(0, io(d, 1, sqe));
	((u8 *)th_ptr(&self->th, p))[100] ^= 1;
	EXPECT_EQ(DNR | 0x285, io(d, 1, sqe));
	self->th.fail_next = -EIO;
	sqe[0] = 0x02;
	EXPECT_EQ(0x281, io(d, 1, sqe));
	self->th.fail_next = -EIO;
	sqe[0] = 0x01;
	EXPECT_EQ(0x280, io(d, 1, sqe));
	self->th.fail_next = -ENOSPC;
	EXPECT_EQ(0x81, io(d, 1, sqe));
	self->th.fail_next = -ENOMEM;
	EXPECT_EQ(0x06, io(d, 1, sqe));
	/* Write Zeroes and Deallocate (three ranges, one empty). */
	sqe[0] = 0x08;
	EXPECT_EQ(0, io(d, 1, sqe));
	r = th_ptr(&self->th, p + 4096);

	EXPECT_EQ(0, (int)self->th.disk[7 * 4096]);
	memset(r, 0, 48);
	emu_put_le32(r + 4, 2);
	emu_put_le64(r + 8, 10);
	emu_put_le32(r + 36, 1);
	emu_put_le64(r + 40, 20);
	self->th.disk[10 << 12] = 1;
	self->th.disk[20 << 12] = 1;
	drv_sqe(sqe, 0x09, 1);
	drv_set_dw(sqe, 10, 2);
	drv_set_dw(sqe, 11, 4);
	drv_set_prp(sqe, p + 4096, 0);
	EXPECT_EQ(0, io(d, 1, sqe));
	EXPECT_EQ(0, (int)self->th.disk[10 * 4096]);
	EXPECT_EQ(0, (int)self->th.disk[20 * 4096]);
	self->th.fail_next = -EIO;
	EXPECT_EQ(0x280, io(d, 1, sqe));
	emu_put_le64(r + 40, TH_NS_BLOCKS);
	EXPECT_EQ(DNR | 0x80, io(d, 1, sqe));
	drv_set_dw(sqe, 11, 1);
	EXPECT_EQ(0, io(d, 1, sqe));
	EXPECT_EQ(0, (long)self->th.bufs);
}

TEST_F(adm, synchronous_backend_256_ranges)
{
	struct drv *d = &self->d;
	u64 p = th_alloc(&self->th, 4096, 4096);
	u8 sqe[64], *r = th_ptr(&self->th, p);
	int i;

	/* Each range completes inside blk_submit: no nesting, no loss. */
	self->th.sync = 1;
	for (i = 0; i < 256; i++) {
		emu_put_le32(r + 16 * i + 4, 1);
		emu_put_le64(r + 16 * i + 8, (u64)i * 3);
		self->th.disk[(u64)i * 3 * 4096] = 0xee;
	}
	drv_sqe(sqe, 0x09, 1);
	drv_set_dw(sqe, 10, 255);
	drv_set_dw(sqe, 11, 4);
	drv_set_prp(sqe, p, 0);
	EXPECT_EQ(0, io(d, 1, sqe));
	for (i = 0; i < 256; i++)
		if (self->th.disk[(u64)i * 3 * 4096])
			break;
	EXPECT_EQ(256, i);
	EXPECT_EQ(0, (long)self->th.bufs);
	EXPECT_EQ(0, emu_nvme_inflight(self->th.ctrl));
}

TEST_F(adm, reset_mid_io)
{
	struct drv *d = &self->d;
	u8 sqe[64];
	int i;

	for (i = 0; i < 20; i++) {
		drv_sqe(sqe, i & 1 ? 0x01 : 0x02, 1);
		drv_set_dw(sqe, 10, (u32)i);
		drv_set_prp(sqe, self->page, 0);
		ASSERT_GE(drv_submit(d, 1 + i % 4, sqe), 0);
	}
	emu_nvme_poll(self->th.ctrl, 10);
	ASSERT_GT(self->th.npend, 0);
	drv_wreg(d, EMU_REG_CC, drv_reg(d, EMU_REG_CC, 4) & ~1ULL, 4);
	/* Ready stays set until the backend has given everything back. */
	EXPECT_EQ(1, drv_reg(d, EMU_REG_CSTS, 4) & 1);
	emu_nvme_poll(self->th.ctrl, 64);
	EXPECT_EQ(EMU_NVME_MODE_RUN, emu_nvme_get_mode(self->th.ctrl));
	while (self->th.npend)
		th_run_backend(&self->th, 1);
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & 1);
	EXPECT_EQ(0, (long)self->th.bufs);
	EXPECT_EQ(0, emu_nvme_state(self->th.ctrl)->sq[1].valid);
	EXPECT_EQ(0, emu_nvme_state(self->th.ctrl)->aer.nr_cid);
	/* Doorbells of a disabled controller are ignored. */
	emu_nvme_doorbell_write(self->th.ctrl, 0x1000, 1);
	/* The driver brings it up again from scratch. */
	memset(d, 0, sizeof(*d));
	d->th = &self->th;
	ASSERT_EQ(0, drv_enable(d, 16));
	ASSERT_EQ(0, drv_bringup(d, 2, 32, 0, 1));
	EXPECT_EQ(0, d->errors);
}

/*
 * A controller reset (CC.EN 1 -> 0) leaves every feature at its default
 * and forgets the doorbell buffer: a tail written only to the old shadow
 * slot after the restart fetches nothing.
 */
TEST_F(adm, reset_forgets_features_and_dbbuf)
{
	struct drv *d = &self->d;
	u64 old_dbs = d->dbs;
	u8 sqe[64];
	u32 dw0, over0 = 0;

	ASSERT_EQ(1, d->dbbuf);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x04, 0, 0, &over0));
	EXPECT_NE(300, over0);
	ASSERT_EQ(1, emu_nvme_state(self->th.ctrl)->dbbuf.enabled);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x01, 0x03020107, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x08, 0x0107, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x04, 300, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x09, (1U << 16) | 1, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x0f, 5000, 0, NULL));
	drv_wreg(d, EMU_REG_CC, drv_reg(d, EMU_REG_CC, 4) & ~1ULL, 4);
	ASSERT_EQ(0, drv_wait_csts(d, 1, 0));
	EXPECT_EQ(0, emu_nvme_state(self->th.ctrl)->dbbuf.enabled);
	memset(d, 0, sizeof(*d));
	d->th = &self->th;
	ASSERT_EQ(0, drv_enable(d, 16));
	ASSERT_EQ(0, drv_bringup(d, 1, 32, 0, 1));
	EXPECT_EQ(0, emu_nvme_state(self->th.ctrl)->dbbuf.enabled);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x01, 0, 0, &dw0));
	EXPECT_EQ(0, dw0);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x08, 0, 0, &dw0));
	EXPECT_EQ(0, dw0);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x04, 0, 0, &dw0));
	EXPECT_EQ(over0, dw0);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x09, 1, 0, &dw0));
	EXPECT_EQ(1, dw0);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x0f, 0, 0, &dw0));
	EXPECT_EQ(0, dw0);
	/* an SQE in the ring, its tail only in the forgotten shadow slot */
	drv_sqe(sqe, 0x00, 1);
	memcpy(th_ptr(&self->th, d->q[1].sq), sqe, 64);
	emu_put_le32(th_ptr(&self->th, old_dbs + 2 * d->stride), 1);
	EXPECT_EQ(0, emu_nvme_poll(self->th.ctrl, 8));
	EXPECT_EQ(0, emu_nvme_state(self->th.ctrl)->sq[1].head);
	EXPECT_EQ(0, d->errors);
}

/*
 * A busy backend (-EAGAIN from blk_submit) or no bounce buffer leaves the
 * command in its SQ: head unchanged, no CQE, no buffer kept. The next
 * poll fetches it again; it completes once, its SQHD counting it once.
 * A Dataset Management range refused busy is sent again, alone, by the
 * next completion or the next poll.
 */
TEST_F(adm, retry_busy_backend_and_no_buffer)
{
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	struct drv *d = &self->d;
	u64 p = self->page, sub;
	u8 *b = th_ptr(&self->th, p), sqe[64];
	u16 head;
	int cid, round;

	for (round = 0; round < 2; round++) {
		memset(self->th.disk + 4096 * (7 + round), 0x5a + round, 4096);
		memset(b, 0, 4096);
		if (round)
			self->th.nobuf_next = 1;
		else
			self->th.eagain_next = 1;
		sub = self->th.submits;
		head = st->sq[1].head;
		drv_sqe(sqe, 0x02, 1);
		drv_set_dw(sqe, 10, 7 + round);
		drv_set_prp(sqe, p, 0);
		cid = drv_submit(d, 1, sqe);
		ASSERT_GE(cid, 0);
		EXPECT_EQ(0, emu_nvme_poll(self->th.ctrl, 8));
		EXPECT_EQ(head, st->sq[1].head);
		EXPECT_EQ(sub + (round ? 0 : 1), self->th.submits);
		EXPECT_EQ(0, self->th.npend);
		EXPECT_EQ(0, (long)self->th.bufs);
		drv_reap(d, 1);
		EXPECT_EQ(0, d->q[1].cmd[cid].done);
		EXPECT_EQ(1, emu_nvme_poll(self->th.ctrl, 8));
		EXPECT_EQ((head + 1) % 64, st->sq[1].head);
		EXPECT_EQ(1, self->th.npend);
		th_run_backend(&self->th, 1);
		drv_reap(d, 1);
		EXPECT_EQ(1, d->q[1].cmd[cid].done);
		EXPECT_EQ(0, d->q[1].cmd[cid].status);
		EXPECT_EQ((head + 1) % 64, d->q[1].cmd[cid].sqhd);
		EXPECT_EQ(0x5a + round, b[0]);
		EXPECT_EQ(0x5a + round, b[4095]);
		EXPECT_EQ(0, emu_nvme_poll(self->th.ctrl, 8));
		EXPECT_EQ(0, (long)self->th.bufs);
	}
	/* DSM deallocate of two ranges, the second refused busy once. */
	memset(self->th.disk + 4096 * 20, 0x77, 4096);
	memset(self->th.disk + 4096 * 30, 0x77, 4096);
	memset(b, 0, 32);
	emu_put_le32(b + 4, 1);
	emu_put_le64(b + 8, 20);
	emu_put_le32(b + 16 + 4, 1);
	emu_put_le64(b + 16 + 8, 30);
	drv_sqe(sqe, 0x09, 1);
	drv_set_dw(sqe, 10, 1);
	drv_set_dw(sqe, 11, 4);
	drv_set_prp(sqe, p, 0);
	sub = self->th.submits;
	cid = drv_submit(d, 1, sqe);
	ASSERT_GE(cid, 0);
	EXPECT_EQ(1, emu_nvme_poll(self->th.ctrl, 8));
	EXPECT_EQ(sub + 1, self->th.submits);
	ASSERT_EQ(1, self->th.npend);
	/*
	 * Refused, and refused again by the retry the same completion makes
	 * (it freed capacity); then the poll's retry goes through.
	 */
	self->th.eagain_next = 2;
	th_run_backend(&self->th, 1);
	EXPECT_EQ(sub + 3, self->th.submits);
	EXPECT_EQ(0, self->th.npend);
	drv_reap(d, 1);
	EXPECT_EQ(0, d->q[1].cmd[cid].done);
	EXPECT_EQ(0x77, self->th.disk[4096 * 30]);
	EXPECT_EQ(0, emu_nvme_poll(self->th.ctrl, 8));
	EXPECT_EQ(sub + 4, self->th.submits);
	ASSERT_EQ(1, self->th.npend);
	th_run_backend(&self->th, 1);
	drv_reap(d, 1);
	EXPECT_EQ(1, d->q[1].cmd[cid].done);
	EXPECT_EQ(0, d->q[1].cmd[cid].status);
	EXPECT_EQ(0, self->th.disk[4096 * 20]);
	EXPECT_EQ(0, self->th.disk[4096 * 30]);
	EXPECT_EQ(0, d->errors);
}

TEST_F(adm, shutdown_mid_io_and_nssr)
{
	struct drv *d = &self->d;
	u8 sqe[64];
	u32 cc;
	int i;

	for (i = 0; i < 8; i++) {
		drv_sqe(sqe, 0x02, 1);
		drv_set_prp(sqe, self->page, 0);
		ASSERT_GE(drv_submit(d, 1, sqe), 0);
	}
	emu_nvme_poll(self->th.ctrl, 4);
	cc = (u32)drv_reg(d, EMU_REG_CC, 4);
	/* Config fields are frozen while enabled; SHN is not. */
	drv_wreg(d, EMU_REG_CC, (cc & ~(0xfU << 20)) | (1U << 14), 4);
	EXPECT_EQ(cc | (1U << 14), drv_reg(d, EMU_REG_CC, 4));
	EXPECT_EQ(EMU_CSTS_SHST_OCCUR, drv_reg(d, EMU_REG_CSTS, 4) & 0xc);
	/* No new command is fetched during shutdown. */
	emu_nvme_poll(self->th.ctrl, 64);
	EXPECT_EQ(4, self->th.npend);
	while (self->th.npend)
		th_run_backend(&self->th, 1);
	EXPECT_EQ(EMU_CSTS_SHST_CMPLT, drv_reg(d, EMU_REG_CSTS, 4) & 0xc);
	drv_reap(d, 1);
	EXPECT_EQ(4, d->q[1].outstanding);
	/* Registers: 8-byte reads, admin attributes frozen while enabled. */
	EXPECT_EQ(0x10400, drv_reg(d, EMU_REG_VS, 4));
	EXPECT_EQ(d->q[0].sq, drv_reg(d, EMU_REG_ASQ, 8));
	drv_wreg(d, EMU_REG_ASQ, 0x5000, 8);
	EXPECT_EQ(d->q[0].sq, drv_reg(d, EMU_REG_ASQ, 8));
	EXPECT_EQ(0, drv_reg(d, 0x40, 4));
	/* NVM Subsystem Reset */
	drv_wreg(d, EMU_REG_NSSR, 0x1234, 4);
	EXPECT_EQ(1, drv_reg(d, EMU_REG_CSTS, 4) & 1);
	drv_wreg(d, EMU_REG_NSSR, EMU_NSSR_MAGIC, 4);
	EXPECT_EQ(EMU_CSTS_NSSRO, drv_reg(d, EMU_REG_CSTS, 4) &
		  (EMU_CSTS_NSSRO | EMU_CSTS_RDY));
	memset(d, 0, sizeof(*d));
	d->th = &self->th;
	ASSERT_EQ(0, drv_enable(d, 16));
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & EMU_CSTS_NSSRO);
}

/*
 * NSSR with a request still in the backend: NSSRO (and RDY clear) only
 * once the backend gave it back; a finished shutdown does not come back
 * after the controller is enabled again.
 */
TEST_F(adm, nssr_waits_for_the_backend_and_shutdown_is_over)
{
	struct drv *d = &self->d;
	u8 sqe[64];
	u32 cc;
	int cid;

	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, self->page, 0);
	ASSERT_GE(drv_submit(d, 1, sqe), 0);
	emu_nvme_poll(self->th.ctrl, 4);
	ASSERT_EQ(1, self->th.npend);
	drv_wreg(d, EMU_REG_NSSR, EMU_NSSR_MAGIC, 4);
	EXPECT_EQ(EMU_CSTS_RDY, drv_reg(d, EMU_REG_CSTS, 4) &
		  (EMU_CSTS_NSSRO | EMU_CSTS_RDY));
	th_run_backend(&self->th, 1);
	EXPECT_EQ(EMU_CSTS_NSSRO, drv_reg(d, EMU_REG_CSTS, 4) &
		  (EMU_CSTS_NSSRO | EMU_CSTS_RDY));
	/* write 1 to clear */
	drv_wreg(d, EMU_REG_CSTS, 0, 4);
	EXPECT_EQ(EMU_CSTS_NSSRO, drv_reg(d, EMU_REG_CSTS, 4) &
		  EMU_CSTS_NSSRO);
	drv_wreg(d, EMU_REG_CSTS, EMU_CSTS_NSSRO, 4);
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & EMU_CSTS_NSSRO);
	/* shutdown, reset, enable: SHST stays 00b through new I/O */
	memset(d, 0, sizeof(*d));
	d->th = &self->th;
	ASSERT_EQ(0, drv_enable(d, 16));
	ASSERT_EQ(0, drv_bringup(d, 1, 32, 0, 1));
	cc = (u32)drv_reg(d, EMU_REG_CC, 4);
	drv_wreg(d, EMU_REG_CC, cc | (1U << 14), 4);
	EXPECT_EQ(EMU_CSTS_SHST_CMPLT, drv_reg(d, EMU_REG_CSTS, 4) &
		  EMU_CSTS_SHST_MASK);
	memset(d, 0, sizeof(*d));
	d->th = &self->th;
	ASSERT_EQ(0, drv_enable(d, 16));
	ASSERT_EQ(0, drv_bringup(d, 1, 32, 0, 1));
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, self->page, 0);
	cid = drv_submit(d, 1, sqe);
	ASSERT_GE(cid, 0);
	emu_nvme_poll(self->th.ctrl, 4);
	th_run_backend(&self->th, 1);
	drv_reap(d, 1);
	EXPECT_EQ(1, d->q[1].cmd[cid].done);
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & EMU_CSTS_SHST_MASK);
	EXPECT_EQ(0, d->errors);
}

/*
 * Dataset Management twice: the second command's ranges all go to the
 * backend too (a request slot starts each command at its first range).
 */
TEST_F(adm, dsm_twice)
{
	struct drv *d = &self->d;
	u64 p = self->page;
	u8 *b = th_ptr(&self->th, p), sqe[64];
	int round, cid;

	self->th.sync = 1;
	for (round = 0; round < 2; round++) {
		memset(self->th.disk + 4096 * (40 + round), 0x66, 4096);
		memset(self->th.disk + 4096 * (50 + round), 0x66, 4096);
		memset(b, 0, 32);
		emu_put_le32(b + 4, 1);
		emu_put_le64(b + 8, 40 + round);
		emu_put_le32(b + 16 + 4, 1);
		emu_put_le64(b + 16 + 8, 50 + round);
		drv_sqe(sqe, 0x09, 1);
		drv_set_dw(sqe, 10, 1);
		drv_set_dw(sqe, 11, 4);
		drv_set_prp(sqe, p, 0);
		cid = drv_submit(d, 1, sqe);
		ASSERT_GE(cid, 0);
		emu_nvme_poll(self->th.ctrl, 8);
		drv_reap(d, 1);
		EXPECT_EQ(1, d->q[1].cmd[cid].done);
		EXPECT_EQ(0, d->q[1].cmd[cid].status);
		EXPECT_EQ(0, self->th.disk[4096 * (40 + round)]);
		EXPECT_EQ(0, self->th.disk[4096 * (50 + round)]);
	}
	EXPECT_EQ(0, d->errors);
}

/*
 * Create I/O SQ on memory another queue's ring already covers, from its
 * middle: Invalid Field (the model's rings never share memory, which no
 * image could carry).
 */
TEST_F(adm, queue_ring_inside_another)
{
	struct drv *d = &self->d;
	u64 m = th_alloc(&self->th, 5 * 4096, 4096);
	u64 s11 = th_alloc(&self->th, 4 * 4096, 4096);

	/* CQ 9: 1024 entries of 16 bytes, four pages */
	ASSERT_EQ(0, adm(d, 0x05, 0, (1023U << 16) | 9, 1, m, NULL));
	/* CQ 10 and SQ 10 starting in its second and last page */
	EXPECT_EQ(DNR | 0x02, adm(d, 0x05, 0, (15U << 16) | 10, 1,
				  m + 4096, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x05, 0, (15U << 16) | 10, 1,
				  m + 3 * 4096, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x01, 0, (15U << 16) | 10,
				  (9U << 16) | 1, m + 2 * 4096, NULL));
	/* right after it: fine */
	EXPECT_EQ(0, adm(d, 0x05, 0, (15U << 16) | 10, 1, m + 4 * 4096,
			 NULL));
	/* SQ 11: 256 entries of 64 bytes, four pages; CQ 12 inside it */
	ASSERT_EQ(0, adm(d, 0x01, 0, (255U << 16) | 11, (9U << 16) | 1, s11,
			 NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x05, 0, (15U << 16) | 12, 1,
				  s11 + 4096, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x05, 0, (15U << 16) | 12, 1,
				  s11 + 3 * 4096, NULL));
	EXPECT_EQ(0, adm(d, 0x00, 0, 11, 0, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x04, 0, 10, 0, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x04, 0, 9, 0, 0, NULL));
}

TEST_F(adm, enable_validation)
{
	static u8 img[65536];
	struct drv *d = &self->d;
	u64 asq, acq, base;
	char err[128];
	u32 cc;
	int n;

	cc = (u32)drv_reg(d, EMU_REG_CC, 4);
	drv_wreg(d, EMU_REG_CC, 0, 4);
	ASSERT_EQ(0, drv_wait_csts(d, 1, 0));
	/* MPS above CAP.MPSMAX, bad CSS, AMS not supported, AQA 0. */
	drv_wreg(d, EMU_REG_CC, (cc & ~(0xfU << 7)) | (5U << 7) | 1, 4);
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & 1);
	drv_wreg(d, EMU_REG_CC, 0, 4);
	drv_wreg(d, EMU_REG_CC, (cc & ~(7U << 4)) | (1U << 4) | 1, 4);
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & 1);
	drv_wreg(d, EMU_REG_CC, 0, 4);
	drv_wreg(d, EMU_REG_CC, cc | (1U << 11) | 1, 4);
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & 1);
	drv_wreg(d, EMU_REG_CC, 0, 4);
	drv_wreg(d, EMU_REG_AQA, 0, 4);
	drv_wreg(d, EMU_REG_CC, cc | 1, 4);
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & 1);
	/* A refused enable is a state like any other: it migrates. */
	n = emu_img_export(self->th.ctrl, img, sizeof(img), 0);
	ASSERT_GT(n, 0);
	EXPECT_EQ(0, emu_img_import(self->th.ctrl, img, (size_t)n, err,
				    sizeof(err))) {
		TH_LOG("%s", err);
	}
	drv_wreg(d, EMU_REG_CC, 0, 4);
	drv_wreg(d, EMU_REG_AQA, 0x001f001f, 4);
	/* ASQB and ACQB aligned to CC.MPS (8 KiB here), not only to 4 KiB. */
	asq = drv_reg(d, EMU_REG_ASQ, 8);
	acq = drv_reg(d, EMU_REG_ACQ, 8);
	base = th_alloc(&self->th, 4 * 8192, 8192);
	ASSERT_EQ(0, base & 8191);
	drv_wreg(d, EMU_REG_ASQ, base + 4096, 8);
	drv_wreg(d, EMU_REG_ACQ, base + 16384, 8);
	drv_wreg(d, EMU_REG_CC, (cc & ~(0xfU << 7)) | (1U << 7) | 1, 4);
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & 1);
	drv_wreg(d, EMU_REG_CC, 0, 4);
	drv_wreg(d, EMU_REG_ASQ, base, 8);
	drv_wreg(d, EMU_REG_ACQ, base + 16384 + 4096, 8);
	drv_wreg(d, EMU_REG_CC, (cc & ~(0xfU << 7)) | (1U << 7) | 1, 4);
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & 1);
	drv_wreg(d, EMU_REG_CC, 0, 4);
	drv_wreg(d, EMU_REG_ACQ, base + 16384, 8);
	drv_wreg(d, EMU_REG_CC, (cc & ~(0xfU << 7)) | (1U << 7) | 1, 4);
	EXPECT_EQ(1, drv_reg(d, EMU_REG_CSTS, 4) & 1);
	drv_wreg(d, EMU_REG_CC, 0, 4);
	ASSERT_EQ(0, drv_wait_csts(d, 1, 0));
	drv_wreg(d, EMU_REG_ASQ, asq, 8);
	drv_wreg(d, EMU_REG_ACQ, acq, 8);
	drv_wreg(d, EMU_REG_CC, cc | 1, 4);
	EXPECT_EQ(1, drv_reg(d, EMU_REG_CSTS, 4) & 1);
}

/*
 * Enable the controller with these admin queue attributes and CC.MPS, then
 * disable it again: 1 when it became ready, 0 when it refused.
 */
static int aq_try(struct drv *d, u32 aqa, u64 asq, u64 acq, u32 mps)
{
	u32 cc = (6U << 4) | (mps << 7) | (6U << 16) | (4U << 20);
	int rdy;

	drv_wreg(d, EMU_REG_AQA, aqa, 4);
	drv_wreg(d, EMU_REG_ASQ, asq, 8);
	drv_wreg(d, EMU_REG_ACQ, acq, 8);
	drv_wreg(d, EMU_REG_CC, cc, 4);
	drv_wreg(d, EMU_REG_CC, cc | EMU_CC_EN, 4);
	rdy = (int)(drv_reg(d, EMU_REG_CSTS, 4) & EMU_CSTS_RDY);
	drv_wreg(d, EMU_REG_CC, cc, 4);
	if (drv_wait_csts(d, EMU_CSTS_RDY, 0))
		return -1;
	return rdy;
}

#define AQA(sqs, cqs)	(((u32)(cqs) << 16) | (u32)(sqs))

/*
 * The admin queue attributes at their limits (NVMe 2.0, 3.1.4): ASQS and
 * ACQS (0's based) up to CAP.MQES, 300 entries here, not one more; ASQB
 * and ACQB aligned to the memory page size of CC.MPS (4 KiB << MPS), for
 * every MPS up to 15 (128 MiB): any address bit below the page size set is
 * refused. The rings (64-byte SQ entries, 16-byte CQ entries) must not
 * overlap: an SQ of 128 entries is 8 KiB, a CQ of 256 entries 4 KiB, of
 * 257 entries 4 KiB and 16 bytes.
 */
TEST(admin_queue_attributes_at_their_limits)
{
	static struct th th;
	static struct drv d;
	const u64 a = 1ULL << 40, c = 1ULL << 41, x = TH_MEM_BASE;
	u32 mps, bit;
	u64 cap;

	th_init(&th, th_seed(0xa9a));
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 300, 16);
	/* MPSMAX 15 */
	cap = emu_nvme_state(th.ctrl)->id.cap | (15ULL << 52);
	ASSERT_EQ(0, emu_nvme_set_hw(th.ctrl, cap, 0x10400, 17, 16, 16));
	emu_nvme_start_disabled(th.ctrl);
	memset(&d, 0, sizeof(d));
	d.th = &th;
	ASSERT_EQ(299, drv_reg(&d, EMU_REG_CAP, 8) & 0xffff);
	/* CAP.MQES 299: 300 entries fit, 301 do not. */
	EXPECT_EQ(1, aq_try(&d, AQA(299, 299), a, c, 0));
	EXPECT_EQ(0, aq_try(&d, AQA(300, 299), a, c, 0));
	EXPECT_EQ(0, aq_try(&d, AQA(299, 300), a, c, 0));
	/* Page alignment by CC.MPS. */
	for (mps = 0; mps <= 15; mps++) {
		EXPECT_EQ(1, aq_try(&d, AQA(31, 31), a, c, mps))
			TH_LOG("mps %u", mps);
		for (bit = 12; bit < 12 + mps; bit++) {
			EXPECT_EQ(0, aq_try(&d, AQA(31, 31), a + (1ULL << bit),
					    c, mps))
				TH_LOG("mps %u asq bit %u", mps, bit);
			EXPECT_EQ(0, aq_try(&d, AQA(31, 31), a,
					    c + (1ULL << bit), mps))
				TH_LOG("mps %u acq bit %u", mps, bit);
		}
	}
	/* SQ of 128 entries: a CQ 4 KiB after its start is inside it. */
	EXPECT_EQ(0, aq_try(&d, AQA(127, 15), x, x + 4096, 0));
	EXPECT_EQ(1, aq_try(&d, AQA(127, 15), x, x + 8192, 0));
	/* CQ of 257 entries reaches 16 bytes into an SQ 4 KiB after it. */
	EXPECT_EQ(0, aq_try(&d, AQA(15, 256), x + 4096, x, 0));
	EXPECT_EQ(1, aq_try(&d, AQA(15, 255), x + 4096, x, 0));
	EXPECT_EQ(0, d.errors);
	th_fini(&th);
}

/*
 * Before any I/O queue exists: Number of Queues with NSQR or NCQR 65535
 * (a 0's based 65536) is Invalid Field in Command (NVMe 2.0, Number of
 * Queues feature); the default over-temperature threshold of the composite
 * sensor is not 0 K (it would report an over-temperature at once), and
 * the 64-bit registers take a 64-bit write whole.
 */
TEST(fresh_controller_limits)
{
	static struct th th;
	static struct drv d;
	u32 dw0 = 0, over, under;
	u8 sqe[64];
	u16 last;

	ASSERT_EQ(0, drv_start(&d, &th, th_seed(0xf5e5)));
	drv_wreg(&d, EMU_REG_CC, drv_reg(&d, EMU_REG_CC, 4) & ~1ULL, 4);
	ASSERT_EQ(0, drv_wait_csts(&d, 1, 0));
	drv_wreg(&d, EMU_REG_ASQ, 0x0000001234567000ULL, 8);
	EXPECT_EQ(0x0000001234567000ULL, drv_reg(&d, EMU_REG_ASQ, 8));
	drv_wreg(&d, EMU_REG_ACQ, 0x0000004321000000ULL, 8);
	EXPECT_EQ(0x0000004321000000ULL, drv_reg(&d, EMU_REG_ACQ, 8));
	ASSERT_EQ(0, drv_enable(&d, 32));
	EXPECT_EQ(DNR | 0x02, adm(&d, 0x09, 0, 0x07, 0xffff0000U, 0, NULL));
	EXPECT_EQ(DNR | 0x02, adm(&d, 0x09, 0, 0x07, 0x0000ffffU, 0, NULL));
	EXPECT_EQ(0, adm(&d, 0x09, 0, 0x07, 0x00010001U, 0, &dw0));
	/* Queue ids run 1..NSQA+1 (0's based): the last one is valid. */
	last = (u16)((dw0 & 0xffff) + 1);
	drv_sqe(sqe, 0x05, 0);
	drv_set_prp(sqe, th_alloc(&th, 4096, 4096), 0);
	drv_set_dw(sqe, 10, (15U << 16) | last);
	drv_set_dw(sqe, 11, 1);
	EXPECT_EQ(0, drv_admin(&d, sqe, NULL));
	drv_sqe(sqe, 0x01, 0);
	drv_set_prp(sqe, th_alloc(&th, 4096, 4096), 0);
	drv_set_dw(sqe, 10, (15U << 16) | last);
	drv_set_dw(sqe, 11, ((u32)last << 16) | 1);
	EXPECT_EQ(0, drv_admin(&d, sqe, NULL));
	drv_set_dw(sqe, 10, (15U << 16) | (last + 1));
	EXPECT_EQ(DNR | 0x101, drv_admin(&d, sqe, NULL));
	EXPECT_EQ(0, adm(&d, 0x0a, 0, 0x04, 0, 0, &over));
	EXPECT_EQ(0, adm(&d, 0x0a, 0, 0x04, 1U << 20, 0, &under));
	EXPECT_NE(0, over & 0xffff);
	EXPECT_GT(over & 0xffff, under & 0xffff);
	EXPECT_EQ(0, d.errors) {
		TH_LOG("%s", d.why);
	}
	th_fini(&th);
}

/*
 * The Number of Queues default derives from the queues the VF grants
 * (emu_nvme_set_hw()): set while the controller is disabled, a new grant
 * is what Get Features reports, current and default, once it is enabled;
 * set while it is enabled, what the host was granted stays. That the host
 * has set it is remembered until the next reset.
 */
TEST(number_of_queues_follows_the_granted_queues)
{
	static struct th th;
	static struct drv d;
	u64 cap;
	u32 dw0;

	th_init(&th, th_seed(0x9e75));
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 2048, 16);
	cap = emu_nvme_state(th.ctrl)->id.cap;
	emu_nvme_start_disabled(th.ctrl);
	ASSERT_EQ(0, emu_nvme_set_hw(th.ctrl, cap, 0x10400, 17, 8, 4));
	ASSERT_EQ(0, drv_attach(&d, &th, 32));
	dw0 = 0;
	EXPECT_EQ(0, adm(&d, 0x0a, 0, 0x07, 0, 0, &dw0));
	EXPECT_EQ((3U << 16) | 7U, dw0);
	dw0 = 0;
	EXPECT_EQ(0, adm(&d, 0x0a, 0, (1U << 8) | 0x07, 0, 0, &dw0));
	EXPECT_EQ((3U << 16) | 7U, dw0);
	/*
	 * Whether the host has set it since the reset is state of its own:
	 * a restore replays the Set Features on the VF only then. Reading
	 * it, or a refused Set (65535 queues), is not setting it.
	 */
	EXPECT_EQ(0, emu_nvme_state(th.ctrl)->feat.nq_set);
	EXPECT_EQ(DNR | 0x02, adm(&d, 0x09, 0, 0x07, 0xffff, 0, NULL));
	EXPECT_EQ(0, emu_nvme_state(th.ctrl)->feat.nq_set);
	/* Enabled: what the host was granted stays. */
	dw0 = 0;
	EXPECT_EQ(0, adm(&d, 0x09, 0, 0x07, (1U << 16) | 2U, 0, &dw0));
	EXPECT_EQ((3U << 16) | 7U, dw0);
	EXPECT_EQ(1, emu_nvme_state(th.ctrl)->feat.nq_set);
	ASSERT_EQ(0, emu_nvme_set_hw(th.ctrl, cap, 0x10400, 17, 16, 16));
	dw0 = 0;
	EXPECT_EQ(0, adm(&d, 0x0a, 0, 0x07, 0, 0, &dw0));
	EXPECT_EQ((3U << 16) | 7U, dw0);
	/* A reset forgets it with the value. */
	drv_wreg(&d, EMU_REG_CC, 0, 4);
	ASSERT_EQ(0, drv_wait_csts(&d, 1, 0));
	EXPECT_EQ(0, emu_nvme_state(th.ctrl)->feat.nq_set);
	EXPECT_EQ(0, d.errors);
	th_fini(&th);
}

/*
 * MDTS is a power of two in units of CAP.MPSMIN (4 KiB here): MDTS 18 is
 * 1 GiB, so a 4 MiB read, above the model's own 2 MiB default, is within
 * the limit.
 */
TEST(transfer_limit_of_a_gibibyte)
{
	static struct th th;
	static struct drv d;
	static u8 page[4096];
	const struct emu_nvme_state *st;
	u64 buf;
	u8 sqe[64];
	int i, cid;

	th_init(&th, th_seed(0x6d75));
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 2048, 16);
	st = emu_nvme_state(th.ctrl);
	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++)
		if (st->id.pages[i].valid && st->id.pages[i].cns == 1)
			memcpy(page, st->id.pages[i].data, sizeof(page));
	page[77] = 18;
	ASSERT_EQ(0, emu_nvme_load_identify(th.ctrl, 1, 0, 0, 1, page));
	emu_nvme_start_disabled(th.ctrl);
	ASSERT_EQ(0, drv_attach(&d, &th, 32));
	ASSERT_EQ(0, drv_bringup(&d, 1, 64, 0, 1));
	buf = th_alloc(&th, 4U << 20, 4096);
	drv_sqe(sqe, 0x02, 1);
	drv_set_dw(sqe, 12, 1023);
	drv_map_prp(&d, sqe, buf, 4U << 20);
	cid = drv_submit(&d, 1, sqe);
	ASSERT_GE(cid, 0);
	ASSERT_EQ(0, drv_drain(&d, 1000));
	EXPECT_EQ(0, d.q[1].cmd[cid].status);
	EXPECT_EQ(0, d.errors) {
		TH_LOG("%s", d.why);
	}
	th_fini(&th);
}

/*
 * Namespace Identification Descriptor list (CNS 03h): each descriptor's
 * NIDL is fixed by its type (NVMe 2.0: EUI64 8, NGUID 16, UUID 16, CSI 1).
 */
/*
 * A submission queue whose memory the device cannot read (created at an
 * aligned address outside the guest's memory: creation does not touch the
 * ring): the fetch fails, the controller reports Controller Fatal Status
 * (CSTS.CFS) and fetches nothing more, on any queue, until a reset.
 */
TEST_F(adm, unreadable_queue_memory_is_fatal)
{
	struct drv *d = &self->d;
	u64 bad = TH_MEM_BASE + TH_MEM_SIZE;
	u8 sqe[64];
	int cid;

	EXPECT_EQ(0, adm(d, 0x05, 0, (63U << 16) | 5, (5U << 16) | 3,
			 th_alloc(&self->th, 4096, 4096), NULL));
	EXPECT_EQ(0, adm(d, 0x01, 0, (63U << 16) | 5, (5U << 16) | 1, bad,
			 NULL));
	EXPECT_EQ(0, drv_reg(d, EMU_REG_CSTS, 4) & EMU_CSTS_CFS);
	/* The fixture's driver uses shadow doorbells: ring both. */
	emu_put_le32((u8 *)th_ptr(&self->th, d->dbs) + 2 * 5 * d->stride, 1);
	emu_nvme_doorbell_write(self->th.ctrl, 0x1000 + 2 * 5 * d->stride, 1);
	emu_nvme_poll(self->th.ctrl, 64);
	EXPECT_EQ(EMU_CSTS_CFS, drv_reg(d, EMU_REG_CSTS, 4) & EMU_CSTS_CFS);
	/* Nothing more is fetched, not even from a healthy queue. */
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, self->page, 0);
	cid = drv_submit(d, 1, sqe);
	ASSERT_LE(0, cid);
	emu_nvme_poll(self->th.ctrl, 64);
	EXPECT_EQ(0, (long)self->th.npend);
	EXPECT_EQ(0, drv_reap(d, 1));
}

/*
 * A namespace the model cannot serve: metadata in the LBA format (a second
 * data stream the model lacks), or LBAs above 64 KiB. Every I/O command but
 * Flush is refused with Invalid Namespace or Format (0Bh), and nothing
 * reaches the backend.
 */
TEST(unusable_namespace_formats_refused)
{
	static const struct { u16 ms; u8 lbads; } fmt[] = {
		{ 8, 12 }, { 64, 9 }, { 0, 17 },
	};
	unsigned int f;

	for (f = 0; f < sizeof(fmt) / sizeof(fmt[0]); f++) {
		static const u8 opcs[] = { 0x01, 0x02, 0x05, 0x08, 0x09 };
		struct th th;
		struct drv d;
		u8 page[4096], sqe[64];
		unsigned int i;
		u64 buf;

		th_init(&th, th_seed(0x3d + f));
		th_new_ctrl(&th);
		th_load_identity(&th, 12, 2048, 16);
		th_idns_page(page, fmt[f].lbads);
		emu_put_le16(page + 128, fmt[f].ms);
		emu_nvme_load_identify(th.ctrl, 0, 0, 1, 1, page);
		emu_nvme_start_disabled(th.ctrl);
		ASSERT_EQ(0, drv_attach(&d, &th, 32));
		ASSERT_EQ(0, drv_bringup(&d, 1, 64, 0, 1));
		buf = th_alloc(&th, 65536, 4096);
		for (i = 0; i < sizeof(opcs); i++) {
			drv_sqe(sqe, opcs[i], 1);
			drv_set_prp(sqe, buf, 0);
			if (opcs[i] == 0x09)
				drv_set_dw(sqe, 11, 1 << 2);	/* deallocate */
			EXPECT_EQ(DNR | 0x0b, io(&d, 1, sqe)) {
				TH_LOG("ms %u lbads %u opcode 0x%02x", fmt[f].ms,
				       fmt[f].lbads, opcs[i]);
			}
		}
		EXPECT_EQ(0, (long)th.npend);
		/* Flush names no data: it completes. */
		drv_sqe(sqe, 0x00, 1);
		EXPECT_EQ(0, io(&d, 1, sqe));
		th_fini(&th);
	}
}

static int get_log(struct drv *d, u8 lid, u32 dw10_hi, u32 numd, u64 off,
		   u64 p)
{
	u8 sqe[64];

	drv_sqe(sqe, 0x02, 0xffffffff);
	drv_set_dw(sqe, 10, (numd << 16) | dw10_hi | lid);
	drv_set_dw(sqe, 12, (u32)off);
	drv_set_dw(sqe, 13, (u32)(off >> 32));
	drv_set_prp(sqe, p, 0);
	return drv_admin(d, sqe, NULL);
}

/*
 * A log page read with Retain Asynchronous Event (CDW10 bit 15) leaves the
 * event type masked: a second namespace change stays undelivered until the
 * Changed Namespace List is read without RAE, whatever other log is read
 * meanwhile (NVMe 2.0, Asynchronous Event Request: the event is cleared by
 * reading the log page it names). A SMART / Health event
 * (temperature, AEC bit 1) is unmasked by reading log 02h, not 01h.
 */
TEST_F(adm, aer_rae_and_smart_unmask)
{
	struct drv *d = &self->d;
	u64 p = self->page;
	u8 *b = th_ptr(&self->th, p);

	ASSERT_EQ(1, d->aer_outstanding);
	emu_nvme_ns_changed(self->th.ctrl, 1);
	drv_reap(d, 0);
	ASSERT_EQ(1, d->aer_done);
	EXPECT_EQ(0x040002, d->aer_dw0);
	ASSERT_EQ(0, drv_aer_arm(d));
	EXPECT_EQ(0, get_log(d, 0x04, EMU_BIT(15), 1023, 0, p));
	EXPECT_EQ(1, emu_get_le32(b));
	emu_nvme_ns_changed(self->th.ctrl, 1);
	emu_nvme_poll(self->th.ctrl, 8);
	drv_reap(d, 0);
	EXPECT_EQ(1, d->aer_done);
	/* Only the log the event named unmasks it: not 03h, not 05h. */
	EXPECT_EQ(0, get_log(d, 0x03, 0, 127, 0, p));
	EXPECT_EQ(0, get_log(d, 0x05, 0, 1023, 0, p));
	emu_nvme_poll(self->th.ctrl, 8);
	drv_reap(d, 0);
	EXPECT_EQ(1, d->aer_done);
	EXPECT_EQ(0, get_log(d, 0x04, 0, 1023, 0, p));
	EXPECT_EQ(1, emu_get_le32(b));
	drv_reap(d, 0);
	EXPECT_EQ(2, d->aer_done);
	EXPECT_EQ(0x040002, d->aer_dw0);
	/* SMART / Health, Temperature Threshold (type 1, information 1) */
	ASSERT_EQ(0, drv_aer_arm(d));
	ASSERT_EQ(0, drv_set_feature(d, 0x0b, 0x100 | 0x2));
	emu_nvme_async_event(self->th.ctrl, 1, 1, 0x02);
	drv_reap(d, 0);
	EXPECT_EQ(3, d->aer_done);
	EXPECT_EQ(0x020101, d->aer_dw0);
	ASSERT_EQ(0, drv_aer_arm(d));
	emu_nvme_async_event(self->th.ctrl, 1, 1, 0x02);
	drv_reap(d, 0);
	EXPECT_EQ(3, d->aer_done);
	EXPECT_EQ(0, get_log(d, 0x01, 0, 63, 0, p));
	EXPECT_EQ(0, get_log(d, 0x02, EMU_BIT(15), 127, 0, p));
	drv_reap(d, 0);
	EXPECT_EQ(3, d->aer_done);
	EXPECT_EQ(0, get_log(d, 0x02, 0, 127, 0, p));
	drv_reap(d, 0);
	EXPECT_EQ(4, d->aer_done);
	EXPECT_EQ(0x020101, d->aer_dw0);
	EXPECT_EQ(0, d->errors);
}

/*
 * Asynchronous Event Configuration (FID 0Bh): Linux's bring-up enables the
 * Namespace Attribute notice (bit 8, 0x100) and it reads back so. With AEC
 * 0 a namespace change is still listed in log 04h but raises no event;
 * with bit 8 again the next change completes the AER with 040002h.
 */
TEST_F(adm, aec_filters_notices)
{
	struct drv *d = &self->d;
	u64 p = self->page;
	u8 *b = th_ptr(&self->th, p);
	u32 dw0 = 0;

	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x0b, 0, 0, &dw0));
	EXPECT_EQ(0x100, dw0);
	ASSERT_EQ(0, drv_set_feature(d, 0x0b, 0));
	emu_nvme_ns_changed(self->th.ctrl, 1);
	emu_nvme_poll(self->th.ctrl, 8);
	drv_reap(d, 0);
	EXPECT_EQ(0, d->aer_done);
	EXPECT_EQ(1, d->aer_outstanding);
	EXPECT_EQ(0, get_log(d, 0x04, 0, 1023, 0, p));
	EXPECT_EQ(1, emu_get_le32(b));
	EXPECT_EQ(0, emu_get_le32(b + 4));
	drv_reap(d, 0);
	EXPECT_EQ(0, d->aer_done);
	ASSERT_EQ(0, drv_set_feature(d, 0x0b, 0x100));
	emu_nvme_ns_changed(self->th.ctrl, 1);
	drv_reap(d, 0);
	EXPECT_EQ(1, d->aer_done);
	EXPECT_EQ(0x040002, d->aer_dw0);
	EXPECT_EQ(0, d->errors);
}

/*
 * Events wait while their type is masked (delivered, its log page not yet
 * read) or no AER is outstanding; the model queues EMU_NVME_MAX_EVENTS
 * (16) of them and drops any further one. Eighteen distinct Error events
 * (information 0-17, log 01h): the first completes the outstanding AER,
 * the next sixteen are delivered one by one, each after the Error
 * Information log was read and an AER armed, in order; the eighteenth
 * never is, and the controller serves I/O (through its shadow doorbells)
 * as before.
 */
TEST_F(adm, event_queue_holds_sixteen)
{
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	struct drv *d = &self->d;
	u64 p = self->page;
	u8 sqe[64];
	u32 i;

	ASSERT_EQ(1, d->aer_outstanding);
	for (i = 0; i < 18; i++)
		emu_nvme_async_event(self->th.ctrl, 0, (u8)i, 0x01);
	drv_reap(d, 0);
	EXPECT_EQ(1, d->aer_done);
	EXPECT_EQ(0x010000U, d->aer_dw0);
	EXPECT_EQ(EMU_NVME_MAX_EVENTS, st->aer.nr_events);
	for (i = 1; i <= 17; i++) {
		EXPECT_EQ(0, get_log(d, 0x01, 0, 15, 0, p));
		ASSERT_EQ(0, drv_aer_arm(d));
		emu_nvme_poll(self->th.ctrl, 8);
		drv_reap(d, 0);
		if (i == 17)
			break;
		EXPECT_EQ(i + 1, (u32)d->aer_done);
		EXPECT_EQ(0x010000U | (i << 8), d->aer_dw0);
	}
	EXPECT_EQ(17, d->aer_done);
	EXPECT_EQ(1, d->aer_outstanding);
	EXPECT_EQ(0, st->aer.nr_events);
	EXPECT_EQ(1, st->dbbuf.enabled);
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, p, 0);
	EXPECT_EQ(0, io(d, 1, sqe));
	EXPECT_EQ(0, d->errors);
}

/*
 * Changed Namespace List (log 04h): reading it clears it; more changed
 * namespaces than the list holds (the model keeps EMU_NVME_MAX_NS, the
 * spec's list 1024) is FFFFFFFFh then zeroes, and stays so for further
 * changes until read (NVMe 2.0, Changed Namespace List log page).
 */
TEST_F(adm, changed_ns_log_cleared_and_overflow)
{
	static const u8 zero[4096];
	struct drv *d = &self->d;
	u64 p = self->page;
	u8 *b = th_ptr(&self->th, p);
	u32 n;

	emu_nvme_ns_changed(self->th.ctrl, 1);
	memset(b, 0x5a, 4096);
	EXPECT_EQ(0, get_log(d, 0x04, 0, 1023, 0, p));
	EXPECT_EQ(1, emu_get_le32(b));
	EXPECT_EQ(0, memcmp(zero, b + 4, 4092));
	memset(b, 0x5a, 4096);
	EXPECT_EQ(0, get_log(d, 0x04, 0, 1023, 0, p));
	EXPECT_EQ(0, memcmp(zero, b, 4096));
	for (n = 1; n <= EMU_NVME_MAX_NS + 1; n++)
		emu_nvme_ns_changed(self->th.ctrl, n);
	emu_nvme_ns_changed(self->th.ctrl, 100);
	memset(b, 0x5a, 4096);
	EXPECT_EQ(0, get_log(d, 0x04, 0, 1023, 0, p));
	EXPECT_EQ(0xffffffffU, emu_get_le32(b));
	EXPECT_EQ(0, memcmp(zero, b + 4, 4092));
	memset(b, 0x5a, 4096);
	EXPECT_EQ(0, get_log(d, 0x04, 0, 1023, 0, p));
	EXPECT_EQ(0, memcmp(zero, b, 4096));
	EXPECT_EQ(0, d->errors);
}

/*
 * Error Information log entries (NVMe 2.0, Error Information log page):
 * bytes 0-7 Error Count, one more than the previous entry's; 8-9 SQID;
 * 10-11 CID; 12-13 the Status Field in bits 15:1 with bit 0 the Phase
 * Tag posted for the command; 14-15 Parameter Error Location, FFFFh (the
 * model names none); the rest zero. The newest entry is first, the
 * previous one follows; SMART bytes 160-175 count the same errors. Forty
 * failures wrap the 32-entry admin CQ: both phases are seen.
 */
TEST_F(adm, error_log_entries_exact)
{
	static const u8 zero[64];
	struct drv *d = &self->d;
	u64 p = self->page;
	u8 *b = th_ptr(&self->th, p), prev[64], sqe[64], *cqe;
	struct drv_q *q = &d->q[0];
	u64 count;
	u16 sf;
	int i, cid, phases = 0;

	EXPECT_EQ(DNR | 0x109, get_log(d, 0x70, 0, 127, 0, p));
	for (i = 0; i < 40; i++) {
		EXPECT_EQ(0, get_log(d, 0x01, 0, 63, 0, p));
		memcpy(prev, b, 64);
		count = emu_get_le64(prev);
		ASSERT_NE(0, count);
		drv_sqe(sqe, 0x02, 0);
		drv_set_dw(sqe, 10, (127U << 16) | 0x70);
		drv_set_prp(sqe, p, 0);
		cid = drv_submit(d, 0, sqe);
		ASSERT_LE(0, cid);
		emu_nvme_poll(self->th.ctrl, 8);
		ASSERT_EQ(1, drv_reap(d, 0));
		ASSERT_EQ(DNR | 0x109, q->cmd[cid].status);
		cqe = th_ptr(&self->th, q->cq + 16ULL *
			     ((q->cq_head + q->size - 1) % q->size));
		sf = emu_get_le16(cqe + 14);
		ASSERT_EQ((DNR | 0x109) << 1, sf & ~1);
		phases |= 1 << (sf & 1);
		memset(b, 0x5a, 256);
		EXPECT_EQ(0, get_log(d, 0x01, 0, 63, 0, p));
		EXPECT_EQ(count + 1, emu_get_le64(b));
		EXPECT_EQ(0, emu_get_le16(b + 8));
		EXPECT_EQ(cid, emu_get_le16(b + 10));
		EXPECT_EQ(sf, emu_get_le16(b + 12)) TH_LOG("failure %d", i);
		EXPECT_EQ(0xffff, emu_get_le16(b + 14));
		EXPECT_EQ(0, memcmp(zero, b + 16, 48));
		EXPECT_EQ(0, memcmp(prev, b + 64, 64));
		EXPECT_EQ(0, get_log(d, 0x02, 0, 127, 0, p));
		EXPECT_EQ(count + 1, emu_get_le64(b + 160));
		EXPECT_EQ(0, emu_get_le64(b + 168));
	}
	EXPECT_EQ(3, phases);
	EXPECT_EQ(0, d->errors);
}

/*
 * Nothing is saveable, also when ONCS bit 4 says the controller supports
 * the Save field: Set Features with SV (CDW10 bit 31) is Feature
 * Identifier Not Saveable (10Dh, NVMe 2.0 Set Features) and changes
 * nothing.
 */
TEST_F(adm, save_refused_whatever_oncs_says)
{
	struct drv *d = &self->d;
	static u8 idp[4096];
	u32 dw0 = 1;

	th_idctrl_page(idp);
	emu_put_le16(idp + 520, 0x4d | 0x10);	/* ONCS: Save/Select */
	ASSERT_EQ(0, emu_nvme_load_identify(self->th.ctrl, 1, 0, 0, 1, idp));
	EXPECT_EQ(DNR | 0x10d, adm(d, 0x09, 0, EMU_BIT(31) | 0x0f, 5000, 0,
				   NULL));
	EXPECT_EQ(DNR | 0x10d, adm(d, 0x09, 0, EMU_BIT(31) | 0x01, 7, 0,
				   NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x0f, 0, 0, &dw0));
	EXPECT_EQ(0, dw0);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x01, 0, 0, &dw0));
	EXPECT_EQ(0, dw0);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x0f, 5000, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x0f, 0, 0, &dw0));
	EXPECT_EQ(5000, dw0);
}

/*
 * Doorbell Buffer Config only with OACS bit 8, else Invalid Opcode, and
 * the Command Effects log lists 7Ch exactly then; both buffers memory page
 * aligned, else Invalid Field in Command (as QEMU's nvme_dbbuf_config()).
 */
TEST_F(adm, dbbuf_config_needs_oacs_and_alignment)
{
	struct drv *d = &self->d;
	u64 p = self->page, dbs = th_alloc(&self->th, 8192, 4096);
	u8 *b = th_ptr(&self->th, p), sqe[64];
	static u8 idp[4096];

	drv_sqe(sqe, 0x7c, 0);
	drv_set_prp(sqe, dbs + 8, dbs + 4096);
	EXPECT_EQ(DNR | 0x02, drv_admin(d, sqe, NULL));
	drv_set_prp(sqe, dbs, dbs + 4096 + 64);
	EXPECT_EQ(DNR | 0x02, drv_admin(d, sqe, NULL));
	EXPECT_EQ(0, get_log(d, 0x05, 0, 1023, 0, p));
	EXPECT_EQ(1, emu_get_le32(b + 4 * 0x7c));
	th_idctrl_page(idp);
	emu_put_le16(idp + 256, 0x1aa & ~0x100);	/* OACS: no dbbuf */
	ASSERT_EQ(0, emu_nvme_load_identify(self->th.ctrl, 1, 0, 0, 1, idp));
	drv_set_prp(sqe, dbs, dbs + 4096);
	EXPECT_EQ(DNR | 0x01, drv_admin(d, sqe, NULL));
	EXPECT_EQ(0, get_log(d, 0x05, 0, 1023, 0, p));
	EXPECT_EQ(0, emu_get_le32(b + 4 * 0x7c));
	EXPECT_EQ(1, emu_get_le32(b + 4 * 0x06));
}

/*
 * Backend errors of the commands without data: -EIO is Write Fault (280h)
 * for Flush and Write Zeroes as for Write, -ENOSPC Capacity Exceeded
 * (81h) for Dataset Management, anything else Internal Error (06h).
 */
TEST_F(adm, backend_errors_without_data)
{
	struct drv *d = &self->d;
	u8 sqe[64], *r = th_ptr(&self->th, self->page);

	drv_sqe(sqe, 0x00, 1);
	self->th.fail_next = -EIO;
	EXPECT_EQ(0x280, io(d, 1, sqe));
	self->th.fail_next = -EPERM;
	EXPECT_EQ(0x06, io(d, 1, sqe));
	EXPECT_EQ(0, io(d, 1, sqe));
	drv_sqe(sqe, 0x08, 1);
	drv_set_dw(sqe, 10, 3);
	self->th.fail_next = -EIO;
	EXPECT_EQ(0x280, io(d, 1, sqe));
	self->th.fail_next = -ENOSPC;
	EXPECT_EQ(0x81, io(d, 1, sqe));
	memset(r, 0, 16);
	emu_put_le32(r + 4, 1);
	emu_put_le64(r + 8, 5);
	drv_sqe(sqe, 0x09, 1);
	drv_set_dw(sqe, 11, 4);
	drv_set_prp(sqe, self->page, 0);
	self->th.fail_next = -ENOSPC;
	EXPECT_EQ(0x81, io(d, 1, sqe));
	self->th.fail_next = -EPERM;
	EXPECT_EQ(0x06, io(d, 1, sqe));
	EXPECT_EQ(0, io(d, 1, sqe));
	EXPECT_EQ(0, (long)self->th.bufs);
}

/*
 * Features the identity does not advertise are Invalid Field for Set and
 * Get: Host Controlled Thermal Management (10h) without HCTMA bit 0
 * (Identify Controller bytes 322-323), Timestamp (0Eh) without ONCS bit 6,
 * Volatile Write Cache (06h) without VWC bit 0; with them they round-trip.
 * Non-Operational Power State Config (11h) and Power Management (02h)
 * read back what was set.
 */
TEST_F(adm, features_as_the_identity_advertises)
{
	struct drv *d = &self->d;
	static u8 idp[4096];
	u64 p = self->page;
	u32 dw0 = 7;

	EXPECT_EQ(DNR | 0x02, adm(d, 0x09, 0, 0x10, 0x01590160, 0, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x0a, 0, 0x10, 0, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x02, 0, 0, &dw0));
	EXPECT_EQ(0, dw0);
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x11, 1, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x11, 0, 0, &dw0));
	EXPECT_EQ(1, dw0);
	th_idctrl_page(idp);
	emu_put_le16(idp + 322, 1);		/* HCTMA */
	emu_put_le16(idp + 520, 0x4d & ~0x40);	/* ONCS: no Timestamp */
	idp[525] = 0;				/* VWC: none */
	ASSERT_EQ(0, emu_nvme_load_identify(self->th.ctrl, 1, 0, 0, 1, idp));
	EXPECT_EQ(0, adm(d, 0x09, 0, 0x10, 0x01590160, 0, NULL));
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x10, 0, 0, &dw0));
	EXPECT_EQ(0x01590160, dw0);
	EXPECT_EQ(DNR | 0x02, adm(d, 0x09, 0, 0x0e, 0, p, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x0a, 0, 0x0e, 0, p, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x09, 0, 0x06, 1, 0, NULL));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x0a, 0, 0x06, 0, 0, NULL));
}

/*
 * Get Log Page transfers at most 4 KiB: NUMD 1024 (4100 bytes) is Invalid
 * Field. An offset shifts the log: 1023 dwords from offset 4 of the
 * Command Effects log are its bytes 4 to 4095. The Error Information log
 * is ELPE + 1 = 4 entries, 256 bytes: a 4 KiB read returns zeroes after.
 */
TEST_F(adm, log_page_lengths_and_offsets)
{
	static const u8 zero[4096];
	struct drv *d = &self->d;
	u64 p = self->page;
	u8 *b = th_ptr(&self->th, p), full[4096];
	u8 lid;

	EXPECT_EQ(DNR | 0x02, get_log(d, 0x05, 0, 1024, 0, p));
	EXPECT_EQ(0, get_log(d, 0x05, 0, 1023, 0, p));
	memcpy(full, b, 4096);
	memset(b, 0x5a, 4096);
	EXPECT_EQ(0, get_log(d, 0x05, 0, 1022, 4, p));
	EXPECT_EQ(0, memcmp(full + 4, b, 4092));
	EXPECT_EQ(0x5a, b[4092]);
	EXPECT_EQ(DNR | 0x109, get_log(d, 0x70, 0, 127, 0, p));
	memset(b, 0x5a, 4096);
	EXPECT_EQ(0, get_log(d, 0x01, 0, 1023, 0, p));
	EXPECT_NE(0, emu_get_le64(b));
	EXPECT_EQ(0, memcmp(zero, b + 256, 4096 - 256));
	EXPECT_EQ(0, get_log(d, 0x01, 0, 15, 192, p));
	EXPECT_EQ(DNR | 0x02, get_log(d, 0x01, 0, 15, 256, p));
	/*
	 * SMART / Health Information (02h) and Firmware Slot Information
	 * (03h) are 512 bytes: offset 508 is their last dword (reserved,
	 * zero), 512 is beyond them.
	 */
	for (lid = 0x02; lid <= 0x03; lid++) {
		memset(b, 0x5a, 8);
		EXPECT_EQ(0, get_log(d, lid, 0, 0, 508, p));
		EXPECT_EQ(0, emu_get_le32(b)) TH_LOG("log %02xh", lid);
		EXPECT_EQ(0x5a5a5a5aU, emu_get_le32(b + 4));
		EXPECT_EQ(DNR | 0x02, get_log(d, lid, 0, 0, 512, p))
			TH_LOG("log %02xh", lid);
	}
}

/*
 * An inactive NSID (at most NN, no namespace): Identify CNS 00h returns a
 * zero-filled page with success (NVMe 2.0, Identify Namespace), CNS 03h is
 * Invalid Namespace or Format, as Linux's nvmet answers; above NN both
 * are Invalid Namespace or Format.
 */
TEST_F(adm, inactive_nsid_identify)
{
	static const u8 zero[4096];
	struct drv *d = &self->d;
	static u8 idp[4096];
	u8 *b = th_ptr(&self->th, self->page);

	th_idctrl_page(idp);
	emu_put_le32(idp + 516, 4);		/* NN */
	ASSERT_EQ(0, emu_nvme_load_identify(self->th.ctrl, 1, 0, 0, 1, idp));
	/* the zeroed page a VF answered for NSID 3, as the observer keeps it */
	ASSERT_EQ(0, emu_nvme_load_identify(self->th.ctrl, 0, 0, 3, 1, zero));
	memset(b, 0x5a, 4096);
	EXPECT_EQ(0, adm(d, 0x06, 3, 0, 0, self->page, NULL));
	EXPECT_EQ(0, memcmp(zero, b, 4096));
	EXPECT_EQ(DNR | 0x0b, adm(d, 0x06, 3, 3, 0, self->page, NULL));
	EXPECT_EQ(DNR | 0x0b, adm(d, 0x06, 5, 0, 0, self->page, NULL));
	EXPECT_EQ(DNR | 0x0b, adm(d, 0x06, 5, 3, 0, self->page, NULL));
	/* the active namespace still answers */
	EXPECT_EQ(0, adm(d, 0x06, 1, 0, 0, self->page, NULL));
	EXPECT_EQ(TH_NS_BLOCKS, emu_get_le64(b));
}

/*
 * While enabled, AQA, ASQ and ACQ ignore writes (4 and 8 bytes); without
 * CAP.NSSRS, writing "NVMe" to NSSR resets nothing.
 */
TEST_F(adm, registers_frozen_and_nssr_without_nssrs)
{
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	struct drv *d = &self->d;
	u64 aqa = drv_reg(d, EMU_REG_AQA, 4), acq = drv_reg(d, EMU_REG_ACQ, 8);
	u64 asq = drv_reg(d, EMU_REG_ASQ, 8);

	ASSERT_EQ(0x001f001fULL, aqa);
	drv_wreg(d, EMU_REG_AQA, 0x00070007, 4);
	drv_wreg(d, EMU_REG_ACQ, 0x7000, 8);
	drv_wreg(d, EMU_REG_ACQ + 4, 1, 4);
	drv_wreg(d, EMU_REG_ASQ, 0x9000, 4);
	EXPECT_EQ(aqa, drv_reg(d, EMU_REG_AQA, 4));
	EXPECT_EQ(acq, drv_reg(d, EMU_REG_ACQ, 8));
	EXPECT_EQ(asq, drv_reg(d, EMU_REG_ASQ, 8));
	emu_nvme_set_hw(self->th.ctrl, st->id.cap & ~(1ULL << 36), 0x10400,
			17, 16, 16);
	drv_wreg(d, EMU_REG_NSSR, EMU_NSSR_MAGIC, 4);
	EXPECT_EQ(EMU_CSTS_RDY, drv_reg(d, EMU_REG_CSTS, 4) &
		  (EMU_CSTS_RDY | EMU_CSTS_NSSRO));
	EXPECT_EQ(1, st->sq[1].valid);
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x07, 0, 0, NULL));
}

/*
 * Shutdown of an idle controller (CC.SHN 01b): SHST 10b at once, and a
 * command submitted afterwards is not fetched.
 */
TEST_F(adm, idle_shutdown_completes_at_once)
{
	struct drv *d = &self->d;
	u8 sqe[64];

	drv_wreg(d, EMU_REG_CC, drv_reg(d, EMU_REG_CC, 4) | (1U << 14), 4);
	EXPECT_EQ(EMU_CSTS_SHST_CMPLT, drv_reg(d, EMU_REG_CSTS, 4) &
		  EMU_CSTS_SHST_MASK);
	drv_sqe(sqe, 0x02, 1);
	drv_set_prp(sqe, self->page, 0);
	ASSERT_LE(0, drv_submit(d, 1, sqe));
	EXPECT_EQ(0, emu_nvme_poll(self->th.ctrl, 64));
	EXPECT_EQ(0, self->th.npend);
	EXPECT_EQ(0, drv_reap(d, 1));
}

/*
 * A shutdown finished on the model ends there: the device goes back to
 * the VF (handback), the guest resets the controller there, the device
 * switches to the model again while the controller is disabled, and the
 * guest enables it: the controller is ready, not shut down (CSTS.SHST
 * 00b), and executes commands.
 */
TEST(shutdown_is_over_after_handback_and_reset)
{
	static struct th th;
	static struct drv d;
	u8 sqe[64];

	ASSERT_EQ(0, drv_start(&d, &th, th_seed(0x5d0)));
	drv_wreg(&d, EMU_REG_CC, drv_reg(&d, EMU_REG_CC, 4) | (1U << 14), 4);
	ASSERT_EQ(EMU_CSTS_SHST_CMPLT, drv_reg(&d, EMU_REG_CSTS, 4) &
		  EMU_CSTS_SHST_MASK);
	ASSERT_EQ(0, emu_nvme_handback(th.ctrl));
	emu_nvme_observe_reg_write(th.ctrl, EMU_REG_CC, 0, 4);
	emu_nvme_start_disabled(th.ctrl);
	ASSERT_EQ(0, drv_attach(&d, &th, 32));
	drv_sqe(sqe, 0x06, 0);
	drv_set_dw(sqe, 10, 1);
	drv_set_prp(sqe, th_alloc(&th, 4096, 4096), 0);
	EXPECT_EQ(0, drv_admin(&d, sqe, NULL));
	EXPECT_EQ(EMU_CSTS_RDY, drv_reg(&d, EMU_REG_CSTS, 4) &
		  (EMU_CSTS_RDY | EMU_CSTS_SHST_MASK));
	EXPECT_EQ(0, d.errors);
	th_fini(&th);
}

/*
 * emu_nvme_poll() fetches admin commands first, then I/O queues round
 * robin, and returns how many it fetched: with 2 admin and 4 + 4 I/O
 * commands, a budget of 3 takes both admin commands and one I/O. With the
 * Arbitration Burst at 0h (one command per turn), a budget of 4 over four
 * SQs with 4 commands each takes one from each.
 */
TEST_F(adm, poll_admin_first_then_round_robin)
{
	struct drv *d = &self->d;
	int q, j, seen[5] = { 0 }, i;
	u8 sqe[64];

	ASSERT_EQ(0, drv_set_feature(d, 0x01, 0));
	drv_sqe(sqe, 0x0a, 0);
	drv_set_dw(sqe, 10, 0x07);
	ASSERT_LE(0, drv_submit(d, 0, sqe));
	ASSERT_LE(0, drv_submit(d, 0, sqe));
	for (q = 1; q <= 2; q++)
		for (j = 0; j < 4; j++) {
			drv_sqe(sqe, 0x02, 1);
			drv_set_dw(sqe, 10, (u32)(100 * q + j));
			drv_set_prp(sqe, self->page, 0);
			ASSERT_LE(0, drv_submit(d, (u16)q, sqe));
		}
	EXPECT_EQ(3, emu_nvme_poll(self->th.ctrl, 3));
	EXPECT_EQ(2, drv_reap(d, 0));
	EXPECT_EQ(1, self->th.npend);
	ASSERT_EQ(0, drv_drain(d, 1000));
	for (q = 1; q <= 4; q++)
		for (j = 0; j < 4; j++) {
			drv_sqe(sqe, 0x02, 1);
			drv_set_dw(sqe, 10, (u32)(100 * q + j));
			drv_set_prp(sqe, self->page, 0);
			ASSERT_LE(0, drv_submit(d, (u16)q, sqe));
		}
	EXPECT_EQ(4, emu_nvme_poll(self->th.ctrl, 4));
	ASSERT_EQ(4, self->th.npend);
	for (i = 0; i < 4; i++) {
		u64 slba = self->th.pend[i]->slba;

		ASSERT_LT(slba / 100, 5);
		seen[slba / 100]++;
	}
	for (q = 1; q <= 4; q++)
		EXPECT_EQ(1, seen[q]) TH_LOG("SQ %d", q);
	ASSERT_EQ(0, drv_drain(d, 1000));
	EXPECT_EQ(0, d->errors);
}

/*
 * Create I/O SQ/CQ statuses not covered by queue_errors: an SQ base off
 * the memory page or at 0 is Invalid PRP Offset (13h, the model's choice
 * for 0 too: no ring is at IOVA 0), an SQ of one entry (QSIZE 0h) Invalid
 * Queue Size (102h). CC.IOCQES other than 4 (16-byte entries) makes
 * Create I/O CQ Invalid Field.
 */
TEST_F(adm, queue_create_statuses)
{
	struct drv *d = &self->d;
	u64 q = th_alloc(&self->th, 3 * 4096, 4096);
	u32 cc;

	EXPECT_EQ(0, adm(d, 0x05, 0, (63 << 16) | 5, (5U << 16) | 3, q, NULL));
	EXPECT_EQ(DNR | 0x13, adm(d, 0x01, 0, (63 << 16) | 5, (5U << 16) | 1,
				  q + 4096 + 64, NULL));
	EXPECT_EQ(DNR | 0x13, adm(d, 0x01, 0, (63 << 16) | 5, (5U << 16) | 1,
				  0, NULL));
	EXPECT_EQ(DNR | 0x13, adm(d, 0x05, 0, (63 << 16) | 6, (6U << 16) | 3,
				  0, NULL));
	EXPECT_EQ(DNR | 0x102, adm(d, 0x01, 0, (0U << 16) | 5, (5U << 16) | 1,
				   q + 4096, NULL));
	EXPECT_EQ(0, adm(d, 0x01, 0, (63 << 16) | 5, (5U << 16) | 1, q + 4096,
			 NULL));
	/* a controller enabled with IOCQES 5 (32 bytes) */
	cc = (u32)drv_reg(d, EMU_REG_CC, 4);
	memset(d, 0, sizeof(*d));
	d->th = &self->th;
	ASSERT_EQ(0, drv_enable(d, 16));
	drv_wreg(d, EMU_REG_CC, 0, 4);
	ASSERT_EQ(0, drv_wait_csts(d, 1, 0));
	drv_wreg(d, EMU_REG_CC, (cc & ~(0xfU << 20)) | (5U << 20), 4);
	ASSERT_EQ(0, drv_wait_csts(d, 1, 1));
	EXPECT_EQ(DNR | 0x02, adm(d, 0x05, 0, (63 << 16) | 1, (1U << 16) | 3,
				  q, NULL));
}

/*
 * What the model does not implement is refused like a controller without
 * it: Namespace Management (0Dh), Firmware Image Download (11h), Device
 * Self-test (14h), Sanitize (84h) and, on I/O queues, Write Uncorrectable
 * (04h), Verify (0Ch), Reservation Register (0Dh) and Report (0Eh) are
 * Invalid Opcode; an admin command with FUSE 01b is Invalid Field.
 */
TEST_F(adm, unimplemented_commands_refused)
{
	static const u8 aopc[] = { 0x0d, 0x11, 0x14, 0x84 };
	static const u8 iopc[] = { 0x04, 0x0c, 0x0d, 0x0e };
	struct drv *d = &self->d;
	unsigned int i;
	u8 sqe[64];

	for (i = 0; i < sizeof(aopc); i++)
		EXPECT_EQ(DNR | 0x01, adm(d, aopc[i], 0, 0, 0, 0, NULL))
			TH_LOG("admin opcode %#x", aopc[i]);
	for (i = 0; i < sizeof(iopc); i++) {
		drv_sqe(sqe, iopc[i], 1);
		drv_set_prp(sqe, self->page, 0);
		EXPECT_EQ(DNR | 0x01, io(d, 1, sqe))
			TH_LOG("I/O opcode %#x", iopc[i]);
	}
	EXPECT_EQ(0, (long)self->th.submits);
	drv_sqe(sqe, 0x0a, 0);
	drv_set_dw(sqe, 10, 0x07);
	sqe[1] = 0x01;
	EXPECT_EQ(DNR | 0x02, drv_admin(d, sqe, NULL));
	EXPECT_EQ(0, d->errors);
}

TEST_F(adm, ns_id_descriptor_lengths)
{
	static const u8 want[5] = { 0, 8, 16, 16, 1 };
	u8 *b = th_ptr(&self->th, self->page);
	int off = 0, n = 0;

	memset(b, 0xa5, 4096);
	ASSERT_EQ(0, adm(&self->d, 0x06, 1, 0x03, 0, self->page, NULL));
	while (off + 4 <= 4096 && b[off]) {
		ASSERT_LT(b[off], 5);
		EXPECT_EQ(want[b[off]], b[off + 1]) {
			TH_LOG("NIDT %u", b[off]);
		}
		off += 4 + b[off + 1];
		n++;
	}
	EXPECT_GT(n, 0);
}

TEST(weighted_round_robin)
{
	struct th th;
	struct drv d;
	u8 sqe[64];
	u64 cap;
	int q, i;

	th_init(&th, 5);
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 2048, 16);
	cap = emu_nvme_state(th.ctrl)->id.cap | (1ULL << 17);
	emu_nvme_set_hw(th.ctrl, cap, 0x10400, 17, 16, 16);
	emu_nvme_start_disabled(th.ctrl);
	ASSERT_EQ(0, drv_attach(&d, &th, 32));
	/* Switch to WRR: disable, set CC.AMS, enable. */
	drv_wreg(&d, EMU_REG_CC, drv_reg(&d, EMU_REG_CC, 4) & ~1ULL, 4);
	ASSERT_EQ(0, drv_wait_csts(&d, 1, 0));
	drv_wreg(&d, EMU_REG_CC, drv_reg(&d, EMU_REG_CC, 4) | (1U << 11) | 1,
		 4);
	ASSERT_EQ(0, drv_wait_csts(&d, 1, 1));
	ASSERT_EQ(0, drv_bringup(&d, 2, 64, 0, 1));
	/* Recreate SQ 1 as high priority, SQ 2 as low. */
	for (q = 1; q <= 2; q++) {
		drv_sqe(sqe, 0x00, 0);
		drv_set_dw(sqe, 10, (u32)q);
		ASSERT_EQ(0, drv_admin(&d, sqe, NULL));
		drv_sqe(sqe, 0x01, 0);
		drv_set_prp(sqe, d.q[q].sq, 0);
		drv_set_dw(sqe, 10, (63U << 16) | (u32)q);
		drv_set_dw(sqe, 11, ((u32)q << 16) | (q == 1 ? 2 : 6) | 1);
		ASSERT_EQ(0, drv_admin(&d, sqe, NULL));
		d.q[q].sq_tail = 0;
		d.q[q].sq_head = 0;
	}
	/* HPW 3 (4 commands), LPW 0 (1 command), no burst limit. */
	ASSERT_EQ(0, drv_set_feature(&d, 0x01, (3U << 24) | (1U << 16) | 7));
	th.sync = 1;
	for (q = 1; q <= 2; q++)
		for (i = 0; i < 16; i++) {
			drv_sqe(sqe, 0x00, 1);
			drv_submit(&d, (u16)q, sqe);
		}
	emu_nvme_poll(th.ctrl, 5);
	EXPECT_EQ(4, drv_reap(&d, 1));
	EXPECT_EQ(1, drv_reap(&d, 2));
	EXPECT_EQ(0, drv_drain(&d, 100));
	EXPECT_EQ(0, d.errors);
	th_fini(&th);
}

/*
 * A second Doorbell Buffer Config starts both new buffers from the queues'
 * current positions: each existing queue's slot holds the tail or head the
 * driver last rang, the admin queue's shadow slots included (SQ 0 tail at
 * 0, the tail that carried this command; CQ 0 head at 4, which the
 * driver's doorbell after the completion then mirrors), and the slots of
 * queues that do not exist are left as the host wrote them.
 */
TEST_F(adm, dbbuf_config_starts_from_current_positions)
{
	struct drv *d = &self->d;
	u64 dbs = th_alloc(&self->th, 8192, 4096), eis = dbs + 4096;
	u8 *b = th_ptr(&self->th, dbs), *e = th_ptr(&self->th, eis), sqe[64];
	int i;

	for (i = 0; i < 3; i++) {
		drv_sqe(sqe, 0x02, 1);
		drv_set_prp(sqe, self->page, 0);
		ASSERT_EQ(0, io(d, 1, sqe));
	}
	ASSERT_NE(0, d->q[1].sq_tail);
	memset(b, 0xa5, 4096);
	memset(e, 0xa5, 4096);
	drv_sqe(sqe, 0x7c, 0);
	drv_set_prp(sqe, dbs, eis);
	ASSERT_EQ(0, drv_admin(d, sqe, NULL));
	ASSERT_NE(0, d->q[0].sq_tail);
	EXPECT_EQ(d->q[0].sq_tail, emu_get_le32(b));
	EXPECT_EQ(d->q[0].cq_head, emu_get_le32(b + 4));
	/* CAP.DSTRD 0: SQ y tail at 8y, CQ y head at 8y + 4 */
	for (i = 1; i <= 4; i++) {
		EXPECT_EQ(d->q[i].sq_tail, emu_get_le32(b + 8 * i));
		EXPECT_EQ(d->q[i].cq_head, emu_get_le32(b + 8 * i + 4));
		EXPECT_EQ(d->q[i].sq_tail, emu_get_le32(e + 8 * i));
		EXPECT_EQ(d->q[i].cq_head, emu_get_le32(e + 8 * i + 4));
	}
	EXPECT_EQ(0xa5a5a5a5, emu_get_le32(b + 8 * 5));
	EXPECT_EQ(0xa5a5a5a5, emu_get_le32(b + 8 * 5 + 4));
	EXPECT_EQ(0xa5a5a5a5, emu_get_le32(e + 8 * 5));
	EXPECT_EQ(0, d->errors);
}

/*
 * The kernel places a CQ's head exactly only while one SQ feeds it
 * (emu_nvme_cq_counts_one_sq): a new CQ counts none, its first SQ makes
 * one, a second SQ on it ends the guarantee.
 */
TEST_F(adm, cq_counts_the_sqs_created_on_it)
{
	struct drv *d = &self->d;
	u64 cq = th_alloc(&self->th, 4096, 4096);
	u64 sq4 = th_alloc(&self->th, 4096, 4096);
	u64 sq3 = th_alloc(&self->th, 4096, 4096);
	struct emu_nvme_ctrl *c = self->th.ctrl;

	EXPECT_TRUE(emu_nvme_cq_counts_one_sq(c, 3));
	ASSERT_EQ(0, adm(d, 0x00, 0, 4, 0, 0, NULL));
	ASSERT_EQ(0, adm(d, 0x00, 0, 3, 0, 0, NULL));
	ASSERT_EQ(0, adm(d, 0x04, 0, 4, 0, 0, NULL));
	ASSERT_EQ(0, adm(d, 0x05, 0, (63U << 16) | 4, (1U << 16) | 3, cq,
			 NULL));
	EXPECT_TRUE(emu_nvme_cq_counts_one_sq(c, 4));
	ASSERT_EQ(0, adm(d, 0x01, 0, (63U << 16) | 4, (4U << 16) | 1, sq4,
			 NULL));
	EXPECT_TRUE(emu_nvme_cq_counts_one_sq(c, 4));
	ASSERT_EQ(0, adm(d, 0x01, 0, (63U << 16) | 3, (4U << 16) | 1, sq3,
			 NULL));
	EXPECT_FALSE(emu_nvme_cq_counts_one_sq(c, 4));
	EXPECT_FALSE(emu_nvme_cq_counts_one_sq(c, EMU_NVME_NR_Q));
	EXPECT_EQ(0, d->errors);
}

/*
 * A CQ head doorbell may free only entries the controller has posted: a
 * head inside the queue but past its tail is an Invalid Doorbell Write
 * Value (Asynchronous Event Information 01h, Error status) and leaves
 * the head where it was.
 */
TEST_F(adm, cq_head_past_the_tail_refused)
{
	const struct emu_nvme_state *st = emu_nvme_state(self->th.ctrl);
	struct drv *d = &self->d;
	u16 head = st->cq[0].head;
	u32 dw0;

	ASSERT_EQ(1, d->aer_outstanding);
	ASSERT_EQ(head, st->cq[0].tail);
	ASSERT_EQ(head, d->q[0].cq_head);
	emu_nvme_doorbell_write(self->th.ctrl, 0x1000 + 4,
				(head + 2U) % st->cq[0].size);
	EXPECT_EQ(head, st->cq[0].head);
	/* The event took the AER, posted where the driver's head is. */
	EXPECT_EQ(1, drv_reap(d, 0));
	EXPECT_EQ(1, d->aer_done);
	EXPECT_EQ(0x010100, d->aer_dw0);
	EXPECT_EQ((head + 1U) % st->cq[0].size, st->cq[0].head);
	/* The admin queue goes on. */
	EXPECT_EQ(0, adm(d, 0x0a, 0, 0x07, 0, 0, &dw0));
	EXPECT_EQ(0, d->errors) {
		TH_LOG("%s", d->why);
	}
}

/*
 * The observer learns a feature from a Get Features only when it returned
 * the current value (SEL 000b): the default (001b), saved (010b) and
 * supported capabilities (011b) answers teach it nothing. Interrupt
 * Coalescing (08h) and Arbitration (01h), as a VF answered them.
 */
TEST(observer_learns_only_current_features)
{
	static struct th th;
	const struct emu_nvme_state *st;
	u8 sqe[64], cqe[16];
	u32 sel, coal, arb;

	th_init(&th, th_seed(0x0b5e));
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 2048, 16);
	ASSERT_EQ(EMU_NVME_MODE_OBSERVE, emu_nvme_get_mode(th.ctrl));
	st = emu_nvme_state(th.ctrl);
	coal = st->feat.irq_coal;
	arb = st->feat.arb;
	for (sel = 0; sel <= 3; sel++) {
		memset(cqe, 0, sizeof(cqe));
		drv_sqe(sqe, 0x0a, 0);
		emu_put_le16(sqe + 2, (u16)(10 + sel));
		drv_set_dw(sqe, 10, (sel << 8) | 0x08);
		emu_nvme_observe_admin(th.ctrl, sqe, NULL, NULL, 0);
		emu_put_le32(cqe, 0x0a05 + sel);
		emu_put_le16(cqe + 12, (u16)(10 + sel));
		emu_nvme_observe_admin(th.ctrl, sqe, cqe, NULL, 0);
		drv_set_dw(sqe, 10, (sel << 8) | 0x01);
		emu_put_le32(cqe, 0x01020303 + sel);
		emu_nvme_observe_admin(th.ctrl, sqe, NULL, NULL, 0);
		emu_nvme_observe_admin(th.ctrl, sqe, cqe, NULL, 0);
		if (!sel) {
			EXPECT_EQ(0x0a05U, st->feat.irq_coal);
			EXPECT_EQ(0x01020303U, st->feat.arb);
			coal = st->feat.irq_coal;
			arb = st->feat.arb;
		} else {
			EXPECT_EQ(coal, st->feat.irq_coal) TH_LOG("sel %u", sel);
			EXPECT_EQ(arb, st->feat.arb) TH_LOG("sel %u", sel);
		}
	}
	th_fini(&th);
}

/*
 * Doorbell Buffer Config after I/O on plain doorbell registers: the shadow
 * and EventIdx buffers start from every queue's current positions, the CQ
 * heads included, though no shadow buffer ever held them before.
 */
TEST(dbbuf_config_after_register_doorbells)
{
	static struct th th;
	static struct drv d;
	u64 dbs, eis, page;
	u8 sqe[64], *b, *e;
	int i, k;

	ASSERT_EQ(0, drv_start(&d, &th, th_seed(0xdb0f)));
	ASSERT_EQ(0, drv_bringup(&d, 4, 64, 0, 1));
	page = th_alloc(&th, 4096, 4096);
	dbs = th_alloc(&th, 8192, 4096);
	eis = dbs + 4096;
	b = th_ptr(&th, dbs);
	e = th_ptr(&th, eis);
	/* i reads on queue i: every queue at another position. */
	for (i = 1; i <= 4; i++)
		for (k = 0; k < i; k++) {
			drv_sqe(sqe, 0x02, 1);
			drv_set_prp(sqe, page, 0);
			ASSERT_EQ(0, io(&d, (u16)i, sqe));
		}
	memset(b, 0xa5, 4096);
	memset(e, 0xa5, 4096);
	drv_sqe(sqe, 0x7c, 0);
	drv_set_prp(sqe, dbs, eis);
	ASSERT_EQ(0, drv_admin(&d, sqe, NULL));
	/* CAP.DSTRD 0: SQ y tail at 8y, CQ y head at 8y + 4 */
	for (i = 1; i <= 4; i++) {
		ASSERT_EQ(i, d.q[i].cq_head);
		EXPECT_EQ(d.q[i].sq_tail, emu_get_le32(b + 8 * i));
		EXPECT_EQ(d.q[i].cq_head, emu_get_le32(b + 8 * i + 4));
		EXPECT_EQ(d.q[i].sq_tail, emu_get_le32(e + 8 * i));
		EXPECT_EQ(d.q[i].cq_head, emu_get_le32(e + 8 * i + 4));
	}
	EXPECT_EQ(0, d.errors);
	th_fini(&th);
}

/*
 * The observer takes ASQ and ACQ as the controller does: bits 11:00 are
 * reserved (NVMe 2.0, Admin Submission / Completion Queue Base Address
 * properties), so the base it keeps, and the admin queues it sets up on
 * CC.EN, have them clear, whether a register was written whole (8 bytes)
 * or in halves.
 */
TEST(observer_asq_acq_reserved_bits)
{
	static struct th th;
	const struct emu_nvme_state *st;
	int sz;

	for (sz = 4; sz <= 8; sz += 4) {
		th_init(&th, th_seed(0xac0 + sz));
		th_new_ctrl(&th);
		th_load_identity(&th, 12, 2048, 16);
		ASSERT_EQ(EMU_NVME_MODE_OBSERVE, emu_nvme_get_mode(th.ctrl));
		st = emu_nvme_state(th.ctrl);
		emu_nvme_observe_reg_write(th.ctrl, EMU_REG_AQA, 0x001f001f, 4);
		if (sz == 8) {
			emu_nvme_observe_reg_write(th.ctrl, EMU_REG_ASQ,
						   0x123456000ULL | 0xfff, 8);
			emu_nvme_observe_reg_write(th.ctrl, EMU_REG_ACQ,
						   0x123458000ULL | 0x001, 8);
		} else {
			emu_nvme_observe_reg_write(th.ctrl, EMU_REG_ASQ,
						   0x23456fff, 4);
			emu_nvme_observe_reg_write(th.ctrl, EMU_REG_ASQ + 4, 1,
						   4);
			emu_nvme_observe_reg_write(th.ctrl, EMU_REG_ACQ,
						   0x23458001, 4);
			emu_nvme_observe_reg_write(th.ctrl, EMU_REG_ACQ + 4, 1,
						   4);
		}
		EXPECT_EQ(0x123456000ULL, st->regs.asq) TH_LOG("size %d", sz);
		EXPECT_EQ(0x123458000ULL, st->regs.acq) TH_LOG("size %d", sz);
		emu_nvme_observe_reg_write(th.ctrl, EMU_REG_CC,
					   (6U << 16) | (4U << 20) | 1, 4);
		EXPECT_EQ(0x123456000ULL, st->sq[0].base) TH_LOG("size %d", sz);
		EXPECT_EQ(0x123458000ULL, st->cq[0].base) TH_LOG("size %d", sz);
		th_fini(&th);
	}
}

/*
 * An Identify the observer sees is kept under the command's whole key,
 * CDW10 CNTID (bits 31:16) included: the identity it learns is the same
 * as one the page was loaded into with that CNTID, not another.
 */
TEST(observer_keeps_the_identify_cntid)
{
	static struct th th, th2;
	static struct emu_nvme_identity id;
	static u8 page[4096];
	u8 sqe[64], cqe[16];
	int i;

	th_init(&th, th_seed(0xc47));
	th_new_ctrl(&th);
	th_load_identity(&th, 12, 2048, 16);
	ASSERT_EQ(EMU_NVME_MODE_OBSERVE, emu_nvme_get_mode(th.ctrl));
	th_init(&th2, th_seed(0xc48));
	th_new_ctrl(&th2);
	th_load_identity(&th2, 12, 2048, 16);
	for (i = 0; i < 4096; i++)
		page[i] = (u8)(i * 5 + 1);
	/* CNS 13h (controller list) starting at controller 3 */
	drv_sqe(sqe, 0x06, 0);
	emu_put_le16(sqe + 2, 7);
	drv_set_dw(sqe, 10, (3U << 16) | 0x13);
	memset(cqe, 0, sizeof(cqe));
	emu_put_le16(cqe + 12, 7);
	emu_nvme_observe_admin(th.ctrl, sqe, NULL, NULL, 0);
	emu_nvme_observe_admin(th.ctrl, sqe, cqe, page, sizeof(page));
	ASSERT_EQ(0, emu_nvme_load_identify(th2.ctrl, 0x13, 0, 0, 3, page));
	EXPECT_TRUE(emu_nvme_identity_same(&emu_nvme_state(th.ctrl)->id,
					   &emu_nvme_state(th2.ctrl)->id));
	id = emu_nvme_state(th2.ctrl)->id;
	for (i = 0; i < EMU_NVME_MAX_IDPAGES; i++)
		if (id.pages[i].valid && id.pages[i].cns == 0x13)
			id.pages[i].cntid = 1;
	EXPECT_FALSE(emu_nvme_identity_same(&emu_nvme_state(th.ctrl)->id,
					    &id));
	th_fini(&th);
	th_fini(&th2);
}

TEST_HARNESS_MAIN
