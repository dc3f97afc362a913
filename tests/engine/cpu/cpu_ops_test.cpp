// The CPU backend's pure pieces: thread pool, RMSNorm/softmax, YaRN RoPE, the MoE router and the
// two MLA attention forms (against each other and against a naive double-precision attention).

#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/mla_attention.h"
#include "cpu/rope.h"
#include "cpu/router.h"
#include "cpu/thread_pool.h"
#include "model/model_config.h"
#include "test_data.h"

using namespace dsv2;
using namespace dsv2::cpu;

namespace {

std::vector<float> randomVector(size_t n, uint64_t seed, float scale = 1.0f) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

ModelConfig tinyLiteConfig() {
    auto c = loadModelConfig(test::tinyLiteDir() / "config.json");
    REQUIRE_MESSAGE(c.isOk(), c.status().toString());
    return *c;
}

}  // namespace

TEST_CASE("thread pool: every index exactly once, for any size, grain and thread count") {
    for (int threads : {1, 2, 3, 8}) {
        ThreadPool pool(threads);
        CHECK(pool.threadCount() == threads);
        for (int64_t n : {0, 1, 7, 64, 1000, 4097}) {
            for (int64_t grain : {1, 16, 5000}) {
                std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
                pool.parallelFor(n, grain, [&](int64_t b, int64_t e) {
                    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
                });
                for (int64_t i = 0; i < n; ++i) REQUIRE(hits[static_cast<size_t>(i)] == 1);
            }
        }
    }
}

TEST_CASE("rmsNorm and softmax") {
    const std::vector<float> x = {1.0f, -2.0f, 3.0f, 0.5f};
    const std::vector<float> w = {1.0f, 2.0f, 0.5f, -1.0f};
    std::vector<float> out(4);
    rmsNorm(x.data(), w.data(), 4, 1e-6f, out.data());
    const double rms = std::sqrt((1.0 + 4.0 + 9.0 + 0.25) / 4.0 + 1e-6);
    for (size_t i = 0; i < 4; ++i) CHECK(out[i] == doctest::Approx(x[i] / rms * w[i]).epsilon(1e-6));

    std::vector<float> s = {1000.0f, 1001.0f, 999.0f};  // large values: needs the max subtracted
    softmaxInPlace(s.data(), 3);
    const double z = std::exp(-1.0) + 1.0 + std::exp(-2.0);
    CHECK(s[0] == doctest::Approx(std::exp(-1.0) / z).epsilon(1e-6));
    CHECK(s[1] == doctest::Approx(1.0 / z).epsilon(1e-6));
    CHECK(s[2] == doctest::Approx(std::exp(-2.0) / z).epsilon(1e-6));
}

TEST_CASE("YaRN inv_freq follows REFERENCE.md's formula; plain RoPE without scaling") {
    ModelConfig c = tinyLiteConfig();  // d = 8, factor 40, original 4096, beta 32/1
    c.qkRopeHeadDim = 64;              // V2's rope dim: a ramp with both ends inside
    const std::vector<float> inv = ropeInvFreq(c);
    REQUIRE(inv.size() == 32);
    const double d = 64, base = 10000, factor = 40, orig = 4096;
    auto corr = [&](double r) { return d * std::log(orig / (r * 2 * std::numbers::pi)) / (2 * std::log(base)); };
    const double low = std::max(std::floor(corr(32)), 0.0);
    const double high = std::min(std::ceil(corr(1)), d - 1);
    CHECK(low == 10);
    CHECK(high == 23);
    for (int i = 0; i < 32; ++i) {
        const double extra = std::pow(base, -2.0 * i / d);
        const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
        const double mask = 1.0 - ramp;
        const double expected = extra / factor * (1 - mask) + extra * mask;
        CHECK(inv[static_cast<size_t>(i)] == doctest::Approx(expected).epsilon(2e-6));
    }
    // Below `low` the frequencies are untouched, past `high` they are all divided by the factor.
    CHECK(inv[3] == doctest::Approx(std::pow(base, -6.0 / d)).epsilon(1e-6));
    CHECK(inv[30] == doctest::Approx(std::pow(base, -60.0 / d) / factor).epsilon(1e-6));

    c.ropeScaling.yarn = false;
    const std::vector<float> plain = ropeInvFreq(c);
    for (int i = 0; i < 32; ++i) CHECK(plain[static_cast<size_t>(i)] == doctest::Approx(std::pow(base, -2.0 * i / d)).epsilon(1e-6));
}

