#pragma once
// Expert load per MoE layer and how unbalanced it is. Plain maths on a RoutingTable (no Qt), so
// the tests check it on hand-computed cases.
//
// Load of expert e in layer l:
//   Count  = the tokens that have e among their top-k experts in l (each token adds k to a layer);
//   Weight = the sum of the gate weights those tokens gave e (what the expert actually computed).
// Imbalance of a layer with E experts and loads x_e (total X = Σ x_e, mean = X / E):
//   max/mean          = max_e x_e / mean: 1 is perfectly even; with Count it is at most E / k
//                       (every token in the same k experts);
//   normalized entropy = H / ln E with H = -Σ p_e ln p_e, p_e = x_e / X: 1 is even, 0 is one expert.
// Experts that received nothing count in the mean and in E: an unused expert is imbalance.

#include <optional>
#include <vector>

#include "routing_table.h"

namespace dsv2::inspect {

enum class LoadMeasure { Count, Weight };

// Which rows to count.
enum class TokenScope { All, Prompt, Answer };

struct LayerImbalance {
    double total = 0.0;
    double maxOverMean = 0.0;        // 0 when the layer has no load
    double normalizedEntropy = 0.0;  // 0 when the layer has no load
    int busiestExpert = kNoExpert;
};

// (layers, experts) loads, row-major, summed over tokens (and over messages, for a conversation).
class LoadMatrix {
public:
    LoadMatrix() = default;
    LoadMatrix(int layers, int experts);

    int layers() const { return m_layers; }
    int experts() const { return m_experts; }
    int tokens() const { return m_tokens; }
    bool isEmpty() const { return m_tokens == 0; }

    double at(int layer, int expert) const;
    const double* layerData(int layer) const;  // `experts` values

    // Adds the rows [first, last) of `table` that `scope` selects. Ids outside [0, experts) grow
    // the matrix (a model that did not say how many experts it has).
    void add(const RoutingTable& table, LoadMeasure measure, TokenScope scope = TokenScope::All, int first = 0,
             int last = -1);
    void addMatrix(const LoadMatrix& other);
    void clear();

    LayerImbalance imbalance(int layer) const;
    double maxValue() const;

    bool operator==(const LoadMatrix&) const = default;

private:
    void reshape(int layers, int experts);

    int m_layers = 0;
    int m_experts = 0;
    int m_tokens = 0;
    std::vector<double> m_values;  // (layers, experts)
};

// The two figures on plain vectors of loads.
double maxOverMean(const std::vector<double>& loads);
double normalizedEntropy(const std::vector<double>& loads);

// Probability maths for the token inspector. Entropy from the top-N alternatives only: the N known
// probabilities plus everything else as one bucket of mass 1 - Σp. That is a lower bound of the
// entropy of the whole distribution (splitting the rest can only add), in nats.
double entropyLowerBound(const std::vector<float>& logprobs);

}  // namespace dsv2::inspect
