/*
 * bench_rings.h — the rings ckring-bench compares, behind one interface:
 *
 *   floor       fetch-add on a shared tail + memcpy + release store of a seal
 *               word, in a MAP_SHARED POSIX shm mapping: the physical floor of
 *               any multi-producer shared-memory ring (no checksum, no
 *               lap-proof header, no refusal: a full ring makes it wait).
 *   ckring      a real lane of a real segment: ckr_lane_push(); the consumer
 *               is ckr_lane_read() + ckr_lane_release() (no LMDB).
 *   mutex_ring  a ring guarded by a PTHREAD_PROCESS_SHARED mutex in shm.
 *   pipe        write() to a pipe read by a daemon process.
 *
 * Every ring has capacity BENCH_RING_CAP (the default lane capacity, 1 MiB),
 * so all of them lap the same way. Consumers run in their own process and
 * copy every record out to a private buffer, as a flusher would; they
 * publish their head every RELEASE_EVERY bytes and whenever they run dry.
 *
 * Header-only; included by tools/ckring-bench.c alone.
 * Concurrency: push() may be called by the threads of one producing process
 * at once (each with its own thr handle); consume() by the one consumer.
 */
#ifndef CKR_BENCH_RINGS_H
#define CKR_BENCH_RINGS_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include "ckring.h"
#include "ring/lane.h"
#include "shm/proc.h"
#include "shm/segment.h"
#include "tools/bench_util.h"

#define BENCH_RING_CAP CKR_DEFAULT_LANE_CAPACITY
#define BENCH_MAX_PAYLOAD (UINT32_C(64) << 10)
#define RELEASE_EVERY (UINT64_C(64) << 10)
#define DATA_OFFSET 4096 /* ring data starts on its own page */

typedef struct bench_ring bench_ring;

typedef struct ring_ops {
	const char *name;
	/* Parent, before any fork. @return 0; -errno. */
	int (*create)(bench_ring *r);
	/* Once in each producing process. @return 0; -errno. */
	int (*proc_open)(bench_ring *r, void **proc);
	/* Once in each producing thread; *thr is owned by that thread. */
	int (*thr_open)(void *proc, void **thr);
	/* @return 0; -EAGAIN full (nothing pushed); another -errno. */
	int (*push)(void *thr, const void *p, uint32_t len);
	/* Pushes that had to wait for room (floor only; may be NULL). */
	uint64_t (*thr_waits)(void *thr);
	void (*thr_close)(void *thr);
	void (*proc_close)(bench_ring *r, void *proc);
	/* In the consumer process. */
	int (*cons_open)(bench_ring *r, void **cons);
	/* Consume what is there: records consumed (0 = nothing now), or -1
	 * when the ring is closed and empty. *corrupt counts bad records. */
	long (*consume)(void *cons, uint64_t *corrupt);
	/* Parent, after every producer finished (may be NULL). */
	void (*end_of_input)(bench_ring *r);
	void (*destroy)(bench_ring *r);
} ring_ops;

struct bench_ring {
	const ring_ops *ops;
	uint32_t size;     /* payload bytes per push */
	uint64_t capacity; /* ring bytes */
	char name[64];     /* shm name */
	void *impl;
};

static inline uint64_t br_align8(uint64_t v)
{
	return (v + 7) & ~UINT64_C(7);
}

/* ------------------------------------------------------------------ */
/* floor                                                               */
/* ------------------------------------------------------------------ */

/*
 * Layout: tail on line 0, head on line 1, data from DATA_OFFSET: capacity C
 * bytes plus a slack of one largest record, so a record never wraps (it may
 * run past C into the slack; the next one starts again at index 0).
 * Record at position p: +0 seal = p + len (never 0, and a seal of an
 * earlier lap is below p, so it is never taken for this one), +8 payload.
 */
typedef struct floor_hdr {
	_Alignas(64) _Atomic uint64_t tail;
	_Alignas(64) _Atomic uint64_t head;
} floor_hdr;

typedef struct floor_thr {
	floor_hdr *h;
	uint8_t *data;
	uint64_t cap, head_cache, waits;
} floor_thr;

static size_t floor_bytes(const bench_ring *r)
{
	return DATA_OFFSET + r->capacity + br_align8(8 + BENCH_MAX_PAYLOAD);
}

