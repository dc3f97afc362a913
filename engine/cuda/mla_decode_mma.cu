// MLA decode on tensor cores (mla_decode.h): one block per (context split, query, 16 query heads).
//
// Per 64-position tile of the paged cache, held once in shared memory (bf16 [64, 576]):
//   S [16 heads, 64 positions] = Q [16, 576] · Kᵀ      K = the tile's rows (all 576 dims)
//   online softmax over S (fp32; running max m and sum l per head)
//   O [16, 512] = diag(α) · O + P [16, 64] · V [64, 512]   V = the first 512 dims of the same rows
// with mma.sync.m16n8k16 (bf16 inputs, fp32 accumulation): M = the 16 heads (rows past n_heads
// are zeros), N = positions (S) or latent dims (O), K = entry dims (S) or positions (O).
//
// Precision. q_lat (fp32) enters as two bf16 operands, hi = bf16(q) and lo = bf16(q − hi), and
// S = hi·K + lo·K: what is lost is |q − hi − lo| <= 2^-9·|q − hi| <= 2^-18·|q|, so the scores
// match fp32 to ~1e-5 relative (the cache and q_pe are bf16 already: exact; the rope k-steps skip
// the lo product, which is 0). The probabilities P are rounded to bf16 (as FlashAttention and
// FlashMLA do) and the row sums l add up the rounded values, so O is an exactly normalised mean of
// V under weights perturbed by <= 2^-8 relative each: |ΔO| <= 2^-8 · max_j |v_j − o|, in practice
// ~1e-3, below the bf16 rounding of o_lat itself (2^-8 relative). Scores are scaled by
// softmax_scale·log2(e) in fp32 and exponentiated with exp2; the partial max goes out in the
// natural-log units the combine (and the CUDA-core kernel) use.
//
// Work split (8 warps, 256 threads):
//  - scores: warp w takes K chunk kc = w % 4 (9 k-steps = 144 dims) and position half nh = w / 4
//    (32 positions = 4 n-tiles). Its Q fragments (9 k-steps × hi/lo × 4 registers = 72) are loaded
//    from global memory once and stay in registers; the K fragments come from shared memory by
//    ldmatrix. The four K chunks' partial scores meet in shared memory (fp32).
//  - softmax: thread t owns head row t / 16 and 4 of its 64 positions; a row's 16 threads are one
//    half-warp, so row max and sum are 4 shuffles.
//  - O: warp w owns latent dims [64w, 64w + 64) = 8 n-tiles (32 fp32 accumulators per thread); P
//    (bf16, shared memory) is the A operand, V the B operand through ldmatrix.trans.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"), with
// g = lane / 4 and t = lane % 4; each .b32 register holds two bf16, the lower column (A) or row
// (B) index in the low 16 bits:
//   A (16×16, row): a0 = (row g, cols 2t, 2t+1)    a1 = (row g+8, cols 2t, 2t+1)
//                   a2 = (row g, cols 2t+8, 2t+9)  a3 = (row g+8, cols 2t+8, 2t+9)
//   B (16×8, col):  b0 = (rows k = 2t, 2t+1; col n = g)   b1 = (rows k = 2t+8, 2t+9; col n = g)
//   C (16×8, f32):  c0, c1 = (row g, cols 2t, 2t+1)      c2, c3 = (row g+8, cols 2t, 2t+1)
// ldmatrix.m8n8.x4.b16 (PTX ISA, "ldmatrix"): lanes 8i..8i+7 give the 8 row addresses (16 bytes
// each) of matrix i; register i of lane l then holds row l/4, elements 2(l%4), 2(l%4)+1 of matrix i;
// with .trans, elements [2(l%4)][l/4] and [2(l%4)+1][l/4] (the transpose).
//  - A from a row-major [16][K] array (Q would be; P is): lane l addresses row (l%8) + 8·((l/8)%2),
//    column 8·(l/16): matrices = (rows 0-7, cols 0-7), (rows 8-15, cols 0-7), (rows 0-7, cols 8-15),
//    (rows 8-15, cols 8-15) = a0, a1, a2, a3.
//  - B of S = Q·Kᵀ (k = entry dim, n = position) from the tile stored [position][dim]: a stored
//    row is one n with 8 consecutive k, so the plain load gives (n = l/4; k = 2(l%4), +1) = b0/b1.
//    Lane l addresses position (l%8) + 8·(l/16), dim 8·((l/8)%2): matrices = (pos 0-7, dims 0-7),
//    (pos 0-7, dims 8-15), (pos 8-15, dims 0-7), (pos 8-15, dims 8-15) = b0, b1 of n-tile 0 and
//    b0, b1 of n-tile 1.
//  - B of O = P·V (k = position, n = latent dim) from the same [position][dim] tile: a stored row
//    is one k with 8 consecutive n, so .trans gives (k = 2(l%4), +1; n = l/4) = b0/b1. Lane l
//    addresses position (l%8) + 8·((l/8)%2), dim 8·(l/16): matrices = (pos 0-7, dims 0-7),
//    (pos 8-15, dims 0-7), (pos 0-7, dims 8-15), (pos 8-15, dims 8-15) = b0, b1 of n-tile 0 and
//    b0, b1 of n-tile 1.
// Shared rows are padded to 584 bf16 (1168 B ≡ 16 mod 128) and 72 (144 B ≡ 16 mod 128): the 8 rows
// of one 8×8 matrix fall in 8 different 16-byte bank groups, so ldmatrix has no bank conflicts.
//
// The cache tiles stream in by cp.async (16 bytes, L2 only), two stages: tile i + 1 loads while
// tile i is computed; positions past the split's end are zero-filled (never read from the cache).
//
// Merge of the splits in the same launch (issue 9: the separate combine kernel cost ~6 µs a layer,
// mostly launch and ramp). Blocks run in clusters of 8 consecutive splits (sm_90 thread block
// clusters, gang-scheduled on one GPC):
//  1. each block puts its O [16, 512] (fp32, relative to its running max) and (m, l) per head into
//     its own shared memory (the cache stages, free by then), then cluster barrier;
//  2. block r of the cluster merges latent columns [64r, 64r + 64) of all 8 blocks through
//     distributed shared memory (ranks added in a fixed order), then a second barrier so that no
//     block leaves while another still reads its shared memory;
//  3. one cluster (used <= 8 splits: every context up to 8 splits' worth): block r writes its
//     columns of o_lat, normalised. Several clusters: block r writes its columns of the cluster's
//     partial (O, m, l) to partial_o, fences, and bumps the arrival counter of (query, head
//     group, r); the block that arrives last merges column slice r of every cluster in cluster
//     order (deterministic) and writes o_lat, then puts the counter back to 0 for the next launch
//     (or graph replay). The slices are merged by 8 blocks in parallel, so even 16 clusters (16K
//     context on Lite) read only 64 KB per merging block.
// Whole clusters past the splits in use leave at once; inside a cluster in use, blocks past them
// take part in the barriers with an empty O (m = -inf, l = 0).
// With the position on the device the launch caps the split count at 8 × the clusters that can
// be resident at once (cudaOccupancyMaxActiveClusters, 16 on an H200: 128 splits): a 17th cluster
// would run as a second wave.
//
// PDL (pdl.cuh): everything the kernel reads (position, q, cache, counters) is written by earlier
// kernels, so it waits first and then lets the next kernel (the v up-projection, which prefetches
// W_UV) start.
//
// Expected gain (not measured here, no GPU): the combine launch (5.9 µs under ncu at 1K on Lite)
// goes; the merge adds ~1-2 µs to this kernel (two cluster barriers, 32 KB of DSMEM reads per
// block, at 1K one cross-cluster round of 8 KB per block); PDL hides ~1-2 µs of launch and ramp.

