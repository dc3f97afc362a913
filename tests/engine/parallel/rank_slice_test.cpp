// parallel::planRankSlices: what each GPU of a multi-GPU run holds (engine/parallel/rank_slice.h).
#include <doctest/doctest.h>

#include <vector>

#include "parallel/expert_placement.h"
#include "parallel/rank_slice.h"
#include "parallel_test_configs.h"

using namespace dsv2;
using namespace dsv2::parallel;
using namespace dsv2::test;

namespace {

std::vector<RankSlice> slicesFor(const ModelConfig& c, int n) {
    auto placement = placeExperts(c, n);
    REQUIRE_MESSAGE(placement.isOk(), placement.status().toString());
    auto slices = planRankSlices(c, *placement);
    REQUIRE_MESSAGE(slices.isOk(), slices.status().toString());
    REQUIRE(static_cast<int>(slices->size()) == n);
    return *slices;
}

// [begin, begin + count) ranges of all ranks tile [0, whole) in order.
template <typename Get>
void checkTiles(const std::vector<RankSlice>& slices, int64_t whole, Get get) {
    int64_t next = 0;
    for (const RankSlice& s : slices) {
        const auto [begin, count] = get(s);
        CHECK(begin == next);
        CHECK(count > 0);
        next = begin + count;
    }
    CHECK(next == whole);
}

}  // namespace

TEST_CASE("rank slices tile heads, widths and vocabulary, and give every expert to exactly one GPU") {
    for (const ModelConfig& c : {v2Config(), liteConfig()}) {
        for (int n : {1, 2, 3, 4, 8}) {
            CAPTURE(c.hiddenSize);
            CAPTURE(n);
            const auto slices = slicesFor(c, n);
            checkTiles(slices, c.numAttentionHeads, [](const RankSlice& s) {
                return std::pair{s.headBegin, s.headCount};
            });
            checkTiles(slices, c.intermediateSize, [](const RankSlice& s) {
                return std::pair{s.denseBegin, s.denseCount};
            });
            checkTiles(slices, c.nSharedExperts * c.moeIntermediateSize, [](const RankSlice& s) {
                return std::pair{s.sharedBegin, s.sharedCount};
            });
            checkTiles(slices, c.vocabSize, [](const RankSlice& s) { return std::pair{s.vocabBegin, s.vocabCount}; });
            // Width slices stay in units of 64 except the last one's remainder.
            for (size_t r = 0; r + 1 < slices.size(); ++r) {
                CHECK(slices[r].denseCount % 64 == 0);
                CHECK(slices[r].sharedCount % 64 == 0);
            }
            std::vector<int> owners(static_cast<size_t>(c.nRoutedExperts), 0);
            int64_t total = 0;
            for (const RankSlice& s : slices) {
                for (int64_t e = 0; e < c.nRoutedExperts; ++e) owners[static_cast<size_t>(e)] += s.owns(e) ? 1 : 0;
                total += s.expertCount(c.nRoutedExperts);
            }
            for (int o : owners) CHECK(o == 1);
            CHECK(total == c.nRoutedExperts);
            const ModelConfig r = rankConfig(c, slices.back());
            CHECK(r.numAttentionHeads == slices.back().headCount);
            CHECK(r.intermediateSize == slices.back().denseCount);
            CHECK(r.nRoutedExperts == c.nRoutedExperts);  // routers stay whole
            CHECK(r.vocabSize == c.vocabSize);
        }
    }
}

TEST_CASE("V2 on 4 GPUs: 32 heads, 2 whole routing groups (40 experts) and 768 shared columns each") {
    const ModelConfig c = v2Config();
    const auto slices = slicesFor(c, 4);
    for (const RankSlice& s : slices) {
        CHECK(s.headCount == 32);
        CHECK(s.expertCount(c.nRoutedExperts) == 40);
        CHECK(s.sharedCount == 768);
        CHECK(s.denseCount == 3072);
        CHECK(s.vocabCount == 25600);
        // whole groups of 20: an owned expert's group is owned entirely
        for (int64_t e = 0; e < c.nRoutedExperts; ++e)
            if (s.owns(e)) CHECK(s.owns(e / 20 * 20 + 19));
    }
}

TEST_CASE("one GPU holds everything; too many GPUs for the heads are refused with the numbers") {
    const ModelConfig c = liteConfig();
    const auto one = slicesFor(c, 1);
    CHECK(one.front().ownsExpert.empty());
    CHECK(one.front().headCount == c.numAttentionHeads);
    const RankSlice whole = wholeModel(c);
    CHECK(whole.vocabCount == c.vocabSize);
    CHECK(whole.sharedCount == c.nSharedExperts * c.moeIntermediateSize);

    ModelConfig few = c;
    few.numAttentionHeads = 2;
    auto placement = placeExperts(few, 4);
    REQUIRE(placement.isOk());
    auto refused = planRankSlices(few, *placement);
    REQUIRE_FALSE(refused.isOk());
    CHECK(refused.status().message().find("2 attention heads") != std::string::npos);
}
