// The model side of the window: loading (progress, Cancel), a folder that is not a model (a dialog
// that offers a way out), the information panel and the toy-model banner, conversation settings
// that reach the engine and the database, and the window's shortcuts.
#include <QDoubleSpinBox>
#include <QLabel>
#include <QMessageBox>
#include <QPointer>
#include <QProgressBar>
#include <QSemaphore>
#include <QSignalSpy>
#include <QSpinBox>
#include <QtTest>

#include <atomic>
#include <chrono>
#include <thread>

#include "engine_worker.h"
#include "format.h"
#include "gui_harness.h"
#include "model/model_info_panel.h"
#include "settings/conversation_settings_dialog.h"

using dsv2::test::GuiHarness;

class GuiModelTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { dsv2::test::isolateSettings(m_settingsDir, "gui_model_test"); }

    void infoPanelAndToyBanner() {
        GuiHarness h;
        QVERIFY(h.start());
        const dsv2::ui::ModelSummary m = h.service.model();
        QCOMPARE(m.name, QStringLiteral("tiny-lite"));
        QCOMPARE(m.layers, qint64{3});
        QVERIFY(m.parametersTotal > m.parametersActive && m.parametersActive > 0);
        QVERIFY(m.isToy);
        dsv2::ui::ModelInfoPanel* panel = h.window.modelInfo();
        QCOMPARE(panel->fieldText(QStringLiteral("layers")), QStringLiteral("3"));
        QCOMPARE(panel->fieldText(QStringLiteral("experts")), QStringLiteral("8 routed + 2 shared, 2 per token"));
        QCOMPARE(panel->fieldText(QStringLiteral("dtype")), QStringLiteral("bfloat16"));
        QVERIFY(panel->fieldText(QStringLiteral("parameters")).contains(QStringLiteral("active per token")));
        QVERIFY(panel->fieldText(QStringLiteral("backend")).startsWith(QStringLiteral("cpu")));
        auto* banner = h.window.findChild<QLabel*>(QStringLiteral("toyModelBanner"));
        QVERIFY(banner && banner->isVisible());
        QVERIFY(banner->text().contains(QStringLiteral("random weights")));
        QVERIFY(banner->text().contains(QStringLiteral("Open a model folder")));
        // Ctrl+I shows the panel.
        QTest::keyClick(&h.window, Qt::Key_I, Qt::ControlModifier);
        QTRY_VERIFY(panel->isVisible());
        // The default model is remembered for the next start.
        QCOMPARE(h.window.recentModels().value(0), m.path);
    }

    void notAModelFolderGivesAWayOut() {
        GuiHarness h;
        QVERIFY(h.start(false));
        h.window.setFallbackModel(dsv2::test::tinyLiteDir());
        QTemporaryDir empty;
        QSignalSpy failed(&h.service, &dsv2::ui::ChatBackend::modelLoadFailed);
        h.window.loadModel(empty.path());
        QVERIFY(failed.wait(20000));
        QVERIFY(!failed.first().at(1).toString().isEmpty());
        QMessageBox* box = nullptr;
        QTRY_VERIFY((box = h.window.findChild<QMessageBox*>(QStringLiteral("modelLoadErrorDialog"))) &&
                    box->isVisible());
        QVERIFY(box->text().contains(empty.path()));
        QVERIFY(box->informativeText().contains(QStringLiteral("config.json")));
        QVERIFY(!h.panel()->sendButton()->isEnabled());
        QAbstractButton* fallback = nullptr;
        for (QAbstractButton* b : box->buttons())
            if (b->text() == QStringLiteral("Use the built-in model")) fallback = b;
        QVERIFY(fallback);
        QSignalSpy loaded(&h.service, &dsv2::ui::ChatBackend::modelLoaded);
        fallback->click();
        QVERIFY(loaded.wait(60000));
        QCOMPARE(h.service.model().name, QStringLiteral("tiny-lite"));
    }

    void cancelLoadingFreesTheWindowAtOnce() {
        GuiHarness h;
        QVERIFY(h.start(false));
        QSignalSpy cancelled(&h.service, &dsv2::ui::ChatBackend::modelLoadCancelled);
        QSignalSpy loaded(&h.service, &dsv2::ui::ChatBackend::modelLoaded);
        h.window.loadModel(dsv2::test::tinyLiteDir());
        auto* progress = h.window.findChild<QProgressBar*>(QStringLiteral("modelLoadProgress"));
        auto* cancel = h.window.findChild<QPushButton*>(QStringLiteral("cancelLoadButton"));
        QVERIFY(progress && cancel);
        QVERIFY(progress->isVisible() && cancel->isVisible());
        QVERIFY(h.service.isLoadingModel());
        cancel->click();
        QCOMPARE(cancelled.size(), 1);  // at once, without waiting for the engine thread
        QVERIFY(!h.service.isLoadingModel());
        QVERIFY(!progress->isVisible());
        // Once the engine thread has dealt with the load (a token count queues behind it), there is
        // still no model: the result was dropped.
        QSignalSpy counted(&h.service, &dsv2::ui::ChatBackend::tokensCounted);
        h.service.countTokens(99, QStringLiteral("probe"));
        QVERIFY(counted.wait(20000));
        QCOMPARE(counted.first().at(1).toInt(), -1);
        QVERIFY(loaded.isEmpty());
        QVERIFY(!h.service.hasModel());
        QVERIFY(!h.panel()->sendButton()->isEnabled());
    }

    // Cancel clicked after the engine thread finished the load but before the window heard of it
    // (the GUI thread is kept busy meanwhile, so `loaded` is still queued): the finished model must
    // not stay on the engine thread while the window shows none.
    void cancelAfterTheLoadFinishedLeavesNoModel() {
        GuiHarness h;
        QVERIFY(h.start(false));
        QSignalSpy loaded(&h.service, &dsv2::ui::ChatBackend::modelLoaded);
        h.window.loadModel(dsv2::test::tinyLiteDir());
        std::this_thread::sleep_for(std::chrono::seconds(2));  // tiny-lite loads in ~10 ms; no events run
        h.window.findChild<QPushButton*>(QStringLiteral("cancelLoadButton"))->click();
        QSignalSpy counted(&h.service, &dsv2::ui::ChatBackend::tokensCounted);
        h.service.countTokens(5, QStringLiteral("probe"));
        QVERIFY(counted.wait(20000));
        QCOMPARE(counted.first().at(1).toInt(), -1);
        QVERIFY(loaded.isEmpty());
        QVERIFY(!h.service.hasModel());
    }

    // The bar follows the engine's byte counts: the weight files' size is the total, the percent
    // climbs to the end of the loading span, and the stage says how much was read.
    void loadProgressCountsTheWeightBytes() {
        GuiHarness h;
        QVERIFY(h.start(false));
        qint64 weightBytes = 0;
        for (const QFileInfo& f : QDir(dsv2::test::tinyLiteDir()).entryInfoList({QStringLiteral("*.safetensors")}))
            weightBytes += f.size();
        QVERIFY(weightBytes > 0);
        std::atomic<int> reports{0};
        std::atomic<quint64> lastDone{0}, lastTotal{0};
        h.service.setLoadProbe([&](std::uint64_t done, std::uint64_t total) {
            ++reports;
            lastDone = done;
            lastTotal = total;
        });
        QSignalSpy progress(&h.service, &dsv2::ui::ChatBackend::modelLoadProgress);
        QSignalSpy loaded(&h.service, &dsv2::ui::ChatBackend::modelLoaded);
        h.window.loadModel(dsv2::test::tinyLiteDir());
        QVERIFY(loaded.wait(60000));
        h.service.setLoadProbe({});
        QVERIFY(reports.load() >= 2);  // before the first chunk and after the last
        QCOMPARE(lastTotal.load(), static_cast<quint64>(weightBytes));
        QCOMPARE(lastDone.load(), lastTotal.load());
        int previous = -1;
        bool sawAllBytes = false;
        for (const QList<QVariant>& args : progress) {
            const int percent = args.at(1).toInt();
            if (percent < 0) continue;
            QVERIFY2(percent >= previous, "the bar never goes back");
            previous = percent;
            if (args.at(0).toString() ==
                QStringLiteral("Loading weights: %1 of %1").arg(dsv2::ui::formatBytes(weightBytes))) {
                QCOMPARE(percent, dsv2::gui::EngineWorker::kLoadEndPercent);
                sawAllBytes = true;
            }
        }
        QVERIFY(sawAllBytes);
        QCOMPARE(dsv2::gui::EngineWorker::loadPercent(0, 1000), dsv2::gui::EngineWorker::kLoadStartPercent);
        QCOMPARE(dsv2::gui::EngineWorker::loadPercent(500, 1000), 50);
        QCOMPARE(dsv2::gui::EngineWorker::loadPercent(2000, 1000), dsv2::gui::EngineWorker::kLoadEndPercent);
        // No GPU here: the status bar says so instead of leaving the field out.
        auto* gpu = h.window.findChild<QLabel*>(QStringLiteral("gpuMemoryLabel"));
        QVERIFY(gpu && gpu->isVisible());
        if (h.service.model().devices.isEmpty()) QCOMPARE(gpu->text(), QStringLiteral("GPU —"));
    }

    // Cancel reaches inside Engine::load: the engine thread is held at the load's first progress
    // report, Cancel is clicked, and the load must end there — no further chunk is read (a worker
    // that only dropped the finished engine would report again at the end of the file).
    void cancelAbortsTheLoadInsideTheEngine() {
        GuiHarness h;
        QVERIFY(h.start(false));
        QSemaphore reached, go;
        std::atomic<int> reports{0};
        h.service.setLoadProbe([&](std::uint64_t, std::uint64_t) {
            if (reports++ == 0) {
                reached.release();
                go.tryAcquire(1, 20000);
            }
        });
        QSignalSpy cancelled(&h.service, &dsv2::ui::ChatBackend::modelLoadCancelled);
        QSignalSpy loaded(&h.service, &dsv2::ui::ChatBackend::modelLoaded);
        h.window.loadModel(dsv2::test::tinyLiteDir());
        QVERIFY(QTest::qWaitFor([&] { return reached.available() > 0; }, 20000));
        h.window.findChild<QPushButton*>(QStringLiteral("cancelLoadButton"))->click();
        QCOMPARE(cancelled.size(), 1);
        go.release();
        QSignalSpy counted(&h.service, &dsv2::ui::ChatBackend::tokensCounted);
        h.service.countTokens(7, QStringLiteral("probe"));  // queues behind the load on the engine thread
        QVERIFY(counted.wait(20000));
        h.service.setLoadProbe({});
        QCOMPARE(counted.first().at(1).toInt(), -1);
        QCOMPARE(reports.load(), 1);
        QVERIFY(loaded.isEmpty());
        QVERIFY(!h.service.hasModel());
        // The engine thread is free: the next load works.
        h.window.loadModel(dsv2::test::tinyLiteDir());
        QVERIFY(loaded.wait(60000));
    }

    void settingsReachTheEngineAndTheDatabase() {
        GuiHarness h;
        QVERIFY(h.start());
        // Settings… opens the dialog with the model's defaults; choose 5 new tokens and a seed.
        h.window.findChild<QPushButton*>(QStringLiteral("conversationSettingsButton"))->click();
        dsv2::ui::ConversationSettingsDialog* dialog = nullptr;
        QTRY_VERIFY((dialog = h.window.findChild<dsv2::ui::ConversationSettingsDialog*>()) && dialog->isVisible());
        QCOMPARE(dialog->findChild<QDoubleSpinBox*>(QStringLiteral("temperatureSpin"))->value(),
                 0.3);  // generation_config.json
        dialog->findChild<QSpinBox*>(QStringLiteral("maxTokensSpin"))->setValue(5);
        dialog->findChild<QPlainTextEdit*>(QStringLiteral("systemPromptEdit"))
            ->setPlainText(QStringLiteral("You are terse."));
        QPointer<dsv2::ui::ConversationSettingsDialog> closed(dialog);
        dialog->accept();
        QCOMPARE(h.controller()->settings().maxTokens, std::optional<int>(5));
        QTRY_VERIFY(closed.isNull());  // deleted on close, focus back in the main window

        h.typeAndSend(QStringLiteral("Count to ten"));
        dsv2::ui::GenerationOutcome outcome;
        QVERIFY(h.waitFinished(&outcome));
        QVERIFY(outcome.stats.generatedTokens <= 5);
        const qint64 conversation = h.controller()->conversationId();
        auto stored = h.reopenStore().conversation(conversation);
        QVERIFY(stored.hasValue());
        QCOMPARE(stored->meta.systemPrompt, std::string("You are terse."));
        QCOMPARE(stored->meta.sampling.value("maxTokens", 0), 5);
        QVERIFY(!stored->meta.sampling.contains("temperature"));  // left at the model's default
        // The system prompt went into the prompt: more prompt tokens than the user text alone.
        QVERIFY(outcome.stats.promptTokens > 10);

        // Ctrl+N: a fresh chat; reopening the old one brings its settings back.
        h.window.activateWindow();
        QVERIFY(QTest::qWaitForWindowActive(&h.window));
        QTest::keyClick(&h.window, Qt::Key_N, Qt::ControlModifier);
        QCOMPARE(h.controller()->conversationId(), qint64{0});
        QCOMPARE(h.messages()->rowCount(), 0);
        h.controller()->openConversation(conversation);
        QTRY_COMPARE(h.controller()->conversationId(), conversation);
        QCOMPARE(h.controller()->settings().maxTokens, std::optional<int>(5));
        QCOMPARE(h.controller()->settings().systemPrompt, QStringLiteral("You are terse."));
    }

    void textSizeIsAdjustableAndRemembered() {
        int before = 0;
        {
            GuiHarness h;
            QVERIFY(h.start(false));
            before = h.window.fontPointSize();
            QTest::keyClick(&h.window, Qt::Key_Plus, Qt::ControlModifier);
            QTest::keyClick(&h.window, Qt::Key_Plus, Qt::ControlModifier);
            QCOMPARE(h.window.fontPointSize(), before + 2);
            QCOMPARE(h.view()->font().pointSize(), before + 2);  // the messages follow
        }
        GuiHarness again;
        QCOMPARE(again.window.fontPointSize(), before + 2);
        again.window.show();
        QVERIFY(QTest::qWaitForWindowActive(&again.window));
        QTest::keyClick(&again.window, Qt::Key_0, Qt::ControlModifier);
        QCOMPARE(again.window.fontPointSize(), QApplication::font().pointSize());
    }

private:
    QTemporaryDir m_settingsDir;
};

QTEST_MAIN(GuiModelTest)
#include "gui_model_test.moc"
