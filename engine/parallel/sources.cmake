# engine/parallel: host-side planning for running one model across the GPUs of one host (issue 13):
# which device holds which routed experts, how attention and the shared experts are laid out, the
# bytes that layout moves per token, and the per-device memory plan. Plain C++ (no CUDA), compiled
# in every build so that the CLI and the tests can plan without a GPU.
target_sources(dsv2_engine PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/expert_placement.cpp
  ${CMAKE_CURRENT_LIST_DIR}/weight_sharding.cpp
  ${CMAKE_CURRENT_LIST_DIR}/token_traffic.cpp
  ${CMAKE_CURRENT_LIST_DIR}/parallel_memory_plan.cpp
  ${CMAKE_CURRENT_LIST_DIR}/rank_slice.cpp
)
