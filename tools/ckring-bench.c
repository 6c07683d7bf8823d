/*
 * ckring-bench — the latency harness: ckring's push against the physical
 * floor and the things a user would do instead (a mutex ring, a pipe, one
 * LMDB transaction per event), and the flusher's drain and push→synced
 * latency. Method and results: BENCHMARKS.md.
 *
 *   ckring-bench [--json] [--quick] [--only NAME[,NAME]] [--sizes 128,1024,4096]
 *                [--pin] [--seconds S] [--ops N] [--threads T] [--mode M]
 *                [--dir DIR] [--rates R[,R]]
 *
 * Exit 0 on success, 2 on a usage error, 1 when a benchmark could not run
 * (one line on stderr).
 *
 * The instruments (TSC clock, histogram) are in tools/bench_util.h, the rings
 * compared in tools/bench_rings.h. ckring.drain and ckring.durable need the
 * flusher engine and the client API; they are compiled in with
 * -DCKR_BENCH_FLUSHER and reported as pending otherwise.
 */
#include <errno.h>
#include <getopt.h>
#include <lmdb.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "ckring.h"
#include "tools/bench_rings.h"
#include "tools/bench_util.h"

#define MAX_PROD 8
#define MAX_SIZES 8
#define MAX_RATES 8
#define MAX_RESULTS 128
#define LMDB_MAP (UINT64_C(2) << 30)
#define TIMEOUT_S 60 /* a run that makes no progress for this long failed */

enum { MODE_AUTO, MODE_CONCURRENT, MODE_PHASED };


static const char *const all_names[] = {
	"floor.push", "ckring.push", "ckring.push.procs", "mutex_ring.push",
	"pipe.write", "lmdb.direct.sync", "lmdb.direct.nosync", "lmdb.batch.sync",
	"ckring.drain", "ckring.durable",
};
#define N_NAMES (sizeof all_names / sizeof all_names[0])

typedef struct result {
	char name[32];
	uint32_t size;
	int threads, procs;
	double ops_per_s, p50, p99, p999, max, mean; /* ns */
	uint64_t samples, refused, refused_tp, waits;
	const char *mode;       /* concurrent | phased | open-loop | serial */
	const char *latency_of; /* op | batch | event */
	uint32_t batch;
	double rate; /* offered events/s (open loop) */
	bool pending;
	char note[200];
} result;

typedef struct bench {
	bench_clock clk;
	bool json, quick, pin;
	double seconds;
	uint64_t ops; /* 0: run by time */
	int threads;  /* 0: all; else only ring runs of this many threads */
	int mode;     /* ring runs: MODE_AUTO, MODE_CONCURRENT, MODE_PHASED */
	uint32_t sizes[MAX_SIZES];
	int n_sizes;
	double rates[MAX_RATES];
	int n_rates;
	bool only[N_NAMES];
	const char *dir;
	char fs[32];
	int ncpu;
	unsigned seq;
	result res[MAX_RESULTS];
	int n_res;
	char err[256]; /* the one line for stderr when a benchmark fails */
} bench;

static int fail(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(bench *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->err, sizeof b->err, fmt, ap);
	va_end(ap);
	return -1;
}

static bool wanted(const bench *b, const char *name)
{
	for (size_t i = 0; i < N_NAMES; i++)
		if (!strcmp(all_names[i], name))
			return b->only[i];
	return false;
}

static result *new_result(bench *b, const char *name, uint32_t size, int threads, int procs)
{
	if (b->n_res == MAX_RESULTS)
		return NULL;
	result *r = &b->res[b->n_res++];
	memset(r, 0, sizeof *r);
	snprintf(r->name, sizeof r->name, "%s", name);
	r->size = size;
	r->threads = threads;
	r->procs = procs;
	r->latency_of = "op";
	return r;
}

/* ticks -> ns, less the timer's own cost when net; never below 0. */
static double net_ns(const bench *b, double ticks, bool net)
{
	double v = ticks - (net ? b->clk.overhead : 0);
	return v > 0 ? bench_ns(&b->clk, v) : 0;
}

/* Latency statistics from raw spans; net: take the timer's cost off. */
static void fill_latency(const bench *b, result *r, const bench_hist *h, bool net)
{
	double q = b->clk.quantum;
	r->samples = h->count;
	r->p50 = net_ns(b, bh_quantile(h, 0.5, q), net);
	r->p99 = net_ns(b, bh_quantile(h, 0.99, q), net);
	r->p999 = net_ns(b, bh_quantile(h, 0.999, q), net);
	r->max = net_ns(b, (double)h->max, net);
	r->mean = h->count ? net_ns(b, h->sum / (double)h->count, net) : 0;
}

/* Phase lengths: a warm-up (discarded), the timed pass, and an untimed pass
 * for throughput. --ops N replaces the times by op counts. */
static uint64_t warm_ticks(const bench *b)
{
	double s = b->seconds * 0.2 < 0.05 ? 0.05 : b->seconds * 0.2;
	return bench_ticks_for_ns(&b->clk, s * 1e9);
}

static uint64_t run_ticks(const bench *b, double frac)
{
	return b->ops ? UINT64_MAX / 4 : bench_ticks_for_ns(&b->clk, b->seconds * frac * 1e9);
}

/* ------------------------------------------------------------------ */
/* the ring runner                                                     */
/* ------------------------------------------------------------------ */

/*
 * One run: a consumer process, `procs` producer processes (or the parent
 * when procs == 1) of `threads` threads each. With enough cores the
 * consumer runs concurrently on its own core. With fewer cores than
 * producers + 1 ("phased"), producers push bursts of at most half the ring
 * and then wait (futex) while the consumer drains: otherwise three spinning
 * actors on two cores would measure the scheduler, not the ring.
 */
typedef struct run_cfg {
	const ring_ops *ops;
	const char *name;
	uint32_t size;
	int threads, procs;
	bool phased;
} run_cfg;

typedef struct prod_slot {
	bench_hist hist;
	uint64_t pushed, refused, refused_tp, waits;
	uint64_t tp_ops, tp_ticks;
	int err;
} prod_slot;

typedef struct run_shared {
	_Atomic uint32_t ready;     /* producers + consumer set up */
	_Atomic uint32_t go;
	_Atomic uint32_t cons_stop; /* producers are done: drain and exit */
	_Atomic uint32_t gen;       /* phased: the burst producers may run */
	_Atomic uint32_t sync;      /* phased: active << 16 | arrived */
	_Atomic uint64_t consumed, corrupt;
	_Atomic int cons_err;
	prod_slot slot[MAX_PROD];
} run_shared;

typedef struct prod_arg {
	const bench *b;
	const run_cfg *cfg;
	run_shared *sh;
	bench_ring *ring;
	void *proc;
	int proc_err;
	int idx;
	uint32_t gen;        /* phased: the burst we are in */
	uint64_t burst, left; /* phased: ops per burst, ops left in this one */
	uint64_t active, burst_start;
} prod_arg;

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

typedef struct phase {
	bool timed;
	uint64_t ticks, max_ops;
	uint64_t ops; /* out */
	uint64_t active;
} phase;

