/*
 * boot_recovery.c — the host's boot path: open the store, list the
 * interrupted runs, claim each (atomically: a racing host gets
 * CKR_ECLAIMED), load its resume state, reopen the SAME record and continue
 * it, then complete it. Uses only <ckring.h> and <ckring_store.h>.
 *
 *   make -C examples     # pkg-config --cflags --libs ckring-store
 *   ./examples/boot_recovery SEGMENT DB_DIR
 *
 * A flusher serves SEGMENT with its store in DB_DIR. A run whose dead owner
 * still has events in the ring is claimable once the flusher drained them
 * (CKR_ENOTDRAINED until then): this example retries for a few seconds.
 */
#include <ckring.h>
#include <ckring_store.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const char *what, int rc)
{
	fprintf(stderr, "boot_recovery: %s: %s\n", what, ckr_strerror(rc));
	return 1;
}

static int claim(ckr_store *st, const ckr_run_info *in, ckr_claim *cl)
{
	int rc;
	for (int tries = 0; tries < 500; tries++) { /* 5 s */
		rc = ckr_store_claim(st, in->id, in->id_len, cl);
		if (rc != CKR_ENOTDRAINED)
			return rc;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return rc;
}

/* Continue one recovered run: one more message (or phase), then complete. */
static int continue_run(ckr_client *c, ckr_store *st, const ckr_run_info *in)
{
	ckr_claim cl;
	ckr_resume *rs;
	ckr_run *run;
	ckr_ticket t;
	int rc = claim(st, in, &cl);
	if (rc == CKR_ECLAIMED)
		return 0; /* another host took it: fine */
	if (rc)
		return fail("claim", rc);
	rc = ckr_store_resume(st, in->id, in->id_len, &rs);
	if (rc)
		return fail("resume", rc);
	printf("run %.*s: %zu messages, %zu phases to resume from; continues at seq %llu\n",
	       (int)in->id_len, (const char *)in->id, rs->n_history, rs->n_phases,
	       (unsigned long long)cl.next_seq);
	ckr_resume_free(rs);
	rc = ckr_run_reopen(c, &cl, &run);
	if (rc)
		return fail("reopen", rc);
	if (cl.kind == CKR_KIND_SINGLE_LOOP)
		rc = ckr_run_message(run, "resumed after boot", 18, NULL);
	else
		rc = ckr_run_phase(run, 0, "resumed", "after boot", 10, NULL);
	if (rc == 0)
		rc = ckr_run_finish(run, CKR_OUTCOME_COMPLETE, NULL, &t);
	if (rc == 0)
		rc = ckr_wait(c, &t, CKR_LEVEL_COMMITTED, 10000);
	ckr_run_close(run);
	if (rc)
		return fail("continue", rc);
	printf("run %.*s completed\n", (int)in->id_len, (const char *)in->id);
	return 0;
}

int main(int argc, char **argv)
{
	ckr_client *c;
	ckr_store *st;
	ckr_run_info *runs;
	size_t n;
	if (argc != 3) {
		fprintf(stderr, "usage: boot_recovery SEGMENT DB_DIR\n");
		return 2;
	}
	int rc = ckr_store_open(argv[2], NULL, &st);
	if (rc)
		return fail("open the store", rc);
	ckr_client_opts o = { .begin_check = ckr_store_begin_check, .begin_check_ctx = st };
	rc = ckr_client_attach(argv[1], &o, &c);
	if (rc)
		return fail("attach", rc);
	rc = ckr_store_list(st, CKR_LIST_INTERRUPTED, &runs, &n);
	if (rc)
		return fail("list", rc);
	printf("%zu interrupted run%s\n", n, n == 1 ? "" : "s");
	int bad = 0;
	for (size_t i = 0; i < n; i++)
		bad |= continue_run(c, st, &runs[i]);
	free(runs);
	ckr_client_detach(c);
	ckr_store_close(st);
	return bad;
}
