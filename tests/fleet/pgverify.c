/*
 * pgverify.c — the independent checker of the shipping tests: reads the
 * shared PostgreSQL database (persist/PG_SCHEMA.md) with plain SQL and
 * checks every run of every ckring-load invocation of a manifest (the
 * format of tests/torture/verify.c) row by row:
 *
 *   - with acks (default): every acknowledged message m < ack is in
 *     ckring_events exactly once, at seq m+1, byte-exact (the payload rule
 *     of docs/DESIGN.md §9); at most one message beyond the ack (the push in
 *     flight when its process died), byte-exact too; no gap below the ack;
 *     the begin at seq 0;
 *   - --exact N: every run has exactly messages 0..N-1 (a run recovered and
 *     completed on another host: acks of the lost host do not bound it);
 *   - --db DIR: the database holds exactly the rows of the local store
 *     (ckr_store_resume of each run, byte for byte): nothing committed was
 *     left unshipped, nothing shipped twice;
 *   - --state running|failed|completed, --host H: each run's record;
 *   - no run in the database outside the manifest (unless --allow-extra),
 *     no duplicate (run, seq), no set-aside row of these runs unless
 *     --allow-aside.
 *
 * --mirror DIR --host H (with or without a manifest): the database is the
 * store at DIR, run by run and row by row, whatever made the runs (loads,
 * claims, operator actions, prunes, imports): first it waits (bounded) until
 * the host's shipped position is the store's last change, then every run of
 * the store (ckr_store_export: its record and every row) must be in
 * ckring_runs with host H and the same incarnation, state, kind, attempts,
 * label, metadata, error, cleared flag, created and finished times; its
 * ckring_events and ckring_set_aside rows exactly the store's (seq,
 * incarnation, bytes); a run the store marked moved must be held by another
 * host; and the database gives H no run the store lacks.
 *
 * usage: pgverify --pg CONNINFO [--manifest FILE] [--exact N] [--db DIR]
 *                 [--state S] [--host H] [--allow-extra] [--allow-aside]
 *                 [--mirror DIR]
 * Exit 0 good; 1 a violation (each printed on stderr); 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckring_store.h"
#include "event/event.h"

typedef struct inv {
	char prefix[64];
	uint64_t procs, threads, runs, events, size;
	char ack_path[512];
	uint64_t *acks;
} inv;

static uint64_t errors, verified, in_flight, runs_seen;
static bool exact_mode, allow_extra, allow_aside;
static uint64_t exact_n;
static const char *want_state, *want_host;
static ckr_store *local;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	if (errors++ < 40) {
		va_list ap;
		va_start(ap, fmt);
		fputs("pgverify: FAIL: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	}
}

static uint64_t fnv1a64(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void expected(uint8_t *buf, size_t size, const char *id, uint64_t m)
{
	uint64_t h = fnv1a64(id, strlen(id));
	for (int i = 0; i < 8; i++) {
		buf[i] = (uint8_t)(m >> (8 * i));
		buf[8 + i] = (uint8_t)(h >> (8 * i));
	}
	for (size_t i = 16; i < size; i++)
		buf[i] = (uint8_t)(h + 31 * m + i);
}

static uint64_t be64(const char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | (uint8_t)p[i];
	return v;
}

static int read_manifest(const char *path, inv **out, size_t *n)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	size_t k = 0, cap = 16;
	inv *v = calloc(cap, sizeof *v);
	if (!f || !v)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (k == cap) {
			v = realloc(v, 2 * cap * sizeof *v);
			memset(v + cap, 0, cap * sizeof *v);
			cap *= 2;
		}
		inv *iv = &v[k];
		if (sscanf(line, "%63s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
			   " %511s", iv->prefix, &iv->procs, &iv->threads, &iv->runs, &iv->events,
			   &iv->size, iv->ack_path) != 7)
			return -1;
		if (strcmp(iv->prefix, "-") == 0)
			iv->prefix[0] = '\0';
		size_t nr = iv->procs * iv->threads * iv->runs;
		iv->acks = calloc(nr ? nr : 1, 8);
		FILE *a = fopen(iv->ack_path, "rb");
		uint8_t b[8];
		for (size_t i = 0; a && i < nr && fread(b, 1, 8, a) == 8; i++) {
			uint64_t x = 0;
			for (int j = 7; j >= 0; j--)
				x = x << 8 | b[j];
			iv->acks[i] = x;
		}
		if (a)
			fclose(a);
		k++;
	}
	fclose(f);
	*out = v;
	*n = k;
	return 0;
}

/* Compare the database's rows of id with the local store's resume state. */
static void check_local(const char *id, PGresult *r)
{
	ckr_resume *rs;
	int rc = ckr_store_resume(local, id, strlen(id), &rs);
	if (rc) {
		fail("%s: not in the local store (%s)", id, ckr_strerror(rc));
		return;
	}
	size_t n = (size_t)PQntuples(r);
	if (n != rs->n_history + 1)
		fail("%s: the database has %zu rows, the local store %zu (+ begin)", id, n,
		     rs->n_history);
	for (size_t i = 1; i < n && i <= rs->n_history; i++) {
		ckr_event ev;
		const char *d = PQgetvalue(r, (int)i, 2);
		if (ckr_event_decode(d, (size_t)PQgetlength(r, (int)i, 2), &ev) != 0 ||
		    ev.u.message.len != rs->history[i - 1].size ||
		    memcmp(ev.u.message.data, rs->history[i - 1].data, ev.u.message.len) != 0) {
			fail("%s: row %zu differs from the local store's", id, i);
			break;
		}
	}
	ckr_resume_free(rs);
}

