/*
 * retention.c — pruning finished runs in bounded steps: `ckring-admin
 * prune` and the flusher's background retention (--keep-completed,
 * --keep-failed) are both sequences of ckr_store_prune_step().
 *
 * A step: (1) a READ transaction examines at most max_scan run records
 * after the position and picks the runs due (failed: record, events and
 * set-aside rows go; completed with kept events: the rows go, the record
 * stays as a tombstone — a late duplicate begin must still find it), plus
 * any run already marked "being removed"; (2) ONE write transaction takes at
 * most max_runs of them and deletes at most max_rows rows. So a store of a
 * million runs, or a run of a million rows, never holds LMDB's write lock
 * (and so the flusher's next batch) for more than one bounded transaction.
 *
 * A run whose rows do not fit in the step's budget is marked CKR_REC_REMOVING
 * (FORMAT.md, flags bit 1) in the transaction that deletes its first rows,
 * and its counts (events, bytes, set_aside) always match the rows left, so
 * the store is consistent after every commit. Any later step — of any
 * sequence, whatever its ages — continues a marked run first, so a prune
 * killed at any instant is finished by the next one (the flusher's
 * retention runs a step every housekeeping second).
 *
 * Fencing: the write transaction re-reads every record and re-applies the
 * rule; a run retried (RUNNING again) or changed between the two
 * transactions is left alone. Running runs are never touched.
 *
 * The change log: the transaction that finishes a run logs its PRUNE
 * (removed, or cleared to its tombstone); the steps before it log nothing.
 * A shared database keeps the run's rows until then — what it holds of a
 * run being removed is what the store held before the prune began, and
 * the last step's entry makes the two equal again (FORMAT.md, `changes`).
 *
 * Concurrency: any thread of any process (LMDB's writer lock orders the
 * steps against batches and claims); -EBUSY in a thread that holds a batch.
 */
#include "persist/changelog.h"
#include "persist/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "persist/flusher.h"
#include "persist/flusher_metrics.h"

#define DEFAULT_SCAN 4096
#define DEFAULT_RUNS 64
#define DEFAULT_ROWS 8192
#define MAPFULL_RETRIES 4

/* The flusher's retention pass (every housekeeping second). */
#define RETENTION_SCAN 4096
#define RETENTION_RUNS 64
#define RETENTION_ROWS 8192

typedef struct cand {
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
} cand;

typedef struct step {
	ckr_prune_opts o;     /* with the defaults filled in */
	uint64_t now;
	cand *c;              /* the runs picked by the scan */
	size_t n;
	ckr_pruned *done;     /* what the write transaction did */
	size_t n_done;
	bool end;             /* the scan reached the last record */
	ckr_prune_pos next;   /* where the next step starts */
} step;

static bool due_at(uint64_t finished_ns, uint64_t age_s, uint64_t now)
{
	if (age_s == CKR_KEEP_FOREVER)
		return false;
	uint64_t age_ns = age_s > UINT64_MAX / 1000000000u ? UINT64_MAX
							  : age_s * 1000000000u;
	return finished_ns <= now && now - finished_ns >= age_ns;
}

/* Is r to be pruned now (or being pruned already)? */
static bool wanted(const ckr_rec *r, const ckr_prune_opts *o, uint64_t now)
{
	if (r->state == CKR_RUN_RUNNING)
		return false;
	if (r->flags & CKR_REC_REMOVING)
		return true;
	if (r->state == CKR_RUN_FAILED)
		return due_at(r->finished_ns, o->failed_age_s, now);
	return !(r->flags & CKR_REC_CLEARED) &&
	       due_at(r->finished_ns, o->completed_age_s, now);
}

static void pos_set(ckr_prune_pos *p, const void *key, size_t n, bool inclusive)
{
	memcpy(p->key, key, n);
	p->key_len = n;
	p->inclusive = inclusive;
}

/* Position c at the first record the step examines. @return an LMDB code. */
static int scan_start(MDB_cursor *c, const ckr_prune_pos *pos, MDB_val *k, MDB_val *v)
{
	if (pos->key_len == 0)
		return mdb_cursor_get(c, k, v, MDB_FIRST);
	k->mv_size = pos->key_len;
	k->mv_data = (void *)pos->key;
	int rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
	if (rc == 0 && !pos->inclusive && k->mv_size == pos->key_len &&
	    memcmp(k->mv_data, pos->key, pos->key_len) == 0)
		rc = mdb_cursor_get(c, k, v, MDB_NEXT);
	return rc;
}

