/*
 * test_liveness.c — issue 12.3: the kernel-backed liveness of lane owners
 * (ring/PROTOCOL.md, "Lane tenure"), against the real flusher, with owners
 * that exec, fork, stop, or live in another pid namespace:
 *   - a producer that execs without detaching (with a push open at exec
 *     time): its lane is drained past the open claim and freed, its run
 *     becomes interrupted and claimable, while the new program runs on
 *     under the same pid and start time (the first round took that for the
 *     same, live owner: the lane stayed owned, the run unclaimable);
 *   - a forked child that outlives its parent does not keep the parent's
 *     lane alive (it closed its copies of the lock descriptors at fork);
 *   - a SIGSTOPped owner stays alive: its open claim is never skipped, its
 *     run is not claimable, and after SIGCONT everything lands;
 *   - owners in another pid namespace (unshare(CLONE_NEWPID), with their own
 *     /proc): a live one is alive to the flusher (its open claim waits, its
 *     run is not claimable — the first round read its pid in the flusher's
 *     /proc, found another process, and skipped its claim), a dead one is
 *     dead (drained, freed, claimable). Skipped, with the reason, where the
 *     machine does not allow the namespace.
 * A "negative" (nothing was skipped) is shown by waiting for events, not for
 * time: a client of this process commits events through the same flusher
 * until its passes spanned several of the flusher's liveness re-checks of
 * the stuck lane (every 50 ms), so each check saw the owner.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckring_store.h"
#include "client/client.h"
#include "ring/lane.h"
#include "shm/proc.h"
#include "shm/segment.h"
#include "tests/helpers/testutil.h"
#include "tests/helpers/tu_host.h"

#define SKIP_CODE 77

typedef struct fixture {
	const char *seg;
	char *db;
	pid_t flusher;
	pid_t kids[4];
	int n_kids;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	const char *const args[] = { "--create", "--size", "1048576", "--lanes", "4",
				     "--idle-max-us", "200", NULL };
	f->seg = tu_segname("live");
	f->db = tu_tmpdir("live");
	f->flusher = tu_flusher_spawn(f->seg, f->db, NULL, args);
	if (f->flusher < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	for (int i = 0; i < f->n_kids; i++) {
		kill(f->kids[i], SIGKILL);
		tu_wait_child(f->kids[i], TU_TIMEOUT_MS);
	}
	kill(f->flusher, SIGTERM);
	tu_wait_child(f->flusher, TU_TIMEOUT_MS);
	ckr_segment_unlink(f->seg);
	tu_rmrf(f->db);
	free(f);
	return 0;
}

/* ---- children and their reports -------------------------------------- */

typedef struct report {
	int what;       /* R_* */
	uint32_t lane;  /* the child's lane */
	int64_t value;  /* a pid, or an error */
} report;

enum { R_READY = 1, R_IN_CLAIM, R_DONE, R_FAILED, R_PID };

static int report_fd = -1; /* in a child: where it reports */
static int hold_fd = -1;   /* in a child: a pipe it may block on */
static uint32_t my_lane;

static void say(int what, int64_t value)
{
	report r = { what, my_lane, value };
	if (write(report_fd, &r, sizeof r) != (ssize_t)sizeof r)
		_exit(100);
}

static void die(int64_t err)
{
	say(R_FAILED, err);
	_exit(101);
}

/* A child: fork, wire the pipes, run body (which does not return). */
typedef struct kid {
	pid_t pid;
	int from;  /* reports */
	int hold;  /* write end of the child's hold pipe: close it to release */
} kid;

