#include "cpu/router.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "cpu/cpu_ops.h"

namespace dsv2::cpu {

RouterParams RouterParams::fromConfig(const ModelConfig& config) {
    RouterParams p;
    p.nExperts = config.nRoutedExperts;
    p.topK = config.numExpertsPerTok;
    p.method = config.topkMethod;
    p.nGroup = std::max<int64_t>(1, config.nGroup);
    p.topkGroup = std::max<int64_t>(1, config.topkGroup);
    p.normTopkProb = config.normTopkProb;
    p.routedScalingFactor = static_cast<float>(config.routedScalingFactor);
    return p;
}

void routeToken(const float* gateLogits, const RouterParams& params, int32_t* ids, float* weights, float* scratch) {
    const int64_t n = params.nExperts;
    float* probs = scratch;  // (nExperts)
    std::copy(gateLogits, gateLogits + n, probs);
    softmaxInPlace(probs, n);

    // Candidate scores: the probabilities, with experts outside the chosen groups set to 0 (as the
    // reference masks them; probabilities are > 0, so masked experts only win if k exceeds the
    // experts left, which validation of the config rules out).
    std::vector<float> candidates(probs, probs + n);
    if (params.method == TopkMethod::GroupLimitedGreedy && params.nGroup > 1) {
        const int64_t perGroup = n / params.nGroup;
        std::vector<float> groupScore(static_cast<size_t>(params.nGroup));
        for (int64_t g = 0; g < params.nGroup; ++g)
            groupScore[g] = *std::max_element(probs + g * perGroup, probs + (g + 1) * perGroup);
        std::vector<int64_t> order(static_cast<size_t>(params.nGroup));
        for (int64_t g = 0; g < params.nGroup; ++g) order[g] = g;
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return groupScore[a] > groupScore[b]; });
        std::vector<bool> keep(static_cast<size_t>(params.nGroup), false);
        for (int64_t i = 0; i < std::min(params.topkGroup, params.nGroup); ++i) keep[order[i]] = true;
        for (int64_t e = 0; e < n; ++e)
            if (!keep[e / perGroup]) candidates[e] = 0.0f;
    }

    // Top-k by repeated selection: k is small (6) and this keeps ties deterministic.
    std::vector<bool> taken(static_cast<size_t>(n), false);
    double sum = 0.0;
    for (int64_t k = 0; k < params.topK; ++k) {
        int64_t best = -1;
        for (int64_t e = 0; e < n; ++e)
            if (!taken[e] && (best < 0 || candidates[e] > candidates[best])) best = e;
        taken[best] = true;
        ids[k] = static_cast<int32_t>(best);
        weights[k] = candidates[best];
        sum += candidates[best];
    }
    if (params.topK > 1 && params.normTopkProb) {
        const auto denominator = static_cast<float>(sum + 1e-20);
        for (int64_t k = 0; k < params.topK; ++k) weights[k] /= denominator;
    }
    for (int64_t k = 0; k < params.topK; ++k) weights[k] *= params.routedScalingFactor;
}

}  // namespace dsv2::cpu
