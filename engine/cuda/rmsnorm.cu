#include "cuda/rmsnorm.h"

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/pdl.cuh"

namespace dsv2::cuda {
namespace {

// grid: n_rows blocks of 256 (1024 for a few rows) threads; one block normalises one row. Each thread reads and writes
// the same columns in both passes, so in-place (out == x) is safe without extra synchronisation.
__global__ void rmsNormKernel(RmsNormParams p) {
    __shared__ float scratch[32];
    // Launched with PDL (pdl.cuh): everything here reads the previous kernel's output.
    pdlWaitForPrevious();
    pdlLaunchNext();
    const int64_t row = blockIdx.x;
    float sumSq = 0.0f;
    if (p.residual) {
        float* res = p.residual + row * p.residual_stride;
        const float* delta = p.delta ? p.delta + row * p.delta_stride : nullptr;
        for (int i = threadIdx.x; i < p.n_cols; i += blockDim.x) {
            float v = res[i];
            if (delta) {
                v += delta[i];
                res[i] = v;
            }
            sumSq += v * v;
        }
    } else {
        const bf16* x = p.x + row * p.x_stride;
        for (int i = threadIdx.x; i < p.n_cols; i += blockDim.x) {
            const float v = toFloat(x[i]);
            sumSq += v * v;
        }
    }
    const float total = blockSum(sumSq, scratch);
    if (!p.out) return;
    const float rstd = rsqrtf(total / static_cast<float>(p.n_cols) + p.eps);
    bf16* out = p.out + row * p.out_stride;
    if (p.residual) {
        const float* res = p.residual + row * p.residual_stride;
        for (int i = threadIdx.x; i < p.n_cols; i += blockDim.x) out[i] = toBf16(res[i] * rstd * toFloat(p.weight[i]));
    } else {
        const bf16* x = p.x + row * p.x_stride;
        for (int i = threadIdx.x; i < p.n_cols; i += blockDim.x)
            out[i] = toBf16(toFloat(x[i]) * rstd * toFloat(p.weight[i]));
    }
}

}  // namespace

Status launchRmsNorm(const RmsNormParams& p, cudaStream_t stream) {
    if (p.n_rows == 0) return Status::ok();
    if (p.n_rows < 0 || p.n_cols <= 0) return Status(StatusCode::InvalidArgument, "launchRmsNorm: bad sizes");
    if (p.residual) {
        if (p.residual_stride < p.n_cols || (p.delta && p.delta_stride < p.n_cols))
            return Status(StatusCode::InvalidArgument, "launchRmsNorm: residual/delta stride below n_cols");
    } else if (!p.x || p.x_stride < p.n_cols || !p.out) {
        return Status(StatusCode::InvalidArgument, "launchRmsNorm: plain mode needs x, x_stride and out");
    }
    if (p.out && (!p.weight || p.out_stride < p.n_cols))
        return Status(StatusCode::InvalidArgument, "launchRmsNorm: out needs weight and out_stride >= n_cols");
    // A few rows (decode): wide blocks, so each thread has one or two elements and the row is not
    // a chain of dependent loads; many rows: 256 threads per row.
    const int threads = p.n_rows < 64 ? 1024 : 256;
    DSV2_CUDA_CHECK(launchPdl(rmsNormKernel, dim3(static_cast<unsigned>(p.n_rows)), dim3(threads), 0, stream, p));
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
