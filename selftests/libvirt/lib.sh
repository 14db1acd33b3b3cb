# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
# libvirt helpers (inside the test VM), on top of selftests/e2e/lib.sh: the
# same two "hosts" (network namespaces e2e-a and e2e-b joined by a veth) and
# the same guest, but each host runs a libvirt daemon of its own and libvirt
# starts, binds and migrates everything.
#
#   lv_install_module          emuhba.ko into /lib/modules/$(uname -r)/updates
#   lv_hosts_up                VFs online and unbound, namespaces, veth
#   lv_daemon_up HOST          libvirtd in HOST's network and mount namespace
#   lv_virsh HOST ARGS...      virsh connected to HOST's daemon
#   lv_domain_xml NAME VF      the guest's domain XML (console NAME.con)
#   lv_console_attach NAME     NAME.con -> NAME.log (stamped), NAME.in -> guest
#   lv_migrate SH TH SRC DST   virsh migrate --live --p2p, name=value lines
#
# Each daemon sees private /etc/libvirt, /run/libvirt, /var/lib/libvirt,
# /var/log/libvirt and /var/cache/libvirt: bind mounts of $LV_DIR/HOST/*
# (libvirtd's pid file is /run/libvirtd.pid, outside them: --pid-file puts
# it in the private /run/libvirt)
# in a mount namespace of its own, so that two daemons share one machine
# (and the test VM's root, this machine's, is read-only anyway). The
# daemons listen on TCP without authentication on the veth, which only the
# two namespaces reach: acceptable for a test, never for a real host (use
# TLS or SSH there, Documentation/libvirt.rst).

lv_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$lv_here/../e2e/lib.sh"

LV_DIR=${LV_DIR:-/tmp/lv}
LV_DOM=${LV_DOM:-emuhba-guest}
LV_ALIAS=ua-emuhba0
# Two daemons on one machine must not share a host UUID: libvirt refuses a
# migration to the host it comes from.
declare -A LV_UUID=([a]=5a2f6c1e-0d1b-4c3e-9a51-00000000000a
		    [b]=5a2f6c1e-0d1b-4c3e-9a51-00000000000b)

# lv_install_module: what "make install" does for the module, done in the
# test VM's writable overlay: libvirt finds a variant driver for a VF in
# modules.alias (vfio_pci: aliases, which depmod writes from the id table's
# override-only entries) and loads it with modprobe.
# depmod -a reads every compressed module of the kernel: minutes under
# TCG. scripts/depmod-stage (make check-vm-only runs it) computes the same
# files with the same depmod on the build machine, for this very
# emuhba.ko; without them, or for another build of the module, depmod -a
# runs here. LV_DEPMOD says which.
lv_install_module()
{
	local kver dst stage sum
	kver=$(uname -r)
	dst=/lib/modules/$kver
	stage=$E2E_ROOT/build/depmod/$kver
	mkdir -p "$dst/updates" && cp "$E2E_ROOT/emuhba.ko" "$dst/updates/emuhba.ko" || return 1
	sum=$(sha256sum < "$E2E_ROOT/emuhba.ko" | cut -d' ' -f1)
	if [ "$(cat "$stage/emuhba.ko.sha256" 2>/dev/null)" = "$sum" ]; then
		LV_DEPMOD="depmod -b, on the build machine (scripts/depmod-stage)"
		cp "$stage"/modules.* "$dst/"
	else
		LV_DEPMOD="depmod -a, here"
		depmod -a
	fi
}

# lv_hosts_up: e2e_hosts_up without the binding (libvirt binds the VFs, as
# managed='yes' asks): VFs online and left unbound, veth between e2e-a and
# e2e-b, guest files copied where both daemons' QEMUs read them.
lv_hosts_up()
{
	mkdir -p "$E2E_DIR"
	eval "$("$E2E_ROOT/selftests/vm/vf-setup" 3)" || return 1
	export PF PFNS VF0 VF1 VF2
	e2e_hosts_link
}

lv_uri()
{
	echo "qemu+unix:///system?socket=$LV_DIR/$1/run/libvirt-sock"
}

lv_virsh()
{
	local h=$1
	shift
	virsh -q -c "$(lv_uri "$h")" "$@"
}

