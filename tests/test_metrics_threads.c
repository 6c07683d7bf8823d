/*
 * test_metrics_threads.c — ckr_flusher_metrics_get() from another thread
 * while ckr_flusher_run() drains in this process (the metrics exporter's
 * situation), so ThreadSanitizer (`make tsan`) checks the single-writer
 * atomics of persist/flusher_metrics.h; and every value a reader sees only
 * grows (what Prometheus counters need).
 */
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckring_store.h"
#include "tests/helpers/testutil.h"
#include "tests/helpers/tu_flusher.h"

/* The engine's stop flag, set by a signal handler in the engine's own
 * thread (what ckring-flusher does), not by a store from another thread. */
static volatile int stop_flag;

static void on_usr1(int sig)
{
	(void)sig;
	stop_flag = 1;
}

typedef struct shared {
	ckr_flusher *f;
	volatile int readers_stop;
	uint64_t reads, regressions;
} shared;

static void *engine(void *arg)
{
	shared *sh = arg;
	return (void *)(intptr_t)ckr_flusher_run(sh->f, &stop_flag);
}

static void *reader(void *arg)
{
	shared *sh = arg;
	ckr_flusher_metrics prev, m;
	memset(&prev, 0, sizeof prev);
	while (!__atomic_load_n(&sh->readers_stop, __ATOMIC_ACQUIRE)) {
		ckr_flusher_metrics_get(sh->f, &m);
		if (m.stored < prev.stored || m.batches < prev.batches ||
		    m.commit_seconds.total < prev.commit_seconds.total ||
		    m.batch_events.total < prev.batch_events.total)
			sh->regressions++;
		prev = m;
		sh->reads++;
	}
	return NULL;
}

static void test_metrics_read_while_the_engine_runs(void **state)
{
	(void)state;
	const char *seg = tu_segname("mth");
	char *db = tu_tmpdir("mth");
	ckr_flusher_opts o = { .segment = seg, .db_dir = db, .create = true,
			       .sync = CKR_SYNC_NONE,
			       .seg = { .size = tu_seg_size(2, 1 << 20), .lanes = 2,
					.group = (gid_t)-1 } };
	shared sh = { 0 };
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1; /* no SA_RESTART: the engine's sleep ends */
	sigaction(SIGUSR1, &sa, NULL);
	assert_int_equal(ckr_flusher_open(&o, &sh.f), 0);
	pthread_t e, r;
	assert_int_equal(pthread_create(&e, NULL, engine, &sh), 0);
	assert_int_equal(pthread_create(&r, NULL, reader, &sh), 0);
	ckr_client *c;
	assert_int_equal(ckr_client_attach(seg, NULL, &c), 0);
	ckr_ticket t;
	ckr_run *run = tu_begin(c, "mt", CKR_KIND_SINGLE_LOOP, &t);
	t = tu_push_msgs(run, 0, 2000);
	assert_int_equal(ckr_wait(c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS), 0);
	ckr_run_close(run);
	ckr_client_detach(c);
	pthread_kill(e, SIGUSR1);
	void *rc;
	pthread_join(e, &rc);
	assert_int_equal((intptr_t)rc, 0);
	__atomic_store_n(&sh.readers_stop, 1, __ATOMIC_RELEASE);
	pthread_join(r, NULL);
	ckr_flusher_metrics m;
	ckr_flusher_metrics_get(sh.f, &m);
	assert_int_equal(m.stored, 2001);
	assert_int_equal(sh.regressions, 0);
	assert_true(sh.reads > 0);
	ckr_flusher_close(sh.f);
	ckr_segment_unlink(seg);
	tu_rmrf(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_read_while_the_engine_runs),
	};
	return cmocka_run_group_tests_name("metrics-threads", tests, NULL, NULL);
}
