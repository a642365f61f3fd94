# BGP with real BIRD (and FRR) in namespaces: the bgpconf/ renderer and
# control socket alone (bgp-mesh), and whole fabrics of weftd + BIRD nodes
# with pods made by the weft CNI plugin (tests/lib/fabric.sh).
if(TARGET weftctl AND TARGET test-bgp-driver)
  add_test(NAME bgp-mesh COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/bgp-mesh.sh $<TARGET_FILE:weftctl>
           $<TARGET_FILE:test-bgp-driver>)
  set_tests_properties(bgp-mesh PROPERTIES LABELS "integration;root" TIMEOUT 180 SKIP_RETURN_CODE 77)
endif()

if(TARGET weftd AND TARGET weft AND TARGET weftctl AND TARGET test-bgp-driver)
  set(weft_fabric_args $<TARGET_FILE:weftd> $<TARGET_FILE:weft> $<TARGET_FILE:weftctl>
      $<TARGET_FILE:test-bgp-driver>)
  # Each runs in 5-35 s; the timeout leaves room for a loaded machine.
  # bgp-gr-wait: a restart with -R while a peer is down for good; the
  # recovery must give up on it (graceful restart wait) and update the
  # kernel.
  foreach(t fabric rr frr restart gr-wait borrow)
    add_test(NAME bgp-${t} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/bgp-${t}.sh ${weft_fabric_args})
    set_tests_properties(bgp-${t} PROPERTIES LABELS "integration;root" TIMEOUT 150 SKIP_RETURN_CODE 77)
  endforeach()
  # weftd and its BIRD killed together (a container restart): the new BIRD
  # must start with -R too.
  add_test(NAME bgp-restart-crash COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/bgp-restart.sh ${weft_fabric_args} crash)
  set_tests_properties(bgp-restart-crash PROPERTIES LABELS "integration;root" TIMEOUT 150 SKIP_RETURN_CODE 77)
  add_test(NAME bgp-restart-stop COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/bgp-restart.sh ${weft_fabric_args} stop)
  set_tests_properties(bgp-restart-stop PROPERTIES LABELS "integration;root" TIMEOUT 150 SKIP_RETURN_CODE 77)
  # A config BIRD refuses or weftd cannot make, and records the model
  # refuses written by other means: node1 unhealthy with the reason, BIRD
  # on its last good config, no bird -p storm, healthy again once mended.
  add_test(NAME bgp-config-error COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/bgp-config-error.sh ${weft_fabric_args})
  set_tests_properties(bgp-config-error PROPERTIES LABELS "integration;root" TIMEOUT 150 SKIP_RETURN_CODE 77)
  # Several of these at once would compete for the two cores (iperf3) and
  # each makes its own namespaces: they are independent, but keep them
  # from skewing each other's timings.
  set_tests_properties(bgp-fabric bgp-rr bgp-frr bgp-restart bgp-gr-wait bgp-borrow bgp-restart-crash bgp-restart-stop bgp-config-error PROPERTIES RESOURCE_LOCK weft-bgp-fabric)
endif()
