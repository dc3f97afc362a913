#include "sidebar/search_results_model.h"

#include <QApplication>
#include <QPainter>
#include <QTextLayout>

namespace dsv2::ui {

SearchResultsModel::SearchResultsModel(QObject* parent) : QAbstractListModel(parent) {}

int SearchResultsModel::rowCount(const QModelIndex& parent) const {
    return parent.isValid() ? 0 : static_cast<int>(m_hits.size());
}

QString SearchResultsModel::plainSnippet(const QString& snippet) {
    QString s = snippet;
    s.remove(kHighlightOpen);
    s.remove(kHighlightClose);
    return s.simplified();
}

QVariant SearchResultsModel::data(const QModelIndex& index, int role) const {
    if (!index.isValid() || index.row() >= m_hits.size()) return {};
    const SearchHitItem& h = m_hits.at(index.row());
    switch (role) {
    case Qt::DisplayRole:
    case Qt::AccessibleTextRole: return h.conversationTitle + QStringLiteral(": ") + plainSnippet(h.snippet);
    case Qt::ToolTipRole: return plainSnippet(h.snippet);
    case ConversationIdRole: return h.conversationId;
    case MessageIdRole: return h.messageId;
    case SnippetRole: return h.snippet;
    case TitleRole: return h.conversationTitle;
    default: return {};
    }
}

void SearchResultsModel::setHits(const QVector<SearchHitItem>& hits) {
    beginResetModel();
    m_hits = hits;
    endResetModel();
}

void SearchResultDelegate::paint(QPainter* painter, const QStyleOptionViewItem& option, const QModelIndex& index) const {
    QStyleOptionViewItem opt = option;
    initStyleOption(&opt, index);
    opt.text.clear();
    const QWidget* widget = option.widget;
    QStyle* style = widget ? widget->style() : QApplication::style();
    style->drawPrimitive(QStyle::PE_PanelItemViewItem, &opt, painter, widget);

    const bool selected = option.state & QStyle::State_Selected;
    const QColor text = option.palette.color(selected ? QPalette::HighlightedText : QPalette::Text);
    const QRect r = option.rect.adjusted(6, 3, -6, -3);
    const QFontMetrics fm(option.font);
    QFont bold = option.font;
    bold.setBold(true);

    painter->save();
    painter->setPen(text);
    painter->setFont(bold);
    const QRect titleRect(r.left(), r.top(), r.width(), fm.height());
    painter->drawText(titleRect, Qt::AlignLeft | Qt::AlignVCenter,
                      QFontMetrics(bold).elidedText(index.data(SearchResultsModel::TitleRole).toString(), Qt::ElideRight, r.width()));

    // The snippet on up to two lines, matches in bold.
    const QString marked = index.data(SearchResultsModel::SnippetRole).toString().simplified();
    QString plain;
    QList<QTextLayout::FormatRange> ranges;
    int start = -1;
    for (const QChar c : marked) {
        if (c == kHighlightOpen) {
            start = static_cast<int>(plain.size());
        } else if (c == kHighlightClose && start >= 0) {
            QTextCharFormat f;
            f.setFontWeight(QFont::Bold);
            ranges.append({start, static_cast<int>(plain.size()) - start, f});
            start = -1;
        } else {
            plain += c;
        }
    }
    QTextLayout layout(plain, option.font);
    layout.setFormats(ranges);
    QTextOption to;
    to.setWrapMode(QTextOption::WrapAtWordBoundaryOrAnywhere);
    layout.setTextOption(to);
    layout.beginLayout();
    qreal y = 0;
    for (int i = 0; i < 2; ++i) {
        QTextLine line = layout.createLine();
        if (!line.isValid()) break;
        line.setLineWidth(r.width());
        line.setPosition(QPointF(0, y));
        y += line.height();
    }
    layout.endLayout();
    painter->setFont(option.font);
    painter->setPen(text);
    painter->setClipRect(QRect(r.left(), titleRect.bottom() + 2, r.width(), 2 * fm.lineSpacing() + 2));
    layout.draw(painter, QPointF(r.left(), titleRect.bottom() + 2));
    painter->restore();
}

QSize SearchResultDelegate::sizeHint(const QStyleOptionViewItem& option, const QModelIndex&) const {
    const QFontMetrics fm(option.font);
    return {0, fm.height() + 2 * fm.lineSpacing() + 10};  // width 0: as wide as the view
}

}  // namespace dsv2::ui
