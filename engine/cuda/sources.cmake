# CUDA backend sources (included from engine/CMakeLists.txt when DSV2_CUDA is on).
# One kernel family per .cu file; host-only pieces (cuBLAS wrapper, cache bookkeeping) are .cpp.
target_sources(dsv2_engine PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/block_allocator.cpp
  ${CMAKE_CURRENT_LIST_DIR}/paged_latent_cache.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cublas_gemm.cpp
  ${CMAKE_CURRENT_LIST_DIR}/mla_attention.cpp
  ${CMAKE_CURRENT_LIST_DIR}/moe_layer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/convert.cu
  ${CMAKE_CURRENT_LIST_DIR}/embedding.cu
  ${CMAKE_CURRENT_LIST_DIR}/rmsnorm.cu
  ${CMAKE_CURRENT_LIST_DIR}/rope.cu
  ${CMAKE_CURRENT_LIST_DIR}/latent_cache_ops.cu
  ${CMAKE_CURRENT_LIST_DIR}/mla_prefill.cu
  ${CMAKE_CURRENT_LIST_DIR}/mla_decode.cu
  ${CMAKE_CURRENT_LIST_DIR}/mla_decode_mma.cu
  ${CMAKE_CURRENT_LIST_DIR}/moe_router.cu
  ${CMAKE_CURRENT_LIST_DIR}/moe_permute.cu
  ${CMAKE_CURRENT_LIST_DIR}/swiglu.cu
  ${CMAKE_CURRENT_LIST_DIR}/gemv.cu
  ${CMAKE_CURRENT_LIST_DIR}/moe_decode.cu
)

# The backend behind core/backend.h's seam: createBackend(BackendKind::Cuda, ...) dispatches here.
target_sources(dsv2_engine PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/memory_plan.cpp
  ${CMAKE_CURRENT_LIST_DIR}/device_weights.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cuda_backend.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cuda_decode_graph.cpp
)
# PUBLIC: the CLI (dsv2 bench) also asks whether the CUDA backend is compiled in.
target_compile_definitions(dsv2_engine PUBLIC DSV2_HAS_CUDA_BACKEND=1)
