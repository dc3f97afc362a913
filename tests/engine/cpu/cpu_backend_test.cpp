// The CPU backend on random weights of V2-shaped toy configs (q_lora, group-limited routing,
// routed_scaling_factor 16, norm_topk_prob, dense lead layers): its forms and paths must agree
// with each other, the cache must behave, and errors must leave it untouched.

#include <doctest/doctest.h>

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/backend.h"
#include "model/random_weights.h"
#include "reference_fixture.h"
#include "test_data.h"

using namespace dsv2;
using namespace dsv2::test;

namespace {

ModelConfig toyConfig(bool v2Like) {
    std::ifstream in(tinyLiteDir() / "config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    if (v2Like) {  // DeepSeek-V2/V2.5 features at toy size
        j["q_lora_rank"] = 24;
        j["n_routed_experts"] = 16;
        j["num_experts_per_tok"] = 3;
        j["topk_method"] = "group_limited_greedy";
        j["n_group"] = 4;
        j["topk_group"] = 2;
        j["routed_scaling_factor"] = 16.0;
        j["rope_scaling"]["mscale"] = 1.0;
        j["rope_scaling"]["mscale_all_dim"] = 1.0;
    } else {  // two dense lead layers, renormalised top-k
        j["num_hidden_layers"] = 4;
        j["first_k_dense_replace"] = 2;
        j["norm_topk_prob"] = true;
        j["num_experts_per_tok"] = 3;
    }
    auto c = parseModelConfig(j.dump(), "toy config");
    REQUIRE_MESSAGE(c.isOk(), c.status().toString());
    return *c;
}

struct Toy {
    std::unique_ptr<RandomWeights> weights;
    ModelConfig config;
};

Toy makeToy(bool v2Like, uint64_t seed = 5) {
    Toy t;
    t.config = toyConfig(v2Like);
    auto w = RandomWeights::create(t.config, DType::BF16, seed, 0.15f);
    REQUIRE_MESSAGE(w.isOk(), w.status().toString());
    t.weights = std::move(w).value();
    return t;
}

std::unique_ptr<Backend> backendFor(const Toy& t, MlaForm form = MlaForm::Auto, int threads = 0) {
    BackendOptions o;
    o.mlaForm = form;
    o.threads = threads;
    auto b = createBackend(BackendKind::Cpu, t.weights->config(), t.weights->weights(), o);
    REQUIRE_MESSAGE(b.isOk(), b.status().toString());
    return std::move(b).value();
}

std::unique_ptr<BackendSession> sessionOf(Backend& b, int64_t capacity = 0) {
    auto s = b.createSession(capacity);
    REQUIRE(s.isOk());
    return std::move(s).value();
}

ForwardResult forwardOk(BackendSession& s, const std::vector<int32_t>& tokens, bool all) {
    auto r = s.forward(tokens, all);
    REQUIRE_MESSAGE(r.isOk(), r.status().toString());
    return std::move(r).value();
}

std::vector<int32_t> someTokens(size_t n, uint32_t seed) {
    std::vector<int32_t> t;
    uint32_t x = seed;
    for (size_t i = 0; i < n; ++i) {
        x = x * 1664525u + 1013904223u;
        t.push_back(static_cast<int32_t>((x >> 8) % 512));
    }
    return t;
}

}  // namespace

TEST_CASE("expanded and absorbed MLA give the same logits and routing on whole models") {
    for (bool v2Like : {true, false}) {
        CAPTURE(v2Like);
        const Toy toy = makeToy(v2Like);
        auto expanded = backendFor(toy, MlaForm::Expanded);
        auto absorbed = backendFor(toy, MlaForm::Absorbed);
        const auto tokens = someTokens(40, 1);
        auto se = sessionOf(*expanded);
        auto sa = sessionOf(*absorbed);
        const ForwardResult a = forwardOk(*se, tokens, true);
        const ForwardResult b = forwardOk(*sa, tokens, true);
        const double err = normalizedMaxError(a.logits.data(), b.logits.data(), a.logits.size());
        MESSAGE("expanded vs absorbed normalized max error " << err);
        CHECK(err < 1e-5);
        CHECK(a.routing.expertIds == b.routing.expertIds);
        // Routing sanity for the config: ids in range, weights as configured.
        const ModelConfig& c = toy.config;
        CHECK(a.routing.moeLayers.size() == static_cast<size_t>(c.numHiddenLayers - c.firstKDenseReplace));
        for (int64_t t = 0; t < a.nTokens; ++t)
            for (size_t l = 0; l < a.routing.moeLayers.size(); ++l) {
                double sum = 0;
                std::set<int32_t> groups;
                for (int32_t k = 0; k < a.routing.topK; ++k) {
                    const int32_t id = a.routing.expertIds[static_cast<size_t>(a.routing.index(t, static_cast<int64_t>(l), k))];
                    REQUIRE(id >= 0);
                    REQUIRE(id < c.nRoutedExperts);
                    groups.insert(id / static_cast<int32_t>(c.nRoutedExperts / c.nGroup));
                    sum += a.routing.weights[static_cast<size_t>(a.routing.index(t, static_cast<int64_t>(l), k))];
                }
                if (c.normTopkProb) CHECK(sum == doctest::Approx(c.routedScalingFactor).epsilon(1e-5));
                else CHECK(sum < c.routedScalingFactor);
                CHECK(static_cast<int64_t>(groups.size()) <= c.topkGroup);
            }
    }
}

