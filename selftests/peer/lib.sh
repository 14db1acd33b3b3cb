# SPDX-License-Identifier: GPL-2.0-only
# The end-to-end guest's own network storage (inside the test VM, on top of
# selftests/e2e/lib.sh): an nvmet-tcp target in a third namespace, e2e-t,
# and one L2 segment from the guest's NIC on either host to the target, so
# that the guest keeps its address and MAC wherever it runs:
#
#   e2e-a: tap peer-tapa + veth peer-ha in bridge peer-bra
#   e2e-b: tap peer-tapb + veth peer-hb in bridge peer-brb
#   e2e-t: veths peer-ta, peer-tb in bridge peer-br (PEER_TARGET/24),
#          nvmet-tcp port on PEER_TARGET:PEER_PORT exporting a loop device
#          on a tmpfs file (it keeps what the guest writes, so the guest's
#          verifier means something)
#
# After a migration QEMU announces the guest (self-announce), and the
# bridges learn its MAC on the new port.
#
#   peer_topology_up         the above (after e2e_hosts_up)
#   peer_guest_env           E2E_NET_a, E2E_NET_b, E2E_APPEND for the guest
#   peer_ss_start FILE       sample the target's connections every 100 ms
#   peer_ss_stop             end the sampling
#   peer_ss_summary FILE     "retrans=N max_backoff=B conns=C" over FILE
#   peer_stall SINCE UNTIL NAME...  longest time (ms) without progress

PEER_NS=e2e-t
PEER_TARGET=10.97.0.100
PEER_GUEST=10.97.0.10
PEER_PORT=4420
PEER_NQN=nqn.2026-11.io.emuhba:peer
PEER_MAC=52:54:00:97:00:0a
PEER_IMG=/dev/shm/peer-target.img
PEER_CFS=/sys/kernel/config/nvmet
PEER_GUESTIO2=${PEER_GUESTIO2:--t 2 -n 256 -i 100}
# Under TCG inside TCG a migrated guest stands still for 20 s to minutes
# after QEMU resumed it (selftests/e2e, E2E_HANG_S); with the default
# keep-alive (5 s) the target then declares the controller dead and the
# guest reconnects after 10 s, new connections replacing the ones this
# suite measures. A real guest resumes within the downtime. 90 s was not
# enough on a loaded CI machine (the fabric stood still 128 s).
PEER_FABRIC_OPTS=${PEER_FABRIC_OPTS-keep_alive_tmo=300}
# The fabric's hang bound: the guest's, plus a reconnect (reconnect_delay
# 10 s, and the connect itself) should the target have given up anyway.
PEER_FAB_HANG_S=${PEER_FAB_HANG_S:-$((E2E_HANG_S + 30))}

# peer_guest_why NAME: what a guest whose fabric stands still was doing,
# for the log of a failed run: its newest ticks of both workloads, its
# kernel's last words on the NVMe/TCP controller and TCP, the target's
# sockets and keep-alive expiries.
peer_guest_why()
{
	local name=$1
	echo "# $name: last VF tick: $(E2E_TICKS_OF=guestio last_tick "$name")"
	echo "# $name: last fabric tick: $(E2E_TICKS_OF=${FAB:-guestio-fab} last_tick "$name")"
	grep -aE 'gdmesg: ' "$E2E_DIR/$name.log" 2>/dev/null | tail -n 15 | sed "s/^/# $name: /"
	ss -tinH "dport = :$PEER_PORT or sport = :$PEER_PORT" 2>/dev/null | head -n 8 | sed 's/^/# target: /'
	dmesg | grep -E 'nvmet' | tail -n 5 | sed 's/^/# target: /'
}

