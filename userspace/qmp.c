// SPDX-License-Identifier: GPL-2.0-only
/*
 * QMP client of hbamig migrate. QEMU writes one JSON object per message
 * (followed by CRLF, which is only whitespace to us); replies carry the
 * "id" of the command, events and replies may interleave. The decoder
 * never trusts a key's presence, a value's type, a string's length or a
 * number's sign.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmp.h"

/* ---- framing ---- */

int qmp_rx_init(struct qmp_rx *rx)
{
	memset(rx, 0, sizeof(*rx));
	rx->tok = json_tokener_new_ex(QMP_DEPTH_MAX);
	if (!rx->tok)
		return -ENOMEM;
	json_tokener_set_flags(rx->tok, JSON_TOKENER_STRICT |
					JSON_TOKENER_VALIDATE_UTF8);
	return 0;
}

void qmp_rx_free(struct qmp_rx *rx)
{
	if (rx->tok)
		json_tokener_free(rx->tok);
	free(rx->buf);
	memset(rx, 0, sizeof(*rx));
}

int qmp_rx_feed(struct qmp_rx *rx, const void *data, size_t len)
{
	char *nb;
	size_t ncap;

	if (!len)
		return 0;
	if (len > QMP_MSG_MAX || rx->len + len > QMP_MSG_MAX)
		return -EMSGSIZE;
	if (rx->len + len > rx->cap) {
		ncap = rx->cap ? rx->cap : 4096;
		while (ncap < rx->len + len)
			ncap *= 2;
		nb = realloc(rx->buf, ncap);
		if (!nb)
			return -ENOMEM;
		rx->buf = nb;
		rx->cap = ncap;
	}
	memcpy(rx->buf + rx->len, data, len);
	rx->len += len;
	return 0;
}

static void rx_consume(struct qmp_rx *rx, size_t n)
{
	if (!n)
		return;
	memmove(rx->buf, rx->buf + n, rx->len - n);
	rx->len -= n;
}

/*
 * Length of the first message (a JSON object) in the buffer, 0 when it is
 * not complete yet, -EPROTO when the stream does not start with one. Only
 * brackets outside strings count; json-c then validates the slice. The
 * scan resumes where it stopped, so a message arriving in pieces is read
 * once.
 */
static ssize_t rx_frame(struct qmp_rx *rx)
{
	size_t i;

	if (!rx->scan) {
		if (rx->buf[0] != '{')
			return -EPROTO;
		rx->depth = 0;
		rx->in_str = false;
		rx->esc = false;
	}
	for (i = rx->scan; i < rx->len; i++) {
		char c = rx->buf[i];

		if (rx->in_str) {
			if (rx->esc)
				rx->esc = false;
			else if (c == '\\')
				rx->esc = true;
			else if (c == '"')
				rx->in_str = false;
			continue;
		}
		if (c == '"') {
			rx->in_str = true;
		} else if (c == '{' || c == '[') {
			if (rx->depth == QMP_DEPTH_MAX)
				return -EPROTO;
			rx->open[rx->depth++] = c == '{' ? '}' : ']';
		} else if (c == '}' || c == ']') {
			if (!rx->depth || rx->open[rx->depth - 1] != c)
				return -EPROTO;
			if (!--rx->depth) {
				rx->scan = 0;
				return i + 1;
			}
		}
	}
	rx->scan = rx->len;
	return 0;
}

int qmp_rx_next(struct qmp_rx *rx, struct json_object **out)
{
	enum json_tokener_error jerr;
	struct json_object *o;
	size_t skip = 0;
	ssize_t end;

	*out = NULL;
	if (!rx->scan) {
		while (skip < rx->len && strchr(" \t\r\n", rx->buf[skip]) &&
		       rx->buf[skip])
			skip++;
		rx_consume(rx, skip);
	}
	if (!rx->len)
		return 0;
	end = rx_frame(rx);
	if (end <= 0)
		return end;
	json_tokener_reset(rx->tok);
	o = json_tokener_parse_ex(rx->tok, rx->buf, (int)end);
	jerr = json_tokener_get_error(rx->tok);
	/* With its brackets closed, an unfinished value is not JSON either. */
	if (jerr != json_tokener_success ||
	    json_tokener_get_parse_end(rx->tok) != (size_t)end ||
	    !o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -EPROTO;
	}
	rx_consume(rx, end);
	*out = o;
	return 1;
}

