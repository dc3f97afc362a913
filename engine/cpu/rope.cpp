#include "cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace dsv2::cpu {
namespace {

// Dimension index (fractional) at which the rotation count over the original context is `rotations`.
double correctionDim(double rotations, int64_t d, double base, double originalMax) {
    return static_cast<double>(d) * std::log(originalMax / (rotations * 2.0 * std::numbers::pi)) /
           (2.0 * std::log(base));
}

}  // namespace

std::vector<float> ropeInvFreq(const ModelConfig& config) {
    const int64_t d = config.qkRopeHeadDim;
    const int64_t half = d / 2;
    const float base = static_cast<float>(config.ropeTheta);
    std::vector<float> invFreq(static_cast<size_t>(half));
    // pos_freq_i = base^(2i/d), all in float32 as torch computes it.
    std::vector<float> posFreq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i)
        posFreq[i] = std::pow(base, static_cast<float>(2 * i) / static_cast<float>(d));
    const RopeScaling& rs = config.ropeScaling;
    if (!rs.yarn) {
        for (int64_t i = 0; i < half; ++i) invFreq[i] = 1.0f / posFreq[i];
        return invFreq;
    }
    const auto factor = static_cast<float>(rs.factor);
    const auto originalMax = static_cast<double>(rs.originalMaxPositionEmbeddings);
    double low = std::floor(correctionDim(rs.betaFast, d, config.ropeTheta, originalMax));
    double high = std::ceil(correctionDim(rs.betaSlow, d, config.ropeTheta, originalMax));
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(d - 1));
    if (low == high) high += 0.001;  // avoid a zero-width ramp
    const auto lowF = static_cast<float>(low);
    const auto spanF = static_cast<float>(high - low);
    for (int64_t i = 0; i < half; ++i) {
        const float extrapolation = 1.0f / posFreq[i];
        const float interpolation = 1.0f / (factor * posFreq[i]);
        const float ramp = std::clamp((static_cast<float>(i) - lowF) / spanF, 0.0f, 1.0f);
        const float extrapolationWeight = 1.0f - ramp;  // 1 for high-frequency dims: kept as is
        invFreq[i] = interpolation * (1.0f - extrapolationWeight) + extrapolation * extrapolationWeight;
    }
    return invFreq;
}

void applyRope(float* x, int64_t d, int64_t position, const float* invFreq, float amplitude) {
    for (int64_t i = 0; i < d / 2; ++i) {
        // The angle is one float32 product, as in the reference (inv_freq ⊗ positions in fp32);
        // cos/sin of it are then evaluated accurately.
        const float angle = invFreq[i] * static_cast<float>(position);
        const float c = static_cast<float>(std::cos(static_cast<double>(angle))) * amplitude;
        const float s = static_cast<float>(std::sin(static_cast<double>(angle))) * amplitude;
        const float re = x[2 * i];
        const float im = x[2 * i + 1];
        x[2 * i] = re * c - im * s;
        x[2 * i + 1] = re * s + im * c;
    }
}

}  // namespace dsv2::cpu
