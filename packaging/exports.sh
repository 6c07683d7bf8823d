#!/usr/bin/env bash
# packaging/exports.sh HEADER — the functions HEADER declares CKR_API (the
# documented ABI), one per line, sorted. Used to write and to check the
# version scripts (tests/test_symbols.sh).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 HEADER" >&2; exit 2; }
# A declaration runs from CKR_API to its ';' (it may span lines); its name
# is the identifier just before the first '('.
awk '/^CKR_API/ { d = ""; on = 1 }
     on { d = d " " $0; if ($0 ~ /;/) { print d; on = 0 } }' "$1" |
  sed -E 's/\(.*//; s/.*[ *]([a-z_][a-z0-9_]*)$/\1/' | sort -u
