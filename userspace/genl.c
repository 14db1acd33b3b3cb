// SPDX-License-Identifier: GPL-2.0-only
/*
 * Netlink transport: libnl sockets for the emuhba genl family and for
 * rtnetlink, and one receive loop that hands every buffer to the parser
 * (parse.c) so that replies, dumps, ACKs and extended ACKs are decoded in
 * one place.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/emuhba.h>
#include <linux/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include "hbamig.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

int hba_set_ext_ack(struct nl_sock *sk)
{
	int fd = nl_socket_get_fd(sk), one = 1;

	/* Extended ACK carries the kernel's reason; CAP_ACK keeps ACKs short. */
	if (setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)))
		return -errno;
	return 0;
}

int hba_genl_open(struct hba_genl *g)
{
	int err;

	g->sk = nl_socket_alloc();
	if (!g->sk)
		return fail(HBAMIG_EXIT_FAIL, "out of memory");
	err = genl_connect(g->sk);
	if (err < 0) {
		nl_socket_free(g->sk);
		g->sk = NULL;
		return fail(HBAMIG_EXIT_FAIL, "cannot open a generic netlink socket: %s",
			    nl_geterror(err));
	}
	hba_set_ext_ack(g->sk);
	g->family = genl_ctrl_resolve(g->sk, EMUHBA_FAMILY_NAME);
	if (g->family < 0) {
		nl_socket_free(g->sk);
		g->sk = NULL;
		return fail(HBAMIG_EXIT_NOMOD,
			    "the emuhba generic netlink family is not registered "
			    "(is the emuhba module loaded?)");
	}
	return 0;
}

void hba_genl_close(struct hba_genl *g)
{
	if (g->sk)
		nl_socket_free(g->sk);
	g->sk = NULL;
}

struct nl_msg *hba_genl_msg(struct hba_genl *g, u8 cmd, int flags)
{
	struct nl_msg *msg = nlmsg_alloc();

	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, g->family, 0, flags,
			 cmd, EMUHBA_FAMILY_VERSION)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

/* Replies to our request only: the socket may also carry multicasts. */
struct talk_ctx {
	u32 seq;
	hba_msg_cb cb;
	void *arg;
	hba_raw_cb raw;
};

int hba_talk(struct nl_sock *sk, struct nl_msg *msg, u16 family,
	     hba_msg_cb cb, void *arg, u16 raw_type, hba_raw_cb raw,
	     struct hba_nlerr *err)
{
	struct sockaddr_nl peer;
	unsigned char *buf;
	int n, ret;

	memset(err, 0, sizeof(*err));
	ret = nl_send_auto(sk, msg);
	nlmsg_free(msg);
	if (ret < 0) {
		err->error = EIO;
		snprintf(err->msg, sizeof(err->msg), "send: %s",
			 nl_geterror(ret));
		return -EIO;
	}
	for (;;) {
		buf = NULL;
		n = nl_recv(sk, &peer, &buf, NULL);
		if (n <= 0) {
			free(buf);
			err->error = EIO;
			snprintf(err->msg, sizeof(err->msg), "receive: %s",
				 n ? nl_geterror(n) : "socket closed");
			return -EIO;
		}
		ret = hba_parse_buf(buf, n, family, cb, arg, raw_type, raw,
				    err);
		free(buf);
		if (ret < 0) {
			if (!err->error) {
				err->error = -ret;
				snprintf(err->msg, sizeof(err->msg),
					 "malformed reply from the kernel");
			}
			return ret;
		}
		if (ret == HBA_PARSE_DONE)
			return err->error ? -err->error : 0;
	}
}

int hba_genl_talk(struct hba_genl *g, struct nl_msg *msg, hba_msg_cb cb,
		  void *arg, struct hba_nlerr *err)
{
	return hba_talk(g->sk, msg, g->family, cb, arg, 0, NULL, err);
}

int hba_exit_from_errno(int err)
{
	switch (err < -4095 || err > 4095 ? -1 : err < 0 ? -err : err) {
	case 0:
		return HBAMIG_EXIT_OK;
	case EPERM:
	case EACCES:
		return HBAMIG_EXIT_PERM;
	case ENODEV:
	case ENOENT:
	case ENXIO:
		return HBAMIG_EXIT_NODEV;
	case EBUSY:
	case EALREADY:
	case EINPROGRESS:
		return HBAMIG_EXIT_BUSY;
	case EOPNOTSUPP:
		return HBAMIG_EXIT_NOTSUPP;
	default:
		return HBAMIG_EXIT_FAIL;
	}
}

int hba_report_nlerr(const char *what, const struct hba_nlerr *e)
{
	const char *hint = "";

	if (e->error == EPERM || e->error == EACCES)
		hint = " (needs CAP_NET_ADMIN)";
	if (e->msg[0])
		fprintf(stderr, "%s: %s: %s: kernel says: \"%s\"%s\n",
			hba_prog, what, strerror(e->error), e->msg, hint);
	else
		fprintf(stderr, "%s: %s: %s%s\n", hba_prog, what,
			strerror(e->error), hint);
	if (e->has_miss)
		fprintf(stderr, "%s: %s: missing attribute %u\n", hba_prog,
			what, e->miss_type);
	return hba_exit_from_errno(e->error);
}
