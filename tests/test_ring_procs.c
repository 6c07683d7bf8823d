/*
 * test_ring_procs.c — producer PROCESSES against one consumer (ring/lane.c,
 * shm/proc.c): SIGKILL at a random moment, SIGKILL exactly between claim and
 * commit, SIGSTOP/SIGCONT inside an open claim, and random kills under load.
 *
 * Each producer process (fork) attaches the segment, acquires its own lane
 * with its own token and runs NT threads pushing records whose payload is
 * (proc, thread, seq) plus a fill derived from them. After each accepted
 * push a thread stores how many of its pushes were accepted in an ack array
 * (MAP_SHARED | MAP_ANONYMOUS, made before fork), so the parent knows what
 * must arrive even from a process it killed.
 *
 * The parent is the consumer. It drains every lane with
 *   writers_gone = ckr_lane_tenure_gone(): owner != 0 && ((owner & DETACHED) ||
 *                  the lane's kernel lock is free)
 * (a free lane, owner 0, can be acquired at any moment: never "gone", as in
 * PROTOCOL.md C4), and frees a gone owner's lane once the read at the tail
 * is EMPTY. Every record is checked: per (proc, thread) the sequence goes up
 * by exactly one (nothing lost, nothing twice, order kept), it comes from
 * the lane of its process, and its bytes are intact.
 *
 * No sleeps for synchronisation: the child reports through a pipe (read
 * with a timeout), the parent waits for stop states and exits with bounded
 * helpers, and every loop has a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ring/lane.h"
#include "shm/proc.h"
#include "shm/segment.h"
#include "tests/helpers/testutil.h"

#define MAXP 8                /* producer processes per test, at most */
#define NT 2                  /* threads per producer */
#define LANES 8
#define LANE_BYTES 65536
#define MIN_PAYLOAD 16
#define MAX_PAYLOAD 200       /* default largest payload */
#define BIG_PAYLOAD 6000      /* for the kill tests: a longer claim window */
#define PAYLOAD_MAGIC UINT32_C(0x9e3c51a7)
#define READ_BATCH 64         /* records per lane per pass */
#define RUN_TIMEOUT_MS 30000
#define PUSH_TIMEOUT_MS 30000 /* a child gives up when its lane stays full */

/* Child exit codes (0 = pushed everything and detached). */
enum {
	CHILD_EATTACH = 10,
	CHILD_ETOKEN,
	CHILD_EACQUIRE,
	CHILD_ETHREAD,
	CHILD_EPUSH,
	CHILD_ETIMEOUT,
	CHILD_EWAIT,
};

/* What the children tell the parent through shared memory. */
typedef struct shared {
	struct {
		_Atomic uint32_t lane;        /* the lane it acquired */
		_Atomic uint64_t token;
		_Atomic int ready;            /* lane and token are set */
		_Atomic uint64_t ack[NT];     /* pushes accepted, per thread */
	} proc[MAXP];
} shared;

typedef enum hook_kind {
	HOOK_NONE,
	HOOK_BLOCK, /* report the claim, then block forever (to be killed) */
	HOOK_STOP,  /* report the claim, then raise(SIGSTOP) */
} hook_kind;

/* What one producer process does. */
typedef struct plan {
	int proc;
	uint64_t n[NT];        /* records to push, per thread */
	hook_kind hook;
	int hook_thread;       /* whose push runs the hook ... */
	uint64_t hook_seq;     /* ... on the push of this seq */
	int wait_thread;       /* this thread, before pushing wait_seq, waits */
	uint64_t wait_seq;     /* until the hook fired (UINT64_MAX: never) */
	bool hold_when_done;   /* a thread that finished reports 'D' and blocks */
	bool leader_exits;     /* the main thread pthread_exit()s after spawning */
	uint32_t max_payload;  /* payloads are MIN_PAYLOAD..max_payload bytes */
	uint32_t lane_hint;    /* where ckr_lane_acquire starts looking */
} plan;

/* Kill producer p once the consumer has received `after` of its records,
 * right after releasing room in its lane: its threads are then pushing, not
 * waiting for room, so the kill can land anywhere in a push. */
typedef struct kill_plan {
	int proc;
	uint64_t after;
	bool done;
} kill_plan;

typedef struct fixture {
	char name[CKR_NAME_MAX + 1];
	ckr_segment seg;
	shared *sh;
	int pipe_fd[2];            /* children -> parent reports */
	int nproc;
	pid_t pid[MAXP];
	bool reaped[MAXP];
	int status[MAXP];
	/* the consumer */
	uint64_t pos[LANES];
	uint8_t *buf;
	size_t cap;
	uint64_t next[MAXP][NT];   /* records received per (proc, thread) */
	uint64_t records, abandoned, lanes_freed;
	uint64_t next_at_abandon[MAXP][NT]; /* next[] when the last skip happened */
	ckr_lane_record last[LANES];        /* each lane's last read */
	uint32_t max_payload;               /* of the test's plans */
	kill_plan *kills;                   /* planned kills, checked by drain_lane */
	int nkills;
	/* one record whose position a test wants to know */
	int watch_proc, watch_thread;
	uint64_t watch_seq, watch_pos;
} fixture;

