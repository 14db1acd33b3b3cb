# SPDX-License-Identifier: GPL-2.0-only
# End-to-end helpers (inside the test VM): two "hosts" as network namespaces
# joined by a veth, each with its own NVMe VF bound to emuhba and its own
# QEMU 10 running (or receiving) the guest built by scripts/guest/mkguest.
# The guest's serial console and each QEMU's QMP are unix sockets in $E2E_DIR.
#
#   e2e_hosts_up                 VFs, emuhba, backends, namespaces, veth
#   e2e_hosts_link               the namespaces and veth alone (after vf-setup)
#   e2e_qemu_start NAME HOST VF [incoming]
#   e2e_console_wait NAME REGEX SECONDS
#   e2e_qmp NAME '{"execute":...}'      prints the reply (return or error)
#   e2e_migrate SRC DST           A -> B, prints name=value lines
#   e2e_mode BDF                  the adapter's mode (hbamig -j dev show)
#   e2e_reset_keeps_identity VM VF GIVEN CONSOLES...   (a test's checks)
#   e2e_failed_migration CUR CONSOLES...               (a test's checks)
#
# Optional, for callers that give the guest more than its disk (unset: none):
#   E2E_NET_a, E2E_NET_b  more QEMU arguments for the QEMUs on host A or B
#                         (split on blanks), e.g. a NIC: "-netdev tap,id=n0,
#                         ifname=TAP,script=no,downscript=no -device
#                         virtio-net-pci,netdev=n0,mac=MAC" (the same MAC on
#                         both hosts: it is the same guest)
#   E2E_APPEND            more of the guest's kernel command line, e.g.
#                         guestnet="..." guestio2="..." (scripts/guest/init)
#   E2E_TICKS_OF          whose tick lines e2e_guest_ticks reads: guestio
#                         (default, the workload on the local disk) or
#                         guestio-fab (the one on the guest's network storage)

