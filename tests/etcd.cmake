# Integration tests of the etcd store backend: each script starts (and stops,
# by pid) its own etcd on free loopback ports. No root needed.
find_program(WEFT_ETCD_BIN etcd)
if(TARGET test-etcd-live AND WEFT_ETCD_BIN)
  foreach(t basic prefix tls failover unreachable)
    add_test(NAME etcd-${t} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/etcd-${t}.sh $<TARGET_FILE:test-etcd-live>)
    set_tests_properties(etcd-${t} PROPERTIES LABELS "integration;etcd" TIMEOUT 180)
  endforeach()
  # The contract test program may not exist yet: the script skips (77) then.
  if(TARGET test-store-contract)
    set(weft_contract_bin $<TARGET_FILE:test-store-contract>)
  else()
    set(weft_contract_bin ${CMAKE_BINARY_DIR}/store/test-store-contract)
  endif()
  add_test(NAME etcd-contract COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/etcd-contract.sh ${weft_contract_bin})
  set_tests_properties(etcd-contract PROPERTIES LABELS "integration;etcd" TIMEOUT 300 SKIP_RETURN_CODE 77)
elseif(NOT WEFT_ETCD_BIN)
  message(STATUS "etcd not found: the etcd integration tests are not registered (apt-get install etcd-server)")
endif()