TEST_CASE("RoPE rotates interleaved pairs; scores depend only on the relative position") {
    const std::vector<float> inv = {0.5f, 0.01f, 0.003f};
    std::vector<float> e0 = {1, 0, 0, 0, 0, 0};
    applyRope(e0.data(), 6, 3, inv.data(), 1.0f);
    CHECK(e0[0] == doctest::Approx(std::cos(1.5)));
    CHECK(e0[1] == doctest::Approx(std::sin(1.5)));
    CHECK(e0[2] == 0.0f);

    const auto q = randomVector(6, 1);
    const auto k = randomVector(6, 2);
    auto scoreAt = [&](int64_t pq, int64_t pk) {
        auto a = q, b = k;
        applyRope(a.data(), 6, pq, inv.data(), 1.0f);
        applyRope(b.data(), 6, pk, inv.data(), 1.0f);
        return dot(a.data(), b.data(), 6);
    };
    CHECK(scoreAt(10, 4) == doctest::Approx(scoreAt(110, 104)).epsilon(1e-4));
    CHECK(scoreAt(10, 4) != doctest::Approx(scoreAt(10, 9)).epsilon(1e-4));
    auto r = q;
    applyRope(r.data(), 6, 77, inv.data(), 1.0f);
    CHECK(dot(r.data(), r.data(), 6) == doctest::Approx(dot(q.data(), q.data(), 6)).epsilon(1e-5));
}

TEST_CASE("router: greedy top-k, group_limited_greedy, norm_topk_prob and routed_scaling_factor") {
    // 8 experts in 4 groups of 2; the global top-3 is {7, 0, 1}.
    const std::vector<float> logits = {2.0f, 1.9f, 0.1f, 0.0f, -1.0f, -1.0f, 1.0f, 3.0f};
    std::vector<float> probs = logits;
    softmaxInPlace(probs.data(), 8);
    std::vector<float> scratch(8);
    int32_t ids[3];
    float w[3];

    RouterParams p;
    p.nExperts = 8;
    p.topK = 3;
    routeToken(logits.data(), p, ids, w, scratch.data());
    CHECK(ids[0] == 7);
    CHECK(ids[1] == 0);
    CHECK(ids[2] == 1);
    CHECK(w[0] == doctest::Approx(probs[7]));
    CHECK(w[2] == doctest::Approx(probs[1]));

    // Group scores (best logit): {0,1} 2.0, {2,3} 0.1, {4,5} -1, {6,7} 3.0. With topk_group 1 only
    // {6, 7} stays eligible.
    p.method = TopkMethod::GroupLimitedGreedy;
    p.nGroup = 4;
    p.topkGroup = 1;
    p.topK = 2;
    routeToken(logits.data(), p, ids, w, scratch.data());
    CHECK(ids[0] == 7);
    CHECK(ids[1] == 6);  // expert 0 scores higher globally but its group is not kept
    CHECK(w[1] == doctest::Approx(probs[6]));

    p.topkGroup = 2;  // groups {6,7} and {0,1}
    p.topK = 3;
    p.routedScalingFactor = 16.0f;
    routeToken(logits.data(), p, ids, w, scratch.data());
    CHECK(ids[0] == 7);
    CHECK(ids[1] == 0);
    CHECK(ids[2] == 1);
    CHECK(w[0] == doctest::Approx(16.0 * probs[7]));

    p.normTopkProb = true;
    routeToken(logits.data(), p, ids, w, scratch.data());
    CHECK(w[0] + w[1] + w[2] == doctest::Approx(16.0));
    CHECK(w[0] == doctest::Approx(16.0 * probs[7] / (probs[7] + probs[0] + probs[1])));
}

namespace {

// Naive MLA in double: expand keys and values per head, causal softmax.
std::vector<double> naiveMla(const MlaDims& d, const std::vector<float>& q, int64_t T, const std::vector<float>& latent,
                             int64_t L, const std::vector<float>& kvB) {
    const int64_t H = d.nHeads, rowsPerHead = d.kvBRowsPerHead();
    std::vector<double> out(static_cast<size_t>(T * H * d.vHead), 0.0);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h) {
            const int64_t keys = L - T + t + 1;
            std::vector<double> s(static_cast<size_t>(keys));
            std::vector<std::vector<double>> v(static_cast<size_t>(keys), std::vector<double>(static_cast<size_t>(d.vHead)));
            for (int64_t j = 0; j < keys; ++j) {
                double score = 0;
                for (int64_t i = 0; i < d.qkNope; ++i) {
                    double k = 0;
                    for (int64_t c = 0; c < d.kvLora; ++c) k += double(kvB[(h * rowsPerHead + i) * d.kvLora + c]) * latent[j * d.latentDim() + c];
                    score += double(q[(t * H + h) * d.qHeadDim() + i]) * k;
                }
                for (int64_t i = 0; i < d.qkRope; ++i)
                    score += double(q[(t * H + h) * d.qHeadDim() + d.qkNope + i]) * latent[j * d.latentDim() + d.kvLora + i];
                s[static_cast<size_t>(j)] = score * d.softmaxScale;
                for (int64_t i = 0; i < d.vHead; ++i) {
                    double x = 0;
                    for (int64_t c = 0; c < d.kvLora; ++c)
                        x += double(kvB[(h * rowsPerHead + d.qkNope + i) * d.kvLora + c]) * latent[j * d.latentDim() + c];
                    v[static_cast<size_t>(j)][static_cast<size_t>(i)] = x;
                }
            }
            const double m = *std::max_element(s.begin(), s.end());
            double z = 0;
            for (double& x : s) z += (x = std::exp(x - m));
            for (int64_t j = 0; j < keys; ++j)
                for (int64_t i = 0; i < d.vHead; ++i)
                    out[static_cast<size_t>((t * H + h) * d.vHead + i)] += s[static_cast<size_t>(j)] / z * v[static_cast<size_t>(j)][static_cast<size_t>(i)];
        }
    return out;
}

}  // namespace

