# The embedded backend (file:DIR): extra sources and its tests.
target_sources(weft_store PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/record.c)

# The backend-independent contract test, run here against a fresh file store.
# (Run it against any store: test-store-contract URL, or WEFT_TEST_STORE=URL.)
add_executable(test-store-contract ${CMAKE_CURRENT_SOURCE_DIR}/test-store-contract.c)
target_link_libraries(test-store-contract PRIVATE weft_store)
add_test(NAME store-contract-file
  COMMAND sh -c "d=$(mktemp -d) && trap 'rm -rf \"$d\"' EXIT && '$<TARGET_FILE:test-store-contract>' \"file:$d/store\"")
set_tests_properties(store-contract-file PROPERTIES LABELS unit TIMEOUT 120)

# File-only behaviour: torn tails, damage, compaction, record codec.
weft_unit_test(test-store-file SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test-store-file.c LIBS weft_store)
# It makes fdatasync() fail on demand (a write of unknown outcome).
target_link_options(test-store-file PRIVATE -Wl,--wrap=fdatasync)

# 4 processes, 1000 CAS increments, kill -9 (once, then 20 times).
add_executable(test-cas-crash ${CMAKE_CURRENT_SOURCE_DIR}/test-cas-crash.c)
target_link_libraries(test-cas-crash PRIVATE weft_store)
add_test(NAME store-cas-crash COMMAND test-cas-crash)
set_tests_properties(store-cas-crash PROPERTIES LABELS unit TIMEOUT 300)

weft_fuzz_target(fuzz-store-record SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-record.c LIBS weft_store
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-corpus/record)
