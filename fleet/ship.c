/*
 * ship.c — the shipper (ckring_fleet.h, ckr_shipper_*; the body of
 * ckring-ship): follows a store's change log (persist/FORMAT.md, `changes`)
 * into the shared PostgreSQL schema (persist/PG_SCHEMA.md), exactly once.
 *
 * One PostgreSQL transaction per batch:
 *   1  UPDATE ckring_hosts SET shipped = new WHERE host, store_id AND
 *      shipped = old — the position, conditional on the one this shipper
 *      started from: a second shipper of the host (or a stale one) updates
 *      nothing and backs off; the row lock orders them;
 *   2  lock the batch's runs (SELECT ... FOR UPDATE): a claim by another
 *      host waits for us, or we see its result;
 *   3  each change in log order, fenced by the run's host and incarnation
 *      (the writes of a host whose run moved are refused: counted,
 *      recorded in ckring_refused); rows go into one binary COPY, flushed
 *      before a statement that must see them;
 *   4  COMMIT.
 * Only then: refusals are reported into the writers' slots and their local
 * records marked moved, the batch's lane marks are published as
 * REPLICATED, and (at most every 200 ms) the position is written back to
 * the store, which trims its log up to it. A kill anywhere before the
 * COMMIT loses the transaction and the restart reads the same changes from
 * the position PostgreSQL still holds; a kill after it finds the new
 * position. So every change is applied once.
 *
 * A first start (no row for the host) ships a snapshot of the store and
 * registers the host with the snapshot's log position, in one transaction.
 * Every (re)connection also marks moved the local running runs the
 * database gives to another host (the host was declared lost while it was
 * away), before anything is shipped.
 *
 * PostgreSQL going away is waited out: the local path (push, drain) never
 * waits for the shipper; the log grows meanwhile and is shipped when the
 * server is back.
 *
 * Concurrency: a ckr_shipper is used by one thread.
 */
#include "ship.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define STOP_WALK (-ECANCELED)
#define BATCH_BYTES (UINT64_C(8) << 20)
#define POSITION_EVERY_NS (UINT64_C(200) * 1000000)

