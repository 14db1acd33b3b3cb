// SPDX-License-Identifier: GPL-2.0-only
/*
 * The storage copy's parsers (userspace/storage_parse.c) on what the
 * kernel prints and on hostile text: TARGET and --listen strings, the
 * /dev/nvme-fabrics reply, sysfs numbers and names, device-mapper mirror
 * status and table lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "hbamig_exit.h"
#include "storage.h"

TEST(target_good)
{
	struct stor_target t;
	char buf[300];

	ASSERT_EQ(0, stor_parse_target("tcp://10.0.0.2:4420/nqn.2014-08.org.emuhba:copy:0000:01:00.1", &t));
	EXPECT_FALSE(t.ipv6);
	EXPECT_STREQ("10.0.0.2", t.addr);
	EXPECT_EQ(4420, t.port);
	EXPECT_STREQ("nqn.2014-08.org.emuhba:copy:0000:01:00.1", t.nqn);
	ASSERT_EQ(0, stor_format_target(&t, buf, sizeof(buf)));
	EXPECT_STREQ("tcp://10.0.0.2:4420/nqn.2014-08.org.emuhba:copy:0000:01:00.1", buf);

	ASSERT_EQ(0, stor_parse_target("tcp://[fd00::1]:1/nqn.x", &t));
	EXPECT_TRUE(t.ipv6);
	EXPECT_STREQ("fd00::1", t.addr);
	EXPECT_EQ(1, t.port);
	ASSERT_EQ(0, stor_format_target(&t, buf, sizeof(buf)));
	EXPECT_STREQ("tcp://[fd00::1]:1/nqn.x", buf);
	EXPECT_EQ(-ENOSPC, stor_format_target(&t, buf, 10));
}

TEST(target_hostile)
{
	static const char *const bad[] = {
		"", "tcp://", "tcp:/10.0.0.1:4420/nqn.x", "udp://10.0.0.1:1/nqn.x",
		"TCP://10.0.0.1:1/nqn.x", "tcp://10.0.0.1/nqn.x",
		"tcp://10.0.0.1:/nqn.x", "tcp://10.0.0.1:0/nqn.x",
		"tcp://10.0.0.1:65536/nqn.x", "tcp://10.0.0.1:99999999999999999999/nqn.x",
		"tcp://10.0.0.1:-1/nqn.x", "tcp://10.0.0.1:+1/nqn.x",
		"tcp://10.0.0.1:01/nqn.x", "tcp://10.0.0.1:1 /nqn.x",
		"tcp://10.0.0.1:1/", "tcp://10.0.0.1:1/nqn.", "tcp://10.0.0.1:1/iqn.x",
		"tcp://10.0.0.1:1/nqn.x,hostnqn=nqn.evil",
		"tcp://10.0.0.1:1/nqn.x\n", "tcp://10.0.0.1:1/nqn.x y",
		"tcp://10.0.0.1:1/nqn.x=1", "tcp://10.0.0.1:1/nqn.x/y",
		"tcp://10.0.0.1:1/nqn.\xc3\xa9", "tcp://1:1/nqn.x",
		"tcp://0x0a000001:1/nqn.x", "tcp://10.0.0.256:1/nqn.x",
		"tcp://host.example:1/nqn.x", "tcp://[fd00::1/nqn.x",
		"tcp://[]:1/nqn.x", "tcp://fd00::1:1/nqn.x", "tcp://[10.0.0.1]:1/nqn.x",
		"tcp://[fd00::1]/nqn.x", "tcp://[fd00::1]x:1/nqn.x",
		"tcp://[fd00::1%eth0]:1/nqn.x",
	};
	struct stor_target t;
	char longnqn[400];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&t, 0x5a, sizeof(t));
		EXPECT_NE(0, stor_parse_target(bad[i], &t)) {
			TH_LOG("accepted \"%s\"", bad[i]);
		}
	}
	EXPECT_NE(0, stor_parse_target(NULL, &t));
	/* 223 bytes are an NQN, 224 are not. */
	strcpy(longnqn, "tcp://10.0.0.1:1/nqn.");
	memset(longnqn + strlen(longnqn), 'a', 219);
	longnqn[17 + 223] = 0;
	EXPECT_EQ(0, stor_parse_target(longnqn, &t));
	EXPECT_EQ(223, (int)strlen(t.nqn));
	strcat(longnqn, "a");
	EXPECT_NE(0, stor_parse_target(longnqn, &t));
}