TEST_CASE("MLA: expanded and absorbed forms agree with a naive attention, on awkward sizes") {
    ThreadPool pool(3);
    struct Shape { int64_t H, nope, rope, v, lora, T, L; };
    for (const Shape& s : {Shape{3, 5, 4, 7, 11, 5, 9}, Shape{1, 16, 8, 16, 32, 1, 1}, Shape{4, 16, 8, 12, 32, 1, 37},
                           Shape{2, 7, 2, 3, 13, 6, 6}}) {
        CAPTURE(s.H);
        CAPTURE(s.L);
        MlaDims d;
        d.nHeads = s.H;
        d.qkNope = s.nope;
        d.qkRope = s.rope;
        d.vHead = s.v;
        d.kvLora = s.lora;
        d.softmaxScale = 0.3f;
        const auto q = randomVector(static_cast<size_t>(s.T * s.H * d.qHeadDim()), 11);
        const auto latent = randomVector(static_cast<size_t>(s.L * d.latentDim()), 12);
        const auto kvB = randomVector(static_cast<size_t>(s.H * d.kvBRowsPerHead() * s.lora), 13, 0.3f);
        std::vector<float> expanded(static_cast<size_t>(s.T * s.H * s.v)), absorbed(expanded.size());
        mlaAttentionExpanded(d, q.data(), s.T, latent.data(), s.L, kvB.data(), expanded.data(), &pool);
        mlaAttentionAbsorbed(d, q.data(), s.T, latent.data(), s.L, kvB.data(), absorbed.data(), nullptr);
        const auto reference = naiveMla(d, q, s.T, latent, s.L, kvB);
        for (size_t i = 0; i < expanded.size(); ++i) {
            REQUIRE(expanded[i] == doctest::Approx(reference[i]).epsilon(1e-4).scale(1.0));
            REQUIRE(absorbed[i] == doctest::Approx(reference[i]).epsilon(1e-4).scale(1.0));
        }
    }
}

TEST_CASE("MLA is causal: keys after a query's position do not change its output") {
    MlaDims d{2, 4, 2, 4, 6, 0.5f};
    const int64_t T = 3, L = 5;
    const auto q = randomVector(static_cast<size_t>(T * 2 * d.qHeadDim()), 21);
    auto latent = randomVector(static_cast<size_t>(L * d.latentDim()), 22);
    const auto kvB = randomVector(static_cast<size_t>(2 * d.kvBRowsPerHead() * d.kvLora), 23);
    std::vector<float> a(static_cast<size_t>(T * 2 * d.vHead)), b(a.size());
    mlaAttentionAbsorbed(d, q.data(), T, latent.data(), L, kvB.data(), a.data(), nullptr);
    for (int64_t c = 0; c < d.latentDim(); ++c) latent[static_cast<size_t>((L - 1) * d.latentDim() + c)] += 5.0f;  // last key
    mlaAttentionAbsorbed(d, q.data(), T, latent.data(), L, kvB.data(), b.data(), nullptr);
    const size_t firstTwoQueries = static_cast<size_t>(2 * 2 * d.vHead);
    for (size_t i = 0; i < firstTwoQueries; ++i) CHECK(a[i] == b[i]);
    bool lastChanged = false;
    for (size_t i = firstTwoQueries; i < a.size(); ++i) lastChanged |= a[i] != b[i];
    CHECK(lastChanged);
    CHECK(expandedIsCheaper(MlaDims{16, 128, 64, 128, 512, 0.1f}, 512));
    CHECK_FALSE(expandedIsCheaper(MlaDims{16, 128, 64, 128, 512, 0.1f}, 1));
}
