/*
 * model.c — the reference model (model.h): bookkeeping of images, clients,
 * handles, writers, events and runs; the expected return codes of every
 * command; decisions of begin races; claims and the tenures they close.
 *
 * Rules are written where they are applied; each names the clause of the
 * contract (ckring.h / ckring_store.h / PROTOCOL.md) it follows. A
 * divergence is recorded with am_diverge() and ends the test.
 */
#include "tests/apiseq/model.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"

#define PUSH(arr, n, cap, val)                                                       \
	do {                                                                         \
		if ((n) == (cap)) {                                                  \
			(cap) = (cap) ? (cap) * 2 : 16;                              \
			(arr) = realloc((arr), (cap) * sizeof *(arr));               \
			if (!(arr))                                                  \
				abort();                                             \
		}                                                                    \
		(arr)[(n)++] = (val);                                                \
	} while (0)

/* ------------------------------------------------------------------ */
/* basics                                                              */
/* ------------------------------------------------------------------ */

void am_init(am *m, uint32_t lanes, uint32_t wpl, uint32_t max_attempts)
{
	memset(m, 0, sizeof *m);
	m->lanes = lanes;
	m->wpl = wpl;
	m->meta_max_attempts = max_attempts;
	for (uint32_t i = 0; i < AM_MAX_LANES; i++) {
		m->lane[i].img = -1;
		m->lane[i].client = -1;
	}
	m->focus = -1;
	m->claim_prev_img = -1;
	m->hcap = 1024;
	m->hmap = calloc(m->hcap, sizeof *m->hmap);
	if (!m->hmap)
		abort();
}

void am_free(am *m)
{
	for (size_t i = 0; i < m->n_imgs; i++)
		free(m->imgs[i].evs);
	for (size_t i = 0; i < m->n_runs; i++) {
		free(m->runs[i].cands);
		free(m->runs[i].tenure);
		free(m->runs[i].rows);
		free(m->runs[i].aside);
	}
	for (size_t i = 0; i < m->n_ws; i++)
		free(m->ws[i].evs);
	for (uint32_t i = 0; i < AM_MAX_LANES; i++) {
		free(m->lane[i].kt);
		free(m->lane[i].kp);
	}
	free(m->imgs);
	free(m->runs);
	free(m->ws);
	free(m->evs);
	free(m->hrec);
	free(m->gens);
	free(m->hmap);
	memset(m, 0, sizeof *m);
}

int64_t am_tick(am *m)
{
	return ++m->T;
}

void am_diverge(am *m, const char *fmt, ...)
{
	if (m->failed)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->why, sizeof m->why, fmt, ap);
	va_end(ap);
	m->failed = true;
}

const char *am_rc(int rc)
{
	static char b[8][48];
	static int n;
	char *s = b[n++ % 8];
	switch (rc) {
	case 0: return "0";
	case -EAGAIN: return "-EAGAIN";
	case -EINVAL: return "-EINVAL";
	case -EEXIST: return "-EEXIST";
	case -E2BIG: return "-E2BIG";
	case -EFBIG: return "-EFBIG";
	case -ENOENT: return "-ENOENT";
	case -EPIPE: return "-EPIPE";
	case -ETIMEDOUT: return "-ETIMEDOUT";
	case -EUSERS: return "-EUSERS";
	case -EBUSY: return "-EBUSY";
	case -EROFS: return "-EROFS";
	case CKR_EFORKED: return "CKR_EFORKED";
	case CKR_ECLAIMED: return "CKR_ECLAIMED";
	case CKR_ENOTDRAINED: return "CKR_ENOTDRAINED";
	case CKR_EEXHAUSTED: return "CKR_EEXHAUSTED";
	case CKR_ETERMINAL: return "CKR_ETERMINAL";
	case CKR_ENOTINTERRUPTED: return "CKR_ENOTINTERRUPTED";
	case CKR_EREJECTED: return "CKR_EREJECTED";
	case CKR_ENOTCLAIMER: return "CKR_ENOTCLAIMER";
	case CKR_ESEGMENT: return "CKR_ESEGMENT";
	case CKR_ESLOTS: return "CKR_ESLOTS";
	case CKR_ECLOSED: return "CKR_ECLOSED";
	default:
		snprintf(s, sizeof b[0], "%d (%s)", rc, ckr_strerror(rc));
		return s;
	}
}

const char *am_op_name(uint32_t op)
{
	static const char *const names[] = {
		[OP_HELLO] = "HELLO", [OP_ATTACH] = "ATTACH", [OP_DETACH] = "DETACH",
		[OP_BEGIN] = "BEGIN", [OP_MSG] = "MSG", [OP_PHASE] = "PHASE",
		[OP_FINISH] = "FINISH", [OP_CLOSE] = "CLOSE", [OP_WAIT] = "WAIT",
		[OP_STORE_OPEN] = "STORE_OPEN", [OP_STORE_CLOSE] = "STORE_CLOSE",
		[OP_LIST] = "LIST", [OP_GET] = "GET", [OP_CLAIM] = "CLAIM",
		[OP_RESUME] = "RESUME", [OP_REOPEN] = "REOPEN",
		[OP_BEGIN_CHECK] = "BEGIN_CHECK", [OP_PRUNE] = "PRUNE", [OP_FORK] = "FORK",
		[OP_EXEC] = "EXEC", [OP_EXIT] = "EXIT", [OP_KILLPUSH] = "KILLPUSH",
		[OP_PARKPUSH] = "PARKPUSH", [OP_TBURST] = "TBURST", [OP_BURST] = "BURST",
		[OP_EMBED] = "EMBED", [OP_MISUSE] = "MISUSE",
	};
	return op < sizeof names / sizeof names[0] && names[op] ? names[op] : "?";
}

void am_run_id_text(const am_run *r, char *out, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < r->id_len && k + 5 < n; i++) {
		uint8_t c = r->id[i];
		if (c >= 0x21 && c < 0x7f)
			out[k++] = (char)c;
		else
			k += (size_t)snprintf(out + k, n - k, "\\x%02x", c);
	}
	out[k < n ? k : n - 1] = '\0';
}

/* ---- sizes: exactly event/event.c's encoding ---- */

static uint64_t size_of(const ckr_event *ev)
{
	return ckr_event_size(ev);
}

static const uint8_t dummy[1] = { 0 };

uint64_t am_size_begin(size_t id_len, size_t label_len, size_t meta_len)
{
	ckr_event ev = { .type = CKR_EV_BEGIN, .incarnation = 1, .id = dummy,
			 .id_len = id_len };
	ev.u.begin.kind = CKR_KIND_SINGLE_LOOP;
	ev.u.begin.label = "";
	ev.u.begin.label_len = label_len;
	ev.u.begin.meta = dummy;
	ev.u.begin.meta_len = meta_len;
	return size_of(&ev);
}

uint64_t am_size_msg(size_t id_len, size_t len)
{
	ckr_event ev = { .type = CKR_EV_MESSAGE, .incarnation = 1, .id = dummy,
			 .id_len = id_len };
	ev.u.message.data = dummy;
	ev.u.message.len = len;
	return size_of(&ev);
}

uint64_t am_size_phase(size_t id_len, size_t name_len, size_t len)
{
	ckr_event ev = { .type = CKR_EV_PHASE, .incarnation = 1, .id = dummy,
			 .id_len = id_len };
	ev.u.phase.name = "";
	ev.u.phase.name_len = name_len;
	ev.u.phase.data = dummy;
	ev.u.phase.len = len;
	return size_of(&ev);
}

uint64_t am_size_fail(size_t id_len, size_t len)
{
	ckr_event ev = { .type = CKR_EV_FAIL, .incarnation = 1, .id = dummy,
			 .id_len = id_len };
	ev.u.fail.error = "";
	ev.u.fail.len = len;
	return size_of(&ev);
}

uint64_t am_size_complete(size_t id_len)
{
	ckr_event ev = { .type = CKR_EV_COMPLETE, .incarnation = 1, .id = dummy,
			 .id_len = id_len };
	return size_of(&ev);
}

/* ---- images ---- */

int am_img_new(am *m, int worker, pid_t pid, uint64_t token)
{
	am_img im;
	memset(&im, 0, sizeof im);
	im.worker = worker;
	im.pid = pid;
	im.token = token;
	im.state = IMG_ALIVE;
	im.t_end = AM_NEVER;
	im.t_gone = AM_NEVER;
	im.pend_writer = -1;
	for (int i = 0; i < AS_MAX_CLIENTS; i++)
		im.cl[i].check_store = -1;
	PUSH(m->imgs, m->n_imgs, m->cap_imgs, im);
	return (int)m->n_imgs - 1;
}

static void hrec_close(am *m, int h, int64_t t)
{
	if (h >= 0 && m->hrec[h] == AM_NEVER)
		m->hrec[h] = t;
}

static int hrec_new(am *m)
{
	PUSH(m->hrec, m->n_hrec, m->cap_hrec, AM_NEVER);
	return (int)m->n_hrec - 1;
}

/* The image ends (killed / exited / exec'd): its tenures end with it; the
 * flusher frees their lanes once drained (maybe_held until then). */
void am_img_end(am *m, int img, am_img_state how, int64_t t, int64_t t_gone)
{
	am_img *im = &m->imgs[img];
	if (im->state == IMG_EXECED && how == IMG_DEAD) {
		im->pid_dead = true; /* the exec'd image's process died later */
		for (size_t k = 0; k < m->n_runs; k++)
			m->runs[k].dirty = true;
		return;
	}
	if (im->state != IMG_ALIVE)
		return;
	int lanes = 0;
	for (int i = 0; i < AS_MAX_CLIENTS; i++) {
		am_client *c = &im->cl[i];
		if (!c->used)
			continue;
		lanes++;
		am_lane *l = &m->lane[c->lane];
		if (l->img == img && l->client == i) {
			l->img = l->client = -1;
			l->maybe_held = true;
		}
		c->used = false;
	}
	for (int i = 0; i < AS_MAX_RUNS; i++)
		if (im->h[i].used)
			hrec_close(m, im->h[i].hrec, t);
	im->lanes_at_end = lanes;
	im->state = how;
	im->stopped = false;
	im->t_end = t;
	im->t_gone = t_gone;
	for (size_t k = 0; k < m->n_runs; k++) {
		am_run *r = &m->runs[k];
		if (r->n_tenure && m->ws[r->tenure[r->n_tenure - 1]].img == img)
			r->dirty = true;
		else if (r->winner < 0 && r->n_cands)
			r->dirty = true;
	}
	if (how == IMG_DEAD) /* the earlier images of this process die with it */
		for (size_t i = 0; i < m->n_imgs; i++)
			if ((int)i != img && m->imgs[i].state == IMG_EXECED &&
			    m->imgs[i].pid == im->pid && m->imgs[i].token == im->token)
				m->imgs[i].pid_dead = true;
}

void am_lanes_free(am *m)
{
	for (uint32_t i = 0; i < AM_MAX_LANES; i++)
		m->lane[i].maybe_held = false;
}

/* Is image i certainly alive (its image can still write) through t1? */
static bool img_alive_through(const am *m, int i, int64_t t1)
{
	return t1 < m->imgs[i].t_end;
}

/* Can image i no longer write by t (dead, exec'd)? */
static bool img_gone_by(const am *m, int i, int64_t t)
{
	return m->imgs[i].state != IMG_ALIVE && m->imgs[i].t_gone < t;
}

/* ---- run ids ---- */

static uint64_t id_hash(const uint8_t *id, size_t len)
{
	return as_hash(id, len) ^ len;
}

