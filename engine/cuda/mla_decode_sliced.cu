// MLA decode on tensor cores, latency first (mla_decode.h, MlaDecodeKernel::TensorCoreSliced;
// DSV2_MLA_DECODE=sliced): each context split is sliced over a cluster of R blocks.
//
// Why (issue 9). The first tensor-core kernel (mla_decode_mma.cu) gives each 64-position split to
// ONE block of 8 warps: at 1K context that is 16 working SMs out of 132, each running one long
// dependent chain (measured: ~12 µs fixed per block + ~2.9 µs per extra tile; 17.35 µs a layer at
// 1K in tools/bench/mla_decode_bench.cu). A tile is ~800 mma.sync plus ~1,800 shared-memory
// wavefronts on that one SM, and every phase waits for the one before. Here the same split is
// worked by R blocks (a thread block cluster) at once, each doing 1/R of every phase:
//   - scores: rank q computes S for its T/R positions of the tile over all 576 entry dims (full
//     rows: no partial sums to add across blocks), with q split into bf16 hi + lo as before;
//   - exchange: rank q pushes its fp32 score slice [16 heads × T/R] into every rank's shared
//     memory with st.async, whose bytes complete a transaction count on the receiving rank's
//     mbarrier; after its own mbarrier's phase completes every rank holds the same whole tile
//     S [16 × T], bit for bit (each slice was summed once);
//   - softmax: every rank runs the same online softmax on the same S (16 × T exps: cheap), so m,
//     l and P agree across the cluster without another exchange;
//   - P·V: rank r multiplies P by its own latent dims [512r/R, 512(r+1)/R) of the tile rows, so the
//     ranks' outputs are disjoint column slices: no merge inside the cluster at all.
// Every rank loads its own positions' full rows (for S) and all T rows' own latent dims (for V):
// 1/R of the tile twice over at most, so the cluster reads each byte from HBM about once (L2
// serves the overlap). At 1K context on Lite (16 splits of 64 positions) 128 blocks work at once.
//
// Splits still merge across clusters through global memory: a split's rank r writes its
// partial O columns [16 heads × 512/R] (fp32, relative to its max) to partial_o and the split's
// (m, l) per head to partial_ml (every rank writes the same bits; natural-log max, as the
// CUDA-core kernel: same layout and meaning, mla_decode.h); then a GPU-scope fence and the arrival
// counter of (query, head group, r). The block that arrives last for column slice r merges that
// slice over all used splits (in split order: deterministic) and writes o_lat; it puts the
// counter back to 0. A query whose context fits one split writes o_lat directly and touches no
// workspace. With defer_merge_max_splits (one query, the decode step) every used split writes its
// partials, one split too, and the kernel ends there: the v GEMV merges them (mla_split_merge.cuh,
// this merge's order and bits), which measured +4.7 % decode at 16K, where the one merging block
// per column slice read 33 splits (session 9).
//
// Per tile, one __syncthreads pair and one mbarrier wait, no cluster barrier and no fence (a
// release arrive on the cluster barrier is a GPU-scope MEMBAR in SASS; replacing it moved the times
// by about ±1 µs at 4K-16K: the block-table lookups, below, were the cost). Iteration i
// computes the partial scores of tile i, pushes them, issues the cp.async of tile i + S − 2, then
// runs P·V of tile i − 1 (its P was made at the end of iteration i − 1), and only then waits for
// the other ranks' slices and runs the softmax of tile i. Hence 2 slots (and 2 mbarriers) for the
// gathered S and for P: a rank pushes tile i + 2 into slot b only after it has received every
// rank's tile i + 1, which each rank pushed after its softmax of tile i had read slot b. S >= 3
// tile stages (V of tile i − 1, K of tile i, loads in flight). Cache rows of the next tile to load
// (block-table lookups) are fetched one iteration ahead, into registers, so that no cp.async waits
// on a table load. q goes into A fragments straight from global memory once (each load instruction
// covers 8 heads × 32 contiguous bytes: whole sectors) while the first tiles load.
//
// Work split inside a block (W warps): score warp w takes n-tile w % (T/R/8) of the rank's
// positions and k-chunk w / (T/R/8) of the 36 k-steps (latent k-steps evenly, the 4 rope k-steps
// round robin; hi/lo and even/odd k-steps in 4 independent accumulators); the k-chunks' partial
// scores meet in shared memory (fixed order). P·V warp w takes (512/R/8)/W n-tiles of the rank's
// latent dims. The softmax gives each head row W·32/16 consecutive threads. Fragment layouts and
// ldmatrix addressing are those of mla_decode_mma.cu's header (same mma.m16n8k16, same padded
// rows: every shared row stride is an odd multiple of 16 bytes, so ldmatrix is conflict-free).
//
// Numerics: as mla_decode_mma.cu (scores fp32-accurate through q hi + lo; P rounded to bf16, l sums
// the rounded values; exp2 with softmax_scale·log2(e) folded in before the exchange).
//
// Knobs are template parameters (R ranks = cluster size, T positions per tile, W warps, S tile
// stages); kVariants below instantiates a few, MlaDecodeParams::sliced_variant or
// DSV2_MLA_SLICED_VARIANT picks one, and tools/bench/mla_decode_bench.cu times them all.
//
// Measured (H200, tools/bench/mla_decode_bench.cu, µs a layer on Lite at the engine's split count;
// the tensor-core kernel mla_decode_mma.cu for comparison):
//   context               1K     4K     16K
//   mma kernel           17.2   22.0   28.6
//   r8 t64 w8 s4 (a)     11.1   18.4   41.9   session 6's first run: cluster barrier a tile, serial lookups
//   r8 t64 w8 s4 (b)      9.95  15.7   31.8   this file, the first run's default shape
//   r4 t64 w8 s4 (b)      9.57  15.2   27.2   the default now
//   r8 t128 w8 s4 (b)    10.1   15.3   26.4
// Where the time went at 16K (ncu, sources in L2): not memory (a few % of DRAM bandwidth) but the
// loop's instruction stream per warp and tile: ~400 instructions at ~8 cycles each with 2-4 warps
// per scheduler, of which the cp.async issue was half before it became two compile-time runs; the
// block-table lookups, each waiting for its L2 round trip, ~2 µs a tile before they were batched.
// What is left per tile: the k-chunk sum of the push (8 dependent shared loads), the softmax (4 +
// 4 shuffle rounds), the P·V chain; at 1K, the first table → tile round trips and the merge's
// fence (membar) and L2 reads.
//
// PDL (pdl.cuh): the position, block table and cache may be read before the wait only with
// tiles_before_wait (written two or more kernels back); q_lat, q_pe, the workspace and the
// counters only after it.

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

