# The PostgreSQL backend (src/storage/postgres.c, picked up by the source
# glob) needs libpq; link both libraries with it.  Self-contained so that
# the backend can move into a library of its own.
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
foreach(lib kivis kivis_shared)
  target_link_libraries(${lib} PUBLIC PkgConfig::LIBPQ)
endforeach()