static void check_record(PGconn *c, const char *id)
{
	const char *v[1] = { id };
	int len[1] = { (int)strlen(id) }, fmt[1] = { 1 };
	PGresult *r = PQexecParams(c, "SELECT state, host, (SELECT count(*) FROM ckring_set_aside "
				   "a WHERE a.run_id = $1) FROM ckring_runs WHERE run_id = $1",
				   1, NULL, v, len, fmt, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		fail("%s: no run record in the database", id);
		PQclear(r);
		return;
	}
	static const char *names[] = { "?", "running", "failed", "completed" };
	int st = atoi(PQgetvalue(r, 0, 0));
	if (want_state && strcmp(names[st >= 1 && st <= 3 ? st : 0], want_state) != 0)
		fail("%s: state %s, want %s", id, names[st >= 1 && st <= 3 ? st : 0], want_state);
	if (want_host && strcmp(PQgetvalue(r, 0, 1), want_host) != 0)
		fail("%s: host %s, want %s", id, PQgetvalue(r, 0, 1), want_host);
	if (!allow_aside && atoll(PQgetvalue(r, 0, 2)) != 0)
		fail("%s: %s set-aside rows", id, PQgetvalue(r, 0, 2));
	PQclear(r);
}

static void check_run(PGconn *c, const inv *iv, const char *id, uint64_t ack, uint8_t *want)
{
	const char *v[1] = { id };
	int len[1] = { (int)strlen(id) }, fmt[1] = { 1 };
	runs_seen++;
	check_record(c, id);
	if (want_state && strcmp(want_state, "completed") == 0)
		return; /* a completed run keeps no rows */
	PGresult *r = PQexecParams(c, "SELECT seq, incarnation, data FROM ckring_events "
				   "WHERE run_id = $1 ORDER BY seq", 1, NULL, v, len, fmt, 1);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fail("%s: %s", id, PQresultErrorMessage(r));
		PQclear(r);
		return;
	}
	size_t n = (size_t)PQntuples(r);
	uint64_t lo = exact_mode ? exact_n : ack, hi = exact_mode ? exact_n : ack + 1;
	if (n == 0) {
		if (lo > 0)
			fail("%s: no rows in the database, %" PRIu64 " messages acknowledged", id, lo);
		PQclear(r);
		return;
	}
	ckr_event ev;
	if (be64(PQgetvalue(r, 0, 0)) != 0 ||
	    ckr_event_decode(PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2), &ev) != 0 ||
	    ev.type != CKR_EV_BEGIN)
		fail("%s: row 0 is not the begin", id);
	if (n - 1 < lo)
		fail("%s: the database holds %zu messages, %" PRIu64 " acknowledged (lost)", id,
		     n - 1, lo);
	if (n - 1 > hi)
		fail("%s: the database holds %zu messages, at most %" PRIu64 " can exist", id,
		     n - 1, hi);
	for (size_t i = 1; i < n; i++) {
		uint64_t seq = be64(PQgetvalue(r, (int)i, 0));
		if (seq != i) {
			fail("%s: row %zu has seq %" PRIu64 " (a gap, or out of order)", id, i, seq);
			break;
		}
		if (ckr_event_decode(PQgetvalue(r, (int)i, 2), (size_t)PQgetlength(r, (int)i, 2),
				     &ev) != 0 || ev.type != CKR_EV_MESSAGE || ev.seq != seq ||
		    ev.u.message.len != iv->size) {
			fail("%s: row %zu does not decode as message %zu", id, i, i - 1);
			break;
		}
		expected(want, iv->size, id, i - 1);
		if (memcmp(ev.u.message.data, want, iv->size) != 0) {
			fail("%s: message %zu differs", id, i - 1);
			break;
		}
		if (i - 1 < lo)
			verified++;
		else
			in_flight++;
	}
	if (local)
		check_local(id, r);
	PQclear(r);
}

