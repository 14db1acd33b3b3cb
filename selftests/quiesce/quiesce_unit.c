// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of the quiescers' parsing and helpers (no privileges needed),
 * and of the TCP program on crafted frames (CAP_BPF, CAP_NET_ADMIN).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include <linux/types.h>
#include "quiesce.h"
#include "quiesce_tcp_shared.h"
#include "rnr_agent.h"

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

/* An endpoint of 127 bytes parses (zero-padded port), one of 128 is refused. */
TEST(conn_endpoint_length_limit)
{
	struct quiesce_selection s = {};
	char arg[200];
	int n;

	n = snprintf(arg, sizeof(arg), "10.0.0.1:%0118d,10.0.0.2:4420", 5000);
	ASSERT_EQ(127 + 14, n);
	ASSERT_EQ(0, quiesce_sel_parse_conn(&s, arg));
	EXPECT_EQ(5000, s.sel[0].lport);
	n = snprintf(arg, sizeof(arg), "10.0.0.1:%0119d,10.0.0.2:4420", 5000);
	ASSERT_EQ(128 + 14, n);
	EXPECT_EQ(-EINVAL, quiesce_sel_parse_conn(&s, arg));
	EXPECT_EQ(1, s.nr);
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

/*
 * A side without an address leaves the family to the other side; with
 * neither, the selection matches both families (0).
 */
TEST(conn_family_from_either_side)
{
	struct quiesce_selection s = {};

	ASSERT_EQ(0, quiesce_sel_parse_conn(&s, "10.0.0.1:5000,*:4420"));
	ASSERT_EQ(0, quiesce_sel_parse_conn(&s, "*,10.0.0.2:4420"));
	ASSERT_EQ(0, quiesce_sel_parse_conn(&s, "[fd00::1]:1,*"));
	ASSERT_EQ(0, quiesce_sel_parse_conn(&s, "*:5000,*:4420"));
	ASSERT_EQ(4, s.nr);
	EXPECT_EQ(AF_INET, s.sel[0].family);
	EXPECT_TRUE(s.sel[0].has_laddr);
	EXPECT_FALSE(s.sel[0].has_raddr);
	EXPECT_EQ(4420, s.sel[0].rport);
	EXPECT_EQ(AF_INET, s.sel[1].family);
	EXPECT_FALSE(s.sel[1].has_laddr);
	EXPECT_TRUE(s.sel[1].has_raddr);
	EXPECT_EQ(AF_INET6, s.sel[2].family);
	EXPECT_EQ(0, s.sel[3].family);
	EXPECT_EQ(5000, s.sel[3].lport);
	EXPECT_EQ(4420, s.sel[3].rport);
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
	int i;

	memset(f, 0xaa, sizeof(f));
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
	/*
	 * Only the enabled class carries a time: the other seven (both bytes
	 * of each) and the padding up to the minimum frame are 0.
	 */
	for (i = 0; i < 8; i++) {
		if (i == 3)
			continue;
		EXPECT_EQ(0, f[18 + 2 * i]) TH_LOG("class %d", i);
		EXPECT_EQ(0, f[19 + 2 * i]) TH_LOG("class %d", i);
	}
	for (i = 34; i < 60; i++)
		EXPECT_EQ(0, f[i]) TH_LOG("byte %d", i);
	/* Two classes enabled: each gets the time, the rest none. */
	quiesce_pfc_frame(f, src, 0x81, 0x0102);
	EXPECT_EQ(0x00, f[16]);
	EXPECT_EQ(0x81, f[17]);
	for (i = 0; i < 8; i++) {
		EXPECT_EQ(i == 0 || i == 7 ? 0x01 : 0, f[18 + 2 * i])
			TH_LOG("class %d", i);
		EXPECT_EQ(i == 0 || i == 7 ? 0x02 : 0, f[19 + 2 * i])
			TH_LOG("class %d", i);
	}
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


/* The agent's socket input is untrusted: everything but three forms fails. */
TEST(agent_parse)
{
	static const char *const bad[] = {
		"", "pause", "pause ", "pause  5", "pause -5", "pause 5 ",
		" pause 5", "pause 5x", "pause 0x10", "PAUSE 5", "resume ",
		"resumex", "stat", "status\r", "pause\t5", "pause +5",
		/* the right length, the last byte wrong */
		"resumx", "statux",
		/* only "pause" and a space introduce the lease */
		"pausex5",
	};
	struct rnr_agent_req r;
	char big[RNR_AGENT_LINE_MAX + 8];
	size_t i;

	ASSERT_EQ(0, rnr_agent_parse("pause 1500", 10, &r));
	EXPECT_EQ((int)RNR_AGENT_PAUSE, (int)r.cmd);
	EXPECT_EQ(1500u, r.ms);
	ASSERT_EQ(0, rnr_agent_parse("pause 300000", 12, &r));
	EXPECT_EQ(300000u, r.ms);
	ASSERT_EQ(0, rnr_agent_parse("resume", 6, &r));
	EXPECT_EQ((int)RNR_AGENT_RESUME, (int)r.cmd);
	ASSERT_EQ(0, rnr_agent_parse("status", 6, &r));
	EXPECT_EQ((int)RNR_AGENT_STATUS, (int)r.cmd);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, rnr_agent_parse(bad[i], strlen(bad[i]), &r))
			TH_LOG("accepted bad[%zu]", i);
	}
	EXPECT_EQ(-ERANGE, rnr_agent_parse("pause 0", 7, &r));
	EXPECT_EQ(-ERANGE, rnr_agent_parse("pause 300001", 12, &r));
	EXPECT_EQ(-ERANGE, rnr_agent_parse("pause 99999999999999999999", 26,
					   &r));
	/* A NUL inside the length is a byte like any other: refused. */
	EXPECT_EQ(-EINVAL, rnr_agent_parse("resume\0", 7, &r));
	EXPECT_EQ(-EINVAL, rnr_agent_parse("pause 1\0" "0", 9, &r));
	EXPECT_EQ(-EINVAL, rnr_agent_parse("st\xc3\xa4tus", 7, &r));
	memset(big, 'a', sizeof(big));
	EXPECT_EQ(-E2BIG, rnr_agent_parse(big, sizeof(big), &r));
	EXPECT_EQ(-E2BIG, rnr_agent_parse(big, RNR_AGENT_LINE_MAX, &r));
}