/* Hosts longer than any address, up to and past the whole struct. */
TEST(target_long_host)
{
	/* The longest IPv6 text, INET6_ADDRSTRLEN - 1 = 45 bytes, fits. */
	static const char v6max[] = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
	static const int lens[] = { 46, 499 };
	struct stor_target t;
	char buf[600], out[600];

	ASSERT_EQ(45, (int)strlen(v6max));
	snprintf(buf, sizeof(buf), "tcp://[%s]:65535/nqn.x", v6max);
	ASSERT_EQ(0, stor_parse_target(buf, &t));
	EXPECT_TRUE(t.ipv6);
	EXPECT_STREQ(v6max, t.addr);
	EXPECT_EQ(65535, t.port);
	ASSERT_EQ(0, stor_format_target(&t, out, sizeof(out)));
	EXPECT_STREQ(buf, out);
	ASSERT_EQ(0, stor_parse_target("tcp://255.255.255.255:65535/nqn.x", &t));
	EXPECT_STREQ("255.255.255.255", t.addr);

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		int n = lens[i];

		snprintf(buf, sizeof(buf), "tcp://%0*d:1/nqn.x", n, 1);
		EXPECT_NE(0, stor_parse_target(buf, &t)) {
			TH_LOG("accepted a %d-byte host", n);
		}
		snprintf(buf, sizeof(buf), "%0*d:1", n, 1);
		EXPECT_NE(0, stor_parse_listen(buf, &t));
		snprintf(buf, sizeof(buf), "tcp://[%0*d]:1/nqn.x", n, 1);
		EXPECT_NE(0, stor_parse_target(buf, &t)) {
			TH_LOG("accepted a %d-byte [host]", n);
		}
	}
}

TEST(listen)
{
	struct stor_target t;

	ASSERT_EQ(0, stor_parse_listen("10.0.0.2", &t));
	EXPECT_EQ(STOR_DEF_PORT, t.port);
	ASSERT_EQ(0, stor_parse_listen("10.0.0.2:4421", &t));
	EXPECT_EQ(4421, t.port);
	ASSERT_EQ(0, stor_parse_listen("[fd00::2]", &t));
	EXPECT_TRUE(t.ipv6);
	ASSERT_EQ(0, stor_parse_listen("[fd00::2]:9", &t));
	EXPECT_EQ(9, t.port);
	EXPECT_EQ(-EADDRNOTAVAIL, stor_parse_listen("0.0.0.0", &t));
	EXPECT_EQ(-EADDRNOTAVAIL, stor_parse_listen("[::]:4420", &t));
	EXPECT_NE(0, stor_parse_listen("", &t));
	EXPECT_NE(0, stor_parse_listen(":4420", &t));
	EXPECT_NE(0, stor_parse_listen("10.0.0.2:", &t));
	EXPECT_NE(0, stor_parse_listen("10.0.0.2:4420:1", &t));
	EXPECT_NE(0, stor_parse_listen("fd00::2", &t));
	EXPECT_NE(0, stor_parse_listen("10.0.0.2/24", &t));
	EXPECT_NE(0, stor_parse_listen("10.0.0.2:70000", &t));
}

