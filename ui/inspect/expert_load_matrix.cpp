#include "expert_load_matrix.h"

#include <QHelpEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>

#include <algorithm>

#include "inspect_colors.h"
#include "token_text.h"

namespace dsv2::ui {
namespace {

constexpr int kMargin = 6;
constexpr int kStripHeight = 8;

}  // namespace

ExpertLoadMatrix::ExpertLoadMatrix(InspectionModel* model, QWidget* parent)
    : QWidget(parent), m_model(model), m_frame(this, [this] { update(); }) {
    setAccessibleName(tr("Expert load matrix"));
    setAccessibleDescription(tr("MoE layers by experts; each cell is the expert's load relative to the layer's mean"));
    setMouseTracking(true);
    const auto repaint = [this] { update(); };
    connect(m_model, &InspectionModel::tableReset, this, repaint);
    connect(m_model, &InspectionModel::rowsAppended, this, [this] { m_frame.request(); });
    connect(m_model, &InspectionModel::conversationChanged, this, repaint);
    connect(m_model, &InspectionModel::selectedExpertChanged, this, repaint);
}

void ExpertLoadMatrix::setScope(LoadScope scope) {
    if (scope == m_scope) return;
    m_scope = scope;
    update();
}

void ExpertLoadMatrix::setMeasure(inspect::LoadMeasure measure) {
    if (measure == m_measure) return;
    m_measure = measure;
    update();
}

inspect::LoadMatrix ExpertLoadMatrix::load() const { return m_model->load(m_scope, m_measure); }

ExpertLoadMatrix::Layout ExpertLoadMatrix::layoutFor(const QSize& size, int layers, int experts) const {
    Layout l;
    const QFontMetrics fm(font());
    const int title = fm.height() + 6;
    const int ids = fm.height();
    const int labels = fm.horizontalAdvance(QStringLiteral("L00 "));
    l.figuresWidth = fm.horizontalAdvance(QStringLiteral(" ×99.9  H 0.99 "));
    const int legend = fm.height() + 10;
    l.stripHeight = kStripHeight;
    const int top = kMargin + title + ids + l.stripHeight + 2;
    if (layers <= 0 || experts <= 0) return l;
    l.cellWidth = std::clamp((size.width() - 2 * kMargin - labels - l.figuresWidth) / experts, 2, 18);
    l.cellHeight = std::clamp((size.height() - top - legend - kMargin) / layers, 3, 18);
    l.grid = QRect(kMargin + labels, top, l.cellWidth * experts, l.cellHeight * layers);
    return l;
}

QRgb ExpertLoadMatrix::cellColor(int layer, int expert) const {
    const inspect::LoadMatrix m = load();
    if (layer < 0 || layer >= m.layers() || expert < 0 || expert >= m.experts()) return 0;
    const double total = m.imbalance(layer).total;
    const double mean = total / m.experts();
    return loadRatioColor(mean > 0 ? m.at(layer, expert) / mean : 0.0, palette()).rgb();
}

QRect ExpertLoadMatrix::cellRect(int layer, int expert) const {
    const inspect::LoadMatrix m = load();
    const Layout l = layoutFor(size(), m.layers(), m.experts());
    if (expert < 0 || expert >= m.experts() || layer >= m.layers()) return {};
    if (layer < 0) {
        return {l.grid.left() + expert * l.cellWidth, l.grid.top() - l.stripHeight - 2, l.cellWidth, l.stripHeight};
    }
    return {l.grid.left() + expert * l.cellWidth, l.grid.top() + layer * l.cellHeight, l.cellWidth, l.cellHeight};
}

ExpertLoadMatrix::Cell ExpertLoadMatrix::cellAt(const QPoint& pos) const {
    const inspect::LoadMatrix m = load();
    const Layout l = layoutFor(size(), m.layers(), m.experts());
    if (l.grid.isEmpty() || pos.x() < l.grid.left() || pos.x() >= l.grid.right() + 1) return {};
    const int expert = (pos.x() - l.grid.left()) / l.cellWidth;
    if (pos.y() >= l.grid.top() - l.stripHeight - 2 && pos.y() < l.grid.top()) return {-1, expert};
    if (pos.y() < l.grid.top() || pos.y() > l.grid.bottom()) return {};
    return {(pos.y() - l.grid.top()) / l.cellHeight, expert};
}

QString ExpertLoadMatrix::cellToolTip(int layer, int expert) const {
    const inspect::LoadMatrix m = load();
    if (expert < 0 || expert >= m.experts() || layer >= m.layers()) return {};
    const QString swatch = QStringLiteral("<span style=\"background-color:%1\">&nbsp;&nbsp;&nbsp;</span> ")
                               .arg(expertColor(expert).name());
    if (layer < 0) {
        double total = 0;
        for (int l = 0; l < m.layers(); ++l) total += m.at(l, expert);
        return swatch + tr("<b>Expert %1</b>, all layers: %2 %3<br>Click to highlight its tokens in every layer")
                            .arg(expert)
                            .arg(total, 0, 'g', 4)
                            .arg(m_measure == inspect::LoadMeasure::Count ? tr("token routes") : tr("gate weight"));
    }
    const inspect::RoutingTable& t = m_model->table();
    const double total = m.imbalance(layer).total;
    const double mean = total / m.experts();
    const double v = m.at(layer, expert);
    const QString amount =
        m_measure == inspect::LoadMeasure::Count ? formatRoutes(v) : tr("gate weight %1").arg(v, 0, 'f', 3);
    return swatch + tr("<b>Expert %1</b>, MoE layer %2 (model layer %3)<br>%4 · %5 % of the layer · %6× the mean")
                        .arg(expert)
                        .arg(layer)
                        .arg(t.modelLayer(layer))
                        .arg(amount)
                        .arg(total > 0 ? 100.0 * v / total : 0.0, 0, 'f', 1)
                        .arg(mean > 0 ? v / mean : 0.0, 0, 'f', 2);
}

QString ExpertLoadMatrix::scopeText() const {
    const inspect::LoadMatrix m = load();
    const QString what =
        m_measure == inspect::LoadMeasure::Count ? tr("tokens per expert") : tr("gate weight per expert");
    const QString tokens = formatTokenCount(m.tokens());
    if (m_scope == LoadScope::Message)
        return tr("Expert load of message %1 (%2): %3").arg(m_model->messageId()).arg(tokens, what);
    const int answers = m_model->conversationMessageCount();
    const QString count = answers == 1 ? tr("1 answer") : tr("%1 answers").arg(answers);
    return tr("Expert load of the conversation (%1, %2): %3").arg(count, tokens, what);
}

QSize ExpertLoadMatrix::sizeHint() const {
    const QSize natural = exportSize();
    return natural.isEmpty() ? QSize(480, 320) : natural.boundedTo(QSize(900, 700));
}

QSize ExpertLoadMatrix::minimumSizeHint() const { return {240, 160}; }

void ExpertLoadMatrix::paintMatrix(QPainter& p, const QSize& size, const inspect::LoadMatrix& m) const {
    const QPalette& pal = palette();
    const QFontMetrics fm(p.font());
    p.fillRect(QRect(QPoint(0, 0), size), pal.color(QPalette::Base));
    p.setPen(pal.color(QPalette::WindowText));
    QFont bold = p.font();
    bold.setBold(true);
    p.setFont(bold);
    p.drawText(QRect(kMargin, kMargin, size.width() - 2 * kMargin, fm.height()), Qt::AlignLeft | Qt::AlignVCenter,
               fm.elidedText(scopeText(), Qt::ElideRight, size.width() - 2 * kMargin));
    p.setFont(font());
    if (m.layers() == 0 || m.experts() == 0) {
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(QRect(QPoint(0, 0), size), Qt::AlignCenter, tr("No routing to count yet."));
        return;
    }
    const Layout l = layoutFor(size, m.layers(), m.experts());
    const ExpertSelection sel = m_model->selectedExpert();
    const inspect::RoutingTable& t = m_model->table();
    // Expert ids every 8 columns (or wider when the columns are narrow), then the palette strip.
    const int idEvery = std::max(8, ((fm.horizontalAdvance(QStringLiteral("160")) + 4) / l.cellWidth + 7) / 8 * 8);
    p.setPen(pal.color(QPalette::PlaceholderText));
    const int idsTop = l.grid.top() - l.stripHeight - 2 - fm.height();
    for (int e = 0; e < m.experts(); e += idEvery) {
        p.drawText(QRect(l.grid.left() + e * l.cellWidth, idsTop, 40, fm.height()), Qt::AlignLeft | Qt::AlignBottom,
                   QString::number(e));
    }
    for (int e = 0; e < m.experts(); ++e) {
        p.fillRect(QRect(l.grid.left() + e * l.cellWidth, l.grid.top() - l.stripHeight - 2, l.cellWidth, l.stripHeight),
                   expertColor(e));
    }
    const bool gaps = l.cellWidth >= 5 && l.cellHeight >= 5;
    for (int layer = 0; layer < m.layers(); ++layer) {
        const int y = l.grid.top() + layer * l.cellHeight;
        p.setPen(pal.color(QPalette::WindowText));
        p.drawText(QRect(kMargin, y, l.grid.left() - kMargin - 2, l.cellHeight), Qt::AlignRight | Qt::AlignVCenter,
                   l.cellHeight >= fm.height() - 4 || layer % 2 == 0 ? QStringLiteral("L%1").arg(t.modelLayer(layer))
                                                                     : QString());
        const inspect::LayerImbalance im = m.imbalance(layer);
        const double mean = im.total / m.experts();
        for (int e = 0; e < m.experts(); ++e) {
            const QRect cell(l.grid.left() + e * l.cellWidth, y, l.cellWidth - (gaps ? 1 : 0),
                             l.cellHeight - (gaps ? 1 : 0));
            p.fillRect(cell, loadRatioColor(mean > 0 ? m.at(layer, e) / mean : 0.0, pal));
        }
        if (im.total > 0 && (l.cellHeight >= fm.height() - 4 || layer % 2 == 0)) {
            p.setPen(pal.color(QPalette::WindowText));
            p.drawText(QRect(l.grid.right() + 6, y, l.figuresWidth, l.cellHeight), Qt::AlignLeft | Qt::AlignVCenter,
                       tr("×%1  H %2").arg(im.maxOverMean, 0, 'f', 1).arg(im.normalizedEntropy, 0, 'f', 2));
        }
    }
    // The selection: the cell, or the whole column for "this expert in every layer".
    if (sel.isValid() && sel.expert < m.experts()) {
        p.setPen(QPen(pal.color(QPalette::Text), 2));
        p.setBrush(Qt::NoBrush);
        const int x = l.grid.left() + sel.expert * l.cellWidth;
        if (sel.layer >= 0)
            p.drawRect(QRect(x - 1, l.grid.top() + sel.layer * l.cellHeight - 1, l.cellWidth + 1, l.cellHeight + 1));
        else
            p.drawRect(
                QRect(x - 1, l.grid.top() - l.stripHeight - 3, l.cellWidth + 1, l.grid.height() + l.stripHeight + 3));
    }
    // Legend: the diverging scale.
    const int ly = l.grid.bottom() + 6;
    const QString under = tr("under-used");
    const QString over = tr("over-used (× mean)");
    int x = l.grid.left();
    p.setPen(pal.color(QPalette::WindowText));
    p.drawText(QRect(x, ly, fm.horizontalAdvance(under) + 4, fm.height()), Qt::AlignLeft | Qt::AlignVCenter, under);
    x += fm.horizontalAdvance(under) + 6;
    const double stops[] = {0.0, 0.25, 0.5, 1.0, 2.0, 4.0};
    const char* names[] = {"0", "¼", "½", "1", "2", "4"};
    for (int i = 0; i < 6; ++i) {
        const QRect swatch(x, ly + 1, 22, fm.height() - 2);
        p.fillRect(swatch, loadRatioColor(stops[i], pal));
        p.setPen(textColorOn(loadRatioColor(stops[i], pal)));
        p.drawText(swatch, Qt::AlignCenter, QString::fromUtf8(names[i]));
        x += 24;
    }
    p.setPen(pal.color(QPalette::WindowText));
    p.drawText(QRect(x + 4, ly, fm.horizontalAdvance(over) + 8, fm.height()), Qt::AlignLeft | Qt::AlignVCenter, over);
}

void ExpertLoadMatrix::paintEvent(QPaintEvent*) {
    QPainter p(this);
    paintMatrix(p, size(), load());
    if (m_hover.expert >= 0) {
        p.setPen(QPen(palette().color(QPalette::Text), 1));
        p.setBrush(Qt::NoBrush);
        p.drawRect(cellRect(m_hover.layer, m_hover.expert).adjusted(0, 0, -1, -1));
    }
}

void ExpertLoadMatrix::mouseMoveEvent(QMouseEvent* event) {
    const Cell c = cellAt(event->position().toPoint());
    if (c != m_hover) {
        m_hover = c;
        update();
    }
}

void ExpertLoadMatrix::mousePressEvent(QMouseEvent* event) {
    const Cell c = cellAt(event->position().toPoint());
    if (event->button() != Qt::LeftButton || c.expert < 0) {
        QWidget::mousePressEvent(event);
        return;
    }
    const ExpertSelection s{c.layer, c.expert};
    m_model->setSelectedExpert(s == m_model->selectedExpert() ? ExpertSelection{} : s);
}

void ExpertLoadMatrix::leaveEvent(QEvent* event) {
    m_hover = {};
    update();
    QWidget::leaveEvent(event);
}

bool ExpertLoadMatrix::event(QEvent* event) {
    if (event->type() == QEvent::ToolTip) {
        const auto* help = static_cast<QHelpEvent*>(event);
        const Cell c = cellAt(help->pos());
        if (c.expert >= 0)
            QToolTip::showText(help->globalPos(), cellToolTip(c.layer, c.expert), this, cellRect(c.layer, c.expert));
        else
            QToolTip::hideText();
        return true;
    }
    return QWidget::event(event);
}

QSize ExpertLoadMatrix::exportSize() const {
    const inspect::LoadMatrix m = load();
    if (m.layers() == 0 || m.experts() == 0) return {};
    const QFontMetrics fm(font());
    const int labels = fm.horizontalAdvance(QStringLiteral("L00 "));
    const int figures = fm.horizontalAdvance(QStringLiteral(" ×99.9  H 0.99 "));
    const int cellWidth = m.experts() > 96 ? 6 : 10;
    const int top = kMargin + 2 * fm.height() + 6 + kStripHeight + 2;
    const int width =
        std::max(2 * kMargin + labels + figures + m.experts() * cellWidth, fm.horizontalAdvance(scopeText()) + 24);
    return {width, top + m.layers() * 14 + fm.height() + 10 + kMargin};
}

void ExpertLoadMatrix::renderExport(QPainter& painter) const {
    const QSize size = exportSize();
    if (size.isEmpty()) return;
    painter.save();
    painter.setFont(font());
    painter.setRenderHint(QPainter::Antialiasing, false);
    paintMatrix(painter, size, load());
    painter.restore();
}

QString ExpertLoadMatrix::exportTitle() const { return scopeText(); }

}  // namespace dsv2::ui