static kid kid_start(fixture *f, void (*body)(const fixture *f))
{
	int rep[2], hold[2];
	kid k;
	/* close-on-exec: a process the parent spawns later (a flusher) must
	 * not keep the child's hold pipe open (the child's ends become its
	 * stdin/stdout through dup2 where it execs). */
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
	fflush(NULL);
	k.pid = fork();
	assert_true(k.pid >= 0);
	if (k.pid == 0) {
		/* Default actions here, not cmocka's handlers (which would go on
		 * running the tests in this child). */
		signal(SIGBUS, SIG_DFL);
		signal(SIGSEGV, SIG_DFL);
		close(rep[0]);
		close(hold[1]);
		report_fd = rep[1];
		hold_fd = hold[0];
		body(f);
		_exit(0);
	}
	close(rep[1]);
	close(hold[0]);
	k.from = rep[0];
	k.hold = hold[1];
	f->kids[f->n_kids++] = k.pid;
	return k;
}

static report kid_expect(const kid *k, int what)
{
	report r = { 0 };
	assert_int_equal(tu_read_full(k->from, &r, sizeof r, TU_TIMEOUT_MS), 0);
	if (r.what == R_FAILED)
		fprintf(stderr, "child %d failed: %lld (%s)\n", (int)k->pid,
			(long long)r.value, ckr_strerror((int)r.value));
	assert_int_equal(r.what, what);
	return r;
}

/* Let the child go on past its hold (it reads one byte, or end of file). */
static void kid_release(kid *k)
{
	if (k->hold >= 0)
		close(k->hold);
	k->hold = -1;
}

/* In a child: attach, begin id, push messages 0..n-1, wait until they are
 * committed; reports R_READY with the lane. */
static ckr_run *child_begin(const fixture *f, const char *id, int n, ckr_client **out)
{
	ckr_client *c;
	ckr_run *r;
	ckr_ticket t;
	char msg[32];
	int rc = ckr_client_attach(f->seg, NULL, &c);
	if (rc)
		die(rc);
	my_lane = ckr_client_lane(c);
	ckr_run_spec s = { .id = id, .id_len = strlen(id), .kind = CKR_KIND_SINGLE_LOOP };
	if ((rc = ckr_run_begin(c, &s, &r, &t)) != 0)
		die(rc);
	for (int i = 0; i < n; i++) {
		int len = snprintf(msg, sizeof msg, "message %d", i);
		if ((rc = ckr_run_message(r, msg, (size_t)len, &t)) != 0)
			die(rc);
	}
	if ((rc = ckr_wait(c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS)) != 0)
		die(rc);
	say(R_READY, 0);
	*out = c;
	return r;
}

/* In a child: push messages from..to-1 and wait until they are committed. */
static void child_push(ckr_client *c, ckr_run *r, int from, int to)
{
	ckr_ticket t;
	char msg[32];
	int rc;
	for (int i = from; i < to; i++) {
		int len = snprintf(msg, sizeof msg, "message %d", i);
		if ((rc = ckr_run_message(r, msg, (size_t)len, &t)) != 0)
			die(rc);
	}
	if ((rc = ckr_wait(c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS)) != 0)
		die(rc);
}

static void hold(void)
{
	char b;
	while (read(hold_fd, &b, 1) < 0 && errno == EINTR)
		;
}

/* ---- what the parent checks ------------------------------------------- */

static ckr_lane lane_of(const fixture *f, ckr_segment *view, uint32_t index)
{
	ckr_lane l;
	assert_int_equal(ckr_segment_attach(f->seg, true, view), 0);
	ckr_lane_view(view, index, &l);
	return l;
}

static uint64_t reclaimed(const ckr_segment *view)
{
	return atomic_load(&ckr_seg_ctr(view)->reclaimed);
}

/* Wait (bounded) until lane index is drained to its tail and freed. */
static void expect_lane_freed(const fixture *f, uint32_t index)
{
	ckr_segment view;
	ckr_lane l = lane_of(f, &view, index);
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (ckr_lane_owner(&l) != 0 && tu_now_ms() < deadline)
		sched_yield();
	assert_int_equal(ckr_lane_owner(&l), 0);
	assert_int_equal(ckr_lane_head(&l), ckr_lane_tail(&l));
	ckr_segment_detach(&view);
}

