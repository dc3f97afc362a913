#include "core/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <numeric>
#include <unordered_set>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)  // GCC and Clang: per-function targets, CPU checks
#define DSV2_SAMPLER_AVX2 1
#include <immintrin.h>
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
    const std::span<const float> row(logits, static_cast<size_t>(n));
    const float maxValue = row[static_cast<size_t>(argmax(row))];
    // Σ e^(l − max) by the sampler's weights pass, with `out` as its scratch (~2 ulp a term, summed
    // in double; terms below e^−87 count as 0): ~0.1 ms over 102,400 logits where std::exp in
    // double took ~0.6 ms on the build machine.
    const double sum = samplingWeights(row, maxValue, 1.0f, std::span<float>(out, static_cast<size_t>(n)));
    const double logSum = std::log(sum) + maxValue;
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(logits[i] - logSum);
}

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

namespace {

// e^x for x <= 0, four at a time: Cephes' expf (x = n·ln 2 + r, |r| <= ln 2 / 2, a degree-5
// polynomial in r, then 2^n from the exponent bits), within ~2 ulp of the true value. Below −87
// the weight is 0 (e^−87 ≈ 1.6e−38, the smallest normal float). One fixed sequence of float
// operations (no FMA: SSE2 has none, and the scalar form below keeps each product and sum
// separate), so the weights and hence the draws are the same on every platform, which libm's
// expf, scalar at ~3 ns a call, does not promise.
constexpr float kExpLow = -87.0f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f, kP3 = 4.1665795894e-2f,
                kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

#if defined(__SSE2__)
__m128 exp4(__m128 x) {
    const __m128 tooLow = _mm_cmplt_ps(x, _mm_set1_ps(kExpLow));
    x = _mm_max_ps(x, _mm_set1_ps(kExpLow));
    // n = round(x·log2 e) as floor(x·log2 e + 0.5): truncation, minus one where it rounded up.
    const __m128 fx = _mm_add_ps(_mm_mul_ps(x, _mm_set1_ps(kLog2e)), _mm_set1_ps(0.5f));
    __m128 n = _mm_cvtepi32_ps(_mm_cvttps_epi32(fx));
    n = _mm_sub_ps(n, _mm_and_ps(_mm_cmpgt_ps(n, fx), _mm_set1_ps(1.0f)));
    const __m128 r = _mm_sub_ps(_mm_sub_ps(x, _mm_mul_ps(n, _mm_set1_ps(kLn2Hi))), _mm_mul_ps(n, _mm_set1_ps(kLn2Lo)));
    __m128 y = _mm_set1_ps(kP0);
    y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(kP1));
    y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(kP2));
    y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(kP3));
    y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(kP4));
    y = _mm_add_ps(_mm_mul_ps(y, r), _mm_set1_ps(kP5));
    y = _mm_add_ps(_mm_add_ps(_mm_mul_ps(_mm_mul_ps(y, r), r), r), _mm_set1_ps(1.0f));
    const __m128i bits = _mm_slli_epi32(_mm_add_epi32(_mm_cvttps_epi32(n), _mm_set1_epi32(127)), 23);
    return _mm_andnot_ps(tooLow, _mm_mul_ps(y, _mm_castsi128_ps(bits)));
}
#endif

#if defined(DSV2_SAMPLER_AVX2)
// exp4's sequence of operations eight at a time where the CPU has AVX2 (the same IEEE operations
// in the same order, no FMA: the same bits). Over Lite's 102,400 logits the weights pass took
// 0.19 ms with SSE2 and 0.11 ms with this on the build machine: host time in every sampled token.
__attribute__((target("avx2"))) inline __m256 exp8(__m256 x) {
    const __m256 tooLow = _mm256_cmp_ps(x, _mm256_set1_ps(kExpLow), _CMP_LT_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(kExpLow));
    const __m256 fx = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _mm256_set1_ps(0.5f));
    __m256 n = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(fx));
    n = _mm256_sub_ps(n, _mm256_and_ps(_mm256_cmp_ps(n, fx, _CMP_GT_OQ), _mm256_set1_ps(1.0f)));
    const __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(kLn2Hi))),
                                   _mm256_mul_ps(n, _mm256_set1_ps(kLn2Lo)));
    __m256 y = _mm256_set1_ps(kP0);
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(kP1));
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(kP2));
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(kP3));
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(kP4));
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(kP5));
    y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(y, r), r), r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(tooLow, _mm256_mul_ps(y, _mm256_castsi256_ps(bits)));
}

