# The CNI plugin binaries weft and weft-ipam: thin clients of weftd. They
# link the dataplane library (felix/) for DEL's local cleanup when weftd is
# down.
add_library(weft_cni_plugin STATIC plugin-common.c)
target_link_libraries(weft_cni_plugin PUBLIC weft_cni weft_dataplane weft_lib)

add_executable(weft plugin.c)
target_link_libraries(weft PRIVATE weft_cni_plugin)
add_executable(weft-ipam plugin-ipam.c)
target_link_libraries(weft-ipam PRIVATE weft_cni_plugin)
