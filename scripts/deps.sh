#!/usr/bin/env bash
# Install the Debian packages the build, tests, fuzzers and benchmarks need,
# when missing.  libdb5.3-dev and gnuplot-nox serve only `make bench`.
set -euo pipefail
need=(cmake make gcc g++ clang libclang-rt-14-dev pkg-config libcmocka-dev valgrind liblmdb-dev
      libsqlite3-dev librocksdb-dev postgresql libpq-dev libdb5.3-dev gnuplot-nox)
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
