/*
 * test_client.c — the executor API (client/): begin, reopen, messages,
 * phases, finish and its classification, limits, fork refusal, and waiting
 * for durability against a stand-in publisher (this test plays the flusher).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckring.h"
#include "client/client.h"
#include "event/event.h"
#include "ring/lane.h"
#include "shm/futex.h"
#include "shm/proc.h"
#include "tests/helpers/testutil.h"

typedef struct fixture {
	const char *name;
	ckr_client *c;
	ckr_segment seg; /* the test's consumer view */
	uint8_t buf[1 << 18];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	ckr_segment_opts o = { .lanes = 4, .size = 1 << 20, .group = (gid_t)-1 };
	f->name = tu_segname("client");
	if (ckr_segment_create(f->name, &o) || ckr_client_attach(f->name, NULL, &f->c) ||
	    ckr_segment_attach(f->name, false, &f->seg))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	ckr_client_detach(f->c);
	ckr_segment_detach(&f->seg);
	ckr_segment_unlink(f->name);
	free(f);
	return 0;
}

/* Read the next event of the client's lane at *pos into ev (decoded from
 * f->buf). */
static void next_event(fixture *f, uint64_t *pos, ckr_event *ev)
{
	ckr_lane l;
	ckr_lane_record rec;
	ckr_lane_view(&f->seg, ckr_client_lane(f->c), &l);
	ckr_lane_read(&l, *pos, false, f->buf, sizeof f->buf, &rec);
	assert_int_equal(rec.status, CKR_READ_RECORD);
	assert_int_equal(ckr_event_decode(f->buf, rec.payload_len, ev), 0);
	*pos = rec.next;
}

static ckr_run *begin(fixture *f, const char *id, ckr_kind kind)
{
	ckr_run *r = NULL;
	ckr_run_spec s = { .id = id, .id_len = strlen(id), .kind = kind, .label = "v1.2" };
	assert_int_equal(ckr_run_begin(f->c, &s, &r, NULL), 0);
	return r;
}

static void test_begin_pushes_begin_event_seq0(void **state)
{
	fixture *f = *state;
	ckr_run *r = begin(f, "run-1", CKR_KIND_SINGLE_LOOP);
	uint64_t pos = 0;
	ckr_event ev;
	next_event(f, &pos, &ev);
	assert_int_equal(ev.type, CKR_EV_BEGIN);
	assert_int_equal(ev.seq, 0);
	assert_int_equal(ev.incarnation, 1);
	assert_int_equal(ev.u.begin.kind, CKR_KIND_SINGLE_LOOP);
	assert_memory_equal(ev.u.begin.label, "v1.2", 4);
	assert_int_equal(ev.u.begin.owner_pid, getpid());
	ckr_run_close(r);
}

static void test_second_begin_same_process_refused(void **state)
{
	fixture *f = *state;
	ckr_run *r = begin(f, "dup", CKR_KIND_SINGLE_LOOP), *r2 = NULL;
	ckr_run_spec s = { .id = "dup", .id_len = 3, .kind = CKR_KIND_SINGLE_LOOP };
	assert_int_equal(ckr_run_begin(f->c, &s, &r2, NULL), -EEXIST);
	assert_null(r2);
	ckr_run_close(r);
	r = begin(f, "dup", CKR_KIND_SINGLE_LOOP); /* closed: may begin again */
	ckr_run_close(r);
}

static void test_bad_specs_rejected(void **state)
{
	fixture *f = *state;
	ckr_run *r;
	char big[70] = { 0 };
	ckr_run_spec s = { .id = "x", .id_len = 0, .kind = CKR_KIND_SINGLE_LOOP };
	assert_int_equal(ckr_run_begin(f->c, &s, &r, NULL), -EINVAL);
	s.id = big;
	s.id_len = 65;
	assert_int_equal(ckr_run_begin(f->c, &s, &r, NULL), -EINVAL);
	s.id_len = 64; /* 64 bytes is the limit, any bytes */
	assert_int_equal(ckr_run_begin(f->c, &s, &r, NULL), 0);
	ckr_run_close(r);
	s.kind = 7;
	assert_int_equal(ckr_run_begin(f->c, &s, &r, NULL), -EINVAL);
}

