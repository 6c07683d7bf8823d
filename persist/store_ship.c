/*
 * store_ship.c — what a shipper needs of the store (ckring_store.h, "The
 * change log"): reading the log with the rows each entry names, a snapshot
 * of every run, marking a run that moved to another host, and adopting a
 * run claimed from another host's shared record.
 *
 * Reading: one read transaction per call, so an entry and the rows it names
 * are one consistent state. A ROWS entry names (run, incarnation, seq range);
 * its rows are looked up now: in `events` (a row of that incarnation), else
 * in `set_aside` (a claim moved it since), else gone (the run completed or
 * was pruned since: a later FINISH/PRUNE entry says so). Within one
 * incarnation of one run a sequence number is stored at most once, so a row
 * found is the row that entry logged, and no row is named by two entries.
 * "One run" is one record: an id removed (pruned) and begun or imported
 * anew is another run, whose rows an old entry must not find (they would be
 * shipped twice): an entry names the created time of its run's record, and
 * finds rows only while the record is that one (same_run). A RUN entry
 * (ckr_store_import) names every row of an incarnation up to its own
 * (decode_run).
 *
 * Concurrency: any thread of any process, concurrently with the flusher;
 * mark_moved and import are short write transactions (like a claim).
 */
#include "persist/changelog.h"
#include "persist/store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "event/event.h"
#include "shm/proc.h"

#define ENTRY_HEADER 32

/* A growable array of rows, reused across entries of one call. */
typedef struct rowbuf {
	ckr_change_row *v;
	size_t n, cap;
	ckr_change_lane *lanes;
	size_t cap_lanes;
} rowbuf;

static int row_add(rowbuf *b, uint64_t seq, uint32_t inc, bool aside, const MDB_val *v)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		ckr_change_row *p = realloc(b->v, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		b->v = p;
		b->cap = cap;
	}
	const uint8_t *d = v->mv_data;
	bool v2 = v->mv_size >= 32 && d[0] == CKR_EVENT_VERSION;
	b->v[b->n++] = (ckr_change_row){
		.seq = seq, .incarnation = inc, .set_aside = aside,
		.writer = v2 ? ckr_st_get_le(d + 16, 8) : 0,
		.slot = v2 ? (uint32_t)ckr_st_get_le(d + 24, 4) : 0,
		.data = v->mv_data, .size = v->mv_size };
	return 0;
}

/* The incarnation an encoded event carries (offset 4 in both versions). */
static uint32_t row_incarnation(const MDB_val *v)
{
	return v->mv_size >= 8 ? (uint32_t)ckr_st_get_le((const uint8_t *)v->mv_data + 4, 4) : 0;
}

/* Rows of id in db `events` with seq in [lo, hi] (inc 0: any incarnation). */
static int event_rows(MDB_txn *txn, const ckr_store *s, const uint8_t *id, size_t id_len,
		      uint32_t inc, uint64_t lo, uint64_t hi, rowbuf *b)
{
	uint8_t kb[CKR_EVENT_KEY_MAX];
	size_t kn = ckr_st_event_key(kb, id, id_len, lo);
	MDB_val k = { kn, kb }, v;
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, s->dbi[CKR_DB_EVENTS], &c);
	if (rc)
		return ckr_st_err(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != kn || memcmp(k.mv_data, kb, kn - 8))
			break;
		uint64_t seq = ckr_st_get_be64((const uint8_t *)k.mv_data + kn - 8);
		if (seq > hi)
			break;
		uint32_t ri = row_incarnation(&v);
		if (inc && ri != inc)
			continue;
		rc = row_add(b, seq, ri, false, &v);
		if (rc)
			break;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : (rc < 0 ? rc : ckr_st_err(rc));
}