uint64_t fship_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void fship_say(const ckr_shipper *sh, ckr_log_level lv, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	if (!sh->o.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	sh->o.log(sh->o.log_ctx, lv, msg);
}

static void *grow_array(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	void *q = realloc(p, c * size);
	if (q)
		*cap = c;
	return q;
}

static size_t arena_put(ckr_shipper *sh, const void *p, size_t n)
{
	size_t off = sh->arena_len;
	if (sh->arena_len + n > sh->arena_cap) {
		size_t c = sh->arena_cap ? sh->arena_cap : 1 << 20;
		while (c < sh->arena_len + n)
			c *= 2;
		uint8_t *q = realloc(sh->arena, c);
		if (!q) {
			sh->batch_err = -ENOMEM;
			return 0;
		}
		sh->arena = q;
		sh->arena_cap = c;
	}
	if (n)
		memcpy(sh->arena + off, p, n);
	sh->arena_len += n;
	return off;
}

/* ---- reading a batch from the store ---- */

static bool skipped(const ckr_shipper *sh, const uint8_t *id, size_t n)
{
	for (size_t i = 0; i < sh->n_skip; i++)
		if (sh->skip_len[i] == n && memcmp(sh->skip[i], id, n) == 0)
			return true;
	return false;
}

static int skip_add(ckr_shipper *sh, const uint8_t *id, size_t n)
{
	if (skipped(sh, id, n))
		return 0;
	size_t cap = sh->cap_skip;
	void *a = grow_array(sh->skip, &cap, sh->n_skip + 1, sizeof *sh->skip);
	if (!a)
		return -ENOMEM;
	sh->skip = a;
	cap = sh->cap_skip;
	void *b = grow_array(sh->skip_len, &cap, sh->n_skip + 1, sizeof *sh->skip_len);
	if (!b)
		return -ENOMEM;
	sh->skip_len = b;
	sh->cap_skip = cap;
	memcpy(sh->skip[sh->n_skip], id, n);
	sh->skip_len[sh->n_skip++] = n;
	return 0;
}

/* One row straight into the batch's COPY (the common case: no copy of
 * its bytes in between). */
static void copy_row(ckr_shipper *sh, const ckr_change *c, const ckr_change_row *s)
{
	fpg_copy_tuple(&sh->copy, 4);
	fpg_copy_bytes(&sh->copy, c->id, c->id_len);
	fpg_copy_i64(&sh->copy, (int64_t)s->seq);
	fpg_copy_i32(&sh->copy, (int32_t)s->incarnation);
	fpg_copy_bytes(&sh->copy, s->data, s->size);
	sh->batch_rows++;
}

/*
 * The rows of a change: into the COPY at once (the database's state of the
 * run is not known yet: if the run turns out refused, the batch is read
 * again without it, FSHIP_RETRY), set-aside rows and the rows of skipped
 * runs into the arena, for statements.
 */
static int copy_rows(ckr_shipper *sh, op *o, const ckr_change *c)
{
	if (c->n_rows == 0)
		return sh->batch_err;
	bool direct = !skipped(sh, c->id, c->id_len);
	row *r = grow_array(sh->rows, &sh->cap_rows, sh->n_rows + c->n_rows, sizeof *r);
	if (!r)
		return -ENOMEM;
	sh->rows = r;
	o->rows = sh->n_rows;
	o->n_rows = c->n_rows;
	for (size_t i = 0; i < c->n_rows; i++) {
		const ckr_change_row *s = &c->rows[i];
		bool in_copy = direct && !s->set_aside;
		if (in_copy)
			copy_row(sh, c, s);
		sh->rows[sh->n_rows++] = (row){
			.seq = s->seq, .inc = s->incarnation, .aside = s->set_aside,
			.in_copy = in_copy, .writer = s->writer, .slot = s->slot,
			.off = in_copy ? 0 : arena_put(sh, s->data, s->size), .size = s->size };
		sh->batch_bytes += s->size;
	}
	return sh->batch_err ? sh->batch_err : sh->copy.err;
}

static int copy_change(ckr_shipper *sh, const ckr_change *c)
{
	op *ops = grow_array(sh->ops, &sh->cap_ops, sh->n_ops + 1, sizeof *ops);
	if (!ops)
		return -ENOMEM;
	sh->ops = ops;
	op *o = &sh->ops[sh->n_ops];
	memset(o, 0, sizeof *o);
	o->kind = c->kind;
	o->number = c->number;
	memcpy(o->id, c->id, c->id_len);
	o->id_len = c->id_len;
	o->inc = c->incarnation;
	o->lane = c->lane;
	o->seq_lo = c->seq_lo;
	o->attempts = c->attempts;
	o->prefix = c->prefix_seq;
	o->finished_ns = c->finished_ns;
	o->created_ns = c->created_ns;
	o->state = c->state;
	o->run_kind = c->run_kind;
	o->cleared = c->cleared;
	o->removed = c->removed;
	o->text = arena_put(sh, c->error, c->error_len);
	o->error_len = c->error_len;
	arena_put(sh, c->label, c->label_len);
	o->label_len = c->label_len;
	arena_put(sh, c->meta, c->meta_len);
	o->meta_len = c->meta_len;
	memcpy(o->epoch, c->epoch, 16);
	if (c->n_lanes) {
		ckr_change_lane *l = grow_array(sh->lanes, &sh->cap_lanes,
						sh->n_lanes + c->n_lanes, sizeof *l);
		if (!l)
			return -ENOMEM;
		sh->lanes = l;
		o->lanes = sh->n_lanes;
		o->n_lanes = c->n_lanes;
		memcpy(sh->lanes + sh->n_lanes, c->lanes, c->n_lanes * sizeof *l);
		sh->n_lanes += c->n_lanes;
	}
	int rc = copy_rows(sh, o, c);
	if (rc == 0)
		sh->n_ops++;
	return rc ? rc : sh->batch_err;
}

static int on_change(void *ctx, const ckr_change *c)
{
	ckr_shipper *sh = ctx;
	if (sh->n_ops && (sh->batch_bytes >= BATCH_BYTES ||
			  sh->n_rows >= sh->o.batch_rows))
		return STOP_WALK;
	return copy_change(sh, c);
}

void fship_batch_reset(ckr_shipper *sh)
{
	sh->n_ops = sh->n_rows = sh->n_lanes = sh->arena_len = sh->n_refs = 0;
	sh->batch_bytes = 0;
	sh->batch_err = 0;
	sh->batch_rows = 0;
	sh->copy.len = sh->copy.tuples = 0;
	if (sh->runs_n) {
		memset(sh->runs, 0, sh->runs_cap * sizeof *sh->runs);
		sh->runs_n = 0;
	}
}

/* ---- the runs of the batch ---- */

static uint32_t id_hash(const uint8_t *id, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ id[i]) * 16777619u;
	return h;
}

static runst *run_slot(ckr_shipper *sh, const uint8_t *id, size_t n)
{
	for (uint32_t i = id_hash(id, n) & (sh->runs_cap - 1);; i = (i + 1) & (sh->runs_cap - 1)) {
		runst *r = &sh->runs[i];
		if (r->id_len == 0 || (r->id_len == n && memcmp(r->id, id, n) == 0))
			return r;
	}
}