// The weights of whole blocks of 8 from the start, element i's added into lane[i % 4] in element
// order (as samplingWeights' 4-lane loop adds them); returns how many elements it did.
__attribute__((target("avx2"))) size_t weightsAvx2(const float* logits, size_t n, float maxLogit, float invTemperature,
                                                   float* weights, double (&lane)[4]) {
    const __m256 shift = _mm256_set1_ps(maxLogit), scale = _mm256_set1_ps(invTemperature);
    __m256d sums = _mm256_loadu_pd(lane);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 w = exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(logits + i), shift), scale));
        _mm256_storeu_ps(weights + i, w);
        sums = _mm256_add_pd(sums, _mm256_cvtps_pd(_mm256_castps256_ps128(w)));
        sums = _mm256_add_pd(sums, _mm256_cvtps_pd(_mm256_extractf128_ps(w, 1)));
    }
    _mm256_storeu_pd(lane, sums);
    return i;
}

bool haveAvx2() {
    static const bool yes = __builtin_cpu_supports("avx2");
    return yes;
}
#endif

#if !defined(__SSE2__)
float exp1(float x) {
    if (x < kExpLow) return 0.0f;
    const volatile float fx = x * kLog2e + 0.5f;  // volatile: no fused multiply-add
    float n = static_cast<float>(static_cast<int32_t>(fx));
    if (n > fx) n -= 1.0f;
    const volatile float nHi = n * kLn2Hi, nLo = n * kLn2Lo;
    const float r = (x - nHi) - nLo;
    volatile float y = kP0;
    for (float c : {kP1, kP2, kP3, kP4, kP5}) {
        const volatile float yr = y * r;
        y = yr + c;
    }
    const volatile float yrr = y * r * r;
    const volatile float sum = yrr + r;
    const float poly = sum + 1.0f;
    const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return poly * scale;
}
#endif

}  // namespace