/* ---- decoding helpers ---- */

/* Copy a string value, dropping control characters (it reaches a tty). */
static void copy_str(char *dst, size_t len, struct json_object *v)
{
	const char *s;
	size_t i, n;

	if (!len)
		return;
	dst[0] = 0;
	if (!v || !json_object_is_type(v, json_type_string))
		return;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	for (i = 0; i < n && i + 1 < len; i++)
		dst[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	dst[i] = 0;
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!o || !json_object_is_type(o, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

/* A non-negative integer member: 1 present, 0 absent, -EPROTO wrong. */
static int get_u64(struct json_object *o, const char *key, uint64_t *val)
{
	struct json_object *v = get(o, key);

	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -EPROTO;
	if (json_object_get_int64(v) < 0)
		return -EPROTO;
	*val = json_object_get_uint64(v);
	return 1;
}

static int get_ms(struct json_object *o, const char *key, bool *has,
		  int64_t *val)
{
	uint64_t u = 0;
	int r = get_u64(o, key, &u);

	if (r < 0)
		return r;
	*has = r;
	*val = u > INT64_MAX ? INT64_MAX : (int64_t)u;
	return 0;
}

static int get_num(struct json_object *o, const char *key, double *val)
{
	struct json_object *v = get(o, key);

	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_double) &&
	    !json_object_is_type(v, json_type_int))
		return -EPROTO;
	*val = json_object_get_double(v);
	return *val == *val ? 1 : -EPROTO;	/* NaN */
}

int qmp_classify(struct json_object *o, struct qmp_msg *m)
{
	struct json_object *v, *w;

	memset(m, 0, sizeof(*m));
	if (!o || !json_object_is_type(o, json_type_object))
		return -EPROTO;
	v = get(o, "id");
	if (v && json_object_is_type(v, json_type_int)) {
		m->has_id = true;
		m->id = json_object_get_int64(v);
	}
	v = get(o, "return");
	if (v) {
		m->kind = QMP_MSG_RETURN;
		m->ret = v;
		return 0;
	}
	v = get(o, "error");
	if (v) {
		if (!json_object_is_type(v, json_type_object))
			return -EPROTO;
		m->kind = QMP_MSG_ERROR;
		copy_str(m->err_class, sizeof(m->err_class), get(v, "class"));
		copy_str(m->err_desc, sizeof(m->err_desc), get(v, "desc"));
		if (!m->err_desc[0])
			snprintf(m->err_desc, sizeof(m->err_desc),
				 "(no description)");
		return 0;
	}
	v = get(o, "event");
	if (v) {
		if (!json_object_is_type(v, json_type_string))
			return -EPROTO;
		m->kind = QMP_MSG_EVENT;
		copy_str(m->event, sizeof(m->event), v);
		w = get(o, "data");
		if (w && json_object_is_type(w, json_type_object))
			m->data = w;
		return 0;
	}
	v = get(o, "QMP");
	if (v) {
		struct json_object *q;
		uint64_t n;

		if (!json_object_is_type(v, json_type_object))
			return -EPROTO;
		m->kind = QMP_MSG_GREETING;
		q = get(get(v, "version"), "qemu");
		if (get_u64(q, "major", &n) > 0 && n < 1000)
			m->ver_major = (int)n;
		if (get_u64(q, "minor", &n) > 0 && n < 1000)
			m->ver_minor = (int)n;
		if (get_u64(q, "micro", &n) > 0 && n < 1000)
			m->ver_micro = (int)n;
		return 0;
	}
	return -EPROTO;
}

bool qmp_mig_done(const char *status)
{
	return !strcmp(status, "completed") || !strcmp(status, "failed") ||
	       !strcmp(status, "cancelled");
}

int qmp_parse_mig_info(struct json_object *ret, struct qmp_mig_info *mi)
{
	struct json_object *ram, *vfio, *br;
	uint64_t u = 0;
	double d = 0;
	int r;

	memset(mi, 0, sizeof(*mi));
	if (!ret || !json_object_is_type(ret, json_type_object))
		return -EPROTO;
	if (get(ret, "status")) {
		if (!json_object_is_type(get(ret, "status"), json_type_string))
			return -EPROTO;
		copy_str(mi->status, sizeof(mi->status), get(ret, "status"));
		if (!mi->status[0])
			return -EPROTO;
	}
	if (get_ms(ret, "total-time", &mi->has_total_time,
		   &mi->total_time_ms) ||
	    get_ms(ret, "downtime", &mi->has_downtime, &mi->downtime_ms) ||
	    get_ms(ret, "expected-downtime", &mi->has_expected_downtime,
		   &mi->expected_downtime_ms) ||
	    get_ms(ret, "setup-time", &mi->has_setup_time,
		   &mi->setup_time_ms))
		return -EPROTO;

	ram = get(ret, "ram");
	if (ram) {
		if (!json_object_is_type(ram, json_type_object))
			return -EPROTO;
		mi->has_ram = true;
		if (get_u64(ram, "transferred", &mi->ram_transferred) < 0 ||
		    get_u64(ram, "total", &mi->ram_total) < 0 ||
		    get_u64(ram, "remaining", &mi->ram_remaining) < 0 ||
		    get_u64(ram, "dirty-pages-rate", &mi->ram_dirty_rate) < 0 ||
		    get_u64(ram, "dirty-sync-count",
			    &mi->ram_dirty_sync_count) < 0)
			return -EPROTO;
		r = get_num(ram, "mbps", &d);
		if (r < 0)
			return r;
		mi->ram_mbps = d;
	}
	vfio = get(ret, "vfio");
	if (vfio) {
		if (!json_object_is_type(vfio, json_type_object))
			return -EPROTO;
		r = get_u64(vfio, "transferred", &u);
		if (r < 0)
			return r;
		mi->has_vfio = r > 0;
		mi->vfio_transferred = u;
	}
	if (get(ret, "error-desc"))
		copy_str(mi->error_desc, sizeof(mi->error_desc),
			 get(ret, "error-desc"));
	br = get(ret, "blocked-reasons");
	if (br) {
		size_t i, n;

		if (!json_object_is_type(br, json_type_array))
			return -EPROTO;
		n = json_object_array_length(br);
		for (i = 0; i < n; i++) {
			struct json_object *e = json_object_array_get_idx(br, i);

			if (!e || !json_object_is_type(e, json_type_string))
				return -EPROTO;
			if (mi->nr_blocked < 4)
				copy_str(mi->blocked[mi->nr_blocked],
					 sizeof(mi->blocked[0]), e);
			mi->nr_blocked++;
		}
	}
	return 0;
}

int qmp_parse_status(struct json_object *ret, char *status, size_t len,
		     bool *running)
{
	struct json_object *v;

	v = get(ret, "status");
	if (!v || !json_object_is_type(v, json_type_string))
		return -EPROTO;
	copy_str(status, len, v);
	v = get(ret, "running");
	if (!v || !json_object_is_type(v, json_type_boolean))
		return -EPROTO;
	*running = json_object_get_boolean(v);
	return 0;
}

int qmp_parse_qom_list(struct json_object *ret, qmp_prop_cb cb, void *arg)
{
	char name[QMP_STR_MAX], type[QMP_STR_MAX];
	size_t i, n;
	int r;

	if (!ret || !json_object_is_type(ret, json_type_array))
		return -EPROTO;
	n = json_object_array_length(ret);
	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(ret, i);
		struct json_object *nm = get(e, "name"), *ty = get(e, "type");

		if (!nm || !ty || !json_object_is_type(nm, json_type_string) ||
		    !json_object_is_type(ty, json_type_string))
			return -EPROTO;
		/* A truncated name would address another object. */
		if ((size_t)json_object_get_string_len(nm) >= sizeof(name) ||
		    (size_t)json_object_get_string_len(ty) >= sizeof(type))
			continue;
		copy_str(name, sizeof(name), nm);
		copy_str(type, sizeof(type), ty);
		r = cb(name, type, arg);
		if (r)
			return r;
	}
	return 0;
}

