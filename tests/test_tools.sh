#!/usr/bin/env bash
# test_tools.sh — the command-line contract of docs/DESIGN.md §9, end to end, with the
# real binaries in $BUILD/bin (default build/bin):
#   - a flusher serves a fresh segment; ckring-load drives 8 runs of 20
#     messages; ckring-inspect (segment, db, run) answers with the JSON keys
#     of §7 and the right counts and contents;
#   - with the flusher stopped, the segment is still inspectable and the
#     pending records decode;
#   - every tool answers --help (exit 0); usage errors exit 2; a missing,
#     foreign or truncated segment exits 1 with one line on stderr;
#   - the flusher exits 0 on SIGTERM; the demo tells its story and loses
#     nothing.
# Prints one "ok - ..." line per check; exit 0 when all passed.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
bin="$build/bin"
for t in ckring-flusher ckring-inspect ckring-load ckring-bench ckring-demo; do
  [ -x "$bin/$t" ] || { echo "test_tools: missing $bin/$t (make tools)" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "test_tools: python3 is required" >&2; exit 1; }

seg="ckrt-$$-$RANDOM"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ckring-test-tools.XXXXXX")
db="$tmp/db"
mkdir "$db"
flusher_pid=""
passed=0

cleanup() {
  if [ -n "$flusher_pid" ] && kill -0 "$flusher_pid" 2>/dev/null; then
    kill -KILL "$flusher_pid" 2>/dev/null || true
    wait "$flusher_pid" 2>/dev/null || true
  fi
  rm -f "/dev/shm/$seg" "/dev/shm/$seg-garbage" "/dev/shm/$seg-empty" \
        "/dev/shm/$seg-trunc" "/dev/shm/$seg-demo"
  rm -rf "$tmp"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { echo "FAIL - $*" >&2; exit 1; }

# expect_status WANT DESCRIPTION CMD... : run CMD, check its exit status.
expect_status() {
  local want=$1 what=$2 st=0
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err" || st=$?
  [ "$st" -eq "$want" ] || { cat "$tmp/err" >&2; fail "$what: exit $st, want $want"; }
}

# expect_one_line_error WANT DESCRIPTION CMD... : exit WANT, exactly one line
# on stderr, nothing on stdout.
expect_one_line_error() {
  local want=$1 what=$2
  shift 2
  expect_status "$want" "$what" "$@"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || { cat "$tmp/err" >&2; fail "$what: not one line on stderr"; }
  [ ! -s "$tmp/out" ] || fail "$what: unexpected output on stdout"
  ok "$what (exit $want: $(cat "$tmp/err"))"
}

inspect_json() { "$bin/ckring-inspect" "$@" --json; }

# ---------------------------------------------------------------- help/usage

check_help_and_usage() {
  local t
  for t in ckring-flusher ckring-inspect ckring-load ckring-bench ckring-demo; do
    expect_status 0 "$t --help" "$bin/$t" --help
    grep -q usage "$tmp/out" || fail "$t --help: no usage on stdout"
    expect_status 2 "$t --no-such-option" "$bin/$t" --no-such-option
    [ -s "$tmp/err" ] || fail "$t: usage error without a message"
  done
  ok "every tool answers --help (exit 0) and rejects an unknown option (exit 2)"
  expect_status 2 "flusher missing argument" "$bin/ckring-flusher" --segment
  expect_status 2 "flusher without --db" "$bin/ckring-flusher" --segment "$seg"
  expect_status 2 "load missing argument" "$bin/ckring-load" --segment
  expect_status 2 "demo missing argument" "$bin/ckring-demo" --segment
  expect_status 2 "inspect without a command" "$bin/ckring-inspect"
  expect_status 2 "inspect unknown command" "$bin/ckring-inspect" frobnicate
  expect_status 2 "inspect segment without NAME" "$bin/ckring-inspect" segment
  expect_status 2 "inspect run without RUN_ID" "$bin/ckring-inspect" run "$db"
  expect_status 2 "inspect --watch --json" "$bin/ckring-inspect" segment "$seg" --watch --json
  expect_status 2 "inspect db --records" "$bin/ckring-inspect" db "$db" --records
  ok "usage errors exit 2 (missing argument, no command, --watch --json, ...)"
}

# ------------------------------------------------------------ flusher + load

start_flusher() {
  "$bin/ckring-flusher" --segment "$seg" --db "$db" --create --size 4194304 --lanes 8 &
  flusher_pid=$!
  local i
  for i in $(seq 1 300); do # bounded: 30 s
    if inspect_json segment "$seg" >"$tmp/seg.json" 2>/dev/null &&
       python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["flusher"]["alive"] else 1)' \
         "$tmp/seg.json"; then
      ok "flusher serves $seg (pid $flusher_pid)"
      return
    fi
    kill -0 "$flusher_pid" 2>/dev/null || fail "the flusher exited at start"
    sleep 0.1
  done
  fail "the flusher did not start within 30 s"
}

