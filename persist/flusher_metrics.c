/*
 * flusher_metrics.c — the engine's measurements (flusher_metrics.h) and
 * their public reader, ckr_flusher_metrics_get().
 *
 * Buckets: durations 25 µs .. 1 s (a commit with fsync is ~0.1-10 ms here,
 * BENCHMARKS.md), batch sizes 1 .. 8192 events in powers of two (the
 * engine's batch limit is 8192 events), each with +Inf last.
 */
#include "persist/flusher_metrics.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "persist/flusher.h"
#include "shm/clock.h"

#define N_LAT 16
#define N_BATCH 15

/* Upper bounds in ns; the last bucket (+Inf) has none. */
static const uint64_t lat_le_ns[N_LAT - 1] = {
	25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
	10000000, 25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
};

static const char *const reject_names[CKR_FLUSHER_REJECT_REASONS] = {
	"dup_begin", "foreign", "stale", "orphan", "after_end", "dup_seq",
	"bad_kind", "bad_begin",
};

_Static_assert(CKR_FLUSHER_REJECT_REASONS == CKR_APPLY_COUNT - 1,
	       "one public reason per rejection of ckr_apply");

/* The single writer's add: relaxed load + relaxed store (no locked RMW). */
static inline void add(_Atomic uint64_t *a, uint64_t v)
{
	atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static inline void set(_Atomic uint64_t *a, uint64_t v)
{
	atomic_store_explicit(a, v, memory_order_relaxed);
}

static inline uint64_t get(const _Atomic uint64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

uint64_t ckr_fm_now(void)
{
	return ckr_now_ns(CLOCK_MONOTONIC);
}

void ckr_fm_init(ckr_fm *m)
{
	memset(m, 0, sizeof *m); /* all-zero atomics are valid zero values */
	set(&m->started_ns, ckr_now_ns(CLOCK_REALTIME));
}

static void observe(ckr_fm_hist *h, unsigned bucket, uint64_t v)
{
	add(&h->count[bucket], 1);
	add(&h->total, 1);
	add(&h->sum, v);
}

static unsigned lat_bucket(uint64_t ns)
{
	unsigned i = 0;
	while (i < N_LAT - 1 && ns > lat_le_ns[i])
		i++;
	return i;
}

static unsigned batch_bucket(size_t n)
{
	unsigned i = 0;
	while (i < N_BATCH - 1 && n > ((size_t)1 << i))
		i++;
	return i;
}

void ckr_fm_publish(ckr_flusher *f)
{
	ckr_fm *m = &f->metrics;
	for (int i = 0; i < CKR_APPLY_COUNT; i++)
		set(&m->applied[i], f->stats.applied[i]);
	set(&m->corrupt, f->stats.corrupt);
	set(&m->reclaimed, f->stats.reclaimed);
	set(&m->batches, f->stats.batches);
	set(&m->map_grown, f->stats.map_grown);
	set(&m->disk_full, f->stats.disk_full);
}

void ckr_fm_batch(ckr_flusher *f, uint64_t commit_ns, size_t n)
{
	ckr_fm_publish(f);
	observe(&f->metrics.commit, lat_bucket(commit_ns), commit_ns);
	observe(&f->metrics.batch, batch_bucket(n), n);
	set(&f->metrics.last_commit_ns, ckr_now_ns(CLOCK_REALTIME));
}

void ckr_fm_sync(ckr_flusher *f, uint64_t ns)
{
	observe(&f->metrics.fsync, lat_bucket(ns), ns);
	add(&f->metrics.syncs, 1);
}

void ckr_fm_pruned(ckr_flusher *f, uint64_t runs, uint64_t rows)
{
	if (runs)
		add(&f->metrics.pruned_runs, runs);
	if (rows)
		add(&f->metrics.pruned_rows, rows);
}

/* ---- the reader (any thread) ---- */

const char *ckr_flusher_reject_name(unsigned i)
{
	return i < CKR_FLUSHER_REJECT_REASONS ? reject_names[i] : NULL;
}

static void read_hist(const ckr_fm_hist *h, ckr_histogram *out, bool latency)
{
	unsigned n = latency ? N_LAT : N_BATCH;
	double scale = latency ? 1e-9 : 1.0;
	out->n_buckets = n;
	for (unsigned i = 0; i < n; i++) {
		if (i == n - 1)
			out->le[i] = INFINITY;
		else
			out->le[i] = latency ? (double)lat_le_ns[i] * 1e-9 : (double)((size_t)1 << i);
		out->count[i] = get(&h->count[i]);
	}
	out->total = get(&h->total);
	out->sum = (double)get(&h->sum) * scale;
}

void ckr_flusher_metrics_get(const ckr_flusher *f, ckr_flusher_metrics *out)
{
	const ckr_fm *m = &f->metrics;
	memset(out, 0, sizeof *out);
	out->stored = get(&m->applied[CKR_APPLY_STORED]);
	for (unsigned i = 0; i < CKR_FLUSHER_REJECT_REASONS; i++)
		out->rejected[i] = get(&m->applied[CKR_APPLY_DUP_BEGIN + i]);
	out->corrupt = get(&m->corrupt);
	out->reclaimed = get(&m->reclaimed);
	/* every corrupt record and every skipped claim is one quarantine row */
	out->quarantined = out->corrupt + out->reclaimed;
	out->batches = get(&m->batches);
	out->map_grown = get(&m->map_grown);
	out->disk_full = get(&m->disk_full);
	out->syncs = get(&m->syncs);
	out->pruned_runs = get(&m->pruned_runs);
	out->pruned_rows = get(&m->pruned_rows);
	out->started_ns = get(&m->started_ns);
	out->last_commit_ns = get(&m->last_commit_ns);
	read_hist(&m->commit, &out->commit_seconds, true);
	read_hist(&m->fsync, &out->fsync_seconds, true);
	read_hist(&m->batch, &out->batch_events, false);
}
