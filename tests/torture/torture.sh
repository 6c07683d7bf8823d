#!/usr/bin/env bash
# tests/torture/torture.sh — the crash torture of docs/DESIGN.md §8: builds the driver
# (tests/torture/torture.c) and the verifier (tests/torture/verify.c) into a
# temp dir against $BUILD/libckring.a, runs the real ckring-flusher and
# ckring-load from $BUILD/bin under random SIGKILLs / SIGSTOPs / flusher
# crashes, then verifies the store against the ack files.
#
# usage: tests/torture/torture.sh [--duration S] [--seed N] [--max-loads N]
#                                 [--lanes N] [--lane-kib N] [--verbose] [--keep]
#   (also DURATION=, SEED= from the environment; default 60 s, random seed)
# Exit 0 verified; non-zero on any failure. Everything it starts (processes,
# the shm segment, the temp dir) is removed on exit, failure or interrupt;
# --keep keeps the temp dir (logs, store, ack files) for a post-mortem.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
DURATION=${DURATION:-60}
SEED=${SEED:-}
KEEP=0
EXTRA=()
while [ $# -gt 0 ]; do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --max-loads|--lanes|--lane-kib) EXTRA+=("$1" "$2"); shift 2 ;;
    --verbose) EXTRA+=(--verbose); shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "torture.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done
[ -n "$SEED" ] || SEED=$(( (RANDOM << 15 | RANDOM) + 1 ))
# The flusher of the hooks build: its crash points (CKR_FLUSHER_CRASH) exist
# only there, never in the shipped library.
for f in "$BUILD/libckring.a" "$BUILD/hooks/bin/ckring-flusher" "$BUILD/bin/ckring-load"; do
  [ -e "$f" ] || { echo "torture.sh: $f missing: run 'make tests' (BUILD=$BUILD)" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/ckr-torture-XXXXXX)
SEG=ckr-torture-$$
DRIVER=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # The driver runs in its own process group (setsid): everything it started.
  if [ -n "$DRIVER" ]; then kill -KILL -- "-$DRIVER" 2>/dev/null || true; fi
  rm -f "/dev/shm/$SEG"
  if [ "$rc" -ne 0 ] && [ -f "$WORK/flusher.log" ]; then
    echo "torture.sh: last lines of the flusher log:" >&2
    tail -n 20 "$WORK/flusher.log" | sed 's/^/  | /' >&2
  fi
  if [ "$KEEP" = 1 ]; then echo "torture.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CC=${CC:-cc}
CFLAGS=(-std=c11 -O2 -g -Wall -Wextra -D_GNU_SOURCE -I"$ROOT/include" -I"$ROOT")
# A sanitizer build (make asan: BUILD=build-asan) needs its runtime to link.
if nm "$BUILD/libckring.a" 2>/dev/null | grep __asan_ >/dev/null; then
  CFLAGS+=(-fsanitize=address,undefined)
fi
LIBS=("$BUILD/libckring-store.a" "$BUILD/libckring.a" -llmdb -lpthread -lrt)
"$CC" "${CFLAGS[@]}" -o "$WORK/torture" "$ROOT/tests/torture/torture.c" "${LIBS[@]}"
"$CC" "${CFLAGS[@]}" -o "$WORK/verify" "$ROOT/tests/torture/verify.c" "${LIBS[@]}"

mkdir "$WORK/bin"
ln -s "$BUILD/hooks/bin/ckring-flusher" "$WORK/bin/ckring-flusher"
ln -s "$BUILD/bin/ckring-load" "$WORK/bin/ckring-load"
setsid "$WORK/torture" --bin "$WORK/bin" --dir "$WORK" --verify "$WORK/verify" \
  --segment "$SEG" --seed "$SEED" --duration "$DURATION" ${EXTRA[@]+"${EXTRA[@]}"} &
DRIVER=$!
set +e
wait "$DRIVER"
rc=$?
set -e
DRIVER=
exit "$rc"
