// SPDX-License-Identifier: GPL-2.0-only
/*
 * hbamig's netlink decoding and output, on messages built byte for byte as
 * the kernel builds them (same attributes, nesting, padding). Output is
 * compared with golden files in selftests/hbamig/golden/; set
 * HBAMIG_UPDATE_GOLDEN=1 to rewrite them after an intended change (the
 * test then fails: a rewrite is reviewed with git diff, never a pass, and
 * scripts/run-suite clears the variable, so `make check` cannot rewrite).
 */
#define _GNU_SOURCE	/* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/genetlink.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/emuhba.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include "kselftest_harness.h"
#include "hbamig.h"

#define FAM 0x23	/* a dynamic genl family id, as the kernel assigns */

/* Concatenation of messages, as one recv() returns them. */
struct buf {
	unsigned char d[65536];
	size_t len;
};

static void buf_add(struct buf *b, struct nl_msg *m)
{
	struct nlmsghdr *h = nlmsg_hdr(m);

	memcpy(b->d + b->len, h, h->nlmsg_len);
	b->len += NLMSG_ALIGN(h->nlmsg_len);
	nlmsg_free(m);
}

static struct nl_msg *genl_new(u8 cmd, int flags)
{
	struct nl_msg *m = nlmsg_alloc();

	genlmsg_put(m, 1234, 7, FAM, 0, flags, cmd, EMUHBA_FAMILY_VERSION);
	return m;
}

struct fake_adapter {
	u32 id;
	const char *bdf;
	u32 mode, mig;
	bool open;
	const char *backend;
	bool auto_switch, quiesce;
	u32 timeout;
	bool has_idle;		/* send idle-after; false: an older kernel */
	u32 idle;
	bool has_ns_copy;	/* send ns-copy; false: an older kernel */
	u8 ns_copy;
	u64 ctr[8];
	/* counters sent: 6 or 7 from older kernels, 8 from current ones */
	int nctr;
	u32 possrc;		/* position source; 0: not sent (older kernels) */
	bool ident;		/* send nsid, nguid, eui64, subnqn, guest */
	bool switched;
	s32 result;
	u64 t[5];
};

/* The attribute layout of emuhba_nl_fill_adapter(). */
static struct nl_msg *adapter_msg(const struct fake_adapter *a, u8 cmd,
				  int flags)
{
	struct nl_msg *m = genl_new(cmd, flags);
	struct nlattr *n;

	nla_put_u32(m, EMUHBA_A_ADAPTER_ID, a->id);
	nla_put_string(m, EMUHBA_A_ADAPTER_BDF, a->bdf);
	nla_put_u32(m, EMUHBA_A_ADAPTER_PERSONALITY,
		    EMUHBA_ADAPTER_PERSONALITY_NVME);
	nla_put_u32(m, EMUHBA_A_ADAPTER_MODE, a->mode);
	nla_put_u32(m, EMUHBA_A_ADAPTER_MIG_STATE, a->mig);
	nla_put_u8(m, EMUHBA_A_ADAPTER_OPEN, a->open);
	if (a->possrc)
		nla_put_u32(m, EMUHBA_A_ADAPTER_POSITION_SOURCE, a->possrc);
	nla_put_string(m, EMUHBA_A_ADAPTER_BACKEND, a->backend);
	n = nla_nest_start(m, EMUHBA_A_ADAPTER_POLICY);
	nla_put_u8(m, EMUHBA_A_POLICY_AUTO_SWITCH, a->auto_switch);
	nla_put_u8(m, EMUHBA_A_POLICY_QUIESCE_REQUIRED, a->quiesce);
	nla_put_u32(m, EMUHBA_A_POLICY_SWITCH_TIMEOUT, a->timeout);
	if (a->has_idle)
		nla_put_u32(m, EMUHBA_A_POLICY_IDLE_AFTER, a->idle);
	if (a->has_ns_copy)
		nla_put_u8(m, EMUHBA_A_POLICY_NS_COPY, a->ns_copy);
	nla_nest_end(m, n);
	n = nla_nest_start(m, EMUHBA_A_ADAPTER_COUNTERS);
	for (int i = 0; i < (a->nctr ? a->nctr : 6); i++)
		nla_put_u64(m, EMUHBA_A_COUNTERS_REG_TRAPS + i, a->ctr[i]);
	nla_nest_end(m, n);
	if (a->ident) {
		static const u8 nguid[16] = { 0x11, 0x22, [15] = 0xff };
		static const u8 eui64[8] = { 0x52, 0x54, 0, 0, 0, 0, 0, 1 };

		nla_put_u32(m, EMUHBA_A_ADAPTER_NSID, 1);
		nla_put(m, EMUHBA_A_ADAPTER_NGUID, sizeof(nguid), nguid);
		nla_put(m, EMUHBA_A_ADAPTER_EUI64, sizeof(eui64), eui64);
		nla_put_string(m, EMUHBA_A_ADAPTER_SUBNQN,
			       "nqn.2026-11.io.emuhba:subsys0");
		nla_put_u8(m, EMUHBA_A_ADAPTER_GUEST_IDENTITY, 1);
	}
	if (a->switched) {
		n = nla_nest_start(m, EMUHBA_A_ADAPTER_LAST_SWITCH);
		nla_put_u32(m, EMUHBA_A_SWITCH_TIMING_RESULT, (u32)a->result);
		nla_put_u32(m, EMUHBA_A_SWITCH_TIMING_FROM_MODE,
			    EMUHBA_ADAPTER_MODE_DIRECT);
		nla_put_u32(m, EMUHBA_A_SWITCH_TIMING_TO_MODE,
			    EMUHBA_ADAPTER_MODE_EMULATED);
		for (int i = 0; i < 5; i++)
			nla_put_u64(m, EMUHBA_A_SWITCH_TIMING_STOP_NS + i,
				    a->t[i]);
		nla_nest_end(m, n);
	}
	return m;
}

static const struct fake_adapter fa0 = {
	.id = 0, .bdf = "0000:01:00.1", .mode = EMUHBA_ADAPTER_MODE_DIRECT,
	.mig = 2, .backend = "auto", .auto_switch = true, .timeout = 2000,
	.ctr = { 12, 3, 0, 0, 0, 0 },
};

static const struct fake_adapter fa1 = {
	.id = 1, .bdf = "0000:01:00.2", .mode = EMUHBA_ADAPTER_MODE_EMULATED,
	.mig = 6, .open = true, .backend = "/dev/nvme0n1", .quiesce = true,
	.timeout = 500, .has_idle = true, .idle = 200,
	.has_ns_copy = true, .ns_copy = 1,
	.ctr = { 100, 42, 7777, 1, 0, 12345678901ULL, 2, 5 },
	.nctr = 8, .ident = true,
	.possrc = EMUHBA_ADAPTER_POSITION_SOURCE_TRAPPED_DOORBELLS,
	.switched = true, .t = { 1000, 2000, 3000, 4000, 15000 },
};

static void done_msg(struct buf *b, int err)
{
	struct nl_msg *m = nlmsg_alloc_simple(NLMSG_DONE, NLM_F_MULTI);

	nlmsg_append(m, &err, sizeof(err), NLMSG_ALIGNTO);
	buf_add(b, m);
}

/*
 * With HBAMIG_SEED_DIR set, every buffer decoded here is also written
 * there as a fuzzer seed (fuzz/hbamig), prefixed by the fuzzer's selector
 * byte.
 */
static void seed(const char *name, unsigned char sel, const void *d,
		 size_t len)
{
	const char *dir = getenv("HBAMIG_SEED_DIR");
	char path[512];
	FILE *f;

	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return;
	fputc(sel, f);
	fwrite(d, 1, len, f);
	fclose(f);
}

/* ---- output capture and golden files ---- */

struct cap {
	char *s;
	size_t len;
	FILE *f;
};

static void cap_start(struct cap *c, bool json, bool pretty)
{
	c->s = NULL;
	c->f = open_memstream(&c->s, &c->len);
	out_init(c->f, json, pretty);
}

