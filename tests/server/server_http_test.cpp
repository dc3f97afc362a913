// dsv2 serve as a real process on loopback with tiny-lite on the CPU: its answers against the
// engine's own greedy output, its streaming, stop strings, usage, logprobs and routing, and how it
// holds up against hostile or careless clients.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "http_helpers.h"
#include "remote/npy_array.h"

using namespace dsv2;
using namespace dsv2::test;

namespace {

// Routing on, a short line (2 waiting), a 2 s read timeout and a 64 KiB body limit: the limits
// the hostile-client cases run into.
ServerProcess& routedServer() {
    static ServerProcess s(
        {"--enable-return-routed-experts", "--max-waiting", "2", "--read-timeout", "2", "--max-body-bytes", "65536"},
        "server_http_routed");
    return s;
}

ServerProcess& keyedServer() {
    static ServerProcess s({"--api-key", "sekret"}, "server_http_keyed");
    return s;
}

json chatBody(const std::string& user, int64_t maxTokens) {
    return {{"model", "tiny-lite"},
            {"messages", {{{"role", "user"}, {"content", user}}}},
            {"temperature", 0},
            {"max_tokens", maxTokens},
            {"return_token_ids", true}};
}

double secondsSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string readFile(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("the server starts and lists its one model") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    Reply r = get(s, "/v1/models");
    REQUIRE(r.status == 200);
    REQUIRE(r.j["data"].size() == 1);
    CHECK(r.j["data"][0]["id"] == "tiny-lite");
    CHECK(r.j["data"][0]["dsv2"]["moe_layers"] == json::array({1, 2}));
    CHECK(r.j["data"][0]["dsv2"]["returns_routed_experts"] == true);
    CHECK(get(s, "/v1/models/tiny-lite").status == 200);
    CHECK(get(s, "/v1/models/gpt-4").status == 404);
}

TEST_CASE("non-streaming chat equals the engine's greedy output, with usage and token ids") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    const Reference ref = greedyChat("Hello there", 24);
    Reply r = post(s, "/v1/chat/completions", chatBody("Hello there", 24).dump());
    REQUIRE(r.status == 200);
    const json& choice = r.j["choices"][0];
    CHECK(r.j["object"] == "chat.completion");
    CHECK(choice["message"]["role"] == "assistant");
    CHECK(choice["message"]["content"] == ref.result.text);
    CHECK(choice["token_ids"].get<std::vector<int32_t>>() == ref.result.tokens);
    CHECK(r.j["prompt_token_ids"].get<std::vector<int32_t>>() == ref.result.promptTokens);
    CHECK(choice["finish_reason"] == (ref.result.reason == StopReason::Eos ? "stop" : "length"));
    CHECK(r.j["usage"]["prompt_tokens"] == ref.result.promptTokens.size());
    CHECK(r.j["usage"]["completion_tokens"] == ref.result.tokens.size());
    CHECK(r.j["usage"]["total_tokens"] == ref.result.promptTokens.size() + ref.result.tokens.size());
    CHECK(choice["logprobs"].is_null());
}

TEST_CASE("streaming chat sends the same tokens as SSE chunks, then usage and [DONE]") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    const Reference ref = greedyChat("Tell me a story", 20);
    json body = chatBody("Tell me a story", 20);
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    StreamReply r = postStream(s, "/v1/chat/completions", body);
    REQUIRE(r.status == 200);
    CHECK(r.done);
    REQUIRE(r.chunks.size() >= 3);
    CHECK(r.chunks.front()["choices"][0]["delta"]["role"] == "assistant");
    CHECK(r.chunks.front()["prompt_token_ids"].get<std::vector<int32_t>>() == ref.result.promptTokens);
    CHECK(r.text() == ref.result.text);
    std::vector<int32_t> ids;
    for (const json& c : r.chunks)
        if (!c["choices"].empty() && c["choices"][0].contains("token_ids"))
            for (const json& id : c["choices"][0]["token_ids"]) ids.push_back(id.get<int32_t>());
    CHECK(ids == ref.result.tokens);
    const json& closing = r.chunks[r.chunks.size() - 2];
    CHECK(closing["choices"][0]["finish_reason"] == (ref.result.reason == StopReason::Eos ? "stop" : "length"));
    const json& usage = r.chunks.back();
    CHECK(usage["choices"].empty());
    CHECK(usage["usage"]["completion_tokens"] == ref.result.tokens.size());
    CHECK(usage["usage"]["prompt_tokens"] == ref.result.promptTokens.size());
}

