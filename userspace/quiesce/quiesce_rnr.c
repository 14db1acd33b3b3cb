// SPDX-License-Identifier: GPL-2.0-only
/*
 * Receiver-not-ready pause for RDMA RC queue pairs owned by this process.
 *
 * An RC responder that has no receive WQE for an incoming SEND answers with
 * an RNR NAK carrying its min_rnr_timer; the requester waits that long and
 * retries, forever when its rnr_retry is 7. So the owner of the receive
 * queue pauses its peer simply by not re-posting receives (the "gate"
 * below), and resumes it by posting them again: the next retry, one RNR
 * timer later, succeeds. Nothing is lost and no QP leaves RTS.
 *
 * It is a lease because the gate re-opens itself at the deadline, and the
 * receive queue belongs to the owning process: if that process dies, its
 * QPs die with it. A peer with rnr_retry below 7 fails its QP after
 * rnr_retry * min_rnr_timer: that product is the budget of the pause.
 *
 * "hbamig quiesce rnr" runs the responder side of a verified SEND stream
 * against a peer process (selftests/quiesce/quiesce_rnrpeer) and pauses it
 * mid-stream: a measurement and a check of the device and the peer's
 * settings. Queue pairs of other processes cannot be reached from outside:
 * they are paused through the rnr_agent their owner embeds
 * (rnr_agent.h; "hbamig quiesce rnr --agent", quiesce_rnr_agent.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <infiniband/verbs.h>

#include "quiesce.h"
#include "quiesce_rnr.h"

/* RNR NAK timer codes (IBA table 45) in microseconds. */
static const unsigned int rnr_us[32] = {
	655360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960,
	1280, 1920, 2560, 3840, 5120, 7680, 10240, 15360, 20480, 30720,
	40960, 61440, 81920, 122880, 163840, 245760, 327680, 491520
};

unsigned int quiesce_rnr_timer_us(uint8_t code)
{
	return rnr_us[code & 31];
}

/* An IPv4-mapped (RoCEv2) GID of port 1: what both ends address. */
static int find_gid(struct ibv_context *ctx, union ibv_gid *gid)
{
	struct ibv_port_attr pa;
	int i;

	if (ibv_query_port(ctx, 1, &pa))
		return -errno;
	for (i = 0; i < pa.gid_tbl_len; i++) {
		static const uint8_t v4[12] = { [10] = 0xff, [11] = 0xff };

		if (ibv_query_gid(ctx, 1, i, gid))
			continue;
		if (!memcmp(gid->raw, v4, sizeof(v4)))
			return i;
	}
	return -ENOENT;
}

int quiesce_rnr_open(struct quiesce_rnr_qp *q, const char *dev, size_t size,
		     int depth)
{
	struct ibv_device **list;
	struct ibv_qp_init_attr ia = {};
	int i, n;

	memset(q, 0, sizeof(*q));
	list = ibv_get_device_list(&n);
	if (!list)
		return -ENODEV;
	for (i = 0; i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), dev))
			q->ctx = ibv_open_device(list[i]);
	ibv_free_device_list(list);
	if (!q->ctx)
		return -ENODEV;
	q->gid_index = find_gid(q->ctx, &q->gid);
	if (q->gid_index < 0)
		return q->gid_index;
	q->size = size;
	q->depth = depth;
	q->buf = calloc(depth + 1, size);
	q->pd = ibv_alloc_pd(q->ctx);
	if (!q->buf || !q->pd)
		return -ENOMEM;
	q->mr = ibv_reg_mr(q->pd, q->buf, (depth + 1) * size,
			   IBV_ACCESS_LOCAL_WRITE);
	q->cq = ibv_create_cq(q->ctx, 2 * depth + 2, NULL, NULL, 0);
	if (!q->mr || !q->cq)
		return -errno ? -errno : -ENOMEM;
	ia.send_cq = q->cq;
	ia.recv_cq = q->cq;
	ia.qp_type = IBV_QPT_RC;
	ia.cap.max_send_wr = depth + 1;
	ia.cap.max_recv_wr = depth + 1;
	ia.cap.max_send_sge = 1;
	ia.cap.max_recv_sge = 1;
	q->qp = ibv_create_qp(q->pd, &ia);
	if (!q->qp)
		return -errno ? -errno : -EINVAL;
	q->local.qpn = q->qp->qp_num;
	q->local.psn = 0x1000 + (getpid() & 0xfff);
	memcpy(q->local.gid, q->gid.raw, 16);
	return 0;
}

/*
 * INIT -> RTR -> RTS towards @remote. @min_rnr_timer is what this end
 * tells a sender it NAKs; @rnr_retry how often this end retries (7: ever).
 */
