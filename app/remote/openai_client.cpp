#include "remote/openai_client.h"

#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "remote/remote_routing.h"
#include "remote/sse_parser.h"

namespace dsv2::remote {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

const char* remoteErrorKindName(RemoteErrorKind kind) {
    switch (kind) {
    case RemoteErrorKind::None: return "ok";
    case RemoteErrorKind::Connection: return "connection";
    case RemoteErrorKind::Timeout: return "timeout";
    case RemoteErrorKind::Http: return "http";
    case RemoteErrorKind::Interrupted: return "interrupted";
    case RemoteErrorKind::StreamError: return "stream_error";
    case RemoteErrorKind::Protocol: return "protocol";
    }
    return "unknown";
}

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void setTimeout(double seconds, time_t& sec, time_t& usec) {
    sec = static_cast<time_t>(seconds);
    usec = static_cast<time_t>((seconds - static_cast<double>(sec)) * 1e6);
}

// The message of an OpenAI error body ({"error": {"message": ...}}), else the body itself, cut.
std::string errorMessage(const std::string& body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_object() && j.contains("error")) {
        const json& e = j["error"];
        if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
        if (e.is_string()) return e.get<std::string>();
    }
    if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
    return body.size() > 300 ? body.substr(0, 300) + "..." : body;
}

std::string httpHint(int status) {
    switch (status) {
    case 401:
    case 403: return " Check the API key set for this server.";
    case 404: return " Check the server URL (it should end in /v1) and the model name.";
    case 413: return " The conversation is too large for this server; start a new one.";
    case 429: return " The server is busy; try again in a moment.";
    case 503: return " The server is overloaded or shutting down; try again later.";
    default: return status >= 500 ? " The server failed; its log says more." : "";
    }
}

StopReason stopReasonFor(const std::string& finish, bool hasStopString) {
    if (finish == "length") return StopReason::MaxTokens;
    if (finish == "abort" || finish == "cancelled") return StopReason::Cancelled;
    return hasStopString ? StopReason::StopString : StopReason::Eos;
}

json requestBody(const RemoteChatRequest& r) {
    const GenerateParams& p = r.params;
    json messages = json::array();
    for (const ChatTurn& t : r.messages) messages.push_back({{"role", t.role}, {"content", t.content}});
    json body = {{"model", r.model},
                 {"messages", std::move(messages)},
                 {"stream", true},
                 {"stream_options", {{"include_usage", true}}},
                 {"temperature", p.temperature},
                 {"top_p", p.topP},
                 {"max_tokens", p.maxNewTokens}};
    if (p.seed) body["seed"] = static_cast<int64_t>(*p.seed);
    if (!p.stopStrings.empty()) body["stop"] = p.stopStrings;
    if (p.topK > 0) body["top_k"] = p.topK;
    if (p.minP > 0.0) body["min_p"] = p.minP;
    if (p.repetitionPenalty != 1.0) body["repetition_penalty"] = p.repetitionPenalty;
    if (p.ignoreEos) body["ignore_eos"] = true;
    if (r.logprobs) {
        body["logprobs"] = true;
        if (p.topNAlternatives > 0) body["top_logprobs"] = p.topNAlternatives;
    }
    if (r.returnTokenIds) body["return_token_ids"] = true;
    return body;
}

}  // namespace

OpenAiClient::OpenAiClient(ClientOptions options) : m_options(std::move(options)) {
    // "http://host:port/v1/" -> "http://host:port" + "/v1"
    std::string url = m_options.baseUrl;
    while (!url.empty() && url.back() == '/') url.pop_back();
    const size_t scheme = url.find("://");
    const size_t path = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    m_hostPart = path == std::string::npos ? url : url.substr(0, path);
    m_pathPrefix = path == std::string::npos ? "" : url.substr(path);
}

OpenAiClient::~OpenAiClient() = default;

std::unique_ptr<httplib::Client> OpenAiClient::makeClient() const {
    auto client = std::make_unique<httplib::Client>(m_hostPart);
    time_t sec = 0, usec = 0;
    setTimeout(m_options.connectTimeoutSeconds, sec, usec);
    client->set_connection_timeout(sec, usec);
    setTimeout(m_options.readTimeoutSeconds, sec, usec);
    client->set_read_timeout(sec, usec);
    client->set_write_timeout(30, 0);
    if (!m_options.apiKey.empty()) client->set_bearer_token_auth(m_options.apiKey);
    return client;
}

