// MLA prefill attention on tensor cores (mla_prefill.h), FlashAttention-2 style, for the
// DeepSeek-V2 head dims (qk = 128 nope + 64 rope, v = 128). One block per (head, query tile) of
// 64 queries (4 warps) or 128 (8 warps, as FlashAttention-2 for head dim 192: each K/V tile serves
// twice the queries); warp w owns query rows 16w .. 16w + 15 of the tile. Per 64-key tile:
//   S [16, 64]  = Q [16, 192] · Kᵀ        K row = [k_nope (this head) | k_pe (shared by all heads)]
//   online softmax over S in registers (fp32; running max m and sum l per row, log2 units)
//   O [16, 128] = diag(α) · O + P [16, 64] · V [64, 128]
// with mma.sync.m16n8k16 (bf16 in, fp32 accumulate). The warp's Q fragments (12 k-steps × 4
// registers) are loaded once and stay in registers; S never leaves registers: the C fragments of
// two adjacent S n-tiles are, rounded to bf16, exactly the A fragment of one P·V k-step (FA2's
// register reuse), so there is no [tokens × tokens] matrix anywhere, not even in shared memory.
//
// Numerics match the GEMM form (mla_attention.cpp): scores are fp32 sums of bf16 products (as the
// cuBLAS score GEMMs), P is rounded to bf16 before P·V (as the GEMM form's bf16 probabilities and
// FlashAttention), O accumulates in fp32 and is written as bf16. The row sums l add up the
// rounded P, so O is an exactly normalised mean of V under the rounded weights. Scores are scaled
// by softmax_scale·log2(e) and exponentiated with exp2 (the max is subtracted first).
//
// Fragment layouts and ldmatrix addressing: see the header comment of mla_decode_mma.cu (same
// conventions: g = lane / 4, t = lane % 4; C c0, c1 = row g, cols 2t, 2t+1; c2, c3 = row g + 8).
//  - Q (A operand, row-major [query][dim]): lane l addresses row (l%8) + 8·((l/8)%2), dim
//    8·(l/16) of the 16×16 block: registers = a0..a3.
//  - K (B of S, stored [key][dim]): lane l addresses key (l%8) + 8·(l/16), dim 8·((l/8)%2):
//    registers = b0, b1 of n-tile (keys 0-7) and b0, b1 of n-tile (keys 8-15).
//  - V (B of O, stored [key][dim], ldmatrix.trans): lane l addresses key (l%8) + 8·((l/8)%2), dim
//    8·(l/16): registers = b0, b1 of n-tile (dims 0-7) and b0, b1 of n-tile (dims 8-15).
//  - P: S n-tiles 2j, 2j+1 (keys 16j .. 16j + 15) give the A fragment of P·V k-step j:
//    a0 = (c0, c1) of 2j, a1 = (c2, c3) of 2j, a2 = (c0, c1) of 2j+1, a3 = (c2, c3) of 2j+1.
// Shared rows are padded to 200 bf16 (400 B ≡ 16 mod 128) and 136 bf16 (272 B ≡ 16 mod 128): the
// 8 rows of one 8×8 matrix fall in 8 different 16-byte bank groups (conflict-free ldmatrix).
//
// K/V tiles stream in by cp.async (16 bytes, L2 only), two stages: tile i + 1 loads while tile i
// is computed; keys past the block's last visible key are zero-filled, never read.
// Causality: the block's queries see keys [0, q_pos0 + last query]; a tile is masked element by
// element only where it crosses a warp's diagonal, and a warp skips tiles wholly past its rows
// (possible when q_pos0 is not a multiple of 64). Blocks run longest first (query tiles in
// reverse order, all heads of a tile together), so the causal triangle's short blocks fill the
// tail of the last wave.
//
// Shared memory 111,616 B (64 queries: two blocks an SM) or 137,216 B (128: one), so 8 warps an
// SM either way. Q stays in shared memory and is re-read by ldmatrix per tile: held in registers
// (48 more a thread) it spills at the 255-register cap.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/mla_prefill.h"
#include "cuda/mma_ptx.cuh"