static void test_messages_numbered_in_order(void **state)
{
	fixture *f = *state;
	ckr_run *r = begin(f, "seq", CKR_KIND_SINGLE_LOOP);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ckr_run_message(r, "abc", 3, NULL), 0);
	uint64_t pos = 0;
	ckr_event ev;
	next_event(f, &pos, &ev);
	for (uint64_t i = 1; i <= 5; i++) {
		next_event(f, &pos, &ev);
		assert_int_equal(ev.type, CKR_EV_MESSAGE);
		assert_int_equal(ev.seq, i);
		assert_int_equal(ev.u.message.len, 3);
	}
	assert_int_equal(ckr_run_next_seq(r), 6);
	ckr_run_close(r);
}

static void test_wrong_kind_rejected(void **state)
{
	fixture *f = *state;
	ckr_run *s = begin(f, "single", CKR_KIND_SINGLE_LOOP);
	ckr_run *m = begin(f, "multi", CKR_KIND_MULTI_PHASE);
	assert_int_equal(ckr_run_phase(s, 0, "plan", "x", 1, NULL), -EINVAL);
	assert_int_equal(ckr_run_message(m, "x", 1, NULL), -EINVAL);
	assert_int_equal(ckr_run_phase(m, 0, "plan", "out", 3, NULL), 0);
	ckr_run_close(s);
	ckr_run_close(m);
}

static void test_event_size_limit_is_e2big(void **state)
{
	fixture *f = *state;
	ckr_run *r = begin(f, "big", CKR_KIND_SINGLE_LOOP);
	size_t n = f->seg.max_record + 1;
	uint8_t *msg = calloc(1, n);
	assert_int_equal(ckr_run_message(r, msg, n, NULL), -E2BIG);
	assert_int_equal(ckr_run_message(r, msg, f->seg.max_record - 200, NULL), 0);
	free(msg);
	ckr_run_close(r);
}

static void test_run_byte_limit_is_efbig_and_leaves_no_gap(void **state)
{
	fixture *f = *state;
	ckr_client *c;
	ckr_client_opts o = { .max_run_bytes = 400 };
	assert_int_equal(ckr_client_attach(f->name, &o, &c), 0);
	ckr_run *r;
	ckr_run_spec s = { .id = "lim", .id_len = 3, .kind = CKR_KIND_SINGLE_LOOP };
	assert_int_equal(ckr_run_begin(c, &s, &r, NULL), 0);
	uint8_t msg[100] = { 0 };
	int rc, n = 0;
	while ((rc = ckr_run_message(r, msg, sizeof msg, NULL)) == 0)
		n++;
	assert_int_equal(rc, -EFBIG);
	assert_true(n >= 2);
	assert_int_equal(ckr_run_next_seq(r), (uint64_t)n + 1);
	ckr_run_close(r);
	ckr_client_detach(c);
}

static void test_full_ring_refusal_takes_no_sequence(void **state)
{
	fixture *f = *state;
	ckr_run *r = begin(f, "full", CKR_KIND_SINGLE_LOOP);
	uint8_t msg[4000] = { 0 };
	int rc;
	while ((rc = ckr_run_message(r, msg, sizeof msg, NULL)) == 0)
		;
	assert_int_equal(rc, -EAGAIN);
	uint64_t seq = ckr_run_next_seq(r);
	assert_int_equal(ckr_run_message(r, msg, sizeof msg, NULL), -EAGAIN);
	assert_int_equal(ckr_run_next_seq(r), seq);
	ckr_run_close(r);
}

