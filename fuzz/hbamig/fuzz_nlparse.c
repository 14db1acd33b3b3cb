// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: hbamig's decoding of what the kernel sends (genl
 * replies, dumps, events, nlctrl notifications, extended ACKs, rtnetlink
 * VF lists) and the text/JSON printers behind it. The first byte picks the
 * decoder and output mode; the rest is one recv() buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <linux/genetlink.h>
#include <linux/emuhba.h>

#include "hbamig.h"

#define FUZZ_FAMILY 0x23	/* matches the seeds (selftests/hbamig) */

static int msg_cb(const struct hba_msg *m, void *arg)
{
	if (*(const uint8_t *)arg & 8)
		hba_print_event(m);
	else if (m->cmd == EMUHBA_CMD_SWITCH)
		hba_print_switch(m);
	else
		hba_print_adapter(m);
	return 0;
}

static int ctrl_cb(const void *nlh, void *arg)
{
	const char *name;
	uint8_t cmd;

	(void)arg;
	name = hba_parse_ctrl_family(nlh, &cmd);
	if (name)
		hba_print_family_event(name, cmd == CTRL_CMD_DELFAMILY);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hba_link link;
	static FILE *sink;
	struct hba_nlerr err;
	uint8_t sel;

	if (!sink)
		sink = fopen("/dev/null", "w");
	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;
	out_init(sink, sel & 1, sel & 2);
	if (sel & 4) {
		if (!hba_parse_link(data, size, &link)) {
			link.has_netdev = true;
			hba_print_link(&link, "0000:00:00.0", "fuzz");
		}
		return 0;
	}
	hba_parse_buf(data, size, FUZZ_FAMILY, msg_cb, &sel, GENL_ID_CTRL,
		      ctrl_cb, &err);
	return 0;
}
