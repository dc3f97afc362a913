# engine/model: tensor conversions, config.json, safetensors, weight binding, model folders.
dsv2_add_doctest(NAME engine_model_test SOURCES
  model/tensor_test.cpp
  model/model_config_test.cpp
  model/safetensors_header_test.cpp
  model/model_stats_test.cpp
  model/model_folder_test.cpp
  model/random_weights_test.cpp
)

# dsv2 inspect-model on the fixture and on a folder that does not exist.
if(TARGET dsv2)
  add_test(NAME dsv2_inspect_model_tiny_lite COMMAND dsv2 inspect-model ${DSV2_TEST_DATA_DIR}/tiny-lite --json)
  set_tests_properties(dsv2_inspect_model_tiny_lite PROPERTIES
    PASS_REGULAR_EXPRESSION "\"mla\": 240[^$]*\"ok\": true[^$]*\"active_per_token\": 158752")
  add_test(NAME dsv2_inspect_model_missing COMMAND dsv2 inspect-model ${CMAKE_CURRENT_BINARY_DIR}/no-such-model)
  set_tests_properties(dsv2_inspect_model_missing PROPERTIES WILL_FAIL TRUE)
endif()
