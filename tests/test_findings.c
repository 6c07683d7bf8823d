/*
 * test_findings.c — findings of the API-sequence test (tests/apiseq), each
 * as the smallest sequence that shows it. A fixed one runs always; one
 * reported but not fixed shows the behaviour the contract asks for, fails
 * today, and runs only with CKR_TEST_KNOWN_BUGS=1 (skipped otherwise, as
 * tu_known_bugs() says).
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckring.h"
#include "ckring_store.h"
#include "ring/lane.h"
#include "shm/segment.h"
#include "tests/helpers/testutil.h"
#include "tests/helpers/tu_host.h"

typedef struct fixture {
	const char *seg;
	char *db;
	pid_t flusher;
	pid_t kid;
} fixture;

static const char *self_exe;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	const char *const args[] = { "--create", "--size", "1048576", "--lanes", "4",
				     "--idle-max-us", "200", NULL };
	f->seg = tu_segname("find");
	f->db = tu_tmpdir("find");
	f->flusher = tu_flusher_spawn(f->seg, f->db, NULL, args);
	if (f->flusher < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	if (f->kid > 0) {
		kill(f->kid, SIGKILL);
		tu_wait_child(f->kid, TU_TIMEOUT_MS);
	}
	kill(f->flusher, SIGTERM);
	tu_wait_child(f->flusher, TU_TIMEOUT_MS);
	ckr_segment_unlink(f->seg);
	tu_rmrf(f->db);
	free(f);
	return 0;
}

/* In a child: attach, begin id, wait until it is committed unless the
 * flusher is stopped (!commit); _exit(1) on any failure. */
static ckr_client *child_begin(fixture *f, const char *id, bool commit, ckr_run **r)
{
	ckr_client *c;
	ckr_ticket t;
	ckr_run_spec s = { .id = id, .id_len = strlen(id), .kind = CKR_KIND_SINGLE_LOOP };
	if (ckr_client_attach(f->seg, NULL, &c) || ckr_run_begin(c, &s, r, &t) ||
	    (commit && ckr_wait(c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS)))
		_exit(1);
	return c;
}

/* A child begins id, waits until it is committed, and exits (no detach). */
static void begin_and_die(fixture *f, const char *id)
{
	pid_t p = fork();
	if (p == 0) {
		ckr_run *r;
		(void)child_begin(f, id, true, &r);
		_exit(0);
	}
	assert_int_equal(tu_exit_code(p), 0);
}

/* Claim id, retrying while it is not yet stored or its dead owner not yet
 * ended, within ms. */
static int claim_within(fixture *f, ckr_store *s, const char *id, ckr_claim *cl, int ms)
{
	int64_t deadline = tu_now_ms() + ms;
	int rc;
	(void)f;
	while (((rc = ckr_store_claim(s, id, strlen(id), cl)) == CKR_ENOTDRAINED ||
		rc == CKR_ENOTINTERRUPTED || rc == -ENOENT) && tu_now_ms() < deadline) {
		struct timespec ts = { 0, 2000000 }; /* retry pace */
		nanosleep(&ts, NULL);
	}
	return rc;
}

static ckr_ticket push(ckr_run *r, const char *msg)
{
	ckr_ticket t;
	int rc;
	while ((rc = ckr_run_message(r, msg, strlen(msg), &t)) == -EAGAIN)
		sched_yield();
	assert_int_equal(rc, 0);
	return t;
}

/*
 * The claimer reopens its claim, pushes two messages and closes the
 * handle. A second ckr_run_reopen of the same claim would continue at the
 * claim's (now stale) next_seq under the same writer: its first pushes
 * would repeat stored sequence numbers (rejected as dup_seq) and, the
 * writer's slot keeping its first rejection, a wait on its first new,
 * stored event said CKR_EREJECTED. A claim reopens once: the second is
 * refused (-EEXIST) and the run is left as the first handle left it.
 * (Fixed; before the fix the wait on C below returned CKR_EREJECTED.)
 */
