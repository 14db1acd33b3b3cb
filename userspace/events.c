// SPDX-License-Identifier: GPL-2.0-only
/* hbamig switch and hbamig monitor. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/emuhba.h>
#include <linux/genetlink.h>
#include <netlink/attr.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include "hbamig.h"

static void switch_usage(FILE *f)
{
	fprintf(f,
"Usage: hbamig switch BDF { emulated | direct }\n"
"Moves the adapter's I/O queues from the VF to the software model\n"
"(emulated) or back (direct) now, and prints the timing breakdown.\n");
}

static int switch_cb(const struct hba_msg *m, void *arg)
{
	int *seen = arg;

	if (m->cmd == EMUHBA_CMD_SWITCH) {
		(*seen)++;
		hba_print_switch(m);
		if (hba_out.json)
			out_eol();
	}
	return 0;
}

int do_switch(int argc, char **argv)
{
	struct hba_nlerr err;
	struct hba_genl g;
	struct nl_msg *msg;
	const char *bdf;
	int seen = 0, ret;
	u32 mode;

	if (argc > 1 && is_help(argv[1])) {
		switch_usage(stdout);
		return HBAMIG_EXIT_OK;
	}
	if (argc != 3) {
		switch_usage(stderr);
		return HBAMIG_EXIT_USAGE;
	}
	bdf = argv[1];
	if (!valid_bdf(bdf))
		return usage_error("switch: \"%s\" is not a PCI address (DDDD:BB:DD.F)",
				   bdf);
	if (matches(argv[2], "emulated"))
		mode = EMUHBA_ADAPTER_MODE_EMULATED;
	else if (matches(argv[2], "direct"))
		mode = EMUHBA_ADAPTER_MODE_DIRECT;
	else
		return usage_error("switch: mode \"%s\" is not \"emulated\" or \"direct\"",
				   argv[2]);

	ret = hba_genl_open(&g);
	if (ret)
		return ret;
	msg = hba_genl_msg(&g, EMUHBA_CMD_SWITCH, 0);
	if (!msg || nla_put_string(msg, EMUHBA_A_ADAPTER_BDF, bdf) ||
	    nla_put_u32(msg, EMUHBA_A_ADAPTER_MODE, mode)) {
		nlmsg_free(msg);
		hba_genl_close(&g);
		return fail(HBAMIG_EXIT_FAIL, "out of memory");
	}
	ret = hba_genl_talk(&g, msg, switch_cb, &seen, &err);
	hba_genl_close(&g);
	if (ret)
		return hba_report_nlerr("switch", &err);
	return HBAMIG_EXIT_OK;
}

/* ---- monitor ---- */

static volatile sig_atomic_t monitor_stop;

/*
 * libnl's nl_recv() retries on EINTR, so a signal cannot end the loop;
 * every event line is already flushed, so leaving at once loses nothing.
 */
static void on_signal(int sig)
{
	(void)sig;
	_exit(HBAMIG_EXIT_OK);
}

struct monitor_ctx {
	bool family_gone;
};

static int event_cb(const struct hba_msg *m, void *arg)
{
	(void)arg;
	hba_print_event(m);
	return 0;
}

static int ctrl_cb(const void *nlh, void *arg)
{
	struct monitor_ctx *c = arg;
	const char *name;
	u8 cmd = 0;

	name = hba_parse_ctrl_family(nlh, &cmd);
	if (!name || strcmp(name, EMUHBA_FAMILY_NAME))
		return 0;
	if (cmd == CTRL_CMD_DELFAMILY) {
		hba_print_family_event(name, true);
		c->family_gone = true;
	}
	return 0;
}

static void monitor_usage(FILE *f)
{
	fprintf(f,
"Usage: hbamig [-j] monitor\n"
"Prints emuhba events, one line (or one JSON object) each: adapter add/del,\n"
"mode and migration state changes, errors. Exits 0 when the emuhba module\n"
"is unloaded (\"family emuhba removed\") or on SIGINT/SIGTERM.\n");
}

int do_monitor(int argc, char **argv)
{
	struct monitor_ctx c = { 0 };
	struct sigaction sa;
	struct hba_nlerr err;
	struct hba_genl g;
	int grp, ctrl_grp, ret;

	if (argc > 1 && is_help(argv[1])) {
		monitor_usage(stdout);
		return HBAMIG_EXIT_OK;
	}
	if (argc > 1)
		return usage_error("monitor: unexpected \"%s\"", argv[1]);
	ret = hba_genl_open(&g);
	if (ret)
		return ret;
	grp = genl_ctrl_resolve_grp(g.sk, EMUHBA_FAMILY_NAME,
				    EMUHBA_MCGRP_EVENTS);
	ctrl_grp = genl_ctrl_resolve_grp(g.sk, "nlctrl", "notify");
	if (grp < 0 || ctrl_grp < 0) {
		hba_genl_close(&g);
		return fail(HBAMIG_EXIT_NOMOD,
			    "monitor: cannot resolve the emuhba events group");
	}
	ret = nl_socket_add_memberships(g.sk, grp, ctrl_grp, 0);
	if (ret < 0) {
		hba_genl_close(&g);
		return fail(hba_exit_from_errno(-nl_syserr2nlerr(ret)),
			    "monitor: cannot join the events group: %s",
			    nl_geterror(ret));
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* Lets a test (or a script) know the subscription is in place. */
	if (getenv("HBAMIG_MONITOR_READY"))
		fprintf(stderr, "%s: monitor: listening\n", hba_prog);

	ret = HBAMIG_EXIT_OK;
	while (!monitor_stop && !c.family_gone) {
		struct sockaddr_nl peer;
		unsigned char *buf = NULL;
		int n;

		n = nl_recv(g.sk, &peer, &buf, NULL);
		if (n <= 0) {
			free(buf);
			if (monitor_stop)
				break;
			/* ENOBUFS: events were dropped; say so and go on. */
			if (n == -NLE_NOMEM) {
				fprintf(stderr, "%s: monitor: events lost (receive buffer overrun)\n",
					hba_prog);
				continue;
			}
			ret = fail(HBAMIG_EXIT_FAIL, "monitor: receive: %s",
				   n ? nl_geterror(n) : "socket closed");
			break;
		}
		n = hba_parse_buf(buf, n, g.family, event_cb, &c,
				  GENL_ID_CTRL, ctrl_cb, &err);
		free(buf);
		if (n < 0)
			fprintf(stderr, "%s: monitor: malformed event skipped\n",
				hba_prog);
	}
	hba_genl_close(&g);
	return ret;
}
