// SPDX-License-Identifier: GPL-2.0-only
/*
 * hbamig's QMP client (userspace/qmp.c): framing, decoding of replies and
 * events, the command/reply exchange and the migration driver. A scripted
 * QMP server on the other end of a socketpair speaks QMP JSON as QEMU does
 * (greeting, CRLF after each message, ids echoed, events interleaved);
 * the "real_qemu" tests run the same code against two QEMU processes.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "kselftest_harness.h"
#include "qmp.h"

/* What QEMU 10.0 answered to query-migrate after a migration (captured). */
static const char qemu10_completed[] =
	"{\"return\": {\"status\": \"completed\", \"setup-time\": 2, "
	"\"downtime\": 4, \"total-time\": 15, \"ram\": {\"total\": 67641344, "
	"\"postcopy-requests\": 0, \"dirty-sync-count\": 2, \"multifd-bytes\": 0, "
	"\"pages-per-second\": 0, \"downtime-bytes\": 29185, \"page-size\": 4096, "
	"\"remaining\": 0, \"postcopy-bytes\": 0, \"mbps\": 461.60984615384615, "
	"\"transferred\": 750116, \"dirty-sync-missed-zero-copy\": 0, "
	"\"precopy-bytes\": 644213, \"duplicate\": 16443, \"dirty-pages-rate\": 0, "
	"\"normal-bytes\": 524288, \"normal\": 128}, "
	"\"vfio\": {\"transferred\": 1540}}, \"id\": 3}\r\n";

static const char greeting[] =
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, "
	"\"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n";

static struct json_object *parse1(const char *s)
{
	struct json_object *o = NULL;
	struct qmp_rx rx;

	if (qmp_rx_init(&rx) || qmp_rx_feed(&rx, s, strlen(s)) ||
	    qmp_rx_next(&rx, &o) != 1)
		o = NULL;
	qmp_rx_free(&rx);
	return o;
}

static int mig_info_of(const char *s, struct qmp_mig_info *mi)
{
	struct json_object *o = parse1(s);
	struct qmp_msg m;
	int r = -EINVAL;

	if (o && !qmp_classify(o, &m) && m.kind == QMP_MSG_RETURN)
		r = qmp_parse_mig_info(m.ret, mi);
	json_object_put(o);
	return r;
}

/* ---- framing ---- */

TEST(rx_messages_split_anywhere)
{
	char stream[4096];
	int cut, n;

	snprintf(stream, sizeof(stream), "%s%s  \n{\"event\": \"STOP\", "
		 "\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n",
		 greeting, qemu10_completed);
	/* Every split point of the stream gives the same three messages. */
	for (cut = 0; cut <= (int)strlen(stream); cut++) {
		struct json_object *o;
		struct qmp_rx rx;
		struct qmp_msg m;
		int kinds[3], k = 0;

		ASSERT_EQ(0, qmp_rx_init(&rx));
		ASSERT_EQ(0, qmp_rx_feed(&rx, stream, cut));
		while ((n = qmp_rx_next(&rx, &o)) == 1) {
			ASSERT_EQ(0, qmp_classify(o, &m));
			ASSERT_LT(k, 3);
			kinds[k++] = m.kind;
			json_object_put(o);
		}
		ASSERT_EQ(0, n);
		ASSERT_EQ(0, qmp_rx_feed(&rx, stream + cut,
					 strlen(stream) - cut));
		while ((n = qmp_rx_next(&rx, &o)) == 1) {
			ASSERT_EQ(0, qmp_classify(o, &m));
			ASSERT_LT(k, 3);
			kinds[k++] = m.kind;
			json_object_put(o);
		}
		ASSERT_EQ(0, n);
		ASSERT_EQ(3, k);
		ASSERT_EQ(QMP_MSG_GREETING, kinds[0]);
		ASSERT_EQ(QMP_MSG_RETURN, kinds[1]);
		ASSERT_EQ(QMP_MSG_EVENT, kinds[2]);
		ASSERT_EQ(0, (int)rx.len);
		qmp_rx_free(&rx);
	}
}

TEST(rx_rejects_what_is_not_qmp)
{
	static const char *const bad[] = {
		"garbage\n", "{\"a\": }", "[1, 2]", "\"str\"", "null",
		"{\"a\": 'single'}", "{\"a\": 1,}", "{\"s\": \"\xff\xfe\"}",
		"}", "{\"a\": \"\\x\"}",
	};
	struct json_object *o;
	struct qmp_rx rx;
	char deep[200];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_EQ(0, qmp_rx_init(&rx));
		ASSERT_EQ(0, qmp_rx_feed(&rx, bad[i], strlen(bad[i])));
		/* "[1, 2]" ends at once; others may need the next byte. */
		ASSERT_EQ(0, qmp_rx_feed(&rx, " ", 1));
		EXPECT_EQ(-EPROTO, qmp_rx_next(&rx, &o)) {
			TH_LOG("accepted: %s", bad[i]);
		}
		EXPECT_EQ(NULL, o);
		qmp_rx_free(&rx);
	}
	/* Nesting deeper than QMP_DEPTH_MAX. */
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	deep[0] = '{';
	ASSERT_EQ(0, qmp_rx_init(&rx));
	ASSERT_EQ(0, qmp_rx_feed(&rx, deep, sizeof(deep)));
	EXPECT_EQ(-EPROTO, qmp_rx_next(&rx, &o));
	qmp_rx_free(&rx);
}

TEST(rx_bounds_a_message)
{
	static char big[64 * 1024];
	struct json_object *o;
	struct qmp_rx rx;
	size_t fed = 0;
	int r = 0;

	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[1] = '"';
	ASSERT_EQ(0, qmp_rx_init(&rx));
	/* An endless string: refused once it passes QMP_MSG_MAX. */
	while (fed <= QMP_MSG_MAX) {
		r = qmp_rx_feed(&rx, big, sizeof(big));
		if (r)
			break;
		fed += sizeof(big);
		ASSERT_EQ(0, qmp_rx_next(&rx, &o));
		big[0] = big[1] = 'x';
	}
	EXPECT_EQ(-EMSGSIZE, r);
	EXPECT_LE(rx.len, (size_t)QMP_MSG_MAX);
	qmp_rx_free(&rx);
}

/*
 * Inside a string an escaped quote does not end it, so the brackets after
 * it are text; an escaped backslash does not escape the quote after it.
 */
TEST(rx_escapes_in_strings)
{
	struct json_object *o, *v;
	struct qmp_rx rx;

	o = parse1("{\"return\": \"a\\\"}b\"}\r\n");
	ASSERT_NE(NULL, o);
	ASSERT_TRUE(json_object_object_get_ex(o, "return", &v));
	EXPECT_STREQ("a\"}b", json_object_get_string(v));
	json_object_put(o);

	o = parse1("{\"desc\": \"c:\\\\\", \"x\": \"]\"}\r\n");
	ASSERT_NE(NULL, o);
	ASSERT_TRUE(json_object_object_get_ex(o, "desc", &v));
	EXPECT_STREQ("c:\\", json_object_get_string(v));
	json_object_put(o);

	/* the escape split between two reads */
	ASSERT_EQ(0, qmp_rx_init(&rx));
	ASSERT_EQ(0, qmp_rx_feed(&rx, "{\"return\": \"a\\", 14));
	EXPECT_EQ(0, qmp_rx_next(&rx, &o));
	ASSERT_EQ(0, qmp_rx_feed(&rx, "\"}\"}\r\n", 6));
	ASSERT_EQ(1, qmp_rx_next(&rx, &o));
	ASSERT_TRUE(json_object_object_get_ex(o, "return", &v));
	EXPECT_STREQ("a\"}", json_object_get_string(v));
	json_object_put(o);
	qmp_rx_free(&rx);
}

/* ---- decoding ---- */

