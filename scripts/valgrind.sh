#!/usr/bin/env bash
# Run test programs under valgrind's memcheck; any error or leak fails.
# KIVIS_TEST_SCALE=small asks the randomized tests for fewer iterations.
# --fair-sched=yes: valgrind runs one thread at a time, and without a fair
# lock three reader threads that never block can starve a writer returning
# from a syscall (test_lmdb's torn-read test once ran past 12 minutes; 35 s
# with it).
set -euo pipefail
dir=$1
shift || true
progs=("$@")
[ ${#progs[@]} -gt 0 ] || progs=(test_engine test_faulty "test_conformance memory")
status=0
for p in "${progs[@]}"; do
  read -r bin args <<<"$p"
  if KIVIS_TEST_SCALE=small valgrind -q --fair-sched=yes --error-exitcode=99 --leak-check=full \
       --errors-for-leak-kinds=definite,indirect "$dir/$bin" $args >/tmp/vg.$$ 2>&1; then
    echo "valgrind: $p clean"
  else
    echo "valgrind: $p FAILED" >&2
    tail -n 40 /tmp/vg.$$ >&2
    status=1
  fi
  rm -f /tmp/vg.$$
done
exit $status