/* ---- payloads --------------------------------------------------------- */

static uint64_t rec_key(int proc, int thread, uint64_t seq)
{
	return tu_mix64(((uint64_t)proc << 56) ^ ((uint64_t)thread << 48) ^ seq);
}

static uint32_t payload_len(uint64_t key, uint32_t max)
{
	return MIN_PAYLOAD + (uint32_t)(key % (max - MIN_PAYLOAD + 1));
}

/* The fill of a record is a window of this pattern chosen by its key: cheap
 * to write (one memcpy, so a producer spends its time inside the push, where
 * a kill is interesting) and to check (one memcmp). Built before any fork. */
#define PATTERN_BYTES (2 * BIG_PAYLOAD + 4096)
static uint8_t pattern[PATTERN_BYTES];

static void pattern_init(void)
{
	for (size_t i = 0; i < PATTERN_BYTES; i += 8) {
		uint64_t w = tu_mix64(i ^ 0x5eed);
		memcpy(pattern + i, &w, 8);
	}
}

static const uint8_t *fill_of(uint64_t key)
{
	return pattern + (key >> 32) % 4096;
}

/* magic u32 | proc u8 | thread u8 | len u16 | seq u64 | fill */
static uint32_t make_payload(uint8_t *p, uint32_t max, int proc, int thread,
			     uint64_t seq)
{
	uint64_t key = rec_key(proc, thread, seq);
	uint32_t magic = PAYLOAD_MAGIC, len = payload_len(key, max);
	uint16_t len16 = (uint16_t)len;
	memcpy(p, &magic, 4);
	p[4] = (uint8_t)proc;
	p[5] = (uint8_t)thread;
	memcpy(p + 6, &len16, 2);
	memcpy(p + 8, &seq, 8);
	memcpy(p + 16, fill_of(key) + 16, len - 16);
	return len;
}

/* ---- the producer process (runs only in forked children) -------------- */

/* The after-claim hook has no context argument, so the child keeps what it
 * needs here. These exist only in a child; the parent never sets them. */
static struct {
	hook_kind kind;
	int fd;
	_Atomic int fired;
} child_hook;
static _Thread_local bool hook_armed;

static void report(int fd, const void *msg, size_t n)
{
	/* One write of at most PIPE_BUF bytes: atomic, never interleaved. */
	if (write(fd, msg, n) != (ssize_t)n)
		_exit(CHILD_EWAIT);
}

static void block_forever(void)
{
	for (;;)
		pause();
}

static void after_claim_hook(ckr_lane *l, uint64_t pos)
{
	if (!hook_armed)
		return;
	hook_armed = false;
	uint8_t msg[9] = { 'C' };
	memcpy(msg + 1, &pos, 8);
	report(child_hook.fd, msg, sizeof msg);
	atomic_store(&child_hook.fired, 1);
	if (child_hook.kind == HOOK_BLOCK)
		block_forever(); /* the claim stays open until SIGKILL */
	else if (child_hook.kind == HOOK_STOP)
		raise(SIGSTOP);  /* the whole process stops inside its claim */
}

typedef struct child_thread {
	const plan *pl;
	shared *sh;
	ckr_lane *lane;
	int thread, fd, rc;
	pthread_t th;
} child_thread;

static int child_push(ckr_lane *l, const uint8_t *p, uint32_t len)
{
	int64_t deadline = tu_now_ms() + PUSH_TIMEOUT_MS;
	uint64_t end;
	for (unsigned spins = 0;; spins++) {
		int rc = ckr_lane_push(l, p, len, &end);
		if (rc == 0)
			return 0;
		if (rc != -EAGAIN)
			return CHILD_EPUSH;
		if ((spins & 255) == 255 && tu_now_ms() > deadline)
			return CHILD_ETIMEOUT;
		sched_yield();
	}
}

static int wait_hook_fired(void)
{
	int64_t deadline = tu_now_ms() + PUSH_TIMEOUT_MS;
	while (!atomic_load(&child_hook.fired)) {
		if (tu_now_ms() > deadline)
			return CHILD_EWAIT;
		sched_yield();
	}
	return 0;
}

static void *child_thread_main(void *arg)
{
	child_thread *c = arg;
	const plan *pl = c->pl;
	uint8_t p[BIG_PAYLOAD];
	for (uint64_t seq = 0; seq < pl->n[c->thread]; seq++) {
		if (c->thread == pl->wait_thread && seq == pl->wait_seq &&
		    (c->rc = wait_hook_fired()) != 0)
			return NULL;
		if (pl->hook != HOOK_NONE && c->thread == pl->hook_thread &&
		    seq == pl->hook_seq)
			hook_armed = true;
		uint32_t len = make_payload(p, pl->max_payload, pl->proc, c->thread, seq);
		if ((c->rc = child_push(c->lane, p, len)) != 0)
			return NULL;
		/* release: the parent reads acks after our death or exit; any
		 * order would do, but say what it publishes. */
		atomic_store_explicit(&c->sh->proc[pl->proc].ack[c->thread], seq + 1,
				      memory_order_release);
	}
	if (pl->hold_when_done) {
		report(c->fd, "D", 1);
		block_forever();
	}
	return NULL;
}

