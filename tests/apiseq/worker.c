/*
 * worker.c — an API-sequence worker (tests/apiseq/): a process that executes
 * the driver's commands (proto.h) one at a time against the public API and
 * answers with the exact results. It holds clients, run handles, store
 * handles and claims in small tables; the driver refers to them by index.
 *
 * It decides nothing: a command names one call (or one fixed little script:
 * a burst of messages, a fork child's checks), the reply carries what the
 * calls returned. Three commands end with the process dying on purpose:
 * OP_KILLPUSH (SIGKILL between claim and commit of a push, through the hooks
 * build's ckr_lane_test_after_claim), OP_PARKPUSH (a thread parks between
 * claim and commit while this thread pushes more, then the driver kills us)
 * and OP_TBURST (two threads push concurrently; the driver kills us
 * mid-way, which can leave a sequence gap: a number taken, its record never
 * committed). OP_EXEC replaces the image without detaching.
 *
 * usage (by the driver only): apiseq-worker SEGMENT DB_DIR
 * fds: 3 commands in, 4 replies out; stderr is the driver's.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckring.h"
#include "ckring_store.h"
#include "client/client.h"
#include "ring/lane.h"
#include "shm/proc.h"
#include "tests/apiseq/proto.h"

typedef struct worker {
	const char *seg, *db;
	char **argv;
	uint64_t token;
	ckr_client *clients[AS_MAX_CLIENTS];
	ckr_run *runs[AS_MAX_RUNS];
	int run_client[AS_MAX_RUNS];
	ckr_store *stores[AS_MAX_STORES];
	ckr_claim claims[AS_MAX_CLAIMS];
	bool claim_used[AS_MAX_CLAIMS];
	uint8_t buf[1 << 20];
} worker;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int read_full(int fd, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);
		if (r == 0)
			return -EPIPE;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0)
			got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *p, size_t n)
{
	size_t put = 0;
	while (put < n) {
		ssize_t r = write(fd, (const char *)p + put, n - put);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0)
			put += (size_t)r;
	}
	return 0;
}

static void reply(as_rep *r, const void *extra, size_t len)
{
	r->extra_len = (uint32_t)len;
	if (write_full(AS_REP_FD, r, sizeof *r) || (len && write_full(AS_REP_FD, extra, len)))
		_exit(3); /* the driver is gone */
}

static int free_index(void **tab, int n)
{
	for (int i = 0; i < n; i++)
		if (!tab[i])
			return i;
	return -1;
}

/* ---- clients and runs ---- */

static void do_attach(worker *w, const as_cmd *c, as_rep *r)
{
	int i = free_index((void **)w->clients, AS_MAX_CLIENTS);
	ckr_client_opts o = { .max_event_size = c->max_event, .max_run_bytes = c->u64 };
	if (i < 0) {
		r->rc = -ENFILE;
		return;
	}
	if ((c->flags & AF_BEGIN_CHECK) && c->store >= 0 && c->store < AS_MAX_STORES &&
	    w->stores[c->store]) {
		o.begin_check = ckr_store_begin_check;
		o.begin_check_ctx = w->stores[c->store];
	}
	const char *name = w->seg;
	char other[CKR_NAME_MAX + 16];
	if (c->flags & AF_MISSING_SEG) {
		snprintf(other, sizeof other, "%s-missing", w->seg);
		name = other;
	} else if (c->flags & AF_BAD_NAME) {
		name = ".bad/name";
	}
	r->rc = ckr_client_attach(name, &o, &w->clients[i]);
	if (r->rc)
		return;
	r->idx = i;
	r->lane = ckr_client_lane(w->clients[i]);
	const ckr_segment *s = ckr_client_segment(w->clients[i]);
	r->max_record = s->max_record;
	r->writers_per_lane = s->writers_per_lane;
	r->lanes = s->lane_count;
}

static bool run_ok(const worker *w, int i)
{
	return i >= 0 && i < AS_MAX_RUNS && w->runs[i];
}

static bool client_ok(const worker *w, int i)
{
	return i >= 0 && i < AS_MAX_CLIENTS && w->clients[i];
}

static void close_run(worker *w, int i)
{
	ckr_run_close(w->runs[i]);
	w->runs[i] = NULL;
}

