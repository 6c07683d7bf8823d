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
 * One writer per run (ring/PROTOCOL.md, "Owners, writers and claims"): each
 * event is applied with the identity of the lane it came through; a
 * rejected event is kept as a report in the batch (W1) and written to its
 * writer's slot after the commit, before head passes it (W2); a restart
 * republishes the kept reports (W4). A lane's tenure is judged gone by its
 * kernel lock (G); the identity of a gone tenure is ended once its last
 * lane is drained (E1), dead lane-less owners once a second (E2).
 *
 * Concurrency: one flusher per segment (its kernel lock on byte
 * CKR_LOCK_FLUSHER); a ckr_flusher is used by one thread.
 */
#include "persist/flusher.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "event/event.h"
#include "persist/guard.h"
#include "ring/lane.h"
#include "ring/wake.h"
#include "shm/clock.h"
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

/* R1: take the flusher slot: its kernel lock (a dead flusher's lock is gone
 * with it). The informational owner word follows once it serves
 * (publish_slot). */
static int claim_slot(ckr_flusher *f)
{
	int rc = ckr_proc_self_token(&f->token);
	if (rc)
		return rc;
	rc = ckr_seg_lock(&f->seg, CKR_LOCK_FLUSHER);
	if (rc == -EAGAIN)
		return -EBUSY;
	return rc;
}

/* The owner word, stored once the positions are restored and published
 * (head, an honest synced): whoever sees this flusher in the segment also
 * sees what it published at its start. */
static void publish_slot(ckr_flusher *f)
{
	/* release: orders the restart's ckr_lane_release stores before it,
	 * pairing with the acquire of readers of the word (inspector, tests);
	 * the lock, not the word, is what excludes a second flusher. */
	atomic_store_explicit(&ckr_seg_fl(&f->seg)->owner, f->token, memory_order_release);
}

static void release_slot(ckr_flusher *f)
{
	uint64_t me = f->token;
	/* release: a later flusher sees what we published; then the lock. */
	atomic_compare_exchange_strong_explicit(&ckr_seg_fl(&f->seg)->owner, &me, 0,
						memory_order_release,
						memory_order_relaxed);
	ckr_seg_unlock(&f->seg, CKR_LOCK_FLUSHER);
}

void ckr_flusher_log(const ckr_flusher *f, ckr_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	if (!f->opts.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	f->opts.log(f->opts.log_ctx, level, msg);
}

/* W4: write the reports a previous flusher committed to their slots, in
 * case it died before it did (idempotent: W2 keeps an earlier report and
 * skips a slot that moved on). The rows are deleted by the next batch. */
static int republish_rejections(ckr_flusher *f)
{
	ckr_rejection *v;
	size_t n;
	int rc = ckr_store_rejections(f->store, &v, &n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (v[i].lane >= f->seg.lane_count ||
		    memcmp(v[i].epoch, f->seg.epoch, CKR_EPOCH_BYTES) != 0)
			continue;
		ckr_lane_slot_reject(&f->lanes[v[i].lane].lane, v[i].slot, v[i].writer,
				     v[i].pos, (ckr_reject_reason)v[i].reason);
	}
	f->rejections_kept = n > 0;
	free(v);
	return 0;
}

/* E3: bind the store to this segment; a new epoch retires the old one. */
static int bind_store(ckr_flusher *f)
{
	char bound[CKR_NAME_MAX + 1] = "";
	bool retired = false;
	int rc = ckr_store_bind_segment(f->store, f->seg.name, f->seg.epoch, &retired,
					bound);
	if (rc == CKR_ESEGMENT)
		ckr_flusher_log(f, CKR_LOG_ERROR, "%s serves segment '%s', not '%s' "
				"(one store serves one segment: use another --db)",
				f->opts.db_dir, bound, f->seg.name);
	else if (rc == 0 && retired)
		ckr_flusher_log(f, CKR_LOG_INFO, "segment '%s' was recreated: runs "
				"written under its old epoch are claimable", f->seg.name);
	return rc;
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
			ckr_flusher_log(f, CKR_LOG_WARN, "lane %u: persisted position %llu "
					"outside the ring (tail %llu); starting at head %llu",
					i, (unsigned long long)p, (unsigned long long)tail,
					(unsigned long long)head);
			p = head;
		}
		fl->rpos = fl->committed = fl->synced = p;
		fl->tail_hint = 0;
	}
	free(pos);
	if (rc == 0)
		rc = republish_rejections(f);
	/* Honest SYNCED: what a previous flusher committed may not be on disk
	 * (sync=none/interval); one fsync makes it so before it is said. */
	if (rc == 0)
		rc = ckr_store_sync(f->store);
	for (uint32_t i = 0; rc == 0 && i < n; i++)
		ckr_lane_release(&f->lanes[i].lane, f->lanes[i].rpos, f->lanes[i].rpos);
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
	f->housekeep_ns = UINT64_C(1000000000);
	f->size_check_ns = UINT64_C(1000000000);
