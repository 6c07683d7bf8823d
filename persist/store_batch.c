/*
 * store_batch.c — the flusher's write batch: one LMDB write transaction that
 * applies decoded events through the run state machine (spec §2), keeps
 * quarantined records, drained owners and counters, and moves the lanes'
 * cursors — so events and positions become durable together or not at all.
 *
 * State machine (ckr_batch_apply):
 *   BEGIN    no record → RUNNING, incarnation 1, owner from the event, the
 *            begin row stored at seq 0; any record (even a completed
 *            tombstone) → DUP_BEGIN. A begin whose incarnation is not 1 or
 *            whose seq is not 0 is malformed: STALE, counted "bad_begin".
 *   MESSAGE  (single-loop) / PHASE (multi-phase); the other kind is counted
 *            "bad_kind" and reported STALE. Then: incarnation must be the
 *            run's (else STALE), run RUNNING (else AFTER_END), (run, seq) new
 *            (else DUP_SEQ); stored, and the run's events/last_seq/bytes move.
 *   COMPLETE → COMPLETED; events deleted now unless keep_completed_s > 0
 *            (then ckr_store_prune deletes them). The record stays as a
 *            tombstone so a late duplicate begin cannot resurrect the run.
 *   FAIL     → FAILED with its error (cut to 4 KiB); events kept.
 *   Unknown run → ORPHAN.
 * Each ignored event is counted by the batch itself under the names
 * "bad_begin", "dup_begin", "bad_kind", "stale", "orphan", "after_end",
 * "dup_seq"; stored events under "stored"; ckr_batch_quarantine() counts
 * "quarantined". The caller must not count these again. The per-run byte
 * limit is enforced by the client (the store has no limit to check), so
 * CKR_APPLY_OVER_LIMIT is never returned.
 *
 * Epoch stamping: a run records the segment epoch its owner last wrote
 * under. A batch starts from the store's current epoch; when
 * ckr_batch_set_cursor() moves to another epoch, the runs this batch already
 * wrote are restamped, since all of a batch's events come from one segment.
 *
 * Errors: a full map is CKR_STORE_MAPFULL (store.h: abort, ckr_store_grow,
 * replay the batch), a full disk at commit -ENOSPC. Any error kills the
 * batch (LMDB's transaction is unusable after MDB_MAP_FULL): later calls
 * return the same error; only commit/abort free it.
 * Concurrency: one batch per store at a time, used by one thread.
 */
#include "persist/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shm/proc.h"

#define QUARANTINE_RAW_MAX (64u << 10)
#define QUARANTINE_REASON_MAX 1024
#define QUARANTINE_HEADER 32
#define COUNTER_NAME_MAX 255

enum counter {
	C_STORED,
	C_BAD_BEGIN,
	C_DUP_BEGIN,
	C_BAD_KIND,
	C_STALE,
	C_ORPHAN,
	C_AFTER_END,
	C_DUP_SEQ,
	C_QUARANTINED,
	C_COUNT
};

static const char *const counter_names[C_COUNT] = {
	[C_STORED] = "stored",       [C_BAD_BEGIN] = "bad_begin",
	[C_DUP_BEGIN] = "dup_begin", [C_BAD_KIND] = "bad_kind",
	[C_STALE] = "stale",         [C_ORPHAN] = "orphan",
	[C_AFTER_END] = "after_end", [C_DUP_SEQ] = "dup_seq",
	[C_QUARANTINED] = "quarantined",
};

/* A run this batch wrote (for restamping its epoch). */
typedef struct touched {
	uint8_t len;
	uint8_t id[CKR_RUN_ID_MAX];
} touched;

struct ckr_batch {
	ckr_store *s;
	MDB_txn *txn;
	int err;                          /* first error: the batch is dead */
	uint64_t now_ns;                  /* one timestamp for the batch */
	uint8_t epoch[CKR_EPOCH_BYTES];   /* the epoch runs are stamped with */
	bool epoch_set;
	uint64_t counts[C_COUNT];         /* added to `counters` at commit */
	ckr_buf rec, tmp;                 /* record copy, record encoding */
	touched *runs;
	size_t n_runs, cap_runs;
};

