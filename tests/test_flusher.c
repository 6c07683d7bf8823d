/*
 * test_flusher.c — the flusher as a separate process (the real
 * ckring-flusher tool) with producers in this process and in children:
 * exactly-once across flusher crashes at chosen points, run outcomes, dead
 * producers' lanes, recovery claims and fencing, a second flusher, map
 * growth, a full disk, and the drain on SIGTERM.
 */
#include <errno.h>
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
#include <sched.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckring_store.h"
#include "client/client.h"
#include "event/event.h"
#include "persist/flusher.h"
#include "persist/store.h"
#include "ring/lane.h"
#include "shm/proc.h"
#include "ring/wake.h"
#include "shm/segment.h"
#include "tests/helpers/testutil.h"
#include "tests/helpers/tu_flusher.h"

typedef struct fixture {
	const char *seg;
	char *db;
	pid_t flusher;
	ckr_client *c;
} fixture;

/* Start the flusher with one optional extra argument. */
static pid_t start_flusher(fixture *f, const char *crash, const char *extra)
{
	const char *more[] = { extra, NULL };
	return tu_flusher_start(f->seg, f->db, crash, more);
}

static int stop_flusher(pid_t pid)
{
	return tu_flusher_stop(pid);
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->seg = tu_segname("fl");
	f->db = tu_tmpdir("fl");
	f->flusher = start_flusher(f, NULL, NULL);
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
		stop_flusher(f->flusher);
	ckr_segment_unlink(f->seg);
	tu_rmrf(f->db);
	free(f);
	return 0;
}

static ckr_run *begin(ckr_client *c, const char *id, ckr_kind kind)
{
	return tu_begin(c, id, kind, NULL);
}

static ckr_ticket push_msgs(ckr_run *r, int from, int n)
{
	return tu_push_msgs(r, from, n);
}

static ckr_store *open_store(fixture *f, bool ro)
{
	ckr_store *s;
	ckr_store_opts o = { .read_only = ro, .max_attempts = 3 };
	assert_int_equal(ckr_store_open(f->db, &o, &s), 0);
	return s;
}

static void assert_history(fixture *f, const char *id, int n)
{
	tu_assert_history(f->db, id, n);
}

static void test_pushed_events_persisted_in_order(void **state)
{
	fixture *f = *state;
	ckr_run *a = begin(f->c, "run-a", CKR_KIND_SINGLE_LOOP);
	ckr_run *b = begin(f->c, "run-b", CKR_KIND_SINGLE_LOOP);
	push_msgs(a, 0, 500);
	ckr_ticket t = push_msgs(b, 0, 700);
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_SYNCED, TU_TIMEOUT_MS), 0);
	assert_history(f, "run-a", 500);
	assert_history(f, "run-b", 700);
	ckr_run_close(a);
	ckr_run_close(b);
}

/* Wait until the flusher has made `passes` more loops (heartbeats). */
static void let_flusher_pass(fixture *f, int passes)
{
	const ckr_seg_flusher *fl = ckr_seg_fl(ckr_client_segment(f->c));
	for (int i = 0; i < passes; i++) {
		uint64_t hb = atomic_load(&fl->heartbeat_ns);
		int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
		while (atomic_load(&fl->heartbeat_ns) == hb && tu_now_ms() < deadline)
			sched_yield();
	}
}

/* A record claimed while the flusher passes by, sealed later: the tail does
 * not move when it is sealed, and the flusher must still take it. */
static void test_record_sealed_after_flusher_passed_is_taken(void **state)
{
	fixture *f = *state;
	ckr_run *r = begin(f->c, "late", CKR_KIND_SINGLE_LOOP);
	ckr_ticket t0;
	ckr_ticket first = push_msgs(r, 0, 1); /* the run's writer and slot */
	ckr_lane l;
	ckr_lane_view(ckr_client_segment(f->c), ckr_client_lane(f->c), &l);
	ckr_event ev = { .type = CKR_EV_MESSAGE, .incarnation = 1, .seq = 2,
			 .writer = first.writer, .slot = first.slot,
			 .id = (const uint8_t *)"late", .id_len = 4 };
	ev.u.message.data = (const uint8_t *)"message 1";
	ev.u.message.len = 9;
	size_t size = ckr_event_size(&ev);
	ckr_reservation res;
	assert_int_equal(ckr_lane_reserve(&l, (uint32_t)size, &res), 0);
	let_flusher_pass(f, 5); /* it sees the open claim and goes idle */
	ckr_event_encode(&ev, res.payload, size);
	t0 = first;
	t0.pos = ckr_lane_commit(&res);
	assert_int_equal(ckr_wait(f->c, &t0, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS), 0);
	assert_history(f, "late", 2);
	ckr_run_close(r);
}

