/*
 * test_admin.c — the operator's actions (persist/store_admin.c), pruning in
 * bounded steps (persist/retention.c), the queries and census
 * (persist/store_query.c) and the engine's metrics (flusher_metrics.c),
 * against the real ckring-flusher of the hooks build. One behaviour per
 * test; every wait is bounded and waits on an event.
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckring_store.h"
#include "persist/store.h"
#include "tests/helpers/testutil.h"
#include "tests/helpers/tu_flusher.h"

typedef struct fixture {
	const char *seg;
	char *db;
	pid_t flusher;
	ckr_client *c;
	ckr_store *s;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->seg = tu_segname("adm");
	f->db = tu_tmpdir("adm");
	f->flusher = tu_flusher_start(f->seg, f->db, NULL, NULL);
	if (f->flusher < 0 || ckr_client_attach(f->seg, NULL, &f->c) ||
	    ckr_store_open(f->db, NULL, &f->s))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	ckr_store_close(f->s);
	ckr_client_detach(f->c);
	if (f->flusher > 0)
		tu_flusher_stop(f->flusher);
	ckr_segment_unlink(f->seg);
	tu_rmrf(f->db);
	free(f);
	return 0;
}

static int committed(fixture *f, const ckr_ticket *t)
{
	return ckr_wait(f->c, t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS);
}

/* A run of n messages in the store, then finished with outcome (LEAVE:
 * left running with its handle open, returned). */
static ckr_run *make_run(fixture *f, const char *id, int n, ckr_outcome outcome)
{
	ckr_ticket t;
	ckr_run *r = tu_begin(f->c, id, CKR_KIND_SINGLE_LOOP, &t);
	if (n)
		t = tu_push_msgs(r, 0, n);
	assert_int_equal(committed(f, &t), 0);
	if (outcome == CKR_OUTCOME_LEAVE_RUNNING)
		return r;
	assert_int_equal(ckr_run_finish(r, outcome, "it broke", &t), 0);
	assert_int_equal(committed(f, &t), 0);
	ckr_run_close(r);
	return NULL;
}

/* Claim, retrying (bounded) while the flusher has not drained the owner. */
static int claim_retry(ckr_store *s, const char *id, ckr_claim *cl)
{
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	int rc;
	while ((rc = ckr_store_claim(s, id, strlen(id), cl)) == CKR_ENOTDRAINED &&
	       tu_now_ms() < deadline)
		sched_yield();
	return rc;
}

/* A child that begins id with n messages and dies (SIGKILL) holding it. */
static void die_holding(fixture *f, const char *id, int n)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		ckr_client *c;
		ckr_ticket t;
		if (ckr_client_attach(f->seg, NULL, &c))
			_exit(1);
		ckr_run *r = tu_begin(c, id, CKR_KIND_SINGLE_LOOP, &t);
		t = tu_push_msgs(r, 0, n);
		if (ckr_wait(c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS))
			_exit(1);
		raise(SIGKILL);
	}
	int st = tu_wait_child(pid, TU_TIMEOUT_MS);
	assert_true(WIFSIGNALED(st));
}

/* ---- fail --------------------------------------------------------------- */

static void test_fail_fences_the_live_writer(void **state)
{
	fixture *f = *state;
	ckr_run *r = make_run(f, "live", 2, CKR_OUTCOME_LEAVE_RUNNING);
	ckr_run_info in;
	assert_int_equal(ckr_store_fail(f->s, "live", 4, "stuck in a tool loop", &in), 0);
	assert_int_equal(in.state, CKR_RUN_FAILED);
	assert_string_equal(in.error, "failed by operator: stuck in a tool loop");
	assert_int_equal(in.events, 3); /* kept */
	ckr_ticket t = tu_push_msgs(r, 2, 1);
	assert_int_equal(committed(f, &t), CKR_EREJECTED);
	assert_int_equal(tu_store_counter(f->db, "after_end"), 1);
	assert_int_equal(ckr_store_fail(f->s, "live", 4, "again", NULL), CKR_ETERMINAL);
	ckr_run_close(r);
}

