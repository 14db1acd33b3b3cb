# SPDX-License-Identifier: GPL-2.0-only
# Helpers of the quiescer suite on top of selftests/lib/ktap.sh (check_err,
# log_test, log_skip, ktap_begin, ktap_end).

. "$(dirname "${BASH_SOURCE[0]}")/../lib/ktap.sh"

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
