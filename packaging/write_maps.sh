#!/usr/bin/env bash
# packaging/write_maps.sh — (re)write the version scripts from the headers:
# packaging/libckring.map (the CKR_API functions of include/ckring.h, and
# the CKR_SHARED internals libckring-store calls) and
# packaging/libckring-store.map (the CKR_API functions of
# include/ckring_store.h), packaging/libckring-fleet.map (those of
# include/ckring_fleet.h). Run it after changing a declaration;
# tests/test_symbols.sh fails until the maps agree with the headers.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED_HDRS=(event/event.h ring/lane.h ring/wake.h shm/proc.h shm/segment.h)
node() { # NAME PARENT FUNCTIONS...
  local name=$1 parent=$2; shift 2
  echo "$name {"
  echo "  global:"
  printf '    %s;\n' "$@"
  if [ -z "$parent" ]; then echo "  local:"; echo "    *;"; echo "};"; else echo "} $parent;"; fi
}
{
  echo "/* The ABI of libckring: exactly the CKR_API functions of include/ckring.h"
  echo " * (node CKRING_0.2), plus the internals its sister library"
  echo " * libckring-store calls (node CKRING_PRIVATE_0.2: declared CKR_SHARED in"
  echo " * ${SHARED_HDRS[*]}; not API)."
  echo " * Written by packaging/write_maps.sh; tests/test_symbols.sh checks that"
  echo " * the headers, this script and the built libraries agree. */"
  mapfile -t api < <(bash packaging/exports.sh include/ckring.h)
  node CKRING_0.2 "" "${api[@]}"
  echo
  mapfile -t shared < <(bash packaging/exports.sh --macro CKR_SHARED "${SHARED_HDRS[@]}")
  node CKRING_PRIVATE_0.2 CKRING_0.2 "${shared[@]}"
} >packaging/libckring.map
{
  echo "/* The ABI of libckring-store: exactly the CKR_API functions of"
  echo " * include/ckring_store.h. Written by packaging/write_maps.sh;"
  echo " * tests/test_symbols.sh checks that the header, this script and the"
  echo " * built library agree. */"
  mapfile -t api < <(bash packaging/exports.sh include/ckring_store.h)
  node CKRING_0.2 "" "${api[@]}"
} >packaging/libckring-store.map
{
  echo "/* The ABI of libckring-fleet: exactly the CKR_API functions of"
  echo " * include/ckring_fleet.h. Written by packaging/write_maps.sh;"
  echo " * tests/test_symbols.sh checks that the header, this script and the"
  echo " * built library agree. */"
  mapfile -t api < <(bash packaging/exports.sh include/ckring_fleet.h)
  node CKRING_0.2 "" "${api[@]}"
} >packaging/libckring-fleet.map