#include <cooperative_groups.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "cuda/cluster_launch.h"
#include "cuda/cuda_check.h"
#include "cuda/mla_decode_common.cuh"
#include "cuda/mma_ptx.cuh"
#include "cuda/pdl.cuh"
#include "cuda/per_device_cache.h"

namespace dsv2::cuda::mla_decode_detail {
namespace {

using namespace ptx;  // cp.async, ldmatrix, mma (mma_ptx.cuh)

namespace cg = cooperative_groups;

constexpr int kLatent = 512;
constexpr int kRope = 64;
constexpr int kEntry = kLatent + kRope;  // 576
constexpr int kHeads = 16;               // M of one MMA tile
constexpr int kTilePos = 64;             // cache positions per tile
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kStages = 2;
constexpr int kRowStride = kEntry + 8;                            // bf16 per shared cache row (1168 B)
constexpr int kKSteps = kEntry / 16;                              // 36 k-steps of the score product
constexpr int kKChunks = 4;                                       // warps w and w + 4 share K chunk w % 4
constexpr int kKStepsPerChunk = kKSteps / kKChunks;               // 9
constexpr int kLatentKSteps = kLatent / 16;                       // k-steps past this are rope dims
constexpr int kPosPerHalf = kTilePos / 2;                         // 32 positions (4 n-tiles) per score warp
constexpr int kScoreStride = kTilePos + 8;                        // fp32 per partial-score row (288 B)
constexpr int kPStride = kTilePos + 8;                            // bf16 per probability row (144 B)
constexpr int kDimsPerWarp = kLatent / kWarps;                    // 64 latent dims (8 n-tiles) per O warp
constexpr int kOTiles = kDimsPerWarp / 8;                         // 8
constexpr int kPvKSteps = kTilePos / 16;                          // 4
constexpr int kChunksPerRow = kEntry * 2 / 16;                    // 72 sixteen-byte pieces per cache row
constexpr int kThreadsPerRow = kThreads / kTilePos;               // 4
constexpr int kChunksPerThread = kChunksPerRow / kThreadsPerRow;  // 18
constexpr int kMergeCols = kLatent / kMlaDecodeClusterBlocks;     // 64 latent columns per block in the merges
constexpr int kOStride = kLatent + 8;  // fp32 per row of a block's O in shared memory (float2 stores conflict-free)
constexpr float kLog2e = 1.4426950408889634f;

static_assert(kKSteps % kKChunks == 0 && kKChunks * 2 == kWarps, "score work split");
static_assert(kChunksPerRow % kThreadsPerRow == 0 && kThreads % kTilePos == 0, "tile load split");
static_assert(kThreads == kHeads * 16 && kTilePos == 16 * 4, "softmax: 16 threads × 4 positions per head row");
static_assert((kRowStride * 2) % 128 == 16 && (kPStride * 2) % 128 == 16, "ldmatrix rows must rotate banks");
static_assert((kScoreStride * 4) % 16 == 0 && (kRowStride * 2) % 16 == 0, "16-byte aligned rows");
static_assert(kThreads == kHeads * (kMergeCols / 4), "merge: 16 threads × 4 columns per head row");

struct Smem {
    bf16 kv[kStages][kTilePos][kRowStride];   // cache tiles [position][dim]       149,504 B
    float s[kKChunks][kHeads][kScoreStride];  // partial scores per K chunk         18,432 B
    bf16 p[kHeads][kPStride];                 // probabilities of the tile (bf16)    2,304 B
    float alpha[kHeads];                      // exp2(m_old − m_new) of the tile
    float l[kHeads];                          // running sums
    float mFinal[kHeads];                     // the block's (m, l) per head for the merge (log2 units)
    float lFinal[kHeads];
    int lastArrival;  // this block merges the clusters' partials
};
static_assert(offsetof(Smem, s) % 16 == 0 && offsetof(Smem, p) % 16 == 0, "aligned shared arrays");
// The block's O for the merge lives in the cache stages (free once the tiles are done).
static_assert(sizeof(float) * kHeads * kOStride <= sizeof(bf16) * kStages * kTilePos * kRowStride, "O fits the stages");

// Issues the cp.async of one tile: positions [t0, t0 + 64) into `stage`, zeros past `end`.
// Thread t copies 18 of the 72 sixteen-byte pieces of row t / 4 (pieces t % 4, t % 4 + 4, ...): one
// block-table lookup per thread; a warp's request covers 8 rows × 64 contiguous bytes.
__device__ __forceinline__ void loadTile(const MlaDecodeParams& p, bf16* stage, int64_t t0, int64_t end, int tid) {
    const int row = tid / kThreadsPerRow;
    const int sub = tid % kThreadsPerRow;
    const int64_t pos = t0 + row;
    const bool valid = pos < end;
    const bf16* src = valid ? cacheEntry(p.cache, pos) : p.cache.layer_base;  // any readable address
    const int bytes = valid ? 16 : 0;
    const uint32_t dst = smemAddr(stage + row * kRowStride);
#pragma unroll
    for (int i = 0; i < kChunksPerThread; ++i) {
        const int c = sub + kThreadsPerRow * i;
        cpAsync16(dst + c * 16, src + c * 8, bytes);
    }
}

// grid: (n_splits rounded up to 8, n_q, ceil(H / 16)) in clusters of (8, 1, 1); block: 256 threads;
// dynamic shared memory: sizeof(Smem).
__global__ void __launch_bounds__(kThreads, 1) mlaDecodeMmaKernel(MlaDecodeParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    extern __shared__ __align__(16) unsigned char smemRaw[];
    Smem& sm = *reinterpret_cast<Smem*>(smemRaw);
    cg::cluster_group cluster = cg::this_cluster();

    // Everything below reads what earlier kernels wrote (pdl.cuh rule 1); with tiles_before_wait
    // the cache tiles, the block table and the position were written two or more kernels back and
    // are complete already (mla_decode.h), so the first tiles load before the wait for q_lat.
    if (p.launch_next_early) pdlLaunchNext();  // the exception to pdl.cuh rule 3 (mla_decode.h)
    bool early = p.tiles_before_wait;
    if (!early) {
        pdlWaitForPrevious();
        if (!p.launch_next_early) pdlLaunchNext();
    }

    const int split = blockIdx.x;
    const int qi = blockIdx.y;
    const int h0 = blockIdx.z * kHeads;
    const SplitRange range = splitRange(p, qi, split);
    const int nClusters = static_cast<int>(ceilDiv(range.used, kMlaDecodeClusterBlocks));
    const int clusterIdx = split / kMlaDecodeClusterBlocks;
    // Clusters past the splits this query reaches leave before any load (most of them at short
    // contexts with q_pos0_device). Cluster-uniform: no barrier below waits for them.
    if (clusterIdx >= nClusters) {
        if (early) pdlWaitForPrevious();  // pdl.cuh rule 2
        return;
    }
    const bool hasWork = split < range.used;
    const int64_t begin = range.begin;
    const int64_t end = range.end;  // > begin where hasWork
    const int nTiles = hasWork ? static_cast<int>(ceilDiv(end - begin, kTilePos)) : 0;
    // The two tiles loaded before the wait must not hold a new entry of the kernel just before
    // (per block: no cluster barrier comes before the wait).
    if (early && hasWork && !earlyTilesWrittenBefore(p, begin, end, 2 * kTilePos)) {
        pdlWaitForPrevious();
        if (!p.launch_next_early) pdlLaunchNext();
        early = false;
    }

    const int tid = threadIdx.x;
    const int warp = tid / kWarpSize;
    const int lane = tid % kWarpSize;
    const int g = lane / 4;  // fragment row group
    const int t = lane % 4;  // thread in group

    // Two tiles in flight before anything else (commit groups G0, G1; either may be empty).
    if (nTiles > 0) loadTile(p, &sm.kv[0][0][0], begin, end, tid);
    cpAsyncCommit();
    if (nTiles > 1) loadTile(p, &sm.kv[1][0][0], begin + kTilePos, end, tid);
    cpAsyncCommit();
    if (early) {
        pdlWaitForPrevious();  // q_lat (the kernel just before) from here on
        if (!p.launch_next_early) pdlLaunchNext();
    }

    // Q as A fragments of this warp's K chunk, straight from global memory while the tiles load.
    // Register r of k-step i holds head row g + 8·(r % 2), dims k0 + 2t + 8·(r / 2), +1 (layout A).
    const int kc = warp % kKChunks;
    const int nh = warp / kKChunks;
    uint32_t qHi[kKStepsPerChunk][4];
    uint32_t qLo[kKStepsPerChunk][4];
#pragma unroll
    for (int i = 0; i < kKStepsPerChunk; ++i) {
        const int ks = kc * kKStepsPerChunk + i;
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int head = h0 + g + 8 * (r % 2);
            const int d = ks * 16 + 2 * t + 8 * (r / 2);
            qHi[i][r] = 0u;
            qLo[i][r] = 0u;
            if (head >= p.n_heads) continue;
            if (ks < kLatentKSteps) {
                const float2 q = *reinterpret_cast<const float2*>(p.q_lat + qi * p.q_lat_token_stride +
                                                                  head * p.q_lat_head_stride + d);
                const __nv_bfloat162 hi = __floats2bfloat162_rn(q.x, q.y);
                const float2 hiF = __bfloat1622float2(hi);
                qHi[i][r] = bitsOf(hi);
                qLo[i][r] = bitsOf(__floats2bfloat162_rn(q.x - hiF.x, q.y - hiF.y));  // exact differences
            } else {
                qHi[i][r] = *reinterpret_cast<const uint32_t*>(p.q_pe + qi * p.q_pe_token_stride +
                                                               head * p.q_pe_head_stride + (d - kLatent));
            }
        }
    }

