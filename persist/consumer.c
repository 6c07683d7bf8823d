/*
 * consumer.c — the raw consumer of include/ckring_store.h: the flusher's
 * read side (ring/PROTOCOL.md C1..C7, R1) without a store. It takes the
 * flusher slot, reads and validates records with ckr_lane_read_hinted()
 * exactly as the flusher does, and moves a lane's head when the caller releases it.
 *
 * Per lane it keeps the read position `pos` and the published head
 * `released` (pos >= released; tail - released <= capacity, enforced by the
 * producers against the head we publish). Nothing is persisted: this is not
 * exactly-once, and the header says so.
 *
 * Concurrency: one consumer per segment (the flusher slot's kernel lock);
 * a ckr_consumer is used by one thread at a time. Producers run alongside.
 */
#include "ckring_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ring/lane.h"
#include "shm/clock.h"
#include "shm/proc.h"
#include "shm/segment.h"

/* How old a cached "the tenure is not gone" verdict may be: a lane stuck
 * behind an open claim is re-probed every 50 ms, an empty one every second
 * (as the flusher does). An empty lane looks at the clock only every
 * IDLE_CHECK_EVERY empty reads, so a polling consumer stays cheap. */
#define STUCK_LIVENESS_NS (UINT64_C(50) * 1000000)
#define IDLE_LIVENESS_NS (UINT64_C(1000) * 1000000)
#define IDLE_CHECK_EVERY 256

typedef struct consumer_lane {
	ckr_lane lane;
	uint64_t pos;         /* next read */
	uint64_t released;    /* head we published */
	uint64_t records;     /* records read since the last release */
	uint64_t free_after;  /* drained with its tenure gone: free at release */
	uint64_t tail_hint;   /* the last tail seen (ckr_lane_read_hinted) */
	/* G, cached: the verdict on tenure `seen` (owner word and
	 * generation), taken before the reads that use it (C0); "gone" is
	 * final for that tenure, which cannot change until we free the lane. */
	ckr_tenure seen;
	uint64_t owner_checked_ns;
	uint32_t empties;
	bool gone;
} consumer_lane;

struct ckr_consumer {
	ckr_segment seg;
	uint64_t token;
	consumer_lane *lanes;
	uint8_t *scratch;     /* buf_size bytes: a record's private copy */
	size_t buf_size;
};

/* R1: take the flusher slot: its kernel lock (a dead owner's lock is
 * gone with it), as the flusher does. */
static int claim_slot(ckr_consumer *c)
{
	int rc = ckr_proc_self_token(&c->token);
	if (rc)
		return rc;
	rc = ckr_seg_lock(&c->seg, CKR_LOCK_FLUSHER);
	if (rc == -EAGAIN)
		return -EBUSY;
	if (rc)
		return rc;
	/* release: pairs with the acquire of readers of the word (the
	 * inspector, ckr_wait); the lock is what excludes a flusher. */
	atomic_store_explicit(&ckr_seg_fl(&c->seg)->owner, c->token, memory_order_release);
	return 0;
}

int ckr_consumer_open(const char *name, ckr_consumer **out)
{
	if (!name || !out)
		return -EINVAL;
	*out = NULL;
	ckr_consumer *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	int rc = ckr_segment_attach(name, false, &c->seg);
	if (rc)
		goto out_free;
	c->buf_size = (size_t)c->seg.max_record + CKR_REC_HEADER;
	c->lanes = calloc(c->seg.lane_count, sizeof *c->lanes);
	c->scratch = malloc(c->buf_size);
	rc = c->lanes && c->scratch ? claim_slot(c) : -ENOMEM;
	if (rc)
		goto out_detach;
	for (uint32_t i = 0; i < c->seg.lane_count; i++) {
		consumer_lane *cl = &c->lanes[i];
		ckr_lane_view(&c->seg, i, &cl->lane);
		cl->pos = cl->released = ckr_lane_head(&cl->lane);
	}
	*out = c;
	return 0;
out_detach:
	free(c->scratch);
	free(c->lanes);
	ckr_segment_detach(&c->seg);
out_free:
	free(c);
	return rc;
}

void ckr_consumer_close(ckr_consumer *c)
{
	if (!c)
		return;
	uint64_t me = c->token;
	/* release: a later flusher sees the heads we published; then the
	 * lock. */
	atomic_compare_exchange_strong_explicit(&ckr_seg_fl(&c->seg)->owner, &me, 0,
						memory_order_release, memory_order_relaxed);
	ckr_seg_unlock(&c->seg, CKR_LOCK_FLUSHER);
	ckr_segment_detach(&c->seg);
	free(c->scratch);
	free(c->lanes);
	free(c);
}

uint32_t ckr_consumer_lanes(const ckr_consumer *c)
{
	return c->seg.lane_count;
}

size_t ckr_consumer_max_payload(const ckr_consumer *c)
{
	return c->seg.max_record;
}

size_t ckr_consumer_buf_size(const ckr_consumer *c)
{
	return c->buf_size;
}

uint64_t ckr_consumer_unreleased(const ckr_consumer *c, uint32_t lane)
{
	if (!c || lane >= c->seg.lane_count)
		return 0;
	return c->lanes[lane].pos - c->lanes[lane].released;
}

