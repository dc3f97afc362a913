// The public Engine/Session API on the CPU backend with tiny-lite: generation events, greedy
// tokens against HF's, prefix reuse across turns, regenerate, cancel, stop strings, seeds, limits
// and errors.

#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <string>
#include <vector>

#include "dsv2/engine.h"
#include "reference_fixture.h"
#include "test_data.h"

using namespace dsv2;
using namespace dsv2::test;

namespace {

std::unique_ptr<Engine> loadTinyLite(EngineOptions options = {}) {
    options.backend = BackendChoice::Cpu;
    auto e = Engine::load(tinyLiteDir(), options);
    REQUIRE_MESSAGE(e.isOk(), e.status().toString());
    return std::move(e).value();
}

std::unique_ptr<Session> newSession(Engine& e, int64_t capacity = 0) {
    auto s = e.createSession(capacity);
    REQUIRE_MESSAGE(s.isOk(), s.status().toString());
    return std::move(s).value();
}

GenerateRequest greedyRequest(std::vector<int32_t> prompt, int64_t maxNew) {
    GenerateRequest r;
    r.promptTokens = std::move(prompt);
    r.params.maxNewTokens = maxNew;
    r.params.ignoreEos = true;
    return r;
}

struct Recorded {
    int prompts = 0;
    int finishes = 0;
    std::vector<TokenEvent> tokens;
    PromptProcessedEvent prompt;
    FinishedEvent finished;
    std::string text;
};

EventCallback recorder(Recorded& rec) {
    return [&rec](const GenerateEvent& e) {
        if (auto* p = std::get_if<PromptProcessedEvent>(&e)) {
            ++rec.prompts;
            rec.prompt = *p;
        } else if (auto* t = std::get_if<TokenEvent>(&e)) {
            REQUIRE(rec.prompts == 1);
            rec.tokens.push_back(*t);
            rec.text += t->textDelta;
        } else if (auto* f = std::get_if<FinishedEvent>(&e)) {
            ++rec.finishes;
            rec.finished = *f;
            rec.text += f->textDelta;
        }
    };
}

GenerateResult generateOk(Session& s, const GenerateRequest& r, const EventCallback& cb = {}) {
    auto result = s.generate(r, cb);
    REQUIRE_MESSAGE(result.isOk(), result.status().toString());
    return std::move(result).value();
}

}  // namespace

TEST_CASE("engine: model info, defaults from generation_config.json, no CUDA backend here") {
    auto engine = loadTinyLite();
    const ModelInfo& info = engine->info();
    CHECK(info.name == "tiny-lite");
    CHECK(info.vocabSize == 512);
    CHECK(info.numLayers == 3);
    CHECK(info.moeLayers == std::vector<int32_t>{1, 2});
    CHECK(info.cacheBytesPerToken == 3 * (32 + 8) * 4);  // fp32 latent cache
    CHECK(info.hasChatTemplate);
    CHECK(info.eosTokenId == 511);
    const GenerateParams p = engine->defaultParams();
    CHECK(p.temperature == doctest::Approx(0.3));
    CHECK(p.topP == doctest::Approx(0.95));

    EngineOptions cuda;
    cuda.backend = BackendChoice::Cuda;
    auto e = Engine::load(tinyLiteDir(), cuda);
    if (!e.isOk()) {  // no CUDA backend in this build, or no GPU: a clear Unavailable
        CHECK(e.status().code() == StatusCode::Unavailable);
        CHECK(e.status().message().find("CUDA") != std::string::npos);
    }
}

