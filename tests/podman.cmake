# podman as a real CNI client (tests/cni-podman.sh).
if(TARGET weftd AND TARGET weft AND TARGET weft-ipam AND TARGET weftctl)
  add_test(NAME cni-podman COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cni-podman.sh
           $<TARGET_FILE:weftd> $<TARGET_FILE:weft> $<TARGET_FILE:weft-ipam> $<TARGET_FILE:weftctl>)
  set_tests_properties(cni-podman PROPERTIES LABELS "integration;root" TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
