#pragma once
// Device side of attention_prologue_fused.h, shared by its own kernel and by the q_lat GEMV that
// runs the prologue in the same launch (mla_absorb_gemv.h). Include from .cu files only.
//
// Every part is written as rmsnorm.cu (plain mode), rope.cu and latent_cache_ops.cu compute it, so
// the values are bit-identical to the separate kernels. The one reduction, an RMSNorm's Σx², adds
// in the order of a block of kSumThreads threads (launchRmsNorm's block size) whatever blockDim
// the caller runs: the q_lat GEMV's 256-thread blocks then produce the 1024-thread block's bits.

#include "cuda/attention_prologue_fused.h"
#include "cuda/device_utils.cuh"

namespace dsv2::cuda::prologue_detail {

// Σ x[i]² for i in [0, n) as blockSum() over a block of kSumThreads threads would add it: virtual
// thread v sums i = v, v + kSumThreads, ... in turn, each virtual warp is summed by warpSum, and
// the warp sums by one more warpSum. blockDim.x must divide kSumThreads (<= 1024). Contains
// __syncthreads(): every thread of the block calls it.
template <int kSumThreads>
__device__ __forceinline__ float sumSquaresAs(const bf16* x, int n, float* scratch) {
    static_assert(kSumThreads % kWarpSize == 0 && kSumThreads <= 32 * kWarpSize, "scratch holds 32 warp sums");
    const int lane = threadIdx.x % kWarpSize;
    const int warp = threadIdx.x / kWarpSize;
    __syncthreads();  // scratch may still be read by a previous call
    for (int v0 = 0; v0 < kSumThreads; v0 += static_cast<int>(blockDim.x)) {
        float sumSq = 0.0f;
        for (int i = v0 + static_cast<int>(threadIdx.x); i < n; i += kSumThreads) {
            const float v = toFloat(x[i]);
            sumSq += v * v;
        }
        sumSq = warpSum(sumSq);
        if (lane == 0) scratch[v0 / kWarpSize + warp] = sumSq;
    }
    __syncthreads();
    const float total = lane < kSumThreads / kWarpSize ? scratch[lane] : 0.0f;
    return warpSum(total);
}

// RMSNorm of row x[0, n) as rmsNormKernel's plain mode: out may alias x (each thread rereads and
// writes only its own columns). A second output (the cache slot) gets the same bf16 values.
template <int kSumThreads>
__device__ __forceinline__ void normRow(const bf16* x, const bf16* weight, int n, float eps, bf16* out, bf16* out2,
                                        float* scratch) {
    const float total = sumSquaresAs<kSumThreads>(x, n, scratch);
    const float rstd = rsqrtf(total / static_cast<float>(n) + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const bf16 o = toBf16(toFloat(x[i]) * rstd * toFloat(weight[i]));
        out[i] = o;
        if (out2) out2[i] = o;
    }
}

// One interleaved pair rotated as ropeKernel does; written to x and (when set) x2.
__device__ __forceinline__ void ropePair(bf16* x, bf16* x2, int32_t pos, const AttentionPrologueParams& p, int i) {
    const float angle = static_cast<float>(pos) * p.inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    c *= p.amplitude;
    s *= p.amplitude;
    const float x0 = toFloat(x[0]);
    const float x1 = toFloat(x[1]);
    const bf16 o0 = toBf16(x0 * c - x1 * s);
    const bf16 o1 = toBf16(x1 * c + x0 * s);
    x[0] = o0;
    x[1] = o1;
    if (x2) {
        x2[0] = o0;
        x2[1] = o1;
    }
}

// Roles of one token, in order: [q_a norm] [latent entry] [q_pe pairs, `threads` per role].
__host__ __device__ inline int rolesPerToken(const AttentionPrologueParams& p, int threads) {
    const int qPairs = p.q_pe ? p.n_heads * (p.rope_dim / 2) : 0;
    return (p.q_a ? 1 : 0) + (p.kv_a ? 1 : 0) + (qPairs + threads - 1) / threads;
}

// The work of role `role` of token t (block-uniform: the norms' reductions are safe). Reads what
// the q/kv_a projection wrote: call after the PDL wait.
template <int kSumThreads>
__device__ __forceinline__ void runRole(const AttentionPrologueParams& p, int t, int role, float* scratch) {
    const int32_t pos = p.positions[t];
    const int half = p.rope_dim / 2;
    if (p.q_a) {
        if (role == 0) {
            bf16* x = p.q_a + static_cast<int64_t>(t) * p.qa_stride;
            normRow<kSumThreads>(x, p.qa_weight, p.qa_cols, p.eps, x, nullptr, scratch);
            return;
        }
        --role;
    }
    if (p.kv_a) {
        if (role == 0) {
            bf16* x = p.kv_a + static_cast<int64_t>(t) * p.kv_stride;
            const PagedCacheRef& c = p.cache;
            const int32_t block = c.block_table[pos / c.block_size];
            const int64_t slot = static_cast<int64_t>(block) * c.block_size + pos % c.block_size;
            bf16* dst = c.layer_base + slot * c.entry_dim;
            normRow<kSumThreads>(x, p.kv_weight, p.kv_lora, p.eps, x, dst, scratch);
            for (int i = threadIdx.x; i < half; i += blockDim.x)
                ropePair(x + p.kv_lora + 2 * i, dst + p.kv_lora + 2 * i, pos, p, i);
            return;
        }
        --role;
    }
    // q_pe: pairs [role·blockDim, +blockDim) of the token's n_heads·half pairs.
    const int idx = role * static_cast<int>(blockDim.x) + static_cast<int>(threadIdx.x);
    if (idx >= p.n_heads * half) return;
    const int h = idx / half;
    const int i = idx % half;
    ropePair(p.q_pe + static_cast<int64_t>(t) * p.q_token_stride + h * p.q_head_stride + 2 * i, nullptr, pos, p, i);
}

}  // namespace dsv2::cuda::prologue_detail