static bool known(const inv *v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++) {
		size_t pl = strlen(v[i].prefix);
		uint64_t p, t, r;
		char tail;
		if (strncmp(id, v[i].prefix, pl) == 0 &&
		    sscanf(id + pl, "p%" SCNu64 "-t%" SCNu64 "-r%" SCNu64 "%c", &p, &t, &r, &tail) == 3 &&
		    p < v[i].procs && t < v[i].threads && r < v[i].runs)
			return true;
	}
	return false;
}

static void check_whole(PGconn *c, const inv *v, size_t n)
{
	PGresult *r = PQexec(c, "SELECT count(*) - count(DISTINCT (run_id, seq)) FROM ckring_events");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && atoll(PQgetvalue(r, 0, 0)) != 0)
		fail("%s duplicate (run, seq) rows", PQgetvalue(r, 0, 0));
	PQclear(r);
	if (allow_extra)
		return;
	r = PQexec(c, "SELECT encode(run_id, 'escape') FROM ckring_runs");
	for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
		if (!known(v, n, PQgetvalue(r, i, 0)))
			fail("run '%s' is in the database but in no invocation", PQgetvalue(r, i, 0));
	PQclear(r);
}

/* ---- --mirror: the database is the local store ---- */

static uint64_t mirror_runs, mirror_rows, mirror_aside, mirror_moved;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* A query with one bytea parameter (the run id), results in binary: bytea
 * columns raw, every other column cast to text by the query. */
static PGresult *by_id(PGconn *c, const char *sql, const void *id, size_t id_len)
{
	const char *v[1] = { id };
	int len[1] = { (int)id_len }, fmt[1] = { 1 };
	return PQexecParams(c, sql, 1, NULL, v, len, fmt, 1);
}

static bool col_is(PGresult *r, int t, int col, const void *p, size_t n)
{
	return (size_t)PQgetlength(r, t, col) == n && (n == 0 || memcmp(PQgetvalue(r, t, col), p, n) == 0);
}

static uint64_t col_u64(PGresult *r, int t, int col)
{
	return strtoull(PQgetvalue(r, t, col), NULL, 10);
}

/* Wait (bounded) until the database shipped everything the store logged. */
static bool mirror_caught_up(PGconn *c, const char *host, uint64_t *pos)
{
	const char *v[1] = { host };
	uint64_t db = 0;
	ckr_log_info li = { 0 };
	for (int i = 0; i < 1500; i++) {
		PGresult *r = PQexecParams(c, "SELECT shipped FROM ckring_hosts WHERE host = $1", 1,
					   NULL, v, NULL, NULL, 0);
		db = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
			     ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
		PQclear(r);
		if (ckr_store_log_info(local, &li) == 0 && db == li.last) {
			*pos = db;
			return true;
		}
		sleep_ms(20);
	}
	fail("host %s: the database shipped change %" PRIu64 ", the store's last is %" PRIu64
	     " (not caught up in 30 s)", host, db, li.last);
	return false;
}

static void mirror_rows_of(PGconn *c, const char *what, const char *sql, const ckr_export *e,
			   const ckr_export_row *v, size_t n)
{
	char id[160];
	snprintf(id, sizeof id, "%.*s", (int)e->id_len, (const char *)e->id);
	PGresult *r = by_id(c, sql, e->id, e->id_len);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fail("%s: %s", id, PQresultErrorMessage(r));
		PQclear(r);
		return;
	}
	size_t k = (size_t)PQntuples(r);
	if (k != n)
		fail("%s: %zu %s rows in the database, %zu in the store", id, k, what, n);
	for (size_t i = 0; i < k && i < n; i++) {
		if (col_u64(r, (int)i, 0) != v[i].seq || col_u64(r, (int)i, 1) != v[i].incarnation ||
		    !col_is(r, (int)i, 2, v[i].data, v[i].size)) {
			fail("%s: %s row %zu is (seq %s, incarnation %s, %d bytes) in the database, "
			     "(seq %" PRIu64 ", incarnation %u, %zu bytes) in the store", id, what, i,
			     PQgetvalue(r, (int)i, 0), PQgetvalue(r, (int)i, 1),
			     PQgetlength(r, (int)i, 2), v[i].seq, v[i].incarnation, v[i].size);
			break;
		}
	}
	PQclear(r);
}

