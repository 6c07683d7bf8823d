#!/usr/bin/env bash
# test_fleet.sh — the two-host story against a real PostgreSQL (issue 17),
# three hosts simulated on one machine (a segment, a store, a flusher and a
# shipper each; tests/fleet/fleet.sh), a private server (tests/pg/pg.sh):
#   1  load on host A, everything shipped (row by row against the ack file);
#   2  A continues its runs while its shipper is stopped (committed locally,
#      not shipped), then every process of A is SIGKILLed;
#   3  A's lease expires (it is lost), an operator also declares it lost;
#   4  hosts B and C race to recover A's runs: each run is claimed exactly
#      once; each imports its runs into its own store;
#   5  B and C continue them as the same runs (next incarnation, next seq)
#      to N messages, REPLICATED; PostgreSQL holds exactly messages 0..N-1
#      of each, byte-exact; then they complete them;
#   6  A comes back: its shipper's stale writes for the moved runs are
#      refused (recorded in ckring_refused), its local records are marked
#      moved, and the database is unchanged;
#   7  a REPLICATED wait with no shipper says so (CKR_ENOSHIPPER), the tool
#      contract (help, usage errors, one-line errors).
set -euo pipefail
FL_TMP=$(mktemp -d /tmp/ckring-fleet.XXXXXX)
source "$(dirname "$0")/fleet/fleet.sh"
trap fl_cleanup EXIT
N1=150; N=300; RUNS=8

pg_start "$FL_TMP/pg"
"$FL_BIN/ckring-ship" --pg "$PG_CONN" --init-schema
"$FL_BIN/ckring-ship" --pg "$PG_CONN" --init-schema # idempotent
fl_ok "schema created by ckring-ship --init-schema (twice: idempotent)"

# A's lease is short (it is the one that dies); B's and C's are long, so a
# busy machine never makes them look lost.
fl_host A; fl_shipper A --lease 1500ms
for h in B C; do fl_host "$h"; fl_shipper "$h" --lease 20s; done
fl_ok "hosts A, B, C: a segment, a store, a flusher and a shipper each"

# 1 -- load on A, all shipped
"$FL_BIN/ckring-load" --segment "${FL_SEG[A]}" --procs 2 --threads 2 --runs 2 \
  --events $N1 --size 128 --ack-file "$FL_TMP/ack-1" >"$FL_TMP/load-1.log"
echo "- 2 2 2 $N1 128 $FL_TMP/ack-1" >"$FL_TMP/manifest"
fl_wait "A's rows in PostgreSQL" fl_rows_are $((RUNS * (N1 + 1)))
"$FL_HELP/pgverify" --pg "$PG_CONN" --manifest "$FL_TMP/manifest" --host A --state running \
  >"$FL_TMP/verify-1.log" || { cat "$FL_TMP/verify-1.log"; fl_fail "step 1 verify"; }
fl_ok "1: $(cat "$FL_TMP/verify-1.log" | sed 's/^pgverify: //')"

# 2 -- A goes on without its shipper, then dies whole
kill -STOP "${FL_SHIPPER[A]}"
"$FL_HELP/fleet_drive" --db "${FL_DB[A]}" --segment "${FL_SEG[A]}" --events $N --size 128 \
  --level committed --expect $RUNS >"$FL_TMP/drive-a.log"
fl_kill "${FL_SHIPPER[A]}" "${FL_FLUSHER[A]}"
fl_rows_are $((RUNS * (N1 + 1))) || fl_fail "A's shipper shipped while stopped"
fl_ok "2: A continued its $RUNS runs to $N messages (committed, not shipped), then every process of A was SIGKILLed"

# 3 -- lost: by lease, and by an operator's word
a_lost() { "$FL_BIN/ckring-recover" --pg "$PG_CONN" --hosts --json |
  python3 -c 'import json,sys; h={x["host"]:x for x in json.load(sys.stdin)["hosts"]}; sys.exit(0 if h["A"]["lost"] and not h["B"]["lost"] else 1)'; }
fl_wait "A's lease to expire" a_lost
"$FL_BIN/ckring-recover" --pg "$PG_CONN" --host-lost A --reason "test: SIGKILLed" >/dev/null
"$FL_BIN/ckring-recover" --pg "$PG_CONN" --hosts | grep -q '^A  *yes' || fl_fail "A not declared"
fl_ok "3: A lost by its lease (1.5 s), then declared lost (ckring-recover --host-lost)"

