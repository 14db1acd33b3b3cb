// SPDX-License-Identifier: GPL-2.0-only
/* Command-line helpers shared by hbamig's command families. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hbamig.h"

const char *hba_prog = "hbamig";

bool matches(const char *arg, const char *word)
{
	size_t n = strlen(arg);

	return n && n <= strlen(word) && !strncmp(arg, word, n);
}

bool is_help(const char *arg)
{
	return !strcmp(arg, "help") || !strcmp(arg, "-h") ||
	       !strcmp(arg, "--help");
}

int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", hba_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try \"%s help\")\n", hba_prog);
	return HBAMIG_EXIT_USAGE;
}

int fail(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", hba_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int parse_on_off(const char *what, const char *arg, bool *val)
{
	if (!arg)
		return usage_error("%s needs \"on\" or \"off\"", what);
	if (!strcmp(arg, "on")) {
		*val = true;
		return 0;
	}
	if (!strcmp(arg, "off")) {
		*val = false;
		return 0;
	}
	return usage_error("%s: \"%s\" is not \"on\" or \"off\"", what, arg);
}

int parse_u32(const char *what, const char *arg, u32 *val)
{
	unsigned long v;
	char *end;

	if (!arg)
		return usage_error("%s needs a number", what);
	errno = 0;
	v = strtoul(arg, &end, 0);
	if (errno || end == arg || *end || arg[0] == '-' || v > UINT32_MAX)
		return usage_error("%s: \"%s\" is not a number in 0..%u", what,
				   arg, UINT32_MAX);
	*val = v;
	return 0;
}

/* DDDD:BB:DD.F as sysfs spells it (lower-case hex). */
bool valid_bdf(const char *s)
{
	unsigned int d, b, dev, fn;
	char tail;

	if (strlen(s) >= HBA_BDF_LEN)
		return false;
	if (sscanf(s, "%x:%2x:%2x.%1u%c", &d, &b, &dev, &fn, &tail) != 4)
		return false;
	for (const char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			return false;
	return strchr(s, ':') && dev < 32 && fn < 8 &&
	       strlen(s) >= strlen("0000:00:00.0");
}
