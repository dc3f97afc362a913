#pragma once
// DeepSeekMoE routing of one token: softmax over the router logits in fp32, top-k selection
// (greedy, or group_limited_greedy: keep the topk_group groups whose best expert scores highest),
// optional renormalisation of the chosen weights, then routed_scaling_factor.

#include <cstdint>

#include "model/model_config.h"

namespace dsv2::cpu {

struct RouterParams {
    int64_t nExperts = 0;
    int64_t topK = 0;
    TopkMethod method = TopkMethod::Greedy;
    int64_t nGroup = 1;
    int64_t topkGroup = 1;
    bool normTopkProb = false;
    float routedScalingFactor = 1.0f;

    static RouterParams fromConfig(const ModelConfig& config);
};

// gateLogits (nExperts) = x · W_gateᵀ. Writes the chosen experts to ids (topK) in descending
// probability (ties: lower id first) and the weights they are applied with to weights (topK).
// scratch must hold nExperts floats.
void routeToken(const float* gateLogits, const RouterParams& params, int32_t* ids, float* weights, float* scratch);

}  // namespace dsv2::cpu
