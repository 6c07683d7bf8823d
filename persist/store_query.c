/*
 * store_query.c — read-only views for operators and metrics: one page of
 * runs by state and age (ckring-inspect db --state/--older-than/--limit/
 * --after), and the census of the whole store (the metrics' runs by state,
 * interrupted runs, the oldest of them, map use).
 *
 * Both only read (LMDB read transactions never block the flusher). The
 * census walks the store in chunks of CHUNK records, one read transaction
 * each, so it never pins old pages for long (a long reader makes the
 * flusher's writes grow the file instead of reusing pages); its counts are
 * therefore not one snapshot while runs change.
 *
 * Concurrency: any thread of any process, concurrently with the flusher.
 */
#include "persist/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shm/proc.h"

#define DEFAULT_LIMIT 1000
#define CHUNK 4096
#define JUDGE_CACHE 1024

/* ---- one page ---- */

static bool older(uint64_t ts, uint64_t age_s, uint64_t now)
{
	uint64_t age_ns = age_s > UINT64_MAX / 1000000000u ? UINT64_MAX
							  : age_s * 1000000000u;
	return ts <= now && now - ts >= age_ns;
}

/* Does run r (its owner judged as os) match q? */
static bool matches(const ckr_list_query *q, const ckr_rec *r, owner_state os,
		    uint64_t now)
{
	switch (q->which) {
	case CKR_LIST_INTERRUPTED:
		if (r->state != CKR_RUN_RUNNING || os == OWNER_ALIVE)
			return false;
		break;
	case CKR_LIST_RUNNING:
		if (r->state != CKR_RUN_RUNNING)
			return false;
		break;
	case CKR_LIST_ALL:
		if (q->state && r->state != q->state)
			return false;
		break;
	}
	if (!q->by_age)
		return true;
	return older(r->state == CKR_RUN_RUNNING ? r->updated_ns : r->finished_ns,
		     q->older_than_s, now);
}

static int cursor_start(MDB_cursor *c, const void *after, size_t after_len,
			MDB_val *k, MDB_val *v)
{
	if (!after || !after_len)
		return mdb_cursor_get(c, k, v, MDB_FIRST);
	k->mv_size = after_len;
	k->mv_data = (void *)after;
	int rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
	if (rc == 0 && k->mv_size == after_len && memcmp(k->mv_data, after, after_len) == 0)
		rc = mdb_cursor_get(c, k, v, MDB_NEXT);
	return rc;
}

typedef struct page {
	ckr_run_info *v;
	size_t n, limit;
	bool more;
} page;

