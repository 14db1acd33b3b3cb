#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Pause/resume latency of the TCP zero-window quiescer, on this machine (no
# VM: network namespaces and a veth pair only; needs root and tcx, Linux
# 6.6 or later). A verified stream flows from a peer namespace while the
# helper pauses it N times for HOLD ms; prints pause_ms, resume_ms and the
# time from the resume to the first byte back, as min/median/max.
#
#   make -C selftests/quiesce && bench/quiesce-tcp.sh [N] [HOLD_MS]
set -eu

n=${1:-20}
hold=${2:-200}
root=$(cd "$(dirname "$0")/.." && pwd)
B=$root/build/quiesce
ns_h=qbench-h ns_p=qbench-p
tmp=$(mktemp -d)

cleanup()
{
	[ -n "${spid:-}" ] && kill "$spid" 2>/dev/null
	ip netns del $ns_h 2>/dev/null
	ip netns del $ns_p 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# A previous run killed before its cleanup leaves these behind.
ip netns del $ns_h 2>/dev/null || true
ip netns del $ns_p 2>/dev/null || true
ip netns add $ns_h
ip netns add $ns_p
ip link add qb0 netns $ns_h type veth peer name qb1 netns $ns_p
ip -n $ns_h addr add 10.77.0.1/24 dev qb0
ip -n $ns_p addr add 10.77.0.2/24 dev qb1
ip -n $ns_h link set qb0 up
ip -n $ns_p link set qb1 up
# The helper loops its ACK-drawing segments back through lo.
ip -n $ns_h link set lo up
ip -n $ns_p link set lo up
export ASAN_OPTIONS=detect_leaks=0

ip netns exec $ns_p "$B/quiesce_tcpgen" send 7100 & spid=$!
sleep 0.3
ip netns exec $ns_h "$B/quiesce_tcpgen" recv 10.77.0.2 7100 \
	$(( n * (hold + 600) + 2000 )) > "$tmp/recv" & rpid=$!
sleep 0.5
for i in $(seq 1 "$n"); do
	ip netns exec $ns_h "$B/quiesce-cli" -j tcp --conn "*,10.77.0.2:7100" \
		--dev qb0 --for "$hold" | grep '"resumed"' >> "$tmp/q"
	sleep 0.3
done
wait $rpid

jq -r '.pause_ms' "$tmp/q" > "$tmp/pause"
jq -r '.resume_ms' "$tmp/q" > "$tmp/resume"
# First byte after each resume: the end of the stall covering it.
jq -r '.at_ms' "$tmp/q" | while read -r r; do
	awk -v r="$r" '$1 == "stall" && $2 < r && $3 >= r { printf "%.3f\n", $3 - r; exit }' "$tmp/recv"
done > "$tmp/back"

stats()
{
	sort -g "$2" | awk -v name="$1" '{ v[NR] = $1 } END {
		if (!NR) { printf "%s: no samples\n", name; exit }
		printf "%-22s n %3d  min %8.3f  median %8.3f  max %8.3f ms\n",
		       name, NR, v[1], v[int((NR + 1) / 2)], v[NR] }'
}
grep -q 'bad_words 0' "$tmp/recv" || { echo "stream corrupted" >&2; exit 1; }
stats pause_ms "$tmp/pause"
stats resume_ms "$tmp/resume"
stats first_byte_after_ms "$tmp/back"