static void batch_free(ckr_batch *b)
{
	atomic_store(&b->s->batch_open, false);
	free(b->rec.p);
	free(b->tmp.p);
	free(b->runs);
	free(b);
}

/* Record the first error; the transaction must not be used any more. */
static int batch_fail(ckr_batch *b, int rc)
{
	if (!b->err)
		b->err = rc;
	return b->err;
}

int ckr_batch_begin(ckr_store *s, ckr_batch **out)
{
	ckr_batch *b;
	int rc;

	if (!s || !out)
		return -EINVAL;
	if (s->read_only)
		return -EROFS;
	if (atomic_exchange(&s->batch_open, true))
		return -EBUSY;
	b = calloc(1, sizeof *b);
	if (!b) {
		rc = -ENOMEM;
		goto fail_flag;
	}
	b->s = s;
	b->now_ns = ckr_st_now_ns();
	rc = ckr_st_txn_begin(s, true, &b->txn);
	if (rc)
		goto fail_free;
	rc = ckr_st_current_epoch(b->txn, s, b->epoch, &b->epoch_set);
	if (rc)
		goto fail_txn;
	*out = b;
	return 0;

fail_txn:
	ckr_st_txn_abort(s, b->txn);
fail_free:
	free(b);
fail_flag:
	atomic_store(&s->batch_open, false);
	return rc;
}

/* ---- the state machine ---- */

static int ignored(ckr_batch *b, enum counter c, ckr_apply code, ckr_apply *w)
{
	b->counts[c]++;
	*w = code;
	return 0;
}

