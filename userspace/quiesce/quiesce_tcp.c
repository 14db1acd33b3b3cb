// SPDX-License-Identifier: GPL-2.0-only
/*
 * TCP zero-window lease.
 *
 * Pause: a tc program on egress of the interface the connections leave
 * through rewrites the window of their segments to 0; the peer stops
 * sending and keeps the connection alive with zero-window probes. The
 * program is attached with a tcx BPF link owned by this process, so it
 * disappears when the process dies, and it checks a deadline so it stops
 * rewriting once the lease has run out even if it is still attached.
 *
 * A rewrite only reaches the peer with the next segment the local stack
 * sends, and a BPF program cannot originate one. So both at pause (to
 * announce the zero window on an idle connection) and at resume (so the
 * peer does not wait for its next persist probe, up to two minutes away)
 * the helper makes the local stack send an ACK: it loops a segment back
 * to the local socket as if from the peer, one the stack must reject by
 * answering with an ACK that carries the current sequence numbers,
 * timestamps and window:
 *  - a SYN on an established connection draws a challenge ACK (RFC 5961,
 *    4.2) whatever its sequence number; Linux rate-limits it per socket
 *    (net.ipv4.tcp_invalid_ratelimit), so it is the fallback;
 *  - a one-byte segment beyond the receive window draws a duplicate ACK
 *    and, carrying data, is not rate-limited; it needs rcv_nxt, which the
 *    program records from the acknowledgment number of every segment it
 *    sees. It lies beyond the window and is discarded before any of its
 *    fields are used.
 * A guardian child process does the resume if this process dies or stalls
 * past the lease, so the peer is re-opened at once, not at its next probe.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "quiesce.h"
#include "quiesce_tcp_shared.h"
#include "quiesce_tcp.skel.h"

#define QUIESCE_MARK		0x51e5ce
/* How long to wait for the stack to emit the ACK it was asked for. */
#define QUIESCE_KICK_WAIT_MS	1000
#define QUIESCE_KICK_RETRY_MS	50

struct quiesce_tcp {
	struct quiesce_tcp_bpf	*skel;
	int			link_fd;
	int			link_in_fd;	/* forwarded: ingress learning */
	bool			tc_legacy;
	struct bpf_tc_hook	hook;
	struct bpf_tc_opts	tc_opts;
	int			ifindex;
	int			nr;
	struct quiesce_conn	*conns;
	struct quiesce_tcp_key	*keys;
	int			raw4, raw6;
	pid_t			guard;
	int			guard_fd;
	long			lease_ms;
	int			kick_err;	/* last failure to loop back */
	/* Forwarded connections: learned, kicked through the guest's side. */
	bool			fwd;
	int			guest_ifindex;
	int			pkt_fd;
	uint8_t			guest_dev_mac[6];
};

static uint16_t csum_fold32(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 1) {
		sum += (p[0] << 8) | p[1];
		p += 2;
		len -= 2;
	}
	if (len)
		sum += p[0] << 8;
	return sum;
}

/*
 * The segment that draws an ACK from the local end of @c, as if from its
 * peer, into @pkt (80 bytes): @syn selects the challenge-ACK form,
 * otherwise a byte beyond the window at @rcv_nxt. Returns its length.
 */