static char *cap_end(struct cap *c)
{
	fclose(c->f);
	return c->s;
}

static int golden(const char *name, const char *got)
{
	char path[512], *want;
	long n;
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), "%s/%s", GOLDEN_DIR, name);
	if (getenv("HBAMIG_UPDATE_GOLDEN")) {
		f = fopen(path, "w");
		if (!f)
			return -1;
		fputs(got, f);
		fclose(f);
		fprintf(stderr, "# %s rewritten (HBAMIG_UPDATE_GOLDEN): review it, run again without\n",
			path);
		return -1;
	}
	f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "# missing golden file %s\n", path);
		return -1;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	want = calloc(1, n + 1);
	if (fread(want, 1, n, f) != (size_t)n)
		n = -1;
	fclose(f);
	ret = strcmp(want, got) ? -1 : 0;
	if (ret)
		fprintf(stderr, "# %s differs:\n# --- want\n%s# --- got\n%s",
			name, want, got);
	free(want);
	return ret;
}

static int print_adapter_cb(const struct hba_msg *m, void *arg)
{
	int *n = arg;

	(*n)++;
	hba_print_adapter(m);
	return 0;
}

static int print_event_cb(const struct hba_msg *m, void *arg)
{
	(void)arg;
	hba_print_event(m);
	return 0;
}

static int print_ctrl_cb(const void *nlh, void *arg)
{
	const char *name;
	u8 cmd;

	(void)arg;
	name = hba_parse_ctrl_family(nlh, &cmd);
	if (name && cmd == CTRL_CMD_DELFAMILY)
		hba_print_family_event(name, true);
	return 0;
}

static struct buf *dump_buf(void)
{
	static struct buf b;

	b.len = 0;
	buf_add(&b, adapter_msg(&fa0, EMUHBA_CMD_ADAPTER_GET, NLM_F_MULTI));
	buf_add(&b, adapter_msg(&fa1, EMUHBA_CMD_ADAPTER_GET, NLM_F_MULTI));
	done_msg(&b, 0);
	return &b;
}

TEST(dev_show_dump_json_golden)
{
	struct buf *b = dump_buf();
	struct hba_nlerr err;
	struct cap c;
	int n = 0;

	seed("dump", 1, b->d, b->len);
	cap_start(&c, true, true);
	out_arr_start(NULL);
	ASSERT_EQ(HBA_PARSE_DONE, hba_parse_buf(b->d, b->len, FAM,
						print_adapter_cb, &n, 0, NULL,
						&err));
	out_arr_end();
	out_eol();
	EXPECT_EQ(2, n);
	EXPECT_EQ(0, err.error);
	EXPECT_EQ(0, golden("dev-show.json", cap_end(&c)));
	free(c.s);

	cap_start(&c, true, false);
	out_arr_start(NULL);
	n = 0;
	hba_parse_buf(b->d, b->len, FAM, print_adapter_cb, &n, 0, NULL, &err);
	out_arr_end();
	out_eol();
	EXPECT_EQ(0, golden("dev-show-compact.json", cap_end(&c)));
	free(c.s);
}

TEST(dev_show_dump_text_golden)
{
	struct buf *b = dump_buf();
	struct hba_nlerr err;
	struct cap c;
	int n = 0;

	cap_start(&c, false, false);
	ASSERT_EQ(HBA_PARSE_DONE, hba_parse_buf(b->d, b->len, FAM,
						print_adapter_cb, &n, 0, NULL,
						&err));
	EXPECT_EQ(0, golden("dev-show.txt", cap_end(&c)));
	free(c.s);
}

/*
 * The position source by name, in text and JSON; a value this hbamig does
 * not know (a newer kernel's) is printed as a number, not refused.
 */
TEST(position_source_names)
{
	struct fake_adapter fa = fa1;
	static struct buf b;
	struct hba_msg got;
	struct cap c;
	char *s;

	EXPECT_STREQ("shadow-doorbells", hba_position_source_name(
		EMUHBA_ADAPTER_POSITION_SOURCE_SHADOW_DOORBELLS));
	EXPECT_STREQ("trapped-doorbells", hba_position_source_name(
		EMUHBA_ADAPTER_POSITION_SOURCE_TRAPPED_DOORBELLS));
	EXPECT_STREQ("unknown-0", hba_position_source_name(0));
	EXPECT_STREQ("unknown-9", hba_position_source_name(9));

	for (u32 src = 1; src <= 3; src++) {
		fa.possrc = src;
		b.len = 0;
		buf_add(&b, adapter_msg(&fa, EMUHBA_CMD_ADAPTER_GET, 0));
		memset(&got, 0, sizeof(got));
		ASSERT_EQ(0, hba_parse_attrs(b.d + NLMSG_HDRLEN + GENL_HDRLEN,
					     b.len - NLMSG_HDRLEN -
					     GENL_HDRLEN, &got));
		EXPECT_TRUE(got.has_position_source);
		EXPECT_EQ(src, got.position_source);
		EXPECT_TRUE(got.counters.has_window_doorbells);
		EXPECT_EQ(5, got.counters.window_doorbells);

		cap_start(&c, false, false);
		hba_print_adapter(&got);
		s = cap_end(&c);
		EXPECT_NE(NULL, strstr(s, src == 1 ?
				       "\n    position-source shadow-doorbells\n" :
				       src == 2 ?
				       "\n    position-source trapped-doorbells\n" :
				       "\n    position-source unknown-3\n"))
			TH_LOG("%s", s);
		EXPECT_NE(NULL, strstr(s, " window-doorbells 5\n"))
			TH_LOG("%s", s);
		free(s);

		cap_start(&c, true, false);
		hba_print_adapter(&got);
		s = cap_end(&c);
		EXPECT_NE(NULL, strstr(s, src == 1 ?
				       "\"position_source\":\"shadow-doorbells\"" :
				       src == 2 ?
				       "\"position_source\":\"trapped-doorbells\"" :
				       "\"position_source\":\"unknown-3\""))
			TH_LOG("%s", s);
		EXPECT_NE(NULL, strstr(s, "\"window_doorbells\":5}"))
			TH_LOG("%s", s);
		free(s);
	}
}

/*
 * idle-after in text and JSON: 0 (nobody vouches) is printed like any
 * value; from a kernel that does not report it, JSON says null and the
 * text line leaves it out.
 */
TEST(policy_idle_after)
{
	static const struct { bool has; u32 ms; const char *txt, *json; } t[] = {
		{ true, 0, " switch-timeout 500ms idle-after 0ms\n",
		  "\"switch_timeout_ms\":500,\"idle_after_ms\":0," },
		{ true, 499, " switch-timeout 500ms idle-after 499ms\n",
		  "\"switch_timeout_ms\":500,\"idle_after_ms\":499," },
		{ false, 0, " switch-timeout 500ms\n",
		  "\"switch_timeout_ms\":500,\"idle_after_ms\":null," },
	};
	struct fake_adapter fa = fa1;
	static struct buf b;
	struct hba_msg got;
	struct cap c;
	char *s;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		fa.has_idle = t[i].has;
		fa.idle = t[i].ms;
		fa.has_ns_copy = false;	/* its own line end: golden files */
		b.len = 0;
		buf_add(&b, adapter_msg(&fa, EMUHBA_CMD_ADAPTER_GET, 0));
		memset(&got, 0, sizeof(got));
		ASSERT_EQ(0, hba_parse_attrs(b.d + NLMSG_HDRLEN + GENL_HDRLEN,
					     b.len - NLMSG_HDRLEN -
					     GENL_HDRLEN, &got));
		EXPECT_TRUE(got.has_policy);
		EXPECT_EQ(t[i].has, got.policy.has_idle_after);
		EXPECT_EQ(t[i].ms, got.policy.idle_after_ms);
		EXPECT_EQ(500, got.policy.switch_timeout_ms);

		cap_start(&c, false, false);
		hba_print_adapter(&got);
		s = cap_end(&c);
		EXPECT_NE(NULL, strstr(s, t[i].txt)) TH_LOG("%s", s);
		free(s);

		cap_start(&c, true, false);
		hba_print_adapter(&got);
		s = cap_end(&c);
		EXPECT_NE(NULL, strstr(s, t[i].json)) TH_LOG("%s", s);
		free(s);
	}
}

