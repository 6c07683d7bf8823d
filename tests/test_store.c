/*
 * test_store.c — the LMDB store (persist/store*.c): the run state machine of
 * a flusher batch, cursors, drained owners, quarantine, counters, map growth,
 * the schema check, the recovery claim rules (including a race of two
 * claiming processes), resume state, pruning, and the on-disk layout read
 * back with plain liblmdb as persist/FORMAT.md describes it.
 *
 * Each test gets its own mkdtemp directory with a flusher (read-write) store
 * open in it. LMDB forbids opening one environment twice in a process, so a
 * test closes that store before it opens the directory another way.
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "event/event.h"
#include "persist/store.h"
#include "shm/proc.h"
#include "tests/helpers/testutil.h"

#define TIMEOUT_MS 10000

static const uint8_t EPOCH_A[CKR_EPOCH_BYTES] = "epoch-A-0123456";
static const uint8_t EPOCH_B[CKR_EPOCH_BYTES] = "epoch-B-0123456";
static const uint8_t EPOCH_C[CKR_EPOCH_BYTES] = "epoch-C-0123456";

#define TEST_SEGMENT "test-seg"

typedef struct fx {
	char *dir;
	ckr_store *s; /* the flusher's read-write store, or NULL */
} fx;

/* The current writer of each run, as the flusher would see it: the writer
 * id of its begin (or last claim) and the identity of the lane its events
 * come through. apply_in() uses it for events that name no writer. */
typedef struct test_writer {
	char id[CKR_RUN_ID_MAX + 1];
	uint64_t writer;
	ckr_identity from;
} test_writer;
static test_writer writers[64];
static size_t n_writers;
static uint64_t next_writer = 1000;

/* The identity a test gives the process of token: a fixed nonce. */
static ckr_identity owner_of(uint64_t token)
{
	ckr_identity id = { token, ckr_mix64(token) | 1, 0 };
	return id;
}

static test_writer *writer_of(const uint8_t *id, size_t len)
{
	for (size_t i = 0; i < n_writers; i++)
		if (strlen(writers[i].id) == len && memcmp(writers[i].id, id, len) == 0)
			return &writers[i];
	return NULL;
}

static void set_writer(const uint8_t *id, size_t len, uint64_t writer,
		       const ckr_identity *from)
{
	test_writer *w = writer_of(id, len);
	if (!w) {
		assert_true(n_writers < 64);
		w = &writers[n_writers++];
		memcpy(w->id, id, len);
		w->id[len] = '\0';
	}
	w->writer = writer;
	w->from = *from;
}

static void reopen_rw(fx *f, const ckr_store_rw_opts *o)
{
	ckr_store_close(f->s);
	f->s = NULL;
	assert_int_equal(ckr_store_open_rw(f->dir, o, &f->s), 0);
}

