/*
 * store_batch.c — the flusher's write batch: one LMDB write transaction that
 * applies decoded events through the run state machine and its acceptance
 * rule (ring/PROTOCOL.md, "The acceptance rule"), keeps quarantined records,
 * ended owners, rejection reports and counters, and moves the lanes'
 * cursors — so events and positions become durable together or not at all.
 *
 * State machine (ckr_batch_apply), for an event arriving through a lane
 * owned by identity `from`:
 *   BEGIN    must be seq 0, incarnation 1 (else BAD_BEGIN). No record →
 *            RUNNING, incarnation 1, writer = the event's, owner = `from`,
 *            the begin row stored at seq 0. Any record (even a completed
 *            tombstone) → DUP_BEGIN, whichever begin arrived first.
 *   other    no record → ORPHAN; record.writer != event.writer or
 *            record.owner != from → FOREIGN; another incarnation → STALE;
 *            not RUNNING → AFTER_END; then by type:
 *   MESSAGE  (single-loop) / PHASE (multi-phase), the other kind BAD_KIND;
 *            (run, seq) must be new (else DUP_SEQ); stored, and the run's
 *            events/last_seq/bytes/prefix_seq move.
 *   COMPLETE → COMPLETED; events (and set-aside rows) deleted now unless
 *            keep_completed_s > 0 (then ckr_store_prune deletes them). The
 *            record stays as a tombstone so a late duplicate begin cannot
 *            resurrect the run.
 *   FAIL     → FAILED with its error (cut to 4 KiB); events kept.
 * A rejected event never changes the run. Each is counted by the batch
 * itself under its ckr_apply_name(); stored events under "stored";
 * ckr_batch_quarantine() counts "quarantined". The caller must not count
 * these again.
 *
 * prefix_seq: the highest s with 1..s all stored. An event at last_seq+1 on
 * a gap-free run extends it by one (no lookup); one that fills a gap walks
 * forward over the rows that follow (ckr_st_extend_prefix).
 *
 * Epoch stamping: a run records the segment epoch its owner last wrote
 * under: the store's current epoch, fixed by ckr_store_bind_segment() when
 * the flusher opened.
 *
 * The run cache: a batch reads each run record it touches at most once and
 * writes each at most once, at commit (run_cache_flush), instead of a read
 * and a write per event: the per-event work is the event row alone. Nothing
 * else reads run records inside the batch's transaction.
 *
 * The change log (changelog.h): every row stored, every finish and every
 * lane position of the batch is logged in the batch's own transaction.
 *
 * Errors: a full map is CKR_STORE_MAPFULL (store.h: abort, ckr_store_grow,
 * replay the batch), a full disk at commit -ENOSPC. Any error kills the
 * batch (LMDB's transaction is unusable after MDB_MAP_FULL): later calls
 * return the same error; only commit/abort free it.
 * Concurrency: one batch per store at a time, used by one thread.
 */
#include "persist/changelog.h"
#include "persist/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shm/proc.h"

#define QUARANTINE_RAW_MAX (64u << 10)
#define QUARANTINE_REASON_MAX 1024
#define QUARANTINE_HEADER 32
#define COUNTER_NAME_MAX 255

/* Counters: one per ckr_apply (STORED is "stored"), then quarantined. */
#define C_QUARANTINED CKR_APPLY_COUNT
#define C_COUNT (CKR_APPLY_COUNT + 1)

static const char *const counter_names[C_COUNT] = {
	[CKR_APPLY_STORED] = "stored",       [CKR_APPLY_DUP_BEGIN] = "dup_begin",
	[CKR_APPLY_FOREIGN] = "foreign",     [CKR_APPLY_STALE] = "stale",
	[CKR_APPLY_ORPHAN] = "orphan",       [CKR_APPLY_AFTER_END] = "after_end",
	[CKR_APPLY_DUP_SEQ] = "dup_seq",     [CKR_APPLY_BAD_KIND] = "bad_kind",
	[CKR_APPLY_BAD_BEGIN] = "bad_begin", [C_QUARANTINED] = "quarantined",
};

