/*
 * ckring_store.h — the store side of ckring (libckring-store): the LMDB
 * store of runs and their events, the recovery API a host uses at boot
 * (list interrupted runs, claim one, load its resume state), and the flusher
 * engine that drains a segment into the store (the body of ckring-flusher);
 * and the raw consumer, a reader of the lanes without a store (for
 * benchmarks and custom consumers).
 *
 * CAVEATS
 * - One store, one segment: a store records the segment it serves (name and
 *   epoch); a flusher of another segment is refused (CKR_ESEGMENT). A
 *   segment recreated under the same name (new epoch) retires the old one:
 *   runs written under it become claimable, because that ring is gone.
 * - One LMDB environment per process and directory: every ckr_store_open()
 *   of the same directory in one process shares one environment (reference
 *   counted), so the handles never drop each other's locks.
 * - A claim makes the calling process the run's one writer (a new writer id
 *   and incarnation); only this process may ckr_run_reopen() it. Claims
 *   succeed only once the flusher has drained every lane of the run's dead
 *   writer (CKR_ENOTDRAINED until then), so a claim never fences out an
 *   event that was accepted into the ring.
 * - The library never prints: the flusher engine reports through the log
 *   callback of its options.
 *
 * ERRORS: as in ckring.h (0 or a negative errno / CKR_E* code).
 */
#ifndef CKRING_STORE_H
#define CKRING_STORE_H

#include <signal.h>

#include "ckring.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* The store: recovery API (any process, concurrent with the flusher)  */
/* ------------------------------------------------------------------ */

typedef struct ckr_store ckr_store;

typedef enum ckr_run_state {
	CKR_RUN_RUNNING = 1,
	CKR_RUN_FAILED = 2,
	CKR_RUN_COMPLETED = 3,
} ckr_run_state;

typedef struct ckr_store_opts {
	uint64_t map_size;      /* initial LMDB map size; 0 = 64 MiB */
	uint32_t max_attempts;  /* recoveries before a run fails; 0 = the
	                         * flusher's setting (default 5) */
	bool read_only;         /* no claims; for inspection */
} ckr_store_opts;

/*
 * Open the store at dir (must exist). Checks the schema version, and that
 * its data.mdb and lock.mdb are plain files (LMDB would write through a
 * symbolic link planted there).
 * @return 0; -ENOENT no such directory or no store in it (read_only);
 *         -EACCES; -EROFS a read-only file system (not read_only);
 *         CKR_EUNSAFE data.mdb or lock.mdb is a symbolic link, not a
 *         regular file, or has another hard link; CKR_EVERSION a schema of
 *         another version (a store of an older ckring is migrated by
 *         opening it once with ckring-flusher); -ENOMEM; -EIO.
 * Thread-safe; a second open of the same directory in this process shares
 * its LMDB environment.
 */
CKR_API int ckr_store_open(const char *dir, const ckr_store_opts *opts,
			   ckr_store **out);

/* Close a handle (the environment closes with its last handle). NULL is
 * allowed. */
CKR_API void ckr_store_close(ckr_store *s);

typedef struct ckr_run_info {
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	ckr_run_state state;
	ckr_kind kind;
	uint32_t owner_pid;
	uint64_t owner_start;  /* owner's process start time, clock ticks */
	bool owner_alive;
	bool owner_drained;    /* the owner is gone and the flusher drained
	                        * every lane it wrote: claimable */
	uint32_t incarnation;
	uint32_t attempts;
	uint64_t events;       /* events stored (the begin included) */
	uint64_t last_seq;     /* highest sequence stored */
	uint64_t prefix_seq;   /* highest sequence of the gap-free prefix */
	uint64_t set_aside;    /* rows set aside by claims (past a gap) */
	uint64_t bytes;
	uint64_t created_ns;   /* CLOCK_REALTIME ns */
	uint64_t finished_ns;  /* 0 while running */
	char label[CKR_LABEL_MAX + 1];
	char error[256];       /* failed runs: the error, possibly cut */
} ckr_run_info;

typedef enum ckr_list_which {
	CKR_LIST_INTERRUPTED = 0, /* RUNNING with an owner that is not alive */
	CKR_LIST_RUNNING = 1,     /* every RUNNING run */
	CKR_LIST_ALL = 2,         /* every run, whatever its state */
} ckr_list_which;