TEST(classify)
{
	struct json_object *o;
	struct qmp_msg m;

	o = parse1(greeting);
	ASSERT_NE(NULL, o);
	ASSERT_EQ(0, qmp_classify(o, &m));
	EXPECT_EQ(QMP_MSG_GREETING, m.kind);
	EXPECT_EQ(10, m.ver_major);
	EXPECT_EQ(0, m.ver_minor);
	EXPECT_EQ(2, m.ver_micro);
	json_object_put(o);

	o = parse1("{\"id\": 7, \"error\": {\"class\": \"GenericError\", "
		   "\"desc\": \"Failed to connect\\u001b[31m\\nx\"}}");
	ASSERT_EQ(0, qmp_classify(o, &m));
	EXPECT_EQ(QMP_MSG_ERROR, m.kind);
	EXPECT_TRUE(m.has_id);
	EXPECT_EQ(7, m.id);
	EXPECT_STREQ("GenericError", m.err_class);
	/* Control characters from QEMU never reach the terminal. */
	EXPECT_STREQ("Failed to connect?[31m?x", m.err_desc);
	json_object_put(o);

	o = parse1("{\"event\": \"MIGRATION\", \"data\": {\"status\": "
		   "\"active\"}, \"timestamp\": {\"seconds\": 1}}");
	ASSERT_EQ(0, qmp_classify(o, &m));
	EXPECT_EQ(QMP_MSG_EVENT, m.kind);
	EXPECT_STREQ("MIGRATION", m.event);
	EXPECT_NE(NULL, m.data);
	json_object_put(o);

	o = parse1("{\"id\": \"text\", \"return\": {}}");
	ASSERT_EQ(0, qmp_classify(o, &m));
	EXPECT_EQ(QMP_MSG_RETURN, m.kind);
	EXPECT_FALSE(m.has_id);
	json_object_put(o);

	/* Wrong shapes. */
	o = parse1("{\"error\": \"no\"}");
	EXPECT_EQ(-EPROTO, qmp_classify(o, &m));
	json_object_put(o);
	o = parse1("{\"event\": 5}");
	EXPECT_EQ(-EPROTO, qmp_classify(o, &m));
	json_object_put(o);
	o = parse1("{\"something\": 1}");
	EXPECT_EQ(-EPROTO, qmp_classify(o, &m));
	json_object_put(o);
	o = parse1("{\"QMP\": {\"version\": {\"qemu\": {\"major\": -1}}}}");
	ASSERT_EQ(0, qmp_classify(o, &m));
	EXPECT_EQ(0, m.ver_major);
	json_object_put(o);
	/* Each part of the version on its own, up to three digits each. */
	o = parse1("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 999, "
		   "\"minor\": 2, \"major\": 9}}, \"capabilities\": []}}");
	ASSERT_EQ(0, qmp_classify(o, &m));
	EXPECT_EQ(QMP_MSG_GREETING, m.kind);
	EXPECT_EQ(9, m.ver_major);
	EXPECT_EQ(2, m.ver_minor);
	EXPECT_EQ(999, m.ver_micro);
	json_object_put(o);
	o = parse1("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, "
		   "\"minor\": 999, \"major\": 999}}, \"capabilities\": []}}");
	ASSERT_EQ(0, qmp_classify(o, &m));
	EXPECT_EQ(999, m.ver_major);
	EXPECT_EQ(999, m.ver_minor);
	EXPECT_EQ(0, m.ver_micro);
	json_object_put(o);
}

/*
 * query-status (QAPI StatusInfo): "status" a string and "running" a
 * boolean, else the reply is not QEMU's. An error whose class and desc are
 * no strings leaves no text behind from an earlier message.
 */
TEST(status_and_error_types)
{
	static const char *const bad[] = {
		"{\"status\": \"running\", \"running\": \"yes\"}",
		"{\"status\": \"running\"}",
		"{\"running\": true}",
	};
	struct json_object *o;
	struct qmp_msg m;
	char st[32];
	bool running = true;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = parse1(bad[i]);
		ASSERT_NE(NULL, o);
		EXPECT_EQ(-EPROTO, qmp_parse_status(o, st, sizeof(st), &running)) {
			TH_LOG("accepted: %s", bad[i]);
		}
		json_object_put(o);
	}
	o = parse1("{\"status\": \"paused\", \"running\": false}");
	ASSERT_EQ(0, qmp_parse_status(o, st, sizeof(st), &running));
	EXPECT_STREQ("paused", st);
	EXPECT_FALSE(running);
	json_object_put(o);

	memset(&m, 'x', sizeof(m));
	m.err_class[sizeof(m.err_class) - 1] = 0;
	o = parse1("{\"error\": {\"class\": 5, \"desc\": []}}");
	ASSERT_EQ(0, qmp_classify(o, &m));
	EXPECT_EQ(QMP_MSG_ERROR, m.kind);
	EXPECT_STREQ("", m.err_class);
	EXPECT_STREQ("(no description)", m.err_desc);
	json_object_put(o);
}

TEST(mig_info_qemu10)
{
	struct qmp_mig_info mi;

	ASSERT_EQ(0, mig_info_of(qemu10_completed, &mi));
	EXPECT_STREQ("completed", mi.status);
	EXPECT_TRUE(mi.has_downtime);
	EXPECT_EQ(4, mi.downtime_ms);
	EXPECT_EQ(15, mi.total_time_ms);
	EXPECT_EQ(2, mi.setup_time_ms);
	EXPECT_FALSE(mi.has_expected_downtime);
	EXPECT_TRUE(mi.has_ram);
	EXPECT_EQ(750116, mi.ram_transferred);
	EXPECT_EQ(67641344, mi.ram_total);
	EXPECT_EQ(2, mi.ram_dirty_sync_count);
	EXPECT_TRUE(mi.ram_mbps > 461.6 && mi.ram_mbps < 461.7);
	EXPECT_TRUE(mi.has_vfio);
	EXPECT_EQ(1540, mi.vfio_transferred);
	EXPECT_TRUE(qmp_mig_done(mi.status));

	/* Before any migration QEMU answers {}. */
	ASSERT_EQ(0, mig_info_of("{\"return\": {}}", &mi));
	EXPECT_STREQ("", mi.status);
	EXPECT_FALSE(mi.has_ram);
	EXPECT_FALSE(mi.has_vfio);

	ASSERT_EQ(0, mig_info_of("{\"return\": {\"status\": \"failed\", "
				 "\"error-desc\": \"Unable to write\"}}", &mi));
	EXPECT_STREQ("Unable to write", mi.error_desc);
	EXPECT_TRUE(qmp_mig_done("failed"));
	EXPECT_TRUE(qmp_mig_done("cancelled"));
	EXPECT_FALSE(qmp_mig_done("active"));
	EXPECT_FALSE(qmp_mig_done("cancelling"));
	EXPECT_FALSE(qmp_mig_done("device"));

	ASSERT_EQ(0, mig_info_of("{\"return\": {\"blocked-reasons\": "
				 "[\"a\", \"b\", \"c\", \"d\", \"e\"]}}", &mi));
	EXPECT_EQ(5, mi.nr_blocked);
	EXPECT_STREQ("d", mi.blocked[3]);
}

TEST(mig_info_rejects_wrong_types)
{
	static const char *const bad[] = {
		"{\"return\": []}",
		"{\"return\": {\"status\": 1}}",
		"{\"return\": {\"status\": \"\"}}",
		"{\"return\": {\"downtime\": -4}}",
		"{\"return\": {\"downtime\": \"4\"}}",
		"{\"return\": {\"total-time\": 1.5}}",
		"{\"return\": {\"ram\": 5}}",
		"{\"return\": {\"ram\": {\"transferred\": -1}}}",
		"{\"return\": {\"ram\": {\"mbps\": \"fast\"}}}",
		"{\"return\": {\"vfio\": []}}",
		"{\"return\": {\"vfio\": {\"transferred\": true}}}",
		"{\"return\": {\"blocked-reasons\": \"x\"}}",
		"{\"return\": {\"blocked-reasons\": [1]}}",
	};
	struct qmp_mig_info mi;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_EQ(-EPROTO, mig_info_of(bad[i], &mi)) {
			TH_LOG("accepted: %s", bad[i]);
		}
	/* Numbers past INT64_MAX are kept, times saturate. */
	ASSERT_EQ(0, mig_info_of("{\"return\": {\"downtime\": "
				 "18446744073709551615, \"ram\": "
				 "{\"transferred\": 18446744073709551615}}}",
				 &mi));
	EXPECT_EQ(INT64_MAX, mi.downtime_ms);
	EXPECT_EQ(UINT64_MAX, mi.ram_transferred);
	/* A status this QEMU does not have is carried, not refused. */
	ASSERT_EQ(0, mig_info_of("{\"return\": {\"status\": \"x\"}}", &mi));
	EXPECT_STREQ("x", mi.status);
}

struct props {
	int n;
	char names[8][64];
};

static int prop_cb(const char *name, const char *type, void *arg)
{
	struct props *p = arg;

	if (strncmp(type, "child<", 6))
		return 0;
	snprintf(p->names[p->n++], sizeof(p->names[0]), "%s", name);
	return p->n == 8;
}

