// The numbers behind the inspection views: expert loads and imbalance figures on hand-computed
// cases, the entropy bound, the KV-cache formulas, the expert palette's promises, and the exact
// bytes of the routing CSV/JSON writers.
#include <QColor>
#include <QJsonDocument>
#include <QJsonValue>
#include <QPalette>
#include <QtTest>

#include <array>
#include <cmath>
#include <set>
#include <sstream>

#include "inspect/inspect_colors.h"
#include "inspect/kv_figures.h"
#include "inspect/load_stats.h"
#include "inspect/routing_export.h"
#include "inspect_fixtures.h"

using namespace dsv2;
using namespace dsv2::inspect;
using dsv2::ui::ModelShape;

namespace {

// sRGB → OKLab, to measure colour differences the way the palette was designed.
std::array<double, 3> oklab(const QColor& c) {
    const auto lin = [](double v) { return v <= 0.04045 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4); };
    const double r = lin(c.redF()), g = lin(c.greenF()), b = lin(c.blueF());
    const double l = std::cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b);
    const double m = std::cbrt(0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b);
    const double s = std::cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b);
    return {0.2104542553 * l + 0.7936177850 * m - 0.0040720468 * s,
            1.9779984951 * l - 2.4285922050 * m + 0.4505937099 * s,
            0.0259040371 * l + 0.7827717662 * m - 0.8086757660 * s};
}

double distance(const std::array<double, 3>& a, const std::array<double, 3>& b) {
    return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

}  // namespace

class InspectMathsTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void countLoadIsTokensPerExpert() {
        const RoutingTable t = test::knownTable();
        LoadMatrix m;
        m.add(t, LoadMeasure::Count);
        QCOMPARE(m.layers(), 2);
        QCOMPARE(m.experts(), 4);
        QCOMPARE(m.tokens(), 4);
        // Layer 0: expert 0 in all four tokens, expert 1 in tokens 0, 2, 3, expert 2 in token 1.
        QCOMPARE(m.at(0, 0), 4.0);
        QCOMPARE(m.at(0, 1), 3.0);
        QCOMPARE(m.at(0, 2), 1.0);
        QCOMPARE(m.at(0, 3), 0.0);
        QCOMPARE(m.at(1, 0), 1.0);
        QCOMPARE(m.at(1, 1), 1.0);
        QCOMPARE(m.at(1, 2), 4.0);
        QCOMPARE(m.at(1, 3), 2.0);
    }

    void imbalanceFiguresByHand() {
        const RoutingTable t = test::knownTable();
        LoadMatrix m;
        m.add(t, LoadMeasure::Count);
        // Layer 0: loads 4,3,1,0 — mean 2, max/mean 2; p = .5,.375,.125,0.
        const LayerImbalance l0 = m.imbalance(0);
        QCOMPARE(l0.total, 8.0);
        QCOMPARE(l0.maxOverMean, 2.0);
        const double h0 = -(0.5 * std::log(0.5) + 0.375 * std::log(0.375) + 0.125 * std::log(0.125)) / std::log(4.0);
        QVERIFY(std::abs(l0.normalizedEntropy - h0) < 1e-12);
        QVERIFY(std::abs(l0.normalizedEntropy - 0.702820) < 1e-6);
        QCOMPARE(l0.busiestExpert, 0);
        // Layer 1: loads 1,1,4,2 — p = .125,.125,.5,.25: H = 1.75 ln 2, / ln 4 = 0.875 exactly.
        const LayerImbalance l1 = m.imbalance(1);
        QCOMPARE(l1.maxOverMean, 2.0);
        QVERIFY(std::abs(l1.normalizedEntropy - 0.875) < 1e-12);
        QCOMPARE(l1.busiestExpert, 2);
    }

    void weightLoadSumsGates() {
        const RoutingTable t = test::knownTable();
        LoadMatrix m;
        m.add(t, LoadMeasure::Weight);
        // Layer 0, expert 0: 0.6 + 0.5 + 0.9 + 0.45.
        QVERIFY(std::abs(m.at(0, 0) - (0.6 + 0.5 + 0.9 + 0.45)) < 1e-6);
        QVERIFY(std::abs(m.at(0, 1) - (0.4 + 0.1 + 0.55)) < 1e-6);
        QVERIFY(std::abs(m.imbalance(0).total - 4.0) < 1e-6);
        QVERIFY(std::abs(m.imbalance(0).maxOverMean - 2.45) < 1e-6);
    }

    void scopesAndRangesAndSums() {
        RoutingTable t = test::knownTable();
        t.rows[0].isPrompt = true;
        t.rows[1].isPrompt = true;
        LoadMatrix prompt, answer, all, part;
        prompt.add(t, LoadMeasure::Count, TokenScope::Prompt);
        answer.add(t, LoadMeasure::Count, TokenScope::Answer);
        all.add(t, LoadMeasure::Count);
        QCOMPARE(prompt.tokens(), 2);
        QCOMPARE(answer.tokens(), 2);
        QCOMPARE(prompt.at(0, 2), 1.0);  // token 1
        QCOMPARE(answer.at(1, 3), 1.0);  // token 2
        prompt.addMatrix(answer);
        QCOMPARE(prompt, all);
        part.add(t, LoadMeasure::Count, TokenScope::All, 1, 3);  // tokens 1 and 2
        QCOMPARE(part.tokens(), 2);
        QCOMPARE(part.at(0, 0), 2.0);
        QCOMPARE(part.at(0, 1), 1.0);
    }

    void extremesOfTheFigures() {
        QCOMPARE(maxOverMean({5, 5, 5, 5}), 1.0);
        QCOMPARE(normalizedEntropy({5, 5, 5, 5}), 1.0);
        QCOMPARE(maxOverMean({8, 0, 0, 0}), 4.0);
        QCOMPARE(normalizedEntropy({8, 0, 0, 0}), 0.0);
        QCOMPARE(maxOverMean({0, 0}), 0.0);  // no load: no figure rather than NaN
        QCOMPARE(normalizedEntropy({}), 0.0);
        // An expert id past the declared count grows the matrix instead of writing out of bounds.
        RoutingTable t = test::knownTable();
        t.experts = 2;
        LoadMatrix m;
        m.add(t, LoadMeasure::Count);
        QCOMPARE(m.experts(), 4);
        QCOMPARE(m.at(1, 3), 2.0);
    }

    void entropyLowerBoundFromTopN() {
        // 0.5 and 0.25 known, 0.25 left as one bucket: 0.5 ln 2 + 0.25 ln 4 + 0.25 ln 4 = 1.5 ln 2.
        const double h = entropyLowerBound({std::log(0.5f), std::log(0.25f)});
        QVERIFY(std::abs(h - 1.5 * std::log(2.0)) < 1e-6);
        // The whole distribution known: the exact entropy.
        QVERIFY(std::abs(entropyLowerBound({std::log(0.25f), std::log(0.25f), std::log(0.25f), std::log(0.25f)}) -
                         std::log(4.0)) < 1e-6);
        QCOMPARE(entropyLowerBound({0.0f}), 0.0);  // certain
    }

    void kvFiguresForLite() {
        const ModelShape lite = ModelShape::deepSeekV2Lite();
        QCOMPARE(lite.mlaBytesPerToken(), qint64{31104});
        QCOMPARE(lite.mhaBytesPerToken(), qint64{276480});
        QCOMPARE(lite.gqaBytesPerToken(), qint64{138240});
        QVERIFY(std::abs(lite.mhaOverMla() - 276480.0 / 31104.0) < 1e-12);
        QCOMPARE(QString::number(lite.mhaOverMla(), 'f', 1), QStringLiteral("8.9"));
        const ModelShape v2 = ModelShape::deepSeekV2();
        QCOMPARE(v2.mlaBytesPerToken(), qint64{69120});
        QCOMPARE(v2.mhaBytesPerToken(), qint64{4915200});
        QCOMPARE(v2.gqaBytesPerToken(), qint64{307200});
    }

    void kvFiguresFromTinyLiteConfig() {
        QString error;
        const auto shape =
            ui::modelShapeFromConfig(QStringLiteral(DSV2_TEST_DATA_DIR "/tiny-lite/config.json"), &error);
        QVERIFY2(shape.has_value(), qPrintable(error));
        QCOMPARE(shape->name, QStringLiteral("tiny-lite"));
        QCOMPARE(shape->layers, 3);
        QCOMPARE(shape->routedExperts, 8);
        QCOMPARE(shape->mlaBytesPerToken(), qint64{3 * (32 + 8) * 2});
        QCOMPARE(shape->mhaBytesPerToken(), qint64{3 * 4 * (16 + 8 + 16) * 2});
        QCOMPARE(shape->gqaGroups(), 4);  // fewer than 8 heads: all of them
        QVERIFY(!ui::modelShapeFromConfig(QStringLiteral("/nonexistent/config.json"), &error));
        QVERIFY(error.contains(QStringLiteral("/nonexistent/config.json")));
    }

    void cacheEstimateForStoredAnswers() {
        const ui::CacheState s = ui::CacheState::estimate(130, 4096, 31104);
        QCOMPARE(s.bytesUsed, qint64{130 * 31104});
        QCOMPARE(s.blocksUsed, qint64{3});
        QCOMPARE(s.blocksCapacity, qint64{64});
        QCOMPARE(s.bytesReserved, qint64{3 * 64 * 31104});
        QCOMPARE(s.bytesCapacity, qint64{4096} * 31104);
    }

    void expertPaletteIsStableAndDistinct() {
        std::set<QRgb> seen;
        double minL = 1, maxL = 0;
        std::vector<std::array<double, 3>> labs;
        for (int e = 0; e < 160; ++e) {
            const QColor c = ui::expertColor(e);
            QCOMPARE(c, ui::expertColor(e));  // same expert, same colour
            seen.insert(c.rgb());
            labs.push_back(oklab(c));
            minL = std::min(minL, labs.back()[0]);
            maxL = std::max(maxL, labs.back()[0]);
        }
        QCOMPARE(int(seen.size()), 160);
        const auto smallestDistance = [&labs](std::size_t n) {
            double d = 1e9;
            for (std::size_t a = 0; a < n; ++a) {
                for (std::size_t b = a + 1; b < n; ++b) d = std::min(d, distance(labs[a], labs[b]));
            }
            return d;
        };
        // A just-noticeable difference in OKLab is about 0.02: any two of the 160 are 2.5 apart, any
        // two of Lite's 64 four.
        QVERIFY2(smallestDistance(160) >= 0.05, qPrintable(QString::number(smallestDistance(160))));
        QVERIFY2(smallestDistance(64) >= 0.08, qPrintable(QString::number(smallestDistance(64))));
        // Mid lightness: visible on white and on a dark theme's base.
        QVERIFY2(minL >= 0.49 && maxL <= 0.83, qPrintable(QStringLiteral("%1..%2").arg(minL).arg(maxL)));
        QCOMPARE(ui::expertColor(160), ui::expertColor(0));  // past 160 the palette repeats
    }

    void rampsAndText() {
        QCOMPARE(ui::weightColor(0.0).rgb(), QColor(0x44, 0x01, 0x54).rgb());
        QCOMPARE(ui::weightColor(1.0).rgb(), QColor(0xfd, 0xe7, 0x25).rgb());
        QCOMPARE(ui::weightColor(2.0).rgb(), ui::weightColor(1.0).rgb());  // clamped
        QCOMPARE(ui::textColorOn(QColor(0xfd, 0xe7, 0x25)), QColor(Qt::black));
        QCOMPARE(ui::textColorOn(QColor(0x44, 0x01, 0x54)), QColor(Qt::white));
        QPalette light;
        light.setColor(QPalette::Base, Qt::white);
        // Over-used is warm (red dominates), under-used is cool (blue dominates).
        const QColor over = ui::loadRatioColor(4.0, light);
        const QColor under = ui::loadRatioColor(0.25, light);
        QVERIFY(over.red() > over.blue());
        QVERIFY(under.blue() > under.red());
        QVERIFY(ui::loadRatioColor(0.0, light) != ui::loadRatioColor(1.0, light));
        // Confidence: a sure token has no colour, a doubtful one a strong one.
        QCOMPARE(ui::confidenceColor(1.0, light).alpha(), 0);
        QVERIFY(ui::confidenceColor(0.05, light).alpha() > 200);
    }

    void utf8IsSanitized() {
        using std::string;
        QCOMPARE(sanitizeUtf8("h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
                 string("h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
        QCOMPARE(sanitizeUtf8("a\xE2\x82"), string("a\xEF\xBF\xBD\xEF\xBF\xBD"));  // cut inside a character
        QCOMPARE(sanitizeUtf8("\xC0\xAF"), string("\xEF\xBF\xBD\xEF\xBF\xBD"));    // overlong '/'
        QCOMPARE(sanitizeUtf8("\xED\xA0\x80"), string("\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"));  // surrogate
        QCOMPARE(csvField("a,b"), string("\"a,b\""));
        QCOMPARE(csvField("say \"hi\""), string("\"say \"\"hi\"\"\""));
        QCOMPARE(jsonString("tab\there \"q\" \\ \x01"), string("\"tab\\there \\\"q\\\" \\\\ \\u0001\""));
        QCOMPARE(formatFloat(0.6f), string("0.6"));
        QCOMPARE(formatFloat(-0.105f), string("-0.105"));
        QCOMPARE(formatFloat(1e-5f), string("1e-05"));
    }

    void csvExactContent() {
        std::ostringstream out;
        writeRoutingCsv(test::knownTable(), out);
        const std::string expected =
            "token,source,token_id,text,moe_layer,model_layer,expert_1,weight_1,expert_2,weight_2\n"
            "0,answer,791,The,0,1,0,0.6,1,0.4\n"
            "0,answer,791,The,1,2,2,0.7,3,0.3\n"
            "1,answer,8415, cat,0,1,0,0.5,2,0.5\n"
            "1,answer,8415, cat,1,2,2,0.8,0,0.2\n"
            "2,answer,7731, sat,0,1,0,0.9,1,0.1\n"
            "2,answer,7731, sat,1,2,3,0.6,2,0.4\n"
            "3,answer,185,\"\n\",0,1,1,0.55,0,0.45\n"
            "3,answer,185,\"\n\",1,2,2,0.5,1,0.5\n";
        QCOMPARE(out.str(), expected);
    }

    void csvMarksPromptRowsAndSkipsUnrouted() {
        RoutingTable t = test::knownTable();
        t.rows[0].isPrompt = true;
        t.rows[1].expertIds.clear();
        t.rows[1].weights.clear();
        std::ostringstream out;
        writeRoutingCsv(t, out);
        const QStringList lines = QString::fromStdString(out.str()).split(QLatin1Char('\n'));
        QVERIFY(lines[1].startsWith(QStringLiteral("0,prompt,791,The,0,1,")));
        QVERIFY(lines[3].startsWith(QStringLiteral("2,answer,7731,")));  // token 1 has no lines
    }

    void jsonExactContent() {
        RoutingTable t = test::knownTable();
        t.rows.resize(2);
        t.rows[1].logprob.reset();
        t.rows[1].alternatives.clear();
        std::ostringstream out;
        writeRoutingJson(t, out);
        const std::string expected =
            "{\"format\":\"dsv2-routing\",\"version\":1,\"messageId\":42,\"moeLayers\":2,\"topK\":2,\"experts\":4,"
            "\"modelLayers\":[1,2],\"tokens\":[\n"
            "{\"index\":0,\"source\":\"answer\",\"id\":791,\"text\":\"The\",\"logprob\":-0.105,\"alternatives\":"
            "[{\"id\":791,\"text\":\"The\",\"logprob\":-0.105},{\"id\":13,\"text\":\",\",\"logprob\":-2.5}],"
            "\"experts\":[[0,1],[2,3]],\"weights\":[[0.6,0.4],[0.7,0.3]]},\n"
            "{\"index\":1,\"source\":\"answer\",\"id\":8415,\"text\":\" cat\",\"logprob\":null,\"alternatives\":[],"
            "\"experts\":[[0,2],[2,0]],\"weights\":[[0.5,0.5],[0.8,0.2]]}\n"
            "]}\n";
        QCOMPARE(out.str(), expected);
        // And it parses: the numbers read back as written.
        const QJsonDocument doc = QJsonDocument::fromJson(QByteArray::fromStdString(out.str()));
        QVERIFY(doc.isObject());
        QCOMPARE(float(doc[QStringLiteral("tokens")][0][QStringLiteral("weights")][1][0].toDouble()), 0.7f);
    }
};

QTEST_GUILESS_MAIN(InspectMathsTest)
#include "inspect_maths_test.moc"