static void test_fail_refusals(void **state)
{
	fixture *f = *state;
	assert_int_equal(ckr_store_fail(f->s, "nosuch", 6, "x", NULL), -ENOENT);
	assert_int_equal(ckr_store_fail(f->s, "nosuch", 6, "", NULL), -EINVAL);
	assert_int_equal(ckr_store_fail(f->s, "nosuch", 0, "x", NULL), -EINVAL);
	ckr_store *ro;
	ckr_store_opts so = { .read_only = true };
	assert_int_equal(ckr_store_open(f->db, &so, &ro), 0);
	assert_int_equal(ckr_store_fail(ro, "nosuch", 6, "x", NULL), -EROFS);
	ckr_store_close(ro);
}

/* ---- retry -------------------------------------------------------------- */

static void test_retry_makes_a_failed_run_claimable(void **state)
{
	fixture *f = *state;
	make_run(f, "again", 3, CKR_OUTCOME_FAIL);
	ckr_run_info in;
	assert_int_equal(ckr_store_retry(f->s, "again", 5, &in), 0);
	assert_int_equal(in.state, CKR_RUN_RUNNING);
	assert_int_equal(in.attempts, 0);
	assert_false(in.owner_alive);
	assert_true(in.owner_drained);
	assert_int_equal(in.error[0], '\0');
	ckr_claim cl;
	assert_int_equal(claim_retry(f->s, "again", &cl), 0);
	assert_int_equal(cl.incarnation, 2);
	assert_int_equal(cl.next_seq, 4);
	ckr_run *r;
	assert_int_equal(ckr_run_reopen(f->c, &cl, &r), 0);
	ckr_ticket t = tu_push_msgs(r, 3, 2);
	assert_int_equal(committed(f, &t), 0);
	tu_assert_history(f->db, "again", 5);
	ckr_run_close(r);
}

static void test_retry_keeps_the_old_writer_fenced(void **state)
{
	fixture *f = *state;
	ckr_run *r = make_run(f, "fenced", 1, CKR_OUTCOME_LEAVE_RUNNING);
	assert_int_equal(ckr_store_fail(f->s, "fenced", 6, "hung", NULL), 0);
	assert_int_equal(ckr_store_retry(f->s, "fenced", 6, NULL), 0);
	ckr_ticket t = tu_push_msgs(r, 1, 1);
	assert_int_equal(committed(f, &t), CKR_EREJECTED); /* writer 0: foreign */
	assert_int_equal(tu_store_counter(f->db, "foreign"), 1);
	ckr_claim cl;
	assert_int_equal(claim_retry(f->s, "fenced", &cl), 0);
	assert_int_equal(cl.next_seq, 2); /* the rejected message is not there */
	ckr_run_close(r);
}

static void test_retry_after_recovery_exhausted(void **state)
{
	fixture *f = *state;
	die_holding(f, "worn", 2);
	ckr_store *one;
	ckr_store_opts so = { .max_attempts = 1 };
	assert_int_equal(ckr_store_open(f->db, &so, &one), 0);
	ckr_claim cl;
	/* A child claims (attempt 1) and dies without a lane: E2 ends it. */
	pid_t pid = fork();
	if (pid == 0) {
		ckr_store *s;
		ckr_claim c2;
		if (ckr_store_open(f->db, &so, &s) || claim_retry(s, "worn", &c2))
			_exit(1);
		raise(SIGKILL);
	}
	assert_true(WIFSIGNALED(tu_wait_child(pid, TU_TIMEOUT_MS)));
	assert_int_equal(claim_retry(one, "worn", &cl), CKR_EEXHAUSTED);
	ckr_run_info in = tu_run_info(f->db, "worn");
	assert_int_equal(in.state, CKR_RUN_FAILED);
	assert_string_equal(in.error, "recovery exhausted");
	assert_int_equal(ckr_store_retry(f->s, "worn", 4, &in), 0);
	assert_int_equal(in.attempts, 0);
	assert_int_equal(claim_retry(one, "worn", &cl), 0);
	assert_int_equal(cl.next_seq, 3);
	ckr_resume *rs = tu_resume(f->db, "worn");
	assert_int_equal(rs->n_history, 2);
	ckr_resume_free(rs);
	ckr_store_close(one);
}

