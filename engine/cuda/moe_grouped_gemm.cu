// Grouped expert GEMMs on tensor cores (moe_grouped_gemm.h): C = A · Bᵀ per expert, where A is the
// expert's slice of permuted rows [rows, K] (row-major) and B its weight [N, K] (row-major), so both
// operands are K-contiguous (the "TN" case mma.sync row.col wants, no transposes anywhere).
//
// Work items. blockIdx.y names an m-tile of the concatenation "expert 0's m-tiles, expert 1's, ...",
// where expert e has ceil(rows_e / BM) of them. Warp 0 of every block finds its (expert, tile) from
// the device offsets with one warp scan over the experts (64 loads from L2: nothing next to a
// 128×128×2048 tile), so no scheduler kernel, no tile list and no host round trip are needed. The
// grid is sized for the worst case, ceil(max_rows / BM) + n_experts m-tiles (Σ ceil(c_e / BM) <=
// Σ c_e / BM + n_experts); blocks past the last real tile, and blocks of experts whose weights are
// null (another GPU's), return at once. blockIdx.x is the n-tile and runs fastest, so the blocks in
// flight share a few experts' weights and one A tile per m-tile through L2.
//
// Block tile BM × 128 × 64 (BM = 128, or 64 for experts with few rows), 8 warps in a 2 (M) × 4 (N)
// grid; warp (wm, wn) owns rows [wm·BM/2, +BM/2) = MT m16-tiles and the 32 tile columns
// [32·wn, 32·wn + 32) = 4 n8-tiles. Per 16-wide k-step a warp loads MT A fragments and 2×2 B
// fragments by ldmatrix.x4 and issues 4·MT mma.m16n8k16 (bf16 in, fp32 accumulate).
//
// gate|up with SwiGLU in the epilogue. A block's 128 B rows are 64 gate columns and the 64 matching
// up columns, interleaved per warp: tile rows [32wn, 32wn + 16) hold gate rows n0 + 16wn + [0, 16)
// and tile rows [32wn + 16, 32wn + 32) the up rows inter + n0 + 16wn + [0, 16). So a thread's
// n-tiles 0, 1 (gate) and 2, 3 (up) are the same columns j, and act[r, j] = bf16(silu(bf16(g)) ·
// bf16(u)) is computed in registers: the rounding points of the cuBLAS path (gate|up GEMM output in
// bf16, swiglu.cu), with silu() from device_utils.cuh like swiglu.cu. The down GEMM stores fp32.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"), with
// g = lane / 4 and t = lane % 4; each .b32 register holds two bf16, the lower column (A) or row
// (B) index in the low 16 bits:
//   A (16×16, row): a0 = (row g, cols 2t, 2t+1)    a1 = (row g+8, cols 2t, 2t+1)
//                   a2 = (row g, cols 2t+8, 2t+9)  a3 = (row g+8, cols 2t+8, 2t+9)
//   B (16×8, col):  b0 = (rows k = 2t, 2t+1; col n = g)   b1 = (rows k = 2t+8, 2t+9; col n = g)
//   C (16×8, f32):  c0, c1 = (row g, cols 2t, 2t+1)      c2, c3 = (row g+8, cols 2t, 2t+1)
// ldmatrix.m8n8.x4.b16 (PTX ISA, "ldmatrix"): lanes 8i..8i+7 give the 8 row addresses (16 bytes
// each) of matrix i; register i of lane l then holds row l/4, elements 2(l%4), 2(l%4)+1 of matrix i.
//  - A from the row-major [BM][k] tile: lane l addresses row (l%8) + 8·((l/8)%2), column
//    8·(l/16): matrices = (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15),
//    (rows 8-15, k 8-15) = a0, a1, a2, a3.
//  - B from the [128 n][k] weight tile (a stored row is one n with 8 consecutive k, so the plain
//    load gives (n = l/4; k = 2(l%4), +1) = b0/b1): lane l addresses n (l%8) + 8·(l/16), k
//    8·((l/8)%2): matrices = (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) =
//    b0, b1 of n-tile 0 and b0, b1 of n-tile 1.
// Shared rows are padded to 72 bf16 (144 B ≡ 16 mod 128): the 8 rows of one 8×8 matrix fall in 8
// different 16-byte bank groups, so ldmatrix has no bank conflicts; the cp.async writes of 8
// threads fill one 128-byte row segment.
//
// Pipeline: 3 stages of cp.async (16 bytes, L2 only); k-tile i + 2 loads while k-tile i is
// computed. Rows past the expert's end, weight rows past N and k past K are zero-filled (nothing is
// read for them), so any rows per expert and any hidden/inter that are multiples of 8 work; outputs
// outside [rows, N) are not stored.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/mma_ptx.cuh"
#include "cuda/moe_grouped_gemm.h"
#include "cuda/moe_grouped_gemm_wgmma.h"