static int run_phase(prod_arg *a, void *thr, uint8_t *payload, phase *ph, bench_hist *h)
{
	const ring_ops *o = a->cfg->ops;
	const bench_clock *clk = &a->b->clk;
	prod_slot *s = &a->sh->slot[a->idx];
	uint32_t len = a->cfg->size;
	uint64_t start = bench_ticks(), deadline = start + ph->ticks, n = 0, active0 = a->active;
	uint64_t give_up = deadline + bench_ticks_for_ns(clk, TIMEOUT_S * 1e9), ctr = 0;
	a->burst_start = start;
	while (n < ph->max_ops) {
		if (a->cfg->phased && a->left == 0)
			burst_next(a);
		ctr++;
		memcpy(payload, &ctr, sizeof ctr); /* every record differs */
		int rc;
		if (ph->timed) {
			uint64_t t0 = bench_t0();
			rc = o->push(thr, payload, len);
			uint64_t t1 = bench_t1();
			if (rc == 0)
				bh_record_span(h, t0, t1);
		} else {
			rc = o->push(thr, payload, len);
		}
		if (rc == -EAGAIN) { /* full: retry; the latency is the accepted push's */
			uint64_t *cnt = ph->timed ? &s->refused : &s->refused_tp;
			++*cnt;
			bench_relax();
			if ((*cnt & 1023) == 0 && bench_ticks() > give_up)
				return -ETIMEDOUT;
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
	ph->ops = n;
	ph->active = a->active - active0;
	s->pushed += n;
	return 0;
}

static int producer_cpu(const bench *b, const run_cfg *cfg, int idx)
{
	int usable = cfg->phased || b->ncpu < 2 ? b->ncpu : b->ncpu - 1;
	return idx % (usable > 0 ? usable : 1);
}

static void *producer_main(void *arg)
{
	prod_arg *a = arg;
	const bench *b = a->b;
	prod_slot *s = &a->sh->slot[a->idx];
	void *thr = NULL;
	uint8_t *payload = calloc(1, a->cfg->size + 64);
	int rc = a->proc_err ? a->proc_err : payload ? 0 : -ENOMEM;
	for (uint32_t i = 0; payload && i < a->cfg->size; i++)
		payload[i] = (uint8_t)(i * 31 + 7);
	if (rc == 0 && b->pin)
		rc = bench_pin(producer_cpu(b, a->cfg, a->idx));
	if (rc == 0)
		rc = a->cfg->ops->thr_open(a->proc, &thr);
	bump_word(&a->sh->ready);
	wait_word(&a->sh->go, 1);
	a->gen = 1;
	a->left = a->burst;
	phase warm = { .timed = true, .ticks = b->ops ? UINT64_MAX / 4 : warm_ticks(b),
		       .max_ops = b->ops ? b->ops / 10 + 1 : UINT64_MAX };
	phase timed = { .timed = true, .ticks = run_ticks(b, 1.0),
			.max_ops = b->ops ? b->ops : UINT64_MAX };
	phase tp = { .timed = false, .ticks = run_ticks(b, 0.5),
		     .max_ops = b->ops ? b->ops : UINT64_MAX };
	if (rc == 0)
		rc = run_phase(a, thr, payload, &warm, &s->hist);
	bh_reset(&s->hist);
	s->refused = s->refused_tp = 0;
	if (rc == 0)
		rc = run_phase(a, thr, payload, &timed, &s->hist);
	if (rc == 0)
		rc = run_phase(a, thr, payload, &tp, NULL);
	s->tp_ops = tp.ops;
	s->tp_ticks = tp.active;
	s->err = rc;
	if (thr && a->cfg->ops->thr_waits)
		s->waits = a->cfg->ops->thr_waits(thr);
	if (thr)
		a->cfg->ops->thr_close(thr);
	if (a->cfg->phased) { /* leave: active - 1, so the consumer stops waiting for us */
		atomic_fetch_sub_explicit(&a->sh->sync, 1u << 16, memory_order_acq_rel);
		bench_futex_wake(&a->sh->sync);
	}
	free(payload);
	return NULL;
}

static long drain_all(const ring_ops *o, void *cons, uint64_t *consumed, uint64_t *corrupt)
{
	long n;
	while ((n = o->consume(cons, corrupt)) > 0)
		*consumed += (uint64_t)n;
	return n;
}

static void consumer_phased(const ring_ops *o, void *cons, run_shared *sh,
			    uint64_t *consumed, uint64_t *corrupt)
{
	for (;;) {
		/* acquire: pairs with the producers' acq_rel arrival/leave. */
		uint32_t w = atomic_load_explicit(&sh->sync, memory_order_acquire);
		uint32_t arrived = w & 0xFFFF, active = w >> 16;
		if (arrived < active) {
			bench_futex_wait(&sh->sync, w);
			continue;
		}
		drain_all(o, cons, consumed, corrupt);
		if (active == 0)
			return;
		atomic_fetch_sub_explicit(&sh->sync, arrived, memory_order_acq_rel);
		bump_word(&sh->gen);
	}
}

static void consumer_concurrent(const ring_ops *o, void *cons, run_shared *sh,
				uint64_t *consumed, uint64_t *corrupt)
{
	for (;;) {
		long n = o->consume(cons, corrupt);
		if (n < 0)
			return; /* closed and empty */
		*consumed += (uint64_t)n;
		if (n == 0) {
			/* acquire: pairs with the parent's release of cons_stop,
			 * made after every push returned. */
			if (atomic_load_explicit(&sh->cons_stop, memory_order_acquire)) {
				drain_all(o, cons, consumed, corrupt);
				return;
			}
			bench_relax();
		}
	}
}

static void consumer_main(const bench *b, const run_cfg *cfg, bench_ring *ring, run_shared *sh)
{
	void *cons = NULL;
	uint64_t consumed = 0, corrupt = 0;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int rc = b->pin ? bench_pin(b->ncpu - 1) : 0;
	if (rc == 0)
		rc = cfg->ops->cons_open(ring, &cons);
	atomic_store(&sh->cons_err, rc);
	bump_word(&sh->ready);
	if (rc)
		_exit(1);
	wait_word(&sh->go, 1);
	if (cfg->phased)
		consumer_phased(cfg->ops, cons, sh, &consumed, &corrupt);
	else
		consumer_concurrent(cfg->ops, cons, sh, &consumed, &corrupt);
	atomic_store(&sh->consumed, consumed);
	atomic_store(&sh->corrupt, corrupt);
	_exit(0);
}

/* A producer process of a multi-process run. */
static void producer_proc_main(prod_arg *args, int threads)
{
	pthread_t th[MAX_PROD];
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
	if (proc)
		args[0].cfg->ops->proc_close(args[0].ring, proc);
	_exit(0);
}

/* Wait until n have checked in, or fail after TIMEOUT_S. */
static int wait_ready(run_shared *sh, uint32_t n)
{
	uint64_t end = bench_mono_ns(CLOCK_MONOTONIC) + (uint64_t)TIMEOUT_S * 1000000000u;
	uint32_t v;
	while ((v = atomic_load(&sh->ready)) < n) {
		if (bench_mono_ns(CLOCK_MONOTONIC) > end)
			return -ETIMEDOUT;
		bench_futex_wait(&sh->ready, v);
	}
	return 0;
}

static int start_producers(bench *b, const run_cfg *cfg, bench_ring *ring, run_shared *sh,
			   prod_arg *args, pthread_t *th, pid_t *kids, void **proc)
{
	int nprod = cfg->threads * cfg->procs;
	uint64_t need = br_align8(CKR_REC_HEADER + (uint64_t)cfg->size);
	uint64_t burst = ring->capacity / 2 / (need * (uint64_t)nprod);
	for (int i = 0; i < nprod; i++)
		args[i] = (prod_arg){ .b = b, .cfg = cfg, .sh = sh, .ring = ring, .idx = i,
				      .burst = burst ? burst : 1 };
	if (cfg->procs == 1) {
		int rc = cfg->ops->proc_open(ring, proc);
		for (int t = 0; t < cfg->threads; t++) {
			args[t].proc = *proc;
			args[t].proc_err = rc;
			if (pthread_create(&th[t], NULL, producer_main, &args[t]))
				return fail(b, "%s: pthread_create failed", cfg->name);
		}
		return 0;
	}
	for (int p = 0; p < cfg->procs; p++) {
		fflush(NULL);
		kids[p] = fork();
		if (kids[p] < 0)
			return fail(b, "%s: fork: %s", cfg->name, strerror(errno));
		if (kids[p] == 0)
			producer_proc_main(&args[p * cfg->threads], cfg->threads);
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
		if (s->tp_ticks)
			rate += (double)s->tp_ops / (bench_ns(&b->clk, (double)s->tp_ticks) * 1e-9);
	}
	if (all)
		fill_latency(b, r, all, true);
	free(all);
	r->ops_per_s = rate;
	r->mode = cfg->phased ? "phased" : "concurrent";
}

static int check_run(bench *b, const run_cfg *cfg, run_shared *sh, int cons_status)
{
	int nprod = cfg->threads * cfg->procs;
	uint64_t pushed = 0;
	for (int i = 0; i < nprod; i++) {
		if (sh->slot[i].err)
			return fail(b, "%s (%u B): producer: %s", cfg->name, cfg->size,
				    ckr_strerror(sh->slot[i].err));
		pushed += sh->slot[i].pushed;
	}
	if (atomic_load(&sh->cons_err))
		return fail(b, "%s (%u B): consumer: %s", cfg->name, cfg->size,
			    ckr_strerror(atomic_load(&sh->cons_err)));
	if (cons_status)
		return fail(b, "%s (%u B): consumer process failed", cfg->name, cfg->size);
	if (atomic_load(&sh->corrupt))
		return fail(b, "%s (%u B): consumer found %lu corrupt records", cfg->name,
			    cfg->size, (unsigned long)atomic_load(&sh->corrupt));
	if (atomic_load(&sh->consumed) != pushed)
		return fail(b, "%s (%u B): %lu records pushed but %lu consumed", cfg->name,
			    cfg->size, (unsigned long)pushed,
			    (unsigned long)atomic_load(&sh->consumed));
	return 0;
}

static int run_ring(bench *b, const run_cfg *cfg)
{
	int nprod = cfg->threads * cfg->procs, rc, status = 0;
	prod_arg args[MAX_PROD];
	pthread_t th[MAX_PROD];
	pid_t kids[MAX_PROD], cons;
	void *proc = NULL;
	result *r = new_result(b, cfg->name, cfg->size, cfg->threads, cfg->procs);
	run_shared *sh = bench_shared_alloc(sizeof *sh);
	if (!r || !sh)
		return fail(b, "%s: out of memory", cfg->name);
	atomic_store(&sh->gen, 1);
	atomic_store(&sh->sync, (uint32_t)nprod << 16);
	bench_ring ring = { .ops = cfg->ops, .size = cfg->size, .capacity = BENCH_RING_CAP };
	snprintf(ring.name, sizeof ring.name, "ckring-bench-%d-%u", (int)getpid(), b->seq++);
	if ((rc = cfg->ops->create(&ring))) {
		munmap(sh, sizeof *sh);
		return fail(b, "%s: cannot create the ring: %s", cfg->name, ckr_strerror(rc));
	}
	fflush(NULL);
	if ((cons = fork()) < 0) {
		rc = fail(b, "%s: fork: %s", cfg->name, strerror(errno));
		goto out_ring;
	}
	if (cons == 0)
		consumer_main(b, cfg, &ring, sh);
	rc = start_producers(b, cfg, &ring, sh, args, th, kids, &proc);
	if (rc == 0 && wait_ready(sh, (uint32_t)nprod + 1))
		rc = fail(b, "%s: producers did not start", cfg->name);
	atomic_store(&sh->go, rc == 0);
	bench_futex_wake(&sh->go);
	if (rc) {
		kill(cons, SIGKILL);
		waitpid(cons, NULL, 0);
		goto out_ring; /* children die with us (PDEATHSIG) */
	}
	for (int t = 0; cfg->procs == 1 && t < cfg->threads; t++)
		pthread_join(th[t], NULL);
	for (int p = 0; cfg->procs > 1 && p < cfg->procs; p++)
		waitpid(kids[p], NULL, 0);
	if (proc)
		cfg->ops->proc_close(&ring, proc);
	/* release: pairs with the consumer's acquire; every push returned. */
	atomic_store_explicit(&sh->cons_stop, 1, memory_order_release);
	if (cfg->ops->end_of_input)
		cfg->ops->end_of_input(&ring);
	waitpid(cons, &status, 0);
	rc = check_run(b, cfg, sh, !WIFEXITED(status) || WEXITSTATUS(status));
	if (rc == 0)
		collect(b, cfg, sh, r);
out_ring:
	cfg->ops->destroy(&ring);
	munmap(sh, sizeof *sh);
	return rc;
}

static int ring_benches(bench *b, uint32_t size)
{
	static const struct {
		const char *name;
		const ring_ops *ops;
		int threads, procs;
	} plan[] = {
		{ "floor.push", &floor_ops, 1, 1 },
		{ "floor.push", &floor_ops, 2, 1 },
		{ "ckring.push", &ckring_ops, 1, 1 },
		{ "ckring.push", &ckring_ops, 2, 1 },
		{ "ckring.push.procs", &ckring_ops, 1, 2 },
		{ "mutex_ring.push", &mutex_ops, 1, 1 },
		{ "pipe.write", &pipe_ops, 1, 1 },
	};
	for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
		if (!wanted(b, plan[i].name) || (b->threads && plan[i].threads != b->threads))
			continue;
		int nprod = plan[i].threads * plan[i].procs;
		/* The pipe's reader sleeps in read(): it never needs phasing
		 * (and could not take part in it). */
		bool phased = plan[i].ops != &pipe_ops &&
			      (b->mode == MODE_PHASED ||
			       (b->mode == MODE_AUTO && b->ncpu < nprod + 1));
		run_cfg cfg = { .ops = plan[i].ops, .name = plan[i].name, .size = size,
				.threads = plan[i].threads, .procs = plan[i].procs,
				.phased = phased };
		if (run_ring(b, &cfg))
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* LMDB: what a user would do instead                                  */
/* ------------------------------------------------------------------ */

static int mk_tmpdir(bench *b, char *out, size_t n)
{
	snprintf(out, n, "%s/ckring-bench-XXXXXX", b->dir);
	if (!mkdtemp(out))
		return fail(b, "cannot make a directory under %s: %s", b->dir, strerror(errno));
	return 0;
}

/* Remove dir and the files in it (LMDB and the store keep no subdirs). */
static void rm_tmpdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[PATH_MAX + 256];
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static int lmdb_open(bench *b, const char *dir, unsigned flags, MDB_env **env, MDB_dbi *dbi)
{
	MDB_txn *txn;
	int rc = mdb_env_create(env);
	if (rc == 0)
		rc = mdb_env_set_mapsize(*env, LMDB_MAP);
	if (rc == 0)
		rc = mdb_env_open(*env, dir, flags, 0600);
	if (rc == 0)
		rc = mdb_txn_begin(*env, NULL, 0, &txn);
	if (rc == 0) {
		rc = mdb_dbi_open(txn, NULL, 0, dbi);
		rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
	}
	if (rc) {
		mdb_env_close(*env);
		return fail(b, "lmdb: cannot open an environment in %s: %s", dir, mdb_strerror(rc));
	}
	return 0;
}

static void be64(uint8_t k[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		k[i] = (uint8_t)v;
}

/*
 * One write transaction of n MDB_APPEND puts of size bytes, keys from *next
 * (big-endian, so appends stay in order); the commit syncs unless the
 * environment has MDB_NOSYNC. @return 0 or an LMDB error.
 */
static int lmdb_put_batch(MDB_env *env, MDB_dbi dbi, uint64_t *next, uint32_t n,
			  uint8_t *payload, uint32_t size)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc)
		return rc;
	for (uint32_t j = 0; rc == 0 && j < n; j++, ++*next) {
		uint8_t kb[8];
		be64(kb, *next);
		memcpy(payload, next, size < 8 ? size : 8); /* every value differs */
		MDB_val k = { 8, kb }, v = { size, payload };
		rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND);
	}
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

/* The most ops a measurement may write (keeps the map and the disk sane). */
static uint64_t lmdb_op_cap(uint32_t size)
{
	uint64_t per = 2 * (uint64_t)size + 128; /* an overflow page pair, worst case */
	uint64_t cap = LMDB_MAP / 2 / per;
	return cap > 200000 ? 200000 : cap;
}

/* A fresh environment in a temporary directory, and what a run needs. */
typedef struct lmdb_run {
	char dir[PATH_MAX];
	MDB_env *env;
	MDB_dbi dbi;
	uint8_t *payload;
	bench_hist *h;
} lmdb_run;

static void lmdb_run_close(lmdb_run *l)
{
	if (l->env)
		mdb_env_close(l->env);
	if (l->dir[0])
		rm_tmpdir(l->dir);
	free(l->payload);
	free(l->h);
}

static int lmdb_run_open(bench *b, lmdb_run *l, uint32_t size, unsigned flags)
{
	memset(l, 0, sizeof *l);
	l->payload = calloc(1, size);
	l->h = calloc(1, sizeof *l->h);
	if (!l->payload || !l->h) {
		lmdb_run_close(l);
		return fail(b, "lmdb: out of memory");
	}
	if (mk_tmpdir(b, l->dir, sizeof l->dir)) {
		l->dir[0] = '\0';
		lmdb_run_close(l);
		return -1;
	}
	if (lmdb_open(b, l->dir, flags, &l->env, &l->dbi)) {
		l->env = NULL;
		lmdb_run_close(l);
		return -1;
	}
	return 0;
}

/* One write transaction per event (put + commit): what a user would do
 * instead of ckring, with the default sync or MDB_NOSYNC. */
static int lmdb_direct(bench *b, uint32_t size, bool sync)
{
	const char *name = sync ? "lmdb.direct.sync" : "lmdb.direct.nosync";
	lmdb_run l;
	int rc = 0;
	result *r = new_result(b, name, size, 1, 1);
	if (!r)
		return fail(b, "too many results");
	if (lmdb_run_open(b, &l, size, sync ? 0 : MDB_NOSYNC))
		return -1;
	uint64_t key = 0, cap = lmdb_op_cap(size), n = 0;
	uint64_t max = b->ops ? b->ops : cap;
	uint64_t warm_end = bench_ticks() + warm_ticks(b) / 2;
	while (rc == 0 && key < 20 && (bench_ticks() < warm_end || key < 3)) /* warm-up */
		rc = lmdb_put_batch(l.env, l.dbi, &key, 1, l.payload, size);
	uint64_t start = bench_ticks(), end = start + run_ticks(b, 1.0);
	while (rc == 0 && n < max && key < cap && bench_ticks() < end) {
		uint64_t t0 = bench_t0();
		rc = lmdb_put_batch(l.env, l.dbi, &key, 1, l.payload, size);
		uint64_t t1 = bench_t1();
		bh_record_span(l.h, t0, t1);
		n++;
	}
	double wall = bench_ns(&b->clk, (double)(bench_ticks() - start)) * 1e-9;
	if (rc == 0) {
		fill_latency(b, r, l.h, true);
		r->ops_per_s = (double)n / wall;
		r->mode = "serial";
	}
	lmdb_run_close(&l);
	return rc ? fail(b, "%s (%u B): %s", name, size, mdb_strerror(rc)) : 0;
}

/* Large MDB_APPEND batches, one fsync'd commit each: LMDB's ceiling. The
 * first batch is the warm-up. */
static int lmdb_batch(bench *b, uint32_t size)
{
	const char *name = "lmdb.batch.sync";
	const uint32_t batch = 8192; /* the flusher's batch limit (BATCH_MAX_EVENTS) */
	lmdb_run l;
	result *r = new_result(b, name, size, 1, 1);
	if (!r)
		return fail(b, "too many results");
	if (lmdb_run_open(b, &l, size, 0))
		return -1;
	uint64_t key = 0, events = 0, cap = lmdb_op_cap(size) * 2;
	int rc = lmdb_put_batch(l.env, l.dbi, &key, batch, l.payload, size);
	uint64_t start = bench_ticks(), end = start + run_ticks(b, 1.0);
	while (rc == 0 && (events == 0 || (bench_ticks() < end && key + batch <= cap &&
					   !(b->ops && events >= b->ops)))) {
		uint64_t t0 = bench_t0();
		rc = lmdb_put_batch(l.env, l.dbi, &key, batch, l.payload, size);
		uint64_t t1 = bench_t1();
		bh_record_span(l.h, t0, t1);
		events += batch;
	}
	double wall = bench_ns(&b->clk, (double)(bench_ticks() - start)) * 1e-9;
	if (rc == 0) {
		fill_latency(b, r, l.h, true);
		r->ops_per_s = (double)events / wall;
		r->latency_of = "batch";
		r->batch = batch;
		r->mode = "serial";
	}
	lmdb_run_close(&l);
	return rc ? fail(b, "%s (%u B): %s", name, size, mdb_strerror(rc)) : 0;
}

/* ------------------------------------------------------------------ */
/* the flusher: drain throughput, push -> synced latency               */
/* ------------------------------------------------------------------ */

#ifdef CKR_BENCH_FLUSHER
#include "tools/bench_flusher.h"
#else
static int flusher_pending(bench *b, const char *name, uint32_t size, double rate)
{
	result *r = new_result(b, name, size, 1, 1);
	if (!r)
		return fail(b, "too many results");
	r->pending = true;
	r->rate = rate;
	r->latency_of = !strcmp(name, "ckring.drain") ? "batch" : "event";
	snprintf(r->note, sizeof r->note,
		 "pending: built without the flusher engine (-DCKR_BENCH_FLUSHER)");
	return 0;
}

static int bench_drain(bench *b, uint32_t size)
{
	return flusher_pending(b, "ckring.drain", size, 0);
}

static int bench_durable(bench *b, uint32_t size, double rate)
{
	return flusher_pending(b, "ckring.durable", size, rate);
}
#endif

/* ------------------------------------------------------------------ */
/* the machine                                                         */
/* ------------------------------------------------------------------ */

typedef struct machine {
	char cpu[128];
	char kernel[200];
	char governor[32];
	bool constant_tsc, nonstop_tsc, rdtscp, hypervisor;
	long mem_mib;
	long pipe_max;
	double load_start; /* 1-minute load average at start-up */
} machine;

static bool has_flag(const char *flags, const char *f)
{
	size_t n = strlen(f);
	for (const char *p = flags; (p = strstr(p, f)); p += n)
		if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || !p[n]))
			return true;
	return false;
}

