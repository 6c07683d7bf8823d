/*
 * test_scribble.c — the segment is untrusted input (docs/DESIGN.md §8): a producer
 * process pushes verifiable events through the client API, the real flusher
 * (build/bin/ckring-flusher) drains them, and this test scribbles random
 * bytes into records that are already sealed DATA in the lane and into the
 * segment's counters. Afterwards the flusher still runs, it counted and
 * quarantined exactly the damaged records (segment `corrupt` counter, store
 * `quarantined`), and every undamaged event is in the store intact.
 *
 * How a known set is damaged: the flusher is SIGSTOPped while the lane is
 * drained (head == tail, so it holds no copy of what follows), the producer
 * pushes a round, the test walks the new records from head with
 * ckr_lane_read() into a private buffer (their positions and decoded
 * events), damages a random subset in the segment, and SIGCONTs the flusher.
 * Each run of a round is a begin (seq 0) and one message (seq 1), so a lost
 * event is visible through the public resume API: a lost begin leaves no run
 * (its message is counted "orphan"), a lost message an empty history.
 *
 * Seals (ring/PROTOCOL.md "Known limit"): a scribbled seal in a live lane
 * looks like a claim not yet sealed; the lane stalls there until its owner
 * detaches or dies, then resynchronises (C4 scan). The seal tests check the
 * stall (head stays put while the flusher keeps looping), then detach or
 * SIGKILL the producer and check that everything after the scribble lands.
 *
 * Tests named test_fixed_bug_* are regression tests for bugs this test found
 * (docs/BAD_INPUT.md B1..B4): skipped unless CKR_TEST_KNOWN_BUGS=1.
 * CKR_SEED replays a run (the seed is printed).
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
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckring.h"
#include "client/client.h"
#include "event/event.h"
#include "persist/store.h"
#include "ring/crc32c.h"
#include "ring/lane.h"
#include "shm/proc.h"
#include "shm/segment.h"
#include "tests/helpers/testutil.h"

#define LANES 4
#define LANE_BYTES 65536
#define SEG_BYTES tu_seg_size(LANES, LANE_BYTES)
#define RUNS_PER_ROUND 24
#define MAX_RECS (2 * RUNS_PER_ROUND + 8)
#define ROUNDS 12

/* ------------------------------------------------------------------ */
/* fixture: the flusher process, the segment, producers                */
/* ------------------------------------------------------------------ */

typedef struct producer {
	pid_t pid;
	int to, from;   /* command pipe, reply pipe */
	uint32_t lane;
} producer;

typedef struct expect {
	uint64_t damaged;   /* records made corrupt (segment corrupt, quarantined) */
	uint64_t orphans;   /* intact messages whose begin was lost */
	uint64_t stored;    /* events the store must have applied */
} expect;

typedef struct fixture {
	const char *seg;
	char *db;
	pid_t flusher;
	ckr_segment s;
	producer p[2];
	uint64_t rng;
	uint64_t corrupt_base; /* segment corrupt counter before our damage */
	expect want;
	uint32_t round;
} fixture;

/* One record of a round, as the test read it before damaging anything. */
typedef struct rec {
	uint64_t pos, next;
	uint32_t plen;
	ckr_event_type type;
	char id[CKR_RUN_ID_MAX + 1];
	uint64_t seq;
	bool lost;      /* damaged or scribbled: must not reach the runs */
	bool corrupt;   /* expected to be counted corrupt and quarantined */
} rec;

static uint64_t rnd(fixture *f)
{
	f->rng = tu_mix64(f->rng);
	return f->rng;
}

