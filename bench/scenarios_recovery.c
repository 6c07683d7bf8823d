/*
 * scenarios_recovery.c — recovery.claim and recovery.claim.single (see
 * scenarios_recovery.h): a host's boot path over N interrupted runs.
 *
 * Set-up (not timed): a flusher process on a fresh segment and store; a
 * producer process begins N single-loop runs (a begin and one 64-byte
 * message each), waits until the last is committed and is SIGKILLed; the
 * flusher drains its lane and ends its identity, so every run is
 * claimable. Timed, as a host's boot does it with the flusher running:
 * open the store, list the interrupted runs, claim them (a first batch of
 * CLAIM_FIRST, so the first run resumes after one small commit, then
 * batches of CLAIM_BATCH with ckr_store_claim_batch; or one ckr_store_claim
 * each for .single) and read each resume state (ckr_store_resume). Reported: runs/s
 * over the whole, the list's time, and the times to the first and to the
 * last resumed run.
 */
#include "scenarios_recovery.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckring.h"
#include "ckring_store.h"
#include "flusher_proc.h"
#include "sys.h"

#define CLAIM_BATCH 1000
#define CLAIM_FIRST 64 /* the first batch: the first run resumes sooner */
#define MSG_SIZE 64

/* ---- set-up: N interrupted runs ---- */

static int begin_one(ckr_client *c, uint64_t i, ckr_ticket *t)
{
	char id[32];
	uint8_t msg[MSG_SIZE];
	int n = snprintf(id, sizeof id, "boot-%08llu", (unsigned long long)i);
	ckr_run_spec s = { .id = id, .id_len = (size_t)n, .kind = CKR_KIND_SINGLE_LOOP,
			   .label = "ckring-bench" };
	ckr_run *r;
	int rc;
	/* A full ring or all writer slots pending: the flusher frees them. */
	while ((rc = ckr_run_begin(c, &s, &r, NULL)) == -EAGAIN || rc == CKR_ESLOTS)
		sched_yield();
	if (rc)
		return rc;
	fl_payload(msg, sizeof msg, i);
	while ((rc = ckr_run_message(r, msg, sizeof msg, t)) == -EAGAIN)
		sched_yield();
	ckr_run_close(r); /* left running: interrupted once we die */
	return rc;
}

/* The producer process: begin n runs, wait for the last commit, report on
 * fd, then wait to be killed. */
static void producer_main(const char *seg, uint64_t n, int fd)
{
	ckr_client *c;
	ckr_ticket t = { 0 };
	int rc = ckr_client_attach(seg, NULL, &c);
	for (uint64_t i = 0; rc == 0 && i < n; i++)
		rc = begin_one(c, i, &t);
	if (rc == 0)
		rc = ckr_wait(c, &t, CKR_LEVEL_COMMITTED, BENCH_TIMEOUT_S * 1000);
	if (write(fd, &rc, sizeof rc) != (ssize_t)sizeof rc)
		_exit(1);
	pause();
	_exit(0);
}

/* Wait (bounded) until n runs are listed interrupted with their owner
 * ended (a claim would succeed). */
static int wait_claimable(const char *dir, uint64_t n)
{
	struct timespec step = { 0, 10000000 };
	uint64_t end = bench_mono_ns(CLOCK_MONOTONIC) + (uint64_t)BENCH_TIMEOUT_S * 1000000000u;
	ckr_store_opts o = { .read_only = true };
	for (;;) {
		ckr_store *s;
		ckr_run_info *v = NULL;
		size_t k = 0, ready = 0;
		int rc = ckr_store_open(dir, &o, &s);
		if (rc == 0) {
			rc = ckr_store_list(s, CKR_LIST_INTERRUPTED, &v, &k);
			ckr_store_close(s);
		}
		for (size_t i = 0; rc == 0 && i < k; i++)
			ready += v[i].owner_drained;
		free(v);
		if (rc)
			return rc;
		if (ready == n)
			return 0;
		if (bench_mono_ns(CLOCK_MONOTONIC) > end)
			return -ETIMEDOUT;
		nanosleep(&step, NULL); /* polling the store: the flusher's E1 */
	}
}

static int make_interrupted(bench *b, const fl_proc *fp, uint64_t n)
{
	int p[2];
	if (pipe(p))
		return bench_fail(b, "recovery.claim: pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		producer_main(fp->seg, n, p[1]);
	}
	close(p[1]);
	int rc = pid < 0 ? -errno : 0, prc = -EIO;
	if (rc == 0 && read(p[0], &prc, sizeof prc) != (ssize_t)sizeof prc)
		prc = -EIO;
	close(p[0]);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (rc == 0)
		rc = prc;
	if (rc == 0)
		rc = wait_claimable(fp->dir, n);
	return rc ? bench_fail(b, "recovery.claim: %llu interrupted runs: %s",
			       (unsigned long long)n, ckr_strerror(rc)) : 0;
}