static void read_line_file(const char *path, char *out, size_t n)
{
	FILE *f = fopen(path, "r");
	out[0] = '\0';
	if (f && fgets(out, (int)n, f))
		out[strcspn(out, "\n")] = '\0';
	if (f)
		fclose(f);
}

/* The 1-minute load average: other work on the machine disturbs a run. */
static double load1(void)
{
	char line[128];
	read_line_file("/proc/loadavg", line, sizeof line);
	return atof(line);
}

static void machine_info(machine *m)
{
	memset(m, 0, sizeof *m);
	char line[4096];
	FILE *f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof line, f)) {
		char *v = strchr(line, ':');
		if (!v)
			continue;
		v += v[1] == ' ' ? 2 : 1;
		v[strcspn(v, "\n")] = '\0';
		if (!m->cpu[0] && !strncmp(line, "model name", 10))
			snprintf(m->cpu, sizeof m->cpu, "%s", v);
		if (!strncmp(line, "flags", 5)) {
			m->constant_tsc = has_flag(v, "constant_tsc");
			m->nonstop_tsc = has_flag(v, "nonstop_tsc");
			m->rdtscp = has_flag(v, "rdtscp");
			m->hypervisor = has_flag(v, "hypervisor");
		}
	}
	if (f)
		fclose(f);
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release, u.machine);
	read_line_file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", m->governor,
		       sizeof m->governor);
	m->mem_mib = (long)((double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) /
			    1048576.0);
	read_line_file("/proc/sys/fs/pipe-max-size", line, sizeof line);
	m->pipe_max = atol(line);
	m->load_start = load1();
}

