#include "sidebar/conversation_delegate.h"

#include <QApplication>
#include <QDateTime>
#include <QLocale>
#include <QPainter>

#include "sidebar/conversation_list_model.h"

namespace dsv2::ui {

QString ConversationDelegate::whenText(qint64 msSinceEpoch, const QDateTime& now) {
    const QDateTime t = QDateTime::fromMSecsSinceEpoch(msSinceEpoch);
    const qint64 days = t.date().daysTo(now.date());
    const QLocale locale;
    if (days == 0) return locale.toString(t.time(), QStringLiteral("HH:mm"));
    if (days == 1) return tr("yesterday");
    if (days > 1 && days < 7) return locale.dayName(t.date().dayOfWeek(), QLocale::ShortFormat);
    if (t.date().year() == now.date().year()) return locale.toString(t.date(), QStringLiteral("d MMM"));
    return locale.toString(t.date(), QStringLiteral("d MMM yyyy"));
}

void ConversationDelegate::paint(QPainter* painter, const QStyleOptionViewItem& option, const QModelIndex& index) const {
    QStyleOptionViewItem opt = option;
    initStyleOption(&opt, index);
    opt.text.clear();
    const QWidget* widget = option.widget;
    QStyle* style = widget ? widget->style() : QApplication::style();
    style->drawPrimitive(QStyle::PE_PanelItemViewItem, &opt, painter, widget);

    const bool selected = option.state & QStyle::State_Selected;
    const QPalette::ColorGroup group = option.state & QStyle::State_Enabled ? QPalette::Normal : QPalette::Disabled;
    const QColor text = option.palette.color(group, selected ? QPalette::HighlightedText : QPalette::Text);
    QColor secondary = text;
    secondary.setAlphaF(0.65f);
    const QRect r = option.rect.adjusted(8, 4, -8, -4);
    const QFontMetrics fm(option.font);

    painter->save();
    painter->setPen(text);
    painter->setFont(option.font);
    const QRect titleRect(r.left(), r.top(), r.width(), fm.height());
    painter->drawText(titleRect, Qt::AlignLeft | Qt::AlignVCenter,
                      fm.elidedText(index.data(Qt::DisplayRole).toString(), Qt::ElideRight, r.width()));
    QFont small = option.font;
    small.setPointSizeF(option.font.pointSizeF() * 0.88);
    painter->setFont(small);
    painter->setPen(secondary);
    QString second = whenText(index.data(ConversationListModel::UpdatedAtRole).toLongLong(), QDateTime::currentDateTime());
    const QString model = index.data(ConversationListModel::ModelNameRole).toString();
    if (!model.isEmpty()) second += QStringLiteral(" · ") + model;
    const QFontMetrics sfm(small);
    painter->drawText(QRect(r.left(), titleRect.bottom() + 1, r.width(), sfm.height()), Qt::AlignLeft | Qt::AlignVCenter,
                      sfm.elidedText(second, Qt::ElideRight, r.width()));
    painter->restore();
}

QSize ConversationDelegate::sizeHint(const QStyleOptionViewItem& option, const QModelIndex&) const {
    // Width 0: the row takes the view's width, whatever the title's length.
    const QFontMetrics fm(option.font);
    return {0, fm.height() + static_cast<int>(fm.height() * 0.9) + 10};
}

}  // namespace dsv2::ui
