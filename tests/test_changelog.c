/*
 * test_changelog.c — the store's change log (persist/changelog.c,
 * persist/store_ship.c, FORMAT.md "changes"), the schema 2 -> 3 migration of
 * a store made by the previous code (tests/fixtures/store-schema2.dump), and
 * the store calls a shipper uses: reading the log with its rows, snapshots,
 * registration and trimming, moved marks, imports.
 */
#include <errno.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckring_store.h"
#include "event/event.h"
#include "persist/store.h"
#include "tests/helpers/testutil.h"

static const uint8_t EPOCH[16] = "changelog-epoch1";

typedef struct fx {
	char *dir;
	ckr_store *s;     /* read-write (the flusher's open) */
	ckr_identity who; /* the writer's identity */
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	bool retired;
	f->dir = tu_tmpdir("clog");
	if (ckr_store_open_rw(f->dir, NULL, &f->s) ||
	    ckr_store_bind_segment(f->s, "clog-seg", EPOCH, &retired, NULL))
		return -1;
	f->who = (ckr_identity){ .token = ckr_token_make(4194303, 777), .nonce = 42 };
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	ckr_store_close(f->s);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* Apply one event (writer 7) through the batch b. */
static void apply(fx *f, ckr_batch *b, ckr_event_type t, const char *id, uint32_t inc,
		  uint64_t seq, const char *text)
{
	ckr_event ev = { .type = t, .incarnation = inc, .seq = seq, .writer = 7,
			 .id = (const uint8_t *)id, .id_len = strlen(id) };
	uint8_t buf[512];
	ckr_apply w;
	if (t == CKR_EV_BEGIN) {
		ev.u.begin.kind = CKR_KIND_SINGLE_LOOP;
		ev.u.begin.owner_pid = (uint32_t)ckr_token_pid(f->who.token);
		ev.u.begin.owner_start = ckr_token_start(f->who.token);
		ev.u.begin.label = "v1";
		ev.u.begin.label_len = 2;
	} else if (t == CKR_EV_MESSAGE) {
		ev.u.message.data = (const uint8_t *)text;
		ev.u.message.len = strlen(text);
	} else if (t == CKR_EV_FAIL) {
		ev.u.fail.error = text;
		ev.u.fail.len = strlen(text);
	}
	size_t n = ckr_event_encode(&ev, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(ckr_batch_apply(b, &ev, buf, n, &f->who, &w), 0);
	assert_int_equal(w, CKR_APPLY_STORED);
}

/* What the log holds, one line per entry ("rows a 1 0-3 n4" ...). */
typedef struct seen {
	char text[4096];
	size_t len;
	uint64_t numbers[64];
	size_t n;
} seen;

static int note(void *ctx, const ckr_change *c)
{
	seen *z = ctx;
	char line[200];
	switch (c->kind) {
	case CKR_CHANGE_ROWS:
		snprintf(line, sizeof line, "rows %.*s i%u %llu-%llu n%zu%s;", (int)c->id_len,
			 (const char *)c->id, c->incarnation, (unsigned long long)c->seq_lo,
			 (unsigned long long)c->seq_hi, c->n_rows,
			 c->n_rows && c->rows[c->n_rows - 1].set_aside ? " aside" : "");
		break;
	case CKR_CHANGE_FINISH:
		snprintf(line, sizeof line, "finish %.*s %d%s;", (int)c->id_len,
			 (const char *)c->id, c->state, c->cleared ? " cleared" : "");
		break;
	case CKR_CHANGE_CLAIM:
		snprintf(line, sizeof line, "claim %.*s i%u p%llu;", (int)c->id_len,
			 (const char *)c->id, c->incarnation, (unsigned long long)c->prefix_seq);
		break;
	case CKR_CHANGE_PRUNE:
		snprintf(line, sizeof line, "prune %.*s%s;", (int)c->id_len, (const char *)c->id,
			 c->removed ? " removed" : "");
		break;
	case CKR_CHANGE_IMPORT:
		snprintf(line, sizeof line, "import %.*s i%u;", (int)c->id_len,
			 (const char *)c->id, c->incarnation);
		break;
	case CKR_CHANGE_MARK:
		snprintf(line, sizeof line, "mark %zu;", c->n_lanes);
		break;
	case CKR_CHANGE_RUN:
		snprintf(line, sizeof line, "run %.*s %d n%zu;", (int)c->id_len,
			 (const char *)c->id, c->state, c->n_rows);
		break;
	case CKR_CHANGE_RETRY:
		snprintf(line, sizeof line, "retry %.*s i%u a%u;", (int)c->id_len,
			 (const char *)c->id, c->incarnation, c->attempts);
		break;
	}
	size_t l = strlen(line);
	assert_true(z->len + l < sizeof z->text);
	memcpy(z->text + z->len, line, l + 1);
	z->len += l;
	if (z->n < 64)
		z->numbers[z->n++] = c->number;
	return 0;
}

static void read_log(ckr_store *s, uint64_t after, seen *z)
{
	uint64_t last;
	memset(z, 0, sizeof *z);
	assert_int_equal(ckr_store_changes(s, after, 0, note, z, &last), 0);
}

static void test_schema_2_store_migrates_to_3(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("clog-fx"), cmd[1200];
	const char *root = getenv("CKR_SRC");
	snprintf(cmd, sizeof cmd, "mdb_load -f '%s/tests/fixtures/store-schema2.dump' '%s'",
		 root && *root ? root : ".", dir);
	assert_int_equal(system(cmd), 0);
	ckr_store *s = NULL;
	ckr_store_opts ro = { .read_only = true };
	assert_int_equal(ckr_store_open(dir, &ro, &s), CKR_EVERSION); /* the flusher migrates */
	assert_int_equal(ckr_store_open_rw(dir, NULL, &s), 0);
	ckr_store_close(s);
	assert_int_equal(ckr_store_open(dir, &ro, &s), 0);
	ckr_run_info in;
	assert_int_equal(ckr_store_get(s, "loop-ok", 7, &in), 0);
	assert_int_equal(in.events, 4);
	assert_int_equal(ckr_store_get(s, "loop-gap-x", 10, &in), 0);
	assert_int_equal(in.incarnation, 2);
	assert_int_equal(in.set_aside, 1);
	assert_int_equal(ckr_store_get(s, "failed-1", 8, &in), 0);
	assert_string_equal(in.error, "model error: boom");
	ckr_log_info li;
	assert_int_equal(ckr_store_log_info(s, &li), 0);
	assert_int_equal(li.last, 0);
	assert_false(li.registered);
	assert_string_equal(li.segment, "fixture-seg");
	static const uint8_t zero[16];
	assert_memory_not_equal(li.store_id, zero, 16);
	seen z;
	uint64_t at;
	memset(&z, 0, sizeof z);
	assert_int_equal(ckr_store_snapshot(s, note, &z, &at), 0);
	assert_int_equal(at, 0);
	assert_non_null(strstr(z.text, "run loop-gap-x 1 n4;")); /* 3 rows + 1 aside */
	assert_non_null(strstr(z.text, "run done-1-abc 3 n0;"));
	ckr_store_close(s);
	tu_rmrf(dir);
}

static void test_a_batch_logs_ranges_finishes_and_a_mark(void **state)
{
	fx *f = *state;
	ckr_batch *b;
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	ckr_batch_from_lane(b, 2);
	apply(f, b, CKR_EV_BEGIN, "a", 1, 0, NULL);
	apply(f, b, CKR_EV_MESSAGE, "a", 1, 1, "one");
	apply(f, b, CKR_EV_BEGIN, "bb", 1, 0, NULL);
	apply(f, b, CKR_EV_MESSAGE, "a", 1, 2, "two");
	apply(f, b, CKR_EV_MESSAGE, "a", 1, 4, "four"); /* a gap: a new range */
	apply(f, b, CKR_EV_MESSAGE, "bb", 1, 1, "x");
	apply(f, b, CKR_EV_FAIL, "bb", 1, 2, "boom");
	assert_int_equal(ckr_batch_set_cursor(b, EPOCH, 2, 4096), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
	seen z;
	read_log(f->s, 0, &z);
	/* a's range is logged when its gap begins, bb's before its finish. */
	assert_string_equal(z.text, "rows a i1 0-2 n3;rows bb i1 0-1 n2;finish bb 2;"
				    "rows a i1 4-4 n1;mark 1;");
	for (size_t i = 0; i < z.n; i++)
		assert_int_equal(z.numbers[i], i + 1);
	/* From a position: only what follows. */
	read_log(f->s, 3, &z);
	assert_string_equal(z.text, "rows a i1 4-4 n1;mark 1;");
}

static void test_claims_and_prunes_are_logged(void **state)
{
	fx *f = *state;
	ckr_batch *b;
	ckr_claim cl;
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	apply(f, b, CKR_EV_BEGIN, "r", 1, 0, NULL);
	apply(f, b, CKR_EV_MESSAGE, "r", 1, 1, "m1");
	apply(f, b, CKR_EV_MESSAGE, "r", 1, 3, "m3");
	apply(f, b, CKR_EV_BEGIN, "gone", 1, 0, NULL);
	apply(f, b, CKR_EV_FAIL, "gone", 1, 1, "bad");
	assert_int_equal(ckr_batch_owner_ended(b, &f->who), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
	assert_int_equal(ckr_store_claim(f->s, "r", 1, &cl), 0);
	assert_int_equal(ckr_store_prune(f->s, 0, 0), 0);
	seen z;
	read_log(f->s, 0, &z);
	/* The row at seq 3 is found set aside by the claim that followed. */
	assert_non_null(strstr(z.text, "rows r i1 3-3 n1 aside;"));
	assert_non_null(strstr(z.text, "claim r i2 p1;"));
	assert_non_null(strstr(z.text, "finish gone 2;"));
}

static void test_trimming_follows_the_shipped_position(void **state)
{
	fx *f = *state;
	ckr_batch *b;
	ckr_log_info li;
	for (int i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof id, "t%d", i);
		assert_int_equal(ckr_batch_begin(f->s, &b), 0);
		apply(f, b, CKR_EV_BEGIN, id, 1, 0, NULL);
		assert_int_equal(ckr_batch_commit(b), 0);
	}
	/* Nobody registered: everything goes. */
	assert_int_equal(ckr_store_log_trim(f->s, 0), 3);
	assert_int_equal(ckr_store_log_info(f->s, &li), 0);
	assert_int_equal(li.last, 3);
	assert_int_equal(li.first, 4);
	/* A registered shipper starts at the last entry; it keeps what follows. */
	assert_int_equal(ckr_store_ship_register(f->s, &li), 0);
	assert_true(li.registered);
	assert_int_equal(li.shipped, 3);
	for (int i = 3; i < 6; i++) {
		char id[16];
		snprintf(id, sizeof id, "t%d", i);
		assert_int_equal(ckr_batch_begin(f->s, &b), 0);
		apply(f, b, CKR_EV_BEGIN, id, 1, 0, NULL);
		assert_int_equal(ckr_batch_commit(b), 0);
	}
	assert_int_equal(ckr_store_log_trim(f->s, 0), 0);
	assert_int_equal(ckr_store_ship_position(f->s, 5), 0);
	assert_int_equal(ckr_store_ship_position(f->s, 4), 0); /* never back */
	assert_int_equal(ckr_store_ship_position(f->s, 99), -EINVAL);
	assert_int_equal(ckr_store_log_trim(f->s, 0), 2);
	seen z;
	read_log(f->s, 5, &z);
	assert_string_equal(z.text, "rows t5 i1 0-0 n1;");
	/* Behind what was kept: the caller must ship a snapshot. */
	uint64_t last;
	assert_int_equal(ckr_store_changes(f->s, 2, 0, note, &z, &last), CKR_ETRUNC);
}

static void test_a_moved_run_is_never_driven_here(void **state)
{
	fx *f = *state;
	ckr_batch *b;
	ckr_claim cl;
	ckr_run_info in;
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	apply(f, b, CKR_EV_BEGIN, "mv", 1, 0, NULL);
	assert_int_equal(ckr_batch_owner_ended(b, &f->who), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
	assert_int_equal(ckr_store_mark_moved(f->s, "mv", 2, "host-b", 2), 0);
	assert_int_equal(ckr_store_get(f->s, "mv", 2, &in), 0);
	assert_int_equal(in.state, CKR_RUN_FAILED);
	assert_string_equal(in.error, "moved to host host-b (incarnation 2)");
	assert_int_equal(ckr_store_claim(f->s, "mv", 2, &cl), CKR_ETERMINAL);
	assert_int_equal(ckr_store_mark_moved(f->s, "mv", 2, "host-b", 2), CKR_ETERMINAL);
	/* Not logged: it mirrors the shared record. */
	ckr_log_info li;
	assert_int_equal(ckr_store_log_info(f->s, &li), 0);
	assert_int_equal(li.last, 1); /* the begin's rows only */
}

static void test_an_imported_run_continues_here(void **state)
{
	fx *f = *state;
	ckr_event ev = { .type = CKR_EV_BEGIN, .incarnation = 1, .writer = 9,
			 .id = (const uint8_t *)"imp", .id_len = 3 };
	ev.u.begin.kind = CKR_KIND_SINGLE_LOOP;
	ev.u.begin.label = "far";
	ev.u.begin.label_len = 3;
	uint8_t b0[256], b1[256];
	size_t n0 = ckr_event_encode(&ev, b0, sizeof b0);
	ev.type = CKR_EV_MESSAGE;
	ev.seq = 1;
	ev.u.message.data = (const uint8_t *)"hi";
	ev.u.message.len = 2;
	size_t n1 = ckr_event_encode(&ev, b1, sizeof b1);
	ckr_change_row rows[2] = { { .seq = 0, .incarnation = 1, .data = b0, .size = n0 },
				   { .seq = 1, .incarnation = 1, .data = b1, .size = n1 } };
	ckr_adopt im = { .id = "imp", .id_len = 3, .incarnation = 3, .attempts = 2,
			  .rows = rows, .n_rows = 2 };
	ckr_claim cl;
	assert_int_equal(ckr_store_adopt(f->s, &im, &cl), 0);
	assert_int_equal(cl.incarnation, 3);
	assert_int_equal(cl.next_seq, 2);
	assert_string_equal(cl.label, "far");
	assert_int_equal(ckr_store_adopt(f->s, &im, &cl), -EEXIST);
	ckr_resume *rs;
	assert_int_equal(ckr_store_resume(f->s, "imp", 3, &rs), 0);
	assert_int_equal(rs->n_history, 1);
	assert_memory_equal(rs->history[0].data, "hi", 2);
	ckr_resume_free(rs);
	/* Its new writer is this process: events of the claim are accepted. */
	ckr_batch *b;
	ckr_identity self;
	assert_int_equal(ckr_proc_self_identity(&self), 0);
	ev.seq = 2;
	ev.incarnation = 3;
	ev.writer = cl.writer;
	size_t n2 = ckr_event_encode(&ev, b1, sizeof b1);
	ckr_apply w;
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	assert_int_equal(ckr_batch_apply(b, &ev, b1, n2, &self, &w), 0);
	assert_int_equal(w, CKR_APPLY_STORED);
	assert_int_equal(ckr_batch_commit(b), 0);
	seen z;
	read_log(f->s, 0, &z);
	assert_string_equal(z.text, "import imp i3;rows imp i3 2-2 n1;");
}

/* Begin run id with n messages and leave it (its owner ended), or fail it. */
static void make_run(fx *f, const char *id, int n, bool fail)
{
	ckr_batch *b;
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	apply(f, b, CKR_EV_BEGIN, id, 1, 0, NULL);
	for (int i = 1; i <= n; i++)
		apply(f, b, CKR_EV_MESSAGE, id, 1, (uint64_t)i, "msg");
	if (fail)
		apply(f, b, CKR_EV_FAIL, id, 1, (uint64_t)n + 1, "boom");
	assert_int_equal(ckr_batch_owner_ended(b, &f->who), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
}

static uint64_t log_last(ckr_store *s)
{
	ckr_log_info li;
	assert_int_equal(ckr_store_log_info(s, &li), 0);
	return li.last;
}

/* Prune every finished run now (bounded steps, until a full pass). */
static void prune_all(ckr_store *s)
{
	ckr_prune_opts o = { .failed_age_s = 0, .completed_age_s = 0 };
	ckr_prune_pos pos = { 0 };
	int rc;
	while ((rc = ckr_store_prune_step(s, &o, &pos, NULL, NULL)) == 0)
		;
	assert_int_equal(rc, 1);
}

/* The error a FINISH entry carries, as text. */
static int grab_error(void *ctx, const ckr_change *c)
{
	char *out = ctx;
	assert_int_equal(c->kind, CKR_CHANGE_FINISH);
	assert_true(c->error_len < 64);
	memcpy(out, c->error, c->error_len);
	out[c->error_len] = '\0';
	return 0;
}

static void test_fail_and_retry_are_logged(void **state)
{
	fx *f = *state;
	char err[64];
	seen z;
	make_run(f, "op", 2, false);
	uint64_t at = log_last(f->s);
	assert_int_equal(ckr_store_fail(f->s, "op", 2, "stuck", NULL), 0);
	read_log(f->s, at, &z);
	assert_string_equal(z.text, "finish op 2;");
	assert_int_equal(ckr_store_changes(f->s, at, 1, grab_error, err, NULL), 0);
	assert_string_equal(err, "failed by operator: stuck");
	assert_int_equal(ckr_store_retry(f->s, "op", 2, NULL), 0);
	read_log(f->s, at + 1, &z);
	assert_string_equal(z.text, "retry op i1 a0;");
	/* Refused actions log nothing. */
	assert_int_equal(ckr_store_retry(f->s, "op", 2, NULL), -EALREADY);
	assert_int_equal(ckr_store_fail(f->s, "nope", 4, "x", NULL), -ENOENT);
	assert_int_equal(log_last(f->s), at + 2);
}

static void test_a_moved_run_is_not_retried(void **state)
{
	fx *f = *state;
	make_run(f, "mv", 1, false);
	assert_int_equal(ckr_store_mark_moved(f->s, "mv", 2, "host-b", 2), 0);
	assert_int_equal(ckr_store_retry(f->s, "mv", 2, NULL), CKR_EMOVED);
}

static void test_an_import_is_logged_with_its_rows(void **state)
{
	fx *f = *state;
	ckr_export *e;
	ckr_claim cl;
	seen z;
	make_run(f, "ex", 3, false);
	assert_int_equal(ckr_store_export(f->s, "ex", 2, &e), 0);
	/* Into a second store, as another host's operator would. */
	fx g = { .dir = tu_tmpdir("clog2") };
	bool retired;
	assert_int_equal(ckr_store_open_rw(g.dir, NULL, &g.s), 0);
	assert_int_equal(ckr_store_bind_segment(g.s, "clog-seg2", EPOCH, &retired, NULL), 0);
	assert_int_equal(ckr_store_import(g.s, e, NULL), 0);
	read_log(g.s, 0, &z);
	assert_string_equal(z.text, "run ex 1 n4;"); /* the begin and 3 messages */
	assert_int_not_equal(z.numbers[0], 0);       /* a log entry, not a snapshot */
	/* Claimed here (the rows past a gap would go aside): the import's entry
	 * still names its 4 rows, the claim's new rows are the claim's. */
	assert_int_equal(ckr_store_claim(g.s, "ex", 2, &cl), 0);
	read_log(g.s, 0, &z);
	assert_string_equal(z.text, "run ex 1 n4;claim ex i2 p3;");
	/* Removed and imported again: the old entry names none of the new
	 * run's rows (it is another run of that id). */
	assert_int_equal(ckr_store_fail(g.s, "ex", 2, "x", NULL), 0);
	prune_all(g.s);
	e->created_ns += 1;
	assert_int_equal(ckr_store_import(g.s, e, NULL), 0);
	read_log(g.s, 0, &z);
	assert_string_equal(z.text, "run ex 1 n0;claim ex i2 p3;finish ex 2;prune ex removed;"
				    "run ex 1 n4;");
	ckr_export_free(e);
	ckr_store_close(g.s);
	tu_rmrf(g.dir);
}

static void test_a_run_begun_anew_is_another_run(void **state)
{
	fx *f = *state;
	seen z;
	make_run(f, "re", 2, true);
	prune_all(f->s); /* removed */
	make_run(f, "re", 1, false);
	read_log(f->s, 0, &z);
	/* The first run's rows are gone; the rows there now are the second
	 * run's, named by its own entry only. */
	assert_string_equal(z.text, "rows re i1 0-2 n0;finish re 2;prune re removed;"
				    "rows re i1 0-1 n2;");
}

/* What a prune step reported. */
static void count_done(void *ctx, const ckr_pruned *p)
{
	int *n = ctx;
	*n += p->done;
}

static void test_a_bounded_prune_logs_each_run_once(void **state)
{
	ckr_prune_opts o = { .failed_age_s = 0, .completed_age_s = 0, .max_rows = 2 };
	ckr_prune_pos pos = { 0 };
	ckr_store_rw_opts keep = { .keep_completed_s = 3600 };
	ckr_batch *b;
	bool retired;
	seen z;
	/* A store that keeps completed runs' events (a flusher's
	 * --keep-completed), so that a prune has rows to clear. */
	fx g = { .dir = tu_tmpdir("clog3"), .who = ((fx *)*state)->who }, *f = &g;
	assert_int_equal(ckr_store_open_rw(g.dir, &keep, &g.s), 0);
	assert_int_equal(ckr_store_bind_segment(g.s, "clog-seg3", EPOCH, &retired, NULL), 0);
	make_run(f, "pf", 4, true);
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	apply(f, b, CKR_EV_BEGIN, "pc", 1, 0, NULL);
	apply(f, b, CKR_EV_MESSAGE, "pc", 1, 1, "m");
	apply(f, b, CKR_EV_MESSAGE, "pc", 1, 2, "m");
	apply(f, b, CKR_EV_COMPLETE, "pc", 1, 3, NULL);
	assert_int_equal(ckr_batch_commit(b), 0);
	uint64_t at = log_last(f->s);
	int done = 0, steps = 0, rc;
	do {
		uint64_t before = log_last(f->s);
		int was = done;
		rc = ckr_store_prune_step(f->s, &o, &pos, count_done, &done);
		assert_true(rc == 0 || rc == 1);
		/* A step logs exactly the runs it finished. */
		assert_int_equal(log_last(f->s) - before, (uint64_t)(done - was));
		steps++;
	} while (rc == 0 || done < 2);
	assert_true(steps >= 4); /* 5 + 3 rows, 2 a step */
	read_log(f->s, at, &z);
	assert_string_equal(z.text, "prune pc;prune pf removed;");
	ckr_store_close(g.s);
	tu_rmrf(g.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schema_2_store_migrates_to_3),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_a_batch_logs_ranges_finishes_and_a_mark),
		T(test_claims_and_prunes_are_logged),
		T(test_trimming_follows_the_shipped_position),
		T(test_a_moved_run_is_never_driven_here),
		T(test_an_imported_run_continues_here),
		T(test_fail_and_retry_are_logged),
		T(test_a_moved_run_is_not_retried),
		T(test_an_import_is_logged_with_its_rows),
		T(test_a_run_begun_anew_is_another_run),
		T(test_a_bounded_prune_logs_each_run_once),
#undef T
	};
	return cmocka_run_group_tests_name("changelog", tests, NULL, NULL);
}
