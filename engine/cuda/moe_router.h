#pragma once
// MoE routing on the GPU (REFERENCE.md "MoE"): softmax over the fp32 gate logits, then
//   greedy:               top-k of all experts;
//   group_limited_greedy: experts in n_group equal groups, group score = max prob in the group,
//                         keep the topk_group best groups, top-k among their experts.
// Weights are the softmax probabilities of the chosen experts (over all experts), divided by their
// sum (+1e-20) when norm_topk_prob, times routed_scaling_factor. Output sorted by weight, ties to
// the lower expert id (the CPU reference breaks ties the same way). Like DeepSeek's code, the
// renormalisation applies only when top_k > 1.

#include <cuda_runtime.h>

#include <cstdint>

#include "dsv2/status.h"

namespace dsv2::cuda {

struct MoeRouterParams {
    int n_tokens = 0;
    int n_experts = 0;  // <= 256
    int top_k = 0;      // <= 32
    bool group_limited = false;
    int n_group = 1;  // divides n_experts; <= 32
    int topk_group = 1;
    bool norm_topk_prob = false;
    float routed_scaling_factor = 1.0f;

    const float* logits = nullptr;  // [n_tokens, logits_stride] gate logits x·W_gateᵀ, fp32
    int64_t logits_stride = 0;
    int32_t* topk_ids = nullptr;    // [n_tokens, top_k]
    float* topk_weights = nullptr;  // [n_tokens, top_k]
};

Status launchMoeRouter(const MoeRouterParams& p, cudaStream_t stream);

// The limits of the selection above (sizes, groups, output pointers; not the logits): shared
// with the fused router (moe_router_fused.h).
Status checkMoeRouterShape(const MoeRouterParams& p);

}  // namespace dsv2::cuda
