/*
 * scenarios_recovery.h — a host's boot path, measured: list, claim and
 * resume N interrupted runs (recovery.claim with ckr_store_claim_batch,
 * recovery.claim.single with one ckr_store_claim per run).
 */
#ifndef BENCH_SCENARIOS_RECOVERY_H
#define BENCH_SCENARIOS_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "bench.h"

/* One row for n interrupted runs. @return 0 or -1 (bench_fail). */
int bench_recovery(bench *b, uint64_t n, bool single);

#endif /* BENCH_SCENARIOS_RECOVERY_H */
