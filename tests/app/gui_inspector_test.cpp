// The inspector docked in the real window, with tiny-lite on the CPU backend: rows appear while an
// answer streams, what is stored (prompt + answer rows) equals what the engine emitted, a second
// turn stores only its own prompt tokens, an expert selection colours the routed tokens in the chat,
// a token in the chat selects its heatmap row, and after a restart on the same database the
// selected answer shows the same heatmap cells.
#include <QSignalSpy>
#include <QtTest>

#include <cmath>

#include "gui_harness.h"
#include "inspect/inspection_model.h"
#include "inspect/inspector_panel.h"
#include "inspect/routing_heatmap.h"
#include "inspector_dock.h"

using dsv2::inspect::TokenRow;
using dsv2::test::GuiHarness;

namespace {

// Weights are stored as f16: equal within its rounding.
bool sameRouting(const TokenRow& stored, const TokenRow& emitted) {
    if (stored.tokenId != emitted.tokenId || stored.isPrompt != emitted.isPrompt ||
        stored.expertIds != emitted.expertIds || stored.weights.size() != emitted.weights.size())
        return false;
    for (std::size_t i = 0; i < stored.weights.size(); ++i)
        if (std::abs(stored.weights[i] - emitted.weights[i]) > 1e-3f * std::max(1.0f, std::abs(emitted.weights[i])))
            return false;
    return true;
}

}  // namespace

class GuiInspectorTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { dsv2::test::isolateSettings(m_settingsDir, "gui_inspector_test"); }

    void liveStoredAndAfterRestart() {
        QTemporaryDir dir;
        const QString db = dir.filePath(QStringLiteral("history.sqlite"));
        dsv2::inspect::RoutingTable firstAnswer;
        QVector<QRgb> firstCells;
        qint64 firstAnswerId = 0;
        {
            GuiHarness h(db);
            QVERIFY(h.start());
            dsv2::ui::InspectorDock* dock = h.window.inspectorDock();
            QVERIFY(!dock->isVisible());
            QTest::keyClick(&h.window, Qt::Key_R, Qt::ControlModifier | Qt::ShiftModifier);  // View → Inspector
            QTRY_VERIFY(dock->isVisible());
            dsv2::ui::InspectionModel* model = dock->panel()->model();
            h.useSettings(12);

            std::vector<TokenRow> emitted;
            int liveRowsSeen = 0;
            QObject::connect(&h.service, &dsv2::ui::ChatBackend::streamed, &h.window,
                             [&](const dsv2::ui::StreamUpdate& u) {
                                 emitted.insert(emitted.end(), u.routingRows.begin(), u.routingRows.end());
                                 if (model->isLive()) liveRowsSeen = std::max(liveRowsSeen, model->tokenCount());
                             });
            QSignalSpy shownStored(dock, &dsv2::ui::InspectorDock::routingShown);
            h.typeAndSend(QStringLiteral("Hello, route me"));
            dsv2::ui::GenerationOutcome outcome;
            QVERIFY(h.waitFinished(&outcome));
            QVERIFY2(liveRowsSeen > 0, "no rows while streaming");
            int emittedPrompt = 0;
            for (const TokenRow& r : emitted) emittedPrompt += r.isPrompt ? 1 : 0;
            // The first turn keeps its whole prompt; the answer has one row per generated token.
            QCOMPARE(qint64{emittedPrompt}, outcome.stats.promptTokens);
            QCOMPARE(static_cast<qint64>(emitted.size()) - emittedPrompt, outcome.stats.generatedTokens);
            // After the answer the panel shows what was stored: the same rows.
            QTRY_VERIFY(!shownStored.isEmpty() && shownStored.last().first().toLongLong() == outcome.messageId);
            QVERIFY(!model->isLive());
            QCOMPARE(model->tokenCount(), static_cast<int>(emitted.size()));
            QCOMPARE(model->messageId(), outcome.messageId);
            QCOMPARE(model->table().promptTokenCount(), emittedPrompt);
            for (std::size_t i = 0; i < emitted.size(); ++i)
                QVERIFY2(sameRouting(model->table().rows[i], emitted[i]), qPrintable(QString::number(i)));
            firstAnswer = model->table();
            // Stored routing is labelled with the model's MoE layers (tiny-lite: layers 1 and 2, after
            // the dense layer 0), like the live table was.
            QCOMPARE(firstAnswer.modelLayers, (std::vector<std::int32_t>{1, 2}));
            firstAnswerId = outcome.messageId;
            for (int row = 0; row < firstAnswer.tokenCount(); ++row)
                for (int layer = 0; layer < firstAnswer.layers; ++layer)
                    firstCells.append(dock->panel()->heatmap()->cellColor(row, layer));

            // Selecting an expert colours its tokens in the chat's rendered answer.
            int answerRow = -1;
            for (int r = emittedPrompt; r < firstAnswer.tokenCount() && answerRow < 0; ++r)
                if (!QString::fromStdString(firstAnswer.rows[static_cast<std::size_t>(r)].text).trimmed().isEmpty())
                    answerRow = r;
            QVERIFY(answerRow >= 0);
            const int expert = firstAnswer.top1(answerRow, 0);
            model->setSelectedExpert({0, expert});
            dsv2::ui::MessageDelegate* delegate = h.view()->messageDelegate();
            QTRY_COMPARE(delegate->highlightedMessage(), firstAnswerId);
            int lit = 0;
            for (const dsv2::ui::TextRange& r : delegate->highlightRanges()) lit += r.length > 0 ? 1 : 0;
            QVERIFY(lit > 0);
            QVERIFY(lit <= model->tokensRoutedTo({0, expert}).size());
            const auto doc = delegate->document(h.messages()->index(1));
            const dsv2::ui::TextRange first = [&] {
                for (const dsv2::ui::TextRange& r : delegate->highlightRanges())
                    if (r.length > 0) return r;
                return dsv2::ui::TextRange{};
            }();
            // The coloured characters are the routed tokens' text.
            const QString litText = doc->toPlainText().mid(first.start, first.length);
            bool isRoutedText = false;
            for (int row : model->tokensRoutedTo({0, expert}))
                isRoutedText |=
                    QString::fromStdString(firstAnswer.rows[static_cast<std::size_t>(row)].text).trimmed() == litText;
            QVERIFY2(isRoutedText, qPrintable(litText));
            // A click on that text in the chat selects its token (the delegate's click signal, as
            // the view sends it for a click on the text).
            model->setSelectedExpert({});
            QTRY_COMPARE(delegate->highlightedMessage(), qint64{0});
            Q_EMIT delegate->textClicked(h.messages()->index(1), first.start);
            QVERIFY(model->selectedToken() >= emittedPrompt);
            QCOMPARE(QString::fromStdString(firstAnswer.rows[static_cast<std::size_t>(model->selectedToken())].text)
                         .trimmed(),
                     litText);

            // A second turn stores only its own prompt tokens (the new user message and the template
            // around it), not the whole conversation again.
            emitted.clear();
            h.typeAndSend(QStringLiteral("And again"));
            QVERIFY(h.waitFinished(&outcome));
            int secondPrompt = 0;
            for (const TokenRow& r : emitted) secondPrompt += r.isPrompt ? 1 : 0;
            QVERIFY(secondPrompt > 0);
            QVERIFY2(secondPrompt < outcome.stats.promptTokens - firstAnswer.tokenCount() + emittedPrompt,
                     qPrintable(QStringLiteral("%1 of %2").arg(secondPrompt).arg(outcome.stats.promptTokens)));
            QTRY_VERIFY(!model->isLive() && model->messageId() == outcome.messageId &&
                        model->table().promptTokenCount() == secondPrompt);
            h.window.close();  // saves the window state, docks included
        }
        // A restart on the same database: the conversation reopens, the first answer is selected,
        // and its routing comes back from storage with the same heatmap cells.
        GuiHarness h(db);
        QVERIFY(h.start());
        dsv2::ui::InspectorDock* dock = h.window.inspectorDock();
        QVERIFY(dock->isVisible());  // remembered with the window state
        QTRY_VERIFY(h.messages()->rowCount() == 4);
        QSignalSpy shown(dock, &dsv2::ui::InspectorDock::routingShown);
        h.view()->setCurrentIndex(h.messages()->index(1));
        QTRY_VERIFY(dock->panel()->model()->messageId() == firstAnswerId);
        // Equal once the model has loaded too (its MoE layers label the stored table's columns).
        QTRY_VERIFY(dock->panel()->model()->table() == firstAnswer);
        QVector<QRgb> cells;
        for (int row = 0; row < firstAnswer.tokenCount(); ++row)
            for (int layer = 0; layer < firstAnswer.layers; ++layer)
                cells.append(dock->panel()->heatmap()->cellColor(row, layer));
        QCOMPARE(cells, firstCells);
    }

private:
    QTemporaryDir m_settingsDir;
};

QTEST_MAIN(GuiInspectorTest)
#include "gui_inspector_test.moc"
