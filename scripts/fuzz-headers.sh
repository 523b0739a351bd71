#!/usr/bin/env bash
# Every schema kivis-gen accepts gives files that compile.  Run the schema
# parser fuzzer for SECONDS from its seeds and dictionary, ASCII only; it
# keeps each input kg_compile accepts (KIVIS_FUZZ_KEEP_ACCEPTED).  Of a
# random sample of up to N of those, the ones the real KIVIS_GEN accepts
# get their header compiled as C11 (gcc, clang) and C++17 (g++, clang++)
# and their .c as C11 (gcc), at -Wall -Wextra -Wpedantic -Werror.  A
# failure prints the schema and the compiler's messages and fails the
# step.  Ends with the figures: inputs run, accepted, compiled.
#   fuzz-headers.sh FUZZER KIVIS_GEN [SECONDS=20] [N=50]
set -uo pipefail
fuzzer=$1 gen=$2 seconds=${3:-20} max=${4:-50}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" "$work/accepted"
cp -r "$root/fuzz/corpus/fuzz_schema_parse/." "$work/corpus/"
if ! KIVIS_FUZZ_KEEP_ACCEPTED="$work/accepted" "$fuzzer" \
     -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -only_ascii=1 \
     -dict="$root/fuzz/fuzz_schema_parse.dict" "$work/corpus" >"$work/fuzz.log" 2>&1; then
  echo "fuzz-headers: the fuzzer failed" >&2
  tail -n 40 "$work/fuzz.log" >&2
  exit 1
fi
runs=$(grep -o 'Done [0-9]* runs' "$work/fuzz.log" | grep -o '[0-9]*' || echo '?')

# compile OUT CC STD SOURCE [HEADER]: quietly, the messages in OUT/log
compile() {
  local out=$1 cc=$2 std=$3 src=$4 h=${5:-}
  "$cc" "$std" -fsyntax-only -Wall -Wextra -Wpedantic -Werror \
    -I"$root/include" -I"$out" ${h:+-include "$h"} "$src" >"$out/log" 2>&1
}

# check SCHEMA: 0 compiled everywhere, 1 a compiler refused, 2 kivis-gen did
check() {
  local schema=$1 out=$work/out h
  rm -rf "$out" && mkdir "$out"
  "$gen" -o "$out" "$schema" >/dev/null 2>&1 || return 2
  h=$(cd "$out" && echo *.kivis.h)
  local cases=("gcc -std=c11 $root/tests/gen/include_only.c $h"
               "clang -std=c11 $root/tests/gen/include_only.c $h"
               "g++ -std=c++17 $root/tests/gen/include_only.cpp $h"
               "clang++ -std=c++17 $root/tests/gen/include_only.cpp $h"
               "gcc -std=c11 $out/${h%.h}.c")
  for c in "${cases[@]}"; do
    # shellcheck disable=SC2086 # the case's words are its arguments
    compile "$out" $c && continue
    echo "fuzz-headers: '${c%% *}' refuses what kivis-gen made of this schema:" >&2
    cat "$schema" >&2
    echo "--- ${c% *}" >&2
    head -n 30 "$out/log" >&2
    return 1
  done
}

tried=0 accepted=0 compiled=0 status=0
while IFS= read -r schema; do
  tried=$((tried + 1))
  check "$schema"
  case $? in
    0) accepted=$((accepted + 1)) compiled=$((compiled + 1)) ;;
    1) accepted=$((accepted + 1)) status=1 ;;
  esac
done < <(find "$work/accepted" -type f | shuf -n "$max")
echo "fuzz-headers: $runs inputs run in ${seconds}s, $(find "$work/accepted" -type f | wc -l) accepted;" \
     "of $tried sampled, kivis-gen accepted $accepted, $compiled compiled everywhere"
exit $status