static void test_second_reopen_of_a_claim_is_refused(void **state)
{
	fixture *f = *state;
	begin_and_die(f, "z");
	ckr_store *s;
	ckr_claim cl;
	assert_int_equal(ckr_store_open(f->db, NULL, &s), 0);
	assert_int_equal(claim_within(f, s, "z", &cl, TU_TIMEOUT_MS), 0);
	ckr_client *c;
	ckr_run *r;
	assert_int_equal(ckr_client_attach(f->seg, NULL, &c), 0);
	assert_int_equal(ckr_run_reopen(c, &cl, &r), 0);
	ckr_run *again;
	assert_int_equal(ckr_run_reopen(c, &cl, &again), -EEXIST); /* still open */
	ckr_ticket a = push(r, "a"), b = push(r, "b");
	assert_int_equal(ckr_wait(c, &a, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS), 0);
	assert_int_equal(ckr_wait(c, &b, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS), 0);
	ckr_run_close(r);
	assert_int_equal(ckr_run_reopen(c, &cl, &r), -EEXIST); /* closed: once */
	ckr_client *c2;
	assert_int_equal(ckr_client_attach(f->seg, NULL, &c2), 0);
	assert_int_equal(ckr_run_reopen(c2, &cl, &r), -EEXIST); /* any client */
	ckr_client_detach(c2);
	ckr_resume *rs;
	assert_int_equal(ckr_store_resume(s, "z", 1, &rs), 0);
	assert_int_equal(rs->n_history, 2);
	assert_memory_equal(rs->history[0].data, "a", 1);
	assert_memory_equal(rs->history[1].data, "b", 1);
	ckr_resume_free(rs);
	ckr_client_detach(c);
	ckr_store_close(s);
}

/*
 * A reopen that fails (here: the run's id is already open in this client)
 * does not use the claim up: once the id is free, the claim reopens.
 */
static void test_failed_reopen_keeps_the_claim(void **state)
{
	fixture *f = *state;
	begin_and_die(f, "y");
	ckr_store *s;
	ckr_claim cl;
	assert_int_equal(ckr_store_open(f->db, NULL, &s), 0);
	assert_int_equal(claim_within(f, s, "y", &cl, TU_TIMEOUT_MS), 0);
	ckr_client *c;
	ckr_run *other, *r;
	assert_int_equal(ckr_client_attach(f->seg, NULL, &c), 0);
	ckr_run_spec sp = { .id = "y", .id_len = 1, .kind = CKR_KIND_SINGLE_LOOP };
	assert_int_equal(ckr_run_begin(c, &sp, &other, NULL), 0); /* rejected later */
	assert_int_equal(ckr_run_reopen(c, &cl, &r), -EEXIST);
	ckr_run_close(other);
	assert_int_equal(ckr_run_reopen(c, &cl, &r), 0);
	ckr_ticket t = push(r, "m");
	assert_int_equal(ckr_wait(c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS), 0);
	ckr_run_close(r);
	ckr_client_detach(c);
	ckr_store_close(s);
}

/* A child begins id, closes it, detaches its client, tells its lane, and
 * then lives (live) or exits. Returns its pid; *lane its lane. */
static pid_t begin_detach(fixture *f, const char *id, bool live, uint32_t *lane)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t kid = fork();
	if (kid == 0) {
		ckr_run *r;
		ckr_client *c = child_begin(f, id, true, &r);
		uint32_t l = ckr_client_lane(c);
		ckr_run_close(r);
		ckr_client_detach(c);
		if (write(p[1], &l, sizeof l) != sizeof l)
			_exit(1);
		if (!live)
			_exit(0);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(tu_read_full(p[0], lane, sizeof *lane, TU_TIMEOUT_MS), 0);
	close(p[0]);
	return kid;
}

/* Until the flusher freed the lane (E1 ran on the detached tenure). */
static void lane_freed(fixture *f, uint32_t lane)
{
	ckr_segment view;
	ckr_lane l;
	assert_int_equal(ckr_segment_attach(f->seg, true, &view), 0);
	ckr_lane_view(&view, lane, &l);
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (ckr_lane_owner(&l) != 0 && tu_now_ms() < deadline)
		sched_yield();
	assert_int_equal(ckr_lane_owner(&l), 0);
	ckr_segment_detach(&view);
}

