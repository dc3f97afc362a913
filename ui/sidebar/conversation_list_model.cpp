#include "sidebar/conversation_list_model.h"

#include <QDateTime>
#include <QLocale>

#include "backend/chat_backend.h"

namespace dsv2::ui {

ConversationListModel::ConversationListModel(ChatBackend* backend, QObject* parent)
    : QAbstractListModel(parent), m_backend(backend) {
    connect(backend, &ChatBackend::conversationsListed, this, &ConversationListModel::onListed);
    connect(backend, &ChatBackend::conversationUpdated, this, &ConversationListModel::upsert);
    connect(backend, &ChatBackend::conversationRestored, this, &ConversationListModel::upsert);
    connect(backend, &ChatBackend::conversationDeleted, this, [this](qint64 id) { remove(id); });
}

int ConversationListModel::rowCount(const QModelIndex& parent) const {
    return parent.isValid() ? 0 : static_cast<int>(m_items.size());
}

QVariant ConversationListModel::data(const QModelIndex& index, int role) const {
    if (!index.isValid() || index.row() >= m_items.size()) return {};
    const ConversationItem& c = m_items.at(index.row());
    switch (role) {
    case Qt::DisplayRole:
    case Qt::EditRole: return c.title.isEmpty() ? tr("Untitled") : c.title;
    case Qt::ToolTipRole: {
        const QString when = QLocale().toString(QDateTime::fromMSecsSinceEpoch(c.updatedAtMs), QLocale::ShortFormat);
        return c.modelName.isEmpty() ? tr("%1\nLast active %2").arg(c.title, when)
                                     : tr("%1\n%2, last active %3").arg(c.title, c.modelName, when);
    }
    case IdRole: return c.id;
    case UpdatedAtRole: return c.updatedAtMs;
    case ModelNameRole: return c.modelName;
    default: return {};
    }
}

bool ConversationListModel::setData(const QModelIndex& index, const QVariant& value, int role) {
    if (!index.isValid() || role != Qt::EditRole) return false;
    const QString title = value.toString().simplified();
    if (title.isEmpty() || title == m_items[index.row()].title) return false;
    m_items[index.row()].title = title;  // shown at once; the backend confirms with conversationUpdated
    Q_EMIT dataChanged(index, index);
    m_backend->renameConversation(m_items[index.row()].id, title);
    return true;
}

Qt::ItemFlags ConversationListModel::flags(const QModelIndex& index) const {
    return QAbstractListModel::flags(index) | (index.isValid() ? Qt::ItemIsEditable : Qt::NoItemFlags);
}

bool ConversationListModel::canFetchMore(const QModelIndex& parent) const {
    return !parent.isValid() && m_more && !m_fetching;
}

void ConversationListModel::fetchMore(const QModelIndex& parent) {
    if (!canFetchMore(parent)) return;
    m_fetching = true;
    m_backend->requestConversations(static_cast<int>(m_items.size()), kPageSize);
}

void ConversationListModel::reload() {
    beginResetModel();
    m_items.clear();
    m_ids.clear();
    endResetModel();
    m_started = true;
    m_more = false;
    m_fetching = true;
    m_backend->requestConversations(0, kPageSize);
}

void ConversationListModel::onListed(int offset, const QVector<ConversationItem>& items, bool more) {
    if (!m_started) return;
    m_fetching = false;
    if (offset != m_items.size()) {
        // Loaded while the list changed under it (a conversation added or deleted meanwhile).
        if (offset > m_items.size()) return;
    }
    QVector<ConversationItem> fresh;
    for (const ConversationItem& item : items)
        if (!m_ids.contains(item.id)) fresh.append(item);
    m_more = more;
    if (!fresh.isEmpty()) {
        const int first = static_cast<int>(m_items.size());
        beginInsertRows({}, first, first + static_cast<int>(fresh.size()) - 1);
        m_items += fresh;
        for (const ConversationItem& item : fresh) m_ids.insert(item.id);
        endInsertRows();
    }
    Q_EMIT pageLoaded(offset, static_cast<int>(items.size()));
}

void ConversationListModel::upsert(const ConversationItem& item) {
    remove(item.id);
    // Newest first; an item older than everything loaded belongs to a page not fetched yet.
    int row = 0;
    // The database's order: updated_at DESC, id DESC.
    auto before = [&](const ConversationItem& a) {
        return a.updatedAtMs > item.updatedAtMs || (a.updatedAtMs == item.updatedAtMs && a.id > item.id);
    };
    while (row < m_items.size() && before(m_items[row])) ++row;
    if (row == m_items.size() && m_more) return;
    beginInsertRows({}, row, row);
    m_items.insert(row, item);
    m_ids.insert(item.id);
    endInsertRows();
}

void ConversationListModel::remove(qint64 conversationId) {
    const int row = rowOf(conversationId);
    if (row < 0) return;
    beginRemoveRows({}, row, row);
    m_items.removeAt(row);
    m_ids.remove(conversationId);
    endRemoveRows();
}

int ConversationListModel::rowOf(qint64 conversationId) const {
    if (!m_ids.contains(conversationId)) return -1;
    for (int i = 0; i < m_items.size(); ++i)
        if (m_items[i].id == conversationId) return i;
    return -1;
}

QString ConversationListModel::titleOf(qint64 conversationId) const {
    const int row = rowOf(conversationId);
    return row < 0 ? QString() : m_items[row].title;
}

}  // namespace dsv2::ui
