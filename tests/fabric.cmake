# weftd's fabric end to end (weftd-fabric.c): VXLAN CrossSubnet across a
# router namespace and natOutgoing to an outside host, with weftd + BIRD
# per node and pods through the weft CNI plugin. Root only.
if(TARGET weftd AND TARGET weft AND TARGET weftctl)
  add_test(NAME fabric-vxlan-crosssubnet COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/fabric-vxlan-crosssubnet.sh
           $<TARGET_FILE:weftd> $<TARGET_FILE:weft> $<TARGET_FILE:weftctl>)
  set_tests_properties(fabric-vxlan-crosssubnet PROPERTIES LABELS "integration;root" TIMEOUT 240
                       SKIP_RETURN_CODE 77)
endif()