static void test_outcomes_complete_fail_leave(void **state)
{
	fixture *f = *state;
	ckr_run *c = begin(f->c, "done", CKR_KIND_SINGLE_LOOP);
	ckr_run *x = begin(f->c, "broke", CKR_KIND_MULTI_PHASE);
	ckr_run *l = begin(f->c, "left", CKR_KIND_SINGLE_LOOP);
	ckr_ticket t;
	push_msgs(c, 0, 3);
	push_msgs(l, 0, 3);
	assert_int_equal(ckr_run_phase(x, 0, "plan", "p", 1, NULL), 0);
	assert_int_equal(ckr_run_finish(c, CKR_OUTCOME_COMPLETE, NULL, NULL), 0);
	assert_int_equal(ckr_run_finish(l, ckr_classify_outcome(true, CKR_CAUSE_SHUTDOWN),
					NULL, NULL), 0);
	assert_int_equal(ckr_run_finish(x, CKR_OUTCOME_FAIL, "tool loop", &t), 0);
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS), 0);
	ckr_store *s = open_store(f, true);
	ckr_run_info info;
	assert_int_equal(ckr_store_get(s, "done", 4, &info), 0);
	assert_int_equal(info.state, CKR_RUN_COMPLETED);
	assert_int_equal(info.events, 0); /* cleared */
	assert_int_equal(ckr_store_get(s, "broke", 5, &info), 0);
	assert_int_equal(info.state, CKR_RUN_FAILED);
	assert_string_equal(info.error, "tool loop");
	assert_int_equal(ckr_store_get(s, "left", 4, &info), 0);
	assert_int_equal(info.state, CKR_RUN_RUNNING);
	ckr_store_close(s);
	ckr_run_close(c);
	ckr_run_close(x);
	ckr_run_close(l);
}

/* Crash the flusher at `point`, restart it, and check exactly-once. */
static void crash_and_restart(fixture *f, const char *point)
{
	stop_flusher(f->flusher);
	f->flusher = start_flusher(f, point, NULL);
	assert_true(f->flusher > 0);
	ckr_run *r = begin(f->c, "crashy", CKR_KIND_SINGLE_LOOP);
	ckr_ticket t = { 0 };
	for (int chunk = 0; chunk < 6; chunk++) {
		t = push_msgs(r, chunk * 200, 200);
		/* Give the flusher this chunk: wait for it, or for its death. */
		ckr_wait(f->c, &t, CKR_LEVEL_COMMITTED, 2000);
	}
	int st = tu_wait_child(f->flusher, TU_TIMEOUT_MS);
	assert_true(st != -1 && WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
	f->flusher = start_flusher(f, NULL, NULL);
	assert_true(f->flusher > 0);
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS), 0);
	assert_history(f, "crashy", 1200);
	ckr_store *s = open_store(f, true);
	assert_int_equal(ckr_store_counter(s, "dup_seq"), 0); /* nothing applied twice */
	ckr_store_close(s);
	ckr_run_close(r);
}

static void test_flusher_killed_mid_batch(void **state)
{
	crash_and_restart(*state, "mid_batch:300");
}

static void test_flusher_killed_after_commit_before_release(void **state)
{
	crash_and_restart(*state, "after_commit:2");
}

static void test_flusher_killed_after_release(void **state)
{
	crash_and_restart(*state, "after_release:2");
}

static void test_second_flusher_refused(void **state)
{
	fixture *f = *state;
	ckr_flusher_opts o = { .segment = f->seg, .db_dir = f->db };
	ckr_flusher *fl;
	assert_int_equal(ckr_flusher_open(&o, &fl), -EBUSY);
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", 1);
		dup2(devnull, 2);
		execl(tu_hooks_bin("ckring-flusher"), "ckring-flusher", "--segment", f->seg, "--db",
		      f->db, (char *)NULL);
		_exit(127);
	}
	int st = tu_wait_child(pid, TU_TIMEOUT_MS);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
}

