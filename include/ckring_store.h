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
/* Operator actions (ckring-admin; any process, concurrent with the    */
/* flusher). Each is one LMDB write transaction, or (prune) a bounded  */
/* sequence of them, so a crash of any process leaves each run either  */
/* as it was or as the action made it (ring/PROTOCOL.md, "Operator     */
/* actions"). Each writes its change-log entries (below, "The change   */
/* log") in that same transaction, so a shipper applies it exactly     */
/* once. All refuse -EROFS on a read-only handle and -EBUSY while the  */
/* calling thread holds a flusher batch open on the store.             */
/* ------------------------------------------------------------------ */

/*
 * Give up on a running run: it becomes FAILED with the error
 * "failed by operator: <reason>". Its writer is fenced: every later event
 * of that writer (even one already in the ring) is rejected by the flusher
 * (after_end) and reported, so its ckr_wait() returns CKR_EREJECTED. Logged
 * as a FINISH (failed, with that error).
 * @param reason  NUL-terminated, 1..4000 bytes
 * @param[out] out  the run afterwards (may be NULL)
 * @return 0; -EINVAL bad id or reason; -ENOENT no such run; CKR_ETERMINAL
 *         the run has finished already; -EROFS; -EBUSY; -ENOSPC; -EIO.
 */
CKR_API int ckr_store_fail(ckr_store *s, const void *id, size_t id_len,
			   const char *reason, ckr_run_info *out);

/*
 * Make a failed run (an operator's fail, its own fail, or "recovery
 * exhausted") claimable again, with its resume state and a fresh attempt
 * budget: RUNNING, attempts 0, no writer, and a new owner identity that is
 * recorded as ended, so it is listed as interrupted and the next
 * ckr_store_claim() names a new writer and incarnation. The writer it had
 * stays fenced (its events are rejected: foreign). Logged as a RETRY.
 * @return 0; -EINVAL; -ENOENT no such run (or it is being pruned);
 *         -EALREADY the run is running; CKR_ETERMINAL the run completed
 *         (a completed run keeps no events: nothing to resume); CKR_EMOVED
 *         the run moved to another host (ckr_store_mark_moved: it is
 *         never driven here again); -EROFS; -EBUSY; -ENOSPC; -EIO.
 */
CKR_API int ckr_store_retry(ckr_store *s, const void *id, size_t id_len,
			    ckr_run_info *out);

/* One stored row of an exported run: the event exactly as the store keeps
 * it (its wire encoding, persist/FORMAT.md). */
typedef struct ckr_export_row {
	uint64_t seq;
	uint32_t incarnation;   /* the incarnation that wrote it */
	uint8_t *data;
	size_t size;
} ckr_export_row;

/* A run as it is moved between stores: its record and every row. */
typedef struct ckr_export {
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	ckr_run_state state;
	ckr_kind kind;
	uint32_t incarnation;
	uint32_t attempts;
	bool cleared;           /* a completed tombstone: its rows are gone */
	uint64_t created_ns, updated_ns, finished_ns;
	uint64_t last_seq;      /* taken as is only for a cleared tombstone;
	                         * otherwise recomputed from the rows */
	uint8_t *label;         /* bytes, <= CKR_LABEL_MAX */
	size_t label_len;
	uint8_t *meta;
	size_t meta_len;
	uint8_t *error;         /* <= 4096 bytes */
	size_t error_len;
	ckr_export_row *events;    /* `events` rows, in sequence order */
	size_t n_events;
	ckr_export_row *set_aside; /* `set_aside` rows (incarnation, seq) */
	size_t n_set_aside;
} ckr_export;

/*
 * Read one run, record and rows, in one read transaction. Free with
 * ckr_export_free().
 * @return 0; -EINVAL; -ENOENT no such run (or it is being pruned);
 *         -ENOMEM; -EIO; CKR_ECORRUPT.
 */
CKR_API int ckr_store_export(ckr_store *s, const void *id, size_t id_len,
			     ckr_export **out);

