// Grouped expert GEMMs on Hopper's warpgroup MMA (wgmma, sm_90a): the same results as
// moe_grouped_gemm.cu's mma.sync kernel (same bf16 rounding points, same contract), at a higher
// fraction of the tensor-core peak. Compiled for sm_90a only (sources.cmake).
//
// Swapped operands. An expert owns ~200 rows at a 2K-token Lite prefill (12288 rows over 64
// experts, uneven), so an M tile of 128 tokens would pad ~1/3 of the work. wgmma's M is fixed at
// 64 but its N runs from 8 to 256, so the roles are swapped: the MMA's M is the weight rows (128
// per tile: two consumer warpgroups × 64) and its N the expert's token rows, rounded up to 16
// (kNStep) with one instantiation per N. An expert with R rows gets ceil(R / 256) tiles of equal
// size, so at most 15 padding rows per tile, and each weight slice is read once per expert (the
// kernel is nearly memory-bound at these row counts: Lite's gate|up weights are 738 MB a layer).
// Both operands stay K-contiguous in shared memory ("TN"): D[w][t] = Σ_k W[w][k] · X[t][k].
//
// Warp roles (384 threads): warps 0-7 are two consumer warpgroups, warps 8-11 the producer. The
// producer copies 16-byte pieces with cp.async (per-expert weight pointers and per-row predicates
// need no tensor maps, no host state), writes them in the 128-byte-swizzle layout wgmma reads
// (piece c of row r lands at 16·(c ^ (r % 8)) in the row; every tile 1024-byte aligned), and
// signals a stage's "full" mbarrier with cp.async.mbarrier.arrive.noinc (one arrival per producer
// thread once its copies have landed). Consumers wait on "full", fence the async proxy (cp.async
// writes are generic-proxy writes; wgmma reads through the async proxy), issue 4 wgmma k16 steps
// per 64-wide k-stage, keep one stage's wgmmas in flight, and release the stage before it on its
// "empty" mbarrier (one arrival per consumer warp). kStages = 4 stages of 48 KB.
//
// Loaders: besides that cp.async producer, a TMA one (one thread, cp.async.bulk.tensor with
// per-expert tensor maps passed as kernel parameters; same shared layout, same bits). Which GEMM
// uses which: useTmaLoader (measured; DSV2_WGMMA_LOADER=cpasync|tma overrides).
//
// Persistent CTAs (one per SM) walk the tile list t = blockIdx.x + i·gridDim.x, computed on the
// device from the expert offsets: m-tile counts per expert (0 for null weights: another GPU's
// experts are skipped), a block prefix sum in shared memory, then per tile a binary search. Tile
// t is m-tile t / nTilesN, weight slice t % nTilesN: the CTAs in flight work on a few experts, so
// the token rows they share and any expert split in two m-tiles come from L2. Producer and
// consumers walk the same list; the producer runs up to 4 stages ahead, across tile boundaries,
// so the next tile's loads overlap this tile's epilogue.
//
// gate|up + SwiGLU: a tile is 64 SwiGLU columns j. Weight-tile row r = 64q + 16w + 8h + g
// (warpgroup q, warp w, h = 0 gate / 1 up, g = 0..7) holds gate|up row (h ? inter : 0) + j with
// j = 64·nb + 32q + 8w + g, so a consumer thread's accumulator rows 16w + g and 16w + g + 8
// (wgmma's D fragment) are the gate and the up value of the same j and token, and act = bf16(silu(
// bf16(g)) · bf16(u)) is computed in registers (device_utils.cuh's silu, as swiglu.cu). down: a
// tile is 128 output columns, fp32 out. Epilogue: each warp transposes its 8 (gate|up) or 16
// (down) columns × 8 tokens through a 640-byte shared staging slot, so global stores are 16-byte
// pieces of token rows (8-byte ones where the output stride does not allow 16).

#include <cuda.h>  // CUtensorMap (the encode function is fetched from the driver at run time)
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <unordered_map>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/mma_ptx.cuh"
#include "cuda/moe_grouped_gemm.h"
#include "cuda/moe_grouped_gemm_wgmma.h"
#include "cuda/per_device_cache.h"
#include "cuda/wgmma_ptx.cuh"

