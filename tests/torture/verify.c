/*
 * verify.c — the independent checker of the crash torture (and of the fault
 * tests): opens the store READ-ONLY through the public recovery API
 * (ckr_store_open / ckr_store_list / ckr_store_resume) and checks every run
 * of every ckring-load invocation named in a manifest against its ack file
 * and the payload rule of docs/DESIGN.md §9:
 *
 *   - every acknowledged message m < ack of a run is persisted exactly once:
 *     the run's gap-free history holds seq m+1 with exactly the bytes of
 *     message m (byte-exact), in order;
 *   - at most one message beyond the ack count (the push in flight when the
 *     process died) may be persisted, and it too is byte-exact; gaps are
 *     only allowed beyond the ack count;
 *   - the run record agrees (RUNNING, single-loop, events = begin + history,
 *     last_seq = history length) and nothing else is in the store: no run
 *     outside the manifest, no event applied twice or rejected ("dup_seq",
 *     "stale", "orphan", ... counters are 0) and "stored" equals the rows.
 *
 * Manifest: one line per ckring-load invocation,
 *     PREFIX PROCS THREADS RUNS EVENTS SIZE ACKFILE
 * (the ack file holds one u64 LE per run, (process, thread, run) order: the
 * number of that run's messages whose push returned OK). A missing ack file
 * (the invocation failed before creating it) counts as all zero.
 *
 * usage: verify --db DIR --manifest FILE [--allow-counter NAME]... [--quiet]
 * Exit 0: all good; 1: a violation (each printed on stderr); 2: usage.
 * Build: cc -std=c11 -D_GNU_SOURCE -Iinclude -I. tests/torture/verify.c
 *        build/libckring.a -llmdb -lpthread -lrt
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckring.h"
#include "persist/store.h"

#define MAX_REPORTS 40

typedef struct invocation {
	char prefix[64];
	uint64_t procs, threads, runs, events, size;
	char ack_path[512];
	uint64_t *acks; /* procs*threads*runs entries */
	bool ack_missing;
} invocation;

typedef struct totals {
	uint64_t invocations, runs, runs_absent, events_acked, events_verified,
		in_flight, errors, rows;
} totals;

static bool quiet;

