#pragma once
// SearchResultsModel: the hits of a full-text search, one row per message, with the conversation
// title and a snippet whose matches are marked (kHighlightOpen/Close). SearchResultDelegate paints
// the title line and the snippet with the matches in bold.

#include <QAbstractListModel>
#include <QStyledItemDelegate>
#include <QVector>

#include "backend/chat_types.h"

namespace dsv2::ui {

class SearchResultsModel : public QAbstractListModel {
    Q_OBJECT
public:
    enum Roles { ConversationIdRole = Qt::UserRole + 1, MessageIdRole, SnippetRole, TitleRole };

    explicit SearchResultsModel(QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;

    void setHits(const QVector<SearchHitItem>& hits);
    const SearchHitItem& at(int row) const { return m_hits.at(row); }

    static QString plainSnippet(const QString& snippet);  // markers removed

private:
    QVector<SearchHitItem> m_hits;
};

class SearchResultDelegate : public QStyledItemDelegate {
    Q_OBJECT
public:
    using QStyledItemDelegate::QStyledItemDelegate;
    void paint(QPainter* painter, const QStyleOptionViewItem& option, const QModelIndex& index) const override;
    QSize sizeHint(const QStyleOptionViewItem& option, const QModelIndex& index) const override;
};

}  // namespace dsv2::ui
