#pragma once
// Routing data for the inspection suites: a tiny hand-written table whose loads are worked out by
// hand in the tests, and a DeepSeek-V2-Lite-shaped table (26 MoE layers, top-6 of 64) with
// deterministic, skewed routing for the live, export and screenshot runs.

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "inspect/routing_table.h"

namespace dsv2::inspect::test {

// 4 answer tokens, 2 MoE layers (model layers 1 and 2), top-2 of 4 experts.
//   token   text    L0 experts (weights)     L1 experts (weights)
//   0       "The"   0 (0.6)  1 (0.4)         2 (0.7)  3 (0.3)
//   1       " cat"  0 (0.5)  2 (0.5)         2 (0.8)  0 (0.2)
//   2       " sat"  0 (0.9)  1 (0.1)         3 (0.6)  2 (0.4)
//   3       "\n"    1 (0.55) 0 (0.45)        2 (0.5)  1 (0.5)
inline RoutingTable knownTable() {
    RoutingTable t;
    t.messageId = 42;
    t.layers = 2;
    t.topK = 2;
    t.experts = 4;
    t.modelLayers = {1, 2};
    struct Spec {
        std::int32_t id;
        const char* text;
        std::vector<std::uint16_t> ids;
        std::vector<float> w;
        float logprob;
    };
    const std::vector<Spec> specs = {
        {791, "The", {0, 1, 2, 3}, {0.6f, 0.4f, 0.7f, 0.3f}, -0.105f},
        {8415, " cat", {0, 2, 2, 0}, {0.5f, 0.5f, 0.8f, 0.2f}, -1.2f},
        {7731, " sat", {0, 1, 3, 2}, {0.9f, 0.1f, 0.6f, 0.4f}, -0.5f},
        {185, "\n", {1, 0, 2, 1}, {0.55f, 0.45f, 0.5f, 0.5f}, -2.3f},
    };
    for (const Spec& s : specs) {
        TokenRow r;
        r.tokenId = s.id;
        r.text = s.text;
        r.textOffset = static_cast<std::uint32_t>(t.content.size());
        r.textLength = static_cast<std::uint32_t>(r.text.size());
        t.content += r.text;
        r.logprob = s.logprob;
        r.alternatives = {{s.id, s.logprob, s.text}, {13, -2.5f, ","}};
        r.expertIds = s.ids;
        r.weights = s.w;
        t.rows.push_back(r);
    }
    return t;
}

// Lite-shaped rows with routing that favours a few experts per layer (as real routers do), weights
// that are exact in f16 (multiples of 1/1024), logprobs and 5 alternatives.
inline std::vector<TokenRow> liteRows(int count, std::uint32_t seed, bool prompt = false, int firstIndex = 0) {
    constexpr int kLayers = 26;
    constexpr int kTopK = 6;
    constexpr int kExperts = 64;
    static const char* words[] = {" the",     " latent", " cache", " routes",     " each", " token",  " to", " six",
                                  " experts", ",",       " and",   " compresses", " keys", " values", ".",   "\n"};
    std::mt19937 rng(seed);
    std::vector<TokenRow> rows;
    for (int i = 0; i < count; ++i) {
        TokenRow r;
        const int w = static_cast<int>(rng() % 16);
        r.tokenId = 1000 + w;
        r.text = words[w];
        r.isPrompt = prompt;
        if (!prompt) {
            r.logprob = -static_cast<float>(rng() % 3000) / 1000.0f;
            r.alternatives = {{r.tokenId, *r.logprob, r.text}};
            for (int a = 1; a < 5; ++a)
                r.alternatives.push_back({2000 + a, *r.logprob - 0.5f * a, words[(w + a) % 16]});
        }
        for (int l = 0; l < kLayers; ++l) {
            // A layer- and word-dependent favourite block of experts, plus noise.
            std::vector<std::uint16_t> chosen;
            while (static_cast<int>(chosen.size()) < kTopK) {
                const bool favourite = rng() % 3 != 0;
                const int e = favourite ? (l * 7 + (firstIndex + i) % 3 + w + static_cast<int>(rng() % 8)) % kExperts
                                        : static_cast<int>(rng() % kExperts);
                if (std::find(chosen.begin(), chosen.end(), e) == chosen.end())
                    chosen.push_back(static_cast<std::uint16_t>(e));
            }
            // Shares of 1024 sum to 1 and are exact in f16; the router reports them in descending order.
            std::vector<int> shares;
            int budget = 1024;
            for (int k = 0; k + 1 < kTopK; ++k) {
                // A confident router gives the first expert most; an unsure one spreads it.
                const int take =
                    k == 0 ? 150 + static_cast<int>(rng() % 500) : budget / 2 - static_cast<int>(rng() % 40);
                shares.push_back(std::max(1, take));
                budget -= shares.back();
            }
            shares.push_back(budget);
            std::sort(shares.rbegin(), shares.rend());
            for (int k = 0; k < kTopK; ++k) {
                r.expertIds.push_back(chosen[static_cast<std::size_t>(k)]);
                r.weights.push_back(static_cast<float>(shares[static_cast<std::size_t>(k)]) / 1024.0f);
            }
        }
        rows.push_back(std::move(r));
    }
    return rows;
}

inline RoutingTable liteTable(int promptTokens, int answerTokens, std::uint32_t seed = 7) {
    RoutingTable t;
    t.messageId = 7;
    t.layers = 26;
    t.topK = 6;
    t.experts = 64;
    for (int l = 1; l <= 26; ++l) t.modelLayers.push_back(l);
    for (TokenRow& r : liteRows(promptTokens, seed, true)) t.rows.push_back(std::move(r));
    for (TokenRow& r : liteRows(answerTokens, seed + 1, false, promptTokens)) {
        r.textOffset = static_cast<std::uint32_t>(t.content.size());
        r.textLength = static_cast<std::uint32_t>(r.text.size());
        t.content += r.text;
        t.rows.push_back(std::move(r));
    }
    return t;
}

}  // namespace dsv2::inspect::test