/* ---- transport ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_err(struct qmp *q, const char *cls, const char *desc)
{
	snprintf(q->err_class, sizeof(q->err_class), "%s", cls);
	snprintf(q->err_desc, sizeof(q->err_desc), "%s", desc);
}

/* Next message, by @deadline (CLOCK_MONOTONIC ms). */
static int read_msg(struct qmp *q, int64_t deadline, struct json_object **o)
{
	char buf[4096];
	struct pollfd p;
	ssize_t n;
	int r;

	for (;;) {
		r = qmp_rx_next(&q->rx, o);
		if (r > 0)
			return 0;
		if (r < 0) {
			set_err(q, "protocol", "QEMU sent something that is not QMP JSON");
			return r;
		}
		p.fd = q->fd;
		p.events = POLLIN;
		p.revents = 0;
		r = deadline - now_ms();
		if (r <= 0) {
			set_err(q, "timeout", "no answer from QEMU in time");
			return -ETIMEDOUT;
		}
		r = poll(&p, 1, r);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (!r)
			continue;
		n = recv(q->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			set_err(q, "closed", "QEMU closed the QMP connection");
			return -EPIPE;
		}
		r = qmp_rx_feed(&q->rx, buf, n);
		if (r) {
			set_err(q, "protocol", "QMP message too large");
			return r;
		}
	}
}

