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

# Temporary seam while engine/tokenizer/ is written in parallel: ModelFolder (and dsv2 inspect-model)
# load the tokenizer once tokenizer.cpp exists and the chat template once chat_template.cpp exists.
# Re-run CMake when they appear.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/../tokenizer)
if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/../tokenizer/tokenizer.cpp)
  target_compile_definitions(dsv2_engine PUBLIC DSV2_HAVE_TOKENIZER=1)
endif()
if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/../tokenizer/chat_template.cpp)
  target_compile_definitions(dsv2_engine PUBLIC DSV2_HAVE_CHAT_TEMPLATE=1)
endif()
