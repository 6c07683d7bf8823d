#!/usr/bin/env bash
# demo/demo-fleet.sh — `make demo-fleet`: the two-host story, narrated like
# ckring-demo, with the real tools: two hosts simulated on this machine (a
# segment, a store, a flusher and a shipper each), a private PostgreSQL
# (started in a temp dir, stopped at the end). Host A works and is lost
# whole; host B recovers A's runs from PostgreSQL and finishes them as the
# same runs; A comes back and its stale writes are refused.
set -euo pipefail
FL_TMP=$(mktemp -d /tmp/ckring-demo-fleet.XXXXXX)
source "$(dirname "$0")/../tests/fleet/fleet.sh"
trap fl_cleanup EXIT
say() { printf '%s\n' "$*"; }
h1() { printf '\n== %s\n' "$*"; }
runs() { pg_psql "SELECT encode(run_id,'escape') || '  host ' || host || '  incarnation ' || incarnation || '  ' || CASE state WHEN 1 THEN 'running' WHEN 2 THEN 'failed' ELSE 'completed' END || '  rows ' || (SELECT count(*) FROM ckring_events e WHERE e.run_id = r.run_id) FROM ckring_runs r ORDER BY 1" | sed 's/^/   /'; }

say "ckring demo-fleet: ship runs to PostgreSQL, lose a host, recover its runs on another"
h1 "1. a shared PostgreSQL, and two hosts"
pg_start "$FL_TMP/pg"
"$FL_BIN/ckring-ship" --pg "$PG_CONN" --init-schema
say "   PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on a unix socket in $FL_TMP/pg; schema made by: ckring-ship --pg ... --init-schema"
for h in A B; do
  fl_host "$h"; fl_shipper "$h" --lease 2s
  say "   host $h: ckring-flusher --segment ${FL_SEG[$h]} --db ${FL_DB[$h]} --create (pid ${FL_FLUSHER[$h]})"
  say "           ckring-ship --db ${FL_DB[$h]} --pg '...' --host $h --lease 2s (pid ${FL_SHIPPER[$h]})"
done
say "   the embedded path is unchanged: push into shm, drain into LMDB; the shipper"
say "   follows the store's change log into PostgreSQL after each LMDB commit"

h1 "2. host A runs 4 agents (ckring-load: 2 processes x 2 runs, 100 messages each)"
"$FL_BIN/ckring-load" --segment "${FL_SEG[A]}" --procs 2 --threads 1 --runs 2 --events 100 \
  --size 256 --prefix agent- --ack-file "$FL_TMP/ack" >/dev/null
fl_wait "shipped" fl_rows_are 404
say "   every message is in A's LMDB store and, shipped exactly once, in PostgreSQL:"
runs

h1 "3. A goes on while its shipper stalls, then the whole host dies"
kill -STOP "${FL_SHIPPER[A]}"
"$FL_HELP/fleet_drive" --db "${FL_DB[A]}" --segment "${FL_SEG[A]}" --events 160 --size 256 \
  --level committed >/dev/null
say "   A's boot path continued the 4 runs to 160 messages: committed in A's store,"
say "   not in PostgreSQL (its shipper was stopped: shipping is asynchronous)"
fl_kill "${FL_SHIPPER[A]}" "${FL_FLUSHER[A]}"
say "   kill -9 every process of host A (flusher, shipper): A is gone"

h1 "4. A is lost: its lease runs out, and an operator says so"
a_lost() { "$FL_BIN/ckring-recover" --pg "$PG_CONN" --hosts | grep -q '^A  *lease'; }
fl_wait "A's lease" a_lost
"$FL_BIN/ckring-recover" --pg "$PG_CONN" --hosts | sed 's/^/   /'
"$FL_BIN/ckring-recover" --pg "$PG_CONN" --host-lost A --reason "machine did not come back" | sed 's/^/   /'

h1 "5. host B recovers A's runs from PostgreSQL"
"$FL_BIN/ckring-recover" --pg "$PG_CONN" --db "${FL_DB[B]}" --host B | sed 's/^/   /'
say "   each claim is one conditional UPDATE on (host, incarnation): of two hosts"
say "   racing, exactly one wins; the resume state came from PostgreSQL"

h1 "6. B's boot path continues them as the same runs, to 200 messages, and completes them"
"$FL_HELP/fleet_drive" --db "${FL_DB[B]}" --segment "${FL_SEG[B]}" --events 200 --size 256 >/dev/null
say "   every message waited for REPLICATED (in PostgreSQL) before the run went on:"
runs
"$FL_HELP/fleet_drive" --db "${FL_DB[B]}" --segment "${FL_SEG[B]}" --events 200 --size 256 \
  --finish complete >/dev/null
say "   then completed (REPLICATED):"
runs

h1 "7. A comes back"
fl_flusher A
"$FL_BIN/ckring-ship" --db "${FL_DB[A]}" --pg "$PG_CONN" --host A --once 2>&1 | sed 's/^/   /'
say "   A's writes for the runs that moved were refused by incarnation ($(pg_psql "SELECT count(*) FROM ckring_refused WHERE host = 'A'") changes, in ckring_refused)"
say "   and A's own records say where the runs went, so A never drives them again:"
"$FL_BIN/ckring-inspect" db "${FL_DB[A]}" --json |
  python3 -c 'import json,sys; [print("   %s  %s  %s" % (r["id"], r["state"], r["error"])) for r in json.load(sys.stdin)["runs"]]'
say "   PostgreSQL is unchanged:"
runs
say ""
say "demo-fleet: done (everything it started is stopped and removed)"
