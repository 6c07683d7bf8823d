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

#include "ckring_store.h"
#include "event/event.h"
#include "shm/proc.h"

#define CKR_STORE_SCHEMA 3

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
	bool shared_group;         /* the directory may be group-writable; the
	                            * files are made 0660 */
	bool defer_max_attempts;   /* store max_attempts only in a new store;
	                            * the caller records it once it knows it
	                            * serves (ckr_store_record_max_attempts) */
} ckr_store_rw_opts;

/*
 * Open (creating the environment and its databases if missing, migrating a
 * schema-1 store in place in one transaction) for the flusher. dir must
 * exist, be writable and pass ckr_store_check_dir().
 * @return 0; -ENOENT no directory; -ENOTDIR; CKR_EUNSAFE (see
 *         ckr_store_check_dir); -EACCES not writable; -EROFS a read-only
 *         file system; CKR_EVERSION other schema; -ENOMEM; -EIO.
 */
int ckr_store_open_rw(const char *dir, const ckr_store_rw_opts *opts,
		      ckr_store **out);

/*
 * May the flusher trust dir as its store directory (store_open.c, "directory
 * checks")? A real directory (lstat: a symbolic link to one is not), owned
 * by the effective user, writable by nobody else (the group only with
 * shared_group), writable by us, and its data.mdb and lock.mdb, where they
 * exist, regular files with one link (not symbolic links). why (n bytes)
 * gets what is wrong, for a message ("is writable by others (mode 0777)").
 * @return 0; CKR_EUNSAFE (why says what); -ENOENT; -ENOTDIR a file that is
 *         not a directory; -EACCES; -EROFS; -errno of lstat.
 * Makes system calls only (lstat, access); any thread.
 */
int ckr_store_check_dir(const char *dir, bool shared_group, char *why, size_t n);

/*
 * Record max_attempts (0 = 5) in meta for recoverers that pass none. The
 * flusher calls it once it holds the segment's flusher slot, so a flusher
 * that is refused changes nothing. One write transaction.
 * @return 0; -EROFS; CKR_STORE_MAPFULL; -ENOSPC; -EIO.
 */
int ckr_store_record_max_attempts(ckr_store *s, uint32_t max_attempts);

/*
 * Bind the store to the segment it serves (ring/PROTOCOL.md E3): records the
 * name on first use; refuses another name; a new epoch under the same name
 * retires the old one (*retired true). One write transaction.
 * @return 0; CKR_ESEGMENT the store serves another segment (*bound gets its
 *         name when bound is not NULL); -EIO.
 */
int ckr_store_bind_segment(ckr_store *s, const char *name,
			   const uint8_t epoch[CKR_EPOCH_BYTES], bool *retired,
			   char bound[CKR_NAME_MAX + 1]);

/* What applying one event did: STORED, or why it was rejected. The values
 * of the rejections are those of ring/lane.h's ckr_reject_reason. */
typedef enum ckr_apply {
	CKR_APPLY_STORED = 0,     /* written (begin created the run, ...) */
	CKR_APPLY_DUP_BEGIN,      /* begin of a run that has a record */
	CKR_APPLY_FOREIGN,        /* the run has another writer */
	CKR_APPLY_STALE,          /* incarnation is not the run's current one */
	CKR_APPLY_ORPHAN,         /* no such run (its begin never arrived) */
	CKR_APPLY_AFTER_END,      /* run already terminal */
	CKR_APPLY_DUP_SEQ,        /* (run, seq) already stored */
	CKR_APPLY_BAD_KIND,       /* message for multi-phase, or the reverse */
	CKR_APPLY_BAD_BEGIN,      /* a begin not at seq 0 / incarnation 1 */
	CKR_APPLY_COUNT
} ckr_apply;

typedef struct ckr_batch ckr_batch;

/* Begin a write transaction. @return 0; -EBUSY a batch is open; -EIO. */
int ckr_batch_begin(ckr_store *s, ckr_batch **out);

/*
 * Apply one decoded event (raw = its encoded bytes, stored as the row value)
 * that arrived through a lane owned by `from`, through the acceptance rule of
 * ring/PROTOCOL.md: begin creates a RUNNING run (incarnation 1, writer and
 * owner from the event and `from`) when the id has no record; every other
 * event needs the run's current writer (writer id, owner identity,
 * incarnation) and a RUNNING run; message/phase rows are keyed by
 * (run, seq); complete clears the run's events (unless kept) and marks it
 * COMPLETED; fail marks it FAILED with its error. Anything else is rejected
 * and counted, and never changes the run.
 * @param[out] what  what happened (may be NULL)
 * @return 0 (also when the event was rejected); CKR_STORE_MAPFULL the map
 *         is full (the batch is then dead: abort it, grow, and replay);
 *         -ENOSPC the disk is full; -E2BIG the transaction is too large
 *         (split the batch); -EIO.
 */
