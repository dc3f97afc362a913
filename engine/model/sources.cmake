# engine/model: config.json, safetensors (mmap, shards), weight binding, model folder, random weights.
target_sources(dsv2_engine PRIVATE
  model/tensor.cpp
  model/model_config.cpp
  model/problem_list.cpp
  model/mapped_file.cpp
  model/safetensors_header.cpp
  model/safetensors_checkpoint.cpp
  model/weight_binding.cpp
  model/generation_config.cpp
  model/model_folder.cpp
  model/model_stats.cpp
  model/random_weights.cpp
)