#include "cuda/cluster_launch.h"
#include "cuda/cluster_ptx.cuh"
#include "cuda/cuda_check.h"
#include "cuda/mla_decode_common.cuh"
#include "cuda/mma_ptx.cuh"
#include "cuda/pdl.cuh"
#include "cuda/per_device_cache.h"

namespace dsv2::cuda::mla_decode_detail {
namespace {

using namespace ptx;  // cp.async, ldmatrix, mma (mma_ptx.cuh)

constexpr int kLatent = 512;
constexpr int kRope = 64;
constexpr int kEntry = kLatent + kRope;  // 576
constexpr int kHeads = 16;               // M of one MMA tile
constexpr int kLatentKSteps = kLatent / 16;
constexpr int kRopeKSteps = kRope / 16;
constexpr int kEntryPieces = kEntry * 2 / 16;  // 72 sixteen-byte pieces per cache row
constexpr int kOwnStride = kEntry + 8;         // bf16 per shared full row (1168 B = 73 × 16)
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kMergeChunk = 64;  // splits per round of the cross-split merge (>= the device-position cap)
static_assert(kMlaDecodeMaxDeferredSplits <= kMergeChunk, "a deferred merge is one chunk (mla_split_merge.cuh)");

__host__ __device__ constexpr bool oddSixteens(int bytes) { return bytes % 16 == 0 && (bytes / 16) % 2 == 1; }

template <int kRanks_, int kTile_, int kWarps_, int kStages_>
struct Cfg {
    static constexpr int R = kRanks_;  // cluster size: positions of S and latent dims of O are split R ways
    static constexpr int T = kTile_;   // positions per tile
    static constexpr int W = kWarps_;
    static constexpr int S = kStages_;  // tile stages in shared memory
    static constexpr int kThreads = W * kWarpSize;
    static constexpr int kOwnPos = T / R;             // positions this rank scores per tile
    static constexpr int kScoreNTiles = kOwnPos / 8;  // their n-tiles
    static constexpr int kKChunks = W / kScoreNTiles;
    static constexpr int kLatKs = kLatentKSteps / kKChunks;                     // latent k-steps per score warp
    static constexpr int kRopeSlots = (kRopeKSteps + kKChunks - 1) / kKChunks;  // rope k-steps per score warp, at most
    static constexpr int kVDims = kLatent / R;   // latent dims (output columns) of this rank
    static constexpr int kVStride = kVDims + 8;  // bf16 per shared V row
    static constexpr int kPvNTiles = kVDims / 8;
    static constexpr int kPvPerWarp = kPvNTiles / W;
    static constexpr int kPvKs = T / 16;
    static constexpr int kPartStride = kOwnPos + 4;           // fp32 per row of a k-chunk's partial scores
    static constexpr int kGathStride = T + 4;                 // fp32 per row of the gathered tile scores
    static constexpr int kPStride = T + 8;                    // bf16 per probability row
    static constexpr int kThreadsPerRow = kThreads / kHeads;  // softmax: threads per head row
    static constexpr int kRowElems = T / kThreadsPerRow;      // softmax: scores per thread
    static constexpr int kOwnPieces = kOwnPos * kEntryPieces;
    static constexpr int kVPieces = kVDims / 8;  // sixteen-byte pieces per V row
    static constexpr int kTileVPieces = T * kVPieces;
    static constexpr int kOwnPerThread = (kOwnPieces + kThreads - 1) / kThreads;  // own-row pieces a thread issues
    static constexpr int kVPerThread = (kTileVPieces + kThreads - 1) / kThreads;  // V pieces a thread issues
    static constexpr int kPiecesPerThread = kOwnPerThread + kVPerThread;
    static constexpr int kPushF4 = kHeads * kOwnPos / 4;  // float4s of one rank's score slice

