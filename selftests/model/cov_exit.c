// SPDX-License-Identifier: GPL-2.0-only
/*
 * Coverage builds only: the test harness ends each forked test with
 * _exit(), which skips the profile runtime's exit hook. The coverage build
 * renames the harness's _exit to cov_exit, which writes the profile first.
 */
#include <unistd.h>

int __llvm_profile_write_file(void);

void cov_exit(int status) __attribute__((noreturn));
void cov_exit(int status)
{
	__llvm_profile_write_file();
	_exit(status);
}
