// SPDX-License-Identifier: GPL-2.0-only
#include <stdio.h>

#include "quiesce.h"

int quiesce_pfc_main(int argc, char **argv, bool json)
{
	(void)argc; (void)argv; (void)json;
	fprintf(stderr, "hbamig: quiesce: pfc: not implemented\n");
	return QUIESCE_EXIT_FAIL;
}

int quiesce_rnr_main(int argc, char **argv, bool json)
{
	(void)argc; (void)argv; (void)json;
	fprintf(stderr, "hbamig: quiesce: rnr: not implemented\n");
	return QUIESCE_EXIT_FAIL;
}