/*
 * List runs. *out is malloc'd (free() it); *n its length.
 * @return 0; -EINVAL; -ENOMEM; -EIO.
 */
CKR_API int ckr_store_list(ckr_store *s, ckr_list_which which,
			   ckr_run_info **out, size_t *n);

/* One run's summary. @return 0; -ENOENT; -EINVAL; -EIO. */
CKR_API int ckr_store_get(ckr_store *s, const void *id, size_t id_len,
			  ckr_run_info *out);

/*
 * For ckr_client_opts.begin_check: ctx is an open ckr_store.
 * @return 0 the store has no run id; -EEXIST it has; -EIO.
 */
CKR_API int ckr_store_begin_check(void *ctx, const void *id, size_t id_len);

/*
 * Claim an interrupted run for recovery, atomically (one LMDB write
 * transaction: two claimers can never both win). Bumps the incarnation and
 * the attempt count, makes this process the run's owner with a new writer
 * id, and closes the dead writer's tenure: rows past the first gap are set
 * aside (kept, listed in the resume state), so the run continues right
 * after its gap-free prefix.
 * @return 0; -ENOENT no such run; CKR_ETERMINAL the run finished;
 *         CKR_ENOTINTERRUPTED / CKR_ECLAIMED its owner is alive (the loser
 *         of a race gets CKR_ECLAIMED); CKR_ENOTDRAINED the dead owner's
 *         events may still be in the ring; CKR_EEXHAUSTED attempts exceeded
 *         the maximum: the run is now failed; -EROFS store opened read-only;
 *         -ENOSPC; -EIO.
 */
CKR_API int ckr_store_claim(ckr_store *s, const void *id, size_t id_len,
			    ckr_claim *out);

/*
 * Claim many runs in ONE transaction (the boot path of a host with many
 * interrupted runs: one fsync'd commit instead of one per run). Each run is
 * claimed exactly as ckr_store_claim would, and just as atomically against
 * racing recoverers; results[i] gets its result (0, or the refusal
 * ckr_store_claim would return: CKR_ECLAIMED, CKR_ENOTDRAINED,
 * CKR_EEXHAUSTED, ...) and out[i] its claim when results[i] is 0.
 * runs: as ckr_store_list returns them (only id and id_len are read).
 * @return the number claimed; or a negative error of the transaction
 *         (-EINVAL, -EROFS, -EBUSY, -ENOSPC, -EIO), when nothing was
 *         claimed at all.
 * Chunk large lists (say 1000 runs a call): the first runs resume sooner,
 * and one transaction stays small.
 */
CKR_API int ckr_store_claim_batch(ckr_store *s, const ckr_run_info *runs, size_t n,
				  ckr_claim *out, int *results);

typedef struct ckr_blob {
	uint64_t seq;
	uint32_t index;      /* phases: the phase index */
	uint32_t incarnation;/* the incarnation that wrote it */
	char *name;          /* phases: the phase name (NUL-terminated) */
	uint8_t *data;
	size_t size;
} ckr_blob;

typedef struct ckr_resume {
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	ckr_kind kind;
	ckr_run_state state;
	uint64_t next_seq;      /* after the highest stored sequence */
	ckr_blob *history;      /* single-loop: the gap-free transcript prefix */
	size_t n_history;
	ckr_blob *phases;       /* multi-phase: completed phases, in order */
	size_t n_phases;
	uint64_t *gaps;         /* missing sequence numbers below next_seq */
	size_t n_gaps;
	ckr_blob *set_aside;    /* rows set aside by claims: never part of the
	                         * resume state, kept for post-mortem */
	size_t n_set_aside;
	char label[CKR_LABEL_MAX + 1];
	uint8_t *meta;          /* begin's metadata */
	size_t meta_len;
} ckr_resume;

/*
 * Load a run's resume state: single-loop → the longest gap-free prefix of its
 * messages; multi-phase → its completed phases in order. Every gap is
 * reported. Free with ckr_resume_free().
 * @return 0; -ENOENT; -ENOMEM; -EIO; CKR_ECORRUPT an undecodable row.
 */
CKR_API int ckr_store_resume(ckr_store *s, const void *id, size_t id_len,
			     ckr_resume **out);
