#include "chat/message_delegate.h"

#include <QAbstractTextDocumentLayout>
#include <QApplication>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QTextBlock>
#include <QTextDocument>
#include <QTextLayout>

#include <algorithm>
#include <cmath>

#include "backend/chat_types.h"
#include "chat/message_model.h"

namespace dsv2::ui {
namespace {

constexpr int kOuterH = 12;  // row edge → bubble
constexpr int kOuterV = 4;
constexpr int kPad = 10;              // bubble edge → content
constexpr int kGap = 4;               // between header, body and footer
constexpr int kMaxBubbleWidth = 920;  // lines longer than this are hard to read: wide windows centre the text

MessageRole roleOf(const QModelIndex& i) { return static_cast<MessageRole>(i.data(MessageModel::RoleRole).toInt()); }
MessageState stateOf(const QModelIndex& i) {
    return static_cast<MessageState>(i.data(MessageModel::StateRole).toInt());
}

QColor mix(const QColor& a, const QColor& b, qreal t) {
    return QColor::fromRgbF(static_cast<float>(a.redF() * (1 - t) + b.redF() * t),
                            static_cast<float>(a.greenF() * (1 - t) + b.greenF() * t),
                            static_cast<float>(a.blueF() * (1 - t) + b.blueF() * t));
}

void paintButton(QPainter* p, const QRect& r, const QString& text, const QPalette& pal, bool hovered) {
    p->save();
    p->setRenderHint(QPainter::Antialiasing);
    p->setPen(mix(pal.color(QPalette::Base), pal.color(QPalette::Text), 0.35));
    p->setBrush(hovered ? mix(pal.color(QPalette::Base), pal.color(QPalette::Highlight), 0.25)
                        : pal.color(QPalette::Base));
    p->drawRoundedRect(QRectF(r).adjusted(0.5, 0.5, -0.5, -0.5), 4, 4);
    p->setPen(pal.color(QPalette::Text));
    p->drawText(r, Qt::AlignCenter, text);
    p->restore();
}

QString copyText() { return MessageDelegate::tr("Copy"); }
QString editText() { return MessageDelegate::tr("Edit"); }
QString regenerateText() { return MessageDelegate::tr("Regenerate"); }

}  // namespace

MessageDelegate::MessageDelegate(QObject* parent) : QStyledItemDelegate(parent) {
    m_cache.setFont(QApplication::font());
}

void MessageDelegate::setViewportWidth(int width) { m_viewportWidth = std::max(200, width); }

void MessageDelegate::setFont(const QFont& font) {
    m_cache.setFont(font);
    m_rowHeights.clear();
}

int MessageDelegate::docWidthFor(int rowWidth) const {
    return std::max(80, std::min(rowWidth - 2 * kOuterH, kMaxBubbleWidth) - 2 * kPad);
}

MessageDocumentCache::Entry MessageDelegate::documentFor(const QModelIndex& index) const {
    const bool markdown = roleOf(index) == MessageRole::Assistant;
    return m_cache.document(index.data(MessageModel::IdRole).toLongLong(),
                            index.data(MessageModel::RevisionRole).toUInt(),
                            index.data(MessageModel::ContentRole).toString(), markdown, docWidthFor(m_viewportWidth));
}

bool MessageDelegate::hasFooter(const QModelIndex& index) const {
    return index.data(MessageModel::SiblingCountRole).toInt() > 1 || !footerNote(index).isEmpty();
}

QString MessageDelegate::footerNote(const QModelIndex& index) const {
    QStringList parts;
    switch (stateOf(index)) {
    case MessageState::Stopped: parts << tr("Stopped"); break;
    case MessageState::Interrupted:
        parts << tr(
            "⚠ Interrupted: the app closed before this answer was finished; the text ends where it was last "
            "saved. Regenerate to get a whole answer.");
        break;
    case MessageState::Failed: parts << tr("⚠ Failed: %1").arg(index.data(MessageModel::ErrorRole).toString()); break;
    case MessageState::Streaming:
    case MessageState::Complete: break;
    }
    const QString stats = index.data(MessageModel::StatsTextRole).toString();
    if (!stats.isEmpty()) parts << stats;
    return parts.join(QStringLiteral(" · "));
}

MessageDelegate::Geometry MessageDelegate::geometry(const QRect& rowRect, const QModelIndex& index,
                                                    qreal docHeight) const {
    const QFontMetrics fm(m_cache.font());
    const int lineH = fm.height() + 6;
    Geometry g;
    g.docWidth = docWidthFor(rowRect.width());
    g.docHeight = docHeight;
    const int footerH = hasFooter(index) ? kGap + lineH : 0;
    const int bubbleH = kPad / 2 + lineH + kGap + static_cast<int>(std::ceil(docHeight)) + footerH + kPad / 2;
    const int bubbleW = g.docWidth + 2 * kPad;
    g.bubble = QRect(rowRect.left() + std::max(kOuterH, (rowRect.width() - bubbleW) / 2), rowRect.top() + kOuterV,
                     bubbleW, bubbleH);
    g.header = QRect(g.bubble.left() + kPad, g.bubble.top() + kPad / 2, g.bubble.width() - 2 * kPad, lineH);
    g.docOrigin = QPoint(g.header.left(), g.header.bottom() + 1 + kGap);
    if (footerH > 0)
        g.footer = QRect(g.header.left(), g.docOrigin.y() + static_cast<int>(std::ceil(docHeight)) + kGap,
                         g.header.width(), lineH);
    return g;
}

QSize MessageDelegate::sizeHint(const QStyleOptionViewItem&, const QModelIndex& index) const {
    const qint64 id = index.data(MessageModel::IdRole).toLongLong();
    const quint32 revision = index.data(MessageModel::RevisionRole).toUInt();
    const int docWidth = docWidthFor(m_viewportWidth);
    const auto known = m_cache.knownHeight(id, revision, docWidth);
    const auto it = m_rowHeights.constFind(id);
    if (it != m_rowHeights.constEnd() && it->revision == revision && it->width == m_viewportWidth &&
        (it->exact || !known))
        return {m_viewportWidth, it->height};
    // Laid out: the exact height; not yet: a guess from the text (cheap, but still not per relayout).
    const qreal docHeight =
        known ? *known : m_cache.estimateHeight(index.data(MessageModel::ContentRole).toString(), docWidth);
    const Geometry g = geometry(QRect(0, 0, m_viewportWidth, 0), index, docHeight);
    const int height = g.bubble.height() + 2 * kOuterV;
    m_rowHeights.insert(id, {revision, m_viewportWidth, height, known.has_value()});
    return {m_viewportWidth, height};
}

QRect MessageDelegate::headerButton(const Geometry& g, int slot, const QString& text) const {
    const QFontMetrics fm(m_cache.font());
    const int h = g.header.height() - 2;
    int right = g.header.right();
    // Slot 0 (Copy) is rightmost; slot 1 sits to its left.
    const int copyW = fm.horizontalAdvance(copyText()) + 14;
    if (slot == 1) right -= copyW + 6;
    const int w = fm.horizontalAdvance(text) + 14;
    return {right - w + 1, g.header.top() + 1, w, h};
}

QRect MessageDelegate::actionRect(const QRect& rowRect, const QModelIndex& index, Action action, int codeBlock) const {
    if (!index.isValid()) return {};
    const MessageRole role = roleOf(index);
    const bool streaming = stateOf(index) == MessageState::Streaming;
    const auto known =
        m_cache.knownHeight(index.data(MessageModel::IdRole).toLongLong(),
                            index.data(MessageModel::RevisionRole).toUInt(), docWidthFor(rowRect.width()));
    const qreal docHeight = known ? *known : documentFor(index).height;
    const Geometry g = geometry(rowRect, index, docHeight);
    const QFontMetrics fm(m_cache.font());
    switch (action) {
    case Action::None: return {};
    case Action::Copy: return headerButton(g, 0, copyText());
    case Action::Edit: return role == MessageRole::User ? headerButton(g, 1, editText()) : QRect();
    case Action::Regenerate:
        return role == MessageRole::Assistant && !streaming ? headerButton(g, 1, regenerateText()) : QRect();
    case Action::PreviousBranch:
    case Action::NextBranch: {
        if (index.data(MessageModel::SiblingCountRole).toInt() < 2 || g.footer.isNull()) return {};
        const int w = g.footer.height();
        const int labelW = fm.horizontalAdvance(QStringLiteral("00 / 00")) + 8;
        const QRect prev(g.footer.left(), g.footer.top(), w, g.footer.height());
        return action == Action::PreviousBranch ? prev : QRect(prev.right() + 1 + labelW, prev.top(), w, prev.height());
    }
    case Action::CopyCode: {
        const MessageDocumentCache::Entry e = documentFor(index);
        if (codeBlock < 0 || codeBlock >= e.codeBlocks.size()) return {};
        const QRect code = e.codeBlocks[codeBlock].rect.toAlignedRect().translated(g.docOrigin);
        const int w = fm.horizontalAdvance(copyText()) + 14;
        return {std::min(code.right(), g.docOrigin.x() + g.docWidth) - w - 2, code.top() + 2, w, fm.height() + 4};
    }
    }
    return {};
}

MessageDelegate::Action MessageDelegate::hitTest(const QRect& rowRect, const QModelIndex& index, const QPoint& pos,
                                                 int* codeBlock) const {
    for (Action a : {Action::Copy, Action::Edit, Action::Regenerate, Action::PreviousBranch, Action::NextBranch})
        if (actionRect(rowRect, index, a).contains(pos)) return a;
    const int blocks = codeBlockCount(index);
    for (int i = 0; i < blocks; ++i) {
        if (actionRect(rowRect, index, Action::CopyCode, i).contains(pos)) {
            if (codeBlock) *codeBlock = i;
            return Action::CopyCode;
        }
    }
    return Action::None;
}

void MessageDelegate::measure(const QModelIndex& index) const {
    const qint64 id = index.data(MessageModel::IdRole).toLongLong();
    const quint32 revision = index.data(MessageModel::RevisionRole).toUInt();
    if (m_cache.knownHeight(id, revision, docWidthFor(m_viewportWidth))) return;
    documentFor(index);
    Q_EMIT const_cast<MessageDelegate*>(this)->sizeHintChanged(index);
}

int MessageDelegate::codeBlockCount(const QModelIndex& index) const {
    return static_cast<int>(documentFor(index).codeBlocks.size());
}

QString MessageDelegate::codeBlockText(const QModelIndex& index, int codeBlock) const {
    const MessageDocumentCache::Entry e = documentFor(index);
    return codeBlock >= 0 && codeBlock < e.codeBlocks.size() ? e.codeBlocks[codeBlock].text : QString();
}

void MessageDelegate::paint(QPainter* painter, const QStyleOptionViewItem& option, const QModelIndex& index) const {
    const QPalette& pal = option.palette;
    const MessageRole role = roleOf(index);
    const MessageState state = stateOf(index);
    const MessageDocumentCache::Entry doc = documentFor(index);
    const Geometry g = geometry(option.rect, index, doc.height);
    // Laid out for the first time (or changed): the view must learn the real height.
    if (g.bubble.height() + 2 * kOuterV != option.rect.height())
        Q_EMIT const_cast<MessageDelegate*>(this)->sizeHintChanged(index);

    painter->save();
    painter->setRenderHint(QPainter::Antialiasing);
    painter->setFont(m_cache.font());
    const bool selected = option.state & QStyle::State_Selected;
    const bool hovered = option.state & QStyle::State_MouseOver;
    QColor bubble = role == MessageRole::User ? mix(pal.color(QPalette::Base), pal.color(QPalette::Highlight), 0.12)
                                              : pal.color(QPalette::Base);
    if (selected) bubble = mix(bubble, pal.color(QPalette::Highlight), 0.22);
    painter->setPen(role == MessageRole::User || selected
                        ? Qt::NoPen
                        : QPen(mix(pal.color(QPalette::Base), pal.color(QPalette::Text), 0.10)));
    painter->setBrush(bubble);
    painter->drawRoundedRect(QRectF(g.bubble).adjusted(0.5, 0.5, -0.5, -0.5), 8, 8);

    // Role line.
    QFont bold = m_cache.font();
    bold.setBold(true);
    painter->setFont(bold);
    painter->setPen(pal.color(QPalette::Text));
    QString who = role == MessageRole::User ? tr("You") : role == MessageRole::System ? tr("System") : tr("Assistant");
    if (state == MessageState::Streaming) who += tr(" · writing…");
    painter->drawText(g.header, Qt::AlignLeft | Qt::AlignVCenter, who);
    painter->setFont(m_cache.font());
    if (hovered) {
        const QRect copy = actionRect(option.rect, index, Action::Copy);
        paintButton(painter, copy, copyText(), pal, copy.contains(m_hover));
        if (role == MessageRole::User) {
            const QRect edit = actionRect(option.rect, index, Action::Edit);
            paintButton(painter, edit, editText(), pal, edit.contains(m_hover));
        } else if (role == MessageRole::Assistant && state != MessageState::Streaming) {
            const QRect regen = actionRect(option.rect, index, Action::Regenerate);
            paintButton(painter, regen, regenerateText(), pal, regen.contains(m_hover));
        }
    }

    // Body: code block backgrounds first, then the document over them.
    const QColor codeBg = mix(bubble, pal.color(QPalette::Text), 0.07);
    for (const MessageDocumentCache::CodeBlock& c : doc.codeBlocks) {
        painter->setPen(Qt::NoPen);
        painter->setBrush(codeBg);
        painter->drawRoundedRect(c.rect.translated(g.docOrigin).adjusted(-4, -2, 4, 2), 4, 4);
    }
    painter->save();
    painter->translate(g.docOrigin);
    if (m_highlightId != 0 && index.data(MessageModel::IdRole).toLongLong() == m_highlightId)
        paintHighlight(painter, *doc.doc);
    QAbstractTextDocumentLayout::PaintContext ctx;
    ctx.palette = pal;
    ctx.palette.setColor(QPalette::Text, pal.color(QPalette::Text));
    ctx.clip = QRectF(0, 0, g.docWidth + 8, doc.height + 2);
    painter->setClipRect(ctx.clip);
    doc.doc->documentLayout()->draw(painter, ctx);
    painter->restore();
    if (hovered) {
        for (int i = 0; i < doc.codeBlocks.size(); ++i) {
            const QRect r = actionRect(option.rect, index, Action::CopyCode, i);
            paintButton(painter, r, copyText(), pal, r.contains(m_hover));
        }
    }
    if (index.data(MessageModel::ContentRole).toString().isEmpty() && state == MessageState::Streaming) {
        painter->setPen(pal.color(QPalette::PlaceholderText));
        painter->drawText(QRect(g.docOrigin, QSize(g.docWidth, QFontMetrics(m_cache.font()).height())),
                          Qt::AlignLeft | Qt::AlignVCenter, tr("…"));
    }

    // Footer: branch switch, then state and stats.
    if (!g.footer.isNull()) {
        int x = g.footer.left();
        const int count = index.data(MessageModel::SiblingCountRole).toInt();
        if (count > 1) {
            const int current = index.data(MessageModel::SiblingIndexRole).toInt() + 1;
            const QRect prev = actionRect(option.rect, index, Action::PreviousBranch);
            const QRect next = actionRect(option.rect, index, Action::NextBranch);
            paintButton(painter, prev, QStringLiteral("‹"), pal, prev.contains(m_hover));
            paintButton(painter, next, QStringLiteral("›"), pal, next.contains(m_hover));
            painter->setPen(pal.color(QPalette::Text));
            painter->drawText(
                QRect(prev.right() + 1, g.footer.top(), next.left() - prev.right() - 1, g.footer.height()),
                Qt::AlignCenter, QStringLiteral("%1 / %2").arg(current).arg(count));
            x = next.right() + 10;
        }
        const QString note = footerNote(index);
        const bool warn = state == MessageState::Interrupted || state == MessageState::Failed;
        painter->setPen(warn ? QColor(0xc0, 0x60, 0x00) : pal.color(QPalette::PlaceholderText));
        if (warn && pal.color(QPalette::Base).lightness() < 128) painter->setPen(QColor(0xff, 0xb0, 0x50));
        const QRect noteRect(x, g.footer.top(), g.footer.right() - x, g.footer.height());
        painter->drawText(noteRect, Qt::AlignLeft | Qt::AlignVCenter,
                          QFontMetrics(m_cache.font()).elidedText(note, Qt::ElideRight, noteRect.width()));
    }
    painter->restore();
}

void MessageDelegate::setTokenHighlight(qint64 messageId, const QVector<TextRange>& ranges, const QColor& color) {
    m_highlightId = ranges.isEmpty() ? 0 : messageId;
    m_highlightRanges = ranges;
    m_highlightColor = color;
}

// Behind each highlighted range, per line it covers: the line's height, from the range's first to
// its last character (a token split over two lines gets two rectangles).
void MessageDelegate::paintHighlight(QPainter* painter, const QTextDocument& doc) const {
    QColor fill = m_highlightColor;
    fill.setAlpha(150);
    painter->setPen(Qt::NoPen);
    painter->setBrush(fill);
    for (const TextRange& r : m_highlightRanges) {
        if (r.length <= 0) continue;
        const QTextBlock block = doc.findBlock(r.start);
        if (!block.isValid() || !block.layout()) continue;
        const QTextLayout* layout = block.layout();
        const int from = r.start - block.position();
        const int to = std::min(from + r.length, block.length() - 1);
        for (int i = 0; i < layout->lineCount(); ++i) {
            const QTextLine line = layout->lineAt(i);
            const int lineFrom = std::max(from, line.textStart());
            const int lineTo = std::min(to, line.textStart() + line.textLength());
            if (lineFrom >= lineTo) continue;
            const qreal x1 = line.cursorToX(lineFrom);
            const qreal x2 = line.cursorToX(lineTo);
            const QPointF origin = layout->position();
            painter->drawRoundedRect(
                QRectF(origin.x() + std::min(x1, x2), origin.y() + line.y(), std::abs(x2 - x1), line.height()), 2, 2);
        }
    }
}

int MessageDelegate::documentPositionAt(const QRect& rowRect, const QModelIndex& index, const QPoint& pos) const {
    const MessageDocumentCache::Entry doc = documentFor(index);
    const Geometry g = geometry(rowRect, index, doc.height);
    const QPointF inDoc = QPointF(pos - g.docOrigin);
    if (inDoc.x() < 0 || inDoc.y() < 0 || inDoc.y() > doc.height) return -1;
    return doc.doc->documentLayout()->hitTest(inDoc, Qt::ExactHit);
}

bool MessageDelegate::editorEvent(QEvent* event, QAbstractItemModel* model, const QStyleOptionViewItem& option,
                                  const QModelIndex& index) {
    if (event->type() == QEvent::MouseButtonRelease) {
        auto* mouse = static_cast<QMouseEvent*>(event);
        if (mouse->button() == Qt::LeftButton) {
            int codeBlock = -1;
            const Action a = hitTest(option.rect, index, mouse->position().toPoint(), &codeBlock);
            if (a != Action::None) {
                Q_EMIT actionTriggered(index, a, codeBlock);
                return true;
            }
            const int at = documentPositionAt(option.rect, index, mouse->position().toPoint());
            if (at >= 0) Q_EMIT textClicked(index, at);
        }
    }
    return QStyledItemDelegate::editorEvent(event, model, option, index);
}

}  // namespace dsv2::ui
