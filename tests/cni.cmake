# CNI plugins + weftd end to end, as root in their own namespaces.
if(TARGET weftd AND TARGET weft AND TARGET weft-ipam AND TARGET weftctl)
  foreach(t routed bad-input weftd-down stress macvlan async-del)
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/cni-${t}.sh)
      add_test(NAME cni-${t} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cni-${t}.sh
               $<TARGET_FILE:weftd> $<TARGET_FILE:weft> $<TARGET_FILE:weft-ipam> $<TARGET_FILE:weftctl>)
      set_tests_properties(cni-${t} PROPERTIES LABELS "integration;root" TIMEOUT 300 SKIP_RETURN_CODE 77)
    endif()
  endforeach()
endif()
