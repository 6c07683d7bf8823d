/*
 * metrics_publish.c — the measurement behind the flusher's metrics design
 * (BENCHMARKS.md, "Metrics"; persist/flusher_metrics.h): what publishing a
 * batch's numbers costs the drain thread, with a reader in another thread,
 *
 *   atomics  what the engine does: single-writer 64-bit values, relaxed load +
 *            relaxed store each (no locked instruction), ~20 counters and two
 *            histogram observations per batch; readers load them relaxed;
 *   rcu      the alternative: an RCU-protected snapshot (liburcu, memb
 *            flavour): per batch the writer copies the snapshot, updates it,
 *            rcu_assign_pointer()s it and call_rcu()s the old one; readers
 *            rcu_read_lock / rcu_dereference / copy / unlock.
 *
 * Each runs N publications with a reader thread reading 10 times a second
 * (a scraper) and again with a reader spinning (the worst case: every read
 * pulls the writer's lines). Prints ns per publication.
 *
 * Build (not part of `make`): cc -O2 -pthread -I/usr/include/$(gcc
 *        -print-multiarch) bench/metrics/metrics_publish.c
 *        -lurcu-memb -lurcu-common -o /tmp/metrics_publish
 * usage: metrics_publish [N]   (default 10000000)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu/urcu-memb.h>

#define N_COUNTERS 20
#define N_BUCKETS 16

typedef struct snap {
	uint64_t c[N_COUNTERS];
	uint64_t h1[N_BUCKETS], h2[N_BUCKETS];
	uint64_t sum1, sum2, n1, n2;
	struct rcu_head rcu;
} snap;

typedef struct amet {
	_Atomic uint64_t c[N_COUNTERS];
	_Atomic uint64_t h1[N_BUCKETS], h2[N_BUCKETS];
	_Atomic uint64_t sum1, sum2, n1, n2;
} amet;

static amet A;
static snap *_Atomic unused_guard;
static snap *cur;              /* RCU-protected */
static atomic_bool stop;
static atomic_int reader_mode; /* 0: 10 Hz, 1: spin */
static atomic_uint_fast64_t reads;
static volatile uint64_t sink;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void add(_Atomic uint64_t *a, uint64_t v)
{
	atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static void publish_atomics(uint64_t i)
{
	for (int k = 0; k < N_COUNTERS; k++)
		atomic_store_explicit(&A.c[k], i + (uint64_t)k, memory_order_relaxed);
	add(&A.h1[i % N_BUCKETS], 1);
	add(&A.h2[(i >> 3) % N_BUCKETS], 1);
	add(&A.sum1, i & 1023);
	add(&A.sum2, 64);
	add(&A.n1, 1);
	add(&A.n2, 1);
}

static void read_atomics(void)
{
	uint64_t s = 0;
	for (int k = 0; k < N_COUNTERS; k++)
		s += atomic_load_explicit(&A.c[k], memory_order_relaxed);
	for (int k = 0; k < N_BUCKETS; k++)
		s += atomic_load_explicit(&A.h1[k], memory_order_relaxed) +
		     atomic_load_explicit(&A.h2[k], memory_order_relaxed);
	sink = s;
}

static void free_snap(struct rcu_head *h)
{
	free(caa_container_of(h, snap, rcu));
}

static void publish_rcu(uint64_t i)
{
	snap *old = cur, *n = malloc(sizeof *n);
	memcpy(n, old, sizeof *n);
	for (int k = 0; k < N_COUNTERS; k++)
		n->c[k] = i + (uint64_t)k;
	n->h1[i % N_BUCKETS]++;
	n->h2[(i >> 3) % N_BUCKETS]++;
	n->sum1 += i & 1023;
	n->sum2 += 64;
	n->n1++;
	n->n2++;
	rcu_assign_pointer(cur, n);
	urcu_memb_call_rcu(&old->rcu, free_snap);
}

static void read_rcu(void)
{
	snap copy;
	urcu_memb_read_lock();
	snap *s = rcu_dereference(cur);
	memcpy(&copy, s, sizeof copy);
	urcu_memb_read_unlock();
	sink = copy.c[0] + copy.h1[1];
}

static int use_rcu;

static void *reader(void *arg)
{
	(void)arg;
	if (use_rcu)
		urcu_memb_register_thread();
	while (!atomic_load(&stop)) {
		if (use_rcu)
			read_rcu();
		else
			read_atomics();
		atomic_fetch_add(&reads, 1);
		if (atomic_load(&reader_mode) == 0) {
			struct timespec ts = { 0, 100000000 };
			nanosleep(&ts, NULL);
		}
	}
	if (use_rcu)
		urcu_memb_unregister_thread();
	return NULL;
}

static double run(int rcu, int mode, uint64_t n)
{
	pthread_t t;
	use_rcu = rcu;
	atomic_store(&stop, false);
	atomic_store(&reader_mode, mode);
	atomic_store(&reads, 0);
	pthread_create(&t, NULL, reader, NULL);
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		if (rcu)
			publish_rcu(i);
		else
			publish_atomics(i);
	}
	uint64_t t1 = now_ns();
	atomic_store(&stop, true);
	pthread_join(t, NULL);
	return (double)(t1 - t0) / (double)n;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
	(void)unused_guard;
	urcu_memb_register_thread();
	cur = calloc(1, sizeof *cur);
	printf("publications: %llu per case (one per committed batch in the engine)\n",
	       (unsigned long long)n);
	for (int rep = 0; rep < 3; rep++) {
		double a10 = run(0, 0, n), aspin = run(0, 1, n);
		double r10 = run(1, 0, n / 10), rspin = run(1, 1, n / 10);
		printf("rep %d: atomics %.1f ns (10 Hz reader) %.1f ns (spinning reader); "
		       "rcu %.1f ns (10 Hz reader) %.1f ns (spinning reader)\n",
		       rep + 1, a10, aspin, r10, rspin);
	}
	urcu_memb_barrier();
	urcu_memb_unregister_thread();
	return 0;
}
