/*
 * clock.c — TSC calibration (see clock.h).
 */
#include "clock.h"

uint64_t bench_mono_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One (monotonic ns, tsc) pair, the TSC read bracketed as tightly as we can
 * get in five tries. */
static void clock_pair(uint64_t *ns, uint64_t *tsc)
{
	uint64_t best = UINT64_MAX;
	for (int i = 0; i < 5; i++) {
		uint64_t a = bench_mono_ns(CLOCK_MONOTONIC_RAW);
		uint64_t t = bench_ticks();
		uint64_t b = bench_mono_ns(CLOCK_MONOTONIC_RAW);
		if (b - a < best) {
			best = b - a;
			*ns = a + (b - a) / 2;
			*tsc = t;
		}
	}
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* The counter's step: the gcd of many differences of back-to-back reads. */
static uint64_t clock_quantum(void)
{
	uint64_t g = 0, prev = bench_ticks();
	for (int i = 0; i < 100000; i++) {
		uint64_t t = bench_ticks(), d = t - prev;
		prev = t;
		if (d && d < 100000)
			g = gcd64(g, d);
	}
	return g ? g : 1;
}

void bench_clock_calibrate(bench_clock *c, unsigned ms, bench_hist *scratch)
{
	uint64_t ns0 = 0, t0 = 0, ns1 = 0, t1 = 0;
	clock_pair(&ns0, &t0);
	struct timespec d = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&d, NULL);
	clock_pair(&ns1, &t1);
	c->ticks_per_ns = ns1 > ns0 ? (double)(t1 - t0) / (double)(ns1 - ns0) : 1.0;
	if (c->ticks_per_ns <= 0)
		c->ticks_per_ns = 1.0;
	c->quantum = (double)clock_quantum();
	bh_reset(scratch);
	for (int i = 0; i < 1000000; i++) {
		uint64_t a = bench_t0();
		uint64_t b = bench_t1();
		bh_record(scratch, b - a);
	}
	c->overhead = bh_trimmed_mean(scratch, 0.99);
	c->overhead_ns = bench_ns(c, c->overhead);
}
