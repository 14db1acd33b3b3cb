// SPDX-License-Identifier: GPL-2.0-only
/*
 * Zero-window rewrite for chosen TCP connections, attached on egress of the
 * interface they leave through. The peer sees a receive window of 0 and
 * stops sending (it keeps the connection alive with zero-window probes).
 *
 * The pause is a lease twice over: the helper holds the attachment through
 * a BPF link fd, so the program goes away when the helper dies, and the
 * program stops rewriting by itself once quiesce_deadline_ns has passed,
 * even if something else kept it attached (a pinned link, a leaked fd).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../quiesce_tcp_shared.h"

/* Rewrite only while active, before the deadline. */
__u32 quiesce_active;
__u64 quiesce_deadline_ns;
/* Segments the helper itself sends carry this mark and are never touched. */
__u32 quiesce_mark;

/* Forwarded mode: add connections matching one of the first nr patterns. */
__u32 quiesce_learn;
__u32 quiesce_nr_patterns;
/* TCP segments seen at all, and those of no connection: the helper's
 * report tells "nothing passed here" from "nothing matched". */
__u64 quiesce_tcp_seen;
__u64 quiesce_tcp_unmatched;
/* Forwarded mode: the peers' segments to the guests, on ingress. */
__u64 quiesce_tcp_seen_in;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, QUIESCE_TCP_MAX_CONNS);
	__type(key, struct quiesce_tcp_key);
	__type(value, struct quiesce_tcp_val);
} quiesce_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, QUIESCE_TCP_MAX_PATTERNS);
	__type(key, __u32);
	__type(value, struct quiesce_tcp_pattern);
} quiesce_patterns SEC(".maps");

#define VLAN_HLEN	4
#define TCP_WIN_OFF	14
#define TCP_CSUM_OFF	16

static __always_inline int seq_after(__u32 a, __u32 b)
{
	return (__s32)(a - b) > 0;
}

static __always_inline int addr_eq(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* Forwarded mode: is @key a connection to add? Then it is added. */
static __always_inline int learn(const struct quiesce_tcp_key *key)
{
	struct quiesce_tcp_val zero = {};
	struct quiesce_tcp_pattern *p;
	__u32 i;

	for (i = 0; i < QUIESCE_TCP_MAX_PATTERNS; i++) {
		/* The key is a copy: the counter stays a precise register,
		 * which is how the verifier sees the loop end. */
		__u32 k = i;

		if (i >= quiesce_nr_patterns)
			return 0;
		p = bpf_map_lookup_elem(&quiesce_patterns, &k);
		if (!p)
			return 0;
		if ((p->family && p->family != key->family) ||
		    (p->sport && p->sport != key->sport) ||
		    (p->dport && p->dport != key->dport) ||
		    (p->has_saddr && !addr_eq(p->saddr, key->saddr)) ||
		    (p->has_daddr && !addr_eq(p->daddr, key->daddr)))
			continue;
		/* A full table leaves the connection alone: the helper
		 * sees the shortfall in its count. */
		return !bpf_map_update_elem(&quiesce_conns, key, &zero,
					    BPF_NOEXIST);
	}
	return 0;
}

/* A TCP segment's addresses and header; non-zero when it is none. */
static __always_inline int parse(struct __sk_buff *skb,
				 struct quiesce_tcp_key *key,
				 struct tcphdr *th, __u32 *l4, __u32 *payload)
{
	__u32 off = ETH_HLEN;
	__u16 proto;

	if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)))
		return -1;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		if (bpf_skb_load_bytes(skb, 16, &proto, sizeof(proto)))
			return -1;
		off += VLAN_HLEN;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)))
			return -1;
		if (ip.protocol != IPPROTO_TCP ||
		    (ip.frag_off & bpf_htons(0x3fff)) || ip.ihl < 5)
			return -1;
		key->family = 2;	/* AF_INET */
		__builtin_memcpy(key->saddr, &ip.saddr, 4);
		__builtin_memcpy(key->daddr, &ip.daddr, 4);
		*l4 = off + ip.ihl * 4;
		*payload = bpf_ntohs(ip.tot_len) - ip.ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)))
			return -1;
		/* Extension headers are not used by iSCSI or NVMe/TCP. */
		if (ip6.nexthdr != IPPROTO_TCP)
			return -1;
		key->family = 10;	/* AF_INET6 */
		__builtin_memcpy(key->saddr, &ip6.saddr, 16);
		__builtin_memcpy(key->daddr, &ip6.daddr, 16);
		*l4 = off + sizeof(ip6);
		*payload = bpf_ntohs(ip6.payload_len);
	} else {
		return -1;
	}

	if (bpf_skb_load_bytes(skb, *l4, th, sizeof(*th)))
		return -1;
	key->sport = th->source;
	key->dport = th->dest;
	return 0;
}