const char *ckr_apply_name(ckr_apply what)
{
	return what < CKR_APPLY_COUNT ? counter_names[what] : "unknown";
}

/* A run record of the batch: read once, written once at commit. */
typedef struct cached_run {
	uint8_t id_len;            /* 0: an empty slot */
	uint8_t id[CKR_RUN_ID_MAX];
	bool present;              /* a record exists (stored, or made here) */
	bool dirty;                /* to be written at commit */
	ckr_rec r;                 /* its texts point into `texts` */
	ckr_buf texts;             /* owned: the record value, or the texts */
	ckr_clog_range log;        /* its rows not logged yet */
} cached_run;

/* Open addressing, power-of-two capacity, at most half full. */
typedef struct run_cache {
	cached_run *slot;
	uint32_t cap, n;
} run_cache;

struct ckr_batch {
	ckr_store *s;
	MDB_txn *txn;
	int err;                          /* first error: the batch is dead */
	uint64_t now_ns;                  /* one timestamp for the batch */
	uint8_t epoch[CKR_EPOCH_BYTES];   /* the epoch runs are stamped with */
	bool epoch_set;
	uint64_t counts[C_COUNT];         /* added to `counters` at commit */
	ckr_buf tmp;                      /* record encoding */
	run_cache runs;
	ckr_clog clog;                    /* the change log's batch state */
};

static void run_cache_free(run_cache *c)
{
	for (uint32_t i = 0; i < c->cap; i++)
		free(c->slot[i].texts.p);
	free(c->slot);
}

static void batch_free(ckr_batch *b)
{
	ckr_st_batch_mark(false);
	atomic_store(b->s->batch_open, false);
	run_cache_free(&b->runs);
	ckr_clog_free(&b->clog);
	free(b->tmp.p);
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
	if (atomic_exchange(s->batch_open, true))
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
	ckr_st_batch_mark(true);
	*out = b;
	return 0;

fail_txn:
	ckr_st_txn_abort(s, b->txn);
fail_free:
	free(b);
fail_flag:
	atomic_store(s->batch_open, false);
	return rc;
}

/* ---- the run cache ---- */

static uint32_t id_hash(const uint8_t *id, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ id[i]) * 16777619u;
	return h;
}

static cached_run *cache_slot(const run_cache *c, const uint8_t *id, size_t len)
{
	for (uint32_t i = id_hash(id, len) & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
		cached_run *e = &c->slot[i];
		if (e->id_len == 0 || (e->id_len == len && memcmp(e->id, id, len) == 0))
			return e;
	}
}

/* Double the table (entries move; their texts do not). @return 0; -ENOMEM. */
static int cache_grow(run_cache *c)
{
	run_cache n = { .cap = c->cap ? c->cap * 2 : 256 };
	n.slot = calloc(n.cap, sizeof *n.slot);
	if (!n.slot)
		return -ENOMEM;
	for (uint32_t i = 0; i < c->cap; i++)
		if (c->slot[i].id_len)
			*cache_slot(&n, c->slot[i].id, c->slot[i].id_len) = c->slot[i];
	n.n = c->n;
	free(c->slot);
	*c = n;
	return 0;
}

/*
 * The batch's entry of run id, reading the record on first use (present
 * false: no such run yet). @return 0 and *out; -ENOMEM; CKR_ECORRUPT; -EIO.
 */
static int cached(ckr_batch *b, const uint8_t *id, size_t len, cached_run **out)
{
	run_cache *c = &b->runs;
	cached_run *e = c->cap ? cache_slot(c, id, len) : NULL;
	if (e && e->id_len) {
		*out = e;
		return 0;
	}
	if (c->n + 1 > c->cap / 2) {
		int rc = cache_grow(c);
		if (rc)
			return rc;
		e = cache_slot(c, id, len);
	}
	memset(e, 0, sizeof *e);
	int rc = ckr_st_rec_get(b->txn, b->s, id, len, &e->r, &e->texts);
	if (rc && rc != -ENOENT) {
		free(e->texts.p);
		memset(e, 0, sizeof *e);
		return rc;
	}
	e->id_len = (uint8_t)len;
	memcpy(e->id, id, len);
	e->present = rc == 0;
	c->n++;
	*out = e;
	return 0;
}