namespace dsv2::cuda {
namespace {

constexpr int kConsumerWarps = 8;
constexpr int kProducerThreads = 128;  // one warpgroup: 8 weight + up to 16 token rows per thread
constexpr int kConsumerThreads = kConsumerWarps * kWarpSize;
constexpr int kThreads = kConsumerThreads + kProducerThreads;
constexpr int kBM = 128;    // weight rows per tile (two warpgroups × 64)
constexpr int kBK = 64;     // k per stage: one 128-byte swizzle row
constexpr int kMaxN = 256;  // token rows per tile (wgmma's largest N)
constexpr int kNStep = 16;  // token rows are padded to this (one kernel body per multiple)
constexpr int kStages = 4;
constexpr int kGateCols = kBM / 2;  // SwiGLU columns per gate|up tile
constexpr int kATileBytes = kBM * kBK * 2;
constexpr int kBTileBytes = kMaxN * kBK * 2;
constexpr int kStagingFloatsPerToken = 20;  // down staging row: 16 columns + 4 (rotates banks by 8 per token pair)
constexpr int kStagingBytes = 8 * kStagingFloatsPerToken * 4;  // 640; gate|up uses 32 tokens × 8 bf16 = 512
// Shared-memory layout from the 1024-byte aligned base.
constexpr int kOffA = 0;
constexpr int kOffB = kOffA + kStages * kATileBytes;
constexpr int kOffStaging = kOffB + kStages * kBTileBytes;
constexpr int kOffBars = kOffStaging + kConsumerWarps * kStagingBytes;     // full[kStages], empty[kStages]
constexpr int kOffOffsets = kOffBars + 2 * kStages * 8;                    // expert offsets [n_experts + 1]
constexpr int kOffPrefix = kOffOffsets + (kMoeGroupedMaxExperts + 1) * 4;  // m-tile prefix [n_experts + 1]
constexpr int kOffScan = kOffPrefix + (kMoeGroupedMaxExperts + 1) * 4;     // per-warp scan totals
constexpr size_t kSmemBytes = kOffScan + kConsumerWarps * 4 + 1024;        // + alignment slack

static_assert(kBM == 2 * 64 && kThreads == 384, "two consumer warpgroups (wgmma M = 64 each) + a producer warpgroup");
// Registers: 168 per thread (384 threads, one block per SM) hold a consumer's 128 accumulators at
// N = 256 without spills (ptxas -v); setmaxnreg (fewer for the producer) made the producer spill.
static_assert(kMoeGroupedMaxExperts <= kConsumerWarps * kWarpSize, "one consumer thread per expert in the scan");
static_assert(kBM * (kBK / 8) % kProducerThreads == 0 && kProducerThreads % 8 == 0, "producer pieces");
static_assert(kSmemBytes <= 227 * 1024, "shared memory per block on sm_90");
static_assert(kOffB % 1024 == 0 && kATileBytes % 1024 == 0 && kBTileBytes % 1024 == 0, "swizzle atoms");

constexpr int kAPieces = kBM * (kBK / 8) / kProducerThreads;    // 8 weight rows per producer thread
constexpr int kBPieces = kMaxN * (kBK / 8) / kProducerThreads;  // up to 16 token rows
constexpr int kRowsPerPass = kProducerThreads / (kBK / 8);      // 16: a thread's rows are r0 + 16i
static_assert(kRowsPerPass % 8 == 0, "a producer thread's rows share r % 8 (one swizzle offset)");

template <int kMaxExperts>
struct WgmmaParamsT {
    const int32_t* offsets;
    const bf16* in;
    int64_t in_stride;
    void* out;
    int64_t out_stride;
    int n_experts;
    int k;
    int inter;
    int n;
    int nTilesN;
    int vecStores;  // 1: output rows allow 16-byte stores
    const bf16* w[kMaxExperts];
};
// cp.async loader: any expert count up to the engine's limit.
using WgmmaParams = WgmmaParamsT<kMoeGroupedMaxExperts>;
static_assert(sizeof(WgmmaParams) <= 4000, "kernel parameters must fit the 4 KB parameter space");

// TMA loader: one tensor map per expert (weights; built once per weight pointer and shape on the
// host, cached) and two over the token rows (boxes of 64 and 16 rows: a tile's N = 64a + 16b rows
// take a + b copies a stage). The maps travel as __grid_constant__ parameters (CUDA >= 12.1 allows
// 32 KB of them), so there is no device-side state and CUDA graphs capture them by value. 192
// experts cover V2 (160); more fall back to the cp.async loader.
constexpr int kTmaMaxExperts = 192;
struct WgmmaTmaParams : WgmmaParamsT<kTmaMaxExperts> {
    int gateUpOneBox;  // gate|up maps are the 4-D view (one box a stage), else 8-row boxes
    CUtensorMap x64;   // tokens [max_rows][k], box 64 k × 64 rows
    CUtensorMap x16;   // the same, box 64 k × 16 rows
    // gate|up: the 4-D view {k, g 0..7, h gate/up, j / 8} of [2·inter][k], box {64, 8, 2, 8}: one
    // box is a whole weight tile in its row order r = 16·(j / 8 % 8) + 8h + g (the strides are
    // not increasing; where the driver refuses that, [2·inter][k] with boxes of 8 rows, 16 a
    // stage: slower, 1 KB boxes). down: [n][k], box 64 k × 128 rows.
    CUtensorMap wMap[kTmaMaxExperts];
};
static_assert(sizeof(WgmmaTmaParams) <= 32764, "kernel parameters must fit the 32 KB parameter space (CUDA 12.1+)");
constexpr int kTmaXBoxBig = 64;
constexpr int kTmaXBoxSmall = kNStep;
constexpr int kTmaGateUpBoxRows = 8;

struct Tile {
    int expert;
    int rowBegin;
    int rows;  // 1..kMaxN
    int nb;    // weight slice
};

// Tile t of the list (header comment). sPre[e] = m-tiles of experts < e.
__device__ __forceinline__ Tile tileAt(int t, int nTilesN, int nExperts, const int* sOff, const int* sPre) {
    const int m = t / nTilesN;
    Tile tl;
    tl.nb = t - m * nTilesN;
    int lo = 0, hi = nExperts;  // sPre[lo] <= m < sPre[hi]
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (sPre[mid] <= m) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    const int i = m - sPre[lo];
    const int mt = sPre[lo + 1] - sPre[lo];
    const int rowsE = sOff[lo + 1] - sOff[lo];
    const int base = rowsE / mt;
    const int rem = rowsE % mt;
    tl.expert = lo;
    tl.rows = base + (i < rem ? 1 : 0);
    tl.rowBegin = sOff[lo] + i * base + min(i, rem);
    return tl;
}

// The weight row that weight-tile row r (0..127) of slice nb holds, or -1 past the matrix.
template <bool kGateUp, typename P>
__device__ __forceinline__ int weightRow(const P& p, int nb, int r) {
    if constexpr (kGateUp) {
        const int j = nb * kGateCols + 32 * (r / 64) + 8 * ((r % 64) / 16) + r % 8;
        if (j >= p.inter) return -1;
        return (r % 16) < 8 ? j : p.inter + j;
    } else {
        const int row = nb * kBM + r;
        return row < p.n ? row : -1;
    }
}

__device__ __forceinline__ uint32_t fullBar(uint32_t base, uint32_t s) { return base + kOffBars + 8 * s; }
__device__ __forceinline__ uint32_t emptyBar(uint32_t base, uint32_t s) { return base + kOffBars + 8 * (kStages + s); }

// The device code exists for sm_90a only; the host pass (no __CUDA_ARCH__) sees it too, so that
// nothing reads as unused there.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || !defined(__CUDA_ARCH__)
#define DSV2_WGMMA_DEVICE_CODE 1
#else
#define DSV2_WGMMA_DEVICE_CODE 0
#endif

#if DSV2_WGMMA_DEVICE_CODE

// Producer (128 threads): thread pt copies piece pt % 8 of weight rows r0 + 16i and token rows
// r0 + 16i, r0 = pt / 8; all its rows have r % 8 = r0 % 8, so its swizzled offset in a row is fixed.
template <bool kGateUp>
__device__ void produce(const WgmmaParams& p, uint32_t base, int total, const int* sOff, const int* sPre) {
    using namespace ptx;
    using namespace ptx90a;
    const int pt = static_cast<int>(threadIdx.x) - kConsumerThreads;
    const int piece = pt % 8;
    const int r0 = pt / 8;
    const uint32_t swz = static_cast<uint32_t>(r0 * 128 + ((piece ^ (r0 % 8)) << 4));
    const int kTiles = static_cast<int>(ceilDiv(p.k, kBK));
    uint32_t it = 0;
    for (int t = static_cast<int>(blockIdx.x); t < total; t += static_cast<int>(gridDim.x)) {
        const Tile tl = tileAt(t, p.nTilesN, p.n_experts, sOff, sPre);
        const bf16* weight = p.w[tl.expert];
        const int nTile = (tl.rows + kNStep - 1) / kNStep * kNStep;
        const bf16* aSrc[kAPieces];
        uint32_t aValid = 0;
#pragma unroll
        for (int i = 0; i < kAPieces; ++i) {
            const int wr = weightRow<kGateUp>(p, tl.nb, r0 + kRowsPerPass * i);
            aSrc[i] = wr >= 0 ? weight + static_cast<int64_t>(wr) * p.k + piece * 8 : weight;
            aValid |= wr >= 0 ? 1u << i : 0u;
        }
        const bf16* bSrc = p.in + static_cast<int64_t>(tl.rowBegin + r0) * p.in_stride + piece * 8;
        const int64_t bStep = kRowsPerPass * p.in_stride;
        for (int kt = 0; kt < kTiles; ++kt, ++it) {
            const uint32_t s = it % kStages;
            mbarWait(emptyBar(base, s), ((it / kStages) & 1u) ^ 1u);  // fresh barrier: returns at once
            const int k0 = kt * kBK;
            const bool kOk = k0 + piece * 8 < p.k;  // K % 8 == 0: a piece is all in or all out
            const uint32_t aDst = base + kOffA + s * kATileBytes + swz;
#pragma unroll
            for (int i = 0; i < kAPieces; ++i) {
                const bool ok = kOk && (aValid >> i & 1u);
                cpAsync16(aDst + i * kRowsPerPass * 128, ok ? aSrc[i] + k0 : weight, ok ? 16 : 0);
            }
            const uint32_t bDst = base + kOffB + s * kBTileBytes + swz;
#pragma unroll
            for (int i = 0; i < kBPieces; ++i) {
                const int r = r0 + kRowsPerPass * i;
                if (r < nTile) {  // rows in [rows, nTile) are the MMA's padding: zeros
                    const bool ok = kOk && r < tl.rows;
                    cpAsync16(bDst + i * kRowsPerPass * 128, ok ? bSrc + i * bStep + k0 : p.in, ok ? 16 : 0);
                }
            }
            cpAsyncArriveNoinc(fullBar(base, s));
        }
    }
    cpAsyncWaitAll();  // no copy may be in flight when the block exits
}

// TMA producer (one thread; the rest of the producer warpgroup has nothing to do). Per stage: one
// arrival with the stage's byte count on "full", then the copies, which complete_tx on it. Weight
// tile: gate|up takes 16 boxes of 8 rows (row block 8b of the tile is gate|up row weightRow(nb, 8b)
// onward; a block past inter is pointed past the matrix, 2·inter, so TMA writes zeros as the
// cp.async path does); down one box of 128 rows. Token tile: rows rowBegin .. rowBegin + nTile in
// boxes of 64 then 16. Rows in [rows, nTile) are the next expert's tokens here, not zeros: they
// only feed padding columns of D (D[w][t] depends on token row t alone), which are never stored.
template <bool kGateUp>
__device__ void produceTma(const WgmmaTmaParams& p, uint32_t base, int total, const int* sOff, const int* sPre) {
    using namespace ptx90a;
    if (threadIdx.x != kConsumerThreads) return;
    const uint64_t weightPolicy = l2EvictFirstPolicy();  // weights are read once; token tiles are re-read
    const int kTiles = static_cast<int>(ceilDiv(p.k, kBK));
    uint32_t it = 0;
    for (int t = static_cast<int>(blockIdx.x); t < total; t += static_cast<int>(gridDim.x)) {
        const Tile tl = tileAt(t, p.nTilesN, p.n_experts, sOff, sPre);
        const CUtensorMap* wMap = &p.wMap[tl.expert];
        const int nTile = (tl.rows + kNStep - 1) / kNStep * kNStep;
        const int nBig = nTile / kTmaXBoxBig;
        const int nSmall = (nTile % kTmaXBoxBig) / kTmaXBoxSmall;
        const uint32_t bytes = static_cast<uint32_t>(kATileBytes + nTile * 128);
        for (int kt = 0; kt < kTiles; ++kt, ++it) {
            const uint32_t s = it % kStages;
            mbarWait(emptyBar(base, s), ((it / kStages) & 1u) ^ 1u);  // fresh barrier: returns at once
            const uint32_t full = fullBar(base, s);
            mbarArriveExpectTx(full, bytes);
            const int k0 = kt * kBK;
            const uint32_t aDst = base + kOffA + s * kATileBytes;
            if constexpr (kGateUp) {
                if (p.gateUpOneBox) {
                    tmaLoad4dHint(aDst, wMap, full, k0, 0, 0, tl.nb * (kGateCols / 8), weightPolicy);
                } else {
#pragma unroll
                    for (int b = 0; b < kBM / kTmaGateUpBoxRows; ++b) {
                        const int wr = weightRow<true>(p, tl.nb, kTmaGateUpBoxRows * b);
                        tmaLoad2dHint(aDst + b * (kTmaGateUpBoxRows * 128), wMap, full, k0, wr >= 0 ? wr : 2 * p.inter,
                                      weightPolicy);
                    }
                }
            } else {
                tmaLoad2dHint(aDst, wMap, full, k0, tl.nb * kBM, weightPolicy);
            }
            uint32_t bDst = base + kOffB + s * kBTileBytes;
            int row = tl.rowBegin;
            for (int i = 0; i < nBig; ++i, row += kTmaXBoxBig, bDst += kTmaXBoxBig * 128)
                tmaLoad2d(bDst, &p.x64, full, k0, row);
            for (int i = 0; i < nSmall; ++i, row += kTmaXBoxSmall, bDst += kTmaXBoxSmall * 128)
                tmaLoad2d(bDst, &p.x16, full, k0, row);
        }
    }
}

// One tile for one consumer warp (of warpgroup q, warp wq in it): the k loop, then the epilogue.
template <int N, bool kGateUp, bool kTma, typename P>
__device__ __forceinline__ void consumeTile(const P& p, const Tile& tl, uint32_t base, uint32_t& it, int q, int wq,
                                            int lane, uint8_t* staging) {
    using namespace ptx90a;
    float acc[N / 2];
#pragma unroll
    for (int i = 0; i < N / 2; ++i) acc[i] = 0.0f;
    const int kTiles = static_cast<int>(ceilDiv(p.k, kBK));
    const uint32_t aBase = base + kOffA + static_cast<uint32_t>(q) * (64 * 128);
    for (int kt = 0; kt < kTiles; ++kt, ++it) {
        const uint32_t s = it % kStages;
        mbarWait(fullBar(base, s), (it / kStages) & 1u);
        if constexpr (!kTma) fenceProxyAsyncShared();  // TMA writes through the async proxy already
        wgmmaFence();
        const uint64_t da = sw128Desc(aBase + s * kATileBytes);
        const uint64_t db = sw128Desc(base + kOffB + s * kBTileBytes);
#pragma unroll
        for (int ks = 0; ks < kBK / 16; ++ks) Wgmma<N>::mma(acc, da + 2 * ks, db + 2 * ks, 1);  // +32 bytes per k16
        wgmmaCommit();
        if (kt > 0) {  // the previous stage's wgmmas are done: give it back to the producer
            wgmmaWait<1>();
            __syncwarp();
            if (lane == 0) mbarArrive(emptyBar(base, (it - 1) % kStages));
        }
    }
    wgmmaWait<0>();
    __syncwarp();
    if (lane == 0) mbarArrive(emptyBar(base, (it - 1) % kStages));

    const int g = lane / 4;
    const int t = lane % 4;
    if constexpr (kGateUp) {
        // Rounds of 4 column groups (32 tokens): lane (g, t) stages act[token 8c + 2t (+1)][j0 + g];
        // lane l then stores token 32·round + l's 8 columns (16 bytes).
        const int j0 = tl.nb * kGateCols + 32 * q + 8 * wq;
        bf16* stg = reinterpret_cast<bf16*>(staging);
        bf16* out = static_cast<bf16*>(p.out);
#pragma unroll
        for (int round = 0; round < (N / 8 + 3) / 4; ++round) {
#pragma unroll
            for (int cc = 0; cc < 4; ++cc) {
                const int c = 4 * round + cc;
                if (c < N / 8) {
                    const float g0 = toFloat(toBf16(acc[4 * c]));
                    const float g1 = toFloat(toBf16(acc[4 * c + 1]));
                    const float u0 = toFloat(toBf16(acc[4 * c + 2]));
                    const float u1 = toFloat(toBf16(acc[4 * c + 3]));
                    stg[(8 * cc + 2 * t) * 8 + g] = toBf16(silu(g0) * u0);
                    stg[(8 * cc + 2 * t + 1) * 8 + g] = toBf16(silu(g1) * u1);
                }
            }
            __syncwarp();
            const int token = 32 * round + lane;
            if (token < tl.rows && j0 < p.inter) {  // inter % 8 == 0: all 8 columns are in
                bf16* dst = out + static_cast<int64_t>(tl.rowBegin + token) * p.out_stride + j0;
                const uint4 v = *reinterpret_cast<const uint4*>(stg + lane * 8);
                if (p.vecStores) {
                    *reinterpret_cast<uint4*>(dst) = v;
                } else {  // out_stride even, base 4-byte aligned
                    uint32_t* d32 = reinterpret_cast<uint32_t*>(dst);
                    d32[0] = v.x;
                    d32[1] = v.y;
                    d32[2] = v.z;
                    d32[3] = v.w;
                }
            }
            __syncwarp();
        }
    } else {
        // Per column group c (8 tokens): lane (g, t) stages y[token 2t (+1)][col g (+8)]; lane l
        // then stores token 8c + l / 4, columns 4·(l % 4) .. +3 of the warp's 16.
        const int col0 = tl.nb * kBM + 64 * q + 16 * wq;
        float* stg = reinterpret_cast<float*>(staging);
        float* out = static_cast<float*>(p.out);
        const int myCol = col0 + 4 * (lane % 4);
#pragma unroll
        for (int c = 0; c < N / 8; ++c) {
            stg[(2 * t) * kStagingFloatsPerToken + g] = acc[4 * c];
            stg[(2 * t + 1) * kStagingFloatsPerToken + g] = acc[4 * c + 1];
            stg[(2 * t) * kStagingFloatsPerToken + g + 8] = acc[4 * c + 2];
            stg[(2 * t + 1) * kStagingFloatsPerToken + g + 8] = acc[4 * c + 3];
            __syncwarp();
            const int token = 8 * c + lane / 4;
            if (token < tl.rows && myCol < p.n) {  // n % 8 == 0: all 4 columns are in
                float* dst = out + static_cast<int64_t>(tl.rowBegin + token) * p.out_stride + myCol;
                const float4 v =
                    *reinterpret_cast<const float4*>(stg + (lane / 4) * kStagingFloatsPerToken + 4 * (lane % 4));
                if (p.vecStores) {
                    *reinterpret_cast<float4*>(dst) = v;
                } else {  // out_stride even, base 8-byte aligned
                    reinterpret_cast<float2*>(dst)[0] = make_float2(v.x, v.y);
                    reinterpret_cast<float2*>(dst)[1] = make_float2(v.z, v.w);
                }
            }
            __syncwarp();
        }
    }
}

template <bool kGateUp, bool kTma, typename P>
__device__ void consume(const P& p, uint32_t base, uint8_t* smem, int total, const int* sOff, const int* sPre) {
    const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
    const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
    const int q = warp / 4;
    const int wq = warp % 4;
    uint8_t* staging = smem + kOffStaging + warp * kStagingBytes;
    uint32_t it = 0;
    for (int t = static_cast<int>(blockIdx.x); t < total; t += static_cast<int>(gridDim.x)) {
        const Tile tl = tileAt(t, p.nTilesN, p.n_experts, sOff, sPre);
        switch ((tl.rows + kNStep - 1) / kNStep) {  // uniform over the block: every warp takes the same case
#define DSV2_WGMMA_CASE(j) \
    case j: consumeTile<(j)*kNStep, kGateUp, kTma>(p, tl, base, it, q, wq, lane, staging); break;
            DSV2_WGMMA_CASE(1)
            DSV2_WGMMA_CASE(2)
            DSV2_WGMMA_CASE(3)
            DSV2_WGMMA_CASE(4)
            DSV2_WGMMA_CASE(5)
            DSV2_WGMMA_CASE(6)
            DSV2_WGMMA_CASE(7)
            DSV2_WGMMA_CASE(8)
            DSV2_WGMMA_CASE(9)
            DSV2_WGMMA_CASE(10)
            DSV2_WGMMA_CASE(11)
            DSV2_WGMMA_CASE(12)
            DSV2_WGMMA_CASE(13)
            DSV2_WGMMA_CASE(14)
            DSV2_WGMMA_CASE(15)
            DSV2_WGMMA_CASE(16)
#undef DSV2_WGMMA_CASE
        default: __trap();  // rows are 1..kMaxN by construction
        }
    }
}

#endif  // DSV2_WGMMA_DEVICE_CODE

static_assert(kMaxN / kNStep == 16, "DSV2_WGMMA_CASE list covers 1..16");

// grid: one block per SM (persistent), kThreads threads, kSmemBytes dynamic shared memory.
template <bool kGateUp, bool kTma>
using KernelParamsOf = std::conditional_t<kTma, WgmmaTmaParams, WgmmaParams>;

template <bool kGateUp, bool kTma>
__global__ void __launch_bounds__(kThreads, 1)
    moeGroupedWgmmaKernel(const __grid_constant__ KernelParamsOf<kGateUp, kTma> p) {
#if DSV2_WGMMA_DEVICE_CODE
    using namespace ptx90a;
    extern __shared__ __align__(1024) uint8_t smemRaw[];
    const uint32_t rawAddr = ptx::smemAddr(smemRaw);
    const uint32_t pad = (1024u - rawAddr % 1024u) % 1024u;
    uint8_t* smem = smemRaw + pad;
    const uint32_t base = rawAddr + pad;
    int* sOff = reinterpret_cast<int*>(smem + kOffOffsets);
    int* sPre = reinterpret_cast<int*>(smem + kOffPrefix);
    int* sScan = reinterpret_cast<int*>(smem + kOffScan);
    const int tid = static_cast<int>(threadIdx.x);
    const int warp = tid / kWarpSize;
    const int lane = tid % kWarpSize;
    const int nExperts = p.n_experts;

    for (int e = tid; e <= nExperts; e += kThreads) sOff[e] = p.offsets[e];
    if (tid == 0) {
        for (uint32_t s = 0; s < kStages; ++s) {
            mbarInit(fullBar(base, s), kTma ? 1 : kProducerThreads);
            mbarInit(emptyBar(base, s), kConsumerWarps);
        }
        mbarInitFence();
    }
    __syncthreads();
    // m-tiles per expert (consumer thread e), inclusive scan per warp, then across warps.
    int count = 0, incl = 0;
    if (warp < kConsumerWarps) {
        const int e = tid;
        if (e < nExperts && p.w[e]) {
            const int rows = sOff[e + 1] - sOff[e];
            count = (rows + kMaxN - 1) / kMaxN;
        }
        incl = count;
#pragma unroll
        for (int d = 1; d < kWarpSize; d <<= 1) {
            const int v = __shfl_up_sync(kFullMask, incl, d);
            if (lane >= d) incl += v;
        }
        if (lane == kWarpSize - 1) sScan[warp] = incl;
    }
    __syncthreads();
    if (warp < kConsumerWarps) {
        int before = 0;
        for (int w = 0; w < warp; ++w) before += sScan[w];
        if (tid < nExperts) sPre[tid + 1] = before + incl;
        if (tid == 0) sPre[0] = 0;
    }
    __syncthreads();
    const int total = sPre[nExperts] * p.nTilesN;

    if (warp >= kConsumerWarps) {
        if constexpr (kTma) {
            produceTma<kGateUp>(p, base, total, sOff, sPre);
        } else {
            produce<kGateUp>(p, base, total, sOff, sPre);
        }
    } else {
        consume<kGateUp, kTma>(p, base, smem, total, sOff, sPre);
    }
#else
    (void)p;
    __trap();  // never launched: the host checks for sm_90a first
#endif
}

bool aligned(const void* ptr, unsigned bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

// ---- TMA tensor maps (host) ----

// cuTensorMapEncodeTiled through the runtime's driver entry point: no link against libcuda.
PFN_cuTensorMapEncodeTiled_v12000 tensorMapEncoder() {
    static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
        void* f = nullptr;
        cudaDriverEntryPointQueryResult q{};
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) !=
                cudaSuccess ||
            q != cudaDriverEntryPointSuccess) {
            (void)cudaGetLastError();
            f = nullptr;
        }
        return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
    }();
    return fn;
}