CKR_API void ckr_resume_free(ckr_resume *rs);

/*
 * A counter the store keeps ("stored", "foreign", "dup_begin", "stale",
 * "orphan", "after_end", "dup_seq", "bad_kind", "bad_begin", "quarantined";
 * persist/FORMAT.md): 0 when never counted or unreadable. Can't fail.
 */
CKR_API uint64_t ckr_store_counter(ckr_store *s, const char *name);

/*
 * Remove runs finished (completed/failed) longer ago than the given ages,
 * in seconds (0 = never). Completed runs stay as small tombstones (a late
 * duplicate begin must still find them).
 * @return the number removed, or a negative error; -EROFS.
 */
CKR_API int ckr_store_prune(ckr_store *s, uint32_t completed_age_s,
			    uint32_t failed_age_s);

/* ------------------------------------------------------------------ */
/* The flusher engine (the body of ckring-flusher)                     */
/* ------------------------------------------------------------------ */

typedef struct ckr_flusher ckr_flusher;

typedef enum ckr_sync {
	CKR_SYNC_ALWAYS = 0,   /* fsync every batch (group commit) */
	CKR_SYNC_NONE = 1,     /* leave it to the OS */
	CKR_SYNC_INTERVAL = 2, /* fsync at most every sync_interval_ms */
} ckr_sync;

typedef enum ckr_log_level {
	CKR_LOG_ERROR = 0,
	CKR_LOG_WARN = 1,
	CKR_LOG_INFO = 2,
} ckr_log_level;

/* A log line of the engine (no newline). Called from the thread that runs
 * the engine. */
typedef void (*ckr_log_fn)(void *ctx, ckr_log_level level, const char *msg);

typedef struct ckr_flusher_opts {
	const char *segment;
	const char *db_dir;
	bool create;                /* create the segment if it is missing */
	ckr_segment_opts seg;       /* with create */
	ckr_sync sync;
	uint32_t sync_interval_ms;
	uint32_t idle_max_us;       /* longest idle sleep; 0 = 1000 */
	uint64_t map_size;          /* initial map; 0 = 64 MiB; grows when full */
	uint32_t keep_completed_s;  /* keep completed runs' events this long */
	uint32_t max_attempts;      /* recorded for recoverers; 0 = 5 */
	ckr_log_fn log;             /* NULL: the engine says nothing */
	void *log_ctx;
	const char **failed_part;   /* optional: on an open error, set to
	                             * "segment", "store" or "flusher slot" */
	bool shared_group;          /* db_dir may be writable by its group (not
	                             * by others); the store's files are made
	                             * 0660 for the group's recoverers */
} ckr_flusher_opts;

/*
 * Open the flusher: check the store directory, attach (or create) the
 * segment, open the store, claim the segment's flusher slot (a kernel lock)
 * and resume from the persisted positions; SYNCED is republished only after
 * an fsync. The store directory must be one nobody else can plant files in:
 * a real directory (a symbolic link to one is refused), owned by the
 * effective user, writable by nobody else (its group too with
 * shared_group), whose data.mdb and lock.mdb, if present, are plain files;
 * it is checked before the segment is created.
 * @return 0; CKR_EUNSAFE the store directory can't be trusted (one
 *         CKR_LOG_ERROR line says why); -ENOTDIR; -EROFS the store is on a
 *         read-only file system; -EBUSY another live flusher serves the
 *         segment; CKR_ESEGMENT
 *         the store serves another segment; CKR_ETRUNC the segment was
 *         truncated (before, or while it was being opened); the errors of
 *         ckr_segment_create/attach and ckr_store_open (-ENOSPC: the map or
 *         disk is too small to set the store up). A segment this call
 *         created is removed again when it fails.
 */
CKR_API int ckr_flusher_open(const ckr_flusher_opts *opts, ckr_flusher **out);

/*
 * Drain until *stop becomes non-zero (a signal handler may set it), then
 * drain what is left, commit and return 0. Returns a negative error only for
 * what it cannot survive; a full disk or full map is retried, not returned.
 * @return 0; CKR_ETRUNC the segment was truncated under the flusher (seen
 *         by its size, checked every second, or — in a program whose
 *         SIGBUS handler calls ckr_flusher_on_sigbus() — by the SIGBUS of
 *         a read or write of a page it lost): the engine stopped touching it, the batch being
 *         filled was abandoned and every batch committed before stays in
 *         the store; one CKR_LOG_ERROR line said so (what the events still
 *         in the segment were is lost with it). The flusher can only be
 *         closed then. A fatal store error (-EIO, ...).
 */