/* Remember that this batch wrote run id (consecutive repeats folded). */
static int touch(ckr_batch *b, const uint8_t *id, size_t id_len)
{
	touched *t = b->n_runs ? &b->runs[b->n_runs - 1] : NULL;

	if (t && t->len == id_len && memcmp(t->id, id, id_len) == 0)
		return 0;
	if (b->n_runs == b->cap_runs) {
		size_t cap = b->cap_runs ? b->cap_runs * 2 : 64;
		touched *p = realloc(b->runs, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		b->runs = p;
		b->cap_runs = cap;
	}
	t = &b->runs[b->n_runs++];
	t->len = (uint8_t)id_len;
	memcpy(t->id, id, id_len);
	return 0;
}

/* Put the event row (run, seq) → raw. @return an LMDB code (KEYEXIST). */
static int put_event(ckr_batch *b, const ckr_event *ev, const void *raw,
		     size_t raw_len, unsigned flags)
{
	uint8_t kb[CKR_EVENT_KEY_MAX];
	MDB_val k = { ckr_st_event_key(kb, ev->id, ev->id_len, ev->seq), kb };
	MDB_val v = { raw_len, (void *)raw };

	return mdb_put(b->txn, b->s->dbi[CKR_DB_EVENTS], &k, &v, flags);
}

/* Store the run record r and note that the batch wrote it. */
static int put_run(ckr_batch *b, const ckr_event *ev, const ckr_rec *r)
{
	int rc = ckr_st_rec_put(b->txn, b->s, ev->id, ev->id_len, r, &b->tmp);
	return rc ? rc : touch(b, ev->id, ev->id_len);
}

static int apply_begin(ckr_batch *b, const ckr_event *ev, const void *raw,
		       size_t raw_len, ckr_apply *w)
{
	MDB_val k = { ev->id_len, (void *)ev->id }, v;
	ckr_rec r;
	int rc;

	if (ev->incarnation != 1 || ev->seq != 0)
		return ignored(b, C_BAD_BEGIN, CKR_APPLY_STALE, w);
	rc = mdb_get(b->txn, b->s->dbi[CKR_DB_RUNS], &k, &v);
	if (rc == 0)
		return ignored(b, C_DUP_BEGIN, CKR_APPLY_DUP_BEGIN, w);
	if (rc != MDB_NOTFOUND)
		return ckr_st_err(rc);
	memset(&r, 0, sizeof r);
	r.state = CKR_RUN_RUNNING;
	r.kind = (uint8_t)ev->u.begin.kind;
	r.incarnation = 1;
	r.owner = ckr_token_make((pid_t)ev->u.begin.owner_pid,
				 ev->u.begin.owner_start);
	r.created_ns = r.updated_ns = b->now_ns;
	r.events = 1;
	r.bytes = raw_len;
	memcpy(r.epoch, b->epoch, CKR_EPOCH_BYTES);
	r.label = (const uint8_t *)ev->u.begin.label;
	r.label_len = ev->u.begin.label_len;
	r.meta = ev->u.begin.meta;
	r.meta_len = ev->u.begin.meta_len;
	/* No row can be left at (run, 0) without a record: overwrite. */
	rc = ckr_st_err(put_event(b, ev, raw, raw_len, 0));
	if (rc == 0)
		rc = put_run(b, ev, &r);
	if (rc == 0)
		b->counts[C_STORED]++;
	return rc;
}

/* Load the run an event names and check it may take the event: exists,
 * same incarnation, still running. *ok false: ignored (*w says why). */
static int target_run(ckr_batch *b, const ckr_event *ev, ckr_rec *r,
		      ckr_apply *w, bool *ok)
{
	int rc = ckr_st_rec_get(b->txn, b->s, ev->id, ev->id_len, r, &b->rec);

	*ok = false;
	if (rc == -ENOENT)
		return ignored(b, C_ORPHAN, CKR_APPLY_ORPHAN, w);
	if (rc)
		return rc;
	if (ev->type == CKR_EV_MESSAGE || ev->type == CKR_EV_PHASE) {
		ckr_kind want = ev->type == CKR_EV_MESSAGE ? CKR_KIND_SINGLE_LOOP
							   : CKR_KIND_MULTI_PHASE;
		if (r->kind != want)
			return ignored(b, C_BAD_KIND, CKR_APPLY_STALE, w);
	}
	if (ev->incarnation != r->incarnation)
		return ignored(b, C_STALE, CKR_APPLY_STALE, w);
	if (r->state != CKR_RUN_RUNNING)
		return ignored(b, C_AFTER_END, CKR_APPLY_AFTER_END, w);
	*ok = true;
	return 0;
}

static int apply_data(ckr_batch *b, const ckr_event *ev, const void *raw,
		      size_t raw_len, ckr_apply *w)
{
	ckr_rec r;
	bool ok;
	int rc = target_run(b, ev, &r, w, &ok);

	if (rc || !ok)
		return rc;
	rc = put_event(b, ev, raw, raw_len, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST)
		return ignored(b, C_DUP_SEQ, CKR_APPLY_DUP_SEQ, w);
	if (rc)
		return ckr_st_err(rc);
	r.events++;
	if (ev->seq > r.last_seq)
		r.last_seq = ev->seq;
	r.bytes += raw_len;
	r.updated_ns = b->now_ns;
	memcpy(r.epoch, b->epoch, CKR_EPOCH_BYTES);
	rc = put_run(b, ev, &r);
	if (rc == 0)
		b->counts[C_STORED]++;
	return rc;
}

static int apply_end(ckr_batch *b, const ckr_event *ev, ckr_apply *w)
{
	ckr_rec r;
	bool ok;
	int rc = target_run(b, ev, &r, w, &ok);

	if (rc || !ok)
		return rc;
	r.updated_ns = r.finished_ns = b->now_ns;
	if (ev->type == CKR_EV_FAIL) {
		r.state = CKR_RUN_FAILED;
		r.error = (const uint8_t *)ev->u.fail.error;
		r.error_len = ev->u.fail.len < CKR_REC_ERROR_MAX ? ev->u.fail.len
								 : CKR_REC_ERROR_MAX;
	} else {
		r.state = CKR_RUN_COMPLETED;
		if (b->s->keep_completed_s == 0)
			rc = ckr_st_rec_clear(b->txn, b->s, ev->id, ev->id_len, &r);
	}
	return rc ? rc : put_run(b, ev, &r);
}

int ckr_batch_apply(ckr_batch *b, const ckr_event *ev, const void *raw,
		    size_t raw_len, ckr_apply *what)
{
	ckr_apply w = CKR_APPLY_STORED;
	int rc;

	if (!b || !ev || !raw || raw_len == 0 || !ev->id || ev->id_len == 0 ||
	    ev->id_len > CKR_RUN_ID_MAX)
		return -EINVAL;
	if (b->err)
		return b->err;
	switch (ev->type) {
	case CKR_EV_BEGIN:
		rc = apply_begin(b, ev, raw, raw_len, &w);
		break;
	case CKR_EV_MESSAGE:
	case CKR_EV_PHASE:
		rc = apply_data(b, ev, raw, raw_len, &w);
		break;
	case CKR_EV_COMPLETE:
	case CKR_EV_FAIL:
		rc = apply_end(b, ev, &w);
		break;
	default:
		return -EINVAL;
	}
	if (rc)
		return batch_fail(b, rc);
	if (what)
		*what = w;
	return 0;
}

/* ---- quarantine, cursors, owners, counters ---- */

/* The next quarantine key: one past the last. */
static int next_quarantine_key(ckr_batch *b, uint64_t *key)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(b->txn, b->s->dbi[CKR_DB_QUARANTINE], &c);

	if (rc)
		return ckr_st_err(rc);
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND) {
		*key = 1;
		return 0;
	}
	if (rc)
		return ckr_st_err(rc);
	if (k.mv_size != 8)
		return CKR_ECORRUPT;
	*key = ckr_st_get_be64(k.mv_data) + 1;
	return 0;
}