/* A dump split over two recv() buffers: MORE after the first. */
TEST(dump_across_buffers)
{
	struct buf *b = dump_buf();
	struct nlmsghdr h;
	struct hba_nlerr err;
	struct cap c;
	size_t first;
	int n = 0;

	memcpy(&h, b->d, sizeof(h));
	first = NLMSG_ALIGN(h.nlmsg_len);
	cap_start(&c, false, false);
	EXPECT_EQ(HBA_PARSE_MORE, hba_parse_buf(b->d, first, FAM,
						print_adapter_cb, &n, 0, NULL,
						&err));
	EXPECT_EQ(1, n);
	EXPECT_EQ(HBA_PARSE_DONE, hba_parse_buf(b->d + first, b->len - first,
						FAM, print_adapter_cb, &n, 0,
						NULL, &err));
	EXPECT_EQ(2, n);
	free(cap_end(&c));
}

TEST(switch_reply_golden)
{
	struct nl_msg *m = genl_new(EMUHBA_CMD_SWITCH, 0);
	struct hba_nlerr err;
	static struct buf b;
	struct hba_msg got;
	struct nlattr *n;
	struct cap c;

	nla_put_u32(m, EMUHBA_A_ADAPTER_ID, 1);
	nla_put_string(m, EMUHBA_A_ADAPTER_BDF, "0000:01:00.2");
	nla_put_u32(m, EMUHBA_A_ADAPTER_MODE, EMUHBA_ADAPTER_MODE_EMULATED);
	n = nla_nest_start(m, EMUHBA_A_ADAPTER_LAST_SWITCH);
	nla_put_u32(m, EMUHBA_A_SWITCH_TIMING_RESULT, 0);
	nla_put_u32(m, EMUHBA_A_SWITCH_TIMING_FROM_MODE, 1);
	nla_put_u32(m, EMUHBA_A_SWITCH_TIMING_TO_MODE, 2);
	nla_put_u64(m, EMUHBA_A_SWITCH_TIMING_TOTAL_NS, 987654);
	nla_nest_end(m, n);
	b.len = 0;
	buf_add(&b, m);
	seed("switch", 0, b.d, b.len);
	memset(&got, 0, sizeof(got));
	ASSERT_EQ(0, hba_parse_attrs(b.d + NLMSG_HDRLEN + GENL_HDRLEN,
				     b.len - NLMSG_HDRLEN - GENL_HDRLEN, &got));
	EXPECT_TRUE(got.last_switch.present);
	EXPECT_EQ(987654, got.last_switch.total_ns);
	cap_start(&c, true, true);
	hba_print_switch(&got);
	out_eol();
	EXPECT_EQ(0, golden("switch.json", cap_end(&c)));
	free(c.s);
	(void)err;
}

static struct buf *events_buf(void)
{
	static struct buf b;
	struct nl_msg *m;

	b.len = 0;
	buf_add(&b, adapter_msg(&fa0, EMUHBA_CMD_ADAPTER_ADD_NTF, 0));
	m = genl_new(EMUHBA_CMD_MODE_CHANGE_NTF, 0);
	nla_put_u32(m, EMUHBA_A_ADAPTER_ID, 0);
	nla_put_string(m, EMUHBA_A_ADAPTER_BDF, "0000:01:00.1");
	nla_put_u32(m, EMUHBA_A_ADAPTER_OLD_MODE, 1);
	nla_put_u32(m, EMUHBA_A_ADAPTER_MODE, 3);
	buf_add(&b, m);
	m = genl_new(EMUHBA_CMD_MODE_CHANGE_NTF, 0);
	nla_put_u32(m, EMUHBA_A_ADAPTER_ID, 0);
	nla_put_string(m, EMUHBA_A_ADAPTER_BDF, "0000:01:00.1");
	nla_put_u32(m, EMUHBA_A_ADAPTER_OLD_MODE, 3);
	nla_put_u32(m, EMUHBA_A_ADAPTER_MODE, 2);
	buf_add(&b, m);
	m = genl_new(EMUHBA_CMD_MIG_STATE_NTF, 0);
	nla_put_u32(m, EMUHBA_A_ADAPTER_ID, 0);
	nla_put_string(m, EMUHBA_A_ADAPTER_BDF, "0000:01:00.1");
	nla_put_u32(m, EMUHBA_A_ADAPTER_OLD_MIG_STATE, 2);
	nla_put_u32(m, EMUHBA_A_ADAPTER_MIG_STATE, 6);
	buf_add(&b, m);
	m = genl_new(EMUHBA_CMD_ERROR_NTF, 0);
	nla_put_u32(m, EMUHBA_A_ADAPTER_ID, 0);
	nla_put_string(m, EMUHBA_A_ADAPTER_BDF, "0000:01:00.1");
	nla_put_u32(m, EMUHBA_A_ADAPTER_ERROR, (u32)-ENODEV);
	nla_put_string(m, EMUHBA_A_ADAPTER_ERROR_MSG,
		       "no VFIO user holds the \"adapter\"");
	buf_add(&b, m);
	m = genl_new(EMUHBA_CMD_ADAPTER_DEL_NTF, 0);
	nla_put_u32(m, EMUHBA_A_ADAPTER_ID, 0);
	nla_put_string(m, EMUHBA_A_ADAPTER_BDF, "0000:01:00.1");
	nla_put_u32(m, EMUHBA_A_ADAPTER_PERSONALITY, 1);
	buf_add(&b, m);
	m = nlmsg_alloc_simple(GENL_ID_CTRL, 0);
	genlmsg_put(m, 0, 0, GENL_ID_CTRL, 0, 0, CTRL_CMD_DELFAMILY, 2);
	nla_put_u16(m, CTRL_ATTR_FAMILY_ID, FAM);
	nla_put_string(m, CTRL_ATTR_FAMILY_NAME, "emuhba");
	buf_add(&b, m);
	return &b;
}

TEST(monitor_events_golden)
{
	struct buf *b = events_buf();
	struct hba_nlerr err;
	struct cap c;

	seed("events", 8 | 1, b->d, b->len);
	for (int json = 0; json < 2; json++) {
		cap_start(&c, json, false);
		EXPECT_EQ(HBA_PARSE_MORE,
			  hba_parse_buf(b->d, b->len, FAM, print_event_cb,
					NULL, GENL_ID_CTRL, print_ctrl_cb,
					&err));
		EXPECT_EQ(0, golden(json ? "monitor.json" : "monitor.txt",
				    cap_end(&c)));
		free(c.s);
	}
}

/*
 * has_* say which attributes the kernel sent: all of those of a full
 * adapter reply, and of an event only those it carries.
 */
static int keep_mig_state_cb(const struct hba_msg *m, void *arg)
{
	if (m->cmd == EMUHBA_CMD_MIG_STATE_NTF)
		*(struct hba_msg *)arg = *m;
	return 0;
}

TEST(attributes_marked_present)
{
	struct buf *e = events_buf();
	static struct buf b;
	struct hba_nlerr err;
	struct hba_msg got;

	b.len = 0;
	buf_add(&b, adapter_msg(&fa1, EMUHBA_CMD_ADAPTER_GET, 0));
	memset(&got, 0, sizeof(got));
	ASSERT_EQ(0, hba_parse_attrs(b.d + NLMSG_HDRLEN + GENL_HDRLEN,
				     b.len - NLMSG_HDRLEN - GENL_HDRLEN, &got));
	EXPECT_TRUE(got.has_id && got.has_bdf && got.has_personality);
	EXPECT_TRUE(got.has_mode);
	EXPECT_TRUE(got.has_mig_state);
	EXPECT_EQ(6, got.mig_state);
	EXPECT_TRUE(got.has_open && got.open);
	EXPECT_TRUE(got.has_backend && got.has_policy);
	EXPECT_TRUE(got.has_nsid && got.has_nguid && got.has_eui64);
	EXPECT_TRUE(got.has_subnqn && got.has_guest_identity);
	EXPECT_TRUE(got.has_position_source);
	EXPECT_FALSE(got.has_old_mode || got.has_old_mig_state);
	EXPECT_FALSE(got.has_error || got.has_error_msg);

	memset(&got, 0, sizeof(got));
	EXPECT_EQ(HBA_PARSE_MORE, hba_parse_buf(e->d, e->len, FAM,
						keep_mig_state_cb, &got, 0,
						NULL, &err));
	ASSERT_EQ(EMUHBA_CMD_MIG_STATE_NTF, got.cmd);
	EXPECT_TRUE(got.has_old_mig_state && got.has_mig_state);
	EXPECT_EQ(2, got.old_mig_state);
	EXPECT_EQ(6, got.mig_state);
	EXPECT_FALSE(got.has_mode || got.has_old_mode || got.has_open);
	EXPECT_FALSE(got.has_backend || got.has_policy || got.has_personality);
}

