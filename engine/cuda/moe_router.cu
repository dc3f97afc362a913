#include "cuda/moe_router.h"

#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/moe_router_select.cuh"

namespace dsv2::cuda {
namespace {

constexpr int kMaxExperts = kRouterMaxExperts;
constexpr int kWarpsPerBlock = 4;

// One warp per token (the selection itself: moe_router_select.cuh).
__global__ void moeRouterKernel(MoeRouterParams p) {
    const int warp = threadIdx.x / kWarpSize;
    const int lane = threadIdx.x % kWarpSize;
    const int t = blockIdx.x * kWarpsPerBlock + warp;
    if (t >= p.n_tokens) return;  // warp-uniform
    routeTokenWarp(p, p.logits + static_cast<int64_t>(t) * p.logits_stride,
                   p.topk_ids + static_cast<int64_t>(t) * p.top_k, p.topk_weights + static_cast<int64_t>(t) * p.top_k,
                   lane);
}

}  // namespace

Status checkMoeRouterShape(const MoeRouterParams& p) {
    if (p.n_tokens < 0 || p.n_experts <= 0 || p.n_experts > kMaxExperts || p.top_k <= 0 || p.top_k > kWarpSize ||
        p.top_k > p.n_experts)
        return Status(StatusCode::Unsupported,
                      "launchMoeRouter: need 1 <= top_k <= min(32, n_experts), n_experts <= 256");
    if (p.group_limited &&
        (p.n_group <= 0 || p.n_group > kWarpSize || p.n_experts % p.n_group != 0 || p.topk_group <= 0 ||
         p.topk_group > p.n_group || p.top_k > p.topk_group * (p.n_experts / p.n_group)))
        return Status(StatusCode::Unsupported,
                      "launchMoeRouter: group_limited_greedy needs n_group <= 32 dividing n_experts, "
                      "topk_group <= n_group and top_k <= the experts of the kept groups");
    if (!p.topk_ids || !p.topk_weights)
        return Status(StatusCode::InvalidArgument, "launchMoeRouter: missing output pointer");
    return Status::ok();
}

Status launchMoeRouter(const MoeRouterParams& p, cudaStream_t stream) {
    if (p.n_tokens == 0) return Status::ok();
    DSV2_RETURN_IF_ERROR(checkMoeRouterShape(p));
    if (!p.logits || p.logits_stride < p.n_experts)
        return Status(StatusCode::InvalidArgument, "launchMoeRouter: missing pointer or short stride");
    const unsigned blocks = static_cast<unsigned>(ceilDiv(p.n_tokens, kWarpsPerBlock));
    moeRouterKernel<<<blocks, kWarpsPerBlock * kWarpSize, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
