/*
 * changelog.c — writing and trimming the change log (changelog.h,
 * persist/FORMAT.md "changes"). Entries are numbered 1, 2, ... in commit
 * order; meta `log_last` holds the last number given, written in the same
 * transaction, so numbers never repeat even once every entry was trimmed.
 * Keys grow, so puts append (MDB_APPEND: no search, no page split in the
 * middle of the tree).
 *
 * Who trims: the flusher (its housekeeping, every second, through
 * ckr_store_log_trim), up to meta `shipped` — the position a shipper wrote
 * back after PostgreSQL committed it, which only grows — or, while no
 * shipper has registered (no `shipped` key), everything: nobody will read
 * it, and a shipper that registers later starts from a snapshot.
 */
#include "persist/changelog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define ENTRY_HEADER 32
#define TRIM_DEFAULT 65536

static const MDB_val LAST_KEY = { 8, "log_last" };
static const MDB_val SHIPPED_KEY = { 7, "shipped" };
static const MDB_val STORE_ID_KEY = { 8, "store_id" };

/* ---- meta ---- */

static int get_u64(MDB_txn *txn, const ckr_store *s, const MDB_val *key, uint64_t *v,
		   bool *found)
{
	MDB_val k = *key, d;
	int rc = mdb_get(txn, s->dbi[CKR_DB_META], &k, &d);
	*v = 0;
	if (found)
		*found = rc == 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return ckr_st_err(rc);
	if (d.mv_size != 8)
		return CKR_ECORRUPT;
	*v = ckr_st_get_le(d.mv_data, 8);
	return 0;
}

static int put_u64(MDB_txn *txn, const ckr_store *s, const MDB_val *key, uint64_t v)
{
	uint8_t b[8];
	MDB_val k = *key, d = { 8, b };
	ckr_st_put_le(b, v, 8);
	return ckr_st_err(mdb_put(txn, s->dbi[CKR_DB_META], &k, &d, 0));
}

int ckr_clog_init_meta(MDB_txn *txn, const ckr_store *s)
{
	MDB_val k = STORE_ID_KEY, d;
	int rc = mdb_get(txn, s->dbi[CKR_DB_META], &k, &d);
	if (rc == MDB_NOTFOUND) {
		uint8_t id[16];
		if (getrandom(id, sizeof id, 0) != (ssize_t)sizeof id)
			return -errno;
		d.mv_size = sizeof id;
		d.mv_data = id;
		rc = mdb_put(txn, s->dbi[CKR_DB_META], &k, &d, 0);
	}
	if (rc)
		return ckr_st_err(rc);
	uint64_t last;
	bool found;
	rc = get_u64(txn, s, &LAST_KEY, &last, &found);
	if (rc == 0 && !found)
		rc = put_u64(txn, s, &LAST_KEY, 0);
	return rc;
}

/* ---- entries ---- */

typedef struct entry {
	uint8_t kind;
	uint16_t flags;
	uint32_t incarnation;
	uint64_t a, b, c;
	const uint8_t *id;
	size_t id_len;
	const void *tail;
	size_t tail_len;
} entry;

/* Put entry number n. @return 0; CKR_STORE_MAPFULL; -ENOMEM; -EIO. */
static int put_entry(MDB_txn *txn, const ckr_store *s, ckr_buf *buf, uint64_t n,
		     const entry *e)
{
	size_t len = ENTRY_HEADER + e->id_len + e->tail_len;
	int rc = ckr_st_buf_reserve(buf, len);
	if (rc)
		return rc;
	uint8_t *p = buf->p, kb[8];
	memset(p, 0, ENTRY_HEADER);
	p[0] = e->kind;
	p[1] = (uint8_t)e->id_len;
	ckr_st_put_le(p + 2, e->flags, 2);
	ckr_st_put_le(p + 4, e->incarnation, 4);
	ckr_st_put_le(p + 8, e->a, 8);
	ckr_st_put_le(p + 16, e->b, 8);
	ckr_st_put_le(p + 24, e->c, 8);
	if (e->id_len)
		memcpy(p + ENTRY_HEADER, e->id, e->id_len);
	if (e->tail_len)
		memcpy(p + ENTRY_HEADER + e->id_len, e->tail, e->tail_len);
	ckr_st_put_be64(kb, n);
	MDB_val k = { 8, kb }, v = { len, p };
	return ckr_st_err(mdb_put(txn, s->dbi[CKR_DB_CHANGES], &k, &v, MDB_APPEND));
}

/* Put one entry with the next number (standalone: reads and writes
 * log_last). */
