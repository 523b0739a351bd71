# kivis_generate(<target> <schema.kvs> [OUTPUT_DIR <dir>] [PREFIX <p>]
#                [PREVIOUS <old.kvs>] [SHARED])
#
# Compile a schema with kivis-gen into <dir>/<name>.kivis.h and
# <dir>/<name>.kivis.c, where <name> is the one declared by `schema <name>;`.
# The generated source is added to <target>, <dir> to its include path, and
# kivis::kivis (or kivis::kivis_shared with SHARED) to its link libraries,
# all PUBLIC so that a library wrapping a schema passes them on.  The code is
# regenerated when the schema or kivis-gen changes.
#
# PREFIX puts <p> before every generated name (kivis-gen --prefix): the
# files are then <p><name>.kivis.h and .c, and two schemas with the same
# record names can be used in one program.
#
# PREVIOUS names the schema the stores were written with (kivis-gen
# --previous): the records that changed get typed migrations, whose
# <record>_migrate functions the target must define.
#
# OUTPUT_DIR defaults to ${CMAKE_CURRENT_BINARY_DIR}/kivis_gen/<target>; a
# relative one is taken from ${CMAKE_CURRENT_BINARY_DIR}.
include_guard(GLOBAL)

function(kivis_generate target schema)
  cmake_parse_arguments(PARSE_ARGV 2 arg "SHARED" "OUTPUT_DIR;PREFIX;PREVIOUS" "")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "kivis_generate: unexpected arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET ${target})
    message(FATAL_ERROR "kivis_generate: no target named ${target}")
  endif()
  if(NOT TARGET kivis::kivis-gen)
    message(FATAL_ERROR "kivis_generate: kivis::kivis-gen is not available")
  endif()

  get_filename_component(schema "${schema}" ABSOLUTE)
  if(NOT EXISTS "${schema}")
    message(FATAL_ERROR "kivis_generate: ${schema} does not exist")
  endif()
  if(NOT arg_OUTPUT_DIR)
    set(arg_OUTPUT_DIR "${CMAKE_CURRENT_BINARY_DIR}/kivis_gen/${target}")
  endif()
  get_filename_component(outdir "${arg_OUTPUT_DIR}" ABSOLUTE
                         BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")

  # The output files are named after the schema declaration, so read it (and
  # re-read it whenever the schema changes).
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${schema}")
  set(decl_re "^[ \t]*schema[ \t]+([A-Za-z_][A-Za-z0-9_]*)")
  file(STRINGS "${schema}" decl REGEX "${decl_re}[ \t]*;" LIMIT_COUNT 1)
  if(NOT decl MATCHES "${decl_re}")
    message(FATAL_ERROR "kivis_generate: ${schema} has no `schema <name>;` line")
  endif()
  set(name "${arg_PREFIX}${CMAKE_MATCH_1}")
  set(prefix_args)
  if(arg_PREFIX)
    set(prefix_args --prefix "${arg_PREFIX}")
  endif()

  set(previous_args)
  if(arg_PREVIOUS)
    get_filename_component(arg_PREVIOUS "${arg_PREVIOUS}" ABSOLUTE)
    set(previous_args --previous "${arg_PREVIOUS}")
  endif()

  set(header "${outdir}/${name}.kivis.h")
  set(source "${outdir}/${name}.kivis.c")
  add_custom_command(
    OUTPUT "${header}" "${source}"
    COMMAND "${CMAKE_COMMAND}" -E make_directory "${outdir}"
    COMMAND kivis::kivis-gen -o "${outdir}" ${prefix_args} ${previous_args} "${schema}"
    DEPENDS "${schema}" ${arg_PREVIOUS} kivis::kivis-gen
    COMMENT "kivis-gen: generating ${name}.kivis.h and ${name}.kivis.c"
    VERBATIM)
  target_sources(${target} PRIVATE "${source}" "${header}")
  target_include_directories(${target} PUBLIC "$<BUILD_INTERFACE:${outdir}>")
  if(arg_SHARED)
    target_link_libraries(${target} PUBLIC kivis::kivis_shared)
  else()
    target_link_libraries(${target} PUBLIC kivis::kivis)
  endif()
endfunction()
