# weftd's health, status and metrics (felix/weftd-status.c): /healthz and
# /metrics over HTTP, the Node's status in the store, BIRD killed and
# restarted, `weftctl get nodes`. Real BIRD in namespaces.
if(TARGET weftd AND TARGET weftctl AND TARGET test-bgp-driver)
  add_test(NAME weftd-status COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/weftd-status.sh $<TARGET_FILE:weftd>
           $<TARGET_FILE:weftctl> $<TARGET_FILE:test-bgp-driver>)
  set_tests_properties(weftd-status PROPERTIES LABELS "integration;root" TIMEOUT 240 SKIP_RETURN_CODE 77)
endif()

# weftd registering its Node: --ip-autodetect and --rr-cluster-id.
if(TARGET weftd AND TARGET weftctl)
  add_test(NAME weftd-register COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/weftd-register.sh $<TARGET_FILE:weftd>
           $<TARGET_FILE:weftctl>)
  set_tests_properties(weftd-register PROPERTIES LABELS "integration;root" TIMEOUT 120 SKIP_RETURN_CODE 77)
endif()
