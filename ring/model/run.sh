#!/usr/bin/env bash
# ring/model/run.sh -- check the Promela models of ring/PROTOCOL.md:
# lane.pml (the lane protocol), claim.pml (the run protocol: owners,
# writers and claims) and wake.pml (the wake-up protocol).
#
#   bash ring/model/run.sh        (the lead wires it as `make model`)
#
# For each model:
# 1. verifies the model of the protocol (with the fixes of its findings,
#    see MAPPING.md) exhaustively for the bounds below: every check must
#    report 0 errors with a complete search;
# 2. checks that the interesting scenarios are reachable (witnesses: a
#    planted assertion must be hit), so the pass is not vacuous;
# 3. checks that the protocol exactly as PROTOCOL.md words it today where
#    a finding says it is wrong, and each deliberately broken variant, DOES
#    produce a counterexample, on the property named.
# Prints one verdict line per check; exits 1 if anything is unexpected.
# Needs spin (Debian package `spin`) and a C compiler ($MODEL_CC, default cc).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
model="$here/lane.pml"      # the model of the checks spawned next
CC=${MODEL_CC:-cc}

command -v spin >/dev/null 2>&1 || {
  echo "run.sh: spin not found (Debian/Ubuntu: apt-get install spin)" >&2
  exit 2
}
command -v "$CC" >/dev/null 2>&1 || { echo "run.sh: no C compiler '$CC'" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ckring-model.XXXXXX")
cleanup() {
  local p
  for p in $(jobs -p); do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

unexpected=0
total_states=0
start_all=$(date +%s.%N)

# Label a pan error with the property it violates.
label() {
  case "$1" in
    # claim.pml (each property is asserted on a variable named after it)
    *p1_never_stored_twice*)      echo "P1 (event stored twice)";;
    *p1_w3_verdict_true*)         echo "P1 (a waiter is told the wrong outcome)";;
    *p1_acked_event_decided*)     echo "P1 (acked event neither stored nor rejected)";;
    *p2_one_writer_per_incarnation*) echo "P2 (two writers in one incarnation)";;
    *p3_claim_fences_no_acked_event*) echo "P3 (claim fences an acked event)";;
    *p4_one_claim_per_incarnation*) echo "P4 (two claims win)";;
    *p5_claim_only_if_owner_gone*) echo "P5 (live owner's run claimed)";;
    *e0_ended_image_gone*)        echo "E0 (live identity marked ended)";;
    *e0_ended_all_drained*)       echo "E0 (identity ended with events in the ring)";;
    *l2_gone_owner_claimable*)    echo "L2 (gone owner's run never claimable)";;
    *lane_identity_consistent*)   echo "lane identity misattributed";;
    # lane.pml
    *acceptance\ cycle*)          echo "L1 (consumer never gets past the lane)";;
    *"store_pos+"*)               echo "I3 (claimed slot overwritten before persisted)";;
    *"pers[batch[i]]"*)           echo "I2 (record persisted twice)";;
    *"batch[i]>last_pid"*)        echo "I4 (persisted out of claim order)";;
    *"acked[batch[i]]"*)          echo "unacked record persisted";;
    *"seal[(r%"*)                 echo "I1 (acked record skipped by C4)";;
    *"acked[i]"*)                 echo "I1 (acked record never persisted)";;
    *alive*)                      echo "I5 (live owner's claim skipped)";;
    *"store_pos>=head"*)          echo "head ahead of the store";;
    *"invalid end state"*)        echo "deadlock";;
    *)                            echo "other";;
  esac
}

