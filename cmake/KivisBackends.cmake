# The backends over another library, included from the top-level
# CMakeLists.txt before libkivis is defined.  Each one is a library of its
# own, so that a program links only the stores it opens:
#
#   src/storage/<name>.c  ->  libkivis-<name>.a      (target kivis_<name>)
#                             libkivis-<name>.so.0   (target kivis_<name>_shared)
#                             kivis-<name>.pc, CMake component <name>
#
# KIVIS_WITH_<NAME> (cache): AUTO builds the backend when pkg-config finds
# its library, ON insists (configuring fails without it), OFF never builds it.
#
# Sets, for the rest of the build:
#   KIVIS_BACKEND_SOURCES  every backend's source, built or not (libkivis
#                          leaves them out)
#   KIVIS_BACKENDS         the backends built, e.g. "lmdb;sqlite;rocksdb"
#   KIVIS_BACKEND_<name>_MODULE, _TITLE, _REQUIRES_PRIVATE, _LIBS_PRIVATE
#                          for kivis-<name>.pc and the CMake package
# and defines kivis_link_backends() for the programs of this tree.
include_guard(GLOBAL)

find_package(PkgConfig QUIET)
find_package(Threads REQUIRED)

set(KIVIS_BACKEND_SOURCES "")
set(KIVIS_BACKENDS "")

# What a backend's libkivis-<name>.so.0 takes from libkivis's internals
# (kivis__key_cmp, kivis__range_*, kivis__cursor_args, the paged cursor
# kivis__paged_* of the server backends, the in-process
# change feed kivis__feedhub_*): libkivis.so keeps
# kivis__* local, so each backend's shared library carries its own copy,
# local too, of these sources, trimmed to the functions used (--gc-sections).
set(KIVIS_BACKEND_HELPERS
    ${CMAKE_SOURCE_DIR}/src/storage/btrange.c
    ${CMAKE_SOURCE_DIR}/src/storage/btree.c
    ${CMAKE_SOURCE_DIR}/src/storage/feedhub.c
    ${CMAKE_SOURCE_DIR}/src/storage/paged.c
    ${CMAKE_SOURCE_DIR}/src/storage/pointhash.c)

# kivis_add_backend(<name> <pkg-config module(s)> <title> [STATIC_LIBS <lib>...])
# A backend over several libraries names their modules as a list ("a;b").
# STATIC_LIBS: what a static link of the module needs beyond its own -l,
# used when its .pc file does not say (no Libs.private).
macro(kivis_add_backend name module title)
  list(APPEND KIVIS_BACKEND_SOURCES ${CMAKE_SOURCE_DIR}/src/storage/${name}.c)
  kivis__add_backend(${name} "${module}" "${title}" ${ARGN})
  if(TARGET kivis_${name})
    list(APPEND KIVIS_BACKENDS ${name})
  endif()
endmacro()

