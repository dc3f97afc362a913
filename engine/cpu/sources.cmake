# The CPU reference backend (plain fp32 loops over the mapped bf16 weights).
target_sources(dsv2_engine PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/cpu_backend.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cpu_ops.cpp
  ${CMAKE_CURRENT_LIST_DIR}/mla_attention.cpp
  ${CMAKE_CURRENT_LIST_DIR}/rope.cpp
  ${CMAKE_CURRENT_LIST_DIR}/router.cpp
  ${CMAKE_CURRENT_LIST_DIR}/thread_pool.cpp
)
