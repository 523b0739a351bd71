#!/usr/bin/env bash
# Where every phase's time goes, engine by engine: one bench_engines table
# run per engine under callgrind (its cache simulator set to a 32 KiB L1d
# and an 8 MiB last level, as scripts/bench-profile.sh does), then each
# phase function's inclusive counts divided by the phase's ops. Counts, not
# times: they do not move with the machine's load, so they explain a ratio
# that the timed table (make bench) measures.
#
#   scripts/bench-ops.sh BUILD_DIR [N] [ENGINE ...]
#       N defaults to 20000; engines default to kivis-memory kivis-lmdb lmdb
#       kivis-sqlite sqlite kivis-rocksdb rocksdb (those this build has).
#
# Per op: load a record, get a record (the get and zipf_get phases
# together), by_name a lookup with its records, scan a record, rename and
# remove one record each. Prints instructions, L1d misses and last-level
# misses per op; writes build/bench/ops-profile.csv.
set -euo pipefail

dir=${1:?usage: bench-ops.sh BUILD_DIR [N] [ENGINE ...]}
n=${2:-20000}
shift $(( $# >= 2 ? 2 : 1 ))
bin="$dir/bench/bench_engines"
[ $# -gt 0 ] || set -- kivis-memory kivis-lmdb lmdb kivis-sqlite sqlite \
    kivis-rocksdb rocksdb
out=build/bench
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# the bench's function prefix of each engine (bench/engines/eng_*.c)
prefix_of() {
    case $1 in
        kivis-*) echo kv ;; lmdb) echo lm ;; sqlite) echo sq ;;
        rocksdb) echo rk ;; bdb) echo bdb ;; postgres) echo pg ;; etcd) echo et ;;
        *) echo "bench-ops.sh: no prefix known for engine $1" >&2; exit 2 ;;
    esac
}

# ops each phase function runs at N (bench/engines/main.c's phase sizes)
ops_of() {
    case $1 in
        load) echo "$n" ;; get) echo $(( 2 * n )) ;; scan) echo "$n" ;;
        by_name|rename|remove) echo $(( n / 10 )) ;;
    esac
}

csv="$out/ops-profile.csv"
echo "engine,n,phase,instructions_per_op,l1d_misses_per_op,ll_misses_per_op" >"$csv"
printf '%-14s %-8s %12s %12s %12s\n' engine phase instr/op L1d-miss/op LL-miss/op
for engine in "$@"; do
    if ! "$bin" --help | grep -q " $engine\*\? "; then
        echo "$engine: not in this build" >&2
        continue
    fi
    pre=$(prefix_of "$engine")
    cg="$work/$engine.cg"
    valgrind --tool=callgrind --cache-sim=yes --D1=32768,8,64 \
        --LL=8388608,16,64 --callgrind-out-file="$cg" "$bin" --n "$n" \
        --engines "$engine" --reference "$engine" --no-durable \
        --csv "$work/t.csv" >"$work/log" 2>&1 ||
        { cat "$work/log" >&2; exit 1; }
    callgrind_annotate --inclusive=yes --threshold=100 \
        --show=Ir,D1mr,D1mw,DLmr,DLmw "$cg" >"$work/ann" 2>/dev/null
    for phase in load get by_name scan rename remove; do
        ops=$(ops_of "$phase")
        # a line: counts (with commas, maybe percentages), then file:function
        awk -v fn=":${pre}_${phase}" -v e="$engine" -v n="$n" -v p="$phase" \
            -v ops="$ops" -v csv="$csv" '
            {
                f = ""
                for (i = 1; i <= NF; i++) if ($i ~ /:/ && $i !~ /^\(/) { f = $i; break }
                if (f == "" || substr(f, length(f) - length(fn) + 1) != fn) next
                k = 0
                for (j = 1; j < i; j++) {
                    if ($j ~ /^\(/) continue
                    x = $j; gsub(/,/, "", x); v[++k] = x + 0
                }
                ir = v[1] / ops; d1 = (v[2] + v[3]) / ops; ll = (v[4] + v[5]) / ops
                printf "%-14s %-8s %12.0f %12.1f %12.2f\n", e, p, ir, d1, ll
                printf "%s,%d,%s,%.0f,%.2f,%.3f\n", e, n, p, ir, d1, ll >> csv
                exit
            }' "$work/ann"
    done
done
echo "CSV: $csv"