    static_assert(R >= 2 && R <= kMlaDecodeClusterBlocks && kLatent % (8 * R) == 0, "ranks: cluster of 2..8");
    static_assert(T % (8 * R) == 0 && T % 16 == 0, "each rank scores whole n-tiles; P·V k-steps of 16");
    static_assert(W % kScoreNTiles == 0 && kLatentKSteps % kKChunks == 0 && kLatKs % 2 == 0, "score split");
    static_assert(kPvNTiles % W == 0 && (kPvPerWarp == 1 || kPvPerWarp % 2 == 0), "P·V split");
    static_assert(kThreads % kHeads == 0 && kThreadsPerRow <= kWarpSize && T % kThreadsPerRow == 0, "softmax");
    static_assert(kRowElems == 4 || kRowElems == 8, "softmax: one or two float4 of scores per thread");
    static_assert(S >= 3, "stages: V of the previous tile, K of this one, one load in flight");
    static_assert(kPiecesPerThread <= 32, "one valid bit per piece");
    static_assert(oddSixteens(kOwnStride * 2) && oddSixteens(kVStride * 2) && oddSixteens(kPStride * 2),
                  "ldmatrix rows must rotate banks");
    static_assert((kPartStride * 4) % 16 == 0 && (kGathStride * 4) % 16 == 0, "float4 rows");
    static_assert((kHeads * kVDims / 4) % kThreads == 0 && kMergeChunk % kThreadsPerRow == 0, "merge split");
};

template <class C>
struct Smem {
    uint64_t gathFull[2];                             // mbarriers: slot b of gath has every rank's slice
    uint64_t pad_[2];                                 // the arrays below start 16-byte aligned
    bf16 own[C::S][C::kOwnPos][kOwnStride];           // this rank's positions, all 576 dims (scores)
    bf16 v[C::S][C::T][C::kVStride];                  // every position of the tile, this rank's latent dims (P·V)
    float part[C::kKChunks][kHeads][C::kPartStride];  // partial scores per k-chunk
    float gath[2][kHeads][C::kGathStride];            // the tile's scores from every rank (scaled, log2 units)
    bf16 p[2][kHeads][C::kPStride];                   // probabilities (bf16)
    float alpha[2][kHeads];                           // exp2(m_old − m_new) of the tile
    float lFinal[kHeads];                             // running sums after the last tile
    int lastArrival;
};
// The merge's weights live in the tile stages once the tiles are done.
template <class C>
constexpr bool mergeFitsStages() {
    return sizeof(Smem<C>::own) >= sizeof(float) * kHeads * (kMergeChunk + 2);
}

// Where piece k (0 .. kPiecesPerThread − 1, a compile-time index in the unrolled loops) of this
// thread's share of a tile goes and comes from. Pieces k < kOwnPerThread are own-row pieces
// c = tid + k·threads of [0, kOwnPieces): the rank's kOwnPos rows, 72 pieces each (all 576 dims);
// the others V pieces of [0, T·kVPieces): T rows of the rank's latent dims. Consecutive threads
// take consecutive pieces of a row (1152 or 64-256 contiguous bytes). Whether a piece is own or V
// is known at compile time, and so is `exists` except for the last piece of each kind.
struct Piece {
    int posInTile;  // position offset from the tile start
    int srcDim;     // first entry dim of the piece
    int dstOffset;  // bf16 offset inside one stage's own[] (own) or v[] (V) array
    bool exists;    // c inside its range (the last piece of a kind may fall past it)
};
template <class C, int k>
__device__ __forceinline__ Piece pieceOf(int tid, int rank) {
    Piece pc;
    if constexpr (k < C::kOwnPerThread) {
        const int c = tid + k * C::kThreads;
        const int row = c / kEntryPieces;
        const int kk = c % kEntryPieces;
        pc.posInTile = rank * C::kOwnPos + row;
        pc.srcDim = kk * 8;
        pc.dstOffset = row * kOwnStride + kk * 8;
        pc.exists = (k + 1) * C::kThreads <= C::kOwnPieces || c < C::kOwnPieces;
    } else {
        const int cv = tid + (k - C::kOwnPerThread) * C::kThreads;
        const int row = cv / C::kVPieces;
        const int kk = cv % C::kVPieces;
        pc.posInTile = row;
        pc.srcDim = rank * C::kVDims + kk * 8;
        pc.dstOffset = row * C::kVStride + kk * 8;
        pc.exists = (k - C::kOwnPerThread + 1) * C::kThreads <= C::kTileVPieces || cv < C::kTileVPieces;
    }
    return pc;
}

// Calls f(std::integral_constant<int, k>) for k = 0 .. N − 1 (the piece loops, unrolled with a
// compile-time piece index).
template <int N, class F, int... Ks>
__device__ __forceinline__ void forPieces(F&& f, std::integer_sequence<int, Ks...>) {
    (f(std::integral_constant<int, Ks>{}), ...);
}
template <int N, class F>
__device__ __forceinline__ void forPieces(F&& f) {
    forPieces<N>(f, std::make_integer_sequence<int, N>{});
}

// n / d for 0 <= n < 2^31 by a d fixed for the launch (the cache's block size), as a multiply-high,
// an add and a shift instead of the ~25 instructions of an integer division per piece and tile
// (Granlund & Montgomery's round-up method: l = ceil(log2 d), m = floor(2^32 (2^l − d) / d) + 1,
// n / d = (mulhi(m, n) + n) >> l; the add does not overflow for n < 2^31).
struct FastDiv {
    uint32_t m = 1;
    uint32_t l = 0;
    __device__ explicit FastDiv(uint32_t d) {
        l = d > 1 ? 32u - static_cast<uint32_t>(__clz(static_cast<int>(d - 1))) : 0u;
        m = static_cast<uint32_t>((uint64_t{1} << 32) * ((uint64_t{1} << l) - d) / d + 1);
    }
    __device__ uint32_t operator()(uint32_t n) const { return (__umulhi(m, n) + n) >> l; }
};

// This thread's pieces of one tile in the paged cache: the block-table entry (as loaded) and the
// offset inside the block; bit k of `valid` clear past `end` (zeros, nothing read; block and
// offset then name entry 0 of the first block, a readable address).
template <class C>
struct TileRows {
    int32_t block[C::kPiecesPerThread];
    int32_t offset[C::kPiecesPerThread];
    uint32_t valid;
};

// The block-table loads of the tile at t0, all issued back to back and none waited for here: the
// values are first used by issueTile, an iteration later (ncu, session 6: with a use right after
// each load, the lookups of a tile ran one L2 round trip after the other, ~2 µs a tile, and the
// cluster-scope acquire of every tile empties L1, so each one went to L2). Entry 0 stands in for
// pieces past `end` (a non-empty context has one).
template <class C>
__device__ __forceinline__ void fetchRows(const PagedCacheRef& cache, const FastDiv& byBlock, int32_t t0, int32_t end,
                                          int rank, int tid, TileRows<C>& rows) {
    const auto blockSize = static_cast<uint32_t>(cache.block_size);
    rows.valid = 0u;
    forPieces<C::kPiecesPerThread>([&](auto kc) {
        constexpr int k = decltype(kc)::value;
        const Piece pc = pieceOf<C, k>(tid, rank);
        const int32_t pos = t0 + pc.posInTile;
        const bool valid = pc.exists && pos < end;
        const uint32_t tableIdx = valid ? byBlock(static_cast<uint32_t>(pos)) : 0u;
        rows.offset[k] = valid ? pos - static_cast<int32_t>(tableIdx * blockSize) : 0;
        rows.block[k] = __ldg(cache.block_table + tableIdx);
        rows.valid |= valid ? (1u << k) : 0u;
    });
}

// cp.async of this thread's pieces of a tile (rows from fetchRows) into `stage`; zeros past its end.
template <class C>
__device__ __forceinline__ void issueTile(const PagedCacheRef& cache, Smem<C>& sm, int stage, int rank, int tid,
                                          const TileRows<C>& rows) {
    const uint32_t ownBase = smemAddr(&sm.own[stage][0][0]);
    const uint32_t vBase = smemAddr(&sm.v[stage][0][0]);
    forPieces<C::kPiecesPerThread>([&](auto kc) {
        constexpr int k = decltype(kc)::value;
        const Piece pc = pieceOf<C, k>(tid, rank);
        if (pc.exists) {
            const int32_t row = rows.block[k] * cache.block_size + rows.offset[k];
            const bf16* src = cache.layer_base + static_cast<int64_t>(row) * kEntry + pc.srcDim;
            const uint32_t dst = (k < C::kOwnPerThread ? ownBase : vBase) + pc.dstOffset * 2;
            cpAsync16(dst, src, (rows.valid >> k) & 1u ? 16 : 0);
        }
    });
}

// grid: (R × splits, n_q, ceil(H / 16)) in clusters of (R, 1, 1); block: W warps; dynamic shared
// memory: sizeof(Smem<C>).
template <class C>
__global__ void __launch_bounds__(C::kThreads) mlaDecodeSlicedKernel(MlaDecodeParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    extern __shared__ __align__(16) unsigned char smemRaw[];
    Smem<C>& sm = *reinterpret_cast<Smem<C>*>(smemRaw);

    // Position, block table and cache may come before the wait only with tiles_before_wait (they
    // were written two or more kernels back, mla_decode.h); q_lat always after it.
    if (p.launch_next_early) pdlLaunchNext();  // the exception to pdl.cuh rule 3 (mla_decode.h)
    bool early = p.tiles_before_wait;
    if (!early) {
        pdlWaitForPrevious();
        if (!p.launch_next_early) pdlLaunchNext();
    }

    const int rank = static_cast<int>(clusterRank());
    const int split = blockIdx.x / C::R;
    const int qi = blockIdx.y;
    const int h0 = blockIdx.z * kHeads;
    const SplitRange range = splitRange(p, qi, split);
    // Splits this query does not reach: the whole cluster leaves before any cluster barrier.
    if (split >= range.used) {
        if (early) pdlWaitForPrevious();  // pdl.cuh rule 2
        return;
    }
    const auto begin = static_cast<int32_t>(range.begin);
    const auto end = static_cast<int32_t>(range.end);  // > begin
    const int nTiles = static_cast<int>(ceilDiv(end - begin, C::T));
    // The S − 2 tiles issued before the wait must not hold a new entry of the kernel just before
    // (cluster-uniform: every rank has this split).
    if (early && !earlyTilesWrittenBefore(p, begin, end, static_cast<int64_t>(C::S - 2) * C::T)) {
        pdlWaitForPrevious();
        if (!p.launch_next_early) pdlLaunchNext();
        early = false;
    }

    const int tid = threadIdx.x;
    const int warp = tid / kWarpSize;
    const int lane = tid % kWarpSize;
    const int g = lane / 4;  // fragment row group
    const int t = lane % 4;  // thread in group

    // Every block of the cluster must have started, and initialised the mbarriers the pushes
    // complete, before anyone stores into its shared memory; the matching wait comes just before
    // the first push. One arrival per phase: thread 0's, with the phase's bytes.
    if (tid == 0) {
        mbarrierInit(smemAddr(&sm.gathFull[0]), 1);
        mbarrierInit(smemAddr(&sm.gathFull[1]), 1);
        fenceMbarrierInit();
    }
    __syncwarp();  // the .aligned barrier below wants converged warps
    clusterArriveRelaxed();

    // q as A fragments of this warp's k-steps. Register r of a k-step holds head row g + 8·(r % 2),
    // dims k0 + 2t + 8·(r / 2), +1 (layout A); rows past n_heads are zeros. Loaded as fp32 first
    // (before the tiles are issued, unless the tiles come before the PDL wait), split into bf16
    // hi + lo once the tiles are on their way.
    const int nt = warp % C::kScoreNTiles;  // score n-tile: positions 8·nt .. 8·nt + 7 of the rank's slice
    const int kc = warp / C::kScoreNTiles;  // k-chunk
    float2 qRaw[C::kLatKs][4];
    uint32_t qPe[C::kRopeSlots][4];
    auto loadQ = [&] {
#pragma unroll
        for (int i = 0; i < C::kLatKs; ++i) {
            const int ks = kc * C::kLatKs + i;
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int head = h0 + g + 8 * (r % 2);
                const int d = ks * 16 + 2 * t + 8 * (r / 2);
                qRaw[i][r] = head < p.n_heads ? *reinterpret_cast<const float2*>(p.q_lat + qi * p.q_lat_token_stride +
                                                                                 head * p.q_lat_head_stride + d)
                                              : make_float2(0.0f, 0.0f);
            }
        }
#pragma unroll
        for (int j = 0; j < C::kRopeSlots; ++j) {
            const int rk = kc + j * C::kKChunks;  // rope k-step (round robin over the k-chunks)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int head = h0 + g + 8 * (r % 2);
                qPe[j][r] = 0u;
                if (rk < kRopeKSteps && head < p.n_heads)
                    qPe[j][r] = *reinterpret_cast<const uint32_t*>(
                        p.q_pe + qi * p.q_pe_token_stride + head * p.q_pe_head_stride + rk * 16 + 2 * t + 8 * (r / 2));
            }
        }
    };
    if (!early) loadQ();

