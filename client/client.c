/*
 * client.c — the executor API of ckring.h: clients (a process's lane), runs
 * (begin / reopen / message / phase / finish) and their writer slots.
 *
 * A push is: reserve ring space (lock-free, may fail with -EAGAIN), take the
 * run's next sequence number (one atomic add), encode the event straight into
 * the reserved space, commit. The sequence number is taken only after the
 * space is ours, so a refused push never leaves a gap in a run's sequence; a
 * gap can only come from a process that died between reserve and commit.
 *
 * One writer per run (ring/PROTOCOL.md, "Owners, writers and claims"): a run
 * handle is a writer — a writer id (new at begin, the claim's at reopen)
 * and a slot of one of the client's lanes where the flusher reports a
 * rejection of that writer's events (client/wait.c reads it). Every event
 * carries both. Slots are taken and returned under the client's runs_lock
 * (begin, reopen and close are not the hot path); a closed handle's slot is
 * reused only once the flusher has passed the lane's tail at close, so a
 * wait on the handle's last tickets can still tell stored from rejected.
 *
 * Several lanes (ckr_client_opts.lanes): a client of a busy process may hold
 * several lanes so that its threads do not all share one tail. Each run is
 * bound to one lane at begin/reopen (round robin), so a run's events keep
 * their lane order; the safety argument is unchanged, since every lane
 * still has one owning process.
 */
#include "client/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event/event.h"
#include "ring/lane.h"
#include "ring/wake.h"
#include "shm/proc.h"
#include "shm/segment.h"

#define DEFAULT_MAX_RUN_BYTES (UINT64_C(1) << 30)

/* Bumped in every forked child (pthread_atfork); a client remembers the value
 * it was attached under, so a child's use of it is refused. Process-wide
 * because fork is a process-wide event. */
static _Atomic uint64_t fork_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
	/* relaxed: the child is single-threaded at this point. */
	atomic_fetch_add_explicit(&fork_generation, 1, memory_order_relaxed);
}

static void install_atfork(void)
{
	pthread_atfork(NULL, NULL, on_fork_child);
}

typedef struct open_run {
	struct open_run *next;
	size_t id_len;
	uint8_t id[CKR_RUN_ID_MAX];
} open_run;

/* A slot of a closed handle, reusable once the lane's head reaches until. */
typedef struct draining_slot {
	uint32_t slot;
	uint64_t until;
} draining_slot;

/* One lane of a client, with its writer slots' bookkeeping. */
typedef struct client_lane {
	ckr_lane lane;
	uint32_t *free_slots;      /* a stack of free slot indices */
	uint32_t n_free;
	draining_slot *draining;   /* closed handles' slots */
	uint32_t n_draining;
} client_lane;

struct ckr_client {
	ckr_segment seg;
	client_lane *lanes;
	uint32_t n_lanes;
	_Atomic uint32_t next_lane; /* round robin of new runs over lanes */
	ckr_identity id;
	uint64_t fork_gen;
	uint32_t max_event;
	uint64_t max_run_bytes;
	ckr_begin_check_fn begin_check;
	void *begin_check_ctx;
	pthread_mutex_t runs_lock; /* guards runs and the slot lists */
	open_run *runs;            /* ids of runs open in this client */
};

struct ckr_run {
	ckr_client *c;
	client_lane *cl;
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	ckr_kind kind;
	uint32_t incarnation;
	uint64_t writer;
	uint32_t slot;
	ckr_event_prefix msg_prefix; /* the fixed bytes of its messages */
	_Atomic uint64_t next_seq;
	_Atomic uint64_t bytes;
	_Atomic int finished; /* 0 open, 1 finishing, 2 finished */
};

static int check_fork(const ckr_client *c)
{
	/* relaxed: written only by the atfork child handler of this process. */
	return c->fork_gen == atomic_load_explicit(&fork_generation, memory_order_relaxed)
		       ? 0
		       : CKR_EFORKED;
}

/* ------------------------------------------------------------------ */
/* clients                                                             */
/* ------------------------------------------------------------------ */

