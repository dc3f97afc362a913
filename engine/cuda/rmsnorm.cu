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
    pdlWaitLaunchingNext(p.launch_next_early);
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

// Residual mode in 16-byte vectors, the row held in registers between the two passes: one read of
// residual and delta, one write of each output, no second pass over memory. grid: n_rows blocks of
// kVecThreads; thread t owns float4s t, t + kVecThreads, ... (at most kMaxVec of them).
constexpr int kVecThreads = 256;
constexpr int kMaxVec = 8;  // n_cols <= 256 · 8 · 4 = 8192 (Lite 2048, V2 5120)

__global__ void __launch_bounds__(kVecThreads) rmsNormResidualVecKernel(RmsNormParams p) {
    __shared__ float scratch[32];
    pdlWaitLaunchingNext(p.launch_next_early);  // as rmsNormKernel
    const int64_t row = blockIdx.x;
    const int nVec = p.n_cols / 4;
    auto* res = reinterpret_cast<float4*>(p.residual + row * p.residual_stride);
    const auto* delta = p.delta ? reinterpret_cast<const float4*>(p.delta + row * p.delta_stride) : nullptr;
    float4 v[kMaxVec];
    float sumSq = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxVec; ++j) {
        const int i = threadIdx.x + j * kVecThreads;
        if (i < nVec) {
            float4 a = res[i];
            if (delta) {
                const float4 d = delta[i];
                a = make_float4(a.x + d.x, a.y + d.y, a.z + d.z, a.w + d.w);
                res[i] = a;
            }
            v[j] = a;
            sumSq += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
        }
    }
    const float total = blockSum(sumSq, scratch);
    if (!p.out) return;
    const float rstd = rsqrtf(total / static_cast<float>(p.n_cols) + p.eps);
    const auto* w = reinterpret_cast<const uint2*>(p.weight);
    auto* out = reinterpret_cast<uint2*>(p.out + row * p.out_stride);
#pragma unroll
    for (int j = 0; j < kMaxVec; ++j) {
        const int i = threadIdx.x + j * kVecThreads;
        if (i < nVec) {
            const uint2 w4 = w[i];
            const bf16* wb = reinterpret_cast<const bf16*>(&w4);
            uint2 o4;
            bf16* ob = reinterpret_cast<bf16*>(&o4);
            ob[0] = toBf16(v[j].x * rstd * toFloat(wb[0]));
            ob[1] = toBf16(v[j].y * rstd * toFloat(wb[1]));
            ob[2] = toBf16(v[j].z * rstd * toFloat(wb[2]));
            ob[3] = toBf16(v[j].w * rstd * toFloat(wb[3]));
            out[i] = o4;
        }
    }
}

bool aligned(const void* ptr, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

bool residualVecSupported(const RmsNormParams& p) {
    return p.residual && p.n_cols % 4 == 0 && p.n_cols <= kVecThreads * kMaxVec * 4 && p.residual_stride % 4 == 0 &&
           aligned(p.residual, 16) && (!p.delta || (p.delta_stride % 4 == 0 && aligned(p.delta, 16))) &&
           (!p.out || (p.out_stride % 4 == 0 && aligned(p.out, 8) && aligned(p.weight, 8)));
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
    if (residualVecSupported(p)) {
        DSV2_CUDA_CHECK(launchPdl(rmsNormResidualVecKernel, dim3(static_cast<unsigned>(p.n_rows)), dim3(kVecThreads), 0,
                                  stream, p));
        DSV2_CUDA_CHECK_LAUNCH();
        return Status::ok();
    }
    const int threads = p.n_rows < 64 ? 1024 : 256;
    DSV2_CUDA_CHECK(launchPdl(rmsNormKernel, dim3(static_cast<unsigned>(p.n_rows)), dim3(threads), 0, stream, p));
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