/* Attach, acquire a lane, run the threads, detach, exit. Never returns. */
__attribute__((noreturn))
static void child_main(const fixture *f, const plan *pl)
{
	ckr_segment seg;
	uint64_t token;
	uint32_t idx;
	ckr_lane lane;
	child_thread th[NT];
	/* If the parent (the test) dies, so do we. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	close(f->pipe_fd[0]);
	if (ckr_segment_attach(f->name, false, &seg) != 0)
		_exit(CHILD_EATTACH);
	ckr_identity id;
	if (ckr_proc_self_identity(&id) != 0)
		_exit(CHILD_ETOKEN);
	token = id.token;
	if (ckr_lane_acquire(&seg, &id, pl->lane_hint, &idx) != 0)
		_exit(CHILD_EACQUIRE);
	ckr_lane_view(&seg, idx, &lane);
	atomic_store(&f->sh->proc[pl->proc].lane, idx);
	atomic_store(&f->sh->proc[pl->proc].token, token);
	atomic_store(&f->sh->proc[pl->proc].ready, 1);
	child_hook.kind = pl->hook;
	child_hook.fd = f->pipe_fd[1];
	ckr_lane_test_after_claim = pl->hook != HOOK_NONE ? after_claim_hook : NULL;
	for (int t = 0; t < NT; t++) {
		th[t] = (child_thread){ .pl = pl, .sh = f->sh, .lane = &lane,
					.thread = t, .fd = f->pipe_fd[1] };
		if (pthread_create(&th[t].th, NULL, child_thread_main, &th[t]) != 0)
			_exit(CHILD_ETHREAD);
	}
	if (pl->leader_exits)
		pthread_exit(NULL); /* the process lives on in its threads */
	int rc = 0;
	for (int t = 0; t < NT; t++) {
		pthread_join(th[t].th, NULL);
		if (th[t].rc && !rc)
			rc = th[t].rc;
	}
	if (rc)
		_exit(rc);
	ckr_lane_detach(&seg, &lane, token);
	_exit(0);
}

/* ---- the parent: processes -------------------------------------------- */

static pid_t spawn(fixture *f, const plan *pl)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_main(f, pl);
	f->pid[pl->proc] = pid;
	if (pl->proc >= f->nproc)
		f->nproc = pl->proc + 1;
	return pid;
}

/* Reap the children that exited; true when all have. */
static bool reap(fixture *f)
{
	bool all = true;
	for (int p = 0; p < f->nproc; p++) {
		if (f->reaped[p])
			continue;
		pid_t r = waitpid(f->pid[p], &f->status[p], WNOHANG);
		if (r == f->pid[p])
			f->reaped[p] = true;
		else
			all = false;
	}
	return all;
}

/* Wait (bounded) for child p to end and keep its status. */
static void wait_exit(fixture *f, int p)
{
	int st = tu_wait_child(f->pid[p], TU_TIMEOUT_MS);
	assert_int_not_equal(st, -1);
	f->status[p] = st;
	f->reaped[p] = true;
}

static void assert_exited_ok(const fixture *f, int p)
{
	assert_true(f->reaped[p]);
	if (!WIFEXITED(f->status[p]) || WEXITSTATUS(f->status[p]) != 0)
		fail_msg("producer %d: status 0x%x (exit %d, signal %d)", p,
			 f->status[p], WIFEXITED(f->status[p]) ? WEXITSTATUS(f->status[p]) : -1,
			 WIFSIGNALED(f->status[p]) ? WTERMSIG(f->status[p]) : 0);
}

static void assert_killed(const fixture *f, int p)
{
	assert_true(f->reaped[p]);
	assert_true(WIFSIGNALED(f->status[p]));
	assert_int_equal(WTERMSIG(f->status[p]), SIGKILL);
}

/* A claim report from a hook: 'C' and the claim position. */
static uint64_t read_claim_report(fixture *f)
{
	uint8_t msg[9];
	assert_int_equal(tu_read_full(f->pipe_fd[0], msg, sizeof msg, TU_TIMEOUT_MS), 0);
	assert_int_equal(msg[0], 'C');
	uint64_t pos;
	memcpy(&pos, msg + 1, 8);
	return pos;
}

static uint64_t ack(const fixture *f, int p, int t)
{
	return atomic_load_explicit(&f->sh->proc[p].ack[t], memory_order_acquire);
}

static uint32_t lane_of(const fixture *f, int p)
{
	assert_true(atomic_load(&f->sh->proc[p].ready));
	return atomic_load(&f->sh->proc[p].lane);
}

/* ---- the parent: the consumer ----------------------------------------- */

/* PROTOCOL.md C4 and G: a free lane (0) may be acquired at any moment, so
 * it is never "gone"; DETACHED means the owner left cleanly; otherwise the
 * lane's kernel lock tells (a stopped process holds it). */
