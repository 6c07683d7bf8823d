#!/usr/bin/env bash
# tests/fleet/fleet.sh — helpers of the shipping tests (sourced): hosts
# simulated on one machine (a segment, a store, a flusher and a shipper
# each), a private PostgreSQL (tests/pg/pg.sh), bounded waits on events.
# The caller sets FL_TMP and installs `trap fl_cleanup EXIT`.
FL_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FL_BUILD=${BUILD:-build}
case $FL_BUILD in /*) ;; *) FL_BUILD=$FL_TOP/$FL_BUILD ;; esac
FL_BIN=$FL_BUILD/bin
FL_HELP=$FL_BUILD/tests/fleet
# shellcheck source=../pg/pg.sh
source "$FL_TOP/tests/pg/pg.sh"
FL_PIDS=()
FL_SEGS=()
declare -A FL_FLUSHER FL_SHIPPER FL_SEG FL_DB

fl_fail() { echo "FAIL - $*" >&2; exit 1; }
fl_ok() { echo "ok - $*"; }

fl_cleanup() {
  local rc=$? p
  trap - EXIT
  for p in "${FL_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${FL_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  pg_stop
  for p in "${FL_SEGS[@]}"; do rm -f "/dev/shm/$p"; done
  if [ "$rc" -ne 0 ] && [ -n "${FL_TMP:-}" ]; then
    for p in "$FL_TMP"/*.log; do [ -f "$p" ] && { echo "--- $p" >&2; tail -n 15 "$p" >&2; }; done
  fi
  [ -n "${FL_KEEP:-}" ] || rm -rf "${FL_TMP:-/nonexistent}"
  exit "$rc"
}

# fl_wait DESCRIPTION COMMAND...: poll COMMAND (an event: a row, a word, a
# file) every 20 ms until it succeeds, at most 60 s.
fl_wait() {
  local what=$1 i=0
  shift
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -lt 3000 ] || fl_fail "timed out waiting: $what"
    sleep 0.02
  done
}

fl_flusher_serves() { # SEG
  "$FL_BIN/ckring-inspect" segment "$1" --json | grep -q '"alive": *true'
}

# fl_host NAME [FLUSHER ARGS...]: a segment and a store for host NAME, its
# flusher started (segments are named $FL_SEG_PREFIX-PID-NAME).
fl_host() {
  local h=$1
  FL_SEG[$h]=${FL_SEG_PREFIX:-ckrf}-$$-$h
  FL_DB[$h]=$FL_TMP/db-$h
  FL_SEGS+=("${FL_SEG[$h]}")
  mkdir -p "${FL_DB[$h]}"
  fl_flusher "$@"
}

fl_flusher() { # NAME [ARGS...]: (re)start the host's flusher
  local h=$1
  shift
  "$FL_BIN/ckring-flusher" --segment "${FL_SEG[$h]}" --db "${FL_DB[$h]}" --create \
    --lanes 8 --size $((8 * 512 * 1024 + 65536)) "$@" >>"$FL_TMP/flusher-$h.log" 2>&1 &
  FL_FLUSHER[$h]=$!
  FL_PIDS+=("$!")
  fl_wait "flusher of $h" fl_flusher_serves "${FL_SEG[$h]}"
}

fl_host_known() { [ "$(pg_psql "SELECT count(*) FROM ckring_hosts WHERE host = '$1'")" = 1 ]; }

fl_shipper() { # NAME [ARGS...]: start the host's shipper, wait until registered
  local h=$1
  shift
  "$FL_BIN/ckring-ship" --db "${FL_DB[$h]}" --pg "$PG_CONN" --host "$h" "$@" \
    >>"$FL_TMP/ship-$h.log" 2>&1 &
  FL_SHIPPER[$h]=$!
  FL_PIDS+=("$!")
  fl_wait "shipper of $h registered" fl_host_known "$h"
}

fl_kill() { # PID...: SIGKILL and reap
  local p
  for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

fl_rows() { pg_psql "SELECT count(*) FROM ckring_events"; }
fl_rows_are() { [ "$(fl_rows)" = "$1" ]; }
