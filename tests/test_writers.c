/*
 * test_writers.c — one writer per run, as a new user would meet it: the ten
 * sequences of issue 11 that broke the first round's exactly-once promise,
 * each against the real flusher with producers in this process and in
 * children. (The API-sequence test varies such sequences at random; these
 * are the named regressions.)
 *
 *   1 a duplicate begin (another process, or this one after close)
 *   2 a clean detach and re-attach never makes a live process claimable
 *   3 two segments on one store: the second flusher is refused
 *   4 a gap is closed at claim: the recovered run's new work extends it
 *   5 (SYNCED after a restart: tests/faults/run.sh, restart_sync_eio)
 *   6 finish is exempt from the byte budget; the budget carries to reopen
 *   7 ckr_wait: -EPIPE without a flusher, also when it dies meanwhile
 *   8 one LMDB environment per process
 *   9 ckr_store_grow leaves its map lock
 *  10 only the claimer may reopen; a forged reopen is rejected
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckring_store.h"
#include "client/client.h"
#include "event/event.h"
#include "persist/store.h"
#include "ring/lane.h"
#include "shm/proc.h"
#include "shm/segment.h"
#include "tests/helpers/testutil.h"
#include "tests/helpers/tu_flusher.h"

typedef struct fixture {
	const char *seg;
	char *db;
	pid_t flusher;
	ckr_client *c;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->seg = tu_segname("wr");
	f->db = tu_tmpdir("wr");
	f->flusher = tu_flusher_start(f->seg, f->db, NULL, NULL);
	if (f->flusher < 0 || ckr_client_attach(f->seg, NULL, &f->c))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	ckr_client_detach(f->c);
	if (f->flusher > 0)
		tu_flusher_stop(f->flusher);
	ckr_segment_unlink(f->seg);
	tu_rmrf(f->db);
	free(f);
	return 0;
}

static int wait_committed(ckr_client *c, const ckr_ticket *t)
{
	return ckr_wait(c, t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS);
}

/* ---- a child process driven step by step ---------------------------- */

/* The child runs fn(arg, step) for step 0, 1, ... each time the parent says
 * go, answering with fn's result; it is killed by the parent at the end. */
typedef int (*child_step)(const fixture *f, int step);

typedef struct child {
	pid_t pid;
	int to, from;
} child;

static child child_start(const fixture *f, child_step fn)
{
	int a[2], b[2];
	child c;
	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	c.pid = fork();
	assert_true(c.pid >= 0);
	if (c.pid == 0) {
		close(a[1]);
		close(b[0]);
		char go;
		for (int step = 0; read(a[0], &go, 1) == 1; step++) {
			int rc = fn(f, step);
			if (write(b[1], &rc, sizeof rc) != sizeof rc)
				_exit(1);
		}
		_exit(0);
	}
	close(a[0]);
	close(b[1]);
	c.to = a[1];
	c.from = b[0];
	return c;
}

/* Run the child's next step; its result. */
static int child_do(child *c)
{
	int rc = -1;
	assert_int_equal(write(c->to, "g", 1), 1);
	assert_int_equal(tu_read_full(c->from, &rc, sizeof rc, TU_TIMEOUT_MS), 0);
	return rc;
}