/* Free what ckr_store_export() made (only that). NULL is allowed. */
CKR_API void ckr_export_free(ckr_export *e);

/*
 * Write an exported run into this store, in one write transaction, after
 * checking every row (it decodes, names the run, has the key's sequence and
 * incarnation, fits the run's kind). The counts, last_seq and prefix_seq
 * are recomputed from the rows. A running run arrives claimable: no writer,
 * owner pid 0 and an owner identity recorded as ended (no process of this
 * host ever wrote it), keeping its incarnation and attempts; a failed run
 * stays failed (ckr_store_retry makes it claimable). Logged as a RUN (the
 * record; a shipper ships it with its rows as this host's run — unless its
 * shared database gives the run to another host: refused there, and a
 * running run is marked moved here).
 * @param[out] out  the run as stored (may be NULL)
 * @return 0; -EEXIST the store has a run of that id; -EINVAL a field out of
 *         range; CKR_ECORRUPT a row that does not check; -EROFS; -EBUSY;
 *         -ENOSPC; -ENOMEM; -EIO.
 */
CKR_API int ckr_store_import(ckr_store *s, const ckr_export *in, ckr_run_info *out);

/* Retention and pruning: bounded steps (persist/retention.c). */

#define CKR_KEEP_FOREVER UINT64_MAX

typedef struct ckr_prune_opts {
	uint64_t failed_age_s;    /* remove failed runs (record, events and
	                           * set-aside rows) that failed at least this
	                           * long ago; CKR_KEEP_FOREVER: never */
	uint64_t completed_age_s; /* clear the kept events of completed runs
	                           * (the record stays, a tombstone) this long
	                           * after they completed; CKR_KEEP_FOREVER:
	                           * never */
	uint32_t max_scan;        /* run records examined per step (0: 4096) */
	uint32_t max_runs;        /* runs touched per transaction (0: 64) */
	uint32_t max_rows;        /* rows deleted per transaction (0: 8192) */
	bool dry_run;             /* report what would go; write nothing */
} ckr_prune_opts;

/* Where a sequence of steps stands: zero it to start at the first run. */
typedef struct ckr_prune_pos {
	uint8_t key[CKR_RUN_ID_MAX];
	size_t key_len;           /* 0: from the first run */
	bool inclusive;           /* the next step starts at key itself */
} ckr_prune_pos;

/* What a step did to one run (reported after its transaction committed). */
typedef struct ckr_pruned {
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	ckr_run_state state;      /* failed or completed */
	uint64_t events;          /* `events` rows deleted by this step */
	uint64_t set_aside;       /* `set_aside` rows deleted by this step */
	bool done;                /* finished: the record is gone (failed) or
	                           * a tombstone (completed); false: more rows
	                           * go in the next step */
} ckr_pruned;

typedef void (*ckr_prune_fn)(void *ctx, const ckr_pruned *p);

/*
 * One bounded step of pruning: examine at most max_scan records after pos
 * (a read transaction), then, in ONE write transaction, touch at most
 * max_runs of the runs due and delete at most max_rows rows. A run whose
 * rows do not fit is marked "being removed" (persist/FORMAT.md, flag bit 1)
 * and continued by the next step — of this sequence, or of any later one,
 * whatever its ages (the flusher's retention continues it too). Records of
 * running runs are never touched. The transaction that finishes a run logs
 * its PRUNE (removed, or cleared); the steps before log nothing, so a
 * shipped copy keeps the run's rows until then. fn (may be NULL) is called
 * for each run touched, after the commit (dry_run: for each run that would
 * go, with its row counts, and done set).
 * @param[in,out] pos  where to start; moved on
 * @return 1 the scan reached the last run (pos is reset: a full pass is
 *         done); 0 call again; -EINVAL; -EROFS; -EBUSY; -ENOSPC; -EIO.
 */
CKR_API int ckr_store_prune_step(ckr_store *s, const ckr_prune_opts *o,
				 ckr_prune_pos *pos, ckr_prune_fn fn, void *ctx);

/* Queries for operators and metrics (persist/store_query.c). */

