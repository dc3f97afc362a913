# GUI suites: the real window over the real adapter (engine + storage threads), offscreen, with
# tiny-lite on the CPU backend. Included from tests/app/CMakeLists.txt.
if(DSV2_UI AND TARGET dsv2_gui_adapter)
  function(dsv2_gui_test name)
    dsv2_add_qttest(NAME ${name} SOURCES ${ARGN} gui_harness.h LIBS dsv2_gui_adapter dsv2_ui dsv2_storage TIMEOUT 300)
    target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    set_tests_properties(${name} PROPERTIES LABELS gui)
  endfunction()

  dsv2_gui_test(gui_chat_test gui_chat_test.cpp)
  dsv2_gui_test(gui_history_test gui_history_test.cpp)
  dsv2_gui_test(gui_model_test gui_model_test.cpp)
  dsv2_gui_test(gui_inspector_test gui_inspector_test.cpp)
  dsv2_gui_test(gui_gpu_test gui_gpu_test.cpp)
  dsv2_gui_test(gui_latency_test gui_latency_test.cpp latency_probe.h)
  dsv2_gui_test(gui_scale_test gui_scale_test.cpp latency_probe.h)
  # The remote backend against a real `dsv2 serve` (tests/server's ServerProcess starts it). Without
  # cpp-httplib there is neither: the suite then skips itself, and CTest reports it as skipped.
  dsv2_gui_test(gui_remote_test gui_remote_test.cpp served_model.cpp served_model.h
                ${PROJECT_SOURCE_DIR}/tests/server/server_process.cpp)
  target_include_directories(gui_remote_test PRIVATE ${PROJECT_SOURCE_DIR}/tests/server)
  target_compile_definitions(gui_remote_test PRIVATE DSV2_EXE="$<TARGET_FILE:dsv2>"
                                                     DSV2_SERVER_TEST_LOG_DIR="${CMAKE_CURRENT_BINARY_DIR}")
  add_dependencies(gui_remote_test dsv2)
  if(NOT TARGET dsv2_remote)
    set_tests_properties(gui_remote_test PROPERTIES SKIP_REGULAR_EXPRESSION "SKIP   : ")
  endif()
  # Timing suites: alone on the machine even under `ctest -j`, or they would measure their neighbours.
  set_tests_properties(gui_latency_test gui_scale_test PROPERTIES RUN_SERIAL TRUE)

  # Not a test: the main window with the inspector docked, for docs/images (see the file's header).
  add_executable(window_screenshot EXCLUDE_FROM_ALL window_screenshot.cpp)
  set_target_properties(window_screenshot PROPERTIES AUTOMOC ON)
  target_link_libraries(window_screenshot PRIVATE dsv2_gui_adapter dsv2_ui)
  dsv2_set_warnings(window_screenshot)
endif()