static int put_one(MDB_txn *txn, const ckr_store *s, const entry *e)
{
	ckr_buf buf = { 0 };
	uint64_t last;
	int rc = get_u64(txn, s, &LAST_KEY, &last, NULL);
	if (rc == 0)
		rc = put_entry(txn, s, &buf, last + 1, e);
	if (rc == 0)
		rc = put_u64(txn, s, &LAST_KEY, last + 1);
	free(buf.p);
	return rc;
}

/* The batch's next number. */
static int batch_next(ckr_clog *c, MDB_txn *txn, const ckr_store *s, uint64_t *n)
{
	if (!c->loaded) {
		int rc = get_u64(txn, s, &LAST_KEY, &c->last, NULL);
		if (rc)
			return rc;
		c->loaded = true;
	}
	*n = ++c->last;
	return 0;
}

static int batch_put(ckr_clog *c, MDB_txn *txn, const ckr_store *s, const entry *e)
{
	uint64_t n;
	int rc = batch_next(c, txn, s, &n);
	return rc ? rc : put_entry(txn, s, &c->buf, n, e);
}

void ckr_clog_lane(ckr_clog *c, uint32_t lane)
{
	c->lane = lane;
}

int ckr_clog_flush(ckr_clog *c, MDB_txn *txn, const ckr_store *s, ckr_clog_range *r,
		   const uint8_t *id, size_t id_len)
{
	if (!r->open)
		return 0;
	uint8_t created[8];
	ckr_st_put_le(created, r->created, 8);
	entry e = { .kind = CKR_CHANGE_ROWS, .incarnation = r->incarnation,
		    .a = r->lo, .b = r->hi, .c = r->lane, .id = id, .id_len = id_len,
		    .tail = created, .tail_len = sizeof created };
	r->open = false;
	return batch_put(c, txn, s, &e);
}

int ckr_clog_row(ckr_clog *c, MDB_txn *txn, const ckr_store *s, ckr_clog_range *r,
		 const uint8_t *id, size_t id_len, uint64_t created, uint32_t incarnation,
		 uint64_t seq)
{
	if (r->open && r->incarnation == incarnation && r->lane == c->lane &&
	    r->created == created && seq == r->hi + 1) {
		r->hi = seq; /* the common case: the next row of the run */
		return 0;
	}
	int rc = ckr_clog_flush(c, txn, s, r, id, id_len);
	if (rc)
		return rc;
	*r = (ckr_clog_range){ .lo = seq, .hi = seq, .created = created,
			       .incarnation = incarnation, .lane = c->lane, .open = true };
	return 0;
}

static entry finish_entry(const uint8_t *id, size_t id_len, const ckr_rec *r)
{
	return (entry){ .kind = CKR_CHANGE_FINISH, .incarnation = r->incarnation,
			.flags = (r->flags & CKR_REC_CLEARED) ? 1 : 0,
			.a = r->finished_ns, .b = r->state, .c = r->error_len,
			.id = id, .id_len = id_len, .tail = r->error,
			.tail_len = r->state == CKR_RUN_FAILED ? r->error_len : 0 };
}

int ckr_clog_finish(ckr_clog *c, MDB_txn *txn, const ckr_store *s, ckr_clog_range *rg,
		    const uint8_t *id, size_t id_len, const ckr_rec *r)
{
	int rc = ckr_clog_flush(c, txn, s, rg, id, id_len);
	if (rc)
		return rc;
	entry e = finish_entry(id, id_len, r);
	return batch_put(c, txn, s, &e);
}