namespace dsv2::cuda {
namespace {

using namespace ptx;  // cp.async, ldmatrix, mma (mma_ptx.cuh)

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kWarpsM = 2;
constexpr int kWarpsN = 4;
constexpr int kBN = 128;  // tile columns (gate|up: 64 gate + 64 up)
constexpr int kBK = 64;   // k per stage
constexpr int kStages = 3;
constexpr int kLds = kBK + 8;                           // bf16 per shared row (144 B)
constexpr int kChunksPerRow = kBK / 8;                  // 16-byte pieces per tile row
constexpr int kRowsPerPass = kThreads / kChunksPerRow;  // 32 tile rows per cp.async pass
constexpr int kGateCols = kBN / 2;                      // SwiGLU columns per gate|up block
constexpr int kWarpCols = kBN / kWarpsN;                // 32 tile columns per warp

static_assert(kWarpsM * kWarpsN == kWarps, "warp grid");
static_assert((kLds * 2) % 128 == 16 && (kLds * 2) % 16 == 0, "ldmatrix rows must rotate banks, 16-byte aligned");
static_assert(kBN % kRowsPerPass == 0 && kWarpCols == 32, "B tile: 4 passes; warp = 16 gate + 16 up columns");

__host__ __device__ constexpr int tileM(int mt) { return kWarpsM * 16 * mt; }
constexpr size_t smemBytes(int mt) { return static_cast<size_t>(kStages) * (tileM(mt) + kBN) * kLds * 2; }

struct KernelParams {
    const int32_t* offsets;
    const bf16* in;
    int64_t in_stride;
    void* out;
    int64_t out_stride;
    int n_experts;
    int k;      // reduction width
    int inter;  // gate|up: SwiGLU width (and the up rows' offset); down: unused
    int n;      // down: output width (hidden); gate|up: unused
    const bf16* w[kMoeGroupedMaxExperts];
};
static_assert(sizeof(KernelParams) <= 4000, "kernel parameters must fit the 4 KB parameter space");

struct TileWork {
    int expert;    // -1: no work (past the last tile)
    int rowBegin;  // first row of this m-tile
    int rowEnd;    // the expert's end row
};

// Warp-collective (all 32 lanes): the work item of m-tile `tile`. Lane l sums the m-tiles of a
// contiguous run of experts; an inclusive warp scan of those sums tells which lane's run holds
// `tile`, and that lane walks its run to the expert.
__device__ TileWork findTile(const KernelParams& p, int bm, int tile, int lane) {
    const int per = (p.n_experts + kWarpSize - 1) / kWarpSize;
    const int e0 = min(lane * per, p.n_experts);
    const int e1 = min(e0 + per, p.n_experts);
    int local = 0;
    for (int e = e0; e < e1; ++e) local += (p.offsets[e + 1] - p.offsets[e] + bm - 1) / bm;
    int incl = local;
#pragma unroll
    for (int d = 1; d < kWarpSize; d <<= 1) {
        const int v = __shfl_up_sync(kFullMask, incl, d);
        if (lane >= d) incl += v;
    }
    const int excl = incl - local;
    const bool mine = tile >= excl && tile < incl;
    const unsigned owners = __ballot_sync(kFullMask, mine);
    TileWork w{-1, 0, 0};
    if (owners == 0) return w;
    if (mine) {
        int first = excl;
        for (int e = e0; e < e1; ++e) {
            const int begin = p.offsets[e];
            const int end = p.offsets[e + 1];
            const int tiles = (end - begin + bm - 1) / bm;
            if (tile < first + tiles) {
                w = {e, begin + (tile - first) * bm, end};
                break;
            }
            first += tiles;
        }
    }
    const int src = __ffs(owners) - 1;
    w.expert = __shfl_sync(kFullMask, w.expert, src);
    w.rowBegin = __shfl_sync(kFullMask, w.rowBegin, src);
    w.rowEnd = __shfl_sync(kFullMask, w.rowEnd, src);
    return w;
}

// The weight row that tile row r (0..127) of n-tile blockN holds, or -1 past the matrix.
template <bool kGateUp>
__device__ __forceinline__ int weightRow(const KernelParams& p, int blockN, int r) {
    if constexpr (kGateUp) {
        const int wn = r / kWarpCols;
        const int q = r % kWarpCols;
        const int j = blockN * kGateCols + wn * 16 + q % 16;  // SwiGLU column
        if (j >= p.inter) return -1;
        return q < 16 ? j : p.inter + j;
    } else {
        const int n = blockN * kBN + r;
        return n < p.n ? n : -1;
    }
}

// grid: (n-tiles, worst-case m-tiles), kThreads threads, smemBytes(MT) dynamic shared memory.
template <int MT, bool kGateUp>
__global__ void __launch_bounds__(kThreads, 2) moeGroupedGemmKernel(const __grid_constant__ KernelParams p) {
    constexpr int BM = tileM(MT);
    constexpr int kAPasses = BM / kRowsPerPass;
    constexpr int kBPasses = kBN / kRowsPerPass;
    extern __shared__ uint4 smemRaw[];
    __shared__ TileWork work;
    bf16* sA = reinterpret_cast<bf16*>(smemRaw);  // [kStages][BM][kLds]
    bf16* sB = sA + kStages * BM * kLds;          // [kStages][kBN][kLds]

    const int tid = threadIdx.x;
    const int lane = tid % kWarpSize;
    const int warp = tid / kWarpSize;
    if (warp == 0) {
        const TileWork w = findTile(p, BM, static_cast<int>(blockIdx.y), lane);
        if (lane == 0) work = w;
    }
    __syncthreads();
    const TileWork w = work;
    if (w.expert < 0) return;
    const bf16* weight = p.w[w.expert];
    if (!weight) return;  // an expert of another GPU
    const int blockN = static_cast<int>(blockIdx.x);

    // This thread's cp.async sources: piece `chunk` of tile rows rowInPass + 32·i. Invalid rows
    // point at a readable base and copy 0 bytes.
    const int chunk = tid % kChunksPerRow;
    const int rowInPass = tid / kChunksPerRow;
    const bf16* aSrc[kAPasses];
    const bf16* bSrc[kBPasses];
    unsigned aValid = 0, bValid = 0;
#pragma unroll
    for (int i = 0; i < kAPasses; ++i) {
        const int row = w.rowBegin + rowInPass + i * kRowsPerPass;
        const bool ok = row < w.rowEnd;
        aSrc[i] = ok ? p.in + static_cast<int64_t>(row) * p.in_stride + chunk * 8 : p.in;
        aValid |= ok ? 1u << i : 0u;
    }
#pragma unroll
    for (int i = 0; i < kBPasses; ++i) {
        const int wr = weightRow<kGateUp>(p, blockN, rowInPass + i * kRowsPerPass);
        bSrc[i] = wr >= 0 ? weight + static_cast<int64_t>(wr) * p.k + chunk * 8 : weight;
        bValid |= wr >= 0 ? 1u << i : 0u;
    }
    auto loadStage = [&](int stage, int kTile) {
        const int k0 = kTile * kBK;
        const bool kOk = k0 + chunk * 8 < p.k;  // K % 8 == 0: a piece is all in or all out
        const uint32_t aDst = smemAddr(sA + (stage * BM + rowInPass) * kLds + chunk * 8);
        const uint32_t bDst = smemAddr(sB + (stage * kBN + rowInPass) * kLds + chunk * 8);
#pragma unroll
        for (int i = 0; i < kAPasses; ++i) {
            const bool ok = kOk && (aValid >> i & 1u);
            cpAsync16(aDst + i * kRowsPerPass * kLds * 2, ok ? aSrc[i] + k0 : p.in, ok ? 16 : 0);
        }
#pragma unroll
        for (int i = 0; i < kBPasses; ++i) {
            const bool ok = kOk && (bValid >> i & 1u);
            cpAsync16(bDst + i * kRowsPerPass * kLds * 2, ok ? bSrc[i] + k0 : weight, ok ? 16 : 0);
        }
    };

    const int kTiles = (p.k + kBK - 1) / kBK;
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < kTiles) loadStage(s, s);
        cpAsyncCommit();  // empty groups keep the wait counts uniform
    }

