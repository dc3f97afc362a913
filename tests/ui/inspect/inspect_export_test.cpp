// Export from the inspector: every plot as a PNG that decodes to the plot's size and shows its
// colours, and as an SVG that parses; routing as CSV and JSON with exactly the bytes the Qt-free
// writers (shared with `dsv2 inspect routing`) produce.
#include <QFile>
#include <QFileInfo>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonValue>
#include <QRegularExpression>
#include <QSvgRenderer>
#include <QTemporaryDir>
#include <QtTest>

#include <set>
#include <sstream>

#include "inspect/expert_load_matrix.h"
#include "inspect/inspect_colors.h"
#include "inspect/inspector_panel.h"
#include "inspect/kv_cache_view.h"
#include "inspect/load_histogram.h"
#include "inspect/plot_export.h"
#include "inspect/routing_export.h"
#include "inspect/routing_heatmap.h"
#include "inspect_fixtures.h"

using namespace dsv2;
using namespace dsv2::ui;
using Item = InspectorPanel::ExportItem;

namespace {

QByteArray fileBytes(const QString& path) {
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

std::set<QRgb> colours(const QImage& png) {
    const QImage image = png.convertToFormat(QImage::Format_RGB32);
    std::set<QRgb> out;
    for (int y = 0; y < image.height(); ++y) {
        const auto* line = reinterpret_cast<const QRgb*>(image.constScanLine(y));
        out.insert(line, line + image.width());
    }
    return out;
}

}  // namespace

class InspectExportTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void init() {
        QVERIFY(m_dir.isValid());
        m_panel = std::make_unique<InspectorPanel>();
        m_panel->resize(900, 600);
        m_panel->model()->setTable(inspect::test::liteTable(12, 40));
        m_panel->setModelShape(ModelShape::deepSeekV2Lite());
        m_panel->setCacheState(CacheState::estimate(52, 4096, 31104));
    }
    void cleanup() { m_panel.reset(); }

    void plotsAsPng_data() {
        QTest::addColumn<int>("item");
        QTest::newRow("heatmap") << int(Item::HeatmapPng);
        QTest::newRow("load matrix") << int(Item::LoadMatrixPng);
        QTest::newRow("histograms") << int(Item::HistogramsPng);
        QTest::newRow("kv cache") << int(Item::CachePng);
    }
    void plotsAsPng() {
        QFETCH(int, item);
        const QString path = m_dir.filePath(m_panel->suggestedFileName(Item(item)));
        QVERIFY(path.endsWith(QLatin1String(".png")));
        QString error;
        QVERIFY2(m_panel->exportTo(Item(item), path, &error), qPrintable(error));
        QImage image;
        QVERIFY(image.load(path, "PNG"));
        const PlotRenderer* plot = renderer(Item(item));
        QCOMPARE(image.size(), plot->exportSize() * 2);  // 2 device pixels per logical pixel
        QVERIFY(colours(image).size() > 8);              // a drawing, not a blank
    }

    void heatmapPngHoldsTheCellColours() {
        const QString path = m_dir.filePath(QStringLiteral("h.png"));
        QVERIFY(m_panel->exportTo(Item::HeatmapPng, path));
        QImage image(path);
        const std::set<QRgb> seen = colours(image);
        const inspect::RoutingTable& t = m_panel->model()->table();
        for (int row : {0, 11, 12, 51}) {
            for (int layer : {0, 13, 25}) {
                QVERIFY2(seen.count(expertColor(t.top1(row, layer)).rgb()),
                         qPrintable(QStringLiteral("row %1 layer %2").arg(row).arg(layer)));
            }
        }
    }

