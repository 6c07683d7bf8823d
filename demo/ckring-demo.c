/*
 * ckring-demo — the whole recovery story, end to end, narrated (`make demo`).
 *
 *   1. a fresh segment and store; the flusher starts (the real ckring-flusher
 *      binary next to this one, exec'd as a child process);
 *   2. three executor processes (A, B, C) run single-loop runs (a transcript
 *      of messages) and multi-phase runs (plan, research, draft, review);
 *   3. crash: executor B is SIGKILLed in the middle of its runs, then the
 *      flusher is SIGKILLed too;
 *   4. A and C keep pushing with no flusher at all: pushes never block, the
 *      events wait in shared memory;
 *   5. the flusher restarts, resumes from its persisted cursors and drains;
 *   6. A completes two runs and fails one; C completes one and leaves one
 *      RUNNING because the host shuts down (LEAVE_RUNNING);
 *   7. host boot: a new host process (D) lists the interrupted runs, claims
 *      each, loads its resume state, and (8.) reopens them itself — only
 *      the claimer may reopen a claim — and finishes them;
 *   8. verification: every push that returned OK (recorded by the executors
 *      in a MAP_SHARED table created before fork, written right after each
 *      accepted push) is looked up in the store; "events lost" is that count.
 *
 * Synchronisation is by events only: each child has a command pipe (the demo
 * writes one byte per stage) and a report pipe (narration lines, then "@done"
 * or "@fail ..."). The only polls are bounded waits for a condition the
 * flusher makes true (its slot claimed, the ring drained, a claim no longer
 * CKR_ENOTDRAINED), every 10 ms up to a bound.
 *
 * Exit status: 0 when the story completed and 0 events were lost; 1
 * otherwise (with the reason); 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckring_store.h"

#define PROG "ckring-demo"
#define LABEL "demo-agent/1.4.2"
#define N_EXEC 3              /* A, B, C; D is the recovery executor */
#define EXEC_D 3
#define MAX_SEQ 64
#define WATCHDOG_S 60
#define POLL_MS 10
#define COMMIT_WAIT_MS 10000  /* bound of every wait for a commit */
#define COMMIT_WAIT_TEXT "10 s"

/* ------------------------------------------------------------------ */
/* the script                                                          */
/* ------------------------------------------------------------------ */

typedef enum finish {
	FIN_COMPLETE,  /* completes in stage 3 */
	FIN_FAIL,      /* fails in stage 3 (a model error) */
	FIN_SHUTDOWN,  /* host shutdown in stage 3: LEAVE_RUNNING, recovered */
	FIN_KILLED,    /* its executor is SIGKILLed after stage 1, recovered */
} finish;

typedef struct run_plan {
	const char *id;
	ckr_kind kind;
	int exec;       /* 0 A, 1 B, 2 C */
	int total;      /* turns (single-loop) or phases (multi-phase) */
	int upto[3];    /* items done by the end of stage 1, 2, 3 */
	finish fin;
} run_plan;

static const run_plan plans[] = {
	{ "A1-chat", CKR_KIND_SINGLE_LOOP, 0, 8, { 4, 8, 8 }, FIN_COMPLETE },
	{ "A2-report", CKR_KIND_MULTI_PHASE, 0, 4, { 2, 4, 4 }, FIN_COMPLETE },
	{ "A3-chat", CKR_KIND_SINGLE_LOOP, 0, 8, { 3, 5, 5 }, FIN_FAIL },
	{ "B1-chat", CKR_KIND_SINGLE_LOOP, 1, 12, { 7, 7, 7 }, FIN_KILLED },
	{ "B2-report", CKR_KIND_MULTI_PHASE, 1, 4, { 2, 2, 2 }, FIN_KILLED },
	{ "C1-chat", CKR_KIND_SINGLE_LOOP, 2, 10, { 4, 6, 6 }, FIN_SHUTDOWN },
	{ "C2-report", CKR_KIND_MULTI_PHASE, 2, 4, { 1, 3, 4 }, FIN_COMPLETE },
};
#define N_RUNS ((int)(sizeof plans / sizeof plans[0]))

static const char FAIL_TEXT[] = "model error: 429 rate limited (retries exhausted)";

static const char *const chat_lines[] = {
	"user: checkout is returning 502s since the last deploy",
	"assistant: looking at the deploy log and the error rate",
	"user: anything in the logs?",
	"assistant: upstream timeouts to the payment gateway since 09:12",
	"user: did the gateway config change?",
	"assistant: yes: its connection pool went from 64 to 8",
	"user: roll it back on one canary first",
	"assistant: canary rolled back; its 502s dropped to zero",
	"user: roll back the rest",
	"assistant: done; the error rate is back to baseline",
	"user: write a short incident note",
	"assistant: incident note drafted and linked in the ticket",
};

static const char *const phase_names[] = { "plan", "research", "draft", "review" };
static const char *const phase_out[] = {
	"outline: context, findings, recommendation",
	"14 sources read, 5 cited; p99 latency up 38%",
	"draft v1: 1840 words, 3 figures",
	"2 factual fixes, tone ok: approved",
};

static const char exec_name[] = "ABCD";

/* Message `turn` (1-based) of run i. @return its length. */
static size_t msg_text(int i, int turn, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "turn %d: %s", turn,
			 chat_lines[(turn - 1 + 2 * i) % 12]);
	return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* The output of phase `index` (0-based) of run i. @return its length. */
static size_t phase_text(int i, int index, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s of %s: %s", phase_names[index], plans[i].id,
			 phase_out[index]);
	return (size_t)n < cap ? (size_t)n : cap - 1;
}

static bool is_multi(int i)
{
	return plans[i].kind == CKR_KIND_MULTI_PHASE;
}

/* ------------------------------------------------------------------ */
/* the shared table: what every executor was told was accepted          */
/* ------------------------------------------------------------------ */

typedef struct run_track {
	_Atomic uint8_t acked[MAX_SEQ]; /* item (1-based) whose push returned 0 */
	_Atomic uint8_t begun;          /* the begin push returned 0 */
	_Atomic uint8_t finished;       /* a complete/fail push returned 0 */
	_Atomic uint32_t progress;      /* items done */
	_Atomic uint32_t checked;       /* verifications against the store */
	_Atomic uint32_t found;         /* acked items found, right content */
	_Atomic uint32_t missing;       /* acked items not found */
	uint32_t resumed_at;            /* recovered: items in the resume state */
	uint32_t incarnation;           /* recovered: the claim's incarnation */
	uint32_t attempts;
	uint64_t waited_ms;             /* recovered: waited for the drain */
} run_track;

