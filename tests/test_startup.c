/*
 * test_startup.c — issue 12.1, the start-up race: `ckring-flusher --create`
 * and executors started at the same moment, 200 times back to back.
 *
 * Each race opens one gate for three children at once: the flusher (which
 * creates the segment), `ckring-load` (which must wait for the segment and
 * never see a half-made one) and a tiny client in this test's code that
 * calls ckr_client_attach() in a loop for as long as the segment does not
 * exist. Neither may ever get "not a ckring segment": the first round made
 * the object under its name before its header was written, so an attacher
 * racing the creation saw an empty object (CKR_ENOTSEG) about 2 times in 5.
 * The load must exit 0 every time (it waits for a missing segment:
 * --wait-ms, default 5 s), the client must attach, the flusher must exit 0
 * on SIGTERM having stored the load's and the client's events.
 */
#include <errno.h>
#include <sched.h>
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

#include "ckring_store.h"
#include "tests/helpers/testutil.h"
#include "tests/helpers/tu_host.h"

#define RACES 200

/* What the tiny client saw, as its exit code. */
enum { CLIENT_OK = 0, CLIENT_NOTSEG = 10, CLIENT_TIMEOUT = 11, CLIENT_OTHER = 12 };

/* The tiny client: attach as soon as the segment exists, push one run. */
static int tiny_client(const char *seg, int race)
{
	ckr_client *c = NULL;
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	int rc;
	while ((rc = ckr_client_attach(seg, NULL, &c)) == -ENOENT) {
		if (tu_now_ms() > deadline)
			return CLIENT_TIMEOUT;
		sched_yield();
	}
	if (rc == CKR_ENOTSEG)
		return CLIENT_NOTSEG;
	if (rc) {
		fprintf(stderr, "tiny client: attach: %s\n", ckr_strerror(rc));
		return CLIENT_OTHER;
	}
	char id[32];
	snprintf(id, sizeof id, "tiny-%d", race);
	ckr_run_spec s = { .id = id, .id_len = strlen(id), .kind = CKR_KIND_SINGLE_LOOP };
	ckr_run *r;
	while ((rc = ckr_run_begin(c, &s, &r, NULL)) == -EAGAIN)
		sched_yield();
	if (rc == 0) {
		while ((rc = ckr_run_message(r, "hello", 5, NULL)) == -EAGAIN)
			sched_yield();
		ckr_run_close(r);
	}
	ckr_client_detach(c);
	return rc ? CLIENT_OTHER : CLIENT_OK;
}

typedef struct tally {
	int load_failed, load_notseg, client_notseg, client_other, flusher_failed;
	char first_error[512];
} tally;

static void note_error(tally *t, const char *what, const char *text)
{
	if (!t->first_error[0])
		snprintf(t->first_error, sizeof t->first_error, "%s: %s", what, text);
}

static void one_race(const char *seg, const char *db, const char *dir, int race,
		     tally *t)
{
	char prefix[32], load_err[300], fl_err[300];
	snprintf(prefix, sizeof prefix, "r%d-", race);
	snprintf(load_err, sizeof load_err, "%s/load.err", dir);
	snprintf(fl_err, sizeof fl_err, "%s/flusher.err", dir);
	const char *flusher[] = { tu_tool("ckring-flusher", false), "--segment", seg,
				  "--db", db, "--create", "--size", "262144", "--lanes",
				  "4", "--sync", "none", NULL };
	const char *load[] = { tu_tool("ckring-load", false), "--segment", seg, "--procs",
			       "1", "--threads", "1", "--runs", "1", "--events", "3",
			       "--size", "32", "--prefix", prefix, NULL };
	tu_gate gate;
	tu_gate_init(&gate);
	pid_t fl = tu_spawn(flusher, NULL, fl_err, &gate);
	pid_t ld = tu_spawn(load, NULL, load_err, &gate);
	pid_t cl = fork();
	assert_true(cl >= 0);
	if (cl == 0) {
		tu_gate_wait(&gate);
		_exit(tiny_client(seg, race));
	}
	tu_gate_open(&gate);

	int load_rc = tu_exit_code(ld), client_rc = tu_exit_code(cl);
	char *text = tu_slurp(load_err);
	if (load_rc != 0) {
		t->load_failed++;
		note_error(t, "ckring-load", text);
	}
	if (strstr(text, "not a ckring segment"))
		t->load_notseg++;
	free(text);
	if (client_rc == CLIENT_NOTSEG)
		t->client_notseg++;
	else if (client_rc != CLIENT_OK)
		t->client_other++;
	kill(fl, SIGTERM);
	int fl_rc = tu_exit_code(fl);
	if (fl_rc != 0) {
		t->flusher_failed++;
		text = tu_slurp(fl_err);
		note_error(t, "ckring-flusher", text);
		free(text);
	}
	ckr_segment_unlink(seg);
}

static void test_flusher_and_executors_started_together(void **state)
{
	(void)state;
	const char *seg = tu_segname("race");
	char *db = tu_tmpdir("race-db");
	char *dir = tu_tmpdir("race-out");
	tally t = { 0 };
	int64_t t0 = tu_now_ms();
	for (int i = 0; i < RACES; i++)
		one_race(seg, db, dir, i, &t);
	fprintf(stderr, "%d races in %.1f s: ckring-load failed %d (not a segment %d), "
		"tiny client not a segment %d, other %d; flusher failed %d%s%s\n",
		RACES, (double)(tu_now_ms() - t0) / 1000, t.load_failed, t.load_notseg,
		t.client_notseg, t.client_other, t.flusher_failed,
		t.first_error[0] ? "; first error: " : "", t.first_error);
	assert_int_equal(t.client_notseg, 0);
	assert_int_equal(t.load_notseg, 0);
	assert_int_equal(t.load_failed, 0);
	assert_int_equal(t.client_other, 0);
	assert_int_equal(t.flusher_failed, 0);

	/* Every race's events landed: the load's run and the client's. */
	ckr_store *s;
	ckr_store_opts so = { .read_only = true };
	ckr_run_info *runs;
	size_t n;
	assert_int_equal(ckr_store_open(db, &so, &s), 0);
	assert_int_equal(ckr_store_list(s, CKR_LIST_ALL, &runs, &n), 0);
	assert_int_equal(n, (size_t)(2 * RACES));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(runs[i].last_seq, runs[i].id[0] == 't' ? 1 : 3);
	free(runs);
	ckr_store_close(s);
	tu_rmrf(db);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flusher_and_executors_started_together),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
