// The chat window end to end on tiny-lite (CPU): send → stream → stored; Stop (Esc); Regenerate and
// the "‹ 2/2 ›" switch; Edit → a branch; an answer cut off by a crash shown as interrupted.
#include <QSignalSpy>
#include <QtTest>

#include <sys/wait.h>
#include <unistd.h>

#include "dsv2/storage/streaming_writer.h"
#include "gui_harness.h"

using dsv2::storage::MessageStatus;
using dsv2::storage::Role;
using dsv2::test::GuiHarness;
using dsv2::ui::MessageDelegate;
using dsv2::ui::MessageItem;
using dsv2::ui::MessageRole;
using dsv2::ui::MessageState;

class GuiChatTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { dsv2::test::isolateSettings(m_settingsDir, "gui_chat_test"); }

    void sendStreamsAndStores() {
        GuiHarness h;
        QVERIFY(h.start());
        QVERIFY(h.panel()->sendButton()->isVisible());
        h.useSettings(60);
        QSignalSpy streamed(&h.service, &dsv2::ui::ChatBackend::streamed);
        QSignalSpy generating(&h.service, &dsv2::ui::ChatBackend::generatingChanged);
        h.typeAndSend(QStringLiteral("Hello, tiny model"));
        QVERIFY(h.panel()->input()->toPlainText().isEmpty());  // Enter sent it

        // While it streams: Stop replaces Send, the answer row grows.
        QTRY_VERIFY_WITH_TIMEOUT(!generating.isEmpty(), 10000);
        QVERIFY(generating.first().first().toBool());
        QVERIFY(h.panel()->stopButton()->isVisible());
        dsv2::ui::GenerationOutcome outcome;
        QVERIFY(h.waitFinished(&outcome));
        QCOMPARE(outcome.state, MessageState::Complete);
        QVERIFY(streamed.size() >= 1);
        QCOMPARE(h.messages()->rowCount(), 2);
        const MessageItem user = h.messages()->at(0);
        const MessageItem answer = h.messages()->at(1);
        QCOMPARE(user.content, QStringLiteral("Hello, tiny model"));
        QCOMPARE(answer.role, MessageRole::Assistant);
        QVERIFY(!answer.content.isEmpty());
        QCOMPARE(answer.state, MessageState::Complete);
        QVERIFY(answer.stats.has_value());
        QCOMPARE(answer.stats->generatedTokens, outcome.stats.generatedTokens);
        QVERIFY(outcome.stats.generatedTokens > 0 && outcome.stats.generatedTokens <= 60);
        // What streamed is what the row shows.
        QString streamedText;
        for (const auto& args : streamed) streamedText += args.first().value<dsv2::ui::StreamUpdate>().delta;
        QCOMPARE(streamedText, answer.content);
        QVERIFY(h.panel()->sendButton()->isVisible());
        QVERIFY(!h.panel()->stopButton()->isVisible());

        // The conversation exists in the sidebar, titled from the prompt, and is stored.
        QTRY_COMPARE(h.window.sidebar()->conversations()->rowCount(), 1);
        QCOMPARE(h.window.sidebar()->conversations()->index(0).data().toString(), QStringLiteral("Hello, tiny model"));
        auto store = h.reopenStore();
        const auto path = store.activePath(h.controller()->conversationId());
        QVERIFY(path.hasValue());
        QCOMPARE(path->size(), size_t{2});
        QCOMPARE((*path)[0].role, Role::User);
        QCOMPARE(QString::fromStdString((*path)[0].content), user.content);
        QCOMPARE((*path)[1].status, MessageStatus::Complete);
        QCOMPARE(QString::fromStdString((*path)[1].content), answer.content);
        QVERIFY((*path)[1].stats.has_value());
        QCOMPARE((*path)[1].stats->generatedTokens, outcome.stats.generatedTokens);
        // One token record per generated token (routing and logprobs for the inspection views).
        QCOMPARE((*path)[1].tokenCount, outcome.stats.generatedTokens);
    }

    void escStopsMidAnswer() {
        GuiHarness h;
        QVERIFY(h.start());
        h.useSettings(100000);  // would run for minutes
        QSignalSpy streamed(&h.service, &dsv2::ui::ChatBackend::streamed);
        h.typeAndSend(QStringLiteral("Write forever"));
        QVERIFY(streamed.wait(20000));
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
        QCOMPARE(answer->status, MessageStatus::Complete);
        QCOMPARE(answer->stats->stopReason, std::string("cancelled"));
        QCOMPARE(QString::fromStdString(answer->content), h.messages()->at(1).content);
    }

    void leavingAndComingBackWhileStreamingLosesNothing() {
        GuiHarness h;
        QVERIFY(h.start());
        h.useSettings(100000);
        QSignalSpy streamed(&h.service, &dsv2::ui::ChatBackend::streamed);
        h.typeAndSend(QStringLiteral("A long answer, please"));
        QVERIFY(streamed.wait(20000));
        const qint64 conversation = h.controller()->conversationId();
        const qint64 answer = h.messages()->at(1).id;

        // A new chat while the answer is written elsewhere: Send waits, nothing leaks into this view.
        h.controller()->newChat();
        QCOMPARE(h.messages()->rowCount(), 0);
        QVERIFY(!h.panel()->sendButton()->isEnabled());
        QVERIFY(streamed.wait(20000));
        QCOMPARE(h.messages()->rowCount(), 0);

        // Back: the answer shows everything streamed so far (more than its last saved batch) and grows.
        QString all;
        for (const auto& args : streamed) {
            const auto u = args.first().value<dsv2::ui::StreamUpdate>();
            if (u.messageId == answer) all += u.delta;
        }
        h.controller()->openConversation(conversation);
        QTRY_COMPARE(h.controller()->conversationId(), conversation);
        QCOMPARE(h.messages()->rowCount(), 2);
        QVERIFY(h.messages()->at(1).content.startsWith(all));
        const auto before = h.messages()->at(1).content.size();
        QTRY_VERIFY(h.messages()->at(1).content.size() > before);
        QCOMPARE(h.messages()->at(1).state, MessageState::Streaming);

        QTest::keyClick(h.panel()->input(), Qt::Key_Escape);
        dsv2::ui::GenerationOutcome outcome;
        QVERIFY(h.waitFinished(&outcome, 20000));
        QCOMPARE(outcome.state, MessageState::Stopped);
        QCOMPARE(h.messages()->at(1).content, QString::fromStdString(h.reopenStore().message(answer)->content));
    }

    void regenerateMakesASiblingAndTheSwitchFlips() {
        GuiHarness h;
        QVERIFY(h.start());
        h.useSettings(24, 1);
        h.typeAndSend(QStringLiteral("Tell me something"));
        QVERIFY(h.waitFinished());
        const QString first = h.messages()->at(1).content;
        const qint64 firstId = h.messages()->at(1).id;

        // A different seed makes a different answer.
        h.useSettings(24, 2);
        QVERIFY(h.clickAction(1, MessageDelegate::Action::Regenerate));
        QVERIFY(h.waitFinished());
        QCOMPARE(h.messages()->rowCount(), 2);
        MessageItem second = h.messages()->at(1);
        QVERIFY(second.id != firstId);
        QCOMPARE(second.siblingCount, 2);
        QCOMPARE(second.siblingIndex, 1);
        QVERIFY(second.content != first);

        // "‹" goes back to the first answer, "›" forward again; the database remembers the choice.
        QSignalSpy path(&h.service, &dsv2::ui::ChatBackend::pathChanged);
        QVERIFY(h.clickAction(1, MessageDelegate::Action::PreviousBranch));
        QVERIFY(path.wait(10000));
        QCOMPARE(h.messages()->at(1).id, firstId);
        QCOMPARE(h.messages()->at(1).content, first);
        QCOMPARE(h.messages()->at(1).siblingIndex, 0);
        QCOMPARE(h.reopenStore().activeLeaf(h.controller()->conversationId())->value(), firstId);
        QVERIFY(h.clickAction(1, MessageDelegate::Action::NextBranch));
        QVERIFY(path.wait(10000));
        QCOMPARE(h.messages()->at(1).id, second.id);
        QCOMPARE(h.messages()->at(1).siblingIndex, 1);
    }

    void editMakesABranch() {
        GuiHarness h;
        QVERIFY(h.start());
        h.useSettings(16);
        h.typeAndSend(QStringLiteral("First version"));
        QVERIFY(h.waitFinished());
        const qint64 originalPrompt = h.messages()->at(0).id;

        QVERIFY(h.clickAction(0, MessageDelegate::Action::Edit));
        QCOMPARE(h.panel()->input()->toPlainText(), QStringLiteral("First version"));
        QCOMPARE(h.controller()->editingMessageId(), originalPrompt);
        h.panel()->input()->selectAll();
        QTest::keyClicks(h.panel()->input(), QStringLiteral("Second version"));
        QTest::keyClick(h.panel()->input(), Qt::Key_Return);
        QVERIFY(h.waitFinished());
        QCOMPARE(h.messages()->rowCount(), 2);
        QCOMPARE(h.messages()->at(0).content, QStringLiteral("Second version"));
        QCOMPARE(h.messages()->at(0).siblingCount, 2);
        QCOMPARE(h.messages()->at(0).siblingIndex, 1);
        QCOMPARE(h.controller()->editingMessageId(), qint64{0});

        QSignalSpy path(&h.service, &dsv2::ui::ChatBackend::pathChanged);
        QVERIFY(h.clickAction(0, MessageDelegate::Action::PreviousBranch));
        QVERIFY(path.wait(10000));
        QCOMPARE(h.messages()->at(0).id, originalPrompt);
        QCOMPARE(h.messages()->at(0).content, QStringLiteral("First version"));
        QCOMPARE(h.messages()->rowCount(), 2);  // with its own answer below it
        auto store = h.reopenStore();
        QCOMPARE(store.siblings(originalPrompt)->size(), size_t{2});
    }

    void escCancelsAnEditWithoutSending() {
        GuiHarness h;
        QVERIFY(h.start());
        h.useSettings(8);
        h.typeAndSend(QStringLiteral("Keep me"));
        QVERIFY(h.waitFinished());
        QVERIFY(h.clickAction(0, MessageDelegate::Action::Edit));
        QVERIFY(h.controller()->editingMessageId() != 0);
        QTest::keyClick(h.panel()->input(), Qt::Key_Escape);
        QCOMPARE(h.controller()->editingMessageId(), qint64{0});
        QVERIFY(h.panel()->input()->toPlainText().isEmpty());
        QCOMPARE(h.messages()->at(0).siblingCount, 1);
    }

    void crashInterruptedAnswerIsShownAsInterrupted() {
        QTemporaryDir dir;
        const QString db = dir.filePath(QStringLiteral("crashed.sqlite"));
        qint64 conversation = 0, answer = 0;
        {
            auto store = dsv2::storage::ConversationStore::open(db.toStdString());
            QVERIFY(store.hasValue());
            conversation = store->createConversation({.title = "Crashed chat"}).value();
            const auto prompt = store->appendMessage(conversation, std::nullopt, Role::User, "Explain it").value();
            // Another process streams part of an answer and dies without finishing it. It opens its own
            // connection, as the app does (a connection records which process writes through it).
            const pid_t child = fork();
            QVERIFY(child >= 0);
            if (child == 0) {
                auto own = dsv2::storage::ConversationStore::open(db.toStdString());
                if (!own) _exit(4);
                auto writer = own->beginAssistantMessage(conversation, prompt);
                if (!writer) _exit(2);
                (*writer)->append("The first half of the ans");
                if (!(*writer)->flush()) _exit(3);
                _exit(0);  // no finish(), no destructor: a crash
            }
            int status = 0;
            QCOMPARE(waitpid(child, &status, 0), child);
            QVERIFY(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            const auto path = store->activePath(conversation).value();
            QCOMPARE(path.size(), size_t{2});
            QCOMPARE(path[1].status, MessageStatus::Streaming);  // nobody has looked yet
            answer = path[1].id;
        }

        GuiHarness h(db);  // opening recovers: the writer's process is gone
        QVERIFY(h.start(false));
        QSignalSpy opened(&h.service, &dsv2::ui::ChatBackend::conversationOpened);
        // The last conversation is reopened on start.
        QTRY_COMPARE_WITH_TIMEOUT(h.controller()->conversationId(), conversation, 10000);
        QTRY_COMPARE(h.messages()->rowCount(), 2);
        const MessageItem shown = h.messages()->at(1);
        QCOMPARE(shown.id, answer);
        QCOMPARE(shown.state, MessageState::Interrupted);
        QCOMPARE(shown.content, QStringLiteral("The first half of the ans"));
        QVERIFY(h.reopenStore().message(answer)->status == MessageStatus::Interrupted);
    }

private:
    QTemporaryDir m_settingsDir;
};

QTEST_MAIN(GuiChatTest)
#include "gui_chat_test.moc"
