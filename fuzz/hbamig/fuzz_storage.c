// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target for the storage copy's parsers (storage_parse.c): the
 * first byte picks the parser, the rest is the text (NUL-terminated here,
 * as the callers pass it). Round trips are checked where there is one.
 */
#include <stdlib.h>
#include <string.h>

#include "storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stor_mirror_status st;
	struct stor_target t, t2;
	char *s, buf[512], disk[32];
	unsigned int ma, mi;
	int a, b;
	u32 nsid;
	u64 v;

	if (!size)
		return 0;
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = 0;
	switch (data[0] % 8) {
	case 0:
		if (!stor_parse_target(s, &t)) {
			/* What it accepts prints back and parses the same. */
			if (stor_format_target(&t, buf, sizeof(buf)) ||
			    stor_parse_target(buf, &t2) ||
			    strcmp(t.addr, t2.addr) || t.port != t2.port ||
			    strcmp(t.nqn, t2.nqn) ||
			    stor_fabrics_options(&t, NULL, NULL, buf, sizeof(buf)))
				abort();
			/* No option can be smuggled into the fabrics string. */
			if (strchr(t.nqn, ',') || strchr(t.addr, ','))
				abort();
		}
		break;
	case 1:
		stor_parse_listen(s, &t);
		break;
	case 2:
		if (!stor_parse_fabrics_reply(s, &a, &b) &&
		    (a < 0 || b < 0 || b > 0xffff))
			abort();
		break;
	case 3:
		if (!stor_parse_mirror_status(s, &st) &&
		    (st.legs < 1 || st.legs > STOR_MIRROR_LEGS ||
		     st.in_sync > st.regions ||
		     strlen(st.health) != (size_t)st.legs))
			abort();
		if (!stor_parse_mirror_status(s, &st))
			stor_mirror_failed_leg(&st);
		break;
	case 4:
		stor_parse_mirror_table(s, &st);
		break;
	case 5:
		stor_parse_u64(s, &v);
		stor_parse_devnum(s, &ma, &mi);
		break;
	case 6:
		if (!stor_parse_ns_entry(s, disk, sizeof(disk), &nsid) && !nsid)
			abort();
		break;
	case 7:
		stor_ctrl_state_name(stor_parse_ctrl_state(s));
		break;
	}
	free(s);
	return 0;
}
