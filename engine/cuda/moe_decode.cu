// The one-token MoE expert kernels (moe_decode.h): stream the chosen experts' weights once per
// step. Measured on an H200 (tools/bench/moe_decode_bench.cu: V2-Lite shapes, CUDA graph of 8
// distinct layers so L2 holds nothing of the next launch, GPU clocks): a plain 16-byte streaming
// read of the same bytes takes 21.7 µs (92 MB, 4.25 TB/s) and 11.8 µs (46 MB, 3.9 TB/s, launch
// ramp and tail weigh more on the smaller one).
//
// gate|up (Lite: 11264 activations × (gate row + up row) × 4 KB = 92 MB): one warp per activation,
// kGateUpUnroll 16-byte loads per lane per row issued together (8 × 512 B = 4 KB per warp in
// flight), 76 registers => 24 warps per SM, ~96 KB in flight per SM against the ~32 KB that
// bandwidth × latency (4.26 TB/s × ~1 µs / 132 SMs) asks for. 1408 blocks of 8 warps, in ~4.7
// waves of 3 blocks per SM; the shared expert's rows come first (they need no routing). 22.6 µs =
// 4.08 TB/s (was 23.9 µs). Longer batches (8 per row, 128 registers) or a persistent grid with a
// per-block expert table measured slower: occupancy beats depth here.
//
// down (Lite: 2048 rows × (6·1408 + 2816) = 11264 values = 46 MB): the old kernel (one warp per
// output row, 256 blocks = 1.9 waves, 16 warps per SM) took 17.5 µs (2.6 TB/s). Now a block owns
// kDownRows output rows and splits their long row (this GPU's chosen experts' rows j, router order,
// then the shared expert's row j) into kWarps slices, one per warp (split-K): a lane loads one act
// vector and kDownRows weight vectors per step. 512 blocks of 8 warps at 53 registers (4 blocks
// per SM) are ONE wave on 132 SMs: no tail wave, 32 warps per SM. The 8 warps' partial sums are
// added in shared memory in warp order, so the result is deterministic (no atomics) and needs no
// scratch. 13.2 µs = 3.5 TB/s. Under ncu (base clocks, flushed caches, as issue 9 measured):
// gate|up 25.1 µs (was 26.9), down 15.8 µs (was 22.2).
//
// PDL (pdl.cuh): gate|up waits before touching anything but the shared expert (x and topk_ids
// come from the kernels before; the routed weights depend on topk_ids) and then lets the next
// kernel launch. down resolves the routing and loads each lane's first weight vectors before its
// wait (the routing was written two launches back), act after it.
// Prefetching the shared expert's rows into L2 before the wait was tried and measured slower
// (gate|up +2.5 µs, down +0.4 µs): those lines are then requested twice. The gate|up → down pair:
// 35.7 µs with PDL, 36.6 µs without (was 41.5 µs), 94 % of the two plain reads.
//
// Numbers: fp32 accumulation, the grouped path's bf16 rounding of gate, up and act; the summation
// order is fixed by the launch geometry, so results are bit-identical run to run.
#include "cuda/moe_decode.h"

#include <string>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/pdl.cuh"

namespace dsv2::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kMaxSegments = 33;  // top_k <= 32 routed experts + the shared expert

// Launch geometry (see the header comment; measured on an H200, tools/bench/moe_decode_bench.cu).
constexpr int kGateUpRows = 1;    // activations per warp (must divide 8: a warp never straddles experts)
constexpr int kGateUpUnroll = 4;  // 16-byte loads per lane per weight row in flight
constexpr int kDownRows = 4;      // output rows per block (must divide 8 = the hidden granularity)
constexpr int kDownUnroll = 1;    // steps (1 act + kDownRows weight vectors per lane) in flight

// Walks a lane's vectors v = first, first + 32, ... (< end) in batches: batch<U>(v) handles v,
// v + 32, ..., v + 32·(U-1) and issues all its loads before its first product. Full batches of
// kUnroll, then of kUnroll/2, /4, ... for the rest (each at most once for powers of two), so the
// end of a row keeps several loads in flight too. (A predicated batch would be shorter to write,
// but ptxas then serialises its loads.)
template <int kUnroll, typename Batch>
__device__ __forceinline__ void forEachBatch(int first, int end, Batch&& batch) {
    int v = first;
    for (; v + (kUnroll - 1) * kWarpSize < end; v += kUnroll * kWarpSize) batch.template operator()<kUnroll>(v);
    if constexpr (kUnroll > 1) forEachBatch<kUnroll / 2>(v, end, batch);
}