    void plotsAsSvg_data() {
        QTest::addColumn<int>("item");
        QTest::newRow("heatmap") << int(Item::HeatmapSvg);
        QTest::newRow("load matrix") << int(Item::LoadMatrixSvg);
        QTest::newRow("histograms") << int(Item::HistogramsSvg);
        QTest::newRow("kv cache") << int(Item::CacheSvg);
    }
    void plotsAsSvg() {
        QFETCH(int, item);
        const QString path = m_dir.filePath(m_panel->suggestedFileName(Item(item)));
        QString error;
        QVERIFY2(m_panel->exportTo(Item(item), path, &error), qPrintable(error));
        QSvgRenderer svg(path);
        QVERIFY(svg.isValid());
        const PlotRenderer* plot = renderer(Item(item));
        QCOMPARE(svg.viewBox().size(), plot->exportSize());
        const QByteArray bytes = fileBytes(path);
        QVERIFY(bytes.contains("<title>" + plot->exportTitle().toHtmlEscaped().toUtf8() + "</title>"));
        // Vector cells: the heatmap's first top-1 colour appears as a fill.
        if (Item(item) == Item::HeatmapSvg) {
            const QColor c = expertColor(m_panel->model()->table().top1(0, 0));
            QVERIFY(bytes.contains("fill=\"" + c.name().toUtf8() + "\""));
        }
    }

    void routingAsCsvAndJson() {
        const inspect::RoutingTable& t = m_panel->model()->table();
        std::ostringstream csv, json;
        inspect::writeRoutingCsv(t, csv);
        inspect::writeRoutingJson(t, json);
        const QString csvPath = m_dir.filePath(m_panel->suggestedFileName(Item::RoutingCsv));
        const QString jsonPath = m_dir.filePath(m_panel->suggestedFileName(Item::RoutingJson));
        QCOMPARE(QFileInfo(csvPath).fileName(), QStringLiteral("message-7-routing.csv"));
        QVERIFY(m_panel->exportTo(Item::RoutingCsv, csvPath));
        QVERIFY(m_panel->exportTo(Item::RoutingJson, jsonPath));
        QCOMPARE(fileBytes(csvPath), QByteArray::fromStdString(csv.str()));
        QCOMPARE(fileBytes(jsonPath), QByteArray::fromStdString(json.str()));
        // 52 tokens × 26 layers records after the header (a "\n" token's quoted text spans two
        // lines, so count records, not lines); prompt rows say so.
        const QString text = QString::fromUtf8(fileBytes(csvPath));
        const QRegularExpression record(QStringLiteral("^(\\d+),(prompt|answer),"),
                                        QRegularExpression::MultilineOption);
        int records = 0;
        for (auto it = record.globalMatch(text); it.hasNext(); it.next()) ++records;
        QCOMPARE(records, 52 * 26);
        QVERIFY(text.section(QLatin1Char('\n'), 1, 1).startsWith(QStringLiteral("0,prompt,")));
        QVERIFY(text.contains(QStringLiteral("\n12,answer,")));
        QVERIFY(!text.contains(QStringLiteral("\n12,prompt,")));
        const QJsonDocument doc = QJsonDocument::fromJson(fileBytes(jsonPath));
        QCOMPARE(doc[QStringLiteral("tokens")].toArray().size(), 52);
        QCOMPARE(doc[QStringLiteral("tokens")][12][QStringLiteral("experts")][3][0].toInt(), t.top1(12, 3));
    }

    void exportFailuresAreReported() {
        QString error;
        InspectorPanel empty;
        QVERIFY(!empty.exportTo(Item::HeatmapPng, m_dir.filePath(QStringLiteral("x.png")), &error));
        QVERIFY(error.contains(QStringLiteral("nothing to export")));
        QVERIFY(!m_panel->exportTo(Item::RoutingCsv, QStringLiteral("/nonexistent-dir/x.csv"), &error));
        QVERIFY(error.contains(QStringLiteral("/nonexistent-dir/x.csv")));
        QVERIFY(!savePlotByName(*m_panel->heatmap(), m_dir.filePath(QStringLiteral("x.gif")), &error));
        QVERIFY(!QFile::exists(m_dir.filePath(QStringLiteral("x.gif"))));
    }

private:
    const PlotRenderer* renderer(Item item) const {
        switch (item) {
        case Item::HeatmapPng:
        case Item::HeatmapSvg: return m_panel->heatmap();
        case Item::LoadMatrixPng:
        case Item::LoadMatrixSvg: return m_panel->loadMatrix();
        case Item::HistogramsPng:
        case Item::HistogramsSvg: return m_panel->histograms();
        default: return m_panel->cacheView();
        }
    }

    QTemporaryDir m_dir;
    std::unique_ptr<InspectorPanel> m_panel;
};

QTEST_MAIN(InspectExportTest)
#include "inspect_export_test.moc"