static bool writers_gone(const fixture *f, const ckr_lane *l, ckr_tenure t)
{
	return ckr_lane_tenure_gone(&f->seg, l, t);
}

/* Check one record read from lane li and count it. */
static void check_record(fixture *f, uint32_t li, const ckr_lane_record *rec)
{
	const uint8_t *p = f->buf;
	uint32_t magic, n = rec->payload_len;
	uint16_t len16;
	uint64_t seq;
	assert_true(n >= MIN_PAYLOAD);
	memcpy(&magic, p, 4);
	memcpy(&len16, p + 6, 2);
	memcpy(&seq, p + 8, 8);
	int proc = p[4], thread = p[5];
	assert_int_equal(magic, PAYLOAD_MAGIC);
	assert_true(proc < f->nproc && thread < NT);
	assert_int_equal(lane_of(f, proc), li); /* one lane per process */
	if (seq != f->next[proc][thread])
		fail_msg("proc %d thread %d: seq %llu, expected %llu (%s)", proc,
			 thread, (unsigned long long)seq,
			 (unsigned long long)f->next[proc][thread],
			 seq < f->next[proc][thread] ? "duplicate" : "lost record");
	uint64_t key = rec_key(proc, thread, seq);
	assert_int_equal(len16, n);
	assert_int_equal(n, payload_len(key, f->max_payload));
	if (memcmp(p + 16, fill_of(key) + 16, n - 16) != 0)
		fail_msg("proc %d thread %d seq %llu: payload corrupt", proc, thread,
			 (unsigned long long)seq);
	if (proc == f->watch_proc && thread == f->watch_thread && seq == f->watch_seq)
		f->watch_pos = rec->pos;
	f->next[proc][thread]++;
	f->records++;
}

static uint64_t received_from(const fixture *f, int p)
{
	uint64_t n = 0;
	for (int t = 0; t < NT; t++)
		n += f->next[p][t];
	return n;
}

/* Kill the planned victims that own lane li and are due. */
static void kill_due(fixture *f, uint32_t li)
{
	for (int k = 0; k < f->nkills; k++) {
		kill_plan *kp = &f->kills[k];
		if (kp->done || received_from(f, kp->proc) < kp->after ||
		    lane_of(f, kp->proc) != li) /* it has records: it is ready */
			continue;
		assert_int_equal(kill(f->pid[kp->proc], SIGKILL), 0);
		kp->done = true;
	}
}

/* One visit of lane li: read up to READ_BATCH records, release them, and
 * free the lane if its owner is gone and it is drained.
 * @return records read + claims skipped. */
static int drain_lane(fixture *f, uint32_t li)
{
	ckr_lane l;
	ckr_lane_view(&f->seg, li, &l);
	/* The owner is read (acquire) and judged BEFORE the reads below, so a
	 * "gone" verdict covers every seal we then look at. */
	ckr_tenure t = ckr_lane_tenure(&l);
	uint64_t owner = t.owner;
	bool gone = writers_gone(f, &l, t);
	uint64_t start = f->pos[li];
	ckr_lane_record *rec = &f->last[li];
	int n = 0;
	for (int k = 0; k < READ_BATCH; k++) {
		ckr_lane_read(&l, f->pos[li], gone, f->buf, f->cap, rec);
		if (rec->status == CKR_READ_RECORD) {
			check_record(f, li, rec);
		} else if (rec->status == CKR_READ_ABANDONED) {
			assert_true(gone);
			f->abandoned++;
			memcpy(f->next_at_abandon, f->next, sizeof f->next);
		} else if (rec->status == CKR_READ_CORRUPT) {
			fail_msg("lane %u at %llu: corrupt record (%s)", li,
				 (unsigned long long)rec->pos, rec->reason);
		} else {
			break; /* EMPTY or WAIT */
		}
		assert_true(rec->next > f->pos[li]);
		f->pos[li] = rec->next;
		n++;
	}
	assert_true(f->pos[li] <= ckr_lane_tail(&l));
	if (f->pos[li] != start) {
		ckr_lane_release(&l, f->pos[li], f->pos[li]);
		kill_due(f, li);
	}
	if (gone && rec->status == CKR_READ_EMPTY && f->pos[li] == ckr_lane_tail(&l) &&
	    ckr_lane_free(&l, owner))
		f->lanes_freed++;
	return n;
}

static int drain_pass(fixture *f)
{
	int n = 0;
	for (uint32_t i = 0; i < LANES; i++)
		n += drain_lane(f, i);
	return n;
}

/* All children reaped and every lane free (so drained: a lane is freed only
 * once it is empty at its tail). */
static bool settled(fixture *f)
{
	if (!reap(f))
		return false;
	for (uint32_t i = 0; i < LANES; i++) {
		ckr_lane l;
		ckr_lane_view(&f->seg, i, &l);
		if (ckr_lane_owner(&l) != 0)
			return false;
	}
	return true;
}

