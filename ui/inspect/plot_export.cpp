#include "plot_export.h"

#include <QBuffer>
#include <QCoreApplication>
#include <QFileInfo>
#include <QImage>
#include <QPainter>
#include <QSaveFile>
#include <QSvgGenerator>

#include <algorithm>
#include <sstream>

#include "routing_export.h"

namespace dsv2::ui {
namespace {

QString tr(const char* text) { return QCoreApplication::translate("PlotExport", text); }

bool fail(QString* error, const QString& message) {
    if (error) *error = message;
    return false;
}

// Writes through a temporary file, so a failed export never leaves half a file behind.
bool writeAtomically(const QString& path, const QByteArray& bytes, QString* error) {
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)) return fail(error, tr("Cannot write %1: %2").arg(path, file.errorString()));
    if (file.write(bytes) != bytes.size() || !file.commit()) {
        return fail(error, tr("Cannot write %1: %2").arg(path, file.errorString()));
    }
    return true;
}

}  // namespace

bool savePlot(const PlotRenderer& plot, const QString& path, PlotFormat format, QString* error, qreal scale) {
    const QSize size = plot.exportSize();
    if (size.isEmpty()) return fail(error, tr("There is nothing to export yet."));
    if (format == PlotFormat::Png) {
        // Very long messages would make a huge bitmap: keep it under ~16k device pixels a side.
        scale = std::min(scale, 16000.0 / std::max(size.width(), size.height()));
        scale = std::max(scale, 0.25);
        QImage image(size * scale, QImage::Format_ARGB32_Premultiplied);
        if (image.isNull()) return fail(error, tr("The image is too large to export as PNG; use SVG."));
        image.setDevicePixelRatio(scale);
        image.fill(Qt::transparent);
        {
            QPainter painter(&image);
            painter.setRenderHint(QPainter::Antialiasing);
            painter.setRenderHint(QPainter::TextAntialiasing);
            plot.renderExport(painter);
        }
        QSaveFile file(path);
        if (!file.open(QIODevice::WriteOnly))
            return fail(error, tr("Cannot write %1: %2").arg(path, file.errorString()));
        if (!image.save(&file, "PNG") || !file.commit()) {
            return fail(error, tr("Cannot write %1: %2").arg(path, file.errorString()));
        }
        return true;
    }
    QByteArray bytes;
    {
        QBuffer buffer(&bytes);
        buffer.open(QIODevice::WriteOnly);
        QSvgGenerator svg;
        svg.setOutputDevice(&buffer);
        svg.setSize(size);
        svg.setViewBox(QRect(QPoint(0, 0), size));
        svg.setTitle(plot.exportTitle());
        svg.setDescription(tr("Exported by dsv2-chat"));
        QPainter painter(&svg);
        plot.renderExport(painter);
    }
    return writeAtomically(path, bytes, error);
}

bool savePlotByName(const PlotRenderer& plot, const QString& path, QString* error) {
    const QString suffix = QFileInfo(path).suffix().toLower();
    if (suffix == QLatin1String("png")) return savePlot(plot, path, PlotFormat::Png, error);
    if (suffix == QLatin1String("svg")) return savePlot(plot, path, PlotFormat::Svg, error);
    return fail(error, tr("Choose a file name ending in .png or .svg."));
}

bool saveRouting(const inspect::RoutingTable& table, const QString& path, RoutingFormat format, QString* error) {
    std::ostringstream out;
    if (format == RoutingFormat::Csv)
        inspect::writeRoutingCsv(table, out);
    else
        inspect::writeRoutingJson(table, out);
    const std::string text = std::move(out).str();
    return writeAtomically(path, QByteArray(text.data(), static_cast<qsizetype>(text.size())), error);
}

}  // namespace dsv2::ui
