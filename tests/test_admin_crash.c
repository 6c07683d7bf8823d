/*
 * test_admin_crash.c — every operator action under a live flusher that is
 * SIGKILLed (and crashes itself at its crash points) while the actions run,
 * with the actions themselves SIGKILLed at random instants, and the crash
 * torture (tests/torture/torture.sh) running beside on its own segment.
 * Then: nothing lost, nothing half-applied.
 *
 *   - a load (ckring-load --ack-file) writes runs all along: every
 *     acknowledged message is stored, byte-exact (docs/DESIGN.md §9), and
 *     nothing at all was rejected;
 *   - runs the actions work on (l-*: interrupted, 201 rows each) are, after
 *     any number of fail / retry / export+import, killed or not, either
 *     running or failed by the operator, and still hold all 201 rows; every
 *     run imported into a second store holds all of them or does not exist;
 *   - prunes killed half-way leave runs marked "being removed" whose counts
 *     match their rows; the final prune finishes them: every failed f-* run
 *     is gone, every completed c-* run is a tombstone without rows;
 *   - in both stores: every row belongs to a record, every record's counts
 *     are its rows, no run is left being removed.
 *
 * Seeded (CKR_SEED replays); CKR_ADMIN_SECONDS (default 8) is the chaos
 * time; CKR_ADMIN_TORTURE_SECONDS (default 10, 0: none) the torture beside.
 * The long run is `make admin-torture`. Every wait is bounded; the only
 * sleeps are the random gaps between chaos actions.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "persist/store_internal.h"
#include "tests/helpers/testutil.h"
#include "tests/helpers/tu_flusher.h"

#define L_RUNS 20       /* l-p0-t{0,1}-r{0..9} */
#define L_ROWS 201      /* begin + 200 messages */
#define REASON "chaos"

static const char *seg;
static char *db, *db2, *work;
static pid_t flusher = -1;
static uint64_t rng;
static unsigned n_flusher_kills, n_action_kills, n_actions[4], n_imports;

