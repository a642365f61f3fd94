# BGP with real BIRD in namespaces (bgpconf/ renderer and control socket).
if(TARGET weftctl AND TARGET test-bgp-driver)
  add_test(NAME bgp-mesh COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/bgp-mesh.sh $<TARGET_FILE:weftctl>
           $<TARGET_FILE:test-bgp-driver>)
  set_tests_properties(bgp-mesh PROPERTIES LABELS "integration;root" TIMEOUT 180 SKIP_RETURN_CODE 77)
endif()
