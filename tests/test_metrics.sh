#!/usr/bin/env bash
# test_metrics.sh — ckring-flusher's metrics, checked by the real tools:
#   - a live scrape of --metrics (libmicrohttpd) and the --metrics-file pass
#     `promtool check metrics`; the stored-events counter is what the load
#     pushed; the file is replaced atomically (never seen half-written);
#   - a real Prometheus server (Debian's `prometheus`), started here on
#     127.0.0.1 with a temp config and data dir, scrapes a live flusher under
#     load (ckring-load) and its HTTP API (/api/v1/query) answers the
#     stored-events counter, up to the final count;
#   - bad --metrics / --metrics-file arguments: exit 2 / exit 1, one line.
# Every wait is bounded and polls for the event it waits for. Prints one
# "ok - ..." line per check.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
bin="$build/bin"
seg="ckrt-met-$$-$RANDOM"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ckring-test-metrics.XXXXXX")
pids=()
passed=0

cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -f "/dev/shm/$seg"
  rm -rf "$tmp"
}
trap cleanup EXIT
ok() { echo "ok - $*"; passed=$((passed + 1)); }
die() { echo "FAIL: $*" >&2; [ -f "$tmp/flusher.err" ] && sed 's/^/  | /' "$tmp/flusher.err" >&2; exit 1; }

# wait_for SECONDS CMD...: run CMD until it succeeds (bounded).
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.1
  done
}

for t in promtool curl; do
  command -v "$t" >/dev/null || die "$t is missing (make deps installs it)"
done

mkdir "$tmp/db"
"$bin/ckring-flusher" --segment "$seg" --db "$tmp/db" --create --metrics 127.0.0.1:0 \
  --metrics-file "$tmp/ckring.prom" 2>"$tmp/flusher.err" &
fpid=$!
pids+=("$fpid")
port_known() { grep -q 'metrics on port [0-9]' "$tmp/flusher.err"; }
wait_for 30 port_known || die "the flusher did not say its metrics port"
port=$(sed -n 's/.*metrics on port \([0-9]*\).*/\1/p' "$tmp/flusher.err")
url="http://127.0.0.1:$port/metrics"

# ---- promtool on a live scrape and on the file ----
"$bin/ckring-load" --segment "$seg" --procs 1 --threads 2 --runs 4 --events 100 --size 64 \
  --finish leave >/dev/null
want=$((2 * 4 * 101))
stored() { curl -fsS "$url" | awk '$1 == "ckring_events_stored_total" { print $2 }'; }
all_stored() { [ "$(stored)" = "$want" ]; }
wait_for 30 all_stored || die "ckring_events_stored_total is $(stored), want $want"
ok "the stored-events counter is what the load pushed ($want)"
curl -fsS "$url" >"$tmp/scrape.txt"
promtool check metrics <"$tmp/scrape.txt" >"$tmp/promtool.out" 2>&1 ||
  { cat "$tmp/promtool.out" >&2; die "promtool check metrics refused the scrape"; }
ok "promtool check metrics passes a live scrape ($(grep -c '^ckring_' "$tmp/scrape.txt") samples)"
for m in ckring_events_rejected_total ckring_records_corrupt_total \
         ckring_records_quarantined_total ckring_claims_reclaimed_total \
         ckring_lane_refused_total ckring_lane_lag_bytes \
         ckring_lane_oldest_unflushed_age_seconds ckring_runs ckring_runs_interrupted \
         ckring_oldest_interrupted_run_age_seconds ckring_store_map_size_bytes \
         ckring_store_map_used_bytes ckring_commit_duration_seconds_bucket \
         ckring_fsync_duration_seconds_count ckring_batch_size_events_bucket \
         ckring_flusher_heartbeat_age_seconds; do
  grep -q "^$m[{ ]" "$tmp/scrape.txt" || die "no $m in the scrape"
done
ok "the scrape has every metric family of the issue"
file_stored() { [ -f "$tmp/ckring.prom" ] &&
  awk '$1 == "ckring_events_stored_total" { print $2 }' "$tmp/ckring.prom" | grep -qx "$want"; }
wait_for 30 file_stored || die "the metrics file never showed $want stored events"
promtool check metrics <"$tmp/ckring.prom" >"$tmp/promtool.out" 2>&1 ||
  { cat "$tmp/promtool.out" >&2; die "promtool check metrics refused the file"; }
