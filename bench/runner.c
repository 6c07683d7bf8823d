/*
 * runner.c — the ring runner (see runner.h).
 *
 * One run: a consumer process, `procs` producer processes (or the parent
 * when procs == 1) of `threads` threads each. With enough cores the
 * consumer runs concurrently on its own core. With fewer cores than
 * producers + 1 ("phased"), producers push bursts of at most half the ring
 * and then wait (futex) while the consumer drains: otherwise three spinning
 * actors on two cores would measure the scheduler, not the ring. The read
 * scenarios are always phased: the consumer is timed on a half ring that
 * was filled while it slept.
 *
 * Memory shared between the actors is laid out in layout.h (one 128-byte
 * block per actor's hot fields).
 */
#include "runner.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckring.h"
#include "clock.h"
#include "sys.h"

/* The passes, as producer 0 announces them to a timing consumer. */
enum { PASS_WARM = 1, PASS_TIMED = 2, PASS_TP = 3 };

static void wait_word(_Atomic uint32_t *w, uint32_t at_least)
{
	uint32_t v;
	while ((v = atomic_load_explicit(w, memory_order_acquire)) < at_least)
		bench_futex_wait(w, v);
}

static void bump_word(_Atomic uint32_t *w)
{
	atomic_fetch_add_explicit(w, 1, memory_order_acq_rel);
	bench_futex_wake(w);
}

/* Phased: report this burst done, sleep until the consumer drained. */
static void burst_next(prod_arg *a)
{
	a->active += bench_ticks() - a->burst_start;
	/* acq_rel: our pushes (sealed with release) precede the arrival the
	 * consumer acquires before it drains. */
	bump_word(&a->sh->sync);
	wait_word(&a->sh->gen, a->gen + 1);
	a->gen++;
	a->left = a->burst;
	a->burst_start = bench_ticks();
}

typedef struct pass {
	int id;       /* PASS_* */
	bool timed;   /* time each push */
	uint64_t ticks, max_ops;
	uint64_t ops; /* out */
	uint64_t active;
} pass;

/* Read runs: the consumer labels a whole burst by the pass it was pushed
 * in, so a pass starts on a fresh burst. */
static void announce_pass(prod_arg *a, int id)
{
	if (a->left != a->burst)
		burst_next(a);
	/* release: the consumer acquires the arrival of this pass's first
	 * burst after this store, and reads the pass then. */
	atomic_store_explicit(&a->sh->phase, (uint32_t)id, memory_order_release);
}

/* A refused push: count it, give up after BENCH_TIMEOUT_S of no room. */
static int refused(prod_arg *a, const pass *ps, uint64_t give_up)
{
	prod_slot *s = &a->sh->slot[a->idx];
	uint64_t *cnt = ps->timed ? &s->refused : &s->refused_tp;
	++*cnt;
	bench_relax();
	return (*cnt & 1023) == 0 && bench_ticks() > give_up ? -ETIMEDOUT : 0;
}

static int run_pass(prod_arg *a, void *thr, uint8_t *payload, pass *ps, bench_hist *h)
{
	const ring_ops *o = a->cfg->ops;
	uint32_t len = a->cfg->size;
	if (a->cfg->reads && a->idx == 0)
		announce_pass(a, ps->id);
	uint64_t start = bench_ticks(), deadline = start + ps->ticks, n = 0, active0 = a->active;
	uint64_t give_up = deadline + bench_ticks_for_ns(&a->b->clk, BENCH_TIMEOUT_S * 1e9);
	uint64_t ctr = 0;
	a->burst_start = start;
	while (n < ps->max_ops) {
		if (a->cfg->phased && a->left == 0)
			burst_next(a);
		ctr++;
		memcpy(payload, &ctr, sizeof ctr); /* every record differs */
		int rc;
		if (ps->timed) {
			uint64_t t0 = bench_t0();
			rc = o->push(thr, payload, len);
			uint64_t t1 = bench_t1();
			if (rc == 0)
				bh_record(h, t1 - t0);
		} else {
			rc = o->push(thr, payload, len);
		}
		if (rc == -EAGAIN) { /* full: retry; the latency is the accepted push's */
			if ((rc = refused(a, ps, give_up)))
				return rc;
			continue;
		}
		if (rc)
			return rc;
		n++;
		a->left--;
		if ((n & 63) == 0 && bench_ticks() >= deadline)
			break;
	}
	a->active += bench_ticks() - a->burst_start;
	ps->ops = n;
	ps->active = a->active - active0;
	a->sh->slot[a->idx].pushed += n;
	return 0;
}

