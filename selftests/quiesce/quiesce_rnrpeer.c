// SPDX-License-Identifier: GPL-2.0-only
/*
 * The sending peer of the RNR test: an RC requester with rnr_retry 7 that
 * SENDs a verified stream of COUNT messages of SIZE bytes to
 * "hbamig quiesce rnr" and reports every completion error and the longest
 * time one message took (the pause it rode out by RNR retries).
 *
 *   quiesce_rnrpeer RDMADEV HOST PORT COUNT SIZE [GAP_US]
 *
 * GAP_US paces the stream (a pause then lands mid-stream however fast the
 * device is); every message that took over 100 ms is printed as
 * "stall START_MS END_MS" (CLOCK_MONOTONIC), for the tests to place it.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "quiesce_rnr.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	struct quiesce_rnr_info remote;
	struct quiesce_rnr_qp q;
	double t, max_ms = 0, max_at = 0;
	long count, size, i, errors = 0;
	long gap_us;
	char c;
	int fd;

	if (argc != 6 && argc != 7) {
		fprintf(stderr, "usage: %s RDMADEV HOST PORT COUNT SIZE [GAP_US]\n",
			argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	count = atol(argv[4]);
	size = atol(argv[5]);
	gap_us = argc == 7 ? atol(argv[6]) : 0;
	if (quiesce_rnr_open(&q, argv[1], size, 1)) {
		fprintf(stderr, "rnrpeer: cannot open %s\n", argv[1]);
		return 1;
	}
	if (getaddrinfo(argv[2], argv[3], &hints, &ai))
		return 1;
	for (i = 0; i < 100; i++) {
		fd = socket(ai->ai_family, SOCK_STREAM, 0);
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		close(fd);
		usleep(100000);
	}
	freeaddrinfo(ai);
	if (i == 100 || quiesce_rnr_xchg(fd, &q.local, &remote) ||
	    quiesce_rnr_connect(&q, &remote, 1, 7) ||
	    read(fd, &c, 1) != 1 || c != 'G') {
		fprintf(stderr, "rnrpeer: connection setup failed\n");
		return 1;
	}
	/* One SEND at a time: its completion time is the stall it saw. */
	for (i = 0; i < count; i++) {
		struct ibv_sge sge = {
			.addr = (uintptr_t)q.buf, .length = size,
			.lkey = q.mr->lkey,
		};
		struct ibv_send_wr wr = {
			.wr_id = i, .sg_list = &sge, .num_sge = 1,
			.opcode = IBV_WR_SEND, .send_flags = IBV_SEND_SIGNALED,
		}, *bad;
		struct ibv_wc wc;
		int n;

		quiesce_rnr_fill(q.buf, size, i);
		t = now_ms();
		if (ibv_post_send(q.qp, &wr, &bad)) {
			errors++;
			break;
		}
		/* Not a bare spin: the test VM shares one CPU between everyone. */
		while (!(n = ibv_poll_cq(q.cq, 1, &wc)))
			usleep(20);
		if (n < 0 || wc.status != IBV_WC_SUCCESS) {
			fprintf(stderr, "rnrpeer: message %ld: %s\n", i,
				n < 0 ? "poll failed" :
					ibv_wc_status_str(wc.status));
			errors++;
			break;
		}
		if (now_ms() - t > 100)
			printf("stall %.3f %.3f\n", t, now_ms());
		if (now_ms() - t > max_ms) {
			max_ms = now_ms() - t;
			max_at = t;
		}
		if (gap_us)
			usleep(gap_us);
	}
	printf("sent %ld errors %ld longest %.3f ms from %.3f qp %s\n", i,
	       errors, max_ms, max_at, quiesce_rnr_state(&q));
	if (read(fd, &c, 1) != 1)
		errors++;
	close(fd);
	quiesce_rnr_close(&q);
	return errors ? 1 : 0;
}
