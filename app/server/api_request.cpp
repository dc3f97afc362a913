#include "server/api_request.h"

#include <cmath>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

namespace dsv2::server {
namespace {

using nlohmann::json;

// Nesting deeper than any real request is refused before parsing: a body of a million '[' would
// otherwise cost a deep parse for nothing.
bool nestedTooDeep(const std::string& body, int maxDepth) {
    int depth = 0;
    bool inString = false, escaped = false;
    for (char c : body) {
        if (inString) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                inString = false;
        } else if (c == '"') {
            inString = true;
        } else if (c == '[' || c == '{') {
            if (++depth > maxDepth) return true;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return false;
}

std::string typeName(const json& v) { return v.type_name(); }

ApiError wrongType(const std::string& field, const char* expected, const json& v) {
    return badRequest("'" + field + "' must be " + expected + ", not " + typeName(v), field);
}

// Reads optional fields of one JSON object; the first problem is kept and reported.
class Fields {
public:
    explicit Fields(const json& object) : m_o(object) {}
    const std::optional<ApiError>& error() const { return m_error; }
    void fail(ApiError e) {
        if (!m_error) m_error = std::move(e);
    }

    // A field that is absent or null is "not given".
    const json* get(const char* name) const {
        auto it = m_o.find(name);
        return it == m_o.end() || it->is_null() ? nullptr : &*it;
    }
    std::optional<double> number(const char* name, double lo, double hi) {
        const json* v = get(name);
        if (!v) return std::nullopt;
        if (!v->is_number()) return fail(wrongType(name, "a number", *v)), std::nullopt;
        const double x = v->get<double>();
        if (!std::isfinite(x) || x < lo || x > hi) {
            fail(badRequest("'" + std::string(name) + "' is " + v->dump() + "; it must be in [" + fmtNum(lo) + ", " +
                                fmtNum(hi) + "]",
                            name));
            return std::nullopt;
        }
        return x;
    }
    std::optional<int64_t> integer(const char* name, int64_t lo, int64_t hi) {
        const json* v = get(name);
        if (!v) return std::nullopt;
        if (!v->is_number_integer()) return fail(wrongType(name, "an integer", *v)), std::nullopt;
        // A huge unsigned value does not fit int64: that is out of range too.
        if (v->is_number_unsigned() &&
            v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            fail(badRequest("'" + std::string(name) + "' is out of range", name));
            return std::nullopt;
        }
        const int64_t x = v->get<int64_t>();
        if (x < lo || x > hi) {
            fail(badRequest("'" + std::string(name) + "' is " + std::to_string(x) + "; it must be in [" +
                                std::to_string(lo) + ", " + std::to_string(hi) + "]",
                            name));
            return std::nullopt;
        }
        return x;
    }
    std::optional<bool> boolean(const char* name) {
        const json* v = get(name);
        if (!v) return std::nullopt;
        if (!v->is_boolean()) return fail(wrongType(name, "true or false", *v)), std::nullopt;
        return v->get<bool>();
    }
    std::optional<std::string> string(const char* name) {
        const json* v = get(name);
        if (!v) return std::nullopt;
        if (!v->is_string()) return fail(wrongType(name, "a string", *v)), std::nullopt;
        return v->get<std::string>();
    }

private:
    static std::string fmtNum(double x) {
        if (x == std::numeric_limits<double>::max()) return "inf";
        std::string s = std::to_string(x);
        s.erase(s.find_last_not_of('0') + 1);
        if (!s.empty() && s.back() == '.') s.pop_back();
        return s;
    }
    const json& m_o;
    std::optional<ApiError> m_error;
};

// OpenAI content: a string, or a list of parts of which we read the text ones.
std::optional<ApiError> readContent(const json& content, const std::string& where, std::string& out) {
    if (content.is_null()) return std::nullopt;
    if (content.is_string()) {
        out = content.get<std::string>();
        return std::nullopt;
    }
    if (!content.is_array()) return wrongType(where, "a string or a list of text parts", content);
    for (size_t i = 0; i < content.size(); ++i) {
        const json& part = content[i];
        const std::string at = where + "[" + std::to_string(i) + "]";
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
            return badRequest("'" + at + "' must be an object with a 'type'", at);
        if (part["type"] != "text")
            return badRequest(
                "'" + at + "' is of type '" + part["type"].get<std::string>() + "'; this model reads text only", at);
        if (!part.contains("text") || !part["text"].is_string())
            return badRequest("'" + at + ".text' must be a string", at + ".text");
        out += part["text"].get<std::string>();
    }
    return std::nullopt;
}

std::optional<ApiError> readMessages(const json* messages, std::vector<ChatTurn>& out) {
    if (!messages) return badRequest("'messages' is required: a list of {\"role\", \"content\"} objects", "messages");
    if (!messages->is_array()) return wrongType("messages", "a list", *messages);
    if (messages->empty()) return badRequest("'messages' is empty; send at least one message", "messages");
    for (size_t i = 0; i < messages->size(); ++i) {
        const json& m = (*messages)[i];
        const std::string at = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) return wrongType(at, "an object", m);
        if (!m.contains("role") || !m["role"].is_string())
            return badRequest("'" + at + ".role' must be a string", at + ".role");
        std::string role = m["role"].get<std::string>();
        if (role == "developer") role = "system";  // OpenAI's newer name for the system role
        if (role != "system" && role != "user" && role != "assistant")
            return badRequest("'" + at + ".role' is '" + role + "'; use system, user or assistant", at + ".role");
        ChatTurn turn{role, {}};
        if (m.contains("content")) {
            if (auto e = readContent(m["content"], at + ".content", turn.content)) return e;
        } else if (role != "assistant") {
            return badRequest("'" + at + ".content' is required", at + ".content");
        }
        out.push_back(std::move(turn));
    }
    return std::nullopt;
}

std::optional<ApiError> readPrompt(const json* prompt, ApiRequest& r) {
    if (!prompt) return badRequest("'prompt' is required: a string or a list of token ids", "prompt");
    if (prompt->is_string()) {
        r.prompt = prompt->get<std::string>();
    } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
        r.prompt = (*prompt)[0].get<std::string>();
    } else if (prompt->is_array() && !prompt->empty() && (*prompt)[0].is_number_integer()) {
        for (const json& id : *prompt) {
            if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
                id.get<int64_t>() > std::numeric_limits<int32_t>::max())
                return badRequest("'prompt' as token ids must hold non-negative integers only", "prompt");
            r.promptTokenIds.push_back(static_cast<int32_t>(id.get<int64_t>()));
        }
        r.promptIsTokens = true;
    } else if (prompt->is_array() && prompt->size() > 1) {
        return badRequest("one prompt per request: batched prompts are not supported", "prompt");
    } else {
        return wrongType("prompt", "a string or a list of token ids", *prompt);
    }
    if (!r.promptIsTokens && r.prompt.empty()) return badRequest("'prompt' is empty", "prompt");
    return std::nullopt;
}

