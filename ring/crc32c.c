/*
 * crc32c.c — CRC-32C: SSE4.2 instruction path, portable table fallback.
 */
#include "ring/crc32c.h"

#include <string.h>

#if defined(__SSE4_2__)
#include <nmmintrin.h>

static inline uint32_t step8(uint32_t c, uint64_t v)
{
	return (uint32_t)_mm_crc32_u64(c, v);
}

static inline uint32_t step1(uint32_t c, uint8_t v)
{
	return _mm_crc32_u8(c, v);
}
#else
static uint32_t table[256];
static int table_ready;

static void make_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		table[i] = c;
	}
	__atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

static inline uint32_t step1(uint32_t c, uint8_t v)
{
	if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE))
		make_table(); /* idempotent: racing threads write equal values */
	return table[(c ^ v) & 0xFF] ^ (c >> 8);
}

static inline uint32_t step8(uint32_t c, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		c = step1(c, (uint8_t)(v >> (8 * i)));
	return c;
}
#endif

uint32_t ckr_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc;
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = step8(c, v);
	}
	while (len--)
		c = step1(c, *p++);
	return ~c;
}

uint32_t ckr_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len)
{
	const uint8_t *s = src;
	uint8_t *d = dst;
	uint32_t c = ~crc;
	for (; len >= 8; len -= 8, s += 8, d += 8) {
		uint64_t v;
		memcpy(&v, s, 8);
		memcpy(d, &v, 8);
		c = step8(c, v);
	}
	while (len--) {
		*d++ = *s;
		c = step1(c, *s++);
	}
	return ~c;
}