    const float scaleLog2 = p.softmax_scale * kLog2e;
    // Softmax ownership: head row sr, positions sc .. sc + 3 of each tile.
    const int sr = tid / 16;
    const int sc = (tid % 16) * 4;
    float mRun = -INFINITY;  // running max of scale·log2(e)·s (identical in the row's 16 threads)
    float lRun = 0.0f;       // running Σ bf16(exp2(s − mRun))

    float o[kOTiles][4];
#pragma unroll
    for (int j = 0; j < kOTiles; ++j)
#pragma unroll
        for (int c = 0; c < 4; ++c) o[j][c] = 0.0f;

    for (int tile = 0; tile < nTiles; ++tile) {
        const int64_t t0 = begin + static_cast<int64_t>(tile) * kTilePos;
        const bf16* kv = &sm.kv[tile % kStages][0][0];
        cpAsyncWait<1>();  // G_tile done (only G_{tile+1} may still be pending)
        __syncthreads();   // (A) the tile is visible to every warp

        // 1. Partial scores of K chunk kc, positions [32·nh, 32·nh + 32): hi and lo products in
        //    separate accumulators (independent MMA chains), added when written out.
        {
            float sHi[4][4], sLo[4][4];
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int c = 0; c < 4; ++c) sHi[j][c] = sLo[j][c] = 0.0f;
#pragma unroll
            for (int i = 0; i < kKStepsPerChunk; ++i) {
                const int ks = kc * kKStepsPerChunk + i;
                const bool withLo = ks < kLatentKSteps;  // warp-uniform
#pragma unroll
                for (int jp = 0; jp < 2; ++jp) {
                    const int pos = nh * kPosPerHalf + jp * 16 + (lane % 8) + 8 * (lane / 16);
                    const int dim = ks * 16 + 8 * ((lane / 8) % 2);
                    uint32_t b[4];
                    ldsm4(b, smemAddr(kv + pos * kRowStride + dim));
                    mma16816(sHi[2 * jp], qHi[i], b[0], b[1]);
                    mma16816(sHi[2 * jp + 1], qHi[i], b[2], b[3]);
                    if (withLo) {
                        mma16816(sLo[2 * jp], qLo[i], b[0], b[1]);
                        mma16816(sLo[2 * jp + 1], qLo[i], b[2], b[3]);
                    }
                }
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int col = nh * kPosPerHalf + j * 8 + 2 * t;
                *reinterpret_cast<float2*>(&sm.s[kc][g][col]) =
                    make_float2(sHi[j][0] + sLo[j][0], sHi[j][1] + sLo[j][1]);
                *reinterpret_cast<float2*>(&sm.s[kc][g + 8][col]) =
                    make_float2(sHi[j][2] + sLo[j][2], sHi[j][3] + sLo[j][3]);
            }
        }
        __syncthreads();  // (B) partial scores complete

