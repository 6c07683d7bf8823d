/*
 * observe.c — the read-only observer of ckring.h: segment and lane snapshots
 * and a walk of the records still in a lane, for the inspector, metrics and
 * benchmarks. It never writes to the segment.
 *
 * Every load is relaxed: the values are gauges. A lane's head, drained and
 * the records between head and tail are read a few times over until head
 * and drained did not move during the walk, so a quiet lane is counted
 * exactly and a busy one approximately. Lane liveness is the lane's kernel
 * lock (ring/lane.c ckr_lane_tenure_gone), probed through the observer's
 * own read-only descriptor.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckring.h"
#include "event/event.h"
#include "ring/lane.h"
#include "shm/clock.h"
#include "shm/proc.h"
#include "shm/segment.h"

#define SNAP_TRIES 5

struct ckr_observer {
	ckr_segment seg;
	uint8_t *buf;   /* a private copy of one record */
	size_t cap;
};

int ckr_observer_open(const char *name, ckr_observer **out)
{
	if (!out)
		return -EINVAL;
	ckr_observer *o = calloc(1, sizeof *o);
	if (!o)
		return -ENOMEM;
	int rc = ckr_segment_attach(name, true, &o->seg);
	if (rc) {
		free(o);
		return rc;
	}
	o->cap = (size_t)o->seg.max_record + CKR_REC_HEADER + 8;
	o->buf = malloc(o->cap);
	if (!o->buf) {
		ckr_segment_detach(&o->seg);
		free(o);
		return -ENOMEM;
	}
	*out = o;
	return 0;
}

void ckr_observer_close(ckr_observer *o)
{
	if (!o)
		return;
	ckr_segment_detach(&o->seg);
	free(o->buf);
	free(o);
}

static uint64_t load64(const _Atomic uint64_t *p)
{
	/* relaxed: every value shown is a snapshot gauge. */
	return atomic_load_explicit(p, memory_order_relaxed);
}

/* Count the sealed records in [head, tail) (valid and corrupt); stops at an
 * open claim or the end, bounded by capacity / 8 steps. */
static void count_pending(const ckr_observer *o, const ckr_lane *l,
			  ckr_lane_info *li)
{
	ckr_lane_record rec;
	uint64_t pos = li->head;
	li->pending = li->pending_corrupt = 0;
	for (uint64_t steps = 0; pos < li->tail && steps <= l->capacity / 8; steps++) {
		ckr_lane_read(l, pos, false, o->buf, o->cap, &rec);
		if (rec.status != CKR_READ_RECORD && rec.status != CKR_READ_CORRUPT)
			break;
		li->pending++;
		li->pending_corrupt += rec.status == CKR_READ_CORRUPT;
		if (rec.next <= pos)
			break;
		pos = rec.next;
	}
}

static bool positions_sane(const ckr_lane_info *li)
{
	return li->head <= li->tail && li->tail - li->head <= li->capacity &&
	       (li->head | li->tail) % 8 == 0;
}

static ckr_lane_state lane_state(const ckr_observer *o, const ckr_lane *l,
				 uint64_t owner, bool sane)
{
	if (!sane)
		return CKR_LANE_INCONSISTENT;
	if (!owner)
		return CKR_LANE_FREE;
	if (owner & CKR_OWNER_DETACHED)
		return CKR_LANE_DETACHED;
	/* The snapshot's owner word with the generation loaded now: a tenure
	 * that changed since the snapshot is not called gone. */
	ckr_tenure t = ckr_lane_tenure(l);
	t.owner = owner;
	return ckr_lane_tenure_gone(&o->seg, l, t) ? CKR_LANE_OWNER_GONE
						   : CKR_LANE_ATTACHED;
}

static uint32_t writers_in_use(const ckr_lane *l)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < l->n_slots; i++)
		n += ckr_lane_slot_writer(l, i) != 0;
	return n;
}

static void snap_lane(const ckr_observer *o, uint32_t i, ckr_lane_info *li)
{
	ckr_lane l;
	ckr_lane_view(&o->seg, i, &l);
	memset(li, 0, sizeof *li);
	li->index = i;
	li->capacity = l.capacity;
	uint64_t owner = ckr_lane_owner(&l);
	li->owner_pid = (uint32_t)ckr_token_pid(owner & ~CKR_OWNER_DETACHED);
	li->owner_start = ckr_token_start(owner & ~CKR_OWNER_DETACHED);
	li->owner_since_ns = owner ? load64(&l.ctl->owner_since_ns) : 0;
	li->refused_full = load64(&l.ctl->refused_full);
	bool sane = false;
	for (int tries = 0; tries < SNAP_TRIES; tries++) {
		li->drained = load64(&l.ctl->drained);
		li->head = ckr_lane_head(&l);
		li->synced = load64(&l.ctl->synced);
		li->tail = ckr_lane_tail(&l);
		sane = positions_sane(li);
		if (sane)
			count_pending(o, &l, li);
		if (ckr_lane_head(&l) == li->head && load64(&l.ctl->drained) == li->drained)
			break;
	}
	li->state = lane_state(o, &l, owner, sane);
	li->writers = owner ? writers_in_use(&l) : 0;
}

static void snap_flusher(const ckr_observer *o, ckr_segment_info *s)
{
	const ckr_seg_flusher *fl = ckr_seg_fl(&o->seg);
	uint64_t owner = load64(&fl->owner);
	uint64_t hb = load64(&fl->heartbeat_ns);
	s->flusher_present = owner != 0;
	s->flusher_pid = (uint32_t)ckr_token_pid(owner);
	s->flusher_alive = ckr_seg_lock_held(&o->seg, CKR_LOCK_FLUSHER) == 1;
	s->heartbeat_seen = hb != 0;
	s->heartbeat_age_ns = hb && s->taken_ns > hb ? s->taken_ns - hb : 0;
	s->batches = load64(&fl->batches);
	s->records = load64(&fl->records);
}

