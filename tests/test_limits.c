/*
 * test_limits.c — issue 12.5: the host's resource limits, each a clear,
 * distinct error in one line, with nothing left behind:
 *   - more producer processes than lanes: "no free lane" (-EUSERS) from the
 *     library, ckring-load and ckring-inspect segment (text and JSON);
 *   - a full /dev/shm when the flusher creates its segment (a 1 MiB tmpfs
 *     on /dev/shm in a private mount namespace): ENOSPC in one line, no
 *     object (not even the temporary one) left;
 *   - the store on a read-only file system: the flusher says so (EROFS, not
 *     "Permission denied") in one line and creates no segment; the store
 *     still reads;
 *   - the descriptor limit reached at attach (RLIMIT_NOFILE in the child,
 *     with no descriptor left, and with one left, which attach needs two
 *     of): -EMFILE, and the tools say so in one line.
 * Mount namespaces need root: those cases skip, saying why, elsewhere.
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
#include <dirent.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckring_store.h"
#include "tests/helpers/testutil.h"
#include "tests/helpers/tu_host.h"

#define SKIP_CODE 77

typedef struct fixture {
	const char *seg;
	char *db, *dir;
	pid_t flusher;
	char out[300], err[300];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->seg = tu_segname("lim");
	f->db = tu_tmpdir("lim-db");
	f->dir = tu_tmpdir("lim-out");
	snprintf(f->out, sizeof f->out, "%s/out", f->dir);
	snprintf(f->err, sizeof f->err, "%s/err", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	if (f->flusher > 0) {
		kill(f->flusher, SIGKILL);
		tu_wait_child(f->flusher, TU_TIMEOUT_MS);
	}
	ckr_segment_unlink(f->seg);
	tu_rmrf(f->db);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* Run argv; expect exit `code` and exactly one line on stderr containing
 * phrase (when not NULL); the line is printed. */
static void expect_tool(fixture *f, const char *const *argv, int code, const char *phrase)
{
	int got = tu_run(argv, f->out, f->err);
	char *err = tu_slurp(f->err);
	fprintf(stderr, "%s: exit %d: %s", argv[0], got, err);
	assert_int_equal(got, code);
	if (phrase) {
		assert_int_equal(tu_lines(err), 1);
		assert_non_null(strstr(err, phrase));
	}
	free(err);
}

/* A child in a private mount namespace (mounts vanish with it); SKIP_CODE
 * when the machine does not allow one. */
static bool private_mounts(void)
{
	return unshare(CLONE_NEWNS) == 0 &&
	       mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
}

static int child_code(pid_t pid, const char *what)
{
	int code = tu_exit_code(pid);
	if (code == SKIP_CODE) {
		fprintf(stderr, "skipped: %s needs a private mount namespace "
			"(unshare(CLONE_NEWNS) and mount(2): root)\n", what);
		skip();
	}
	return code;
}

/* ---- more producers than lanes ----------------------------------------- */

static void test_no_free_lane(void **state)
{
	fixture *f = *state;
	const char *const args[] = { "--create", "--size", "262144", "--lanes", "2",
				     "--idle-max-us", "200", NULL };
	f->flusher = tu_flusher_spawn(f->seg, f->db, NULL, args);
	assert_true(f->flusher > 0);
	ckr_client *a, *b, *c;
	assert_int_equal(ckr_client_attach(f->seg, NULL, &a), 0);
	assert_int_equal(ckr_client_attach(f->seg, NULL, &b), 0);
	int rc = ckr_client_attach(f->seg, NULL, &c);
	assert_int_equal(rc, -EUSERS);
	assert_non_null(strstr(ckr_strerror(rc), "no free lane"));

	const char *load[] = { tu_tool("ckring-load", false), "--segment", f->seg, "--procs",
			       "1", "--threads", "1", "--runs", "1", "--events", "1",
			       "--size", "16", NULL };
	expect_tool(f, load, 1, "no free lane");
	const char *inspect[] = { tu_tool("ckring-inspect", false), "segment", f->seg, NULL };
	expect_tool(f, inspect, 0, NULL);
	char *out = tu_slurp(f->out);
	assert_non_null(strstr(out, "no free lane"));
	free(out);
	const char *json[] = { tu_tool("ckring-inspect", false), "segment", f->seg, "--json",
			       NULL };
	expect_tool(f, json, 0, NULL);
	out = tu_slurp(f->out);
	assert_non_null(strstr(out, "\"lanes_free\": 0"));
	free(out);

	/* A lane given back is free again once the flusher drained it. */
	ckr_client_detach(b);
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while ((rc = ckr_client_attach(f->seg, NULL, &c)) == -EUSERS && tu_now_ms() < deadline)
		sched_yield();
	assert_int_equal(rc, 0);
	ckr_client_detach(c);
	ckr_client_detach(a);
}