static const char *fs_name(long type)
{
	switch ((unsigned long)type) {
	case 0xEF53: return "ext4";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x01021994: return "tmpfs";
	case 0x794C7630: return "overlayfs";
	case 0x2FC12FC1: return "zfs";
	case 0x6969: return "nfs";
	case 0x65735546: return "fuse";
	case 0xF2F52010: return "f2fs";
	default: return "other";
	}
}

/* ------------------------------------------------------------------ */
/* output                                                              */
/* ------------------------------------------------------------------ */

static const result *find(const bench *b, const char *name, uint32_t size, int threads,
			  int procs, double rate)
{
	for (int i = 0; i < b->n_res; i++) {
		const result *r = &b->res[i];
		if (!strcmp(r->name, name) && r->size == size && r->threads == threads &&
		    r->procs == procs && r->rate == rate && !r->pending)
			return r;
	}
	return NULL;
}

/* A ratio, or NAN when either side is missing. */
static double ratio(const result *a, double av, const result *c, double cv)
{
	return a && c && cv > 0 ? av / cv : NAN;
}

typedef struct ratio_row {
	const char *key, *label;
	double v[MAX_SIZES * MAX_RATES];
	char at[MAX_SIZES * MAX_RATES][32];
	int n;
	double target; /* 0: none; otherwise the value must be <= target */
} ratio_row;

