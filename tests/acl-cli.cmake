if(TARGET weftctl)
add_test(NAME weftctl-profile COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/weftctl-profile.sh $<TARGET_FILE:weftctl>)
set_tests_properties(weftctl-profile PROPERTIES LABELS integration TIMEOUT 120)
endif()
