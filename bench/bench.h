/*
 * bench.h — one run of ckring-bench: what to measure (the settings the CLI
 * parsed), the results measured, and the plan that runs every scenario.
 *
 * The scenarios live in their own modules (runner.c: the rings; peers.c:
 * LMDB and SQLite; scenarios_flusher.c: drain, durable, idle); each adds
 * its rows with bench_new_result(). A scenario that cannot run returns -1
 * after bench_fail() has set the one line for stderr.
 *
 * Concurrency: a bench belongs to the main thread; scenarios read it from
 * their threads and child processes but only the main thread writes it.
 */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "hist.h"

#define BENCH_MAX_SIZES 8
#define BENCH_MAX_RATES 8
#define BENCH_MAX_RESULTS 160
#define BENCH_TIMEOUT_S 60 /* a run that makes no progress this long failed */

enum { BENCH_MODE_AUTO, BENCH_MODE_CONCURRENT, BENCH_MODE_PHASED };

/* Every benchmark name, in the order they are listed (--only, --help). */
extern const char *const bench_names[];
extern const int bench_n_names;

typedef struct result {
	char name[32];
	uint32_t size;
	int threads, procs;
	double ops_per_s, p50, p99, p999, max, mean; /* ns */
	uint64_t samples, refused, refused_tp, waits;
	const char *mode;       /* concurrent | phased | open-loop | serial | idle */
	const char *latency_of; /* op | record | batch | event | none */
	uint32_t batch;
	uint32_t record_bytes;  /* ring bytes per record, when known */
	double rate;            /* offered events/s (open loop) */
	double cpu_pct;         /* ckring.idle: share of one core, % */
	double wakeups_per_s;   /* ckring.idle */
	uint64_t runs;          /* recovery.*: interrupted runs */
	double list_ns, first_ns, last_ns; /* recovery.*: list, first, last resumed */
	bool pending;
	bool no_latency;        /* no latency figures (ckring.idle) */
	char note[200];
} result;

typedef struct bench {
	bench_clock clk;
	bool json, quick, pin;
	double seconds;
	uint64_t ops;  /* 0: run by time */
	int threads;   /* 0: all; else only ring runs of this many threads */
	int mode;      /* ring runs: BENCH_MODE_* */
	uint32_t sizes[BENCH_MAX_SIZES];
	int n_sizes;
	double rates[BENCH_MAX_RATES];
	int n_rates;
	bool only[32]; /* by index into bench_names */
	const char *dir;
	char fs[32];
	int ncpu;
	unsigned seq;  /* makes names unique within the run */
	result res[BENCH_MAX_RESULTS];
	int n_res;
	char err[256]; /* the one line for stderr when a benchmark fails */
} bench;

/* Set the error line. @return -1, for `return bench_fail(...)`. */
int bench_fail(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Index of name in bench_names, or -1. */
int bench_name_index(const char *name);

/* Is benchmark `name` selected (--only)? */
bool bench_wanted(const bench *b, const char *name);

/* A new, zeroed row. NULL when the table is full. */
result *bench_new_result(bench *b, const char *name, uint32_t size, int threads, int procs);

/* Latency statistics from raw spans (ticks); net: take the timer's own cost
 * off every statistic. */
void bench_fill_latency(const bench *b, result *r, const bench_hist *h, bool net);

/* Phase lengths: a warm-up (discarded), the timed pass (frac 1.0) and the
 * untimed throughput pass (frac 0.5); with --ops a pass is bounded by op
 * count instead (run_ticks is then effectively unbounded). */
uint64_t bench_warm_ticks(const bench *b);
uint64_t bench_run_ticks(const bench *b, double frac);

/* A fresh directory under --dir for one measurement's database. @return 0,
 * or -1 with the error line set. */
int bench_tmpdir(bench *b, char *out, size_t n);

/* Check --dir and record its file system (b->fs). @return 0 or -1. */
int bench_check_dir(bench *b);

/* Run every selected benchmark in the documented order. @return 0 or -1. */
int bench_run_all(bench *b);

#endif /* BENCH_BENCH_H */