    // The block-table lookups of the first S − 1 tiles at once (one L2 round trip before the first
    // cp.async, not one per piece), then the first S − 2 tiles in flight; the rows of the next one
    // stay in registers.
    const FastDiv byBlock(static_cast<uint32_t>(p.cache.block_size));
    TileRows<C> first[C::S - 1];
#pragma unroll
    for (int i = 0; i < C::S - 1; ++i) {
        if (i < nTiles) {
            fetchRows<C>(p.cache, byBlock, begin + i * C::T, end, rank, tid, first[i]);
        } else {
#pragma unroll
            for (int k = 0; k < C::kPiecesPerThread; ++k) {
                first[i].block[k] = 0;
                first[i].offset[k] = 0;
            }
            first[i].valid = 0u;
        }
    }
#pragma unroll
    for (int i = 0; i < C::S - 2; ++i) {
        if (i < nTiles) issueTile<C>(p.cache, sm, i, rank, tid, first[i]);
        cpAsyncCommit();
    }
    TileRows<C> rows = first[C::S - 2];
    if (early) {
        pdlWaitForPrevious();  // q_lat (the kernel just before) from here on
        if (!p.launch_next_early) pdlLaunchNext();
        loadQ();
    }
    uint32_t qHi[C::kLatKs][4], qLo[C::kLatKs][4];
#pragma unroll
    for (int i = 0; i < C::kLatKs; ++i)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const float2 q = qRaw[i][r];
            const __nv_bfloat162 hi = __floats2bfloat162_rn(q.x, q.y);
            const float2 hiF = __bfloat1622float2(hi);
            qHi[i][r] = bitsOf(hi);
            qLo[i][r] = bitsOf(__floats2bfloat162_rn(q.x - hiF.x, q.y - hiF.y));  // exact differences
        }

    const float scaleLog2 = p.softmax_scale * kLog2e;
    // Softmax ownership: head row sr, positions sc .. sc + kRowElems − 1 of each tile.
    const int sr = tid / C::kThreadsPerRow;
    const int sc = (tid % C::kThreadsPerRow) * C::kRowElems;
    float mRun = -INFINITY;  // running max of scale·log2(e)·s (the same in the row's threads and in every rank)
    float lRun = 0.0f;       // running Σ bf16(exp2(s − mRun))

    float o[C::kPvPerWarp][4];