# check NAME EXPECT KIND [spin -D flags...]
#   EXPECT  pass     : must finish with 0 errors (exhaustive)
#           fail:RE  : must report an error (counterexample) whose first
#                      error line, or its property label, matches RE
#   KIND    safety   : assertions + invalid end states (-DSAFETY)
#           liveness : LTL L1 with weak fairness (pan -a -f -N L1)
check() {
  local name=$1 expect=${2%%:*} want=${2#*:} kind=$3; shift 3
  local d="$work/$name" t0 t1 secs out errs states trans depth ptime first cflags pflags
  local m; m=$(basename "$model")
  mkdir "$d"; cp "$model" "$d/$m"
  t0=$(date +%s.%N)
  if [ "$kind" = liveness ]; then set -- -DLIVENESS "$@"; fi
  if ! (cd "$d" && spin "$@" -a "$m" >spin.out 2>&1); then
    printf 'FAIL %-26s spin -a failed: %s\n' "$name" "$(head -2 "$d/spin.out" | tr '\n' ' ')"
    return 0
  fi
  if [ "$expect" = pass ]; then cflags="-O2 -DCOLLAPSE"; else cflags="-O0"; fi
  cflags="$cflags -w -DMEMLIM=6144"
  pflags="-m400000"
  if [ "$kind" = safety ]; then cflags="$cflags -DSAFETY"
  else pflags="$pflags -a -f -N L1"; fi
  # shellcheck disable=SC2086  # $cflags/$pflags are word lists
  if ! (cd "$d" && $CC $cflags -o pan pan.c >cc.out 2>&1); then
    printf 'FAIL %-26s cc failed: %s\n' "$name" "$(head -2 "$d/cc.out" | tr '\n' ' ')"
    return 0
  fi
  # shellcheck disable=SC2086
  (cd "$d" && ./pan $pflags >pan.out 2>&1) || true
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  out="$d/pan.out"
  errs=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$out" | head -1)
  states=$(awk '/states, stored/ { print $1; exit }' "$out")
  trans=$(awk '/transitions \(=/ { print $1; exit }' "$out")
  depth=$(sed -n 's/.*depth reached \([0-9][0-9]*\).*/\1/p' "$out" | head -1)
  ptime=$(sed -n 's/^pan: elapsed time \([0-9.e+-]*\) seconds.*/\1/p' "$out" | head -1)
  first=$(grep -m1 -E '^pan:1:|acceptance cycle|invalid end state' "$out" || true)
  [ -n "$errs" ] || errs="?"
  [ -n "$states" ] || states="?"
  [ -n "$trans" ] || trans="?"
  if [ "$expect" = pass ]; then
    if [ "$errs" = 0 ] && ! grep -qE 'max search depth too small|out of memory|MEMLIM|Search not completed' "$out"; then
      printf 'ok   %-26s 0 errors, %s states, %s transitions, depth %s, search %ss, total %ss\n' \
        "$name" "$states" "$trans" "$depth" "${ptime:-?}" "$secs"
    else
      printf 'FAIL %-26s expected 0 errors, got %s: %s (%s)\n' "$name" "$errs" "${first:-incomplete search}" "$(label "$first")"
      grep -m3 -E 'max search depth too small|out of memory|MEMLIM' "$out" | sed 's/^/     /' || true
    fi
  else
    local what; what=$(label "$first")
    if [ "$errs" != "?" ] && [ "$errs" != 0 ] &&
       printf '%s | %s\n' "$what" "$first" | grep -qE -- "$want"; then
      case "$name" in witness-*) what="scenario reachable";; esac
      printf 'ok   %-26s counterexample as expected: %s [%s] at depth %s, %s states, %ss\n' \
        "$name" "$what" "$(echo "$first" | sed 's/^pan:1: //; s/ (at depth [0-9]*)//')" \
        "$(echo "$first" | sed -n 's/.*at depth \([0-9]*\).*/\1/p')" "$states" "$secs"
    else
      printf 'FAIL %-26s expected a counterexample matching /%s/, got %s errors: %s (%s states, %ss)\n' \
        "$name" "$want" "$errs" "${first:-none}" "$states" "$secs"
    fi
  fi
}

# MODEL_ONLY=lane, claim or wake checks one of the three models only;
# MODEL_LONG=1 adds the wake model's larger bound (about 90 s).
only=${MODEL_ONLY:-all}
case "$only" in all|lane|claim|wake) ;; *) echo "run.sh: MODEL_ONLY is lane, claim or wake" >&2; exit 2;; esac
echo "== $(spin -V | head -1)"