TEST(nqn)
{
	EXPECT_TRUE(stor_valid_nqn("nqn.2014-08.org.nvmexpress:uuid:0f7c3a1e-1e3b-4b7a-9e3c-1a2b3c4d5e6f"));
	EXPECT_FALSE(stor_valid_nqn("nqn."));
	EXPECT_FALSE(stor_valid_nqn("nqn.a,b"));
	EXPECT_FALSE(stor_valid_nqn("nqn.a b"));
	EXPECT_FALSE(stor_valid_nqn("nqn.a\n"));
	EXPECT_FALSE(stor_valid_nqn("xnqn.a"));
	EXPECT_FALSE(stor_valid_nqn(NULL));
}

TEST(fabrics_options)
{
	struct stor_target t;
	char buf[1024];

	ASSERT_EQ(0, stor_parse_target("tcp://10.0.0.2:4420/nqn.2014-08.org.emuhba:copy:0000:01:00.1", &t));
	ASSERT_EQ(0, stor_fabrics_options(&t, NULL, NULL, buf, sizeof(buf)));
	EXPECT_STREQ("nqn=nqn.2014-08.org.emuhba:copy:0000:01:00.1,transport=tcp,traddr=10.0.0.2,trsvcid=4420,ctrl_loss_tmo=15,fast_io_fail_tmo=2,reconnect_delay=2,keep_alive_tmo=5", buf);
	ASSERT_EQ(0, stor_fabrics_options(&t, "nqn.h", "0f7c3a1e-1e3b-4b7a-9e3c-1a2b3c4d5e6f", buf, sizeof(buf)));
	EXPECT_NE(NULL, strstr(buf, ",hostnqn=nqn.h,hostid=0f7c3a1e-1e3b-4b7a-9e3c-1a2b3c4d5e6f,"));
	/* Both or neither: the kernel pairs them. */
	EXPECT_EQ(-EINVAL, stor_fabrics_options(&t, "nqn.h", NULL, buf, sizeof(buf)));
	EXPECT_EQ(-EINVAL, stor_fabrics_options(&t, NULL, "0f7c3a1e-1e3b-4b7a-9e3c-1a2b3c4d5e6f", buf, sizeof(buf)));
	/* Neither can smuggle options in. */
	EXPECT_EQ(-EINVAL, stor_fabrics_options(&t, "nqn.h,ctrl_loss_tmo=-1", "0f7c3a1e-1e3b-4b7a-9e3c-1a2b3c4d5e6f", buf, sizeof(buf)));
	EXPECT_EQ(-EINVAL, stor_fabrics_options(&t, "nqn.h", "0f7c3a1e-1e3b-4b7a-9e3c-1a2b3c4d5e6,", buf, sizeof(buf)));
	EXPECT_EQ(-ENOSPC, stor_fabrics_options(&t, NULL, NULL, buf, 20));
	EXPECT_TRUE(stor_valid_uuid("0F7C3A1E-1E3B-4B7A-9E3C-1A2B3C4D5E6F"));
	/* 8-4-4-4-12 hex digits (RFC 4122 3): 36 characters, no more, no less. */
	EXPECT_FALSE(stor_valid_uuid("0f7c3a1e-1e3b-4b7a-9e3c-1a2b3c4d5e6"));
	EXPECT_FALSE(stor_valid_uuid("0f7c3a1e-1e3b-4b7a-9e3c-1a2b3c4d5e6f0"));
	EXPECT_FALSE(stor_valid_uuid("0f7c3a1e-1e3b-4b7a-9e3c-1a2b3c4d5e6f\n"));
	EXPECT_FALSE(stor_valid_uuid(""));
	EXPECT_FALSE(stor_valid_uuid(NULL));
	EXPECT_EQ(-EINVAL, stor_fabrics_options(&t, "nqn.h", "0f7c3a1e-1e3b-4b7a-9e3c-1a2b3c4d5e6f0", buf, sizeof(buf)));
	EXPECT_FALSE(stor_valid_uuid("0f7c3a1e11e3b-4b7a-9e3c-1a2b3c4d5e6f"));
	EXPECT_FALSE(stor_valid_uuid("0f7c3a1e-1e3b-4b7a-9e3c-1a2b3c4d5e6g"));
}