TEST_CASE("completions: a text prompt and a token prompt give the engine's greedy continuation") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    Engine& engine = referenceEngine();
    GenerateRequest req;
    req.promptTokens = engine.encode("Once upon a time", true);
    const Reference ref = greedy(req, 16);
    Reply r =
        post(s, "/v1/completions", json{{"prompt", "Once upon a time"}, {"max_tokens", 16}, {"temperature", 0}}.dump());
    REQUIRE(r.status == 200);
    CHECK(r.j["object"] == "text_completion");
    CHECK(r.j["choices"][0]["text"] == ref.result.text);
    Reply byIds =
        post(s, "/v1/completions", json{{"prompt", req.promptTokens}, {"max_tokens", 16}, {"temperature", 0}}.dump());
    REQUIRE(byIds.status == 200);
    CHECK(byIds.j["choices"][0]["text"] == ref.result.text);
}

TEST_CASE("stop strings end the answer before the stop string, streamed or not") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    const Reference full = greedyChat("Hello there", 40);
    REQUIRE(full.result.text.size() > 12);
    // A stop string taken from the middle of the greedy answer.
    const std::string stop = full.result.text.substr(full.result.text.size() / 2, 3);
    const Reference ref = greedyChat("Hello there", 40, {stop});
    REQUIRE(ref.result.reason == StopReason::StopString);
    json body = chatBody("Hello there", 40);
    body["stop"] = stop;
    Reply r = post(s, "/v1/chat/completions", body.dump());
    REQUIRE(r.status == 200);
    CHECK(r.j["choices"][0]["message"]["content"] == ref.result.text);
    CHECK(r.j["choices"][0]["message"]["content"].get<std::string>().find(stop) == std::string::npos);
    CHECK(r.j["choices"][0]["finish_reason"] == "stop");
    CHECK(r.j["choices"][0]["stop_reason"] == stop);

    body["stream"] = true;
    body["stop"] = json::array({"\x01never", stop});
    StreamReply sr = postStream(s, "/v1/chat/completions", body);
    REQUIRE(sr.status == 200);
    CHECK(sr.text() == ref.result.text);
    CHECK(sr.chunks.back()["choices"][0]["finish_reason"] == "stop");
}

TEST_CASE("logprobs and top_logprobs are the engine's, most likely first") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    const Reference ref = greedyChat("Hello there", 8, {}, 3);
    json body = chatBody("Hello there", 8);
    body["logprobs"] = true;
    body["top_logprobs"] = 3;
    Reply r = post(s, "/v1/chat/completions", body.dump());
    REQUIRE(r.status == 200);
    const json& content = r.j["choices"][0]["logprobs"]["content"];
    REQUIRE(content.size() == ref.result.tokens.size());
    for (size_t i = 0; i < content.size(); ++i) {
        CHECK(content[i]["logprob"].get<double>() == doctest::Approx(ref.result.logprobs[i]).epsilon(1e-5));
        REQUIRE(content[i]["top_logprobs"].size() == 3);
        for (size_t k = 0; k < 3; ++k)
            CHECK(content[i]["top_logprobs"][k]["logprob"].get<double>() ==
                  doctest::Approx(ref.alternatives[i][k].logprob).epsilon(1e-5));
        // Greedy: the chosen token is the most likely one.
        CHECK(content[i]["top_logprobs"][0]["logprob"].get<double>() ==
              doctest::Approx(content[i]["logprob"].get<double>()));
        CHECK(content[i]["bytes"].is_array());
    }
    // Completions' logprobs=N form.
    Reply c = post(s, "/v1/completions",
                   json{{"prompt", "Hi"}, {"max_tokens", 4}, {"temperature", 0}, {"logprobs", 2}}.dump());
    REQUIRE(c.status == 200);
    CHECK(c.j["choices"][0]["logprobs"]["token_logprobs"].size() == 4);
    CHECK(c.j["choices"][0]["logprobs"]["top_logprobs"][0].size() == 2);
}

