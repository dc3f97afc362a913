#pragma once
// Row-level helpers shared by the ConversationStore methods, the writer, export and import. They
// work on a Database whose connection lock the caller holds, and throw StorageException.

#include "dsv2/storage/types.h"
#include "sqlite_db.h"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsv2::storage::detail {

TimestampMs nowMs();
std::string newUuid();  // random (version 4)

Conversation loadConversation(Database& db, ConversationId id);  // NotFound when missing
std::optional<Conversation> findConversation(Database& db, ConversationId id);
Message loadMessage(Database& db, MessageId id);  // NotFound when missing
// Every message of a conversation in creation (id) order, with stats.
std::vector<Message> loadMessages(Database& db, ConversationId conversation);
std::vector<TokenRecord> loadTokens(Database& db, MessageId message);
// The routing of the prompt tokens an answer stored (schema v4); none for most messages.
std::optional<PromptRouting> loadPromptRouting(Database& db, MessageId message);
void insertPromptRouting(Database& db, MessageId message, const PromptRouting& routing);
// Walks the remembered active children from the active root (falls back to the newest root).
std::vector<Message> activePathOf(const Conversation& conversation, const std::vector<Message>& all);

// Points every ancestor of `message` (and the conversation's root pointer) along the branch.
void makeActive(Database& db, MessageId message);
// Refuses a new message in a trashed conversation or under a parent of another conversation.
void checkAppendTarget(Database& db, ConversationId conversation, std::optional<MessageId> parent);
void touchConversation(Database& db, ConversationId id, TimestampMs now);
void insertStats(Database& db, MessageId message, const GenerationStats& stats);

// SQLite online backup of `source` into a new file (removed again on failure).
void onlineBackup(Database& source, const std::filesystem::path& destination);

// JSON columns: written with sorted keys (deterministic), read leniently (bad text -> {}).
std::string jsonToText(const nlohmann::json& value);
nlohmann::json jsonFromText(const std::string& text);

// User search text -> FTS5 query (see store_search.cpp); empty when nothing is searchable.
std::string ftsQueryFromUserText(std::string_view text);

bool isValidUtf8(std::string_view text);
// Length of the longest prefix that does not end inside a UTF-8 sequence.
std::size_t utf8SafePrefix(std::string_view text);

}  // namespace dsv2::storage::detail