/* Report a dry-run candidate as if it went. */
static void dry_report(step *st, const MDB_val *k, const ckr_rec *r)
{
	ckr_pruned *p = &st->done[st->n_done++];
	memset(p, 0, sizeof *p);
	memcpy(p->id, k->mv_data, k->mv_size);
	p->id_len = k->mv_size;
	p->state = (ckr_run_state)r->state;
	p->events = r->events;
	p->set_aside = r->set_aside;
	p->done = true;
}

/* (1) The read transaction: pick the runs due after pos. */
static int scan(ckr_store *s, const ckr_prune_pos *pos, step *st)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	ckr_rec r;
	uint32_t seen = 0;
	int rc = ckr_st_txn_begin(s, false, &txn);

	if (rc)
		return rc;
	rc = mdb_cursor_open(txn, s->dbi[CKR_DB_RUNS], &c);
	if (rc) {
		ckr_st_txn_abort(s, txn);
		return ckr_st_err(rc);
	}
	st->next = *pos;
	for (rc = scan_start(c, pos, &k, &v); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (seen == st->o.max_scan || st->n == st->o.max_runs)
			break;
		seen++;
		pos_set(&st->next, k.mv_data, k.mv_size, false);
		if (k.mv_size == 0 || k.mv_size > CKR_RUN_ID_MAX ||
		    ckr_st_rec_decode(v.mv_data, v.mv_size, &r) != 0 ||
		    !wanted(&r, &st->o, st->now))
			continue;
		if (st->o.dry_run)
			dry_report(st, &k, &r);
		memcpy(st->c[st->n].id, k.mv_data, k.mv_size);
		st->c[st->n++].id_len = k.mv_size;
	}
	st->end = rc == MDB_NOTFOUND;
	mdb_cursor_close(c);
	ckr_st_txn_abort(s, txn);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

static uint64_t sub_sat(uint64_t a, uint64_t b)
{
	return b < a ? a - b : 0;
}

/* Prune one run within *budget. p reports it. */
static int prune_run(MDB_txn *txn, const ckr_store *s, const cand *cd, ckr_rec *r,
		     uint32_t *budget, ckr_pruned *p, ckr_buf *tmp)
{
	uint64_t bytes = 0, scratch = 0;
	bool more = false;
	int rc = ckr_st_delete_run_rows_some(txn, s, CKR_DB_EVENTS, cd->id, cd->id_len,
					     budget, &p->events, &bytes, &more);

	if (rc == 0 && !more)
		rc = ckr_st_delete_run_rows_some(txn, s, CKR_DB_SET_ASIDE, cd->id, cd->id_len,
						 budget, &p->set_aside, &scratch, &more);
	if (rc)
		return rc;
	p->done = !more;
	if (!more && r->state == CKR_RUN_FAILED) {
		MDB_val k = { cd->id_len, (void *)cd->id };
		rc = ckr_clog_put_prune(txn, s, cd->id, cd->id_len, r, true);
		return rc ? rc : ckr_st_err(mdb_del(txn, s->dbi[CKR_DB_RUNS], &k, NULL));
	}
	r->events = sub_sat(r->events, p->events);
	r->bytes = sub_sat(r->bytes, bytes);
	r->set_aside = sub_sat(r->set_aside, p->set_aside);
	r->updated_ns = ckr_st_now_ns();
	if (more) {
		r->flags |= CKR_REC_REMOVING;
	} else { /* a completed run: now a tombstone */
		r->flags = (r->flags & ~CKR_REC_REMOVING) | CKR_REC_CLEARED;
		r->events = r->bytes = r->set_aside = 0;
		r->meta = NULL;
		r->meta_len = 0;
	}
	rc = ckr_st_rec_put(txn, s, cd->id, cd->id_len, r, tmp);
	return rc || more ? rc : ckr_clog_put_prune(txn, s, cd->id, cd->id_len, r, false);
}