# The checks run $MODEL_JOBS at a time (default 2); the verdicts are printed
# in order, one group at a time.
jobs_max=${MODEL_JOBS:-2}
n=0
group=()
spawn() {   # spawn NAME EXPECT KIND FLAGS...
  n=$((n + 1))
  local f; f=$(printf '%s/%02d.verdict' "$work" "$n")
  group+=("$f")
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  ( check "$@" >"$f" 2>&1 ) &
}
flush() {   # wait for the group, print its verdicts
  wait || true
  local f
  for f in "${group[@]}"; do
    cat "$f"
    if grep -q '^FAIL' "$f"; then unexpected=$((unexpected + 1)); fi
    if ! grep -qE '^(ok|FAIL) ' "$f"; then
      echo "FAIL (check $(basename "$f" .verdict) gave no verdict)"
      unexpected=$((unexpected + 1))
    fi
    local st; st=$(sed -n 's/^ok .* 0 errors, \([0-9][0-9]*\) states.*/\1/p' "$f")
    if [ -n "$st" ]; then total_states=$((total_states + st)); fi
  done
  group=()
}

planted0='assertion violated 0 \(at'
if [ "$only" = all ] || [ "$only" = lane ]; then
echo "== ckring lane model: ring/model/lane.pml"
echo "   (CAP/MAXLEN in slots; K0,K1 = records per thread of owner A; K2 = records of"
echo "    successor B; MAXCK = consumer kills; owner SIGKILL at any step everywhere)"
echo "-- the protocol (PROTOCOL.md + fix F1): must hold, exhaustively"
# name                          expect kind      bounds
spawn safety-4-records          pass   safety    -DCAP=4 -DMAXLEN=2 -DK0=2 -DK1=2 -DMAXCK=0
spawn liveness-L1               pass   liveness  -DCAP=4 -DMAXLEN=2 -DK0=2 -DK1=1 -DMAXCK=1
spawn safety-main               pass   safety    -DCAP=4 -DMAXLEN=2 -DK0=2 -DK1=1 -DMAXCK=1
spawn safety-successor          pass   safety    -DCAP=4 -DMAXLEN=2 -DK0=1 -DK1=0 -DK2=1 -DMAXCK=1 -DSUCCESSOR
spawn safety-kill-anywhere      pass   safety    -DCAP=4 -DMAXLEN=2 -DK0=1 -DK1=1 -DMAXCK=2 -DKILL_ANYWHERE
spawn safety-big-pads           pass   safety    -DCAP=4 -DMAXLEN=3 -DK0=1 -DK1=1 -DMAXCK=1
flush

echo "-- witnesses (the pass is not vacuous): each scenario must be reachable"
# (each must hit its own planted assertion, not some other error)
spawn witness-W_FULL            "fail:$planted0"                  safety -DW_FULL
spawn witness-W_PAD             'fail:\(vk!=3\)'                  safety -DW_PAD
spawn witness-W_STALE           'fail:\(w>>5\)<\(r/4\)'           safety -DW_STALE
spawn witness-W_BUSYSKIP        "fail:$planted0"                  safety -DW_BUSYSKIP
spawn witness-W_SCAN            'fail:\(q==r\)'                   safety -DW_SCAN
spawn witness-W_LAG             'fail:\(store_pos==head\)'        safety -DW_LAG
spawn witness-W_DONE_ALL        "fail:$planted0"                  safety -DW_DONE_ALL
spawn witness-W_DONE_DEAD       'fail:ckills>0'                   safety -DW_DONE_DEAD
spawn witness-successor-done    "fail:$planted0"                  safety -DK0=1 -DK1=0 -DK2=1 -DSUCCESSOR -DW_DONE_ALL
flush

echo "-- finding F1 (C4 as PROTOCOL.md words it) and broken variants: must fail"
spawn finding-F1-as-written     'fail:^I1'                        safety   -DPROTOCOL_AS_WRITTEN
spawn broken-release-first      'fail:^(I1|I3|head ahead)'        safety   -DBROKEN_RELEASE_BEFORE_COMMIT
spawn broken-skip-live          'fail:^I5'                        safety   -DBROKEN_SKIP_LIVE
spawn broken-no-lap             'fail:^(I1|I2|I4)'                safety   -DBROKEN_NO_LAP
spawn broken-wait-dead          'fail:^L1'                        liveness -DK0=1 -DK1=1 -DBROKEN_WAIT_DEAD
flush
fi


