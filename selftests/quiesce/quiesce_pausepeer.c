// SPDX-License-Identifier: GPL-2.0-only
/*
 * A link partner that honours 802.3x PAUSE and 802.1Qbb PFC in software,
 * as a NIC's MAC does in hardware (veth does not): it sends a data frame
 * of priority PRIO every INTERVAL_US, stops while a received PAUSE, or a
 * PFC frame enabling PRIO, has quanta left, and restarts on XON (quanta 0)
 * or when the quanta expire.
 *
 *   quiesce_pausepeer IFNAME PRIO MBPS DURATION_MS INTERVAL_US
 *
 * Prints "gap START_MS END_MS LENGTH_MS xon|expired" for every stop, in
 * CLOCK_MONOTONIC milliseconds, then "sent N frames".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

#define ETH_P_MACC	0x8808
#define ETH_P_DATA	0x88b5	/* local experimental */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET };
	double t_end, pause_until = 0, gap_start = 0, interval_ms, t, next;
	unsigned long long sent = 0;
	int rx, tx, prio, ifindex;
	uint8_t frame[64] = {};
	long mbps;
	bool paused = false;

	if (argc != 6) {
		fprintf(stderr, "usage: %s IFNAME PRIO MBPS DURATION_MS INTERVAL_US\n",
			argv[0]);
		return 2;
	}
	ifindex = if_nametoindex(argv[1]);
	prio = atoi(argv[2]);
	mbps = atol(argv[3]);
	t_end = now_ms() + atol(argv[4]);
	interval_ms = atol(argv[5]) / 1e3;
	if (!ifindex || prio < 0 || prio > 7 || mbps <= 0)
		return 2;

	rx = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_MACC));
	tx = socket(AF_PACKET, SOCK_RAW, 0);
	if (rx < 0 || tx < 0) {
		perror("socket");
		return 1;
	}
	sll.sll_ifindex = ifindex;
	sll.sll_protocol = htons(ETH_P_MACC);
	if (bind(rx, (struct sockaddr *)&sll, sizeof(sll))) {
		perror("bind");
		return 1;
	}
	/* Broadcast, VLAN 0 tagged with the priority (PCP) it belongs to. */
	memset(frame, 0xff, 6);
	frame[12] = 0x81;
	frame[13] = 0x00;
	frame[14] = prio << 5;
	frame[16] = ETH_P_DATA >> 8;
	frame[17] = ETH_P_DATA & 0xff;
	sll.sll_protocol = htons(ETH_P_DATA);
	sll.sll_halen = ETH_ALEN;
	memset(sll.sll_addr, 0xff, ETH_ALEN);

	next = now_ms();
	while ((t = now_ms()) < t_end) {
		struct pollfd p = { .fd = rx, .events = POLLIN };
		int wait = (int)(next - t);
		uint8_t f[128];
		ssize_t n;

		if (poll(&p, 1, wait > 0 ? wait : 0) > 0) {
			n = recv(rx, f, sizeof(f), 0);
			t = now_ms();
			if (n >= 18 && f[12] == 0x88 && f[13] == 0x08) {
				uint16_t op = f[14] << 8 | f[15];
				long q = -1;

				if (op == 0x0001)
					q = f[16] << 8 | f[17];
				else if (op == 0x0101 && n >= 34 &&
					 ((f[16] << 8 | f[17]) & (1 << prio)))
					q = f[18 + 2 * prio] << 8 |
					    f[19 + 2 * prio];
				if (q > 0) {
					pause_until = t + q * 512.0 / mbps / 1e3;
					if (!paused) {
						paused = true;
						gap_start = t;
					}
				} else if (q == 0 && paused) {
					printf("gap %.3f %.3f %.3f xon\n",
					       gap_start, t, t - gap_start);
					paused = false;
					pause_until = 0;
				}
			}
		}
		t = now_ms();
		if (paused && t >= pause_until) {
			printf("gap %.3f %.3f %.3f expired\n", gap_start,
			       pause_until, pause_until - gap_start);
			paused = false;
		}
		if (t >= next) {
			if (!paused) {
				if (sendto(tx, frame, 60, 0,
					   (struct sockaddr *)&sll,
					   sizeof(sll)) == 60)
					sent++;
			}
			next += interval_ms;
			if (next < t)
				next = t + interval_ms;
		}
	}
	printf("sent %llu frames\n", sent);
	return 0;
}