int quiesce_rnr_connect(struct quiesce_rnr_qp *q,
			const struct quiesce_rnr_info *remote,
			uint8_t min_rnr_timer, uint8_t rnr_retry)
{
	struct ibv_qp_attr a = {};

	a.qp_state = IBV_QPS_INIT;
	a.pkey_index = 0;
	a.port_num = 1;
	a.qp_access_flags = 0;
	if (ibv_modify_qp(q->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		return -errno;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = IBV_MTU_1024;
	a.dest_qp_num = remote->qpn;
	a.rq_psn = remote->psn;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = min_rnr_timer;
	a.ah_attr.is_global = 1;
	a.ah_attr.port_num = 1;
	a.ah_attr.grh.hop_limit = 1;
	a.ah_attr.grh.sgid_index = q->gid_index;
	memcpy(a.ah_attr.grh.dgid.raw, remote->gid, 16);
	if (ibv_modify_qp(q->qp, &a, IBV_QP_STATE | IBV_QP_AV |
			  IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		return -errno;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = rnr_retry;
	a.sq_psn = q->local.psn;
	a.max_rd_atomic = 1;
	if (ibv_modify_qp(q->qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
			  IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
			  IBV_QP_MAX_QP_RD_ATOMIC))
		return -errno;
	return 0;
}

void quiesce_rnr_close(struct quiesce_rnr_qp *q)
{
	if (q->qp)
		ibv_destroy_qp(q->qp);
	if (q->cq)
		ibv_destroy_cq(q->cq);
	if (q->mr)
		ibv_dereg_mr(q->mr);
	if (q->pd)
		ibv_dealloc_pd(q->pd);
	if (q->ctx)
		ibv_close_device(q->ctx);
	free(q->buf);
	memset(q, 0, sizeof(*q));
}

const char *quiesce_rnr_state(struct quiesce_rnr_qp *q)
{
	static const char *const names[] = {
		"RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR"
	};
	struct ibv_qp_init_attr ia;
	struct ibv_qp_attr a;

	if (ibv_query_qp(q->qp, &a, IBV_QP_STATE, &ia))
		return "?";
	return a.qp_state <= IBV_QPS_ERR ? names[a.qp_state] : "?";
}

void quiesce_rnr_recv_wr(const struct quiesce_rnr_qp *q, int slot,
			 struct ibv_sge *sge, struct ibv_recv_wr *wr)
{
	*sge = (struct ibv_sge){
		.addr = (uintptr_t)q->buf + slot * q->size,
		.length = q->size,
		.lkey = q->mr->lkey,
	};
	*wr = (struct ibv_recv_wr){ .wr_id = slot, .sg_list = sge,
				    .num_sge = 1 };
}

/* Post receive slot @slot (0 .. depth-1) with wr_id = slot. */
int quiesce_rnr_post_recv(struct quiesce_rnr_qp *q, int slot)
{
	struct ibv_recv_wr wr, *bad;
	struct ibv_sge sge;

	quiesce_rnr_recv_wr(q, slot, &sge, &wr);
	return ibv_post_recv(q->qp, &wr, &bad) ? -errno : 0;
}

int quiesce_rnr_xchg(int fd, const struct quiesce_rnr_info *local,
		     struct quiesce_rnr_info *remote)
{
	struct quiesce_rnr_info l = *local;
	size_t got = 0;

	l.qpn = htonl(l.qpn);
	l.psn = htonl(l.psn);
	if (write(fd, &l, sizeof(l)) != sizeof(l))
		return -EIO;
	while (got < sizeof(*remote)) {
		ssize_t n = read(fd, (char *)remote + got,
				 sizeof(*remote) - got);

		if (n <= 0)
			return -EIO;
		got += n;
	}
	remote->qpn = ntohl(remote->qpn);
	remote->psn = ntohl(remote->psn);
	return 0;
}

/* Message @seq of the verified stream: 32-bit words seq * 0x9e3779b1 + i. */
void quiesce_rnr_fill(void *buf, size_t size, uint32_t seq)
{
	uint32_t *w = buf;
	size_t i;

	for (i = 0; i < size / 4; i++)
		w[i] = seq * 0x9e3779b1u + i;
}

bool quiesce_rnr_check(const void *buf, size_t size, uint32_t seq)
{
	const uint32_t *w = buf;
	size_t i;

	for (i = 0; i < size / 4; i++)
		if (w[i] != seq * 0x9e3779b1u + i)
			return false;
	return true;
}

static long hw_counter(const char *dev, const char *name)
{
	char path[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path),
		 "/sys/class/infiniband/%s/ports/1/hw_counters/%s", dev, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

enum {
	OPT_DEV = 256, OPT_PORT, OPT_MSGS, OPT_SIZE, OPT_AFTER, OPT_FOR,
	OPT_LEASE, OPT_TIMER, OPT_DEPTH,
};

static const struct option rnr_opts[] = {
	{ "dev",		required_argument, NULL, OPT_DEV },
	{ "port",		required_argument, NULL, OPT_PORT },
	{ "msgs",		required_argument, NULL, OPT_MSGS },
	{ "size",		required_argument, NULL, OPT_SIZE },
	{ "pause-after",	required_argument, NULL, OPT_AFTER },
	{ "for",		required_argument, NULL, OPT_FOR },
	{ "lease",		required_argument, NULL, OPT_LEASE },
	{ "min-rnr-timer",	required_argument, NULL, OPT_TIMER },
	{ "depth",		required_argument, NULL, OPT_DEPTH },
	{ NULL, 0, NULL, 0 }
};

/* Wait for one completion; returns its wr_id, or a negative errno. */
static long poll_one(struct quiesce_rnr_qp *q, long timeout_ms,
		     enum ibv_wc_status *st)
{
	uint64_t t0 = quiesce_now_ns();
	struct ibv_wc wc;
	int n;

	for (;;) {
		n = ibv_poll_cq(q->cq, 1, &wc);
		if (n < 0)
			return -EIO;
		if (n) {
			*st = wc.status;
			return wc.wr_id;
		}
		if (quiesce_ms_since(t0) > timeout_ms)
			return -ETIMEDOUT;
		usleep(50);
	}
}

int quiesce_rnr_main(int argc, char **argv, bool json)
{
	long msgs = 200, size = 4096, after = 50, for_ms = 1000, lease_ms = 0;
	long timer = 18, depth = 4, port = 18515, recvd = 0, bad = 0;
	long rnr0, rnr1, slot;
	double pause_ms = -1, resume_ms = -1, held_ms, first_ms = -1;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct quiesce_rnr_info remote;
	struct quiesce_rnr_qp q;
	enum ibv_wc_status st = IBV_WC_SUCCESS;
	const char *dev = NULL;
	uint64_t t_pause = 0, t_paused = 0, t_resume = 0, t_end;
	int c, ls, fd, one = 1, err, posted, i;
	bool gate_open = true;

	/* The cooperative path has its own grammar: see quiesce_rnr_agent.c. */
	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--agent") ||
		    !strncmp(argv[i], "--agent=", 8))
			return quiesce_rnr_agent_main(argc, argv, json);
	optind = 0;
	while ((c = getopt_long(argc, argv, "", rnr_opts, NULL)) != -1) {
		switch (c) {
		case OPT_DEV:
			dev = optarg;
			break;
		case OPT_PORT:
			port = atol(optarg);
			break;
		case OPT_MSGS:
			msgs = atol(optarg);
			break;
		case OPT_SIZE:
			size = atol(optarg);
			break;
		case OPT_AFTER:
			after = atol(optarg);
			break;
		case OPT_FOR:
			for_ms = atol(optarg);
			break;
		case OPT_LEASE:
			lease_ms = atol(optarg);
			break;
		case OPT_TIMER:
			timer = atol(optarg);
			break;
		case OPT_DEPTH:
			depth = atol(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (!dev || optind != argc || msgs <= after || size < 4 ||
	    size > 1 << 20 || timer < 0 || timer > 31 || depth < 1 ||
	    depth > 64 || for_ms < 0)
		goto usage;
	if (!lease_ms)
		lease_ms = for_ms + 1000;
	if (lease_ms > QUIESCE_LEASE_MAX_MS || for_ms > lease_ms)
		goto usage;

	err = quiesce_rnr_open(&q, dev, size, depth);
	if (err) {
		fprintf(stderr, "hbamig: quiesce: rnr: %s: %s\n", dev,
			strerror(-err));
		quiesce_rnr_close(&q);
		return QUIESCE_EXIT_FAIL;
	}
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_port = htons(port);
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) || listen(ls, 1)) {
		perror("hbamig: quiesce: rnr: listen");
		return QUIESCE_EXIT_FAIL;
	}
	if (!json)
		printf("rnr: %s QP %u waiting for the peer on port %ld\n", dev,
		       q.local.qpn, port);
	fflush(stdout);
	fd = accept(ls, NULL, NULL);
	close(ls);
	if (fd < 0 || quiesce_rnr_xchg(fd, &q.local, &remote)) {
		fprintf(stderr, "hbamig: quiesce: rnr: exchange failed\n");
		return QUIESCE_EXIT_FAIL;
	}
	/* Receives first, then RTR: nothing may arrive to an empty queue. */
	err = quiesce_rnr_connect(&q, &remote, timer, 7);
	for (i = 0; !err && i < depth; i++)
		err = quiesce_rnr_post_recv(&q, i);
	posted = depth;
	/* Tell the peer it may start. */
	if (err || write(fd, "G", 1) != 1) {
		fprintf(stderr, "hbamig: quiesce: rnr: connect: %s\n",
			strerror(-err));
		return QUIESCE_EXIT_FAIL;
	}
	rnr0 = hw_counter(dev, "send_rnr_err");

	while (recvd < msgs) {
		long to = 30000;

		if (!gate_open) {
			uint64_t now = quiesce_now_ns();

			/* Held: the deadline re-opens the gate by itself. */
			t_end = (t_paused ? t_paused : t_pause) +
				(uint64_t)for_ms * 1000000;
			if (now >= t_end || now >= t_pause +
			    (uint64_t)lease_ms * 1000000) {
				t_resume = quiesce_now_ns();
				for (i = 0; i < depth; i++)
					quiesce_rnr_post_recv(&q, i);
				posted = depth;
				gate_open = true;
				resume_ms = quiesce_ms_since(t_resume);
				continue;
			}
			to = (t_end - now) / 1000000 + 1;
		}
		slot = poll_one(&q, to, &st);
		if (slot == -ETIMEDOUT && !gate_open)
			continue;
		if (slot < 0 || st != IBV_WC_SUCCESS) {
			fprintf(stderr,
				"hbamig: quiesce: rnr: completion error: %s\n",
				slot < 0 ? strerror(-slot) :
					   ibv_wc_status_str(st));
			break;
		}
		if (!quiesce_rnr_check(q.buf + slot * size, size, recvd))
			bad++;
		recvd++;
		posted--;
		if (t_resume && first_ms < 0)
			first_ms = quiesce_ms_since(t_resume);
		if (recvd == after) {
			/* Close the gate: what is posted drains, then RNR. */
			t_pause = quiesce_now_ns();
			gate_open = false;
		}
		if (gate_open) {
			quiesce_rnr_post_recv(&q, slot);
			posted++;
		} else if (!posted) {
			t_paused = quiesce_now_ns();
			pause_ms = (t_paused - t_pause) / 1e6;
		}
	}
	held_ms = t_resume && t_paused ? (t_resume - t_paused) / 1e6 : 0;
	rnr1 = hw_counter(dev, "send_rnr_err");
	if (json)
		printf("{\"event\":\"resumed\",\"kind\":\"rnr\",\"dev\":\"%s\",\"min_rnr_timer\":%ld,\"rnr_timer_us\":%u,\"depth\":%ld,\"lease_ms\":%ld,\"pause_ms\":%.3f,\"held_ms\":%.3f,\"resume_ms\":%.3f,\"first_msg_after_resume_ms\":%.3f,\"msgs\":%ld,\"bad\":%ld,\"rnr_naks_sent\":%ld,\"qp_state\":\"%s\"}\n",
		       dev, timer, quiesce_rnr_timer_us(timer), depth, lease_ms,
		       pause_ms, held_ms, resume_ms, first_ms, recvd, bad,
		       rnr0 >= 0 ? rnr1 - rnr0 : -1L, quiesce_rnr_state(&q));
	else
		printf("rnr: %ld messages (%ld bad), paused in %.3f ms, held %.1f ms, resumed in %.3f ms, first message %.3f ms later, %ld RNR NAKs sent, QP %s\n",
		       recvd, bad, pause_ms, held_ms, resume_ms, first_ms,
		       rnr0 >= 0 ? rnr1 - rnr0 : -1L, quiesce_rnr_state(&q));
	/* Let the peer see the stream end before the QP goes. */
	if (write(fd, "D", 1) != 1)
		bad++;
	close(fd);
	quiesce_rnr_close(&q);
	return recvd == msgs && !bad ? QUIESCE_EXIT_OK : QUIESCE_EXIT_FAIL;
usage:
	fprintf(stderr,
		"Usage: hbamig quiesce rnr --dev RDMADEV [--port TCP] [--msgs N] [--size B]\n"
		"          [--pause-after N] [--for MS] [--lease MS] [--min-rnr-timer CODE]\n"
		"          [--depth N]\n"
		"       hbamig quiesce rnr --agent SOCKET [--max-ms MS] [--for MS]\n");
	return QUIESCE_EXIT_USAGE;
}
