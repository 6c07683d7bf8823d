#!/usr/bin/env bash
# test_apiseq.sh — the API-sequence test (tests/apiseq/, issue 11) at CI size:
# 100000 random steps (25000 in a sanitizer build) of API calls and faults
# across worker processes, a real flusher with crash points and restarts,
# checked against the reference model, from a fixed seed. CKR_SEED or SEED
# and STEPS override; the long run is `make fuzz-api STEPS=... SEED=...`.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD="${BUILD:-build}"
export SEED="${SEED:-${CKR_SEED:-20240611}}"
exec "$BUILD/tests/apiseq/apiseq-driver"
