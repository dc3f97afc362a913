#pragma once
// Plain HTTP calls for the server suites: a JSON POST, a streamed POST read as server-sent events,
// and the engine's own greedy answer for comparison.

#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dsv2/engine.h"
#include "remote/sse_parser.h"
#include "server_process.h"

namespace dsv2::test {

using nlohmann::json;

struct Reply {
    int status = 0;  // 0: no answer (connection failed)
    std::string body;
    json j;  // the body parsed (null when it is not JSON)
};

inline Reply post(const ServerProcess& s, const std::string& path, const std::string& body,
                  const httplib::Headers& headers = {}) {
    httplib::Client c(s.hostPort());
    c.set_read_timeout(60, 0);
    Reply r;
    auto res = c.Post(path, headers, body, "application/json");
    if (!res) return r;
    r.status = res->status;
    r.body = res->body;
    r.j = json::parse(r.body, nullptr, false);
    return r;
}

inline Reply get(const ServerProcess& s, const std::string& path, const httplib::Headers& headers = {}) {
    httplib::Client c(s.hostPort());
    Reply r;
    auto res = c.Get(path, headers);
    if (!res) return r;
    r.status = res->status;
    r.body = res->body;
    r.j = json::parse(r.body, nullptr, false);
    return r;
}

struct StreamReply {
    int status = 0;
    std::vector<json> chunks;  // every data: event but [DONE]
    bool done = false;         // [DONE] arrived
    std::string errorBody;     // the body of a non-200 answer
    // Text of the chat deltas (or completion texts) in order.
    std::string text() const {
        std::string t;
        for (const json& c : chunks) {
            if (!c.contains("choices") || c["choices"].empty()) continue;
            const json& ch = c["choices"][0];
            if (ch.contains("delta") && ch["delta"].contains("content")) t += ch["delta"]["content"].get<std::string>();
            if (ch.contains("text")) t += ch["text"].get<std::string>();
        }
        return t;
    }
};

// `stopAfter` > 0: close the connection after that many chunks (a client that goes away).
inline StreamReply postStream(const ServerProcess& s, const std::string& path, const json& body, int stopAfter = 0) {
    httplib::Client c(s.hostPort());
    c.set_read_timeout(120, 0);
    StreamReply out;
    remote::SseParser parser([&](const remote::SseEvent& e) {
        if (e.data == "[DONE]") {
            out.done = true;
            return true;
        }
        out.chunks.push_back(json::parse(e.data, nullptr, false));
        return stopAfter <= 0 || static_cast<int>(out.chunks.size()) < stopAfter;
    });
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.response_handler = [&](const httplib::Response& r) {
        out.status = r.status;
        return true;
    };
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        if (out.status != 200) {
            out.errorBody.append(data, n);
            return true;
        }
        return parser.feed(std::string_view(data, n));
    };
    (void)c.send(req);
    return out;
}

// The engine's own answer, computed in this process on a fresh session (greedy).
struct Reference {
    GenerateResult result;
    std::vector<std::vector<TokenAlternative>> alternatives;
};

inline Engine& referenceEngine() {
    static std::unique_ptr<Engine> engine = [] {
        EngineOptions o;
        o.backend = BackendChoice::Cpu;
        o.threads = 1;
        auto e = Engine::load(tinyLiteDir(), o);
        if (!e.isOk()) throw std::runtime_error(e.status().toString());
        return std::move(e).value();
    }();
    return *engine;
}

inline Reference greedy(GenerateRequest request, int64_t maxTokens, std::vector<std::string> stops = {},
                        int alternatives = 0) {
    Engine& engine = referenceEngine();
    auto session = engine.createSession();
    request.params = GenerateParams{};
    request.params.temperature = 0.0;
    request.params.maxNewTokens = maxTokens;
    request.params.stopStrings = std::move(stops);
    request.params.topNAlternatives = alternatives;
    request.params.wantPromptRouting = true;
    Reference ref;
    auto r = (*session)->generate(request, [&](const GenerateEvent& e) {
        if (const auto* t = std::get_if<TokenEvent>(&e)) ref.alternatives.push_back(t->alternatives);
    });
    if (!r.isOk()) throw std::runtime_error(r.status().toString());
    ref.result = std::move(r).value();
    return ref;
}

inline Reference greedyChat(const std::string& user, int64_t maxTokens, std::vector<std::string> stops = {},
                            int alternatives = 0) {
    GenerateRequest req;
    req.messages = {{"user", user}};
    return greedy(std::move(req), maxTokens, std::move(stops), alternatives);
}

}  // namespace dsv2::test
