#pragma once
// ExpertLoadMatrix: MoE layers (rows) × experts (columns), each cell the expert's load in that
// layer relative to the layer's mean — blue under-used, grey even, orange-red over-used, pale
// unused — for the shown message or its whole conversation. Beside each row, the layer's
// imbalance: max/mean and normalized entropy (see load_stats.h). Above the columns, the expert
// palette strip (the colours the heatmap uses). Click a cell: selects that expert of that layer;
// click the palette strip: that expert id in every layer; click again: clears.

#include <QWidget>

#include "frame_throttle.h"
#include "inspection_model.h"
#include "plot_export.h"

namespace dsv2::ui {

class ExpertLoadMatrix : public QWidget, public PlotRenderer {
    Q_OBJECT
public:
    struct Cell {
        int layer = -1;  // -1 with expert >= 0: the palette strip (every layer)
        int expert = -1;
        bool operator==(const Cell&) const = default;
    };

    explicit ExpertLoadMatrix(InspectionModel* model, QWidget* parent = nullptr);

    LoadScope scope() const { return m_scope; }
    void setScope(LoadScope scope);
    inspect::LoadMeasure measure() const { return m_measure; }
    void setMeasure(inspect::LoadMeasure measure);

    // What is drawn now (the model's load for the scope and measure).
    inspect::LoadMatrix load() const;
    QRgb cellColor(int layer, int expert) const;
    QRect cellRect(int layer, int expert) const;  // widget coordinates
    Cell cellAt(const QPoint& pos) const;
    QString cellToolTip(int layer, int expert) const;

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    QSize exportSize() const override;
    void renderExport(QPainter& painter) const override;
    QString exportTitle() const override;

protected:
    void paintEvent(QPaintEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    void leaveEvent(QEvent* event) override;
    bool event(QEvent* event) override;

private:
    struct Layout {
        QRect grid;  // the cells
        int cellWidth = 0;
        int cellHeight = 0;
        int stripHeight = 0;  // palette strip above the grid
        int figuresWidth = 0;
    };
    Layout layoutFor(const QSize& size, int layers, int experts) const;
    void paintMatrix(QPainter& p, const QSize& size, const inspect::LoadMatrix& load) const;
    QString scopeText() const;

    InspectionModel* m_model = nullptr;
    FrameThrottle m_frame;  // one repaint per frame while streaming
    LoadScope m_scope = LoadScope::Message;
    inspect::LoadMeasure m_measure = inspect::LoadMeasure::Count;
    Cell m_hover;
};

}  // namespace dsv2::ui
