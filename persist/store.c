/*
 * store.c — the LMDB store's foundation: the run record codec, row keys,
 * transactions, LMDB error mapping, and the small flusher calls (grow, sync,
 * cursors, counters). The on-disk layout is persist/FORMAT.md; opening is
 * store_open.c, the batch store_batch.c, recovery store_recover.c.
 *
 * Every LMDB code is mapped at this boundary (ckr_st_err): MDB_MAP_FULL →
 * CKR_STORE_MAPFULL (grow and replay; the flusher's business: the public
 * calls turn it into -ENOSPC), a full disk → -ENOSPC,
 * MDB_VERSION_MISMATCH/MDB_INCOMPATIBLE → CKR_EVERSION,
 * MDB_INVALID/MDB_CORRUPTED/MDB_PAGE_NOTFOUND → CKR_ECORRUPT, system errors
 * → their -errno, the rest → -EIO.
 */
#include "persist/store_internal.h"
#include "shm/clock.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#define DEFAULT_MAP_SIZE (UINT64_C(64) << 20)
#define DEFAULT_MAX_ATTEMPTS 5
#define ENV_MODE 0600

const char *const ckr_st_db_names[CKR_DB_COUNT] = {
	[CKR_DB_META] = "meta",
	[CKR_DB_RUNS] = "runs",
	[CKR_DB_EVENTS] = "events",
	[CKR_DB_CURSORS] = "cursors",
	[CKR_DB_OWNERS] = "owners",
	[CKR_DB_QUARANTINE] = "quarantine",
	[CKR_DB_COUNTERS] = "counters",
	[CKR_DB_SET_ASIDE] = "set_aside",
	[CKR_DB_REJECTIONS] = "rejections",
	[CKR_DB_CHANGES] = "changes",
	[CKR_DB_GONE] = "gone",
};

int ckr_st_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_MAP_FULL:
		return CKR_STORE_MAPFULL;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_VERSION_MISMATCH:
	case MDB_INCOMPATIBLE:
		return CKR_EVERSION;
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
		return CKR_ECORRUPT;
	case MDB_READERS_FULL:
	case MDB_MAP_RESIZED:
		return -EAGAIN;
	case MDB_TXN_FULL:
	case MDB_CURSOR_FULL:
	case MDB_PAGE_FULL:
		return -E2BIG; /* one transaction too large: split the batch */
	}
	if (rc > 0 && rc < 4096)
		return -rc; /* a system errno */
	return -EIO;
}

uint64_t ckr_st_now_ns(void)
{
	return ckr_now_ns(CLOCK_REALTIME);
}