/* Set-aside rows of (id, inc) with seq in [lo, hi]; inc 0: every row. */
static int aside_rows(MDB_txn *txn, const ckr_store *s, const uint8_t *id, size_t id_len,
		      uint32_t inc, uint64_t lo, uint64_t hi, rowbuf *b)
{
	uint8_t kb[CKR_ASIDE_KEY_MAX];
	size_t kn = ckr_st_aside_key(kb, id, id_len, inc, inc ? lo : 0);
	size_t prefix = inc ? 1 + id_len + 4 : 1 + id_len;
	MDB_val k = { kn, kb }, v;
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, s->dbi[CKR_DB_SET_ASIDE], &c);
	if (rc)
		return ckr_st_err(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != kn || memcmp(k.mv_data, kb, prefix))
			break;
		const uint8_t *kp = k.mv_data;
		uint64_t seq = ckr_st_get_be64(kp + kn - 8);
		uint32_t ri = ckr_st_get_be32(kp + 1 + id_len);
		if (inc && seq > hi)
			break;
		rc = row_add(b, seq, ri, true, &v);
		if (rc)
			break;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : (rc < 0 ? rc : ckr_st_err(rc));
}

static int cmp_row(const void *a, const void *b)
{
	const ckr_change_row *x = a, *y = b;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->incarnation < y->incarnation ? -1 : x->incarnation > y->incarnation;
}

/* What the run of a ROWS entry from seq 0 was begun with: its begin row,
 * or (gone) its record, if it is still that run. */
static int begin_info(MDB_txn *txn, const ckr_store *s, ckr_change *c)
{
	ckr_event ev;
	ckr_rec r;
	if (c->n_rows && c->rows[0].seq == 0 &&
	    ckr_event_decode(c->rows[0].data, c->rows[0].size, &ev) == 0 &&
	    ev.type == CKR_EV_BEGIN) {
		c->run_kind = ev.u.begin.kind;
		c->label = ev.u.begin.label;
		c->label_len = ev.u.begin.label_len;
		c->meta = ev.u.begin.meta;
		c->meta_len = ev.u.begin.meta_len;
	}
	int rc = ckr_st_rec_get(txn, s, c->id, c->id_len, &r, NULL);
	if (rc == -ENOENT || (rc == 0 && r.created_ns != c->created_ns))
		return 0; /* pruned since (begun anew?): its PRUNE entry follows */
	if (rc)
		return rc;
	if (!c->run_kind) {
		c->run_kind = (ckr_kind)r.kind;
		c->label = (const char *)r.label;
		c->label_len = r.label_len;
		c->meta = r.meta;
		c->meta_len = r.meta_len;
	}
	return 0;
}

/* Is the store's record of c's run the run c was logged for (created at
 * c->created_ns), so that its rows are the rows c names? A record gone or
 * made anew since (removed, then begun or imported again) has none of them:
 * a later entry (PRUNE) says what became of them. */
static int same_run(MDB_txn *txn, const ckr_store *s, const ckr_change *c, bool *same)
{
	ckr_rec r;
	int rc = ckr_st_rec_get(txn, s, c->id, c->id_len, &r, NULL);
	*same = rc == 0 && r.created_ns == c->created_ns;
	return rc == -ENOENT ? 0 : rc;
}

/* Keep the rows of b from index `from` on whose incarnation is at most inc. */
static void rows_upto(rowbuf *b, size_t from, uint32_t inc)
{
	size_t k = from;
	for (size_t i = from; i < b->n; i++)
		if (b->v[i].incarnation <= inc)
			b->v[k++] = b->v[i];
	b->n = k;
}

/*
 * A RUN entry of the log (ckr_store_import, changelog.h): the record as the
 * import wrote it comes from the entry; its rows from the store, now: every
 * row of an incarnation up to the entry's (later incarnations are a later
 * claim's, logged as ROWS), in `events` or set aside by a later claim —
 * while the record is still the one the import wrote (same_run).
 */
