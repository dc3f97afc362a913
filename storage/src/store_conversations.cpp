// Conversations: create, read, list, update, trash (soft delete), restore, purge; settings.
#include "dsv2/storage/conversation_store.h"

#include "connection.h"
#include "store_internal.h"

#include <fmt/format.h>

#include <limits>

namespace dsv2::storage {

using namespace detail;

Expected<ConversationId> ConversationStore::createConversation(const ConversationMeta& meta) {
    return guarded(*m_conn, "creating a conversation", [&] {
        m_conn->requireWritable();
        Database& db = m_conn->db;
        const auto now = nowMs();
        Statement st(db,
                     "INSERT INTO conversations(uuid, title, created_at, updated_at, model_dir, model_name, "
                     "system_prompt, sampling_json, settings_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
        st.bind(1, newUuid())
            .bind(2, meta.title)
            .bind(3, now)
            .bind(4, now)
            .bind(5, meta.modelDir)
            .bind(6, meta.modelName)
            .bind(7, meta.systemPrompt)
            .bind(8, jsonToText(meta.sampling.is_null() ? nlohmann::json::object() : meta.sampling))
            .bind(9, jsonToText(meta.settings.is_null() ? nlohmann::json::object() : meta.settings))
            .run();
        return ConversationId{db.lastInsertId()};
    });
}

Expected<Conversation> ConversationStore::conversation(ConversationId id) {
    return guarded(*m_conn, {}, [&] { return loadConversation(m_conn->db, id); });
}

Expected<std::optional<ConversationId>> ConversationStore::findConversationByUuid(const std::string& uuid) {
    return guarded(*m_conn, {}, [&]() -> std::optional<ConversationId> {
        Statement st(m_conn->db, "SELECT id FROM conversations WHERE uuid = ?");
        st.bind(1, uuid);
        if (!st.step()) return std::nullopt;
        return st.columnInt(0);
    });
}

Expected<std::vector<ConversationSummary>> ConversationStore::listConversations(const ListOptions& options) {
    return guarded(*m_conn, "listing conversations", [&] {
        std::string where;
        if (options.onlyDeleted) {
            where = "WHERE c.deleted_at IS NOT NULL ";
        } else if (!options.includeDeleted) {
            where = "WHERE c.deleted_at IS NULL ";
        }
        Statement st(m_conn->db,
                     "SELECT c.id, c.title, c.model_name, c.created_at, c.updated_at, "
                     "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id), c.deleted_at "
                     "FROM conversations c " +
                         where + "ORDER BY c.updated_at DESC, c.id DESC LIMIT ? OFFSET ?");
        st.bind(1, std::int64_t{options.limit}).bind(2, std::int64_t{options.offset});
        std::vector<ConversationSummary> out;
        while (st.step()) {
            ConversationSummary s;
            s.id = st.columnInt(0);
            s.title = st.columnText(1);
            s.modelName = st.columnText(2);
            s.createdAt = st.columnInt(3);
            s.updatedAt = st.columnInt(4);
            s.messageCount = static_cast<int>(st.columnInt(5));
            s.deletedAt = st.columnOptionalInt(6);
            out.push_back(std::move(s));
        }
        return out;
    });
}

Expected<std::optional<ConversationId>> ConversationStore::lastConversation() {
    return guarded(*m_conn, {}, [&]() -> std::optional<ConversationId> {
        Statement st(m_conn->db,
                     "SELECT id FROM conversations WHERE deleted_at IS NULL ORDER BY updated_at DESC, id DESC LIMIT 1");
        if (!st.step()) return std::nullopt;
        return st.columnInt(0);
    });
}

Expected<void> ConversationStore::updateConversationMeta(ConversationId id, const ConversationMeta& meta) {
    return guarded(*m_conn, fmt::format("updating conversation {}", id), [&] {
        m_conn->requireWritable();
        Database& db = m_conn->db;
        loadConversation(db, id);
        Statement st(db,
                     "UPDATE conversations SET title = ?, model_dir = ?, model_name = ?, system_prompt = ?, "
                     "sampling_json = ?, settings_json = ?, updated_at = MAX(updated_at, ?) WHERE id = ?");
        st.bind(1, meta.title)
            .bind(2, meta.modelDir)
            .bind(3, meta.modelName)
            .bind(4, meta.systemPrompt)
            .bind(5, jsonToText(meta.sampling.is_null() ? nlohmann::json::object() : meta.sampling))
            .bind(6, jsonToText(meta.settings.is_null() ? nlohmann::json::object() : meta.settings))
            .bind(7, nowMs())
            .bind(8, id)
            .run();
    });
}

Expected<void> ConversationStore::renameConversation(ConversationId id, const std::string& title) {
    return guarded(*m_conn, fmt::format("renaming conversation {}", id), [&] {
        m_conn->requireWritable();
        Database& db = m_conn->db;
        loadConversation(db, id);
        Statement st(db, "UPDATE conversations SET title = ?, updated_at = MAX(updated_at, ?) WHERE id = ?");
        st.bind(1, title).bind(2, nowMs()).bind(3, id).run();
    });
}

Expected<void> ConversationStore::softDeleteConversation(ConversationId id) {
    return guarded(*m_conn, fmt::format("deleting conversation {}", id), [&] {
        m_conn->requireWritable();
        Database& db = m_conn->db;
        loadConversation(db, id);
        Statement st(db, "UPDATE conversations SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL");
        st.bind(1, nowMs()).bind(2, id).run();
    });
}

Expected<void> ConversationStore::restoreConversation(ConversationId id) {
    return guarded(*m_conn, fmt::format("restoring conversation {}", id), [&] {
        m_conn->requireWritable();
        Database& db = m_conn->db;
        loadConversation(db, id);
        Statement st(db, "UPDATE conversations SET deleted_at = NULL WHERE id = ?");
        st.bind(1, id).run();
    });
}

Expected<void> ConversationStore::purgeConversation(ConversationId id) {
    return guarded(*m_conn, fmt::format("purging conversation {}", id), [&] {
        m_conn->requireWritable();
        Database& db = m_conn->db;
        const Conversation c = loadConversation(db, id);
        if (!c.deletedAt) {
            throwError(ErrorCode::InvalidArgument,
                       fmt::format("conversation {} is not in the trash; delete it first (purging cannot be undone)",
                                   id));
        }
        Transaction tx(db);
        // Messages, stats and token records go with it (ON DELETE CASCADE; the FTS triggers follow).
        Statement st(db, "DELETE FROM conversations WHERE id = ?");
        st.bind(1, id).run();
        tx.commit();
    });
}

Expected<int> ConversationStore::purgeDeleted(std::optional<TimestampMs> before) {
    return guarded(*m_conn, "emptying the trash", [&] {
        m_conn->requireWritable();
        Database& db = m_conn->db;
        Transaction tx(db);
        Statement st(db, "DELETE FROM conversations WHERE deleted_at IS NOT NULL AND deleted_at < ?");
        st.bind(1, before.value_or(std::numeric_limits<TimestampMs>::max())).run();
        const int count = db.changes();
        tx.commit();
        return count;
    });
}

// Settings -------------------------------------------------------------------------------------------

Expected<std::optional<std::string>> ConversationStore::setting(const std::string& key) {
    return guarded(*m_conn, {}, [&]() -> std::optional<std::string> {
        Statement st(m_conn->db, "SELECT value FROM settings WHERE key = ?");
        st.bind(1, key);
        if (!st.step()) return std::nullopt;
        return st.columnText(0);
    });
}

Expected<void> ConversationStore::setSetting(const std::string& key, const std::string& value) {
    return guarded(*m_conn, fmt::format("saving setting {}", key), [&] {
        m_conn->requireWritable();
        Statement st(m_conn->db, "INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)");
        st.bind(1, key).bind(2, value).run();
    });
}

Expected<void> ConversationStore::removeSetting(const std::string& key) {
    return guarded(*m_conn, fmt::format("removing setting {}", key), [&] {
        m_conn->requireWritable();
        Statement st(m_conn->db, "DELETE FROM settings WHERE key = ?");
        st.bind(1, key).run();
    });
}

Expected<std::map<std::string, std::string>> ConversationStore::allSettings() {
    return guarded(*m_conn, {}, [&] {
        Statement st(m_conn->db, "SELECT key, value FROM settings ORDER BY key");
        std::map<std::string, std::string> out;
        while (st.step()) out.emplace(st.columnText(0), st.columnText(1));
        return out;
    });
}

}  // namespace dsv2::storage