TEST(qom_list)
{
	struct json_object *o;
	struct props p = { 0 };
	struct qmp_msg m;
	char s[1024];

	o = parse1("{\"return\": [{\"name\": \"type\", \"type\": \"string\"}, "
		   "{\"name\": \"hba0\", \"type\": \"child<vfio-pci>\"}, "
		   "{\"name\": \"nic\", \"type\": \"child<e1000>\"}]}");
	ASSERT_EQ(0, qmp_classify(o, &m));
	ASSERT_EQ(0, qmp_parse_qom_list(m.ret, prop_cb, &p));
	EXPECT_EQ(2, p.n);
	EXPECT_STREQ("hba0", p.names[0]);
	json_object_put(o);

	o = parse1("{\"return\": [{\"name\": 1, \"type\": \"string\"}]}");
	ASSERT_EQ(0, qmp_classify(o, &m));
	EXPECT_EQ(-EPROTO, qmp_parse_qom_list(m.ret, prop_cb, &p));
	json_object_put(o);
	o = parse1("{\"return\": {}}");
	ASSERT_EQ(0, qmp_classify(o, &m));
	EXPECT_EQ(-EPROTO, qmp_parse_qom_list(m.ret, prop_cb, &p));
	json_object_put(o);

	/* A name too long to address is skipped, not truncated. */
	memset(&p, 0, sizeof(p));
	snprintf(s, sizeof(s), "{\"return\": [{\"name\": \"%0300d\", "
		 "\"type\": \"child<vfio-pci>\"}]}", 0);
	o = parse1(s);
	ASSERT_EQ(0, qmp_classify(o, &m));
	EXPECT_EQ(0, qmp_parse_qom_list(m.ret, prop_cb, &p));
	EXPECT_EQ(0, p.n);
	json_object_put(o);
}

/* ---- a scripted QMP server on a socketpair ---- */

/*
 * The server answers each command with the next reply of its script for
 * that command (the last one repeats), echoing the id; "@EVENT" lines are
 * sent before the reply, "@STALE" sends a reply with an old id first,
 * "@BARE" one without an id, "@CLOSE" hangs up, "@SILENT" never answers,
 * "@RAW:" sends bytes as is. As in qmp-peer, the most specific entry
 * answers: "qom-get PATH PROPERTY", "qom-list PATH", then the command.
 */
struct script {
	const char *cmd;
	const char *replies[8];
};

struct server {
	int fd;
	const struct script *s;
	int ns;
	int used[16];
	char log[4096];		/* commands received, space separated */
	pthread_t th;
};

static void srv_send(struct server *sv, const char *s)
{
	size_t len = strlen(s);

	while (len) {
		ssize_t n = send(sv->fd, s, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		s += n;
		len -= n;
	}
}

static void srv_reply(struct server *sv, const char *tmpl, int64_t id)
{
	struct json_object *o;
	char buf[4096];

	if (!strcmp(tmpl, "@CLOSE")) {
		shutdown(sv->fd, SHUT_RDWR);
		return;
	}
	if (!strcmp(tmpl, "@SILENT"))
		return;
	if (!strncmp(tmpl, "@RAW:", 5)) {
		srv_send(sv, tmpl + 5);
		return;
	}
	if (!strncmp(tmpl, "@EVENT", 6)) {
		srv_send(sv, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, "
			 "\"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}\r\n");
		tmpl += 6;
	}
	if (!strncmp(tmpl, "@STALE", 6)) {
		snprintf(buf, sizeof(buf), "{\"return\": {\"status\": \"bogus\"}, "
			 "\"id\": %lld}\r\n", (long long)id - 1000);
		srv_send(sv, buf);
		tmpl += 6;
	}
	if (!strncmp(tmpl, "@BARE", 5)) {
		srv_send(sv, "{\"return\": {\"status\": \"bogus\"}}\r\n");
		tmpl += 5;
	}
	o = json_tokener_parse(tmpl);
	if (!o) {
		srv_send(sv, tmpl);
		return;
	}
	json_object_object_add(o, "id", json_object_new_int64(id));
	snprintf(buf, sizeof(buf), "%s\r\n",
		 json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED));
	json_object_put(o);
	srv_send(sv, buf);
}

/* The script entry for @msg, -1 when none. */
static int srv_find(const struct server *sv, struct json_object *msg,
		    const char *cmd)
{
	struct json_object *args, *path, *prop;
	char keys[3][512];
	int nk = 0, k, i;

	if (json_object_object_get_ex(msg, "arguments", &args) &&
	    json_object_object_get_ex(args, "path", &path)) {
		if (json_object_object_get_ex(args, "property", &prop))
			snprintf(keys[nk++], sizeof(keys[0]), "%s %s %s", cmd,
				 json_object_get_string(path),
				 json_object_get_string(prop));
		snprintf(keys[nk++], sizeof(keys[0]), "%s %s", cmd,
			 json_object_get_string(path));
	}
	snprintf(keys[nk++], sizeof(keys[0]), "%s", cmd);
	for (k = 0; k < nk; k++)
		for (i = 0; i < sv->ns; i++)
			if (!strcmp(sv->s[i].cmd, keys[k]))
				return i;
	return -1;
}

static void *srv_main(void *arg)
{
	struct server *sv = arg;
	struct json_object *o, *v;
	struct qmp_rx rx;
	char buf[4096];
	ssize_t n;
	int i;

	qmp_rx_init(&rx);
	srv_send(sv, greeting);
	for (;;) {
		while (qmp_rx_next(&rx, &o) == 1) {
			const char *cmd = "";
			int64_t id = 0;

			if (json_object_object_get_ex(o, "execute", &v))
				cmd = json_object_get_string(v);
			if (json_object_object_get_ex(o, "id", &v))
				id = json_object_get_int64(v);
			/* A long wait's commands: the log keeps the first. */
			if (strlen(sv->log) + strlen(cmd) + 2 <= sizeof(sv->log)) {
				strcat(sv->log, cmd);
				strcat(sv->log, " ");
			}
			if (!strcmp(cmd, "qmp_capabilities")) {
				srv_reply(sv, "{\"return\": {}}", id);
				json_object_put(o);
				continue;
			}
			i = srv_find(sv, o, cmd);
			if (i >= 0) {
				const struct script *s = &sv->s[i];
				int k = sv->used[i];

				if (k + 1 < 8 && s->replies[k + 1])
					sv->used[i]++;
				srv_reply(sv, s->replies[k], id);
			} else {
				srv_reply(sv, "{\"error\": {\"class\": \"CommandNotFound\", "
					  "\"desc\": \"not in script\"}}", id);
			}
			json_object_put(o);
		}
		n = recv(sv->fd, buf, sizeof(buf), 0);
		if (n <= 0 || qmp_rx_feed(&rx, buf, n))
			break;
	}
	qmp_rx_free(&rx);
	return NULL;
}

static int srv_start(struct server *sv, const struct script *s, int ns,
		     struct qmp *q, int timeout_ms)
{
	int sp[2];

	memset(sv, 0, sizeof(*sv));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp))
		return -errno;
	sv->fd = sp[1];
	sv->s = s;
	sv->ns = ns;
	if (pthread_create(&sv->th, NULL, srv_main, sv))
		return -1;
	return qmp_open_fd(q, sp[0], timeout_ms);
}

static void srv_stop(struct server *sv, struct qmp *q)
{
	qmp_close(q);
	pthread_join(sv->th, NULL);
	close(sv->fd);
}

#define NS(s) ((int)(sizeof(s) / sizeof((s)[0])))

