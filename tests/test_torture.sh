#!/usr/bin/env bash
# test_torture.sh — the CI-sized crash torture (tests/torture/torture.sh):
# ~45 s of random producer SIGKILLs and SIGSTOPs and flusher SIGKILLs and
# crash points against the real ckring-flusher and ckring-load, then the
# store is checked against the ack files (exactly once, in order, byte-exact).
# CKR_SEED replays a run (the seed is printed); CKR_TORTURE_SECONDS changes
# the length. The long run is `make torture DURATION=... SEED=...`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec tests/torture/torture.sh --duration "${CKR_TORTURE_SECONDS:-45}" \
  ${CKR_SEED:+--seed "$CKR_SEED"}
