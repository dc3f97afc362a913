#pragma once
// RoutingTable: what the inspection views know about one message, as plain data. No Qt, no engine,
// no storage: the widgets, the tests and the `dsv2 inspect routing` CLI (which has no Qt) share it.
// Rows are tokens in context order (prompt tokens first when they are known, then the answer).
// Per row and MoE layer: the top-k experts in descending weight and the weights they were applied
// with (after norm_topk_prob and routed_scaling_factor), exactly as the engine reported them.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dsv2::inspect {

inline constexpr int kNoExpert = -1;

// One of the top-N tokens the model considered at a position.
struct Alternative {
    std::int32_t tokenId = 0;
    float logprob = 0.0f;
    std::string text;  // the token's own text (may be a partial UTF-8 sequence)

    bool operator==(const Alternative&) const = default;
};

struct TokenRow {
    std::int32_t tokenId = -1;
    std::string text;  // what the token made visible (may be empty: special or held-back text)
    bool isPrompt = false;
    // Answer tokens: the byte range of `text` in RoutingTable::content (how storage keeps it).
    std::uint32_t textOffset = 0;
    std::uint32_t textLength = 0;
    std::optional<float> logprob;           // of the chosen token; none for prompt tokens
    std::vector<Alternative> alternatives;  // most likely first
    std::vector<std::uint16_t> expertIds;   // (layers, topK); empty: no routing recorded
    std::vector<float> weights;             // (layers, topK)

    bool hasRouting() const { return !expertIds.empty(); }
    bool operator==(const TokenRow&) const = default;
};

struct RoutingTable {
    std::int64_t messageId = 0;
    int layers = 0;                         // MoE layers: the heatmap's columns
    int topK = 0;                           // experts per token per layer
    int experts = 0;                        // routed experts per layer; 0: unknown (then inferred from the ids)
    std::vector<std::int32_t> modelLayers;  // model layer index of each MoE layer; empty: unknown
    std::string content;                    // the answer's text; answer rows index into it
    std::vector<TokenRow> rows;

    bool operator==(const RoutingTable&) const = default;

    int tokenCount() const { return static_cast<int>(rows.size()); }
    int promptTokenCount() const {
        int n = 0;
        for (const TokenRow& r : rows) n += r.isPrompt ? 1 : 0;
        return n;
    }
    bool isEmpty() const { return rows.empty(); }

    // A row fits when it has no routing, or exactly layers × topK of it.
    bool fits(const TokenRow& row) const {
        if (!row.hasRouting()) return row.weights.empty();
        const auto cells = static_cast<std::size_t>(layers) * static_cast<std::size_t>(topK);
        return layers > 0 && topK > 0 && row.expertIds.size() == cells && row.weights.size() == cells;
    }

    // Expert / weight at (row, layer, rank); kNoExpert / 0 where nothing was recorded.
    int expertAt(int row, int layer, int rank) const {
        const TokenRow* r = rowAt(row);
        if (!r || !r->hasRouting() || layer < 0 || layer >= layers || rank < 0 || rank >= topK) return kNoExpert;
        return r->expertIds[static_cast<std::size_t>(layer * topK + rank)];
    }
    float weightAt(int row, int layer, int rank) const {
        if (expertAt(row, layer, rank) == kNoExpert) return 0.0f;
        return rows[static_cast<std::size_t>(row)].weights[static_cast<std::size_t>(layer * topK + rank)];
    }
    int top1(int row, int layer) const { return expertAt(row, layer, 0); }
    bool routesTo(int row, int layer, int expert) const {
        for (int k = 0; k < topK; ++k) {
            if (expertAt(row, layer, k) == expert) return true;
        }
        return false;
    }

    // `experts`, or one more than the largest id seen when the model did not say.
    int expertCount() const {
        if (experts > 0) return experts;
        int maxId = -1;
        for (const TokenRow& r : rows) {
            for (std::uint16_t id : r.expertIds) maxId = std::max(maxId, static_cast<int>(id));
        }
        return maxId + 1;
    }
    int modelLayer(int layer) const {
        if (layer >= 0 && layer < static_cast<int>(modelLayers.size()))
            return modelLayers[static_cast<std::size_t>(layer)];
        return layer;
    }

private:
    const TokenRow* rowAt(int row) const {
        if (row < 0 || row >= tokenCount()) return nullptr;
        return &rows[static_cast<std::size_t>(row)];
    }
};

}  // namespace dsv2::inspect
