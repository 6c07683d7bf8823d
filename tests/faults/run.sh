#!/usr/bin/env bash
# tests/faults/run.sh — fault injection against the real tools: an LD_PRELOAD
# shim (tests/faults/shim.c) makes mdb_txn_commit, mdb_put, ftruncate,
# posix_fallocate, mmap or shm_open fail in build/bin/ckring-flusher and
# clients (ckring-load, ckring-inspect). Each case checks the exit status and
# the exact stderr line, and that nothing is lost: the events stay in the
# ring and land once the fault clears (tests/torture/verify.c checks the
# store against ckring-load's ack files, byte for byte).
#
# usage: tests/faults/run.sh [CASE...]      (BUILD=build by default)
#   cases: create_ftruncate create_fallocate create_mmap attach_eacces
#          attach_eacces_real commit_eio commit_enospc put_mapfull put_eio
#          known_full_disk (root: a tmpfs) known_grow_fails known_open_mapfull
#          known_final_drain_mapfull
#   known_*: reported, unfixed bugs (docs/BAD_INPUT.md); they run only with
#   CKR_TEST_KNOWN_BUGS=1 (and fail until fixed).
# Every wait is bounded; processes, shm objects, mounts and the temp dir are
# removed on exit, failure or interrupt.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=$BUILD/bin
CC=${CC:-cc}
for f in "$BUILD/libckring.a" "$BIN/ckring-flusher" "$BIN/ckring-load"; do
  [ -e "$f" ] || { echo "faults: $f missing: run 'make tools' (BUILD=$BUILD)" >&2; exit 2; }
done

