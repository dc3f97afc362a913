#pragma once
// RoutingHeatmap: tokens (rows) × MoE layers (columns) of one message. A cell's colour is the
// token's top-1 expert in that layer (the expert palette) or its top-1 gate weight (viridis).
// Hover a cell: the token, the layer, its top-k experts and weights. Click: selects the token
// (the other views follow); Shift+click: selects the cell's top-1 expert in that layer. With an
// expert selected, the cells routed to it (any rank of the top-k) are drawn in its colour and the
// rest fade.
//
// Streaming: colours live in a QImage with one pixel per cell, filled row by row as tokens arrive
// and drawn scaled (nearest) — appending a token costs one image row, painting is one drawImage
// whatever the length. Scrolling and painting happen once per frame (FrameThrottle) however fast
// tokens come. While the view is at the bottom it follows the newest token.

#include <QAbstractScrollArea>
#include <QImage>

#include "frame_throttle.h"
#include "inspection_model.h"
#include "plot_export.h"

namespace dsv2::ui {

class RoutingHeatmap : public QAbstractScrollArea, public PlotRenderer {
    Q_OBJECT
public:
    enum class ColorMode { TopExpert, GateWeight };
    Q_ENUM(ColorMode)

    struct Cell {
        int row = -1;
        int layer = -1;
        bool isValid() const { return row >= 0 && layer >= 0; }
        bool operator==(const Cell&) const = default;
    };

    explicit RoutingHeatmap(InspectionModel* model, QWidget* parent = nullptr);

    InspectionModel* model() const { return m_model; }
    ColorMode colorMode() const { return m_mode; }
    void setColorMode(ColorMode mode);
    int rowHeight() const { return m_rowHeight; }
    void setRowHeight(int pixels);  // 3..24; below ~10 the token labels are hidden
    // Gate-weight mode maps [0, weightScale] onto the ramp: a round number above the largest top-1
    // weight of the message (0.25, 0.5, 1, 2, ... — routed_scaling_factor can push weights past 1).
    double weightScale() const { return m_weightScale; }
    bool isFollowing() const { return m_follow; }

    // The colour a cell is drawn with (mode and selection applied); for tests and exports.
    QRgb cellColor(int row, int layer) const;
    QRect cellRect(int row, int layer) const;  // viewport coordinates; empty if scrolled away
    Cell cellAt(const QPoint& viewportPos) const;
    QString cellToolTip(int row, int layer) const;
    void scrollToRow(int row);

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    // PlotRenderer: every row, cells as vector rectangles, with the layer header and a legend.
    QSize exportSize() const override;
    void renderExport(QPainter& painter) const override;
    QString exportTitle() const override;

Q_SIGNALS:
    void cellHovered(int row, int layer);  // -1, -1 when the pointer leaves the cells
    void followingChanged(bool following);

protected:
    void paintEvent(QPaintEvent* event) override;
    void resizeEvent(QResizeEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void leaveEvent(QEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;
    bool viewportEvent(QEvent* event) override;
    void changeEvent(QEvent* event) override;
    void scrollContentsBy(int dx, int dy) override;

private:
    struct Layout {
        int labelWidth = 0;
        int headerHeight = 0;
        int cellWidth = 0;
        int rowHeight = 0;
    };
    Layout currentLayout() const;
    Layout exportLayout() const;
    QRgb computeColor(int row, int layer) const;
    void rebuildImage();
    void fillImageRows(int first, int last);
    bool updateWeightScale(int first, int last);  // true when the scale grew
    void updateScrollRange();
    void setFollowing(bool follow);
    void onRowsAppended(int first, int count);
    void applyAppendedRows();
    void paintHeader(QPainter& p, const Layout& layout, int width) const;
    void paintLabel(QPainter& p, int row, const QRect& rect) const;
    void paintLegend(QPainter& p, const QRect& rect) const;

    InspectionModel* m_model = nullptr;
    ColorMode m_mode = ColorMode::TopExpert;
    int m_rowHeight = 14;
    double m_weightScale = 1.0;
    QImage m_image;  // (capacity rows, layers columns): one pixel per cell
    int m_imageRows = 0;
    bool m_follow = true;
    bool m_scrollingForFollow = false;
    Cell m_hover;
    FrameThrottle m_frame;  // repaint + follow once per frame while streaming
};

}  // namespace dsv2::ui
