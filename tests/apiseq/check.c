/*
 * check.c — see check.h. Every comparison names the run, the field, what
 * the store says and what the model says.
 */
#include "tests/apiseq/check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "persist/store.h"
#include "tests/apiseq/procs.h"

static const char EXHAUSTED[] = "recovery exhausted";

/* ---- resolving what the model left open ---- */

/* The run is not in the store: no begin of it may have been accepted. */
static void resolve_absent(am *m, int run, const char *id)
{
	am_run *r = &m->runs[run];
	for (size_t i = 0; i < r->n_cands; i++) {
		am_writer *w = &m->ws[r->cands[i]];
		if (w->begin_ok)
			am_diverge(m, "run %s is not in the store, but its begin (writer %d, "
				   "label '%s') was accepted (the push returned 0)", id,
				   r->cands[i], w->label);
		w->begin_maybe = false;
		w->st = WS_LOSE;
	}
}

/* The stored sequence numbers, from the resume state: the gap-free prefix,
 * then (prefix, last_seq] minus the reported gaps. */
static bool stored_seq(const ckr_resume *rs, const ckr_run_info *in, uint64_t s)
{
	if (s == 0)
		return true;
	if (s <= in->prefix_seq)
		return true;
	if (s > in->last_seq)
		return false;
	for (size_t i = 0; i < rs->n_gaps; i++)
		if (rs->gaps[i] == s)
			return false;
	return true;
}

static const ckr_blob *aside_blob(const ckr_resume *rs, uint32_t inc, uint64_t seq)
{
	for (size_t i = 0; i < rs->n_set_aside; i++)
		if (rs->set_aside[i].incarnation == inc && rs->set_aside[i].seq == seq)
			return &rs->set_aside[i];
	return NULL;
}

/* Claims lost with their claimer: the store's attempts tell how many
 * committed; one that did closed the tenure at the prefix (set aside rows
 * past it) and made the dead claimer the owner. */
static void resolve_maybe_claims(am *m, int run, const ckr_run_info *in, const char *id)
{
	am_run *r = &m->runs[run];
	if (!r->n_maybe_claims)
		return;
	if (in->state == CKR_RUN_FAILED && strcmp(in->error, EXHAUSTED) == 0 &&
	    in->attempts == r->attempts && r->maybe_exhausted && r->fin_ev < 0) {
		r->exhausted = true;
		r->n_maybe_claims = 0;
		return;
	}
	if (in->attempts < r->attempts ||
	    in->attempts > r->attempts + (uint32_t)r->n_maybe_claims) {
		am_diverge(m, "run %s: attempts %u; the model says %u plus up to %d claims "
			   "lost with their claimers", id, in->attempts, r->attempts,
			   r->n_maybe_claims);
		return;
	}
	uint32_t k = in->attempts - r->attempts;
	if (k) {
		/* The lost claim's K3: rows past the prefix set aside. */
		uint64_t P = in->prefix_seq;
		for (uint64_t s = P + 1; s < r->n_rows; s++) {
			int e = r->rows[s];
			if (e < 0)
				continue;
			m->evs[e].aside = true;
			size_t n = r->n_aside, cap = r->cap_aside;
			r->aside = realloc(r->aside, (cap = cap > n ? cap : n + 16) * sizeof *r->aside);
			if (!r->aside)
				abort();
			r->aside[r->n_aside++] = e;
			r->cap_aside = cap;
			r->rows[s] = -1;
		}
		r->last_seq = P;
		int img = r->maybe_claim_img[(k - 1) < 4 ? k - 1 : 3];
		/* A tenure with no handle: its owner is the dead claimer. */
		am_writer w;
		memset(&w, 0, sizeof w);
		w.run = run;
		w.img = img;
		w.from_claim = true;
		w.st = WS_WIN;
		w.begin_ev = -1;
		w.inc = in->incarnation;
		const am_writer *win = &m->ws[r->winner];
		w.kind = win->kind;
		w.begin_size = win->begin_size;
		memcpy(w.label, win->label, sizeof w.label);
		if (m->n_ws == m->cap_ws) {
			m->cap_ws *= 2;
			m->ws = realloc(m->ws, m->cap_ws * sizeof *m->ws);
			if (!m->ws)
				abort();
		}
		m->ws[m->n_ws++] = w;
		if (r->n_tenure == r->cap_tenure) {
			r->cap_tenure = r->cap_tenure ? r->cap_tenure * 2 : 4;
			r->tenure = realloc(r->tenure, r->cap_tenure * sizeof *r->tenure);
			if (!r->tenure)
				abort();
		}
		r->tenure[r->n_tenure++] = (int)m->n_ws - 1;
		r->fin_ev = -1;
	}
	r->attempts = in->attempts;
	r->n_maybe_claims = 0;
	if (in->state == CKR_RUN_FAILED && strcmp(in->error, EXHAUSTED) == 0 && r->maybe_exhausted)
		r->exhausted = true;
	r->maybe_exhausted = false;
}

