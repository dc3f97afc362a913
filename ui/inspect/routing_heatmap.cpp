#include "routing_heatmap.h"

#include <QHelpEvent>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QScrollBar>
#include <QToolTip>

#include <algorithm>
#include <array>
#include <cmath>

#include "inspect_colors.h"
#include "token_text.h"

namespace dsv2::ui {
namespace {

constexpr int kMinRowHeight = 3;
constexpr int kMaxRowHeight = 24;
constexpr int kLabelRowHeight = 10;  // rows at least this tall carry their token's text
constexpr int kMinCellWidth = 3;
constexpr int kMaxCellWidth = 44;
// How far cells not routed to the selected expert fade towards the background.
constexpr double kFade = 0.72;

// The smallest round number that holds `w`: keeps the gate-weight legend readable.
double niceCeiling(double w) {
    static constexpr std::array<double, 12> steps = {0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256};
    for (double s : steps) {
        if (w <= s) return s;
    }
    return std::ceil(w);
}

QString layerHeader(const inspect::RoutingTable& t, int layer) { return QString::number(t.modelLayer(layer)); }

}  // namespace

RoutingHeatmap::RoutingHeatmap(InspectionModel* model, QWidget* parent)
    : QAbstractScrollArea(parent), m_model(model), m_frame(this, [this] { applyAppendedRows(); }) {
    setAccessibleName(tr("Routing heatmap"));
    setAccessibleDescription(
        tr("Tokens by MoE layer; each cell is coloured by the token's top-1 expert or gate "
           "weight in that layer"));
    setFocusPolicy(Qt::StrongFocus);
    setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    viewport()->setMouseTracking(true);
    viewport()->setAttribute(Qt::WA_OpaquePaintEvent);
    connect(m_model, &InspectionModel::tableReset, this, [this] {
        m_frame.flush();
        m_weightScale = 1.0;
        m_hover = {};
        rebuildImage();
        setFollowing(true);
        updateScrollRange();
        verticalScrollBar()->setValue(0);
        viewport()->update();
    });
    connect(m_model, &InspectionModel::rowsAppended, this, &RoutingHeatmap::onRowsAppended);
    connect(m_model, &InspectionModel::selectedExpertChanged, this, [this] {
        fillImageRows(0, m_imageRows);
        viewport()->update();
    });
    connect(m_model, &InspectionModel::selectedTokenChanged, this, [this](int row) {
        if (row >= 0) scrollToRow(row);
        viewport()->update();
    });
    rebuildImage();
}

void RoutingHeatmap::setColorMode(ColorMode mode) {
    if (mode == m_mode) return;
    m_mode = mode;
    fillImageRows(0, m_imageRows);
    viewport()->update();
}

void RoutingHeatmap::setRowHeight(int pixels) {
    pixels = std::clamp(pixels, kMinRowHeight, kMaxRowHeight);
    if (pixels == m_rowHeight) return;
    m_rowHeight = pixels;
    updateScrollRange();
    viewport()->update();
}

RoutingHeatmap::Layout RoutingHeatmap::currentLayout() const {
    Layout l;
    const QFontMetrics fm(font());
    l.rowHeight = m_rowHeight;
    l.headerHeight = fm.height() + 8;
    l.labelWidth = m_rowHeight >= kLabelRowHeight
                       ? fm.horizontalAdvance(QStringLiteral("0000  ")) + fm.averageCharWidth() * 12
                       : fm.horizontalAdvance(QStringLiteral("0000 "));
    const int layers = std::max(1, m_model->table().layers);
    l.cellWidth = std::clamp((viewport()->width() - l.labelWidth - 4) / layers, kMinCellWidth, kMaxCellWidth);
    return l;
}

RoutingHeatmap::Layout RoutingHeatmap::exportLayout() const {
    Layout l = currentLayout();
    const int rows = std::max(1, m_model->tokenCount());
    l.cellWidth = m_model->table().layers > 40 ? 10 : 14;
    // Long messages get thinner rows so that the file stays a sensible size.
    l.rowHeight = std::clamp(14000 / rows, kMinRowHeight, 14);
    const QFontMetrics fm(font());
    l.labelWidth = l.rowHeight >= kLabelRowHeight
                       ? fm.horizontalAdvance(QStringLiteral("0000  ")) + fm.averageCharWidth() * 12
                       : fm.horizontalAdvance(QStringLiteral("0000 "));
    return l;
}

QRgb RoutingHeatmap::computeColor(int row, int layer) const {
    const inspect::RoutingTable& t = m_model->table();
    const QPalette& pal = palette();
    const QColor base = pal.color(QPalette::Base);
    if (t.top1(row, layer) == inspect::kNoExpert) return mixColors(base, pal.color(QPalette::Text), 0.08).rgb();
    const ExpertSelection sel = m_model->selectedExpert();
    if (sel.isValid()) {
        if (sel.matches(layer)) {
            for (int k = 0; k < t.topK; ++k) {
                if (t.expertAt(row, layer, k) != sel.expert) continue;
                if (m_mode == ColorMode::GateWeight)
                    return weightColor(t.weightAt(row, layer, k) / m_weightScale).rgb();
                return expertColor(sel.expert).rgb();
            }
        }
        // Not routed to the selection (or another layer): faded, so the selected expert stands out.
        const QColor own = m_mode == ColorMode::GateWeight ? weightColor(t.weightAt(row, layer, 0) / m_weightScale)
                                                           : expertColor(t.top1(row, layer));
        return mixColors(own, base, kFade).rgb();
    }
    if (m_mode == ColorMode::GateWeight) return weightColor(t.weightAt(row, layer, 0) / m_weightScale).rgb();
    return expertColor(t.top1(row, layer)).rgb();
}

void RoutingHeatmap::rebuildImage() {
    const inspect::RoutingTable& t = m_model->table();
    const int capacity = std::max(64, t.tokenCount() * 2);
    m_image = QImage(std::max(1, t.layers), capacity, QImage::Format_RGB32);
    m_image.fill(palette().color(QPalette::Base));
    m_imageRows = t.tokenCount();
    updateWeightScale(0, m_imageRows);
    fillImageRows(0, m_imageRows);
}

bool RoutingHeatmap::updateWeightScale(int first, int last) {
    const inspect::RoutingTable& t = m_model->table();
    double maxWeight = 0.0;
    for (int r = first; r < last; ++r) {
        for (int l = 0; l < t.layers; ++l) maxWeight = std::max(maxWeight, static_cast<double>(t.weightAt(r, l, 0)));
    }
    const double scale = niceCeiling(maxWeight);
    // From the first row on, the scale is what the rows need; later rows can only raise it.
    if (first == 0 ? scale == m_weightScale : scale <= m_weightScale) return false;
    m_weightScale = scale;
    return true;
}

void RoutingHeatmap::fillImageRows(int first, int last) {
    const int layers = m_model->table().layers;
    for (int r = first; r < last; ++r) {
        auto* line = reinterpret_cast<QRgb*>(m_image.scanLine(r));
        for (int l = 0; l < layers; ++l) line[l] = computeColor(r, l);
    }
}

void RoutingHeatmap::onRowsAppended(int first, int count) {
    const int last = first + count;
    if (last > m_image.height() || m_model->table().layers != m_image.width()) {
        // Grow by doubling (amortised O(1) per token); a shape change rebuilds.
        if (m_model->table().layers != m_image.width()) {
            rebuildImage();
        } else {
            QImage grown(m_image.width(), std::max(last, m_image.height() * 2), QImage::Format_RGB32);
            grown.fill(palette().color(QPalette::Base));
            QPainter p(&grown);
            p.drawImage(0, 0, m_image);
            p.end();
            m_image = std::move(grown);
        }
    }
    m_imageRows = last;
    // A larger weight rescales the ramp: every row is recoloured (rare: the scale only steps up).
    if (updateWeightScale(first, last) && m_mode == ColorMode::GateWeight)
        fillImageRows(0, last);
    else
        fillImageRows(first, last);
    // The colours are current now; the scroll range, the follow scroll and the paint wait for the
    // end of the frame, however many rows arrive meanwhile.
    m_frame.request();
}

void RoutingHeatmap::applyAppendedRows() {
    updateScrollRange();
    if (m_follow) {
        m_scrollingForFollow = true;
        verticalScrollBar()->setValue(verticalScrollBar()->maximum());
        m_scrollingForFollow = false;
    }
    viewport()->update();
}

void RoutingHeatmap::updateScrollRange() {
    const Layout l = currentLayout();
    const int page = std::max(1, viewport()->height() - l.headerHeight);
    const int content = m_model->tokenCount() * l.rowHeight;
    verticalScrollBar()->setRange(0, std::max(0, content - page));
    verticalScrollBar()->setPageStep(page);
    verticalScrollBar()->setSingleStep(l.rowHeight);
}

void RoutingHeatmap::setFollowing(bool follow) {
    if (follow == m_follow) return;
    m_follow = follow;
    Q_EMIT followingChanged(follow);
}

void RoutingHeatmap::scrollContentsBy(int, int) {
    if (!m_scrollingForFollow) {
        setFollowing(verticalScrollBar()->value() >= verticalScrollBar()->maximum());
    }
    viewport()->update();
}

void RoutingHeatmap::scrollToRow(int row) {
    if (row < 0 || row >= m_model->tokenCount()) return;
    m_frame.flush();  // the scroll range must include rows that arrived this frame
    // Showing a chosen row stops following the stream; scrolling to the bottom resumes it.
    setFollowing(false);
    const Layout l = currentLayout();
    const int page = viewport()->height() - l.headerHeight;
    const int top = row * l.rowHeight;
    QScrollBar* sb = verticalScrollBar();
    m_scrollingForFollow = true;  // a programmatic scroll: not the user's "follow" gesture
    if (top < sb->value())
        sb->setValue(top);
    else if (top + l.rowHeight > sb->value() + page)
        sb->setValue(top + l.rowHeight - page);
    m_scrollingForFollow = false;
}

QRgb RoutingHeatmap::cellColor(int row, int layer) const {
    if (row < 0 || layer < 0 || layer >= m_model->table().layers) return 0;
    if (row < m_imageRows && layer < m_image.width()) return m_image.pixel(layer, row);
    return computeColor(row, layer);
}

QRect RoutingHeatmap::cellRect(int row, int layer) const {
    const inspect::RoutingTable& t = m_model->table();
    if (row < 0 || row >= t.tokenCount() || layer < 0 || layer >= t.layers) return {};
    const Layout l = currentLayout();
    const QRect r(l.labelWidth + layer * l.cellWidth, l.headerHeight + row * l.rowHeight - verticalScrollBar()->value(),
                  l.cellWidth, l.rowHeight);
    const QRect visible(0, l.headerHeight, viewport()->width(), viewport()->height() - l.headerHeight);
    return r.intersects(visible) ? r : QRect();
}

RoutingHeatmap::Cell RoutingHeatmap::cellAt(const QPoint& pos) const {
    const inspect::RoutingTable& t = m_model->table();
    const Layout l = currentLayout();
    if (pos.y() < l.headerHeight || t.layers == 0) return {};
    const int row = (pos.y() - l.headerHeight + verticalScrollBar()->value()) / l.rowHeight;
    if (row < 0 || row >= t.tokenCount()) return {};
    if (pos.x() < l.labelWidth) return {row, -1};  // the label: the token, no layer
    const int layer = (pos.x() - l.labelWidth) / l.cellWidth;
    if (layer >= t.layers) return {row, -1};
    return {row, layer};
}

QString RoutingHeatmap::cellToolTip(int row, int layer) const {
    const inspect::RoutingTable& t = m_model->table();
    if (row < 0 || row >= t.tokenCount() || layer < 0 || layer >= t.layers) return {};
    const inspect::TokenRow& r = t.rows[static_cast<std::size_t>(row)];
    QString html = tr("<b>%1</b> &nbsp;token %2 (%3) · id %4<br>MoE layer %5 (model layer %6)")
                       .arg(visibleTokenHtml(r))
                       .arg(row)
                       .arg(r.isPrompt ? tr("prompt") : tr("answer"))
                       .arg(r.tokenId)
                       .arg(layer)
                       .arg(t.modelLayer(layer));
    if (!r.hasRouting()) return html + QStringLiteral("<br>") + tr("no routing recorded");
    html += QStringLiteral("<table cellspacing=\"0\" cellpadding=\"1\">");
    for (int k = 0; k < t.topK; ++k) {
        const int e = t.expertAt(row, layer, k);
        html += QStringLiteral(
                    "<tr><td><span style=\"background-color:%1\">&nbsp;&nbsp;&nbsp;</span></td>"
                    "<td>%2</td><td align=\"right\">&nbsp;%3</td></tr>")
                    .arg(expertColor(e).name(), tr("expert %1").arg(e))
                    .arg(t.weightAt(row, layer, k), 0, 'f', 3);
    }
    return html + QStringLiteral("</table>");
}

QSize RoutingHeatmap::sizeHint() const { return {420, 480}; }

QSize RoutingHeatmap::minimumSizeHint() const { return {160, 120}; }

void RoutingHeatmap::paintHeader(QPainter& p, const Layout& l, int width) const {
    const QPalette& pal = palette();
    const inspect::RoutingTable& t = m_model->table();
    p.fillRect(QRect(0, 0, width, l.headerHeight), pal.color(QPalette::Window));
    p.setPen(pal.color(QPalette::PlaceholderText));
    const QFontMetrics fm(p.font());
    p.drawText(QRect(4, 0, l.labelWidth - 6, l.headerHeight), Qt::AlignVCenter | Qt::AlignLeft,
               fm.elidedText(tr("token \\ layer"), Qt::ElideRight, l.labelWidth - 6));
    // Label every column that has room, else every n-th.
    const int needed = fm.horizontalAdvance(QStringLiteral("88")) + 4;
    const int every = std::max(1, (needed + l.cellWidth - 1) / std::max(1, l.cellWidth));
    p.setPen(pal.color(QPalette::WindowText));
    for (int layer = 0; layer < t.layers; layer += every) {
        const QRect r(l.labelWidth + layer * l.cellWidth, 0, l.cellWidth * every, l.headerHeight);
        p.drawText(QRect(r.left(), r.top(), std::max(needed, l.cellWidth), r.height()),
                   Qt::AlignVCenter | Qt::AlignLeft, layerHeader(t, layer));
    }
    p.setPen(pal.color(QPalette::Mid));
    p.drawLine(0, l.headerHeight - 1, width, l.headerHeight - 1);
}

void RoutingHeatmap::paintLabel(QPainter& p, int row, const QRect& rect) const {
    const inspect::RoutingTable& t = m_model->table();
    const inspect::TokenRow& r = t.rows[static_cast<std::size_t>(row)];
    const QPalette& pal = palette();
    const bool selected = row == m_model->selectedToken();
    const bool routed = m_model->selectedExpert().isValid() && m_model->isRoutedTo(row, m_model->selectedExpert());
    if (selected)
        p.fillRect(rect, pal.color(QPalette::Highlight));
    else if (routed)
        p.fillRect(rect, mixColors(expertColor(m_model->selectedExpert().expert), pal.color(QPalette::Base), 0.45));
    const QColor fg = selected ? pal.color(QPalette::HighlightedText)
                               : (r.isPrompt ? pal.color(QPalette::PlaceholderText) : pal.color(QPalette::Text));
    p.setPen(fg);
    const QFontMetrics fm(p.font());
    const int indexWidth = fm.horizontalAdvance(QStringLiteral("0000 "));
    p.drawText(QRect(rect.left() + 2, rect.top(), indexWidth - 4, rect.height()), Qt::AlignVCenter | Qt::AlignRight,
               QString::number(row));
    if (rect.height() >= kLabelRowHeight) {
        const QRect textRect(rect.left() + indexWidth + 2, rect.top(), rect.width() - indexWidth - 4, rect.height());
        p.drawText(textRect, Qt::AlignVCenter | Qt::AlignLeft,
                   fm.elidedText(visibleTokenText(r), Qt::ElideRight, textRect.width()));
    }
}

void RoutingHeatmap::paintLegend(QPainter& p, const QRect& rect) const {
    const QPalette& pal = palette();
    p.setPen(pal.color(QPalette::WindowText));
    if (m_mode == ColorMode::TopExpert) {
        p.drawText(rect, Qt::AlignLeft | Qt::AlignVCenter,
                   tr("Cell colour: the token's top-1 expert in that layer (same colour = same expert id)"));
        return;
    }
    const QFontMetrics fm(p.font());
    const QString label = tr("Top-1 gate weight");
    const int labelWidth = fm.horizontalAdvance(label) + 10;
    p.drawText(QRect(rect.left(), rect.top(), labelWidth, rect.height()), Qt::AlignLeft | Qt::AlignVCenter, label);
    const QRect ramp(rect.left() + labelWidth + fm.horizontalAdvance(QStringLiteral("0 ")), rect.center().y() - 5, 160,
                     10);
    for (int x = 0; x < ramp.width(); ++x) {
        p.fillRect(QRect(ramp.left() + x, ramp.top(), 1, ramp.height()), weightColor(double(x) / (ramp.width() - 1)));
    }
    p.drawText(QRect(rect.left() + labelWidth, rect.top(), ramp.left() - rect.left() - labelWidth, rect.height()),
               Qt::AlignLeft | Qt::AlignVCenter, QStringLiteral("0"));
    p.drawText(QRect(ramp.right() + 4, rect.top(), 60, rect.height()), Qt::AlignLeft | Qt::AlignVCenter,
               QString::number(m_weightScale));
}

void RoutingHeatmap::paintEvent(QPaintEvent*) {
    QPainter p(viewport());
    const QPalette& pal = palette();
    const QRect all = viewport()->rect();
    p.fillRect(all, pal.color(QPalette::Base));
    const inspect::RoutingTable& t = m_model->table();
    const Layout l = currentLayout();
    if (t.isEmpty() || t.layers == 0) {
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(all.adjusted(12, 12, -12, -12), Qt::AlignCenter | Qt::TextWordWrap,
                   t.isEmpty() ? tr("Select an answer to see how its tokens were routed.")
                               : tr("This message has no routing recorded."));
        return;
    }
    const int scroll = verticalScrollBar()->value();
    const int first = scroll / l.rowHeight;
    const int last = std::min(t.tokenCount(), (scroll + all.height()) / l.rowHeight + 1);
    p.setClipRect(QRect(0, l.headerHeight, all.width(), all.height() - l.headerHeight));
    const int gridWidth = t.layers * l.cellWidth;
    const int y0 = l.headerHeight + first * l.rowHeight - scroll;
    if (last > first) {
        p.drawImage(QRect(l.labelWidth, y0, gridWidth, (last - first) * l.rowHeight), m_image,
                    QRect(0, first, t.layers, last - first));
    }
    // One-pixel gaps in the background colour make single cells readable.
    const QColor gap = pal.color(QPalette::Base);
    const int height = (last - first) * l.rowHeight;
    if (l.cellWidth >= 6) {
        for (int c = 1; c < t.layers; ++c) p.fillRect(l.labelWidth + c * l.cellWidth, y0, 1, height, gap);
    }
    if (l.rowHeight >= 8) {
        for (int r = first; r < last; ++r)
            p.fillRect(l.labelWidth, y0 + (r - first + 1) * l.rowHeight - 1, gridWidth, 1, gap);
    }
    for (int r = first; r < last; ++r) {
        paintLabel(p, r, QRect(0, y0 + (r - first) * l.rowHeight, l.labelWidth - 2, l.rowHeight));
    }
    // Where the prompt ends and the answer starts.
    const int prompt = t.promptTokenCount();
    if (prompt > 0 && prompt < t.tokenCount() && prompt >= first && prompt <= last) {
        const int y = l.headerHeight + prompt * l.rowHeight - scroll;
        p.fillRect(0, y - 1, l.labelWidth + gridWidth, 2, pal.color(QPalette::Text));
    }
    const auto outline = [&](const QRect& r, const QColor& c) {
        p.setPen(QPen(c, 2));
        p.setBrush(Qt::NoBrush);
        p.drawRect(r.adjusted(1, 1, -1, -1));
    };
    const int sel = m_model->selectedToken();
    if (sel >= first && sel < last) {
        outline(QRect(l.labelWidth, l.headerHeight + sel * l.rowHeight - scroll, gridWidth, l.rowHeight),
                pal.color(QPalette::Highlight));
    }
    if (m_hover.isValid()) outline(cellRect(m_hover.row, m_hover.layer), pal.color(QPalette::Text));
    p.setClipping(false);
    paintHeader(p, l, all.width());
}

void RoutingHeatmap::resizeEvent(QResizeEvent* event) {
    QAbstractScrollArea::resizeEvent(event);
    updateScrollRange();
    if (m_follow) {
        m_scrollingForFollow = true;
        verticalScrollBar()->setValue(verticalScrollBar()->maximum());
        m_scrollingForFollow = false;
    }
}

void RoutingHeatmap::mouseMoveEvent(QMouseEvent* event) {
    Cell c = cellAt(event->position().toPoint());
    if (c.layer < 0) c = {};
    if (c != m_hover) {
        m_hover = c;
        viewport()->update();
        Q_EMIT cellHovered(c.row, c.layer);
    }
    QAbstractScrollArea::mouseMoveEvent(event);
}

void RoutingHeatmap::mousePressEvent(QMouseEvent* event) {
    const Cell c = cellAt(event->position().toPoint());
    if (event->button() != Qt::LeftButton || c.row < 0) {
        QAbstractScrollArea::mousePressEvent(event);
        return;
    }
    if ((event->modifiers() & Qt::ShiftModifier) && c.layer >= 0) {
        const ExpertSelection s{c.layer, m_model->table().top1(c.row, c.layer)};
        m_model->setSelectedExpert(s == m_model->selectedExpert() ? ExpertSelection{} : s);
    } else {
        m_model->setSelectedToken(c.row);
    }
    event->accept();
}

void RoutingHeatmap::mouseReleaseEvent(QMouseEvent* event) {
    // The press did the work; taking the release keeps it from travelling to the parent.
    if (event->button() == Qt::LeftButton)
        event->accept();
    else
        QAbstractScrollArea::mouseReleaseEvent(event);
}

void RoutingHeatmap::leaveEvent(QEvent* event) {
    if (m_hover.isValid()) {
        m_hover = {};
        viewport()->update();
        Q_EMIT cellHovered(-1, -1);
    }
    QAbstractScrollArea::leaveEvent(event);
}

void RoutingHeatmap::keyPressEvent(QKeyEvent* event) {
    const int n = m_model->tokenCount();
    const int sel = m_model->selectedToken();
    switch (event->key()) {
    case Qt::Key_Down: m_model->setSelectedToken(std::min(n - 1, sel + 1)); break;
    case Qt::Key_Up: m_model->setSelectedToken(sel <= 0 ? 0 : sel - 1); break;
    case Qt::Key_Home: m_model->setSelectedToken(n > 0 ? 0 : -1); break;
    case Qt::Key_End: m_model->setSelectedToken(n - 1); break;
    case Qt::Key_Escape: m_model->setSelectedExpert({}); break;
    default: QAbstractScrollArea::keyPressEvent(event); return;
    }
    event->accept();
}

bool RoutingHeatmap::viewportEvent(QEvent* event) {
    if (event->type() == QEvent::ToolTip) {
        const auto* help = static_cast<QHelpEvent*>(event);
        const Cell c = cellAt(help->pos());
        if (c.isValid()) {
            QToolTip::showText(help->globalPos(), cellToolTip(c.row, c.layer), viewport(), cellRect(c.row, c.layer));
        } else {
            QToolTip::hideText();
            event->ignore();
        }
        return true;
    }
    return QAbstractScrollArea::viewportEvent(event);
}

void RoutingHeatmap::changeEvent(QEvent* event) {
    QAbstractScrollArea::changeEvent(event);
    if (event->type() == QEvent::PaletteChange || event->type() == QEvent::StyleChange) {
        fillImageRows(0, m_imageRows);  // faded and empty cells mix with the background colour
        viewport()->update();
    } else if (event->type() == QEvent::FontChange) {
        updateScrollRange();
    }
}

QSize RoutingHeatmap::exportSize() const {
    const inspect::RoutingTable& t = m_model->table();
    if (t.isEmpty() || t.layers == 0) return {};
    const Layout l = exportLayout();
    const QFontMetrics fm(font());
    const int title = fm.height() + 12;
    const int legend = fm.height() + 16;
    const int width = std::max(l.labelWidth + t.layers * l.cellWidth + 12, fm.horizontalAdvance(exportTitle()) + 24);
    return {std::max(width, 360), title + l.headerHeight + t.tokenCount() * l.rowHeight + legend};
}

QString RoutingHeatmap::exportTitle() const {
    const inspect::RoutingTable& t = m_model->table();
    return tr("Routing of message %1: %2 tokens × %3 MoE layers, top-%4")
        .arg(t.messageId)
        .arg(t.tokenCount())
        .arg(t.layers)
        .arg(t.topK);
}

void RoutingHeatmap::renderExport(QPainter& p) const {
    const QSize size = exportSize();
    if (size.isEmpty()) return;
    const inspect::RoutingTable& t = m_model->table();
    const QPalette& pal = palette();
    const Layout l = exportLayout();
    const QFontMetrics fm(font());
    p.save();
    p.setFont(font());
    p.fillRect(QRect(QPoint(0, 0), size), pal.color(QPalette::Base));
    const int title = fm.height() + 12;
    p.setPen(pal.color(QPalette::WindowText));
    QFont bold = font();
    bold.setBold(true);
    p.setFont(bold);
    p.drawText(QRect(8, 0, size.width() - 16, title), Qt::AlignVCenter | Qt::AlignLeft, exportTitle());
    p.setFont(font());
    p.translate(0, title);
    paintHeader(p, l, size.width());
    p.setRenderHint(QPainter::Antialiasing, false);
    const int gap = l.rowHeight >= 8 ? 1 : 0;
    for (int r = 0; r < t.tokenCount(); ++r) {
        const int y = l.headerHeight + r * l.rowHeight;
        paintLabel(p, r, QRect(0, y, l.labelWidth - 2, l.rowHeight));
        for (int c = 0; c < t.layers; ++c) {
            p.fillRect(QRect(l.labelWidth + c * l.cellWidth, y, l.cellWidth - 1, l.rowHeight - gap),
                       QColor(cellColor(r, c)));
        }
    }
    const int prompt = t.promptTokenCount();
    if (prompt > 0 && prompt < t.tokenCount()) {
        p.fillRect(0, l.headerHeight + prompt * l.rowHeight - 1, l.labelWidth + t.layers * l.cellWidth, 2,
                   pal.color(QPalette::Text));
    }
    const int legendTop = l.headerHeight + t.tokenCount() * l.rowHeight;
    paintLegend(p, QRect(8, legendTop + 4, size.width() - 16, fm.height() + 8));
    p.restore();
}

}  // namespace dsv2::ui
