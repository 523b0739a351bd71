#!/usr/bin/env bash
# Run every benchmark program in DIR, one after the other.
set -euo pipefail
dir=$1
for bin in "$dir"/bench_*; do
  [ -x "$bin" ] || continue
  echo "== $(basename "$bin")"
  "$bin"
done
