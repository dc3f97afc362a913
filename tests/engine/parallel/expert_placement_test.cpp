// Expert placement across devices: every expert once, balance, group integrity, and the bound on the
// devices one token touches, checked against the CPU router's decisions on random logits.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <set>
#include <vector>

#include "cpu/router.h"
#include "parallel/expert_placement.h"
#include "parallel_test_configs.h"

using namespace dsv2;
using namespace dsv2::parallel;

namespace {

// Routes `tokens` random tokens with the CPU router and returns, per token, the devices touched.
std::vector<std::vector<int>> routeRandomTokens(const ModelConfig& c, const ExpertPlacement& p, int tokens,
                                                uint32_t seed) {
    const auto params = cpu::RouterParams::fromConfig(c);
    std::mt19937 rng(seed);
    // Spread the logit scale so that both flat and peaked router distributions occur.
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> scale(0.1f, 8.0f);
    std::vector<float> logits(static_cast<size_t>(c.nRoutedExperts)), scratch(logits.size()),
        weights(static_cast<size_t>(c.numExpertsPerTok));
    std::vector<int32_t> ids(static_cast<size_t>(c.numExpertsPerTok));
    std::vector<std::vector<int>> out;
    for (int t = 0; t < tokens; ++t) {
        const float s = scale(rng);
        for (float& l : logits) l = s * normal(rng);
        cpu::routeToken(logits.data(), params, ids.data(), weights.data(), scratch.data());
        out.push_back(devicesTouched(p, ids));
    }
    return out;
}

void checkEveryExpertOnce(const ModelConfig& c, const ExpertPlacement& p) {
    std::vector<int> seen(static_cast<size_t>(c.nRoutedExperts), 0);
    for (int d = 0; d < p.nDevices; ++d) {
        const auto& experts = p.deviceExperts[static_cast<size_t>(d)];
        CHECK(std::is_sorted(experts.begin(), experts.end()));
        for (int32_t e : experts) {
            ++seen[static_cast<size_t>(e)];
            CHECK(p.expertDevice[static_cast<size_t>(e)] == d);
        }
    }
    for (int64_t e = 0; e < c.nRoutedExperts; ++e) CHECK_MESSAGE(seen[static_cast<size_t>(e)] == 1, "expert " << e);
}

int64_t spread(const ExpertPlacement& p) {
    int64_t most = 0, least = INT64_MAX;
    for (int d = 0; d < p.nDevices; ++d) {
        most = std::max(most, p.expertsOn(d));
        least = std::min(least, p.expertsOn(d));
    }
    return most - least;
}

}  // namespace

TEST_CASE("balancedSplit: contiguous sizes within one, larger first") {
    CHECK(balancedSplit(8, 3) == std::vector<int64_t>{3, 3, 2});
    CHECK(balancedSplit(128, 4) == std::vector<int64_t>{32, 32, 32, 32});
    CHECK(balancedSplit(16, 3) == std::vector<int64_t>{6, 5, 5});
    CHECK(balancedSplit(2, 4) == std::vector<int64_t>{1, 1, 0, 0});
}