static void child_kill(child *c)
{
	kill(c->pid, SIGKILL);
	tu_wait_child(c->pid, TU_TIMEOUT_MS);
	close(c->to);
	close(c->from);
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

static ckr_store *open_rw(const fixture *f)
{
	ckr_store *s;
	assert_int_equal(ckr_store_open(f->db, NULL, &s), 0);
	return s;
}

/* ---- 1: duplicate begins ---------------------------------------------- */

/* The duplicate writer: begins "job-1" too, pushes, completes; every one of
 * its events must come back rejected. */
static int dup_writer(const fixture *f, int step)
{
	static ckr_client *c;
	static ckr_run *r;
	static ckr_ticket tb, tm, tc;
	ckr_run_spec s = { .id = "job-1", .id_len = 5, .kind = CKR_KIND_SINGLE_LOOP };
	switch (step) {
	case 0:
		if (ckr_client_attach(f->seg, NULL, &c) || ckr_run_begin(c, &s, &r, &tb) ||
		    ckr_run_message(r, "intruder", 8, &tm) ||
		    ckr_run_finish(r, CKR_OUTCOME_COMPLETE, NULL, &tc))
			return -1000;
		return 0;
	case 1:
		return wait_committed(c, &tb);
	case 2:
		return wait_committed(c, &tm);
	default:
		return wait_committed(c, &tc);
	}
}

static void test_1_duplicate_begin_from_another_process_is_rejected(void **state)
{
	fixture *f = *state;
	ckr_ticket t;
	ckr_run *a = tu_begin(f->c, "job-1", CKR_KIND_SINGLE_LOOP, &t);
	assert_int_equal(wait_committed(f->c, &t), 0);
	tu_push_msgs(a, 0, 3);
	child b = child_start(f, dup_writer);
	assert_int_equal(child_do(&b), 0);
	assert_int_equal(child_do(&b), CKR_EREJECTED); /* its begin */
	assert_int_equal(child_do(&b), CKR_EREJECTED); /* its message */
	assert_int_equal(child_do(&b), CKR_EREJECTED); /* its complete */
	child_kill(&b);
	/* A's run is untouched and A goes on writing into it. */
	t = tu_push_msgs(a, 3, 2);
	assert_int_equal(wait_committed(f->c, &t), 0);
	ckr_run_info in = tu_run_info(f->db, "job-1");
	assert_int_equal(in.state, CKR_RUN_RUNNING);
	assert_int_equal(in.owner_pid, getpid());
	tu_assert_history(f->db, "job-1", 5);
	assert_int_equal(tu_store_counter(f->db, "dup_begin"), 1);
	assert_int_equal(tu_store_counter(f->db, "foreign"), 2);
	ckr_run_close(a);
}

static void test_1_begin_again_after_close_is_rejected(void **state)
{
	fixture *f = *state;
	ckr_ticket t;
	ckr_run *a = tu_begin(f->c, "job-2", CKR_KIND_SINGLE_LOOP, NULL);
	t = tu_push_msgs(a, 0, 2);
	assert_int_equal(wait_committed(f->c, &t), 0);
	ckr_run_close(a);
	/* The same process begins the id again: a new writer, refused. */
	ckr_run *again = tu_begin(f->c, "job-2", CKR_KIND_SINGLE_LOOP, &t);
	assert_int_equal(wait_committed(f->c, &t), CKR_EREJECTED);
	t = tu_push_msgs(again, 100, 1);
	assert_int_equal(ckr_run_finish(again, CKR_OUTCOME_FAIL, "x", &t), 0);
	assert_int_equal(wait_committed(f->c, &t), CKR_EREJECTED);
	tu_assert_history(f->db, "job-2", 2);
	assert_int_equal(tu_run_info(f->db, "job-2").state, CKR_RUN_RUNNING);
	ckr_run_close(again);
}

static void test_1_begin_check_refuses_synchronously(void **state)
{
	fixture *f = *state;
	ckr_ticket t;
	ckr_run *a = tu_begin(f->c, "job-3", CKR_KIND_SINGLE_LOOP, &t);
	assert_int_equal(wait_committed(f->c, &t), 0);
	ckr_store *s = open_rw(f);
	ckr_client *c2;
	ckr_client_opts o = { .begin_check = ckr_store_begin_check, .begin_check_ctx = s };
	assert_int_equal(ckr_client_attach(f->seg, &o, &c2), 0);
	ckr_run_spec spec = { .id = "job-3", .id_len = 5, .kind = CKR_KIND_SINGLE_LOOP };
	ckr_run *r;
	assert_int_equal(ckr_run_begin(c2, &spec, &r, NULL), -EEXIST);
	spec.id = "job-4";
	assert_int_equal(ckr_run_begin(c2, &spec, &r, NULL), 0);
	ckr_run_close(r);
	ckr_client_detach(c2);
	ckr_store_close(s);
	ckr_run_close(a);
}

/* ---- 2: a clean detach never makes a live process claimable ---------- */

/* P: attach + detach, attach again, begin job-2, push m1 (waited), then m2,
 * m3 while the flusher is stopped. */
static int detaching_writer(const fixture *f, int step)
{
	static ckr_client *c;
	static ckr_run *r;
	ckr_ticket t;
	switch (step) {
	case 0:
		if (ckr_client_attach(f->seg, NULL, &c))
			return -1000;
		uint32_t first = ckr_client_lane(c);
		ckr_client_detach(c);
		/* The flusher frees the detached lane before we attach again:
		 * the sequence that made the first round mark us drained. */
		ckr_segment view;
		ckr_lane l;
		if (ckr_segment_attach(f->seg, true, &view))
			return -1002;
		ckr_lane_view(&view, first, &l);
		int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
		while (ckr_lane_owner(&l) != 0 && tu_now_ms() < deadline)
			sched_yield();
		ckr_segment_detach(&view);
		if (ckr_client_attach(f->seg, NULL, &c))
			return -1001;
		r = tu_begin(c, "job-2", CKR_KIND_SINGLE_LOOP, NULL);
		t = tu_push_msgs(r, 0, 1);
		return wait_committed(c, &t);
	default:
		tu_push_msgs(r, 1, 2);
		return 0;
	}
}

static void test_2_detach_and_reattach_keeps_runs_unclaimable(void **state)
{
	fixture *f = *state;
	child p = child_start(f, detaching_writer);
	assert_int_equal(child_do(&p), 0);
	assert_int_equal(kill(f->flusher, SIGSTOP), 0);
	assert_int_equal(child_do(&p), 0); /* m2, m3 in the ring only */
	ckr_store *s = open_rw(f);
	ckr_claim cl;
	/* Alive: not interrupted, although it detached once. */
	assert_int_equal(ckr_store_claim(s, "job-2", 5, &cl), CKR_ENOTINTERRUPTED);
	child_kill(&p);
	/* Dead, but m2 and m3 are still in its second lane. */
	assert_int_equal(ckr_store_claim(s, "job-2", 5, &cl), CKR_ENOTDRAINED);
	assert_int_equal(kill(f->flusher, SIGCONT), 0);
	assert_int_equal(claim_retry(s, "job-2", &cl), 0);
	assert_int_equal(cl.next_seq, 4);
	assert_int_equal(cl.gap_seq, 0);
	ckr_store_close(s);
	tu_assert_history(f->db, "job-2", 3);
}

/* ---- 3: one store, one segment ----------------------------------------- */

static void test_3_second_segment_on_one_store_is_refused(void **state)
{
	fixture *f = *state;
	const char *other = tu_segname("wr2");
	int err[2];
	assert_int_equal(pipe(err), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(err[1], 2);
		close(err[0]);
		execl(tu_hooks_bin("ckring-flusher"), "ckring-flusher", "--segment", other,
		      "--db", f->db, "--create", (char *)NULL);
		_exit(127);
	}
	close(err[1]);
	char line[512] = { 0 };
	ssize_t n = 0, k;
	while (n < (ssize_t)sizeof line - 1 &&
	       (k = read(err[0], line + n, sizeof line - 1 - (size_t)n)) > 0)
		n += k;
	close(err[0]);
	int st = tu_wait_child(pid, TU_TIMEOUT_MS);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	assert_non_null(strstr(line, "serves segment"));
	assert_int_equal(strchr(line, '\n') - line, (long)strlen(line) - 1); /* one line */
	/* It left no segment behind, and the store still serves ours. */
	assert_int_equal(ckr_segment_unlink(other), -ENOENT);
	ckr_run *r = tu_begin(f->c, "still-ours", CKR_KIND_SINGLE_LOOP, NULL);
	ckr_ticket t = tu_push_msgs(r, 0, 1);
	assert_int_equal(wait_committed(f->c, &t), 0);
	ckr_run_close(r);
}

/* ---- 4: gaps are closed at claim --------------------------------------- */

/* Push an event of r with seq `seq`, bypassing the run's counter: what a
 * thread that took seq `seq - 1` and died would leave behind. */
static void push_at_seq(ckr_client *c, ckr_ticket like, const char *id, uint64_t seq,
			const char *text)
{
	ckr_lane l;
	ckr_lane_view(ckr_client_segment(c), ckr_client_lane(c), &l);
	ckr_event ev = { .type = CKR_EV_MESSAGE, .incarnation = 1, .seq = seq,
			 .writer = like.writer, .slot = like.slot,
			 .id = (const uint8_t *)id, .id_len = strlen(id) };
	ev.u.message.data = (const uint8_t *)text;
	ev.u.message.len = strlen(text);
	ckr_reservation res;
	size_t size = ckr_event_size(&ev);
	assert_int_equal(ckr_lane_reserve(&l, (uint32_t)size, &res), 0);
	ckr_event_encode(&ev, res.payload, size);
	ckr_lane_commit(&res);
}

/* m1, m2, then m4 (seq 3 lost with its thread), then the process dies. */
static int gappy_writer(const fixture *f, int step)
{
	ckr_client *c;
	(void)step;
	if (ckr_client_attach(f->seg, NULL, &c))
		return -1000;
	ckr_run *r = tu_begin(c, "gappy", CKR_KIND_SINGLE_LOOP, NULL);
	ckr_ticket t = tu_push_msgs(r, 0, 2);
	push_at_seq(c, t, "gappy", 4, "message 3");
	return wait_committed(c, &t);
}

static void test_4_gap_is_closed_at_claim(void **state)
{
	fixture *f = *state;
	child p = child_start(f, gappy_writer);
	assert_int_equal(child_do(&p), 0);
	child_kill(&p);
	ckr_store *s = open_rw(f);
	ckr_claim cl;
	assert_int_equal(claim_retry(s, "gappy", &cl), 0);
	assert_int_equal(cl.gap_seq, 3);
	assert_int_equal(cl.set_aside, 1);
	assert_int_equal(cl.next_seq, 3); /* right after the gap-free prefix */
	ckr_run *r;
	assert_int_equal(ckr_run_reopen(f->c, &cl, &r), 0);
	ckr_ticket t = tu_push_msgs(r, 2, 3); /* n3..n5 */
	assert_int_equal(wait_committed(f->c, &t), 0);
	ckr_store_close(s);
	/* The next recovery sees everything the recovered run stored. */
	ckr_resume *rs = tu_resume(f->db, "gappy");
	assert_int_equal(rs->n_gaps, 0);
	assert_int_equal(rs->n_history, 5);
	assert_int_equal(rs->history[4].seq, 5);
	assert_int_equal(rs->history[4].incarnation, 2);
	assert_int_equal(rs->n_set_aside, 1); /* kept, never merged */
	assert_int_equal(rs->set_aside[0].seq, 4);
	assert_int_equal(rs->set_aside[0].incarnation, 1);
	assert_memory_equal(rs->set_aside[0].data, "message 3", 9);
	ckr_resume_free(rs);
	ckr_run_info in = tu_run_info(f->db, "gappy");
	assert_int_equal(in.prefix_seq, 5);
	assert_int_equal(in.set_aside, 1);
	ckr_run_close(r);
}

/* ---- 6: the budget ------------------------------------------------------ */

static void test_6_finish_is_exempt_from_the_budget(void **state)
{
	fixture *f = *state;
	ckr_client *c;
	ckr_client_opts o = { .max_run_bytes = 600 };
	assert_int_equal(ckr_client_attach(f->seg, &o, &c), 0);
	const char *ids[2] = { "full-c", "full-f" };
	for (int k = 0; k < 2; k++) {
		ckr_run *r = tu_begin(c, ids[k], CKR_KIND_SINGLE_LOOP, NULL);
		int rc, n = 0;
		while ((rc = ckr_run_message(r, "0123456789abcdef", 16, NULL)) == 0)
			n++;
		assert_int_equal(rc, -EFBIG);
		assert_true(n > 0);
		ckr_ticket t;
		assert_int_equal(ckr_run_finish(r, k ? CKR_OUTCOME_FAIL : CKR_OUTCOME_COMPLETE,
						"over budget, but it finished", &t), 0);
		assert_int_equal(wait_committed(c, &t), 0);
		ckr_run_close(r);
	}
	assert_int_equal(tu_run_info(f->db, "full-c").state, CKR_RUN_COMPLETED);
	assert_int_equal(tu_run_info(f->db, "full-f").state, CKR_RUN_FAILED);
	ckr_client_detach(c);
}

static int budget_writer(const fixture *f, int step)
{
	ckr_client *c;
	(void)step;
	if (ckr_client_attach(f->seg, NULL, &c))
		return -1000;
	ckr_run *r = tu_begin(c, "budget", CKR_KIND_SINGLE_LOOP, NULL);
	ckr_ticket t = tu_push_msgs(r, 0, 10);
	return wait_committed(c, &t);
}

static void test_6_budget_carries_across_reopen(void **state)
{
	fixture *f = *state;
	child p = child_start(f, budget_writer);
	assert_int_equal(child_do(&p), 0);
	child_kill(&p);
	uint64_t stored = tu_run_info(f->db, "budget").bytes;
	ckr_store *s = open_rw(f);
	ckr_claim cl;
	assert_int_equal(claim_retry(s, "budget", &cl), 0);
	ckr_store_close(s);
	assert_int_equal(cl.bytes, stored);
	ckr_client *c;
	ckr_client_opts o = { .max_run_bytes = stored + 60 };
	assert_int_equal(ckr_client_attach(f->seg, &o, &c), 0);
	ckr_run *r;
	assert_int_equal(ckr_run_reopen(c, &cl, &r), 0);
	/* One more message fits in the 60 bytes left; the next does not. */
	assert_int_equal(ckr_run_message(r, "x", 1, NULL), 0);
	assert_int_equal(ckr_run_message(r, "y", 1, NULL), -EFBIG);
	ckr_run_close(r);
	ckr_client_detach(c);
}

/* ---- 7: waits without a flusher ------------------------------------------ */

static void test_7_wait_forever_without_flusher_is_epipe(void **state)
{
	fixture *f = *state;
	ckr_run *r = tu_begin(f->c, "nofl", CKR_KIND_SINGLE_LOOP, NULL);
	assert_int_equal(tu_flusher_stop(f->flusher), 0);
	f->flusher = 0;
	ckr_ticket t = tu_push_msgs(r, 0, 1);
	int64_t t0 = tu_now_ms();
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_COMMITTED, -1), -EPIPE);
	assert_true(tu_now_ms() - t0 < 5000); /* bounded (100 ms slices) */
	ckr_run_close(r);
}

