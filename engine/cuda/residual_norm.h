#pragma once
// The residual add + RMSNorm before a decode GEMV, folded into that GEMV's launch (one token).
// Every block of the consuming kernel computes
//     s = residual + delta            (fp32; delta may be absent)
//     x = bf16(s · rsqrt(mean(s²) + eps) · weight)
// into its shared memory and uses x as its input vector; one block also stores s to residual_out
// (a second buffer: the others still read `residual`) and, if asked, x to x_out for later kernels.
// It saves a launch per norm (2 per layer) at the cost of each block re-reading 2 × hidden fp32
// from L2 and reducing them after the PDL wait. Measured on an H200 (Lite decode, PDL on) that
// cost is larger: 386 tok/s folded vs 398 separate, so CudaBackend folds only with
// DSV2_FOLD_NORMS=1; the kernels and their tests stay for shapes or GPUs where it pays. Numerics: rmsnorm.cu's, except
// the order of the fp32 sum of squares (so x may differ from the unfused path in the last bf16 bit of rare elements).

#include <cuda_bf16.h>

namespace dsv2::cuda {

struct ResidualNorm {
    const float* residual = nullptr;  // [hidden]; null: no fused norm (the kernel reads x as given)
    const float* delta = nullptr;     // [hidden] or null
    float* residual_out = nullptr;    // [hidden], must not alias residual
    const __nv_bfloat16* weight = nullptr;
    float eps = 0.0f;
    __nv_bfloat16* x_out = nullptr;  // optional [hidden]

    bool active() const { return residual != nullptr; }
    bool valid() const { return !residual || (residual_out && residual_out != residual && weight); }
};

}  // namespace dsv2::cuda
