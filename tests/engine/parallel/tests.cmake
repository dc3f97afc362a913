# engine/parallel: expert placement, layouts, bytes per token and the memory plan across devices
# (host logic, no GPU).
dsv2_add_doctest(NAME engine_parallel_test SOURCES
  parallel/expert_placement_test.cpp
  parallel/parallel_plan_test.cpp
  parallel/rank_slice_test.cpp
)

# dsv2 inspect-model --devices on a folder holding only the V2 (236B) config.json: the plan needs no
# weights (the folder's missing weights and tokenizer are reported as problems; the exit code is
# not what these check). 141 GB = 131.32 GiB per GPU.
if(TARGET dsv2)
  set(_dsv2_v2_config_dir ${CMAKE_CURRENT_BINARY_DIR}/v2-config-only)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/../cuda/configs/deepseek-v2.json ${_dsv2_v2_config_dir}/config.json COPYONLY)
  add_test(NAME dsv2_inspect_model_v2_on_4_gpus
           COMMAND dsv2 inspect-model ${_dsv2_v2_config_dir} --devices 4 --device-memory 131.32 --json)
  set_tests_properties(dsv2_inspect_model_v2_on_4_gpus PROPERTIES
    PASS_REGULAR_EXPRESSION "\"link_bytes_worst\": 5437440[^$]*\"link_bytes_worst\": 14745600[^$]*\"max_devices_per_token\": 3[^$]*\"fits\": true")
  add_test(NAME dsv2_inspect_model_v2_on_2_gpus
           COMMAND dsv2 inspect-model ${_dsv2_v2_config_dir} --devices 2 --device-memory 131.32)
  set_tests_properties(dsv2_inspect_model_v2_on_2_gpus PROPERTIES
    PASS_REGULAR_EXPRESSION "REFUSED: the model does not fit on device 0 of 2 [(]GPU, tensor-parallel attention[)][^\n]*207.42 GiB[^\n]*fits from 4 devices")
  add_test(NAME dsv2_inspect_model_tiny_lite_one_gpu
           COMMAND dsv2 inspect-model ${DSV2_TEST_DATA_DIR}/tiny-lite --devices 1)
  set_tests_properties(dsv2_inspect_model_tiny_lite_one_gpu PROPERTIES
    PASS_REGULAR_EXPRESSION "problems       none[^$]*devices        1 x 139.00 GiB[^$]*device 0   experts 0-")
endif()