static void test_retry_refusals(void **state)
{
	fixture *f = *state;
	ckr_run *r = make_run(f, "busy", 1, CKR_OUTCOME_LEAVE_RUNNING);
	make_run(f, "done", 1, CKR_OUTCOME_COMPLETE);
	assert_int_equal(ckr_store_retry(f->s, "busy", 4, NULL), -EALREADY);
	assert_int_equal(ckr_store_retry(f->s, "done", 4, NULL), CKR_ETERMINAL);
	assert_int_equal(ckr_store_retry(f->s, "nosuch", 6, NULL), -ENOENT);
	ckr_run_close(r);
}

/* ---- export / import ------------------------------------------------------ */

static char *other_store(void)
{
	char *dir = tu_tmpdir("adm2");
	ckr_store *s;
	ckr_store_rw_opts o = { 0 };
	assert_int_equal(ckr_store_open_rw(dir, &o, &s), 0);
	ckr_store_close(s);
	return dir;
}

static void test_export_import_moves_a_run(void **state)
{
	fixture *f = *state;
	die_holding(f, "mover", 3);
	ckr_export *e;
	assert_int_equal(ckr_store_export(f->s, "mover", 5, &e), 0);
	assert_int_equal(e->n_events, 4);
	char *dir = other_store();
	ckr_store *b;
	assert_int_equal(ckr_store_open(dir, NULL, &b), 0);
	ckr_run_info in;
	assert_int_equal(ckr_store_import(b, e, &in), 0);
	assert_int_equal(in.state, CKR_RUN_RUNNING);
	assert_int_equal(in.owner_pid, 0); /* no phantom live owner */
	assert_false(in.owner_alive);
	assert_true(in.owner_drained);
	assert_int_equal(in.events, 4);
	assert_int_equal(in.prefix_seq, 3);
	assert_int_equal(ckr_store_import(b, e, NULL), -EEXIST);
	ckr_claim cl;
	assert_int_equal(ckr_store_claim(b, "mover", 5, &cl), 0);
	assert_int_equal(cl.next_seq, 4);
	ckr_resume *rs = tu_resume(dir, "mover");
	assert_int_equal(rs->n_history, 3);
	assert_memory_equal(rs->history[2].data, "message 2", 9);
	ckr_resume_free(rs);
	ckr_export_free(e);
	ckr_store_close(b);
	tu_rmrf(dir);
}

static void test_import_refuses_a_row_of_another_run(void **state)
{
	fixture *f = *state;
	make_run(f, "src", 2, CKR_OUTCOME_FAIL);
	ckr_export *e;
	assert_int_equal(ckr_store_export(f->s, "src", 3, &e), 0);
	memcpy(e->id, "dst", 3); /* the rows still name "src" */
	char *dir = other_store();
	ckr_store *b;
	assert_int_equal(ckr_store_open(dir, NULL, &b), 0);
	assert_int_equal(ckr_store_import(b, e, NULL), CKR_ECORRUPT);
	ckr_run_info in;
	assert_int_equal(ckr_store_get(b, "dst", 3, &in), -ENOENT);
	memcpy(e->id, "src", 3);
	e->events[1].seq = 7; /* a key that is not the row's own seq */
	assert_int_equal(ckr_store_import(b, e, NULL), CKR_ECORRUPT);
	e->events[1].seq = 1;
	assert_int_equal(ckr_store_import(b, e, &in), 0);
	assert_int_equal(in.state, CKR_RUN_FAILED);
	ckr_export_free(e);
	ckr_store_close(b);
	tu_rmrf(dir);
}

/* ---- prune ---------------------------------------------------------------- */

typedef struct seen {
	int calls, done;
	uint64_t rows;
} seen;

static void on_pruned(void *ctx, const ckr_pruned *p)
{
	seen *s = ctx;
	s->calls++;
	s->done += p->done;
	s->rows += p->events + p->set_aside;
}

