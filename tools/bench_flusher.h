/*
 * bench_flusher.h — the benchmarks that need the flusher engine and the
 * client API (include/ckring.h): compiled into ckring-bench with
 * -DCKR_BENCH_FLUSHER, included by tools/ckring-bench.c only (it uses that
 * file's bench/result helpers).
 *
 *   ckring.drain    pre-fill one lane with N messages of one run through the
 *                   client API, then time ckr_flusher_drain_once() until all
 *                   of them are in LMDB, sync=always: events/s, and the
 *                   latency of each drain pass (one batch = one fsync'd txn).
 *   ckring.durable  open loop at a fixed offered rate: a sender thread pushes
 *                   message i at its *intended* time start + i/rate (late
 *                   sends go at once, never skipped), a waiter thread
 *                   ckr_wait()s each ticket for CKR_LEVEL_SYNCED in order and
 *                   records (completion - intended send time). A slow
 *                   flusher therefore shows as latency, not as fewer samples
 *                   (no coordinated omission). The flusher runs in its own
 *                   process (ckr_flusher_run), as in production.
 */
#ifndef CKR_BENCH_FLUSHER_H
#define CKR_BENCH_FLUSHER_H

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckring_store.h"
#include "tools/bench_util.h"

#define FL_LANE_CAP (UINT64_C(64) << 20) /* room for the drain's pre-fill */

static void fl_seg_opts(ckr_segment_opts *o)
{
	memset(o, 0, sizeof *o);
	o->lanes = 2;
	o->size = 8192 + 2 * FL_LANE_CAP;
	o->group = (gid_t)-1;
}

static void fl_payload(uint8_t *p, uint32_t size, uint64_t i)
{
	for (uint32_t k = 0; k < size; k++)
		p[k] = (uint8_t)(i * 31 + k);
}

/* ------------------------------------------------------------------ */
/* ckring.drain                                                        */
/* ------------------------------------------------------------------ */

typedef struct drain_env {
	char dir[PATH_MAX];
	char seg[64];
	ckr_flusher *f;
	ckr_client *c;
	ckr_run *run;
} drain_env;

static void drain_close(drain_env *e)
{
	ckr_run_close(e->run);
	ckr_client_detach(e->c);
	ckr_flusher_close(e->f);
	ckr_segment_unlink(e->seg);
	rm_tmpdir(e->dir);
}

static int drain_open(bench *b, drain_env *e)
{
	memset(e, 0, sizeof *e);
	if (mk_tmpdir(b, e->dir, sizeof e->dir))
		return -1;
	snprintf(e->seg, sizeof e->seg, "ckring-bench-drain-%d-%u", (int)getpid(), b->seq++);
	ckr_flusher_opts fo = { .segment = e->seg, .db_dir = e->dir, .create = true,
				.sync = CKR_SYNC_ALWAYS };
	fl_seg_opts(&fo.seg);
	int rc = ckr_flusher_open(&fo, &e->f);
	if (rc) {
		rm_tmpdir(e->dir);
		return fail(b, "ckring.drain: ckr_flusher_open: %s", ckr_strerror(rc));
	}
	rc = ckr_client_attach(e->seg, NULL, &e->c);
	char id[64];
	snprintf(id, sizeof id, "bench-drain-%u", b->seq);
	ckr_run_spec spec = { .id = id, .id_len = strlen(id), .kind = CKR_KIND_SINGLE_LOOP,
			      .label = "ckring-bench" };
	if (rc == 0)
		rc = ckr_run_begin(e->c, &spec, &e->run, NULL);
	if (rc) {
		drain_close(e);
		return fail(b, "ckring.drain: client: %s", ckr_strerror(rc));
	}
	return 0;
}

