#pragma once
// Engine events → storage records: the one mapping that dsv2-chat and `dsv2 chat --db` both use,
// so a conversation stored by the terminal reads back exactly like one stored by the window.
// No Qt here.

#include <string>

#include "dsv2/engine.h"
#include "dsv2/storage/types.h"

namespace dsv2::app {

// Routing (per MoE layer, top-k ids and weights), the chosen token's logprob and its alternatives.
storage::TokenRecord toTokenRecord(const TokenEvent& token, const ModelInfo& info);

storage::GenerationStats toStorageStats(const GenerationStats& stats, StopReason reason, const std::string& backend);

// The sampling parameters a conversation was run with, as stored in ConversationMeta::sampling
// (the keys the GUI's settings use).
nlohmann::json samplingToJson(const GenerateParams& params);

// A conversation title from the first prompt: its first non-empty line, Markdown decoration
// dropped, cut at a word boundary near 60 characters.
std::string autoTitle(const std::string& prompt);

}  // namespace dsv2::app