TEST(exec_with_events_and_stale_replies)
{
	static const struct script s[] = {
		{ "query-status", { "@EVENT@STALE{\"return\": {\"status\": "
				    "\"running\", \"running\": true}}" } },
		{ "cont", { "{\"error\": {\"class\": \"GenericError\", "
			    "\"desc\": \"no\"}}" } },
	};
	struct server sv;
	struct qmp q;
	char st[32];
	bool running = false;

	ASSERT_EQ(0, srv_start(&sv, s, NS(s), &q, 2000));
	EXPECT_EQ(10, q.ver_major);
	EXPECT_EQ(0, q.ver_minor);
	EXPECT_EQ(2, q.ver_micro);
	ASSERT_EQ(0, qmp_query_status(&q, st, sizeof(st), &running));
	EXPECT_STREQ("running", st);
	EXPECT_TRUE(running);
	EXPECT_EQ(1, (int)q.events);
	EXPECT_STREQ("active", q.mig_event);
	/* Nothing failed yet: no error to report. */
	EXPECT_STREQ("", q.err_class);
	EXPECT_STREQ("", q.err_desc);
	EXPECT_EQ(-EREMOTEIO, qmp_exec(&q, "cont", NULL, NULL));
	EXPECT_STREQ("GenericError", q.err_class);
	EXPECT_STREQ("no", q.err_desc);
	EXPECT_EQ(-EREMOTEIO, qmp_exec(&q, "frobnicate", NULL, NULL));
	EXPECT_STREQ("CommandNotFound", q.err_class);
	/* A success after it leaves the last error as QEMU reported it. */
	ASSERT_EQ(0, qmp_query_status(&q, st, sizeof(st), &running));
	EXPECT_STREQ("CommandNotFound", q.err_class);
	EXPECT_STREQ("not in script", q.err_desc);
	srv_stop(&sv, &q);
	EXPECT_STREQ("qmp_capabilities query-status cont frobnicate "
		     "query-status ", sv.log);
}

TEST(exec_transport_failures)
{
	static const struct script closing[] = {
		{ "query-status", { "@CLOSE" } },
	};
	static const struct script silent[] = {
		{ "query-status", { "@SILENT" } },
	};
	static const struct script garbage[] = {
		{ "query-status", { "@RAW:{\"return\": [}\r\n" } },
	};
	static const struct script wrong[] = {
		{ "query-status", { "{\"return\": {\"status\": 5}}" } },
	};
	struct server sv;
	struct qmp q;
	char st[32];
	bool running;
	struct timespec t0, t1;

	ASSERT_EQ(0, srv_start(&sv, closing, 1, &q, 2000));
	EXPECT_EQ(-EPIPE, qmp_query_status(&q, st, sizeof(st), &running));
	srv_stop(&sv, &q);

	ASSERT_EQ(0, srv_start(&sv, silent, 1, &q, 300));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	EXPECT_EQ(-ETIMEDOUT, qmp_query_status(&q, st, sizeof(st), &running));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	EXPECT_GE(t1.tv_sec * 1000 + t1.tv_nsec / 1000000 -
		  (t0.tv_sec * 1000 + t0.tv_nsec / 1000000), 290);
	srv_stop(&sv, &q);

	ASSERT_EQ(0, srv_start(&sv, garbage, 1, &q, 2000));
	EXPECT_EQ(-EPROTO, qmp_query_status(&q, st, sizeof(st), &running));
	srv_stop(&sv, &q);

	ASSERT_EQ(0, srv_start(&sv, wrong, 1, &q, 2000));
	EXPECT_EQ(-EPROTO, qmp_query_status(&q, st, sizeof(st), &running));
	EXPECT_STREQ("protocol", q.err_class);
	EXPECT_STREQ("malformed query-status reply", q.err_desc);
	srv_stop(&sv, &q);
}

/* qmp_open_fd() on a socket whose other end first sends @greeting. */
static int open_greeted(struct qmp *q, const char *greeting, int ms)
{
	int sp[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp))
		return -errno;
	if (write(sp[1], greeting, strlen(greeting)) != (ssize_t)strlen(greeting))
		return -EIO;
	r = qmp_open_fd(q, sp[0], ms);
	qmp_close(q);
	close(sp[1]);
	return r;
}

TEST(not_a_qmp_monitor)
{
	struct qmp q;

	/* A socket that greets with something else (an HMP banner). */
	EXPECT_EQ(-EPROTO, open_greeted(&q, "{\"hello\": 1}\n", 500));
	EXPECT_EQ(-EPROTO, open_greeted(&q, "QEMU 10.0.2 monitor - type 'help'\r\n",
					500));
	/* Well-formed QMP, but a reply where the greeting should be. */
	EXPECT_EQ(-EPROTO, open_greeted(&q, "{\"return\": {}}\r\n", 500));
	/* A monitor that says nothing: another client holds it. */
	EXPECT_EQ(-ETIMEDOUT, open_greeted(&q, "", 200));
	EXPECT_NE(NULL, strstr(q.err_desc, "no QMP greeting")) {
		TH_LOG("%s", q.err_desc);
	}

	EXPECT_EQ(-ENOENT, qmp_connect(&q, "/nonexistent/qmp.sock", 500));
	qmp_close(&q);
}

/* Reads what arrives within @ms into @buf (NUL-ended); bytes read, or -1. */
static ssize_t read_for(int fd, char *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return -1;
	n = read(fd, buf, len - 1);
	buf[n > 0 ? n : 0] = 0;
	return n;
}

/*
 * A guard sends its command when its owner dies without releasing it,
 * SIGKILL included, waits for QEMU's whole answer (its line), and sends
 * nothing once released. An owner may run with standard input closed:
 * the guard's pipe then gets descriptor 0, and the guard still keeps the
 * monitor's socket.
 */
TEST(guard_sends_when_its_owner_dies)
{
	char cmd[256], buf[512];
	struct qmp_guard g;
	struct qmp q;
	int sp[2], st, run, release, no_stdin;
	pid_t owner;

	ASSERT_EQ(0, qmp_mig_threshold_cmd(cmd, sizeof(cmd), 300, 0));
	EXPECT_NE(NULL, strstr(cmd, "\"downtime-limit\": 300"));
	EXPECT_NE(NULL, strstr(cmd, "\"avail-switchover-bandwidth\": 0"));
	for (run = 0; run < 3; run++) {
		release = run == 1;
		no_stdin = run == 2;
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
		ASSERT_GT(sp[0], 2);
		owner = fork();
		ASSERT_GE(owner, 0);
		if (!owner) {
			memset(&q, 0, sizeof(q));
			q.fd = sp[0];
			close(sp[1]);
			if (no_stdin)
				close(0);
			if (qmp_guard_start(&q, cmd, &g))
				_exit(2);
			if (release) {
				qmp_guard_release(&g);
				_exit(0);
			}
			kill(getpid(), SIGKILL);
			_exit(3);
		}
		close(sp[0]);
		ASSERT_EQ(owner, waitpid(owner, &st, 0));
		if (release) {
			EXPECT_TRUE(WIFEXITED(st) && !WEXITSTATUS(st));
			/* nothing, then the end as the guard exits */
			EXPECT_EQ(0, read_for(sp[1], buf, sizeof(buf), 3000))
				TH_LOG("%s", buf);
		} else {
			EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
			EXPECT_EQ((ssize_t)strlen(cmd),
				  read_for(sp[1], buf, sizeof(buf), 3000))
				TH_LOG("run %d: nothing sent", run);
			EXPECT_STREQ(cmd, buf);
			/* the answer's first part: the guard waits for the rest */
			ASSERT_EQ(13, write(sp[1], "{\"return\": {", 13));
			EXPECT_EQ(-1, read_for(sp[1], buf, sizeof(buf), 300));
			ASSERT_EQ(3, write(sp[1], "}\r\n", 3));
			EXPECT_EQ(0, read_for(sp[1], buf, sizeof(buf), 3000));
		}
		close(sp[1]);
	}
}

/* How the guard child ended, from its SIGCHLD. */
static volatile sig_atomic_t chld_pid, chld_code, chld_status;

static void on_chld(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	chld_pid = si->si_pid;
	chld_code = si->si_code;
	chld_status = si->si_status;
}

struct watchdog {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done, fired;
	pid_t pid;
};

/*
 * SIGKILLs the guard if it is still there after 30 s, so that no child is
 * left: a hang bound, not a speed limit (sanitizers on a loaded machine).
 */
