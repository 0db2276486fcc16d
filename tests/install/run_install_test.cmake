# ctest "install.find_package": does an installed libiommig work for a user?
#
#   1. `cmake --install` this build tree into a scratch prefix;
#   2. every file a user needs is there; the shared library has a versioned
#      SONAME and exports only iom_* names;
#   3. no installed public header includes liburcu, uthash or jemalloc
#      headers (they are private dependencies);
#   4. a consumer project (consumer/) configures with find_package(iommig),
#      builds against iommig::iommig and iommig::iommig_static, and runs;
#   5. consumer/main.c compiled with `cc $(pkg-config --cflags --libs
#      iommig)` builds and runs.
# The experiment of docs/experiments.md, examples/dma_fragmentation.c, is
# built and run in 4 (shared and static) and 5 too: it must exit 0 and
# print its table.
#
# In sanitizer builds the library needs the sanitizer runtime, so every
# consumer is built with the same -fsanitize flags.
#
# Run by ctest as: cmake -DSRC=<source dir> -DBIN=<build dir> -DLIBDIR=...
#   -DINCLUDEDIR=... -DVERSION=... -DSONAME=... -DC_COMPILER=...
#   -DGENERATOR=... [-DMAKE_PROGRAM=...] [-DCONFIG=...] [-DSANITIZE=...]
#   -P run_install_test.cmake
cmake_minimum_required(VERSION 3.22)

