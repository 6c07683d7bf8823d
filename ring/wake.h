/*
 * wake.h — the wake-up protocol: the flusher sleeping when idle, producers
 * that wait for durability waking it, and the flusher waking those waiters
 * once it has published new positions (ring/PROTOCOL.md, "Wake-ups"; checked
 * by ring/model/wake.pml). Both halves live here; the words are in the
 * segment's flusher slot (shm/segment.h, ckr_seg_flusher):
 *
 *   asleep      1 while the flusher sleeps or is about to   (flusher)
 *   wake_seq    futex word the flusher sleeps on            (waiters bump)
 *   commit_seq  futex word waiters sleep on                 (flusher bumps)
 *   waiters     processes sleeping in a wait                (waiters)
 *
 * Every access to these words is seq_cst: each half stores its own word and
 * then loads the other's (a store-load pair; Dekker's pattern), so of a
 * sleeper and a waker at least one sees the other: no wake-up is lost. A
 * futex word that moved after it was read makes the futex wait return at
 * once. Nothing here is ever on the push path: producers that only push
 * never wake the flusher; their events wait at most its idle bound.
 *
 * SYNCHRONIZATION
 * | call                    | who                    | may run with         |
 * |-------------------------|------------------------|----------------------|
 * | ckr_wake_sleep          | the flusher (1 thread) | every waiter call    |
 * | ckr_wake_published      | the flusher            | every waiter call    |
 * | ckr_wake_flusher        | any thread, any process| everything           |
 * | ckr_wake_wait_*         | any thread, any process| each other, flusher  |
 */
#ifndef CKR_WAKE_H
#define CKR_WAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/shared.h"
#include "shm/segment.h"

/* ---- the flusher's half ---- */

/*
 * Sleep at most timeout_ns unless there is work: read wake_seq, set asleep
 * (to how),
 * re-check with has_work(ctx) (the re-check is what makes a wake-up from a
 * waiter that came before the sleep impossible to lose), futex-wait on
 * wake_seq, clear asleep. This function can't fail (it may return early).
 */
CKR_SHARED void ckr_wake_sleep(ckr_seg_flusher *fl, bool (*has_work)(void *ctx), void *ctx,
		    uint64_t timeout_ns, uint32_t how);

/* `how`, stored in asleep while it sleeps: */
enum {
	CKR_ASLEEP_BOUND = 1, /* at most the idle bound (lanes are owned) */
	CKR_ASLEEP_UNOWNED = 2 /* no lane owned: until an attach or a waiter */
};

/* After new committed/synced positions are published (release stores of
 * head/synced): bump commit_seq and wake every waiter, if there is one. This
 * function can't fail. */
CKR_SHARED void ckr_wake_published(ckr_seg_flusher *fl);

/* ---- the callers that need the flusher awake ---- */

/*
 * Wake the flusher if it sleeps: bump wake_seq, and futex-wake it if asleep
 * (W4). After a lane was acquired (its owner word stored), so that a
 * flusher in its long sleep without owners (ckr_wake_sleep with an
 * owners-aware re-check) serves the new owner within its idle bound; and by
 * a waiter before it sleeps. Never on the push path. Can't fail.
 */
CKR_SHARED void ckr_wake_flusher(ckr_seg_flusher *fl);

/* ---- the waiters' half ---- */

/* Count this thread in as a waiter (before its first re-check). */
void ckr_wake_wait_enter(ckr_seg_flusher *fl);

/* ... and out again. */
void ckr_wake_wait_leave(ckr_seg_flusher *fl);

/* The commit_seq a waiter read before it re-checks its condition. */
uint32_t ckr_wake_wait_seen(ckr_seg_flusher *fl);

/*
 * The condition was not met after reading `seen`: wake the flusher if it
 * sleeps (it is about to be needed), then sleep until commit_seq moves from
 * `seen`, at most timeout_ns (< 0: no bound). This function can't fail (it
 * may return early).
 */
void ckr_wake_wait_sleep(ckr_seg_flusher *fl, uint32_t seen, int64_t timeout_ns);

#endif /* CKR_WAKE_H */