// 0, but not to the compiler (hidden > 0 is checked at launch). A batch ORs all its loaded words,
// ANDs them with this and ORs the result into the activation vectors its products read: every
// product then depends on every load, so all loads of the batch are issued before the first product.
// Without it ptxas (CUDA 13) interleaves loads and products and keeps only one or two 16-byte loads
// per lane in flight (seen in the SASS), a fraction of what HBM needs.
__device__ __forceinline__ unsigned opaqueZero(const MoeDecodeParams& p) {
    return static_cast<unsigned>(p.hidden) >> 31;
}

// The kRows activations of one work item (gate rows at gate, up rows at up; act from actIndex).
template <int kRows, int kUnroll>
__device__ __forceinline__ void gateUpItem(const MoeDecodeParams& p, const bf16* gate, const bf16* up, int64_t actIndex,
                                           int lane) {
    const int nVec = p.hidden / 8;
    const auto* x16 = reinterpret_cast<const uint4*>(p.x);
    const auto* g16 = reinterpret_cast<const uint4*>(gate);
    const auto* u16 = reinterpret_cast<const uint4*>(up);
    float g[kRows], u[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) g[r] = u[r] = 0.0f;
    const unsigned zero = opaqueZero(p);
    forEachBatch<kUnroll>(lane, nVec, [&]<int U>(int v) {
        uint4 gw[kRows][U], uw[kRows][U], xv[U];
#pragma unroll
        for (int s = 0; s < U; ++s) {
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
                gw[r][s] = __ldcs(g16 + static_cast<int64_t>(r) * nVec + v + s * kWarpSize);
                uw[r][s] = __ldcs(u16 + static_cast<int64_t>(r) * nVec + v + s * kWarpSize);
            }
            xv[s] = __ldg(x16 + v + s * kWarpSize);
        }
        unsigned dep = 0;  // see opaqueZero
#pragma unroll
        for (int s = 0; s < U; ++s) {
#pragma unroll
            for (int r = 0; r < kRows; ++r) dep |= gw[r][s].x | uw[r][s].x;
            dep |= xv[s].x;
        }
        dep &= zero;
#pragma unroll
        for (int s = 0; s < U; ++s) xv[s].x |= dep;
#pragma unroll
        for (int s = 0; s < U; ++s)
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
                g[r] += dot8(gw[r][s], xv[s]);
                u[r] += dot8(uw[r][s], xv[s]);
            }
    });
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const float gs = warpSum(g[r]), us = warpSum(u[r]);
        if (lane == 0) p.act[actIndex + r] = toBf16(silu(toFloat(toBf16(gs))) * toFloat(toBf16(us)));
    }
}

// One warp per kRows consecutive activations: their gate rows and up rows, then
// act[i] = bf16(silu(bf16(gate)) · bf16(up)) (the rounding points of the grouped path: gate|up
// stored in bf16, then swiglu.cu). Work order: the shared expert's activations first (they need no
// routing), then the routed ones; act keeps its layout ([0, top_k·inter) routed in router order,
// then the shared expert).
template <int kRows, int kUnroll>
__global__ void __launch_bounds__(kThreads) moeDecodeGateUpKernel(MoeDecodeParams p) {
    static_assert(8 % kRows == 0, "a warp's activations must lie in one expert (inter is a multiple of 8)");
    const int lane = threadIdx.x % kWarpSize;
    const int64_t routedAct = static_cast<int64_t>(p.top_k) * p.inter;
    const int64_t nItems = (routedAct + p.shared_inter) / kRows, sharedItems = p.shared_inter / kRows;
    const int64_t q = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarpSize;  // work item
    // A shared-expert item with x_ready_before_wait reads only x (complete: see moe_decode.h) and
    // the weights, so it runs while the router still works and waits afterwards (pdl.cuh rule 2).
    const bool early = p.x_ready_before_wait && q < sharedItems;
    if (!early) {
        pdlWaitForPrevious();  // x and topk_ids come from the kernels before
        pdlLaunchNext();
    }
    if (q >= nItems) return;
    const int64_t first = q * kRows;
    const bf16 *gate, *up;
    int64_t actIndex;
    if (q < sharedItems) {
        gate = p.shared_gate_up + first * p.hidden;
        up = p.shared_gate_up + (p.shared_inter + first) * p.hidden;
        actIndex = routedAct + first;
        gateUpItem<kRows, kUnroll>(p, gate, up, actIndex, lane);
        if (early) {
            pdlWaitForPrevious();
            pdlLaunchNext();
        }
        return;
    } else {
        actIndex = first - p.shared_inter;
        const int slot = static_cast<int>(actIndex / p.inter);
        const int64_t r = actIndex - static_cast<int64_t>(slot) * p.inter;
        const bf16* w = p.expert_gate_up[p.topk_ids[slot]];
        if (!w) return;  // an expert of another GPU (several GPUs): the down kernel skips its slot
        gate = w + r * p.hidden;
        up = w + (p.inter + r) * p.hidden;
    }
    gateUpItem<kRows, kUnroll>(p, gate, up, actIndex, lane);
}