static int producer_cpu(const bench *b, const run_cfg *cfg, int idx)
{
	int usable = cfg->phased || b->ncpu < 2 ? b->ncpu : b->ncpu - 1;
	return idx % (usable > 0 ? usable : 1);
}

static int producer_passes(prod_arg *a, void *thr, uint8_t *payload)
{
	const bench *b = a->b;
	prod_slot *s = &a->sh->slot[a->idx];
	bool time_push = !a->cfg->reads;
	pass warm = { .id = PASS_WARM, .timed = time_push,
		      .ticks = b->ops ? UINT64_MAX / 4 : bench_warm_ticks(b),
		      .max_ops = b->ops ? b->ops / 10 + 1 : UINT64_MAX };
	pass timed = { .id = PASS_TIMED, .timed = time_push, .ticks = bench_run_ticks(b, 1.0),
		       .max_ops = b->ops ? b->ops : UINT64_MAX };
	pass tp = { .id = PASS_TP, .timed = false, .ticks = bench_run_ticks(b, 0.5),
		    .max_ops = b->ops ? b->ops : UINT64_MAX };
	int rc = run_pass(a, thr, payload, &warm, &s->hist);
	bh_reset(&s->hist);
	s->refused = s->refused_tp = 0;
	if (rc == 0)
		rc = run_pass(a, thr, payload, &timed, &s->hist);
	if (rc == 0)
		rc = run_pass(a, thr, payload, &tp, NULL);
	s->tp_ops = tp.ops;
	s->tp_ticks = tp.active;
	return rc;
}

static void *producer_main(void *arg)
{
	prod_arg *a = arg;
	const ring_ops *o = a->cfg->ops;
	prod_slot *s = &a->sh->slot[a->idx];
	void *thr = NULL;
	uint8_t *payload = calloc(1, a->cfg->size + 64);
	int rc = a->proc_err ? a->proc_err : payload ? 0 : -ENOMEM;
	for (uint32_t i = 0; payload && i < a->cfg->size; i++)
		payload[i] = (uint8_t)(i * 31 + 7);
	if (rc == 0 && a->b->pin)
		rc = bench_pin(producer_cpu(a->b, a->cfg, a->idx));
	if (rc == 0)
		rc = o->thr_open(a->proc, a->idx, &thr);
	bump_word(&a->sh->ready);
	wait_word(&a->sh->go, 1);
	a->gen = 1;
	a->left = a->burst;
	if (rc == 0)
		rc = producer_passes(a, thr, payload);
	s->err = rc;
	if (thr && o->thr_waits)
		s->waits = o->thr_waits(thr);
	if (thr)
		s->record_bytes = o->thr_record_bytes ? o->thr_record_bytes(thr)
				  : o->header_bytes ? (uint32_t)bench_align8(o->header_bytes +
									    a->cfg->size)
						    : 0;
	if (thr)
		o->thr_close(thr);
	if (a->cfg->phased) { /* leave: active - 1, so the consumer stops waiting for us */
		atomic_fetch_sub_explicit(&a->sh->sync, 1u << 16, memory_order_acq_rel);
		bench_futex_wake(&a->sh->sync);
	}
	free(payload);
	return NULL;
}

/* ---- the consumer ---- */

typedef struct cons_ctx {
	const bench *b;
	const run_cfg *cfg;
	run_shared *sh;
	void *cons;
	uint64_t consumed, corrupt;
} cons_ctx;

/* Read until the ring is dry, then publish the head. */
static void drain_untimed(cons_ctx *c)
{
	long n;
	while ((n = c->cfg->ops->read(c->cons, &c->corrupt)) > 0)
		c->consumed += (uint64_t)n;
	c->cfg->ops->release(c->cons);
}

/* Read runs: each read of the timed pass's bursts is timed; the throughput
 * pass's are counted against the consumer's busy time. */
static void drain_burst(cons_ctx *c)
{
	const ring_ops *o = c->cfg->ops;
	cons_slot *cs = &c->sh->cons;
	uint32_t pass_id = c->cfg->reads
				   /* acquire: pairs with announce_pass(). */
				   ? atomic_load_explicit(&c->sh->phase, memory_order_acquire)
				   : 0;
	if (pass_id == PASS_TIMED) {
		for (;;) {
			uint64_t t0 = bench_t0();
			long n = o->read(c->cons, &c->corrupt);
			uint64_t t1 = bench_t1();
			if (n <= 0)
				break;
			bh_record(&cs->hist, t1 - t0);
			c->consumed += (uint64_t)n;
		}
		o->release(c->cons);
	} else if (pass_id == PASS_TP) {
		uint64_t before = c->consumed, t0 = bench_ticks();
		drain_untimed(c);
		cs->tp_ticks += bench_ticks() - t0;
		cs->tp_records += c->consumed - before;
	} else {
		drain_untimed(c);
	}
}

