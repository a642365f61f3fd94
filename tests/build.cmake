# A missing dependency stops CMake with a message naming the Debian package.
add_test(NAME cmake-missing-dependency
  COMMAND sh -c "d=$(mktemp -d) && PKG_CONFIG_LIBDIR=/nonexistent '${CMAKE_COMMAND}' -S '${CMAKE_SOURCE_DIR}' -B \"$d\" >\"$d.log\" 2>&1; rc=$?; rm -rf \"$d\"; grep -q 'missing dependency libmnl: apt-get install libmnl-dev' \"$d.log\"; ok=$?; cat \"$d.log\" | tail -3; rm -f \"$d.log\"; [ $rc != 0 ] && [ $ok = 0 ]")
set_tests_properties(cmake-missing-dependency PROPERTIES LABELS unit TIMEOUT 120)
