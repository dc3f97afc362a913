#pragma once
// InspectorPanel: the inspection views assembled for the main window's side dock — three tabs
// over one InspectionModel:
//   Routing   the heatmap beside the message's tokens (coloured) and the token inspector;
//   Load      the layer × expert load matrix above the per-layer histograms (message or
//             conversation, counted in tokens or gate weight);
//   KV cache  the latent cache figures and the MLA / GQA-8 / MHA comparison.
// A toolbar holds the colour modes and the Export menu (PNG/SVG of each plot, routing CSV/JSON).
// The widgets are also usable on their own: each takes the model in its constructor.
//
// The main window talks to it through the model (stored or live data, selection) and the two
// setters for the cache; it listens to tokenSelected / highlightChanged to mirror the selection
// in the chat view.

#include <QWidget>

#include "frame_throttle.h"
#include "inspection_model.h"
#include "kv_figures.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QTabWidget;
class QToolButton;

namespace dsv2::ui {

class ExpertLoadMatrix;
class KvCacheView;
class LoadHistogram;
class RoutingHeatmap;
class TokenInspector;
class TokenTextView;

class InspectorPanel : public QWidget {
    Q_OBJECT
public:
    enum class ExportItem {
        HeatmapPng,
        HeatmapSvg,
        LoadMatrixPng,
        LoadMatrixSvg,
        HistogramsPng,
        HistogramsSvg,
        CachePng,
        CacheSvg,
        RoutingCsv,
        RoutingJson
    };
    Q_ENUM(ExportItem)

    explicit InspectorPanel(QWidget* parent = nullptr);

    InspectionModel* model() const { return m_model; }
    RoutingHeatmap* heatmap() const { return m_heatmap; }
    TokenTextView* textView() const { return m_text; }
    TokenInspector* tokenInspector() const { return m_inspector; }
    ExpertLoadMatrix* loadMatrix() const { return m_matrix; }
    LoadHistogram* histograms() const { return m_histograms; }
    KvCacheView* cacheView() const { return m_cache; }
    QTabWidget* tabs() const { return m_tabs; }

    // The toolbar's modes, for callers that restore them (the combo boxes follow).
    void setHeatmapColorMode(int mode);  // RoutingHeatmap::ColorMode
    void setTextColoring(int coloring);  // TokenTextView::Coloring

    void setModelShape(const ModelShape& shape);
    void setCacheState(const CacheState& state);

    // Writes one export without asking (the Export menu asks for the file name, then calls this).
    bool exportTo(ExportItem item, const QString& path, QString* error = nullptr);
    QString suggestedFileName(ExportItem item) const;  // "message-42-routing.csv"

    QString summaryText() const;  // the toolbar's "Message 42 · 123 tokens (20 prompt)"

Q_SIGNALS:
    void tokenSelected(qint64 messageId, int row);
    // The answer characters to colour in the chat (UTF-16 spans of the message's text) and the
    // colour; empty spans: clear.
    void highlightChanged(qint64 messageId, const QVector<dsv2::ui::TokenTextSpan>& spans, const QColor& color);
    void exportFinished(const QString& path, bool ok, const QString& message);

private:
    void buildToolbar(QWidget* bar);
    void showControlsFor(int tab);
    void fillLayerChoice();
    void updateSummary();
    void emitHighlight();
    void askAndExport(ExportItem item);

    InspectionModel* m_model = nullptr;
    QTabWidget* m_tabs = nullptr;
    RoutingHeatmap* m_heatmap = nullptr;
    TokenTextView* m_text = nullptr;
    TokenInspector* m_inspector = nullptr;
    ExpertLoadMatrix* m_matrix = nullptr;
    LoadHistogram* m_histograms = nullptr;
    KvCacheView* m_cache = nullptr;
    QLabel* m_summary = nullptr;
    QComboBox* m_heatmapMode = nullptr;
    QComboBox* m_textMode = nullptr;
    QComboBox* m_textLayer = nullptr;
    QComboBox* m_scope = nullptr;
    QComboBox* m_measure = nullptr;
    QCheckBox* m_sorted = nullptr;
    QToolButton* m_export = nullptr;
    QString m_lastExportDir;
    FrameThrottle m_frame;  // summary and chat highlight once per frame while streaming
};

}  // namespace dsv2::ui

Q_DECLARE_METATYPE(dsv2::ui::TokenTextSpan)
