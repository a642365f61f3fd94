if(TARGET weftctl AND TARGET test-ipam-cli-setup)
add_test(NAME weftctl-ipam COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/weftctl-ipam.sh $<TARGET_FILE:weftctl>
         $<TARGET_FILE:test-ipam-cli-setup>)
set_tests_properties(weftctl-ipam PROPERTIES LABELS integration TIMEOUT 120)
endif()
