#pragma once
// The merge of one head's context splits for a one-token decode step, done by the kernel after
// the sliced MLA decode kernel when that one deferred it (MlaDecodeParams::defer_merge_max_splits;
// the v GEMV in mla_absorb_gemv.cu). Include from .cu files only.
//
// It is step 6 of mla_decode_sliced.cu for one head and one chunk of splits (used <=
// kMlaDecodeMaxDeferredSplits), written in the same fp32 operations and order as that kernel's
// default shape (16 threads per head row): the (m, l) weights summed by 16 threads with 4 splits
// each and a butterfly, each column an fmaf chain over the splits in order, one bf16 rounding. So
// o_lat has the same bits whichever kernel merges.

#include "cuda/device_utils.cuh"

namespace dsv2::cuda::split_merge {

constexpr int kRowThreads = 16;  // mla_decode_sliced.cu's kThreadsPerRow (8 warps, 16 heads)
constexpr int kMaxSplits = 64;   // its kMergeChunk
constexpr float kLog2e = 1.4426950408889634f;

// o_lat[0, n_cols) of one head into `out` (shared or global) from partial_o [used][stride] and
// partial_ml [used] (natural-log max, Σ exp) of that head. sW holds kMaxSplits floats, sInv one.
// Block-wide: every thread calls it; ends with __syncthreads() (out complete).
__device__ __forceinline__ void mergeHead(const float* partial_o, const float2* partial_ml, int64_t stride, int used,
                                          int n_cols, bf16* out, float* sW, float* sInv) {
    if (threadIdx.x < kWarpSize) {  // lanes 16-31 repeat lanes 0-15's work: the butterflies stay in each half
        const int lr = static_cast<int>(threadIdx.x) % kRowThreads;
        constexpr int kPerThread = kMaxSplits / kRowThreads;
        float2 ml[kPerThread];
        float cMax = -INFINITY;
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) {
            const int s = lr + j * kRowThreads;
            ml[j] = s < used ? __ldcg(partial_ml + s) : make_float2(-INFINITY, 0.0f);
            cMax = fmaxf(cMax, ml[j].x);
        }
#pragma unroll
        for (int off = kRowThreads / 2; off > 0; off >>= 1) cMax = fmaxf(cMax, __shfl_xor_sync(kFullMask, cMax, off));
        const float mNew = cMax;  // finite: split 0 has work
        float part = 0.0f;
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) {
            const int s = lr + j * kRowThreads;
            if (s < used) {
                const float w = exp2f((ml[j].x - mNew) * kLog2e);
                if (threadIdx.x < kRowThreads) sW[s] = w;
                part = fmaf(w, ml[j].y, part);
            }
        }
#pragma unroll
        for (int off = kRowThreads / 2; off > 0; off >>= 1) part += __shfl_xor_sync(kFullMask, part, off);
        // The sliced kernel's running sum starts at 0 · exp2(−inf) = 0 before this chunk.
        if (threadIdx.x == 0) *sInv = 1.0f / (0.0f + part);  // >= 1 before the inverse (the maximum's own split)
    }
    __syncthreads();
    const float inv = *sInv;
    for (int c = 2 * static_cast<int>(threadIdx.x); c < n_cols; c += 2 * static_cast<int>(blockDim.x)) {
        float ax = 0.0f, ay = 0.0f;
        for (int s = 0; s < used; ++s) {
            const float2 v = __ldcg(reinterpret_cast<const float2*>(partial_o + s * stride + c));
            ax = fmaf(sW[s], v.x, ax);
            ay = fmaf(sW[s], v.y, ay);
        }
        *reinterpret_cast<__nv_bfloat162*>(out + c) = __floats2bfloat162_rn(ax * inv, ay * inv);
    }
    __syncthreads();
}

}  // namespace dsv2::cuda::split_merge