# 4 -- B and C race
"$FL_BIN/ckring-recover" --pg "$PG_CONN" --db "${FL_DB[B]}" --host B --list --json \
  >"$FL_TMP/list.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["runs"]; sys.exit(0 if len(r)==8 and all(x["host"]=="A" for x in r) else 1)' \
  "$FL_TMP/list.json" || fl_fail "B does not list A's 8 runs"
# One claimer per run and host, all at once: 16 processes on 8 runs.
ids=$(python3 -c 'import json,sys; print(" ".join(x["id"] for x in json.load(open(sys.argv[1]))["runs"]))' "$FL_TMP/list.json")
racers=()
for id in $ids; do
  for h in B C; do
    "$FL_BIN/ckring-recover" --pg "$PG_CONN" --db "${FL_DB[$h]}" --host "$h" --run "$id" --json \
      >"$FL_TMP/claim-$h-$id.json" 2>>"$FL_TMP/claim-$h.err" &
    racers+=("$!")
  done
done
for p in "${racers[@]}"; do wait "$p" || fl_fail "a ckring-recover failed"; done
python3 - "$FL_TMP"/claim-B-*.json <<'PY' >"$FL_TMP/claim-B.json"
import json, sys
print(json.dumps({"claimed": [r for f in sys.argv[1:] for r in json.load(open(f))["claimed"]]}))
PY
python3 - "$FL_TMP"/claim-C-*.json <<'PY' >"$FL_TMP/claim-C.json"
import json, sys
print(json.dumps({"claimed": [r for f in sys.argv[1:] for r in json.load(open(f))["claimed"]]}))
PY
python3 - "$FL_TMP/claim-B.json" "$FL_TMP/claim-C.json" <<'PY' || fl_fail "the race"
import json, sys
won = {}
for f in sys.argv[1:]:
    for r in json.load(open(f))["claimed"]:
        if r["result"] == "claimed":
            assert r["id"] not in won, "claimed twice: " + r["id"]
            assert r["new_incarnation"] == 2 and r["next_seq"] == 151, r
            won[r["id"]] = f
assert len(won) == 8, "claimed %d runs, want 8" % len(won)
PY
nb=$(grep -o '"result": "claimed"' "$FL_TMP/claim-B.json" | wc -l)
nc=$(grep -o '"result": "claimed"' "$FL_TMP/claim-C.json" | wc -l)
[ "$(pg_psql "SELECT count(*) FROM ckring_runs WHERE host IN ('B','C') AND incarnation = 2")" = 8 ] ||
  fl_fail "the database does not give the 8 runs to B and C"
fl_ok "4: B and C raced for A's runs (a claimer per run and host, 16 at once): each claimed exactly once (B $nb, C $nc; the losers told CKR_ECLAIMED), incarnation 2, next seq $((N1 + 1))"

# 5 -- continued as the same runs, completed
"$FL_HELP/fleet_drive" --db "${FL_DB[B]}" --segment "${FL_SEG[B]}" --events $N --size 128 \
  --expect "$nb" >"$FL_TMP/drive-b.log"
"$FL_HELP/fleet_drive" --db "${FL_DB[C]}" --segment "${FL_SEG[C]}" --events $N --size 128 \
  --expect "$nc" >"$FL_TMP/drive-c.log"
"$FL_HELP/pgverify" --pg "$PG_CONN" --manifest "$FL_TMP/manifest" --exact $N --state running \
  >"$FL_TMP/verify-5.log" || { cat "$FL_TMP/verify-5.log"; fl_fail "step 5 verify"; }
fl_ok "5: B and C continued them to $N messages, REPLICATED: $(sed 's/^pgverify: //' "$FL_TMP/verify-5.log")"
"$FL_HELP/fleet_drive" --db "${FL_DB[B]}" --segment "${FL_SEG[B]}" --events $N --size 128 \
  --finish complete >/dev/null
"$FL_HELP/fleet_drive" --db "${FL_DB[C]}" --segment "${FL_SEG[C]}" --events $N --size 128 \
  --finish complete >/dev/null