typedef struct ckr_list_query {
	ckr_list_which which;     /* INTERRUPTED, RUNNING or ALL */
	ckr_run_state state;      /* with ALL: only this state (0: any) */
	bool by_age;              /* only runs older than older_than_s: finished
	                           * that long ago, or (running) last written
	                           * that long ago */
	uint64_t older_than_s;
	const void *after;        /* start after this run id (NULL: first) */
	size_t after_len;
	size_t limit;             /* at most this many (0: 1000) */
} ckr_list_query;

/*
 * One page of runs, in id order (the store's key order). *out is malloc'd
 * (free() it); *more is true when runs past the last one returned match
 * too (ask again with after = the last id). Reads in one read transaction.
 * @return 0; -EINVAL; -ENOMEM; -EIO.
 */
CKR_API int ckr_store_query(ckr_store *s, const ckr_list_query *q,
			    ckr_run_info **out, size_t *n, bool *more);

/* Counts over the whole store (ckr_store_census). */
typedef struct ckr_store_census {
	uint64_t runs[4];          /* by ckr_run_state (index 1..3) */
	uint64_t interrupted;      /* running, owner not alive */
	uint64_t claimable;        /* ... and ended: a claim would succeed */
	uint64_t oldest_interrupted_ns; /* CLOCK_REALTIME of the last write of
	                           * the least recently written interrupted run;
	                           * 0 when none */
	uint64_t removing;         /* runs being pruned */
	uint64_t events, set_aside, bytes; /* rows and bytes, summed */
	uint64_t map_size;         /* the LMDB map, bytes */
	uint64_t map_used;         /* pages in use, bytes */
} ckr_store_census;

/*
 * Walk every run record, in read transactions of at most 4096 records each
 * (never pinning old pages for long: the counts are not one snapshot when
 * runs change meanwhile). Costs one /proc look-up per distinct owner of a
 * running run. Meant to be rate-limited (metrics).
 * @return 0; -EINVAL; -EIO.
 */
CKR_API int ckr_store_census_get(ckr_store *s, ckr_store_census *out);

/* ------------------------------------------------------------------ */
/* The change log: what a shipper follows (persist/FORMAT.md, schema 3) */
/* ------------------------------------------------------------------ */

/*
 * Every change to the store is also recorded, in the same LMDB write
 * transaction, as a numbered entry of its change log (1, 2, ...): the rows a
 * flusher batch stored (per run, a range of sequence numbers of one
 * incarnation), a run finished, a recovery claim, a prune, a run imported
 * from another host, and per batch a mark of the lane positions it
 * committed. A shipper (libckring-fleet, ckring-ship) reads the log in order,
 * applies it elsewhere and writes back the position it has shipped; the
 * flusher trims what is shipped (or, while no shipper ever registered,
 * everything). Readers see a consistent snapshot: a change and its rows come
 * from one read transaction.
 */
typedef enum ckr_change_kind {
	CKR_CHANGE_ROWS = 1,   /* rows of a run stored by a flusher batch */
	CKR_CHANGE_FINISH = 2, /* the run completed or failed */
	CKR_CHANGE_CLAIM = 3,  /* a recovery claim: next incarnation */
	CKR_CHANGE_PRUNE = 4,  /* a finished run pruned */
	CKR_CHANGE_IMPORT = 5, /* a run adopted from another host's shared
	                        * record (ckr_store_adopt) */
	CKR_CHANGE_MARK = 6,   /* lane positions a flusher batch committed */
	CKR_CHANGE_RUN = 7,    /* a whole run, record and rows: in snapshots
	                        * (number 0), and in the log for a run written
	                        * by ckr_store_import */
	CKR_CHANGE_RETRY = 8,  /* a failed run made claimable again
	                        * (ckr_store_retry): running, attempts, no
	                        * error; same incarnation */
} ckr_change_kind;