static size_t kick_build(const struct quiesce_conn *c, bool syn,
			 uint32_t rcv_nxt, uint32_t ack, uint8_t *pkt)
{
	struct tcphdr *th;
	uint32_t sum = 0;
	size_t iplen, len;
	uint16_t l4len;

	iplen = c->family == AF_INET ? sizeof(struct iphdr) :
				       sizeof(struct ip6_hdr);
	th = (struct tcphdr *)(pkt + iplen);
	l4len = sizeof(*th) + (syn ? 0 : 1);
	len = iplen + l4len;
	th->source = htons(c->rport);
	th->dest = htons(c->lport);
	th->doff = sizeof(*th) / 4;
	th->window = htons(0xffff);
	if (syn) {
		th->syn = 1;
		/* Any sequence number draws the challenge ACK. */
		th->seq = htonl(rcv_nxt);
	} else {
		/* Windows are below 2^30: this byte is always beyond it. */
		th->seq = htonl(rcv_nxt + (1u << 30));
		th->ack = 1;
		th->ack_seq = htonl(ack);
		pkt[iplen + sizeof(*th)] = 0;
	}

	if (c->family == AF_INET) {
		struct iphdr *ip = (struct iphdr *)pkt;

		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons(len);
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		memcpy(&ip->saddr, c->raddr, 4);
		memcpy(&ip->daddr, c->laddr, 4);
		ip->check = htons(csum_fold32(csum_add(0, ip, sizeof(*ip))));
		sum = csum_add(sum, c->raddr, 4);
		sum = csum_add(sum, c->laddr, 4);
		sum += IPPROTO_TCP + l4len;
		sum = csum_add(sum, th, l4len);
		th->check = htons(csum_fold32(sum));
	} else {
		struct ip6_hdr *ip6 = (struct ip6_hdr *)pkt;

		ip6->ip6_flow = htonl(6u << 28);
		ip6->ip6_plen = htons(l4len);
		ip6->ip6_nxt = IPPROTO_TCP;
		ip6->ip6_hlim = 64;
		memcpy(&ip6->ip6_src, c->raddr, 16);
		memcpy(&ip6->ip6_dst, c->laddr, 16);
		sum = csum_add(sum, c->raddr, 16);
		sum = csum_add(sum, c->laddr, 16);
		sum += IPPROTO_TCP + l4len;
		sum = csum_add(sum, th, l4len);
		th->check = htons(csum_fold32(sum));
	}
	return len;
}

/* Loop the kick back to the local stack. */
static int kick_local(struct quiesce_tcp *q, const struct quiesce_conn *c,
		      bool syn, uint32_t rcv_nxt, uint32_t ack)
{
	uint32_t pkt[80 / 4] = {};	/* the headers' own alignment */
	size_t len = kick_build(c, syn, rcv_nxt, ack, (uint8_t *)pkt);
	ssize_t ret;

	if (c->family == AF_INET) {
		struct sockaddr_in sin = { .sin_family = AF_INET };

		memcpy(&sin.sin_addr, c->laddr, 4);
		ret = sendto(q->raw4, pkt, len, 0, (struct sockaddr *)&sin,
			     sizeof(sin));
	} else {
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };

		memcpy(&sin6.sin6_addr, c->laddr, 16);
		ret = sendto(q->raw6, pkt, len, 0, (struct sockaddr *)&sin6,
			     sizeof(sin6));
	}
	return ret < 0 ? -errno : 0;
}

/*
 * A forwarded connection's local end is a guest on the other side of
 * guest_ifindex (its tap, or the bridge holding it): the kick goes out
 * there in a frame to the guest's MAC, from the interface's own (the
 * peer's MAC, as a source, would teach a bridge on the way the wrong
 * port for the peer). After a migration the same bridge forwards it to
 * the guest's new host.
 */
static int kick_forwarded(struct quiesce_tcp *q, const struct quiesce_conn *c,
			  const struct quiesce_tcp_val *v)
{
	uint8_t frame[14 + 80] = {};
	uint32_t pkt[80 / 4] = {};	/* the headers' own alignment */
	struct sockaddr_ll sll = {
		.sll_family = AF_PACKET, .sll_ifindex = q->guest_ifindex,
		.sll_halen = ETH_ALEN,
	};
	size_t len;
	uint16_t type = htons(c->family == AF_INET ? ETH_P_IP : ETH_P_IPV6);

	len = kick_build(c, false, v->ack, v->seq_next, (uint8_t *)pkt);
	memcpy(frame + 14, pkt, len);
	memcpy(frame, v->src_mac, 6);
	memcpy(frame + 6, q->guest_dev_mac, 6);
	memcpy(frame + 12, &type, 2);
	memcpy(sll.sll_addr, v->src_mac, 6);
	sll.sll_protocol = type;
	if (sendto(q->pkt_fd, frame, 14 + len, 0, (struct sockaddr *)&sll,
		   sizeof(sll)) < 0)
		return -errno;
	return 0;
}

static int conn_val(struct quiesce_tcp *q, int i, struct quiesce_tcp_val *v)
{
	return bpf_map__lookup_elem(q->skel->maps.quiesce_conns, &q->keys[i],
				    sizeof(q->keys[i]), v, sizeof(*v), 0);
}

/*
 * Forwarded mode: the connections the program has added so far, in the
 * order of its table (a walk that meets concurrent additions may miss one:
 * the callers walk again).
 */