static void add_ratio(ratio_row *r, const char *at, double v)
{
	snprintf(r->at[r->n], sizeof r->at[r->n], "%s", at);
	r->v[r->n++] = v;
}

static int make_ratios(const bench *b, ratio_row *rows)
{
	rows[0] = (ratio_row){ .key = "push_p50_over_floor_p50",
			       .label = "ckring.push p50 / floor.push p50", .target = 2.0 };
	rows[1] = (ratio_row){ .key = "push_p999_over_mutex_ring_p999",
			       .label = "ckring.push p99.9 / mutex_ring.push p99.9" };
	rows[2] = (ratio_row){ .key = "push_p999_over_pipe_write_p999",
			       .label = "ckring.push p99.9 / pipe.write p99.9" };
	rows[3] = (ratio_row){ .key = "lmdb_direct_sync_p50_over_push_p50",
			       .label = "lmdb.direct.sync p50 / ckring.push p50" };
	rows[4] = (ratio_row){ .key = "drain_over_lmdb_batch_sync",
			       .label = "ckring.drain / lmdb.batch.sync (events/s)" };
	rows[5] = (ratio_row){ .key = "durable_p50_over_lmdb_direct_sync_p50",
			       .label = "ckring.durable p50 / one fsync'd LMDB commit p50" };
	for (int i = 0; i < b->n_sizes; i++) {
		uint32_t s = b->sizes[i];
		char at[32];
		snprintf(at, sizeof at, "%u", s);
		const result *push = find(b, "ckring.push", s, 1, 1, 0);
		const result *fl = find(b, "floor.push", s, 1, 1, 0);
		const result *mx = find(b, "mutex_ring.push", s, 1, 1, 0);
		const result *pw = find(b, "pipe.write", s, 1, 1, 0);
		const result *ls = find(b, "lmdb.direct.sync", s, 1, 1, 0);
		const result *lb = find(b, "lmdb.batch.sync", s, 1, 1, 0);
		const result *dr = find(b, "ckring.drain", s, 1, 1, 0);
		add_ratio(&rows[0], at, ratio(push, push ? push->p50 : 0, fl, fl ? fl->p50 : 0));
		add_ratio(&rows[1], at, ratio(push, push ? push->p999 : 0, mx, mx ? mx->p999 : 0));
		add_ratio(&rows[2], at, ratio(push, push ? push->p999 : 0, pw, pw ? pw->p999 : 0));
		add_ratio(&rows[3], at, ratio(ls, ls ? ls->p50 : 0, push, push ? push->p50 : 0));
		add_ratio(&rows[4], at, ratio(dr, dr ? dr->ops_per_s : 0, lb,
					      lb ? lb->ops_per_s : 0));
		for (int k = 0; k < b->n_rates; k++) {
			const result *du = find(b, "ckring.durable", s, 1, 1, b->rates[k]);
			if (!du && i > 0)
				continue;
			snprintf(at, sizeof at, "%u@%.0f/s", s, b->rates[k]);
			add_ratio(&rows[5], at, ratio(du, du ? du->p50 : 0, ls, ls ? ls->p50 : 0));
		}
	}
	return 6;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else if (v == floor(v) && fabs(v) < 1e15)
		fprintf(f, "%.0f", v);
	else
		fprintf(f, "%.4g", v);
}