peer_topology_up()
{
	local h

	modprobe -a veth bridge tun loop nvmet nvmet-tcp tcp_diag inet_diag 2>/dev/null
	ip netns add "$PEER_NS" || return 1
	ip -n "$PEER_NS" link set lo up
	ip -n "$PEER_NS" link add peer-br type bridge || return 1
	for h in a b; do
		ip -n "e2e-$h" link add "peer-br$h" type bridge || return 1
		# The tap exists before QEMU starts, so QEMU (run without a
		# script) only attaches to it; persistent, it outlives the
		# QEMU of one migration for the next one on this host.
		ip -n "e2e-$h" tuntap add dev "peer-tap$h" mode tap || return 1
		ip link add "peer-t$h" netns "$PEER_NS" type veth \
			peer name "peer-h$h" netns "e2e-$h" || return 1
		ip -n "e2e-$h" link set "peer-tap$h" master "peer-br$h" || return 1
		ip -n "e2e-$h" link set "peer-h$h" master "peer-br$h" || return 1
		ip -n "$PEER_NS" link set "peer-t$h" master peer-br || return 1
		ip -n "e2e-$h" link set "peer-tap$h" up
		ip -n "e2e-$h" link set "peer-h$h" up
		ip -n "e2e-$h" link set "peer-br$h" up || return 1
		ip -n "$PEER_NS" link set "peer-t$h" up || return 1
	done
	ip -n "$PEER_NS" addr add "$PEER_TARGET/24" dev peer-br
	ip -n "$PEER_NS" link set peer-br up || return 1
	peer_target_up
}

peer_target_up()
{
	local loopdev s=$PEER_CFS/subsystems/$PEER_NQN p=$PEER_CFS/ports/1

	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	[ -d "$PEER_CFS" ] || return 1
	truncate -s 64M "$PEER_IMG" || return 1
	loopdev=$(losetup --find --show "$PEER_IMG") || return 1
	PEER_LOOP=$loopdev
	mkdir "$s" || return 1
	echo 1 > "$s/attr_allow_any_host"
	mkdir "$s/namespaces/1"
	echo "$loopdev" > "$s/namespaces/1/device_path"
	echo 1 > "$s/namespaces/1/enable" || return 1
	mkdir "$p" || return 1
	echo tcp > "$p/addr_trtype"
	echo ipv4 > "$p/addr_adrfam"
	echo "$PEER_TARGET" > "$p/addr_traddr"
	echo "$PEER_PORT" > "$p/addr_trsvcid"
	# The port listens in the namespace of the process that links the
	# subsystem to it. ip netns exec would remount /sys and lose
	# configfs: nsenter keeps the mounts.
	nsenter --net="/run/netns/$PEER_NS" ln -s "$s" "$p/subsystems/$PEER_NQN" || return 1
	[ -n "$(ip netns exec "$PEER_NS" ss -ltnH "sport = :$PEER_PORT")" ]
}

peer_topology_down()
{
	local h
	rm -f "$PEER_CFS/ports/1/subsystems/$PEER_NQN" 2>/dev/null
	rmdir "$PEER_CFS/ports/1" 2>/dev/null
	echo 0 > "$PEER_CFS/subsystems/$PEER_NQN/namespaces/1/enable" 2>/dev/null
	rmdir "$PEER_CFS/subsystems/$PEER_NQN/namespaces/1" 2>/dev/null
	rmdir "$PEER_CFS/subsystems/$PEER_NQN" 2>/dev/null
	[ -n "${PEER_LOOP:-}" ] && losetup -d "$PEER_LOOP" 2>/dev/null
	rm -f "$PEER_IMG"
	for h in a b; do
		ip -n "e2e-$h" link del "peer-tap$h" 2>/dev/null
	done
	ip netns del "$PEER_NS" 2>/dev/null
}

# The guest's NIC on either host (one MAC: one guest) and its kernel
# command line for scripts/guest/init.
peer_guest_env()
{
	local h
	for h in a b; do
		# romfile=: no option ROM, the guest boots its kernel directly
		printf -v "E2E_NET_$h" '%s' "-netdev tap,id=n0,ifname=peer-tap$h,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=$PEER_MAC,romfile="
	done
	E2E_APPEND="guestnet=\"$PEER_GUEST/24 $PEER_TARGET $PEER_PORT $PEER_NQN${PEER_FABRIC_OPTS:+ $PEER_FABRIC_OPTS}\" guestio2=\"$PEER_GUESTIO2\""
	export E2E_NET_a E2E_NET_b E2E_APPEND
}

# peer_ss_start FILE: "== EPOCH_MS" then `ss -tin` of the target's
# connections on PEER_PORT, every 100 ms, until peer_ss_stop. One process
# in the target's namespace: no namespace switch per sample.
peer_ss_start()
{
	nsenter --net="/run/netns/$PEER_NS" bash -c '
		while :; do
			t=${EPOCHREALTIME/./}
			echo "== $((t / 1000))"
			ss -tinH "sport = :$1"
			sleep 0.1
		done' peer-ss "$PEER_PORT" > "$1" 2>&1 &
	PEER_SS_PID=$!
}

