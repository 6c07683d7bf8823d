/*
 * store_recover.c — the recovery side of the store (ckring.h): list runs,
 * read one, claim an interrupted run (one short write transaction, so LMDB's
 * single writer makes the claim atomic across processes), load its resume
 * state, and prune finished runs.
 *
 * Liveness of a run's owner (ring/PROTOCOL.md, "Ended owners"):
 *   ended  its identity (token + nonce) is in `owners` — the flusher saw it
 *          gone and drained every lane it held — or the run was written
 *          under a retired segment epoch: nothing of it can still arrive;
 *   dead   not ended, but /proc says the token is gone (same pid namespace
 *          only): its events may still be in the ring (CKR_ENOTDRAINED);
 *   alive  otherwise (also an owner of another pid namespace: only the
 *          flusher's kernel-backed verdict can end it).
 * "Interrupted" = RUNNING and the owner is not alive; claimable = RUNNING
 * and ended. A claim stamps the run with the current epoch: the claimer
 * writes into the current segment.
 *
 * Concurrency: any thread of any process, concurrently with the flusher;
 * claims and prunes refuse (-EBUSY) while the calling thread itself holds a
 * batch open on the same environment (LMDB allows one write transaction
 * per thread).
 */
#include "persist/changelog.h"
#include "persist/store_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "shm/proc.h"

#define DEFAULT_MAX_ATTEMPTS 5
#define GAPS_MAX (UINT64_C(1) << 20) /* more is not a gap, it is damage */
static const char EXHAUSTED[] = "recovery exhausted";

static bool id_ok(const void *id, size_t id_len)
{
	return id && id_len > 0 && id_len <= CKR_RUN_ID_MAX;
}

