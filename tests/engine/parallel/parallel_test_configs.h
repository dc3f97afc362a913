#pragma once
// The shipped V2 (236B) and V2-Lite configs (tests/engine/cuda/configs, also used by dsv2 bench
// --random-weights), loaded for the parallel-planning suites.
#include <doctest/doctest.h>

#include <filesystem>

#include "model/model_config.h"

namespace dsv2::test {

inline ModelConfig shippedConfig(const char* file) {
    const auto path = std::filesystem::path(__FILE__).parent_path().parent_path() / "cuda" / "configs" / file;
    auto config = loadModelConfig(path);
    REQUIRE_MESSAGE(config.isOk(), config.status().toString());
    return *config;
}
inline ModelConfig v2Config() { return shippedConfig("deepseek-v2.json"); }
inline ModelConfig liteConfig() { return shippedConfig("deepseek-v2-lite.json"); }

}  // namespace dsv2::test
