// Router logits GEMV + top-k selection of one token in one launch: see moe_router_fused.h for why.
#include "cuda/moe_router_fused.h"

#include <cooperative_groups.h>

#include <algorithm>
#include <utility>

#include "cuda/cluster_launch.h"
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/moe_router_select.cuh"
#include "cuda/pdl.cuh"
#include "cuda/per_device_cache.h"
#include "cuda/residual_norm.cuh"

namespace dsv2::cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kClusterBlocks = 8;  // the portable cluster size
constexpr int kMaxWarps = 16;
constexpr int kUnroll = 4;                 // as gemv.cu
constexpr int kPrefix = 8;                 // as gemv.cu
constexpr int kMaxNormHidden = 24 * 1024;  // the fused norm's x in 48 KB of shared memory

__global__ void __launch_bounds__(kMaxWarps* kWarpSize) moeRouterGemvKernel(MoeRouterGemvParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    __shared__ float all[kRouterMaxExperts];   // block 0: every logit
    __shared__ float mine[kRouterMaxExperts];  // this block's rows
    cg::cluster_group cluster = cg::this_cluster();
    // Every block of the cluster must have started before block 0's shared memory is written:
    // arrive now, wait after the GEMV.
    auto started = cluster.barrier_arrive();
    const int rank = static_cast<int>(cluster.block_rank());
    const int lane = threadIdx.x % kWarpSize;
    const int warp = threadIdx.x / kWarpSize;
    const int nWarps = blockDim.x / kWarpSize;
    const int n = p.route.n_experts;
    const int perBlock = (n + kClusterBlocks - 1) / kClusterBlocks;
    const int row0 = rank * perBlock;
    const int rows = max(0, min(perBlock, n - row0));
    extern __shared__ uint4 normedX[];  // the fused norm's x: [hidden / 8]
    const int nVec = p.hidden / 8;
    const uint4* x = reinterpret_cast<const uint4*>(p.x);
    // Launched with PDL (pdl.cuh): the warp's first gate row is fetched before waiting for x.
    uint4 pre[kPrefix];
    if (warp < rows)
        warpRowLoadPrefix<kPrefix>(
            reinterpret_cast<const uint4*>(p.gate + static_cast<int64_t>(row0 + warp) * p.hidden), nVec, lane, pre);
    pdlWaitForPrevious();
    pdlLaunchNext();
    const bool norm = p.norm.residual != nullptr;  // (ResidualNorm::active() is host code)
    if (norm) {
        blockResidualNorm(p.norm, p.hidden, reinterpret_cast<bf16*>(normedX), mine, rank == 0);
        x = normedX;  // (`mine` lent the norm its reduction scratch; the norm ends with a barrier)
    }
    for (int r = warp; r < rows; r += nWarps) {
        // gemvKernel<1, fp32>'s row: the same loads, the same order of fp32 additions.
        const uint4* w = reinterpret_cast<const uint4*>(p.gate + static_cast<int64_t>(row0 + r) * p.hidden);
        float acc = 0.0f;
        if (norm) {
            if (r == warp)
                warpRowDotPrefixed<1, kPrefix, kUnroll, true>(w, &x, nVec, lane, pre, &acc);
            else
                warpRowDot<1, kUnroll, true>(w, &x, nVec, lane, &acc);
        } else if (r == warp) {
            warpRowDotPrefixed<1, kPrefix, kUnroll>(w, &x, nVec, lane, pre, &acc);
        } else {
            warpRowDot<1, kUnroll>(w, &x, nVec, lane, &acc);
        }
        const float s = warpSum(acc);
        if (lane == 0) {
            mine[r] = s;
            if (p.logits_out) p.logits_out[row0 + r] = s;
        }
    }
    __syncthreads();
    cluster.barrier_wait(std::move(started));
    float* dst = cluster.map_shared_rank(all, 0);
    for (int r = threadIdx.x; r < rows; r += blockDim.x) dst[row0 + r] = mine[r];
    cluster.sync();  // release/acquire: block 0 now sees every logit
    if (rank == 0 && warp == 0) routeTokenWarp(p.route, all, p.route.topk_ids, p.route.topk_weights, lane);
#endif
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// Whether the current device runs cluster launches of this kernel (sm_90 code built in), once per device.
bool deviceRunsClusters() {
    static PerDeviceCache<> runs;
    return runs.getForCurrentDevice([](int dev) {
        int cluster = 0, major = 0;
        cudaFuncAttributes attr{};
        return cudaDeviceGetAttribute(&cluster, cudaDevAttrClusterLaunch, dev) == cudaSuccess && cluster &&
               cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9 &&
               cudaFuncGetAttributes(&attr, moeRouterGemvKernel) == cudaSuccess && attr.binaryVersion >= 90;
    }) != 0;
}

}  // namespace

bool moeRouterGemvSupported(const MoeRouterGemvParams& p) {
    const bool input = p.norm.active() ? p.norm.valid() && p.hidden <= kMaxNormHidden : p.x && aligned16(p.x);
    return p.route.n_tokens == 1 && p.hidden > 0 && p.hidden % 8 == 0 && input && p.gate && aligned16(p.gate) &&
           deviceRunsClusters();
}

Status launchMoeRouterGemv(const MoeRouterGemvParams& p, cudaStream_t stream) {
    DSV2_RETURN_IF_ERROR(checkMoeRouterShape(p.route));
    if (!moeRouterGemvSupported(p))
        return Status(StatusCode::Unsupported,
                      "launchMoeRouterGemv: needs one token, hidden % 8 == 0, aligned x (or a valid fused norm) and "
                      "gate, and an sm_90 GPU");
    const int perBlock = (p.route.n_experts + kClusterBlocks - 1) / kClusterBlocks;
    const int warps = std::max(1, std::min(kMaxWarps, perBlock));
    // one cluster of kClusterBlocks blocks (top-k meets in block 0)
    const cudaLaunchAttribute cluster[1] = {clusterLaunchAttribute(kClusterBlocks)};
    const size_t smem = p.norm.active() ? sizeof(bf16) * static_cast<size_t>(p.hidden) : 0;
    DSV2_CUDA_CHECK(launchPdlWith(cluster, 1u, moeRouterGemvKernel, dim3(kClusterBlocks),
                                  dim3(static_cast<unsigned>(warps * kWarpSize)), smem, stream, p));
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