static void consumer_phased(cons_ctx *c)
{
	run_shared *sh = c->sh;
	for (;;) {
		/* acquire: pairs with the producers' acq_rel arrival/leave. */
		uint32_t w = atomic_load_explicit(&sh->sync, memory_order_acquire);
		uint32_t arrived = w & 0xFFFF, active = w >> 16;
		if (arrived < active) {
			bench_futex_wait(&sh->sync, w);
			continue;
		}
		drain_burst(c);
		if (active == 0)
			return;
		atomic_fetch_sub_explicit(&sh->sync, arrived, memory_order_acq_rel);
		bump_word(&sh->gen);
	}
}

static void consumer_concurrent(cons_ctx *c)
{
	const ring_ops *o = c->cfg->ops;
	for (;;) {
		long n = o->read(c->cons, &c->corrupt);
		if (n < 0)
			return; /* closed and empty */
		if (n > 0) {
			c->consumed += (uint64_t)n;
			continue;
		}
		o->release(c->cons);
		/* acquire: pairs with the parent's release of cons_stop, made
		 * after every push returned. */
		if (atomic_load_explicit(&c->sh->cons_stop, memory_order_acquire)) {
			drain_untimed(c);
			return;
		}
		bench_relax();
	}
}

static void consumer_main(const bench *b, const run_cfg *cfg, bench_ring *ring, run_shared *sh)
{
	cons_ctx c = { .b = b, .cfg = cfg, .sh = sh };
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int rc = b->pin ? bench_pin(b->ncpu - 1) : 0;
	if (rc == 0)
		rc = cfg->ops->cons_open(ring, &c.cons);
	sh->cons.err = rc;
	bump_word(&sh->ready);
	if (rc)
		_exit(1);
	wait_word(&sh->go, 1);
	if (cfg->phased)
		consumer_phased(&c);
	else
		consumer_concurrent(&c);
	if (cfg->ops->cons_close)
		cfg->ops->cons_close(c.cons);
	sh->cons.consumed = c.consumed;
	sh->cons.corrupt = c.corrupt;
	_exit(0);
}

/* ---- the run ---- */

/* A producer process of a multi-process run. */
static void producer_proc_main(prod_arg *args, int threads)
{
	pthread_t th[BENCH_MAX_PROD];
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	void *proc = NULL;
	int rc = args[0].cfg->ops->proc_open(args[0].ring, &proc);
	for (int t = 0; t < threads; t++) {
		args[t].proc = proc;
		args[t].proc_err = rc;
	}
	for (int t = 1; t < threads; t++)
		pthread_create(&th[t], NULL, producer_main, &args[t]);
	producer_main(&args[0]);
	for (int t = 1; t < threads; t++)
		pthread_join(th[t], NULL);
	if (rc == 0)
		args[0].cfg->ops->proc_close(args[0].ring, proc);
	_exit(0);
}

/* Wait until n have checked in, or fail after BENCH_TIMEOUT_S. */
static int wait_ready(run_shared *sh, uint32_t n)
{
	uint64_t end = bench_mono_ns(CLOCK_MONOTONIC) + (uint64_t)BENCH_TIMEOUT_S * 1000000000u;
	uint32_t v;
	while ((v = atomic_load(&sh->ready)) < n) {
		if (bench_mono_ns(CLOCK_MONOTONIC) > end)
			return -ETIMEDOUT;
		bench_futex_wait(&sh->ready, v);
	}
	return 0;
}

typedef struct run_env {
	prod_arg *args; /* nprod, BENCH_BLOCK-aligned */
	pthread_t th[BENCH_MAX_PROD];
	pid_t kids[BENCH_MAX_PROD];
	void *proc;     /* procs == 1: the parent's producing process handle */
	int proc_err;
} run_env;