std::optional<ApiError> readStop(const json* stop, const RequestLimits& limits, std::vector<std::string>& out) {
    if (!stop) return std::nullopt;
    if (stop->is_string()) {
        if (stop->get<std::string>().empty()) return badRequest("'stop' must not be an empty string", "stop");
        out.push_back(stop->get<std::string>());
        return std::nullopt;
    }
    if (!stop->is_array()) return wrongType("stop", "a string or a list of strings", *stop);
    if (static_cast<int>(stop->size()) > limits.maxStopStrings)
        return badRequest("'stop' has " + std::to_string(stop->size()) + " strings; at most " +
                              std::to_string(limits.maxStopStrings) + " are allowed",
                          "stop");
    for (const json& s : *stop) {
        if (!s.is_string() || s.get<std::string>().empty())
            return badRequest("'stop' must hold non-empty strings only", "stop");
        out.push_back(s.get<std::string>());
    }
    return std::nullopt;
}

}  // namespace

ApiResult<ApiRequest> parseApiRequest(const std::string& body, Endpoint endpoint, const GenerateParams& defaults,
                                      const RequestLimits& limits) {
    if (nestedTooDeep(body, limits.maxJsonDepth))
        return badRequest("the request body nests deeper than " + std::to_string(limits.maxJsonDepth) + " levels");
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) {
        // Parse again with exceptions for the position of the problem.
        std::string what = "the request body is not valid JSON";
        try {
            const json again = json::parse(body);
        } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e400
            what += " (" + std::string(e.what()) + ")";
        }
        return badRequest(what);
    }
    if (!j.is_object()) return badRequest("the request body must be a JSON object, not " + typeName(j));

    ApiRequest r;
    r.endpoint = endpoint;
    r.params = defaults;
    r.params.stopStrings.clear();
    Fields f(j);
    if (auto model = f.string("model")) r.model = *model;

    if (endpoint == Endpoint::ChatCompletions) {
        if (auto e = readMessages(f.get("messages"), r.messages)) return *e;
    } else {
        if (auto e = readPrompt(f.get("prompt"), r)) return *e;
    }

    // Sampling. OpenAI's ranges where it has them; the rest as vLLM takes them.
    if (auto t = f.number("temperature", 0.0, 2.0)) r.params.temperature = *t;
    if (auto p = f.number("top_p", 0.0, 1.0)) {
        if (*p <= 0.0) f.fail(badRequest("'top_p' must be greater than 0 (1 turns it off)", "top_p"));
        r.params.topP = *p;
    }
    if (auto k = f.integer("top_k", -1, std::numeric_limits<int32_t>::max())) r.params.topK = *k < 0 ? 0 : *k;
    if (auto m = f.number("min_p", 0.0, 1.0)) r.params.minP = *m;
    if (auto rp = f.number("repetition_penalty", 0.0, 100.0)) {
        if (*rp <= 0.0)
            f.fail(badRequest("'repetition_penalty' must be greater than 0 (1 turns it off)", "repetition_penalty"));
        r.params.repetitionPenalty = *rp;
    }
    if (auto s = f.integer("seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()))
        r.params.seed = static_cast<uint64_t>(*s);
    for (const char* penalty : {"presence_penalty", "frequency_penalty"}) {
        if (auto v = f.number(penalty, -2.0, 2.0); v && *v != 0.0)
            f.fail(badRequest(std::string("'") + penalty + "' is not supported; use 'repetition_penalty'", penalty));
    }
    if (auto n = f.integer("n", 1, std::numeric_limits<int32_t>::max()); n && *n != 1)
        f.fail(badRequest("'n' must be 1: one choice per request", "n"));
    if (const json* tools = f.get("tools"); tools && !(tools->is_array() && tools->empty()))
        f.fail(badRequest("'tools' (function calling) is not supported", "tools"));
    if (const json* bias = f.get("logit_bias"); bias && !(bias->is_object() && bias->empty()))
        f.fail(badRequest("'logit_bias' is not supported", "logit_bias"));
    if (const json* format = f.get("response_format")) {
        if (!format->is_object() || format->value("type", "") != "text")
            f.fail(badRequest("'response_format' other than {\"type\": \"text\"} is not supported", "response_format"));
    }

    // Stopping.
    std::optional<int64_t> maxTokens = f.integer("max_tokens", 1, std::numeric_limits<int64_t>::max());
    if (endpoint == Endpoint::ChatCompletions) {
        if (auto m = f.integer("max_completion_tokens", 1, std::numeric_limits<int64_t>::max())) maxTokens = m;
    }
    if (maxTokens) {
        r.params.maxNewTokens = *maxTokens;
        r.maxTokensGiven = true;
    }
    if (auto e = readStop(f.get("stop"), limits, r.params.stopStrings)) f.fail(*e);
    if (auto ignore = f.boolean("ignore_eos")) r.params.ignoreEos = *ignore;

    // Streaming and reporting.
    if (auto s = f.boolean("stream")) r.stream = *s;
    if (const json* so = f.get("stream_options")) {
        if (!so->is_object()) {
            f.fail(wrongType("stream_options", "an object", *so));
        } else if (so->contains("include_usage")) {
            if (!(*so)["include_usage"].is_boolean())
                f.fail(wrongType("stream_options.include_usage", "true or false", (*so)["include_usage"]));
            else
                r.includeUsage = (*so)["include_usage"].get<bool>();
        }
    }
    if (endpoint == Endpoint::ChatCompletions) {
        if (auto lp = f.boolean("logprobs")) r.logprobs = *lp;
        if (auto top = f.integer("top_logprobs", 0, limits.maxTopLogprobs)) {
            if (*top > 0 && !r.logprobs) f.fail(badRequest("'top_logprobs' needs 'logprobs': true", "top_logprobs"));
            r.topLogprobs = static_cast<int>(*top);
        }
    } else if (auto lp = f.integer("logprobs", 0, limits.maxTopLogprobs)) {
        r.logprobs = true;  // completions: logprobs=N asks for the chosen token plus N alternatives
        r.topLogprobs = static_cast<int>(*lp);
    }
    if (auto ids = f.boolean("return_token_ids")) r.returnTokenIds = *ids;
    if (f.error()) return *f.error();
    r.params.topNAlternatives = r.topLogprobs;
    return r;
}

}  // namespace dsv2::server