static int send_all(struct qmp *q, const char *s, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(q->fd, s, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			set_err(q, "closed", "cannot write to QEMU's QMP socket");
			return -EPIPE;
		}
		s += n;
		len -= n;
	}
	return 0;
}

static void note_event(struct qmp *q, const struct qmp_msg *m)
{
	q->events++;
	if (!strcmp(m->event, "MIGRATION"))
		copy_str(q->mig_event, sizeof(q->mig_event),
			 get(m->data, "status"));
	if (q->on_event)
		q->on_event(m, q->event_arg);
}

int qmp_exec(struct qmp *q, const char *cmd, struct json_object *args,
	     struct json_object **ret)
{
	struct json_object *req, *o;
	int64_t deadline, id;
	struct qmp_msg m;
	const char *s;
	size_t len;
	int r;

	if (ret)
		*ret = NULL;
	req = json_object_new_object();
	if (!req) {
		json_object_put(args);
		return -ENOMEM;
	}
	id = ++q->next_id;
	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", args);
	json_object_object_add(req, "id", json_object_new_int64(id));
	s = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN,
					       &len);
	r = s ? send_all(q, s, len) : -ENOMEM;
	if (!r)
		r = send_all(q, "\n", 1);
	json_object_put(req);
	if (r)
		return r;

	deadline = now_ms() + q->timeout_ms;
	for (;;) {
		r = read_msg(q, deadline, &o);
		if (r)
			return r;
		if (qmp_classify(o, &m)) {
			json_object_put(o);
			set_err(q, "protocol", "QEMU sent a JSON object that is not a QMP message");
			return -EPROTO;
		}
		if (m.kind == QMP_MSG_EVENT) {
			note_event(q, &m);
			json_object_put(o);
			continue;
		}
		/*
		 * A reply with another id answers a command given up on
		 * earlier; one without an id is QEMU failing to parse ours.
		 */
		if (m.kind == QMP_MSG_GREETING ||
		    (m.has_id && m.id != id) ||
		    (!m.has_id && m.kind == QMP_MSG_RETURN)) {
			json_object_put(o);
			continue;
		}
		if (m.kind == QMP_MSG_ERROR) {
			set_err(q, m.err_class, m.err_desc);
			json_object_put(o);
			return -EREMOTEIO;
		}
		if (ret)
			*ret = json_object_get(m.ret);
		json_object_put(o);
		return 0;
	}
}

