#!/usr/bin/env bash
# try.sh — the Go example's recovery story, narrated (make go-example):
# a flusher on a fresh segment and store, the Go executor SIGKILLed in the
# middle of two runs, the Go host recovering them, then the store as
# ckring-inspect shows it. Everything is removed at the end.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
# shellcheck source=../../bindings/go/env.sh
. "$top/bindings/go/env.sh" "$build"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ckring-go-example.XXXXXX")
seg="ckgo-try-$$"
flusher=""
cleanup() {
  [ -z "$flusher" ] || { kill -TERM "$flusher" 2>/dev/null || true; wait "$flusher" 2>/dev/null || true; }
  rm -f "/dev/shm/$seg"
  rm -rf "$tmp"
}
trap cleanup EXIT

(cd "$here" && go build -o "$tmp/" ./executor ./host)
mkdir "$tmp/db"
echo "== a flusher serves segment $seg, store $tmp/db"
"$CKRING_BIN/ckring-flusher" --segment "$seg" --db "$tmp/db" --create --size 4194304 --lanes 4 &
flusher=$!
for _ in $(seq 1 500); do # bounded: 5 s
  "$CKRING_BIN/ckring-inspect" segment "$seg" --json 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["flusher"]["alive"] else 1)' \
    2>/dev/null && break
  sleep 0.01
done
echo "== the Go executor: two short runs, then two long ones, killed in their middle"
"$tmp/executor" -segment "$seg" -crash-after 2 || echo "(executor died: status $?)"
echo "== boot: the Go host recovers what the dead executor left"
"$tmp/host" -segment "$seg" -db "$tmp/db"
echo "== the store"
"$CKRING_BIN/ckring-inspect" db "$tmp/db"
