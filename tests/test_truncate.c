/*
 * test_truncate.c — issue 12.2: a segment that shrinks under its readers.
 *
 * Any process with write access can ftruncate() the segment, and tmpfs can
 * run out of pages; a reader that touches a lost page gets SIGBUS. The first
 * round's flusher died of it (exit 135) and a restart refused the segment
 * with no word on what to do. Now:
 *   - the flusher, truncated while it drains (its lanes' records cut, or the
 *     whole object), exits 1 with ONE line that says so, and every event it
 *     committed is in the store, byte-exact and gap-free;
 *   - a truncation that no read hit yet is noticed by the size (checked
 *     every second): the same line, exit 1;
 *   - a page tmpfs cannot supply (a hole in a full /dev/shm, in a private
 *     mount namespace) is survived the same way;
 *   - a restart refuses the truncated segment in one line that says what to
 *     do; the host's recovery path goes on: attach refuses the segment
 *     (CKR_ETRUNC, no SIGBUS), the store lists the run, and once a new
 *     segment is made the run is claimable with all its committed events;
 *   - ckring-inspect --watch, truncated between two frames, exits 1 in one
 *     line.
 * Producers run in child processes: a push into a cut lane kills its
 * process with SIGBUS, which is expected (the push path is not guarded).
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckring_store.h"
#include "shm/segment.h"
#include "tests/helpers/testutil.h"
#include "tests/helpers/tu_host.h"

typedef struct fixture {
	const char *seg;
	char *db, *dir;
	char err[300];   /* the flusher's stderr */
	pid_t flusher, producer;
	int from_producer;
} fixture;

static const char *const FLUSHER_ARGS[] = { "--create", "--size", "1048576", "--lanes",
					    "4", "--idle-max-us", "200", NULL };

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->seg = tu_segname("trunc");
	f->db = tu_tmpdir("trunc-db");
	f->dir = tu_tmpdir("trunc-out");
	snprintf(f->err, sizeof f->err, "%s/flusher.err", f->dir);
	f->from_producer = -1;
	unsetenv("CKR_FLUSHER_SIZE_CHECK_MS");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	if (f->producer > 0) {
		kill(f->producer, SIGKILL);
		tu_wait_child(f->producer, TU_TIMEOUT_MS);
	}
	if (f->flusher > 0) {
		kill(f->flusher, SIGKILL);
		tu_wait_child(f->flusher, TU_TIMEOUT_MS);
	}
	if (f->from_producer >= 0)
		close(f->from_producer);
	ckr_segment_unlink(f->seg);
	tu_rmrf(f->db);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static void message(char *buf, size_t n, uint64_t seq)
{
	snprintf(buf, n, "m%07llu", (unsigned long long)seq);
}

/* The producer child: run `id`, messages "m0000001", ... forever; after
 * every 32nd it waits until they are committed and reports the count. */
static void producer_main(const char *seg, const char *id, int to_parent)
{
	ckr_client *c;
	ckr_run *r;
	ckr_ticket t;
	char msg[24];
	/* A push into a cut lane kills us: with the default action, not with
	 * cmocka's handler (which would go on running tests in this child). */
	signal(SIGBUS, SIG_DFL);
	if (ckr_client_attach(seg, NULL, &c))
		_exit(20);
	ckr_run_spec s = { .id = id, .id_len = strlen(id), .kind = CKR_KIND_SINGLE_LOOP };
	if (ckr_run_begin(c, &s, &r, NULL))
		_exit(21);
	for (uint64_t seq = 1;; seq++) {
		int rc;
		message(msg, sizeof msg, seq);
		while ((rc = ckr_run_message(r, msg, 8, &t)) == -EAGAIN)
			sched_yield();
		if (rc)
			_exit(22);
		if (seq % 32 == 0) {
			if (ckr_wait(c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS) != 0)
				_exit(23);
			if (write(to_parent, &seq, sizeof seq) != sizeof seq)
				_exit(24);
		}
	}
}