/* Events that may or may not have landed: the store decides. */
static void resolve_rows(am *m, int run, const ckr_run_info *in, const ckr_resume *rs,
			 const char *id)
{
	am_run *r = &m->runs[run];
	bool cleared = in->state == CKR_RUN_COMPLETED;
	if (r->fin_ev >= 0 && m->evs[r->fin_ev].maybe && m->evs[r->fin_ev].land == LAND_UNKNOWN)
		m->evs[r->fin_ev].land = in->state != CKR_RUN_RUNNING && !r->exhausted ? LAND_YES
										     : LAND_NO;
	if (cleared)
		return; /* rows are gone: nothing to resolve them by */
	for (uint64_t s = 1; s < r->n_rows; s++) {
		int e = r->rows[s];
		if (e < 0)
			continue;
		am_event *ev = &m->evs[e];
		bool there = stored_seq(rs, in, s);
		if (!ev->maybe) {
			if (!there)
				am_diverge(m, "run %s: seq %llu (%s, push returned 0, its writer the "
					   "run's) is not stored", id, (unsigned long long)s,
					   ev->type == EV_PHASE ? "phase" : "message");
			continue;
		}
		ev->land = there ? LAND_YES : LAND_NO;
		if (!there)
			r->rows[s] = -1;
	}
	for (size_t i = 0; i < r->n_aside; i++) {
		am_event *ev = &m->evs[r->aside[i]];
		bool there = aside_blob(rs, ev->inc, ev->seq) != NULL;
		if (!ev->maybe || ev->land == LAND_YES) {
			if (!there)
				am_diverge(m, "run %s: set-aside row (incarnation %u seq %llu) is "
					   "missing", id, ev->inc, (unsigned long long)ev->seq);
		} else {
			ev->land = there ? LAND_YES : LAND_NO;
		}
	}
}

/* One thread's lost pushes landed as a prefix of them (a push starts only
 * once the one before it committed). */
static void check_single_bursts(am *m, int run, const char *id)
{
	am_run *r = &m->runs[run];
	for (size_t t = 0; t < r->n_tenure; t++) {
		const am_writer *w = &m->ws[r->tenure[t]];
		bool gap = false;
		for (size_t i = 0; i < w->n_evs; i++) {
			const am_event *e = &m->evs[w->evs[i]];
			if (!e->maybe || !e->single_burst || e->land == LAND_UNKNOWN)
				continue;
			if (e->land == LAND_NO)
				gap = true;
			else if (gap)
				am_diverge(m, "run %s: seq %llu of a one-thread burst landed after an "
					   "earlier one of the same thread did not", id,
					   (unsigned long long)e->seq);
		}
	}
}

/* ---- the expected record ---- */

typedef struct expect_run {
	int state;
	uint64_t events, last_seq, prefix, set_aside, bytes;
	const char *error;
	char error_buf[256];
	int owner;
} expect_run;

static void expected(am *m, int run, expect_run *x)
{
	am_run *r = &m->runs[run];
	const am_writer *win = &m->ws[r->winner];
	memset(x, 0, sizeof *x);
	x->state = CKR_RUN_RUNNING;
	x->error = "";
	if (r->exhausted) {
		x->state = CKR_RUN_FAILED;
		x->error = EXHAUSTED;
	} else if (r->fin_ev >= 0 && m->evs[r->fin_ev].land == LAND_YES) {
		const am_event *f = &m->evs[r->fin_ev];
		x->state = f->type == EV_COMPLETE ? CKR_RUN_COMPLETED : CKR_RUN_FAILED;
		if (f->type == EV_FAIL) {
			size_t n = f->len < 255 ? f->len : 255;
			if (n)
				as_text(f->tag ^ 4, n, x->error_buf);
			x->error_buf[n] = '\0';
			x->error = x->error_buf;
		}
	}
	x->owner = m->ws[r->tenure[r->n_tenure - 1]].img;
	x->last_seq = r->last_seq;
	x->events = 1;
	x->bytes = win->begin_size;
	for (uint64_t s = 1; s < r->n_rows; s++) {
		int e = r->rows[s];
		if (e < 0 || m->evs[e].land == LAND_NO)
			continue;
		x->events++;
		x->bytes += m->evs[e].size;
		if (s > x->last_seq)
			x->last_seq = s;
	}
	x->prefix = am_prefix(m, run);
	for (size_t i = 0; i < r->n_aside; i++)
		x->set_aside += m->evs[r->aside[i]].land != LAND_NO;
	if (x->state == CKR_RUN_COMPLETED)
		x->events = x->bytes = x->set_aside = 0;
}