static int floor_create(bench_ring *r)
{
	void *p = bench_shm_map(r->name, floor_bytes(r));
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

static int floor_thr_open(void *proc, void **thr)
{
	bench_ring *r = proc;
	floor_thr *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	t->h = r->impl;
	t->data = (uint8_t *)r->impl + DATA_OFFSET;
	t->cap = r->capacity;
	*thr = t;
	return 0;
}

static int floor_push(void *thr, const void *p, uint32_t len)
{
	floor_thr *t = thr;
	uint64_t need = br_align8(8 + (uint64_t)len);
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

static void free_thr(void *thr)
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
	c->data = (uint8_t *)r->impl + DATA_OFFSET;
	c->cap = r->capacity;
	*cons = c;
	return 0;
}

static long floor_consume(void *cons, uint64_t *corrupt)
{
	floor_cons *c = cons;
	long n = 0;
	uint64_t max_need = br_align8(8 + BENCH_MAX_PAYLOAD);
	for (;;) {
		uint8_t *rec = c->data + (c->pos & (c->cap - 1));
		/* acquire: pairs with the producer's release of the seal. */
		uint64_t w = atomic_load_explicit((_Atomic uint64_t *)(void *)rec,
						  memory_order_acquire);
		uint64_t need = w - c->pos;
		if (need < 8 || need > max_need)
			break; /* not yet written (a stale seal is below pos) */
		memcpy(c->buf, rec + 8, need - 8);
		c->pos += need;
		n++;
		if (c->pos - c->released >= RELEASE_EVERY) {
			/* release: pairs with the producers' acquire of head. */
			atomic_store_explicit(&c->h->head, c->pos, memory_order_release);
			c->released = c->pos;
		}
	}
	if (c->pos != c->released) {
		atomic_store_explicit(&c->h->head, c->pos, memory_order_release);
		c->released = c->pos;
	}
	return n;
}

static void floor_destroy(bench_ring *r)
{
	if (r->impl)
		munmap(r->impl, floor_bytes(r));
	r->impl = NULL;
}

static const ring_ops floor_ops = {
	.name = "floor",
	.create = floor_create,
	.proc_open = floor_proc_open,
	.thr_open = floor_thr_open,
	.push = floor_push,
	.thr_waits = floor_thr_waits,
	.thr_close = free_thr,
	.proc_close = floor_proc_close,
	.cons_open = floor_cons_open,
	.consume = floor_consume,
	.destroy = floor_destroy,
};

/* ------------------------------------------------------------------ */
/* ckring: a real segment lane                                         */
/* ------------------------------------------------------------------ */

#define CK_LANES 4

typedef struct ck_proc {
	ckr_segment seg; /* the producer process's own handle (its lane lock) */
	ckr_lane lane;
	uint64_t token;
} ck_proc;

static int ck_create(bench_ring *r)
{
	ckr_segment *seg = calloc(1, sizeof *seg);
	if (!seg)
		return -ENOMEM;
	ckr_segment_opts o = { .lanes = CK_LANES, .group = (gid_t)-1 };
	ckr_seg_geometry g;
	ckr_segment_geometry(&o, &g);
	o.size = g.data_offset + CK_LANES * r->capacity; /* header pages + lanes */
	int rc = ckr_segment_geometry(&o, &g);
	if (rc == 0 && g.lane_capacity != r->capacity)
		rc = -EINVAL;
	if (rc == 0)
		rc = ckr_segment_create(r->name, &o);
	if (rc == 0) {
		/* Children inherit the mapping (the consumer reads through
		 * it); producers attach their own handle by name. */
		rc = ckr_segment_attach(r->name, false, seg);
		if (rc)
			ckr_segment_unlink(r->name);
	}
	if (rc) {
		free(seg);
		return rc;
	}
	r->impl = seg;
	return 0;
}

static int ck_proc_open(bench_ring *r, void **proc)
{
	ck_proc *p = calloc(1, sizeof *p);
	uint32_t idx;
	if (!p)
		return -ENOMEM;
	ckr_identity id;
	int rc = ckr_proc_self_identity(&id);
	if (rc == 0)
		rc = ckr_segment_attach(r->name, false, &p->seg);
	if (rc == 0) {
		rc = ckr_lane_acquire(&p->seg, &id, 0, &idx);
		if (rc)
			ckr_segment_detach(&p->seg);
	}
	if (rc) {
		free(p);
		return rc;
	}
	p->token = id.token;
	ckr_lane_view(&p->seg, idx, &p->lane);
	*proc = p;
	return 0;
}

/* Threads of one process share its lane (the lane is MPSC). */
static int ck_thr_open(void *proc, void **thr)
{
	*thr = &((ck_proc *)proc)->lane;
	return 0;
}

static int ck_push(void *thr, const void *p, uint32_t len)
{
	uint64_t end;
	return ckr_lane_push(thr, p, len, &end);
}

static void ck_thr_close(void *thr)
{
}

static void ck_proc_close(bench_ring *r, void *proc)
{
	ck_proc *p = proc;
	ckr_lane_detach(&p->seg, &p->lane, p->token);
	ckr_segment_detach(&p->seg);
	free(p);
}

typedef struct ck_cons {
	ckr_lane lane[CK_LANES];
	uint64_t pos[CK_LANES], released[CK_LANES];
	uint32_t n_lanes;
	size_t cap;
	uint8_t *buf;
} ck_cons;

static int ck_cons_open(bench_ring *r, void **cons)
{
	const ckr_segment *seg = r->impl;
	ck_cons *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->n_lanes = seg->lane_count < CK_LANES ? seg->lane_count : CK_LANES;
	c->cap = (size_t)seg->max_record + CKR_REC_HEADER;
	c->buf = malloc(c->cap);
	if (!c->buf) {
		free(c);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < c->n_lanes; i++) {
		ckr_lane_view(seg, i, &c->lane[i]);
		c->pos[i] = c->released[i] = ckr_lane_head(&c->lane[i]);
	}
	*cons = c;
	return 0;
}

static long ck_consume(void *cons, uint64_t *corrupt)
{
	ck_cons *c = cons;
	long n = 0;
	for (uint32_t i = 0; i < c->n_lanes; i++) {
		ckr_lane_record rec;
		for (;;) {
			ckr_lane_read(&c->lane[i], c->pos[i], false, c->buf, c->cap, &rec);
			if (rec.status == CKR_READ_RECORD)
				n++;
			else if (rec.status == CKR_READ_CORRUPT)
				(*corrupt)++;
			else
				break; /* EMPTY, or WAIT: a producer is writing */
			c->pos[i] = rec.next;
			if (c->pos[i] - c->released[i] >= RELEASE_EVERY) {
				ckr_lane_release(&c->lane[i], c->pos[i], c->pos[i]);
				c->released[i] = c->pos[i];
			}
		}
		if (c->pos[i] != c->released[i]) {
			ckr_lane_release(&c->lane[i], c->pos[i], c->pos[i]);
			c->released[i] = c->pos[i];
		}
	}
	return n;
}

static void ck_destroy(bench_ring *r)
{
	if (r->impl) {
		ckr_segment_detach(r->impl);
		ckr_segment_unlink(r->name);
		free(r->impl);
	}
	r->impl = NULL;
}

static const ring_ops ckring_ops = {
	.name = "ckring",
	.create = ck_create,
	.proc_open = ck_proc_open,
	.thr_open = ck_thr_open,
	.push = ck_push,
	.thr_close = ck_thr_close,
	.proc_close = ck_proc_close,
	.cons_open = ck_cons_open,
	.consume = ck_consume,
	.destroy = ck_destroy,
};

/* ------------------------------------------------------------------ */
/* mutex_ring                                                          */
/* ------------------------------------------------------------------ */

/* head, tail and the data are guarded by the mutex. Record: u64 len, then
 * the payload; records run into the slack past C like the floor's. */
typedef struct mx_hdr {
	_Alignas(64) pthread_mutex_t m;
	uint64_t head, tail;
} mx_hdr;

typedef struct mx_ctx {
	mx_hdr *h;
	uint8_t *data;
	uint64_t cap, pos;
	uint8_t buf[BENCH_MAX_PAYLOAD + 64];
} mx_ctx;

static int mx_create(bench_ring *r)
{
	void *p = bench_shm_map(r->name, floor_bytes(r));
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
		munmap(p, floor_bytes(r));
		return -rc;
	}
	r->impl = p;
	return 0;
}