int ckr_st_buf_reserve(ckr_buf *b, size_t n)
{
	if (n <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < n)
		cap = cap > SIZE_MAX / 2 ? n : cap * 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* ---- run records ---- */

/* The fields both record versions share (offsets 0..95). */
static void decode_common(const uint8_t *b, ckr_rec *r)
{
	memset(r, 0, sizeof *r);
	r->state = b[2];
	r->kind = b[3];
	r->incarnation = (uint32_t)ckr_st_get_le(b + 4, 4);
	r->owner.token = ckr_st_get_le(b + 8, 8);
	r->attempts = (uint32_t)ckr_st_get_le(b + 16, 4);
	r->flags = (uint32_t)ckr_st_get_le(b + 20, 4);
	r->created_ns = ckr_st_get_le(b + 24, 8);
	r->updated_ns = ckr_st_get_le(b + 32, 8);
	r->finished_ns = ckr_st_get_le(b + 40, 8);
	r->events = ckr_st_get_le(b + 48, 8);
	r->last_seq = ckr_st_get_le(b + 56, 8);
	r->bytes = ckr_st_get_le(b + 64, 8);
	memcpy(r->epoch, b + 72, CKR_EPOCH_BYTES);
	r->label_len = (size_t)ckr_st_get_le(b + 88, 2);
	r->error_len = (size_t)ckr_st_get_le(b + 90, 2);
	r->meta_len = (size_t)ckr_st_get_le(b + 92, 4);
}

/* Check the decoded fields against the value's size and point the texts
 * into it (they follow a header of `header` bytes). */
static int finish_decode(const uint8_t *b, size_t n, size_t header, ckr_rec *r)
{
	if (r->state < CKR_RUN_RUNNING || r->state > CKR_RUN_COMPLETED ||
	    r->kind < CKR_KIND_SINGLE_LOOP || r->kind > CKR_KIND_MULTI_PHASE ||
	    r->label_len > CKR_LABEL_MAX || r->prefix_seq > r->last_seq ||
	    n - header != r->label_len + r->meta_len + r->error_len)
		return CKR_ECORRUPT;
	r->label = b + header;
	r->meta = r->label + r->label_len;
	r->error = r->meta + r->meta_len;
	return 0;
}

int ckr_st_rec_decode(const void *p, size_t n, ckr_rec *r)
{
	const uint8_t *b = p;

	if (n < CKR_RUN_REC_HEADER || ckr_st_get_le(b, 2) != CKR_RUN_REC_VERSION)
		return CKR_ECORRUPT;
	decode_common(b, r);
	r->owner.nonce = ckr_st_get_le(b + 96, 8);
	r->writer = ckr_st_get_le(b + 104, 8);
	r->prefix_seq = ckr_st_get_le(b + 112, 8);
	r->owner.pidns = ckr_st_get_le(b + 120, 8);
	r->set_aside = ckr_st_get_le(b + 128, 8);
	return finish_decode(b, n, CKR_RUN_REC_HEADER, r);
}

int ckr_st_rec_decode_v1(const void *p, size_t n, ckr_rec *r)
{
	const uint8_t *b = p;

	if (n < CKR_RUN_REC_HEADER_1 || ckr_st_get_le(b, 2) != CKR_RUN_REC_VERSION_1)
		return CKR_ECORRUPT;
	decode_common(b, r);
	return finish_decode(b, n, CKR_RUN_REC_HEADER_1, r);
}

static void rec_encode(const ckr_rec *r, uint8_t *b)
{
	memset(b, 0, CKR_RUN_REC_HEADER);
	ckr_st_put_le(b, CKR_RUN_REC_VERSION, 2);
	b[2] = r->state;
	b[3] = r->kind;
	ckr_st_put_le(b + 4, r->incarnation, 4);
	ckr_st_put_le(b + 8, r->owner.token, 8);
	ckr_st_put_le(b + 16, r->attempts, 4);
	ckr_st_put_le(b + 20, r->flags, 4);
	ckr_st_put_le(b + 24, r->created_ns, 8);
	ckr_st_put_le(b + 32, r->updated_ns, 8);
	ckr_st_put_le(b + 40, r->finished_ns, 8);
	ckr_st_put_le(b + 48, r->events, 8);
	ckr_st_put_le(b + 56, r->last_seq, 8);
	ckr_st_put_le(b + 64, r->bytes, 8);
	memcpy(b + 72, r->epoch, CKR_EPOCH_BYTES);
	ckr_st_put_le(b + 88, r->label_len, 2);
	ckr_st_put_le(b + 90, r->error_len, 2);
	ckr_st_put_le(b + 92, r->meta_len, 4);
	ckr_st_put_le(b + 96, r->owner.nonce, 8);
	ckr_st_put_le(b + 104, r->writer, 8);
	ckr_st_put_le(b + 112, r->prefix_seq, 8);
	ckr_st_put_le(b + 120, r->owner.pidns, 8);
	ckr_st_put_le(b + 128, r->set_aside, 8);
	b += CKR_RUN_REC_HEADER;
	if (r->label_len)
		memcpy(b, r->label, r->label_len);
	if (r->meta_len)
		memcpy(b + r->label_len, r->meta, r->meta_len);
	if (r->error_len)
		memcpy(b + r->label_len + r->meta_len, r->error, r->error_len);
}

int ckr_st_rec_get(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		   size_t id_len, ckr_rec *r, ckr_buf *copy)
{
	MDB_val k = { id_len, (void *)id }, v;
	int rc = mdb_get(txn, s->dbi[CKR_DB_RUNS], &k, &v);

	if (rc)
		return ckr_st_err(rc);
	if (!copy)
		return ckr_st_rec_decode(v.mv_data, v.mv_size, r);
	rc = ckr_st_buf_reserve(copy, v.mv_size);
	if (rc)
		return rc;
	memcpy(copy->p, v.mv_data, v.mv_size);
	return ckr_st_rec_decode(copy->p, v.mv_size, r);
}

int ckr_st_rec_put(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		   size_t id_len, const ckr_rec *r, ckr_buf *tmp)
{
	if (r->label_len > CKR_LABEL_MAX || r->error_len > CKR_REC_ERROR_MAX ||
	    r->meta_len > UINT32_MAX)
		return -EINVAL;
	size_t n = CKR_RUN_REC_HEADER + r->label_len + r->meta_len + r->error_len;
	int rc = ckr_st_buf_reserve(tmp, n);
	if (rc)
		return rc;
	rec_encode(r, tmp->p);
	MDB_val k = { id_len, (void *)id }, v = { n, tmp->p };
	return ckr_st_err(mdb_put(txn, s->dbi[CKR_DB_RUNS], &k, &v, 0));
}

/* ---- keys, events, epoch, owners ---- */

size_t ckr_st_event_key(uint8_t out[CKR_EVENT_KEY_MAX], const uint8_t *id,
			size_t id_len, uint64_t seq)
{
	out[0] = (uint8_t)id_len;
	memcpy(out + 1, id, id_len);
	ckr_st_put_be64(out + 1 + id_len, seq);
	return 1 + id_len + 8;
}

size_t ckr_st_aside_key(uint8_t out[CKR_ASIDE_KEY_MAX], const uint8_t *id,
			size_t id_len, uint32_t incarnation, uint64_t seq)
{
	out[0] = (uint8_t)id_len;
	memcpy(out + 1, id, id_len);
	ckr_st_put_be32(out + 1 + id_len, incarnation);
	ckr_st_put_be64(out + 5 + id_len, seq);
	return 1 + id_len + 12;
}

int ckr_st_delete_run_rows_some(MDB_txn *txn, const ckr_store *s, enum ckr_db db,
				const uint8_t *id, size_t id_len, uint32_t *budget,
				uint64_t *deleted, uint64_t *bytes, bool *more)
{
	uint8_t kb[1 + CKR_RUN_ID_MAX];
	size_t kn = 1 + id_len;
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, s->dbi[db], &c);

	if (rc)
		return ckr_st_err(rc);
	kb[0] = (uint8_t)id_len;
	memcpy(kb + 1, id, id_len);
	*more = false;
	/* Seek afresh after each delete: simple, and immune to how a cursor
	 * is positioned after mdb_cursor_del(). Keys of the run start with
	 * u8 id_len | id and are longer than that prefix. */
	for (;;) {
		k.mv_data = kb;
		k.mv_size = kn;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 && (k.mv_size <= kn || memcmp(k.mv_data, kb, kn)))) {
			rc = 0;
			break;
		}
		if (rc)
			break;
		if (*budget == 0) {
			*more = true;
			break;
		}
		*bytes += v.mv_size;
		rc = mdb_cursor_del(c, 0);
		if (rc)
			break;
		(*deleted)++;
		(*budget)--;
	}
	mdb_cursor_close(c);
	return ckr_st_err(rc);
}

