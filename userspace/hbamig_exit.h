/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Exit status of hbamig and of every command family it dispatches to
 * (documented in hbamig(8), EXIT STATUS). Scripts rely on these values:
 * never renumber, only add.
 */
#ifndef HBAMIG_EXIT_H
#define HBAMIG_EXIT_H

enum hbamig_exit {
	HBAMIG_EXIT_OK = 0,
	HBAMIG_EXIT_FAIL = 1,		/* the operation failed */
	HBAMIG_EXIT_USAGE = 2,		/* bad command line */
	HBAMIG_EXIT_NOMOD = 3,		/* emuhba module/family not present */
	HBAMIG_EXIT_PERM = 4,		/* not permitted (CAP_NET_ADMIN) */
	HBAMIG_EXIT_NODEV = 5,		/* no such adapter, device or VF */
	HBAMIG_EXIT_BUSY = 6,		/* in use, or in the wrong mode */
	HBAMIG_EXIT_NOTSUPP = 7,	/* the kernel or device cannot */
	/*
	 * Never returned: a command this build does not know is a usage
	 * error (2), as it is to every older hbamig a script may meet, so
	 * there is nothing for 8 to tell apart. Kept so that no other
	 * meaning ever takes the value.
	 */
	HBAMIG_EXIT_UNAVAIL = 8,	/* reserved */
	/* migrated, but the destination adapter did not return to direct */
	HBAMIG_EXIT_DEST_EMULATED = 9,
};

#endif /* HBAMIG_EXIT_H */
