/*
 * test_consumer.c — the raw consumer (persist/consumer.c, ckring_store.h),
 * one behaviour per test: it reads what was pushed, a release frees room,
 * it cannot run beside a flusher, a corrupt record is reported and skipped.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckring_store.h"
#include "event/event.h"
#include "ring/lane.h"
#include "tests/helpers/testutil.h"

typedef struct fixture {
	const char *name;
	ckr_client *cl;
	ckr_run *run;
	ckr_consumer *co;
	uint32_t lane; /* the client's lane (from its begin ticket) */
	uint8_t buf[1 << 17];
} fixture;

/* A segment of 2 lanes of 64 KiB, a client with one single-loop run. */
static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	ckr_segment_opts o = { .lanes = 2, .size = 4096 + 4096 + 2 * 65536,
			       .group = (gid_t)-1 };
	f->name = tu_segname("cons");
	ckr_run_spec s = { .id = "run-c", .id_len = 5, .kind = CKR_KIND_SINGLE_LOOP };
	ckr_ticket t;
	if (ckr_segment_create(f->name, &o) || ckr_client_attach(f->name, NULL, &f->cl) ||
	    ckr_run_begin(f->cl, &s, &f->run, &t))
		return -1;
	f->lane = t.lane;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	ckr_consumer_close(f->co);
	ckr_run_close(f->run);
	ckr_client_detach(f->cl);
	ckr_segment_unlink(f->name);
	free(f);
	return 0;
}

/* Read the next record of the client's lane and decode it as an event. */
static void read_event(fixture *f, ckr_event *ev)
{
	size_t len = 0;
	assert_int_equal(ckr_consumer_read(f->co, f->lane, f->buf, sizeof f->buf, &len), 0);
	assert_int_equal(ckr_event_decode(f->buf, len, ev), 0);
}

static void test_reads_what_was_pushed(void **state)
{
	fixture *f = *state;
	ckr_event ev;
	size_t len;
	assert_int_equal(ckr_run_message(f->run, "hello", 5, NULL), 0);
	assert_int_equal(ckr_run_message(f->run, "world!", 6, NULL), 0);
	assert_int_equal(ckr_consumer_open(f->name, &f->co), 0);
	assert_int_equal(ckr_consumer_lanes(f->co), 2);
	read_event(f, &ev);
	assert_int_equal(ev.type, CKR_EV_BEGIN);
	read_event(f, &ev);
	assert_int_equal(ev.type, CKR_EV_MESSAGE);
	assert_int_equal(ev.u.message.len, 5);
	assert_memory_equal(ev.u.message.data, "hello", 5);
	read_event(f, &ev);
	assert_int_equal(ev.seq, 2);
	assert_memory_equal(ev.u.message.data, "world!", 6);
	assert_int_equal(ckr_consumer_read(f->co, 0, f->buf, sizeof f->buf, &len), -ENODATA);
	assert_int_equal(ckr_consumer_read(f->co, 1, f->buf, sizeof f->buf, &len), -ENODATA);
}

static void test_small_buffer_is_emsgsize_and_consumes_nothing(void **state)
{
	fixture *f = *state;
	uint8_t small[8];
	size_t len = 0, len2 = 0;
	assert_int_equal(ckr_consumer_open(f->name, &f->co), 0);
	assert_int_equal(ckr_consumer_read(f->co, f->lane, small, sizeof small, &len), -EMSGSIZE);
	assert_true(len > sizeof small);
	/* A buffer of exactly the payload's size works (two copies). */
	uint8_t *exact = malloc(len);
	assert_int_equal(ckr_consumer_read(f->co, f->lane, exact, len, &len2), 0);
	assert_int_equal(len2, len);
	ckr_event ev;
	assert_int_equal(ckr_event_decode(exact, len, &ev), 0);
	assert_int_equal(ev.type, CKR_EV_BEGIN);
	free(exact);
}

static void test_release_frees_room(void **state)
{
	fixture *f = *state;
	uint8_t msg[1000] = { 0 };
	size_t len, n = 0;
	int rc;
	while ((rc = ckr_run_message(f->run, msg, sizeof msg, NULL)) == 0)
		n++;
	assert_int_equal(rc, -EAGAIN);
	assert_true(n > 10);
	assert_int_equal(ckr_consumer_open(f->name, &f->co), 0);
	for (size_t i = 0; i < n + 1; i++) /* the begin and the messages */
		assert_int_equal(ckr_consumer_read(f->co, f->lane, f->buf, sizeof f->buf, &len), 0);
	assert_int_equal(ckr_consumer_read(f->co, f->lane, f->buf, sizeof f->buf, &len),
			 -ENODATA);
	assert_true(ckr_consumer_unreleased(f->co, f->lane) > 0);
	/* Read is not release: the producer still finds the lane full. */
	assert_int_equal(ckr_run_message(f->run, msg, sizeof msg, NULL), -EAGAIN);
	assert_int_equal(ckr_consumer_release(f->co, f->lane), 0);
	assert_int_equal(ckr_consumer_unreleased(f->co, f->lane), 0);
	assert_int_equal(ckr_run_message(f->run, msg, sizeof msg, NULL), 0);
}