        // 2. Online softmax of row sr over the tile (K chunks added in a fixed order).
        {
            float4 acc = *reinterpret_cast<const float4*>(&sm.s[0][sr][sc]);
#pragma unroll
            for (int k = 1; k < kKChunks; ++k) {
                const float4 part = *reinterpret_cast<const float4*>(&sm.s[k][sr][sc]);
                acc.x += part.x;
                acc.y += part.y;
                acc.z += part.z;
                acc.w += part.w;
            }
            float s[4] = {acc.x * scaleLog2, acc.y * scaleLog2, acc.z * scaleLog2, acc.w * scaleLog2};
#pragma unroll
            for (int k = 0; k < 4; ++k)
                if (t0 + sc + k >= end) s[k] = -INFINITY;
            float tileMax = fmaxf(fmaxf(s[0], s[1]), fmaxf(s[2], s[3]));
#pragma unroll
            for (int off = 8; off > 0; off >>= 1) tileMax = fmaxf(tileMax, __shfl_xor_sync(kFullMask, tileMax, off));
            // Position t0 < end is valid, so tileMax and mNew are finite; exp2(-inf) = 0 on the
            // first tile and for masked positions.
            const float mNew = fmaxf(mRun, tileMax);
            const float alpha = exp2f(mRun - mNew);
            __nv_bfloat162 pb[2];
            pb[0] = __floats2bfloat162_rn(exp2f(s[0] - mNew), exp2f(s[1] - mNew));
            pb[1] = __floats2bfloat162_rn(exp2f(s[2] - mNew), exp2f(s[3] - mNew));
            const float2 p01 = __bfloat1622float2(pb[0]);
            const float2 p23 = __bfloat1622float2(pb[1]);
            float psum = (p01.x + p01.y) + (p23.x + p23.y);  // the rounded values P·V will use
#pragma unroll
            for (int off = 8; off > 0; off >>= 1) psum += __shfl_xor_sync(kFullMask, psum, off);
            lRun = lRun * alpha + psum;
            mRun = mNew;
            uint2 packed;
            packed.x = bitsOf(pb[0]);
            packed.y = bitsOf(pb[1]);
            *reinterpret_cast<uint2*>(&sm.p[sr][sc]) = packed;
            if (tid % 16 == 0) {
                sm.alpha[sr] = alpha;
                sm.l[sr] = lRun;
            }
        }
        __syncthreads();  // (C) P, α and l of the tile complete