static int decode_run(MDB_txn *txn, const ckr_store *s, uint32_t flags, uint64_t a,
		      uint64_t bb, uint64_t cc, const uint8_t *tail, size_t tail_len,
		      ckr_change *c, rowbuf *b)
{
	if (tail_len < CKR_CLOG_RUN_TAIL)
		return CKR_ECORRUPT;
	size_t ll = (size_t)ckr_st_get_le(tail + 2, 2), ml = (size_t)ckr_st_get_le(tail + 8, 4),
	       el = (size_t)ckr_st_get_le(tail + 12, 4);
	if (CKR_CLOG_RUN_TAIL + ll + ml + el != tail_len)
		return CKR_ECORRUPT;
	const uint8_t *texts = tail + CKR_CLOG_RUN_TAIL;
	c->state = (ckr_run_state)tail[0];
	c->run_kind = (ckr_kind)tail[1];
	c->attempts = (uint32_t)ckr_st_get_le(tail + 4, 4);
	c->label = (const char *)texts;
	c->label_len = ll;
	c->meta = texts + ll;
	c->meta_len = ml;
	c->error = texts + ll + ml;
	c->error_len = el;
	c->created_ns = a;
	c->finished_ns = bb;
	c->prefix_seq = cc;
	c->cleared = flags & 1;
	bool same;
	int rc = same_run(txn, s, c, &same);
	if (rc || !same)
		return rc;
	rc = event_rows(txn, s, c->id, c->id_len, 0, 0, UINT64_MAX, b);
	rows_upto(b, 0, c->incarnation);
	size_t found = b->n;
	if (rc == 0)
		rc = aside_rows(txn, s, c->id, c->id_len, 0, 0, UINT64_MAX, b);
	if (rc)
		return rc;
	rows_upto(b, found, c->incarnation);
	if (b->n > found)
		qsort(b->v, b->n, sizeof *b->v, cmp_row);
	c->rows = b->v;
	c->n_rows = b->n;
	return 0;
}

/* Decode entry (k, v) into *c (rows looked up for ROWS and RUN). */
static int decode_entry(MDB_txn *txn, const ckr_store *s, const MDB_val *k,
			const MDB_val *v, ckr_change *c, rowbuf *b)
{
	const uint8_t *p = v->mv_data;
	if (k->mv_size != 8 || v->mv_size < ENTRY_HEADER || p[1] > CKR_RUN_ID_MAX ||
	    v->mv_size < ENTRY_HEADER + (size_t)p[1])
		return CKR_ECORRUPT;
	memset(c, 0, sizeof *c);
	c->number = ckr_st_get_be64(k->mv_data);
	c->kind = (ckr_change_kind)p[0];
	c->id_len = p[1];
	memcpy(c->id, p + ENTRY_HEADER, c->id_len);
	uint32_t flags = (uint32_t)ckr_st_get_le(p + 2, 2);
	c->incarnation = (uint32_t)ckr_st_get_le(p + 4, 4);
	uint64_t a = ckr_st_get_le(p + 8, 8), bb = ckr_st_get_le(p + 16, 8),
		 cc = ckr_st_get_le(p + 24, 8);
	const uint8_t *tail = p + ENTRY_HEADER + c->id_len;
	size_t tail_len = v->mv_size - ENTRY_HEADER - c->id_len;
	b->n = 0;
	switch (c->kind) {
	case CKR_CHANGE_ROWS: {
		c->seq_lo = a;
		c->seq_hi = bb;
		c->lane = (uint32_t)cc;
		if (tail_len != 8 || bb < a)
			return CKR_ECORRUPT;
		c->created_ns = ckr_st_get_le(tail, 8);
		bool same;
		int rc = same_run(txn, s, c, &same);
		if (rc || !same)
			return rc ? rc : (a == 0 ? begin_info(txn, s, c) : 0);
		rc = event_rows(txn, s, c->id, c->id_len, c->incarnation, a, bb, b);
		size_t found = b->n;
		if (rc == 0 && found < bb - a + 1)
			rc = aside_rows(txn, s, c->id, c->id_len, c->incarnation, a, bb, b);
		if (rc)
			return rc;
		if (b->n > found)
			qsort(b->v, b->n, sizeof *b->v, cmp_row);
		c->rows = b->v;
		c->n_rows = b->n;
		return a == 0 ? begin_info(txn, s, c) : 0;
	}
	case CKR_CHANGE_FINISH:
		c->finished_ns = a;
		c->state = (ckr_run_state)bb;
		c->cleared = flags & 1;
		if (cc > tail_len)
			return CKR_ECORRUPT;
		c->error = tail;
		c->error_len = (size_t)cc;
		return 0;
	case CKR_CHANGE_CLAIM:
	case CKR_CHANGE_IMPORT:
		c->prefix_seq = a;
		c->attempts = (uint32_t)bb;
		return 0;
	case CKR_CHANGE_PRUNE:
		c->removed = flags & 1;
		return 0;
	case CKR_CHANGE_RETRY:
		c->attempts = (uint32_t)bb;
		return 0;
	case CKR_CHANGE_RUN:
		return decode_run(txn, s, flags, a, bb, cc, tail, tail_len, c, b);
	case CKR_CHANGE_MARK:
		if (tail_len != CKR_EPOCH_BYTES + cc * 16)
			return CKR_ECORRUPT;
		if (cc > b->cap_lanes) {
			ckr_change_lane *l = realloc(b->lanes, cc * sizeof *l);
			if (!l)
				return -ENOMEM;
			b->lanes = l;
			b->cap_lanes = cc;
		}
		memcpy(c->epoch, tail, CKR_EPOCH_BYTES);
		for (size_t i = 0; i < cc; i++) {
			const uint8_t *q = tail + CKR_EPOCH_BYTES + i * 16;
			b->lanes[i].lane = (uint32_t)ckr_st_get_le(q, 4);
			b->lanes[i].pos = ckr_st_get_le(q + 8, 8);
		}
		c->lanes = b->lanes;
		c->n_lanes = (size_t)cc;
		return 0;
	default:
		return CKR_ECORRUPT;
	}
}

