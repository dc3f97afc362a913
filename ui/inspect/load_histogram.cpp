#include "load_histogram.h"

#include <QHelpEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>

#include <algorithm>
#include <numeric>

#include "inspect_colors.h"
#include "token_text.h"

namespace dsv2::ui {
namespace {

constexpr int kMargin = 6;
constexpr int kMinChartWidth = 190;
constexpr int kPlotHeight = 64;
constexpr int kSpacing = 10;

}  // namespace

LoadHistogram::LoadHistogram(InspectionModel* model, QWidget* parent)
    : QWidget(parent), m_model(model), m_frame(this, [this] { update(); }) {
    setAccessibleName(tr("Expert load histograms"));
    setAccessibleDescription(tr("One bar chart per MoE layer with the layer's max/mean load and normalized entropy"));
    QSizePolicy policy(QSizePolicy::Preferred, QSizePolicy::Preferred);
    policy.setHeightForWidth(true);
    setSizePolicy(policy);
    const auto relayout = [this] {
        updateGeometry();
        update();
    };
    connect(m_model, &InspectionModel::tableReset, this, relayout);
    connect(m_model, &InspectionModel::conversationChanged, this, relayout);
    connect(m_model, &InspectionModel::rowsAppended, this, [this] { m_frame.request(); });
    connect(m_model, &InspectionModel::selectedExpertChanged, this, [this] { update(); });
}

void LoadHistogram::setScope(LoadScope scope) {
    if (scope == m_scope) return;
    m_scope = scope;
    updateGeometry();
    update();
}

void LoadHistogram::setMeasure(inspect::LoadMeasure measure) {
    if (measure == m_measure) return;
    m_measure = measure;
    update();
}

void LoadHistogram::setSorted(bool sorted) {
    if (sorted == m_sorted) return;
    m_sorted = sorted;
    update();
}

inspect::LoadMatrix LoadHistogram::load() const { return m_model->load(m_scope, m_measure); }

inspect::LayerImbalance LoadHistogram::figures(int layer) const { return load().imbalance(layer); }

QString LoadHistogram::chartCaption(int layer) const {
    const inspect::LayerImbalance im = figures(layer);
    const QString name = tr("L%1").arg(m_model->table().modelLayer(layer));
    if (im.total <= 0) return name;
    return tr("%1  max/mean %2  H %3").arg(name).arg(im.maxOverMean, 0, 'f', 2).arg(im.normalizedEntropy, 0, 'f', 2);
}

LoadHistogram::Grid LoadHistogram::gridFor(int width, int) const {
    Grid g;
    const QFontMetrics fm(font());
    g.top = kMargin + fm.height() + 8;
    const int usable = std::max(kMinChartWidth, width - 2 * kMargin);
    g.columns = std::max(1, usable / kMinChartWidth);
    g.chartWidth = usable / g.columns;
    g.chartHeight = fm.height() + 4 + kPlotHeight + kSpacing;
    return g;
}

QRect LoadHistogram::chartRect(const Grid& g, int layer) const {
    const int col = layer % g.columns;
    const int row = layer / g.columns;
    return {kMargin + col * g.chartWidth, g.top + row * g.chartHeight, g.chartWidth - kSpacing,
            g.chartHeight - kSpacing};
}

QRect LoadHistogram::plotArea(const QRect& chart) const {
    const QFontMetrics fm(font());
    return chart.adjusted(0, fm.height() + 4, 0, 0);
}

std::vector<int> LoadHistogram::order(const inspect::LoadMatrix& m, int layer) const {
    std::vector<int> experts(static_cast<std::size_t>(m.experts()));
    std::iota(experts.begin(), experts.end(), 0);
    if (m_sorted) {
        std::stable_sort(experts.begin(), experts.end(), [&](int a, int b) { return m.at(layer, a) > m.at(layer, b); });
    }
    return experts;
}

int LoadHistogram::heightForWidth(int width) const {
    const int layers = m_model->table().layers > 0 ? m_model->table().layers : load().layers();
    if (layers == 0) return 120;
    const Grid g = gridFor(width, layers);
    const int rows = (layers + g.columns - 1) / g.columns;
    return g.top + rows * g.chartHeight + kMargin;
}

QSize LoadHistogram::sizeHint() const {
    return {3 * kMinChartWidth + 2 * kMargin, heightForWidth(3 * kMinChartWidth + 2 * kMargin)};
}

QSize LoadHistogram::minimumSizeHint() const { return {kMinChartWidth + 2 * kMargin, 120}; }

QRect LoadHistogram::barRect(int layer, int expert) const {
    const inspect::LoadMatrix m = load();
    if (layer < 0 || layer >= m.layers() || expert < 0 || expert >= m.experts()) return {};
    const QRect plot = plotArea(chartRect(gridFor(width(), m.layers()), layer));
    const std::vector<int> ord = order(m, layer);
    const auto pos = static_cast<int>(std::find(ord.begin(), ord.end(), expert) - ord.begin());
    const int x0 = plot.left() + pos * plot.width() / m.experts();
    const int x1 = plot.left() + (pos + 1) * plot.width() / m.experts();
    return {x0, plot.top(), std::max(1, x1 - x0), plot.height()};
}

LoadHistogram::Bar LoadHistogram::barAt(const QPoint& p) const {
    const inspect::LoadMatrix m = load();
    if (m.layers() == 0 || m.experts() == 0) return {};
    const Grid g = gridFor(width(), m.layers());
    for (int layer = 0; layer < m.layers(); ++layer) {
        const QRect plot = plotArea(chartRect(g, layer));
        if (!plot.contains(p)) continue;
        const int pos = std::clamp((p.x() - plot.left()) * m.experts() / std::max(1, plot.width()), 0, m.experts() - 1);
        return {layer, order(m, layer)[static_cast<std::size_t>(pos)]};
    }
    return {};
}

QString LoadHistogram::barToolTip(int layer, int expert) const {
    const inspect::LoadMatrix m = load();
    if (layer < 0 || layer >= m.layers() || expert < 0 || expert >= m.experts()) return {};
    const inspect::LayerImbalance im = m.imbalance(layer);
    const double v = m.at(layer, expert);
    const double mean = im.total / m.experts();
    const QString amount =
        m_measure == inspect::LoadMeasure::Count ? formatRoutes(v) : tr("gate weight %1").arg(v, 0, 'f', 3);
    return tr("<span style=\"background-color:%1\">&nbsp;&nbsp;&nbsp;</span> <b>Expert %2</b>, layer L%3<br>%4 · %5× "
              "the mean")
        .arg(expertColor(expert).name())
        .arg(expert)
        .arg(m_model->table().modelLayer(layer))
        .arg(amount)
        .arg(mean > 0 ? v / mean : 0.0, 0, 'f', 2);
}

void LoadHistogram::paintCharts(QPainter& p, int width, const inspect::LoadMatrix& m) const {
    const QPalette& pal = palette();
    const QFontMetrics fm(p.font());
    const QString what =
        m_measure == inspect::LoadMeasure::Count ? tr("tokens per expert") : tr("gate weight per expert");
    const QString scope =
        m_scope == LoadScope::Message ? tr("message %1").arg(m_model->messageId()) : tr("conversation");
    QFont bold = p.font();
    bold.setBold(true);
    p.setFont(bold);
    p.setPen(pal.color(QPalette::WindowText));
    p.drawText(QRect(kMargin, kMargin, width - 2 * kMargin, fm.height()), Qt::AlignLeft | Qt::AlignVCenter,
               tr("Expert load per layer (%1, %2, %3 tokens)").arg(scope, what).arg(m.tokens()));
    p.setFont(font());
    if (m.layers() == 0 || m.experts() == 0) return;
    const Grid g = gridFor(width, m.layers());
    const ExpertSelection sel = m_model->selectedExpert();
    const QColor axis = pal.color(QPalette::Mid);
    for (int layer = 0; layer < m.layers(); ++layer) {
        const QRect chart = chartRect(g, layer);
        const QRect plot = plotArea(chart);
        const inspect::LayerImbalance im = m.imbalance(layer);
        // The caption: worse balance draws the eye with the "bright" text colour.
        p.setPen(im.maxOverMean >= 3.0 ? pal.color(QPalette::Highlight) : pal.color(QPalette::WindowText));
        p.drawText(QRect(chart.left(), chart.top(), chart.width(), fm.height()), Qt::AlignLeft | Qt::AlignVCenter,
                   fm.elidedText(chartCaption(layer), Qt::ElideRight, chart.width()));
        p.fillRect(plot, mixColors(pal.color(QPalette::Base), pal.color(QPalette::Text), 0.035));
        const double max = im.total > 0 ? *std::max_element(m.layerData(layer), m.layerData(layer) + m.experts()) : 0.0;
        const std::vector<int> ord = order(m, layer);
        for (int pos = 0; pos < m.experts() && max > 0; ++pos) {
            const int e = ord[static_cast<std::size_t>(pos)];
            const double v = m.at(layer, e);
            if (v <= 0) continue;
            const int x0 = plot.left() + pos * plot.width() / m.experts();
            const int x1 = plot.left() + (pos + 1) * plot.width() / m.experts();
            const int h = std::max(1, static_cast<int>(v / max * plot.height() + 0.5));
            QColor c = expertColor(e);
            if (sel.isValid() && !(sel.expert == e && sel.matches(layer)))
                c = mixColors(c, pal.color(QPalette::Base), 0.75);
            p.fillRect(QRect(x0, plot.bottom() - h + 1, std::max(1, x1 - x0 - (x1 - x0 >= 4 ? 1 : 0)), h), c);
        }
        if (max > 0) {
            const double mean = im.total / m.experts();
            const int y = plot.bottom() - static_cast<int>(mean / max * plot.height() + 0.5);
            p.setPen(QPen(pal.color(QPalette::Text), 1, Qt::DashLine));
            p.drawLine(plot.left(), y, plot.right(), y);
        }
        p.setPen(axis);
        p.drawLine(plot.left(), plot.bottom() + 1, plot.right(), plot.bottom() + 1);
    }
}

void LoadHistogram::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), palette().color(QPalette::Base));
    paintCharts(p, width(), load());
}