// A row-major bf16 matrix [rows][cols] with a row stride of `stride` elements, read in boxes of 64
// columns (one 128-byte swizzle row) × boxRows rows in the 128B-swizzle layout the wgmma
// descriptors expect; reads out of bounds give zeros. False where the driver refuses the shape.
bool encodeRows(CUtensorMap* map, const void* ptr, int64_t cols, int64_t rows, int64_t stride, int boxRows) {
    const auto encode = tensorMapEncoder();
    if (!encode || !aligned(ptr, 16) || cols <= 0 || rows <= 0 || (stride * 2) % 16 != 0) return false;
    const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
    const cuuint64_t strides[1] = {static_cast<cuuint64_t>(stride) * 2};
    const cuuint32_t box[2] = {static_cast<cuuint32_t>(kBK), static_cast<cuuint32_t>(boxRows)};
    const cuuint32_t elementStrides[2] = {1, 1};
    return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(ptr), dims, strides, box, elementStrides,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// The gate|up 4-D view (WgmmaTmaParams::wMap): dims {k, 8, 2, inter / 8}, byte strides {2k,
// 2k·inter, 16k}, box {64, 8, 2, 8}.
bool encodeGateUp4d(CUtensorMap* map, const void* ptr, int64_t k, int64_t inter) {
    const auto encode = tensorMapEncoder();
    if (!encode || !aligned(ptr, 16) || inter % 8 != 0) return false;
    const cuuint64_t dims[4] = {static_cast<cuuint64_t>(k), 8, 2, static_cast<cuuint64_t>(inter / 8)};
    const cuuint64_t strides[3] = {static_cast<cuuint64_t>(k) * 2, static_cast<cuuint64_t>(k * inter) * 2,
                                   static_cast<cuuint64_t>(k) * 16};
    const cuuint32_t box[4] = {static_cast<cuuint32_t>(kBK), 8, 2, static_cast<cuuint32_t>(kGateCols / 8)};
    const cuuint32_t elementStrides[4] = {1, 1, 1, 1};
    return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, const_cast<void*>(ptr), dims, strides, box, elementStrides,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// Weight maps, built once per (pointer, shape): a map holds only the address, shape and box, so
// it is valid on whichever device owns the pointer, and the weights never move after load. 26
// Lite layers × 64 experts × 2 GEMMs is ~3.3K maps (128 bytes each).
struct WeightMapKey {
    const void* ptr;
    int kind;  // 0 down, 1 gate|up 8-row boxes, 2 gate|up 4-D
    int k;
    int rows;
    bool operator==(const WeightMapKey& o) const {
        return ptr == o.ptr && kind == o.kind && k == o.k && rows == o.rows;
    }
};
struct WeightMapKeyHash {
    size_t operator()(const WeightMapKey& key) const {
        const auto h = reinterpret_cast<uintptr_t>(key.ptr) * 0x9E3779B97F4A7C15ull;
        return static_cast<size_t>(h ^ (static_cast<uint64_t>(key.k) << 32) ^ static_cast<uint64_t>(key.rows) ^
                                   (static_cast<uint64_t>(key.kind) << 60));
    }
};

// Fills kp's maps for launch a; false (use the cp.async loader) where TMA cannot take it.
bool buildTmaMaps(WgmmaTmaParams& kp, const WgmmaGroupedArgs& a) {
    if (a.n_experts > kTmaMaxExperts) return false;
    if (!encodeRows(&kp.x64, a.in, a.k, a.max_rows, a.in_stride, kTmaXBoxBig) ||
        !encodeRows(&kp.x16, a.in, a.k, a.max_rows, a.in_stride, kTmaXBoxSmall))
        return false;
    static std::mutex mutex;
    static std::unordered_map<WeightMapKey, CUtensorMap, WeightMapKeyHash> cache;
    const int rows = a.gate_up ? 2 * a.inter : a.n;
    const int boxRows = a.gate_up ? kTmaGateUpBoxRows : kBM;
    std::lock_guard<std::mutex> lock(mutex);
    // The first present expert decides the gate|up form (the driver accepts the 4-D view for all
    // or none: same shape); a weight it fails for falls back to cp.async as a whole.
    int kind = a.gate_up ? 2 : 0;
    kp.gateUpOneBox = 0;
    for (int e = 0; e < a.n_experts; ++e) {
        const bf16* w = a.expert_weights[e];
        if (!w) continue;  // another GPU's expert: no tiles
        WeightMapKey key{w, kind, a.k, rows};
        auto found = cache.find(key);
        if (found == cache.end()) {
            CUtensorMap map;
            bool ok = kind == 2 ? encodeGateUp4d(&map, w, a.k, a.inter) : encodeRows(&map, w, a.k, rows, a.k, boxRows);
            if (!ok && kind == 2) {
                kind = 1;  // from here on (and from the first expert: kind is set before any map is stored)
                key.kind = kind;
                ok = encodeRows(&map, w, a.k, rows, a.k, boxRows);
                for (int before = 0; before < e; ++before)
                    if (a.expert_weights[before]) return false;  // mixed forms: cannot happen for one shape
            }
            if (!ok) return false;
            found = cache.emplace(key, map).first;
        }
        kp.wMap[e] = found->second;
    }
    kp.gateUpOneBox = kind == 2 ? 1 : 0;
    return true;
}

// Which GEMMs load through TMA: both by default. Measured on the H200 (grouped_gemm_bench,
// cp.async -> TMA, us): Lite 2K gate|up 434 -> 289, down 196 -> 152; Lite 1K 293 -> 223 and
// 149 -> 124; V2 2K 1679 -> 1354 and 886 -> 745 (gate|up with 16 boxes of 8 rows a stage instead
// of the 4-D view had lost: Lite 1K 294 -> 349). DSV2_WGMMA_LOADER=cpasync: cp.async for both (A/B);
// =down: TMA for down only. Read at every launch (one getenv per GEMM) so that the bench and the
// tests can switch it.
bool useTmaLoader(bool gateUp) {
    const char* env = std::getenv("DSV2_WGMMA_LOADER");
    if (env && std::strcmp(env, "cpasync") == 0) return false;
    if (env && std::strcmp(env, "down") == 0) return !gateUp;
    return true;
}

template <typename P>
void fillCommonParams(P& kp, const WgmmaGroupedArgs& a) {
    kp.offsets = a.expert_offsets;
    kp.in = a.in;
    kp.in_stride = a.in_stride;
    kp.out = a.out;
    kp.out_stride = a.out_stride;
    kp.n_experts = a.n_experts;
    kp.k = a.k;
    kp.inter = a.inter;
    kp.n = a.n;
    kp.nTilesN = static_cast<int>(a.gate_up ? ceilDiv(a.n, kGateCols) : ceilDiv(a.n, kBM));
    // 16-byte stores need 16-byte aligned output rows: 8 bf16 / 4 floats per stride step.
    kp.vecStores = aligned(a.out, 16) && a.out_stride % (a.gate_up ? 8 : 4) == 0 ? 1 : 0;
    for (int e = 0; e < a.n_experts; ++e) kp.w[e] = a.expert_weights[e];
}

template <bool kGateUp, bool kTma>
Status launchTyped(const KernelParamsOf<kGateUp, kTma>& kp, int grid, cudaStream_t stream) {
    auto* kernel = moeGroupedWgmmaKernel<kGateUp, kTma>;
    DSV2_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmemBytes)));
    kernel<<<grid, kThreads, kSmemBytes, stream>>>(kp);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace

bool wgmmaGroupedSupportedOnCurrentDevice() {
    static PerDeviceCache<> runs;
    return runs.getForCurrentDevice([](int dev) {
        int major = 0, minor = 0;
        cudaFuncAttributes attr{};
        // sm_90a code runs on compute capability 9.0 only; the attribute query fails where no image fits.
        return cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
               cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess && major == 9 &&
               minor == 0 && cudaFuncGetAttributes(&attr, moeGroupedWgmmaKernel<true, false>) == cudaSuccess &&
               cudaFuncGetAttributes(&attr, moeGroupedWgmmaKernel<false, false>) == cudaSuccess &&
               cudaFuncGetAttributes(&attr, moeGroupedWgmmaKernel<true, true>) == cudaSuccess &&
               cudaFuncGetAttributes(&attr, moeGroupedWgmmaKernel<false, true>) == cudaSuccess;
    }) != 0;
}

Status launchMoeGroupedWgmma(const WgmmaGroupedArgs& a, cudaStream_t stream) {
    if (!wgmmaGroupedSupportedOnCurrentDevice())
        return Status(StatusCode::Unsupported,
                      "grouped MoE GEMM (wgmma): needs a compute capability 9.0 GPU (H100/H200) and this build's "
                      "sm_90a code; use the mma.sync kernel (DSV2_MOE_GEMM=mma)");
    if (a.n_experts <= 0 || a.n_experts > kMoeGroupedMaxExperts || a.k <= 0 || a.k % 8 != 0 || a.n <= 0 ||
        a.n % 8 != 0 || (a.gate_up && a.inter != a.n) || a.max_rows < 0 || !a.expert_offsets || !a.expert_weights ||
        !a.in || !a.out || a.in_stride % 8 != 0 || !aligned(a.in, 16))
        return Status(StatusCode::InvalidArgument, "launchMoeGroupedWgmma: parameters not validated by the caller");
    if (a.max_rows == 0) return Status::ok();
    int dev = 0, sms = 0;
    DSV2_CUDA_CHECK(cudaGetDevice(&dev));
    DSV2_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    const int nTilesN = static_cast<int>(a.gate_up ? ceilDiv(a.n, kGateCols) : ceilDiv(a.n, kBM));
    // More blocks than tiles would only exit: at most (m-tiles bound) × slices.
    const int64_t maxTiles = (ceilDiv(a.max_rows, kMaxN) + a.n_experts) * static_cast<int64_t>(nTilesN);
    const int grid = static_cast<int>(std::min<int64_t>(sms, maxTiles));

    if (useTmaLoader(a.gate_up)) {
        // ~26 KB: static per thread rather than on the stack at every launch.
        thread_local WgmmaTmaParams tp;
        tp = WgmmaTmaParams{};
        fillCommonParams(tp, a);
        if (buildTmaMaps(tp, a))
            return a.gate_up ? launchTyped<true, true>(tp, grid, stream) : launchTyped<false, true>(tp, grid, stream);
    }
    WgmmaParams kp{};
    fillCommonParams(kp, a);
    return a.gate_up ? launchTyped<true, false>(kp, grid, stream) : launchTyped<false, false>(kp, grid, stream);
}

}  // namespace dsv2::cuda