typedef struct demo_shared {
	run_track run[N_RUNS];
} demo_shared;

/* ------------------------------------------------------------------ */
/* the demo's own state                                                */
/* ------------------------------------------------------------------ */

typedef struct child {
	pid_t pid;
	int cmd_fd;   /* parent → child: one byte per stage */
	FILE *rep;    /* child → parent: narration lines */
} child;

typedef struct demo {
	const char *segment;
	char db[PATH_MAX];
	bool keep;
	char flusher_path[PATH_MAX]; /* "" = run the engine in a forked child */
	pid_t flusher;
	int flusher_no;
	ckr_observer *view;          /* read-only, for the narration */
	bool created;                /* we made the segment: we remove it */
	demo_shared *sh;
	child ex[N_EXEC + 1];
	ckr_claim claims[N_RUNS];
	int claim_run[N_RUNS];
	int n_claims;
	uint64_t t0;
	uint64_t drained_after_restart;
	int recovered;               /* set by the verification */
} demo;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void section(const char *title)
{
	printf("\n== %s\n", title);
	fflush(stdout);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("   ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
}

/* The watchdog: the demo must never hang. Children die with us
 * (PR_SET_PDEATHSIG). */
static void on_alarm(int sig)
{
	static const char msg[] = "\n" PROG ": FAILED: timed out (watchdog)\n";
	(void)sig;
	ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
	(void)w;
	_exit(1);
}

/* ------------------------------------------------------------------ */
/* child processes                                                     */
/* ------------------------------------------------------------------ */

/* In a new child: die with the demo, drop the other children's pipes. */
static void child_setup(const demo *d, pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1); /* the demo died before the prctl */
	for (int j = 0; j <= N_EXEC; j++) {
		if (d->ex[j].pid > 0) {
			close(d->ex[j].cmd_fd);
			close(fileno(d->ex[j].rep));
		}
	}
}

typedef int (*child_fn)(demo *d, int who, int cmd_fd, int rep_fd);

/* Fork child `who` running fn with its two pipes. @return 0 or -errno. */
static int spawn(demo *d, int who, child_fn fn)
{
	int cmd[2], rep[2];
	pid_t parent = getpid();
	if (pipe2(cmd, O_CLOEXEC) != 0)
		return -errno;
	if (pipe2(rep, O_CLOEXEC) != 0) {
		close(cmd[0]);
		close(cmd[1]);
		return -errno;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		child_setup(d, parent);
		close(cmd[1]);
		close(rep[0]);
		_exit(fn(d, who, cmd[0], rep[1]));
	}
	close(cmd[0]);
	close(rep[1]);
	d->ex[who] = (child){ .pid = pid, .cmd_fd = cmd[1], .rep = fdopen(rep[0], "r") };
	return d->ex[who].rep ? 0 : -ENOMEM;
}

/* Tell child who to run its next stage. */
static int go(demo *d, int who)
{
	char c = 'g';
	return write(d->ex[who].cmd_fd, &c, 1) == 1 ? 0 : -errno;
}

/* Print child who's report lines up to "@done". @return 0; -1 it failed
 * or died (said why). */
static int collect(demo *d, int who)
{
	char line[512];
	while (fgets(line, sizeof line, d->ex[who].rep)) {
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, "@done") == 0)
			return 0;
		if (strncmp(line, "@fail ", 6) == 0) {
			fflush(stdout);
			fprintf(stderr, PROG ": executor %c failed: %s\n", exec_name[who],
				line + 6);
			return -1;
		}
		printf("   [%c] %s\n", exec_name[who], line);
	}
	fflush(stdout);
	fprintf(stderr, PROG ": executor %c (pid %d) ended unexpectedly\n",
		exec_name[who], (int)d->ex[who].pid);
	return -1;
}

