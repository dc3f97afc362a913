// Sampling and stop strings (engine/core): the shared layer above every backend.

#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <vector>

#include "core/sampler.h"
#include "core/stop_matcher.h"

using namespace dsv2;

TEST_CASE("greedy picks the argmax; the repetition penalty follows HF's sign rule") {
    GenerateParams p;  // temperature 0
    Sampler s(p, 4);
    const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 1.9f};
    CHECK(s.sample(logits, {}) == 1);

    std::vector<float> l = {2.0f, -2.0f, 1.0f};
    applyRepetitionPenalty(l, std::vector<int32_t>{0, 1, 1}, 2.0);
    CHECK(l[0] == 1.0f);   // positive: divided
    CHECK(l[1] == -4.0f);  // negative: multiplied (once, although seen twice)
    CHECK(l[2] == 1.0f);   // not seen

    p.repetitionPenalty = 1.2;
    Sampler penalised(p, 4);
    CHECK(penalised.sample(logits, std::vector<int32_t>{1}) == 3);  // 2.0/1.2 < 1.9
}

TEST_CASE("ids past the candidate count are never picked") {
    GenerateParams p;
    Sampler s(p, 2);
    CHECK(s.sample(std::vector<float>{0.0f, 1.0f, 9.0f}, {}) == 1);
}

TEST_CASE("the same seed gives the same tokens; frequencies follow the distribution") {
    GenerateParams p;
    p.temperature = 1.0;
    p.seed = 1234;
    const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    Sampler a(p, 3), b(p, 3);
    std::map<int32_t, int> counts;
    for (int i = 0; i < 20000; ++i) {
        const int32_t x = a.sample(logits, {});
        REQUIRE(x == b.sample(logits, {}));
        counts[x]++;
    }
    CHECK(counts[0] / 20000.0 == doctest::Approx(0.5).epsilon(0.05));
    CHECK(counts[1] / 20000.0 == doctest::Approx(0.3).epsilon(0.05));
    CHECK(counts[2] / 20000.0 == doctest::Approx(0.2).epsilon(0.07));
    p.seed = 99;
    Sampler c(p, 3);
    int differ = 0;
    Sampler a2(GenerateParams{.temperature = 1.0, .seed = 1234}, 3);
    for (int i = 0; i < 100; ++i) differ += a2.sample(logits, {}) != c.sample(logits, {});
    CHECK(differ > 0);
}

TEST_CASE("top-k, top-p and min-p cut the tail") {
    const std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
    auto seen = [&](GenerateParams p) {
        if (p.temperature == 0.0) p.temperature = 1.0;
        p.seed = 7;
        Sampler s(p, 4);
        std::vector<int> hit(4, 0);
        for (int i = 0; i < 4000; ++i) hit[static_cast<size_t>(s.sample(logits, {}))]++;
        return hit;
    };
    auto h = seen(GenerateParams{.topK = 2});
    CHECK(h[0] > 0);
    CHECK(h[1] > 0);
    CHECK(h[2] == 0);
    CHECK(h[3] == 0);
    h = seen(GenerateParams{.topP = 0.75});  // 0.4 + 0.3 < 0.75: the third is needed
    CHECK(h[2] > 0);
    CHECK(h[3] == 0);
    h = seen(GenerateParams{.minP = 0.6});  // keeps p ≥ 0.24
    CHECK(h[1] > 0);
    CHECK(h[2] == 0);
    h = seen(GenerateParams{.temperature = 0.05});
    CHECK(h[0] > 3900);  // sharp: almost always the most likely
}

TEST_CASE("logSoftmax") {
    const std::vector<float> l = {1.0f, 2.0f, 3.0f};
    std::vector<float> out(3);
    logSoftmax(l.data(), 3, out.data());
    double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
    CHECK(out[2] == doctest::Approx(3.0 - std::log(z)));
    CHECK(std::exp(out[0]) + std::exp(out[1]) + std::exp(out[2]) == doctest::Approx(1.0));
}

TEST_CASE("stop strings: held back while they may be forming, cut when they appear") {
    StopMatcher m({"\n\nUser:", "END"});
    CHECK(m.push("Hello") == "Hello");
    CHECK(m.push(" world\n") == " world");  // "\n" may start "\n\nUser:"
    CHECK(m.push("\nUs") == "");
    CHECK(m.push("ual") == "\n\nUsual");  // was not the stop string after all
    CHECK(m.push(" EN") == " ");
    CHECK_FALSE(m.stopped());
    CHECK(m.push("D and more") == "");
    CHECK(m.stopped());
    CHECK(m.matched() == "END");
    CHECK(m.push("x") == "");

    StopMatcher tail({"abc"});
    CHECK(tail.push("xxab") == "xx");
    CHECK(tail.flush() == "ab");  // ended without the stop string: the held text is released

    StopMatcher none({});
    CHECK(none.push("anything\n") == "anything\n");
}
