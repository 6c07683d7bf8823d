/*
 * driver.c — the API-sequence test of ckring (issue 11, `make fuzz-api`):
 * random sequences of API calls and faults across processes, checked
 * against a reference model (model.h), with replayable seeds — the
 * FoundationDB-simulation / Jepsen-checker pattern of the style guide.
 *
 * A run is a series of rounds. Each round makes a fresh segment and store,
 * starts the real ckring-flusher of the hooks build, and keeps 3 to 6
 * worker processes (apiseq-worker, worker.c) going. Every step draws its
 * random choices from a generator seeded by (SEED, step number), so the
 * same seed gives the same sequence of choices whatever the timing did to
 * earlier steps. A step sends one command to a worker (sometimes leaving
 * it in flight while other workers act: that is how begins and claims
 * race), kills, stops or continues a worker or the flusher, restarts the
 * flusher with other options or crash points, or runs a flusher that must
 * be refused. Every reply is checked by the model at once; every
 * CKPT_EVERY steps the lanes are drained and the store is compared with the
 * model (check.c): the runs touched since the last checkpoint, or all of
 * them at a full checkpoint.
 *
 * Environment: SEED (replay), STEPS (total steps, default 100000; a
 * sanitizer build defaults to 25000), ROUND_STEPS (steps per round, 20000),
 * CKPT_EVERY (2000; every 10th checkpoint, and the end of a round, is a
 * full one: it also waits for every dead owner to be marked ended), BUILD
 * (build directory, "build"), VERBOSE=1 (every step), KEEP=1 (keep the
 * store of a failing round), DB_ROOT (where the store directories go:
 * /dev/shm, a tmpfs, by default), TIMES=1 (time per step kind).
 * Exit: 0 all checks held; 1 a divergence (seed, step, the last steps and
 * the difference are printed); 2 set-up failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckring.h"
#include "ckring_store.h"
#include "ring/lane.h"
#include "shm/proc.h"
#include "shm/segment.h"
#include "tests/apiseq/check.h"
#include "tests/apiseq/model.h"
#include "tests/apiseq/procs.h"
#include "tests/apiseq/proto.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define MAX_WORKERS 8
#define MIN_ALIVE 3
#define MAX_ALIVE 6
#define LOG_N 32
#define REPLY_MS 90000
#define BOUND_MS 60000
#define MAX_LING 32

typedef enum kind {
	K_MSG, K_PHASE, K_BURST, K_WAIT, K_BEGIN, K_DUPBEGIN, K_RACEBEGIN, K_FINISH,
	K_CLOSE, K_ATTACH, K_DETACH, K_STORE, K_LIST, K_GET, K_RESUME, K_BCHECK, K_PRUNE,
	K_CLAIM, K_SCLAIM, K_RCLAIM, K_FOREIGN, K_KILL, K_KILLBUSY, K_KILLPUSH,
	K_PARKPUSH, K_TBURST, K_STOP, K_CONT, K_EXEC, K_FORK, K_EXIT, K_FKILL, K_FTERM,
	K_FSTOP, K_FSTART, K_FKILLWAIT, K_FSECOND, K_EMBED, K_MISUSE, K_COLLECT,
	K_COUNT
} step_kind;

static const struct {
	const char *name;
	int weight; /* per mille */
} KINDS[K_COUNT] = {
	[K_MSG] = { "message", 210 },        [K_PHASE] = { "phase", 80 },
	[K_BURST] = { "burst", 30 },         [K_WAIT] = { "wait", 90 },
	[K_BEGIN] = { "begin", 70 },         [K_DUPBEGIN] = { "dup-begin", 25 },
	[K_RACEBEGIN] = { "race-begin", 12 }, [K_FINISH] = { "finish", 40 },
	[K_CLOSE] = { "close", 25 },         [K_ATTACH] = { "attach", 20 },
	[K_DETACH] = { "detach", 14 },       [K_STORE] = { "store-open/close", 8 },
	[K_LIST] = { "list", 4 },            [K_GET] = { "get", 15 },
	[K_RESUME] = { "resume", 12 },       [K_BCHECK] = { "begin-check", 5 },
	[K_PRUNE] = { "prune", 2 },          [K_CLAIM] = { "claim", 22 },
	[K_SCLAIM] = { "claim-settled", 1 }, [K_RCLAIM] = { "race-claim", 4 },
	[K_FOREIGN] = { "reopen-not-claimer", 5 }, [K_KILL] = { "kill", 10 },
	[K_KILLBUSY] = { "kill-in-flight", 9 }, [K_KILLPUSH] = { "kill-mid-push", 5 },
	[K_PARKPUSH] = { "parked-claim", 3 }, [K_TBURST] = { "two-thread-burst-kill", 3 },
	[K_STOP] = { "sigstop", 6 },         [K_CONT] = { "sigcont", 6 },
	[K_EXEC] = { "exec", 4 },            [K_FORK] = { "fork", 4 },
	[K_EXIT] = { "exit", 3 },            [K_FKILL] = { "flusher-kill", 2 },
	[K_FTERM] = { "flusher-term", 2 },   [K_FSTOP] = { "flusher-stop", 2 },
	[K_FSTART] = { "flusher-restart", 2 }, [K_FKILLWAIT] = { "flusher-dies-in-wait", 1 },
	[K_FSECOND] = { "second-flusher", 1 }, [K_EMBED] = { "embedded-flusher", 2 },
	[K_MISUSE] = { "misuse", 3 },        [K_COLLECT] = { "collect", 30 },
};

typedef struct lingering {
	pid_t pid;
	int img;
	uint64_t start; /* its start time when reported; 0: already gone */
} lingering;

typedef struct drv {
	/* options */
	uint64_t seed;
	long steps, round_steps, ckpt_every;
	bool verbose, keep;
	char worker_bin[512], flusher_bin[512], inspect_bin[512];
	const char *db_root;
	/* the round */
	int round;
	char seg[128], db[256];
	ckr_segment view;
	bool view_ok;
	ckr_store *store;
	am m;
	ap_worker w[MAX_WORKERS];
	pid_t fl;
	bool fl_stopped, fl_armed;
	int fl_mode;
	lingering ling[MAX_LING];
	int n_ling;
	uint32_t lanes, wpl;
	/* statistics */
	uint64_t kc[K_COUNT];
	int64_t kus[K_COUNT];     /* time spent per kind, us */
	int64_t ckpt_us;
	uint64_t checkpoints, full_checkpoints, fl_starts, fl_self_crashes, refused_ok;
	uint64_t worker_kills, inflight_lost, map_grown;
	uint64_t st_races, st_claims, st_rejected, st_gaps, st_epipe, st_synced_to,
		st_eclosed, st_eagain, st_runs, st_events;
	/* the step */
	long step, round_step;
	uint64_t rs;
	char cur[1024];
	char log[LOG_N][1024];
	long log_step[LOG_N];
	int log_pos;
	uint64_t ids, short_ids, tags;
	int64_t t0_ms;
} drv;

static drv *D;
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static long env_long(const char *name, long def);

/* ------------------------------------------------------------------ */
/* randomness, log, failure                                            */
/* ------------------------------------------------------------------ */

static uint64_t rnd64(drv *d)
{
	d->rs += UINT64_C(0x9e3779b97f4a7c15);
	return as_mix(d->rs);
}

static uint32_t rnd(drv *d, uint32_t n)
{
	return n ? (uint32_t)(rnd64(d) % n) : 0;
}

static bool chance(drv *d, uint32_t pct)
{
	return rnd(d, 100) < pct;
}

static void note(drv *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(drv *d, const char *fmt, ...)
{
	size_t n = strlen(d->cur);
	if (n + 2 >= sizeof d->cur)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->cur + n, sizeof d->cur - n, fmt, ap);
	va_end(ap);
}

static void log_step(drv *d)
{
	if (!d->cur[0])
		return;
	if (d->verbose)
		fprintf(stderr, "  #%ld %s\n", d->step, d->cur);
	snprintf(d->log[d->log_pos], sizeof d->log[0], "%s", d->cur);
	d->log_step[d->log_pos] = d->step;
	d->log_pos = (d->log_pos + 1) % LOG_N;
	d->cur[0] = '\0';
}

static void cleanup_round(drv *d, bool keep_db);

static void fail_now(drv *d)
{
	log_step(d);
	fprintf(stderr, "\napiseq: DIVERGENCE at step %ld (round %d, step %ld of the round)\n",
		d->step, d->round, d->round_step);
	fprintf(stderr, "apiseq: %s\n", d->m.why);
	fprintf(stderr, "apiseq: the last steps:\n");
	for (int i = 0; i < LOG_N; i++) {
		int k = (d->log_pos + i) % LOG_N;
		if (d->log[k][0])
			fprintf(stderr, "  #%ld %s\n", d->log_step[k], d->log[k]);
	}
	if (d->m.focus >= 0) {
		am_dump_run(&d->m, d->m.focus, stderr);
		ac_dump_store(d->store, &d->m, d->m.focus, stderr);
	}
	fprintf(stderr, "apiseq: replay with SEED=%" PRIu64 " STEPS=%ld (ROUND_STEPS=%ld "
		"CKPT_EVERY=%ld)\n", d->seed, d->steps, d->round_steps, d->ckpt_every);
	if (d->keep)
		fprintf(stderr, "apiseq: store kept in %s\n", d->db);
	cleanup_round(d, d->keep);
	exit(1);
}

static void check_failed(drv *d)
{
	if (d->m.failed)
		fail_now(d);
}