TEST(fabrics_reply)
{
	static const char *const bad[] = {
		"", "instance=", "instance=1", "instance=1,cntlid=",
		"instance=1,cntlid=2,", "instance=1,cntlid=2\n\n",
		"instance=-1,cntlid=2", "instance=1,cntlid=65536",
		"instance=2147483648,cntlid=1", "instance=99999999999999999999999,cntlid=1",
		"instance= 1,cntlid=2", "Instance=1,cntlid=2", "cntlid=2,instance=1",
		"instance=1;cntlid=2", "instance=0x1,cntlid=2", "instance=01,cntlid=2",
	};
	int inst = -7, cntlid = -7;

	ASSERT_EQ(0, stor_parse_fabrics_reply("instance=3,cntlid=1\n", &inst, &cntlid));
	EXPECT_EQ(3, inst);
	EXPECT_EQ(1, cntlid);
	ASSERT_EQ(0, stor_parse_fabrics_reply("instance=0,cntlid=65535", &inst, &cntlid));
	EXPECT_EQ(0, inst);
	EXPECT_EQ(65535, cntlid);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		inst = cntlid = -7;
		EXPECT_NE(0, stor_parse_fabrics_reply(bad[i], &inst, &cntlid)) {
			TH_LOG("accepted \"%s\"", bad[i]);
		}
		EXPECT_EQ(-7, inst);
	}
}

TEST(sysfs_numbers)
{
	unsigned int ma = 0, mi = 0;
	u64 v = 7;

	EXPECT_EQ(0, stor_parse_u64("131072\n", &v));
	EXPECT_EQ(131072, v);
	EXPECT_EQ(0, stor_parse_u64("0", &v));
	EXPECT_EQ(-EINVAL, stor_parse_u64(NULL, &v));
	EXPECT_EQ(0, v);
	EXPECT_EQ(0, stor_parse_u64("18446744073709551615", &v));
	EXPECT_EQ(UINT64_MAX, v);
	EXPECT_EQ(-ERANGE, stor_parse_u64("18446744073709551616", &v));
	EXPECT_NE(0, stor_parse_u64("", &v));
	EXPECT_NE(0, stor_parse_u64("\n", &v));
	EXPECT_NE(0, stor_parse_u64("-1", &v));
	EXPECT_NE(0, stor_parse_u64(" 1", &v));
	EXPECT_NE(0, stor_parse_u64("1 ", &v));
	EXPECT_NE(0, stor_parse_u64("1\n\n", &v));
	EXPECT_NE(0, stor_parse_u64("0x10", &v));
	EXPECT_NE(0, stor_parse_u64("512k", &v));
	EXPECT_EQ(UINT64_MAX, v);

	EXPECT_EQ(0, stor_parse_devnum("259:3\n", &ma, &mi));
	EXPECT_EQ(259, ma);
	EXPECT_EQ(3, mi);
	EXPECT_EQ(0, stor_parse_devnum("4095:1048575", &ma, &mi));
	EXPECT_EQ(-ERANGE, stor_parse_devnum("4096:0", &ma, &mi));
	EXPECT_EQ(-ERANGE, stor_parse_devnum("1:1048576", &ma, &mi));
	EXPECT_NE(0, stor_parse_devnum("259", &ma, &mi));
	EXPECT_NE(0, stor_parse_devnum("259:", &ma, &mi));
	EXPECT_NE(0, stor_parse_devnum(":3", &ma, &mi));
	EXPECT_NE(0, stor_parse_devnum("259:3:1", &ma, &mi));
	EXPECT_NE(0, stor_parse_devnum("259 :3", &ma, &mi));
}

