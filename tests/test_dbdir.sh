#!/usr/bin/env bash
# test_dbdir.sh — issue 12.4: the store directory is trusted only when nobody
# else can plant files in it. ckring-flusher refuses, with one line and exit
# 1 (and without creating its segment), a --db that is
#   - a symbolic link to a directory (also written with a trailing slash),
#     or not a directory at all;
#   - owned by another user;
#   - writable by its group (unless --shared-group), or by others (always);
#   - holding a data.mdb or lock.mdb that is a symbolic link, not a regular
#     file, or a second hard link of another file;
# and a planted lock.mdb symlink's target stays byte-identical with the same
# mtime (the first round had LMDB write its lock header into it). Every
# other open of the store (ckring-inspect, recoverers) refuses such files
# too. A private 0700 directory, and a 0770 one with --shared-group, work.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
bin="$build/bin"
seg="ckrt-$$-db"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ckrt-dbdir.XXXXXX")
passed=0
fl=""
cleanup() {
  if [ -n "$fl" ] && kill -0 "$fl" 2>/dev/null; then kill -KILL "$fl"; wait "$fl" 2>/dev/null || true; fi
  rm -f "/dev/shm/$seg"
  rm -rf "$tmp"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { echo "FAIL - $*" >&2; exit 1; }

# refused DESCRIPTION PHRASE DB [FLAGS...]: the flusher exits 1 (bounded)
# with one line on stderr containing PHRASE, and leaves no segment.
refused() {
  local what=$1 phrase=$2 dir=$3 st=0
  shift 3
  timeout -s KILL 30 "$bin/ckring-flusher" --segment "$seg" --db "$dir" --create \
    --size 262144 --lanes 2 "$@" >"$tmp/out" 2>"$tmp/err" || st=$?
  [ "$st" -eq 1 ] || { cat "$tmp/err" >&2; fail "$what: exit $st, want 1"; }
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || { cat "$tmp/err" >&2; fail "$what: not one line"; }
  grep -qF -- "$phrase" "$tmp/err" || fail "$what: '$phrase' not in: $(cat "$tmp/err")"
  [ ! -e "/dev/shm/$seg" ] || fail "$what: the segment was created"
  ok "$what: $(cat "$tmp/err")"
}

# served DESCRIPTION DB [FLAGS...]: the flusher serves (bounded wait), then
# exits 0 on SIGTERM.
served() {
  local what=$1 dir=$2 i st=0
  shift 2
  "$bin/ckring-flusher" --segment "$seg" --db "$dir" --create --size 262144 \
    --lanes 2 "$@" 2>"$tmp/err" &
  fl=$!
  for i in $(seq 1 3000); do # bounded: 30 s
    if "$bin/ckring-inspect" segment "$seg" --json 2>/dev/null |
         grep -q '"alive": true'; then break; fi
    kill -0 "$fl" 2>/dev/null || { cat "$tmp/err" >&2; fail "$what: the flusher exited"; }
    sleep 0.01
  done
  kill -TERM "$fl"
  wait "$fl" || st=$?
  fl=""
  [ "$st" -eq 0 ] || { cat "$tmp/err" >&2; fail "$what: exit $st after SIGTERM"; }
  rm -f "/dev/shm/$seg"
  ok "$what"
}

fingerprint() { # FILE: content hash, size, mtime with nanoseconds
  echo "$(sha256sum <"$1") $(stat -c '%s %y' "$1")"
}

# ---- the directory itself

mkdir -m 700 "$tmp/real"
ln -s "$tmp/real" "$tmp/link"
refused "a symlink to a directory" "is a symbolic link, not a directory" "$tmp/link"
refused "the same with a trailing slash" "is a symbolic link, not a directory" "$tmp/link/"
[ -z "$(ls -A "$tmp/real")" ] || fail "something was created through the symlink"
: >"$tmp/file"
refused "a regular file" "store: Not a directory" "$tmp/file"

if [ "$(id -u)" = 0 ]; then
  mkdir -m 700 "$tmp/theirs"
  chown 65534:65534 "$tmp/theirs"
  refused "a directory of another user" "is owned by uid 65534, not by this user (uid 0)" "$tmp/theirs"
else
  echo "skip - a directory of another user: chown needs root (running as uid $(id -u))"
fi

mkdir -m 770 "$tmp/group"
chmod 770 "$tmp/group" # whatever the umask
refused "a group-writable directory" "is writable by its group (mode 0770; --shared-group allows that)" "$tmp/group"
mkdir "$tmp/others"
chmod 707 "$tmp/others"
refused "an others-writable directory, even with --shared-group" "is writable by others (mode 0707)" "$tmp/others" --shared-group
mkdir "$tmp/sticky"
chmod 1777 "$tmp/sticky"
refused "a sticky world-writable directory (like /tmp)" "is writable by others (mode 1777)" "$tmp/sticky"

served "a private 0700 directory is served" "$tmp/real"
served "a 0770 directory with --shared-group is served" "$tmp/group" --shared-group
mode=$(stat -c %a "$tmp/group/data.mdb")
[ $((0$mode & 07)) -eq 0 ] || fail "--shared-group: data.mdb is mode $mode (others may read it)"
ok "--shared-group: the store's files give others nothing (data.mdb mode $mode)"

# ---- the files in it

mkdir -m 700 "$tmp/planted"
echo "precious bytes, not an LMDB lock file" >"$tmp/victim"
touch -d '2001-02-03 04:05:06.789' "$tmp/victim"
before=$(fingerprint "$tmp/victim")
ln -s "$tmp/victim" "$tmp/planted/lock.mdb"
refused "a planted lock.mdb symlink" "lock.mdb is a symbolic link" "$tmp/planted"
[ "$(fingerprint "$tmp/victim")" = "$before" ] || fail "the symlink's target changed"
ok "the planted lock.mdb's target is byte-identical, same size and mtime"
rm "$tmp/planted/lock.mdb"

ln -s "$tmp/victim" "$tmp/planted/data.mdb"
refused "a planted data.mdb symlink" "data.mdb is a symbolic link" "$tmp/planted"
rm "$tmp/planted/data.mdb"
mkfifo "$tmp/planted/lock.mdb"
refused "a lock.mdb that is a FIFO" "lock.mdb is not a regular file" "$tmp/planted"
rm "$tmp/planted/lock.mdb"
ln "$tmp/victim" "$tmp/planted/lock.mdb"
refused "a lock.mdb that is a hard link of another file" "lock.mdb has 2 hard links" "$tmp/planted"
rm "$tmp/planted/lock.mdb"
[ "$(fingerprint "$tmp/victim")" = "$before" ] || fail "the victim file changed"

# Readers open the store too (LMDB creates and initialises lock.mdb when it
# is the first to open the environment): the same refusal.
served "a store is made in $tmp/planted" "$tmp/planted"
rm "$tmp/planted/lock.mdb"
ln -s "$tmp/victim" "$tmp/planted/lock.mdb"
st=0
"$bin/ckring-inspect" db "$tmp/planted" >"$tmp/out" 2>"$tmp/err" || st=$?
[ "$st" -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "not safe to use" "$tmp/err" ||
  { cat "$tmp/err" >&2; fail "ckring-inspect db with a planted lock.mdb: exit $st"; }
[ "$(fingerprint "$tmp/victim")" = "$before" ] || fail "ckring-inspect wrote through lock.mdb"
ok "ckring-inspect db refuses it too: $(cat "$tmp/err")"

echo "test_dbdir: $passed checks passed"