/* One stored row (an event in its wire encoding, persist/FORMAT.md). */
typedef struct ckr_change_row {
	uint64_t seq;
	uint32_t incarnation;  /* the incarnation that wrote it */
	bool set_aside;        /* it was set aside by a claim since */
	uint64_t writer;       /* the writer id it carries (0: a version-1 row) */
	uint32_t slot;         /* ... and that writer's slot in its lane */
	const uint8_t *data;
	size_t size;
} ckr_change_row;

/* A lane's committed position (MARK). */
typedef struct ckr_change_lane {
	uint32_t lane;
	uint64_t pos;
} ckr_change_lane;

/* One change; pointers are valid during the callback only. */
typedef struct ckr_change {
	uint64_t number;         /* its place in the log; snapshots: 0 */
	ckr_change_kind kind;
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;           /* 0 for MARK */
	uint32_t incarnation;    /* ROWS: of the rows; CLAIM/IMPORT: the new
	                          * one; FINISH/PRUNE/RUN/RETRY: the run's */
	uint32_t lane;           /* ROWS: the lane the rows came through */
	uint64_t seq_lo, seq_hi; /* ROWS: the range stored */
	/* ROWS: the rows of the range that exist now (rows the run lost since,
	 * completed or pruned, are absent; rows a claim set aside since are
	 * flagged); RUN of a snapshot: every row and set-aside row; RUN of the
	 * log: the rows it arrived with that exist now (in `events` or, set
	 * aside by a later claim, in `set_aside`: every row of an incarnation
	 * up to the entry's, while the record is the one the import wrote).
	 * In seq order. */
	const ckr_change_row *rows;
	size_t n_rows;
	ckr_run_state state;     /* FINISH, RUN */
	const uint8_t *error;    /* FINISH, RUN: failed runs */
	size_t error_len;
	uint64_t finished_ns;    /* FINISH, RUN */
	bool cleared;            /* FINISH, RUN: events were removed */
	bool removed;            /* PRUNE: the record was removed (failed) */
	bool moved;              /* RUN: marked moved to another host */
	uint64_t prefix_seq;     /* CLAIM: rows above it were set aside;
	                          * IMPORT, RUN: the run's last sequence */
	uint32_t attempts;       /* CLAIM, IMPORT, RUN, RETRY */
	/* RUN, and ROWS from seq 0 (the begin; from the run's record when its
	 * begin row is gone): what the run was begun with. */
	ckr_kind run_kind;
	const char *label;
	size_t label_len;
	const uint8_t *meta;
	size_t meta_len;
	uint64_t created_ns;     /* RUN, ROWS: when the run's record was made
	                          * (names the run: an id removed and begun
	                          * anew is another run, with another time) */
	uint8_t epoch[16];       /* MARK: the segment epoch of the positions */
	const ckr_change_lane *lanes; /* MARK */
	size_t n_lanes;
} ckr_change;

/* Called per change; a non-zero return stops the walk and is returned. */
typedef int (*ckr_change_fn)(void *ctx, const ckr_change *c);

/*
 * Walk the log from the entry after `after`, at most max entries (0: no
 * bound), in one read transaction. *last gets the number of the last entry
 * given to fn (after, when none).
 * @return 0; the callback's non-zero return; CKR_ETRUNC the entry after
 *         `after` was trimmed already (the shipped position is behind what
 *         the store kept: re-ship from a snapshot); -ENOMEM; -EIO;
 *         CKR_ECORRUPT an entry that does not decode.
 * Any thread of any process, concurrently with the flusher.
 */
CKR_API int ckr_store_changes(ckr_store *s, uint64_t after, size_t max,
			      ckr_change_fn fn, void *ctx, uint64_t *last);

/*
 * Every run of the store, as RUN changes, in one read transaction, and the
 * log position it reflects (*at: every entry <= *at is in it, none after).
 * @return as ckr_store_changes.
 */
CKR_API int ckr_store_snapshot(ckr_store *s, ckr_change_fn fn, void *ctx,
			       uint64_t *at);