        // 3. O = diag(α)·O + P·V for latent dims [64·warp, 64·warp + 64).
        {
            const float aLo = sm.alpha[g];
            const float aHi = sm.alpha[g + 8];
#pragma unroll
            for (int j = 0; j < kOTiles; ++j) {
                o[j][0] *= aLo;
                o[j][1] *= aLo;
                o[j][2] *= aHi;
                o[j][3] *= aHi;
            }
#pragma unroll
            for (int kk = 0; kk < kPvKSteps; ++kk) {
                uint32_t a[4];
                ldsm4(a, smemAddr(&sm.p[(lane % 8) + 8 * ((lane / 8) % 2)][kk * 16 + 8 * (lane / 16)]));
                const int pos = kk * 16 + (lane % 8) + 8 * ((lane / 8) % 2);
#pragma unroll
                for (int jp = 0; jp < kOTiles / 2; ++jp) {
                    const int dim = warp * kDimsPerWarp + jp * 16 + 8 * (lane / 16);
                    uint32_t b[4];
                    ldsm4Trans(b, smemAddr(kv + pos * kRowStride + dim));
                    mma16816(o[2 * jp], a, b[0], b[1]);
                    mma16816(o[2 * jp + 1], a, b[2], b[3]);
                }
            }
        }
        __syncthreads();  // (D) every warp is done with this stage, P and the partial scores