std::vector<RemoteModel> OpenAiClient::listModels(RemoteError& error) {
    error = {};
    std::vector<RemoteModel> models;
    auto client = makeClient();
    auto res = client->Get(m_pathPrefix + "/models");
    if (!res) {
        const bool timeout = res.error() == httplib::Error::ConnectionTimeout;
        error = {timeout ? RemoteErrorKind::Timeout : RemoteErrorKind::Connection, 0,
                 (timeout ? "connecting to " : "cannot connect to ") + m_hostPart + " (" +
                     httplib::to_string(res.error()) + "). Is the server running, and is the URL right?"};
        return models;
    }
    if (res->status != 200) {
        error = {RemoteErrorKind::Http, res->status,
                 "the server answered HTTP " + std::to_string(res->status) + ": " + errorMessage(res->body) +
                     httpHint(res->status)};
        return models;
    }
    json j = json::parse(res->body, nullptr, false);
    if (!j.is_object() || !j.contains("data") || !j["data"].is_array()) {
        error = {
            RemoteErrorKind::Protocol, res->status,
            m_hostPart + m_pathPrefix + "/models did not answer with an OpenAI model list; is this the API's /v1 URL?"};
        return models;
    }
    for (const json& m : j["data"]) {
        if (!m.is_object() || !m.contains("id") || !m["id"].is_string()) continue;
        RemoteModel rm;
        rm.id = m["id"].get<std::string>();
        if (m.contains("max_model_len") && m["max_model_len"].is_number_integer()) rm.maxModelLen = m["max_model_len"];
        if (m.contains("dsv2") && m["dsv2"].is_object()) {
            const json& d = m["dsv2"];
            if (d.contains("returns_routed_experts") && d["returns_routed_experts"].is_boolean())
                rm.returnsRouting = d["returns_routed_experts"].get<bool>();
            rm.numLayers = d.value("num_hidden_layers", int64_t{0});
            rm.nRoutedExperts = d.value("n_routed_experts", int64_t{0});
            rm.expertsPerToken = d.value("num_experts_per_tok", int64_t{0});
            if (d.contains("moe_layers") && d["moe_layers"].is_array())
                for (const json& l : d["moe_layers"])
                    if (l.is_number_integer()) rm.moeLayers.push_back(l.get<int32_t>());
        }
        models.push_back(std::move(rm));
    }
    return models;
}

void OpenAiClient::cancel() {
    m_cancelRequested = true;
    std::lock_guard lock(m_activeMutex);
    if (m_active) m_active->stop();
}

