/*
 * clock.h — the harness's clock: the TSC, calibrated against
 * CLOCK_MONOTONIC_RAW, with the cost of an empty timed region measured so it
 * can be taken off every statistic.
 *
 * Each operation is timed by two TSC reads, `lfence; rdtsc; lfence` before
 * and `lfence; rdtsc` after: the leading lfence keeps the op's instructions
 * from starting before the first read, the one before the second read waits
 * until they have completed (retired; a store may still sit in the store
 * buffer, as it does for the caller). The TSC is invariant on the machines we
 * care about (constant_tsc, nonstop_tsc; reported).
 *
 * Quantum. Some TSCs advance in steps (AMD parts count their 100 MHz
 * reference clock times the P0 ratio: steps of ~10 ns). We measure the step
 * at start-up (gcd of back-to-back differences) and the histogram treats a
 * sample as spread over one step (subtractive dither); the mean is exact.
 *
 * The readers are inline: they sit inside every timed region. Everything
 * here is thread-safe; a bench_clock is read-only after calibration.
 */
#ifndef BENCH_CLOCK_H
#define BENCH_CLOCK_H

#include <stdint.h>
#include <time.h>

#include "hist.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BENCH_HAVE_TSC 1
#else
#define BENCH_HAVE_TSC 0
#endif

/* Nanoseconds on clock clk. */
uint64_t bench_mono_ns(clockid_t clk);

/* Start of a timed region. */
static inline uint64_t bench_t0(void)
{
#if BENCH_HAVE_TSC
	_mm_lfence();
	uint64_t t = __rdtsc();
	_mm_lfence();
	return t;
#else
	return bench_mono_ns(CLOCK_MONOTONIC);
#endif
}

/* End of a timed region. */
static inline uint64_t bench_t1(void)
{
#if BENCH_HAVE_TSC
	_mm_lfence();
	return __rdtsc();
#else
	return bench_mono_ns(CLOCK_MONOTONIC);
#endif
}

/* A cheap "now" for deadlines (no fences). */
static inline uint64_t bench_ticks(void)
{
#if BENCH_HAVE_TSC
	return __rdtsc();
#else
	return bench_mono_ns(CLOCK_MONOTONIC);
#endif
}

/* A spin-wait hint. */
static inline void bench_relax(void)
{
#if BENCH_HAVE_TSC
	_mm_pause();
#endif
}

typedef struct bench_clock {
	double ticks_per_ns; /* TSC rate */
	double quantum;      /* the counter's step, ticks (1 = every tick) */
	double overhead;     /* ticks of an empty timed region (trimmed mean) */
	double overhead_ns;
} bench_clock;

/*
 * Measure the TSC rate over about `ms` milliseconds, its step, and the cost
 * of an empty timed region (1 M regions into `scratch`). Can't fail: an
 * unusable rate falls back to 1 tick per ns.
 */
void bench_clock_calibrate(bench_clock *c, unsigned ms, bench_hist *scratch);

/* Ticks -> ns with the calibrated rate. */
static inline double bench_ns(const bench_clock *c, double ticks)
{
	return ticks / c->ticks_per_ns;
}

static inline uint64_t bench_ticks_for_ns(const bench_clock *c, double ns)
{
	return (uint64_t)(ns * c->ticks_per_ns);
}

#endif /* BENCH_CLOCK_H */