    const int wm = warp / kWarpsN;
    const int wn = warp % kWarpsN;
    // ldmatrix lane addresses (header comment): A row/col, B n/k within a 16×16 piece.
    const int aRow = wm * (BM / kWarpsM) + lane % 8 + 8 * ((lane / 8) % 2);
    const int aCol = 8 * (lane / 16);
    const int bRow = wn * kWarpCols + lane % 8 + 8 * (lane / 16);
    const int bCol = 8 * ((lane / 8) % 2);
    float acc[MT][4][4];
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[mi][ni][c] = 0.0f;

    for (int kt = 0; kt < kTiles; ++kt) {
        cpAsyncWait<kStages - 2>();  // k-tile kt has landed (this thread's pieces)
        __syncthreads();             // ... everyone's; and stage (kt - 1) % kStages is free again
        if (kt + kStages - 1 < kTiles) loadStage((kt + kStages - 1) % kStages, kt + kStages - 1);
        cpAsyncCommit();
        const int stage = kt % kStages;
        const uint32_t aBase = smemAddr(sA + (stage * BM + aRow) * kLds + aCol);
        const uint32_t bBase = smemAddr(sB + (stage * kBN + bRow) * kLds + bCol);
#pragma unroll
        for (int ks = 0; ks < kBK / 16; ++ks) {
            uint32_t a[MT][4];
            uint32_t b[2][4];
#pragma unroll
            for (int mi = 0; mi < MT; ++mi) ldsm4(a[mi], aBase + (mi * 16 * kLds + ks * 16) * 2);
#pragma unroll
            for (int nj = 0; nj < 2; ++nj) ldsm4(b[nj], bBase + (nj * 16 * kLds + ks * 16) * 2);
#pragma unroll
            for (int mi = 0; mi < MT; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni)
                    mma16816(acc[mi][ni], a[mi], b[ni / 2][(ni % 2) * 2], b[ni / 2][(ni % 2) * 2 + 1]);
        }
    }
    cpAsyncWait<0>();  // no copy may be in flight when the block exits