/* The batch's entry of run id (made empty on first use). */
static runst *run_get(ckr_shipper *sh, const uint8_t *id, size_t n)
{
	if (sh->runs_n + 1 > sh->runs_cap / 2) {
		uint32_t cap = sh->runs_cap ? sh->runs_cap * 2 : 1024;
		runst *old = sh->runs;
		uint32_t old_cap = sh->runs_cap;
		sh->runs = calloc(cap, sizeof *sh->runs);
		if (!sh->runs) {
			sh->runs = old;
			return NULL;
		}
		sh->runs_cap = cap;
		for (uint32_t i = 0; i < old_cap; i++)
			if (old[i].id_len)
				*run_slot(sh, old[i].id, old[i].id_len) = old[i];
		free(old);
	}
	runst *r = run_slot(sh, id, n);
	if (!r->id_len) {
		r->id_len = (uint8_t)n;
		memcpy(r->id, id, n);
		sh->runs_n++;
	}
	return r;
}

static void run_from_db(ckr_shipper *sh, runst *r, const char *host, const char *inc,
			const char *state)
{
	r->exists = true;
	snprintf(r->owner, sizeof r->owner, "%s", host);
	r->mine = strcmp(host, sh->host) == 0;
	r->inc = (uint32_t)strtoul(inc, NULL, 10);
	r->state = atoi(state);
}

/* Lock and read the database's record of every run of the batch. */
static int load_runs(ckr_shipper *sh)
{
	size_t n = 0;
	for (size_t i = 0; i < sh->n_ops; i++)
		if (sh->ops[i].id_len) {
			runst *r = run_get(sh, sh->ops[i].id, sh->ops[i].id_len);
			if (!r)
				return -ENOMEM;
		}
	uint8_t (*ids)[64] = malloc((sh->runs_n ? sh->runs_n : 1) * sizeof *ids);
	size_t *lens = malloc((sh->runs_n ? sh->runs_n : 1) * sizeof *lens);
	int rc = ids && lens ? 0 : -ENOMEM;
	for (uint32_t i = 0; rc == 0 && i < sh->runs_cap; i++)
		if (sh->runs[i].id_len) {
			memcpy(ids[n], sh->runs[i].id, sh->runs[i].id_len);
			lens[n++] = sh->runs[i].id_len;
		}
	char *arr = rc == 0 ? fpg_bytea_array((const uint8_t (*)[64])ids, lens, n) : NULL;
	if (rc == 0 && !arr)
		rc = -ENOMEM;
	PGresult *res = NULL;
	if (rc == 0 && n) {
		const char *v[1] = { arr };
		rc = fpg_params(sh->pg, sh->err,
				"SELECT run_id, host, incarnation, state FROM ckring_runs "
				"WHERE run_id = ANY($1::bytea[]) ORDER BY run_id FOR UPDATE",
				1, v, NULL, NULL, &res);
	}
	for (int t = 0; rc == 0 && res && t < PQntuples(res); t++) {
		uint8_t id[CKR_RUN_ID_MAX];
		size_t l = fpg_unhex(PQgetvalue(res, t, 0), id, sizeof id);
		if (l == (size_t)-1 || l == 0)
			continue;
		runst *r = run_get(sh, id, l);
		if (r)
			run_from_db(sh, r, PQgetvalue(res, t, 1), PQgetvalue(res, t, 2),
				    PQgetvalue(res, t, 3));
	}
	PQclear(res);
	free(arr);
	free(ids);
	free(lens);
	return rc;
}

/* ---- statements ---- */

static const char COPY_EVENTS[] =
	"COPY ckring_events (run_id, seq, incarnation, data) FROM STDIN (FORMAT binary)";

static int flush_copy(ckr_shipper *sh)
{
	if (sh->copy.tuples == 0)
		return 0;
	int rc = fpg_copy_send(sh->pg, &sh->copy, COPY_EVENTS, sh->err);
	for (uint32_t i = 0; i < sh->runs_cap; i++)
		sh->runs[i].buffered = false;
	return rc;
}

/* A statement on run id with text parameters p1..pn after it ($1 = id). */
static int run_stmt(ckr_shipper *sh, const char *sql, const uint8_t *id, size_t id_len,
		    int n, ...)
{
	const char *vals[8];
	int lens[8] = { (int)id_len }, bin[8] = { 1 };
	va_list ap;
	vals[0] = (const char *)id;
	va_start(ap, n);
	for (int i = 1; i <= n && i < 8; i++) {
		vals[i] = va_arg(ap, const char *);
		lens[i] = 0;
		bin[i] = 0;
	}
	va_end(ap);
	return fpg_params(sh->pg, sh->err, sql, n + 1, vals, lens, bin, NULL);
}

/* Same, with one binary parameter b after the text ones (last). */
static int run_stmt_bin(ckr_shipper *sh, const char *sql, const uint8_t *id,
			size_t id_len, const char *t1, const char *t2, const void *b,
			size_t blen, const void *b2, size_t b2len)
{
	const char *vals[6] = { (const char *)id, t1, t2, b, b2 };
	int lens[6] = { (int)id_len, 0, 0, (int)blen, (int)b2len };
	int bin[6] = { 1, 0, 0, 1, 1 };
	int n = b2 ? 5 : 4;
	if (!b) {
		vals[3] = "";
		lens[3] = 0;
	}
	return fpg_params(sh->pg, sh->err, sql, n, vals, lens, bin, NULL);
}

