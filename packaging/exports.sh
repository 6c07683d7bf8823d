#!/usr/bin/env bash
# packaging/exports.sh [--macro M] HEADER... — the functions the headers
# declare with macro M (default CKR_API, the documented ABI; CKR_SHARED, the
# internals libckring-store calls), one per line, sorted. Used to write and
# to check the version scripts (tests/test_symbols.sh).
set -euo pipefail
macro=CKR_API
if [ "${1:-}" = --macro ]; then macro=$2; shift 2; fi
[ $# -ge 1 ] || { echo "usage: $0 [--macro M] HEADER..." >&2; exit 2; }
# A declaration runs from the macro to its ';' (it may span lines); its name
# is the identifier just before the first '('.
for h in "$@"; do
  awk -v m="^$macro " '$0 ~ m { d = ""; on = 1 }
       on { d = d " " $0; if ($0 ~ /;/) { print d; on = 0 } }' "$h"
done | sed -E 's/\(.*//; s/.*[ *]([a-z_][a-z0-9_]*)$/\1/' | sort -u