"$FL_HELP/pgverify" --pg "$PG_CONN" --manifest "$FL_TMP/manifest" --state completed \
  >"$FL_TMP/verify-5b.log" || { cat "$FL_TMP/verify-5b.log"; fl_fail "step 5 completed"; }
fl_ok "5: ... and completed them (completed in the database, REPLICATED)"

# 6 -- A comes back
fl_flusher A
"$FL_BIN/ckring-ship" --db "${FL_DB[A]}" --pg "$PG_CONN" --host A --once >"$FL_TMP/ship-A-back.log" 2>&1 ||
  { cat "$FL_TMP/ship-A-back.log"; fl_fail "A's shipper on return"; }
refused=$(pg_psql "SELECT count(*) FROM ckring_refused WHERE host = 'A'")
[ "$refused" -gt 0 ] || fl_fail "no stale write of A was refused"
moved=$("$FL_BIN/ckring-inspect" db "${FL_DB[A]}" --json | python3 -c '
import json, sys
runs = json.load(sys.stdin)["runs"]
print(sum(1 for r in runs if r["state"] == "failed" and r["error"].startswith("moved to host ")))')
[ "$moved" = $RUNS ] || fl_fail "A marked $moved runs moved, want $RUNS"
grep -q "refused" "$FL_TMP/ship-A-back.log" || fl_fail "A's shipper did not report the refusals"
"$FL_HELP/pgverify" --pg "$PG_CONN" --manifest "$FL_TMP/manifest" --state completed \
  >/dev/null || fl_fail "the database changed when A came back"
"$FL_BIN/ckring-recover" --pg "$PG_CONN" --hosts | grep -q '^A  *no' || fl_fail "A is still lost"
fl_ok "6: A came back: $refused stale changes refused by incarnation (ckring_refused), $moved runs marked moved in A's store, the database unchanged"

# 7 -- no shipper: REPLICATED says so
fl_kill "${FL_SHIPPER[B]}"
"$FL_BIN/ckring-load" --segment "${FL_SEG[B]}" --procs 1 --threads 1 --runs 1 --events 1 \
  --size 64 --prefix noship- >/dev/null
# The load has exited; wait (bounded) until its run is stored, so the drive
# below has it to claim.
for _ in $(seq 1 1500); do
  "$FL_BIN/ckring-inspect" db "${FL_DB[B]}" --json | grep -q '"noship-' && break
  sleep 0.02
done
set +e
"$FL_HELP/fleet_drive" --db "${FL_DB[B]}" --segment "${FL_SEG[B]}" --events 2 --size 64 \
  >/dev/null 2>"$FL_TMP/noship.err"
set -e
grep -q "no shipper serves the segment" "$FL_TMP/noship.err" || { cat "$FL_TMP/noship.err"; fl_fail "no CKR_ENOSHIPPER"; }
fl_ok "7: a REPLICATED wait without a shipper returns CKR_ENOSHIPPER"

for t in ckring-ship ckring-recover; do
  "$FL_BIN/$t" --help | grep -q usage || fl_fail "$t --help"
  set +e; "$FL_BIN/$t" --bogus >/dev/null 2>"$FL_TMP/err"; st=$?; set -e
  [ "$st" = 2 ] && [ "$(wc -l <"$FL_TMP/err")" = 1 ] || fl_fail "$t usage error: exit $st"
done
set +e
"$FL_BIN/ckring-ship" --db "$FL_TMP/nowhere" --pg "$PG_CONN" --host Z >/dev/null 2>"$FL_TMP/err"; st=$?
set -e
[ "$st" = 1 ] && [ "$(wc -l <"$FL_TMP/err")" = 1 ] || { cat "$FL_TMP/err"; fl_fail "ckring-ship on a missing store: exit $st"; }
set +e
"$FL_BIN/ckring-recover" --pg "host=$FL_TMP/nosock dbname=x" --hosts >/dev/null 2>"$FL_TMP/err"; st=$?
set -e
[ "$st" = 1 ] && [ "$(wc -l <"$FL_TMP/err")" = 1 ] || { cat "$FL_TMP/err"; fl_fail "ckring-recover without a server: exit $st"; }
fl_ok "ckring-ship and ckring-recover: --help, usage errors exit 2, errors exit 1 with one line"
echo "test_fleet: all passed"