TEST(ns_entries)
{
	char disk[32];
	u32 nsid = 0;

	ASSERT_EQ(0, stor_parse_ns_entry("nvme2n1", disk, sizeof(disk), &nsid));
	EXPECT_STREQ("nvme2n1", disk);
	EXPECT_EQ(1, nsid);
	/* Native multipath: the path's block device is the subsystem's head. */
	ASSERT_EQ(0, stor_parse_ns_entry("nvme1c3n2", disk, sizeof(disk), &nsid));
	EXPECT_STREQ("nvme1n2", disk);
	EXPECT_EQ(2, nsid);
	EXPECT_NE(0, stor_parse_ns_entry("nvme2", disk, sizeof(disk), &nsid));
	EXPECT_NE(0, stor_parse_ns_entry("nvme2n0", disk, sizeof(disk), &nsid));
	EXPECT_NE(0, stor_parse_ns_entry("nvme2n1p1", disk, sizeof(disk), &nsid));
	EXPECT_NE(0, stor_parse_ns_entry("nvme2c3", disk, sizeof(disk), &nsid));
	EXPECT_NE(0, stor_parse_ns_entry("nvme2cn1", disk, sizeof(disk), &nsid));
	EXPECT_NE(0, stor_parse_ns_entry("nvmen1", disk, sizeof(disk), &nsid));
	EXPECT_NE(0, stor_parse_ns_entry("ng2n1", disk, sizeof(disk), &nsid));
	EXPECT_NE(0, stor_parse_ns_entry("nvme99999999999n1", disk, sizeof(disk), &nsid));
	EXPECT_EQ(-ENOSPC, stor_parse_ns_entry("nvme1c3n2", disk, 4, &nsid));
}

TEST(ctrl_state)
{
	EXPECT_EQ(STOR_CTRL_LIVE, stor_parse_ctrl_state("live\n"));
	EXPECT_EQ(STOR_CTRL_CONNECTING, stor_parse_ctrl_state("connecting"));
	EXPECT_EQ(STOR_CTRL_DELETING_NOIO, stor_parse_ctrl_state("deleting (no IO)"));
	EXPECT_EQ(STOR_CTRL_UNKNOWN, stor_parse_ctrl_state("liveX"));
	EXPECT_EQ(STOR_CTRL_UNKNOWN, stor_parse_ctrl_state("liv"));
	EXPECT_EQ(STOR_CTRL_UNKNOWN, stor_parse_ctrl_state(""));
	EXPECT_EQ(STOR_CTRL_UNKNOWN, stor_parse_ctrl_state(NULL));
	EXPECT_STREQ("live", stor_ctrl_state_name(STOR_CTRL_LIVE));
	EXPECT_STREQ("unknown", stor_ctrl_state_name((enum stor_ctrl_state)99));
}

TEST(mirror_status)
{
	struct stor_mirror_status st;

	/* dm-raid1's STATUSTYPE_INFO with a core log. */
	ASSERT_EQ(0, stor_parse_mirror_status("2 7:0 259:1 37/128 1 AA 1 core", &st));
	EXPECT_EQ(2, st.legs);
	EXPECT_EQ(7, st.maj[0]);
	EXPECT_EQ(259, st.maj[1]);
	EXPECT_EQ(1, st.min[1]);
	EXPECT_EQ(37, st.in_sync);
	EXPECT_EQ(128, st.regions);
	EXPECT_STREQ("AA", st.health);
	EXPECT_STREQ("core", st.log);
	EXPECT_EQ(-1, stor_mirror_failed_leg(&st));
	ASSERT_EQ(0, stor_parse_mirror_status("2 7:0 259:1 128/128 1 AD 1 core \n", &st));
	EXPECT_EQ(1, stor_mirror_failed_leg(&st));
	/* A disk log, for completeness. */
	ASSERT_EQ(0, stor_parse_mirror_status("2 7:0 259:1 1/2 1 SA 3 disk 7:5 A", &st));
	EXPECT_EQ(0, stor_mirror_failed_leg(&st));
	EXPECT_STREQ("disk", st.log);
	/* "COUNT NAME [ARGS]": COUNT - 1 arguments follow the name. */
	ASSERT_EQ(0, stor_parse_mirror_status("2 7:0 259:1 1/2 1 AA 2 userspace x", &st));
	EXPECT_STREQ("userspace", st.log);
	EXPECT_NE(0, stor_parse_mirror_status("2 7:0 259:1 1/2 1 AA 3 userspace x", &st));
	/* dm-log's own have 1 or 3; the parser's bound is 8, then refuses. */
	ASSERT_EQ(0, stor_parse_mirror_status("2 7:0 259:1 1/2 1 AA 8 userspace a b c d e f g", &st));
	EXPECT_STREQ("userspace", st.log);
	EXPECT_NE(0, stor_parse_mirror_status("2 7:0 259:1 1/2 1 AA 9 userspace a b c d e f g h", &st));
}