#define FIELD(name, got, want)                                                        \
	do {                                                                          \
		if ((uint64_t)(got) != (uint64_t)(want)) {                            \
			am_diverge(m, "run %s: %s is %llu in the store, %llu in the model", \
				   id, name, (unsigned long long)(got),              \
				   (unsigned long long)(want));                       \
			return;                                                       \
		}                                                                     \
	} while (0)

static void check_owner(am *m, const ckr_run_info *in, const expect_run *x, bool full,
			const char *id)
{
	const am_img *o = &m->imgs[x->owner];
	if (in->state != CKR_RUN_RUNNING) {
		if (in->owner_alive || !in->owner_drained)
			am_diverge(m, "run %s: finished but owner_alive %d owner_drained %d", id,
				   in->owner_alive, in->owner_drained);
		return;
	}
	FIELD("owner_pid", in->owner_pid, o->pid);
	bool gone = o->state != IMG_ALIVE;
	bool ends = gone && (o->state == IMG_DEAD || o->lanes_at_end > 0 || o->pid_dead);
	if (!gone) {
		if (!in->owner_alive || in->owner_drained)
			am_diverge(m, "run %s: its owner (pid %d) is ALIVE but the store says "
				   "owner_alive %d owner_drained %d: a live owner's run must never "
				   "be interrupted or claimable", id, (int)o->pid, in->owner_alive,
				   in->owner_drained);
		return;
	}
	if (o->state == IMG_DEAD || o->pid_dead) {
		if (in->owner_alive)
			am_diverge(m, "run %s: its owner (pid %d) is dead but shown alive", id,
				   (int)o->pid);
	}
	if (full && ends && !in->owner_drained)
		am_diverge(m, "run %s: its owner (pid %d, %s) can write no more and its lanes "
			   "are drained, but it is not marked ended: the run never becomes "
			   "claimable", id, (int)o->pid,
			   o->state == IMG_DEAD ? "dead" : "exec'd holding lanes");
	if (!ends && o->state == IMG_EXECED && (!in->owner_alive || in->owner_drained) && full)
		(void)0; /* ended early: safe (the old image writes nothing) */
}

static void check_blob(am *m, const ckr_blob *b, const am_event *e, const char *id,
		       const char *where)
{
	if (b->seq != e->seq || b->incarnation != e->inc || b->size != e->len) {
		am_diverge(m, "run %s: %s seq %llu incarnation %u size %zu; the model has seq "
			   "%llu incarnation %u size %u", id, where, (unsigned long long)b->seq,
			   b->incarnation, b->size, (unsigned long long)e->seq, e->inc, e->len);
		return;
	}
	if (e->wild) {
		/* TBURST: one of the 2 x n payloads (checked for uniqueness by
		 * the caller). */
		for (uint32_t j = 0; j < 2; j++)
			for (uint32_t k = 0; k < e->wild_n; k++)
				if (as_hash(b->data, b->size) ==
				    as_fill_hash(e->tag + 1000 * j + k, e->len))
					return;
		am_diverge(m, "run %s: %s seq %llu holds bytes no thread of its burst pushed",
			   id, where, (unsigned long long)b->seq);
		return;
	}
	uint8_t *want = malloc(e->len + 1);
	if (!want)
		abort();
	as_fill(e->tag, e->len, want);
	if (e->len && memcmp(b->data, want, e->len) != 0)
		am_diverge(m, "run %s: %s seq %llu: the bytes differ from what was pushed", id,
			   where, (unsigned long long)b->seq);
	free(want);
	if (e->type == EV_PHASE) {
		char name[300];
		as_text(e->tag ^ 3, e->name_len, name);
		if (b->index != e->index || strcmp(b->name ? b->name : "", e->name_len ? name : ""))
			am_diverge(m, "run %s: %s seq %llu phase index %u name '%s'; pushed index "
				   "%u name '%s'", id, where, (unsigned long long)b->seq, b->index,
				   b->name ? b->name : "", e->index, e->name_len ? name : "");
	}
}

