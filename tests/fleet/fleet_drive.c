/*
 * fleet_drive.c — a host's boot path in the fleet tests: claims every
 * interrupted run of the local store (runs imported from a lost host by
 * ckring-recover are such runs once it exited), reopens each as the same
 * run and continues it with ckring-load's payload rule (message m at seq
 * m+1, docs/DESIGN.md §9) up to N messages, waits until the last one is
 * REPLICATED (in PostgreSQL), then finishes it (--finish complete) and
 * waits for that too.
 *
 * usage: fleet_drive --db DIR --segment SEG --events N --size S
 *                    [--finish complete|leave] [--expect K]
 *                    [--level replicated|committed]
 * Prints "drove K runs"; exit 0, or 1 on any failure (printed).
 */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckring_store.h"

#define BOUND_MS 30000

static uint64_t fnv1a64(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void message(uint8_t *buf, size_t size, const char *id, uint64_t m)
{
	uint64_t h = fnv1a64(id, strlen(id));
	for (int i = 0; i < 8; i++) {
		buf[i] = (uint8_t)(m >> (8 * i));
		buf[8 + i] = (uint8_t)(h >> (8 * i));
	}
	for (size_t i = 16; i < size; i++)
		buf[i] = (uint8_t)(h + 31 * m + i);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Claim, waiting (bounded) while the flusher has not ended the importer. */
static int claim(ckr_store *s, const ckr_run_info *in, ckr_claim *cl)
{
	int64_t end = now_ms() + BOUND_MS;
	for (;;) {
		int rc = ckr_store_claim(s, in->id, in->id_len, cl);
		if (rc != CKR_ENOTDRAINED || now_ms() > end)
			return rc;
		struct timespec ts = { 0, 20 * 1000000 };
		nanosleep(&ts, NULL); /* polls the flusher's E2 mark (once a second) */
	}
}

static ckr_level level = CKR_LEVEL_REPLICATED;

static int drive(ckr_client *c, const ckr_claim *cl, uint64_t n, size_t size, bool complete)
{
	char id[CKR_RUN_ID_MAX + 1];
	uint8_t *msg = malloc(size);
	ckr_run *r;
	ckr_ticket t = { 0 };
	memcpy(id, cl->id, cl->id_len);
	id[cl->id_len] = '\0';
	int rc = msg ? ckr_run_reopen(c, cl, &r) : -ENOMEM;
	if (rc)
		goto out;
	for (uint64_t m = cl->next_seq - 1; rc == 0 && m < n; m++) {
		message(msg, size, id, m);
		while ((rc = ckr_run_message(r, msg, size, &t)) == -EAGAIN)
			sched_yield();
	}
	if (rc == 0 && t.pos)
		rc = ckr_wait(c, &t, level, BOUND_MS);
	if (rc == 0 && complete) {
		while ((rc = ckr_run_finish(r, CKR_OUTCOME_COMPLETE, NULL, &t)) == -EAGAIN)
			sched_yield();
		if (rc == 0)
			rc = ckr_wait(c, &t, level, BOUND_MS);
	}
	ckr_run_close(r);
out:
	if (rc)
		fprintf(stderr, "fleet_drive: %s: %s\n", id, ckr_strerror(rc));
	free(msg);
	return rc;
}

int main(int argc, char **argv)
{
	const char *db = NULL, *seg = NULL;
	uint64_t n = 0, size = 0;
	long expect = -1;
	bool complete = false;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--db")) db = argv[i + 1];
		else if (!strcmp(argv[i], "--segment")) seg = argv[i + 1];
		else if (!strcmp(argv[i], "--events")) n = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--size")) size = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--finish")) complete = !strcmp(argv[i + 1], "complete");
		else if (!strcmp(argv[i], "--expect")) expect = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--level"))
			level = !strcmp(argv[i + 1], "committed") ? CKR_LEVEL_COMMITTED
								  : CKR_LEVEL_REPLICATED;
		else return 2;
	}
	if (!db || !seg || !n || size < 16)
		return 2;
	ckr_store *s;
	ckr_client *c;
	ckr_run_info *runs;
	size_t nr;
	int rc = ckr_store_open(db, NULL, &s);
	if (rc == 0)
		rc = ckr_client_attach(seg, NULL, &c);
	if (rc == 0)
		rc = ckr_store_list(s, CKR_LIST_INTERRUPTED, &runs, &nr);
	if (rc) {
		fprintf(stderr, "fleet_drive: %s\n", ckr_strerror(rc));
		return 1;
	}
	int failed = 0;
	for (size_t i = 0; i < nr; i++) {
		ckr_claim cl;
		rc = claim(s, &runs[i], &cl);
		if (rc == 0)
			rc = drive(c, &cl, n, size, complete);
		else
			fprintf(stderr, "fleet_drive: claim %.*s: %s\n", (int)runs[i].id_len,
				(const char *)runs[i].id, ckr_strerror(rc));
		failed += rc != 0;
	}
	printf("drove %zu runs\n", nr - (size_t)failed);
	if (expect >= 0 && (size_t)expect != nr) {
		fprintf(stderr, "fleet_drive: %zu interrupted runs, expected %ld\n", nr, expect);
		failed++;
	}
	free(runs);
	ckr_client_detach(c);
	ckr_store_close(s);
	return failed ? 1 : 0;
}
