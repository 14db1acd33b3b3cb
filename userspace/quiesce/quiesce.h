/* SPDX-License-Identifier: GPL-2.0-only */
/* Fabric peer quiescers: the "hbamig quiesce" command family. */
#ifndef QUIESCE_H
#define QUIESCE_H

#include <stdbool.h>

/*
 * Entry point of "hbamig quiesce ..."; argv[0] is "quiesce".
 * Returns a process exit code (see hbamig(8), EXIT STATUS).
 */
int quiesce_main(int argc, char **argv, bool json);

#endif
