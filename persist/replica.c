/*
 * replica.c — the shipper's half of the REPLICATED level (ckring_store.h,
 * ckr_replica_*): a shipper that has committed the store's changes up to a
 * batch mark in PostgreSQL publishes, per lane, `replicated` = the mark's
 * position (ring/lane.h, line 3 of the lane's control block), then bumps
 * commit_seq and wakes ckr_wait() sleepers exactly as the flusher does after
 * its commits (ring/wake.h, P1/P2: commit_seq is only ever incremented, so
 * two publishers compose).
 *
 * Liveness: the shipper holds the kernel lock on byte CKR_LOCK_SHIPPER of the
 * segment while it serves it; a waiter that finds it free says
 * CKR_ENOSHIPPER instead of waiting for a level nobody will reach.
 *
 * Refusals: an event PostgreSQL refused (its run moved to another host) is
 * reported in its writer's slot like a flusher rejection (W2), BEFORE the
 * position that covers it is published, so a waiter that sees replicated >=
 * its position also sees the refusal (client/wait.c re-checks the slot after
 * its acquire load of replicated). The flusher writes a slot's rejection of
 * writer W only for W's events it rejects itself; for a refused run those
 * come after the shipper marked the run moved in the store, i.e. after this
 * slot write, and W2 keeps the earlier report: the two never write one
 * writer's report at once.
 *
 * Concurrency: one shipper per segment (the lock); a ckr_replica is used by
 * one thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ckring_store.h"
#include "ring/lane.h"
#include "ring/wake.h"
#include "shm/segment.h"

struct ckr_replica {
	ckr_segment seg;
	ckr_lane *lanes;
};

int ckr_replica_open(const char *name, ckr_replica **out)
{
	if (!name || !out)
		return -EINVAL;
	ckr_replica *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	int rc = ckr_segment_attach(name, false, &r->seg);
	if (rc)
		goto fail_free;
	rc = ckr_seg_lock(&r->seg, CKR_LOCK_SHIPPER);
	if (rc == -EAGAIN)
		rc = -EBUSY;
	if (rc)
		goto fail_detach;
	r->lanes = calloc(r->seg.lane_count, sizeof *r->lanes);
	if (!r->lanes) {
		rc = -ENOMEM;
		goto fail_unlock;
	}
	for (uint32_t i = 0; i < r->seg.lane_count; i++)
		ckr_lane_view(&r->seg, i, &r->lanes[i]);
	*out = r;
	return 0;
fail_unlock:
	ckr_seg_unlock(&r->seg, CKR_LOCK_SHIPPER);
fail_detach:
	ckr_segment_detach(&r->seg);
fail_free:
	free(r);
	return rc;
}

void ckr_replica_epoch(const ckr_replica *r, uint8_t epoch[16])
{
	memcpy(epoch, r->seg.epoch, 16);
}

void ckr_replica_publish(ckr_replica *r, const ckr_change_lane *lanes, size_t n)
{
	bool moved = false;
	for (size_t i = 0; i < n; i++) {
		if (lanes[i].lane >= r->seg.lane_count)
			continue;
		_Atomic uint64_t *w = &r->lanes[lanes[i].lane].ctl->replicated;
		/* relaxed: only this process writes the word (the lock). */
		if (atomic_load_explicit(w, memory_order_relaxed) >= lanes[i].pos)
			continue;
		/* release: pairs with the waiter's acquire (client/wait.c): the
		 * refusals written before (ckr_replica_reject) are seen with it. */
		atomic_store_explicit(w, lanes[i].pos, memory_order_release);
		moved = true;
	}
	if (moved)
		ckr_wake_published(ckr_seg_fl(&r->seg));
}

void ckr_replica_reject(ckr_replica *r, uint32_t lane, uint32_t slot,
			uint64_t writer, uint64_t pos)
{
	if (lane >= r->seg.lane_count)
		return;
	/* relaxed: only this process writes the word. */
	uint64_t repl = atomic_load_explicit(&r->lanes[lane].ctl->replicated,
					     memory_order_relaxed);
	if (pos <= repl)
		pos = repl + 1;
	ckr_lane_slot_reject(&r->lanes[lane], slot, writer, pos, CKR_REJECT_STALE);
}

void ckr_replica_close(ckr_replica *r)
{
	if (!r)
		return;
	ckr_seg_unlock(&r->seg, CKR_LOCK_SHIPPER);
	ckr_segment_detach(&r->seg);
	free(r->lanes);
	free(r);
}
