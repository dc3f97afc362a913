#pragma once
// Reads an HF reference fixture folder (tests/data/tiny-lite and tests/data/fixtures/*):
// reference.json with its cases (prompt ids, all-position logits file, last top-5, greedy
// continuation, per-MoE-layer routing), and optionally reference_long.json.
// Also the comparison used by the oracle tests: normalized max error = max|a-b| / max|b|.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsv2::test {

struct RoutingReference {
    std::vector<std::vector<int32_t>> ids;   // (T, k)
    std::vector<std::vector<float>> weights; // (T, k)
};

struct ReferenceCase {
    std::vector<int32_t> tokens;
    std::vector<float> logits;  // (T, vocab)
    int64_t rows = 0;
    int64_t vocab = 0;
    std::vector<int32_t> lastTop5;
    std::vector<int32_t> greedy;
    std::map<int, RoutingReference> routing;  // by model layer index
};

struct LongReference {
    std::vector<int32_t> tokens;
    std::vector<int64_t> positions;
    std::vector<float> logits;  // (positions, vocab)
    int64_t vocab = 0;
};

inline std::vector<float> readF32(const std::filesystem::path& path, size_t expected) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "cannot open " << path);
    std::vector<float> v(expected);
    in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(expected * sizeof(float)));
    REQUIRE_MESSAGE(static_cast<size_t>(in.gcount()) == expected * sizeof(float), path << " is shorter than its shape");
    in.peek();
    REQUIRE_MESSAGE(in.eof(), path << " is longer than its shape");
    return v;  // little-endian float32, as this machine reads it
}

inline nlohmann::json readJson(const std::filesystem::path& path) {
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "cannot open " << path);
    return nlohmann::json::parse(in);
}

inline std::vector<ReferenceCase> loadReferenceCases(const std::filesystem::path& dir) {
    const nlohmann::json j = readJson(dir / "reference.json");
    std::vector<ReferenceCase> cases;
    for (const auto& c : j.at("cases")) {
        ReferenceCase rc;
        rc.tokens = c.at("token_ids").get<std::vector<int32_t>>();
        const auto shape = c.at("logits_shape").get<std::vector<int64_t>>();
        REQUIRE(shape.size() == 2);
        rc.rows = shape[0];
        rc.vocab = shape[1];
        REQUIRE(rc.rows == static_cast<int64_t>(rc.tokens.size()));
        rc.logits = readF32(dir / c.at("logits_file").get<std::string>(), static_cast<size_t>(rc.rows * rc.vocab));
        rc.lastTop5 = c.at("last_top5").get<std::vector<int32_t>>();
        rc.greedy = c.at("greedy_continuation").get<std::vector<int32_t>>();
        for (const auto& [layer, r] : c.at("routing").items()) {
            RoutingReference rr;
            rr.ids = r.at("topk_idx").get<std::vector<std::vector<int32_t>>>();
            rr.weights = r.at("topk_weight").get<std::vector<std::vector<float>>>();
            rc.routing[std::stoi(layer)] = std::move(rr);
        }
        cases.push_back(std::move(rc));
    }
    return cases;
}

inline std::optional<LongReference> loadLongReference(const std::filesystem::path& dir) {
    if (!std::filesystem::exists(dir / "reference_long.json")) return std::nullopt;
    const nlohmann::json j = readJson(dir / "reference_long.json");
    LongReference r;
    r.tokens = j.at("token_ids").get<std::vector<int32_t>>();
    r.positions = j.at("positions").get<std::vector<int64_t>>();
    const auto shape = j.at("logits_shape").get<std::vector<int64_t>>();
    REQUIRE(shape.size() == 2);
    REQUIRE(shape[0] == static_cast<int64_t>(r.positions.size()));
    r.vocab = shape[1];
    r.logits = readF32(dir / j.at("logits_file").get<std::string>(), static_cast<size_t>(shape[0] * shape[1]));
    return r;
}

// max|a - b| / max|b| over n values.
inline double normalizedMaxError(const float* a, const float* b, size_t n) {
    double maxDiff = 0.0;
    double maxRef = 0.0;
    for (size_t i = 0; i < n; ++i) {
        maxDiff = std::max(maxDiff, std::abs(static_cast<double>(a[i]) - b[i]));
        maxRef = std::max(maxRef, std::abs(static_cast<double>(b[i])));
    }
    return maxRef > 0 ? maxDiff / maxRef : maxDiff;
}

inline int32_t argmaxRow(const float* row, int64_t n) {
    return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

}  // namespace dsv2::test