// One block per kRows output rows j0 .. j0+kRows-1: out[j] = Σ over the long row (this GPU's
// chosen experts' rows j, router order, then the shared expert's row j) of scale · w · act. Warp w
// sums slice w of the long row for all kRows rows (one act load serves kRows weight loads), then the
// slices are added in warp order.
template <int kRows, int kUnroll>
__global__ void __launch_bounds__(kThreads) moeDecodeDownKernel(MoeDecodeParams p) {
    static_assert(8 % kRows == 0, "hidden (a multiple of 8) must split into whole blocks");
    __shared__ const bf16* segBase[kMaxSegments];  // down weights of each segment (row 0)
    __shared__ float segScale[kMaxSegments];
    __shared__ int segStride[kMaxSegments];  // elements per weight row = inter of the segment
    __shared__ int segAct[kMaxSegments];     // first act vector of the segment
    __shared__ int nRouted;                  // routed segments on this GPU (all of them on one GPU)
    __shared__ float partial[kWarps][kRows];
    const int lane = threadIdx.x % kWarpSize;
    const int warp = threadIdx.x / kWarpSize;
    const int j0 = blockIdx.x * kRows;
    // The exception to pdl.cuh rule 3 (moe_decode.h): the next kernel reads only weights first.
    if (p.down_launches_next_early) pdlLaunchNext();
    const bool early = p.down_early;
    if (!early) {
        pdlWaitForPrevious();
        if (!p.down_launches_next_early) pdlLaunchNext();
    }
    // Before the PDL wait (down_early): the routing and this lane's first weight vectors. topk_ids and
    // topk_weights were written before the gate|up kernel just before this one, which follows
    // pdl.cuh's rules: this kernel starts only after all of gate|up's blocks passed their wait, so
    // the routing is complete (pdl.cuh, "two back"). act, from gate|up itself, after the wait.
    if (warp == 0) {
        // Lane k resolves slot k; the experts held here are packed in router order (with several
        // GPUs some live elsewhere: their slots are left out, so the long row only walks this
        // GPU's weights). All slots at once: one dependent round trip, not top_k of them.
        const bf16* w = nullptr;
        float scale = 0.0f;
        if (lane < p.top_k) {
            w = p.expert_down[p.topk_ids[lane]];
            scale = p.topk_weights[lane];
        }
        const unsigned held = __ballot_sync(kFullMask, w != nullptr);
        if (w) {
            const int n = __popc(held & ((1u << lane) - 1u));
            segBase[n] = w;
            segScale[n] = scale;
            segStride[n] = p.inter;
            segAct[n] = lane * (p.inter / 8);
        }
        if (lane == 0) {
            const int n = __popc(held);
            nRouted = n;
            segBase[n] = p.shared_down;
            segScale[n] = 1.0f;
            segStride[n] = p.shared_inter;
            segAct[n] = p.top_k * (p.inter / 8);
        }
    }
    __syncthreads();

    const auto* act16 = reinterpret_cast<const uint4*>(p.act);
    const int interVec = p.inter / 8;
    const int routedVec = nRouted * interVec, nVec = routedVec + p.shared_inter / 8;
    const int slice = (nVec + kWarps - 1) / kWarps;
    const int begin = warp * slice;
    const int end = min(begin + slice, nVec);
    float acc[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[r] = 0.0f;
    // Vector v of the long row: segment k = v / interVec for routed experts, else the shared one.
    auto segmentOf = [&](int v, int& within) {
        const int k = v < routedVec ? v / interVec : nRouted;
        within = v < routedVec ? v - k * interVec : v - routedVec;
        return k;
    };
    auto weightsOf = [&](int k, int within) {
        const int strideVec = segStride[k] / 8;
        return reinterpret_cast<const uint4*>(segBase[k]) + static_cast<int64_t>(j0) * strideVec + within;
    };
    // The lane's first vector: weights before the wait, act after it; then the rest in batches.
    // Each lane still adds its vectors in ascending order, so the sums are as before.
    const int first = begin + lane;
    uint4 firstW[kRows];
    int firstWithin = 0;
    const int firstK = first < end ? segmentOf(first, firstWithin) : 0;
    if (first < end) {
        const uint4* w = weightsOf(firstK, firstWithin);
#pragma unroll
        for (int r = 0; r < kRows; ++r) firstW[r] = __ldcs(w + static_cast<int64_t>(r) * (segStride[firstK] / 8));
    }
    if (early) {
        pdlWaitForPrevious();
        if (!p.down_launches_next_early) pdlLaunchNext();
    }
    if (first < end) {
        const uint4 av = __ldg(act16 + segAct[firstK] + firstWithin);
#pragma unroll
        for (int r = 0; r < kRows; ++r) acc[r] += segScale[firstK] * dot8(firstW[r], av);
    }
    const unsigned zero = opaqueZero(p);
    forEachBatch<kUnroll>(first + kWarpSize, end, [&]<int U>(int v0) {
        uint4 wv[U][kRows], av[U];
        float sc[U];
#pragma unroll
        for (int s = 0; s < U; ++s) {
            int within = 0;
            const int k = segmentOf(v0 + s * kWarpSize, within);
            const int strideVec = segStride[k] / 8;
            const uint4* w = weightsOf(k, within);
            sc[s] = segScale[k];
            av[s] = __ldg(act16 + segAct[k] + within);
#pragma unroll
            for (int r = 0; r < kRows; ++r) wv[s][r] = __ldcs(w + static_cast<int64_t>(r) * strideVec);
        }
        unsigned dep = 0;  // see opaqueZero
#pragma unroll
        for (int s = 0; s < U; ++s) {
#pragma unroll
            for (int r = 0; r < kRows; ++r) dep |= wv[s][r].x;
            dep |= av[s].x;
        }
        dep &= zero;
#pragma unroll
        for (int s = 0; s < U; ++s) av[s].x |= dep;
#pragma unroll
        for (int s = 0; s < U; ++s)
#pragma unroll
            for (int r = 0; r < kRows; ++r) acc[r] += sc[s] * dot8(wv[s][r], av[s]);
    });
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const float s = warpSum(acc[r]);
        if (lane == 0) partial[warp][r] = s;
    }
    __syncthreads();
    if (threadIdx.x < kRows) {
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) sum += partial[w][threadIdx.x];
        p.out[j0 + threadIdx.x] = sum;
    }
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

}  // namespace

