#pragma once
// Stored token records → RoutingTable, so that answers from earlier sessions can be inspected after
// a restart. Header-only and Qt-free: the `dsv2 inspect routing` CLI uses it without the ui
// library; whoever includes it links dsv2_storage (the GUI adapter does already).
//
// Prompt tokens: since schema v4 an answer also keeps the routing of the prompt tokens its turn
// added (storage::PromptRouting: the new user message and the template around it; the whole
// prompt for a branch's first answer). They come first, as isPrompt rows, like a live table's.

#include <string>
#include <utility>
#include <vector>

#include "dsv2/storage/conversation_store.h"
#include "dsv2/storage/types.h"
#include "routing_table.h"

namespace dsv2::inspect {

// One stored record as a row; its text is its byte range of the message's content.
inline TokenRow tokenRowFromRecord(const storage::TokenRecord& record, const std::string& content) {
    TokenRow row;
    row.tokenId = record.tokenId;
    row.textOffset = record.textOffset;
    row.textLength = record.textLength;
    if (record.textOffset <= content.size()) {
        row.text = content.substr(record.textOffset, record.textLength);
    }
    row.logprob = record.logprob;
    for (const storage::TopLogprob& a : record.topLogprobs) row.alternatives.push_back({a.tokenId, a.logprob, a.text});
    row.expertIds = record.expertIds;
    row.weights = record.expertWeights;
    return row;
}

// `experts`: the model's routed experts per layer when known (else inferred from the ids).
// The shape is taken from the first record with routing; a record of another shape (which the
// engine never writes) keeps its text and logprobs but loses its routing rather than misdrawing.
inline RoutingTable routingTableFromRecords(const std::vector<storage::TokenRecord>& records, std::string content,
                                            std::int64_t messageId, int experts = 0) {
    RoutingTable table;
    table.messageId = messageId;
    table.experts = experts;
    table.content = std::move(content);
    for (const storage::TokenRecord& r : records) {
        if (r.moeLayers > 0 && r.topK > 0 && !r.expertIds.empty()) {
            table.layers = r.moeLayers;
            table.topK = r.topK;
            break;
        }
    }
    table.rows.reserve(records.size());
    for (const storage::TokenRecord& r : records) {
        TokenRow row = tokenRowFromRecord(r, table.content);
        if (!table.fits(row)) {
            row.expertIds.clear();
            row.weights.clear();
        }
        table.rows.push_back(std::move(row));
    }
    return table;
}

// Prompt records as rows: their text is their byte range of PromptRouting::text.
inline std::vector<TokenRow> promptRowsFromStorage(const storage::PromptRouting& prompt) {
    std::vector<TokenRow> rows;
    rows.reserve(prompt.records.size());
    for (const storage::TokenRecord& r : prompt.records) {
        TokenRow row = tokenRowFromRecord(r, prompt.text);
        row.textOffset = 0;  // answer rows index the answer's content; prompt rows do not
        row.textLength = 0;
        row.logprob.reset();
        row.isPrompt = true;
        rows.push_back(std::move(row));
    }
    return rows;
}

inline storage::Expected<RoutingTable> loadMessageRouting(storage::ConversationStore& store, storage::MessageId id,
                                                          int experts = 0) {
    auto message = store.message(id);
    if (!message) return message.error();
    auto records = store.tokens(id);
    if (!records) return records.error();
    auto prompt = store.promptRouting(id);
    if (!prompt) return prompt.error();
    RoutingTable table = routingTableFromRecords(*records, message->content, id, experts);
    if (*prompt && !(*prompt)->records.empty()) {
        std::vector<TokenRow> rows = promptRowsFromStorage(**prompt);
        if (table.layers == 0) {  // an answer without routed tokens: the prompt gives the shape
            table.layers = (*prompt)->records.front().moeLayers;
            table.topK = (*prompt)->records.front().topK;
        }
        for (TokenRow& row : rows) {
            if (!table.fits(row)) {
                row.expertIds.clear();
                row.weights.clear();
            }
        }
        table.rows.insert(table.rows.begin(), std::make_move_iterator(rows.begin()),
                          std::make_move_iterator(rows.end()));
    }
    return table;
}

// The stored answers on the conversation's active branch, root first: the whole-conversation load.
inline storage::Expected<std::vector<RoutingTable>> loadConversationRouting(storage::ConversationStore& store,
                                                                            storage::ConversationId conversation,
                                                                            int experts = 0) {
    auto path = store.activePath(conversation);
    if (!path) return path.error();
    std::vector<RoutingTable> tables;
    for (const storage::Message& m : *path) {
        if (m.role != storage::Role::Assistant || m.tokenCount == 0) continue;
        auto table = loadMessageRouting(store, m.id, experts);
        if (!table) return table.error();
        tables.push_back(std::move(table).value());
    }
    return tables;
}

}  // namespace dsv2::inspect