foreach(var SRC BIN LIBDIR INCLUDEDIR VERSION SONAME C_COMPILER GENERATOR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_install_test.cmake: -D${var}=... is required")
  endif()
endforeach()

set(WORK ${BIN}/install-test)
set(PREFIX ${WORK}/prefix)
if(IS_ABSOLUTE "${LIBDIR}")
  message(FATAL_ERROR "CMAKE_INSTALL_LIBDIR is absolute (${LIBDIR}): "
                      "cannot install to a scratch prefix")
endif()
set(LIB ${PREFIX}/${LIBDIR})
set(INC ${PREFIX}/${INCLUDEDIR})
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

unset(ENV{DESTDIR})
set(san_flags "")
if(SANITIZE)
  set(san_flags -fsanitize=${SANITIZE} -fno-omit-frame-pointer)
endif()
set(config_args "")
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()

function(fail)
  string(JOIN "" msg ${ARGN})
  message(FATAL_ERROR "install test FAILED: ${msg}")
endfunction()

# run(<what> <command...>): run a command, fail with its output if it fails.
# The output is left in RUN_OUTPUT.
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    string(JOIN " " cmd ${ARGN})
    fail("${what} (exit ${rc})\n$ ${cmd}\n${out}")
  endif()
  set(RUN_OUTPUT "${out}" PARENT_SCOPE)
endfunction()

# ---- 1. install ---------------------------------------------------------
run("cmake --install" ${CMAKE_COMMAND} --install ${BIN} --prefix ${PREFIX} ${config_args})
message(STATUS "installed to ${PREFIX}")

# ---- 2. the files, SONAME and exported names -----------------------------
foreach(f ${INC}/iommig/iommig.h
          ${LIB}/libiommig.so
          ${LIB}/${SONAME}
          ${LIB}/libiommig.a
          ${LIB}/cmake/iommig/iommigConfig.cmake
          ${LIB}/cmake/iommig/iommigConfigVersion.cmake
          ${LIB}/cmake/iommig/iommigTargets.cmake
          ${LIB}/pkgconfig/iommig.pc)
  if(NOT EXISTS ${f})
    fail("${f} was not installed")
  endif()
endforeach()

if(NOT SONAME MATCHES "^libiommig\\.so\\.[0-9]+")
  fail("the shared library's SONAME '${SONAME}' carries no version")
endif()
find_program(OBJDUMP NAMES objdump)
find_program(READELF NAMES readelf)
if(OBJDUMP)
  run("objdump -p" ${OBJDUMP} -p ${LIB}/libiommig.so)
  set(dyn "${RUN_OUTPUT}")
  string(REGEX MATCH "SONAME +([^\n ]+)" _ "${dyn}")
  set(installed_soname "${CMAKE_MATCH_1}")
elseif(READELF)
  run("readelf -d" ${READELF} -d ${LIB}/libiommig.so)
  set(dyn "${RUN_OUTPUT}")
  string(REGEX MATCH "\\(SONAME\\)[^[]*\\[([^]]+)\\]" _ "${dyn}")
  set(installed_soname "${CMAKE_MATCH_1}")
else()
  fail("neither objdump nor readelf found (Debian package binutils)")
endif()
if(NOT installed_soname STREQUAL SONAME)
  fail("installed libiommig.so has SONAME '${installed_soname}', expected '${SONAME}'")
endif()
message(STATUS "SONAME ${installed_soname}")

# Everything the library defines and exports must be public API (iom_*).
# Linker and sanitizer bookkeeping names are allowed.
if(OBJDUMP)
  run("objdump -T" ${OBJDUMP} -T ${LIB}/libiommig.so)
  string(REPLACE "\n" ";" lines "${RUN_OUTPUT}")
  set(leaked "")
  set(nr_exported 0)
  foreach(line IN LISTS lines)
    # "<addr> g    DF .text  <size>  Base  <name>"; *UND* lines are imports.
    if(line MATCHES "^[0-9a-f]+[ \t]" AND NOT line MATCHES "\\*UND\\*"
       AND line MATCHES "([^ \t]+)$")
      set(sym "${CMAKE_MATCH_1}")
      if(sym MATCHES "^iom_")
        math(EXPR nr_exported "${nr_exported} + 1")
      elseif(NOT sym MATCHES "^(_init|_fini|_edata|_end|__bss_start|__odr_asan.*|__asan.*|__ubsan.*|__tsan.*)$")
        list(APPEND leaked ${sym})
      endif()
    endif()
  endforeach()
  if(leaked)
    string(JOIN " " leaked ${leaked})
    fail("libiommig.so exports internal names (mark only the API IOM_API): ${leaked}")
  endif()
  if(nr_exported EQUAL 0)
    fail("libiommig.so exports no iom_* function")
  endif()
  message(STATUS "libiommig.so exports ${nr_exported} iom_* names and nothing else")
endif()

# ---- 3. private dependencies stay private ---------------------------------
file(GLOB_RECURSE headers ${INC}/iommig/*)
foreach(h ${headers})
  file(STRINGS ${h} includes REGEX "^[ \t]*#[ \t]*include")
  foreach(inc IN LISTS includes)
    if(inc MATCHES "urcu|uthash|utlist|jemalloc|cmocka")
      fail("installed public header ${h} includes a private dependency: ${inc}")
    endif()
    if(inc MATCHES "\"" OR inc MATCHES "\\.\\./")
      # Quoted or relative includes would reach outside <iommig/...>.
      fail("installed public header ${h} has a non-<...> include: ${inc}")
    endif()
  endforeach()
endforeach()
message(STATUS "public headers include no private dependency")

# ---- 4. find_package(iommig) ----------------------------------------------
string(JOIN " " c_flags ${san_flags})
set(gen_args -G "${GENERATOR}")
if(MAKE_PROGRAM)
  list(APPEND gen_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
set(build_type "${CONFIG}")
if(NOT build_type)
  set(build_type Release)
endif()
run("configuring the find_package consumer"
    ${CMAKE_COMMAND} -S ${SRC}/tests/install/consumer -B ${WORK}/consumer
    ${gen_args}
    -DCMAKE_C_COMPILER=${C_COMPILER}
    "-DCMAKE_C_FLAGS=${c_flags}"
    -DCMAKE_BUILD_TYPE=${build_type}
    -DCMAKE_PREFIX_PATH=${PREFIX}
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    -DIOMMIG_EXPECTED_VERSION=${VERSION}
    -DIOMMIG_EXAMPLE=${SRC}/examples/dma_fragmentation.c)
file(STRINGS ${WORK}/consumer/CMakeCache.txt found_dir REGEX "^iommig_DIR:")
string(REGEX REPLACE "^iommig_DIR:[A-Z]+=" "" found_dir "${found_dir}")
if(NOT found_dir STREQUAL "${LIB}/cmake/iommig")
  fail("find_package(iommig) found '${found_dir}', not the scratch install ${LIB}/cmake/iommig")
endif()
run("building the find_package consumer"
    ${CMAKE_COMMAND} --build ${WORK}/consumer ${config_args})

set(consumer_dir ${WORK}/consumer)
if(CONFIG AND EXISTS ${WORK}/consumer/${CONFIG}/consumer)
  set(consumer_dir ${WORK}/consumer/${CONFIG})	# multi-config generator
endif()
foreach(exe consumer consumer_static)
  run("running ${exe}" ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${LIB}
      ${consumer_dir}/${exe} ${VERSION})
  string(FIND "${RUN_OUTPUT}" "OK ${VERSION}\n" at)
  if(at EQUAL -1)
    fail("${exe} did not print 'OK ${VERSION}':\n${RUN_OUTPUT}")
  endif()
  message(STATUS "${exe} (find_package): ${RUN_OUTPUT}")
endforeach()

# check_example(<name> <path>): run the example experiment; it must exit 0
# (run() checks) and print its last table row.
function(check_example name exe)
  run("running ${name}" ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${LIB}
      ${exe} --mem 16M --seed 1)
  if(NOT RUN_OUTPUT MATCHES "DMA pages moved by compaction +[0-9]+ +[0-9]+\n")
    fail("${name} did not print its table:\n${RUN_OUTPUT}")
  endif()
  message(STATUS "${name}: exit 0, table printed")
endfunction()
foreach(exe dma_fragmentation dma_fragmentation_static)
  check_example("${exe} (find_package)" ${consumer_dir}/${exe})
endforeach()

# ---- 5. pkg-config ----------------------------------------------------------
find_program(PKG_CONFIG NAMES pkg-config pkgconf)
if(NOT PKG_CONFIG)
  fail("pkg-config not found")
endif()
set(ENV{PKG_CONFIG_PATH} ${LIB}/pkgconfig)
run("pkg-config --modversion iommig" ${PKG_CONFIG} --modversion iommig)
string(STRIP "${RUN_OUTPUT}" pc_version)
if(NOT pc_version STREQUAL VERSION)
  fail("pkg-config says iommig is '${pc_version}', expected '${VERSION}'")
endif()
# --cflags and --libs separately: some pkg-config versions print
# diagnostics on stderr, which run() mixes in.
run("pkg-config --cflags iommig" ${PKG_CONFIG} --cflags iommig)
string(STRIP "${RUN_OUTPUT}" pc_cflags)
run("pkg-config --libs iommig" ${PKG_CONFIG} --libs iommig)
string(STRIP "${RUN_OUTPUT}" pc_libs)
separate_arguments(pc_cflags UNIX_COMMAND "${pc_cflags}")
separate_arguments(pc_libs UNIX_COMMAND "${pc_libs}")
# The .pc file must name the prefix installed to, not the configured one.
list(FIND pc_cflags "-I${INC}" at)
if(at EQUAL -1)
  fail("pkg-config --cflags iommig gives '${pc_cflags}', without -I${INC}")
endif()
list(FIND pc_libs "-L${LIB}" at)
if(at EQUAL -1)
  fail("pkg-config --libs iommig gives '${pc_libs}', without -L${LIB}")
endif()
# Strict C11 with warnings as errors: the public headers must be clean for
# any user's flags, not just libiommig's own.
run("compiling main.c with pkg-config's flags"
    ${C_COMPILER} -std=c11 -Wall -Wextra -Werror ${san_flags} ${pc_cflags}
    ${SRC}/tests/install/consumer/main.c ${pc_libs} -o ${WORK}/consumer_pc)
run("running consumer_pc" ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${LIB}
    ${WORK}/consumer_pc ${VERSION})
string(FIND "${RUN_OUTPUT}" "OK ${VERSION}\n" at)
if(at EQUAL -1)
  fail("consumer_pc did not print 'OK ${VERSION}':\n${RUN_OUTPUT}")
endif()
message(STATUS "consumer_pc (pkg-config): ${RUN_OUTPUT}")
run("compiling examples/dma_fragmentation.c with pkg-config's flags"
    ${C_COMPILER} -std=c11 -Wall -Wextra -Werror ${san_flags} ${pc_cflags}
    ${SRC}/examples/dma_fragmentation.c ${pc_libs} -o ${WORK}/dma_fragmentation_pc)
check_example("dma_fragmentation (pkg-config)" ${WORK}/dma_fragmentation_pc)
message(STATUS "install test passed")
