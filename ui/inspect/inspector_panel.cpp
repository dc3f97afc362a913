#include "inspector_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QMenu>
#include <QScrollArea>
#include <QSignalBlocker>
#include <QSplitter>
#include <QTabWidget>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>

#include "expert_load_matrix.h"
#include "inspect_colors.h"
#include "kv_cache_view.h"
#include "load_histogram.h"
#include "plot_export.h"
#include "routing_heatmap.h"
#include "token_inspector.h"
#include "token_text.h"
#include "token_text_view.h"

namespace dsv2::ui {
namespace {

QScrollArea* scrolled(QWidget* content, QWidget* parent) {
    auto* area = new QScrollArea(parent);
    area->setWidget(content);
    area->setWidgetResizable(true);
    area->setFrameShape(QFrame::NoFrame);
    area->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    return area;
}

}  // namespace

InspectorPanel::InspectorPanel(QWidget* parent)
    : QWidget(parent), m_model(new InspectionModel(this)), m_frame(this, [this] {
          updateSummary();
          if (m_model->selectedExpert().isValid()) emitHighlight();
      }) {
    qRegisterMetaType<dsv2::ui::TokenTextSpan>();
    qRegisterMetaType<QVector<dsv2::ui::TokenTextSpan>>();
    setAccessibleName(tr("Inspection"));
    m_heatmap = new RoutingHeatmap(m_model, this);
    m_text = new TokenTextView(m_model, this);
    m_inspector = new TokenInspector(m_model, this);
    m_matrix = new ExpertLoadMatrix(m_model, this);
    m_histograms = new LoadHistogram(m_model, this);
    m_cache = new KvCacheView(this);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(2);
    auto* bar = new QWidget(this);
    buildToolbar(bar);
    layout->addWidget(bar);

    m_tabs = new QTabWidget(this);
    m_tabs->setDocumentMode(true);
    // Routing: heatmap | text over token inspector.
    auto* routing = new QSplitter(Qt::Horizontal, m_tabs);
    routing->addWidget(m_heatmap);
    auto* right = new QSplitter(Qt::Vertical, routing);
    right->addWidget(m_text);
    right->addWidget(m_inspector);
    right->setStretchFactor(0, 3);
    right->setStretchFactor(1, 2);
    routing->addWidget(right);
    routing->setStretchFactor(0, 3);
    routing->setStretchFactor(1, 2);
    m_tabs->addTab(routing, tr("&Routing"));
    // Load: matrix over the histograms, scrolled together.
    auto* load = new QWidget(m_tabs);
    auto* loadLayout = new QVBoxLayout(load);
    loadLayout->setContentsMargins(0, 0, 0, 0);
    loadLayout->addWidget(m_matrix);
    loadLayout->addWidget(m_histograms);
    m_tabs->addTab(scrolled(load, m_tabs), tr("&Load"));
    m_tabs->addTab(scrolled(m_cache, m_tabs), tr("&KV cache"));
    layout->addWidget(m_tabs, 1);
    connect(m_tabs, &QTabWidget::currentChanged, this, &InspectorPanel::showControlsFor);
    showControlsFor(m_tabs->currentIndex());

    connect(m_model, &InspectionModel::tableReset, this, [this] {
        fillLayerChoice();
        updateSummary();
        emitHighlight();
    });
    connect(m_model, &InspectionModel::rowsAppended, this, [this] { m_frame.request(); });
    connect(m_model, &InspectionModel::liveChanged, this, &InspectorPanel::updateSummary);
    connect(m_model, &InspectionModel::selectedExpertChanged, this, &InspectorPanel::emitHighlight);
    connect(m_model, &InspectionModel::selectedTokenChanged, this,
            [this](int row) { Q_EMIT tokenSelected(m_model->messageId(), row); });
    updateSummary();
}

void InspectorPanel::buildToolbar(QWidget* bar) {
    auto* h = new QHBoxLayout(bar);
    h->setContentsMargins(6, 4, 6, 2);
    m_summary = new QLabel(bar);
    m_summary->setAccessibleName(tr("Inspected message"));
    h->addWidget(m_summary, 1);

    m_heatmapMode = new QComboBox(bar);
    m_heatmapMode->setAccessibleName(tr("Heatmap colour"));
    m_heatmapMode->addItem(tr("Top-1 expert"));
    m_heatmapMode->addItem(tr("Gate weight"));
    m_heatmapMode->setToolTip(tr("Colour heatmap cells by the top-1 expert, or by its gate weight"));
    connect(m_heatmapMode, &QComboBox::currentIndexChanged, this, [this](int i) {
        m_heatmap->setColorMode(i == 0 ? RoutingHeatmap::ColorMode::TopExpert : RoutingHeatmap::ColorMode::GateWeight);
    });
    h->addWidget(m_heatmapMode);

    m_textMode = new QComboBox(bar);
    m_textMode->setAccessibleName(tr("Text colour"));
    m_textMode->addItem(tr("Text: selected expert"), QVariant::fromValue(int(TokenTextView::Coloring::SelectedExpert)));
    m_textMode->addItem(tr("Text: confidence"), QVariant::fromValue(int(TokenTextView::Coloring::Confidence)));
    m_textMode->addItem(tr("Text: expert at layer"), QVariant::fromValue(int(TokenTextView::Coloring::ExpertAtLayer)));
    m_textMode->addItem(tr("Text: plain"), QVariant::fromValue(int(TokenTextView::Coloring::Plain)));
    m_textLayer = new QComboBox(bar);
    m_textLayer->setAccessibleName(tr("MoE layer for the text colours"));
    m_textLayer->setEnabled(false);
    connect(m_textMode, &QComboBox::currentIndexChanged, this, [this] {
        const auto c = static_cast<TokenTextView::Coloring>(m_textMode->currentData().toInt());
        m_text->setColoring(c);
        m_textLayer->setEnabled(c == TokenTextView::Coloring::ExpertAtLayer);
    });
    connect(m_textLayer, &QComboBox::currentIndexChanged, this, [this](int i) {
        if (i >= 0) m_text->setColorLayer(m_textLayer->itemData(i).toInt());
    });
    h->addWidget(m_textMode);
    h->addWidget(m_textLayer);

    m_scope = new QComboBox(bar);
    m_scope->setAccessibleName(tr("Load scope"));
    m_scope->addItem(tr("This message"));
    m_scope->addItem(tr("Conversation"));
    connect(m_scope, &QComboBox::currentIndexChanged, this, [this](int i) {
        const LoadScope s = i == 0 ? LoadScope::Message : LoadScope::Conversation;
        m_matrix->setScope(s);
        m_histograms->setScope(s);
    });
    m_measure = new QComboBox(bar);
    m_measure->setAccessibleName(tr("Load measure"));
    m_measure->addItem(tr("Count tokens"));
    m_measure->addItem(tr("Sum gate weight"));
    connect(m_measure, &QComboBox::currentIndexChanged, this, [this](int i) {
        const auto m = i == 0 ? inspect::LoadMeasure::Count : inspect::LoadMeasure::Weight;
        m_matrix->setMeasure(m);
        m_histograms->setMeasure(m);
    });
    m_sorted = new QCheckBox(tr("Sort"), bar);
    m_sorted->setToolTip(tr("Sort each layer's bars busiest expert first"));
    connect(m_sorted, &QCheckBox::toggled, m_histograms, &LoadHistogram::setSorted);
    h->addWidget(m_scope);
    h->addWidget(m_measure);
    h->addWidget(m_sorted);

    m_export = new QToolButton(bar);
    m_export->setText(tr("Export"));
    m_export->setAccessibleName(tr("Export"));
    m_export->setPopupMode(QToolButton::InstantPopup);
    auto* menu = new QMenu(m_export);
    const std::pair<ExportItem, QString> items[] = {
        {ExportItem::HeatmapPng, tr("Heatmap as PNG…")},        {ExportItem::HeatmapSvg, tr("Heatmap as SVG…")},
        {ExportItem::LoadMatrixPng, tr("Load matrix as PNG…")}, {ExportItem::LoadMatrixSvg, tr("Load matrix as SVG…")},
        {ExportItem::HistogramsPng, tr("Histograms as PNG…")},  {ExportItem::HistogramsSvg, tr("Histograms as SVG…")},
        {ExportItem::CachePng, tr("KV cache as PNG…")},         {ExportItem::CacheSvg, tr("KV cache as SVG…")},
        {ExportItem::RoutingCsv, tr("Routing as CSV…")},        {ExportItem::RoutingJson, tr("Routing as JSON…")},
    };
    for (const auto& [item, label] : items) {
        if (item == ExportItem::RoutingCsv) menu->addSeparator();
        menu->addAction(label, this, [this, item = item] { askAndExport(item); });
    }
    m_export->setMenu(menu);
    h->addWidget(m_export);
}

void InspectorPanel::showControlsFor(int tab) {
    // Only the controls of the visible tab: the toolbar stays one line in a narrow dock.
    m_heatmapMode->setVisible(tab == 0);
    m_textMode->setVisible(tab == 0);
    m_textLayer->setVisible(tab == 0);
    m_scope->setVisible(tab == 1);
    m_measure->setVisible(tab == 1);
    m_sorted->setVisible(tab == 1);
}

void InspectorPanel::setHeatmapColorMode(int mode) {
    m_heatmapMode->setCurrentIndex(mode == int(RoutingHeatmap::ColorMode::GateWeight) ? 1 : 0);
}

void InspectorPanel::setTextColoring(int coloring) {
    const int index = m_textMode->findData(coloring);
    if (index >= 0) m_textMode->setCurrentIndex(index);
}

void InspectorPanel::fillLayerChoice() {
    // Named by model layer, as in the heatmap's header; the data is the MoE layer index.
    const inspect::RoutingTable& t = m_model->table();
    const int keep = m_textLayer->currentIndex();
    QSignalBlocker block(m_textLayer);
    m_textLayer->clear();
    for (int l = 0; l < t.layers; ++l) m_textLayer->addItem(tr("layer %1").arg(t.modelLayer(l)), l);
    m_textLayer->setCurrentIndex(keep >= 0 && keep < t.layers ? keep : 0);
    if (m_textLayer->currentIndex() >= 0) m_text->setColorLayer(m_textLayer->currentData().toInt());
}

void InspectorPanel::setModelShape(const ModelShape& shape) { m_cache->setModelShape(shape); }

void InspectorPanel::setCacheState(const CacheState& state) { m_cache->setCacheState(state); }

QString InspectorPanel::summaryText() const {
    const inspect::RoutingTable& t = m_model->table();
    if (t.isEmpty()) return tr("No message selected");
    QString s = tr("Message %1 · %2").arg(t.messageId).arg(formatTokenCount(t.tokenCount()));
    const int prompt = t.promptTokenCount();
    if (prompt > 0) s += tr(" (%1 prompt)").arg(prompt);
    if (t.layers > 0) s += tr(" · %1 MoE layers, top-%2").arg(t.layers).arg(t.topK);
    if (m_model->isLive()) s += tr(" · live");
    return s;
}

void InspectorPanel::updateSummary() { m_summary->setText(summaryText()); }

void InspectorPanel::emitHighlight() {
    const ExpertSelection sel = m_model->selectedExpert();
    const QColor color = sel.isValid() ? expertColor(sel.expert) : QColor();
    Q_EMIT highlightChanged(m_model->messageId(), m_model->routedAnswerSpans(sel), color);
}

QString InspectorPanel::suggestedFileName(ExportItem item) const {
    const QString stem = QStringLiteral("message-%1-").arg(m_model->messageId());
    switch (item) {
    case ExportItem::HeatmapPng: return stem + QStringLiteral("routing.png");
    case ExportItem::HeatmapSvg: return stem + QStringLiteral("routing.svg");
    case ExportItem::LoadMatrixPng: return stem + QStringLiteral("expert-load.png");
    case ExportItem::LoadMatrixSvg: return stem + QStringLiteral("expert-load.svg");
    case ExportItem::HistogramsPng: return stem + QStringLiteral("load-histograms.png");
    case ExportItem::HistogramsSvg: return stem + QStringLiteral("load-histograms.svg");
    case ExportItem::CachePng: return QStringLiteral("kv-cache.png");
    case ExportItem::CacheSvg: return QStringLiteral("kv-cache.svg");
    case ExportItem::RoutingCsv: return stem + QStringLiteral("routing.csv");
    case ExportItem::RoutingJson: return stem + QStringLiteral("routing.json");
    }
    return {};
}

bool InspectorPanel::exportTo(ExportItem item, const QString& path, QString* error) {
    switch (item) {
    case ExportItem::HeatmapPng: return savePlot(*m_heatmap, path, PlotFormat::Png, error);
    case ExportItem::HeatmapSvg: return savePlot(*m_heatmap, path, PlotFormat::Svg, error);
    case ExportItem::LoadMatrixPng: return savePlot(*m_matrix, path, PlotFormat::Png, error);
    case ExportItem::LoadMatrixSvg: return savePlot(*m_matrix, path, PlotFormat::Svg, error);
    case ExportItem::HistogramsPng: return savePlot(*m_histograms, path, PlotFormat::Png, error);
    case ExportItem::HistogramsSvg: return savePlot(*m_histograms, path, PlotFormat::Svg, error);
    case ExportItem::CachePng: return savePlot(*m_cache, path, PlotFormat::Png, error);
    case ExportItem::CacheSvg: return savePlot(*m_cache, path, PlotFormat::Svg, error);
    case ExportItem::RoutingCsv: return saveRouting(m_model->table(), path, RoutingFormat::Csv, error);
    case ExportItem::RoutingJson: return saveRouting(m_model->table(), path, RoutingFormat::Json, error);
    }
    return false;
}

void InspectorPanel::askAndExport(ExportItem item) {
    const QString name = suggestedFileName(item);
    const QString dir = m_lastExportDir.isEmpty() ? QDir::homePath() : m_lastExportDir;
    const QString suffix = name.section(QLatin1Char('.'), -1);
    const QString path = QFileDialog::getSaveFileName(this, tr("Export"), dir + QLatin1Char('/') + name,
                                                      tr("%1 files (*.%2)").arg(suffix.toUpper(), suffix));
    if (path.isEmpty()) return;
    m_lastExportDir = QFileInfo(path).absolutePath();
    QString error;
    const bool ok = exportTo(item, path, &error);
    Q_EMIT exportFinished(path, ok, ok ? tr("Saved %1").arg(QDir::toNativeSeparators(path)) : error);
}

}  // namespace dsv2::ui