# lv_daemon_conf HOST: libvirtd.conf, qemu.conf and the emuhba hook of HOST.
lv_daemon_conf()
{
	local h=$1 d=$LV_DIR/$1
	mkdir -p "$d"/etc/hooks/qemu.d "$d"/run "$d"/lib "$d"/log "$d"/cache
	cat > "$d/etc/libvirtd.conf" <<-EOF
	# Test only: TCP without authentication, on the host-private veth.
	listen_tls = 0
	listen_tcp = 1
	listen_addr = "${E2E_ADDR[$h]}"
	auth_tcp = "none"
	host_uuid = "${LV_UUID[$h]}"
	log_outputs = "1:file:/var/log/libvirt/libvirtd.log"
	log_filters = "1:qemu.qemu_migration 1:qemu.qemu_process 1:qemu.qemu_hostdev 1:hypervisor.virhostdev 1:util.pci 1:util.hook 3:util 3:rpc 3:qemu 3:conf 3:security"
	EOF
	# QEMU as root, unconfined (no AppArmor or SELinux in the test VM),
	# without cgroups (the test VM mounts none) and without the per-domain
	# /dev namespace; its output to a file instead of virtlogd, a third
	# daemon per host for nothing here.
	cat > "$d/etc/qemu.conf" <<-EOF
	user = "root"
	group = "root"
	dynamic_ownership = 0
	remember_owner = 0
	security_driver = "none"
	cgroup_controllers = [ ]
	namespaces = [ ]
	stdio_handler = "file"
	EOF
	cp "$E2E_ROOT/scripts/libvirt-qemu-hook" "$d/etc/hooks/qemu.d/emuhba"
	chmod 755 "$d/etc/hooks/qemu.d/emuhba"
	# The daemon runs in e2e-$h; the emuhba genl family exists in the
	# initial network namespace only.
	cat > "$d/etc/hooks/emuhba.conf" <<-EOF
	HBAMIG="nsenter --net=/proc/1/ns/net $E2E_HBAMIG"
	EMUHBA_BACKEND=auto
	EMUHBA_HOOK_LOG=/var/log/libvirt/emuhba-hook.log
	EOF
}

# lv_daemon_up HOST: start libvirtd --listen in HOST's namespaces and wait
# until virsh reaches it.
lv_daemon_up()
{
	local h=$1 d=$LV_DIR/$1 i
	lv_daemon_conf "$h" || return 1
	mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
	# "ip netns exec" gives the command a mount namespace of its own (to
	# remount /sys); unshare -m a further private one for the binds.
	ip netns exec "e2e-$h" unshare -m --propagation private sh -c '
		d=$1
		mount --bind "$d/etc" /etc/libvirt &&
		mount --bind "$d/run" /run/libvirt &&
		mount --bind "$d/lib" /var/lib/libvirt &&
		mount --bind "$d/log" /var/log/libvirt &&
		mount --bind "$d/cache" /var/cache/libvirt || exit 1
		exec libvirtd --listen --pid-file /run/libvirt/libvirtd.pid' lvd "$d" >"$d/libvirtd.out" 2>&1 &
	echo $! > "$d/libvirtd.pid"
	for i in $(seq 600); do
		lv_virsh "$h" uri >/dev/null 2>&1 && return 0
		kill -0 "$(cat "$d/libvirtd.pid")" 2>/dev/null || break
		sleep 0.2
	done
	e2e_log "libvirtd on $h did not come up: $(tail -n 5 "$d/libvirtd.out")"
	return 1
}

