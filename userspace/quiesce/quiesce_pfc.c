// SPDX-License-Identifier: GPL-2.0-only
/*
 * 802.3x PAUSE and 802.1Qbb PFC frames: a link partner that honours them
 * stops transmitting (all traffic, or the enabled priorities) for the
 * advertised quanta, one quantum being 512 bit times at the link speed.
 * The pause is a lease by construction: it lasts only as long as frames
 * keep coming, so the helper refreshes before the quanta expire and the
 * peer resumes by itself at most one quanta time after the helper stops
 * (normally, or by dying). Resume sends the same frame with quanta 0
 * (XON) so the peer restarts at once.
 *
 * veth and Linux bridges do not act on these frames (a bridge does not
 * even forward 01:80:c2:00:00:01); only a NIC's MAC, or a peer that
 * honours them in software, stops transmitting.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>

#include "quiesce.h"

#define QUIESCE_ETH_P_MACC	0x8808
#define QUIESCE_MACC_PAUSE	0x0001
#define QUIESCE_MACC_PFC	0x0101
#define QUIESCE_MIN_FRAME	60	/* without FCS */

static const uint8_t quiesce_macc_dst[ETH_ALEN] = {
	0x01, 0x80, 0xc2, 0x00, 0x00, 0x01
};

struct quiesce_pfc {
	int		fd;
	int		ifindex;
	uint8_t		src[ETH_ALEN];
	uint8_t		prio_mask;	/* 0: 802.3x PAUSE */
	uint16_t	quanta;
};

/*
 * Build a PAUSE or PFC frame. @quanta 0 is XON. PFC carries one time per
 * priority; the ones outside the class-enable vector are ignored by the
 * receiver and sent as 0.
 */
size_t quiesce_pfc_frame(uint8_t *f, const uint8_t *src, uint8_t prio_mask,
			 uint16_t quanta)
{
	uint16_t v;
	int i;

	memset(f, 0, QUIESCE_MIN_FRAME);
	memcpy(f, quiesce_macc_dst, ETH_ALEN);
	memcpy(f + ETH_ALEN, src, ETH_ALEN);
	v = htons(QUIESCE_ETH_P_MACC);
	memcpy(f + 12, &v, 2);
	if (!prio_mask) {
		v = htons(QUIESCE_MACC_PAUSE);
		memcpy(f + 14, &v, 2);
		v = htons(quanta);
		memcpy(f + 16, &v, 2);
		return QUIESCE_MIN_FRAME;
	}
	v = htons(QUIESCE_MACC_PFC);
	memcpy(f + 14, &v, 2);
	v = htons(prio_mask);
	memcpy(f + 16, &v, 2);
	for (i = 0; i < 8; i++) {
		v = htons(prio_mask & (1 << i) ? quanta : 0);
		memcpy(f + 18 + 2 * i, &v, 2);
	}
	return QUIESCE_MIN_FRAME;
}

/* Time one quanta value lasts at @mbps: 512 bit times per quantum. */
double quiesce_pfc_quanta_us(uint16_t quanta, long mbps)
{
	return quanta * 512.0 / mbps;
}

static long link_speed(const char *ifname)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/net/%s/speed", ifname);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static int pfc_open(struct quiesce_pfc *p, const char *ifname)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET };
	struct ifreq ifr = {};
	int prio = 7;

	p->ifindex = if_nametoindex(ifname);
	if (!p->ifindex)
		return -ENODEV;
	/* Only sends: bound to no protocol so it receives nothing. */
	p->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(p->fd, SIOCGIFHWADDR, &ifr)) {
		close(p->fd);
		return -errno;
	}
	memcpy(p->src, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	/* Ahead of data in the device queue, where it is honoured first. */
	setsockopt(p->fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio));
	sll.sll_ifindex = p->ifindex;
	sll.sll_protocol = 0;
	if (bind(p->fd, (struct sockaddr *)&sll, sizeof(sll))) {
		close(p->fd);
		return -errno;
	}
	return 0;
}