# Poll until every lane's tail equals its head (bounded: 30 s).
wait_drained() {
  local i
  for i in $(seq 1 300); do
    inspect_json segment "$seg" >"$tmp/seg.json"
    if python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if sum(l["tail"] - l["head"] for l in d["lanes"]) == 0 else 1)' "$tmp/seg.json"; then
      ok "the flusher drained the ring (lag 0)"
      return
    fi
    sleep 0.1
  done
  fail "the ring was not drained within 30 s"
}

run_load() {
  "$bin/ckring-load" --segment "$seg" --procs 2 --threads 2 --runs 2 --events 20 \
    --size 64 --finish leave >"$tmp/load.out" 2>&1 ||
    { cat "$tmp/load.out" >&2; fail "ckring-load failed"; }
  ok "ckring-load: 2 procs x 2 threads x 2 runs x 20 messages of 64 B"
}

# ------------------------------------------------------------- JSON checks

check_segment_json() {
  python3 - "$tmp/seg.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
def need(obj, keys, where):
    missing = [k for k in keys if k not in obj]
    assert not missing, f"{where}: missing keys {missing}"
need(d, ["name", "version", "epoch", "lanes", "counters", "flusher"], "segment")
for l in d["lanes"]:
    need(l, ["index", "owner_pid", "owner_alive", "head", "tail", "capacity"], "lane")
need(d["counters"], ["pushed", "refused_full", "reclaimed", "corrupt"], "counters")
need(d["flusher"], ["pid", "alive", "heartbeat_age_ms", "committed", "synced"], "flusher")
assert d["flusher"]["alive"] is True, "flusher not alive"
# 8 runs: one begin + 20 messages each
assert d["counters"]["pushed"] == 8 * 21, f'pushed {d["counters"]["pushed"]}'
assert d["counters"]["corrupt"] == 0
assert d["flusher"]["committed"] == sum(l["head"] for l in d["lanes"])
assert isinstance(d["epoch"], str) and len(d["epoch"]) == 32
EOF
  ok "segment --json: the keys of docs/DESIGN.md §9; pushed = 168; committed = sum of heads"
}

check_db_json() {
  inspect_json db "$db" >"$tmp/db.json"
  python3 - "$tmp/db.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
runs = d["runs"]
assert len(runs) == 8, f"{len(runs)} runs"
keys = ["id", "state", "kind", "owner_pid", "owner_alive", "events", "last_seq",
        "attempts", "error"]
want_ids = {f"p{p}-t{t}-r{r}" for p in range(2) for t in range(2) for r in range(2)}
assert {r["id"] for r in runs} == want_ids, "run ids"
for r in runs:
    missing = [k for k in keys if k not in r]
    assert not missing, f"run {r.get('id')}: missing {missing}"
    assert r["state"] == "running" and r["kind"] == "single_loop", r
    assert r["last_seq"] == 20, r                  # 20 messages after the begin
    assert r["events"] in (20, 21), r              # with or without the begin row
    assert r["error"] is None and r["attempts"] == 0, r
    assert r["owner_alive"] is False, r            # ckring-load has exited
EOF
  ok "db --json: the keys of docs/DESIGN.md §9; 8 runs running, 20 messages each"
}

# Every message of every run, as docs/DESIGN.md §9 defines ckring-load's payloads.
check_run_json() {
  local p t r id
  for p in 0 1; do for t in 0 1; do for r in 0 1; do
    id="p$p-t$t-r$r"
    inspect_json run "$db" "$id" >"$tmp/run-$id.json"
  done; done; done
  python3 - "$tmp" <<'EOF'
import base64, glob, json, struct, sys
def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h
def message(run_id, m, size):
    h = fnv1a64(run_id.encode())
    head = struct.pack("<QQ", m, h)
    return head + bytes(((h + 31 * m + i) & 0xFF) for i in range(16, size))
files = sorted(glob.glob(sys.argv[1] + "/run-*.json"))
assert len(files) == 8
for f in files:
    d = json.load(open(f))
    for k in ["id", "state", "kind", "next_seq", "gaps", "history", "completed_phases"]:
        assert k in d, f"{f}: missing {k}"
    assert d["state"] == "running" and d["kind"] == "single_loop"
    assert d["gaps"] == [] and d["completed_phases"] == []
    assert d["next_seq"] == 21, d["next_seq"]
    h = d["history"]
    assert len(h) == 20, f"{d['id']}: {len(h)} messages"
    for m, e in enumerate(h):
        for k in ["seq", "size", "data_b64"]:
            assert k in e
        assert e["seq"] == m + 1 and e["size"] == 64
        assert base64.b64decode(e["data_b64"]) == message(d["id"], m, 64), \
            f"{d['id']} message {m}: wrong bytes"
EOF
  ok "run --json: the keys of docs/DESIGN.md §9; 8 transcripts of 20 messages, bytes as §9"
  expect_one_line_error 1 "inspect run of an unknown id" "$bin/ckring-inspect" run "$db" no-such-run
}

