/*
 * clock.h — the one clock helper of the library: nanoseconds of a POSIX
 * clock (CLOCK_MONOTONIC for intervals, CLOCK_REALTIME for stored times).
 * Pure; any thread. A system call (vDSO): not for the push path.
 */
#ifndef CKR_CLOCK_H
#define CKR_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t ckr_now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif /* CKR_CLOCK_H */
