#pragma once
// ConversationDelegate: a sidebar row, the title on the first line and "when · model" on the second,
// both elided to the sidebar's width (a long title never makes the list scroll sideways).

#include <QStyledItemDelegate>

namespace dsv2::ui {

class ConversationDelegate : public QStyledItemDelegate {
    Q_OBJECT
public:
    using QStyledItemDelegate::QStyledItemDelegate;
    void paint(QPainter* painter, const QStyleOptionViewItem& option, const QModelIndex& index) const override;
    QSize sizeHint(const QStyleOptionViewItem& option, const QModelIndex& index) const override;

    // "14:05", "yesterday", "Tue", "12 Mar", "12 Mar 2023" relative to `now`.
    static QString whenText(qint64 msSinceEpoch, const QDateTime& now);
};

}  // namespace dsv2::ui
