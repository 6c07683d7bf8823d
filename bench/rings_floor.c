/*
 * rings_floor.c — the floor: fetch-add + memcpy + release store of a seal
 * word (see rings.h).
 *
 * Layout: floor_hdr (layout.h: tail and head in blocks of their own) on the
 * first page, data from BENCH_DATA_OFFSET: capacity C bytes plus a slack of
 * one largest record, so a record never wraps (it may run past C into the
 * slack; the next one starts again at index 0). Record at position p:
 * +0 seal = p + len (never 0, and a seal of an earlier lap is below p, so it
 * is never taken for this one), +8 payload.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "clock.h"
#include "rings.h"

static int floor_create(bench_ring *r)
{
	void *p = bench_shm_map(r->name, bench_flat_ring_bytes(r));
	if (!p)
		return -errno;
	r->impl = p;
	return 0;
}

static int floor_proc_open(bench_ring *r, void **proc)
{
	*proc = r;
	return 0;
}

static int floor_thr_open(void *proc, int idx, void **thr)
{
	bench_ring *r = proc;
	floor_thr *t = bench_block_alloc(sizeof *t);
	if (!t)
		return -ENOMEM;
	t->h = r->impl;
	t->data = (uint8_t *)r->impl + BENCH_DATA_OFFSET;
	t->cap = r->capacity;
	*thr = t;
	return 0;
}

static int floor_push(void *thr, const void *p, uint32_t len)
{
	floor_thr *t = thr;
	uint64_t need = bench_align8(8 + (uint64_t)len);
	/* relaxed: the claim orders nothing; the seal's release publishes. */
	uint64_t pos = atomic_fetch_add_explicit(&t->h->tail, need, memory_order_relaxed);
	if (pos + need - t->head_cache > t->cap) {
		t->waits++; /* ops that had to wait, not spins */
		for (;;) {
			/* acquire: pairs with the consumer's release of head:
			 * it is done reading below it. */
			t->head_cache = atomic_load_explicit(&t->h->head, memory_order_acquire);
			if (pos + need - t->head_cache <= t->cap)
				break;
			bench_relax();
		}
	}
	uint8_t *rec = t->data + (pos & (t->cap - 1));
	memcpy(rec + 8, p, len);
	/* release: pairs with the consumer's acquire of the seal. */
	atomic_store_explicit((_Atomic uint64_t *)(void *)rec, pos + need, memory_order_release);
	return 0;
}

static uint64_t floor_thr_waits(void *thr)
{
	return ((floor_thr *)thr)->waits;
}

static void floor_thr_close(void *thr)
{
	free(thr);
}

static void floor_proc_close(bench_ring *r, void *proc)
{
}

typedef struct floor_cons {
	floor_hdr *h;
	uint8_t *data;
	uint64_t cap, pos, released;
	uint8_t buf[BENCH_MAX_PAYLOAD + 64];
} floor_cons;

static int floor_cons_open(bench_ring *r, void **cons)
{
	floor_cons *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->h = r->impl;
	c->data = (uint8_t *)r->impl + BENCH_DATA_OFFSET;
	c->cap = r->capacity;
	*cons = c;
	return 0;
}

static void floor_release(void *cons)
{
	floor_cons *c = cons;
	if (c->pos != c->released) {
		/* release: pairs with the producers' acquire of head. */
		atomic_store_explicit(&c->h->head, c->pos, memory_order_release);
		c->released = c->pos;
	}
}

static long floor_read(void *cons, uint64_t *corrupt)
{
	floor_cons *c = cons;
	uint64_t max_need = bench_align8(8 + BENCH_MAX_PAYLOAD);
	uint8_t *rec = c->data + (c->pos & (c->cap - 1));
	/* acquire: pairs with the producer's release of the seal. */
	uint64_t w = atomic_load_explicit((_Atomic uint64_t *)(void *)rec, memory_order_acquire);
	uint64_t need = w - c->pos;
	if (need < 8 || need > max_need)
		return 0; /* not yet written (a stale seal is below pos) */
	memcpy(c->buf, rec + 8, need - 8);
	c->pos += need;
	if (c->pos - c->released >= BENCH_RELEASE_EVERY)
		floor_release(c);
	return 1;
}

static void floor_cons_close(void *cons)
{
	free(cons);
}

static void floor_destroy(bench_ring *r)
{
	if (r->impl)
		munmap(r->impl, bench_flat_ring_bytes(r));
	r->impl = NULL;
}

const ring_ops bench_floor_ops = {
	.name = "floor",
	.header_bytes = 8,
	.create = floor_create,
	.proc_open = floor_proc_open,
	.thr_open = floor_thr_open,
	.push = floor_push,
	.thr_waits = floor_thr_waits,
	.thr_close = floor_thr_close,
	.proc_close = floor_proc_close,
	.cons_open = floor_cons_open,
	.read = floor_read,
	.release = floor_release,
	.cons_close = floor_cons_close,
	.destroy = floor_destroy,
};