static void refresh_learned(struct quiesce_tcp *q)
{
	struct bpf_map *m = q->skel->maps.quiesce_conns;
	struct quiesce_tcp_key k, next;
	bool first = true;

	q->nr = 0;
	while (q->nr < QUIESCE_TCP_MAX_CONNS &&
	       !bpf_map__get_next_key(m, first ? NULL : &k, &next,
				      sizeof(next))) {
		struct quiesce_conn *c = &q->conns[q->nr];

		q->keys[q->nr] = next;
		memset(c, 0, sizeof(*c));
		c->family = next.family;
		memcpy(c->laddr, next.saddr, 16);
		memcpy(c->raddr, next.daddr, 16);
		c->lport = ntohs(next.sport);
		c->rport = ntohs(next.dport);
		c->state = TCP_ESTABLISHED;
		snprintf(c->origin, sizeof(c->origin), "forwarded");
		k = next;
		first = false;
		q->nr++;
	}
}

int quiesce_tcp_test_frame(struct quiesce_tcp *q, bool ingress,
			   const void *frame, uint32_t len)
{
	struct bpf_program *prog = ingress ? q->skel->progs.quiesce_tcp_ingress :
					     q->skel->progs.quiesce_tcp_egress;
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame,
		    .data_size_in = len, .repeat = 1);

	return bpf_prog_test_run_opts(bpf_program__fd(prog), &o) ? -errno : 0;
}

int quiesce_tcp_conn_val(struct quiesce_tcp *q, int i,
			 struct quiesce_tcp_val *v)
{
	if (i < 0 || i >= q->nr)
		return -ENOENT;
	return conn_val(q, i, v) ? -errno : 0;
}

void quiesce_tcp_counts(struct quiesce_tcp *q, uint64_t *seen,
			uint64_t *unmatched)
{
	*seen = q->skel->bss->quiesce_tcp_seen +
		q->skel->bss->quiesce_tcp_seen_in;
	*unmatched = q->skel->bss->quiesce_tcp_unmatched;
}

int quiesce_tcp_conns(struct quiesce_tcp *q, const struct quiesce_conn **out)
{
	if (q->fwd)
		refresh_learned(q);
	*out = q->conns;
	return q->nr;
}

/* Ask the local stack for an ACK on connection @i. */
static void kick_conn(struct quiesce_tcp *q, int i, bool prefer_data)
{
	struct quiesce_tcp_val v = {};

	int err;

	if (q->fwd) {
		/* Learned from a segment: its numbers are known. */
		err = conn_val(q, i, &v);
		if (!err)
			err = kick_forwarded(q, &q->conns[i], &v);
	} else if (prefer_data && !conn_val(q, i, &v) && v.seen) {
		err = kick_local(q, &q->conns[i], false, v.ack, v.seq_next);
	} else {
		err = kick_local(q, &q->conns[i], true, (uint32_t)random(), 0);
	}
	if (err)
		q->kick_err = err;
}

/* Pause: every connection has sent at least one zero-window segment. */
static bool all_zeroed(struct quiesce_tcp *q, int *n)
{
	struct quiesce_tcp_val v;
	int i;

	if (q->fwd)
		refresh_learned(q);
	*n = 0;
	for (i = 0; i < q->nr; i++)
		if (!conn_val(q, i, &v) && v.zeroed)
			(*n)++;
	return *n == q->nr;
}

/* Resume: every connection told window 0 has sent a window update. */
static bool all_reopened(struct quiesce_tcp *q, int *n, uint64_t *last)
{
	struct quiesce_tcp_val v;
	bool all = true;
	int i;

	*n = 0;
	for (i = 0; i < q->nr; i++) {
		if (conn_val(q, i, &v) || !v.zeroed)
			continue;
		if (!v.first_open_ns) {
			all = false;
			continue;
		}
		(*n)++;
		if (v.first_open_ns > *last)
			*last = v.first_open_ns;
	}
	return all;
}