TEST(agent_reply_parse)
{
	const char *l = "ok resumed by=lease resume_ms=0.125 held_ms=1500.5 withheld=4 post_errors=0";
	char w[8];
	double v;

	ASSERT_EQ(0, rnr_agent_reply_num(l, "held_ms", &v));
	EXPECT_TRUE(v > 1500.4 && v < 1500.6);
	ASSERT_EQ(0, rnr_agent_reply_num(l, "withheld", &v));
	EXPECT_TRUE(v == 4);
	EXPECT_EQ(-ENOENT, rnr_agent_reply_num(l, "held", &v));
	EXPECT_EQ(-ENOENT, rnr_agent_reply_num(l, "by", &v));
	EXPECT_EQ(-ENOENT, rnr_agent_reply_num(l, "nothing", &v));
	ASSERT_EQ(0, rnr_agent_reply_str(l, "by", w, sizeof(w)));
	EXPECT_STREQ("lease", w);
	EXPECT_EQ(-E2BIG, rnr_agent_reply_str(l, "resume_ms", w, 4));
	/* "lease" and its terminator need 6 bytes: 5 is too few */
	EXPECT_EQ(-E2BIG, rnr_agent_reply_str(l, "by", w, 5));
	ASSERT_EQ(0, rnr_agent_reply_str(l, "by", w, 6));
	EXPECT_STREQ("lease", w);
	/* a missing key, or no room at all, is "not found", not a crash */
	EXPECT_EQ(-ENOENT, rnr_agent_reply_str(l, "nothing", w, sizeof(w)));
	EXPECT_EQ(-ENOENT, rnr_agent_reply_str(l, "by", w, 0));
}

/* An agent without queue pairs: the socket, the lease and its endings. */
/* The agent's log, as its owner keeps it: every reply and lease end. */
struct agent_log {
	pthread_mutex_t lock;
	char text[4096];
};