static void *watchdog_main(void *arg)
{
	struct watchdog *w = arg;
	struct timespec t;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += 30;
	pthread_mutex_lock(&w->lock);
	while (!w->done &&
	       pthread_cond_timedwait(&w->cond, &w->lock, &t) != ETIMEDOUT)
		;
	if (!w->done) {
		w->fired = true;
		kill(w->pid, SIGKILL);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* The state letter of /proc/PID/stat ("S": asleep in a system call). */
static char proc_state(pid_t pid)
{
	char path[64], line[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
	fclose(f);
	return p && p[1] == ' ' ? p[2] : 0;
}

/*
 * While its owner holds it, a guard sends nothing, whichever descriptors
 * its pipe got (here also a read end below the monitor's socket), and
 * outlives what a terminal sends its process group (Ctrl-C, hangup,
 * termination): those are its owner's to handle. On release it ends by
 * itself, at once, exit status 0, whatever errno the owner had left
 * (EINTR from a call it retried), and sends nothing.
 */
TEST(guard_holds_until_released)
{
	struct sigaction sa = { .sa_sigaction = on_chld,
				.sa_flags = SA_SIGINFO | SA_RESTART };
	struct watchdog w = { .lock = PTHREAD_MUTEX_INITIALIZER,
			      .cond = PTHREAD_COND_INITIALIZER };
	char cmd[256], buf[512];
	struct qmp_guard g;
	struct qmp q;
	pthread_t th;
	int sp[2], hole, layout;
	char state;

	ASSERT_EQ(0, qmp_mig_threshold_cmd(cmd, sizeof(cmd), 300, 0));
	ASSERT_EQ(0, sigaction(SIGCHLD, &sa, NULL));
	/* a release written to a guard that is gone fails, not kills */
	signal(SIGPIPE, SIG_IGN);
	for (layout = 0; layout < 2; layout++) {
		/* layout 1: the lowest free descriptor is below the socket */
		hole = layout ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1;
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					sp));
		if (layout) {
			ASSERT_GT(hole, 2);
			ASSERT_LT(hole, sp[0]);
			close(hole);
		}
		memset(&q, 0, sizeof(q));
		q.fd = sp[0];
		chld_pid = chld_code = chld_status = 0;
		errno = EINTR;
		ASSERT_EQ(0, qmp_guard_start(&q, cmd, &g));
		ASSERT_GT(g.pid, 0);
		/*
		 * The pipe's writing end is above the socket; its reading
		 * end took the hole (the owner has closed it since).
		 */
		EXPECT_GT(g.fd, sp[1]);
		EXPECT_EQ(-1, read_for(sp[1], buf, sizeof(buf), 300))
			TH_LOG("layout %d: sent while held: %s", layout, buf);
		/* Set up and waiting for its owner: the group's signals. */
		while ((state = proc_state(g.pid)) == 'R' || state == 'D')
			usleep(1000);
		ASSERT_EQ('S', state);
		EXPECT_EQ(0, kill(g.pid, SIGINT));
		EXPECT_EQ(0, kill(g.pid, SIGHUP));
		EXPECT_EQ(0, kill(g.pid, SIGTERM));
		EXPECT_EQ(-1, read_for(sp[1], buf, sizeof(buf), 300))
			TH_LOG("layout %d: sent on a signal: %s", layout, buf);

		w.done = w.fired = false;
		w.pid = g.pid;
		ASSERT_EQ(0, pthread_create(&th, NULL, watchdog_main, &w));
		qmp_guard_release(&g);
		pthread_mutex_lock(&w.lock);
		w.done = true;
		pthread_cond_signal(&w.cond);
		pthread_mutex_unlock(&w.lock);
		pthread_join(th, NULL);
		EXPECT_FALSE(w.fired) TH_LOG("layout %d: release took 30 s", layout);
		EXPECT_EQ(0, g.pid);
		EXPECT_EQ(w.pid, chld_pid);
		EXPECT_EQ(CLD_EXITED, chld_code);
		EXPECT_EQ(0, chld_status);

		/* nothing sent, and the guard holds the monitor no more */
		close(sp[0]);
		EXPECT_EQ(0, read_for(sp[1], buf, sizeof(buf), 3000))
			TH_LOG("layout %d: %s", layout, buf);
		close(sp[1]);
	}
	signal(SIGCHLD, SIG_DFL);
}

static int progress_calls;

static void count_progress(const struct qmp_mig_info *mi, void *arg)
{
	(void)mi;
	(void)arg;
	progress_calls++;
}

TEST(migration_completes)
{
	static const struct script s[] = {
		{ "migrate-set-parameters", { "{\"return\": {}}" } },
		{ "migrate", { "{\"return\": {}}" } },
		{ "query-migrate", {
			"{\"return\": {\"status\": \"setup\"}}",
			"{\"return\": {\"status\": \"active\", \"expected-downtime\": 300, "
			"\"ram\": {\"transferred\": 1000, \"total\": 4000, "
			"\"remaining\": 3000, \"mbps\": 0}}}",
			"@EVENT{\"return\": {\"status\": \"device\"}}",
			qemu10_completed,
		} },
	};
	struct qmp_mig_wait w = { .timeout_ms = 5000, .poll_ms = 1,
				  .progress = count_progress };
	struct qmp_mig_info mi;
	struct server sv;
	struct qmp q;

	ASSERT_EQ(0, srv_start(&sv, s, NS(s), &q, 2000));
	ASSERT_EQ(0, qmp_mig_set_downtime(&q, 50));
	ASSERT_EQ(0, qmp_mig_start(&q, "tcp:127.0.0.1:4444"));
	progress_calls = 0;
	ASSERT_EQ(QMP_MIG_COMPLETED, qmp_mig_wait(&q, &w, &mi));
	EXPECT_EQ(3, progress_calls);
	EXPECT_EQ(4, mi.downtime_ms);
	EXPECT_EQ(1540, mi.vfio_transferred);
	srv_stop(&sv, &q);
	EXPECT_STREQ("qmp_capabilities migrate-set-parameters migrate "
		     "query-migrate query-migrate query-migrate query-migrate ",
		     sv.log);
}

TEST(migration_fails_and_is_cancelled)
{
	static const struct script failing[] = {
		{ "query-migrate", {
			"{\"return\": {\"status\": \"active\"}}",
			"{\"return\": {\"status\": \"failed\", \"error-desc\": "
			"\"Unable to write to socket: Connection reset by peer\"}}",
		} },
	};
	static const struct script slow[] = {
		{ "query-migrate", {
			"{\"return\": {\"status\": \"active\"}}",
			"{\"return\": {\"status\": \"active\"}}",
			"{\"return\": {\"status\": \"cancelling\"}}",
			"{\"return\": {\"status\": \"cancelled\"}}",
		} },
		{ "migrate_cancel", { "{\"return\": {}}" } },
	};
	static const struct script late[] = {
		{ "query-migrate", { "{\"return\": {\"status\": \"completed\"}}" } },
		{ "migrate_cancel", { "{\"return\": {}}" } },
	};
	static volatile sig_atomic_t stop;
	struct qmp_mig_wait w = { .timeout_ms = 5000, .poll_ms = 1 };
	struct qmp_mig_info mi;
	struct server sv;
	struct qmp q;

	ASSERT_EQ(0, srv_start(&sv, failing, 1, &q, 2000));
	ASSERT_EQ(QMP_MIG_FAILED, qmp_mig_wait(&q, &w, &mi));
	EXPECT_STREQ("Unable to write to socket: Connection reset by peer",
		     mi.error_desc);
	srv_stop(&sv, &q);

	/* A timeout, then the cancel waits through "cancelling". */
	ASSERT_EQ(0, srv_start(&sv, slow, NS(slow), &q, 2000));
	w.timeout_ms = 0;
	ASSERT_EQ(QMP_MIG_TIMEOUT, qmp_mig_wait(&q, &w, &mi));
	ASSERT_EQ(QMP_MIG_CANCELLED, qmp_mig_cancel(&q, 2000, &mi));
	srv_stop(&sv, &q);
	EXPECT_STREQ("qmp_capabilities query-migrate migrate_cancel "
		     "query-migrate query-migrate query-migrate ", sv.log);

	/* A stop request (a signal) ends the wait. */
	ASSERT_EQ(0, srv_start(&sv, slow, NS(slow), &q, 2000));
	stop = SIGINT;
	w.timeout_ms = 5000;
	w.stop = &stop;
	ASSERT_EQ(QMP_MIG_STOPPED, qmp_mig_wait(&q, &w, &mi));
	srv_stop(&sv, &q);

	/* Completed before the cancel took: reported as completed. */
	ASSERT_EQ(0, srv_start(&sv, late, NS(late), &q, 2000));
	ASSERT_EQ(QMP_MIG_COMPLETED, qmp_mig_cancel(&q, 2000, &mi));
	srv_stop(&sv, &q);
}

/*
 * A query QEMU refuses is QEMU's error, as QEMU worded it: not a reply
 * taken apart as if it had come. A reply of the wrong shape is said to be
 * one.
 */
TEST(queries_refused_or_malformed)
{
	static const struct script bad[] = {
		{ "query-migrate", { "{\"return\": {\"status\": 5}}" } },
		/* QAPI MigrationParameters is an object, not a list */
		{ "query-migrate-parameters", {
			"{\"return\": [{\"downtime-limit\": 300}]}" } },
	};
	static const struct script s[] = {
		{ "query-status", { "{\"error\": {\"class\": \"GenericError\", "
				    "\"desc\": \"status refused\"}}" } },
		{ "query-migrate", { "{\"error\": {\"class\": \"CommandNotFound\", "
				     "\"desc\": \"migrate refused\"}}" } },
	};
	uint64_t downtime, bw;
	struct qmp_mig_info mi;
	struct server sv;
	struct qmp q;
	char st[32];
	bool running;

	ASSERT_EQ(0, srv_start(&sv, s, NS(s), &q, 2000));
	EXPECT_EQ(-EREMOTEIO, qmp_query_status(&q, st, sizeof(st), &running));
	EXPECT_STREQ("GenericError", q.err_class);
	EXPECT_STREQ("status refused", q.err_desc);
	EXPECT_EQ(-EREMOTEIO, qmp_query_migrate(&q, &mi));
	EXPECT_STREQ("CommandNotFound", q.err_class);
	EXPECT_STREQ("migrate refused", q.err_desc);
	srv_stop(&sv, &q);

	ASSERT_EQ(0, srv_start(&sv, bad, NS(bad), &q, 2000));
	EXPECT_EQ(-EPROTO, qmp_query_migrate(&q, &mi));
	EXPECT_STREQ("protocol", q.err_class);
	EXPECT_STREQ("malformed query-migrate reply", q.err_desc);
	EXPECT_EQ(-EPROTO, qmp_mig_get_threshold(&q, &downtime, &bw));
	EXPECT_STREQ("protocol", q.err_class);
	EXPECT_STREQ("malformed query-migrate-parameters reply", q.err_desc);
	srv_stop(&sv, &q);
}

/*
 * qom-get of a string: the value whole, -ENOENT for what the object does
 * not have (QEMU's error), -EPROTO for what is no string or does not fit
 * (len - 1 bytes do, len do not), and a lost monitor as it was lost.
 */
TEST(qom_get_str)
{
	static const struct script s[] = {
		{ "qom-get /m/hba0 host", { "{\"return\": \"0000:7f:1f.7\"}" } },
		{ "qom-get /m/hba0 fits", { "{\"return\": \"1234567\"}" } },
		{ "qom-get /m/hba0 long", { "{\"return\": \"12345678\"}" } },
		{ "qom-get /m/hba0 num", { "{\"return\": 5}" } },
		{ "qom-get /m/hba0", { "{\"error\": {\"class\": \"GenericError\", "
				       "\"desc\": \"Property 'vfio-pci.x' not found\"}}" } },
		{ "qom-get /m/gone", { "@CLOSE" } },
	};
	struct server sv;
	struct qmp q;
	char buf[32];

	ASSERT_EQ(0, srv_start(&sv, s, NS(s), &q, 2000));
	ASSERT_EQ(0, qmp_qom_get_str(&q, "/m/hba0", "host", buf, sizeof(buf)));
	EXPECT_STREQ("0000:7f:1f.7", buf);
	ASSERT_EQ(0, qmp_qom_get_str(&q, "/m/hba0", "fits", buf, 8));
	EXPECT_STREQ("1234567", buf);
	EXPECT_EQ(-EPROTO, qmp_qom_get_str(&q, "/m/hba0", "long", buf, 8));
	EXPECT_EQ(-EPROTO, qmp_qom_get_str(&q, "/m/hba0", "num", buf, 8));
	EXPECT_EQ(-ENOENT, qmp_qom_get_str(&q, "/m/hba0", "x", buf, 8));
	EXPECT_EQ(-EPIPE, qmp_qom_get_str(&q, "/m/gone", "host", buf, 8));
	srv_stop(&sv, &q);
}

/*
 * Only a message with our command's id answers it (QMP specification,
 * docs/interop/qmp-spec.rst, "Success" and "Error": the id is the
 * command's, and absent when the command had none). A success without an
 * id answers nothing of ours; an error without one is QEMU refusing what
 * it could not parse, so the command failed.
 */
TEST(replies_without_an_id)
{
	static const struct script s[] = {
		{ "query-migrate", { "@BARE{\"return\": {\"status\": \"active\"}}" } },
		{ "cont", { "@RAW:{\"error\": {\"class\": \"GenericError\", "
			    "\"desc\": \"JSON parse error, invalid keyword\"}}\r\n" } },
	};
	struct qmp_mig_info mi;
	struct server sv;
	struct qmp q;

	ASSERT_EQ(0, srv_start(&sv, s, NS(s), &q, 2000));
	ASSERT_EQ(0, qmp_query_migrate(&q, &mi));
	EXPECT_STREQ("active", mi.status);
	EXPECT_EQ(-EREMOTEIO, qmp_exec(&q, "cont", NULL, NULL));
	EXPECT_STREQ("GenericError", q.err_class);
	EXPECT_STREQ("JSON parse error, invalid keyword", q.err_desc);
	srv_stop(&sv, &q);
}

/*
 * A wait of T ms ends no sooner than T ms after it began, however many
 * seconds it spans: the deadline is on CLOCK_MONOTONIC in whole ms, so the
 * rounding loses less than 1 ms. Polled every ms, an early end shows.
 */
TEST(mig_wait_takes_its_whole_timeout)
{
	static const struct script s[] = {
		{ "query-migrate", { "{\"return\": {\"status\": \"active\"}}" } },
	};
	struct qmp_mig_wait w = { .timeout_ms = 5000, .poll_ms = 1 };
	struct qmp_mig_info mi;
	struct timespec t0, t1;
	struct server sv;
	struct qmp q;
	int64_t ns;

	ASSERT_EQ(0, srv_start(&sv, s, NS(s), &q, 2000));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(QMP_MIG_TIMEOUT, qmp_mig_wait(&q, &w, &mi));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 +
	     (t1.tv_nsec - t0.tv_nsec);
	EXPECT_GT(ns, (int64_t)(w.timeout_ms - 1) * 1000000)
		TH_LOG("ended after %lld us", (long long)ns / 1000);
	srv_stop(&sv, &q);
}

/* ---- hbamig migrate, its QEMU the scripted server ---- */

/* The hbamig under test: $HBAMIG (run-tests), else the one built beside. */
static const char *hbamig_bin(void)
{
	static char path[PATH_MAX];
	char *s;
	ssize_t n;

	if (getenv("HBAMIG"))
		return getenv("HBAMIG");
	n = readlink("/proc/self/exe", path, sizeof(path) - 16);
	if (n <= 0)
		return NULL;
	path[n] = 0;
	s = strrchr(path, '/');
	if (!s)
		return NULL;
	strcpy(s + 1, "hbamig-san");
	return access(path, X_OK) ? NULL : path;
}

/* "hbamig migrate ARGS": its exit status, its stderr in @err. */
static int run_migrate(const char *const *args, char *err, size_t len)
{
	const char *argv[24] = { hbamig_bin(), "migrate" };
	size_t off = 0;
	char sink[256];
	int p[2], i, st;
	ssize_t n;
	pid_t pid;

	for (i = 0; args[i] && i + 3 < 24; i++)
		argv[i + 2] = args[i];
	if (pipe(p))
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -EAGAIN;
	}
	if (!pid) {
		int null = open("/dev/null", O_RDWR);

		/* Its report would break the TAP stream. */
		dup2(null, 0);
		dup2(null, 1);
		dup2(p[1], 2);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(p[1]);
	/* Read to the end, that hbamig never blocks; @len - 1 bytes kept. */
	for (;;) {
		bool room = off + 1 < len;

		n = read(p[0], room ? err + off : sink,
			 room ? len - 1 - off : sizeof(sink));
		if (n <= 0)
			break;
		if (room)
			off += n;
	}
	err[off] = 0;
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The scripted server on a UNIX socket, for one client. */
struct sock_server {
	struct server sv;
	char dir[64], path[96];
	int lfd;
	pthread_t th;
};

static void *sock_main(void *arg)
{
	struct sock_server *ss = arg;

	ss->sv.fd = accept(ss->lfd, NULL, NULL);
	if (ss->sv.fd >= 0) {
		srv_main(&ss->sv);
		close(ss->sv.fd);
	}
	return NULL;
}

static int sock_start(struct sock_server *ss, const struct script *s, int ns)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(ss, 0, sizeof(*ss));
	ss->sv.s = s;
	ss->sv.ns = ns;
	snprintf(ss->dir, sizeof(ss->dir), "/tmp/hbamig-qmp-test.XXXXXX");
	if (!mkdtemp(ss->dir))
		return -errno;
	snprintf(ss->path, sizeof(ss->path), "%s/qmp.sock", ss->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ss->path);
	ss->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ss->lfd < 0 || bind(ss->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(ss->lfd, 4) ||
	    pthread_create(&ss->th, NULL, sock_main, ss))
		return -errno;
	return 0;
}

static void sock_stop(struct sock_server *ss)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	/* A client of our own ends the wait for one, if none came. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ss->path);
	if (fd >= 0) {
		connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
	}
	pthread_join(ss->th, NULL);
	close(ss->lfd);
	unlink(ss->path);
	rmdir(ss->dir);
}

static bool sanitizer_report(const char *err)
{
	return strstr(err, "Sanitizer") || strstr(err, "runtime error");
}

/*
 * Refused before QEMU is asked anything (exit 2), each next to the
 * nearest command line that is accepted and so goes on to the (missing)
 * QMP socket, exit 5.
 */
TEST(migrate_usage_boundaries)
{
	const char *const *const cases[] = {
		(const char *const []){ "--qmp", "/nonexistent/qmp.sock", "--to",
					"tcp:127.0.0.1:1", NULL },
		(const char *const []){ "--qmp", "/nonexistent/qmp.sock", "--to",
					"tcp:127.0.0.1:1", "extra", NULL },
		(const char *const []){ "--qmp", "/nonexistent/qmp.sock", "--to",
					"tcp:127.0.0.1:1", "--peer",
					"pfc --dev lo --prio 1,2", NULL },
		(const char *const []){ "--qmp", "/nonexistent/qmp.sock", "--to",
					"tcp:127.0.0.1:1", "--peer",
					"pfc --dev lo --prio 1+2", NULL },
		(const char *const []){ "--qmp", "/nonexistent/qmp.sock", "--to",
					"tcp:127.0.0.1:1", "--peer",
					"tcp --conn *,10.0.0.1:4420 --dev lo --forwarded lo",
					NULL },
		/* a forwarded guest's sessions have no host timer to extend */
		(const char *const []){ "--qmp", "/nonexistent/qmp.sock", "--to",
					"tcp:127.0.0.1:1", "--peer",
					"tcp --conn *,10.0.0.1:4420 --dev lo --forwarded lo --extend-timers",
					NULL },
	};
	static const struct {
		int code;
		const char *msg;
	} want[] = {
		{ 5, "/nonexistent/qmp.sock" },
		{ 2, "migrate: unexpected \"extra\"" },
		{ 5, "/nonexistent/qmp.sock" },
		{ 2, "bad --prio (0..7, comma separated)" },
		{ 5, "/nonexistent/qmp.sock" },
		{ 2, "--forwarded takes --conn GUEST,PEER and --dev" },
	};
	char err[4096];
	size_t i;

	if (!hbamig_bin())
		SKIP(return, "no hbamig-san beside this test (make -C userspace check)");
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		EXPECT_EQ(want[i].code, run_migrate(cases[i], err, sizeof(err)))
			TH_LOG("case %zu: %s", i, err);
		EXPECT_NE(NULL, strstr(err, want[i].msg))
			TH_LOG("case %zu: %s", i, err);
		EXPECT_FALSE(sanitizer_report(err)) TH_LOG("%s", err);
	}
}