static void start(fixture *f)
{
	int p[2];
	f->flusher = tu_flusher_spawn(f->seg, f->db, f->err, FLUSHER_ARGS);
	assert_true(f->flusher > 0);
	assert_int_equal(pipe(p), 0);
	f->producer = fork();
	assert_true(f->producer >= 0);
	if (f->producer == 0) {
		close(p[0]);
		producer_main(f->seg, "job-t", p[1]);
	}
	close(p[1]);
	f->from_producer = p[0];
}

/* Wait until the producer reports at least n committed messages; the count
 * it reported last. */
static uint64_t committed_at_least(fixture *f, uint64_t n)
{
	uint64_t got = 0;
	while (got < n)
		assert_int_equal(tu_read_full(f->from_producer, &got, sizeof got,
					      TU_TIMEOUT_MS), 0);
	return got;
}

static void truncate_segment(const fixture *f, off_t size)
{
	char path[256];
	tu_shm_path(f->seg, path, sizeof path);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

/* The geometry of the live segment (read-only attach). */
static ckr_segment geometry(const fixture *f)
{
	ckr_segment s;
	assert_int_equal(ckr_segment_attach(f->seg, true, &s), 0);
	ckr_segment g = s;
	ckr_segment_detach(&s);
	return g;
}

/* The flusher exits 1 with one line on stderr containing each of the
 * NULL-ended phrases. */
static void expect_flusher_line(fixture *f, const char *const *phrases)
{
	int code = tu_exit_code(f->flusher);
	f->flusher = 0;
	char *err = tu_slurp(f->err);
	fprintf(stderr, "flusher exit %d: %s", code, err);
	assert_int_equal(code, 1);
	assert_int_equal(tu_lines(err), 1);
	for (int i = 0; phrases[i]; i++)
		assert_non_null(strstr(err, phrases[i]));
	free(err);
}

/* Every committed message (at least n) is stored, in order, byte-exact. */
static void expect_stored(const char *db, const char *id, uint64_t n)
{
	ckr_store *s;
	ckr_store_opts o = { .read_only = true };
	ckr_resume *rs;
	char want[24];
	assert_int_equal(ckr_store_open(db, &o, &s), 0);
	assert_int_equal(ckr_store_resume(s, id, strlen(id), &rs), 0);
	assert_true(rs->n_history >= n);
	assert_int_equal(rs->n_gaps, 0);
	for (size_t i = 0; i < rs->n_history; i++) {
		message(want, sizeof want, i + 1);
		assert_int_equal(rs->history[i].seq, i + 1);
		assert_int_equal(rs->history[i].size, 8);
		assert_memory_equal(rs->history[i].data, want, 8);
	}
	ckr_resume_free(rs);
	ckr_store_close(s);
}

static void reap_producer(fixture *f)
{
	kill(f->producer, SIGKILL); /* it may have died of SIGBUS already */
	tu_wait_child(f->producer, TU_TIMEOUT_MS);
	f->producer = 0;
}

/* ---- the flusher ------------------------------------------------------ */

static void test_records_cut_while_draining(void **state)
{
	fixture *f = *state;
	setenv("CKR_FLUSHER_SIZE_CHECK_MS", "0", 1); /* only a SIGBUS can tell */
	start(f);
	ckr_segment g = geometry(f);
	uint64_t n = committed_at_least(f, 2000);
	truncate_segment(f, (off_t)g.data_offset); /* every lane's records */
	const char *const want[] = { "segment '", "was truncated under the flusher",
				     "SIGBUS reading lane", "records", "stopped",
				     "are kept in", NULL };
	expect_flusher_line(f, want);
	reap_producer(f);
	expect_stored(f->db, "job-t", n);
}

static void test_whole_segment_cut_while_draining(void **state)
{
	fixture *f = *state;
	setenv("CKR_FLUSHER_SIZE_CHECK_MS", "0", 1);
	start(f);
	uint64_t n = committed_at_least(f, 2000);
	truncate_segment(f, 0);
	const char *const want[] = { "was truncated under the flusher (now 0 of",
				     "SIGBUS reading", "stopped", NULL };
	expect_flusher_line(f, want);
	reap_producer(f);
	expect_stored(f->db, "job-t", n);
}

/* Nothing reads the cut page (the last of the last lane, idle): the size
 * check still notices. */
static void test_truncation_no_read_hit_is_noticed(void **state)
{
	fixture *f = *state;
	start(f);
	uint64_t n = committed_at_least(f, 64);
	reap_producer(f); /* the ring is idle now (what it committed is stored) */
	ckr_segment g = geometry(f);
	truncate_segment(f, (off_t)(g.size - 4096));
	const char *const want[] = { "was truncated under the flusher", "stopped", NULL };
	expect_flusher_line(f, want);
	expect_stored(f->db, "job-t", n);
}

/* After the flusher stopped: a restart says what to do; the host's recovery
 * path works without touching the lost pages. */
static void test_restart_and_recovery_after_truncation(void **state)
{
	fixture *f = *state;
	start(f);
	uint64_t n = committed_at_least(f, 500);
	truncate_segment(f, 100000);
	const char *const want[] = { "was truncated under the flusher", NULL };
	expect_flusher_line(f, want);
	reap_producer(f);

	const char *argv[] = { tu_tool("ckring-flusher", false), "--segment", f->seg, "--db",
			       f->db, "--create", NULL };
	char err2[320];
	snprintf(err2, sizeof err2, "%s/restart.err", f->dir);
	assert_int_equal(tu_run(argv, NULL, err2), 1);
	char *text = tu_slurp(err2);
	fprintf(stderr, "restart: %s", text);
	assert_int_equal(tu_lines(text), 1);
	assert_non_null(strstr(text, "truncated"));
	assert_non_null(strstr(text, "remove it (rm /dev/shm/"));
	assert_non_null(strstr(text, ") and start again with --create"));
	free(text);

	ckr_client *c;
	assert_int_equal(ckr_client_attach(f->seg, NULL, &c), CKR_ETRUNC);
	ckr_store *s;
	ckr_run_info *runs;
	size_t nr;
	ckr_claim cl;
	assert_int_equal(ckr_store_open(f->db, NULL, &s), 0);
	assert_int_equal(ckr_store_list(s, CKR_LIST_INTERRUPTED, &runs, &nr), 0);
	assert_int_equal(nr, 1);
	free(runs);
	/* The ring is gone with its segment; a new one retires its epoch. */
	assert_int_equal(ckr_segment_unlink(f->seg), 0);
	f->flusher = tu_flusher_spawn(f->seg, f->db, f->err, FLUSHER_ARGS);
	assert_true(f->flusher > 0);
	assert_int_equal(ckr_store_claim(s, "job-t", 5, &cl), 0);
	assert_true(cl.next_seq >= n + 1);
	ckr_store_close(s);
	expect_stored(f->db, "job-t", n);
}

/* tmpfs out of pages: a hole in the lane the flusher is about to read, and
 * a /dev/shm that is full (a private mount namespace with a 1 MiB tmpfs on
 * /dev/shm). The whole scenario runs in a child; its exit code says how it
 * went. */
enum { NS_OK = 0, NS_SKIP = 77 };

static int ns_scenario(fixture *f)
{
	signal(SIGBUS, SIG_DFL); /* not cmocka's handler, in this child */
	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=1m") != 0)
		return NS_SKIP;
	const char *const args[] = { "--create", "--size", "262144", "--lanes", "2",
				     "--idle-max-us", "200", NULL };
	pid_t fl = tu_flusher_spawn(f->seg, f->db, f->err, args);
	ckr_client *c;
	ckr_run *r;
	ckr_ticket t;
	char msg[24];
	ckr_segment g;
	if (fl < 0 || ckr_client_attach(f->seg, NULL, &c) || ckr_segment_attach(f->seg, true, &g))
		return 1;
	ckr_run_spec s = { .id = "job-t", .id_len = 5, .kind = CKR_KIND_SINGLE_LOOP };
	if (ckr_run_begin(c, &s, &r, NULL))
		return 2;
	for (uint64_t seq = 1; seq <= 100; seq++) {
		message(msg, sizeof msg, seq);
		if (ckr_run_message(r, msg, 8, &t))
			return 3;
	}
	if (ckr_wait(c, &t, CKR_LEVEL_COMMITTED, TU_TIMEOUT_MS))
		return 4;
	/* Stop the flusher, push more, then take the pages away under it. */
	if (kill(fl, SIGSTOP) || !tu_wait_stopped(fl, TU_TIMEOUT_MS))
		return 5;
	for (uint64_t seq = 101; seq <= 400; seq++) {
		message(msg, sizeof msg, seq);
		if (ckr_run_message(r, msg, 8, &t))
			return 6;
	}
	char path[256];
	tu_shm_path(f->seg, path, sizeof path);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	uint64_t lane0 = g.data_offset + (uint64_t)t.lane * g.lane_capacity;
	if (fd < 0 || fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)lane0, (off_t)g.lane_capacity) != 0)
		return 7;
	close(fd);
	fd = open("/dev/shm/filler", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	static char page[4096];
	while (fd >= 0 && write(fd, page, sizeof page) == (ssize_t)sizeof page)
		;
	if (fd < 0 || errno != ENOSPC)
		return 8;
	close(fd);
	kill(fl, SIGCONT);
	int st = tu_wait_child(fl, TU_TIMEOUT_MS);
	return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1 ? NS_OK : 9;
}

