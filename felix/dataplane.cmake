# The kernel-programming half of weftd (felix/dataplane.h): routed veth
# endpoints, macvlan attachments, tc bandwidth limits, the sweep.
# Included by felix/CMakeLists.txt.
add_library(weft_dataplane STATIC
  ${CMAKE_CURRENT_LIST_DIR}/dp-nl.c
  ${CMAKE_CURRENT_LIST_DIR}/dp-routed.c
  ${CMAKE_CURRENT_LIST_DIR}/dp-macvlan.c
  ${CMAKE_CURRENT_LIST_DIR}/dp-tc.c
  ${CMAKE_CURRENT_LIST_DIR}/dp-sweep.c
  ${CMAKE_CURRENT_LIST_DIR}/dp-vxlan.c
  ${CMAKE_CURRENT_LIST_DIR}/dp-nat.c)
target_link_libraries(weft_dataplane PUBLIC weft_lib PkgConfig::MNL PkgConfig::NFTNL)

# Needs root: unshares its own node namespace and forks pod namespaces,
# never touches the root one; exits 77 (skipped) without the privilege.
weft_unit_test(test-dataplane SOURCES ${CMAKE_CURRENT_LIST_DIR}/test-dataplane.c ${CMAKE_CURRENT_LIST_DIR}/test-ns.c LIBS weft_dataplane)
set_tests_properties(test-dataplane PROPERTIES LABELS "unit;root" SKIP_RETURN_CODE 77 TIMEOUT 180)

# VXLAN device/FDB/neighbours/routes and the natOutgoing nftables table:
# root, each in its own private namespaces (77 = skipped without privilege).
weft_unit_test(test-dp-vxlan SOURCES ${CMAKE_CURRENT_LIST_DIR}/test-dp-vxlan.c ${CMAKE_CURRENT_LIST_DIR}/test-ns.c LIBS weft_dataplane)
set_tests_properties(test-dp-vxlan PROPERTIES LABELS "unit;root" SKIP_RETURN_CODE 77 TIMEOUT 120)
weft_unit_test(test-dp-nat SOURCES ${CMAKE_CURRENT_LIST_DIR}/test-dp-nat.c ${CMAKE_CURRENT_LIST_DIR}/test-ns.c LIBS weft_dataplane)
set_tests_properties(test-dp-nat PROPERTIES LABELS "unit;root" SKIP_RETURN_CODE 77 TIMEOUT 120)
