/*
 * check.h — the checkpoint of the API-sequence test: with every lane
 * drained, compare the store (through the public store API) with the model,
 * run by run (state, owner, incarnation, attempts, events, sequence numbers,
 * bytes, error, resume state with every byte of every message and phase,
 * gaps, set-aside rows), the lists, and the store's counters; resolve what
 * the model left open (begin races, pushes lost with their process).
 *
 * Concurrency: the driver's thread only; the flusher runs meanwhile (it has
 * nothing to apply).
 */
#ifndef CKR_APISEQ_CHECK_H
#define CKR_APISEQ_CHECK_H

#include <stdbool.h>
#include <stdio.h>

#include "ckring_store.h"
#include "tests/apiseq/model.h"

/* Check the store against the model. full: dead owners must have been
 * marked ended (their runs claimable) — the caller waited for that with
 * ac_wait_ended(). Records a divergence in m. */
void ac_checkpoint(am *m, ckr_store *s, bool full);

/* Wait (bounded) until every RUNNING run whose owner image will end is
 * shown drained. @return 0; -ETIMEDOUT (a divergence is recorded). */
int ac_wait_ended(am *m, ckr_store *s, int timeout_ms);

/* Compare `ckring-inspect db DIR --json` with the model (run count per
 * state). Records a divergence in m. */
void ac_inspect(am *m, const char *inspect_bin, const char *db);

/* Print the store's view of run (for a divergence report). */
void ac_dump_store(ckr_store *s, const am *m, int run, FILE *out);

#endif /* CKR_APISEQ_CHECK_H */