    const int g = lane / 4;
    const int t = lane % 4;
#pragma unroll
    for (int mi = 0; mi < MT; ++mi) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {  // c0, c1 (row g) then c2, c3 (row g + 8)
            const int row = w.rowBegin + wm * (BM / kWarpsM) + mi * 16 + g + 8 * half;
            if (row >= w.rowEnd) continue;
            if constexpr (kGateUp) {
                bf16* out = static_cast<bf16*>(p.out) + static_cast<int64_t>(row) * p.out_stride;
#pragma unroll
                for (int ni = 0; ni < 2; ++ni) {
                    const int j = blockN * kGateCols + wn * 16 + ni * 8 + 2 * t;
                    if (j >= p.inter) continue;  // inter is even: j + 1 < inter too
                    const float g0 = toFloat(toBf16(acc[mi][ni][2 * half]));
                    const float g1 = toFloat(toBf16(acc[mi][ni][2 * half + 1]));
                    const float u0 = toFloat(toBf16(acc[mi][ni + 2][2 * half]));
                    const float u1 = toFloat(toBf16(acc[mi][ni + 2][2 * half + 1]));
                    __nv_bfloat162 v;
                    v.x = toBf16(silu(g0) * u0);
                    v.y = toBf16(silu(g1) * u1);
                    *reinterpret_cast<__nv_bfloat162*>(out + j) = v;
                }
            } else {
                float* out = static_cast<float*>(p.out) + static_cast<int64_t>(row) * p.out_stride;
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) {
                    const int col = blockN * kBN + wn * kWarpCols + ni * 8 + 2 * t;
                    if (col >= p.n) continue;  // n is even: col + 1 < n too
                    *reinterpret_cast<float2*>(out + col) =
                        make_float2(acc[mi][ni][2 * half], acc[mi][ni][2 * half + 1]);
                }
            }
        }
    }
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// DSV2_MOE_GEMM=mma: the mma.sync kernel even where the wgmma one runs (A/B). Read once.
bool mmaSyncForced() {
    static const bool forced = [] {
        const char* env = std::getenv("DSV2_MOE_GEMM");
        return env && std::strcmp(env, "mma") == 0;
    }();
    return forced;
}

