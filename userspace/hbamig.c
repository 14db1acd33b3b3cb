// SPDX-License-Identifier: GPL-2.0-only
/*
 * hbamig: control of emuhba adapters (switch a VF-backed adapter between
 * passthrough and emulation, watch it, set it up) in the iproute2 manner:
 *   hbamig [OPTIONS] OBJECT { COMMAND | help }
 */
#include <getopt.h>
#include <string.h>

#include "hbamig.h"
#include "quiesce.h"
#include "storage.h"

#ifndef HBAMIG_VERSION
#define HBAMIG_VERSION "0.1"
#endif

static void usage(FILE *f)
{
	fprintf(f,
"Usage: hbamig [OPTIONS] OBJECT { COMMAND | help }\n"
"       hbamig [OPTIONS] help\n"
"OBJECT := { dev | vf | switch | monitor | quiesce | migrate | storage }\n"
"OPTIONS := { -j[son] | -p[retty] | -V[ersion] | -h[elp] }\n"
"\n"
"  dev show [BDF]                        adapters bound to emuhba\n"
"  dev set BDF backend PATH|auto         host path of the emulated backend\n"
"  dev set BDF policy [auto-switch on|off] [quiesce-required on|off]\n"
"                     [switch-timeout MS] [idle-after MS] [ns-copy on|off]\n"
"  dev bind BDF | dev unbind BDF [driver NAME]\n"
"  vf show PF | vf set PF N VFSETTINGS   SR-IOV VF settings (rtnetlink)\n"
"  switch BDF emulated|direct            switch an adapter now\n"
"  monitor                               print events as they happen\n"
"  quiesce ...                           pause/resume fabric peers\n"
"  migrate --qmp SOCKET --to URI ...     live-migrate a VM and its adapter\n"
"          [--copy-storage TARGET]       ... and its local namespace's data\n"
"  storage export BDF --listen ADDR[:PORT]  export the destination's namespace\n"
"  storage cleanup [BDF]                 remove leftover copy objects\n"
"\n"
"Exit status: 0 ok, 1 failed, 2 usage, 3 emuhba not loaded, 4 not\n"
"permitted, 5 no such device, 6 busy, 7 not supported, 9 migrated but\n"
"the destination stayed emulated (8 is reserved).\n"
"See hbamig(8).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "pretty", no_argument, NULL, 'p' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, pretty = false;
	const char *obj;
	int c;

	/* Options only before the object: "vf set PF 0 vlan -1" stays an arg. */
	while ((c = getopt_long(argc, argv, "+jpVh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'p':
			pretty = true;
			break;
		case 'V':
			printf("hbamig %s\n", HBAMIG_VERSION);
			return HBAMIG_EXIT_OK;
		case 'h':
			usage(stdout);
			return HBAMIG_EXIT_OK;
		default:
			usage(stderr);
			return HBAMIG_EXIT_USAGE;
		}
	}
	if (pretty)
		json = true;
	out_init(stdout, json, pretty);
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return HBAMIG_EXIT_USAGE;
	}
	obj = argv[0];
	if (is_help(obj)) {
		usage(stdout);
		return HBAMIG_EXIT_OK;
	}
	if (matches(obj, "dev") || !strcmp(obj, "adapter"))
		return do_dev(argc, argv);
	if (matches(obj, "vf"))
		return do_vf(argc, argv);
	if (matches(obj, "switch") && strlen(obj) >= 2)
		return do_switch(argc, argv);
	if (matches(obj, "monitor"))
		return do_monitor(argc, argv);
	if (matches(obj, "quiesce") && strlen(obj) >= 2)
		return quiesce_main(argc, argv, json);
	if (matches(obj, "migrate") && strlen(obj) >= 2)
		return do_migrate(argc, argv);
	if (matches(obj, "storage") && strlen(obj) >= 2)
		return do_storage(argc, argv);
	return usage_error("unknown object \"%s\"", obj);
}
