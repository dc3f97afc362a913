#pragma once
// RMSNorm, optionally fused with the residual add (REFERENCE.md "Forward pass"):
//   residual mode: residual += delta (if given); out = bf16(residual · rsqrt(mean(residual²) + eps) · w)
//   plain mode:    out = bf16(x · rsqrt(mean(x²) + eps) · w)   (kv_a_layernorm, q_a_layernorm)
// All arithmetic in fp32. `out` may alias `x` (in-place normalisation of c_kv inside the kv_a output).

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

struct RmsNormParams {
    int n_rows = 0;
    int n_cols = 0;
    // Residual mode (residual != nullptr): the fp32 residual stream, updated in place.
    float* residual = nullptr;  // [n_rows, residual_stride]
    int64_t residual_stride = 0;
    const float* delta = nullptr;  // [n_rows, delta_stride] or nullptr: added into residual first
    int64_t delta_stride = 0;
    // Plain mode (residual == nullptr): a bf16 input.
    const __nv_bfloat16* x = nullptr;  // [n_rows, x_stride]
    int64_t x_stride = 0;

    const __nv_bfloat16* weight = nullptr;  // [n_cols]
    __nv_bfloat16* out = nullptr;           // [n_rows, out_stride]; may be nullptr in residual mode
    int64_t out_stride = 0;                 //   (add only, e.g. after the last layer's FFN)
    float eps = 1e-6f;
    // PDL: let the next kernel launch before this one waits (pdl.cuh, the exception to rule 3).
    // Only when that kernel reads nothing but weights before its own wait and does not rely on
    // this one's rule 3 (the one-token step: the q/kv_a GEMV, the router, lm_head).
    bool launch_next_early = false;
};

Status launchRmsNorm(const RmsNormParams& p, cudaStream_t stream);

}  // namespace dsv2::cuda