int am_run_find(const am *m, const uint8_t *id, size_t len)
{
	if (len == 0 || len > CKR_RUN_ID_MAX)
		return -1;
	size_t mask = m->hcap - 1, i = id_hash(id, len) & mask;
	for (;; i = (i + 1) & mask) {
		int v = m->hmap[i];
		if (v == 0)
			return -1;
		const am_run *r = &m->runs[v - 1];
		if (r->id_len == len && memcmp(r->id, id, len) == 0)
			return v - 1;
	}
}

static void hmap_insert(am *m, int run)
{
	size_t mask = m->hcap - 1;
	size_t i = id_hash(m->runs[run].id, m->runs[run].id_len) & mask;
	while (m->hmap[i])
		i = (i + 1) & mask;
	m->hmap[i] = run + 1;
}

int am_run_get(am *m, const uint8_t *id, size_t len)
{
	int r = am_run_find(m, id, len);
	if (r >= 0 || len == 0 || len > CKR_RUN_ID_MAX)
		return r;
	am_run run;
	memset(&run, 0, sizeof run);
	memcpy(run.id, id, len);
	run.id_len = (uint8_t)len;
	run.winner = -1;
	run.fin_ev = -1;
	run.t_exists = AM_NEVER;
	run.t_term = AM_NEVER;
	run.t_claim_done = -1;
	run.t_claim_send = -1;
	run.dirty = true;
	PUSH(m->runs, m->n_runs, m->cap_runs, run);
	if (m->n_runs * 2 > m->hcap) {
		free(m->hmap);
		m->hcap *= 2;
		m->hmap = calloc(m->hcap, sizeof *m->hmap);
		if (!m->hmap)
			abort();
		for (size_t k = 0; k < m->n_runs; k++)
			hmap_insert(m, (int)k);
	} else {
		hmap_insert(m, (int)m->n_runs - 1);
	}
	return (int)m->n_runs - 1;
}

/* ------------------------------------------------------------------ */
/* lanes: what is known to be applied                                  */
/* ------------------------------------------------------------------ */

static void lane_known(am *m, uint32_t lane, uint64_t pos, int64_t t)
{
	if (lane >= AM_MAX_LANES)
		return;
	am_lane *l = &m->lane[lane];
	if (l->nk && l->kp[l->nk - 1] >= pos)
		return;
	size_t n = l->nk, cap = l->capk;
	PUSH(l->kt, l->nk, l->capk, t);
	l->nk = n;
	l->capk = cap;
	PUSH(l->kp, l->nk, l->capk, pos);
}