W=$(mktemp -d /tmp/ckr-faults-XXXXXX)
PIDS=()
SEGS=()
MOUNTS=()
# kill_tree PID: SIGKILL a process and all its descendants (by pid).
kill_tree() {
  local c
  kill -STOP "$1" 2>/dev/null # no new children meanwhile
  for c in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$c"; done
  kill -KILL "$1" 2>/dev/null
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in ${PIDS[@]+"${PIDS[@]}"}; do kill_tree "$p"; done
  wait 2>/dev/null
  for m in ${MOUNTS[@]+"${MOUNTS[@]}"}; do umount -l "$m" 2>/dev/null; done
  for s in ${SEGS[@]+"${SEGS[@]}"}; do rm -f "/dev/shm/$s"; done
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CFLAGS=(-std=c11 -O1 -g -Wall -Wextra -D_GNU_SOURCE -I"$ROOT/include" -I"$ROOT")
SHIM_CFLAGS=("${CFLAGS[@]}")
# A sanitizer build (make asan: BUILD=build-asan): link its runtime, and let
# the shim be preloaded ahead of it.
if nm "$BUILD/libckring.a" 2>/dev/null | grep __asan_ >/dev/null; then
  CFLAGS+=(-fsanitize=address,undefined)
  export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
fi
LIBS=("$BUILD/libckring-store.a" "$BUILD/libckring.a" -llmdb -lpthread -lrt)
"$CC" "${SHIM_CFLAGS[@]}" -shared -fPIC -o "$W/shim.so" "$ROOT/tests/faults/shim.c" -ldl || exit 2
"$CC" "${CFLAGS[@]}" -o "$W/verify" "$ROOT/tests/torture/verify.c" "${LIBS[@]}" || exit 2
"$CC" "${CFLAGS[@]}" -o "$W/segwait" "$ROOT/tests/faults/segwait.c" "${LIBS[@]}" || exit 2
SHIM=$W/shim.so
T=20000 # ms: the bound of every wait

PASS=0; FAILN=0; SKIPN=0; FAILED=()
CASE=; CW=; SEG=; DB=
fail() { echo "    FAIL: $*" >&2; CASE_OK=0; }

# ---- helpers ----
new_case() {
  CASE=$1; CASE_OK=1
  CW=$W/$1; mkdir -p "$CW/db"; DB=$CW/db
  SEG=ckr-fault-$$-$1; SEGS+=("$SEG")
}

# start_flusher ENVSPEC [ARGS...]: background ckring-flusher, stderr to
# $CW/flusher.err; waits until it serves (or exits). Sets FPID.
start_flusher() {
  local envspec=$1; shift
  env $envspec "$BIN/ckring-flusher" --segment "$SEG" --db "$DB" --idle-max-us 500 "$@" \
    2>>"$CW/flusher.err" &
  FPID=$!; PIDS+=("$FPID")
  "$W/segwait" flusher "$SEG" "$FPID" "$T" 2>/dev/null || true
}

# now_ms: milliseconds (bash 5's EPOCHREALTIME; no process spawned).
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# alive PID: running (a zombie, exited but not yet reaped, is not).
alive() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# wait_exit PID: bounded wait for a background child (SIGKILL at the bound);
# its exit status in WST (not echoed: a subshell cannot wait for our child).
wait_exit() {
  local pid=$1 end=$(($(now_ms) + T))
  while [ "$(now_ms)" -lt "$end" ]; do
    alive "$pid" || break
    sleep 0.01
  done
  if alive "$pid"; then kill_tree "$pid"; fi
  wait "$pid" 2>/dev/null; WST=$?
}

# stop_flusher: SIGTERM, must exit 0.
stop_flusher() {
  kill -TERM "$FPID" 2>/dev/null
  wait_exit "$FPID"
  [ "$WST" = 0 ] || fail "flusher exited $WST on SIGTERM: $(tail -n 2 "$CW/flusher.err")"
}

# wait_lines FILE N: until FILE has at least N lines (bounded).
wait_lines() {
  local end=$(($(now_ms) + T))
  while [ "$(now_ms)" -lt "$end" ]; do
    [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
    sleep 0.01
  done
  return 1
}

# load PREFIX EVENTS [ENVSPEC]: ckring-load of 1 proc x 2 threads x 2 runs,
# 64-byte messages; manifest line appended. Foreground.
load() {
  local prefix=$1 events=$2 envspec=${3:-}
  echo "$prefix 1 2 2 $events 64 $CW/ack.$prefix" >>"$CW/manifest"
  env $envspec "$BIN/ckring-load" --segment "$SEG" --procs 1 --threads 2 --runs 2 \
    --events "$events" --size 64 --prefix "$prefix" --ack-file "$CW/ack.$prefix" \
    >"$CW/load.$prefix.out" 2>"$CW/load.$prefix.err"
}

verify_store() {
  "$W/verify" --db "$DB" --manifest "$CW/manifest" >"$CW/verify.out" 2>&1 ||
    fail "verify: $(cat "$CW/verify.out")
    flusher log: $(cat "$CW/flusher.err" 2>/dev/null)
    fault log: $(cat "$CW/flog" 2>/dev/null)
    segment: $("$W/segwait" drained "$SEG" 0 2>&1 && echo drained)"
  VERIFIED=$(grep -o '[0-9]* acknowledged messages verified' "$CW/verify.out" | cut -d' ' -f1)
}

wait_grep() { # FILE STRING: until FILE holds STRING (bounded)
  local end=$(($(now_ms) + T))
  while [ "$(now_ms)" -lt "$end" ]; do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.01
  done
  return 1
}

expect_line() { # FILE PATTERN (a fixed string)
  grep -qF -- "$2" "$1" || fail "no line '$2' in $(basename "$1"): $(cat "$1")"
}

end_case() {
  if [ "$CASE_OK" = 1 ]; then
    PASS=$((PASS + 1)); echo "  ok   $CASE${1:+: $1}"
  else
    FAILN=$((FAILN + 1)); FAILED+=("$CASE"); echo "  FAIL $CASE"
  fi
  rm -f "/dev/shm/$SEG"
}

skip_case() { SKIPN=$((SKIPN + 1)); echo "  skip $1: $2"; }

# ---- segment creation faults: clear error, no object left, next start works ----
create_fault() { # CASE RULE MESSAGE
  new_case "$1"
  env CKR_FAULT="$2" LD_PRELOAD="$SHIM" "$BIN/ckring-flusher" --segment "$SEG" --db "$DB" \
    --create >"$CW/out" 2>"$CW/err"
  local st=$?
  [ "$st" = 1 ] || fail "exit $st, want 1"
  expect_line "$CW/err" "ckring-flusher: cannot serve segment '$SEG' with store '$DB': segment: $3"
  [ ! -e "/dev/shm/$SEG" ] || fail "a half-made segment was left in /dev/shm"
  start_flusher ""  --create
  load a- 200
  stop_flusher
  verify_store
  end_case "exit 1, '$3', nothing left behind; then $VERIFIED events land"
}
case_create_ftruncate() { create_fault create_ftruncate ftruncate:ENOSPC "No space left on device"; }
case_create_fallocate() { create_fault create_fallocate posix_fallocate:ENOSPC "No space left on device"; }
case_create_mmap() { create_fault create_mmap mmap:ENOMEM "Cannot allocate memory"; }

# ---- shm_open refused at attach ----
case_attach_eacces() {
  new_case attach_eacces
  start_flusher "" --create
  local f1=$FPID
  load a- 300
  echo "b- 1 2 2 300 64 $CW/ack.b-" >>"$CW/manifest"
  env CKR_FAULT=shm_open:EACCES LD_PRELOAD="$SHIM" "$BIN/ckring-load" --segment "$SEG" \
    --procs 1 --threads 2 --runs 2 --events 300 --size 64 --prefix b- \
    --ack-file "$CW/ack.b-" >/dev/null 2>"$CW/load.err"
  local st=$?
  [ "$st" = 1 ] || fail "ckring-load exit $st, want 1"
  expect_line "$CW/load.err" "ckring-load: segment '$SEG': Permission denied"
  if [ -x "$BIN/ckring-inspect" ]; then
    env CKR_FAULT=shm_open:EACCES LD_PRELOAD="$SHIM" "$BIN/ckring-inspect" segment "$SEG" \
      >/dev/null 2>"$CW/inspect.err"
    st=$?
    [ "$st" = 1 ] || fail "ckring-inspect exit $st, want 1"
    grep -q "Permission denied" "$CW/inspect.err" || fail "ckring-inspect: $(cat "$CW/inspect.err")"
  fi
  env CKR_FAULT=shm_open:EACCES LD_PRELOAD="$SHIM" "$BIN/ckring-flusher" --segment "$SEG" \
    --db "$DB" >/dev/null 2>"$CW/fl2.err"
  st=$?
  [ "$st" = 1 ] || fail "second flusher exit $st, want 1"
  expect_line "$CW/fl2.err" "ckring-flusher: cannot serve segment '$SEG' with store '$DB': segment: Permission denied"
  alive "$f1" || fail "the serving flusher died"
  load c- 300
  stop_flusher
  verify_store
  end_case "'Permission denied' from ckring-load/inspect/flusher (exit 1); $VERIFIED events land"
}

# ---- a real EACCES: a 0600 segment of root, attached by nobody ----
case_attach_eacces_real() {
  if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
    skip_case attach_eacces_real "needs root and setpriv"; return
  fi
  new_case attach_eacces_real
  start_flusher "" --create
  setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN/ckring-load" --segment "$SEG" \
    --procs 1 --threads 1 --runs 1 --events 10 --size 64 >/dev/null 2>"$CW/load.err"
  local st=$?
  [ "$st" = 1 ] || fail "exit $st, want 1"
  expect_line "$CW/load.err" "ckring-load: segment '$SEG': Permission denied"
  stop_flusher
  end_case "mode 0600 segment: '$(head -n 1 "$CW/load.err")'"
}

# ---- commit fails with EIO: the flusher stops (exit 1), nothing is lost ----
case_commit_eio() {
  new_case commit_eio
  start_flusher "CKR_FAULT=mdb_txn_commit:EIO CKR_FAULT_ARM=$CW/arm CKR_FAULT_LOG=$CW/flog LD_PRELOAD=$SHIM" --create
  local f1=$FPID
  touch "$CW/arm"
  load a- 500
  wait_exit "$f1"
  [ "$WST" = 1 ] || fail "flusher exit $WST on a failing commit, want 1"
  expect_line "$CW/flusher.err" "ckring-flusher: Input/output error"
  wait_lines "$CW/flog" 1 || fail "the fault was never injected"
  rm -f "$CW/arm"
  start_flusher ""
  stop_flusher
  verify_store
  end_case "exit 1, 'ckring-flusher: Input/output error'; restarted: $VERIFIED events land once"
}

# ---- commit fails with ENOSPC: disk full, keep the events, retry ----
case_commit_enospc() {
  new_case commit_enospc
  start_flusher "CKR_FAULT=mdb_txn_commit:ENOSPC CKR_FAULT_ARM=$CW/arm CKR_FAULT_LOG=$CW/flog LD_PRELOAD=$SHIM" \
    --create --lanes 4 --size 270336
  touch "$CW/arm"
  load a- 20000 &
  local lp=$!; PIDS+=("$lp")
  "$W/segwait" refused "$SEG" 1000 "$T" || fail "producers never saw a full ring"
  wait_lines "$CW/flog" 3 || fail "fewer than 3 failed commits"
  alive "$FPID" || fail "the flusher died on a full disk"
  expect_line "$CW/flusher.err" "ckring-flusher: store full (No space left on device); events stay in the ring; retrying"
  rm -f "$CW/arm"
  wait_exit "$lp"
  [ "$WST" = 0 ] || fail "ckring-load exit $WST"
  "$W/segwait" drained "$SEG" "$T" || fail "not drained while the flusher runs"
  stop_flusher
  verify_store
  end_case "flusher kept running ('store full ... retrying', $(wc -l <"$CW/flog") failed commits), producers saw ring-full; $VERIFIED events land"
}

# ---- issue 11 (5): a restarted flusher says SYNCED only after an fsync ----
# json_field NAME: the flusher's NAME from ckring-inspect segment --json.
json_field() {
  "$BIN/ckring-inspect" segment "$SEG" --json |
    python3 -c "import json,sys; print(json.load(sys.stdin)['flusher']['$1'])"
}
case_restart_sync_eio() {
  new_case restart_sync_eio
  start_flusher "" --create --sync none
  load a- 300
  "$W/segwait" drained "$SEG" "$T" || fail "not drained"
  kill -KILL "$FPID"; wait_exit "$FPID"
  local committed synced
  committed=$(json_field committed); synced=$(json_field synced)
  [ "$synced" -lt "$committed" ] || fail "--sync none published synced $synced = committed before any fsync"
  # Its fsync fails: it must not publish SYNCED for what it cannot prove.
  env CKR_FAULT=mdb_env_sync:EIO CKR_FAULT_LOG="$CW/flog" LD_PRELOAD="$SHIM" \
    "$BIN/ckring-flusher" --segment "$SEG" --db "$DB" --sync none >"$CW/out" 2>"$CW/err"
  local st=$?
  [ "$st" = 1 ] || fail "exit $st with a failing fsync, want 1"
  grep -q "mdb_env_sync EIO" "$CW/flog" 2>/dev/null || fail "the restart never tried to fsync"
  expect_line "$CW/err" "Input/output error"
  [ "$(json_field synced)" = "$synced" ] || fail "synced moved without an fsync"
  # A restart whose fsync works publishes synced = committed.
  start_flusher "" --sync none
  [ "$(json_field synced)" = "$(json_field committed)" ] ||
    fail "synced $(json_field synced) != committed $(json_field committed) after an fsync'd restart"
  stop_flusher
  verify_store
  end_case "synced stays at $synced < $committed until a restart's fsync; then equal; $VERIFIED events land"
}

# ---- mdb_put says MDB_MAP_FULL: grow the map and replay ----
case_put_mapfull() {
  new_case put_mapfull
  start_flusher "CKR_FAULT=mdb_put:MAP_FULL:times=3 CKR_FAULT_ARM=$CW/arm CKR_FAULT_LOG=$CW/flog LD_PRELOAD=$SHIM" --create
  touch "$CW/arm"
  load a- 500
  # wait for the drain: a SIGTERM during the map-full handling hits B9
  "$W/segwait" drained "$SEG" "$T" || fail "not drained while the flusher runs"
  stop_flusher
  expect_line "$CW/flusher.err" "map grown 3 times"
  verify_store
  end_case "map grown 3 times, no message, $VERIFIED events land once"
}

# ---- known bug B9: the final drain on SIGTERM gives up at a full map ----
# drain_all() stops at the first pass that commits nothing, and a pass that
# hit MDB_MAP_FULL (grow, replay pending) commits nothing: the flusher exits
# 0 ("stopped: 0 events stored") with the events still in the ring.
case_known_final_drain_mapfull() {
  new_case known_final_drain_mapfull
  start_flusher "CKR_FAULT=mdb_put:MAP_FULL:times=1 CKR_FAULT_ARM=$CW/arm LD_PRELOAD=$SHIM" --create
  kill -STOP "$FPID"
  load a- 500
  touch "$CW/arm"
  kill -TERM "$FPID"; kill -CONT "$FPID"
  wait_exit "$FPID"
  [ "$WST" = 0 ] || fail "flusher exit $WST"
  "$W/segwait" drained "$SEG" 0 2>"$CW/seg.err" ||
    fail "exit 0 with events left in the ring: $(cat "$CW/seg.err"); $(tail -n 1 "$CW/flusher.err")"
  verify_store
  end_case
}

# ---- mdb_put fails with EIO: the flusher stops (exit 1), nothing is lost ----
case_put_eio() {
  new_case put_eio
  start_flusher "CKR_FAULT=mdb_put:EIO CKR_FAULT_ARM=$CW/arm CKR_FAULT_LOG=$CW/flog LD_PRELOAD=$SHIM" --create
  local f1=$FPID
  touch "$CW/arm"
  load a- 500
  wait_exit "$f1"
  [ "$WST" = 1 ] || fail "flusher exit $WST, want 1"
  expect_line "$CW/flusher.err" "ckring-flusher: Input/output error"
  rm -f "$CW/arm"
  start_flusher ""
  stop_flusher
  verify_store
  end_case "exit 1, 'ckring-flusher: Input/output error'; restarted: $VERIFIED events land once"
}

# ---- known bug B7: a real full disk (the store on a 1 MiB tmpfs). LMDB
# reports a short write as EIO (mdb_page_flush), which the flusher treats as
# fatal: it exits 1 instead of keeping the events and retrying (docs/DESIGN.md §8).
case_known_full_disk() {
  new_case known_full_disk
  local m=$CW/mnt; mkdir -p "$m"
  if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=1m,mode=0700 tmpfs "$m" 2>/dev/null; then
    skip_case known_full_disk "needs root to mount a tmpfs"; CASE_OK=1; rm -f "/dev/shm/$SEG"; return
  fi
  MOUNTS+=("$m"); DB=$m
  start_flusher "" --create --lanes 4 --size 270336 --map-size 262144
  load a- 20000 &
  local lp=$!; PIDS+=("$lp")
  "$W/segwait" refused "$SEG" 1000 "$T" || fail "producers never saw a full ring"
  wait_grep "$CW/flusher.err" "store full" || true
  expect_line "$CW/flusher.err" "events stay in the ring; retrying"
  alive "$FPID" || fail "the flusher died on a full disk"
  mount -o remount,size=256m "$m" || fail "remount"
  wait_exit "$lp"
  [ "$WST" = 0 ] || fail "ckring-load exit $WST"
  stop_flusher
  verify_store
  local line; line=$(grep -m1 "store full" "$CW/flusher.err")
  umount -l "$m"
  end_case "'$line'; after room was made: $VERIFIED events land"
}

# ---- known bug B5: a failed map growth leaves LMDB without a map ----
case_known_grow_fails() {
  new_case known_grow_fails
  start_flusher "CKR_FAULT=mdb_put:MAP_FULL CKR_FAULT_ARM=$CW/arm LD_PRELOAD=$SHIM" --create
  local f1=$FPID
  touch "$CW/arm"
  load a- 50
  wait_lines "$CW/flusher.err" 1
  # the map doubles until mdb_env_set_mapsize fails (ENOMEM), then the
  # flusher backs off and retries: give it 3 s to show it survives
  local end=$(($(now_ms) + 3000))
  while [ "$(now_ms)" -lt "$end" ] && alive "$f1"; do sleep 0.01; done
  if ! kill -0 "$f1" 2>/dev/null; then
    wait_exit "$f1"
    fail "flusher died: status $WST (139 = SIGSEGV in mdb_txn_begin after ckr_store_grow failed)"
  fi
  rm -f "$CW/arm"
  stop_flusher
  verify_store
  end_case
}

# ---- known bug B6: MDB_MAP_FULL while opening the store prints "unknown error" ----
case_known_open_mapfull() {
  new_case known_open_mapfull
  env CKR_FAULT=mdb_put:MAP_FULL LD_PRELOAD="$SHIM" "$BIN/ckring-flusher" --segment "$SEG" \
    --db "$DB" --create >/dev/null 2>"$CW/err"
  grep -q "unknown error" "$CW/err" && fail "$(cat "$CW/err")"
  end_case
}

ALL=(create_ftruncate create_fallocate create_mmap attach_eacces attach_eacces_real
     commit_eio commit_enospc restart_sync_eio put_mapfull put_eio known_full_disk
     known_grow_fails known_open_mapfull known_final_drain_mapfull)
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=("${ALL[@]}")
echo "faults: ${#CASES[@]} cases against $BIN"
for c in "${CASES[@]}"; do
  if false; then # all reported bugs are fixed; the known_* cases are regressions
    skip_case "$c" "reported bug (CKR_TEST_KNOWN_BUGS=1 to run)"; continue
  fi
  declare -F "case_$c" >/dev/null || { echo "faults: no case $c" >&2; exit 2; }
  "case_$c"
done
echo "faults: $PASS passed, $FAILN failed, $SKIPN skipped${FAILED[*]:+ (failed: ${FAILED[*]})}"
[ "$FAILN" -eq 0 ]
