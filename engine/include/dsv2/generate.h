#pragma once
// A generation request: the prompt (tokens or chat messages), the sampling parameters, the stop
// conditions and a cancel flag; and what a finished generation returns.

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dsv2/events.h"

namespace dsv2 {

struct ChatTurn {
    std::string role;  // "system", "user", "assistant"
    std::string content;
};

struct GenerateParams {
    // Sampling. temperature 0 means greedy (argmax); the filters apply in HF's order:
    // repetition penalty, temperature, top-k, top-p, min-p.
    double temperature = 0.0;
    double topP = 1.0;           // 1 = off
    int64_t topK = 0;            // 0 = off
    double minP = 0.0;           // 0 = off; drops tokens below minP · p(most likely)
    double repetitionPenalty = 1.0;  // 1 = off; over the whole context (history + generated)
    std::optional<uint64_t> seed;    // same seed → same tokens; none = a random seed

    // Stopping.
    int64_t maxNewTokens = 256;
    std::vector<std::string> stopStrings;  // the stop string itself is not part of the text
    bool ignoreEos = false;

    // Reporting.
    int topNAlternatives = 0;        // per token, the N most likely tokens with logprobs
    bool wantPromptRouting = false;  // routing of every prompt token in PromptProcessed
};

struct GenerateRequest {
    // The whole conversation so far, as tokens; or, when `messages` is not empty, as messages
    // rendered with the model's chat template plus its generation prompt ("Assistant:").
    // The session reuses the cached prefix it shares with its history and recomputes the rest.
    std::vector<int32_t> promptTokens;
    std::vector<ChatTurn> messages;
    GenerateParams params;
    const std::atomic<bool>* cancel = nullptr;  // checked before every token; may be null
};

struct GenerateResult {
    std::vector<int32_t> promptTokens;
    std::vector<int32_t> tokens;          // generated (including a final eos, if any)
    std::string text;                     // decoded response, special tokens skipped, stop string cut
    StopReason reason = StopReason::MaxTokens;
    std::string stopString;
    std::vector<TokenRouting> routing;        // (tokens.size())
    std::vector<TokenRouting> promptRouting;  // (promptTokens.size()) when asked for
    std::vector<float> logprobs;              // (tokens.size())
    GenerationStats stats;
};

}  // namespace dsv2