typedef struct waiter {
	ckr_client *c;
	ckr_ticket t;
	int rc;
} waiter;

static void *wait_forever(void *arg)
{
	waiter *w = arg;
	w->rc = ckr_wait(w->c, &w->t, CKR_LEVEL_SYNCED, -1);
	return NULL;
}

static void test_7_flusher_dying_during_a_wait_is_epipe(void **state)
{
	fixture *f = *state;
	ckr_run *r = tu_begin(f->c, "dies", CKR_KIND_SINGLE_LOOP, NULL);
	assert_int_equal(kill(f->flusher, SIGSTOP), 0);
	waiter w = { .c = f->c, .t = tu_push_msgs(r, 0, 1), .rc = 1 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, wait_forever, &w), 0);
	/* Wait until the waiter is registered, then kill the flusher. */
	const ckr_seg_flusher *fl = ckr_seg_fl(ckr_client_segment(f->c));
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (atomic_load(&fl->waiters) == 0 && tu_now_ms() < deadline)
		sched_yield();
	tu_flusher_kill(f->flusher);
	f->flusher = 0;
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(w.rc, -EPIPE);
	ckr_run_close(r);
}

/* ---- 8: one LMDB environment per process -------------------------------- */

/* Is a POSIX lock of this process on lock.mdb listed in /proc/locks? */
static bool holds_lock_mdb(const char *db)
{
	char path[512], line[256];
	struct stat st;
	snprintf(path, sizeof path, "%s/lock.mdb", db);
	assert_int_equal(stat(path, &st), 0);
	FILE *p = fopen("/proc/locks", "re");
	assert_non_null(p);
	bool found = false;
	while (!found && fgets(line, sizeof line, p)) {
		int pid;
		unsigned maj, min;
		unsigned long ino;
		if (strstr(line, "POSIX") &&
		    sscanf(strstr(line, "POSIX") + 5, " %*s %*s %d %x:%x:%lu", &pid, &maj,
			   &min, &ino) == 4)
			found = pid == getpid() && ino == (unsigned long)st.st_ino;
	}
	fclose(p);
	return found;
}