static int client_opts(ckr_client *c, const ckr_client_opts *o)
{
	c->max_event = c->seg.max_record;
	c->max_run_bytes = DEFAULT_MAX_RUN_BYTES;
	c->n_lanes = 1;
	if (!o)
		return 0;
	if (o->lanes > c->seg.lane_count)
		return -EINVAL;
	if (o->lanes)
		c->n_lanes = o->lanes;
	if (o->max_event_size) {
		if (o->max_event_size > c->seg.max_record)
			return -EINVAL;
		c->max_event = o->max_event_size;
	}
	if (o->max_run_bytes)
		c->max_run_bytes = o->max_run_bytes;
	c->begin_check = o->begin_check;
	c->begin_check_ctx = o->begin_check_ctx;
	return 0;
}

static int slots_init(const ckr_client *c, client_lane *cl)
{
	uint32_t n = c->seg.writers_per_lane;
	cl->free_slots = malloc(n * sizeof *cl->free_slots);
	cl->draining = malloc(n * sizeof *cl->draining);
	if (!cl->free_slots || !cl->draining)
		return -ENOMEM;
	/* Lowest index on top: slot 0 is taken first. */
	for (uint32_t i = 0; i < n; i++)
		cl->free_slots[i] = n - 1 - i;
	cl->n_free = n;
	return 0;
}

static void client_free(ckr_client *c)
{
	for (uint32_t i = 0; c->lanes && i < c->n_lanes; i++) {
		free(c->lanes[i].free_slots);
		free(c->lanes[i].draining);
	}
	free(c->lanes);
	free(c);
}

/* Acquire c->n_lanes lanes (A1..A4 for each); on failure none is kept. */
static int lanes_acquire(ckr_client *c)
{
	uint32_t got = 0;
	int rc = 0;
	c->lanes = calloc(c->n_lanes, sizeof *c->lanes);
	if (!c->lanes)
		return -ENOMEM;
	for (; got < c->n_lanes; got++) {
		uint32_t index;
		rc = slots_init(c, &c->lanes[got]);
		if (rc == 0)
			rc = ckr_lane_acquire_present(&c->seg, &c->id,
						      CKR_LOCK_IMAGE(c->id.token, c->id.nonce),
						      (uint32_t)getpid() + got, &index);
		if (rc)
			break;
		ckr_lane_view(&c->seg, index, &c->lanes[got].lane);
	}
	if (rc) /* nothing was pushed: the lanes are free again at once */
		while (got-- > 0)
			ckr_lane_unacquire(&c->seg, &c->lanes[got].lane, c->id.token);
	else /* a flusher asleep without owners polls again (ring/wake.h) */
		ckr_wake_flusher(ckr_seg_fl(&c->seg));
	return rc;
}

int ckr_client_attach(const char *name, const ckr_client_opts *opts,
		      ckr_client **out)
{
	if (!out)
		return -EINVAL;
	pthread_once(&atfork_once, install_atfork);
	ckr_client *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	int rc = ckr_segment_attach(name, false, &c->seg);
	if (rc)
		goto fail_free;
	rc = client_opts(c, opts);
	if (rc == 0)
		rc = ckr_proc_self_identity(&c->id);
	if (rc == 0) /* before any tenure: lets E2 tell exec from detach */
		rc = ckr_seg_hold_image(&c->seg, CKR_LOCK_IMAGE(c->id.token, c->id.nonce));
	if (rc == 0)
		rc = lanes_acquire(c);
	if (rc)
		goto fail_detach;
	c->fork_gen = atomic_load_explicit(&fork_generation, memory_order_relaxed);
	pthread_mutex_init(&c->runs_lock, NULL);
	*out = c;
	return 0;
fail_detach:
	ckr_segment_detach(&c->seg);
fail_free:
	client_free(c);
	return rc;
}

void ckr_client_detach(ckr_client *c)
{
	if (!c)
		return;
	for (uint32_t i = 0; check_fork(c) == 0 && i < c->n_lanes; i++)
		ckr_lane_detach(&c->seg, &c->lanes[i].lane, c->id.token);
	while (c->runs) {
		open_run *n = c->runs->next;
		free(c->runs);
		c->runs = n;
	}
	pthread_mutex_destroy(&c->runs_lock);
	ckr_segment_detach(&c->seg);
	client_free(c);
}

