#!/usr/bin/env bash
# test_symbols.sh — the ABI is the header: each shared library exports
# exactly the functions its public header declares CKR_API, no more (an
# internal function exported by mistake) and no fewer (a documented one
# missing), and its version script (packaging/*.map) lists the same set.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
fail=0
check() { # LIB HEADER MAP
  local lib=$1 hdr=$2 map=$3 tmp before=$fail
  tmp=$(mktemp -d)
  [ -f "$lib" ] || { echo "FAIL: $lib missing (make lib)"; fail=1; return; }
  bash packaging/exports.sh "$hdr" >"$tmp/header"
  sed -n 's/^ *\(ckr_[a-z0-9_]*\);$/\1/p' "$map" | sort -u >"$tmp/map"
  nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRW]$/ { print $3 }' |
    sed 's/@.*//' | sort -u >"$tmp/exported"
  if ! diff -u "$tmp/header" "$tmp/map" >"$tmp/d1"; then
    fail=1; echo "FAIL: $map differs from the CKR_API functions of $hdr:"; cat "$tmp/d1"; fail=1
  fi
  if ! diff -u "$tmp/header" "$tmp/exported" >"$tmp/d2"; then
    echo "FAIL: $lib exports other symbols than $hdr documents:"; cat "$tmp/d2"; fail=1
  fi
  [ "$fail" != "$before" ] || echo "ok - $(basename "$lib"): $(wc -l <"$tmp/header") symbols, as $hdr documents"
  rm -rf "$tmp"
}
# The shipped libraries never print, never kill, never read the environment
# and install no signal handler (crash points and every other test hook live
# in the hooks build only); the producer library does not link LMDB.
quiet() { # ARCHIVE [EXTRA_FORBIDDEN_REGEX]
  local bad re='^(printf|fprintf|vfprintf|puts|fputs|putchar|fputc|perror|fwrite|raise|abort|exit|_exit|getenv|signal|sigaction)$'
  [ $# -lt 2 ] || re="$re|$2"
  bad=$(nm -u "$1" | awk '{ print $2 }' | sort -u | grep -E "$re" || true)
  if [ -n "$bad" ]; then
    echo "FAIL: $(basename "$1") calls: $(echo $bad)"; fail=1
  else
    echo "ok - $(basename "$1") neither prints, kills, reads the environment$([ $# -lt 2 ] || echo ' nor links LMDB')"
  fi
}
quiet "$BUILD/libckring.a" '^mdb_'
quiet "$BUILD/libckring-store.a"
check "$BUILD/libckring.so" include/ckring.h packaging/libckring.map
check "$BUILD/libckring-store.so" include/ckring_store.h packaging/libckring-store.map
exit "$fail"