CKR_API int ckr_flusher_run(ckr_flusher *f, const volatile int *stop);

/* One drain pass: at most one batch. *n_events gets the records consumed.
 * @return 0; CKR_ETRUNC as ckr_flusher_run(); a store error. */
CKR_API int ckr_flusher_drain_once(ckr_flusher *f, size_t *n_events);

/*
 * Surviving a segment truncated under the flusher (by any process with
 * write access, or by tmpfs running out of pages): touching a page the
 * segment lost raises SIGBUS, which kills the process by default, before or
 * after the engine notices the smaller size (it checks every second),
 * whichever comes first. The library installs no signal handler; a program
 * that wants to survive installs its own SIGBUS handler (sigaction with
 * SA_SIGINFO) and calls this from it first:
 *
 *     static void on_sigbus(int sig, siginfo_t *si, void *uc)
 *     {
 *             ckr_flusher_on_sigbus(si); // no return if it was the engine's
 *             signal(sig, SIG_DFL);      // else: default (the fault repeats)
 *     }
 *
 * It does not return when the fault is in the segment mapping of a flusher
 * while the engine, on this thread, was touching it: then the engine call
 * (ckr_flusher_open/run/drain_once/close) returns CKR_ETRUNC. It returns for
 * every other SIGBUS (sent by kill(), another mapping, another thread), and
 * the handler goes on as it would have. Producers (pushes, ckr_wait) are
 * not guarded: a push into a truncated segment still raises SIGBUS.
 * Async-signal-safe; this function can't fail.
 */
CKR_API void ckr_flusher_on_sigbus(const siginfo_t *si);

/* What the engine did since it was opened (its committed batches). */
typedef struct ckr_flusher_stats {
	uint64_t stored;        /* events stored */
	uint64_t rejected;      /* events rejected, all reasons */
	uint64_t dup_begin, foreign, stale, orphan, after_end, dup_seq, bad_kind;
	uint64_t corrupt;       /* records that failed validation */
	uint64_t reclaimed;     /* abandoned claims of dead owners skipped */
	uint64_t batches;       /* store transactions committed */
	uint64_t map_grown;
	uint64_t disk_full;     /* commits deferred for a full disk */
} ckr_flusher_stats;

/* Copy the statistics. This function can't fail. */
CKR_API void ckr_flusher_stats_get(const ckr_flusher *f, ckr_flusher_stats *out);

/* Release the flusher slot and close. NULL is allowed. */
CKR_API void ckr_flusher_close(ckr_flusher *f);

/* ------------------------------------------------------------------ */
/* The raw consumer (for benchmarks and custom consumers)              */
/* ------------------------------------------------------------------ */

/*
 * A reader of a segment's lanes with no store behind it, for benchmarks and
 * custom consumers.
 *
 * CAVEATS of the consumer
 * - No store, not exactly-once. A consumer hands each record's payload to
 *   its caller and frees the ring space when the caller releases it; nothing
 *   is persisted. A record read but not yet released is read again by the
 *   next consumer or flusher of the segment; a released record is gone.
 * - One consumer per segment, in place of the flusher: ckr_consumer_open()
 *   takes the segment's flusher slot (its kernel lock), so a flusher cannot
 *   start while a consumer is open (it gets -EBUSY) and a consumer cannot
 *   open beside a live flusher. Do not alternate a consumer and a flusher
 *   that has a store on one segment: the flusher resumes at the positions
 *   its store persisted, which a consumer never updates.
 * - ckr_wait(): a release moves the lanes' heads, so a producer waiting for
 *   CKR_LEVEL_COMMITTED sees its event as committed once a consumer has
 *   released it, although nothing stored it. CKR_LEVEL_SYNCED is never
 *   reached through a consumer. Waiters are not woken: they notice within
 *   their 100 ms re-check.
 * - fork(): a consumer belongs to the process that opened it; a forked
 *   child must not use it.
 * - The segment is untrusted: every record is validated exactly as the
 *   flusher validates it (seal, lap, bounds, length, CRC32C) from a private
 *   copy before any byte of it reaches the caller.
 *
 * SYNCHRONIZATION
 * | call                        | may run with                              |
 * |-----------------------------|-------------------------------------------|
 * | ckr_consumer_read / release | producers (any process, any thread)       |
 * | one ckr_consumer            | one thread at a time (no internal lock)   |
 * | ckr_consumer_open           | anything; two openers: one gets -EBUSY    |
 */

