/*
 * store_internal.h — what the persist/store_*.c files share and nothing else
 * includes: the store handle, the named databases, the run record codec,
 * key encodings, transactions that survive another process growing the map,
 * and LMDB error mapping. The bytes these produce are persist/FORMAT.md.
 *
 *   store.c          records, keys, txns, grow/sync/cursors/counters
 *   store_open.c     the per-process environment registry, open/close,
 *                    schema check, segment binding
 *   store_migrate.c  schema 1 → 2, in place, in one transaction
 *   store_batch.c    the flusher's write batch and the run state machine
 *   store_recover.c  list / get / claim / resume / prune
 *   store_admin.c    operator actions: fail / retry / export / import
 *   store_query.c    paged queries and the census (metrics)
 *   retention.c      pruning in bounded steps (ckring-admin, the flusher)
 *   changelog.c      the change log: entries, registration, trimming
 *   store_ship.c     reading the log and snapshots; moved marks; imports
 */
#ifndef CKR_STORE_INTERNAL_H
#define CKR_STORE_INTERNAL_H

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "persist/store.h"
#include "shm/proc.h"

/* The named databases, in the order of ckr_st_db_names. */
enum ckr_db {
	CKR_DB_META,
	CKR_DB_RUNS,
	CKR_DB_EVENTS,
	CKR_DB_CURSORS,
	CKR_DB_OWNERS,
	CKR_DB_QUARANTINE,
	CKR_DB_COUNTERS,
	CKR_DB_SET_ASIDE,
	CKR_DB_REJECTIONS,
	CKR_DB_CHANGES,            /* schema 3: the change log */
	CKR_DB_GONE,               /* schema 3: identities whose image is gone
	                            * but which still held a lane (flusher only) */
	CKR_DB_COUNT
};

extern const char *const ckr_st_db_names[CKR_DB_COUNT];

/*
 * One LMDB environment of one directory, shared by every ckr_store handle
 * of this process that opened that directory (LMDB forbids opening an
 * environment twice in a process: closing one would drop the other's
 * locks). Reference-counted in store_open.c's registry.
 */
typedef struct ckr_env {
	struct ckr_env *next;      /* the registry's list */
	dev_t dev;
	ino_t ino;
	unsigned refs;
	MDB_env *env;
	MDB_dbi dbi[CKR_DB_COUNT];
	bool read_only;            /* opened MDB_RDONLY (no write access) */
	/*
	 * Held shared by every transaction of any handle, exclusive while the
	 * map is resized (ckr_store_grow, or adopting the size another process
	 * grew it to after MDB_MAP_RESIZED): LMDB allows mdb_env_set_mapsize()
	 * only while this process has no transaction open on the environment.
	 */
	pthread_rwlock_t map_lock;
	atomic_bool batch_open;    /* one write batch at a time (-EBUSY) */
} ckr_env;

struct ckr_store {
	ckr_env *shared;
	MDB_env *env;              /* shared->env */
	MDB_dbi dbi[CKR_DB_COUNT]; /* copies of shared->dbi */
	pthread_rwlock_t *map_lock;
	atomic_bool *batch_open;
	bool read_only;            /* this handle: no claims, no batches */
	uint32_t max_attempts;     /* recoverer's limit; 0 = meta's */
	uint32_t keep_completed_s; /* flusher: keep completed runs' events */
};

/* Is the flusher's `gone` database open in this handle? (LMDB numbers
 * named databases from 2; 0 and 1 are its own.) */
static inline bool ckr_st_has_gone(const ckr_store *s)
{
	return s->dbi[CKR_DB_GONE] >= 2;
}

/* ---- run records (the `runs` values) ---- */

#define CKR_RUN_REC_VERSION 2
#define CKR_RUN_REC_HEADER 136
#define CKR_RUN_REC_VERSION_1 1
#define CKR_RUN_REC_HEADER_1 96
#define CKR_REC_CLEARED 0x1u   /* flags: events and metadata removed */
#define CKR_REC_REMOVING 0x2u  /* flags: being pruned (retention.c): rows
                                * may remain; the record goes when they do */
#define CKR_REC_MOVED 0x4u     /* flags: the run moved to another host */
#define CKR_REC_IMPORTED 0x8u  /* flags: imported from another host */
#define CKR_REC_ERROR_MAX 4096 /* longest error kept in a record */