static uint64_t rnd(void)
{
	return tu_mix64(rng++);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static const char *bin(const char *tool)
{
	static char path[4][512];
	static int k;
	const char *b = getenv("BUILD");
	char *p = path[k++ % 4];
	snprintf(p, 512, "%s/bin/%s", b && *b ? b : "build", tool);
	return p;
}

/* fork + exec argv with stdout to out (NULL: /dev/null), stderr to log. */
static pid_t spawn(const char *const *argv, const char *out)
{
	pid_t pid = fork();
	if (pid == 0) {
		char logp[600];
		snprintf(logp, sizeof logp, "%s/tools.log", work);
		int o = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (o >= 0)
			dup2(o, 1);
		if (e >= 0)
			dup2(e, 2);
		setenv("ASAN_OPTIONS", "detect_leaks=0", 1); /* see torture.c */
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static int run_tool(const char *const *argv, const char *out)
{
	int st = tu_wait_child(spawn(argv, out), TU_TIMEOUT_MS * 4);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void load(const char *prefix, const char *finish, const char *ack, pid_t *bg)
{
	const char *argv[] = { bin("ckring-load"), "--segment", seg, "--procs", "1",
			       "--threads", "2", "--runs", "10", "--events",
			       ack ? "600" : "200", "--size", "64", "--prefix", prefix,
			       "--finish", finish, ack ? "--ack-file" : NULL, ack, NULL };
	if (bg)
		*bg = spawn(argv, NULL);
	else
		assert_int_equal(run_tool(argv, NULL), 0);
}

static void flusher_start(bool crashy)
{
	static const char *extra[] = { "--keep-completed", "1h", NULL };
	char crash[64];
	snprintf(crash, sizeof crash, "%s:%u",
		 rnd() % 3 == 0 ? "mid_batch" : rnd() % 2 ? "after_commit" : "after_release",
		 (unsigned)(1 + rnd() % 40));
	flusher = tu_flusher_start(seg, db, crashy && rnd() % 3 == 0 ? crash : NULL, extra);
	assert_true(flusher > 0);
}

/* The flusher died by itself (a crash point) or is killed now and then. */
static void flusher_chaos(void)
{
	int st;
	if (waitpid(flusher, &st, WNOHANG) == flusher) {
		flusher_start(true);
		return;
	}
	if (rnd() % 4 == 0) {
		tu_flusher_kill(flusher);
		n_flusher_kills++;
		flusher_start(true);
	}
}

static void l_id(char *id, size_t n, unsigned i)
{
	snprintf(id, n, "l-p0-t%u-r%u", i / 10, i % 10);
}

/* One action as a child; killed at a random instant one time in three. */
static void action(void)
{
	char id[32], file[600];
	unsigned kind = (unsigned)(rnd() % 4), i = (unsigned)(rnd() % L_RUNS);
	l_id(id, sizeof id, i);
	snprintf(file, sizeof file, "%s/export-%u.json", work, i);
	/* Failed runs go one prune in three (an l- run failed by the operator
	 * may go with them): the others clear completed runs only. */
	bool failed_too = rnd() % 3 == 0;
	const char *prune[] = { bin("ckring-admin"), "prune", db, "--completed-older-than",
				"0s", "--txn-rows", "37", "--txn-runs", "3",
				failed_too ? "--failed-older-than" : NULL, "0s", NULL };
	const char *fail[] = { bin("ckring-admin"), "fail", db, id, "--reason", REASON, NULL };
	const char *retry[] = { bin("ckring-admin"), "retry", db, id, NULL };
	const char *exp[] = { bin("ckring-admin"), "export", db, id, NULL };
	const char *const *argv = kind == 0 ? prune : kind == 1 ? fail : kind == 2 ? retry : exp;
	pid_t pid = spawn(argv, kind == 3 ? file : NULL);
	if (rnd() % 3 == 0) {
		sleep_ms((long)(rnd() % 25));
		kill(pid, SIGKILL);
		n_action_kills++;
	}
	int st = tu_wait_child(pid, TU_TIMEOUT_MS * 4);
	assert_true(st >= 0);
	n_actions[kind]++;
	if (kind == 3 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		const char *imp[] = { bin("ckring-admin"), "import", db2, file, NULL };
		int rc = run_tool(imp, NULL); /* 0, or 1: the id exists already */
		assert_true(rc == 0 || rc == 1);
		n_imports += rc == 0;
	}
	/* A finished action answered 0 or a refusal (1), never a usage error. */
	if (WIFEXITED(st))
		assert_true(WEXITSTATUS(st) <= 1);
}

/* ---- the checks ------------------------------------------------------- */

typedef struct rows {
	uint64_t n, bytes, max_seq, aside;
} rows;

/* Count the run's rows in `events` and `set_aside`. */
static rows count_rows(MDB_txn *txn, ckr_store *s, const uint8_t *id, size_t len)
{
	rows r = { 0 };
	uint8_t kb[1 + CKR_RUN_ID_MAX];
	kb[0] = (uint8_t)len;
	memcpy(kb + 1, id, len);
	for (int db_i = 0; db_i < 2; db_i++) {
		MDB_cursor *c;
		MDB_val k = { 1 + len, kb }, v;
		assert_int_equal(mdb_cursor_open(txn, s->dbi[db_i ? CKR_DB_SET_ASIDE
								  : CKR_DB_EVENTS], &c), 0);
		for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			if (k.mv_size <= 1 + len || memcmp(k.mv_data, kb, 1 + len))
				break;
			if (db_i) {
				r.aside++;
				continue;
			}
			uint64_t seq = ckr_st_get_be64((uint8_t *)k.mv_data + 1 + len);
			r.n++;
			r.bytes += v.mv_size;
			r.max_seq = seq > r.max_seq ? seq : r.max_seq;
		}
		mdb_cursor_close(c);
	}
	return r;
}

/* Every row of db has a record. */
static void check_no_orphans(MDB_txn *txn, ckr_store *s, enum ckr_db which)
{
	MDB_cursor *c;
	MDB_val k, v;
	assert_int_equal(mdb_cursor_open(txn, s->dbi[which], &c), 0);
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const uint8_t *key = k.mv_data;
		MDB_val rk = { key[0], (void *)(key + 1) }, rv;
		if (mdb_get(txn, s->dbi[CKR_DB_RUNS], &rk, &rv) != 0)
			fail_msg("a row of run '%.*s' has no record", key[0], key + 1);
	}
	mdb_cursor_close(c);
}

/* The store is consistent; *by_prefix counts runs per first letter. */
static void check_store(const char *dir, bool removing_allowed)
{
	ckr_store *s;
	ckr_store_opts so = { .read_only = true };
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	assert_int_equal(ckr_store_open(dir, &so, &s), 0);
	assert_int_equal(ckr_st_txn_begin(s, false, &txn), 0);
	assert_int_equal(mdb_cursor_open(txn, s->dbi[CKR_DB_RUNS], &c), 0);
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		ckr_rec r;
		assert_int_equal(ckr_st_rec_decode(v.mv_data, v.mv_size, &r), 0);
		rows w = count_rows(txn, s, k.mv_data, k.mv_size);
		const char *id = k.mv_data;
		int n = (int)k.mv_size;
		if (r.events != w.n || r.bytes != w.bytes || r.set_aside != w.aside)
			fail_msg("run '%.*s': record says %llu rows / %llu bytes / %llu set "
				 "aside, the store holds %llu / %llu / %llu", n, id,
				 (unsigned long long)r.events, (unsigned long long)r.bytes,
				 (unsigned long long)r.set_aside, (unsigned long long)w.n,
				 (unsigned long long)w.bytes, (unsigned long long)w.aside);
		if (!removing_allowed && (r.flags & CKR_REC_REMOVING))
			fail_msg("run '%.*s' is still being removed", n, id);
		if (w.n && !(r.flags & (CKR_REC_CLEARED | CKR_REC_REMOVING)) &&
		    r.last_seq != w.max_seq)
			fail_msg("run '%.*s': last_seq %llu, highest row %llu", n, id,
				 (unsigned long long)r.last_seq, (unsigned long long)w.max_seq);
	}
	mdb_cursor_close(c);
	check_no_orphans(txn, s, CKR_DB_EVENTS);
	check_no_orphans(txn, s, CKR_DB_SET_ASIDE);
	ckr_st_txn_abort(s, txn);
	ckr_store_close(s);
}

/* Each l- run: running, or failed by the operator, with all its rows; or
 * gone (failed by the operator, then pruned). */
static void check_l_runs(void)
{
	ckr_store *s;
	assert_int_equal(ckr_store_open(db, NULL, &s), 0);
	for (unsigned i = 0; i < L_RUNS; i++) {
		char id[32];
		ckr_run_info in;
		l_id(id, sizeof id, i);
		int rc = ckr_store_get(s, id, strlen(id), &in);
		if (rc == -ENOENT)
			continue;
		assert_int_equal(rc, 0);
		assert_int_equal(in.events, L_ROWS);
		if (in.state == CKR_RUN_FAILED)
			assert_string_equal(in.error, "failed by operator: " REASON);
		else
			assert_int_equal(in.state, CKR_RUN_RUNNING);
		ckr_resume *rs = tu_resume(db, id);
		assert_int_equal(rs->n_history, L_ROWS - 1);
		ckr_resume_free(rs);
	}
	ckr_store_close(s);
}

/* Imported runs: whole or absent. */
static void check_imports(void)
{
	ckr_store *s;
	assert_int_equal(ckr_store_open(db2, NULL, &s), 0);
	unsigned found = 0;
	for (unsigned i = 0; i < L_RUNS; i++) {
		char id[32];
		ckr_run_info in;
		l_id(id, sizeof id, i);
		int rc = ckr_store_get(s, id, strlen(id), &in);
		if (rc == -ENOENT)
			continue;
		assert_int_equal(rc, 0);
		assert_int_equal(in.events, L_ROWS);
		assert_int_equal(in.owner_pid, 0);
		found++;
	}
	assert_int_equal(found, n_imports);
	ckr_store_close(s);
}

static uint64_t fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Every acknowledged message of the k- load is stored, byte-exact. */
static void check_acked(const char *ack)
{
	FILE *fa = fopen(ack, "rb");
	assert_non_null(fa);
	uint64_t verified = 0;
	for (unsigned t = 0; t < 2; t++)
		for (unsigned r = 0; r < 10; r++) {
			uint8_t b[8];
			assert_int_equal(fread(b, 1, 8, fa), 8);
			uint64_t acked = 0;
			for (int i = 7; i >= 0; i--)
				acked = acked << 8 | b[i];
			char id[32];
			snprintf(id, sizeof id, "k-p0-t%u-r%u", t, r);
			ckr_resume *rs = tu_resume(db, id);
			assert_true(rs->n_history >= acked);
			uint64_t h = fnv1a64(id);
			for (uint64_t m = 0; m < rs->n_history; m++) {
				const uint8_t *d = rs->history[m].data;
				assert_int_equal(rs->history[m].size, 64);
				assert_int_equal(ckr_st_get_le(d, 8), m);
				assert_int_equal(ckr_st_get_le(d + 8, 8), h);
				for (size_t i = 16; i < 64; i++)
					assert_int_equal(d[i], (uint8_t)(h + 31 * m + i));
			}
			verified += acked;
			ckr_resume_free(rs);
		}
	fclose(fa);
	assert_true(verified > 0);
	static const char *const zero[] = { "dup_begin", "foreign", "stale", "orphan",
					    "after_end", "dup_seq", "bad_kind", "bad_begin",
					    "quarantined" };
	for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++)
		if (tu_store_counter(db, zero[i]) != 0)
			fail_msg("store counter %s is %llu, want 0", zero[i],
				 (unsigned long long)tu_store_counter(db, zero[i]));
}

