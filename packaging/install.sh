#!/usr/bin/env bash
# install.sh — install ckring (called by `make install`):
#
#   bash packaging/install.sh DESTDIR PREFIX BUILD
#   bash packaging/install.sh --uninstall DESTDIR PREFIX
#
# Installs, under DESTDIR/PREFIX:
#   lib/libckring.a, lib/libckring.so.1.0 (+ libckring.so.1, libckring.so links)
#   include/ckring.h
#   lib/pkgconfig/ckring.pc          (from packaging/ckring.pc.in, prefix=PREFIX)
#   bin/ckring-*                     (every tool built in BUILD/bin)
#   share/man/man1/ckring-*.1
#   lib/systemd/system/ckring-flusher@.service   (documentation: not enabled)
#   lib/libckring-fleet.*, include/ckring_fleet.h, ckring-fleet.pc,
#   lib/systemd/system/ckring-ship@.service      (the shipper; libpq)
# DESTDIR may be empty. Paths inside the installed files name PREFIX, not
# DESTDIR, so a staged tree (DESTDIR=/tmp/stage) is what a package would hold.
# Exit status: 0 done; 1 a build output is missing or a copy failed; 2 usage.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)

usage() {
  echo "usage: bash packaging/install.sh DESTDIR PREFIX BUILD" >&2
  echo "       bash packaging/install.sh --uninstall DESTDIR PREFIX" >&2
  exit 2
}

say() { printf '  %-7s %s\n' "$1" "$2"; }

die() { echo "install.sh: $*" >&2; exit 1; }

# The library version from the public header (CKRING_VERSION_MAJOR.MINOR).
version() {
  local h="$top/include/ckring.h" maj min
  maj=$(sed -n 's/^#define CKRING_VERSION_MAJOR \([0-9]*\).*/\1/p' "$h")
  min=$(sed -n 's/^#define CKRING_VERSION_MINOR \([0-9]*\).*/\1/p' "$h")
  [ -n "$maj" ] && [ -n "$min" ] || die "no CKRING_VERSION_MAJOR/MINOR in $h"
  echo "$maj.$min"
}

# The shared library's soname (libckring.so.1 unless the ELF says otherwise).
soname() { # LIB DEFAULT
  local s=""
  if command -v objdump >/dev/null 2>&1; then
    s=$(objdump -p "$1" 2>/dev/null | awk '$1 == "SONAME" { print $2 }')
  fi
  echo "${s:-$2}"
}

# Copy $2 to $3 with mode $1 (parent directories made).
put() {
  install -d "$(dirname "$3")"
  install -m "$1" "$2" "$3"
  say INSTALL "$3"
}

# Substitute @PREFIX@/@VERSION@ in $2 into $3 (mode $1).
subst() {
  install -d "$(dirname "$3")"
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$ver|g" "$2" > "$3.tmp.$$"
  chmod "$1" "$3.tmp.$$"
  mv -f "$3.tmp.$$" "$3"
  say INSTALL "$3"
}

install_lib() { # NAME: libNAME.a, libNAME.so (soname, .0 file, dev link)
  local name=$1 so real
  [ -f "$build/lib$name.a" ] || die "missing $build/lib$name.a (run make first)"
  [ -f "$build/lib$name.so" ] || die "missing $build/lib$name.so (run make first)"
  put 0644 "$build/lib$name.a" "$root/lib/lib$name.a"
  so=$(soname "$build/lib$name.so" "lib$name.so.1")
  real="$so.0"
  put 0755 "$build/lib$name.so" "$root/lib/$real"
  ln -sfn "$real" "$root/lib/$so"
  say LINK "$root/lib/$so -> $real"
  if [ "$so" != "lib$name.so" ]; then
    ln -sfn "$so" "$root/lib/lib$name.so"
    say LINK "$root/lib/lib$name.so -> $so"
  fi
}

install_libs() {
  install_lib ckring
  install_lib ckring-store
  install_lib ckring-fleet
}

install_tools() {
  local t n=0
  for t in "$build"/bin/ckring-*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    put 0755 "$t" "$root/bin/$(basename "$t")"
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] || die "no tools in $build/bin (run make first)"
}

install_docs() {
  local m
  for m in "$here"/*.1; do
    [ -f "$m" ] || continue
    put 0644 "$m" "$root/share/man/man1/$(basename "$m")"
  done
  subst 0644 "$here/ckring-flusher@.service" \
    "$root/lib/systemd/system/ckring-flusher@.service"
  subst 0644 "$here/ckring-ship@.service" \
    "$root/lib/systemd/system/ckring-ship@.service"
}

do_install() {
  install_libs
  put 0644 "$top/include/ckring.h" "$root/include/ckring.h"
  put 0644 "$top/include/ckring_store.h" "$root/include/ckring_store.h"
  put 0644 "$top/include/ckring_fleet.h" "$root/include/ckring_fleet.h"
  subst 0644 "$here/ckring.pc.in" "$root/lib/pkgconfig/ckring.pc"
  subst 0644 "$here/ckring-store.pc.in" "$root/lib/pkgconfig/ckring-store.pc"
  subst 0644 "$here/ckring-fleet.pc.in" "$root/lib/pkgconfig/ckring-fleet.pc"
  install_tools
  install_docs
}

# Remove what do_install puts there (and nothing else).
do_uninstall() {
  local f
  for f in "$root"/lib/libckring.a "$root"/lib/libckring.so "$root"/lib/libckring.so.* \
           "$root"/lib/libckring-store.a "$root"/lib/libckring-store.so \
           "$root"/lib/libckring-store.so.* \
           "$root"/lib/libckring-fleet.a "$root"/lib/libckring-fleet.so \
           "$root"/lib/libckring-fleet.so.* "$root/include/ckring_fleet.h" \
           "$root/lib/pkgconfig/ckring-fleet.pc" "$root/lib/systemd/system/ckring-ship@.service" \
           "$root/include/ckring.h" "$root/include/ckring_store.h" \
           "$root/lib/pkgconfig/ckring.pc" "$root/lib/pkgconfig/ckring-store.pc" \
           "$root"/bin/ckring-* "$root"/share/man/man1/ckring-*.1 \
           "$root/lib/systemd/system/ckring-flusher@.service"; do
    if [ -e "$f" ] || [ -L "$f" ]; then
      rm -f "$f"
      say REMOVE "$f"
    fi
  done
}

mode=install
if [ "${1:-}" = --uninstall ]; then
  mode=uninstall
  shift
  [ $# -eq 2 ] || usage
else
  [ $# -eq 3 ] || usage
fi
destdir=$1
prefix=$2
build=${3:-build}
case "$prefix" in
  /*) ;;
  *) die "PREFIX must be an absolute path: '$prefix'" ;;
esac
case "$build" in
  /*) ;;
  *) build="$top/$build" ;;
esac
root="$destdir$prefix"
ver=$(version)

if [ "$mode" = install ]; then
  do_install
else
  do_uninstall
fi