int ckr_clog_cursor(ckr_clog *c, const uint8_t epoch[CKR_EPOCH_BYTES], uint32_t lane,
		    uint64_t pos)
{
	if (c->n_marks == c->cap_marks) {
		size_t cap = c->cap_marks ? c->cap_marks * 2 : 16;
		ckr_change_lane *p = realloc(c->marks, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		c->marks = p;
		c->cap_marks = cap;
	}
	memcpy(c->epoch, epoch, CKR_EPOCH_BYTES);
	c->marks[c->n_marks++] = (ckr_change_lane){ .lane = lane, .pos = pos };
	return 0;
}

int ckr_clog_commit(ckr_clog *c, MDB_txn *txn, const ckr_store *s)
{
	int rc = 0;
	if (c->n_marks) {
		size_t n = c->n_marks, len = CKR_EPOCH_BYTES + n * 16;
		uint8_t *tail = malloc(len);
		if (!tail)
			return -ENOMEM;
		memcpy(tail, c->epoch, CKR_EPOCH_BYTES);
		for (size_t i = 0; i < n; i++) {
			uint8_t *p = tail + CKR_EPOCH_BYTES + i * 16;
			ckr_st_put_le(p, c->marks[i].lane, 4);
			ckr_st_put_le(p + 4, 0, 4);
			ckr_st_put_le(p + 8, c->marks[i].pos, 8);
		}
		entry e = { .kind = CKR_CHANGE_MARK, .c = n, .tail = tail, .tail_len = len };
		rc = batch_put(c, txn, s, &e);
		free(tail);
	}
	if (rc == 0 && c->loaded)
		rc = put_u64(txn, s, &LAST_KEY, c->last);
	return rc;
}

void ckr_clog_free(ckr_clog *c)
{
	free(c->marks);
	free(c->buf.p);
	memset(c, 0, sizeof *c);
}

int ckr_clog_put_claim(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		       size_t id_len, const ckr_rec *r, uint64_t set_aside)
{
	entry e = { .kind = CKR_CHANGE_CLAIM, .incarnation = r->incarnation,
		    .a = r->last_seq, .b = r->attempts, .c = set_aside,
		    .id = id, .id_len = id_len };
	return put_one(txn, s, &e);
}

int ckr_clog_put_finish(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
			size_t id_len, const ckr_rec *r)
{
	entry e = finish_entry(id, id_len, r);
	return put_one(txn, s, &e);
}

int ckr_clog_put_prune(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		       size_t id_len, const ckr_rec *r, bool removed)
{
	entry e = { .kind = CKR_CHANGE_PRUNE, .incarnation = r->incarnation,
		    .flags = removed ? 1 : 0, .id = id, .id_len = id_len };
	return put_one(txn, s, &e);
}

int ckr_clog_put_import(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
			size_t id_len, const ckr_rec *r)
{
	entry e = { .kind = CKR_CHANGE_IMPORT, .incarnation = r->incarnation,
		    .a = r->last_seq, .b = r->attempts, .id = id, .id_len = id_len };
	return put_one(txn, s, &e);
}

int ckr_clog_put_retry(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		       size_t id_len, const ckr_rec *r)
{
	entry e = { .kind = CKR_CHANGE_RETRY, .incarnation = r->incarnation,
		    .b = r->attempts, .id = id, .id_len = id_len };
	return put_one(txn, s, &e);
}

int ckr_clog_put_run(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		     size_t id_len, const ckr_rec *r)
{
	size_t len = CKR_CLOG_RUN_TAIL + r->label_len + r->meta_len + r->error_len;
	uint8_t *t = malloc(len);
	if (!t)
		return -ENOMEM;
	t[0] = r->state;
	t[1] = r->kind;
	ckr_st_put_le(t + 2, r->label_len, 2);
	ckr_st_put_le(t + 4, r->attempts, 4);
	ckr_st_put_le(t + 8, r->meta_len, 4);
	ckr_st_put_le(t + 12, r->error_len, 4);
	uint8_t *p = t + CKR_CLOG_RUN_TAIL;
	if (r->label_len)
		memcpy(p, r->label, r->label_len);
	if (r->meta_len)
		memcpy(p + r->label_len, r->meta, r->meta_len);
	if (r->error_len)
		memcpy(p + r->label_len + r->meta_len, r->error, r->error_len);
	entry e = { .kind = CKR_CHANGE_RUN, .incarnation = r->incarnation,
		    .flags = (r->flags & CKR_REC_CLEARED) ? 1 : 0, .a = r->created_ns,
		    .b = r->finished_ns, .c = r->last_seq, .id = id, .id_len = id_len,
		    .tail = t, .tail_len = len };
	int rc = put_one(txn, s, &e);
	free(t);
	return rc;
}

/* ---- registration, position, trimming ---- */

int ckr_store_ship_register(ckr_store *s, ckr_log_info *out)
{
	MDB_txn *txn;
	uint64_t last, shipped;
	bool found;
	int rc = ckr_st_may_write(s);
	if (rc)
		return rc;
	rc = ckr_st_txn_begin(s, true, &txn);
	if (rc)
		return rc;
	rc = get_u64(txn, s, &SHIPPED_KEY, &shipped, &found);
	if (rc == 0 && !found)
		rc = get_u64(txn, s, &LAST_KEY, &last, NULL);
	if (rc == 0 && !found)
		rc = put_u64(txn, s, &SHIPPED_KEY, last);
	if (rc) {
		ckr_st_txn_abort(s, txn);
		return ckr_st_public_err(rc);
	}
	rc = ckr_st_public_err(ckr_st_txn_commit(s, txn));
	return rc == 0 && out ? ckr_store_log_info(s, out) : rc;
}

int ckr_store_ship_position(ckr_store *s, uint64_t shipped)
{
	MDB_txn *txn;
	uint64_t old, last;
	int rc = ckr_st_may_write(s);
	if (rc)
		return rc;
	rc = ckr_st_txn_begin(s, true, &txn);
	if (rc)
		return rc;
	rc = get_u64(txn, s, &SHIPPED_KEY, &old, NULL);
	if (rc == 0)
		rc = get_u64(txn, s, &LAST_KEY, &last, NULL);
	if (rc == 0 && shipped > last)
		rc = -EINVAL; /* beyond anything written: not a position of ours */
	if (rc == 0 && shipped > old)
		rc = put_u64(txn, s, &SHIPPED_KEY, shipped);
	if (rc) {
		ckr_st_txn_abort(s, txn);
		return ckr_st_public_err(rc);
	}
	return ckr_st_public_err(ckr_st_txn_commit(s, txn));
}

/* The first kept entry's number (0: none). */
static int first_entry(MDB_txn *txn, const ckr_store *s, uint64_t *first)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, s->dbi[CKR_DB_CHANGES], &c);
	*first = 0;
	if (rc)
		return ckr_st_err(rc);
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	if (rc == 0 && k.mv_size == 8)
		*first = ckr_st_get_be64(k.mv_data);
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