/* Push up to n messages; stops early (and says how far) if the lane fills. */
static int drain_fill(bench *b, drain_env *e, uint32_t size, uint64_t n, uint64_t *pushed,
		      uint64_t *refused)
{
	uint8_t *p = malloc(size ? size : 1);
	int rc = 0;
	*pushed = *refused = 0;
	if (!p)
		return fail(b, "ckring.drain: out of memory");
	for (uint64_t i = 0; i < n; i++) {
		fl_payload(p, size, i);
		rc = ckr_run_message(e->run, p, size, NULL);
		if (rc == -EAGAIN) {
			(*refused)++;
			rc = 0;
			break;
		}
		if (rc)
			break;
		(*pushed)++;
	}
	free(p);
	return rc ? fail(b, "ckring.drain: ckr_run_message: %s", ckr_strerror(rc)) : 0;
}

static int bench_drain(bench *b, uint32_t size)
{
	drain_env e;
	result *r = new_result(b, "ckring.drain", size, 1, 1);
	bench_hist *h = calloc(1, sizeof *h);
	uint64_t pushed, refused, drained = 0;
	/* Fill at most ~3/4 of the lane; --quick and --ops keep it small. */
	uint64_t n = FL_LANE_CAP * 3 / 4 / (br_align8(size + 96) + CKR_REC_HEADER);
	uint64_t lim = b->ops ? b->ops : b->quick ? 20000 : 200000;
	n = n < lim ? n : lim;
	if (!r || !h)
		return fail(b, "ckring.drain: out of memory");
	if (drain_open(b, &e)) {
		free(h);
		return -1;
	}
	int rc = drain_fill(b, &e, size, n, &pushed, &refused);
	uint64_t total = pushed + 1; /* and the begin event */
	uint64_t start = bench_ticks(), last = start;
	uint64_t stall = bench_ticks_for_ns(&b->clk, TIMEOUT_S * 1e9);
	while (rc == 0 && drained < total) {
		size_t got = 0;
		uint64_t t0 = bench_t0();
		rc = ckr_flusher_drain_once(e.f, &got);
		uint64_t t1 = bench_t1();
		if (rc) {
			rc = fail(b, "ckring.drain: ckr_flusher_drain_once: %s", ckr_strerror(rc));
			break;
		}
		if (got) {
			bh_record_span(h, t0, t1);
			drained += got;
			last = t1;
		} else if (t1 - last > stall) {
			rc = fail(b, "ckring.drain: no progress after %lu of %lu events",
				  (unsigned long)drained, (unsigned long)total);
		}
	}
	double wall = bench_ns(&b->clk, (double)(last - start)) * 1e-9;
	drain_close(&e);
	if (rc == 0) {
		fill_latency(b, r, h, true);
		r->ops_per_s = wall > 0 ? (double)drained / wall : 0;
		r->latency_of = "batch";
		r->mode = "serial";
		r->refused = refused;
		r->batch = h->count ? (uint32_t)(drained / h->count) : 0;
		snprintf(r->note, sizeof r->note, "%lu events pre-filled, %lu drain passes",
			 (unsigned long)drained, (unsigned long)h->count);
	}
	free(h);
	return rc;
}

/* ------------------------------------------------------------------ */
/* ckring.durable                                                      */
/* ------------------------------------------------------------------ */

typedef struct durable_item {
	ckr_ticket t;
	uint64_t intended;
} durable_item;

typedef struct durable_ctx {
	bench *b;
	ckr_client *c;
	durable_item *q;
	uint64_t n, warm;
	_Atomic uint32_t sent;     /* items published by the sender */
	_Atomic uint32_t sleeping; /* the waiter sleeps on `sent` */
	_Atomic uint32_t aborted;  /* the sender failed: stop after `sent` */
	bench_hist *h;
	uint64_t last_done;
	int err;
} durable_ctx;

static void *durable_waiter(void *arg)
{
	durable_ctx *d = arg;
	for (uint64_t i = 0; i < d->n; i++) {
		uint32_t s;
		while ((s = atomic_load(&d->sent)) <= i) {
			if (atomic_load(&d->aborted))
				return NULL;
			atomic_store(&d->sleeping, 1);
			/* seq_cst with the sender's store of sent / load of
			 * sleeping: one of us sees the other (plus a timeout). */
			if (atomic_load(&d->sent) == s)
				bench_futex_wait(&d->sent, s);
			atomic_store(&d->sleeping, 0);
		}
		int rc = ckr_wait(d->c, &d->q[i].t, CKR_LEVEL_SYNCED, TIMEOUT_S * 1000);
		uint64_t now = bench_ticks();
		if (rc) {
			d->err = rc;
			return NULL;
		}
		if (i >= d->warm && now > d->q[i].intended)
			bh_record(d->h, now - d->q[i].intended);
		d->last_done = now;
	}
	return NULL;
}