E2E_ROOT=${E2E_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
E2E_DIR=${E2E_DIR:-/tmp/e2e}
E2E_HBAMIG=${E2E_HBAMIG:-$E2E_ROOT/userspace/hbamig}
E2E_KVER=${KVER:-$(uname -r)}
E2E_KERNEL=${E2E_KERNEL:-$E2E_ROOT/build/guest/vmlinux}
E2E_INITRD=${E2E_INITRD:-$E2E_ROOT/build/guest/initrd.gz}
E2E_MEM=${E2E_MEM:-160}
E2E_GUESTIO=${E2E_GUESTIO:--t 4 -n 512 -i 100}
E2E_PORT=${E2E_PORT:-4444}
E2E_T0=${E2E_T0:-$(date +%s.%N)}
# How long a real guest's workload may stand still before it counts as hung.
# Under TCG inside TCG a whole guest stands still for tens of seconds after
# a migration, a reset or a failed migration (CI: 46 to 230 s), and its
# NVMe/TCP workload may wait on top for TCP's retransmission backoff (up to
# TCP_RTO_MAX, 120 s) or a reconnect. guest_progress and guest_resumed
# return as soon as I/O shows, so a passing run does not pay this bound.
E2E_HANG_S=${E2E_HANG_S:-360}
# host name -> address on the veth
# Built-in initcalls that cost the guest seconds under TCG and that it does
# not need (entropy self-test, certificate list, BPF struct_ops, crypto KDF
# self-test).
E2E_BLACKLIST=initcall_blacklist=jent_mod_init,bpf_tcp_ca_kfunc_init,load_system_certificate_list,bpf_dummy_struct_ops_init,depot_debugfs_init,init_encrypted,crypto_kdf108_init,lockup_detector_check
declare -A E2E_ADDR=([a]=10.99.0.1 [b]=10.99.0.2)

e2e_now_ms()
{
	local n
	n=$(date +%s%N)
	echo $((n / 1000000))
}

e2e_log()
{
	printf '# [%6.1fs] %s\n' "$(echo "$(date +%s.%N) - $E2E_T0" | bc)" "$*" >&2
}

e2e_hosts_up()
{
	mkdir -p "$E2E_DIR"
	eval "$("$E2E_ROOT/selftests/vm/vf-setup" 3)" || return 1
	export PF PFNS VF0 VF1 VF2
	modprobe vfio_pci_core 2>/dev/null
	modprobe vfio_iommu_type1 2>/dev/null
	[ -d /sys/module/emuhba ] || insmod "$E2E_ROOT/emuhba.ko" || return 1
	for vf in "$VF0" "$VF1"; do
		"$E2E_HBAMIG" dev bind "$vf" >/dev/null || return 1
		"$E2E_HBAMIG" dev set "$vf" backend "$PFNS" >/dev/null || return 1
		"$E2E_HBAMIG" dev set "$vf" policy auto-switch on >/dev/null || return 1
	done
	e2e_hosts_link
}

# e2e_hosts_link: after vf-setup, the two hosts' namespaces joined by the
# veth, the guest's files where every QEMU reads them, and each host's VF.
e2e_hosts_link()
{
	modprobe veth 2>/dev/null
	ip netns add e2e-a && ip netns add e2e-b || return 1
	ip link add e2e-va netns e2e-a type veth peer name e2e-vb netns e2e-b || return 1
	ip -n e2e-a addr add "${E2E_ADDR[a]}/24" dev e2e-va
	ip -n e2e-b addr add "${E2E_ADDR[b]}/24" dev e2e-vb
	for h in a b; do
		ip -n "e2e-$h" link set lo up
		ip -n "e2e-$h" link set "e2e-v$h" up || return 1
	done
	# Every QEMU of this run boots the same guest files, even if the
	# project is rebuilt meanwhile.
	mkdir -p /tmp/e2e-guest
	cp "$E2E_KERNEL" /tmp/e2e-guest/vmlinux && cp "$E2E_INITRD" /tmp/e2e-guest/initrd.gz || return 1
	E2E_KERNEL=/tmp/e2e-guest/vmlinux
	E2E_INITRD=/tmp/e2e-guest/initrd.gz
	# Host A's VF lives on host A, B's on B.
	E2E_VF_a=$VF0
	E2E_VF_b=$VF1
}

# e2e_qemu_start NAME HOST VF [incoming]: start QEMU in host HOST's namespace;
# with "incoming" it waits for a migration on HOST's address.
e2e_qemu_start()
{
	local name=$1 host=$2 vf=$3 incoming=${4:-} extra=() dev net=()
	local d=$E2E_DIR netvar=E2E_NET_$2

	# VF "emulated": the control experiment, no VFIO at all: a virtio disk
	# on a file both "hosts" share (QEMU's NVMe model cannot migrate); the
	# guest then needs E2E_GUESTIO with -d /dev/vda.
	if [ "$vf" = emulated ]; then
		[ -f /tmp/e2e-control.img ] || truncate -s 64M /tmp/e2e-control.img
		dev=(-drive "file=/tmp/e2e-control.img,if=none,id=d0,format=raw"
		     -device virtio-blk-pci,drive=d0)
	else
		dev=(-device "vfio-pci,host=$vf,enable-migration=on${E2E_VFIO_OPTS:-}")
	fi

	rm -f "$d/$name.qmp" "$d/$name.con" "$d/$name.log" "$d/$name.in"
	[ -n "${!netvar:-}" ] && read -ra net <<< "${!netvar}"
	[ -n "$incoming" ] && extra=(-incoming "tcp:${E2E_ADDR[$host]}:$E2E_PORT")
	# E2E_TRACE: comma-separated trace event patterns, e.g. "vfio_*"
	if [ -n "${E2E_TRACE:-}" ]; then
		echo "$E2E_TRACE" | tr ',' '\n' > "$d/trace-events"
		extra+=(-trace "events=$d/trace-events,file=$d/$name.trace")
	fi
	# The guest is the installed kernel, unmodified; no vIOMMU; the only
	# devices are the VF and a serial port. The machine type and CPU model
	# must match on both sides of a migration.
	ip netns exec "e2e-$host" qemu-system-x86_64 \
		-name "$name" -M pc -accel tcg -cpu qemu64 -smp 1 -m "$E2E_MEM" \
		-nodefaults -no-user-config -display none -no-reboot \
		-kernel "$E2E_KERNEL" -initrd "$E2E_INITRD" \
		-append "console=ttyS0 quiet panic=-1 mitigations=off ${E2E_CLOCK-tsc=reliable} no_timer_check $E2E_BLACKLIST guestio=\"$E2E_GUESTIO\"${E2E_APPEND:+ $E2E_APPEND}" \
		"${dev[@]}" "${net[@]}" \
		-chardev "socket,id=con,path=$d/$name.con,server=on,wait=off" \
		-serial chardev:con \
		-qmp "unix:$d/$name.qmp,server=on,wait=off" \
		"${extra[@]}" >"$d/$name.qemu.log" 2>&1 &
	echo $! > "$d/$name.pid"
	local i
	for i in $(seq 300); do
		[ -S "$d/$name.con" ] && [ -S "$d/$name.qmp" ] && break
		kill -0 "$(cat "$d/$name.pid")" 2>/dev/null || break
		sleep 0.1
	done
	if [ ! -S "$d/$name.con" ]; then
		e2e_log "QEMU $name did not start: $(cat "$d/$name.qemu.log")"
		return 1
	fi
	# -incoming listens only once QEMU finished its setup.
	if [ -n "$incoming" ]; then
		for i in $(seq 1200); do
			[ -n "$(ip netns exec "e2e-$host" ss -ltnH "sport = :$E2E_PORT")" ] && break
			kill -0 "$(cat "$d/$name.pid")" 2>/dev/null || break
			sleep 0.1
		done
		if [ -z "$(ip netns exec "e2e-$host" ss -ltnH "sport = :$E2E_PORT")" ]; then
			e2e_log "QEMU $name does not listen for the migration: $(cat "$d/$name.qemu.log")"
			return 1
		fi
	fi
	# The console: everything the guest prints goes to NAME.log; a line
	# written into the fifo NAME.in reaches the guest's stdin. The fifo is
	# held open read-write so that socat never sees its end.
	mkfifo "$d/$name.in"
	exec {E2E_FD}<>"$d/$name.in"
	# Each line is stamped with the host time it arrived (ms), for the plot.
	(socat -b 4096 "UNIX-CONNECT:$d/$name.con" STDIO <&$E2E_FD 2>/dev/null |
		e2e_stamp >"$d/$name.log") &
	echo $! > "$d/$name.socat.pid"
	exec {E2E_FD}>&-
}

e2e_qemu_alive()
{
	kill -0 "$(cat "$E2E_DIR/$1.pid" 2>/dev/null)" 2>/dev/null
}

# e2e_qemu_stop NAME: quit over QMP, then kill; waits for it to end.
e2e_qemu_stop()
{
	local name=$1 pid i
	pid=$(cat "$E2E_DIR/$name.pid" 2>/dev/null) || return 0
	if kill -0 "$pid" 2>/dev/null; then
		e2e_qmp "$name" '{"execute":"quit"}' >/dev/null 2>&1
		for i in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	kill "$(cat "$E2E_DIR/$name.socat.pid" 2>/dev/null)" 2>/dev/null
	rm -f "$E2E_DIR/$name.pid"
}

e2e_console_send()
{
	echo "$2" > "$E2E_DIR/$1.in"
}

# e2e_console_wait NAME REGEX SECONDS: wait until the guest printed REGEX.
e2e_console_wait()
{
	local name=$1 re=$2 t=$(($3 * 10)) i
	for i in $(seq "$t"); do
		grep -qE "$re" "$E2E_DIR/$name.log" 2>/dev/null && return 0
		e2e_qemu_alive "$name" || { grep -qE "$re" "$E2E_DIR/$name.log"; return; }
		sleep 0.1
	done
	return 1
}

# e2e_qmp NAME JSON: one command on a fresh QMP connection; prints the reply
# line (return or error), events are skipped.
e2e_qmp()
{
	local name=$1 cmd=$2 out i
	for i in 1 2 3; do
		out=$(printf '{"execute":"qmp_capabilities"}\n%s\n' "$cmd" |
			socat -t 1 - "UNIX-CONNECT:$E2E_DIR/$name.qmp" 2>/dev/null |
			jq -c 'select(has("return") or has("error"))' 2>/dev/null |
			sed -n 2p)
		[ -n "$out" ] && { echo "$out"; return 0; }
		[ "$cmd" = '{"execute":"quit"}' ] && return 0
	done
	return 1
}

e2e_mode()
{
	"$E2E_HBAMIG" -j dev show "$1" 2>/dev/null | jq -r '.[0].mode'
}

e2e_adapter()
{
	"$E2E_HBAMIG" -j dev show "$1" 2>/dev/null | jq -c '.[0]'
}

# stdin lines -> "MS line" with the host's wall clock in milliseconds; bash
# builtins only, so that nothing buffers a line.
e2e_stamp()
{
	local l t
	while IFS= read -r l; do
		t=${EPOCHREALTIME/./}
		printf '%d %s\n' "$((t / 1000))" "${l%$'\r'}"
	done
}

# e2e_guest_ticks NAME...: the guest's tick lines from the consoles of the
# QEMUs it ran on, in order: "host_ms t_ms ios d_ios err mis max_lat_us".
# Those of the workload $E2E_TICKS_OF (default guestio).
e2e_guest_ticks()
{
	local n
	for n in "$@"; do
		sed -n 's/^\([0-9]*\) '"${E2E_TICKS_OF:-guestio}"' tick t_ms=\([0-9]*\) ios=\([0-9]*\) d_ios=\([0-9]*\) err=\([0-9]*\) mis=\([0-9]*\) max_lat_us=\([0-9]*\).*/\1 \2 \3 \4 \5 \6 \7/p' \
			"$E2E_DIR/$n.log" 2>/dev/null
	done
}

# e2e_migrate_qmp SRC DSTHOST: migrate QEMU SRC to the QEMU waiting on
# DSTHOST, driving QMP directly. Prints name=value lines: status, total_ms,
# downtime_ms, setup_ms and the host times (ms) of each status change
# (t_setup, t_active, t_device, t_completed | t_failed ...).
e2e_migrate_qmp()
{
	local src=$1 dst=$2 r st last="" deadline
	e2e_qmp "$src" "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"max-bandwidth\":${E2E_BANDWIDTH:-1073741824},\"downtime-limit\":500}}" >/dev/null
	r=$(e2e_qmp "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:${E2E_ADDR[$dst]}:$E2E_PORT\"}}")
	echo "t_start=$(e2e_now_ms)"
	if ! echo "$r" | jq -e 'has("return")' >/dev/null 2>&1; then
		echo "status=refused"
		echo "error=$(echo "$r" | jq -r '.error.desc' 2>/dev/null)"
		return 1
	fi
	deadline=$(( $(e2e_now_ms) + ${E2E_MIGRATE_TIMEOUT:-300} * 1000 ))
	while [ "$(e2e_now_ms)" -lt "$deadline" ]; do
		r=$(e2e_qmp "$src" '{"execute":"query-migrate"}') || { sleep 0.2; continue; }
		st=$(echo "$r" | jq -r '.return.status // "none"')
		if [ "$st" != "$last" ]; then
			echo "t_$st=$(e2e_now_ms)"
			last=$st
		fi
		case "$st" in
		completed|failed|cancelled) break ;;
		esac
		[ -n "${E2E_ON_ACTIVE:-}" ] && [ "$st" = active ] && { eval "$E2E_ON_ACTIVE"; E2E_ON_ACTIVE=""; }
		sleep 0.3
	done
	echo "status=$st"
	echo "total_ms=$(echo "$r" | jq -r '.return["total-time"] // ""')"
	echo "downtime_ms=$(echo "$r" | jq -r '.return.downtime // ""')"
	echo "setup_ms=$(echo "$r" | jq -r '.return["setup-time"] // ""')"
	echo "ram_bytes=$(echo "$r" | jq -r '.return.ram.transferred // ""')"
	echo "state_bytes=$(echo "$r" | jq -r '.return.vfio.transferred // ""')"
	echo "error=$(echo "$r" | jq -r '.return["error-desc"] // ""')"
	[ "$st" = completed ]
}