/* Give e's record its own copy of the texts label | meta | error, with the
 * error (and its length) replaced when error is not NULL. @return 0;
 * -ENOMEM. */
static int own_texts(cached_run *e, const uint8_t *error, size_t error_len)
{
	ckr_rec *r = &e->r;
	if (!error) {
		error = r->error;
		error_len = r->error_len;
	}
	ckr_buf nb = { 0 };
	size_t n = r->label_len + r->meta_len + error_len;
	if (ckr_st_buf_reserve(&nb, n ? n : 1))
		return -ENOMEM;
	uint8_t *p = nb.p;
	if (r->label_len)
		memcpy(p, r->label, r->label_len);
	if (r->meta_len)
		memcpy(p + r->label_len, r->meta, r->meta_len);
	if (error_len)
		memcpy(p + r->label_len + r->meta_len, error, error_len);
	free(e->texts.p);
	e->texts = nb;
	r->label = p;
	r->meta = p + r->label_len;
	r->error = p + r->label_len + r->meta_len;
	r->error_len = error_len;
	return 0;
}

/* Write every record the batch changed. @return 0 or the put's error. */
static int run_cache_flush(ckr_batch *b)
{
	for (uint32_t i = 0; i < b->runs.cap; i++) {
		cached_run *e = &b->runs.slot[i];
		if (!e->id_len || !e->dirty)
			continue;
		int rc = ckr_clog_flush(&b->clog, b->txn, b->s, &e->log, e->id, e->id_len);
		if (rc == 0)
			rc = ckr_st_rec_put(b->txn, b->s, e->id, e->id_len, &e->r, &b->tmp);
		if (rc)
			return rc;
		e->dirty = false;
	}
	return 0;
}

/* ---- the state machine ---- */