static int walk_changes(MDB_txn *txn, const ckr_store *s, uint64_t after, size_t max,
			ckr_change_fn fn, void *ctx, uint64_t *last, rowbuf *b)
{
	uint8_t kb[8];
	MDB_val k = { 8, kb }, v;
	MDB_cursor *cur;
	ckr_change ch;
	size_t n = 0;
	ckr_st_put_be64(kb, after + 1);
	int rc = mdb_cursor_open(txn, s->dbi[CKR_DB_CHANGES], &cur);
	if (rc)
		return ckr_st_err(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && k.mv_size == 8 && ckr_st_get_be64(k.mv_data) != after + 1)
		rc = CKR_ETRUNC; /* a gap: the entry after `after` was trimmed */
	while (rc == 0 && (max == 0 || n < max)) {
		rc = decode_entry(txn, s, &k, &v, &ch, b);
		if (rc == 0)
			rc = fn(ctx, &ch);
		if (rc)
			break;
		*last = ch.number;
		n++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : (rc > 0 ? ckr_st_err(rc) : rc);
}

int ckr_store_changes(ckr_store *s, uint64_t after, size_t max, ckr_change_fn fn,
		      void *ctx, uint64_t *last)
{
	MDB_txn *txn;
	rowbuf b = { 0 };
	uint64_t dummy;
	if (!s || !fn)
		return -EINVAL;
	if (!last)
		last = &dummy;
	*last = after;
	int rc = ckr_st_txn_begin(s, false, &txn);
	if (rc)
		return rc;
	rc = walk_changes(txn, s, after, max, fn, ctx, last, &b);
	ckr_st_txn_abort(s, txn);
	free(b.v);
	free(b.lanes);
	return rc;
}

/* ---- snapshot ---- */

static int snapshot_run(MDB_txn *txn, const ckr_store *s, const MDB_val *k,
			const MDB_val *v, ckr_change_fn fn, void *ctx, rowbuf *b)
{
	ckr_rec r;
	ckr_change c;
	if (k->mv_size == 0 || k->mv_size > CKR_RUN_ID_MAX ||
	    ckr_st_rec_decode(v->mv_data, v->mv_size, &r) != 0)
		return 0; /* skipped, as ckr_store_list skips it */
	memset(&c, 0, sizeof c);
	c.kind = CKR_CHANGE_RUN;
	memcpy(c.id, k->mv_data, k->mv_size);
	c.id_len = k->mv_size;
	c.incarnation = r.incarnation;
	c.state = (ckr_run_state)r.state;
	c.error = r.error;
	c.error_len = r.error_len;
	c.finished_ns = r.finished_ns;
	c.cleared = r.flags & CKR_REC_CLEARED;
	c.moved = r.flags & CKR_REC_MOVED;
	c.prefix_seq = r.last_seq;
	c.attempts = r.attempts;
	c.run_kind = (ckr_kind)r.kind;
	c.label = (const char *)r.label;
	c.label_len = r.label_len;
	c.meta = r.meta;
	c.meta_len = r.meta_len;
	c.created_ns = r.created_ns;
	b->n = 0;
	int rc = event_rows(txn, s, c.id, c.id_len, 0, 0, UINT64_MAX, b);
	if (rc == 0 && r.set_aside)
		rc = aside_rows(txn, s, c.id, c.id_len, 0, 0, UINT64_MAX, b);
	if (rc)
		return rc;
	c.rows = b->v;
	c.n_rows = b->n;
	return fn(ctx, &c);
}

int ckr_store_snapshot(ckr_store *s, ckr_change_fn fn, void *ctx, uint64_t *at)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = { 8, "log_last" }, v;
	rowbuf b = { 0 };
	if (!s || !fn || !at)
		return -EINVAL;
	int rc = ckr_st_txn_begin(s, false, &txn);
	if (rc)
		return rc;
	rc = mdb_get(txn, s->dbi[CKR_DB_META], &k, &v);
	*at = rc == 0 && v.mv_size == 8 ? ckr_st_get_le(v.mv_data, 8) : 0;
	rc = mdb_cursor_open(txn, s->dbi[CKR_DB_RUNS], &cur);
	if (rc == 0) {
		while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
			rc = snapshot_run(txn, s, &k, &v, fn, ctx, &b);
			if (rc)
				break;
		}
		mdb_cursor_close(cur);
		rc = rc == MDB_NOTFOUND ? 0 : (rc > 0 ? ckr_st_err(rc) : rc);
	} else {
		rc = ckr_st_err(rc);
	}
	ckr_st_txn_abort(s, txn);
	free(b.v);
	free(b.lanes);
	return rc;
}

