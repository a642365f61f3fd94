# The nftables backend (acl/nft.c) and the backend test suite it shares with
# the ipset/iptables backend. Included by acl/CMakeLists.txt.
target_sources(weft_acl PRIVATE ${CMAKE_CURRENT_LIST_DIR}/nft.c)

# test-acl-backend BACKEND: one suite, run once per backend ("nft", "ipt").
# Needs root: it unshares its own node namespace and forks pod namespaces
# (never touching the root one); prints "skipped" and exits 77 without the
# privilege.
add_executable(test-acl-backend ${CMAKE_CURRENT_LIST_DIR}/test-acl-backend.c ${CMAKE_SOURCE_DIR}/felix/test-ns.c)
target_link_libraries(test-acl-backend PRIVATE weft_acl weft_dataplane)
add_test(NAME test-acl-backend-nft COMMAND test-acl-backend nft)
set_tests_properties(test-acl-backend-nft PROPERTIES LABELS "unit;root" SKIP_RETURN_CODE 77 TIMEOUT 300)
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/ipt.c)
  target_compile_definitions(test-acl-backend PRIVATE WEFT_ACL_HAVE_IPT=1)
  add_test(NAME test-acl-backend-ipt COMMAND test-acl-backend ipt)
  set_tests_properties(test-acl-backend-ipt PROPERTIES LABELS "unit;root" SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
