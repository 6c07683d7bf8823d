/*
 * wait.c — ckr_wait(): block (bounded) until a ticket reaches a durability
 * level published by the flusher, and tell a stored event from a rejected
 * one (ring/PROTOCOL.md, "Writer slots", W3).
 *
 * The flusher publishes per lane `head` (committed) and `synced`, then wakes
 * waiters; a waiter re-checks the positions after registering and before
 * each sleep: the waiters' half of the wake-up protocol (ring/wake.h), which
 * also wakes a sleeping flusher first.
 *
 * The flusher's liveness is its kernel lock on the segment (byte
 * CKR_LOCK_FLUSHER), probed at every turn of the loop, which sleeps at most
 * 100 ms: a wait returns -EPIPE within about 100 ms of finding no flusher,
 * whatever its timeout, also when the flusher dies during the wait.
 *
 * Waiting is never on the push path; a waiter first wakes a sleeping flusher
 * (it is about to block anyway).
 *
 * REPLICATED: the shipper (ckring-ship, persist/replica.c) publishes per
 * lane `replicated` once PostgreSQL committed everything below it, and
 * bumps the same commit_seq. Its liveness is its kernel lock (byte
 * CKR_LOCK_SHIPPER): a committed event that no shipper can carry further
 * ends the wait with CKR_ENOSHIPPER (an uncommitted one without a flusher
 * still with -EPIPE). A refused event (its run moved to another host) is
 * reported by the shipper through the writer's slot, as the flusher reports
 * its rejections: CKR_EREJECTED.
 */
#include <errno.h>
#include <time.h>

#include "client/client.h"
#include "ring/lane.h"
#include "ring/wake.h"
#include "shm/clock.h"

#define SLICE_NS (INT64_C(100) * 1000000)

/* What the ticket's event has reached: 0 not committed yet; 1 committed
 * (and stored); 2 synced (and stored); bit 4 replicated (with 1 or 2); or
 * CKR_EREJECTED / CKR_ECLOSED. */
static int progress(const ckr_lane *l, const ckr_ticket *t)
{
	/* acquire: pairs with the flusher's release store of head in
	 * ckr_lane_release() (C6), which follows its slot writes (W2): once
	 * head >= pos, the rejection of this event, if any, is visible. */
	uint64_t head = atomic_load_explicit(&l->ctl->head, memory_order_acquire);
	if (head < t->pos)
		return 0;
	if (ckr_lane_slot_rejected(l, t->slot, t->writer, t->pos, NULL))
		return CKR_EREJECTED;
	if (ckr_lane_slot_writer(l, t->slot) != t->writer)
		return CKR_ECLOSED; /* the slot moved on: its report is gone */
	/* acquire: as for head. */
	uint64_t synced = atomic_load_explicit(&l->ctl->synced, memory_order_acquire);
	/* acquire: pairs with the shipper's release store (ckr_replica_publish),
	 * which follows its slot writes (ckr_replica_reject). The rejection was
	 * checked above, before this load: a refusal published with the
	 * position is seen by the re-check of the next turn, so it is read
	 * again here when replicated is reached. */
	uint64_t repl = atomic_load_explicit(&l->ctl->replicated, memory_order_acquire);
	if (repl >= t->pos && ckr_lane_slot_rejected(l, t->slot, t->writer, t->pos, NULL))
		return CKR_EREJECTED;
	return (synced >= t->pos ? 2 : 1) | (repl >= t->pos ? 4 : 0);
}

/* 0 the level is reached, 1 not yet, or the event's final error. */
static int check(const ckr_lane *l, const ckr_ticket *t, ckr_level level)
{
	int p = progress(l, t);
	if (p < 0)
		return p;
	if (level == CKR_LEVEL_REPLICATED)
		return p & 4 ? 0 : 1;
	return (p & 3) >= (level == CKR_LEVEL_SYNCED ? 2 : 1) ? 0 : 1;
}

/* Nobody can carry the ticket further: -EPIPE (not committed, or SYNCED
 * not reached, and no flusher), CKR_ENOSHIPPER (REPLICATED, committed or
 * not, no shipper), else 0. */
static int nobody_serves(const ckr_segment *seg, const ckr_lane *l,
			 const ckr_ticket *t, ckr_level level)
{
	/* acquire: as in progress(). */
	bool committed = atomic_load_explicit(&l->ctl->head, memory_order_acquire) >= t->pos;
	/* SYNCED not reached needs the flusher even for a committed event:
	 * only the flusher fsyncs and publishes synced. */
	bool need_flusher = !committed || level == CKR_LEVEL_SYNCED;
	if (need_flusher && !ckr_seg_flusher_alive(seg))
		return -EPIPE;
	if (level == CKR_LEVEL_REPLICATED &&
	    ckr_seg_lock_held(seg, CKR_LOCK_SHIPPER) == 0)
		return CKR_ENOSHIPPER;
	return 0;
}

/* Nanoseconds left of timeout_ms since start; -1 for no bound. */
static int64_t time_left(int timeout_ms, uint64_t start)
{
	if (timeout_ms < 0)
		return -1;
	int64_t left = (int64_t)timeout_ms * 1000000 -
		       (int64_t)(ckr_now_ns(CLOCK_MONOTONIC) - start);
	return left > 0 ? left : 0;
}

static int wait_loop(const ckr_segment *seg, const ckr_lane *l,
		     const ckr_ticket *t, ckr_level level, int timeout_ms)
{
	ckr_seg_flusher *fl = ckr_seg_fl(seg);
	uint64_t start = ckr_now_ns(CLOCK_MONOTONIC);
	for (;;) {
		uint32_t seen = ckr_wake_wait_seen(fl);
		int rc = check(l, t, level);
		if (rc <= 0)
			return rc;
		int gone = nobody_serves(seg, l, t, level);
		if (gone) {
			/* It may have published and exited since our check. */
			rc = check(l, t, level);
			return rc <= 0 ? rc : gone;
		}
		int64_t left = time_left(timeout_ms, start);
		if (left == 0)
			return -ETIMEDOUT;
		if (left < 0 || left > SLICE_NS)
			left = SLICE_NS;
		ckr_wake_wait_sleep(fl, seen, left);
	}
}

int ckr_wait(ckr_client *c, const ckr_ticket *t, ckr_level level, int timeout_ms)
{
	int rc = ckr_client_check(c);
	if (rc)
		return rc;
	const ckr_segment *seg = ckr_client_segment(c);
	if (!t || t->lane >= seg->lane_count || t->slot >= seg->writers_per_lane ||
	    t->writer == 0 || level < CKR_LEVEL_IN_RING || level > CKR_LEVEL_REPLICATED)
		return -EINVAL;
	if (level == CKR_LEVEL_IN_RING || t->pos == 0)
		return 0; /* pos 0: LEAVE_RUNNING pushed nothing */
	ckr_lane l;
	ckr_lane_view(seg, t->lane, &l);
	rc = check(&l, t, level);
	if (rc <= 0)
		return rc;
	ckr_seg_flusher *fl = ckr_seg_fl(seg);
	ckr_wake_wait_enter(fl);
	rc = wait_loop(seg, &l, t, level, timeout_ms);
	ckr_wake_wait_leave(fl);
	return rc;
}
