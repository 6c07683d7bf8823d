/*
 * flusher_loop.c — the flusher's main loop: drain while there is work, back
 * off adaptively when idle (spin briefly, then futex-sleep with a doubling
 * bound up to idle_max_us), fsync on the interval policy, housekeeping, and a
 * final drain on stop.
 *
 * Sleeping is the flusher's half of the wake-up protocol (ring/wake.h): a
 * producer that waits for durability wakes us; producers that only push
 * never do: their events wait at most idle_max_us.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "persist/flusher.h"
#include "ring/wake.h"
#include "shm/clock.h"

#define SPIN_POLLS 64

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Has any lane moved since its last pass, or was the loop asked to stop?
 * (ckr_wake_sleep's re-check: a stop asked with ckr_flusher_interrupt
 * before the sleep is seen here, one asked after it ends the sleep.) */
static bool new_work(void *ctx)
{
	ckr_flusher *f = ctx;
	if (f->stop && *f->stop)
		return true;
	for (uint32_t i = 0; i < f->seg.lane_count; i++)
		if (ckr_flusher_lane_moved(&f->lanes[i]))
			return true;
	return false;
}

/* Is any lane owned? Without an owner nothing can be pushed: the next
 * event needs an attach first, and an attach wakes us (ckr_wake_flusher
 * after its owner word is stored), so the sleep need not end at the idle
 * bound. */
static bool any_owner(const ckr_flusher *f)
{
	for (uint32_t i = 0; i < f->seg.lane_count; i++)
		if (ckr_lane_owner(&f->lanes[i].lane) != 0)
			return true;
	return false;
}

static bool unsynced(const ckr_flusher *f)
{
	for (uint32_t i = 0; i < f->seg.lane_count; i++)
		if (f->lanes[i].synced != f->lanes[i].committed)
			return true;
	return false;
}

/* The long sleep's re-check (S3): new records, or a lane acquired. */
static bool new_work_or_owner(void *ctx)
{
	return new_work(ctx) || any_owner(ctx);
}

/* Sleep at most sleep_ns, or, with no lane owned and nothing left to sync
 * at an interval, until an attach or a waiter wakes us, or housekeeping is
 * due (its 1 s tick). The owner loads of the re-check follow the store of
 * asleep (ckr_wake_sleep, S2); an attacher stores its owner word before it
 * bumps wake_seq (ckr_wake_flusher, W4): either we see the owner or it
 * sees us asleep, or its bump ends our futex wait at once. */
static void idle_sleep(ckr_flusher *f, uint64_t sleep_ns)
{
	bool interval_due = f->opts.sync == CKR_SYNC_INTERVAL && unsynced(f);
	if (interval_due || any_owner(f)) {
		ckr_wake_sleep(ckr_seg_fl(&f->seg), new_work, f, sleep_ns, CKR_ASLEEP_BOUND);
		return;
	}
	uint64_t now = ckr_now_ns(CLOCK_MONOTONIC);
	uint64_t tick = f->last_housekeep_ns + f->housekeep_ns;
	uint64_t long_ns = tick > now ? tick - now : 0;
	ckr_wake_sleep(ckr_seg_fl(&f->seg), new_work_or_owner, f,
		       long_ns > sleep_ns ? long_ns : sleep_ns, CKR_ASLEEP_UNOWNED);
}

/* sync=interval: fsync when the interval passed and something is unsynced;
 * then publish synced = committed. */
static int maybe_sync(ckr_flusher *f, bool force)
{
	if (f->opts.sync == CKR_SYNC_ALWAYS)
		return 0;
	uint64_t now = ckr_now_ns(CLOCK_MONOTONIC);
	bool due = f->opts.sync == CKR_SYNC_INTERVAL &&
		   now - f->last_sync_ns >= (uint64_t)f->opts.sync_interval_ms * 1000000;
	if (!force && !due)
		return 0;
	bool behind = false;
	for (uint32_t i = 0; i < f->seg.lane_count; i++)
		behind = behind || f->lanes[i].synced != f->lanes[i].committed;
	f->last_sync_ns = now;
	if (!behind)
		return 0;
	uint64_t t0 = ckr_fm_now();
	int rc = ckr_store_sync(f->store);
	if (rc)
		return rc;
	ckr_fm_sync(f, ckr_fm_now() - t0); /* metrics */
	for (uint32_t i = 0; i < f->seg.lane_count; i++) {
		flusher_lane *fl = &f->lanes[i];
		fl->synced = fl->committed;
		ckr_lane_release(&fl->lane, fl->committed, fl->synced);
	}
	ckr_flusher_wake_waiters(f);
	return 0;
}

/* Every tick (1 s): owners lost without a lane, one bounded retention step
 * (retention.c), the metrics' counters, the change log's shipped entries;
 * every tenth: stale readers. */