# ------------------------------------------------- flusher stopped / errors

stop_flusher() {
  local st=0
  kill -TERM "$flusher_pid"
  wait "$flusher_pid" || st=$?
  flusher_pid=""
  [ "$st" -eq 0 ] || fail "the flusher exited $st on SIGTERM, want 0"
  ok "the flusher exits 0 on SIGTERM"
}

# With no flusher: pushes still land in the ring; inspect shows them.
check_without_flusher() {
  "$bin/ckring-load" --segment "$seg" --procs 1 --threads 1 --runs 1 --events 3 \
    --size 32 --prefix late- >/dev/null 2>&1 || fail "ckring-load without a flusher"
  inspect_json segment "$seg" --records >"$tmp/rec.json"
  python3 - "$tmp/rec.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["flusher"]["alive"] is False
assert sum(l["tail"] - l["head"] for l in d["lanes"]) > 0
recs = d["records"]
assert [r["type"] for r in recs] == ["begin", "message", "message", "message"], recs
assert all(r["id"] == "late-p0-t0-r0" and r["status"] == "record" for r in recs)
assert [r["seq"] for r in recs] == [0, 1, 2, 3]
assert d["counters"]["pushed"] == 8 * 21 + 4
EOF
  "$bin/ckring-inspect" segment "$seg" --records >"$tmp/rec.txt"
  grep -q "DEAD\|none attached" "$tmp/rec.txt" || fail "text view does not say the flusher is gone"
  ok "no flusher: inspect still works; 4 pending records decode (begin + 3 messages)"
  local st=0
  timeout --preserve-status -s INT 2.5 "$bin/ckring-inspect" segment "$seg" --watch >"$tmp/watch.txt" || st=$?
  [ "$st" -eq 0 ] || fail "--watch exited $st on SIGINT"
  [ "$(wc -l <"$tmp/watch.txt")" -ge 3 ] || fail "--watch printed too little"
  ok "--watch refreshes every second and exits 0 on SIGINT"
}

check_bad_segments() {
  expect_one_line_error 1 "inspect a missing segment" \
    "$bin/ckring-inspect" segment "$seg-missing"
  head -c 65536 /dev/urandom >"/dev/shm/$seg-garbage"
  expect_one_line_error 1 "inspect a segment of garbage" \
    "$bin/ckring-inspect" segment "$seg-garbage"
  : >"/dev/shm/$seg-empty"
  expect_one_line_error 1 "inspect an empty object" \
    "$bin/ckring-inspect" segment "$seg-empty"
  head -c 6000 "/dev/shm/$seg" >"/dev/shm/$seg-trunc"
  expect_one_line_error 1 "inspect a truncated segment" \
    "$bin/ckring-inspect" segment "$seg-trunc" --json
  expect_one_line_error 1 "inspect a missing store" \
    "$bin/ckring-inspect" db "$tmp/no-such-dir"
}

check_demo() {
  local st=0
  # TMPDIR: the demo's lock file for its segment name lands in $tmp too.
  TMPDIR="$tmp" "$bin/ckring-demo" --segment "$seg-demo" --db "$tmp/demo-db" \
    >"$tmp/demo.out" 2>&1 || st=$?
  if [ "$st" -ne 0 ] || ! tail -n 1 "$tmp/demo.out" | grep -q "^demo: OK — .* 0 events lost$"; then
    tail -n 30 "$tmp/demo.out" >&2
    fail "ckring-demo exited $st"
  fi
  grep -q "events lost: *0$" "$tmp/demo.out" || fail "the demo does not report 0 events lost"
  [ ! -e "/dev/shm/$seg-demo" ] || fail "the demo left its segment behind"
  ok "ckring-demo: $(tail -n 1 "$tmp/demo.out")"
}

check_help_and_usage
start_flusher
run_load
wait_drained
check_segment_json
check_db_json
check_run_json
stop_flusher
check_without_flusher
check_bad_segments
check_demo
echo "test_tools: $passed checks passed"
