/*
 * store_admin.c — the operator's actions on runs (ckring-admin): fail a
 * running run, retry a failed one, export a run and import it into another
 * store. Each is ONE LMDB write (or read) transaction, so LMDB's single
 * writer orders it against the flusher's batches and recoverers' claims,
 * and a crash of any process leaves the run as it was or as the action made
 * it (ring/PROTOCOL.md, "Operator actions"; pruning is retention.c).
 *
 * Fencing: an action changes the run record only, in the transaction that
 * read it; the flusher's acceptance rule (store_batch.c) then decides every
 * later event against the record it finds in its own transaction:
 *   fail    state FAILED: events of the writer it had are after_end;
 *   retry   writer 0 and a fresh owner identity: the old writer's events
 *           are foreign; the next claim (K1..K3) names a new writer and
 *           incarnation;
 *   import  writer 0, owner token 0 with a fresh nonce: nothing of this
 *           host can write to it before a claim.
 * The fresh identity of retry and import is written to `owners` in the same
 * transaction (it is ended: no process has it), so K1 accepts the claim
 * without marking any real process image ended (which would make that
 * process's other runs claimable while it writes them).
 *
 * The change log (FORMAT.md, `changes`): each write action logs its change
 * in its own transaction, so a shipper sees it exactly once: fail a FINISH
 * (failed, with the error), retry a RETRY, import a RUN (the record; the
 * reader finds the rows it wrote). Export writes nothing.
 *
 * Concurrency: any thread of any process, concurrently with the flusher;
 * -EBUSY while the calling thread holds a batch open (LMDB allows one write
 * transaction per thread).
 */
#include "persist/changelog.h"
#include "persist/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define REASON_MAX 4000
#define MAPFULL_RETRIES 4
static const char OPERATOR_PREFIX[] = "failed by operator: ";

static bool id_ok(const void *id, size_t id_len)
{
	return id && id_len > 0 && id_len <= CKR_RUN_ID_MAX;
}


static int random_nonce(uint64_t *n)
{
	do {
		if (getrandom(n, sizeof *n, 0) != (ssize_t)sizeof *n)
			return -errno;
	} while (*n == 0);
	return 0;
}

/* A new owner identity (token kept for display, fresh nonce), recorded as
 * ended in `owners`: K1 then finds the run's owner ended. */
static int ended_identity(MDB_txn *txn, const ckr_store *s, uint64_t token,
			  uint64_t pidns, ckr_identity *out)
{
	uint8_t kb[16], vb[8];
	MDB_val k = { sizeof kb, kb }, v = { sizeof vb, vb };
	int rc = random_nonce(&out->nonce);

	if (rc)
		return rc;
	out->token = token;
	out->pidns = pidns;
	ckr_st_owner_key(kb, out);
	ckr_st_put_le(vb, ckr_st_now_ns(), 8);
	return ckr_st_err(mdb_put(txn, s->dbi[CKR_DB_OWNERS], &k, &v, 0));
}

/*
 * Run fn(txn, s, ctx) in one write transaction and commit it; a full map is
 * grown and the whole transaction redone (a few times).
 * @return fn's error (nothing written), or the commit's.
 */
static int in_write_txn(ckr_store *s, int (*fn)(MDB_txn *, ckr_store *, void *),
			void *ctx)
{
	int rc = ckr_st_may_write(s);
	for (int tries = 0; rc == 0; tries++) {
		MDB_txn *txn;
		rc = ckr_st_txn_begin(s, true, &txn);
		if (rc)
			break;
		rc = fn(txn, s, ctx);
		if (rc)
			ckr_st_txn_abort(s, txn);
		else
			rc = ckr_st_txn_commit(s, txn);
		if (rc != CKR_STORE_MAPFULL || tries == MAPFULL_RETRIES)
			break;
		rc = ckr_store_grow(s);
	}
	return ckr_st_public_err(rc);
}

