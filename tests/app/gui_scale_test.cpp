// Scale of use: a history of 10,000 conversations and a conversation of 1,000 long messages stay
// smooth to open, scroll and search. The history is generated through the storage API; timings are
// printed and asserted with bounds that are generous (2-core CI, sanitizers) yet far below "frozen".
#include <QElapsedTimer>
#include <QLineEdit>
#include <QScrollBar>
#include <QSignalSpy>
#include <QtTest>

#include "gui_harness.h"
#include "latency_probe.h"

using dsv2::storage::Role;
using dsv2::test::GuiHarness;
using dsv2::test::LatencyProbe;

namespace {

constexpr int kConversations = 10000;
constexpr int kLongMessages = 1000;

// A long answer as models write them: a heading, a list, a code block, a table now and then.
std::string longMessage(int i) {
    std::string s = "## Part " + std::to_string(i) + "\n\nThis answer explains step " + std::to_string(i) +
                    " of the procedure in some detail, so that the text wraps over several lines in the view. ";
    for (int k = 0; k < 6; ++k)
        s += "The kettle boils, the tea steeps, and the routing table decides which expert runs. ";
    s += "\n\n- first point about caching\n- second point about latency\n- third point about memory\n\n";
    if (i % 5 == 0) s += "```cpp\nint answer(int x) {\n    return x * " + std::to_string(i) + ";\n}\n```\n\n";
    if (i % 7 == 0) s += "| layer | experts |\n|---|---|\n| 1 | 64 |\n| 2 | 64 |\n\n";
    if (i == 123) s += "The word xylophone appears exactly once in the whole history.\n";
    return s;
}

struct History {
    qint64 longConversation = 0;
    qint64 needle = 0;
};

History makeHistory(const QString& file) {
    auto store = dsv2::storage::ConversationStore::open(file.toStdString());
    if (!store) qFatal("%s", store.error().toString().c_str());
    History h;
    auto ok = store->transaction([&] {
        for (int c = 0; c < kConversations; ++c) {
            const auto id = store->createConversation({.title = "Chat number " + std::to_string(c)}).value();
            const auto q =
                store->appendMessage(id, std::nullopt, Role::User, "Question " + std::to_string(c) + " about tea?")
                    .value();
            (void)store
                ->appendMessage(id, q, Role::Assistant, "An answer about tea and kettles, number " + std::to_string(c))
                .value();
        }
        h.longConversation = store->createConversation({.title = "The long one"}).value();
        std::optional<qint64> parent;
        for (int i = 0; i < kLongMessages; ++i) {
            const std::string text = i % 2 ? longMessage(i) : "Please continue with step " + std::to_string(i) + ".";
            parent =
                store->appendMessage(h.longConversation, parent, i % 2 ? Role::Assistant : Role::User, text).value();
            if (i == 123) h.needle = *parent;
        }
        return true;
    });
    if (!ok) qFatal("%s", ok.error().toString().c_str());
    return h;
}

}  // namespace

class GuiScaleTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() {
        dsv2::test::isolateSettings(m_settingsDir, "gui_scale_test");
        QVERIFY(m_dir.isValid());
        m_db = m_dir.filePath(QStringLiteral("big.sqlite"));
        QElapsedTimer t;
        t.start();
        m_history = makeHistory(m_db);
        qInfo("generated %d conversations + one of %d messages in %lld ms", kConversations, kLongMessages, t.elapsed());
    }

    void opensScrollsAndSearches() {
        GuiHarness h(m_db);
        LatencyProbe probe;
        probe.start();
        QElapsedTimer t;
        t.start();
        QSignalSpy listed(&h.service, &dsv2::ui::ChatBackend::conversationsListed);
        QVERIFY(h.start(false));
        // Start: the first page of the list, and the last conversation (the long one) reopened.
        QTRY_VERIFY_WITH_TIMEOUT(!listed.isEmpty(), 20000);
        QTRY_COMPARE_WITH_TIMEOUT(h.messages()->rowCount(), kLongMessages, 20000);
        QCOMPARE(h.controller()->conversationId(), m_history.longConversation);
        h.view()->viewport()->repaint();
        const qint64 startMs = t.elapsed();
        const double startStall = probe.max();
        probe.stop();
        QCOMPARE(h.window.sidebar()->conversations()->rowCount(), dsv2::ui::ConversationListModel::kPageSize);
        QVERIFY(h.view()->isAtBottom());
        qInfo("start: list page + 1,000-message conversation shown in %lld ms; longest GUI stall %.1f ms", startMs,
              startStall);
        QVERIFY2(startMs < 10000, "opening took too long");
        QVERIFY2(startStall < 400, qPrintable(QStringLiteral("the GUI froze for %1 ms while opening").arg(startStall)));
        QVERIFY2(h.view()->messageDelegate()->cache().documentCount() < 100,
                 "documents must be built for what is on screen, not for the whole conversation");

        // Scroll the whole conversation as a person would with the scroll bar: 40 jumps from the bottom
        // to the top (each lands among messages never laid out), then 60 pages down.
        QScrollBar* bar = h.view()->verticalScrollBar();
        const int max = bar->maximum();
        QVERIFY(max > 100000);  // 1,000 long messages are a long way
        auto timedStep = [&](auto&& move) {
            QElapsedTimer step;
            step.start();
            move();
            h.view()->viewport()->repaint();
            QCoreApplication::processEvents();
            return static_cast<double>(step.nsecsElapsed()) / 1e6;
        };
        QVector<double> jumpMs, pageMs;
        for (int i = 39; i >= 0; --i) {
            jumpMs.append(timedStep([&] {
                bar->setSliderPosition(static_cast<int>(static_cast<qint64>(bar->maximum()) * i / 40));
                bar->triggerAction(QAbstractSlider::SliderMove);
            }));
        }
        QVERIFY(bar->value() < bar->maximum() / 10);
        for (int i = 0; i < 60; ++i)
            pageMs.append(timedStep([&] { bar->triggerAction(QAbstractSlider::SliderPageStepAdd); }));
        auto stats = [](QVector<double> v) {
            std::sort(v.begin(), v.end());
            return std::tuple{v[v.size() / 2], v[v.size() * 99 / 100], v.last()};
        };
        const auto [jump50, jump99, jumpMax] = stats(jumpMs);
        const auto [page50, page99, pageMax] = stats(pageMs);
        qInfo(
            "scrolling the 1,000-message conversation (scroll + paint): 40 jumps p50 %.1f / max %.1f ms; "
            "60 page steps p50 %.1f / p99 %.1f / max %.1f ms; %d documents cached",
            jump50, jumpMax, page50, page99, pageMax, h.view()->messageDelegate()->cache().documentCount());
        QVERIFY2(page99 < 60, "scrolling page by page is not smooth");
        QVERIFY2(jumpMax < 300, "a jump into the conversation froze the view");
        QVERIFY(!h.view()->isFollowing());  // the user scrolled up: new text would not yank the view

        // The sidebar: scroll to the end of 10,001 conversations, page by page as the view asks.
        QListView* list = h.window.sidebar()->conversationList();
        auto* conversations = h.window.sidebar()->conversations();
        probe.start();
        t.restart();
        while (conversations->hasMore() || conversations->rowCount() < kConversations + 1) {
            QSignalSpy page(conversations, &dsv2::ui::ConversationListModel::pageLoaded);
            QCoreApplication::processEvents();  // the view lays out the rows it got
            list->scrollToBottom();             // and asks for more (fetchMore) at the end
            if (!page.wait(20000)) break;
        }
        const qint64 listMs = t.elapsed();
        probe.stop();
        QCOMPARE(conversations->rowCount(), kConversations + 1);
        qInfo("sidebar scrolled through %d conversations in %lld ms (%d pages); longest GUI stall %.1f ms, p99 %.1f ms",
              conversations->rowCount(), listMs, (kConversations + 1) / dsv2::ui::ConversationListModel::kPageSize + 1,
              probe.max(), probe.percentile(99));
        QVERIFY2(probe.max() < 250, "the sidebar froze while loading pages");

        // Search over ~21,000 messages: a rare word and a common one.
        for (const QString& word : {QStringLiteral("xylophone"), QStringLiteral("kettle")}) {
            QSignalSpy found(&h.service, &dsv2::ui::ChatBackend::searchFinished);
            t.restart();
            h.window.sidebar()->searchBox()->setText(word);
            QVERIFY(found.wait(20000));
            const qint64 searchMs = t.elapsed() - 200;  // minus the typing pause before searching
            const int hits = h.window.sidebar()->hits()->rowCount();
            qInfo("search '%s': %d hits (capped at 100) in %lld ms", qPrintable(word), hits, searchMs);
            QVERIFY(hits >= 1);
            QVERIFY2(searchMs < 3000, "search is too slow");
        }

        // Jump to the rare hit: a different conversation (a short one first), then the long one at message 123.
        h.controller()->openConversation(h.window.sidebar()->conversations()->idAt(5));
        QTRY_COMPARE(h.messages()->rowCount(), 2);
        h.window.sidebar()->searchBox()->setText(QStringLiteral("xylophone"));
        QSignalSpy found(&h.service, &dsv2::ui::ChatBackend::searchFinished);
        QVERIFY(found.wait(20000));
        QSignalSpy opened(&h.service, &dsv2::ui::ChatBackend::conversationOpened);
        probe.start();
        t.restart();
        QListView* results = h.window.sidebar()->searchResults();
        QTest::mouseClick(results->viewport(), Qt::LeftButton, {},
                          results->visualRect(h.window.sidebar()->hits()->index(0)).center());
        QVERIFY(opened.wait(20000));
        const int row = h.messages()->rowOf(m_history.needle);
        QCOMPARE(row, 123);
        QTRY_VERIFY(h.view()->viewport()->rect().intersects(h.view()->visualRect(h.messages()->index(row))));
        const qint64 openMs = t.elapsed();
        probe.stop();
        qInfo("search hit → the long conversation open at message 123 in %lld ms; longest GUI stall %.1f ms", openMs,
              probe.max());
        QCOMPARE(h.view()->currentIndex().row(), row);
        QVERIFY2(openMs < 5000, "jumping to a hit is too slow");
        QVERIFY2(probe.max() < 400, "the GUI froze while opening the conversation");
    }

private:
    QTemporaryDir m_settingsDir;
    QTemporaryDir m_dir;
    QString m_db;
    History m_history;
};

QTEST_MAIN(GuiScaleTest)
#include "gui_scale_test.moc"