/* Which (thread, k) payload a wild blob holds, as j * n + k; -1 none. */
static int wild_slot(const ckr_blob *b, const am_event *e)
{
	uint64_t h = as_hash(b->data, b->size);
	for (uint32_t j = 0; j < 2; j++)
		for (uint32_t k = 0; k < e->wild_n; k++)
			if (h == as_fill_hash(e->tag + 1000 * j + k, e->len))
				return (int)(j * e->wild_n + k);
	return -1;
}

static void check_wild(am *m, int run, const ckr_resume *rs, const char *id)
{
	am_run *r = &m->runs[run];
	const ckr_blob *items = rs->kind == CKR_KIND_MULTI_PHASE ? rs->phases : rs->history;
	size_t n_items = rs->kind == CKR_KIND_MULTI_PHASE ? rs->n_phases : rs->n_history;
	for (size_t t = 0; t < r->n_tenure; t++) {
		const am_writer *w = &m->ws[r->tenure[t]];
		uint64_t seen[2 * AS_BURST_MAX] = { 0 };
		uint64_t last[2] = { 0, 0 };
		uint32_t landed = 0, min_landed = 0;
		bool any = false;
		for (size_t i = 0; i < w->n_evs; i++) {
			const am_event *e = &m->evs[w->evs[i]];
			if (!e->wild)
				continue;
			if (e->index != UINT32_MAX)
				min_landed = e->index;
			any = true;
			if (e->land == LAND_YES)
				landed++;
			const ckr_blob *b = NULL;
			if (e->aside)
				b = aside_blob(rs, e->inc, e->seq);
			else if (e->seq >= 1 && e->seq <= n_items)
				b = &items[e->seq - 1];
			if (!b || e->land != LAND_YES)
				continue;
			int slot = e->len >= 8 ? wild_slot(b, e) : -1;
			if (slot < 0)
				continue; /* reported by check_blob, or indistinct */
			if (seen[slot])
				am_diverge(m, "run %s: one pushed message stored twice (seq %llu and "
					   "%llu)", id, (unsigned long long)seen[slot],
					   (unsigned long long)e->seq);
			seen[slot] = e->seq;
			uint32_t j = (uint32_t)slot / e->wild_n;
			if (e->seq <= last[j])
				am_diverge(m, "run %s: a thread's messages stored out of its push "
					   "order (seq %llu after %llu)", id, (unsigned long long)e->seq,
					   (unsigned long long)last[j]);
			last[j] = e->seq;
		}
		if (any && landed < min_landed && !m->failed)
			am_diverge(m, "run %s: %u messages of a two-thread burst are stored, but "
				   "%u had been accepted", id, landed, min_landed);
	}
}

