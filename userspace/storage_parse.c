// SPDX-License-Identifier: GPL-2.0-only
/*
 * Text the storage copy reads: the user's target and listen strings, what
 * /dev/nvme-fabrics answers, sysfs attributes and device-mapper status
 * lines. Every parser is strict (no trailing garbage, bounded numbers and
 * lengths) and works on a NUL-terminated string it never writes: the unit
 * tests and the fuzzer feed it anything.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "storage.h"

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Decimal digits at *p into *v (no sign, no overflow); advances *p. */
static int take_u64(const char **p, u64 *v)
{
	const char *s = *p;
	u64 n = 0;

	if (!is_digit(*s))
		return -EINVAL;
	/* "007" is not how the kernel prints numbers: refuse. */
	if (s[0] == '0' && is_digit(s[1]))
		return -EINVAL;
	for (; is_digit(*s); s++) {
		if (n > (UINT64_MAX - (u64)(*s - '0')) / 10)
			return -ERANGE;
		n = n * 10 + (u64)(*s - '0');
	}
	*p = s;
	*v = n;
	return 0;
}

static int take_u32(const char **p, u32 *v)
{
	u64 n;
	int r = take_u64(p, &n);

	if (r)
		return r;
	if (n > UINT32_MAX)
		return -ERANGE;
	*v = (u32)n;
	return 0;
}

/* Only an optional trailing newline may follow. */
static int at_end(const char *p)
{
	if (*p == '\n')
		p++;
	return *p ? -EINVAL : 0;
}

int stor_parse_u64(const char *s, u64 *v)
{
	u64 n;
	int r;

	if (!s)
		return -EINVAL;
	r = take_u64(&s, &n);
	if (r)
		return r;
	r = at_end(s);
	if (!r)
		*v = n;
	return r;
}

int stor_parse_devnum(const char *s, unsigned int *maj, unsigned int *min)
{
	u32 a, b;

	if (!s || take_u32(&s, &a) || *s++ != ':' || take_u32(&s, &b) ||
	    at_end(s))
		return -EINVAL;
	/* dev_t: 12 bits of major, 20 of minor. */
	if (a >= (1u << 12) || b >= (1u << 20))
		return -ERANGE;
	*maj = a;
	*min = b;
	return 0;
}

