/*
 * layout.h — every block of memory that more than one actor of a benchmark
 * touches, in one place, so that tests/test_bench_layout.c can check that
 * no two actors' hot fields share a 128-byte block (BENCH_BLOCK: two cache
 * lines, because the adjacent-line prefetcher moves lines in pairs).
 *
 * Actors: the consumer (one process), each producer thread, and the parent
 * (which starts and stops a run). "Hot" means touched per op or per poll of
 * an idle loop; a field touched once per burst or per run may share a block
 * with its own actor's fields only.
 *
 * A false share here costs the ring that suffers it, not the one measured
 * beside it: the floor's 128 B mean was measured at 79-104 ns with the
 * producers' latency histogram on the line the consumer polls when idle,
 * 56 ns without (issue 14). Hence this file and its test.
 */
#ifndef BENCH_LAYOUT_H
#define BENCH_LAYOUT_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hist.h"
#include "sys.h"

#define BENCH_MAX_PROD 8

/* ---- floor ring (rings_floor.c), at the start of its shm mapping ---- */

typedef struct floor_hdr {
	/* producers: fetch-add per push */
	_Alignas(BENCH_BLOCK) _Atomic uint64_t tail;
	/* the consumer: release store every 64 KiB and when it runs dry;
	 * producers load it only when the ring looks full */
	_Alignas(BENCH_BLOCK) _Atomic uint64_t head;
} floor_hdr;

/* One producer thread's view (private memory, one block per thread). */
typedef struct floor_thr {
	_Alignas(BENCH_BLOCK) floor_hdr *h;
	uint8_t *data;
	uint64_t cap, head_cache, waits;
} floor_thr;

/* ---- mutex ring (rings_mutex.c), at the start of its shm mapping ---- */

typedef struct mx_hdr {
	/* every actor, by construction: the lock */
	_Alignas(BENCH_BLOCK) pthread_mutex_t m;
	/* producers, under m */
	_Alignas(BENCH_BLOCK) uint64_t tail;
	/* the consumer, under m */
	_Alignas(BENCH_BLOCK) uint64_t head;
} mx_hdr;

/* ---- ckring (rings_ckring.c): one producer thread's run ---- */

typedef struct ckr_run ckr_run;

typedef struct ck_thr {
	_Alignas(BENCH_BLOCK) ckr_run *run;
	uint64_t last_end;     /* ticket position of the previous push */
	uint32_t record_bytes; /* smallest step between two tickets */
} ck_thr;

/* ---- the runner (runner.c): the block all actors of a run share ---- */

/* One producer thread's results: its histogram is written per op. */
typedef struct prod_slot {
	_Alignas(BENCH_BLOCK) bench_hist hist;
	uint64_t pushed, refused, refused_tp, waits;
	uint64_t tp_ops, tp_ticks;
	uint32_t record_bytes;
	int err;
} prod_slot;

/* The consumer's results; its histogram is written per record in the
 * read benchmarks. */
typedef struct cons_slot {
	_Alignas(BENCH_BLOCK) bench_hist hist;
	uint64_t consumed, corrupt;
	uint64_t tp_records, tp_ticks;
	int err;
} cons_slot;

typedef struct run_shared {
	/* set-up and stop: written by the parent and each actor once per
	 * run; cons_stop is polled by an idle consumer */
	_Alignas(BENCH_BLOCK) _Atomic uint32_t ready;
	_Atomic uint32_t go;
	_Atomic uint32_t cons_stop;
	/* phased hand-off: touched once per burst by every actor */
	_Alignas(BENCH_BLOCK) _Atomic uint32_t gen;  /* the burst producers may run */
	_Atomic uint32_t sync;                       /* active << 16 | arrived */
	_Atomic uint32_t phase;                      /* read runs: producer 0's pass */
	cons_slot cons;
	prod_slot slot[BENCH_MAX_PROD];
} run_shared;

/* One producer thread's state (the parent's memory; one block each, since
 * `left` is written per op). */
struct bench;
struct run_cfg;
struct bench_ring;

typedef struct prod_arg {
	_Alignas(BENCH_BLOCK) const struct bench *b;
	const struct run_cfg *cfg;
	run_shared *sh;
	struct bench_ring *ring;
	void *proc;
	int proc_err;
	int idx;
	uint32_t gen;         /* phased: the burst we are in */
	uint64_t burst, left; /* phased: ops per burst, ops left in this one */
	uint64_t active, burst_start;
} prod_arg;

/* The same, checked at compile time (tests/test_bench_layout.c checks
 * every pair of actors). */
_Static_assert(offsetof(floor_hdr, head) - offsetof(floor_hdr, tail) >= BENCH_BLOCK,
	       "floor: tail and head share a block");
_Static_assert(offsetof(run_shared, gen) >= BENCH_BLOCK &&
	       offsetof(run_shared, cons) % BENCH_BLOCK == 0 &&
	       sizeof(prod_slot) % BENCH_BLOCK == 0 && sizeof(prod_arg) % BENCH_BLOCK == 0,
	       "runner: actors share a block");

#endif /* BENCH_LAYOUT_H */