/* ---- timed: the boot path ---- */

typedef struct boot_times {
	uint64_t list_ns, first_ns, last_ns;
	uint64_t resumed;
} boot_times;

static int resume_one(ckr_store *s, const ckr_claim *cl, boot_times *t, uint64_t t0)
{
	ckr_resume *rs;
	int rc = ckr_store_resume(s, cl->id, cl->id_len, &rs);
	if (rc)
		return rc;
	ckr_resume_free(rs);
	if (t->resumed++ == 0)
		t->first_ns = bench_mono_ns(CLOCK_MONOTONIC) - t0;
	return 0;
}

static int claim_chunk(ckr_store *s, const ckr_run_info *runs, size_t n, bool single,
		       ckr_claim *cl, int *res, boot_times *t, uint64_t t0)
{
	if (single) { /* each run resumed once its own claim committed */
		for (size_t i = 0; i < n; i++) {
			int rc = ckr_store_claim(s, runs[i].id, runs[i].id_len, &cl[i]);
			if (rc == 0)
				rc = resume_one(s, &cl[i], t, t0);
			if (rc)
				return rc;
		}
		return 0;
	}
	int rc = ckr_store_claim_batch(s, runs, n, cl, res);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		rc = res[i] ? res[i] : resume_one(s, &cl[i], t, t0);
		if (rc)
			return rc;
	}
	return 0;
}

static int boot(const char *dir, bool single, boot_times *t)
{
	uint64_t t0 = bench_mono_ns(CLOCK_MONOTONIC);
	ckr_store *s;
	ckr_run_info *runs = NULL;
	size_t n = 0;
	ckr_claim *cl = calloc(CLAIM_BATCH, sizeof *cl);
	int *res = calloc(CLAIM_BATCH, sizeof *res);
	int rc = cl && res ? ckr_store_open(dir, NULL, &s) : -ENOMEM;
	if (rc == 0) {
		rc = ckr_store_list(s, CKR_LIST_INTERRUPTED, &runs, &n);
		t->list_ns = bench_mono_ns(CLOCK_MONOTONIC) - t0;
		for (size_t i = 0, k; rc == 0 && i < n; i += k) {
			size_t want = i == 0 ? CLAIM_FIRST : CLAIM_BATCH;
			k = n - i < want ? n - i : want;
			rc = claim_chunk(s, runs + i, k, single, cl, res, t, t0);
		}
		ckr_store_close(s);
	}
	t->last_ns = bench_mono_ns(CLOCK_MONOTONIC) - t0;
	free(runs);
	free(cl);
	free(res);
	return rc;
}

int bench_recovery(bench *b, uint64_t n, bool single)
{
	const char *name = single ? "recovery.claim.single" : "recovery.claim";
	result *r = bench_new_result(b, name, MSG_SIZE, 1, 1);
	fl_proc fp;
	if (!r)
		return bench_fail(b, "too many results");
	if (fl_proc_start(b, "recovery", &fp))
		return -1;
	boot_times t = { 0 };
	int rc = make_interrupted(b, &fp, n);
	if (rc == 0 && (rc = boot(fp.dir, single, &t)) != 0)
		bench_fail(b, "%s: %llu runs: %s", name, (unsigned long long)n, ckr_strerror(rc));
	fl_proc_stop(&fp);
	if (rc)
		return -1;
	if (t.resumed != n)
		return bench_fail(b, "%s: %llu of %llu runs resumed", name,
				  (unsigned long long)t.resumed, (unsigned long long)n);
	r->runs = n;
	r->list_ns = (double)t.list_ns;
	r->first_ns = (double)t.first_ns;
	r->last_ns = (double)t.last_ns;
	r->ops_per_s = t.last_ns ? (double)n * 1e9 / (double)t.last_ns : 0;
	r->no_latency = true;
	r->latency_of = "none";
	r->mode = single ? "serial, one claim a transaction" : "serial, claims in batches";
	if (!single)
		r->batch = CLAIM_BATCH;
	snprintf(r->note, sizeof r->note, "%llu runs: listed in %.1f ms, first resumed at "
		 "%.1f ms, last at %.1f ms (flusher running)", (unsigned long long)n,
		 r->list_ns / 1e6, r->first_ns / 1e6, r->last_ns / 1e6);
	return 0;
}
