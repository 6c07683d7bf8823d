/*
 * test_client_threads.c — one run handle shared by several threads: sequence
 * numbers are unique and gap-free, every event lands; run under TSan.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckring.h"
#include "client/client.h"
#include "event/event.h"
#include "ring/lane.h"
#include "tests/helpers/testutil.h"

#define THREADS 4

typedef struct shared {
	ckr_run *run;
	int per_thread;
	_Atomic int done;
} shared;

static void *pusher(void *arg)
{
	shared *s = arg;
	for (int i = 0; i < s->per_thread; i++) {
		int rc;
		while ((rc = ckr_run_message(s->run, &i, sizeof i, NULL)) == -EAGAIN)
			sched_yield();
		if (rc)
			abort();
	}
	atomic_fetch_add(&s->done, 1);
	return NULL;
}

static void test_shared_run_sequence_unique_and_complete(void **state)
{
	(void)state;
	const char *name = tu_segname("thr");
	ckr_segment_opts o = { .lanes = 2, .size = 1 << 17, .group = (gid_t)-1 };
	ckr_client *c;
	assert_int_equal(ckr_segment_create(name, &o), 0);
	assert_int_equal(ckr_client_attach(name, NULL, &c), 0);
	/* The consumer uses the client's own mapping: ThreadSanitizer tracks
	 * synchronisation by address, so a second mapping of the same memory
	 * would hide the acquire/release pairs from it. */
	const ckr_segment *seg = ckr_client_segment(c);
	ckr_run_spec spec = { .id = "shared", .id_len = 6, .kind = CKR_KIND_SINGLE_LOOP };
	shared s = { .per_thread = 2000 };
	assert_int_equal(ckr_run_begin(c, &spec, &s.run, NULL), 0);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, pusher, &s);

	uint64_t total = (uint64_t)THREADS * s.per_thread + 1, got = 0, pos = 0;
	uint8_t *seen = calloc(total, 1);
	static uint8_t buf[1 << 16];
	ckr_lane l;
	ckr_lane_view(seg, ckr_client_lane(c), &l);
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (got < total && tu_now_ms() < deadline) {
		ckr_lane_record rec;
		ckr_lane_read(&l, pos, false, buf, sizeof buf, &rec);
		if (rec.status != CKR_READ_RECORD) {
			assert_true(rec.status == CKR_READ_EMPTY || rec.status == CKR_READ_WAIT);
			ckr_lane_release(&l, pos, pos);
			sched_yield();
			continue;
		}
		ckr_event ev;
		assert_int_equal(ckr_event_decode(buf, rec.payload_len, &ev), 0);
		assert_true(ev.seq < total);
		assert_int_equal(seen[ev.seq], 0); /* never twice */
		seen[ev.seq] = 1;
		got++;
		pos = rec.next;
	}
	assert_int_equal(got, total);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(ckr_run_next_seq(s.run), total);
	free(seen);
	ckr_run_close(s.run);
	ckr_client_detach(c);
	ckr_segment_unlink(name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_run_sequence_unique_and_complete),
	};
	return cmocka_run_group_tests_name("client_threads", tests, NULL, NULL);
}
