#pragma once
// Small device helpers shared by the kernels: warp/block reductions and bf16 conversions.
// Device-only (.cu files); no spdlog/fmt here.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace dsv2::cuda {

using bf16 = __nv_bfloat16;

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarpSize = 32;

__host__ __device__ constexpr int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
    return v;
}

__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
    return v;
}

// Sum over the whole block; every thread gets the result. `scratch` holds >= 32 floats.
// Contains __syncthreads(): every thread of the block must call it.
__device__ __forceinline__ float blockSum(float v, float* scratch) {
    const int lane = threadIdx.x % kWarpSize;
    const int warp = threadIdx.x / kWarpSize;
    const int nWarps = (blockDim.x + kWarpSize - 1) / kWarpSize;
    v = warpSum(v);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float total = lane < nWarps ? scratch[lane] : 0.0f;
    return warpSum(total);
}

__device__ __forceinline__ float toFloat(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ bf16 toBf16(float v) { return __float2bfloat16_rn(v); }

// Σ of the 8 products of two 16-byte vectors of bf16 (weight streaming), in fp32.
__device__ __forceinline__ float dot8(const uint4& a, const uint4& b) {
    const auto* a2 = reinterpret_cast<const __nv_bfloat162*>(&a);
    const auto* b2 = reinterpret_cast<const __nv_bfloat162*>(&b);
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 fa = __bfloat1622float2(a2[i]);
        const float2 fb = __bfloat1622float2(b2[i]);
        s = fmaf(fa.x, fb.x, fmaf(fa.y, fb.y, s));
    }
    return s;
}

// An activation vector: read-only global loads by default, plain (generic: shared or global) loads
// when the vector was built in shared memory (residual_norm.cuh).
template <bool kGeneric>
__device__ __forceinline__ uint4 loadActivation(const uint4* p) {
    if constexpr (kGeneric)
        return *p;
    else
        return __ldg(p);
}

// One warp's share of NT dot products of a bf16 weight row (nVec 16-byte vectors, streamed once:
// evict-first loads) with NT activation rows x[0..NT): lane-strided from vector `first + lane`,
// kUnroll weight loads in flight; acc[t] += this lane's partial sum (warpSum completes it). The
// GEMV kernels (gemv.cu, mla_absorb_gemv.cu, moe_router_fused.cu) all use it, so they add in one
// fp32 order: each lane's vectors in ascending order.
template <int NT, int kUnroll, bool kXGeneric = false>
__device__ __forceinline__ void warpRowDot(const uint4* w, const uint4* const* x, int nVec, int lane, float* acc,
                                           int first = 0) {
    int v = first + lane;
    for (; v + (kUnroll - 1) * kWarpSize < nVec; v += kUnroll * kWarpSize) {
        uint4 wv[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) wv[u] = __ldcs(w + v + u * kWarpSize);
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
#pragma unroll
            for (int t = 0; t < NT; ++t) acc[t] += dot8(wv[u], loadActivation<kXGeneric>(x[t] + v + u * kWarpSize));
    }
    for (; v < nVec; v += kWarpSize) {
        const uint4 wv = __ldcs(w + v);
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[t] += dot8(wv, loadActivation<kXGeneric>(x[t] + v));
    }
}

// The first kPre·32 vectors of a weight row, this lane's kPre of them, into registers, and the rest
// of the row (up to rowBytes) prefetched into L2: what a GEMV may do before pdlWaitForPrevious()
// (pdl.cuh), while its predecessor finishes. warpRowDotPrefixed() then adds in warpRowDot's order.
template <int kPre>
__device__ __forceinline__ void warpRowLoadPrefix(const uint4* w, int nVec, int lane, uint4 (&pre)[kPre]) {
#pragma unroll
    for (int u = 0; u < kPre; ++u) {
        const int v = lane + u * kWarpSize;
        pre[u] = v < nVec ? __ldcs(w + v) : make_uint4(0, 0, 0, 0);
    }
    constexpr int kLine = 128;  // bytes per L2 prefetch
    const auto* bytes = reinterpret_cast<const char*>(w);
    for (int64_t b = int64_t{kPre} * kWarpSize * 16 + int64_t{lane} * kLine; b < int64_t{nVec} * 16;
         b += int64_t{kWarpSize} * kLine)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(bytes + b));
}

template <int NT, int kPre, int kUnroll, bool kXGeneric = false>
__device__ __forceinline__ void warpRowDotPrefixed(const uint4* w, const uint4* const* x, int nVec, int lane,
                                                   const uint4 (&pre)[kPre], float* acc) {
#pragma unroll
    for (int u = 0; u < kPre; ++u) {
        const int v = lane + u * kWarpSize;
        if (v >= nVec) break;
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[t] += dot8(pre[u], loadActivation<kXGeneric>(x[t] + v));
    }
    warpRowDot<NT, kUnroll, kXGeneric>(w, x, nVec, lane, acc, kPre * kWarpSize);
}

// silu(x) = x · sigmoid(x), in fp32.
__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

}  // namespace dsv2::cuda
