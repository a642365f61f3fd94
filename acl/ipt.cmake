# The ipset + iptables ACL backend (acl/ipt.c): kernel ipsets through
# libipset, rules through iptables-restore / ip6tables-restore.
# Included by acl/CMakeLists.txt.
target_sources(weft_acl PRIVATE ${CMAKE_CURRENT_LIST_DIR}/ipt.c)

# Needs root: runs in private network namespaces (a node with pods made by
# the dataplane library), never in the root one; 77 = skipped.
weft_unit_test(test-acl-ipt SOURCES ${CMAKE_CURRENT_LIST_DIR}/test-acl-ipt.c ${CMAKE_SOURCE_DIR}/felix/test-ns.c
  LIBS weft_acl weft_dataplane)
set_tests_properties(test-acl-ipt PROPERTIES LABELS "unit;root" SKIP_RETURN_CODE 77 TIMEOUT 300)
add_test(NAME test-acl-ipt-legacy COMMAND test-acl-ipt iptables-legacy)
set_tests_properties(test-acl-ipt-legacy PROPERTIES LABELS "unit;root" SKIP_RETURN_CODE 77 TIMEOUT 300)
