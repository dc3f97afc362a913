#include "cuda/rope.h"

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"

namespace dsv2::cuda {
namespace {

// One thread per (token, head, pair): reads its pair and writes the same pair, so in place is safe.
__global__ void ropeKernel(RopeParams p) {
    const int half = p.rope_dim / 2;
    const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t total = static_cast<int64_t>(p.n_tokens) * p.n_heads * half;
    if (idx >= total) return;
    const int i = static_cast<int>(idx % half);
    const int h = static_cast<int>((idx / half) % p.n_heads);
    const int t = static_cast<int>(idx / (static_cast<int64_t>(half) * p.n_heads));
    // fp32 angle, as transformers computes it (inv_freq ⊗ positions in fp32), then an accurate
    // sincosf (full range reduction; __sincosf would be wrong at 32K positions).
    const float angle = static_cast<float>(p.positions[t]) * p.inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    c *= p.amplitude;
    s *= p.amplitude;
    bf16* x = p.x + t * p.token_stride + h * p.head_stride + 2 * i;
    const float x0 = toFloat(x[0]);
    const float x1 = toFloat(x[1]);
    x[0] = toBf16(x0 * c - x1 * s);
    x[1] = toBf16(x1 * c + x0 * s);
}

}  // namespace

Status launchRope(const RopeParams& p, cudaStream_t stream) {
    if (p.n_tokens == 0) return Status::ok();
    if (p.n_tokens < 0 || p.n_heads <= 0 || p.rope_dim <= 0 || p.rope_dim % 2 != 0 || !p.x || !p.positions ||
        !p.inv_freq)
        return Status(StatusCode::InvalidArgument, "launchRope: bad parameters");
    const int64_t total = static_cast<int64_t>(p.n_tokens) * p.n_heads * (p.rope_dim / 2);
    const int threads = 256;
    ropeKernel<<<static_cast<unsigned>(ceilDiv(total, threads)), threads, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
