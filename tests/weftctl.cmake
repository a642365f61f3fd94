if(TARGET weftctl)
add_test(NAME weftctl COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/weftctl.sh $<TARGET_FILE:weftctl>
         ${CMAKE_CURRENT_SOURCE_DIR}/manifests)
set_tests_properties(weftctl PROPERTIES LABELS integration TIMEOUT 300)
# Fake etcd servers (python3), no etcd needed.
add_test(NAME weftctl-etcd COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/weftctl-etcd.sh $<TARGET_FILE:weftctl>)
set_tests_properties(weftctl-etcd PROPERTIES LABELS integration TIMEOUT 120)
add_test(NAME lab COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/lab.sh ${CMAKE_SOURCE_DIR}/deploy/lab ${CMAKE_BINARY_DIR})
set_tests_properties(lab PROPERTIES LABELS "integration;root" TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