void LoadHistogram::mousePressEvent(QMouseEvent* event) {
    const Bar b = barAt(event->position().toPoint());
    if (event->button() != Qt::LeftButton || b.expert < 0) {
        QWidget::mousePressEvent(event);
        return;
    }
    const ExpertSelection s{b.layer, b.expert};
    m_model->setSelectedExpert(s == m_model->selectedExpert() ? ExpertSelection{} : s);
}

bool LoadHistogram::event(QEvent* event) {
    if (event->type() == QEvent::ToolTip) {
        const auto* help = static_cast<QHelpEvent*>(event);
        const Bar b = barAt(help->pos());
        if (b.expert >= 0)
            QToolTip::showText(help->globalPos(), barToolTip(b.layer, b.expert), this, barRect(b.layer, b.expert));
        else
            QToolTip::hideText();
        return true;
    }
    return QWidget::event(event);
}

QSize LoadHistogram::exportSize() const {
    const inspect::LoadMatrix m = load();
    if (m.layers() == 0) return {};
    const int columns = std::min(m.layers(), m.layers() > 12 ? 6 : 4);
    const int w = columns * kMinChartWidth + 2 * kMargin;
    return {w, heightForWidth(w)};
}

void LoadHistogram::renderExport(QPainter& painter) const {
    const QSize size = exportSize();
    if (size.isEmpty()) return;
    painter.save();
    painter.setFont(font());
    painter.setRenderHint(QPainter::Antialiasing, false);
    painter.fillRect(QRect(QPoint(0, 0), size), palette().color(QPalette::Base));
    paintCharts(painter, size.width(), load());
    painter.restore();
}

QString LoadHistogram::exportTitle() const { return tr("Expert load per layer, message %1").arg(m_model->messageId()); }

}  // namespace dsv2::ui