static void u64s(char *buf, uint64_t v)
{
	snprintf(buf, 24, "%llu", (unsigned long long)v);
}

static int put_run(ckr_shipper *sh, const op *o);

static int add_rows_to_copy(ckr_shipper *sh, const op *o, runst *r, bool set_aside_too)
{
	for (size_t i = 0; i < o->n_rows; i++) {
		const row *w = &sh->rows[o->rows + i];
		if (w->in_copy)
			continue; /* there already */
		if (w->aside) {
			if (!set_aside_too)
				continue;
			char seq[24], inc[24];
			u64s(seq, w->seq);
			u64s(inc, w->inc);
			int rc = run_stmt_bin(sh, "INSERT INTO ckring_set_aside (run_id, seq, "
					      "incarnation, data) VALUES ($1, $2, $3, $4) "
					      "ON CONFLICT DO NOTHING",
					      o->id, o->id_len, seq, inc, sh->arena + w->off,
					      w->size, NULL, 0);
			if (rc)
				return rc;
			continue;
		}
		fpg_copy_tuple(&sh->copy, 4);
		fpg_copy_bytes(&sh->copy, o->id, o->id_len);
		fpg_copy_i64(&sh->copy, (int64_t)w->seq);
		fpg_copy_i32(&sh->copy, (int32_t)w->inc);
		fpg_copy_bytes(&sh->copy, sh->arena + w->off, w->size);
		sh->batch_rows++;
	}
	(void)r;
	return sh->copy.err;
}

/* Refuse op: recorded in the database now, acted on after the commit. A
 * refused run whose rows are in the COPY makes the batch be read again
 * without them. */
static int refuse(ckr_shipper *sh, const op *o, runst *r)
{
	for (size_t i = 0; i < o->n_rows; i++)
		if (sh->rows[o->rows + i].in_copy) {
			int rc = skip_add(sh, o->id, o->id_len);
			return rc ? rc : FSHIP_RETRY;
		}
	char num[24], inc[24], oinc[24];
	u64s(num, o->number);
	u64s(inc, o->inc);
	u64s(oinc, r->inc);
	int rc = fpg_params(sh->pg, sh->err,
			    "INSERT INTO ckring_refused (host, run_id, change, incarnation, owner, "
			    "owner_incarnation) VALUES ($1, $2, $3, $4, $5, $6)",
			    6, (const char *const[]){ sh->host, (const char *)o->id, num, inc,
						      r->exists ? r->owner : NULL,
						      r->exists ? oinc : NULL },
			    (const int[]){ 0, (int)o->id_len, 0, 0, 0, 0 },
			    (const int[]){ 0, 1, 0, 0, 0, 0 }, NULL);
	if (rc)
		return rc;
	refusal *f = grow_array(sh->refs, &sh->cap_refs, sh->n_refs + 1, sizeof *f);
	if (!f)
		return -ENOMEM;
	sh->refs = f;
	f = &sh->refs[sh->n_refs++];
	memset(f, 0, sizeof *f);
	memcpy(f->id, o->id, o->id_len);
	f->id_len = o->id_len;
	f->mark = r->exists && !r->mine && !r->reported;
	snprintf(f->owner, sizeof f->owner, "%s", r->exists ? r->owner : "?");
	f->owner_inc = r->inc;
	if (o->kind == CKR_CHANGE_ROWS) {
		for (size_t i = 0; i < o->n_rows; i++) {
			const row *w = &sh->rows[o->rows + i];
			if (w->writer) {
				f->has_writer = true;
				f->writer = w->writer;
				f->slot = w->slot;
				break;
			}
		}
		f->lane = o->lane;
		f->pos = (o->lane < sh->mark_lanes ? sh->mark_pos[o->lane] : 0) + 1;
	}
	r->refused = r->reported = true;
	return 0;
}

/* May op of run r be applied: the run is ours, of the op's incarnation? */
static bool fenced_ok(const runst *r, uint32_t inc)
{
	return r->exists && r->mine && !r->refused && r->inc == inc;
}

static int apply_rows(ckr_shipper *sh, const op *o, runst *r)
{
	if (!r->exists && !r->refused && o->seq_lo == 0 && o->inc == 1) {
		op begun = *o; /* its begin: a new running run of this host */
		begun.state = CKR_RUN_RUNNING;
		begun.error_len = 0;
		begun.text = o->text + o->error_len;
		int rc = put_run(sh, &begun);
		if (rc)
			return rc;
		r->exists = r->mine = true;
		snprintf(r->owner, sizeof r->owner, "%s", sh->host);
		r->inc = 1;
		r->state = CKR_RUN_RUNNING;
	}
	if (!fenced_ok(r, o->inc) || r->state != CKR_RUN_RUNNING)
		return refuse(sh, o, r);
	return add_rows_to_copy(sh, o, r, true);
}