        if (tile + kStages < nTiles) loadTile(p, &sm.kv[tile % kStages][0][0], t0 + kStages * kTilePos, end, tid);
        cpAsyncCommit();  // G_{tile+2}, possibly empty: the wait above counts groups
    }
    cpAsyncWait<0>();  // nothing is pending (the last groups are empty); leave no copy in flight
    __syncthreads();   // every warp is past its last read of the stages: they now hold O

    // 4. Merge (see the header). This block's O and (m, l): an empty block has O = 0, m = -inf, l = 0.
    float* oShared = reinterpret_cast<float*>(&sm.kv[0][0][0]);  // [16][kOStride]
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int row = g + 8 * half;
#pragma unroll
        for (int j = 0; j < kOTiles; ++j) {
            const int d = warp * kDimsPerWarp + j * 8 + 2 * t;
            *reinterpret_cast<float2*>(oShared + row * kOStride + d) = make_float2(o[j][2 * half], o[j][2 * half + 1]);
        }
    }
    if (tid % 16 == 0) {
        sm.mFinal[sr] = mRun;
        sm.lFinal[sr] = lRun;
    }
    cluster.sync();  // (E) every block's O, m, l written (release/acquire at cluster scope)

    // Block r merges head row mh, columns mc .. mc + 3 of the 8 blocks, in rank order.
    const int rank = static_cast<int>(cluster.block_rank());
    const int mh = tid / 16;
    const int mc = rank * kMergeCols + (tid % 16) * 4;
    float mk[kMlaDecodeClusterBlocks], lk[kMlaDecodeClusterBlocks];
    float4 ok[kMlaDecodeClusterBlocks];
