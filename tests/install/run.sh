#!/usr/bin/env bash
# Install a kivis build into a scratch prefix and build the outside project
# (tests/install/project) against it:
#   (a) CMake: find_package(kivis COMPONENTS <backends>) + kivis_generate(),
#       CMAKE_PREFIX_PATH=<prefix>
#   (b) make: pkg-config (PKG_CONFIG_PATH=<prefix>/lib/pkgconfig) and
#       <prefix>/bin/kivis-gen run from the Makefile
# each on the in-memory store (libkivis alone) and on every backend built,
# linked statically (libkivis.a, libkivis-<b>.a) and shared (the .so files);
# every program must print OK.  On the way: the core needs no outside
# library (pkg-config finds it with no other .pc, libkivis.so needs libc
# only), an LMDB-only program loads neither RocksDB, SQLite nor libstdc++,
# a static link needs none of the backend's shared libraries (so the .pc
# files name all it needs), a missing CMake component is reported.
#
# usage: run.sh BUILD_DIR WORK_DIR
# env:   CMAKE (cmake), CC (cc), KIVIS_OUTSIDE_FLAGS (extra compile and link
#        flags, e.g. the sanitizers the library was built with),
#        KIVIS_BACKENDS (the backends the build has, e.g. "lmdb sqlite rocksdb")
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$1
work=$2
cmake=${CMAKE:-cmake}
flags=${KIVIS_OUTSIDE_FLAGS:-}
read -r -a backends <<<"${KIVIS_BACKENDS:-}"
export CC=${CC:-cc}

fail() { echo "install_outside: $*" >&2; exit 1; }
step() { echo "== $*"; }

rm -rf "$work"
mkdir -p "$work/stores"
prefix=$work/prefix

step "install $build into $prefix (backends: ${backends[*]:-none})"
"$cmake" --install "$build" --prefix "$prefix"
for f in include/kivis.h include/kivis/common.h include/kivis/schema.h include/kivis/decode.h \
         include/kivis/storage.h include/kivis/memory.h bin/kivis-gen \
         lib/cmake/kivis/kivisConfig.cmake \
         lib/cmake/kivis/kivisConfigVersion.cmake lib/cmake/kivis/kivisTargets.cmake \
         lib/cmake/kivis/KivisGenerate.cmake share/man/man1/kivis.1 \
         share/man/man1/kivis-gen.1; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
