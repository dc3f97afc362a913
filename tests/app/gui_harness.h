#pragma once
// GuiHarness: the real dsv2-chat window over the real adapter (engine and storage on their threads),
// with tiny-lite on the CPU backend and a history in a temporary folder. Tests drive the widgets
// (keys, clicks) and wait on the backend's signals, never on sleeps.

#include <QListView>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>

#include <memory>

#include "backend/chat_backend.h"
#include "chat/chat_controller.h"
#include "chat/chat_panel.h"
#include "chat/chat_view.h"
#include "chat/message_model.h"
#include "chat/prompt_input.h"
#include "chat_service.h"
#include "dsv2/storage/conversation_store.h"
#include "main_window.h"
#include "sidebar/conversation_list_model.h"
#include "sidebar/search_results_model.h"
#include "sidebar/sidebar.h"

namespace dsv2::test {

inline QString tinyLiteDir() { return QStringLiteral(DSV2_TEST_DATA_DIR "/tiny-lite"); }

// Per-test QSettings in a temporary folder: window state and recent models never leak between runs.
inline void isolateSettings(const QTemporaryDir& dir, const char* app) {
    QCoreApplication::setOrganizationName(QStringLiteral("dsv2-chat-test"));
    QCoreApplication::setApplicationName(QString::fromLatin1(app));
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, dir.path());
    QSettings().clear();
}

class GuiHarness {
public:
    // Opens `dbPath` (default: a fresh file) and loads tiny-lite; start() waits for both.
    // `listGpus`: the machine the adapter sees (default: this one's, through dsv2::listGpus).
    explicit GuiHarness(const QString& dbPath = {}, gui::GpuLister listGpus = {})
        : service(1, std::move(listGpus)), window(&service) {
        m_db = dbPath.isEmpty() ? m_dir.filePath(QStringLiteral("history.sqlite")) : dbPath;
    }

    bool start(bool withModel = true) {
        window.resize(1000, 700);
        window.show();
        if (!QTest::qWaitForWindowExposed(&window)) return false;
        QSignalSpy history(&service, &ui::ChatBackend::historyReady);
        QSignalSpy loaded(&service, &ui::ChatBackend::modelLoaded);
        service.openHistory(m_db);
        if (withModel) window.loadModel(tinyLiteDir());
        if (!history.wait(20000) && history.isEmpty()) return false;
        if (withModel && loaded.isEmpty() && !loaded.wait(60000)) return false;
        return true;
    }

    ui::ChatPanel* panel() const { return window.chatPanel(); }
    ui::ChatView* view() const { return panel()->view(); }
    ui::MessageModel* messages() const { return window.messageModel(); }
    ui::ChatController* controller() const { return window.controller(); }
    const QString& dbPath() const { return m_db; }
    QString tempPath(const QString& name) const { return m_dir.filePath(name); }

    // Short, repeatable answers unless a test asks otherwise.
    void useSettings(int maxTokens, quint64 seed = 7) {
        ui::GenerationSettings s = controller()->settings();
        s.maxTokens = maxTokens;
        s.seed = seed;
        controller()->setSettings(s);
    }

    // Types the prompt into the message box and presses Enter, like a person.
    void typeAndSend(const QString& text) {
        ui::PromptInput* input = panel()->input();
        input->setFocus();
        input->clear();
        QTest::keyClicks(input, text);
        QTest::keyClick(input, Qt::Key_Return);
    }

    // Waits for the answer in flight to end; returns its outcome.
    bool waitFinished(ui::GenerationOutcome* outcome = nullptr, int timeoutMs = 120000) {
        QSignalSpy finished(&service, &ui::ChatBackend::generationFinished);
        if (!finished.wait(timeoutMs) && finished.isEmpty()) return false;
        if (outcome) *outcome = finished.first().first().value<ui::GenerationOutcome>();
        return QTest::qWaitFor([this] { return !service.isGenerating(); }, 5000);
    }

    // Clicks a message's hover button (Copy, Edit, Regenerate, ‹, ›) where the delegate paints it.
    bool clickAction(int row, ui::MessageDelegate::Action action) {
        const QModelIndex index = messages()->index(row);
        view()->scrollTo(index);
        const QRect rowRect = view()->visualRect(index);
        const QRect button = view()->messageDelegate()->actionRect(rowRect, index, action);
        if (button.isEmpty() || !view()->viewport()->rect().contains(button.center())) return false;
        QTest::mouseMove(view()->viewport(), button.center());
        QTest::mouseClick(view()->viewport(), Qt::LeftButton, {}, button.center());
        return true;
    }

    // A second, independent connection to the database file, as another process would open it.
    storage::ConversationStore reopenStore() const {
        auto store = storage::ConversationStore::open(m_db.toStdString(), {.mode = storage::OpenMode::ReadOnly});
        if (!store) qFatal("cannot reopen %s: %s", qPrintable(m_db), store.error().toString().c_str());
        return std::move(store).value();
    }

private:
    QTemporaryDir m_dir;
    QString m_db;

public:
    gui::ChatService service;
    ui::MainWindow window;
};

}  // namespace dsv2::test