static const char *bin(const char *tool)
{
	static char path[512];
	const char *b = getenv("BUILD");
	snprintf(path, sizeof path, "%s/bin/%s", b && *b ? b : "build", tool);
	return path;
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

/* The message of run id: 16..415 bytes derived from the id. */
static size_t payload(const char *id, uint8_t *buf)
{
	uint64_t h = fnv1a64(id);
	size_t n = 16 + (size_t)(tu_mix64(h) % 400);
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(h + 7 * i + (i >> 3));
	return n;
}

static pid_t start_flusher(fixture *f)
{
	char size[32];
	snprintf(size, sizeof size, "%llu", (unsigned long long)SEG_BYTES);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
		unsetenv("CKR_FLUSHER_CRASH");
		execl(bin("ckring-flusher"), "ckring-flusher", "--segment", f->seg, "--db",
		      f->db, "--create", "--size", size, "--lanes", "4", "--idle-max-us", "200",
		      "--sync", "none", (char *)NULL);
		_exit(127);
	}
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (tu_now_ms() < deadline) {
		ckr_segment s;
		if (ckr_segment_attach(f->seg, true, &s) == 0) {
			uint64_t owner = atomic_load(&ckr_seg_fl(&s)->owner);
			ckr_segment_detach(&s);
			if (ckr_token_pid(owner) == pid)
				return pid;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		sched_yield();
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static bool flusher_running(fixture *f)
{
	return f->flusher > 0 && waitpid(f->flusher, NULL, WNOHANG) == 0;
}

/* ---- the producer process ---- */

typedef struct cmd {
	char op; /* 'P' push a round, 'X' detach, 'Q' quit */
	uint32_t round, runs;
} cmd;

static int push_retry_begin(ckr_client *c, const ckr_run_spec *s, ckr_run **r)
{
	int rc;
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while ((rc = ckr_run_begin(c, s, r, NULL)) == -EAGAIN && tu_now_ms() < deadline)
		sched_yield();
	return rc;
}

static void push_round(ckr_client *c, const cmd *k)
{
	uint8_t buf[512];
	char id[64];
	for (uint32_t j = 0; j < k->runs; j++) {
		snprintf(id, sizeof id, "s%u-%u", k->round, j);
		ckr_run_spec s = { .id = id, .id_len = strlen(id),
				   .kind = CKR_KIND_SINGLE_LOOP, .label = "scribble" };
		ckr_run *r;
		if (push_retry_begin(c, &s, &r))
			_exit(11);
		size_t n = payload(id, buf);
		int rc;
		int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
		while ((rc = ckr_run_message(r, buf, n, NULL)) == -EAGAIN &&
		       tu_now_ms() < deadline)
			sched_yield();
		if (rc)
			_exit(12);
		ckr_run_close(r);
	}
}

static void producer_main(const char *seg, int in, int out)
{
	ckr_client *c;
	if (ckr_client_attach(seg, NULL, &c))
		_exit(10);
	uint32_t lane = ckr_client_lane(c);
	if (write(out, &lane, 4) != 4)
		_exit(13);
	for (;;) {
		cmd k;
		if (read(in, &k, sizeof k) != (ssize_t)sizeof k)
			_exit(0); /* EOF: the test is done with us */
		uint32_t ok = 1;
		if (k.op == 'P')
			push_round(c, &k);
		else if (k.op == 'X')
			ckr_client_detach(c); /* the lane's owner leaves cleanly */
		else
			_exit(0);
		if (write(out, &ok, 4) != 4)
			_exit(13);
	}
}

static void start_producer(fixture *f, producer *p)
{
	int a[2], b[2];
	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(a[1]);
		close(b[0]);
		producer_main(f->seg, a[0], b[1]);
		_exit(0);
	}
	close(a[0]);
	close(b[1]);
	p->to = a[1];
	p->from = b[0];
	assert_int_equal(tu_read_full(p->from, &p->lane, 4, TU_TIMEOUT_MS), 0);
	assert_true(p->lane < LANES);
}

static void producer_do(producer *p, char op, uint32_t round, uint32_t runs)
{
	cmd k = { .op = op, .round = round, .runs = runs };
	uint32_t ok;
	assert_int_equal(write(p->to, &k, sizeof k), (ssize_t)sizeof k);
	assert_int_equal(tu_read_full(p->from, &ok, 4, TU_TIMEOUT_MS), 0);
}

static void stop_producer(producer *p, bool kill9)
{
	if (p->pid <= 0)
		return;
	if (kill9)
		kill(p->pid, SIGKILL);
	close(p->to);
	close(p->from);
	tu_wait_child(p->pid, TU_TIMEOUT_MS);
	p->pid = 0;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->seg = tu_segname("scr");
	f->db = tu_tmpdir("scr");
	f->rng = tu_seed("test_scribble");
	f->flusher = start_flusher(f);
	if (f->flusher < 0 || ckr_segment_attach(f->seg, false, &f->s) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	for (int i = 0; i < 2; i++)
		stop_producer(&f->p[i], true);
	if (f->flusher > 0) {
		kill(f->flusher, SIGCONT);
		kill(f->flusher, SIGTERM);
		tu_wait_child(f->flusher, TU_TIMEOUT_MS);
	}
	ckr_segment_detach(&f->s);
	ckr_segment_unlink(f->seg);
	tu_rmrf(f->db);
	free(f);
	return 0;
}

/* ------------------------------------------------------------------ */
/* lane helpers                                                        */
/* ------------------------------------------------------------------ */

static ckr_lane lane_of(fixture *f, uint32_t i)
{
	ckr_lane l;
	ckr_lane_view(&f->s, i, &l);
	return l;
}

/* Wait (bounded) until the flusher has persisted everything in the lane. */
static bool wait_drained(ckr_lane *l)
{
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (tu_now_ms() < deadline) {
		if (ckr_lane_head(l) == ckr_lane_tail(l))
			return true;
		sched_yield();
	}
	return false;
}

/* Wait (bounded) until head reaches pos. */
static bool wait_head(ckr_lane *l, uint64_t pos)
{
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (tu_now_ms() < deadline) {
		if (ckr_lane_head(l) == pos)
			return true;
		sched_yield();
	}
	return false;
}

/* Wait (bounded) until the flusher has gone round its loop for at least ms
 * more milliseconds (its heartbeat, written every pass, moved that far). */
static bool wait_flusher_loops(fixture *f, int ms)
{
	ckr_seg_flusher *fl = ckr_seg_fl(&f->s);
	uint64_t hb0 = atomic_load(&fl->heartbeat_ns);
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (tu_now_ms() < deadline) {
		if (atomic_load(&fl->heartbeat_ns) >= hb0 + (uint64_t)ms * 1000000)
			return true;
		sched_yield();
	}
	return false;
}

static void stop_flusher_now(fixture *f)
{
	assert_int_equal(kill(f->flusher, SIGSTOP), 0);
	assert_true(tu_wait_stopped(f->flusher, TU_TIMEOUT_MS));
}

/* Read the records [head, tail) of the lane into recs (walking from head
 * with the consumer's own read, into a private buffer). */
static size_t walk(ckr_lane *l, rec *recs, size_t max)
{
	static uint8_t buf[LANE_BYTES];
	uint64_t pos = ckr_lane_head(l), tail = ckr_lane_tail(l);
	size_t n = 0;
	while (pos != tail && n < max) {
		ckr_lane_record r;
		ckr_lane_read(l, pos, false, buf, sizeof buf, &r);
		assert_int_equal(r.status, CKR_READ_RECORD);
		ckr_event ev;
		assert_int_equal(ckr_event_decode(buf, r.payload_len, &ev), 0);
		rec *x = &recs[n++];
		memset(x, 0, sizeof *x);
		x->pos = r.pos;
		x->next = r.next;
		x->plen = r.payload_len;
		x->type = ev.type;
		x->seq = ev.seq;
		memcpy(x->id, ev.id, ev.id_len);
		pos = r.next;
	}
	assert_int_equal(pos, tail);
	return n;
}

static uint8_t *rec_bytes(ckr_lane *l, const rec *r)
{
	return l->data + (r->pos & l->mask);
}

/* Damage a sealed record's payload or header words (never its seal, never
 * the alignment bytes after the payload, which no checksum covers). */
static const char *damage(fixture *f, ckr_lane *l, rec *r)
{
	uint8_t *b = rec_bytes(l, r);
	uint8_t x = (uint8_t)(1 + rnd(f) % 255);
	const char *what;
	switch (rnd(f) % 4) {
	case 0:
		b[16 + rnd(f) % r->plen] ^= x;
		what = "payload byte";
		break;
	case 1:
		b[8 + rnd(f) % 4] ^= x;
		what = "crc";
		break;
	case 2: {
		uint32_t plen = r->plen ^ (uint32_t)(1 + rnd(f) % 0xffff);
		memcpy(b + 12, &plen, 4);
		what = "payload_len";
		break;
	}
	default: { /* a burst of up to 8 bytes from the header words on */
		uint64_t span = 8 + r->plen, len = 1 + rnd(f) % 8;
		uint64_t at = rnd(f) % span;
		for (uint64_t i = 0; i < len && at + i < span; i++)
			b[8 + at + i] ^= (uint8_t)(1 + rnd(f) % 255);
		what = "burst";
		break;
	}
	}
	r->lost = r->corrupt = true;
	return what;
}

/* Random values into the segment's counters and the flusher slot's
 * statistics and futex words (never its owner). */
static void scribble_counters(fixture *f, ckr_lane *l)
{
	ckr_seg_counters *c = ckr_seg_ctr(&f->s);
	ckr_seg_flusher *fl = ckr_seg_fl(&f->s);
	atomic_store(&c->reclaimed, rnd(f));
	atomic_store(&c->corrupt, rnd(f) >> 8);
	atomic_store(&c->lanes_freed, rnd(f));
	atomic_store(&fl->batches, rnd(f));
	atomic_store(&fl->records, rnd(f));
	atomic_store(&fl->heartbeat_ns, rnd(f));
	atomic_store(&fl->wake_seq, (uint32_t)rnd(f));
	atomic_store(&fl->commit_seq, (uint32_t)rnd(f));
	atomic_store(&fl->waiters, (uint32_t)rnd(f) % 4);
	atomic_store(&l->ctl->drained, rnd(f));
	atomic_store(&l->ctl->refused_full, rnd(f));
}

/* ------------------------------------------------------------------ */
/* checking the store                                                  */
/* ------------------------------------------------------------------ */

static const rec *find(const rec *recs, size_t n, const char *id, uint64_t seq)
{
	for (size_t i = 0; i < n; i++)
		if (recs[i].seq == seq && strcmp(recs[i].id, id) == 0)
			return &recs[i];
	return NULL;
}

/* Every run of the round: lost events absent, every other event intact.
 * The store's "quarantined" counter may exceed the damaged records by at most
 * q_slack (a scribbled seal: see seal_scenario). @return the excess. */
static uint64_t check_round(fixture *f, const rec *recs, size_t n, uint64_t q_slack)
{
	ckr_store *s;
	ckr_store_opts so = { .read_only = true };
	assert_int_equal(ckr_store_open(f->db, &so, &s), 0);
	uint8_t want[512];
	for (size_t i = 0; i < n; i++) {
		if (recs[i].type != CKR_EV_BEGIN)
			continue;
		const rec *b = &recs[i], *m = find(recs, n, b->id, 1);
		assert_non_null(m);
		ckr_resume *rs = NULL;
		int rc = ckr_store_resume(s, b->id, strlen(b->id), &rs);
		if (b->lost) {
			if (rc != -ENOENT)
				fail_msg("%s: its begin was damaged but the run exists (rc %d)",
					 b->id, rc);
			continue;
		}
		if (rc != 0)
			fail_msg("%s: intact begin not in the store: %s", b->id, ckr_strerror(rc));
		if (m->lost) {
			if (rs->n_history != 0)
				fail_msg("%s: damaged message reached the run", b->id);
		} else {
			size_t len = payload(b->id, want);
			if (rs->n_history != 1)
				fail_msg("%s: intact message missing (history %zu, gaps %zu)", b->id,
					 rs->n_history, rs->n_gaps);
			assert_int_equal(rs->history[0].size, len);
			assert_memory_equal(rs->history[0].data, want, len);
		}
		assert_int_equal(rs->n_gaps, 0);
		ckr_resume_free(rs);
	}
	uint64_t q = ckr_store_counter(s, "quarantined"), o = ckr_store_counter(s, "orphan");
	uint64_t st = ckr_store_counter(s, "stored");
	ckr_store_close(s);
	if (q < f->want.damaged || q > f->want.damaged + q_slack ||
	    o != f->want.orphans || st != f->want.stored)
		fail_msg("store counters: quarantined %llu (want %llu), orphan %llu (want "
			 "%llu), stored %llu (want %llu)", (unsigned long long)q,
			 (unsigned long long)f->want.damaged, (unsigned long long)o,
			 (unsigned long long)f->want.orphans, (unsigned long long)st,
			 (unsigned long long)f->want.stored);
	return q - f->want.damaged;
}

/* What the store must have gained from a round. */
static void account(fixture *f, const rec *recs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const rec *r = &recs[i];
		f->want.damaged += r->corrupt;
		if (r->lost)
			continue;
		if (r->type == CKR_EV_BEGIN) {
			f->want.stored++;
		} else {
			const rec *b = find(recs, n, r->id, 0);
			assert_non_null(b);
			if (b->lost)
				f->want.orphans++;
			else
				f->want.stored++;
		}
	}
}

static uint64_t seg_corrupt(fixture *f)
{
	return atomic_load(&ckr_seg_ctr(&f->s)->corrupt);
}

static uint64_t seg_reclaimed(fixture *f)
{
	return atomic_load(&ckr_seg_ctr(&f->s)->reclaimed);
}

/* Stop the flusher at a drained lane, push a round, read it back. */
static size_t stopped_round(fixture *f, producer *p, ckr_lane *l, rec *recs)
{
	assert_true(wait_drained(l));
	stop_flusher_now(f);
	producer_do(p, 'P', ++f->round, RUNS_PER_ROUND);
	size_t n = walk(l, recs, MAX_RECS);
	assert_int_equal(n, 2 * RUNS_PER_ROUND);
	return n;
}

/* ------------------------------------------------------------------ */
/* tests                                                               */
/* ------------------------------------------------------------------ */

static void test_scribbled_records_quarantined_rest_intact(void **state)
{
	fixture *f = *state;
	start_producer(f, &f->p[0]);
	ckr_lane l = lane_of(f, f->p[0].lane);
	rec recs[MAX_RECS];
	uint64_t total_damaged = 0, counter_scribbles = 0;
	f->corrupt_base = seg_corrupt(f);
	for (int round = 0; round < ROUNDS; round++) {
		size_t n = stopped_round(f, &f->p[0], &l, recs);
		if (round % 3 == 1) { /* counters too, while the flusher is stopped */
			scribble_counters(f, &l);
			f->corrupt_base = seg_corrupt(f) - f->want.damaged;
			counter_scribbles++;
		}
		for (size_t i = 0; i < n; i++)
			if (rnd(f) % 100 < 20)
				damage(f, &l, &recs[i]);
		account(f, recs, n);
		assert_int_equal(kill(f->flusher, SIGCONT), 0);
		assert_true(wait_drained(&l));
		assert_true(flusher_running(f));
		assert_int_equal(seg_corrupt(f) - f->corrupt_base, f->want.damaged);
		check_round(f, recs, n, 0);
	}
	total_damaged = f->want.damaged;
	assert_true(total_damaged > 0);
	fprintf(stderr, "scribble: %d rounds, %d events, %llu damaged (all quarantined), "
		"%llu orphaned messages, %llu stored intact, %llu counter scribbles\n",
		ROUNDS, ROUNDS * 2 * RUNS_PER_ROUND, (unsigned long long)total_damaged,
		(unsigned long long)f->want.orphans, (unsigned long long)f->want.stored,
		(unsigned long long)counter_scribbles);
}

/* The lap tag of a position (ring/lane.c: the lap, salted per lane). */
static uint64_t lap_tag(const ckr_lane *l, uint64_t pos)
{
	return ((pos >> l->shift) ^ l->salt) & ((UINT64_C(1) << 40) - 1);
}

/* A seal made invalid for its position (another lap tag, or state 0). */
static void scribble_seal_invalid(fixture *f, ckr_lane *l, rec *r)
{
	uint64_t tag = lap_tag(l, r->pos);
	uint64_t w = rnd(f) & ((UINT64_C(1) << 24) - 1);
	if (rnd(f) % 2)
		w = (((tag ^ (1 + rnd(f) % 1000)) & ((UINT64_C(1) << 40) - 1)) << 24) | w;
	else
		w = (tag << 24) | (w & ~UINT64_C(3)); /* right tag, state NONE */
	memcpy(rec_bytes(l, r), &w, 8);
	r->lost = true;
}

/* A seal turned back to BUSY (valid: a claim "being written"). */
static void scribble_seal_busy(ckr_lane *l, rec *r)
{
	uint8_t *b = rec_bytes(l, r);
	uint64_t w;
	memcpy(&w, b, 8);
	w = (w & ~UINT64_C(3)) | CKR_SEAL_BUSY;
	memcpy(b, &w, 8);
	r->lost = true;
}

/* Scribble the seal of one message record in the middle of a round and
 * damage two records after it; check the documented stall while the owner
 * is live, then let the owner go (detach or SIGKILL) and check that the lane
 * resynchronises and everything else lands.
 *
 * PROTOCOL.md says the scribbled record "is quarantined"; today it is
 * skipped as an abandoned claim (counted `reclaimed`, its bytes not kept):
 * docs/BAD_INPUT.md B4. Either is accepted here (one record of slack in the
 * corrupt/quarantined counts) unless CKR_TEST_KNOWN_BUGS=1, which requires
 * the documented behaviour. */
static void seal_scenario(fixture *f, producer *p, bool busy, bool kill9)
{
	ckr_lane l = lane_of(f, p->lane);
	rec recs[MAX_RECS];
	uint64_t reclaimed0 = seg_reclaimed(f);
	f->corrupt_base = seg_corrupt(f) - f->want.damaged;
	size_t n = stopped_round(f, p, &l, recs);
	size_t m = n / 2 + 1; /* a message: its payload holds no seal-like word */
	assert_int_equal(recs[m].type, CKR_EV_MESSAGE);
	if (busy)
		scribble_seal_busy(&l, &recs[m]);
	else
		scribble_seal_invalid(f, &l, &recs[m]);
	damage(f, &l, &recs[m + 3]);
	damage(f, &l, &recs[m + 6]);
	account(f, recs, n);
	assert_int_equal(kill(f->flusher, SIGCONT), 0);
	/* Everything before the scribbled seal lands; the lane stalls there. */
	assert_true(wait_head(&l, recs[m].pos));
	assert_true(wait_flusher_loops(f, 200));
	assert_int_equal(ckr_lane_head(&l), recs[m].pos); /* the documented stall */
	assert_true(flusher_running(f));
	/* The owner goes: the flusher resynchronises and drains the rest. */
	if (kill9)
		stop_producer(p, true);
	else
		producer_do(p, 'X', 0, 0);
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while ((ckr_lane_head(&l) != ckr_lane_tail(&l) || ckr_lane_owner(&l) != 0) &&
	       tu_now_ms() < deadline)
		sched_yield();
	assert_int_equal(ckr_lane_head(&l), ckr_lane_tail(&l));
	assert_int_equal(ckr_lane_owner(&l), 0); /* drained and freed */
	assert_true(flusher_running(f));
	uint64_t corrupt = seg_corrupt(f) - f->corrupt_base;
	assert_true(corrupt == f->want.damaged || corrupt == f->want.damaged + 1);
	uint64_t extra = check_round(f, recs, n, 1);
	uint64_t reclaimed = seg_reclaimed(f) - reclaimed0;
	fprintf(stderr, "scribble: %s seal, owner %s: lane stalled at %llu while the owner "
		"lived, resynchronised after: %llu skipped as reclaimed, %llu damaged records "
		"quarantined; the scribbled record was %s\n", busy ? "BUSY" : "invalid",
		kill9 ? "SIGKILLed" : "detached", (unsigned long long)recs[m].pos,
		(unsigned long long)reclaimed, (unsigned long long)f->want.damaged,
		extra ? "quarantined (as PROTOCOL.md says)"
		      : "NOT quarantined, only counted reclaimed (B4)");
	assert_int_equal(extra, 1); /* B4 (fixed): PROTOCOL.md "Known limit" */
	if (!kill9)
		stop_producer(p, false);
}

static void test_scribbled_seal_stalls_until_detach_then_resyncs(void **state)
{
	fixture *f = *state;
	start_producer(f, &f->p[0]);
	seal_scenario(f, &f->p[0], false, false);
}

static void test_scribbled_seal_stalls_until_death_then_resyncs(void **state)
{
	fixture *f = *state;
	start_producer(f, &f->p[1]);
	seal_scenario(f, &f->p[1], true, true);
}

/* ---- known bugs (docs/BAD_INPUT.md) ---- */

/* B3: a seal scribbled to a LONGER valid length swallows the records that
 * follow it in a live lane: the record is quarantined (bad checksum) and the
 * reader jumps by the forged length, so the next, intact record is lost. */
static void test_fixed_bug_forged_seal_length_swallows_next(void **state)
{
	fixture *f = *state;
	start_producer(f, &f->p[0]);
	ckr_lane l = lane_of(f, f->p[0].lane);
	rec recs[MAX_RECS];
	f->corrupt_base = seg_corrupt(f) - f->want.damaged;
	size_t n = stopped_round(f, &f->p[0], &l, recs);
	size_t m = 5; /* a message; m + 1 is the begin of the next run */
	uint8_t *b = rec_bytes(&l, &recs[m]);
	uint64_t w, len = recs[m + 1].next - recs[m].pos; /* covers m and m+1 */
	memcpy(&w, b, 8);
	w = (w & ~(((UINT64_C(1) << 22) - 1) << 2)) | (len >> 3) << 2;
	memcpy(b, &w, 8);
	recs[m].lost = recs[m].corrupt = true; /* only m is damaged */
	account(f, recs, n);
	assert_int_equal(kill(f->flusher, SIGCONT), 0);
	assert_true(wait_drained(&l));
	check_round(f, recs, n, 0); /* fails today: the begin m + 1 is lost */
}

/* B1: an unaligned tail in a dead producer's lane. The flusher skips to it,
 * publishes an unaligned head and frees the lane; the next producer there
 * writes its pad seal across the lane end (past the segment mapping for the
 * last lane) and its records are never persisted. */
static void test_fixed_bug_unaligned_tail_of_dead_lane(void **state)
{
	fixture *f = *state;
	uint32_t last = LANES - 1;
	pid_t c = fork();
	if (c == 0)
		_exit(0);
	uint64_t start, me;
	assert_int_equal(ckr_proc_start_ticks(c, &start), 0);
	tu_wait_child(c, TU_TIMEOUT_MS);
	uint64_t dead = ckr_token_make(c, start);
	assert_int_equal(ckr_proc_self_token(&me), 0);
	ckr_lane l = lane_of(f, last);
	uint64_t zero = 0;
	assert_true(atomic_compare_exchange_strong(&l.ctl->owner, &zero, dead));
	uint64_t h = ckr_lane_head(&l);
	atomic_store(&l.ctl->tail, h + l.capacity - 1); /* one scribbled word */
	/* the flusher drains the "dead" lane and frees it */
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (ckr_lane_owner(&l) != 0 && tu_now_ms() < deadline)
		sched_yield();
	assert_int_equal(ckr_lane_owner(&l), 0);
	assert_int_equal(ckr_lane_head(&l) & 7, 0); /* fails today: head is unaligned */
	/* a producer on that lane: its pushes must land */
	for (uint32_t i = 0; i < LANES - 1; i++) { /* keep the other lanes busy */
		ckr_lane o = lane_of(f, i);
		uint64_t z = 0;
		/* a live tenure: the lock, then the owner word (A1, A4) */
		assert_int_equal(ckr_seg_lock(&f->s, CKR_LOCK_LANE(i)), 0);
		atomic_compare_exchange_strong(&o.ctl->owner, &z, me);
	}
	start_producer(f, &f->p[0]);
	assert_int_equal(f->p[0].lane, last);
	producer_do(&f->p[0], 'P', ++f->round, 2);
	assert_true(wait_drained(&l));
}

/* B2: a record forged at the tail (valid seal for the lap, valid checksum,
 * a well-formed message of an existing run) is consumed although it lies
 * beyond the tail: it reaches the run, and head passes the tail, after which
 * the producer's real pushes in that lane never land. */
static void test_fixed_bug_forged_record_beyond_tail(void **state)
{
	fixture *f = *state;
	start_producer(f, &f->p[0]);
	ckr_lane l = lane_of(f, f->p[0].lane);
	producer_do(&f->p[0], 'P', ++f->round, 1); /* run s<round>-0 exists */
	assert_true(wait_drained(&l));
	stop_flusher_now(f);
	char id[32];
	snprintf(id, sizeof id, "s%u-0", f->round);
	uint8_t ev_buf[128];
	ckr_event ev = { .type = CKR_EV_MESSAGE, .incarnation = 1, .seq = 2,
			 .id = (const uint8_t *)id, .id_len = strlen(id) };
	ev.u.message.data = (const uint8_t *)"forged";
	ev.u.message.len = 6;
	uint32_t plen = (uint32_t)ckr_event_encode(&ev, ev_buf, sizeof ev_buf);
	assert_true(plen > 0);
	uint64_t t = ckr_lane_tail(&l), len = (16 + plen + 7) & ~UINT64_C(7);
	uint64_t seal = lap_tag(&l, t) << 24 | (len >> 3) << 2 | CKR_SEAL_DATA;
	uint8_t *b = l.data + (t & l.mask);
	memcpy(b + 12, &plen, 4);
	memcpy(b + 16, ev_buf, plen);
	uint32_t crc = ckr_crc32c(ckr_crc32c(ckr_crc32c(0, &seal, 8), &plen, 4), ev_buf, plen);
	memcpy(b + 8, &crc, 4);
	memcpy(b, &seal, 8);
	assert_int_equal(kill(f->flusher, SIGCONT), 0);
	/* Activity in another lane makes the flusher read every lane. */
	start_producer(f, &f->p[1]);
	ckr_lane l1 = lane_of(f, f->p[1].lane);
	producer_do(&f->p[1], 'P', ++f->round, 1);
	assert_true(wait_drained(&l1));
	assert_true(wait_flusher_loops(f, 100));
	assert_int_equal(ckr_lane_head(&l), t); /* fails today: head = t + len */
	ckr_store *s;
	ckr_store_opts so = { .read_only = true };
	assert_int_equal(ckr_store_open(f->db, &so, &s), 0);
	ckr_run_info info;
	assert_int_equal(ckr_store_get(s, id, strlen(id), &info), 0);
	ckr_store_close(s);
	assert_int_equal(info.last_seq, 1); /* the forged seq 2 must not be there */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_scribbled_records_quarantined_rest_intact),
		T(test_scribbled_seal_stalls_until_detach_then_resyncs),
		T(test_scribbled_seal_stalls_until_death_then_resyncs),
		T(test_fixed_bug_forged_seal_length_swallows_next),
		T(test_fixed_bug_unaligned_tail_of_dead_lane),
		T(test_fixed_bug_forged_record_beyond_tail),
#undef T
	};
	return cmocka_run_group_tests_name("scribble", tests, NULL, NULL);
}
