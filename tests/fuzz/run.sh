#!/usr/bin/env bash
# tests/fuzz/run.sh — build each libFuzzer target (clang, -fsanitize=fuzzer,
# address,undefined) with the library sources it needs into a temp dir, and
# run it for SECONDS seconds from a copy of its seed corpus
# (tests/fuzz/corpus/<target>/). Fails on any crash, sanitizer report,
# property violation, leak or timeout; prints the crashing input in base64
# (and keeps it in $FUZZ_ARTIFACTS when that is set).
#
# usage: tests/fuzz/run.sh [SECONDS] [TARGET...]
#   SECONDS defaults to $FUZZ_SECONDS or 20; TARGETs default to all of
#   fuzz_record fuzz_event fuzz_segment. FUZZ_JOBS=N runs N workers each.
#   CKR_TEST_KNOWN_BUGS=1 stops stepping around the reported, unfixed bugs
#   (docs/BAD_INPUT.md): the fuzzers then find them (CKR_FUZZ_KNOWN=B1 or B2
#   selects one).
# Everything (temp dir, the shm object of fuzz_segment, fuzzer processes) is
# removed on exit, failure or interrupt.
set -euo pipefail
# B1/B2 are fixed: the harness no longer steps around them.
export CKR_TEST_KNOWN_BUGS=${CKR_TEST_KNOWN_BUGS:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${FUZZ_SECONDS:-20}
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then SECS=$1; shift; fi
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_record fuzz_event fuzz_segment)
CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (make deps)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/ckr-fuzz-XXXXXX)
SHM=ckr-fuzz-seg-$$
FUZZ_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$FUZZ_PID" ]; then kill -KILL "$FUZZ_PID" 2>/dev/null || true; fi
  rm -f "/dev/shm/$SHM" "/dev/shm/$SHM".*
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LIB_SRC=(shm/segment.c shm/proc.c shm/strerror.c ring/lane.c ring/crc32c.c event/event.c)
FLAGS=(-std=c11 -g -O1 -fno-omit-frame-pointer -msse4.2 -D_GNU_SOURCE
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$ROOT/include" -I"$ROOT")

fail=0
summary=()
for t in "${TARGETS[@]}"; do
  src=$ROOT/tests/fuzz/$t.c
  [ -f "$src" ] || { echo "fuzz: no target $t" >&2; exit 2; }
  ( cd "$ROOT" && "$CC" "${FLAGS[@]}" -o "$WORK/$t" "tests/fuzz/$t.c" "${LIB_SRC[@]}" )
  mkdir -p "$WORK/corpus-$t" "$WORK/art"
  if [ -d "$ROOT/tests/fuzz/corpus/$t" ]; then
    cp "$ROOT/tests/fuzz/corpus/$t"/* "$WORK/corpus-$t/" 2>/dev/null || true
  fi
  log=$WORK/$t.log
  jobs=()
  [ -n "${FUZZ_JOBS:-}" ] && jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
  set +e
  ( cd "$WORK" && CKR_FUZZ_SHM=$SHM exec "./$t" -max_total_time="$SECS" -max_len=8192 \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -detect_leaks=1 \
      -artifact_prefix="$WORK/art/$t-" ${jobs[@]+"${jobs[@]}"} "corpus-$t" ) >"$log" 2>&1 &
  FUZZ_PID=$!
  wait "$FUZZ_PID"
  rc=$?
  set -e
  FUZZ_PID=
  # With FUZZ_JOBS the workers log to fuzz-N.log in $WORK.
  execs=$(cat "$log" "$WORK"/fuzz-*.log 2>/dev/null | grep 'stat::number_of_executed_units' |
          awk '{s += $2} END {print s + 0}' || true)
  cov=$(cat "$log" "$WORK"/fuzz-*.log 2>/dev/null | grep -o 'cov: [0-9]*' | tail -1 |
        awk '{print $2}' || true)
  ncorp=$(find "$WORK/corpus-$t" -type f | wc -l)
  if [ "$rc" -ne 0 ] || [ -n "$(find "$WORK/art" -name "$t-*" -print -quit)" ]; then
    fail=1
    summary+=("  FAIL $t: exit $rc after $execs runs")
    echo "fuzz: $t FAILED (exit $rc); the end of its log:" >&2
    cat "$log" "$WORK"/fuzz-*.log 2>/dev/null | grep -v '^#' | tail -n 40 | sed 's/^/  | /' >&2 || true
    for a in "$WORK/art/$t-"*; do
      [ -f "$a" ] || continue
      echo "fuzz: crashing input $(basename "$a") (base64):" >&2
      base64 -w 76 "$a" | sed 's/^/  /' >&2
      if [ -n "${FUZZ_ARTIFACTS:-}" ]; then mkdir -p "$FUZZ_ARTIFACTS" && cp "$a" "$FUZZ_ARTIFACTS/"; fi
    done
  else
    summary+=("  ok   $t: $execs runs in ${SECS}s, coverage $cov, corpus $ncorp inputs")
  fi
done
echo "fuzz: results"
printf '%s\n' "${summary[@]}"
exit "$fail"
