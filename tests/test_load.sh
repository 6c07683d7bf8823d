#!/usr/bin/env bash
# ckring-load: argument errors exit 2 with one clear line; a run against a
# real flusher leaves an ack file whose every entry is N, and the store holds
# every run with N messages of exactly the docs/DESIGN.md §9 payload.
set -euo pipefail
B=${BUILD:-build}/bin
seg="ckrt-load-$$"
db=$(mktemp -d /tmp/ckrt-load-XXXXXX)
acks="$db/acks"
fl=""
cleanup() {
  [ -n "$fl" ] && kill -TERM "$fl" 2>/dev/null && wait "$fl" 2>/dev/null || true
  rm -f "/dev/shm/$seg"; rm -rf "$db"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

expect_usage() { # args...: must exit 2 with exactly one line on stderr
  set +e; err=$("$B/ckring-load" "$@" 2>&1 >/dev/null); rc=$?; set -e
  [ "$rc" = 2 ] || fail "ckring-load $* exited $rc, want 2"
  [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "ckring-load $*: stderr not one line: $err"
}
expect_usage
expect_usage --segment s --procs 1 --threads 1 --runs 1 --events 1
expect_usage --segment s --procs 0 --threads 1 --runs 1 --events 1 --size 64
expect_usage --segment s --procs 1 --threads 1 --runs 1 --events 1 --size 15
expect_usage --segment s --procs 1 --threads 1 --runs 1 --events 1 --size 64 --finish maybe
expect_usage --segment s --procs x --threads 1 --runs 1 --events 1 --size 64
expect_usage --bogus
expect_usage --segment s --procs 1 --threads 1 --runs 1 --events 1 --size 64 extra
"$B/ckring-load" --help | grep -q "usage: ckring-load" || fail "--help"

set +e; err=$("$B/ckring-load" --segment "$seg" --procs 1 --threads 1 --runs 1 --events 1 --size 64 --wait-ms 0 2>&1); rc=$?; set -e
[ "$rc" = 1 ] || fail "missing segment exited $rc, want 1"
echo "$err" | grep -q "No such file" || fail "missing segment message: $err"
expect_usage --segment s --procs 1 --threads 1 --runs 1 --events 1 --size 64 --wait-ms -1
set +e; err=$("$B/ckring-load" --segment "$seg" --procs 1 --threads 1 --runs 1 --events 1 --size 64 --wait-ms 50 2>&1); rc=$?; set -e
[ "$rc" = 1 ] || fail "missing segment (--wait-ms 50) exited $rc, want 1"
[ "$err" = "ckring-load: segment '$seg': No such file or directory (waited 50 ms for it to appear)" ] ||
  fail "missing segment message after a wait: $err"

"$B/ckring-flusher" --segment "$seg" --db "$db" --create --lanes 8 --size 4194304 &
fl=$!
for _ in $(seq 3000); do [ -e "/dev/shm/$seg" ] && [ -e "$db/data.mdb" ] && break; sleep 0.01; done
P=2 T=2 R=3 N=200 S=100
"$B/ckring-load" --segment "$seg" --procs $P --threads $T --runs $R --events $N \
  --size $S --prefix ld- --ack-file "$acks" --finish leave
kill -TERM "$fl"; wait "$fl"; fl=""

python3 - "$acks" $P $T $R $N <<'PY'
import struct, sys
path, P, T, R, N = sys.argv[1], *map(int, sys.argv[2:])
data = open(path, 'rb').read()
assert len(data) == 8 * P * T * R, len(data)
vals = struct.unpack('<%dQ' % (P * T * R), data)
assert all(v == N for v in vals), vals
PY

# Every run, every message, byte-exact (docs/DESIGN.md §9 payload rule).
out=$("$B/ckring-inspect" run "$db" "ld-p1-t1-r2" --json)
OUT="$out" python3 - "$S" "$N" <<'PY'
import base64, json, os, sys
S, N = int(sys.argv[1]), int(sys.argv[2])
doc = json.loads(os.environ["OUT"])
rid = "ld-p1-t1-r2".encode()
h = 0xcbf29ce484222325
for b in rid:
    h ^= b; h = (h * 0x100000001b3) & 0xffffffffffffffff
hist = doc["history"]
assert len(hist) == N and doc["gaps"] == [], (len(hist), doc["gaps"])
for m, e in enumerate(hist):
    d = base64.b64decode(e["data_b64"])
    want = m.to_bytes(8, 'little') + h.to_bytes(8, 'little') + bytes(((h + 31*m + i) & 0xff) for i in range(16, S))
    assert e["seq"] == m + 1 and d == want, m
PY
echo "ckring-load: argument errors, ack file and payloads verified"