lv_daemon_down()
{
	local h=$1 pid i
	pid=$(cat "$LV_DIR/$h/libvirtd.pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	rm -f "$LV_DIR/$h/libvirtd.pid"
}

# lv_bdf_xml BDF: BDF as a libvirt <address .../>
lv_bdf_xml()
{
	local bdf=$1
	echo "<address domain='0x${bdf:0:4}' bus='0x${bdf:5:2}' slot='0x${bdf:8:2}' function='0x${bdf:11:1}'/>"
}

# lv_alias_pick BDF: the module libvirt's modules.alias lookup
# (virPCIDeviceFindBestVFIOVariant, libvirt 10.0 to 11.3 at least) picks for
# BDF when <driver> names no model: among the "alias vfio_pci:" lines, each
# of the seven fields (v d sv sd bc sc i) must be "*" or equal the device's,
# character for character, and the fewest "*" fields win. A field such as
# "i02*" (what file2alias writes for an id-table entry with an exact class
# and interface) is neither, so such an entry never matches.
lv_alias_pick()
{
	local re='^v([0-9A-F*]*)d([0-9A-F*]*)sv([0-9A-F*]*)sd([0-9A-F*]*)bc([0-9A-F*]*)sc([0-9A-F*]*)i([0-9A-F*]*)$'
	local dev al mod best="" bestn=99 i n ok
	dev=$(sed 's/^pci://' "/sys/bus/pci/devices/$1/modalias")
	[[ $dev =~ $re ]] || return 1
	local -a df=("${BASH_REMATCH[@]:1}")
	while read -r _ al mod; do
		[[ ${al#vfio_pci:} =~ $re ]] || continue
		n=0 ok=1
		for i in 0 1 2 3 4 5 6; do
			if [ "${BASH_REMATCH[$((i + 1))]}" = "*" ]; then
				n=$((n + 1))
			elif [ "${BASH_REMATCH[$((i + 1))]}" != "${df[$i]}" ]; then
				ok=0
			fi
		done
		[ "$ok" = 1 ] && [ "$n" -lt "$bestn" ] && { best=$mod; bestn=$n; }
	done <<< "$(grep '^alias vfio_pci:' "/lib/modules/$(uname -r)/modules.alias")"
	echo "${best:-vfio-pci}"
}

# lv_domain_xml CONSOLE VF: the e2e guest as libvirt runs it. Identical to
# e2e_qemu_start's: pc machine, TCG, qemu64, one vCPU, E2E_MEM MiB, the
# same kernel, initrd and command line, the VF and a serial port (a unix
# socket, CONSOLE.con in $E2E_DIR) and nothing else. Without <acpi/>
# libvirt gives QEMU "acpi=off", which plain QEMU does not have.
# The hostdev names no driver model: libvirt finds emuhba in modules.alias
# (lv_alias_pick), as it would on an admin's host after "make install".
lv_domain_xml()
{
	local con=$1 vf=$2
	cat <<-EOF
	<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
	  <name>$LV_DOM</name>
	  <memory unit='MiB'>$E2E_MEM</memory>
	  <vcpu>1</vcpu>
	  <os>
	    <type arch='x86_64' machine='pc'>hvm</type>
	    <kernel>$E2E_KERNEL</kernel>
	    <initrd>$E2E_INITRD</initrd>
	    <cmdline>console=ttyS0 quiet panic=-1 mitigations=off ${E2E_CLOCK-tsc=reliable} no_timer_check $E2E_BLACKLIST guestio="$E2E_GUESTIO"</cmdline>
	  </os>
	  <features>
	    <acpi/>
	  </features>
	  <cpu mode='custom' match='exact' check='none'>
	    <model fallback='forbid'>qemu64</model>
	  </cpu>
	  <on_poweroff>destroy</on_poweroff>
	  <on_reboot>destroy</on_reboot>
	  <on_crash>destroy</on_crash>
	  <devices>
	    <emulator>/usr/bin/qemu-system-x86_64</emulator>
	    <controller type='usb' model='none'/>
	    <hostdev mode='subsystem' type='pci' managed='yes'>
	      <source>
	        $(lv_bdf_xml "$vf")
	      </source>
	      <alias name='$LV_ALIAS'/>
	    </hostdev>
	    <serial type='unix'>
	      <source mode='bind' path='$E2E_DIR/$con.con'/>
	      <target port='0'/>
	    </serial>
	    <memballoon model='none'/>
	  </devices>
	  <qemu:override>
	    <qemu:device alias='$LV_ALIAS'>
	      <qemu:frontend>
	        <qemu:property name='enable-migration' type='string' value='on'/>
	      </qemu:frontend>
	    </qemu:device>
	  </qemu:override>
	</domain>
	EOF
}

# lv_dest_xml SRCHOST DSTCONSOLE DSTVF: the running domain's migratable
# XML with the destination's VF and console: what "virsh migrate --xml"
# takes (a host device's source address and a console's path are not part
# of the guest's ABI, so libvirt accepts them changed).
lv_dest_xml()
{
	local h=$1 con=$2 vf=$3
	lv_virsh "$h" dumpxml --migratable "$LV_DOM" |
		sed "/<hostdev /,/<\/hostdev>/{/<source>/,/<\/source>/s|<address [^>]*/>|$(lv_bdf_xml "$vf")|}" |
		sed "s|path='$E2E_DIR/[^']*\.con'|path='$E2E_DIR/$con.con'|g"
}

# lv_qemu_pid HOST: the pid of HOST's QEMU for the domain
lv_qemu_pid()
{
	cat "$LV_DIR/$1/run/qemu/$LV_DOM.pid" 2>/dev/null
}

# lv_console_attach NAME HOST [SECONDS]: once QEMU on HOST has created
# NAME.con, what the guest prints goes to NAME.log (stamped, as in
# e2e_qemu_start) and lines written to NAME.in reach it; NAME.pid is that
# QEMU's pid, so that the e2e helpers (e2e_console_wait, guest_progress,
# ...) work unchanged. Waits up to SECONDS (default 30) for the socket.
lv_console_attach()
{
	local name=$1 h=$2 t=$((${3:-30} * 10)) d=$E2E_DIR i fd
	for i in $(seq "$t"); do
		[ -S "$d/$name.con" ] && [ -n "$(lv_qemu_pid "$h")" ] && break
		sleep 0.1
	done
	[ -S "$d/$name.con" ] || return 1
	lv_qemu_pid "$h" > "$d/$name.pid"
	rm -f "$d/$name.in"
	mkfifo "$d/$name.in"
	exec {fd}<>"$d/$name.in"
	(socat -b 4096 "UNIX-CONNECT:$d/$name.con" STDIO <&$fd 2>/dev/null |
		e2e_stamp >"$d/$name.log") &
	echo $! > "$d/$name.socat.pid"
	exec {fd}>&-
}

lv_console_detach()
{
	kill "$(cat "$E2E_DIR/$1.socat.pid" 2>/dev/null)" 2>/dev/null
	rm -f "$E2E_DIR/$1.socat.pid"
}

# lv_migrate SRCHOST DSTHOST SRCCONSOLE DSTCONSOLE: virsh migrate --live
# --p2p of the domain from SRCHOST's daemon to DSTHOST's, the destination
# taking its own VF and console (--xml). While it runs, "virsh domjobinfo"
# on the source is sampled every LV_JOBINFO_S seconds (default 5; each
# virsh costs the single-threaded test VM a lot) into SRC-DST.jobinfo.
# Prints name=value lines: status, t_start, t_completed|t_failed (host ms),
# virsh's error, and from the destination's "domjobinfo --completed"
# (SRC-DST.domjobinfo): total_ms, downtime_ms, setup_ms, ram_processed.
lv_migrate()
{
	local s=$1 t=$2 con=$4 vf xml out rc jpid tag
	vf=$(eval echo "\$E2E_VF_$t")
	tag=$3-$4
	xml=$E2E_DIR/$tag.dest.xml
	lv_dest_xml "$s" "$con" "$vf" > "$xml" || { echo "status=no-xml"; return 1; }
	(while :; do
		echo "== $(e2e_now_ms)"
		lv_virsh "$s" domjobinfo "$LV_DOM" 2>&1
		sleep "${LV_JOBINFO_S:-5}"
	done > "$E2E_DIR/$tag.jobinfo") &
	jpid=$!
	echo "t_start=$(e2e_now_ms)"
	# LV_MIGRATE_ARGS: more virsh migrate options, e.g. --bandwidth MiB/s
	# shellcheck disable=SC2086
	out=$(lv_virsh "$s" migrate --live --p2p ${LV_MIGRATE_ARGS:-} \
		--xml "$xml" --migrateuri "tcp:${E2E_ADDR[$t]}" \
		"$LV_DOM" "qemu+tcp://${E2E_ADDR[$t]}/system" 2>&1)
	rc=$?
	kill "$jpid" 2>/dev/null
	wait "$jpid" 2>/dev/null
	echo "$out" > "$E2E_DIR/$tag.virsh.out"
	if [ "$rc" = 0 ]; then
		echo "t_completed=$(e2e_now_ms)"
		echo "status=completed"
	else
		echo "t_failed=$(e2e_now_ms)"
		echo "status=failed"
		echo "error=$(echo "$out" | tr '\n' ' ')"
	fi
	lv_virsh "$t" domjobinfo --completed "$LV_DOM" > "$E2E_DIR/$tag.domjobinfo" 2>&1
	awk -F': *' '
		/^Time elapsed:/ && !/w\/o/ { print "total_ms=" $2 + 0 }
		/^Total downtime:/ { print "downtime_ms=" $2 + 0 }
		/^Setup time:/ { print "setup_ms=" $2 + 0 }
		/^Memory processed:/ { print "ram_processed=" $2 }
	' "$E2E_DIR/$tag.domjobinfo"
	return "$rc"
}