#define RUNNING "{\"return\": {\"status\": \"running\", \"running\": true}}"

/*
 * The VM's vfio-pci devices, as QEMU 10 lists them: by "host", and by
 * "sysfsdev" when the device was given that way ("host" then holds no
 * address). A string property never set reads as "" (QEMU's qdev
 * get_string): "host" given, "sysfsdev" is "" and must not replace it.
 * Each child is asked about once; an adapter the VM does not use is
 * refused (exit 5) naming how many devices were found.
 */
TEST(migrate_lists_the_vms_vfio_devices)
{
	static const struct script s[] = {
		{ "query-status", { RUNNING } },
		{ "query-migrate", { "{\"return\": {}}" } },
		{ "qom-list /machine/peripheral", {
			"{\"return\": [{\"name\": \"type\", \"type\": \"string\"}, "
			"{\"name\": \"hba0\", \"type\": \"child<vfio-pci>\"}]}" } },
		{ "qom-list /machine/peripheral-anon", {
			"{\"return\": [{\"name\": \"device[0]\", "
			"\"type\": \"child<vfio-pci-nohotplug>\"}]}" } },
		{ "qom-get /machine/peripheral/hba0 host", {
			"{\"return\": \"0000:7f:1f.7\"}" } },
		{ "qom-get /machine/peripheral/hba0 sysfsdev", {
			"{\"return\": \"\"}" } },
		{ "qom-get /machine/peripheral-anon/device[0] host", {
			"{\"return\": \"\"}" } },
		{ "qom-get /machine/peripheral-anon/device[0] sysfsdev", {
			"{\"return\": \"/sys/bus/pci/devices/0000:7f:1f.6\"}" } },
	};
	struct sock_server ss;
	char err[4096];

	if (!hbamig_bin())
		SKIP(return, "no hbamig-san beside this test (make -C userspace check)");
	ASSERT_EQ(0, sock_start(&ss, s, NS(s)));
	EXPECT_EQ(5, run_migrate((const char *const []){ "--qmp", ss.path,
		  "--to", "unix:/nonexistent/mig.sock", "--dev", "0000:01:00.1",
		  NULL }, err, sizeof(err)));
	sock_stop(&ss);
	EXPECT_NE(NULL, strstr(err, "does not use 0000:01:00.1 (its vfio-pci devices: 2)"))
		TH_LOG("%s", err);
	EXPECT_EQ(NULL, strstr(err, "ignored")) TH_LOG("%s", err);
	EXPECT_FALSE(sanitizer_report(err)) TH_LOG("%s", err);
	EXPECT_STREQ("qmp_capabilities query-status query-migrate qom-list "
		     "qom-get qom-list qom-get qom-get ", ss.sv.log);
}

