# ACLs end to end (issue 5): weftd --acl BACKEND on the 3-node BGP fabric
# (tests/lib/fabric.sh + tests/lib/acl.sh), real TCP/UDP/ICMP traffic
# between pods made by the weft CNI plugin; once per backend. Root only.
if(TARGET weftd AND TARGET weft AND TARGET weftctl AND TARGET test-bgp-driver)
  foreach(b nft ipt)
    add_test(NAME acl-fabric-${b} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/acl-fabric.sh ${b} $<TARGET_FILE:weftd>
             $<TARGET_FILE:weft> $<TARGET_FILE:weftctl> $<TARGET_FILE:test-bgp-driver>)
    set_tests_properties(acl-fabric-${b} PROPERTIES LABELS "integration;root" TIMEOUT 420 SKIP_RETURN_CODE 77
                         RESOURCE_LOCK weft-bgp-fabric)
  endforeach()
endif()

# weftd's ACL half on one node without BGP or pods (felix/weftd-acl.c):
# Endpoint records stand for the pods, the kernel's sets and rules are
# checked; once per backend. Root only.
if(TARGET weftd AND TARGET weftctl)
  foreach(b nft ipt)
    add_test(NAME acl-weftd-${b} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/acl-weftd.sh ${b} $<TARGET_FILE:weftd>
             $<TARGET_FILE:weftctl>)
    set_tests_properties(acl-weftd-${b} PROPERTIES LABELS "integration;root" TIMEOUT 120 SKIP_RETURN_CODE 77)
  endforeach()
endif()