/* After an action: the run as it is now (out may be NULL). */
static int report(ckr_store *s, const void *id, size_t id_len, ckr_run_info *out,
		  int rc)
{
	if (rc == 0 && out)
		rc = ckr_store_get(s, id, id_len, out);
	return rc;
}

/* ---- fail ---- */

typedef struct fail_ctx {
	const uint8_t *id;
	size_t id_len;
	const char *reason;
} fail_ctx;

static int fail_in(MDB_txn *txn, ckr_store *s, void *p)
{
	fail_ctx *c = p;
	ckr_buf rec = { 0 }, tmp = { 0 }, err = { 0 };
	size_t rlen = strlen(c->reason), plen = sizeof OPERATOR_PREFIX - 1;
	ckr_rec r;
	int rc = ckr_st_rec_get(txn, s, c->id, c->id_len, &r, &rec);

	if (rc == 0 && r.state != CKR_RUN_RUNNING)
		rc = CKR_ETERMINAL;
	if (rc == 0)
		rc = ckr_st_buf_reserve(&err, plen + rlen);
	if (rc == 0) {
		memcpy(err.p, OPERATOR_PREFIX, plen);
		memcpy(err.p + plen, c->reason, rlen);
		r.state = CKR_RUN_FAILED;
		r.updated_ns = r.finished_ns = ckr_st_now_ns();
		r.error = err.p;
		r.error_len = plen + rlen;
		/* writer, owner and incarnation stay: that writer's later
		 * events meet a FAILED run (after_end) and are reported. */
		rc = ckr_st_rec_put(txn, s, c->id, c->id_len, &r, &tmp);
	}
	if (rc == 0)
		rc = ckr_clog_put_finish(txn, s, c->id, c->id_len, &r);
	free(rec.p);
	free(tmp.p);
	free(err.p);
	return rc;
}

int ckr_store_fail(ckr_store *s, const void *id, size_t id_len, const char *reason,
		   ckr_run_info *out)
{
	if (!id_ok(id, id_len) || !reason || !*reason || strlen(reason) > REASON_MAX)
		return -EINVAL;
	fail_ctx c = { id, id_len, reason };
	return report(s, id, id_len, out, in_write_txn(s, fail_in, &c));
}

/* ---- retry ---- */

typedef struct retry_ctx {
	const uint8_t *id;
	size_t id_len;
} retry_ctx;

static int retry_in(MDB_txn *txn, ckr_store *s, void *p)
{
	retry_ctx *c = p;
	ckr_buf rec = { 0 }, tmp = { 0 };
	ckr_rec r;
	int rc = ckr_st_rec_get(txn, s, c->id, c->id_len, &r, &rec);

	if (rc == 0 && (r.flags & CKR_REC_REMOVING))
		rc = -ENOENT; /* being pruned: its rows are going */
	else if (rc == 0 && (r.flags & CKR_REC_MOVED))
		rc = CKR_EMOVED; /* another host drives it: never again here */
	else if (rc == 0 && r.state == CKR_RUN_RUNNING)
		rc = -EALREADY;
	else if (rc == 0 && r.state == CKR_RUN_COMPLETED)
		rc = CKR_ETERMINAL;
	if (rc == 0)
		rc = ended_identity(txn, s, r.owner.token, r.owner.pidns, &r.owner);
	if (rc == 0) {
		r.state = CKR_RUN_RUNNING;
		r.attempts = 0;
		r.writer = 0; /* only the next claim names a writer (K3) */
		r.finished_ns = 0;
		r.updated_ns = ckr_st_now_ns();
		r.error = NULL;
		r.error_len = 0;
		rc = ckr_st_rec_put(txn, s, c->id, c->id_len, &r, &tmp);
	}
	if (rc == 0)
		rc = ckr_clog_put_retry(txn, s, c->id, c->id_len, &r);
	free(rec.p);
	free(tmp.p);
	return rc;
}

