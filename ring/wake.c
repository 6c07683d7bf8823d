/*
 * wake.c — the wake-up protocol (see wake.h and ring/PROTOCOL.md,
 * "Wake-ups"). Four words, two store-load pairs:
 *
 *   flusher sleep:   S1 seen = wake_seq; S2 asleep = 1; S3 re-check work;
 *                    S4 futex_wait(wake_seq, seen); S5 asleep = 0
 *   waiter:          W1 waiters++; W2 seen = commit_seq; W3 re-check;
 *                    W4 wake_seq++; if asleep: futex_wake(wake_seq);
 *                    W5 futex_wait(commit_seq, seen); ...; W6 waiters--
 *   flusher publish: P1 (head/synced released) commit_seq++;
 *                    P2 if waiters: futex_wake(commit_seq, all)
 *
 * A waiter whose W4 comes before S2 is seen by S3 only if what it waits for
 * is work the flusher can see (it is: an unflushed record); one whose W4
 * comes after S2 sees asleep == 1 and wakes the futex, or its bump of
 * wake_seq after S1 makes S4 return at once. A publisher whose P2 misses a
 * waiter (waiters still 0) comes before the waiter's W1, hence before its
 * W2: the waiter's re-check W3 sees the new positions.
 */
#include "ring/wake.h"

#include "shm/futex.h"

void ckr_wake_sleep(ckr_seg_flusher *fl, bool (*has_work)(void *ctx), void *ctx,
		    uint64_t timeout_ns, uint32_t how)
{
	/* S1, S2 seq_cst: the store of asleep is ordered before the re-check's
	 * loads, pairing with W4's seq_cst bump and load of asleep. */
	uint32_t seen = atomic_load(&fl->wake_seq);
	atomic_store(&fl->asleep, how);
	if (!has_work(ctx)) /* S3 */
		ckr_futex_wait(&fl->wake_seq, seen, (int64_t)timeout_ns);
	atomic_store(&fl->asleep, 0); /* S5, seq_cst */
}

void ckr_wake_published(ckr_seg_flusher *fl)
{
	/* P1, P2 seq_cst: pairs with W1's seq_cst increment of waiters and
	 * W2's load of commit_seq. */
	atomic_fetch_add(&fl->commit_seq, 1);
	if (atomic_load(&fl->waiters))
		ckr_futex_wake(&fl->commit_seq, 0x7fffffff);
}

void ckr_wake_wait_enter(ckr_seg_flusher *fl)
{
	atomic_fetch_add(&fl->waiters, 1); /* W1, seq_cst: see P2 */
}

void ckr_wake_wait_leave(ckr_seg_flusher *fl)
{
	atomic_fetch_sub(&fl->waiters, 1); /* W6, seq_cst */
}

uint32_t ckr_wake_wait_seen(ckr_seg_flusher *fl)
{
	return atomic_load(&fl->commit_seq); /* W2, seq_cst: see P1 */
}

void ckr_wake_flusher(ckr_seg_flusher *fl)
{
	/* W4 seq_cst: pairs with S2's store of asleep before S3's re-check:
	 * either the flusher sees our bump (its futex wait returns at once)
	 * or we see it asleep and wake it. What we did before (an owner word,
	 * a seal) is sequenced before the bump, so a flusher whose S1 read
	 * the bump sees it at S3. */
	atomic_fetch_add(&fl->wake_seq, 1);
	if (atomic_load(&fl->asleep))
		ckr_futex_wake(&fl->wake_seq, 1);
}

void ckr_wake_wait_sleep(ckr_seg_flusher *fl, uint32_t seen, int64_t timeout_ns)
{
	ckr_wake_flusher(fl); /* W4 */
	ckr_futex_wait(&fl->commit_seq, seen, timeout_ns); /* W5 */
}
