/*
 * scenarios_flusher.h — the benchmarks of the flusher engine, through the
 * public API (ckring.h, ckring_store.h):
 *
 *   ckring.drain    pre-fill one lane with N messages of one run through the
 *                   client API, then time ckr_flusher_drain_once() until all
 *                   of them are in LMDB, sync=always: events/s, and the
 *                   latency of each drain pass (one batch = one fsync'd txn).
 *   ckring.durable  open loop at a fixed offered rate: a sender thread pushes
 *                   message i at its *intended* time start + i/rate (late
 *                   sends go at once, never skipped), a waiter thread
 *                   ckr_wait()s each ticket for CKR_LEVEL_SYNCED in order and
 *                   records (completion - intended send time): a slow flusher
 *                   shows as latency, not as fewer samples (no coordinated
 *                   omission). The flusher runs in its own process.
 *   ckring.idle     a flusher process (default 1 ms idle bound) serving an
 *                   empty segment for 5 s (--quick: 1 s): its CPU share of one
 *                   core from /proc/PID/stat (utime + stime), and its
 *                   wake-ups per second (voluntary context switches).
 *
 * @return 0, or -1 with the error line set (bench_fail).
 */
#ifndef BENCH_SCENARIOS_FLUSHER_H
#define BENCH_SCENARIOS_FLUSHER_H

#include <stdbool.h>
#include <stdint.h>

#include "bench.h"

int bench_drain(bench *b, uint32_t size);
int bench_durable(bench *b, uint32_t size, double rate);
/* An idle flusher's CPU and wake-ups; attached: with a quiet producer. */
int bench_idle(bench *b, bool attached);

#endif /* BENCH_SCENARIOS_FLUSHER_H */
