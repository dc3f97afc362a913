#pragma once
// A client for OpenAI-compatible servers (dsv2 serve, vLLM, SGLang, llama.cpp's server...): lists
// models and streams chat completions. Qt-free; the GUI's remote backend runs it on a worker
// thread. What arrives is reported as the engine's own events (dsv2/events.h), so storage and
// the inspection views take remote answers like local ones:
//   PromptProcessed  when the first chunk arrives (promptTokens known when the server sends
//                    prompt_token_ids: dsv2 serve and vLLM do, asked with return_token_ids)
//   Token            per generated token (text, logprob, top alternatives, id when the server
//                    sends token_ids; id -1 otherwise). Routing is NOT in these: servers send it
//                    once, at the end, in routed_experts; it is in RemoteCompletion::routing.
//   Finished         after the server's [DONE] (or a cancel), with the reason and timings.
// A failure (cannot connect, timeout, HTTP error, the stream broken off) emits no Finished: it
// comes back in RemoteCompletion::error, with the text received until then kept.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dsv2/events.h"
#include "dsv2/generate.h"

namespace httplib {
class Client;
}

namespace dsv2::remote {

enum class RemoteErrorKind {
    None,
    Connection,   // could not connect (refused, unknown host, TLS failure)
    Timeout,      // connecting, or waiting for the next bytes, took longer than the limit
    Http,         // the server answered 4xx/5xx (httpStatus, message from its error body)
    Interrupted,  // the connection broke mid-answer (server killed, network lost)
    StreamError,  // the server sent an error event in the stream
    Protocol,     // not an OpenAI-compatible answer (bad JSON, no choices)
};
const char* remoteErrorKindName(RemoteErrorKind kind);

struct RemoteError {
    RemoteErrorKind kind = RemoteErrorKind::None;
    int httpStatus = 0;
    std::string message;  // a sentence a person can act on
    bool ok() const { return kind == RemoteErrorKind::None; }
};

struct ClientOptions {
    std::string baseUrl = "http://127.0.0.1:8000/v1";  // as OpenAI's base_url: scheme, host, port, /v1
    std::string apiKey;                                // sent as "Authorization: Bearer KEY"
    double connectTimeoutSeconds = 5.0;
    double readTimeoutSeconds = 120.0;  // longest silence while waiting for the next bytes
};

struct RemoteModel {
    std::string id;
    int64_t maxModelLen = 0;             // 0 when the server does not say
    std::optional<bool> returnsRouting;  // dsv2 serve says; other servers do not
    // dsv2 serve only (its "dsv2" block); 0/empty from other servers.
    std::vector<int32_t> moeLayers;
    int64_t numLayers = 0;
    int64_t nRoutedExperts = 0;
    int64_t expertsPerToken = 0;
};

struct RemoteChatRequest {
    std::string model;
    std::vector<ChatTurn> messages;
    // temperature, topP, topK, minP, repetitionPenalty, seed, maxNewTokens, stopStrings,
    // ignoreEos, topNAlternatives are sent; non-OpenAI ones (top_k, min_p, repetition_penalty,
    // ignore_eos) only when not at their "off" value.
    GenerateParams params;
    bool logprobs = true;
    bool returnTokenIds = true;  // vLLM's return_token_ids (ids of prompt and tokens)
};

struct RemoteCompletion {
    RemoteError error;  // ok when the answer ended with [DONE] or was cancelled
    std::string text;   // what arrived, also when it broke off
    std::vector<int32_t> promptTokenIds;
    std::vector<int32_t> tokens;  // when the server sent token ids
    std::vector<float> logprobs;  // per token, when it sent logprobs
    StopReason reason = StopReason::MaxTokens;
    std::string finishReason;  // the server's own word ("stop", "length", ...)
    std::string stopString;
    GenerationStats stats;  // tokens from usage; times measured here
    bool hasRouting = false;
    std::string routingNote;                  // why there is none ("the server returned no routing ...")
    std::vector<int32_t> routingLayers;       // model layer of each routed layer kept
    std::vector<TokenRouting> promptRouting;  // (prompt tokens)
    std::vector<TokenRouting> routing;        // (generated tokens, the last may be missing)
};

class OpenAiClient {
public:
    explicit OpenAiClient(ClientOptions options);
    ~OpenAiClient();
    OpenAiClient(const OpenAiClient&) = delete;
    OpenAiClient& operator=(const OpenAiClient&) = delete;

    // GET /models.
    std::vector<RemoteModel> listModels(RemoteError& error);

    // POST /chat/completions with stream: true. Blocks until the answer ends, fails or is
    // cancelled; events are delivered on the calling thread. `cancel` (may be null) is checked as
    // bytes arrive; cancel() below also breaks a wait for bytes.
    RemoteCompletion streamChat(const RemoteChatRequest& request, const EventCallback& onEvent,
                                const std::atomic<bool>* cancel = nullptr);

    // From any thread: stops the running streamChat at once (its result: reason Cancelled).
    void cancel();

private:
    std::unique_ptr<httplib::Client> makeClient() const;
    ClientOptions m_options;
    std::string m_hostPart;    // "http://host:port"
    std::string m_pathPrefix;  // "/v1"
    std::mutex m_activeMutex;
    httplib::Client* m_active = nullptr;
    std::atomic<bool> m_cancelRequested{false};
};

// Routing arrives after the tokens (in the last chunk): once the answer is complete, this fills
// each Token event's routing from completion.routing (token i gets row i; a token without a row,
// such as the last one from vLLM, keeps an empty routing).
void attachRouting(std::vector<TokenEvent>& tokens, const RemoteCompletion& completion);

}  // namespace dsv2::remote