#pragma unroll
    for (int j = 0; j < C::kPvPerWarp; ++j)
#pragma unroll
        for (int c = 0; c < 4; ++c) o[j][c] = 0.0f;

    // O = diag(α)·O + P·V for the tile in `stage`, probabilities in slot `b`; this warp's n-tiles
    // of the rank's latent dims.
    auto pv = [&](int stage, int b) {
        const float aLo = sm.alpha[b][g];
        const float aHi = sm.alpha[b][g + 8];
#pragma unroll
        for (int j = 0; j < C::kPvPerWarp; ++j) {
            o[j][0] *= aLo;
            o[j][1] *= aLo;
            o[j][2] *= aHi;
            o[j][3] *= aHi;
        }
#pragma unroll
        for (int kk = 0; kk < C::kPvKs; ++kk) {
            uint32_t a[4];
            ldsm4(a, smemAddr(&sm.p[b][(lane % 8) + 8 * ((lane / 8) % 2)][kk * 16 + 8 * (lane / 16)]));
            const int pos = kk * 16 + (lane % 8) + 8 * ((lane / 8) % 2);
            if constexpr (C::kPvPerWarp == 1) {
                uint32_t bb[2];
                ldsm2Trans(bb, smemAddr(&sm.v[stage][pos][warp * 8]));
                mma16816(o[0], a, bb[0], bb[1]);
            } else {
#pragma unroll
                for (int jp = 0; jp < C::kPvPerWarp / 2; ++jp) {
                    const int dim = (warp * C::kPvPerWarp + 2 * jp) * 8 + 8 * (lane / 16);
                    uint32_t bb[4];
                    ldsm4Trans(bb, smemAddr(&sm.v[stage][pos][dim]));
                    mma16816(o[2 * jp], a, bb[0], bb[1]);
                    mma16816(o[2 * jp + 1], a, bb[2], bb[3]);
                }
            }
        }
    };

    for (int tile = 0; tile < nTiles; ++tile) {
        const int32_t t0 = begin + tile * C::T;
        const int stage = tile % C::S;
        const int b = tile % 2;
        cpAsyncWait<C::S - 3>();  // this tile's group is done (later ones may be pending)
        __syncthreads();          // (A) the tile, and P/α of the previous tile, are visible to every warp

        // 1. Partial scores of this warp's n-tile and k-chunk: hi/lo × even/odd k-steps in four
        //    independent accumulators.
        {
            float acc[4][4];
#pragma unroll
            for (int a = 0; a < 4; ++a)
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[a][c] = 0.0f;
            const bf16* rowBase = &sm.own[stage][nt * 8 + (lane % 8)][0];
#pragma unroll
            for (int i = 0; i < C::kLatKs; i += 2) {
                const int ks = kc * C::kLatKs + i;
                // Matrices: dims [16ks, +8), [16ks + 8, +8), [16ks + 16, +8), [16ks + 24, +8) of the
                // n-tile's 8 positions = b0, b1 of k-step ks, b0, b1 of k-step ks + 1.
                uint32_t bb[4];
                ldsm4(bb, smemAddr(rowBase + ks * 16 + 8 * (lane / 8)));
                mma16816(acc[0], qHi[i], bb[0], bb[1]);
                mma16816(acc[2], qLo[i], bb[0], bb[1]);
                mma16816(acc[1], qHi[i + 1], bb[2], bb[3]);
                mma16816(acc[3], qLo[i + 1], bb[2], bb[3]);
            }
#pragma unroll
            for (int j = 0; j < C::kRopeSlots; ++j) {
                const int rk = kc + j * C::kKChunks;
                if (rk < kRopeKSteps) {  // warp-uniform
                    uint32_t bb[2];
                    ldsm2(bb, smemAddr(rowBase + kLatent + rk * 16 + 8 * ((lane / 8) % 2)));
                    mma16816(acc[j % 2], qPe[j], bb[0], bb[1]);
                }
            }
            const int col = nt * 8 + 2 * t;
            *reinterpret_cast<float2*>(&sm.part[kc][g][col]) = make_float2(
                (acc[0][0] + acc[2][0]) + (acc[1][0] + acc[3][0]), (acc[0][1] + acc[2][1]) + (acc[1][1] + acc[3][1]));
            *reinterpret_cast<float2*>(&sm.part[kc][g + 8][col]) = make_float2(
                (acc[0][2] + acc[2][2]) + (acc[1][2] + acc[3][2]), (acc[0][3] + acc[2][3]) + (acc[1][3] + acc[3][3]));
        }
        __syncthreads();  // (B) partial scores complete

        // 2. The rank's score slice (k-chunks added in a fixed order, scaled) into every rank's
        //    gathered tile, slot b, columns [rank·T/R, +T/R), each store counted by that rank's
        //    mbarrier b. Slot b of every rank was last read for tile − 2: each rank read it before
        //    it pushed tile − 1 (barriers (A), (B) in between), and this rank received all those
        //    pushes before it got here. Thread 0 opens this tile's phase of its own mbarrier b
        //    (the phase of tile − 2 completed before its wait returned); bytes that come first
        //    leave the transaction count negative until then, and the phase open.
        if (tile == 0) clusterWaitAcquire();  // every block of the cluster has started
        const uint32_t gathBar = smemAddr(&sm.gathFull[b]);
        if (tid == 0) mbarrierArriveExpectTx(gathBar, kHeads * C::T * sizeof(float));
        for (int task = tid; task < C::kPushF4 * C::R; task += C::kThreads) {
            const int f = task % C::kPushF4;
            const auto dst = static_cast<uint32_t>(task / C::kPushF4);
            const int row = f / (C::kOwnPos / 4);
            const int c4 = (f % (C::kOwnPos / 4)) * 4;
            float4 s = *reinterpret_cast<const float4*>(&sm.part[0][row][c4]);
#pragma unroll
            for (int k = 1; k < C::kKChunks; ++k) {
                const float4 v = *reinterpret_cast<const float4*>(&sm.part[k][row][c4]);
                s.x += v.x;
                s.y += v.y;
                s.z += v.z;
                s.w += v.w;
            }
            s.x *= scaleLog2;
            s.y *= scaleLog2;
            s.z *= scaleLog2;
            s.w *= scaleLog2;
            storeAsyncCluster(mapToRank(smemAddr(&sm.gath[b][row][rank * C::kOwnPos + c4]), dst), s,
                              mapToRank(gathBar, dst));
        }

        // 3. While the other ranks' slices arrive: the next load, then P·V of the previous tile.
        //    Stage (tile + S − 2) % S last held tile − 2, whose P·V every warp finished before (A).
        {
            const int next = tile + C::S - 2;
            if (next < nTiles) issueTile<C>(p.cache, sm, next % C::S, rank, tid, rows);
            cpAsyncCommit();  // possibly empty: the wait above counts groups
            if (next + 1 < nTiles) fetchRows<C>(p.cache, byBlock, begin + (next + 1) * C::T, end, rank, tid, rows);
        }
        if (tile > 0) pv((tile - 1) % C::S, (tile - 1) % 2);

        mbarrierWaitParity(gathBar, static_cast<uint32_t>(tile / 2) & 1u);  // every rank's slice of the tile

        // 4. Online softmax of row sr over the tile: the same numbers in every rank.
        {
            float s[C::kRowElems];
#pragma unroll
            for (int k = 0; k < C::kRowElems; k += 4) {
                const float4 v = *reinterpret_cast<const float4*>(&sm.gath[b][sr][sc + k]);
                s[k] = v.x;
                s[k + 1] = v.y;
                s[k + 2] = v.z;
                s[k + 3] = v.w;
            }
#pragma unroll
            for (int k = 0; k < C::kRowElems; ++k)
                if (t0 + sc + k >= end) s[k] = -INFINITY;
            float tileMax = s[0];
#pragma unroll
            for (int k = 1; k < C::kRowElems; ++k) tileMax = fmaxf(tileMax, s[k]);
#pragma unroll
            for (int off = C::kThreadsPerRow / 2; off > 0; off >>= 1)
                tileMax = fmaxf(tileMax, __shfl_xor_sync(kFullMask, tileMax, off));
            // Position t0 < end is valid, so tileMax and mNew are finite; exp2(-inf) = 0 on the
            // first tile and for masked positions.
            const float mNew = fmaxf(mRun, tileMax);
            const float alpha = exp2f(mRun - mNew);
            uint32_t packed[C::kRowElems / 2];
            float psum = 0.0f;
#pragma unroll
            for (int k = 0; k < C::kRowElems; k += 2) {
                const __nv_bfloat162 pb = __floats2bfloat162_rn(exp2f(s[k] - mNew), exp2f(s[k + 1] - mNew));
                const float2 pf = __bfloat1622float2(pb);  // the rounded values P·V will use
                psum += pf.x + pf.y;
                packed[k / 2] = bitsOf(pb);
            }
#pragma unroll
            for (int off = C::kThreadsPerRow / 2; off > 0; off >>= 1) psum += __shfl_xor_sync(kFullMask, psum, off);
            lRun = lRun * alpha + psum;
            mRun = mNew;
            if constexpr (C::kRowElems == 8) {
                *reinterpret_cast<uint4*>(&sm.p[b][sr][sc]) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
            } else {
                *reinterpret_cast<uint2*>(&sm.p[b][sr][sc]) = make_uint2(packed[0], packed[1]);
            }
            if (tid % C::kThreadsPerRow == 0) {
                sm.alpha[b][sr] = alpha;
                sm.lFinal[sr] = lRun;
            }
        }
    }
    __syncthreads();  // P, α and l of the last tile
    pv((nTiles - 1) % C::S, (nTiles - 1) % 2);
    cpAsyncWait<0>();  // only empty groups can be left; leave no copy in flight

    const int pvCol0 = rank * C::kVDims + warp * C::kPvPerWarp * 8 + 2 * t;  // + 8·j: this thread's columns
    const int headLo = h0 + g;
    const int headHi = h0 + g + 8;
    // Deferred merge (one query): every used split's partials, the next kernel merges them.
    const bool deferMerge = range.used <= p.defer_merge_max_splits;
    if (range.used == 1 && !deferMerge) {  // the whole context in this split: the normalised output, no workspace
        const float invLo = 1.0f / sm.lFinal[g];  // >= 1 before the inverse: the maximum's own term is exp2(0)
        const float invHi = 1.0f / sm.lFinal[g + 8];
#pragma unroll
        for (int j = 0; j < C::kPvPerWarp; ++j) {
            const int col = pvCol0 + 8 * j;
            if (headLo < p.n_heads)
                *reinterpret_cast<__nv_bfloat162*>(p.out + qi * p.out_token_stride + headLo * p.out_head_stride + col) =
                    __floats2bfloat162_rn(o[j][0] * invLo, o[j][1] * invLo);
            if (headHi < p.n_heads)
                *reinterpret_cast<__nv_bfloat162*>(p.out + qi * p.out_token_stride + headHi * p.out_head_stride + col) =
                    __floats2bfloat162_rn(o[j][2] * invHi, o[j][3] * invHi);
        }
        return;
    }

    // 5. Several splits: partial O columns of this rank, (m, l) from rank 0 (every rank has the same).
    const int64_t qRow = static_cast<int64_t>(qi) * p.n_heads;