static void test_busy_beside_a_flusher(void **state)
{
	fixture *f = *state;
	char *db = tu_tmpdir("consfl");
	ckr_flusher *fl;
	ckr_flusher_opts fo = { .segment = f->name, .db_dir = db };
	assert_int_equal(ckr_flusher_open(&fo, &fl), 0);
	assert_int_equal(ckr_consumer_open(f->name, &f->co), -EBUSY);
	assert_null(f->co);
	ckr_flusher_close(fl);
	/* The slot is free again; now the flusher is the one refused. */
	assert_int_equal(ckr_consumer_open(f->name, &f->co), 0);
	assert_int_equal(ckr_flusher_open(&fo, &fl), -EBUSY);
	tu_rmrf(db);
}

/* Flip a byte of the payload of the record that starts at pos in lane. */
static void scribble_payload(const char *name, uint32_t lane, uint64_t pos)
{
	ckr_segment seg;
	ckr_lane l;
	assert_int_equal(ckr_segment_attach(name, false, &seg), 0);
	ckr_lane_view(&seg, lane, &l);
	l.data[(pos & l.mask) + CKR_REC_HEADER + 3] ^= 0x40;
	ckr_segment_detach(&seg);
}

static void test_corrupt_record_reported_and_skipped(void **state)
{
	fixture *f = *state;
	ckr_ticket t1, t2;
	ckr_event ev;
	size_t len = 99;
	assert_int_equal(ckr_run_message(f->run, "first", 5, &t1), 0);
	assert_int_equal(ckr_run_message(f->run, "second", 6, &t2), 0);
	assert_int_equal(ckr_consumer_open(f->name, &f->co), 0);
	read_event(f, &ev); /* the begin */
	uint64_t start = ckr_consumer_unreleased(f->co, f->lane); /* = begin's end */
	scribble_payload(f->name, f->lane, start);
	assert_int_equal(ckr_consumer_read(f->co, f->lane, f->buf, sizeof f->buf, &len),
			 CKR_ECORRUPT);
	assert_int_equal(len, 0);
	assert_int_equal(ckr_consumer_unreleased(f->co, f->lane), t1.pos);
	read_event(f, &ev); /* the record after it is intact */
	assert_memory_equal(ev.u.message.data, "second", 6);
}

static void test_detached_lane_is_freed_after_drain(void **state)
{
	fixture *f = *state;
	size_t len;
	ckr_client *other;
	assert_int_equal(ckr_consumer_open(f->name, &f->co), 0);
	uint32_t lane = 1 - f->lane;
	assert_int_equal(ckr_client_attach(f->name, NULL, &other), 0); /* the other lane */
	ckr_client_detach(other);
	/* Both lanes are held (one live, one detached): no lane is free. */
	assert_int_equal(ckr_client_attach(f->name, NULL, &other), -EUSERS);
	/* The first empty read takes the verdict (the tenure is gone); a read
	 * after it finds the lane drained under that verdict (C0). */
	assert_int_equal(ckr_consumer_read(f->co, lane, f->buf, sizeof f->buf, &len), -ENODATA);
	assert_int_equal(ckr_consumer_read(f->co, lane, f->buf, sizeof f->buf, &len), -ENODATA);
	assert_int_equal(ckr_consumer_release(f->co, lane), 0);
	assert_int_equal(ckr_client_attach(f->name, NULL, &other), 0);
	ckr_client_detach(other);
}

static void test_bad_arguments(void **state)
{
	fixture *f = *state;
	size_t len;
	assert_int_equal(ckr_consumer_open(NULL, &f->co), -EINVAL);
	assert_int_equal(ckr_consumer_open("no-such-segment-here", &f->co), -ENOENT);
	assert_int_equal(ckr_consumer_open(f->name, &f->co), 0);
	assert_int_equal(ckr_consumer_read(f->co, 2, f->buf, sizeof f->buf, &len), -EINVAL);
	assert_int_equal(ckr_consumer_release(f->co, 2), -EINVAL);
	assert_int_equal(ckr_consumer_read(NULL, 0, f->buf, sizeof f->buf, &len), -EINVAL);
	assert_int_equal(ckr_consumer_unreleased(f->co, 7), 0);
	assert_true(ckr_consumer_buf_size(f->co) > ckr_consumer_max_payload(f->co));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reads_what_was_pushed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_buffer_is_emsgsize_and_consumes_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_frees_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_beside_a_flusher, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_record_reported_and_skipped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_detached_lane_is_freed_after_drain, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