static void check_resume(am *m, int run, const ckr_run_info *in, const ckr_resume *rs,
			 const expect_run *x, const char *id)
{
	am_run *r = &m->runs[run];
	const am_writer *win = &m->ws[r->winner];
	bool cleared = x->state == CKR_RUN_COMPLETED;
	bool phases = win->kind == CKR_KIND_MULTI_PHASE;
	const ckr_blob *items = phases ? rs->phases : rs->history;
	size_t n_items = phases ? rs->n_phases : rs->n_history;
	FIELD("resume.kind", rs->kind, win->kind);
	FIELD("resume.state", rs->state, x->state);
	FIELD("resume.next_seq", rs->next_seq, x->last_seq + 1);
	FIELD(phases ? "resume.n_history (multi-phase)" : "resume.n_phases (single-loop)",
	      phases ? rs->n_history : rs->n_phases, 0);
	if (strcmp(rs->label, win->label) != 0) {
		am_diverge(m, "run %s: resume label '%s', the begin's '%s'", id, rs->label,
			   win->label);
		return;
	}
	uint8_t meta[4096];
	if (cleared) {
		FIELD("resume.meta_len (cleared)", rs->meta_len, 0);
	} else {
		FIELD("resume.meta_len", rs->meta_len, win->meta_len);
		if (win->meta_len <= sizeof meta) {
			as_fill(win->meta_tag, win->meta_len, meta);
			if (win->meta_len && memcmp(rs->meta, meta, win->meta_len) != 0)
				am_diverge(m, "run %s: resume meta differs from the begin's", id);
		}
	}
	FIELD(phases ? "resume.n_phases" : "resume.n_history", n_items, cleared ? 0 : x->prefix);
	for (size_t i = 0; i < n_items && !m->failed; i++) {
		int e = r->rows[i + 1];
		check_blob(m, &items[i], &m->evs[e], id, phases ? "phase" : "message");
	}
	/* Gaps: the missing seqs in (prefix, last_seq] (none once cleared). */
	size_t gaps = 0;
	for (uint64_t s = x->prefix + 1; !cleared && s <= x->last_seq; s++) {
		int e = s < r->n_rows ? r->rows[s] : -1;
		if (e >= 0 && m->evs[e].land != LAND_NO)
			continue;
		if (gaps >= rs->n_gaps || rs->gaps[gaps] != s) {
			am_diverge(m, "run %s: gap at seq %llu not reported (resume gaps %zu)", id,
				   (unsigned long long)s, rs->n_gaps);
			return;
		}
		gaps++;
	}
	FIELD("resume.n_gaps", rs->n_gaps, gaps);
	FIELD("resume.n_set_aside", rs->n_set_aside, x->set_aside);
	for (size_t i = 0; i < r->n_aside && !cleared && !m->failed; i++) {
		const am_event *e = &m->evs[r->aside[i]];
		if (e->land == LAND_NO)
			continue;
		const ckr_blob *b = aside_blob(rs, e->inc, e->seq);
		if (!b) {
			am_diverge(m, "run %s: set-aside row incarnation %u seq %llu missing", id,
				   e->inc, (unsigned long long)e->seq);
			return;
		}
		check_blob(m, b, e, id, "set-aside row");
	}
	for (size_t i = 1; i < rs->n_set_aside; i++) {
		const ckr_blob *a = &rs->set_aside[i - 1], *b = &rs->set_aside[i];
		if (a->incarnation > b->incarnation ||
		    (a->incarnation == b->incarnation && a->seq >= b->seq))
			am_diverge(m, "run %s: set-aside rows out of (incarnation, seq) order", id);
	}
	if (!cleared)
		check_wild(m, run, rs, id);
	(void)in;
}

static void check_run(am *m, ckr_store *s, int run, bool full)
{
	am_run *r = &m->runs[run];
	char id[300];
	am_run_id_text(r, id, sizeof id);
	if (r->n_cands == 0)
		return;
	m->focus = run;
	ckr_run_info in;
	int rc = ckr_store_get(s, r->id, r->id_len, &in);
	if (rc == -ENOENT) {
		resolve_absent(m, run, id);
		return;
	}
	if (rc) {
		am_diverge(m, "ckr_store_get(%s): %s", id, am_rc(rc));
		return;
	}
	if (r->winner < 0) {
		int w = am_cand_by_label(m, run, in.label);
		if (w == -2) {
			int only = -1, live = 0;
			for (size_t i = 0; i < r->n_cands; i++) {
				const am_writer *c = &m->ws[r->cands[i]];
				if (c->st != WS_LOSE && (c->begin_ok || c->begin_maybe)) {
					only = r->cands[i];
					live++;
				}
			}
			w = live == 1 ? only : -1;
		}
		if (w < 0) {
			am_diverge(m, "run %s: the store's label '%s' names no single begin of it", id,
				   in.label);
			return;
		}
		am_decide_win(m, run, w, "checkpoint: the store's label");
		if (m->failed)
			return;
	}
	/* Maybe begins that lost: they may or may not have landed (counters). */
	ckr_resume *rs = NULL;
	rc = ckr_store_resume(s, r->id, r->id_len, &rs);
	if (rc) {
		am_diverge(m, "ckr_store_resume(%s): %s", id, am_rc(rc));
		return;
	}
	resolve_maybe_claims(m, run, &in, id);
	resolve_rows(m, run, &in, rs, id);
	check_single_bursts(m, run, id);
	if (m->failed) {
		ckr_resume_free(rs);
		return;
	}
	expect_run x;
	expected(m, run, &x);
	const am_writer *win = &m->ws[r->winner];
#undef FIELD
#define FIELD(name, got, want)                                                        \
	do {                                                                          \
		if ((uint64_t)(got) != (uint64_t)(want)) {                            \
			am_diverge(m, "run %s: %s is %llu in the store, %llu in the model", \
				   id, name, (unsigned long long)(got),              \
				   (unsigned long long)(want));                       \
			goto out;                                                     \
		}                                                                     \
	} while (0)
	FIELD("state", in.state, x.state);
	FIELD("kind", in.kind, win->kind);
	FIELD("attempts", in.attempts, r->attempts);
	FIELD("incarnation", in.incarnation, r->attempts + 1);
	FIELD("events", in.events, x.events);
	FIELD("last_seq", in.last_seq, x.last_seq);
	FIELD("prefix_seq", in.prefix_seq, x.prefix);
	FIELD("set_aside", in.set_aside, x.set_aside);
	FIELD("bytes", in.bytes, x.bytes);
	if (strcmp(in.label, win->label) != 0) {
		am_diverge(m, "run %s: label '%s', the begin's '%s'", id, in.label, win->label);
		goto out;
	}
	if (x.state == CKR_RUN_FAILED && strcmp(in.error, x.error) != 0) {
		am_diverge(m, "run %s: error '%s', the model says '%s'", id, in.error, x.error);
		goto out;
	}
	if (x.state != CKR_RUN_RUNNING && in.finished_ns == 0) {
		am_diverge(m, "run %s: finished but finished_ns is 0", id);
		goto out;
	}
	check_owner(m, &in, &x, full, id);
	if (!m->failed)
		check_resume(m, run, &in, rs, &x, id);
	r->checked_once = true;
out:
	ckr_resume_free(rs);
}