int qmp_open_fd(struct qmp *q, int fd, int timeout_ms)
{
	struct json_object *o;
	struct qmp_msg m;
	int r;

	memset(q, 0, sizeof(*q));
	q->fd = fd;
	q->timeout_ms = timeout_ms;
	r = qmp_rx_init(&q->rx);
	if (r) {
		close(fd);
		q->fd = -1;
		return r;
	}
	r = read_msg(q, now_ms() + timeout_ms, &o);
	if (r == -ETIMEDOUT)
		set_err(q, "timeout", "no QMP greeting (does another client hold this monitor? QEMU serves one at a time)");
	if (r)
		return r;
	r = qmp_classify(o, &m);
	json_object_put(o);
	if (r || m.kind != QMP_MSG_GREETING) {
		set_err(q, "protocol", "the socket does not greet like a QMP monitor");
		return -EPROTO;
	}
	q->ver_major = m.ver_major;
	q->ver_minor = m.ver_minor;
	q->ver_micro = m.ver_micro;
	return qmp_exec(q, "qmp_capabilities", NULL, NULL);
}

int qmp_connect(struct qmp *q, const char *path, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	memset(q, 0, sizeof(*q));
	q->fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		set_err(q, "usage", "socket path too long");
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = -errno;

		close(fd);
		set_err(q, "connect", strerror(-err));
		return err;
	}
	return qmp_open_fd(q, fd, timeout_ms);
}

void qmp_close(struct qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	qmp_rx_free(&q->rx);
}

int qmp_query_migrate(struct qmp *q, struct qmp_mig_info *mi)
{
	struct json_object *ret;
	int r;

	r = qmp_exec(q, "query-migrate", NULL, &ret);
	if (r)
		return r;
	r = qmp_parse_mig_info(ret, mi);
	json_object_put(ret);
	if (r)
		set_err(q, "protocol", "malformed query-migrate reply");
	return r;
}

int qmp_query_status(struct qmp *q, char *status, size_t len, bool *running)
{
	struct json_object *ret;
	int r;

	r = qmp_exec(q, "query-status", NULL, &ret);
	if (r)
		return r;
	r = qmp_parse_status(ret, status, len, running);
	json_object_put(ret);
	if (r)
		set_err(q, "protocol", "malformed query-status reply");
	return r;
}

int qmp_qom_get_str(struct qmp *q, const char *path, const char *prop,
		    char *buf, size_t len)
{
	struct json_object *args, *ret;
	int r;

	args = json_object_new_object();
	if (!args)
		return -ENOMEM;
	json_object_object_add(args, "path", json_object_new_string(path));
	json_object_object_add(args, "property", json_object_new_string(prop));
	r = qmp_exec(q, "qom-get", args, &ret);
	if (r == -EREMOTEIO)
		return -ENOENT;
	if (r)
		return r;
	if (!ret || !json_object_is_type(ret, json_type_string) ||
	    (size_t)json_object_get_string_len(ret) >= len) {
		json_object_put(ret);
		return -EPROTO;
	}
	copy_str(buf, len, ret);
	json_object_put(ret);
	return 0;
}

/* ---- migration ---- */

int qmp_mig_set_downtime(struct qmp *q, uint64_t ms)
{
	struct json_object *args = json_object_new_object();

	if (!args)
		return -ENOMEM;
	json_object_object_add(args, "downtime-limit",
			       json_object_new_uint64(ms));
	return qmp_exec(q, "migrate-set-parameters", args, NULL);
}

