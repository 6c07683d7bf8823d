#!/usr/bin/env bash
# test_ship_admin.sh — operator actions and pruning under a running shipper
# (issues 16 x 17): every change an operator or a prune makes to a store
# reaches PostgreSQL exactly once, and the database ends as the store is.
# After each step tests/fleet/pgverify --mirror checks the database against
# the store, run by run and row by row (record, events, set-aside rows).
# Hosts on one machine (tests/fleet/fleet.sh): A and B ship to a private
# PostgreSQL (tests/pg/pg.sh); X is a host outside the database (no shipper).
#   1  load on A: running, completed (kept) and failed runs;
#   2  fail two running runs (ckring-admin fail);
#   3  retry an operator-failed and a writer-failed run, then A's boot path
#      claims them (and the other interrupted runs) and continues them;
#   4  export from X and import into B: a running run with a gap, a
#      running and a failed run — each arrives in PostgreSQL with all its
#      rows; B claims and continues the running ones (the rows past the gap
#      set aside, there and here); a run A holds, imported into B, is
#      refused there and marked moved in B;
#   5  prune failed and completed runs in transactions of 25 rows (runs of
#      41 rows: several steps each, "being removed" between them); a failed
#      run pruned and begun anew under its id while the shipper is stopped;
#   6  the flusher's background retention (--keep-failed, --keep-completed)
#      on B;
#   7  the same actions again while A's shipper is SIGKILLed at random
#      points and restarted: exactly once afterwards;
#   8  ckring-admin host-lost NAME --pg CONNINFO declares a host lost.
set -euo pipefail
FL_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ckring-shipadmin.XXXXXX")
FL_SEG_PREFIX=${FL_SEG_PREFIX:-ckrsa}
source "$(dirname "$0")/fleet/fleet.sh"
trap fl_cleanup EXIT
ADMIN=$FL_BIN/ckring-admin
E=40

pg_start "$FL_TMP/pg"
"$FL_BIN/ckring-ship" --pg "$PG_CONN" --init-schema

fl_host A --keep-completed 1h; fl_shipper A
fl_host B --keep-completed 1h; fl_shipper B
fl_host X --keep-completed 1h
fl_ok "hosts A and B (a flusher and a shipper each), X (a flusher, no shipper)"

drained() { # HOST: the host's flusher has consumed everything
  "$FL_BIN/ckring-inspect" segment "${FL_SEG[$1]}" --json |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["flusher"]["lag_bytes"] == 0 else 1)'
}
load() { # HOST PREFIX RUNS FINISH
  "$FL_BIN/ckring-load" --segment "${FL_SEG[$1]}" --procs 1 --threads 1 --runs "$3" \
    --events $E --size 64 --prefix "$2" --finish "$4" >/dev/null
  fl_wait "$1 drained" drained "$1"
}
mirror() { # HOST STEP: PostgreSQL is the host's store
  "$FL_HELP/pgverify" --pg "$PG_CONN" --mirror "${FL_DB[$1]}" --host "$1" \
    >"$FL_TMP/mirror-$1-$2.log" 2>&1 || { cat "$FL_TMP/mirror-$1-$2.log"; fl_fail "$2: $1's store and PostgreSQL differ"; }
}
run_field() { # HOST ID EXPR: a field of one run of the host's store (ckring-inspect db --json)
  "$FL_BIN/ckring-inspect" db "${FL_DB[$1]}" --json |
    python3 -c 'import json,sys; r={x["id"]:x for x in json.load(sys.stdin)["runs"]}; x=r.get(sys.argv[1]); print(eval(sys.argv[2]) if x else "none")' "$2" "$3"
}
drive() { # HOST ARGS...: the host's boot path (claim every interrupted run, continue)
  local h=$1; shift
  "$FL_HELP/fleet_drive" --db "${FL_DB[$h]}" --segment "${FL_SEG[$h]}" --size 64 "$@" \
    >>"$FL_TMP/drive-$h.log" 2>&1 || { cat "$FL_TMP/drive-$h.log"; fl_fail "fleet_drive on $h"; }
}

# 1 -- runs of every state on A
load A lv- 6 leave
load A ok- 3 complete
load A bad- 3 fail
mirror A 1
fl_ok "1: A: 6 running, 3 completed (events kept), 3 failed runs, shipped: $(sed 's/^pgverify: //' "$FL_TMP/mirror-A-1.log")"

# 2 -- fail
"$ADMIN" fail "${FL_DB[A]}" lv-p0-t0-r0 --reason "integ: stuck" >/dev/null
"$ADMIN" fail "${FL_DB[A]}" lv-p0-t0-r1 --reason "integ: bad input" >/dev/null
mirror A 2
fl_ok "2: ckring-admin fail x2: failed in PostgreSQL with the operator's error"