function(kivis__add_backend name module title)
  cmake_parse_arguments(PARSE_ARGV 3 arg "" "" "STATIC_LIBS")
  string(TOUPPER ${name} NAME)
  set(KIVIS_WITH_${NAME} AUTO CACHE STRING
      "Build the ${title} backend, libkivis-${name}: AUTO (when ${module} is found), ON or OFF")
  set_property(CACHE KIVIS_WITH_${NAME} PROPERTY STRINGS AUTO ON OFF)
  set(mode ${KIVIS_WITH_${NAME}})
  if(NOT mode MATCHES "^(AUTO|ON|OFF)$")
    message(FATAL_ERROR "KIVIS_WITH_${NAME} is '${mode}'; give AUTO, ON or OFF")
  endif()
  if(mode STREQUAL OFF)
    message(STATUS "kivis: ${title} backend off (KIVIS_WITH_${NAME}=OFF)")
    return()
  endif()
  if(mode STREQUAL ON AND NOT PKG_CONFIG_FOUND)
    message(FATAL_ERROR "KIVIS_WITH_${NAME}=ON, but pkg-config, which finds ${module}, is missing")
  endif()
  if(PKG_CONFIG_FOUND)
    if(mode STREQUAL ON)
      pkg_check_modules(${NAME} REQUIRED IMPORTED_TARGET GLOBAL ${module})
    else()
      pkg_check_modules(${NAME} QUIET IMPORTED_TARGET GLOBAL ${module})
    endif()
  endif()
  if(NOT ${NAME}_FOUND)
    message(STATUS "kivis: ${title} backend not built: pkg-config finds no ${module} "
                   "(install its development package, or KIVIS_WITH_${NAME}=OFF)")
    return()
  endif()
  message(STATUS "kivis: ${title} backend: libkivis-${name} (${module} ${${NAME}_VERSION})")

  set(source ${CMAKE_SOURCE_DIR}/src/storage/${name}.c)
  add_library(kivis_${name} STATIC ${source})
  target_link_libraries(kivis_${name} PUBLIC kivis PkgConfig::${NAME} Threads::Threads)

  add_library(kivis_${name}_shared SHARED ${source} ${KIVIS_BACKEND_HELPERS})
  target_link_libraries(kivis_${name}_shared
    PUBLIC kivis_shared PRIVATE PkgConfig::${NAME} Threads::Threads)
  target_compile_options(kivis_${name}_shared PRIVATE -ffunction-sections -fdata-sections)
  target_link_options(kivis_${name}_shared PRIVATE
    "LINKER:--version-script=${CMAKE_SOURCE_DIR}/cmake/kivis.map"
    "LINKER:--gc-sections")
  set_target_properties(kivis_${name}_shared PROPERTIES
    OUTPUT_NAME kivis-${name}
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}
    LINK_DEPENDS ${CMAKE_SOURCE_DIR}/cmake/kivis.map
    # libkivis.so.0 sits beside it, wherever the prefix is.
    INSTALL_RPATH "$ORIGIN")

  set_target_properties(kivis_${name} PROPERTIES OUTPUT_NAME kivis-${name})
  foreach(lib kivis_${name} kivis_${name}_shared)
    target_include_directories(${lib} PRIVATE ${CMAKE_SOURCE_DIR}/src)
    target_compile_definitions(${lib} PRIVATE _POSIX_C_SOURCE=200809L)
  endforeach()
  set_target_properties(kivis_${name} PROPERTIES EXPORT_NAME ${name})
  set_target_properties(kivis_${name}_shared PROPERTIES EXPORT_NAME ${name}_shared)
  add_library(kivis::${name} ALIAS kivis_${name})
  add_library(kivis::${name}_shared ALIAS kivis_${name}_shared)

  # kivis-<name>.pc: Requires.private names the module, whose .pc gives
  # its static link; Libs.private the backend's threads.  When the module's
  # .pc gives no Libs.private (Debian's rocksdb.pc), kivis-<name>.pc names
  # the module's libraries itself, followed by STATIC_LIBS: they must come
  # after them, and pkg-config would put a required module's libraries last.
  string(JOIN " " requires_private ${module})
  set(libs_private -pthread)
  if(arg_STATIC_LIBS AND ${NAME}_STATIC_LIBRARIES STREQUAL ${NAME}_LIBRARIES)
    set(requires_private "")
    list(APPEND libs_private ${${NAME}_LDFLAGS})
    foreach(lib ${arg_STATIC_LIBS})
      list(APPEND libs_private -l${lib})
    endforeach()
  endif()
  string(JOIN " " libs_private ${libs_private})
  set(KIVIS_BACKEND_${name}_MODULE ${module} CACHE INTERNAL "")
  set(KIVIS_BACKEND_${name}_TITLE "${title}" CACHE INTERNAL "")
  set(KIVIS_BACKEND_${name}_REQUIRES_PRIVATE "${requires_private}" CACHE INTERNAL "")
  set(KIVIS_BACKEND_${name}_LIBS_PRIVATE "${libs_private}" CACHE INTERNAL "")
endfunction()

# kivis_scan_backends(<var> <program> <source>...)
# Sets <var> to the backends the sources include (#include <kivis/<b>.h>),
# built or not, and <var>_MISSING to those of them not built: <program>
# cannot link then, so the caller leaves it out of the build (this says so).
# An include marked `/* optional backend */` (inside #ifdef KIVIS_WITH_<B>)
# is in <var> only when that backend is built, and never missing.
function(kivis_scan_backends var program)
  set(used "")
  foreach(src ${ARGN})
    file(STRINGS ${src} lines REGEX "^[ \t]*#[ \t]*include[ \t]*<kivis/[a-z0-9]+\\.h>")
    foreach(line ${lines})
      string(REGEX MATCH "<kivis/([a-z0-9]+)\\.h>" _ "${line}")
      set(b ${CMAKE_MATCH_1})
      if(NOT ${CMAKE_SOURCE_DIR}/src/storage/${b}.c IN_LIST KIVIS_BACKEND_SOURCES)
        continue()
      endif()
      if(line MATCHES "optional backend" AND NOT b IN_LIST KIVIS_BACKENDS)
        continue()
      endif()
      list(APPEND used ${b})
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES used)
  set(missing ${used})
  if(KIVIS_BACKENDS)
    list(REMOVE_ITEM missing ${KIVIS_BACKENDS})
  endif()
  if(missing)
    string(JOIN ", " names ${missing})
    message(STATUS "${program} not built: it needs backends not built: ${names}")
  endif()
  set(${var} "${used}" PARENT_SCOPE)
  set(${var}_MISSING "${missing}" PARENT_SCOPE)
endfunction()

# kivis_link_backends(<target> <backend>...)
# Links <target> with each backend's static library and defines
# KIVIS_WITH_<BACKEND> for its sources.
function(kivis_link_backends target)
  foreach(name ${ARGN})
    string(TOUPPER ${name} NAME)
    target_link_libraries(${target} PRIVATE kivis_${name})
    target_compile_definitions(${target} PRIVATE KIVIS_WITH_${NAME}=1)
  endforeach()
endfunction()

kivis_add_backend(lmdb lmdb LMDB)
kivis_add_backend(sqlite sqlite3 SQLite)
# Debian's rocksdb.pc names no Libs.private; a static link of librocksdb.a
# needs its compression libraries, gflags and the C++ runtime.
kivis_add_backend(rocksdb rocksdb RocksDB
  STATIC_LIBS gflags snappy z bz2 lz4 zstd stdc++ m)
kivis_add_backend(postgres libpq PostgreSQL)
# etcd's v3 JSON gateway over HTTP: libcurl for the requests, jansson for
# the JSON.
kivis_add_backend(etcd "libcurl;jansson" etcd)