/* ---- moved runs ---- */

int ckr_store_mark_moved(ckr_store *s, const void *id, size_t id_len, const char *host,
			 uint32_t incarnation)
{
	ckr_buf rec = { 0 }, tmp = { 0 };
	char err[CKR_REC_ERROR_MAX];
	MDB_txn *txn;
	ckr_rec r;
	if (!s || !id || id_len == 0 || id_len > CKR_RUN_ID_MAX || !host)
		return -EINVAL;
	int rc = ckr_st_may_write(s);
	if (rc == 0)
		rc = ckr_st_txn_begin(s, true, &txn);
	if (rc)
		return rc;
	rc = ckr_st_rec_get(txn, s, id, id_len, &r, &rec);
	if (rc == 0 && r.state != CKR_RUN_RUNNING)
		rc = CKR_ETERMINAL;
	if (rc == 0) {
		int n = snprintf(err, sizeof err, "moved to host %s (incarnation %u)", host,
				 incarnation);
		r.state = CKR_RUN_FAILED;
		r.flags |= CKR_REC_MOVED;
		r.updated_ns = r.finished_ns = ckr_st_now_ns();
		r.error = (const uint8_t *)err;
		r.error_len = n < 0 ? 0 : (size_t)n >= sizeof err ? sizeof err - 1 : (size_t)n;
		rc = ckr_st_rec_put(txn, s, id, id_len, &r, &tmp);
	}
	if (rc == 0)
		rc = ckr_st_txn_commit(s, txn);
	else
		ckr_st_txn_abort(s, txn);
	free(rec.p);
	free(tmp.p);
	return ckr_st_public_err(rc);
}

/* ---- imports ---- */

/* The rows must be the begin (seq 0) then 1..n, each decoding, of the id. */
static int check_rows(const ckr_adopt *im, ckr_event *begin)
{
	for (size_t i = 0; i < im->n_rows; i++) {
		ckr_event ev;
		const ckr_change_row *row = &im->rows[i];
		if (row->seq != i)
			return -EINVAL;
		if (ckr_event_decode(row->data, row->size, &ev) != 0 || ev.seq != i ||
		    ev.id_len != im->id_len || memcmp(ev.id, im->id, im->id_len))
			return CKR_ECORRUPT;
		if ((i == 0) != (ev.type == CKR_EV_BEGIN))
			return -EINVAL;
		if (i == 0)
			*begin = ev;
	}
	return im->n_rows ? 0 : -EINVAL;
}

