# SPDX-License-Identifier: GPL-2.0-only
# Helpers of the suites that run the storage copy (selftests/storage,
# selftests/copy), inside the test VM. The caller sets STOR_HBAMIG (the
# hbamig binary) and STOR_DIR (where the exports' output goes).
#
#   stor_export_start NAME ARGS...  hbamig storage export, in the background
#   stor_export_end                 ends it; its exit status
#   stor_leftovers [BDF...]         what a copy left configured, or nothing

STOR_EXPID=""
STOR_TARGET=""

# stor_export_start NAME ARGS...: "hbamig -j storage export ARGS" in the
# background, output in $STOR_DIR/NAME.out and .err, stdin a fifo held
# open by fd 7 (closing it ends the export, as an orchestrator's pipe
# would). Sets STOR_EXPID, and STOR_TARGET from its first JSON line; fails
# when the export ends or prints no target within 20 s.
stor_export_start()
{
	local name=$1 i
	shift
	rm -f "$STOR_DIR/$name.in"
	mkfifo "$STOR_DIR/$name.in" || return 1
	"$STOR_HBAMIG" -j storage export "$@" <"$STOR_DIR/$name.in" \
		>"$STOR_DIR/$name.out" 2>"$STOR_DIR/$name.err" &
	STOR_EXPID=$!
	exec 7>"$STOR_DIR/$name.in"
	STOR_TARGET=""
	for i in $(seq 200); do
		STOR_TARGET=$(jq -r .target "$STOR_DIR/$name.out" 2>/dev/null)
		[ -n "$STOR_TARGET" ] && [ "$STOR_TARGET" != null ] && return 0
		kill -0 "$STOR_EXPID" 2>/dev/null || break
		sleep 0.1
	done
	STOR_TARGET=""
	echo "# export $name did not start: $(cat "$STOR_DIR/$name.err")"
	return 1
}

# stor_export_end: closes the export's stdin and waits for it to end by
# itself; SIGTERM after 20 s, SIGKILL after 30 s. The export's exit status.
stor_export_end()
{
	local i rc
	exec 7>&-
	[ -n "$STOR_EXPID" ] || return 1
	for i in $(seq 300); do
		kill -0 "$STOR_EXPID" 2>/dev/null || break
		[ "$i" = 200 ] && kill -TERM "$STOR_EXPID"
		sleep 0.1
	done
	kill -KILL "$STOR_EXPID" 2>/dev/null
	wait "$STOR_EXPID"
	rc=$?
	STOR_EXPID=""
	return $rc
}

# stor_leftovers [BDF...]: everything a storage copy may leave configured,
# on one line ("; " between items), empty when nothing is: dm devices,
# NVMe/TCP controllers, nvmet subsystems and ports, and the ns-copy policy
# on the adapters named. The suites create none of these otherwise.
stor_leftovers()
{
	local d items=()
	for d in /sys/block/dm-*; do
		[ -e "$d/dm/name" ] && items+=("dm $(cat "$d/dm/name")")
	done
	for d in /sys/class/nvme/nvme*; do
		[ "$(cat "$d/transport" 2>/dev/null)" = tcp ] &&
			items+=("nvme-tcp ${d##*/}")
	done
	for d in /sys/kernel/config/nvmet/subsystems/* /sys/kernel/config/nvmet/ports/*; do
		[ -e "$d" ] && items+=("nvmet ${d#/sys/kernel/config/nvmet/}")
	done
	for d in "$@"; do
		[ "$("$STOR_HBAMIG" -j dev show "$d" 2>/dev/null |
			jq -r '.[0].policy.ns_copy')" = true ] &&
			items+=("ns-copy on $d")
	done
	[ ${#items[@]} = 0 ] && return 0
	local IFS=';'
	echo "${items[*]}" | sed 's/;/; /g'
}