#pragma unroll
    for (int j = 0; j < C::kPvPerWarp; ++j) {
        const int col = pvCol0 + 8 * j;
        if (headLo < p.n_heads)
            *reinterpret_cast<float2*>(p.partial_o + ((qRow + headLo) * p.n_splits + split) * kLatent + col) =
                make_float2(o[j][0], o[j][1]);
        if (headHi < p.n_heads)
            *reinterpret_cast<float2*>(p.partial_o + ((qRow + headHi) * p.n_splits + split) * kLatent + col) =
                make_float2(o[j][2], o[j][3]);
    }
    // Every rank writes the split's (m, l): the ranks ran the same softmax on the same scores, so
    // the values are the same bits, and each rank's own fence below orders them before its own
    // arrival; no cluster barrier (and its GPU-scope fence) at the end.
    if (tid % C::kThreadsPerRow == 0 && h0 + sr < p.n_heads) {
        float* ml = p.partial_ml + ((qRow + h0 + sr) * p.n_splits + split) * 2;
        *reinterpret_cast<float2*>(ml) = make_float2(mRun * kLn2, lRun);  // natural-log max, as mla_decode.h says
    }
    // Deferred: the next kernel reads the partials after this one completes (its PDL wait).
    if (deferMerge) return;
    fenceAcqRelGpu();  // this block's partial is visible GPU-wide before its arrival is counted
    __syncthreads();
    if (tid == 0) {
        int* counter =
            p.merge_counters + (static_cast<int64_t>(qi) * gridDim.z + blockIdx.z) * kMlaDecodeClusterBlocks + rank;
        const bool last = atomicAdd(counter, 1) == range.used - 1;
        if (last) {
            fenceAcqRelGpu();        // acquire: the other splits' partials are read after this
            atomicExch(counter, 0);  // every arrival of this launch is counted: ready for the next (no wait)
        }
        sm.lastArrival = last ? 1 : 0;
    }
    __syncthreads();
    if (!sm.lastArrival) return;

    // 6. The last arrival merges column slice `rank` over the used splits, in split order, in
    //    chunks of kMergeChunk splits (one with the position on the device): the head rows' threads
    //    load the chunk's (m, l) at once and turn them into weights in shared memory (the tile
    //    stages are free now), then every thread sums its columns of the chunk's partials with the
    //    loads unrolled. Online across chunks, as the softmax. L2 reads (__ldcg): other SMs wrote
    //    these lines.
    float* sW = reinterpret_cast<float*>(&sm.own[0][0][0]);  // [16][kMergeChunk] weights of the chunk
    float* sScale = sW + kHeads * kMergeChunk;               // [16] rescale of the running sums
    float* sInvL = sScale + kHeads;                          // [16] 1 / Σ w·l
    const int lr = tid % C::kThreadsPerRow;                  // this thread's place in head row sr
    const float2* mlRow = reinterpret_cast<const float2*>(p.partial_ml) +
                          (qRow + min(h0 + sr, p.n_heads - 1)) * p.n_splits;  // rows past n_heads: unused copies
    constexpr int kColF4 = C::kVDims / 4;
    constexpr int kTasks = kHeads * kColF4 / C::kThreads;
    constexpr int kMlPerThread = kMergeChunk / C::kThreadsPerRow;
    float4 acc[kTasks];