#undef FIELD

/* ---- lists and counters ---- */

static bool run_exists(const am *m, int run)
{
	return m->runs[run].winner >= 0;
}

static void check_lists(am *m, ckr_store *s, bool full)
{
	for (int which = CKR_LIST_INTERRUPTED; which <= CKR_LIST_ALL && !m->failed; which++) {
		ckr_run_info *v = NULL;
		size_t n = 0;
		int rc = ckr_store_list(s, (ckr_list_which)which, &v, &n);
		if (rc) {
			am_diverge(m, "ckr_store_list(%d): %s", which, am_rc(rc));
			return;
		}
		uint8_t *seen = calloc(m->n_runs + 1, 1);
		if (!seen)
			abort();
		for (size_t i = 0; i < n && !m->failed; i++) {
			int run = am_run_find(m, v[i].id, v[i].id_len);
			if (run < 0 || !run_exists(m, run)) {
				am_diverge(m, "ckr_store_list(%d) lists '%.*s', which the model has "
					   "no record of", which, (int)v[i].id_len,
					   (const char *)v[i].id);
				break;
			}
			if (seen[run]++)
				am_diverge(m, "ckr_store_list(%d) lists a run twice", which);
		}
		for (size_t run = 0; run < m->n_runs && !m->failed; run++) {
			if (!run_exists(m, (int)run))
				continue;
			const am_run *r = &m->runs[run];
			expect_run x;
			expected(m, (int)run, &x);
			bool running = x.state == CKR_RUN_RUNNING;
			const am_img *o = &m->imgs[x.owner];
			bool dead = o->state == IMG_DEAD || o->pid_dead;
			bool ends = dead || (o->state == IMG_EXECED && o->lanes_at_end > 0);
			bool want;
			bool sure = true;
			if (which == CKR_LIST_ALL)
				want = true;
			else if (which == CKR_LIST_RUNNING)
				want = running;
			else {
				want = running && (dead || (full && ends));
				sure = !(running && o->state == IMG_EXECED && !(full && ends) && !dead);
			}
			char id[300];
			am_run_id_text(r, id, sizeof id);
			if (sure && want != (seen[run] != 0))
				am_diverge(m, "ckr_store_list(%s) %s run %s (state %d, owner pid %d %s)",
					   which == 0 ? "INTERRUPTED" : which == 1 ? "RUNNING" : "ALL",
					   want ? "misses" : "wrongly lists", id, x.state, (int)o->pid,
					   o->state == IMG_ALIVE ? "alive" : dead ? "dead" : "exec'd");
		}
		free(seen);
		free(v);
	}
}

