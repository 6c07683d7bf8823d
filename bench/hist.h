/*
 * hist.h — a log-linear latency histogram (HdrHistogram-style) of TSC
 * ticks.
 *
 * Values below 256 have one bucket each; above, each power-of-two range has
 * 128 buckets, so a bucket is at most 1/128 (0.8 %) of its value wide.
 * 7424 buckets cover 2^64; the maximum is kept exactly. Quantiles treat the
 * samples of a bucket as spread uniformly over it, widened to one counter
 * step (clock.h's quantum) when narrower, and interpolate the CDF.
 *
 * Concurrency: a histogram belongs to one thread while it records; merge
 * after the threads have finished. bh_record is inline: it runs per op.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define BH_SUB_BITS 7
#define BH_HALF (1u << BH_SUB_BITS)
#define BH_BUCKETS (BH_HALF * (64 - BH_SUB_BITS + 1))

typedef struct bench_hist {
	uint64_t count;
	uint64_t max;
	double sum;
	uint64_t b[BH_BUCKETS];
} bench_hist;

static inline unsigned bh_index(uint64_t v)
{
	if (v < 2 * BH_HALF)
		return (unsigned)v;
	unsigned s = (unsigned)(63 - __builtin_clzll(v)) - BH_SUB_BITS;
	return BH_HALF * s + (unsigned)(v >> s);
}

static inline void bh_record(bench_hist *h, uint64_t v)
{
	h->b[bh_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v > h->max)
		h->max = v;
}

/* Empty h. Can't fail. */
void bh_reset(bench_hist *h);

/* Add h's samples to into. Can't fail. */
void bh_merge(bench_hist *into, const bench_hist *h);

/* The p-quantile (0 < p <= 1), read with a counter of step `quantum` ticks
 * (1: every tick). Never above max + quantum/2; 0 if empty. */
double bh_quantile(const bench_hist *h, double p, double quantum);

/* The mean of the values at or below the p-quantile (drops interrupts). */
double bh_trimmed_mean(const bench_hist *h, double p);

#endif /* BENCH_HIST_H */