/* (2) The write transaction over the picked runs. */
static int prune_in(MDB_txn *txn, const ckr_store *s, step *st)
{
	ckr_buf rec = { 0 }, tmp = { 0 };
	uint32_t budget = st->o.max_rows;
	ckr_rec r;
	int rc = 0;

	st->n_done = 0;
	for (size_t i = 0; rc == 0 && i < st->n; i++) {
		const cand *cd = &st->c[i];
		rc = ckr_st_rec_get(txn, s, cd->id, cd->id_len, &r, &rec);
		if (rc == -ENOENT || (rc == 0 && !wanted(&r, &st->o, st->now))) {
			rc = 0; /* gone or changed since the scan: leave it */
			continue;
		}
		if (rc)
			break;
		if (budget == 0) { /* start here next time */
			pos_set(&st->next, cd->id, cd->id_len, true);
			st->end = false;
			break;
		}
		ckr_pruned *p = &st->done[st->n_done++];
		memset(p, 0, sizeof *p);
		memcpy(p->id, cd->id, cd->id_len);
		p->id_len = cd->id_len;
		p->state = (ckr_run_state)r.state;
		rc = prune_run(txn, s, cd, &r, &budget, p, &tmp);
		if (rc == 0 && !p->done) {
			pos_set(&st->next, cd->id, cd->id_len, true);
			st->end = false;
			break;
		}
	}
	free(rec.p);
	free(tmp.p);
	return rc;
}

static int write_phase(ckr_store *s, step *st)
{
	int rc = 0;
	for (int tries = 0;; tries++) {
		MDB_txn *txn;
		ckr_prune_pos next = st->next;
		bool end = st->end;
		rc = ckr_st_txn_begin(s, true, &txn);
		if (rc)
			return rc;
		rc = prune_in(txn, s, st);
		if (rc)
			ckr_st_txn_abort(s, txn);
		else
			rc = ckr_st_txn_commit(s, txn);
		if (rc != CKR_STORE_MAPFULL || tries == MAPFULL_RETRIES)
			return rc;
		st->next = next; /* redo the whole transaction on a grown map */
		st->end = end;
		rc = ckr_store_grow(s);
		if (rc)
			return rc;
	}
}

static void defaults(step *st, const ckr_prune_opts *o)
{
	st->o = *o;
	if (!st->o.max_scan)
		st->o.max_scan = DEFAULT_SCAN;
	if (!st->o.max_runs)
		st->o.max_runs = DEFAULT_RUNS;
	if (!st->o.max_rows)
		st->o.max_rows = DEFAULT_ROWS;
	if (st->o.max_runs > st->o.max_scan)
		st->o.max_runs = st->o.max_scan;
}

int ckr_store_prune_step(ckr_store *s, const ckr_prune_opts *o, ckr_prune_pos *pos,
			 ckr_prune_fn fn, void *ctx)
{
	step st = { 0 };
	int rc;

	if (!s || !o || !pos || pos->key_len > CKR_RUN_ID_MAX)
		return -EINVAL;
	if (!o->dry_run && s->read_only)
		return -EROFS;
	if (!o->dry_run && ckr_st_batch_mine(s))
		return -EBUSY;
	defaults(&st, o);
	st.now = ckr_st_now_ns();
	st.c = calloc(st.o.max_runs, sizeof *st.c);
	st.done = calloc(st.o.max_runs, sizeof *st.done);
	rc = st.c && st.done ? scan(s, pos, &st) : -ENOMEM;
	if (rc == 0 && st.n && !o->dry_run)
		rc = write_phase(s, &st);
	if (rc == 0) {
		for (size_t i = 0; fn && i < st.n_done; i++)
			fn(ctx, &st.done[i]);
		*pos = st.next;
		if (st.end)
			memset(pos, 0, sizeof *pos);
	}
	free(st.c);
	free(st.done);
	if (rc)
		return ckr_st_public_err(rc);
	return st.end ? 1 : 0;
}

/* ---- the flusher's retention ---- */

typedef struct tally {
	uint64_t runs, rows;
} tally;

static void count_pruned(void *ctx, const ckr_pruned *p)
{
	tally *t = ctx;
	t->runs += p->done;
	t->rows += p->events + p->set_aside;
}

void ckr_flusher_retention(ckr_flusher *f)
{
	ckr_prune_opts o = {
		/* keep_completed_s 0: completions are cleared in their batch */
		.completed_age_s = f->opts.keep_completed_s ? f->opts.keep_completed_s
							     : CKR_KEEP_FOREVER,
		.failed_age_s = f->opts.prune_failed ? f->opts.keep_failed_s
						     : CKR_KEEP_FOREVER,
		.max_scan = RETENTION_SCAN,
		.max_runs = RETENTION_RUNS,
		.max_rows = RETENTION_ROWS,
	};
	tally t = { 0 };
	int rc = ckr_store_prune_step(f->store, &o, &f->retention_pos, count_pruned, &t);
	if (rc < 0)
		ckr_flusher_log(f, CKR_LOG_WARN, "retention: %s", ckr_strerror(rc));
	ckr_fm_pruned(f, t.runs, t.rows);
}
