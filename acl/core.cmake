# acl/core.cmake: the backend-neutral core: compiling Profiles, Policies and
# Endpoints into a program (compile.c) and evaluating packets against it
# (trace.c), with their unit tests and a fuzz target.
target_sources(weft_acl PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/compile.c ${CMAKE_CURRENT_SOURCE_DIR}/trace.c)

weft_unit_test(test-acl-compile SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-acl-compile.c LIBS weft_acl)
weft_unit_test(test-acl-trace SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-acl-trace.c LIBS weft_acl)
weft_unit_test(test-acl-change SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-acl-change.c LIBS weft_acl)

weft_fuzz_target(fuzz-acl-compile SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-acl-compile.c LIBS weft_acl
                 CORPUS ${CMAKE_SOURCE_DIR}/fuzz/acl-compile)
