#include "cuda/mla_decode.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/mla_decode_common.cuh"
#include "cuda/pdl.cuh"

namespace dsv2::cuda {
namespace mla_decode_detail {
namespace {

constexpr int kHeadsPerBlock = 8;  // one warp per query head
constexpr int kTile = 32;          // cache positions per tile: one per lane when scoring
constexpr int kMaxLatent = 512;
constexpr int kPairsPerLane = kMaxLatent / 64;  // 8 bf16 pairs of o_lat per lane
constexpr int kMaxEntry = 1024;
constexpr int kMaxVecPerThread = kTile * (kMaxEntry / 8) / (kHeadsPerBlock * kWarpSize);  // 16-byte loads per tile

__host__ __device__ inline int entryRowStride(int entry) { return (entry / 2) % 2 == 0 ? entry + 2 : entry; }

__device__ __forceinline__ float2 ld2(const bf16* p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

// grid: (n_splits, n_q, ceil(H / 8)); block: 256 threads.
__global__ void __launch_bounds__(kHeadsPerBlock* kWarpSize) mlaDecodeKernel(MlaDecodeParams p) {
    extern __shared__ __align__(16) unsigned char smemRaw[];
    const int entry = p.d_latent + p.d_rope;
    const int es = entryRowStride(entry);
    float* sQ = reinterpret_cast<float*>(smemRaw);                     // [8, entry]
    bf16* sKV = reinterpret_cast<bf16*>(sQ + kHeadsPerBlock * entry);  // [kTile, es]

    const int split = blockIdx.x;
    const int qi = blockIdx.y;
    const int tid = threadIdx.x;
    const int warp = tid / kWarpSize;
    const int lane = tid % kWarpSize;
    const int h = blockIdx.z * kHeadsPerBlock + warp;
    const bool headActive = h < p.n_heads;
    // Everything below reads what earlier kernels wrote (pdl.cuh rule 1).
    pdlWaitForPrevious();
    pdlLaunchNext();
    // A split this query does not reach (with q_pos0_device most of them at short contexts): no
    // work and no output; the combine reads only [0, used).
    const SplitRange range = splitRange(p, qi, split);
    if (split >= range.used) return;
    const int64_t begin = range.begin;
    const int64_t end = range.end;  // > begin

    // The 8 heads' [q_lat | q_pe] into shared memory: all of a thread's loads are issued before
    // its stores, so they overlap instead of each waiting for the previous one.
    constexpr int kQBatch = kHeadsPerBlock * kMaxEntry / (kHeadsPerBlock * kWarpSize);  // one pass, any entry size
    float qv[kQBatch];
#pragma unroll
    for (int b = 0; b < kQBatch; ++b) {
        const int idx = tid + b * kHeadsPerBlock * kWarpSize;
        const int r = idx / entry, c = idx - r * entry;
        const int hh = blockIdx.z * kHeadsPerBlock + r;
        qv[b] = 0.0f;
        if (idx < kHeadsPerBlock * entry && hh < p.n_heads)
            qv[b] = c < p.d_latent
                        ? p.q_lat[qi * p.q_lat_token_stride + hh * p.q_lat_head_stride + c]
                        : toFloat(p.q_pe[qi * p.q_pe_token_stride + hh * p.q_pe_head_stride + (c - p.d_latent)]);
    }
#pragma unroll
    for (int b = 0; b < kQBatch; ++b) {
        const int idx = tid + b * kHeadsPerBlock * kWarpSize;
        if (idx < kHeadsPerBlock * entry) sQ[idx] = qv[b];
    }

    float m = -INFINITY, l = 0.0f;
    float acc[2 * kPairsPerLane];
#pragma unroll
    for (int c = 0; c < 2 * kPairsPerLane; ++c) acc[c] = 0.0f;

    // The cache tile goes global -> registers -> shared memory, 16 bytes per load, and the next
    // tile's loads are issued before this tile is scored, so HBM latency hides behind the math.
    const int vecPerRow = entry / 8;
    const int vecPerTile = kTile * vecPerRow;
    uint4 pending[kMaxVecPerThread];
    auto loadTile = [&](int64_t t0) {
#pragma unroll
        for (int i = 0; i < kMaxVecPerThread; ++i) {
            const int idx = tid + i * kHeadsPerBlock * kWarpSize;
            pending[i] = make_uint4(0, 0, 0, 0);
            if (idx >= vecPerTile) continue;
            const int r = idx / vecPerRow, c = idx - r * vecPerRow;
            const int64_t pos = t0 + r;
            if (pos < end) pending[i] = __ldg(reinterpret_cast<const uint4*>(cacheEntry(p.cache, pos)) + c);
        }
    };
    auto storeTile = [&] {
#pragma unroll
        for (int i = 0; i < kMaxVecPerThread; ++i) {
            const int idx = tid + i * kHeadsPerBlock * kWarpSize;
            if (idx >= vecPerTile) continue;
            const int r = idx / vecPerRow, c = idx - r * vecPerRow;
            // Rows are 4-byte aligned only (the padded stride keeps scoring free of bank conflicts).
            auto* dst = reinterpret_cast<uint32_t*>(sKV + r * es + c * 8);
            dst[0] = pending[i].x;
            dst[1] = pending[i].y;
            dst[2] = pending[i].z;
            dst[3] = pending[i].w;
        }
    };
    loadTile(begin);

    for (int64_t t0 = begin; t0 < end; t0 += kTile) {
        __syncthreads();  // sQ written (first pass) / previous tile consumed
        storeTile();
        __syncthreads();
        if (t0 + kTile < end) loadTile(t0 + kTile);
        if (!headActive) continue;

        const float* q = sQ + warp * entry;
        const bf16* row = sKV + lane * es;
        // Four independent partial sums: a single chain of 576 dependent FMAs would be latency-bound.
        float s4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        int d = 0;
        for (; d + 8 <= entry; d += 8) {
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const float2 kf = ld2(row + d + 2 * u);
                s4[u] = fmaf(q[d + 2 * u], kf.x, fmaf(q[d + 2 * u + 1], kf.y, s4[u]));
            }
        }
        for (; d < entry; d += 2) {
            const float2 kf = ld2(row + d);
            s4[0] = fmaf(q[d], kf.x, fmaf(q[d + 1], kf.y, s4[0]));
        }
        const float s = (s4[0] + s4[1]) + (s4[2] + s4[3]);
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
    if (range.used == 1) {           // the whole context in this split: the normalised output, no combine
        const float inv = 1.0f / l;  // l >= 1: the maximum's own term is exp(0)
        bf16* out = p.out + qi * p.out_token_stride + h * p.out_head_stride;
#pragma unroll
        for (int i = 0; i < kPairsPerLane; ++i) {
            const int d = 2 * (lane + kWarpSize * i);
            if (d < p.d_latent) {
                out[d] = toBf16(acc[2 * i] * inv);
                out[d + 1] = toBf16(acc[2 * i + 1] * inv);
            }
        }
        return;
    }
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

constexpr int kCombineWarps = 8;
constexpr int kCombineCols = 2 * kWarpSize;  // latent columns per block: a float2 per lane

// grid: (n_q · H, ceil(d_latent / 64)) blocks of 256 threads: merges the used splits of one
// (query, head) for 64 latent columns. The splits' weights exp(m_s − max) are formed once in
// shared memory; then warp w sums splits w, w + 8, ... (independent loads that overlap) and the
// eight warp sums are added in a fixed order. A query that used one split was written by the
// decode kernel and is skipped; splits past `used` were never written and are never read.
__global__ void __launch_bounds__(kCombineWarps* kWarpSize) mlaDecodeCombineKernel(MlaDecodeParams p) {
    extern __shared__ float sWeight[];  // [n_splits]
    __shared__ float scratch[32];
    __shared__ float2 sPart[kCombineWarps][kWarpSize];
    pdlWaitForPrevious();  // the partials come from the decode kernel (pdl.cuh rule 1)
    pdlLaunchNext();
    const int qi = blockIdx.x / p.n_heads;
    const int h = blockIdx.x % p.n_heads;
    const int used = splitRange(p, qi, 0).used;
    if (used <= 1) return;
    const int tid = threadIdx.x;
    const int warp = tid / kWarpSize;
    const int lane = tid % kWarpSize;
    const int64_t base = (static_cast<int64_t>(qi) * p.n_heads + h) * p.n_splits;

    float localMax = -INFINITY;
    for (int s = tid; s < used; s += blockDim.x) localMax = fmaxf(localMax, p.partial_ml[(base + s) * 2]);
    localMax = warpMax(localMax);
    if (lane == 0) scratch[warp] = localMax;
    __syncthreads();
    float mMax = -INFINITY;
    for (int w = 0; w < kCombineWarps; ++w) mMax = fmaxf(mMax, scratch[w]);
    float localSum = 0.0f;
    for (int s = tid; s < used; s += blockDim.x) {
        const float ms = p.partial_ml[(base + s) * 2];
        const float w = ms == -INFINITY ? 0.0f : expf(ms - mMax);
        sWeight[s] = w;
        localSum += p.partial_ml[(base + s) * 2 + 1] * w;
    }
    const float total = blockSum(localSum, scratch);  // synchronises first and after: sWeight complete
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;

    const int c = blockIdx.y * kCombineCols + 2 * lane;  // d_latent is even: c < d_latent covers c + 1
    float2 v = make_float2(0.0f, 0.0f);
    if (c < p.d_latent) {
#pragma unroll 4
        for (int s = warp; s < used; s += kCombineWarps) {
            const float2 po = *reinterpret_cast<const float2*>(p.partial_o + (base + s) * p.d_latent + c);
            const float w = sWeight[s];
            v.x = fmaf(po.x, w, v.x);
            v.y = fmaf(po.y, w, v.y);
        }
    }
    sPart[warp][lane] = v;
    __syncthreads();
    if (warp == 0 && c < p.d_latent) {
        float2 sum = sPart[0][lane];
        for (int w = 1; w < kCombineWarps; ++w) {
            sum.x += sPart[w][lane].x;
            sum.y += sPart[w][lane].y;
        }
        bf16* out = p.out + qi * p.out_token_stride + h * p.out_head_stride;
        out[c] = toBf16(sum.x * inv);
        out[c + 1] = toBf16(sum.y * inv);
    }
}

bool aligned(const void* ptr, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

// DSV2_MLA_DECODE=simt forces the CUDA-core kernel where Auto would take the tensor cores;
// =mma the tensor-core kernel at every context, =sliced the sliced one (where each applies).
enum class EnvDecode { Default, Simt, Mma, Sliced };
EnvDecode envDecode() {
    static const EnvDecode choice = [] {
        const char* env = std::getenv("DSV2_MLA_DECODE");
        if (env && std::strcmp(env, "simt") == 0) return EnvDecode::Simt;
        if (env && std::strcmp(env, "mma") == 0) return EnvDecode::Mma;
        if (env && std::strcmp(env, "sliced") == 0) return EnvDecode::Sliced;
        return EnvDecode::Default;
    }();
    return choice;
}

}  // namespace

Status launchMlaDecodeSimt(const MlaDecodeParams& p, cudaStream_t stream) {
    const int entry = p.d_latent + p.d_rope;
    const size_t smem = sizeof(float) * kHeadsPerBlock * entry + sizeof(bf16) * kTile * entryRowStride(entry);
    if (smem > 48 * 1024)
        DSV2_CUDA_CHECK(
            cudaFuncSetAttribute(mlaDecodeKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    const dim3 grid(static_cast<unsigned>(p.n_splits), static_cast<unsigned>(p.n_q),
                    static_cast<unsigned>(ceilDiv(p.n_heads, kHeadsPerBlock)));
    DSV2_CUDA_CHECK(launchPdl(mlaDecodeKernel, grid, dim3(kHeadsPerBlock * kWarpSize), smem, stream, p));
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace mla_decode_detail

using namespace mla_decode_detail;

MlaDecodePlan planMlaDecode(int64_t ctx_len, int n_q, int n_heads, int n_sms, int max_splits) {
    MlaDecodePlan plan;
    ctx_len = std::max<int64_t>(ctx_len, 1);
    const int64_t blocksPerSplit =
        static_cast<int64_t>(std::max(n_q, 1)) * ceilDiv(std::max(n_heads, 1), kHeadsPerBlock);
    const int64_t wanted = ceilDiv(2 * static_cast<int64_t>(std::max(n_sms, 1)), blocksPerSplit);
    const int64_t byLength = ceilDiv(ctx_len, 256);
    const int64_t splits = std::clamp<int64_t>(std::min(wanted, byLength), 1, std::max(max_splits, 1));
    plan.split_len = ceilDiv(ceilDiv(ctx_len, splits), kTile) * kTile;
    plan.n_splits = static_cast<int>(ceilDiv(ctx_len, plan.split_len));
    return plan;
}

int mlaDecodeSplitsForDevice(int n_heads, int n_sms) {
    const int headTiles = static_cast<int>(ceilDiv(std::max(n_heads, 1), 16));
    return std::max(1, std::max(n_sms, 1) / headTiles);
}

Status launchMlaDecode(const MlaDecodeParams& p, cudaStream_t stream, MlaDecodeLaunched* launched) {
    if (launched) *launched = MlaDecodeLaunched{false, p.n_splits};
    if (p.defer_merge_max_splits < 0 || p.defer_merge_max_splits > kMlaDecodeMaxDeferredSplits ||
        (p.defer_merge_max_splits > 0 && (p.n_q != 1 || !p.q_pos0_device)))
        return Status(StatusCode::InvalidArgument,
                      "launchMlaDecode: defer_merge_max_splits needs one query with q_pos0_device and at most " +
                          std::to_string(kMlaDecodeMaxDeferredSplits) + " splits");
    if (p.n_q == 0) return Status::ok();
    const int entry = p.d_latent + p.d_rope;
    const bool dynamic = p.q_pos0_device != nullptr;  // split length derived on the device
    if (p.n_q < 0 || p.n_heads <= 0 || p.d_latent <= 0 || p.d_rope < 0 || p.q_pos0 < 0 || p.n_splits < 1 ||
        p.n_splits > 8192 || (dynamic ? p.split_len != 0 : (p.split_len <= 0 || p.split_len % kTile != 0)))
        return Status(StatusCode::InvalidArgument, "launchMlaDecode: bad sizes or plan");
    if (!dynamic && static_cast<int64_t>(p.n_splits) * p.split_len < p.q_pos0 + p.n_q)
        return Status(StatusCode::InvalidArgument, "launchMlaDecode: the splits do not cover the context");
    if (p.d_latent % 2 || p.d_rope % 2 || entry % 8 || p.d_latent > kMaxLatent || entry > kMaxEntry ||
        p.cache.entry_dim != entry)
        return Status(StatusCode::Unsupported,
                      "launchMlaDecode: need even dims, kv_lora_rank + rope a multiple of 8, "
                      "kv_lora_rank <= 512 and cache entry == kv_lora_rank + rope");
    if (!p.q_lat || !p.q_pe || !p.cache.layer_base || !p.cache.block_table || p.cache.block_size <= 0 || !p.partial_o ||
        !p.partial_ml || !p.out || !aligned(p.cache.layer_base, 16) || !aligned(p.partial_o, 8))
        return Status(StatusCode::InvalidArgument, "launchMlaDecode: missing or misaligned pointer");
    if (p.n_q > 65535 || ceilDiv(p.n_heads, kHeadsPerBlock) > 65535 ||
        static_cast<int64_t>(p.n_q) * p.n_heads > 0x7fffffff)
        return Status(StatusCode::InvalidArgument, "launchMlaDecode: too many query tokens for one launch");

    bool mma = false, sliced = false;
    switch (p.kernel) {
    case MlaDecodeKernel::Simt: break;
    case MlaDecodeKernel::TensorCore:
        if (!mlaDecodeMmaSupports(p))
            return Status(StatusCode::Unsupported,
                          "launchMlaDecode: the tensor-core kernel needs kv_lora_rank 512, rope 64 and aligned "
                          "q/out pointers with even strides");
        mma = true;
        break;
    case MlaDecodeKernel::TensorCoreSliced:
        if (p.sliced_variant < -1 || p.sliced_variant >= kMlaDecodeSlicedVariants)
            return Status(StatusCode::InvalidArgument, "launchMlaDecode: sliced_variant must be -1 (default) or 0.." +
                                                           std::to_string(kMlaDecodeSlicedVariants - 1));
        if (!mlaDecodeSlicedSupports(p))
            return Status(StatusCode::Unsupported,
                          "launchMlaDecode: the sliced tensor-core kernel needs kv_lora_rank 512, rope 64, aligned "
                          "q/out/workspace pointers with even strides and an sm_90 GPU");
        sliced = true;
        break;
    case MlaDecodeKernel::Auto: {
        // The sliced kernel is faster where the context is short (kMlaDecodeSlicedMaxContext).
        const int64_t bound = dynamic ? p.context_bound : p.q_pos0 + p.n_q;
        const bool shortContext = bound > 0 && bound <= kMlaDecodeSlicedMaxContext;
        const EnvDecode env = envDecode();
        const bool wantSliced = env == EnvDecode::Sliced || (env == EnvDecode::Default && shortContext);
        if (p.merge_counters && wantSliced && mlaDecodeSlicedSupports(p))
            sliced = true;
        else
            mma = p.merge_counters && mlaDecodeMmaSupports(p) && env != EnvDecode::Simt;
        break;
    }
    }
    if (sliced) {  // merges the splits itself unless it defers
        int nSplits = p.n_splits;
        DSV2_RETURN_IF_ERROR(launchMlaDecodeSliced(p, stream, &nSplits));
        if (launched) *launched = MlaDecodeLaunched{p.defer_merge_max_splits > 0, nSplits};
        return Status::ok();
    }
    if (mma) return launchMlaDecodeMma(p, stream);  // merges the splits itself
    DSV2_RETURN_IF_ERROR(launchMlaDecodeSimt(p, stream));

    const dim3 combineGrid(static_cast<unsigned>(p.n_q * p.n_heads),
                           static_cast<unsigned>(ceilDiv(p.d_latent, kCombineCols)));
    DSV2_CUDA_CHECK(launchPdl(mlaDecodeCombineKernel, combineGrid, dim3(kCombineWarps * kWarpSize),
                              sizeof(float) * static_cast<size_t>(p.n_splits), stream, p));
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