/*
 * A callback's negative value ends the walk, and is what it returns:
 * the decoded one's and the undecoded (raw_type) one's.
 */
static int stop_cb(const struct hba_msg *m, void *arg)
{
	(void)m;
	(*(int *)arg)++;
	return -ECANCELED;
}

static int stop_raw_cb(const void *nlh, void *arg)
{
	(void)nlh;
	(*(int *)arg) += 100;
	return -ENOBUFS;
}

TEST(callback_stops_the_parse)
{
	struct buf *b = dump_buf();
	static struct buf x;
	struct hba_nlerr err;
	struct nl_msg *m;
	int n = 0;

	memset(&err, 0x5a, sizeof(err));
	EXPECT_EQ(-ECANCELED, hba_parse_buf(b->d, b->len, FAM, stop_cb, &n, 0,
					    NULL, &err));
	/* neither the second adapter nor NLMSG_DONE was looked at */
	EXPECT_EQ(1, n);
	EXPECT_EQ(0x5a5a5a5a, err.error);

	/* a controller message, then an adapter and the end of the dump */
	x.len = 0;
	m = nlmsg_alloc_simple(GENL_ID_CTRL, 0);
	genlmsg_put(m, 0, 0, GENL_ID_CTRL, 0, 0, CTRL_CMD_NEWFAMILY, 2);
	nla_put_string(m, CTRL_ATTR_FAMILY_NAME, "emuhba");
	buf_add(&x, m);
	buf_add(&x, adapter_msg(&fa0, EMUHBA_CMD_ADAPTER_ADD_NTF, 0));
	done_msg(&x, 0);
	n = 0;
	EXPECT_EQ(-ENOBUFS, hba_parse_buf(x.d, x.len, FAM, stop_cb, &n,
					  GENL_ID_CTRL, stop_raw_cb, &err));
	EXPECT_EQ(100, n);
	EXPECT_EQ(0x5a5a5a5a, err.error);
}

static struct nl_msg *link_msg(void)
{
	struct ifinfomsg ifi = { .ifi_index = 5 };
	struct nl_msg *m = nlmsg_alloc_simple(RTM_NEWLINK, 0);
	struct nlattr *list, *info;

	nlmsg_append(m, &ifi, sizeof(ifi), NLMSG_ALIGNTO);
	nla_put_string(m, IFLA_IFNAME, "enp1s0f0");
	nla_put_u32(m, IFLA_NUM_VF, 2);
	list = nla_nest_start(m, IFLA_VFINFO_LIST);
	for (u32 vf = 0; vf < 2; vf++) {
		struct ifla_vf_mac mac = { .vf = vf,
					   .mac = { 2, 0, 0, 0, 0, vf + 1 } };
		struct ifla_vf_vlan vlan = { .vf = vf, .vlan = vf * 42,
					     .qos = vf };
		struct ifla_vf_rate rate = { .vf = vf, .max_tx_rate = 100 };
		struct ifla_vf_spoofchk sc = { .vf = vf, .setting = !vf };
		struct ifla_vf_link_state ls = { .vf = vf,
						 .link_state = vf ? 2 : 0 };
		struct ifla_vf_trust tr = { .vf = vf, .setting = vf };
		struct ifla_vf_rss_query_en rq = { .vf = vf,
						   .setting = (u32)-1 };

		info = nla_nest_start(m, IFLA_VF_INFO);
		nla_put(m, IFLA_VF_MAC, sizeof(mac), &mac);
		nla_put(m, IFLA_VF_VLAN, sizeof(vlan), &vlan);
		nla_put(m, IFLA_VF_RATE, sizeof(rate), &rate);
		nla_put(m, IFLA_VF_SPOOFCHK, sizeof(sc), &sc);
		nla_put(m, IFLA_VF_LINK_STATE, sizeof(ls), &ls);
		nla_put(m, IFLA_VF_TRUST, sizeof(tr), &tr);
		nla_put(m, IFLA_VF_RSS_QUERY_EN, sizeof(rq), &rq);
		nla_nest_end(m, info);
	}
	nla_nest_end(m, list);
	return m;
}

TEST(vf_show_golden)
{
	static struct hba_link l;
	struct nl_msg *m = link_msg();
	struct nlmsghdr *h = nlmsg_hdr(m);
	struct cap c;

	seed("link", 4 | 1, h, h->nlmsg_len);
	ASSERT_EQ(0, hba_parse_link(h, h->nlmsg_len, &l));
	l.has_netdev = true;
	l.total_vfs = 8;
	EXPECT_EQ(2, l.n);
	EXPECT_STREQ("enp1s0f0", l.ifname);
	l.vfs[0].has_sys = true;
	strcpy(l.vfs[0].bdf, "0000:02:00.1");
	strcpy(l.vfs[0].driver, "iavf");
	for (int json = 0; json < 2; json++) {
		cap_start(&c, json, json);
		hba_print_link(&l, "0000:02:00.0", "ice");
		if (json)
			out_eol();
		EXPECT_EQ(0, golden(json ? "vf-show.json" : "vf-show.txt",
				    cap_end(&c)));
		free(c.s);
	}
	nlmsg_free(m);
}

/*
 * What a driver does not report is not shown: the kernel fills spoofchk,
 * trust and query_rss with -1 when the driver leaves them (rtnl_fill_vfinfo),
 * and an entry may lack an attribute altogether (here VF 1, MAC only). The
 * MAC's six octets in their order.
 */