static bool reopen_all(struct quiesce_tcp *q, int *n, uint64_t *last)
{
	uint64_t t0 = quiesce_now_ns(), tk = t0;
	/*
	 * A forwarded connection's window update leaves through here only
	 * while its guest is here: after a migration it leaves the
	 * destination, and the kicks (sent towards the guest wherever the
	 * bridge now finds it) are all there is to do.
	 */
	long wait_ms = q->fwd ? 4 * QUIESCE_KICK_RETRY_MS : QUIESCE_KICK_WAIT_MS;
	bool all;
	int i;

	q->skel->bss->quiesce_active = 0;
	__sync_synchronize();
	if (q->fwd)
		refresh_learned(q);
	for (i = 0; i < q->nr; i++)
		kick_conn(q, i, true);
	while (!(all = all_reopened(q, n, last))) {
		if (quiesce_ms_since(t0) > wait_ms)
			break;
		if (quiesce_ms_since(tk) > QUIESCE_KICK_RETRY_MS) {
			for (i = 0; i < q->nr; i++)
				kick_conn(q, i, true);
			tk = quiesce_now_ns();
		}
		usleep(200);
	}
	return all;
}

/*
 * Runs in a child: waits for the parent to resume ('R' on the pipe), die
 * (end of file) or outlive the lease, and re-opens the windows in the last
 * two cases. Holds no reference to the link, so it cannot prolong it.
 */
static void guardian(struct quiesce_tcp *q, int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c = 0;
	int n, ret;
	uint64_t last = 0;

	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	ret = poll(&p, 1, q->lease_ms + 10);
	if (ret > 0 && read(fd, &c, 1) == 1 && c == 'R')
		_exit(0);
	reopen_all(q, &n, &last);
	_exit(0);
}

static int attach(struct quiesce_tcp *q)
{
	int prog = bpf_program__fd(q->skel->progs.quiesce_tcp_egress);
	int err;

	q->link_fd = bpf_link_create(prog, q->ifindex, BPF_TCX_EGRESS, NULL);
	if (q->link_fd >= 0)
		return 0;
	/*
	 * Kernels before 6.6 have no tcx: fall back to a clsact filter. It
	 * is not tied to this process, but the deadline still ends the
	 * rewrite when the lease runs out.
	 */
	q->hook.sz = sizeof(q->hook);
	q->hook.ifindex = q->ifindex;
	q->hook.attach_point = BPF_TC_EGRESS;
	err = bpf_tc_hook_create(&q->hook);
	if (err && err != -EEXIST)
		return err;
	q->tc_opts.sz = sizeof(q->tc_opts);
	q->tc_opts.prog_fd = prog;
	q->tc_opts.priority = 1;
	err = bpf_tc_attach(&q->hook, &q->tc_opts);
	if (err)
		return err;
	q->tc_legacy = true;
	return 0;
}

static void detach(struct quiesce_tcp *q)
{
	if (q->link_fd >= 0)
		close(q->link_fd);
	q->link_fd = -1;
	if (q->link_in_fd >= 0)
		close(q->link_in_fd);
	q->link_in_fd = -1;
	if (q->tc_legacy) {
		q->tc_opts.prog_fd = 0;
		q->tc_opts.prog_id = 0;
		q->tc_opts.flags = 0;
		bpf_tc_detach(&q->hook, &q->tc_opts);
		q->tc_legacy = false;
	}
}