/*
 * QEMU gone while its devices are listed is a failure to look (exit 1,
 * QEMU's words), not a VM without any (exit 5).
 */
TEST(migrate_qemu_gone_while_listing)
{
	static const struct script s[] = {
		{ "query-status", { RUNNING } },
		{ "query-migrate", { "{\"return\": {}}" } },
		{ "qom-list", { "@CLOSE" } },
	};
	struct sock_server ss;
	char err[4096];

	if (!hbamig_bin())
		SKIP(return, "no hbamig-san beside this test (make -C userspace check)");
	ASSERT_EQ(0, sock_start(&ss, s, NS(s)));
	EXPECT_EQ(1, run_migrate((const char *const []){ "--qmp", ss.path,
		  "--to", "unix:/nonexistent/mig.sock", NULL }, err, sizeof(err)));
	sock_stop(&ss);
	/* (closed while hbamig still writes, or after: either is said) */
	EXPECT_NE(NULL, strstr(err, "migrate: looking for the VM's VFIO devices: "
			       "QEMU: "))
		TH_LOG("%s", err);
	EXPECT_FALSE(sanitizer_report(err)) TH_LOG("%s", err);
}

/* ---- against QEMU itself ---- */

struct qemu {
	pid_t pid;
	char sock[128];
};

static char qemu_dir[64];