static void json_machine(FILE *f, const bench *b, const machine *m)
{
	fputs("{\"machine\": {\"cpu\": ", f);
	json_str(f, m->cpu);
	fprintf(f, ", \"cores\": %d, \"kernel\": ", b->ncpu);
	json_str(f, m->kernel);
	const char *k[] = { "tsc_ghz", "timer_overhead_ns", "tsc_step_ns", "loadavg_start",
			    "loadavg_end", "seconds" };
	double v[] = { b->clk.ticks_per_ns, b->clk.overhead_ns, bench_ns(&b->clk, b->clk.quantum),
		       m->load_start, load1(), b->seconds };
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		fprintf(f, ", \"%s\": ", k[i]);
		json_num(f, v[i]);
	}
	fprintf(f, ", \"constant_tsc\": %s, \"nonstop_tsc\": %s, \"rdtscp\": %s, "
		   "\"hypervisor\": %s, \"memory_mib\": %ld, \"governor\": ",
		m->constant_tsc ? "true" : "false", m->nonstop_tsc ? "true" : "false",
		m->rdtscp ? "true" : "false", m->hypervisor ? "true" : "false", m->mem_mib);
	json_str(f, m->governor[0] ? m->governor : "unknown");
	fputs(", \"db_dir\": ", f);
	json_str(f, b->dir);
	fputs(", \"db_fs\": ", f);
	json_str(f, b->fs);
	fprintf(f, ", \"ring_capacity\": %lu, \"pipe_max_size\": %ld, \"pinned\": %s, "
		   "\"quick\": %s, \"ops\": %lu, \"mode\": \"%s\", \"compiler\": ",
		(unsigned long)BENCH_RING_CAP, m->pipe_max, b->pin ? "true" : "false",
		b->quick ? "true" : "false", (unsigned long)b->ops,
		b->mode == MODE_PHASED ? "phased" : b->mode == MODE_CONCURRENT ? "concurrent" : "auto");
	json_str(f, __VERSION__);
#ifdef CKR_BENCH_FLUSHER
	fputs(", \"flusher_benchmarks\": \"enabled\"}", f);
#else
	fputs(", \"flusher_benchmarks\": \"pending\"}", f);
#endif
}

static void json_result(FILE *f, const result *r)
{
	fputs("{\"name\": ", f);
	json_str(f, r->name);
	fprintf(f, ", \"size\": %u, \"threads\": %d, \"procs\": %d", r->size, r->threads,
		r->procs);
	const char *k[] = { "ops_per_s", "p50_ns", "p99_ns", "p999_ns", "max_ns", "mean_ns" };
	double v[] = { r->ops_per_s, r->p50, r->p99, r->p999, r->max, r->mean };
	for (int j = 0; j < 6; j++) {
		fprintf(f, ", \"%s\": ", k[j]);
		json_num(f, r->pending ? NAN : v[j]);
	}
	fprintf(f, ", \"samples\": %lu, \"refused\": %lu, \"refused_throughput_pass\": %lu, "
		   "\"latency_of\": \"%s\"",
		(unsigned long)r->samples, (unsigned long)r->refused,
		(unsigned long)r->refused_tp, r->latency_of);
	if (r->mode)
		fprintf(f, ", \"mode\": \"%s\"", r->mode);
	if (!strcmp(r->name, "floor.push"))
		fprintf(f, ", \"full_waits\": %lu", (unsigned long)r->waits);
	if (r->batch)
		fprintf(f, ", \"batch\": %u", r->batch);
	if (r->rate > 0) {
		fputs(", \"offered_per_s\": ", f);
		json_num(f, r->rate);
	}
	if (r->pending)
		fputs(", \"pending\": true", f);
	if (r->note[0]) {
		fputs(", \"note\": ", f);
		json_str(f, r->note);
	}
	fputc('}', f);
}

static void json_ratios(FILE *f, const bench *b)
{
	ratio_row rows[6];
	int n = make_ratios(b, rows);
	fputs("{", f);
	for (int i = 0; i < n; i++) {
		fprintf(f, "%s\n  \"%s\": {", i ? "," : "", rows[i].key);
		for (int j = 0; j < rows[i].n; j++) {
			fprintf(f, "%s\"%s\": ", j ? ", " : "", rows[i].at[j]);
			json_num(f, rows[i].v[j]);
		}
		if (rows[i].target > 0) {
			fprintf(f, "%s\"target_max\": ", rows[i].n ? ", " : "");
			json_num(f, rows[i].target);
		}
		fputc('}', f);
	}
	fputs("}", f);
}

/* The one JSON document: {"machine", "results", "ratios"}. */
static void print_json(const bench *b, const machine *m)
{
	FILE *f = stdout;
	json_machine(f, b, m);
	fputs(",\n \"results\": [", f);
	for (int i = 0; i < b->n_res; i++) {
		fputs(i ? ",\n  " : "\n  ", f);
		json_result(f, &b->res[i]);
	}
	fputs("],\n \"ratios\": ", f);
	json_ratios(f, b);
	fputs("}\n", f);
}

