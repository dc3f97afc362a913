// The message list on its own: the model's tail replacement and streaming, Markdown with code
// blocks and their Copy buttons, copying a message, following new text only while at the bottom.
#include <QApplication>
#include <QClipboard>
#include <QScrollBar>
#include <QSignalSpy>
#include <QTextBlock>
#include <QTextCursor>
#include <QTextDocument>
#include <QTextTable>
#include <QToolButton>
#include <QtTest>

#include "chat/chat_view.h"
#include "chat/message_model.h"

using dsv2::ui::ChatView;
using dsv2::ui::MessageDelegate;
using dsv2::ui::MessageItem;
using dsv2::ui::MessageModel;
using dsv2::ui::MessageRole;
using dsv2::ui::MessageState;

namespace {
MessageItem message(qint64 id, MessageRole role, const QString& text, MessageState state = MessageState::Complete) {
    MessageItem m;
    m.id = id;
    m.parentId = id - 1;
    m.role = role;
    m.content = text;
    m.state = state;
    return m;
}

QVector<MessageItem> conversation(int n, int paragraphs = 3) {
    QVector<MessageItem> v;
    for (int i = 1; i <= n; ++i) {
        QString text;
        for (int p = 0; p < paragraphs; ++p)
            text += QStringLiteral("Paragraph %1 of message %2 with enough words to wrap over a line or two. ")
                        .arg(p)
                        .arg(i) +
                    QStringLiteral("\n\n");
        v.append(message(i, i % 2 ? MessageRole::User : MessageRole::Assistant, text));
    }
    return v;
}
}  // namespace

class ChatViewTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void replaceTailKeepsTheHeadAndBumpsRevisions() {
        MessageModel model;
        model.setMessages(conversation(4));
        const uint rev = model.index(3).data(MessageModel::RevisionRole).toUInt();
        QVERIFY(model.appendText(4, QStringLiteral("more")));
        QVERIFY(model.index(3).data(MessageModel::RevisionRole).toUInt() != rev);
        QVERIFY(model.at(3).content.endsWith(QStringLiteral("more")));
        QVERIFY(!model.appendText(99, QStringLiteral("nobody")));

        QSignalSpy removed(&model, &QAbstractItemModel::rowsRemoved);
        QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
        model.replaceTail(2, {message(10, MessageRole::User, QStringLiteral("edited")),
                              message(11, MessageRole::Assistant, QString(), MessageState::Streaming)});
        QCOMPARE(removed.size(), 1);
        QCOMPARE(inserted.size(), 1);
        QCOMPARE(model.rowCount(), 4);
        QCOMPARE(model.at(1).id, qint64{2});
        QCOMPARE(model.at(2).content, QStringLiteral("edited"));
        QCOMPARE(model.rowOf(11), 3);