uint32_t ckr_client_lane(const ckr_client *c)
{
	return c->lanes[0].lane.index;
}

const ckr_segment *ckr_client_segment(const ckr_client *c)
{
	return &c->seg;
}

int ckr_client_check(const ckr_client *c)
{
	return c ? check_fork(c) : -EINVAL;
}

uint64_t ckr_client_token(const ckr_client *c)
{
	return c->id.token;
}

/* ------------------------------------------------------------------ */
/* open runs and writer slots (under runs_lock)                        */
/* ------------------------------------------------------------------ */

static bool runs_has(const ckr_client *c, const void *id, size_t id_len)
{
	for (const open_run *r = c->runs; r; r = r->next)
		if (r->id_len == id_len && memcmp(r->id, id, id_len) == 0)
			return true;
	return false;
}

/* Return to the free stack the closed handles' slots the flusher passed. */
static void slots_reclaim(client_lane *cl)
{
	/* acquire: pairs with the flusher's release of head (C6): every
	 * rejection it reported below head is written (W2), and nothing of
	 * the old writer can be reported any more. */
	uint64_t head = atomic_load_explicit(&cl->lane.ctl->head, memory_order_acquire);
	for (uint32_t i = 0; i < cl->n_draining;) {
		if (cl->draining[i].until <= head) {
			cl->free_slots[cl->n_free++] = cl->draining[i].slot;
			cl->draining[i] = cl->draining[--cl->n_draining];
		} else {
			i++;
		}
	}
}

/* A lane with a free slot, starting from the next in the round robin. */
static client_lane *lane_with_slot(ckr_client *c)
{
	/* relaxed: a spreading hint; correctness does not depend on it. */
	uint32_t start = atomic_fetch_add_explicit(&c->next_lane, 1, memory_order_relaxed);
	for (uint32_t k = 0; k < c->n_lanes; k++) {
		client_lane *cl = &c->lanes[(start + k) % c->n_lanes];
		if (cl->n_free == 0)
			slots_reclaim(cl);
		if (cl->n_free)
			return cl;
	}
	return NULL;
}

/*
 * Register run id as open and give it a lane and a slot for writer.
 * @return 0, *lane and *slot; -EEXIST open already; CKR_ESLOTS; -ENOMEM.
 */
static int run_register(ckr_client *c, const void *id, size_t id_len,
			uint64_t writer, client_lane **lane, uint32_t *slot)
{
	int rc = 0;
	client_lane *cl = NULL;
	open_run *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	pthread_mutex_lock(&c->runs_lock);
	if (runs_has(c, id, id_len))
		rc = -EEXIST;
	if (rc == 0 && !(cl = lane_with_slot(c)))
		rc = CKR_ESLOTS;
	if (rc == 0) {
		*lane = cl;
		*slot = cl->free_slots[--cl->n_free];
		ckr_lane_slot_take(&cl->lane, *slot, writer);
		r->id_len = id_len;
		memcpy(r->id, id, id_len);
		r->next = c->runs;
		c->runs = r;
		r = NULL;
	}
	pthread_mutex_unlock(&c->runs_lock);
	free(r);
	return rc;
}

/*
 * Unregister run id. The slot drains until the lane's tail now (every
 * event of the handle ends at or below it); drop_now frees it at once (its
 * begin was never pushed, so no ticket refers to it).
 */
static void run_unregister(ckr_client *c, const void *id, size_t id_len,
			   client_lane *cl, uint32_t slot, bool drop_now)
{
	open_run *dead = NULL;
	pthread_mutex_lock(&c->runs_lock);
	for (open_run **p = &c->runs; *p; p = &(*p)->next) {
		if ((*p)->id_len == id_len && memcmp((*p)->id, id, id_len) == 0) {
			dead = *p;
			*p = dead->next;
			break;
		}
	}
	if (drop_now) {
		ckr_lane_slot_drop(&cl->lane, slot);
		cl->free_slots[cl->n_free++] = slot;
	} else {
		cl->draining[cl->n_draining++] =
			(draining_slot){ slot, ckr_lane_tail(&cl->lane) };
	}
	pthread_mutex_unlock(&c->runs_lock);
	free(dead);
}