static int qemu_start(struct qemu *v, const char *name, const char *incoming)
{
	const char *bin = getenv("QEMU") ? getenv("QEMU") : "qemu-system-x86_64";
	struct stat st;
	int i;

	snprintf(v->sock, sizeof(v->sock), "%s/%s.sock", qemu_dir, name);
	v->pid = fork();
	if (v->pid < 0)
		return -errno;
	if (!v->pid) {
		char qmp[200];
		int null = open("/dev/null", O_RDWR);

		/* QEMU dies with the test, whichever way the test ends. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(null, 0);
		dup2(null, 1);
		/* Its complaints (expected here) would break the TAP stream. */
		dup2(null, 2);

		snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", v->sock);
		if (incoming)
			execlp(bin, bin, "-M", "q35", "-nodefaults", "-m", "64",
			       "-display", "none", "-accel", "tcg", "-qmp", qmp,
			       "-incoming", incoming, (char *)NULL);
		else
			execlp(bin, bin, "-M", "q35", "-nodefaults", "-m", "64",
			       "-display", "none", "-accel", "tcg", "-qmp", qmp,
			       (char *)NULL);
		_exit(127);
	}
	/* Ready when the monitor and (destination) the listener exist. */
	for (i = 0; i < 1000; i++) {
		if (!stat(v->sock, &st) &&
		    (!incoming || !stat(incoming + strlen("unix:"), &st)))
			return 0;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

static void qemu_stop(struct qemu *v)
{
	if (v->pid > 0) {
		kill(v->pid, SIGKILL);
		waitpid(v->pid, NULL, 0);
	}
	v->pid = 0;
	unlink(v->sock);
}

static bool have_qemu(void)
{
	const char *bin = getenv("QEMU") ? getenv("QEMU") : "qemu-system-x86_64";
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "%s --version >/dev/null 2>&1", bin);
	return !system(cmd);
}

FIXTURE(real_qemu)
{
	struct qemu src, dst;
	struct qmp q;
	char uri[128];
};

FIXTURE_SETUP(real_qemu)
{
	memset(self, 0, sizeof(*self));
	self->q.fd = -1;
	if (!have_qemu())
		SKIP(return, "qemu-system-x86_64 not installed (scripts/deps/base.list)");
	snprintf(qemu_dir, sizeof(qemu_dir), "/tmp/hbamig-qmp-test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(qemu_dir));
	snprintf(self->uri, sizeof(self->uri), "unix:%s/mig.sock", qemu_dir);
	ASSERT_EQ(0, qemu_start(&self->src, "src", NULL));
	ASSERT_EQ(0, qemu_start(&self->dst, "dst", self->uri));
	ASSERT_EQ(0, qmp_connect(&self->q, self->src.sock, 10000));
}

FIXTURE_TEARDOWN(real_qemu)
{
	qmp_close(&self->q);
	qemu_stop(&self->src);
	qemu_stop(&self->dst);
	if (qemu_dir[0]) {
		char p[128];

		snprintf(p, sizeof(p), "%s/mig.sock", qemu_dir);
		unlink(p);
		rmdir(qemu_dir);
	}
}

/*
 * hbamig holds QEMU before its switchover through the threshold's two
 * parameters; a guard puts them back even when hbamig is SIGKILLed.
 */
TEST_F_TIMEOUT(real_qemu, guard_restores_after_sigkill, 60)
{
	uint64_t dl = 0, bw = 7;
	struct qmp_guard g;
	struct qmp o;
	char cmd[256];
	pid_t owner;
	int st;

	ASSERT_EQ(0, qmp_mig_get_threshold(&self->q, &dl, &bw));
	EXPECT_EQ(300, dl);
	EXPECT_EQ(0, bw);
	ASSERT_EQ(0, qmp_mig_set_threshold(&self->q, 1, 1000));
	ASSERT_EQ(0, qmp_mig_get_threshold(&self->q, &dl, &bw));
	EXPECT_EQ(1, dl);
	EXPECT_EQ(1000, bw);
	qmp_close(&self->q);
	owner = fork();
	ASSERT_GE(owner, 0);
	if (!owner) {
		if (qmp_connect(&o, self->src.sock, 10000))
			_exit(2);
		if (qmp_mig_threshold_cmd(cmd, sizeof(cmd), 300, 0) ||
		    qmp_guard_start(&o, cmd, &g))
			_exit(3);
		kill(getpid(), SIGKILL);
		_exit(4);
	}
	ASSERT_EQ(owner, waitpid(owner, &st, 0));
	EXPECT_TRUE(WIFSIGNALED(st)) TH_LOG("owner exited %d", WEXITSTATUS(st));
	/* QEMU serves one client: this waits for the guard to be done. */
	ASSERT_EQ(0, qmp_connect(&self->q, self->src.sock, 10000));
	ASSERT_EQ(0, qmp_mig_get_threshold(&self->q, &dl, &bw));
	EXPECT_EQ(300, dl);
	EXPECT_EQ(0, bw);
}

TEST_F_TIMEOUT(real_qemu, migrates, 120)
{
	struct qmp_mig_wait w = { .timeout_ms = 60000, .poll_ms = 20 };
	struct qmp_mig_info mi;
	struct qmp d;
	char st[32];
	bool running;

	EXPECT_EQ(10, self->q.ver_major);
	ASSERT_EQ(0, qmp_query_migrate(&self->q, &mi));
	EXPECT_STREQ("", mi.status);
	EXPECT_EQ(0, mi.nr_blocked);
	ASSERT_EQ(0, qmp_connect(&d, self->dst.sock, 10000));
	ASSERT_EQ(0, qmp_query_status(&d, st, sizeof(st), &running));
	EXPECT_STREQ("inmigrate", st);
	EXPECT_FALSE(running);

	ASSERT_EQ(0, qmp_mig_set_downtime(&self->q, 100));
	ASSERT_EQ(0, qmp_mig_start(&self->q, self->uri));
	ASSERT_EQ(QMP_MIG_COMPLETED, qmp_mig_wait(&self->q, &w, &mi));
	EXPECT_TRUE(mi.has_downtime);
	EXPECT_TRUE(mi.has_total_time);
	EXPECT_TRUE(mi.has_ram);
	EXPECT_GT(mi.ram_transferred, 0);
	EXPECT_GT(mi.ram_total, 60ull << 20);
	/* No VFIO device: QEMU leaves the vfio member out. */
	EXPECT_FALSE(mi.has_vfio);

	ASSERT_EQ(0, qmp_query_status(&self->q, st, sizeof(st), &running));
	EXPECT_STREQ("postmigrate", st);
	EXPECT_FALSE(running);
	for (int i = 0; i < 200; i++) {
		ASSERT_EQ(0, qmp_query_status(&d, st, sizeof(st), &running));
		if (running)
			break;
		usleep(10000);
	}
	EXPECT_STREQ("running", st);
	qmp_close(&d);

	/* A second migrate on a QEMU that has migrated away is refused. */
	EXPECT_EQ(-EREMOTEIO, qmp_mig_start(&self->q, "tcp:127.0.0.1:1"));
	/* A bad URI is QEMU's error, quoted. */
	EXPECT_NE(0, strlen(self->q.err_desc));
}

TEST_F_TIMEOUT(real_qemu, cancel_keeps_the_vm_on_the_source, 120)
{
	struct qmp_mig_wait w = { .timeout_ms = 300, .poll_ms = 20 };
	struct json_object *args;
	struct qmp_mig_info mi;
	char st[32];
	bool running;

	/* 64 KiB/s: the 64 MiB VM cannot finish before the cancel. */
	args = json_object_new_object();
	json_object_object_add(args, "max-bandwidth",
			       json_object_new_int64(65536));
	ASSERT_EQ(0, qmp_exec(&self->q, "migrate-set-parameters", args, NULL));
	ASSERT_EQ(0, qmp_mig_start(&self->q, self->uri));
	ASSERT_EQ(QMP_MIG_TIMEOUT, qmp_mig_wait(&self->q, &w, &mi));
	EXPECT_STREQ("active", mi.status);
	ASSERT_EQ(QMP_MIG_CANCELLED, qmp_mig_cancel(&self->q, 30000, &mi));
	ASSERT_EQ(0, qmp_query_status(&self->q, st, sizeof(st), &running));
	EXPECT_STREQ("running", st);
	EXPECT_TRUE(running);
}

TEST_F_TIMEOUT(real_qemu, destination_killed_fails_the_migration, 120)
{
	struct qmp_mig_wait w = { .timeout_ms = 300, .poll_ms = 20 };
	struct json_object *args;
	struct qmp_mig_info mi;
	char st[32];
	bool running;

	args = json_object_new_object();
	json_object_object_add(args, "max-bandwidth",
			       json_object_new_int64(65536));
	ASSERT_EQ(0, qmp_exec(&self->q, "migrate-set-parameters", args, NULL));
	ASSERT_EQ(0, qmp_mig_start(&self->q, self->uri));
	ASSERT_EQ(QMP_MIG_TIMEOUT, qmp_mig_wait(&self->q, &w, &mi));
	qemu_stop(&self->dst);
	w.timeout_ms = 60000;
	ASSERT_EQ(QMP_MIG_FAILED, qmp_mig_wait(&self->q, &w, &mi));
	EXPECT_NE(0, strlen(mi.error_desc));
	TH_LOG("QEMU: %s", mi.error_desc);
	ASSERT_EQ(0, qmp_query_status(&self->q, st, sizeof(st), &running));
	EXPECT_TRUE(running);
}

TEST_HARNESS_MAIN
