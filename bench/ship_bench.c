/*
 * ship_bench.c — the shipping benchmarks of BENCHMARKS.md (run by
 * bench/ship_bench.sh, `make bench-ship`), over the public headers:
 *
 *   pgcopy  --pg C --db DIR [--batch N]
 *       pg.copy: the rows of the store at DIR (read first, not timed) into
 *       a table shaped like ckring_events by plain binary COPY, one
 *       transaction per batch of N rows (default 20000, ckring-ship's
 *       default): the ceiling ckring.ship is measured against. Prints
 *       "rows R seconds S rows_per_s X".
 *   latency --segment S [--level replicated|committed|synced] [--count N]
 *           [--rate HZ] [--size B]
 *       push -> level latency: one run, a message every 1/HZ s (paced on
 *       the clock), each waited for at the level. Prints p50/p99/p999/max.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckring_store.h"

typedef struct rowv {
	uint8_t id[64];
	size_t id_len;
	uint64_t seq;
	uint32_t inc;
	uint8_t *data;
	size_t size;
} rowv;

typedef struct rows {
	rowv *v;
	size_t n, cap;
} rows;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int on_run(void *ctx, const ckr_change *c)
{
	rows *r = ctx;
	for (size_t i = 0; i < c->n_rows; i++) {
		if (c->rows[i].set_aside)
			continue;
		if (r->n == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 4096;
			r->v = realloc(r->v, r->cap * sizeof *r->v);
		}
		rowv *w = &r->v[r->n++];
		memcpy(w->id, c->id, c->id_len);
		w->id_len = c->id_len;
		w->seq = c->rows[i].seq;
		w->inc = c->rows[i].incarnation;
		w->size = c->rows[i].size;
		w->data = malloc(w->size);
		memcpy(w->data, c->rows[i].data, w->size);
	}
	return 0;
}

static void put(uint8_t **p, size_t *len, size_t *cap, const void *src, size_t n)
{
	if (*len + n > *cap) {
		while (*len + n > *cap)
			*cap = *cap ? *cap * 2 : 1 << 20;
		*p = realloc(*p, *cap);
	}
	memcpy(*p + *len, src, n);
	*len += n;
}

static int exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "ship_bench: %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

/* One batch [from, to) as one COPY in one transaction. */
static int copy_batch(PGconn *c, const rows *r, size_t from, size_t to)
{
	static const uint8_t sig[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;
	put(&b, &len, &cap, sig, sizeof sig);
	for (size_t i = from; i < to; i++) {
		const rowv *w = &r->v[i];
		uint16_t f = htons(4);
		uint32_t l;
		put(&b, &len, &cap, &f, 2);
		l = htonl((uint32_t)w->id_len);
		put(&b, &len, &cap, &l, 4);
		put(&b, &len, &cap, w->id, w->id_len);
		uint8_t q[8];
		for (int k = 0; k < 8; k++)
			q[k] = (uint8_t)(w->seq >> (56 - 8 * k));
		l = htonl(8);
		put(&b, &len, &cap, &l, 4);
		put(&b, &len, &cap, q, 8);
		l = htonl(4);
		put(&b, &len, &cap, &l, 4);
		uint32_t inc = htonl(w->inc);
		put(&b, &len, &cap, &inc, 4);
		l = htonl((uint32_t)w->size);
		put(&b, &len, &cap, &l, 4);
		put(&b, &len, &cap, w->data, w->size);
	}
	uint16_t t = 0xffff;
	put(&b, &len, &cap, &t, 2);
	int rc = exec_ok(c, "BEGIN");
	PGresult *res = PQexec(c, "COPY bench_events (run_id, seq, incarnation, data) FROM STDIN (FORMAT binary)");
	if (PQresultStatus(res) != PGRES_COPY_IN)
		rc = -1;
	PQclear(res);
	if (rc == 0 && (PQputCopyData(c, (const char *)b, (int)len) != 1 || PQputCopyEnd(c, NULL) != 1))
		rc = -1;
	while ((res = PQgetResult(c))) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			fprintf(stderr, "ship_bench: COPY: %s", PQresultErrorMessage(res));
			rc = -1;
		}
		PQclear(res);
	}
	if (rc == 0)
		rc = exec_ok(c, "COMMIT");
	free(b);
	return rc;
}