typedef struct ckr_log_info {
	uint64_t last;        /* the last entry written (0: none yet) */
	uint64_t first;       /* the first entry kept (last + 1: none kept) */
	uint64_t shipped;     /* what a shipper reported shipped */
	bool registered;      /* a shipper registered: entries above
	                       * `shipped` are kept for it */
	uint8_t store_id[16]; /* random, made with the log: names the store */
	char segment[CKR_NAME_MAX + 1]; /* the segment it serves ("" none) */
} ckr_log_info;

/* The log's state. @return 0; -EIO. */
CKR_API int ckr_store_log_info(ckr_store *s, ckr_log_info *out);

/*
 * A shipper registers: from now on the flusher keeps every entry above the
 * shipped position (registering the first time sets it to the last entry:
 * ship a snapshot first). Then it reports each position it shipped, which
 * only ever grows; the flusher trims the entries at or below it.
 * @return 0; -EROFS; -EIO.
 */
CKR_API int ckr_store_ship_register(ckr_store *s, ckr_log_info *out);
CKR_API int ckr_store_ship_position(ckr_store *s, uint64_t shipped);

/*
 * Drop the log entries at or below what may be dropped (the shipped
 * position, or all when no shipper registered), at most max (0: 65536) in
 * one write transaction. The flusher calls it every second.
 * @return the number dropped, or a negative error.
 */
CKR_API int ckr_store_log_trim(ckr_store *s, size_t max);

/*
 * The run moved to another host (its shared record says so): make the
 * local record terminal (FAILED, flagged moved, error "moved to host HOST
 * (incarnation N)") so it is never driven or claimed here again; its
 * writer's next events are rejected. Not logged (it mirrors the shared
 * record). @return 0; -ENOENT; CKR_ETERMINAL it had finished (left as it
 * is); -EROFS; -EIO.
 */
CKR_API int ckr_store_mark_moved(ckr_store *s, const void *id, size_t id_len,
				 const char *host, uint32_t incarnation);

/* A run brought in from another host's shared record (ckr_store_adopt). */
typedef struct ckr_adopt {
	const void *id;
	size_t id_len;
	uint32_t incarnation;  /* the incarnation claimed for this host */
	uint32_t attempts;
	const ckr_change_row *rows; /* begin (seq 0) then 1..n, gap-free */
	size_t n_rows;
	uint64_t created_ns;
} ckr_adopt;

/*
 * Adopt a run claimed elsewhere (in the shared database) as a run of this
 * store claimed by the calling process: RUNNING, the given incarnation, a
 * new writer id, this process its owner, its rows as given. The returned
 * claim reopens it (ckr_run_reopen) as for ckr_store_claim; once this
 * process is gone the run is an ordinary interrupted run of this store. A
 * local record of the id that was marked moved is replaced. Logged as
 * IMPORT. One write transaction.
 * @return 0; -EEXIST the store has a run of that id; -EINVAL rows not a
 *         begin followed by seq 1..n; CKR_ECORRUPT a row does not decode;
 *         -EROFS; -ENOSPC; -EIO.
 */
CKR_API int ckr_store_adopt(ckr_store *s, const ckr_adopt *im, ckr_claim *out);

/* ------------------------------------------------------------------ */
/* Publishing REPLICATED (a shipper's half of ckr_wait)                */
/* ------------------------------------------------------------------ */

typedef struct ckr_replica ckr_replica;

/*
 * Serve segment NAME as its one shipper: take the shipper's kernel lock
 * (ckr_wait's CKR_ENOSHIPPER says when nobody holds it) and map the lanes'
 * replicated words. @return 0; -EBUSY another shipper serves it; the errors
 * of ckr_client_attach's segment checks.
 */
CKR_API int ckr_replica_open(const char *name, ckr_replica **out);

/* The segment's epoch (positions of another epoch mean nothing here). */
CKR_API void ckr_replica_epoch(const ckr_replica *r, uint8_t epoch[16]);

/* Publish: every lane's replicated position grows to pos (never shrinks),
 * then waiters are woken. Can't fail. */
CKR_API void ckr_replica_publish(ckr_replica *r, const ckr_change_lane *lanes,
				 size_t n);

