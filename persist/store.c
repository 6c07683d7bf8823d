/*
 * store.c — the LMDB store's foundation: opening and checking the
 * environment (flusher read-write, recoverer, inspector read-only), the run
 * record codec, event keys, transactions, LMDB error mapping, and the small
 * flusher calls (grow, sync, cursors, counters). The on-disk layout is
 * persist/FORMAT.md; the batch is store_batch.c; recovery store_recover.c.
 *
 * Every LMDB code is mapped at this boundary (ckr_st_err): MDB_MAP_FULL →
 * CKR_STORE_MAPFULL (grow and replay; the flusher's business: the public
 * calls turn it into -ENOSPC), a full disk → -ENOSPC,
 * MDB_VERSION_MISMATCH/MDB_INCOMPATIBLE → CKR_EVERSION,
 * MDB_INVALID/MDB_CORRUPTED/MDB_PAGE_NOTFOUND → CKR_ECORRUPT, system errors
 * → their -errno, the rest → -EIO.
 */
#include "persist/store_internal.h"

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

static const char *const db_names[CKR_DB_COUNT] = {
	[CKR_DB_META] = "meta",
	[CKR_DB_RUNS] = "runs",
	[CKR_DB_EVENTS] = "events",
	[CKR_DB_CURSORS] = "cursors",
	[CKR_DB_OWNERS] = "owners",
	[CKR_DB_QUARANTINE] = "quarantine",
	[CKR_DB_COUNTERS] = "counters",
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
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

int ckr_st_rec_decode(const void *p, size_t n, ckr_rec *r)
{
	const uint8_t *b = p;

	if (n < CKR_REC_HEADER || ckr_st_get_le(b, 2) != CKR_REC_VERSION)
		return CKR_ECORRUPT;
	memset(r, 0, sizeof *r);
	r->state = b[2];
	r->kind = b[3];
	r->incarnation = (uint32_t)ckr_st_get_le(b + 4, 4);
	r->owner = ckr_st_get_le(b + 8, 8);
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
	if (r->state < CKR_RUN_RUNNING || r->state > CKR_RUN_COMPLETED ||
	    r->kind < CKR_KIND_SINGLE_LOOP || r->kind > CKR_KIND_MULTI_PHASE ||
	    r->label_len > CKR_LABEL_MAX ||
	    n - CKR_REC_HEADER != r->label_len + r->meta_len + r->error_len)
		return CKR_ECORRUPT;
	r->label = b + CKR_REC_HEADER;
	r->meta = r->label + r->label_len;
	r->error = r->meta + r->meta_len;
	return 0;
}

static void rec_encode(const ckr_rec *r, uint8_t *b)
{
	memset(b, 0, CKR_REC_HEADER);
	ckr_st_put_le(b, CKR_REC_VERSION, 2);
	b[2] = r->state;
	b[3] = r->kind;
	ckr_st_put_le(b + 4, r->incarnation, 4);
	ckr_st_put_le(b + 8, r->owner, 8);
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
	b += CKR_REC_HEADER;
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
	size_t n = CKR_REC_HEADER + r->label_len + r->meta_len + r->error_len;
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

int ckr_st_delete_events(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
			 size_t id_len)
{
	uint8_t kb[CKR_EVENT_KEY_MAX];
	size_t kn = ckr_st_event_key(kb, id, id_len, 0);
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, s->dbi[CKR_DB_EVENTS], &c);

	if (rc)
		return ckr_st_err(rc);
	/* Seek afresh after each delete: simple, and immune to how a cursor
	 * is positioned after mdb_cursor_del(). */
	for (;;) {
		k.mv_data = kb;
		k.mv_size = kn;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 && (k.mv_size != kn || memcmp(k.mv_data, kb, kn - 8)))) {
			rc = 0;
			break;
		}
		if (rc == 0)
			rc = mdb_cursor_del(c, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(c);
	return ckr_st_err(rc);
}

int ckr_st_rec_clear(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		     size_t id_len, ckr_rec *r)
{
	int rc = ckr_st_delete_events(txn, s, id, id_len);

	if (rc)
		return rc;
	r->events = 0;
	r->bytes = 0;
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

bool ckr_st_owner_drained(MDB_txn *txn, const ckr_store *s, const ckr_rec *r,
			  const uint8_t epoch[CKR_EPOCH_BYTES], bool epoch_set)
{
	uint8_t kb[8];
	MDB_val k = { sizeof kb, kb }, v;

	static const uint8_t unknown[CKR_EPOCH_BYTES];

	/* The segment was recreated since the owner wrote: the old ring, and
	 * whatever the owner left in it, is gone. A run written before any
	 * epoch was recorded (all zero) proves nothing either way. */
	if (epoch_set && memcmp(r->epoch, unknown, CKR_EPOCH_BYTES) != 0 &&
	    memcmp(r->epoch, epoch, CKR_EPOCH_BYTES) != 0)
		return true;
	ckr_st_put_be64(kb, r->owner);
	return mdb_get(txn, s->dbi[CKR_DB_OWNERS], &k, &v) == 0;
}

/* ---- transactions ---- */

/* Called holding map_lock shared; returns holding it shared. */
static int adopt_map_size(ckr_store *s)
{
	pthread_rwlock_unlock(&s->map_lock);
	pthread_rwlock_wrlock(&s->map_lock);
	int rc = mdb_env_set_mapsize(s->env, 0);
	pthread_rwlock_unlock(&s->map_lock);
	pthread_rwlock_rdlock(&s->map_lock);
	return rc;
}

int ckr_st_txn_begin(ckr_store *s, bool write, MDB_txn **txn)
{
	int rc;

	if (write && s->read_only)
		return -EROFS;
	pthread_rwlock_rdlock(&s->map_lock);
	for (int tries = 0;; tries++) {
		rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, txn);
		if (rc != MDB_MAP_RESIZED || tries == 3)
			break;
		rc = adopt_map_size(s); /* another process grew the map */
		if (rc)
			break;
	}
	if (rc) {
		pthread_rwlock_unlock(&s->map_lock);
		return ckr_st_err(rc);
	}
	return 0;
}

int ckr_st_txn_commit(ckr_store *s, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);
	pthread_rwlock_unlock(&s->map_lock);
	return ckr_st_err(rc);
}