static int pfc_send(struct quiesce_pfc *p, uint16_t quanta)
{
	struct sockaddr_ll sll = {
		.sll_family = AF_PACKET,
		.sll_ifindex = p->ifindex,
		.sll_halen = ETH_ALEN,
		.sll_protocol = htons(QUIESCE_ETH_P_MACC),
	};
	uint8_t f[QUIESCE_MIN_FRAME];
	size_t len;

	memcpy(sll.sll_addr, quiesce_macc_dst, ETH_ALEN);
	len = quiesce_pfc_frame(f, p->src, p->prio_mask, quanta);
	if (sendto(p->fd, f, len, 0, (struct sockaddr *)&sll,
		   sizeof(sll)) != (ssize_t)len)
		return -errno;
	return 0;
}

static int parse_prios(const char *s, uint8_t *mask)
{
	char *end;
	long v;

	*mask = 0;
	for (;;) {
		v = strtol(s, &end, 10);
		if (end == s || v < 0 || v > 7)
			return -EINVAL;
		*mask |= 1 << v;
		if (!*end)
			return 0;
		if (*end != ',')
			return -EINVAL;
		s = end + 1;
	}
}

static void ts_add_ns(struct timespec *t, uint64_t ns)
{
	ns += t->tv_nsec;
	t->tv_sec += ns / 1000000000;
	t->tv_nsec = ns % 1000000000;
}

struct quiesce_pfc_lease {
	struct quiesce_pfc		p;
	pid_t				pid;
	int				stop_fd;
	struct quiesce_pfc_report	*shared;	/* written by the child */
};

/*
 * The refresher, in a child process so that nothing the caller does can
 * delay a frame: it refreshes until told to stop ('R'), until the caller
 * dies (end of file on the pipe) or until the lease deadline, then sends
 * XON so the peer restarts at once rather than when the quanta expire.
 */
static void refresher(struct quiesce_pfc_lease *l, double refresh_us,
		      uint64_t deadline, int fd)
{
	struct quiesce_pfc_report *r = l->shared;
	uint64_t t_last = quiesce_now_ns(), now, t0;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct timespec next;
	double gap_us;

	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		struct timespec left;
		uint64_t due;

		ts_add_ns(&next, refresh_us * 1000);
		due = (uint64_t)next.tv_sec * 1000000000ull + next.tv_nsec;
		/* Sleep until the refresh is due, waking at once to stop. */
		now = quiesce_now_ns();
		left.tv_sec = due > now ? (due - now) / 1000000000 : 0;
		left.tv_nsec = due > now ? (due - now) % 1000000000 : 0;
		if (ppoll(&pfd, 1, &left, NULL) > 0)
			break;
		now = quiesce_now_ns();
		if (now >= deadline) {
			r->lease_expired = true;
			break;
		}
		if (pfc_send(&l->p, l->p.quanta))
			break;
		r->frames++;
		gap_us = (now - t_last) / 1e3;
		if (gap_us > r->max_gap_us)
			r->max_gap_us = gap_us;
		t_last = now;
		/* Fell behind (a stalled host): restart the schedule from now. */
		if (gap_us > 2 * refresh_us)
			clock_gettime(CLOCK_MONOTONIC, &next);
	}
	t0 = quiesce_now_ns();
	r->xon = !pfc_send(&l->p, 0);
	r->resume_ms = quiesce_ms_since(t0);
	r->xon_at_ns = t0;
	_exit(0);
}

int quiesce_pfc_pause(const char *dev, uint8_t prio_mask, uint16_t quanta,
		      double refresh_us, long lease_ms,
		      struct quiesce_pfc_lease **out, double *pause_ms)
{
	uint64_t t0 = quiesce_now_ns();
	struct quiesce_pfc_lease *l;
	int err, pfd[2];

