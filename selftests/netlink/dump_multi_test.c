// SPDX-License-Identifier: GPL-2.0-only
/*
 * A dump of the emuhba family that the kernel must split over several
 * messages: every adapter bound to emuhba is given a backend path of the
 * longest allowed length, so that each adapter-get message is large, and
 * the dump is read with a small receive buffer (which bounds the size of
 * each part the kernel builds). Every adapter must appear exactly once
 * across the parts, in id order, each part marked NLM_F_MULTI, and the
 * dump must really have taken at least two parts: with too few adapters
 * to fill one part the test fails, saying how many it needs.
 *
 * Needs the module loaded and every VF the test VM offers bound to emuhba
 * (vm-suite does that). Backends are restored afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/emuhba.h>

#include "kselftest_harness.h"
#include "genl_lib.h"

/* The receive buffer: the kernel never builds a dump part larger. */
#define SMALL_BUF	4096

struct parts {
	int recvs;		/* recv() calls */
	int parts;		/* of them, those carrying adapters */
	int truncated;		/* MSG_TRUNC seen */
	int multi, msgs;
	int done;
	int error;
	long bytes;		/* of the adapter messages */
	__u32 ids[256];
	int n;
};

/* Read one dump with @bufsz-byte recv() calls, part by part. */
static int dump_parts(int fd, int fam, size_t bufsz, struct parts *p)
{
	static char buf[BUF_SIZE];
	struct req r;

	memset(p, 0, sizeof(*p));
	req_init(&r, fam, EMUHBA_CMD_ADAPTER_GET, NLM_F_DUMP);
	if (send(fd, &r, r.n.nlmsg_len, 0) != (ssize_t)r.n.nlmsg_len)
		return -errno;
	while (!p->done) {
		struct iovec iov = { buf, bufsz };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct nlmsghdr *h;
		int got = 0;
		ssize_t n;

		n = recvmsg(fd, &mh, 0);
		if (n < 0)
			return -errno;
		p->recvs++;
		if (mh.msg_flags & MSG_TRUNC)
			p->truncated++;
		for (h = (void *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			const struct genlmsghdr *g = NLMSG_DATA(h);
			const struct nlattr *a;
			int rem;

			if (h->nlmsg_type == NLMSG_DONE) {
				p->done = 1;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				p->error = -*(int *)NLMSG_DATA(h);
				p->done = 1;
				break;
			}
			if (h->nlmsg_type != fam)
				continue;
			got++;
			p->msgs++;
			p->bytes += NLMSG_ALIGN(h->nlmsg_len);
			if (h->nlmsg_flags & NLM_F_MULTI)
				p->multi++;
			for_attrs(a, (char *)g + GENL_HDRLEN,
				  h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), rem)
				if (a->nla_type == EMUHBA_A_ADAPTER_ID &&
				    p->n < 256)
					p->ids[p->n++] =
						*(const __u32 *)((char *)a +
								 NLA_HDRLEN);
		}
		if (got)
			p->parts++;
	}
	return 0;
}

static int set_backend(int fd, int fam, __u32 id, const char *path)
{
	struct reply rep;
	struct req r;

	req_init(&r, fam, EMUHBA_CMD_BACKEND_SET, 0);
	put_u32(&r, EMUHBA_A_ADAPTER_ID, id);
	put_str(&r, EMUHBA_A_ADAPTER_BACKEND, path);
	if (talk(fd, &r, &rep, NULL, NULL, BUF_SIZE, NULL))
		return -1;
	return rep.error ? -rep.error : 0;
}

FIXTURE(dump)
{
	int fd;
	struct fam f;
	struct adapters all;	/* from one big-buffer dump */
	int restore;
};

FIXTURE_SETUP(dump)
{
	struct reply rep;
	struct req r;

	self->fd = nl_open();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, resolve(self->fd, &self->f)) {
		TH_LOG("family %s not registered", EMUHBA_FAMILY_NAME);
	}
	memset(&self->all, 0, sizeof(self->all));
	req_init(&r, self->f.id, EMUHBA_CMD_ADAPTER_GET, NLM_F_DUMP);
	ASSERT_EQ(0, talk(self->fd, &r, &rep, adapter_cb, &self->all,
			  BUF_SIZE, NULL));
	ASSERT_EQ(0, rep.error);
	ASSERT_LT(self->all.n, 64) TH_LOG("more adapters than the test keeps");
}

FIXTURE_TEARDOWN(dump)
{
	for (int i = 0; i < self->all.n && self->restore; i++)
		set_backend(self->fd, self->f.id, self->all.a[i].id,
			    self->all.a[i].backend);
	if (self->fd > 0)
		close(self->fd);
}

TEST_F(dump, every_adapter_once_across_parts)
{
	char longpath[EMUHBA_BACKEND_MAX_LEN + 1];
	struct adapter one;
	struct parts p;
	struct reply rep;
	int fd, per, need;

	/* Large messages: the longest backend path the family accepts. */
	memset(longpath, 'b', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = 0;
	self->restore = 1;
	for (int i = 0; i < self->all.n; i++)
		ASSERT_EQ(0, set_backend(self->fd, self->f.id,
					 self->all.a[i].id, longpath));

	/* A fresh socket: its receive size is what this test reads with. */
	fd = nl_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, dump_parts(fd, self->f.id, SMALL_BUF, &p));
	close(fd);
	EXPECT_EQ(0, p.error);
	EXPECT_EQ(0, p.truncated) TH_LOG("a part did not fit %d bytes",
					 SMALL_BUF);
	EXPECT_EQ(p.msgs, p.multi);

	/* Every adapter exactly once, in id order, none added or lost. */
	EXPECT_EQ(self->all.n, p.n);
	for (int i = 0; i < p.n; i++) {
		int seen = 0;

		for (int j = 0; j < p.n; j++)
			seen += p.ids[j] == p.ids[i];
		EXPECT_EQ(1, seen) TH_LOG("adapter id %u seen %d times",
					  p.ids[i], seen);
		if (i)
			EXPECT_LT(p.ids[i - 1], p.ids[i]);
	}
	for (int i = 0; i < self->all.n; i++) {
		int seen = 0;

		for (int j = 0; j < p.n; j++)
			seen += p.ids[j] == self->all.a[i].id;
		EXPECT_EQ(1, seen) TH_LOG("%s (id %u) seen %d times",
					  self->all.a[i].bdf,
					  self->all.a[i].id, seen);
		/* And each one really carries the long backend. */
		ASSERT_EQ(0, get_adapter(self->fd, self->f.id,
					 self->all.a[i].bdf, &one, &rep));
		EXPECT_STREQ(longpath, one.backend);
	}

	/* How many adapters one part holds at most, from their size. */
	per = p.n ? (int)(p.bytes / p.n) : 0;
	need = per ? SMALL_BUF / per + 1 : 0;
	TH_LOG("%d adapters (%ld bytes, %d each) in %d parts (%d recv() calls of %d bytes)",
	       p.n, p.bytes, per, p.parts, p.recvs, SMALL_BUF);
	ASSERT_LE(2, p.parts) {
		TH_LOG("the dump fitted in one part: %d adapters are too few to test a multi-part dump, at least %d are needed (boot the test VM with more VFs: selftests/vm/run --nvme-vfs N)",
		       self->all.n, need);
	}
}

TEST_HARNESS_MAIN