# e2e_status NAME: QEMU's run state (running, inmigrate, postmigrate, ...)
e2e_status()
{
	e2e_qmp "$1" '{"execute":"query-status"}' | jq -r '.return.status // "none"'
}

# e2e_plain_vfio_pci VF: the baseline. The VF goes to plain vfio-pci and QEMU
# is asked to migrate a VM holding it, as it is and with
# enable-migration=on. Prints plain_vfio_pci_migratable=0|1 and QEMU's words.
e2e_plain_vfio_pci()
{
	local vf=$1 d=$E2E_DIR r pid err
	modprobe vfio-pci 2>/dev/null
	echo vfio-pci > "/sys/bus/pci/devices/$vf/driver_override"
	echo "$vf" > /sys/bus/pci/drivers_probe 2>/dev/null
	rm -f "$d/plain.qmp"
	qemu-system-x86_64 -name plain -M pc -accel tcg -cpu qemu64 -m 64 \
		-nodefaults -no-user-config -display none -S \
		-device "vfio-pci,host=$vf" \
		-qmp "unix:$d/plain.qmp,server=on,wait=off" >"$d/plain.qemu.log" 2>&1 &
	pid=$!
	echo $pid > "$d/plain.pid"
	for i in $(seq 600); do
		[ -S "$d/plain.qmp" ] && e2e_qmp plain '{"execute":"query-status"}' >/dev/null && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	r=$(e2e_qmp plain '{"execute":"migrate","arguments":{"uri":"exec:cat >/dev/null"}}')
	sleep 1
	[ -n "$r" ] && echo "$r" | jq -e 'has("return")' >/dev/null &&
		r=$(e2e_qmp plain '{"execute":"query-migrate"}')
	e2e_qemu_stop plain
	if echo "$r" | jq -e '.return.status == "completed"' >/dev/null 2>&1; then
		echo "vfio_pci_migratable=1"
	else
		echo "vfio_pci_migratable=0"
	fi
	err=$(echo "$r" | jq -r '.error.desc // .return["error-desc"] // ""' 2>/dev/null)
	echo "qemu_says=\"${err:-$(tail -n1 "$d/plain.qemu.log")}\""
	# The only way QEMU offers around its blocker, on this kernel.
	err=$(printf '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n' |
		timeout 120 qemu-system-x86_64 -M pc -accel tcg -cpu qemu64 -m 64 \
		-nodefaults -no-user-config -display none -S \
		-device "vfio-pci,host=$vf,enable-migration=on" \
		-qmp stdio 2>&1 | grep -m1 'qemu-system')
	echo "enable_migration_on_says=\"${err#qemu-system-x86_64: }\""
	echo > "/sys/bus/pci/devices/$vf/driver_override"
	echo "$vf" > "/sys/bus/pci/devices/$vf/driver/unbind" 2>/dev/null
}