static int rejected(ckr_batch *b, ckr_apply code, ckr_apply *w)
{
	b->counts[code]++;
	*w = code;
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

static int apply_begin(ckr_batch *b, const ckr_event *ev, const void *raw,
		       size_t raw_len, const ckr_identity *from, ckr_apply *w)
{
	cached_run *e;
	int rc;

	if (ev->incarnation != 1 || ev->seq != 0 || ev->writer == 0)
		return rejected(b, CKR_APPLY_BAD_BEGIN, w);
	rc = cached(b, ev->id, ev->id_len, &e);
	if (rc)
		return rc;
	if (e->present)
		return rejected(b, CKR_APPLY_DUP_BEGIN, w);
	ckr_rec *r = &e->r;
	memset(r, 0, sizeof *r);
	r->state = CKR_RUN_RUNNING;
	r->kind = (uint8_t)ev->u.begin.kind;
	r->incarnation = 1;
	r->owner = *from;
	r->writer = ev->writer;
	r->created_ns = r->updated_ns = b->now_ns;
	r->events = 1;
	r->bytes = raw_len;
	memcpy(r->epoch, b->epoch, CKR_EPOCH_BYTES);
	r->label = (const uint8_t *)ev->u.begin.label;
	r->label_len = ev->u.begin.label_len;
	r->meta = ev->u.begin.meta;
	r->meta_len = ev->u.begin.meta_len;
	rc = own_texts(e, NULL, 0); /* the event's bytes are not ours to keep */
	if (rc)
		return rc;
	/* No row can be left at (run, 0) without a record: overwrite. */
	rc = ckr_st_err(put_event(b, ev, raw, raw_len, 0));
	if (rc == 0)
		rc = ckr_clog_row(&b->clog, b->txn, b->s, &e->log, ev->id, ev->id_len,
				  r->created_ns, 1, 0);
	if (rc)
		return rc;
	e->present = e->dirty = true;
	b->counts[CKR_APPLY_STORED]++;
	return 0;
}

/* The run an event names, if the event comes from its current writer and
 * it runs; else *e is NULL and *w says why it was rejected. */
static int target_run(ckr_batch *b, const ckr_event *ev, const ckr_identity *from,
		      cached_run **e, ckr_apply *w)
{
	cached_run *c;
	int rc = cached(b, ev->id, ev->id_len, &c);

	*e = NULL;
	if (rc)
		return rc;
	if (!c->present)
		return rejected(b, CKR_APPLY_ORPHAN, w);
	const ckr_rec *r = &c->r;
	if (ev->writer != r->writer || ev->writer == 0 ||
	    !ckr_identity_eq(from, &r->owner))
		return rejected(b, CKR_APPLY_FOREIGN, w);
	if (ev->incarnation != r->incarnation)
		return rejected(b, CKR_APPLY_STALE, w);
	if (r->state != CKR_RUN_RUNNING)
		return rejected(b, CKR_APPLY_AFTER_END, w);
	if (ev->type == CKR_EV_MESSAGE || ev->type == CKR_EV_PHASE) {
		ckr_kind want = ev->type == CKR_EV_MESSAGE ? CKR_KIND_SINGLE_LOOP
							   : CKR_KIND_MULTI_PHASE;
		if (r->kind != want)
			return rejected(b, CKR_APPLY_BAD_KIND, w);
	}
	*e = c;
	return 0;
}

/* Move prefix_seq after storing seq (see the file comment). */
static void advance_prefix(ckr_batch *b, const ckr_event *ev, ckr_rec *r)
{
	if (ev->seq != r->prefix_seq + 1)
		return; /* beyond a gap: the prefix waits for it */
	if (r->last_seq <= ev->seq)
		r->prefix_seq = ev->seq; /* in order: nothing above it exists */
	else
		r->prefix_seq = ckr_st_extend_prefix(b->txn, b->s, ev->id, ev->id_len,
						     ev->seq);
}

static int apply_data(ckr_batch *b, const ckr_event *ev, const void *raw,
		      size_t raw_len, const ckr_identity *from, ckr_apply *w)
{
	cached_run *e;
	int rc = target_run(b, ev, from, &e, w);

	if (rc || !e)
		return rc;
	if (ev->seq == 0)
		return rejected(b, CKR_APPLY_DUP_SEQ, w); /* seq 0 is the begin's */
	rc = put_event(b, ev, raw, raw_len, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST)
		return rejected(b, CKR_APPLY_DUP_SEQ, w);
	if (rc)
		return ckr_st_err(rc);
	ckr_rec *r = &e->r;
	r->events++;
	advance_prefix(b, ev, r);
	if (ev->seq > r->last_seq)
		r->last_seq = ev->seq;
	r->bytes += raw_len;
	r->updated_ns = b->now_ns;
	memcpy(r->epoch, b->epoch, CKR_EPOCH_BYTES);
	e->dirty = true;
	b->counts[CKR_APPLY_STORED]++;
	return ckr_clog_row(&b->clog, b->txn, b->s, &e->log, ev->id, ev->id_len, r->created_ns,
			    ev->incarnation, ev->seq);
}

static int apply_end(ckr_batch *b, const ckr_event *ev, const ckr_identity *from,
		     ckr_apply *w)
{
	cached_run *e;
	int rc = target_run(b, ev, from, &e, w);

	if (rc || !e)
		return rc;
	ckr_rec *r = &e->r;
	r->updated_ns = r->finished_ns = b->now_ns;
	if (ev->type == CKR_EV_FAIL) {
		r->state = CKR_RUN_FAILED;
		size_t n = ev->u.fail.len < CKR_REC_ERROR_MAX ? ev->u.fail.len
							      : CKR_REC_ERROR_MAX;
		rc = own_texts(e, (const uint8_t *)ev->u.fail.error, n);
	} else {
		r->state = CKR_RUN_COMPLETED;
		if (b->s->keep_completed_s == 0)
			rc = ckr_st_rec_clear(b->txn, b->s, ev->id, ev->id_len, r);
	}
	if (rc == 0)
		e->dirty = true;
	return rc ? rc : ckr_clog_finish(&b->clog, b->txn, b->s, &e->log, ev->id, ev->id_len, r);
}

int ckr_batch_apply(ckr_batch *b, const ckr_event *ev, const void *raw,
		    size_t raw_len, const ckr_identity *from, ckr_apply *what)
{
	ckr_apply w = CKR_APPLY_STORED;
	int rc;

	if (!b || !ev || !raw || raw_len == 0 || !ev->id || ev->id_len == 0 ||
	    ev->id_len > CKR_RUN_ID_MAX || !from)
		return -EINVAL;
	if (b->err)
		return b->err;
	switch (ev->type) {
	case CKR_EV_BEGIN:
		rc = apply_begin(b, ev, raw, raw_len, from, &w);
		break;
	case CKR_EV_MESSAGE:
	case CKR_EV_PHASE:
		rc = apply_data(b, ev, raw, raw_len, from, &w);
		break;
	case CKR_EV_COMPLETE:
	case CKR_EV_FAIL:
		rc = apply_end(b, ev, from, &w);
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
	/* The store serves one segment: its cursors are of the bound epoch. */
	if (!b->epoch_set || memcmp(b->epoch, epoch, CKR_EPOCH_BYTES) != 0)
		return batch_fail(b, -EINVAL);
	memcpy(kb, epoch, CKR_EPOCH_BYTES);
	ckr_st_put_be32(kb + CKR_EPOCH_BYTES, lane);
	ckr_st_put_le(vb, pos, 8);
	rc = ckr_st_err(mdb_put(b->txn, b->s->dbi[CKR_DB_CURSORS], &k, &v, 0));
	if (rc == 0)
		rc = ckr_clog_cursor(&b->clog, epoch, lane, pos);
	return rc ? batch_fail(b, rc) : 0;
}

/* ---- rejection reports (W1, W4) ---- */

#define REJECTION_KEY (CKR_EPOCH_BYTES + 4 + 8)
#define REJECTION_VAL 16

int ckr_batch_rejection(ckr_batch *b, const uint8_t epoch[CKR_EPOCH_BYTES],
			uint32_t lane, uint64_t pos, uint64_t writer,
			uint32_t slot, uint32_t reason)
{
	uint8_t kb[REJECTION_KEY], vb[REJECTION_VAL];
	MDB_val k = { sizeof kb, kb }, v = { sizeof vb, vb };

	if (!b || !epoch)
		return -EINVAL;
	if (b->err)
		return b->err;
	memcpy(kb, epoch, CKR_EPOCH_BYTES);
	ckr_st_put_be32(kb + CKR_EPOCH_BYTES, lane);
	ckr_st_put_be64(kb + CKR_EPOCH_BYTES + 4, pos);
	ckr_st_put_le(vb, writer, 8);
	ckr_st_put_le(vb + 8, slot, 4);
	ckr_st_put_le(vb + 12, reason, 4);
	int rc = ckr_st_err(mdb_put(b->txn, b->s->dbi[CKR_DB_REJECTIONS], &k, &v, 0));
	return rc ? batch_fail(b, rc) : 0;
}

int ckr_batch_clear_rejections(ckr_batch *b)
{
	if (!b)
		return -EINVAL;
	if (b->err)
		return b->err;
	int rc = ckr_st_err(mdb_drop(b->txn, b->s->dbi[CKR_DB_REJECTIONS], 0));
	return rc ? batch_fail(b, rc) : 0;
}

int ckr_store_rejections(ckr_store *s, ckr_rejection **out, size_t *n)
{
	ckr_rejection *v = NULL;
	size_t count = 0, cap = 0;
	MDB_txn *txn;
	MDB_cursor *c = NULL;
	MDB_val k, val;
	int rc;

	if (!s || !out || !n)
		return -EINVAL;
	rc = ckr_st_txn_begin(s, false, &txn);
	if (rc)
		return rc;
	rc = mdb_cursor_open(txn, s->dbi[CKR_DB_REJECTIONS], &c);
	int err = rc ? ckr_st_err(rc) : 0;
	if (err)
		c = NULL;
	while (!err && (rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) == 0) {
		if (k.mv_size != REJECTION_KEY || val.mv_size != REJECTION_VAL)
			continue; /* not ours: never act on it */
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			ckr_rejection *p = realloc(v, cap * sizeof *p);
			if (!p) {
				err = -ENOMEM;
				break;
			}
			v = p;
		}
		const uint8_t *kp = k.mv_data, *vp = val.mv_data;
		ckr_rejection *r = &v[count++];
		memcpy(r->epoch, kp, CKR_EPOCH_BYTES);
		r->lane = ckr_st_get_be32(kp + CKR_EPOCH_BYTES);
		r->pos = ckr_st_get_be64(kp + CKR_EPOCH_BYTES + 4);
		r->writer = ckr_st_get_le(vp, 8);
		r->slot = (uint32_t)ckr_st_get_le(vp + 8, 4);
		r->reason = (uint32_t)ckr_st_get_le(vp + 12, 4);
	}
	if (c)
		mdb_cursor_close(c);
	ckr_st_txn_abort(s, txn);
	if (!err && rc != MDB_NOTFOUND)
		err = ckr_st_err(rc);
	if (err) {
		free(v);
		return err;
	}
	*out = v;
	*n = count;
	return 0;
}

int ckr_batch_owner_ended(ckr_batch *b, const ckr_identity *id)
{
	uint8_t kb[16], vb[8];
	MDB_val k = { sizeof kb, kb }, v = { sizeof vb, vb };

	if (!b || !id || id->token == 0)
		return -EINVAL;
	if (b->err)
		return b->err;
	ckr_st_owner_key(kb, id);
	ckr_st_put_le(vb, b->now_ns, 8);
	int rc = ckr_st_err(mdb_put(b->txn, b->s->dbi[CKR_DB_OWNERS], &k, &v, 0));
	if (rc == 0 && ckr_st_has_gone(b->s)) { /* ended: no longer only gone */
		rc = mdb_del(b->txn, b->s->dbi[CKR_DB_GONE], &k, NULL);
		rc = rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
	}
	return rc ? batch_fail(b, rc) : 0;
}

int ckr_batch_owner_gone(ckr_batch *b, const ckr_identity *id)
{
	uint8_t kb[16], vb[16];
	MDB_val k = { sizeof kb, kb }, v = { sizeof vb, vb };

	if (!b || !id || id->token == 0)
		return -EINVAL;
	if (b->err)
		return b->err;
	if (!ckr_st_has_gone(b->s))
		return -EROFS; /* a handle that is not the flusher's */
	ckr_st_owner_key(kb, id);
	ckr_st_put_le(vb, b->now_ns, 8);
	ckr_st_put_le(vb + 8, id->pidns, 8);
	int rc = ckr_st_err(mdb_put(b->txn, b->s->dbi[CKR_DB_GONE], &k, &v, 0));
	return rc ? batch_fail(b, rc) : 0;
}

bool ckr_batch_owner_is_gone(ckr_batch *b, const ckr_identity *id)
{
	uint8_t kb[16];
	MDB_val k = { sizeof kb, kb }, v;

	if (!b || b->err || !ckr_st_has_gone(b->s))
		return false;
	ckr_st_owner_key(kb, id);
	return mdb_get(b->txn, b->s->dbi[CKR_DB_GONE], &k, &v) == 0;
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
	if (rc == 0)
		rc = run_cache_flush(b);
	if (rc == 0)
		rc = ckr_clog_commit(&b->clog, b->txn, b->s);
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

void ckr_batch_from_lane(ckr_batch *b, uint32_t lane)
{
	ckr_clog_lane(&b->clog, lane);
}