double samplingWeights(std::span<const float> logits, float maxLogit, float invTemperature, std::span<float> weights) {
    const size_t n = std::min(logits.size(), weights.size());
    // Four running sums in double, one per lane (element i goes to lane i % 4), added as
    // (0 + 1) + (2 + 3) at the end: one fixed order on every platform.
    double lane[4] = {0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
#if defined(DSV2_SAMPLER_AVX2)
    if (haveAvx2()) i = weightsAvx2(logits.data(), n, maxLogit, invTemperature, weights.data(), lane);
#endif
#if defined(__SSE2__)
    const __m128 shift = _mm_set1_ps(maxLogit), scale = _mm_set1_ps(invTemperature);
    __m128d sum01 = _mm_loadu_pd(lane), sum23 = _mm_loadu_pd(lane + 2);  // (i % 4 == 0 here)
    auto step = [&](__m128 l, float* out) {
        const __m128 w = exp4(_mm_mul_ps(_mm_sub_ps(l, shift), scale));
        _mm_storeu_ps(out, w);
        sum01 = _mm_add_pd(sum01, _mm_cvtps_pd(w));
        sum23 = _mm_add_pd(sum23, _mm_cvtps_pd(_mm_movehl_ps(w, w)));
    };
    for (; i + 4 <= n; i += 4) step(_mm_loadu_ps(logits.data() + i), weights.data() + i);
    if (i < n) {  // the tail through the same lanes, padded with weights of 0
        alignas(16) float in[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, out[4];
        for (size_t k = i; k < n; ++k) in[k - i] = logits[k];
        step(_mm_load_ps(in), out);
        for (size_t k = i; k < n; ++k) weights[k] = out[k - i];
    }
    _mm_storeu_pd(lane, sum01);
    _mm_storeu_pd(lane + 2, sum23);
#else
    for (; i < n; ++i) {
        weights[i] = exp1((logits[i] - maxLogit) * invTemperature);
        lane[i % 4] += weights[i];
    }
#endif
    return (lane[0] + lane[1]) + (lane[2] + lane[3]);
}

Sampler::Sampler(const GenerateParams& params, int64_t candidates)
    : m_params(params),
      m_candidates(candidates),
      m_seed(params.seed ? *params.seed : std::random_device{}() * 0x9E3779B97F4A7C15ull ^ std::random_device{}()),
      m_rng(m_seed) {}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> context) {
    const auto n = static_cast<size_t>(std::min<int64_t>(m_candidates, static_cast<int64_t>(logits.size())));
    if (n == 0) return 0;
    // The candidates' logits, through a copy only where the repetition penalty changes some.
    std::span<const float> row = logits.first(n);
    if (m_params.repetitionPenalty != 1.0) {
        m_logits.assign(row.begin(), row.end());
        applyRepetitionPenalty(m_logits, context, m_params.repetitionPenalty);
        row = m_logits;
    }
    const int32_t top = argmax(row);
    if (m_params.temperature <= 0.0) return top;  // greedy

    // Weights at this temperature, relative to the most likely id's (whose weight is exactly 1);
    // the filters and the draw work on weights against their total, never on normalised
    // probabilities (one division a candidate less: same ratios, same order).
    m_work.resize(n);
    const double totalWeight =
        samplingWeights(row, row[static_cast<size_t>(top)], static_cast<float>(1.0 / m_params.temperature), m_work);

    // The candidates in sampling order (largest weight first, ties in id order), sorted lazily:
    // only as deep as the filters and the draw look. Sorting all of a 102,400-entry vocabulary cost
    // ~20 ms a token with top-p on the build machine (8× a GPU decode step), while a chat's nucleus
    // is usually a few dozen tokens. The list starts with the ids whose weight is at least
    // kFirstTier of the top one, in id order, and takes in the rest only if the walk gets past them
    // all: every id of the rest weighs less than every id of the first tier, so sorting the tiers
    // one after the other gives the full order.
    constexpr float kFirstTier = 0x1.0p-20f;
    m_order.clear();
    for (size_t i = 0; i < n; ++i)
        if (m_work[i] >= kFirstTier) m_order.push_back(static_cast<int32_t>(i));
    size_t firstTier = m_order.size();  // then the rest joins (once), and this becomes n
    auto byWeight = [&](int32_t a, int32_t b) { return m_work[a] > m_work[b] || (m_work[a] == m_work[b] && a < b); };
    size_t sorted = 0;  // m_order[0, sorted) are the heaviest ids, in order
    auto sortTo = [&](size_t k) {
        k = std::min(k, n);
        if (k <= sorted) return;
        if (k > firstTier && firstTier < n) {
            std::sort(m_order.begin() + static_cast<std::ptrdiff_t>(sorted), m_order.end(), byWeight);
            sorted = m_order.size();
            for (size_t i = 0; i < n; ++i)
                if (!(m_work[i] >= kFirstTier)) m_order.push_back(static_cast<int32_t>(i));
            firstTier = n;
        }
        k = std::min(k, m_order.size());
        if (k <= sorted) return;
        // The rest of m_order holds exactly the ids below the sorted prefix (of this tier), so a
        // partial sort of the rest extends the prefix.
        std::partial_sort(m_order.begin() + static_cast<std::ptrdiff_t>(sorted),
                          m_order.begin() + static_cast<std::ptrdiff_t>(k), m_order.end(), byWeight);
        sorted = k;
    };
    constexpr size_t kFirstSort = 64;
    auto sortedAt = [&](size_t i) {  // the i-th heaviest id; the sorted prefix grows 4× at a time
        if (i >= sorted) {
            size_t want = std::max({i + 1, kFirstSort, 4 * sorted});
            if (i < firstTier) want = std::min(want, firstTier);  // the rest only when the walk gets there
            sortTo(want);
        }
        return m_order[i];
    };
    size_t kept = n;  // the filters keep the `kept` heaviest ids (sorted when something walks them)
    auto keepFirst = [&](size_t k) { kept = std::min(kept, k); };

    if (m_params.topK > 0 && static_cast<size_t>(m_params.topK) < n) keepFirst(static_cast<size_t>(m_params.topK));
    if (m_params.topP < 1.0) {
        // The smallest head whose weight reaches top_p of the total (at least one id).
        const double target = m_params.topP * totalWeight;
        double mass = 0.0;
        size_t cut = 0;
        while (cut < kept) {
            mass += m_work[sortedAt(cut)];
            ++cut;
            if (mass >= target) break;
        }
        keepFirst(std::max<size_t>(cut, 1));
    }
    if (m_params.minP > 0.0) {
        // min_p of the top id's weight, which is 1.
        const double threshold = m_params.minP;
        size_t cut = 1;
        while (cut < kept && m_work[sortedAt(cut)] >= threshold) ++cut;
        keepFirst(cut);
    }
    // The weight of the kept ids, added in sampling order where a filter cut the list (as the draw
    // walks them); over the whole unfiltered vocabulary it is the total from above.
    double total = totalWeight;
    if (kept < n) {
        total = 0.0;
        for (size_t i = 0; i < kept; ++i) total += m_work[sortedAt(i)];
    }
    double u = uniform01(m_rng) * total;
    for (size_t i = 0; i < kept; ++i) {
        const int32_t id = sortedAt(i);
        u -= m_work[id];
        if (u < 0.0) return id;
    }
    return sortedAt(kept - 1);  // rounding left a sliver of weight
}

}  // namespace dsv2
