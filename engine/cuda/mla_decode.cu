#include "cuda/mla_decode.h"

#include <algorithm>
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"

namespace dsv2::cuda {
namespace {

constexpr int kHeadsPerBlock = 8;  // one warp per query head
constexpr int kTile = 32;          // cache positions per tile: one per lane when scoring
constexpr int kMaxLatent = 512;
constexpr int kPairsPerLane = kMaxLatent / 64;  // 8 bf16 pairs of o_lat per lane
constexpr int kMaxEntry = 1024;

__host__ __device__ inline int entryRowStride(int entry) { return (entry / 2) % 2 == 0 ? entry + 2 : entry; }

__device__ __forceinline__ float2 ld2(const bf16* p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

__device__ __forceinline__ const bf16* cacheEntry(const PagedCacheRef& c, int64_t pos) {
    const int32_t block = c.block_table[pos / c.block_size];
    return c.layer_base + (static_cast<int64_t>(block) * c.block_size + pos % c.block_size) * c.entry_dim;
}

// grid: (n_splits, n_q, ceil(H / 8)); block: 256 threads.
__global__ void __launch_bounds__(kHeadsPerBlock * kWarpSize) mlaDecodeKernel(MlaDecodeParams p) {
    extern __shared__ __align__(16) unsigned char smemRaw[];
    const int entry = p.d_latent + p.d_rope;
    const int es = entryRowStride(entry);
    float* sQ = reinterpret_cast<float*>(smemRaw);                  // [8, entry]
    bf16* sKV = reinterpret_cast<bf16*>(sQ + kHeadsPerBlock * entry);  // [kTile, es]

    const int split = blockIdx.x;
    const int qi = blockIdx.y;
    const int tid = threadIdx.x;
    const int warp = tid / kWarpSize;
    const int lane = tid % kWarpSize;
    const int h = blockIdx.z * kHeadsPerBlock + warp;
    const bool headActive = h < p.n_heads;
    const int halfEntry = entry / 2;

    for (int idx = tid; idx < kHeadsPerBlock * entry; idx += blockDim.x) {
        const int r = idx / entry, c = idx % entry;
        const int hh = blockIdx.z * kHeadsPerBlock + r;
        float v = 0.0f;
        if (hh < p.n_heads) {
            v = c < p.d_latent ? p.q_lat[qi * p.q_lat_token_stride + hh * p.q_lat_head_stride + c]
                               : toFloat(p.q_pe[qi * p.q_pe_token_stride + hh * p.q_pe_head_stride + (c - p.d_latent)]);
        }
        sQ[r * entry + c] = v;
    }

    const int64_t ctx = p.q_pos0 + qi + 1;  // causal length of this query
    const int64_t begin = static_cast<int64_t>(split) * p.split_len;
    const int64_t end = min(begin + p.split_len, ctx);

    float m = -INFINITY, l = 0.0f;
    float acc[2 * kPairsPerLane];
#pragma unroll
    for (int c = 0; c < 2 * kPairsPerLane; ++c) acc[c] = 0.0f;

    for (int64_t t0 = begin; t0 < end; t0 += kTile) {
        __syncthreads();  // sQ written (first pass) / previous tile consumed
        for (int idx = tid; idx < kTile * halfEntry; idx += blockDim.x) {
            const int r = idx / halfEntry, d = 2 * (idx % halfEntry);
            const int64_t pos = t0 + r;
            __nv_bfloat162 v = __floats2bfloat162_rn(0.0f, 0.0f);
            if (pos < end) v = *reinterpret_cast<const __nv_bfloat162*>(cacheEntry(p.cache, pos) + d);
            *reinterpret_cast<__nv_bfloat162*>(sKV + r * es + d) = v;
        }
        __syncthreads();
        if (!headActive) continue;

        const float* q = sQ + warp * entry;
        const bf16* row = sKV + lane * es;
        float s = 0.0f;
        for (int d = 0; d < entry; d += 2) {
            const float2 kf = ld2(row + d);
            s = fmaf(q[d], kf.x, fmaf(q[d + 1], kf.y, s));
        }
        const bool valid = t0 + lane < end;
        const float sc = valid ? s * p.softmax_scale : -INFINITY;
        const float mNew = fmaxf(m, warpMax(sc));
        const float prob = valid ? expf(sc - mNew) : 0.0f;
        const float alpha = m == -INFINITY ? 0.0f : expf(m - mNew);
        l = l * alpha + warpSum(prob);
        m = mNew;
#pragma unroll
        for (int c = 0; c < 2 * kPairsPerLane; ++c) acc[c] *= alpha;

        const int here = static_cast<int>(min(static_cast<int64_t>(kTile), end - t0));
        for (int j = 0; j < here; ++j) {
            const float pj = __shfl_sync(kFullMask, prob, j);
            const bf16* kvRow = sKV + j * es;
#pragma unroll
            for (int i = 0; i < kPairsPerLane; ++i) {
                const int d = 2 * (lane + kWarpSize * i);
                if (d < p.d_latent) {
                    const float2 kf = ld2(kvRow + d);
                    acc[2 * i] = fmaf(pj, kf.x, acc[2 * i]);
                    acc[2 * i + 1] = fmaf(pj, kf.y, acc[2 * i + 1]);
                }
            }
        }
    }

    if (!headActive) return;
    const int64_t slot = (static_cast<int64_t>(qi) * p.n_heads + h) * p.n_splits + split;
    float* po = p.partial_o + slot * p.d_latent;
#pragma unroll
    for (int i = 0; i < kPairsPerLane; ++i) {
        const int d = 2 * (lane + kWarpSize * i);
        if (d < p.d_latent) {
            po[d] = acc[2 * i];
            po[d + 1] = acc[2 * i + 1];
        }
    }
    if (lane == 0) {
        p.partial_ml[slot * 2] = m;
        p.partial_ml[slot * 2 + 1] = l;
    }
}

// grid: n_q · H blocks of 128 threads: merges the splits of one (query, head).
__global__ void mlaDecodeCombineKernel(MlaDecodeParams p) {
    const int qi = blockIdx.x / p.n_heads;
    const int h = blockIdx.x % p.n_heads;
    const int64_t base = (static_cast<int64_t>(qi) * p.n_heads + h) * p.n_splits;
    float mMax = -INFINITY;
    for (int s = 0; s < p.n_splits; ++s) mMax = fmaxf(mMax, p.partial_ml[(base + s) * 2]);
    float total = 0.0f;
    for (int s = 0; s < p.n_splits; ++s) {
        const float ms = p.partial_ml[(base + s) * 2];
        if (ms != -INFINITY) total += p.partial_ml[(base + s) * 2 + 1] * expf(ms - mMax);
    }
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    bf16* out = p.out + qi * p.out_token_stride + h * p.out_head_stride;
    for (int c = threadIdx.x; c < p.d_latent; c += blockDim.x) {
        float v = 0.0f;
        for (int s = 0; s < p.n_splits; ++s) {
            const float ms = p.partial_ml[(base + s) * 2];
            if (ms != -INFINITY) v += p.partial_o[(base + s) * p.d_latent + c] * expf(ms - mMax);
        }
        out[c] = toBf16(v * inv);
    }
}

bool aligned4(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 4 == 0; }

}  // namespace

MlaDecodePlan planMlaDecode(int64_t ctx_len, int n_q, int n_heads, int n_sms, int max_splits) {
    MlaDecodePlan plan;
    ctx_len = std::max<int64_t>(ctx_len, 1);
    const int64_t blocksPerSplit = static_cast<int64_t>(std::max(n_q, 1)) * ceilDiv(std::max(n_heads, 1), kHeadsPerBlock);
    const int64_t wanted = ceilDiv(2 * static_cast<int64_t>(std::max(n_sms, 1)), blocksPerSplit);
    const int64_t byLength = ceilDiv(ctx_len, 256);
    const int64_t splits = std::clamp<int64_t>(std::min(wanted, byLength), 1, std::max(max_splits, 1));
    plan.split_len = ceilDiv(ceilDiv(ctx_len, splits), kTile) * kTile;
    plan.n_splits = static_cast<int>(ceilDiv(ctx_len, plan.split_len));
    return plan;
}

Status launchMlaDecode(const MlaDecodeParams& p, cudaStream_t stream) {
    if (p.n_q == 0) return Status::ok();
    const int entry = p.d_latent + p.d_rope;
    if (p.n_q < 0 || p.n_heads <= 0 || p.d_latent <= 0 || p.d_rope < 0 || p.q_pos0 < 0 || p.n_splits < 1 ||
        p.split_len <= 0 || p.split_len % kTile != 0)
        return Status(StatusCode::InvalidArgument, "launchMlaDecode: bad sizes or plan");
    if (static_cast<int64_t>(p.n_splits) * p.split_len < p.q_pos0 + p.n_q)
        return Status(StatusCode::InvalidArgument, "launchMlaDecode: the splits do not cover the context");
    if (p.d_latent % 2 || p.d_rope % 2 || p.d_latent > kMaxLatent || entry > kMaxEntry || p.cache.entry_dim != entry)
        return Status(StatusCode::Unsupported,
                      "launchMlaDecode: need even dims, kv_lora_rank <= 512 and cache entry == kv_lora_rank + rope");
    if (!p.q_lat || !p.q_pe || !p.cache.layer_base || !p.cache.block_table || p.cache.block_size <= 0 ||
        !p.partial_o || !p.partial_ml || !p.out || !aligned4(p.cache.layer_base))
        return Status(StatusCode::InvalidArgument, "launchMlaDecode: missing or misaligned pointer");
    if (p.n_q > 65535 || ceilDiv(p.n_heads, kHeadsPerBlock) > 65535)
        return Status(StatusCode::InvalidArgument, "launchMlaDecode: too many query tokens for one launch");
    const size_t smem = sizeof(float) * kHeadsPerBlock * entry + sizeof(bf16) * kTile * entryRowStride(entry);
    if (smem > 48 * 1024)
        DSV2_CUDA_CHECK(cudaFuncSetAttribute(mlaDecodeKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem)));
    const dim3 grid(static_cast<unsigned>(p.n_splits), static_cast<unsigned>(p.n_q),
                    static_cast<unsigned>(ceilDiv(p.n_heads, kHeadsPerBlock)));
    mlaDecodeKernel<<<grid, kHeadsPerBlock * kWarpSize, smem, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    mlaDecodeCombineKernel<<<static_cast<unsigned>(p.n_q * p.n_heads), 128, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
