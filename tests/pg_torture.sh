#!/usr/bin/env bash
# tests/pg_torture.sh — the shipping torture (issue 17): one host (segment,
# store, flusher) under a stream of ckring-load invocations (2 processes x 2
# threads x 4 runs each, 128 B and 1 KiB messages, ack files), while its
# shipper is SIGKILLed at random points and restarted, and PostgreSQL is
# stopped (immediate: a crash, or fast) and restarted. During each outage a
# load runs to its end and the flusher drains it: the local path never
# waits for PostgreSQL. At the end the shipper ships what is left and
# tests/fleet/pgverify checks the database row by row against every ack
# file and against the local store: zero lost, zero duplicated.
#
# usage: tests/pg_torture.sh [--kills N] [--restarts N] [--seed N] [--keep]
#   (defaults: 50 kills, 5 restarts; `make pg-torture`; test_pg_torture.sh
#   runs a short version in `make test`)
set -euo pipefail
KILLS=50; RESTARTS=5; SEED=; FL_KEEP=
while [ $# -gt 0 ]; do
  case $1 in
    --kills) KILLS=$2; shift 2 ;;
    --restarts) RESTARTS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --keep) FL_KEEP=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "pg_torture.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -n "$SEED" ] || SEED=$(( (RANDOM << 15 | RANDOM) + 1 ))
RANDOM=$SEED
echo "pg_torture: seed $SEED (replay: --seed $SEED), $KILLS shipper kills, $RESTARTS PostgreSQL restarts"
FL_TMP=$(mktemp -d /tmp/ckring-pgtorture.XXXXXX)
source "$(dirname "$0")/fleet/fleet.sh"
trap fl_cleanup EXIT
start=$(date +%s)

pg_start "$FL_TMP/pg"
"$FL_BIN/ckring-ship" --pg "$PG_CONN" --init-schema
fl_host A
: >"$FL_TMP/manifest"
inv=0; load_pid=
start_load() { # [PREFIX]: the next ckring-load invocation, in the background
  local p=${1:-i$inv-} size=$(( (inv % 2) ? 1024 : 128 )) events=$(( 200 + RANDOM % 600 ))
  echo "$p 2 2 4 $events $size $FL_TMP/ack-$p" >>"$FL_TMP/manifest"
  "$FL_BIN/ckring-load" --segment "${FL_SEG[A]}" --procs 2 --threads 2 --runs 4 \
    --events "$events" --size "$size" --prefix "$p" --ack-file "$FL_TMP/ack-$p" \
    >>"$FL_TMP/load.log" 2>&1 &
  load_pid=$!
  FL_PIDS+=("$!")
  inv=$((inv + 1))
}
load_running() { [ -n "$load_pid" ] && kill -0 "$load_pid" 2>/dev/null; }
ship_pid=
start_shipper() {
  "$FL_BIN/ckring-ship" --db "${FL_DB[A]}" --pg "$PG_CONN" --host A --batch-rows $((500 + RANDOM % 20000)) \
    >>"$FL_TMP/ship-A.log" 2>&1 &
  ship_pid=$!
  FL_PIDS+=("$!")
}
gap() { sleep "0.$(( RANDOM % 4 ))$(( RANDOM % 10 ))"; } # the chaos's random timing
drained() {
  "$FL_BIN/ckring-inspect" segment "${FL_SEG[A]}" --json |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["flusher"]["lag_bytes"] == 0 else 1)'
}

kills=0; restarts=0; outage_loads=0
start_shipper
while [ "$kills" -lt "$KILLS" ] || [ "$restarts" -lt "$RESTARTS" ]; do
  load_running || { wait "$load_pid" 2>/dev/null || true; start_load; }
  gap
  if [ "$restarts" -lt "$RESTARTS" ] && [ $(( RANDOM % 8 )) = 0 -o "$kills" -ge "$KILLS" ]; then
    mode=fast; [ $(( RANDOM % 2 )) = 0 ] && mode=immediate
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m "$mode" -w -t 60 stop >/dev/null
    PG_RUNNING=0
    # The local path goes on without PostgreSQL: a whole load, drained.
    wait "$load_pid" 2>/dev/null || true
    start_load "o$restarts-"
    wait "$load_pid" || fl_fail "a load failed while PostgreSQL was down"
    fl_wait "the flusher to drain while PostgreSQL is down" drained
    outage_loads=$((outage_loads + 1))
    _pg_up
    restarts=$((restarts + 1))
  else
    fl_kill "$ship_pid"
    kills=$((kills + 1))
    start_shipper
  fi
done
wait "$load_pid" 2>/dev/null || true
fl_wait "the flusher to drain" drained
kill -TERM "$ship_pid"; wait "$ship_pid" || true
"$FL_BIN/ckring-ship" --db "${FL_DB[A]}" --pg "$PG_CONN" --host A --once >>"$FL_TMP/ship-A.log" 2>&1 ||
  fl_fail "the final shipper failed"
"$FL_HELP/pgverify" --pg "$PG_CONN" --manifest "$FL_TMP/manifest" --db "${FL_DB[A]}" \
  --host A --state running >"$FL_TMP/verify.log" || { cat "$FL_TMP/verify.log"; fl_fail "verify"; }
echo "pg_torture: $kills shipper kills, $restarts PostgreSQL restarts ($outage_loads loads run and drained while it was down), $inv load invocations, $(( $(date +%s) - start )) s"
echo "$(cat "$FL_TMP/verify.log"); the database equals the local store"
