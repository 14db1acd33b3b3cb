// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: everything hbamig migrate reads from QEMU's monitor.
 * The first byte picks the mode, the rest is what QEMU "sent":
 *   bit 0 clear  the decoder alone, fed in chunks whose sizes come from
 *                the input, every message classified and every reply
 *                decoded as query-migrate, query-status and qom-list;
 *   bit 0 set    the client over a socketpair: greeting, capabilities,
 *                query-status, query-migrate, then the migration wait and
 *                cancel loops, until the stream ends.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmp.h"

static int prop_cb(const char *name, const char *type, void *arg)
{
	size_t *n = arg;

	*n += strlen(name) + strlen(type);
	return 0;
}

static void decode(const struct qmp_msg *m)
{
	struct qmp_mig_info mi;
	char st[32];
	bool running;
	size_t n = 0;

	if (m->kind != QMP_MSG_RETURN)
		return;
	if (!qmp_parse_mig_info(m->ret, &mi))
		qmp_mig_done(mi.status);
	qmp_parse_status(m->ret, st, sizeof(st), &running);
	qmp_parse_qom_list(m->ret, prop_cb, &n);
}

static void stream(const uint8_t *data, size_t size, uint8_t sel)
{
	struct json_object *o;
	struct qmp_rx rx;
	struct qmp_msg m;
	size_t off = 0, chunk;
	int r = 0;

	if (qmp_rx_init(&rx))
		return;
	while (off < size && r >= 0) {
		chunk = 1 + (sel >> 1) % 64 + (data[off] & 0x3f);
		if (chunk > size - off)
			chunk = size - off;
		if (qmp_rx_feed(&rx, data + off, chunk))
			break;
		off += chunk;
		while ((r = qmp_rx_next(&rx, &o)) == 1) {
			if (!qmp_classify(o, &m))
				decode(&m);
			json_object_put(o);
		}
	}
	qmp_rx_free(&rx);
}

static void client(const uint8_t *data, size_t size)
{
	struct qmp_mig_wait w = { .timeout_ms = 1000, .poll_ms = 0 };
	struct qmp_mig_info mi;
	struct qmp q;
	char st[32];
	bool running;
	int sp[2], r;

	/* More than a socket buffer is not a case of its own. */
	if (size > 65536)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp))
		return;
	if (write(sp[1], data, size) != (ssize_t)size) {
		close(sp[0]);
		close(sp[1]);
		return;
	}
	/* End of stream, not a timeout, stops every wait. */
	shutdown(sp[1], SHUT_WR);
	r = qmp_open_fd(&q, sp[0], 1000);
	if (!r) {
		qmp_query_status(&q, st, sizeof(st), &running);
		qmp_query_migrate(&q, &mi);
		r = qmp_mig_wait(&q, &w, &mi);
		if (r > 0)
			qmp_mig_cancel(&q, 1000, &mi);
	}
	qmp_close(&q);
	close(sp[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		client(data + 1, size - 1);
	else
		stream(data + 1, size - 1, data[0]);
	return 0;
}