static void agent_log_line(void *arg, const char *line)
{
	struct agent_log *l = arg;
	size_t n;

	pthread_mutex_lock(&l->lock);
	n = strlen(l->text);
	snprintf(l->text + n, sizeof(l->text) - n, "%s\n", line);
	pthread_mutex_unlock(&l->lock);
}

FIXTURE(agent)
{
	char dir[64], path[96];
	struct rnr_agent *a;
	struct agent_log log;
};

FIXTURE_SETUP(agent)
{
	struct rnr_agent_opts o = {
		.max_ms = 2000, .log = agent_log_line, .log_arg = &self->log,
	};

	pthread_mutex_init(&self->log.lock, NULL);
	self->log.text[0] = 0;

	snprintf(self->dir, sizeof(self->dir), "/tmp/rnr-agent-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->path, sizeof(self->path), "%s/a.sock", self->dir);
	o.path = self->path;
	ASSERT_EQ(0, rnr_agent_start(&o, &self->a));
}

FIXTURE_TEARDOWN(agent)
{
	rnr_agent_stop(self->a);
	rmdir(self->dir);
}

static int agent_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Send @req (as is) and read one reply line, or "" on EOF/timeout. */
static void agent_req(int fd, const void *req, size_t len, char *rep,
		      size_t rlen)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;

	if (len && send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
		rep[0] = 0;
		return;
	}
	while (got + 1 < rlen && poll(&p, 1, 3000) == 1 &&
	       read(fd, rep + got, 1) == 1 && rep[got] != '\n')
		got++;
	rep[got] = 0;
}

#define REQ(fd, s, rep) agent_req(fd, s, sizeof(s) - 1, rep, sizeof(rep))

TEST_F(agent, socket_mode_and_bad_input)
{
	char rep[256], big[200];
	struct stat st;
	int fd, fd2;

	ASSERT_EQ(0, stat(self->path, &st));
	EXPECT_TRUE(S_ISSOCK(st.st_mode));
	EXPECT_EQ(0600u, st.st_mode & 0777);
	fd = agent_connect(self->path);
	ASSERT_LE(0, fd);
	REQ(fd, "hello\n", rep);
	EXPECT_STREQ("err EINVAL bad request", rep);
	REQ(fd, "pause 0\n", rep);
	EXPECT_STREQ("err ERANGE pause must be 1..300000 ms", rep);
	REQ(fd, "resume\n", rep);
	EXPECT_STREQ("err EALREADY not paused", rep);
	/* Over the owner's maximum: refused, naming it. */
	REQ(fd, "pause 2001\n", rep);
	EXPECT_STREQ("err ERANGE pause 2001 ms exceeds the owner's maximum 2000 ms",
		     rep);
	EXPECT_FALSE(rnr_agent_paused(self->a));
	/* A second client is turned away while the first is served. */
	fd2 = agent_connect(self->path);
	ASSERT_LE(0, fd2);
	REQ(fd2, "", rep);
	EXPECT_STREQ("err EBUSY another client is connected", rep);
	/* ... with that line only, then the end of the connection */
	EXPECT_EQ(0, read(fd2, rep, sizeof(rep)));
	close(fd2);
	REQ(fd, "status\n", rep);
	EXPECT_EQ(0, strncmp(rep, "ok status state=running qps=0 max_ms=2000 ", 42))
		TH_LOG("%s", rep);
	/* A line that never ends: refused and the connection closed. */
	memset(big, 'x', sizeof(big));
	agent_req(fd, big, sizeof(big), rep, sizeof(rep));
	EXPECT_STREQ("err E2BIG request too long", rep);
	agent_req(fd, "", 0, rep, sizeof(rep));
	EXPECT_STREQ("", rep);
	close(fd);
	/* Still serving after all that. */
	fd = agent_connect(self->path);
	ASSERT_LE(0, fd);
	REQ(fd, "status\n", rep);
	EXPECT_EQ(0, strncmp(rep, "ok status state=running", 23));
	close(fd);
}

