// The inspection widgets on known routing data: the colour and count of specific cells (as stored
// and as painted), hover text, selection flowing between the heatmap, the text, the load views and
// the token inspector, and the KV-cache figures.
#include <QApplication>
#include <QHelpEvent>
#include <QScrollBar>
#include <QSignalSpy>
#include <QToolTip>
#include <QtTest>

#include <cmath>

#include "inspect/expert_load_matrix.h"
#include "inspect/inspect_colors.h"
#include "inspect/inspection_model.h"
#include "inspect/kv_cache_view.h"
#include "inspect/load_histogram.h"
#include "inspect/routing_heatmap.h"
#include "inspect/token_inspector.h"
#include "inspect/token_text_view.h"
#include "inspect_fixtures.h"

using namespace dsv2;
using namespace dsv2::ui;
using inspect::test::knownTable;

namespace {

QRgb paintedPixel(QWidget* w, const QPoint& p) { return w->grab().toImage().pixel(p); }

QRgb faded(const QColor& own, const QWidget& w) {
    return mixColors(own, w.palette().color(QPalette::Base), 0.72).rgb();
}

}  // namespace

class InspectWidgetsTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { QLocale::setDefault(QLocale(QLocale::English, QLocale::UnitedStates)); }

    void heatmapCellsShowTopExpert() {
        InspectionModel model;
        model.setTable(knownTable());
        RoutingHeatmap heat(&model);
        heat.resize(420, 300);
        heat.show();
        QVERIFY(QTest::qWaitForWindowExposed(&heat));
        // Top-1: layer 0 → experts 0, 0, 0, 1; layer 1 → 2, 2, 3, 2.
        const int top1[4][2] = {{0, 2}, {0, 2}, {0, 3}, {1, 2}};
        for (int r = 0; r < 4; ++r) {
            for (int l = 0; l < 2; ++l) {
                QCOMPARE(heat.cellColor(r, l), expertColor(top1[r][l]).rgb());
                const QRect cell = heat.cellRect(r, l);
                QVERIFY(!cell.isEmpty());
                QCOMPARE(paintedPixel(heat.viewport(), cell.center()), expertColor(top1[r][l]).rgb());
            }
        }
        QCOMPARE(heat.cellAt(heat.cellRect(2, 1).center()), (RoutingHeatmap::Cell{2, 1}));
    }

    void heatmapGateWeightMode() {
        InspectionModel model;
        model.setTable(knownTable());
        RoutingHeatmap heat(&model);
        heat.resize(420, 300);
        heat.show();
        QVERIFY(QTest::qWaitForWindowExposed(&heat));
        heat.setColorMode(RoutingHeatmap::ColorMode::GateWeight);
        QCOMPARE(heat.weightScale(), 1.0);  // largest top-1 weight is 0.9
        QCOMPARE(heat.cellColor(2, 0), weightColor(0.9f).rgb());
        QCOMPARE(heat.cellColor(3, 1), weightColor(0.5f).rgb());
        QCOMPARE(paintedPixel(heat.viewport(), heat.cellRect(2, 0).center()), weightColor(0.9f).rgb());
    }

    void gateWeightScaleGrowsWhileStreaming() {
        InspectionModel model;
        RoutingHeatmap heat(&model);
        heat.setColorMode(RoutingHeatmap::ColorMode::GateWeight);
        model.beginLive(1, 1, 1, 4);
        inspect::TokenRow a;
        a.text = "a";
        a.expertIds = {1};
        a.weights = {0.2f};
        QCOMPARE(model.appendRows({a}), 1);
        QCOMPARE(heat.weightScale(), 0.25);
        QCOMPARE(heat.cellColor(0, 0), weightColor(0.2 / 0.25).rgb());
        // routed_scaling_factor can give weights above 1: the ramp rescales and old rows follow.
        inspect::TokenRow b = a;
        b.weights = {1.5f};
        model.appendRows({b});
        QCOMPARE(heat.weightScale(), 2.0);
        QCOMPARE(heat.cellColor(0, 0), weightColor(0.2f / 2.0).rgb());
        QCOMPARE(heat.cellColor(1, 0), weightColor(1.5 / 2.0).rgb());
    }

    void hoverShowsTokenLayerExpertsAndWeights() {
        InspectionModel model;
        model.setTable(knownTable());
        RoutingHeatmap heat(&model);
        heat.resize(420, 300);
        heat.show();
        QVERIFY(QTest::qWaitForWindowExposed(&heat));
        const QString tip = heat.cellToolTip(1, 1);
        QVERIFY2(tip.contains(QStringLiteral("␣cat")), qPrintable(tip));
        QVERIFY(tip.contains(QStringLiteral("token 1 (answer) · id 8415")));
        QVERIFY(tip.contains(QStringLiteral("MoE layer 1 (model layer 2)")));
        QVERIFY(tip.indexOf(QStringLiteral("expert 2")) < tip.indexOf(QStringLiteral("expert 0")));  // by weight
        QVERIFY(tip.contains(QStringLiteral("0.800")));
        QVERIFY(tip.contains(QStringLiteral("0.200")));

        QSignalSpy hovered(&heat, &RoutingHeatmap::cellHovered);
        const QPoint at = heat.cellRect(1, 1).center();
        QTest::mouseMove(heat.viewport(), at);
        QTRY_VERIFY(!hovered.isEmpty());
        QCOMPARE(hovered.last().at(0).toInt(), 1);
        QCOMPARE(hovered.last().at(1).toInt(), 1);
        QHelpEvent help(QEvent::ToolTip, at, heat.viewport()->mapToGlobal(at));
        QApplication::sendEvent(heat.viewport(), &help);
        QTRY_VERIFY(QToolTip::isVisible());
        QCOMPARE(QToolTip::text(), tip);
        QToolTip::hideText();
    }

    void clickSelectsTokenShiftClickSelectsExpert() {
        InspectionModel model;
        model.setTable(knownTable());
        RoutingHeatmap heat(&model);
        heat.resize(420, 300);
        heat.show();
        QVERIFY(QTest::qWaitForWindowExposed(&heat));
        QTest::mouseClick(heat.viewport(), Qt::LeftButton, {}, heat.cellRect(2, 0).center());
        QCOMPARE(model.selectedToken(), 2);
        QSignalSpy expertSpy(&model, &InspectionModel::selectedExpertChanged);
        QTest::mouseClick(heat.viewport(), Qt::LeftButton, Qt::ShiftModifier, heat.cellRect(2, 1).center());
        QCOMPARE(model.selectedExpert(), (ExpertSelection{1, 3}));
        QCOMPARE(expertSpy.count(), 1);
        // Routed to expert 3 in layer 1: tokens 0 (rank 2) and 2 (rank 1), drawn in its colour;
        // the rest of the layer and the other layer fade.
        QCOMPARE(heat.cellColor(0, 1), expertColor(3).rgb());
        QCOMPARE(heat.cellColor(2, 1), expertColor(3).rgb());
        QCOMPARE(heat.cellColor(1, 1), faded(expertColor(2), heat));
        QCOMPARE(heat.cellColor(0, 0), faded(expertColor(0), heat));
        QCOMPARE(paintedPixel(heat.viewport(), heat.cellRect(0, 1).center()), expertColor(3).rgb());
        // Shift-click the same again: cleared, colours back.
        QTest::mouseClick(heat.viewport(), Qt::LeftButton, Qt::ShiftModifier, heat.cellRect(2, 1).center());
        QVERIFY(!model.selectedExpert().isValid());
        QCOMPARE(heat.cellColor(1, 1), expertColor(2).rgb());
        // Keys move the token selection.
        QTest::keyClick(&heat, Qt::Key_Down);
        QCOMPARE(model.selectedToken(), 3);
    }

    void expertSelectionHighlightsTokensInText() {
        InspectionModel model;
        model.setTable(knownTable());
        TokenTextView text(&model);
        text.resize(300, 200);
        text.show();
        QVERIFY(QTest::qWaitForWindowExposed(&text));
        QCOMPARE(text.toPlainText(), QStringLiteral("The cat sat\n"));
        QVERIFY(text.highlightedTokens().isEmpty());
        model.setSelectedExpert({1, 3});
        QCOMPARE(model.tokensRoutedTo({1, 3}), (QVector<int>{0, 2}));
        QCOMPARE(text.highlightedTokens(), (QVector<int>{0, 2}));
        QCOMPARE(text.tokenBackground(0).rgb(), expertColor(3).rgb());
        // The same set for the chat view, as UTF-16 spans of the answer text.
        QCOMPARE(model.routedAnswerSpans({1, 3}), (QVector<TokenTextSpan>{{0, 0, 3}, {2, 7, 4}}));
        QCOMPARE(model.rowAtTextPosition(5), 1);
        QCOMPARE(model.rowAtTextPosition(11), 3);
        // Expert 1 in any layer: tokens 0, 2, 3 in layer 0, and 3 in layer 1.
        model.setSelectedExpert({-1, 1});
        QCOMPARE(text.highlightedTokens(), (QVector<int>{0, 2, 3}));
        model.setSelectedExpert({0, 2});
        QCOMPARE(text.highlightedTokens(), (QVector<int>{1}));
    }

    void textColouringModes() {
        InspectionModel model;
        model.setTable(knownTable());
        TokenTextView text(&model);
        text.setColoring(TokenTextView::Coloring::ExpertAtLayer);
        text.setColorLayer(1);
        QCOMPARE(text.tokenBackground(2).rgb(), expertColor(3).rgb());
        QCOMPARE(text.tokenBackground(0).rgb(), expertColor(2).rgb());
        QCOMPARE(text.highlightedTokens().size(), 4);
        text.setColoring(TokenTextView::Coloring::Confidence);
        // p = 0.90 (token 0) is nearly clear; p = 0.10 (token 3) is strong.
        QVERIFY(text.tokenBackground(3).alpha() > 150);
        QVERIFY(!text.tokenBackground(0).isValid() ||
                text.tokenBackground(0).alpha() < text.tokenBackground(3).alpha() / 3);
        QVERIFY(text.tokenBackground(3).green() < text.tokenBackground(1).green());  // p 0.10 redder than 0.30
        text.setColoring(TokenTextView::Coloring::Plain);
        QVERIFY(text.highlightedTokens().isEmpty());
    }

    void tokenClickedInTextSelectsHeatmapRow() {
        InspectionModel model;
        model.setTable(inspect::test::liteTable(0, 300));
        RoutingHeatmap heat(&model);
        heat.resize(500, 300);
        TokenTextView text(&model);
        text.resize(400, 300);
        heat.show();
        text.show();
        QVERIFY(QTest::qWaitForWindowExposed(&heat));
        QVERIFY(QTest::qWaitForWindowExposed(&text));
        heat.verticalScrollBar()->setValue(0);
        QVERIFY(heat.cellRect(250, 0).isEmpty());  // far below
        model.setSelectedToken(250);               // as a click on the text does; the text scrolls to it too
        QTRY_VERIFY(!heat.cellRect(250, 0).isEmpty());
        int row = 250;
        while (model.table().rows[static_cast<std::size_t>(row)].text == "\n") ++row;  // a token on one line
        model.setSelectedToken(row);
        const QPoint p = text.tokenCenter(row);
        QVERIFY(text.viewport()->rect().contains(p));
        model.setSelectedToken(-1);
        QTest::mouseClick(text.viewport(), Qt::LeftButton, {}, p);
        QCOMPARE(model.selectedToken(), row);
        QCOMPARE(text.tokenAt(p), row);
    }

    void loadMatrixCountsAndColours() {
        InspectionModel model;
        model.setTable(knownTable());
        ExpertLoadMatrix matrix(&model);
        matrix.resize(520, 260);
        matrix.show();
        QVERIFY(QTest::qWaitForWindowExposed(&matrix));
        const inspect::LoadMatrix m = matrix.load();
        QCOMPARE(m.at(0, 0), 4.0);
        QCOMPARE(m.at(1, 2), 4.0);
        QCOMPARE(m.at(1, 3), 2.0);
        const QPalette& pal = matrix.palette();
        QCOMPARE(matrix.cellColor(0, 0), loadRatioColor(2.0, pal).rgb());  // 4 of mean 2
        QCOMPARE(matrix.cellColor(0, 3), loadRatioColor(0.0, pal).rgb());  // unused
        QCOMPARE(matrix.cellColor(1, 3), loadRatioColor(1.0, pal).rgb());  // even
        QCOMPARE(paintedPixel(&matrix, matrix.cellRect(0, 0).center()), loadRatioColor(2.0, pal).rgb());
        const QString tip = matrix.cellToolTip(0, 1);
        QVERIFY2(tip.contains(QStringLiteral("3 tokens")) && tip.contains(QStringLiteral("37.5 %")) &&
                     tip.contains(QStringLiteral("1.50× the mean")),
                 qPrintable(tip));
        QTest::mouseClick(&matrix, Qt::LeftButton, {}, matrix.cellRect(1, 3).center());
        QCOMPARE(model.selectedExpert(), (ExpertSelection{1, 3}));
        QTest::mouseClick(&matrix, Qt::LeftButton, {}, matrix.cellRect(-1, 2).center());  // palette strip
        QCOMPARE(model.selectedExpert(), (ExpertSelection{-1, 2}));
        QTest::mouseClick(&matrix, Qt::LeftButton, {}, matrix.cellRect(-1, 2).center());
        QVERIFY(!model.selectedExpert().isValid());
        matrix.setMeasure(inspect::LoadMeasure::Weight);
        QVERIFY(std::abs(matrix.load().at(0, 0) - 2.45) < 1e-6);
    }

    void conversationLoadCountsEachAnswerOnce() {
        InspectionModel model;
        inspect::RoutingTable shown = knownTable();
        inspect::RoutingTable other = knownTable();
        other.messageId = 43;
        model.setTable(shown);
        model.setConversationTables({shown, other});  // the shown one is among them
        QCOMPARE(model.conversationMessageCount(), 2);
        QCOMPARE(model.conversationLoad(inspect::LoadMeasure::Count).at(0, 0), 8.0);
        QCOMPARE(model.conversationLoad(inspect::LoadMeasure::Count).tokens(), 8);
        ExpertLoadMatrix matrix(&model);
        matrix.setScope(LoadScope::Conversation);
        QCOMPARE(matrix.load().at(1, 2), 8.0);
        // Streaming into the shown message adds to both scopes.
        model.beginLive(44, 2, 2, 4);
        model.appendRows({knownTable().rows[0]});
        QCOMPARE(model.messageLoad(inspect::LoadMeasure::Count).tokens(), 1);
        QCOMPARE(model.conversationLoad(inspect::LoadMeasure::Count).tokens(), 9);
    }

    void histogramFiguresAndBars() {
        InspectionModel model;
        model.setTable(knownTable());
        LoadHistogram hist(&model);
        hist.resize(420, hist.heightForWidth(420));
        hist.show();
        QVERIFY(QTest::qWaitForWindowExposed(&hist));
        QCOMPARE(hist.figures(0).maxOverMean, 2.0);
        QCOMPARE(hist.chartCaption(0), QStringLiteral("L1  max/mean 2.00  H 0.70"));
        // Bars: expert 0 in layer 0 is full height (the busiest), expert 3 has none.
        const QRect slot = hist.barRect(0, 0);
        QVERIFY(!slot.isEmpty());
        QCOMPARE(paintedPixel(&hist, QPoint(slot.center().x(), slot.top() + 2)), expertColor(0).rgb());
        QVERIFY(paintedPixel(&hist, QPoint(hist.barRect(0, 3).center().x(), slot.bottom() - 2)) !=
                expertColor(3).rgb());
        QVERIFY(hist.barToolTip(0, 1).contains(QStringLiteral("3 tokens")));
        QCOMPARE(hist.barAt(hist.barRect(1, 2).center()), (LoadHistogram::Bar{1, 2}));
        // Sorted: the busiest expert of layer 1 (expert 2) moves to the left edge.
        QVERIFY(hist.barRect(1, 2).left() > hist.barRect(1, 0).left());
        hist.setSorted(true);
        QVERIFY(hist.barRect(1, 2).left() < hist.barRect(1, 0).left());
        QTest::mouseClick(&hist, Qt::LeftButton, {}, hist.barRect(1, 2).center());
        QCOMPARE(model.selectedExpert(), (ExpertSelection{1, 2}));
    }

    void tokenInspectorShowsProbabilitiesAndEntropy() {
        InspectionModel model;
        inspect::RoutingTable t = knownTable();
        inspect::TokenRow prompt = t.rows[0];
        prompt.isPrompt = true;
        prompt.logprob.reset();
        prompt.alternatives.clear();
        t.rows.insert(t.rows.begin(), prompt);
        model.setTable(t);
        TokenInspector inspector(&model);
        QVERIFY(std::isnan(inspector.probability()));
        model.setSelectedToken(1);  // "The", logprob -0.105
        QVERIFY(std::abs(inspector.probability() - std::exp(-0.105)) < 1e-6);
        QCOMPARE(inspector.alternativeCount(), 2);
        QVERIFY(std::abs(inspector.entropy() - inspect::entropyLowerBound({-0.105f, -2.5f})) < 1e-9);
        QCOMPARE(inspector.headline(), QStringLiteral("“The”"));
        QVERIFY2(inspector.details().contains(QStringLiteral("probability 90.0 %")), qPrintable(inspector.details()));
        QVERIFY(inspector.details().contains(QStringLiteral("rank 1 of the top 2")));
        model.setSelectedToken(0);
        QVERIFY(inspector.details().contains(QStringLiteral("no probabilities")));
        QVERIFY(inspector.details().startsWith(QStringLiteral("Prompt token 0")));
    }

    void liveAppendGuardsTheShape() {
        InspectionModel model;
        model.beginLive(5, 2, 2, 4);
        inspect::TokenRow bad = knownTable().rows[0];
        bad.expertIds.pop_back();
        bad.weights.pop_back();
        QCOMPARE(model.appendRows({bad}), 0);
        QCOMPARE(model.appendRows({knownTable().rows[0]}), 1);
        inspect::TokenRow latePrompt = knownTable().rows[1];
        latePrompt.isPrompt = true;
        QCOMPARE(model.appendRows({latePrompt}), 0);  // prompt rows come before the answer
        QCOMPARE(model.table().content, std::string("The"));
        model.appendText(" (flushed)");
        QCOMPARE(model.contentText(), QStringLiteral("The (flushed)"));
        model.finishLive();
        QVERIFY(!model.isLive());
    }

    void kvCacheFigures() {
        KvCacheView view;
        view.setModelShape(ModelShape::deepSeekV2Lite());
        QCOMPARE(view.comparisonText(),
                 QStringLiteral("Per token (bf16): MLA 30.4 KiB · GQA-8 135 KiB (×4.4) · MHA 270 KiB (×8.9)"));
        const QString tip = view.comparisonToolTip();
        QVERIFY2(tip.contains(QStringLiteral("27 × (512 + 64) × 2 = 31,104 B")), qPrintable(tip));
        QVERIFY(tip.contains(QStringLiteral("27 × 16 × (128 + 64 + 128) × 2 = 276,480 B")));
        QVERIFY(tip.contains(QStringLiteral("27 × 8 × (192 + 128) × 2 = 138,240 B")));
        // The CPU backend keeps the latent in fp32: twice the bf16 figure.
        view.setCacheState(CacheState::estimate(1000, 4096, 62208));
        QCOMPARE(view.fillText(), QStringLiteral("Context: 1,000 tokens of 4,096 (24 %)"));
        QCOMPARE(view.blocksText(), QStringLiteral("Blocks of 64 tokens: 16 used, 48 free, 64 in all"));
        QVERIFY2(view.bytesText().contains(QStringLiteral("59.3 MiB used")), qPrintable(view.bytesText()));
        QVERIFY(view.bytesText().contains(QStringLiteral("fp32")));
        QVERIFY(view.perLayerText().contains(QStringLiteral("27 layers")));
        QVERIFY(view.limitText().startsWith(QStringLiteral("3,096 tokens left.")));
        QVERIFY(view.comparisonToolTip().contains(QStringLiteral("At the full context of 4,096 tokens: MLA ")));
        QVERIFY(view.comparisonToolTip().endsWith(QStringLiteral("MHA 1.05 GiB")));  // 4096 × 276,480 B
        view.resize(480, view.heightForWidth(480));
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        QHelpEvent help(QEvent::ToolTip, view.comparisonRect().center(),
                        view.mapToGlobal(view.comparisonRect().center()));
        QApplication::sendEvent(&view, &help);
        QTRY_VERIFY(QToolTip::isVisible());
        QCOMPARE(QToolTip::text(), view.comparisonToolTip());
        QToolTip::hideText();
    }
};

QTEST_MAIN(InspectWidgetsTest)
#include "inspect_widgets_test.moc"