/* A child begins a run, pushes n messages, reports, and is SIGKILLed. */
static void run_and_die(fixture *f, const char *id, int n)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		ckr_client *c;
		if (ckr_client_attach(f->seg, NULL, &c))
			_exit(1);
		ckr_run *r = begin(c, id, CKR_KIND_SINGLE_LOOP);
		ckr_ticket t = push_msgs(r, 0, n);
		/* In the store before it dies (the claim then waits only for
		 * its lane to be drained and freed). */
		if (ckr_wait(c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS) != 0)
			_exit(1);
		char ok = 1;
		if (write(p[1], &ok, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	char ok;
	assert_int_equal(tu_read_full(p[0], &ok, 1, TU_TIMEOUT_MS), 0);
	kill(pid, SIGKILL);
	tu_wait_child(pid, TU_TIMEOUT_MS);
	close(p[0]);
	close(p[1]);
}

/* Claim, retrying (bounded) while the flusher has not drained the owner. */
static int claim(ckr_store *s, const char *id, ckr_claim *cl)
{
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	int rc;
	while ((rc = ckr_store_claim(s, id, strlen(id), cl)) == CKR_ENOTDRAINED &&
	       tu_now_ms() < deadline)
		sched_yield();
	return rc;
}

static void test_dead_producer_run_recovered_and_continued(void **state)
{
	fixture *f = *state;
	run_and_die(f, "victim", 300);
	ckr_store *s = open_store(f, false);
	ckr_claim cl;
	assert_int_equal(claim(s, "victim", &cl), 0);
	assert_int_equal(cl.incarnation, 2);
	assert_int_equal(cl.attempts, 1);
	assert_int_equal(cl.next_seq, 301);
	ckr_claim again;
	/* Its owner is now this live process: not interrupted any more. */
	assert_int_equal(ckr_store_claim(s, "victim", 6, &again), CKR_ENOTINTERRUPTED);
	ckr_store_close(s);
	assert_history(f, "victim", 300); /* nothing the dead process pushed is lost */
	ckr_run *r;
	assert_int_equal(ckr_run_reopen(f->c, &cl, &r), 0);
	ckr_ticket t = push_msgs(r, 300, 50);
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS), 0);
	assert_history(f, "victim", 350); /* the same record continues */
	ckr_run_close(r);
}

/* A recoverer that claims a run and dies before pushing anything: the
 * flusher marks its owner drained, so the run can be claimed again. */
static void test_run_of_dead_claimer_can_be_claimed_again(void **state)
{
	fixture *f = *state;
	run_and_die(f, "twice", 5);
	pid_t pid = fork();
	if (pid == 0) {
		ckr_store *s;
		ckr_store_opts o = { .max_attempts = 3 };
		ckr_claim cl;
		if (ckr_store_open(f->db, &o, &s) || claim(s, "twice", &cl))
			_exit(1);
		_exit(0); /* dies holding the claim, without a lane */
	}
	int st = tu_wait_child(pid, TU_TIMEOUT_MS);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ckr_store *s = open_store(f, false);
	ckr_claim cl;
	assert_int_equal(claim(s, "twice", &cl), 0);
	assert_int_equal(cl.incarnation, 3);
	assert_int_equal(cl.attempts, 2);
	ckr_store_close(s);
}

static void test_stale_incarnation_fenced(void **state)
{
	fixture *f = *state;
	run_and_die(f, "fenced", 10);
	ckr_store *s = open_store(f, false);
	ckr_claim cl;
	assert_int_equal(claim(s, "fenced", &cl), 0);
	ckr_store_close(s);
	ckr_claim stale = cl; /* a writer that still thinks it is incarnation 1 */
	stale.incarnation = 1;
	ckr_run *r;
	assert_int_equal(ckr_run_reopen(f->c, &stale, &r), 0);
	ckr_ticket t = push_msgs(r, 10, 5);
	/* The writer learns that its events were rejected. */
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS),
			 CKR_EREJECTED);
	assert_history(f, "fenced", 10);
	s = open_store(f, true);
	assert_int_equal(ckr_store_counter(s, "stale"), 5);
	ckr_store_close(s);
	ckr_run_close(r);
}

static void test_sigterm_drains_then_exits_zero(void **state)
{
	fixture *f = *state;
	ckr_run *r = begin(f->c, "drain", CKR_KIND_SINGLE_LOOP);
	push_msgs(r, 0, 2000);
	assert_int_equal(stop_flusher(f->flusher), 0);
	f->flusher = 0;
	assert_history(f, "drain", 2000);
	ckr_run_close(r);
}