TEST_F(agent, pause_resume)
{
	char rep[256], by[16];
	double v;
	int fd;

	fd = agent_connect(self->path);
	ASSERT_LE(0, fd);
	/* Two requests in one segment are two requests. */
	REQ(fd, "pause 2000\nstatus\n", rep);
	EXPECT_EQ(0, strncmp(rep, "ok paused pause_ms=", 19)) TH_LOG("%s", rep);
	EXPECT_TRUE(rnr_agent_paused(self->a));
	agent_req(fd, "", 0, rep, sizeof(rep));
	EXPECT_EQ(0, strncmp(rep, "ok status state=paused", 22)) TH_LOG("%s", rep);
	ASSERT_EQ(0, rnr_agent_reply_num(rep, "remaining_ms", &v));
	EXPECT_TRUE(v > 1000 && v <= 2000);
	REQ(fd, "pause 100\n", rep);
	EXPECT_STREQ("err EBUSY already paused", rep);
	usleep(100000);
	REQ(fd, "resume\n", rep);
	ASSERT_EQ(0, rnr_agent_reply_str(rep, "by", by, sizeof(by))) TH_LOG("%s", rep);
	EXPECT_STREQ("request", by);
	ASSERT_EQ(0, rnr_agent_reply_num(rep, "held_ms", &v));
	EXPECT_TRUE(v >= 100 && v < 2000);
	EXPECT_FALSE(rnr_agent_paused(self->a));
	close(fd);
}

TEST_F(agent, lease_expires)
{
	uint64_t t0;
	char rep[256], by[16];
	double v, held;
	int fd;

	fd = agent_connect(self->path);
	ASSERT_LE(0, fd);
	t0 = quiesce_now_ns();
	REQ(fd, "pause 300\n", rep);
	ASSERT_EQ(0, strncmp(rep, "ok paused", 9));
	while (rnr_agent_paused(self->a) && quiesce_ms_since(t0) < 3000)
		usleep(5000);
	v = quiesce_ms_since(t0);
	EXPECT_FALSE(rnr_agent_paused(self->a));
	/* Never early; how late is the machine's load, not the agent's. */
	EXPECT_TRUE(v >= 300) TH_LOG("lease ended after %.1f ms", v);
	/* The late resume learns how the lease ended: by the lease itself. */
	REQ(fd, "resume\n", rep);
	ASSERT_EQ(0, rnr_agent_reply_str(rep, "by", by, sizeof(by))) TH_LOG("%s", rep);
	EXPECT_STREQ("lease", by);
	ASSERT_EQ(0, rnr_agent_reply_num(rep, "held_ms", &held));
	EXPECT_TRUE(held >= 300 && held <= v) TH_LOG("held %.1f ms, seen %.1f ms", held, v);
	close(fd);
}

TEST_F(agent, hangup_ends_lease)
{
	uint64_t t0;
	char rep[256], by[16];
	const char *line;
	double v, held;
	int fd;

	fd = agent_connect(self->path);
	ASSERT_LE(0, fd);
	REQ(fd, "pause 2000\n", rep);
	ASSERT_EQ(0, strncmp(rep, "ok paused", 9));
	t0 = quiesce_now_ns();
	close(fd);
	while (rnr_agent_paused(self->a) && quiesce_ms_since(t0) < 3000)
		usleep(1000);
	v = quiesce_ms_since(t0);
	EXPECT_FALSE(rnr_agent_paused(self->a));
	/*
	 * The close, not the 2 s lease, ended it: the agent's log says so,
	 * and its own clock has the hold shorter than the lease.
	 */
	pthread_mutex_lock(&self->log.lock);
	line = strstr(self->log.text, "resumed by=");
	snprintf(rep, sizeof(rep), "%s", line ? line : "");
	pthread_mutex_unlock(&self->log.lock);
	ASSERT_EQ(0, rnr_agent_reply_str(rep, "by", by, sizeof(by))) TH_LOG("log: %s", self->log.text);
	EXPECT_STREQ("hangup", by) TH_LOG("resumed %.1f ms after the close", v);
	ASSERT_EQ(0, rnr_agent_reply_num(rep, "held_ms", &held));
	EXPECT_TRUE(held < 2000) TH_LOG("held %.1f ms", held);
}

