#!/usr/bin/env bash
# test_admin_tools.sh — the command line of ckring-admin and of the new
# ckring-inspect options (spec §7), with the real binaries:
#   - a store with failed, completed (kept) and interrupted runs;
#   - prune --dry-run changes nothing; prune removes/clears what it says,
#     in more than one transaction when asked for small ones; --json;
#   - fail, retry, export | import into another store: the run arrives
#     claimable; a second import is refused;
#   - ckring-inspect db --state / --older-than / --limit / --after pages
#     through the store; segment --watch shows the oldest unflushed age;
#   - --help exits 0; every bad argument of docs/BAD_INPUT.md exits 2 with
#     one line; refusals exit 1 with one line (host-lost's own run against
#     a database: tests/test_ship_admin.sh).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
bin="$build/bin"
seg="ckrt-admt-$$-$RANDOM"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ckring-test-admin.XXXXXX")
fpid=""
passed=0
cleanup() {
  [ -z "$fpid" ] || { kill -KILL "$fpid" 2>/dev/null || true; wait "$fpid" 2>/dev/null || true; }
  rm -f "/dev/shm/$seg" "/dev/shm/$seg-2"
  rm -rf "$tmp"
}
trap cleanup EXIT
ok() { echo "ok - $*"; passed=$((passed + 1)); }
die() { echo "FAIL: $*" >&2; exit 1; }
admin() { "$bin/ckring-admin" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# usage CODE CMD...: exit CODE and exactly one line on stderr, none on stdout.
usage_is() {
  local want=$1; shift
  set +e
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  set -e
  [ "$rc" = "$want" ] || die "$* exited $rc, want $want: $(cat "$tmp/err")"
  [ "$(wc -l <"$tmp/err")" = 1 ] || die "$*: not one line on stderr: $(cat "$tmp/err")"
}

mkdir "$tmp/db" "$tmp/db2"
"$bin/ckring-flusher" --segment "$seg" --db "$tmp/db" --create --keep-completed 1h \
  2>"$tmp/flusher.err" &
fpid=$!
load() { "$bin/ckring-load" --segment "$seg" --procs 1 --threads 1 --runs "$2" --events 50 \
  --size 32 --prefix "$1" --finish "$3" >/dev/null; }
served() { "$bin/ckring-inspect" segment "$seg" --json 2>/dev/null | json 'd["flusher"]["alive"]' | grep -qx True; }
for i in $(seq 300); do served && break; sleep 0.1; done
served || die "the flusher does not serve $seg"
load f- 6 fail
load c- 3 complete
load l- 4 leave
counted() { [ "$("$bin/ckring-inspect" db "$tmp/db" --json | json 'len(d["runs"])')" = 13 ]; }
for i in $(seq 300); do counted && break; sleep 0.1; done
counted || die "the runs did not all arrive"
interrupted() { [ "$("$bin/ckring-inspect" db "$tmp/db" --state interrupted --json | json 'len(d["runs"])')" = 4 ]; }
for i in $(seq 300); do interrupted && break; sleep 0.1; done
interrupted || die "the l- runs are not interrupted"
ok "a store of 6 failed, 3 completed (kept) and 4 interrupted runs"

# ---- inspect db: filters and pages ----
n=$("$bin/ckring-inspect" db "$tmp/db" --state failed --json | json 'len(d["runs"])')
[ "$n" = 6 ] || die "--state failed: $n runs"
n=$("$bin/ckring-inspect" db "$tmp/db" --state failed --older-than 1h --json | json 'len(d["runs"])')
[ "$n" = 0 ] || die "--older-than 1h: $n runs"
after=""; pages=0; total=0
while :; do
  "$bin/ckring-inspect" db "$tmp/db" --limit 5 ${after:+--after "$after"} --json >"$tmp/page"
  total=$((total + $(json 'len(d["runs"])' <"$tmp/page")))
  pages=$((pages + 1))
  after=$(json 'd["next_after"] or ""' <"$tmp/page")
  [ -n "$after" ] || break
  [ "$pages" -lt 10 ] || die "paging does not end"
done
[ "$total" = 13 ] && [ "$pages" = 3 ] || die "paging: $total runs in $pages pages"
"$bin/ckring-inspect" db "$tmp/db" --limit 5 | grep -q '^(more: --after ' || die "no hint of the next page"
ok "inspect db --state / --older-than / --limit / --after: 13 runs in 3 pages of 5"

# ---- prune ----
admin prune "$tmp/db" --failed-older-than 0s --completed-older-than 0s --dry-run >"$tmp/dry"
grep -q 'would remove 6 failed runs, would clear 3 completed runs: 459 rows' "$tmp/dry" ||
  die "dry run: $(tail -n 1 "$tmp/dry")"
n=$("$bin/ckring-inspect" db "$tmp/db" --state failed --json | json 'len(d["runs"])')
[ "$n" = 6 ] || die "the dry run changed the store"
ok "prune --dry-run lists 6 + 3 runs (459 rows) and changes nothing"
admin prune "$tmp/db" --failed-older-than 0s --completed-older-than 0s --txn-rows 40 --json >"$tmp/pr"
[ "$(json '(d["removed"], d["cleared"], d["rows"])' <"$tmp/pr")" = "(6, 3, 459)" ] ||
  die "prune: $(cat "$tmp/pr")"
txns=$(json 'd["transactions"]' <"$tmp/pr")
[ "$txns" -ge 12 ] || die "459 rows at 40 a transaction in $txns transactions"
n=$("$bin/ckring-inspect" db "$tmp/db" --json | json '[r["state"] for r in d["runs"]]')
[ "$n" = "['completed', 'completed', 'completed', 'running', 'running', 'running', 'running']" ] ||
  die "after the prune: $n"
ok "prune --json: 6 removed, 3 cleared, 459 rows in $txns transactions of at most 40 rows"

# ---- fail, retry, export, import ----
admin fail "$tmp/db" l-p0-t0-r0 --reason "operator test" >"$tmp/out"
grep -q 'failed by operator: operator test' "$tmp/out" || die "fail: $(cat "$tmp/out")"
usage_is 1 admin fail "$tmp/db" l-p0-t0-r0 --reason again
grep -q 'has finished already' "$tmp/err" || die "fail twice: $(cat "$tmp/err")"
admin retry "$tmp/db" l-p0-t0-r0 --json >"$tmp/out"
[ "$(json '(d["run"]["state"], d["run"]["attempts"], d["run"]["claimable"])' <"$tmp/out")" = \
  "('running', 0, True)" ] || die "retry: $(cat "$tmp/out")"
usage_is 1 admin retry "$tmp/db" l-p0-t0-r0
grep -q 'the run is running' "$tmp/err" || die "retry running: $(cat "$tmp/err")"
ok "fail (then refused again), retry (claimable, 0 attempts; refused on a running run)"
admin export "$tmp/db" l-p0-t0-r1 >"$tmp/run.json"
[ "$(json 'len(d["events"])' <"$tmp/run.json")" = 51 ] || die "export: not 51 rows"
"$bin/ckring-flusher" --segment "$seg-2" --db "$tmp/db2" --create 2>/dev/null &
f2=$!
for i in $(seq 300); do [ -f "$tmp/db2/data.mdb" ] && break; sleep 0.1; done
admin import "$tmp/db2" - <"$tmp/run.json" >"$tmp/out"
grep -q 'imported run l-p0-t0-r1: running, 51 events, 0 set aside; claimable' "$tmp/out" ||
  die "import: $(cat "$tmp/out")"
usage_is 1 admin import "$tmp/db2" "$tmp/run.json"
grep -q 'already has a run' "$tmp/err" || die "second import: $(cat "$tmp/err")"
n=$("$bin/ckring-inspect" db "$tmp/db2" --state interrupted --json | json 'len(d["runs"])')
[ "$n" = 1 ] || die "the imported run is not interrupted"
echo '{"format": "something-else"}' >"$tmp/bad.json"
usage_is 1 admin import "$tmp/db2" "$tmp/bad.json"
echo 'not json' >"$tmp/bad2.json"
usage_is 1 admin import "$tmp/db2" "$tmp/bad2.json"
kill -TERM "$f2"; wait "$f2" || true
rm -f "/dev/shm/$seg-2"
ok "export | import: the run arrives claimable; a second import and bad documents are refused"

# ---- inspect --watch ----
"$bin/ckring-inspect" segment "$seg" --watch >"$tmp/watch" 2>&1 &
wpid=$!
two_lines() { [ "$(grep -c ':' "$tmp/watch")" -ge 3 ]; }
for i in $(seq 100); do two_lines && break; sleep 0.1; done
kill -TERM "$wpid"; wait "$wpid" || true
head -n 1 "$tmp/watch" | grep -q 'oldest_s' || die "--watch has no oldest_s column"
ok "segment --watch shows lag, refusal rate and the oldest unflushed age"

# ---- usage errors and refusals ----
admin --help | grep -q 'usage: ckring-admin prune' || die "--help"
usage_is 2 admin
usage_is 2 admin bogus
usage_is 2 admin prune
usage_is 2 admin prune "$tmp/db"
usage_is 2 admin prune "$tmp/db" --failed-older-than 7
usage_is 2 admin prune "$tmp/db" --failed-older-than 5w
usage_is 2 admin prune "$tmp/db" --completed-older-than -1s
usage_is 2 admin prune "$tmp/db" --failed-older-than 0s --txn-rows 0
usage_is 2 admin fail "$tmp/db" x
usage_is 2 admin fail "$tmp/db" x --reason ""
usage_is 2 admin retry "$tmp/db"
usage_is 2 admin retry "$tmp/db" x --reason y
usage_is 2 admin retry "$tmp/db" 01234567890123456789012345678901234567890123456789012345678901234
usage_is 2 admin export "$tmp/db" x --json
usage_is 2 admin import "$tmp/db" a b
usage_is 2 admin fail "$tmp/db" x --reason y --dry-run
usage_is 2 admin host-lost
usage_is 2 admin host-lost hostA
usage_is 2 admin host-lost hostA extra --pg "dbname=x"
usage_is 2 admin host-lost hostA --pg "dbname=x" --hex
usage_is 2 admin retry "$tmp/db" x --pg "dbname=x"
usage_is 2 "$bin/ckring-inspect" db "$tmp/db" --state lost
usage_is 2 "$bin/ckring-inspect" db "$tmp/db" --older-than 1
usage_is 2 "$bin/ckring-inspect" db "$tmp/db" --limit 0
usage_is 2 "$bin/ckring-inspect" segment "$seg" --limit 3
usage_is 2 "$bin/ckring-flusher" --segment x --db "$tmp/db" --keep-failed 3
usage_is 2 "$bin/ckring-flusher" --segment x --db "$tmp/db" --keep-completed 1w
ok "--help; usage errors exit 2 with one line"
usage_is 1 admin retry "$tmp/db" nosuch
usage_is 1 admin export "$tmp/db" nosuch
usage_is 1 admin retry "$tmp/db" c-p0-t0-r0
grep -q 'completed' "$tmp/err" || die "retry completed: $(cat "$tmp/err")"
usage_is 1 admin prune "$tmp/nowhere" --failed-older-than 1d
usage_is 1 admin import "$tmp/db2" "$tmp/missing.json"
usage_is 1 admin host-lost hostA --pg "host=$tmp/nosock dbname=x"
grep -q 'cannot use the database' "$tmp/err" || die "host-lost without a server: $(cat "$tmp/err")"
ok "refusals exit 1 with one line (no such run, completed run, no store, no file, no database)"

kill -TERM "$fpid"; wait "$fpid" || die "the flusher did not exit 0"
fpid=""
echo "test_admin_tools: $passed passed, 0 failed"
