#include "core/backend.h"

#include <string>

namespace dsv2 {

const char* backendKindName(BackendKind kind) {
    switch (kind) {
    case BackendKind::Cpu: return "cpu";
    case BackendKind::Cuda: return "cuda";
    }
    return "unknown";
}

Result<std::unique_ptr<Backend>> createBackend(BackendKind kind, const ModelConfig& config, const ModelWeights& weights,
                                               const BackendOptions& options) {
    switch (kind) {
    case BackendKind::Cpu: return createCpuBackend(config, weights, options);
    case BackendKind::Cuda:
#if defined(DSV2_HAS_CUDA_BACKEND)
        return createCudaBackend(config, weights, options);
#else
        return Status(StatusCode::Unavailable,
                      "the CUDA backend is not available in this build (it has no CUDA inference backend yet, "
                      "or was built with -DDSV2_CUDA=OFF); use --backend cpu");
#endif
    }
    return Status(StatusCode::InvalidArgument, "unknown backend kind");
}

Status validateForwardInput(std::span<const int32_t> tokens, int64_t vocab, int64_t length, int64_t capacity) {
    if (tokens.empty()) return {StatusCode::InvalidArgument, "no tokens to run"};
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (tokens[i] < 0 || tokens[i] >= vocab)
            return {StatusCode::InvalidArgument, "token id " + std::to_string(tokens[i]) + " at position " +
                                                     std::to_string(length + static_cast<int64_t>(i)) +
                                                     " is outside the vocabulary [0, " + std::to_string(vocab) + ")"};
    }
    const int64_t needed = length + static_cast<int64_t>(tokens.size());
    if (needed > capacity)
        return {StatusCode::OutOfRange, "context limit reached: " + std::to_string(needed) + " tokens needed (" +
                                            std::to_string(length) + " cached + " + std::to_string(tokens.size()) +
                                            " new), the session holds at most " + std::to_string(capacity)};
    return Status::ok();
}

CacheStats makeCacheStats(const ModelConfig& config, const std::string& dtype, int64_t elementBytes, int64_t tokens,
                          int64_t reservedTokens, int64_t capacityTokens) {
    auto blocks = [](int64_t n) { return (n + kCacheBlockTokens - 1) / kCacheBlockTokens; };
    CacheStats s;
    s.dtype = dtype;
    s.latentDim = config.latentCacheDim();
    s.tokens = tokens;
    s.capacityTokens = capacityTokens;
    s.blocksUsed = blocks(tokens);
    s.blocksReserved = blocks(reservedTokens);
    s.blocksCapacity = blocks(capacityTokens);
    const int64_t layerBytesPerToken = s.latentDim * elementBytes;
    s.bytesPerToken = layerBytesPerToken * config.numHiddenLayers;
    s.bytesUsed = s.bytesPerToken * tokens;
    s.bytesReserved = s.bytesPerToken * reservedTokens;
    s.bytesCapacity = s.bytesPerToken * capacityTokens;
    for (int64_t l = 0; l < config.numHiddenLayers; ++l) {
        CacheLayerStats layer;
        layer.layer = static_cast<int32_t>(l);
        layer.bytesPerToken = layerBytesPerToken;
        layer.bytesUsed = layerBytesPerToken * tokens;
        layer.bytesReserved = layerBytesPerToken * reservedTokens;
        s.layers.push_back(layer);
    }
    return s;
}

}  // namespace dsv2
