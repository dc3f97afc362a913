// The history side of the window: search → jump to the message, export through the dialog, delete
// with confirmation and undo, rename in place, the draft's token count.
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QSignalSpy>
#include <QtTest>

#include <QFileInfo>

#include "export/export_dialog.h"
#include "gui_harness.h"

using dsv2::storage::Role;
using dsv2::test::GuiHarness;

namespace {

// A history with `conversations` conversations of `messages` messages each; conversation `needleIn`
// has "xylophone" in message `needleAt`. Returns the needle's ids.
std::pair<qint64, qint64> makeHistory(const QString& file, int conversations, int messages, int needleIn,
                                      int needleAt) {
    auto store = dsv2::storage::ConversationStore::open(file.toStdString());
    if (!store) qFatal("%s", store.error().toString().c_str());
    std::pair<qint64, qint64> needle{0, 0};
    auto ok = store->transaction([&] {
        for (int c = 0; c < conversations; ++c) {
            const auto id = store->createConversation({.title = "Conversation " + std::to_string(c)}).value();
            std::optional<qint64> parent;
            for (int m = 0; m < messages; ++m) {
                std::string text = "Message " + std::to_string(m) + " talks about tea, kettles and the weather. ";
                text += std::string(static_cast<size_t>(200 + (m % 7) * 60), 'x').replace(0, 5, "words");
                if (c == needleIn && m == needleAt) text += " The xylophone is here.";
                parent = store->appendMessage(id, parent, m % 2 ? Role::Assistant : Role::User, text).value();
                if (c == needleIn && m == needleAt) needle = {id, *parent};
            }
        }
        return true;
    });
    if (!ok) qFatal("%s", ok.error().toString().c_str());
    return needle;
}

}  // namespace

class GuiHistoryTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { dsv2::test::isolateSettings(m_settingsDir, "gui_history_test"); }

    void searchOpensTheConversationAtTheHit() {
        QTemporaryDir dir;
        const QString db = dir.filePath(QStringLiteral("h.sqlite"));
        const auto [conversation, message] = makeHistory(db, 12, 120, 7, 15);
        GuiHarness h(db);
        QVERIFY(h.start(false));
        dsv2::ui::Sidebar* sidebar = h.window.sidebar();
        QTRY_COMPARE(sidebar->conversations()->rowCount(), 12);

        QSignalSpy found(&h.service, &dsv2::ui::ChatBackend::searchFinished);
        QTest::keyClick(&h.window, Qt::Key_F, Qt::ControlModifier);
        QTRY_VERIFY(sidebar->searchBox()->hasFocus());
        QTest::keyClicks(sidebar->searchBox(), QStringLiteral("xylophone"));
        QVERIFY(found.wait(10000));
        QVERIFY(sidebar->isShowingSearch());
        QCOMPARE(sidebar->hits()->rowCount(), 1);
        const QString snippet = sidebar->hits()->index(0).data(dsv2::ui::SearchResultsModel::SnippetRole).toString();
        QVERIFY2(snippet.contains(dsv2::ui::kHighlightOpen + QStringLiteral("xylophone") + dsv2::ui::kHighlightClose),
                 qPrintable(snippet));

        QSignalSpy opened(&h.service, &dsv2::ui::ChatBackend::conversationOpened);
        QListView* results = sidebar->searchResults();
        QTest::mouseClick(results->viewport(), Qt::LeftButton, {},
                          results->visualRect(sidebar->hits()->index(0)).center());
        QVERIFY(opened.wait(10000));
        QCOMPARE(h.controller()->conversationId(), conversation);
        QCOMPARE(h.messages()->rowCount(), 120);
        // The hit is selected and on screen, though it is near the top of a long conversation.
        const int row = h.messages()->rowOf(message);
        QCOMPARE(row, 15);
        QCOMPARE(h.view()->currentIndex().row(), row);
        QVERIFY(!h.view()->isFollowing());
        QTRY_VERIFY(h.view()->viewport()->rect().intersects(h.view()->visualRect(h.messages()->index(row))));

        // Clearing the search shows the list again, with the open conversation selected.
        QTest::keyClick(sidebar->searchBox(), Qt::Key_Escape);
        QVERIFY(!sidebar->isShowingSearch());
        QCOMPARE(sidebar->conversationList()->currentIndex().data(dsv2::ui::ConversationListModel::IdRole).toLongLong(),
                 conversation);
    }

    void exportThroughTheDialogWritesTheFile() {
        GuiHarness h;
        QVERIFY(h.start());
        h.useSettings(12);
        h.typeAndSend(QStringLiteral("Export me please"));
        QVERIFY(h.waitFinished());
        const QString answer = h.messages()->at(1).content;

        // Ctrl+E opens the dialog; it offers this conversation in Markdown by default.
        QTest::keyClick(&h.window, Qt::Key_E, Qt::ControlModifier);
        auto* dialog = h.window.findChild<dsv2::ui::ExportDialog*>();
        QVERIFY(dialog);
        QTRY_VERIFY(dialog->isVisible());
        QVERIFY(dialog->filePath().endsWith(QStringLiteral("Export me please.md")));
        const QString md = h.tempPath(QStringLiteral("out.md"));
        dialog->setFilePath(md);
        QSignalSpy done(&h.window, &dsv2::ui::MainWindow::exportDone);
        QTest::mouseClick(dialog->findChild<QPushButton*>(QStringLiteral("exportButton")), Qt::LeftButton);
        QVERIFY(done.wait(10000));
        QVERIFY(done.first().at(1).toBool());
        QFile file(md);
        QVERIFY(file.open(QIODevice::ReadOnly));
        const QString text = QString::fromUtf8(file.readAll());
        QVERIFY(text.contains(QStringLiteral("Export me please")));
        QVERIFY(text.contains(answer.left(8)));

        // JSON of everything: full fidelity, parseable, with the conversation in it.
        h.window.showExportDialog();
        dialog = nullptr;
        QTRY_VERIFY((dialog = h.window.findChild<dsv2::ui::ExportDialog*>()) && dialog->isVisible());
        dialog->setAllConversations(true);
        dialog->setFormat(dsv2::ui::ExportFormat::Json);
        QVERIFY(dialog->filePath().endsWith(QStringLiteral(".json")));
        const QString json = h.tempPath(QStringLiteral("all.json"));
        dialog->setFilePath(json);
        QCOMPARE(dialog->request().conversationIds.size(), 0);  // all
        done.clear();
        QTest::mouseClick(dialog->findChild<QPushButton*>(QStringLiteral("exportButton")), Qt::LeftButton);
        QVERIFY(done.wait(10000));
        QFile jsonFile(json);
        QVERIFY(jsonFile.open(QIODevice::ReadOnly));
        const QByteArray bytes = jsonFile.readAll();
        QJsonParseError error;
        QJsonDocument::fromJson(bytes, &error);
        QCOMPARE(error.error, QJsonParseError::NoError);
        QVERIFY(bytes.contains("Export me please"));
    }

    // File → Import… of a JSON export: the conversations appear in the sidebar and the first one
    // opens; importing again adds nothing and says so; a broken file gives a dialog with a way on,
    // and the history is unchanged.
    void importAddsConversationsAndExplainsBadFiles() {
        QTemporaryDir dir;
        const QString source = dir.filePath(QStringLiteral("source.sqlite"));
        makeHistory(source, 3, 4, -1, -1);
        const QString json = dir.filePath(QStringLiteral("export.json"));
        {
            auto store = dsv2::storage::ConversationStore::open(source.toStdString());
            QVERIFY(store.hasValue());
            QVERIFY(store->exportToFile({}, dsv2::storage::ExportFormat::Json, json.toStdString()).hasValue());
        }
        GuiHarness h;
        QVERIFY(h.start(false));
        dsv2::ui::Sidebar* sidebar = h.window.sidebar();
        QCOMPARE(sidebar->conversations()->rowCount(), 0);
        QSignalSpy done(&h.window, &dsv2::ui::MainWindow::importDone);
        h.window.startImport(json);
        QVERIFY(done.wait(10000));
        auto outcome = done.takeFirst().first().value<dsv2::ui::ImportOutcome>();
        QVERIFY2(outcome.ok, qPrintable(outcome.errorText));
        QCOMPARE(outcome.imported, 3);
        QCOMPARE(outcome.messages, qint64{12});
        QTRY_COMPARE(sidebar->conversations()->rowCount(), 3);
        QTRY_COMPARE(h.controller()->conversationId(), outcome.firstImportedId);
        QTRY_COMPARE(h.messages()->rowCount(), 4);
        QVERIFY(h.messages()->at(0).content.startsWith(QStringLiteral("Message 0 talks about tea")));
        QCOMPARE(h.reopenStore().listConversations({}).value().size(), size_t{3});

        // Again: nothing new, and the window says so.
        h.window.startImport(json);
        QVERIFY(done.wait(10000));
        outcome = done.takeFirst().first().value<dsv2::ui::ImportOutcome>();
        QVERIFY(outcome.ok);
        QCOMPARE(outcome.imported, 0);
        QCOMPARE(outcome.skipped, 3);
        QMessageBox* box = nullptr;
        QTRY_VERIFY((box = h.window.findChild<QMessageBox*>(QStringLiteral("importNothingDialog"))) &&
                    box->isVisible());
        QVERIFY(box->text().contains(QStringLiteral("All 3 conversations")));
        box->close();

        // Not JSON, and a file that does not exist: a dialog that says what is wrong and what to use.
        const QString bad = dir.filePath(QStringLiteral("notes.json"));
        QFile f(bad);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("these are my notes, not an export");
        f.close();
        const std::pair<QString, QString> cases[] = {
            {bad, QStringLiteral("not valid JSON")},
            {dir.filePath(QStringLiteral("missing.json")), QStringLiteral("no such file")}};
        for (const auto& [file, why] : cases) {
            h.window.startImport(file);
            QVERIFY(done.wait(10000));
            outcome = done.takeFirst().first().value<dsv2::ui::ImportOutcome>();
            QVERIFY(!outcome.ok);
            QTRY_VERIFY((box = h.window.findChild<QMessageBox*>(QStringLiteral("importErrorDialog"))) &&
                        box->isVisible());
            QVERIFY2(box->informativeText().contains(why), qPrintable(box->informativeText()));
            QVERIFY(box->informativeText().contains(QStringLiteral("File → Export…")));
            QVERIFY(box->text().contains(QFileInfo(file).fileName()));
            bool hasWayOn = false;
            for (QAbstractButton* b : box->buttons()) hasWayOn |= b->text() == QStringLiteral("Choose another file…");
            QVERIFY(hasWayOn);
            box->close();
            QTRY_VERIFY(!h.window.findChild<QMessageBox*>(QStringLiteral("importErrorDialog")));
        }
        QCOMPARE(h.reopenStore().listConversations({}).value().size(), size_t{3});
    }

    void deleteAsksThenUndoRestores() {
        QTemporaryDir dir;
        const QString db = dir.filePath(QStringLiteral("h.sqlite"));
        makeHistory(db, 3, 2, -1, -1);
        GuiHarness h(db);
        QVERIFY(h.start(false));
        dsv2::ui::Sidebar* sidebar = h.window.sidebar();
        QTRY_COMPARE(sidebar->conversations()->rowCount(), 3);
        const qint64 victim = sidebar->conversations()->idAt(0);

        QListView* list = sidebar->conversationList();
        list->setFocus();
        list->setCurrentIndex(sidebar->conversations()->index(0));
        QTest::keyClick(list, Qt::Key_Delete);
        QMessageBox* confirm = nullptr;
        QTRY_VERIFY((confirm = h.window.findChild<QMessageBox*>(QStringLiteral("confirmDeleteDialog"))));
        QCOMPARE(sidebar->conversations()->rowCount(), 3);  // nothing happens before the answer
        QSignalSpy deleted(&h.service, &dsv2::ui::ChatBackend::conversationDeleted);
        confirm->findChild<QPushButton*>(QStringLiteral("confirmDeleteButton"))->click();
        QVERIFY(deleted.wait(10000));
        QCOMPARE(sidebar->conversations()->rowCount(), 2);
        QCOMPARE(sidebar->conversations()->rowOf(victim), -1);
        QVERIFY(h.reopenStore().conversation(victim)->deletedAt.has_value());

        QVERIFY(sidebar->undoButton()->isVisible());
        QSignalSpy restored(&h.service, &dsv2::ui::ChatBackend::conversationRestored);
        sidebar->undoButton()->click();
        QVERIFY(restored.wait(10000));
        QCOMPARE(sidebar->conversations()->rowCount(), 3);
        QCOMPARE(sidebar->conversations()->rowOf(victim), 0);  // back in its place, newest first
        QVERIFY(!h.reopenStore().conversation(victim)->deletedAt.has_value());
    }

    void renameInPlaceIsStored() {
        QTemporaryDir dir;
        const QString db = dir.filePath(QStringLiteral("h.sqlite"));
        makeHistory(db, 2, 2, -1, -1);
        GuiHarness h(db);
        QVERIFY(h.start(false));
        dsv2::ui::Sidebar* sidebar = h.window.sidebar();
        QTRY_COMPARE(sidebar->conversations()->rowCount(), 2);
        const qint64 id = sidebar->conversations()->idAt(1);
        QListView* list = sidebar->conversationList();
        list->setFocus();
        list->setCurrentIndex(sidebar->conversations()->index(1));
        QTest::keyClick(list, Qt::Key_F2);
        auto* editor = list->viewport()->findChild<QLineEdit*>();
        QTRY_VERIFY((editor = list->viewport()->findChild<QLineEdit*>()) && editor->isVisible());
        editor->selectAll();
        QTest::keyClicks(editor, QStringLiteral("Renamed by hand"));
        QSignalSpy updated(&h.service, &dsv2::ui::ChatBackend::conversationUpdated);
        QTest::keyClick(editor, Qt::Key_Return);
        QVERIFY(updated.wait(10000));
        QCOMPARE(h.reopenStore().conversation(id)->meta.title, std::string("Renamed by hand"));
        QCOMPARE(sidebar->conversations()->titleOf(id), QStringLiteral("Renamed by hand"));
    }

    void draftTokenCountIsShown() {
        GuiHarness h;
        QVERIFY(h.start());
        auto* label = h.window.findChild<QLabel*>(QStringLiteral("draftTokenLabel"));
        QVERIFY(label);
        QSignalSpy counted(&h.service, &dsv2::ui::ChatBackend::tokensCounted);
        QTest::keyClicks(h.panel()->input(), QStringLiteral("one two three four five"));
        QVERIFY(counted.wait(5000));
        const int tokens = counted.last().at(1).toInt();
        QVERIFY(tokens > 5);  // the words plus the chat template around them
        QTRY_VERIFY2(label->text().contains(QStringLiteral("%1 tokens").arg(tokens)), qPrintable(label->text()));
        QVERIFY(label->text().contains(QStringLiteral("/ 163,840")));
    }

private:
    QTemporaryDir m_settingsDir;
};

QTEST_MAIN(GuiHistoryTest)
#include "gui_history_test.moc"
