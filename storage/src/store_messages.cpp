// The message tree: append (a new branch when the parent already has children), edit (a sibling),
// the active path and branch switching.
#include "dsv2/storage/conversation_store.h"

#include "connection.h"
#include "store_internal.h"
#include "token_codec.h"

#include <fmt/format.h>

namespace dsv2::storage {

using namespace detail;

namespace detail {

// Checks that a new message may go under `parent` in `conversation` (shared with the writer).
void checkAppendTarget(Database& db, ConversationId conversation, std::optional<MessageId> parent) {
    const Conversation c = loadConversation(db, conversation);
    if (c.deletedAt) {
        throwError(ErrorCode::InvalidArgument,
                   fmt::format("conversation {} is in the trash; restore it before adding messages", conversation));
    }
    if (parent) {
        Statement st(db, "SELECT conversation_id FROM messages WHERE id = ?");
        st.bind(1, *parent);
        if (!st.step()) {
            throwError(ErrorCode::NotFound,
                       fmt::format("message {} does not exist in {}", *parent, db.file().string()));
        }
        if (st.columnInt(0) != conversation) {
            throwError(ErrorCode::InvalidArgument, fmt::format("message {} belongs to conversation {}, not {}", *parent,
                                                               st.columnInt(0), conversation));
        }
    }
}

}  // namespace detail

Expected<MessageId> ConversationStore::appendMessage(ConversationId conversation, std::optional<MessageId> parent,
                                                     Role role, const std::string& content) {
    return guarded(*m_conn, fmt::format("adding a message to conversation {}", conversation), [&] {
        m_conn->requireWritable();
        Database& db = m_conn->db;
        Transaction tx(db);
        checkAppendTarget(db, conversation, parent);
        const auto now = nowMs();
        Statement st(db,
                     "INSERT INTO messages(conversation_id, parent_id, role, content, status, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, 'complete', ?, ?)");
        st.bind(1, conversation)
            .bind(2, parent)
            .bind(3, roleName(role))
            .bind(4, content)
            .bind(5, now)
            .bind(6, now)
            .run();
        const MessageId id = db.lastInsertId();
        makeActive(db, id);
        touchConversation(db, conversation, now);
        tx.commit();
        return id;
    });
}

Expected<MessageId> ConversationStore::appendUserMessage(ConversationId conversation, std::optional<MessageId> parent,
                                                         const std::string& content) {
    return appendMessage(conversation, parent, Role::User, content);
}

Expected<MessageId> ConversationStore::editMessage(MessageId message, const std::string& newContent) {
    auto original = this->message(message);
    if (!original) return original.error().withContext("editing a message");
    return appendMessage(original->conversationId, original->parentId, original->role, newContent);
}

Expected<Message> ConversationStore::message(MessageId id) {
    return guarded(*m_conn, {}, [&] { return loadMessage(m_conn->db, id); });
}

Expected<std::vector<Message>> ConversationStore::activePath(ConversationId conversation) {
    return guarded(*m_conn, {}, [&] {
        const Conversation c = loadConversation(m_conn->db, conversation);
        return activePathOf(c, loadMessages(m_conn->db, conversation));
    });
}

Expected<std::optional<MessageId>> ConversationStore::activeLeaf(ConversationId conversation) {
    auto path = activePath(conversation);
    if (!path) return path.error();
    if (path->empty()) return std::optional<MessageId>();
    return std::optional<MessageId>(path->back().id);
}

Expected<std::vector<Message>> ConversationStore::allMessages(ConversationId conversation) {
    return guarded(*m_conn, {}, [&] {
        loadConversation(m_conn->db, conversation);
        return loadMessages(m_conn->db, conversation);
    });
}

Expected<std::vector<MessageId>> ConversationStore::siblings(MessageId message) {
    return guarded(*m_conn, {}, [&] {
        Database& db = m_conn->db;
        const Message m = loadMessage(db, message);
        Statement st(db, "SELECT id FROM messages WHERE conversation_id = ? AND parent_id IS ? ORDER BY id");
        st.bind(1, m.conversationId).bind(2, m.parentId);
        std::vector<MessageId> out;
        while (st.step()) out.push_back(st.columnInt(0));
        return out;
    });
}

Expected<void> ConversationStore::setActiveMessage(MessageId message) {
    return guarded(*m_conn, fmt::format("switching to the branch of message {}", message), [&] {
        m_conn->requireWritable();
        Transaction tx(m_conn->db);
        makeActive(m_conn->db, message);
        tx.commit();
    });
}

Expected<std::vector<TokenRecord>> ConversationStore::tokens(MessageId message) {
    return guarded(*m_conn, fmt::format("reading the token records of message {}", message), [&] {
        loadMessage(m_conn->db, message);
        return loadTokens(m_conn->db, message);
    });
}

Expected<std::optional<PromptRouting>> ConversationStore::promptRouting(MessageId message) {
    return guarded(*m_conn, fmt::format("reading the prompt routing of message {}", message), [&] {
        loadMessage(m_conn->db, message);
        return loadPromptRouting(m_conn->db, message);
    });
}

Expected<void> ConversationStore::transaction(const std::function<bool()>& body) {
    return guarded(*m_conn, {}, [&] {
        m_conn->requireWritable();
        Transaction tx(m_conn->db);
        if (body()) tx.commit();
    });
}

}  // namespace dsv2::storage
