/*
 * cli.h — what every tool's command line shares (the contract of
 * docs/DESIGN.md, "The tools"): the one-line usage error (exit 2) and the
 * one-line failure (exit 1), and the parsing of numbers and durations.
 * Header-only: each tool defines CLI_PROG (its name) before including it
 * and gets its own static copy; the tools are built over the public headers
 * only, so this lives with them.
 */
#ifndef CKR_TOOLS_CLI_H
#define CKR_TOOLS_CLI_H

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckring.h"

#ifndef CLI_PROG
#error "define CLI_PROG (the tool's name) before including cli.h"
#endif

/* "PROG: msg: arg (try --help)" on stderr. @return 2 (usage error). */
static inline int cli_usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, CLI_PROG ": %s%s%s (try --help)\n", msg, arg ? ": " : "",
		arg ? arg : "");
	return 2;
}

/* "PROG: what 'name': why" on stderr. @return 1 (any other error). */
static inline int cli_fail(const char *what, const char *name, const char *why)
{
	fprintf(stderr, CLI_PROG ": %s '%s': %s\n", what, name, why);
	return 1;
}

/*
 * An unsigned number in [min, max]: base 10, or 0 for C's prefixes (0x,
 * leading 0 for octal). No sign, no trailing text, no overflow.
 * @return true and *out, or false.
 */
static inline bool cli_u64(const char *s, int base, uint64_t min, uint64_t max,
			   uint64_t *out)
{
	char *end;
	if (!s || !*s || s[0] == '-' || s[0] == '+' || isspace((unsigned char)s[0]))
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/*
 * A duration DUR ("90s", "15m", "2h", "7d", "0s"): decimal digits, then
 * exactly one unit letter s, m, h or d. plain_seconds: bare digits are
 * seconds too (the older form of --keep-completed). Values above max_s are
 * refused. @return true and *out seconds, or false.
 */
static inline bool cli_dur(const char *s, bool plain_seconds, uint64_t max_s, uint64_t *out)
{
	uint64_t v = 0, unit;
	const char *p = s;
	if (!s || !isdigit((unsigned char)*p))
		return false;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	case '\0':
		if (!plain_seconds)
			return false;
		unit = 1;
		p--;
		break;
	default:
		return false;
	}
	if (p[1] != '\0' || v > max_s / unit)
		return false;
	*out = v * unit;
	return true;
}

/* A duration in milliseconds: digits then ms, s, m or h; at most max_ms.
 * @return true and *out, or false. */
static inline bool cli_dur_ms(const char *s, uint64_t max_ms, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;
	if (!s || !isdigit((unsigned char)*p))
		return false;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	uint64_t mul = !strcmp(p, "ms") ? 1 : !strcmp(p, "s") ? 1000
		     : !strcmp(p, "m") ? 60000 : !strcmp(p, "h") ? 3600000 : 0;
	if (!mul || v > max_ms / mul)
		return false;
	*out = v * mul;
	return true;
}

/* n hex digits of h (n even) into out[n / 2]. @return false on a bad digit. */
static inline bool cli_unhex(const char *h, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		int d = c >= '0' && c <= '9' ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return false;
		out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] << 4 | d : d);
	}
	return true;
}

/* A RUN_ID argument as given, or from hex (hex: the tools' --hex), into
 * id[CKR_RUN_ID_MAX] (ckring.h). @return 0 and *len; 2 usage error (said). */
static inline int cli_run_id(const char *s, bool hex, uint8_t *id, size_t *len)
{
	size_t n = strlen(s);
	if (!hex) {
		if (n == 0 || n > CKR_RUN_ID_MAX)
			return cli_usage_error("RUN_ID must be 1..64 bytes", s);
		memcpy(id, s, n);
		*len = n;
		return 0;
	}
	if (n == 0 || n % 2 || n / 2 > CKR_RUN_ID_MAX)
		return cli_usage_error("--hex RUN_ID must be 2..128 hex digits", s);
	if (!cli_unhex(s, n, id))
		return cli_usage_error("bad hex in RUN_ID", s);
	*len = n / 2;
	return 0;
}

#endif /* CKR_TOOLS_CLI_H */