int ckr_batch_apply(ckr_batch *b, const ckr_event *ev, const void *raw,
		    size_t raw_len, const ckr_identity *from, ckr_apply *what);

/* The events applied next arrive through lane `lane` (the change log
 * records it with their rows: a shipper reports a refusal in that lane's
 * writer slots). Can't fail. */
void ckr_batch_from_lane(ckr_batch *b, uint32_t lane);

/*
 * W1: keep the report of a rejected event (writer, slot, reason) at its end
 * position in the lane, until it is written to the writer's slot.
 * @return 0; CKR_STORE_MAPFULL; -ENOSPC; -EIO.
 */
int ckr_batch_rejection(ckr_batch *b, const uint8_t epoch[CKR_EPOCH_BYTES],
			uint32_t lane, uint64_t pos, uint64_t writer,
			uint32_t slot, uint32_t reason);

/* Delete the kept reports of every lane (they were written to the slots).
 * @return 0; CKR_STORE_MAPFULL; -EIO. */
int ckr_batch_clear_rejections(ckr_batch *b);

/* One kept report (ckr_store_rejections). */
typedef struct ckr_rejection {
	uint8_t epoch[CKR_EPOCH_BYTES];
	uint32_t lane;
	uint64_t pos;
	uint64_t writer;
	uint32_t slot;
	uint32_t reason;
} ckr_rejection;

/* Read every kept report. *out malloc'd (free it). @return 0; -ENOMEM;
 * -EIO. */
int ckr_store_rejections(ckr_store *s, ckr_rejection **out, size_t *n);

/* Keep a record that failed validation: raw bytes (cut to 64 KiB), why,
 * where. @return 0; CKR_STORE_MAPFULL; -ENOSPC; -EIO. */
int ckr_batch_quarantine(ckr_batch *b, const char *reason, uint32_t lane,
			 uint64_t pos, const void *raw, size_t len);

/* Persist a lane's consumed position for this segment epoch.
 * @return 0; CKR_STORE_MAPFULL; -ENOSPC; -EIO. */
int ckr_batch_set_cursor(ckr_batch *b, const uint8_t epoch[CKR_EPOCH_BYTES],
			 uint32_t lane, uint64_t pos);

/* Record that the owner identity `id` is ended (ring/PROTOCOL.md E1/E2): it
 * can write no more and all it wrote is stored.
 * @return 0; CKR_STORE_MAPFULL; -ENOSPC. */
int ckr_batch_owner_ended(ckr_batch *b, const ckr_identity *id);

/* Record that the image of identity `id` is gone (its lane's lock was
 * dropped: death or exec) while another lane still holds it, so that E1 or
 * E2 can end it once no lane holds it, even when /proc calls the token
 * alive (an exec'd image keeps pid and start time). Removed when it is
 * ended. @return 0; CKR_STORE_MAPFULL; -ENOSPC. */
int ckr_batch_owner_gone(ckr_batch *b, const ckr_identity *id);

/* Was identity `id` marked gone (this batch included)? */
bool ckr_batch_owner_is_gone(ckr_batch *b, const ckr_identity *id);

/* Add to the store's counters. ckr_batch_apply and ckr_batch_quarantine
 * already count what they do ("stored", "dup_begin", "foreign", "stale",
 * "orphan", "after_end", "dup_seq", "bad_kind", "bad_begin",
 * "quarantined"); this is for other counts. */
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


/* The owner identities of RUNNING runs that are not ended but whose token
 * /proc says is dead (same pid namespace): candidates for E2. Each at most
 * once. *out malloc'd (free it). @return 0; -ENOMEM; -EIO. */
int ckr_store_dead_owners(ckr_store *s, ckr_identity **out, size_t *n);

/* The identities marked gone (ckr_batch_owner_gone) and not ended yet:
 * candidates for E2 too. *out malloc'd. @return 0; -ENOMEM; -EIO. */
int ckr_store_gone_owners(ckr_store *s, ckr_identity **out, size_t *n);

/* The name of a counter of ckr_apply (e.g. "foreign"). */
const char *ckr_apply_name(ckr_apply what);

#endif /* CKR_STORE_H */
