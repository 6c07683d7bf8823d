/*
 * peers.c — LMDB and SQLite, one transaction per event, and LMDB's batch
 * ceiling (see peers.h).
 */
#include "peers.h"

#include <limits.h>
#include <lmdb.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "sys.h"

#define LMDB_MAP (UINT64_C(2) << 30)
#define LMDB_BATCH 8192 /* the flusher's batch limit (BATCH_MAX_EVENTS) */

/* The most ops a measurement may write (keeps the map and the disk sane). */
static uint64_t op_cap(uint32_t size)
{
	uint64_t per = 2 * (uint64_t)size + 128; /* an overflow page pair, worst case */
	uint64_t cap = LMDB_MAP / 2 / per;
	return cap > 200000 ? 200000 : cap;
}

/* What one measurement needs: a fresh directory, a payload, a histogram. */
typedef struct peer_run {
	char dir[PATH_MAX];
	uint8_t *payload;
	bench_hist *h;
} peer_run;

static void peer_close(peer_run *p)
{
	if (p->dir[0])
		bench_rmdir(p->dir);
	free(p->payload);
	free(p->h);
}

static int peer_open(bench *b, peer_run *p, uint32_t size)
{
	memset(p, 0, sizeof *p);
	p->payload = calloc(1, size);
	p->h = calloc(1, sizeof *p->h);
	if (!p->payload || !p->h) {
		peer_close(p);
		return bench_fail(b, "out of memory");
	}
	if (bench_tmpdir(b, p->dir, sizeof p->dir)) {
		p->dir[0] = '\0';
		peer_close(p);
		return -1;
	}
	return 0;
}

/* ---- LMDB ---- */

static int lmdb_open(const char *dir, unsigned flags, MDB_env **env, MDB_dbi *dbi)
{
	MDB_txn *txn;
	int rc = mdb_env_create(env);
	if (rc)
		return rc;
	rc = mdb_env_set_mapsize(*env, LMDB_MAP);
	if (rc == 0)
		rc = mdb_env_open(*env, dir, flags, 0600);
	if (rc == 0)
		rc = mdb_txn_begin(*env, NULL, 0, &txn);
	if (rc == 0) {
		rc = mdb_dbi_open(txn, NULL, 0, dbi);
		rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
	}
	if (rc) {
		mdb_env_close(*env);
		*env = NULL;
	}
	return rc;
}

static void be64(uint8_t k[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		k[i] = (uint8_t)v;
}

/* One write transaction of n MDB_APPEND puts of size bytes, keys from *next
 * (big-endian, so appends stay in order); the commit syncs unless the
 * environment has MDB_NOSYNC. @return 0 or an LMDB error. */
static int lmdb_put_batch(MDB_env *env, MDB_dbi dbi, uint64_t *next, uint32_t n,
			  uint8_t *payload, uint32_t size)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc)
		return rc;
	for (uint32_t j = 0; rc == 0 && j < n; j++, ++*next) {
		uint8_t kb[8];
		be64(kb, *next);
		memcpy(payload, next, size < 8 ? size : 8); /* every value differs */
		MDB_val k = { 8, kb }, v = { size, payload };
		rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND);
	}
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

int bench_lmdb_direct(bench *b, uint32_t size, bool sync)
{
	const char *name = sync ? "lmdb.direct.sync" : "lmdb.direct.nosync";
	peer_run p;
	MDB_env *env = NULL;
	MDB_dbi dbi;
	result *r = bench_new_result(b, name, size, 1, 1);
	if (!r)
		return bench_fail(b, "too many results");
	if (peer_open(b, &p, size))
		return -1;
	int rc = lmdb_open(p.dir, sync ? 0 : MDB_NOSYNC, &env, &dbi);
	uint64_t key = 0, cap = op_cap(size), n = 0, max = b->ops ? b->ops : cap;
	uint64_t warm_end = bench_ticks() + bench_warm_ticks(b) / 2;
	while (rc == 0 && key < 20 && (bench_ticks() < warm_end || key < 3)) /* warm-up */
		rc = lmdb_put_batch(env, dbi, &key, 1, p.payload, size);
	uint64_t start = bench_ticks(), end = start + bench_run_ticks(b, 1.0);
	while (rc == 0 && n < max && key < cap && bench_ticks() < end) {
		uint64_t t0 = bench_t0();
		rc = lmdb_put_batch(env, dbi, &key, 1, p.payload, size);
		uint64_t t1 = bench_t1();
		bh_record(p.h, t1 - t0);
		n++;
	}
	double wall = bench_ns(&b->clk, (double)(bench_ticks() - start)) * 1e-9;
	if (rc == 0) {
		bench_fill_latency(b, r, p.h, true);
		r->ops_per_s = (double)n / wall;
		r->mode = "serial";
	}
	if (env)
		mdb_env_close(env);
	peer_close(&p);
	return rc ? bench_fail(b, "%s (%u B): %s", name, size, mdb_strerror(rc)) : 0;
}

