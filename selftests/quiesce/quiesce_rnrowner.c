// SPDX-License-Identifier: GPL-2.0-only
/*
 * A process that owns an RDMA RC queue pair and embeds the rnr_agent, as a
 * userspace storage target would: the responder of a verified SEND stream
 * from quiesce_rnrpeer, re-posting every consumed receive through
 * rnr_agent_post_recv(). hbamig pauses it from outside, through SOCKET.
 *
 *   quiesce_rnrowner RDMADEV PORT COUNT SIZE SOCKET MAX_MS [PAUSE_TIMER]
 *
 * The QP's own min_rnr_timer is code 12 (0.64 ms); PAUSE_TIMER (a code,
 * 0 keeps it) is what the agent sets for a pause. Prints the agent's
 * replies and lease endings as "agent AT_MS LINE", then
 * "received N bad B qp STATE".
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "quiesce_rnr.h"
#include "rnr_agent.h"

#define OWN_RNR_TIMER	12

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void agent_log(void *arg, const char *line)
{
	(void)arg;
	printf("agent %.3f %.*s\n", now_ms(), (int)strcspn(line, "\n"), line);
	fflush(stdout);
}

static int post(struct rnr_agent *a, struct quiesce_rnr_qp *q, int slot)
{
	struct ibv_recv_wr wr, *bad;
	struct ibv_sge sge;

	quiesce_rnr_recv_wr(q, slot, &sge, &wr);
	return rnr_agent_post_recv(a, q->qp, &wr, &bad);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct rnr_agent_opts o = { .log = agent_log };
	struct quiesce_rnr_info remote;
	struct quiesce_rnr_qp q;
	struct rnr_agent *a;
	long count, size, recvd = 0, bad = 0;
	int ls, fd, one = 1, i, timer = 0, err = 0;
	double t;

	if (argc != 7 && argc != 8) {
		fprintf(stderr,
			"usage: %s RDMADEV PORT COUNT SIZE SOCKET MAX_MS [PAUSE_TIMER]\n",
			argv[0]);
		return 2;
	}
	count = atol(argv[3]);
	size = atol(argv[4]);
	o.path = argv[5];
	o.max_ms = atol(argv[6]);
	if (argc == 8)
		timer = atoi(argv[7]);
	if (quiesce_rnr_open(&q, argv[1], size, 4)) {
		fprintf(stderr, "rnrowner: cannot open %s\n", argv[1]);
		return 1;
	}
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_port = htons(atoi(argv[2]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) || listen(ls, 1)) {
		perror("rnrowner: listen");
		return 1;
	}
	fd = accept(ls, NULL, NULL);
	close(ls);
	if (fd < 0 || quiesce_rnr_xchg(fd, &q.local, &remote) ||
	    quiesce_rnr_connect(&q, &remote, OWN_RNR_TIMER, 7)) {
		fprintf(stderr, "rnrowner: connection setup failed\n");
		return 1;
	}
	/* The socket appears only once the QP is there to be paused. */
	err = rnr_agent_start(&o, &a);
	if (!err)
		err = rnr_agent_add_qp(a, q.qp, timer);
	if (err) {
		fprintf(stderr, "rnrowner: agent: %s\n", strerror(-err));
		return 1;
	}
	for (i = 0; i < 4 && !err; i++)
		err = post(a, &q, i);
	if (err || write(fd, "G", 1) != 1) {
		fprintf(stderr, "rnrowner: start failed\n");
		return 1;
	}
	printf("owner ready qp %u\n", q.local.qpn);
	fflush(stdout);

	while (recvd < count) {
		struct ibv_wc wc;
		int n;

		t = now_ms();
		while (!(n = ibv_poll_cq(q.cq, 1, &wc)) && now_ms() - t < 60000)
			usleep(50);
		if (n <= 0 || wc.status != IBV_WC_SUCCESS) {
			fprintf(stderr, "rnrowner: message %ld: %s\n", recvd,
				n < 0 ? "poll failed" : !n ? "timed out" :
				ibv_wc_status_str(wc.status));
			err = 1;
			break;
		}
		if (!quiesce_rnr_check(q.buf + wc.wr_id * size, size, recvd))
			bad++;
		recvd++;
		if (post(a, &q, wc.wr_id)) {
			fprintf(stderr, "rnrowner: post failed\n");
			err = 1;
			break;
		}
	}
	printf("received %ld bad %ld qp %s\n", recvd, bad,
	       quiesce_rnr_state(&q));
	fflush(stdout);
	/* Let the peer see the stream end before the QP goes. */
	if (write(fd, "D", 1) != 1)
		err = 1;
	close(fd);
	rnr_agent_stop(a);
	quiesce_rnr_close(&q);
	return err || bad || recvd != count;
}
