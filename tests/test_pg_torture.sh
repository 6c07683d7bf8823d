#!/usr/bin/env bash
# test_pg_torture.sh — the short version of tests/pg_torture.sh for `make
# test`: 12 shipper kills and 3 PostgreSQL restarts under load, verified row
# by row (`make pg-torture` runs the long one: >= 50 kills, >= 5 restarts).
exec bash "$(dirname "$0")/pg_torture.sh" --kills 12 --restarts 3 "$@"