/* Copy n bytes as a NUL-terminated string into dst[cap], cut to fit. */
static void copy_text(char *dst, size_t cap, const uint8_t *src, size_t n)
{
	if (n > cap - 1)
		n = cap - 1;
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

owner_state ckr_st_judge_owner(MDB_txn *txn, const ckr_store *s, const ckr_rec *r,
			       const uint8_t epoch[CKR_EPOCH_BYTES], bool epoch_set)
{
	if (ckr_st_owner_ended(txn, s, r, epoch, epoch_set))
		return OWNER_ENDED;
	return ckr_proc_judge(r->owner.token, r->owner.pidns) == CKR_PROC_DEAD
		       ? OWNER_DEAD
		       : OWNER_ALIVE;
}

void ckr_st_fill_info(ckr_run_info *in, const uint8_t *id, size_t id_len,
		      const ckr_rec *r, owner_state os)
{
	memset(in, 0, sizeof *in);
	memcpy(in->id, id, id_len);
	in->id_len = id_len;
	in->state = (ckr_run_state)r->state;
	in->kind = (ckr_kind)r->kind;
	in->owner_pid = (uint32_t)ckr_token_pid(r->owner.token);
	in->owner_start = ckr_token_start(r->owner.token);
	in->owner_alive = os == OWNER_ALIVE;
	in->owner_drained = os == OWNER_ENDED;
	in->incarnation = r->incarnation;
	in->attempts = r->attempts;
	in->events = r->events;
	in->last_seq = r->last_seq;
	in->prefix_seq = r->prefix_seq;
	in->set_aside = r->set_aside;
	in->created_ns = r->created_ns;
	in->finished_ns = r->finished_ns;
	in->bytes = r->bytes;
	copy_text(in->label, sizeof in->label, r->label, r->label_len);
	copy_text(in->error, sizeof in->error, r->error, r->error_len);
}

/* ---- list / get ---- */

static bool wanted(ckr_list_which which, const ckr_run_info *in)
{
	if (which == CKR_LIST_ALL)
		return true;
	if (in->state != CKR_RUN_RUNNING)
		return false;
	return which == CKR_LIST_RUNNING || !in->owner_alive;
}

/* Append *in to the growing array *v (n used, *cap allocated). */
static int push_info(ckr_run_info **v, size_t n, size_t *cap,
		     const ckr_run_info *in)
{
	if (n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		ckr_run_info *p = realloc(*v, c * sizeof *p);
		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = c;
	}
	(*v)[n] = *in;
	return 0;
}

/* Walk `runs`; records that do not decode are skipped (ckr_store_get on
 * them reports CKR_ECORRUPT), so one bad record cannot hide the others. */
static int list_runs(ckr_store *s, MDB_txn *txn, ckr_list_which which,
		     ckr_run_info **v, size_t *n)
{
	uint8_t epoch[CKR_EPOCH_BYTES];
	bool epoch_set;
	size_t cap = 0;
	MDB_cursor *c;
	MDB_val k, val;
	ckr_run_info in;
	ckr_rec r;
	int rc = ckr_st_current_epoch(txn, s, epoch, &epoch_set);

	if (rc)
		return rc;
	rc = mdb_cursor_open(txn, s->dbi[CKR_DB_RUNS], &c);
	if (rc)
		return ckr_st_err(rc);
	int err = 0;
	while (!err && (rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) == 0) {
		if (!id_ok(k.mv_data, k.mv_size) ||
		    ckr_st_rec_decode(val.mv_data, val.mv_size, &r) != 0)
			continue;
		owner_state os = r.state == CKR_RUN_RUNNING
					 ? ckr_st_judge_owner(txn, s, &r, epoch, epoch_set)
					 : OWNER_ENDED;
		ckr_st_fill_info(&in, k.mv_data, k.mv_size, &r, os);
		if (!wanted(which, &in))
			continue;
		err = push_info(v, *n, &cap, &in);
		if (!err)
			(*n)++;
	}
	mdb_cursor_close(c);
	if (err)
		return err;
	return rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

int ckr_store_list(ckr_store *s, ckr_list_which which, ckr_run_info **out,
		   size_t *n)
{
	ckr_run_info *v = NULL;
	size_t count = 0;
	MDB_txn *txn;
	int rc;

	if (!s || !out || !n || which < CKR_LIST_INTERRUPTED || which > CKR_LIST_ALL)
		return -EINVAL;
	rc = ckr_st_txn_begin(s, false, &txn);
	if (rc)
		return rc;
	rc = list_runs(s, txn, which, &v, &count);
	ckr_st_txn_abort(s, txn);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = count;
	return 0;
}

int ckr_store_get(ckr_store *s, const void *id, size_t id_len,
		  ckr_run_info *out)
{
	uint8_t epoch[CKR_EPOCH_BYTES];
	bool epoch_set;
	MDB_txn *txn;
	ckr_rec r;
	int rc;

	if (!s || !id_ok(id, id_len) || !out)
		return -EINVAL;
	rc = ckr_st_txn_begin(s, false, &txn);
	if (rc)
		return rc;
	rc = ckr_st_rec_get(txn, s, id, id_len, &r, NULL);
	if (rc == 0)
		rc = ckr_st_current_epoch(txn, s, epoch, &epoch_set);
	if (rc == 0)
		ckr_st_fill_info(out, id, id_len, &r,
			  r.state == CKR_RUN_RUNNING ? ckr_st_judge_owner(txn, s, &r, epoch, epoch_set)
						     : OWNER_ENDED);
	ckr_st_txn_abort(s, txn);
	return rc;
}

/* Append id to *v unless it is there. */
static int add_identity(ckr_identity **v, size_t *n, size_t *cap, const ckr_identity *id)
{
	for (size_t i = 0; i < *n; i++)
		if (ckr_identity_eq(&(*v)[i], id))
			return 0;
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		ckr_identity *p = realloc(*v, c * sizeof *p);
		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = c;
	}
	(*v)[(*n)++] = *id;
	return 0;
}

static int dead_owners(ckr_store *s, MDB_txn *txn, ckr_identity **v, size_t *n)
{
	uint8_t epoch[CKR_EPOCH_BYTES];
	bool epoch_set;
	size_t cap = 0;
	MDB_cursor *c;
	MDB_val k, val;
	ckr_rec r;
	int rc = ckr_st_current_epoch(txn, s, epoch, &epoch_set);

	if (rc)
		return rc;
	rc = mdb_cursor_open(txn, s->dbi[CKR_DB_RUNS], &c);
	if (rc)
		return ckr_st_err(rc);
	int err = 0;
	while (!err && (rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) == 0) {
		if (ckr_st_rec_decode(val.mv_data, val.mv_size, &r) != 0 ||
		    r.state != CKR_RUN_RUNNING)
			continue;
		if (ckr_st_judge_owner(txn, s, &r, epoch, epoch_set) == OWNER_DEAD)
			err = add_identity(v, n, &cap, &r.owner);
	}
	mdb_cursor_close(c);
	if (err)
		return err;
	return rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

static int gone_owners(ckr_store *s, MDB_txn *txn, ckr_identity **v, size_t *n)
{
	size_t cap = 0;
	MDB_cursor *c;
	MDB_val k, val;
	int rc = mdb_cursor_open(txn, s->dbi[CKR_DB_GONE], &c);

	if (rc)
		return ckr_st_err(rc);
	int err = 0;
	while (!err && (rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) == 0) {
		if (k.mv_size != 16 || val.mv_size != 16)
			continue; /* not ours: never taken for an identity */
		ckr_identity id = {
			.token = ckr_st_get_be64(k.mv_data),
			.nonce = ckr_st_get_be64((const uint8_t *)k.mv_data + 8),
			.pidns = ckr_st_get_le((const uint8_t *)val.mv_data + 8, 8),
		};
		if (id.token != 0)
			err = add_identity(v, n, &cap, &id);
	}
	mdb_cursor_close(c);
	if (err)
		return err;
	return rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

int ckr_store_gone_owners(ckr_store *s, ckr_identity **out, size_t *n)
{
	ckr_identity *v = NULL;
	size_t count = 0;
	MDB_txn *txn;
	int rc;

	if (!s || !out || !n)
		return -EINVAL;
	if (!ckr_st_has_gone(s)) { /* the flusher's: a reader may not have it */
		*out = NULL;
		*n = 0;
		return 0;
	}
	rc = ckr_st_txn_begin(s, false, &txn);
	if (rc)
		return rc;
	rc = gone_owners(s, txn, &v, &count);
	ckr_st_txn_abort(s, txn);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = count;
	return 0;
}

int ckr_store_dead_owners(ckr_store *s, ckr_identity **out, size_t *n)
{
	ckr_identity *v = NULL;
	size_t count = 0;
	MDB_txn *txn;
	int rc;

	if (!s || !out || !n)
		return -EINVAL;
	rc = ckr_st_txn_begin(s, false, &txn);
	if (rc)
		return rc;
	rc = dead_owners(s, txn, &v, &count);
	ckr_st_txn_abort(s, txn);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = count;
	return 0;
}

int ckr_store_begin_check(void *ctx, const void *id, size_t id_len)
{
	ckr_run_info info;
	int rc = ckr_store_get(ctx, id, id_len, &info);
	if (rc == 0)
		return -EEXIST;
	return rc == -ENOENT ? 0 : rc;
}

/* ---- claim ---- */

/* May the process `self` take r over (K1)? @return 0 or the refusal. */
static int claim_check(MDB_txn *txn, const ckr_store *s, const ckr_rec *r,
		       const ckr_identity *self)
{
	uint8_t epoch[CKR_EPOCH_BYTES];
	bool epoch_set;
	int rc;

	if (r->state != CKR_RUN_RUNNING)
		return CKR_ETERMINAL;
	rc = ckr_st_current_epoch(txn, s, epoch, &epoch_set);
	if (rc)
		return rc;
	switch (ckr_st_judge_owner(txn, s, r, epoch, epoch_set)) {
	case OWNER_ENDED:
		return 0;
	case OWNER_DEAD:
		return CKR_ENOTDRAINED;
	case OWNER_ALIVE:
		break;
	}
	/* A live owner that took the run by a claim is a recoverer that won:
	 * the caller lost a race. Otherwise the run simply runs. */
	if (ckr_identity_eq(&r->owner, self) || r->attempts == 0)
		return CKR_ENOTINTERRUPTED;
	return CKR_ECLAIMED;
}

static uint32_t max_attempts(MDB_txn *txn, const ckr_store *s)
{
	uint32_t n;

	if (s->max_attempts)
		return s->max_attempts;
	if (ckr_st_get_u32(txn, s->dbi[CKR_DB_META], "max_attempts", &n) == 0 && n > 0)
		return n;
	return DEFAULT_MAX_ATTEMPTS;
}

/* K3: move the rows past the gap-free prefix to set_aside. *moved: rows. */
static int set_aside_tail(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
			  size_t id_len, ckr_rec *r, uint64_t *moved)
{
	uint8_t kb[CKR_EVENT_KEY_MAX], ab[CKR_ASIDE_KEY_MAX];
	size_t kn = ckr_st_event_key(kb, id, id_len, r->prefix_seq + 1);
	MDB_cursor *c;
	MDB_val k, v;
	ckr_event ev;
	int rc = mdb_cursor_open(txn, s->dbi[CKR_DB_EVENTS], &c);

	*moved = 0;
	if (rc)
		return ckr_st_err(rc);
	for (;;) {
		k.mv_size = kn;
		k.mv_data = kb;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 && (k.mv_size != kn || memcmp(k.mv_data, kb, kn - 8)))) {
			rc = 0;
			break;
		}
		if (rc)
			break;
		uint64_t seq = ckr_st_get_be64((const uint8_t *)k.mv_data + kn - 8);
		uint32_t inc = ckr_event_decode(v.mv_data, v.mv_size, &ev) == 0
				       ? ev.incarnation
				       : 0;
		MDB_val ak = { ckr_st_aside_key(ab, id, id_len, inc, seq), ab };
		r->bytes -= v.mv_size <= r->bytes ? v.mv_size : r->bytes;
		rc = mdb_put(txn, s->dbi[CKR_DB_SET_ASIDE], &ak, &v, 0);
		if (rc == 0)
			rc = mdb_cursor_del(c, 0);
		if (rc)
			break;
		(*moved)++;
	}
	mdb_cursor_close(c);
	return ckr_st_err(rc);
}

/* Write the claim into r: a new incarnation and writer owned by self with
 * the dead writer's tenure closed, or, past the maximum, a failed run.
 * @return 0; CKR_EEXHAUSTED (r written); -errno. */
static int claim_write(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		       size_t id_len, ckr_rec *r, const ckr_identity *self,
		       uint64_t writer, ckr_claim *out, ckr_buf *tmp)
{
	bool epoch_set;
	uint64_t moved = 0;
	int rc;

	r->updated_ns = ckr_st_now_ns();
	if ((uint64_t)r->attempts + 1 > max_attempts(txn, s)) {
		r->state = CKR_RUN_FAILED;
		r->finished_ns = r->updated_ns;
		r->error = (const uint8_t *)EXHAUSTED;
		r->error_len = sizeof EXHAUSTED - 1;
		rc = ckr_st_rec_put(txn, s, id, id_len, r, tmp);
		if (rc == 0)
			rc = ckr_clog_put_finish(txn, s, id, id_len, r);
		return rc ? rc : CKR_EEXHAUSTED;
	}
	out->gap_seq = r->last_seq > r->prefix_seq ? r->prefix_seq + 1 : 0;
	if (out->gap_seq) {
		rc = set_aside_tail(txn, s, id, id_len, r, &moved);
		if (rc)
			return rc;
		r->events -= moved <= r->events ? moved : r->events;
		r->set_aside += moved;
		r->last_seq = r->prefix_seq;
	}
	out->set_aside = moved;
	r->incarnation++;
	r->attempts++;
	r->owner = *self;
	r->writer = writer;
	rc = ckr_st_current_epoch(txn, s, r->epoch, &epoch_set);
	if (rc == 0)
		rc = ckr_st_rec_put(txn, s, id, id_len, r, tmp);
	return rc ? rc : ckr_clog_put_claim(txn, s, id, id_len, r, moved);
}

static void fill_claim(ckr_claim *out, const uint8_t *id, size_t id_len,
		       const ckr_rec *r)
{
	memcpy(out->id, id, id_len);
	out->id_len = id_len;
	out->kind = (ckr_kind)r->kind;
	out->incarnation = r->incarnation;
	out->writer = r->writer;
	out->owner_token = r->owner.token;
	out->owner_nonce = r->owner.nonce;
	out->next_seq = r->last_seq + 1;
	out->bytes = r->bytes;
	out->attempts = r->attempts;
	copy_text(out->label, sizeof out->label, r->label, r->label_len);
}

/* A random writer id for a claim (never 0). */
static int claim_writer(uint64_t *w)
{
	do {
		if (getrandom(w, sizeof *w, 0) != (ssize_t)sizeof *w)
			return -errno;
	} while (*w == 0);
	return 0;
}

/* One claim inside txn (K1..K3). @return 0 (written, *out filled);
 * CKR_EEXHAUSTED (written: the run failed); a refusal; or a store error
 * (the transaction is then unusable). */
static int claim_in(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		    size_t id_len, const ckr_identity *self, uint64_t writer,
		    ckr_buf *rec, ckr_buf *tmp, ckr_claim *out)
{
	ckr_claim cl;
	ckr_rec r;
	memset(&cl, 0, sizeof cl);
	int rc = ckr_st_rec_get(txn, s, id, id_len, &r, rec);
	if (rc == 0)
		rc = claim_check(txn, s, &r, self);
	if (rc == 0)
		rc = claim_write(txn, s, id, id_len, &r, self, writer, &cl, tmp);
	if (rc == 0) {
		fill_claim(&cl, id, id_len, &r);
		*out = cl;
	}
	return rc;
}

/* A refusal of one run, as opposed to a failure of the transaction. */
static bool is_refusal(int rc)
{
	return rc == -ENOENT || rc == CKR_ETERMINAL || rc == CKR_ENOTINTERRUPTED ||
	       rc == CKR_ECLAIMED || rc == CKR_ENOTDRAINED || rc == CKR_ECORRUPT;
}

/* The claimer's identity and a first writer id. @return 0 or -errno. */
static int claim_prepare(ckr_store *s, ckr_identity *self, uint64_t *writer)
{
	int rc = ckr_st_may_write(s);
	if (rc == 0)
		rc = ckr_proc_self_identity(self);
	return rc ? rc : claim_writer(writer);
}

int ckr_store_claim(ckr_store *s, const void *id, size_t id_len,
		    ckr_claim *out)
{
	ckr_buf rec = { 0 }, tmp = { 0 };
	ckr_identity self;
	uint64_t writer;
	MDB_txn *txn;
	int rc;

	if (!s || !id_ok(id, id_len) || !out)
		return -EINVAL;
	rc = claim_prepare(s, &self, &writer);
	if (rc == 0)
		rc = ckr_st_txn_begin(s, true, &txn);
	if (rc)
		return rc;
	rc = claim_in(txn, s, id, id_len, &self, writer, &rec, &tmp, out);
	if (rc == 0 || rc == CKR_EEXHAUSTED) {
		int crc = ckr_st_txn_commit(s, txn);
		rc = crc ? crc : rc;
	} else {
		ckr_st_txn_abort(s, txn);
	}
	free(rec.p);
	free(tmp.p);
	return ckr_st_public_err(rc);
}

int ckr_store_claim_batch(ckr_store *s, const ckr_run_info *runs, size_t n,
			  ckr_claim *out, int *results)
{
	ckr_buf rec = { 0 }, tmp = { 0 };
	ckr_identity self;
	uint64_t writer;
	MDB_txn *txn;
	size_t won = 0;
	bool wrote = false;
	int rc;

	if (!s || (n && (!runs || !out || !results)) || n > INT_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!id_ok(runs[i].id, runs[i].id_len))
			return -EINVAL;
	rc = claim_prepare(s, &self, &writer);
	if (rc == 0 && n)
		rc = ckr_st_txn_begin(s, true, &txn);
	if (rc || n == 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		/* Distinct writer ids from one random draw (mix64 is a bijection). */
		uint64_t w = ckr_mix64(writer + i);
		rc = claim_in(txn, s, runs[i].id, runs[i].id_len, &self, w ? w : 1, &rec,
			      &tmp, &out[i]);
		results[i] = ckr_st_public_err(rc);
		wrote = wrote || rc == 0 || rc == CKR_EEXHAUSTED;
		won += rc == 0;
		if (rc && rc != CKR_EEXHAUSTED && !is_refusal(rc))
			break; /* the transaction failed: nothing is claimed */
		rc = 0;
	}
	if (rc == 0 && wrote)
		rc = ckr_st_txn_commit(s, txn);
	else
		ckr_st_txn_abort(s, txn);
	free(rec.p);
	free(tmp.p);
	return rc ? ckr_st_public_err(rc) : (int)won;
}

/* ---- resume ---- */

/*
 * The resume state is built in two walks of the run's rows inside one read
 * transaction: the first sizes everything, the second copies into a single
 * allocation laid out as
 *     ckr_resume | ckr_blob[n_items] | uint64_t gaps[n_gaps] | bytes
 * so ckr_resume_free() is one free().
 */
typedef struct walk {
	const ckr_rec *r;
	ckr_event_type want;   /* MESSAGE (single-loop) or PHASE (multi-phase) */
	const uint8_t *meta;   /* from the begin row, else the record */
	size_t meta_len;
	const uint8_t *label;
	size_t label_len;
	size_t n_items, n_gaps, n_aside, bytes; /* counted or filled so far */
	bool sizing;           /* walk 1: count only */
	ckr_blob *items;
	ckr_blob *aside;       /* set-aside rows */
	uint64_t *gaps;
	uint8_t *heap;         /* next free byte of the bytes area */
} walk;

static uint8_t *take_bytes(walk *w, const void *src, size_t n, bool nul)
{
	uint8_t *p = w->heap;

	if (n)
		memcpy(p, src, n);
	w->heap += n;
	if (nul)
		*w->heap++ = '\0';
	return p;
}

/* Record every missing sequence in [from, to). */
static int add_gaps(walk *w, uint64_t from, uint64_t to)
{
	if (to - from > GAPS_MAX - w->n_gaps)
		return -E2BIG;
	for (uint64_t q = from; q < to; q++) {
		if (w->gaps)
			w->gaps[w->n_gaps] = q;
		w->n_gaps++;
	}
	return 0;
}

/* A row of the gap-free prefix: count it, or copy it. */
/* A message or phase row: count it, or copy it into to[(*n)++]. */
static void add_blob(walk *w, const ckr_event *ev, ckr_blob *to, size_t *n)
{
	bool phase = ev->type == CKR_EV_PHASE;
	const uint8_t *data = phase ? ev->u.phase.data : ev->u.message.data;
	size_t len = phase ? ev->u.phase.len : ev->u.message.len;

	if (w->sizing) {
		w->bytes += len + (phase ? ev->u.phase.name_len + 1 : 0);
		(*n)++;
		return;
	}
	ckr_blob *b = &to[(*n)++];
	b->seq = ev->seq;
	b->incarnation = ev->incarnation;
	if (phase) {
		b->index = ev->u.phase.index;
		b->name = (char *)take_bytes(w, ev->u.phase.name,
					     ev->u.phase.name_len, true);
	}
	b->data = take_bytes(w, data, len, false);
	b->size = len;
}

/* One `events` row (key seq). *expect: the next seq of a gap-free run;
 * *prefix: no gap seen yet. */
static int walk_row(walk *w, const MDB_val *v, const uint8_t *id, size_t id_len,
		    uint64_t seq, uint64_t *expect, bool *prefix)
{
	ckr_event ev;
	int rc;

	if (ckr_event_decode(v->mv_data, v->mv_size, &ev) != 0 ||
	    ev.seq != seq || ev.id_len != id_len || memcmp(ev.id, id, id_len))
		return CKR_ECORRUPT;
	if (seq == 0) {
		if (ev.type != CKR_EV_BEGIN)
			return CKR_ECORRUPT;
		w->meta = ev.u.begin.meta;
		w->meta_len = ev.u.begin.meta_len;
		w->label = (const uint8_t *)ev.u.begin.label;
		w->label_len = ev.u.begin.label_len;
		return 0;
	}
	if (seq != *expect) {
		rc = add_gaps(w, *expect, seq);
		if (rc)
			return rc;
		*prefix = false;
	}
	*expect = seq + 1;
	if (*prefix && ev.type == w->want)
		add_blob(w, &ev, w->items, &w->n_items);
	return 0;
}

/* The run's set-aside rows (key id, incarnation, seq), in key order. */
static int walk_aside(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		      size_t id_len, walk *w)
{
	uint8_t kb[CKR_ASIDE_KEY_MAX];
	size_t kn = ckr_st_aside_key(kb, id, id_len, 0, 0);
	MDB_val k = { kn, kb }, v;
	MDB_cursor *c;
	ckr_event ev;
	int rc = mdb_cursor_open(txn, s->dbi[CKR_DB_SET_ASIDE], &c);

	if (rc)
		return ckr_st_err(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != kn || memcmp(k.mv_data, kb, 1 + id_len))
			break;
		if (ckr_event_decode(v.mv_data, v.mv_size, &ev) != 0 ||
		    (ev.type != CKR_EV_MESSAGE && ev.type != CKR_EV_PHASE)) {
			rc = CKR_ECORRUPT;
			break;
		}
		add_blob(w, &ev, w->aside, &w->n_aside);
	}
	mdb_cursor_close(c);
	if (rc == CKR_ECORRUPT)
		return rc;
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

static int walk_run(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		    size_t id_len, walk *w)
{
	uint8_t kb[CKR_EVENT_KEY_MAX];
	size_t kn = ckr_st_event_key(kb, id, id_len, 0);
	MDB_val k = { kn, kb }, v;
	uint64_t expect = 1;
	bool prefix = true;
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, s->dbi[CKR_DB_EVENTS], &c);

	if (rc)
		return ckr_st_err(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != kn || memcmp(k.mv_data, kb, kn - 8))
			break;
		rc = walk_row(w, &v, id, id_len,
			      ckr_st_get_be64((const uint8_t *)k.mv_data + kn - 8),
			      &expect, &prefix);
		if (rc)
			goto out;
	}
	rc = rc == 0 || rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
	/* Rows above the last stored one were never stored (a cleared run
	 * keeps last_seq but no rows: nothing is missing there). */
	if (rc == 0 && !(w->r->flags & CKR_REC_CLEARED) && expect <= w->r->last_seq)
		rc = add_gaps(w, expect, w->r->last_seq + 1);
