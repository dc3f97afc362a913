#pragma once
// MessageModel: the active branch of the open conversation, one row per message. Text lives here;
// rendering (Markdown documents, heights) is the delegate's, cached per message revision, so a
// conversation of 1,000 messages costs 1,000 strings, not 1,000 laid-out documents.

#include <QAbstractListModel>
#include <QVector>

#include "backend/chat_types.h"

namespace dsv2::ui {

class MessageModel : public QAbstractListModel {
    Q_OBJECT
public:
    enum Roles {
        IdRole = Qt::UserRole + 1,
        RoleRole,     // MessageRole as int
        ContentRole,  // raw Markdown
        StateRole,    // MessageState as int
        ErrorRole,
        RevisionRole,      // bumps whenever the content changes (the delegate's cache key)
        SiblingIndexRole,  // 0-based
        SiblingCountRole,
        StatsTextRole,  // "42 tokens · 12.3 tok/s · 0.4 s to first token"
    };

    explicit MessageModel(QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;

    void setMessages(const QVector<MessageItem>& messages);
    // Keeps the first `keep` rows and replaces the rest with `tail` (see PathUpdate).
    void replaceTail(int keep, const QVector<MessageItem>& tail);
    void clear();
    // Streaming: appends to the text of the message `id` (usually the last row).
    bool appendText(qint64 id, const QString& delta);
    void finishMessage(qint64 id, MessageState state, const MessageStats& stats, const QString& error);

    int rowOf(qint64 id) const;
    const MessageItem& at(int row) const { return m_messages.at(row); }
    const QVector<MessageItem>& messages() const { return m_messages; }
    // Tokens the conversation occupies at its end, from the last answer's stats (prompt + answer);
    // 0 when nothing has been answered yet.
    qint64 contextTokensAtEnd() const;

    static QString statsText(const MessageItem& message);

private:
    QVector<MessageItem> m_messages;
    QVector<quint32> m_revisions;  // parallel to m_messages
    quint32 m_nextRevision = 1;
};

}  // namespace dsv2::ui