static void add_lane(ckr_segment_info *s, const ckr_lane_info *li)
{
	s->drained += li->drained;
	s->pushed += li->drained + li->pending;
	s->refused_full += li->refused_full;
	s->committed += li->head;
	s->synced += li->synced;
	s->attached += li->state != CKR_LANE_FREE && li->state != CKR_LANE_INCONSISTENT;
	if (li->state == CKR_LANE_INCONSISTENT) {
		s->inconsistent++;
		return;
	}
	s->lag_bytes += li->tail - li->head;
	s->lag_records += li->pending;
}

void ckr_observer_snapshot(ckr_observer *o, ckr_segment_info *info,
			   ckr_lane_info *lanes, uint32_t n_lanes)
{
	const ckr_seg_header *h = ckr_seg_hdr(&o->seg);
	const ckr_seg_counters *c = ckr_seg_ctr(&o->seg);
	ckr_segment_info s;
	memset(&s, 0, sizeof s);
	memcpy(s.name, o->seg.name, sizeof s.name);
	/* The geometry is the validated copy; the header's other fields are
	 * immutable after creation. */
	s.layout_version = h->layout_version;
	memcpy(s.epoch, o->seg.epoch, sizeof s.epoch);
	s.size = o->seg.size;
	s.created_ns = h->created_ns;
	s.lane_count = o->seg.lane_count;
	s.writers_per_lane = o->seg.writers_per_lane;
	s.lane_capacity = o->seg.lane_capacity;
	s.max_record = o->seg.max_record;
	s.reclaimed = load64(&c->reclaimed);
	s.corrupt = load64(&c->corrupt);
	s.lanes_freed = load64(&c->lanes_freed);
	for (uint32_t i = 0; i < o->seg.lane_count; i++) {
		ckr_lane_info li;
		snap_lane(o, i, &li);
		add_lane(&s, &li);
		if (lanes && i < n_lanes)
			lanes[i] = li;
	}
	s.taken_ns = ckr_now_ns(CLOCK_MONOTONIC);
	snap_flusher(o, &s);
	*info = s;
}

/* ---- records ---- */

static void event_fields(const ckr_event *e, ckr_record_info *r)
{
	r->event = (ckr_event_kind)e->type;
	r->event_name = ckr_event_type_name(e->type);
	memcpy(r->id, e->id, e->id_len);
	r->id_len = e->id_len;
	r->incarnation = e->incarnation;
	r->seq = e->seq;
	r->writer = e->writer;
	switch (e->type) {
	case CKR_EV_BEGIN:
		r->run_kind = e->u.begin.kind;
		r->begin_pid = e->u.begin.owner_pid;
		r->data = e->u.begin.meta;
		r->data_len = e->u.begin.meta_len;
		break;
	case CKR_EV_MESSAGE:
		r->data = e->u.message.data;
		r->data_len = e->u.message.len;
		break;
	case CKR_EV_PHASE:
		r->phase_index = e->u.phase.index;
		r->phase_name = e->u.phase.name;
		r->phase_name_len = e->u.phase.name_len;
		r->data = e->u.phase.data;
		r->data_len = e->u.phase.len;
		break;
	case CKR_EV_FAIL:
		r->data = e->u.fail.error;
		r->data_len = e->u.fail.len;
		break;
	default:
		break;
	}
}

/* Describe the record rec (its bytes in o->buf). */
static void describe(const ckr_observer *o, uint32_t lane, const ckr_lane_record *rec,
		     ckr_record_info *r)
{
	ckr_event ev;
	memset(r, 0, sizeof *r);
	r->lane = lane;
	r->pos = rec->pos;
	r->next = rec->next;
	if (rec->status == CKR_READ_CORRUPT) {
		r->kind = CKR_RECORD_CORRUPT;
		r->size = rec->raw_len;
		r->reason = rec->reason ? rec->reason : "failed validation";
	} else if (ckr_event_decode(o->buf, rec->payload_len, &ev) != 0) {
		r->kind = CKR_RECORD_UNDECODABLE;
		r->size = rec->payload_len;
		r->reason = "undecodable event";
	} else {
		r->kind = CKR_RECORD_EVENT;
		r->size = rec->payload_len;
		event_fields(&ev, r);
	}
}

int ckr_observer_records(ckr_observer *o, uint32_t lane, ckr_record_fn fn, void *ctx)
{
	if (!o || !fn || lane >= o->seg.lane_count)
		return -EINVAL;
	ckr_lane l;
	ckr_lane_view(&o->seg, lane, &l);
	uint64_t pos = ckr_lane_head(&l), tail = ckr_lane_tail(&l);
	if (pos > tail || tail - pos > l.capacity || (pos | tail) % 8)
		return 0; /* inconsistent positions: nothing can be walked */
	ckr_lane_record rec;
	for (uint64_t steps = 0; pos < tail && steps <= l.capacity / 8; steps++) {
		ckr_lane_read(&l, pos, false, o->buf, o->cap, &rec);
		if (rec.status != CKR_READ_RECORD && rec.status != CKR_READ_CORRUPT)
			break;
		ckr_record_info r;
		describe(o, lane, &rec, &r);
		if (fn(ctx, &r))
			break;
		if (rec.next <= pos)
			break;
		pos = rec.next;
	}
	return 0;
}