# 3 -- retry, then the boot path claims and continues
"$ADMIN" retry "${FL_DB[A]}" lv-p0-t0-r0 >/dev/null
"$ADMIN" retry "${FL_DB[A]}" bad-p0-t0-r0 >/dev/null
mirror A 3a
drive A --events 60 --expect 6
mirror A 3b
[ "$(run_field A lv-p0-t0-r0 'x["state"], x["attempts"], x["last_seq"]')" = "('running', 1, 60)" ] ||
  fl_fail "3: the retried run was not continued"
fl_ok "3: ckring-admin retry x2 (operator-failed, writer-failed): running again with a fresh budget in PostgreSQL; claimed and continued to 60 messages (REPLICATED)"

# 4 -- export from X, import into B
load X x- 2 leave
load X xf- 1 fail
"$ADMIN" export "${FL_DB[X]}" x-p0-t0-r0 | python3 -c '
import json, sys
d = json.load(sys.stdin)
d["events"] = [r for r in d["events"] if r["seq"] != 5]   # a gap after seq 4
json.dump(d, sys.stdout)' >"$FL_TMP/x0.json"
"$ADMIN" export "${FL_DB[X]}" x-p0-t0-r1 >"$FL_TMP/x1.json"
"$ADMIN" export "${FL_DB[X]}" xf-p0-t0-r0 >"$FL_TMP/xf.json"
for f in x0 x1 xf; do "$ADMIN" import "${FL_DB[B]}" "$FL_TMP/$f.json" >/dev/null; done
mirror B 4a
[ "$(pg_psql "SELECT count(*) FROM ckring_events WHERE run_id IN ('x-p0-t0-r0', 'x-p0-t0-r1', 'xf-p0-t0-r0')")" = $((E + 2 * (E + 1))) ] ||
  fl_fail "4: the imported runs' rows are not all in PostgreSQL"
drive B --events 60 --expect 2
mirror B 4b
[ "$(pg_psql "SELECT count(*) FROM ckring_set_aside WHERE run_id = 'x-p0-t0-r0'")" = $((E - 5)) ] ||
  fl_fail "4: the rows past the gap are not set aside in PostgreSQL"
"$ADMIN" export "${FL_DB[A]}" lv-p0-t0-r3 >"$FL_TMP/a3.json"
"$ADMIN" import "${FL_DB[B]}" "$FL_TMP/a3.json" >/dev/null
b_moved() { run_field B lv-p0-t0-r3 'x["error"] or ""' | grep -q '^moved to host A'; }
fl_wait "B's copy of A's run marked moved" b_moved
[ "$(pg_psql "SELECT count(*) FROM ckring_refused WHERE host = 'B' AND run_id = 'lv-p0-t0-r3'")" -ge 1 ] ||
  fl_fail "4: B's import of A's run was not refused"
mirror B 4c
mirror A 4c
fl_ok "4: X's runs exported and imported into B: in PostgreSQL with every row; claimed and continued on B (rows past the gap set aside there too); A's run imported into B refused, marked moved in B"

# 5 -- prune, several steps per run
"$ADMIN" prune "${FL_DB[A]}" --failed-older-than 0s --completed-older-than 0s --txn-rows 25 \
  --json >"$FL_TMP/prune.json"
python3 - "$FL_TMP/prune.json" <<'PY' || fl_fail "5: prune"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["removed"] == 3 and d["cleared"] == 3, d    # lv-r1, bad-r1, bad-r2; ok-*
assert d["transactions"] >= 10, d                     # 6 x 41 rows, 25 a step
PY
mirror A 5
[ "$(pg_psql "SELECT count(*) FROM ckring_runs WHERE host = 'A' AND state = 2")" = 0 ] &&
[ "$(pg_psql "SELECT count(*) FROM ckring_runs WHERE host = 'A' AND state = 3 AND cleared")" = 3 ] ||
  fl_fail "5: the pruned runs are not pruned in PostgreSQL"
# A failed run pruned and begun anew under its id while the shipper is
# stopped: one batch reads the old run's entries and the new run's rows.
kill -STOP "${FL_SHIPPER[A]}"
load A re- 1 fail
"$ADMIN" prune "${FL_DB[A]}" --failed-older-than 0s >/dev/null
load A re- 1 leave
kill -CONT "${FL_SHIPPER[A]}"
mirror A 5b
fl_ok "5: ckring-admin prune (25 rows a transaction: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["transactions"])' "$FL_TMP/prune.json") transactions for 6 runs of 41 rows): failed runs gone, completed runs tombstones, in PostgreSQL too; a run pruned and begun anew under its id, shipped in one batch"