static void test_finish_complete_then_terminal(void **state)
{
	fixture *f = *state;
	ckr_run *r = begin(f, "fin", CKR_KIND_SINGLE_LOOP);
	assert_int_equal(ckr_run_finish(r, CKR_OUTCOME_COMPLETE, NULL, NULL), 0);
	assert_int_equal(ckr_run_message(r, "x", 1, NULL), CKR_ETERMINAL);
	assert_int_equal(ckr_run_finish(r, CKR_OUTCOME_FAIL, "x", NULL), CKR_ETERMINAL);
	uint64_t pos = 0;
	ckr_event ev;
	next_event(f, &pos, &ev);
	next_event(f, &pos, &ev);
	assert_int_equal(ev.type, CKR_EV_COMPLETE);
	assert_int_equal(ev.seq, 1);
	ckr_run_close(r);
}

static void test_finish_fail_carries_error(void **state)
{
	fixture *f = *state;
	ckr_run *r = begin(f, "failing", CKR_KIND_MULTI_PHASE);
	assert_int_equal(ckr_run_finish(r, CKR_OUTCOME_FAIL, "model error: 500", NULL), 0);
	uint64_t pos = 0;
	ckr_event ev;
	next_event(f, &pos, &ev);
	next_event(f, &pos, &ev);
	assert_int_equal(ev.type, CKR_EV_FAIL);
	assert_int_equal(ev.u.fail.len, 16);
	assert_memory_equal(ev.u.fail.error, "model error: 500", 16);
	ckr_run_close(r);
}

static void test_finish_leave_running_writes_nothing(void **state)
{
	fixture *f = *state;
	ckr_run *r = begin(f, "leave", CKR_KIND_SINGLE_LOOP);
	ckr_lane l;
	ckr_lane_view(&f->seg, ckr_client_lane(f->c), &l);
	uint64_t tail = ckr_lane_tail(&l);
	assert_int_equal(ckr_run_finish(r, CKR_OUTCOME_LEAVE_RUNNING, NULL, NULL), 0);
	assert_int_equal(ckr_lane_tail(&l), tail);
	assert_int_equal(ckr_run_message(r, "x", 1, NULL), CKR_ETERMINAL);
	ckr_run_close(r);
}

