#pragma once
// Internal to moe_grouped_gemm.cu: the Hopper (sm_90a, wgmma) version of the grouped expert GEMMs.
// Same contract as launchMoeGroupedGateUp/Down (moe_grouped_gemm.h); the caller has validated the
// parameters. Built only for sm_90a (its own object library in sources.cmake): the code runs on
// compute capability 9.0 exactly, and moeGroupedWgmmaAvailable() says whether this GPU can.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

struct WgmmaGroupedArgs {
    bool gate_up = false;  // gate|up + SwiGLU (bf16 out) or down (fp32 out)
    int max_rows = 0;
    int n_experts = 0;
    int k = 0;      // reduction width: hidden (gate|up) or inter (down)
    int inter = 0;  // SwiGLU width (gate|up)
    int n = 0;      // output width: inter (gate|up) or hidden (down)
    const int32_t* expert_offsets = nullptr;
    const __nv_bfloat16* const* expert_weights = nullptr;  // host array of n_experts device pointers
    const __nv_bfloat16* in = nullptr;
    int64_t in_stride = 0;
    void* out = nullptr;
    int64_t out_stride = 0;
};

// Whether the current device runs the wgmma kernels (compute capability 9.0 and the sm_90a code
// present in this build). Cached per device.
bool wgmmaGroupedSupportedOnCurrentDevice();

Status launchMoeGroupedWgmma(const WgmmaGroupedArgs& a, cudaStream_t stream);

}  // namespace dsv2::cuda
