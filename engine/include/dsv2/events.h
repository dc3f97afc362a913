#pragma once
// What a generation reports while it runs. Every backend produces the same events (they are made
// above the backend seam). Delivered on the thread that called Session::generate, in order:
// one PromptProcessed, one Token per generated token, one Finished.

#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

namespace dsv2 {

// The router's choice for one token: for each MoE layer (ModelInfo::moeLayers, ascending), the
// top-k experts in descending weight and the weights they were applied with (after
// norm_topk_prob and routed_scaling_factor).
struct TokenRouting {
    std::vector<int32_t> expertIds;  // (n_moe, topK)
    std::vector<float> weights;      // (n_moe, topK)
};

// The session's latent KV cache. Sizes in tokens, bytes and blocks of 64 tokens.
struct CacheUsage {
    int64_t tokens = 0;
    int64_t capacityTokens = 0;
    int64_t bytesPerToken = 0;  // all layers: layers · (kv_lora + rope) · element size
    int64_t bytesUsed = 0;
    int64_t bytesReserved = 0;  // what the backend holds now
    int64_t bytesCapacity = 0;  // if the session filled up
    int64_t blocksUsed = 0;
    int64_t blocksCapacity = 0;
};

struct TokenAlternative {
    int32_t id = 0;
    float logprob = 0.0f;  // under the model's own distribution (before temperature/top-p...)
    std::string text;      // the token's text on its own (may be a partial UTF-8 sequence)
};

struct PromptProcessedEvent {
    int64_t promptTokens = 0;
    int64_t reusedTokens = 0;    // already in the session's cache (shared prefix with its history)
    int64_t computedTokens = 0;  // run through the model now
    double seconds = 0.0;        // prefill wall time
    double tokensPerSecond = 0.0;
    std::vector<TokenRouting> routing;  // (promptTokens) when GenerateParams::wantPromptRouting
    CacheUsage cache;
};

struct TokenEvent {
    int64_t index = 0;        // 0 for the first generated token
    int32_t id = 0;
    std::string textDelta;    // new text made visible by this token (may be empty: an incomplete
                              // UTF-8 sequence, a special token, or text held back because it
                              // could be the start of a stop string)
    float logprob = 0.0f;     // of the chosen token under the model's distribution
    std::vector<TokenAlternative> alternatives;  // the top-N tokens, most likely first
    TokenRouting routing;     // how this token was routed when it was run through the model
    CacheUsage cache;         // after this token entered the cache
    double seconds = 0.0;     // since generate() was called
};

enum class StopReason {
    Eos,         // the model produced end-of-sequence
    StopString,  // one of GenerateParams::stopStrings appeared
    MaxTokens,   // maxNewTokens reached
    Cancelled,   // the cancel flag was set
    ContextFull, // the session's cache is full
};
const char* stopReasonName(StopReason reason);  // "eos", "stop_string", "max_tokens", ...

struct GenerationStats {
    int64_t promptTokens = 0;
    int64_t reusedPromptTokens = 0;
    int64_t generatedTokens = 0;
    double timeToFirstTokenSeconds = 0.0;  // generate() called → first Token event
    double prefillSeconds = 0.0;
    double prefillTokensPerSecond = 0.0;   // computed prompt tokens / prefill time
    double decodeSeconds = 0.0;            // after the prefill
    double decodeTokensPerSecond = 0.0;    // generated tokens / decode time
    double totalSeconds = 0.0;
};

struct FinishedEvent {
    StopReason reason = StopReason::MaxTokens;
    std::string stopString;  // which one, for StopReason::StopString
    std::string textDelta;   // text still held back when generation ended (usually empty); the
                             // concatenation of every textDelta is the full response text
    GenerationStats stats;
    CacheUsage cache;
};

using GenerateEvent = std::variant<PromptProcessedEvent, TokenEvent, FinishedEvent>;
using EventCallback = std::function<void(const GenerateEvent&)>;

}  // namespace dsv2