static void test_map_grows_from_tiny_map(void **state)
{
	fixture *f = *state;
	stop_flusher(f->flusher);
	tu_rmrf(f->db);
	f->db = tu_tmpdir("flmap");
	f->flusher = start_flusher(f, NULL, "--map-size=65536");
	assert_true(f->flusher > 0);
	ckr_run *r = begin(f->c, "grow", CKR_KIND_SINGLE_LOOP);
	ckr_ticket t = push_msgs(r, 0, 5000);
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS), 0);
	assert_history(f, "grow", 5000);
	ckr_run_close(r);
}

/* The DB on a 1 MiB tmpfs: the flusher stops draining (producers see a full
 * ring), then, once the disk has room again, everything lands. Needs root
 * for mount(2); skipped otherwise. */
static void test_full_disk_keeps_events_in_ring(void **state)
{
	fixture *f = *state;
	char *mnt = tu_tmpdir("fldisk");
	/* mode 0700: a tmpfs root is 1777 by default, which the flusher refuses */
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700") != 0) {
		tu_rmrf(mnt);
		skip();
	}
	stop_flusher(f->flusher);
	char *saved = f->db;
	f->db = mnt;
	f->flusher = start_flusher(f, NULL, "--map-size=262144");
	assert_true(f->flusher > 0);
	ckr_run *r = begin(f->c, "disk", CKR_KIND_SINGLE_LOOP);
	uint8_t msg[2000] = { 0 };
	int rc = 0, accepted = 0;
	while (accepted < 20000 && (rc = ckr_run_message(r, msg, sizeof msg, NULL)) == 0)
		accepted++;
	if (rc == 0) { /* the ring never filled: wait until it does */
		int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
		while ((rc = ckr_run_message(r, msg, sizeof msg, NULL)) != -EAGAIN &&
		       tu_now_ms() < deadline)
			accepted += rc == 0;
	}
	assert_int_equal(rc, -EAGAIN); /* producers see ring-full, nothing lost */
	assert_int_equal(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=256m"), 0);
	ckr_ticket t;
	while ((rc = ckr_run_message(r, msg, 10, &t)) == -EAGAIN)
		sched_yield();
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS), 0);
	ckr_store *s = open_store(f, true);
	ckr_run_info info;
	assert_int_equal(ckr_store_get(s, "disk", 4, &info), 0);
	assert_int_equal(info.events, (uint64_t)accepted + 2); /* + begin + last */
	ckr_store_close(s);
	ckr_run_close(r);
	assert_int_equal(stop_flusher(f->flusher), 0);
	f->flusher = 0;
	umount2(mnt, MNT_DETACH);
	f->db = saved;
	tu_rmrf(mnt);
}

/* Wait (bounded) until pred(seg) holds, polling a shared word. */
static bool wait_until(const ckr_segment *seg, bool (*pred)(const ckr_segment *))
{
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (!pred(seg)) {
		if (tu_now_ms() > deadline)
			return false;
		sched_yield();
	}
	return true;
}

static bool asleep_unowned(const ckr_segment *seg)
{
	return atomic_load(&ckr_seg_fl(seg)->asleep) == CKR_ASLEEP_UNOWNED;
}

static bool lanes_drained(const ckr_segment *seg)
{
	for (uint32_t i = 0; i < seg->lane_count; i++) {
		ckr_lane l;
		ckr_lane_view(seg, i, &l);
		if (ckr_lane_head(&l) != ckr_lane_tail(&l))
			return false;
	}
	return true;
}

/* With no lane owned the flusher sleeps until an attach wakes it (its only
 * other wake-up, the housekeeping tick, is made an hour long here): events
 * pushed after the attach, with nobody waiting, are still stored. */
static void test_attach_wakes_flusher_asleep_without_owners(void **state)
{
	(void)state;
	const char *seg = tu_segname("flu");
	char *db = tu_tmpdir("flu");
	setenv("CKR_FLUSHER_TICK_MS", "3600000", 1);
	pid_t fp = tu_flusher_start(seg, db, NULL, NULL);
	unsetenv("CKR_FLUSHER_TICK_MS");
	assert_true(fp > 0);
	ckr_segment s;
	assert_int_equal(ckr_segment_attach(seg, true, &s), 0);
	bool slept = wait_until(&s, asleep_unowned);
	ckr_client *c;
	assert_int_equal(ckr_client_attach(seg, NULL, &c), 0);
	ckr_run *r = begin(c, "after-sleep", CKR_KIND_SINGLE_LOOP);
	push_msgs(r, 0, 50);
	bool drained = wait_until(&s, lanes_drained); /* no ckr_wait: it would wake */
	if (!slept || !drained)
		tu_flusher_kill(fp); /* its tick is an hour: never leave it behind */
	assert_true(slept);
	assert_true(drained);
	ckr_run_close(r);
	ckr_client_detach(c);
	ckr_segment_detach(&s);
	assert_int_equal(tu_flusher_stop(fp), 0);
	tu_assert_history(db, "after-sleep", 50);
	ckr_segment_unlink(seg);
	tu_rmrf(db);
}

