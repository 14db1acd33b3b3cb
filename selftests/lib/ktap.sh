# SPDX-License-Identifier: GPL-2.0-only
# KTAP helpers for emuhba's shell selftests, in the style of the kernel's
# selftests/net/lib.sh: a test accumulates errors with check_err/check_fail
# and reports once with log_test.
#
#   ktap_begin N           print the header and plan
#   ret=0; cmd; check_err $? "message"; log_test "name"
#   log_skip "name" "reason"
#   ktap_nested "name" CMD...  run a program that prints its own TAP,
#                          indented as a subtest, and report its exit status
#   ktap_end               exit 0 when nothing failed, 1 otherwise

KTAP_NUM=0
KTAP_FAILED=0
ret=0
retmsg=""

ktap_begin()
{
	echo "TAP version 13"
	echo "1..$1"
}

check_err()
{
	if [ "$ret" -eq 0 ] && [ "$1" -ne 0 ]; then
		ret=$1
		retmsg=$2
	fi
}

check_fail()
{
	if [ "$ret" -eq 0 ] && [ "$1" -eq 0 ]; then
		ret=1
		retmsg=$2
	fi
}

log_test()
{
	KTAP_NUM=$((KTAP_NUM + 1))
	if [ "$ret" -ne 0 ]; then
		echo "not ok $KTAP_NUM $1"
		echo "# $1: $retmsg"
		KTAP_FAILED=$((KTAP_FAILED + 1))
	else
		echo "ok $KTAP_NUM $1"
	fi
	ret=0
	retmsg=""
}

log_skip()
{
	KTAP_NUM=$((KTAP_NUM + 1))
	echo "ok $KTAP_NUM $1 # SKIP $2"
	echo "# WARNING: $1 skipped: $2" >&2
}

ktap_nested()
{
	local name=$1 rc
	shift
	"$@" 2>&1 | sed 's/^/    /'
	rc=${PIPESTATUS[0]}
	# A check_err made just before (its set-up) counts against it too.
	check_err "$rc" "$* exited with $rc"
	log_test "$name"
}

ktap_end()
{
	echo "# $KTAP_NUM tests, $KTAP_FAILED failed"
	[ "$KTAP_FAILED" -eq 0 ]
}

# dmesg_check SINCE_LINE: fail when the kernel log after line SINCE_LINE has
# a warning, bug, oops, sanitizer or lockdep report.
dmesg_bad_pattern='WARNING:|BUG:|Oops|Call Trace|KASAN|UBSAN|kernel BUG|general protection|list_del corruption|INFO: task .* blocked|possible recursive locking|refcount_t:'
dmesg_check()
{
	local since=${1:-0} bad
	bad=$(dmesg | tail -n +"$((since + 1))" | grep -E "$dmesg_bad_pattern")
	if [ -n "$bad" ]; then
		echo "$bad" | sed 's/^/# dmesg: /'
		return 1
	fi
	return 0
}