int ckr_store_retry(ckr_store *s, const void *id, size_t id_len, ckr_run_info *out)
{
	if (!id_ok(id, id_len))
		return -EINVAL;
	retry_ctx c = { id, id_len };
	return report(s, id, id_len, out, in_write_txn(s, retry_in, &c));
}

/* ---- export ---- */

void ckr_export_free(ckr_export *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n_events; i++)
		free(e->events[i].data);
	for (size_t i = 0; i < e->n_set_aside; i++)
		free(e->set_aside[i].data);
	free(e->events);
	free(e->set_aside);
	free(e->label);
	free(e->meta);
	free(e->error);
	free(e);
}

static int dup_bytes(uint8_t **dst, const void *src, size_t n)
{
	*dst = malloc(n ? n : 1);
	if (!*dst)
		return -ENOMEM;
	if (n)
		memcpy(*dst, src, n);
	return 0;
}

/* Append a copy of row (seq, incarnation, bytes) to *v (n used, *cap). */
static int add_row(ckr_export_row **v, size_t *n, size_t *cap, uint64_t seq,
		   uint32_t inc, const MDB_val *val)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		ckr_export_row *p = realloc(*v, c * sizeof *p);
		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = c;
	}
	ckr_export_row *r = &(*v)[*n];
	r->seq = seq;
	r->incarnation = inc;
	r->size = val->mv_size;
	int rc = dup_bytes(&r->data, val->mv_data, val->mv_size);
	if (rc == 0)
		(*n)++;
	return rc;
}

