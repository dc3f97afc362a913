#include "cuda/moe_router.h"

#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"

namespace dsv2::cuda {
namespace {

constexpr int kMaxExperts = 256;
constexpr int kPerLane = kMaxExperts / kWarpSize;  // expert e = lane + 32·i lives in slot i
constexpr int kWarpsPerBlock = 4;

// Warp-wide argmax: largest value, ties to the smaller index. Every lane gets the winner.
__device__ __forceinline__ void warpArgmax(float& value, int& index) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float ov = __shfl_xor_sync(kFullMask, value, offset);
        const int oi = __shfl_xor_sync(kFullMask, index, offset);
        if (ov > value || (ov == value && oi < index)) {
            value = ov;
            index = oi;
        }
    }
}

// One warp per token.
__global__ void moeRouterKernel(MoeRouterParams p) {
    const int warp = threadIdx.x / kWarpSize;
    const int lane = threadIdx.x % kWarpSize;
    const int t = blockIdx.x * kWarpsPerBlock + warp;
    if (t >= p.n_tokens) return;  // warp-uniform
    const float* logits = p.logits + static_cast<int64_t>(t) * p.logits_stride;

    float prob[kPerLane];
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
        const int e = lane + kWarpSize * i;
        prob[i] = e < p.n_experts ? logits[e] : -INFINITY;
        mx = fmaxf(mx, prob[i]);
    }
    mx = warpMax(mx);
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
        const int e = lane + kWarpSize * i;
        prob[i] = e < p.n_experts ? expf(prob[i] - mx) : 0.0f;
        sum += prob[i];
    }
    sum = warpSum(sum);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) prob[i] /= sum;

    // Candidate score per expert. -1 (below every probability) takes an expert of a dropped group
    // out of the choice; -inf marks slots past n_experts and experts already taken.
    float cand[kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) cand[i] = lane + kWarpSize * i < p.n_experts ? prob[i] : -INFINITY;

    if (p.group_limited) {
        const int groupSize = p.n_experts / p.n_group;
        float groupScore = -INFINITY;  // lane g holds group g's score
        for (int g = 0; g < p.n_group; ++g) {
            float local = -INFINITY;
#pragma unroll
            for (int i = 0; i < kPerLane; ++i) {
                const int e = lane + kWarpSize * i;
                if (e < p.n_experts && e / groupSize == g) local = fmaxf(local, prob[i]);
            }
            local = warpMax(local);
            if (lane == g) groupScore = local;
        }
        unsigned keep = 0;
        for (int r = 0; r < p.topk_group; ++r) {
            float v = (lane < p.n_group && !((keep >> lane) & 1u)) ? groupScore : -INFINITY;
            int idx = lane;
            warpArgmax(v, idx);
            keep |= 1u << idx;
        }
#pragma unroll
        for (int i = 0; i < kPerLane; ++i) {
            const int e = lane + kWarpSize * i;
            if (e < p.n_experts && !((keep >> (e / groupSize)) & 1u)) cand[i] = -1.0f;
        }
    }

    int32_t* ids = p.topk_ids + static_cast<int64_t>(t) * p.top_k;
    float* weights = p.topk_weights + static_cast<int64_t>(t) * p.top_k;
    float chosenSum = 0.0f;
    float myWeight = 0.0f;  // lane r keeps the r-th weight for the normalisation pass
    for (int r = 0; r < p.top_k; ++r) {
        float best = -INFINITY;
        int bestIdx = INT32_MAX;
#pragma unroll
        for (int i = 0; i < kPerLane; ++i) {
            const int e = lane + kWarpSize * i;
            if (cand[i] > best) {  // slots go up in expert id, so '>' keeps the lower id on ties
                best = cand[i];
                bestIdx = e;
            }
        }
        warpArgmax(best, bestIdx);
#pragma unroll
        for (int i = 0; i < kPerLane; ++i)
            if (lane + kWarpSize * i == bestIdx) cand[i] = -INFINITY;  // taken
        chosenSum += best;
        if (lane == r) myWeight = best;
        if (lane == 0) ids[r] = bestIdx;
    }
    float scale = p.routed_scaling_factor;
    if (p.norm_topk_prob && p.top_k > 1) scale /= chosenSum + 1e-20f;  // as DeepSeek: only for top_k > 1
    if (lane < p.top_k) weights[lane] = myWeight * scale;
}

}  // namespace

Status launchMoeRouter(const MoeRouterParams& p, cudaStream_t stream) {
    if (p.n_tokens == 0) return Status::ok();
    if (p.n_tokens < 0 || p.n_experts <= 0 || p.n_experts > kMaxExperts || p.top_k <= 0 || p.top_k > kWarpSize ||
        p.top_k > p.n_experts)
        return Status(StatusCode::Unsupported, "launchMoeRouter: need 1 <= top_k <= min(32, n_experts), n_experts <= 256");
    if (p.group_limited &&
        (p.n_group <= 0 || p.n_group > kWarpSize || p.n_experts % p.n_group != 0 || p.topk_group <= 0 ||
         p.topk_group > p.n_group || p.top_k > p.topk_group * (p.n_experts / p.n_group)))
        return Status(StatusCode::Unsupported,
                      "launchMoeRouter: group_limited_greedy needs n_group <= 32 dividing n_experts, "
                      "topk_group <= n_group and top_k <= the experts of the kept groups");
    if (!p.logits || !p.topk_ids || !p.topk_weights || p.logits_stride < p.n_experts)
        return Status(StatusCode::InvalidArgument, "launchMoeRouter: missing pointer or short stride");
    const unsigned blocks = static_cast<unsigned>(ceilDiv(p.n_tokens, kWarpsPerBlock));
    moeRouterKernel<<<blocks, kWarpsPerBlock * kWarpSize, 0, stream>>>(p);
    DSV2_CUDA_CHECK_LAUNCH();
    return Status::ok();
}

}  // namespace dsv2::cuda
