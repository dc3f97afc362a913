#pragma once
// Sampling and stopping flags shared by `dsv2 generate` and `dsv2 chat`. Each flag overrides the
// model's generation_config.json default only when given.

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include "dsv2/generate.h"

namespace dsv2::cli {

struct SamplingCliOptions {
    std::optional<double> temperature, topP, minP, repetitionPenalty;
    std::optional<int64_t> topK, maxNewTokens;
    std::optional<uint64_t> seed;
    bool ignoreEos = false;
    bool greedy = false;
    std::vector<std::string> stop;

    void addTo(CLI::App& cmd) {
        cmd.add_option("-n,--max-new-tokens", maxNewTokens, "Most tokens to generate (default: model's or 256)");
        cmd.add_option("-t,--temperature", temperature, "0 = greedy (default: generation_config.json)");
        cmd.add_option("--top-p", topP, "Nucleus sampling mass in (0, 1]");
        cmd.add_option("--top-k", topK, "Sample among the K most likely (0 = off)");
        cmd.add_option("--min-p", minP, "Drop tokens below min_p · p(most likely)");
        cmd.add_option("--repetition-penalty", repetitionPenalty, "HF-style repetition penalty (1 = off)");
        cmd.add_option("--seed", seed, "Random seed: same seed, same tokens");
        cmd.add_flag("--greedy", greedy, "Argmax decoding (same as --temperature 0)");
        cmd.add_flag("--ignore-eos", ignoreEos, "Keep generating past end-of-sequence");
        // A callback rather than a bound vector: GCC 12 warns (-Wnull-dereference) inside CLI11's
        // string splitting when a std::vector<std::string> is bound directly.
        cmd.add_option_function<std::vector<std::string>>(
            "--stop", [this](const std::vector<std::string>& v) { stop = v; }, "Stop when this text appears (repeatable)");
    }

    GenerateParams apply(GenerateParams p) const {
        if (temperature) p.temperature = *temperature;
        if (topP) p.topP = *topP;
        if (topK) p.topK = *topK;
        if (minP) p.minP = *minP;
        if (repetitionPenalty) p.repetitionPenalty = *repetitionPenalty;
        if (maxNewTokens) p.maxNewTokens = *maxNewTokens;
        if (seed) p.seed = *seed;
        if (greedy) p.temperature = 0.0;
        p.ignoreEos = ignoreEos;
        p.stopStrings.insert(p.stopStrings.end(), stop.begin(), stop.end());
        return p;
    }
};

}  // namespace dsv2::cli
