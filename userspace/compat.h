/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * hbamig: the destination's compatibility verdict for moving the guest of
 * one emuhba adapter to another (the basic-profile check the destination
 * runs on a migration image, asked for before anything stops).
 */
#ifndef HBAMIG_COMPAT_H
#define HBAMIG_COMPAT_H

#include <stdbool.h>

/*
 * Fetch the stable state image of adapter @src_bdf and ask adapter
 * @dst_bdf whether it can honour it. With @print, the verdict is printed
 * field by field (text, or JSON when hbamig runs with -j); errors always
 * go to stderr.
 *
 * Returns an HBAMIG_EXIT_* code (hbamig_exit.h): HBAMIG_EXIT_OK when the
 * destination can take the guest, HBAMIG_EXIT_FAIL when it refuses (the
 * refused fields are in the printed verdict), another code when the check
 * itself could not run (HBAMIG_EXIT_NODEV for an unknown adapter,
 * HBAMIG_EXIT_NOMOD, HBAMIG_EXIT_PERM, ...).
 */
int compat_check(const char *src_bdf, const char *dst_bdf, bool print);

#endif /* HBAMIG_COMPAT_H */