#pragma unroll
    for (int k = 0; k < kTasks; ++k) acc[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float gMax = -INFINITY;  // of the head row (natural-log units), the same in the row's threads
    float gSum = 0.0f;
    for (int c0 = 0; c0 < range.used; c0 += kMergeChunk) {
        const int n = min(kMergeChunk, range.used - c0);
        float2 ml[kMlPerThread];
        float cMax = -INFINITY;
#pragma unroll
        for (int j = 0; j < kMlPerThread; ++j) {
            const int sIdx = lr + j * C::kThreadsPerRow;
            ml[j] = sIdx < n ? __ldcg(mlRow + c0 + sIdx) : make_float2(-INFINITY, 0.0f);
            cMax = fmaxf(cMax, ml[j].x);
        }
#pragma unroll
        for (int off = C::kThreadsPerRow / 2; off > 0; off >>= 1)
            cMax = fmaxf(cMax, __shfl_xor_sync(kFullMask, cMax, off));
        const float mNew = fmaxf(gMax, cMax);               // finite: split c0 has work
        const float scale = exp2f((gMax - mNew) * kLog2e);  // 0 on the first chunk
        float part = 0.0f;
#pragma unroll
        for (int j = 0; j < kMlPerThread; ++j) {
            const int sIdx = lr + j * C::kThreadsPerRow;
            if (sIdx < n) {
                const float w = exp2f((ml[j].x - mNew) * kLog2e);
                sW[sr * kMergeChunk + sIdx] = w;
                part = fmaf(w, ml[j].y, part);
            }
        }
#pragma unroll
        for (int off = C::kThreadsPerRow / 2; off > 0; off >>= 1) part += __shfl_xor_sync(kFullMask, part, off);
        gSum = gSum * scale + part;
        gMax = mNew;
        if (lr == 0) sScale[sr] = scale;
        __syncthreads();  // the chunk's weights
#pragma unroll
        for (int k = 0; k < kTasks; ++k) {
            const int task = tid + k * C::kThreads;
            const int hl = task / kColF4;
            if (h0 + hl >= p.n_heads) continue;
            const float sc = sScale[hl];
            float4 a = make_float4(acc[k].x * sc, acc[k].y * sc, acc[k].z * sc, acc[k].w * sc);
            const float* src =
                p.partial_o + ((qRow + h0 + hl) * p.n_splits + c0) * kLatent + rank * C::kVDims + (task % kColF4) * 4;
            const float* w = sW + hl * kMergeChunk;
#pragma unroll 16
            for (int sIdx = 0; sIdx < n; ++sIdx) {
                const float4 v = __ldcg(reinterpret_cast<const float4*>(src + static_cast<int64_t>(sIdx) * kLatent));
                a.x = fmaf(w[sIdx], v.x, a.x);
                a.y = fmaf(w[sIdx], v.y, a.y);
                a.z = fmaf(w[sIdx], v.z, a.z);
                a.w = fmaf(w[sIdx], v.w, a.w);
            }
            acc[k] = a;
        }
        __syncthreads();  // every thread is done with the chunk's weights
    }
    if (lr == 0) sInvL[sr] = 1.0f / gSum;  // >= 1 before the inverse: the maximum's split has l >= 1, weight 1
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTasks; ++k) {
        const int task = tid + k * C::kThreads;
        const int hl = task / kColF4;
        const int head = h0 + hl;
        if (head >= p.n_heads) continue;
        const float inv = sInvL[hl];
        bf16* out = p.out + qi * p.out_token_stride + head * p.out_head_stride + rank * C::kVDims + (task % kColF4) * 4;
        *reinterpret_cast<__nv_bfloat162*>(out) = __floats2bfloat162_rn(acc[k].x * inv, acc[k].y * inv);
        *reinterpret_cast<__nv_bfloat162*>(out + 2) = __floats2bfloat162_rn(acc[k].z * inv, acc[k].w * inv);
    }
#endif
}

