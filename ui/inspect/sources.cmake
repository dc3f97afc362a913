# Inspection views (routing heatmap, expert load, token inspector, KV cache), part of dsv2_ui.
# Included from ui/CMakeLists.txt. The Qt-free headers (routing_table.h, routing_export.h,
# storage_routing.h) are also used by `dsv2 inspect routing`; engine_routing.h and
# storage_routing.h are header-only so that dsv2_ui links neither the engine nor storage.
target_sources(dsv2_ui PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/routing_table.h
  ${CMAKE_CURRENT_LIST_DIR}/routing_export.h
  ${CMAKE_CURRENT_LIST_DIR}/storage_routing.h
  ${CMAKE_CURRENT_LIST_DIR}/engine_routing.h
  ${CMAKE_CURRENT_LIST_DIR}/frame_throttle.h
  ${CMAKE_CURRENT_LIST_DIR}/load_stats.cpp ${CMAKE_CURRENT_LIST_DIR}/load_stats.h
  ${CMAKE_CURRENT_LIST_DIR}/inspect_colors.cpp ${CMAKE_CURRENT_LIST_DIR}/inspect_colors.h
  ${CMAKE_CURRENT_LIST_DIR}/kv_figures.cpp ${CMAKE_CURRENT_LIST_DIR}/kv_figures.h
  ${CMAKE_CURRENT_LIST_DIR}/token_text.cpp ${CMAKE_CURRENT_LIST_DIR}/token_text.h
  ${CMAKE_CURRENT_LIST_DIR}/plot_export.cpp ${CMAKE_CURRENT_LIST_DIR}/plot_export.h
  ${CMAKE_CURRENT_LIST_DIR}/inspection_model.cpp ${CMAKE_CURRENT_LIST_DIR}/inspection_model.h
  ${CMAKE_CURRENT_LIST_DIR}/routing_heatmap.cpp ${CMAKE_CURRENT_LIST_DIR}/routing_heatmap.h
  ${CMAKE_CURRENT_LIST_DIR}/expert_load_matrix.cpp ${CMAKE_CURRENT_LIST_DIR}/expert_load_matrix.h
  ${CMAKE_CURRENT_LIST_DIR}/load_histogram.cpp ${CMAKE_CURRENT_LIST_DIR}/load_histogram.h
  ${CMAKE_CURRENT_LIST_DIR}/token_text_view.cpp ${CMAKE_CURRENT_LIST_DIR}/token_text_view.h
  ${CMAKE_CURRENT_LIST_DIR}/token_inspector.cpp ${CMAKE_CURRENT_LIST_DIR}/token_inspector.h
  ${CMAKE_CURRENT_LIST_DIR}/kv_cache_view.cpp ${CMAKE_CURRENT_LIST_DIR}/kv_cache_view.h
  ${CMAKE_CURRENT_LIST_DIR}/inspector_panel.cpp ${CMAKE_CURRENT_LIST_DIR}/inspector_panel.h
)