/* Claim id, retrying (bounded) while the flusher has not ended its owner. */
static int claim(const fixture *f, const char *id, ckr_claim *cl)
{
	ckr_store *s;
	int rc;
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	assert_int_equal(ckr_store_open(f->db, NULL, &s), 0);
	while ((rc = ckr_store_claim(s, id, strlen(id), cl)) == CKR_ENOTDRAINED &&
	       tu_now_ms() < deadline)
		sched_yield();
	ckr_store_close(s);
	return rc;
}

static bool listed_interrupted(const fixture *f, const char *id)
{
	ckr_store *s;
	ckr_store_opts o = { .read_only = true };
	ckr_run_info *v;
	size_t n;
	bool found = false;
	assert_int_equal(ckr_store_open(f->db, &o, &s), 0);
	assert_int_equal(ckr_store_list(s, CKR_LIST_INTERRUPTED, &v, &n), 0);
	for (size_t i = 0; i < n; i++)
		found = found || (v[i].id_len == strlen(id) && memcmp(v[i].id, id, v[i].id_len) == 0);
	free(v);
	ckr_store_close(s);
	return found;
}

/* The run's transcript is "message 0".."message n-1", gap-free. */
static void expect_history(const fixture *f, const char *id, int n)
{
	ckr_store *s;
	ckr_store_opts o = { .read_only = true };
	ckr_resume *rs;
	char want[32];
	assert_int_equal(ckr_store_open(f->db, &o, &s), 0);
	assert_int_equal(ckr_store_resume(s, id, strlen(id), &rs), 0);
	assert_int_equal(rs->n_gaps, 0);
	assert_int_equal(rs->n_history, (size_t)n);
	for (int i = 0; i < n; i++) {
		int len = snprintf(want, sizeof want, "message %d", i);
		assert_int_equal(rs->history[i].size, (size_t)len);
		assert_memory_equal(rs->history[i].data, want, (size_t)len);
	}
	ckr_resume_free(rs);
	ckr_store_close(s);
}

/*
 * The owner of lane `index` is alive to the flusher: commit events of a
 * client of this process until the flusher's passes spanned at least 6 of
 * its 50 ms re-checks of a stuck lane (ring/PROTOCOL.md G); meanwhile and
 * after, that lane keeps its owner word, nothing was skipped (reclaimed
 * stays), its head stays at the open claim, and run id is neither listed
 * as interrupted nor claimable.
 */
static void expect_owner_alive(const fixture *f, uint32_t index, const char *id)
{
	ckr_segment view;
	ckr_lane l = lane_of(f, &view, index);
	uint64_t owner = ckr_lane_owner(&l), head = ckr_lane_head(&l);
	uint64_t skipped = reclaimed(&view);
	ckr_client *q;
	assert_int_equal(ckr_client_attach(f->seg, NULL, &q), 0);
	ckr_run_spec s = { .id = "witness", .id_len = 7, .kind = CKR_KIND_SINGLE_LOOP };
	ckr_run *r;
	ckr_ticket t;
	int rc;
	while ((rc = ckr_run_begin(q, &s, &r, &t)) == -EAGAIN)
		sched_yield();
	assert_int_equal(rc, 0);
	int64_t start = tu_now_ms();
	int commits = 0;
	while (commits < 20 || tu_now_ms() - start < 300) {
		while ((rc = ckr_run_message(r, "w", 1, &t)) == -EAGAIN)
			sched_yield();
		assert_int_equal(rc, 0);
		assert_int_equal(ckr_wait(q, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS), 0);
		commits++;
		assert_int_equal(ckr_lane_owner(&l), owner);
	}
	assert_int_equal(ckr_lane_head(&l), head);
	assert_true(ckr_lane_tail(&l) > head); /* the open claim */
	assert_int_equal(reclaimed(&view), skipped);
	assert_false(listed_interrupted(f, id));
	ckr_claim cl;
	rc = claim(f, id, &cl);
	assert_true(rc == CKR_ENOTINTERRUPTED || rc == CKR_ECLAIMED);
	ckr_run_close(r);
	ckr_client_detach(q);
	ckr_segment_detach(&view);
}