/* Drain until settled(), killing as planned; fails on the deadline. */
static void drain_until_settled(fixture *f, kill_plan *kills, int nkills)
{
	int64_t deadline = tu_now_ms() + RUN_TIMEOUT_MS;
	f->kills = kills;
	f->nkills = nkills;
	while (!settled(f)) {
		int n = drain_pass(f);
		if (tu_now_ms() > deadline)
			fail_msg("not settled after %d ms: %llu records, %llu skipped",
				 RUN_TIMEOUT_MS, (unsigned long long)f->records,
				 (unsigned long long)f->abandoned);
		if (n == 0)
			sched_yield();
	}
	for (int k = 0; k < nkills; k++)
		assert_true(kills[k].done);
	f->nkills = 0;
}

/* Every accepted push of (p, t) arrived exactly once; at most the one push
 * in flight when the process died arrived beyond its ack. */
static void assert_acked_received(const fixture *f, int p, bool killed)
{
	for (int t = 0; t < NT; t++) {
		uint64_t a = ack(f, p, t), got = f->next[p][t];
		if (got < a || got > a + (killed ? 1 : 0))
			fail_msg("proc %d thread %d: %llu acked, %llu received", p, t,
				 (unsigned long long)a, (unsigned long long)got);
	}
}

/* Records of p that arrived beyond their ack (pushed, killed before the
 * ack was stored). */
static uint64_t beyond_ack(const fixture *f, int p)
{
	uint64_t n = 0;
	for (int t = 0; t < NT; t++)
		n += f->next[p][t] - ack(f, p, t);
	return n;
}

/* ---- fixture ---------------------------------------------------------- */

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	ckr_segment_opts o = { .lanes = LANES,
			       .size = tu_seg_size(LANES, LANE_BYTES),
			       .group = (gid_t)-1 };
	snprintf(f->name, sizeof f->name, "%s", tu_segname("procs"));
	f->watch_proc = -1;
	f->max_payload = MAX_PAYLOAD;
	f->pipe_fd[0] = f->pipe_fd[1] = -1;
	f->sh = mmap(NULL, sizeof(shared), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (f->sh == MAP_FAILED)
		goto fail;
	if (pipe2(f->pipe_fd, O_CLOEXEC) != 0)
		goto fail_unmap;
	if (ckr_segment_create(f->name, &o) != 0)
		goto fail_pipe;
	if (ckr_segment_attach(f->name, false, &f->seg) != 0 ||
	    f->seg.lane_capacity != LANE_BYTES)
		goto fail_unlink;
	f->cap = f->seg.max_record + CKR_REC_HEADER;
	f->buf = malloc(f->cap);
	if (!f->buf)
		goto fail_detach;
	*state = f;
	return 0;
fail_detach:
	ckr_segment_detach(&f->seg);
fail_unlink:
	ckr_segment_unlink(f->name);
fail_pipe:
	close(f->pipe_fd[0]);
	close(f->pipe_fd[1]);
fail_unmap:
	munmap(f->sh, sizeof(shared));
fail:
	free(f);
	return -1;
}

static int teardown(void **state)
{
	fixture *f = *state;
	for (int p = 0; p < f->nproc; p++) {
		if (!f->reaped[p]) { /* a failed test: leave no process behind */
			kill(f->pid[p], SIGKILL);
			kill(f->pid[p], SIGCONT);
			waitpid(f->pid[p], NULL, 0);
		}
	}
	ckr_segment_detach(&f->seg);
	ckr_segment_unlink(f->name);
	close(f->pipe_fd[0]);
	close(f->pipe_fd[1]);
	munmap(f->sh, sizeof(shared));
	free(f->buf);
	free(f);
	return 0;
}

static plan plain_plan(const fixture *f, int proc, uint64_t n)
{
	return (plan){ .proc = proc, .n = { n, n }, .hook = HOOK_NONE,
		       .hook_thread = -1, .wait_thread = -1, .wait_seq = UINT64_MAX,
		       .max_payload = f->max_payload, .lane_hint = (uint32_t)proc };
}

/* ---- a) SIGKILL at a random moment ------------------------------------ */

#define N_RANDOM_KILL 5000

static void test_kill_at_random_moment_loses_no_acked_record(void **state)
{
	fixture *f = *state;
	uint64_t seed = tu_seed("random kill");
	f->max_payload = BIG_PAYLOAD;
	plan victim = plain_plan(f, 0, N_RANDOM_KILL), survivor = plain_plan(f, 1, N_RANDOM_KILL);
	spawn(f, &victim);
	spawn(f, &survivor);
	/* The victim can be at most one lane (~2000 records) ahead of what we
	 * received, so killing after at most N records lands while it pushes. */
	kill_plan k = { .proc = 0, .after = 100 + seed % N_RANDOM_KILL };
	drain_until_settled(f, &k, 1);
	assert_true(k.done);
	assert_killed(f, 0);
	assert_exited_ok(f, 1);
	assert_acked_received(f, 0, true);
	assert_acked_received(f, 1, false);
	assert_int_equal(f->next[1][0], N_RANDOM_KILL);
	assert_int_equal(f->next[1][1], N_RANDOM_KILL);
	assert_int_equal(f->lanes_freed, 2); /* the dead one and the detached one */
	fprintf(stderr, "  killed after %llu records; %llu claims skipped, %llu beyond ack\n",
		(unsigned long long)k.after, (unsigned long long)f->abandoned,
		(unsigned long long)beyond_ack(f, 0));
}