TEST(vf_show_unreported_settings)
{
	static struct hba_link l;
	struct ifinfomsg ifi = { .ifi_index = 5 };
	struct nl_msg *m = nlmsg_alloc_simple(RTM_NEWLINK, 0);
	struct ifla_vf_mac mac = { .vf = 0,
				   .mac = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 } };
	struct ifla_vf_vlan vlan = { .vf = 0 };
	struct ifla_vf_rate rate = { .vf = 0 };
	struct ifla_vf_spoofchk sc = { .vf = 0, .setting = (u32)-1 };
	struct ifla_vf_link_state ls = { .vf = 0 };
	struct ifla_vf_trust tr = { .vf = 0, .setting = (u32)-1 };
	struct ifla_vf_rss_query_en rq = { .vf = 0, .setting = (u32)-1 };
	struct nlattr *list, *info;
	struct nlmsghdr *h;
	struct cap c;

	nlmsg_append(m, &ifi, sizeof(ifi), NLMSG_ALIGNTO);
	nla_put_string(m, IFLA_IFNAME, "enp1s0f0");
	nla_put_u32(m, IFLA_NUM_VF, 2);
	list = nla_nest_start(m, IFLA_VFINFO_LIST);
	info = nla_nest_start(m, IFLA_VF_INFO);
	nla_put(m, IFLA_VF_MAC, sizeof(mac), &mac);
	nla_put(m, IFLA_VF_VLAN, sizeof(vlan), &vlan);
	nla_put(m, IFLA_VF_RATE, sizeof(rate), &rate);
	nla_put(m, IFLA_VF_SPOOFCHK, sizeof(sc), &sc);
	nla_put(m, IFLA_VF_LINK_STATE, sizeof(ls), &ls);
	nla_put(m, IFLA_VF_TRUST, sizeof(tr), &tr);
	nla_put(m, IFLA_VF_RSS_QUERY_EN, sizeof(rq), &rq);
	nla_nest_end(m, info);
	info = nla_nest_start(m, IFLA_VF_INFO);
	mac.vf = 1;
	mac.mac[5] = 0x56;
	nla_put(m, IFLA_VF_MAC, sizeof(mac), &mac);
	nla_nest_end(m, info);
	nla_nest_end(m, list);
	h = nlmsg_hdr(m);
	ASSERT_EQ(0, hba_parse_link(h, h->nlmsg_len, &l));
	l.has_netdev = true;	/* as vf.c's link_cb() marks a link reply */
	ASSERT_EQ(2, l.n);
	EXPECT_FALSE(l.vfs[1].has_vlan);
	EXPECT_FALSE(l.vfs[1].has_spoofchk);
	EXPECT_FALSE(l.vfs[1].has_trust);

	cap_start(&c, true, false);
	hba_print_link(&l, "", "none");
	out_eol();
	cap_end(&c);
	EXPECT_STREQ("{\"pf\":null,\"driver\":\"none\",\"ifname\":\"enp1s0f0\","
		     "\"total_vfs\":0,\"num_vf\":2,\"vfs\":["
		     "{\"vf\":0,\"mac\":\"02:11:22:33:44:55\",\"vlan\":0,"
		     "\"qos\":0,\"min_tx_rate\":0,\"max_tx_rate\":0,"
		     "\"link_state\":\"auto\"},"
		     "{\"vf\":1,\"mac\":\"02:11:22:33:44:56\"}]}\n", c.s);
	free(c.s);

	cap_start(&c, false, false);
	hba_print_link(&l, "", "none");
	cap_end(&c);
	EXPECT_STREQ("(no device): enp1s0f0 driver none num_vf 2 total_vfs 0\n"
		     "    vf 0 mac 02:11:22:33:44:55 min_tx_rate 0Mbps max_tx_rate 0Mbps link-state auto\n"
		     "    vf 1 mac 02:11:22:33:44:56\n", c.s);
	free(c.s);
	nlmsg_free(m);
}

/*
 * Only IFLA_VF_INFO entries of IFLA_VFINFO_LIST describe VFs (an entry of
 * another type, here one that looks like a VF 7, is skipped), and a VF's
 * IFLA_VF_RATE gives both its minimum and its maximum rate.
 */
TEST(vf_list_skips_other_entries)
{
	static struct hba_link l;
	struct ifinfomsg ifi = { .ifi_index = 5 };
	struct nl_msg *m = nlmsg_alloc_simple(RTM_NEWLINK, 0);
	struct ifla_vf_mac mac = { .vf = 7 };
	struct ifla_vf_rate rate = { .vf = 0, .min_tx_rate = 10,
				     .max_tx_rate = 100 };
	struct nlattr *list, *info;
	struct nlmsghdr *h;

	nlmsg_append(m, &ifi, sizeof(ifi), NLMSG_ALIGNTO);
	nla_put_string(m, IFLA_IFNAME, "enp1s0f0");
	list = nla_nest_start(m, IFLA_VFINFO_LIST);
	info = nla_nest_start(m, IFLA_VF_INFO + 1);
	nla_put(m, IFLA_VF_MAC, sizeof(mac), &mac);
	nla_nest_end(m, info);
	info = nla_nest_start(m, IFLA_VF_INFO);
	mac.vf = 0;
	nla_put(m, IFLA_VF_MAC, sizeof(mac), &mac);
	nla_put(m, IFLA_VF_RATE, sizeof(rate), &rate);
	nla_nest_end(m, info);
	nla_nest_end(m, list);
	h = nlmsg_hdr(m);
	ASSERT_EQ(0, hba_parse_link(h, h->nlmsg_len, &l));
	EXPECT_EQ(1, l.n);
	EXPECT_EQ(0, l.vfs[0].vf);
	EXPECT_TRUE(l.vfs[0].has_rate);
	EXPECT_EQ(10, l.vfs[0].min_tx_rate);
	EXPECT_EQ(100, l.vfs[0].max_tx_rate);
	nlmsg_free(m);
}

/*
 * A controller message without CTRL_ATTR_FAMILY_NAME, in a buffer of
 * exactly its length: the parser reads nothing past nlmsg_len (ASan).
 */
TEST(ctrl_family_within_its_length)
{
	struct nl_msg *m = nlmsg_alloc_simple(GENL_ID_CTRL, 0);
	struct genlmsghdr g = { .cmd = CTRL_CMD_NEWFAMILY, .version = 2 };
	struct nlmsghdr *h;
	void *exact;
	u8 cmd = 0;

	nlmsg_append(m, &g, sizeof(g), NLMSG_ALIGNTO);
	nla_put_u16(m, CTRL_ATTR_FAMILY_ID, FAM);
	h = nlmsg_hdr(m);
	exact = malloc(h->nlmsg_len);
	ASSERT_NE(NULL, exact);
	memcpy(exact, h, h->nlmsg_len);
	EXPECT_EQ(NULL, hba_parse_ctrl_family(exact, &cmd));
	EXPECT_EQ(CTRL_CMD_NEWFAMILY, cmd);
	free(exact);
	nlmsg_free(m);
}

/* ---- errors and extended ACKs ---- */

static void error_msg(struct buf *b, int err, bool capped, const char *msg,
		      int offs, int miss)
{
	struct nl_msg *req = genl_new(EMUHBA_CMD_SWITCH, 0);
	struct nl_msg *m = nlmsg_alloc_simple(NLMSG_ERROR, NLM_F_ACK_TLVS |
					      (capped ? NLM_F_CAPPED : 0));
	struct nlmsgerr e = { .error = -err };

	nla_put_string(req, EMUHBA_A_ADAPTER_BDF, "0000:01:00.1");
	e.msg = *nlmsg_hdr(req);
	nlmsg_append(m, &e, sizeof(e.error), NLMSG_ALIGNTO);
	if (capped)
		nlmsg_append(m, &e.msg, sizeof(e.msg), NLMSG_ALIGNTO);
	else
		nlmsg_append(m, nlmsg_hdr(req), nlmsg_hdr(req)->nlmsg_len,
			     NLMSG_ALIGNTO);
	if (msg)
		nla_put_string(m, NLMSGERR_ATTR_MSG, msg);
	if (offs >= 0)
		nla_put_u32(m, NLMSGERR_ATTR_OFFS, offs);
	if (miss >= 0)
		nla_put_u32(m, NLMSGERR_ATTR_MISS_TYPE, miss);
	nlmsg_free(req);
	buf_add(b, m);
}

TEST(extack_capped_and_uncapped)
{
	static struct buf b;
	struct hba_nlerr err;

	for (int capped = 0; capped < 2; capped++) {
		b.len = 0;
		error_msg(&b, EOPNOTSUPP, capped, "switching is not available",
			  20, 4);
		seed(capped ? "ack-capped" : "ack", 0, b.d, b.len);
		ASSERT_EQ(HBA_PARSE_DONE, hba_parse_buf(b.d, b.len, FAM, NULL,
							NULL, 0, NULL, &err));
		EXPECT_EQ(EOPNOTSUPP, err.error);
		EXPECT_STREQ("switching is not available", err.msg);
		EXPECT_TRUE(err.has_offs);
		EXPECT_EQ(20, err.offs);
		EXPECT_TRUE(err.has_miss);
		EXPECT_EQ(4, err.miss_type);
		EXPECT_EQ(HBAMIG_EXIT_NOTSUPP, hba_exit_from_errno(err.error));
	}
	b.len = 0;
	error_msg(&b, 0, true, NULL, -1, -1);
	ASSERT_EQ(HBA_PARSE_DONE, hba_parse_buf(b.d, b.len, FAM, NULL, NULL, 0,
						NULL, &err));
	EXPECT_EQ(0, err.error);
	EXPECT_EQ(0, err.msg[0]);
}