int qmp_mig_get_threshold(struct qmp *q, uint64_t *downtime_ms,
			  uint64_t *switchover_bw)
{
	struct json_object *ret;
	int r;

	r = qmp_exec(q, "query-migrate-parameters", NULL, &ret);
	if (r)
		return r;
	r = -EPROTO;
	if (!ret || !json_object_is_type(ret, json_type_object))
		goto out;
	r = get_u64(ret, "downtime-limit", downtime_ms);
	if (r > 0)
		r = get_u64(ret, "avail-switchover-bandwidth", switchover_bw);
	r = r < 0 ? -EPROTO : r == 0 ? -ENOENT : 0;
out:
	if (r == -EPROTO)
		set_err(q, "protocol", "malformed query-migrate-parameters reply");
	json_object_put(ret);
	return r;
}

int qmp_mig_set_threshold(struct qmp *q, uint64_t downtime_ms,
			  uint64_t switchover_bw)
{
	struct json_object *args = json_object_new_object();

	if (!args)
		return -ENOMEM;
	json_object_object_add(args, "downtime-limit",
			       json_object_new_uint64(downtime_ms));
	json_object_object_add(args, "avail-switchover-bandwidth",
			       json_object_new_uint64(switchover_bw));
	return qmp_exec(q, "migrate-set-parameters", args, NULL);
}

