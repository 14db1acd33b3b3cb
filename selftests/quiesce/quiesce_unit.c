// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests of the quiescers' parsing and helpers (no privileges needed). */
#include <arpa/inet.h>
#include <string.h>

#include "kselftest_harness.h"
#include "quiesce.h"

TEST(conn_v4)
{
	struct quiesce_selection s = {};
	uint8_t a[4] = { 10, 0, 0, 2 };

	ASSERT_EQ(0, quiesce_sel_parse_conn(&s, "10.0.0.1:5000,10.0.0.2:4420"));
	ASSERT_EQ(1, s.nr);
	EXPECT_EQ(AF_INET, s.sel[0].family);
	EXPECT_EQ(5000, s.sel[0].lport);
	EXPECT_EQ(4420, s.sel[0].rport);
	EXPECT_TRUE(s.sel[0].has_laddr);
	EXPECT_EQ(0, memcmp(a, s.sel[0].raddr, 4));
}

TEST(conn_wildcards)
{
	struct quiesce_selection s = {};

	ASSERT_EQ(0, quiesce_sel_parse_conn(&s, "*,*:4420"));
	EXPECT_FALSE(s.sel[0].has_laddr);
	EXPECT_FALSE(s.sel[0].has_raddr);
	EXPECT_EQ(0, s.sel[0].lport);
	EXPECT_EQ(4420, s.sel[0].rport);
	ASSERT_EQ(0, quiesce_sel_parse_conn(&s, "[fd00::1]:1,fd00::2"));
	EXPECT_EQ(AF_INET6, s.sel[1].family);
	EXPECT_EQ(1, s.sel[1].lport);
	EXPECT_EQ(0, s.sel[1].rport);
	EXPECT_TRUE(s.sel[1].has_raddr);
}

TEST(conn_bad)
{
	struct quiesce_selection s = {};

	EXPECT_NE(0, quiesce_sel_parse_conn(&s, "10.0.0.1:5000"));
	EXPECT_NE(0, quiesce_sel_parse_conn(&s, "10.0.0.1:70000,*"));
	EXPECT_NE(0, quiesce_sel_parse_conn(&s, "10.0.0.1:x,*"));
	EXPECT_NE(0, quiesce_sel_parse_conn(&s, "10.0.0.1,fd00::1"));
	EXPECT_NE(0, quiesce_sel_parse_conn(&s, "nonsense,*"));
	EXPECT_EQ(0, s.nr);
}

TEST(budget_min)
{
	struct quiesce_budget b = {};

	EXPECT_EQ(NULL, quiesce_budget_min(&b));
	b.nr = 3;
	b.t[0].budget_ms = 30000;
	b.t[1].budget_ms = 5000;
	b.t[2].budget_ms = 15000;
	EXPECT_EQ(&b.t[1], quiesce_budget_min(&b));
}

TEST(budget_refuses_fixed_timer)
{
	const struct quiesce_timer *failed = NULL;
	struct quiesce_budget b = {};

	b.nr = 2;
	snprintf(b.t[0].name, sizeof(b.t[0].name), "nvme0 kato");
	b.t[0].budget_ms = 5000;
	b.t[0].scale_ms = 1000;
	b.t[0].extendable = false;
	/* An extendable timer that must not be touched when one is fixed. */
	snprintf(b.t[1].path, sizeof(b.t[1].path), "/nonexistent/io_timeout");
	b.t[1].budget_ms = 4000;
	b.t[1].scale_ms = 1;
	b.t[1].extendable = true;
	EXPECT_EQ(-EPERM, quiesce_budget_extend(&b, 8000, &failed));
	EXPECT_EQ(&b.t[0], failed);
	EXPECT_EQ(4000, b.t[1].budget_ms);
	/* Timers already long enough need no change. */
	EXPECT_EQ(0, quiesce_budget_extend(&b, 3000, &failed));
}

TEST(pfc_frame)
{
	const uint8_t src[6] = { 2, 0, 0, 0, 0, 1 };
	uint8_t f[60];

	ASSERT_EQ((size_t)60, quiesce_pfc_frame(f, src, 0x08, 0xffff));
	/* MAC control group address, our source, ethertype 0x8808. */
	EXPECT_EQ(0x01, f[0]);
	EXPECT_EQ(0x80, f[1]);
	EXPECT_EQ(0xc2, f[2]);
	EXPECT_EQ(0x01, f[5]);
	EXPECT_EQ(0, memcmp(f + 6, src, 6));
	EXPECT_EQ(0x88, f[12]);
	EXPECT_EQ(0x08, f[13]);
	/* PFC opcode 0x0101, class-enable vector 0x0008, time for class 3. */
	EXPECT_EQ(0x01, f[14]);
	EXPECT_EQ(0x01, f[15]);
	EXPECT_EQ(0x00, f[16]);
	EXPECT_EQ(0x08, f[17]);
	EXPECT_EQ(0xff, f[18 + 2 * 3]);
	EXPECT_EQ(0xff, f[19 + 2 * 3]);
	EXPECT_EQ(0, f[18 + 2 * 2]);
	EXPECT_EQ(0, f[18 + 2 * 4]);
	/* XON: the same frame with quanta 0. */
	quiesce_pfc_frame(f, src, 0x08, 0);
	EXPECT_EQ(0, f[18 + 2 * 3]);
	EXPECT_EQ(0, f[19 + 2 * 3]);
	/* 802.3x: opcode 0x0001 and one pause time. */
	quiesce_pfc_frame(f, src, 0, 0x1234);
	EXPECT_EQ(0x00, f[14]);
	EXPECT_EQ(0x01, f[15]);
	EXPECT_EQ(0x12, f[16]);
	EXPECT_EQ(0x34, f[17]);
}

TEST(pfc_quanta_time)
{
	/* 65535 quanta of 512 bit times: 3.355 ms at 10 Gb/s. */
	EXPECT_TRUE(quiesce_pfc_quanta_us(0xffff, 10000) > 3355.3);
	EXPECT_TRUE(quiesce_pfc_quanta_us(0xffff, 10000) < 3355.4);
	EXPECT_TRUE(quiesce_pfc_quanta_us(1, 100) > 5.11);
}

TEST_HARNESS_MAIN