static int put_quarantine(ckr_batch *b, const char *reason, uint32_t lane,
			  uint64_t pos, const void *raw, size_t len)
{
	size_t rlen = strnlen(reason, QUARANTINE_REASON_MAX);
	size_t keep = len < QUARANTINE_RAW_MAX ? len : QUARANTINE_RAW_MAX;
	uint8_t kb[8];
	uint64_t key = 0;
	int rc = next_quarantine_key(b, &key);

	if (rc == 0)
		rc = ckr_st_buf_reserve(&b->tmp, QUARANTINE_HEADER + rlen + keep);
	if (rc)
		return rc;
	uint8_t *p = b->tmp.p;
	ckr_st_put_le(p, 1, 2);
	ckr_st_put_le(p + 2, rlen, 2);
	ckr_st_put_le(p + 4, lane, 4);
	ckr_st_put_le(p + 8, pos, 8);
	ckr_st_put_le(p + 16, b->now_ns, 8);
	ckr_st_put_le(p + 24, keep, 4);
	ckr_st_put_le(p + 28, len > UINT32_MAX ? UINT32_MAX : len, 4);
	memcpy(p + QUARANTINE_HEADER, reason, rlen);
	if (keep)
		memcpy(p + QUARANTINE_HEADER + rlen, raw, keep);
	ckr_st_put_be64(kb, key);
	MDB_val k = { sizeof kb, kb }, v = { QUARANTINE_HEADER + rlen + keep, p };
	rc = ckr_st_err(mdb_put(b->txn, b->s->dbi[CKR_DB_QUARANTINE], &k, &v, 0));
	if (rc == 0)
		b->counts[C_QUARANTINED]++;
	return rc;
}

int ckr_batch_quarantine(ckr_batch *b, const char *reason, uint32_t lane,
			 uint64_t pos, const void *raw, size_t len)
{
	if (!b || (len && !raw))
		return -EINVAL;
	if (b->err)
		return b->err;
	int rc = put_quarantine(b, reason ? reason : "", lane, pos, raw, len);
	return rc ? batch_fail(b, rc) : 0;
}