	if (!quanta || refresh_us <= 0 || lease_ms <= 0 ||
	    lease_ms > QUIESCE_LEASE_MAX_MS)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->shared = mmap(NULL, sizeof(*l->shared), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (l->shared == MAP_FAILED) {
		free(l);
		return -ENOMEM;
	}
	l->p.prio_mask = prio_mask;
	l->p.quanta = quanta;
	err = pfc_open(&l->p, dev);
	if (!err)
		err = pfc_send(&l->p, quanta);
	if (!err && pipe2(pfd, O_CLOEXEC))
		err = -errno;
	if (err)
		goto fail;
	l->shared->frames = 1;
	*pause_ms = quiesce_ms_since(t0);
	quiesce_ignore_sigpipe();
	l->pid = fork();
	if (l->pid < 0) {
		err = -errno;
		close(pfd[0]);
		close(pfd[1]);
		goto fail;
	}
	if (!l->pid) {
		close(pfd[1]);
		refresher(l, refresh_us, t0 + (uint64_t)lease_ms * 1000000,
			  pfd[0]);
	}
	close(pfd[0]);
	l->stop_fd = pfd[1];
	*out = l;
	return 0;
fail:
	if (l->p.fd > 0)
		close(l->p.fd);
	munmap(l->shared, sizeof(*l->shared));
	free(l);
	return err;
}

int quiesce_pfc_resume(struct quiesce_pfc_lease *l,
		       struct quiesce_pfc_report *rep)
{
	char r = 'R';
	int ret;