static int query_in(MDB_txn *txn, ckr_store *s, const ckr_list_query *q, page *pg)
{
	uint8_t epoch[CKR_EPOCH_BYTES];
	bool epoch_set;
	uint64_t now = ckr_st_now_ns();
	MDB_cursor *c;
	MDB_val k, v;
	ckr_rec r;
	int rc = ckr_st_current_epoch(txn, s, epoch, &epoch_set);

	if (rc)
		return rc;
	rc = mdb_cursor_open(txn, s->dbi[CKR_DB_RUNS], &c);
	if (rc)
		return ckr_st_err(rc);
	for (rc = cursor_start(c, q->after, q->after_len, &k, &v); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size == 0 || k.mv_size > CKR_RUN_ID_MAX ||
		    ckr_st_rec_decode(v.mv_data, v.mv_size, &r) != 0)
			continue;
		owner_state os = r.state == CKR_RUN_RUNNING
					 ? ckr_st_judge_owner(txn, s, &r, epoch, epoch_set)
					 : OWNER_ENDED;
		if (!matches(q, &r, os, now))
			continue;
		if (pg->n == pg->limit) {
			pg->more = true;
			break;
		}
		ckr_st_fill_info(&pg->v[pg->n++], k.mv_data, k.mv_size, &r, os);
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

int ckr_store_query(ckr_store *s, const ckr_list_query *q, ckr_run_info **out,
		    size_t *n, bool *more)
{
	MDB_txn *txn;
	page pg = { 0 };
	int rc;

	if (!s || !q || !out || !n || !more || q->which < CKR_LIST_INTERRUPTED ||
	    q->which > CKR_LIST_ALL || (unsigned)q->state > CKR_RUN_COMPLETED ||
	    q->after_len > CKR_RUN_ID_MAX || (q->after_len && !q->after))
		return -EINVAL;
	pg.limit = q->limit ? q->limit : DEFAULT_LIMIT;
	if (pg.limit > SIZE_MAX / sizeof *pg.v)
		return -EINVAL;
	pg.v = malloc(pg.limit * sizeof *pg.v);
	if (!pg.v)
		return -ENOMEM;
	rc = ckr_st_txn_begin(s, false, &txn);
	if (rc == 0) {
		rc = query_in(txn, s, q, &pg);
		ckr_st_txn_abort(s, txn);
	}
	if (rc) {
		free(pg.v);
		return rc;
	}
	*out = pg.v;
	*n = pg.n;
	*more = pg.more;
	return 0;
}

/* ---- the census ---- */

/* /proc verdicts by token, for one census (many runs share an owner). */
typedef struct judge_cache {
	uint64_t token[JUDGE_CACHE];
	bool dead[JUDGE_CACHE];
} judge_cache;

static bool token_dead(judge_cache *jc, const ckr_identity *id)
{
	size_t i = (size_t)((id->token * 0x9e3779b97f4a7c15ull) >> 54) % JUDGE_CACHE;
	if (jc->token[i] != id->token || id->token == 0) {
		jc->token[i] = id->token;
		jc->dead[i] = ckr_proc_judge(id->token, id->pidns) == CKR_PROC_DEAD;
	}
	return jc->dead[i];
}

static void count_run(MDB_txn *txn, ckr_store *s, const ckr_rec *r,
		      const uint8_t epoch[CKR_EPOCH_BYTES], bool epoch_set,
		      judge_cache *jc, ckr_store_census *out)
{
	out->runs[r->state]++;
	out->events += r->events;
	out->set_aside += r->set_aside;
	out->bytes += r->bytes;
	out->removing += (r->flags & CKR_REC_REMOVING) != 0;
	if (r->state != CKR_RUN_RUNNING)
		return;
	bool ended = ckr_st_owner_ended(txn, s, r, epoch, epoch_set);
	if (!ended && !token_dead(jc, &r->owner))
		return; /* alive: not interrupted */
	out->interrupted++;
	out->claimable += ended;
	if (!out->oldest_interrupted_ns || r->updated_ns < out->oldest_interrupted_ns)
		out->oldest_interrupted_ns = r->updated_ns;
}

/* One chunk after key *last (empty: from the first). *end: no more. */
static int census_chunk(ckr_store *s, uint8_t *last, size_t *last_len,
			judge_cache *jc, ckr_store_census *out, bool *end)
{
	uint8_t epoch[CKR_EPOCH_BYTES];
	bool epoch_set;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	ckr_rec r;
	int rc = ckr_st_txn_begin(s, false, &txn), seen = 0;

	if (rc)
		return rc;
	rc = ckr_st_current_epoch(txn, s, epoch, &epoch_set);
	if (rc == 0)
		rc = ckr_st_err(mdb_cursor_open(txn, s->dbi[CKR_DB_RUNS], &c));
	if (rc) {
		ckr_st_txn_abort(s, txn);
		return rc;
	}
	for (rc = cursor_start(c, last, *last_len, &k, &v); rc == 0 && seen < CHUNK;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), seen++) {
		if (k.mv_size == 0 || k.mv_size > CKR_RUN_ID_MAX)
			continue;
		memcpy(last, k.mv_data, k.mv_size);
		*last_len = k.mv_size;
		if (ckr_st_rec_decode(v.mv_data, v.mv_size, &r) == 0)
			count_run(txn, s, &r, epoch, epoch_set, jc, out);
	}
	*end = rc == MDB_NOTFOUND;
	mdb_cursor_close(c);
	ckr_st_txn_abort(s, txn);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : ckr_st_err(rc);
}

static void map_use(ckr_store *s, ckr_store_census *out)
{
	MDB_envinfo info;
	MDB_stat st;
	if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &st) == 0) {
		out->map_size = info.me_mapsize;
		out->map_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	}
}

int ckr_store_census_get(ckr_store *s, ckr_store_census *out)
{
	uint8_t last[CKR_RUN_ID_MAX];
	size_t last_len = 0;
	bool end = false;
	int rc = 0;

	if (!s || !out)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	judge_cache *jc = calloc(1, sizeof *jc);
	if (!jc)
		return -ENOMEM;
	while (rc == 0 && !end)
		rc = census_chunk(s, last, &last_len, jc, out, &end);
	free(jc);
	map_use(s, out);
	return rc;
}
