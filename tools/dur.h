/*
 * dur.h — durations on the command line (README, "Operating a store": "DUR: a number with s, m,
 * h or d, 0s allowed"), for ckring-admin, ckring-flusher and
 * ckring-inspect. Header-only, static: each tool gets its own copy.
 */
#ifndef CKR_TOOLS_DUR_H
#define CKR_TOOLS_DUR_H

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Parse DUR ("90s", "15m", "2h", "7d", "0s"): decimal digits, then exactly
 * one unit letter. plain_seconds: also accept bare digits as seconds (the
 * old form of --keep-completed). Values above max_s are refused.
 * @return true and *out seconds, or false.
 */
static inline bool dur_parse(const char *s, bool plain_seconds, uint64_t max_s,
			     uint64_t *out)
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

#endif /* CKR_TOOLS_DUR_H */
