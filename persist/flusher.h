/*
 * flusher.h — internals of the drain engine (persist/flusher.c,
 * persist/flusher_loop.c). The API is ckr_flusher_* in include/ckring_store.h.
 */
#ifndef CKR_FLUSHER_H
#define CKR_FLUSHER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>

#include "ckring_store.h"
#include "persist/flusher_metrics.h"
#include "persist/store.h"
#include "ring/lane.h"
#include "shm/segment.h"

/* Where the fault-injection hook may kill the flusher (CKR_FLUSHER_CRASH =
 * "mid_batch:N", "after_commit:N" or "after_release:N": SIGKILL itself at the
 * N-th time that point is reached). For crash tests. */
typedef enum ckr_crash_point {
	CKR_CRASH_NONE = 0,
	CKR_CRASH_MID_BATCH,     /* events applied, transaction not committed */
	CKR_CRASH_AFTER_COMMIT,  /* committed, ring space not yet released */
	CKR_CRASH_AFTER_RELEASE, /* released, waiters not yet woken */
} ckr_crash_point;

typedef struct flusher_lane {
	ckr_lane lane;
	uint64_t rpos;          /* persisted consumed position */
	uint64_t pending;       /* position after this batch, until commit */
	uint64_t pending_records;
	uint64_t committed;     /* == rpos; published as head */
	uint64_t synced;        /* fsync'd position; published as synced */
	uint64_t tail_hint;     /* the last tail seen (ckr_lane_read_hinted) */
	uint64_t free_after;    /* owner word to free after the commit */
	ckr_tenure seen;        /* the tenure G judged last (owner 0: none) */
	uint64_t owner_checked_ns;
	uint64_t next_check_ns; /* lane_has_work: no tail look before this */
	bool owner_gone;        /* cached verdict of G for `seen` */
} flusher_lane;

/* A rejection of this batch, written to its writer's slot after the commit
 * (W2). */
typedef struct pending_reject {
	uint32_t lane;
	uint32_t slot;
	uint64_t writer;
	uint64_t pos;
	uint32_t reason;
} pending_reject;

typedef struct flusher_syncer flusher_syncer;

/* What a batch (and, merged, the flusher) did. */
typedef struct flusher_counts {
	uint64_t applied[CKR_APPLY_COUNT]; /* by ckr_apply */
	uint64_t corrupt;
	uint64_t reclaimed;
	uint64_t map_grown;
	uint64_t disk_full;
	uint64_t batches;
} flusher_counts;

struct ckr_flusher {
	ckr_flusher_opts opts;
	char *segment_name;
	char *db_dir;
	ckr_segment seg;
	ckr_store *store;
	uint64_t token;
	bool created;             /* this flusher created the segment */
	flusher_lane *lanes;
	uint32_t next_lane;
	uint8_t *buf;
	size_t buf_cap;
	uint64_t last_sync_ns;
	uint64_t last_housekeep_ns;
	uint64_t housekeep_ns;      /* the housekeeping tick (1 s) */
	const volatile int *stop;   /* ckr_flusher_run's; the sleep re-checks it */
	uint64_t housekeeps;
	uint32_t backoff_ms;
	bool replay;              /* the last batch did not commit: redo it */
	bool rejections_kept;     /* the store holds reports already published */
	/* Identities whose last lane was freed after a clean detach while
	 * their image lived by /proc, with a presence lock recorded in the
	 * tenure: E2 ends each once that lock is gone (an exec). Memory only: a restarted flusher leaves such
	 * an identity to /proc (ended at its death). At most DETACHED_MAX. */
	ckr_identity *detached;
	size_t n_detached;
	pending_reject *rejects;  /* this batch's rejections */
	size_t n_rejects, cap_rejects;
	flusher_counts stats;     /* committed batches */
	flusher_counts batch;     /* the open batch, merged after its commit */
	ckr_crash_point crash_at;
	uint64_t crash_count;
	flusher_syncer *syncer;   /* sync=always: group commit (flusher_sync.c) */
	/* The SIGBUS guard (persist/guard.h): the batch open while the segment
	 * is touched (aborted after an unwind); the segment shrank under us,
	 * so nothing may touch it any more; when its size was last checked. */
	ckr_batch *open_batch;
	bool seg_lost;
	uint64_t size_checked_ns;
	uint64_t size_check_ns;   /* its interval: 1 s (tests may change it) */
	bool slot_failed;         /* the open failed at the flusher slot */
	/* issue 16: metrics (flusher_metrics.c) and retention (retention.c) */
	ckr_fm metrics;           /* read by other threads: see its header */
	ckr_prune_pos retention_pos;
};

