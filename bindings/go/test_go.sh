#!/usr/bin/env bash
# test_go.sh — the Go binding's checks, run by `make test` (tests/run.sh)
# and `make go-test`: gofmt and go vet clean, then `go test -race` of the
# binding (its tests start the real ckring-flusher of the build, helper
# executor processes, ckring-inspect, ckring-load and the C boot-recovery
# example) and of the Go example (a Go executor SIGKILLed mid-run, a Go host
# that recovers its runs).
#
# The C libraries are found the way a user's build finds them: pkg-config,
# over an install of this build under $BUILD/go-prefix (bindings/go/env.sh).
# A sanitizer build (make asan/tsan) cannot be linked by a plain Go program:
# skipped there. Prints one "ok - ..." line per check; exit 0 when all passed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac

syms=$( [ -f "$build/libckring.a" ] && nm "$build/libckring.a" 2>/dev/null || true)
if grep -q -E '__(asan|tsan)_' <<<"$syms"; then
  echo "test_go: skipped (sanitizer build in $build)"
  exit 0
fi
command -v go >/dev/null || { echo "test_go: go is required (make deps installs golang-go)" >&2; exit 1; }

# shellcheck source=env.sh
. "$here/env.sh" "$build"
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { echo "FAIL - $*" >&2; exit 1; }

unformatted=$(gofmt -l "$here" "$top/examples/go")
[ -z "$unformatted" ] || fail "gofmt -l: $unformatted"
ok "gofmt -l: nothing to format"

(cd "$here" && go vet -race ./...) || fail "go vet (bindings/go)"
(cd "$top/examples/go" && go vet -race ./...) || fail "go vet (examples/go)"
ok "go vet: bindings/go, examples/go"   # (-race: the tests' build shares its compiled packages)

# -count=1: the tests run against the processes they start; never cached.
(cd "$here" && go test -race -count=1 -timeout 300s ./...) || fail "go test -race (bindings/go)"
ok "go test -race ./... (bindings/go)"
(cd "$top/examples/go" && go test -race -count=1 -timeout 300s ./...) || fail "go test -race (examples/go)"
ok "go test -race ./... (examples/go: executor killed, host recovers)"
echo "test_go: $passed checks passed"
