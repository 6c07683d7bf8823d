# env.sh — source it to build or run Go code against this tree's ckring:
#
#   . bindings/go/env.sh [BUILD]      (BUILD: the C build directory, default build)
#
# Installs the build (make install's script) under BUILD/go-prefix with
# that absolute PREFIX, so its pkg-config files name real paths, and points
# PKG_CONFIG_PATH (cgo's `#cgo pkg-config`) and LD_LIBRARY_PATH there: the
# way a user with ckring installed in a prefix builds. Also: GOPROXY=off (the
# module needs nothing from a proxy), -buildvcs=false, and GOCACHE under
# BUILD when the environment gives go no cache directory. CKRING_BIN names
# the build's tools for the tests.
ckr_go_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ckr_go_top=$(cd "$ckr_go_here/../.." && pwd)
ckr_go_build=${1:-${BUILD:-build}}
case "$ckr_go_build" in /*) ;; *) ckr_go_build="$ckr_go_top/$ckr_go_build" ;; esac
ckr_go_prefix="$ckr_go_build/go-prefix"
bash "$ckr_go_top/packaging/install.sh" "" "$ckr_go_prefix" "$ckr_go_build" >/dev/null ||
  { echo "env.sh: could not install $ckr_go_build under $ckr_go_prefix (run make first)" >&2; return 1; }
export PKG_CONFIG_PATH="$ckr_go_prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$ckr_go_prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CKRING_BIN="$ckr_go_build/bin"
export GOPROXY=off GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
if [ -z "${GOCACHE:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ] && [ -z "${HOME:-}" ]; then
  export GOCACHE="$ckr_go_build/go-cache"
fi
unset ckr_go_here ckr_go_top ckr_go_build ckr_go_prefix