TEST(done_carries_error)
{
	static struct buf b;
	struct hba_nlerr err;

	b.len = 0;
	done_msg(&b, -EPERM);
	ASSERT_EQ(HBA_PARSE_DONE, hba_parse_buf(b.d, b.len, FAM, NULL, NULL, 0,
						NULL, &err));
	EXPECT_EQ(EPERM, err.error);
	EXPECT_EQ(HBAMIG_EXIT_PERM, hba_exit_from_errno(err.error));

	/* Found by the fuzzer: INT_MIN must not be negated. */
	b.len = 0;
	done_msg(&b, INT32_MIN);
	ASSERT_EQ(HBA_PARSE_DONE, hba_parse_buf(b.d, b.len, FAM, NULL, NULL, 0,
						NULL, &err));
	EXPECT_EQ(EPROTO, err.error);
	EXPECT_STREQ("errno", hba_errno_name(INT32_MIN));
	EXPECT_EQ(HBAMIG_EXIT_FAIL, hba_exit_from_errno(INT32_MIN));
}

/* A copy of @b's bytes in a buffer of exactly their size (ASan sees past it). */
static void *exact_copy(const struct buf *b)
{
	void *p = malloc(b->len);

	if (p)
		memcpy(p, b->d, b->len);
	return p;
}

/*
 * An uncapped error whose echoed request claims more bytes than the error
 * message holds (a truncated or hostile reply): the error is read, there
 * are no extended ACK TLVs, and nothing past the message is read.
 */
TEST(error_echo_longer_than_the_message)
{
	struct nl_msg *m = nlmsg_alloc_simple(NLMSG_ERROR, NLM_F_ACK_TLVS);
	struct nlmsgerr e = { .error = -EBUSY };
	static struct buf b;
	struct hba_nlerr err;
	void *exact;

	e.msg.nlmsg_len = sizeof(e.msg) + 4;	/* 4 bytes not there */
	e.msg.nlmsg_type = FAM;
	nlmsg_append(m, &e, sizeof(e), NLMSG_ALIGNTO);
	b.len = 0;
	buf_add(&b, m);
	exact = exact_copy(&b);
	ASSERT_NE(NULL, exact);
	memset(&err, 0x5a, sizeof(err));
	EXPECT_EQ(HBA_PARSE_DONE, hba_parse_buf(exact, b.len, FAM, NULL, NULL,
						0, NULL, &err));
	EXPECT_EQ(EBUSY, err.error);
	EXPECT_EQ(0, err.msg[0]);
	EXPECT_FALSE(err.has_offs);
	EXPECT_FALSE(err.has_miss);
	free(exact);
}

/* An NLMSG_DONE of a bare header, without the error code: success. */
TEST(done_without_error_code)
{
	struct nl_msg *m = nlmsg_alloc_simple(NLMSG_DONE, NLM_F_MULTI);
	static struct buf b;
	struct hba_nlerr err;
	void *exact;

	b.len = 0;
	buf_add(&b, m);
	ASSERT_EQ(NLMSG_HDRLEN, b.len);
	exact = exact_copy(&b);
	ASSERT_NE(NULL, exact);
	memset(&err, 0x5a, sizeof(err));
	EXPECT_EQ(HBA_PARSE_DONE, hba_parse_buf(exact, b.len, FAM, NULL, NULL,
						0, NULL, &err));
	EXPECT_EQ(0, err.error);
	EXPECT_EQ(0, err.msg[0]);
	free(exact);
}

TEST(exit_codes)
{
	EXPECT_EQ(HBAMIG_EXIT_OK, hba_exit_from_errno(0));
	EXPECT_EQ(HBAMIG_EXIT_PERM, hba_exit_from_errno(-EACCES));
	EXPECT_EQ(HBAMIG_EXIT_NODEV, hba_exit_from_errno(ENODEV));
	EXPECT_EQ(HBAMIG_EXIT_BUSY, hba_exit_from_errno(EBUSY));
	EXPECT_EQ(HBAMIG_EXIT_NOTSUPP, hba_exit_from_errno(EOPNOTSUPP));
	EXPECT_EQ(HBAMIG_EXIT_FAIL, hba_exit_from_errno(ERANGE));
}

/* ---- hostile input ---- */

static int count_cb(const struct hba_msg *m, void *arg)
{
	(void)m;
	(*(int *)arg)++;
	return 0;
}

TEST(truncated_and_malformed)
{
	struct buf *b = dump_buf();
	static struct buf x;
	struct hba_nlerr err;
	struct nl_msg *m;
	char big[40];
	int n = 0;

	/* Header claims more than the buffer holds. */
	EXPECT_EQ(-EBADMSG, hba_parse_buf(b->d, 40, FAM, count_cb, &n, 0, NULL,
					  &err));
	EXPECT_EQ(0, n);
	/* Too short for a header: nothing, no crash. */
	EXPECT_EQ(HBA_PARSE_MORE, hba_parse_buf(b->d, 7, FAM, count_cb, &n, 0,
						NULL, &err));

	/* u32 attribute with 2 bytes. */
	x.len = 0;
	m = genl_new(EMUHBA_CMD_ADAPTER_GET, 0);
	nla_put_u16(m, EMUHBA_A_ADAPTER_ID, 1);
	buf_add(&x, m);
	EXPECT_EQ(-EBADMSG, hba_parse_buf(x.d, x.len, FAM, count_cb, &n, 0,
					  NULL, &err));

	/* String without its NUL. */
	x.len = 0;
	m = genl_new(EMUHBA_CMD_ADAPTER_GET, 0);
	nla_put(m, EMUHBA_A_ADAPTER_BDF, 12, "0000:01:00.1");
	buf_add(&x, m);
	EXPECT_EQ(-EBADMSG, hba_parse_buf(x.d, x.len, FAM, count_cb, &n, 0,
					  NULL, &err));

	/* BDF longer than any PCI address. */
	memset(big, '7', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	x.len = 0;
	m = genl_new(EMUHBA_CMD_ADAPTER_GET, 0);
	nla_put_string(m, EMUHBA_A_ADAPTER_BDF, big);
	buf_add(&x, m);
	EXPECT_EQ(-EBADMSG, hba_parse_buf(x.d, x.len, FAM, count_cb, &n, 0,
					  NULL, &err));

	/* Counter of the wrong width inside a nest. */
	x.len = 0;
	m = genl_new(EMUHBA_CMD_ADAPTER_GET, 0);
	{
		struct nlattr *nest = nla_nest_start(m,
						     EMUHBA_A_ADAPTER_COUNTERS);

		nla_put_u32(m, EMUHBA_A_COUNTERS_SWITCHES, 1);
		nla_nest_end(m, nest);
	}
	buf_add(&x, m);
	EXPECT_EQ(-EBADMSG, hba_parse_buf(x.d, x.len, FAM, count_cb, &n, 0,
					  NULL, &err));

	/* idle-after of the wrong width inside the policy nest. */
	x.len = 0;
	m = genl_new(EMUHBA_CMD_ADAPTER_GET, 0);
	{
		struct nlattr *nest = nla_nest_start(m,
						     EMUHBA_A_ADAPTER_POLICY);

		nla_put_u16(m, EMUHBA_A_POLICY_IDLE_AFTER, 1);
		nla_nest_end(m, nest);
	}
	buf_add(&x, m);
	EXPECT_EQ(-EBADMSG, hba_parse_buf(x.d, x.len, FAM, count_cb, &n, 0,
					  NULL, &err));

	/* Genl header missing. */
	x.len = 0;
	m = nlmsg_alloc_simple(FAM, 0);
	buf_add(&x, m);
	EXPECT_EQ(-EBADMSG, hba_parse_buf(x.d, x.len, FAM, count_cb, &n, 0,
					  NULL, &err));
	EXPECT_EQ(0, n);
}

/* NGUID and EUI-64 have their exact widths: 16 and 8 bytes. */
TEST(identity_of_the_wrong_width)
{
	static const struct { int type; size_t len; } t[] = {
		{ EMUHBA_A_ADAPTER_NGUID, 8 }, { EMUHBA_A_ADAPTER_NGUID, 15 },
		{ EMUHBA_A_ADAPTER_NGUID, 17 }, { EMUHBA_A_ADAPTER_EUI64, 4 },
		{ EMUHBA_A_ADAPTER_EUI64, 7 }, { EMUHBA_A_ADAPTER_EUI64, 9 },
		{ EMUHBA_A_ADAPTER_EUI64, 16 },
	};
	static const u8 bytes[32] = { 0x11, 0x22, 0x33 };
	static struct buf x;
	struct hba_nlerr err;
	struct nl_msg *m;
	int n = 0;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		x.len = 0;
		m = genl_new(EMUHBA_CMD_ADAPTER_GET, 0);
		nla_put(m, t[i].type, t[i].len, bytes);
		nla_put_u32(m, EMUHBA_A_ADAPTER_NSID, 1);
		buf_add(&x, m);
		EXPECT_EQ(-EBADMSG, hba_parse_buf(x.d, x.len, FAM, count_cb,
						  &n, 0, NULL, &err))
			TH_LOG("attribute %d of %zu bytes", t[i].type, t[i].len);
	}
	EXPECT_EQ(0, n);
}

