/*
 * minimal_executor.c — the smallest executor: attach to a segment, begin a
 * single-loop run, append three transcript messages, wait until the flusher
 * committed them, complete the run, detach. Uses only <ckring.h>.
 *
 *   make -C examples                # pkg-config --cflags --libs ckring
 *   ./examples/minimal_executor SEGMENT [RUN_ID]
 *
 * A flusher should serve SEGMENT (ckring-flusher --segment SEGMENT --db DIR
 * --create). Without one the pushes still succeed — the events wait in
 * shared memory — and the wait reports that nothing committed them yet.
 */
#include <ckring.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what, int rc)
{
	fprintf(stderr, "minimal_executor: %s: %s\n", what, ckr_strerror(rc));
	return 1;
}

/* Append the transcript; *last gets the ticket of the last message. */
static int append_transcript(ckr_run *run, ckr_ticket *last)
{
	static const char *const transcript[] = {
		"user: summarise yesterday's incident",
		"assistant: the payment gateway pool was cut from 64 to 8",
		"user: thanks, file it",
	};
	for (int i = 0; i < 3; i++) {
		int rc = ckr_run_message(run, transcript[i], strlen(transcript[i]), last);
		if (rc)
			return rc; /* -EAGAIN: the ring is full; a real executor retries */
		printf("appended message %d (seq %llu)\n", i + 1,
		       (unsigned long long)ckr_run_next_seq(run) - 1);
	}
	return 0;
}

/* Wait at most 5 s for the flusher to commit *t (what: which event).
 * Not reaching it is not an error: the events are in shared memory and
 * survive this process. @return true if it was committed. */
static bool wait_committed(ckr_client *c, const ckr_ticket *t, const char *what)
{
	int rc = ckr_wait(c, t, CKR_LEVEL_COMMITTED, 5000);
	if (rc == 0) {
		printf("committed: %s\n", what);
		return true;
	}
	if (rc == -EPIPE || rc == -ETIMEDOUT)
		printf("note: %s not committed yet (%s); it waits in the ring for a "
		       "flusher\n", what, ckr_strerror(rc));
	else
		printf("note: wait: %s\n", ckr_strerror(rc));
	return false;
}

int main(int argc, char **argv)
{
	char id[64];
	ckr_client *c;
	ckr_run *run;
	ckr_ticket last;
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: minimal_executor SEGMENT [RUN_ID]\n");
		return 2;
	}
	if (argc == 3)
		snprintf(id, sizeof id, "%s", argv[2]);
	else
		snprintf(id, sizeof id, "minimal-%d", (int)getpid());
	int rc = ckr_client_attach(argv[1], NULL, &c);
	if (rc)
		return fail("attach", rc);
	ckr_run_spec spec = { .id = id, .id_len = strlen(id),
			      .kind = CKR_KIND_SINGLE_LOOP, .label = "minimal/1.0" };
	rc = ckr_run_begin(c, &spec, &run, NULL);
	if (rc) {
		ckr_client_detach(c);
		return fail("begin", rc);
	}
	printf("run %s begun\n", id);
	rc = append_transcript(run, &last);
	bool flusher = rc == 0 && wait_committed(c, &last, "the 3 messages");
	if (rc == 0)
		rc = ckr_run_finish(run, ckr_classify_outcome(false, CKR_CAUSE_NONE),
				    NULL, &last);
	if (rc == 0 && flusher)
		wait_committed(c, &last, "the completion (record and events cleared)");
	ckr_run_close(run);
	ckr_client_detach(c);
	if (rc)
		return fail("run", rc);
	printf("run %s completed\n", id);
	return 0;
}