static void test_tmpfs_out_of_pages(void **state)
{
	fixture *f = *state;
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(ns_scenario(f));
	int code = tu_exit_code(pid);
	if (code == NS_SKIP) {
		fprintf(stderr, "skipped: no private mount namespace with a tmpfs on "
			"/dev/shm here (needs root and unshare(CLONE_NEWNS))\n");
		skip();
	}
	char *err = tu_slurp(f->err);
	fprintf(stderr, "scenario %d; flusher: %s", code, err);
	assert_int_equal(code, NS_OK);
	assert_int_equal(tu_lines(err), 1);
	assert_non_null(strstr(err, "lost a page under the flusher"));
	assert_non_null(strstr(err, "SIGBUS reading lane"));
	free(err);
	expect_stored(f->db, "job-t", 100);
}

/* ---- the inspector ---------------------------------------------------- */

static void test_inspector_watch_truncated_between_frames(void **state)
{
	fixture *f = *state;
	f->flusher = tu_flusher_spawn(f->seg, f->db, f->err, FLUSHER_ARGS);
	assert_true(f->flusher > 0);
	char out[320], err[320];
	snprintf(out, sizeof out, "%s/watch.out", f->dir);
	snprintf(err, sizeof err, "%s/watch.err", f->dir);
	const char *argv[] = { tu_tool("ckring-inspect", false), "segment", f->seg, "--watch",
			       NULL };
	pid_t pid = tu_spawn(argv, out, err, NULL);
	/* The first frame is out (an event: its text in the file). */
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	for (;;) {
		char *text = tu_slurp(out);
		bool framed = tu_lines(text) >= 2 && text[strlen(text) - 1] == '\n';
		free(text);
		if (framed)
			break;
		assert_true(tu_now_ms() < deadline);
		sched_yield();
	}
	truncate_segment(f, 0);
	assert_int_equal(tu_exit_code(pid), 1);
	char *text = tu_slurp(err);
	fprintf(stderr, "inspect: %s", text);
	assert_int_equal(tu_lines(text), 1);
	assert_non_null(strstr(text, "truncated while being read (SIGBUS)"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_records_cut_while_draining, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whole_segment_cut_while_draining, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_truncation_no_read_hit_is_noticed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_restart_and_recovery_after_truncation,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmpfs_out_of_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inspector_watch_truncated_between_frames,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