Status launchMoeDecode(const MoeDecodeParams& p, cudaStream_t stream) {
    if (p.hidden <= 0 || p.hidden % 8 || p.top_k <= 0 || p.top_k >= kMaxSegments || p.inter <= 0 || p.inter % 8 ||
        p.shared_inter < 0 || p.shared_inter % 8)
        return Status(StatusCode::Unsupported,
                      "launchMoeDecode: hidden, inter and shared_inter must be multiples of 8 (hidden " +
                          std::to_string(p.hidden) + ", inter " + std::to_string(p.inter) + ", shared_inter " +
                          std::to_string(p.shared_inter) + ") and top_k in [1, 32] (top_k " + std::to_string(p.top_k) +
                          ")");
    if (!p.x || !aligned16(p.x) || !p.topk_ids || !p.topk_weights || !p.expert_gate_up || !p.expert_down || !p.act ||
        !aligned16(p.act) || !p.out || (p.shared_inter > 0 && (!p.shared_gate_up || !p.shared_down)))
        return Status(StatusCode::InvalidArgument, "launchMoeDecode: missing or misaligned pointer");
    if (p.shared_inter > 0 && (!aligned16(p.shared_gate_up) || !aligned16(p.shared_down)))
        return Status(StatusCode::InvalidArgument,
                      "launchMoeDecode: the shared expert's weights must be 16-byte aligned (16-byte loads)");
    const int64_t nAct = moeDecodeActElements(p.top_k, p.inter, p.shared_inter);
    DSV2_CUDA_CHECK(launchPdl(moeDecodeGateUpKernel<kGateUpRows, kGateUpUnroll>,
                              dim3(static_cast<unsigned>(ceilDiv(nAct, int64_t{kWarps} * kGateUpRows))), dim3(kThreads),
                              0, stream, p));
    DSV2_CUDA_CHECK(launchPdl(moeDecodeDownKernel<kDownRows, kDownUnroll>,
                              dim3(static_cast<unsigned>(p.hidden / kDownRows)), dim3(kThreads), 0, stream, p));
    return Status::ok();
}

}  // namespace dsv2::cuda