static const char MIRROR_RUN[] =
	"SELECT host, incarnation::text, state::text, kind::text, attempts::text, "
	"cleared::text, created_ns::text, finished_ns::text, label, meta, "
	"coalesce(error, '\\x'::bytea) FROM ckring_runs WHERE run_id = $1";

static void mirror_run(PGconn *c, const char *host, const ckr_export *e)
{
	char id[160];
	snprintf(id, sizeof id, "%.*s", (int)e->id_len, (const char *)e->id);
	PGresult *r = by_id(c, MIRROR_RUN, e->id, e->id_len);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		fail("%s: in the store (%s), not in the database", id,
		     e->state == CKR_RUN_RUNNING ? "running" : e->state == CKR_RUN_FAILED ? "failed"
											: "completed");
		PQclear(r);
		return;
	}
	struct { const char *name; uint64_t want; int col; } f[] = {
		{ "incarnation", e->incarnation, 1 }, { "state", (uint64_t)e->state, 2 },
		{ "kind", (uint64_t)e->kind, 3 }, { "attempts", e->attempts, 4 },
		{ "created_ns", e->created_ns, 6 }, { "finished_ns", e->finished_ns, 7 },
	};
	if (!col_is(r, 0, 0, host, strlen(host)))
		fail("%s: host %s in the database, want %s", id, PQgetvalue(r, 0, 0), host);
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		if (col_u64(r, 0, f[i].col) != f[i].want)
			fail("%s: %s %s in the database, %" PRIu64 " in the store", id, f[i].name,
			     PQgetvalue(r, 0, f[i].col), f[i].want);
	if ((PQgetvalue(r, 0, 5)[0] == 't') != e->cleared)
		fail("%s: cleared %s in the database, %s in the store", id, PQgetvalue(r, 0, 5),
		     e->cleared ? "true" : "false");
	if (!col_is(r, 0, 8, e->label, e->label_len))
		fail("%s: the label differs", id);
	if (!col_is(r, 0, 9, e->meta, e->meta_len))
		fail("%s: the metadata differs", id);
	if (!col_is(r, 0, 10, e->error, e->error_len))
		fail("%s: error '%.*s' in the database, '%.*s' in the store", id,
		     PQgetlength(r, 0, 10), PQgetvalue(r, 0, 10), (int)e->error_len,
		     (const char *)e->error);
	PQclear(r);
	mirror_rows_of(c, "event", "SELECT seq::text AS s, incarnation::text AS i, data FROM ckring_events "
		       "WHERE run_id = $1 ORDER BY seq", e, e->events, e->n_events);
	mirror_rows_of(c, "set-aside", "SELECT seq::text AS s, incarnation::text AS i, data FROM "
		       "ckring_set_aside WHERE run_id = $1 ORDER BY incarnation, seq", e,
		       e->set_aside, e->n_set_aside);
	mirror_runs++;
	mirror_rows += e->n_events;
	mirror_aside += e->n_set_aside;
}

/* A run the store marked moved: the database gives it to another host. */
static void mirror_moved_run(PGconn *c, const char *host, const ckr_run_info *in)
{
	PGresult *r = by_id(c, "SELECT host FROM ckring_runs WHERE run_id = $1", in->id,
			    in->id_len);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
	    col_is(r, 0, 0, host, strlen(host)))
		fail("%.*s: marked moved in the store, but the database does not give it to "
		     "another host", (int)in->id_len, (const char *)in->id);
	PQclear(r);
	mirror_moved++;
}

static bool is_moved(const ckr_run_info *in)
{
	return in->state == CKR_RUN_FAILED && strncmp(in->error, "moved to host ", 14) == 0;
}

/* The database's runs of host that the store does not have. */
static void mirror_extra(PGconn *c, const char *host, const ckr_run_info *runs, size_t n)
{
	const char *v[1] = { host };
	PGresult *r = PQexecParams(c, "SELECT run_id FROM ckring_runs WHERE host = $1", 1, NULL,
				   v, NULL, NULL, 1);
	for (int t = 0; PQresultStatus(r) == PGRES_TUPLES_OK && t < PQntuples(r); t++) {
		size_t l = (size_t)PQgetlength(r, t, 0);
		bool found = false;
		for (size_t i = 0; i < n && !found; i++)
			found = runs[i].id_len == l && !is_moved(&runs[i]) &&
				memcmp(runs[i].id, PQgetvalue(r, t, 0), l) == 0;
		if (!found)
			fail("%.*s: the database gives it to host %s, the store does not have it",
			     (int)l, PQgetvalue(r, t, 0), host);
	}
	PQclear(r);
}

