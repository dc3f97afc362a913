#pragma once
// ConversationListModel: the sidebar's conversations, newest first, fetched page by page as the
// list scrolls (canFetchMore/fetchMore), so a history of 10,000 conversations opens as fast as one
// of ten. Renaming in place (F2, double-click) goes to the backend; creation, activity, deletion and
// restore arrive from the backend and keep the list in order.

#include <QAbstractListModel>
#include <QSet>
#include <QVector>

#include "backend/chat_types.h"

namespace dsv2::ui {

class ChatBackend;

class ConversationListModel : public QAbstractListModel {
    Q_OBJECT
public:
    static constexpr int kPageSize = 200;
    enum Roles { IdRole = Qt::UserRole + 1, UpdatedAtRole, ModelNameRole };

    explicit ConversationListModel(ChatBackend* backend, QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    bool setData(const QModelIndex& index, const QVariant& value, int role) override;
    Qt::ItemFlags flags(const QModelIndex& index) const override;
    bool canFetchMore(const QModelIndex& parent) const override;
    void fetchMore(const QModelIndex& parent) override;

    void reload();  // drops what is loaded and asks for the first page
    int rowOf(qint64 conversationId) const;
    qint64 idAt(int row) const { return m_items.at(row).id; }
    QString titleOf(qint64 conversationId) const;
    bool hasMore() const { return m_more; }

Q_SIGNALS:
    void pageLoaded(int offset, int count);

private:
    void onListed(int offset, const QVector<ConversationItem>& items, bool more);
    void upsert(const ConversationItem& item);
    void remove(qint64 conversationId);

    ChatBackend* m_backend;
    QVector<ConversationItem> m_items;
    QSet<qint64> m_ids;  // of m_items, for de-duplicating pages
    bool m_more = false;
    bool m_fetching = false;
    bool m_started = false;
};

}  // namespace dsv2::ui
