#pragma once
// LoadHistogram: one small bar chart per MoE layer — the load of each expert (bars in the expert's
// palette colour, optionally sorted busiest first), a dashed line at the mean — headed by the
// layer's imbalance figures: max/mean and normalized entropy H / ln E (load_stats.h). Small
// multiples, so an unbalanced layer stands out at a glance. Hover a bar: the expert and its load;
// click: selects that expert of that layer.

#include <QWidget>

#include "frame_throttle.h"
#include "inspection_model.h"
#include "plot_export.h"

namespace dsv2::ui {

class LoadHistogram : public QWidget, public PlotRenderer {
    Q_OBJECT
public:
    struct Bar {
        int layer = -1;
        int expert = -1;
        bool operator==(const Bar&) const = default;
    };

    explicit LoadHistogram(InspectionModel* model, QWidget* parent = nullptr);

    LoadScope scope() const { return m_scope; }
    void setScope(LoadScope scope);
    inspect::LoadMeasure measure() const { return m_measure; }
    void setMeasure(inspect::LoadMeasure measure);
    bool isSorted() const { return m_sorted; }
    void setSorted(bool sorted);  // busiest expert first (a Pareto view of each layer)

    inspect::LoadMatrix load() const;
    inspect::LayerImbalance figures(int layer) const;
    QString chartCaption(int layer) const;       // "L4  max/mean 2.41  H 0.93"
    QRect barRect(int layer, int expert) const;  // widget coordinates; the full-height slot
    Bar barAt(const QPoint& pos) const;
    QString barToolTip(int layer, int expert) const;

    bool hasHeightForWidth() const override { return true; }
    int heightForWidth(int width) const override;
    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    QSize exportSize() const override;
    void renderExport(QPainter& painter) const override;
    QString exportTitle() const override;

protected:
    void paintEvent(QPaintEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    bool event(QEvent* event) override;

private:
    struct Grid {
        int columns = 1;
        int chartWidth = 0;
        int chartHeight = 0;
        int top = 0;  // below the title
    };
    Grid gridFor(int width, int layers) const;
    QRect chartRect(const Grid& g, int layer) const;
    QRect plotArea(const QRect& chart) const;                               // where the bars go
    std::vector<int> order(const inspect::LoadMatrix& m, int layer) const;  // experts, left to right
    void paintCharts(QPainter& p, int width, const inspect::LoadMatrix& m) const;

    InspectionModel* m_model = nullptr;
    FrameThrottle m_frame;  // one repaint per frame while streaming
    LoadScope m_scope = LoadScope::Message;
    inspect::LoadMeasure m_measure = inspect::LoadMeasure::Count;
    bool m_sorted = false;
};

}  // namespace dsv2::ui