/* The final prune, to the end; then f- runs are gone, c- runs tombstones. */
static void final_prune(void)
{
	const char *prune[] = { bin("ckring-admin"), "prune", db, "--failed-older-than", "0s",
				"--completed-older-than", "0s", "--txn-rows", "500", NULL };
	assert_int_equal(run_tool(prune, NULL), 0);
	ckr_store *s;
	assert_int_equal(ckr_store_open(db, NULL, &s), 0);
	ckr_store_census c;
	assert_int_equal(ckr_store_census_get(s, &c), 0);
	assert_int_equal(c.runs[CKR_RUN_FAILED], 0);
	assert_int_equal(c.removing, 0);
	for (unsigned t = 0; t < 2; t++)
		for (unsigned r = 0; r < 10; r++) {
			char id[32];
			ckr_run_info in;
			snprintf(id, sizeof id, "f-p0-t%u-r%u", t, r);
			assert_int_equal(ckr_store_get(s, id, strlen(id), &in), -ENOENT);
			snprintf(id, sizeof id, "c-p0-t%u-r%u", t, r);
			assert_int_equal(ckr_store_get(s, id, strlen(id), &in), 0);
			assert_int_equal(in.state, CKR_RUN_COMPLETED);
			assert_int_equal(in.events, 0);
		}
	ckr_store_close(s);
}

