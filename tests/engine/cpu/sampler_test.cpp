// Sampling and stop strings (engine/core): the shared layer above every backend.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
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

namespace {

// The sampler's definition written the plain way: the weights (samplingWeights), every candidate
// sorted (weight descending, ties by id), then the filters against the total weight, the kept
// weight (added in sampling order when the filters cut the list, the weights' total when not), one
// uniform draw walked down the sorted list.
int32_t referenceSample(const GenerateParams& gp, std::vector<float> logits, std::span<const int32_t> context,
                        std::mt19937_64& rng) {
    applyRepetitionPenalty(logits, context, gp.repetitionPenalty);
    const float mx = *std::max_element(logits.begin(), logits.end());
    std::vector<float> work(logits.size());
    const double sum = samplingWeights(logits, mx, static_cast<float>(1.0 / gp.temperature), work);
    std::vector<int32_t> order(work.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int32_t a, int32_t b) { return work[a] > work[b] || (work[a] == work[b] && a < b); });
    if (gp.topK > 0 && static_cast<size_t>(gp.topK) < order.size()) order.resize(static_cast<size_t>(gp.topK));
    if (gp.topP < 1.0) {
        double mass = 0.0;
        size_t cut = 0;
        while (cut < order.size()) {
            mass += work[order[cut++]];
            if (mass >= gp.topP * sum) break;
        }
        order.resize(std::max<size_t>(cut, 1));
    }
    if (gp.minP > 0.0) {
        size_t cut = 1;
        while (cut < order.size() && work[order[cut]] >= gp.minP) ++cut;
        order.resize(cut);
    }
    double total = sum;
    if (order.size() < work.size()) {
        total = 0.0;
        for (int32_t id : order) total += work[id];
    }
    double u = uniform01(rng) * total;
    for (int32_t id : order) {
        u -= work[id];
        if (u < 0.0) return id;
    }
    return order.back();
}

}  // namespace

TEST_CASE("sorting only as deep as needed draws exactly what sorting everything draws") {
    // A 6,000-entry vocabulary with many exact ties (logits on a 0.25 grid) and a repeated context.
    std::mt19937_64 gen(7);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::vector<float> logits(6000);
    for (float& l : logits) l = std::round(normal(gen) * 4.0f) / 4.0f;
    std::vector<int32_t> context(300);
    for (int32_t& c : context) c = static_cast<int32_t>(gen() % logits.size());
    struct Case {
        double temperature, topP;
        int64_t topK;
        double minP, penalty;
    };
    for (const Case& c : {Case{0.3, 0.95, 0, 0.0, 1.0}, Case{0.7, 1.0, 50, 0.0, 1.1}, Case{1.0, 1.0, 0, 0.0, 1.0},
                          Case{1.0, 1.0, 0, 0.05, 1.0}, Case{0.8, 0.9, 200, 0.02, 1.3}, Case{1.5, 0.999, 0, 0.0, 1.0},
                          Case{4.0, 1.0, 0, 0.0, 1.0}, Case{1.0, 1.0, 6000, 0.0, 1.0},
                          Case{0.3, 1.0, 200, 0.0, 1.0}}) {  // top-k past the first tier (sampler.cpp)
        CAPTURE(c.temperature);
        CAPTURE(c.topP);
        CAPTURE(c.topK);
        CAPTURE(c.minP);
        GenerateParams gp;
        gp.temperature = c.temperature;
        gp.topP = c.topP;
        gp.topK = c.topK;
        gp.minP = c.minP;
        gp.repetitionPenalty = c.penalty;
        gp.seed = 42;
        Sampler s(gp, static_cast<int64_t>(logits.size()));
        std::mt19937_64 rng(42);
        for (int i = 0; i < 200; ++i) REQUIRE(s.sample(logits, context) == referenceSample(gp, logits, context, rng));
    }
}

