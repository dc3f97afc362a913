// The window's remote backend against a real `dsv2 serve` process on loopback (tiny-lite, CPU, a
// free port): an answer streams into the chat and is stored with the server's own tokens and
// routing; Esc stops it; the inspector shows the routing when the server returns it and says why
// not when it does not; the server killed mid-answer gives a failed answer with its text kept;
// a server that is not there gives the connection dialog. Skipped (saying why) in a build without
// cpp-httplib, which has neither the client nor `dsv2 serve`.
#include <QLabel>
#include <QMessageBox>
#include <QSignalSpy>
#include <QtTest>

#include <algorithm>
#include <csignal>

#include "gui_harness.h"
#include "inspect/inspection_model.h"
#include "inspect/inspector_panel.h"
#include "inspector_dock.h"
#include "model/model_info_panel.h"
#include "model/saved_servers.h"

#ifdef DSV2_HAVE_REMOTE
#include "remote/openai_client.h"
#include "served_model.h"
#endif

using dsv2::test::GuiHarness;
using dsv2::ui::MessageState;

#ifdef DSV2_HAVE_REMOTE
namespace {

// The dialog the window opened last with this object name (they are window-modal, opened with open()).
QMessageBox* findDialog(QWidget* window, const char* name) {
    const auto boxes = window->findChildren<QMessageBox*>(QString::fromLatin1(name));
    for (QMessageBox* b : boxes)
        if (b->isVisible()) return b;
    return nullptr;
}

}  // namespace
#endif

class GuiRemoteTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() {
#ifndef DSV2_HAVE_REMOTE
        QSKIP("this build has no dsv2_remote (cpp-httplib was not found): no remote backend and no `dsv2 serve`");
#endif
        dsv2::test::isolateSettings(m_settingsDir, "gui_remote_test");
    }
    void init() { QSettings().clear(); }  // no server remembered from the test before

