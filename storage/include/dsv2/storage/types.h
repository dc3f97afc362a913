#pragma once
// Plain records that storage reads and writes. Storage knows nothing of the engine: the app copies
// engine events into these structs. Times are milliseconds since the Unix epoch (UTC).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dsv2::storage {

using ConversationId = std::int64_t;
using MessageId = std::int64_t;
using TimestampMs = std::int64_t;

enum class Role { System, User, Assistant };
const char* roleName(Role role);  // "system", "user", "assistant"
std::optional<Role> roleFromName(std::string_view name);

// complete: written to the end. streaming: a live StreamingWriter owns it. interrupted: its writer
// died (crash, kill, shutdown) and the text stops where the last batch was committed. error: the
// generation failed; the text so far is kept.
enum class MessageStatus { Complete, Streaming, Interrupted, Error };
const char* messageStatusName(MessageStatus status);
std::optional<MessageStatus> messageStatusFromName(std::string_view name);

// What the user chose for a conversation. Sampling and settings are JSON objects so that new engine
// parameters need no schema change (e.g. {"temperature":0.7,"topP":0.95,"seed":42}).
struct ConversationMeta {
    std::string title;
    std::string modelDir;   // the model folder it was run with
    std::string modelName;  // as shown to people ("DeepSeek-V2-Lite-Chat")
    std::string systemPrompt;
    nlohmann::json sampling = nlohmann::json::object();
    nlohmann::json settings = nlohmann::json::object();  // per-conversation UI/app settings
};

struct Conversation {
    ConversationId id = 0;
    std::string uuid;  // stable across export/import; the import key
    ConversationMeta meta;
    TimestampMs createdAt = 0;
    TimestampMs updatedAt = 0;
    std::optional<MessageId> activeRootId;  // the first message of the active branch
    std::optional<TimestampMs> deletedAt;   // set while in the trash (soft delete)
};

struct ConversationSummary {
    ConversationId id = 0;
    std::string title;
    std::string modelName;
    TimestampMs createdAt = 0;
    TimestampMs updatedAt = 0;
    int messageCount = 0;  // every message of the tree, all branches
    std::optional<TimestampMs> deletedAt;
};

// Per assistant message: how the generation went.
struct GenerationStats {
    std::int64_t promptTokens = 0;
    std::int64_t generatedTokens = 0;
    double tokensPerSecond = 0.0;
    double timeToFirstTokenMs = 0.0;
    double totalMs = 0.0;
    std::string stopReason;                           // "eos", "max_tokens", "stop_sequence", "cancelled", "error", ...
    std::string backend;                              // "cuda", "cpu", ...
    nlohmann::json extra = nlohmann::json::object();  // anything else the app wants to keep
};

struct Message {
    MessageId id = 0;
    ConversationId conversationId = 0;
    std::optional<MessageId> parentId;       // nullopt: a root (first message, or an edit of it)
    std::optional<MessageId> activeChildId;  // the child on the active branch, remembered per node
    Role role = Role::User;
    std::string content;
    MessageStatus status = MessageStatus::Complete;
    std::string errorText;  // why status is Error
    TimestampMs createdAt = 0;
    TimestampMs updatedAt = 0;
    std::optional<GenerationStats> stats;  // assistant messages that finished (or failed)
    std::int64_t tokenCount = 0;           // tokens with records (routing/logprobs) stored
};

// One alternative the sampler considered.
struct TopLogprob {
    std::int32_t tokenId = 0;
    float logprob = 0.0f;
    std::string text;  // raw token bytes (may be part of a UTF-8 sequence)

    bool operator==(const TopLogprob&) const = default;
};

// Per generated token: what the inspection views need after a restart. Routing is row-major
// (moeLayers, topK): row i is the i-th MoE layer in model order. Weights are stored as f16.
struct TokenRecord {
    std::int32_t tokenId = -1;
    std::uint32_t textOffset = 0;  // byte range of this token's text in Message::content
    std::uint32_t textLength = 0;  //   (filled by StreamingWriter from the appended text)
    std::optional<float> logprob;  // of the chosen token
    std::vector<TopLogprob> topLogprobs;
    std::uint16_t moeLayers = 0;
    std::uint8_t topK = 0;
    std::vector<std::uint16_t> expertIds;  // (moeLayers, topK)
    std::vector<float> expertWeights;      // (moeLayers, topK)

    bool operator==(const TokenRecord&) const = default;
};

// The routing of an answer's prompt tokens (schema v4). A chat's prompt repeats the whole
// conversation each turn, so an answer keeps only the prompt tokens from `firstPosition` on: what
// this turn added after the previous answer (the new user message and the template around it); the
// first answer of a branch keeps its whole prompt. records[i] is the token at context position
// firstPosition + i; its textOffset/textLength index `text` (the tokens' own text, concatenated),
// and it has no logprob: prompt tokens are given, not sampled.
struct PromptRouting {
    std::int64_t firstPosition = 0;
    std::int64_t promptTokens = 0;  // the whole prompt's length, for context
    std::string text;
    std::vector<TokenRecord> records;

    bool operator==(const PromptRouting&) const = default;
};

struct SearchQuery {
    std::string text;     // words (all must match), "quoted phrases", word* prefixes
    bool rawFts = false;  // text is FTS5 query syntax, passed through as is
    std::optional<ConversationId> conversationId;
    std::optional<TimestampMs> from;   // message created_at >= from
    std::optional<TimestampMs> until;  // message created_at < until
    int limit = 50;
    int offset = 0;
    // bm25 ranks the newest N matches (0: all). Ranking costs ~2 us per match, so a word found in
    // hundreds of thousands of messages would take a second; the newest matches are what people
    // look for in a chat history anyway. Queries with fewer matches are ranked exactly.
    int maxRankedMatches = 10000;
    std::string highlightOpen = "[";
    std::string highlightClose = "]";
    int snippetTokens = 16;
};

struct SearchHit {
    MessageId messageId = 0;
    ConversationId conversationId = 0;
    std::string conversationTitle;
    Role role = Role::User;
    TimestampMs createdAt = 0;
    std::string snippet;  // with highlight markers around matches
    double rank = 0.0;    // bm25: lower is better
};

struct IntegrityReport {
    bool ok = true;
    std::vector<std::string> problems;  // empty when ok
    std::int64_t conversations = 0;
    std::int64_t messages = 0;
    std::int64_t tokenRecords = 0;
    int schemaVersion = 0;
};

struct ImportReport {
    int conversationsImported = 0;
    int conversationsSkipped = 0;  // already present (same uuid)
    std::int64_t messagesImported = 0;
    std::vector<ConversationId> importedIds;
};

}  // namespace dsv2::storage
