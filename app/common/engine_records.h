#pragma once
// Engine events → storage records: the one mapping that dsv2-chat and `dsv2 chat --db` both use,
// so a conversation stored by the terminal reads back exactly like one stored by the window.
// No Qt here.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dsv2/engine.h"
#include "dsv2/storage/types.h"

namespace dsv2::app {

// Routing (per MoE layer, top-k ids and weights), the chosen token's logprob and its alternatives.
storage::TokenRecord toTokenRecord(const TokenEvent& token, const ModelInfo& info);

// Where this turn's own prompt starts in `promptTokens` (the rendered messages): after the
// rendering of the history before the last user message, when that is a prefix of it; 0 for a
// first turn (no assistant message yet) or when the template does not render the history as a
// prefix. Tokens before it were stored with the earlier answers.
std::size_t turnPromptStart(const Engine& engine, const std::vector<ChatTurn>& messages,
                            const std::vector<std::int32_t>& promptTokens);

// The routing of prompt positions [firstPosition, routing.size()) as stored with the answer:
// token ids from `promptTokens`, texts from the tokenizer, no logprobs.
storage::PromptRouting toPromptRouting(const Engine& engine, const std::vector<std::int32_t>& promptTokens,
                                       const std::vector<TokenRouting>& routing, std::size_t firstPosition);

storage::GenerationStats toStorageStats(const GenerationStats& stats, StopReason reason, const std::string& backend);

// The sampling parameters a conversation was run with, as stored in ConversationMeta::sampling
// (the keys the GUI's settings use).
nlohmann::json samplingToJson(const GenerateParams& params);

// A conversation title from the first prompt: its first non-empty line, Markdown decoration
// dropped, cut at a word boundary near 60 characters.
std::string autoTitle(const std::string& prompt);

}  // namespace dsv2::app