/* A decoded run record. label/meta/error point into the decoded bytes. */
typedef struct ckr_rec {
	uint8_t state;         /* ckr_run_state */
	uint8_t kind;          /* ckr_kind */
	uint32_t incarnation;
	ckr_identity owner;    /* the current writer's process image */
	uint64_t writer;       /* the current writer id (0: none, schema 1) */
	uint32_t attempts;
	uint32_t flags;
	uint64_t created_ns, updated_ns, finished_ns;
	uint64_t events, last_seq, bytes;
	uint64_t prefix_seq;   /* 1..prefix_seq are all stored */
	uint64_t set_aside;    /* rows moved to set_aside by claims */
	uint8_t epoch[CKR_EPOCH_BYTES];
	const uint8_t *label;
	size_t label_len;
	const uint8_t *meta;
	size_t meta_len;
	const uint8_t *error;
	size_t error_len;
} ckr_rec;

/* A growable private byte buffer. */
typedef struct ckr_buf {
	uint8_t *p;
	size_t cap;
} ckr_buf;

/* Make b hold at least n bytes. @return 0; -ENOMEM. */
int ckr_st_buf_reserve(ckr_buf *b, size_t n);

/* Decode a record (version 2 only: schema 1 records are migrated, see
 * store_migrate.c). @return 0; CKR_ECORRUPT. */
int ckr_st_rec_decode(const void *p, size_t n, ckr_rec *r);

/* Decode a schema-1 record (for the migration). @return 0; CKR_ECORRUPT. */
int ckr_st_rec_decode_v1(const void *p, size_t n, ckr_rec *r);

/* Read run id's record in txn into a private copy (*copy), so that r stays
 * valid across later writes of txn; copy NULL: decode in place (r is valid
 * until txn writes or ends). @return 0; -ENOENT; CKR_ECORRUPT; -ENOMEM;
 * -EIO. */
int ckr_st_rec_get(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		   size_t id_len, ckr_rec *r, ckr_buf *copy);

/* Encode r (into *tmp, which must not hold r's label/meta/error) and put it
 * as run id's record. @return 0; CKR_STORE_MAPFULL; -ENOMEM; -EIO. */
int ckr_st_rec_put(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		   size_t id_len, const ckr_rec *r, ckr_buf *tmp);

/* ---- keys ---- */

#define CKR_EVENT_KEY_MAX (1 + CKR_RUN_ID_MAX + 8)

/* The `events` key of (id, seq): u8 id_len, id, u64 BE seq. @return length. */
size_t ckr_st_event_key(uint8_t out[CKR_EVENT_KEY_MAX], const uint8_t *id,
			size_t id_len, uint64_t seq);

/* The `set_aside` key of (id, incarnation, seq): u8 id_len, id, u32 BE
 * incarnation, u64 BE seq. @return length. */
#define CKR_ASIDE_KEY_MAX (1 + CKR_RUN_ID_MAX + 4 + 8)
size_t ckr_st_aside_key(uint8_t out[CKR_ASIDE_KEY_MAX], const uint8_t *id,
			size_t id_len, uint32_t incarnation, uint64_t seq);

/* Delete every row of run id in db (events or set_aside: keys that start
 * with u8 id_len, id). @return 0; CKR_STORE_MAPFULL; -EIO. */
int ckr_st_delete_run_rows(MDB_txn *txn, const ckr_store *s, enum ckr_db db,
			   const uint8_t *id, size_t id_len);

/* The same, at most *budget rows (decremented per row): *more says rows
 * remain; *deleted and *bytes (value bytes) grow by what went. */
int ckr_st_delete_run_rows_some(MDB_txn *txn, const ckr_store *s, enum ckr_db db,
				const uint8_t *id, size_t id_len, uint32_t *budget,
				uint64_t *deleted, uint64_t *bytes, bool *more);

/* Does the row (id, seq) exist in `events`? Errors count as absent. */
bool ckr_st_event_exists(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
			 size_t id_len, uint64_t seq);

/* The highest s >= from such that (id, from+1..s) all exist in `events`
 * (from itself is known stored or 0). Walks with a cursor. */
uint64_t ckr_st_extend_prefix(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
			      size_t id_len, uint64_t from);

/* Turn r into a tombstone in memory (events 0, bytes 0, no metadata,
 * CKR_REC_CLEARED) after deleting its `events` and `set_aside` rows; the
 * caller puts r.
 * @return 0; CKR_STORE_MAPFULL; -EIO. */