/* Re-stamp the runs this batch wrote with the batch's (new) epoch. */
static int restamp_runs(ckr_batch *b)
{
	for (size_t i = 0; i < b->n_runs; i++) {
		const touched *t = &b->runs[i];
		ckr_rec r;
		int rc = ckr_st_rec_get(b->txn, b->s, t->id, t->len, &r, &b->rec);
		if (rc == 0 && memcmp(r.epoch, b->epoch, CKR_EPOCH_BYTES) != 0) {
			memcpy(r.epoch, b->epoch, CKR_EPOCH_BYTES);
			rc = ckr_st_rec_put(b->txn, b->s, t->id, t->len, &r, &b->tmp);
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int set_epoch(ckr_batch *b, const uint8_t epoch[CKR_EPOCH_BYTES])
{
	MDB_val k = { 5, "epoch" }, v = { CKR_EPOCH_BYTES, (void *)epoch };
	int rc = ckr_st_err(mdb_put(b->txn, b->s->dbi[CKR_DB_META], &k, &v, 0));

	if (rc)
		return rc;
	memcpy(b->epoch, epoch, CKR_EPOCH_BYTES);
	b->epoch_set = true;
	return restamp_runs(b);
}

int ckr_batch_set_cursor(ckr_batch *b, const uint8_t epoch[CKR_EPOCH_BYTES],
			 uint32_t lane, uint64_t pos)
{
	uint8_t kb[CKR_EPOCH_BYTES + 4], vb[8];
	MDB_val k = { sizeof kb, kb }, v = { sizeof vb, vb };
	int rc;

	if (!b || !epoch)
		return -EINVAL;
	if (b->err)
		return b->err;
	memcpy(kb, epoch, CKR_EPOCH_BYTES);
	ckr_st_put_be32(kb + CKR_EPOCH_BYTES, lane);
	ckr_st_put_le(vb, pos, 8);
	rc = ckr_st_err(mdb_put(b->txn, b->s->dbi[CKR_DB_CURSORS], &k, &v, 0));
	if (rc == 0 &&
	    (!b->epoch_set || memcmp(b->epoch, epoch, CKR_EPOCH_BYTES) != 0))
		rc = set_epoch(b, epoch);
	return rc ? batch_fail(b, rc) : 0;
}

int ckr_batch_owner_drained(ckr_batch *b, uint64_t owner_token)
{
	uint8_t kb[8], vb[8];
	MDB_val k = { sizeof kb, kb }, v = { sizeof vb, vb };

	if (!b || owner_token == 0)
		return -EINVAL;
	if (b->err)
		return b->err;
	ckr_st_put_be64(kb, owner_token);
	ckr_st_put_le(vb, b->now_ns, 8);
	int rc = ckr_st_err(mdb_put(b->txn, b->s->dbi[CKR_DB_OWNERS], &k, &v, 0));
	return rc ? batch_fail(b, rc) : 0;
}

static int add_counter(ckr_batch *b, const char *name, uint64_t add)
{
	uint8_t vb[8];
	MDB_val k = { strlen(name), (void *)name }, v;
	uint64_t n = 0;
	int rc = mdb_get(b->txn, b->s->dbi[CKR_DB_COUNTERS], &k, &v);

	if (rc == 0 && v.mv_size == 8)
		n = ckr_st_get_le(v.mv_data, 8);
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return ckr_st_err(rc);
	ckr_st_put_le(vb, n + add, 8);
	v.mv_size = sizeof vb;
	v.mv_data = vb;
	return ckr_st_err(mdb_put(b->txn, b->s->dbi[CKR_DB_COUNTERS], &k, &v, 0));
}

int ckr_batch_count(ckr_batch *b, const char *name, uint64_t add)
{
	if (!b || !name || !*name || strlen(name) > COUNTER_NAME_MAX)
		return -EINVAL;
	if (b->err)
		return b->err;
	int rc = add ? add_counter(b, name, add) : 0;
	return rc ? batch_fail(b, rc) : 0;
}

/* ---- commit / abort ---- */

int ckr_batch_commit(ckr_batch *b)
{
	int rc;

	if (!b)
		return -EINVAL;
	rc = b->err;
	for (int i = 0; rc == 0 && i < C_COUNT; i++)
		if (b->counts[i])
			rc = add_counter(b, counter_names[i], b->counts[i]);
	if (rc)
		ckr_st_txn_abort(b->s, b->txn);
	else
		rc = ckr_st_txn_commit(b->s, b->txn);
	batch_free(b);
	return rc;
}

void ckr_batch_abort(ckr_batch *b)
{
	if (!b)
		return;
	ckr_st_txn_abort(b->s, b->txn);
	batch_free(b);
}