RemoteCompletion OpenAiClient::streamChat(const RemoteChatRequest& request, const EventCallback& onEvent,
                                          const std::atomic<bool>* cancelFlag) {
    RemoteCompletion out;
    m_cancelRequested = false;
    auto client = makeClient();
    {
        std::lock_guard lock(m_activeMutex);
        m_active = client.get();
    }
    const Clock::time_point t0 = Clock::now();
    Clock::time_point lastBytes = t0;
    auto emit = [&](GenerateEvent e) {
        if (onEvent) onEvent(e);
    };
    auto cancelled = [&] { return m_cancelRequested.load() || (cancelFlag && cancelFlag->load()); };

    int status = 0;
    std::string errorBody;
    bool sawFirstChunk = false, sawDone = false;
    int64_t tokenIndex = 0;
    std::string routedExperts, routedWeights;
    int64_t usagePrompt = -1, usageCompletion = -1, usageCached = 0;

    auto handleChunk = [&](const json& j) -> bool {
        if (j.contains("error")) {
            out.error = {RemoteErrorKind::StreamError, status,
                         "the server reported an error mid-answer: " + errorMessage(j.dump())};
            return false;
        }
        if (!sawFirstChunk) {
            sawFirstChunk = true;
            PromptProcessedEvent p;
            if (j.contains("prompt_token_ids") && j["prompt_token_ids"].is_array())
                out.promptTokenIds = j["prompt_token_ids"].get<std::vector<int32_t>>();
            p.promptTokens = static_cast<int64_t>(out.promptTokenIds.size());
            p.computedTokens = p.promptTokens;
            p.seconds = since(t0);
            emit(p);
        }
        if (j.contains("usage") && j["usage"].is_object()) {
            const json& u = j["usage"];
            usagePrompt = u.value("prompt_tokens", int64_t{-1});
            usageCompletion = u.value("completion_tokens", int64_t{-1});
            if (u.contains("prompt_tokens_details") && u["prompt_tokens_details"].is_object())
                usageCached = u["prompt_tokens_details"].value("cached_tokens", int64_t{0});
        }
        if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return true;
        const json& c = j["choices"][0];
        std::string text;
        if (c.contains("delta") && c["delta"].is_object() && c["delta"].contains("content") &&
            c["delta"]["content"].is_string())
            text = c["delta"]["content"].get<std::string>();
        else if (c.contains("text") && c["text"].is_string())
            text = c["text"].get<std::string>();
        std::vector<int32_t> ids;
        if (c.contains("token_ids") && c["token_ids"].is_array())
            for (const json& id : c["token_ids"])
                if (id.is_number_integer()) ids.push_back(id.get<int32_t>());
        const json* content = nullptr;
        if (c.contains("logprobs") && c["logprobs"].is_object() && c["logprobs"].contains("content") &&
            c["logprobs"]["content"].is_array())
            content = &c["logprobs"]["content"];
        const size_t n = std::max(ids.size(), content ? content->size() : size_t{0});
        // A chunk may carry several tokens (vLLM batches them): the text goes with the first.
        for (size_t i = 0; i < std::max<size_t>(n, text.empty() ? 0 : 1); ++i) {
            TokenEvent e;
            e.index = tokenIndex++;
            e.id = i < ids.size() ? ids[i] : -1;
            if (i == 0) e.textDelta = text;
            if (content && i < content->size() && (*content)[i].is_object()) {
                const json& lp = (*content)[i];
                e.logprob = lp.value("logprob", 0.0f);
                if (lp.contains("top_logprobs") && lp["top_logprobs"].is_array())
                    for (const json& a : lp["top_logprobs"])
                        if (a.is_object())
                            e.alternatives.push_back({-1, a.value("logprob", 0.0f), a.value("token", std::string())});
                out.logprobs.push_back(e.logprob);
            }
            if (e.id >= 0) out.tokens.push_back(e.id);
            e.seconds = since(t0);
            if (e.index == 0) out.stats.timeToFirstTokenSeconds = e.seconds;
            out.text += e.textDelta;
            emit(e);
        }
        if (c.contains("finish_reason") && c["finish_reason"].is_string()) {
            out.finishReason = c["finish_reason"].get<std::string>();
            if (c.contains("stop_reason") && c["stop_reason"].is_string()) out.stopString = c["stop_reason"];
        }
        if (c.contains("routed_experts") && c["routed_experts"].is_string()) routedExperts = c["routed_experts"];
        if (c.contains("routed_expert_weights") && c["routed_expert_weights"].is_string())
            routedWeights = c["routed_expert_weights"];
        return true;
    };

    SseParser parser([&](const SseEvent& e) {
        if (e.data == "[DONE]") {
            sawDone = true;
            return false;
        }
        json j = json::parse(e.data, nullptr, false);
        if (!j.is_object()) {
            out.error = {RemoteErrorKind::Protocol, status,
                         "the server sent a stream event that is not JSON: " + e.data.substr(0, 200)};
            return false;
        }
        return handleChunk(j);
    });

    httplib::Request req;
    req.method = "POST";
    req.path = m_pathPrefix + "/chat/completions";
    req.headers = {{"Accept", "text/event-stream"}};
    req.body = requestBody(request).dump(-1, ' ', false, json::error_handler_t::replace);
    req.set_header("Content-Type", "application/json");
    req.response_handler = [&](const httplib::Response& r) {
        status = r.status;
        return !cancelled();
    };
    req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
        lastBytes = Clock::now();
        if (cancelled()) return false;
        if (status != 200) {
            if (errorBody.size() < 65536) errorBody.append(data, len);
            return true;
        }
        return parser.feed(std::string_view(data, len));
    };
    auto res = client->send(req);
    {
        std::lock_guard lock(m_activeMutex);
        m_active = nullptr;
    }

    out.stats.promptTokens = usagePrompt >= 0 ? usagePrompt : static_cast<int64_t>(out.promptTokenIds.size());
    out.stats.reusedPromptTokens = usageCached;
    out.stats.generatedTokens = usageCompletion >= 0 ? usageCompletion : tokenIndex;
    out.stats.totalSeconds = since(t0);
    out.stats.decodeSeconds = out.stats.totalSeconds - out.stats.timeToFirstTokenSeconds;
    out.stats.decodeTokensPerSecond =
        out.stats.decodeSeconds > 0 ? static_cast<double>(out.stats.generatedTokens) / out.stats.decodeSeconds : 0.0;

    const bool wasCancelled = cancelled() && !sawDone;
    if (!out.error.ok()) {
        // a stream error or a protocol error, set by the parser
    } else if (wasCancelled) {
        out.reason = StopReason::Cancelled;
        out.finishReason = "cancelled";
    } else if (status != 0 && status != 200) {
        std::string message = errorMessage(errorBody);
        if (message.empty()) message = "(no error message)";
        out.error = {RemoteErrorKind::Http, status,
                     "the server answered HTTP " + std::to_string(status) + ": " + message + httpHint(status)};
    } else if (!sawDone) {
        const httplib::Error err = res ? httplib::Error::Success : res.error();
        const double silent = std::chrono::duration<double>(Clock::now() - lastBytes).count();
        if (status == 0 && err == httplib::Error::ConnectionTimeout) {
            out.error = {RemoteErrorKind::Timeout, 0,
                         "connecting to " + m_hostPart + " timed out after " +
                             std::to_string(static_cast<int>(m_options.connectTimeoutSeconds)) + " s"};
        } else if (status == 0 && !sawFirstChunk && err == httplib::Error::Connection) {
            out.error = {RemoteErrorKind::Connection, 0,
                         "cannot connect to " + m_hostPart + " (" + httplib::to_string(err) +
                             "). Is the server running, and is the URL right?"};
        } else if (err == httplib::Error::Read && silent >= m_options.readTimeoutSeconds - 0.5) {
            out.error = {RemoteErrorKind::Timeout, status,
                         "the server sent nothing for " + std::to_string(static_cast<int>(silent)) +
                             " s; the answer so far is kept"};
        } else {
            out.error = {RemoteErrorKind::Interrupted, status,
                         "the connection to " + m_hostPart + " broke off after " + std::to_string(tokenIndex) +
                             " tokens (" +
                             (res ? std::string("the stream ended without [DONE]") : httplib::to_string(err)) +
                             "); the partial answer is kept"};
        }
    }
    if (out.error.ok() && !wasCancelled) out.reason = stopReasonFor(out.finishReason, !out.stopString.empty());

    // Routing arrives once, with the last chunk.
    if (!routedExperts.empty()) {
        const int64_t prompt = usagePrompt >= 0             ? usagePrompt
                               : out.promptTokenIds.empty() ? -1
                                                            : static_cast<int64_t>(out.promptTokenIds.size());
        auto decoded = decodeRouting(routedExperts, routedWeights, prompt, out.stats.generatedTokens);
        if (decoded.isOk()) {
            out.hasRouting = true;
            out.routingLayers = decoded->moeLayers;
            out.promptRouting = std::move(decoded->prompt);
            out.routing = std::move(decoded->completion);
        } else {
            out.routingNote = "the server's routing could not be read: " + decoded.status().message();
        }
    } else if (out.error.ok() && !wasCancelled) {
        out.routingNote = "the server returned no routing (it has to be started with --enable-return-routed-experts)";
    } else {
        out.routingNote = "no routing: the answer did not complete";
    }

    if (out.error.ok()) {
        FinishedEvent f;
        f.reason = out.reason;
        f.stopString = out.stopString;
        f.stats = out.stats;
        emit(f);
    }
    return out;
}

void attachRouting(std::vector<TokenEvent>& tokens, const RemoteCompletion& completion) {
    for (size_t i = 0; i < tokens.size(); ++i)
        tokens[i].routing = i < completion.routing.size() ? completion.routing[i] : TokenRouting{};
}

}  // namespace dsv2::remote
