if(TARGET weftctl AND TARGET test-ipam-cli-setup)
add_test(NAME weftctl-node-delete COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/weftctl-node-delete.sh $<TARGET_FILE:weftctl>
         $<TARGET_FILE:test-ipam-cli-setup>)
set_tests_properties(weftctl-node-delete PROPERTIES LABELS integration TIMEOUT 120)
endif()
