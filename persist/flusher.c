/*
 * flusher.c — the drain engine: lanes → one LMDB write transaction per batch
 * → release of ring space (ring/PROTOCOL.md C1..C7, R1..R2).
 *
 * Exactly-once: a batch's events and every lane's new consumed position go
 * into ONE store transaction; only after it commits is `head` moved. A crash
 * anywhere before the commit loses the batch's transaction, and the records
 * are still in the ring; a crash after the commit but before the release
 * leaves `head` behind, and the restart moves it to the persisted position
 * without applying anything twice.
 *
 * The segment is untrusted: records are validated (ring/lane.c) and decoded
 * (event/event.c) from private copies; anything bad is quarantined, counted
 * and skipped. A begin whose owner is not the lane's owner is quarantined.
 *
 * Concurrency: one flusher per segment (the `owner` word of the flusher
 * slot); a ckr_flusher is used by one thread.
 */
#include "persist/flusher.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "event/event.h"
#include "ring/lane.h"
#include "shm/futex.h"
#include "shm/proc.h"

#define BATCH_MAX_EVENTS 8192
#define BATCH_MAX_BYTES (UINT64_C(16) << 20)
#define LIVENESS_EVERY_NS (UINT64_C(50) * 1000000)
#define IDLE_LIVENESS_EVERY_NS (UINT64_C(1000) * 1000000)

/* ------------------------------------------------------------------ */
/* opening: segment, flusher slot, store, cursors                      */
/* ------------------------------------------------------------------ */

static int open_segment(ckr_flusher *f)
{
	const ckr_flusher_opts *o = &f->opts;
	int rc = ckr_segment_attach(o->segment, false, &f->seg);
	if (rc == -ENOENT && o->create) {
		rc = ckr_segment_create(o->segment, &o->seg);
		f->created = rc == 0;
		if (rc == 0 || rc == -EEXIST)
			rc = ckr_segment_attach(o->segment, false, &f->seg);
	}
	if (rc && o->failed_part)
		*o->failed_part = "segment";
	return rc;
}

/* R1: take the flusher slot from nobody or from a dead flusher. */
static int claim_slot(ckr_flusher *f)
{
	ckr_seg_flusher *fl = ckr_seg_fl(&f->seg);
	int rc = ckr_proc_self_token(&f->token);
	if (rc)
		return rc;
	/* acquire: pairs with the release of a previous flusher's exit, so we
	 * see everything it published. */
	uint64_t cur = atomic_load_explicit(&fl->owner, memory_order_acquire);
	for (;;) {
		if (cur != 0 && ckr_proc_alive(cur))
			return -EBUSY;
		/* acq_rel: one claimant wins; see above for the acquire. */
		if (atomic_compare_exchange_strong_explicit(&fl->owner, &cur, f->token,
							    memory_order_acq_rel,
							    memory_order_acquire))
			return 0;
	}
}

static void release_slot(ckr_flusher *f)
{
	uint64_t me = f->token;
	/* release: a later flusher's acquire sees all we published. */
	atomic_compare_exchange_strong_explicit(&ckr_seg_fl(&f->seg)->owner, &me, 0,
						memory_order_release,
						memory_order_relaxed);
}

/* R2: start every lane at its persisted position (or its head, for a
 * segment this store has not seen), and move head there. */
static int restore_positions(ckr_flusher *f)
{
	uint32_t n = f->seg.lane_count;
	uint64_t *pos = calloc(n, sizeof *pos);
	bool found = false;
	if (!pos)
		return -ENOMEM;
	int rc = ckr_store_cursors(f->store, f->seg.epoch, pos, n, &found);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		flusher_lane *fl = &f->lanes[i];
		ckr_lane_view(&f->seg, i, &fl->lane);
		uint64_t head = ckr_lane_head(&fl->lane), tail = ckr_lane_tail(&fl->lane);
		uint64_t p = found ? pos[i] : head;
		/* A persisted position must lie in [tail - capacity, tail];
		 * anything else is a damaged segment: trust its head. */
		if (tail < p || tail - p > fl->lane.capacity || (p & 7)) {
			fprintf(stderr, "ckring-flusher: lane %u: persisted position %llu "
				"outside the ring (tail %llu); starting at head %llu\n", i,
				(unsigned long long)p, (unsigned long long)tail,
				(unsigned long long)head);
			p = head;
		}
		fl->rpos = fl->committed = fl->synced = fl->tail_seen = p;
		ckr_lane_release(&fl->lane, p, p);
	}
	free(pos);
	return rc;
}