if [ "$only" = all ] || [ "$only" = claim ]; then
model="$here/claim.pml"
echo "== ckring claim model: ring/model/claim.pml"
echo "   (NL lanes of CAP records; A: KA messages, 1 or 2 tenures (A_TEN2), may exec (A_EXEC),"
echo "    may undo an attach (A_UNDO, A5);"
echo "    B: duplicate begin; C, D: recoverers; MAXFK = flusher kills; every process SIGKILLed"
echo "    at any step everywhere; FINE = every load of the flusher a step of its own)"
echo "-- the run protocol (PROTOCOL.md + fixes F2-F4): must hold, exhaustively"
# name                          expect kind      bounds
spawn claim-tenures             pass   safety    -DHAS_C -DA_TEN2 -DA_EXEC -DA_UNDO -DKA=2 -DMAXFK=2 -DFINE
spawn claim-tenures-2rec        pass   safety    -DHAS_C -DHAS_D -DA_TEN2 -DA_EXEC -DA_UNDO -DMAXFK=1
spawn claim-3-lanes             pass   safety    -DNL=3 -DHAS_C -DHAS_D -DA_TEN2 -DA_EXEC -DA_UNDO -DMAXFK=1
spawn claim-dup-begin           pass   safety    -DHAS_B -DMAXFK=1 -DFINE
spawn claim-dup-claim           pass   safety    -DHAS_B -DHAS_C -DMAXFK=0
spawn claim-exhausted           pass   safety    -DHAS_C -DHAS_D -DMAXATT=1 -DMAXFK=1 -DFINE
# the other fix of F2: re-load the owner word only, and no A5 that stores 0
spawn claim-reread-no-a5        pass   safety    -DHAS_C -DA_TEN2 -DA_EXEC -DKA=2 -DMAXFK=1 -DG_REREAD_ONLY
flush

echo "-- claim witnesses (the pass is not vacuous): each scenario must be reachable"
ten="-DHAS_C -DA_TEN2 -DA_EXEC -DMAXFK=1"
dup="-DHAS_B -DHAS_C -DMAXFK=1"
two="-DHAS_C -DHAS_D -DMAXFK=1"
# shellcheck disable=SC2086  # $ten/$dup/$two are word lists
{
spawn witness-reattach-claim    'fail:a_reattached'               safety $ten -DW_REATTACH_CLAIM
spawn witness-exec-claim        'fail:execd\[1\]'                 safety $ten -DW_EXEC_CLAIM
spawn witness-other-lane        'fail:other&&'                    safety $ten -DW_OTHER_LANE
spawn witness-gone-mark         'fail:own\[0\]'                   safety $ten -DW_GONEMARK
spawn witness-dup-rejected      "fail:$planted0"                  safety $dup -DW_DUP_REJECTED
spawn witness-wait-rejected     'fail:slotrw'                     safety $dup -DW_WAIT_REJECTED
spawn witness-restart-w4        'fail:w4_wrote'                   safety $dup -DW_RESTART_W4
spawn witness-reclaim           'fail:rec_inc<2'                  safety $two -DW_RECLAIM
spawn witness-recovered-done    'fail:rec_inc>=2'                 safety $two -DW_QUIET_DONE
spawn witness-exhausted         "fail:$planted0"                  safety $two -DMAXATT=1 -DW_EXHAUSTED
spawn witness-aba-caught        'fail:wgen'                       safety $ten -DA_UNDO -DFINE -DW_ABA_CAUGHT
}
flush

