#!/usr/bin/env bash
# make bench: the B+tree benchmark, then bench_engines: the phase table at
# N=1,000,000 (kivis against raw LMDB, SQLite, Berkeley DB), the same for
# kivis over its other backends, kivis over PostgreSQL against raw libpq at
# N=100,000 (BENCH_PG_N), kivis over etcd against raw gateway requests at
# N=10,000 (BENCH_ETCD_N), and the scaling curve up to MAX_N (10^6).
#   scripts/bench.sh BUILD_DIR [MAX_N]
# Results go to BUILD_DIR/../bench/ (build/bench/): results.csv, backends.csv,
# raw-pairs.csv (kivis over SQLite and RocksDB beside each by hand),
# postgres.csv, etcd.csv, scaling.csv, scaling.png.
# `make bench-scaling` runs only the scaling curve, up to 10^7.
set -euo pipefail
dir=$1/bench
max_n=${2:-1000000}
out="$(dirname "$1")/bench"
mkdir -p "$out"
start=$(date +%s)
if [ "${BENCH_SCALING_ONLY:-0}" != 1 ]; then
  echo "== bench_btree"
  "$dir/bench_btree"
  echo
  echo "== bench_count: counts and distinct values against decoding scans"
  "$dir/bench_count"
  echo
  echo "== bench_engines: kivis against raw LMDB, SQLite and Berkeley DB"
  "$dir/bench_engines" --n "${BENCH_N:-1000000}" --csv "$out/results.csv"
  echo
  # a table of their own: beside the comparison they would shift its figures
  echo "== bench_engines: kivis over its other backends (raw LMDB the reference)"
  "$dir/bench_engines" --n "${BENCH_N:-1000000}" --csv "$out/backends.csv" \
    --engines kivis-layered,kivis-sqlite,kivis-rocksdb,lmdb
  echo
  # kivis over SQLite and RocksDB beside each by hand, in one run: the
  # ratios kivis/raw of each pair are printed under the table
  echo "== bench_engines: kivis over SQLite and RocksDB against each by hand"
  "$dir/bench_engines" --n "${BENCH_N:-1000000}" --csv "$out/raw-pairs.csv" \
    --engines kivis-sqlite,kivis-rocksdb,sqlite,rocksdb --reference sqlite
  echo
  # PostgreSQL, on a private server bench_engines starts and stops itself;
  # N = 10^5: every read is a round trip, 10^6 would take half an hour
  if "$dir/bench_engines" --help | grep ' kivis-postgres' >/dev/null; then
    echo "== bench_engines: kivis over PostgreSQL against raw libpq"
    "$dir/bench_engines" --n "${BENCH_PG_N:-100000}" --csv "$out/postgres.csv" \
      --engines kivis-postgres,kivis-layered-postgres,postgres \
      --reference postgres
  else
    echo "== bench_engines: no PostgreSQL table (built without libkivis-postgres)"
  fi
  echo
  # etcd, on a private three-member cluster bench_engines starts and stops
  # itself; N = 10^4: every read is a round trip through the JSON gateway
  if "$dir/bench_engines" --help | grep ' kivis-etcd' >/dev/null; then
    echo "== bench_engines: kivis over etcd against raw gateway requests"
    "$dir/bench_engines" --n "${BENCH_ETCD_N:-10000}" --csv "$out/etcd.csv" \
      --engines kivis-etcd,kivis-layered-etcd,etcd --reference etcd
  else
    echo "== bench_engines: no etcd table (built without libkivis-etcd)"
  fi
  echo
fi
echo "== bench_engines --scaling"
"$dir/bench_engines" --scaling --max-n "$max_n" --csv "$out/scaling.csv" \
  --png "$out/scaling.png"
echo "bench: $(( $(date +%s) - start )) s in all"