TEST_CASE("routed_experts has vLLM's shape and the engine's experts and weights") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    const Reference ref = greedyChat("Route me", 6);
    for (bool stream : {false, true}) {
        CAPTURE(stream);
        json body = chatBody("Route me", 6);
        json choice;
        if (stream) {
            body["stream"] = true;
            StreamReply r = postStream(s, "/v1/chat/completions", body);
            REQUIRE(r.status == 200);
            choice = r.chunks.back()["choices"][0];
        } else {
            Reply r = post(s, "/v1/chat/completions", body.dump());
            REQUIRE(r.status == 200);
            choice = r.j["choices"][0];
        }
        REQUIRE(choice.contains("routed_experts"));
        auto ids = remote::decodeNpyBase64(choice["routed_experts"].get<std::string>());
        auto weights = remote::decodeNpyBase64(choice["routed_expert_weights"].get<std::string>());
        REQUIRE(ids.isOk());
        REQUIRE(weights.isOk());
        CHECK(ids->dtype == "<i4");
        CHECK(weights->dtype == "<f4");
        const size_t P = ref.result.promptTokens.size(), G = ref.result.tokens.size();
        // (prompt + completion - 1, num_hidden_layers, num_experts_per_tok)
        REQUIRE(ids->shape == std::vector<int64_t>{static_cast<int64_t>(P + G - 1), 3, 2});
        for (size_t t = 0; t < P + G - 1; ++t) {
            const TokenRouting& want = t < P ? ref.result.promptRouting[t] : ref.result.routing[t - P];
            for (int j = 0; j < 2; ++j) CHECK(ids->values[(t * 3 + 0) * 2 + j] == -1);  // layer 0 is dense
            for (size_t m = 0; m < 2; ++m)
                for (size_t j = 0; j < 2; ++j) {
                    const size_t at = (t * 3 + (m + 1)) * 2 + j;
                    CHECK(ids->values[at] == want.expertIds[m * 2 + j]);
                    CHECK(weights->values[at] == doctest::Approx(want.weights[m * 2 + j]).epsilon(1e-6));
                }
        }
    }
}

TEST_CASE("hostile requests get 4xx answers with OpenAI error bodies, and the server lives on") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    struct Case {
        const char* name;
        std::string body;
        int status;
        const char* param;
    };
    const std::vector<Case> cases = {
        {"malformed JSON", R"({"messages": [)", 400, nullptr},
        {"not an object", R"([1, 2, 3])", 400, nullptr},
        {"nested 10000 deep", std::string(10000, '['), 400, nullptr},
        {"no messages", R"({"model": "tiny-lite"})", 400, "messages"},
        {"messages not a list", R"({"messages": "hi"})", 400, "messages"},
        {"bad role", R"({"messages": [{"role": "wizard", "content": "x"}]})", 400, "messages[0].role"},
        {"image content", R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", 400,
         "messages[0].content[0]"},
        {"max_tokens a string", R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": "5"})", 400,
         "max_tokens"},
        {"negative max_tokens", R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": -1})", 400,
         "max_tokens"},
        {"temperature 7", R"({"messages": [{"role": "user", "content": "x"}], "temperature": 7})", 400, "temperature"},
        {"top_p 0", R"({"messages": [{"role": "user", "content": "x"}], "top_p": 0})", 400, "top_p"},
        {"stop a number", R"({"messages": [{"role": "user", "content": "x"}], "stop": 3})", 400, "stop"},
        {"stream a string", R"({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})", 400, "stream"},
        {"n = 2", R"({"messages": [{"role": "user", "content": "x"}], "n": 2})", 400, "n"},
        {"top_logprobs without logprobs", R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", 400,
         "top_logprobs"},
        {"unknown model", R"({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]})", 404, "model"},
        {"huge max_tokens number", R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400})", 400,
         nullptr},
    };
    for (const Case& c : cases) {
        const std::string name = c.name;
        CAPTURE(name);
        Reply r = post(s, "/v1/chat/completions", c.body);
        CHECK(r.status == c.status);
        REQUIRE(r.j.is_object());
        REQUIRE(r.j.contains("error"));
        CHECK(!r.j["error"]["message"].get<std::string>().empty());
        if (c.param) CHECK(r.j["error"]["param"] == c.param);
    }
    // Unknown top-level fields are ignored, as OpenAI does.
    Reply ok = post(s, "/v1/chat/completions",
                    R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2, "frobnicate": {"a": 1}})");
    CHECK(ok.status == 200);
    // A body over --max-body-bytes (64 KiB here).
    json big = chatBody(std::string(100000, 'a'), 2);
    Reply tooBig = post(s, "/v1/chat/completions", big.dump());
    CHECK(tooBig.status == 413);
    CHECK(tooBig.j["error"]["code"] == "request_too_large");
    CHECK(get(s, "/v1/nothing").status == 404);
    CHECK(get(s, "/v1/models").status == 200);  // still alive
}

