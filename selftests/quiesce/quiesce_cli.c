// SPDX-License-Identifier: GPL-2.0-only
/*
 * Stand-alone front end of the quiescers for the tests: the same code as
 * "hbamig [-j] quiesce ...", runnable before or without hbamig.
 */
#include <string.h>

#include "quiesce.h"

int main(int argc, char **argv)
{
	bool json = false;

	if (argc > 1 && !strcmp(argv[1], "-j")) {
		json = true;
		argc--;
		argv++;
	}
	argv[0] = "quiesce";
	return quiesce_main(argc, argv, json);
}