ls "$tmp" | grep -q 'ckring.prom.tmp' && die "a temp file was left beside the metrics file"
ok "--metrics-file is written (temp + rename) and passes promtool"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nope")" = 404 ] ||
  die "an unknown path is not 404"
ok "an unknown path answers 404"

# ---- a real Prometheus scraping the live flusher under load ----
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pport=$(free_port)
mkdir "$tmp/prom"
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: ckring
    static_configs:
      - targets: ['127.0.0.1:$port']
EOF
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
  --web.listen-address="127.0.0.1:$pport" --log.level=warn >"$tmp/prom.log" 2>&1 &
ppid=$!
pids+=("$ppid")
query() {
  curl -fsS "http://127.0.0.1:$pport/api/v1/query" \
    --data-urlencode 'query=ckring_events_stored_total{job="ckring"}' 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["data"]["result"]; print(r[0]["value"][1] if r else "none")' 2>/dev/null
}
seen_idle() { [ "$(query)" = "$want" ]; }
wait_for 60 seen_idle || { tail -n 20 "$tmp/prom.log" >&2; die "Prometheus never scraped the idle flusher (last: $(query || true))"; }
ok "Prometheus (127.0.0.1:$pport) scrapes the flusher: ckring_events_stored_total = $want"
# Load until Prometheus has scraped a value taken while a load ran.
per_load=$((2 * 2 * 4 * 302)) # begin, 300 messages, complete: all applied
(
  n=0
  while [ ! -e "$tmp/stop" ]; do
    "$bin/ckring-load" --segment "$seg" --procs 2 --threads 2 --runs 4 --events 300 \
      --size 128 --prefix "big$n-" --finish complete >/dev/null || exit 1
    n=$((n + 1))
    echo "$n" >"$tmp/loads"
  done
) &
lpid=$!
pids+=("$lpid")
seen_under_load() { v=$(query) && [ "$v" != none ] && [ "${v%.*}" -gt "$want" ] &&
  [ ! -e "$tmp/stop" ]; }
wait_for 60 seen_under_load || die "Prometheus never saw the counter move under load (last: $(query || true))"
ok "Prometheus scraped the flusher under load: ckring_events_stored_total = $(query) while loading"
touch "$tmp/stop"
wait "$lpid" || die "a load failed"
final=$((want + $(cat "$tmp/loads") * per_load))
seen_final() { [ "$(query)" = "$final" ]; }
wait_for 60 seen_final || die "Prometheus answers $(query), want $final"
ok "Prometheus's /api/v1/query answers the final count ($final, $(cat "$tmp/loads") loads)"
kill -TERM "$ppid"; wait "$ppid" 2>/dev/null || true

# ---- bad arguments ----
set +e
out=$("$bin/ckring-flusher" --segment "$seg-x" --db "$tmp/db" --metrics nonsense 2>&1); rc=$?
set -e
[ "$rc" = 2 ] && [ "$(echo "$out" | wc -l)" = 1 ] || die "--metrics nonsense: rc $rc: $out"
ok "--metrics nonsense: exit 2, one line ($out)"
mkdir "$tmp/db2"
set +e
out=$("$bin/ckring-flusher" --segment "$seg-y" --db "$tmp/db2" --create --metrics "127.0.0.1:$port" 2>&1); rc=$?
set -e
rm -f "/dev/shm/$seg-y"
[ "$rc" = 1 ] && echo "$out" | grep -q 'Address already in use' || die "port in use: rc $rc: $out"
ok "--metrics on a port in use: exit 1 ($(echo "$out" | head -n 1))"
set +e
mkdir "$tmp/db3"
out=$("$bin/ckring-flusher" --segment "$seg-z" --db "$tmp/db3" --create --metrics-file /nonexistent/dir/x.prom 2>&1); rc=$?
set -e
rm -f "/dev/shm/$seg-z"
[ "$rc" = 1 ] || die "--metrics-file in a missing directory: rc $rc: $out"
ok "--metrics-file in a missing directory: exit 1 ($(echo "$out" | head -n 1))"

kill -TERM "$fpid"; wait "$fpid" || die "the flusher did not exit 0"
pids=()
echo "test_metrics: $passed passed, 0 failed"