#ifdef CKR_TEST_HOOKS
	const char *crash = getenv("CKR_FLUSHER_CRASH");
	if (crash && *crash)
		ckr_flusher_crash_parse(f, crash);
	/* A test that must tell a wake-up from the tick makes the tick long. */
	const char *tick = getenv("CKR_FLUSHER_TICK_MS");
	if (tick && *tick)
		f->housekeep_ns = strtoull(tick, NULL, 10) * 1000000;
	/* Tests: the interval of the size check in ms (0: never), so a test
	 * of the SIGBUS path is not pre-empted by it. */
	const char *check = getenv("CKR_FLUSHER_SIZE_CHECK_MS");
	if (check && *check)
		f->size_check_ns = strtoull(check, NULL, 10) * 1000000;
#endif
	return 0;
}

static int open_store(ckr_flusher *f)
{
	ckr_store_rw_opts so = {
		.map_size = f->opts.map_size,
		.sync = f->opts.sync,
		.keep_completed_s = f->opts.keep_completed_s,
		.max_attempts = f->opts.max_attempts,
		.shared_group = f->opts.shared_group,
		.defer_max_attempts = true, /* recorded once we serve */
	};
	int rc = ckr_store_open_rw(f->opts.db_dir, &so, &f->store);
	if (rc == CKR_STORE_MAPFULL)
		rc = -ENOSPC; /* the map is too small to set the store up */
	if (rc && f->opts.failed_part)
		*f->opts.failed_part = "store";
	return rc;
}

/* The part of the open that touches the segment (inside the guard): take
 * the slot once the store is ready, and show it (the owner word) once the
 * positions are restored, so a process that sees a flusher in the segment
 * also finds its store set up and its start's head and synced published. */
static int open_slot_and_positions(ckr_flusher *f, void *arg)
{
	(void)arg;
	int rc = claim_slot(f);
	f->slot_failed = rc != 0;
	if (rc)
		return rc;
	/* Only a flusher that serves sets the recovery policy: one refused
	 * (another flusher serves the segment, or the store serves another
	 * segment) has left meta as it was. */
	rc = ckr_store_record_max_attempts(f->store, f->opts.max_attempts);
	while (rc == CKR_STORE_MAPFULL && ckr_store_grow(f->store) == 0)
		rc = ckr_store_record_max_attempts(f->store, f->opts.max_attempts);
	if (rc == CKR_STORE_MAPFULL)
		rc = -ENOSPC;
	if (rc == 0)
		rc = restore_positions(f);
	if (rc == 0) {
		/* The last touches before the syncer thread starts: a fault from
		 * here on could not stop it on the way out. */
		ckr_flusher_heartbeat(f);
		publish_slot(f);
		rc = ckr_flusher_syncer_start(f);
	}
	if (rc) {
		release_slot(f);
		return rc;
	}
	f->last_sync_ns = f->last_housekeep_ns = ckr_now_ns(CLOCK_MONOTONIC);
	return 0;
}

/* The store directory, before anything is made (store_open.c "directory
 * checks"); a refusal is said in one line. */