int ckr_st_delete_run_rows(MDB_txn *txn, const ckr_store *s, enum ckr_db db,
			   const uint8_t *id, size_t id_len)
{
	uint64_t deleted = 0, bytes = 0;
	bool more;
	int rc;
	do {
		uint32_t budget = UINT32_MAX;
		rc = ckr_st_delete_run_rows_some(txn, s, db, id, id_len, &budget, &deleted,
						 &bytes, &more);
	} while (rc == 0 && more);
	return rc;
}

bool ckr_st_event_exists(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
			 size_t id_len, uint64_t seq)
{
	uint8_t kb[CKR_EVENT_KEY_MAX];
	MDB_val k = { ckr_st_event_key(kb, id, id_len, seq), kb }, v;
	return mdb_get(txn, s->dbi[CKR_DB_EVENTS], &k, &v) == 0;
}

uint64_t ckr_st_extend_prefix(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
			      size_t id_len, uint64_t from)
{
	uint8_t kb[CKR_EVENT_KEY_MAX];
	size_t kn = ckr_st_event_key(kb, id, id_len, from + 1);
	MDB_val k = { kn, kb }, v;
	MDB_cursor *c;
	uint64_t at = from;

	if (mdb_cursor_open(txn, s->dbi[CKR_DB_EVENTS], &c) != 0)
		return from;
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != kn || memcmp(k.mv_data, kb, kn - 8) ||
		    ckr_st_get_be64((const uint8_t *)k.mv_data + kn - 8) != at + 1)
			break;
		at++;
	}
	mdb_cursor_close(c);
	return at;
}