/* ---- exec without detaching ------------------------------------------- */

static void exec_in_claim(ckr_lane *l, uint64_t pos)
{
	(void)l;
	(void)pos;
	/* The push is open (claimed, not sealed): exec a program that says
	 * so on the report pipe and lives until the parent releases it. */
	if (dup2(report_fd, STDOUT_FILENO) < 0 || dup2(hold_fd, STDIN_FILENO) < 0)
		_exit(102);
	execl("/bin/sh", "sh", "-c", "echo execd; read x; exit 0", (char *)NULL);
	_exit(103);
}

static void exec_body(const fixture *f)
{
	ckr_client *c;
	ckr_run *r = child_begin(f, "exec-1", 5, &c);
	ckr_lane_test_after_claim = exec_in_claim;
	ckr_run_message(r, "message 5", 9, NULL); /* never returns */
	die(-1);
}

static void test_exec_without_detach_frees_lane_and_runs(void **state)
{
	fixture *f = *state;
	kid k = kid_start(f, exec_body);
	uint32_t lane = kid_expect(&k, R_READY).lane;
	uint64_t start_before, start_after;
	assert_int_equal(ckr_proc_start_ticks(k.pid, &start_before), 0);
	char line[6];
	assert_int_equal(tu_read_full(k.from, line, sizeof line, TU_TIMEOUT_MS), 0);
	assert_memory_equal(line, "execd\n", 6);

	expect_lane_freed(f, lane);        /* drained past the open claim */
	assert_true(listed_interrupted(f, "exec-1"));
	ckr_claim cl;
	assert_int_equal(claim(f, "exec-1", &cl), 0);
	assert_int_equal(cl.next_seq, 6);  /* seq 6 was the open push */
	expect_history(f, "exec-1", 5);
	/* All along the new program ran under the same pid and start time. */
	assert_int_equal(kill(k.pid, 0), 0);
	assert_int_equal(ckr_proc_start_ticks(k.pid, &start_after), 0);
	assert_int_equal(start_after, start_before);
	kid_release(&k);
	assert_int_equal(tu_exit_code(k.pid), 0);
	f->n_kids = 0;
}

/* ---- exec after a detach, two lanes freed in one batch ------------------ */

/* In a child: run f4-1 begun on a first client's lane, left running and
 * that client detached (its lane DETACHED); a second client attached (a
 * second lane) and then exec without a detach: that lane's lock drops with
 * the old image. The parent stopped the flusher first, so its next pass
 * finds both lanes gone and frees them in one batch. */
static void exec_after_detach_body(const fixture *f)
{
	ckr_client *c1, *c2;
	ckr_run *r = child_begin(f, "f4-1", 3, &c1);
	hold(); /* the parent stops the flusher */
	ckr_run_close(r);
	ckr_client_detach(c1);
	int rc = ckr_client_attach(f->seg, NULL, &c2);
	if (rc)
		die(rc);
	if (dup2(report_fd, STDOUT_FILENO) < 0 || dup2(hold_fd, STDIN_FILENO) < 0)
		_exit(102);
	execl("/bin/sh", "sh", "-c", "echo execd; read x; exit 0", (char *)NULL);
	_exit(103);
}

/* Claim id, retrying (bounded) while its owner is not ended yet. */
static int claim_when_ended(const fixture *f, const char *id, ckr_claim *cl)
{
	ckr_store *s;
	int rc;
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	assert_int_equal(ckr_store_open(f->db, NULL, &s), 0);
	while (((rc = ckr_store_claim(s, id, strlen(id), cl)) == CKR_ENOTDRAINED ||
		rc == CKR_ENOTINTERRUPTED) && tu_now_ms() < deadline)
		sched_yield();
	ckr_store_close(s);
	return rc;
}

/* An identity whose image is gone (exec) must be ended once no lane holds
 * it, although /proc calls its token alive, and although the lane whose
 * lock the exec dropped is freed in the same batch as its other, detached
 * lane (ring/model/claim.pml, finding F4). */