/* The seed's classifyCheckpointOutcome, every case it lists. */
static void test_classify_table(void **state)
{
	(void)state;
	static const struct {
		bool failed;
		ckr_cause cause;
		ckr_outcome want;
	} t[] = {
		{ false, CKR_CAUSE_NONE, CKR_OUTCOME_COMPLETE },
		{ false, CKR_CAUSE_SHUTDOWN, CKR_OUTCOME_COMPLETE }, /* no error wins */
		{ true, CKR_CAUSE_SHUTDOWN, CKR_OUTCOME_LEAVE_RUNNING },
		{ true, CKR_CAUSE_NONE, CKR_OUTCOME_FAIL },         /* model error, tool loop */
		{ true, CKR_CAUSE_DEADLINE, CKR_OUTCOME_FAIL },     /* the run's own deadline */
		{ true, CKR_CAUSE_CRITIC_KILL, CKR_OUTCOME_FAIL },  /* a critic kill */
		{ true, CKR_CAUSE_CALLER_CANCEL, CKR_OUTCOME_FAIL },/* a caller cancel */
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		assert_int_equal(ckr_classify_outcome(t[i].failed, t[i].cause), t[i].want);
}

static void test_reopen_continues_sequence_and_incarnation(void **state)
{
	fixture *f = *state;
	ckr_identity me;
	assert_int_equal(ckr_proc_self_identity(&me), 0);
	ckr_claim cl = { .id = "rec", .id_len = 3, .kind = CKR_KIND_SINGLE_LOOP,
			 .incarnation = 3, .next_seq = 42, .writer = 0xabcdef,
			 .owner_token = me.token, .owner_nonce = me.nonce };
	ckr_run *r;
	assert_int_equal(ckr_run_reopen(f->c, &cl, &r), 0);
	assert_int_equal(ckr_run_message(r, "m", 1, NULL), 0);
	uint64_t pos = 0;
	ckr_event ev;
	next_event(f, &pos, &ev); /* no begin: the same durable record */
	assert_int_equal(ev.type, CKR_EV_MESSAGE);
	assert_int_equal(ev.seq, 42);
	assert_int_equal(ev.incarnation, 3);
	assert_int_equal(ev.writer, 0xabcdef);
	ckr_run *r2;
	assert_int_equal(ckr_run_reopen(f->c, &cl, &r2), -EEXIST);
	ckr_run_close(r);
}

static void test_forked_child_is_refused(void **state)
{
	fixture *f = *state;
	ckr_run *r = begin(f, "forky", CKR_KIND_SINGLE_LOOP);
	pid_t pid = fork();
	if (pid == 0) {
		int a = ckr_run_message(r, "x", 1, NULL);
		ckr_run_spec s = { .id = "kid", .id_len = 3, .kind = CKR_KIND_SINGLE_LOOP };
		ckr_run *k;
		int b = ckr_run_begin(f->c, &s, &k, NULL);
		_exit(a == CKR_EFORKED && b == CKR_EFORKED ? 0 : 1);
	}
	int st = tu_wait_child(pid, TU_TIMEOUT_MS);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(ckr_run_message(r, "x", 1, NULL), 0); /* parent unaffected */
	ckr_run_close(r);
}

/* A stand-in flusher: publishes head/synced and wakes waiters. */
typedef struct publisher {
	fixture *f;
	uint32_t lane;
	uint64_t head, synced;
} publisher;

static void *publish_later(void *arg)
{
	publisher *p = arg;
	ckr_seg_flusher *fl = ckr_seg_fl(&p->f->seg);
	/* Wait (bounded) until the waiter is asleep: it registered itself. */
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (atomic_load(&fl->waiters) == 0 && tu_now_ms() < deadline)
		sched_yield();
	ckr_lane l;
	ckr_lane_view(&p->f->seg, p->lane, &l);
	ckr_lane_release(&l, p->head, p->synced);
	atomic_fetch_add(&fl->commit_seq, 1);
	ckr_futex_wake(&fl->commit_seq, 100);
	return NULL;
}

static void test_wait_levels_against_stand_in_publisher(void **state)
{
	fixture *f = *state;
	/* The "flusher" is alive: this process holds its lock, through a
	 * handle other than the client's. */
	assert_int_equal(ckr_seg_lock(&f->seg, CKR_LOCK_FLUSHER), 0);
	ckr_run *r = begin(f, "dur", CKR_KIND_SINGLE_LOOP);
	ckr_ticket t;
	assert_int_equal(ckr_run_message(r, "x", 1, &t), 0);
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_IN_RING, 0), 0);
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_COMMITTED, 10), -ETIMEDOUT);
	publisher p = { .f = f, .lane = t.lane, .head = t.pos, .synced = 0 };
	pthread_t th;
	pthread_create(&th, NULL, publish_later, &p);
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS), 0);
	pthread_join(th, NULL);
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_SYNCED, 10), -ETIMEDOUT);
	p.synced = t.pos;
	pthread_create(&th, NULL, publish_later, &p);
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_SYNCED, TU_TIMEOUT_MS), 0);
	pthread_join(th, NULL);
	ckr_seg_unlock(&f->seg, CKR_LOCK_FLUSHER);
	ckr_run_close(r);
}

static void test_wait_without_flusher_is_epipe(void **state)
{
	fixture *f = *state;
	ckr_run *r = begin(f, "nofl", CKR_KIND_SINGLE_LOOP);
	ckr_ticket t;
	assert_int_equal(ckr_run_message(r, "x", 1, &t), 0);
	assert_int_equal(ckr_wait(f->c, &t, CKR_LEVEL_COMMITTED, 20), -EPIPE);
	ckr_ticket bad = { .lane = 9999, .pos = 1, .writer = t.writer };
	assert_int_equal(ckr_wait(f->c, &bad, CKR_LEVEL_COMMITTED, 20), -EINVAL);
	ckr_run_close(r);
}

