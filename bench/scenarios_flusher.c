/*
 * scenarios_flusher.c — ckring.drain, ckring.durable, ckring.idle (see
 * scenarios_flusher.h).
 */
#include "scenarios_flusher.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckring.h"
#include "ckring_store.h"
#include "clock.h"
#include "flusher_proc.h"
#include "sys.h"

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
	bench_rmdir(e->dir);
}

static int drain_open(bench *b, drain_env *e)
{
	memset(e, 0, sizeof *e);
	if (bench_tmpdir(b, e->dir, sizeof e->dir))
		return -1;
	snprintf(e->seg, sizeof e->seg, "ckring-bench-drain-%d-%u", (int)getpid(), b->seq++);
	ckr_flusher_opts fo = { .segment = e->seg, .db_dir = e->dir, .create = true,
				.sync = CKR_SYNC_ALWAYS };
	fl_seg_opts(&fo.seg);
	int rc = ckr_flusher_open(&fo, &e->f);
	if (rc) {
		bench_rmdir(e->dir);
		return bench_fail(b, "ckring.drain: ckr_flusher_open: %s", ckr_strerror(rc));
	}
	if (fl_client(b, "drain", e->seg, &e->c, &e->run)) {
		drain_close(e);
		return -1;
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
		return bench_fail(b, "ckring.drain: out of memory");
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
	return rc ? bench_fail(b, "ckring.drain: ckr_run_message: %s", ckr_strerror(rc)) : 0;
}

/* Drain until `total` events are in; the latency of each pass that moved
 * something. @return 0 or -1. */
static int drain_passes(bench *b, drain_env *e, uint64_t total, bench_hist *h,
			uint64_t *drained, double *wall)
{
	uint64_t start = bench_ticks(), last = start;
	uint64_t stall = bench_ticks_for_ns(&b->clk, BENCH_TIMEOUT_S * 1e9);
	int rc = 0;
	while (rc == 0 && *drained < total) {
		size_t got = 0;
		uint64_t t0 = bench_t0();
		rc = ckr_flusher_drain_once(e->f, &got);
		uint64_t t1 = bench_t1();
		if (rc)
			return bench_fail(b, "ckring.drain: ckr_flusher_drain_once: %s",
					  ckr_strerror(rc));
		if (got) {
			bh_record(h, t1 - t0);
			*drained += got;
			last = t1;
		} else if (t1 - last > stall) {
			return bench_fail(b, "ckring.drain: no progress after %lu of %lu events",
					  (unsigned long)*drained, (unsigned long)total);
		}
	}
	*wall = bench_ns(&b->clk, (double)(last - start)) * 1e-9;
	return 0;
}

int bench_drain(bench *b, uint32_t size)
{
	drain_env e;
	result *r = bench_new_result(b, "ckring.drain", size, 1, 1);
	bench_hist *h = calloc(1, sizeof *h);
	uint64_t pushed, refused, drained = 0;
	double wall = 0;
	/* Fill at most ~3/4 of the lane; --quick and --ops keep it small. */
	uint64_t n = FL_LANE_CAP * 3 / 4 / ((size + FL_EVENT_OVERHEAD + 7) & ~7u);
	uint64_t lim = b->ops ? b->ops : b->quick ? 20000 : 200000;
	n = n < lim ? n : lim;
	if (!r || !h) {
		free(h);
		return bench_fail(b, "ckring.drain: out of memory");
	}
	if (drain_open(b, &e)) {
		free(h);
		return -1;
	}
	int rc = drain_fill(b, &e, size, n, &pushed, &refused);
	if (rc == 0) /* the messages and the begin event */
		rc = drain_passes(b, &e, pushed + 1, h, &drained, &wall);
	drain_close(&e);
	if (rc == 0) {
		bench_fill_latency(b, r, h, true);
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
	/* sender -> waiter hand-off, one block (touched per event by both) */
	_Alignas(BENCH_BLOCK) _Atomic uint32_t sent; /* items published by the sender */
	_Atomic uint32_t sleeping;           /* the waiter sleeps on `sent` */
	_Atomic uint32_t aborted;            /* the sender failed: stop after `sent` */
	_Alignas(BENCH_BLOCK) bench_hist *h;         /* the waiter's */
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
		int rc = ckr_wait(d->c, &d->q[i].t, CKR_LEVEL_SYNCED, BENCH_TIMEOUT_S * 1000);
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

/* Sender in this thread, waiter in another. @return 0 or an error code. */
static int durable_loop(durable_ctx *d, ckr_run *run, uint32_t size, double rate,
			uint64_t *refused, uint64_t *start)
{
	pthread_t th;
	if (pthread_create(&th, NULL, durable_waiter, d))
		return -EAGAIN;
	int rc = durable_send(d, run, size, rate, refused, start);
	if (rc) { /* the waiter finishes what was sent, then stops */
		atomic_store(&d->aborted, 1);
		bench_futex_wake(&d->sent);
	}
	pthread_join(th, NULL);
	return rc ? rc : d->err;
}

int bench_durable(bench *b, uint32_t size, double rate)
{
	fl_proc fp;
	ckr_client *c = NULL;
	ckr_run *run = NULL;
	uint64_t refused = 0, start = 0;
	result *r = bench_new_result(b, "ckring.durable", size, 1, 1);
	/* At least 2 s (or --seconds) of events, and 2000 of them; the first
	 * 10 % are the warm-up. */
	double secs = b->quick ? 0.5 : b->seconds > 2 ? b->seconds : 2;
	uint64_t n = (uint64_t)(rate * secs);
	n = b->quick ? n : n < 2000 ? 2000 : n;
	n = b->ops ? b->ops : n;
	durable_ctx *d = bench_block_alloc((sizeof *d + BENCH_BLOCK - 1) & ~(size_t)(BENCH_BLOCK - 1));
	if (!r || !d) {
		free(d);
		return bench_fail(b, "ckring.durable: out of memory");
	}
	*d = (durable_ctx){ .b = b, .n = n, .warm = n / 10 };
	d->q = calloc(n, sizeof *d->q);
	d->h = calloc(1, sizeof *d->h);
	int rc = d->q && d->h ? 0 : -ENOMEM;
	if (rc == 0 && fl_proc_start(b, "durable", &fp) == 0) {
		if (fl_client(b, "durable", fp.seg, &c, &run) == 0) {
			d->c = c;
			rc = durable_loop(d, run, size, rate, &refused, &start);
		} else {
			rc = 1; /* the error line is set */
		}
		ckr_run_close(run);
		ckr_client_detach(c);
		fl_proc_stop(&fp);
	} else if (rc == 0) {
		rc = 1;
	}
	if (rc == 0) {
		bench_fill_latency(b, r, d->h, false);
		double wall = bench_ns(&b->clk, (double)(d->last_done - start)) * 1e-9;
		r->ops_per_s = wall > 0 ? (double)n / wall : 0;
		r->rate = rate;
		r->refused = refused;
		r->latency_of = "event";
		r->mode = "open-loop";
		snprintf(r->note, sizeof r->note, "push -> synced, from the intended send time");
	} else if (rc < 0) {
		bench_fail(b, "ckring.durable (%.0f/s): %s", rate, ckr_strerror(rc));
	}
	free(d->q);
	free(d->h);
	free(d);
	return rc ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* ckring.idle                                                         */
/* ------------------------------------------------------------------ */

int bench_idle(bench *b, bool attached)
{
	fl_proc fp;
	ckr_client *c = NULL;
	double secs = b->quick ? 1.0 : 5.0, cpu0 = 0, cpu1 = 0;
	uint64_t sw0 = 0, sw1 = 0;
	const char *name = attached ? "ckring.idle.attached" : "ckring.idle";
	result *r = bench_new_result(b, name, 0, 1, 1);
	if (!r)
		return bench_fail(b, "too many results");
	if (fl_proc_start(b, "idle", &fp))
		return -1;
	/* attached: a producer that attached and pushes nothing (an executor
	 * between runs); else no producer at all (a host before its first). */
	if (attached && fl_client(b, "idle", fp.seg, &c, NULL)) {
		fl_proc_stop(&fp);
		return -1;
	}
	/* Let it settle into its longest sleep, then watch it. */
	struct timespec settle = { 0, 200000000 };
	nanosleep(&settle, NULL);
	uint64_t t0 = bench_mono_ns(CLOCK_MONOTONIC);
	int rc = bench_proc_cpu(fp.pid, &cpu0, &sw0);
	struct timespec d = { (time_t)secs, (long)(fmod(secs, 1.0) * 1e9) };
	nanosleep(&d, NULL);
	if (rc == 0)
		rc = bench_proc_cpu(fp.pid, &cpu1, &sw1);
	double wall = (double)(bench_mono_ns(CLOCK_MONOTONIC) - t0) * 1e-9;
	ckr_client_detach(c);
	fl_proc_stop(&fp);
	if (rc)
		return bench_fail(b, "ckring.idle: /proc: %s", strerror(-rc));
	r->cpu_pct = 100.0 * (cpu1 - cpu0) / wall;
	r->wakeups_per_s = (double)(sw1 - sw0) / wall;
	r->ops_per_s = r->wakeups_per_s;
	r->no_latency = true;
	r->latency_of = "none";
	r->mode = "idle";
	snprintf(r->note, sizeof r->note, "idle flusher over %.1f s, default 1 ms bound, %s; "
		 "ops/s = wake-ups/s", wall,
		 attached ? "a producer attached" : "no producer attached");
	return 0;
}
