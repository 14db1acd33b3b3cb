# SPDX-License-Identifier: GPL-2.0-only
# KTAP helpers in the style of tools/testing/selftests/net/lib.sh.

ksft_pass=0 ksft_fail=0 ksft_skip=0 ksft_n=0
RET=0 retmsg=""

check_err()
{
	if [ "$RET" -eq 0 ] && [ "$1" -ne 0 ]; then
		RET=$1
		retmsg=$2
	fi
}

check_fail()
{
	if [ "$RET" -eq 0 ] && [ "$1" -eq 0 ]; then
		RET=1
		retmsg=$2
	fi
}

log_test()
{
	ksft_n=$((ksft_n + 1))
	if [ "$RET" -eq 0 ]; then
		echo "ok $ksft_n $1"
		ksft_pass=$((ksft_pass + 1))
	else
		echo "# $1: $retmsg"
		echo "not ok $ksft_n $1"
		ksft_fail=$((ksft_fail + 1))
	fi
	RET=0 retmsg=""
}

log_skip()
{
	ksft_n=$((ksft_n + 1))
	echo "ok $ksft_n $1 # SKIP $2"
	ksft_skip=$((ksft_skip + 1))
	RET=0 retmsg=""
}

log_info()
{
	echo "# $*"
}

# Floating point comparisons for timings: fcmp A OP B, e.g. fcmp 3.1 '<' 5
fcmp()
{
	awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN {
		if (op == "<") exit !(a < b); if (op == "<=") exit !(a <= b);
		if (op == ">") exit !(a > b); if (op == ">=") exit !(a >= b);
		exit 2 }'
}

now_ms()
{
	awk '{ printf "%.3f\n", $1 * 1000 }' /proc/uptime
}