static void test_exec_after_detach_makes_runs_claimable(void **state)
{
	fixture *f = *state;
	kid k = kid_start(f, exec_after_detach_body);
	kid_expect(&k, R_READY);
	kill(f->flusher, SIGTERM);
	assert_int_equal(tu_wait_child(f->flusher, TU_TIMEOUT_MS), 0);
	if (write(k.hold, "g", 1) != 1)
		fail_msg("cannot release the child");
	char line[6];
	assert_int_equal(tu_read_full(k.from, line, sizeof line, TU_TIMEOUT_MS), 0);
	assert_memory_equal(line, "execd\n", 6);
	const char *const args[] = { "--idle-max-us", "200", NULL };
	f->flusher = tu_flusher_spawn(f->seg, f->db, NULL, args);
	assert_true(f->flusher > 0);
	ckr_claim cl;
	assert_int_equal(claim_when_ended(f, "f4-1", &cl), 0);
	expect_history(f, "f4-1", 3);
	assert_int_equal(kill(k.pid, 0), 0); /* the new image still runs */
	kid_release(&k);
	assert_int_equal(tu_exit_code(k.pid), 0);
	f->n_kids = 0;
}

/* ---- fork: a child outliving its parent ------------------------------- */

static void fork_body(const fixture *f)
{
	ckr_client *c;
	(void)child_begin(f, "fork-1", 3, &c);
	pid_t g = fork();
	if (g < 0)
		die(-errno);
	if (g == 0) { /* the grandchild lives on, holding nothing */
		hold();
		_exit(0);
	}
	say(R_PID, g);
	_exit(0); /* no detach: the parent dies with its lane attached */
}

static void test_forked_child_does_not_keep_parents_lane(void **state)
{
	fixture *f = *state;
	kid k = kid_start(f, fork_body);
	uint32_t lane = kid_expect(&k, R_READY).lane;
	pid_t g = (pid_t)kid_expect(&k, R_PID).value;
	assert_int_equal(tu_exit_code(k.pid), 0);
	f->kids[0] = g; /* teardown kills the grandchild if need be */

	expect_lane_freed(f, lane);
	ckr_claim cl;
	assert_int_equal(claim(f, "fork-1", &cl), 0);
	expect_history(f, "fork-1", 3);
	assert_int_equal(kill(g, 0), 0); /* it lived on all along */
	kid_release(&k);
}

/* ---- SIGSTOP inside an open claim -------------------------------------- */

static void stop_in_claim(ckr_lane *l, uint64_t pos)
{
	(void)l;
	(void)pos;
	ckr_lane_test_after_claim = NULL;
	raise(SIGSTOP);
}

static void stop_body(const fixture *f)
{
	ckr_client *c;
	ckr_run *r = child_begin(f, "stop-1", 3, &c);
	ckr_lane_test_after_claim = stop_in_claim;
	child_push(c, r, 3, 8); /* stops inside the claim of message 3 */
	say(R_DONE, 0);
	hold();
	ckr_run_close(r);
	ckr_client_detach(c);
	_exit(0);
}

static void test_stopped_owner_stays_alive(void **state)
{
	fixture *f = *state;
	kid k = kid_start(f, stop_body);
	uint32_t lane = kid_expect(&k, R_READY).lane;
	assert_true(tu_wait_stopped(k.pid, TU_TIMEOUT_MS));
	expect_owner_alive(f, lane, "stop-1");
	assert_int_equal(kill(k.pid, SIGCONT), 0);
	kid_expect(&k, R_DONE);
	expect_history(f, "stop-1", 8);
	kid_release(&k);
	assert_int_equal(tu_exit_code(k.pid), 0);
	f->n_kids = 0;
}

/* ---- another pid namespace -------------------------------------------- */

