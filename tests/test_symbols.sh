#!/usr/bin/env bash
# test_symbols.sh — the ABI is the header. Each shared library exports
# exactly the functions its public header declares CKR_API — no internal
# function exported by mistake, no documented one missing — and its version
# script (packaging/*.map) lists the same set. libckring also exports, under
# the node CKRING_PRIVATE_*, the internals declared CKR_SHARED, and that set
# is exactly what libckring-store needs from it. Finally the shipped
# libraries never print, kill, read the environment or install a signal
# handler (test hooks live in the hooks build only), the producer library
# does not link LMDB, and only the fleet's tools link libpq.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED_HDRS=(event/event.h ring/lane.h ring/wake.h shm/proc.h shm/segment.h)
fail=0
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# same WHAT FILE_A FILE_B: report a difference.
same() {
  if diff -u "$2" "$3" >"$T/diff"; then return 0; fi
  echo "FAIL: $1:"; cat "$T/diff"; fail=1; return 1
}

exported() { # LIB NODE: its defined dynamic symbols of version node NODE
  nm -D --defined-only --with-symbol-versions "$1" 2>/dev/null |
    awk -v n="@@$2" '$2 ~ /^[TDBRW]$/ && index($3, n) { sub(/@.*/, "", $3); print $3 }' |
    sort -u
}

map_node() { # MAP NODE: the names listed in that node of a version script
  awk -v n="$2" '$1 == n { on = 1; next } on && /^}/ { on = 0 } on' "$1" |
    sed -n 's/^ *\(ckr_[a-z0-9_]*\);$/\1/p' | sort -u
}

[ -f "$BUILD/libckring.so" ] && [ -f "$BUILD/libckring-store.so" ] ||
  { echo "FAIL: the shared libraries are missing (make lib)"; exit 1; }

# libckring: the public node, then the private one.
bash packaging/exports.sh include/ckring.h >"$T/api"
map_node packaging/libckring.map CKRING_0.2 >"$T/map"
exported "$BUILD/libckring.so" CKRING_0.2 >"$T/exp"
same "packaging/libckring.map (CKRING_0.2) vs the CKR_API of include/ckring.h" "$T/api" "$T/map" &&
same "libckring.so exports (CKRING_0.2) vs include/ckring.h" "$T/api" "$T/exp" &&
  echo "ok - libckring.so: $(wc -l <"$T/api") API symbols, as include/ckring.h documents"

bash packaging/exports.sh --macro CKR_SHARED "${SHARED_HDRS[@]}" >"$T/shared"
map_node packaging/libckring.map CKRING_PRIVATE_0.2 >"$T/pmap"
exported "$BUILD/libckring.so" CKRING_PRIVATE_0.2 >"$T/pexp"
nm -D --undefined-only "$BUILD/libckring-store.so" | awk '{ sub(/@.*/, "", $2); print $2 }' |
  grep '^ckr_' | sort -u | comm -23 - "$T/api" >"$T/needed"
same "packaging/libckring.map (CKRING_PRIVATE_0.2) vs the CKR_SHARED declarations" "$T/shared" "$T/pmap" &&
same "libckring.so exports (CKRING_PRIVATE_0.2) vs CKR_SHARED" "$T/shared" "$T/pexp" &&
same "CKR_SHARED vs what libckring-store.so needs from libckring" "$T/shared" "$T/needed" &&
  echo "ok - libckring.so: $(wc -l <"$T/shared") private symbols, exactly those libckring-store needs"

# libckring-store: public node only.
bash packaging/exports.sh include/ckring_store.h >"$T/sapi"
map_node packaging/libckring-store.map CKRING_0.2 >"$T/smap"
exported "$BUILD/libckring-store.so" CKRING_0.2 >"$T/sexp"
same "packaging/libckring-store.map vs the CKR_API of include/ckring_store.h" "$T/sapi" "$T/smap" &&
same "libckring-store.so exports vs include/ckring_store.h" "$T/sapi" "$T/sexp" &&
  echo "ok - libckring-store.so: $(wc -l <"$T/sapi") API symbols, as include/ckring_store.h documents"
n_all=$(nm -D --defined-only "$BUILD/libckring-store.so" | awk '$2 ~ /^[TDBRW]$/' | wc -l)
[ "$n_all" = "$(wc -l <"$T/sapi")" ] ||
  { echo "FAIL: libckring-store.so exports $n_all symbols, not $(wc -l <"$T/sapi")"; fail=1; }

# libckring-fleet: public node only; it alone links libpq.
if [ -f "$BUILD/libckring-fleet.so" ]; then
  bash packaging/exports.sh include/ckring_fleet.h >"$T/fapi"
  map_node packaging/libckring-fleet.map CKRING_0.2 >"$T/fmap"
  exported "$BUILD/libckring-fleet.so" CKRING_0.2 >"$T/fexp"
  same "packaging/libckring-fleet.map vs the CKR_API of include/ckring_fleet.h" "$T/fapi" "$T/fmap" &&
  same "libckring-fleet.so exports vs include/ckring_fleet.h" "$T/fapi" "$T/fexp" &&
    echo "ok - libckring-fleet.so: $(wc -l <"$T/fapi") API symbols, as include/ckring_fleet.h documents"
  for lib in libckring.so libckring-store.so; do
    if readelf -d "$BUILD/$lib" | grep -q 'libpq'; then echo "FAIL: $lib links libpq"; fail=1; fi
  done
  echo "ok - only libckring-fleet links libpq"
else
  echo "FAIL: $BUILD/libckring-fleet.so is missing (make lib)"; fail=1
fi

# The tools: exactly those over libckring-fleet link libpq (the flusher and
# the inspector work without it: the embedded path never needs PostgreSQL).
links_pq() { readelf -d "$1" 2>/dev/null | grep -q 'NEEDED.*libpq'; }
pq_tools="ckring-ship ckring-recover ckring-admin"
for t in $pq_tools; do
  links_pq "$BUILD/bin/$t" || { echo "FAIL: $t does not link libpq (FLEET_TOOLS)"; fail=1; }
done
for t in ckring-flusher ckring-inspect ckring-load; do
  if links_pq "$BUILD/bin/$t"; then echo "FAIL: $t links libpq"; fail=1; fi
done
echo "ok - the tools that link libpq are $pq_tools; the flusher, inspector and load do not"

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
quiet "$BUILD/libckring-fleet.a"
exit "$fail"