TEST_CASE("sampling weights: e^x within 2.5e-7 relative, 1 at the top, 0 below e^-87, the same at every length") {
    std::vector<float> x;
    for (float v = -87.0f; v <= 0.0f; v += 0.0137f) x.push_back(v);
    x.push_back(0.0f);
    std::vector<float> w(x.size());
    const double total = samplingWeights(x, 0.0f, 1.0f, w);
    double worst = 0.0, exactTotal = 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
        const double want = std::exp(static_cast<double>(x[i]));
        worst = std::max(worst, std::fabs(w[i] - want) / want);
        exactTotal += want;
    }
    CHECK(worst <= 2.5e-7);
    CHECK(w.back() == 1.0f);
    CHECK(std::fabs(total - exactTotal) <= 1e-6 * exactTotal);
    // Temperature and shift: e^((l - max) / T); far below the max the weight is exactly 0.
    const std::vector<float> logits{3.0f, 1.0f, -41.0f, 3.0f, 2.5f};  // (-41 - 3) / 0.5 = -88
    std::vector<float> w2(logits.size());
    const double total2 = samplingWeights(logits, 3.0f, 1.0f / 0.5f, w2);
    CHECK(w2[0] == 1.0f);
    CHECK(w2[3] == 1.0f);
    CHECK(w2[1] == doctest::Approx(std::exp(-4.0)).epsilon(1e-6));
    CHECK(w2[2] == 0.0f);
    CHECK(w2[4] == doctest::Approx(std::exp(-1.0)).epsilon(1e-6));
    // Lane order: element i is summed into lane i % 4, the lanes added (0 + 1) + (2 + 3).
    double lanes[4] = {};
    for (size_t i = 0; i < w2.size(); ++i) lanes[i % 4] += w2[i];
    CHECK(total2 == (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]));
    // The same over 21 elements: blocks of eight (AVX2 where the CPU has it), then the rest.
    std::vector<float> mixed(21), w3(21);
    for (size_t i = 0; i < mixed.size(); ++i) mixed[i] = -0.37f * static_cast<float>(i);
    const double total3 = samplingWeights(mixed, 0.0f, 1.3f, w3);
    double lanes3[4] = {};
    for (size_t i = 0; i < w3.size(); ++i) lanes3[i % 4] += w3[i];
    CHECK(total3 == (lanes3[0] + lanes3[1]) + (lanes3[2] + lanes3[3]));
    // Every element gets the same bits whether it falls in a block of eight (AVX2), of four or in
    // the tail.
    for (size_t offset : {size_t{0}, size_t{1001}, size_t{3333}, x.size() - 9})
        for (size_t n = 1; n <= 9; ++n) {
            const auto from = x.begin() + static_cast<std::ptrdiff_t>(offset);
            std::vector<float> part(from, from + static_cast<std::ptrdiff_t>(n)), wp(n);
            samplingWeights(part, 0.0f, 1.0f, wp);
            for (size_t i = 0; i < n; ++i) CHECK(wp[i] == w[offset + i]);
        }
}

TEST_CASE("argmax: the first of equal maxima, anywhere in the row; NaN is never picked") {
    for (size_t n : {1u, 15u, 16u, 17u, 100u, 102400u}) {
        CAPTURE(n);
        std::vector<float> v(n, -1.0f);
        for (size_t at : {size_t{0}, n / 2, n - 1}) {
            std::fill(v.begin(), v.end(), -1.0f);
            v[at] = 3.0f;
            CHECK(argmax(v) == static_cast<int32_t>(at));
            if (at + 1 < n) {
                v[n - 1] = 3.0f;  // a later equal maximum does not win
                CHECK(argmax(v) == static_cast<int32_t>(at));
            }
        }
        std::fill(v.begin(), v.end(), -INFINITY);
        CHECK(argmax(v) == 0);
        if (n > 1) {
            v[0] = std::nanf("");
            v[n - 1] = -5.0f;
            CHECK(argmax(v) == static_cast<int32_t>(n - 1));
        }
    }
}

TEST_CASE("logSoftmax") {
    const std::vector<float> l = {1.0f, 2.0f, 3.0f};
    std::vector<float> out(3);
    logSoftmax(l.data(), 3, out.data());
    double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
    CHECK(out[2] == doctest::Approx(3.0 - std::log(z)));
    CHECK(std::exp(out[0]) + std::exp(out[1]) + std::exp(out[2]) == doctest::Approx(1.0));

    // A vocabulary-sized row against a double-precision log-sum-exp.
    std::mt19937_64 gen(11);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::vector<float> row(102400), lp(row.size());
    for (float& v : row) v = normal(gen);
    row[4321] = 25.0f;
    logSoftmax(row.data(), static_cast<int64_t>(row.size()), lp.data());
    double zRow = 0.0;
    for (float v : row) zRow += std::exp(static_cast<double>(v) - 25.0);
    const double logZ = std::log(zRow) + 25.0;
    double worst = 0.0;
    for (size_t i = 0; i < row.size(); ++i) worst = std::max(worst, std::fabs(lp[i] - (row[i] - logZ)));
    CHECK(worst <= 4e-6);
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
