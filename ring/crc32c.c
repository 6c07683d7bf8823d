/*
 * crc32c.c — CRC-32C (Castagnoli): SSE4.2 instruction path, portable table
 * fallback.
 *
 * Why not one serial chain: the crc32 instruction has a latency of 3 cycles
 * but the core can start one or two of them per cycle, so a single chain
 * runs at a third (or a sixth) of what the core can do. In a push the CRC is
 * on the critical path (the record's DATA seal is stored only once the CRC
 * is known), so the latency from the first byte to the result matters; for
 * short records the instruction count matters as much, which is why the
 * short paths below stay short (BENCHMARKS.md has the measurements).
 *
 * The input is split into K equal streams of L quadwords that run in
 * parallel, each from state 0, and recombined with carry-less
 * multiplication (PCLMULQDQ). The CRC is linear, so for a block of K*L
 * qwords entered with state c:
 *
 *     crc(c, S_0 .. S_{K-1}) = shift(c, K*L) ^ sum_j shift(s_j, (K-1-j)*L)
 *                              (s_{K-1} taken from state 0 over S_{K-1})
 *
 * where s_j = crc(0, S_j) and shift(v, m) = v * x^(64m) mod P, the state
 * after m zero qwords. With the reflected operands of the crc32 instruction,
 *
 *     crc32_u64(0, clmul(v, x^(64m-33) mod P)) == shift(v, m)
 *
 * (a 32x32 reflected clmul carries one extra factor of x, the crc32 step
 * x^32), and crc32_u64 is linear in (state, data), so all the shifted terms
 * are XORed into the last qword of the last stream before its crc32 step:
 * one crc32 does the final reduction. Because the incoming state c is
 * folded in the same way, it is needed only at the very end: the streams
 * start before the caller's previous CRC (the record header) is known.
 *
 *     len < 80           serial chain (8, 4, 2, 1-byte steps)
 *     80 <= len < 384    the head (len mod 32 bytes) serially, then one
 *                        4-way block of the rest
 *     len >= 384         6-way blocks of up to 6 x 8 x MAX_L bytes, then the
 *                        remainder as above
 *
 * ckr_crc32c_copy() stores each qword as the CRC reads it (one pass) below
 * COPY_SPLIT bytes; above, the copy is store-bound and memcpy()'s wide
 * stores win, so it copies first and checksums the cache-hot source.
 *
 * The constants x^(64m-33) mod P are computed once, at load time, from the
 * polynomial (no magic tables); until they are ready, or on a CPU without
 * PCLMULQDQ, the serial chain is used, which gives the same result.
 *
 * Concurrency: pure functions; any thread. The constant table is written
 * once by a constructor and only read afterwards (release/acquire on
 * `k_ready` below).
 */
#include "ring/crc32c.h"

#include <stdbool.h>
#include <string.h>

#define POLY 0x82F63B78u /* CRC-32C, reflected */

#if defined(__SSE4_2__) && defined(__x86_64__)
#include <immintrin.h>
#include <nmmintrin.h>

#define INLINE static inline __attribute__((always_inline))

#define SMALL_MIN 80   /* bytes: below, the serial chain */
#define COPY_SPLIT 512 /* bytes: from here, memcpy() then a load-only CRC */
#define BIG_MIN 384    /* bytes: from here, 6-way blocks (L >= 8) */
#define MAX_L 128      /* qwords per stream of one block (6 KiB blocks) */
#define MAX_SHIFT (6 * MAX_L)

/* k_shift[m] = x^(64m - 33) mod P (reflected): shifts a state past m
 * qwords. Index 0 unused. Written once by crc32c_init(). */
static uint64_t k_shift[MAX_SHIFT + 1];
static int k_ready; /* 1 once k_shift is written and PCLMULQDQ exists */

/* a * b mod P, both reflected (bit 31 is x^0). */
static uint32_t mulmod(uint32_t a, uint32_t b)
{
	uint32_t p = 0;
	for (uint32_t m = UINT32_C(1) << 31; m; m >>= 1) {
		if (a & m)
			p ^= b;
		b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
	}
	return p;
}

/* x^n mod P (reflected), by repeated multiplication by x. */
static uint32_t xpow(unsigned n)
{
	uint32_t r = UINT32_C(1) << 31; /* x^0 */
	while (n--)
		r = mulmod(r, UINT32_C(1) << 30); /* times x^1 */
	return r;
}