int qmp_mig_threshold_cmd(char *buf, size_t len, uint64_t downtime_ms,
			  uint64_t switchover_bw)
{
	int n = snprintf(buf, len,
			 "{\"execute\": \"migrate-set-parameters\", \"arguments\": {\"downtime-limit\": %llu, \"avail-switchover-bandwidth\": %llu}}\r\n",
			 (unsigned long long)downtime_ms,
			 (unsigned long long)switchover_bw);

	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

/* The guard's child: only async-signal-safe calls, then _exit(). */
static void guard_child(int qfd, int rfd, const char *cmd)
{
	struct pollfd p = { .fd = qfd, .events = POLLIN };
	size_t len = strlen(cmd), off = 0;
	char c, buf[512];
	ssize_t n;
	int i;

	/* A Ctrl-C for the group is the parent's to handle, not ours. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	do {
		n = read(rfd, &c, 1);
	} while (n < 0 && errno == EINTR);
	if (n == 1)
		_exit(0);
	while (off < len) {
		n = send(qfd, cmd + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(1);
		off += (size_t)n;
	}
	/* QEMU executes what it read before the socket's end; wait anyway. */
	for (i = 0; i < 20 && poll(&p, 1, 100) >= 0; i++) {
		if (!(p.revents & (POLLIN | POLLHUP)))
			continue;
		n = read(qfd, buf, sizeof(buf));
		if (n <= 0 || memchr(buf, '\n', (size_t)n))
			break;
	}
	_exit(0);
}

int qmp_guard_start(struct qmp *q, const char *cmd, struct qmp_guard *g)
{
	int p[2];
	pid_t pid;

	g->pid = 0;
	g->fd = -1;
	if (q->fd < 0)
		return -EBADF;
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (!pid) {
		unsigned int lo = (unsigned int)(q->fd < p[0] ? q->fd : p[0]);
		unsigned int hi = (unsigned int)(q->fd < p[0] ? p[0] : q->fd);

		/*
		 * Hold nothing of the parent's but the monitor and the pipe:
		 * a lease's BPF link or netlink socket must end with it.
		 */
		if (lo > 3)
			close_range(3, lo - 1, 0);
		if (hi > lo + 1)
			close_range(lo + 1, hi - 1, 0);
		close_range(hi + 1, ~0U, 0);
		guard_child(q->fd, p[0], cmd);
	}
	close(p[0]);
	g->pid = pid;
	g->fd = p[1];
	return 0;
}

void qmp_guard_release(struct qmp_guard *g)
{
	if (!g->pid)
		return;
	if (write(g->fd, "r", 1) != 1)
		kill(g->pid, SIGKILL);
	close(g->fd);
	while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
		;
	g->pid = 0;
	g->fd = -1;
}

void qmp_guard_fire(struct qmp_guard *g)
{
	if (!g->pid)
		return;
	close(g->fd);
	while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
		;
	g->pid = 0;
	g->fd = -1;
}

int qmp_mig_start(struct qmp *q, const char *uri)
{
	struct json_object *args = json_object_new_object();

	if (!args)
		return -ENOMEM;
	json_object_object_add(args, "uri", json_object_new_string(uri));
	return qmp_exec(q, "migrate", args, NULL);
}

int qmp_mig_set_capability(struct qmp *q, const char *cap, bool on)
{
	struct json_object *args = json_object_new_object();
	struct json_object *caps = json_object_new_array();
	struct json_object *c = json_object_new_object();

	if (!args || !caps || !c) {
		json_object_put(args);
		json_object_put(caps);
		json_object_put(c);
		return -ENOMEM;
	}
	json_object_object_add(c, "capability", json_object_new_string(cap));
	json_object_object_add(c, "state", json_object_new_boolean(on));
	json_object_array_add(caps, c);
	json_object_object_add(args, "capabilities", caps);
	return qmp_exec(q, "migrate-set-capabilities", args, NULL);
}

int qmp_mig_continue(struct qmp *q, const char *state)
{
	struct json_object *args = json_object_new_object();

	if (!args)
		return -ENOMEM;
	json_object_object_add(args, "state", json_object_new_string(state));
	return qmp_exec(q, "migrate-continue", args, NULL);
}

static int result_of(const char *status)
{
	if (!strcmp(status, "completed"))
		return QMP_MIG_COMPLETED;
	if (!strcmp(status, "cancelled"))
		return QMP_MIG_CANCELLED;
	return QMP_MIG_FAILED;
}

int qmp_mig_wait(struct qmp *q, const struct qmp_mig_wait *w,
		 struct qmp_mig_info *last)
{
	int64_t deadline = now_ms() + w->timeout_ms;
	struct timespec ts;
	int r;

	for (;;) {
		r = qmp_query_migrate(q, last);
		if (r)
			return r;
		/* No status: the migrate command has not taken effect. */
		if (last->status[0] && qmp_mig_done(last->status))
			return result_of(last->status);
		if (w->until_preswitch &&
		    !strcmp(last->status, "pre-switchover"))
			return QMP_MIG_PRE_SWITCHOVER;
		if (w->until_synced && last->has_ram &&
		    last->ram_dirty_sync_count >= 2)
			return QMP_MIG_SYNCED;
		if (w->progress)
			w->progress(last, w->arg);
		if (w->stop && *w->stop)
			return QMP_MIG_STOPPED;
		if (now_ms() >= deadline)
			return QMP_MIG_TIMEOUT;
		ts.tv_sec = w->poll_ms / 1000;
		ts.tv_nsec = (long)(w->poll_ms % 1000) * 1000000;
		/* A signal cuts the sleep short; the loop looks at *stop. */
		nanosleep(&ts, NULL);
		if (w->stop && *w->stop)
			return QMP_MIG_STOPPED;
	}
}

int qmp_mig_cancel(struct qmp *q, int timeout_ms, struct qmp_mig_info *last)
{
	struct qmp_mig_wait w = { .timeout_ms = timeout_ms, .poll_ms = 50 };
	int r;

	r = qmp_exec(q, "migrate_cancel", NULL, NULL);
	if (r)
		return r;
	r = qmp_mig_wait(q, &w, last);
	return r;
}

const char *qmp_mig_result_name(int r)
{
	switch (r) {
	case QMP_MIG_COMPLETED:
		return "completed";
	case QMP_MIG_FAILED:
		return "failed";
	case QMP_MIG_CANCELLED:
		return "cancelled";
	case QMP_MIG_TIMEOUT:
		return "timeout";
	case QMP_MIG_STOPPED:
		return "interrupted";
	case QMP_MIG_PRE_SWITCHOVER:
		return "pre-switchover";
	case QMP_MIG_SYNCED:
		return "synced";
	default:
		return "error";
	}
}