static void close_rw(fx *f)
{
	ckr_store_close(f->s);
	f->s = NULL;
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	f->dir = tu_tmpdir("store");
	if (ckr_store_open_rw(f->dir, NULL, &f->s) != 0 ||
	    ckr_store_bind_segment(f->s, TEST_SEGMENT, EPOCH_A, NULL, NULL) != 0)
		return -1;
	n_writers = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	ckr_store_close(f->s);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* ---- events ---- */

static uint64_t self_token(void)
{
	uint64_t t = 0;
	assert_int_equal(ckr_proc_self_token(&t), 0);
	return t;
}

static uint64_t self_token_quiet(void)
{
	uint64_t t = 0;
	(void)ckr_proc_self_token(&t);
	return t;
}

/* The token of a process that has exited (and was reaped). */
static uint64_t dead_token(void)
{
	int p[2];
	uint64_t t = 0;
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		if (ckr_proc_self_token(&t) != 0 || write(p[1], &t, sizeof t) != sizeof t)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(tu_read_full(p[0], &t, sizeof t, TIMEOUT_MS), 0);
	close(p[0]);
	assert_int_equal(tu_wait_child(pid, TIMEOUT_MS), 0);
	assert_false(ckr_proc_alive(t));
	return t;
}

static ckr_event ev_base(ckr_event_type type, const char *id, uint32_t inc,
			 uint64_t seq)
{
	ckr_event ev;
	memset(&ev, 0, sizeof ev);
	ev.type = type;
	ev.id = (const uint8_t *)id;
	ev.id_len = strlen(id);
	ev.incarnation = inc;
	ev.seq = seq;
	return ev;
}

static ckr_event ev_begin(const char *id, ckr_kind kind, uint64_t owner,
			  const char *label, const char *meta)
{
	ckr_event ev = ev_base(CKR_EV_BEGIN, id, 1, 0);
	ev.writer = next_writer++;
	ev.u.begin.kind = kind;
	ev.u.begin.owner_pid = (uint32_t)ckr_token_pid(owner);
	ev.u.begin.owner_start = ckr_token_start(owner);
	ev.u.begin.label = label;
	ev.u.begin.label_len = label ? strlen(label) : 0;
	ev.u.begin.meta = (const uint8_t *)meta;
	ev.u.begin.meta_len = meta ? strlen(meta) : 0;
	return ev;
}

static ckr_event ev_msg(const char *id, uint32_t inc, uint64_t seq,
			const char *data)
{
	ckr_event ev = ev_base(CKR_EV_MESSAGE, id, inc, seq);
	ev.u.message.data = (const uint8_t *)data;
	ev.u.message.len = strlen(data);
	return ev;
}

static ckr_event ev_phase(const char *id, uint32_t inc, uint64_t seq,
			  uint32_t index, const char *name, const char *data)
{
	ckr_event ev = ev_base(CKR_EV_PHASE, id, inc, seq);
	ev.u.phase.index = index;
	ev.u.phase.name = name;
	ev.u.phase.name_len = strlen(name);
	ev.u.phase.data = (const uint8_t *)data;
	ev.u.phase.len = strlen(data);
	return ev;
}

static ckr_event ev_fail(const char *id, uint32_t inc, uint64_t seq,
			 const char *error)
{
	ckr_event ev = ev_base(CKR_EV_FAIL, id, inc, seq);
	ev.u.fail.error = error;
	ev.u.fail.len = strlen(error);
	return ev;
}

/* Encode ev, decode it back (as the flusher does) and apply it in b as if
 * it came through a lane of identity from. */
static int apply_as(ckr_batch *b, const ckr_event *ev, const ckr_identity *from,
		    ckr_apply *what)
{
	size_t n = ckr_event_size(ev);
	assert_true(n > 0);
	uint8_t *raw = malloc(n);
	assert_non_null(raw);
	assert_int_equal(ckr_event_encode(ev, raw, n), n);
	ckr_event dec;
	assert_int_equal(ckr_event_decode(raw, n, &dec), 0);
	ckr_apply w = CKR_APPLY_COUNT;
	int rc = ckr_batch_apply(b, &dec, raw, n, from, &w);
	if (rc == 0 && w == CKR_APPLY_STORED && ev->type == CKR_EV_BEGIN)
		set_writer(ev->id, ev->id_len, ev->writer, from);
	if (what)
		*what = w;
	free(raw);
	return rc;
}

/* Apply ev from its run's current writer: a begin from its owner's
 * identity; another event, unless it names a writer, from the writer the
 * test knows for its run (or an unknown one). */
static int apply_in(ckr_batch *b, const ckr_event *ev, ckr_apply *what)
{
	ckr_event e = *ev;
	ckr_identity from = owner_of(self_token_quiet());
	if (e.type == CKR_EV_BEGIN) {
		from = owner_of(ckr_token_make((pid_t)e.u.begin.owner_pid,
					       e.u.begin.owner_start));
	} else {
		test_writer *w = writer_of(e.id, e.id_len);
		if (w && e.writer == 0)
			e.writer = w->writer;
		if (w)
			from = w->from;
		if (e.writer == 0)
			e.writer = 1; /* nobody's */
	}
	return apply_as(b, &e, &from, what);
}

/* Apply one event in a batch of its own; returns what it did. */
static ckr_apply apply1(ckr_store *s, const ckr_event *ev)
{
	ckr_batch *b;
	ckr_apply what = (ckr_apply)-1;
	assert_int_equal(ckr_batch_begin(s, &b), 0);
	assert_int_equal(apply_in(b, ev, &what), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
	return what;
}

static void begin_run(ckr_store *s, const char *id, ckr_kind kind, uint64_t owner)
{
	ckr_event ev = ev_begin(id, kind, owner, "v1.2", "meta!");
	assert_int_equal(apply1(s, &ev), CKR_APPLY_STORED);
}

static void messages(ckr_store *s, const char *id, uint32_t inc, uint64_t from,
		     uint64_t to)
{
	char data[32];
	for (uint64_t q = from; q <= to; q++) {
		snprintf(data, sizeof data, "message %llu", (unsigned long long)q);
		ckr_event ev = ev_msg(id, inc, q, data);
		assert_int_equal(apply1(s, &ev), CKR_APPLY_STORED);
	}
}

/* E1 as the flusher records it for a test owner (owner_of(token)). */
static void mark_drained(ckr_store *s, uint64_t token)
{
	ckr_batch *b;
	ckr_identity id = owner_of(token);
	assert_int_equal(ckr_batch_begin(s, &b), 0);
	assert_int_equal(ckr_batch_owner_ended(b, &id), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
}

/* E2 as the flusher's housekeeping does it: every dead owner is ended. */
static void end_dead_owners(ckr_store *s)
{
	ckr_identity *dead;
	size_t n;
	ckr_batch *b;
	assert_int_equal(ckr_store_dead_owners(s, &dead, &n), 0);
	assert_int_equal(ckr_batch_begin(s, &b), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ckr_batch_owner_ended(b, &dead[i]), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
	free(dead);
}

/* The flusher of TEST_SEGMENT restarted on a recreated segment. */
static void rebind(ckr_store *s, const uint8_t *epoch)
{
	bool retired = false;
	assert_int_equal(ckr_store_bind_segment(s, TEST_SEGMENT, epoch, &retired, NULL), 0);
	assert_true(retired);
}

static void set_cursor(ckr_store *s, const uint8_t *epoch, uint32_t lane,
		       uint64_t pos)
{
	ckr_batch *b;
	assert_int_equal(ckr_batch_begin(s, &b), 0);
	assert_int_equal(ckr_batch_set_cursor(b, epoch, lane, pos), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
}

static ckr_run_info get(ckr_store *s, const char *id)
{
	ckr_run_info in;
	assert_int_equal(ckr_store_get(s, id, strlen(id), &in), 0);
	return in;
}

/* ---- raw LMDB (as an independent reader would, per FORMAT.md) ---- */

typedef struct raw {
	MDB_env *env;
	MDB_txn *txn;
} raw;

static raw raw_open(const char *dir, bool write)
{
	raw r;
	assert_int_equal(mdb_env_create(&r.env), 0);
	assert_int_equal(mdb_env_set_maxdbs(r.env, 16), 0);
	assert_int_equal(mdb_env_open(r.env, dir, write ? 0 : MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(r.env, NULL, write ? 0 : MDB_RDONLY, &r.txn), 0);
	return r;
}

static MDB_dbi raw_dbi(raw *r, const char *name)
{
	MDB_dbi dbi;
	assert_int_equal(mdb_dbi_open(r->txn, name, 0, &dbi), 0);
	return dbi;
}

static void raw_close(raw *r, bool commit)
{
	if (commit)
		assert_int_equal(mdb_txn_commit(r->txn), 0);
	else
		mdb_txn_abort(r->txn);
	mdb_env_close(r->env);
}

static uint64_t le(const void *p, int n)
{
	const uint8_t *b = p;
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

static uint64_t be(const void *p, int n)
{
	const uint8_t *b = p;
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = (v << 8) | b[i];
	return v;
}

/* Move a run's finished time back by `secs` (runs value offset 40). */
static void age_run(fx *f, const char *id, uint64_t secs)
{
	close_rw(f);
	raw r = raw_open(f->dir, true);
	MDB_dbi runs = raw_dbi(&r, "runs");
	MDB_val k = { strlen(id), (void *)id }, v;
	assert_int_equal(mdb_get(r.txn, runs, &k, &v), 0);
	uint8_t *copy = malloc(v.mv_size);
	assert_non_null(copy);
	memcpy(copy, v.mv_data, v.mv_size);
	uint64_t t = le(copy + 40, 8) - secs * 1000000000u;
	for (int i = 0; i < 8; i++)
		copy[40 + i] = (uint8_t)(t >> (8 * i));
	v.mv_data = copy;
	assert_int_equal(mdb_put(r.txn, runs, &k, &v, 0), 0);
	raw_close(&r, true);
	free(copy);
	reopen_rw(f, NULL);
}

/* ---- helper processes ---- */

/* What a child does with its store once told to go; returns a result code. */
typedef int (*child_job)(ckr_store *s, const char *id);

typedef struct child {
	pid_t pid;
	int from_child; /* child → parent: 'R' when ready, then the job's rc */
	int to_child;   /* parent → child: 'G' to run the job; closed to release */
} child;

static int job_claim(ckr_store *s, const char *id)
{
	ckr_claim c;
	return ckr_store_claim(s, id, strlen(id), &c);
}

/* Read run id; -EBADMSG unless it holds the 201 events of big_batch(). */
static int job_read_big(ckr_store *s, const char *id)
{
	ckr_run_info in;
	int rc = ckr_store_get(s, id, strlen(id), &in);
	return rc ? rc : in.events == 201 ? 0 : -EBADMSG;
}

static void child_main(const char *dir, const ckr_store_opts *o, const char *id,
		       child_job job, int out, int in)
{
	ckr_store *s = NULL;
	char go;
	int rc = ckr_store_open(dir, o, &s);
	if (write(out, "R", 1) != 1 || read(in, &go, 1) != 1)
		_exit(1);
	if (rc == 0)
		rc = job(s, id);
	if (write(out, &rc, sizeof rc) != sizeof rc)
		_exit(1);
	while (read(in, &go, 1) > 0) /* hold on (e.g. to a claim) until released */
		;
	ckr_store_close(s);
	_exit(0);
}

/* Start a process that opens the store at dir, and wait until it is ready.
 * It must not inherit the pipes of the children started before it (`older`,
 * n_older of them), or they would never see their release (EOF). */
static child child_start(const char *dir, const ckr_store_opts *o,
			 const char *id, child_job job, const child *older,
			 size_t n_older)
{
	int up[2], down[2];
	child c;
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	c.pid = fork();
	assert_true(c.pid >= 0);
	if (c.pid == 0) {
		close(up[0]);
		close(down[1]);
		for (size_t i = 0; i < n_older; i++) {
			close(older[i].from_child);
			close(older[i].to_child);
		}
		child_main(dir, o, id, job, up[1], down[0]);
	}
	close(up[1]);
	close(down[0]);
	c.from_child = up[0];
	c.to_child = down[1];
	char ready;
	assert_int_equal(tu_read_full(c.from_child, &ready, 1, TIMEOUT_MS), 0);
	assert_int_equal(ready, 'R');
	return c;
}

static void child_go(child *c)
{
	assert_int_equal(write(c->to_child, "G", 1), 1);
}

static int child_result(child *c)
{
	int rc = 1;
	assert_int_equal(tu_read_full(c->from_child, &rc, sizeof rc, TIMEOUT_MS), 0);
	return rc;
}

/* Let the child exit; wait (bounded) for its end. */
static void child_finish(child *c)
{
	char byte;
	close(c->to_child);
	assert_int_equal(tu_read_full(c->from_child, &byte, 1, TIMEOUT_MS), -EPIPE);
	close(c->from_child);
	assert_int_equal(tu_wait_child(c->pid, TIMEOUT_MS), 0);
}

/* One recoverer process claims id and exits (so its token is dead). */
static pid_t claim_in_child(const char *dir, const char *id)
{
	child a = child_start(dir, NULL, id, job_claim, NULL, 0);
	child_go(&a);
	assert_int_equal(child_result(&a), 0);
	child_finish(&a);
	return a.pid;
}

/* ---- the state machine ---- */

static void test_begin_creates_running_run(void **state)
{
	fx *f = *state;
	uint64_t owner = self_token();
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, owner);

	ckr_run_info in = get(f->s, "run-1");
	assert_int_equal(in.state, CKR_RUN_RUNNING);
	assert_int_equal(in.kind, CKR_KIND_SINGLE_LOOP);
	assert_int_equal(in.incarnation, 1);
	assert_int_equal(in.attempts, 0);
	assert_int_equal(in.events, 1);
	assert_int_equal(in.last_seq, 0);
	assert_int_equal(in.owner_pid, getpid());
	assert_int_equal(in.owner_start, ckr_token_start(owner));
	assert_true(in.owner_alive);
	assert_string_equal(in.label, "v1.2");
	assert_int_equal(ckr_store_counter(f->s, "stored"), 1);
}

static void test_messages_are_stored_and_counted(void **state)
{
	fx *f = *state;
	ckr_batch *b;
	ckr_apply what;
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	for (uint64_t q = 1; q <= 3; q++) {
		ckr_event ev = ev_msg("run-1", 1, q, "hello");
		assert_int_equal(apply_in(b, &ev, &what), 0);
		assert_int_equal(what, CKR_APPLY_STORED);
	}
	assert_int_equal(ckr_batch_commit(b), 0);

	ckr_run_info in = get(f->s, "run-1");
	ckr_event m = ev_msg("run-1", 1, 1, "hello");
	ckr_event bg = ev_begin("run-1", CKR_KIND_SINGLE_LOOP, self_token(), "v1.2",
				"meta!");
	assert_int_equal(in.events, 4);
	assert_int_equal(in.last_seq, 3);
	assert_int_equal(in.bytes, ckr_event_size(&bg) + 3 * ckr_event_size(&m));
	assert_int_equal(ckr_store_counter(f->s, "stored"), 4);
}

static void test_complete_clears_events_and_keeps_tombstone(void **state)
{
	fx *f = *state;
	ckr_resume *rs;
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	messages(f->s, "run-1", 1, 1, 3);
	ckr_event end = ev_base(CKR_EV_COMPLETE, "run-1", 1, 4);
	assert_int_equal(apply1(f->s, &end), CKR_APPLY_STORED);

	ckr_run_info in = get(f->s, "run-1");
	assert_int_equal(in.state, CKR_RUN_COMPLETED);
	assert_int_equal(in.events, 0);
	assert_int_equal(in.bytes, 0);
	assert_int_equal(ckr_store_resume(f->s, "run-1", 5, &rs), 0);
	assert_int_equal(rs->n_history, 0);
	assert_int_equal(rs->n_gaps, 0);
	assert_int_equal(rs->meta_len, 0);
	ckr_resume_free(rs);

	close_rw(f);
	raw r = raw_open(f->dir, false);
	MDB_stat st;
	assert_int_equal(mdb_stat(r.txn, raw_dbi(&r, "events"), &st), 0);
	assert_int_equal(st.ms_entries, 0);
	raw_close(&r, false);
}

static void test_complete_keeps_events_until_pruned(void **state)
{
	fx *f = *state;
	ckr_store_rw_opts o = { .keep_completed_s = 60 };
	ckr_resume *rs;
	reopen_rw(f, &o);
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	messages(f->s, "run-1", 1, 1, 2);
	ckr_event end = ev_base(CKR_EV_COMPLETE, "run-1", 1, 3);
	assert_int_equal(apply1(f->s, &end), CKR_APPLY_STORED);
	assert_int_equal(get(f->s, "run-1").events, 3);
	assert_int_equal(ckr_store_prune(f->s, 60, 0), 0); /* not old enough */

	age_run(f, "run-1", 61);
	assert_int_equal(ckr_store_prune(f->s, 60, 0), 1);
	ckr_run_info in = get(f->s, "run-1");
	assert_int_equal(in.state, CKR_RUN_COMPLETED); /* still a tombstone */
	assert_int_equal(in.events, 0);
	assert_int_equal(ckr_store_resume(f->s, "run-1", 5, &rs), 0);
	assert_int_equal(rs->n_history, 0);
	ckr_resume_free(rs);
	assert_int_equal(ckr_store_prune(f->s, 60, 0), 0); /* nothing left */
}

static void test_fail_keeps_events_and_error(void **state)
{
	fx *f = *state;
	ckr_resume *rs;
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	messages(f->s, "run-1", 1, 1, 2);
	ckr_event ev = ev_fail("run-1", 1, 3, "tool loop detected");
	assert_int_equal(apply1(f->s, &ev), CKR_APPLY_STORED);

	ckr_run_info in = get(f->s, "run-1");
	assert_int_equal(in.state, CKR_RUN_FAILED);
	assert_string_equal(in.error, "tool loop detected");
	assert_int_equal(in.events, 3);
	assert_int_equal(ckr_store_resume(f->s, "run-1", 5, &rs), 0);
	assert_int_equal(rs->state, CKR_RUN_FAILED);
	assert_int_equal(rs->n_history, 2);
	ckr_resume_free(rs);
}

static void test_long_error_is_cut_in_info(void **state)
{
	fx *f = *state;
	char err[1000];
	memset(err, 'e', sizeof err - 1);
	err[sizeof err - 1] = '\0';
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	ckr_event ev = ev_fail("run-1", 1, 1, err);
	assert_int_equal(apply1(f->s, &ev), CKR_APPLY_STORED);
	ckr_run_info in = get(f->s, "run-1");
	assert_int_equal(strlen(in.error), sizeof in.error - 1);
}

static void test_duplicate_begin_is_ignored(void **state)
{
	fx *f = *state;
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	messages(f->s, "run-1", 1, 1, 2);
	ckr_event dup = ev_begin("run-1", CKR_KIND_MULTI_PHASE, dead_token(), "v9", NULL);
	assert_int_equal(apply1(f->s, &dup), CKR_APPLY_DUP_BEGIN);

	ckr_run_info in = get(f->s, "run-1");
	assert_int_equal(in.kind, CKR_KIND_SINGLE_LOOP);
	assert_int_equal(in.owner_pid, getpid());
	assert_int_equal(in.events, 3);
	assert_string_equal(in.label, "v1.2");
	assert_int_equal(ckr_store_counter(f->s, "dup_begin"), 1);
}

static void test_duplicate_begin_after_complete_is_ignored(void **state)
{
	fx *f = *state;
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	ckr_event end = ev_base(CKR_EV_COMPLETE, "run-1", 1, 1);
	assert_int_equal(apply1(f->s, &end), CKR_APPLY_STORED);
	ckr_event dup = ev_begin("run-1", CKR_KIND_SINGLE_LOOP, self_token(), NULL, NULL);
	assert_int_equal(apply1(f->s, &dup), CKR_APPLY_DUP_BEGIN);
	assert_int_equal(get(f->s, "run-1").state, CKR_RUN_COMPLETED);
}

static void test_malformed_begin_is_ignored(void **state)
{
	fx *f = *state;
	ckr_event ev = ev_begin("run-1", CKR_KIND_SINGLE_LOOP, self_token(), NULL, NULL);
	ckr_run_info in;
	ev.incarnation = 2;
	assert_int_equal(apply1(f->s, &ev), CKR_APPLY_BAD_BEGIN);
	ev.incarnation = 1;
	ev.seq = 5;
	assert_int_equal(apply1(f->s, &ev), CKR_APPLY_BAD_BEGIN);
	assert_int_equal(ckr_store_get(f->s, "run-1", 5, &in), -ENOENT);
	assert_int_equal(ckr_store_counter(f->s, "bad_begin"), 2);
}

static void test_stale_incarnation_is_rejected(void **state)
{
	fx *f = *state;
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	ckr_event ev = ev_msg("run-1", 2, 1, "from the future");
	assert_int_equal(apply1(f->s, &ev), CKR_APPLY_STALE);
	ckr_event end = ev_base(CKR_EV_COMPLETE, "run-1", 2, 1);
	assert_int_equal(apply1(f->s, &end), CKR_APPLY_STALE);
	assert_int_equal(get(f->s, "run-1").events, 1);
	assert_int_equal(get(f->s, "run-1").state, CKR_RUN_RUNNING);
	assert_int_equal(ckr_store_counter(f->s, "stale"), 2);
}

static void test_event_after_end_is_ignored(void **state)
{
	fx *f = *state;
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	ckr_event fail = ev_fail("run-1", 1, 1, "boom");
	assert_int_equal(apply1(f->s, &fail), CKR_APPLY_STORED);
	ckr_event late = ev_msg("run-1", 1, 2, "late");
	assert_int_equal(apply1(f->s, &late), CKR_APPLY_AFTER_END);
	ckr_event end = ev_base(CKR_EV_COMPLETE, "run-1", 1, 3);
	assert_int_equal(apply1(f->s, &end), CKR_APPLY_AFTER_END);
	ckr_run_info in = get(f->s, "run-1");
	assert_int_equal(in.state, CKR_RUN_FAILED);
	assert_int_equal(in.events, 1);
	assert_int_equal(ckr_store_counter(f->s, "after_end"), 2);
}

static void test_orphan_events_are_ignored(void **state)
{
	fx *f = *state;
	ckr_run_info in;
	ckr_event m = ev_msg("nobody", 1, 1, "x");
	assert_int_equal(apply1(f->s, &m), CKR_APPLY_ORPHAN);
	ckr_event end = ev_base(CKR_EV_COMPLETE, "nobody", 1, 2);
	assert_int_equal(apply1(f->s, &end), CKR_APPLY_ORPHAN);
	assert_int_equal(ckr_store_get(f->s, "nobody", 6, &in), -ENOENT);
	assert_int_equal(ckr_store_counter(f->s, "orphan"), 2);
}

static void test_duplicate_seq_is_ignored(void **state)
{
	fx *f = *state;
	ckr_resume *rs;
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	ckr_event first = ev_msg("run-1", 1, 1, "first");
	ckr_event again = ev_msg("run-1", 1, 1, "second");
	ckr_event zero = ev_msg("run-1", 1, 0, "on the begin row");
	assert_int_equal(apply1(f->s, &first), CKR_APPLY_STORED);
	assert_int_equal(apply1(f->s, &again), CKR_APPLY_DUP_SEQ);
	assert_int_equal(apply1(f->s, &zero), CKR_APPLY_DUP_SEQ);
	assert_int_equal(ckr_store_resume(f->s, "run-1", 5, &rs), 0);
	assert_int_equal(rs->n_history, 1);
	assert_int_equal(rs->history[0].size, 5);
	assert_memory_equal(rs->history[0].data, "first", 5);
	ckr_resume_free(rs);
	assert_int_equal(get(f->s, "run-1").events, 2);
	assert_int_equal(ckr_store_counter(f->s, "dup_seq"), 2);
}

static void test_event_of_the_wrong_kind_is_ignored(void **state)
{
	fx *f = *state;
	begin_run(f->s, "single", CKR_KIND_SINGLE_LOOP, self_token());
	begin_run(f->s, "multi", CKR_KIND_MULTI_PHASE, self_token());
	ckr_event p = ev_phase("single", 1, 1, 0, "plan", "out");
	ckr_event m = ev_msg("multi", 1, 1, "msg");
	assert_int_equal(apply1(f->s, &p), CKR_APPLY_BAD_KIND);
	assert_int_equal(apply1(f->s, &m), CKR_APPLY_BAD_KIND);
	assert_int_equal(get(f->s, "single").events, 1);
	assert_int_equal(get(f->s, "multi").events, 1);
	assert_int_equal(ckr_store_counter(f->s, "bad_kind"), 2);
	assert_int_equal(ckr_store_counter(f->s, "stale"), 0);
}

static void test_apply_rejects_bad_arguments(void **state)
{
	fx *f = *state;
	ckr_batch *b;
	ckr_event ev = ev_msg("run-1", 1, 1, "x");
	ckr_identity me = owner_of(self_token());
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	assert_int_equal(ckr_batch_apply(b, &ev, NULL, 0, &me, NULL), -EINVAL);
	assert_int_equal(ckr_batch_apply(b, &ev, "x", 1, NULL, NULL), -EINVAL);
	ev.id_len = CKR_RUN_ID_MAX + 1;
	assert_int_equal(ckr_batch_apply(b, &ev, "x", 1, &me, NULL), -EINVAL);
	ckr_batch_abort(b);
}

/* ---- batches ---- */

static void test_one_batch_at_a_time(void **state)
{
	fx *f = *state;
	ckr_batch *b, *b2;
	ckr_claim c;
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	assert_int_equal(ckr_batch_begin(f->s, &b2), -EBUSY);
	assert_int_equal(ckr_store_grow(f->s), -EBUSY);
	assert_int_equal(ckr_store_prune(f->s, 1, 1), -EBUSY);
	assert_int_equal(ckr_store_claim(f->s, "run-1", 5, &c), -EBUSY);
	ckr_batch_abort(b);
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
}

static void test_aborted_batch_writes_nothing(void **state)
{
	fx *f = *state;
	ckr_batch *b;
	ckr_run_info in;
	ckr_event ev = ev_begin("run-1", CKR_KIND_SINGLE_LOOP, self_token(), NULL, NULL);
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	assert_int_equal(apply_in(b, &ev, NULL), 0);
	assert_int_equal(ckr_batch_set_cursor(b, EPOCH_A, 0, 64), 0);
	ckr_batch_abort(b);
	assert_int_equal(ckr_store_get(f->s, "run-1", 5, &in), -ENOENT);
	assert_int_equal(ckr_store_counter(f->s, "stored"), 0);
}

static void test_cursors_round_trip_per_epoch(void **state)
{
	fx *f = *state;
	ckr_batch *b;
	uint64_t pos[4];
	bool found;
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	assert_int_equal(ckr_batch_set_cursor(b, EPOCH_A, 0, 4096), 0);
	assert_int_equal(ckr_batch_set_cursor(b, EPOCH_A, 2, UINT64_MAX - 7), 0);
	assert_int_equal(ckr_batch_set_cursor(b, EPOCH_A, 9, 1), 0);
	/* Only the bound segment's epoch: another one kills the batch. */
	assert_int_equal(ckr_batch_set_cursor(b, EPOCH_B, 1, 128), -EINVAL);
	ckr_batch_abort(b);
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	assert_int_equal(ckr_batch_set_cursor(b, EPOCH_A, 0, 4096), 0);
	assert_int_equal(ckr_batch_set_cursor(b, EPOCH_A, 2, UINT64_MAX - 7), 0);
	assert_int_equal(ckr_batch_set_cursor(b, EPOCH_A, 9, 1), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
	set_cursor(f->s, EPOCH_A, 0, 8192); /* a later batch moves lane 0 */
	rebind(f->s, EPOCH_B); /* the segment was recreated */
	set_cursor(f->s, EPOCH_B, 1, 128);

	assert_int_equal(ckr_store_cursors(f->s, EPOCH_A, pos, 4, &found), 0);
	assert_true(found);
	assert_int_equal(pos[0], 8192);
	assert_int_equal(pos[1], 0);
	assert_true(pos[2] == UINT64_MAX - 7);
	assert_int_equal(pos[3], 0);
	assert_int_equal(ckr_store_cursors(f->s, EPOCH_B, pos, 4, &found), 0);
	assert_true(found);
	assert_int_equal(pos[0], 0);
	assert_int_equal(pos[1], 128);
	memset(pos, 0xff, sizeof pos);
	assert_int_equal(ckr_store_cursors(f->s, EPOCH_C, pos, 4, &found), 0);
	assert_false(found);
	assert_int_equal(pos[0], 0);
	assert_int_equal(pos[3], 0);
}

static void test_cursors_survive_reopen(void **state)
{
	fx *f = *state;
	uint64_t pos[2];
	bool found;
	set_cursor(f->s, EPOCH_A, 1, 777);
	reopen_rw(f, NULL);
	assert_int_equal(ckr_store_cursors(f->s, EPOCH_A, pos, 2, &found), 0);
	assert_true(found);
	assert_int_equal(pos[1], 777);
}

static void test_owner_drained_marks_run(void **state)
{
	fx *f = *state;
	uint64_t dead = dead_token();
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, dead);
	ckr_run_info in = get(f->s, "run-1");
	assert_false(in.owner_alive);
	assert_false(in.owner_drained);
	mark_drained(f->s, dead);
	in = get(f->s, "run-1");
	assert_false(in.owner_alive);
	assert_true(in.owner_drained);
}

static void test_new_epoch_means_owner_drained(void **state)
{
	fx *f = *state;
	ckr_batch *b;
	ckr_event ev = ev_begin("run-1", CKR_KIND_SINGLE_LOOP, dead_token(), NULL, NULL);
	set_cursor(f->s, EPOCH_A, 0, 1);
	rebind(f->s, EPOCH_B);
	/* The run is begun under the bound epoch B. */
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	assert_int_equal(apply_in(b, &ev, NULL), 0);
	assert_int_equal(ckr_batch_set_cursor(b, EPOCH_B, 0, 100), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
	assert_false(get(f->s, "run-1").owner_drained);

	rebind(f->s, EPOCH_C); /* the segment was recreated */
	assert_true(get(f->s, "run-1").owner_drained);
	/* A store serves one segment: another name is refused. */
	char bound[CKR_NAME_MAX + 1];
	assert_int_equal(ckr_store_bind_segment(f->s, "other", EPOCH_C, NULL, bound),
			 CKR_ESEGMENT);
	assert_string_equal(bound, TEST_SEGMENT);
}

static void test_quarantine_row_layout(void **state)
{
	fx *f = *state;
	ckr_batch *b;
	size_t big = (64u << 10) + 100;
	uint8_t *bytes = malloc(big);
	assert_non_null(bytes);
	for (size_t i = 0; i < big; i++)
		bytes[i] = (uint8_t)i;
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	assert_int_equal(ckr_batch_quarantine(b, "bad crc", 3, 4096, bytes, 10), 0);
	assert_int_equal(ckr_batch_quarantine(b, "too big", 5, 1u << 20, bytes, big), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
	assert_int_equal(ckr_store_counter(f->s, "quarantined"), 2);

	close_rw(f);
	raw r = raw_open(f->dir, false);
	MDB_dbi q = raw_dbi(&r, "quarantine");
	MDB_cursor *c;
	MDB_val k, v;
	assert_int_equal(mdb_cursor_open(r.txn, q, &c), 0);
	assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_FIRST), 0);
	assert_int_equal(k.mv_size, 8);
	assert_int_equal(be(k.mv_data, 8), 1);
	const uint8_t *p = v.mv_data;
	assert_int_equal(le(p, 2), 1);      /* version */
	assert_int_equal(le(p + 2, 2), 7);  /* reason_len */
	assert_int_equal(le(p + 4, 4), 3);  /* lane */
	assert_int_equal(le(p + 8, 8), 4096);
	assert_true(le(p + 16, 8) > 0);     /* time */
	assert_int_equal(le(p + 24, 4), 10);
	assert_int_equal(le(p + 28, 4), 10);
	assert_memory_equal(p + 32, "bad crc", 7);
	assert_memory_equal(p + 39, bytes, 10);
	assert_int_equal(v.mv_size, 32 + 7 + 10);

	assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_NEXT), 0);
	assert_int_equal(be(k.mv_data, 8), 2);
	p = v.mv_data;
	assert_int_equal(le(p + 24, 4), 64u << 10); /* cut */
	assert_int_equal(le(p + 28, 4), big);       /* original size */
	assert_int_equal(v.mv_size, 32 + 7 + (64u << 10));
	mdb_cursor_close(c);
	raw_close(&r, false);
	free(bytes);
}

static void test_counters_accumulate(void **state)
{
	fx *f = *state;
	ckr_batch *b;
	assert_int_equal(ckr_store_counter(f->s, "custom"), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ckr_batch_begin(f->s, &b), 0);
		assert_int_equal(ckr_batch_count(b, "custom", 5), 0);
		assert_int_equal(ckr_batch_count(b, "custom", 1), 0);
		assert_int_equal(ckr_batch_count(b, "", 1), -EINVAL);
		assert_int_equal(ckr_batch_commit(b), 0);
	}
	assert_int_equal(ckr_store_counter(f->s, "custom"), 12);
	assert_int_equal(ckr_store_counter(f->s, "never"), 0);
}

/* ---- map growth, sync, schema, opening ---- */

/* Apply a begin and n 2 KiB messages in one batch, then commit. */
static int big_batch(ckr_store *s, int n)
{
	static char data[2048];
	ckr_batch *b;
	int rc = ckr_batch_begin(s, &b);
	assert_int_equal(rc, 0);
	memset(data, 'd', sizeof data - 1);
	ckr_event ev = ev_begin("big", CKR_KIND_SINGLE_LOOP, self_token(), NULL, NULL);
	rc = apply_in(b, &ev, NULL);
	for (int q = 1; rc == 0 && q <= n; q++) {
		ev = ev_msg("big", 1, (uint64_t)q, data);
		rc = apply_in(b, &ev, NULL);
	}
	if (rc) {
		ckr_batch_abort(b);
		return rc;
	}
	return ckr_batch_commit(b);
}

static void test_full_map_grows_and_replays(void **state)
{
	fx *f = *state;
	ckr_store_rw_opts o = { .map_size = 64u << 10 };
	int rc, grown = 0;
	reopen_rw(f, &o);
	while ((rc = big_batch(f->s, 200)) == CKR_STORE_MAPFULL && grown < 20) {
		assert_int_equal(ckr_store_grow(f->s), 0);
		grown++;
	}
	assert_int_equal(rc, 0);
	assert_true(grown >= 3);
	ckr_run_info in = get(f->s, "big");
	assert_int_equal(in.events, 201); /* every replay was all or nothing */
	assert_int_equal(in.last_seq, 200);
	assert_int_equal(ckr_store_counter(f->s, "stored"), 201);
}

static void test_reader_follows_a_map_grown_by_the_flusher(void **state)
{
	fx *f = *state;
	ckr_store_rw_opts o = { .map_size = 64u << 10 };
	ckr_store_opts ro = { .read_only = true };
	reopen_rw(f, &o);
	/* The reader maps the store while it is still small ... */
	child c = child_start(f->dir, &ro, "big", job_read_big, NULL, 0);
	while (big_batch(f->s, 200) == CKR_STORE_MAPFULL)
		assert_int_equal(ckr_store_grow(f->s), 0);
	/* ... and must adopt the grown map (MDB_MAP_RESIZED) to read it. */
	child_go(&c);
	assert_int_equal(child_result(&c), 0);
	child_finish(&c);
}

static void test_sync_none_then_explicit_sync(void **state)
{
	fx *f = *state;
	ckr_store_rw_opts o = { .sync = CKR_SYNC_NONE };
	reopen_rw(f, &o);
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	assert_int_equal(ckr_store_sync(f->s), 0);
	reopen_rw(f, NULL);
	assert_int_equal(get(f->s, "run-1").state, CKR_RUN_RUNNING);
}

/* Overwrite meta "schema" with another version, as another build would. */
static void write_schema(const char *dir, uint32_t version)
{
	raw r = raw_open(dir, true);
	uint8_t b[4] = { (uint8_t)version, (uint8_t)(version >> 8),
			 (uint8_t)(version >> 16), (uint8_t)(version >> 24) };
	MDB_val k = { 6, "schema" }, v = { 4, b };
	assert_int_equal(mdb_put(r.txn, raw_dbi(&r, "meta"), &k, &v, 0), 0);
	raw_close(&r, true);
}

static void test_schema_mismatch_is_refused(void **state)
{
	fx *f = *state;
	ckr_store *s = NULL;
	ckr_store_opts ro = { .read_only = true };
	close_rw(f);
	write_schema(f->dir, CKR_STORE_SCHEMA + 1);
	assert_int_equal(ckr_store_open(f->dir, NULL, &s), CKR_EVERSION);
	assert_int_equal(ckr_store_open(f->dir, &ro, &s), CKR_EVERSION);
	assert_int_equal(ckr_store_open_rw(f->dir, NULL, &s), CKR_EVERSION);
	assert_null(s);
	write_schema(f->dir, CKR_STORE_SCHEMA);
	assert_int_equal(ckr_store_open(f->dir, &ro, &s), 0);
	ckr_store_close(s);
}

static void test_foreign_environment_is_refused(void **state)
{
	fx *f = *state;
	char *dir = tu_tmpdir("foreign");
	ckr_store *s = NULL;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { 1, "k" }, v = { 1, "v" };
	(void)f;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_int_equal(ckr_store_open_rw(dir, NULL, &s), CKR_EVERSION);
	assert_int_equal(ckr_store_open(dir, NULL, &s), -ENOENT);
	tu_rmrf(dir);
}

static void test_open_requires_an_existing_store(void **state)
{
	fx *f = *state;
	char *dir = tu_tmpdir("empty");
	ckr_store *s = NULL;
	ckr_store_opts ro = { .read_only = true };
	(void)f;
	assert_int_equal(ckr_store_open(dir, NULL, &s), -ENOENT);
	assert_int_equal(ckr_store_open(dir, &ro, &s), -ENOENT);
	assert_int_equal(ckr_store_open("/nonexistent/ckring", &ro, &s), -ENOENT);
	assert_int_equal(ckr_store_open_rw("/nonexistent/ckring", NULL, &s), -ENOENT);
	assert_null(s);
	tu_rmrf(dir);
}

static void test_read_only_store_refuses_writes(void **state)
{
	fx *f = *state;
	ckr_store *s;
	ckr_batch *b;
	ckr_claim c;
	ckr_store_opts ro = { .read_only = true };
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, dead_token());
	close_rw(f);
	assert_int_equal(ckr_store_open(f->dir, &ro, &s), 0);
	assert_int_equal(ckr_store_claim(s, "run-1", 5, &c), -EROFS);
	assert_int_equal(ckr_batch_begin(s, &b), -EROFS);
	assert_int_equal(ckr_store_prune(s, 1, 1), -EROFS);
	assert_int_equal(get(s, "run-1").state, CKR_RUN_RUNNING);
	ckr_store_close(s);
}

/* ---- listing and claiming ---- */

static void test_list_filters_runs(void **state)
{
	fx *f = *state;
	ckr_run_info *v;
	size_t n;
	begin_run(f->s, "live", CKR_KIND_SINGLE_LOOP, self_token());
	begin_run(f->s, "dead", CKR_KIND_MULTI_PHASE, dead_token());
	begin_run(f->s, "done", CKR_KIND_SINGLE_LOOP, dead_token());
	begin_run(f->s, "failed", CKR_KIND_SINGLE_LOOP, self_token());
	ckr_event end = ev_base(CKR_EV_COMPLETE, "done", 1, 1);
	ckr_event fail = ev_fail("failed", 1, 1, "x");
	assert_int_equal(apply1(f->s, &end), CKR_APPLY_STORED);
	assert_int_equal(apply1(f->s, &fail), CKR_APPLY_STORED);

	assert_int_equal(ckr_store_list(f->s, CKR_LIST_INTERRUPTED, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(v[0].id, "dead", 4);
	assert_int_equal(v[0].kind, CKR_KIND_MULTI_PHASE);
	assert_false(v[0].owner_alive);
	free(v);
	assert_int_equal(ckr_store_list(f->s, CKR_LIST_RUNNING, &v, &n), 0);
	assert_int_equal(n, 2);
	free(v);
	assert_int_equal(ckr_store_list(f->s, CKR_LIST_ALL, &v, &n), 0);
	assert_int_equal(n, 4);
	free(v);
	assert_int_equal(ckr_store_list(f->s, 3, &v, &n), -EINVAL);
}

static void test_list_of_an_empty_store(void **state)
{
	fx *f = *state;
	ckr_run_info *v = (ckr_run_info *)1;
	size_t n = 99;
	assert_int_equal(ckr_store_list(f->s, CKR_LIST_ALL, &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
}

/* Close the flusher's store, open a recoverer's, claim id. */
static int claim_as_recoverer(fx *f, const char *id, const ckr_store_opts *o,
			      ckr_claim *c, ckr_run_info *after)
{
	ckr_store *s;
	close_rw(f);
	assert_int_equal(ckr_store_open(f->dir, o, &s), 0);
	int rc = ckr_store_claim(s, id, strlen(id), c);
	if (after)
		assert_int_equal(ckr_store_get(s, id, strlen(id), after), 0);
	ckr_store_close(s);
	reopen_rw(f, NULL);
	return rc;
}

static void test_claim_unknown_run(void **state)
{
	fx *f = *state;
	ckr_claim c;
	assert_int_equal(claim_as_recoverer(f, "nobody", NULL, &c, NULL), -ENOENT);
}

static void test_claim_terminal_run(void **state)
{
	fx *f = *state;
	ckr_claim c;
	uint64_t dead = dead_token();
	begin_run(f->s, "done", CKR_KIND_SINGLE_LOOP, dead);
	begin_run(f->s, "failed", CKR_KIND_SINGLE_LOOP, dead);
	mark_drained(f->s, dead);
	ckr_event end = ev_base(CKR_EV_COMPLETE, "done", 1, 1);
	ckr_event fail = ev_fail("failed", 1, 1, "x");
	assert_int_equal(apply1(f->s, &end), CKR_APPLY_STORED);
	assert_int_equal(apply1(f->s, &fail), CKR_APPLY_STORED);
	assert_int_equal(claim_as_recoverer(f, "done", NULL, &c, NULL), CKR_ETERMINAL);
	assert_int_equal(claim_as_recoverer(f, "failed", NULL, &c, NULL), CKR_ETERMINAL);
}

static void test_claim_of_a_live_owner_is_refused(void **state)
{
	fx *f = *state;
	ckr_claim c;
	ckr_run_info in;
	begin_run(f->s, "mine", CKR_KIND_SINGLE_LOOP, self_token());
	assert_int_equal(claim_as_recoverer(f, "mine", NULL, &c, &in),
			 CKR_ENOTINTERRUPTED);
	assert_int_equal(in.incarnation, 1);
	assert_int_equal(in.attempts, 0);
}

static void test_claim_of_an_undrained_dead_owner_waits(void **state)
{
	fx *f = *state;
	ckr_claim c;
	ckr_run_info in;
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, dead_token());
	assert_int_equal(claim_as_recoverer(f, "run-1", NULL, &c, &in),
			 CKR_ENOTDRAINED);
	assert_int_equal(in.attempts, 0);
}

static void test_claim_of_a_drained_run_succeeds(void **state)
{
	fx *f = *state;
	ckr_claim c;
	ckr_run_info in;
	uint64_t dead = dead_token();
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, dead);
	messages(f->s, "run-1", 1, 1, 3);
	mark_drained(f->s, dead);
	assert_int_equal(claim_as_recoverer(f, "run-1", NULL, &c, &in), 0);
	assert_int_equal(c.id_len, 5);
	assert_memory_equal(c.id, "run-1", 5);
	assert_int_equal(c.kind, CKR_KIND_SINGLE_LOOP);
	assert_int_equal(c.incarnation, 2);
	assert_int_equal(c.attempts, 1);
	assert_int_equal(c.next_seq, 4);
	assert_string_equal(c.label, "v1.2");
	assert_int_equal(in.incarnation, 2);
	assert_int_equal(in.owner_pid, getpid());
	assert_true(in.owner_alive);

	/* The fence: the old writer is refused, the claimer continues. */
	test_writer before = *writer_of((const uint8_t *)"run-1", 5);
	ckr_identity me;
	assert_int_equal(ckr_proc_self_identity(&me), 0);
	assert_true(c.writer != 0 && c.writer != before.writer);
	assert_true(c.owner_token == me.token && c.owner_nonce == me.nonce);
	ckr_event old = ev_msg("run-1", 1, 4, "stale writer");
	old.writer = before.writer;
	ckr_batch *b;
	ckr_apply what;
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	assert_int_equal(apply_as(b, &old, &before.from, &what), 0);
	assert_int_equal(what, CKR_APPLY_FOREIGN);
	old.incarnation = 2; /* even naming the new incarnation */
	assert_int_equal(apply_as(b, &old, &before.from, &what), 0);
	assert_int_equal(what, CKR_APPLY_FOREIGN);
	assert_int_equal(ckr_batch_commit(b), 0);
	set_writer((const uint8_t *)"run-1", 5, c.writer, &me);
	ckr_event stale = ev_msg("run-1", 1, 4, "right writer, old incarnation");
	ckr_event next = ev_msg("run-1", 2, 4, "resumed");
	assert_int_equal(apply1(f->s, &stale), CKR_APPLY_STALE);
	assert_int_equal(apply1(f->s, &next), CKR_APPLY_STORED);
	assert_int_equal(get(f->s, "run-1").last_seq, 4);
	/* This process owns it now: not interrupted. */
	assert_int_equal(claim_as_recoverer(f, "run-1", NULL, &c, NULL),
			 CKR_ENOTINTERRUPTED);
}

static void test_claim_after_the_segment_was_recreated(void **state)
{
	fx *f = *state;
	ckr_claim c;
	ckr_batch *b;
	ckr_event ev = ev_begin("run-1", CKR_KIND_SINGLE_LOOP, dead_token(), NULL, NULL);
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	assert_int_equal(apply_in(b, &ev, NULL), 0);
	assert_int_equal(ckr_batch_set_cursor(b, EPOCH_A, 0, 64), 0);
	assert_int_equal(ckr_batch_commit(b), 0);
	assert_int_equal(claim_as_recoverer(f, "run-1", NULL, &c, NULL), CKR_ENOTDRAINED);
	rebind(f->s, EPOCH_B);
	set_cursor(f->s, EPOCH_B, 0, 0);
	assert_int_equal(claim_as_recoverer(f, "run-1", NULL, &c, NULL), 0);
	assert_int_equal(c.incarnation, 2);
}

static void test_claim_past_max_attempts_fails_the_run(void **state)
{
	fx *f = *state;
	ckr_store_rw_opts o = { .max_attempts = 1 }; /* recorded in meta */
	ckr_claim c;
	ckr_run_info in;
	uint64_t dead = dead_token();
	reopen_rw(f, &o);
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, dead);
	mark_drained(f->s, dead);

	/* A first recoverer claims, then dies. */
	close_rw(f);
	pid_t first = claim_in_child(f->dir, "run-1");
	reopen_rw(f, &o);
	in = get(f->s, "run-1");
	assert_int_equal(in.attempts, 1);
	assert_int_equal(in.owner_pid, first);
	assert_false(in.owner_alive);
	end_dead_owners(f->s); /* E2: the dead claimer held no lane */

	assert_int_equal(claim_as_recoverer(f, "run-1", NULL, &c, &in), CKR_EEXHAUSTED);
	assert_int_equal(in.state, CKR_RUN_FAILED);
	assert_string_equal(in.error, "recovery exhausted");
	assert_int_equal(in.attempts, 1);
	assert_int_equal(claim_as_recoverer(f, "run-1", NULL, &c, NULL), CKR_ETERMINAL);
}

static void test_recoverer_limit_overrides_meta(void **state)
{
	fx *f = *state;
	ckr_store_opts o = { .max_attempts = 3 };
	ckr_store_rw_opts rw = { .max_attempts = 1 };
	ckr_claim c;
	ckr_run_info in;
	uint64_t dead = dead_token();
	reopen_rw(f, &rw);
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, dead);
	mark_drained(f->s, dead);
	close_rw(f);
	claim_in_child(f->dir, "run-1");
	reopen_rw(f, &rw); /* meta keeps max_attempts 1 */
	in = get(f->s, "run-1");
	assert_false(in.owner_alive);
	end_dead_owners(f->s); /* E2: the dead claimer held no lane */
	assert_int_equal(claim_as_recoverer(f, "run-1", &o, &c, NULL), 0);
	assert_int_equal(c.attempts, 2);
	assert_int_equal(c.incarnation, 3);
}

static void test_claim_batch_claims_each_as_alone(void **state)
{
	fx *f = *state;
	uint64_t dead = dead_token();
	begin_run(f->s, "b-ok1", CKR_KIND_SINGLE_LOOP, dead);
	begin_run(f->s, "b-ok2", CKR_KIND_MULTI_PHASE, dead);
	begin_run(f->s, "b-live", CKR_KIND_SINGLE_LOOP, self_token());
	begin_run(f->s, "b-done", CKR_KIND_SINGLE_LOOP, dead);
	messages(f->s, "b-ok1", 1, 1, 3);
	ckr_event end = ev_base(CKR_EV_COMPLETE, "b-done", 1, 1);
	assert_int_equal(apply1(f->s, &end), CKR_APPLY_STORED);
	mark_drained(f->s, dead);
	ckr_run_info list[5];
	const char *ids[5] = { "b-ok1", "b-ok2", "b-live", "b-done", "b-none" };
	for (int i = 0; i < 5; i++) {
		memset(&list[i], 0, sizeof list[i]);
		list[i].id_len = strlen(ids[i]);
		memcpy(list[i].id, ids[i], list[i].id_len);
	}
	ckr_claim c[5];
	int res[5];
	close_rw(f);
	ckr_store *s;
	assert_int_equal(ckr_store_open(f->dir, NULL, &s), 0);
	assert_int_equal(ckr_store_claim_batch(s, list, 5, c, res), 2);
	assert_int_equal(res[0], 0);
	assert_int_equal(res[1], 0);
	assert_int_equal(res[2], CKR_ENOTINTERRUPTED);
	assert_int_equal(res[3], CKR_ETERMINAL);
	assert_int_equal(res[4], -ENOENT);
	assert_int_equal(c[0].next_seq, 4);
	assert_int_equal(c[0].incarnation, 2);
	assert_int_equal(c[1].kind, CKR_KIND_MULTI_PHASE);
	assert_true(c[0].writer != c[1].writer);
	/* Claimed now: a second batch (or anyone) finds them taken. */
	assert_int_equal(ckr_store_claim_batch(s, list, 2, c, res), 0);
	assert_int_equal(res[0], CKR_ENOTINTERRUPTED);
	assert_int_equal(ckr_store_claim_batch(s, list, 0, c, res), 0);
	ckr_store_close(s);
	reopen_rw(f, NULL);
}

static int job_claim_batch(ckr_store *s, const char *prefix)
{
	ckr_run_info list[20];
	ckr_claim c[20];
	int res[20];
	for (int i = 0; i < 20; i++) {
		memset(&list[i], 0, sizeof list[i]);
		list[i].id_len = (size_t)snprintf((char *)list[i].id, CKR_RUN_ID_MAX, "%s%02d",
						  prefix, i);
	}
	int won = ckr_store_claim_batch(s, list, 20, c, res);
	for (int i = 0; i < 20; i++)
		if (res[i] != 0 && res[i] != CKR_ECLAIMED)
			return -1000 - i;
	return won; /* how many this process won */
}

/* Two processes claim the same 20 runs in one batch each, at once: every
 * run is won by exactly one of them. */
static void test_claim_batch_race_has_one_winner_per_run(void **state)
{
	fx *f = *state;
	uint64_t dead = dead_token();
	for (int i = 0; i < 20; i++) {
		char id[16];
		snprintf(id, sizeof id, "race%02d", i);
		begin_run(f->s, id, CKR_KIND_SINGLE_LOOP, dead);
	}
	mark_drained(f->s, dead);
	close_rw(f);
	child a = child_start(f->dir, NULL, "race", job_claim_batch, NULL, 0);
	child b = child_start(f->dir, NULL, "race", job_claim_batch, &a, 1);
	child_go(&a);
	child_go(&b);
	int wa = child_result(&a), wb = child_result(&b);
	assert_true(wa >= 0 && wb >= 0);
	assert_int_equal(wa + wb, 20);
	child_finish(&a);
	child_finish(&b);
	reopen_rw(f, NULL);
	for (int i = 0; i < 20; i++) {
		char id[16];
		snprintf(id, sizeof id, "race%02d", i);
		ckr_run_info in = get(f->s, id);
		assert_int_equal(in.incarnation, 2);
		assert_int_equal(in.attempts, 1);
	}
}

static void test_claim_race_has_one_winner(void **state)
{
	fx *f = *state;
	uint64_t dead = dead_token();
	begin_run(f->s, "contested", CKR_KIND_MULTI_PHASE, dead);
	mark_drained(f->s, dead);
	close_rw(f);

	child a = child_start(f->dir, NULL, "contested", job_claim, NULL, 0);
	child b = child_start(f->dir, NULL, "contested", job_claim, &a, 1);
	child_go(&a); /* both are open and waiting: release them together */
	child_go(&b);
	int ra = child_result(&a), rb = child_result(&b);
	/* The winner holds its claim (stays alive) until both answered. */
	assert_true((ra == 0 && rb == CKR_ECLAIMED) || (ra == CKR_ECLAIMED && rb == 0));
	pid_t winner = ra == 0 ? a.pid : b.pid;
	child_finish(&a);
	child_finish(&b);

	reopen_rw(f, NULL);
	ckr_run_info in = get(f->s, "contested");
	assert_int_equal(in.incarnation, 2);
	assert_int_equal(in.attempts, 1);
	assert_int_equal(in.owner_pid, winner);
}

/* ---- resume ---- */

static void test_resume_stops_at_a_gap(void **state)
{
	fx *f = *state;
	ckr_resume *rs;
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	messages(f->s, "run-1", 1, 1, 2);
	messages(f->s, "run-1", 1, 4, 5);
	messages(f->s, "run-1", 1, 8, 8);
	assert_int_equal(ckr_store_resume(f->s, "run-1", 5, &rs), 0);
	assert_int_equal(rs->kind, CKR_KIND_SINGLE_LOOP);
	assert_int_equal(rs->state, CKR_RUN_RUNNING);
	assert_int_equal(rs->next_seq, 9);
	assert_int_equal(rs->n_history, 2);
	assert_int_equal(rs->history[0].seq, 1);
	assert_int_equal(rs->history[1].seq, 2);
	assert_int_equal(rs->history[1].size, strlen("message 2"));
	assert_memory_equal(rs->history[1].data, "message 2", strlen("message 2"));
	assert_int_equal(rs->n_gaps, 3);
	assert_int_equal(rs->gaps[0], 3);
	assert_int_equal(rs->gaps[1], 6);
	assert_int_equal(rs->gaps[2], 7);
	assert_null(rs->phases);
	assert_string_equal(rs->label, "v1.2");
	assert_int_equal(rs->meta_len, 5);
	assert_memory_equal(rs->meta, "meta!", 5);
	assert_int_equal(rs->id_len, 5);
	ckr_resume_free(rs);
}

static void test_resume_multi_phase_in_order(void **state)
{
	fx *f = *state;
	ckr_resume *rs;
	ckr_batch *b;
	begin_run(f->s, "mp", CKR_KIND_MULTI_PHASE, self_token());
	/* Applied out of order (e.g. from two lanes): stored by sequence. */
	ckr_event p2 = ev_phase("mp", 1, 2, 1, "execute", "did it");
	ckr_event p1 = ev_phase("mp", 1, 1, 0, "plan", "the plan");
	ckr_event p3 = ev_phase("mp", 1, 3, 2, "", "");
	assert_int_equal(ckr_batch_begin(f->s, &b), 0);
	assert_int_equal(apply_in(b, &p2, NULL), 0);
	assert_int_equal(apply_in(b, &p3, NULL), 0);
	assert_int_equal(apply_in(b, &p1, NULL), 0);
	assert_int_equal(ckr_batch_commit(b), 0);

	assert_int_equal(ckr_store_resume(f->s, "mp", 2, &rs), 0);
	assert_int_equal(rs->kind, CKR_KIND_MULTI_PHASE);
	assert_int_equal(rs->n_phases, 3);
	assert_null(rs->history);
	assert_int_equal(rs->n_gaps, 0);
	assert_int_equal(rs->next_seq, 4);
	assert_int_equal(rs->phases[0].index, 0);
	assert_string_equal(rs->phases[0].name, "plan");
	assert_memory_equal(rs->phases[0].data, "the plan", 8);
	assert_int_equal(rs->phases[1].index, 1);
	assert_int_equal(rs->phases[1].seq, 2);
	assert_string_equal(rs->phases[1].name, "execute");
	assert_int_equal(rs->phases[1].size, 6);
	assert_string_equal(rs->phases[2].name, "");
	assert_int_equal(rs->phases[2].size, 0);
	ckr_resume_free(rs);
}

static void test_resume_multi_phase_stops_at_a_gap(void **state)
{
	fx *f = *state;
	ckr_resume *rs;
	begin_run(f->s, "mp", CKR_KIND_MULTI_PHASE, self_token());
	ckr_event p1 = ev_phase("mp", 1, 1, 0, "a", "1");
	ckr_event p3 = ev_phase("mp", 1, 3, 2, "c", "3");
	assert_int_equal(apply1(f->s, &p1), CKR_APPLY_STORED);
	assert_int_equal(apply1(f->s, &p3), CKR_APPLY_STORED);
	assert_int_equal(ckr_store_resume(f->s, "mp", 2, &rs), 0);
	assert_int_equal(rs->n_phases, 1);
	assert_int_equal(rs->n_gaps, 1);
	assert_int_equal(rs->gaps[0], 2);
	ckr_resume_free(rs);
}

static void test_resume_of_an_unknown_run(void **state)
{
	fx *f = *state;
	ckr_resume *rs = NULL;
	assert_int_equal(ckr_store_resume(f->s, "nobody", 6, &rs), -ENOENT);
	assert_int_equal(ckr_store_resume(f->s, "", 0, &rs), -EINVAL);
	assert_null(rs);
}

static void test_resume_refuses_absurd_gaps(void **state)
{
	fx *f = *state;
	ckr_resume *rs = NULL;
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, self_token());
	ckr_event far = ev_msg("run-1", 1, UINT64_C(1) << 40, "far away");
	assert_int_equal(apply1(f->s, &far), CKR_APPLY_STORED);
	assert_int_equal(ckr_store_resume(f->s, "run-1", 5, &rs), -E2BIG);
	assert_null(rs);
}

static void test_resume_of_a_long_uuid_id(void **state)
{
	fx *f = *state;
	ckr_resume *rs;
	char id[CKR_RUN_ID_MAX + 1];
	memset(id, 'u', CKR_RUN_ID_MAX);
	id[CKR_RUN_ID_MAX] = '\0';
	/* A 64-byte id next to a shorter one with the same prefix. */
	begin_run(f->s, id, CKR_KIND_SINGLE_LOOP, self_token());
	begin_run(f->s, "uuuu", CKR_KIND_SINGLE_LOOP, self_token());
	messages(f->s, id, 1, 1, 2);
	messages(f->s, "uuuu", 1, 1, 5);
	assert_int_equal(ckr_store_resume(f->s, id, CKR_RUN_ID_MAX, &rs), 0);
	assert_int_equal(rs->n_history, 2);
	assert_int_equal(rs->n_gaps, 0);
	ckr_resume_free(rs);
}

/* ---- pruning ---- */

static void test_prune_removes_old_failed_runs(void **state)
{
	fx *f = *state;
	ckr_run_info in;
	begin_run(f->s, "old", CKR_KIND_SINGLE_LOOP, self_token());
	begin_run(f->s, "new", CKR_KIND_SINGLE_LOOP, self_token());
	messages(f->s, "old", 1, 1, 3);
	ckr_event f1 = ev_fail("old", 1, 4, "x");
	ckr_event f2 = ev_fail("new", 1, 1, "y");
	assert_int_equal(apply1(f->s, &f1), CKR_APPLY_STORED);
	assert_int_equal(apply1(f->s, &f2), CKR_APPLY_STORED);
	age_run(f, "old", 3600);
	assert_int_equal(ckr_store_prune(f->s, 0, 0), 0);
	assert_int_equal(ckr_store_prune(f->s, 0, 3600), 1);
	assert_int_equal(ckr_store_get(f->s, "old", 3, &in), -ENOENT);
	assert_int_equal(get(f->s, "new").state, CKR_RUN_FAILED);

	close_rw(f);
	raw r = raw_open(f->dir, false);
	MDB_stat st;
	assert_int_equal(mdb_stat(r.txn, raw_dbi(&r, "events"), &st), 0);
	assert_int_equal(st.ms_entries, 1); /* the begin row of "new" */
	raw_close(&r, false);
}

/* ---- the on-disk format, read with plain liblmdb ---- */

static void check_raw_meta(raw *r)
{
	MDB_val k = { 6, "schema" }, v;
	assert_int_equal(mdb_get(r->txn, raw_dbi(r, "meta"), &k, &v), 0);
	assert_int_equal(v.mv_size, 4);
	assert_int_equal(le(v.mv_data, 4), CKR_STORE_SCHEMA);
	k = (MDB_val){ 7, "segment" };
	assert_int_equal(mdb_get(r->txn, raw_dbi(r, "meta"), &k, &v), 0);
	assert_int_equal(v.mv_size, strlen(TEST_SEGMENT));
	assert_memory_equal(v.mv_data, TEST_SEGMENT, strlen(TEST_SEGMENT));
	k = (MDB_val){ 5, "epoch" };
	assert_int_equal(mdb_get(r->txn, raw_dbi(r, "meta"), &k, &v), 0);
	assert_memory_equal(v.mv_data, EPOCH_A, CKR_EPOCH_BYTES);
}

static void check_raw_run(raw *r, uint64_t owner)
{
	MDB_val k = { 5, "run-1" }, v;
	assert_int_equal(mdb_get(r->txn, raw_dbi(r, "runs"), &k, &v), 0);
	const uint8_t *p = v.mv_data;
	ckr_identity id = owner_of(owner);
	assert_int_equal(le(p, 2), 2);            /* record version */
	assert_int_equal(p[2], CKR_RUN_RUNNING);
	assert_int_equal(p[3], CKR_KIND_SINGLE_LOOP);
	assert_int_equal(le(p + 4, 4), 1);        /* incarnation */
	assert_true(le(p + 8, 8) == owner);
	assert_int_equal(le(p + 48, 8), 3);       /* events */
	assert_int_equal(le(p + 56, 8), 2);       /* last_seq */
	assert_memory_equal(p + 72, EPOCH_A, CKR_EPOCH_BYTES);
	assert_int_equal(le(p + 88, 2), 4);       /* label_len */
	assert_int_equal(le(p + 92, 4), 5);       /* meta_len */
	assert_true(le(p + 96, 8) == id.nonce);   /* owner nonce */
	assert_true(le(p + 104, 8) == writer_of((const uint8_t *)"run-1", 5)->writer);
	assert_int_equal(le(p + 112, 8), 2);      /* prefix_seq */
	assert_int_equal(le(p + 128, 8), 0);      /* set_aside */
	assert_memory_equal(p + 136, "v1.2meta!", 9);
	assert_int_equal(v.mv_size, 136 + 9);
}

/* The run's rows, walked in key order, are its events in sequence order. */
static void check_raw_events(raw *r)
{
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t want = 0;
	assert_int_equal(mdb_cursor_open(r->txn, raw_dbi(r, "events"), &c), 0);
	while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0) {
		const uint8_t *key = k.mv_data;
		ckr_event ev;
		assert_int_equal(k.mv_size, 1 + 5 + 8);
		assert_int_equal(key[0], 5);
		assert_memory_equal(key + 1, "run-1", 5);
		assert_int_equal(be(key + 6, 8), want);
		assert_int_equal(ckr_event_decode(v.mv_data, v.mv_size, &ev), 0);
		assert_int_equal(ev.seq, want);
		assert_int_equal(ev.type, want ? CKR_EV_MESSAGE : CKR_EV_BEGIN);
		want++;
	}
	assert_int_equal(want, 3);
	mdb_cursor_close(c);
}

