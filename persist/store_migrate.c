/*
 * store_migrate.c — schema 1 (the first round) → schema 2 → schema 3, in
 * place, inside the flusher's opening write transaction: all of it or none
 * of it.
 *
 * 2 → 3 (the change log, persist/changelog.c): the `changes` database
 * (created empty by the caller's open), meta `store_id` (16 random bytes)
 * and `log_last` = 0, schema = 3. Nothing else changes: run records keep
 * version 2 (flag bits 2 and 3, moved and imported, are new and 0; bit 1 is
 * "being removed", retention.c).
 *
 * 1 → 2:
 *
 *   runs     record version 1 (96-byte header) → version 2 (136 bytes): the
 *            owner nonce, pid namespace and writer id are 0 (unknown: no
 *            writer of the old code can push into a layout-2 segment, so
 *            such a run continues only through a claim, which names a new
 *            writer); prefix_seq is computed from the run's rows.
 *   owners   key u64 BE token → u64 BE token | u64 BE nonce 0 (the old
 *            "drained" owners become ended identities of nonce 0).
 *   set_aside, rejections: created empty (by the caller's open_dbs).
 *   meta     schema = 2. The segment binding is made by the next flusher.
 *   events   rows stay as they are: event version 1 decodes (writer 0).
 */
#include "persist/changelog.h"
#include "persist/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A growable list of keys copied out of a cursor walk. */
typedef struct keylist {
	uint8_t (*k)[CKR_RUN_ID_MAX];
	uint8_t *len;
	size_t n, cap;
} keylist;

static int keys_add(keylist *l, const void *k, size_t n)
{
	if (n > CKR_RUN_ID_MAX)
		return CKR_ECORRUPT;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *a = realloc(l->k, cap * sizeof *l->k);
		if (!a)
			return -ENOMEM;
		l->k = a;
		void *b = realloc(l->len, cap);
		if (!b)
			return -ENOMEM;
		l->len = b;
		l->cap = cap;
	}
	memcpy(l->k[l->n], k, n);
	l->len[l->n++] = (uint8_t)n;
	return 0;
}

static void keys_free(keylist *l)
{
	free(l->k);
	free(l->len);
}

static int collect_keys(MDB_txn *txn, MDB_dbi dbi, keylist *l)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, dbi, &c);

	if (rc)
		return ckr_st_err(rc);
	int err = 0;
	while (!err && (rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0)
		err = keys_add(l, k.mv_data, k.mv_size);
	mdb_cursor_close(c);
	if (err)
		return err;
	return rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

static int migrate_run(MDB_txn *txn, ckr_store *s, const uint8_t *id,
		       size_t id_len, ckr_buf *copy, ckr_buf *tmp)
{
	MDB_val k = { id_len, (void *)id }, v;
	ckr_rec r;
	int rc = mdb_get(txn, s->dbi[CKR_DB_RUNS], &k, &v);

	if (rc)
		return ckr_st_err(rc);
	rc = ckr_st_buf_reserve(copy, v.mv_size);
	if (rc)
		return rc;
	memcpy(copy->p, v.mv_data, v.mv_size);
	rc = ckr_st_rec_decode_v1(copy->p, v.mv_size, &r);
	if (rc)
		return rc;
	r.prefix_seq = ckr_st_extend_prefix(txn, s, id, id_len, 0);
	if (r.prefix_seq > r.last_seq)
		r.last_seq = r.prefix_seq;
	return ckr_st_rec_put(txn, s, id, id_len, &r, tmp);
}

static int migrate_runs(MDB_txn *txn, ckr_store *s)
{
	keylist l = { 0 };
	ckr_buf copy = { 0 }, tmp = { 0 };
	int rc = collect_keys(txn, s->dbi[CKR_DB_RUNS], &l);

	for (size_t i = 0; rc == 0 && i < l.n; i++)
		rc = migrate_run(txn, s, l.k[i], l.len[i], &copy, &tmp);
	keys_free(&l);
	free(copy.p);
	free(tmp.p);
	return rc;
}

static int migrate_owners(MDB_txn *txn, ckr_store *s)
{
	MDB_dbi dbi = s->dbi[CKR_DB_OWNERS];
	keylist l = { 0 };
	int rc = collect_keys(txn, dbi, &l);

	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		if (l.len[i] != 8) {
			rc = CKR_ECORRUPT;
			break;
		}
		uint8_t kb[16], vb[8];
		ckr_identity id = { .token = ckr_st_get_be64(l.k[i]), .nonce = 0 };
		MDB_val ok = { 8, l.k[i] }, nk = { sizeof kb, kb }, v;
		rc = ckr_st_err(mdb_get(txn, dbi, &ok, &v));
		if (rc)
			break;
		memcpy(vb, v.mv_data, v.mv_size == 8 ? 8 : 0);
		if (v.mv_size != 8)
			memset(vb, 0, sizeof vb);
		rc = ckr_st_err(mdb_del(txn, dbi, &ok, NULL));
		ckr_st_owner_key(kb, &id);
		MDB_val nv = { sizeof vb, vb };
		if (rc == 0)
			rc = ckr_st_err(mdb_put(txn, dbi, &nk, &nv, 0));
	}
	keys_free(&l);
	return rc;
}

int ckr_st_migrate_1_to_2(MDB_txn *txn, ckr_store *s)
{
	int rc = migrate_runs(txn, s);

	if (rc == 0)
		rc = migrate_owners(txn, s);
	if (rc == 0)
		rc = ckr_st_err(ckr_st_put_u32(txn, s->dbi[CKR_DB_META], "schema", 2));
	return rc;
}

int ckr_st_migrate_2_to_3(MDB_txn *txn, ckr_store *s)
{
	int rc = ckr_clog_init_meta(txn, s);
	if (rc == 0)
		rc = ckr_st_err(ckr_st_put_u32(txn, s->dbi[CKR_DB_META], "schema", 3));
	return rc;
}
