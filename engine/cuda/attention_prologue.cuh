#pragma once
// Device side of attention_prologue_fused.h (include from .cu files only): one role of the
// prologue for one token, for any block size. Used by the prologue's own kernel (a block per role)
// and by a kernel's last block (grid_tail.h), which runs every role in turn.
//
// Roles, block-uniform: [q_a norm] [latent entry] [q_pe pairs in chunks of blockDim.x].
// Activations are loaded with __ldcg (L2): in a grid tail they were written by other blocks of
// the same kernel, which this SM's L1 need not have seen.

#include "cuda/attention_prologue_fused.h"
#include "cuda/device_utils.cuh"

namespace dsv2::cuda {

// RMSNorm of row x[0, n) as rmsNormKernel's plain mode: out may alias x (each thread rereads and
// writes only its own columns). A second output (the cache slot) gets the same bf16 values.
__device__ __forceinline__ void prologueNormRow(const bf16* x, const bf16* weight, int n, float eps, bf16* out,
                                                bf16* out2, float* scratch) {
    float sumSq = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = toFloat(__ldcg(x + i));
        sumSq += v * v;
    }
    const float total = blockSum(sumSq, scratch);
    const float rstd = rsqrtf(total / static_cast<float>(n) + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const bf16 o = toBf16(toFloat(__ldcg(x + i)) * rstd * toFloat(weight[i]));
        out[i] = o;
        if (out2) out2[i] = o;
    }
}

// One interleaved pair (x0, x1) rotated as ropeKernel does.
__device__ __forceinline__ void prologueRotate(float x0, float x1, int32_t pos, const AttentionPrologueParams& p, int i,
                                               bf16& o0, bf16& o1) {
    const float angle = static_cast<float>(pos) * p.inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    c *= p.amplitude;
    s *= p.amplitude;
    o0 = toBf16(x0 * c - x1 * s);
    o1 = toBf16(x1 * c + x0 * s);
}

// One interleaved pair rotated as ropeKernel does; written to x and (when set) x2.
__device__ __forceinline__ void prologueRopePair(bf16* x, bf16* x2, int32_t pos, const AttentionPrologueParams& p,
                                                 int i) {
    bf16 o0, o1;
    prologueRotate(toFloat(__ldcg(x)), toFloat(__ldcg(x + 1)), pos, p, i, o0, o1);
    x[0] = o0;
    x[1] = o1;
    if (x2) {
        x2[0] = o0;
        x2[1] = o1;
    }
}

// Roles of one token for blocks of `threads` threads.
__host__ __device__ inline int attentionPrologueRoles(const AttentionPrologueParams& p, int threads) {
    const int qPairs = p.q_pe ? p.n_heads * (p.rope_dim / 2) : 0;
    return (p.q_a ? 1 : 0) + (p.kv_a ? 1 : 0) + (qPairs + threads - 1) / threads;
}

// Role `role` of token t by the whole block (every thread calls it: the norms reduce over the block).
__device__ __forceinline__ void attentionPrologueRole(const AttentionPrologueParams& p, int t, int role,
                                                      float* scratch) {
    const int32_t pos = p.positions[t];
    const int half = p.rope_dim / 2;
    if (p.q_a) {
        if (role == 0) {
            bf16* x = p.q_a + static_cast<int64_t>(t) * p.qa_stride;
            prologueNormRow(x, p.qa_weight, p.qa_cols, p.eps, x, nullptr, scratch);
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
            prologueNormRow(x, p.kv_weight, p.kv_lora, p.eps, x, dst, scratch);
            for (int i = threadIdx.x; i < half; i += blockDim.x)
                prologueRopePair(x + p.kv_lora + 2 * i, dst + p.kv_lora + 2 * i, pos, p, i);
            return;
        }
        --role;
    }
    // q_pe: pairs [role·blockDim, +blockDim) of the token's n_heads·half pairs.
    const int idx = role * blockDim.x + threadIdx.x;
    if (idx >= p.n_heads * half) return;
    const int h = idx / half;
    const int i = idx % half;
    prologueRopePair(p.q_pe + static_cast<int64_t>(t) * p.q_token_stride + h * p.q_head_stride + 2 * i, nullptr, pos, p,
                     i);
}

}  // namespace dsv2::cuda