static void test_dead_producers_lane_is_freed_and_reusable(void **state)
{
	fixture *f = *state;
	uint64_t seed = tu_seed("lane reuse");
	plan victim = plain_plan(f, 0, N_RANDOM_KILL);
	spawn(f, &victim);
	kill_plan k = { .proc = 0, .after = 50 + seed % 2000 };
	drain_until_settled(f, &k, 1);
	assert_killed(f, 0);
	assert_acked_received(f, 0, true);
	uint32_t dead = lane_of(f, 0), idx;
	ckr_lane l;
	ckr_lane_view(&f->seg, dead, &l);
	assert_int_equal(ckr_lane_owner(&l), 0);
	/* A new owner gets the lane and its records are read after the dead
	 * owner's, from where the consumer stopped. */
	uint64_t me, end;
	ckr_identity id;
	assert_int_equal(ckr_proc_self_identity(&id), 0);
	me = id.token;
	assert_int_equal(ckr_lane_acquire(&f->seg, &id, dead, &idx), 0);
	assert_int_equal(idx, dead);
	assert_int_equal(ckr_lane_push(&l, "again", 5, &end), 0);
	ckr_lane_record rec;
	ckr_lane_read(&l, f->pos[dead], false, f->buf, f->cap, &rec);
	assert_int_equal(rec.status, CKR_READ_RECORD);
	assert_int_equal(rec.payload_len, 5);
	assert_memory_equal(f->buf, "again", 5);
	assert_int_equal(rec.next, end);
	ckr_lane_release(&l, end, end);
	ckr_lane_detach(&f->seg, &l, me);
	assert_true(ckr_lane_free(&l, me | CKR_OWNER_DETACHED));
}

/* ---- b) SIGKILL exactly between claim and commit ---------------------- */

#define B_STUCK_SEQ 99   /* thread 0's 100th push claims and never seals */
#define B_BEFORE 50      /* thread 1 pushes these, then waits for the claim */
#define B_AFTER 20       /* ... then these, which lie behind the open claim */

static void test_kill_between_claim_and_commit_skips_only_the_claim(void **state)
{
	fixture *f = *state;
	plan pl = plain_plan(f, 0, 0);
	pl.n[0] = B_STUCK_SEQ + 1;
	pl.n[1] = B_BEFORE + B_AFTER;
	pl.hook = HOOK_BLOCK;
	pl.hook_thread = 0;
	pl.hook_seq = B_STUCK_SEQ;
	pl.wait_thread = 1;
	pl.wait_seq = B_BEFORE;
	pl.hold_when_done = true;
	spawn(f, &pl);
	uint64_t claim = read_claim_report(f);
	char done;
	assert_int_equal(tu_read_full(f->pipe_fd[0], &done, 1, TU_TIMEOUT_MS), 0);
	assert_int_equal(done, 'D'); /* thread 1 pushed its records after the claim */
	assert_int_equal(ack(f, 0, 0), B_STUCK_SEQ);
	assert_int_equal(ack(f, 0, 1), B_BEFORE + B_AFTER);
	uint32_t li = lane_of(f, 0);

	/* Alive: the consumer stops at the open claim and never passes it. */
	for (int pass = 0; pass < 50; pass++)
		drain_pass(f);
	assert_int_equal(f->pos[li], claim);
	assert_int_equal(f->last[li].status, CKR_READ_WAIT);
	assert_int_equal(f->abandoned, 0);

	assert_int_equal(kill(f->pid[0], SIGKILL), 0);
	wait_exit(f, 0);
	assert_killed(f, 0);
	drain_until_settled(f, NULL, 0);

	assert_int_equal(f->abandoned, 1);
	assert_int_equal(f->next[0][0], B_STUCK_SEQ); /* the claim never arrives */
	assert_int_equal(f->next[0][1], B_BEFORE + B_AFTER);
	/* When the claim was skipped, thread 1's last B_AFTER records were
	 * still ahead: they lay behind the gap and were delivered after it. */
	assert_true(f->next_at_abandon[0][1] <= B_BEFORE);
	assert_int_equal(f->next_at_abandon[0][0], B_STUCK_SEQ);
	assert_acked_received(f, 0, false);
	assert_int_equal(f->lanes_freed, 1);
}

/* ---- c) SIGSTOP inside a claim: never reclaimed ----------------------- */

#define C_STOP_SEQ 9
#define C_TOTAL 20
#define C_MIN_PASSES 200
#define C_MIN_MS 200