/* ns with a unit, in a field of width w. */
static void put_ns(char *out, size_t n, double ns)
{
	if (ns < 1000)
		snprintf(out, n, "%.1f ns", ns);
	else if (ns < 1e6)
		snprintf(out, n, "%.2f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(out, n, "%.2f ms", ns / 1e6);
	else
		snprintf(out, n, "%.2f s", ns / 1e9);
}

static void put_rate(char *out, size_t n, double r)
{
	if (r >= 1e6)
		snprintf(out, n, "%.2fM", r / 1e6);
	else if (r >= 1e3)
		snprintf(out, n, "%.1fk", r / 1e3);
	else
		snprintf(out, n, "%.0f", r);
}

/* One row of the table. */
static void table_row(const result *r)
{
	char c[6][24], note[256] = "";
	if (r->pending) {
		printf("%-18s %5u %3d %3d %9s %10s %10s %10s %10s %10s  %s\n", r->name, r->size,
		       r->threads, r->procs, "-", "-", "-", "-", "-", "-", r->note);
		return;
	}
	put_rate(c[0], sizeof c[0], r->ops_per_s);
	put_ns(c[1], sizeof c[1], r->mean);
	put_ns(c[2], sizeof c[2], r->p50);
	put_ns(c[3], sizeof c[3], r->p99);
	put_ns(c[4], sizeof c[4], r->p999);
	put_ns(c[5], sizeof c[5], r->max);
	size_t k = 0;
	if (r->mode)
		k += (size_t)snprintf(note + k, sizeof note - k, "%s", r->mode);
	if (r->rate > 0)
		k += (size_t)snprintf(note + k, sizeof note - k, ", offered %.0f/s", r->rate);
	if (r->batch)
		k += (size_t)snprintf(note + k, sizeof note - k, ", per batch of %u", r->batch);
	if (r->refused || r->refused_tp)
		k += (size_t)snprintf(note + k, sizeof note - k, ", refused %lu+%lu",
				      (unsigned long)r->refused, (unsigned long)r->refused_tp);
	if (r->waits)
		k += (size_t)snprintf(note + k, sizeof note - k, ", %lu full waits",
				      (unsigned long)r->waits);
	if (r->note[0])
		snprintf(note + k, sizeof note - k, ", %s", r->note);
	printf("%-18s %5u %3d %3d %9s %10s %10s %10s %10s %10s  %s\n", r->name, r->size,
	       r->threads, r->procs, c[0], c[1], c[2], c[3], c[4], c[5], note);
}

static void table_ratios(const bench *b)
{
	ratio_row rows[6];
	int n = make_ratios(b, rows);
	printf("\nratios (by payload size):\n");
	for (int i = 0; i < n; i++) {
		printf("  %-50s", rows[i].label);
		for (int j = 0; j < rows[i].n; j++) {
			if (isnan(rows[i].v[j]))
				printf("  %s: n/a", rows[i].at[j]);
			else
				printf("  %s: %.3g", rows[i].at[j], rows[i].v[j]);
			if (rows[i].target > 0 && !isnan(rows[i].v[j]))
				printf(rows[i].v[j] <= rows[i].target ? " (ok)" : " (MISSED)");
		}
		if (rows[i].target > 0)
			printf("   [target <= %.1f]", rows[i].target);
		putchar('\n');
	}
}

static void table_notes(const bench *b)
{
	bool phased = false;
	for (int i = 0; i < b->n_res; i++) {
		const result *r = &b->res[i];
		phased = phased || (r->mode && !strcmp(r->mode, "phased"));
		if ((r->refused || r->refused_tp) && !strncmp(r->name, "ckring.push", 11))
			printf("note: %s %u B (%d thr, %d procs): %lu pushes refused in the timed "
			       "pass, %lu in the throughput pass (ring full): the bench consumer "
			       "did not keep up with the producers.\n",
			       r->name, r->size, r->threads, r->procs, (unsigned long)r->refused,
			       (unsigned long)r->refused_tp);
	}
	if (phased)
		printf("note: \"phased\" = fewer cores than producers + consumer: producers push "
		       "bursts of <= half the ring, then wait while the consumer drains.\n");
}

static void print_table(const bench *b, const machine *m)
{
	printf("ckring-bench: %s, %d cores, %s\n", m->cpu, b->ncpu, m->kernel);
	printf("  TSC %.3f GHz, step %.1f ns (constant_tsc %s, nonstop_tsc %s), timer overhead "
	       "%.1f ns (subtracted), pinned %s, db %s (%s), load %.2f -> %.2f\n\n",
	       b->clk.ticks_per_ns, bench_ns(&b->clk, b->clk.quantum),
	       m->constant_tsc ? "yes" : "no", m->nonstop_tsc ? "yes" : "no",
	       b->clk.overhead_ns, b->pin ? "yes" : "no", b->dir, b->fs[0] ? b->fs : "unused",
	       m->load_start, load1());
	printf("%-18s %5s %3s %3s %9s %10s %10s %10s %10s %10s  %s\n", "name", "size", "thr",
	       "prc", "ops/s", "mean", "p50", "p99", "p99.9", "max", "notes");
	for (int i = 0; i < b->n_res; i++)
		table_row(&b->res[i]);
	table_ratios(b);
	table_notes(b);
}

/* ------------------------------------------------------------------ */
/* command line                                                        */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fputs("usage: ckring-bench [--json] [--quick] [--only NAME[,NAME]] [--sizes N[,N]]\n"
	      "                    [--pin] [--seconds S] [--ops N] [--threads T] [--mode M]\n"
	      "                    [--dir DIR] [--rates R[,R]]\n"
	      "Latency harness: ckring's push against the physical floor, a mutex ring, a pipe\n"
	      "and LMDB, plus the flusher's drain rate and push->synced latency.\n"
	      "  --json        one JSON document on stdout\n"
	      "  --quick       128 B only, short runs (the whole run takes seconds)\n"
	      "  --only LIST   run only these benchmarks (see below)\n"
	      "  --sizes LIST  payload sizes in bytes (default 128,1024,4096; max 65536)\n"
	      "  --pin         pin producers and consumer to CPUs (sched_setaffinity)\n"
	      "  --seconds S   timed pass per measurement (default 1, --quick 0.25)\n"
	      "  --ops N       N timed ops per producer instead of a time (e.g. under strace;\n"
	      "                plus N/10 warm-up and N untimed throughput ops)\n"
	      "  --threads T   ring benchmarks: only the runs with T producer threads (1|2)\n"
	      "  --mode M      ring consumers: auto (concurrent on its own core when there\n"
	      "                are enough cores, else phased), concurrent, or phased\n"
	      "  --dir DIR     where LMDB environments are made (default /var/tmp)\n"
	      "  --rates LIST  offered events/s for ckring.durable (default 1000,10000,100000)\n"
	      "  --help        this text\n"
	      "benchmarks:", f);
	for (size_t i = 0; i < N_NAMES; i++)
		fprintf(f, " %s", all_names[i]);
	fputs("\nMethod and results: BENCHMARKS.md.\n", f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("ckring-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	return 2;
}

/* Parse a comma list of numbers in [lo, hi]. @return count, or -1. */
static int parse_list(const char *s, double *out, int max, double lo, double hi, bool integer)
{
	int n = 0;
	const char *p = s;
	while (*p) {
		char *end;
		errno = 0;
		double v = strtod(p, &end);
		if (end == p || errno || v < lo || v > hi || (integer && v != floor(v)) || n == max)
			return -1;
		out[n++] = v;
		if (*end == ',' && end[1])
			p = end + 1;
		else if (*end == '\0')
			p = end;
		else
			return -1;
	}
	return n ? n : -1;
}

static int parse_only(bench *b, const char *s)
{
	char buf[512];
	snprintf(buf, sizeof buf, "%s", s);
	memset(b->only, 0, sizeof b->only);
	for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t i;
		for (i = 0; i < N_NAMES && strcmp(all_names[i], tok); i++)
			;
		if (i == N_NAMES)
			return usage_error("unknown benchmark '%s' in --only", tok);
		b->only[i] = true;
	}
	return 0;
}

static int parse_mode(bench *b, const char *s)
{
	static const char *const names[] = { "auto", "concurrent", "phased" };
	for (int i = 0; i < 3; i++) {
		if (!strcmp(s, names[i])) {
			b->mode = i;
			return 0;
		}
	}
	return usage_error("--mode wants auto, concurrent or phased");
}

/* An option with a numeric value. @return 0, or 2 after the usage line. */
static int parse_value(bench *b, int c, const char *arg)
{
	double v[MAX_SIZES];
	int n;
	switch (c) {
	case 's':
		n = parse_list(arg, v, MAX_SIZES, 1, BENCH_MAX_PAYLOAD, true);
		if (n < 0)
			return usage_error("--sizes wants up to %d sizes of 1..%u bytes, "
					   "comma-separated", MAX_SIZES, BENCH_MAX_PAYLOAD);
		for (int i = 0; i < n; i++)
			b->sizes[i] = (uint32_t)v[i];
		b->n_sizes = n;
		return 0;
	case 'r':
		n = parse_list(arg, b->rates, MAX_RATES, 1, 1e7, false);
		if (n < 0)
			return usage_error("--rates wants up to %d rates of 1..1e7 events/s",
					   MAX_RATES);
		b->n_rates = n;
		return 0;
	case 'S':
		if (parse_list(arg, v, 1, 0.01, 3600, false) != 1)
			return usage_error("--seconds wants a number of seconds in 0.01..3600");
		b->seconds = v[0];
		return 0;
	case 'n':
		if (parse_list(arg, v, 1, 1, 1e12, true) != 1)
			return usage_error("--ops wants a positive whole number");
		b->ops = (uint64_t)v[0];
		return 0;
	default: /* 't' */
		if (parse_list(arg, v, 1, 1, 2, true) != 1)
			return usage_error("--threads wants 1 or 2");
		b->threads = (int)v[0];
		return 0;
	}
}

static void apply_defaults(bench *b)
{
	static const uint32_t sizes[] = { 128, 1024, 4096 };
	static const double rates[] = { 1000, 10000, 100000 };
	if (!b->n_sizes) {
		b->n_sizes = b->quick ? 1 : 3;
		memcpy(b->sizes, sizes, sizeof sizes);
	}
	if (b->seconds == 0)
		b->seconds = b->quick ? 0.25 : 1.0;
	if (!b->n_rates) {
		b->n_rates = 3;
		memcpy(b->rates, rates, sizeof rates);
	}
	if (!b->dir)
		b->dir = "/var/tmp";
}

/* @return 0; 2 on a usage error (the line is printed). --help exits 0. */
static int parse_args(bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },   { "quick", no_argument, NULL, 'q' },
		{ "only", required_argument, NULL, 'o' }, { "sizes", required_argument, NULL, 's' },
		{ "pin", no_argument, NULL, 'p' },    { "seconds", required_argument, NULL, 'S' },
		{ "ops", required_argument, NULL, 'n' }, { "dir", required_argument, NULL, 'd' },
		{ "rates", required_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' },
		{ "threads", required_argument, NULL, 't' }, { "mode", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc = 0;
	opterr = 0;
	for (int i = 0; i < (int)N_NAMES; i++)
		b->only[i] = true;
	while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': b->json = true; break;
		case 'q': b->quick = true; break;
		case 'p': b->pin = true; break;
		case 'd': b->dir = optarg; break;
		case 'o': rc = parse_only(b, optarg); break;
		case 'm': rc = parse_mode(b, optarg); break;
		case 's': case 'r': case 'S': case 'n': case 't':
			rc = parse_value(b, c, optarg);
			break;
		case 'h':
			usage(stdout);
			return -1; /* done: main frees and exits 0 */
		default:
			return usage_error("option '%s' is unknown or lacks its value",
					   argv[optind - 1]);
		}
	}
	if (rc)
		return 2;
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	apply_defaults(b);
	return 0;
}