e2e_have_hbamig_migrate()
{
	local out
	out=$("$E2E_HBAMIG" migrate help 2>&1)
	! echo "$out" | grep -qi 'not available'
}

# e2e_migrate SRC DST DSTHOST: the migration as an administrator runs it,
# hbamig migrate; prints the same name=value lines as e2e_migrate_qmp plus
# what hbamig reports (switch share, destination mode). E2E_QMP_DRIVER=1
# drives QMP from the shell instead (the control guest, which has no emuhba
# adapter); an hbamig without migrate is a failure, not a reason to
# fall back.
e2e_migrate()
{
	local src=$1 dst=$2 host=$3 srchost out rc
	if [ -n "${E2E_QMP_DRIVER:-}" ]; then
		echo "driver=qmp"
		e2e_migrate_qmp "$src" "$host"
		return
	fi
	if ! e2e_have_hbamig_migrate; then
		echo "status=not-run"
		echo "error=$E2E_HBAMIG has no migrate command"
		return 1
	fi
	srchost=$([ "$host" = a ] && echo b || echo a)
	echo "driver=hbamig"
	echo "t_start=$(e2e_now_ms)"
	# E2E_MIGRATE_ARGS: an array of more hbamig migrate options (--peer)
	out=$("$E2E_HBAMIG" -j migrate --qmp "$E2E_DIR/$src.qmp" \
		--to "tcp:${E2E_ADDR[$host]}:$E2E_PORT" \
		--dev "$(eval echo "\$E2E_VF_$srchost")" \
		--dest-dev "$(eval echo "\$E2E_VF_$host")" \
		--dest-qmp "$E2E_DIR/$dst.qmp" \
		${E2E_MIGRATE_ARGS[@]+"${E2E_MIGRATE_ARGS[@]}"} \
		2>"$E2E_DIR/$src-$dst.hbamig.err")
	rc=$?
	echo "$out" > "$E2E_DIR/$src-$dst.hbamig.json"
	echo "hbamig_exit=$rc"
	if [ "$rc" = 0 ]; then
		echo "t_completed=$(e2e_now_ms)"
	else
		echo "t_failed=$(e2e_now_ms)"
	fi
	echo "$out" | jq -r 'to_entries[] | select(.value | type != "object" and type != "array")
		| "\(.key)=\(.value // "")"' 2>/dev/null |
		sed 's/^total_ms=/hbamig_total_ms=/; s/^qemu_total_ms=/total_ms=/'
	[ "$rc" = 0 ] || echo "error=$(tail -n 3 "$E2E_DIR/$src-$dst.hbamig.err" | tr '\n' ' ')"
	return "$rc"
}