static uint32_t free_lanes(const fixture *f)
{
	ckr_observer *ob;
	ckr_lane_info li[8];
	ckr_segment_info in;
	uint32_t n = 0;
	assert_int_equal(ckr_observer_open(f->name, &ob), 0);
	ckr_observer_snapshot(ob, &in, li, 8);
	for (uint32_t i = 0; i < in.lane_count; i++)
		n += li[i].state == CKR_LANE_FREE;
	ckr_observer_close(ob);
	return n;
}

/* A client of several lanes spreads its runs over them; each run keeps its
 * lane. The segment of the fixture has 4 lanes; f->c holds one. */
static void test_several_lanes_spread_runs(void **state)
{
	fixture *f = *state;
	ckr_client *c, *none;
	ckr_client_opts o = { .lanes = 5 };
	/* More lanes than the segment has is a bad option; a partial grant is
	 * not kept. */
	assert_int_equal(ckr_client_attach(f->name, &o, &c), -EINVAL);
	o.lanes = 4;
	assert_int_equal(free_lanes(f), 3);
	assert_int_equal(ckr_client_attach(f->name, &o, &c), -EUSERS);
	assert_int_equal(free_lanes(f), 3);
	o.lanes = 3;
	assert_int_equal(ckr_client_attach(f->name, &o, &c), 0);
	ckr_run *r[6];
	uint32_t lanes_seen = 0;
	for (int i = 0; i < 6; i++) {
		char id[16];
		snprintf(id, sizeof id, "ml-%d", i);
		ckr_run_spec s = { .id = id, .id_len = strlen(id), .kind = CKR_KIND_SINGLE_LOOP };
		ckr_ticket t0, t1;
		assert_int_equal(ckr_run_begin(c, &s, &r[i], &t0), 0);
		assert_int_equal(ckr_run_message(r[i], "x", 1, &t1), 0);
		assert_int_equal(t0.lane, t1.lane); /* one lane per run */
		assert_int_not_equal(t0.lane, ckr_client_lane(f->c));
		lanes_seen |= 1u << t0.lane;
	}
	assert_int_equal(__builtin_popcount(lanes_seen), 3);
	/* All 4 lanes are taken now: a further client gets none. */
	assert_int_equal(free_lanes(f), 0);
	assert_int_equal(ckr_client_attach(f->name, NULL, &none), -EUSERS);
	for (int i = 0; i < 6; i++)
		ckr_run_close(r[i]);
	ckr_client_detach(c);
}

static void test_strerror_covers_every_code(void **state)
{
	(void)state;
	int codes[] = { CKR_ENOTSEG, CKR_EVERSION, CKR_ETRUNC, CKR_EFORKED, CKR_ECORRUPT,
			CKR_ECLAIMED, CKR_ENOTDRAINED, CKR_EEXHAUSTED, CKR_ETERMINAL,
			CKR_ENOTINTERRUPTED, CKR_EREJECTED, CKR_ENOTCLAIMER, CKR_ESEGMENT,
			CKR_ESLOTS, CKR_ECLOSED, CKR_EUNSAFE, -EAGAIN, -E2BIG, -EFBIG, -EUSERS,
			-EBUSY };
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		assert_string_not_equal(ckr_strerror(codes[i]), "unknown error");
	assert_string_equal(ckr_strerror(-12345678), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_begin_pushes_begin_event_seq0),
		T(test_second_begin_same_process_refused),
		T(test_bad_specs_rejected),
		T(test_messages_numbered_in_order),
		T(test_wrong_kind_rejected),
		T(test_event_size_limit_is_e2big),
		T(test_run_byte_limit_is_efbig_and_leaves_no_gap),
		T(test_full_ring_refusal_takes_no_sequence),
		T(test_finish_complete_then_terminal),
		T(test_finish_fail_carries_error),
		T(test_finish_leave_running_writes_nothing),
		T(test_classify_table),
		T(test_reopen_continues_sequence_and_incarnation),
		T(test_forked_child_is_refused),
		T(test_wait_levels_against_stand_in_publisher),
		T(test_wait_without_flusher_is_epipe),
		T(test_several_lanes_spread_runs),
		T(test_strerror_covers_every_code),
#undef T
	};
	return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}