/*
 * A statement on a run never needs the batch's COPY sent first: the rows
 * were read from the store after every change of the batch was made, so a
 * row still there belongs in the database at the batch's end whatever
 * statement precedes it (a completion or prune that removed rows left none
 * to copy; the rows a claim set aside are read as set aside; a pruned run
 * begun again has its old rows deleted by the prune's statement, before
 * the COPY). So one COPY per batch, sent last.
 */
static int before_statement(ckr_shipper *sh, const runst *r)
{
	(void)sh;
	(void)r;
	return 0;
}

static int apply_finish(ckr_shipper *sh, const op *o, runst *r)
{
	if (!fenced_ok(r, o->inc) || r->state != CKR_RUN_RUNNING)
		return refuse(sh, o, r);
	int rc = before_statement(sh, r);
	char state[24], fin[24];
	u64s(state, (uint64_t)o->state);
	u64s(fin, o->finished_ns);
	if (rc == 0)
		rc = run_stmt_bin(sh, "UPDATE ckring_runs SET state = $2, finished_ns = $3, "
				  "error = $4, updated_at = now() WHERE run_id = $1",
				  o->id, o->id_len, state, fin,
				  o->error_len ? sh->arena + o->text : NULL, o->error_len, NULL, 0);
	if (rc == 0 && o->cleared)
		rc = run_stmt(sh, "WITH e AS (DELETE FROM ckring_events WHERE run_id = $1), "
			      "a AS (DELETE FROM ckring_set_aside WHERE run_id = $1) "
			      "UPDATE ckring_runs SET cleared = true, meta = '\\x' WHERE run_id = $1",
			      o->id, o->id_len, 0);
	r->state = o->state;
	return rc;
}

static const char MOVE_ASIDE[] =
	"WITH m AS (DELETE FROM ckring_events WHERE run_id = $1 AND seq > $2 "
	"AND incarnation < $3 RETURNING run_id, incarnation, seq, data) "
	"INSERT INTO ckring_set_aside (run_id, incarnation, seq, data) "
	"SELECT run_id, incarnation, seq, data FROM m ON CONFLICT DO NOTHING";

static int apply_claim(ckr_shipper *sh, const op *o, runst *r)
{
	if (!fenced_ok(r, o->inc - 1) || r->state != CKR_RUN_RUNNING)
		return refuse(sh, o, r);
	char prefix[24], inc[24], att[24];
	u64s(prefix, o->prefix);
	u64s(inc, o->inc);
	u64s(att, o->attempts);
	int rc = before_statement(sh, r);
	if (rc == 0)
		rc = run_stmt(sh, "UPDATE ckring_runs SET incarnation = $2, attempts = $3, "
			      "updated_at = now() WHERE run_id = $1", o->id, o->id_len, 2, inc, att);
	if (rc == 0)
		rc = run_stmt(sh, MOVE_ASIDE, o->id, o->id_len, 2, prefix, inc);
	r->inc = o->inc;
	return rc;
}

static int apply_prune(ckr_shipper *sh, const op *o, runst *r)
{
	if (!r->exists || !r->mine || r->inc != o->inc)
		return 0; /* a local copy of a run that lives elsewhere */
	int rc = before_statement(sh, r);
	if (rc == 0)
		rc = run_stmt(sh, "WITH e AS (DELETE FROM ckring_events WHERE run_id = $1), "
			      "a AS (DELETE FROM ckring_set_aside WHERE run_id = $1) "
			      "UPDATE ckring_runs SET cleared = true, meta = '\\x' WHERE run_id = $1",
			      o->id, o->id_len, 0);
	if (rc == 0 && o->removed)
		rc = run_stmt(sh, "DELETE FROM ckring_runs WHERE run_id = $1", o->id, o->id_len, 0);
	if (o->removed)
		r->exists = false;
	return rc;
}

/* A failed run made claimable again (ckr_store_retry): running, a fresh
 * attempt budget, no error; the incarnation stays (the next claim bumps it,
 * as after any crash). Only a failed run of ours, of that incarnation. */
static int apply_retry(ckr_shipper *sh, const op *o, runst *r)
{
	if (!fenced_ok(r, o->inc) || r->state != CKR_RUN_FAILED)
		return refuse(sh, o, r);
	char att[24];
	u64s(att, o->attempts);
	int rc = run_stmt(sh, "UPDATE ckring_runs SET state = 1, attempts = $2, error = NULL, "
			  "finished_ns = 0, updated_at = now() WHERE run_id = $1", o->id,
			  o->id_len, 1, att);
	r->state = CKR_RUN_RUNNING;
	return rc;
}

static int apply_run(ckr_shipper *sh, const op *o, runst *r);

