/*
 * fuzz_common.h — what the fuzz targets and the corpus generator share: the
 * input layouts (so make_corpus.c writes exactly what the targets read) and
 * a lane in private memory (ckr_lane over its own control words and a data
 * region followed by a guard page, so any access outside is caught).
 *
 * fuzz_record input:
 *     0   u8   flags: bit 0 writers_gone on even reads, bit 1 on odd reads,
 *              bits 2-3 capacity 4096 << n (n = 0..2), bit 4 tail is raw
 *     1   u64  head (LE)
 *     9   u64  tail (LE): raw when bit 4, else head + (value mod 2C)
 *    17   ...  the lane's data bytes (the rest is zero)
 *
 * fuzz_segment input:
 *     0   u32  object size (LE, cut to FUZZ_SEG_MAX)
 *     4   u8[256]  bytes 0..255 of the object (the segment header)
 *   260   u16  n: bytes of control table that follow (cut to what is left)
 *   262   u8[n] bytes from offset 4096 (the lane control table)
 *         then patches: u32 offset (LE), u16 len, len bytes, ... applied to
 *         the object (cut at its size)
 */
#ifndef CKR_FUZZ_COMMON_H
#define CKR_FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ring/lane.h"

#define FUZZ_REC_HDR 17
#define FUZZ_SEG_HDR 262
#define FUZZ_SEG_MAX (UINT32_C(1) << 20)

static inline uint64_t fuzz_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline void fuzz_put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A lane of capacity cap (a power of two >= 4096) in private memory. The
 * data region is mapped with an inaccessible page right after it: ASan
 * checks an unaligned 8-byte load only by its first byte, so a seal read
 * that starts inside the lane and ends past it would go unseen; the guard
 * page turns it into a SIGSEGV the fuzzer reports. */
typedef struct fuzz_lane {
	ckr_lane lane;
	ckr_lane_ctl *ctl;
	uint8_t *data;
	uint8_t *map;
	size_t map_len;
} fuzz_lane;

static inline int fuzz_lane_new(fuzz_lane *f, uint64_t cap)
{
	uint32_t shift = 0;
	while ((UINT64_C(1) << shift) < cap)
		shift++;
	f->map_len = (size_t)cap + 4096;
	f->map = mmap(NULL, f->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (f->map == MAP_FAILED)
		return -1;
	if (mprotect(f->map + cap, 4096, PROT_NONE) != 0) {
		munmap(f->map, f->map_len);
		return -1;
	}
	f->data = f->map;
	f->ctl = aligned_alloc(64, sizeof *f->ctl);
	if (!f->ctl) {
		munmap(f->map, f->map_len);
		return -1;
	}
	memset(f->ctl, 0, sizeof *f->ctl);
	memset(f->data, 0, cap);
	f->lane = (ckr_lane){ .ctl = f->ctl, .data = f->data, .capacity = cap,
			      .mask = cap - 1, .shift = shift, .index = 0,
			      .max_record = (uint32_t)(cap / 4) };
	return 0;
}

static inline void fuzz_lane_free(fuzz_lane *f)
{
	free(f->ctl);
	munmap(f->map, f->map_len);
}

#endif /* CKR_FUZZ_COMMON_H */