/* Group commit (flusher_sync.c), sync=always only; no-ops otherwise.
 * start: after the positions are restored. @return 0; -ENOMEM; -errno. */
int ckr_flusher_syncer_start(ckr_flusher *f);

/* After a commit has published its heads: this commit made the previous
 * batch durable; ask the syncer to make this one durable. @return 0, or the
 * syncer's first fsync error (fatal). */
int ckr_flusher_sync_after_commit(ckr_flusher *f);

/* Wait until every asked batch is synced. @return 0 or the fsync error. */
int ckr_flusher_sync_wait(ckr_flusher *f);

/* Stop the syncer (finishing what was asked) and free it. */
void ckr_flusher_syncer_stop(ckr_flusher *f);

/*
 * Run fn(f, arg) inside a SIGBUS guard frame over the segment (guard.h):
 * fn's return value, or CKR_ETRUNC when the segment shrank under it (then
 * the open batch is aborted, f->seg_lost is set and one ERROR line said
 * so). CKR_ETRUNC at once when f->seg_lost.
 */
int ckr_flusher_guarded(ckr_flusher *f, int (*fn)(ckr_flusher *f, void *arg),
			void *arg);

/* The loop of ckr_flusher_run() (flusher_loop.c), unguarded. */
int ckr_flusher_run_loop(ckr_flusher *f, const volatile int *stop);

/* Block the asynchronous signals in the calling thread, keeping the old
 * mask in *old (a thread created now inherits the block: the library's
 * threads never take a signal meant for the application's loop). Fault
 * signals stay open: they are delivered to the thread that faults. */
void ckr_flusher_block_signals(sigset_t *old);

/* Say msg (printf format) through the options' log callback, if any. */
void ckr_flusher_log(const ckr_flusher *f, ckr_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Has the lane moved since its last pass: its tail, or a seal at the claim
 * that pass stopped at? Two or three loads; no system call. */
bool ckr_flusher_lane_moved(const flusher_lane *fl);

/* Heartbeat in the segment. */
void ckr_flusher_heartbeat(ckr_flusher *f);

/* Publish counters, bump commit_seq and wake ckr_wait() sleepers. */
void ckr_flusher_wake_waiters(ckr_flusher *f);

/* E2: end dead run owners that hold no lane (see flusher.c).
 * @return 0 or a store error. */
int ckr_flusher_end_lost_owners(ckr_flusher *f);

/* One bounded retention step (retention.c): --keep-completed and
 * --keep-failed, and runs a killed prune left being removed. */
void ckr_flusher_retention(ckr_flusher *f);

#ifdef CKR_TEST_HOOKS
/* Test hook: called in each lane's drain right after C0 loaded its tenure,
 * before any seal is read, so a test can attach and push in between. */
extern void (*ckr_flusher_test_after_c0)(ckr_flusher *f, uint32_t lane, uint64_t owner);

/* Parse CKR_FLUSHER_CRASH; unknown text is ignored with a warning. Only in
 * the hooks build (tests): the shipped library never kills itself. */
void ckr_flusher_crash_parse(ckr_flusher *f, const char *spec);

/* SIGKILL this process if the configured crash point is reached. */
void ckr_flusher_crash_point(ckr_flusher *f, ckr_crash_point p);
#else
static inline void ckr_flusher_crash_point(ckr_flusher *f, ckr_crash_point p)
{
	(void)f;
	(void)p;
}
#endif


#endif /* CKR_FLUSHER_H */