/*
 * The result depends on the text alone: what an earlier, larger status
 * left behind (legs, health, log name) does not show through.
 */
TEST(mirror_status_no_leftovers)
{
	static const char *const before[] = {
		"8 1:1 1:1 1:1 1:1 1:1 1:1 1:1 1:1 1/1 1 DDDDDDDD 3 userspace aaaaaaaaa b",
		"8 2:2 2:2 2:2 2:2 2:2 2:2 2:2 2:2 2/2 1 SSSSSSSS 3 disk 3:3 A",
	};
	struct stor_mirror_status st[2];

	for (int i = 0; i < 2; i++) {
		memset(&st[i], 0, sizeof(st[i]));
		ASSERT_EQ(0, stor_parse_mirror_status(before[i], &st[i]));
		ASSERT_EQ(0, stor_parse_mirror_status("1 7:0 5/9 1 A 1 core", &st[i]));
	}
	EXPECT_EQ(1, st[0].legs);
	EXPECT_EQ(st[0].legs, st[1].legs);
	EXPECT_EQ(st[0].in_sync, st[1].in_sync);
	EXPECT_EQ(st[0].regions, st[1].regions);
	for (int l = 0; l < STOR_MIRROR_LEGS; l++) {
		EXPECT_EQ(st[0].maj[l], st[1].maj[l]) {
			TH_LOG("leg %d", l);
		}
		EXPECT_EQ(st[0].min[l], st[1].min[l]) {
			TH_LOG("leg %d", l);
		}
	}
	EXPECT_EQ(0, memcmp(st[0].health, st[1].health, sizeof(st[0].health)));
	EXPECT_EQ(0, memcmp(st[0].log, st[1].log, sizeof(st[0].log)));
	EXPECT_STREQ("A", st[0].health);
	EXPECT_STREQ("core", st[0].log);
}

TEST(mirror_status_hostile)
{
	static const char *const bad[] = {
		"", "2", "2 7:0", "2 7:0 259:1", "2 7:0 259:1 37/128",
		"2 7:0 259:1 37/128 1 AA", "2 7:0 259:1 37/128 1 AA 1",
		"2 7:0 259:1 129/128 1 AA 1 core", "2 7:0 259:1 0/0 1 AA 1 core",
		"2 7:0 259:1 37/128 1 A 1 core", "2 7:0 259:1 37/128 1 AAA 1 core",
		"2 7:0 259:1 37/128 1 AX 1 core", "2 7:0 259:1 37/128 2 AA 1 core",
		"2 7:0 259:1 37/128 1 AA 2 core", "2 7:0 259:1 37/128 1 AA 1 core x",
		"0 37/128 1  1 core", "9 1:1 1:1 1:1 1:1 1:1 1:1 1:1 1:1 1:1 0/1 1 AAAAAAAAA 1 core",
		"2 7:0  259:1 37/128 1 AA 1 core", "2 7:0 259:1 -1/128 1 AA 1 core",
		"2 7:0 259:1 37/18446744073709551616 1 AA 1 core",
		"2 7 259:1 37/128 1 AA 1 core", "2 7:0 259:1 37 128 1 AA 1 core",
		"2 7:0 259:1 37/128 1 AA 9 core", "2 7:0 259:1 37/128 1 AA 0 core",
		"2 7:0 259:1 37/128 1 AA 1 corecorecorecorecore",
	};
	struct stor_mirror_status st;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_NE(0, stor_parse_mirror_status(bad[i], &st)) {
			TH_LOG("accepted \"%s\"", bad[i]);
		}
	}
	EXPECT_NE(0, stor_parse_mirror_status(NULL, &st));
}

