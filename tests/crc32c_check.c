/*
 * crc32c_check.c — standalone check and micro-benchmark of ring/crc32c.c.
 *
 * 1. Correctness: ckr_crc32c() and ckr_crc32c_copy() against a bitwise
 *    reference for every length 0..4096 (plus a few longer ones), at every
 *    source alignment 0..15 and a random destination alignment, from a
 *    random starting CRC; the copy must equal the source and must not touch
 *    a byte outside [dst, dst+len); a CRC chained over a random split must
 *    equal the CRC of the whole.
 * 2. Speed: latency (each call's result feeds the next call; thread CPU
 *    time, best of 9) of the new code and of the previous serial chain.
 *
 * A check of an internal module (ring/crc32c.h), so it lives with the tests,
 * not in bench/ (which sees the public headers only). Built by `make tests`
 * as build/tests/crc32c_check and run by tests/test_crc32c.sh:
 *
 *   make tests && build/tests/crc32c_check
 * Exit 0 when every check passed, 1 otherwise.
 */
#include <nmmintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "ring/crc32c.h"

static uint32_t ref_crc(uint32_t crc, const uint8_t *p, size_t n)
{
	uint32_t c = ~crc;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

/* The implementation this file replaced: one serial crc32 chain. */
static uint32_t old_copy(uint32_t crc, void *dst, const void *src, size_t len)
{
	const uint8_t *s = src;
	uint8_t *d = dst;
	uint32_t c = ~crc;
	for (; len >= 8; len -= 8, s += 8, d += 8) {
		uint64_t v;
		memcpy(&v, s, 8);
		memcpy(d, &v, 8);
		c = (uint32_t)_mm_crc32_u64(c, v);
	}
	while (len--) {
		*d++ = *s;
		c = _mm_crc32_u8(c, *s++);
	}
	return ~c;
}

static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

#define MAXLEN 16384
static uint8_t src_buf[MAXLEN + 64], dst_buf[MAXLEN + 128];

static int check_len(size_t n, size_t sa, size_t da)
{
	const uint8_t *s = src_buf + sa;
	uint8_t *d = dst_buf + 32 + da;
	uint32_t init = (uint32_t)rnd(), want = ref_crc(init, s, n);
	uint32_t got = ckr_crc32c(init, s, n);
	if (got != want) {
		printf("FAIL crc32c len %zu align %zu: %08x want %08x\n", n, sa, got, want);
		return 1;
	}
	memset(dst_buf, 0xA5, sizeof dst_buf);
	got = ckr_crc32c_copy(init, d, s, n);
	if (got != want || memcmp(d, s, n)) {
		printf("FAIL copy len %zu align %zu/%zu\n", n, sa, da);
		return 1;
	}
	for (size_t i = 0; i < sizeof dst_buf; i++) {
		if ((dst_buf + i < d || dst_buf + i >= d + n) && dst_buf[i] != 0xA5) {
			printf("FAIL copy len %zu wrote outside at %zd\n", n, dst_buf + i - d);
			return 1;
		}
	}
	size_t cut = n ? (size_t)(rnd() % (n + 1)) : 0;
	got = ckr_crc32c(ckr_crc32c(init, s, cut), s + cut, n - cut);
	if (got != want) {
		printf("FAIL chained len %zu cut %zu\n", n, cut);
		return 1;
	}
	return 0;
}

/* Thread CPU time: the machine may be shared; time we are descheduled
 * must not count. */
static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

typedef uint32_t (*copy_fn)(uint32_t, void *, const void *, size_t);

/* ns per call when each call's CRC feeds the next (latency), best of 9. */
static double lat_ns(copy_fn f, size_t n)
{
	uint32_t c = 0;
	long iters = (long)(20000000 / (n + 64));
	double best = 1e30;
	for (int rep = 0; rep < 9; rep++) {
		double t0 = now_ns();
		for (long i = 0; i < iters; i++)
			c = f(c, dst_buf, src_buf, n);
		double t = (now_ns() - t0) / (double)iters;
		best = t < best ? t : best;
	}
	if (c == 0x12345678)
		puts("");
	return best;
}

int main(void)
{
	int fails = 0;
	long cases = 0;
	for (size_t i = 0; i < sizeof src_buf; i++)
		src_buf[i] = (uint8_t)rnd();
	for (size_t n = 0; n <= 4096; n++)
		for (size_t sa = 0; sa < 16; sa++, cases++)
			fails += check_len(n, sa, (size_t)(rnd() % 64));
	static const size_t big[] = { 6143, 6144, 6145, 6168, 8191, 8192, 12289, 16384 };
	for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
		for (size_t sa = 0; sa < 16; sa++, cases++)
			fails += check_len(big[i], sa, (size_t)(rnd() % 64));
	printf("correctness: %ld cases (lengths 0..4096 x 16 alignments + 8 long), %d failures\n",
	       cases, fails);
	static const size_t sizes[] = { 12, 48, 64, 80, 96, 112, 128, 140, 256, 1024, 4096, 16384 };
	printf("%8s %12s %12s %8s\n", "bytes", "old ns/call", "new ns/call", "speedup");
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		double o = lat_ns(old_copy, sizes[i]), n = lat_ns(ckr_crc32c_copy, sizes[i]);
		printf("%8zu %12.2f %12.2f %7.2fx\n", sizes[i], o, n, o / n);
	}
	return fails ? 1 : 0;
}