TEST_CASE("V2 (group_limited_greedy, 8 groups of 20): whole groups per device, at most min(topk_group, N) devices") {
    const ModelConfig c = test::v2Config();
    REQUIRE(c.topkMethod == TopkMethod::GroupLimitedGreedy);
    for (int n : {1, 2, 3, 4, 8}) {
        CAPTURE(n);
        auto placed = placeExperts(c, n);
        REQUIRE_MESSAGE(placed.isOk(), placed.status().toString());
        const ExpertPlacement& p = *placed;
        MESSAGE(p.summary());
        CHECK(p.groupAligned);
        checkEveryExpertOnce(c, p);
        // Balanced within one group (8 groups on 3 devices: 3 + 3 + 2 groups = 60/60/40 experts).
        CHECK(spread(p) <= (8 % n == 0 ? 0 : 20));
        // Group integrity: the 20 experts of group g all live on one device.
        for (int64_t g = 0; g < 8; ++g) {
            std::set<int> devices;
            for (int64_t e = g * 20; e < (g + 1) * 20; ++e) devices.insert(p.expertDevice[static_cast<size_t>(e)]);
            CHECK_MESSAGE(devices.size() == 1, "group " << g);
        }
        CHECK(p.maxDevicesPerToken == std::min(3, n));

        const auto touched = routeRandomTokens(c, p, 4000, 1234u + static_cast<uint32_t>(n));
        size_t most = 0;
        double sum = 0;
        for (const auto& t : touched) {
            most = std::max(most, t.size());
            sum += static_cast<double>(t.size());
        }
        CHECK(most <= static_cast<size_t>(p.maxDevicesPerToken));
        CHECK(most == static_cast<size_t>(p.maxDevicesPerToken));  // the bound is reached, not just respected
        // Random logits route uniformly: the mean matches the exact expectation.
        CHECK(sum / static_cast<double>(touched.size()) == doctest::Approx(p.meanDevicesPerToken).epsilon(0.02));
    }
}

TEST_CASE("V2 with more devices than groups: groups split, the bound counts the devices each group spans") {
    const ModelConfig c = test::v2Config();
    auto placed = placeExperts(c, 16);
    REQUIRE(placed.isOk());
    CHECK_FALSE(placed->groupAligned);
    checkEveryExpertOnce(c, *placed);
    CHECK(spread(*placed) == 0);             // 10 experts each; every group spans 2 devices
    CHECK(placed->maxDevicesPerToken == 6);  // 3 groups x 2 devices, = top_k
    for (const auto& t : routeRandomTokens(c, *placed, 2000, 99u)) CHECK(t.size() <= 6u);
}

TEST_CASE("V2-Lite (greedy, no groups): contiguous split within one expert, at most min(top_k, N) devices") {
    const ModelConfig c = test::liteConfig();
    REQUIRE(c.topkMethod == TopkMethod::Greedy);
    for (int n : {1, 2, 3, 4, 8}) {
        CAPTURE(n);
        auto placed = placeExperts(c, n);
        REQUIRE(placed.isOk());
        const ExpertPlacement& p = *placed;
        MESSAGE(p.summary());
        CHECK_FALSE(p.groupAligned);
        checkEveryExpertOnce(c, p);
        CHECK(spread(p) <= 1);
        CHECK(p.maxDevicesPerToken == std::min(6, n));
        const auto touched = routeRandomTokens(c, p, 4000, 777u + static_cast<uint32_t>(n));
        size_t most = 0;
        double sum = 0;
        for (const auto& t : touched) {
            most = std::max(most, t.size());
            sum += static_cast<double>(t.size());
        }
        CHECK(most <= static_cast<size_t>(p.maxDevicesPerToken));
        CHECK(sum / static_cast<double>(touched.size()) == doctest::Approx(p.meanDevicesPerToken).epsilon(0.02));
    }
    // By hand for N = 2 (32 experts each): greedy top-6 of i.i.d. scores is a uniform 6-subset; a
    // device is missed when all 6 fall on the other half, C(32,6)/C(64,6) = 906,192 / 74,974,368;
    // mean = 2 (1 - 0.0120867) = 1.975827 (the placement's figure is simulated: within 0.01).
    auto two = placeExperts(c, 2);
    REQUIRE(two.isOk());
    CHECK(std::abs(two->meanDevicesPerToken - 2.0 * (1.0 - 906192.0 / 74974368.0)) < 0.01);
}

TEST_CASE("placements that cannot be made are refused with the reason") {
    const ModelConfig c = test::v2Config();
    auto zero = placeExperts(c, 0);
    REQUIRE_FALSE(zero.isOk());
    CHECK(zero.status().code() == StatusCode::InvalidArgument);
    auto tooMany = placeExperts(c, 161);
    REQUIRE_FALSE(tooMany.isOk());
    CHECK(tooMany.status().message().find("161 devices for 160 routed experts") != std::string::npos);
    CHECK(placeExperts(c, 160).isOk());
}
