/*
 * client.c — the executor API of ckring.h: clients (a process's lane), runs
 * (begin / reopen / message / phase / finish), tickets and durability waits.
 *
 * A push is: reserve ring space (lock-free, may fail with -EAGAIN), take the
 * run's next sequence number (one atomic add), encode the event straight into
 * the reserved space, commit. The sequence number is taken only after the
 * space is ours, so a refused push never leaves a gap in a run's sequence; a
 * gap can only come from a process that died between reserve and commit.
 */
#include "client/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event/event.h"
#include "ring/lane.h"
#include "shm/futex.h"
#include "shm/proc.h"
#include "shm/segment.h"

#define DEFAULT_MAX_RUN_BYTES (UINT64_C(1) << 30)

/* Bumped in every forked child (pthread_atfork); a client remembers the value
 * it was attached under, so a child's use of it is refused. This is the one
 * process-wide variable: fork is a process-wide event. */
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

struct ckr_client {
	ckr_segment seg;
	ckr_lane lane;
	uint64_t token;
	uint64_t fork_gen;
	uint32_t max_event;
	uint64_t max_run_bytes;
	ckr_store *store; /* optional: duplicate-begin check */
	pthread_mutex_t runs_lock;
	open_run *runs;   /* ids of runs open in this client */
};

struct ckr_run {
	ckr_client *c;
	uint8_t id[CKR_RUN_ID_MAX];
	size_t id_len;
	ckr_kind kind;
	uint32_t incarnation;
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
	if (!o)
		return 0;
	if (o->max_event_size) {
		if (o->max_event_size > c->seg.max_record)
			return -EINVAL;
		c->max_event = o->max_event_size;
	}
	if (o->max_run_bytes)
		c->max_run_bytes = o->max_run_bytes;
	if (o->db_dir) {
		ckr_store_opts so = { .read_only = true };
		return ckr_store_open(o->db_dir, &so, &c->store);
	}
	return 0;
}

int ckr_client_attach(const char *name, const ckr_client_opts *opts,
		      ckr_client **out)
{
	pthread_once(&atfork_once, install_atfork);
	ckr_client *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	int rc = ckr_segment_attach(name, false, &c->seg);
	if (rc)
		goto fail_free;
	rc = client_opts(c, opts);
	if (rc)
		goto fail_detach;
	rc = ckr_proc_self_token(&c->token);
	if (rc)
		goto fail_store;
	uint32_t index;
	rc = ckr_lane_acquire(&c->seg, c->token, (uint32_t)getpid(), &index);
	if (rc)
		goto fail_store;
	ckr_lane_view(&c->seg, index, &c->lane);
	c->fork_gen = atomic_load_explicit(&fork_generation, memory_order_relaxed);
	pthread_mutex_init(&c->runs_lock, NULL);
	*out = c;
	return 0;
fail_store:
	ckr_store_close(c->store);
fail_detach:
	ckr_segment_detach(&c->seg);
fail_free:
	free(c);
	return rc;
}

void ckr_client_detach(ckr_client *c)
{
	if (!c)
		return;
	if (check_fork(c) == 0)
		ckr_lane_detach(&c->lane, c->token);
	while (c->runs) {
		open_run *n = c->runs->next;
		free(c->runs);
		c->runs = n;
	}
	pthread_mutex_destroy(&c->runs_lock);
	ckr_store_close(c->store);
	ckr_segment_detach(&c->seg);
	free(c);
}

uint32_t ckr_client_lane(const ckr_client *c)
{
	return c->lane.index;
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
	return c->token;
}