static int apply_mark(ckr_shipper *sh, const op *o)
{
	if (!sh->rep || memcmp(o->epoch, sh->rep_epoch, 16) != 0)
		return 0;
	for (size_t i = 0; i < o->n_lanes; i++) {
		const ckr_change_lane *l = &sh->lanes[o->lanes + i];
		if (l->lane < sh->mark_lanes && l->pos > sh->mark_pos[l->lane])
			sh->mark_pos[l->lane] = l->pos;
	}
	return 0;
}

static int apply_op(ckr_shipper *sh, const op *o)
{
	if (o->kind == CKR_CHANGE_MARK)
		return apply_mark(sh, o);
	runst *r = run_get(sh, o->id, o->id_len);
	if (!r)
		return -ENOMEM;
	switch (o->kind) {
	case CKR_CHANGE_ROWS:
		return apply_rows(sh, o, r);
	case CKR_CHANGE_FINISH:
		return apply_finish(sh, o, r);
	case CKR_CHANGE_CLAIM:
		return apply_claim(sh, o, r);
	case CKR_CHANGE_PRUNE:
		return apply_prune(sh, o, r);
	case CKR_CHANGE_IMPORT:
		return fenced_ok(r, o->inc) ? 0 : refuse(sh, o, r);
	case CKR_CHANGE_RETRY:
		return apply_retry(sh, o, r);
	case CKR_CHANGE_RUN:
		return apply_run(sh, o, r);
	default:
		return 0;
	}
}

/* ---- snapshots (a first start) ---- */

static const char UPSERT_RUN[] =
	"INSERT INTO ckring_runs (run_id, host, incarnation, state, kind, label, meta, error, "
	"attempts, cleared, created_ns, finished_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
	"$9, $10, $11, $12) ON CONFLICT (run_id) DO UPDATE SET host = $2, incarnation = $3, "
	"state = $4, kind = $5, label = $6, meta = $7, error = $8, attempts = $9, "
	"cleared = $10, created_ns = $11, finished_ns = $12, updated_at = now()";

static int put_run(ckr_shipper *sh, const op *o)
{
	char inc[24], state[24], kind[24], att[24], created[24], fin[24];
	u64s(inc, o->inc);
	u64s(state, (uint64_t)o->state);
	u64s(kind, (uint64_t)o->run_kind);
	u64s(att, o->attempts);
	u64s(created, o->created_ns);
	u64s(fin, o->finished_ns);
	const uint8_t *error = sh->arena + o->text, *label = error + o->error_len,
		      *meta = label + o->label_len;
	const char *v[12] = { (const char *)o->id, sh->host, inc, state, kind,
			      (const char *)label, (const char *)meta,
			      o->error_len ? (const char *)error : NULL, att,
			      o->cleared ? "t" : "f", created, fin };
	int lens[12] = { (int)o->id_len, 0, 0, 0, 0, (int)o->label_len, (int)o->meta_len,
			 (int)o->error_len };
	int bin[12] = { 1, 0, 0, 0, 0, 1, 1, 1 };
	return fpg_params(sh->pg, sh->err, UPSERT_RUN, 12, v, lens, bin, NULL);
}

/*
 * A whole run: from a snapshot (number 0), or from the log (a run written
 * by ckr_store_import, with the rows it arrived with). The database's copy
 * of a run of ours is replaced. A run the database gives to another host is
 * never shipped: in a snapshot it moved while this store was not shipped
 * (a running one is marked moved here); from the log it was imported here
 * while another host holds it (refused, recorded, and marked moved here if
 * it runs: a run moves between the hosts of one database by ckring-recover,
 * never by an import).
 */
static int apply_run(ckr_shipper *sh, const op *o, runst *r)
{
	if (r->exists && !r->mine) {
		if (o->number || o->state == CKR_RUN_RUNNING)
			return refuse(sh, o, r);
		return 0;
	}
	int rc = before_statement(sh, r);
	if (rc == 0 && r->exists)
		rc = run_stmt(sh, "WITH e AS (DELETE FROM ckring_events WHERE run_id = $1) "
			      "DELETE FROM ckring_set_aside WHERE run_id = $1", o->id, o->id_len, 0);
	if (rc == 0)
		rc = put_run(sh, o);
	if (rc == 0)
		rc = add_rows_to_copy(sh, o, r, true);
	r->exists = r->mine = true;
	r->inc = o->inc;
	r->state = o->state;
	return rc;
}

static int on_snapshot(void *ctx, const ckr_change *c)
{
	return copy_change(ctx, c);
}

int fship_snapshot(ckr_shipper *sh, uint64_t *at)
{
	fship_batch_reset(sh);
	int rc = ckr_store_snapshot(sh->store, on_snapshot, sh, at);
	if (rc == 0)
		rc = load_runs(sh);
	for (size_t i = 0; rc == 0 && i < sh->n_ops; i++) {
		runst *r = run_get(sh, sh->ops[i].id, sh->ops[i].id_len);
		rc = r ? apply_run(sh, &sh->ops[i], r) : -ENOMEM;
	}
	if (rc == 0)
		rc = flush_copy(sh);
	if (rc)
		sh->copy.len = sh->copy.tuples = 0;
	return rc;
}

