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
  dsv2_gui_test(gui_latency_test gui_latency_test.cpp latency_probe.h)
  dsv2_gui_test(gui_scale_test gui_scale_test.cpp latency_probe.h)
  # Timing suites: alone on the machine even under `ctest -j`, or they would measure their neighbours.
  set_tests_properties(gui_latency_test gui_scale_test PROPERTIES RUN_SERIAL TRUE)
endif()