namespace dsv2::cuda {
namespace {

using namespace ptx;

constexpr int kNope = 128;
constexpr int kRope = 64;
constexpr int kDqk = kNope + kRope;  // 192
constexpr int kDv = 128;
constexpr int kRowsPerWarp = 16;  // M of one MMA tile; a block of W warps takes 16·W queries
constexpr int kKTile = 64;        // keys per tile
constexpr int kStages = 2;
constexpr int kQkStride = kDqk + 8;     // bf16 per shared Q/K row (400 B)
constexpr int kVStride = kDv + 8;       // bf16 per shared V row (272 B)
constexpr int kQkSteps = kDqk / 16;     // 12 k-steps of S = Q·Kᵀ
constexpr int kSTiles = kKTile / 8;     // 8 n-tiles of S
constexpr int kPvSteps = kKTile / 16;   // 4 k-steps of O = P·V
constexpr int kOTiles = kDv / 8;        // 16 n-tiles of O
constexpr int kQkChunks = kDqk / 8;     // 16-byte pieces per Q/K row (24)
constexpr int kNopeChunks = kNope / 8;  // of which k_nope (16); the rest k_pe
constexpr int kVChunks = kDv / 8;       // 16-byte pieces per V row (16)
constexpr float kLog2e = 1.4426950408889634f;

static_assert((kQkStride * 2) % 128 == 16 && (kVStride * 2) % 128 == 16, "ldmatrix rows must rotate banks");

template <int kWarps>
struct Tile {
    static constexpr int kThreads = kWarps * kWarpSize;
    static constexpr int kQTile = kWarps * kRowsPerWarp;  // queries per block
    static_assert((kQTile * kQkChunks) % kThreads == 0 && (kKTile * kQkChunks) % kThreads == 0 &&
                      (kKTile * kVChunks) % kThreads == 0,
                  "tile loads split evenly over the threads");
    struct Smem {
        bf16 q[kQTile][kQkStride];           //  25,600 B per 64 queries
        bf16 k[kStages][kKTile][kQkStride];  //  51,200 B
        bf16 v[kStages][kKTile][kVStride];   //  34,816 B
    };
    static_assert(sizeof(Smem) % 16 == 0 && offsetof(Smem, k) % 16 == 0 && offsetof(Smem, v) % 16 == 0,
                  "16-byte aligned shared arrays");
};

__device__ __forceinline__ uint32_t packBf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

// The value a packed bf16 pair holds, as the sum the row total needs.
__device__ __forceinline__ float pairSum(uint32_t u) {
    __nv_bfloat162 v;
    memcpy(&v, &u, sizeof(u));
    const float2 f = __bfloat1622float2(v);
    return f.x + f.y;
}

// Q rows [q0, q0 + kQTile) of head h into shared memory; rows past n_q are zeros.
template <int kWarps>
__device__ __forceinline__ void loadQ(const MlaPrefillParams& p, typename Tile<kWarps>::Smem& sm, int q0, int h,
                                      int tid) {
    constexpr int kThreads = Tile<kWarps>::kThreads;
#pragma unroll
    for (int i = 0; i < Tile<kWarps>::kQTile * kQkChunks / kThreads; ++i) {
        const int c = tid + kThreads * i;
        const int r = c / kQkChunks, ch = c % kQkChunks;
        const int qi = q0 + r;
        const bool valid = qi < p.n_q;
        const bf16* src = valid ? p.q + qi * p.q_token_stride + h * p.q_head_stride + ch * 8 : p.q;
        cpAsync16(smemAddr(&sm.q[r][ch * 8]), src, valid ? 16 : 0);
    }
}

// Keys [k0, k0 + 64) of head h into `stage`: K rows [k_nope | k_pe], V rows; zeros from `end` on.
template <int kWarps>
__device__ __forceinline__ void loadKv(const MlaPrefillParams& p, typename Tile<kWarps>::Smem& sm, int stage,
                                       int64_t k0, int64_t end, int h, int tid) {
    constexpr int kThreads = Tile<kWarps>::kThreads;
#pragma unroll
    for (int i = 0; i < kKTile * kQkChunks / kThreads; ++i) {
        const int c = tid + kThreads * i;
        const int r = c / kQkChunks, ch = c % kQkChunks;
        const int64_t key = k0 + r;
        const bool valid = key < end;
        const bf16* src = p.kv;  // any readable address when nothing is read
        if (valid)
            src = ch < kNopeChunks ? p.kv + key * p.kv_token_stride + h * p.kv_head_stride + ch * 8
                                   : p.k_pe + key * p.k_pe_token_stride + (ch - kNopeChunks) * 8;
        cpAsync16(smemAddr(&sm.k[stage][r][ch * 8]), src, valid ? 16 : 0);
    }
#pragma unroll
    for (int i = 0; i < kKTile * kVChunks / kThreads; ++i) {
        const int c = tid + kThreads * i;
        const int r = c / kVChunks, ch = c % kVChunks;
        const int64_t key = k0 + r;
        const bool valid = key < end;
        const bf16* src = valid ? p.kv + key * p.kv_token_stride + h * p.kv_head_stride + kNope + ch * 8 : p.kv;
        cpAsync16(smemAddr(&sm.v[stage][r][ch * 8]), src, valid ? 16 : 0);
    }
}

// grid: (n_heads, ceil(n_q / kQTile)); block: 32·kWarps threads; dynamic shared memory:
// sizeof(Smem). 255 registers a thread at most: 4 warps run 2 blocks an SM, 8 warps 1.
template <int kWarps>
__global__ void __launch_bounds__(kWarps* kWarpSize, 8 / kWarps) mlaPrefillMmaKernel(MlaPrefillParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    using Smem = typename Tile<kWarps>::Smem;
    constexpr int kQTile = Tile<kWarps>::kQTile;
    extern __shared__ __align__(16) unsigned char smemRaw[];
    Smem& sm = *reinterpret_cast<Smem*>(smemRaw);

    const int h = blockIdx.x;
    const int q0 = (gridDim.y - 1 - blockIdx.y) * kQTile;  // longest rows first
    const int tid = threadIdx.x;
    const int warp = tid / kWarpSize;
    const int lane = tid % kWarpSize;
    const int g = lane / 4, t = lane % 4;

    // The block's queries see keys [0, nKeys); n_kv >= q_pos0 + n_q (checked by the launch).
    const int lastQ = min(q0 + kQTile, p.n_q) - 1;
    const int64_t nKeys = min(static_cast<int64_t>(p.n_kv), p.q_pos0 + lastQ + 1);
    const int nTiles = static_cast<int>((nKeys + kKTile - 1) / kKTile);

    loadQ<kWarps>(p, sm, q0, h, tid);
    loadKv<kWarps>(p, sm, 0, 0, nKeys, h, tid);
    cpAsyncCommit();

    const int warpRow0 = q0 + warp * kRowsPerWarp;  // first query row of this warp
    const bool warpActive = warpRow0 < p.n_q;
    const int64_t warpFirstPos = p.q_pos0 + warpRow0;
    const int64_t warpLastPos = warpFirstPos + kRowsPerWarp - 1;
    // Positions of this thread's two rows (g and g + 8). Rows past n_q compute on zero Q and are
    // never written; their (finite) scores need no special care.
    const int64_t pos[2] = {warpFirstPos + g, warpFirstPos + g + 8};
    const float scale2 = p.softmax_scale * kLog2e;

    // Per-lane ldmatrix offsets (elements) inside a 16×16 block, see the header comment.
    const int qOff = ((lane % 8) + 8 * ((lane / 8) % 2)) * kQkStride + 8 * (lane / 16);
    const int kOff = ((lane % 8) + 8 * (lane / 16)) * kQkStride + 8 * ((lane / 8) % 2);
    const int vOff = ((lane % 8) + 8 * ((lane / 8) % 2)) * kVStride + 8 * (lane / 16);

    const uint32_t qBase = smemAddr(&sm.q[warp * kRowsPerWarp][0]) + 2 * qOff;
    float o[kOTiles][4];
#pragma unroll
    for (int n = 0; n < kOTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY};  // running max per row (log2 units)
    float l[2] = {0.0f, 0.0f};            // this thread's part of the row sums (its 2 of 8 columns)

    for (int it = 0; it < nTiles; ++it) {
        const int stage = it % kStages;
        const int64_t k0 = static_cast<int64_t>(it) * kKTile;
        // The other stage was last read in iteration it - 1, which ended with a barrier.
        if (it + 1 < nTiles) {
            loadKv<kWarps>(p, sm, stage ^ 1, k0 + kKTile, nKeys, h, tid);
            cpAsyncCommit();
            cpAsyncWait<1>();
        } else {
            cpAsyncWait<0>();
        }
        __syncthreads();  // tile `it` (and, the first time, Q) visible to all warps

        if (warpActive && k0 <= warpLastPos) {  // warp-uniform: else every key here is masked for the warp
            // S = Q · Kᵀ
            float s[kSTiles][4];
#pragma unroll
            for (int n = 0; n < kSTiles; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
            const uint32_t kBase = smemAddr(&sm.k[stage][0][0]) + 2 * kOff;
#pragma unroll
            for (int kk = 0; kk < kQkSteps; ++kk) {
                uint32_t a[4];  // Q from shared memory each tile (in registers it would spill)
                ldsm4(a, qBase + 2 * 16 * kk);
#pragma unroll
                for (int j = 0; j < kSTiles / 2; ++j) {
                    uint32_t b[4];
                    ldsm4(b, kBase + 2 * (16 * j * kQkStride + 16 * kk));
                    mma16816(s[2 * j], a, b[0], b[1]);
                    mma16816(s[2 * j + 1], a, b[2], b[3]);
                }
            }

            // Causal mask where the tile crosses the warp's diagonal (-inf: exp2 gives 0).
            if (k0 + kKTile - 1 > warpFirstPos) {
#pragma unroll
                for (int n = 0; n < kSTiles; ++n)
#pragma unroll
                    for (int c = 0; c < 4; ++c) {
                        const int64_t key = k0 + 8 * n + 2 * t + (c & 1);
                        if (key > pos[c / 2]) s[n][c] = -INFINITY;
                    }
            }

            // Online softmax: the row max over the 4 lanes of a row (t = 0..3), then rescale.
            float base[2];
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                float mx = -INFINITY;
#pragma unroll
                for (int n = 0; n < kSTiles; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(kFullMask, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(kFullMask, mx, 2));
                const float mNew = fmaxf(m[r], mx * scale2);  // scale2 > 0: max commutes with it
                // Nothing visible yet (mNew = -inf): any finite base; every exp2 below gives 0.
                base[r] = mNew == -INFINITY ? 0.0f : mNew;
                const float alpha = exp2f(m[r] - base[r]);
                m[r] = mNew;
                l[r] *= alpha;
#pragma unroll
                for (int n = 0; n < kOTiles; ++n) {
                    o[n][2 * r] *= alpha;
                    o[n][2 * r + 1] *= alpha;
                }
            }

            // P (bf16) in the A layout of the P·V k-steps; l sums the rounded values.
            uint32_t pa[kPvSteps][4];
#pragma unroll
            for (int j = 0; j < kPvSteps; ++j)
#pragma unroll
                for (int half = 0; half < 2; ++half) {
                    const float* sn = s[2 * j + half];
                    const uint32_t row0 =
                        packBf16(exp2f(fmaf(sn[0], scale2, -base[0])), exp2f(fmaf(sn[1], scale2, -base[0])));
                    const uint32_t row1 =
                        packBf16(exp2f(fmaf(sn[2], scale2, -base[1])), exp2f(fmaf(sn[3], scale2, -base[1])));
                    pa[j][2 * half] = row0;
                    pa[j][2 * half + 1] = row1;
                    l[0] += pairSum(row0);
                    l[1] += pairSum(row1);
                }

            // O += P · V
            const uint32_t vBase = smemAddr(&sm.v[stage][0][0]) + 2 * vOff;
#pragma unroll
            for (int j = 0; j < kPvSteps; ++j)
#pragma unroll
                for (int d = 0; d < kOTiles / 2; ++d) {
                    uint32_t b[4];
                    ldsm4Trans(b, vBase + 2 * (16 * j * kVStride + 16 * d));
                    mma16816(o[2 * d], pa[j], b[0], b[1]);
                    mma16816(o[2 * d + 1], pa[j], b[2], b[3]);
                }
        }
        __syncthreads();  // every warp is done with this stage before it is refilled
    }

    if (!warpActive) return;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float sum = l[r];
        sum += __shfl_xor_sync(kFullMask, sum, 1);
        sum += __shfl_xor_sync(kFullMask, sum, 2);
        const int qi = warpRow0 + g + 8 * r;
        if (qi >= p.n_q) continue;
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;  // > 0: key 0 is visible to every row
        bf16* out = p.out + qi * p.out_token_stride + h * p.out_head_stride + 2 * t;
#pragma unroll
        for (int n = 0; n < kOTiles; ++n)
            *reinterpret_cast<__nv_bfloat162*>(out + 8 * n) =
                __floats2bfloat162_rn(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    }
#endif
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// 128-query blocks read each K/V tile for twice the queries (half the L2 and shared-memory
// traffic per query) but come in half as many blocks, one per SM: taken when there are still at
// least as many as SMs. Measured on an H200 (tools/bench/mla_prefill_bench.cu, Lite, 16 heads):
// 1K 0.055 vs 0.056 ms (64 vs 128), 2K 0.125 vs 0.115, 16K in 4096-chunks 7.30 vs 6.28 ms.
int chooseQTile(const MlaPrefillParams& p) {
    int device = 0, sms = 132;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
        sms = 132;
    const int64_t blocks128 = static_cast<int64_t>(p.n_heads) * ceilDiv(p.n_q, 128);
    return blocks128 >= sms ? 128 : 64;
}

template <int kWarps>
Status launchTiles(const MlaPrefillParams& p, cudaStream_t stream) {
    constexpr int kQTile = Tile<kWarps>::kQTile;
    const int64_t qTiles = ceilDiv(static_cast<int64_t>(p.n_q), static_cast<int64_t>(kQTile));
    if (qTiles > 65535)
        return Status(StatusCode::InvalidArgument, "launchMlaPrefillMma: more than 65535 query tiles in one call");
    constexpr size_t smem = sizeof(typename Tile<kWarps>::Smem);
    DSV2_CUDA_CHECK(cudaFuncSetAttribute(mlaPrefillMmaKernel<kWarps>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem)));
    const dim3 grid(static_cast<unsigned>(p.n_heads), static_cast<unsigned>(qTiles));
    mlaPrefillMmaKernel<kWarps><<<grid, Tile<kWarps>::kThreads, smem, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace

Status mlaPrefillMmaSupported(const MlaPrefillParams& p) {
    if (p.d_nope != kNope || p.d_rope != kRope || p.d_v != kDv)
        return Status(StatusCode::Unsupported,
                      "mla prefill (tensor cores): head dims must be nope 128, rope 64, v 128 (DeepSeek-V2)");
    if (!aligned16(p.q) || !aligned16(p.kv) || !aligned16(p.k_pe) || p.q_token_stride % 8 || p.q_head_stride % 8 ||
        p.kv_token_stride % 8 || p.kv_head_stride % 8 || p.k_pe_token_stride % 8)
        return Status(StatusCode::Unsupported,
                      "mla prefill (tensor cores): q, kv, k_pe need 16-byte alignment and strides in multiples of 8");
    return Status::ok();
}

Status launchMlaPrefillMma(const MlaPrefillParams& p, cudaStream_t stream) {
    if (p.n_q == 0) return Status::ok();
    if (p.n_q < 0 || p.q_pos0 < 0 || p.n_kv < p.q_pos0 + p.n_q || p.n_heads <= 0)
        return Status(StatusCode::InvalidArgument,
                      "launchMlaPrefillMma: bad sizes (need n_kv >= q_pos0 + n_q and n_heads > 0)");
    if (!p.q || !p.kv || !p.k_pe || !p.out || reinterpret_cast<uintptr_t>(p.out) % 4 || p.out_token_stride % 2 ||
        p.out_head_stride % 2)
        return Status(StatusCode::InvalidArgument,
                      "launchMlaPrefillMma: null pointer, or out / its strides not bf16-pair aligned");
    if (!(p.softmax_scale > 0.0f))
        return Status(StatusCode::InvalidArgument, "launchMlaPrefillMma: softmax_scale must be positive");
    DSV2_RETURN_IF_ERROR(mlaPrefillMmaSupported(p));
    if (p.mma_q_tile != 0 && p.mma_q_tile != 64 && p.mma_q_tile != 128)
        return Status(StatusCode::InvalidArgument, "launchMlaPrefillMma: mma_q_tile must be 0 (chosen), 64 or 128");
    const int qTile = p.mma_q_tile ? p.mma_q_tile : chooseQTile(p);
    return qTile == 128 ? launchTiles<8>(p, stream) : launchTiles<4>(p, stream);
}

}  // namespace dsv2::cuda
