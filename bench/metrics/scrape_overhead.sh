#!/usr/bin/env bash
# bench/metrics/scrape_overhead.sh — does scraping ckring-flusher's metrics slow the
# drain? (BENCHMARKS.md, "Metrics").
#
#   1. the real pipeline: a ckring-flusher with --metrics drains what
#      ckring-load pushes (2 processes, 128 B events, sync=always); the
#      drain rate is the events over the time until every one is committed.
#      Runs alternate: no scraper / a 10 Hz scraper (curl of /metrics), REPS
#      times each, in one session; medians and their ratio;
#   2. ckring-bench --only ckring.drain (the in-process drain benchmark),
#      alone and with a 10 Hz scraper of a live flusher beside it.
# Prints the numbers and the load average before and after.
#
# usage: bench/metrics/scrape_overhead.sh [--reps N] [--events N]   (defaults 5, 20000)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BUILD:-$top/build}/bin
REPS=5
EVENTS=20000
while [ $# -gt 0 ]; do
  case $1 in
    --reps) REPS=$2; shift 2 ;;
    --events) EVENTS=$2; shift 2 ;;
    *) echo "usage: $0 [--reps N] [--events N]" >&2; exit 2 ;;
  esac
done
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -f /dev/shm/ckr-scrape-*
  rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s.%N; }

# CPU ticks of the drain thread (the flusher's main thread: TID = PID), so
# the comparison does not depend on what else the machine runs.
drain_cpu() { awk '{ print $14 + $15 }' "/proc/$1/task/$1/stat"; }

scraper() { # URL: 10 scrapes a second until killed
  while :; do curl -s -o /dev/null "$1" || true; sleep 0.1; done
}

# One run: start a flusher, push, wait until all is committed. Prints the rate.
one_run() { # SCRAPE(0|1) N
  local seg="ckr-scrape-$$-$2" db="$tmp/db$2" total port spid="" t0 t1
  mkdir "$db"
  "$bin/ckring-flusher" --segment "$seg" --db "$db" --create --size 33554432 --lanes 4 \
    --metrics 127.0.0.1:0 2>"$tmp/f$2.err" &
  local fpid=$!
  pids+=("$fpid")
  until grep -q 'metrics on port' "$tmp/f$2.err"; do sleep 0.05; done
  port=$(sed -n 's/.*metrics on port \([0-9]*\).*/\1/p' "$tmp/f$2.err")
  if [ "$1" = 1 ]; then scraper "http://127.0.0.1:$port/metrics" & spid=$!; pids+=("$spid"); fi
  total=$((2 * 4 * (EVENTS + 1)))
  local c0 c1
  c0=$(drain_cpu "$fpid")
  t0=$(now)
  "$bin/ckring-load" --segment "$seg" --procs 2 --threads 1 --runs 4 --events "$EVENTS" \
    --size 128 --finish leave >/dev/null
  until [ "$("$bin/ckring-inspect" segment "$seg" --json | sed -n 's/.*"lag_bytes": \([0-9]*\).*/\1/p' | tail -n 1)" = 0 ]; do
    sleep 0.005
  done
  t1=$(now)
  c1=$(drain_cpu "$fpid")
  [ -z "$spid" ] || kill "$spid" 2>/dev/null || true
  kill -TERM "$fpid"; wait "$fpid" 2>/dev/null || true
  awk -v n="$total" -v a="$t0" -v b="$t1" -v x="$c0" -v y="$c1" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.0f %.2f\n", n / (b - a), (y - x) / hz * 1e9 / n }'
  rm -rf "$db"; rm -f "/dev/shm/$seg"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "1. ckring-flusher --metrics draining ckring-load (2 procs x 4 runs x $EVENTS x 128 B, sync=always)"
: >"$tmp/a"; : >"$tmp/b"
for i in $(seq "$REPS"); do
  read -r a ac < <(one_run 0 "a$i"); read -r b bc < <(one_run 1 "b$i")
  echo "   rep $i: no scraper $a events/s ($ac ns drain-thread CPU an event), 10 Hz scraper $b events/s ($bc ns)"
  echo "$a" >>"$tmp/a"; echo "$b" >>"$tmp/b"; echo "$ac" >>"$tmp/ac"; echo "$bc" >>"$tmp/bc"
done
ma=$(median <"$tmp/a"); mb=$(median <"$tmp/b"); mac=$(median <"$tmp/ac"); mbc=$(median <"$tmp/bc")
echo "   median: no scraper $ma, 10 Hz scraper $mb events/s; ratio $(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", b / a }')"
echo "   median drain-thread CPU an event: no scraper $mac ns, 10 Hz scraper $mbc ns; ratio $(awk -v a="$mac" -v b="$mbc" 'BEGIN { printf "%.3f", b / a }')"
echo "   load average: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "2. ckring-bench --only ckring.drain --sizes 128, alone and beside a 10 Hz scraper"
mkdir "$tmp/dbs"
"$bin/ckring-flusher" --segment "ckr-scrape-$$-s" --db "$tmp/dbs" --create --metrics 127.0.0.1:0 \
  2>"$tmp/fs.err" &
pids+=("$!")
until grep -q 'metrics on port' "$tmp/fs.err"; do sleep 0.05; done
port=$(sed -n 's/.*metrics on port \([0-9]*\).*/\1/p' "$tmp/fs.err")
bench_rate() {
  "$bin/ckring-bench" --only ckring.drain --sizes 128 --json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f" % [r for r in d["results"] if r["name"]=="ckring.drain"][0]["ops_per_s"])'
}
: >"$tmp/c"; : >"$tmp/d"
for i in $(seq "$REPS"); do
  c=$(bench_rate)
  scraper "http://127.0.0.1:$port/metrics" & spid=$!; pids+=("$spid")
  d=$(bench_rate)
  kill "$spid"
  echo "   rep $i: alone $c events/s, with the scraper $d events/s"
  echo "$c" >>"$tmp/c"; echo "$d" >>"$tmp/d"
done
mc=$(median <"$tmp/c"); md=$(median <"$tmp/d")
echo "   median: alone $mc, with the scraper $md events/s; ratio $(awk -v a="$mc" -v b="$md" 'BEGIN { printf "%.3f", b / a }')"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