/* Register id as open in this client. @return 0; -EEXIST; -ENOMEM. */
static int runs_add(ckr_client *c, const void *id, size_t id_len)
{
	int rc = 0;
	pthread_mutex_lock(&c->runs_lock);
	for (open_run *r = c->runs; r; r = r->next)
		if (r->id_len == id_len && memcmp(r->id, id, id_len) == 0)
			rc = -EEXIST;
	if (rc == 0) {
		open_run *r = calloc(1, sizeof *r);
		if (r) {
			r->id_len = id_len;
			memcpy(r->id, id, id_len);
			r->next = c->runs;
			c->runs = r;
		} else {
			rc = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&c->runs_lock);
	return rc;
}

static void runs_remove(ckr_client *c, const void *id, size_t id_len)
{
	pthread_mutex_lock(&c->runs_lock);
	for (open_run **p = &c->runs; *p; p = &(*p)->next) {
		if ((*p)->id_len == id_len && memcmp((*p)->id, id, id_len) == 0) {
			open_run *dead = *p;
			*p = dead->next;
			free(dead);
			break;
		}
	}
	pthread_mutex_unlock(&c->runs_lock);
}

/* ------------------------------------------------------------------ */
/* pushing events                                                      */
/* ------------------------------------------------------------------ */

/*
 * Reserve, number, encode, commit. ev->seq is filled here. When
 * take_seq is false the event uses the seq already in ev (begin: 0).
 */
static int push_event(ckr_run *r, ckr_event *ev, bool take_seq, ckr_ticket *t)
{
	ckr_client *c = r->c;
	size_t size = ckr_event_size(ev);
	if (size == 0)
		return -EINVAL;
	if (size > c->max_event)
		return -E2BIG;
	/* relaxed: a per-run budget; exactness across threads comes from
	 * the atomic add itself, nothing is published through it. */
	uint64_t before = atomic_fetch_add_explicit(&r->bytes, size, memory_order_relaxed);
	if (before + size > c->max_run_bytes) {
		atomic_fetch_sub_explicit(&r->bytes, size, memory_order_relaxed);
		return -EFBIG;
	}
	ckr_reservation res;
	int rc = ckr_lane_reserve(&c->lane, (uint32_t)size, &res);
	if (rc) {
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
	if (t) {
		t->lane = c->lane.index;
		t->pos = end;
	}
	return 0;
}

static void event_init(ckr_event *ev, const ckr_run *r, ckr_event_type type)
{
	memset(ev, 0, sizeof *ev);
	ev->type = type;
	ev->incarnation = r->incarnation;
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

static ckr_run *run_new(ckr_client *c, const void *id, size_t id_len,
			ckr_kind kind, uint32_t incarnation, uint64_t next_seq)
{
	ckr_run *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->c = c;
	memcpy(r->id, id, id_len);
	r->id_len = id_len;
	r->kind = kind;
	r->incarnation = incarnation;
	atomic_init(&r->next_seq, next_seq);
	return r;
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

/* Does the store already hold this run? */
static int store_has(ckr_client *c, const void *id, size_t id_len)
{
	ckr_run_info info;
	if (!c->store)
		return 0;
	int rc = ckr_store_get(c->store, id, id_len, &info);
	if (rc == 0)
		return -EEXIST;
	return rc == -ENOENT ? 0 : rc;
}

static void begin_event(ckr_event *ev, const ckr_run *r, const ckr_run_spec *s)
{
	event_init(ev, r, CKR_EV_BEGIN);
	ev->u.begin.kind = s->kind;
	ev->u.begin.owner_pid = (uint32_t)ckr_token_pid(r->c->token);
	ev->u.begin.owner_start = ckr_token_start(r->c->token);
	ev->u.begin.label = s->label ? s->label : "";
	ev->u.begin.label_len = s->label ? strlen(s->label) : 0;
	ev->u.begin.meta = s->meta;
	ev->u.begin.meta_len = s->meta_len;
}

int ckr_run_begin(ckr_client *c, const ckr_run_spec *spec, ckr_run **out,
		  ckr_ticket *ticket)
{
	int rc = spec_check(spec);
	if (rc == 0)
		rc = check_fork(c);
	if (rc == 0)
		rc = store_has(c, spec->id, spec->id_len);
	if (rc)
		return rc;
	ckr_run *r = run_new(c, spec->id, spec->id_len, spec->kind, 1, 1);
	if (!r)
		return -ENOMEM;
	rc = runs_add(c, spec->id, spec->id_len);
	if (rc)
		goto fail_free;
	ckr_event ev;
	begin_event(&ev, r, spec);
	ev.seq = 0;
	rc = push_event(r, &ev, false, ticket);
	if (rc)
		goto fail_remove;
	*out = r;
	return 0;
fail_remove:
	runs_remove(c, spec->id, spec->id_len);
fail_free:
	free(r);
	return rc;
}

int ckr_run_reopen(ckr_client *c, const ckr_claim *cl, ckr_run **out)
{
	if (!cl || cl->id_len == 0 || cl->id_len > CKR_RUN_ID_MAX ||
	    cl->incarnation < 1 || cl->next_seq < 1 ||
	    (cl->kind != CKR_KIND_SINGLE_LOOP && cl->kind != CKR_KIND_MULTI_PHASE))
		return -EINVAL;
	int rc = check_fork(c);
	if (rc)
		return rc;
	ckr_run *r = run_new(c, cl->id, cl->id_len, cl->kind, cl->incarnation,
			     cl->next_seq);
	if (!r)
		return -ENOMEM;
	rc = runs_add(c, cl->id, cl->id_len);
	if (rc) {
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int ckr_run_message(ckr_run *r, const void *msg, size_t len, ckr_ticket *t)
{
	int rc = run_usable(r);
	if (rc)
		return rc;
	if (r->kind != CKR_KIND_SINGLE_LOOP || (len && !msg))
		return -EINVAL;
	if (len > r->c->max_event)
		return -E2BIG;
	ckr_event ev;
	event_init(&ev, r, CKR_EV_MESSAGE);
	ev.u.message.data = msg;
	ev.u.message.len = len;
	return push_event(r, &ev, true, t);
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
	return push_event(r, &ev, true, t);
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
			*t = (ckr_ticket){ .lane = r->c->lane.index, .pos = 0 };
		return 0; /* shutdown: leave the record for boot recovery */
	}
	ckr_event ev;
	event_init(&ev, r, outcome == CKR_OUTCOME_COMPLETE ? CKR_EV_COMPLETE : CKR_EV_FAIL);
	if (outcome == CKR_OUTCOME_FAIL) {
		ev.u.fail.error = error ? error : "";
		ev.u.fail.len = error ? strlen(error) : 0;
	}
	rc = push_event(r, &ev, true, t);
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
	runs_remove(r->c, r->id, r->id_len);
	free(r);
}
