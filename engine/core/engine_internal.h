#pragma once
// What Engine and Session hold behind their public headers (shared by engine.cpp and
// generation.cpp), plus small conversions from backend structs to the public ones.

#include <memory>
#include <vector>

#include "core/backend.h"
#include "dsv2/engine.h"
#include "model/model_folder.h"

namespace dsv2 {

struct Engine::Impl {
    std::unique_ptr<ModelFolder> folder;  // owns the mapping the backend reads: destroyed last
    std::unique_ptr<Backend> backend;
    EngineOptions options;
    ModelInfo info;
};

struct Session::Impl {
    Engine::Impl* engine = nullptr;
    std::unique_ptr<BackendSession> cache;
    std::vector<int32_t> tokens;         // what the cache holds
    std::vector<TokenRouting> routing;   // (tokens.size())

    // Runs tokens through the backend and appends them (with their routing) to the history.
    Result<ForwardResult> forward(std::span<const int32_t> ids, bool allLogits);
    Status truncate(int64_t length);
};

// Routing of token t out of a forward call's flat (T, n_moe, topK) arrays.
TokenRouting tokenRouting(const ForwardRouting& routing, int64_t token);
CacheUsage cacheUsage(const CacheStats& stats);
// The model's chat template over `turns` as tokens; NotFound when the model has none.
Result<std::vector<int32_t>> renderChatTokens(const Engine::Impl& engine, std::span<const ChatTurn> turns,
                                              bool addGenerationPrompt);

}  // namespace dsv2