bool stor_valid_nqn(const char *s)
{
	size_t n;

	if (!s || strncmp(s, "nqn.", 4))
		return false;
	n = strlen(s);
	if (n <= 4 || n > STOR_NQN_MAX)
		return false;
	for (; *s; s++) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      is_digit(c) || c == '.' || c == ':' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

/*
 * [ADDR6] or ADDR4 at *p, then optionally :PORT; *p past it. @need_port:
 * the port is required. Wildcard and non-unicast addresses are refused
 * only by the callers that must.
 */
static int take_hostport(const char **p, struct stor_target *t,
			 bool need_port, char stop)
{
	const char *s = *p, *e;
	unsigned char bin[16];
	size_t n;
	u64 port;

	memset(t->addr, 0, sizeof(t->addr));
	if (*s == '[') {
		e = strchr(s, ']');
		if (!e)
			return -EINVAL;
		n = (size_t)(e - s - 1);
		if (!n || n >= sizeof(t->addr))
			return -EINVAL;
		memcpy(t->addr, s + 1, n);
		if (inet_pton(AF_INET6, t->addr, bin) != 1)
			return -EINVAL;
		t->ipv6 = true;
		s = e + 1;
	} else {
		e = s;
		while (*e && *e != ':' && *e != stop)
			e++;
		n = (size_t)(e - s);
		if (!n || n >= sizeof(t->addr))
			return -EINVAL;
		memcpy(t->addr, s, n);
		/* inet_pton takes dotted quads only: no "1", no "0x1". */
		if (inet_pton(AF_INET, t->addr, bin) != 1)
			return -EINVAL;
		t->ipv6 = false;
		s = e;
	}
	if (*s == ':') {
		s++;
		if (take_u64(&s, &port) || !port || port > 65535)
			return -EINVAL;
		t->port = (u16)port;
	} else if (need_port) {
		return -EINVAL;
	} else {
		t->port = STOR_DEF_PORT;
	}
	*p = s;
	return 0;
}

int stor_parse_target(const char *s, struct stor_target *t)
{
	struct stor_target x;

	memset(&x, 0, sizeof(x));
	if (!s || strncmp(s, "tcp://", 6))
		return -EINVAL;
	s += 6;
	if (take_hostport(&s, &x, true, '/') || *s++ != '/')
		return -EINVAL;
	if (strlen(s) > STOR_NQN_MAX || !stor_valid_nqn(s))
		return -EINVAL;
	strcpy(x.nqn, s);
	*t = x;
	return 0;
}

int stor_format_target(const struct stor_target *t, char *buf, size_t len)
{
	int n = snprintf(buf, len, "tcp://%s%s%s:%u/%s", t->ipv6 ? "[" : "",
			 t->addr, t->ipv6 ? "]" : "", t->port, t->nqn);

	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int stor_parse_listen(const char *s, struct stor_target *t)
{
	struct stor_target x;
	unsigned char bin[16], zero[16] = { 0 };

	memset(&x, 0, sizeof(x));
	if (!s || take_hostport(&s, &x, false, '\0') || *s)
		return -EINVAL;
	/* The printed target must be an address the source can reach. */
	if (inet_pton(x.ipv6 ? AF_INET6 : AF_INET, x.addr, bin) != 1 ||
	    !memcmp(bin, zero, x.ipv6 ? 16 : 4))
		return -EADDRNOTAVAIL;
	*t = x;
	return 0;
}

bool stor_valid_uuid(const char *s)
{
	if (!s || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!is_digit(c) && !(c >= 'a' && c <= 'f') &&
			   !(c >= 'A' && c <= 'F')) {
			return false;
		}
	}
	return true;
}

int stor_fabrics_options(const struct stor_target *t, const char *hostnqn,
			 const char *hostid, char *buf, size_t len)
{
	int n;

	/* The kernel pairs a host NQN with one host ID: both or neither. */
	if (!stor_valid_nqn(t->nqn) || !hostnqn != !hostid ||
	    (hostnqn && !stor_valid_nqn(hostnqn)) ||
	    (hostid && !stor_valid_uuid(hostid)))
		return -EINVAL;
	n = snprintf(buf, len,
		     "nqn=%s,transport=tcp,traddr=%s,trsvcid=%u%s%s%s%s,"
		     "ctrl_loss_tmo=%d,fast_io_fail_tmo=%d,reconnect_delay=%d,"
		     "keep_alive_tmo=%d",
		     t->nqn, t->addr, t->port, hostnqn ? ",hostnqn=" : "",
		     hostnqn ? hostnqn : "", hostid ? ",hostid=" : "",
		     hostid ? hostid : "", STOR_CTRL_LOSS_TMO,
		     STOR_FAST_IO_FAIL_TMO, STOR_RECONNECT_DELAY, STOR_KATO);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int stor_parse_fabrics_reply(const char *s, int *instance, int *cntlid)
{
	u32 i, c;

	if (!s || strncmp(s, "instance=", 9))
		return -EINVAL;
	s += 9;
	if (take_u32(&s, &i) || i > INT32_MAX || strncmp(s, ",cntlid=", 8))
		return -EINVAL;
	s += 8;
	/* CNTLID is 16 bits. */
	if (take_u32(&s, &c) || c > 0xffff || at_end(s))
		return -EINVAL;
	*instance = (int)i;
	*cntlid = (int)c;
	return 0;
}

int stor_parse_ns_entry(const char *name, char *disk, size_t len, u32 *nsid)
{
	const char *s = name;
	u32 x, c, y;
	int n;

	if (!name || strncmp(s, "nvme", 4))
		return -EINVAL;
	s += 4;
	if (take_u32(&s, &x))
		return -EINVAL;
	if (*s == 'c') {
		s++;
		if (take_u32(&s, &c))
			return -EINVAL;
	}
	if (*s++ != 'n' || take_u32(&s, &y) || *s || !y)
		return -EINVAL;
	n = snprintf(disk, len, "nvme%un%u", x, y);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	*nsid = y;
	return 0;
}

static const char *const ctrl_states[] = {
	[STOR_CTRL_UNKNOWN] = "unknown",
	[STOR_CTRL_NEW] = "new",
	[STOR_CTRL_LIVE] = "live",
	[STOR_CTRL_RESETTING] = "resetting",
	[STOR_CTRL_CONNECTING] = "connecting",
	[STOR_CTRL_DELETING] = "deleting",
	[STOR_CTRL_DELETING_NOIO] = "deleting (no IO)",
	[STOR_CTRL_DEAD] = "dead",
};

enum stor_ctrl_state stor_parse_ctrl_state(const char *s)
{
	size_t n;

	if (!s)
		return STOR_CTRL_UNKNOWN;
	n = strlen(s);
	if (n && s[n - 1] == '\n')
		n--;
	for (size_t i = 1; i < sizeof(ctrl_states) / sizeof(ctrl_states[0]);
	     i++)
		if (strlen(ctrl_states[i]) == n &&
		    !strncmp(s, ctrl_states[i], n))
			return (enum stor_ctrl_state)i;
	return STOR_CTRL_UNKNOWN;
}

const char *stor_ctrl_state_name(enum stor_ctrl_state st)
{
	if ((unsigned int)st >= sizeof(ctrl_states) / sizeof(ctrl_states[0]))
		return "unknown";
	return ctrl_states[st];
}

/* Words separated by one space each, as dm prints them. */
static int take_word(const char **p, char *buf, size_t len)
{
	const char *s = *p, *e = s;
	size_t n;

	while (*e && *e != ' ')
		e++;
	n = (size_t)(e - s);
	if (!n || n >= len)
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = 0;
	*p = *e ? e + 1 : e;
	return 0;
}

static int take_space(const char **p)
{
	if (**p != ' ')
		return -EINVAL;
	(*p)++;
	return 0;
}

static int parse_legs(const char **p, struct stor_mirror_status *st,
		      bool offsets)
{
	char w[32];
	u32 n;
	u64 off;

	if (take_u32(p, &n) || take_space(p) || n < 1 ||
	    n > STOR_MIRROR_LEGS)
		return -EINVAL;
	st->legs = (int)n;
	for (u32 i = 0; i < n; i++) {
		if (take_word(p, w, sizeof(w)) ||
		    stor_parse_devnum(w, &st->maj[i], &st->min[i]))
			return -EINVAL;
		if (!offsets)
			continue;
		if (take_u64(p, &off))
			return -EINVAL;
		if (**p == ' ')
			(*p)++;
		else if (**p || i + 1 < n)
			return -EINVAL;
	}
	return 0;
}

int stor_parse_mirror_status(const char *s, struct stor_mirror_status *st)
{
	struct stor_mirror_status x;
	char w[64];
	u32 nargs, nlog;
	size_t n;

	memset(&x, 0, sizeof(x));
	if (!s || parse_legs(&s, &x, false))
		return -EINVAL;
	if (take_u64(&s, &x.in_sync) || *s++ != '/' ||
	    take_u64(&s, &x.regions) || take_space(&s))
		return -EINVAL;
	if (!x.regions || x.in_sync > x.regions)
		return -ERANGE;
	/* "1 HEALTH": one status argument, a character per leg. */
	if (take_u32(&s, &nargs) || take_space(&s) || nargs != 1 ||
	    take_word(&s, w, sizeof(w)))
		return -EINVAL;
	n = strlen(w);
	if (n != (size_t)x.legs)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!strchr("ADSRFU", w[i]))
			return -EINVAL;
	memcpy(x.health, w, n + 1);
	/* The log: "COUNT NAME [ARGS]"; core says "1 core". */
	if (take_u32(&s, &nlog) || take_space(&s) || nlog < 1 || nlog > 8 ||
	    take_word(&s, x.log, sizeof(x.log)))
		return -EINVAL;
	for (u32 i = 1; i < nlog; i++)
		if (take_word(&s, w, sizeof(w)))
			return -EINVAL;
	/* dm may leave a trailing space or newline. */
	while (*s == ' ' || *s == '\n')
		s++;
	if (*s)
		return -EINVAL;
	*st = x;
	return 0;
}

int stor_mirror_failed_leg(const struct stor_mirror_status *st)
{
	for (int i = 0; i < st->legs; i++)
		if (st->health[i] != 'A')
			return i;
	return -1;
}

int stor_parse_mirror_table(const char *s, struct stor_mirror_status *st)
{
	struct stor_mirror_status x;
	char w[64];
	u32 nlog;

	memset(&x, 0, sizeof(x));
	if (!s || take_word(&s, x.log, sizeof(x.log)) ||
	    take_u32(&s, &nlog) || take_space(&s) || nlog > 8)
		return -EINVAL;
	for (u32 i = 0; i < nlog; i++)
		if (take_word(&s, w, sizeof(w)))
			return -EINVAL;
	if (parse_legs(&s, &x, true))
		return -EINVAL;
	/* Features ("1 handle_errors") are not needed: the rest is free. */
	*st = x;
	return 0;
}

u32 stor_region_sectors(u64 sectors)
{
	/*
	 * dm-raid1 recovers one region at a time (MAX_RECOVERY) and kcopyd
	 * splits a copy into 8 sub-jobs of 512 KiB that run together: a
	 * region of 4 MiB keeps all of them busy, a smaller one leaves the
	 * copy waiting on each round trip to the remote namespace.
	 */
	u32 r = 8192;	/* 4 MiB */

	/* At most 1 Mi regions: two bitmaps of 128 KiB in the core log. */
	while (r < (1u << 30) && sectors / r > (1u << 20))
		r <<= 1;
	return r;
}