# e2e_env_args: the E2E_* settings of this environment as shell words, to
# hand them to a command run inside the test VM.
e2e_env_args()
{
	local v
	for v in E2E_VFIO_OPTS E2E_TRACE E2E_QMP_DRIVER E2E_GUESTIO E2E_MEM E2E_WARMUP E2E_SETTLE E2E_CLOCK; do
		[ -n "${!v:-}" ] && printf '%s=%q ' "$v" "${!v}"
	done
}

# last_tick NAME...: the newest tick line over these consoles
last_tick()
{
	e2e_guest_ticks "$@" | tail -n1
}

# progress NAME SECONDS: the guest's workload reports I/O on NAME's console
# that it had not reported when this was called, within SECONDS. Returns as
# soon as it does: a fixed sleep cost make check minutes of idle VMs.
guest_progress()
{
	local name=$1 end before after
	end=$(( $(e2e_now_ms) + $2 * 1000 ))
	before=$(last_tick "$name" | awk '{print $3}')
	before=${before:-0}
	while :; do
		sleep 1
		after=$(last_tick "$name" | awk '{print $3}')
		[ -n "$after" ] && [ "$after" -gt "$before" ] && return 0
		[ "$(e2e_now_ms)" -lt "$end" ] || return 1
	done
}

# guest_resumed SRC DST SINCE_MS SECONDS: wait until the guest, now on DST,
# completes an I/O it had not done on SRC; prints how long after SINCE_MS
# (host time) that I/O was reported. Fails after SECONDS.
guest_resumed()
{
	local src=$1 dst=$2 since=$3 end base t
	end=$(( $(e2e_now_ms) + $4 * 1000 ))
	base=$(last_tick "$src" | awk '{print $3}')
	while :; do
		t=$(e2e_guest_ticks "$dst" | awk -v b="${base:-0}" '$3 > b { print $1; exit }')
		[ -n "$t" ] && { echo $((t - since)); return 0; }
		[ "$(e2e_now_ms)" -lt "$end" ] || return 1
		sleep 0.5
	done
}

