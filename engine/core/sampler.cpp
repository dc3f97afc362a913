#include "core/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

namespace dsv2 {

void applyRepetitionPenalty(std::span<float> logits, std::span<const int32_t> context, double penalty) {
    if (penalty == 1.0) return;
    std::unordered_set<int32_t> seen(context.begin(), context.end());
    const auto p = static_cast<float>(penalty);
    for (int32_t id : seen) {
        if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
        float& l = logits[static_cast<size_t>(id)];
        l = l > 0.0f ? l / p : l * p;
    }
}

int32_t argmax(std::span<const float> values) {
    return static_cast<int32_t>(std::max_element(values.begin(), values.end()) - values.begin());
}

void logSoftmax(const float* logits, int64_t n, float* out) {
    if (n <= 0) return;
    const float maxValue = *std::max_element(logits, logits + n);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i] - maxValue));
    const double logSum = std::log(sum) + maxValue;
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(logits[i] - logSum);
}

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

Sampler::Sampler(const GenerateParams& params, int64_t candidates)
    : m_params(params),
      m_candidates(candidates),
      m_seed(params.seed ? *params.seed : std::random_device{}() * 0x9E3779B97F4A7C15ull ^ std::random_device{}()),
      m_rng(m_seed) {}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> context) {
    const auto n = static_cast<size_t>(std::min<int64_t>(m_candidates, static_cast<int64_t>(logits.size())));
    m_work.assign(logits.begin(), logits.begin() + static_cast<std::ptrdiff_t>(n));
    applyRepetitionPenalty(m_work, context, m_params.repetitionPenalty);
    if (m_params.temperature <= 0.0) return argmax(m_work);

    // Probabilities at this temperature, then the candidates sorted most likely first.
    const auto invTemperature = static_cast<float>(1.0 / m_params.temperature);
    const float maxLogit = *std::max_element(m_work.begin(), m_work.end());
    double sum = 0.0;
    for (float& v : m_work) {
        v = std::exp((v - maxLogit) * invTemperature);
        sum += v;
    }
    for (float& v : m_work) v = static_cast<float>(v / sum);
    m_order.resize(n);
    std::iota(m_order.begin(), m_order.end(), 0);
    size_t keep = n;
    if (m_params.topK > 0) keep = std::min(keep, static_cast<size_t>(m_params.topK));
    // A partial sort is enough when top-k cuts hard; stable so that ties keep id order.
    auto byProb = [&](int32_t a, int32_t b) { return m_work[a] > m_work[b] || (m_work[a] == m_work[b] && a < b); };
    if (keep < n) {
        std::partial_sort(m_order.begin(), m_order.begin() + static_cast<std::ptrdiff_t>(keep), m_order.end(), byProb);
        m_order.resize(keep);
    } else {
        std::sort(m_order.begin(), m_order.end(), byProb);
    }
    if (m_params.topP < 1.0) {
        // The smallest head whose mass reaches top_p (at least one token).
        double mass = 0.0;
        size_t cut = 0;
        while (cut < m_order.size()) {
            mass += m_work[m_order[cut]];
            ++cut;
            if (mass >= m_params.topP) break;
        }
        m_order.resize(std::max<size_t>(cut, 1));
    }
    if (m_params.minP > 0.0) {
        const double threshold = m_params.minP * m_work[m_order.front()];
        size_t cut = 1;
        while (cut < m_order.size() && m_work[m_order[cut]] >= threshold) ++cut;
        m_order.resize(cut);
    }
    double total = 0.0;
    for (int32_t id : m_order) total += m_work[id];
    double u = uniform01(m_rng) * total;
    for (int32_t id : m_order) {
        u -= m_work[id];
        if (u < 0.0) return id;
    }
    return m_order.back();  // rounding left a sliver of mass
}

}  // namespace dsv2
