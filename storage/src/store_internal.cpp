#include "store_internal.h"

#include "token_codec.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <random>
#include <unordered_map>

namespace dsv2::storage::detail {

TimestampMs nowMs() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string newUuid() {
    static thread_local std::mt19937_64 rng{
        std::random_device{}() ^
        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())};
    std::uint64_t hi = rng();
    std::uint64_t lo = rng();
    hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
    lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 1
    return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48,
                       lo & 0xffffffffffffULL);
}

std::string jsonToText(const nlohmann::json& value) {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json jsonFromText(const std::string& text) {
    auto value = nlohmann::json::parse(text, nullptr, false);
    if (value.is_discarded()) {
        spdlog::warn("storage: a stored JSON value is unreadable and was replaced by {{}}: {:.80}", text);
        return nlohmann::json::object();
    }
    return value;
}

namespace {

constexpr const char* kConversationColumns =
    "SELECT id, uuid, title, created_at, updated_at, model_dir, model_name, system_prompt, sampling_json, "
    "settings_json, active_root_id, deleted_at FROM conversations ";

Conversation readConversation(const Statement& st) {
    Conversation c;
    c.id = st.columnInt(0);
    c.uuid = st.columnText(1);
    c.meta.title = st.columnText(2);
    c.createdAt = st.columnInt(3);
    c.updatedAt = st.columnInt(4);
    c.meta.modelDir = st.columnText(5);
    c.meta.modelName = st.columnText(6);
    c.meta.systemPrompt = st.columnText(7);
    c.meta.sampling = jsonFromText(st.columnText(8));
    c.meta.settings = jsonFromText(st.columnText(9));
    c.activeRootId = st.columnOptionalInt(10);
    c.deletedAt = st.columnOptionalInt(11);
    return c;
}

constexpr const char* kMessageColumns =
    "SELECT m.id, m.conversation_id, m.parent_id, m.active_child_id, m.role, m.content, m.status, m.error_text, "
    "m.created_at, m.updated_at, s.message_id, s.prompt_tokens, s.generated_tokens, s.tokens_per_second, "
    "s.time_to_first_token_ms, s.total_ms, s.stop_reason, s.backend, s.extra_json, "
    "(SELECT COALESCE(SUM(t.token_count), 0) FROM token_chunks t WHERE t.message_id = m.id) "
    "FROM messages m LEFT JOIN generation_stats s ON s.message_id = m.id ";

Message readMessage(const Statement& st) {
    Message m;
    m.id = st.columnInt(0);
    m.conversationId = st.columnInt(1);
    m.parentId = st.columnOptionalInt(2);
    m.activeChildId = st.columnOptionalInt(3);
    m.role = roleFromName(st.columnText(4)).value_or(Role::User);
    m.content = st.columnText(5);
    m.status = messageStatusFromName(st.columnText(6)).value_or(MessageStatus::Complete);
    m.errorText = st.columnText(7);
    m.createdAt = st.columnInt(8);
    m.updatedAt = st.columnInt(9);
    if (!st.isNull(10)) {
        GenerationStats s;
        s.promptTokens = st.columnInt(11);
        s.generatedTokens = st.columnInt(12);
        s.tokensPerSecond = st.columnDouble(13);
        s.timeToFirstTokenMs = st.columnDouble(14);
        s.totalMs = st.columnDouble(15);
        s.stopReason = st.columnText(16);
        s.backend = st.columnText(17);
        s.extra = jsonFromText(st.columnText(18));
        m.stats = std::move(s);
    }
    m.tokenCount = st.columnInt(19);
    return m;
}

}  // namespace

std::optional<Conversation> findConversation(Database& db, ConversationId id) {
    Statement st(db, std::string(kConversationColumns) + "WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) return std::nullopt;
    return readConversation(st);
}

Conversation loadConversation(Database& db, ConversationId id) {
    auto c = findConversation(db, id);
    if (!c) {
        throwError(ErrorCode::NotFound,
                   fmt::format("conversation {} does not exist in {} (`dsv2 history list` shows the ids)", id,
                               db.file().string()));
    }
    return std::move(*c);
}

Message loadMessage(Database& db, MessageId id) {
    Statement st(db, std::string(kMessageColumns) + "WHERE m.id = ?");
    st.bind(1, id);
    if (!st.step()) {
        throwError(ErrorCode::NotFound, fmt::format("message {} does not exist in {}", id, db.file().string()));
    }
    return readMessage(st);
}

std::vector<Message> loadMessages(Database& db, ConversationId conversation) {
    Statement st(db, std::string(kMessageColumns) + "WHERE m.conversation_id = ? ORDER BY m.id");
    st.bind(1, conversation);
    std::vector<Message> out;
    while (st.step()) out.push_back(readMessage(st));
    return out;
}

std::vector<TokenRecord> loadTokens(Database& db, MessageId message) {
    Statement st(db, "SELECT data FROM token_chunks WHERE message_id = ? ORDER BY seq");
    st.bind(1, message);
    std::vector<TokenRecord> out;
    while (st.step()) {
        const auto blob = st.columnBlob(0);
        auto part = decodeTokenRecords(blob);
        out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
    }
    return out;
}

std::optional<PromptRouting> loadPromptRouting(Database& db, MessageId message) {
    Statement st(db, "SELECT first_position, prompt_tokens, text, data FROM prompt_routing WHERE message_id = ?");
    st.bind(1, message);
    if (!st.step()) return std::nullopt;
    PromptRouting r;
    r.firstPosition = st.columnInt(0);
    r.promptTokens = st.columnInt(1);
    const std::vector<std::uint8_t> text = st.columnBlob(2);
    r.text.assign(text.begin(), text.end());
    r.records = decodeTokenRecords(st.columnBlob(3));
    return r;
}

void insertPromptRouting(Database& db, MessageId message, const PromptRouting& routing) {
    Statement insert(db,
                     "INSERT OR REPLACE INTO prompt_routing(message_id, first_position, prompt_tokens, text, data) "
                     "VALUES (?, ?, ?, ?, ?)");
    insert.bind(1, message)
        .bind(2, routing.firstPosition)
        .bind(3, routing.promptTokens)
        .bindBlob(4, std::vector<std::uint8_t>(routing.text.begin(), routing.text.end()))
        .bindBlob(5, encodeTokenRecords(routing.records))
        .run();
}

std::vector<Message> activePathOf(const Conversation& conversation, const std::vector<Message>& all) {
    std::unordered_map<MessageId, std::size_t> index;
    for (std::size_t i = 0; i < all.size(); ++i) index.emplace(all[i].id, i);
    std::optional<MessageId> next = conversation.activeRootId;
    if (!next || !index.count(*next)) {
        next.reset();
        for (auto it = all.rbegin(); it != all.rend(); ++it) {
            if (!it->parentId) {
                next = it->id;
                break;
            }
        }
    }
    std::vector<Message> path;
    while (next) {
        const auto found = index.find(*next);
        if (found == index.end() || path.size() > all.size()) break;  // dangling pointer or a cycle
        const Message& m = all[found->second];
        path.push_back(m);
        next = m.activeChildId;
    }
    return path;
}

void makeActive(Database& db, MessageId message) {
    // One query for the whole ancestor chain (with each parent's current choice), then writes only
    // where a link changes: appending to the active leaf of a long conversation costs one UPDATE.
    Statement chain(db,
                    "WITH RECURSIVE up(id, parent_id, depth) AS ("
                    " SELECT id, parent_id, 0 FROM messages WHERE id = ?1"
                    " UNION ALL SELECT m.id, m.parent_id, up.depth + 1 FROM messages m JOIN up ON m.id = up.parent_id"
                    " WHERE up.depth < 1000000)"
                    " SELECT up.id, up.parent_id, p.active_child_id, m.conversation_id FROM up"
                    " JOIN messages m ON m.id = up.id LEFT JOIN messages p ON p.id = up.parent_id ORDER BY up.depth");
    chain.bind(1, message);
    std::vector<std::pair<MessageId, MessageId>> links;  // (parent, child) to set
    std::optional<MessageId> root;
    ConversationId conversation = 0;
    bool found = false;
    while (chain.step()) {
        found = true;
        const MessageId id = chain.columnInt(0);
        conversation = chain.columnInt(3);
        const auto parent = chain.columnOptionalInt(1);
        if (!parent) {
            root = id;
            break;
        }
        if (chain.columnOptionalInt(2) != id) links.emplace_back(*parent, id);
    }
    if (!found)
        throwError(ErrorCode::NotFound, fmt::format("message {} does not exist in {}", message, db.file().string()));
    if (!root) throwError(ErrorCode::Corrupt, fmt::format("message {} has no first message above it", message));
    if (!links.empty()) {
        Statement setChild(db, "UPDATE messages SET active_child_id = ? WHERE id = ?");
        for (const auto& [parent, child] : links) {
            setChild.reset();
            setChild.bind(1, child).bind(2, parent).run();
        }
    }
    Statement setRoot(db, "UPDATE conversations SET active_root_id = ?1 WHERE id = ?2 AND active_root_id IS NOT ?1");
    setRoot.bind(1, *root).bind(2, conversation).run();
}

void touchConversation(Database& db, ConversationId id, TimestampMs now) {
    Statement st(db, "UPDATE conversations SET updated_at = MAX(updated_at, ?) WHERE id = ?");
    st.bind(1, now).bind(2, id).run();
}

void insertStats(Database& db, MessageId message, const GenerationStats& s) {
    Statement st(db,
                 "INSERT OR REPLACE INTO generation_stats(message_id, prompt_tokens, generated_tokens, "
                 "tokens_per_second, time_to_first_token_ms, total_ms, stop_reason, backend, extra_json) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    st.bind(1, message)
        .bind(2, s.promptTokens)
        .bind(3, s.generatedTokens)
        .bind(4, s.tokensPerSecond)
        .bind(5, s.timeToFirstTokenMs)
        .bind(6, s.totalMs)
        .bind(7, s.stopReason)
        .bind(8, s.backend)
        .bind(9, jsonToText(s.extra.is_null() ? nlohmann::json::object() : s.extra))
        .run();
}

bool isValidUtf8(std::string_view text) {
    std::size_t i = 0;
    const std::size_t n = text.size();
    while (i < n) {
        const auto c = static_cast<unsigned char>(text[i]);
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) return false;
        for (std::size_t k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(text[i + k]);
            if ((cc & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += len;
    }
    return true;
}

std::size_t utf8SafePrefix(std::string_view text) {
    const std::size_t n = text.size();
    // Find the start of the last character (at most 3 continuation bytes back).
    for (std::size_t back = 1; back <= 4 && back <= n; ++back) {
        const auto c = static_cast<unsigned char>(text[n - back]);
        if ((c & 0xc0) == 0x80) continue;  // continuation byte
        std::size_t need = 1;
        if ((c & 0xe0) == 0xc0)
            need = 2;
        else if ((c & 0xf0) == 0xe0)
            need = 3;
        else if ((c & 0xf8) == 0xf0)
            need = 4;
        return back < need ? n - back : n;
    }
    return n;  // not UTF-8 at all: nothing to wait for
}

}  // namespace dsv2::storage::detail
