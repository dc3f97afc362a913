#include "cuda/swiglu.h"

#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"

namespace dsv2::cuda {
namespace {

// Grid-stride over all n_rows · n_inter outputs.
__global__ void swigluKernel(SwigluParams p) {
    const int64_t total = static_cast<int64_t>(p.n_rows) * p.n_inter;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t r = idx / p.n_inter;
        const int64_t c = idx % p.n_inter;
        const bf16* row = p.gate_up + r * p.in_stride;
        const float g = toFloat(row[c]);
        const float u = toFloat(row[p.n_inter + c]);
        p.out[r * p.out_stride + c] = toBf16(silu(g) * u);
    }
}

}  // namespace

Status launchSwiglu(const SwigluParams& p, cudaStream_t stream) {
    if (p.n_rows == 0) return Status::ok();
    if (p.n_rows < 0 || p.n_inter <= 0 || !p.gate_up || !p.out || p.in_stride < 2 * static_cast<int64_t>(p.n_inter) ||
        p.out_stride < p.n_inter)
        return Status(StatusCode::InvalidArgument, "launchSwiglu: bad parameters");
    const int64_t total = static_cast<int64_t>(p.n_rows) * p.n_inter;
    const int threads = 256;
    const int64_t blocks = std::min<int64_t>(ceilDiv(total, threads), 65536);
    swigluKernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