# bg_stop VAR: stop the background sampler whose pid VAR holds.
bg_stop()
{
	local pid=${!1:-}

	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	printf -v "$1" '%s' ""
}

peer_ss_stop() { bg_stop PEER_SS_PID; }

# peer_ss_summary FILE: over the samples, the target's retransmissions
# (tcpi_total_retrans, the second number of ss's retrans:A/B) summed over
# its connections to the guest (growth since the first sample; a connection
# that appears later counts from 0), the largest backoff seen (ss's
# backoff:, tcpi_backoff: RTO doublings) and how many connections there
# were; how many samples there were and the longest time between two (a
# loaded test VM does not keep to 100 ms). Prints "retrans=N max_backoff=B
# conns=C samples=S max_sample_gap_ms=G".
peer_ss_summary()
{
	awk '
	/^== / { n++; if (n > 1 && $2 - t > gap) gap = $2 - t; t = $2; next }
	/^[A-Z]/ { key = $4 "-" $5; next }
	key != "" {
		tr = 0; bo = 0
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^retrans:/) { split(substr($i, 9), a, "/"); tr = a[2] + 0 }
			if ($i ~ /^backoff:/) bo = substr($i, 9) + 0
		}
		if (!(key in first)) { first[key] = (n == 1) ? tr : 0; conns++ }
		if (tr > last[key]) last[key] = tr
		if (bo > maxbo) maxbo = bo
		key = ""
	}
	END {
		for (k in last) s += last[k] - first[k]
		printf "retrans=%d max_backoff=%d conns=%d samples=%d max_sample_gap_ms=%d\n", s, maxbo, conns, n, gap
	}' "$1"
}

# peer_ss_window FILE FROM_MS TO_MS [bracket]: the target's retransmissions
# between the first sample at or after FROM_MS and the last one at or before
# TO_MS (with "bracket": from the last sample at or before FROM_MS to the
# first at or after TO_MS, so that none in the window escapes), summed over
# its connections, and how many samples that was. Prints "retrans=N
# samples=S".
peer_ss_window()
{
	awk -v from="$2" -v to="$3" -v br="${4:-}" '
	/^== / {
		t = $2
		if (br != "") {
			# from the last sample at or before FROM to the first
			# at or after TO: the window whole, and a little more
			if (t <= from) { delete first; delete last; n = 0 }
			in_w = !done
			if (t >= to) done = 1
		} else
			in_w = (t >= from && t <= to)
		if (in_w) n++
		next
	}
	/^[A-Z]/ { key = $4 "-" $5; next }
	key != "" && in_w {
		tr = 0
		for (i = 1; i <= NF; i++)
			if ($i ~ /^retrans:/) { split(substr($i, 9), a, "/"); tr = a[2] + 0 }
		if (!(key in first)) first[key] = tr
		last[key] = tr
		key = ""
	}
	{ key = "" }
	END {
		for (k in last) s += last[k] - first[k]
		printf "retrans=%d samples=%d\n", s, n
	}' "$1"
}

# peer_wnd_start FILE: the target's view of its connections (tcp_info's
# snd_wnd: the window the guest last advertised) every 100 ms, one JSON
# line each, from hbamig quiesce conns in the target's namespace.
peer_wnd_start()
{
	nsenter --net="/run/netns/$PEER_NS" "$E2E_HBAMIG" -j quiesce conns \
		--conn "$PEER_TARGET:$PEER_PORT,*" --interval 100 > "$1" 2>&1 &
	PEER_WND_PID=$!
}

peer_wnd_stop() { bg_stop PEER_WND_PID; }

# peer_stall SINCE_MS UNTIL_MS NAME...: over the ticks of workload
# $E2E_TICKS_OF on these consoles, the longest time between two ticks whose
# I/O count grew that ends between SINCE_MS and UNTIL_MS (host time), or
# from the last of them to UNTIL_MS: how long the workload stood still. A
# stall that began before SINCE_MS counts whole.
peer_stall()
{
	local since=$1 until=$2
	shift 2
	e2e_guest_ticks "$@" | awk -v from="$since" -v to="$until" '
	$1 > to { next }
	prev == "" { prev = $1; pios = $3; next }
	$3 > pios {
		if ($1 >= from) { g = $1 - prev; if (g > max) max = g }
		prev = $1; pios = $3
	}
	END {
		if (prev == "") prev = from
		if (to - prev > max) max = to - prev
		print max + 0
	}'
}
