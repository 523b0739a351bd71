# Install rules and the CMake package, included from the top-level
# CMakeLists.txt.  Layout under the prefix:
#   lib/libkivis.a, lib/libkivis.so{,.0,.0.1.0}
#   include/kivis.h, include/kivis/*.h
#   bin/kivis-gen, bin/kivis
#   lib/pkgconfig/kivis.pc
#   lib/cmake/kivis/{kivisConfig,kivisConfigVersion,kivisTargets*,KivisGenerate}.cmake
#
# What libkivis links from outside, found again by consumers of the CMake
# package and named in kivis.pc: keep in step with the find_package and
# pkg_check_modules calls of the top-level CMakeLists.txt.
set(KIVIS_CONFIG_DEPENDENCIES [[
find_dependency(Threads)
find_dependency(PkgConfig)
if(NOT TARGET PkgConfig::LMDB)
  pkg_check_modules(LMDB REQUIRED IMPORTED_TARGET lmdb)
endif()
if(NOT TARGET PkgConfig::SQLITE3)
  pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
endif()
if(NOT TARGET PkgConfig::ROCKSDB)
  pkg_check_modules(ROCKSDB REQUIRED IMPORTED_TARGET rocksdb)
endif()
if(NOT TARGET PkgConfig::LIBPQ)
  pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
endif()]])
set(KIVIS_PC_REQUIRES_PRIVATE "lmdb sqlite3 rocksdb libpq")
set(KIVIS_PC_LIBS_PRIVATE "-pthread")

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KIVIS_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/kivis
    CACHE STRING "Where the kivis CMake package is installed, relative to the prefix")

# In-tree the same names as for a consumer: kivis::kivis, kivis::kivis-gen,
# so kivis_generate() works inside this build too.
add_library(kivis::kivis ALIAS kivis)
add_library(kivis::kivis_shared ALIAS kivis_shared)
set(kivis_install_targets kivis kivis_shared)
if(TARGET kivis-gen)
  add_executable(kivis::kivis-gen ALIAS kivis-gen)
  list(APPEND kivis_install_targets kivis-gen)
endif()
include(${CMAKE_CURRENT_LIST_DIR}/KivisGenerate.cmake)

# The kivis tool, next to kivis-gen; a program, not part of the package.
if(TARGET kivis_cli)
  install(TARGETS kivis_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

install(TARGETS ${kivis_install_targets}
  EXPORT kivisTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h")

install(EXPORT kivisTargets
  NAMESPACE kivis::
  DESTINATION ${KIVIS_INSTALL_CMAKEDIR})
configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/kivisConfig.cmake.in
  ${PROJECT_BINARY_DIR}/kivisConfig.cmake
  INSTALL_DESTINATION ${KIVIS_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/kivisConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/kivisConfig.cmake
  ${PROJECT_BINARY_DIR}/kivisConfigVersion.cmake
  ${CMAKE_CURRENT_LIST_DIR}/KivisGenerate.cmake
  DESTINATION ${KIVIS_INSTALL_CMAKEDIR})

# pkg-config.  kivis.pc names the prefix given at install time
# (cmake --install --prefix, make install PREFIX=), so it is written then,
# straight to its destination.
set(KIVIS_PC_PRIVATE "")
if(KIVIS_PC_REQUIRES_PRIVATE)
  string(APPEND KIVIS_PC_PRIVATE "Requires.private: ${KIVIS_PC_REQUIRES_PRIVATE}\n")
endif()
if(KIVIS_PC_LIBS_PRIVATE)
  string(APPEND KIVIS_PC_PRIVATE "Libs.private: ${KIVIS_PC_LIBS_PRIVATE}\n")
endif()
set(KIVIS_PC_PREFIX "@KIVIS_PC_PREFIX@") # kept for the install step
configure_file(${PROJECT_SOURCE_DIR}/kivis.pc.in ${PROJECT_BINARY_DIR}/kivis.pc.in @ONLY)
install(CODE "
  set(KIVIS_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(kivis_pc \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/kivis.pc\")
  message(STATUS \"Installing: \${kivis_pc}\")
  configure_file(\"${PROJECT_BINARY_DIR}/kivis.pc.in\" \"\${kivis_pc}\" @ONLY)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${kivis_pc}\")")