out:
	mdb_cursor_close(c);
	return rc;
}

static void walk_init(walk *w, const ckr_rec *r)
{
	memset(w, 0, sizeof *w);
	w->r = r;
	w->want = r->kind == CKR_KIND_MULTI_PHASE ? CKR_EV_PHASE : CKR_EV_MESSAGE;
	w->meta = r->meta;
	w->meta_len = r->meta_len;
	w->label = r->label;
	w->label_len = r->label_len;
}

/* Both walks: the run's rows, then its set-aside rows. */
static int walk_all(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		    size_t id_len, walk *w)
{
	int rc = walk_run(txn, s, id, id_len, w);
	if (rc == 0 && w->r->set_aside)
		rc = walk_aside(txn, s, id, id_len, w);
	return rc;
}

/* Size (walk 1), allocate, fill (walk 2). */
static int build_resume(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
			size_t id_len, const ckr_rec *r, ckr_resume **out)
{
	walk w;
	int rc;

	walk_init(&w, r);
	w.sizing = true;
	rc = walk_all(txn, s, id, id_len, &w);
	if (rc)
		return rc;
	size_t n_items = w.n_items, n_gaps = w.n_gaps, n_aside = w.n_aside;
	size_t total = sizeof(ckr_resume) + (n_items + n_aside) * sizeof(ckr_blob) +
		       n_gaps * sizeof(uint64_t) + w.bytes + w.meta_len;
	uint8_t *block = calloc(1, total);
	if (!block)
		return -ENOMEM;
	ckr_resume *rs = (ckr_resume *)(void *)block;
	ckr_blob *items = (ckr_blob *)(void *)(rs + 1);
	ckr_blob *aside = items + n_items;
	uint64_t *gaps = (uint64_t *)(void *)(aside + n_aside);

	walk_init(&w, r);
	w.items = items;
	w.aside = aside;
	w.gaps = gaps;
	w.heap = (uint8_t *)(gaps + n_gaps);
	rc = walk_all(txn, s, id, id_len, &w);
	if (rc == 0 && (w.n_items != n_items || w.n_gaps != n_gaps || w.n_aside != n_aside))
		rc = -EIO; /* cannot happen within one read transaction */
	if (rc) {
		free(block);
		return rc;
	}
	memcpy(rs->id, id, id_len);
	rs->id_len = id_len;
	rs->kind = (ckr_kind)r->kind;
	rs->state = (ckr_run_state)r->state;
	rs->next_seq = r->last_seq + 1;
	if (r->kind == CKR_KIND_MULTI_PHASE) {
		rs->phases = n_items ? items : NULL;
		rs->n_phases = n_items;
	} else {
		rs->history = n_items ? items : NULL;
		rs->n_history = n_items;
	}
	rs->set_aside = n_aside ? aside : NULL;
	rs->n_set_aside = n_aside;
	rs->gaps = n_gaps ? gaps : NULL;
	rs->n_gaps = n_gaps;
	copy_text(rs->label, sizeof rs->label, w.label, w.label_len);
	rs->meta_len = w.meta_len;
	rs->meta = w.meta_len ? take_bytes(&w, w.meta, w.meta_len, false) : NULL;
	*out = rs;
	return 0;
}

