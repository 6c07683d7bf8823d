/*
 * rings_mutex.c — a ring guarded by a PTHREAD_PROCESS_SHARED mutex (see
 * rings.h). head, tail and the data are guarded by the mutex; the lock, the
 * producers' tail and the consumer's head are in blocks of their own
 * (layout.h). Record: u64 len, then the payload; records run into the slack
 * past C like the floor's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "rings.h"

typedef struct mx_ctx {
	mx_hdr *h;
	uint8_t *data;
	uint64_t cap, pos, tail, released;
	uint8_t buf[BENCH_MAX_PAYLOAD + 64];
} mx_ctx;

static int mx_create(bench_ring *r)
{
	void *p = bench_shm_map(r->name, bench_flat_ring_bytes(r));
	if (!p)
		return -errno;
	mx_hdr *h = p;
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (rc == 0)
		rc = pthread_mutex_init(&h->m, &a);
	pthread_mutexattr_destroy(&a);
	if (rc) {
		munmap(p, bench_flat_ring_bytes(r));
		return -rc;
	}
	r->impl = p;
	return 0;
}

static int mx_proc_open(bench_ring *r, void **proc)
{
	*proc = r;
	return 0;
}

static int mx_thr_open(void *proc, int idx, void **thr)
{
	bench_ring *r = proc;
	mx_ctx *c = bench_block_alloc((sizeof(mx_ctx) + BENCH_BLOCK - 1) & ~(size_t)(BENCH_BLOCK - 1));
	if (!c)
		return -ENOMEM;
	c->h = r->impl;
	c->data = (uint8_t *)r->impl + BENCH_DATA_OFFSET;
	c->cap = r->capacity;
	*thr = c;
	return 0;
}

static int mx_push(void *thr, const void *p, uint32_t len)
{
	mx_ctx *c = thr;
	uint64_t need = bench_align8(8 + (uint64_t)len), l64 = len;
	pthread_mutex_lock(&c->h->m);
	if (c->h->tail + need - c->h->head > c->cap) {
		pthread_mutex_unlock(&c->h->m);
		return -EAGAIN;
	}
	uint8_t *rec = c->data + (c->h->tail & (c->cap - 1));
	memcpy(rec, &l64, 8);
	memcpy(rec + 8, p, len);
	c->h->tail += need;
	pthread_mutex_unlock(&c->h->m);
	return 0;
}

static void mx_thr_close(void *thr)
{
	free(thr);
}

static void mx_proc_close(bench_ring *r, void *proc)
{
}

static int mx_cons_open(bench_ring *r, void **cons)
{
	return mx_thr_open(r, 0, cons);
}

static void mx_release(void *cons)
{
	mx_ctx *c = cons;
	if (c->pos != c->released) {
		pthread_mutex_lock(&c->h->m);
		c->h->head = c->pos;
		pthread_mutex_unlock(&c->h->m);
		c->released = c->pos;
	}
}

/* Take the tail under the lock when we reach the last one we took, copy a
 * record out without it (nobody writes below tail until head moves). */
static long mx_read(void *cons, uint64_t *corrupt)
{
	mx_ctx *c = cons;
	if (c->pos == c->tail) {
		pthread_mutex_lock(&c->h->m);
		c->tail = c->h->tail;
		pthread_mutex_unlock(&c->h->m);
		if (c->pos == c->tail)
			return 0;
	}
	uint8_t *rec = c->data + (c->pos & (c->cap - 1));
	uint64_t len;
	memcpy(&len, rec, 8);
	if (len > BENCH_MAX_PAYLOAD) {
		(*corrupt)++;
		c->pos = c->tail;
		return 1;
	}
	memcpy(c->buf, rec + 8, len);
	c->pos += bench_align8(8 + len);
	if (c->pos - c->released >= BENCH_RELEASE_EVERY)
		mx_release(c);
	return 1;
}

static void mx_destroy(bench_ring *r)
{
	if (r->impl) {
		pthread_mutex_destroy(&((mx_hdr *)r->impl)->m);
		munmap(r->impl, bench_flat_ring_bytes(r));
	}
	r->impl = NULL;
}

const ring_ops bench_mutex_ops = {
	.name = "mutex_ring",
	.header_bytes = 8,
	.create = mx_create,
	.proc_open = mx_proc_open,
	.thr_open = mx_thr_open,
	.push = mx_push,
	.thr_close = mx_thr_close,
	.proc_close = mx_proc_close,
	.cons_open = mx_cons_open,
	.read = mx_read,
	.release = mx_release,
	.cons_close = mx_thr_close,
	.destroy = mx_destroy,
};