static int start_producers(bench *b, const run_cfg *cfg, bench_ring *ring, run_shared *sh,
			   run_env *e)
{
	int nprod = cfg->threads * cfg->procs;
	/* Ring bytes per record, at most: a 16-byte header and, for ckring,
	 * the event encoding around the payload (under 96 bytes). */
	uint64_t need = bench_align8(16 + 96 + (uint64_t)cfg->size);
	uint64_t burst = ring->capacity / 2 / (need * (uint64_t)nprod);
	for (int i = 0; i < nprod; i++)
		e->args[i] = (prod_arg){ .b = b, .cfg = cfg, .sh = sh, .ring = ring, .idx = i,
					 .burst = burst ? burst : 1 };
	if (cfg->procs == 1) {
		e->proc_err = cfg->ops->proc_open(ring, &e->proc);
		for (int t = 0; t < cfg->threads; t++) {
			e->args[t].proc = e->proc;
			e->args[t].proc_err = e->proc_err;
			if (pthread_create(&e->th[t], NULL, producer_main, &e->args[t]))
				return bench_fail(b, "%s: pthread_create failed", cfg->name);
		}
		return 0;
	}
	for (int p = 0; p < cfg->procs; p++) {
		fflush(NULL);
		e->kids[p] = fork();
		if (e->kids[p] < 0)
			return bench_fail(b, "%s: fork: %s", cfg->name, strerror(errno));
		if (e->kids[p] == 0)
			producer_proc_main(&e->args[p * cfg->threads], cfg->threads);
	}
	return 0;
}

static void collect(bench *b, const run_cfg *cfg, run_shared *sh, result *r)
{
	int nprod = cfg->threads * cfg->procs;
	bench_hist *all = calloc(1, sizeof *all);
	double rate = 0;
	for (int i = 0; i < nprod; i++) {
		prod_slot *s = &sh->slot[i];
		if (all)
			bh_merge(all, &s->hist);
		r->refused += s->refused;
		r->refused_tp += s->refused_tp;
		r->waits += s->waits;
		if (!r->record_bytes || (s->record_bytes && s->record_bytes < r->record_bytes))
			r->record_bytes = s->record_bytes;
		if (s->tp_ticks)
			rate += (double)s->tp_ops / (bench_ns(&b->clk, (double)s->tp_ticks) * 1e-9);
	}
	if (cfg->reads) {
		bench_fill_latency(b, r, &sh->cons.hist, true);
		double secs = bench_ns(&b->clk, (double)sh->cons.tp_ticks) * 1e-9;
		r->ops_per_s = secs > 0 ? (double)sh->cons.tp_records / secs : 0;
		r->latency_of = "record";
	} else {
		if (all)
			bench_fill_latency(b, r, all, true);
		r->ops_per_s = rate;
	}
	free(all);
	r->mode = cfg->phased ? "phased" : "concurrent";
}

static int check_run(bench *b, const run_cfg *cfg, run_shared *sh, int cons_status)
{
	int nprod = cfg->threads * cfg->procs;
	uint64_t pushed = 0;
	for (int i = 0; i < nprod; i++) {
		if (sh->slot[i].err)
			return bench_fail(b, "%s (%u B): producer: %s", cfg->name, cfg->size,
					  ckr_strerror(sh->slot[i].err));
		pushed += sh->slot[i].pushed + cfg->ops->extra_per_thread;
	}
	if (sh->cons.err)
		return bench_fail(b, "%s (%u B): consumer: %s", cfg->name, cfg->size,
				  ckr_strerror(sh->cons.err));
	if (cons_status)
		return bench_fail(b, "%s (%u B): consumer process failed", cfg->name, cfg->size);
	if (sh->cons.corrupt)
		return bench_fail(b, "%s (%u B): consumer found %lu corrupt records", cfg->name,
				  cfg->size, (unsigned long)sh->cons.corrupt);
	if (sh->cons.consumed != pushed)
		return bench_fail(b, "%s (%u B): %lu records pushed but %lu consumed", cfg->name,
				  cfg->size, (unsigned long)pushed,
				  (unsigned long)sh->cons.consumed);
	return 0;
}

/* Wait for the producers, stop the consumer, check and collect. */
static int finish_run(bench *b, const run_cfg *cfg, bench_ring *ring, run_shared *sh,
		      run_env *e, pid_t cons, result *r)
{
	int status = 0;
	for (int t = 0; cfg->procs == 1 && t < cfg->threads; t++)
		pthread_join(e->th[t], NULL);
	for (int p = 0; cfg->procs > 1 && p < cfg->procs; p++)
		waitpid(e->kids[p], NULL, 0);
	if (cfg->procs == 1 && e->proc_err == 0)
		cfg->ops->proc_close(ring, e->proc);
	/* release: pairs with the consumer's acquire; every push returned. */
	atomic_store_explicit(&sh->cons_stop, 1, memory_order_release);
	if (cfg->ops->end_of_input)
		cfg->ops->end_of_input(ring);
	waitpid(cons, &status, 0);
	int rc = check_run(b, cfg, sh, !WIFEXITED(status) || WEXITSTATUS(status));
	if (rc == 0)
		collect(b, cfg, sh, r);
	return rc;
}