static void setup_failure(drv *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void setup_failure(drv *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	am_diverge(&d->m, "%s", msg);
	fail_now(d);
}

/* ------------------------------------------------------------------ */
/* workers                                                             */
/* ------------------------------------------------------------------ */

static am_img *IMG(drv *d, int wi)
{
	return &d->m.imgs[d->w[wi].img];
}

static int n_alive(const drv *d)
{
	int n = 0;
	for (int i = 0; i < MAX_WORKERS; i++)
		n += d->w[i].alive;
	return n;
}

static void spawn(drv *d, int wi)
{
	as_rep hello;
	int rc = ap_worker_spawn(d->worker_bin, d->seg, d->db, &d->w[wi], &hello, BOUND_MS);
	if (rc)
		setup_failure(d, "cannot start a worker (%s): %s", d->worker_bin, am_rc(rc));
	d->w[wi].img = am_img_new(&d->m, wi, hello.pid, hello.token);
	IMG(d, wi)->nonce = hello.nonce;
	note(d, "[spawn w%d pid %d] ", wi, (int)hello.pid);
}

static void collect(drv *d, int wi);
static void fl_cont(drv *d);

static void cont_worker(drv *d, int wi)
{
	ap_worker *w = &d->w[wi];
	if (!w->alive || !w->stopped)
		return;
	ap_signal(w->pid, SIGCONT);
	w->stopped = false;
	IMG(d, wi)->stopped = false;
}

/* K1, seen from the segment: a claim won only once every lane of the
 * replaced owner image was drained, so no lane of that identity may still
 * hold bytes the flusher has not passed. */
static void claim_lanes_check(drv *d)
{
	int o = d->m.claim_prev_img;
	/* The flusher commits the 'ended' mark with the lane's last cursor
	 * and moves head just after: give a live, running flusher a bounded
	 * moment to publish. Without one, head may lag legitimately. */
	if (o < 0 || !d->view_ok || !d->fl || d->fl_armed || d->fl_stopped)
		return;
	const am_img *im = &d->m.imgs[o];
	for (uint32_t i = 0; i < d->view.lane_count; i++) {
		ckr_lane l;
		ckr_lane_view(&d->view, i, &l);
		uint64_t owner = ckr_lane_owner(&l), tail = ckr_lane_tail(&l);
		ckr_identity id;
		ckr_lane_owner_identity(&l, owner, &id);
		if (!owner || id.token != im->token || id.nonce != im->nonce)
			continue;
		int64_t deadline = ap_now_ms() + 5000;
		while (ckr_lane_head(&l) < tail && ckr_lane_owner(&l) == owner &&
		       ap_now_ms() < deadline) {
			struct timespec ts = { 0, 200000 }; /* polling a flusher word */
			nanosleep(&ts, NULL);
		}
		if (ckr_lane_head(&l) < tail && ckr_lane_owner(&l) == owner)
			am_diverge(&d->m, "a claim won while lane %u of the replaced owner (pid %d) "
				   "still held %llu bytes the flusher did not pass within 5 s (K1: "
				   "claims wait until the dead writer's lanes are drained)", i,
				   (int)im->pid, (unsigned long long)(tail - ckr_lane_head(&l)));
	}
}

/* Read the reply of worker wi's command in flight and let the model judge
 * it. A worker that dies here was not supposed to. */
static void collect(drv *d, int wi)
{
	ap_worker *w = &d->w[wi];
	if (!w->alive || !w->busy)
		return;
	cont_worker(d, wi);
	as_rep r;
	void *extra = NULL;
	struct pollfd p = { .fd = w->from, .events = POLLIN };
	if (poll(&p, 1, 2000) == 0) {
		/* Slow: a stopped process may hold LMDB's writer lock (the
		 * flusher mid-batch, a worker mid-claim). Continue them all. */
		fl_cont(d);
		for (int i = 0; i < MAX_WORKERS; i++)
			cont_worker(d, i);
	}
	int rc = ap_recv(w, &r, &extra, REPLY_MS);
	if (rc == -ETIMEDOUT)
		setup_failure(d, "worker w%d (pid %d) did not answer %s within %d ms (hung in "
			      "the call)", wi, (int)w->pid, am_op_name(w->pend.op), REPLY_MS);
	if (rc) {
		int st = ap_reap(w->pid, BOUND_MS);
		setup_failure(d, "worker w%d (pid %d) died during %s: status 0x%x (%s)", wi,
			      (int)w->pid, am_op_name(w->pend.op), st,
			      WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exit");
	}
	w->busy = false;
	d->m.claim_prev_img = -1;
	am_done(&d->m, w->img, &w->pend, &r, extra, w->t_send);
	if (w->pend.op == OP_CLAIM && r.rc == 0)
		claim_lanes_check(d);
	note(d, "{w%d %s -> %s%s} ", wi, am_op_name(w->pend.op), am_rc(r.rc),
	     r.elapsed_us > 20000 ? " (slow)" : "");
	if (w->pend.op == OP_CLAIM && d->verbose)
		note(d, "[%u tries, %lld ms] ", r.n, (long long)(r.elapsed_us / 1000));
	if (r.elapsed_us > 20000 && d->verbose)
		note(d, "[%lld ms] ", (long long)(r.elapsed_us / 1000));
	if (w->pend.op == OP_FORK && d->verbose)
		note(d, "[fork %d ms, child %lld ms] ", r.sub[11], (long long)(r.elapsed_us / 1000));
	if (w->pend.op == OP_FORK && r.rc == 0 && (w->pend.flags & FF_LINGER) &&
	    d->n_ling < MAX_LING) {
		uint64_t start = 0;
		if (ckr_proc_start_ticks(r.pid, &start) != 0)
			start = 0; /* gone already: nothing to kill later */
		d->ling[d->n_ling++] = (lingering){ r.pid, (int)d->m.n_imgs - 1, start };
	}
	if (w->pend.op == OP_EXEC) {
		IMG(d, wi)->gone_ms = ap_now_ms();
		w->img = am_img_new(&d->m, wi, r.pid, r.token);
		IMG(d, wi)->nonce = r.nonce;
	}
	free(extra);
	check_failed(d);
}

static void send_cmd(drv *d, int wi, as_cmd *c, bool async)
{
	ap_worker *w = &d->w[wi];
	collect(d, wi);
	w->t_send = am_sent(&d->m, w->img, c);
	w->pend = *c;
	w->busy = true;
	if (ap_send(w, c))
		setup_failure(d, "cannot send to worker w%d", wi);
	if (!async)
		collect(d, wi);
}

/* SIGKILL worker wi. A command in flight may have finished (its reply is
 * in the pipe) or not (the model treats it as maybe). */
static void kill_worker(drv *d, int wi)
{
	ap_worker *w = &d->w[wi];
	if (!w->alive)
		return;
	int64_t t_kill = am_tick(&d->m);
	int st = ap_kill_reap(w->pid, BOUND_MS);
	if (st == -1)
		setup_failure(d, "worker w%d (pid %d) did not die of SIGKILL", wi, (int)w->pid);
	if (w->busy) {
		struct pollfd p = { .fd = w->from, .events = POLLIN };
		as_rep r;
		void *extra = NULL;
		if (poll(&p, 1, 0) == 1 && ap_recv(w, &r, &extra, 1000) == 0 && r.op == w->pend.op) {
			am_done(&d->m, w->img, &w->pend, &r, extra, w->t_send);
			note(d, "{w%d %s -> %s before the kill} ", wi, am_op_name(w->pend.op),
			     am_rc(r.rc));
		} else {
			am_lost(&d->m, w->img, &w->pend, w->t_send);
			note(d, "{w%d %s lost in flight} ", wi, am_op_name(w->pend.op));
			d->inflight_lost++;
		}
		free(extra);
		w->busy = false;
	}
	am_img_end(&d->m, w->img, IMG_DEAD, t_kill, am_tick(&d->m));
	IMG(d, wi)->gone_ms = ap_now_ms();
	ap_worker_close(w);
	d->worker_kills++;
	check_failed(d);
}

/* A worker that is expected to die by itself (killpush, exit): wait for
 * the end of its reply pipe and reap it. */
static int await_death(drv *d, int wi, as_rep *r, void **extra)
{
	ap_worker *w = &d->w[wi];
	int rc = ap_recv(w, r, extra, REPLY_MS);
	return rc;
}

static void ensure_workers(drv *d)
{
	while (n_alive(d) < MIN_ALIVE) {
		for (int i = 0; i < MAX_WORKERS; i++)
			if (!d->w[i].alive) {
				spawn(d, i);
				break;
			}
	}
}

/* A live, not stopped worker with property `want` (see the callers), or -1. */
typedef bool (*wpred)(drv *d, int wi);

static int pick_worker(drv *d, wpred p)
{
	int cand[MAX_WORKERS], n = 0;
	for (int i = 0; i < MAX_WORKERS; i++)
		if (d->w[i].alive && !d->w[i].stopped && (!p || p(d, i)))
			cand[n++] = i;
	return n ? cand[rnd(d, (uint32_t)n)] : -1;
}

static int client_of(drv *d, int wi)
{
	am_img *im = IMG(d, wi);
	int c[AS_MAX_CLIENTS], n = 0;
	for (int i = 0; i < AS_MAX_CLIENTS; i++)
		if (im->cl[i].used)
			c[n++] = i;
	return n ? c[rnd(d, (uint32_t)n)] : -1;
}

static int free_client_slot(drv *d, int wi)
{
	am_img *im = IMG(d, wi);
	for (int i = 0; i < AS_MAX_CLIENTS; i++)
		if (!im->cl[i].used)
			return i;
	return -1;
}

static int n_handles(drv *d, int wi)
{
	int n = 0;
	for (int i = 0; i < AS_MAX_RUNS; i++)
		n += IMG(d, wi)->h[i].used;
	return n;
}

static int store_of(drv *d, int wi, bool rw)
{
	am_img *im = IMG(d, wi);
	int c[AS_MAX_STORES], n = 0;
	for (int i = 0; i < AS_MAX_STORES; i++)
		if (im->store[i] && (!rw || im->store[i] == 1))
			c[n++] = i;
	return n ? c[rnd(d, (uint32_t)n)] : -1;
}

static bool has_client(drv *d, int wi)
{
	collect(d, wi);
	return client_of(d, wi) >= 0 && d->w[wi].alive;
}

static bool has_handle(drv *d, int wi)
{
	collect(d, wi);
	return d->w[wi].alive && n_handles(d, wi) > 0;
}

/* A handle of worker wi: open, preferring unfinished ones of kind. */
static int pick_handle(drv *d, int wi, uint32_t kind, bool unfinished)
{
	am_img *im = IMG(d, wi);
	int c[AS_MAX_RUNS], n = 0, any[AS_MAX_RUNS], na = 0;
	for (int i = 0; i < AS_MAX_RUNS; i++) {
		am_handle *h = &im->h[i];
		if (!h->used)
			continue;
		any[na++] = i;
		if ((!kind || d->m.ws[h->writer].kind == kind) && (!unfinished || !h->finished))
			c[n++] = i;
	}
	if (n && !chance(d, 4))
		return c[rnd(d, (uint32_t)n)];
	return na ? any[rnd(d, (uint32_t)na)] : -1;
}

static void base_cmd(drv *d, as_cmd *c, uint32_t op)
{
	memset(c, 0, sizeof *c);
	c->op = op;
	c->client = c->run = c->store = c->claim = -1;
	/* Unique per command: labels, payloads and metadata derive from it
	 * (bursts use tag + 1000 * thread + k: 4096 tags per command). */
	c->tag = ((uint64_t)d->round << 56) | ((uint64_t)d->step << 20) |
		 ((uint64_t)(d->tags++ & 0xff) << 12);
}

/* ------------------------------------------------------------------ */
/* the flusher                                                         */
/* ------------------------------------------------------------------ */

static void fl_start(drv *d, bool random_opts)
{
	char errlog[300];
	snprintf(errlog, sizeof errlog, "%s.flusher.log", d->db);
	ap_flusher_opts o = { .sync = CKR_SYNC_ALWAYS, .idle_max_us = 200,
			      .max_attempts = 3, .verbose = d->verbose, .errlog = errlog };
	char crash[64];
	if (random_opts) {
		uint32_t s = rnd(d, 100);
		o.sync = s < 50 ? CKR_SYNC_ALWAYS : s < 75 ? CKR_SYNC_NONE : CKR_SYNC_INTERVAL;
		o.interval_ms = 2 + rnd(d, 18);
		o.idle_max_us = chance(d, 50) ? 200 : 1000;
		o.max_attempts = 2 + rnd(d, 4);
		if (chance(d, 10))
			o.map_size = 65536; /* the map fills and grows (ckr_store_grow) */
		if (chance(d, 30)) {
			static const char *const pts[] = { "mid_batch", "after_commit",
							   "after_release" };
			uint32_t p = rnd(d, 3);
			snprintf(crash, sizeof crash, "%s:%u", pts[p],
				 1 + rnd(d, p == 0 ? 300 : 12));
			o.crash = crash;
		}
	}
	int64_t t0 = am_tick(&d->m);
	int st = 0;
	pid_t pid = ap_flusher_start(d->flusher_bin, d->seg, d->db, &o, BOUND_MS, &st);
	if (pid < 0) {
		if (o.crash && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
			/* It crashed at its crash point before we saw it serve. */
			am_flusher_started(&d->m, o.sync, true, o.max_attempts, t0, am_tick(&d->m));
			am_flusher_ended(&d->m, am_tick(&d->m), false);
			d->fl = 0;
			d->fl_self_crashes++;
			note(d, "[flusher crashed while starting] ");
			return;
		}
		char msg[600] = "";
		FILE *f = fopen(errlog, "r");
		if (f) {
			size_t n = fread(msg, 1, sizeof msg - 1, f);
			msg[n] = '\0';
			fclose(f);
		}
		setup_failure(d, "the flusher did not start (status 0x%x): %s", st, msg);
	}
	d->fl = pid;
	d->fl_stopped = false;
	d->fl_armed = o.crash != NULL;
	d->fl_mode = o.sync;
	d->fl_starts++;
	am_flusher_started(&d->m, o.sync, d->fl_armed, o.max_attempts, t0, am_tick(&d->m));
	note(d, "[flusher pid %d sync %s%s max_attempts %u%s%s] ", (int)pid,
	     o.sync == CKR_SYNC_ALWAYS ? "always" : o.sync == CKR_SYNC_NONE ? "none" : "interval",
	     o.map_size ? " map 64K" : "", o.max_attempts, o.crash ? " crash " : "",
	     o.crash ? o.crash : "");
}

/* Has the flusher died by itself? Only an armed one may. */
static void fl_poll(drv *d)
{
	if (!d->fl)
		return;
	int st;
	if (waitpid(d->fl, &st, WNOHANG) != d->fl)
		return;
	if (d->fl_armed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
		am_flusher_ended(&d->m, am_tick(&d->m), false);
		d->fl = 0;
		d->fl_self_crashes++;
		note(d, "[flusher died at its crash point] ");
		return;
	}
	setup_failure(d, "the flusher (pid %d) died by itself: status 0x%x%s", (int)d->fl, st,
		      WIFSIGNALED(st) ? " (a signal)" : "");
}

static void fl_cont(drv *d)
{
	if (d->fl && d->fl_stopped) {
		ap_signal(d->fl, SIGCONT);
		d->fl_stopped = false;
		am_flusher_stopped(&d->m, false);
	}
}

static void fl_kill(drv *d)
{
	if (!d->fl)
		return;
	int64_t t = am_tick(&d->m);
	int st = ap_kill_reap(d->fl, BOUND_MS);
	if (st == -1)
		setup_failure(d, "the flusher did not die of SIGKILL");
	am_flusher_ended(&d->m, t, false);
	d->fl = 0;
	d->fl_stopped = false;
	note(d, "[flusher killed] ");
}

/* SIGTERM: it drains what is there, syncs and exits 0. */
static void fl_term(drv *d)
{
	if (!d->fl)
		return;
	fl_cont(d);
	int64_t t = am_tick(&d->m);
	ap_signal(d->fl, SIGTERM);
	int st = ap_reap(d->fl, BOUND_MS);
	if (st == -1)
		setup_failure(d, "the flusher did not exit within %d ms of SIGTERM", BOUND_MS);
	bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (!clean && !(d->fl_armed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
		setup_failure(d, "the flusher exited with status 0x%x on SIGTERM (want 0)", st);
	am_flusher_ended(&d->m, clean ? am_tick(&d->m) : t, clean);
	d->fl = 0;
	note(d, "[flusher stopped: %s] ", clean ? "exit 0" : "crashed");
	/* Its last line says how often its map grew (ckr_store_grow). */
	char errlog[300], buf[4096];
	snprintf(errlog, sizeof errlog, "%s.flusher.log", d->db);
	FILE *f = fopen(errlog, "r");
	if (f) {
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		buf[n] = '\0';
		fclose(f);
		const char *p = strstr(buf, "map grown ");
		if (p)
			d->map_grown += strtoull(p + 10, NULL, 10);
	}
}

/* ------------------------------------------------------------------ */
/* generators of commands                                              */
/* ------------------------------------------------------------------ */

static uint32_t max_event(drv *d, int wi, int client)
{
	am_img *im = IMG(d, wi);
	return client >= 0 && im->cl[client].used ? im->cl[client].max_event
						   : d->m.max_record;
}

static uint32_t msg_len(drv *d, uint32_t mx)
{
	uint32_t r = rnd(d, 100);
	if (r < 55)
		return rnd(d, 65);
	if (r < 80)
		return 64 + rnd(d, 960);
	if (r < 93 && mx > 1100)
		return 1024 + rnd(d, mx - 1024);
	if (r < 97)
		return mx > 48 ? mx - rnd(d, 48) : mx;
	return mx + 1 + rnd(d, 100);
}

static void new_id(drv *d, uint8_t *id, uint32_t *len)
{
	uint64_t n = ++d->ids;
	uint32_t r = rnd(d, 100);
	char *s = (char *)id;
	if (r < 84) {
		*len = (uint32_t)snprintf(s, CKR_RUN_ID_MAX + 1, "r%d-%" PRIu64, d->round, n);
	} else if (r < 89) {
		int k = snprintf(s, CKR_RUN_ID_MAX + 1, "long-%d-%" PRIu64 "-", d->round, n);
		memset(id + k, 'z', (size_t)(CKR_RUN_ID_MAX - k));
		*len = CKR_RUN_ID_MAX;
	} else if (r < 94) {
		id[0] = 0;
		id[1] = 0xff;
		memcpy(id + 2, &n, sizeof n);
		id[10] = (uint8_t)d->round;
		*len = 11;
	} else if (r < 98) {
		uint64_t h = as_mix(n ^ d->seed);
		*len = (uint32_t)snprintf(s, CKR_RUN_ID_MAX + 1, "%08x-%04x-4%03x-8%03x-%012" PRIx64,
					  (unsigned)(h >> 32), (unsigned)(h >> 16) & 0xffff,
					  (unsigned)(h & 0xfff), (unsigned)n & 0xfff,
					  n & UINT64_C(0xffffffffffff));
	} else {
		uint64_t k = ++d->short_ids; /* 1 or 2 bytes, never 0 */
		id[0] = (uint8_t)(1 + k % 250);
		if (k < 250) {
			*len = 1;
		} else {
			id[1] = (uint8_t)(1 + (k / 250) % 250);
			*len = 2;
		}
	}
}

/* Runs known to exist (a begin was applied), for duplicate begins. */
static int pick_existing_run(drv *d)
{
	if (!d->m.n_runs)
		return -1;
	for (int tries = 0; tries < 20; tries++) {
		int r = (int)rnd(d, (uint32_t)d->m.n_runs);
		if (d->m.runs[r].t_exists < d->m.T)
			return r;
	}
	return -1;
}

/* Runs a claim should look at: most often one whose owner is gone. */
static int pick_claim_run(drv *d, bool dead_owner)
{
	am *m = &d->m;
	if (!m->n_runs)
		return -1;
	int best = -1;
	for (int tries = 0; tries < 40; tries++) {
		int r = (int)rnd(d, (uint32_t)m->n_runs);
		am_run *ru = &m->runs[r];
		if (!ru->n_cands)
			continue;
		if (!dead_owner && chance(d, 30))
			return r;
		if (ru->winner < 0 || ru->exhausted || ru->fin_ev >= 0)
			continue;
		const am_img *o = &m->imgs[m->ws[ru->tenure[ru->n_tenure - 1]].img];
		/* Settled claims go for owners dead long enough that the
		 * flusher's idle liveness probe (every second) saw them. */
		if (dead_owner && o->state == IMG_DEAD && ap_now_ms() - o->gone_ms > 3000)
			return r;
		if (!dead_owner && (o->state == IMG_DEAD || o->state == IMG_EXECED))
			return r;
		if (best < 0)
			best = r;
	}
	return dead_owner ? -1 : best;
}

static void fill_id(as_cmd *c, const am_run *r)
{
	memcpy(c->id, r->id, r->id_len);
	c->id_len = r->id_len;
}

static void begin_cmd(drv *d, as_cmd *c, int client, const uint8_t *id, uint32_t id_len,
		      bool plain_label)
{
	base_cmd(d, c, OP_BEGIN);
	c->client = client;
	memcpy(c->id, id, id_len);
	c->id_len = id_len;
	c->kind = chance(d, 55) ? CKR_KIND_SINGLE_LOOP : CKR_KIND_MULTI_PHASE;
	uint32_t r = rnd(d, 100);
	c->index = 12 + rnd(d, 29);
	if (!plain_label && r < 3)
		c->index = 0;
	else if (!plain_label && r < 5)
		c->index = UINT32_MAX; /* NULL label */
	else if (r < 6)
		c->index = 255;
	else if (r < 7)
		c->index = 256; /* too long: -EINVAL */
	r = rnd(d, 100);
	c->len2 = r < 15 ? 0 : r < 95 ? rnd(d, 100) : r < 98 ? 100 + rnd(d, 3000) : 20000;
	if (chance(d, 1))
		c->kind = 9; /* -EINVAL */
	if (chance(d, 1))
		c->id_len = chance(d, 50) ? 0 : CKR_RUN_ID_MAX + 1;
}

static bool st_begin(drv *d)
{
	int wi = pick_worker(d, has_client);
	if (wi < 0 || n_handles(d, wi) >= AS_MAX_RUNS)
		return false;
	uint8_t id[CKR_RUN_ID_MAX + 8];
	uint32_t len;
	new_id(d, id, &len);
	as_cmd c;
	begin_cmd(d, &c, client_of(d, wi), id, len, false);
	note(d, "w%d begin new '%.*s' kind %u -> ", wi, (int)(len < 20 ? len : 20),
	     (const char *)id, c.kind);
	send_cmd(d, wi, &c, chance(d, 20));
	return true;
}

/* A duplicate begin: same client, another client of the process, or
 * another process; sequenced (the run is known to exist) or not. */
static bool st_dupbegin(drv *d)
{
	int run = pick_existing_run(d);
	if (run < 0)
		return false;
	int wi = pick_worker(d, has_client);
	if (wi < 0 || n_handles(d, wi) >= AS_MAX_RUNS)
		return false;
	as_cmd c;
	am_run *ru = &d->m.runs[run];
	begin_cmd(d, &c, client_of(d, wi), ru->id, ru->id_len, true);
	c.kind = ru->winner >= 0 ? d->m.ws[ru->winner].kind : c.kind;
	if (chance(d, 20))
		c.kind = c.kind == CKR_KIND_SINGLE_LOOP ? CKR_KIND_MULTI_PHASE : CKR_KIND_SINGLE_LOOP;
	note(d, "w%d dup-begin run %d -> ", wi, run);
	send_cmd(d, wi, &c, chance(d, 20));
	return true;
}

/* Two or three workers begin the same new id at once. */
static bool st_racebegin(drv *d)
{
	int ws[3], n = 0;
	uint8_t id[CKR_RUN_ID_MAX + 8];
	uint32_t len;
	new_id(d, id, &len);
	int want = 2 + (int)rnd(d, 2);
	for (int tries = 0; tries < 10 && n < want; tries++) {
		int wi = pick_worker(d, has_client);
		bool dup = false;
		for (int k = 0; k < n; k++)
			dup |= ws[k] == wi;
		if (wi >= 0 && !dup && n_handles(d, wi) < AS_MAX_RUNS)
			ws[n++] = wi;
	}
	if (n < 2)
		return false;
	note(d, "race-begin '%.*s' by", (int)(len < 20 ? len : 20), (const char *)id);
	for (int k = 0; k < n; k++) {
		as_cmd c;
		begin_cmd(d, &c, client_of(d, ws[k]), id, len, true);
		c.kind = CKR_KIND_SINGLE_LOOP;
		c.id_len = len;
		note(d, " w%d", ws[k]);
		send_cmd(d, ws[k], &c, true);
	}
	note(d, ": ");
	for (int k = 0; k < n; k++)
		collect(d, ws[k]);
	return true;
}

static void push_cmd(drv *d, int wi, int h, as_cmd *c, bool phase)
{
	am_img *im = IMG(d, wi);
	base_cmd(d, c, phase ? OP_PHASE : OP_MSG);
	c->run = h;
	c->len = msg_len(d, max_event(d, wi, im->h[h].client));
	if (chance(d, 2)) {
		c->flags |= PF_NULL_DATA;
		c->len = chance(d, 50) ? 0 : 5;
	}
	if (phase) {
		c->index = chance(d, 90) ? im->h[h].phases : rnd(d, 1000);
		uint32_t r = rnd(d, 100);
		c->len2 = r < 20 ? 0 : r < 95 ? 1 + rnd(d, 30) : 255;
	}
}

static bool st_push(drv *d, bool phase)
{
	int wi = pick_worker(d, has_handle);
	if (wi < 0)
		return false;
	int h = pick_handle(d, wi, phase ? CKR_KIND_MULTI_PHASE : CKR_KIND_SINGLE_LOOP, true);
	if (h < 0)
		return false;
	as_cmd c;
	push_cmd(d, wi, h, &c, phase);
	note(d, "w%d %s h%d len %u -> ", wi, phase ? "phase" : "message", h, c.len);
	send_cmd(d, wi, &c, chance(d, 20));
	return true;
}

static bool st_burst(drv *d)
{
	int wi = pick_worker(d, has_handle);
	if (wi < 0)
		return false;
	int h = pick_handle(d, wi, CKR_KIND_SINGLE_LOOP, true);
	if (h < 0)
		return false;
	as_cmd c;
	base_cmd(d, &c, OP_BURST);
	c.run = h;
	c.len = chance(d, 70) ? rnd(d, 200) : rnd(d, 4000);
	c.len2 = 2 + rnd(d, AS_BURST_MAX - 2);
	note(d, "w%d burst h%d %u x %u -> ", wi, h, c.len2, c.len);
	send_cmd(d, wi, &c, chance(d, 20));
	return true;
}

static bool st_wait(drv *d)
{
	int wi = pick_worker(d, has_client);
	if (wi < 0)
		return false;
	am_img *im = IMG(d, wi);
	as_cmd c;
	base_cmd(d, &c, OP_WAIT);
	c.client = client_of(d, wi);
	if (!im->n_evs || chance(d, 3)) {
		/* a LEAVE_RUNNING ticket: pos 0 */
		c.ticket = (ckr_ticket){ .lane = im->cl[c.client].lane, .slot = 0, .pos = 0,
					 .writer = 1 };
		c.tag = 0;
		c.level = CKR_LEVEL_COMMITTED;
		c.timeout_ms = 0;
		note(d, "w%d wait pos-0 ticket -> ", wi);
		send_cmd(d, wi, &c, false);
		return true;
	}
	uint32_t r = rnd(d, 100);
	size_t k = r < 50 ? im->n_evs - 1
		   : r < 80 ? im->n_evs - 1 - rnd(d, (uint32_t)(im->n_evs < 10 ? im->n_evs : 10))
			    : rnd(d, (uint32_t)im->n_evs);
	int ei = im->evs[k];
	c.ticket = d->m.evs[ei].tk;
	c.tag = (uint64_t)ei + 1;
	r = rnd(d, 100);
	c.level = r < 55 ? CKR_LEVEL_COMMITTED : r < 95 ? CKR_LEVEL_SYNCED : CKR_LEVEL_IN_RING;
	if (am_wait_returns(&d->m, ei, c.level)) {
		static const int t[] = { -1, -1, -1, 30000, 30000, 30000, 200, 200, 0, 5 };
		c.timeout_ms = t[rnd(d, 10)];
	} else {
		static const int t[] = { 0, 0, 5, 5, 30 };
		c.timeout_ms = t[rnd(d, 5)];
	}
	note(d, "w%d wait %s seq %llu %s t=%d -> ", wi, am_op_name(d->m.evs[ei].type == EV_BEGIN
								     ? OP_BEGIN : OP_MSG),
	     (unsigned long long)d->m.evs[ei].seq,
	     c.level == CKR_LEVEL_SYNCED ? "SYNCED" : c.level == CKR_LEVEL_COMMITTED ? "COMMITTED"
										 : "IN_RING",
	     c.timeout_ms);
	send_cmd(d, wi, &c, chance(d, 15));
	return true;
}

static bool st_finish(drv *d)
{
	int wi = pick_worker(d, has_handle);
	if (wi < 0)
		return false;
	int h = pick_handle(d, wi, 0, true);
	as_cmd c;
	base_cmd(d, &c, OP_FINISH);
	c.run = h;
	uint32_t r = rnd(d, 100);
	c.outcome = r < 40 ? CKR_OUTCOME_COMPLETE : r < 75 ? CKR_OUTCOME_FAIL
			 : r < 96 ? CKR_OUTCOME_LEAVE_RUNNING : 3;
	r = rnd(d, 100);
	c.len2 = r < 10 ? UINT32_MAX : r < 88 ? rnd(d, 100) : r < 98 ? 200 + rnd(d, 100)
							  : max_event(d, wi, IMG(d, wi)->h[h].client);
	note(d, "w%d finish h%d outcome %u -> ", wi, h, c.outcome);
	send_cmd(d, wi, &c, chance(d, 20));
	return true;
}

static bool st_close(drv *d)
{
	int wi = pick_worker(d, has_handle);
	if (wi < 0)
		return false;
	as_cmd c;
	base_cmd(d, &c, OP_CLOSE);
	c.run = pick_handle(d, wi, 0, false);
	note(d, "w%d close h%d -> ", wi, c.run);
	send_cmd(d, wi, &c, chance(d, 20));
	return true;
}

static bool st_attach(drv *d)
{
	int wi = pick_worker(d, NULL);
	if (wi < 0)
		return false;
	collect(d, wi);
	if (!d->w[wi].alive || free_client_slot(d, wi) < 0)
		return false;
	as_cmd c;
	base_cmd(d, &c, OP_ATTACH);
	int s = store_of(d, wi, false);
	if (s >= 0 && chance(d, 30)) {
		c.flags |= AF_BEGIN_CHECK;
		c.store = s;
	}
	if (chance(d, 25))
		c.u64 = 200 + rnd(d, 20000); /* a small max_run_bytes: budgets */
	if (chance(d, 20))
		c.max_event = 100 + rnd(d, 4000);
	if (chance(d, 3))
		c.flags |= chance(d, 60) ? AF_MISSING_SEG : AF_BAD_NAME;
	note(d, "w%d attach%s%s -> ", wi, (c.flags & AF_BEGIN_CHECK) ? " begin_check" : "",
	     c.u64 ? " small-budget" : "");
	send_cmd(d, wi, &c, chance(d, 10));
	return true;
}

static bool st_detach(drv *d)
{
	int wi = pick_worker(d, has_client);
	if (wi < 0)
		return false;
	as_cmd c;
	base_cmd(d, &c, OP_DETACH);
	c.client = client_of(d, wi);
	note(d, "w%d detach c%d (lane %u) -> ", wi, c.client, IMG(d, wi)->cl[c.client].lane);
	send_cmd(d, wi, &c, chance(d, 10));
	return true;
}

static bool st_store(drv *d)
{
	int wi = pick_worker(d, NULL);
	if (wi < 0)
		return false;
	collect(d, wi);
	if (!d->w[wi].alive)
		return false;
	am_img *im = IMG(d, wi);
	int s = store_of(d, wi, false);
	as_cmd c;
	if (s >= 0 && im->store_refs[s] == 0 && chance(d, 40)) {
		base_cmd(d, &c, OP_STORE_CLOSE);
		c.store = s;
		note(d, "w%d store close s%d -> ", wi, s);
	} else {
		bool free_slot = false;
		for (int i = 0; i < AS_MAX_STORES; i++)
			free_slot |= im->store[i] == 0;
		if (!free_slot)
			return false;
		base_cmd(d, &c, OP_STORE_OPEN);
		c.flags = chance(d, 20);
		c.max_attempts = chance(d, 20) ? 2 + rnd(d, 3) : 0;
		note(d, "w%d store open%s max_attempts %u -> ", wi, c.flags ? " read-only" : "",
		     c.max_attempts);
	}
	send_cmd(d, wi, &c, false);
	return true;
}

/* A worker with a store handle (opens one if it has none). */
static int store_worker(drv *d, bool rw, int *store)
{
	int wi = pick_worker(d, NULL);
	if (wi < 0)
		return -1;
	collect(d, wi);
	if (!d->w[wi].alive)
		return -1;
	int s = store_of(d, wi, rw);
	if (s < 0) {
		am_img *im = IMG(d, wi);
		bool free_slot = false;
		for (int i = 0; i < AS_MAX_STORES; i++)
			free_slot |= im->store[i] == 0;
		if (!free_slot)
			return -1;
		as_cmd c;
		base_cmd(d, &c, OP_STORE_OPEN);
		c.max_attempts = chance(d, 15) ? 2 + rnd(d, 3) : 0;
		note(d, "w%d store open -> ", wi);
		send_cmd(d, wi, &c, false);
		s = store_of(d, wi, rw);
	}
	*store = s;
	return s < 0 ? -1 : wi;
}

static bool st_read(drv *d, uint32_t op)
{
	int s, wi = store_worker(d, false, &s);
	if (wi < 0)
		return false;
	as_cmd c;
	base_cmd(d, &c, op);
	c.store = s;
	if (op == OP_LIST) {
		c.which = rnd(d, 3);
		note(d, "w%d list %u -> ", wi, c.which);
	} else if (op == OP_PRUNE) {
		fl_cont(d);
		c.len = chance(d, 50) ? 0 : 1000000;
		c.len2 = chance(d, 50) ? 0 : 1000000;
		note(d, "w%d prune -> ", wi);
	} else {
		int run = d->m.n_runs ? (int)rnd(d, (uint32_t)d->m.n_runs) : -1;
		if (run >= 0 && chance(d, 90)) {
			fill_id(&c, &d->m.runs[run]);
		} else {
			uint32_t len;
			new_id(d, c.id, &len);
			c.id_len = len;
		}
		note(d, "w%d %s run %d -> ", wi, am_op_name(op), run);
	}
	send_cmd(d, wi, &c, chance(d, 15));
	return true;
}

/* Claim a run; on success the claimer usually reopens it at once. */
static void reopen_after(drv *d, int wi)
{
	am_img *im = IMG(d, wi);
	int k = -1;
	/* Now and then a claim reopened before (open or closed since): the
	 * second reopen must be refused. */
	bool again = chance(d, 10);
	for (int i = 0; i < AS_MAX_CLAIMS; i++)
		if (im->claim[i].used && im->claim[i].reopened == again)
			k = i;
	if (k < 0 || !chance(d, 80) || n_handles(d, wi) >= AS_MAX_RUNS)
		return;
	int cl = client_of(d, wi);
	if (cl < 0) {
		as_cmd a;
		base_cmd(d, &a, OP_ATTACH);
		note(d, "w%d attach -> ", wi);
		send_cmd(d, wi, &a, false);
		cl = client_of(d, wi);
		if (cl < 0)
			return;
	}
	as_cmd c;
	base_cmd(d, &c, OP_REOPEN);
	c.client = cl;
	c.claim = k;
	note(d, "w%d reopen%s claim %d -> ", wi, again ? " again" : "", k);
	send_cmd(d, wi, &c, false);
}

static bool st_claim(drv *d, bool settled)
{
	int run = pick_claim_run(d, settled);
	if (run < 0)
		return false;
	fl_cont(d); /* a flusher stopped mid-batch holds LMDB's writer lock */
	int s, wi = store_worker(d, true, &s);
	if (wi < 0)
		return false;
	/* The host's boot path: claim, retrying while the dead owner is not
	 * yet drained (it must become claimable). */
	if (settled && !(d->fl && !d->fl_armed))
		settled = false;
	as_cmd c;
	base_cmd(d, &c, OP_CLAIM);
	c.store = s;
	fill_id(&c, &d->m.runs[run]);
	const am_run *ru = &d->m.runs[run];
	bool dead = ru->winner >= 0 &&
		    d->m.imgs[d->m.ws[ru->tenure[ru->n_tenure - 1]].img].state == IMG_DEAD;
	if (settled && dead && d->fl && chance(d, 25)) /* up to ~1 s: the idle */
		c.flags |= CF_RETRY;                      /* liveness cadence */
	note(d, "w%d claim%s run %d -> ", wi, (c.flags & CF_RETRY) ? " (retry)" : "", run);
	if (d->verbose && (c.flags & CF_RETRY))
		note(d, "[owner gone %lld ms ago] ",
		     (long long)(ap_now_ms() - d->m.imgs[d->m.ws[ru->tenure[ru->n_tenure - 1]].img].gone_ms));
	bool async = !settled && chance(d, 15);
	send_cmd(d, wi, &c, async);
	if (!async)
		reopen_after(d, wi);
	return true;
}

static bool st_raceclaim(drv *d)
{
	int run = pick_claim_run(d, true);
	if (run < 0)
		return false;
	fl_cont(d);
	int ws[2], ss[2], n = 0;
	for (int tries = 0; tries < 8 && n < 2; tries++) {
		int s, wi = store_worker(d, true, &s);
		if (wi >= 0 && (n == 0 || ws[0] != wi)) {
			ws[n] = wi;
			ss[n++] = s;
		}
	}
	if (n < 2)
		return false;
	note(d, "race-claim run %d by w%d w%d: ", run, ws[0], ws[1]);
	for (int k = 0; k < 2; k++) {
		as_cmd c;
		base_cmd(d, &c, OP_CLAIM);
		c.store = ss[k];
		fill_id(&c, &d->m.runs[run]);
		send_cmd(d, ws[k], &c, true);
	}
	collect(d, ws[0]);
	collect(d, ws[1]);
	reopen_after(d, ws[0]);
	reopen_after(d, ws[1]);
	return true;
}

/* A reopen by a process that did not make the claim: CKR_ENOTCLAIMER. */
static bool st_foreign(drv *d)
{
	am *m = &d->m;
	for (int tries = 0; tries < 20; tries++) {
		int img = (int)rnd(d, (uint32_t)m->n_imgs);
		am_img *o = &m->imgs[img];
		int k = (int)rnd(d, AS_MAX_CLAIMS);
		if (!o->claim[k].used)
			continue;
		int wi = pick_worker(d, has_client);
		if (wi < 0 || d->w[wi].img == img || n_handles(d, wi) >= AS_MAX_RUNS)
			return false;
		as_cmd c;
		base_cmd(d, &c, OP_REOPEN);
		c.flags = RF_GIVEN;
		c.client = client_of(d, wi);
		c.claim_data = o->claim[k].cl;
		note(d, "w%d reopen the claim of image %d (pid %d) -> ", wi, img, (int)o->pid);
		send_cmd(d, wi, &c, false);
		return true;
	}
	return false;
}

static bool st_kill(drv *d, bool busy)
{
	int wi = pick_worker(d, busy ? has_handle : NULL);
	if (wi < 0)
		return false;
	if (!busy) {
		if (chance(d, 50))
			collect(d, wi);
		note(d, "kill w%d%s ", wi, d->w[wi].busy ? " (command in flight)" : "");
		kill_worker(d, wi);
		return true;
	}
	/* Send something that changes the store, and kill at once. */
	as_cmd c;
	int h = pick_handle(d, wi, 0, true);
	uint32_t r = rnd(d, 100);
	am_img *im = IMG(d, wi);
	bool phase = d->m.ws[im->h[h].writer].kind == CKR_KIND_MULTI_PHASE;
	if (r < 40) {
		push_cmd(d, wi, h, &c, phase);
	} else if (r < 65 && !phase) {
		base_cmd(d, &c, OP_BURST);
		c.run = h;
		c.len = rnd(d, 2000);
		c.len2 = 2 + rnd(d, AS_BURST_MAX - 2);
	} else if (r < 80) {
		base_cmd(d, &c, OP_FINISH);
		c.run = h;
		c.outcome = chance(d, 50) ? CKR_OUTCOME_COMPLETE : CKR_OUTCOME_FAIL;
		c.len2 = rnd(d, 50);
	} else if (r < 90) {
		uint8_t id[CKR_RUN_ID_MAX + 8];
		uint32_t len;
		new_id(d, id, &len);
		begin_cmd(d, &c, im->h[h].client, id, len, true);
	} else {
		int run = pick_claim_run(d, true);
		int s = store_of(d, wi, true);
		if (run < 0 || s < 0) {
			push_cmd(d, wi, h, &c, phase);
		} else {
			base_cmd(d, &c, OP_CLAIM);
			c.store = s;
			fill_id(&c, &d->m.runs[run]);
		}
	}
	note(d, "w%d %s then kill at once: ", wi, am_op_name(c.op));
	send_cmd(d, wi, &c, true);
	kill_worker(d, wi);
	return true;
}

static bool st_killpush(drv *d)
{
	int wi = pick_worker(d, has_handle);
	if (wi < 0)
		return false;
	int h = pick_handle(d, wi, CKR_KIND_SINGLE_LOOP, true);
	as_cmd c;
	push_cmd(d, wi, h, &c, false);
	c.op = OP_KILLPUSH;
	note(d, "w%d killpush h%d len %u: ", wi, h, c.len);
	ap_worker *w = &d->w[wi];
	w->t_send = am_sent(&d->m, w->img, &c);
	w->pend = c;
	w->busy = true;
	if (ap_send(w, &c))
		setup_failure(d, "cannot send to worker w%d", wi);
	as_rep r;
	void *extra = NULL;
	int rc = await_death(d, wi, &r, &extra);
	if (rc == 0) { /* refused before its claim: it lives */
		w->busy = false;
		am_done(&d->m, w->img, &c, &r, extra, w->t_send);
		note(d, "came back %s ", am_rc(r.rc));
		free(extra);
		return true;
	}
	int64_t t_end = am_tick(&d->m);
	int st = ap_reap(w->pid, BOUND_MS);
	if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
		setup_failure(d, "killpush: worker ended with status 0x%x, not SIGKILL", st);
	w->busy = false;
	am_lost(&d->m, w->img, &c, w->t_send);
	am_img_end(&d->m, w->img, IMG_DEAD, t_end, am_tick(&d->m));
	IMG(d, wi)->gone_ms = ap_now_ms();
	ap_worker_close(w);
	note(d, "died between claim and commit ");
	d->worker_kills++;
	check_failed(d);
	return true;
}

/* PARKPUSH and TBURST: the reply, then SIGKILL. */
static bool st_thenkill(drv *d, uint32_t op)
{
	int wi = pick_worker(d, has_handle);
	if (wi < 0)
		return false;
	int h = pick_handle(d, wi, CKR_KIND_SINGLE_LOOP, true);
	if (d->m.ws[IMG(d, wi)->h[h].writer].kind != CKR_KIND_SINGLE_LOOP)
		return false;
	as_cmd c;
	base_cmd(d, &c, op);
	c.run = h;
	if (op == OP_TBURST) {
		c.len = 1000 + rnd(d, 7000);
		c.len2 = 4 + rnd(d, AS_BURST_MAX - 4);
		uint32_t mx = max_event(d, wi, IMG(d, wi)->h[h].client);
		if (c.len + 200 > mx)
			c.len = mx > 216 ? mx - 200 : 16; /* payloads must differ */
	} else {
		c.len = rnd(d, 500);
		c.len2 = 1 + rnd(d, 8);
	}
	note(d, "w%d %s h%d: ", wi, am_op_name(op), h);
	send_cmd(d, wi, &c, false);
	if (d->w[wi].alive) {
		note(d, "kill ");
		kill_worker(d, wi);
	}
	return true;
}

static bool st_stop(drv *d, bool stop)
{
	if (stop) {
		int wi = pick_worker(d, NULL);
		if (wi < 0 || n_alive(d) <= 2)
			return false;
		ap_worker *w = &d->w[wi];
		uint32_t op = w->pend.op;
		if (w->busy && (op == OP_CLAIM || op == OP_PRUNE || op == OP_EMBED))
			return false; /* it may hold LMDB's writer lock: every writer waits */
		ap_signal(w->pid, SIGSTOP);
		/* Wait on the kernel's word that it stopped (bounded). */
		int64_t deadline = ap_now_ms() + BOUND_MS;
		char path[64], buf[512];
		snprintf(path, sizeof path, "/proc/%d/stat", (int)w->pid);
		for (;;) {
			FILE *f = fopen(path, "r");
			size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
			if (f)
				fclose(f);
			buf[n] = '\0';
			char *p = strrchr(buf, ')');
			if (p && (p[2] == 'T' || p[2] == 't'))
				break;
			if (ap_now_ms() > deadline)
				setup_failure(d, "worker w%d did not stop", wi);
			struct timespec ts = { 0, 200000 };
			nanosleep(&ts, NULL);
		}
		w->stopped = true;
		IMG(d, wi)->stopped = true;
		note(d, "sigstop w%d%s ", wi, w->busy ? " (command in flight)" : "");
		return true;
	}
	for (int i = 0; i < MAX_WORKERS; i++)
		if (d->w[i].alive && d->w[i].stopped) {
			cont_worker(d, i);
			note(d, "sigcont w%d ", i);
			return true;
		}
	return false;
}

static bool st_exec(drv *d)
{
	int wi = pick_worker(d, NULL);
	if (wi < 0)
		return false;
	as_cmd c;
	base_cmd(d, &c, OP_EXEC);
	note(d, "w%d exec -> ", wi);
	send_cmd(d, wi, &c, false);
	return true;
}

static bool st_fork(drv *d)
{
	int wi = pick_worker(d, NULL);
	if (wi < 0)
		return false;
	as_cmd c;
	base_cmd(d, &c, OP_FORK);
	if (chance(d, 30))
		c.flags |= FF_LINGER;
	int run = pick_existing_run(d);
	if (run >= 0 && chance(d, 40)) {
		fl_cont(d); /* the child waits for its begin's verdict */
		c.flags |= FF_DUP_BEGIN;
		fill_id(&c, &d->m.runs[run]);
		c.kind = CKR_KIND_SINGLE_LOOP;
	}
	note(d, "w%d fork%s%s -> ", wi, (c.flags & FF_LINGER) ? " linger" : "",
	     (c.flags & FF_DUP_BEGIN) ? " dup-begin" : "");
	send_cmd(d, wi, &c, false);
	return true;
}

static bool st_exit(drv *d)
{
	int wi = pick_worker(d, NULL);
	if (wi < 0 || n_alive(d) <= MIN_ALIVE)
		return false;
	collect(d, wi);
	if (!d->w[wi].alive)
		return false;
	ap_worker *w = &d->w[wi];
	as_cmd c;
	base_cmd(d, &c, OP_EXIT);
	c.flags = chance(d, 50) ? XF_DETACH : 0;
	int64_t t = am_tick(&d->m);
	if (ap_send(w, &c))
		setup_failure(d, "cannot send to worker w%d", wi);
	as_rep r;
	void *extra = NULL;
	if (ap_recv(w, &r, &extra, REPLY_MS) != -EPIPE)
		setup_failure(d, "worker w%d answered an exit", wi);
	int st = ap_reap(w->pid, BOUND_MS);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		setup_failure(d, "worker w%d exit status 0x%x", wi, st);
	am_img_end(&d->m, w->img, IMG_DEAD, t, am_tick(&d->m));
	IMG(d, wi)->gone_ms = ap_now_ms();
	ap_worker_close(w);
	note(d, "w%d exit%s ", wi, c.flags ? " (detached first)" : " (without detach)");
	return true;
}

static bool st_fkill(drv *d)
{
	if (!d->fl)
		return false;
	fl_kill(d);
	return true;
}

static bool st_fstop(drv *d)
{
	if (!d->fl)
		return false;
	if (d->fl_stopped) {
		fl_cont(d);
		note(d, "[flusher sigcont] ");
		return true;
	}
	ap_signal(d->fl, SIGSTOP);
	d->fl_stopped = true;
	am_flusher_stopped(&d->m, true);
	note(d, "[flusher sigstop] ");
	return true;
}

/* The flusher dies while a worker waits with timeout -1: -EPIPE. */
static bool st_fkillwait(drv *d)
{
	if (!d->fl || d->fl_armed || chance(d, 50)) /* -EPIPE takes ~100 ms */
		return false;
	int wi = pick_worker(d, has_handle);
	if (wi < 0)
		return false;
	int h = pick_handle(d, wi, CKR_KIND_SINGLE_LOOP, true);
	am_img *im = IMG(d, wi);
	if (d->m.ws[im->h[h].writer].kind != CKR_KIND_SINGLE_LOOP || im->h[h].finished)
		return false;
	if (!d->fl_stopped) {
		ap_signal(d->fl, SIGSTOP);
		d->fl_stopped = true;
		am_flusher_stopped(&d->m, true);
	}
	as_cmd c;
	push_cmd(d, wi, h, &c, false);
	c.len = 10;
	c.flags = 0;
	note(d, "[flusher stopped] w%d message -> ", wi);
	size_t before = im->n_evs;
	send_cmd(d, wi, &c, false);
	im = IMG(d, wi);
	if (!d->w[wi].alive || im->n_evs == before) {
		fl_kill(d);
		return true;
	}
	as_cmd w;
	base_cmd(d, &w, OP_WAIT);
	w.client = client_of(d, wi);
	int ei = im->evs[im->n_evs - 1];
	w.ticket = d->m.evs[ei].tk;
	w.tag = (uint64_t)ei + 1;
	w.level = CKR_LEVEL_COMMITTED;
	w.timeout_ms = -1;
	note(d, "wait(-1) in flight; ");
	send_cmd(d, wi, &w, true);
	fl_kill(d);
	collect(d, wi);
	return true;
}

static bool st_fsecond(drv *d)
{
	/* Its store open takes LMDB's writer lock, which a stopped flusher
	 * (mid-batch) or worker (mid-claim) may hold. */
	fl_cont(d);
	for (int i = 0; i < MAX_WORKERS; i++)
		cont_worker(d, i);
	int lines = 0, st;
	char first[512];
	bool own = d->fl && !d->fl_armed && chance(d, 40);
	uint32_t att = 2 + rnd(d, 6);
	if (own) {
		st = ap_flusher_refused(d->flusher_bin, d->seg, d->db, false, att, BOUND_MS,
					&lines, first, sizeof first);
		note(d, "[second flusher, own segment: status 0x%x, %d line(s)] ", st, lines);
	} else {
		char other[160];
		snprintf(other, sizeof other, "%s-other%ld", d->seg, d->step);
		bool made = chance(d, 50);
		if (made) {
			ckr_segment_opts so = { .lanes = 2, .group = (gid_t)-1 };
			if (ckr_segment_create(other, &so))
				setup_failure(d, "cannot create segment %s", other);
		}
		st = ap_flusher_refused(d->flusher_bin, other, d->db, !made, att, BOUND_MS,
					&lines, first, sizeof first);
		note(d, "[second flusher, other segment%s: status 0x%x, %d line(s)] ",
		     made ? "" : " --create", st, lines);
		ckr_segment s;
		int left = ckr_segment_attach(other, true, &s);
		if (left == 0)
			ckr_segment_detach(&s);
		if (!made && left == 0)
			setup_failure(d, "a refused flusher left the segment it created (%s)", other);
		ckr_segment_unlink(other);
	}
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 1 || lines != 1)
		setup_failure(d, "a second flusher (%s) must be refused with exit 1 and one line; "
			      "got status 0x%x and %d line(s): %s", own ? "own segment" :
			      "another segment, same store", st, lines, first);
	d->refused_ok++;
	return true;
}

static bool st_embed(drv *d)
{
	if (!d->fl || d->fl_armed)
		return false;
	int wi = pick_worker(d, NULL);
	if (wi < 0)
		return false;
	as_cmd c;
	base_cmd(d, &c, OP_EMBED);
	c.max_attempts = 2 + rnd(d, 6); /* refused: must not change meta */
	if (chance(d, 50)) {
		c.flags = EF_OTHER_SEG;
		snprintf(c.str, sizeof c.str, "%s-emb%ld", d->seg, d->step);
	}
	note(d, "w%d embedded flusher%s -> ", wi, c.flags ? " (other segment)" : "");
	send_cmd(d, wi, &c, false);
	if (c.flags)
		ckr_segment_unlink(c.str);
	return true;
}

static bool st_misuse(drv *d)
{
	int wi = pick_worker(d, NULL);
	if (wi < 0)
		return false;
	collect(d, wi);
	if (!d->w[wi].alive)
		return false;
	as_cmd c;
	base_cmd(d, &c, OP_MISUSE);
	c.client = client_of(d, wi);
	c.run = n_handles(d, wi) ? pick_handle(d, wi, 0, false) : -1;
	note(d, "w%d misuse -> ", wi);
	send_cmd(d, wi, &c, false);
	return true;
}

static bool st_collect(drv *d)
{
	for (int i = 0; i < MAX_WORKERS; i++) {
		int k = (int)((i + rnd(d, MAX_WORKERS)) % MAX_WORKERS);
		if (d->w[k].alive && d->w[k].busy && !d->w[k].stopped) {
			note(d, "collect w%d: ", k);
			collect(d, k);
			return true;
		}
	}
	return false;
}

static bool run_kind(drv *d, step_kind k)
{
	switch (k) {
	case K_MSG: return st_push(d, false);
	case K_PHASE: return st_push(d, true);
	case K_BURST: return st_burst(d);
	case K_WAIT: return st_wait(d);
	case K_BEGIN: return st_begin(d);
	case K_DUPBEGIN: return st_dupbegin(d);
	case K_RACEBEGIN: return st_racebegin(d);
	case K_FINISH: return st_finish(d);
	case K_CLOSE: return st_close(d);
	case K_ATTACH: return st_attach(d);
	case K_DETACH: return st_detach(d);
	case K_STORE: return st_store(d);
	case K_LIST: return st_read(d, OP_LIST);
	case K_GET: return st_read(d, OP_GET);
	case K_RESUME: return st_read(d, OP_RESUME);
	case K_BCHECK: return st_read(d, OP_BEGIN_CHECK);
	case K_PRUNE: return st_read(d, OP_PRUNE);
	case K_CLAIM: return st_claim(d, false);
	case K_SCLAIM: return st_claim(d, true);
	case K_RCLAIM: return st_raceclaim(d);
	case K_FOREIGN: return st_foreign(d);
	case K_KILL: return st_kill(d, false);
	case K_KILLBUSY: return st_kill(d, true);
	case K_KILLPUSH: return st_killpush(d);
	case K_PARKPUSH: return st_thenkill(d, OP_PARKPUSH);
	case K_TBURST: return st_thenkill(d, OP_TBURST);
	case K_STOP: return st_stop(d, true);
	case K_CONT: return st_stop(d, false);
	case K_EXEC: return st_exec(d);
	case K_FORK: return st_fork(d);
	case K_EXIT: return st_exit(d);
	case K_FKILL: return st_fkill(d);
	case K_FTERM:
		if (!d->fl)
			return false;
		fl_term(d);
		return true;
	case K_FSTOP: return st_fstop(d);
	case K_FSTART:
		fl_cont(d);
		if (d->fl && chance(d, 50))
			fl_kill(d);
		else if (d->fl)
			fl_term(d);
		fl_start(d, true);
		return true;
	case K_FKILLWAIT: return st_fkillwait(d);
	case K_FSECOND: return st_fsecond(d);
	case K_EMBED: return st_embed(d);
	case K_MISUSE: return st_misuse(d);
	case K_COLLECT: return st_collect(d);
	default: return false;
	}
}

static step_kind pick_kind(drv *d)
{
	uint32_t total = 0;
	for (int k = 0; k < K_COUNT; k++)
		total += (uint32_t)KINDS[k].weight;
	uint32_t r = rnd(d, total);
	for (int k = 0; k < K_COUNT; k++) {
		if (r < (uint32_t)KINDS[k].weight)
			return (step_kind)k;
		r -= (uint32_t)KINDS[k].weight;
	}
	return K_MSG;
}

/* ------------------------------------------------------------------ */
/* checkpoints and rounds                                              */
/* ------------------------------------------------------------------ */

/* SIGKILL a lingering grandchild, if it is still the process reported: it
 * is not our child (no waitpid), so its pid may belong to any process of
 * the machine once it died. */
static void ling_kill(const lingering *l)
{
	uint64_t now;
	if (l->start && ckr_proc_start_ticks(l->pid, &now) == 0 && now == l->start)
		ap_signal(l->pid, SIGKILL);
}

static void kill_lingering(drv *d)
{
	for (int i = 0; i < d->n_ling; i++) {
		ling_kill(&d->ling[i]);
		waitpid(d->ling[i].pid, NULL, WNOHANG); /* ours if its parent died */
		int64_t t = am_tick(&d->m);
		am_img_end(&d->m, d->ling[i].img, IMG_DEAD, t, t);
	}
	d->n_ling = 0;
}

/* Everything is applied: a wait on any event answers its verdict at once,
 * stored (0) or rejected (CKR_EREJECTED), for a sample of every live
 * worker's events. */
static void wait_sweep(drv *d)
{
	for (int wi = 0; wi < MAX_WORKERS; wi++) {
		if (!d->w[wi].alive)
			continue;
		am_img *im = IMG(d, wi);
		int cl = client_of(d, wi);
		if (cl < 0 || !im->n_evs)
			continue;
		for (int k = 0; k < 6; k++) {
			int ei = im->evs[rnd(d, (uint32_t)im->n_evs)];
			as_cmd c;
			base_cmd(d, &c, OP_WAIT);
			c.client = cl;
			c.ticket = d->m.evs[ei].tk;
			c.tag = (uint64_t)ei + 1;
			c.level = CKR_LEVEL_COMMITTED;
			c.timeout_ms = 0;
			send_cmd(d, wi, &c, false);
			im = IMG(d, wi);
		}
	}
}

static void checkpoint(drv *d, bool full)
{
	int64_t c0 = ap_now_ms();
	for (int i = 0; i < MAX_WORKERS; i++)
		cont_worker(d, i);
	for (int i = 0; i < MAX_WORKERS; i++)
		collect(d, i);
	kill_lingering(d);
	fl_cont(d);
	fl_poll(d);
	if (d->fl && d->fl_armed)
		fl_kill(d); /* it could die at its crash point while we check */
	for (int tries = 0;; tries++) {
		if (!d->fl)
			fl_start(d, false);
		int rc = ap_lanes_drained(&d->view, BOUND_MS);
		if (rc == 0)
			break;
		fl_poll(d);
		if (d->fl || tries > 3)
			setup_failure(d, "checkpoint: the lanes were not drained within %d ms",
				      BOUND_MS);
	}
	int64_t c1 = ap_now_ms();
	am_quiesced(&d->m, am_tick(&d->m));
	if (full) {
		uint64_t live[MAX_WORKERS * AS_MAX_CLIENTS];
		size_t n = 0;
		for (int i = 0; i < MAX_WORKERS; i++)
			if (d->w[i].alive)
				live[n++] = IMG(d, i)->token;
		if (ap_lanes_freed(&d->view, live, n, BOUND_MS))
			setup_failure(d, "checkpoint: a dead or detached owner's lane was not freed "
				      "within %d ms", BOUND_MS);
		am_lanes_free(&d->m);
		ac_wait_ended(&d->m, d->store, 30000);
		check_failed(d);
	}
	wait_sweep(d);
	int64_t c2 = ap_now_ms();
	ac_checkpoint(&d->m, d->store, full);
	if (env_long("TIMES", 0))
		fprintf(stderr, "apiseq: checkpoint%s: drain %lld ms, wait-ended %lld ms, check "
			"%lld ms (%zu runs)\n", full ? " (full)" : "", (long long)(c1 - c0),
			(long long)(c2 - c1), (long long)(ap_now_ms() - c2), d->m.n_runs);
	d->ckpt_us += (ap_now_ms() - c0) * 1000;
	d->checkpoints++;
	d->full_checkpoints += full;
	note(d, "checkpoint%s: %zu runs ok", full ? " (full)" : "", d->m.n_runs);
	check_failed(d);
}

static void cleanup_round(drv *d, bool keep_db)
{
	for (int i = 0; i < MAX_WORKERS; i++)
		if (d->w[i].alive) {
			ap_signal(d->w[i].pid, SIGKILL);
			ap_reap(d->w[i].pid, BOUND_MS);
			ap_worker_close(&d->w[i]);
		}
	for (int i = 0; i < d->n_ling; i++)
		ling_kill(&d->ling[i]);
	d->n_ling = 0;
	if (d->fl) {
		ap_signal(d->fl, SIGKILL);
		ap_reap(d->fl, BOUND_MS);
		d->fl = 0;
	}
	if (d->store)
		ckr_store_close(d->store);
	d->store = NULL;
	if (d->view_ok)
		ckr_segment_detach(&d->view);
	d->view_ok = false;
	if (d->seg[0])
		ckr_segment_unlink(d->seg);
	if (!keep_db && d->db[0]) {
		char cmd[700];
		snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.flusher.log'", d->db, d->db);
		if (system(cmd) != 0)
			fprintf(stderr, "apiseq: could not remove %s\n", d->db);
	}
}

static void round_start(drv *d)
{
	d->round++;
	d->round_step = 0;
	d->ids = d->short_ids = 0;
	d->rs = as_mix(d->seed ^ as_mix(UINT64_C(0xabcdef) + (uint64_t)d->round));
	d->lanes = 4 + rnd(d, 5);
	d->wpl = 3 + rnd(d, 6);
	snprintf(d->seg, sizeof d->seg, "ckrt-%d-api%d", (int)getpid(), d->round);
	snprintf(d->db, sizeof d->db, "%s/ckrt-api-XXXXXX", d->db_root);
	if (!mkdtemp(d->db))
		setup_failure(d, "mkdtemp: %s", strerror(errno));
	ckr_segment_unlink(d->seg);
	ckr_segment_opts so = { .lanes = d->lanes, .writers_per_lane = d->wpl,
				.group = (gid_t)-1 };
	ckr_seg_geometry g;
	so.size = 0;
	ckr_segment_geometry(&so, &g);
	so.size = g.data_offset + (uint64_t)d->lanes * 65536;
	am_init(&d->m, d->lanes, d->wpl, 3);
	int rc = ckr_segment_create(d->seg, &so);
	if (rc)
		setup_failure(d, "ckr_segment_create(%s): %s", d->seg, am_rc(rc));
	/* A duplicate create and bad names are refused. */
	if (ckr_segment_create(d->seg, &so) != -EEXIST || ckr_segment_create(".x", NULL) != -EINVAL ||
	    ckr_segment_unlink("ckrt-no-such-segment-api") != -ENOENT)
		setup_failure(d, "ckr_segment_create/unlink: duplicate or bad name not refused");
	fl_start(d, false);
	if (ckr_segment_attach(d->seg, true, &d->view))
		setup_failure(d, "cannot view the segment");
	d->view_ok = true;
	ckr_store_opts o = { .read_only = true };
	rc = ckr_store_open(d->db, &o, &d->store);
	if (rc)
		setup_failure(d, "ckr_store_open(%s): %s", d->db, am_rc(rc));
	for (int i = 0; i < MIN_ALIVE + 1; i++)
		spawn(d, i);
	note(d, "round %d: segment %s (%u lanes of 64 KiB, %u writers each), store %s ",
	     d->round, d->seg, d->lanes, d->wpl, d->db);
	log_step(d);
}

static void round_end(drv *d)
{
	checkpoint(d, true);
	ac_inspect(&d->m, d->inspect_bin, d->db);
	check_failed(d);
	fl_term(d);
	for (int i = 0; i < MAX_WORKERS; i++) {
		ap_worker *w = &d->w[i];
		if (!w->alive)
			continue;
		close(w->to); /* the worker reads end of file and exits 0 */
		w->to = -1;
		int st = ap_reap(w->pid, BOUND_MS);
		if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			setup_failure(d, "worker w%d did not exit cleanly: 0x%x", i, st);
		ap_worker_close(w);
	}
	log_step(d);
	cleanup_round(d, false);
	d->st_races += d->m.n_races;
	d->st_claims += d->m.n_claims_ok;
	d->st_rejected += d->m.n_rejected_seen;
	d->st_gaps += d->m.n_gaps_seen;
	d->st_epipe += d->m.n_epipe;
	d->st_synced_to += d->m.n_synced_to;
	d->st_eclosed += d->m.n_eclosed;
	d->st_eagain += d->m.n_eagain;
	d->st_runs += d->m.n_runs;
	d->st_events += d->m.n_evs;
	am_free(&d->m);
}

static void one_step(drv *d)
{
	d->rs = as_mix(d->seed ^ as_mix((uint64_t)d->step * UINT64_C(0x2545f4914f6cdd1d)));
	fl_poll(d);
	ensure_workers(d);
	if (n_alive(d) < MAX_ALIVE && chance(d, 2)) {
		for (int i = 0; i < MAX_WORKERS; i++)
			if (!d->w[i].alive) {
				spawn(d, i);
				break;
			}
	}
	if (!d->fl && chance(d, 3))
		fl_start(d, chance(d, 60));
	if (d->fl_stopped && chance(d, 10))
		fl_cont(d);
	for (int tries = 0; tries < 8; tries++) {
		step_kind k = pick_kind(d);
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		bool ran = run_kind(d, k);
		clock_gettime(CLOCK_MONOTONIC, &b);
		d->kus[k] += (b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000;
		if (ran) {
			d->kc[k]++;
			break;
		}
	}
	check_failed(d);
	log_step(d);
}

static long env_long(const char *name, long def)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return def;
	char *end;
	long v = strtol(s, &end, 0);
	return *end ? def : v;
}

int main(int argc, char **argv)
{
	static drv dd;
	drv *d = &dd;
	D = d;
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_interrupt; /* the loop ends the round and cleans up */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	const char *b = getenv("BUILD");
	if (!b || !*b)
		b = "build";
	snprintf(d->worker_bin, sizeof d->worker_bin, "%s/tests/apiseq/apiseq-worker", b);
	snprintf(d->flusher_bin, sizeof d->flusher_bin, "%s/hooks/bin/ckring-flusher", b);
	snprintf(d->inspect_bin, sizeof d->inspect_bin, "%s/bin/ckring-inspect", b);
	const char *seed = getenv("SEED");
	if (!seed || !*seed)
		seed = getenv("CKR_SEED");
	if (seed && *seed) {
		d->seed = strtoull(seed, NULL, 0);
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		d->seed = as_mix((uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32)) % 1000000007u;
	}
	d->steps = env_long("STEPS", SANITIZED ? 25000 : 100000);
	d->round_steps = env_long("ROUND_STEPS", 20000);
	d->ckpt_every = env_long("CKPT_EVERY", 2000);
	d->verbose = env_long("VERBOSE", 0) == 1;
	d->keep = env_long("KEEP", 0) == 1;
	/* The store on tmpfs by default: this test is about the protocol,
	 * not the disk, and an fsync per commit on a loaded disk would cost
	 * most of its time. DB_ROOT=/tmp puts it on a real file system. */
	d->db_root = getenv("DB_ROOT");
	if (!d->db_root || !*d->db_root)
		d->db_root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	d->fl = 0;
	for (int i = 0; i < MAX_WORKERS; i++)
		d->w[i].to = d->w[i].from = -1;
	if (access(d->worker_bin, X_OK) || access(d->flusher_bin, X_OK)) {
		fprintf(stderr, "apiseq: build %s and %s first (make tests)\n", d->worker_bin,
			d->flusher_bin);
		return 2;
	}
	/* ckr_strerror and ckr_classify_outcome: pure functions, checked once. */
	for (int e = -20016; e <= 0; e++)
		if (!ckr_strerror(e)) {
			fprintf(stderr, "apiseq: ckr_strerror(%d) is NULL\n", e);
			return 1;
		}
	if (ckr_classify_outcome(false, CKR_CAUSE_SHUTDOWN) != CKR_OUTCOME_COMPLETE ||
	    ckr_classify_outcome(true, CKR_CAUSE_SHUTDOWN) != CKR_OUTCOME_LEAVE_RUNNING ||
	    ckr_classify_outcome(true, CKR_CAUSE_DEADLINE) != CKR_OUTCOME_FAIL ||
	    ckr_classify_outcome(true, CKR_CAUSE_NONE) != CKR_OUTCOME_FAIL) {
		fprintf(stderr, "apiseq: ckr_classify_outcome differs from the seed's rule\n");
		return 1;
	}
	fprintf(stderr, "apiseq: SEED=%" PRIu64 " STEPS=%ld ROUND_STEPS=%ld CKPT_EVERY=%ld%s\n",
		d->seed, d->steps, d->round_steps, d->ckpt_every,
		SANITIZED ? " (sanitizer build)" : "");
	d->t0_ms = ap_now_ms();
	round_start(d);
	for (d->step = 1; d->step <= d->steps; d->step++) {
		if (interrupted) {
			fprintf(stderr, "apiseq: interrupted at step %ld (SEED=%" PRIu64 ")\n",
				d->step, d->seed);
			cleanup_round(d, false);
			return 2;
		}
		one_step(d);
		d->round_step++;
		if (d->step % d->ckpt_every == 0 && d->step != d->steps &&
		    d->round_step < d->round_steps) {
			checkpoint(d, (d->step / d->ckpt_every) % 10 == 0);
			log_step(d);
		}
		if (d->round_step >= d->round_steps && d->step != d->steps) {
			round_end(d);
			round_start(d);
		}
		if (d->verbose && d->step % 10000 == 0)
			fprintf(stderr, "apiseq: %ld steps, %.1f s\n", d->step,
				(double)(ap_now_ms() - d->t0_ms) / 1000);
	}
	d->step = d->steps;
	round_end(d);
	double secs = (double)(ap_now_ms() - d->t0_ms) / 1000;
	printf("apiseq: SEED=%" PRIu64 ": %ld steps in %d round(s), %" PRIu64 " checkpoints (%"
	       PRIu64 " full), %.1f s (%.0f steps/s): no divergence\n",
	       d->seed, d->steps, d->round, d->checkpoints, d->full_checkpoints, secs,
	       secs > 0 ? (double)d->steps / secs : 0.0);
	printf("apiseq: steps by kind:");
	for (int k = 0; k < K_COUNT; k++)
		printf("%s %s %" PRIu64, k ? "," : "", KINDS[k].name, d->kc[k]);
	printf("\n");
	if (d->verbose || env_long("TIMES", 0)) {
		printf("apiseq: ms by kind:");
		for (int k = 0; k < K_COUNT; k++)
			printf("%s %s %lld/%" PRIu64, k ? "," : "", KINDS[k].name,
			       (long long)(d->kus[k] / 1000), d->kc[k]);
		printf("; checkpoints %lld\n", (long long)(d->ckpt_us / 1000));
	}
	printf("apiseq: model: %" PRIu64 " runs, %" PRIu64 " events; %" PRIu64 " begins of ids begun more than once, %"
	       PRIu64 " claims won, %" PRIu64 " with rows set aside past a gap, %" PRIu64
	       " rejections seen by waiters, %" PRIu64 " -EPIPE, %" PRIu64 " SYNCED timeouts, %"
	       PRIu64 " CKR_ECLOSED, %" PRIu64 " -EAGAIN; map grown %" PRIu64 " times\n",
	       d->st_runs, d->st_events, d->st_races, d->st_claims, d->st_gaps, d->st_rejected,
	       d->st_epipe, d->st_synced_to, d->st_eclosed, d->st_eagain, d->map_grown);
	printf("apiseq: flusher starts %" PRIu64 ", crash-point deaths %" PRIu64
	       ", refused second flushers %" PRIu64 ", worker kills %" PRIu64
	       " (%" PRIu64 " with a command lost in flight)\n",
	       d->fl_starts, d->fl_self_crashes, d->refused_ok, d->worker_kills,
	       d->inflight_lost);
	return 0;
}