static int copy_opts(ckr_flusher *f, const ckr_flusher_opts *o)
{
	f->opts = *o;
	f->segment_name = strdup(o->segment);
	f->db_dir = strdup(o->db_dir);
	if (!f->segment_name || !f->db_dir)
		return -ENOMEM;
	f->opts.segment = f->segment_name;
	f->opts.db_dir = f->db_dir;
	if (!f->opts.idle_max_us)
		f->opts.idle_max_us = 1000;
	const char *crash = getenv("CKR_FLUSHER_CRASH");
	if (crash && *crash)
		ckr_flusher_crash_parse(f, crash);
	return 0;
}

static int open_store(ckr_flusher *f)
{
	ckr_store_rw_opts so = {
		.map_size = f->opts.map_size,
		.sync = f->opts.sync,
		.keep_completed_s = f->opts.keep_completed_s,
		.max_attempts = f->opts.max_attempts,
	};
	int rc = ckr_store_open_rw(f->opts.db_dir, &so, &f->store);
	if (rc == CKR_STORE_MAPFULL)
		rc = -ENOSPC; /* the map is too small to set the store up */
	if (rc && f->opts.failed_part)
		*f->opts.failed_part = "store";
	return rc;
}

int ckr_flusher_open(const ckr_flusher_opts *o, ckr_flusher **out)
{
	if (!o || !o->segment || !o->db_dir)
		return -EINVAL;
	ckr_flusher *f = calloc(1, sizeof *f);
	if (!f)
		return -ENOMEM;
	int rc = copy_opts(f, o);
	if (rc == 0)
		rc = open_segment(f);
	if (rc)
		goto fail_free;
	f->lanes = calloc(f->seg.lane_count, sizeof *f->lanes);
	f->buf_cap = (size_t)f->seg.max_record + CKR_REC_HEADER + 8;
	f->buf = malloc(f->buf_cap);
	rc = f->lanes && f->buf ? open_store(f) : -ENOMEM;
	if (rc)
		goto fail_detach;
	/* The slot is claimed once the store is ready, so a process that sees
	 * a flusher in the segment also finds its store set up. */
	rc = claim_slot(f);
	if (rc && o->failed_part)
		*o->failed_part = "flusher slot";
	if (rc)
		goto fail_store;
	rc = restore_positions(f);
	if (rc)
		goto fail_slot;
	f->last_sync_ns = f->last_housekeep_ns = ckr_now_ns(CLOCK_MONOTONIC);
	ckr_flusher_heartbeat(f);
	*out = f;
	return 0;
fail_slot:
	release_slot(f);
fail_store:
	ckr_store_close(f->store);
fail_detach:
	ckr_segment_detach(&f->seg);
	if (f->created) /* do not leave a segment nobody will serve */
		ckr_segment_unlink(f->opts.segment);
fail_free:
	free(f->lanes);
	free(f->buf);
	free(f->segment_name);
	free(f->db_dir);
	free(f);
	return rc;
}

void ckr_flusher_close(ckr_flusher *f)
{
	if (!f)
		return;
	ckr_store_sync(f->store);
	ckr_store_close(f->store);
	release_slot(f);
	ckr_segment_detach(&f->seg);
	free(f->lanes);
	free(f->buf);
	free(f->segment_name);
	free(f->db_dir);
	free(f);
}