typedef struct ckr_consumer ckr_consumer;

/*
 * Open a consumer of segment NAME: attach it read-write, take its flusher
 * slot (from nobody, or from a dead flusher or consumer) and start every
 * lane at its head.
 * @param[in]  name  segment name
 * @param[out] out   the consumer
 * @return 0; -EBUSY a live flusher or consumer serves the segment; -EINVAL
 *         bad name or NULL; -ENOENT no such segment; CKR_ENOTSEG;
 *         CKR_EVERSION; CKR_ETRUNC; -EACCES; -ENOMEM; -errno of the attach.
 * Any thread or process; two openers race safely (one gets -EBUSY).
 */
CKR_API int ckr_consumer_open(const char *name, ckr_consumer **out);

/*
 * Release the flusher slot and free the consumer. Unreleased records stay
 * in the ring. NULL is allowed. This function can't fail.
 */
CKR_API void ckr_consumer_close(ckr_consumer *c);

/* The number of lanes of the consumer's segment. This function can't fail. */
CKR_API uint32_t ckr_consumer_lanes(const ckr_consumer *c);

/*
 * The largest payload a record of this segment can have (a buffer of this
 * size always suffices), and the buffer size from which ckr_consumer_read()
 * validates in the caller's buffer instead of copying twice (a little more:
 * room for the record header). These functions can't fail.
 */
CKR_API size_t ckr_consumer_max_payload(const ckr_consumer *c);
CKR_API size_t ckr_consumer_buf_size(const ckr_consumer *c);

/*
 * Read the next record of lane `lane`: copy it out of shared memory,
 * validate the copy (seal, lap, bounds, length, CRC32C) and hand its
 * payload over in buf[0 .. *len). The lane position moves past the record;
 * the space is freed only by ckr_consumer_release(). An abandoned claim of
 * a dead or detached producer (a push that never returned) is skipped
 * without a return, as the flusher skips it.
 * @param[in]  lane  0 .. ckr_consumer_lanes() - 1
 * @param[out] buf   cap bytes; with cap >= ckr_consumer_buf_size() the
 *                   record is validated in place (one copy), else it goes
 *                   through the consumer's own buffer (two copies)
 * @param[out] len   the payload's bytes (with -EMSGSIZE: the bytes needed)
 * @return 0 a record; -ENODATA nothing to read now (the lane is empty, or
 *         its next record is still being written by a live producer: call
 *         again later); CKR_ECORRUPT a sealed record failed validation: it
 *         is skipped (the position moved past it), counted in the segment,
 *         and nothing was copied (*len = 0); -EMSGSIZE the payload is larger
 *         than cap: nothing consumed, *len = its size; -EINVAL NULL or a
 *         lane out of range.
 * Lock-free; no system call, except a probe of the lane owner's kernel lock
 * (one F_OFD_GETLK) at most every 50 ms while a lane is stuck behind an open
 * claim and every second while it is empty.
 */
CKR_API int ckr_consumer_read(ckr_consumer *c, uint32_t lane, void *buf, size_t cap,
			      size_t *len);

/*
 * Release lane `lane` up to what was read: publish the position as the
 * lane's head (release), so producers may reuse the space. A lane whose
 * owner has left or died is returned to use, as the flusher does, once a
 * read taken after the owner was seen gone found it drained.
 * @return 0; -EINVAL NULL or a lane out of range.
 * Lock-free, no system call.
 */
CKR_API int ckr_consumer_release(ckr_consumer *c, uint32_t lane);

/* Bytes of lane `lane` read but not yet released (to batch releases).
 * This function can't fail (0 for a lane out of range). */
CKR_API uint64_t ckr_consumer_unreleased(const ckr_consumer *c, uint32_t lane);

#ifdef __cplusplus
}
#endif
#endif /* CKRING_STORE_H */
