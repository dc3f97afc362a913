#pragma once
// Reading a server's routed_experts (vLLM's layout: base64 .npy (rows, num_layers, top_k), one row
// per token that went through the model, prompt first) back into the engine's TokenRouting, so
// that the heatmaps and storage read remote answers like local ones.

#include <cstdint>
#include <string>
#include <vector>

#include "dsv2/events.h"
#include "dsv2/status.h"

namespace dsv2::remote {

struct DecodedRouting {
    std::vector<int32_t> moeLayers;  // model layer index of each kept layer
    int64_t topK = 0;
    std::vector<TokenRouting> prompt;      // (prompt tokens)
    std::vector<TokenRouting> completion;  // (completion tokens that have a row; vLLM has none for
                                           // the last one)
    bool hasWeights = false;               // routed_expert_weights came too (dsv2 serve)
};

// `expertsB64` is routed_experts, `weightsB64` routed_expert_weights or empty. Layers whose rows
// are not a routing (all -1, or all equal ids with top_k > 1: vLLM leaves dense layers at 0) are
// dropped. promptTokens/completionTokens split the rows; promptTokens < 0 = rows minus
// completion tokens (+1 for the last token's missing row).
Result<DecodedRouting> decodeRouting(const std::string& expertsB64, const std::string& weightsB64, int64_t promptTokens,
                                     int64_t completionTokens);

}  // namespace dsv2::remote