static pid_t torture_start(void)
{
	long secs = tu_env_long("CKR_ADMIN_TORTURE_SECONDS", 10);
	if (secs <= 0)
		return -1;
	char d[32], logp[600];
	snprintf(d, sizeof d, "%ld", secs);
	snprintf(logp, sizeof logp, "%s/torture.log", work);
	const char *argv[] = { "/bin/bash", "tests/torture/torture.sh", "--duration", d, NULL };
	return spawn(argv, logp);
}

static void torture_wait(pid_t pid)
{
	if (pid < 0)
		return;
	int st = tu_wait_child(pid, TU_TIMEOUT_MS * 10);
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		char cmd[700];
		snprintf(cmd, sizeof cmd, "tail -n 30 %s/torture.log >&2", work);
		if (system(cmd) != 0)
			fprintf(stderr, "(no torture log)\n");
		fail_msg("the torture beside the actions failed");
	}
}

static void test_actions_under_crashes(void **state)
{
	(void)state;
	char ack[600];
	pid_t kload;
	rng = tu_seed("admin-crash");
	snprintf(ack, sizeof ack, "%s/k.ack", work);
	flusher_start(false);
	load("f-", "fail", NULL, NULL);
	load("c-", "complete", NULL, NULL);
	load("l-", "leave", NULL, NULL);
	pid_t tort = torture_start();
	load("k-", "leave", ack, &kload);
	int64_t end = tu_now_ms() + 1000 * tu_env_long("CKR_ADMIN_SECONDS", 8);
	while (tu_now_ms() < end) {
		flusher_chaos();
		action();
		check_store(db, true); /* consistent after any crash */
		sleep_ms((long)(rnd() % 30));
	}
	int st;
	if (waitpid(flusher, &st, WNOHANG) != flusher)
		tu_flusher_kill(flusher);
	flusher_start(false);
	assert_int_equal(WEXITSTATUS(tu_wait_child(kload, TU_TIMEOUT_MS * 4)), 0);
	check_l_runs();
	check_imports();
	check_store(db2, false);
	final_prune();
	check_store(db, false);
	assert_int_equal(tu_flusher_stop(flusher), 0);
	flusher = -1;
	check_acked(ack);
	torture_wait(tort);
	fprintf(stderr, "admin-crash: %u prunes, %u fails, %u retries, %u exports (%u "
		"imported); %u actions and %u flushers SIGKILLed\n", n_actions[0],
		n_actions[1], n_actions[2], n_actions[3], n_imports, n_action_kills,
		n_flusher_kills);
}

static int setup(void **state)
{
	(void)state;
	seg = tu_segname("admc");
	db = tu_tmpdir("admc");
	db2 = tu_tmpdir("admc2");
	work = tu_tmpdir("admcw");
	ckr_store *s;
	ckr_store_rw_opts o = { 0 };
	if (ckr_store_open_rw(db2, &o, &s) != 0)
		return -1;
	ckr_store_close(s);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (flusher > 0)
		tu_flusher_kill(flusher);
	ckr_segment_unlink(seg);
	tu_rmrf(db);
	tu_rmrf(db2);
	tu_rmrf(work);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_actions_under_crashes, setup, teardown),
	};
	return cmocka_run_group_tests_name("admin-crash", tests, NULL, NULL);
}
