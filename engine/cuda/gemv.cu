#include "cuda/gemv.h"

#include <string>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/pdl.cuh"
#include "cuda/residual_norm.cuh"

namespace dsv2::cuda {
namespace {

constexpr int kRowsPerBlock = 8;  // one warp per weight row
constexpr int kUnroll = 4;        // 16-byte weight loads in flight per lane

constexpr int kPrefix = 8;  // vectors per lane loaded before the PDL wait (a 2048-wide row whole)

// One warp per weight row. Launched with PDL (pdl.cuh): the row's first kPrefix·32 vectors are
// loaded into registers and the rest prefetched into L2 before waiting for the kernel that writes
// x, so the weight fetch overlaps that kernel's tail instead of starting after it.
// kNorm: x is built in shared memory from the residual stream (residual_norm.h; NT == 1).
template <int NT, bool kOutBf16, bool kNorm>
__global__ void __launch_bounds__(kRowsPerBlock* kWarpSize) gemvKernel(GemvParams p) {
    extern __shared__ uint4 normedX[];  // kNorm: [k / 8]
    const int lane = threadIdx.x % kWarpSize;
    int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarpSize;
    const bool active = row < p.n_rows + p.n_rows2;
    const bf16* wBase = p.w;
    void* outBase = p.out;
    int64_t ldo = p.ldo;
    if (row >= p.n_rows) {  // the second projection
        row -= p.n_rows;
        wBase = p.w2;
        outBase = p.out2;
        ldo = p.ldo2;
    }
    const int nVec = p.k / 8;
    const uint4* w = reinterpret_cast<const uint4*>(wBase + static_cast<int64_t>(active ? row : 0) * p.k);
    uint4 pre[kPrefix];
    if (active) warpRowLoadPrefix<kPrefix>(w, nVec, lane, pre);
    pdlWaitLaunchingNext(p.launch_next_early);
    const uint4* x[NT];
    if constexpr (kNorm) {
        __shared__ float scratch[32];
        blockResidualNorm(p.norm, p.k, reinterpret_cast<bf16*>(normedX), scratch, blockIdx.x == 0);
        x[0] = normedX;
    } else {
#pragma unroll
        for (int t = 0; t < NT; ++t) x[t] = reinterpret_cast<const uint4*>(p.x + t * p.ldx);
    }
    if (!active) return;

    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
    warpRowDotPrefixed<NT, kPrefix, kUnroll, kNorm>(w, x, nVec, lane, pre, acc);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        const float s = warpSum(acc[t]);
        if (lane != 0) continue;
        if constexpr (kOutBf16) {
            static_cast<bf16*>(outBase)[t * ldo + row] = toBf16(s);
        } else {
            float* o = static_cast<float*>(outBase) + t * ldo + row;
            *o = p.beta == 0.0f ? s : fmaf(p.beta, *o, s);
        }
    }
}

template <int NT>
cudaError_t launchFor(const GemvParams& p, cudaStream_t stream) {
    const unsigned blocks = static_cast<unsigned>(ceilDiv(static_cast<int64_t>(p.n_rows) + p.n_rows2, kRowsPerBlock));
    const dim3 block(kRowsPerBlock * kWarpSize);
    if constexpr (NT == 1) {
        if (p.norm.active()) {
            const size_t smem = sizeof(bf16) * static_cast<size_t>(p.k);
            if (p.out_type == GemmType::BF16)
                return launchPdl(gemvKernel<1, true, true>, dim3(blocks), block, smem, stream, p);
            return launchPdl(gemvKernel<1, false, true>, dim3(blocks), block, smem, stream, p);
        }
    }
    if (p.out_type == GemmType::BF16) return launchPdl(gemvKernel<NT, true, false>, dim3(blocks), block, 0, stream, p);
    return launchPdl(gemvKernel<NT, false, false>, dim3(blocks), block, 0, stream, p);
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

}  // namespace

bool gemvSupported(int k, int n_tokens, const void* w, const void* x, int64_t ldx) {
    return k > 0 && k % 8 == 0 && n_tokens >= 1 && n_tokens <= kGemvMaxTokens && aligned16(w) && aligned16(x) &&
           (n_tokens == 1 || ldx % 8 == 0);
}

Status launchGemv(const GemvParams& p, cudaStream_t stream) {
    if (p.n_rows == 0 && p.n_rows2 == 0) return Status::ok();
    if (p.n_rows2 < 0 ||
        (p.n_rows2 > 0 && (!p.w2 || !aligned16(p.w2) || !p.out2 || (p.n_tokens > 1 && p.ldo2 < p.n_rows2))))
        return Status(StatusCode::InvalidArgument, "launchGemv: bad second projection");
    if (p.n_rows < 0 || !p.out || (p.n_tokens > 1 && p.ldo < p.n_rows) ||
        !gemvSupported(p.k, p.n_tokens, p.w, p.x, p.ldx) || (p.out_type == GemmType::BF16 && p.beta != 0.0f))
        return Status(StatusCode::InvalidArgument, "launchGemv: unsupported shape, pointer alignment or beta (k " +
                                                       std::to_string(p.k) + ", tokens " + std::to_string(p.n_tokens) +
                                                       ")");
    cudaError_t launched = cudaSuccess;
    if (p.norm.active() && (p.n_tokens != 1 || !p.norm.valid() || p.k > kGemvMaxNormK))
        return Status(StatusCode::InvalidArgument,
                      "launchGemv: the fused residual norm needs one token, residual_out (not aliasing the "
                      "residual), a weight and k <= " +
                          std::to_string(kGemvMaxNormK));
    switch (p.n_tokens) {
    case 1: launched = launchFor<1>(p, stream); break;
    case 2: launched = launchFor<2>(p, stream); break;
    case 3: launched = launchFor<3>(p, stream); break;
    default: launched = launchFor<4>(p, stream); break;
    }
    DSV2_CUDA_CHECK(launched);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

Status linearFew(cublasHandle_t blas, const __nv_bfloat16* x, int64_t ldx, const __nv_bfloat16* w, void* out,
                 GemmType out_type, int64_t ldo, int64_t n_tokens, int64_t n_out, int64_t n_in, cudaStream_t stream,
                 float beta, bool launch_next_early) {
    const bool fits = n_out <= INT32_MAX && n_in <= INT32_MAX && (out_type == GemmType::F32 || beta == 0.0f);
    if (!fits || !gemvSupported(static_cast<int>(n_in), static_cast<int>(n_tokens), w, x, ldx))
        return linear(blas, x, ldx, w, out, out_type, ldo, n_tokens, n_out, n_in, stream, beta);
    GemvParams p;
    p.n_rows = static_cast<int>(n_out);
    p.k = static_cast<int>(n_in);
    p.n_tokens = static_cast<int>(n_tokens);
    p.w = w;
    p.x = x;
    p.ldx = ldx;
    p.out = out;
    p.ldo = ldo;
    p.out_type = out_type;
    p.beta = beta;
    p.launch_next_early = launch_next_early;
    return launchGemv(p, stream);
}

Status linearFewPair(cublasHandle_t blas, const __nv_bfloat16* x, int64_t ldx, int64_t n_tokens, int64_t n_in,
                     const __nv_bfloat16* w1, __nv_bfloat16* out1, int64_t n_out1, const __nv_bfloat16* w2,
                     __nv_bfloat16* out2, int64_t n_out2, cudaStream_t stream, const ResidualNorm* norm,
                     bool launch_next_early) {
    const bool fits = n_out1 + n_out2 <= INT32_MAX && n_in <= INT32_MAX &&
                      gemvSupported(static_cast<int>(n_in), static_cast<int>(n_tokens), w1, x, ldx) && aligned16(w2);
    if (norm && norm->active() && (!fits || n_tokens != 1 || n_in > kGemvMaxNormK))
        return Status(StatusCode::InvalidArgument, "linearFewPair: a folded norm needs the one-token GEMV path");
    if (!fits) {
        DSV2_RETURN_IF_ERROR(linear(blas, x, ldx, w1, out1, GemmType::BF16, n_out1, n_tokens, n_out1, n_in, stream));
        return linear(blas, x, ldx, w2, out2, GemmType::BF16, n_out2, n_tokens, n_out2, n_in, stream);
    }
    GemvParams p;
    p.n_rows = static_cast<int>(n_out1);
    p.k = static_cast<int>(n_in);
    p.n_tokens = static_cast<int>(n_tokens);
    p.w = w1;
    p.x = x;
    p.ldx = ldx;
    p.out = out1;
    p.ldo = n_out1;
    p.out_type = GemmType::BF16;
    p.w2 = w2;
    p.n_rows2 = static_cast<int>(n_out2);
    p.out2 = out2;
    p.ldo2 = n_out2;
    if (norm) p.norm = *norm;
    p.launch_next_early = launch_next_early;
    return launchGemv(p, stream);
}

bool gemvPairNormSupported(int k, const void* w1, const void* w2) {
    return gemvSupported(k, 1, w1, nullptr, k) && aligned16(w2) && k <= kGemvMaxNormK;
}

}  // namespace dsv2::cuda
