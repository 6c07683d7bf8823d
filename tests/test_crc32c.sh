#!/usr/bin/env bash
# CRC-32C against a bitwise reference: every length 0..4096 at 16 alignments,
# longer lengths, copy bounds and chained calls (bench/crc32c_check.c).
# (The build targets SSE4.2, as the Makefile does.)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/ckrt-crc-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
${CC:-cc} -std=c11 -O2 -D_GNU_SOURCE -I. -msse4.2 -mpclmul bench/crc32c_check.c ring/crc32c.c -o "$tmp/fast"
"$tmp/fast"