/*
 * C0 loads a free lane's owner word (0); a client attaches that lane and
 * pushes a begin and a message before the pass reads its seals. The pass
 * must leave them to the next one (which reads them under the new owner):
 * read under owner 0, the begin was quarantined as "begin names another
 * owner than the lane's" and the message stored as an orphan (found by the
 * crash torture under ASan).
 */
static const char *c0_seg;
static ckr_client *c0_client;
static uint32_t c0_lane; /* the free lane */

static void attach_after_c0(ckr_flusher *fl, uint32_t lane, uint64_t owner)
{
	(void)fl;
	if (lane != c0_lane || owner != 0 || c0_client)
		return;
	assert_int_equal(ckr_client_attach(c0_seg, NULL, &c0_client), 0);
	assert_int_equal(ckr_client_lane(c0_client), c0_lane);
	ckr_run *r = tu_begin(c0_client, "late", CKR_KIND_SINGLE_LOOP, NULL);
	(void)tu_push_msgs(r, 0, 1);
	ckr_run_close(r);
}

static void test_tenure_begun_after_c0_waits_for_the_next_pass(void **state)
{
	(void)state;
	const char *seg = tu_segname("c0");
	char *db = tu_tmpdir("c0");
	ckr_flusher_opts o = { .segment = seg, .db_dir = db, .create = true,
			       .seg = { .size = tu_seg_size(2, 65536), .lanes = 2,
					.group = (gid_t)-1 } };
	ckr_flusher *fl;
	assert_int_equal(ckr_flusher_open(&o, &fl), 0);
	/* Work on one lane, so that the pass runs (an idle flusher skips it). */
	ckr_client *busy;
	assert_int_equal(ckr_client_attach(seg, NULL, &busy), 0);
	c0_lane = 1 - ckr_client_lane(busy);
	ckr_run *early = tu_begin(busy, "early", CKR_KIND_SINGLE_LOOP, NULL);
	(void)tu_push_msgs(early, 0, 1);
	ckr_run_close(early);
	c0_seg = seg;
	c0_client = NULL;
	ckr_flusher_test_after_c0 = attach_after_c0;
	size_t n, total = 0;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ckr_flusher_drain_once(fl, &n), 0);
		total += n;
	}
	ckr_flusher_test_after_c0 = NULL;
	assert_non_null(c0_client);
	assert_int_equal(total, 4);
	ckr_flusher_stats st;
	ckr_flusher_stats_get(fl, &st);
	assert_int_equal(st.corrupt, 0);
	ckr_client_detach(c0_client);
	ckr_client_detach(busy);
	ckr_flusher_close(fl);
	ckr_store *s;
	ckr_run_info in;
	assert_int_equal(ckr_store_open(db, NULL, &s), 0);
	assert_int_equal(ckr_store_get(s, "late", 4, &in), 0);
	assert_int_equal(in.events, 2); /* the begin and the message */
	ckr_store_close(s);
	ckr_segment_unlink(seg);
	tu_rmrf(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_pushed_events_persisted_in_order),
		T(test_record_sealed_after_flusher_passed_is_taken),
		T(test_outcomes_complete_fail_leave),
		T(test_flusher_killed_mid_batch),
		T(test_flusher_killed_after_commit_before_release),
		T(test_flusher_killed_after_release),
		T(test_second_flusher_refused),
		T(test_dead_producer_run_recovered_and_continued),
		T(test_run_of_dead_claimer_can_be_claimed_again),
		T(test_stale_incarnation_fenced),
		T(test_sigterm_drains_then_exits_zero),
		T(test_map_grows_from_tiny_map),
		T(test_full_disk_keeps_events_in_ring),
		cmocka_unit_test(test_attach_wakes_flusher_asleep_without_owners),
		cmocka_unit_test(test_tenure_begun_after_c0_waits_for_the_next_pass),
#undef T
	};
	return cmocka_run_group_tests_name("flusher", tests, NULL, NULL);
}