int ckr_st_rec_clear(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		     size_t id_len, ckr_rec *r)
{
	int rc = ckr_st_delete_run_rows(txn, s, CKR_DB_EVENTS, id, id_len);

	if (rc == 0 && r->set_aside)
		rc = ckr_st_delete_run_rows(txn, s, CKR_DB_SET_ASIDE, id, id_len);
	if (rc)
		return rc;
	r->events = 0;
	r->bytes = 0;
	r->set_aside = 0;
	r->meta = NULL;
	r->meta_len = 0;
	r->flags |= CKR_REC_CLEARED;
	return 0;
}

int ckr_st_current_epoch(MDB_txn *txn, const ckr_store *s,
			 uint8_t epoch[CKR_EPOCH_BYTES], bool *set)
{
	MDB_val k = { 5, "epoch" }, v;
	int rc = mdb_get(txn, s->dbi[CKR_DB_META], &k, &v);

	memset(epoch, 0, CKR_EPOCH_BYTES);
	*set = false;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return ckr_st_err(rc);
	if (v.mv_size != CKR_EPOCH_BYTES)
		return CKR_ECORRUPT;
	memcpy(epoch, v.mv_data, CKR_EPOCH_BYTES);
	*set = true;
	return 0;
}

void ckr_st_owner_key(uint8_t out[16], const ckr_identity *id)
{
	ckr_st_put_be64(out, id->token);
	ckr_st_put_be64(out + 8, id->nonce);
}

bool ckr_st_identity_ended(MDB_txn *txn, const ckr_store *s, const ckr_identity *id)
{
	uint8_t kb[16];
	MDB_val k = { sizeof kb, kb }, v;

	ckr_st_owner_key(kb, id);
	return mdb_get(txn, s->dbi[CKR_DB_OWNERS], &k, &v) == 0;
}

bool ckr_st_owner_ended(MDB_txn *txn, const ckr_store *s, const ckr_rec *r,
			const uint8_t epoch[CKR_EPOCH_BYTES], bool epoch_set)
{
	static const uint8_t unknown[CKR_EPOCH_BYTES];

	/* E3: the segment was recreated since the owner wrote (the store is
	 * bound to one segment name, so another epoch means that ring is
	 * gone). A run written before any epoch was recorded (all zero)
	 * proves nothing either way. */
	if (epoch_set && memcmp(r->epoch, unknown, CKR_EPOCH_BYTES) != 0 &&
	    memcmp(r->epoch, epoch, CKR_EPOCH_BYTES) != 0)
		return true;
	return ckr_st_identity_ended(txn, s, &r->owner);
}

/* ---- transactions ---- */

/* Per thread by nature: LMDB's one-write-transaction rule is per thread. */
static _Thread_local bool thread_in_batch;

int ckr_st_may_write(const ckr_store *s)
{
	if (!s)
		return -EINVAL;
	if (s->read_only)
		return -EROFS;
	if (ckr_st_batch_mine(s))
		return -EBUSY;
	return 0;
}

bool ckr_st_batch_mine(const ckr_store *s)
{
	(void)s;
	return thread_in_batch;
}

void ckr_st_batch_mark(bool open)
{
	thread_in_batch = open;
}

/* Called holding map_lock shared; returns holding it shared. */
static int adopt_map_size(ckr_store *s)
{
	pthread_rwlock_unlock(s->map_lock);
	pthread_rwlock_wrlock(s->map_lock);
	int rc = mdb_env_set_mapsize(s->env, 0);
	pthread_rwlock_unlock(s->map_lock);
	pthread_rwlock_rdlock(s->map_lock);
	return rc;
}

int ckr_st_txn_begin(ckr_store *s, bool write, MDB_txn **txn)
{
	int rc;

	if (write && s->read_only)
		return -EROFS;
	pthread_rwlock_rdlock(s->map_lock);
	for (int tries = 0;; tries++) {
		rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, txn);
		if (rc != MDB_MAP_RESIZED || tries == 3)
			break;
		rc = adopt_map_size(s); /* another process grew the map */
		if (rc)
			break;
	}
	if (rc) {
		pthread_rwlock_unlock(s->map_lock);
		return ckr_st_err(rc);
	}
	return 0;
}

int ckr_st_txn_commit(ckr_store *s, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);
	pthread_rwlock_unlock(s->map_lock);
	return ckr_st_err(rc);
}

void ckr_st_txn_abort(ckr_store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(s->map_lock);
}

/* ---- meta values ---- */