guest_clean()
{
	# cumulative err and mis of the newest tick over all consoles
	e2e_guest_ticks "$@" | awk '$5 || $6 { bad = 1 } END { exit bad }'
}

# e2e_reset_keeps_identity VM VF GIVEN CONSOLES...: the guest, running as VM
# on host B's adapter VF since a migration, resets its controller. The VFs
# of the two hosts are different controllers (their CNTLIDs differ), and
# after a reset the guest's driver reads Identify again: it must find the
# identity it was given on A (GIVEN, its "guestio identity now" line), the
# controller live, and its workload going on clean over CONSOLES. Failures
# are check_err'd.
e2e_reset_keeps_identity()
{
	local vm=$1 vf=$2 given=$3 id
	shift 3
	[ "$(cat "/sys/bus/pci/devices/$vf/emuhba/identity")" = guest ] &&
		[ "$(e2e_adapter "$vf" | jq -r '.identity.guest_identity')" = true ]
	check_err $? "host B's adapter presents '$(cat "/sys/bus/pci/devices/$vf/emuhba/identity")' identity, not the guest's"
	e2e_console_send "$vm" r
	e2e_console_wait "$vm" 'guestio identity after_reset' "$E2E_HANG_S"
	check_err $? "the guest's controller reset on host B did not finish"
	id=$(grep -m1 'guestio identity after_reset' "$E2E_DIR/$vm.log" | tr -d '\r')
	e2e_log "identity after a controller reset on host B: ${id#guestio identity after_reset }"
	[ -n "$given" ] && [ "$(e2e_id_fields "$given")" = "$(e2e_id_fields "$id")" ]
	check_err $? "identity changed: given '${given#guestio identity now }', on B after reset '${id#guestio identity after_reset }'"
	echo "$id" | grep -q ' state=live'
	check_err $? "controller not live after the reset: $id"
	guest_progress "$vm" "$E2E_HANG_S"
	check_err $? "no I/O progress on host B within $E2E_HANG_S s after the controller reset"
	guest_clean "$@"
	check_err $? "I/O errors or mismatches across the controller reset"
}

