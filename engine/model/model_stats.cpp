#include "model/model_stats.h"

#include <string>

#include "model/weight_binding.h"

namespace dsv2 {

ParameterCounts countParameters(const ModelConfig& config) {
    // Classify the same tensor list the weight binding checks, so the two can never disagree.
    ParameterCounts p;
    const auto contains = [](const std::string& s, const char* part) { return s.find(part) != std::string::npos; };
    for (const auto& t : expectedTensors(config)) {
        int64_t numel = 1;
        for (int64_t d : t.shape) numel *= d;
        if (t.name == "model.embed_tokens.weight") p.embedding += numel;
        else if (t.name == "lm_head.weight") p.lmHead += numel;
        else if (contains(t.name, "layernorm.weight") && !contains(t.name, "self_attn.")) p.norms += numel;
        else if (t.name == "model.norm.weight") p.norms += numel;
        else if (contains(t.name, ".self_attn.")) p.attention += numel;
        else if (contains(t.name, ".mlp.experts.")) p.routedExperts += numel;
        else if (contains(t.name, ".mlp.shared_experts.")) p.sharedExperts += numel;
        else if (contains(t.name, ".mlp.gate.weight")) p.router += numel;
        else p.denseMlp += numel;
    }
    p.total = p.embedding + p.attention + p.denseMlp + p.router + p.routedExperts + p.sharedExperts + p.norms + p.lmHead;
    // Every routed expert has the same size, so the chosen top-k are exactly k / n_routed of them.
    const int64_t chosenRouted =
        config.nRoutedExperts > 0 ? p.routedExperts / config.nRoutedExperts * config.numExpertsPerTok : 0;
    p.activePerToken = p.total - p.embedding - p.routedExperts + chosenRouted;
    p.activeWithEmbedding = p.activePerToken + p.embedding;
    return p;
}

int64_t mlaKvBytesPerToken(const ModelConfig& config, int64_t bytesPerValue) {
    return config.numHiddenLayers * config.latentCacheDim() * bytesPerValue;
}

int64_t mhaKvBytesPerToken(const ModelConfig& config, int64_t bytesPerValue) {
    return config.numHiddenLayers * config.numAttentionHeads * (config.qHeadDim() + config.vHeadDim) * bytesPerValue;
}

}  // namespace dsv2