static void do_detach(worker *w, const as_cmd *c, as_rep *r)
{
	if (!client_ok(w, c->client)) {
		r->rc = -EBADF;
		return;
	}
	for (int i = 0; i < AS_MAX_RUNS; i++)
		if (w->runs[i] && w->run_client[i] == c->client)
			close_run(w, i);
	ckr_client_detach(w->clients[c->client]);
	w->clients[c->client] = NULL;
}

static void do_begin(worker *w, const as_cmd *c, as_rep *r)
{
	char label[CKR_LABEL_MAX + 8];
	int i = free_index((void **)w->runs, AS_MAX_RUNS);
	if (!client_ok(w, c->client) || i < 0) {
		r->rc = -EBADF;
		return;
	}
	ckr_run_spec s = { .id = c->id, .id_len = c->id_len, .kind = (ckr_kind)c->kind };
	if (c->index != UINT32_MAX) {
		as_text(c->tag ^ 1, c->index, label);
		s.label = label;
	}
	if (c->len2) {
		as_fill(c->tag ^ 2, c->len2, w->buf);
		s.meta = w->buf;
		s.meta_len = c->len2;
	}
	ckr_run *run = NULL;
	r->rc = ckr_run_begin(w->clients[c->client], &s, &run, &r->ticket);
	if (r->rc)
		return;
	w->runs[i] = run;
	w->run_client[i] = c->client;
	r->idx = i;
	r->next_seq = ckr_run_next_seq(run);
}

static int push_one(worker *w, const as_cmd *c, uint64_t tag, ckr_ticket *t)
{
	ckr_run *run = w->runs[c->run];
	const void *data = NULL;
	if (!(c->flags & PF_NULL_DATA)) {
		as_fill(tag, c->len, w->buf);
		data = w->buf;
	}
	if (c->op == OP_PHASE) {
		char name[300];
		as_text(tag ^ 3, c->len2 < 256 ? c->len2 : 255, name);
		return ckr_run_phase(run, c->index, c->len2 ? name : NULL, data, c->len, t);
	}
	return ckr_run_message(run, data, c->len, t);
}

static void do_push(worker *w, const as_cmd *c, as_rep *r)
{
	if (!run_ok(w, c->run)) {
		r->rc = -EBADF;
		return;
	}
	r->rc = push_one(w, c, c->tag, &r->ticket);
	r->next_seq = ckr_run_next_seq(w->runs[c->run]);
}

static void do_burst(worker *w, const as_cmd *c, as_rep *r)
{
	ckr_ticket t[AS_BURST_MAX];
	if (!run_ok(w, c->run) || c->len2 > AS_BURST_MAX) {
		r->rc = -EBADF;
		return;
	}
	as_cmd one = *c;
	one.op = OP_MSG;
	r->n = 0;
	for (uint32_t k = 0; k < c->len2; k++) {
		r->rc = push_one(w, &one, c->tag + k, &t[k]);
		if (r->rc)
			break;
		r->n++;
	}
	r->next_seq = ckr_run_next_seq(w->runs[c->run]);
	reply(r, t, r->n * sizeof t[0]);
}

static void do_finish(worker *w, const as_cmd *c, as_rep *r)
{
	char err[70000];
	if (!run_ok(w, c->run)) {
		r->rc = -EBADF;
		return;
	}
	const char *e = NULL;
	if (c->len2 != UINT32_MAX) {
		as_text(c->tag ^ 4, c->len2 < sizeof err ? c->len2 : sizeof err - 1, err);
		e = err;
	}
	r->rc = ckr_run_finish(w->runs[c->run], (ckr_outcome)c->outcome, e, &r->ticket);
	r->next_seq = ckr_run_next_seq(w->runs[c->run]);
}

static void do_wait(worker *w, const as_cmd *c, as_rep *r)
{
	if (!client_ok(w, c->client)) {
		r->rc = -EBADF;
		return;
	}
	int64_t t0 = now_us();
	r->rc = ckr_wait(w->clients[c->client], &c->ticket, (ckr_level)c->level,
			 c->timeout_ms);
	r->elapsed_us = now_us() - t0;
}

