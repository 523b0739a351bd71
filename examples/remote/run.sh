#!/usr/bin/env bash
# examples/remote/run.sh PROGRAM [N] [--check]
#
# The remote example end to end (README.md beside this file): a private
# PostgreSQL server in a temporary directory (initdb and pg_ctl from the
# newest /usr/lib/postgresql/*/bin, as user nobody when run as root, since
# initdb refuses root), listening on a free port of 127.0.0.1; the price
# list loaded; a reader process (a shop: memory -> LMDB -> PostgreSQL)
# warmed up; a writer process (another shop, its own tiers) making N price
# updates (default 1000); then the reader's report.  The server and the
# directory are removed on any exit, a failed one or ^C included.
#
# --check: exit 1 unless the reader saw the last update of every hot price
# and at least 80% of the N updates, the p99 invalidation delay is under
# MAX_P99_MS (default 500), and the memory and LMDB tiers answered reads.
set -euo pipefail

usage() { echo "usage: $0 PROGRAM [N] [--check]" >&2; exit 2; }
[ $# -ge 1 ] || usage
prog=$(realpath "$1")
n=${2:-1000}
check=${3:-}
[ -x "$prog" ] || { echo "run.sh: $1 is not a program" >&2; exit 2; }
max_p99_ms=${MAX_P99_MS:-500}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || {
  echo "run.sh: no PostgreSQL server in /usr/lib/postgresql/*/bin (apt-get install postgresql)" >&2
  exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/kivis-remote-XXXXXX")
as_server=()
if [ "$(id -u)" -eq 0 ]; then
  chown nobody "$work"
  as_server=(runuser -u nobody --)
fi
pids=()

cleanup() {
  status=$?
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  if [ -f "$work/pg/postmaster.pid" ]; then
    "${as_server[@]}" "$bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
  echo "run.sh: $*" >&2
  exit 1
}
server_died() {
  tail -n 20 "$work"/*.log >&2 2>/dev/null || true
  die "$@"
}

"${as_server[@]}" "$bin/initdb" -D "$work/pg" -U kivis --auth=trust -E UTF8 \
  --no-sync >"$work/initdb.log" 2>&1 || server_died "initdb failed"

# A free port: try a few random ones (a busy port makes the start fail).
started=0
for _ in 1 2 3 4 5 6 7 8; do
  port=$((20000 + RANDOM % 40000))
  if "${as_server[@]}" "$bin/pg_ctl" -D "$work/pg" -l "$work/server.log" -w -t 30 \
       -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off" \
       start >"$work/pg_ctl.log" 2>&1; then
    started=1
    break
  fi
done
[ "$started" -eq 1 ] || server_died "the server did not start"
conninfo="host=127.0.0.1 port=$port user=kivis dbname=postgres"
echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"

"$prog" load "$conninfo" || die "load failed"

"$prog" reader "$conninfo" "$work/shop-reader" "$n" >"$work/reader.out" 2>&1 &
reader=$!
pids+=("$reader")
for _ in $(seq 600); do # up to 60 s
  grep -q '^reader: ready' "$work/reader.out" && break
  kill -0 "$reader" 2>/dev/null || { cat "$work/reader.out" >&2; die "the reader failed"; }
  sleep 0.1
done
grep -q '^reader: ready' "$work/reader.out" || die "the reader was not ready in 60 s"

# In the background, so that a signal to this script ends it at once.
"$prog" writer "$conninfo" "$work/shop-writer" "$n" &
pids+=("$!")
wait "$!" || die "the writer failed"
reader_status=0
wait "$reader" || reader_status=$?
pids=()
grep -v '^reader: ready' "$work/reader.out"
[ "$reader_status" -eq 0 ] || die "the reader failed (exit $reader_status)"

[ "$check" = "--check" ] || exit 0
out="$work/reader.out"
seen=$(awk '/^reader: .* updates seen/ {print $2}' "$out")
p99=$(awk '/^invalidation delay/ {for (i = 1; i < NF; i++) if ($i == "p99") print $(i + 1)}' "$out")
mem_hits=$(awk '$1 == "memory" {print $3}' "$out")
lmdb_hits=$(awk '$1 == "lmdb" {print $3}' "$out")
fails=0
fail() { echo "check: $*" >&2; fails=1; }
grep -q ', converged$' "$out" || fail "the reader did not converge"
[ -n "$seen" ] && [ "$seen" -ge $((n * 8 / 10)) ] || fail "the reader saw ${seen:-no} updates of $n"
[ -n "$p99" ] && awk -v p="$p99" -v m="$max_p99_ms" 'BEGIN {exit !(p < m)}' ||
  fail "p99 delay ${p99:-?} ms, not under $max_p99_ms ms"
[ "${mem_hits:-0}" -gt 0 ] || fail "no read hit the memory tier"
[ "${lmdb_hits:-0}" -gt 0 ] || fail "no read hit the LMDB tier"
[ "$fails" -eq 0 ] || exit 1
echo "check: passed"