void ckr_flusher_heartbeat(ckr_flusher *f)
{
	/* relaxed: a gauge for the inspector. */
	atomic_store_explicit(&ckr_seg_fl(&f->seg)->heartbeat_ns,
			      ckr_now_ns(CLOCK_MONOTONIC), memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* owners                                                              */
/* ------------------------------------------------------------------ */

/* Are the lane's writers gone (owner dead or detached)? Liveness is read
 * from /proc only when the owner word changed or the cached answer is older
 * than `max_age_ns`. A free lane (0) counts as live: it may be attached now. */
static bool writers_gone(flusher_lane *fl, uint64_t owner, uint64_t max_age_ns)
{
	if (owner == 0)
		return false;
	if (owner & CKR_OWNER_DETACHED)
		return true;
	uint64_t now = ckr_now_ns(CLOCK_MONOTONIC);
	if (owner != fl->owner_seen || now - fl->owner_checked_ns > max_age_ns) {
		fl->owner_seen = owner;
		fl->owner_checked_ns = now;
		fl->owner_dead = !ckr_proc_alive(owner);
	}
	return fl->owner_dead;
}

bool ckr_flusher_lane_moved(const flusher_lane *fl)
{
	uint64_t tail = ckr_lane_tail(&fl->lane);
	if (tail != fl->tail_seen)
		return true;
	/* The last pass stopped at a claim that was open then: has its
	 * producer sealed it since? (The tail does not move when it does.) */
	return tail != fl->rpos && ckr_lane_ready(&fl->lane, fl->rpos);
}

/*
 * Is there anything to do in this lane: new records (it moved, see
 * ckr_flusher_lane_moved), or an owner that left (its lane is to be drained
 * and freed)? An idle flusher answers this from two loads per lane and,
 * rarely, a liveness check: a stuck lane (records behind a claim) every
 * 50 ms, an idle owned lane every second.
 */
static bool lane_has_work(flusher_lane *fl)
{
	if (ckr_flusher_lane_moved(fl))
		return true;
	uint64_t tail = ckr_lane_tail(&fl->lane);
	uint64_t owner = ckr_lane_owner(&fl->lane);
	uint64_t age = tail != fl->rpos ? LIVENESS_EVERY_NS : IDLE_LIVENESS_EVERY_NS;
	return writers_gone(fl, owner, age);
}

/* Does any other lane still belong to the process of token? */
static bool token_in_other_lane(ckr_flusher *f, uint32_t self, uint64_t token)
{
	for (uint32_t i = 0; i < f->seg.lane_count; i++) {
		uint64_t o = ckr_lane_owner(&f->lanes[i].lane) & ~CKR_OWNER_DETACHED;
		if (i != self && o == token)
			return true;
	}
	return false;
}

/*
 * A run's owner that died without ever holding a lane (a recoverer that
 * claimed a run and died before pushing) would never be marked drained, so
 * its run could never be claimed again. Such an owner has nothing in the
 * ring: mark it drained. Dead is checked before the lanes are scanned, so the
 * owner cannot attach a lane in between.
 */
int ckr_flusher_mark_lost_owners(ckr_flusher *f)
{
	ckr_run_info *runs;
	size_t n;
	int rc = ckr_store_list(f->store, CKR_LIST_INTERRUPTED, &runs, &n);
	if (rc)
		return rc;
	ckr_batch *b = NULL;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		uint64_t tok = ckr_token_make((pid_t)runs[i].owner_pid, runs[i].owner_start);
		if (runs[i].owner_drained || runs[i].owner_alive ||
		    token_in_other_lane(f, UINT32_MAX, tok))
			continue;
		if (!b)
			rc = ckr_batch_begin(f->store, &b);
		if (rc == 0)
			rc = ckr_batch_owner_drained(b, tok);
	}
	free(runs);
	if (b && rc == 0)
		return ckr_batch_commit(b);
	ckr_batch_abort(b);
	return rc;
}

/* ------------------------------------------------------------------ */
/* one batch                                                           */
/* ------------------------------------------------------------------ */

/* A begin may only name the lane's own owner as its owner. */
static bool begin_owner_ok(const ckr_event *ev, uint64_t owner)
{
	if (ev->type != CKR_EV_BEGIN)
		return true;
	uint64_t tok = ckr_token_make((pid_t)ev->u.begin.owner_pid, ev->u.begin.owner_start);
	return tok == (owner & ~CKR_OWNER_DETACHED);
}

static int take_record(ckr_flusher *f, ckr_batch *b, flusher_lane *fl,
		       uint64_t owner, const ckr_lane_record *rec)
{
	ckr_event ev;
	ckr_apply what;
	const char *bad = NULL;
	if (ckr_event_decode(f->buf, rec->payload_len, &ev) != 0)
		bad = "undecodable event";
	else if (!begin_owner_ok(&ev, owner))
		bad = "begin names another owner than the lane's";
	if (bad) {
		f->batch.corrupt++;
		return ckr_batch_quarantine(b, bad, fl->lane.index, rec->pos, f->buf,
					    rec->payload_len);
	}
	int rc = ckr_batch_apply(b, &ev, f->buf, rec->payload_len, &what);
	if (rc == 0)
		f->batch.applied[what]++;
	return rc;
}

static int take_one(ckr_flusher *f, ckr_batch *b, flusher_lane *fl,
		    uint64_t owner, const ckr_lane_record *rec)
{
	switch (rec->status) {
	case CKR_READ_RECORD:
		return take_record(f, b, fl, owner, rec);
	case CKR_READ_CORRUPT:
		f->batch.corrupt++;
		return ckr_batch_quarantine(b, rec->reason, fl->lane.index, rec->pos,
					    f->buf, rec->raw_len);
	case CKR_READ_ABANDONED: {
		/* Keep the skipped bytes: a dead producer's half-written
		 * record, or a record whose seal was scribbled (the two cannot
		 * be told apart). */
		f->batch.reclaimed++;
		size_t n = ckr_lane_copy(&fl->lane, rec->pos, rec->next, f->buf, f->buf_cap);
		return ckr_batch_quarantine(b, "skipped: abandoned claim of a dead or "
					    "detached owner, or a scribbled seal",
					    fl->lane.index, rec->pos, f->buf, n);
	}
	default:
		return 0;
	}
}

/* Drain one lane into the batch; stops at WAIT/EMPTY or the batch limits.
 * Sets fl->pending (the lane's new position) and fl->free_after. */
static int drain_lane(ckr_flusher *f, ckr_batch *b, uint32_t i, size_t *n,
		      uint64_t *bytes)
{
	flusher_lane *fl = &f->lanes[i];
	uint64_t owner = ckr_lane_owner(&fl->lane);
	bool gone = writers_gone(fl, owner, LIVENESS_EVERY_NS);
	ckr_lane_record rec;
	fl->pending = fl->rpos;
	fl->pending_records = 0;
	fl->free_after = 0;
	fl->tail_seen = ckr_lane_tail(&fl->lane);
	while (*n < BATCH_MAX_EVENTS && *bytes < BATCH_MAX_BYTES) {
		ckr_lane_read(&fl->lane, fl->pending, gone, f->buf, f->buf_cap, &rec);
		if (rec.status == CKR_READ_WAIT)
			break;
		if (rec.status == CKR_READ_EMPTY) {
			fl->pending = rec.next;
			if (gone)
				fl->free_after = owner;
			break;
		}
		int rc = take_one(f, b, fl, owner, &rec);
		if (rc)
			return rc;
		*bytes += rec.next - fl->pending;
		fl->pending = rec.next;
		fl->pending_records++;
		(*n)++;
		ckr_flusher_crash_point(f, CKR_CRASH_MID_BATCH);
	}
	return 0;
}

/* Per lane: the cursor row, and for a drained dead lane the owner mark. */
static int batch_positions(ckr_flusher *f, ckr_batch *b, bool *work)
{
	for (uint32_t i = 0; i < f->seg.lane_count; i++) {
		flusher_lane *fl = &f->lanes[i];
		if (fl->pending != fl->rpos) {
			*work = true;
			int rc = ckr_batch_set_cursor(b, f->seg.epoch, i, fl->pending);
			if (rc)
				return rc;
		}
		uint64_t tok = fl->free_after & ~CKR_OWNER_DETACHED;
		if (fl->free_after && !token_in_other_lane(f, i, tok)) {
			*work = true;
			int rc = ckr_batch_owner_drained(b, tok);
			if (rc)
				return rc;
		}
		*work = *work || fl->free_after;
	}
	return 0;
}

static int fill_batch(ckr_flusher *f, ckr_batch *b, size_t *n, bool *work)
{
	uint64_t bytes = 0;
	*n = 0;
	*work = false;
	for (uint32_t k = 0; k < f->seg.lane_count; k++) {
		/* Start at a rotating lane so no lane starves the others. */
		uint32_t i = (f->next_lane + k) % f->seg.lane_count;
		int rc = drain_lane(f, b, i, n, &bytes);
		if (rc)
			return rc;
	}
	f->next_lane = (f->next_lane + 1) % f->seg.lane_count;
	return batch_positions(f, b, work);
}

/* The batch's statistics count once it is committed. */
static void merge_stats(ckr_flusher *f)
{
	ckr_seg_counters *c = ckr_seg_ctr(&f->seg);
	/* relaxed: counters for the inspector; they survive flusher restarts
	 * because they live in the segment. */
	atomic_fetch_add_explicit(&c->reclaimed, f->batch.reclaimed, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->corrupt, f->batch.corrupt, memory_order_relaxed);
	for (size_t i = 0; i < sizeof f->stats.applied / sizeof f->stats.applied[0]; i++)
		f->stats.applied[i] += f->batch.applied[i];
	f->stats.corrupt += f->batch.corrupt;
	f->stats.reclaimed += f->batch.reclaimed;
}

/* C6/C7 after the commit: move heads, free drained dead lanes, wake. */
static void publish(ckr_flusher *f, size_t n)
{
	merge_stats(f);
	ckr_seg_flusher *sf = ckr_seg_fl(&f->seg);
	bool synced = f->opts.sync == CKR_SYNC_ALWAYS;
	for (uint32_t i = 0; i < f->seg.lane_count; i++) {
		flusher_lane *fl = &f->lanes[i];
		if (fl->pending != fl->rpos) {
			fl->rpos = fl->committed = fl->pending;
			if (synced)
				fl->synced = fl->committed;
			ckr_lane_release(&fl->lane, fl->committed, fl->synced);
			/* relaxed: a statistic. */
			atomic_fetch_add_explicit(&fl->lane.ctl->drained, fl->pending_records,
						  memory_order_relaxed);
		}
		if (fl->free_after)
			ckr_lane_repair_tail(&fl->lane, fl->rpos);
		if (fl->free_after && ckr_lane_free(&fl->lane, fl->free_after))
			atomic_fetch_add_explicit(&ckr_seg_ctr(&f->seg)->lanes_freed, 1,
						  memory_order_relaxed);
		fl->free_after = 0;
	}
	atomic_fetch_add_explicit(&sf->records, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&sf->batches, 1, memory_order_relaxed);
	ckr_flusher_wake_waiters(f);
}

void ckr_flusher_wake_waiters(ckr_flusher *f)
{
	ckr_seg_flusher *sf = ckr_seg_fl(&f->seg);
	/* seq_cst: pairs with ckr_wait()'s seq_cst increment of waiters and
	 * load of commit_seq (client/wait.c): no lost wake-up. */
	atomic_fetch_add(&sf->commit_seq, 1);
	if (atomic_load(&sf->waiters))
		ckr_futex_wake(&sf->commit_seq, 0x7fffffff);
}

/* Is the store's file system (almost) out of space? */
static bool disk_nearly_full(const ckr_flusher *f)
{
	struct statvfs st;
	if (statvfs(f->opts.db_dir, &st) != 0)
		return false;
	return (uint64_t)st.f_bavail * st.f_frsize < BATCH_MAX_BYTES * 2;
}

/* Map full: grow and replay. Disk full (the map cannot grow, or the commit
 * itself hit ENOSPC): back off; the events stay in the ring. */
static int handle_full(ckr_flusher *f, bool map_full)
{
	int rc = map_full ? ckr_store_grow(f->store) : -ENOSPC;
	if (rc == 0) {
		f->stats.map_grown++;
		return 0;
	}
	f->stats.disk_full++;
	if (f->backoff_ms == 0 || f->stats.disk_full % 16 == 1)
		fprintf(stderr, "ckring-flusher: store full (%s); events stay in the "
			"ring; retrying\n", ckr_strerror(rc));
	f->backoff_ms = f->backoff_ms ? f->backoff_ms * 2 : 10;
	if (f->backoff_ms > 1000)
		f->backoff_ms = 1000;
	struct timespec ts = { (time_t)(f->backoff_ms / 1000),
			       (long)(f->backoff_ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
	return 0;
}

int ckr_flusher_drain_once(ckr_flusher *f, size_t *n_events)
{
	ckr_batch *b;
	size_t n = 0;
	bool work = false;
	*n_events = 0;
	bool any = f->replay; /* a batch that did not commit is read again */
	for (uint32_t i = 0; i < f->seg.lane_count; i++)
		any = lane_has_work(&f->lanes[i]) || any;
	if (!any)
		return 0; /* idle: no store transaction at all */
	memset(&f->batch, 0, sizeof f->batch);
	int rc = ckr_batch_begin(f->store, &b);
	if (rc)
		return rc;
	f->replay = true; /* until the commit below succeeds */
	rc = fill_batch(f, b, &n, &work);
	if (rc == CKR_STORE_MAPFULL) {
		ckr_batch_abort(b);
		return handle_full(f, true);
	}
	if (rc || !work) {
		ckr_batch_abort(b);
		f->replay = rc != 0;
		return rc;
	}
	rc = ckr_batch_commit(b);
	if (rc == -EIO && disk_nearly_full(f))
		rc = -ENOSPC; /* LMDB reports a short write on a full disk as EIO */
	if (rc == CKR_STORE_MAPFULL || rc == -ENOSPC)
		return handle_full(f, rc == CKR_STORE_MAPFULL);
	if (rc)
		return rc;
	f->backoff_ms = 0;
	f->replay = false;
	ckr_flusher_crash_point(f, CKR_CRASH_AFTER_COMMIT);
	publish(f, n);
	ckr_flusher_crash_point(f, CKR_CRASH_AFTER_RELEASE);
	*n_events = n;
	return 0;
}
