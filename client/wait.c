/*
 * wait.c — ckr_wait(): block (bounded) until a ticket reaches a durability
 * level published by the flusher.
 *
 * The flusher publishes per lane `head` (committed) and `synced`, then bumps
 * the futex word `commit_seq` and wakes it if `waiters` is non-zero. A waiter
 * increments `waiters`, reads `commit_seq`, re-checks the positions, and only
 * then sleeps on `commit_seq` with the value it read. Both sides use seq_cst
 * on `waiters` / `commit_seq`, so either the waiter sees the new position or
 * the flusher sees the waiter (no lost wake-up); a `commit_seq` that moved
 * after it was read makes the futex wait return at once.
 *
 * Waiting is never on the push path; a waiter first wakes a sleeping flusher
 * (it is about to block anyway).
 */
#include <errno.h>
#include <time.h>

#include "client/client.h"
#include "ring/lane.h"
#include "shm/futex.h"
#include "shm/proc.h"

static bool reached(const ckr_segment *seg, const ckr_ticket *t, ckr_level level)
{
	ckr_lane l;
	ckr_lane_view(seg, t->lane, &l);
	/* acquire: pairs with the flusher's release store of head/synced in
	 * ckr_lane_release(); nothing is read through it but it keeps the
	 * answer monotonic with commit_seq. */
	uint64_t pos = level == CKR_LEVEL_SYNCED
			       ? atomic_load_explicit(&l.ctl->synced, memory_order_acquire)
			       : atomic_load_explicit(&l.ctl->head, memory_order_acquire);
	return pos >= t->pos;
}

static void wake_flusher(ckr_seg_flusher *fl)
{
	/* seq_cst: pairs with the flusher's seq_cst store of `asleep` before
	 * it re-checks the lanes: either it sees our bump of wake_seq (its
	 * futex wait returns at once) or we see it asleep and wake it. */
	atomic_fetch_add(&fl->wake_seq, 1);
	if (atomic_load(&fl->asleep))
		ckr_futex_wake(&fl->wake_seq, 1);
}

static bool flusher_alive(ckr_seg_flusher *fl)
{
	/* relaxed: a liveness probe. */
	return ckr_proc_alive(atomic_load_explicit(&fl->owner, memory_order_relaxed));
}

int ckr_wait(ckr_client *c, const ckr_ticket *t, ckr_level level, int timeout_ms)
{
	int rc = ckr_client_check(c);
	if (rc)
		return rc;
	const ckr_segment *seg = ckr_client_segment(c);
	if (!t || t->lane >= seg->lane_count || level < CKR_LEVEL_IN_RING ||
	    level > CKR_LEVEL_SYNCED)
		return -EINVAL;
	if (level == CKR_LEVEL_IN_RING || reached(seg, t, level))
		return 0;
	ckr_seg_flusher *fl = ckr_seg_fl(seg);
	uint64_t start = ckr_now_ns(CLOCK_MONOTONIC);
	bool saw_flusher = false;
	atomic_fetch_add(&fl->waiters, 1); /* seq_cst: see the file comment */
	for (;;) {
		uint32_t seen = atomic_load(&fl->commit_seq); /* seq_cst */
		if (reached(seg, t, level)) {
			rc = 0;
			break;
		}
		saw_flusher = saw_flusher || flusher_alive(fl);
		int64_t left = -1;
		if (timeout_ms >= 0) {
			left = (int64_t)timeout_ms * 1000000 -
			       (int64_t)(ckr_now_ns(CLOCK_MONOTONIC) - start);
			if (left <= 0) {
				rc = saw_flusher ? -ETIMEDOUT : -EPIPE;
				break;
			}
		}
		wake_flusher(fl);
		/* Sleep in slices of at most 100 ms so a flusher that dies or
		 * starts meanwhile is noticed. */
		if (left < 0 || left > 100000000)
			left = 100000000;
		ckr_futex_wait(&fl->commit_seq, seen, left);
	}
	atomic_fetch_sub(&fl->waiters, 1);
	return rc;
}