/*
 * The other side of the fix below: a cleanly detached image that lives
 * (no exec) keeps its presence lock, so its runs stay 'owner alive' and
 * unclaimable. Synchronised on E2 itself: a second image detaches after
 * the first one's lane was freed and exits; once its run is claimable, an
 * E2 pass has judged both.
 */
static void test_detached_live_image_stays_unclaimable(void **state)
{
	fixture *f = *state;
	uint32_t lane;
	f->kid = begin_detach(f, "live", true, &lane);
	lane_freed(f, lane);
	pid_t gone = begin_detach(f, "gone", false, &lane);
	assert_int_equal(tu_exit_code(gone), 0);
	ckr_store *s;
	ckr_claim cl;
	assert_int_equal(ckr_store_open(f->db, NULL, &s), 0);
	assert_int_equal(claim_within(f, s, "gone", &cl, 5000), 0);
	assert_int_equal(ckr_store_claim(s, "live", 4, &cl), CKR_ENOTINTERRUPTED);
	ckr_run_info in;
	assert_int_equal(ckr_store_get(s, "live", 4, &in), 0);
	assert_true(in.owner_alive);
	assert_false(in.owner_drained);
	ckr_store_close(s);
}

/*
 * A process begins a run, detaches its only client cleanly and execs. Its
 * old image can write nothing any more (a new image has a new identity),
 * but no lane lock dropped (it held none) and /proc calls its token alive
 * (the same pid and start time), so neither E1 nor E2 ended it: the run
 * stayed 'owner alive' and unclaimable for as long as the new image lived.
 * (ckring.h: "a process that execs ... the runs they wrote become
 * interrupted".) Fixed: an image holds a presence lock from its first
 * attach until exec or exit, and E2 ends a cleanly detached identity once
 * that lock is gone.
 */
/* The child: begin "d", close, detach its only client, exec. With the
 * flusher stopped, the begin is only in the ring (the flusher frees the
 * lane after the exec). */
static void exec_after_detach(fixture *f, bool flusher_stopped)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	if (flusher_stopped)
		assert_int_equal(kill(f->flusher, SIGSTOP), 0);
	f->kid = fork();
	if (f->kid == 0) {
		ckr_run *r;
		ckr_client *c = child_begin(f, "d", !flusher_stopped, &r);
		ckr_run_close(r);
		ckr_client_detach(c);
		dup2(p[1], 3);
		execl(self_exe, self_exe, "--after-exec", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char ok;
	assert_int_equal(tu_read_full(p[0], &ok, 1, TU_TIMEOUT_MS), 0); /* exec'd */
	close(p[0]);
	if (flusher_stopped)
		assert_int_equal(kill(f->flusher, SIGCONT), 0);
	ckr_store *s;
	ckr_claim cl;
	assert_int_equal(ckr_store_open(f->db, NULL, &s), 0);
	/* Well past the flusher's idle liveness probe and E2's second. */
	assert_int_equal(claim_within(f, s, "d", &cl, 5000), 0);
	assert_int_equal(kill(f->kid, 0), 0); /* the new image still runs */
	ckr_store_close(s);
}

static void test_exec_after_detaching_every_client_makes_runs_claimable(void **state)
{
	exec_after_detach(*state, false);
}

/* The same when the exec comes before the flusher frees the lane (at first
 * the flusher kept an identity for E2 only if its lock was still held then:
 * this order, common under load, was never ended; CI found it). */
static void test_exec_before_the_lane_is_freed_makes_runs_claimable(void **state)
{
	exec_after_detach(*state, true);
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--after-exec") == 0) {
		/* The exec'd image: say so, then live until killed. */
		if (write(3, "x", 1) != 1)
			return 1;
		for (;;)
			pause();
	}
	self_exe = "/proc/self/exe";
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_second_reopen_of_a_claim_is_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failed_reopen_keeps_the_claim, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_detached_live_image_stays_unclaimable,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_exec_after_detaching_every_client_makes_runs_claimable, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_exec_before_the_lane_is_freed_makes_runs_claimable, setup, teardown),
	};
	return cmocka_run_group_tests_name("findings", tests, NULL, NULL);
}