TEST(mirror_table)
{
	struct stor_mirror_status st;

	ASSERT_EQ(0, stor_parse_mirror_table("core 2 1024 sync 2 7:0 0 259:1 0 1 handle_errors", &st));
	EXPECT_EQ(2, st.legs);
	EXPECT_EQ(7, st.maj[0]);
	EXPECT_EQ(0, st.min[0]);
	EXPECT_EQ(259, st.maj[1]);
	ASSERT_EQ(0, stor_parse_mirror_table("core 1 1024 2 7:0 0 259:1 0", &st));
	EXPECT_STREQ("core", st.log);
	EXPECT_NE(0, stor_parse_mirror_table("core 1 1024 2 7:0 0 259:1", &st));
	EXPECT_NE(0, stor_parse_mirror_table("core 1 1024 2 7:0 0", &st));
	EXPECT_NE(0, stor_parse_mirror_table("core 9 1024", &st));
	EXPECT_NE(0, stor_parse_mirror_table("", &st));
	EXPECT_NE(0, stor_parse_mirror_table("core 1 1024 0", &st));
}

TEST(region_size)
{
	EXPECT_EQ(8192, stor_region_sectors(131072));		/* 64 MiB */
	EXPECT_EQ(8192, stor_region_sectors(1ull << 33));	/* 4 TiB */
	EXPECT_EQ(16384, stor_region_sectors((1ull << 33) + 8192));
	/* 16 TiB in at most 1 Mi regions. */
	EXPECT_GE(1ull << 20, (1ull << 35) / stor_region_sectors(1ull << 35));
	EXPECT_EQ(1u << 30, stor_region_sectors(UINT64_MAX));
}

/* hbamig (HBAMIG, as run-tests sets it) with @argv; its exit status. */
static int run_hbamig(struct __test_metadata *_metadata, const char *const *argv)
{
	const char *h = getenv("HBAMIG");
	int st, fd;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execv(h, (char *const *)argv);
		_exit(127);
	}
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	ASSERT_TRUE(WIFEXITED(st)) {
		TH_LOG("%s %s: signal %d", argv[1], argv[2], WTERMSIG(st));
	}
	return WEXITSTATUS(st);
}

/*
 * "storage mirror DEVICE TARGET": exactly two operands, else a usage
 * error before anything is opened.
 */
TEST(mirror_operands)
{
	static const char *const none[] = { "hbamig", "storage", "mirror", NULL };
	static const char *const named[] = {
		"hbamig", "storage", "mirror", "--name", "c1", NULL
	};
	static const char *const three[] = {
		"hbamig", "storage", "mirror", "/dev/null",
		"tcp://10.0.0.1:4420/nqn.x", "extra", NULL
	};
	static const char *const two[] = {
		"hbamig", "storage", "mirror", "/dev/null",
		"tcp://10.0.0.1:4420/nqn.x", NULL
	};

	if (!getenv("HBAMIG"))
		SKIP(return, "HBAMIG (the hbamig program) not set");
	EXPECT_EQ(HBAMIG_EXIT_USAGE, run_hbamig(_metadata, none));
	EXPECT_EQ(HBAMIG_EXIT_USAGE, run_hbamig(_metadata, named));
	EXPECT_EQ(HBAMIG_EXIT_USAGE, run_hbamig(_metadata, three));
	/* Two go on, to the device: /dev/null is not a block device. */
	EXPECT_EQ(HBAMIG_EXIT_NODEV, run_hbamig(_metadata, two));
}

TEST_HARNESS_MAIN