#pragma unroll
    for (int k = 0; k < kMlaDecodeClusterBlocks; ++k) {  // all remote loads issued before any use
        Smem* other = cluster.map_shared_rank(&sm, k);
        mk[k] = other->mFinal[mh];
        lk[k] = other->lFinal[mh];
        ok[k] =
            *reinterpret_cast<const float4*>(reinterpret_cast<const float*>(&other->kv[0][0][0]) + mh * kOStride + mc);
    }
    cluster.sync();  // (F) no block leaves or reuses its shared memory while another still reads it

    // Rank 0 of a cluster in use has work, so the cluster max is finite; empty ranks weigh 0.
    float mMax = mk[0];
#pragma unroll
    for (int k = 1; k < kMlaDecodeClusterBlocks; ++k) mMax = fmaxf(mMax, mk[k]);
    float lSum = 0.0f;
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
    for (int k = 0; k < kMlaDecodeClusterBlocks; ++k) {
        const float w = exp2f(mk[k] - mMax);
        lSum = fmaf(w, lk[k], lSum);
        acc.x = fmaf(w, ok[k].x, acc.x);
        acc.y = fmaf(w, ok[k].y, acc.y);
        acc.z = fmaf(w, ok[k].z, acc.z);
        acc.w = fmaf(w, ok[k].w, acc.w);
    }
    const int head = h0 + mh;
    const bool headActive = head < p.n_heads;
    bf16* out = p.out + qi * p.out_token_stride + head * p.out_head_stride + mc;
    auto writeOut = [&](const float4& v, float l) {
        const float inv = 1.0f / l;  // >= 1 before the inverse: the maximum's own term is exp2(0)
        *reinterpret_cast<__nv_bfloat162*>(out) = __floats2bfloat162_rn(v.x * inv, v.y * inv);
        *reinterpret_cast<__nv_bfloat162*>(out + 2) = __floats2bfloat162_rn(v.z * inv, v.w * inv);
    };
    if (nClusters == 1) {  // the whole context in this cluster: the normalised output
        if (headActive) writeOut(acc, lSum);
        return;
    }

    // Several clusters: this block's column slice of the cluster's partial goes to the partial_o
    // row of (query, head), which has n_splits slots of 512 floats: O of cluster c in slot c, and
    // from slot ceil(n_splits / 8) on (free: there are at most that many clusters, and n_splits
    // >= 9 here) the (m, l) pair of every (cluster c, slice r) at pair index 8c + r, so each
    // merging block reads only what its own slice's writers wrote. partial_ml is not used.
    const int64_t rowSlots = (static_cast<int64_t>(qi) * p.n_heads + head) * p.n_splits;
    float* rowMl = p.partial_o + (rowSlots + ceilDiv(p.n_splits, kMlaDecodeClusterBlocks)) * kLatent;
    if (headActive) {
        *reinterpret_cast<float4*>(p.partial_o + (rowSlots + clusterIdx) * kLatent + mc) = acc;
        if (tid % 16 == 0) {
            float* ml = rowMl + (static_cast<int64_t>(clusterIdx) * kMlaDecodeClusterBlocks + rank) * 2;
            ml[0] = mMax;
            ml[1] = lSum;
        }
    }
    __threadfence();  // the partial is visible GPU-wide before the arrival is counted
    __syncthreads();
    if (tid == 0) {
        int* counter =
            p.merge_counters + (static_cast<int64_t>(qi) * gridDim.z + blockIdx.z) * kMlaDecodeClusterBlocks + rank;
        const bool last = atomicAdd(counter, 1) == nClusters - 1;
        if (last) {
            atomicExch(counter, 0);  // every arrival of this launch is counted: ready for the next
            __threadfence();         // acquire: the other clusters' partials are read after this
        }
        sm.lastArrival = last ? 1 : 0;
    }
    __syncthreads();
    if (!sm.lastArrival || !headActive) return;

    // The last arrival merges slice `rank` of every cluster, in cluster order. L2 reads (__ldcg):
    // other SMs wrote these lines.
    const float* ml = rowMl + rank * 2;
    float gMax = -INFINITY;
    for (int c = 0; c < nClusters; ++c) gMax = fmaxf(gMax, __ldcg(ml + c * kMlaDecodeClusterBlocks * 2));
    float gSum = 0.0f;
    float4 gAcc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int c = 0; c < nClusters; ++c) {
        const float w = exp2f(__ldcg(ml + c * kMlaDecodeClusterBlocks * 2) - gMax);
        gSum = fmaf(w, __ldcg(ml + c * kMlaDecodeClusterBlocks * 2 + 1), gSum);
        const float4 v = __ldcg(reinterpret_cast<const float4*>(p.partial_o + (rowSlots + c) * kLatent + mc));
        gAcc.x = fmaf(w, v.x, gAcc.x);
        gAcc.y = fmaf(w, v.y, gAcc.y);
        gAcc.z = fmaf(w, v.z, gAcc.z);
        gAcc.w = fmaf(w, v.w, gAcc.w);
    }
    writeOut(gAcc, gSum);
