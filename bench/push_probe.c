/*
 * push_probe.c — the push path in isolation: per-op latency of
 * ckr_lane_push() against the floor op (fetch-add + memcpy + release
 * store), one thread, no consumer (the thread releases the lane itself when
 * it is full), timed with the harness's instrument (tools/bench_util.h).
 * Prints the trimmed mean and the p50 per op, best of 7 rounds, so that load
 * from other jobs on a shared machine cancels out.
 *
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -I. -msse4.2 bench/push_probe.c
 *       shm/[a-z]*.c ring/[a-z]*.c -o /tmp/push_probe -lrt
 *   /tmp/push_probe 128
 *
 * To see the push without its CRC, link a ring/crc32c.c replacement whose
 * ckr_crc32c() returns crc and whose ckr_crc32c_copy() only memcpy()s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring/lane.h"
#include "shm/proc.h"
#include "tools/bench_util.h"

#define CAP (UINT64_C(1) << 20)
#define ROUNDS 7

static _Alignas(64) _Atomic uint64_t floor_tail;
static bench_hist hist, scratch;

static void floor_op(uint8_t *ring, const void *p, uint32_t size)
{
	uint64_t need = (8 + (uint64_t)size + 7) & ~UINT64_C(7);
	uint64_t pos = atomic_fetch_add_explicit(&floor_tail, need, memory_order_relaxed);
	uint8_t *r = ring + (pos & (CAP - 1));
	memcpy(r + 8, p, size);
	atomic_store_explicit((_Atomic uint64_t *)(void *)r, pos + need, memory_order_release);
}

int main(int argc, char **argv)
{
	uint32_t size = argc > 1 ? (uint32_t)atoi(argv[1]) : 128;
	long n = 2000000 / (size / 128 + 1);
	char name[64];
	bench_clock clk;
	ckr_segment seg;
	ckr_lane lane;
	uint64_t tok, end;
	uint32_t idx;
	if (size < 8 || size > 65536)
		return 2;
	bench_clock_calibrate(&clk, 50, &scratch);
	snprintf(name, sizeof name, "push-probe-%d", (int)getpid());
	ckr_segment_opts o = { .lanes = 4, .size = 8192 + 4 * CAP, .group = (gid_t)-1 };
	if (ckr_segment_create(name, &o) || ckr_segment_attach(name, false, &seg))
		return 1;
	ckr_segment_unlink(name);
	if (ckr_proc_self_token(&tok) || ckr_lane_acquire(&seg, tok, 0, &idx))
		return 1;
	ckr_lane_view(&seg, idx, &lane);
	uint8_t *ring = bench_shm_map(name, CAP + 70000), *p = calloc(1, size);
	if (!ring || !p)
		return 1;
	for (int which = 0; which < 2; which++) {
		double best_mean = 1e30, best_p50 = 1e30;
		for (int round = 0; round < ROUNDS; round++) {
			bh_reset(&hist);
			for (long i = 0; i < n; i++) {
				memcpy(p, &i, 8);
				uint64_t t0 = bench_t0();
				int rc = 0;
				if (which == 0)
					floor_op(ring, p, size);
				else
					rc = ckr_lane_push(&lane, p, size, &end);
				uint64_t t1 = bench_t1();
				if (rc) { /* full: consume everything, retry */
					ckr_lane_release(&lane, ckr_lane_tail(&lane), 0);
					i--;
					continue;
				}
				bh_record(&hist, t1 - t0);
			}
			double m = bench_ns(&clk, bh_trimmed_mean(&hist, 0.99) - clk.overhead);
			double q = bench_ns(&clk, bh_quantile(&hist, 0.5, clk.quantum) - clk.overhead);
			best_mean = m < best_mean ? m : best_mean;
			best_p50 = q < best_p50 ? q : best_p50;
		}
		printf("%-5s %5u B: trimmed mean %6.1f ns, p50 %6.1f ns\n",
		       which ? "push" : "floor", size, best_mean, best_p50);
	}
	return 0;
}