void ckr_st_txn_abort(ckr_store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->map_lock);
}

/* ---- opening ---- */

static int check_dir(const char *dir)
{
	struct stat st;

	if (!dir || !*dir)
		return -EINVAL;
	if (stat(dir, &st) != 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* -ENOENT unless dir holds an LMDB data file. */
static int check_data_file(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;

	if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path)
		return -ENAMETOOLONG;
	if (stat(path, &st) != 0)
		return -errno;
	return S_ISREG(st.st_mode) ? 0 : -ENOENT;
}

/* Create a handle and open its environment (map_size 0: LMDB's choice). */
static int store_new(const char *dir, unsigned flags, uint64_t map_size,
		     ckr_store **out)
{
	ckr_store *s = calloc(1, sizeof *s);
	int rc, dead;

	if (!s)
		return -ENOMEM;
	if (pthread_rwlock_init(&s->map_lock, NULL) != 0) {
		free(s);
		return -ENOMEM;
	}
	rc = mdb_env_create(&s->env);
	if (rc)
		goto fail_lock;
	rc = mdb_env_set_maxdbs(s->env, CKR_DB_COUNT);
	if (rc == 0 && map_size)
		rc = mdb_env_set_mapsize(s->env, (size_t)map_size);
	if (rc == 0)
		rc = mdb_env_open(s->env, dir, flags | MDB_NOTLS, ENV_MODE);
	if (rc)
		goto fail_env;
	mdb_reader_check(s->env, &dead); /* free slots of dead readers */
	s->read_only = (flags & MDB_RDONLY) != 0;
	atomic_init(&s->batch_open, false);
	*out = s;
	return 0;

fail_env:
	mdb_env_close(s->env);
fail_lock:
	pthread_rwlock_destroy(&s->map_lock);
	free(s);
	return ckr_st_err(rc);
}

static int get_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t *out)
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

static int put_u32(MDB_txn *txn, MDB_dbi dbi, const char *key, uint32_t val)
{
	uint8_t b[4];
	MDB_val k = { strlen(key), (void *)key }, v = { sizeof b, b };

	ckr_st_put_le(b, val, 4);
	return mdb_put(txn, dbi, &k, &v, 0);
}

/* The meta database holds our schema version. @return 0; CKR_EVERSION. */
static int check_schema(MDB_txn *txn, MDB_dbi meta)
{
	uint32_t schema;
	int rc = get_u32(txn, meta, "schema", &schema);

	if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE ||
	    (rc == 0 && schema != CKR_STORE_SCHEMA))
		return CKR_EVERSION;
	return ckr_st_err(rc);
}

/* Open the databases other than meta (flags: 0 or MDB_CREATE). */
static int open_dbs(ckr_store *s, MDB_txn *txn, unsigned flags)
{
	for (int i = CKR_DB_META + 1; i < CKR_DB_COUNT; i++) {
		int rc = mdb_dbi_open(txn, db_names[i], flags, &s->dbi[i]);
		if (rc)
			return rc == MDB_NOTFOUND ? CKR_ECORRUPT : ckr_st_err(rc);
	}
	return 0;
}

/* A brand-new environment holds no named database at all. */
static int env_is_empty(MDB_txn *txn, bool *empty)
{
	MDB_dbi main_dbi;
	MDB_stat st;
	int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);

	if (rc == 0)
		rc = mdb_stat(txn, main_dbi, &st);
	if (rc)
		return ckr_st_err(rc);
	*empty = st.ms_entries == 0;
	return 0;
}

/* Flusher: create the databases when new, check the schema, record
 * max_attempts for recoverers. One write transaction. */
