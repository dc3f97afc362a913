#pragma once
// The top-k / group-limited selection of one token by one warp, shared by the router kernel
// (moe_router.cu, logits from global memory) and the fused router GEMV + selection
// (moe_router_fused.cu, logits from shared memory), so both choose and weigh experts identically.
// Device-only.

#include <cmath>

#include "cuda/device_utils.cuh"
#include "cuda/moe_router.h"

namespace dsv2::cuda {

constexpr int kRouterMaxExperts = 256;
constexpr int kRouterPerLane = kRouterMaxExperts / kWarpSize;  // expert e = lane + 32·i lives in slot i

// Warp-wide argmax: largest value, ties to the smaller index. Every lane gets the winner.
__device__ __forceinline__ void routerWarpArgmax(float& value, int& index) {
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

// Softmax over logits[0, n_experts), then the choice of p (greedy or group-limited), into
// ids[0, top_k) and weights[0, top_k). Called by all 32 lanes of one warp.
__device__ __forceinline__ void routeTokenWarp(const MoeRouterParams& p, const float* logits, int32_t* ids,
                                               float* weights, int lane) {
    float prob[kRouterPerLane];
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < kRouterPerLane; ++i) {
        const int e = lane + kWarpSize * i;
        prob[i] = e < p.n_experts ? logits[e] : -INFINITY;
        mx = fmaxf(mx, prob[i]);
    }
    mx = warpMax(mx);
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kRouterPerLane; ++i) {
        const int e = lane + kWarpSize * i;
        prob[i] = e < p.n_experts ? expf(prob[i] - mx) : 0.0f;
        sum += prob[i];
    }
    sum = warpSum(sum);
#pragma unroll
    for (int i = 0; i < kRouterPerLane; ++i) prob[i] /= sum;

    // Candidate score per expert. -1 (below every probability) takes an expert of a dropped group
    // out of the choice; -inf marks slots past n_experts and experts already taken.
    float cand[kRouterPerLane];
#pragma unroll
    for (int i = 0; i < kRouterPerLane; ++i) cand[i] = lane + kWarpSize * i < p.n_experts ? prob[i] : -INFINITY;

    if (p.group_limited) {
        const int groupSize = p.n_experts / p.n_group;
        float groupScore = -INFINITY;  // lane g holds group g's score
        for (int g = 0; g < p.n_group; ++g) {
            float local = -INFINITY;
#pragma unroll
            for (int i = 0; i < kRouterPerLane; ++i) {
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
            routerWarpArgmax(v, idx);
            keep |= 1u << idx;
        }
#pragma unroll
        for (int i = 0; i < kRouterPerLane; ++i) {
            const int e = lane + kWarpSize * i;
            if (e < p.n_experts && !((keep >> (e / groupSize)) & 1u)) cand[i] = -1.0f;
        }
    }

    float chosenSum = 0.0f;
    float myWeight = 0.0f;  // lane r keeps the r-th weight for the normalisation pass
    for (int r = 0; r < p.top_k; ++r) {
        float best = -INFINITY;
        int bestIdx = INT32_MAX;
#pragma unroll
        for (int i = 0; i < kRouterPerLane; ++i) {
            const int e = lane + kWarpSize * i;
            if (cand[i] > best) {  // slots go up in expert id, so '>' keeps the lower id on ties
                best = cand[i];
                bestIdx = e;
            }
        }
        routerWarpArgmax(best, bestIdx);
#pragma unroll
        for (int i = 0; i < kRouterPerLane; ++i)
            if (lane + kWarpSize * i == bestIdx) cand[i] = -INFINITY;  // taken
        chosenSum += best;
        if (lane == r) myWeight = best;
        if (lane == 0) ids[r] = bestIdx;
    }
    float scale = p.routed_scaling_factor;
    if (p.norm_topk_prob && p.top_k > 1) scale /= chosenSum + 1e-20f;  // as DeepSeek: only for top_k > 1
    if (lane < p.top_k) weights[lane] = myWeight * scale;
}

}  // namespace dsv2::cuda
