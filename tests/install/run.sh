#!/usr/bin/env bash
# Install a kivis build into a scratch prefix and build the outside project
# (tests/install/project) against it:
#   (a) CMake: find_package(kivis) + kivis_generate(), CMAKE_PREFIX_PATH=<prefix>
#   (b) make: pkg-config (PKG_CONFIG_PATH=<prefix>/lib/pkgconfig) and
#       <prefix>/bin/kivis-gen run from the Makefile
# each linked with libkivis.a (app) and libkivis.so (app_shared); every
# program must print OK.
#
# usage: run.sh BUILD_DIR WORK_DIR
# env:   CMAKE (cmake), CC (cc), KIVIS_OUTSIDE_FLAGS (extra compile and link
#        flags, e.g. the sanitizers the library was built with)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$1
work=$2
cmake=${CMAKE:-cmake}
flags=${KIVIS_OUTSIDE_FLAGS:-}
export CC=${CC:-cc}

fail() { echo "install_outside: $*" >&2; exit 1; }
step() { echo "== $*"; }

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

step "install $build into $prefix"
"$cmake" --install "$build" --prefix "$prefix"
for f in lib/libkivis.a lib/libkivis.so lib/libkivis.so.0 "lib/libkivis.so.0.1.0" \
         include/kivis.h include/kivis/common.h include/kivis/schema.h \
         include/kivis/storage.h include/kivis/memory.h bin/kivis-gen \
         lib/pkgconfig/kivis.pc lib/cmake/kivis/kivisConfig.cmake \
         lib/cmake/kivis/kivisConfigVersion.cmake lib/cmake/kivis/kivisTargets.cmake \
         lib/cmake/kivis/KivisGenerate.cmake; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
done
soname=$(readelf -d "$prefix/lib/libkivis.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libkivis.so.0 ] || fail "SONAME is '$soname', not libkivis.so.0"
grep -q "^prefix=$prefix\$" "$prefix/lib/pkgconfig/kivis.pc" || fail "kivis.pc names another prefix"

step "libkivis.so exports the public kivis_* API and no internal kivis__* symbol"
nm -D --defined-only "$prefix/lib/libkivis.so" | awk '$2 ~ /^[TDRB]$/ {print $3}' \
  | sed 's/@.*//' | sort -u >"$work/exported"
nm -g --defined-only "$prefix/lib/libkivis.a" | awk 'NF == 3 && $3 ~ /^kivis_[^_]/ {print $3}' \
  | sort -u >"$work/public"
if grep -v '^kivis_[^_]' "$work/exported"; then fail "exported beyond the public API (above)"; fi
diff -u "$work/public" "$work/exported" || fail "the public API and libkivis.so's exports differ"

# Runs a program that must print OK, and reports which libkivis it uses.
run() {
  local out
  out=$("$@") || fail "$* exited with $?"
  [ "$out" = OK ] || fail "$* printed '$out', not OK"
  local lib
  lib=$(ldd "${@: -1}" | awk '/libkivis/ {print $3}')
  echo "$* -> OK (${lib:-libkivis.a})"
}
# Checks how a program links: `static` (no libkivis.so needed) or the
# libkivis.so.0 of the scratch prefix.
linked() { # program static|shared
  local needed
  needed=$(readelf -d "$1" | sed -n 's/.*NEEDED.*\[\(libkivis[^]]*\)\]/\1/p')
  if [ "$2" = static ]; then
    [ -z "$needed" ] || fail "$1 needs $needed, expected libkivis.a"
  else
    [ "$needed" = libkivis.so.0 ] || fail "$1 needs '$needed', expected libkivis.so.0"
  fi
}

step "(a) CMake: find_package(kivis) + kivis_generate()"
cp -R "$here/project" "$work/cmake-src"
"$cmake" -S "$work/cmake-src" -B "$work/cmake-build" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags"
found=$(sed -n 's/^kivis_DIR:PATH=//p' "$work/cmake-build/CMakeCache.txt")
[ "$found" = "$prefix/lib/cmake/kivis" ] || fail "find_package found kivis in '$found'"
"$cmake" --build "$work/cmake-build"
linked "$work/cmake-build/app" static
linked "$work/cmake-build/app_shared" shared
run "$work/cmake-build/app"
run "$work/cmake-build/app_shared" # through the build RPATH
# An edited schema is compiled again; an unchanged one is not.
"$cmake" --build "$work/cmake-build" >"$work/rebuild.log"
if grep -q 'kivis-gen:' "$work/rebuild.log"; then fail "kivis-gen ran with no change"; fi
touch "$work/cmake-src/app.kvs"
"$cmake" --build "$work/cmake-build" >"$work/rebuild.log"
grep -q 'kivis-gen:' "$work/rebuild.log" || fail "kivis-gen did not run after the schema changed"
run "$work/cmake-build/app"

step "(b) make: pkg-config + kivis-gen by hand"
cp -R "$here/project" "$work/make-src"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" CFLAGS="-O2 -g $flags" LDFLAGS="$flags" \
  make -C "$work/make-src"
linked "$work/make-src/app" static
linked "$work/make-src/app_shared" shared
run "$work/make-src/app"
LD_LIBRARY_PATH="$prefix/lib" run "$work/make-src/app_shared"

echo "install_outside: OK"
