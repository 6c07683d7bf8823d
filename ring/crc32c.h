/*
 * crc32c.h — CRC-32C (Castagnoli), the record checksum.
 *
 * Uses the SSE4.2 crc32 instruction when the build targets it, a table
 * otherwise. ckr_crc32c_copy() copies and checksums in one pass, so a push
 * reads its payload once.
 * Concurrency: pure functions; any thread.
 */
#ifndef CKR_CRC32C_H
#define CKR_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0, chain calls, the result is final.
 * This function can't fail. */
uint32_t ckr_crc32c(uint32_t crc, const void *buf, size_t len);

/* memcpy(dst, src, len) and return ckr_crc32c(crc, src, len). dst and src
 * must not overlap. This function can't fail. */
uint32_t ckr_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len);

/* ckr_crc32c(0, &w, 8) then 4 bytes of v, in registers (the record header
 * of every push: no call, no loop). This function can't fail. */
#if defined(__SSE4_2__) && defined(__x86_64__)
#include <nmmintrin.h>
static inline uint32_t ckr_crc32c_u64_u32(uint64_t w, uint32_t v)
{
	uint32_t c = (uint32_t)_mm_crc32_u64(0xffffffffu, w);
	return ~_mm_crc32_u32(c, v);
}
#else
static inline uint32_t ckr_crc32c_u64_u32(uint64_t w, uint32_t v)
{
	return ckr_crc32c(ckr_crc32c(0, &w, 8), &v, 4);
}
#endif

#endif /* CKR_CRC32C_H */