/* ---- after the commit ---- */

void fship_act_on_refusals(ckr_shipper *sh)
{
	for (size_t i = 0; i < sh->n_refs; i++) {
		refusal *f = &sh->refs[i];
		if (f->has_writer && sh->rep)
			ckr_replica_reject(sh->rep, f->lane, f->slot, f->writer, f->pos);
		if (!f->mark)
			continue;
		int rc = ckr_store_mark_moved(sh->store, f->id, f->id_len, f->owner, f->owner_inc);
		if (rc == 0) {
			sh->st.moved++;
			fship_say(sh, CKR_LOG_WARN, "run '%.*s' moved to host %s (incarnation %u): "
				  "its writes from this host are refused; marked moved here",
				  (int)f->id_len, (const char *)f->id, f->owner, f->owner_inc);
		}
	}
	sh->st.refused += sh->n_refs;
	if (sh->n_refs)
		fship_say(sh, CKR_LOG_INFO, "%zu changes of runs that moved to other hosts "
			  "refused (recorded in ckring_refused)", sh->n_refs);
}

static void publish_marks(ckr_shipper *sh)
{
	if (!sh->rep)
		return;
	ckr_change_lane l[64];
	size_t k = 0;
	for (uint32_t i = 0; i < sh->mark_lanes; i++) {
		if (!sh->mark_pos[i])
			continue;
		l[k++] = (ckr_change_lane){ .lane = i, .pos = sh->mark_pos[i] };
		if (k == 64) {
			ckr_replica_publish(sh->rep, l, k);
			k = 0;
		}
	}
	if (k)
		ckr_replica_publish(sh->rep, l, k);
}

static void write_back(ckr_shipper *sh, bool force)
{
	uint64_t now = fship_now_ns();
	if (sh->written_back == sh->shipped ||
	    (!force && now - sh->last_wb_ns < POSITION_EVERY_NS))
		return;
	if (ckr_store_ship_position(sh->store, sh->shipped) == 0)
		sh->written_back = sh->shipped;
	sh->last_wb_ns = now;
}

/* ---- the connection ---- */

void fship_disconnect(ckr_shipper *sh)
{
	if (sh->pg)
		PQfinish(sh->pg);
	sh->pg = NULL;
	sh->ready = false;
}

int fship_rollback(ckr_shipper *sh, int rc)
{
	if (sh->pg && PQstatus(sh->pg) == CONNECTION_OK)
		PQclear(PQexec(sh->pg, "ROLLBACK"));
	if (rc == -ENOTCONN || (sh->pg && PQstatus(sh->pg) != CONNECTION_OK))
		fship_disconnect(sh);
	return rc;
}

/* The replica of the store's segment, once it exists. */
static void attach_replica(ckr_shipper *sh)
{
	uint64_t now = fship_now_ns();
	if (sh->rep || !sh->segment[0] || now < sh->rep_retry_ns)
		return;
	sh->rep_retry_ns = now + UINT64_C(1000000000);
	int rc = ckr_replica_open(sh->segment, &sh->rep);
	if (rc) {
		sh->rep = NULL;
		if (rc != -ENOENT)
			fship_say(sh, CKR_LOG_WARN, "segment '%s': %s (REPLICATED is not published)",
			    sh->segment, ckr_strerror(rc));
		return;
	}
	ckr_replica_epoch(sh->rep, sh->rep_epoch);
}

/* ---- one batch ---- */

static int ship_batch_once(ckr_shipper *sh, size_t *n)
{
	uint64_t last = sh->shipped;
	char old[24], new[24];
	fship_batch_reset(sh);
	int rc = ckr_store_changes(sh->store, sh->shipped, 0, on_change, sh, &last);
	if (rc == STOP_WALK)
		rc = 0;
	if (rc)
		return rc;
	*n = sh->n_ops;
	if (sh->n_ops == 0)
		return 0;
	u64s(old, sh->shipped);
	u64s(new, last);
	for (uint32_t i = 0; i < sh->mark_lanes; i++)
		sh->mark_pos[i] = 0;
	PGresult *res = NULL;
	rc = fpg_exec(sh->pg, sh->err, "BEGIN");
	if (rc == 0)
		rc = fpg_params(sh->pg, sh->err,
				"UPDATE ckring_hosts SET shipped = $3, heartbeat_at = now() "
				"WHERE host = $1 AND store_id = $2 AND shipped = $4", 4,
				(const char *const[]){ sh->host, (const char *)sh->store_id, new, old },
				(const int[]){ 0, 16, 0, 0 }, (const int[]){ 0, 1, 0, 0 }, &res);
	if (rc == 0 && strcmp(PQcmdTuples(res), "1") != 0) {
		snprintf(sh->err, sizeof sh->err, "the database's position for host %s moved "
			 "under this shipper (another shipper of the host?)", sh->host);
		rc = -ESTALE;
	}
	PQclear(res);
	if (rc == 0)
		rc = load_runs(sh);
	for (size_t i = 0; rc == 0 && i < sh->n_ops; i++)
		rc = apply_op(sh, &sh->ops[i]);
	if (rc == 0)
		rc = flush_copy(sh);
	if (rc == 0)
		rc = fpg_exec(sh->pg, sh->err, "COMMIT");
	if (rc) {
		sh->copy.len = sh->copy.tuples = 0;
		if (rc == -ESTALE)
			sh->ready = false; /* handshake again */
		return fship_rollback(sh, rc);
	}
	sh->n_skip = 0;
	sh->st.rows += sh->batch_rows;
	sh->shipped = last;
	sh->st.shipped = last;
	sh->st.changes += sh->n_ops;
	sh->st.batches++;
	sh->last_hb_ns = fship_now_ns();
	fship_act_on_refusals(sh);
	publish_marks(sh);
	write_back(sh, false);
	return 0;
}