static void test_stopped_producer_is_never_reclaimed(void **state)
{
	fixture *f = *state;
	plan pl = plain_plan(f, 0, 0);
	pl.n[0] = C_TOTAL;
	pl.hook = HOOK_STOP;
	pl.hook_thread = 0;
	pl.hook_seq = C_STOP_SEQ;
	f->watch_proc = 0;
	f->watch_thread = 0;
	f->watch_seq = C_STOP_SEQ;
	spawn(f, &pl);
	uint64_t claim = read_claim_report(f);
	assert_true(tu_wait_stopped(f->pid[0], TU_TIMEOUT_MS));
	uint32_t li = lane_of(f, 0);
	uint64_t token = atomic_load(&f->sh->proc[0].token);
	ckr_lane l;
	ckr_lane_view(&f->seg, li, &l);

	/* Drain for at least C_MIN_PASSES passes and C_MIN_MS: a stopped
	 * process is alive, its claim is waited for, never skipped. */
	int64_t start = tu_now_ms();
	int passes = 0;
	while (passes < C_MIN_PASSES || tu_now_ms() - start < C_MIN_MS) {
		drain_pass(f);
		passes++;
		assert_true(f->pos[li] <= claim);
		assert_int_equal(f->abandoned, 0);
		assert_true(tu_now_ms() - start < TU_TIMEOUT_MS);
	}
	assert_int_equal(f->pos[li], claim);
	assert_int_equal(f->last[li].status, CKR_READ_WAIT);
	assert_int_equal(ckr_lane_owner(&l), token);
	assert_true(ckr_proc_alive(token));
	assert_int_equal(f->next[0][0], C_STOP_SEQ);

	assert_int_equal(kill(f->pid[0], SIGCONT), 0);
	drain_until_settled(f, NULL, 0);
	assert_exited_ok(f, 0);
	assert_int_equal(f->abandoned, 0);
	assert_int_equal(f->next[0][0], C_TOTAL);
	assert_int_equal(f->watch_pos, claim); /* it landed where it claimed */
	assert_acked_received(f, 0, false);
	assert_int_equal(f->lanes_freed, 1);
}

/* ---- d) random kills under load --------------------------------------- */

#define N_LOAD 2000
#define D_PROCS 4

static void test_random_kills_under_load_lose_no_acked_record(void **state)
{
	fixture *f = *state;
	uint64_t seed = tu_seed("kills under load");
	f->max_payload = BIG_PAYLOAD;
	plan pl[D_PROCS];
	for (int p = 0; p < D_PROCS; p++) {
		pl[p] = plain_plan(f, p, N_LOAD);
		spawn(f, &pl[p]);
	}
	int v0 = (int)(seed % D_PROCS);
	int v1 = (int)((v0 + 1 + (seed >> 8) % (D_PROCS - 1)) % D_PROCS);
	/* After at most 2 * N_LOAD - 2500 of its records a victim still has
	 * more to push than one lane holds: it dies while pushing. */
	kill_plan k[2] = {
		{ .proc = v0, .after = 1 + (seed >> 16) % (2 * N_LOAD - 2500) },
		{ .proc = v1, .after = 1 + (seed >> 32) % (2 * N_LOAD - 2500) },
	};
	drain_until_settled(f, k, 2);
	for (int p = 0; p < D_PROCS; p++) {
		bool victim = p == v0 || p == v1;
		if (victim) {
			assert_killed(f, p);
		} else {
			assert_exited_ok(f, p);
			assert_int_equal(received_from(f, p), 2 * N_LOAD);
		}
		assert_acked_received(f, p, victim);
	}
	assert_int_equal(f->lanes_freed, D_PROCS);
	fprintf(stderr, "  victims %d (after %llu) and %d (after %llu); %llu records, "
		"%llu claims skipped, %llu beyond ack\n",
		v0, (unsigned long long)k[0].after, v1, (unsigned long long)k[1].after,
		(unsigned long long)f->records, (unsigned long long)f->abandoned,
		(unsigned long long)(beyond_ack(f, v0) + beyond_ack(f, v1)));
}

/* ---- e) kill and respawn: freed lanes are reused ---------------------- */

#define E_CYCLES MAXP
#define N_CYCLE 1000

static void test_kill_respawn_cycles_reuse_the_freed_lane(void **state)
{
	fixture *f = *state;
	uint64_t seed = tu_seed("kill/respawn cycles");
	f->max_payload = BIG_PAYLOAD;
	for (int r = 0; r < E_CYCLES; r++) {
		/* Every producer starts its search at lane 0, so each one gets
		 * the lane its killed predecessor left (freed by then). */
		plan pl = plain_plan(f, r, N_CYCLE);
		pl.lane_hint = 0;
		spawn(f, &pl);
		kill_plan k = { .proc = r, .after = 1 + tu_mix64(seed + (uint64_t)r) % N_CYCLE };
		drain_until_settled(f, &k, 1);
		assert_killed(f, r);
		assert_int_equal(lane_of(f, r), 0);
		assert_acked_received(f, r, true);
	}
	assert_int_equal(f->lanes_freed, E_CYCLES);
	ckr_lane l;
	ckr_lane_view(&f->seg, 0, &l);
	assert_true(ckr_lane_tail(&l) > 4 * LANE_BYTES); /* several laps reused */
	fprintf(stderr, "  %d cycles, %llu records, %llu claims skipped\n", E_CYCLES,
		(unsigned long long)f->records, (unsigned long long)f->abandoned);
}

