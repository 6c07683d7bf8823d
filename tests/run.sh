#!/usr/bin/env bash
# Run test binaries one after another; print one line per binary and a
# closing "N passed, N failed" line. Exit non-zero if any failed.
set -u
pass=0; fail=0; failed=()
for t in "$@"; do
  [ -x "$t" ] || { echo "missing test binary: $t" >&2; fail=$((fail+1)); failed+=("$t"); continue; }
  log=$(mktemp)
  start=$(date +%s.%N)
  if "$t" >"$log" 2>&1; then
    pass=$((pass+1)); st=ok
  else
    fail=$((fail+1)); st=FAIL; failed+=("$t")
  fi
  el=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
  printf '  %-4s %-40s %ss\n' "$st" "$(basename "$t")" "$el"
  if [ "$st" = FAIL ] || [ -n "${VERBOSE:-}" ]; then sed 's/^/      /' "$log"; fi
  rm -f "$log"
done
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