void quiesce_tcp_free(struct quiesce_tcp *q)
{
	if (!q)
		return;
	detach(q);
	if (q->guard_fd >= 0)
		close(q->guard_fd);
	if (q->guard > 0)
		waitpid(q->guard, NULL, 0);
	if (q->raw4 >= 0)
		close(q->raw4);
	if (q->raw6 >= 0)
		close(q->raw6);
	if (q->pkt_fd >= 0)
		close(q->pkt_fd);
	quiesce_tcp_bpf__destroy(q->skel);
	free(q->conns);
	free(q->keys);
	free(q);
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/*
 * What both kinds of lease start with: @cap connection slots, the
 * interface, the program loaded (not attached). On failure nothing is left.
 */
static int tcp_new(const char *ifname, long lease_ms, int cap,
		   struct quiesce_tcp **out)
{
	struct quiesce_tcp *q;
	int err;

	if (lease_ms <= 0 || lease_ms > QUIESCE_LEASE_MAX_MS)
		return -ERANGE;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->link_fd = -1;
	q->link_in_fd = -1;
	q->raw4 = -1;
	q->raw6 = -1;
	q->pkt_fd = -1;
	q->guard_fd = -1;
	q->lease_ms = lease_ms;
	q->conns = calloc(cap, sizeof(*q->conns));
	q->keys = calloc(cap, sizeof(*q->keys));
	err = -ENOMEM;
	if (!q->conns || !q->keys)
		goto fail;
	err = -ENODEV;
	q->ifindex = if_nametoindex(ifname);
	if (!q->ifindex)
		goto fail;
	libbpf_set_print(libbpf_quiet);
	q->skel = quiesce_tcp_bpf__open_and_load();
	if (!q->skel) {
		err = -errno ? -errno : -EINVAL;
		goto fail;
	}
	*out = q;
	return 0;
fail:
	quiesce_tcp_free(q);
	return err;
}

/* Attached, inactive: from here on it records what it sees, nothing more. */
static int tcp_attach_inactive(struct quiesce_tcp *q, struct quiesce_tcp **out)
{
	int err;

	q->skel->bss->quiesce_active = 0;
	__sync_synchronize();
	err = attach(q);
	/*
	 * A guest's connections are also learned from the peer's segments to
	 * it (a guest silent through the migration); without tcx (before
	 * 6.6) only from the guest's own.
	 */
	if (!err && q->fwd && !q->tc_legacy) {
		q->link_in_fd = bpf_link_create(
			bpf_program__fd(q->skel->progs.quiesce_tcp_ingress),
			q->ifindex, BPF_TCX_INGRESS, NULL);
		if (q->link_in_fd < 0)
			err = -errno;
	}
	if (err) {
		quiesce_tcp_free(q);
		return err;
	}
	*out = q;
	return 0;
}

int quiesce_tcp_prepare(const char *ifname, const struct quiesce_conn *conns,
			int nr, long lease_ms, struct quiesce_tcp **out)
{
	struct quiesce_tcp_val zero = {};
	struct quiesce_tcp *q;
	int i, err, mark = QUIESCE_MARK;

	if (nr <= 0 || nr > QUIESCE_TCP_MAX_CONNS)
		return -EINVAL;
	err = tcp_new(ifname, lease_ms, nr, &q);
	if (err)
		return err;
	q->nr = nr;
	memcpy(q->conns, conns, nr * sizeof(*conns));
	q->raw4 = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	q->raw6 = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (q->raw4 < 0 || q->raw6 < 0) {
		err = -errno;
		goto fail;
	}
	setsockopt(q->raw4, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	setsockopt(q->raw6, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	q->skel->bss->quiesce_mark = QUIESCE_MARK;
	for (i = 0; i < nr; i++) {
		struct quiesce_tcp_key *k = &q->keys[i];

		k->family = conns[i].family;
		memcpy(k->saddr, conns[i].laddr, 16);
		memcpy(k->daddr, conns[i].raddr, 16);
		k->sport = htons(conns[i].lport);
		k->dport = htons(conns[i].rport);
		err = bpf_map__update_elem(q->skel->maps.quiesce_conns, k,
					   sizeof(*k), &zero, sizeof(zero),
					   BPF_ANY);
		if (err)
			goto fail;
	}
	/* It only learns sequence numbers until activated. */
	return tcp_attach_inactive(q, out);
fail:
	quiesce_tcp_free(q);
	return err;
}

int quiesce_tcp_prepare_fwd(const char *ifname, const char *guest_ifname,
			    const struct quiesce_sel *pat, int npat,
			    long lease_ms, struct quiesce_tcp **out)
{
	struct quiesce_tcp *q;
	struct ifreq ifr = {};
	int i, err;

	if (npat <= 0 || npat > QUIESCE_TCP_MAX_PATTERNS)
		return -EINVAL;
	if (strlen(guest_ifname) >= sizeof(ifr.ifr_name))
		return -ENODEV;
	err = tcp_new(ifname, lease_ms, QUIESCE_TCP_MAX_CONNS, &q);
	if (err)
		return err;
	q->fwd = true;
	err = -ENODEV;
	q->guest_ifindex = if_nametoindex(guest_ifname);
	if (!q->guest_ifindex)
		goto fail;
	/* Send only: protocol 0 receives nothing. */
	q->pkt_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (q->pkt_fd < 0) {
		err = -errno;
		goto fail;
	}
	strcpy(ifr.ifr_name, guest_ifname);
	if (ioctl(q->pkt_fd, SIOCGIFHWADDR, &ifr)) {
		err = -errno;
		goto fail;
	}
	memcpy(q->guest_dev_mac, ifr.ifr_hwaddr.sa_data, 6);
	for (i = 0; i < npat; i++) {
		struct quiesce_tcp_pattern p = {
			.family = (uint8_t)pat[i].family,
			.has_saddr = pat[i].has_laddr,
			.has_daddr = pat[i].has_raddr,
			.sport = htons(pat[i].lport),
			.dport = htons(pat[i].rport),
		};
		uint32_t idx = i;

		memcpy(p.saddr, pat[i].laddr, 16);
		memcpy(p.daddr, pat[i].raddr, 16);
		err = bpf_map__update_elem(q->skel->maps.quiesce_patterns,
					   &idx, sizeof(idx), &p, sizeof(p),
					   BPF_ANY);
		if (err)
			goto fail;
	}
	q->skel->bss->quiesce_nr_patterns = npat;
	/* From here on it learns the connections, and rewrites nothing. */
	q->skel->bss->quiesce_learn = 1;
	return tcp_attach_inactive(q, out);
fail:
	quiesce_tcp_free(q);
	return err;
}

int quiesce_tcp_activate(struct quiesce_tcp *q, struct quiesce_tcp_report *rep)
{
	uint64_t t0 = quiesce_now_ns(), tk;
	int i, pfd[2];

	if (q->fwd)
		refresh_learned(q);
	rep->nr = q->nr;
	q->skel->bss->quiesce_deadline_ns = t0 + (uint64_t)q->lease_ms * 1000000;
	q->skel->bss->quiesce_active = 1;
	__sync_synchronize();

	if (pipe2(pfd, O_CLOEXEC))
		goto no_guard;
	quiesce_ignore_sigpipe();
	q->guard = fork();
	if (q->guard < 0) {
		close(pfd[0]);
		close(pfd[1]);
		goto no_guard;
	}
	if (!q->guard) {
		close(pfd[1]);
		if (q->link_fd >= 0)
			close(q->link_fd);
		if (q->link_in_fd >= 0)
			close(q->link_in_fd);
		guardian(q, pfd[0]);
	}
	close(pfd[0]);
	q->guard_fd = pfd[1];

	/*
	 * Busy connections announce the zero window with their next ACK;
	 * idle ones need one drawn out of the stack.
	 */
	for (i = 0; i < q->nr; i++)
		kick_conn(q, i, true);
	tk = quiesce_now_ns();
	while (!all_zeroed(q, &rep->confirmed)) {
		if (quiesce_ms_since(t0) > QUIESCE_KICK_WAIT_MS)
			break;
		if (quiesce_ms_since(tk) > QUIESCE_KICK_RETRY_MS) {
			for (i = 0; i < q->nr; i++)
				kick_conn(q, i, true);
			tk = quiesce_now_ns();
		}
		usleep(200);
	}
	rep->pause_ms = quiesce_ms_since(t0);
	rep->nr = q->nr;
	rep->kick_err = q->kick_err;
	return 0;
no_guard:
	/* Without a guardian the pause must not start at all. */
	q->skel->bss->quiesce_active = 0;
	return -errno;
}

int quiesce_tcp_pause(const char *ifname, const struct quiesce_conn *conns,
		      int nr, long lease_ms, struct quiesce_tcp **out,
		      struct quiesce_tcp_report *rep)
{
	uint64_t t0 = quiesce_now_ns();
	int err;

	memset(rep, 0, sizeof(*rep));
	err = quiesce_tcp_prepare(ifname, conns, nr, lease_ms, out);
	if (err)
		return err;
	rep->prepare_ms = quiesce_ms_since(t0);
	err = quiesce_tcp_activate(*out, rep);
	if (err) {
		quiesce_tcp_free(*out);
		*out = NULL;
	}
	return err;
}

uint64_t quiesce_tcp_zeroed(struct quiesce_tcp *q, int i)
{
	struct quiesce_tcp_val v = {};

	conn_val(q, i, &v);
	return v.zeroed;
}

int quiesce_tcp_resume(struct quiesce_tcp *q, struct quiesce_tcp_report *rep)
{
	uint64_t t0 = quiesce_now_ns(), last = 0;
	char r = 'R';
	bool all;
	int n = 0;

	all = reopen_all(q, &n, &last);
	rep->resume_ms = last > t0 ? (last - t0) / 1e6 : quiesce_ms_since(t0);
	rep->reopened = n;
	rep->kick_err = q->kick_err;
	if (q->guard_fd >= 0 && write(q->guard_fd, &r, 1) != 1)
		kill(q->guard, SIGKILL);
	detach(q);
	return all || q->fwd ? 0 : -ETIMEDOUT;
}