echo "-- claim findings F2-F4 (the text as written) and broken variants: must fail"
# shellcheck disable=SC2086
{
spawn finding-F2-G-as-written   'fail:^(E0|P5)'                   safety $ten -DG_AS_WRITTEN
spawn finding-F2-G-P3           'fail:^P3'                        safety $ten -DG_AS_WRITTEN -DNO_E0 -DNO_P5
spawn finding-F2-G-lock-first   'fail:^(E0|P5)'                   safety $ten -DG_LOCK_FIRST
spawn finding-F2-reread-aba     'fail:^(E0|P5)'                   safety $ten -DA_UNDO -DG_REREAD_ONLY
spawn finding-F3-E1-order       'fail:^E0'                        safety $ten -DORDER_AS_WRITTEN
spawn finding-F3-E2-order-P3    'fail:^P3'                        safety $two -DORDER_AS_WRITTEN -DNO_E0
spawn finding-F4-E1-exec        'fail:^L2'                        safety $ten -DE1_AS_WRITTEN
spawn finding-as-written        'fail:^(E0|P3|P5|L2)'             safety $ten -DPROTOCOL_AS_WRITTEN
spawn broken-drained-at-detach  'fail:^P3'                        safety $ten -DBROKEN_DRAINED_AT_DETACH -DNO_E0 -DNO_P5
spawn broken-writer-begin-only  'fail:^P2'                        safety $dup -DBROKEN_WRITER_CHECK_ON_BEGIN_ONLY
spawn broken-claim-no-ended     'fail:^P3'                        safety $ten -DBROKEN_CLAIM_WITHOUT_ENDED -DNO_E0
spawn broken-end-before-last    'fail:^P3'                        safety $ten -DBROKEN_END_BEFORE_LAST_LANE -DNO_E0
spawn broken-claim-two-txns     'fail:^P4'                        safety $two -DBROKEN_CLAIM_TWO_TXNS
spawn broken-no-w4              'fail:^P1'                        safety $dup -DBROKEN_NO_W4
spawn broken-w2-after-head      'fail:^P1'                        safety $dup -DBROKEN_W2_AFTER_HEAD
}
flush
fi

if [ "$only" = all ] || [ "$only" = wake ]; then
model="$here/wake.pml"
echo "== ckring wake-up model: ring/model/wake.pml"
echo "   (NPROD producers of K records each, each waiting for every record; the"
echo "    flusher sleeping when a pass found nothing; no timeouts: a lost wake-up"
echo "    is a deadlock; ATTACH: producers attach, push, never wait)"
echo "-- the wake-up protocol (PROTOCOL.md, Wake-ups): must hold, exhaustively"
spawn wake-2x2                  pass   safety    -DNPROD=2 -DK=2
spawn wake-attach-3x1           pass   safety    -DATTACH -DNPROD=3 -DK=1
spawn wake-attach-2x2           pass   safety    -DATTACH -DNPROD=2 -DK=2
if [ "${MODEL_LONG:-0}" = 1 ]; then
spawn wake-3x1                  pass   safety    -DNPROD=3 -DK=1
fi
flush
echo "-- wake-up witnesses and variants that must deadlock"
spawn witness-flusher-woken     'fail:flusher_woken'              safety -DW_SLEPT
spawn witness-waiter-woken      'fail:waiter_woken'               safety -DW_WAITED
spawn witness-attach-woke       'fail:flusher_woken'              safety -DATTACH -DW_SLEPT
spawn limit-silent-producer     'fail:^deadlock'                  safety -DSILENT
spawn broken-no-recheck         'fail:^deadlock'                  safety -DBROKEN_NO_RECHECK
spawn broken-seen-late          'fail:^deadlock'                  safety -DBROKEN_SEEN_LATE
spawn broken-no-wake            'fail:^deadlock'                  safety -DBROKEN_NO_WAKE
spawn broken-seen-after         'fail:^deadlock'                  safety -DBROKEN_SEEN_AFTER
spawn broken-waiters-first      'fail:^deadlock'                  safety -DBROKEN_WAITERS_FIRST
spawn broken-bump-first         'fail:^deadlock'                  safety -DBROKEN_BUMP_FIRST
spawn broken-no-attach-wake     'fail:^deadlock'                  safety -DATTACH -DBROKEN_NO_ATTACH_WAKE
spawn broken-no-owner-check     'fail:^deadlock'                  safety -DATTACH -DBROKEN_NO_OWNER_CHECK
flush
fi

elapsed=$(awk -v a="$start_all" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
if [ "$unexpected" -eq 0 ]; then
  echo "== model: all checks as expected ($total_states states in the exhaustive runs, ${elapsed}s)"
else
  echo "== model: $unexpected unexpected result(s) (${elapsed}s)"
  exit 1
fi