static void report(totals *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(totals *t, const char *fmt, ...)
{
	if (t->errors++ < MAX_REPORTS) {
		va_list ap;
		va_start(ap, fmt);
		fputs("verify: FAIL: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	} else if (t->errors == MAX_REPORTS + 1) {
		fputs("verify: (further failures not shown)\n", stderr);
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

/* Message m of run id (docs/DESIGN.md §9). */
static void expected_message(uint8_t *buf, size_t size, const char *id, uint64_t m)
{
	uint64_t h = fnv1a64(id, strlen(id));
	for (int i = 0; i < 8; i++) {
		buf[i] = (uint8_t)(m >> (8 * i));
		buf[8 + i] = (uint8_t)(h >> (8 * i));
	}
	for (size_t i = 16; i < size; i++)
		buf[i] = (uint8_t)(h + 31 * m + i);
}

/* The first differing byte of a and b (n bytes), or -1. */
static long first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return (long)i;
	return -1;
}

static int load_acks(invocation *iv)
{
	size_t n = iv->procs * iv->threads * iv->runs;
	iv->acks = calloc(n ? n : 1, sizeof *iv->acks);
	if (!iv->acks)
		return -ENOMEM;
	FILE *f = fopen(iv->ack_path, "rb");
	if (!f) {
		iv->ack_missing = true;
		return 0;
	}
	uint8_t b[8];
	for (size_t i = 0; i < n && fread(b, 1, 8, f) == 8; i++) {
		uint64_t v = 0;
		for (int k = 7; k >= 0; k--)
			v = v << 8 | b[k];
		iv->acks[i] = v;
	}
	fclose(f);
	return 0;
}

static int read_manifest(const char *path, invocation **out, size_t *n)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "verify: manifest %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t cap = 16, k = 0;
	invocation *v = calloc(cap, sizeof *v);
	char line[1024];
	while (v && fgets(line, sizeof line, f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (k == cap) {
			invocation *nv = realloc(v, 2 * cap * sizeof *v);
			if (!nv)
				break;
			memset(nv + cap, 0, cap * sizeof *v);
			v = nv;
			cap *= 2;
		}
		invocation *iv = &v[k];
		if (sscanf(line, "%63s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
			   " %511s", iv->prefix, &iv->procs, &iv->threads, &iv->runs,
			   &iv->events, &iv->size, iv->ack_path) != 7 ||
		    iv->size < 16) {
			fprintf(stderr, "verify: bad manifest line: %s", line);
			fclose(f);
			free(v);
			return -1;
		}
		if (strcmp(iv->prefix, "-") == 0)
			iv->prefix[0] = '\0';
		if (load_acks(iv)) {
			fclose(f);
			free(v);
			return -1;
		}
		k++;
	}
	fclose(f);
	if (!v)
		return -1;
	*out = v;
	*n = k;
	return 0;
}

/* Check one run of one invocation. */
static void check_run(ckr_store *s, const invocation *iv, const char *id, uint64_t ack,
		      uint8_t *want, totals *t)
{
	ckr_resume *rs = NULL;
	ckr_run_info info;
	size_t id_len = strlen(id);
	t->runs++;
	t->events_acked += ack;
	int rc = ckr_store_resume(s, id, id_len, &rs);
	if (rc == -ENOENT) {
		if (ack > 0)
			report(t, "%s: %" PRIu64 " messages acknowledged but the run is not in "
			       "the store", id, ack);
		t->runs_absent++;
		return;
	}
	if (rc) {
		report(t, "%s: ckr_store_resume: %s", id, ckr_strerror(rc));
		return;
	}
	if (rs->kind != CKR_KIND_SINGLE_LOOP || rs->state != CKR_RUN_RUNNING)
		report(t, "%s: kind %d state %d, want single-loop RUNNING", id, rs->kind,
		       rs->state);
	if (rs->n_history < ack)
		report(t, "%s: history holds %zu messages, %" PRIu64 " were acknowledged "
		       "(lost: seq %zu..%" PRIu64 ")", id, rs->n_history, ack,
		       rs->n_history + 1, ack);
	if (rs->n_history > ack + 1)
		report(t, "%s: history holds %zu messages, at most ack+1 = %" PRIu64
		       " can have been pushed", id, rs->n_history, ack + 1);
	for (size_t m = 0; m < rs->n_history; m++) {
		const ckr_blob *b = &rs->history[m];
		if (b->seq != m + 1) {
			report(t, "%s: history[%zu] has seq %" PRIu64 ", want %zu (order)", id, m,
			       b->seq, m + 1);
			break;
		}
		if (b->size != iv->size) {
			report(t, "%s: message %zu is %zu bytes, want %" PRIu64, id, m, b->size,
			       iv->size);
			break;
		}
		expected_message(want, iv->size, id, m);
		long d = first_diff(b->data, want, iv->size);
		if (d >= 0) {
			report(t, "%s: message %zu differs at byte %ld (0x%02x, want 0x%02x)", id,
			       m, d, b->data[d], want[d]);
			break;
		}
		if (m < ack)
			t->events_verified++;
		else
			t->in_flight++;
	}
	for (size_t g = 0; g < rs->n_gaps; g++)
		if (rs->gaps[g] <= ack)
			report(t, "%s: gap at seq %" PRIu64 " within the %" PRIu64
			       " acknowledged messages", id, rs->gaps[g], ack);
	rc = ckr_store_get(s, id, id_len, &info);
	if (rc) {
		report(t, "%s: ckr_store_get: %s", id, ckr_strerror(rc));
	} else if (rs->n_gaps == 0 &&
		   (info.events != rs->n_history + 1 || info.last_seq != rs->n_history)) {
		report(t, "%s: record says %" PRIu64 " events, last_seq %" PRIu64
		       "; history has %zu messages (+ begin)", id, info.events,
		       info.last_seq, rs->n_history);
	}
	ckr_resume_free(rs);
}

static void check_invocation(ckr_store *s, const invocation *iv, totals *t)
{
	uint8_t *want = malloc(iv->size);
	char id[160];
	if (!want) {
		report(t, "out of memory");
		return;
	}
	if (iv->ack_missing && !quiet)
		fprintf(stderr, "verify: note: %s has no ack file (%s): all acks 0\n",
			iv->prefix, iv->ack_path);
	t->invocations++;
	for (uint64_t p = 0; p < iv->procs; p++)
		for (uint64_t th = 0; th < iv->threads; th++)
			for (uint64_t r = 0; r < iv->runs; r++) {
				snprintf(id, sizeof id, "%sp%" PRIu64 "-t%" PRIu64 "-r%" PRIu64,
					 iv->prefix, p, th, r);
				uint64_t ack = iv->acks[(p * iv->threads + th) * iv->runs + r];
				if (ack > iv->events)
					report(t, "%s: ack %" PRIu64 " > --events %" PRIu64, id, ack,
					       iv->events);
				check_run(s, iv, id, ack, want, t);
			}
	free(want);
}

/* Is id a run of one of the invocations (prefix + p/t/r in range)? */
static bool known_run(const invocation *v, size_t n, const uint8_t *id, size_t len)
{
	char buf[CKR_RUN_ID_MAX + 1];
	memcpy(buf, id, len);
	buf[len] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t pl = strlen(v[i].prefix);
		uint64_t p, th, r;
		char tail;
		if (strncmp(buf, v[i].prefix, pl) != 0)
			continue;
		if (sscanf(buf + pl, "p%" SCNu64 "-t%" SCNu64 "-r%" SCNu64 "%c", &p, &th, &r,
			   &tail) == 3 &&
		    p < v[i].procs && th < v[i].threads && r < v[i].runs)
			return true;
	}
	return false;
}

static void check_whole_store(ckr_store *s, const invocation *v, size_t n,
			      char **allowed, int n_allowed, totals *t)
{
	ckr_run_info *runs = NULL;
	size_t nr = 0;
	int rc = ckr_store_list(s, CKR_LIST_ALL, &runs, &nr);
	if (rc) {
		report(t, "ckr_store_list: %s", ckr_strerror(rc));
		return;
	}
	for (size_t i = 0; i < nr; i++) {
		t->rows += runs[i].events;
		if (!known_run(v, n, runs[i].id, runs[i].id_len))
			report(t, "run '%.*s' is in the store but in no invocation",
			       (int)runs[i].id_len, (const char *)runs[i].id);
	}
	free(runs);
	static const char *const must_be_zero[] = {
		"dup_seq", "dup_begin", "stale", "orphan", "after_end",
		"bad_begin", "bad_kind", "over_limit", "quarantined",
	};
	for (size_t i = 0; i < sizeof must_be_zero / sizeof must_be_zero[0]; i++) {
		bool skip = false;
		for (int k = 0; k < n_allowed; k++)
			skip = skip || strcmp(allowed[k], must_be_zero[i]) == 0;
		uint64_t c = ckr_store_counter(s, must_be_zero[i]);
		if (c && !skip)
			report(t, "store counter '%s' is %" PRIu64 ", want 0", must_be_zero[i], c);
	}
	uint64_t stored = ckr_store_counter(s, "stored");
	if (stored != t->rows)
		report(t, "store counter 'stored' is %" PRIu64 " but the runs hold %" PRIu64
		       " rows (an event applied twice, or rows lost)", stored, t->rows);
}

static void usage(FILE *f)
{
	fputs("usage: verify --db DIR --manifest FILE [--allow-counter NAME]... [--quiet]\n"
	      "Check a store filled by ckring-load invocations against their ack files\n"
	      "(manifest lines: PREFIX PROCS THREADS RUNS EVENTS SIZE ACKFILE; PREFIX '-'\n"
	      "for none). Opens the store read-only.\n", f);
}

int main(int argc, char **argv)
{
	const char *db = NULL, *manifest = NULL;
	char *allowed[16];
	int n_allowed = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
			db = argv[++i];
		else if (strcmp(argv[i], "--manifest") == 0 && i + 1 < argc)
			manifest = argv[++i];
		else if (strcmp(argv[i], "--allow-counter") == 0 && i + 1 < argc && n_allowed < 16)
			allowed[n_allowed++] = argv[++i];
		else if (strcmp(argv[i], "--quiet") == 0)
			quiet = true;
		else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!db || !manifest) {
		usage(stderr);
		return 2;
	}
	invocation *v;
	size_t n;
	if (read_manifest(manifest, &v, &n))
		return 1;
	ckr_store *s;
	ckr_store_opts so = { .read_only = true };
	int rc = ckr_store_open(db, &so, &s);
	if (rc) {
		fprintf(stderr, "verify: cannot open store %s read-only: %s\n", db,
			ckr_strerror(rc));
		return 1;
	}
	totals t = { 0 };
	for (size_t i = 0; i < n; i++)
		check_invocation(s, &v[i], &t);
	check_whole_store(s, v, n, allowed, n_allowed, &t);
	ckr_store_close(s);
	printf("verify: %" PRIu64 " invocations, %" PRIu64 " runs (%" PRIu64 " never begun), "
	       "%" PRIu64 " acknowledged messages verified byte-exact (of %" PRIu64 "), %" PRIu64
	       " in-flight messages persisted, %" PRIu64 " rows; %" PRIu64 " failures\n",
	       t.invocations, t.runs, t.runs_absent, t.events_verified, t.events_acked,
	       t.in_flight, t.rows, t.errors);
	for (size_t i = 0; i < n; i++)
		free(v[i].acks);
	free(v);
	return t.errors ? 1 : 0;
}