SEC("tc")
int quiesce_tcp_egress(struct __sk_buff *skb)
{
	struct quiesce_tcp_key key = {};
	struct quiesce_tcp_val *val;
	__u32 l4, payload, seq, ack, end;
	struct tcphdr th;
	__u16 win, zero = 0;
	__u64 now;

	if (parse(skb, &key, &th, &l4, &payload))
		return TC_ACT_UNSPEC;
	__sync_fetch_and_add(&quiesce_tcp_seen, 1);
	val = bpf_map_lookup_elem(&quiesce_conns, &key);
	if (!val && quiesce_learn && !th.rst && learn(&key))
		val = bpf_map_lookup_elem(&quiesce_conns, &key);
	if (!val) {
		__sync_fetch_and_add(&quiesce_tcp_unmatched, 1);
		return TC_ACT_UNSPEC;
	}
	bpf_skb_load_bytes(skb, 0, val->dst_mac, 6);
	bpf_skb_load_bytes(skb, 6, val->src_mac, 6);

	now = bpf_ktime_get_ns();
	seq = bpf_ntohl(th.seq);
	ack = bpf_ntohl(th.ack_seq);
	/* GSO super-packets carry their whole length in the IP header. */
	end = seq + payload - th.doff * 4 + th.syn + th.fin;
	if (!val->seen || seq_after(end, val->seq_next))
		val->seq_next = end;
	if (th.ack && (!val->seen || seq_after(ack, val->ack)))
		val->ack = ack;
	win = bpf_ntohs(th.window);
	val->win = win;
	val->last_ns = now;
	__sync_fetch_and_add(&val->seen, 1);

	if (!quiesce_active || now >= quiesce_deadline_ns ||
	    (quiesce_mark && skb->mark == quiesce_mark) ||
	    th.syn || th.rst || !th.ack) {
		if (val->zeroed && !val->first_open_ns)
			val->first_open_ns = now;
		return TC_ACT_UNSPEC;
	}
	if (!win)
		return TC_ACT_UNSPEC;

	/*
	 * The checksum helper copes with CHECKSUM_PARTIAL skbs (it leaves
	 * the field to the device or the software fallback) as well as with
	 * complete checksums, so offloads need no special case here.
	 */
	if (bpf_l4_csum_replace(skb, l4 + TCP_CSUM_OFF, th.window, zero,
				sizeof(zero)))
		return TC_ACT_UNSPEC;
	if (bpf_skb_store_bytes(skb, l4 + TCP_WIN_OFF, &zero, sizeof(zero), 0))
		return TC_ACT_UNSPEC;
	if (!val->zeroed)
		val->first_zero_ns = now;
	__sync_fetch_and_add(&val->zeroed, 1);
	return TC_ACT_UNSPEC;
}

/*
 * Forwarded mode, on ingress of the same interface: a peer's segment to a
 * guest teaches the connection too, so that a guest silent while the
 * migration runs (a target still sending it data, or waiting) is paused as
 * well. Until the guest's own segments say better, this one gives what a
 * kick needs: the guest's MAC (the frame's destination), a sequence number
 * the guest has or is about to have, and one it has sent.
 */
SEC("tc")
int quiesce_tcp_ingress(struct __sk_buff *skb)
{
	struct quiesce_tcp_key in = {}, key = {};
	struct quiesce_tcp_val *val;
	__u32 l4, payload;
	struct tcphdr th;

	if (!quiesce_learn || parse(skb, &in, &th, &l4, &payload))
		return TC_ACT_UNSPEC;
	__sync_fetch_and_add(&quiesce_tcp_seen_in, 1);
	key.family = in.family;
	__builtin_memcpy(key.saddr, in.daddr, 16);
	__builtin_memcpy(key.daddr, in.saddr, 16);
	key.sport = in.dport;
	key.dport = in.sport;
	val = bpf_map_lookup_elem(&quiesce_conns, &key);
	if (!val && !th.rst && !th.syn && th.ack && learn(&key))
		val = bpf_map_lookup_elem(&quiesce_conns, &key);
	if (!val || val->seen)
		return TC_ACT_UNSPEC;
	bpf_skb_load_bytes(skb, 0, val->src_mac, 6);
	bpf_skb_load_bytes(skb, 6, val->dst_mac, 6);
	val->ack = bpf_ntohl(th.seq);
	val->seq_next = bpf_ntohl(th.ack_seq);
	val->last_ns = bpf_ktime_get_ns();
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
