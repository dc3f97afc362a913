// The remote client (app/remote) against a real `dsv2 serve`: what it streams must be what the
// engine would have produced locally, as the engine's own events; failures come back as distinct
// kinds with the partial answer kept.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>
#include <csignal>

#include <chrono>
#include <thread>

#include "http_helpers.h"
#include "remote/openai_client.h"

using namespace dsv2;
using namespace dsv2::remote;
using namespace dsv2::test;

namespace {

ServerProcess& routedServer() {
    static ServerProcess s({"--enable-return-routed-experts"}, "remote_client_routed");
    return s;
}

RemoteChatRequest chat(const std::string& user, int64_t maxTokens) {
    RemoteChatRequest r;
    r.model = "tiny-lite";
    r.messages = {{"user", user}};
    r.params.temperature = 0.0;
    r.params.maxNewTokens = maxTokens;
    r.params.topNAlternatives = 2;
    return r;
}

struct Recorded {
    std::vector<GenerateEvent> events;
    std::string text() const {
        std::string t;
        for (const auto& e : events)
            if (const auto* tok = std::get_if<TokenEvent>(&e)) t += tok->textDelta;
        return t;
    }
    size_t tokens() const {
        size_t n = 0;
        for (const auto& e : events) n += std::holds_alternative<TokenEvent>(e);
        return n;
    }
};

}  // namespace

TEST_CASE("listModels: the served model and what dsv2 serve says about routing") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    OpenAiClient client({s.baseUrl(), "", 5, 30});
    RemoteError error;
    auto models = client.listModels(error);
    REQUIRE(error.ok());
    REQUIRE(models.size() == 1);
    CHECK(models[0].id == "tiny-lite");
    CHECK(models[0].returnsRouting == true);
    CHECK(models[0].moeLayers == std::vector<int32_t>{1, 2});
    CHECK(models[0].maxModelLen > 0);
    CHECK(models[0].numLayers == 3);
    CHECK(models[0].nRoutedExperts == 8);
    CHECK(models[0].expertsPerToken == 2);
}

TEST_CASE("streamChat: the engine's greedy answer as engine events, with logprobs and routing") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    const Reference ref = greedyChat("Hello there", 16, {}, 2);
    OpenAiClient client({s.baseUrl(), "", 5, 30});
    Recorded rec;
    RemoteCompletion out =
        client.streamChat(chat("Hello there", 16), [&](const GenerateEvent& e) { rec.events.push_back(e); });
    REQUIRE(out.error.ok());
    REQUIRE(rec.events.size() >= 3);
    CHECK(std::holds_alternative<PromptProcessedEvent>(rec.events.front()));
    CHECK(std::get<PromptProcessedEvent>(rec.events.front()).promptTokens ==
          static_cast<int64_t>(ref.result.promptTokens.size()));
    REQUIRE(std::holds_alternative<FinishedEvent>(rec.events.back()));
    CHECK(std::get<FinishedEvent>(rec.events.back()).reason == ref.result.reason);
    CHECK(rec.text() == ref.result.text);
    CHECK(out.text == ref.result.text);
    CHECK(rec.tokens() == ref.result.tokens.size());
    CHECK(out.tokens == ref.result.tokens);
    CHECK(out.promptTokenIds == ref.result.promptTokens);
    CHECK(out.stats.promptTokens == static_cast<int64_t>(ref.result.promptTokens.size()));
    CHECK(out.stats.generatedTokens == static_cast<int64_t>(ref.result.tokens.size()));
    REQUIRE(out.logprobs.size() == ref.result.logprobs.size());
    for (size_t i = 0; i < out.logprobs.size(); ++i)
        CHECK(out.logprobs[i] == doctest::Approx(ref.result.logprobs[i]).epsilon(1e-5));
    size_t index = 0;
    for (const auto& e : rec.events)
        if (const auto* t = std::get_if<TokenEvent>(&e)) {
            CHECK(t->index == static_cast<int64_t>(index));
            CHECK(t->id == ref.result.tokens[index]);
            REQUIRE(t->alternatives.size() == 2);
            CHECK(t->alternatives[0].logprob == doctest::Approx(ref.alternatives[index][0].logprob).epsilon(1e-5));
            ++index;
        }

    REQUIRE(out.hasRouting);
    CHECK(out.routingLayers == std::vector<int32_t>{1, 2});
    REQUIRE(out.promptRouting.size() == ref.result.promptTokens.size());
    // vLLM's shape has no row for the last token.
    REQUIRE(out.routing.size() == ref.result.tokens.size() - 1);
    for (size_t t = 0; t < out.routing.size(); ++t) {
        CHECK(out.routing[t].expertIds == ref.result.routing[t].expertIds);
        REQUIRE(out.routing[t].weights.size() == ref.result.routing[t].weights.size());
        for (size_t j = 0; j < out.routing[t].weights.size(); ++j)
            CHECK(out.routing[t].weights[j] == doctest::Approx(ref.result.routing[t].weights[j]).epsilon(1e-6));
    }
    CHECK(out.promptRouting[3].expertIds == ref.result.promptRouting[3].expertIds);

    // Routing attached to the recorded Token events after the end, as storage wants it.
    std::vector<TokenEvent> tokens;
    for (const auto& e : rec.events)
        if (const auto* t = std::get_if<TokenEvent>(&e)) tokens.push_back(*t);
    attachRouting(tokens, out);
    CHECK(tokens[2].routing.expertIds == ref.result.routing[2].expertIds);
    CHECK(tokens.back().routing.expertIds.empty());
}

