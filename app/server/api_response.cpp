#include "server/api_response.h"

#include <chrono>
#include <random>

#include "remote/npy_array.h"

namespace dsv2::server {

using nlohmann::json;

namespace {

std::string randomId(const char* prefix) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static const char kHex[] = "0123456789abcdef";
    std::string id = prefix;
    for (int i = 0; i < 24; ++i) id += kHex[rng() % 16];
    return id;
}

json bytesJson(const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(static_cast<int>(c));
    return b;
}

}  // namespace

std::string dumpJson(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json errorJson(const ApiError& e) {
    return {{"error",
             {{"message", e.message},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

json modelJson(const ServedModel& m) {
    const ModelInfo& info = m.engine->info();
    return {{"id", m.name},
            {"object", "model"},
            {"created", m.created},
            {"owned_by", "dsv2"},
            {"max_model_len", m.context},
            // Ours: what a client needs to read routed_experts (which layers are MoE, top-k).
            {"dsv2",
             {{"num_hidden_layers", info.numLayers},
              {"moe_layers", info.moeLayers},
              {"n_routed_experts", info.nRoutedExperts},
              {"num_experts_per_tok", info.expertsPerToken},
              {"returns_routed_experts", m.returnRouting},
              {"backend", info.backend}}}};
}

const char* finishReason(StopReason reason) {
    switch (reason) {
    case StopReason::Eos:
    case StopReason::StopString: return "stop";
    case StopReason::MaxTokens:
    case StopReason::ContextFull: return "length";
    case StopReason::Cancelled: return "abort";
    }
    return "stop";
}

RoutingPayload encodeRouting(const ModelInfo& info, const std::vector<TokenRouting>& promptRouting,
                             const std::vector<TokenRouting>& routing) {
    // vLLM returns num_tokens - 1 rows: its last sampled token never went through the model. Ours
    // did, but the shape is kept so that a client written for vLLM reads ours unchanged.
    std::vector<const TokenRouting*> rows;
    for (const auto& r : promptRouting) rows.push_back(&r);
    for (const auto& r : routing) rows.push_back(&r);
    if (!rows.empty()) rows.pop_back();
    const auto layers = static_cast<size_t>(info.numLayers);
    const auto k = static_cast<size_t>(info.expertsPerToken);
    std::vector<int32_t> ids(rows.size() * layers * k, -1);
    std::vector<float> weights(rows.size() * layers * k, 0.0f);
    for (size_t t = 0; t < rows.size(); ++t) {
        const TokenRouting& r = *rows[t];
        for (size_t m = 0; m < info.moeLayers.size(); ++m) {
            const auto layer = static_cast<size_t>(info.moeLayers[m]);
            for (size_t j = 0; j < k && m * k + j < r.expertIds.size(); ++j) {
                ids[(t * layers + layer) * k + j] = r.expertIds[m * k + j];
                weights[(t * layers + layer) * k + j] = r.weights[m * k + j];
            }
        }
    }
    const std::vector<int64_t> shape{static_cast<int64_t>(rows.size()), info.numLayers, info.expertsPerToken};
    return {remote::encodeNpyBase64(ids, shape), remote::encodeNpyBase64(weights, shape),
            static_cast<int64_t>(rows.size())};
}

ResponseBuilder::ResponseBuilder(const ServedModel& model, const ApiRequest& request)
    : m_model(model),
      m_request(request),
      m_chat(request.endpoint == Endpoint::ChatCompletions),
      m_id(randomId(m_chat ? "chatcmpl-" : "cmpl-")),
      m_created(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                    .count()) {}

json ResponseBuilder::usageJson(const GenerationStats& s) const {
    return {{"prompt_tokens", s.promptTokens},
            {"completion_tokens", s.generatedTokens},
            {"total_tokens", s.promptTokens + s.generatedTokens},
            {"prompt_tokens_details", {{"cached_tokens", s.reusedPromptTokens}}}};
}

json ResponseBuilder::logprobsJson(const std::vector<int32_t>& ids, const std::vector<float>& logprobs,
                                   const std::vector<std::vector<TokenAlternative>>& alternatives) const {
    const Engine& engine = *m_model.engine;
    if (m_chat) {
        json content = json::array();
        for (size_t i = 0; i < ids.size(); ++i) {
            const std::string text = engine.tokenText(ids[i]);
            json top = json::array();
            if (i < alternatives.size())
                for (const auto& a : alternatives[i])
                    top.push_back({{"token", a.text}, {"logprob", a.logprob}, {"bytes", bytesJson(a.text)}});
            content.push_back({{"token", text},
                               {"logprob", logprobs[i]},
                               {"bytes", bytesJson(text)},
                               {"top_logprobs", std::move(top)}});
        }
        return {{"content", std::move(content)}};
    }
    json tokens = json::array(), tokenLogprobs = json::array(), top = json::array(), offsets = json::array();
    for (size_t i = 0; i < ids.size(); ++i) {
        tokens.push_back(engine.tokenText(ids[i]));
        tokenLogprobs.push_back(logprobs[i]);
        json alts = json::object();
        if (i < alternatives.size())
            for (const auto& a : alternatives[i]) alts[a.text] = a.logprob;
        top.push_back(std::move(alts));
        offsets.push_back(0);  // filled by the caller when it knows the text before the token
    }
    return {{"tokens", std::move(tokens)},
            {"token_logprobs", std::move(tokenLogprobs)},
            {"top_logprobs", std::move(top)},
            {"text_offset", std::move(offsets)}};
}

void ResponseBuilder::addRouting(json& choice, const GenerateResult& r) const {
    if (!m_model.returnRouting) return;
    RoutingPayload p = encodeRouting(m_model.engine->info(), r.promptRouting, r.routing);
    choice["routed_experts"] = std::move(p.experts);
    choice["routed_expert_weights"] = std::move(p.weights);
}

json ResponseBuilder::full(const GenerateResult& r,
                           const std::vector<std::vector<TokenAlternative>>& alternatives) const {
    json choice = {{"index", 0},
                   {"finish_reason", finishReason(r.reason)},
                   {"stop_reason", r.stopString.empty() ? json(nullptr) : json(r.stopString)}};
    if (m_chat)
        choice["message"] = {{"role", "assistant"}, {"content", r.text}};
    else
        choice["text"] = r.text;
    if (m_request.logprobs) {
        choice["logprobs"] = logprobsJson(r.tokens, r.logprobs, alternatives);
        if (!m_chat) {  // text_offset: where each token's text starts in the completion
            size_t offset = 0;
            for (size_t i = 0; i < r.tokens.size(); ++i) {
                choice["logprobs"]["text_offset"][i] = offset;
                offset += m_model.engine->decode(std::span<const int32_t>(&r.tokens[i], 1)).size();
            }
        }
    } else {
        choice["logprobs"] = nullptr;
    }
    if (m_request.returnTokenIds) choice["token_ids"] = r.tokens;
    addRouting(choice, r);
    json out = {{"id", m_id},
                {"object", m_chat ? "chat.completion" : "text_completion"},
                {"created", m_created},
                {"model", m_model.name},
                {"choices", json::array({std::move(choice)})},
                {"usage", usageJson(r.stats)}};
    if (m_request.returnTokenIds) out["prompt_token_ids"] = r.promptTokens;
    return out;
}

json ResponseBuilder::chunk(json choice) const {
    json out = {{"id", m_id},
                {"object", m_chat ? "chat.completion.chunk" : "text_completion"},
                {"created", m_created},
                {"model", m_model.name},
                {"choices", json::array({std::move(choice)})}};
    return out;
}

json ResponseBuilder::openingChunk(const std::vector<int32_t>& promptTokens) const {
    json choice = {{"index", 0}, {"finish_reason", nullptr}, {"logprobs", nullptr}};
    if (m_chat)
        choice["delta"] = {{"role", "assistant"}, {"content", ""}};
    else
        choice["text"] = "";
    json out = chunk(std::move(choice));
    if (m_request.returnTokenIds) out["prompt_token_ids"] = promptTokens;
    return out;
}

json ResponseBuilder::tokenChunk(const TokenEvent& e, size_t textOffset) const {
    json choice = {{"index", 0}, {"finish_reason", nullptr}};
    if (m_chat)
        choice["delta"] = {{"content", e.textDelta}};
    else
        choice["text"] = e.textDelta;
    choice["logprobs"] = m_request.logprobs ? logprobsJson({e.id}, {e.logprob}, {e.alternatives}) : json(nullptr);
    if (m_request.logprobs && !m_chat) choice["logprobs"]["text_offset"][0] = textOffset;
    if (m_request.returnTokenIds) choice["token_ids"] = json::array({e.id});
    return chunk(std::move(choice));
}

json ResponseBuilder::closingChunk(const GenerateResult& r, const std::string& unsentText) const {
    json choice = {{"index", 0},
                   {"finish_reason", finishReason(r.reason)},
                   {"stop_reason", r.stopString.empty() ? json(nullptr) : json(r.stopString)},
                   {"logprobs", nullptr}};
    if (m_chat)
        choice["delta"] = unsentText.empty() ? json::object() : json{{"content", unsentText}};
    else
        choice["text"] = unsentText;
    addRouting(choice, r);
    return chunk(std::move(choice));
}

json ResponseBuilder::usageChunk(const GenerationStats& stats) const {
    json out = chunk(json::object());
    out["choices"] = json::array();
    out["usage"] = usageJson(stats);
    return out;
}

}  // namespace dsv2::server
