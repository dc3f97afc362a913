#include "chat/message_model.h"
#include "format.h"

namespace dsv2::ui {

MessageModel::MessageModel(QObject* parent) : QAbstractListModel(parent) {}

int MessageModel::rowCount(const QModelIndex& parent) const {
    return parent.isValid() ? 0 : static_cast<int>(m_messages.size());
}

QVariant MessageModel::data(const QModelIndex& index, int role) const {
    if (!index.isValid() || index.row() >= m_messages.size()) return {};
    const MessageItem& m = m_messages.at(index.row());
    switch (role) {
    case Qt::DisplayRole:
    case ContentRole: return m.content;
    case Qt::AccessibleTextRole: {
        const QString who = m.role == MessageRole::User     ? tr("You")
                            : m.role == MessageRole::System ? tr("System")
                                                            : tr("Assistant");
        return who + QStringLiteral(": ") + m.content;
    }
    case IdRole: return m.id;
    case RoleRole: return static_cast<int>(m.role);
    case StateRole: return static_cast<int>(m.state);
    case ErrorRole: return m.errorText;
    case RevisionRole: return m_revisions.at(index.row());
    case SiblingIndexRole: return m.siblingIndex;
    case SiblingCountRole: return m.siblingCount;
    case StatsTextRole: return statsText(m);
    default: return {};
    }
}

QHash<int, QByteArray> MessageModel::roleNames() const {
    auto names = QAbstractListModel::roleNames();
    names.insert(IdRole, "messageId");
    names.insert(RoleRole, "role");
    names.insert(ContentRole, "content");
    names.insert(StateRole, "state");
    return names;
}

void MessageModel::setMessages(const QVector<MessageItem>& messages) {
    beginResetModel();
    m_messages = messages;
    m_revisions.resize(m_messages.size());
    for (quint32& r : m_revisions) r = m_nextRevision++;
    endResetModel();
}

void MessageModel::replaceTail(int keep, const QVector<MessageItem>& tail) {
    keep = std::clamp(keep, 0, static_cast<int>(m_messages.size()));
    if (keep < m_messages.size()) {
        beginRemoveRows({}, keep, static_cast<int>(m_messages.size()) - 1);
        m_messages.resize(keep);
        m_revisions.resize(keep);
        endRemoveRows();
    }
    if (tail.isEmpty()) return;
    beginInsertRows({}, keep, keep + static_cast<int>(tail.size()) - 1);
    for (const MessageItem& m : tail) {
        m_messages.append(m);
        m_revisions.append(m_nextRevision++);
    }
    endInsertRows();
}

void MessageModel::clear() { setMessages({}); }

int MessageModel::rowOf(qint64 id) const {
    // Streaming and actions almost always concern the last rows: search from the end.
    for (auto i = m_messages.size() - 1; i >= 0; --i)
        if (m_messages[i].id == id) return static_cast<int>(i);
    return -1;
}

bool MessageModel::appendText(qint64 id, const QString& delta) {
    const int row = rowOf(id);
    if (row < 0) return false;
    if (delta.isEmpty()) return true;
    m_messages[row].content += delta;
    m_revisions[row] = m_nextRevision++;
    const QModelIndex i = index(row);
    Q_EMIT dataChanged(i, i, {ContentRole, RevisionRole});
    return true;
}

void MessageModel::finishMessage(qint64 id, MessageState state, const MessageStats& stats, const QString& error) {
    const int row = rowOf(id);
    if (row < 0) return;
    MessageItem& m = m_messages[row];
    m.state = state;
    m.stats = stats;
    m.errorText = error;
    m_revisions[row] = m_nextRevision++;
    const QModelIndex i = index(row);
    Q_EMIT dataChanged(i, i);
}

qint64 MessageModel::contextTokensAtEnd() const {
    for (auto i = m_messages.size() - 1; i >= 0; --i) {
        const MessageItem& m = m_messages[i];
        if (m.role == MessageRole::Assistant && m.stats && m.stats->promptTokens > 0)
            return m.stats->promptTokens + m.stats->generatedTokens;
    }
    return 0;
}

QString MessageModel::statsText(const MessageItem& m) {
    if (m.role != MessageRole::Assistant || !m.stats) return {};
    const MessageStats& s = *m.stats;
    QStringList parts;
    parts << tokenCountText(s.generatedTokens);
    if (s.tokensPerSecond > 0) parts << tr("%1 tok/s").arg(s.tokensPerSecond, 0, 'f', 1);
    if (s.timeToFirstTokenMs > 0) parts << tr("%1 s to first token").arg(s.timeToFirstTokenMs / 1000.0, 0, 'f', 2);
    if (s.stopReason == QLatin1String("max_tokens")) parts << tr("reached the token limit");
    if (s.stopReason == QLatin1String("context_full")) parts << tr("context full");
    return parts.join(QStringLiteral(" · "));
}

}  // namespace dsv2::ui
