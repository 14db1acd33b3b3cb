// SPDX-License-Identifier: GPL-2.0-only
/*
 * "hbamig quiesce": make the fabric peer that sends to an adapter stop
 * sending, for a bounded time, without tearing its sessions down.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quiesce.h"

uint64_t quiesce_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

double quiesce_ms_since(uint64_t t0)
{
	return (quiesce_now_ns() - t0) / 1e6;
}

static sigset_t quiesce_sigs;

void quiesce_block_signals(void)
{
	sigemptyset(&quiesce_sigs);
	sigaddset(&quiesce_sigs, SIGINT);
	sigaddset(&quiesce_sigs, SIGTERM);
	sigaddset(&quiesce_sigs, SIGUSR1);
	sigaddset(&quiesce_sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &quiesce_sigs, NULL);
}

int quiesce_parse_ms(const char *s, long *v)
{
	char *end;

	errno = 0;
	*v = strtol(s, &end, 10);
	if (errno || end == s || *end || *v < 0 || *v > QUIESCE_LEASE_MAX_MS)
		return -EINVAL;
	return 0;
}

/*
 * A lease's child may have ended on its own (at the deadline) before it
 * is told to stop: that write must fail with EPIPE, not kill the caller.
 */
void quiesce_ignore_sigpipe(void)
{
	struct sigaction sa;

	if (!sigaction(SIGPIPE, NULL, &sa) && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
}

int quiesce_hold(long ms)
{
	uint64_t end = quiesce_now_ns() + (uint64_t)ms * 1000000;
	struct timespec ts;
	uint64_t now;
	int sig;

	for (;;) {
		now = quiesce_now_ns();
		if (now >= end)
			return 0;
		ts.tv_sec = (end - now) / 1000000000;
		ts.tv_nsec = (end - now) % 1000000000;
		sig = sigtimedwait(&quiesce_sigs, NULL, &ts);
		if (sig > 0)
			return sig;
		if (errno != EINTR)
			return 0;
	}
}

void quiesce_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void usage(FILE *f)
{
	fputs(
"Usage: hbamig quiesce tcp SELECTION [--dev IFNAME] [--for MS] [--lease MS]\n"
"                          [--extend-timers]\n"
"       hbamig quiesce tcp --conn GUEST,PEER... --dev IFNAME\n"
"                          --forwarded GUESTDEV [--learn MS] [--for MS]\n"
"       hbamig quiesce budget SELECTION [--for MS]\n"
"       hbamig quiesce pfc --dev IFNAME { --prio P[,P...] | --link }\n"
"                          [--quanta Q] [--refresh MS] [--for MS] [--lease MS]\n"
"       hbamig quiesce rnr --dev RDMADEV [--for MS] [--lease MS] ...\n"
"       hbamig quiesce rnr --agent SOCKET [--max-ms MS] [--for MS]\n"
"       hbamig quiesce conns SELECTION [--interval MS [--count N]]\n"
"SELECTION := { --nvme-tcp NQN | --iscsi TARGET | --conn LOCAL,REMOTE } ...\n"
"LOCAL, REMOTE := { ADDR:PORT | [ADDR6]:PORT | *:PORT | ADDR | * }\n"
"\n"
"tcp    advertises a zero receive window to the peers of the selected\n"
"       connections on egress of IFNAME (default: the route's interface),\n"
"       holds it for --for MS or until SIGINT/SIGTERM/SIGUSR1, then\n"
"       re-opens it with an immediate window update. Refuses a lease not\n"
"       shorter than the shortest session timer (see \"budget\") unless\n"
"       --extend-timers can raise it for the pause.\n"
"       --forwarded: the connections are a guest's, forwarded by this host\n"
"       between GUESTDEV (the guest's tap, or its bridge) and IFNAME: they\n"
"       are learned from their segments leaving IFNAME (for --learn MS\n"
"       before the pause, and during it), and the ACKs that carry the\n"
"       windows are drawn from the guest by frames sent out of GUESTDEV\n"
"       to its MAC.\n"
"conns  lists the selected connections with their tcp_info.\n"
"pfc    sends 802.1Qbb PFC (--prio) or 802.3x PAUSE (--link) frames,\n"
"       refreshed before the quanta expire, and XON on resume. veth and\n"
"       Linux bridges do not act on PAUSE or PFC frames: only a NIC (or a\n"
"       peer that honours them in software) stops transmitting.\n"
"rnr    holds the receive queue of an RDMA RC queue pair this process owns\n"
"       empty, so that the sender (rnr_retry 7) gets receiver-not-ready NAKs\n"
"       and retries until resumed: a measured run against a peer process.\n"
"       With --agent, asks the process that owns the queue pairs, through\n"
"       the rnr_agent it embeds (userspace/quiesce/rnr_agent.h), to withhold\n"
"       its receives for at most --max-ms MS (the lease; refused, exit 7,\n"
"       above the owner's maximum), and resumes it; the lease also ends\n"
"       when hbamig dies (its connection closes).\n"
"\n"
"Every pause is a lease: it ends by itself after --lease MS (at most\n"
"300000) or when the helper dies.\n", f);
}

int quiesce_main(int argc, char **argv, bool json)
{
	const char *cmd;

	if (argc < 2) {
		usage(stderr);
		return QUIESCE_EXIT_USAGE;
	}
	cmd = argv[1];
	argc--;
	argv++;
	if (!strcmp(cmd, "tcp"))
		return quiesce_tcp_main(argc, argv, json);
	if (!strcmp(cmd, "conns"))
		return quiesce_conns_main(argc, argv, json);
	if (!strcmp(cmd, "budget"))
		return quiesce_budget_main(argc, argv, json);
	if (!strcmp(cmd, "pfc"))
		return quiesce_pfc_main(argc, argv, json);
	if (!strcmp(cmd, "rnr"))
		return quiesce_rnr_main(argc, argv, json);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") ||
	    !strcmp(cmd, "-h")) {
		usage(stdout);
		return QUIESCE_EXIT_OK;
	}
	fprintf(stderr, "hbamig: quiesce: unknown command \"%s\"\n", cmd);
	usage(stderr);
	return QUIESCE_EXIT_USAGE;
}