static void test_prune_is_bounded_and_resumable(void **state)
{
	fixture *f = *state;
	make_run(f, "big", 50, CKR_OUTCOME_FAIL);
	ckr_run *keep = make_run(f, "alive", 1, CKR_OUTCOME_LEAVE_RUNNING);
	ckr_prune_opts o = { .failed_age_s = 0, .completed_age_s = CKR_KEEP_FOREVER,
			     .max_rows = 7 };
	ckr_prune_pos pos = { 0 };
	seen sn = { 0 };
	assert_int_equal(ckr_store_prune_step(f->s, &o, &pos, on_pruned, &sn), 0);
	assert_int_equal(sn.rows, 7);
	assert_int_equal(sn.done, 0);
	ckr_run_info in = tu_run_info(f->db, "big"); /* counts match the rows */
	assert_int_equal(in.events, 51 - 7);
	/* Another prune, asking for nothing, still finishes the marked run. */
	ckr_prune_opts none = { .failed_age_s = CKR_KEEP_FOREVER,
				.completed_age_s = CKR_KEEP_FOREVER, .max_rows = 7 };
	ckr_prune_pos p2 = { 0 };
	int steps = 0, rc;
	while ((rc = ckr_store_prune_step(f->s, &none, &p2, on_pruned, &sn)) == 0 ||
	       (rc == 1 && sn.done == 0))
		assert_true(++steps < 100);
	assert_int_equal(rc, 1);
	assert_int_equal(sn.rows, 51);
	assert_int_equal(sn.done, 1);
	assert_true(steps >= 6); /* 44 rows, 7 a transaction */
	assert_int_equal(ckr_store_get(f->s, "big", 3, &in), -ENOENT);
	assert_int_equal(ckr_store_get(f->s, "alive", 5, &in), 0); /* untouched */
	ckr_run_close(keep);
}

static void test_prune_dry_run_changes_nothing(void **state)
{
	fixture *f = *state;
	make_run(f, "old", 3, CKR_OUTCOME_FAIL);
	ckr_prune_opts o = { .failed_age_s = 0, .completed_age_s = 0, .dry_run = true };
	ckr_prune_pos pos = { 0 };
	seen sn = { 0 };
	assert_int_equal(ckr_store_prune_step(f->s, &o, &pos, on_pruned, &sn), 1);
	assert_int_equal(sn.calls, 1);
	assert_int_equal(sn.rows, 4);
	assert_int_equal(tu_run_info(f->db, "old").events, 4);
	o.dry_run = false;
	o.failed_age_s = 3600; /* not old enough */
	assert_int_equal(ckr_store_prune_step(f->s, &o, &pos, on_pruned, &sn), 1);
	assert_int_equal(sn.calls, 1);
}

static void test_flusher_retention_removes_failed_runs(void **state)
{
	fixture *f = *state;
	make_run(f, "gone-soon", 2, CKR_OUTCOME_FAIL);
	ckr_client_detach(f->c);
	f->c = NULL;
	assert_int_equal(tu_flusher_stop(f->flusher), 0);
	const char *extra[] = { "--keep-failed", "0s", NULL };
	f->flusher = tu_flusher_start(f->seg, f->db, NULL, extra);
	assert_true(f->flusher > 0);
	assert_int_equal(ckr_client_attach(f->seg, NULL, &f->c), 0);
	ckr_run_info in;
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (ckr_store_get(f->s, "gone-soon", 9, &in) == 0 && tu_now_ms() < deadline) {
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL); /* the retention step runs every second */
	}
	assert_int_equal(ckr_store_get(f->s, "gone-soon", 9, &in), -ENOENT);
}

/* ---- queries, census ---------------------------------------------------- */

static void test_query_pages_through_a_state(void **state)
{
	fixture *f = *state;
	char id[16];
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof id, "q%d", i);
		make_run(f, id, 1, CKR_OUTCOME_FAIL);
	}
	ckr_run *r = make_run(f, "q-run", 1, CKR_OUTCOME_LEAVE_RUNNING);
	ckr_list_query q = { .which = CKR_LIST_ALL, .state = CKR_RUN_FAILED, .limit = 2 };
	ckr_run_info *v;
	size_t n, total = 0;
	bool more = true;
	uint8_t after[CKR_RUN_ID_MAX];
	for (int page = 0; more; page++) {
		assert_true(page < 5);
		assert_int_equal(ckr_store_query(f->s, &q, &v, &n, &more), 0);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(v[i].state, CKR_RUN_FAILED);
		total += n;
		if (n) {
			memcpy(after, v[n - 1].id, v[n - 1].id_len);
			q.after = after;
			q.after_len = v[n - 1].id_len;
		}
		free(v);
	}
	assert_int_equal(total, 5);
	ckr_list_query old = { .which = CKR_LIST_ALL, .by_age = true,
			       .older_than_s = 3600 };
	assert_int_equal(ckr_store_query(f->s, &old, &v, &n, &more), 0);
	assert_int_equal(n, 0);
	free(v);
	ckr_run_close(r);
}

