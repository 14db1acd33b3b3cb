/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Layout shared by the TCP zero-window program (bpf/quiesce_tcp.bpf.c) and
 * the helper that loads it. Fixed-size types only: both sides must agree
 * byte for byte.
 */
#ifndef QUIESCE_TCP_SHARED_H
#define QUIESCE_TCP_SHARED_H

#define QUIESCE_TCP_MAX_CONNS	64
#define QUIESCE_TCP_MAX_PATTERNS	16

/* One direction of one connection, as seen leaving the host. */
struct quiesce_tcp_key {
	__u8	family;		/* AF_INET or AF_INET6 */
	__u8	pad[3];
	__u8	saddr[16];	/* local; IPv4 in the first four bytes */
	__u8	daddr[16];	/* peer */
	__u16	sport;		/* network byte order */
	__u16	dport;
};

struct quiesce_tcp_val {
	__u64	seen;		/* egress segments of this connection */
	__u64	zeroed;		/* segments whose window was rewritten to 0 */
	__u64	first_zero_ns;	/* CLOCK_MONOTONIC of the first rewrite */
	__u64	first_open_ns;	/* first segment let through after a rewrite */
	__u64	last_ns;
	__u32	ack;		/* host order: our rcv_nxt as last advertised */
	__u32	seq_next;	/* host order: our snd_nxt as last seen */
	__u16	win;		/* raw window field the stack wrote */
	__u16	pad;
	__u32	pad2;
	/* The frame's addresses: a forwarded connection's local end is a
	 * guest behind another interface, reached at src_mac. */
	__u8	src_mac[6];
	__u8	dst_mac[6];
	__u32	pad3;
};

/*
 * Forwarded connections (a guest's, passing through this host) are not
 * this host's sockets: the program adds each new connection whose egress
 * segment matches a pattern. Zero fields match anything.
 */
struct quiesce_tcp_pattern {
	__u8	family;		/* AF_INET, AF_INET6, 0: either */
	__u8	has_saddr;
	__u8	has_daddr;
	__u8	pad;
	__u8	saddr[16];	/* the guest's end */
	__u8	daddr[16];	/* the peer's */
	__u16	sport;		/* network byte order */
	__u16	dport;
};

#endif
