#include "cuda/convert.h"

#include <algorithm>

#include <cuda_fp16.h>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"

namespace dsv2::cuda {
namespace {

__global__ void convertKernel(ConvertParams p) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        float v;
        switch (p.src_type) {
            case SourceType::F16: v = __half2float(static_cast<const __half*>(p.src)[i]); break;
            case SourceType::F32: v = static_cast<const float*>(p.src)[i]; break;
            default: v = toFloat(static_cast<const bf16*>(p.src)[i]); break;
        }
        p.dst[i] = toBf16(v);
    }
}

__global__ void bf16ToFloatKernel(const bf16* src, float* dst, int64_t n) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        dst[i] = toFloat(src[i]);
}

unsigned gridFor(int64_t n) { return static_cast<unsigned>(std::min<int64_t>(ceilDiv(n, 256), 65536)); }

}  // namespace

Status launchConvertToBf16(const ConvertParams& p, cudaStream_t stream) {
    if (p.n == 0) return Status::ok();
    if (p.n < 0 || !p.src || !p.dst || (p.src == p.dst && p.src_type != SourceType::BF16))
        return Status(StatusCode::InvalidArgument, "launchConvertToBf16: bad parameters (in place only for bf16)");
    convertKernel<<<gridFor(p.n), 256, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

Status launchBf16ToFloat(const __nv_bfloat16* src, float* dst, int64_t n, cudaStream_t stream) {
    if (n == 0) return Status::ok();
    if (n < 0 || !src || !dst) return Status(StatusCode::InvalidArgument, "launchBf16ToFloat: bad parameters");
    bf16ToFloatKernel<<<gridFor(n), 256, 0, stream>>>(src, dst, n);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