int ckr_st_rec_clear(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		     size_t id_len, ckr_rec *r);

/* The store's current segment epoch; *set false when none is recorded.
 * @return 0; -EIO; CKR_ECORRUPT. */
int ckr_st_current_epoch(MDB_txn *txn, const ckr_store *s,
			 uint8_t epoch[CKR_EPOCH_BYTES], bool *set);

/* Is the owner of r ended (ring/PROTOCOL.md E1..E3): its identity is in
 * `owners`, or r was written under a retired segment epoch (another than
 * the current one)? Then nothing of it can still be in the ring. */
bool ckr_st_owner_ended(MDB_txn *txn, const ckr_store *s, const ckr_rec *r,
			const uint8_t epoch[CKR_EPOCH_BYTES], bool epoch_set);

/* A RUNNING run's owner (store_recover.c): ENDED (claimable), DEAD by /proc
 * but not ended (events may still be in the ring), or ALIVE. */
typedef enum owner_state { OWNER_ALIVE, OWNER_DEAD, OWNER_ENDED } owner_state;
owner_state ckr_st_judge_owner(MDB_txn *txn, const ckr_store *s, const ckr_rec *r,
			       const uint8_t epoch[CKR_EPOCH_BYTES], bool epoch_set);

/* The public summary of record r of run id (os: its owner's state). */
void ckr_st_fill_info(ckr_run_info *in, const uint8_t *id, size_t id_len,
		      const ckr_rec *r, owner_state os);

/* Is identity id in `owners`? */
bool ckr_st_identity_ended(MDB_txn *txn, const ckr_store *s, const ckr_identity *id);

/* The `owners` key of an identity: u64 BE token, u64 BE nonce. */
void ckr_st_owner_key(uint8_t out[16], const ckr_identity *id);

/* ---- transactions ---- */

/* Does the calling thread hold a batch open (on any store)? A second write
 * transaction in the same thread would deadlock in LMDB. */
bool ckr_st_batch_mine(const ckr_store *s);
void ckr_st_batch_mark(bool open);

/* The checks every write action makes before its own write transaction.
 * @return 0; -EINVAL s is NULL; -EROFS a read-only store; -EBUSY this
 * thread holds a batch open. */
int ckr_st_may_write(const ckr_store *s);

/* Begin a transaction under the map lock (taken shared), adopting a map
 * grown by another process. @return 0; -EROFS write on a read-only store;
 * -ENOMEM; -EAGAIN reader table full; -EIO. On failure the lock is not held. */
int ckr_st_txn_begin(ckr_store *s, bool write, MDB_txn **txn);

/* Commit (the lock is released). @return 0; CKR_STORE_MAPFULL; -ENOSPC
 * disk full; -EIO. */
int ckr_st_txn_commit(ckr_store *s, MDB_txn *txn);

/* Abort (the lock is released). */
void ckr_st_txn_abort(ckr_store *s, MDB_txn *txn);

/* ---- misc ---- */

/* An LMDB or system error as 0 or a negative errno / CKR_E* code
 * (MDB_MAP_FULL → CKR_STORE_MAPFULL). */
int ckr_st_err(int rc);

/* For the public calls: CKR_STORE_MAPFULL never escapes the flusher. */
static inline int ckr_st_public_err(int rc)
{
	return rc == CKR_STORE_MAPFULL ? -ENOSPC : rc;
}

/* CLOCK_REALTIME in nanoseconds. */
uint64_t ckr_st_now_ns(void);

/* Small meta values. @return an LMDB code. */
int ckr_st_get_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t *out);
int ckr_st_put_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t val);

/* Migrate a schema-1 store to schema 2 inside txn (store_migrate.c).
 * @return 0; CKR_ECORRUPT; CKR_STORE_MAPFULL; -ENOMEM; -EIO. */
int ckr_st_migrate_1_to_2(MDB_txn *txn, ckr_store *s);

/* Migrate a schema-2 store to schema 3 inside txn: the change log
 * (created empty by the caller's open), its meta keys, schema 3.
 * @return 0; CKR_STORE_MAPFULL; -EIO. */
int ckr_st_migrate_2_to_3(MDB_txn *txn, ckr_store *s);

static inline void ckr_st_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint64_t ckr_st_get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static inline void ckr_st_put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static inline uint32_t ckr_st_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline void ckr_st_put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t ckr_st_get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = bytes - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif /* CKR_STORE_INTERNAL_H */