#endif
}

bool aligned(const void* ptr, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

// Per device, once: whether the kernel runs here (sm_90 code, cluster launch, the shared memory)
// and how many of its clusters are resident at once (0: unknown).
struct DeviceFit {
    bool runs = false;
    int activeClusters = 0;
};
DeviceFit deviceFit() {
    static PerDeviceCache<> fits;
    const int fit = fits.getForCurrentDevice([](int dev) {
        return clusterKernelFit(reinterpret_cast<const void*>(mlaDecodeMmaKernel), dev, kMlaDecodeClusterBlocks,
                                kThreads, sizeof(Smem));
    });
    return fit == 0 ? DeviceFit{} : DeviceFit{true, fit - 1};
}

}  // namespace

bool mlaDecodeMmaSupports(const MlaDecodeParams& p) {
    if (p.d_latent != kLatent || p.d_rope != kRope || p.cache.entry_dim != kEntry) return false;
    if (!aligned(p.q_lat, 8) || p.q_lat_token_stride % 2 || p.q_lat_head_stride % 2) return false;
    if (!aligned(p.q_pe, 4) || p.q_pe_token_stride % 2 || p.q_pe_head_stride % 2) return false;
    if (!aligned(p.out, 4) || p.out_token_stride % 2 || p.out_head_stride % 2) return false;
    if (!aligned(p.partial_o, 16)) return false;
    return deviceFit().runs;
}

Status launchMlaDecodeMma(const MlaDecodeParams& p, cudaStream_t stream) {
    constexpr size_t smem = sizeof(Smem);
    const DeviceFit fit = deviceFit();
    if (!fit.runs) return Status(StatusCode::Unsupported, "launchMlaDecodeMma: needs an sm_90 GPU with cluster launch");
    if (!p.merge_counters)
        return Status(StatusCode::InvalidArgument,
                      "launchMlaDecodeMma: merge_counters missing (zeroed int32 [n_q, ceil(H / 16), 8])");
    MlaDecodeParams q = p;
    const int headGroups = static_cast<int>(ceilDiv(p.n_heads, kHeads));
    if (p.q_pos0_device && fit.activeClusters > 0) {
        // The kernel derives the split length from n_splits: fewer, longer splits rather than a
        // second wave of clusters (the workspace, sized for p.n_splits, holds fewer too).
        const int64_t perQuery = fit.activeClusters / (static_cast<int64_t>(p.n_q) * headGroups);
        const int64_t cap = std::max<int64_t>(1, perQuery) * kMlaDecodeClusterBlocks;
        q.n_splits = static_cast<int>(std::min<int64_t>(p.n_splits, cap));
    }
    const dim3 grid(static_cast<unsigned>(ceilDiv(q.n_splits, kMlaDecodeClusterBlocks) * kMlaDecodeClusterBlocks),
                    static_cast<unsigned>(q.n_q), static_cast<unsigned>(headGroups));
    const cudaLaunchAttribute cluster = clusterLaunchAttribute(kMlaDecodeClusterBlocks);
    DSV2_CUDA_CHECK(launchPdlWith(&cluster, 1u, mlaDecodeMmaKernel, grid, dim3(kThreads), smem, stream, q));
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda::mla_decode_detail