/*
 * A VF entry hbamig cannot read fails the whole link: a field shorter
 * than its struct, or more VFs than it has room for.
 */
TEST(vf_info_refused_whole)
{
	static struct hba_link l;
	struct ifinfomsg ifi = { .ifi_index = 5 };
	struct ifla_vf_mac mac = { .vf = 0 };
	struct ifla_vf_trust tr = { .vf = 0, .setting = 1 };
	struct nlattr *list, *info;
	struct nl_msg *m;
	struct nlmsghdr *h;

	m = nlmsg_alloc_simple(RTM_NEWLINK, 0);
	nlmsg_append(m, &ifi, sizeof(ifi), NLMSG_ALIGNTO);
	list = nla_nest_start(m, IFLA_VFINFO_LIST);
	info = nla_nest_start(m, IFLA_VF_INFO);
	nla_put(m, IFLA_VF_MAC, sizeof(mac), &mac);
	nla_put(m, IFLA_VF_TRUST, sizeof(tr) - 1, &tr);
	nla_nest_end(m, info);
	nla_nest_end(m, list);
	nla_put_string(m, IFLA_IFNAME, "enp1s0f0");
	h = nlmsg_hdr(m);
	EXPECT_EQ(-EINVAL, hba_parse_link(h, h->nlmsg_len, &l));
	nlmsg_free(m);

	m = nlmsg_alloc_size(65536);
	ASSERT_NE(NULL, m);
	ASSERT_NE(NULL, nlmsg_put(m, 0, 0, RTM_NEWLINK, 0, 0));
	nlmsg_append(m, &ifi, sizeof(ifi), NLMSG_ALIGNTO);
	list = nla_nest_start(m, IFLA_VFINFO_LIST);
	for (u32 vf = 0; vf <= HBA_MAX_VFS; vf++) {
		mac.vf = vf;
		info = nla_nest_start(m, IFLA_VF_INFO);
		ASSERT_EQ(0, nla_put(m, IFLA_VF_MAC, sizeof(mac), &mac));
		nla_nest_end(m, info);
	}
	nla_nest_end(m, list);
	h = nlmsg_hdr(m);
	EXPECT_EQ(-E2BIG, hba_parse_link(h, h->nlmsg_len, &l));
	EXPECT_EQ(HBA_MAX_VFS, l.n);
	nlmsg_free(m);
}

TEST(unknown_attributes_and_other_families_ignored)
{
	static struct buf x;
	struct hba_nlerr err;
	struct nl_msg *m;
	int n = 0;

	m = genl_new(EMUHBA_CMD_ADAPTER_GET, 0);
	nla_put_u32(m, EMUHBA_A_ADAPTER_ID, 3);
	nla_put_u64(m, EMUHBA_A_ADAPTER_MAX + 7, 1);
	buf_add(&x, m);
	m = nlmsg_alloc_simple(FAM + 1, 0);
	genlmsg_put(m, 0, 0, FAM + 1, 0, 0, 1, 1);
	nla_put_u8(m, EMUHBA_A_ADAPTER_ID, 1);
	buf_add(&x, m);
	done_msg(&x, 0);
	EXPECT_EQ(HBA_PARSE_DONE, hba_parse_buf(x.d, x.len, FAM, count_cb, &n,
						0, NULL, &err));
	EXPECT_EQ(1, n);
}

TEST(json_escaping)
{
	struct fake_adapter a = fa0;
	static struct buf x;
	struct hba_nlerr err;
	struct cap c;
	int n = 0;

	a.backend = "/dev/we\"ird\\path\ttab\x01";
	x.len = 0;
	buf_add(&x, adapter_msg(&a, EMUHBA_CMD_ADAPTER_GET, 0));
	cap_start(&c, true, false);
	hba_parse_buf(x.d, x.len, FAM, print_adapter_cb, &n, 0, NULL, &err);
	cap_end(&c);
	EXPECT_NE(NULL, strstr(c.s,
		"\"backend\":\"/dev/we\\\"ird\\\\path\\ttab\\u0001\""))
		TH_LOG("%s", c.s);
	free(c.s);
}

/*
 * The kernel sends an empty backend string for an adapter that has none
 * (emuhba_nl_fill_adapter() always puts the attribute): text says "none",
 * JSON says null, never an empty path.
 */
TEST(no_backend)
{
	struct fake_adapter a = fa0;
	static struct buf x;
	struct hba_nlerr err;
	struct cap c;
	int n = 0;

	a.backend = "";
	x.len = 0;
	buf_add(&x, adapter_msg(&a, EMUHBA_CMD_ADAPTER_GET, 0));
	for (int json = 0; json < 2; json++) {
		cap_start(&c, json, false);
		ASSERT_EQ(HBA_PARSE_MORE,
			  hba_parse_buf(x.d, x.len, FAM, print_adapter_cb, &n,
					0, NULL, &err));
		cap_end(&c);
		EXPECT_NE(NULL, strstr(c.s, json ? ",\"backend\":null," :
					    "\n    backend none\n"))
			TH_LOG("%s", c.s);
		free(c.s);
	}
	EXPECT_EQ(2, n);
}

/* ---- command-line helpers ---- */

TEST(bdf_syntax)
{
	EXPECT_TRUE(valid_bdf("0000:01:00.1"));
	EXPECT_TRUE(valid_bdf("10000:e1:1f.7"));
	EXPECT_FALSE(valid_bdf("01:00.1"));
	EXPECT_FALSE(valid_bdf("0000:01:00.8"));
	EXPECT_FALSE(valid_bdf("0000:01:20.1"));
	EXPECT_FALSE(valid_bdf("0000:01:00.1x"));
	EXPECT_FALSE(valid_bdf("0000:0A:00.1"));
	EXPECT_FALSE(valid_bdf("eth0"));
	EXPECT_FALSE(valid_bdf("0000:01:00.1/../../x"));
	EXPECT_FALSE(valid_bdf(""));
}

TEST(keywords)
{
	u32 v;
	bool b;

	EXPECT_TRUE(matches("sh", "show"));
	EXPECT_TRUE(matches("show", "show"));
	EXPECT_FALSE(matches("shows", "show"));
	EXPECT_FALSE(matches("", "show"));
	EXPECT_EQ(0, parse_u32("t", "4096", &v));
	EXPECT_EQ(4096, v);
	EXPECT_EQ(0, parse_u32("t", "0x10", &v));
	EXPECT_EQ(16, v);
	EXPECT_EQ(HBAMIG_EXIT_USAGE, parse_u32("t", "-1", &v));
	EXPECT_EQ(HBAMIG_EXIT_USAGE, parse_u32("t", "4294967296", &v));
	EXPECT_EQ(HBAMIG_EXIT_USAGE, parse_u32("t", "12ms", &v));
	EXPECT_EQ(0, parse_on_off("x", "on", &b));
	EXPECT_TRUE(b);
	EXPECT_EQ(0, parse_on_off("x", "off", &b));
	EXPECT_FALSE(b);
	EXPECT_EQ(HBAMIG_EXIT_USAGE, parse_on_off("x", "yes", &b));
	EXPECT_EQ(HBAMIG_EXIT_USAGE, parse_on_off("x", NULL, &b));
}