/* ------------------------------------------------------------------ */
/* pushing events                                                      */
/* ------------------------------------------------------------------ */

/*
 * Reserve, number, encode, commit. ev->seq is filled here when take_seq
 * (begin uses seq 0). charge: count the event against the run's byte
 * budget (finish events are exempt: a run must always be able to finish).
 */
static int push_event(ckr_run *r, ckr_event *ev, bool take_seq, bool charge,
		      ckr_ticket *t)
{
	ckr_client *c = r->c;
	size_t size = ckr_event_size(ev);
	if (size == 0)
		return -EINVAL;
	if (size > c->max_event)
		return -E2BIG;
	if (charge) {
		/* relaxed: a per-run budget; exactness across threads comes
		 * from the atomic add itself, nothing is published through it. */
		uint64_t before = atomic_fetch_add_explicit(&r->bytes, size,
							    memory_order_relaxed);
		if (before + size > c->max_run_bytes) {
			atomic_fetch_sub_explicit(&r->bytes, size, memory_order_relaxed);
			return -EFBIG;
		}
	}
	ckr_reservation res;
	ckr_lane *lane = &r->cl->lane;
	int rc = ckr_lane_reserve(lane, (uint32_t)size, &res);
	if (rc) {
		if (charge)
			atomic_fetch_sub_explicit(&r->bytes, size, memory_order_relaxed);
		return rc;
	}
	/* The space is ours: from here nothing fails. relaxed: sequence
	 * numbers only need to be unique; order across lanes and threads is
	 * restored by the store, which keys events by (run, seq). */
	if (take_seq)
		ev->seq = atomic_fetch_add_explicit(&r->next_seq, 1, memory_order_relaxed);
	ckr_event_encode(ev, res.payload, size);
	uint64_t end = ckr_lane_commit(&res);
	if (t)
		*t = (ckr_ticket){ .lane = lane->index, .slot = r->slot,
				   .pos = end, .writer = r->writer };
	return 0;
}

static void event_init(ckr_event *ev, const ckr_run *r, ckr_event_type type)
{
	memset(ev, 0, sizeof *ev);
	ev->type = type;
	ev->incarnation = r->incarnation;
	ev->writer = r->writer;
	ev->slot = r->slot;
	ev->id = r->id;
	ev->id_len = r->id_len;
}

static int run_usable(const ckr_run *r)
{
	if (!r)
		return -EINVAL;
	int rc = check_fork(r->c);
	if (rc)
		return rc;
	/* acquire: pairs with the release in ckr_run_finish(). */
	return atomic_load_explicit(&r->finished, memory_order_acquire) ? CKR_ETERMINAL : 0;
}

/* A new handle, registered in c with a slot. @return 0; -EEXIST;
 * CKR_ESLOTS; -ENOMEM. */
static int run_open(ckr_client *c, const void *id, size_t id_len, ckr_kind kind,
		    uint32_t incarnation, uint64_t writer, uint64_t next_seq,
		    uint64_t bytes, ckr_run **out)
{
	ckr_run *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	int rc = run_register(c, id, id_len, writer, &r->cl, &r->slot);
	if (rc) {
		free(r);
		return rc;
	}
	r->c = c;
	memcpy(r->id, id, id_len);
	r->id_len = id_len;
	r->kind = kind;
	r->incarnation = incarnation;
	r->writer = writer;
	ckr_event_prefix_init(&r->msg_prefix, incarnation, writer, r->slot, r->id, id_len);
	atomic_init(&r->next_seq, next_seq);
	atomic_init(&r->bytes, bytes);
	*out = r;
	return 0;
}