TEST_CASE("engine: load reports progress over the weight files and can be cancelled") {
    EngineOptions options;
    uint64_t last = 0, total = 0;
    int calls = 0;
    options.loadProgress = [&](uint64_t done, uint64_t t) {
        CHECK(done >= last);
        last = done;
        total = t;
        ++calls;
        return true;
    };
    auto engine = loadTinyLite(options);
    CHECK(calls >= 2);
    CHECK(total == engine->info().weightFileBytes);
    CHECK(last == total);

    options.backend = BackendChoice::Cpu;
    options.loadProgress = [](uint64_t, uint64_t) { return false; };
    auto cancelled = Engine::load(tinyLiteDir(), options);
    REQUIRE_FALSE(cancelled.isOk());
    CHECK(cancelled.status().code() == StatusCode::Cancelled);
}

TEST_CASE("engine: chat messages render to the reference prompt; greedy generation matches HF") {
    auto engine = loadTinyLite();
    const auto cases = loadReferenceCases(tinyLiteDir());
    const nlohmann::json ref = readJson(tinyLiteDir() / "reference.json");
    for (size_t ci = 0; ci < cases.size(); ++ci) {
        CAPTURE(ci);
        std::vector<ChatTurn> turns;
        for (const auto& m : ref["cases"][ci]["messages"]) turns.push_back({m["role"], m["content"]});
        auto rendered = engine->renderChat(turns, true);
        REQUIRE_MESSAGE(rendered.isOk(), rendered.status().toString());
        CHECK(*rendered == cases[ci].tokens);

        auto session = newSession(*engine);
        GenerateRequest request = greedyRequest({}, static_cast<int64_t>(cases[ci].greedy.size()));
        request.messages = turns;
        request.params.topNAlternatives = 3;
        request.params.wantPromptRouting = true;
        Recorded rec;
        const GenerateResult r = generateOk(*session, request, recorder(rec));
        CHECK(r.promptTokens == cases[ci].tokens);
        CHECK(r.tokens == cases[ci].greedy);
        CHECK(r.reason == StopReason::MaxTokens);

        // Events: one prompt event, one per token, one finish; deltas add up to the text.
        CHECK(rec.prompts == 1);
        CHECK(rec.finishes == 1);
        REQUIRE(rec.tokens.size() == r.tokens.size());
        CHECK(rec.text == r.text);
        CHECK(r.text == engine->decode(r.tokens, true));
        CHECK(rec.prompt.promptTokens == static_cast<int64_t>(cases[ci].tokens.size()));
        CHECK(rec.prompt.reusedTokens == 0);
        REQUIRE(rec.prompt.routing.size() == cases[ci].tokens.size());
        // Prompt routing is the router's choice: the same experts as HF's for the first token.
        const auto& ids0 = rec.prompt.routing[0].expertIds;  // (n_moe=2, k=2)
        REQUIRE(ids0.size() == 4);
        CHECK(std::set<int32_t>{ids0[0], ids0[1]} ==
              std::set<int32_t>(cases[ci].routing.at(1).ids[0].begin(), cases[ci].routing.at(1).ids[0].end()));
        for (size_t i = 0; i < rec.tokens.size(); ++i) {
            const TokenEvent& t = rec.tokens[i];
            CHECK(t.index == static_cast<int64_t>(i));
            CHECK(t.id == r.tokens[i]);
            CHECK(t.logprob <= 0.0f);
            REQUIRE(t.alternatives.size() == 3);
            CHECK(t.alternatives[0].id == t.id);  // greedy: the chosen token is the most likely
            CHECK(t.alternatives[0].logprob == doctest::Approx(t.logprob));
            CHECK(t.alternatives[1].logprob <= t.alternatives[0].logprob);
            CHECK(t.routing.expertIds.size() == 4);
            CHECK(t.routing.weights.size() == 4);
            CHECK(t.cache.tokens == static_cast<int64_t>(cases[ci].tokens.size() + i + 1));
            CHECK(t.cache.bytesUsed == t.cache.tokens * engine->info().cacheBytesPerToken);
        }
        CHECK(r.stats.generatedTokens == static_cast<int64_t>(r.tokens.size()));
        CHECK(r.stats.decodeTokensPerSecond > 0.0);
        CHECK(r.stats.prefillTokensPerSecond > 0.0);
        CHECK(session->tokens().size() == cases[ci].tokens.size() + r.tokens.size());
    }
}