static void do_reopen(worker *w, const as_cmd *c, as_rep *r)
{
	int i = free_index((void **)w->runs, AS_MAX_RUNS);
	const ckr_claim *cl = &c->claim_data;
	if (!(c->flags & RF_GIVEN)) {
		if (c->claim < 0 || c->claim >= AS_MAX_CLAIMS || !w->claim_used[c->claim]) {
			r->rc = -EBADF;
			return;
		}
		cl = &w->claims[c->claim];
	}
	if (!client_ok(w, c->client) || i < 0) {
		r->rc = -EBADF;
		return;
	}
	ckr_run *run = NULL;
	r->rc = ckr_run_reopen(w->clients[c->client], cl, &run);
	if (r->rc)
		return;
	w->runs[i] = run;
	w->run_client[i] = c->client;
	r->idx = i;
	r->next_seq = ckr_run_next_seq(run);
}

/* ---- the store ---- */

static bool store_ok(const worker *w, int i)
{
	return i >= 0 && i < AS_MAX_STORES && w->stores[i];
}

static void do_store_open(worker *w, const as_cmd *c, as_rep *r)
{
	int i = free_index((void **)w->stores, AS_MAX_STORES);
	ckr_store_opts o = { .read_only = c->flags != 0, .max_attempts = c->max_attempts };
	if (i < 0) {
		r->rc = -ENFILE;
		return;
	}
	r->rc = ckr_store_open(w->db, &o, &w->stores[i]);
	if (r->rc == 0)
		r->idx = i;
}

static void do_list(worker *w, const as_cmd *c, as_rep *r)
{
	ckr_run_info *v = NULL;
	size_t n = 0;
	if (!store_ok(w, c->store)) {
		r->rc = -EBADF;
		return;
	}
	r->rc = ckr_store_list(w->stores[c->store], (ckr_list_which)c->which, &v, &n);
	r->n = r->rc ? 0 : (uint32_t)n;
	reply(r, v, r->n * sizeof *v);
	free(v);
}

static void do_claim(worker *w, const as_cmd *c, as_rep *r)
{
	int i;
	for (i = 0; i < AS_MAX_CLAIMS && w->claim_used[i]; i++)
		;
	if (!store_ok(w, c->store) || i == AS_MAX_CLAIMS) {
		r->rc = -EBADF;
		return;
	}
	int64_t t0 = now_us(), deadline = t0 + 20 * 1000000;
	for (;;) {
		r->rc = ckr_store_claim(w->stores[c->store], c->id, c->id_len, &r->claim);
		r->n++;
		if (r->rc != CKR_ENOTDRAINED || !(c->flags & CF_RETRY) || now_us() > deadline)
			break;
		/* Retry pace while the flusher drains the dead owner. */
		struct timespec ts = { 0, 2 * 1000000 };
		nanosleep(&ts, NULL);
	}
	r->elapsed_us = now_us() - t0;
	if (r->rc == 0) {
		w->claims[i] = r->claim;
		w->claim_used[i] = true;
		r->idx = i;
	}
}

static void do_resume(worker *w, const as_cmd *c, as_rep *r)
{
	ckr_resume *rs;
	if (!store_ok(w, c->store)) {
		r->rc = -EBADF;
		return;
	}
	r->rc = ckr_store_resume(w->stores[c->store], c->id, c->id_len, &rs);
	if (r->rc)
		return;
	size_t items = rs->kind == CKR_KIND_MULTI_PHASE ? rs->n_phases : rs->n_history;
	const ckr_blob *iv = rs->kind == CKR_KIND_MULTI_PHASE ? rs->phases : rs->history;
	size_t len = sizeof(as_resume_hdr) + (items + rs->n_set_aside) * sizeof(as_blob) +
		     rs->n_gaps * sizeof(uint64_t);
	uint8_t *out = calloc(1, len);
	if (!out)
		abort();
	as_resume_hdr *h = (as_resume_hdr *)(void *)out;
	h->kind = rs->kind;
	h->state = rs->state;
	h->next_seq = rs->next_seq;
	h->n_items = (uint32_t)items;
	h->n_aside = (uint32_t)rs->n_set_aside;
	h->n_gaps = (uint32_t)rs->n_gaps;
	h->meta_len = (uint32_t)rs->meta_len;
	h->meta_hash = as_hash(rs->meta, rs->meta_len);
	memcpy(h->label, rs->label, sizeof h->label);
	as_blob *b = (as_blob *)(void *)(h + 1);
	for (size_t k = 0; k < items + rs->n_set_aside; k++) {
		const ckr_blob *x = k < items ? &iv[k] : &rs->set_aside[k - items];
		b[k] = (as_blob){ .seq = x->seq, .index = x->index,
				  .incarnation = x->incarnation, .size = x->size,
				  .hash = as_hash(x->data, x->size),
				  .name_hash = x->name ? as_hash(x->name, strlen(x->name)) : 0 };
	}
	if (rs->n_gaps)
		memcpy(b + items + rs->n_set_aside, rs->gaps, rs->n_gaps * sizeof(uint64_t));
	ckr_resume_free(rs);
	r->n = 1;
	reply(r, out, len);
	free(out);
}

