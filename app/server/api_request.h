#pragma once
// The body of POST /v1/chat/completions and /v1/completions, checked and turned into what the
// engine runs. Unknown top-level fields are ignored (as OpenAI does); known fields with the wrong
// type or an invalid value are a 400 that names the field; features we do not have (n > 1,
// tools, logit_bias, presence/frequency penalties) are a 400 rather than silently dropped.

#include <cstdint>
#include <string>
#include <vector>

#include "dsv2/generate.h"
#include "server/api_error.h"

namespace dsv2::server {

enum class Endpoint { ChatCompletions, Completions };

struct ApiRequest {
    Endpoint endpoint = Endpoint::ChatCompletions;
    std::string model;                    // empty: not given (the served model)
    std::vector<ChatTurn> messages;       // chat
    std::string prompt;                   // completions, as text
    std::vector<int32_t> promptTokenIds;  // completions, as token ids
    bool promptIsTokens = false;
    GenerateParams params;  // defaults from the model, then the request's values
    bool maxTokensGiven = false;
    bool stream = false;
    bool includeUsage = false;    // stream_options.include_usage
    bool logprobs = false;        // chat: logprobs=true; completions: logprobs=N (N >= 0)
    int topLogprobs = 0;          // alternatives per token
    bool returnTokenIds = false;  // vLLM's return_token_ids
};

// The limits a request is checked against.
struct RequestLimits {
    int maxStopStrings = 16;
    int maxTopLogprobs = 20;
    int maxJsonDepth = 64;
};

// `defaults` are the model's sampling defaults (generation_config.json).
ApiResult<ApiRequest> parseApiRequest(const std::string& body, Endpoint endpoint, const GenerateParams& defaults,
                                      const RequestLimits& limits = {});

}  // namespace dsv2::server
