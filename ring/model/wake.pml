/*
 * wake.pml -- Promela model of the wake-up protocol (ring/PROTOCOL.md,
 * "Wake-ups"; the code is ring/wake.c, its callers persist/flusher_loop.c
 * and client/wait.c).  MAPPING.md, "wake.pml", maps each step to the code.
 *
 * Actors: NPROD producer threads pushing into one lane, each of which waits
 * (ckr_wait) for every record it pushed to be committed; the flusher, which
 * drains sealed records, publishes head, and sleeps when a pass found
 * nothing.  The futexes are modelled as the kernel implements them: a wait
 * compares the word and blocks in one step; a wake unblocks only those
 * already blocked.
 *
 * No timeouts.  In the code the flusher's sleep is bounded by its idle bound
 * (idle_max_us) and a waiter's by a 100 ms slice, so a lost wake-up costs
 * latency, not progress.  Here a lost wake-up is a deadlock: a producer
 * blocked in its futex wait while the flusher sleeps with its record sealed
 * (an invalid end state).  The property checked is therefore exactly "no
 * wake-up is ever lost": a waiter never depends on a timeout.
 *
 * Memory order: Promela is sequentially consistent.  The code's wake words
 * are all seq_cst; the seal is a release store read by an acquire load.
 * That is enough for S3 to see a seal stored before a W4 that S1 read (the
 * seq_cst RMW W4 synchronises with the load S1), and W4 after S1 is caught
 * by the futex's own compare or by asleep (both seq_cst against S2), so the
 * SC model loses no behaviour of the code (MAPPING.md).
 *
 * Build options (-D..., given to spin):
 *   NPROD=n K=n   producers, records per producer
 *   W_SLEPT       witness: a waiter (with ATTACH: an attacher) woke a
 *                 flusher blocked in its futex
 *   W_WAITED      witness: a waiter blocked and was woken by a publish
 *   SILENT        producer 0 pushes but never waits: a waiter behind its
 *                 record depends on the flusher's idle bound (must fail:
 *                 the documented limit, not a bug: pushes never wake)
 *   BROKEN_NO_RECHECK      the flusher sleeps without S3
 *   BROKEN_SEEN_LATE       the flusher reads wake_seq after its re-check
 *   BROKEN_NO_WAKE         a waiter neither bumps wake_seq nor wakes (no W4)
 *   BROKEN_SEEN_AFTER      a waiter reads commit_seq after its re-check
 *   BROKEN_WAITERS_FIRST   the publisher reads waiters before it stores
 *                          head (P2's load moved before C6 and P1)
 *   BROKEN_BUMP_FIRST      the publisher bumps commit_seq before head is
 *                          stored
 *
 * The sleep without owners (-DATTACH): producers attach first (owners++,
 * then W4 as ckr_wake_flusher after lanes_acquire), then push and never
 * wait. The flusher sleeps within its bound while a lane is owned (that
 * sleep may time out: the model lets it) and without a bound when none is
 * (its re-check S3 also looks for an owner). init waits for every record
 * to be committed, so an attach whose wake-up is lost leaves init blocked
 * and the flusher asleep: an invalid end state.
 *   BROKEN_NO_ATTACH_WAKE  an attach stores its owner word, no W4
 *   BROKEN_NO_OWNER_CHECK  the unbounded sleep's re-check ignores owners
 */
#ifndef NPROD
#define NPROD 2
#endif
#ifndef K
#define K 2
#endif
#define NREC (NPROD * K)

/* the flusher slot (shm/segment.h, ckr_seg_flusher) */
byte wake_seq;     /* futex word the flusher sleeps on */
byte commit_seq;   /* futex word waiters sleep on */
bit asleep;
byte waiters;

/* the lane: owners, claim position, seals, published head */
byte owners;
byte tail;
bit sealed[NREC];
byte head;

/* the kernel's futex queues */
bit fl_blocked;
bit w_blocked[NPROD];

/* ghosts for the witnesses */
byte flusher_woken, waiter_woken;

inline wake_all_waiters()
{
	atomic {
		byte j = 0;
		do
		:: j < NPROD -> if :: w_blocked[j] -> waiter_woken++ :: else fi;
		                 w_blocked[j] = 0; j++
		:: else -> break
		od
	};
#ifdef W_WAITED
	assert(waiter_woken == 0);
#endif
}