TEST_CASE("the API key: missing or wrong is 401, right is served; /health needs none") {
    ServerProcess& s = keyedServer();
    REQUIRE(s.started());
    const std::string body = chatBody("x", 2).dump();
    Reply none = post(s, "/v1/chat/completions", body);
    CHECK(none.status == 401);
    CHECK(none.j["error"]["code"] == "invalid_api_key");
    CHECK(post(s, "/v1/chat/completions", body, {{"Authorization", "Bearer wrong"}}).status == 401);
    CHECK(post(s, "/v1/chat/completions", body, {{"Authorization", "Bearer sekret"}}).status == 200);
    CHECK(get(s, "/v1/models").status == 401);
    CHECK(get(s, "/v1/models", {{"Authorization", "Bearer sekret"}}).status == 200);
    CHECK(get(s, "/health").status == 200);
    // Without --enable-return-routed-experts there is no routing in the answer.
    Reply r = post(s, "/v1/chat/completions", body, {{"Authorization", "Bearer sekret"}});
    CHECK_FALSE(r.j["choices"][0].contains("routed_experts"));
}

TEST_CASE("a half-sent request does not block others and is dropped after the read timeout") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(s.port()));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const std::string partial =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
        "1000\r\n\r\n"
        "{\"messa";
    REQUIRE(send(fd, partial.data(), partial.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(partial.size()));

    const auto t0 = std::chrono::steady_clock::now();
    Reply r = post(s, "/v1/chat/completions", chatBody("x", 2).dump());
    CHECK(r.status == 200);
    CHECK(secondsSince(t0) < 5.0);

    // The server gives up on the half-sent one after --read-timeout (2 s): the socket becomes
    // readable (an answer or the close).
    pollfd p{fd, POLLIN, 0};
    CHECK(poll(&p, 1, 8000) == 1);
    close(fd);
}

TEST_CASE("many concurrent requests are queued or refused with 429, never a crash") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    constexpr int kClients = 10;
    std::vector<int> statuses(kClients, 0);
    std::vector<bool> done(kClients, false);
    std::vector<std::thread> threads;
    for (int i = 0; i < kClients; ++i)
        threads.emplace_back([&, i] {
            json body = chatBody("client " + std::to_string(i), 1000);
            body["ignore_eos"] = true;
            body["stream"] = true;
            StreamReply r = postStream(s, "/v1/chat/completions", body);
            statuses[static_cast<size_t>(i)] = r.status;
            done[static_cast<size_t>(i)] = r.done;
        });
    for (auto& t : threads) t.join();
    int served = 0, refused = 0;
    for (int i = 0; i < kClients; ++i) {
        CAPTURE(i);
        CHECK((statuses[static_cast<size_t>(i)] == 200 || statuses[static_cast<size_t>(i)] == 429));
        if (statuses[static_cast<size_t>(i)] == 200) {
            ++served;
            CHECK(done[static_cast<size_t>(i)]);
        } else {
            ++refused;
        }
    }
    CHECK(served >= 1);
    CHECK(refused >= 1);  // one runs, two wait (--max-waiting 2): the rest are refused
    CHECK(get(s, "/v1/models").status == 200);
}

TEST_CASE("a client that disconnects mid-stream cancels its generation") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    json body = chatBody("Go on forever", 1000000);
    body["ignore_eos"] = true;
    body["stream"] = true;
    StreamReply cut = postStream(s, "/v1/chat/completions", body, 4);
    REQUIRE(cut.status == 200);
    CHECK_FALSE(cut.done);
    // Were it still generating its ~160k tokens, this would wait for minutes.
    const auto t0 = std::chrono::steady_clock::now();
    Reply next = post(s, "/v1/chat/completions", chatBody("Next", 4).dump());
    CHECK(next.status == 200);
    CHECK(secondsSince(t0) < 10.0);
    CHECK(readFile(s.logPath()).find("generation cancelled") != std::string::npos);
}

TEST_CASE("SIGTERM stops the server cleanly, cancelling the running generation") {
    ServerProcess s({}, "server_http_shutdown");
    REQUIRE(s.started());
    StreamReply reply;
    std::thread client([&] {
        json body = chatBody("Go on forever", 1000000);
        body["ignore_eos"] = true;
        body["stream"] = true;
        reply = postStream(s, "/v1/chat/completions", body);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const int status = s.signalAndWait(SIGTERM, 20.0);
    client.join();
    // The stream was ended by the server, not cut: its generation was cancelled ("abort").
    CHECK(reply.status == 200);
    CHECK(reply.done);
    REQUIRE(reply.chunks.size() >= 2);
    CHECK(reply.chunks.back()["choices"][0]["finish_reason"] == "abort");
    REQUIRE(status != -1);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(readFile(s.logPath()).find("stopped") != std::string::npos);
}