int ckr_store_resume(ckr_store *s, const void *id, size_t id_len,
		     ckr_resume **out)
{
	MDB_txn *txn;
	ckr_rec r;
	int rc;

	if (!s || !id_ok(id, id_len) || !out)
		return -EINVAL;
	rc = ckr_st_txn_begin(s, false, &txn);
	if (rc)
		return rc;
	rc = ckr_st_rec_get(txn, s, id, id_len, &r, NULL);
	if (rc == 0)
		rc = build_resume(txn, s, id, id_len, &r, out);
	ckr_st_txn_abort(s, txn);
	return rc;
}

void ckr_resume_free(ckr_resume *rs)
{
	free(rs);
}

/* ---- prune ---- */

typedef struct idlist {
	struct {
		uint8_t len;
		uint8_t id[CKR_RUN_ID_MAX];
	} *v;
	size_t n, cap;
} idlist;

static int idlist_add(idlist *l, const void *id, size_t len)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		void *p = realloc(l->v, cap * sizeof *l->v);
		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n].len = (uint8_t)len;
	memcpy(l->v[l->n].id, id, len);
	l->n++;
	return 0;
}

/* Finished at least age_s seconds before now (age_s 0: never). */
static bool due(const ckr_rec *r, uint32_t age_s, uint64_t now)
{
	uint64_t age_ns = (uint64_t)age_s * 1000000000u;
	return age_s && r->finished_ns <= now && now - r->finished_ns >= age_ns;
}