static int spec_check(const ckr_run_spec *s)
{
	if (!s || !s->id || s->id_len == 0 || s->id_len > CKR_RUN_ID_MAX)
		return -EINVAL;
	if (s->kind != CKR_KIND_SINGLE_LOOP && s->kind != CKR_KIND_MULTI_PHASE)
		return -EINVAL;
	if ((s->label && strlen(s->label) > CKR_LABEL_MAX) || (s->meta_len && !s->meta))
		return -EINVAL;
	return 0;
}

static void begin_event(ckr_event *ev, const ckr_run *r, const ckr_run_spec *s)
{
	event_init(ev, r, CKR_EV_BEGIN);
	ev->u.begin.kind = s->kind;
	ev->u.begin.owner_pid = (uint32_t)ckr_token_pid(r->c->id.token);
	ev->u.begin.owner_start = ckr_token_start(r->c->id.token);
	ev->u.begin.label = s->label ? s->label : "";
	ev->u.begin.label_len = s->label ? strlen(s->label) : 0;
	ev->u.begin.meta = s->meta;
	ev->u.begin.meta_len = s->meta_len;
}

int ckr_run_begin(ckr_client *c, const ckr_run_spec *spec, ckr_run **out,
		  ckr_ticket *ticket)
{
	int rc = c && out ? spec_check(spec) : -EINVAL;
	if (rc == 0)
		rc = check_fork(c);
	if (rc == 0 && c->begin_check)
		rc = c->begin_check(c->begin_check_ctx, spec->id, spec->id_len);
	if (rc)
		return rc;
	ckr_run *r;
	rc = run_open(c, spec->id, spec->id_len, spec->kind, 1,
		      ckr_proc_next_writer(&c->id), 1, 0, &r);
	if (rc)
		return rc;
	ckr_event ev;
	begin_event(&ev, r, spec);
	ev.seq = 0;
	rc = push_event(r, &ev, false, true, ticket);
	if (rc) {
		run_unregister(c, r->id, r->id_len, r->cl, r->slot, true);
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

static bool claim_ok(const ckr_claim *cl)
{
	return cl && cl->id_len > 0 && cl->id_len <= CKR_RUN_ID_MAX &&
	       cl->incarnation >= 1 && cl->next_seq >= 1 && cl->writer != 0 &&
	       (cl->kind == CKR_KIND_SINGLE_LOOP || cl->kind == CKR_KIND_MULTI_PHASE);
}

int ckr_run_reopen(ckr_client *c, const ckr_claim *cl, ckr_run **out)
{
	if (!c || !out || !claim_ok(cl))
		return -EINVAL;
	int rc = check_fork(c);
	if (rc)
		return rc;
	/* K4: the claim names the process image that may drive the run. */
	if (cl->owner_token != c->id.token || cl->owner_nonce != c->id.nonce)
		return CKR_ENOTCLAIMER;
	/* Once per claim: a second reopen would start again at the claim's
	 * next_seq, under the same writer, over events already pushed. */
	rc = ckr_proc_writer_take(cl->writer);
	if (rc)
		return rc;
	rc = run_open(c, cl->id, cl->id_len, cl->kind, cl->incarnation, cl->writer,
		      cl->next_seq, cl->bytes, out);
	if (rc)
		ckr_proc_writer_release(cl->writer);
	return rc;
}

/* The hot path: a message, encoded from the run's prepared prefix (the
 * same bytes as ckr_event_encode), otherwise as push_event. */
int ckr_run_message(ckr_run *r, const void *msg, size_t len, ckr_ticket *t)
{
	int rc = run_usable(r);
	if (rc)
		return rc;
	if (r->kind != CKR_KIND_SINGLE_LOOP || (len && !msg))
		return -EINVAL;
	ckr_client *c = r->c;
	if (len > c->max_event || ckr_event_message_size(&r->msg_prefix, len) > c->max_event)
		return -E2BIG;
	uint32_t size = (uint32_t)ckr_event_message_size(&r->msg_prefix, len);
	/* relaxed: as in push_event. */
	uint64_t before = atomic_fetch_add_explicit(&r->bytes, size, memory_order_relaxed);
	if (before + size > c->max_run_bytes) {
		atomic_fetch_sub_explicit(&r->bytes, size, memory_order_relaxed);
		return -EFBIG;
	}
	ckr_reservation res;
	ckr_lane *lane = &r->cl->lane;
	rc = ckr_lane_reserve(lane, size, &res);
	if (rc) {
		atomic_fetch_sub_explicit(&r->bytes, size, memory_order_relaxed);
		return rc;
	}
	/* The space is ours (see push_event for the order of seq). */
	uint64_t seq = atomic_fetch_add_explicit(&r->next_seq, 1, memory_order_relaxed);
	ckr_event_put_message(&r->msg_prefix, seq, msg, len, res.payload);
	uint64_t end = ckr_lane_commit(&res);
	if (t)
		*t = (ckr_ticket){ .lane = lane->index, .slot = r->slot, .pos = end,
				   .writer = r->writer };
	return 0;
}

int ckr_run_phase(ckr_run *r, uint32_t index, const char *name,
		  const void *output, size_t len, ckr_ticket *t)
{
	int rc = run_usable(r);
	if (rc)
		return rc;
	if (r->kind != CKR_KIND_MULTI_PHASE || (len && !output))
		return -EINVAL;
	if (len > r->c->max_event)
		return -E2BIG;
	ckr_event ev;
	event_init(&ev, r, CKR_EV_PHASE);
	ev.u.phase.index = index;
	ev.u.phase.name = name ? name : "";
	ev.u.phase.name_len = name ? strlen(name) : 0;
	ev.u.phase.data = output;
	ev.u.phase.len = len;
	return push_event(r, &ev, true, true, t);
}

ckr_outcome ckr_classify_outcome(bool run_failed, ckr_cause cause)
{
	if (!run_failed)
		return CKR_OUTCOME_COMPLETE;
	if (cause == CKR_CAUSE_SHUTDOWN)
		return CKR_OUTCOME_LEAVE_RUNNING;
	return CKR_OUTCOME_FAIL;
}

int ckr_run_finish(ckr_run *r, ckr_outcome outcome, const char *error,
		   ckr_ticket *t)
{
	int rc = r ? check_fork(r->c) : -EINVAL;
	if (rc)
		return rc;
	if (outcome != CKR_OUTCOME_COMPLETE && outcome != CKR_OUTCOME_FAIL &&
	    outcome != CKR_OUTCOME_LEAVE_RUNNING)
		return -EINVAL;
	int open = 0;
	/* acq_rel: only one finisher wins; pairs with run_usable()'s acquire. */
	if (!atomic_compare_exchange_strong_explicit(&r->finished, &open, 1,
						     memory_order_acq_rel,
						     memory_order_acquire))
		return CKR_ETERMINAL;
	if (outcome == CKR_OUTCOME_LEAVE_RUNNING) {
		/* release: pairs with run_usable()'s acquire. */
		atomic_store_explicit(&r->finished, 2, memory_order_release);
		if (t)
			*t = (ckr_ticket){ .lane = r->cl->lane.index, .slot = r->slot,
					   .pos = 0, .writer = r->writer };
		return 0; /* shutdown: leave the record for boot recovery */
	}
	ckr_event ev;
	event_init(&ev, r, outcome == CKR_OUTCOME_COMPLETE ? CKR_EV_COMPLETE : CKR_EV_FAIL);
	if (outcome == CKR_OUTCOME_FAIL) {
		ev.u.fail.error = error ? error : "";
		ev.u.fail.len = error ? strlen(error) : 0;
	}
	rc = push_event(r, &ev, true, false, t);
	/* release: pairs with run_usable()'s acquire; on failure the run is
	 * open again so the caller can retry. */
	atomic_store_explicit(&r->finished, rc ? 0 : 2, memory_order_release);
	return rc;
}

uint64_t ckr_run_next_seq(const ckr_run *r)
{
	/* relaxed: a snapshot. */
	return atomic_load_explicit(&r->next_seq, memory_order_relaxed);
}

void ckr_run_close(ckr_run *r)
{
	if (!r)
		return;
	if (check_fork(r->c) == 0)
		run_unregister(r->c, r->id, r->id_len, r->cl, r->slot, false);
	free(r);
}