/* G, cached: refresh the verdict on the lane's tenure (owner word loaded
 * now). The lock is probed only when the owner word changed or a "not
 * gone" verdict is older than max_age_ns. A free lane (0) is not gone. */
static void refresh_gone(ckr_consumer *c, consumer_lane *cl, uint64_t max_age_ns)
{
	ckr_tenure t = ckr_lane_tenure(&cl->lane);
	if (ckr_tenure_eq(t, cl->seen) && cl->gone)
		return;
	uint64_t now = ckr_now_ns(CLOCK_MONOTONIC);
	if (!ckr_tenure_eq(t, cl->seen) || now - cl->owner_checked_ns > max_age_ns) {
		cl->seen = t;
		cl->owner_checked_ns = now;
		cl->gone = ckr_lane_tenure_gone(&c->seg, &cl->lane, t);
	}
}

/* A good record is in dst (payload first): hand it to the caller. */
static int take_record(ckr_consumer *c, consumer_lane *cl, const ckr_lane_record *rec,
		       void *buf, size_t cap, bool direct, size_t *len)
{
	*len = rec->payload_len;
	if (!direct) {
		if (rec->payload_len > cap)
			return -EMSGSIZE; /* not consumed: call again with room */
		memcpy(buf, c->scratch, rec->payload_len);
	}
	cl->pos = rec->next;
	cl->records++;
	return 0;
}

int ckr_consumer_read(ckr_consumer *c, uint32_t lane, void *buf, size_t cap, size_t *len)
{
	if (!c || !len || lane >= c->seg.lane_count || (cap && !buf))
		return -EINVAL;
	*len = 0;
	consumer_lane *cl = &c->lanes[lane];
	bool direct = cap >= c->buf_size;
	/* C0: the verdict used by this read was taken before it (by an
	 * earlier call, or below before a re-read). */
	bool gone = cl->gone;
	uint8_t *dst = direct ? buf : c->scratch;
	size_t dcap = direct ? cap : c->buf_size;
	for (;;) {
		ckr_lane_record rec;
		ckr_lane_read_hinted(&cl->lane, cl->pos, gone, &cl->tail_hint, dst, dcap, &rec);
		switch (rec.status) {
		case CKR_READ_RECORD:
			return take_record(c, cl, &rec, buf, cap, direct, len);
		case CKR_READ_CORRUPT:
			cl->pos = rec.next;
			cl->records++;
			/* relaxed: a counter for the inspector. */
			atomic_fetch_add_explicit(&ckr_seg_ctr(&c->seg)->corrupt, 1,
						  memory_order_relaxed);
			return CKR_ECORRUPT;
		case CKR_READ_ABANDONED:
			cl->pos = rec.next;
			cl->records++;
			/* relaxed: a counter for the inspector. */
			atomic_fetch_add_explicit(&ckr_seg_ctr(&c->seg)->reclaimed, 1,
						  memory_order_relaxed);
			continue;
		case CKR_READ_EMPTY:
			cl->pos = rec.next;
			if (gone) /* drained with no writer left: free at release */
				cl->free_after = cl->seen.owner;
			else if (++cl->empties % IDLE_CHECK_EVERY == 1)
				refresh_gone(c, cl, IDLE_LIVENESS_NS); /* for a later read */
			return -ENODATA;
		case CKR_READ_WAIT:
			/* An open claim: skip it only if no writer can exist
			 * (C4): take the verdict, then read again with it. */
			if (!gone) {
				refresh_gone(c, cl, STUCK_LIVENESS_NS);
				if (cl->gone) {
					gone = true;
					continue;
				}
			}
			return -ENODATA;
		}
		return -ENODATA;
	}
}

int ckr_consumer_release(ckr_consumer *c, uint32_t lane)
{
	if (!c || lane >= c->seg.lane_count)
		return -EINVAL;
	consumer_lane *cl = &c->lanes[lane];
	if (cl->pos != cl->released) {
		/* C6: head only (release, pairing with the producers' acquire
		 * of head, P3); synced is never ours to publish (a consumer
		 * fsyncs nothing). */
		ckr_lane_publish_head(&cl->lane, cl->pos);
		/* relaxed: a statistic. */
		atomic_fetch_add_explicit(&cl->lane.ctl->drained, cl->records,
					  memory_order_relaxed);
		cl->released = cl->pos;
		cl->records = 0;
	}
	if (cl->free_after) {
		/* C7: the lane was drained with no writer left. */
		ckr_lane_repair_tail(&cl->lane, cl->pos);
		cl->tail_hint = 0; /* a new tenure starts from here */
		if (ckr_lane_free(&cl->lane, cl->free_after))
			/* relaxed: a counter for the inspector. */
			atomic_fetch_add_explicit(&ckr_seg_ctr(&c->seg)->lanes_freed, 1,
						  memory_order_relaxed);
		cl->free_after = 0;
		cl->gone = false; /* the lane is free: a new tenure may start */
		cl->seen = (ckr_tenure){ 0, 0 };
	}
	return 0;
}