static int import_in(MDB_txn *txn, ckr_store *s, const ckr_adopt *im,
		     const ckr_event *begin, const ckr_identity *self, uint64_t writer,
		     ckr_rec *r)
{
	bool epoch_set;
	ckr_buf tmp = { 0 };
	ckr_rec old;
	int rc = ckr_st_rec_get(txn, s, im->id, im->id_len, &old, NULL);
	if (rc == 0 && !(old.flags & CKR_REC_MOVED))
		return -EEXIST;
	if (rc == 0) /* it moved away once and comes back: replace it */
		rc = ckr_st_rec_clear(txn, s, im->id, im->id_len, &old);
	if (rc && rc != -ENOENT)
		return rc;
	rc = 0;
	memset(r, 0, sizeof *r);
	r->state = CKR_RUN_RUNNING;
	r->kind = (uint8_t)begin->u.begin.kind;
	r->incarnation = im->incarnation;
	r->owner = *self;
	r->writer = writer;
	r->attempts = im->attempts;
	r->flags = CKR_REC_IMPORTED;
	r->created_ns = im->created_ns;
	r->updated_ns = ckr_st_now_ns();
	r->label = (const uint8_t *)begin->u.begin.label;
	r->label_len = begin->u.begin.label_len;
	r->meta = begin->u.begin.meta;
	r->meta_len = begin->u.begin.meta_len;
	for (size_t i = 0; rc == 0 && i < im->n_rows; i++) {
		uint8_t kb[CKR_EVENT_KEY_MAX];
		MDB_val k = { ckr_st_event_key(kb, im->id, im->id_len, i), kb };
		MDB_val v = { im->rows[i].size, (void *)im->rows[i].data };
		rc = ckr_st_err(mdb_put(txn, s->dbi[CKR_DB_EVENTS], &k, &v, 0));
		r->bytes += im->rows[i].size;
	}
	r->events = im->n_rows;
	r->last_seq = r->prefix_seq = im->n_rows - 1;
	if (rc == 0)
		rc = ckr_st_current_epoch(txn, s, r->epoch, &epoch_set);
	if (rc == 0)
		rc = ckr_st_rec_put(txn, s, im->id, im->id_len, r, &tmp);
	if (rc == 0)
		rc = ckr_clog_put_import(txn, s, im->id, im->id_len, r);
	free(tmp.p);
	return rc;
}

int ckr_store_adopt(ckr_store *s, const ckr_adopt *im, ckr_claim *out)
{
	ckr_identity self;
	ckr_event begin = { 0 };
	uint64_t writer;
	MDB_txn *txn;
	ckr_rec r;
	if (!s || !im || !out || !im->id || im->id_len == 0 ||
	    im->id_len > CKR_RUN_ID_MAX || im->incarnation == 0 || !im->rows)
		return -EINVAL;
	int rc = ckr_st_may_write(s);
	if (rc == 0)
		rc = check_rows(im, &begin);
	if (rc == 0)
		rc = ckr_proc_self_identity(&self);
	do {
		if (rc == 0 && getrandom(&writer, sizeof writer, 0) != (ssize_t)sizeof writer)
			rc = -errno;
	} while (rc == 0 && writer == 0);
	if (rc == 0)
		rc = ckr_st_txn_begin(s, true, &txn);
	if (rc)
		return rc;
	rc = import_in(txn, s, im, &begin, &self, writer, &r);
	if (rc == 0)
		rc = ckr_st_txn_commit(s, txn);
	else
		ckr_st_txn_abort(s, txn);
	if (rc)
		return ckr_st_public_err(rc);
	memset(out, 0, sizeof *out);
	memcpy(out->id, im->id, im->id_len);
	out->id_len = im->id_len;
	out->kind = (ckr_kind)begin.u.begin.kind;
	out->incarnation = r.incarnation;
	out->writer = writer;
	out->owner_token = self.token;
	out->owner_nonce = self.nonce;
	out->next_seq = r.last_seq + 1;
	out->bytes = r.bytes;
	out->attempts = r.attempts;
	size_t n = begin.u.begin.label_len < CKR_LABEL_MAX ? begin.u.begin.label_len : CKR_LABEL_MAX;
	memcpy(out->label, begin.u.begin.label, n);
	out->label[n] = '\0';
	return 0;
}