TEST_CASE("engine: the next turn reuses the cached prefix; regenerate and edit recompute only the rest") {
    auto engine = loadTinyLite();
    const auto cases = loadReferenceCases(tinyLiteDir());
    const std::vector<int32_t>& prompt = cases[0].tokens;
    auto session = newSession(*engine);
    const GenerateResult first = generateOk(*session, greedyRequest(prompt, 6));

    // Turn 2: the history plus new tokens.
    std::vector<int32_t> turn2 = prompt;
    turn2.insert(turn2.end(), first.tokens.begin(), first.tokens.end());
    turn2.insert(turn2.end(), {52, 482, 25, 220, 42});
    Recorded rec;
    const GenerateResult second = generateOk(*session, greedyRequest(turn2, 5), recorder(rec));
    CHECK(rec.prompt.reusedTokens == static_cast<int64_t>(prompt.size() + first.tokens.size()));
    CHECK(rec.prompt.computedTokens == 5);
    // The same as a fresh session computing everything.
    auto fresh = newSession(*engine);
    CHECK(generateOk(*fresh, greedyRequest(turn2, 5)).tokens == second.tokens);

    // Regenerate turn 1: the prompt is a prefix of the history; only its last token is rerun.
    Recorded again;
    const GenerateResult regenerated = generateOk(*session, greedyRequest(prompt, 6), recorder(again));
    CHECK(again.prompt.reusedTokens == static_cast<int64_t>(prompt.size()) - 1);
    CHECK(regenerated.tokens == first.tokens);

    // Edit: change a token in the middle; everything from there is recomputed.
    std::vector<int32_t> edited = prompt;
    edited[10] = 300;
    Recorded edit;
    const GenerateResult e1 = generateOk(*session, greedyRequest(edited, 4), recorder(edit));
    CHECK(edit.prompt.reusedTokens == 10);
    auto fresh2 = newSession(*engine);
    CHECK(generateOk(*fresh2, greedyRequest(edited, 4)).tokens == e1.tokens);

    // Explicit truncate keeps the routing history in step.
    REQUIRE(session->truncate(7).isOk());
    CHECK(session->tokens().size() == 7);
    CHECK(session->routing().size() == 7);
    CHECK(session->cacheUsage().tokens == 7);
    CHECK_FALSE(session->truncate(8).isOk());
}

TEST_CASE("engine: cancel within one token, stop strings, eos, seeds") {
    auto engine = loadTinyLite();
    const auto cases = loadReferenceCases(tinyLiteDir());
    const std::vector<int32_t>& prompt = cases[1].tokens;

    SUBCASE("cancel") {
        auto session = newSession(*engine);
        std::atomic<bool> cancel{false};
        GenerateRequest r = greedyRequest(prompt, 50);
        r.cancel = &cancel;
        int seen = 0;
        const GenerateResult result = generateOk(*session, r, [&](const GenerateEvent& e) {
            if (std::holds_alternative<TokenEvent>(e) && ++seen == 3) cancel = true;
        });
        CHECK(result.reason == StopReason::Cancelled);
        CHECK(result.tokens.size() == 3);
    }
    SUBCASE("stop string: the text stops before it, and it is never streamed") {
        auto session = newSession(*engine);
        const GenerateResult full = generateOk(*session, greedyRequest(prompt, 12));
        REQUIRE(full.text.size() >= 6);
        const std::string stop = full.text.substr(3, 3);
        const size_t at = full.text.find(stop);
        GenerateRequest r = greedyRequest(prompt, 12);
        r.params.stopStrings = {stop};
        Recorded rec;
        const GenerateResult cut = generateOk(*session, r, recorder(rec));
        CHECK(cut.reason == StopReason::StopString);
        CHECK(cut.stopString == stop);
        CHECK(cut.text == full.text.substr(0, at));
        CHECK(rec.text == cut.text);
        CHECK(cut.tokens.size() <= full.tokens.size());
    }
    SUBCASE("eos stops unless ignored") {
        // Greedy continuations here contain no eos: sample at a high temperature (close to
        // uniform over 512 tokens) with a fixed seed until eos comes, within a bound.
        auto session = newSession(*engine);
        GenerateRequest r;
        r.promptTokens = prompt;
        r.params.temperature = 5.0;
        r.params.seed = 3;
        r.params.maxNewTokens = 3000;
        const GenerateResult result = generateOk(*session, r);
        CHECK(result.reason == StopReason::Eos);
        CHECK(result.tokens.back() == 511);
        CHECK(static_cast<int64_t>(result.tokens.size()) < r.params.maxNewTokens);
    }
    SUBCASE("same seed, same tokens; another seed, other tokens") {
        auto session = newSession(*engine);
        GenerateRequest r;
        r.promptTokens = prompt;
        r.params.temperature = 1.0;
        r.params.topP = 0.9;
        r.params.seed = 42;
        r.params.maxNewTokens = 16;
        r.params.ignoreEos = true;
        const GenerateResult a = generateOk(*session, r);
        const GenerateResult b = generateOk(*session, r);
        CHECK(a.tokens == b.tokens);
        r.params.seed = 43;
        const GenerateResult c = generateOk(*session, r);
        CHECK(a.tokens != c.tokens);
    }
}