int ckr_st_get_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t *out)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc = mdb_get(txn, dbi, &k, &v);

	if (rc)
		return rc;
	if (v.mv_size != 4)
		return MDB_INCOMPATIBLE;
	*out = (uint32_t)ckr_st_get_le(v.mv_data, 4);
	return 0;
}

int ckr_st_put_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t val)
{
	uint8_t b[4];
	MDB_val k = { strlen(key), (void *)key }, v = { sizeof b, b };

	ckr_st_put_le(b, val, 4);
	return mdb_put(txn, dbi, &k, &v, 0);
}

/* ---- flusher maintenance ---- */

/* Would a mapping of size bytes fit in the address space? LMDB unmaps the
 * old map before it maps the new one and is left with none when that fails
 * (the next transaction would crash), so we ask first with a trial mapping
 * that reserves nothing. */
static bool can_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (p == MAP_FAILED)
		return false;
	munmap(p, size);
	return true;
}

int ckr_store_grow(ckr_store *s)
{
	MDB_envinfo info;
	int rc;

	if (!s)
		return -EINVAL;
	if (ckr_st_batch_mine(s))
		return -EBUSY;
	/* Exclusive: no transaction of this process may be open while the
	 * map is resized (LMDB's rule for mdb_env_set_mapsize). */
	pthread_rwlock_wrlock(s->map_lock);
	rc = mdb_env_info(s->env, &info);
	if (rc == 0)
		rc = info.me_mapsize > SIZE_MAX / 2 || !can_map(info.me_mapsize * 2)
			     ? ENOMEM
			     : mdb_env_set_mapsize(s->env, info.me_mapsize * 2);
	pthread_rwlock_unlock(s->map_lock);
	return ckr_st_err(rc);
}

int ckr_store_sync(ckr_store *s)
{
	if (!s)
		return -EINVAL;
	return ckr_st_err(mdb_env_sync(s->env, 1));
}

int ckr_store_reader_check(ckr_store *s)
{
	int dead = 0;
	if (!s)
		return -EINVAL;
	int rc = mdb_reader_check(s->env, &dead);
	return rc ? ckr_st_err(rc) : dead;
}

uint64_t ckr_store_counter(ckr_store *s, const char *name)
{
	MDB_txn *txn;
	MDB_val k, v;
	uint64_t n = 0;

	if (!s || !name || !*name || ckr_st_txn_begin(s, false, &txn))
		return 0;
	k.mv_size = strlen(name);
	k.mv_data = (void *)name;
	if (mdb_get(txn, s->dbi[CKR_DB_COUNTERS], &k, &v) == 0 && v.mv_size == 8)
		n = ckr_st_get_le(v.mv_data, 8);
	ckr_st_txn_abort(s, txn);
	return n;
}

/* Walk the cursor rows of one epoch (keys epoch | u32 BE lane). */
static int read_cursors(MDB_cursor *c, const uint8_t epoch[CKR_EPOCH_BYTES],
			uint64_t *pos, uint32_t n, bool *found)
{
	uint8_t kb[CKR_EPOCH_BYTES + 4] = { 0 };
	MDB_val k = { sizeof kb, kb }, v;
	int rc;

	memcpy(kb, epoch, CKR_EPOCH_BYTES);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const uint8_t *key = k.mv_data;
		if (k.mv_size != sizeof kb || memcmp(key, epoch, CKR_EPOCH_BYTES))
			break;
		if (v.mv_size != 8)
			return CKR_ECORRUPT;
		uint32_t lane = ckr_st_get_be32(key + CKR_EPOCH_BYTES);
		if (lane < n)
			pos[lane] = ckr_st_get_le(v.mv_data, 8);
		*found = true;
	}
	return rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

int ckr_store_cursors(ckr_store *s, const uint8_t epoch[CKR_EPOCH_BYTES],
		      uint64_t *pos, uint32_t n, bool *found)
{
	MDB_txn *txn;
	MDB_cursor *c;
	int rc;

	if (!s || !epoch || !found || (n && !pos))
		return -EINVAL;
	*found = false;
	for (uint32_t i = 0; i < n; i++)
		pos[i] = 0;
	rc = ckr_st_txn_begin(s, false, &txn);
	if (rc)
		return rc;
	rc = mdb_cursor_open(txn, s->dbi[CKR_DB_CURSORS], &c);
	if (rc == 0) {
		rc = read_cursors(c, epoch, pos, n, found);
		mdb_cursor_close(c);
	} else {
		rc = ckr_st_err(rc);
	}
	ckr_st_txn_abort(s, txn);
	return rc;
}