/* ---- a full /dev/shm --------------------------------------------------- */

static bool shm_empty(void)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	bool empty = true;
	while (d && (e = readdir(d)))
		empty = empty && (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0);
	if (d)
		closedir(d);
	return empty;
}

static int full_shm_scenario(fixture *f)
{
	if (!private_mounts() || mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=1m") != 0)
		return SKIP_CODE;
	ckr_segment_opts o = { .size = 8 << 20, .lanes = 2, .group = (gid_t)-1 };
	if (ckr_segment_create(f->seg, &o) != -ENOSPC || !shm_empty())
		return 1;
	const char *argv[] = { tu_tool("ckring-flusher", false), "--segment", f->seg, "--db",
			       f->db, "--create", "--size", "8388608", NULL };
	int code = tu_run(argv, NULL, f->err);
	if (code != 1)
		return 2;
	return shm_empty() ? 0 : 3;
}

static void test_full_dev_shm_at_create(void **state)
{
	fixture *f = *state;
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(full_shm_scenario(f));
	int code = child_code(pid, "a full /dev/shm");
	char *err = tu_slurp(f->err);
	fprintf(stderr, "scenario %d; flusher: %s", code, err);
	assert_int_equal(code, 0);
	assert_int_equal(tu_lines(err), 1);
	assert_non_null(strstr(err, "segment: No space left on device (/dev/shm is full "
				    "or smaller than --size)"));
	free(err);
}

/* ---- the store on a read-only file system ------------------------------ */

static int ro_store_scenario(fixture *f, const char *mnt)
{
	if (!private_mounts() || mount("tmpfs", mnt, "tmpfs", 0, "size=4m,mode=0700") != 0)
		return SKIP_CODE;
	const char *const args[] = { "--create", "--size", "262144", "--lanes", "2", NULL };
	pid_t fl = tu_flusher_spawn(f->seg, mnt, NULL, args);
	if (fl < 0 || kill(fl, SIGTERM) || tu_exit_code(fl) != 0)
		return 1; /* a store is made there first */
	ckr_segment_unlink(f->seg);
	if (mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0)
		return 2;
	const char *argv[] = { tu_tool("ckring-flusher", false), "--segment", f->seg, "--db",
			       mnt, "--create", NULL };
	if (tu_run(argv, NULL, f->err) != 1)
		return 3;
	if (ckr_segment_unlink(f->seg) != -ENOENT)
		return 4; /* nothing was created */
	ckr_store *s;
	if (ckr_store_open(mnt, NULL, &s) != -EROFS)
		return 5; /* a recoverer: read-only file system, too */
	const char *inspect[] = { tu_tool("ckring-inspect", false), "db", mnt, NULL };
	return tu_run(inspect, f->out, NULL) == 0 ? 0 : 6; /* it still reads */
}

static void test_store_on_read_only_file_system(void **state)
{
	fixture *f = *state;
	char *mnt = tu_tmpdir("lim-ro");
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(ro_store_scenario(f, mnt));
	int code = child_code(pid, "a read-only file system");
	tu_rmrf(mnt);
	char *err = tu_slurp(f->err);
	fprintf(stderr, "scenario %d; flusher: %s", code, err);
	assert_int_equal(code, 0);
	assert_int_equal(tu_lines(err), 1);
	assert_non_null(strstr(err, "store: Read-only file system"));
	free(err);
}

/* ---- the descriptor limit ---------------------------------------------- */

/* Descriptors open in this process (probed: needs none of its own). */
static int open_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

/* Leave exactly `spare` descriptors below the limit: fill the holes below
 * the highest open one, then set RLIMIT_NOFILE just above it. */
static int limit_fds(int spare)
{
	int highest = -1;
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			highest = fd;
	for (int fd = 0; fd < highest; fd++)
		if (fcntl(fd, F_GETFD) < 0 && dup2(2, fd) < 0)
			return -1;
	struct rlimit r = { (rlim_t)(highest + 1 + spare), (rlim_t)(highest + 1 + spare) };
	return setrlimit(RLIMIT_NOFILE, &r);
}

/* Run a tool with only stdin, stdout, stderr open and RLIMIT_NOFILE at
 * nofile; expect exit 1 and the phrase in one line on stderr. */
static void expect_limited(fixture *f, const char *const *argv, int nofile,
			   const char *phrase)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int out = open(f->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err = open(f->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(126);
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		struct rlimit r = { (rlim_t)nofile, (rlim_t)nofile };
		if (setrlimit(RLIMIT_NOFILE, &r) != 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	int code = tu_exit_code(pid);
	char *text = tu_slurp(f->err);
	fprintf(stderr, "%s (ulimit -n %d): exit %d: %s", argv[0], nofile, code, text);
	assert_int_equal(code, 1);
	assert_int_equal(tu_lines(text), 1);
	assert_non_null(strstr(text, phrase));
	free(text);
}

static void test_descriptor_limit_at_attach(void **state)
{
	fixture *f = *state;
	const char *const args[] = { "--create", "--size", "262144", "--lanes", "2",
				     "--idle-max-us", "200", NULL };
	f->flusher = tu_flusher_spawn(f->seg, f->db, NULL, args);
	assert_true(f->flusher > 0);
	/* No descriptor left, then one (an attach needs two: its mapping's
	 * and its locks'): -EMFILE, and nothing stays open or attached. */
	for (int spare = 0; spare <= 1; spare++) {
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			ckr_client *c;
			if (limit_fds(spare) != 0)
				_exit(10);
			int before = open_fds();
			int rc = ckr_client_attach(f->seg, NULL, &c);
			if (rc != -EMFILE)
				_exit(11);
			if (open_fds() != before)
				_exit(12);
			_exit(strstr(ckr_strerror(rc), "ulimit -n") ? 0 : 13);
		}
		assert_int_equal(tu_exit_code(pid), 0);
	}
	/* ckring-load with one descriptor to spare after the dynamic loader's:
	 * its check of the segment fits, its producer's attach does not. */
	const char *load[] = { tu_tool("ckring-load", false), "--segment", f->seg, "--procs",
			       "1", "--threads", "1", "--runs", "1", "--events", "1",
			       "--size", "16", NULL };
	expect_limited(f, load, 4, "ckring-load: attach");
	char *text = tu_slurp(f->err);
	assert_non_null(strstr(text, "too many open files: this process reached its "
				     "descriptor limit (ulimit -n)"));
	free(text);
	/* Nothing of those attempts holds a lane: both lanes attach. */
	ckr_client *a, *b;
	assert_int_equal(ckr_client_attach(f->seg, NULL, &a), 0);
	assert_int_equal(ckr_client_attach(f->seg, NULL, &b), 0);
	ckr_client_detach(a);
	ckr_client_detach(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_free_lane, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_dev_shm_at_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_on_read_only_file_system, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_descriptor_limit_at_attach, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
