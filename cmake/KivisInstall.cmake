# Install rules and the CMake package, included from the top-level
# CMakeLists.txt.  Layout under the prefix:
#   lib/libkivis.a, lib/libkivis.so{,.0,.0.1.0}          the core, no dependency
#   lib/libkivis-<b>.a, lib/libkivis-<b>.so{,.0,.0.1.0}  each backend built
#                                                       (lmdb, sqlite, rocksdb)
#   include/kivis.h, include/kivis/*.h                  (a backend's header only
#                                                       with its library)
#   bin/kivis-gen, bin/kivis
#   lib/pkgconfig/kivis.pc, lib/pkgconfig/kivis-<b>.pc
#   lib/cmake/kivis/{kivisConfig,kivisConfigVersion,kivisTargets*,
#                    kivis-<b>Targets*,KivisGenerate}.cmake
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

# The CMake package's components: one per backend built, with the
# pkg-config module kivisConfig.cmake finds again for it.
set(KIVIS_CONFIG_BACKENDS "")
foreach(name ${KIVIS_BACKENDS})
  string(APPEND KIVIS_CONFIG_BACKENDS
         "set(_kivis_module_${name} ${KIVIS_BACKEND_${name}_MODULE})\n")
endforeach()

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
set(kivis_unbuilt_headers "")
foreach(src ${KIVIS_BACKEND_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  if(NOT name IN_LIST KIVIS_BACKENDS)
    list(APPEND kivis_unbuilt_headers PATTERN ${name}.h EXCLUDE)
  endif()
endforeach()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h" ${kivis_unbuilt_headers})

# Each backend: its libraries in an export set of its own, loaded by
# find_package(kivis COMPONENTS <b>).
foreach(name ${KIVIS_BACKENDS})
  install(TARGETS kivis_${name} kivis_${name}_shared
    EXPORT kivis-${name}Targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT kivis-${name}Targets
    NAMESPACE kivis::
    DESTINATION ${KIVIS_INSTALL_CMAKEDIR})
endforeach()

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

# Man pages: kivis(1) and kivis-gen(1).
install(FILES ${PROJECT_SOURCE_DIR}/man/kivis.1 ${PROJECT_SOURCE_DIR}/man/kivis-gen.1
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# pkg-config: kivis.pc, and kivis-<b>.pc for each backend built.  They name
# the prefix given at install time (cmake --install --prefix, make install
# PREFIX=), so they are written then, straight to their destination.
set(KIVIS_PC_PREFIX "@KIVIS_PC_PREFIX@") # kept for the install step
set(kivis_pc_files kivis)
configure_file(${PROJECT_SOURCE_DIR}/kivis.pc.in ${PROJECT_BINARY_DIR}/kivis.pc.in @ONLY)
foreach(name ${KIVIS_BACKENDS})
  set(KIVIS_PC_BACKEND ${name})
  set(KIVIS_PC_TITLE "${KIVIS_BACKEND_${name}_TITLE}")
  set(KIVIS_PC_REQUIRES_PRIVATE "${KIVIS_BACKEND_${name}_REQUIRES_PRIVATE}")
  set(KIVIS_PC_LIBS_PRIVATE "${KIVIS_BACKEND_${name}_LIBS_PRIVATE}")
  configure_file(${PROJECT_SOURCE_DIR}/kivis-backend.pc.in
                 ${PROJECT_BINARY_DIR}/kivis-${name}.pc.in @ONLY)
  list(APPEND kivis_pc_files kivis-${name})
endforeach()
install(CODE "
  set(KIVIS_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  foreach(pc ${kivis_pc_files})
    set(pc_file \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/\${pc}.pc\")
    message(STATUS \"Installing: \${pc_file}\")
    configure_file(\"${PROJECT_BINARY_DIR}/\${pc}.pc.in\" \"\${pc_file}\" @ONLY)
    list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${pc_file}\")
  endforeach()")
