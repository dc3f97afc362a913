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

#include <cstddef>
#include <cstring>

#include "cuda/cuda_check.h"
#include "cuda/mla_decode_common.cuh"

namespace dsv2::cuda::mla_decode_detail {
namespace {

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
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

static_assert(kKSteps % kKChunks == 0 && kKChunks * 2 == kWarps, "score work split");
static_assert(kChunksPerRow % kThreadsPerRow == 0 && kThreads % kTilePos == 0, "tile load split");
static_assert(kThreads == kHeads * 16 && kTilePos == 16 * 4, "softmax: 16 threads × 4 positions per head row");
static_assert((kRowStride * 2) % 128 == 16 && (kPStride * 2) % 128 == 16, "ldmatrix rows must rotate banks");
static_assert((kScoreStride * 4) % 16 == 0 && (kRowStride * 2) % 16 == 0, "16-byte aligned rows");

struct Smem {
    bf16 kv[kStages][kTilePos][kRowStride];   // cache tiles [position][dim]       149,504 B
    float s[kKChunks][kHeads][kScoreStride];  // partial scores per K chunk         18,432 B
    bf16 p[kHeads][kPStride];                 // probabilities of the tile (bf16)    2,304 B
    float alpha[kHeads];                      // exp2(m_old − m_new) of the tile
    float l[kHeads];                          // running sums
};
static_assert(offsetof(Smem, s) % 16 == 0 && offsetof(Smem, p) % 16 == 0, "aligned shared arrays");

__device__ __forceinline__ uint32_t smemAddr(const void* ptr) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}

// 16 bytes global -> shared, L2 only; srcBytes 0 writes zeros and reads nothing.
__device__ __forceinline__ void cpAsync16(uint32_t dst, const void* src, int srcBytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(srcBytes) : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void cpAsyncWait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

__device__ __forceinline__ void ldsm4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}
__device__ __forceinline__ void ldsm4Trans(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

// c += a · b for one m16n8k16 tile (bf16 in, fp32 accumulate).
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t bitsOf(__nv_bfloat162 v) {
    uint32_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

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

// grid: (n_splits, n_q, ceil(H / 16)); block: 256 threads; dynamic shared memory: sizeof(Smem).
__global__ void __launch_bounds__(kThreads, 1) mlaDecodeMmaKernel(MlaDecodeParams p) {
    extern __shared__ __align__(16) unsigned char smemRaw[];
    Smem& sm = *reinterpret_cast<Smem*>(smemRaw);

    const int split = blockIdx.x;
    const int qi = blockIdx.y;
    const int h0 = blockIdx.z * kHeads;
    // Splits this query does not reach return before any load (most of them at short contexts
    // with q_pos0_device); the combine reads only [0, used).
    const SplitRange range = splitRange(p, qi, split);
    if (split >= range.used) return;
    const int64_t begin = range.begin;
    const int64_t end = range.end;  // > begin
    const int nTiles = static_cast<int>(ceilDiv(end - begin, kTilePos));

    const int tid = threadIdx.x;
    const int warp = tid / kWarpSize;
    const int lane = tid % kWarpSize;
    const int g = lane / 4;  // fragment row group
    const int t = lane % 4;  // thread in group

    // Two tiles in flight before anything else (commit groups G0, G1; G1 may be empty).
    loadTile(p, &sm.kv[0][0][0], begin, end, tid);
    cpAsyncCommit();
    if (nTiles > 1) loadTile(p, &sm.kv[1][0][0], begin + kTilePos, end, tid);
    cpAsyncCommit();

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

    // Output. sm.l holds the final sums (written in the last tile, before sync (C)).
    const int64_t slotBase = (static_cast<int64_t>(qi) * p.n_heads + h0) * p.n_splits + split;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int row = g + 8 * half;
        const int head = h0 + row;
        if (head >= p.n_heads) continue;
        if (range.used == 1) {                   // the whole context in this split: the normalised output, no combine
            const float inv = 1.0f / sm.l[row];  // >= 1: the maximum's own term is exp2(0)
            bf16* out = p.out + qi * p.out_token_stride + head * p.out_head_stride;
#pragma unroll
            for (int j = 0; j < kOTiles; ++j) {
                const int d = warp * kDimsPerWarp + j * 8 + 2 * t;
                *reinterpret_cast<__nv_bfloat162*>(out + d) =
                    __floats2bfloat162_rn(o[j][2 * half] * inv, o[j][2 * half + 1] * inv);
            }
        } else {
            float* po = p.partial_o + (slotBase + static_cast<int64_t>(row) * p.n_splits) * kLatent;
#pragma unroll
            for (int j = 0; j < kOTiles; ++j) {
                const int d = warp * kDimsPerWarp + j * 8 + 2 * t;
                *reinterpret_cast<float2*>(po + d) = make_float2(o[j][2 * half], o[j][2 * half + 1]);
            }
        }
    }
    if (range.used > 1 && tid % 16 == 0 && h0 + sr < p.n_heads) {
        const int64_t slot = slotBase + static_cast<int64_t>(sr) * p.n_splits;
        p.partial_ml[slot * 2] = mRun * kLn2;  // natural-log units, as the combine expects
        p.partial_ml[slot * 2 + 1] = lRun;
    }
}

bool aligned(const void* ptr, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

}  // namespace

bool mlaDecodeMmaSupports(const MlaDecodeParams& p) {
    if (p.d_latent != kLatent || p.d_rope != kRope || p.cache.entry_dim != kEntry) return false;
    if (!aligned(p.q_lat, 8) || p.q_lat_token_stride % 2 || p.q_lat_head_stride % 2) return false;
    if (!aligned(p.q_pe, 4) || p.q_pe_token_stride % 2 || p.q_pe_head_stride % 2) return false;
    if (!aligned(p.out, 4) || p.out_token_stride % 2 || p.out_head_stride % 2) return false;
    int device = 0, optin = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
        (void)cudaGetLastError();  // not left behind for the next launch check
        return false;
    }
    return static_cast<size_t>(optin) >= sizeof(Smem);
}

Status launchMlaDecodeMma(const MlaDecodeParams& p, cudaStream_t stream) {
    constexpr size_t smem = sizeof(Smem);
    DSV2_CUDA_CHECK(
        cudaFuncSetAttribute(mlaDecodeMmaKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    const dim3 grid(static_cast<unsigned>(p.n_splits), static_cast<unsigned>(p.n_q),
                    static_cast<unsigned>(ceilDiv(p.n_heads, kHeads)));
    mlaDecodeMmaKernel<<<grid, kThreads, smem, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda::mla_decode_detail