        MessageItem answer = model.at(3);
        dsv2::ui::MessageStats stats;
        stats.promptTokens = 120;
        stats.generatedTokens = 30;
        stats.tokensPerSecond = 12.5;
        model.finishMessage(11, MessageState::Stopped, stats, {});
        QCOMPARE(model.at(3).state, MessageState::Stopped);
        QCOMPARE(model.contextTokensAtEnd(), qint64{150});
        QCOMPARE(model.index(3).data(MessageModel::StatsTextRole).toString(), QStringLiteral("30 tokens · 12.5 tok/s"));
    }

    void codeBlocksAreMonospaceAndCopyable() {
        MessageModel model;
        const QString code = QStringLiteral("int main() {\n    return 42;\n}");
        model.setMessages({message(1, MessageRole::User, QStringLiteral("Show code")),
                           message(2, MessageRole::Assistant,
                                   QStringLiteral("# Title\n\nSome *text*.\n\n```cpp\n") + code +
                                       QStringLiteral("\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"))});
        ChatView view;
        view.setMessageModel(&model);
        view.resize(700, 500);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        const QModelIndex answer = model.index(1);
        QCOMPARE(view.messageDelegate()->codeBlockCount(answer), 1);
        QCOMPARE(view.messageDelegate()->codeBlockText(answer, 0), code);
        // The Markdown was rendered: a heading, a table, a fixed-pitch code block.
        const auto doc = view.messageDelegate()->document(answer);
        QVERIFY(doc->toPlainText().contains(QStringLiteral("Title")));
        QVERIFY(!doc->toPlainText().contains(QStringLiteral("```")));
        QVERIFY(!doc->toPlainText().contains(QStringLiteral("# Title")));
        bool sawFixedPitch = false, sawTable = false;
        for (QTextBlock b = doc->begin(); b.isValid(); b = b.next()) {
            if (b.text().contains(QStringLiteral("return 42")))
                sawFixedPitch = QFontInfo(b.charFormat().font()).fixedPitch() || b.charFormat().fontFixedPitch();
            if (QTextCursor(b).currentTable()) sawTable = true;
        }
        QVERIFY(sawFixedPitch);
        QVERIFY(sawTable);

        // Hovering shows the buttons; clicking the code block's Copy copies the code only.
        const QRect row = view.visualRect(answer);
        const QRect copyCode = view.messageDelegate()->actionRect(row, answer, MessageDelegate::Action::CopyCode, 0);
        QVERIFY(!copyCode.isEmpty());
        QVERIFY(row.contains(copyCode));
        QSignalSpy copied(&view, &ChatView::copied);
        QTest::mouseMove(view.viewport(), copyCode.center());
        QTest::mouseClick(view.viewport(), Qt::LeftButton, {}, copyCode.center());
        QCOMPARE(copied.size(), 1);
        QCOMPARE(QApplication::clipboard()->text(), code);

        const QRect copyMessage = view.messageDelegate()->actionRect(row, answer, MessageDelegate::Action::Copy);
        QTest::mouseClick(view.viewport(), Qt::LeftButton, {}, copyMessage.center());
        QCOMPARE(QApplication::clipboard()->text(), model.at(1).content);

        // A user message offers Edit, an answer Regenerate; clicks come out as messageAction.
        QSignalSpy action(&view, &ChatView::messageAction);
        const QRect regen = view.messageDelegate()->actionRect(row, answer, MessageDelegate::Action::Regenerate);
        QVERIFY(view.messageDelegate()->actionRect(row, answer, MessageDelegate::Action::Edit).isEmpty());
        QTest::mouseClick(view.viewport(), Qt::LeftButton, {}, regen.center());
        QCOMPARE(action.size(), 1);
        QCOMPARE(action.first().at(0).toLongLong(), qint64{2});
        QCOMPARE(action.first().at(1).value<MessageDelegate::Action>(), MessageDelegate::Action::Regenerate);
    }

    // What the model writes is shown, even when it looks like HTML: the demo model's
    // "<Knghtbrd> so you…" (an IRC quote) once rendered as an empty answer, and a tag must not
    // turn into markup (an image, a link) either. Markdown itself still renders.
    void htmlInAnswersIsShownAsText() {
        QFETCH(QString, content);
        QFETCH(QString, shown);
        MessageModel model;
        model.setMessages({message(1, MessageRole::User, QStringLiteral("Tell me a story")),
                           message(2, MessageRole::Assistant, content)});
        ChatView view;
        view.setMessageModel(&model);
        view.resize(700, 400);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        const auto doc = view.messageDelegate()->document(model.index(1));
        QVERIFY(doc);
        QCOMPARE(doc->toPlainText().trimmed(), shown);
        QVERIFY(!doc->toHtml().contains(QStringLiteral("<img")));
    }
    void htmlInAnswersIsShownAsText_data() {
        QTest::addColumn<QString>("content");
        QTest::addColumn<QString>("shown");
        QTest::newRow("irc quote") << QStringLiteral("<Knghtbrd> so you can't understand you.")
                                   << QStringLiteral("<Knghtbrd> so you can't understand you.");
        QTest::newRow("html block") << QStringLiteral("<div>\nhello\n</div>")
                                    << QStringLiteral("<div> hello </div>");  // soft breaks, as Markdown has them
        QTest::newRow("image tag") << QStringLiteral("look <img src=\"x.png\"> here")
                                   << QStringLiteral("look <img src=\"x.png\"> here");
        QTest::newRow("markdown still") << QStringLiteral("**bold** and `code`") << QStringLiteral("bold and code");
    }

    void branchSwitchOnlyWithSiblings() {
        MessageModel model;
        auto v = conversation(2);
        v[1].siblingCount = 3;
        v[1].siblingIndex = 1;
        model.setMessages(v);
        ChatView view;
        view.setMessageModel(&model);
        view.resize(600, 400);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        const QRect row0 = view.visualRect(model.index(0));
        const QRect row1 = view.visualRect(model.index(1));
        QVERIFY(view.messageDelegate()
                    ->actionRect(row0, model.index(0), MessageDelegate::Action::PreviousBranch)
                    .isEmpty());
        const QRect prev =
            view.messageDelegate()->actionRect(row1, model.index(1), MessageDelegate::Action::PreviousBranch);
        const QRect next =
            view.messageDelegate()->actionRect(row1, model.index(1), MessageDelegate::Action::NextBranch);
        QVERIFY(!prev.isEmpty() && !next.isEmpty());
        QVERIFY(prev.right() < next.left());
        QSignalSpy action(&view, &ChatView::messageAction);
        QTest::mouseClick(view.viewport(), Qt::LeftButton, {}, next.center());
        QCOMPARE(action.size(), 1);
        QCOMPARE(action.first().at(1).value<MessageDelegate::Action>(), MessageDelegate::Action::NextBranch);
    }

    void followsOnlyWhileAtTheBottom() {
        MessageModel model;
        model.setMessages(conversation(40));
        ChatView view;
        view.setMessageModel(&model);
        view.resize(600, 400);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        view.setFollowing(true);
        QTRY_VERIFY(view.isAtBottom());
        auto* jump = view.findChild<QToolButton*>(QStringLiteral("jumpToLatestButton"));
        QVERIFY(jump && !jump->isVisible());

        // New text while at the bottom: the view keeps up.
        for (int i = 0; i < 10; ++i) {
            model.appendText(40, QStringLiteral("\n\nMore streamed text, line %1.").arg(i));
            QCoreApplication::processEvents();
        }
        QTRY_VERIFY(view.isAtBottom());
        QVERIFY(view.isFollowing());

        // The user scrolls up (wheel): following stops, new text does not move the view.
        QWheelEvent wheel(QPointF(100, 100), view.viewport()->mapToGlobal(QPointF(100, 100)), QPoint(), QPoint(0, 360),
                          Qt::NoButton, Qt::NoModifier, Qt::NoScrollPhase, false);
        QApplication::sendEvent(view.viewport(), &wheel);
        QVERIFY(!view.isFollowing());
        const int value = view.verticalScrollBar()->value();
        QVERIFY(value < view.verticalScrollBar()->maximum());
        for (int i = 0; i < 5; ++i) {
            model.appendText(40, QStringLiteral("\n\nYet more text %1.").arg(i));
            QCoreApplication::processEvents();
        }
        QCOMPARE(view.verticalScrollBar()->value(), value);
        QTRY_VERIFY(jump->isVisible());

        // "Jump to latest" goes back to the end and follows again.
        jump->click();
        QTRY_VERIFY(view.isAtBottom());
        QVERIFY(view.isFollowing());
    }

    void stateNotesAreShown() {
        MessageModel model;
        auto v = conversation(2);
        v[1].state = MessageState::Interrupted;
        model.setMessages(v);
        ChatView view;
        view.setMessageModel(&model);
        view.resize(600, 400);
        view.show();
        QVERIFY(QTest::qWaitForWindowExposed(&view));
        // The footer (a line below the text) exists only for messages with something to say.
        const int plain = view.messageDelegate()->sizeHint({}, model.index(0)).height();
        QVERIFY(plain > 0);
        QCOMPARE(model.index(1).data(MessageModel::StateRole).toInt(), static_cast<int>(MessageState::Interrupted));
        view.messageDelegate()->measure(model.index(1));  // exact heights on both sides
        const int interrupted = view.messageDelegate()->sizeHint({}, model.index(1)).height();
        auto v2 = v;
        v2[1].state = MessageState::Complete;
        model.setMessages(v2);
        view.messageDelegate()->measure(model.index(1));
        QVERIFY(interrupted > view.messageDelegate()->sizeHint({}, model.index(1)).height());
    }
};

QTEST_MAIN(ChatViewTest)
#include "ui_chat_view_test.moc"
