/*
 * push_probe.c — the push path in isolation: per-op latency of what an
 * executor calls, ckr_run_message(), against the floor op (fetch-add +
 * memcpy + release store), one thread, no consumer process: when the lane
 * is full the thread itself reads it back with the raw consumer
 * (ckring_store.h) and releases it, outside the timed region. Timed with the
 * harness's instrument (clock.h). Prints the trimmed mean and the p50 per
 * op, best of 7 rounds, so that load from other jobs on a shared machine
 * cancels out. Built by make as build/bench/ckring-push-probe.
 *
 *   build/bench/ckring-push-probe [SIZE]      (default 128)
 *
 * Public API only; an op includes the event encoding (a 128 B message is a
 * 160 B event, a 176 B record in the lane).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckring.h"
#include "ckring_store.h"
#include "clock.h"
#include "hist.h"
#include "sys.h"

#define CAP (UINT64_C(1) << 20)
#define ROUNDS 7

typedef struct probe {
	_Alignas(BENCH_BLOCK) _Atomic uint64_t floor_tail;
	uint8_t *ring;
	ckr_run *run;
	ckr_consumer *co;
	uint8_t *buf;
	size_t cap;
} probe;

static void floor_op(probe *p, const void *src, uint32_t size)
{
	uint64_t need = (8 + (uint64_t)size + 7) & ~UINT64_C(7);
	uint64_t pos = atomic_fetch_add_explicit(&p->floor_tail, need, memory_order_relaxed);
	uint8_t *r = p->ring + (pos & (CAP - 1));
	memcpy(r + 8, src, size);
	atomic_store_explicit((_Atomic uint64_t *)(void *)r, pos + need, memory_order_release);
}

/* The lane is full: read it all back and release it. */
static void drain(probe *p)
{
	size_t len;
	while (ckr_consumer_read(p->co, 0, p->buf, p->cap, &len) == 0)
		;
	ckr_consumer_release(p->co, 0);
}

static int setup(probe *p, const char *name)
{
	ckr_segment_opts o = { .lanes = 1, .size = (UINT64_C(1) << 20) + CAP, .group = (gid_t)-1 };
	ckr_client *c;
	ckr_client_opts co = { .max_run_bytes = UINT64_MAX / 4 }; /* GBs into one run */
	ckr_run_spec s = { .id = "probe", .id_len = 5, .kind = CKR_KIND_SINGLE_LOOP };
	if (ckr_segment_create(name, &o) || ckr_client_attach(name, &co, &c) ||
	    ckr_consumer_open(name, &p->co)) {
		ckr_segment_unlink(name);
		return -1;
	}
	ckr_segment_unlink(name);
	p->cap = ckr_consumer_buf_size(p->co);
	p->buf = malloc(p->cap);
	p->ring = bench_shm_map(name, CAP + 70000);
	return p->buf && p->ring && ckr_run_begin(c, &s, &p->run, NULL) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	uint32_t size = argc > 1 ? (uint32_t)atoi(argv[1]) : 128;
	long n = 2000000 / (size / 128 + 1);
	char name[64];
	bench_clock clk;
	static bench_hist hist, scratch;
	probe *p = bench_block_alloc(sizeof(probe));
	if (size < 8 || size > 65536 || !p) {
		fprintf(stderr, "usage: ckring-push-probe [SIZE 8..65536]\n");
		return 2;
	}
	bench_clock_calibrate(&clk, 50, &scratch);
	snprintf(name, sizeof name, "push-probe-%d", (int)getpid());
	uint8_t *src = calloc(1, size);
	if (!src || setup(p, name)) {
		fprintf(stderr, "ckring-push-probe: set-up failed\n");
		return 1;
	}
	for (int which = 0; which < 2; which++) {
		double best_mean = 1e30, best_p50 = 1e30;
		for (int round = 0; round < ROUNDS; round++) {
			bh_reset(&hist);
			for (long i = 0; i < n; i++) {
				memcpy(src, &i, 8);
				uint64_t t0 = bench_t0();
				int rc = 0;
				if (which == 0)
					floor_op(p, src, size);
				else
					rc = ckr_run_message(p->run, src, size, NULL);
				uint64_t t1 = bench_t1();
				if (rc == -EAGAIN) { /* full: consume everything, retry */
					drain(p);
					i--;
					continue;
				}
				if (rc) {
					fprintf(stderr, "ckring-push-probe: %s\n", ckr_strerror(rc));
					return 1;
				}
				bh_record(&hist, t1 - t0);
			}
			double m = bench_ns(&clk, bh_trimmed_mean(&hist, 0.99) - clk.overhead);
			double q = bench_ns(&clk, bh_quantile(&hist, 0.5, clk.quantum) - clk.overhead);
			best_mean = m < best_mean ? m : best_mean;
			best_p50 = q < best_p50 ? q : best_p50;
		}
		printf("%-5s %5u B: trimmed mean %6.1f ns, p50 %6.1f ns\n",
		       which ? "push" : "floor", size, best_mean, best_p50);
	}
	return 0;
}