/* Sleep until about `until` (TSC), then spin the last stretch. */
static void sleep_until(const bench *b, uint64_t until)
{
	uint64_t now = bench_ticks(), spin = bench_ticks_for_ns(&b->clk, 60000);
	if (until > now + spin) {
		double ns = bench_ns(&b->clk, (double)(until - now - spin));
		struct timespec ts = { .tv_sec = (time_t)(ns / 1e9),
				       .tv_nsec = (long)fmod(ns, 1e9) };
		nanosleep(&ts, NULL);
	}
	while (bench_ticks() < until)
		bench_relax();
}

static int durable_send(durable_ctx *d, ckr_run *run, uint32_t size, double rate,
			uint64_t *refused, uint64_t *start_out)
{
	bench *b = d->b;
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		return -ENOMEM;
	double interval = b->clk.ticks_per_ns * 1e9 / rate;
	uint64_t start = bench_ticks() + bench_ticks_for_ns(&b->clk, 1e6);
	*start_out = start;
	for (uint64_t i = 0; i < d->n; i++) {
		uint64_t intended = start + (uint64_t)((double)i * interval);
		sleep_until(b, intended);
		fl_payload(p, size, i);
		int rc;
		while ((rc = ckr_run_message(run, p, size, &d->q[i].t)) == -EAGAIN) {
			(*refused)++;
			bench_relax();
		}
		if (rc) {
			free(p);
			return rc;
		}
		d->q[i].intended = intended;
		atomic_store(&d->sent, (uint32_t)(i + 1));
		if (atomic_load(&d->sleeping))
			bench_futex_wake(&d->sent);
	}
	free(p);
	return 0;
}

static volatile int durable_stop;

static void durable_on_term(int sig)
{
	durable_stop = 1;
}

/* How the flusher process's start went: state 0 starting, 1 serving,
 * 2 failed with err. In shared memory. */
typedef struct fl_status {
	_Atomic uint32_t state;
	int err;
} fl_status;

/* The flusher process: serve the segment until SIGTERM. */
static void durable_flusher_main(const char *seg, const char *dir, fl_status *status)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	struct sigaction sa = { .sa_handler = durable_on_term };
	sigaction(SIGTERM, &sa, NULL);
	ckr_flusher *f;
	ckr_flusher_opts fo = { .segment = seg, .db_dir = dir, .create = true,
				.sync = CKR_SYNC_ALWAYS };
	fl_seg_opts(&fo.seg);
	int rc = ckr_flusher_open(&fo, &f);
	status->err = rc;
	/* release: err is visible to whoever sees the state. */
	atomic_store_explicit(&status->state, rc ? 2 : 1, memory_order_release);
	bench_futex_wake(&status->state);
	if (rc)
		_exit(1);
	rc = ckr_flusher_run(f, &durable_stop);
	ckr_flusher_close(f);
	_exit(rc ? 1 : 0);
}

typedef struct durable_env {
	char dir[PATH_MAX];
	char seg[64];
	pid_t pid;
	fl_status *status;
	ckr_client *c;
	ckr_run *run;
} durable_env;

static void durable_close(durable_env *e)
{
	ckr_run_close(e->run);
	ckr_client_detach(e->c);
	if (e->pid > 0) {
		kill(e->pid, SIGTERM);
		waitpid(e->pid, NULL, 0);
	}
	ckr_segment_unlink(e->seg);
	if (e->status)
		munmap(e->status, sizeof *e->status);
	rm_tmpdir(e->dir);
}

