#include <doctest/doctest.h>

#include "config_fixtures.h"
#include "model/model_stats.h"

using namespace dsv2;

TEST_CASE("V2-Lite parameter counts: 15.7B total, 2.4B active per token") {
    auto c = parseModelConfig(test::liteConfigJson().dump());
    REQUIRE(c.isOk());
    const ParameterCounts p = countParameters(*c);
    // By hand from the shapes in REFERENCE.md.
    const int64_t attnPerLayer = 3072 * 2048 + 576 * 2048 + 512 + 4096 * 512 + 2048 * 2048;
    const int64_t expert = 3 * 1408 * 2048;
    CHECK(p.embedding == 102400 * 2048);
    CHECK(p.lmHead == 102400 * 2048);
    CHECK(p.attention == 27 * attnPerLayer);
    CHECK(p.denseMlp == 3 * 10944 * 2048);
    CHECK(p.routedExperts == int64_t{26} * 64 * expert);
    CHECK(p.sharedExperts == int64_t{26} * 2 * expert);
    CHECK(p.router == 26 * 64 * 2048);
    CHECK(p.norms == 27 * 2 * 2048 + 2048);
    CHECK(p.total == p.embedding + p.lmHead + p.attention + p.denseMlp + p.routedExperts + p.sharedExperts +
                         p.router + p.norms);
    CHECK(p.activePerToken == p.total - p.embedding - int64_t{26} * (64 - 6) * expert);
    CHECK(p.activeWithEmbedding == p.activePerToken + p.embedding);
    // The published figures.
    CHECK(static_cast<double>(p.total) / 1e9 == doctest::Approx(15.7).epsilon(0.01));
    CHECK(static_cast<double>(p.activePerToken) / 1e9 == doctest::Approx(2.4).epsilon(0.03));
}

TEST_CASE("V2 236B parameter counts: 236B total, 21B active") {
    auto c = parseModelConfig(test::v2ConfigJson().dump());
    REQUIRE(c.isOk());
    const ParameterCounts p = countParameters(*c);
    CHECK(static_cast<double>(p.total) / 1e9 == doctest::Approx(236).epsilon(0.01));
    CHECK(static_cast<double>(p.activePerToken) / 1e9 == doctest::Approx(21).epsilon(0.03));
}

TEST_CASE("KV bytes per token: MLA versus MHA") {
    auto lite = parseModelConfig(test::liteConfigJson().dump());
    auto v2 = parseModelConfig(test::v2ConfigJson().dump());
    REQUIRE(lite.isOk());
    REQUIRE(v2.isOk());
    CHECK(mlaKvBytesPerToken(*lite) == 31104);
    CHECK(mhaKvBytesPerToken(*lite) == 276480);
    CHECK(mlaKvBytesPerToken(*v2) == 69120);
    CHECK(mhaKvBytesPerToken(*v2) == 4915200);
    CHECK(mlaKvBytesPerToken(*lite, 4) == 62208);
}