# the fields of an identity line that name the controller
e2e_id_fields()
{
	echo "$1" | tr ' ' '\n' | grep -E '^(cntlid|model|serial|firmware_rev)='
}

# e2e_failed_migration CUR CONSOLES...: the guest runs as CUR. A migration
# to a destination QEMU ("dead" on the other host) killed while the stream
# runs must fail after the source adapter switched, and leave the guest
# running on the source, its workload going on clean over CONSOLES (and
# dead's), the adapter direct. Failures are check_err'd.
e2e_failed_migration()
{
	local cur=$1 curvf other mpid sw_before sw_after st
	shift
	case $cur in
	a*) curvf=$E2E_VF_a other=b ;;
	*) curvf=$E2E_VF_b other=a ;;
	esac
	# An adapter left emulated by an earlier failure is put back to
	# direct as an administrator would (the switch needs the vCPUs
	# stopped), so that this test checks its own case.
	if [ "$(e2e_mode "$curvf")" != direct ]; then
		e2e_log "$curvf is $(e2e_mode "$curvf"): stop, hbamig switch $curvf direct, cont"
		e2e_qmp "$cur" '{"execute":"stop"}' >/dev/null
		"$E2E_HBAMIG" switch "$curvf" direct >&2
		e2e_qmp "$cur" '{"execute":"cont"}' >/dev/null
	fi
	sw_before=$(e2e_adapter "$curvf" | jq -r '.counters.switches')
	e2e_qemu_start dead "$other" "$(eval echo "\$E2E_VF_$other")" incoming
	check_err $? "destination QEMU did not start"
	# Slow enough that the stream is still running when the destination
	# is killed.
	e2e_qmp "$cur" '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":4194304}}' >/dev/null
	E2E_MIGRATE_ARGS=()
	e2e_migrate "$cur" dead "$other" > "$E2E_DIR/failed.mig" &
	mpid=$!
	sleep 6
	kill -KILL "$(cat "$E2E_DIR/dead.pid")"
	e2e_log "destination QEMU killed"
	wait "$mpid"
	check_fail $? "migration completed although its destination was killed"
	sed 's/^/# /' "$E2E_DIR/failed.mig"
	# The destination must die while the device is migrating, not before.
	sw_after=$(e2e_adapter "$curvf" | jq -r '.counters.switches')
	[ "${sw_after:-0}" -gt "${sw_before:-0}" ]
	check_err $? "the migration failed before the source adapter switched: $(grep -m1 '^error=' "$E2E_DIR/failed.mig")"
	[ "$(e2e_status dead 2>/dev/null)" = running ] || e2e_qemu_stop dead
	st=$(e2e_qmp "$cur" '{"execute":"query-status"}' | jq -r '.return.status')
	[ "$st" = running ]
	check_err $? "source VM is '$st' after the failed migration, not running"
	guest_progress "$cur" "$E2E_HANG_S"
	check_err $? "guest makes no I/O progress on the source within $E2E_HANG_S s after the failed migration"
	guest_clean "$@" dead
	check_err $? "I/O errors or mismatches after the failed migration: $(last_tick "$cur")"
	[ "$(e2e_mode "$curvf")" = direct ]
	check_err $? "source adapter $curvf is '$(e2e_mode "$curvf")' after the failed migration, not direct"
}
