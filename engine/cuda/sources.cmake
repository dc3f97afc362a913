# CUDA backend sources (included from engine/CMakeLists.txt when DSV2_CUDA is on).
# One kernel family per .cu file; host-only pieces (cuBLAS wrapper, cache bookkeeping) are .cpp.
target_sources(dsv2_engine PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/block_allocator.cpp
  ${CMAKE_CURRENT_LIST_DIR}/paged_latent_cache.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cublas_gemm.cpp
  ${CMAKE_CURRENT_LIST_DIR}/mla_attention.cpp
  ${CMAKE_CURRENT_LIST_DIR}/moe_layer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cluster_launch.cpp
  ${CMAKE_CURRENT_LIST_DIR}/pdl.cu
  ${CMAKE_CURRENT_LIST_DIR}/convert.cu
  ${CMAKE_CURRENT_LIST_DIR}/embedding.cu
  ${CMAKE_CURRENT_LIST_DIR}/rmsnorm.cu
  ${CMAKE_CURRENT_LIST_DIR}/rope.cu
  ${CMAKE_CURRENT_LIST_DIR}/latent_cache_ops.cu
  ${CMAKE_CURRENT_LIST_DIR}/mla_prefill.cu
  ${CMAKE_CURRENT_LIST_DIR}/mla_prefill_mma.cu
  ${CMAKE_CURRENT_LIST_DIR}/mla_decode.cu
  ${CMAKE_CURRENT_LIST_DIR}/mla_decode_mma.cu
  ${CMAKE_CURRENT_LIST_DIR}/mla_decode_sliced.cu
  ${CMAKE_CURRENT_LIST_DIR}/moe_router.cu
  ${CMAKE_CURRENT_LIST_DIR}/moe_permute.cu
  ${CMAKE_CURRENT_LIST_DIR}/moe_grouped_gemm.cu
  ${CMAKE_CURRENT_LIST_DIR}/swiglu.cu
  ${CMAKE_CURRENT_LIST_DIR}/gemv.cu
  ${CMAKE_CURRENT_LIST_DIR}/moe_decode.cu
  ${CMAKE_CURRENT_LIST_DIR}/attention_prologue_fused.cu
  ${CMAKE_CURRENT_LIST_DIR}/moe_router_fused.cu
  ${CMAKE_CURRENT_LIST_DIR}/mla_absorb_gemv.cu
)

# The wgmma grouped MoE GEMM needs sm_90a code (wgmma exists only there; such code runs on compute
# capability 9.0 only): its own object library, built for 90a alone whatever the engine's list, so
# the fatbinary never holds a plain-sm_90 image of it that the driver could pick instead. The host
# checks the GPU before launching (moe_grouped_gemm_wgmma.h) and uses the mma.sync kernel elsewhere.
add_library(dsv2_moe_wgmma OBJECT ${CMAKE_CURRENT_LIST_DIR}/moe_grouped_gemm_wgmma.cu)
set_target_properties(dsv2_moe_wgmma PROPERTIES CUDA_ARCHITECTURES 90a-real CUDA_SEPARABLE_COMPILATION OFF)
target_include_directories(dsv2_moe_wgmma PRIVATE $<TARGET_PROPERTY:dsv2_engine,INCLUDE_DIRECTORIES>)
target_compile_definitions(dsv2_moe_wgmma PRIVATE $<TARGET_PROPERTY:dsv2_engine,COMPILE_DEFINITIONS>)
target_link_libraries(dsv2_moe_wgmma PRIVATE CUDA::cudart)
dsv2_set_warnings(dsv2_moe_wgmma)
target_sources(dsv2_engine PRIVATE $<TARGET_OBJECTS:dsv2_moe_wgmma>)

# The backend behind core/backend.h's seam: createBackend(BackendKind::Cuda, ...) dispatches here.
target_sources(dsv2_engine PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/memory_plan.cpp
  ${CMAKE_CURRENT_LIST_DIR}/device_weights.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cuda_backend.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cuda_decode_graph.cpp
  ${CMAKE_CURRENT_LIST_DIR}/prefill_timer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/nccl_comm.cpp
  ${CMAKE_CURRENT_LIST_DIR}/multi_gpu_backend.cpp
)

# Several GPUs: NCCL's header at build time only; libnccl.so.2 is dlopen'ed when a model is spread
# over several GPUs (nccl_comm.h), so nothing links against it and one GPU needs no NCCL.
set(DSV2_NCCL_INCLUDE_DIR "" CACHE PATH "Folder holding nccl.h (found in the CUDA toolkit when empty)")
find_path(DSV2_NCCL_HEADER_DIR nccl.h HINTS ${DSV2_NCCL_INCLUDE_DIR} ${CUDAToolkit_INCLUDE_DIRS} /usr/include)
if(DSV2_NCCL_HEADER_DIR)
  message(STATUS "dsv2: multi-GPU (NCCL headers in ${DSV2_NCCL_HEADER_DIR}; libnccl.so.2 loaded at run time)")
  target_include_directories(dsv2_engine SYSTEM PRIVATE ${DSV2_NCCL_HEADER_DIR})
  set_property(SOURCE ${CMAKE_CURRENT_LIST_DIR}/nccl_comm.cpp APPEND PROPERTY COMPILE_DEFINITIONS DSV2_HAVE_NCCL=1)
else()
  message(STATUS "dsv2: no nccl.h found: models run on one GPU (set DSV2_NCCL_INCLUDE_DIR for several)")
  set_property(SOURCE ${CMAKE_CURRENT_LIST_DIR}/nccl_comm.cpp APPEND PROPERTY COMPILE_DEFINITIONS DSV2_HAVE_NCCL=0)
endif()
target_link_libraries(dsv2_engine PRIVATE ${CMAKE_DL_LIBS})
# PUBLIC: the CLI (dsv2 bench) also asks whether the CUDA backend is compiled in.
target_compile_definitions(dsv2_engine PUBLIC DSV2_HAS_CUDA_BACKEND=1)