// The instantiated shapes. Variant 0 is the default; the bench times them all.
struct Variant {
    const char* name;
    void (*kernel)(MlaDecodeParams);
    size_t smem;
    int ranks;
    int threads;
};
template <int R, int T, int W, int S>
constexpr Variant variantOf(const char* name) {
    using C = Cfg<R, T, W, S>;
    static_assert(sizeof(Smem<C>) <= 227 * 1024, "shared memory of one block on sm_90");
    static_assert(mergeFitsStages<C>(), "merge weights fit the stages");
    static_assert(offsetof(Smem<C>, v) % 16 == 0 && offsetof(Smem<C>, part) % 16 == 0 &&
                      offsetof(Smem<C>, gath) % 16 == 0 && offsetof(Smem<C>, p) % 16 == 0,
                  "16-byte aligned shared arrays");
    return Variant{name, mlaDecodeSlicedKernel<C>, sizeof(Smem<C>), R, C::kThreads};
}
const Variant kVariants[] = {
    variantOf<8, 64, 4, 4>("r8 t64 w4 s4"),   variantOf<8, 64, 8, 5>("r8 t64 w8 s5"),
    variantOf<8, 64, 8, 4>("r8 t64 w8 s4"),   variantOf<4, 64, 8, 4>("r4 t64 w8 s4"),
    variantOf<8, 128, 8, 3>("r8 t128 w8 s3"), variantOf<8, 128, 8, 4>("r8 t128 w8 s4"),
};
constexpr int kVariantCount = static_cast<int>(sizeof(kVariants) / sizeof(kVariants[0]));
static_assert(kVariantCount == kMlaDecodeSlicedVariants, "mla_decode.h lists the variants");

// The most splits one launch uses with the position on the device: each merging block reads
// 4 KB (R 8) per split, so more splits than this cost more in the merge than they save.
constexpr int kMaxDeviceSplits = kMergeChunk;

bool aligned(const void* ptr, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

// Per device and variant, once: whether it runs here (sm_90 code, cluster launch, the shared
// memory) and how many of its clusters are resident at once (0: unknown).
struct DeviceFit {
    bool runs = false;
    int activeClusters = 0;
};
DeviceFit deviceFit(int variant) {
    static PerDeviceCache<kVariantCount> fits;
    const int fit = fits.getForCurrentDevice(
        [variant](int dev) {
            const Variant& v = kVariants[variant];
            return clusterKernelFit(reinterpret_cast<const void*>(v.kernel), dev, v.ranks, v.threads, v.smem);
        },
        variant);
    return fit == 0 ? DeviceFit{} : DeviceFit{true, fit - 1};
}

// The default shape: "r4 t64 w8 s4" beat the tensor-core kernel at 1K, 4K and 16K context on the
// H200 (session 6, tools/bench/mla_decode_bench.cu: 9.57 / 15.21 / 27.19 µs against 17.21 / 21.95 /
// 28.60); "r8 t64 w8 s4" (session 6's default) took 9.95 / 15.71 / 31.79.
constexpr int kDefaultVariant = 3;

// DSV2_MLA_SLICED_VARIANT=<index> (read once) picks the variant where the params do not.
int envVariant() {
    static const int variant = [] {
        const char* env = std::getenv("DSV2_MLA_SLICED_VARIANT");
        if (!env || !*env) return kDefaultVariant;
        char* endPtr = nullptr;
        const long v = std::strtol(env, &endPtr, 10);
        return (*endPtr == '\0' && v >= 0 && v < kVariantCount) ? static_cast<int>(v) : kDefaultVariant;
    }();
    return variant;
}

int chosenVariant(const MlaDecodeParams& p) { return p.sliced_variant >= 0 ? p.sliced_variant : envVariant(); }

}  // namespace

const char* mlaDecodeSlicedVariantName(int variant) {
    return variant >= 0 && variant < kVariantCount ? kVariants[variant].name : "?";
}

bool mlaDecodeSlicedSupports(const MlaDecodeParams& p) {
    if (p.d_latent != kLatent || p.d_rope != kRope || p.cache.entry_dim != kEntry) return false;
    if (!aligned(p.q_lat, 8) || p.q_lat_token_stride % 2 || p.q_lat_head_stride % 2) return false;
    if (!aligned(p.q_pe, 4) || p.q_pe_token_stride % 2 || p.q_pe_head_stride % 2) return false;
    if (!aligned(p.out, 4) || p.out_token_stride % 2 || p.out_head_stride % 2) return false;
    if (!aligned(p.partial_o, 16) || !aligned(p.partial_ml, 8)) return false;
    const int variant = chosenVariant(p);
    return variant >= 0 && variant < kVariantCount && deviceFit(variant).runs;
}

Status launchMlaDecodeSliced(const MlaDecodeParams& p, cudaStream_t stream, int* n_splits_used) {
    const int variant = chosenVariant(p);
    if (variant < 0 || variant >= kVariantCount)
        return Status(StatusCode::InvalidArgument, "launchMlaDecodeSliced: sliced_variant must be -1 (default) or 0.." +
                                                       std::to_string(kVariantCount - 1));
    const Variant& v = kVariants[variant];
    const DeviceFit fit = deviceFit(variant);
    if (!fit.runs)
        return Status(StatusCode::Unsupported, "launchMlaDecodeSliced: needs an sm_90 GPU with cluster launch");
    if (!p.merge_counters)
        return Status(StatusCode::InvalidArgument,
                      "launchMlaDecodeSliced: merge_counters missing (zeroed int32 [n_q, ceil(H / 16), 8])");
    MlaDecodeParams q = p;
    const int headGroups = static_cast<int>(ceilDiv(p.n_heads, kHeads));
    if (p.q_pos0_device) {
        // The kernel derives the split length from n_splits: fewer, longer splits rather than a
        // second wave of clusters or a merge that reads more than it saves. The workspace, sized
        // for p.n_splits, holds fewer too (its rows are then n_splits slots apart).
        int64_t cap = kMaxDeviceSplits;
        if (fit.activeClusters > 0)
            cap = std::min<int64_t>(cap, std::max<int64_t>(1, fit.activeClusters / (int64_t{p.n_q} * headGroups)));
        q.n_splits = static_cast<int>(std::min<int64_t>(p.n_splits, cap));
    }
    if (n_splits_used) *n_splits_used = q.n_splits;
    const dim3 grid(static_cast<unsigned>(q.n_splits * v.ranks), static_cast<unsigned>(q.n_q),
                    static_cast<unsigned>(headGroups));
    const cudaLaunchAttribute cluster = clusterLaunchAttribute(v.ranks);
    DSV2_CUDA_CHECK(
        launchPdlWith(&cluster, 1u, v.kernel, grid, dim3(static_cast<unsigned>(v.threads)), v.smem, stream, q));
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda::mla_decode_detail