static int init_rw(ckr_store *s, uint32_t max_attempts)
{
	MDB_txn *txn;
	bool empty = false;
	int rc = ckr_st_txn_begin(s, true, &txn);

	if (rc)
		return rc;
	rc = mdb_dbi_open(txn, db_names[CKR_DB_META], 0, &s->dbi[CKR_DB_META]);
	if (rc == MDB_NOTFOUND) {
		rc = env_is_empty(txn, &empty);
		if (rc == 0 && !empty)
			rc = CKR_EVERSION; /* someone else's LMDB environment */
		if (rc == 0)
			rc = ckr_st_err(mdb_dbi_open(txn, db_names[CKR_DB_META],
						     MDB_CREATE, &s->dbi[CKR_DB_META]));
		if (rc == 0)
			rc = ckr_st_err(put_u32(txn, s->dbi[CKR_DB_META], "schema",
						CKR_STORE_SCHEMA));
	} else {
		rc = rc ? ckr_st_err(rc) : check_schema(txn, s->dbi[CKR_DB_META]);
	}
	if (rc == 0)
		rc = open_dbs(s, txn, MDB_CREATE);
	if (rc == 0)
		rc = ckr_st_err(put_u32(txn, s->dbi[CKR_DB_META], "max_attempts",
					max_attempts ? max_attempts
						     : DEFAULT_MAX_ATTEMPTS));
	if (rc) {
		ckr_st_txn_abort(s, txn);
		return rc;
	}
	return ckr_st_txn_commit(s, txn);
}

int ckr_store_open_rw(const char *dir, const ckr_store_rw_opts *opts,
		      ckr_store **out)
{
	ckr_store_rw_opts o = { 0 };
	ckr_store *s;
	int rc;

	if (!out)
		return -EINVAL;
	if (opts)
		o = *opts;
	rc = check_dir(dir);
	if (rc)
		return rc;
	rc = store_new(dir, o.sync == CKR_SYNC_ALWAYS ? 0 : MDB_NOSYNC,
		       o.map_size ? o.map_size : DEFAULT_MAP_SIZE, &s);
	if (rc)
		return rc;
	s->keep_completed_s = o.keep_completed_s;
	rc = init_rw(s, o.max_attempts);
	if (rc) {
		ckr_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* Recoverer/inspector: the store must exist; check it, open its databases
 * (a read transaction; committing it keeps the handles). */
static int init_existing(ckr_store *s)
{
	MDB_txn *txn;
	int rc = ckr_st_txn_begin(s, false, &txn);

	if (rc)
		return rc;
	rc = mdb_dbi_open(txn, db_names[CKR_DB_META], 0, &s->dbi[CKR_DB_META]);
	if (rc == MDB_NOTFOUND)
		rc = -ENOENT; /* an environment the flusher has not set up yet */
	else
		rc = rc ? ckr_st_err(rc) : check_schema(txn, s->dbi[CKR_DB_META]);
	if (rc == 0)
		rc = open_dbs(s, txn, 0);
	if (rc) {
		ckr_st_txn_abort(s, txn);
		return rc;
	}
	return ckr_st_txn_commit(s, txn);
}

/* A writable recoverer maps at least DEFAULT_MAP_SIZE (never less than the
 * environment's own size, which LMDB adopts when asked for 0). */
static int widen_map(ckr_store *s)
{
	MDB_envinfo info;
	int rc = mdb_env_info(s->env, &info);

	if (rc == 0 && info.me_mapsize < DEFAULT_MAP_SIZE)
		rc = mdb_env_set_mapsize(s->env, DEFAULT_MAP_SIZE);
	return ckr_st_err(rc);
}

int ckr_store_open(const char *dir, const ckr_store_opts *opts, ckr_store **out)
{
	ckr_store_opts o = { 0 };
	ckr_store *s;
	int rc;

	if (!out)
		return -EINVAL;
	if (opts)
		o = *opts;
	rc = check_dir(dir);
	if (rc == 0)
		rc = check_data_file(dir);
	if (rc == 0)
		rc = store_new(dir, o.read_only ? MDB_RDONLY : 0, o.map_size, &s);
	if (rc)
		return rc;
	s->max_attempts = o.max_attempts;
	rc = init_existing(s);
	if (rc == 0 && !o.read_only && !o.map_size)
		rc = widen_map(s);
	if (rc) {
		ckr_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void ckr_store_close(ckr_store *s)
{
	if (!s)
		return;
	mdb_env_close(s->env);
	pthread_rwlock_destroy(&s->map_lock);
	free(s);
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
	if (atomic_load(&s->batch_open))
		return -EBUSY;
	pthread_rwlock_wrlock(&s->map_lock);
	rc = mdb_env_info(s->env, &info);
	if (rc == 0)
		rc = info.me_mapsize > SIZE_MAX / 2 || !can_map(info.me_mapsize * 2)
			     ? ENOMEM
			     : mdb_env_set_mapsize(s->env, info.me_mapsize * 2);
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
