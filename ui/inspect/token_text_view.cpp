#include "token_text_view.h"

#include <QAbstractTextDocumentLayout>
#include <QHelpEvent>
#include <QMouseEvent>
#include <QScrollBar>
#include <QTextBlock>
#include <QTextCursor>
#include <QToolTip>

#include <algorithm>
#include <cmath>

#include "inspect_colors.h"
#include "token_text.h"

namespace dsv2::ui {

TokenTextView::TokenTextView(InspectionModel* model, QWidget* parent)
    : QTextEdit(parent), m_model(model), m_frame(this, [this] { appendPending(); }) {
    setAccessibleName(tr("Message tokens"));
    setReadOnly(true);
    setUndoRedoEnabled(false);
    setTextInteractionFlags(Qt::TextSelectableByMouse | Qt::TextSelectableByKeyboard);
    setLineWrapMode(QTextEdit::WidgetWidth);
    viewport()->setMouseTracking(true);
    connect(m_model, &InspectionModel::tableReset, this, &TokenTextView::rebuild);
    // Streamed rows join the document once per frame: one edit block for many tokens.
    connect(m_model, &InspectionModel::rowsAppended, this, [this] { m_frame.request(); });
    connect(m_model, &InspectionModel::contentAppended, this, [this] { m_frame.request(); });
    connect(m_model, &InspectionModel::selectedExpertChanged, this, [this] {
        if (m_coloring == Coloring::SelectedExpert) recolor();
    });
    connect(m_model, &InspectionModel::selectedTokenChanged, this, &TokenTextView::showSelectedToken);
    rebuild();
}

void TokenTextView::setColoring(Coloring coloring) {
    if (coloring == m_coloring) return;
    m_coloring = coloring;
    recolor();
}

void TokenTextView::setColorLayer(int moeLayer) {
    moeLayer = std::clamp(moeLayer, 0, std::max(0, m_model->table().layers - 1));
    if (moeLayer == m_colorLayer) return;
    m_colorLayer = moeLayer;
    if (m_coloring == Coloring::ExpertAtLayer) recolor();
}

QColor TokenTextView::backgroundFor(int row) const {
    const inspect::RoutingTable& t = m_model->table();
    const inspect::TokenRow& r = t.rows[static_cast<std::size_t>(row)];
    switch (m_coloring) {
    case Coloring::Plain: return {};
    case Coloring::Confidence: {
        if (!r.logprob) return {};
        const QColor c = confidenceColor(std::exp(static_cast<double>(*r.logprob)), palette());
        return c.alpha() > 8 ? c : QColor();
    }
    case Coloring::ExpertAtLayer: {
        const int e = t.top1(row, m_colorLayer);
        if (e == inspect::kNoExpert) return {};
        QColor c = expertColor(e);
        c.setAlphaF(0.62f);
        return c;
    }
    case Coloring::SelectedExpert: {
        const ExpertSelection sel = m_model->selectedExpert();
        if (!m_model->isRoutedTo(row, sel)) return {};
        QColor c = expertColor(sel.expert);
        c.setAlphaF(0.7f);
        return c;
    }
    }
    return {};
}

void TokenTextView::applyFormat(int row, bool force) {
    const int start = m_start[static_cast<std::size_t>(row)];
    if (start < 0) return;
    // Only touch the document where the colour changes: a new selection recolours a few tokens.
    const QColor bg = backgroundFor(row);
    QColor& shown = m_shownBackground[static_cast<std::size_t>(row)];
    if (!force && bg == shown) return;
    shown = bg;
    QTextCursor c(document());
    c.setPosition(start);
    c.setPosition(m_end[static_cast<std::size_t>(row)], QTextCursor::KeepAnchor);
    QTextCharFormat f;
    if (m_model->table().rows[static_cast<std::size_t>(row)].isPrompt)
        f.setForeground(palette().color(QPalette::PlaceholderText));
    if (bg.isValid()) f.setBackground(bg);
    c.setCharFormat(f);
}

void TokenTextView::recolor(bool force) {
    QTextCursor batch(document());
    batch.beginEditBlock();
    for (int r = 0; r < static_cast<int>(m_start.size()); ++r) applyFormat(r, force);
    batch.endEditBlock();
}

void TokenTextView::appendPending() {
    const int shown = static_cast<int>(m_start.size());
    QScrollBar* sb = verticalScrollBar();
    const bool atEnd = sb->value() >= sb->maximum();
    if (m_model->tokenCount() > shown) appendRows(shown, m_model->tokenCount() - shown);
    appendContentTail();
    if (atEnd) sb->setValue(sb->maximum());  // follow the stream while the reader is at the end
}

void TokenTextView::rebuild() {
    m_frame.flush();
    clear();
    m_start.clear();
    m_end.clear();
    m_starts.clear();
    m_shownBackground.clear();
    m_shownBytes = 0;
    m_separatorShown = false;
    setColorLayer(m_colorLayer);
    appendRows(0, m_model->tokenCount());
    appendContentTail();
    setExtraSelections({});
}

void TokenTextView::appendRows(int first, int count) {
    const inspect::RoutingTable& t = m_model->table();
    QTextCursor c(document());
    c.movePosition(QTextCursor::End);
    c.beginEditBlock();
    for (int row = first; row < first + count; ++row) {
        const inspect::TokenRow& r = t.rows[static_cast<std::size_t>(row)];
        if (!r.isPrompt) {
            if (!m_separatorShown && row > 0) {
                c.insertText(QStringLiteral("\n\n"), QTextCharFormat());
            }
            m_separatorShown = true;
            // Answer text that has no token of its own (it comes before this token).
            if (r.textOffset > m_shownBytes && r.textOffset <= t.content.size()) {
                c.insertText(QString::fromUtf8(t.content.data() + m_shownBytes,
                                               static_cast<qsizetype>(r.textOffset - m_shownBytes)),
                             QTextCharFormat());
                m_shownBytes = r.textOffset;
            }
        }
        const QString text = QString::fromStdString(r.text);
        m_shownBackground.emplace_back();
        if (text.isEmpty() || (!r.isPrompt && r.textOffset < m_shownBytes)) {
            m_start.push_back(-1);
            m_end.push_back(-1);
            continue;
        }
        m_start.push_back(c.position());
        m_starts.emplace_back(c.position(), row);
        c.insertText(text, QTextCharFormat());
        m_end.push_back(c.position());
        if (!r.isPrompt) m_shownBytes = std::size_t{r.textOffset} + r.textLength;
        applyFormat(row, true);
    }
    c.endEditBlock();
}

void TokenTextView::appendContentTail() {
    const std::string& content = m_model->table().content;
    if (m_shownBytes >= content.size()) return;
    QTextCursor c(document());
    c.movePosition(QTextCursor::End);
    c.insertText(
        QString::fromUtf8(content.data() + m_shownBytes, static_cast<qsizetype>(content.size() - m_shownBytes)),
        QTextCharFormat());
    m_shownBytes = content.size();
}

int TokenTextView::tokenStart(int row) const {
    return row >= 0 && row < static_cast<int>(m_start.size()) ? m_start[static_cast<std::size_t>(row)] : -1;
}

int TokenTextView::tokenEnd(int row) const {
    return row >= 0 && row < static_cast<int>(m_end.size()) ? m_end[static_cast<std::size_t>(row)] : -1;
}

int TokenTextView::tokenAtPosition(int pos) const {
    // m_starts is sorted (rows are appended in document order): the last start at or before pos.
    const auto it = std::upper_bound(m_starts.begin(), m_starts.end(), pos,
                                     [](int p, const std::pair<int, int>& s) { return p < s.first; });
    if (it == m_starts.begin()) return -1;
    const int row = std::prev(it)->second;
    return pos < m_end[static_cast<std::size_t>(row)] ? row : -1;
}

int TokenTextView::tokenAt(const QPoint& viewportPos) const {
    const QPointF docPos = viewportPos + QPointF(horizontalScrollBar()->value(), verticalScrollBar()->value());
    const int pos = document()->documentLayout()->hitTest(docPos, Qt::ExactHit);
    if (pos < 0) return -1;
    // hitTest gives the cursor position nearest the point: the character under it is the one
    // before or after, depending on which half was hit.
    QTextCursor c(document());
    c.setPosition(pos);
    const QRect caret = cursorRect(c);
    return tokenAtPosition(viewportPos.x() < caret.x() ? pos - 1 : pos);
}

QPoint TokenTextView::tokenCenter(int row) const {
    const int start = tokenStart(row);
    if (start < 0) return {-1, -1};
    QTextCursor a(document());
    a.setPosition(start);
    QTextCursor b(document());
    b.setPosition(start + 1);
    const QRect ra = cursorRect(a);
    const QRect rb = cursorRect(b);
    if (rb.top() != ra.top()) return {ra.x() + 2, ra.center().y()};  // a line break
    return {(ra.x() + rb.x()) / 2, ra.center().y()};
}

QColor TokenTextView::tokenBackground(int row) const {
    const int start = tokenStart(row);
    if (start < 0) return {};
    QTextCursor c(document());
    c.setPosition(start + 1);  // the format of the character before the cursor: the token's first
    const QBrush b = c.charFormat().background();
    return b.style() == Qt::NoBrush ? QColor() : b.color();
}

QVector<int> TokenTextView::highlightedTokens() const {
    QVector<int> rows;
    for (int r = 0; r < static_cast<int>(m_start.size()); ++r) {
        if (tokenBackground(r).isValid()) rows.push_back(r);
    }
    return rows;
}

QString TokenTextView::tokenToolTip(int row) const {
    const inspect::RoutingTable& t = m_model->table();
    if (row < 0 || row >= t.tokenCount()) return {};
    const inspect::TokenRow& r = t.rows[static_cast<std::size_t>(row)];
    QString s = tr("<b>%1</b> &nbsp;token %2 · id %3").arg(visibleTokenHtml(r)).arg(row).arg(r.tokenId);
    if (r.logprob) s += tr("<br>p = %1").arg(formatProbability(std::exp(static_cast<double>(*r.logprob))));
    const int e = t.top1(row, m_colorLayer);
    if (e != inspect::kNoExpert) {
        s += tr("<br>MoE layer %1: top-1 expert %2 (%3)")
                 .arg(m_colorLayer)
                 .arg(e)
                 .arg(t.weightAt(row, m_colorLayer, 0), 0, 'f', 3);
    }
    return s;
}

void TokenTextView::showSelectedToken() {
    const int row = m_model->selectedToken();
    const int start = tokenStart(row);
    if (start < 0) {
        setExtraSelections({});
        return;
    }
    QTextEdit::ExtraSelection sel;
    sel.cursor = QTextCursor(document());
    sel.cursor.setPosition(start);
    sel.cursor.setPosition(tokenEnd(row), QTextCursor::KeepAnchor);
    sel.format.setBackground(palette().color(QPalette::Highlight));
    sel.format.setForeground(palette().color(QPalette::HighlightedText));
    setExtraSelections({sel});
    QTextCursor visible(document());
    visible.setPosition(start);
    const QRect r = cursorRect(visible);
    if (!viewport()->rect().contains(r)) {
        verticalScrollBar()->setValue(verticalScrollBar()->value() + r.top() - viewport()->height() / 3);
    }
}

void TokenTextView::mousePressEvent(QMouseEvent* event) {
    m_pressPos = event->position().toPoint();
    QTextEdit::mousePressEvent(event);
}

void TokenTextView::mouseReleaseEvent(QMouseEvent* event) {
    QTextEdit::mouseReleaseEvent(event);
    // A click, not a text selection by dragging.
    if (event->button() == Qt::LeftButton && (event->position().toPoint() - m_pressPos).manhattanLength() < 4) {
        const int row = tokenAt(event->position().toPoint());
        if (row >= 0) m_model->setSelectedToken(row);
    }
}

bool TokenTextView::viewportEvent(QEvent* event) {
    if (event->type() == QEvent::ToolTip) {
        const auto* help = static_cast<QHelpEvent*>(event);
        const int row = tokenAt(help->pos());
        if (row >= 0)
            QToolTip::showText(help->globalPos(), tokenToolTip(row), viewport());
        else
            QToolTip::hideText();
        return true;
    }
    if (event->type() == QEvent::MouseMove) {
        const auto* move = static_cast<QMouseEvent*>(event);
        Q_EMIT tokenHovered(tokenAt(move->position().toPoint()));
    }
    return QTextEdit::viewportEvent(event);
}

void TokenTextView::changeEvent(QEvent* event) {
    QTextEdit::changeEvent(event);
    if (event->type() == QEvent::PaletteChange) {
        recolor(true);  // prompt text and backgrounds derive from the palette
        showSelectedToken();
    }
}

}  // namespace dsv2::ui
