/*
 * rings_ckring.c — ckring through its public API only (see rings.h).
 *
 * Producers: each producing process attaches a client (ckr_client_attach:
 * its own lane), each thread begins a run of its own (ckr_run_begin) and
 * pushes ckr_run_message(): what an executor calls, the event encoding
 * included. The consumer is the raw consumer of ckring_store.h: every record
 * is copied out and validated (seal, bounds, CRC) as the flusher does,
 * without a store. The segment's name lives until every actor has attached
 * (`attached`), then it is unlinked; the mappings keep it alive.
 *
 * Uses of the API that are expected to change (ckr_ticket's fields) are all
 * in ck_push().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckring.h"
#include "ckring_store.h"
#include "rings.h"

#define CK_LANES 4

/* The segment's header pages: room enough for any layout (the capacity is
 * checked after the create, through the observer). */
#define CK_HEADER_ROOM (UINT64_C(1) << 20)

int bench_ck_segment_create(const char *name, uint32_t lanes, uint64_t capacity)
{
	/* Lane capacity is the largest power of two that fits the size. */
	ckr_segment_opts o = { .lanes = lanes, .size = CK_HEADER_ROOM + lanes * capacity,
			       .group = (gid_t)-1 };
	ckr_observer *ob;
	ckr_segment_info info;
	int rc = ckr_segment_create(name, &o);
	if (rc == 0)
		rc = ckr_observer_open(name, &ob);
	if (rc == 0) {
		ckr_observer_snapshot(ob, &info, NULL, 0);
		ckr_observer_close(ob);
		rc = info.lane_capacity == capacity && info.lane_count == lanes ? 0 : -EINVAL;
	}
	if (rc && rc != -EEXIST)
		ckr_segment_unlink(name);
	return rc;
}

static int ck_create(bench_ring *r)
{
	return bench_ck_segment_create(r->name, CK_LANES, r->capacity);
}

static void ck_attached(bench_ring *r)
{
	ckr_segment_unlink(r->name); /* a crashed run leaves nothing behind */
}

static int ck_proc_open(bench_ring *r, void **proc)
{
	/* One run takes every push of a thread (GBs in a long pass): lift the
	 * per-run byte limit (1 GiB by default), which is checked either way. */
	ckr_client_opts o = { .max_run_bytes = UINT64_MAX / 4 };
	return ckr_client_attach(r->name, &o, (ckr_client **)proc);
}

static int ck_thr_open(void *proc, int idx, void **thr)
{
	ck_thr *t = bench_block_alloc(sizeof *t);
	char id[64];
	if (!t)
		return -ENOMEM;
	/* A 16-byte run id (the record size does not depend on the pid). */
	int n = snprintf(id, sizeof id, "b%08x-%06x", (unsigned)getpid(), (unsigned)idx & 0xFFFFFF);
	ckr_run_spec spec = { .id = id, .id_len = (size_t)n, .kind = CKR_KIND_SINGLE_LOOP,
			      .label = "ckring-bench" };
	int rc = ckr_run_begin(proc, &spec, &t->run, NULL);
	if (rc) {
		free(t);
		return rc;
	}
	t->record_bytes = UINT32_MAX;
	*thr = t;
	return 0;
}

static int ck_push(void *thr, const void *p, uint32_t len)
{
	ck_thr *t = thr;
	ckr_ticket tk;
	int rc = ckr_run_message(t->run, p, len, &tk);
	if (rc == 0) {
		/* The smallest step between two of our tickets is one record
		 * (another thread's record or a pad only widens it). */
		uint64_t step = tk.pos - t->last_end;
		if (t->last_end && step < t->record_bytes)
			t->record_bytes = (uint32_t)step;
		t->last_end = tk.pos;
	}
	return rc;
}

static uint32_t ck_record_bytes(void *thr)
{
	ck_thr *t = thr;
	return t->record_bytes == UINT32_MAX ? 0 : t->record_bytes;
}

static void ck_thr_close(void *thr)
{
	ck_thr *t = thr;
	ckr_run_close(t->run);
	free(t);
}

static void ck_proc_close(bench_ring *r, void *proc)
{
	ckr_client_detach(proc);
}

typedef struct ck_cons {
	ckr_consumer *co;
	uint32_t lanes, cur;
	size_t cap;
	uint8_t *buf;
} ck_cons;

static int ck_cons_open(bench_ring *r, void **cons)
{
	ck_cons *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	int rc = ckr_consumer_open(r->name, &c->co);
	if (rc) {
		free(c);
		return rc;
	}
	c->lanes = ckr_consumer_lanes(c->co);
	c->lanes = c->lanes < CK_LANES ? c->lanes : CK_LANES;
	c->cap = ckr_consumer_buf_size(c->co); /* validated in place: one copy */
	c->buf = malloc(c->cap);
	if (!c->buf) {
		ckr_consumer_close(c->co);
		free(c);
		return -ENOMEM;
	}
	*cons = c;
	return 0;
}

/* One record from the lane we are on, else from the next lane that has
 * one. */
static long ck_read(void *cons, uint64_t *corrupt)
{
	ck_cons *c = cons;
	for (uint32_t k = 0; k < c->lanes; k++) {
		size_t len;
		int rc = ckr_consumer_read(c->co, c->cur, c->buf, c->cap, &len);
		if (rc == 0 || rc == CKR_ECORRUPT) {
			if (rc)
				(*corrupt)++;
			if (ckr_consumer_unreleased(c->co, c->cur) >= BENCH_RELEASE_EVERY)
				ckr_consumer_release(c->co, c->cur);
			return 1;
		}
		c->cur = (c->cur + 1) % c->lanes; /* -ENODATA: try the next lane */
	}
	return 0;
}

static void ck_release(void *cons)
{
	ck_cons *c = cons;
	for (uint32_t i = 0; i < c->lanes; i++)
		if (ckr_consumer_unreleased(c->co, i))
			ckr_consumer_release(c->co, i);
}

static void ck_cons_close(void *cons)
{
	ck_cons *c = cons;
	ckr_consumer_close(c->co);
	free(c->buf);
	free(c);
}

static void ck_destroy(bench_ring *r)
{
	ckr_segment_unlink(r->name); /* -ENOENT once `attached` ran */
}

const ring_ops bench_ckring_ops = {
	.name = "ckring",
	.extra_per_thread = 1, /* the run's begin event */
	.create = ck_create,
	.attached = ck_attached,
	.proc_open = ck_proc_open,
	.thr_open = ck_thr_open,
	.push = ck_push,
	.thr_record_bytes = ck_record_bytes,
	.thr_close = ck_thr_close,
	.proc_close = ck_proc_close,
	.cons_open = ck_cons_open,
	.read = ck_read,
	.release = ck_release,
	.cons_close = ck_cons_close,
	.destroy = ck_destroy,
};
