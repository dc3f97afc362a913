#pragma once
// Device side of grid_tail.h (include from .cu files only).
//
// Two things decide whether a tail pays (measured on the H200, session 8, Lite decode):
//   - Its own latency. One block does the work, so every dependent L2 round trip (~0.6 µs) is on
//     the step's critical path. Written as plain strided loops (8 values a thread for a 2048-wide
//     norm, each iteration waiting for its loads), the tails made the step 15 % SLOWER than the
//     separate launches. So each thread issues all its loads first (clamped indices, no
//     predicated loads, which ptxas serialises) and the work takes one round trip.
//   - The kernel it ends. Inlined, the tail's code changed how ptxas built the main loop (the MoE
//     down kernel went from 53 to 40 registers). The work is therefore a separate, never inlined
//     function that only the last block calls; the struct is passed by value, so only that block
//     copies it.

#include "cuda/attention_prologue.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/grid_tail.h"

namespace dsv2::cuda {

// True in exactly one block of the grid: the last to call it. Every thread of every block calls
// it once, after its block's output stores. The classic threadfence-reduction pattern: each block
// publishes its stores (fence), then counts; the block that counts last fences again before it
// reads the others' outputs. That block resets the counter at once: every other block has counted.
__device__ __forceinline__ bool lastBlockToFinish(unsigned* counter) {
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        const unsigned blocks = gridDim.x * gridDim.y * gridDim.z;
        last = atomicAdd(counter, 1u) == blocks - 1;
        if (last) *counter = 0;
    }
    __syncthreads();
    if (last) __threadfence();
    return last;
}

constexpr int kTailBatch = 8;  // values (or RoPE pairs) a thread loads before it uses any

// residual += delta (in place) and x_out = bf16(rmsnorm(residual) · weight), by one block, in
// batches of kTailBatch values a thread (one batch for n <= 8 · blockDim: Lite's 2048 at 256
// threads). Loads of what other blocks wrote go through L2 (__ldcg).
__device__ __forceinline__ void tailResidualNorm(const GridTail& t, float* scratch) {
    const int n = t.n, threads = static_cast<int>(blockDim.x), span = threads * kTailBatch;
    float v[kTailBatch];
    auto load = [&](int base) {
#pragma unroll
        for (int j = 0; j < kTailBatch; ++j) {
            const int i = base + j * threads + static_cast<int>(threadIdx.x);
            const int c = min(i, n - 1);  // every load issued; the ones past n are dropped below
            const float x = __ldcg(t.residual + c) + __ldcg(t.delta + c);
            v[j] = i < n ? x : 0.0f;
        }
    };
    auto store = [&](int base, float rstd) {
#pragma unroll
        for (int j = 0; j < kTailBatch; ++j) {
            const int i = base + j * threads + static_cast<int>(threadIdx.x);
            if (i < n) {
                t.residual[i] = v[j];
                t.x_out[i] = toBf16(v[j] * rstd * toFloat(t.norm_weight[i]));
            }
        }
    };
    float sumSq = 0.0f;
    for (int base = 0; base < n; base += span) {
        load(base);
#pragma unroll
        for (int j = 0; j < kTailBatch; ++j) sumSq += v[j] * v[j];
    }
    const float rstd = rsqrtf(blockSum(sumSq, scratch) / static_cast<float>(n) + t.eps);
    if (n <= span) {  // the batch is still in registers
        store(0, rstd);
        return;
    }
    for (int base = 0; base < n; base += span) {
        load(base);
        store(base, rstd);
    }
}

// RoPE on pairs [first, first + kTailBatch · blockDim) of q_pe (all heads), loads first.
__device__ __forceinline__ void tailRopeQ(const AttentionPrologueParams& p, int32_t pos, int first) {
    const int half = p.rope_dim / 2, nPairs = p.n_heads * half, threads = static_cast<int>(blockDim.x);
    float x0[kTailBatch], x1[kTailBatch];
    bf16* at[kTailBatch];
#pragma unroll
    for (int j = 0; j < kTailBatch; ++j) {
        const int idx = min(first + j * threads + static_cast<int>(threadIdx.x), nPairs - 1);
        at[j] = p.q_pe + static_cast<int64_t>(idx / half) * p.q_head_stride + 2 * (idx % half);
        x0[j] = toFloat(__ldcg(at[j]));
        x1[j] = toFloat(__ldcg(at[j] + 1));
    }
#pragma unroll
    for (int j = 0; j < kTailBatch; ++j) {
        const int idx = first + j * threads + static_cast<int>(threadIdx.x);
        if (idx >= nPairs) continue;
        bf16 o0, o1;
        prologueRotate(x0[j], x1[j], pos, p, idx % half, o0, o1);
        at[j][0] = o0;
        at[j][1] = o1;
    }
}