template <int MT, bool kGateUp>
Status launchTyped(const KernelParams& kp, int maxRows, int nTilesN, cudaStream_t stream) {
    constexpr size_t smem = smemBytes(MT);
    auto* kernel = moeGroupedGemmKernel<MT, kGateUp>;
    DSV2_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    const int64_t mTiles = ceilDiv(maxRows, tileM(MT)) + kp.n_experts;
    const dim3 grid(static_cast<unsigned>(nTilesN), static_cast<unsigned>(mTiles));
    kernel<<<grid, kThreads, smem, stream>>>(kp);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

Status launchGrouped(const MoeGroupedGemmParams& p, bool gateUp, cudaStream_t stream) {
    const char* name = gateUp ? "launchMoeGroupedGateUp" : "launchMoeGroupedDown";
    auto bad = [&](const std::string& what) {
        return Status(StatusCode::InvalidArgument, std::string(name) + ": " + what);
    };
    DSV2_RETURN_IF_ERROR(moeGroupedGemmSupported(p.hidden, p.inter, p.n_experts));
    if (p.max_rows < 0) return bad("max_rows < 0");
    if (p.max_rows == 0) return Status::ok();
    if (!p.expert_offsets || !p.expert_weights || !p.in || !p.out) return bad("missing pointer");
    const int k = gateUp ? p.hidden : p.inter;
    const int n = gateUp ? p.inter : p.hidden;
    if (p.in_stride < k || p.in_stride % 8 != 0 || !aligned16(p.in))
        return bad("input rows must be 16-byte aligned with in_stride >= " + std::to_string(k) +
                   " and a multiple of 8");
    // gate|up stores bf16 pairs (4 bytes), down fp32 pairs (8 bytes).
    const int outAlign = gateUp ? 4 : 8;
    if (p.out_stride < n || p.out_stride % 2 != 0 || reinterpret_cast<uintptr_t>(p.out) % outAlign != 0)
        return bad("output needs out_stride >= " + std::to_string(n) + ", even, and an aligned base");
    if (p.tile_m != 0 && p.tile_m != 64 && p.tile_m != 128) return bad("tile_m must be 0, 64 or 128");
    for (int e = 0; e < p.n_experts; ++e)
        if (p.expert_weights[e] && !aligned16(p.expert_weights[e]))
            return bad("expert " + std::to_string(e) + "'s weight is not 16-byte aligned");

    bool wgmma = false;
    switch (p.kernel) {
    case MoeGroupedKernel::Auto: wgmma = !mmaSyncForced() && wgmmaGroupedSupportedOnCurrentDevice(); break;
    case MoeGroupedKernel::MmaSync: wgmma = false; break;
    case MoeGroupedKernel::Wgmma:
        if (!wgmmaGroupedSupportedOnCurrentDevice())
            return Status(StatusCode::Unsupported,
                          std::string(name) +
                              ": the wgmma kernel needs a compute capability 9.0 GPU and this build's sm_90a code");
        wgmma = true;
        break;
    default: return bad("unknown kernel choice");
    }
    if (wgmma) {
        WgmmaGroupedArgs a;
        a.gate_up = gateUp;
        a.max_rows = p.max_rows;
        a.n_experts = p.n_experts;
        a.k = k;
        a.inter = p.inter;
        a.n = n;
        a.expert_offsets = p.expert_offsets;
        a.expert_weights = p.expert_weights;
        a.in = p.in;
        a.in_stride = p.in_stride;
        a.out = p.out;
        a.out_stride = p.out_stride;
        return launchMoeGroupedWgmma(a, stream);
    }

    KernelParams kp{};
    kp.offsets = p.expert_offsets;
    kp.in = p.in;
    kp.in_stride = p.in_stride;
    kp.out = p.out;
    kp.out_stride = p.out_stride;
    kp.n_experts = p.n_experts;
    kp.k = k;
    kp.inter = p.inter;
    kp.n = n;
    for (int e = 0; e < p.n_experts; ++e) kp.w[e] = p.expert_weights[e];
    // 128-row tiles (fewer shared-memory reads per MMA) unless the experts average fewer than 128
    // rows, where most of a 128-row tile would be padding.
    int tileRows = p.tile_m;
    if (tileRows == 0) tileRows = p.max_rows >= 128 * p.n_experts ? 128 : 64;
    const int64_t mTilesMax = ceilDiv(p.max_rows, tileRows) + p.n_experts;
    if (mTilesMax > 65535) return bad("too many rows for one launch (" + std::to_string(p.max_rows) + ")");
    const int nTilesN = static_cast<int>(gateUp ? ceilDiv(p.inter, kGateCols) : ceilDiv(p.hidden, kBN));
    if (gateUp)
        return tileRows == 128 ? launchTyped<4, true>(kp, p.max_rows, nTilesN, stream)
                               : launchTyped<2, true>(kp, p.max_rows, nTilesN, stream);
    return tileRows == 128 ? launchTyped<4, false>(kp, p.max_rows, nTilesN, stream)
                           : launchTyped<2, false>(kp, p.max_rows, nTilesN, stream);
}

}  // namespace

Status moeGroupedGemmSupported(int hidden, int inter, int n_experts) {
    if (n_experts <= 0 || n_experts > kMoeGroupedMaxExperts)
        return Status(StatusCode::Unsupported, "grouped MoE GEMM: " + std::to_string(n_experts) +
                                                   " experts (supported: 1.." + std::to_string(kMoeGroupedMaxExperts) +
                                                   ")");
    if (hidden <= 0 || inter <= 0 || hidden % 8 != 0 || inter % 8 != 0)
        return Status(StatusCode::Unsupported, "grouped MoE GEMM: hidden " + std::to_string(hidden) + " and inter " +
                                                   std::to_string(inter) +
                                                   " must be positive multiples of 8 (16-byte rows)");
    return Status::ok();
}

bool moeGroupedWgmmaAvailable() { return wgmmaGroupedSupportedOnCurrentDevice(); }

Status launchMoeGroupedGateUp(const MoeGroupedGemmParams& p, cudaStream_t stream) {
    return launchGrouped(p, true, stream);
}

Status launchMoeGroupedDown(const MoeGroupedGemmParams& p, cudaStream_t stream) {
    return launchGrouped(p, false, stream);
}

}  // namespace dsv2::cuda