/* Make this process the first of a new pid namespace with its own /proc
 * (as `unshare --pid --fork --mount-proc`): returns in that process (pid 1
 * there) after reporting its pid outside as R_PID; the process that made
 * the namespace waits for it and exits with its status. Exits SKIP_CODE
 * when the machine does not allow it. */
static void enter_pidns(void)
{
	if (unshare(CLONE_NEWPID) != 0)
		_exit(SKIP_CODE);
	pid_t p = fork();
	if (p < 0)
		_exit(SKIP_CODE);
	if (p > 0) {
		int st;
		say(R_PID, p);
		while (waitpid(p, &st, 0) < 0 && errno == EINTR)
			;
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
		_exit(SKIP_CODE);
	if (getpid() != 1)
		_exit(SKIP_CODE);
}

static void wait_in_claim(ckr_lane *l, uint64_t pos)
{
	(void)l;
	(void)pos;
	ckr_lane_test_after_claim = NULL;
	say(R_IN_CLAIM, 0);
	hold();
}

static void ns_live_body(const fixture *f)
{
	enter_pidns();
	ckr_client *c;
	ckr_run *r = child_begin(f, "ns-live", 3, &c);
	ckr_lane_test_after_claim = wait_in_claim;
	child_push(c, r, 3, 6);
	say(R_DONE, 0);
	ckr_run_close(r);
	ckr_client_detach(c);
	_exit(0);
}

static void ns_dead_body(const fixture *f)
{
	enter_pidns();
	ckr_client *c;
	ckr_run *r = child_begin(f, "ns-dead", 3, &c);
	ckr_lane_test_after_claim = wait_in_claim;
	child_push(c, r, 3, 6); /* killed inside the claim */
	die(-1);
}

/* The first report of a namespace child: R_PID, or its exit for a skip. */
static pid_t ns_started(kid *k)
{
	report r = { 0 };
	if (tu_read_full(k->from, &r, sizeof r, TU_TIMEOUT_MS) != 0) {
		int code = tu_exit_code(k->pid);
		if (code == SKIP_CODE) {
			fprintf(stderr, "skipped: this machine does not allow a new pid "
				"namespace with its own /proc (unshare(CLONE_NEWPID), "
				"CLONE_NEWNS and mount proc need root or CAP_SYS_ADMIN)\n");
			skip();
		}
		fail_msg("namespace child exited %d before reporting", code);
	}
	assert_int_equal(r.what, R_PID);
	return (pid_t)r.value;
}

static void test_pidns_live_owner_is_alive(void **state)
{
	fixture *f = *state;
	kid k = kid_start(f, ns_live_body);
	pid_t inner = ns_started(&k);
	f->kids[f->n_kids++] = inner;
	uint32_t lane = kid_expect(&k, R_READY).lane;
	kid_expect(&k, R_IN_CLAIM);
	expect_owner_alive(f, lane, "ns-live");
	kid_release(&k);
	kid_expect(&k, R_DONE);
	expect_history(f, "ns-live", 6);
	assert_int_equal(tu_exit_code(k.pid), 0);
	f->n_kids = 0;
}

static void test_pidns_dead_owner_is_dead(void **state)
{
	fixture *f = *state;
	kid k = kid_start(f, ns_dead_body);
	pid_t inner = ns_started(&k);
	f->kids[f->n_kids++] = inner;
	uint32_t lane = kid_expect(&k, R_READY).lane;
	kid_expect(&k, R_IN_CLAIM);
	assert_int_equal(kill(inner, SIGKILL), 0);
	assert_int_equal(tu_exit_code(k.pid), 128 + SIGKILL);
	f->n_kids = 0;
	expect_lane_freed(f, lane);
	ckr_claim cl;
	assert_int_equal(claim(f, "ns-dead", &cl), 0);
	expect_history(f, "ns-dead", 3);
	kid_release(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_exec_without_detach_frees_lane_and_runs,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_after_detach_makes_runs_claimable,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_forked_child_does_not_keep_parents_lane,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stopped_owner_stays_alive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidns_live_owner_is_alive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidns_dead_owner_is_dead, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