/* Every row of the run in db (events: key id|seq; set_aside: id|inc|seq). */
static int export_rows(MDB_txn *txn, const ckr_store *s, enum ckr_db db,
		       const uint8_t *id, size_t id_len, ckr_export_row **v, size_t *n)
{
	uint8_t kb[CKR_ASIDE_KEY_MAX];
	size_t pre = 1 + id_len, cap = 0, want = pre + (db == CKR_DB_EVENTS ? 8 : 12);
	MDB_val k = { pre, kb }, val;
	MDB_cursor *c;
	ckr_event ev;
	int rc = mdb_cursor_open(txn, s->dbi[db], &c);

	if (rc)
		return ckr_st_err(rc);
	kb[0] = (uint8_t)id_len;
	memcpy(kb + 1, id, id_len);
	int err = 0;
	for (rc = mdb_cursor_get(c, &k, &val, MDB_SET_RANGE); rc == 0 && !err;
	     rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
		const uint8_t *key = k.mv_data;
		if (k.mv_size < pre || memcmp(key, kb, pre))
			break;
		if (k.mv_size != want || ckr_event_decode(val.mv_data, val.mv_size, &ev)) {
			err = CKR_ECORRUPT;
			break;
		}
		uint64_t seq = ckr_st_get_be64(key + want - 8);
		err = add_row(v, n, &cap, seq, ev.incarnation, &val);
	}
	mdb_cursor_close(c);
	if (err)
		return err;
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

static int export_in(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		     size_t id_len, ckr_export *e)
{
	ckr_rec r;
	int rc = ckr_st_rec_get(txn, s, id, id_len, &r, NULL);

	if (rc == 0 && (r.flags & CKR_REC_REMOVING))
		rc = -ENOENT;
	if (rc)
		return rc;
	memcpy(e->id, id, id_len);
	e->id_len = id_len;
	e->state = (ckr_run_state)r.state;
	e->kind = (ckr_kind)r.kind;
	e->incarnation = r.incarnation;
	e->attempts = r.attempts;
	e->cleared = (r.flags & CKR_REC_CLEARED) != 0;
	e->created_ns = r.created_ns;
	e->updated_ns = r.updated_ns;
	e->finished_ns = r.finished_ns;
	e->last_seq = r.last_seq;
	e->label_len = r.label_len;
	e->meta_len = r.meta_len;
	e->error_len = r.error_len;
	rc = dup_bytes(&e->label, r.label, r.label_len);
	if (rc == 0)
		rc = dup_bytes(&e->meta, r.meta, r.meta_len);
	if (rc == 0)
		rc = dup_bytes(&e->error, r.error, r.error_len);
	if (rc == 0)
		rc = export_rows(txn, s, CKR_DB_EVENTS, id, id_len, &e->events, &e->n_events);
	if (rc == 0)
		rc = export_rows(txn, s, CKR_DB_SET_ASIDE, id, id_len, &e->set_aside,
				 &e->n_set_aside);
	return rc;
}

int ckr_store_export(ckr_store *s, const void *id, size_t id_len, ckr_export **out)
{
	MDB_txn *txn;

	if (!s || !id_ok(id, id_len) || !out)
		return -EINVAL;
	ckr_export *e = calloc(1, sizeof *e);
	if (!e)
		return -ENOMEM;
	int rc = ckr_st_txn_begin(s, false, &txn);
	if (rc == 0) {
		rc = export_in(txn, s, id, id_len, e);
		ckr_st_txn_abort(s, txn);
	}
	if (rc) {
		ckr_export_free(e);
		return rc;
	}
	*out = e;
	return 0;
}

/* ---- import ---- */

/* The record fields of an export, before its rows are looked at. */
static int import_check_record(const ckr_export *in)
{
	if (!id_ok(in->id, in->id_len) || in->id_len > sizeof in->id ||
	    in->state < CKR_RUN_RUNNING || in->state > CKR_RUN_COMPLETED ||
	    in->kind < CKR_KIND_SINGLE_LOOP || in->kind > CKR_KIND_MULTI_PHASE ||
	    in->incarnation == 0 || in->label_len > CKR_LABEL_MAX ||
	    in->error_len > CKR_REC_ERROR_MAX || in->meta_len > UINT32_MAX ||
	    (in->label_len && !in->label) || (in->meta_len && !in->meta) ||
	    (in->error_len && !in->error) || (in->n_events && !in->events) ||
	    (in->n_set_aside && !in->set_aside))
		return -EINVAL;
	if (in->cleared && (in->state != CKR_RUN_COMPLETED || in->n_events ||
			    in->n_set_aside))
		return -EINVAL;
	return 0;
}

/* Does row decode, name run id, carry seq (and incarnation), and is it of
 * a type that may stand at that place? */
static bool row_ok(const ckr_export *in, const ckr_export_row *row, bool aside)
{
	ckr_event ev;
	ckr_event_type data = in->kind == CKR_KIND_MULTI_PHASE ? CKR_EV_PHASE
							    : CKR_EV_MESSAGE;

	if (!row->data || !row->size ||
	    ckr_event_decode(row->data, row->size, &ev) != 0 || ev.seq != row->seq ||
	    ev.id_len != in->id_len || memcmp(ev.id, in->id, in->id_len) != 0)
		return false;
	if (aside)
		return ev.type == data && ev.incarnation == row->incarnation;
	return row->seq == 0 ? ev.type == CKR_EV_BEGIN : ev.type == data;
}

/* Check every row; fill r's counts from them. */
static int import_check_rows(const ckr_export *in, ckr_rec *r)
{
	uint64_t prev = 0, expect = 1;
	bool prefix = true;

	for (size_t i = 0; i < in->n_events; i++) {
		const ckr_export_row *row = &in->events[i];
		if (!row_ok(in, row, false) || (i > 0 && row->seq <= prev))
			return CKR_ECORRUPT;
		prev = row->seq;
		if (row->seq > 0 && prefix && row->seq == expect)
			expect++;
		else if (row->seq > 0)
			prefix = false;
		r->events++;
		r->bytes += row->size;
	}
	if (!in->cleared && in->state != CKR_RUN_COMPLETED &&
	    (in->n_events == 0 || in->events[0].seq != 0))
		return CKR_ECORRUPT; /* a kept run has its begin at seq 0 */
	for (size_t i = 0; i < in->n_set_aside; i++)
		if (!row_ok(in, &in->set_aside[i], true))
			return CKR_ECORRUPT;
	r->set_aside = in->n_set_aside;
	r->prefix_seq = expect - 1;
	r->last_seq = in->cleared ? in->last_seq : prev;
	if (r->prefix_seq > r->last_seq)
		r->prefix_seq = r->last_seq;
	return 0;
}

static int put_rows(MDB_txn *txn, const ckr_store *s, const ckr_export *in)
{
	uint8_t kb[CKR_ASIDE_KEY_MAX];
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < in->n_events; i++) {
		const ckr_export_row *row = &in->events[i];
		MDB_val k = { ckr_st_event_key(kb, in->id, in->id_len, row->seq), kb };
		MDB_val v = { row->size, row->data };
		rc = mdb_put(txn, s->dbi[CKR_DB_EVENTS], &k, &v, MDB_NOOVERWRITE);
	}
	for (size_t i = 0; rc == 0 && i < in->n_set_aside; i++) {
		const ckr_export_row *row = &in->set_aside[i];
		MDB_val k = { ckr_st_aside_key(kb, in->id, in->id_len, row->incarnation,
					       row->seq), kb };
		MDB_val v = { row->size, row->data };
		rc = mdb_put(txn, s->dbi[CKR_DB_SET_ASIDE], &k, &v, MDB_NOOVERWRITE);
	}
	/* A row without a record would be damage: refuse rather than merge. */
	return rc == MDB_KEYEXIST ? CKR_ECORRUPT : ckr_st_err(rc);
}