/* Reap child who. @return its exit status (128+sig if killed). */
static int reap(demo *d, int who)
{
	int st = 0;
	if (d->ex[who].pid <= 0)
		return 0;
	while (waitpid(d->ex[who].pid, &st, 0) < 0 && errno == EINTR)
		;
	d->ex[who].pid = 0;
	close(d->ex[who].cmd_fd);
	fclose(d->ex[who].rep);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------------ */
/* executor side: reporting                                            */
/* ------------------------------------------------------------------ */

typedef struct exec_ctx {
	demo *d;
	int who;
	int cmd_fd, rep_fd;
	ckr_client *c;
	ckr_store *store;            /* read-only, for verification */
	ckr_run *run[N_RUNS];
	ckr_ticket last[N_RUNS];     /* the ticket of the run's last push */
	bool has_last[N_RUNS];
} exec_ctx;

static void say(exec_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(exec_ctx *x, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	ssize_t w = write(x->rep_fd, buf, (size_t)n); /* one line, one write */
	(void)w;
}

static int xfail(exec_ctx *x, const char *what, int i, int rc)
{
	say(x, "@fail %s%s%s: %s", what, i >= 0 ? " " : "", i >= 0 ? plans[i].id : "",
	    ckr_strerror(rc));
	return 1;
}

/* Wait for the demo's next "go". @return false on EOF (the demo is gone). */
static bool wait_go(exec_ctx *x)
{
	char c;
	ssize_t n;
	while ((n = read(x->cmd_fd, &c, 1)) < 0 && errno == EINTR)
		;
	return n == 1;
}

/* ------------------------------------------------------------------ */
/* executor side: pushing                                              */
/* ------------------------------------------------------------------ */

/* One push of item (1-based) of run i; on a full ring, wait for the
 * flusher (bounded) and retry. Records the accepted push in the table. */
static int push_item(exec_ctx *x, int i, int item)
{
	char buf[256];
	ckr_ticket t;
	ckr_run *r = x->run[i];
	uint64_t seq = ckr_run_next_seq(r);
	int rc;
	for (int tries = 0;; tries++) {
		if (is_multi(i)) {
			size_t n = phase_text(i, item - 1, buf, sizeof buf);
			rc = ckr_run_phase(r, (uint32_t)(item - 1), phase_names[item - 1], buf,
					   n, &t);
		} else {
			rc = ckr_run_message(r, buf, msg_text(i, item, buf, sizeof buf), &t);
		}
		if (rc != -EAGAIN || tries == 20 || !x->has_last[i])
			break;
		ckr_wait(x->c, &x->last[i], CKR_LEVEL_COMMITTED, 100);
	}
	if (rc)
		return rc;
	if (seq >= MAX_SEQ || ckr_run_next_seq(r) != seq + 1)
		return -ERANGE;
	/* release: the table is read by other processes after we die. */
	atomic_store_explicit(&x->d->sh->run[i].acked[seq], (uint8_t)item,
			      memory_order_release);
	atomic_fetch_add_explicit(&x->d->sh->run[i].progress, 1, memory_order_release);
	x->last[i] = t;
	x->has_last[i] = true;
	return 0;
}

static int begin_run(exec_ctx *x, int i)
{
	ckr_run_spec spec = {
		.id = plans[i].id,
		.id_len = strlen(plans[i].id),
		.kind = plans[i].kind,
		.label = LABEL,
	};
	int rc = ckr_run_begin(x->c, &spec, &x->run[i], &x->last[i]);
	if (rc)
		return rc;
	x->has_last[i] = true;
	atomic_store_explicit(&x->d->sh->run[i].begun, 1, memory_order_release);
	return 0;
}

/* "turns 5-8" or "phases draft, review" for items (from, to]. */
static void items_text(int i, int from, int to, char *buf, size_t cap)
{
	size_t n;
	if (!is_multi(i)) {
		if (to - from == 1)
			snprintf(buf, cap, "turn %d", to);
		else
			snprintf(buf, cap, "turns %d-%d", from + 1, to);
		return;
	}
	n = (size_t)snprintf(buf, cap, "phase%s", to - from > 1 ? "s" : "");
	for (int k = from; k < to && n < cap; k++)
		n += (size_t)snprintf(buf + n, cap - n, "%s %s", k > from ? "," : "",
				      phase_names[k]);
}

/* Push round-robin, one item per run per round, until every run of this
 * executor reached its target for the stage; then narrate per run. */
static int advance(exec_ctx *x, const int *target, bool flusher_down)
{
	int from[N_RUNS];
	bool more = true;
	for (int i = 0; i < N_RUNS; i++)
		from[i] = (int)atomic_load(&x->d->sh->run[i].progress);
	while (more) {
		more = false;
		for (int i = 0; i < N_RUNS; i++) {
			int done = (int)atomic_load(&x->d->sh->run[i].progress);
			if (target[i] <= done)
				continue;
			int rc = push_item(x, i, done + 1);
			if (rc)
				return xfail(x, "push", i, rc);
			more = true;
		}
	}
	for (int i = 0; i < N_RUNS; i++) {
		char what[128];
		if (target[i] <= from[i])
			continue;
		items_text(i, from[i], target[i], what, sizeof what);
		say(x, "%-9s %s appended, seq up to %" PRIu64 "%s", plans[i].id, what,
		    ckr_run_next_seq(x->run[i]) - 1,
		    flusher_down ? " (in the ring only: accepted at once)" : "");
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* verification against the store                                      */
/* ------------------------------------------------------------------ */

/* Is the item acked at seq in the resume state, with the right content? */
static bool blob_ok(int i, const ckr_resume *rs, uint64_t seq, int item)
{
	char want[256];
	const ckr_blob *b = is_multi(i) ? rs->phases : rs->history;
	size_t n = is_multi(i) ? rs->n_phases : rs->n_history;
	size_t len = is_multi(i) ? phase_text(i, item - 1, want, sizeof want)
				 : msg_text(i, item, want, sizeof want);
	for (size_t k = 0; k < n; k++) {
		if (b[k].seq != seq)
			continue;
		if (is_multi(i) && (b[k].index != (uint32_t)(item - 1) || !b[k].name ||
				    strcmp(b[k].name, phase_names[item - 1]) != 0))
			return false;
		return b[k].size == len && memcmp(b[k].data, want, len) == 0;
	}
	return false;
}

/* Look every acked item of run i up in the store; record found/missing.
 * @return 0, or a store error. */
static int verify_run(ckr_store *st, demo_shared *sh, int i, uint32_t *found,
		      uint32_t *missing)
{
	ckr_resume *rs;
	run_track *t = &sh->run[i];
	int rc = ckr_store_resume(st, plans[i].id, strlen(plans[i].id), &rs);
	if (rc)
		return rc;
	*found = *missing = 0;
	for (uint64_t seq = 0; seq < MAX_SEQ; seq++) {
		int item = atomic_load_explicit(&t->acked[seq], memory_order_acquire);
		if (!item)
			continue;
		if (blob_ok(i, rs, seq, item))
			(*found)++;
		else
			(*missing)++;
	}
	ckr_resume_free(rs);
	atomic_store(&t->found, *found);
	atomic_store(&t->missing, *missing);
	atomic_fetch_add(&t->checked, 1);
	return 0;
}

/* Wait until run i's last push is committed, then verify it. */
static int commit_and_verify(exec_ctx *x, int i, uint32_t *found, uint32_t *missing)
{
	int rc = ckr_wait(x->c, &x->last[i], CKR_LEVEL_COMMITTED, COMMIT_WAIT_MS);
	if (rc)
		return rc;
	if (!x->store) {
		ckr_store_opts so = { .read_only = true };
		rc = ckr_store_open(x->d->db, &so, &x->store);
		if (rc)
			return rc;
	}
	return verify_run(x->store, x->d->sh, i, found, missing);
}

/* ------------------------------------------------------------------ */
/* executor side: finishing                                            */
/* ------------------------------------------------------------------ */

/* Push run i's terminal event and wait until it is committed.
 * @return 0; -ETIME the wait timed out (told apart from the push's own
 * errors); the errors of ckr_run_finish() and ckr_wait(). */
static int finish_push(exec_ctx *x, int i, ckr_outcome out, const char *err)
{
	ckr_ticket t;
	int rc = ckr_run_finish(x->run[i], out, err, &t);
	if (rc)
		return rc;
	atomic_store_explicit(&x->d->sh->run[i].finished, 1, memory_order_release);
	rc = ckr_wait(x->c, &t, CKR_LEVEL_COMMITTED, COMMIT_WAIT_MS);
	return rc == -ETIMEDOUT ? -ETIME : rc;
}

static int complete_run(exec_ctx *x, int i)
{
	uint32_t found, missing;
	int rc = commit_and_verify(x, i, &found, &missing);
	if (rc == -ETIMEDOUT)
		return xfail(x, "waiting " COMMIT_WAIT_TEXT " for the flusher to commit "
			     "the last event of", i, rc);
	if (rc)
		return xfail(x, "verify", i, rc);
	rc = finish_push(x, i, ckr_classify_outcome(false, CKR_CAUSE_NONE), NULL);
	if (rc == -ETIME)
		return xfail(x, "waiting " COMMIT_WAIT_TEXT " for the flusher to commit "
			     "the complete event of", i, -ETIMEDOUT);
	if (rc)
		return xfail(x, "complete", i, rc);
	say(x, "%-9s COMPLETE: first checked its %" PRIu32 " accepted %s in the store "
	    "(%" PRIu32 " found, %" PRIu32 " missing); record and events cleared",
	    plans[i].id, found + missing, is_multi(i) ? "phases" : "messages", found,
	    missing);
	return 0;
}

static int fail_run(exec_ctx *x, int i)
{
	ckr_outcome out = ckr_classify_outcome(true, CKR_CAUSE_NONE);
	int rc = finish_push(x, i, out, FAIL_TEXT);
	if (rc == -ETIME)
		return xfail(x, "waiting " COMMIT_WAIT_TEXT " for the flusher to commit "
			     "the fail event of", i, -ETIMEDOUT);
	if (rc)
		return xfail(x, "fail", i, rc);
	say(x, "%-9s \"%s\" -> classify = FAIL: terminal, kept with its error",
	    plans[i].id, FAIL_TEXT);
	return 0;
}

static int leave_run(exec_ctx *x, int i)
{
	ckr_outcome out = ckr_classify_outcome(true, CKR_CAUSE_SHUTDOWN);
	int rc = ckr_run_finish(x->run[i], out, NULL, NULL);
	if (rc)
		return xfail(x, "leave", i, rc);
	say(x, "%-9s host shutdown -> classify = %s: no terminal event, stays RUNNING "
	    "for boot recovery", plans[i].id,
	    out == CKR_OUTCOME_LEAVE_RUNNING ? "LEAVE_RUNNING" : "?");
	return out == CKR_OUTCOME_LEAVE_RUNNING ? 0 : xfail(x, "classify", i, -EINVAL);
}

static int finish_runs(exec_ctx *x)
{
	for (int i = 0; i < N_RUNS; i++) {
		if (plans[i].exec != x->who)
			continue;
		int rc = plans[i].fin == FIN_COMPLETE ? complete_run(x, i)
			 : plans[i].fin == FIN_FAIL   ? fail_run(x, i)
			 : plans[i].fin == FIN_SHUTDOWN ? leave_run(x, i)
						       : 0;
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* executor processes A, B, C                                          */
/* ------------------------------------------------------------------ */

static int stage(exec_ctx *x, int s)
{
	int target[N_RUNS];
	for (int i = 0; i < N_RUNS; i++) {
		target[i] = 0;
		if (plans[i].exec != x->who)
			continue;
		target[i] = plans[i].upto[s - 1];
		int rc = s == 1 ? begin_run(x, i) : 0;
		if (rc)
			return xfail(x, "begin", i, rc);
	}
	int rc = advance(x, target, s == 2);
	if (rc == 0 && s == 3)
		rc = finish_runs(x);
	return rc;
}

/* What B is doing when it is killed. */
static void say_midflight(exec_ctx *x)
{
	for (int i = 0; i < N_RUNS; i++) {
		if (plans[i].exec != x->who)
			continue;
		int next = plans[i].upto[0] + 1;
		if (is_multi(i))
			say(x, "%-9s now waiting on a long model call in phase %d \"%s\"",
			    plans[i].id, next, phase_names[next - 1]);
		else
			say(x, "%-9s now generating turn %d of %d", plans[i].id, next,
			    plans[i].total);
	}
}

static int executor(demo *d, int who, int cmd_fd, int rep_fd)
{
	exec_ctx x = { .d = d, .who = who, .cmd_fd = cmd_fd, .rep_fd = rep_fd };
	int rc = ckr_client_attach(d->segment, NULL, &x.c);
	if (rc)
		return xfail(&x, "attach", -1, rc);
	say(&x, "pid %d attached: lane %" PRIu32 " is this process's own", (int)getpid(),
	    ckr_client_lane(x.c));
	say(&x, "@done");
	for (int s = 1; s <= 3; s++) {
		if (!wait_go(&x))
			return 1;
		if (stage(&x, s))
			return 1;
		if (who == 1)
			say_midflight(&x);
		say(&x, "@done");
	}
	for (int i = 0; i < N_RUNS; i++)
		ckr_run_close(x.run[i]);
	ckr_store_close(x.store);
	ckr_client_detach(x.c);
	return 0;
}

/* ------------------------------------------------------------------ */
/* executor D: continues the recovered runs                             */
/* ------------------------------------------------------------------ */

static int host_boot(demo *d);

static int recover_one(exec_ctx *x, const ckr_claim *cl, int i)
{
	run_track *t = &x->d->sh->run[i];
	int rc = ckr_run_reopen(x->c, cl, &x->run[i]);
	if (rc)
		return xfail(x, "reopen", i, rc);
	int from = (int)t->resumed_at, target[N_RUNS] = { 0 };
	atomic_store(&t->progress, (uint32_t)from);
	target[i] = plans[i].total;
	say(x, "%-9s reopened (same record, incarnation %" PRIu32 ", next seq %" PRIu64
	    ")", plans[i].id, cl->incarnation, cl->next_seq);
	rc = advance(x, target, false);
	if (rc)
		return rc;
	return complete_run(x, i);
}

static int recovery_executor(demo *d, int who, int cmd_fd, int rep_fd)
{
	exec_ctx x = { .d = d, .who = who, .cmd_fd = cmd_fd, .rep_fd = rep_fd };
	if (host_boot(d) != 0) {
		say(&x, "@fail host boot");
		return 1;
	}
	section("8. the same host process continues the recovered runs");
	int rc = ckr_client_attach(d->segment, NULL, &x.c);
	if (rc)
		return xfail(&x, "attach", -1, rc);
	say(&x, "pid %d attached: lane %" PRIu32, (int)getpid(), ckr_client_lane(x.c));
	for (int k = 0; k < d->n_claims; k++)
		if (recover_one(&x, &d->claims[k], d->claim_run[k]))
			return 1;
	for (int i = 0; i < N_RUNS; i++)
		ckr_run_close(x.run[i]);
	ckr_store_close(x.store);
	ckr_client_detach(x.c);
	say(&x, "@done");
	return 0;
}

/* ------------------------------------------------------------------ */
/* the flusher                                                         */
/* ------------------------------------------------------------------ */

static volatile sig_atomic_t engine_stop; /* the in-process engine's stop flag */

static void on_engine_stop(int sig)
{
	(void)sig;
	engine_stop = 1;
}

/* Fallback when no ckring-flusher binary sits next to us: the same engine
 * in a forked child. */
static int run_engine(const demo *d)
{
	struct sigaction sa = { .sa_handler = on_engine_stop };
	ckr_flusher_opts o = { .segment = d->segment, .db_dir = d->db,
			       .sync = CKR_SYNC_ALWAYS, .seg = { .group = (gid_t)-1 } };
	ckr_flusher *f;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	int rc = ckr_flusher_open(&o, &f);
	if (rc) {
		fprintf(stderr, PROG ": flusher: %s\n", ckr_strerror(rc));
		return 1;
	}
	rc = ckr_flusher_run(f, (const volatile int *)&engine_stop);
	ckr_flusher_close(f);
	return rc ? 1 : 0;
}

static void exec_flusher(const demo *d)
{
	char *argv[] = { (char *)d->flusher_path, "--segment", (char *)d->segment, "--db",
			 (char *)d->db, NULL };
	int null = open("/dev/null", O_WRONLY);
	if (null >= 0)
		dup2(null, STDOUT_FILENO);
	signal(SIGPIPE, SIG_DFL);
	execv(d->flusher_path, argv);
	fprintf(stderr, PROG ": exec %s: %s\n", d->flusher_path, strerror(errno));
	_exit(127);
}

/* Is the segment's flusher slot held by a live process with this pid? */
static bool flusher_serving(const demo *d, pid_t pid)
{
	ckr_segment_info in;
	ckr_observer_snapshot(d->view, &in, NULL, 0);
	return in.flusher_alive && in.flusher_pid == (uint32_t)pid;
}

/* Start flusher #n and wait (bounded) until it serves the segment. */
static int start_flusher(demo *d)
{
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		child_setup(d, parent);
		if (d->flusher_path[0])
			exec_flusher(d);
		_exit(run_engine(d));
	}
	d->flusher = pid;
	d->flusher_no++;
	for (uint64_t t = now_ms(); !flusher_serving(d, pid); ) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			d->flusher = 0;
			return -ECHILD;
		}
		if (now_ms() - t > 10000)
			return -ETIMEDOUT;
		struct timespec ts = { 0, POLL_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* Signal the flusher and reap it. @return its exit status (128+sig). */
static int stop_flusher(demo *d, int sig)
{
	int st = 0;
	if (d->flusher <= 0)
		return 0;
	kill(d->flusher, sig);
	while (waitpid(d->flusher, &st, 0) < 0 && errno == EINTR)
		;
	d->flusher = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------------ */
/* the ring, as the narration shows it                                  */
/* ------------------------------------------------------------------ */

/* Sealed records and bytes between head and tail of every lane. */
static void ring_lag(const demo *d, uint64_t *records, uint64_t *bytes)
{
	ckr_segment_info in;
	ckr_observer_snapshot(d->view, &in, NULL, 0);
	*records = in.lag_records;
	*bytes = in.lag_bytes;
}

/* Wait (bounded) until the flusher drained every lane. */
static int wait_drained(const demo *d, uint64_t bound_ms)
{
	uint64_t r, b, t = now_ms();
	for (ring_lag(d, &r, &b); b != 0; ring_lag(d, &r, &b)) {
		if (now_ms() - t > bound_ms)
			return -ETIMEDOUT;
		struct timespec ts = { 0, POLL_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* setup                                                               */
/* ------------------------------------------------------------------ */

/* Remove the LMDB files of a previous demo in dir (nothing else), or make
 * the directory. @return 0 or -errno. */
static int fresh_db(const char *dir)
{
	char path[PATH_MAX + 16];
	struct stat st;
	if (stat(dir, &st) != 0)
		return mkdir(dir, 0700) == 0 ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	static const char *const files[] = { "data.mdb", "lock.mdb" };
	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[k]);
		if (unlink(path) != 0 && errno != ENOENT)
			return -errno;
	}
	return 0;
}

/* Two demos on one segment would unlink each other's: hold an exclusive
 * lock for the segment name while we run (released when we exit). */
static int lock_segment_name(const demo *d)
{
	char path[PATH_MAX];
	const char *tmp = getenv("TMPDIR");
	snprintf(path, sizeof path, "%s/.ckring-demo-%s.lock", tmp && *tmp ? tmp : "/tmp",
		 d->segment);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return 0; /* no lock file possible: best effort, the check below */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		fprintf(stderr, PROG ": another ckring-demo uses segment '%s'; choose "
			"another with --segment\n", d->segment);
		close(fd);
		return -EBUSY;
	}
	return 0; /* fd stays open (and locked) until we exit */
}

/* A fresh segment: refuse to take over one a live flusher serves. */
static int fresh_segment(demo *d)
{
	ckr_observer *old;
	int rc = lock_segment_name(d);
	if (rc)
		return rc;
	rc = ckr_observer_open(d->segment, &old);
	if (rc == 0) {
		ckr_segment_info in;
		ckr_observer_snapshot(old, &in, NULL, 0);
		ckr_observer_close(old);
		if (in.flusher_alive) {
			fprintf(stderr, PROG ": segment '%s' is served by a live flusher "
				"(pid %" PRIu32 "); choose another with --segment\n",
				d->segment, in.flusher_pid);
			return -EBUSY;
		}
	}
	rc = ckr_segment_unlink(d->segment);
	if (rc && rc != -ENOENT)
		return rc;
	ckr_segment_opts so = { .size = 1 << 20, .lanes = 8, .group = (gid_t)-1 };
	rc = ckr_segment_create(d->segment, &so);
	d->created = rc == 0;
	if (rc == 0)
		rc = ckr_observer_open(d->segment, &d->view);
	return rc;
}

/* ckring-flusher next to this binary, if there is one. */
static void find_flusher(demo *d)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	d->flusher_path[0] = '\0';
	if (n <= 0)
		return;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (!slash)
		return;
	*slash = '\0';
	snprintf(d->flusher_path, sizeof d->flusher_path, "%.*s/ckring-flusher",
		 (int)(sizeof d->flusher_path - 16), self);
	if (access(d->flusher_path, X_OK) != 0)
		d->flusher_path[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* the story, step by step (parent)                                     */
/* ------------------------------------------------------------------ */

static int fail_step(const char *what, int rc)
{
	fflush(stdout);
	fprintf(stderr, PROG ": FAILED: %s: %s\n", what, ckr_strerror(rc));
	return -1;
}

static int step_setup(demo *d)
{
	int rc = fresh_db(d->db);
	if (rc)
		return fail_step("store directory", rc);
	rc = fresh_segment(d);
	if (rc)
		return rc == -EBUSY ? -1 : fail_step("segment", rc);
	section("1. a fresh segment, a fresh store, and the flusher");
	ckr_segment_info in;
	ckr_observer_snapshot(d->view, &in, NULL, 0);
	note("segment  %s: %" PRIu32 " lanes x %" PRIu64 " KiB in /dev/shm "
	     "(one lane per producer process)", d->segment, in.lane_count,
	     in.lane_capacity >> 10);
	note("store    %s (LMDB)", d->db);
	rc = start_flusher(d);
	if (rc)
		return fail_step("start the flusher", rc);
	if (d->flusher_path[0])
		note("flusher #1: pid %d  (%s --segment %s --db %s)", (int)d->flusher,
		     d->flusher_path, d->segment, d->db);
	else
		note("flusher #1: pid %d  (the flusher engine in a child process: no "
		     "ckring-flusher binary next to this one)", (int)d->flusher);
	return 0;
}

static int step_executors(demo *d)
{
	section("2. three executor processes run their agents");
	for (int e = 0; e < N_EXEC; e++) {
		int rc = spawn(d, e, executor);
		if (rc)
			return fail_step("fork an executor", rc);
		if (collect(d, e))
			return -1;
	}
	for (int e = 0; e < N_EXEC; e++)
		if (go(d, e))
			return fail_step("start stage 1", -errno);
	for (int e = 0; e < N_EXEC; e++)
		if (collect(d, e))
			return -1;
	return 0;
}

static int step_crash(demo *d)
{
	uint64_t r, b;
	section("3. crash: SIGKILL executor B in mid-flight, then the flusher");
	note("kill -9 %d   (executor B, in the middle of 2 runs)", (int)d->ex[1].pid);
	kill(d->ex[1].pid, SIGKILL);
	int st = reap(d, 1);
	if (st != 128 + SIGKILL)
		return fail_step("kill executor B", -ECHILD);
	pid_t fp = d->flusher;
	st = stop_flusher(d, SIGKILL);
	if (st != 128 + SIGKILL)
		return fail_step("kill the flusher", -ECHILD);
	ring_lag(d, &r, &b); /* after its death: what it had not committed */
	if (r)
		note("kill -9 %d   (flusher #1; %" PRIu64 " events it had not committed "
		     "stay in the ring)", (int)fp, r);
	else
		note("kill -9 %d   (flusher #1; it had committed every event so far)",
		     (int)fp);
	note("nothing drains the segment now; B's lane belongs to a dead process");
	return 0;
}

static int step_no_flusher(demo *d)
{
	uint64_t r, b;
	section("4. A and C keep working with no flusher: pushes never block");
	for (int e = 0; e < N_EXEC; e += 2)
		if (go(d, e))
			return fail_step("start stage 2", -errno);
	for (int e = 0; e < N_EXEC; e += 2)
		if (collect(d, e))
			return -1;
	ring_lag(d, &r, &b);
	note("the ring now holds %" PRIu64 " events (%" PRIu64 " bytes) that exist only "
	     "in shared memory", r, b);
	d->drained_after_restart = r;
	return 0;
}

static int step_restart(demo *d)
{
	section("5. restart the flusher");
	uint64_t t = now_ms();
	int rc = start_flusher(d);
	if (rc)
		return fail_step("restart the flusher", rc);
	rc = wait_drained(d, 10000);
	if (rc)
		return fail_step("drain after the restart", rc);
	note("flusher #%d: pid %d took over the dead flusher's slot and resumed from "
	     "the", d->flusher_no, (int)d->flusher);
	note("cursors committed with each batch; it drained the %" PRIu64 " waiting "
	     "events", d->drained_after_restart);
	note("and B's dead lane in %" PRIu64 " ms (events and cursors commit together: "
	     "exactly once)", now_ms() - t);
	return 0;
}

static int step_finish(demo *d)
{
	section("6. A and C finish their runs; then both processes exit");
	for (int e = 0; e < N_EXEC; e += 2)
		if (go(d, e))
			return fail_step("start stage 3", -errno);
	for (int e = 0; e < N_EXEC; e += 2) {
		if (collect(d, e))
			return -1;
		if (reap(d, e) != 0)
			return fail_step("executor exit status", -ECHILD);
	}
	note("executor C exited with C1-chat still RUNNING (host shutdown)");
	return 0;
}

/* ---- boot recovery ---- */

static int plan_of(const uint8_t *id, size_t len)
{
	for (int i = 0; i < N_RUNS; i++)
		if (strlen(plans[i].id) == len && memcmp(plans[i].id, id, len) == 0)
			return i;
	return -1;
}

/* Claim, retrying while the flusher has not drained the dead owner's lane
 * (every 10 ms, at most 30 s). */
static int claim_run(ckr_store *st, const ckr_run_info *in, ckr_claim *cl,
		     uint64_t *waited)
{
	uint64_t t = now_ms();
	int rc;
	while ((rc = ckr_store_claim(st, in->id, in->id_len, cl)) == CKR_ENOTDRAINED &&
	       now_ms() - t < 30000) {
		struct timespec ts = { 0, POLL_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	*waited = now_ms() - t;
	return rc;
}

static void say_resume(int i, const ckr_resume *rs)
{
	if (is_multi(i)) {
		printf("     resume: %zu completed phase%s (", rs->n_phases,
		       rs->n_phases == 1 ? "" : "s");
		for (size_t k = 0; k < rs->n_phases; k++)
			printf("%s%s", k ? ", " : "", rs->phases[k].name);
		if (rs->n_phases < 4)
			printf("); phase %zu \"%s\" re-runs from its start\n", rs->n_phases + 1,
			       phase_names[rs->n_phases]);
		else
			printf("); nothing to re-run\n");
	} else if (rs->n_history) {
		const ckr_blob *last = &rs->history[rs->n_history - 1];
		printf("     resume: transcript of %zu messages; last: \"%.*s\"\n",
		       rs->n_history, (int)last->size, (const char *)last->data);
		printf("             continues at turn %zu of %d\n", rs->n_history + 1,
		       plans[i].total);
	} else {
		printf("     resume: empty transcript; starts at turn 1\n");
	}
	if (rs->n_gaps)
		printf("     gaps: %zu (first at seq %" PRIu64 ")\n", rs->n_gaps, rs->gaps[0]);
}

/* Claim and load one interrupted run; remember the claim for executor D. */
static int recover_info(demo *d, ckr_store *st, const ckr_run_info *in)
{
	ckr_claim cl;
	ckr_resume *rs;
	uint64_t waited;
	int i = plan_of(in->id, in->id_len);
	if (i < 0 || d->n_claims >= N_RUNS)
		return fail_step("an interrupted run the demo never started", -EINVAL);
	note("%-9s %s, owner pid %" PRIu32 " (dead), %" PRIu64 " events, last seq %"
	     PRIu64 ", label %s", plans[i].id, is_multi(i) ? "multi-phase" : "single-loop",
	     in->owner_pid, in->events, in->last_seq, in->label);
	int rc = claim_run(st, in, &cl, &waited);
	if (rc)
		return fail_step("claim", rc);
	rc = ckr_store_resume(st, in->id, in->id_len, &rs);
	if (rc)
		return fail_step("resume", rc);
	printf("     claimed: incarnation %" PRIu32 ", attempt %" PRIu32 ", next seq %"
	       PRIu64 "%s\n", cl.incarnation, cl.attempts, cl.next_seq,
	       waited >= POLL_MS ? " (after waiting for the flusher to drain the dead "
				   "owner's lane)" : "");
	say_resume(i, rs);
	run_track *t = &d->sh->run[i];
	t->resumed_at = (uint32_t)(is_multi(i) ? rs->n_phases : rs->n_history);
	t->incarnation = cl.incarnation;
	t->attempts = cl.attempts;
	t->waited_ms = waited;
	ckr_resume_free(rs);
	d->claims[d->n_claims] = cl;
	d->claim_run[d->n_claims++] = i;
	return 0;
}

/* The host's boot path, in the process that will drive the recovered runs
 * (only the claimer may reopen a claim): list the interrupted runs, claim
 * each, load its resume state. @return 0 or -1 (reported). */
static int host_boot(demo *d)
{
	ckr_store *st;
	ckr_store_opts so = { 0 };
	ckr_run_info *v = NULL;
	size_t n = 0;
	int rc = ckr_store_open(d->db, &so, &st);
	if (rc)
		return fail_step("open the store", rc);
	rc = ckr_store_list(st, CKR_LIST_INTERRUPTED, &v, &n);
	if (rc) {
		ckr_store_close(st);
		return fail_step("list interrupted runs", rc);
	}
	note("%zu interrupted run%s (RUNNING, owner process dead):", n, n == 1 ? "" : "s");
	for (size_t k = 0; k < n && rc == 0; k++)
		rc = recover_info(d, st, &v[k]);
	free(v);
	ckr_store_close(st);
	fflush(stdout);
	return rc;
}

static int step_boot(demo *d)
{
	section("7. host boot: which runs were interrupted?");
	note("a new host process (D) opens the store, claims each interrupted run");
	note("and will drive it itself: only the claimer may reopen a claim");
	int rc = spawn(d, EXEC_D, recovery_executor);
	return rc ? fail_step("fork executor D", rc) : 0;
}

static int step_recover(demo *d)
{
	if (collect(d, EXEC_D))
		return -1;
	if (reap(d, EXEC_D) != 0)
		return fail_step("executor D exit status", -ECHILD);
	return 0;
}

/* ------------------------------------------------------------------ */
/* verification and summary                                            */
/* ------------------------------------------------------------------ */

typedef struct tally {
	uint64_t accepted, verified;
	int completed, failed, recovered, wrong_state;
} tally;

static ckr_run_state expected_state(int i)
{
	return plans[i].fin == FIN_FAIL ? CKR_RUN_FAILED : CKR_RUN_COMPLETED;
}

/* The stored state of run i against the script; counts begin/finish events
 * and (for runs not cleared) re-verifies the items. */
static void check_run(ckr_store *st, demo_shared *sh, int i, tally *t)
{
	run_track *r = &sh->run[i];
	ckr_run_info in;
	uint32_t acked = 0, found = 0, missing = 0;
	for (int s = 0; s < MAX_SEQ; s++)
		acked += atomic_load(&r->acked[s]) != 0;
	t->accepted += acked + atomic_load(&r->begun) + atomic_load(&r->finished);
	bool got = ckr_store_get(st, plans[i].id, strlen(plans[i].id), &in) == 0;
	if (got && in.state == CKR_RUN_FAILED && verify_run(st, sh, i, &found, &missing) == 0)
		t->verified += found; /* a failed run keeps its events: look again */
	else if (atomic_load(&r->checked))
		t->verified += atomic_load(&r->found); /* checked before COMPLETE */
	bool state_ok = got && in.state == expected_state(i) &&
			(in.state != CKR_RUN_FAILED || strcmp(in.error, FAIL_TEXT) == 0);
	t->verified += (got && atomic_load(&r->begun)) + (state_ok && atomic_load(&r->finished));
	t->wrong_state += !state_ok;
	t->completed += got && in.state == CKR_RUN_COMPLETED;
	t->failed += got && in.state == CKR_RUN_FAILED;
	t->recovered += r->incarnation > 1 && state_ok;
}

static const char *state_word(ckr_run_state s)
{
	return s == CKR_RUN_RUNNING ? "RUNNING" : s == CKR_RUN_FAILED ? "FAILED"
						  : "COMPLETED";
}

static void summary_line(const demo *d, ckr_store *st, int i)
{
	ckr_run_info in;
	const run_track *r = &d->sh->run[i];
	if (ckr_store_get(st, plans[i].id, strlen(plans[i].id), &in) != 0) {
		note("%-9s MISSING from the store", plans[i].id);
		return;
	}
	printf("   %-9s %-11s %-9s events %-3" PRIu64 " attempts %" PRIu32, plans[i].id,
	       is_multi(i) ? "multi-phase" : "single-loop", state_word(in.state),
	       in.events, in.attempts);
	if (plans[i].fin == FIN_KILLED || plans[i].fin == FIN_SHUTDOWN)
		printf("  %s; resumed at %s %" PRIu32 "",
		       plans[i].fin == FIN_KILLED ? "executor killed" : "host shutdown",
		       is_multi(i) ? "phase" : "turn", r->resumed_at + 1);
	if (in.state == CKR_RUN_FAILED)
		printf("  error: %s", in.error);
	printf("\n");
}

static int step_verify(demo *d)
{
	ckr_store *st;
	ckr_store_opts so = { .read_only = true };
	tally t = { 0 };
	section("9. verification: every accepted push, looked up in the store");
	int rc = ckr_store_open(d->db, &so, &st);
	if (rc)
		return fail_step("open the store", rc);
	for (int i = 0; i < N_RUNS; i++)
		summary_line(d, st, i);
	for (int i = 0; i < N_RUNS; i++)
		check_run(st, d->sh, i, &t);
	ckr_store_close(st);
	uint64_t lost = t.accepted - (t.verified < t.accepted ? t.verified : t.accepted);
	section("summary");
	note("runs started:            %d", N_RUNS);
	note("completed:               %d (%d of them after recovery)", t.completed,
	     t.recovered);
	note("failed (kept, with its error): %d", t.failed);
	note("interrupted + recovered: %d (1 executor SIGKILLed, 1 host shutdown)",
	     t.recovered);
	note("flusher crashes survived: 1 (%" PRIu64 " events waited in the ring)",
	     d->drained_after_restart);
	note("events accepted:         %" PRIu64 " (every push that returned OK)",
	     t.accepted);
	note("events found in store:   %" PRIu64, t.verified);
	note("events lost:             %" PRIu64, lost);
	note("runs in an unexpected state: %d", t.wrong_state);
	d->recovered = t.recovered;
	if (lost || t.wrong_state || t.recovered != 3)
		return -1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* options, cleanup, main                                              */
/* ------------------------------------------------------------------ */

static void usage(FILE *out)
{
	fputs("usage: " PROG " [--segment NAME] [--db DIR] [--keep]\n"
	      "Tell ckring's recovery story end to end: executors checkpoint runs\n"
	      "into a shared-memory ring, an executor and the flusher are killed,\n"
	      "the flusher restarts, the host boots, claims the interrupted runs and\n"
	      "resumes them; then every accepted event is looked up in the store.\n\n"
	      "  --segment NAME  segment to (re)create (default ckring-demo)\n"
	      "  --db DIR        store directory, emptied first\n"
	      "                  (default $TMPDIR/ckring-demo-db or /tmp/ckring-demo-db)\n"
	      "  --keep          keep the segment afterwards (the store is always kept)\n"
	      "  --help          this text\n\n"
	      "Exit status: 0 the story completed and no event was lost; 1 otherwise;\n"
	      "2 usage error.\n", out);
}

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, PROG ": %s%s%s (try --help)\n", msg, arg ? ": " : "",
		arg ? arg : "");
	return 2;
}

/* @return 0 parsed; 1 --help shown; 2 usage error (reported). */
static int parse_args(int argc, char **argv, demo *d)
{
	static const struct option lo[] = {
		{ "segment", required_argument, NULL, 's' },
		{ "db", required_argument, NULL, 'd' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tmp = getenv("TMPDIR");
	int c;
	snprintf(d->db, sizeof d->db, "%s/ckring-demo-db", tmp && *tmp ? tmp : "/tmp");
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': d->segment = optarg; break;
		case 'd':
			if (!*optarg || strlen(optarg) >= sizeof d->db - 16)
				return usage_error("bad --db", optarg);
			snprintf(d->db, sizeof d->db, "%s", optarg);
			break;
		case 'k': d->keep = true; break;
		case 'h': usage(stdout); return 1;
		default: return usage_error("unknown or incomplete option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument", argv[optind]);
	if (ckr_segment_name_check(d->segment) != 0)
		return usage_error("bad --segment (letters, digits, '.', '_', '-')", d->segment);
	return 0;
}

/* Stop everything we started; unlink the segment unless --keep.
 * @return the exit status. */
static int cleanup(demo *d, bool ok)
{
	for (int e = 0; e <= N_EXEC; e++) {
		if (d->ex[e].pid > 0) {
			kill(d->ex[e].pid, SIGKILL);
			reap(d, e);
		}
	}
	if (d->flusher > 0) {
		fflush(stdout);
		int st = stop_flusher(d, SIGTERM);
		if (ok && st != 0) {
			fprintf(stderr, PROG ": FAILED: the flusher exited with status %d "
				"on SIGTERM\n", st);
			ok = false;
		} else if (ok) {
			note("flusher #%d stopped by SIGTERM: drained what was left, exit 0",
			     d->flusher_no);
		}
	}
	ckr_observer_close(d->view);
	if (d->created && !d->keep)
		ckr_segment_unlink(d->segment);
	if (!ok) {
		fflush(stdout);
		fprintf(stderr, PROG ": FAILED — see above\n");
		return 1;
	}
	note("the store stays for inspection: ckring-inspect db %s", d->db);
	if (d->keep)
		note("the segment stays too: ckring-inspect segment %s", d->segment);
	note("the whole story took %.2f s", (double)(now_ms() - d->t0) / 1000.0);
	printf("\ndemo: OK — %d runs, %d recovered, 0 events lost\n", N_RUNS, d->recovered);
	return 0;
}

static int story(demo *d)
{
	int (*const steps[])(demo *) = { step_setup, step_executors, step_crash,
					 step_no_flusher, step_restart, step_finish,
					 step_boot, step_recover, step_verify };
	for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++)
		if (steps[k](d))
			return -1;
	return 0;
}

int main(int argc, char **argv)
{
	demo d = { .segment = "ckring-demo" };
	int rc = parse_args(argc, argv, &d);
	if (rc)
		return rc == 1 ? 0 : 2;
	d.t0 = now_ms();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm(WATCHDOG_S);
	d.sh = mmap(NULL, sizeof *d.sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		    -1, 0);
	if (d.sh == MAP_FAILED) {
		fprintf(stderr, PROG ": mmap: %s\n", strerror(errno));
		return 1;
	}
	find_flusher(&d);
	printf("ckring demo: checkpoint runs, crash everything, recover, lose nothing\n");
	rc = story(&d);
	return cleanup(&d, rc == 0);
}
