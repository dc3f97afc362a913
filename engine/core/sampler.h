#pragma once
// Picks the next token from a row of logits: greedy (temperature 0) or sampling with HF's chain of
// filters (repetition penalty, temperature, top-k, top-p, min-p), from a seeded generator so that
// the same seed and logits give the same tokens on every backend and platform. The filters and
// the draw work on weights (samplingWeights: e^((logit − max) / T), the top id's exactly 1) and
// their total rather than on normalised probabilities; the candidates are sorted only as deep as
// the filters and the draw need (sampler.cpp), and the draw is that of a full sort. The kept weight
// is added in sampling order when the filters cut the list, and is samplingWeights' total when not.

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "dsv2/generate.h"

namespace dsv2 {

class Sampler {
public:
    // `candidates`: only ids [0, candidates) may be picked (the tokenizer's size; checkpoints pad
    // the vocabulary with rows no text maps to).
    Sampler(const GenerateParams& params, int64_t candidates);

    // `context` is every token the model has seen (for the repetition penalty).
    int32_t sample(std::span<const float> logits, std::span<const int32_t> context);

    uint64_t seed() const { return m_seed; }

private:
    GenerateParams m_params;
    int64_t m_candidates;
    uint64_t m_seed;
    std::mt19937_64 m_rng;
    std::vector<float> m_logits;  // after the repetition penalty (when there is one)
    std::vector<float> m_work;    // weights
    std::vector<int32_t> m_order;
};

// The building blocks, separately testable.
// HF's repetition penalty: for each distinct id in context, logit > 0 → logit / penalty, else · penalty.
void applyRepetitionPenalty(std::span<float> logits, std::span<const int32_t> context, double penalty);
// Index of the largest value (the lowest index among equals; NaN entries are never the largest, and
// a row of nothing but NaN gives 0).
int32_t argmax(std::span<const float> values);
// log-softmax of logits (n) into out (n), in double where it matters.
void logSoftmax(const float* logits, int64_t n, float* out);
// weights[i] = e^((logits[i] − maxLogit) · invTemperature) for logits <= maxLogit (0 below e^−87),
// by one fixed float sequence (~2 ulp; the same bits on every platform, unlike libm's expf), and
// their total: four running sums in double (element i into sum i % 4), added (0 + 1) + (2 + 3).
double samplingWeights(std::span<const float> logits, float maxLogit, float invTemperature, std::span<float> weights);
// A uniform double in [0, 1) from 53 random bits (the same on every standard library).
double uniform01(std::mt19937_64& rng);

}  // namespace dsv2
