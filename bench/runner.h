/*
 * runner.h — the ring scenarios: a consumer process and producer threads or
 * processes around one ring of rings.h, timed per op.
 *
 *   X.push   the producers' side: each push timed (ckring.push,
 *            ckring.push.procs, floor.push, mutex_ring.push, pipe.write);
 *   X.read   the consumer's side alone (floor.read, ckring.read): one
 *            producer fills half the ring, untimed, and sleeps; the consumer
 *            reads it back, each read (+ validate, + release every 64 KiB)
 *            timed, then the next half is filled.
 *
 * Each measurement has a warm-up, a timed pass and an untimed throughput
 * pass (bench.h). After each run the harness checks that the consumer saw
 * exactly as many records as were pushed, none corrupt.
 */
#ifndef BENCH_RUNNER_H
#define BENCH_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "bench.h"
#include "rings.h"

typedef struct run_cfg {
	const ring_ops *ops;
	const char *name;
	uint32_t size;
	int threads, procs;
	bool phased; /* bursts of half a ring, the consumer drains between */
	bool reads;  /* time the consumer's reads, not the pushes */
} run_cfg;

/* One run as configured; adds its row. @return 0, or -1 (bench_fail). */
int bench_run_ring(bench *b, const run_cfg *cfg);

/* Every selected ring scenario at one payload size. @return 0 or -1. */
int bench_ring_scenarios(bench *b, uint32_t size);

#endif /* BENCH_RUNNER_H */