/* ---- processes ---- */

/* The child of OP_FORK: every call on the parent's handles must fail with
 * CKR_EFORKED; a claim of the parent must not reopen here. Results go to
 * fd out as int32 sub[12]. */
static void fork_child(worker *w, const as_cmd *c, int out)
{
	int32_t sub[12];
	for (int i = 0; i < 12; i++)
		sub[i] = 1; /* "not tried" */
	close(AS_CMD_FD);
	close(AS_REP_FD);
	ckr_ticket t = { 0 };
	for (int i = 0; i < AS_MAX_RUNS; i++) {
		if (!w->runs[i])
			continue;
		sub[0] = ckr_run_message(w->runs[i], "x", 1, &t);
		sub[1] = ckr_run_phase(w->runs[i], 0, "p", "x", 1, &t);
		sub[2] = ckr_run_finish(w->runs[i], CKR_OUTCOME_FAIL, "child", &t);
		break;
	}
	for (int i = 0; i < AS_MAX_CLIENTS; i++) {
		if (!w->clients[i])
			continue;
		ckr_run *r = NULL;
		ckr_run_spec s = { .id = "child", .id_len = 5, .kind = CKR_KIND_SINGLE_LOOP };
		ckr_ticket t2 = { .lane = ckr_client_lane(w->clients[i]), .slot = 0, .pos = 8,
				  .writer = 1 };
		sub[3] = ckr_run_begin(w->clients[i], &s, &r, NULL);
		sub[4] = ckr_wait(w->clients[i], &t2, CKR_LEVEL_COMMITTED, 0);
		break;
	}
	ckr_client *mine = NULL;
	sub[5] = ckr_client_attach(w->seg, NULL, &mine);
	for (int i = 0; sub[5] == 0 && i < AS_MAX_CLAIMS; i++) {
		if (!w->claim_used[i])
			continue;
		ckr_run *r = NULL;
		sub[6] = ckr_run_reopen(mine, &w->claims[i], &r);
		if (sub[6] == 0)
			ckr_run_close(r);
		break;
	}
	if (sub[5] == 0 && (c->flags & FF_DUP_BEGIN)) {
		ckr_run *r = NULL;
		ckr_ticket bt;
		char label[32];
		as_text(c->tag ^ 1, 16, label);
		ckr_run_spec s = { .id = c->id, .id_len = c->id_len,
				   .kind = (ckr_kind)c->kind, .label = label };
		sub[7] = ckr_run_begin(mine, &s, &r, &bt);
		if (sub[7] == 0) {
			sub[8] = ckr_wait(mine, &bt, CKR_LEVEL_COMMITTED, 10000);
			ckr_run_close(r);
		}
	}
	if (sub[5] == 0)
		ckr_client_detach(mine);
	/* The parent's handles are freed here without touching its lanes. */
	for (int i = 0; i < AS_MAX_RUNS; i++)
		ckr_run_close(w->runs[i]);
	for (int i = 0; i < AS_MAX_CLIENTS; i++)
		ckr_client_detach(w->clients[i]);
	if (write_full(out, sub, sizeof sub))
		_exit(4);
	close(out);
	if (c->flags & FF_LINGER)
		for (;;)
			pause(); /* until the driver kills us */
	_exit(0);
}

