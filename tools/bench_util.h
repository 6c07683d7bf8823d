/*
 * bench_util.h — the measuring instruments of ckring-bench: a TSC clock
 * calibrated against CLOCK_MONOTONIC, a log-linear latency histogram
 * (HdrHistogram-style), CPU pinning and the shared-memory helpers the
 * benchmark processes meet in.
 *
 * Header-only: the Makefile builds every tools/X.c as one binary, so the
 * harness's own modules are headers included by tools/ckring-bench.c only.
 *
 * Clock. Each operation is timed by two TSC reads, `lfence; rdtsc; lfence`
 * before and `lfence; rdtsc` after: the leading lfence keeps the op's
 * instructions from starting before the first read, the one before the
 * second read waits until they have completed (retired; a store may still
 * sit in the store buffer, as it does for the caller). The TSC is invariant
 * on the machines we care about (constant_tsc, nonstop_tsc; reported), and
 * its rate is measured against CLOCK_MONOTONIC_RAW at start-up. The cost of
 * an empty timed region (its trimmed mean) is measured too and subtracted
 * from every statistic, so a result is the op's own time.
 *
 * Quantum. Some TSCs advance in steps: AMD's counts its 100 MHz reference
 * clock times the P0 ratio, so consecutive reads differ by multiples of
 * q = 21 ticks (10 ns) on a 2.1 GHz part. A single op of d ticks then reads
 * as floor(d/q)q or ceil(d/q)q, with mean exactly d, because where an op
 * starts is uncorrelated with the counter's step. We measure q at start-up
 * and treat every sample as spread uniformly over [v - q/2, v + q/2]
 * (subtractive dither): percentiles are interpolated on that continuous
 * CDF, which is unbiased up to the curvature of the true CDF within one
 * step, instead of snapping to multiples of 10 ns. The mean is exact.
 *
 * Histogram. Values (TSC ticks) below 256 have one bucket each; above, each
 * power-of-two range has 128 buckets, so a bucket is at most 1/128 (0.8 %)
 * of its value wide. A percentile reports its bucket's midpoint (error
 * below 0.4 %); the maximum is kept exactly. 7424 buckets cover 2^64.
 *
 * Concurrency: a histogram belongs to one thread while it records; merge
 * after the threads have finished. Everything else here is stateless.
 */
#ifndef CKR_BENCH_UTIL_H
#define CKR_BENCH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BENCH_HAVE_TSC 1
#else
#define BENCH_HAVE_TSC 0
#endif

/* ------------------------------------------------------------------ */
/* clock                                                               */
/* ------------------------------------------------------------------ */

static inline uint64_t bench_mono_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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

/* One (monotonic ns, tsc) pair, the TSC read bracketed as tightly as we can
 * get in five tries. */
static inline void bench_clock_pair(uint64_t *ns, uint64_t *tsc)
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

/* Ticks -> ns with the calibrated rate. */
static inline double bench_ns(const bench_clock *c, double ticks)
{
	return ticks / c->ticks_per_ns;
}

static inline uint64_t bench_ticks_for_ns(const bench_clock *c, double ns)
{
	return (uint64_t)(ns * c->ticks_per_ns);
}

/* ------------------------------------------------------------------ */
/* histogram                                                           */
/* ------------------------------------------------------------------ */

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

/* The smallest value and the width of bucket i. */
static inline void bh_bucket(unsigned i, uint64_t *lo, uint64_t *width)
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

static inline void bh_reset(bench_hist *h)
{
	memset(h, 0, sizeof *h);
}

static inline void bh_record(bench_hist *h, uint64_t v)
{
	h->b[bh_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v > h->max)
		h->max = v;
}

static inline void bh_merge(bench_hist *into, const bench_hist *h)
{
	for (unsigned i = 0; i < BH_BUCKETS; i++)
		into->b[i] += h->b[i];
	into->count += h->count;
	into->sum += h->sum;
	if (h->max > into->max)
		into->max = h->max;
}

/*
 * The p-quantile (0 < p <= 1) of values read with a counter of step
 * `quantum` ticks: each non-empty bucket's samples are spread uniformly over
 * the bucket, widened to one quantum around its centre when narrower, and
 * the CDF is interpolated linearly. quantum 1 gives the plain percentile
 * within the bucket. Never above max + quantum/2; 0 if empty.
 */
static inline double bh_quantile(const bench_hist *h, double p, double quantum)
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

/* The mean of the values at or below the p-quantile (drops interrupts). */
static inline double bh_trimmed_mean(const bench_hist *h, double p)
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

/* ------------------------------------------------------------------ */
/* calibration (uses the histogram for the overhead's median)          */
/* ------------------------------------------------------------------ */

static inline uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* The counter's step: the gcd of many differences of back-to-back reads. */
static inline uint64_t bench_clock_quantum(void)
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

/* Measure the TSC rate over about `ms` milliseconds, its step, and the cost
 * of an empty timed region. scratch: a histogram to use. */
static inline void bench_clock_calibrate(bench_clock *c, unsigned ms, bench_hist *scratch)
{
	uint64_t ns0, t0, ns1, t1;
	bench_clock_pair(&ns0, &t0);
	struct timespec d = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&d, NULL);
	bench_clock_pair(&ns1, &t1);
	c->ticks_per_ns = ns1 > ns0 ? (double)(t1 - t0) / (double)(ns1 - ns0) : 1.0;
	if (c->ticks_per_ns <= 0)
		c->ticks_per_ns = 1.0;
	c->quantum = (double)bench_clock_quantum();
	bh_reset(scratch);
	for (int i = 0; i < 1000000; i++) {
		uint64_t a = bench_t0();
		uint64_t b = bench_t1();
		bh_record(scratch, b - a);
	}
	c->overhead = bh_trimmed_mean(scratch, 0.99);
	c->overhead_ns = bench_ns(c, c->overhead);
}

/* Record one timed region [a, b] (raw: the overhead is taken off the
 * statistics, where the quantum's dither averages out). */
static inline void bh_record_span(bench_hist *h, uint64_t a, uint64_t b)
{
	bh_record(h, b - a);
}

/* ------------------------------------------------------------------ */
/* processes, pinning, futexes, shared memory                          */
/* ------------------------------------------------------------------ */

/* Pin the calling thread to cpu (modulo the CPUs online). @return 0; -errno. */
static inline int bench_pin(int cpu)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(n > 0 ? cpu % (int)n : 0, &set);
	return sched_setaffinity(0, sizeof set, &set) ? -errno : 0;
}

static inline void bench_futex_wait(_Atomic uint32_t *w, uint32_t expected)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 50000000 }; /* re-check */
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, expected, &ts, NULL, 0);
}

static inline void bench_futex_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

/* An anonymous shared mapping (inherited across fork). NULL on failure. */
static inline void *bench_shared_alloc(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/*
 * A POSIX shm object of n bytes, mapped shared, its name unlinked at once
 * (children inherit the mapping across fork; nothing is left behind if we
 * crash). The pages are reserved and touched, as ckr_segment_create does.
 * @return the mapping, or NULL with errno set.
 */
static inline void *bench_shm_map(const char *name, size_t n)
{
	char path[96];
	snprintf(path, sizeof path, "/%s", name);
	int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return NULL;
	shm_unlink(path);
	int rc = posix_fallocate(fd, 0, (off_t)n);
	void *p = MAP_FAILED;
	if (rc == 0)
		p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	else
		errno = rc;
	int saved = errno;
	close(fd);
	errno = saved;
	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, n);
	return p;
}

#endif /* CKR_BENCH_UTIL_H */