/* How far the log may be trimmed: the shipped position, or all. */
static int trim_limit(MDB_txn *txn, const ckr_store *s, uint64_t *limit, uint64_t *first)
{
	uint64_t last = 0, shipped = 0;
	bool registered = false;
	int rc = get_u64(txn, s, &LAST_KEY, &last, NULL);
	if (rc == 0)
		rc = get_u64(txn, s, &SHIPPED_KEY, &shipped, &registered);
	if (rc == 0)
		rc = first_entry(txn, s, first);
	*limit = rc == 0 && registered ? shipped : last;
	return rc;
}

static int trim_in(MDB_txn *txn, const ckr_store *s, uint64_t limit, size_t max,
		   size_t *n)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, s->dbi[CKR_DB_CHANGES], &c);
	if (rc)
		return ckr_st_err(rc);
	while (*n < max && (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
		if (k.mv_size != 8 || ckr_st_get_be64(k.mv_data) > limit)
			break;
		rc = mdb_cursor_del(c, 0);
		if (rc)
			break;
		(*n)++;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

int ckr_store_log_trim(ckr_store *s, size_t max)
{
	MDB_txn *txn;
	uint64_t limit, first;
	size_t n = 0;
	int rc = ckr_st_may_write(s);
	if (rc)
		return rc;
	/* A read first: an idle store takes no write lock. */
	rc = ckr_st_txn_begin(s, false, &txn);
	if (rc)
		return rc;
	rc = trim_limit(txn, s, &limit, &first);
	ckr_st_txn_abort(s, txn);
	if (rc || first == 0 || first > limit)
		return rc;
	rc = ckr_st_txn_begin(s, true, &txn);
	if (rc)
		return rc;
	rc = trim_limit(txn, s, &limit, &first);
	if (rc == 0)
		rc = trim_in(txn, s, limit, max ? max : TRIM_DEFAULT, &n);
	if (rc) {
		ckr_st_txn_abort(s, txn);
		return ckr_st_public_err(rc);
	}
	rc = ckr_st_public_err(ckr_st_txn_commit(s, txn));
	return rc ? rc : (int)n;
}

int ckr_store_log_info(ckr_store *s, ckr_log_info *out)
{
	MDB_txn *txn;
	MDB_val k = STORE_ID_KEY, v;
	if (!s || !out)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	int rc = ckr_st_txn_begin(s, false, &txn);
	if (rc)
		return rc;
	rc = get_u64(txn, s, &LAST_KEY, &out->last, NULL);
	if (rc == 0)
		rc = get_u64(txn, s, &SHIPPED_KEY, &out->shipped, &out->registered);
	if (rc == 0)
		rc = first_entry(txn, s, &out->first);
	if (rc == 0 && out->first == 0)
		out->first = out->last + 1;
	if (rc == 0 && mdb_get(txn, s->dbi[CKR_DB_META], &k, &v) == 0 && v.mv_size == 16)
		memcpy(out->store_id, v.mv_data, 16);
	MDB_val sk = { 7, "segment" };
	if (rc == 0 && mdb_get(txn, s->dbi[CKR_DB_META], &sk, &v) == 0 &&
	    v.mv_size <= CKR_NAME_MAX) {
		memcpy(out->segment, v.mv_data, v.mv_size);
		out->segment[v.mv_size] = '\0';
	}
	ckr_st_txn_abort(s, txn);
	return rc;
}