static int check_dir(bench *b)
{
	struct statfs sf;
	struct stat st;
	if (stat(b->dir, &st) || !S_ISDIR(st.st_mode))
		return fail(b, "--dir %s: not a directory", b->dir);
	if (statfs(b->dir, &sf))
		return fail(b, "--dir %s: statfs: %s", b->dir, strerror(errno));
	snprintf(b->fs, sizeof b->fs, "%s", fs_name((long)sf.f_type));
	if (!strcmp(b->fs, "tmpfs") && !b->json)
		fprintf(stderr, "ckring-bench: warning: %s is tmpfs: fsync is free there, the "
				"LMDB numbers are not a disk's\n", b->dir);
	return 0;
}

static int run_all(bench *b)
{
	bool lmdb = wanted(b, "lmdb.direct.sync") || wanted(b, "lmdb.direct.nosync") ||
		    wanted(b, "lmdb.batch.sync");
	if ((lmdb || wanted(b, "ckring.drain") || wanted(b, "ckring.durable")) && check_dir(b))
		return -1;
	for (int i = 0; i < b->n_sizes; i++)
		if (ring_benches(b, b->sizes[i]))
			return -1;
	for (int i = 0; i < b->n_sizes; i++) {
		uint32_t s = b->sizes[i];
		if (wanted(b, "lmdb.direct.sync") && lmdb_direct(b, s, true))
			return -1;
		if (wanted(b, "lmdb.direct.nosync") && lmdb_direct(b, s, false))
			return -1;
		if (wanted(b, "lmdb.batch.sync") && lmdb_batch(b, s))
			return -1;
		if (wanted(b, "ckring.drain") && bench_drain(b, s))
			return -1;
	}
	/* push -> synced at the first size only: the latency is the fsync's. */
	for (int k = 0; k < b->n_rates && wanted(b, "ckring.durable"); k++)
		if (bench_durable(b, b->sizes[0], b->rates[k]))
			return -1;
	return 0;
}

int main(int argc, char **argv)
{
	bench *b = calloc(1, sizeof *b);
	bench_hist *scratch = calloc(1, sizeof *scratch);
	machine m;
	if (!b || !scratch) {
		fputs("ckring-bench: out of memory\n", stderr);
		return 1;
	}
	int rc = parse_args(b, argc, argv);
	if (rc) {
		free(b);
		free(scratch);
		return rc < 0 ? 0 : rc;
	}
	b->ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (b->ncpu < 1)
		b->ncpu = 1;
	signal(SIGPIPE, SIG_IGN);
	machine_info(&m);
	bench_clock_calibrate(&b->clk, b->quick ? 50 : 200, scratch);
	free(scratch);
	if (run_all(b)) {
		fprintf(stderr, "ckring-bench: %s\n", b->err[0] ? b->err : "failed");
		free(b);
		return 1;
	}
	if (b->json)
		print_json(b, &m);
	else
		print_table(b, &m);
	free(b);
	return fflush(stdout) ? 1 : 0;
}
