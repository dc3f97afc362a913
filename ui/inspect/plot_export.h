#pragma once
// Saving what the inspection views show. Each plot widget can render itself whole (every row, not
// just what is scrolled into view) onto any QPainter; PNG and SVG are two painters over the same
// drawing. Routing tables are saved through the Qt-free writers of routing_export.h, so the GUI and
// `dsv2 inspect routing` write the same bytes.

#include <QSize>
#include <QString>

class QPainter;

namespace dsv2::inspect {
struct RoutingTable;
}

namespace dsv2::ui {

class PlotRenderer {
public:
    virtual ~PlotRenderer() = default;
    // Size of the whole plot in logical pixels, at the widget's current settings.
    virtual QSize exportSize() const = 0;
    // Paints the whole plot in (0, 0, exportSize()), background included.
    virtual void renderExport(QPainter& painter) const = 0;
    // A title for the file's metadata ("Routing heatmap, message 42").
    virtual QString exportTitle() const = 0;
};

enum class PlotFormat { Png, Svg };

// PNG at `scale` device pixels per logical pixel (2: sharp on HiDPI screens and in documents),
// SVG as vectors. false with *error set when the file cannot be written.
bool savePlot(const PlotRenderer& plot, const QString& path, PlotFormat format, QString* error = nullptr,
              qreal scale = 2.0);
// By the file's suffix: .png or .svg (anything else is refused).
bool savePlotByName(const PlotRenderer& plot, const QString& path, QString* error = nullptr);

enum class RoutingFormat { Csv, Json };
bool saveRouting(const inspect::RoutingTable& table, const QString& path, RoutingFormat format,
                 QString* error = nullptr);

}  // namespace dsv2::ui