static void mirror(PGconn *c, const char *dir, const char *host)
{
	ckr_run_info *runs;
	size_t n;
	uint64_t pos = 0;
	if (!mirror_caught_up(c, host, &pos))
		return;
	if (ckr_store_list(local, CKR_LIST_ALL, &runs, &n) != 0) {
		fail("%s: cannot list the store", dir);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		ckr_export *e;
		if (is_moved(&runs[i])) {
			mirror_moved_run(c, host, &runs[i]);
			continue;
		}
		int rc = ckr_store_export(local, runs[i].id, runs[i].id_len, &e);
		if (rc) {
			fail("%.*s: cannot export it from the store: %s", (int)runs[i].id_len,
			     (const char *)runs[i].id, ckr_strerror(rc));
			continue;
		}
		mirror_run(c, host, e);
		ckr_export_free(e);
	}
	mirror_extra(c, host, runs, n);
	free(runs);
	printf("pgverify: mirror of %s (host %s, change %" PRIu64 "): %" PRIu64 " runs, %" PRIu64
	       " rows, %" PRIu64 " set-aside rows equal in PostgreSQL; %" PRIu64
	       " moved runs held by other hosts; %" PRIu64 " failures\n", dir, host, pos,
	       mirror_runs, mirror_rows, mirror_aside, mirror_moved, errors);
}

int main(int argc, char **argv)
{
	const char *pg = NULL, *manifest = NULL, *db = NULL, *mirror_dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pg") && i + 1 < argc) pg = argv[++i];
		else if (!strcmp(argv[i], "--manifest") && i + 1 < argc) manifest = argv[++i];
		else if (!strcmp(argv[i], "--db") && i + 1 < argc) db = argv[++i];
		else if (!strcmp(argv[i], "--exact") && i + 1 < argc) { exact_mode = true; exact_n = strtoull(argv[++i], NULL, 10); }
		else if (!strcmp(argv[i], "--state") && i + 1 < argc) want_state = argv[++i];
		else if (!strcmp(argv[i], "--host") && i + 1 < argc) want_host = argv[++i];
		else if (!strcmp(argv[i], "--allow-extra")) allow_extra = true;
		else if (!strcmp(argv[i], "--allow-aside")) allow_aside = true;
		else if (!strcmp(argv[i], "--mirror") && i + 1 < argc) mirror_dir = argv[++i];
		else { fprintf(stderr, "pgverify: bad argument %s\n", argv[i]); return 2; }
	}
	if (!pg || (!manifest && !mirror_dir) || (mirror_dir && (db || !want_host)))
		return 2;
	inv *v = NULL;
	size_t n = 0;
	if (manifest && read_manifest(manifest, &v, &n)) {
		fprintf(stderr, "pgverify: bad manifest %s\n", manifest);
		return 2;
	}
	PGconn *c = PQconnectdb(pg);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "pgverify: %s", PQerrorMessage(c));
		return 1;
	}
	ckr_store_opts ro = { .read_only = true };
	if (mirror_dir)
		db = mirror_dir;
	if (db && ckr_store_open(db, &ro, &local) != 0) {
		fprintf(stderr, "pgverify: cannot open %s\n", db);
		return 1;
	}
	if (!manifest) {
		mirror(c, mirror_dir, want_host);
		ckr_store_close(local);
		PQfinish(c);
		return errors ? 1 : 0;
	}
	uint64_t acked = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *want = malloc(v[i].size);
		char id[160];
		for (uint64_t p = 0; p < v[i].procs; p++)
			for (uint64_t t = 0; t < v[i].threads; t++)
				for (uint64_t r = 0; r < v[i].runs; r++) {
					snprintf(id, sizeof id, "%sp%" PRIu64 "-t%" PRIu64 "-r%" PRIu64,
						 v[i].prefix, p, t, r);
					uint64_t ack = v[i].acks[(p * v[i].threads + t) * v[i].runs + r];
					acked += ack;
					check_run(c, &v[i], id, ack, want);
				}
		free(want);
	}
	check_whole(c, v, n);
	if (mirror_dir)
		mirror(c, mirror_dir, want_host);
	printf("pgverify: %" PRIu64 " runs, %" PRIu64 " messages verified row by row in "
	       "PostgreSQL (%" PRIu64 " acknowledged), %" PRIu64 " in flight; %" PRIu64
	       " failures\n", runs_seen, verified, acked, in_flight, errors);
	ckr_store_close(local);
	PQfinish(c);
	for (size_t i = 0; i < n; i++)
		free(v[i].acks);
	free(v);
	return errors ? 1 : 0;
}