static int durable_open(bench *b, durable_env *e)
{
	memset(e, 0, sizeof *e);
	if (mk_tmpdir(b, e->dir, sizeof e->dir))
		return -1;
	snprintf(e->seg, sizeof e->seg, "ckring-bench-durable-%d-%u", (int)getpid(), b->seq++);
	e->status = bench_shared_alloc(sizeof *e->status);
	fflush(NULL);
	e->pid = e->status ? fork() : -1;
	if (e->pid == 0)
		durable_flusher_main(e->seg, e->dir, e->status);
	int rc = e->pid < 0 ? -ENOMEM : 0;
	uint64_t end = bench_mono_ns(CLOCK_MONOTONIC) + (uint64_t)TIMEOUT_S * 1000000000u;
	while (rc == 0 && atomic_load_explicit(&e->status->state, memory_order_acquire) == 0) {
		if (bench_mono_ns(CLOCK_MONOTONIC) > end)
			rc = -ETIMEDOUT;
		bench_futex_wait(&e->status->state, 0);
	}
	if (rc == 0 && atomic_load(&e->status->state) != 1)
		rc = e->status->err ? e->status->err : -EIO;
	if (rc) {
		durable_close(e);
		return fail(b, "ckring.durable: flusher: %s", ckr_strerror(rc));
	}
	char id[64];
	snprintf(id, sizeof id, "bench-durable-%u", b->seq);
	ckr_run_spec spec = { .id = id, .id_len = strlen(id), .kind = CKR_KIND_SINGLE_LOOP,
			      .label = "ckring-bench" };
	rc = ckr_client_attach(e->seg, NULL, &e->c);
	if (rc == 0)
		rc = ckr_run_begin(e->c, &spec, &e->run, NULL);
	if (rc) {
		durable_close(e);
		return fail(b, "ckring.durable: client: %s", ckr_strerror(rc));
	}
	return 0;
}

static int bench_durable(bench *b, uint32_t size, double rate)
{
	durable_env e;
	pthread_t th;
	uint64_t refused = 0, start = 0;
	result *r = new_result(b, "ckring.durable", size, 1, 1);
	/* At least 2 s (or --seconds) of events, and 2000 of them; the first
	 * 10 % are the warm-up. */
	double secs = b->quick ? 0.5 : b->seconds > 2 ? b->seconds : 2;
	uint64_t n = (uint64_t)(rate * secs);
	n = b->quick ? n : n < 2000 ? 2000 : n;
	n = b->ops ? b->ops : n;
	durable_ctx d = { .b = b, .n = n, .warm = n / 10 };
	d.q = calloc(n, sizeof *d.q);
	d.h = calloc(1, sizeof *d.h);
	if (!r || !d.q || !d.h) {
		free(d.q);
		free(d.h);
		return fail(b, "ckring.durable: out of memory");
	}
	if (durable_open(b, &e)) {
		free(d.q);
		free(d.h);
		return -1;
	}
	d.c = e.c;
	int rc = pthread_create(&th, NULL, durable_waiter, &d) ? -EAGAIN : 0;
	if (rc == 0) {
		rc = durable_send(&d, e.run, size, rate, &refused, &start);
		if (rc) { /* the waiter finishes what was sent, then stops */
			atomic_store(&d.aborted, 1);
			bench_futex_wake(&d.sent);
		}
		pthread_join(th, NULL);
	}
	rc = rc ? rc : d.err;
	durable_close(&e);
	if (rc == 0) {
		fill_latency(b, r, d.h, false);
		double wall = bench_ns(&b->clk, (double)(d.last_done - start)) * 1e-9;
		r->ops_per_s = wall > 0 ? (double)n / wall : 0;
		r->rate = rate;
		r->refused = refused;
		r->latency_of = "event";
		r->mode = "open-loop";
		snprintf(r->note, sizeof r->note, "push -> synced, from the intended send time");
	}
	free(d.q);
	free(d.h);
	return rc ? fail(b, "ckring.durable (%.0f/s): %s", rate, ckr_strerror(rc)) : 0;
}

#endif /* CKR_BENCH_FLUSHER_H */