TEST_CASE("engine: limits and bad input give clear errors") {
    auto engine = loadTinyLite();
    const auto cases = loadReferenceCases(tinyLiteDir());
    const std::vector<int32_t>& prompt = cases[0].tokens;  // 37 tokens

    auto session = newSession(*engine);
    auto bad = session->generate(greedyRequest({510, 512, 3}, 4));
    REQUIRE_FALSE(bad.isOk());
    CHECK(bad.status().code() == StatusCode::InvalidArgument);
    CHECK(bad.status().message().find("512") != std::string::npos);
    auto negative = session->evaluate(std::vector<int32_t>{-1}, false);
    CHECK(negative.status().code() == StatusCode::InvalidArgument);
    CHECK(session->tokens().empty());  // nothing entered the cache

    auto small = newSession(*engine, 20);
    auto tooLong = small->generate(greedyRequest(prompt, 4));
    REQUIRE_FALSE(tooLong.isOk());
    CHECK(tooLong.status().code() == StatusCode::OutOfRange);
    CHECK(tooLong.status().message().find("37") != std::string::npos);
    CHECK(tooLong.status().message().find("20") != std::string::npos);

    auto tight = newSession(*engine, static_cast<int64_t>(prompt.size()) + 3);
    const GenerateResult full = generateOk(*tight, greedyRequest(prompt, 10));
    CHECK(full.reason == StopReason::ContextFull);
    CHECK(full.tokens.size() == 3);

    GenerateRequest badParams = greedyRequest(prompt, 4);
    badParams.params.topP = 0.0;
    CHECK(session->generate(badParams).status().code() == StatusCode::InvalidArgument);
    CHECK(engine->createSession(engine->info().maxPositionEmbeddings + 1).status().code() ==
          StatusCode::InvalidArgument);
    CHECK(session->generate(GenerateRequest{}).status().code() == StatusCode::InvalidArgument);
}

TEST_CASE("engine: evaluate gives every position's logits, as the oracle") {
    auto engine = loadTinyLite();
    const auto cases = loadReferenceCases(tinyLiteDir());
    auto session = newSession(*engine);
    auto r = session->evaluate(cases[1].tokens, true);
    REQUIRE(r.isOk());
    CHECK(r->nRows == static_cast<int64_t>(cases[1].tokens.size()));
    CHECK(normalizedMaxError(r->logits.data(), cases[1].logits.data(), cases[1].logits.size()) <= 1e-4);
    CHECK(r->routing.size() == cases[1].tokens.size());
}
