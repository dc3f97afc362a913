#include "load_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace dsv2::inspect {

LoadMatrix::LoadMatrix(int layers, int experts) { reshape(layers, experts); }

void LoadMatrix::reshape(int layers, int experts) {
    layers = std::max(layers, 0);
    experts = std::max(experts, 0);
    if (layers == m_layers && experts == m_experts) return;
    std::vector<double> values(static_cast<std::size_t>(layers) * static_cast<std::size_t>(experts), 0.0);
    for (int l = 0; l < std::min(layers, m_layers); ++l) {
        for (int e = 0; e < std::min(experts, m_experts); ++e) {
            values[static_cast<std::size_t>(l * experts + e)] = m_values[static_cast<std::size_t>(l * m_experts + e)];
        }
    }
    m_values = std::move(values);
    m_layers = layers;
    m_experts = experts;
}

double LoadMatrix::at(int layer, int expert) const {
    if (layer < 0 || layer >= m_layers || expert < 0 || expert >= m_experts) return 0.0;
    return m_values[static_cast<std::size_t>(layer * m_experts + expert)];
}

const double* LoadMatrix::layerData(int layer) const {
    return m_values.data() + static_cast<std::ptrdiff_t>(layer) * m_experts;
}

void LoadMatrix::add(const RoutingTable& table, LoadMeasure measure, TokenScope scope, int first, int last) {
    if (last < 0 || last > table.tokenCount()) last = table.tokenCount();
    first = std::max(first, 0);
    if (first >= last || table.layers <= 0) return;
    reshape(std::max(m_layers, table.layers), std::max(m_experts, table.experts));
    for (int t = first; t < last; ++t) {
        const TokenRow& row = table.rows[static_cast<std::size_t>(t)];
        if (!row.hasRouting() || !table.fits(row)) continue;
        if ((scope == TokenScope::Prompt && !row.isPrompt) || (scope == TokenScope::Answer && row.isPrompt)) continue;
        for (int l = 0; l < table.layers; ++l) {
            for (int k = 0; k < table.topK; ++k) {
                const auto i = static_cast<std::size_t>(l * table.topK + k);
                const int e = row.expertIds[i];
                if (e >= m_experts) reshape(m_layers, e + 1);
                m_values[static_cast<std::size_t>(l * m_experts + e)] +=
                    measure == LoadMeasure::Count ? 1.0 : static_cast<double>(row.weights[i]);
            }
        }
        ++m_tokens;
    }
}

void LoadMatrix::addMatrix(const LoadMatrix& other) {
    reshape(std::max(m_layers, other.m_layers), std::max(m_experts, other.m_experts));
    for (int l = 0; l < other.m_layers; ++l) {
        for (int e = 0; e < other.m_experts; ++e)
            m_values[static_cast<std::size_t>(l * m_experts + e)] += other.at(l, e);
    }
    m_tokens += other.m_tokens;
}

void LoadMatrix::clear() {
    std::fill(m_values.begin(), m_values.end(), 0.0);
    m_tokens = 0;
}

LayerImbalance LoadMatrix::imbalance(int layer) const {
    LayerImbalance out;
    if (layer < 0 || layer >= m_layers || m_experts == 0) return out;
    const std::vector<double> loads(layerData(layer), layerData(layer) + m_experts);
    out.total = std::accumulate(loads.begin(), loads.end(), 0.0);
    out.maxOverMean = maxOverMean(loads);
    out.normalizedEntropy = normalizedEntropy(loads);
    if (out.total > 0)
        out.busiestExpert = static_cast<int>(std::max_element(loads.begin(), loads.end()) - loads.begin());
    return out;
}

double LoadMatrix::maxValue() const {
    return m_values.empty() ? 0.0 : *std::max_element(m_values.begin(), m_values.end());
}

double maxOverMean(const std::vector<double>& loads) {
    if (loads.empty()) return 0.0;
    const double total = std::accumulate(loads.begin(), loads.end(), 0.0);
    if (total <= 0.0) return 0.0;
    const double mean = total / static_cast<double>(loads.size());
    return *std::max_element(loads.begin(), loads.end()) / mean;
}

double normalizedEntropy(const std::vector<double>& loads) {
    if (loads.size() < 2) return 0.0;
    const double total = std::accumulate(loads.begin(), loads.end(), 0.0);
    if (total <= 0.0) return 0.0;
    double h = 0.0;
    for (double x : loads) {
        if (x <= 0.0) continue;
        const double p = x / total;
        h -= p * std::log(p);
    }
    return h / std::log(static_cast<double>(loads.size()));
}

double entropyLowerBound(const std::vector<float>& logprobs) {
    double h = 0.0;
    double mass = 0.0;
    for (float lp : logprobs) {
        if (!std::isfinite(lp)) continue;
        const double p = std::exp(static_cast<double>(lp));
        mass += p;
        h -= p * static_cast<double>(lp);
    }
    const double rest = 1.0 - mass;
    if (rest > 1e-12) h -= rest * std::log(rest);
    return h;
}

}  // namespace dsv2::inspect
