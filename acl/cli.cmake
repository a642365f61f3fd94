# The classic calicoctl (v1) rule syntax <-> rule JSON, for weftctl.
# A library of its own: it needs only the model, so weftctl's profile
# commands and the fuzz target do not pull in the kernel backends.
add_library(weft_acl_text STATIC ${CMAKE_CURRENT_SOURCE_DIR}/rule-text.c)
target_link_libraries(weft_acl_text PUBLIC weft_model weft_lib)

weft_unit_test(test-rule-text SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-rule-text.c LIBS weft_acl_text)

weft_fuzz_target(fuzz-acl-rule SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-acl-rule.c LIBS weft_acl_text
                 CORPUS ${CMAKE_SOURCE_DIR}/fuzz/acl-rule)