static int cmd_pgcopy(const char *pg, const char *db, size_t batch)
{
	ckr_store *s;
	ckr_store_opts ro = { .read_only = true };
	rows r = { 0 };
	uint64_t at;
	if (ckr_store_open(db, &ro, &s) || ckr_store_snapshot(s, on_run, &r, &at)) {
		fprintf(stderr, "ship_bench: cannot read %s\n", db);
		return 1;
	}
	ckr_store_close(s);
	PGconn *c = PQconnectdb(pg);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "ship_bench: %s", PQerrorMessage(c));
		return 1;
	}
	if (exec_ok(c, "DROP TABLE IF EXISTS bench_events") ||
	    exec_ok(c, "CREATE TABLE bench_events (run_id bytea NOT NULL, seq bigint NOT NULL, "
		       "incarnation integer NOT NULL, data bytea NOT NULL, PRIMARY KEY (run_id, seq))"))
		return 1;
	double t0 = now_s();
	for (size_t i = 0; i < r.n; i += batch)
		if (copy_batch(c, &r, i, i + batch < r.n ? i + batch : r.n))
			return 1;
	double dt = now_s() - t0;
	printf("rows %zu seconds %.3f rows_per_s %.0f\n", r.n, dt, (double)r.n / dt);
	PQfinish(c);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmd_latency(const char *seg, ckr_level level, size_t count, double rate, size_t size)
{
	ckr_client *c;
	ckr_run *r;
	ckr_ticket t;
	char id[64];
	snprintf(id, sizeof id, "latency-%d-%ld", (int)level, (long)time(NULL));
	ckr_run_spec spec = { .id = id, .id_len = strlen(id), .kind = CKR_KIND_SINGLE_LOOP };
	int rc = ckr_client_attach(seg, NULL, &c);
	if (rc == 0)
		rc = ckr_run_begin(c, &spec, &r, &t);
	if (rc == 0)
		rc = ckr_wait(c, &t, level, 10000);
	if (rc) {
		fprintf(stderr, "ship_bench: %s\n", ckr_strerror(rc));
		return 1;
	}
	uint8_t *msg = calloc(1, size);
	uint64_t *lat = calloc(count, sizeof *lat);
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	uint64_t period = (uint64_t)(1e9 / rate);
	for (size_t i = 0; i < count; i++) {
		next.tv_nsec += (long)period;
		while (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		double t0 = now_s();
		while ((rc = ckr_run_message(r, msg, size, &t)) == -EAGAIN)
			;
		if (rc == 0)
			rc = ckr_wait(c, &t, level, 10000);
		if (rc) {
			fprintf(stderr, "ship_bench: wait: %s\n", ckr_strerror(rc));
			return 1;
		}
		lat[i] = (uint64_t)((now_s() - t0) * 1e9);
	}
	qsort(lat, count, sizeof *lat, cmp_u64);
	printf("count %zu p50_us %.1f p99_us %.1f p999_us %.1f max_us %.1f\n", count,
	       lat[count / 2] / 1e3, lat[count * 99 / 100] / 1e3, lat[count * 999 / 1000] / 1e3,
	       lat[count - 1] / 1e3);
	ckr_run_finish(r, CKR_OUTCOME_COMPLETE, NULL, NULL);
	ckr_run_close(r);
	ckr_client_detach(c);
	return 0;
}

int main(int argc, char **argv)
{
	const char *pg = NULL, *db = NULL, *seg = NULL;
	size_t batch = 20000, count = 3000, size = 128;
	double rate = 1000;
	ckr_level level = CKR_LEVEL_REPLICATED;
	if (argc < 2)
		return 2;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--pg")) pg = argv[i + 1];
		else if (!strcmp(argv[i], "--db")) db = argv[i + 1];
		else if (!strcmp(argv[i], "--segment")) seg = argv[i + 1];
		else if (!strcmp(argv[i], "--batch")) batch = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--count")) count = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--size")) size = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--level"))
			level = !strcmp(argv[i + 1], "committed") ? CKR_LEVEL_COMMITTED
			      : !strcmp(argv[i + 1], "synced") ? CKR_LEVEL_SYNCED
							       : CKR_LEVEL_REPLICATED;
		else return 2;
	}
	if (!strcmp(argv[1], "pgcopy") && pg && db)
		return cmd_pgcopy(pg, db, batch ? batch : 20000);
	if (!strcmp(argv[1], "latency") && seg && count)
		return cmd_latency(seg, level, count, rate, size);
	fprintf(stderr, "usage: ship_bench pgcopy --pg C --db DIR [--batch N] | latency --segment S ...\n");
	return 2;
}