__attribute__((constructor)) static void crc32c_init(void)
{
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("pclmul"))
		return;
	uint32_t x64 = xpow(64), k = xpow(64 - 33);
	for (unsigned m = 1; m <= MAX_SHIFT; m++, k = mulmod(k, x64))
		k_shift[m] = k;
	/* release: pairs with the acquire in fast_ready(): a reader that sees
	 * k_ready sees the whole table. */
	__atomic_store_n(&k_ready, 1, __ATOMIC_RELEASE);
}

INLINE bool fast_ready(void)
{
	/* acquire: pairs with the release in crc32c_init(). */
	return __atomic_load_n(&k_ready, __ATOMIC_ACQUIRE) != 0;
}

INLINE uint64_t ld64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

INLINE void st64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

INLINE uint64_t step(uint64_t c, uint64_t v)
{
	return _mm_crc32_u64(c, v);
}

/* clmul(v, k_shift[m]): v shifted past m qwords, before the reduction by
 * one crc32 step. PCLMULQDQ is written as inline asm so this inlines into
 * code built for SSE4.2 only; it runs only once fast_ready() said the CPU
 * has it. */
INLINE __m128i shifted(uint64_t v, size_t m)
{
	__m128i x = _mm_cvtsi64_si128((long long)v);
	__m128i k = _mm_cvtsi64_si128((long long)k_shift[m]);
	__asm__("pclmulqdq $0x00, %1, %0" : "+x"(x) : "x"(k));
	return x;
}

INLINE uint64_t low64(__m128i x)
{
	return (uint64_t)_mm_cvtsi128_si64(x);
}

/* The serial chain over len bytes (any len), copying when `copy`. */
INLINE uint32_t serial(uint32_t c, uint8_t *d, const uint8_t *s, size_t len, const bool copy)
{
	uint64_t c64 = c;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t v = ld64(s + i);
		if (copy)
			st64(d + i, v);
		c64 = step(c64, v);
	}
	c = (uint32_t)c64;
	if (len & 4) {
		uint32_t v;
		memcpy(&v, s + i, 4);
		if (copy)
			memcpy(d + i, &v, 4);
		c = _mm_crc32_u32(c, v);
		i += 4;
	}
	if (len & 2) {
		uint16_t v;
		memcpy(&v, s + i, 2);
		if (copy)
			memcpy(d + i, &v, 2);
		c = _mm_crc32_u16(c, v);
		i += 2;
	}
	if (len & 1) {
		if (copy)
			d[i] = s[i];
		c = _mm_crc32_u8(c, s[i]);
	}
	return c;
}

/* Stream state a after the qword at s + off (copied to d + off). */
INLINE uint64_t lane(uint64_t a, uint8_t *d, const uint8_t *s, size_t off, const bool copy)
{
	uint64_t v = ld64(s + off);
	if (copy)
		st64(d + off, v);
	return step(a, v);
}

/* One block of 4 streams of L >= 1 qwords, entered with state c. */
INLINE uint32_t block4(uint32_t c, uint8_t *d, const uint8_t *s, size_t L, const bool copy)
{
	const size_t w = 8 * L, last = w - 8; /* stream width, bytes */
	uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
	for (size_t i = 0; i < last; i += 8) {
		a0 = lane(a0, d, s, i, copy);
		a1 = lane(a1, d, s, w + i, copy);
		a2 = lane(a2, d, s, 2 * w + i, copy);
		a3 = lane(a3, d, s, 3 * w + i, copy);
	}
	a0 = lane(a0, d, s, last, copy);
	a1 = lane(a1, d, s, w + last, copy);
	a2 = lane(a2, d, s, 2 * w + last, copy);
	uint64_t v3 = ld64(s + 3 * w + last);
	if (copy)
		st64(d + 3 * w + last, v3);
	__m128i x = _mm_xor_si128(_mm_xor_si128(shifted(c, 4 * L), shifted(a0, 3 * L)),
				  _mm_xor_si128(shifted(a1, 2 * L), shifted(a2, L)));
	return (uint32_t)step(a3, v3 ^ low64(x));
}