static bool prunable(const ckr_rec *r, uint32_t completed_s, uint32_t failed_s,
		     uint64_t now)
{
	if (r->state == CKR_RUN_COMPLETED)
		return !(r->flags & CKR_REC_CLEARED) && due(r, completed_s, now);
	return r->state == CKR_RUN_FAILED && due(r, failed_s, now);
}

static int collect_prunable(MDB_txn *txn, const ckr_store *s, uint32_t completed_s,
			    uint32_t failed_s, idlist *l)
{
	uint64_t now = ckr_st_now_ns();
	MDB_cursor *c;
	MDB_val k, v;
	ckr_rec r;
	int rc = mdb_cursor_open(txn, s->dbi[CKR_DB_RUNS], &c);

	if (rc)
		return ckr_st_err(rc);
	int err = 0;
	while (!err && (rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		if (id_ok(k.mv_data, k.mv_size) &&
		    ckr_st_rec_decode(v.mv_data, v.mv_size, &r) == 0 &&
		    prunable(&r, completed_s, failed_s, now))
			err = idlist_add(l, k.mv_data, k.mv_size);
	}
	mdb_cursor_close(c);
	if (err)
		return err;
	return rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

/* Completed: clear to a tombstone (kept: a late duplicate begin must still
 * find it). Failed: delete the events and the record. */
static int prune_one(MDB_txn *txn, const ckr_store *s, const uint8_t *id,
		     size_t id_len, ckr_buf *rec, ckr_buf *tmp)
{
	MDB_val k = { id_len, (void *)id };
	ckr_rec r;
	int rc = ckr_st_rec_get(txn, s, id, id_len, &r, rec);

	if (rc)
		return rc;
	if (r.state == CKR_RUN_COMPLETED) {
		rc = ckr_st_rec_clear(txn, s, id, id_len, &r);
		if (rc == 0)
			rc = ckr_st_rec_put(txn, s, id, id_len, &r, tmp);
		return rc ? rc : ckr_clog_put_prune(txn, s, id, id_len, &r, false);
	}
	rc = ckr_st_delete_run_rows(txn, s, CKR_DB_EVENTS, id, id_len);
	if (rc == 0)
		rc = ckr_st_delete_run_rows(txn, s, CKR_DB_SET_ASIDE, id, id_len);
	if (rc == 0)
		rc = ckr_clog_put_prune(txn, s, id, id_len, &r, true);
	return rc ? rc : ckr_st_err(mdb_del(txn, s->dbi[CKR_DB_RUNS], &k, NULL));
}

int ckr_store_prune(ckr_store *s, uint32_t completed_age_s, uint32_t failed_age_s)
{
	ckr_buf rec = { 0 }, tmp = { 0 };
	idlist l = { 0 };
	MDB_txn *txn;
	int rc = ckr_st_may_write(s);
	if (rc)
		return rc;
	if (!completed_age_s && !failed_age_s)
		return 0;
	rc = ckr_st_txn_begin(s, true, &txn);
	if (rc)
		return rc;
	rc = collect_prunable(txn, s, completed_age_s, failed_age_s, &l);
	for (size_t i = 0; rc == 0 && i < l.n; i++)
		rc = prune_one(txn, s, l.v[i].id, l.v[i].len, &rec, &tmp);
	if (rc)
		ckr_st_txn_abort(s, txn);
	else
		rc = ckr_st_txn_commit(s, txn);
	free(rec.p);
	free(tmp.p);
	free(l.v);
	if (rc)
		return ckr_st_public_err(rc);
	return l.n > INT_MAX ? INT_MAX : (int)l.n;
}
