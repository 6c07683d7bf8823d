#!/usr/bin/env bash
# CRC-32C against a bitwise reference: every length 0..4096 at 16 alignments,
# longer lengths, copy bounds and chained calls (tests/crc32c_check.c, built
# by `make tests` as BUILD/tests/crc32c_check with the library's own flags).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BUILD:-build}/tests/crc32c_check"
[ -x "$bin" ] || { echo "missing $bin (run make tests)" >&2; exit 1; }
"$bin"
