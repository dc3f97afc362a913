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
)

# ModelFolder loads the tokenizer and chat template from engine/tokenizer/ once that folder is part
# of the build; re-run CMake when it appears.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/../tokenizer)
if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/../tokenizer/sources.cmake)
  set_source_files_properties(model/model_folder.cpp PROPERTIES COMPILE_DEFINITIONS DSV2_HAVE_TOKENIZER=1)
endif()
