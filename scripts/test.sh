#!/usr/bin/env bash
# Every test: the ctest suite under ASan+UBSan, the threaded LMDB and etcd tests
# under TSan, the test programs under valgrind, each fuzzer for
# FUZZ_SECONDS, and the headers of fuzzed schemas kivis-gen accepts
# compiled (scripts/fuzz-headers.sh, about a minute).  Ends with one tally
# line.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fuzz_seconds=${1:-20}
passed=0 failed=0

tally() { # name status
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1" >&2; fi
}

cd "$root/build/asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j "$(nproc)" | tee /tmp/kivis-ctest.$$
n_ok=$(grep -c 'Test *#[0-9]*: .* Passed' /tmp/kivis-ctest.$$ || true)
n_bad=$(grep -cE 'Test *#[0-9]*: .*(Failed|\*\*\*|Not Run)' /tmp/kivis-ctest.$$ || true)
passed=$((passed + n_ok)) failed=$((failed + n_bad))
rm -f /tmp/kivis-ctest.$$

cd "$root"
# The threaded tests: LMDB's readers and writers, etcd's watch thread.
for p in test_lmdb test_lmdb_layout test_etcd; do
  TSAN_OPTIONS=halt_on_error=1 build/tsan/tests/$p >/tmp/kivis-tsan.$$ 2>&1
  status=$?
  [ $status -eq 0 ] && echo "tsan: $p clean" || tail -n 60 /tmp/kivis-tsan.$$ >&2
  tally "tsan $p" $status
done
rm -f /tmp/kivis-tsan.$$

for p in test_engine test_handles test_count test_writes test_jsonl test_references test_optional test_schema_open test_postgres test_postgres_trips test_postgres_commit test_etcd test_offline test_cache test_faulty test_lmdb test_lmdb_layout test_multiproc "test_conformance memory" "test_conformance lmdb" "test_conformance sqlite" test_btree test_codec test_cli; do
  bash scripts/valgrind.sh build/release/tests "$p"; tally "valgrind $p" $?
done

# The generated API under valgrind: a handle cast from another schema must
# be refused without an invalid access, and the generated decoders read
# no byte past a value.
bash scripts/valgrind.sh build/release/tests/gen test_gen_roundtrip test_gen_two_schemas test_gen_decode
tally "valgrind generated API" $?

for bin in build/fuzz/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  bash scripts/fuzz.sh "$bin" "$fuzz_seconds"; tally "fuzz $(basename "$bin")" $?
done

if [ -x build/fuzz/fuzz/fuzz_schema_parse ]; then
  bash scripts/fuzz-headers.sh build/fuzz/fuzz/fuzz_schema_parse \
    build/release/gen/kivis-gen 20 50
  tally "fuzz-headers" $?
fi

echo "kivis: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