static void test_8_two_opens_share_one_environment(void **state)
{
	fixture *f = *state;
	ckr_ticket t;
	ckr_run *r = tu_begin(f->c, "env", CKR_KIND_SINGLE_LOOP, &t);
	assert_int_equal(wait_committed(f->c, &t), 0);
	ckr_store *a = open_rw(f), *b;
	ckr_store_opts ro = { .read_only = true };
	assert_int_equal(ckr_store_open(f->db, &ro, &b), 0);
	ckr_run_info in;
	assert_true(holds_lock_mdb(f->db));
	ckr_store_close(a); /* the other handle keeps the environment open */
	assert_true(holds_lock_mdb(f->db));
	assert_int_equal(ckr_store_get(b, "env", 3, &in), 0);
	ckr_claim cl;
	assert_int_equal(ckr_store_claim(b, "env", 3, &cl), -EROFS);
	ckr_store_close(b);
	ckr_run_close(r);
}

/* ---- 9: the map lock after a growth --------------------------------------- */

static void *list_in_thread(void *arg)
{
	ckr_run_info *v;
	size_t n;
	intptr_t rc = ckr_store_list(arg, CKR_LIST_ALL, &v, &n);
	if (rc == 0)
		free(v);
	return (void *)rc;
}

static void test_9_grow_releases_the_map_lock(void **state)
{
	fixture *f = *state;
	ckr_store *s = open_rw(f);
	assert_int_equal(ckr_store_grow(s), 0);
	pthread_t th;
	void *res = (void *)1;
	assert_int_equal(pthread_create(&th, NULL, list_in_thread, s), 0);
	/* A held write lock would block the other thread for ever: bound it. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += TU_TIMEOUT_MS / 1000;
	assert_int_equal(pthread_timedjoin_np(th, &res, &until), 0);
	assert_true(res == NULL);
	ckr_store_close(s);
}

/* ---- 10: only the claimer reopens ----------------------------------------- */

static int victim_writer(const fixture *f, int step)
{
	ckr_client *c;
	(void)step;
	if (ckr_client_attach(f->seg, NULL, &c))
		return -1000;
	ckr_run *r = tu_begin(c, "victim", CKR_KIND_SINGLE_LOOP, NULL);
	ckr_ticket t = tu_push_msgs(r, 0, 3);
	return wait_committed(c, &t);
}

/* The claim of the parent, received through a pipe. */
static ckr_claim passed_claim;

static int other_reopener(const fixture *f, int step)
{
	ckr_client *c;
	ckr_run *r;
	if (ckr_client_attach(f->seg, NULL, &c))
		return -1000;
	if (step == 0)
		return ckr_run_reopen(c, &passed_claim, &r);
	/* A forged claim naming this process: the flusher rejects it. */
	ckr_identity me;
	ckr_claim forged = passed_claim;
	if (ckr_proc_self_identity(&me))
		return -1001;
	forged.owner_token = me.token;
	forged.owner_nonce = me.nonce;
	int rc = ckr_run_reopen(c, &forged, &r);
	if (rc)
		return rc;
	ckr_ticket t = tu_push_msgs(r, 3, 1);
	return wait_committed(c, &t);
}

static void test_10_only_the_claimer_may_reopen(void **state)
{
	fixture *f = *state;
	child p = child_start(f, victim_writer);
	assert_int_equal(child_do(&p), 0);
	child_kill(&p);
	ckr_store *s = open_rw(f);
	assert_int_equal(claim_retry(s, "victim", &passed_claim), 0);
	ckr_store_close(s);
	child other = child_start(f, other_reopener); /* inherits passed_claim */
	assert_int_equal(child_do(&other), CKR_ENOTCLAIMER);
	assert_int_equal(child_do(&other), CKR_EREJECTED);
	child_kill(&other);
	/* The claimer itself goes on. */
	ckr_run *r;
	assert_int_equal(ckr_run_reopen(f->c, &passed_claim, &r), 0);
	ckr_ticket t = tu_push_msgs(r, 3, 2);
	assert_int_equal(wait_committed(f->c, &t), 0);
	tu_assert_history(f->db, "victim", 5);
	ckr_run_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_1_duplicate_begin_from_another_process_is_rejected),
		T(test_1_begin_again_after_close_is_rejected),
		T(test_1_begin_check_refuses_synchronously),
		T(test_2_detach_and_reattach_keeps_runs_unclaimable),
		T(test_3_second_segment_on_one_store_is_refused),
		T(test_4_gap_is_closed_at_claim),
		T(test_6_finish_is_exempt_from_the_budget),
		T(test_6_budget_carries_across_reopen),
		T(test_7_wait_forever_without_flusher_is_epipe),
		T(test_7_flusher_dying_during_a_wait_is_epipe),
		T(test_8_two_opens_share_one_environment),
		T(test_9_grow_releases_the_map_lock),
		T(test_10_only_the_claimer_may_reopen),
#undef T
	};
	return cmocka_run_group_tests_name("writers", tests, NULL, NULL);
}