static void check_counters(am *m, ckr_store *s)
{
	uint64_t stored_lo = 0, stored_hi = 0, dup_lo = 0, dup_hi = 0, for_lo = 0, for_hi = 0;
	for (size_t i = 0; i < m->n_ws; i++) {
		const am_writer *w = &m->ws[i];
		am_wstat st = w->from_claim ? WS_WIN : am_writer_status(m, (int)i);
		if (!w->from_claim) {
			if (!w->begin_ok && !w->begin_maybe && st != WS_WIN)
				continue; /* never pushed */
			bool certain = w->begin_ok;
			if (st == WS_WIN) {
				stored_lo++;
				stored_hi++;
			} else {
				dup_lo += certain;
				dup_hi++;
			}
		}
		for (size_t k = 0; k < w->n_evs; k++) {
			const am_event *e = &m->evs[w->evs[k]];
			if (e->type == EV_BEGIN)
				continue;
			bool data = e->type == EV_MSG || e->type == EV_PHASE;
			bool yes = !e->maybe || e->land == LAND_YES;
			bool may = yes || e->land == LAND_UNKNOWN;
			if (st == WS_WIN) {
				if (data) {
					stored_lo += yes;
					stored_hi += may;
				}
			} else {
				for_lo += yes;
				for_hi += may;
			}
		}
	}
	struct {
		const char *name;
		uint64_t lo, hi;
	} c[] = {
		{ "stored", stored_lo, stored_hi },
		{ "dup_begin", dup_lo, dup_hi },
		{ "foreign", for_lo, for_hi },
		{ "stale", 0, 0 },
		{ "orphan", 0, 0 },
		{ "after_end", 0, 0 },
		{ "dup_seq", 0, 0 },
		{ "bad_kind", 0, 0 },
		{ "bad_begin", 0, 0 },
		{ "quarantined", m->cnt.quarantined_lo, m->cnt.quarantined_hi },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		uint64_t v = ckr_store_counter(s, c[i].name);
		if (v < c[i].lo || v > c[i].hi) {
			am_diverge(m, "store counter %s is %llu; the model says %llu..%llu", c[i].name,
				   (unsigned long long)v, (unsigned long long)c[i].lo,
				   (unsigned long long)c[i].hi);
			return;
		}
	}
}

void ac_checkpoint(am *m, ckr_store *s, bool full)
{
	m->focus = -1;
	/* A regular checkpoint looks at the runs touched since the last one
	 * (commands about them, their owner's end); a full one at all. */
	for (size_t run = 0; run < m->n_runs && !m->failed; run++)
		if (full || m->runs[run].dirty || m->runs[run].winner < 0) {
			check_run(m, s, (int)run, full);
			m->runs[run].dirty = false;
		}
	if (m->failed)
		return;
	m->focus = -1;
	check_lists(m, s, full);
	if (!m->failed)
		check_counters(m, s);
}

/* The image whose end the store's record of run r waits for: its last
 * tenure's, or, while the model has not yet decided which begin won (the
 * checkpoint decides it from the store), the candidate the store names. */
static const am_img *recorded_owner(const am *m, const am_run *r, const ckr_run_info *in)
{
	if (r->winner >= 0)
		return &m->imgs[m->ws[r->tenure[r->n_tenure - 1]].img];
	for (size_t i = 0; i < r->n_cands; i++) {
		const am_img *o = &m->imgs[m->ws[r->cands[i]].img];
		if ((uint32_t)o->pid == in->owner_pid)
			return o;
	}
	return NULL;
}

static bool img_ends(const am_img *o)
{
	return o->state == IMG_DEAD || o->pid_dead ||
	       (o->state == IMG_EXECED && o->lanes_at_end > 0);
}

int ac_wait_ended(am *m, ckr_store *s, int timeout_ms)
{
	int64_t deadline = ap_now_ms() + timeout_ms;
	for (size_t run = 0; run < m->n_runs && !m->failed; run++) {
		am_run *r = &m->runs[run];
		ckr_run_info in;
		if (ckr_store_get(s, r->id, r->id_len, &in) != 0)
			continue;
		const am_img *o = recorded_owner(m, r, &in);
		if (!o || !img_ends(o))
			continue;
		for (;;) {
			/* A claim lost in flight may have landed: the run is
			 * then the claimer's, whose end is not this wait's. */
			if (in.state != CKR_RUN_RUNNING || in.owner_drained ||
			    (r->n_maybe_claims && in.owner_pid != (uint32_t)o->pid))
				break;
			if (ap_now_ms() > deadline) {
				char id[300];
				am_run_id_text(r, id, sizeof id);
				m->focus = (int)run;
				am_diverge(m, "run %s: its owner (pid %d, %s; the store says pid %u, "
					   "alive %d) was never marked ended within %d ms: the run never "
					   "becomes claimable", id, (int)o->pid,
					   o->state == IMG_DEAD ? "dead" : "exec'd holding lanes",
					   in.owner_pid, in.owner_alive, timeout_ms);
				return -ETIMEDOUT;
			}
			/* Polling the store for the flusher's housekeeping (E1/E2). */
			struct timespec ts = { 0, 5 * 1000000 };
			nanosleep(&ts, NULL);
			if (ckr_store_get(s, r->id, r->id_len, &in) != 0)
				break;
		}
	}
	return 0;
}