int bench_lmdb_batch(bench *b, uint32_t size)
{
	const char *name = "lmdb.batch.sync";
	peer_run p;
	MDB_env *env = NULL;
	MDB_dbi dbi;
	result *r = bench_new_result(b, name, size, 1, 1);
	if (!r)
		return bench_fail(b, "too many results");
	if (peer_open(b, &p, size))
		return -1;
	uint64_t key = 0, events = 0, cap = op_cap(size) * 2;
	int rc = lmdb_open(p.dir, 0, &env, &dbi);
	if (rc == 0) /* the first batch is the warm-up */
		rc = lmdb_put_batch(env, dbi, &key, LMDB_BATCH, p.payload, size);
	uint64_t start = bench_ticks(), end = start + bench_run_ticks(b, 1.0);
	while (rc == 0 && (events == 0 || (bench_ticks() < end && key + LMDB_BATCH <= cap &&
					   !(b->ops && events >= b->ops)))) {
		uint64_t t0 = bench_t0();
		rc = lmdb_put_batch(env, dbi, &key, LMDB_BATCH, p.payload, size);
		uint64_t t1 = bench_t1();
		bh_record(p.h, t1 - t0);
		events += LMDB_BATCH;
	}
	double wall = bench_ns(&b->clk, (double)(bench_ticks() - start)) * 1e-9;
	if (rc == 0) {
		bench_fill_latency(b, r, p.h, true);
		r->ops_per_s = (double)events / wall;
		r->latency_of = "batch";
		r->batch = LMDB_BATCH;
		r->mode = "serial";
	}
	if (env)
		mdb_env_close(env);
	peer_close(&p);
	return rc ? bench_fail(b, "%s (%u B): %s", name, size, mdb_strerror(rc)) : 0;
}

/* ---- SQLite ---- */

typedef struct sq {
	sqlite3 *db;
	sqlite3_stmt *begin, *insert, *commit;
} sq;

static void sq_close(sq *s)
{
	sqlite3_finalize(s->begin);
	sqlite3_finalize(s->insert);
	sqlite3_finalize(s->commit);
	sqlite3_close(s->db);
}

/* A WAL database ev.db in dir with synchronous FULL or NORMAL and one
 * table; the three statements of an event prepared. @return SQLITE_OK or an
 * SQLite error code (the message is in the handle). */
static int sq_open(sq *s, const char *dir, bool full, char *err, size_t n)
{
	char path[PATH_MAX + 16];
	memset(s, 0, sizeof *s);
	snprintf(path, sizeof path, "%s/ev.db", dir);
	int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, full ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
					      : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
				  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "CREATE TABLE ev (k INTEGER PRIMARY KEY, v BLOB NOT NULL)",
				  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db, "BEGIN", -1, &s->begin, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db, "INSERT INTO ev (k, v) VALUES (?, ?)", -1,
					&s->insert, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db, "COMMIT", -1, &s->commit, NULL);
	if (rc != SQLITE_OK)
		snprintf(err, n, "%s", s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	return rc;
}

/* One event: BEGIN; INSERT (k, payload); COMMIT. */
static int sq_event(sq *s, uint64_t k, const uint8_t *payload, uint32_t size)
{
	int rc = sqlite3_step(s->begin);
	sqlite3_reset(s->begin);
	if (rc != SQLITE_DONE)
		return rc;
	sqlite3_bind_int64(s->insert, 1, (sqlite3_int64)k);
	sqlite3_bind_blob(s->insert, 2, payload, (int)size, SQLITE_STATIC);
	rc = sqlite3_step(s->insert);
	sqlite3_reset(s->insert);
	if (rc != SQLITE_DONE) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	rc = sqlite3_step(s->commit);
	sqlite3_reset(s->commit);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int bench_sqlite_direct(bench *b, uint32_t size, bool full)
{
	const char *name = full ? "sqlite.direct.sync" : "sqlite.direct.normal";
	peer_run p;
	sq s;
	char err[200] = "";
	result *r = bench_new_result(b, name, size, 1, 1);
	if (!r)
		return bench_fail(b, "too many results");
	if (peer_open(b, &p, size))
		return -1;
	int rc = sq_open(&s, p.dir, full, err, sizeof err);
	uint64_t key = 0, cap = op_cap(size), n = 0, max = b->ops ? b->ops : cap;
	uint64_t warm_end = bench_ticks() + bench_warm_ticks(b) / 2;
	while (rc == SQLITE_OK && key < 20 && (bench_ticks() < warm_end || key < 3)) {
		memcpy(p.payload, &key, size < 8 ? size : 8); /* every value differs */
		rc = sq_event(&s, key++, p.payload, size);
	}
	uint64_t start = bench_ticks(), end = start + bench_run_ticks(b, 1.0);
	while (rc == SQLITE_OK && n < max && key < cap && bench_ticks() < end) {
		memcpy(p.payload, &key, size < 8 ? size : 8);
		uint64_t t0 = bench_t0();
		rc = sq_event(&s, key++, p.payload, size);
		uint64_t t1 = bench_t1();
		bh_record(p.h, t1 - t0);
		n++;
	}
	double wall = bench_ns(&b->clk, (double)(bench_ticks() - start)) * 1e-9;
	if (rc == SQLITE_OK) {
		bench_fill_latency(b, r, p.h, true);
		r->ops_per_s = (double)n / wall;
		r->mode = "serial";
		snprintf(r->note, sizeof r->note, "WAL, synchronous=%s", full ? "FULL" : "NORMAL");
	} else if (!err[0]) {
		snprintf(err, sizeof err, "%s", sqlite3_errmsg(s.db));
	}
	sq_close(&s);
	peer_close(&p);
	return rc != SQLITE_OK ? bench_fail(b, "%s (%u B): %s", name, size, err) : 0;
}