static int check_store_dir(ckr_flusher *f)
{
	char why[200];
	int rc = ckr_store_check_dir(f->opts.db_dir, f->opts.shared_group, why, sizeof why);
	if (rc == CKR_EUNSAFE)
		ckr_flusher_log(f, CKR_LOG_ERROR, "cannot serve segment '%s' with store "
				"'%s': store: %s", f->opts.segment, f->opts.db_dir, why);
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
		rc = check_store_dir(f);
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
	rc = bind_store(f);
	/* The opening writes may find the map full: a restart maps no more
	 * than the store uses when that exceeds --map-size. Grow it, as a
	 * batch would (handle_full), and write again. */
	while (rc == CKR_STORE_MAPFULL && ckr_store_grow(f->store) == 0)
		rc = bind_store(f);
	if (rc == CKR_STORE_MAPFULL)
		rc = -ENOSPC;
	if (rc && o->failed_part)
		*o->failed_part = "store";
	if (rc)
		goto fail_store;
	ckr_fm_init(&f->metrics); /* before the syncer thread can record */
	rc = ckr_flusher_guarded(f, open_slot_and_positions, NULL);
	if (rc && o->failed_part && (f->seg_lost || f->slot_failed))
		*o->failed_part = f->seg_lost ? "segment" : "flusher slot";
	if (rc)
		goto fail_store;
	*out = f;
	return 0;
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

void ckr_flusher_stats_get(const ckr_flusher *f, ckr_flusher_stats *out)
{
	const flusher_counts *c = &f->stats;
	memset(out, 0, sizeof *out);
	out->stored = c->applied[CKR_APPLY_STORED];
	out->dup_begin = c->applied[CKR_APPLY_DUP_BEGIN];
	out->foreign = c->applied[CKR_APPLY_FOREIGN];
	out->stale = c->applied[CKR_APPLY_STALE];
	out->orphan = c->applied[CKR_APPLY_ORPHAN];
	out->after_end = c->applied[CKR_APPLY_AFTER_END];
	out->dup_seq = c->applied[CKR_APPLY_DUP_SEQ];
	out->bad_kind = c->applied[CKR_APPLY_BAD_KIND] + c->applied[CKR_APPLY_BAD_BEGIN];
	for (int i = CKR_APPLY_STORED + 1; i < CKR_APPLY_COUNT; i++)
		out->rejected += c->applied[i];
	out->corrupt = c->corrupt;
	out->reclaimed = c->reclaimed;
	out->batches = c->batches;
	out->map_grown = c->map_grown;
	out->disk_full = c->disk_full;
}

static int release_slot_fn(ckr_flusher *f, void *arg)
{
	(void)arg;
	release_slot(f);
	return 0;
}

void ckr_flusher_close(ckr_flusher *f)
{
	if (!f)
		return;
	ckr_flusher_syncer_stop(f);
	ckr_store_sync(f->store);
	ckr_store_close(f->store);
	ckr_flusher_guarded(f, release_slot_fn, NULL); /* not once it shrank */
	ckr_segment_detach(&f->seg);
	free(f->lanes);
	free(f->buf);
	free(f->rejects);
	free(f->detached);
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

/* G for a lane (ring/lane.h ckr_lane_tenure_gone). The lock is probed only
 * when the tenure (owner word and generation) changed or the cached answer
 * is older than `max_age_ns`; a cached "gone" is final for that tenure. A
 * free lane (0) is not gone: it may be attached now. */
static bool tenure_gone(ckr_flusher *f, flusher_lane *fl, ckr_tenure t,
			uint64_t max_age_ns)
{
	if (t.owner == 0)
		return false;
	if (t.owner & CKR_OWNER_DETACHED)
		return true;
	uint64_t now = ckr_now_ns(CLOCK_MONOTONIC);
	if (!ckr_tenure_eq(t, fl->seen) ||
	    (!fl->owner_gone && now - fl->owner_checked_ns > max_age_ns)) {
		fl->seen = t;
		fl->owner_checked_ns = now;
		fl->owner_gone = ckr_lane_tenure_gone(&f->seg, &fl->lane, t);
	}
	return fl->owner_gone;
}

/* New work for a live owner can only begin with a record sealed where the
 * last pass stopped: everything past an open claim waits for it. So the
 * seal at rpos is the test — a line the producer writes anyway — and the
 * producers' tail line is not read (a gone owner's lane is found by the
 * liveness check of lane_has_work). */
bool ckr_flusher_lane_moved(const flusher_lane *fl)
{
	return ckr_lane_ready(&fl->lane, fl->rpos);
}

/*
 * Is there anything to do in this lane: new records (it moved, see
 * ckr_flusher_lane_moved), or a tenure that ended (its lane is to be
 * drained and freed)? A polling flusher answers this from the seal at rpos
 * and the owner word — lines the producers do not write on each push —
 * and looks at the producers' tail at most every 50 ms, to tell a stuck
 * lane (records behind an open claim: its owner is probed every 50 ms) from
 * an idle one (probed every second).
 */
static bool lane_has_work(ckr_flusher *f, flusher_lane *fl)
{
	if (ckr_flusher_lane_moved(fl))
		return true;
	ckr_tenure t = ckr_lane_tenure(&fl->lane);
	if (t.owner == 0)
		return false;
	if (t.owner & CKR_OWNER_DETACHED)
		return true;
	bool same = ckr_tenure_eq(t, fl->seen);
	if (same && fl->owner_gone)
		return true;
	uint64_t now = ckr_now_ns(CLOCK_MONOTONIC);
	if (same && now < fl->next_check_ns)
		return false;
	bool stuck = ckr_lane_tail(&fl->lane) != fl->rpos;
	fl->next_check_ns = now + LIVENESS_EVERY_NS;
	return tenure_gone(f, fl, t, stuck ? LIVENESS_EVERY_NS : IDLE_LIVENESS_EVERY_NS);
}

/* Does any lane other than `self` hold identity id (token and nonce)? */
static bool identity_in_other_lane(ckr_flusher *f, uint32_t self, const ckr_identity *id)
{
	for (uint32_t i = 0; i < f->seg.lane_count; i++) {
		if (i == self)
			continue;
		uint64_t o = ckr_lane_owner(&f->lanes[i].lane);
		ckr_identity other;
		if (o == 0)
			continue;
		ckr_lane_owner_identity(&f->lanes[i].lane, o, &other);
		if (ckr_identity_eq(&other, id))
			return true;
	}
	return false;
}

/* The candidates of E2: owners of running runs dead by /proc, then the
 * identities marked gone. *out malloc'd. */
static int lost_owners(ckr_flusher *f, ckr_identity **out, size_t *n)
{
	ckr_identity *gone = NULL;
	size_t n_gone = 0;
	int rc = ckr_store_dead_owners(f->store, out, n);
	if (rc == 0)
		rc = ckr_store_gone_owners(f->store, &gone, &n_gone);
	if (rc == 0 && n_gone) {
		ckr_identity *all = realloc(*out, (*n + n_gone) * sizeof *all);
		if (all) {
			memcpy(all + *n, gone, n_gone * sizeof *gone);
			*out = all;
			*n += n_gone;
		} else {
			rc = -ENOMEM;
		}
	}
	free(gone);
	if (rc) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

#ifdef CKR_TEST_HOOKS
void (*ckr_flusher_test_after_c0)(ckr_flusher *f, uint32_t lane, uint64_t owner);
#endif

#define DETACHED_MAX 4096 /* identities kept for the exec check */

static uint64_t image_byte(const ckr_identity *id)
{
	return CKR_LOCK_IMAGE(id->token, id->nonce);
}

/* E1 found id's last lane (i) freed after a clean detach, its image alive
 * by /proc: keep it for E2 if its tenure says it held a presence lock
 * (whether it still does is E2's question: it may have exec'd already; an
 * image of a library without the lock is left to /proc). */
static void detached_remember(ckr_flusher *f, uint32_t i, const ckr_identity *id)
{
	if (ckr_lane_owner_presence(&f->lanes[i].lane, id) == 0)
		return;
	for (size_t k = 0; k < f->n_detached; k++)
		if (ckr_identity_eq(&f->detached[k], id))
			return;
	if (!f->detached) {
		f->detached = calloc(DETACHED_MAX, sizeof *f->detached);
		if (!f->detached)
			return; /* left to /proc: later, never early */
	}
	if (f->n_detached == DETACHED_MAX) /* the oldest goes to /proc */
		memmove(f->detached, f->detached + 1, (DETACHED_MAX - 1) * sizeof *f->detached);
	else
		f->n_detached++;
	f->detached[f->n_detached - 1] = *id;
}

/* Add to *v the kept identities whose image is gone (presence lock free, or
 * dead by /proc), dropping them from the list (one attached again is then
 * skipped by E2 and ended by E1 when that lane goes). @return 0; -ENOMEM. */
static int detached_gone(ckr_flusher *f, ckr_identity **v, size_t *n)
{
	size_t keep = 0;
	int rc = 0;
	for (size_t i = 0; i < f->n_detached; i++) {
		const ckr_identity *id = &f->detached[i];
		int held = ckr_seg_lock_held(&f->seg, image_byte(id));
		bool gone = held == 0 || ckr_proc_judge(id->token, id->pidns) == CKR_PROC_DEAD;
		if (gone && rc == 0) {
			ckr_identity *all = realloc(*v, (*n + 1) * sizeof *all);
			if (all) {
				all[(*n)++] = *id;
				*v = all;
			} else {
				rc = -ENOMEM;
			}
		}
		if (!gone || rc)
			f->detached[keep++] = *id;
	}
	f->n_detached = keep;
	return rc;
}

/*
 * E2: an identity whose image is gone — a run's owner whose token is dead
 * by /proc (a recoverer that claimed a run and died before it attached, or
 * an owner that detached cleanly and then died), one marked gone by a
 * dropped lock while it held another lane (an exec, E1), or one that
 * detached cleanly and whose presence lock went since (an exec: its pid and
 * start time stay) — and that holds no lane has nothing in the ring: end
 * it. The image is judged gone before the lanes are scanned, so the owner
 * cannot attach a lane in between (F3). Owners of another pid namespace are
 * left to their lanes' locks: /proc can't judge them.
 */
int ckr_flusher_end_lost_owners(ckr_flusher *f)
{
	ckr_identity *dead = NULL;
	size_t n_dead = 0;
	int rc = lost_owners(f, &dead, &n_dead);
	if (rc == 0)
		rc = detached_gone(f, &dead, &n_dead);
	if (rc) {
		free(dead);
		return rc;
	}
	ckr_batch *b = NULL;
	for (size_t i = 0; rc == 0 && i < n_dead; i++) {
		if (identity_in_other_lane(f, UINT32_MAX, &dead[i]))
			continue;
		if (!b)
			rc = ckr_batch_begin(f->store, &b);
		f->open_batch = b; /* lanes are read while it is open */
		if (rc == 0)
			rc = ckr_batch_owner_ended(b, &dead[i]);
	}
	free(dead);
	f->open_batch = NULL;
	if (b && rc == 0)
		return ckr_batch_commit(b);
	ckr_batch_abort(b);
	return rc;
}

/* ------------------------------------------------------------------ */
/* one batch                                                           */
/* ------------------------------------------------------------------ */

/* A begin may only name the lane's own owner as its owner. */
static bool begin_owner_ok(const ckr_event *ev, const ckr_identity *from)
{
	if (ev->type != CKR_EV_BEGIN)
		return true;
	uint64_t tok = ckr_token_make((pid_t)ev->u.begin.owner_pid, ev->u.begin.owner_start);
	return tok == from->token;
}

/* W1: keep the report in the batch and in memory for W2. */
static int note_rejection(ckr_flusher *f, ckr_batch *b, const flusher_lane *fl,
			  const ckr_event *ev, uint64_t end, ckr_apply what)
{
	if (ev->writer == 0)
		return 0; /* nobody to tell (a forged or version-1 event) */
	if (f->n_rejects == f->cap_rejects) {
		size_t cap = f->cap_rejects ? f->cap_rejects * 2 : 64;
		pending_reject *p = realloc(f->rejects, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		f->rejects = p;
		f->cap_rejects = cap;
	}
	f->rejects[f->n_rejects++] = (pending_reject){
		.lane = fl->lane.index, .slot = ev->slot, .writer = ev->writer,
		.pos = end, .reason = (uint32_t)what,
	};
	return ckr_batch_rejection(b, f->seg.epoch, fl->lane.index, end, ev->writer,
				   ev->slot, (uint32_t)what);
}

static int take_record(ckr_flusher *f, ckr_batch *b, flusher_lane *fl,
		       const ckr_identity *from, const ckr_lane_record *rec)
{
	ckr_event ev;
	ckr_apply what;
	const char *bad = NULL;
	if (ckr_event_decode(f->buf, rec->payload_len, &ev) != 0)
		bad = "undecodable event";
	else if (ev.version != CKR_EVENT_VERSION)
		bad = "event of another version in the ring";
	else if (!begin_owner_ok(&ev, from))
		bad = "begin names another owner than the lane's";
	if (bad) {
		f->batch.corrupt++;
		return ckr_batch_quarantine(b, bad, fl->lane.index, rec->pos, f->buf,
					    rec->payload_len);
	}
	int rc = ckr_batch_apply(b, &ev, f->buf, rec->payload_len, from, &what);
	if (rc)
		return rc;
	f->batch.applied[what]++;
	return what == CKR_APPLY_STORED ? 0 : note_rejection(f, b, fl, &ev, rec->next, what);
}

static int take_one(ckr_flusher *f, ckr_batch *b, flusher_lane *fl,
		    const ckr_identity *from, const ckr_lane_record *rec)
{
	switch (rec->status) {
	case CKR_READ_RECORD:
		return take_record(f, b, fl, from, rec);
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
	/* C0: the tenure's verdict before any seal of the pass is loaded. */
	ckr_tenure t = ckr_lane_tenure(&fl->lane);
	uint64_t owner = t.owner;
	fl->pending = fl->rpos;
	fl->pending_records = 0;
	fl->free_after = 0;
#ifdef CKR_TEST_HOOKS
	if (ckr_flusher_test_after_c0)
		ckr_flusher_test_after_c0(f, i, owner);
#endif
	/* A free lane holds nothing (C7 frees it drained): skip it. A tenure
	 * that begins after C0 is read in a later pass, under its own owner;
	 * read in this one, its begins would be judged against owner 0 and
	 * quarantined (the torture found it; claim.pml drops a free lane the
	 * same way). */
	if (owner == 0)
		return 0;
	bool gone = tenure_gone(f, fl, t, LIVENESS_EVERY_NS);
	ckr_identity from;
	ckr_lane_owner_identity(&fl->lane, owner, &from);
	ckr_lane_record rec;
	ckr_batch_from_lane(b, i);
	while (*n < BATCH_MAX_EVENTS && *bytes < BATCH_MAX_BYTES) {
		ckr_lane_read_hinted(&fl->lane, fl->pending, gone, &fl->tail_hint, f->buf,
				     f->buf_cap, &rec);
		if (rec.status == CKR_READ_WAIT)
			break;
		if (rec.status == CKR_READ_EMPTY) {
			fl->pending = rec.next;
			if (gone)
				fl->free_after = owner;
			break;
		}
		int rc = take_one(f, b, fl, &from, &rec);
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

/*
 * E1 for lane i, drained and to be freed: its identity is ended when its
 * image is gone — the tenure ended by a dropped lock (death or exec: G saw
 * it), its token is dead by /proc, or an earlier dropped lock marked it gone
 * — and then no other lane holds it (its other lanes are still to be
 * drained). The image is judged gone before the lanes are scanned: a
 * process found dead cannot attach a lane after the scan, but a live one
 * could attach, push and die between a scan and a later /proc look
 * (ring/model/claim.pml, finding F3). A dropped lock while another lane
 * still holds the identity marks it gone, so that it is ended when its last
 * lane goes even if /proc calls it alive then (an exec'd image keeps pid
 * and start time; finding F4), by this rule or by E2.
 */
static int end_or_mark(ckr_flusher *f, ckr_batch *b, uint32_t i)
{
	uint64_t owner = f->lanes[i].free_after;
	ckr_identity id;
	ckr_lane_owner_identity(&f->lanes[i].lane, owner, &id);
	bool dropped = !(owner & CKR_OWNER_DETACHED);
	bool image_gone = dropped || ckr_batch_owner_is_gone(b, &id) ||
			  ckr_proc_judge(id.token, id.pidns) == CKR_PROC_DEAD;
	if (!image_gone) {
		if (!identity_in_other_lane(f, i, &id))
			detached_remember(f, i, &id);
		return 0;
	}
	if (!identity_in_other_lane(f, i, &id))
		return ckr_batch_owner_ended(b, &id);
	return dropped ? ckr_batch_owner_gone(b, &id) : 0;
}

/* Per lane: the cursor row, and for a drained gone lane the ended mark. */
static int batch_positions(ckr_flusher *f, ckr_batch *b, bool *work)
{
	int rc = 0;
	if (f->rejections_kept)
		*work = true; /* commit the drop of the kept reports (fill_batch) */
	for (uint32_t i = 0; rc == 0 && i < f->seg.lane_count; i++) {
		flusher_lane *fl = &f->lanes[i];
		if (fl->pending != fl->rpos) {
			*work = true;
			rc = ckr_batch_set_cursor(b, f->seg.epoch, i, fl->pending);
		}
		if (rc || !fl->free_after)
			continue;
		*work = true;
		rc = end_or_mark(f, b, i);
	}
	return rc;
}

static int fill_batch(ckr_flusher *f, ckr_batch *b, size_t *n, bool *work)
{
	uint64_t bytes = 0;
	*n = 0;
	*work = false;
	f->n_rejects = 0;
	/* The reports the last commit kept were published after it: drop them
	 * now, before this batch keeps its own (W1). Dropped after, they would
	 * go too, and a crash between this commit and W2 would lose them. */
	if (f->rejections_kept) {
		int rc = ckr_batch_clear_rejections(b);
		if (rc)
			return rc;
	}
	for (uint32_t k = 0; k < f->seg.lane_count; k++) {
		/* Start at a rotating lane so no lane starves the others. */
		uint32_t i = (f->next_lane + k) % f->seg.lane_count;
		int rc = drain_lane(f, b, i, n, &bytes);
		if (rc)
			return rc;
	}
	f->next_lane = (f->next_lane + 1) % f->seg.lane_count;
	*work = f->n_rejects > 0;
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
	for (size_t i = 0; i < CKR_APPLY_COUNT; i++)
		f->stats.applied[i] += f->batch.applied[i];
	f->stats.corrupt += f->batch.corrupt;
	f->stats.reclaimed += f->batch.reclaimed;
	f->stats.batches++;
}

/* W2: the committed batch's rejections into their writers' slots, before
 * any head passes them. */
static void publish_rejections(ckr_flusher *f)
{
	for (size_t i = 0; i < f->n_rejects; i++) {
		const pending_reject *r = &f->rejects[i];
		ckr_lane_slot_reject(&f->lanes[r->lane].lane, r->slot, r->writer, r->pos,
				     (ckr_reject_reason)r->reason);
	}
	f->rejections_kept = f->n_rejects > 0;
	f->n_rejects = 0;
}

/* C6/C7 after the commit: reports, heads, free drained gone lanes, wake. */
static void publish(ckr_flusher *f, size_t n)
{
	merge_stats(f);
	publish_rejections(f);
	ckr_seg_flusher *sf = ckr_seg_fl(&f->seg);
	for (uint32_t i = 0; i < f->seg.lane_count; i++) {
		flusher_lane *fl = &f->lanes[i];
		if (fl->pending != fl->rpos) {
			fl->rpos = fl->committed = fl->pending;
			/* C6: head only; synced is the syncer's (sync=always) or
			 * maybe_sync's (interval) to publish. */
			ckr_lane_publish_head(&fl->lane, fl->committed);
			/* relaxed: a statistic. */
			atomic_fetch_add_explicit(&fl->lane.ctl->drained, fl->pending_records,
						  memory_order_relaxed);
		}
		if (fl->free_after) {
			ckr_lane_repair_tail(&fl->lane, fl->rpos);
			fl->tail_hint = 0; /* a new tenure starts from here */
		}
		if (fl->free_after && ckr_lane_free(&fl->lane, fl->free_after)) {
			atomic_fetch_add_explicit(&ckr_seg_ctr(&f->seg)->lanes_freed, 1,
						  memory_order_relaxed);
			/* The tenure ended: forget its cached verdict. The next
			 * tenure may carry the same owner word (an exec'd process
			 * keeps its pid and start time, so its token) and must be
			 * probed afresh, not taken for gone. */
			fl->seen = (ckr_tenure){ 0, 0 };
			fl->owner_gone = false;
		}
		fl->free_after = 0;
	}
	atomic_fetch_add_explicit(&sf->records, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&sf->batches, 1, memory_order_relaxed);
	ckr_flusher_wake_waiters(f);
}

void ckr_flusher_wake_waiters(ckr_flusher *f)
{
	ckr_wake_published(ckr_seg_fl(&f->seg));
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
		ckr_flusher_log(f, CKR_LOG_WARN, "store full (%s); events stay in the "
				"ring; retrying", ckr_strerror(rc));
	f->backoff_ms = f->backoff_ms ? f->backoff_ms * 2 : 10;
	if (f->backoff_ms > 1000)
		f->backoff_ms = 1000;
	struct timespec ts = { (time_t)(f->backoff_ms / 1000),
			       (long)(f->backoff_ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
	return 0;
}

static int drain_once(ckr_flusher *f, size_t *n_events)
{
	ckr_batch *b;
	size_t n = 0;
	bool work = false;
	*n_events = 0;
	bool any = f->replay; /* a batch that did not commit is read again */
	for (uint32_t i = 0; i < f->seg.lane_count; i++)
		any = lane_has_work(f, &f->lanes[i]) || any;
	if (!any)
		return 0; /* idle: no store transaction at all */
	memset(&f->batch, 0, sizeof f->batch);
	int rc = ckr_batch_begin(f->store, &b);
	if (rc)
		return rc;
	f->replay = true; /* until the commit below succeeds */
	f->open_batch = b; /* the segment is read while it is open */
	rc = fill_batch(f, b, &n, &work);
	f->open_batch = NULL;
	if (rc == CKR_STORE_MAPFULL) {
		ckr_batch_abort(b);
		return handle_full(f, true);
	}
	if (rc || !work) {
		ckr_batch_abort(b);
		f->replay = rc != 0;
		return rc;
	}
	uint64_t commit_t0 = ckr_fm_now(); /* metrics: the commit's latency */
	rc = ckr_batch_commit(b);
	uint64_t commit_ns = ckr_fm_now() - commit_t0;
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
	ckr_fm_batch(f, commit_ns, n); /* metrics (flusher_metrics.c) */
	ckr_flusher_crash_point(f, CKR_CRASH_AFTER_RELEASE);
	*n_events = n;
	return ckr_flusher_sync_after_commit(f);
}

/* ------------------------------------------------------------------ */
/* a segment that shrinks under us (persist/guard.h)                   */
/* ------------------------------------------------------------------ */

/* Which part of the segment offset off is in, for the message. */
static void describe_offset(const ckr_segment *g, uint64_t off, char *out, size_t n)
{
	if (off < CKR_SEG_CTL_OFFSET)
		snprintf(out, n, "its header");
	else if (off < g->writers_offset)
		snprintf(out, n, "lane %llu's control words",
			 (unsigned long long)((off - CKR_SEG_CTL_OFFSET) / CKR_LANE_CTL_SIZE));
	else if (off < g->data_offset)
		snprintf(out, n, "lane %llu's writer slots",
			 (unsigned long long)((off - g->writers_offset) /
					      ((uint64_t)g->writers_per_lane * CKR_WRITER_SLOT_SIZE)));
	else
		snprintf(out, n, "lane %llu's records",
			 (unsigned long long)((off - g->data_offset) / g->lane_capacity));
}

/*
 * The segment is smaller than its mapping: stop touching it for good. The
 * batch being filled is abandoned (nothing of it was committed: it is not
 * half in the store); every batch committed before stays. fault: the
 * address whose SIGBUS unwound us, or NULL (seen by the size check).
 */
static int segment_lost(ckr_flusher *f, const void *fault)
{
	struct stat st;
	char where[96] = "";
	f->seg_lost = true;
	ckr_batch_abort(f->open_batch);
	f->open_batch = NULL;
	f->replay = false;
	if (fault) {
		char part[64];
		describe_offset(&f->seg, (uint64_t)((const uint8_t *)fault - f->seg.base),
				part, sizeof part);
		snprintf(where, sizeof where, "; SIGBUS reading %s", part);
	}
	long long now = fstat(f->seg.fd, &st) == 0 ? (long long)st.st_size : -1;
	char what[256];
	if (now >= 0 && (uint64_t)now >= f->seg.size) /* a page tmpfs could not give */
		snprintf(what, sizeof what, "lost a page under the flusher (%s is out of "
			 "space, or a hole was punched%s)", "/dev/shm", where);
	else
		snprintf(what, sizeof what, "was truncated under the flusher (now %lld of "
			 "%zu bytes%s)", now, f->seg.size, where);
	ckr_flusher_log(f, CKR_LOG_ERROR, "segment '%s' %s: stopped; the %llu events it "
			"stored are kept in '%s', what was still in the segment is lost; "
			"remove it (rm /dev/shm/%s) and start again with --create (its runs "
			"then become claimable)", f->seg.name, what,
			(unsigned long long)f->stats.applied[CKR_APPLY_STORED], f->opts.db_dir,
			f->seg.name);
	return CKR_ETRUNC;
}

int ckr_flusher_guarded(ckr_flusher *f, int (*fn)(ckr_flusher *f, void *arg),
			void *arg)
{
	ckr_guard g;
	if (f->seg_lost)
		return CKR_ETRUNC;
	if (sigsetjmp(g.env, 0)) {
		/* The handler left the frame and wrote the address through
		 * memory: read it as such (g is not a register copy). */
		return segment_lost(f, *(void *volatile *)&g.fault_addr);
	}
	ckr_guard_push(&g, f->seg.base, f->seg.size);
	int rc = fn(f, arg);
	ckr_guard_pop(&g);
	return rc;
}

/* Notice a shrunken segment by its size (at most once a second), also
 * without the SIGBUS handler and before any fault. */
static int check_size(ckr_flusher *f)
{
	struct stat st;
	uint64_t now = ckr_now_ns(CLOCK_MONOTONIC);
	if (f->size_check_ns == 0 || now - f->size_checked_ns < f->size_check_ns)
		return 0;
	f->size_checked_ns = now;
	if (fstat(f->seg.fd, &st) == 0 && (uint64_t)st.st_size < f->seg.size)
		return segment_lost(f, NULL);
	return 0;
}

static int drain_once_fn(ckr_flusher *f, void *arg)
{
	return drain_once(f, arg);
}

int ckr_flusher_drain_once(ckr_flusher *f, size_t *n_events)
{
	*n_events = 0;
	int rc = f->seg_lost ? CKR_ETRUNC : check_size(f);
	return rc ? rc : ckr_flusher_guarded(f, drain_once_fn, n_events);
}

typedef struct run_args {
	const volatile int *stop;
} run_args;

static int run_fn(ckr_flusher *f, void *arg)
{
	return ckr_flusher_run_loop(f, ((run_args *)arg)->stop);
}

int ckr_flusher_run(ckr_flusher *f, const volatile int *stop)
{
	run_args a = { stop };
	return ckr_flusher_guarded(f, run_fn, &a);
}

void ckr_flusher_on_sigbus(const siginfo_t *si)
{
	ckr_guard_unwind(si);
}