/* One block of 6 streams of L >= 1 qwords, entered with state c. */
INLINE uint32_t block6(uint32_t c, uint8_t *d, const uint8_t *s, size_t L, const bool copy)
{
	const size_t w = 8 * L, last = w - 8;
	uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0;
	for (size_t i = 0; i < last; i += 8) {
		a0 = lane(a0, d, s, i, copy);
		a1 = lane(a1, d, s, w + i, copy);
		a2 = lane(a2, d, s, 2 * w + i, copy);
		a3 = lane(a3, d, s, 3 * w + i, copy);
		a4 = lane(a4, d, s, 4 * w + i, copy);
		a5 = lane(a5, d, s, 5 * w + i, copy);
	}
	a0 = lane(a0, d, s, last, copy);
	a1 = lane(a1, d, s, w + last, copy);
	a2 = lane(a2, d, s, 2 * w + last, copy);
	a3 = lane(a3, d, s, 3 * w + last, copy);
	a4 = lane(a4, d, s, 4 * w + last, copy);
	uint64_t v5 = ld64(s + 5 * w + last);
	if (copy)
		st64(d + 5 * w + last, v5);
	__m128i x = _mm_xor_si128(
		_mm_xor_si128(_mm_xor_si128(shifted(c, 6 * L), shifted(a0, 5 * L)),
			      _mm_xor_si128(shifted(a1, 4 * L), shifted(a2, 3 * L))),
		_mm_xor_si128(shifted(a3, 2 * L), shifted(a4, L)));
	return (uint32_t)step(a5, v5 ^ low64(x));
}

/*
 * len >= SMALL_MIN bytes, no copy: 6-way blocks while they pay, then the
 * head (len mod 32 bytes) serially and one 4-way block of the rest. The
 * head goes first: its chain then runs beside the block's streams and its
 * state is folded in at the end. Out of line, so the short paths of the
 * public functions stay short.
 */
__attribute__((noinline)) static uint32_t crc_long(uint32_t c, const uint8_t *s, size_t len)
{
	while (len >= BIG_MIN) {
		size_t L = len / 48 < MAX_L ? len / 48 : MAX_L;
		c = block6(c, NULL, s, L, false);
		s += 48 * L;
		len -= 48 * L;
	}
	if (len < SMALL_MIN)
		return serial(c, NULL, s, len, false);
	size_t head = len % 32;
	c = serial(c, NULL, s, head, false);
	return block4(c, NULL, s + head, (len - head) / 32, false);
}

/* SMALL_MIN <= len < COPY_SPLIT, copying: the head, then one 4-way block. */
__attribute__((noinline)) static uint32_t crc_copy_mid(uint32_t c, uint8_t *d, const uint8_t *s,
						       size_t len)
{
	size_t head = len % 32;
	c = serial(c, d, s, head, true);
	return block4(c, d + head, s + head, (len - head) / 32, true);
}

uint32_t ckr_crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (len >= SMALL_MIN && fast_ready())
		return ~crc_long(~crc, buf, len);
	return ~serial(~crc, NULL, buf, len, false);
}

uint32_t ckr_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len)
{
	if (len < SMALL_MIN || !fast_ready())
		return ~serial(~crc, dst, src, len, true);
	if (len < COPY_SPLIT)
		return ~crc_copy_mid(~crc, dst, src, len);
	/* A long copy is store-bound: memcpy()'s wide stores beat one 8-byte
	 * store per CRC step; the CRC then reads the (cache-hot) source. */
	memcpy(dst, src, len);
	return ~crc_long(~crc, src, len);
}

#else /* portable: one table lookup per byte */

static uint32_t table[256];
static int table_ready;

static void make_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[i] = c;
	}
	__atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

static inline uint32_t crc_impl(uint32_t c, uint8_t *d, const uint8_t *s, size_t len,
				const bool copy)
{
	if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE))
		make_table(); /* idempotent: racing threads write equal values */
	for (size_t i = 0; i < len; i++) {
		if (copy)
			d[i] = s[i];
		c = table[(c ^ s[i]) & 0xFF] ^ (c >> 8);
	}
	return c;
}

uint32_t ckr_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return ~crc_impl(~crc, NULL, buf, len, false);
}

uint32_t ckr_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len)
{
	return ~crc_impl(~crc, dst, src, len, true);
}
#endif

