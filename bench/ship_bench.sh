#!/usr/bin/env bash
# bench/ship_bench.sh — the shipping benchmarks (BENCHMARKS.md, "Shipping to
# PostgreSQL"), against a private server (tests/pg/pg.sh) on this machine:
#   ckring.ship   events/s of ckring-ship --once draining a filled change
#                 log into the database (one transaction per 20000 rows)
#   pg.copy       the same rows by plain binary COPY, same batches: the
#                 ceiling (bench/ship_bench.c pgcopy)
#   push -> REPLICATED / COMMITTED / SYNCED latency at 1 k/s, one run
#   drain         a load's push + drain time with and without a shipper
# at 128 B and 1 KiB. Prints one line per figure and the load average.
set -euo pipefail
FL_TMP=$(mktemp -d /tmp/ckring-shipbench.XXXXXX)
source "$(dirname "$0")/../tests/fleet/fleet.sh"
trap fl_cleanup EXIT
SB=$FL_BUILD/bench/ship_bench
EVENTS=${EVENTS:-12500}   # x 16 runs: 200000 rows per size

pg_start "$FL_TMP/pg"
"$FL_BIN/ckring-ship" --pg "$PG_CONN" --init-schema
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

drain_time() { # HOST SIZE EVENTS PREFIX: seconds from the load's start to drained
  local t0 t1
  t0=$(date +%s.%N)
  "$FL_BIN/ckring-load" --segment "${FL_SEG[$1]}" --procs 2 --threads 2 --runs 4 \
    --events "$3" --size "$2" --prefix "$4" >/dev/null
  fl_wait drained drained_ "$1"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
drained_() {
  "$FL_BIN/ckring-inspect" segment "${FL_SEG[$1]}" --json |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["flusher"]["lag_bytes"] == 0 else 1)'
}

for size in 128 1024; do
  h=s$size
  pg_psql "DELETE FROM ckring_events; DELETE FROM ckring_runs; DELETE FROM ckring_hosts;" >/dev/null
  fl_host "$h"
  "$FL_BIN/ckring-ship" --db "${FL_DB[$h]}" --pg "$PG_CONN" --host "$h" --once 2>/dev/null
  d=$(drain_time "$h" "$size" "$EVENTS" "")
  rows=$((16 * (EVENTS + 1)))
  t0=$(date +%s.%N)
  "$FL_BIN/ckring-ship" --db "${FL_DB[$h]}" --pg "$PG_CONN" --host "$h" --once 2>/dev/null
  t1=$(date +%s.%N)
  got=$(fl_rows)
  [ "$got" = "$rows" ] || fl_fail "shipped $got rows, want $rows"
  ship=$(awk -v a="$t0" -v b="$t1" -v n="$rows" 'BEGIN { printf "%.0f", n / (b - a) }')
  copy=$("$SB" pgcopy --pg "$PG_CONN" --db "${FL_DB[$h]}" --batch 20000 | awk '{ print $6 }')
  ratio=$(awk -v a="$ship" -v b="$copy" 'BEGIN { printf "%.2f", a / b }')
  echo "size $size: ckring.ship $ship rows/s, pg.copy $copy rows/s, ratio $ratio ($rows rows; load $(cut -d' ' -f1 /proc/loadavg))"
  # The embedded path without, then with, a shipper running.
  d0=$(drain_time "$h" "$size" "$EVENTS" "x-")
  nice -n 10 "$FL_BIN/ckring-ship" --db "${FL_DB[$h]}" --pg "$PG_CONN" --host "$h" \
    >>"$FL_TMP/ship-$h.log" 2>&1 &   # as the unit runs it (Nice=10)
  FL_SHIPPER[$h]=$!
  FL_PIDS+=("$!")
  d1=$(drain_time "$h" "$size" "$EVENTS" "y-")
  echo "size $size: push+drain of $rows events: ${d0} s without a shipper, ${d1} s with one running (load $(cut -d' ' -f1 /proc/loadavg))"
  for lv in committed synced replicated; do
    echo "size $size: push -> $lv at 1 k/s: $("$SB" latency --segment "${FL_SEG[$h]}" --level $lv --count 2000 --rate 1000 --size "$size") (load $(cut -d' ' -f1 /proc/loadavg))"
  done
  fl_kill "${FL_SHIPPER[$h]}"
  for lv in committed synced; do
    echo "size $size: push -> $lv at 1 k/s, no shipper: $("$SB" latency --segment "${FL_SEG[$h]}" --level $lv --count 2000 --rate 1000 --size "$size")"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
