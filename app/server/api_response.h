#pragma once
// The JSON a completion is answered with: OpenAI's objects (chat.completion, text_completion and
// their streamed chunks), plus vLLM's extensions: token_ids/prompt_token_ids (return_token_ids),
// stop_reason, and routed_experts (see docs/server.md for its shape).

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dsv2/engine.h"
#include "server/api_error.h"
#include "server/api_request.h"

namespace dsv2::server {

struct ServedModel {
    std::string name;  // what /v1/models lists and requests must name
    const Engine* engine = nullptr;
    int64_t context = 0;         // tokens a session holds
    bool returnRouting = false;  // --enable-return-routed-experts
    int64_t created = 0;         // unix time the server started
};

nlohmann::json errorJson(const ApiError& e);
nlohmann::json modelJson(const ServedModel& m);

// "stop", "length" or "abort", and vLLM's stop_reason (the stop string, else null).
const char* finishReason(StopReason reason);

// The routing of every token that went through the model, in vLLM's layout:
// routed_experts = base64(.npy int32 (prompt + completion - 1, num_hidden_layers, top_k)), dense
// layers -1; routed_expert_weights (our extension) the same shape in float32, dense layers 0.
struct RoutingPayload {
    std::string experts;
    std::string weights;
    int64_t rows = 0;
};
RoutingPayload encodeRouting(const ModelInfo& info, const std::vector<TokenRouting>& promptRouting,
                             const std::vector<TokenRouting>& routing);

// Builds the answers of one request (they share an id and a creation time).
class ResponseBuilder {
public:
    ResponseBuilder(const ServedModel& model, const ApiRequest& request);

    // Non-streaming; `alternatives` (per generated token) as the Token events carried them.
    nlohmann::json full(const GenerateResult& r, const std::vector<std::vector<TokenAlternative>>& alternatives) const;
    // Streaming: the opening chunk (chat: the assistant role), one per token, the closing chunk
    // with finish_reason (and the routing), then the usage chunk when asked for.
    nlohmann::json openingChunk(const std::vector<int32_t>& promptTokens) const;
    // textOffset: characters of the completion already sent (completions' logprobs.text_offset).
    nlohmann::json tokenChunk(const TokenEvent& e, size_t textOffset) const;
    nlohmann::json closingChunk(const GenerateResult& r, const std::string& unsentText) const;
    nlohmann::json usageChunk(const GenerationStats& stats) const;

private:
    nlohmann::json chunk(nlohmann::json choice) const;
    nlohmann::json logprobsJson(const std::vector<int32_t>& ids, const std::vector<float>& logprobs,
                                const std::vector<std::vector<TokenAlternative>>& alternatives) const;
    nlohmann::json usageJson(const GenerationStats& stats) const;
    void addRouting(nlohmann::json& choice, const GenerateResult& r) const;

    const ServedModel& m_model;
    const ApiRequest& m_request;
    bool m_chat;
    std::string m_id;
    int64_t m_created;
};

// Every answer is dumped through here: invalid UTF-8 (a token that is half a character) becomes
// U+FFFD instead of an exception.
std::string dumpJson(const nlohmann::json& j);

}  // namespace dsv2::server