TEST_CASE("streamChat: a stop string is reported as such") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    const Reference full = greedyChat("Hello there", 30);
    const std::string stop = full.result.text.substr(full.result.text.size() / 2, 3);
    const Reference ref = greedyChat("Hello there", 30, {stop});
    OpenAiClient client({s.baseUrl(), "", 5, 30});
    RemoteChatRequest req = chat("Hello there", 30);
    req.params.stopStrings = {stop};
    RemoteCompletion out = client.streamChat(req, {});
    REQUIRE(out.error.ok());
    CHECK(out.text == ref.result.text);
    CHECK(out.reason == StopReason::StopString);
    CHECK(out.stopString == stop);
}

TEST_CASE("streamChat: a server without routing says so") {
    ServerProcess s({}, "remote_client_plain");
    REQUIRE(s.started());
    OpenAiClient client({s.baseUrl(), "", 5, 30});
    RemoteCompletion out = client.streamChat(chat("Hello", 4), {});
    REQUIRE(out.error.ok());
    CHECK_FALSE(out.hasRouting);
    CHECK(out.routingNote.find("returned no routing") != std::string::npos);
}

TEST_CASE("cancel mid-stream: the flag, or cancel() from another thread; the server moves on") {
    ServerProcess& s = routedServer();
    REQUIRE(s.started());
    OpenAiClient client({s.baseUrl(), "", 5, 30});
    RemoteChatRequest forever = chat("Go on forever", 1000000);
    forever.params.ignoreEos = true;

    std::atomic<bool> cancel{false};
    Recorded rec;
    RemoteCompletion out = client.streamChat(
        forever,
        [&](const GenerateEvent& e) {
            rec.events.push_back(e);
            if (rec.tokens() == 5) cancel = true;
        },
        &cancel);
    CHECK(out.error.ok());
    CHECK(out.reason == StopReason::Cancelled);
    CHECK(rec.tokens() == 5);
    CHECK(out.text == rec.text());
    REQUIRE(std::holds_alternative<FinishedEvent>(rec.events.back()));
    CHECK(std::get<FinishedEvent>(rec.events.back()).reason == StopReason::Cancelled);

    std::thread canceller([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        client.cancel();
    });
    RemoteCompletion second = client.streamChat(forever, {});
    canceller.join();
    CHECK(second.error.ok());
    CHECK(second.reason == StopReason::Cancelled);

    // The server noticed both disconnects: a short request is served at once.
    const auto t0 = std::chrono::steady_clock::now();
    RemoteCompletion next = client.streamChat(chat("Next", 3), {});
    CHECK(next.error.ok());
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 10.0);
}

TEST_CASE("the server killed mid-answer: Interrupted, the partial text kept") {
    ServerProcess s({}, "remote_client_killed");
    REQUIRE(s.started());
    OpenAiClient client({s.baseUrl(), "", 5, 30});
    RemoteChatRequest forever = chat("Go on forever", 1000000);
    forever.params.ignoreEos = true;
    Recorded rec;
    RemoteCompletion out = client.streamChat(forever, [&](const GenerateEvent& e) {
        rec.events.push_back(e);
        if (rec.tokens() == 10) kill(s.pid(), SIGKILL);
    });
    CHECK(out.error.kind == RemoteErrorKind::Interrupted);
    CHECK(out.error.message.find("partial answer is kept") != std::string::npos);
    CHECK(rec.tokens() >= 10);
    CHECK(out.text == rec.text());
    CHECK_FALSE(out.text.empty());
    CHECK_FALSE(std::holds_alternative<FinishedEvent>(rec.events.back()));
}

TEST_CASE("errors are told apart: connection refused, timeout, HTTP 401/404") {
    // A port nobody listens on: bind one, note it, close it.
    const int probe = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    REQUIRE(bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &len);
    const int freePort = ntohs(addr.sin_port);
    close(probe);
    {
        OpenAiClient client({"http://127.0.0.1:" + std::to_string(freePort) + "/v1", "", 2, 5});
        RemoteCompletion out = client.streamChat(chat("x", 2), {});
        CHECK(out.error.kind == RemoteErrorKind::Connection);
        CHECK(out.error.message.find("cannot connect") != std::string::npos);
        RemoteError e;
        CHECK(client.listModels(e).empty());
        CHECK(e.kind == RemoteErrorKind::Connection);
    }
    {
        // A server that accepts (the kernel's backlog does) and never answers.
        const int mute = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        REQUIRE(bind(mute, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(listen(mute, 4) == 0);
        socklen_t l = sizeof a;
        getsockname(mute, reinterpret_cast<sockaddr*>(&a), &l);
        OpenAiClient client({"http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/v1", "", 2, 1.0});
        RemoteCompletion out = client.streamChat(chat("x", 2), {});
        CHECK(out.error.kind == RemoteErrorKind::Timeout);
        close(mute);
    }
    ServerProcess keyed({"--api-key", "sekret"}, "remote_client_keyed");
    REQUIRE(keyed.started());
    {
        OpenAiClient client({keyed.baseUrl(), "wrong", 5, 30});
        RemoteCompletion out = client.streamChat(chat("x", 2), {});
        CHECK(out.error.kind == RemoteErrorKind::Http);
        CHECK(out.error.httpStatus == 401);
        CHECK(out.error.message.find("API key") != std::string::npos);
    }
    {
        OpenAiClient client({keyed.baseUrl(), "sekret", 5, 30});
        RemoteChatRequest req = chat("x", 2);
        req.model = "no-such-model";
        RemoteCompletion out = client.streamChat(req, {});
        CHECK(out.error.kind == RemoteErrorKind::Http);
        CHECK(out.error.httpStatus == 404);
        CHECK(out.error.message.find("does not exist") != std::string::npos);
        req.model = "tiny-lite";
        CHECK(client.streamChat(req, {}).error.ok());
    }
}
