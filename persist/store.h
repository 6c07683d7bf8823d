/*
 * store.h — the LMDB store: runs, their events, the flusher's lane cursors,
 * drained owners and the quarantine. The layout is persist/FORMAT.md.
 *
 * Two kinds of user:
 * - the flusher (one process per segment): opens the store read-write,
 *   creating it when missing, and applies a batch of decoded events plus the
 *   lanes' consumed positions in ONE write transaction (ckr_batch_*);
 * - recoverers and inspectors (any process, concurrently): the public
 *   ckr_store_* calls of ckring.h. A claim is a short write transaction; LMDB
 *   serialises writers across processes, so claims are atomic.
 *
 * Concurrency: a ckr_store may be shared by threads of one process for the
 * read calls; a batch belongs to one thread from begin to commit/abort, and
 * only one batch may be open per store at a time (LMDB's single writer).
 */
#ifndef CKR_STORE_H
#define CKR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ckring.h"
#include "event/event.h"

#define CKR_STORE_SCHEMA 1

/* The LMDB map is full (MDB_MAP_FULL): grow it and replay the batch. Never
 * escapes the flusher; distinct from -ENOSPC, which means the disk is full. */
#define CKR_STORE_MAPFULL (-20100)
#define CKR_EPOCH_BYTES 16

/* Store-wide options for the flusher's read-write open. */
typedef struct ckr_store_rw_opts {
	uint64_t map_size;         /* initial map; 0 = 64 MiB */
	ckr_sync sync;             /* how commits reach the disk */
	uint32_t keep_completed_s; /* keep completed runs' events this long */
	uint32_t max_attempts;     /* stored in meta for recoverers; 0 = 5 */
} ckr_store_rw_opts;

/*
 * Open (creating the environment and its databases if missing) for the
 * flusher. dir must exist and be writable.
 * @return 0; -ENOENT no directory; -EACCES / -EROFS not writable;
 *         CKR_EVERSION other schema; -ENOMEM; -EIO.
 */
int ckr_store_open_rw(const char *dir, const ckr_store_rw_opts *opts,
		      ckr_store **out);

/* What applying one event did. */
typedef enum ckr_apply {
	CKR_APPLY_STORED = 0,     /* written (begin created the run, ...) */
	CKR_APPLY_DUP_BEGIN,      /* begin of a run that has a record: ignored */
	CKR_APPLY_STALE,          /* incarnation is not the run's current one */
	CKR_APPLY_ORPHAN,         /* no such run (its begin never arrived) */
	CKR_APPLY_AFTER_END,      /* run already terminal: ignored */
	CKR_APPLY_DUP_SEQ,        /* (run, seq) already stored: ignored */
	CKR_APPLY_OVER_LIMIT,     /* would pass the per-run byte limit */
} ckr_apply;

typedef struct ckr_batch ckr_batch;

/* Begin a write transaction. @return 0; -EBUSY a batch is open; -EIO. */
int ckr_batch_begin(ckr_store *s, ckr_batch **out);

/*
 * Apply one decoded event (raw = its encoded bytes, stored as the row value)
 * through the run state machine (spec §2): begin creates a RUNNING run with
 * incarnation 1 (a second begin is ignored); message/phase rows are keyed by
 * (run, seq); complete clears the run's events (unless kept) and marks it
 * COMPLETED; fail marks it FAILED with its error; events of another
 * incarnation, or after the end, are ignored and counted.
 * @param[out] what  what happened (may be NULL)
 * @return 0 (also when the event was ignored); CKR_STORE_MAPFULL the map is
 *         full (the batch is then dead: abort it, grow, and replay);
 *         -ENOSPC the disk is full; -E2BIG the transaction is too large
 *         (split the batch); -EIO.
 */
int ckr_batch_apply(ckr_batch *b, const ckr_event *ev, const void *raw,
		    size_t raw_len, ckr_apply *what);

/* Keep a record that failed validation: raw bytes (cut to 64 KiB), why,
 * where. @return 0; CKR_STORE_MAPFULL; -ENOSPC; -EIO. */
int ckr_batch_quarantine(ckr_batch *b, const char *reason, uint32_t lane,
			 uint64_t pos, const void *raw, size_t len);

/* Persist a lane's consumed position for this segment epoch.
 * @return 0; CKR_STORE_MAPFULL; -ENOSPC; -EIO. */
int ckr_batch_set_cursor(ckr_batch *b, const uint8_t epoch[CKR_EPOCH_BYTES],
			 uint32_t lane, uint64_t pos);

/* Record that every event of the process `owner_token` has been drained from
 * the ring (its lane was reclaimed after its death).
 * @return 0; CKR_STORE_MAPFULL; -ENOSPC. */
int ckr_batch_owner_drained(ckr_batch *b, uint64_t owner_token);

/* Add to the store's counters. ckr_batch_apply and ckr_batch_quarantine
 * already count what they do ("stored", "dup_begin", "stale", "orphan",
 * "after_end", "dup_seq", "bad_kind", "bad_begin", "quarantined"); this is
 * for other counts. */
int ckr_batch_count(ckr_batch *b, const char *name, uint64_t add);

/*
 * Commit. With sync=always the commit is fsync'd before this returns.
 * @return 0; CKR_STORE_MAPFULL map full, -ENOSPC disk full (nothing was
 *         committed); -EIO. The batch is freed in every case.
 */
int ckr_batch_commit(ckr_batch *b);

/* Abandon the transaction (nothing written). NULL is allowed. */
void ckr_batch_abort(ckr_batch *b);

/* Double the map size (after CKR_STORE_MAPFULL). No batch may be open.
 * @return 0; -ENOMEM / -ENOSPC the map cannot grow (disk full). */
int ckr_store_grow(ckr_store *s);

/* fsync what was committed (sync=interval/none). @return 0; -EIO. */
int ckr_store_sync(ckr_store *s);

/*
 * Read the persisted cursors of epoch: pos[i] for lanes i < n (0 where none
 * is stored). *found is false when the store holds no cursor of this epoch
 * (a new segment). @return 0; -EIO.
 */
int ckr_store_cursors(ckr_store *s, const uint8_t epoch[CKR_EPOCH_BYTES],
		      uint64_t *pos, uint32_t n, bool *found);

/* Free the reader slots of dead processes (mdb_reader_check), so a crashed
 * reader cannot pin old pages and grow the file for ever.
 * @return the number of slots freed, or a negative error. */
int ckr_store_reader_check(ckr_store *s);

/* Counters kept in the store, by name; 0 when never counted. */
uint64_t ckr_store_counter(ckr_store *s, const char *name);

/* Remove runs finished (completed/failed) longer ago than the given ages,
 * in seconds (0 = never). @return the number removed, or a negative error. */
int ckr_store_prune(ckr_store *s, uint32_t completed_age_s, uint32_t failed_age_s);

#endif /* CKR_STORE_H */