/*
 * libnl's nl_socket_alloc(), unless a test makes it fail (the executable's
 * definition interposes libnl's for genl.c's calls).
 */
static int nl_alloc_fails;

struct nl_sock *nl_socket_alloc(void)
{
	static struct nl_sock *(*real)(void);

	if (nl_alloc_fails)
		return NULL;
	if (!real)
		real = (struct nl_sock *(*)(void))dlsym(RTLD_NEXT,
							"nl_socket_alloc");
	return real ? real() : NULL;
}

/* Out of memory for the socket: a failure with nothing left open. */
TEST(genl_open_without_memory)
{
	struct hba_genl g;

	memset(&g, 0xa5, sizeof(g));
	nl_alloc_fails = 1;
	EXPECT_EQ(HBAMIG_EXIT_FAIL, hba_genl_open(&g));
	nl_alloc_fails = 0;
	EXPECT_EQ(NULL, g.sk);
}

/*
 * A request that cannot be sent is reported as a send failure, without
 * waiting for a reply that cannot come.
 */
TEST(talk_send_failure)
{
	struct nl_sock *sk = nl_socket_alloc();	/* never connected */
	struct hba_nlerr err;
	struct nl_msg *msg;

	ASSERT_NE(NULL, sk);
	msg = nlmsg_alloc_simple(16, 0);
	ASSERT_NE(NULL, msg);
	EXPECT_EQ(-EIO, hba_talk(sk, msg, FAM, NULL, NULL, 0, NULL, &err));
	EXPECT_EQ(EIO, err.error);
	EXPECT_EQ(0, strncmp(err.msg, "send: ", 6)) TH_LOG("%s", err.msg);
	nl_socket_free(sk);
}

/*
 * The identity line shows what the kernel sent and nothing else: for a
 * namespace without an NGUID (an optional identifier, as EUI64 is) or a
 * reply without the subsystem NQN there is no "nguid" or "subnqn" field
 * with a zero or empty value.
 */
TEST(identity_text_without_nguid_or_subnqn)
{
	static const u8 eui64[8] = { 0x52, 0x54, 0, 0, 0, 0, 0, 1 };
	static const u8 nguid[16] = { 0x11, 0x22, [15] = 0xff };
	static struct buf b;
	struct hba_msg got;
	struct nl_msg *m;
	struct cap c;

	for (int with_nguid = 0; with_nguid < 2; with_nguid++) {
		m = genl_new(EMUHBA_CMD_ADAPTER_GET, 0);
		nla_put_u32(m, EMUHBA_A_ADAPTER_ID, 1);
		nla_put_string(m, EMUHBA_A_ADAPTER_BDF, "0000:01:00.2");
		nla_put_u32(m, EMUHBA_A_ADAPTER_NSID, 1);
		/* each reply lacks one of the two */
		if (with_nguid)
			nla_put(m, EMUHBA_A_ADAPTER_NGUID, sizeof(nguid),
				nguid);
		else
			nla_put_string(m, EMUHBA_A_ADAPTER_SUBNQN,
				       "nqn.2026-11.io.emuhba:subsys0");
		nla_put(m, EMUHBA_A_ADAPTER_EUI64, sizeof(eui64), eui64);
		b.len = 0;
		buf_add(&b, m);
		memset(&got, 0, sizeof(got));
		ASSERT_EQ(0, hba_parse_attrs(b.d + NLMSG_HDRLEN + GENL_HDRLEN,
					     b.len - NLMSG_HDRLEN -
					     GENL_HDRLEN, &got));
		cap_start(&c, false, false);
		hba_print_adapter(&got);
		cap_end(&c);
		EXPECT_NE(NULL, strstr(c.s, with_nguid ?
			"\n    identity nsid 1 nguid 112200000000000000000000000000ff eui64 5254000000000001\n" :
			"\n    identity nsid 1 eui64 5254000000000001 subnqn nqn.2026-11.io.emuhba:subsys0\n"))
			TH_LOG("%s", c.s);
		EXPECT_EQ(NULL, strstr(c.s, with_nguid ? "subnqn" : "nguid"))
			TH_LOG("%s", c.s);
		free(c.s);
	}
}

/*
 * A string attribute of the longest the kernel sends (uapi *_MAX_LEN
 * bytes before the NUL) is taken whole; one byte more is refused, not
 * cut: for a subsystem NQN (whose Identify Controller field, bytes
 * 1023:768 in NVMe Base 2.0, holds 256 bytes with the NUL) and a PCI
 * address.
 */
TEST(string_attributes_at_their_limit)
{
	static const struct { int type; size_t max; } t[] = {
		{ EMUHBA_A_ADAPTER_SUBNQN, EMUHBA_SUBNQN_MAX_LEN },
		{ EMUHBA_A_ADAPTER_BDF, EMUHBA_BDF_MAX_LEN },
	};
	static struct buf b;
	struct hba_msg got;
	struct nl_msg *m;
	char s[512];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		for (size_t len = t[i].max; len <= t[i].max + 1; len++) {
			memset(s, 'a', len);
			s[len] = 0;
			m = genl_new(EMUHBA_CMD_ADAPTER_GET, 0);
			nla_put_u32(m, EMUHBA_A_ADAPTER_ID, 1);
			nla_put_string(m, t[i].type, s);
			b.len = 0;
			buf_add(&b, m);
			memset(&got, 0, sizeof(got));
			if (len > t[i].max) {
				EXPECT_EQ(-EINVAL, hba_parse_attrs(b.d +
					NLMSG_HDRLEN + GENL_HDRLEN, b.len -
					NLMSG_HDRLEN - GENL_HDRLEN, &got))
					TH_LOG("attribute %d of %zu bytes",
					       t[i].type, len);
				continue;
			}
			ASSERT_EQ(0, hba_parse_attrs(b.d + NLMSG_HDRLEN +
						     GENL_HDRLEN, b.len -
						     NLMSG_HDRLEN -
						     GENL_HDRLEN, &got));
			EXPECT_STREQ(s, t[i].type == EMUHBA_A_ADAPTER_BDF ?
				     got.bdf : got.subnqn);
		}
	}
}

/*
 * A PCI address of EMUHBA_BDF_MAX_LEN bytes (a domain of seven hex
 * digits) is one; one more digit makes it longer than the kernel takes.
 */
TEST(bdf_length_limit)
{
	EXPECT_EQ(EMUHBA_BDF_MAX_LEN, strlen("1000000:01:00.1"));
	EXPECT_TRUE(valid_bdf("1000000:01:00.1"));
	EXPECT_FALSE(valid_bdf("10000000:01:00.1"));
}

/* What a call writes to stderr, read back from a temporary file. */
static char *stderr_of_start(int *saved, FILE **tmp)
{
	fflush(stderr);
	*tmp = tmpfile();
	*saved = dup(2);
	dup2(fileno(*tmp), 2);
	return NULL;
}

static char *stderr_of_end(int saved, FILE *tmp)
{
	static char s[4096];
	size_t n;

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(s, 1, sizeof(s) - 1, tmp);
	s[n] = 0;
	fclose(tmp);
	return s;
}

/*
 * An error message is one whole line: the next message (or the shell
 * prompt) starts on a line of its own.
 */
TEST(fail_message_is_one_line)
{
	FILE *tmp;
	int saved;
	char *s;

	stderr_of_start(&saved, &tmp);
	ASSERT_NE(NULL, tmp);
	EXPECT_EQ(3, fail(3, "x %d", 7));
	s = stderr_of_end(saved, tmp);
	EXPECT_NE(NULL, strstr(s, ": x 7\n")) TH_LOG("%s", s);
	EXPECT_EQ('\n', s[strlen(s) - 1]) TH_LOG("%s", s);
}

TEST_HARNESS_MAIN
