#pragma once
// Device side of residual_norm.h (include from .cu files only).

#include "cuda/device_utils.cuh"
#include "cuda/residual_norm.h"

namespace dsv2::cuda {

// The whole block computes x = bf16(rmsnorm(residual + delta) · weight) into xs[0, n) (shared
// memory); `writer` blocks also store residual + delta and x. `scratch` holds 32 floats. Ends with
// __syncthreads(): every thread of the block must call it; xs is ready on return.
__device__ __forceinline__ void blockResidualNorm(const ResidualNorm& r, int n, bf16* xs, float* scratch, bool writer) {
    float sumSq = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = r.residual[i] + (r.delta ? r.delta[i] : 0.0f);
        sumSq += v * v;
    }
    const float rstd = rsqrtf(blockSum(sumSq, scratch) / static_cast<float>(n) + r.eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = r.residual[i] + (r.delta ? r.delta[i] : 0.0f);
        const bf16 x = toBf16(v * rstd * toFloat(r.weight[i]));
        xs[i] = x;
        if (writer) {
            r.residual_out[i] = v;
            if (r.x_out) r.x_out[i] = x;
        }
    }
    __syncthreads();
}

}  // namespace dsv2::cuda