int bench_run_ring(bench *b, const run_cfg *cfg)
{
	int nprod = cfg->threads * cfg->procs, rc;
	run_env e = { .proc_err = -1 };
	pid_t cons;
	result *r = bench_new_result(b, cfg->name, cfg->size, cfg->threads, cfg->procs);
	run_shared *sh = bench_shared_alloc(sizeof *sh);
	e.args = bench_block_alloc(sizeof *e.args * BENCH_MAX_PROD);
	if (!r || !sh || !e.args || nprod > BENCH_MAX_PROD) {
		rc = bench_fail(b, "%s: out of memory", cfg->name);
		goto out_mem;
	}
	atomic_store(&sh->gen, 1);
	atomic_store(&sh->sync, (uint32_t)nprod << 16);
	bench_ring ring = { .ops = cfg->ops, .size = cfg->size, .capacity = BENCH_RING_CAP };
	snprintf(ring.name, sizeof ring.name, "ckring-bench-%d-%u", (int)getpid(), b->seq++);
	if ((rc = cfg->ops->create(&ring))) {
		rc = bench_fail(b, "%s: cannot create the ring: %s", cfg->name, ckr_strerror(rc));
		goto out_mem;
	}
	fflush(NULL);
	if ((cons = fork()) < 0) {
		rc = bench_fail(b, "%s: fork: %s", cfg->name, strerror(errno));
		goto out_ring;
	}
	if (cons == 0)
		consumer_main(b, cfg, &ring, sh);
	rc = start_producers(b, cfg, &ring, sh, &e);
	if (rc == 0 && wait_ready(sh, (uint32_t)nprod + 1))
		rc = bench_fail(b, "%s: producers did not start", cfg->name);
	if (rc == 0 && cfg->ops->attached)
		cfg->ops->attached(&ring);
	atomic_store(&sh->go, rc == 0);
	bench_futex_wake(&sh->go);
	if (rc) {
		kill(cons, SIGKILL);
		waitpid(cons, NULL, 0);
		goto out_ring; /* children die with us (PDEATHSIG) */
	}
	rc = finish_run(b, cfg, &ring, sh, &e, cons, r);
out_ring:
	cfg->ops->destroy(&ring);
out_mem:
	free(e.args);
	if (sh)
		munmap(sh, sizeof *sh);
	return rc;
}

int bench_ring_scenarios(bench *b, uint32_t size)
{
	static const struct {
		const char *name;
		const ring_ops *ops;
		int threads, procs;
		bool reads;
	} plan[] = {
		{ "floor.push", &bench_floor_ops, 1, 1, false },
		{ "floor.push", &bench_floor_ops, 2, 1, false },
		{ "ckring.push", &bench_ckring_ops, 1, 1, false },
		{ "ckring.push", &bench_ckring_ops, 2, 1, false },
		{ "ckring.push.procs", &bench_ckring_ops, 1, 2, false },
		{ "mutex_ring.push", &bench_mutex_ops, 1, 1, false },
		{ "pipe.write", &bench_pipe_ops, 1, 1, false },
		{ "floor.read", &bench_floor_ops, 1, 1, true },
		{ "ckring.read", &bench_ckring_ops, 1, 1, true },
	};
	for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
		if (!bench_wanted(b, plan[i].name) || (b->threads && plan[i].threads != b->threads))
			continue;
		int nprod = plan[i].threads * plan[i].procs;
		/* The pipe's reader sleeps in read(): it never needs phasing
		 * (and could not take part in it). A read run always is. */
		bool phased = plan[i].reads ||
			      (plan[i].ops != &bench_pipe_ops &&
			       (b->mode == BENCH_MODE_PHASED ||
				(b->mode == BENCH_MODE_AUTO && b->ncpu < nprod + 1)));
		run_cfg cfg = { .ops = plan[i].ops, .name = plan[i].name, .size = size,
				.threads = plan[i].threads, .procs = plan[i].procs,
				.phased = phased, .reads = plan[i].reads };
		if (bench_run_ring(b, &cfg))
			return -1;
	}
	return 0;
}
