/*
 * flusher_metrics.h — what the drain engine measures for its metrics
 * (persist/flusher_metrics.c; the public reader is ckr_flusher_metrics_get
 * in include/ckring_store.h).
 *
 * One writer, any readers: only the thread that runs the engine calls the
 * ckr_fm_* recorders (but ckr_fm_sync: see there); every value is a 64-bit atomic it updates with a
 * relaxed load and a relaxed store (no read-modify-write: nobody else
 * writes), and other threads read with relaxed loads. A reader sees each
 * value exact but the set not from one instant (a scrape may count a batch
 * whose events it does not count yet); Prometheus counters only need each
 * series monotonic, which this gives. Nothing here is a pointer, so nothing
 * needs RCU (see the measurement in BENCHMARKS.md, "Metrics").
 */
#ifndef CKR_FLUSHER_METRICS_H
#define CKR_FLUSHER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "ckring_store.h"
#include "persist/store.h"

typedef struct ckr_fm_hist {
	_Atomic uint64_t count[CKR_HISTOGRAM_BUCKETS];
	_Atomic uint64_t total;
	_Atomic uint64_t sum;        /* ns (durations) or events */
} ckr_fm_hist;

typedef struct ckr_fm {
	_Atomic uint64_t applied[CKR_APPLY_COUNT]; /* by ckr_apply */
	_Atomic uint64_t corrupt, reclaimed, batches, map_grown, disk_full;
	_Atomic uint64_t syncs, pruned_runs, pruned_rows;
	_Atomic uint64_t started_ns, last_commit_ns;
	ckr_fm_hist commit, fsync, batch;
} ckr_fm;

struct ckr_flusher;

/* At open. */
void ckr_fm_init(ckr_fm *m);

/* After a committed batch of n events whose commit took commit_ns: the
 * engine's counters (f->stats, merged) and the commit and batch-size
 * histograms. */
void ckr_fm_batch(struct ckr_flusher *f, uint64_t commit_ns, size_t n);

/* The counters only (map growth and disk-full retries happen between
 * commits): from housekeeping. */
void ckr_fm_publish(struct ckr_flusher *f);

/* An explicit fsync that took ns. Its one writer is the syncer thread
 * with sync=always (flusher_sync.c), the engine's thread otherwise
 * (maybe_sync): never both. */
void ckr_fm_sync(struct ckr_flusher *f, uint64_t ns);

/* Retention removed (or cleared) runs and deleted rows. */
void ckr_fm_pruned(struct ckr_flusher *f, uint64_t runs, uint64_t rows);

/* CLOCK_MONOTONIC ns, for the recorders' call sites. */
uint64_t ckr_fm_now(void);

#endif /* CKR_FLUSHER_METRICS_H */
