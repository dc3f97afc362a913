#include "core/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <unordered_set>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
    // Two passes of 16 floats at a time (SSE2 where there is SSE2): the largest value, then its first
    // index. std::max_element's chain of dependent compare-and-branches took ~100 µs over a
    // 102,400-entry vocabulary on the build machine, ~4 % of a 2.4 ms GPU decode step.
    const size_t n = values.size();
    const float* v = values.data();
    size_t i = 0;
    float best = -INFINITY;
#if defined(__SSE2__)
    __m128 m0 = _mm_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    for (; i + 16 <= n; i += 16) {  // maxps keeps the accumulator when the value is NaN
        m0 = _mm_max_ps(_mm_loadu_ps(v + i), m0);
        m1 = _mm_max_ps(_mm_loadu_ps(v + i + 4), m1);
        m2 = _mm_max_ps(_mm_loadu_ps(v + i + 8), m2);
        m3 = _mm_max_ps(_mm_loadu_ps(v + i + 12), m3);
    }
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, _mm_max_ps(_mm_max_ps(m0, m1), _mm_max_ps(m2, m3)));
    for (float l : lanes) best = l > best ? l : best;
#endif
    for (; i < n; ++i) best = v[i] > best ? v[i] : best;
    i = 0;
#if defined(__SSE2__)
    const __m128 target = _mm_set1_ps(best);
    for (; i + 16 <= n; i += 16) {
        const int hit = _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(v + i), target)) |
                        _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(v + i + 4), target)) << 4 |
                        _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(v + i + 8), target)) << 8 |
                        _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(v + i + 12), target)) << 12;
        if (hit) return static_cast<int32_t>(i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(hit))));
    }
#endif
    for (; i < n; ++i)
        if (v[i] == best) return static_cast<int32_t>(i);
    return 0;  // empty, or nothing but NaN
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
    if (n == 0) return 0;
    if (m_params.temperature <= 0.0 && m_params.repetitionPenalty == 1.0) return argmax(logits.first(n));
    m_work.assign(logits.begin(), logits.begin() + static_cast<std::ptrdiff_t>(n));
    applyRepetitionPenalty(m_work, context, m_params.repetitionPenalty);
    if (m_params.temperature <= 0.0) return argmax(m_work);

    // Probabilities at this temperature.
    const auto invTemperature = static_cast<float>(1.0 / m_params.temperature);
    const float maxLogit = m_work[static_cast<size_t>(argmax(m_work))];
    double sum = 0.0;
    for (float& v : m_work) {
        v = std::exp((v - maxLogit) * invTemperature);
        sum += v;
    }
    for (float& v : m_work) v = static_cast<float>(v / sum);

    // The candidates in sampling order (most likely first, ties in id order), sorted lazily: only
    // as deep as the filters and the draw look. Sorting all of a 102,400-entry vocabulary cost ~20 ms
    // a token with top-p on the build machine (8× a GPU decode step), while a chat's nucleus is
    // usually a few dozen tokens.
    m_order.resize(n);
    std::iota(m_order.begin(), m_order.end(), 0);
    auto byProb = [&](int32_t a, int32_t b) { return m_work[a] > m_work[b] || (m_work[a] == m_work[b] && a < b); };
    size_t sorted = 0;  // m_order[0, sorted) are the most likely ids, in order
    auto sortTo = [&](size_t k) {
        k = std::min(k, m_order.size());
        if (k <= sorted) return;
        // The rest of m_order holds exactly the ids below the sorted prefix, so a partial sort of
        // the rest extends the prefix.
        std::partial_sort(m_order.begin() + static_cast<std::ptrdiff_t>(sorted),
                          m_order.begin() + static_cast<std::ptrdiff_t>(k), m_order.end(), byProb);
        sorted = k;
    };
    constexpr size_t kFirstSort = 64;
    auto sortedAt = [&](size_t i) {  // m_order[i] in its sorted place; the prefix grows 4× at a time
        if (i >= sorted) sortTo(std::max({i + 1, kFirstSort, 4 * sorted}));
        return m_order[i];
    };
    auto keepFirst = [&](size_t k) {
        m_order.resize(k);
        sorted = std::min(sorted, k);
    };

    if (m_params.topK > 0 && static_cast<size_t>(m_params.topK) < n) {
        sortTo(static_cast<size_t>(m_params.topK));
        keepFirst(static_cast<size_t>(m_params.topK));
    }
    if (m_params.topP < 1.0) {
        // The smallest head whose mass reaches top_p (at least one token).
        double mass = 0.0;
        size_t cut = 0;
        while (cut < m_order.size()) {
            mass += m_work[sortedAt(cut)];
            ++cut;
            if (mass >= m_params.topP) break;
        }
        keepFirst(std::max<size_t>(cut, 1));
    }
    if (m_params.minP > 0.0) {
        const double threshold = m_params.minP * m_work[sortedAt(0)];
        size_t cut = 1;
        while (cut < m_order.size() && m_work[sortedAt(cut)] >= threshold) ++cut;
        keepFirst(cut);
    }
    // The mass of the kept ids, added in sampling order where the filters sorted them all (as the
    // draw walks them); over a whole unfiltered vocabulary, in id order (sorting it all only to add
    // it up is what this avoids).
    double total = 0.0;
    if (sorted == m_order.size()) {
        for (int32_t id : m_order) total += m_work[id];
    } else {
        for (float p : m_work) total += p;
    }
    double u = uniform01(m_rng) * total;
    for (size_t i = 0; i < m_order.size(); ++i) {
        const int32_t id = sortedAt(i);
        u -= m_work[id];
        if (u < 0.0) return id;
    }
    return m_order.back();  // rounding left a sliver of mass (the loop sorted all of m_order)
}

}  // namespace dsv2
