#!/usr/bin/env bash
# Where a point get's time goes, engine by engine: callgrind counts the
# instructions of the get phase alone (--toggle-collect on each engine's get
# function) and simulates the caches (32 KiB L1d, 8 MiB last level), at each
# N given. Counts, not times: they do not move with the machine's load.
#
#   scripts/bench-profile.sh BUILD_DIR [N ...]     (default N: 10000 100000)
#
# Prints per get: instructions, L1d misses, last-level misses; writes
# build/bench/profile.csv. Each size loads N records under valgrind first:
# 10^6 takes minutes per engine (SQLite and Berkeley DB the longest).
set -euo pipefail

dir=${1:?usage: bench-profile.sh BUILD_DIR [N ...]}
shift
[ $# -gt 0 ] || set -- 10000 100000
bin="$dir/bench/bench_engines"
out=build/bench
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# engine name, then the bench function that runs its get phase
engines=("kivis-memory kv_get" "kivis-lmdb kv_get" "lmdb lm_get"
         "sqlite sq_get" "bdb bdb_get")

csv="$out/profile.csv"
echo "engine,n,instructions_per_get,l1d_misses_per_get,ll_misses_per_get" >"$csv"
printf '%-13s %9s %12s %12s %12s\n' engine N instr/get L1d-miss/get LL-miss/get
for n in "$@"; do
    for spec in "${engines[@]}"; do
        read -r engine fn <<<"$spec"
        cg="$work/$engine.$n.cg"
        valgrind --tool=callgrind --cache-sim=yes --D1=32768,8,64 \
            --LL=8388608,16,64 --toggle-collect="$fn" \
            --callgrind-out-file="$cg" "$bin" --scaling --min-n "$n" \
            --max-n "$n" --engines "$engine" --csv "$work/s.csv" \
            --png "$work/s.png" >"$work/log" 2>&1 ||
            { cat "$work/log" >&2; exit 1; }
        # events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw (trailing zeros
        # may be left off the summary line)
        awk -v e="$engine" -v n="$n" -v csv="$csv" '
            /^summary:/ {
                for (i = 2; i <= 10; i++) v[i] = (i <= NF ? $i : 0)
                ir = v[2] / n; d1 = (v[6] + v[7]) / n; ll = (v[9] + v[10]) / n
                printf "%-13s %9d %12.0f %12.1f %12.2f\n", e, n, ir, d1, ll
                printf "%s,%d,%.0f,%.2f,%.3f\n", e, n, ir, d1, ll >> csv
            }' "$cg"
    done
done
echo "CSV: $csv"
