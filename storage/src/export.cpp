// ConversationStore::exportConversations / exportToFile, and the wording shared by the formats.
#include "dsv2/storage/conversation_store.h"

#include "connection.h"
#include "export_writers.h"
#include "store_internal.h"

#include <fmt/format.h>

#include <ctime>
#include <fstream>
#include <map>
#include <ostream>

namespace dsv2::storage {

using namespace detail;

namespace detail {

std::string formatLocalTime(TimestampMs ms) {
    const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    localtime_r(&seconds, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
    return buf;
}

std::string displayTitle(const Conversation& conversation) {
    return conversation.meta.title.empty() ? std::string("Untitled conversation") : conversation.meta.title;
}

std::string roleLabel(Role role) {
    switch (role) {
    case Role::System: return "System";
    case Role::User: return "User";
    case Role::Assistant: return "Assistant";
    }
    return "User";
}

std::string statsLine(const GenerationStats& s) {
    std::string line = fmt::format("{} tokens · {:.1f} tok/s", s.generatedTokens, s.tokensPerSecond);
    if (s.timeToFirstTokenMs > 0) line += fmt::format(" · first token {:.0f} ms", s.timeToFirstTokenMs);
    if (!s.stopReason.empty()) line += " · stop: " + s.stopReason;
    if (!s.backend.empty()) line += " · " + s.backend;
    return line;
}

int branchPoints(const std::vector<Message>& messages) {
    std::map<std::optional<MessageId>, int> children;
    for (const auto& m : messages) ++children[m.parentId];
    int points = 0;
    for (const auto& [parent, count] : children) points += count > 1 ? 1 : 0;
    return points;
}

}  // namespace detail

Expected<void> ConversationStore::exportConversations(const std::vector<ConversationId>& ids, ExportFormat format,
                                                      std::ostream& out) {
    return guarded(*m_conn, "exporting", [&] {
        Database& db = m_conn->db;
        ReadSnapshot snapshot(db);
        std::vector<Conversation> conversations;
        if (ids.empty()) {
            // Creation order with the uuid as tie-break: the same order after an import, which keeps
            // export -> import -> export identical.
            Statement st(db, "SELECT id FROM conversations WHERE deleted_at IS NULL ORDER BY created_at, uuid");
            std::vector<ConversationId> all;
            while (st.step()) all.push_back(st.columnInt(0));
            for (auto id : all) conversations.push_back(loadConversation(db, id));
        } else {
            for (auto id : ids) conversations.push_back(loadConversation(db, id));
        }
        std::unique_ptr<ExportWriter> writer;
        switch (format) {
        case ExportFormat::Json: writer = makeJsonWriter(); break;
        case ExportFormat::Markdown: writer = makeMarkdownWriter(); break;
        case ExportFormat::Text: writer = makeTextWriter(); break;
        case ExportFormat::Html: writer = makeHtmlWriter(); break;
        }
        writer->begin(out, conversations);
        for (std::size_t i = 0; i < conversations.size(); ++i) {
            ExportItem item;
            item.conversation = conversations[i];
            item.messages = loadMessages(db, item.conversation.id);
            item.path = activePathOf(item.conversation, item.messages);
            item.db = &db;
            writer->conversation(out, item, i);
        }
        writer->end(out);
        out.flush();
        if (!out) throwError(ErrorCode::Io, "the export could not be written (disk full?)");
    });
}

Expected<void> ConversationStore::exportToFile(const std::vector<ConversationId>& ids, ExportFormat format,
                                               const std::filesystem::path& file) {
    // Written to a temporary name and renamed at the end, so a failed export never leaves half a file
    // where a good one was.
    auto temporary = file;
    temporary += ".partial";
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        if (!out) {
            return Error(ErrorCode::Io,
                         fmt::format("cannot write {}: check that the folder exists and is writable", file.string()));
        }
        auto result = exportConversations(ids, format, out);
        out.close();
        if (!result || !out) {
            std::error_code ec;
            std::filesystem::remove(temporary, ec);
            if (!result) return result;
            return Error(ErrorCode::Io, fmt::format("cannot write {} (disk full?)", file.string()));
        }
    }
    std::error_code ec;
    std::filesystem::rename(temporary, file, ec);
    if (ec) {
        std::filesystem::remove(temporary, ec);
        return Error(ErrorCode::Io, fmt::format("cannot create {}: {}", file.string(), ec.message()));
    }
    return {};
}

}  // namespace dsv2::storage
