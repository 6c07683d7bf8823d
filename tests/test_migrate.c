/*
 * test_migrate.c — a store made by the first round's code (schema 1,
 * tests/fixtures/store-schema1.dump) is migrated in place, in one
 * transaction, by the first read-write open of the new code (what the
 * flusher does at start): every run, its state and events survive; the old
 * "drained" owners are ended identities; a run with a gap can be claimed
 * and its gap is closed. Read-only opens of a schema-1 store are refused
 * (CKR_EVERSION, the inspector names the migrating command), and a
 * migration that fails leaves the old store untouched.
 */
#include <errno.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckring_store.h"
#include "persist/store.h"
#include "tests/helpers/testutil.h"

typedef struct fx {
	char *dir;
} fx;

static const char *fixture_path(void)
{
	static char p[512];
	const char *root = getenv("CKR_SRC");
	snprintf(p, sizeof p, "%s/tests/fixtures/store-schema1.dump",
		 root && *root ? root : ".");
	return p;
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	char cmd[1200];
	f->dir = tu_tmpdir("migrate");
	snprintf(cmd, sizeof cmd, "mdb_load -f '%s' '%s' 2>/dev/null", fixture_path(),
		 f->dir);
	if (system(cmd) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static uint32_t raw_schema(const char *dir)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { 6, "schema" }, v;
	uint32_t schema = 0;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	memcpy(&schema, v.mv_data, 4);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return schema;
}

static ckr_store *open_ro(const char *dir)
{
	ckr_store *s;
	ckr_store_opts o = { .read_only = true };
	assert_int_equal(ckr_store_open(dir, &o, &s), 0);
	return s;
}

/* The first read-write open migrates. */
static void migrate(const char *dir)
{
	ckr_store *s;
	assert_int_equal(ckr_store_open_rw(dir, NULL, &s), 0);
	ckr_store_close(s);
}

static void test_read_only_open_of_schema_1_is_refused(void **state)
{
	fx *f = *state;
	ckr_store *s = NULL;
	ckr_store_opts ro = { .read_only = true };
	assert_int_equal(raw_schema(f->dir), 1);
	assert_int_equal(ckr_store_open(f->dir, &ro, &s), CKR_EVERSION);
	assert_int_equal(ckr_store_open(f->dir, NULL, &s), CKR_EVERSION);
	assert_null(s);
	assert_int_equal(raw_schema(f->dir), 1); /* nothing was written */
}

static void test_migration_keeps_every_run(void **state)
{
	fx *f = *state;
	migrate(f->dir);
	assert_int_equal(raw_schema(f->dir), 3); /* 1 -> 2 -> 3 in one open */
	ckr_store *s = open_ro(f->dir);
	ckr_run_info in;
	assert_int_equal(ckr_store_get(s, "loop-ok", 7, &in), 0);
	assert_int_equal(in.state, CKR_RUN_RUNNING);
	assert_int_equal(in.events, 4);
	assert_int_equal(in.last_seq, 3);
	assert_int_equal(in.prefix_seq, 3);
	assert_int_equal(in.owner_pid, 4194303);
	assert_int_equal(in.owner_start, 12345);
	assert_string_equal(in.label, "agent v1");
	assert_true(in.owner_drained); /* its owner was in `owners` */
	assert_false(in.owner_alive);
	assert_int_equal(ckr_store_get(s, "loop-gap", 8, &in), 0);
	assert_int_equal(in.last_seq, 4);
	assert_int_equal(in.prefix_seq, 2);
	assert_int_equal(ckr_store_get(s, "failed-1", 8, &in), 0);
	assert_int_equal(in.state, CKR_RUN_FAILED);
	assert_string_equal(in.error, "model error: boom");
	assert_int_equal(ckr_store_get(s, "done-1", 6, &in), 0);
	assert_int_equal(in.state, CKR_RUN_COMPLETED);
	assert_int_equal(in.events, 0);
	ckr_resume *rs;
	assert_int_equal(ckr_store_resume(s, "loop-ok", 7, &rs), 0);
	assert_int_equal(rs->n_history, 3);
	assert_memory_equal(rs->history[0].data, "hello", 5);
	assert_memory_equal(rs->history[2].data, "again", 5);
	assert_string_equal(rs->label, "agent v1");
	assert_int_equal(rs->meta_len, 6);
	assert_memory_equal(rs->meta, "meta-1", 6);
	ckr_resume_free(rs);
	assert_int_equal(ckr_store_resume(s, "phased", 6, &rs), 0);
	assert_int_equal(rs->n_phases, 2);
	assert_string_equal(rs->phases[0].name, "plan");
	assert_memory_equal(rs->phases[1].data, "acted", 5);
	ckr_resume_free(rs);
	assert_int_equal(ckr_store_counter(s, "stored"), 15);
	ckr_store_close(s);
	uint64_t pos[4];
	bool found;
	assert_int_equal(ckr_store_open_rw(f->dir, NULL, &s), 0);
	assert_int_equal(ckr_store_cursors(s, (const uint8_t *)"fixture-epoch-01", pos, 4,
					   &found), 0);
	assert_true(found);
	assert_int_equal(pos[0], 4096);
	assert_int_equal(pos[3], 512);
	ckr_store_close(s);
}

static void test_migrated_run_with_a_gap_is_claimed_and_closed(void **state)
{
	fx *f = *state;
	migrate(f->dir);
	ckr_store *s;
	assert_int_equal(ckr_store_open(f->dir, NULL, &s), 0);
	ckr_claim cl;
	assert_int_equal(ckr_store_claim(s, "loop-gap", 8, &cl), 0);
	assert_int_equal(cl.incarnation, 2);
	assert_int_equal(cl.gap_seq, 3);
	assert_int_equal(cl.set_aside, 1);
	assert_int_equal(cl.next_seq, 3);
	assert_true(cl.writer != 0);
	ckr_resume *rs;
	assert_int_equal(ckr_store_resume(s, "loop-gap", 8, &rs), 0);
	assert_int_equal(rs->n_history, 2);
	assert_int_equal(rs->n_gaps, 0);
	assert_int_equal(rs->n_set_aside, 1);
	assert_memory_equal(rs->set_aside[0].data, "m4", 2);
	ckr_resume_free(rs);
	ckr_store_close(s);
}

/* A record the migration cannot read: nothing of the store changes. */
static void test_failed_migration_leaves_the_old_store(void **state)
{
	fx *f = *state;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { 3, "bad" }, v = { 5, "junk!" };
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "runs", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	ckr_store *s = NULL;
	assert_int_equal(ckr_store_open_rw(f->dir, NULL, &s), CKR_ECORRUPT);
	assert_null(s);
	assert_int_equal(raw_schema(f->dir), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_read_only_open_of_schema_1_is_refused),
		T(test_migration_keeps_every_run),
		T(test_migrated_run_with_a_gap_is_claimed_and_closed),
		T(test_failed_migration_leaves_the_old_store),
#undef T
	};
	return cmocka_run_group_tests_name("migrate", tests, NULL, NULL);
}