/* A batch, read again (at most a few times) when a refusal needs it. */
static int ship_batch(ckr_shipper *sh, size_t *n)
{
	int rc;
	for (int tries = 0;; tries++) {
		rc = ship_batch_once(sh, n);
		if (rc != FSHIP_RETRY || tries == 8)
			return rc;
	}
}

static int heartbeat(ckr_shipper *sh)
{
	char lease[24];
	u64s(lease, sh->o.lease_ms);
	int rc = fpg_params(sh->pg, sh->err,
			    "UPDATE ckring_hosts SET heartbeat_at = now(), lease_ms = $3 "
			    "WHERE host = $1 AND store_id = $2", 3,
			    (const char *const[]){ sh->host, (const char *)sh->store_id, lease },
			    (const int[]){ 0, 16, 0 }, (const int[]){ 0, 1, 0 }, NULL);
	if (rc == 0)
		sh->last_hb_ns = fship_now_ns();
	return rc == -ENOTCONN ? fship_rollback(sh, rc) : rc;
}

int ckr_shipper_step(ckr_shipper *sh, size_t *n)
{
	size_t dummy;
	if (!sh)
		return -EINVAL;
	if (!n)
		n = &dummy;
	*n = 0;
	attach_replica(sh);
	if (!sh->ready) {
		int rc = fship_start(sh);
		if (rc)
			return rc;
	}
	int rc = ship_batch(sh, n);
	if (rc == 0 && *n == 0) {
		write_back(sh, false);
		if (fship_now_ns() - sh->last_hb_ns >= (uint64_t)sh->o.heartbeat_ms * 1000000)
			rc = heartbeat(sh);
	}
	return rc;
}

static void pause_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

static bool fatal(int rc)
{
	return rc == CKR_ESEGMENT || rc == CKR_ETRUNC || rc == CKR_EVERSION ||
	       rc == -ENOMEM || rc == CKR_ECORRUPT;
}

int ckr_shipper_run(ckr_shipper *sh, const volatile int *stop)
{
	uint64_t idle_us = 100, max_us = (uint64_t)sh->o.idle_max_ms * 1000;
	while (!*stop) {
		size_t n = 0;
		int rc = ckr_shipper_step(sh, &n);
		if (rc && fatal(rc)) {
			fship_say(sh, CKR_LOG_ERROR, "%s%s%s", ckr_strerror(rc), sh->err[0] ? ": " : "",
			    sh->err);
			return rc;
		}
		if (rc) {
			if (sh->backoff_ms == 0 || sh->backoff_ms >= 1000)
				fship_say(sh, CKR_LOG_WARN, "PostgreSQL: %s; retrying (the local path "
				    "goes on, the change log waits)", sh->err[0] ? sh->err
										: ckr_strerror(rc));
			sh->backoff_ms = sh->backoff_ms ? sh->backoff_ms * 2 : 10;
			if (sh->backoff_ms > 1000)
				sh->backoff_ms = 1000;
			pause_ms(sh->backoff_ms);
			continue;
		}
		if (sh->backoff_ms)
			fship_say(sh, CKR_LOG_INFO, "PostgreSQL is back; shipping from change %llu",
			    (unsigned long long)sh->shipped);
		sh->backoff_ms = 0;
		if (n) {
			idle_us = 100;
			continue;
		}
		struct timespec ts = { 0, (long)idle_us * 1000 };
		nanosleep(&ts, NULL);
		idle_us = idle_us * 2 > max_us ? max_us : idle_us * 2;
	}
	write_back(sh, true);
	return 0;
}

void ckr_shipper_stats_get(const ckr_shipper *sh, ckr_ship_stats *out)
{
	*out = sh->st;
	ckr_log_info li;
	if (ckr_store_log_info(sh->store, &li) == 0)
		out->last = li.last;
}

const char *ckr_shipper_error(const ckr_shipper *sh)
{
	return sh->err;
}
