#!/usr/bin/env bash
# tests/pg/pg.sh — a private PostgreSQL server for the tests (sourced).
# PostgreSQL refuses to run as root, so as root the server runs as the
# unprivileged user ckring-pg (created when missing); it listens only on a
# unix socket in its own temp dir (no TCP), and pg_stop stops it. The
# caller installs a trap that calls pg_stop (also on failure).
#
#   pg_start DIR     initdb into DIR/data, start, create database ckring;
#                    sets PG_CONN (a libpq conninfo), PG_DIR
#   pg_stop          stop the server (fast), if it runs
#   pg_restart       stop (fast) and start again (same data)
#   pg_psql SQL...   run SQL through psql, tuples only, unaligned
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PG_USER=${PG_USER:-ckring-pg}
PG_DIR=
PG_CONN=
PG_RUNNING=0

pg_as() { # run a command as the server's user (or as we are, when not root)
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

pg_start() {
  [ -x "$PG_BIN/initdb" ] || { echo "pg.sh: no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): make deps" >&2; return 1; }
  PG_DIR=$1
  mkdir -p "$PG_DIR"
  if [ "$(id -u)" = 0 ]; then
    id -u "$PG_USER" >/dev/null 2>&1 ||
      useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
    chmod 755 "$PG_DIR"
    # Every directory above it must be searchable by the server's user.
    local d=$PG_DIR
    while [ "$d" != / ]; do d=$(dirname "$d"); chmod o+x "$d" 2>/dev/null || true; done
    chown "$PG_USER" "$PG_DIR"
  fi
  pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U ckring -A trust -E UTF8 --no-locale \
    >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$PG_DIR'
fsync = on
max_connections = 40
shared_buffers = 64MB
CONF
  _pg_up || return 1
  PG_CONN="host=$PG_DIR user=ckring dbname=ckring"
  pg_as "$PG_BIN/createdb" -h "$PG_DIR" -U ckring ckring || return 1
}

_pg_up() {
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start \
    >/dev/null || { tail -n 20 "$PG_DIR/server.log" >&2; return 1; }
  PG_RUNNING=1
}

pg_stop() {
  [ "$PG_RUNNING" = 1 ] || return 0
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  PG_RUNNING=0
}

pg_restart() {
  pg_stop
  _pg_up
}

pg_psql() {
  psql -X -q -t -A -v ON_ERROR_STOP=1 "$PG_CONN" -c "$*"
}
