/*
 * flusher_proc.h — the harness's flusher: the real engine in a process of
 * its own on a fresh segment and store (what ckring.durable, ckring.idle
 * and recovery.claim measure against), and a client of it.
 */
#ifndef BENCH_FLUSHER_PROC_H
#define BENCH_FLUSHER_PROC_H

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "ckring.h"
#include "ckring_store.h"
#include "bench.h"

#define FL_LANE_CAP (UINT64_C(64) << 20) /* room for the drain's pre-fill */
#define FL_EVENT_OVERHEAD 112 /* event encoding + record header, at most (estimate) */

/* How the flusher process's start went: state 0 starting, 1 serving,
 * 2 failed with err. In shared memory. */
typedef struct fl_status {
	_Atomic uint32_t state;
	int err;
} fl_status;

typedef struct fl_proc {
	char dir[PATH_MAX];
	char seg[64];
	pid_t pid;
	fl_status *status;
} fl_proc;

/* The harness's segment: 2 lanes of FL_LANE_CAP. */
void fl_seg_opts(ckr_segment_opts *o);

/* Payload bytes of message i. */
void fl_payload(uint8_t *p, uint32_t size, uint64_t i);

/* A client of segment seg with one single-loop run (run may be NULL: no
 * run). @return 0 or -1 (bench_fail). */
int fl_client(bench *b, const char *what, const char *seg, ckr_client **c, ckr_run **run);

/* Start a flusher process on a new segment and store; wait until it
 * serves. @return 0 or -1 (bench_fail). */
int fl_proc_start(bench *b, const char *what, fl_proc *p);

/* SIGTERM it, reap it, remove its segment and store. */
void fl_proc_stop(fl_proc *p);

#endif /* BENCH_FLUSHER_PROC_H */