// The attention prologue of one token without q_a (the models without q_lora, where the engine
// uses this tail): the kv_a norm, RoPE on k_pe, the cache entry and RoPE on q_pe with all loads of
// the latent row and of the first q_pe batch issued together. The values are the prologue
// kernel's (attention_prologue.cuh), except the order of the norm's fp32 sum of squares. Other
// shapes (q_a, kv_lora > 2 · blockDim, rope_dim / 2 > blockDim) take the role-by-role path.
__device__ __forceinline__ void tailAttentionPrologue(const AttentionPrologueParams& p, float* scratch) {
    const int threads = static_cast<int>(blockDim.x), tid = static_cast<int>(threadIdx.x);
    const int half = p.rope_dim / 2;
    if (p.q_a || !p.kv_a || p.kv_lora > 2 * threads || half > threads) {
        const int roles = attentionPrologueRoles(p, threads);
        for (int role = 0; role < roles; ++role) {
            attentionPrologueRole(p, 0, role, scratch);
            __syncthreads();  // q_a's norm reads before it writes, and scratch is reused
        }
        return;
    }
    const int32_t pos = p.positions[0];
    bf16* kv = p.kv_a;
    const PagedCacheRef& c = p.cache;
    const int32_t block = c.block_table[pos / c.block_size];
    bf16* dst = c.layer_base + (static_cast<int64_t>(block) * c.block_size + pos % c.block_size) * c.entry_dim;
    // The latent row (two values a thread) and this thread's k_pe pair, loaded together.
    const int i0 = tid, i1 = tid + threads;
    const float c0 = toFloat(__ldcg(kv + min(i0, p.kv_lora - 1)));
    const float c1 = toFloat(__ldcg(kv + min(i1, p.kv_lora - 1)));
    const int pair = min(tid, half - 1);
    const float k0 = toFloat(__ldcg(kv + p.kv_lora + 2 * pair)), k1 = toFloat(__ldcg(kv + p.kv_lora + 2 * pair + 1));
    // q_pe meanwhile (independent of the norm): its loads overlap the latent row's.
    if (p.q_pe)
        for (int first = 0; first < p.n_heads * half; first += kTailBatch * threads) tailRopeQ(p, pos, first);
    const float v0 = i0 < p.kv_lora ? c0 : 0.0f, v1 = i1 < p.kv_lora ? c1 : 0.0f;
    const float rstd = rsqrtf(blockSum(v0 * v0 + v1 * v1, scratch) / static_cast<float>(p.kv_lora) + p.eps);
    if (i0 < p.kv_lora) kv[i0] = dst[i0] = toBf16(c0 * rstd * toFloat(p.kv_weight[i0]));
    if (i1 < p.kv_lora) kv[i1] = dst[i1] = toBf16(c1 * rstd * toFloat(p.kv_weight[i1]));
    if (tid < half) {
        bf16 o0, o1;
        prologueRotate(k0, k1, pos, p, tid, o0, o1);
        kv[p.kv_lora + 2 * tid] = dst[p.kv_lora + 2 * tid] = o0;
        kv[p.kv_lora + 2 * tid + 1] = dst[p.kv_lora + 2 * tid + 1] = o1;
    }
}

// The work of the last block (never inlined: see the top of this file).
static __device__ __noinline__ void gridTailWork(GridTail t) {
    __shared__ float scratch[32];
    if (t.normActive()) tailResidualNorm(t, scratch);
    if (t.prologueActive()) tailAttentionPrologue(t.prologue, scratch);
}

// The tail of a kernel: every thread of every block calls it after its block's output stores
// (block-uniform; the kernel must not have returned early in any thread). Nothing when inactive.
__device__ __forceinline__ void runGridTail(const GridTail& t) {
    if (t.active() && lastBlockToFinish(t.counter)) gridTailWork(t);
}

}  // namespace dsv2::cuda