static int mx_thr_open(void *proc, void **thr)
{
	bench_ring *r = proc;
	mx_ctx *c = malloc(sizeof *c);
	if (!c)
		return -ENOMEM;
	c->h = r->impl;
	c->data = (uint8_t *)r->impl + DATA_OFFSET;
	c->cap = r->capacity;
	c->pos = 0;
	*thr = c;
	return 0;
}

static int mx_push(void *thr, const void *p, uint32_t len)
{
	mx_ctx *c = thr;
	uint64_t need = br_align8(8 + (uint64_t)len), l64 = len;
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

static int mx_cons_open(bench_ring *r, void **cons)
{
	return mx_thr_open(r, cons);
}

/* Take the tail under the lock, copy the records out without it (nobody
 * writes below tail until head moves), then move head under the lock. */
static long mx_consume(void *cons, uint64_t *corrupt)
{
	mx_ctx *c = cons;
	long n = 0;
	pthread_mutex_lock(&c->h->m);
	uint64_t t = c->h->tail;
	pthread_mutex_unlock(&c->h->m);
	while (c->pos < t) {
		uint8_t *rec = c->data + (c->pos & (c->cap - 1));
		uint64_t len;
		memcpy(&len, rec, 8);
		if (len > BENCH_MAX_PAYLOAD) {
			(*corrupt)++;
			c->pos = t;
			break;
		}
		memcpy(c->buf, rec + 8, len);
		c->pos += br_align8(8 + len);
		n++;
	}
	if (n) {
		pthread_mutex_lock(&c->h->m);
		c->h->head = c->pos;
		pthread_mutex_unlock(&c->h->m);
	}
	return n;
}

static void mx_destroy(bench_ring *r)
{
	if (r->impl) {
		pthread_mutex_destroy(&((mx_hdr *)r->impl)->m);
		munmap(r->impl, floor_bytes(r));
	}
	r->impl = NULL;
}

static const ring_ops mutex_ops = {
	.name = "mutex_ring",
	.create = mx_create,
	.proc_open = floor_proc_open,
	.thr_open = mx_thr_open,
	.push = mx_push,
	.thr_close = free_thr,
	.proc_close = floor_proc_close,
	.cons_open = mx_cons_open,
	.consume = mx_consume,
	.destroy = mx_destroy,
};

/* ------------------------------------------------------------------ */
/* pipe                                                                */
/* ------------------------------------------------------------------ */

typedef struct pipe_ring {
	int fd[2];
	long pipe_size;
} pipe_ring;

typedef struct pipe_cons {
	int fd;
	uint32_t size;
	uint64_t bytes, counted;
	uint8_t buf[1 << 20];
} pipe_cons;

static int pipe_create(bench_ring *r)
{
	pipe_ring *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	if (pipe2(p->fd, O_CLOEXEC)) {
		int e = errno;
		free(p);
		return -e;
	}
	/* As large as the other rings, where the system allows it. */
	(void)fcntl(p->fd[1], F_SETPIPE_SZ, (int)r->capacity);
	p->pipe_size = fcntl(p->fd[1], F_GETPIPE_SZ);
	r->impl = p;
	return 0;
}

static int pipe_proc_open(bench_ring *r, void **proc)
{
	*proc = &((pipe_ring *)r->impl)->fd[1];
	return 0;
}

static int pipe_thr_open(void *proc, void **thr)
{
	*thr = proc;
	return 0;
}

static int pipe_push(void *thr, const void *p, uint32_t len)
{
	int fd = *(int *)thr;
	const uint8_t *b = p;
	while (len) { /* a write above PIPE_BUF may be split */
		ssize_t n = write(fd, b, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += n;
		len -= (uint32_t)n;
	}
	return 0;
}

static int pipe_cons_open(bench_ring *r, void **cons)
{
	pipe_ring *p = r->impl;
	pipe_cons *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	close(p->fd[1]); /* the consumer's copy: EOF comes when the producer closes */
	c->fd = p->fd[0];
	c->size = r->size;
	*cons = c;
	return 0;
}

static long pipe_consume(void *cons, uint64_t *corrupt)
{
	pipe_cons *c = cons;
	ssize_t n = read(c->fd, c->buf, sizeof c->buf);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	c->bytes += (uint64_t)n;
	uint64_t recs = c->bytes / c->size;
	long got = (long)(recs - c->counted);
	c->counted = recs;
	return got;
}

static void pipe_end(bench_ring *r)
{
	pipe_ring *p = r->impl;
	if (p->fd[1] >= 0)
		close(p->fd[1]);
	p->fd[1] = -1;
}

static void pipe_destroy(bench_ring *r)
{
	pipe_ring *p = r->impl;
	if (p) {
		pipe_end(r);
		close(p->fd[0]);
		free(p);
	}
	r->impl = NULL;
}

static const ring_ops pipe_ops = {
	.name = "pipe",
	.create = pipe_create,
	.proc_open = pipe_proc_open,
	.thr_open = pipe_thr_open,
	.push = pipe_push,
	.thr_close = ck_thr_close,
	.proc_close = floor_proc_close,
	.cons_open = pipe_cons_open,
	.consume = pipe_consume,
	.end_of_input = pipe_end,
	.destroy = pipe_destroy,
};

#endif /* CKR_BENCH_RINGS_H */