static void check_raw_cursor(raw *r)
{
	uint8_t ck[CKR_EPOCH_BYTES + 4];
	memcpy(ck, EPOCH_A, CKR_EPOCH_BYTES);
	memcpy(ck + CKR_EPOCH_BYTES, "\0\0\0\7", 4); /* lane 7, big-endian */
	MDB_val k = { sizeof ck, ck }, v;
	assert_int_equal(mdb_get(r->txn, raw_dbi(r, "cursors"), &k, &v), 0);
	assert_int_equal(le(v.mv_data, 8), 4096);
}

static void test_format_is_readable_with_plain_lmdb(void **state)
{
	fx *f = *state;
	uint64_t owner = self_token();
	set_cursor(f->s, EPOCH_A, 7, 4096);
	begin_run(f->s, "run-1", CKR_KIND_SINGLE_LOOP, owner);
	messages(f->s, "run-1", 1, 1, 2);
	close_rw(f);

	raw r = raw_open(f->dir, false);
	check_raw_meta(&r);
	check_raw_run(&r, owner);
	check_raw_events(&r);
	check_raw_cursor(&r);
	raw_close(&r, false);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_begin_creates_running_run),
		T(test_messages_are_stored_and_counted),
		T(test_complete_clears_events_and_keeps_tombstone),
		T(test_complete_keeps_events_until_pruned),
		T(test_fail_keeps_events_and_error),
		T(test_long_error_is_cut_in_info),
		T(test_duplicate_begin_is_ignored),
		T(test_duplicate_begin_after_complete_is_ignored),
		T(test_malformed_begin_is_ignored),
		T(test_stale_incarnation_is_rejected),
		T(test_event_after_end_is_ignored),
		T(test_orphan_events_are_ignored),
		T(test_duplicate_seq_is_ignored),
		T(test_event_of_the_wrong_kind_is_ignored),
		T(test_apply_rejects_bad_arguments),
		T(test_one_batch_at_a_time),
		T(test_aborted_batch_writes_nothing),
		T(test_cursors_round_trip_per_epoch),
		T(test_cursors_survive_reopen),
		T(test_owner_drained_marks_run),
		T(test_new_epoch_means_owner_drained),
		T(test_quarantine_row_layout),
		T(test_counters_accumulate),
		T(test_full_map_grows_and_replays),
		T(test_reader_follows_a_map_grown_by_the_flusher),
		T(test_sync_none_then_explicit_sync),
		T(test_schema_mismatch_is_refused),
		T(test_foreign_environment_is_refused),
		T(test_open_requires_an_existing_store),
		T(test_read_only_store_refuses_writes),
		T(test_list_filters_runs),
		T(test_list_of_an_empty_store),
		T(test_claim_unknown_run),
		T(test_claim_terminal_run),
		T(test_claim_of_a_live_owner_is_refused),
		T(test_claim_of_an_undrained_dead_owner_waits),
		T(test_claim_of_a_drained_run_succeeds),
		T(test_claim_after_the_segment_was_recreated),
		T(test_claim_past_max_attempts_fails_the_run),
		T(test_recoverer_limit_overrides_meta),
		T(test_claim_race_has_one_winner),
		T(test_claim_batch_claims_each_as_alone),
		T(test_claim_batch_race_has_one_winner_per_run),
		T(test_resume_stops_at_a_gap),
		T(test_resume_multi_phase_in_order),
		T(test_resume_multi_phase_stops_at_a_gap),
		T(test_resume_of_an_unknown_run),
		T(test_resume_refuses_absurd_gaps),
		T(test_resume_of_a_long_uuid_id),
		T(test_prune_removes_old_failed_runs),
		T(test_format_is_readable_with_plain_lmdb),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