static void housekeep(ckr_flusher *f)
{
	uint64_t now = ckr_now_ns(CLOCK_MONOTONIC);
	if (now - f->last_housekeep_ns < f->housekeep_ns)
		return;
	f->last_housekeep_ns = now;
	int rc = ckr_flusher_end_lost_owners(f);
	if (rc < 0)
		ckr_flusher_log(f, CKR_LOG_WARN, "ending lost owners: %s", ckr_strerror(rc));
	ckr_flusher_retention(f);
	ckr_fm_publish(f);
	rc = ckr_store_log_trim(f->store, 0); /* the change log, up to what is shipped */
	if (rc < 0)
		ckr_flusher_log(f, CKR_LOG_WARN, "trimming the change log: %s", ckr_strerror(rc));
	if (++f->housekeeps % 10 != 0)
		return;
	rc = ckr_store_reader_check(f->store);
	if (rc > 0)
		ckr_flusher_log(f, CKR_LOG_INFO, "freed %d reader slot(s) of dead processes", rc);
}

/* Drain until a pass finds nothing (or cannot commit: f->replay).
 * @return 0 or a fatal error. */
static int drain_all(ckr_flusher *f, size_t *total)
{
	size_t n;
	do {
		int rc = ckr_flusher_drain_once(f, &n);
		if (rc)
			return rc;
		*total += n;
	} while (n > 0 && !f->replay);
	return 0;
}

/* On stop: drain what is there. A batch that could not commit (full map or
 * disk) is retried, with backoff, for a bounded time; if the store stays
 * full the events are still in the ring, and we say so with an error rather
 * than exit as if all were stored. */
static int final_drain(ckr_flusher *f)
{
	size_t total = 0;
	for (int tries = 0; tries < 30; tries++) {
		int rc = drain_all(f, &total);
		if (rc)
			return rc;
		if (!f->replay)
			return 0;
	}
	uint64_t left = 0;
	for (uint32_t i = 0; i < f->seg.lane_count; i++)
		left += ckr_lane_tail(&f->lanes[i].lane) - f->lanes[i].rpos;
	ckr_flusher_log(f, CKR_LOG_ERROR, "the store stayed full: %llu bytes of events "
			"are still in the ring (they are not lost while the segment "
			"exists; restart the flusher once there is room)",
			(unsigned long long)left);
	return -ENOSPC;
}

int ckr_flusher_run_loop(ckr_flusher *f, const volatile int *stop)
{
	uint64_t sleep_ns = 1000, max_ns = (uint64_t)f->opts.idle_max_us * 1000;
	unsigned idle_polls = 0;
	int rc = 0;
	f->stop = stop;
	while (!*stop) {
		size_t n = 0;
		ckr_flusher_heartbeat(f);
		rc = ckr_flusher_drain_once(f, &n);
		if (rc == 0)
			rc = maybe_sync(f, false);
		if (rc)
			break;
		housekeep(f);
		if (n > 0) {
			idle_polls = 0;
			sleep_ns = 1000;
			continue;
		}
		if (++idle_polls < SPIN_POLLS) {
			cpu_relax();
			continue;
		}
		idle_sleep(f, sleep_ns);
		sleep_ns = sleep_ns * 2 > max_ns ? max_ns : sleep_ns * 2;
	}
	int rc2 = final_drain(f);
	if (rc2 == 0)
		rc2 = maybe_sync(f, true);
	if (rc2 == 0)
		rc2 = ckr_flusher_sync_wait(f);
	return rc ? rc : rc2;
}

void ckr_flusher_block_signals(sigset_t *old)
{
	sigset_t all;
	sigfillset(&all);
	static const int faults[] = { SIGBUS, SIGSEGV, SIGFPE, SIGILL, SIGTRAP };
	for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
		sigdelset(&all, faults[i]);
	pthread_sigmask(SIG_BLOCK, &all, old);
}

void ckr_flusher_interrupt(ckr_flusher *f)
{
	if (f) /* lock-free atomics and a futex call: async-signal-safe */
		ckr_wake_flusher(ckr_seg_fl(&f->seg));
}

#ifdef CKR_TEST_HOOKS
void ckr_flusher_crash_parse(ckr_flusher *f, const char *spec)
{
	static const struct {
		const char *name;
		ckr_crash_point p;
	} points[] = {
		{ "mid_batch", CKR_CRASH_MID_BATCH },
		{ "after_commit", CKR_CRASH_AFTER_COMMIT },
		{ "after_release", CKR_CRASH_AFTER_RELEASE },
	};
	const char *colon = strchr(spec, ':');
	size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
	for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
		if (strlen(points[i].name) == len && strncmp(spec, points[i].name, len) == 0) {
			f->crash_at = points[i].p;
			f->crash_count = colon ? strtoull(colon + 1, NULL, 10) : 1;
			return;
		}
	}
	ckr_flusher_log(f, CKR_LOG_WARN, "ignoring unknown CKR_FLUSHER_CRASH '%s'", spec);
}

void ckr_flusher_crash_point(ckr_flusher *f, ckr_crash_point p)
{
	if (f->crash_at != p || f->crash_count == 0)
		return;
	if (--f->crash_count == 0)
		raise(SIGKILL);
}
#endif /* CKR_TEST_HOOKS */
