// Importing a JSON export: validated first, then written in one transaction (all or nothing).
// Conversations whose uuid is already present are skipped, so importing the same file twice adds
// nothing. Token records are re-batched; the export flattens them, so a round trip is identical.
#include "dsv2/storage/conversation_store.h"

#include "connection.h"
#include "json_codec.h"
#include "store_internal.h"
#include "token_codec.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <istream>
#include <sstream>
#include <unordered_map>

namespace dsv2::storage {

using namespace detail;

namespace {

constexpr std::size_t kImportBatchTokens = 1024;

struct ImportedMessage {
    std::int64_t ordinal = 0;
    std::optional<std::int64_t> parent;
    std::optional<std::int64_t> activeChild;
    Role role = Role::User;
    MessageStatus status = MessageStatus::Complete;
    TimestampMs createdAt = 0;
    TimestampMs updatedAt = 0;
    std::string content;
    std::string errorText;
    std::optional<GenerationStats> stats;
    std::vector<TokenRecord> tokens;
    std::optional<PromptRouting> promptRouting;
};

struct ImportedConversation {
    std::string uuid;
    ConversationMeta meta;
    TimestampMs createdAt = 0;
    TimestampMs updatedAt = 0;
    std::optional<std::int64_t> activeRoot;
    std::vector<ImportedMessage> messages;
};

std::optional<std::int64_t> optionalRef(const nlohmann::json& object, const char* key, const std::string& what) {
    if (!object.contains(key) || object[key].is_null()) return std::nullopt;
    return intFromJson(object[key], what + "." + key);
}

ImportedConversation parseConversation(const nlohmann::json& v, const std::string& what) {
    if (!v.is_object()) throwError(ErrorCode::InvalidData, what + " is not an object");
    ImportedConversation c;
    c.uuid = textFromJson(requireField(v, "uuid", what), what + ".uuid");
    if (c.uuid.empty()) throwError(ErrorCode::InvalidData, what + " has an empty uuid");
    c.meta.title = textFromJson(v.value("title", nlohmann::json("")), what + ".title");
    c.createdAt = intFromJson(requireField(v, "createdAt", what), what + ".createdAt");
    c.updatedAt = intFromJson(requireField(v, "updatedAt", what), what + ".updatedAt");
    c.meta.modelDir = textFromJson(v.value("modelDir", nlohmann::json("")), what + ".modelDir");
    c.meta.modelName = textFromJson(v.value("modelName", nlohmann::json("")), what + ".modelName");
    c.meta.systemPrompt = textFromJson(v.value("systemPrompt", nlohmann::json("")), what + ".systemPrompt");
    c.meta.sampling = v.value("sampling", nlohmann::json::object());
    c.meta.settings = v.value("settings", nlohmann::json::object());
    c.activeRoot = optionalRef(v, "activeRoot", what);

    const auto& messages = requireField(v, "messages", what);
    if (!messages.is_array()) throwError(ErrorCode::InvalidData, what + ".messages is not a list");
    std::unordered_map<std::int64_t, std::size_t> seen;  // ordinal -> index
    for (std::size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        const std::string mwhat = fmt::format("{}, message {}", what, i + 1);
        if (!m.is_object()) throwError(ErrorCode::InvalidData, mwhat + " is not an object");
        ImportedMessage out;
        out.ordinal = intFromJson(requireField(m, "id", mwhat), mwhat + ".id");
        if (seen.count(out.ordinal))
            throwError(ErrorCode::InvalidData, fmt::format("{}: id {} is used twice", mwhat, out.ordinal));
        out.parent = optionalRef(m, "parent", mwhat);
        if (out.parent && !seen.count(*out.parent)) {
            throwError(ErrorCode::InvalidData,
                       fmt::format("{}: its parent {} does not come before it", mwhat, *out.parent));
        }
        out.activeChild = optionalRef(m, "activeChild", mwhat);
        const auto roleText = textFromJson(requireField(m, "role", mwhat), mwhat + ".role");
        const auto role = roleFromName(roleText);
        if (!role) throwError(ErrorCode::InvalidData, fmt::format("{}: unknown role \"{}\"", mwhat, roleText));
        out.role = *role;
        const auto statusText = textFromJson(m.value("status", nlohmann::json("complete")), mwhat + ".status");
        const auto status = messageStatusFromName(statusText);
        if (!status) throwError(ErrorCode::InvalidData, fmt::format("{}: unknown status \"{}\"", mwhat, statusText));
        // Nobody is writing an imported answer any more.
        out.status = *status == MessageStatus::Streaming ? MessageStatus::Interrupted : *status;
        out.createdAt = intFromJson(requireField(m, "createdAt", mwhat), mwhat + ".createdAt");
        out.updatedAt = intFromJson(requireField(m, "updatedAt", mwhat), mwhat + ".updatedAt");
        out.content = textFromJson(requireField(m, "content", mwhat), mwhat + ".content");
        if (m.contains("errorText")) out.errorText = textFromJson(m["errorText"], mwhat + ".errorText");
        if (m.contains("stats")) out.stats = statsFromJson(m["stats"], mwhat + ".stats");
        if (m.contains("tokens")) {
            const auto& tokens = m["tokens"];
            if (!tokens.is_array()) throwError(ErrorCode::InvalidData, mwhat + ".tokens is not a list");
            out.tokens.reserve(tokens.size());
            for (std::size_t t = 0; t < tokens.size(); ++t) {
                out.tokens.push_back(tokenFromJson(tokens[t], fmt::format("{}, token {}", mwhat, t + 1)));
            }
        }
        if (m.contains("promptRouting")) {
            out.promptRouting = promptRoutingFromJson(m["promptRouting"], mwhat + ".promptRouting");
        }
        seen.emplace(out.ordinal, i);
        c.messages.push_back(std::move(out));
    }
    // Active pointers must point at a child (or a root) of this conversation.
    for (const auto& m : c.messages) {
        if (!m.activeChild) continue;
        const auto it = seen.find(*m.activeChild);
        if (it == seen.end() || c.messages[it->second].parent != m.ordinal) {
            throwError(ErrorCode::InvalidData, fmt::format("{}, message {}: activeChild {} is not one of its children",
                                                           what, m.ordinal, *m.activeChild));
        }
    }
    if (c.activeRoot) {
        const auto it = seen.find(*c.activeRoot);
        if (it == seen.end() || c.messages[it->second].parent) {
            throwError(ErrorCode::InvalidData,
                       fmt::format("{}: activeRoot {} is not a first message", what, *c.activeRoot));
        }
    }
    return c;
}

ConversationId insertConversation(Database& db, const ImportedConversation& c) {
    Statement conv(
        db,
        "INSERT INTO conversations(uuid, title, created_at, updated_at, model_dir, model_name, system_prompt, "
        "sampling_json, settings_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    conv.bind(1, c.uuid)
        .bind(2, c.meta.title)
        .bind(3, c.createdAt)
        .bind(4, c.updatedAt)
        .bind(5, c.meta.modelDir)
        .bind(6, c.meta.modelName)
        .bind(7, c.meta.systemPrompt)
        .bind(8, jsonToText(c.meta.sampling))
        .bind(9, jsonToText(c.meta.settings))
        .run();
    const ConversationId id = db.lastInsertId();

    Statement msg(db,
                  "INSERT INTO messages(conversation_id, parent_id, role, content, status, error_text, created_at, "
                  "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    Statement chunk(db,
                    "INSERT INTO token_chunks(message_id, seq, first_token, token_count, data) VALUES (?, ?, ?, ?, ?)");
    std::unordered_map<std::int64_t, MessageId> rowOf;
    for (const auto& m : c.messages) {
        msg.reset();
        msg.bind(1, id)
            .bind(2, m.parent ? std::optional<std::int64_t>(rowOf.at(*m.parent)) : std::nullopt)
            .bind(3, roleName(m.role))
            .bind(4, m.content)
            .bind(5, messageStatusName(m.status))
            .bind(6, m.errorText)
            .bind(7, m.createdAt)
            .bind(8, m.updatedAt)
            .run();
        const MessageId row = db.lastInsertId();
        rowOf.emplace(m.ordinal, row);
        if (m.stats) insertStats(db, row, *m.stats);
        if (m.promptRouting) insertPromptRouting(db, row, *m.promptRouting);
        for (std::size_t first = 0, seq = 0; first < m.tokens.size(); first += kImportBatchTokens, ++seq) {
            const std::size_t count = std::min(kImportBatchTokens, m.tokens.size() - first);
            chunk.reset();
            chunk.bind(1, row)
                .bind(2, static_cast<std::int64_t>(seq))
                .bind(3, static_cast<std::int64_t>(first))
                .bind(4, static_cast<std::int64_t>(count))
                .bindBlob(5, encodeTokenRecords(std::span(m.tokens).subspan(first, count)))
                .run();
        }
    }
    Statement child(db, "UPDATE messages SET active_child_id = ? WHERE id = ?");
    for (const auto& m : c.messages) {
        if (!m.activeChild) continue;
        child.reset();
        child.bind(1, rowOf.at(*m.activeChild)).bind(2, rowOf.at(m.ordinal)).run();
    }
    if (c.activeRoot) {
        Statement root(db, "UPDATE conversations SET active_root_id = ? WHERE id = ?");
        root.bind(1, rowOf.at(*c.activeRoot)).bind(2, id).run();
    }
    return id;
}

}  // namespace

Expected<ImportReport> ConversationStore::importJson(std::istream& in, const std::string& sourceName) {
    return guarded(*m_conn, fmt::format("importing {}", sourceName), [&] {
        m_conn->requireWritable();
        // Reading the whole text first is several times faster than parsing from the stream.
        std::string text;
        {
            std::ostringstream buffer;
            buffer << in.rdbuf();
            text = std::move(buffer).str();
        }
        nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
        text = std::string();
        if (doc.is_discarded()) {
            throwError(ErrorCode::InvalidData, "it is not valid JSON (or it was cut short)");
        }
        if (!doc.is_object() || doc.value("format", "") != kExchangeFormat) {
            throwError(
                ErrorCode::InvalidData,
                fmt::format("it is not a dsv2-chat history export (\"format\" must be \"{}\")", kExchangeFormat));
        }
        const auto version = intFromJson(requireField(doc, "version", "the file"), "\"version\"");
        if (version > kExchangeVersion) {
            throwError(ErrorCode::NewerSchema,
                       fmt::format("it was exported by a newer dsv2-chat (format version {}; this build reads up to "
                                   "{}). Update dsv2-chat to import it.",
                                   version, kExchangeVersion));
        }
        const auto& list = requireField(doc, "conversations", "the file");
        if (!list.is_array()) throwError(ErrorCode::InvalidData, "\"conversations\" is not a list");
        std::vector<ImportedConversation> parsed;
        parsed.reserve(list.size());
        for (std::size_t i = 0; i < list.size(); ++i) {
            parsed.push_back(parseConversation(list[i], fmt::format("conversation {}", i + 1)));
        }
        doc = nullptr;  // the parsed form is all we need now

        Database& db = m_conn->db;
        ImportReport report;
        Transaction tx(db);
        Statement exists(db, "SELECT 1 FROM conversations WHERE uuid = ?");
        for (const auto& c : parsed) {
            exists.reset();
            exists.bind(1, c.uuid);
            if (exists.step()) {
                ++report.conversationsSkipped;
                continue;
            }
            report.importedIds.push_back(insertConversation(db, c));
            ++report.conversationsImported;
            report.messagesImported += static_cast<std::int64_t>(c.messages.size());
        }
        tx.commit();
        spdlog::info("storage: imported {} conversation(s) ({} messages) from {}; {} already present",
                     report.conversationsImported, report.messagesImported, sourceName, report.conversationsSkipped);
        return report;
    });
}

Expected<ImportReport> ConversationStore::importJsonFile(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
        return Error(ErrorCode::NotFound,
                     fmt::format("cannot read {}: no such file, or permission denied", file.string()));
    return importJson(in, file.string());
}

}  // namespace dsv2::storage
