#!/usr/bin/env bash
# Install the Debian packages a group of make targets needs, when missing.
#   deps.sh demo    make demo: build kivis-gen, libkivis, libkivis-lmdb and
#                   the pets example (compiler, cmake, pkg-config, LMDB)
#   deps.sh remote  make remote-demo: the demo's and PostgreSQL (server, libpq)
#   deps.sh test    (the default) the build with every backend, the tests,
#                   sanitizers, valgrind and fuzzers, and the PostgreSQL
#                   server and etcd cluster the tests start: make, make
#                   test, CI
#   deps.sh bench   the tests' packages and the benchmarks' (Berkeley DB,
#                   gnuplot)
set -euo pipefail
demo=(cmake make gcc pkg-config liblmdb-dev)
remote=("${demo[@]}" postgresql libpq-dev)
test=("${demo[@]}" g++ clang libclang-rt-14-dev libcmocka-dev valgrind
      libsqlite3-dev librocksdb-dev postgresql libpq-dev
      etcd-server libcurl4-openssl-dev libjansson-dev)
bench=("${test[@]}" libdb5.3-dev gnuplot-nox)
case "${1:-test}" in
  demo) need=("${demo[@]}") ;;
  remote) need=("${remote[@]}") ;;
  test) need=("${test[@]}") ;;
  bench) need=("${bench[@]}") ;;
  *) echo "usage: $0 [demo|remote|test|bench]" >&2; exit 2 ;;
esac
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