done
# A library's files, SONAME and pkg-config module.
check_library() { # name (kivis, kivis-lmdb, ...)
  local f
  for f in lib/lib$1.a lib/lib$1.so lib/lib$1.so.0 lib/lib$1.so.0.1.0 lib/pkgconfig/$1.pc; do
    [ -e "$prefix/$f" ] || fail "not installed: $f"
  done
  local soname
  soname=$(readelf -d "$prefix/lib/lib$1.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
  [ "$soname" = "lib$1.so.0" ] || fail "SONAME of lib$1.so is '$soname', not lib$1.so.0"
  grep -q "^prefix=$prefix\$" "$prefix/lib/pkgconfig/$1.pc" || fail "$1.pc names another prefix"
}
check_library kivis
for b in "${backends[@]}"; do
  check_library "kivis-$b"
  [ -e "$prefix/include/kivis/$b.h" ] || fail "not installed: include/kivis/$b.h"
  [ -e "$prefix/lib/cmake/kivis/kivis-${b}Targets.cmake" ] || fail "no CMake component $b"
done

# The public kivis_* names a library defines (nm of its archive) must be
# exactly what its .so exports: nothing internal (kivis__*), nothing else.
check_exports() { # name
  nm -D --defined-only "$prefix/lib/$1.so" | awk '$2 ~ /^[TDRB]$/ {print $3}' \
    | sed 's/@.*//' | sort -u >"$work/exported"
  nm -g --defined-only "$prefix/lib/$1.a" | awk 'NF == 3 && $3 ~ /^kivis_[^_]/ {print $3}' \
    | sort -u >"$work/public"
  if grep -v '^kivis_[^_]' "$work/exported"; then fail "$1.so exports beyond the public API (above)"; fi
  diff -u "$work/public" "$work/exported" || fail "the public API and $1.so's exports differ"
  [ -s "$work/exported" ] || fail "$1.so exports nothing"
}
step "each .so exports its public kivis_* API and no internal kivis__* symbol"
check_exports libkivis
for b in "${backends[@]}"; do check_exports "libkivis-$b"; done

# The shared libraries a file needs (NEEDED), one per line.
needed() { readelf -d "$1" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'; }
# Libraries besides libc, the loader and the sanitizer runtimes.
beyond_libc() { grep -vE '^(libc|libm|ld-linux.*|libasan|libubsan|libtsan|libgcc_s)\.so' || true; }

step "the core stands alone: libkivis.so needs libc only, kivis.pc no other module"
extra=$(needed "$prefix/lib/libkivis.so" | beyond_libc)
[ -z "$extra" ] || fail "libkivis.so needs $extra"
PKG_CONFIG_LIBDIR="$prefix/lib/pkgconfig" pkg-config --cflags --libs --static kivis >/dev/null \
  || fail "pkg-config kivis needs more than kivis.pc"

# Runs a program that must print OK.
run() {
  local out
  out=$("$@") || fail "$* exited with $?"
  [ "$out" = OK ] || fail "$* printed '$out', not OK"
  echo "$* -> OK"
}
# A static program needs no libkivis*.so and none of its backend's shared
# libraries: everything came from archives.  A shared one needs exactly
# libkivis.so.0 (and libkivis-<b>.so.0 for a backend).
check_static() { # program
  local extra
  extra=$(needed "$1" | beyond_libc)
  [ -z "$extra" ] || fail "$(basename "$1") needs $(echo $extra), expected a static link"
}
check_links() { # program static|shared [backend]
  if [ "$2" = static ]; then
    needed "$1" | grep '^libkivis' && fail "$(basename "$1") needs libkivis*.so, expected the archives"
  else
    local want=libkivis.so.0 got
    [ -z "${3:-}" ] || want="libkivis-$3.so.0 libkivis.so.0"
    got=$(needed "$1" | grep '^libkivis' | LC_ALL=C sort | xargs)
    [ "$got" = "$want" ] || fail "$(basename "$1") needs '$got', expected '$want'"
  fi
  return 0
}
# The programs of one build: the in-memory app, then app_<b> on each backend.
run_all() { # dir label
  check_links "$1/app" static
  check_links "$1/app_shared" shared
  run "$1/app"
  run "$1/app_shared"
  local b
  for b in "${backends[@]}"; do
    check_links "$1/app_$b" static
    check_links "$1/app_${b}_shared" shared "$b"
    run "$1/app_$b" "$work/stores/$2-$b"
    run "$1/app_${b}_shared" "$work/stores/$2-$b-shared"
  done
}
# An LMDB-only program loads no other store's library and no C++ runtime
# (but for what the sanitizer runtimes, when there, load for themselves).
check_lmdb_only() { # program
  local loaded runtimes
  loaded=$(ldd "$1" | awk '{print $1}' | sort -u)
  runtimes=$(ldd "$1" | awk '$1 ~ /^lib(a|ub|t)san\./ {print $3}')
  if [ -n "$runtimes" ]; then
    loaded=$(comm -23 <(echo "$loaded") <(for r in $runtimes; do ldd "$r"; done | awk '{print $1}' | sort -u))
  fi
  if grep -E '^lib(rocksdb|sqlite3|stdc\+\+|snappy|gflags)' <<<"$loaded"; then
    fail "$(basename "$1") loads the above"
  fi
  echo "$(basename "$1"): NEEDED $(needed "$1" | xargs); loads $(echo $loaded)"
}

step "(a) CMake: find_package(kivis COMPONENTS ${backends[*]:-}) + kivis_generate()"
cp -R "$here/project" "$work/cmake-src"
"$cmake" -S "$work/cmake-src" -B "$work/cmake-build" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_PREFIX_PATH="$prefix" \
  -DAPP_BACKENDS="$(IFS=';'; echo "${backends[*]}")" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags"
found=$(sed -n 's/^kivis_DIR:PATH=//p' "$work/cmake-build/CMakeCache.txt")
[ "$found" = "$prefix/lib/cmake/kivis" ] || fail "find_package found kivis in '$found'"
"$cmake" --build "$work/cmake-build"
run_all "$work/cmake-build" cmake # shared ones through the build RPATH
# An edited schema is compiled again; an unchanged one is not.
"$cmake" --build "$work/cmake-build" >"$work/rebuild.log"
if grep -q 'kivis-gen:' "$work/rebuild.log"; then fail "kivis-gen ran with no change"; fi
touch "$work/cmake-src/app.kvs"
"$cmake" --build "$work/cmake-build" >"$work/rebuild.log"
grep -q 'kivis-gen:' "$work/rebuild.log" || fail "kivis-gen did not run after the schema changed"
run "$work/cmake-build/app"

step "(a) a component that is not installed is reported by name"
if "$cmake" -S "$work/cmake-src" -B "$work/cmake-missing" -DCMAKE_PREFIX_PATH="$prefix" \
     -DAPP_BACKENDS="nosuch" >"$work/missing.log" 2>&1; then
  fail "find_package(kivis COMPONENTS nosuch) succeeded"
fi
grep -q "nosuch: no such backend installed" "$work/missing.log" \
  || { cat "$work/missing.log"; fail "no clear message for a missing component"; }

step "(b) make: pkg-config + kivis-gen -o gen (which creates gen/)"
cp -R "$here/project" "$work/make-src"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" CFLAGS="-O2 -g $flags" LDFLAGS="$flags" \
  make -C "$work/make-src" BACKENDS="${backends[*]}"
for app in app "${backends[@]/#/app_}"; do check_static "$work/make-src/$app"; done
# The shared programs run from their RPATH alone, the prefix being outside
# the loader's search path.
(unset LD_LIBRARY_PATH; run_all "$work/make-src" make)

if [ -x "$work/make-src/app_lmdb_shared" ]; then
  step "an LMDB-only program"
  check_lmdb_only "$work/make-src/app_lmdb_shared"
  check_lmdb_only "$work/make-src/app_lmdb"
  check_lmdb_only "$work/cmake-build/app_lmdb"
fi

echo "install_outside: OK"
