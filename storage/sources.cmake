# dsv2_storage: the chat history in one SQLite file. Links SQLite, nlohmann-json and spdlog only:
# no engine, no Qt (the CLI builds without Qt; the GUI uses the same library).
add_library(dsv2_storage STATIC
  src/conversation_store_open.cpp
  src/export.cpp
  src/export_html.cpp
  src/export_json.cpp
  src/export_text.cpp
  src/file_probe.cpp
  src/import_json.cpp
  src/json_codec.cpp
  src/paths.cpp
  src/process_identity.cpp
  src/schema.cpp
  src/sqlite_db.cpp
  src/store_conversations.cpp
  src/store_internal.cpp
  src/store_maintenance.cpp
  src/store_messages.cpp
  src/store_search.cpp
  src/streaming_writer.cpp
  src/token_codec.cpp
  src/types.cpp
)
target_include_directories(dsv2_storage PUBLIC ${CMAKE_CURRENT_LIST_DIR}/include
                                        PRIVATE ${CMAKE_CURRENT_LIST_DIR}/src)
target_link_libraries(dsv2_storage PUBLIC SQLite::SQLite3 nlohmann_json::nlohmann_json dsv2_spdlog
                                   PRIVATE Threads::Threads)
# The public headers use C++20 (defaulted comparisons).
target_compile_features(dsv2_storage PUBLIC cxx_std_20)
dsv2_set_warnings(dsv2_storage)
# The tests reach the internals (codec, migrations) through this folder.
set(DSV2_STORAGE_PRIVATE_INCLUDE ${CMAKE_CURRENT_LIST_DIR}/src CACHE INTERNAL "storage internals, for its tests")