typedef struct import_ctx {
	const ckr_export *in;
	ckr_rec r;       /* counts filled by import_check_rows */
} import_ctx;

static int import_in(MDB_txn *txn, ckr_store *s, void *p)
{
	import_ctx *c = p;
	const ckr_export *in = c->in;
	MDB_val k = { in->id_len, (void *)in->id }, v;
	ckr_buf tmp = { 0 };
	ckr_rec r = c->r;
	int rc = mdb_get(txn, s->dbi[CKR_DB_RUNS], &k, &v);

	if (rc == 0)
		return -EEXIST;
	if (rc != MDB_NOTFOUND)
		return ckr_st_err(rc);
	rc = put_rows(txn, s, in);
	if (rc == 0 && in->state == CKR_RUN_RUNNING)
		rc = ended_identity(txn, s, 0, 0, &r.owner);
	if (rc == 0)
		rc = ckr_st_rec_put(txn, s, in->id, in->id_len, &r, &tmp);
	if (rc == 0)
		rc = ckr_clog_put_run(txn, s, in->id, in->id_len, &r);
	free(tmp.p);
	return rc;
}

int ckr_store_import(ckr_store *s, const ckr_export *in, ckr_run_info *out)
{
	import_ctx c = { .in = in };
	int rc;

	if (!in)
		return -EINVAL;
	rc = import_check_record(in);
	if (rc == 0)
		rc = import_check_rows(in, &c.r);
	if (rc)
		return rc;
	ckr_rec *r = &c.r;
	r->state = (uint8_t)in->state;
	r->kind = (uint8_t)in->kind;
	r->incarnation = in->incarnation;
	r->attempts = in->attempts;
	r->flags = in->cleared ? CKR_REC_CLEARED : 0;
	r->created_ns = in->created_ns;
	r->updated_ns = ckr_st_now_ns();
	r->finished_ns = in->state == CKR_RUN_RUNNING ? 0 : in->finished_ns;
	r->writer = 0; /* only a claim names a writer (K3) */
	r->label = in->label;
	r->label_len = in->label_len;
	r->meta = in->meta;
	r->meta_len = in->meta_len;
	r->error = in->error;
	r->error_len = in->error_len;
	/* owner: token 0 (no process of this host), its identity ended in
	 * import_in; epoch all zero (none recorded). */
	return report(s, in->id, in->id_len, out, in_write_txn(s, import_in, &c));
}
