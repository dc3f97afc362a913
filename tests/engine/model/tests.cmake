# engine/model: tensor conversions, config.json, safetensors, weight binding, model folders.
dsv2_add_doctest(NAME engine_model_test SOURCES
  model/tensor_test.cpp
  model/model_config_test.cpp
  model/safetensors_header_test.cpp
  model/model_stats_test.cpp
  model/model_folder_test.cpp
)
