/*
 * changelog.h — the store's change log (persist/FORMAT.md, `changes`): every
 * change a write transaction makes to runs is also written, in that same
 * transaction, as a numbered entry, so a shipper that follows the log can
 * never miss a committed change nor see one that was not committed. The
 * writers are one-line calls from the places that change runs: the flusher's
 * batch (store_batch.c: rows, finishes, lane marks), claims and prunes
 * (store_recover.c), bounded prune steps (retention.c), the operator's
 * fail, retry and import (store_admin.c), adoptions (store_ship.c). The
 * readers and the trimming are ckr_store_changes / ckr_store_log_*
 * (ckring_store.h; the reader is store_ship.c).
 *
 * Concurrency: the ckr_clog of a batch belongs to that batch (one thread);
 * the standalone puts run inside their caller's write transaction.
 */
#ifndef CKR_CHANGELOG_H
#define CKR_CHANGELOG_H

#include <stdbool.h>
#include <stdint.h>

#include "persist/store_internal.h"

/* A run's rows stored by the open batch and not logged yet: seqs lo..hi of
 * one incarnation through one lane (a run keeps its lane per incarnation),
 * of the run whose record was created at `created` (its generation: an id
 * removed and begun anew is another run). */
typedef struct ckr_clog_range {
	uint64_t lo, hi;
	uint64_t created;
	uint32_t incarnation;
	uint32_t lane;
	bool open;
} ckr_clog_range;

/* A batch's log state. Zero-initialised = empty. */
typedef struct ckr_clog {
	uint64_t last;          /* the last number given (valid when loaded) */
	bool loaded;
	uint32_t lane;          /* where the batch's current events come from */
	ckr_change_lane *marks; /* the lanes' new positions, for the MARK */
	size_t n_marks, cap_marks;
	uint8_t epoch[CKR_EPOCH_BYTES];
	ckr_buf buf;
} ckr_clog;

/* The lane the next events of the batch come through. Can't fail. */
void ckr_clog_lane(ckr_clog *c, uint32_t lane);

/* A row (id, incarnation, seq) of the run created at `created` (its
 * record's created_ns) was stored: extend the run's range, or log the old
 * range and start a new one. @return 0; CKR_STORE_MAPFULL; -EIO. */
int ckr_clog_row(ckr_clog *c, MDB_txn *txn, const ckr_store *s, ckr_clog_range *r,
		 const uint8_t *id, size_t id_len, uint64_t created, uint32_t incarnation,
		 uint64_t seq);

/* Log the run's open range, if any (before anything else of that run, and
 * at commit). @return as ckr_clog_row. */
int ckr_clog_flush(ckr_clog *c, MDB_txn *txn, const ckr_store *s, ckr_clog_range *r,
		   const uint8_t *id, size_t id_len);

/* The run finished (r: its record after the change). @return as above. */
int ckr_clog_finish(ckr_clog *c, MDB_txn *txn, const ckr_store *s, ckr_clog_range *rg,
		    const uint8_t *id, size_t id_len, const ckr_rec *r);

/* A lane's new consumed position (for the batch's MARK). @return 0; -ENOMEM. */
int ckr_clog_cursor(ckr_clog *c, const uint8_t epoch[CKR_EPOCH_BYTES],
		    uint32_t lane, uint64_t pos);

/* At commit, after every range was flushed: the MARK, then the last
 * number into meta. @return as above. */
int ckr_clog_commit(ckr_clog *c, MDB_txn *txn, const ckr_store *s);

/* Free the state (commit or abort). Can't fail. */
void ckr_clog_free(ckr_clog *c);

/* Standalone entries, inside the caller's write transaction. @return 0;
 * CKR_STORE_MAPFULL; -ENOMEM; -EIO. */
int ckr_clog_put_claim(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		       size_t id_len, const ckr_rec *r, uint64_t set_aside);
int ckr_clog_put_finish(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
			size_t id_len, const ckr_rec *r);
int ckr_clog_put_prune(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		       size_t id_len, const ckr_rec *r, bool removed);
int ckr_clog_put_import(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
			size_t id_len, const ckr_rec *r);
/* A failed run made claimable again (r: the record after ckr_store_retry). */
int ckr_clog_put_retry(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		       size_t id_len, const ckr_rec *r);
/* A whole run arrived with its rows (ckr_store_import of an export; r: the
 * record as written). The entry carries the record; the reader finds its
 * rows (every row of an incarnation <= r's) while the record is the one
 * written here (same created time). */
int ckr_clog_put_run(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		     size_t id_len, const ckr_rec *r);

/* The fixed part of a RUN entry's tail (FORMAT.md, `changes`): u8 state,
 * u8 kind, u16 label_len, u32 attempts, u32 meta_len, u32 error_len; then
 * label, meta, error. */
#define CKR_CLOG_RUN_TAIL 16

/* Schema 3's meta keys (store_id, log_last) when missing: a new store, or
 * the migration from schema 2. @return 0; -EIO. */
int ckr_clog_init_meta(MDB_txn *txn, const ckr_store *s);

#endif /* CKR_CHANGELOG_H */