	if (write(l->stop_fd, &r, 1) != 1)
		kill(l->pid, SIGKILL);
	waitpid(l->pid, NULL, 0);
	close(l->stop_fd);
	close(l->p.fd);
	*rep = *l->shared;
	ret = rep->xon ? 0 : -EIO;
	munmap(l->shared, sizeof(*l->shared));
	free(l);
	return ret;
}

enum {
	OPT_DEV = 256, OPT_PRIO, OPT_LINK, OPT_QUANTA, OPT_REFRESH, OPT_FOR,
	OPT_LEASE, OPT_SPEED,
};

static const struct option pfc_opts[] = {
	{ "dev",	required_argument, NULL, OPT_DEV },
	{ "prio",	required_argument, NULL, OPT_PRIO },
	{ "link",	no_argument,	   NULL, OPT_LINK },
	{ "quanta",	required_argument, NULL, OPT_QUANTA },
	{ "refresh",	required_argument, NULL, OPT_REFRESH },
	{ "for",	required_argument, NULL, OPT_FOR },
	{ "lease",	required_argument, NULL, OPT_LEASE },
	{ "speed",	required_argument, NULL, OPT_SPEED },
	{ NULL, 0, NULL, 0 }
};

int quiesce_pfc_main(int argc, char **argv, bool json)
{
	long for_ms = -1, lease_ms = 0, mbps = 0, quanta = 0xffff;
	double refresh_us = 0, quanta_us, pause_ms, held_ms;
	struct quiesce_pfc_report rep;
	struct quiesce_pfc_lease *l;
	const char *dev = NULL, *kind;
	uint8_t prio_mask = 0;
	uint64_t t_paused;
	bool link = false;
	int c, err, sig;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", pfc_opts, NULL)) != -1) {
		switch (c) {
		case OPT_DEV:
			dev = optarg;
			break;
		case OPT_PRIO:
			if (parse_prios(optarg, &prio_mask))
				goto usage;
			break;
		case OPT_LINK:
			link = true;
			break;
		case OPT_QUANTA:
			quanta = strtol(optarg, NULL, 0);
			if (quanta <= 0 || quanta > 0xffff)
				goto usage;
			break;
		case OPT_REFRESH:
			refresh_us = strtod(optarg, NULL) * 1000;
			if (refresh_us <= 0)
				goto usage;
			break;
		case OPT_FOR:
			for_ms = atol(optarg);
			break;
		case OPT_LEASE:
			lease_ms = atol(optarg);
			break;
		case OPT_SPEED:
			mbps = atol(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (!dev || optind != argc || link == !!prio_mask)
		goto usage;
	if (!lease_ms)
		lease_ms = for_ms >= 0 ? for_ms + 1000 : QUIESCE_LEASE_DEF_MS;
	if (lease_ms <= 0 || lease_ms > QUIESCE_LEASE_MAX_MS ||
	    for_ms > lease_ms)
		goto usage;
	if (!mbps)
		mbps = link_speed(dev);
	if (mbps <= 0) {
		fprintf(stderr,
			"hbamig: quiesce: %s reports no link speed: give --speed MBPS\n",
			dev);
		return QUIESCE_EXIT_USAGE;
	}
	quanta_us = quiesce_pfc_quanta_us(quanta, mbps);
	/* Refresh at half the quanta time: one late frame is still in time. */
	if (!refresh_us)
		refresh_us = quanta_us / 2;
	if (refresh_us >= quanta_us) {
		fprintf(stderr,
			"hbamig: quiesce: refresh %.1f us is not shorter than the quanta time %.1f us\n",
			refresh_us, quanta_us);
		return QUIESCE_EXIT_USAGE;
	}
	kind = link ? "pause" : "pfc";

	quiesce_block_signals();
	err = quiesce_pfc_pause(dev, prio_mask, quanta, refresh_us, lease_ms,
				&l, &pause_ms);
	if (err) {
		fprintf(stderr, "hbamig: quiesce: %s: %s\n", dev,
			strerror(-err));
		return QUIESCE_EXIT_FAIL;
	}
	t_paused = quiesce_now_ns();
	if (json) {
		printf("{\"event\":\"paused\",\"kind\":\"%s\",\"dev\":", kind);
		quiesce_json_str(dev);
		printf(",\"prio_mask\":%u,\"quanta\":%ld,\"quanta_us\":%.1f,\"refresh_us\":%.1f,\"lease_ms\":%ld,\"pause_ms\":%.3f,\"at_ms\":%.3f}\n",
		       prio_mask, quanta, quanta_us, refresh_us, lease_ms,
		       pause_ms, t_paused / 1e6);
	} else {
		printf("paused %s on %s (class-enable 0x%02x), quanta %ld = %.1f us at %ld Mb/s, refresh every %.1f us, lease %ld ms\n",
		       link ? "the link (802.3x)" : "priorities (802.1Qbb)",
		       dev, prio_mask, quanta, quanta_us, mbps, refresh_us,
		       lease_ms);
	}
	fflush(stdout);

	sig = quiesce_hold(for_ms >= 0 ? for_ms : lease_ms);
	held_ms = quiesce_ms_since(t_paused);
	err = quiesce_pfc_resume(l, &rep);
	if (json) {
		printf("{\"event\":\"resumed\",\"kind\":\"%s\",\"dev\":", kind);
		quiesce_json_str(dev);
		printf(",\"prio_mask\":%u,\"quanta\":%ld,\"quanta_us\":%.1f,\"refresh_us\":%.1f,\"max_gap_us\":%.1f,\"frames\":%llu,\"lease_ms\":%ld,\"pause_ms\":%.3f,\"held_ms\":%.3f,\"resume_ms\":%.3f,\"signal\":%d,\"lease_expired\":%s,\"xon\":%s,\"at_ms\":%.3f}\n",
		       prio_mask, quanta, quanta_us, refresh_us, rep.max_gap_us,
		       (unsigned long long)rep.frames, lease_ms, pause_ms,
		       held_ms, rep.resume_ms, sig,
		       rep.lease_expired ? "true" : "false",
		       rep.xon ? "true" : "false", rep.xon_at_ns / 1e6);
	} else {
		printf("resumed: XON %s in %.3f ms after %.1f ms, %llu frames (longest gap %.1f us, quanta time %.1f us)\n",
		       rep.xon ? "sent" : "failed", rep.resume_ms, held_ms,
		       (unsigned long long)rep.frames, rep.max_gap_us,
		       quanta_us);
	}
	if (rep.max_gap_us >= quanta_us)
		fprintf(stderr,
			"hbamig: quiesce: warning: a refresh came %.1f us late, after the quanta had expired\n",
			rep.max_gap_us);
	return err ? QUIESCE_EXIT_FAIL : QUIESCE_EXIT_OK;
usage:
	fprintf(stderr,
		"Usage: hbamig quiesce pfc --dev IFNAME { --prio P[,P...] | --link } [--quanta Q]\n"
		"          [--refresh MS] [--speed MBPS] [--for MS] [--lease MS]\n"
		"Note: veth and Linux bridges do not honour PAUSE/PFC frames.\n");
	return QUIESCE_EXIT_USAGE;
}
