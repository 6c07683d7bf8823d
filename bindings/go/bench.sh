#!/usr/bin/env bash
# bench.sh — what the Go binding adds to a push (make bench-go): in one run,
# the C push (ckr_run_message, bench/push_loop.c) and the Go push
# (Run.Message, BenchmarkMessage128 in bench_test.go) of the same payload,
# timed the same way: bursts of 4096 pushes timed in blocks of 64 with the
# monotonic clock, an untimed wait for the flusher between bursts, p50 over
# the blocks' per-push times and the mean over all pushes; each against a
# real ckring-flusher (--sync none) on a fresh segment. Rounds alternate C
# and Go; the medians of the rounds are compared. Also shown: the floor of
# any cgo call (BenchmarkCgoNoop), the allocations per push (0 is the
# target), ckring-bench's lane-level ckring.push for reference, and the
# load average before and after.
#
#   bash bindings/go/bench.sh [OPS [ROUNDS [SIZE]]]   (defaults 2000000 5 128)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
ops=${1:-2000000}
rounds=${2:-5}
size=${3:-128}
[ "$size" = 128 ] || { echo "bench.sh: the Go benchmark is of 128 B pushes" >&2; exit 2; }
# shellcheck source=env.sh
. "$here/env.sh" "$build"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ckring-bench-go.XXXXXX")
seg="ckgo-bench-$$"
flusher=""
cleanup() {
  [ -z "$flusher" ] || { kill -TERM "$flusher" 2>/dev/null || true; wait "$flusher" 2>/dev/null || true; }
  rm -f "/dev/shm/$seg"
  rm -rf "$tmp"
}
trap cleanup EXIT

cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra $(pkg-config --cflags ckring) \
  -o "$tmp/push_loop" "$here/bench/push_loop.c" $(pkg-config --libs ckring)
(cd "$here" && go test -c -o "$tmp/ckring.test" .)

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average before: $(load)   ($(nproc) CPUs; $(go version | cut -d' ' -f3))"

mkdir "$tmp/db"
"$CKRING_BIN/ckring-flusher" --segment "$seg" --db "$tmp/db" --create --size $((64 << 20)) \
  --lanes 2 --sync none 2>"$tmp/flusher.log" &
flusher=$!
for _ in $(seq 1 500); do # bounded: 5 s
  "$CKRING_BIN/ckring-inspect" segment "$seg" --json 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["flusher"]["alive"] else 1)' \
    2>/dev/null && break
  sleep 0.01
done

c_p50=(); c_mean=(); go_p50=(); go_mean=(); go_allocs=""
for r in $(seq 1 "$rounds"); do
  line=$("$tmp/push_loop" "$seg" "$ops" "$size" "bench-c-$r")
  c_p50+=("$(sed -n 's/.*p50 \([0-9.]*\) ns.*/\1/p' <<<"$line")")
  c_mean+=("$(sed -n 's/.*mean \([0-9.]*\) ns.*/\1/p' <<<"$line")")
  line=$(cd "$here" && "$tmp/ckring.test" -test.run '^$' -test.bench '^BenchmarkMessage128$' \
    -test.benchtime "${ops}x" | grep '^BenchmarkMessage128')
  go_p50+=("$(awk '{for(i=1;i<=NF;i++) if($i=="p50-ns/op") print $(i-1)}' <<<"$line")")
  go_mean+=("$(awk '{for(i=1;i<=NF;i++) if($i=="mean-ns/op") print $(i-1)}' <<<"$line")")
  go_allocs=$(awk '{for(i=1;i<=NF;i++) if($i=="allocs/op") print $(i-1)}' <<<"$line")
  printf '  round %d: C p50 %6s mean %6s | Go p50 %6s mean %6s ns/push\n' "$r" \
    "${c_p50[-1]}" "${c_mean[-1]}" "${go_p50[-1]}" "${go_mean[-1]}"
done
noop=$(cd "$here" && "$tmp/ckring.test" -test.run '^$' -test.bench '^BenchmarkCgoNoop$' |
  awk '/^BenchmarkCgoNoop/ {for(i=1;i<=NF;i++) if($i=="p50-ns/op") print $(i-1)}')

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
cp=$(median "${c_p50[@]}"); cm=$(median "${c_mean[@]}")
gp=$(median "${go_p50[@]}"); gm=$(median "${go_mean[@]}")
echo
printf '%-34s %10s %10s\n' "$size B push, median of $rounds rounds" "p50 ns" "mean ns"
printf '%-34s %10s %10s\n' "C   ckr_run_message" "$cp" "$cm"
printf '%-34s %10s %10s\n' "Go  Run.Message" "$gp" "$gm"
awk -v gp="$gp" -v cp="$cp" -v gm="$gm" -v cm="$cm" \
  'BEGIN { printf "%-34s %10.1f %10.1f\n", "added by the binding", gp - cp, gm - cm }'
echo "Go allocations per push: $go_allocs   (target 0)"
echo "floor of any cgo call (BenchmarkCgoNoop, p50): $noop ns"
echo "load average after: $(load)"
echo
echo "for reference, ckring-bench's lane-level push (ckr_lane_push, no run layer):"
"$CKRING_BIN/ckring-bench" --only ckring.push --sizes "$size" --quick --threads 1 2>&1 | sed 's/^/  /' ||
  echo "  (ckring-bench did not run with these flags)"
