#!/usr/bin/env bash
# test_install.sh — `make install` into a staging directory, then use the
# installed tree the way a user would: pkg-config finds ckring, the example
# executor builds against the installed header and library only, and runs
# against a fresh segment served by the installed ckring-flusher. Finally
# the uninstall removes everything it installed.
# Prints one "ok - ..." line per check; exit 0 when all passed.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD:-build}
for t in pkg-config python3 make; do
  command -v "$t" >/dev/null || { echo "test_install: $t is required" >&2; exit 1; }
done

# A sanitizer build (make asan/tsan) cannot be linked by a plain user program.
case "$build" in /*) lib="$build/libckring.a" ;; *) lib="$top/$build/libckring.a" ;; esac
# (nm's output is captured first: with pipefail, grep -q ending the pipe
# early would make nm die of SIGPIPE and the test look false.)
syms=$( [ -f "$lib" ] && nm "$lib" 2>/dev/null || true)
if grep -q -E '__(asan|tsan)_' <<<"$syms"; then
  echo "test_install: skipped (sanitizer build in $build)"
  exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ckring-test-install.XXXXXX")
stage="$tmp/stage"
prefix=/usr
root="$stage$prefix"
seg="ckri-$$-$RANDOM"
flusher_pid=""
passed=0

cleanup() {
  if [ -n "$flusher_pid" ] && kill -0 "$flusher_pid" 2>/dev/null; then
    kill -KILL "$flusher_pid" 2>/dev/null || true
    wait "$flusher_pid" 2>/dev/null || true
  fi
  rm -f "/dev/shm/$seg"
  rm -rf "$tmp"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { echo "FAIL - $*" >&2; exit 1; }

do_install() {
  make -C "$top" --no-print-directory install DESTDIR="$stage" PREFIX="$prefix" \
    BUILD="$build" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "make install"; }
  ok "make install DESTDIR=$stage PREFIX=$prefix"
}

check_tree() {
  local f
  for f in lib/libckring.a lib/libckring.so lib/libckring.so.1 include/ckring.h \
           lib/libckring-store.a lib/libckring-store.so lib/libckring-store.so.1 \
           include/ckring_store.h lib/pkgconfig/ckring-store.pc \
           lib/pkgconfig/ckring.pc bin/ckring-flusher bin/ckring-inspect bin/ckring-admin \
           bin/ckring-load bin/ckring-demo \
           share/man/man1/ckring-flusher.1 share/man/man1/ckring-inspect.1 share/man/man1/ckring-admin.1 \
           share/man/man1/ckring-load.1 share/man/man1/ckring-bench.1 \
           share/man/man1/ckring-demo.1 lib/systemd/system/ckring-flusher@.service; do
    [ -e "$root/$f" ] || fail "not installed: $prefix/$f"
  done
  [ -L "$root/lib/libckring.so" ] || fail "libckring.so is not a symlink"
  [ -x "$root/bin/ckring-flusher" ] || fail "ckring-flusher is not executable"
  grep -qx "prefix=$prefix" "$root/lib/pkgconfig/ckring.pc" || fail "ckring.pc: prefix"
  grep -q "^Libs.private: -lpthread -lrt" "$root/lib/pkgconfig/ckring.pc" ||
    fail "ckring.pc: Libs.private"
  grep -q "^Libs.private: -llmdb -lpthread -lrt" "$root/lib/pkgconfig/ckring-store.pc" ||
    fail "ckring-store.pc: Libs.private"
  grep -q "ExecStart=$prefix/bin/ckring-flusher " \
    "$root/lib/systemd/system/ckring-flusher@.service" || fail "unit: ExecStart"
  if grep -rq "$stage" "$root/lib/pkgconfig" "$root/lib/systemd"; then
    fail "the staging directory leaked into an installed file"
  fi
  ok "installed: two libraries, two headers, two .pc files, tools, 5 man pages, systemd unit"
}

check_pkg_config() {
  export PKG_CONFIG_PATH="$root/lib/pkgconfig"
  local cflags libs
  cflags=$(pkg-config --define-prefix --cflags ckring | xargs)
  libs=$(pkg-config --define-prefix --libs ckring | xargs)
  [ "$cflags" = "-I$root/include" ] || fail "pkg-config --cflags: '$cflags'"
  [ "$libs" = "-L$root/lib -lckring" ] || fail "pkg-config --libs: '$libs'"
  pkg-config --define-prefix --static --libs ckring | grep -q -- "-llmdb" &&
    fail "pkg-config --static --libs ckring pulls in LMDB: a producer must not"
  libs=$(pkg-config --define-prefix --libs ckring-store | xargs)
  [ "$libs" = "-L$root/lib -lckring-store -lckring" ] ||
    fail "pkg-config --libs ckring-store: '$libs'"
  pkg-config --define-prefix --static --libs ckring-store | grep -q -- "-llmdb" ||
    fail "pkg-config --static --libs ckring-store lacks -llmdb"
  ok "pkg-config: ckring $cflags -lckring (no LMDB); ckring-store $libs"
}

build_example() {
  cp -r "$top/examples" "$tmp/examples"
  rm -f "$tmp/examples/minimal_executor" "$tmp/examples/boot_recovery"
  make -C "$tmp/examples" --no-print-directory PKG_CONFIG="pkg-config --define-prefix" \
    >"$tmp/example-build.log" 2>&1 || { cat "$tmp/example-build.log" >&2; fail "build examples"; }
  local deps
  deps=$(LD_LIBRARY_PATH="$root/lib" ldd "$tmp/examples/minimal_executor")
  echo "$deps" | grep -q "libckring.so.1 => $root/lib/libckring.so.1" ||
    fail "minimal_executor is not linked against the installed libckring.so.1"
  echo "$deps" | grep -q "liblmdb" && fail "minimal_executor links LMDB"
  deps=$(LD_LIBRARY_PATH="$root/lib" ldd "$tmp/examples/boot_recovery")
  echo "$deps" | grep -q "libckring-store.so.1 => $root/lib/libckring-store.so.1" ||
    fail "boot_recovery is not linked against the installed libckring-store.so.1"
  ok "examples build with pkg-config: minimal_executor on libckring alone (no LMDB), boot_recovery on libckring-store"
}

start_flusher() {
  mkdir -p "$tmp/db"
  "$root/bin/ckring-flusher" --segment "$seg" --db "$tmp/db" --create --size 1048576 \
    --lanes 4 &
  flusher_pid=$!
  local i
  for i in $(seq 1 300); do # bounded: 30 s
    "$root/bin/ckring-inspect" segment "$seg" --json 2>/dev/null |
      python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["flusher"]["alive"] else 1)' \
      2>/dev/null && { ok "installed ckring-flusher serves $seg"; return; }
    kill -0 "$flusher_pid" 2>/dev/null || fail "the installed flusher exited at start"
    sleep 0.1
  done
  fail "the installed flusher did not start within 30 s"
}

run_example() {
  LD_LIBRARY_PATH="$root/lib" "$tmp/examples/minimal_executor" "$seg" run-install-1 \
    >"$tmp/example.out" 2>&1 || { cat "$tmp/example.out" >&2; fail "minimal_executor"; }
  grep -q "^appended message 3 (seq 3)$" "$tmp/example.out" || fail "example: no 3rd message"
  grep -q "^committed: the 3 messages$" "$tmp/example.out" || fail "example: not committed"
  grep -q "^run run-install-1 completed$" "$tmp/example.out" || fail "example: not completed"
  "$root/bin/ckring-inspect" db "$tmp/db" --json >"$tmp/db.json"
  python3 - "$tmp/db.json" <<'EOF'
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
assert [(r["id"], r["state"]) for r in runs] == [("run-install-1", "completed")], runs
EOF
  ok "minimal_executor: 3 messages committed, run completed (store agrees)"
  # Runs left RUNNING by a process that is gone: the boot path continues them.
  "$root/bin/ckring-load" --segment "$seg" --procs 1 --threads 1 --runs 2 --events 3 \
    --size 32 --prefix boot- --finish leave >/dev/null 2>&1 || fail "ckring-load"
  local i
  for i in $(seq 1 300); do # bounded: 30 s, until the flusher stored them
    "$root/bin/ckring-inspect" db "$tmp/db" --json 2>/dev/null | python3 -c '
import json, sys
runs = json.load(sys.stdin)["runs"]
sys.exit(0 if sum(r["id"].startswith("boot-") and r["events"] == 4 for r in runs) == 2 else 1)' &&
      break
    sleep 0.1
  done
  LD_LIBRARY_PATH="$root/lib" "$tmp/examples/boot_recovery" "$seg" "$tmp/db" \
    >"$tmp/boot.out" 2>&1 || { cat "$tmp/boot.out" >&2; fail "boot_recovery"; }
  grep -q "^2 interrupted runs$" "$tmp/boot.out" || fail "boot: $(cat "$tmp/boot.out")"
  [ "$(grep -c " completed$" "$tmp/boot.out")" = 2 ] || fail "boot: $(cat "$tmp/boot.out")"
  ok "boot_recovery: claimed, resumed and completed the 2 runs a dead process left"
  local st=0
  kill -TERM "$flusher_pid"
  wait "$flusher_pid" || st=$?
  flusher_pid=""
  [ "$st" -eq 0 ] || fail "the installed flusher exited $st on SIGTERM"
  ok "the installed flusher exits 0 on SIGTERM"
}

check_uninstall() {
  bash "$top/packaging/install.sh" --uninstall "$stage" "$prefix" >"$tmp/uninstall.log" 2>&1 ||
    { cat "$tmp/uninstall.log" >&2; fail "uninstall"; }
  local left
  left=$(find "$stage" -type f -o -type l)
  [ -z "$left" ] || fail "uninstall left: $left"
  ok "install.sh --uninstall removes every installed file"
}

do_install
check_tree
check_pkg_config
build_example
start_flusher
run_example
check_uninstall
echo "test_install: $passed checks passed"
