/*
 * hist.c — the histogram's queries (see hist.h).
 */
#include "hist.h"

#include <string.h>

/* The smallest value and the width of bucket i. */
static void bh_bucket(unsigned i, uint64_t *lo, uint64_t *width)
{
	if (i < 2 * BH_HALF) {
		*lo = i;
		*width = 1;
		return;
	}
	unsigned s = i / BH_HALF - 1;
	*lo = (uint64_t)(i - BH_HALF * s) << s;
	*width = UINT64_C(1) << s;
}

void bh_reset(bench_hist *h)
{
	memset(h, 0, sizeof *h);
}

void bh_merge(bench_hist *into, const bench_hist *h)
{
	for (unsigned i = 0; i < BH_BUCKETS; i++)
		into->b[i] += h->b[i];
	into->count += h->count;
	into->sum += h->sum;
	if (h->max > into->max)
		into->max = h->max;
}

double bh_quantile(const bench_hist *h, double p, double quantum)
{
	if (!h->count)
		return 0;
	double rank = p * (double)h->count, cum = 0, top = (double)h->max + quantum / 2;
	for (unsigned i = 0; i < BH_BUCKETS; i++) {
		if (!h->b[i])
			continue;
		uint64_t lo, w;
		bh_bucket(i, &lo, &w);
		double c = (double)h->b[i], width = (double)w, start = (double)lo;
		if (width < quantum) {
			start = (double)lo + (width - 1) / 2 - quantum / 2;
			width = quantum;
		}
		if (cum + c >= rank) {
			double v = start + (rank - cum) / c * width;
			v = v > top ? top : v;
			return v < 0 ? 0 : v;
		}
		cum += c;
	}
	return (double)h->max;
}

double bh_trimmed_mean(const bench_hist *h, double p)
{
	double rank = p * (double)h->count, cum = 0, sum = 0;
	for (unsigned i = 0; i < BH_BUCKETS && cum < rank; i++) {
		if (!h->b[i])
			continue;
		uint64_t lo, w;
		bh_bucket(i, &lo, &w);
		double c = (double)h->b[i];
		if (cum + c > rank)
			c = rank - cum;
		sum += c * ((double)lo + (double)(w - 1) / 2);
		cum += c;
	}
	return cum > 0 ? sum / cum : 0;
}