static void test_census_counts_states(void **state)
{
	fixture *f = *state;
	make_run(f, "c-failed", 1, CKR_OUTCOME_FAIL);
	make_run(f, "c-done", 1, CKR_OUTCOME_COMPLETE);
	ckr_run *r = make_run(f, "c-running", 1, CKR_OUTCOME_LEAVE_RUNNING);
	die_holding(f, "c-dead", 1);
	ckr_store_census c;
	assert_int_equal(ckr_store_census_get(f->s, &c), 0);
	assert_int_equal(c.runs[CKR_RUN_FAILED], 1);
	assert_int_equal(c.runs[CKR_RUN_COMPLETED], 1);
	assert_int_equal(c.runs[CKR_RUN_RUNNING], 2);
	assert_int_equal(c.interrupted, 1);
	assert_true(c.oldest_interrupted_ns > 0);
	assert_true(c.map_used > 0 && c.map_used <= c.map_size);
	ckr_run_close(r);
}

/* ---- the engine's metrics (in this process) --------------------------- */

static void test_metrics_count_what_the_engine_did(void **state)
{
	(void)state;
	const char *seg = tu_segname("met");
	char *db = tu_tmpdir("met");
	ckr_flusher_opts o = { .segment = seg, .db_dir = db, .create = true,
			       .seg = { .size = tu_seg_size(2, 65536), .lanes = 2,
					.group = (gid_t)-1 } };
	ckr_flusher *fl;
	assert_int_equal(ckr_flusher_open(&o, &fl), 0);
	ckr_client *c;
	assert_int_equal(ckr_client_attach(seg, NULL, &c), 0);
	ckr_ticket t;
	ckr_run *r = tu_begin(c, "m", CKR_KIND_SINGLE_LOOP, &t);
	tu_push_msgs(r, 0, 9);
	size_t n, total = 0;
	for (int i = 0; i < 100 && total < 10; i++) {
		assert_int_equal(ckr_flusher_drain_once(fl, &n), 0);
		total += n;
	}
	assert_int_equal(total, 10);
	ckr_flusher_metrics m;
	ckr_flusher_metrics_get(fl, &m);
	assert_int_equal(m.stored, 10);
	assert_true(m.batches >= 1);
	assert_int_equal(m.commit_seconds.total, m.batches);
	assert_int_equal((uint64_t)m.batch_events.sum, 10);
	uint64_t in_buckets = 0;
	for (uint32_t i = 0; i < m.batch_events.n_buckets; i++)
		in_buckets += m.batch_events.count[i];
	assert_int_equal(in_buckets, m.batch_events.total);
	assert_string_equal(ckr_flusher_reject_name(0), "dup_begin");
	assert_null(ckr_flusher_reject_name(CKR_FLUSHER_REJECT_REASONS));
	ckr_run_close(r);
	ckr_client_detach(c);
	ckr_flusher_close(fl);
	ckr_segment_unlink(seg);
	tu_rmrf(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_fail_fences_the_live_writer),
		T(test_fail_refusals),
		T(test_retry_makes_a_failed_run_claimable),
		T(test_retry_keeps_the_old_writer_fenced),
		T(test_retry_after_recovery_exhausted),
		T(test_retry_refusals),
		T(test_export_import_moves_a_run),
		T(test_import_refuses_a_row_of_another_run),
		T(test_prune_is_bounded_and_resumable),
		T(test_prune_dry_run_changes_nothing),
		T(test_flusher_retention_removes_failed_runs),
		T(test_query_pages_through_a_state),
		T(test_census_counts_states),
#undef T
		cmocka_unit_test(test_metrics_count_what_the_engine_did),
	};
	return cmocka_run_group_tests_name("admin", tests, NULL, NULL);
}
