/*
 * flusher_proc.c — the harness's flusher process and its client (see
 * flusher_proc.h).
 */
#include "flusher_proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "sys.h"

void fl_seg_opts(ckr_segment_opts *o)
{
	memset(o, 0, sizeof *o);
	o->lanes = 2;
	o->size = (UINT64_C(1) << 20) + 2 * FL_LANE_CAP; /* header pages + lanes */
	o->group = (gid_t)-1;
}

void fl_payload(uint8_t *p, uint32_t size, uint64_t i)
{
	for (uint32_t k = 0; k < size; k++)
		p[k] = (uint8_t)(i * 31 + k);
}

/* A client with one single-loop run on segment seg. */
int fl_client(bench *b, const char *what, const char *seg, ckr_client **c,
		     ckr_run **run)
{
	char id[64];
	int n = snprintf(id, sizeof id, "bench-%s-%u", what, b->seq);
	ckr_run_spec spec = { .id = id, .id_len = (size_t)n, .kind = CKR_KIND_SINGLE_LOOP,
			      .label = "ckring-bench" };
	int rc = ckr_client_attach(seg, NULL, c);
	if (rc == 0 && run)
		rc = ckr_run_begin(*c, &spec, run, NULL);
	return rc ? bench_fail(b, "%s: client: %s", what, ckr_strerror(rc)) : 0;
}

/* ------------------------------------------------------------------ */
/* a flusher in its own process                                        */
/* ------------------------------------------------------------------ */


static volatile int fl_stop;
static ckr_flusher *volatile fl_serving;

static void fl_on_term(int sig)
{
	(void)sig;
	fl_stop = 1;
	ckr_flusher_interrupt(fl_serving); /* async-signal-safe */
}

/* The flusher process: serve the segment until SIGTERM. */
static void fl_main(const char *seg, const char *dir, fl_status *status)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	struct sigaction sa = { .sa_handler = fl_on_term };
	sigaction(SIGTERM, &sa, NULL);
	ckr_flusher *f;
	ckr_flusher_opts fo = { .segment = seg, .db_dir = dir, .create = true,
				.sync = CKR_SYNC_ALWAYS };
	fl_seg_opts(&fo.seg);
	int rc = ckr_flusher_open(&fo, &f);
	status->err = rc;
	/* release: err is visible to whoever sees the state. */
	atomic_store_explicit(&status->state, rc ? 2 : 1, memory_order_release);
	bench_futex_wake(&status->state);
	if (rc)
		_exit(1);
	fl_serving = f;
	rc = ckr_flusher_run(f, &fl_stop);
	fl_serving = NULL;
	ckr_flusher_close(f);
	_exit(rc ? 1 : 0);
}


void fl_proc_stop(fl_proc *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		waitpid(p->pid, NULL, 0);
	}
	p->pid = 0;
	ckr_segment_unlink(p->seg);
	if (p->status)
		munmap(p->status, sizeof *p->status);
	p->status = NULL;
	if (p->dir[0])
		bench_rmdir(p->dir);
	p->dir[0] = '\0';
}

/* Start a flusher process on a new segment and store; wait until it
 * serves. @return 0 or -1 (bench_fail). */
int fl_proc_start(bench *b, const char *what, fl_proc *p)
{
	memset(p, 0, sizeof *p);
	if (bench_tmpdir(b, p->dir, sizeof p->dir))
		return -1;
	snprintf(p->seg, sizeof p->seg, "ckring-bench-%s-%d-%u", what, (int)getpid(), b->seq++);
	p->status = bench_shared_alloc(sizeof *p->status);
	fflush(NULL);
	p->pid = p->status ? fork() : -1;
	if (p->pid == 0)
		fl_main(p->seg, p->dir, p->status);
	int rc = p->pid < 0 ? -ENOMEM : 0;
	uint64_t end = bench_mono_ns(CLOCK_MONOTONIC) + (uint64_t)BENCH_TIMEOUT_S * 1000000000u;
	while (rc == 0 && atomic_load_explicit(&p->status->state, memory_order_acquire) == 0) {
		if (bench_mono_ns(CLOCK_MONOTONIC) > end)
			rc = -ETIMEDOUT;
		bench_futex_wait(&p->status->state, 0);
	}
	if (rc == 0 && atomic_load(&p->status->state) != 1)
		rc = p->status->err ? p->status->err : -EIO;
	if (rc) {
		fl_proc_stop(p);
		return bench_fail(b, "%s: flusher: %s", what, ckr_strerror(rc));
	}
	return 0;
}