# 6 -- the flusher's retention on B
kill -TERM "${FL_FLUSHER[B]}"; wait "${FL_FLUSHER[B]}" || true
fl_flusher B --keep-completed 1s --keep-failed 0s
drive B --events 70 --finish complete --expect 2
b_pruned() {
  "$FL_BIN/ckring-inspect" db "${FL_DB[B]}" --json | python3 -c '
import json, sys
runs = json.load(sys.stdin)["runs"]
sys.exit(0 if len(runs) == 2 and all(r["state"] == "completed" and r["events"] == 0 for r in runs) else 1)'
}
fl_wait "B's retention" b_pruned
mirror B 6
fl_ok "6: the flusher's retention on B (--keep-failed 0s, --keep-completed 1s): the failed and moved runs removed, the completed cleared, in PostgreSQL too"

# 7 -- the same under shipper SIGKILLs
RANDOM=${SEED:-$$}
: >"$FL_TMP/kills"
( while [ ! -f "$FL_TMP/stop-killer" ]; do
    sleep "0.0$(( RANDOM % 10 ))"
    "$FL_BIN/ckring-ship" --db "${FL_DB[A]}" --pg "$PG_CONN" --host A --batch-rows 7 \
      >>"$FL_TMP/ship-A.log" 2>&1 &
    p=$!
    sleep "0.$(( RANDOM % 2 ))$(( RANDOM % 10 ))"
    kill -KILL "$p" 2>/dev/null && echo "$p" >>"$FL_TMP/kills"
    wait "$p" 2>/dev/null || true
  done ) &
killer=$!
FL_PIDS+=("$killer")
fl_kill "${FL_SHIPPER[A]}"
load A k- 4 leave
load A kok- 2 complete
load A kbad- 3 fail
"$ADMIN" fail "${FL_DB[A]}" k-p0-t0-r0 --reason "integ: under kills" >/dev/null
"$ADMIN" fail "${FL_DB[A]}" k-p0-t0-r1 --reason "integ: under kills" >/dev/null
"$ADMIN" retry "${FL_DB[A]}" k-p0-t0-r0 >/dev/null
"$ADMIN" retry "${FL_DB[A]}" kbad-p0-t0-r0 >/dev/null
load X kx- 1 leave
"$ADMIN" export "${FL_DB[X]}" kx-p0-t0-r0 | python3 -c '
import json, sys
d = json.load(sys.stdin)
d["events"] = [r for r in d["events"] if r["seq"] != 7]
json.dump(d, sys.stdout)' >"$FL_TMP/kx.json"
"$ADMIN" import "${FL_DB[A]}" "$FL_TMP/kx.json" >/dev/null
drive A --events 55 --level committed
"$ADMIN" prune "${FL_DB[A]}" --failed-older-than 0s --completed-older-than 0s --txn-rows 9 >/dev/null
"$ADMIN" fail "${FL_DB[A]}" k-p0-t0-r2 --reason "integ: kept" >/dev/null
drive A --events 70 --level committed
# At least 15 kills: more actions until then (a run begun, failed, retried).
for j in $(seq 40); do
  [ "$(wc -l <"$FL_TMP/kills")" -lt 15 ] || break
  load A "kl$j-" 1 leave
  "$ADMIN" fail "${FL_DB[A]}" "kl$j-p0-t0-r0" --reason "integ: more" >/dev/null
  "$ADMIN" retry "${FL_DB[A]}" "kl$j-p0-t0-r0" >/dev/null
done
touch "$FL_TMP/stop-killer"; wait "$killer" || true
kills=$(wc -l <"$FL_TMP/kills")
fl_shipper A
mirror A 7
mirror B 7
fl_ok "7: fail, retry, import, claims, prunes while A's shipper was SIGKILLed at random points ($kills kills, seed ${SEED:-$$}): exactly once: $(sed 's/^pgverify: //' "$FL_TMP/mirror-A-7.log")"
# 8 -- ckring-admin host-lost
"$ADMIN" host-lost B --pg "$PG_CONN" --reason "integ: declared" --json >"$FL_TMP/lost.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["action"]=="host-lost" and d["host"]=="B" else 1)' \
  "$FL_TMP/lost.json" || fl_fail "8: host-lost --json: $(cat "$FL_TMP/lost.json")"
"$FL_BIN/ckring-recover" --pg "$PG_CONN" --hosts --json | python3 -c '
import json, sys
h = {x["host"]: x for x in json.load(sys.stdin)["hosts"]}
sys.exit(0 if h["B"]["declared_lost"] and h["B"]["reason"] == "integ: declared" and not h["A"]["lost"] else 1)' ||
  fl_fail "8: B is not declared lost"
set +e
"$ADMIN" host-lost nosuch --pg "$PG_CONN" >/dev/null 2>"$FL_TMP/err"; st=$?
set -e
[ "$st" = 1 ] && [ "$(wc -l <"$FL_TMP/err")" = 1 ] && grep -q 'no such host' "$FL_TMP/err" ||
  fl_fail "8: host-lost of an unknown host: exit $st: $(cat "$FL_TMP/err")"
fl_ok "8: ckring-admin host-lost B --pg ...: declared lost with its reason (ckring-recover --hosts); an unknown host exits 1 with one line"
echo "test_ship_admin: all passed"
