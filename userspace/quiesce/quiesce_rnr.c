// SPDX-License-Identifier: GPL-2.0-only
#include <stdio.h>

#include "quiesce.h"

int quiesce_rnr_main(int argc, char **argv, bool json)
{
	(void)argc; (void)argv; (void)json;
	fprintf(stderr, "hbamig: quiesce: rnr: not built yet\n");
	return QUIESCE_EXIT_FAIL;
}
