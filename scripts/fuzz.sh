#!/usr/bin/env bash
# Run libFuzzer targets (every fuzz_* in DIR, or the one binary given) for
# SECONDS each, from its seed corpus (fuzz/corpus/NAME) and dictionary
# (fuzz/NAME.dict) when it has one.  Fails on any crash, leak, timeout or
# sanitizer report.
set -euo pipefail
target=$1 seconds=$2
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
if [ -d "$target" ]; then bins=("$target"/fuzz_*); else bins=("$target"); fi
for bin in "${bins[@]}"; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  corpus=$(mktemp -d)
  [ -d "$root/fuzz/corpus/$name" ] && cp -r "$root/fuzz/corpus/$name/." "$corpus/"
  dict=()
  [ -f "$root/fuzz/$name.dict" ] && dict=(-dict="$root/fuzz/$name.dict")
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 "${dict[@]}" "$corpus" >"$corpus.log" 2>&1; then
    runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$corpus.log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $name ok ($runs runs in ${seconds}s)"
  else
    echo "fuzz: $name FAILED" >&2
    tail -n 60 "$corpus.log" >&2
    status=1
  fi
  rm -rf "$corpus" "$corpus.log"
done
exit $status