/* An event of writer (in lane, slot) at or after position pos was refused
 * by the shared database: its waits from there on return CKR_EREJECTED
 * (pos is raised above the lane's published replicated position: what was
 * replicated stays so). Before the refused position is published. Can't
 * fail. */
CKR_API void ckr_replica_reject(ckr_replica *r, uint32_t lane, uint32_t slot,
				uint64_t writer, uint64_t pos);

/* Release the lock and unmap. NULL is allowed. */
CKR_API void ckr_replica_close(ckr_replica *r);

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
	bool prune_failed;          /* remove failed runs (record, events and
	                             * set-aside rows) keep_failed_s after they
	                             * failed, in the background (retention) */
	uint32_t keep_failed_s;     /* with prune_failed; 0: at the next pass */
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

/*
 * Make a running ckr_flusher_run() see *stop at once: call it after setting
 * *stop (from a signal handler too: it is async-signal-safe). Without it the
 * loop sees *stop within its idle bound, or, asleep with no lane owned,
 * within a second. (The engine's own threads block asynchronous signals, so
 * a process-directed SIGTERM reaches the application's threads.) NULL is
 * allowed. Can't fail.
 */
CKR_API void ckr_flusher_interrupt(ckr_flusher *f);

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

/* What the engine measures, for metrics (persist/flusher_metrics.c). */

#define CKR_HISTOGRAM_BUCKETS 16
#define CKR_FLUSHER_REJECT_REASONS 8

typedef struct ckr_histogram {
	uint32_t n_buckets;                    /* used; the last is +Inf */
	double le[CKR_HISTOGRAM_BUCKETS];      /* upper bounds, the histogram's
	                                        * unit (seconds, events) */
	uint64_t count[CKR_HISTOGRAM_BUCKETS]; /* per bucket, not cumulative */
	uint64_t total;                        /* observations */
	double sum;                            /* of the observations */
} ckr_histogram;

typedef struct ckr_flusher_metrics {
	uint64_t stored;          /* events accepted and applied (rows stored,
	                           * and the finishes that change a record) */
	uint64_t rejected[CKR_FLUSHER_REJECT_REASONS]; /* by reason: index i is
	                           * ckr_flusher_reject_name(i) */
	uint64_t corrupt;         /* records that failed validation */
	uint64_t reclaimed;       /* abandoned claims of gone owners skipped */
	uint64_t quarantined;     /* rows written to the quarantine */
	uint64_t batches, map_grown, disk_full;
	uint64_t syncs;           /* fsyncs counted in fsync_seconds */
	uint64_t pruned_runs;     /* retention: runs removed or cleared */
	uint64_t pruned_rows;     /* retention: rows deleted */
	uint64_t started_ns;      /* CLOCK_REALTIME of the open */
	uint64_t last_commit_ns;  /* CLOCK_REALTIME of the last commit; 0 none */
	ckr_histogram commit_seconds; /* a batch's commit (with sync=always: its
	                           * data pages' fsync; group commit) */
	ckr_histogram fsync_seconds;  /* fsyncs beside the commits: the group
	                           * commit's meta-page sync (sync=always), the
	                           * interval's (sync=interval/none) */
	ckr_histogram batch_events;   /* events (records) per committed batch */
} ckr_flusher_metrics;

/* The name of rejection reason i < CKR_FLUSHER_REJECT_REASONS ("dup_begin",
 * "foreign", "stale", "orphan", "after_end", "dup_seq", "bad_kind",
 * "bad_begin"); NULL past the end. This function can't fail. */
CKR_API const char *ckr_flusher_reject_name(unsigned i);

/*
 * Copy the metrics. Unlike ckr_flusher_stats_get, any thread may call it
 * while another runs ckr_flusher_run (relaxed atomic reads of values only
 * the engine's thread writes: each value is exact, the set is not one
 * instant), until ckr_flusher_close. This function can't fail.
 */
CKR_API void ckr_flusher_metrics_get(const ckr_flusher *f, ckr_flusher_metrics *out);

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