/* Count `"key": "value"` occurrences in a JSON text (any spacing). */
static size_t count_kv(const char *js, const char *key, const char *val)
{
	size_t n = 0, kl = strlen(key), vl = strlen(val);
	for (const char *p = js; (p = strstr(p, key)); p += kl) {
		const char *q = p + kl;
		while (*q == ' ')
			q++;
		if (*q++ != ':')
			continue;
		while (*q == ' ')
			q++;
		if (strncmp(q, val, vl) == 0)
			n++;
	}
	return n;
}

void ac_inspect(am *m, const char *inspect_bin, const char *db)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "'%s' db '%s' --json", inspect_bin, db);
	FILE *p = popen(cmd, "r");
	if (!p) {
		am_diverge(m, "cannot run %s", cmd);
		return;
	}
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		abort();
	size_t r;
	while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
		n += r;
		if (n + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
	}
	buf[n] = '\0';
	int st = pclose(p);
	size_t want[4] = { 0 };
	for (size_t run = 0; run < m->n_runs; run++) {
		if (!run_exists(m, (int)run))
			continue;
		expect_run x;
		expected(m, (int)run, &x);
		want[x.state]++;
	}
	size_t got[4] = { 0, count_kv(buf, "\"state\"", "\"running\""),
			  count_kv(buf, "\"state\"", "\"failed\""),
			  count_kv(buf, "\"state\"", "\"completed\"") };
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		am_diverge(m, "ckring-inspect db --json exited with status %d", st);
	else if (got[1] != want[1] || got[2] != want[2] || got[3] != want[3])
		am_diverge(m, "ckring-inspect db --json: %zu running, %zu failed, %zu completed; "
			   "the model says %zu, %zu, %zu", got[1], got[2], got[3], want[1],
			   want[2], want[3]);
	free(buf);
}

void ac_dump_store(ckr_store *s, const am *m, int run, FILE *out)
{
	if (run < 0 || (size_t)run >= m->n_runs || !s)
		return;
	const am_run *r = &m->runs[run];
	ckr_run_info in;
	int rc = ckr_store_get(s, r->id, r->id_len, &in);
	if (rc) {
		fprintf(out, "store: get %s\n", am_rc(rc));
		return;
	}
	fprintf(out, "store: state %d kind %d owner pid %u alive %d drained %d inc %u attempts %u "
		"events %llu last_seq %llu prefix %llu set_aside %llu bytes %llu label '%s' error "
		"'%s'\n", in.state, in.kind, in.owner_pid, in.owner_alive, in.owner_drained,
		in.incarnation, in.attempts, (unsigned long long)in.events,
		(unsigned long long)in.last_seq, (unsigned long long)in.prefix_seq,
		(unsigned long long)in.set_aside, (unsigned long long)in.bytes, in.label, in.error);
	ckr_resume *rs;
	if (ckr_store_resume(s, r->id, r->id_len, &rs))
		return;
	size_t n = rs->kind == CKR_KIND_MULTI_PHASE ? rs->n_phases : rs->n_history;
	const ckr_blob *b = rs->kind == CKR_KIND_MULTI_PHASE ? rs->phases : rs->history;
	fprintf(out, "store resume: next_seq %llu, %zu items:", (unsigned long long)rs->next_seq, n);
	for (size_t i = 0; i < n; i++)
		fprintf(out, " %llu/i%u/%zu", (unsigned long long)b[i].seq, b[i].incarnation,
			b[i].size);
	fprintf(out, "\n  gaps:");
	for (size_t i = 0; i < rs->n_gaps; i++)
		fprintf(out, " %llu", (unsigned long long)rs->gaps[i]);
	fprintf(out, "\n  set aside:");
	for (size_t i = 0; i < rs->n_set_aside; i++)
		fprintf(out, " %llu/i%u/%zu", (unsigned long long)rs->set_aside[i].seq,
			rs->set_aside[i].incarnation, rs->set_aside[i].size);
	fprintf(out, "\n");
	ckr_resume_free(rs);
}