static void do_fork(worker *w, const as_cmd *c, as_rep *r)
{
	int64_t tstart = now_us();
	int p[2];
	if (pipe(p)) {
		r->rc = -errno;
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		r->rc = -errno;
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		close(p[0]);
		fork_child(w, c, p[1]);
	}
	close(p[1]);
	r->pid = pid;
	int64_t t0 = now_us();
	r->rc = read_full(p[0], r->sub, sizeof r->sub);
	r->elapsed_us = now_us() - t0;
	close(p[0]);
	if (!(c->flags & FF_LINGER)) {
		int st;
		waitpid(pid, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			r->rc = -ECHILD;
	}
	r->sub[11] = (int32_t)((now_us() - tstart) / 1000);
}

static void hook_kill(ckr_lane *l, uint64_t pos)
{
	(void)l;
	(void)pos;
	raise(SIGKILL);
}

static void do_killpush(worker *w, const as_cmd *c, as_rep *r)
{
	if (!run_ok(w, c->run)) {
		r->rc = -EBADF;
		return;
	}
	ckr_lane_test_after_claim = hook_kill;
	as_cmd one = *c;
	one.op = OP_MSG;
	r->rc = push_one(w, &one, c->tag, &r->ticket);
	ckr_lane_test_after_claim = NULL; /* refused before its claim */
	r->next_seq = ckr_run_next_seq(w->runs[c->run]);
}

/* OP_PARKPUSH: the parked thread's claim. */
typedef struct gap_ctx {
	worker *w;
	const as_cmd *c;
	pthread_t parked;
	sem_t in_hook;
	int rc;
	bool returned;
} gap_ctx;

static gap_ctx *gap_now;

static void hook_park(ckr_lane *l, uint64_t pos)
{
	(void)l;
	(void)pos;
	if (!gap_now || !pthread_equal(pthread_self(), gap_now->parked))
		return;
	sem_post(&gap_now->in_hook);
	for (;;)
		pause(); /* parked between claim and commit until SIGKILL */
}

static void *gap_thread(void *arg)
{
	gap_ctx *g = arg;
	as_cmd one = *g->c;
	one.op = OP_MSG;
	ckr_ticket t;
	g->rc = push_one(g->w, &one, g->c->tag, &t);
	/* Refused before the claim (ring full, too big): say so. */
	g->returned = true;
	sem_post(&g->in_hook);
	return NULL;
}

static void do_parkpush(worker *w, const as_cmd *c, as_rep *r)
{
	static gap_ctx g;
	ckr_ticket t[AS_BURST_MAX];
	if (!run_ok(w, c->run) || c->len2 > AS_BURST_MAX) {
		r->rc = -EBADF;
		return;
	}
	memset(&g, 0, sizeof g);
	g.w = w;
	g.c = c;
	sem_init(&g.in_hook, 0, 0);
	gap_now = &g;
	ckr_lane_test_after_claim = hook_park;
	if (pthread_create(&g.parked, NULL, gap_thread, &g)) {
		r->rc = -EAGAIN;
		return;
	}
	while (sem_wait(&g.in_hook) != 0)
		;
	r->sub[0] = g.returned ? g.rc : 0; /* 0: the thread is parked */
	r->sub[1] = g.returned;
	if (g.returned) {
		pthread_join(g.parked, NULL);
		ckr_lane_test_after_claim = NULL;
	}
	as_cmd one = *c;
	one.op = OP_MSG;
	r->n = 0;
	for (uint32_t k = 0; k < c->len2; k++) {
		r->rc = push_one(w, &one, c->tag + 1 + k, &t[k]);
		if (r->rc)
			break;
		r->n++;
	}
	r->next_seq = ckr_run_next_seq(w->runs[c->run]);
	reply(r, t, r->n * sizeof t[0]);
}

/* OP_TBURST: two threads push len2 messages of len bytes each into the same
 * run (payload tag: tag + 1000 * thread + k). */
typedef struct tb_ctx {
	ckr_run *run;
	uint64_t tag;
	uint32_t len, n, j;
	_Atomic uint32_t pushed;
	_Atomic int done;
	uint8_t buf[65536];
} tb_ctx;

static void *tb_thread(void *arg)
{
	tb_ctx *t = arg;
	ckr_ticket tk;
	for (uint32_t k = 0; k < t->n; k++) {
		as_fill(t->tag + 1000 * t->j + k, t->len, t->buf);
		int rc, tries = 0;
		while ((rc = ckr_run_message(t->run, t->buf, t->len, &tk)) == -EAGAIN &&
		       tries++ < 20000)
			sched_yield();
		if (rc)
			break;
		atomic_fetch_add(&t->pushed, 1);
	}
	atomic_store(&t->done, 1);
	return NULL;
}

static void do_tburst(worker *w, const as_cmd *c, as_rep *r)
{
	static tb_ctx t[2];
	pthread_t th[2];
	if (!run_ok(w, c->run) || c->len > sizeof t[0].buf) {
		r->rc = -EBADF;
		return;
	}
	for (uint32_t j = 0; j < 2; j++) {
		t[j].run = w->runs[c->run];
		t[j].tag = c->tag;
		t[j].len = c->len;
		t[j].n = c->len2;
		t[j].j = j;
		atomic_store(&t[j].pushed, 0);
		atomic_store(&t[j].done, 0);
		if (pthread_create(&th[j], NULL, tb_thread, &t[j])) {
			r->rc = -EAGAIN;
			return;
		}
	}
	/* Both threads are pushing (or gave up): tell the driver, which kills
	 * us now; bounded so a full ring with no flusher cannot hang us. */
	int64_t deadline = now_us() + 300000;
	while (((atomic_load(&t[0].pushed) == 0 && !atomic_load(&t[0].done)) ||
		(atomic_load(&t[1].pushed) == 0 && !atomic_load(&t[1].done))) &&
	       now_us() < deadline)
		sched_yield();
	r->n = atomic_load(&t[0].pushed) + atomic_load(&t[1].pushed);
	reply(r, NULL, 0);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	for (;;)
		pause(); /* the driver kills us */
}

static void do_exec(worker *w, as_rep *r)
{
	execv("/proc/self/exe", w->argv);
	r->rc = -errno; /* only on failure */
}

static void do_exit(worker *w, const as_cmd *c)
{
	if (c->flags & XF_DETACH) {
		for (int i = 0; i < AS_MAX_RUNS; i++)
			if (w->runs[i])
				close_run(w, i);
		for (int i = 0; i < AS_MAX_CLIENTS; i++)
			ckr_client_detach(w->clients[i]);
		for (int i = 0; i < AS_MAX_STORES; i++)
			ckr_store_close(w->stores[i]);
	}
	_exit(0);
}

/* A flusher engine in this process, where another flusher serves the
 * segment (or the store serves another): must be refused, and must leave
 * this process's own store handles working. */
static void do_embed(worker *w, const as_cmd *c, as_rep *r)
{
	ckr_flusher_opts o = { .segment = w->seg, .db_dir = w->db,
			       .seg = { .group = (gid_t)-1 },
			       .max_attempts = c->max_attempts };
	if (c->flags & EF_OTHER_SEG) {
		o.segment = c->str;
		o.create = true;
		o.seg.lanes = 1; /* small: it is removed again at once */
		o.seg.size = 256 << 10;
	}
	ckr_flusher *f = NULL;
	r->rc = ckr_flusher_open(&o, &f);
	if (r->rc == 0)
		ckr_flusher_close(f);
	r->sub[0] = 1;
	for (int i = 0; i < AS_MAX_STORES; i++) {
		if (!w->stores[i])
			continue;
		ckr_run_info *v = NULL;
		size_t n = 0;
		r->sub[0] = ckr_store_list(w->stores[i], CKR_LIST_ALL, &v, &n);
		free(v);
		break;
	}
}

/* Bad arguments: every call must refuse. sub[k] = the return codes. */
static void do_misuse(worker *w, const as_cmd *c, as_rep *r)
{
	ckr_ticket t;
	ckr_run *run = NULL;
	ckr_client *cl = NULL;
	for (int i = 0; i < 12; i++)
		r->sub[i] = 1;
	if (client_ok(w, c->client)) {
		ckr_client *x = w->clients[c->client];
		uint8_t id[CKR_RUN_ID_MAX + 1];
		memset(id, 'a', sizeof id);
		ckr_run_spec s = { .id = id, .id_len = 0, .kind = CKR_KIND_SINGLE_LOOP };
		r->sub[0] = ckr_run_begin(x, &s, &run, NULL);
		s.id_len = CKR_RUN_ID_MAX + 1;
		r->sub[1] = ckr_run_begin(x, &s, &run, NULL);
		s.id_len = 4;
		s.kind = (ckr_kind)7;
		r->sub[2] = ckr_run_begin(x, &s, &run, NULL);
		t = (ckr_ticket){ .lane = 9999, .pos = 8, .writer = 1 };
		r->sub[3] = ckr_wait(x, &t, CKR_LEVEL_COMMITTED, 0);
		t = (ckr_ticket){ .lane = 0, .pos = 8, .writer = 1 };
		r->sub[4] = ckr_wait(x, &t, (ckr_level)9, 0);
		t.writer = 0;
		r->sub[5] = ckr_wait(x, &t, CKR_LEVEL_COMMITTED, 0);
	}
	if (run_ok(w, c->run)) {
		r->sub[6] = ckr_run_finish(w->runs[c->run], (ckr_outcome)9, NULL, &t);
		r->sub[7] = ckr_run_message(w->runs[c->run], NULL, 5, &t);
	}
	r->sub[8] = ckr_client_attach(w->seg, NULL, NULL);
	ckr_client_opts o = { .max_event_size = UINT32_MAX };
	r->sub[9] = ckr_client_attach(w->seg, &o, &cl);
	if (r->sub[9] == 0)
		ckr_client_detach(cl);
	ckr_claim bad = { .id_len = 0 };
	r->sub[10] = client_ok(w, c->client) ? ckr_run_reopen(w->clients[c->client], &bad, &run)
					     : 1;
	r->sub[11] = ckr_store_claim(NULL, "x", 1, NULL);
}

static void dispatch(worker *w, const as_cmd *c)
{
	as_rep r;
	memset(&r, 0, sizeof r);
	r.op = c->op;
	r.idx = -1;
	switch (c->op) {
	case OP_ATTACH: do_attach(w, c, &r); break;
	case OP_DETACH: do_detach(w, c, &r); break;
	case OP_BEGIN: do_begin(w, c, &r); break;
	case OP_MSG:
	case OP_PHASE: do_push(w, c, &r); break;
	case OP_BURST: do_burst(w, c, &r); return;
	case OP_FINISH: do_finish(w, c, &r); break;
	case OP_CLOSE:
		if (run_ok(w, c->run))
			close_run(w, c->run);
		else
			r.rc = -EBADF;
		break;
	case OP_WAIT: do_wait(w, c, &r); break;
	case OP_STORE_OPEN: do_store_open(w, c, &r); break;
	case OP_STORE_CLOSE:
		if (store_ok(w, c->store)) {
			ckr_store_close(w->stores[c->store]);
			w->stores[c->store] = NULL;
		} else {
			r.rc = -EBADF;
		}
		break;
	case OP_LIST: do_list(w, c, &r); return;
	case OP_GET:
		r.rc = store_ok(w, c->store)
			       ? ckr_store_get(w->stores[c->store], c->id, c->id_len, &r.info)
			       : -EBADF;
		break;
	case OP_CLAIM: do_claim(w, c, &r); break;
	case OP_RESUME:
		do_resume(w, c, &r);
		if (r.n)
			return;
		break;
	case OP_REOPEN: do_reopen(w, c, &r); break;
	case OP_BEGIN_CHECK:
		r.rc = store_ok(w, c->store)
			       ? ckr_store_begin_check(w->stores[c->store], c->id, c->id_len)
			       : -EBADF;
		break;
	case OP_PRUNE:
		r.rc = store_ok(w, c->store)
			       ? ckr_store_prune(w->stores[c->store], c->len, c->len2)
			       : -EBADF;
		break;
	case OP_FORK: do_fork(w, c, &r); break;
	case OP_EXEC: do_exec(w, &r); break;
	case OP_EXIT: do_exit(w, c); break;
	case OP_KILLPUSH: do_killpush(w, c, &r); break;
	case OP_PARKPUSH: do_parkpush(w, c, &r); return;
	case OP_TBURST: do_tburst(w, c, &r); break;
	case OP_EMBED: do_embed(w, c, &r); break;
	case OP_MISUSE: do_misuse(w, c, &r); break;
	default: r.rc = -ENOSYS; break;
	}
	reply(&r, NULL, 0);
}

int main(int argc, char **argv)
{
	static worker w;
	if (argc < 3) {
		fprintf(stderr, "apiseq-worker: started by the apiseq driver only\n");
		return 2;
	}
	w.seg = argv[1];
	w.db = argv[2];
	w.argv = argv;
	signal(SIGPIPE, SIG_IGN);
	as_rep hello = { .op = OP_HELLO, .idx = -1, .pid = getpid() };
	ckr_identity self;
	hello.rc = ckr_proc_self_identity(&self);
	hello.token = self.token;
	hello.nonce = self.nonce;
	reply(&hello, NULL, 0);
	for (;;) {
		as_cmd c;
		if (read_full(AS_CMD_FD, &c, sizeof c))
			_exit(0); /* the driver closed our pipe */
		while (waitpid(-1, NULL, WNOHANG) > 0)
			; /* lingering fork children the driver killed */
		dispatch(&w, &c);
	}
}