/* Which of the descriptors 0..63 are open, one bit each. */
static uint64_t open_fds(void)
{
	uint64_t m = 0;

	for (int fd = 0; fd < 64; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			m |= 1ULL << fd;
	return m;
}

/*
 * The client's connection is the agent's alone: a program its owner runs
 * (fork and exec) does not inherit it.
 */
TEST_F(agent, client_connection_closed_on_exec)
{
	uint64_t before, added;
	char rep[256];
	int fd;

	before = open_fds();
	fd = agent_connect(self->path);
	ASSERT_LE(0, fd);
	REQ(fd, "status\n", rep);
	ASSERT_EQ(0, strncmp(rep, "ok status", 9)) TH_LOG("%s", rep);
	added = open_fds() & ~before & ~(1ULL << fd);
	ASSERT_EQ(1, __builtin_popcountll(added));
	EXPECT_EQ(FD_CLOEXEC, fcntl(__builtin_ctzll(added), F_GETFD) & FD_CLOEXEC);
	close(fd);
}

/*
 * Only root and the agent's own user may use it: another user, let
 * through the file modes, is refused by its credentials. Needs root.
 */
TEST_F(agent, other_user_refused)
{
	int status;
	pid_t pid;

	if (geteuid() != 0)
		SKIP(return, "needs root to be another user");
	ASSERT_EQ(0, chmod(self->dir, 0711));
	ASSERT_EQ(0, chmod(self->path, 0666));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		char rep[256];
		int fd;

		if (setgid(65534) || setuid(65534))
			_exit(2);
		fd = agent_connect(self->path);
		if (fd < 0)
			_exit(3);
		/* told before any request, then the connection ends */
		agent_req(fd, "", 0, rep, sizeof(rep));
		if (strcmp(rep, "err EPERM")) {
			fprintf(stderr, "# reply: %s\n", rep);
			_exit(4);
		}
		_exit(read(fd, rep, sizeof(rep)) ? 5 : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_FALSE(rnr_agent_paused(self->a));
}

/*
 * A client accepted on descriptor 0 (standard input closed) is still a
 * client: stopping the agent closes its connection, as any other.
 */
TEST_F(agent, stop_closes_client_on_descriptor_0)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pollfd p = { .events = POLLIN };
	char rep[256];
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ASSERT_LT(0, fd);
	p.fd = fd;
	strcpy(sa.sun_path, self->path);
	close(0);
	ASSERT_EQ(0, connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
	REQ(fd, "status\n", rep);
	ASSERT_EQ(0, strncmp(rep, "ok status", 9)) TH_LOG("%s", rep);
	ASSERT_LE(0, fcntl(0, F_GETFD));
	rnr_agent_stop(self->a);
	self->a = NULL;
	EXPECT_GT(0, fcntl(0, F_GETFD));
	/* and the client sees the end of the connection */
	EXPECT_EQ(1, poll(&p, 1, 3000));
	EXPECT_EQ(0, recv(fd, rep, sizeof(rep), MSG_DONTWAIT));
	close(fd);
}

/*
 * A refused start says why (the errno of the step that failed) and keeps
 * none of the descriptors it opened.
 */
TEST(agent_start_refuses)
{
	struct rnr_agent_opts o = { .path = "/tmp/x", .max_ms = 0 };
	struct rnr_agent *a;
	struct stat st;
	uint64_t before = open_fds();

	EXPECT_EQ(-EINVAL, rnr_agent_start(&o, &a));
	o.max_ms = RNR_AGENT_MAX_MS + 1;
	EXPECT_EQ(-EINVAL, rnr_agent_start(&o, &a));
	/* A regular file at the path is not the agent's to remove. */
	o.max_ms = 100;
	o.path = "/proc/self/status";
	EXPECT_EQ(-EADDRINUSE, rnr_agent_start(&o, &a));
	EXPECT_EQ(0, lstat(o.path, &st));
	EXPECT_TRUE(S_ISREG(st.st_mode));
	EXPECT_EQ(before, open_fds());
	/* No directory to bind in. */
	o.path = "/nonexistent/rnr-agent.sock";
	EXPECT_EQ(-ENOENT, rnr_agent_start(&o, &a));
	EXPECT_EQ(before, open_fds());
}

/*
 * A lease that cannot be had (no such interface) is refused before
 * anything is loaded, and closes none of the caller's descriptors:
 * standard input included, as a descriptor left at 0 would.
 */
TEST(tcp_refused_lease_closes_nothing)
{
	struct quiesce_conn c = { .family = AF_INET, .lport = 50000,
				  .rport = 4420 };
	struct quiesce_selection s = {};
	struct quiesce_tcp *q = NULL;
	uint64_t before;

	if (fcntl(0, F_GETFD) < 0)
		ASSERT_EQ(0, open("/dev/null", O_RDONLY));
	ASSERT_EQ(0, quiesce_sel_parse_conn(&s, "*,10.1.0.100:4420"));
	before = open_fds();
	EXPECT_EQ(-ENODEV, quiesce_tcp_prepare("no-such-if0", &c, 1, 1000, &q));
	EXPECT_EQ(-ENODEV, quiesce_tcp_prepare_fwd("no-such-if0", "lo", s.sel,
						   s.nr, 1000, &q));
	EXPECT_EQ(NULL, q);
	EXPECT_EQ(before, open_fds());
	EXPECT_EQ(0, fcntl(0, F_GETFD) < 0 ? errno : 0);
}

/*
 * A lease taken with standard input closed has descriptor 0 among its
 * own (a raw socket: libbpf keeps its descriptors above 2), and freeing
 * it closes that one too. Needs CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW.
 */
TEST(tcp_lease_gives_back_descriptor_0)
{
	struct quiesce_conn c = { .family = AF_INET, .lport = 50000,
				  .rport = 4420 };
	struct quiesce_tcp *q = NULL;
	uint64_t before;

	close(0);
	before = open_fds();
	ASSERT_EQ(0, quiesce_tcp_prepare("lo", &c, 1, 1000, &q));
	ASSERT_EQ(1ULL, open_fds() & 1);
	quiesce_tcp_free(q);
	EXPECT_EQ(before, open_fds());
}

/* An IPv4 TCP segment with ACK set, in an Ethernet frame, into @f (54). */
static void tcp_frame(uint8_t *f, const uint8_t *dmac, const uint8_t *smac,
		      const char *sip, const char *dip, uint16_t sport,
		      uint16_t dport, uint32_t seq, uint32_t ack)
{
	uint16_t v16;
	uint32_t v32;

	memset(f, 0, 54);
	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	f[12] = 0x08;
	f[14] = 0x45;
	v16 = htons(40);
	memcpy(f + 16, &v16, 2);
	f[22] = 64;
	f[23] = 6;
	inet_pton(AF_INET, sip, f + 26);
	inet_pton(AF_INET, dip, f + 30);
	v16 = htons(sport);
	memcpy(f + 34, &v16, 2);
	v16 = htons(dport);
	memcpy(f + 36, &v16, 2);
	v32 = htonl(seq);
	memcpy(f + 38, &v32, 4);
	v32 = htonl(ack);
	memcpy(f + 42, &v32, 4);
	f[46] = 5 << 4;
	f[47] = 0x10;		/* ACK */
	v16 = htons(1000);
	memcpy(f + 48, &v16, 2);
}

/*
 * Forwarded mode learns a guest's connection from the peer's segment to
 * it (entering --dev) as from the guest's own (leaving it), keyed by the
 * guest's end, with what a kick needs before the guest has said anything:
 * its MAC, the peer's sequence number, the guest's acknowledged one. The
 * guest's own segments then take over. An index past the connections
 * learned is none of them, and freeing the lease gives back every
 * descriptor it took. Needs CAP_BPF and CAP_NET_ADMIN.
 */
TEST(fwd_learns_from_either_direction)
{
	static const uint8_t guest[6] = { 2, 0, 0, 0, 0, 0x0a };
	static const uint8_t peer[6] = { 2, 0, 0, 0, 0, 0x64 };
	static const int beyond[] = { -1, 1, QUIESCE_TCP_MAX_CONNS, INT_MAX,
				      INT_MIN };
	struct quiesce_selection s = {};
	const struct quiesce_conn *c;
	struct quiesce_tcp_val v;
	struct quiesce_tcp *q;
	uint8_t f[54], a[4];
	uint64_t before;
	size_t i;

	ASSERT_EQ(0, quiesce_sel_parse_conn(&s, "*,10.1.0.100:4420"));
	before = open_fds();
	ASSERT_EQ(0, quiesce_tcp_prepare_fwd("lo", "lo", s.sel, s.nr, 1000,
					     &q));
	EXPECT_NE(before, open_fds());
	EXPECT_EQ(-ENOENT, quiesce_tcp_conn_val(q, 0, &v));
	/* the peer's segment to another port of the guest: not selected */
	tcp_frame(f, guest, peer, "10.1.0.100", "10.1.0.10", 4421, 50000,
		  1000, 2000);
	ASSERT_EQ(0, quiesce_tcp_test_frame(q, true, f, sizeof(f)));
	EXPECT_EQ(0, quiesce_tcp_conns(q, &c));
	/* the peer's segment from 4420 to the guest's 50000 */
	tcp_frame(f, guest, peer, "10.1.0.100", "10.1.0.10", 4420, 50000,
		  1000, 2000);
	ASSERT_EQ(0, quiesce_tcp_test_frame(q, true, f, sizeof(f)));
	ASSERT_EQ(1, quiesce_tcp_conns(q, &c));
	inet_pton(AF_INET, "10.1.0.10", a);
	EXPECT_EQ(0, memcmp(a, c[0].laddr, 4));
	EXPECT_EQ(50000, c[0].lport);
	EXPECT_EQ(4420, c[0].rport);
	ASSERT_EQ(0, quiesce_tcp_conn_val(q, 0, &v));
	EXPECT_EQ(0ULL, v.seen);
	EXPECT_EQ(0, memcmp(guest, v.src_mac, 6));
	EXPECT_EQ(0, memcmp(peer, v.dst_mac, 6));
	EXPECT_EQ(1000u, v.ack);
	EXPECT_EQ(2000u, v.seq_next);
	/* the guest's own segment: its numbers replace the peer's view */
	tcp_frame(f, peer, guest, "10.1.0.10", "10.1.0.100", 50000, 4420,
		  2500, 1500);
	ASSERT_EQ(0, quiesce_tcp_test_frame(q, false, f, sizeof(f)));
	ASSERT_EQ(0, quiesce_tcp_conn_val(q, 0, &v));
	EXPECT_EQ(1ULL, v.seen);
	EXPECT_EQ(1500u, v.ack);
	EXPECT_EQ(2500u, v.seq_next);
	/* and a later peer segment no longer overrides them */
	tcp_frame(f, guest, peer, "10.1.0.100", "10.1.0.10", 4420, 50000,
		  900, 1900);
	ASSERT_EQ(0, quiesce_tcp_test_frame(q, true, f, sizeof(f)));
	ASSERT_EQ(0, quiesce_tcp_conn_val(q, 0, &v));
	EXPECT_EQ(1500u, v.ack);
	EXPECT_EQ(2500u, v.seq_next);
	EXPECT_EQ(1, quiesce_tcp_conns(q, &c));
	for (i = 0; i < sizeof(beyond) / sizeof(beyond[0]); i++) {
		EXPECT_EQ(-ENOENT, quiesce_tcp_conn_val(q, beyond[i], &v))
			TH_LOG("index %d", beyond[i]);
	}
	quiesce_tcp_free(q);
	EXPECT_EQ(before, open_fds());
}

/*
 * A local lease keys each connection by its family too: the connection's
 * own segment leaving the host is learned, another port's is not. Needs
 * CAP_BPF and CAP_NET_ADMIN.
 */
TEST(local_learns_its_connection)
{
	static const uint8_t mac[6] = { 2, 0, 0, 0, 0, 1 };
	struct quiesce_conn c = { .family = AF_INET, .lport = 50000,
				  .rport = 4420 };
	struct quiesce_tcp_val v;
	struct quiesce_tcp *q;
	uint8_t f[54];

	inet_pton(AF_INET, "10.1.0.10", c.laddr);
	inet_pton(AF_INET, "10.1.0.100", c.raddr);
	ASSERT_EQ(0, quiesce_tcp_prepare("lo", &c, 1, 1000, &q));
	tcp_frame(f, mac, mac, "10.1.0.10", "10.1.0.100", 50001, 4420,
		  2500, 1500);
	ASSERT_EQ(0, quiesce_tcp_test_frame(q, false, f, sizeof(f)));
	ASSERT_EQ(0, quiesce_tcp_conn_val(q, 0, &v));
	EXPECT_EQ(0ULL, v.seen);
	tcp_frame(f, mac, mac, "10.1.0.10", "10.1.0.100", 50000, 4420,
		  2500, 1500);
	ASSERT_EQ(0, quiesce_tcp_test_frame(q, false, f, sizeof(f)));
	ASSERT_EQ(0, quiesce_tcp_conn_val(q, 0, &v));
	EXPECT_EQ(1ULL, v.seen);
	EXPECT_EQ(1500u, v.ack);
	EXPECT_EQ(2500u, v.seq_next);
	quiesce_tcp_free(q);
}

/*
 * Resuming gives the lease's link back; freeing it later must not close
 * that descriptor number again, now another file's. Every descriptor free
 * after the resume is taken here and must still be open after the free.
 * Needs CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW.
 */
TEST(tcp_free_after_resume_closes_only_its_own)
{
	struct quiesce_conn c = { .family = AF_INET, .lport = 50000,
				  .rport = 4420 };
	struct quiesce_tcp_report rep = {};
	struct quiesce_tcp *q = NULL;
	uint64_t mine;
	int fd, nul;

	inet_pton(AF_INET, "127.0.0.1", c.laddr);
	inet_pton(AF_INET, "127.0.0.1", c.raddr);
	ASSERT_EQ(0, quiesce_tcp_prepare("lo", &c, 1, 1000, &q));
	/* Never activated: no window was closed, none needs reopening. */
	EXPECT_EQ(0, quiesce_tcp_resume(q, &rep));
	EXPECT_EQ(0, rep.reopened);
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, nul);
	mine = ~open_fds();
	for (fd = 0; fd < 64; fd++)
		if (mine & (1ULL << fd))
			ASSERT_EQ(fd, dup2(nul, fd));
	mine |= 1ULL << nul;
	quiesce_tcp_free(q);
	EXPECT_EQ(mine, open_fds() & mine);
}

/*
 * A forwarded lease takes 1..QUIESCE_TCP_MAX_PATTERNS patterns: none or
 * one more is refused before anything is loaded. Needs CAP_BPF and
 * CAP_NET_ADMIN (for the largest count accepted).
 */
TEST(fwd_pattern_count_bounds)
{
	struct quiesce_selection s = {};
	struct quiesce_tcp *q = NULL;
	char arg[32];
	int i;

	for (i = 0; i <= QUIESCE_TCP_MAX_PATTERNS; i++) {
		snprintf(arg, sizeof(arg), "*,10.1.0.100:%d", 4420 + i);
		ASSERT_EQ(0, quiesce_sel_parse_conn(&s, arg));
	}
	EXPECT_EQ(-EINVAL, quiesce_tcp_prepare_fwd("lo", "lo", s.sel, 0, 1000,
						   &q));
	EXPECT_EQ(-EINVAL, quiesce_tcp_prepare_fwd("lo", "lo", s.sel, -1,
						   1000, &q));
	EXPECT_EQ(-EINVAL, quiesce_tcp_prepare_fwd("lo", "lo", s.sel,
						   QUIESCE_TCP_MAX_PATTERNS + 1,
						   1000, &q));
	EXPECT_EQ(NULL, q);
	ASSERT_EQ(0, quiesce_tcp_prepare_fwd("lo", "lo", s.sel,
					     QUIESCE_TCP_MAX_PATTERNS, 1000,
					     &q));
	quiesce_tcp_free(q);
}

TEST_HARNESS_MAIN
