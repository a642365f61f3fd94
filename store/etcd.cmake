# The etcd backend: its protocol layer, unit tests, a live test driver for
# tests/etcd-*.sh and a fuzz target for the response decoders.
find_package(Threads REQUIRED)
target_sources(weft_store PRIVATE ${CMAKE_CURRENT_LIST_DIR}/etcd-proto.c)
target_link_libraries(weft_store PUBLIC Threads::Threads)

weft_unit_test(test-etcd-proto SOURCES ${CMAKE_CURRENT_LIST_DIR}/test-etcd-proto.c LIBS weft_store)

# Needs a running etcd: used by the integration tests, not a unit test.
add_executable(test-etcd-live ${CMAKE_CURRENT_LIST_DIR}/test-etcd-live.c)
target_link_libraries(test-etcd-live PRIVATE weft_store)

weft_fuzz_target(fuzz-etcd-response
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz-etcd-response.c
  LIBS weft_store
  CORPUS ${CMAKE_CURRENT_LIST_DIR}/fuzz-corpus/etcd)
