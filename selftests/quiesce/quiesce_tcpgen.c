// SPDX-License-Identifier: GPL-2.0-only
/*
 * TCP workload for the quiescer tests: "send PORT" serves a stream whose
 * every 8-byte word is its own offset; "recv ADDR PORT MS" reads it for MS
 * milliseconds, verifies every byte, and reports the stalls (intervals
 * longer than 100 ms without data) in CLOCK_MONOTONIC milliseconds; "now"
 * prints that clock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#define STALL_MS	100
#define MAX_STALLS	32

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int do_send(const char *port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	uint64_t buf[8192], off = 0;
	struct addrinfo *ai;
	int ls, fd, one = 1;
	size_t i;

	signal(SIGPIPE, SIG_IGN);
	if (getaddrinfo(NULL, port, &hints, &ai))
		return 1;
	ls = socket(AF_INET6, SOCK_STREAM, 0);
	if (ls < 0)
		return 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	{
		struct sockaddr_in6 a = { .sin6_family = AF_INET6,
					  .sin6_port = htons(atoi(port)) };
		int zero = 0;

		setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 4))
			return 1;
	}
	freeaddrinfo(ai);
	fd = accept(ls, NULL, NULL);
	if (fd < 0)
		return 1;
	for (;;) {
		ssize_t n;

		for (i = 0; i < sizeof(buf) / 8; i++)
			buf[i] = off / 8 + i;
		n = write(fd, buf, sizeof(buf));
		if (n <= 0)
			return 0;
		/* Keep the pattern aligned: resend the tail of a short write. */
		while ((size_t)n < sizeof(buf)) {
			ssize_t m = write(fd, (char *)buf + n, sizeof(buf) - n);

			if (m <= 0)
				return 0;
			n += m;
		}
		off += sizeof(buf);
	}
}

static int do_recv(const char *addr, const char *port, long ms)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM };
	double t0, last, stall[MAX_STALLS][2];
	unsigned char word[8];
	uint64_t off = 0, bad = 0;
	int fd, nstall = 0, wl = 0;
	struct addrinfo *ai;
	static unsigned char buf[65536];

	if (getaddrinfo(addr, port, &hints, &ai))
		return 1;
	/* The sender may still be starting (slow under emulation). */
	for (int i = 0;; i++) {
		fd = socket(ai->ai_family, SOCK_STREAM, 0);
		if (fd >= 0 && !connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		if (i == 100) {
			perror("connect");
			return 1;
		}
		close(fd);
		usleep(100000);
	}
	freeaddrinfo(ai);
	printf("connected\n");
	fflush(stdout);
	t0 = now_ms();
	last = t0;
	while (now_ms() - t0 < ms) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n, i;
		double t;

		if (poll(&p, 1, 10) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0) {
			printf("eof after %llu bytes\n",
			       (unsigned long long)off);
			return 1;
		}
		t = now_ms();
		if (t - last > STALL_MS && nstall < MAX_STALLS) {
			stall[nstall][0] = last;
			stall[nstall][1] = t;
			nstall++;
		}
		last = t;
		for (i = 0; i < n; i++) {
			word[wl++] = buf[i];
			if (wl == 8) {
				uint64_t v;

				memcpy(&v, word, 8);
				if (v != off / 8)
					bad++;
				off += 8;
				wl = 0;
			}
		}
	}
	printf("bytes %llu bad_words %llu stalls %d\n",
	       (unsigned long long)off, (unsigned long long)bad, nstall);
	for (int i = 0; i < nstall; i++)
		printf("stall %.3f %.3f %.3f\n", stall[i][0], stall[i][1],
		       stall[i][1] - stall[i][0]);
	return bad ? 2 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "now")) {
		printf("%.3f\n", now_ms());
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "send"))
		return do_send(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "recv"))
		return do_recv(argv[2], argv[3], atol(argv[4]));
	fprintf(stderr, "usage: %s send PORT | recv ADDR PORT MS | now\n", argv[0]);
	return 2;
}