/* ---- known bugs ------------------------------------------------------- */

/*
 * Regression test (a bug, now fixed, in shm/proc.c ckr_proc_alive(), the 'Z'/'X' test):
 * /proc/PID/stat shows the state of the thread-group LEADER. When the main
 * thread of a producer calls pthread_exit() its other threads keep running
 * (and pushing), but the leader is a zombie: 'Z'. ckr_proc_alive() then
 * says "dead", the consumer skips the live claim as abandoned and frees the
 * lane while the process still writes into it.
 */
static void test_process_whose_main_thread_exited_is_alive(void **state)
{
	fixture *f = *state;
	plan pl = plain_plan(f, 0, 0);
	pl.n[0] = 10;
	pl.hook = HOOK_BLOCK;
	pl.hook_thread = 0;
	pl.hook_seq = 5;
	pl.leader_exits = true;
	spawn(f, &pl);
	uint64_t claim = read_claim_report(f);
	int64_t deadline = tu_now_ms() + TU_TIMEOUT_MS;
	while (tu_proc_state(f->pid[0]) != 'Z')
		assert_true(tu_now_ms() < deadline); /* the leader has exited */
	uint64_t token = atomic_load(&f->sh->proc[0].token);
	uint32_t li = lane_of(f, 0);
	assert_true(ckr_proc_alive(token)); /* a thread is inside a claim */
	for (int pass = 0; pass < 20; pass++)
		drain_pass(f);
	assert_int_equal(f->pos[li], claim);
	assert_int_equal(f->last[li].status, CKR_READ_WAIT);
	assert_int_equal(f->abandoned, 0);
}

/*
 * Regression test (a bug, now fixed, in ring/lane.c scan_forward()): the scan past a dead
 * owner's unsealed claim accepts the first 8-byte word that *looks* like a
 * seal for its position. The claim's bytes are stale data of an earlier
 * lap, and ordinary payload bytes can look like a seal of the current lap
 * (a u64 of value lap << 24 | len/8 << 2 | state, e.g. 16777250 in lap 1).
 * The consumer then reads a phantom record there (CORRUPT here) whose length
 * jumps over the next real record, which is lost, and its position lands
 * beyond the tail. Proposed fix: confirm a candidate before accepting it
 * (the chain of seals from it must land exactly on the tail, each DATA
 * record passing its CRC), and never accept a record that ends above the
 * tail. Built directly (no process needed).
 */
static void test_scan_past_dead_claim_ignores_seal_like_payload(void **state)
{
	fixture *f = *state;
	ckr_lane l;
	ckr_lane_view(&f->seg, 0, &l);
	uint64_t C = l.capacity, end;
	/* Lap 0: a record whose payload holds, at lane index 16, a u64 that
	 * is a DATA seal of lap 1 with length 64. */
	uint8_t payload[64] = { 0 };
	uint64_t fake = (UINT64_C(1) << 24) | (64 / 8) << 2 | CKR_SEAL_DATA;
	memcpy(payload, &fake, 8);
	assert_int_equal(ckr_lane_push(&l, payload, sizeof payload, &end), 0);
	/* Lap 1 at index 0: a dead producer's claim of 48 bytes, never sealed,
	 * then a good record pushed by another thread of that process. */
	atomic_store(&l.ctl->head, C);
	atomic_store(&l.ctl->head_cache, C);
	atomic_store(&l.ctl->tail, C + 48);
	assert_int_equal(ckr_lane_push(&l, "after", 5, &end), 0);
	assert_int_equal(end, C + 72);
	/* Drain as the consumer does with the owner dead. */
	uint64_t pos = C;
	bool got_after = false;
	for (int k = 0; k < 10; k++) {
		ckr_lane_record rec;
		ckr_lane_read(&l, pos, true, f->buf, f->cap, &rec);
		if (rec.status == CKR_READ_EMPTY)
			break;
		if (rec.status == CKR_READ_RECORD && rec.payload_len == 5 &&
		    memcmp(f->buf, "after", 5) == 0)
			got_after = true;
		pos = rec.next;
	}
	assert_true(got_after);
	assert_int_equal(pos, end);
}

int main(void)
{
	pattern_init();
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_kill_at_random_moment_loses_no_acked_record),
		T(test_dead_producers_lane_is_freed_and_reusable),
		T(test_kill_between_claim_and_commit_skips_only_the_claim),
		T(test_stopped_producer_is_never_reclaimed),
		T(test_random_kills_under_load_lose_no_acked_record),
		T(test_kill_respawn_cycles_reuse_the_freed_lane),
		T(test_process_whose_main_thread_exited_is_alive),
		T(test_scan_past_dead_claim_ignores_seal_like_payload),
#undef T
	};
	return cmocka_run_group_tests_name("ring_procs", tests, NULL, NULL);
}
