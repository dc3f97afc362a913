# CUDA backend suites (included from tests/engine/CMakeLists.txt when DSV2_CUDA is on).
# The kernel and backend suites carry the `gpu` label and skip (exit 77) without a GPU; the block
# allocator, the memory plan, the host-side logic of the GPU paths and the host-side references of
# the GPU suites (reference_forward.h, layer_check.h) run everywhere.
set(_dsv2_cuda_tests ${CMAKE_CURRENT_LIST_DIR})

dsv2_add_doctest(NAME cuda_block_allocator_test SOURCES ${_dsv2_cuda_tests}/block_allocator_test.cpp)
dsv2_add_doctest(NAME cuda_memory_plan_test SOURCES ${_dsv2_cuda_tests}/memory_plan_test.cpp)
dsv2_add_doctest(NAME cuda_reference_test SOURCES ${_dsv2_cuda_tests}/reference_forward_test.cpp)
# Host-side logic of the GPU paths (the per-GPU fact cache, the MLA decode split rules, the prefill
# timing line): no GPU needed.
dsv2_add_doctest(NAME cuda_host_test
                 SOURCES ${_dsv2_cuda_tests}/per_device_cache_test.cpp ${_dsv2_cuda_tests}/mla_decode_split_test.cpp
                         ${_dsv2_cuda_tests}/prefill_timer_test.cpp
                 LIBS CUDA::cudart)

foreach(_suite cuda_kernels_test cuda_residual_norm_test cuda_mla_test cuda_moe_test cuda_grouped_gemm_test cuda_cache_test cuda_backend_test
               cuda_multi_gpu_test)
  dsv2_add_doctest(NAME ${_suite} SOURCES ${_dsv2_cuda_tests}/${_suite}.cpp LIBS CUDA::cudart LABELS gpu TIMEOUT 600)
endforeach()
