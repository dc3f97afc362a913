# Inspection views (ui/inspect): Qt Test suites, offscreen. Included from tests/ui/CMakeLists.txt.
# Each runs in seconds; the live and storage suites run tiny-lite on the CPU backend.
set(_inspect_dir ${CMAKE_CURRENT_LIST_DIR})

function(dsv2_inspect_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  dsv2_add_qttest(NAME ${name} SOURCES ${T_SOURCES} ${_inspect_dir}/inspect_fixtures.h LIBS dsv2_ui ${T_LIBS} TIMEOUT 120)
  target_include_directories(${name} PRIVATE ${_inspect_dir})
  set_tests_properties(${name} PROPERTIES LABELS inspect)
endfunction()

dsv2_inspect_test(ui_inspect_maths_test SOURCES ${_inspect_dir}/inspect_maths_test.cpp)
dsv2_inspect_test(ui_inspect_widgets_test SOURCES ${_inspect_dir}/inspect_widgets_test.cpp)
dsv2_inspect_test(ui_inspect_export_test SOURCES ${_inspect_dir}/inspect_export_test.cpp LIBS Qt6::Svg)
dsv2_inspect_test(ui_inspect_live_test SOURCES ${_inspect_dir}/inspect_live_test.cpp LIBS dsv2_engine)
if(TARGET dsv2_storage)
  dsv2_inspect_test(ui_inspect_storage_test SOURCES ${_inspect_dir}/inspect_storage_test.cpp LIBS dsv2_engine dsv2_storage)
  target_include_directories(ui_inspect_storage_test PRIVATE ${DSV2_STORAGE_PRIVATE_INCLUDE})
endif()
# The CLI end to end (needs the dsv2 binary, which has no Qt; the suite builds its database with
# the storage library).
if(TARGET dsv2 AND TARGET dsv2_storage)
  dsv2_inspect_test(ui_inspect_cli_test SOURCES ${_inspect_dir}/inspect_cli_test.cpp LIBS dsv2_storage)
  target_compile_definitions(ui_inspect_cli_test PRIVATE DSV2_CLI_PATH="$<TARGET_FILE:dsv2>")
  add_dependencies(ui_inspect_cli_test dsv2)
endif()

# Not a test: renders the docs/images/inspect-*.png screenshots (light and dark).
#   ninja inspect_screenshots && QT_QPA_PLATFORM=offscreen tests/ui/inspect_screenshots ../docs/images
add_executable(inspect_screenshots EXCLUDE_FROM_ALL ${_inspect_dir}/inspect_screenshots.cpp ${_inspect_dir}/inspect_fixtures.h)
target_include_directories(inspect_screenshots PRIVATE ${_inspect_dir})
target_link_libraries(inspect_screenshots PRIVATE dsv2_ui dsv2_engine)
target_compile_definitions(inspect_screenshots PRIVATE DSV2_TEST_DATA_DIR="${DSV2_TEST_DATA_DIR}")
dsv2_set_warnings(inspect_screenshots)