#ifdef DSV2_HAVE_REMOTE
    // Send → the tokens stream into the chat → stored with the server's tokens, routing and the
    // prompt's routing; the inspector shows the table; the server remembered in the settings.
    void answerStreamsAndIsStoredWithRouting() {
        dsv2::test::ServedModel server({"--enable-return-routed-experts"}, "gui_remote_routed");
        QVERIFY2(server.started(),
                 qPrintable("dsv2 serve did not start; see " + QString::fromStdString(server.logPath())));
        GuiHarness h;
        QVERIFY(connectTo(h, server));
        QCOMPARE(h.service.model().name, QStringLiteral("tiny-lite"));
        QVERIFY(h.service.model().server.has_value());
        QCOMPARE(h.window.modelInfo()->fieldText(QStringLiteral("path")), QString::fromStdString(server.baseUrl()));
        QCOMPARE(dsv2::ui::savedServers().size(), 1);
        QCOMPARE(dsv2::ui::lastServer()->url, QString::fromStdString(server.baseUrl()));

        h.window.inspectorDock()->show();
        h.useSettings(12);
        QSignalSpy streamed(&h.service, &dsv2::ui::ChatBackend::streamed);
        h.typeAndSend(QStringLiteral("Hello there"));
        dsv2::ui::GenerationOutcome outcome;
        QVERIFY(h.waitFinished(&outcome, 60000));
        QCOMPARE(outcome.state, MessageState::Complete);
        QVERIFY(outcome.routingNote.isEmpty());
        QVERIFY(streamed.size() >= 2);  // text while it streamed, then the routing
        QString shown;
        for (const QList<QVariant>& args : streamed) shown += args.first().value<dsv2::ui::StreamUpdate>().delta;
        QCOMPARE(h.messages()->at(1).content, shown);
        QCOMPARE(h.messages()->at(1).state, MessageState::Complete);

        // The server's own answer to the same request (greedy: the same tokens).
        dsv2::remote::OpenAiClient client({server.baseUrl(), "", 5, 60});
        dsv2::remote::RemoteChatRequest request;
        request.model = "tiny-lite";
        request.messages = {{"user", "Hello there"}};
        request.params.maxNewTokens = 12;
        request.params.seed = 7;
        const dsv2::remote::RemoteCompletion reference = client.streamChat(request, {});
        QVERIFY2(reference.error.ok(), reference.error.message.c_str());
        QVERIFY(reference.hasRouting);

        auto store = h.reopenStore();
        const auto answer = store.message(outcome.messageId);
        QVERIFY(answer.hasValue());
        QCOMPARE(QString::fromStdString(answer->content), h.messages()->at(1).content);
        // The chat drops the spaces the answer starts with (the template's "Assistant:" owns them).
        QString expected = QString::fromStdString(reference.text);
        while (expected.startsWith(QLatin1Char(' '))) expected.remove(0, 1);
        QCOMPARE(QString::fromStdString(answer->content), expected);
        QVERIFY(answer->stats.has_value());
        QCOMPARE(QString::fromStdString(answer->stats->backend), "remote: " + QString::fromStdString(server.baseUrl()));
        QCOMPARE(answer->stats->generatedTokens, static_cast<std::int64_t>(reference.tokens.size()));
        const auto tokens = store.tokens(outcome.messageId);
        QVERIFY(tokens.hasValue());
        QCOMPARE(tokens->size(), reference.tokens.size());
        QVERIFY2(
            reference.routing.size() + 1 >= tokens->size(),
            qPrintable(
                QStringLiteral("%1 routing rows for %2 tokens").arg(reference.routing.size()).arg(tokens->size())));
        for (std::size_t i = 0; i < tokens->size(); ++i) {
            QCOMPARE((*tokens)[i].tokenId, reference.tokens[i]);
            if (i >= reference.routing.size()) {  // no row for the last token: stored without routing
                QCOMPARE((*tokens)[i].moeLayers, std::uint16_t(0));
                continue;
            }
            QCOMPARE((*tokens)[i].moeLayers, std::uint16_t(reference.routingLayers.size()));
            const auto& ids = reference.routing[i].expertIds;
            QCOMPARE((*tokens)[i].expertIds, std::vector<std::uint16_t>(ids.begin(), ids.end()));
        }
        const auto prompt = store.promptRouting(outcome.messageId);
        QVERIFY(prompt.hasValue() && prompt->has_value());
        QCOMPARE((*prompt)->records.size(), reference.promptTokenIds.size());
        QCOMPARE((*prompt)->records.front().tokenId, reference.promptTokenIds.front());

        // The inspector: the stored table (prompt rows + answer rows, all routed), no note.
        auto* dock = h.window.inspectorDock();
        QTRY_COMPARE_WITH_TIMEOUT(dock->panel()->model()->messageId(), outcome.messageId, 20000);
        QTRY_VERIFY(!dock->panel()->model()->isLive());
        const dsv2::inspect::RoutingTable& table = dock->panel()->model()->table();
        QCOMPARE(table.tokenCount(), int(reference.promptTokenIds.size() + reference.tokens.size()));
        QCOMPARE(table.layers, int(reference.routingLayers.size()));
        // Every prompt token and every answer token the model ran (not the last one: it was never fed back).
        const auto routedRows =
            std::count_if(table.rows.begin(), table.rows.end(), [](const auto& r) { return r.hasRouting(); });
        QCOMPARE(std::size_t(routedRows), reference.promptTokenIds.size() + reference.routing.size());
        QVERIFY(table.rows.front().isPrompt && table.rows.front().hasRouting());
        QVERIFY(dock->noteLabel()->isHidden());

        // No tokenizer on this side: the draft's tokens are not counted (and not shown as 0).
        QTest::keyClicks(h.panel()->input(), QStringLiteral("a draft"));
        auto* tokenLabel = h.panel()->findChild<QLabel*>(QStringLiteral("draftTokenLabel"));
        QVERIFY(tokenLabel);
        QTRY_VERIFY2(tokenLabel->text().contains(QStringLiteral("not counted")), qPrintable(tokenLabel->text()));
    }

    // Esc mid-answer: the stream is cancelled, the answer stored as stopped with what was shown.
    void escStopsTheRemoteAnswer() {
        dsv2::test::ServedModel server({}, "gui_remote_stop");
        QVERIFY(server.started());
        GuiHarness h;
        QVERIFY(connectTo(h, server));
        h.useSettings(100000);  // minutes of tokens
        QSignalSpy streamed(&h.service, &dsv2::ui::ChatBackend::streamed);
        h.typeAndSend(QStringLiteral("Write forever"));
        QVERIFY(QTest::qWaitFor([&] { return h.messages()->rowCount() == 2 && h.messages()->at(1).content.size() > 8; },
                                30000));
        QTest::keyClick(h.panel()->input(), Qt::Key_Escape);
        dsv2::ui::GenerationOutcome outcome;
        QVERIFY(h.waitFinished(&outcome, 20000));
        QCOMPARE(outcome.state, MessageState::Stopped);
        QCOMPARE(outcome.stats.stopReason, QStringLiteral("cancelled"));
        QVERIFY(outcome.stats.generatedTokens < 100000);
        QCOMPARE(h.messages()->at(1).state, MessageState::Stopped);
        auto store = h.reopenStore();
        const auto answer = store.message(outcome.messageId);
        QVERIFY(answer.hasValue());
        QCOMPARE(answer->stats->stopReason, std::string("cancelled"));
        QCOMPARE(QString::fromStdString(answer->content), h.messages()->at(1).content);
        QVERIFY(!answer->content.empty());

        // The server cancelled its side too: the next answer comes at once.
        h.useSettings(4);
        QElapsedTimer timer;
        timer.start();
        h.typeAndSend(QStringLiteral("Next"));
        QVERIFY(h.waitFinished(&outcome, 30000));
        QCOMPARE(outcome.state, MessageState::Complete);
        QVERIFY2(timer.elapsed() < 15000, qPrintable(QString::number(timer.elapsed())));
    }

    // A server started without --enable-return-routed-experts: the answer is stored without routing
    // and the inspector says why, live and again when the stored answer is selected later.
    void noRoutingIsSaidInTheInspector() {
        dsv2::test::ServedModel server({}, "gui_remote_unrouted");
        QVERIFY(server.started());
        GuiHarness h;
        QVERIFY(connectTo(h, server));
        auto* dock = h.window.inspectorDock();
        dock->show();
        h.useSettings(6);
        h.typeAndSend(QStringLiteral("Hello"));
        dsv2::ui::GenerationOutcome outcome;
        QVERIFY(h.waitFinished(&outcome, 60000));
        QCOMPARE(outcome.state, MessageState::Complete);
        QVERIFY(outcome.routingNote.contains(QStringLiteral("--enable-return-routed-experts")));
        QTRY_VERIFY(dock->noteLabel()->isVisible());
        QVERIFY(dock->noteLabel()->text().contains(QStringLiteral("no routing"), Qt::CaseInsensitive));

        auto store = h.reopenStore();
        const auto tokens = store.tokens(outcome.messageId);
        QVERIFY(tokens.hasValue() && !tokens->empty());
        QVERIFY(std::all_of(tokens->begin(), tokens->end(), [](const auto& t) { return t.expertIds.empty(); }));
        QVERIFY(!store.promptRouting(outcome.messageId)->has_value());

        // Another answer selected, then this one again: the note comes back from storage.
        h.typeAndSend(QStringLiteral("Again"));
        dsv2::ui::GenerationOutcome second;
        QVERIFY(h.waitFinished(&second, 60000));
        QSignalSpy shown(dock, &dsv2::ui::InspectorDock::routingShown);
        dock->inspectMessage(outcome.messageId);
        QVERIFY(shown.wait(20000));
        QCOMPARE(shown.first().first().toLongLong(), outcome.messageId);
        QVERIFY(dock->noteLabel()->isVisible());
        QVERIFY(dock->noteLabel()->text().contains(QStringLiteral("--enable-return-routed-experts")));
    }

    // The server killed (SIGKILL) mid-answer: the answer fails with the broken connection named,
    // the text that arrived is kept in the chat and in the database, and an error dialog says so.
    void serverKilledMidAnswerKeepsThePartialAnswer() {
        dsv2::test::ServedModel server({}, "gui_remote_killed");
        QVERIFY(server.started());
        GuiHarness h;
        QVERIFY(connectTo(h, server));
        h.useSettings(100000);
        h.typeAndSend(QStringLiteral("Write forever"));
        QVERIFY(QTest::qWaitFor([&] { return h.messages()->rowCount() == 2 && h.messages()->at(1).content.size() > 8; },
                                30000));
        QVERIFY(server.signalAndWait(SIGKILL, 10.0) != -1);
        dsv2::ui::GenerationOutcome outcome;
        QVERIFY(h.waitFinished(&outcome, 30000));
        QCOMPARE(outcome.state, MessageState::Failed);
        QVERIFY2(outcome.errorText.contains(QStringLiteral("broke off")), qPrintable(outcome.errorText));
        QVERIFY(outcome.errorText.contains(QStringLiteral("partial answer is kept")));
        QTRY_COMPARE(h.messages()->at(1).state, MessageState::Failed);
        const QString shown = h.messages()->at(1).content;
        QVERIFY(shown.size() > 8);
        QCOMPARE(h.messages()->at(1).errorText, outcome.errorText);

        auto store = h.reopenStore();
        const auto answer = store.message(outcome.messageId);
        QVERIFY(answer.hasValue());
        QCOMPARE(answer->status, dsv2::storage::MessageStatus::Error);
        QCOMPARE(QString::fromStdString(answer->content), shown);
        QCOMPARE(QString::fromStdString(answer->errorText), outcome.errorText);
        QTRY_VERIFY(findDialog(&h.window, "errorDialog") != nullptr);
        QVERIFY(findDialog(&h.window, "errorDialog")->text().contains(QStringLiteral("broke off")));
    }

    // Nothing listens on the port: the connection dialog names the server and the reason; the
    // window has no model and sending asks for one.
    void aServerThatIsNotThereGivesTheConnectionDialog() {
        GuiHarness h;
        QVERIFY(h.start(false));
        QSignalSpy failed(&h.service, &dsv2::ui::ChatBackend::modelLoadFailed);
        h.window.connectServer({.url = QStringLiteral("http://127.0.0.1:9/v1")});  // discard: nothing there
        QVERIFY(failed.wait(20000));
        QVERIFY2(failed.first().at(1).toString().contains(QStringLiteral("cannot connect")),
                 qPrintable(failed.first().at(1).toString()));
        QTRY_VERIFY(findDialog(&h.window, "modelLoadErrorDialog") != nullptr);
        QMessageBox* box = findDialog(&h.window, "modelLoadErrorDialog");
        QVERIFY(box->text().contains(QStringLiteral("http://127.0.0.1:9/v1")));
        QVERIFY(box->informativeText().contains(QStringLiteral("Is the server running")));
        QVERIFY(!h.service.hasModel());
        QVERIFY(!dsv2::ui::lastServer().has_value());
        box->close();
    }
#endif

private:
#ifdef DSV2_HAVE_REMOTE
    // Starts the window without a local model and connects it to `server`.
    static bool connectTo(GuiHarness& h, const dsv2::test::ServedModel& server) {
        if (!h.start(false)) return false;
        QSignalSpy loaded(&h.service, &dsv2::ui::ChatBackend::modelLoaded);
        h.window.connectServer({.url = QString::fromStdString(server.baseUrl())});
        return (!loaded.isEmpty() || loaded.wait(30000)) && h.service.hasModel();
    }
#endif

    QTemporaryDir m_settingsDir;
};

QTEST_MAIN(GuiRemoteTest)
#include "gui_remote_test.moc"