/* W4, ckr_wake_flusher: bump, load asleep, futex_wake(wake_seq, 1) */
inline wake_flusher()
{
	wake_seq++;
	if
	:: asleep ->
		atomic { if :: fl_blocked -> flusher_woken++ :: else fi;
		         fl_blocked = 0 };
#ifdef W_SLEPT
		assert(flusher_woken == 0);
#endif
	:: else
	fi
}

proctype producer(byte me)
{
	byte k = 0, pos, seen;
#ifdef ATTACH
	owners++;                                     /* A4: the owner word */
#ifndef BROKEN_NO_ATTACH_WAKE
	wake_flusher();                               /* W4 after the attach */
#endif
#endif
	do
	:: k < K ->
		atomic { pos = tail; tail++ };        /* P4: the claim */
		sealed[pos] = 1;                      /* P8: the seal (release) */
#ifdef SILENT
		if :: me == 0 -> goto next :: else fi;
#endif
#ifdef ATTACH
		goto next;                            /* pushes only */
#endif
		if :: head > pos -> goto next :: else fi;  /* ckr_wait's first check */
		waiters++;                            /* W1 */
	again:
#ifndef BROKEN_SEEN_AFTER
		seen = commit_seq;                    /* W2 */
		if :: head > pos -> goto out :: else fi;   /* W3 */
#else
		if :: head > pos -> goto out :: else fi;
		seen = commit_seq;
#endif
#ifndef BROKEN_NO_WAKE
		wake_flusher();                       /* W4 */
#endif
		atomic {                              /* W5: futex_wait(commit_seq, seen) */
			if :: commit_seq != seen -> skip
			   :: else -> w_blocked[me] = 1
			fi
		};
		(w_blocked[me] == 0);
		goto again;
	out:
		waiters--;                            /* W6 */
	next:
		k++
	:: else -> break
	od
}

active proctype flusher()
{
	byte rpos = 0, seen;
	bit unbounded;
	do
	:: rpos < NREC && sealed[rpos] ->             /* a pass that finds work */
		atomic {                              /* C2..C4: the sealed prefix */
			do
			:: rpos < NREC && sealed[rpos] -> rpos++
			:: else -> break
			od
		};
#ifdef BROKEN_BUMP_FIRST
		commit_seq++;
		head = rpos;
#else
#ifdef BROKEN_WAITERS_FIRST
		seen = waiters;
		head = rpos;
		commit_seq++;
		if
		:: seen > 0 -> wake_all_waiters()
		:: else
		fi
#else
		head = rpos;                          /* C6: head released */
		commit_seq++;                         /* P1 */
		if
		:: waiters > 0 -> wake_all_waiters()  /* P2 */
		:: else
		fi
#endif
#endif
	:: else ->                                    /* ckr_wake_sleep */
#ifdef ATTACH
		unbounded = (owners == 0);            /* idle_sleep's choice */
#endif
#ifndef BROKEN_SEEN_LATE
		seen = wake_seq;                      /* S1 */
		asleep = 1;                           /* S2 */
#ifndef BROKEN_NO_RECHECK
		if :: rpos < NREC && sealed[rpos] -> goto awake :: else fi;  /* S3 */
#endif
#else
		asleep = 1;
		if :: rpos < NREC && sealed[rpos] -> goto awake :: else fi;
		seen = wake_seq;
#endif
#ifdef ATTACH
		/* without an owner: the unbounded sleep's re-check looks at
		 * owners too; with one, the sleep may end at its bound */
#ifndef BROKEN_NO_OWNER_CHECK
		if :: owners > 0 && unbounded -> goto awake :: else fi;
#endif
#endif
		atomic {                              /* S4: futex_wait(wake_seq, seen) */
			if :: wake_seq != seen -> skip
			   :: else -> fl_blocked = 1
			fi
		};
	end_sleep:
#ifdef ATTACH
		if
		:: fl_blocked == 0
		:: !unbounded -> fl_blocked = 0       /* the idle bound */
		fi;
#else
		(fl_blocked == 0);
#endif
	awake:
		asleep = 0                            /* S5 */
	od
}

init
{
	atomic {
		byte i = 0;
		do
		:: i < NPROD -> run producer(i); i++
		:: else -> break
		od
	};
#ifdef ATTACH
	(head == NREC)      /* every record committed; else: invalid end state */
#endif
}
