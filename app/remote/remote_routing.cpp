#include "remote/remote_routing.h"

#include "remote/npy_array.h"

namespace dsv2::remote {

Result<DecodedRouting> decodeRouting(const std::string& expertsB64, const std::string& weightsB64, int64_t promptTokens,
                                     int64_t completionTokens) {
    DSV2_ASSIGN_OR_RETURN(NpyArray ids, decodeNpyBase64(expertsB64));
    if (ids.shape.size() != 3)
        return Status(StatusCode::InvalidData, "routed experts: expected a (tokens, layers, top_k) array, got " +
                                                   std::to_string(ids.shape.size()) + " dimensions");
    const int64_t rows = ids.shape[0], layers = ids.shape[1], k = ids.shape[2];
    NpyArray weights;
    bool hasWeights = false;
    if (!weightsB64.empty()) {
        DSV2_ASSIGN_OR_RETURN(weights, decodeNpyBase64(weightsB64));
        if (weights.shape != ids.shape)
            return Status(StatusCode::InvalidData, "routed experts: the weights' shape differs from the experts'");
        hasWeights = true;
    }
    auto at = [&](int64_t t, int64_t l, int64_t j) { return static_cast<size_t>((t * layers + l) * k + j); };

    DecodedRouting out;
    out.topK = k;
    out.hasWeights = hasWeights;
    for (int64_t l = 0; l < layers; ++l) {
        bool routed = rows == 0;
        for (int64_t t = 0; t < rows && !routed; ++t) {
            bool allNegative = true, allEqual = true;
            for (int64_t j = 0; j < k; ++j) {
                allNegative = allNegative && ids.values[at(t, l, j)] < 0;
                allEqual = allEqual && ids.values[at(t, l, j)] == ids.values[at(t, l, 0)];
            }
            routed = !allNegative && !(allEqual && k > 1);
        }
        if (routed) out.moeLayers.push_back(static_cast<int32_t>(l));
    }

    if (promptTokens < 0) promptTokens = rows - std::max<int64_t>(completionTokens - 1, 0);
    if (promptTokens < 0 || promptTokens > rows)
        return Status(StatusCode::InvalidData, "routed experts: " + std::to_string(rows) + " rows cannot cover " +
                                                   std::to_string(promptTokens) + " prompt tokens");
    const auto n = out.moeLayers.size();
    for (int64_t t = 0; t < rows; ++t) {
        TokenRouting r;
        r.expertIds.reserve(n * static_cast<size_t>(k));
        for (int32_t l : out.moeLayers)
            for (int64_t j = 0; j < k; ++j) {
                r.expertIds.push_back(static_cast<int32_t>(ids.values[at(t, l, j)]));
                if (hasWeights) r.weights.push_back(static_cast<float>(weights.values[at(t, l, j)]));
            }
        (t < promptTokens ? out.prompt : out.completion).push_back(std::move(r));
    }
    return out;
}

}  // namespace dsv2::remote
