#pragma once
// Live engine events → inspection rows and cache figures. Header-only so that the ui library stays
// free of the engine: only code that already links dsv2_engine (the GUI adapter in app/gui, tests)
// includes it. The adapter calls these on the engine thread and sends the plain results to the GUI
// thread (RoutingTable/TokenRow/CacheState are copyable values).
//
//   PromptProcessedEvent p  → promptRows(p, promptTokenIds, engine) → model->appendRows(...)
//   TokenEvent t            → tokenRow(t, layers, topK)             → model->appendRows({...})
//   t.cache / p.cache       → cacheState(...)                       → panel->setCacheState(...)

#include <algorithm>
#include <string>
#include <vector>

#include "dsv2/engine.h"
#include "dsv2/events.h"
#include "kv_figures.h"
#include "routing_table.h"

namespace dsv2::inspect {

// The routing of one token as a row; ids are narrowed to the u16 that storage also uses.
inline void fillRouting(TokenRow& row, const dsv2::TokenRouting& routing) {
    row.expertIds.assign(routing.expertIds.begin(), routing.expertIds.end());
    row.weights = routing.weights;
}

// One generated token. Its text is the text it made visible (textDelta), as storage keeps it.
inline TokenRow tokenRow(const dsv2::TokenEvent& event) {
    TokenRow row;
    row.tokenId = event.id;
    row.text = event.textDelta;
    row.logprob = event.logprob;
    for (const dsv2::TokenAlternative& a : event.alternatives) row.alternatives.push_back({a.id, a.logprob, a.text});
    fillRouting(row, event.routing);
    return row;
}

// The prompt's rows (GenerateParams::wantPromptRouting must be set): `promptTokens` are the ids the
// engine ran (GenerateResult::promptTokens, or Engine::renderChat of the same messages); their
// texts come from the tokenizer.
inline std::vector<TokenRow> promptRows(const dsv2::PromptProcessedEvent& event,
                                        const std::vector<std::int32_t>& promptTokens, const dsv2::Engine& engine) {
    std::vector<TokenRow> rows;
    const std::size_t n = std::min(promptTokens.size(), event.routing.size());
    rows.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        TokenRow row;
        row.tokenId = promptTokens[i];
        row.text = engine.tokenText(promptTokens[i]);
        row.isPrompt = true;
        fillRouting(row, event.routing[i]);
        rows.push_back(std::move(row));
    }
    return rows;
}

// The table a live answer starts with: the model's MoE shape.
inline RoutingTable liveTable(const dsv2::ModelInfo& info, std::int64_t messageId) {
    RoutingTable t;
    t.messageId = messageId;
    t.layers = static_cast<int>(info.moeLayers.size());
    t.topK = static_cast<int>(info.expertsPerToken);
    t.experts = static_cast<int>(info.nRoutedExperts);
    t.modelLayers.assign(info.moeLayers.begin(), info.moeLayers.end());
    return t;
}

inline dsv2::ui::CacheState cacheState(const dsv2::CacheUsage& u) {
    dsv2::ui::CacheState s;
    s.tokens = u.tokens;
    s.capacityTokens = u.capacityTokens;
    s.bytesPerToken = u.bytesPerToken;
    s.bytesUsed = u.bytesUsed;
    s.bytesReserved = u.bytesReserved;
    s.bytesCapacity = u.bytesCapacity;
    s.blocksUsed = u.blocksUsed;
    s.blocksCapacity = u.blocksCapacity;
    return s;
}

}  // namespace dsv2::inspect