/* The highest position of lane known applied strictly before t. */
static uint64_t lane_known_before(const am *m, uint32_t lane, int64_t t)
{
	const am_lane *l = &m->lane[lane];
	size_t lo = 0, hi = l->nk; /* first index with kt >= t */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (l->kt[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? l->kp[lo - 1] : 0;
}

static bool ev_applied_before(const am *m, const am_event *e, int64_t t)
{
	return e->tk.pos && lane_known_before(m, e->tk.lane, t) >= e->tk.pos;
}

void am_quiesced(am *m, int64_t t)
{
	for (uint32_t i = 0; i < m->lanes && i < AM_MAX_LANES; i++)
		if (m->lane[i].max_pos)
			lane_known(m, i, m->lane[i].max_pos, t);
	for (size_t i = 0; i < m->n_imgs; i++)
		for (int k = 0; k < AS_MAX_CLIENTS; k++)
			m->imgs[i].cl[k].n_closed = 0; /* every closed slot drained */
	m->t_quiesced = t;
}

/* ------------------------------------------------------------------ */
/* flusher generations                                                 */
/* ------------------------------------------------------------------ */

void am_flusher_started(am *m, int mode, bool armed, uint32_t max_attempts,
			int64_t t_start, int64_t t_ready)
{
	am_gen g = { .t_start = t_start, .t_ready = t_ready, .t_end = AM_NEVER,
		     .mode = mode, .armed = armed, .t_stop = AM_NEVER, .t_cont = AM_NEVER,
		     .max_attempts = max_attempts };
	PUSH(m->gens, m->n_gens, m->cap_gens, g);
	if (m->meta_max_attempts != max_attempts) {
		m->meta_prev = m->meta_max_attempts;
		m->t_meta = t_start;
	}
	m->meta_max_attempts = max_attempts;
}

am_gen *am_flusher_cur(am *m)
{
	if (!m->n_gens || m->gens[m->n_gens - 1].t_end != AM_NEVER)
		return NULL;
	return &m->gens[m->n_gens - 1];
}

void am_flusher_ended(am *m, int64_t t, bool clean)
{
	am_gen *g = am_flusher_cur(m);
	if (!g)
		return;
	g->t_end = t;
	g->clean = clean;
}

void am_flusher_stopped(am *m, bool stopped)
{
	am_gen *g = am_flusher_cur(m);
	if (!g)
		return;
	if (stopped) {
		g->t_stop = am_tick(m);
		g->t_cont = AM_NEVER;
		g->ever_stopped = true;
	} else {
		g->t_cont = am_tick(m);
	}
}

/* A generation that certainly served the segment through [t0, t1]: ready
 * before t0, not armed to crash, not ended before t1. */
static const am_gen *gen_certain(const am *m, int64_t t0, int64_t t1)
{
	for (size_t i = m->n_gens; i-- > 0;) {
		const am_gen *g = &m->gens[i];
		if (!g->armed && g->t_ready < t0 && g->t_end > t1)
			return g;
	}
	return NULL;
}

/* ... and was not stopped at any moment of it. */
static bool gen_running(const am_gen *g, int64_t t0, int64_t t1)
{
	if (!g->ever_stopped)
		return true;
	/* The last stop interval [t_stop, t_cont] must not meet [t0, t1];
	 * earlier ones ended before it. Conservative: any stop after t0's
	 * generation start that overlaps. */
	return g->t_cont < t0 || g->t_stop > t1;
}

/* SYNCED reached for an event pushed from t_push on, seen at t1: possible
 * only if a generation alive in [t_push, t1] syncs its commits (always,
 * interval), or one started (its restart fsync) or stopped cleanly (final
 * sync) after t_push. ckring_store.h: "SYNCED is republished only after an
 * fsync". */
static bool synced_possible(const am *m, int64_t t_push, int64_t t1)
{
	for (size_t i = 0; i < m->n_gens; i++) {
		const am_gen *g = &m->gens[i];
		if (g->t_start > t1 || g->t_end < t_push)
			continue; /* not alive in the window */
		if (g->mode != CKR_SYNC_NONE)
			return true;
		if (g->t_start > t_push)
			return true;
		if (g->clean && g->t_end <= t1)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* writers, begin races                                                */
/* ------------------------------------------------------------------ */

static int writer_new(am *m, int run, int img, bool from_claim)
{
	am_writer w;
	memset(&w, 0, sizeof w);
	w.run = run;
	w.img = img;
	w.from_claim = from_claim;
	w.st = from_claim ? WS_WIN : WS_PENDING;
	w.begin_ev = -1;
	w.inc = 1;
	PUSH(m->ws, m->n_ws, m->cap_ws, w);
	return (int)m->n_ws - 1;
}

/* A candidate that is still in the race: its begin is in flight, may
 * have landed, or was accepted. */
static bool cand_live(const am_writer *w)
{
	return w->st != WS_LOSE && (w->cmd_pending || w->begin_ok || w->begin_maybe);
}

/*
 * The status of writer w now. Decided ones are final. An undecided begin
 * writer is the provisional winner when it is the only candidate left in
 * the race and its begin was certainly accepted: any begin sent later is
 * excluded once this one is known applied, and one sent earlier is in
 * the race (as a pending or maybe candidate), so the provisional answer
 * only changes when a new candidate joins, which makes it a race again.
 */
am_wstat am_writer_status(const am *m, int wi)
{
	const am_writer *w = &m->ws[wi];
	if (w->from_claim || w->st != WS_PENDING)
		return w->st;
	const am_run *r = &m->runs[w->run];
	if (r->winner >= 0)
		return r->winner == wi ? WS_WIN : WS_LOSE;
	if (!w->begin_ok)
		return WS_PENDING;
	for (size_t i = 0; i < r->n_cands; i++) {
		int c = r->cands[i];
		if (c != wi && cand_live(&m->ws[c]))
			return WS_PENDING;
	}
	return WS_WIN;
}

am_fate am_event_fate(const am *m, int e)
{
	switch (am_writer_status(m, m->evs[e].writer)) {
	case WS_WIN: return FATE_STORED;
	case WS_LOSE: return FATE_REJECTED;
	default: return FATE_UNDECIDED;
	}
}

void am_row_put(am *m, int run, int e)
{
	am_run *r = &m->runs[run];
	uint64_t s = m->evs[e].seq;
	if (s >= r->n_rows) {
		size_t n = r->n_rows ? r->n_rows : 16;
		while (n <= s)
			n *= 2;
		r->rows = realloc(r->rows, n * sizeof *r->rows);
		if (!r->rows)
			abort();
		for (size_t i = r->n_rows; i < n; i++)
			r->rows[i] = -1;
		r->n_rows = n;
	}
	if (r->rows[s] >= 0 && r->rows[s] != e) {
		char id[300];
		am_run_id_text(r, id, sizeof id);
		am_diverge(m, "model: run %s seq %llu written twice by its writer", id,
			   (unsigned long long)s);
	}
	r->rows[s] = e;
}

static void writer_rows(am *m, int wi)
{
	am_writer *w = &m->ws[wi];
	for (size_t i = 0; i < w->n_evs; i++) {
		am_event *e = &m->evs[w->evs[i]];
		if (e->type == EV_MSG || e->type == EV_PHASE)
			am_row_put(m, w->run, w->evs[i]);
		if ((e->type == EV_COMPLETE || e->type == EV_FAIL))
			m->runs[w->run].fin_ev = w->evs[i];
	}
}

int am_cand_by_label(const am *m, int run, const char *label)
{
	const am_run *r = &m->runs[run];
	int found = -1;
	for (size_t i = 0; i < r->n_cands; i++) {
		const am_writer *w = &m->ws[r->cands[i]];
		if (!w->begin_ok && !w->begin_maybe && !w->cmd_pending)
			continue;
		if (strcmp(w->label, label) == 0) {
			if (found >= 0)
				return -2; /* ambiguous (empty labels) */
			found = r->cands[i];
		}
	}
	return found;
}

static void events_observed_check(am *m, int wi, am_wstat st, const char *how)
{
	am_writer *w = &m->ws[wi];
	for (size_t i = 0; i < w->n_evs; i++) {
		const am_event *e = &m->evs[w->evs[i]];
		if (st == WS_WIN && e->obs == FATE_REJECTED)
			am_diverge(m, "writer %d decided winner (%s) but a wait on its "
				   "%s seq %llu returned CKR_EREJECTED", wi, how,
				   e->type == EV_BEGIN ? "begin" : "event",
				   (unsigned long long)e->seq);
		if (st == WS_LOSE && e->obs == FATE_STORED)
			am_diverge(m, "writer decided loser (%s) but a wait on its event "
				   "seq %llu returned 0 (stored)", how,
				   (unsigned long long)e->seq);
	}
}

void am_decide_win(am *m, int run, int wi, const char *how)
{
	am_run *r = &m->runs[run];
	char id[300];
	am_run_id_text(r, id, sizeof id);
	if (r->winner == wi)
		return;
	if (r->winner >= 0) {
		am_diverge(m, "run %s: two begins won (writer %d at t%lld by %s; writer %d by %s)",
			   id, r->winner, (long long)r->won_t, r->won_how, wi, how);
		return;
	}
	if (m->ws[wi].st == WS_LOSE) {
		am_diverge(m, "run %s: the begin of writer %d won (%s) but it was known "
			   "to lose (a begin was applied before it was pushed)", id, wi, how);
		return;
	}
	m->ws[wi].st = WS_WIN;
	if (m->ws[wi].begin_maybe) { /* a begin lost in flight: it landed */
		m->ws[wi].begin_maybe = false;
		m->ws[wi].begin_ok = true;
	}
	r->winner = wi;
	snprintf(r->won_how, sizeof r->won_how, "%s", how);
	r->won_t = m->T;
	events_observed_check(m, wi, WS_WIN, how);
	for (size_t i = 0; i < r->n_cands; i++) {
		int c = r->cands[i];
		if (c != wi && m->ws[c].st != WS_LOSE) {
			m->ws[c].st = WS_LOSE;
			events_observed_check(m, c, WS_LOSE, how);
		}
	}
	if (r->n_tenure == 0)
		PUSH(r->tenure, r->n_tenure, r->cap_tenure, wi);
	else
		r->tenure[0] = wi;
	writer_rows(m, wi);
}

void am_decide_lose(am *m, int wi, const char *how)
{
	am_writer *w = &m->ws[wi];
	if (w->from_claim || (w->st == WS_WIN)) {
		am_diverge(m, "a wait reported CKR_EREJECTED for an event of the run's "
			   "winning writer (%s)", how);
		return;
	}
	if (m->runs[w->run].winner == wi) {
		am_diverge(m, "event of the run's winning writer reported rejected (%s)", how);
		return;
	}
	w->st = WS_LOSE;
	events_observed_check(m, wi, WS_LOSE, how);
}

/* Exclusion: candidate n cannot win when a certainly pushed candidate c was
 * applied before n was pushed (same lane and lower position, or known
 * applied before n's command was sent), or the record was known to exist. */
static void exclude(am *m, int run)
{
	am_run *r = &m->runs[run];
	for (size_t i = 0; i < r->n_cands; i++) {
		am_writer *n = &m->ws[r->cands[i]];
		if (n->st != WS_PENDING || (!n->begin_ok && !n->begin_maybe))
			continue;
		bool lose = r->t_exists < n->t_send;
		const am_event *ne = n->begin_ev >= 0 ? &m->evs[n->begin_ev] : NULL;
		for (size_t k = 0; !lose && k < r->n_cands; k++) {
			const am_writer *c = &m->ws[r->cands[k]];
			if (c == n || !c->begin_ok || c->begin_ev < 0)
				continue;
			const am_event *ce = &m->evs[c->begin_ev];
			if (ne && ce->tk.lane == ne->tk.lane && ce->tk.pos < ne->tk.pos)
				lose = true;
			if (ev_applied_before(m, ce, n->t_send))
				lose = true;
		}
		if (lose) {
			n->st = WS_LOSE;
			events_observed_check(m, r->cands[i], WS_LOSE, "excluded by order");
		}
	}
}

static void run_exists_by(am *m, int run, int64_t t)
{
	if (m->runs[run].t_exists > t)
		m->runs[run].t_exists = t;
}

/* ------------------------------------------------------------------ */
/* expectations                                                        */
/* ------------------------------------------------------------------ */

typedef struct allow {
	int rc[16];
	int n;
} allow;

static void allow_add(allow *a, int rc)
{
	for (int i = 0; i < a->n; i++)
		if (a->rc[i] == rc)
			return;
	if (a->n < 16)
		a->rc[a->n++] = rc;
}

static bool allowed(const allow *a, int rc)
{
	for (int i = 0; i < a->n; i++)
		if (a->rc[i] == rc)
			return true;
	return false;
}

static const char *allow_text(const allow *a)
{
	static char b[512];
	size_t k = 0;
	b[0] = '\0';
	for (int i = 0; i < a->n && k < sizeof b - 64; i++)
		k += (size_t)snprintf(b + k, sizeof b - k, "%s%s", i ? " | " : "",
				      am_rc(a->rc[i]));
	return b;
}

static void expect(am *m, const allow *a, int rc, const char *what)
{
	if (!allowed(a, rc))
		am_diverge(m, "%s returned %s; the model allows %s", what, am_rc(rc),
			   allow_text(a));
}

static void expect1(am *m, int want, int rc, const char *what)
{
	allow a = { .n = 0 };
	allow_add(&a, want);
	expect(m, &a, rc, what);
}

static am_event *event_new(am *m, int img, int hi, am_evtype type, int64_t t_send)
{
	am_img *im = &m->imgs[img];
	am_handle *h = &im->h[hi];
	am_event e;
	memset(&e, 0, sizeof e);
	e.run = h->run;
	e.writer = h->writer;
	e.hrec = h->hrec;
	e.img = img;
	e.type = (uint8_t)type;
	e.t_send = t_send;
	e.t_recv = m->T;
	e.inc = m->ws[h->writer].inc;
	PUSH(m->evs, m->n_evs, m->cap_evs, e);
	int ei = (int)m->n_evs - 1;
	am_writer *w = &m->ws[h->writer];
	PUSH(w->evs, w->n_evs, w->cap_evs, ei);
	return &m->evs[ei];
}

/* The event was accepted or may have been: file it under its run's rows
 * when its writer is the decided one. */
static void event_file(am *m, int ei)
{
	am_event *e = &m->evs[ei];
	am_run *r = &m->runs[e->run];
	int wi = e->writer;
	bool current = m->ws[wi].from_claim || r->winner == wi;
	if (!current)
		return;
	if (e->type == EV_MSG || e->type == EV_PHASE)
		am_row_put(m, e->run, ei);
	if (e->type == EV_COMPLETE || e->type == EV_FAIL)
		r->fin_ev = ei;
}

/* A push accepted with ticket tk: check the ticket, note the lane
 * position. */
static void ticket_check(am *m, int img, int hi, const ckr_ticket *tk, const char *what)
{
	am_img *im = &m->imgs[img];
	am_handle *h = &im->h[hi];
	am_client *c = &im->cl[h->client];
	am_writer *w = &m->ws[h->writer];
	if (tk->lane != c->lane)
		am_diverge(m, "%s: ticket lane %u, the client's lane is %u", what, tk->lane,
			   c->lane);
	if (h->slot_known && tk->slot != h->slot)
		am_diverge(m, "%s: ticket slot %u, the handle's slot was %u", what, tk->slot,
			   h->slot);
	if (!h->slot_known) {
		for (int i = 0; i < AS_MAX_RUNS; i++) {
			const am_handle *o = &im->h[i];
			if (i != hi && o->used && o->client == h->client && o->slot_known &&
			    o->slot == tk->slot)
				am_diverge(m, "%s: writer slot %u is also used by open handle %d "
					   "of the same client", what, tk->slot, i);
		}
		h->slot = tk->slot;
		h->slot_known = true;
	}
	if (w->wid == 0)
		w->wid = tk->writer;
	else if (tk->writer != w->wid)
		am_diverge(m, "%s: ticket writer %llx, the writer is %llx", what,
			   (unsigned long long)tk->writer, (unsigned long long)w->wid);
	am_lane *l = &m->lane[tk->lane < AM_MAX_LANES ? tk->lane : 0];
	if (tk->pos <= l->max_pos && l->max_pos)
		am_diverge(m, "%s: ticket position %llu not above the lane's last %llu",
			   what, (unsigned long long)tk->pos, (unsigned long long)l->max_pos);
	if (tk->pos > l->max_pos)
		l->max_pos = tk->pos;
}

static void img_ev_add(am *m, int img, int ei)
{
	am_img *im = &m->imgs[img];
	PUSH(im->evs, im->n_evs, im->cap_evs, ei);
}

/* ---- attach / detach ---- */

/* Lanes certainly held (a live client that is not detaching) and lanes
 * maybe held (a tenure ended or ending that the flusher may not have
 * freed yet). */
static void lanes_count(const am *m, int *held, int *maybe)
{
	*held = *maybe = 0;
	for (uint32_t i = 0; i < m->lanes; i++) {
		const am_lane *l = &m->lane[i];
		if (l->img >= 0 && !m->imgs[l->img].cl[l->client].detaching)
			(*held)++;
		else if (l->img >= 0 || l->maybe_held)
			(*maybe)++;
	}
}

static void on_attach(am *m, int img, const as_cmd *c, const as_rep *r)
{
	am_img *im = &m->imgs[img];
	if (c->flags & AF_MISSING_SEG) {
		expect1(m, -ENOENT, r->rc, "ckr_client_attach of a missing segment");
		return;
	}
	if (c->flags & AF_BAD_NAME) {
		expect1(m, -EINVAL, r->rc, "ckr_client_attach of a bad name");
		return;
	}
	int held, maybe;
	lanes_count(m, &held, &maybe);
	allow a = { .n = 0 };
	if (c->max_event > m->max_record && m->max_record) {
		allow_add(&a, -EINVAL);
	} else {
		if ((uint32_t)held < m->lanes)
			allow_add(&a, 0);
		if ((uint32_t)(held + maybe) >= m->lanes)
			allow_add(&a, -EUSERS);
	}
	expect(m, &a, r->rc, "ckr_client_attach");
	if (r->rc)
		return;
	if (m->max_record == 0)
		m->max_record = r->max_record;
	if (r->lanes != m->lanes || r->writers_per_lane != m->wpl || r->max_record != m->max_record)
		am_diverge(m, "attach: geometry %u lanes / %u writers / %u max record, the "
			   "segment was made with %u / %u / %u", r->lanes, r->writers_per_lane,
			   r->max_record, m->lanes, m->wpl, m->max_record);
	if (r->lane >= m->lanes) {
		am_diverge(m, "attach: lane %u out of range", r->lane);
		return;
	}
	am_lane *l = &m->lane[r->lane];
	if (l->img >= 0 && !m->imgs[l->img].cl[l->client].detaching)
		am_diverge(m, "attach: lane %u given to image %d client %d while image %d "
			   "client %d holds it (one owner per lane)", r->lane, img, r->idx,
			   l->img, l->client);
	if (l->img >= 0) /* its detach is in flight and has happened */
		m->imgs[l->img].cl[l->client].detaching = false;
	l->img = img;
	l->client = r->idx;
	l->maybe_held = false;
	am_client *cl = &im->cl[r->idx];
	memset(cl, 0, sizeof *cl);
	cl->used = true;
	cl->lane = r->lane;
	cl->check_store = (c->flags & AF_BEGIN_CHECK) ? c->store : -1;
	if (cl->check_store >= 0)
		im->store_refs[cl->check_store]++;
	cl->max_event = c->max_event ? c->max_event : m->max_record;
	cl->max_run_bytes = c->u64 ? c->u64 : (UINT64_C(1) << 30);
}

static void handle_close(am *m, int img, int hi, int64_t t)
{
	am_img *im = &m->imgs[img];
	am_handle *h = &im->h[hi];
	if (!h->used)
		return;
	hrec_close(m, h->hrec, t);
	im->cl[h->client].n_open--;
	im->cl[h->client].n_closed++;
	h->used = false;
}

static void on_detach(am *m, int img, const as_cmd *c, const as_rep *r, int64_t t)
{
	am_img *im = &m->imgs[img];
	expect1(m, 0, r->rc, "detach");
	for (int i = 0; i < AS_MAX_RUNS; i++)
		if (im->h[i].used && im->h[i].client == c->client)
			handle_close(m, img, i, t);
	am_client *cl = &im->cl[c->client];
	am_lane *l = &m->lane[cl->lane];
	cl->detaching = false;
	if (l->img == img && l->client == c->client) {
		l->img = l->client = -1;
		l->maybe_held = true;
	}
	if (cl->check_store >= 0)
		im->store_refs[cl->check_store]--;
	cl->used = false;
}

/* ---- begin ---- */

static bool spec_valid(const as_cmd *c)
{
	return c->id_len >= 1 && c->id_len <= CKR_RUN_ID_MAX &&
	       (c->kind == CKR_KIND_SINGLE_LOOP || c->kind == CKR_KIND_MULTI_PHASE) &&
	       (c->index == UINT32_MAX || c->index <= CKR_LABEL_MAX);
}

static bool open_in_client(const am *m, int img, int client, int run)
{
	const am_img *im = &m->imgs[img];
	for (int i = 0; i < AS_MAX_RUNS; i++)
		if (im->h[i].used && im->h[i].client == client && im->h[i].run == run)
			return true;
	return false;
}

static void begin_sent(am *m, int img, const as_cmd *c, int64_t t)
{
	am_img *im = &m->imgs[img];
	im->pend_writer = -1;
	if (!spec_valid(c) || !im->cl[c->client].used)
		return;
	int run = am_run_get(m, c->id, c->id_len);
	int wi = writer_new(m, run, img, false);
	am_writer *w = &m->ws[wi];
	w->cmd_pending = true;
	w->t_send = t;
	w->kind = c->kind;
	w->label_null = c->index == UINT32_MAX;
	if (!w->label_null)
		as_text(c->tag ^ 1, c->index, w->label);
	w->meta_tag = c->tag ^ 2;
	w->meta_len = c->len2;
	w->begin_size = am_size_begin(c->id_len, w->label_null ? 0 : c->index, c->len2);
	am_run *r = &m->runs[run];
	PUSH(r->cands, r->n_cands, r->cap_cands, wi);
	/* Remember the pending writer in the image (one command in flight). */
	im->pend_writer = wi;
}

static int pending_writer(am *m, int img)
{
	int wi = m->imgs[img].pend_writer;
	m->imgs[img].pend_writer = -1;
	return wi;
}

static void cand_drop(am *m, int wi)
{
	am_writer *w = &m->ws[wi];
	w->cmd_pending = false;
	w->begin_ok = false;
	w->begin_maybe = false;
	w->st = WS_LOSE;
	am_run *r = &m->runs[w->run];
	for (size_t i = 0; i < r->n_cands; i++)
		if (r->cands[i] == wi) {
			r->cands[i] = r->cands[--r->n_cands];
			break;
		}
}

static void on_begin(am *m, int img, const as_cmd *c, const as_rep *r, int64_t t)
{
	am_img *im = &m->imgs[img];
	int wi = pending_writer(m, img);
	if (!spec_valid(c)) {
		expect1(m, -EINVAL, r->rc, "ckr_run_begin with a bad spec");
		return;
	}
	am_client *cl = &im->cl[c->client];
	int run = am_run_get(m, c->id, c->id_len);
	am_run *ru = &m->runs[run];
	allow a = { .n = 0 };
	bool open = open_in_client(m, img, c->client, run);
	bool check = cl->check_store >= 0;
	uint64_t size = wi >= 0 ? m->ws[wi].begin_size : 0;
	if (check && ru->t_exists < t) {
		allow_add(&a, -EEXIST); /* begin_check: the store has it */
	} else if (open) {
		allow_add(&a, -EEXIST); /* open in this client */
	} else {
		if (check && ru->n_cands > 1)
			allow_add(&a, -EEXIST); /* another begin may have landed */
		if (cl->n_open >= (int)m->wpl)
			allow_add(&a, CKR_ESLOTS);
		else {
			if (cl->n_open + cl->n_closed >= (int)m->wpl)
				allow_add(&a, CKR_ESLOTS);
			if (size > cl->max_event)
				allow_add(&a, -E2BIG);
			else if (size > cl->max_run_bytes)
				allow_add(&a, -EFBIG);
			else {
				allow_add(&a, 0);
				allow_add(&a, -EAGAIN);
			}
		}
	}
	expect(m, &a, r->rc, "ckr_run_begin");
	if (r->rc == -EAGAIN)
		m->n_eagain++;
	if (r->rc == -EEXIST && check && !open)
		run_exists_by(m, run, m->T);
	if (r->rc != 0) {
		if (wi >= 0)
			cand_drop(m, wi);
		return;
	}
	if (wi < 0 || r->idx < 0 || r->idx >= AS_MAX_RUNS) {
		am_diverge(m, "model: begin accepted without a candidate");
		return;
	}
	am_writer *w = &m->ws[wi];
	w->cmd_pending = false;
	w->begin_ok = true;
	am_handle *h = &im->h[r->idx];
	memset(h, 0, sizeof *h);
	h->used = true;
	h->run = run;
	h->writer = wi;
	h->client = c->client;
	h->hrec = hrec_new(m);
	h->next_seq = 1;
	h->bytes = size;
	h->last_ev = -1;
	cl->n_open++;
	am_event *e = event_new(m, img, r->idx, EV_BEGIN, t);
	e->seq = 0;
	e->tag = c->tag;
	e->size = size;
	e->tk = r->ticket;
	int ei = (int)(e - m->evs);
	w->begin_ev = ei;
	h->last_ev = ei;
	ticket_check(m, img, r->idx, &r->ticket, "begin");
	if (r->next_seq != 1)
		am_diverge(m, "begin: next_seq %llu, want 1", (unsigned long long)r->next_seq);
	img_ev_add(m, img, ei);
	exclude(m, run);
	if (ru->winner >= 0 && ru->winner != wi)
		w->st = WS_LOSE;
	if (ru->n_cands > 1)
		m->n_races++;
}

/* ---- pushes ---- */

/* The expected result of a message/phase push of size `size` on handle h. */
static void push_allow(am *m, const am_img *im, const am_handle *h, const as_cmd *c,
		       uint64_t size, allow *a)
{
	const am_client *cl = &im->cl[h->client];
	uint32_t kind = m->ws[h->writer].kind;
	bool phase = c->op == OP_PHASE;
	if (h->finished)
		allow_add(a, CKR_ETERMINAL);
	else if ((phase ? kind != CKR_KIND_MULTI_PHASE : kind != CKR_KIND_SINGLE_LOOP) ||
		 (c->len && (c->flags & PF_NULL_DATA)))
		allow_add(a, -EINVAL);
	else if (c->len > cl->max_event || size > cl->max_event)
		allow_add(a, -E2BIG);
	else if (h->bytes + size > cl->max_run_bytes)
		allow_add(a, -EFBIG);
	else {
		allow_add(a, 0);
		allow_add(a, -EAGAIN);
	}
}

static uint64_t push_size(const am_run *ru, const as_cmd *c)
{
	if (c->op == OP_PHASE)
		return am_size_phase(ru->id_len, c->len2 < 256 ? c->len2 : 255, c->len);
	return am_size_msg(ru->id_len, c->len);
}

/* An accepted push of handle hi: a new event at the handle's next seq. */
static int push_accepted(am *m, int img, int hi, const as_cmd *c, uint64_t tag,
			 uint64_t size, const ckr_ticket *tk, int64_t t, bool maybe)
{
	am_img *im = &m->imgs[img];
	am_handle *h = &im->h[hi];
	am_event *e = event_new(m, img, hi, c->op == OP_PHASE ? EV_PHASE : EV_MSG, t);
	e->seq = h->next_seq++;
	e->tag = tag;
	e->len = c->len;
	e->index = c->index;
	e->name_len = c->op == OP_PHASE ? (c->len2 < 256 ? c->len2 : 255) : 0;
	e->size = size;
	e->maybe = maybe;
	e->land = maybe ? LAND_UNKNOWN : LAND_YES;
	int ei = (int)(e - m->evs);
	h->bytes += size;
	if (!maybe) {
		e->tk = *tk;
		ticket_check(m, img, hi, tk, am_op_name(c->op));
		h->last_ev = ei;
		img_ev_add(m, img, ei);
	}
	event_file(m, ei);
	return ei;
}

static bool handle_ok(am *m, int img, int hi, const char *what)
{
	if (hi < 0 || hi >= AS_MAX_RUNS || !m->imgs[img].h[hi].used) {
		am_diverge(m, "model: %s on a run handle %d that is not open", what, hi);
		return false;
	}
	return true;
}

static void on_push(am *m, int img, const as_cmd *c, const as_rep *r, int64_t t)
{
	am_img *im = &m->imgs[img];
	if (!handle_ok(m, img, c->run, am_op_name(c->op)))
		return;
	am_handle *h = &im->h[c->run];
	uint64_t size = push_size(&m->runs[h->run], c);
	allow a = { .n = 0 };
	push_allow(m, im, h, c, size, &a);
	expect(m, &a, r->rc, c->op == OP_PHASE ? "ckr_run_phase" : "ckr_run_message");
	if (r->rc == -EAGAIN)
		m->n_eagain++;
	if (r->rc == 0) {
		push_accepted(m, img, c->run, c, c->tag, size, &r->ticket, t, false);
		if (c->op == OP_PHASE)
			h->phases++;
	}
	if (r->next_seq != h->next_seq)
		am_diverge(m, "%s: next_seq %llu after it, the model says %llu",
			   am_op_name(c->op), (unsigned long long)r->next_seq,
			   (unsigned long long)h->next_seq);
}

static void on_burst(am *m, int img, const as_cmd *c, const as_rep *r, const void *extra,
		     int64_t t)
{
	am_img *im = &m->imgs[img];
	if (!handle_ok(m, img, c->run, "burst"))
		return;
	am_handle *h = &im->h[c->run];
	const ckr_ticket *tk = extra;
	as_cmd one = *c;
	one.op = OP_MSG;
	uint64_t size = push_size(&m->runs[h->run], &one);
	for (uint32_t k = 0; k <= r->n && k < c->len2; k++) {
		allow a = { .n = 0 };
		push_allow(m, im, h, &one, size, &a);
		int rc = k < r->n ? 0 : r->rc;
		expect(m, &a, rc, "ckr_run_message (burst)");
		if (rc == -EAGAIN)
			m->n_eagain++;
		if (rc)
			break;
		push_accepted(m, img, c->run, &one, c->tag + k, size, &tk[k], t, false);
	}
	if (r->next_seq != h->next_seq)
		am_diverge(m, "burst: next_seq %llu, the model says %llu",
			   (unsigned long long)r->next_seq, (unsigned long long)h->next_seq);
}

static void on_finish(am *m, int img, const as_cmd *c, const as_rep *r, int64_t t)
{
	am_img *im = &m->imgs[img];
	if (!handle_ok(m, img, c->run, "finish"))
		return;
	am_handle *h = &im->h[c->run];
	am_run *ru = &m->runs[h->run];
	const am_client *cl = &im->cl[h->client];
	allow a = { .n = 0 };
	uint64_t size = 0;
	if (c->outcome == CKR_OUTCOME_FAIL)
		size = am_size_fail(ru->id_len, c->len2 == UINT32_MAX ? 0 : c->len2);
	else if (c->outcome == CKR_OUTCOME_COMPLETE)
		size = am_size_complete(ru->id_len);
	if (c->outcome > CKR_OUTCOME_FAIL)
		allow_add(&a, -EINVAL);
	else if (h->finished)
		allow_add(&a, CKR_ETERMINAL);
	else if (c->outcome == CKR_OUTCOME_LEAVE_RUNNING)
		allow_add(&a, 0);
	else if (size > cl->max_event)
		allow_add(&a, -E2BIG); /* never -EFBIG: finishing is exempt */
	else {
		allow_add(&a, 0);
		allow_add(&a, -EAGAIN);
	}
	expect(m, &a, r->rc, "ckr_run_finish");
	if (r->rc == 0 && c->outcome != CKR_OUTCOME_LEAVE_RUNNING) {
		am_event *e = event_new(m, img, c->run,
					c->outcome == CKR_OUTCOME_COMPLETE ? EV_COMPLETE : EV_FAIL, t);
		e->seq = h->next_seq++;
		e->tag = c->tag;
		e->len = c->len2 == UINT32_MAX ? 0 : c->len2;
		e->index = c->len2 == UINT32_MAX; /* error NULL */
		e->size = size;
		e->tk = r->ticket;
		e->land = LAND_YES;
		int ei = (int)(e - m->evs);
		ticket_check(m, img, c->run, &r->ticket, "finish");
		h->last_ev = ei;
		img_ev_add(m, img, ei);
		event_file(m, ei);
	}
	if (r->rc == 0) {
		h->finished = true;
		if (c->outcome == CKR_OUTCOME_LEAVE_RUNNING &&
		    (r->ticket.pos != 0 || r->ticket.writer != m->ws[h->writer].wid))
			am_diverge(m, "finish LEAVE_RUNNING: ticket pos %llu writer %llx (want "
				   "pos 0, the writer)", (unsigned long long)r->ticket.pos,
				   (unsigned long long)r->ticket.writer);
	}
	if (r->next_seq != h->next_seq)
		am_diverge(m, "finish: next_seq %llu, the model says %llu",
			   (unsigned long long)r->next_seq, (unsigned long long)h->next_seq);
}

/* ---- waits ---- */

#define LONG_WAIT_MS 5000

/* Would a wait on e for level come back by itself (the level is reached, or
 * the flusher's death is seen)? For the generator's choice of timeout -1. */
bool am_wait_returns(const am *m, int ei, uint32_t level)
{
	const am_event *e = &m->evs[ei];
	const am_gen *g = m->n_gens ? &m->gens[m->n_gens - 1] : NULL;
	if (!g || g->t_end != AM_NEVER)
		return true; /* no flusher: -EPIPE */
	if (g->ever_stopped && g->t_cont == AM_NEVER)
		return false; /* stopped: nothing moves */
	if (level != CKR_LEVEL_SYNCED || g->mode != CKR_SYNC_NONE)
		return true;
	return ev_applied_before(m, e, g->t_start); /* the restart's fsync */
}

static void on_wait(am *m, int img, const as_cmd *c, const as_rep *r, int64_t t)
{
	int64_t t1 = m->T;
	(void)img;
	if (c->tag == 0) {
		expect1(m, 0, r->rc, "ckr_wait on a LEAVE_RUNNING ticket (pos 0)");
		return;
	}
	int ei = (int)c->tag - 1;
	am_event *e = &m->evs[ei];
	if (c->level == CKR_LEVEL_IN_RING) {
		expect1(m, 0, r->rc, "ckr_wait IN_RING");
		return;
	}
	am_fate f = am_event_fate(m, ei);
	bool sync = c->level == CKR_LEVEL_SYNCED;
	bool closed = m->hrec[e->hrec] < t;
	const am_gen *g = gen_certain(m, t, t1);
	bool applied = ev_applied_before(m, e, t);
	allow a = { .n = 0 };
	if (f != FATE_REJECTED && (!sync || synced_possible(m, e->t_send, t1)))
		allow_add(&a, 0);
	if (f != FATE_STORED)
		allow_add(&a, CKR_EREJECTED);
	if (closed)
		allow_add(&a, CKR_ECLOSED);
	if (!g && !(applied && !sync))
		allow_add(&a, -EPIPE);
	bool must_finish = false;
	if (g && gen_running(g, t, t1) && (c->timeout_ms < 0 || c->timeout_ms >= LONG_WAIT_MS)) {
		/* A live, running flusher reaches COMMITTED; SYNCED too unless it
		 * never syncs and the event came after its restart's fsync. */
		must_finish = !sync || g->mode != CKR_SYNC_NONE || ev_applied_before(m, e, g->t_start);
	}
	/* Once head passed the event, ckr_wait answers at once (COMMITTED). */
	if (c->timeout_ms >= 0 && !must_finish && !(applied && !sync))
		allow_add(&a, -ETIMEDOUT);
	char what[160];
	snprintf(what, sizeof what, "ckr_wait(%s, timeout %d) on %s seq %llu (model fate %s)",
		 sync ? "SYNCED" : "COMMITTED", c->timeout_ms,
		 e->type == EV_BEGIN ? "begin" : am_op_name(e->type == EV_MSG ? OP_MSG :
							e->type == EV_PHASE ? OP_PHASE : OP_FINISH),
		 (unsigned long long)e->seq,
		 f == FATE_STORED ? "stored" : f == FATE_REJECTED ? "rejected" : "undecided");
	expect(m, &a, r->rc, what);
	if (r->rc == -EPIPE) {
		m->n_epipe++;
		if (c->timeout_ms < 0 && r->elapsed_us > 10 * 1000000)
			am_diverge(m, "ckr_wait(-1) with no flusher took %lld ms to say -EPIPE",
				   (long long)(r->elapsed_us / 1000));
	}
	if (r->rc == -ETIMEDOUT && sync)
		m->n_synced_to++;
	if (r->rc == CKR_ECLOSED)
		m->n_eclosed++;
	if (r->rc == 0 || r->rc == CKR_EREJECTED || r->rc == CKR_ECLOSED)
		lane_known(m, e->tk.lane, e->tk.pos, t1);
	if (r->rc == 0) {
		e->obs = FATE_STORED;
		if (f == FATE_UNDECIDED)
			am_decide_win(m, e->run, e->writer, "a wait returned 0 (stored)");
		run_exists_by(m, e->run, t1);
	} else if (r->rc == CKR_EREJECTED) {
		e->obs = FATE_REJECTED;
		m->n_rejected_seen++;
		if (f == FATE_UNDECIDED)
			am_decide_lose(m, e->writer, "a wait returned CKR_EREJECTED");
		run_exists_by(m, e->run, t1); /* rejected begins and events all
					       * met an existing record */
	}
	exclude(m, e->run);
}

/* ---- observations of the store between checkpoints ---- */

static bool run_has_cands(const am *m, int run)
{
	return run >= 0 && m->runs[run].n_cands > 0;
}

/* The image of the run's current owner, or -1 when it is not known
 * (undecided race, claims in flight or lost). */
static int owner_img(const am *m, int run, int64_t t)
{
	const am_run *r = &m->runs[run];
	if (r->winner < 0 || r->n_maybe_claims || r->claims_pending > 0 ||
	    r->t_claim_done >= t)
		return -1;
	return m->ws[r->tenure[r->n_tenure - 1]].img;
}

static bool fin_known_before(const am *m, const am_run *r, int64_t t)
{
	if (r->fin_ev < 0)
		return false;
	const am_event *e = &m->evs[r->fin_ev];
	return !e->maybe && ev_applied_before(m, e, t);
}

static bool terminal_possible(const am *m, const am_run *r)
{
	(void)m;
	return r->fin_ev >= 0 || r->exhausted || r->maybe_exhausted || r->n_maybe_claims ||
	       r->claims_pending > 0 || r->finish_pending > 0 || r->winner < 0;
}

static void observe_info(am *m, int run, const ckr_run_info *in, int64_t t, int64_t t1,
			 const char *what)
{
	char id[300];
	if (!run_has_cands(m, run)) {
		snprintf(id, sizeof id, "%.*s", (int)in->id_len, (const char *)in->id);
		am_diverge(m, "%s: the store has run '%s' that no begin created", what, id);
		return;
	}
	am_run *r = &m->runs[run];
	am_run_id_text(r, id, sizeof id);
	m->focus = run;
	run_exists_by(m, run, t1);
	int w = am_cand_by_label(m, run, in->label);
	if (w == -1) {
		am_diverge(m, "%s: run %s has label '%s', which no begin of it carried", what,
			   id, in->label);
		return;
	}
	if (w >= 0)
		am_decide_win(m, run, w, "its label was read back");
	if (r->winner < 0)
		return;
	const am_writer *win = &m->ws[r->winner];
	if (in->kind != (ckr_kind)win->kind)
		am_diverge(m, "%s: run %s kind %d, its begin said %u", what, id, in->kind,
			   win->kind);
	if (in->state == CKR_RUN_RUNNING && (r->t_term < t || fin_known_before(m, r, t)))
		am_diverge(m, "%s: run %s RUNNING after it finished", what, id);
	if (in->state != CKR_RUN_RUNNING && !terminal_possible(m, r))
		am_diverge(m, "%s: run %s is %s but nothing finished it", what, id,
			   in->state == CKR_RUN_FAILED ? "FAILED" : "COMPLETED");
	uint32_t lo = r->attempts - (r->t_claim_done >= t && r->attempts ? 1 : 0);
	uint32_t hi = r->attempts + (uint32_t)r->n_maybe_claims +
		      (uint32_t)(r->claims_pending > 0 ? r->claims_pending : 0);
	if (in->attempts < lo || in->attempts > hi || in->incarnation != in->attempts + 1)
		am_diverge(m, "%s: run %s attempts %u incarnation %u; the model says "
			   "attempts %u..%u, incarnation = attempts + 1", what, id,
			   in->attempts, in->incarnation, lo, hi);
	int o = owner_img(m, run, t);
	if (o < 0 || in->state != CKR_RUN_RUNNING)
		return;
	if ((pid_t)in->owner_pid != m->imgs[o].pid)
		am_diverge(m, "%s: run %s owner pid %u, the model says %d", what, id,
			   in->owner_pid, (int)m->imgs[o].pid);
	if (img_alive_through(m, o, t1) && (!in->owner_alive || in->owner_drained))
		am_diverge(m, "%s: run %s of a LIVE owner (pid %d) shown %s%s (a live owner "
			   "must never look interrupted or claimable)", what, id,
			   (int)m->imgs[o].pid, in->owner_alive ? "" : "not alive",
			   in->owner_drained ? " and drained" : "");
	if (m->imgs[o].state == IMG_DEAD && img_gone_by(m, o, t) && in->owner_alive)
		am_diverge(m, "%s: run %s owner pid %d is dead but shown alive", what, id,
			   (int)m->imgs[o].pid);
}

static void on_get(am *m, const as_cmd *c, const as_rep *r, int64_t t)
{
	int run = am_run_find(m, c->id, c->id_len);
	allow a = { .n = 0 };
	if (run_has_cands(m, run))
		allow_add(&a, 0);
	if (run < 0 || !(m->runs[run].t_exists < t))
		allow_add(&a, -ENOENT);
	const char *what = c->op == OP_GET ? "ckr_store_get"
			   : c->op == OP_RESUME ? "ckr_store_resume" : "ckr_store_begin_check";
	if (c->op == OP_BEGIN_CHECK) {
		allow b = { .n = 0 };
		for (int i = 0; i < a.n; i++)
			allow_add(&b, a.rc[i] == 0 ? -EEXIST : 0);
		expect(m, &b, r->rc, what);
		if (r->rc == -EEXIST)
			run_exists_by(m, run, m->T);
		return;
	}
	expect(m, &a, r->rc, what);
	if (r->rc == 0 && c->op == OP_GET)
		observe_info(m, run, &r->info, t, m->T, what);
}

static void on_list(am *m, const as_cmd *c, const as_rep *r, const void *extra, int64_t t)
{
	expect1(m, 0, r->rc, "ckr_store_list");
	const ckr_run_info *v = extra;
	for (uint32_t i = 0; i < r->n && !m->failed; i++) {
		int run = am_run_find(m, v[i].id, v[i].id_len);
		if (c->which != CKR_LIST_ALL && v[i].state != CKR_RUN_RUNNING)
			am_diverge(m, "ckr_store_list(%s) lists a run in state %d",
				   c->which ? "RUNNING" : "INTERRUPTED", v[i].state);
		if (c->which == CKR_LIST_INTERRUPTED && v[i].owner_alive)
			am_diverge(m, "ckr_store_list(INTERRUPTED) lists a run whose owner is "
				   "alive");
		observe_info(m, run, &v[i], t, m->T, "ckr_store_list");
	}
}

static void on_resume(am *m, const as_cmd *c, const as_rep *r, const void *extra, int64_t t)
{
	on_get(m, c, r, t);
	if (r->rc || !extra)
		return;
	int run = am_run_find(m, c->id, c->id_len);
	const as_resume_hdr *h = extra;
	const as_blob *b = (const as_blob *)(const void *)(h + 1);
	am_run *ru = &m->runs[run];
	int w = am_cand_by_label(m, run, h->label);
	if (w == -1) {
		am_diverge(m, "ckr_store_resume: label '%s' of no begin", h->label);
		return;
	}
	if (w >= 0)
		am_decide_win(m, run, w, "resume label");
	for (uint32_t i = 0; i < h->n_items; i++) {
		if (b[i].seq != i + 1)
			am_diverge(m, "ckr_store_resume: item %u has seq %llu (not a gap-free "
				   "prefix)", i, (unsigned long long)b[i].seq);
		if (ru->winner < 0 || b[i].seq >= ru->n_rows)
			continue;
		int e = ru->rows[b[i].seq];
		if (e < 0 || m->evs[e].maybe || m->evs[e].wild)
			continue;
		const am_event *ev = &m->evs[e];
		if (ev->inc != b[i].incarnation || ev->len != b[i].size ||
		    as_fill_hash(ev->tag, ev->len) != b[i].hash)
			am_diverge(m, "ckr_store_resume: seq %llu is not the event pushed "
				   "(incarnation %u size %llu; want %u %u)",
				   (unsigned long long)b[i].seq, b[i].incarnation,
				   (unsigned long long)b[i].size, ev->inc, ev->len);
	}
}

/* ---- claims ---- */

static uint32_t claim_max(const am *m, const am_img *im, int store)
{
	return im->store_att[store] ? im->store_att[store] : m->meta_max_attempts;
}

/* What a claim of run at [t, t1] by image img may return. */
static void claim_allow(const am *m, int img, int store, int run, int64_t t, int64_t t1,
			allow *a)
{
	const am_img *im = &m->imgs[img];
	const am_run *r = &m->runs[run];
	uint32_t mx = claim_max(m, im, store);
	/* A flusher that started during the claim may or may not have
	 * recorded its max_attempts before the claim read it. */
	uint32_t mx2 = !im->store_att[store] && m->t_meta > t ? m->meta_prev : mx;
	if (!(r->t_exists < t))
		allow_add(a, -ENOENT);
	if (r->t_term < t || fin_known_before(m, r, t)) {
		allow_add(a, CKR_ETERMINAL);
		return;
	}
	if (terminal_possible(m, r))
		allow_add(a, CKR_ETERMINAL);
	/* The owners the record may name. */
	int owners[AS_MAX_CLAIMS + 8], n = 0;
	if (r->winner >= 0) {
		owners[n++] = m->ws[r->tenure[r->n_tenure - 1]].img;
		for (int i = 0; i < r->n_maybe_claims && i < 4; i++)
			owners[n++] = r->maybe_claim_img[i];
	} else {
		for (size_t i = 0; i < r->n_cands && n < AS_MAX_CLAIMS; i++)
			if (cand_live(&m->ws[r->cands[i]]))
				owners[n++] = m->ws[r->cands[i]].img;
	}
	bool fin_certain = r->fin_ev >= 0 && !m->evs[r->fin_ev].maybe;
	for (int k = 0; k < n; k++) {
		int o = owners[k];
		uint32_t att_lo = r->attempts, att_hi = r->attempts + (uint32_t)r->n_maybe_claims;
		for (uint32_t att = att_lo; att <= att_hi; att++) {
			if (img_alive_through(m, o, t1)) {
				/* store_recover.c claim_check: an owner that is this
				 * process, or never recovered, runs; else a recoverer
				 * won a race. */
				allow_add(a, (o == img || att == 0) ? CKR_ENOTINTERRUPTED
								      : CKR_ECLAIMED);
				continue;
			}
			if (!img_gone_by(m, o, t)) { /* dying during the claim */
				allow_add(a, CKR_ENOTINTERRUPTED);
				allow_add(a, CKR_ECLAIMED);
			}
			if (m->imgs[o].state == IMG_DEAD || m->imgs[o].pid_dead)
				allow_add(a, CKR_ENOTDRAINED);
			else
				allow_add(a, att == 0 ? CKR_ENOTINTERRUPTED : CKR_ECLAIMED);
			if (!fin_certain) {
				allow_add(a, att + 1 > mx ? CKR_EEXHAUSTED : 0);
				allow_add(a, att + 1 > mx2 ? CKR_EEXHAUSTED : 0);
			}
		}
	}
	if (r->claims_pending > 0 || r->t_claim_done >= t) { /* a racing claim */
		allow_add(a, CKR_ECLAIMED);
		allow_add(a, CKR_ENOTINTERRUPTED);
		allow_add(a, CKR_ETERMINAL);
	}
}

static void claim_success(am *m, int img, int run, const as_cmd *c, const as_rep *r,
			  int64_t t, int64_t t1)
{
	am_img *im = &m->imgs[img];
	am_run *ru = &m->runs[run];
	const ckr_claim *cl = &r->claim;
	char id[300];
	am_run_id_text(ru, id, sizeof id);
	m->n_claims_ok++;
	if (ru->t_claim_done >= t)
		am_diverge(m, "claim of %s: two concurrent claims both succeeded", id);
	if (ru->winner < 0) {
		int w = am_cand_by_label(m, run, cl->label);
		if (w < 0) {
			am_diverge(m, "claim of %s: label '%s' names no begin of it", id, cl->label);
			return;
		}
		am_decide_win(m, run, w, "claim label");
	}
	const am_writer *win = &m->ws[ru->winner];
	m->claim_prev_img = ru->n_maybe_claims ? -1 : m->ws[ru->tenure[ru->n_tenure - 1]].img;
	if (cl->id_len != ru->id_len || memcmp(cl->id, ru->id, ru->id_len) ||
	    cl->kind != (ckr_kind)win->kind || strcmp(cl->label, win->label) ||
	    cl->owner_token != im->token || cl->writer == 0)
		am_diverge(m, "claim of %s: id/kind/label/owner/writer wrong (kind %d want %u, "
			   "label '%s' want '%s', token %llx want %llx)", id, cl->kind, win->kind,
			   cl->label, win->label, (unsigned long long)cl->owner_token,
			   (unsigned long long)im->token);
	uint32_t lo = ru->attempts + 1, hi = lo + (uint32_t)ru->n_maybe_claims;
	if (cl->attempts < lo || cl->attempts > hi || cl->incarnation != cl->attempts + 1)
		am_diverge(m, "claim of %s: attempts %u incarnation %u; the model says "
			   "attempts %u..%u and incarnation = attempts + 1", id, cl->attempts,
			   cl->incarnation, lo, hi);
	if (ru->fin_ev >= 0) {
		am_event *f = &m->evs[ru->fin_ev];
		if (!f->maybe)
			am_diverge(m, "claim of %s succeeded after its writer's %s was accepted "
				   "(the finish must be applied before a claim can be)", id,
				   f->type == EV_COMPLETE ? "COMPLETE" : "FAIL");
		f->land = LAND_NO;
		ru->fin_ev = -1;
	}
	/* The dead writer's tenure closes at the gap-free prefix (K3). */
	uint64_t P = cl->next_seq ? cl->next_seq - 1 : 0;
	uint64_t bytes = win->begin_size, alo = 0, ahi = 0;
	for (uint64_t s = 1; s <= P && !m->failed; s++) {
		int e = s < ru->n_rows ? ru->rows[s] : -1;
		if (e < 0) {
			am_diverge(m, "claim of %s: next_seq %llu but seq %llu was never "
				   "pushed by its writers", id, (unsigned long long)cl->next_seq,
				   (unsigned long long)s);
			return;
		}
		m->evs[e].land = LAND_YES;
		bytes += m->evs[e].size;
	}
	if (P + 1 < ru->n_rows && ru->rows[P + 1] >= 0) {
		am_event *e = &m->evs[ru->rows[P + 1]];
		if (!e->maybe) {
			am_diverge(m, "claim of %s: next_seq %llu fences out seq %llu, an event "
				   "whose push returned 0 (the claim came before the dead writer's "
				   "events were drained)", id, (unsigned long long)cl->next_seq,
				   (unsigned long long)(P + 1));
			return;
		}
		e->land = LAND_NO;
		ru->rows[P + 1] = -1;
	}
	for (uint64_t s = P + 2; s < ru->n_rows; s++) {
		int e = ru->rows[s];
		if (e < 0)
			continue;
		am_event *ev = &m->evs[e];
		if (ev->maybe && ev->land == LAND_NO)
			continue;
		ahi++;
		alo += !ev->maybe || ev->land == LAND_YES;
		ev->aside = true;
		PUSH(ru->aside, ru->n_aside, ru->cap_aside, e);
		ru->rows[s] = -1;
	}
	if (alo || ahi)
		m->n_gaps_seen++;
	if (cl->set_aside < alo || cl->set_aside > ahi ||
	    cl->gap_seq != (cl->set_aside ? P + 1 : 0))
		am_diverge(m, "claim of %s: gap_seq %llu set_aside %llu; the model says "
			   "gap at %llu, %llu..%llu rows set aside", id,
			   (unsigned long long)cl->gap_seq, (unsigned long long)cl->set_aside,
			   (unsigned long long)(P + 1), (unsigned long long)alo,
			   (unsigned long long)ahi);
	if (cl->bytes != bytes)
		am_diverge(m, "claim of %s: bytes %llu, the stored prefix has %llu", id,
			   (unsigned long long)cl->bytes, (unsigned long long)bytes);
	if (ahi > alo && cl->set_aside == ahi)
		for (size_t i = 0; i < ru->n_aside; i++)
			if (m->evs[ru->aside[i]].land == LAND_UNKNOWN)
				m->evs[ru->aside[i]].land = LAND_YES;
	if (ahi > alo && cl->set_aside == alo)
		for (size_t i = 0; i < ru->n_aside; i++)
			if (m->evs[ru->aside[i]].land == LAND_UNKNOWN)
				m->evs[ru->aside[i]].land = LAND_NO;
	ru->last_seq = P;
	ru->attempts = cl->attempts;
	ru->n_maybe_claims = 0;
	ru->t_claim_done = t1;
	ru->t_claim_send = t;
	run_exists_by(m, run, t1);
	int wn = writer_new(m, run, img, true); /* moves m->ws */
	win = &m->ws[ru->winner];
	am_writer *nw = &m->ws[wn];
	nw->wid = cl->writer;
	nw->inc = cl->incarnation;
	nw->kind = win->kind;
	nw->begin_size = win->begin_size;
	memcpy(nw->label, win->label, sizeof nw->label);
	PUSH(ru->tenure, ru->n_tenure, ru->cap_tenure, wn);
	if (r->idx >= 0 && r->idx < AS_MAX_CLAIMS)
		im->claim[r->idx] = (am_claimrec){ .used = true, .run = run, .writer = wn,
						   .cl = *cl };
	(void)c;
}

static void on_claim(am *m, int img, const as_cmd *c, const as_rep *r, int64_t t)
{
	am_img *im = &m->imgs[img];
	int run = am_run_find(m, c->id, c->id_len);
	if (run >= 0)
		m->runs[run].claims_pending--;
	if (im->store[c->store] == 2) {
		expect1(m, -EROFS, r->rc, "ckr_store_claim on a read-only store");
		return;
	}
	if (!run_has_cands(m, run)) {
		expect1(m, -ENOENT, r->rc, "ckr_store_claim of a run never begun");
		return;
	}
	allow a = { .n = 0 };
	claim_allow(m, img, c->store, run, t, m->T, &a);
	char what[400], id[300];
	am_run_id_text(&m->runs[run], id, sizeof id);
	snprintf(what, sizeof what, "ckr_store_claim(%s)%s", id,
		 (c->flags & CF_RETRY) ? " retried while not drained" : "");
	if ((c->flags & CF_RETRY) && r->rc == CKR_ENOTDRAINED)
		am_diverge(m, "%s: still CKR_ENOTDRAINED after %lld ms: the dead owner was "
			   "never marked ended (liveness)", what, (long long)(r->elapsed_us / 1000));
	expect(m, &a, r->rc, what);
	am_run *ru = &m->runs[run];
	if (r->rc != -ENOENT)
		run_exists_by(m, run, m->T);
	if (r->rc == CKR_EEXHAUSTED || r->rc == CKR_ETERMINAL)
		ru->t_term = ru->t_term < m->T ? ru->t_term : m->T;
	if (r->rc == CKR_EEXHAUSTED) {
		ru->exhausted = true;
		if (ru->winner < 0) {
			/* which begin won is left to the checkpoint */
		}
	}
	if (r->rc == 0)
		claim_success(m, img, run, c, r, t, m->T);
}

static void on_reopen(am *m, int img, const as_cmd *c, const as_rep *r, int64_t t)
{
	am_img *im = &m->imgs[img];
	(void)t;
	if (c->flags & RF_GIVEN) {
		expect1(m, CKR_ENOTCLAIMER, r->rc, "ckr_run_reopen of another process's claim");
		return;
	}
	am_claimrec *cr = &im->claim[c->claim];
	am_client *cl = &im->cl[c->client];
	allow a = { .n = 0 };
	if (cr->reopened || open_in_client(m, img, c->client, cr->run))
		allow_add(&a, -EEXIST); /* a claim reopens once per image */
	else if (cl->n_open >= (int)m->wpl)
		allow_add(&a, CKR_ESLOTS);
	else {
		allow_add(&a, 0);
		if (cl->n_open + cl->n_closed >= (int)m->wpl)
			allow_add(&a, CKR_ESLOTS);
	}
	expect(m, &a, r->rc, "ckr_run_reopen by the claimer");
	if (r->rc)
		return;
	am_handle *h = &im->h[r->idx];
	memset(h, 0, sizeof *h);
	h->used = true;
	h->run = cr->run;
	h->writer = cr->writer;
	h->client = c->client;
	h->hrec = hrec_new(m);
	h->next_seq = cr->cl.next_seq;
	h->bytes = cr->cl.bytes;
	h->last_ev = -1;
	cl->n_open++;
	cr->reopened = true;
	if (r->next_seq != cr->cl.next_seq)
		am_diverge(m, "reopen: next_seq %llu, the claim said %llu",
			   (unsigned long long)r->next_seq, (unsigned long long)cr->cl.next_seq);
	const am_run *ru = &m->runs[cr->run];
	if (ru->tenure[ru->n_tenure - 1] != cr->writer)
		am_diverge(m, "model: reopen of a claim that is no longer the run's tenure");
}

/* ---- processes ---- */

static bool img_has_handle(const am_img *im)
{
	for (int i = 0; i < AS_MAX_RUNS; i++)
		if (im->h[i].used)
			return true;
	return false;
}

static bool img_has_client(const am_img *im)
{
	for (int i = 0; i < AS_MAX_CLIENTS; i++)
		if (im->cl[i].used)
			return true;
	return false;
}

static bool img_has_claim(const am_img *im)
{
	for (int i = 0; i < AS_MAX_CLAIMS; i++)
		if (im->claim[i].used)
			return true;
	return false;
}

static void on_fork(am *m, int img, const as_cmd *c, const as_rep *r, int64_t t)
{
	am_img *im = &m->imgs[img];
	int64_t t1 = m->T;
	expect1(m, 0, r->rc, "fork child (ran and exited 0)");
	if (r->rc)
		return;
	int want = img_has_handle(im) ? CKR_EFORKED : 1;
	expect1(m, want, r->sub[0], "ckr_run_message on the parent's handle in a forked child");
	expect1(m, want, r->sub[1], "ckr_run_phase on the parent's handle in a forked child");
	expect1(m, want, r->sub[2], "ckr_run_finish on the parent's handle in a forked child");
	want = img_has_client(im) ? CKR_EFORKED : 1;
	expect1(m, want, r->sub[3], "ckr_run_begin on the parent's client in a forked child");
	expect1(m, want, r->sub[4], "ckr_wait on the parent's client in a forked child");
	int held, maybe;
	lanes_count(m, &held, &maybe);
	allow a = { .n = 0 };
	if ((uint32_t)held < m->lanes)
		allow_add(&a, 0);
	if ((uint32_t)(held + maybe) >= m->lanes)
		allow_add(&a, -EUSERS);
	expect(m, &a, r->sub[5], "ckr_client_attach in a forked child");
	int child = am_img_new(m, -1, r->pid, 0);
	im = &m->imgs[img];
	if (r->sub[5] == 0) {
		expect1(m, img_has_claim(im) ? CKR_ENOTCLAIMER : 1, r->sub[6],
			"ckr_run_reopen of the parent's claim in a forked child");
		/* the child's lane (it detached): sub[9] is not sent; any free
		 * lane may now wait to be freed */
		for (uint32_t i = 0; i < m->lanes; i++)
			if (m->lane[i].img < 0)
				m->lane[i].maybe_held = true;
	}
	if ((c->flags & FF_DUP_BEGIN) && r->sub[5] == 0) {
		allow b = { .n = 0 };
		allow_add(&b, 0);
		allow_add(&b, -EAGAIN);
		expect(m, &b, r->sub[7], "ckr_run_begin of an existing run in a forked child");
		if (r->sub[7] == 0) {
			int run = am_run_get(m, c->id, c->id_len);
			m->focus = run;
			int wi = writer_new(m, run, child, false);
			am_writer *w = &m->ws[wi];
			w->begin_ok = true;
			w->t_send = t;
			w->kind = c->kind;
			as_text(c->tag ^ 1, 16, w->label);
			w->st = WS_LOSE;
			am_run *ru = &m->runs[run];
			PUSH(ru->cands, ru->n_cands, ru->cap_cands, wi);
			if (!(ru->t_exists < t))
				am_diverge(m, "model: child dup begin of a run not known to exist");
			allow d = { .n = 0 };
			allow_add(&d, CKR_EREJECTED);
			const am_gen *g = gen_certain(m, t, t1);
			if (!g)
				allow_add(&d, -EPIPE);
			if (!g || !gen_running(g, t, t1))
				allow_add(&d, -ETIMEDOUT);
			expect(m, &d, r->sub[8], "ckr_wait in a forked child on its duplicate begin");
		}
	}
	if (c->flags & FF_LINGER)
		m->imgs[child].state = IMG_ALIVE;
	else
		am_img_end(m, child, IMG_DEAD, t, t1);
}

/* The image exec'd: the worker's new image said hello. */
static void on_exec(am *m, int img, const as_rep *r, int64_t t)
{
	if (r->op != OP_HELLO)
		am_diverge(m, "exec: the worker answered %s (%s), not a new image's hello",
			   am_op_name(r->op), am_rc(r->rc));
	am_img_end(m, img, IMG_EXECED, t, m->T);
}

static void on_embed(am *m, const as_cmd *c, const as_rep *r)
{
	if (c->flags & EF_OTHER_SEG)
		expect1(m, CKR_ESEGMENT, r->rc,
			"ckr_flusher_open of another segment on this store (in a worker)");
	else
		expect1(m, -EBUSY, r->rc,
			"ckr_flusher_open while another flusher serves the segment (in a worker)");
	allow a = { .n = 0 };
	allow_add(&a, 0);
	allow_add(&a, 1);
	expect(m, &a, r->sub[0], "the worker's own store handle after the refused flusher open");
}

static void on_misuse(am *m, int img, const as_cmd *c, const as_rep *r)
{
	am_img *im = &m->imgs[img];
	static const char *const what[12] = {
		"begin with id_len 0", "begin with id_len 65", "begin with kind 7",
		"wait with lane out of range", "wait with level 9", "wait with writer 0",
		"finish with outcome 9", "message NULL with len 5", "attach with out NULL",
		"attach with max_event_size above the segment's", "reopen of an empty claim",
		"claim with a NULL store",
	};
	bool cl = c->client >= 0 && c->client < AS_MAX_CLIENTS && im->cl[c->client].used;
	bool h = c->run >= 0 && c->run < AS_MAX_RUNS && im->h[c->run].used;
	for (int i = 0; i < 12; i++) {
		int want = -EINVAL;
		if (i <= 5 || i == 10)
			want = cl ? -EINVAL : 1;
		if (i == 6 || i == 7)
			want = h ? -EINVAL : 1;
		if (i == 7 && h && im->h[c->run].finished)
			want = CKR_ETERMINAL;
		if (i == 7 && h && !im->h[c->run].finished &&
		    m->ws[im->h[c->run].writer].kind != CKR_KIND_SINGLE_LOOP)
			want = -EINVAL;
		char w[120];
		snprintf(w, sizeof w, "misuse: %s", what[i]);
		expect1(m, want, r->sub[i], w);
	}
}

static void on_tburst(am *m, int img, const as_cmd *c, const as_rep *r, int64_t t)
{
	am_img *im = &m->imgs[img];
	if (!handle_ok(m, img, c->run, "tburst"))
		return;
	am_handle *h = &im->h[c->run];
	as_cmd one = *c;
	one.op = OP_MSG;
	uint64_t size = push_size(&m->runs[h->run], &one);
	allow a = { .n = 0 };
	push_allow(m, im, h, &one, size, &a);
	if (!allowed(&a, 0)) {
		if (r->n)
			am_diverge(m, "tburst: %u pushes accepted where the model refuses", r->n);
		return;
	}
	for (uint32_t k = 0; k < 2 * c->len2; k++) {
		int ei = push_accepted(m, img, c->run, &one, c->tag, size, NULL, t, true);
		am_event *e = &m->evs[ei];
		e->wild = true;
		e->wild_n = c->len2;
		e->index = k == 0 ? r->n : UINT32_MAX; /* first: the minimum landed */
	}
	m->cnt.quarantined_hi += 2;
}

static void on_parkpush(am *m, int img, const as_cmd *c, const as_rep *r, const void *extra,
			int64_t t)
{
	am_img *im = &m->imgs[img];
	if (!handle_ok(m, img, c->run, "parkpush"))
		return;
	am_handle *h = &im->h[c->run];
	as_cmd one = *c;
	one.op = OP_MSG;
	uint64_t size = push_size(&m->runs[h->run], &one);
	if (r->sub[1]) { /* the parked thread's push came back: refused */
		allow a = { .n = 0 };
		push_allow(m, im, h, &one, size, &a);
		if (r->sub[0] == 0 || !allowed(&a, r->sub[0]))
			am_diverge(m, "parkpush: the parked push returned %s", am_rc(r->sub[0]));
	} else {
		m->cnt.quarantined_lo++;
		m->cnt.quarantined_hi++;
		h->bytes += size; /* charged before its claim; it never returns */
	}
	as_cmd b = *c;
	b.tag = c->tag + 1;
	on_burst(m, img, &b, r, extra, t);
}

/* ------------------------------------------------------------------ */
/* dispatch                                                            */
/* ------------------------------------------------------------------ */

int64_t am_sent(am *m, int img, const as_cmd *c)
{
	int64_t t = am_tick(m);
	if (c->op == OP_BEGIN)
		begin_sent(m, img, c, t);
	if (c->op == OP_CLAIM) {
		int run = am_run_find(m, c->id, c->id_len);
		if (run >= 0)
			m->runs[run].claims_pending++;
	}
	if (c->op == OP_DETACH && c->client >= 0 && c->client < AS_MAX_CLIENTS)
		m->imgs[img].cl[c->client].detaching = true;
	if (c->op == OP_FINISH && c->run >= 0 && c->run < AS_MAX_RUNS &&
	    m->imgs[img].h[c->run].used)
		m->runs[m->imgs[img].h[c->run].run].finish_pending++;
	return t;
}

void am_done(am *m, int img, const as_cmd *c, const as_rep *r, const void *extra,
	     int64_t t)
{
	am_img *im = &m->imgs[img];
	am_tick(m);
	if (c->op != OP_EXEC && r->op != c->op) {
		am_diverge(m, "worker answered %s to %s", am_op_name(r->op), am_op_name(c->op));
		return;
	}
	if (c->op == OP_FINISH && c->run >= 0 && c->run < AS_MAX_RUNS && im->h[c->run].used)
		m->runs[im->h[c->run].run].finish_pending--;
	m->focus = -1;
	if (c->op == OP_WAIT && c->tag)
		m->focus = m->evs[c->tag - 1].run;
	else if (c->id_len && c->op != OP_FORK)
		m->focus = am_run_find(m, c->id, c->id_len);
	else if (c->run >= 0 && c->run < AS_MAX_RUNS && im->h[c->run].used)
		m->focus = im->h[c->run].run;
	switch (c->op) {
	case OP_ATTACH: on_attach(m, img, c, r); break;
	case OP_DETACH: on_detach(m, img, c, r, t); break;
	case OP_BEGIN: on_begin(m, img, c, r, t); break;
	case OP_MSG:
	case OP_PHASE: on_push(m, img, c, r, t); break;
	case OP_BURST: on_burst(m, img, c, r, extra, t); break;
	case OP_FINISH: on_finish(m, img, c, r, t); break;
	case OP_CLOSE:
		expect1(m, 0, r->rc, "close");
		handle_close(m, img, c->run, t);
		break;
	case OP_WAIT: on_wait(m, img, c, r, t); break;
	case OP_STORE_OPEN:
		expect1(m, 0, r->rc, "ckr_store_open");
		if (r->rc == 0 && r->idx >= 0) {
			im->store[r->idx] = c->flags ? 2 : 1;
			im->store_att[r->idx] = c->max_attempts;
		}
		break;
	case OP_STORE_CLOSE:
		expect1(m, 0, r->rc, "ckr_store_close");
		im->store[c->store] = 0;
		break;
	case OP_LIST: on_list(m, c, r, extra, t); break;
	case OP_GET:
	case OP_BEGIN_CHECK: on_get(m, c, r, t); break;
	case OP_RESUME: on_resume(m, c, r, extra, t); break;
	case OP_CLAIM: on_claim(m, img, c, r, t); break;
	case OP_REOPEN: on_reopen(m, img, c, r, t); break;
	case OP_PRUNE:
		expect1(m, im->store[c->store] == 2 ? -EROFS : 0, r->rc, "ckr_store_prune");
		break;
	case OP_FORK: on_fork(m, img, c, r, t); break;
	case OP_EXEC: on_exec(m, img, r, t); break;
	case OP_KILLPUSH: {
		/* It came back: the push was refused before its claim. */
		am_handle *h = &im->h[c->run];
		as_cmd one = *c;
		one.op = OP_MSG;
		allow a = { .n = 0 };
		push_allow(m, im, h, &one, push_size(&m->runs[h->run], &one), &a);
		if (r->rc == 0 || !allowed(&a, r->rc))
			am_diverge(m, "killpush came back with %s (the hook should have killed it)",
				   am_rc(r->rc));
		break;
	}
	case OP_PARKPUSH: on_parkpush(m, img, c, r, extra, t); break;
	case OP_TBURST: on_tburst(m, img, c, r, t); break;
	case OP_EMBED: on_embed(m, c, r); break;
	case OP_MISUSE: on_misuse(m, img, c, r); break;
	default:
		am_diverge(m, "model: no rule for %s", am_op_name(c->op));
	}
	if (m->focus >= 0)
		m->runs[m->focus].dirty = true;
}

/* The process died with the command in flight: it may or may not have
 * happened (a push may be in the ring; a claim may have committed). */
void am_lost(am *m, int img, const as_cmd *c, int64_t t)
{
	am_img *im = &m->imgs[img];
	(void)t;
	int fr = -1;
	if (c->id_len && c->op != OP_FORK)
		fr = am_run_find(m, c->id, c->id_len);
	else if (c->run >= 0 && c->run < AS_MAX_RUNS && im->h[c->run].used)
		fr = im->h[c->run].run;
	if (fr >= 0)
		m->runs[fr].dirty = true;
	switch (c->op) {
	case OP_BEGIN: {
		int wi = pending_writer(m, img);
		if (wi < 0)
			break;
		am_writer *w = &m->ws[wi];
		w->cmd_pending = false;
		w->begin_maybe = true;
		m->cnt.quarantined_hi++;
		exclude(m, w->run);
		break;
	}
	case OP_MSG:
	case OP_PHASE:
	case OP_BURST: {
		if (c->run < 0 || c->run >= AS_MAX_RUNS || !im->h[c->run].used)
			break;
		am_handle *h = &im->h[c->run];
		as_cmd one = *c;
		if (c->op == OP_BURST)
			one.op = OP_MSG;
		uint64_t size = push_size(&m->runs[h->run], &one);
		uint32_t n = c->op == OP_BURST ? c->len2 : 1;
		for (uint32_t k = 0; k < n; k++) {
			allow a = { .n = 0 };
			push_allow(m, im, h, &one, size, &a);
			if (!allowed(&a, 0))
				break;
			int ei = push_accepted(m, img, c->run, &one, c->tag + k, size, NULL, t, true);
			m->evs[ei].single_burst = true;
		}
		m->cnt.quarantined_hi++;
		break;
	}
	case OP_FINISH: {
		if (c->run < 0 || c->run >= AS_MAX_RUNS || !im->h[c->run].used)
			break;
		am_handle *h = &im->h[c->run];
		m->runs[h->run].finish_pending--;
		if (h->finished || c->outcome == CKR_OUTCOME_LEAVE_RUNNING ||
		    c->outcome > CKR_OUTCOME_FAIL)
			break;
		am_run *ru = &m->runs[h->run];
		uint64_t size = c->outcome == CKR_OUTCOME_FAIL
					? am_size_fail(ru->id_len, c->len2 == UINT32_MAX ? 0 : c->len2)
					: am_size_complete(ru->id_len);
		if (size > im->cl[h->client].max_event)
			break;
		am_event *e = event_new(m, img, c->run,
					c->outcome == CKR_OUTCOME_COMPLETE ? EV_COMPLETE : EV_FAIL, t);
		e->seq = h->next_seq++;
		e->tag = c->tag;
		e->len = c->len2 == UINT32_MAX ? 0 : c->len2;
		e->index = c->len2 == UINT32_MAX;
		e->size = size;
		e->maybe = true;
		e->land = LAND_UNKNOWN;
		event_file(m, (int)(e - m->evs));
		m->cnt.quarantined_hi++;
		break;
	}
	case OP_CLAIM: {
		int run = am_run_find(m, c->id, c->id_len);
		if (run < 0)
			break;
		am_run *ru = &m->runs[run];
		ru->claims_pending--;
		if (im->store[c->store] != 1)
			break;
		if (ru->n_maybe_claims < 4) {
			ru->maybe_claim_img[ru->n_maybe_claims] = img;
			ru->maybe_claim_max[ru->n_maybe_claims] = claim_max(m, im, c->store);
		}
		ru->n_maybe_claims++;
		if (ru->attempts + (uint32_t)ru->n_maybe_claims > claim_max(m, im, c->store))
			ru->maybe_exhausted = true;
		break;
	}
	case OP_KILLPUSH:
		m->cnt.quarantined_lo++;
		m->cnt.quarantined_hi++;
		break;
	default:
		break;
	}
}

uint64_t am_prefix(const am *m, int run)
{
	const am_run *r = &m->runs[run];
	uint64_t s = 1;
	while (s < r->n_rows && r->rows[s] >= 0 && m->evs[r->rows[s]].land != LAND_NO)
		s++;
	return s - 1;
}

static const char *ev_name(uint8_t t)
{
	static const char *const n[] = { "?", "begin", "message", "phase", "complete", "fail" };
	return t < 6 ? n[t] : "?";
}

void am_dump_run(const am *m, int run, FILE *out)
{
	if (run < 0 || (size_t)run >= m->n_runs)
		return;
	const am_run *r = &m->runs[run];
	char id[300];
	am_run_id_text(r, id, sizeof id);
	fprintf(out, "model of run %s: winner %d, attempts %u (+%d lost claims), last_seq floor "
		"%llu, exhausted %d, fin_ev %d, t_exists %lld\n", id, r->winner, r->attempts,
		r->n_maybe_claims, (unsigned long long)r->last_seq, r->exhausted, r->fin_ev,
		r->t_exists == AM_NEVER ? -1LL : (long long)r->t_exists);
	for (size_t i = 0; i < r->n_cands; i++) {
		const am_writer *w = &m->ws[r->cands[i]];
		const am_img *im = &m->imgs[w->img];
		fprintf(out, "  candidate writer %d (id %llx): image %d (w%d pid %d %s) label '%s' "
			"st %d begin_ok %d maybe %d pending %d sent t%lld\n", r->cands[i],
			(unsigned long long)w->wid, w->img, im->worker, (int)im->pid,
			im->state == IMG_ALIVE ? "alive" : im->state == IMG_DEAD ? "dead" : "exec'd",
			w->label, w->st, w->begin_ok, w->begin_maybe, w->cmd_pending,
			(long long)w->t_send);
		if (r->winner == r->cands[i])
			continue;
		for (size_t k = 0; k < w->n_evs; k++) {
			const am_event *e = &m->evs[w->evs[k]];
			fprintf(out, "    ev %d %s seq %llu lane %u pos %llu slot %u hrec-closed "
				"t%lld t%lld-%lld obs %d\n", w->evs[k], ev_name(e->type),
				(unsigned long long)e->seq, e->tk.lane, (unsigned long long)e->tk.pos,
				e->tk.slot, m->hrec[e->hrec] == AM_NEVER ? -1LL :
				(long long)m->hrec[e->hrec], (long long)e->t_send,
				(long long)e->t_recv, e->obs);
		}
	}
	for (size_t t = 0; t < r->n_tenure; t++) {
		const am_writer *w = &m->ws[r->tenure[t]];
		const am_img *im = &m->imgs[w->img];
		fprintf(out, "  tenure %zu: writer %d inc %u image %d (w%d pid %d %s, t_end %lld)"
			" %zu events:\n", t, r->tenure[t], w->inc, w->img, im->worker, (int)im->pid,
			im->state == IMG_ALIVE ? "alive" : im->state == IMG_DEAD ? "dead" : "exec'd",
			im->t_end == AM_NEVER ? -1LL : (long long)im->t_end, w->n_evs);
		for (size_t k = 0; k < w->n_evs; k++) {
			const am_event *e = &m->evs[w->evs[k]];
			fprintf(out, "    ev %d %s seq %llu len %u %s%s%s lane %u pos %llu slot %u "
				"t%lld-%lld obs %d\n", w->evs[k], ev_name(e->type),
				(unsigned long long)e->seq, e->len, e->maybe ? "MAYBE " : "",
				e->land == LAND_NO ? "not-landed " : e->land == LAND_UNKNOWN ? "unknown " : "",
				e->aside ? "aside " : "", e->tk.lane, (unsigned long long)e->tk.pos,
				e->tk.slot, (long long)e->t_send, (long long)e->t_recv, e->obs);
		}
	}
}