TEST_CASE("prefill at once, token by token, and in chunks agree; thread count does not matter") {
    const Toy toy = makeToy(true);
    auto backend = backendFor(toy);
    const auto tokens = someTokens(30, 2);
    auto once = sessionOf(*backend);
    const ForwardResult all = forwardOk(*once, tokens, true);

    auto stepwise = sessionOf(*backend);
    auto chunked = sessionOf(*backend);
    for (size_t i = 0; i < tokens.size(); ++i) {
        const ForwardResult r = forwardOk(*stepwise, {tokens[i]}, false);
        REQUIRE(r.nRows == 1);
        CHECK(normalizedMaxError(r.logits.data(), all.logits.data() + i * static_cast<size_t>(all.vocab),
                                 static_cast<size_t>(all.vocab)) < 1e-5);
        for (size_t k = 0; k < r.routing.expertIds.size(); ++k)
            CHECK(r.routing.expertIds[k] == all.routing.expertIds[i * r.routing.expertIds.size() + k]);
    }
    forwardOk(*chunked, std::vector<int32_t>(tokens.begin(), tokens.begin() + 7), false);
    const ForwardResult rest = forwardOk(*chunked, std::vector<int32_t>(tokens.begin() + 7, tokens.end()), true);
    CHECK(normalizedMaxError(rest.logits.data(), all.logits.data() + 7 * static_cast<size_t>(all.vocab), rest.logits.size()) < 1e-5);

    auto single = backendFor(toy, MlaForm::Auto, 1);
    auto s1 = sessionOf(*single);
    const ForwardResult one = forwardOk(*s1, tokens, true);
    CHECK(one.logits == all.logits);  // rows are split between threads, never summed across them
}

TEST_CASE("truncate rewinds; the cache holds 576-style latent rows in 64-token blocks") {
    const Toy toy = makeToy(false);
    auto backend = backendFor(toy);
    const auto a = someTokens(50, 3);
    auto s = sessionOf(*backend, 200);
    CHECK(s->capacity() == 200);
    forwardOk(*s, a, false);
    CHECK(s->length() == 50);
    const CacheStats st = s->cacheStats();
    const int64_t perLayer = (toy.config.kvLoraRank + toy.config.qkRopeHeadDim) * 4;
    CHECK(st.latentDim == 40);
    CHECK(st.bytesPerToken == perLayer * toy.config.numHiddenLayers);
    CHECK(st.bytesUsed == 50 * st.bytesPerToken);
    CHECK(st.blocksUsed == 1);
    CHECK(st.blocksCapacity == 4);
    CHECK(st.layers.size() == 4);
    CHECK(st.layers[0].bytesPerToken == perLayer);

    // Rewind to 20 and continue with other tokens: same as a fresh session over the new sequence.
    REQUIRE(s->truncate(20).isOk());
    CHECK(s->length() == 20);
    const auto b = someTokens(15, 4);
    const ForwardResult r = forwardOk(*s, b, true);
    std::vector<int32_t> joined(a.begin(), a.begin() + 20);
    joined.insert(joined.end(), b.begin(), b.end());
    auto fresh = sessionOf(*backend);
    const ForwardResult f = forwardOk(*fresh, joined, true);
    CHECK(normalizedMaxError(r.logits.data(), f.logits.data() + 20 * static_cast<size_t>(f.vocab), r.logits.size()) < 1e-5);
    CHECK_FALSE(s->truncate(36).isOk());
    CHECK(s->truncate(0).isOk());
    CHECK(s->cacheStats().bytesUsed == 0);
}

TEST_CASE("bad ids and overflowing the context are errors that leave the cache as it was") {
    const Toy toy = makeToy(true);
    auto backend = backendFor(toy);
    auto s = sessionOf(*backend, 10);
    forwardOk(*s, {1, 2, 3}, false);
    auto bad = s->forward(std::vector<int32_t>{4, 512}, false);
    REQUIRE_FALSE(bad.isOk());
    CHECK(bad.status().code() == StatusCode::InvalidArgument);
    CHECK(bad.status().message().find("512") != std::string::npos);
    CHECK(s->length() == 3);
    auto tooMany = s->forward(someTokens(8, 5), false);
    REQUIRE_FALSE(tooMany.isOk());
    CHECK(tooMany.status().code() == StatusCode::OutOfRange);
    CHECK(tooMany.status().message().find("11 tokens needed") != std::string::npos);
    CHECK(s->length() == 3);
    CHECK(s->forward(std::vector<int32_t>{}, false).status().code() == StatusCode::InvalidArgument);
    forwardOk(*s, someTokens(7, 6), false);  // exactly full is fine
    CHECK(s->length() == 10);
    CHECK(backend->createSession(toy.config.maxPositionEmbeddings + 1).status().code() == StatusCode::InvalidArgument);
}

TEST_CASE("weights that do not match the config are refused at load") {
    Toy toy = makeToy(true);
    ModelConfig wrong = toy.config;
    wrong.kvLoraRank = 16;
    auto b = createBackend(BackendKind::Cpu, wrong, toy.weights->weights(), {});
    REQUIRE_FALSE(b.isOk());
    CHECK(b.status().message().find("kv_a_proj_with_mqa") != std::string::npos);
    // Without a CUDA backend (this build, or no GPU) the answer is Unavailable, saying why.
    auto cuda = createBackend(BackendKind::Cuda, toy.config, toy.weights->weights(), {});
    if (!cuda.isOk()) {
        CHECK(cuda.status().code() == StatusCode::Unavailable);
        CHECK(cuda.status().message().find("CUDA") != std::string::npos);
    }
}
