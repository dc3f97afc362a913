#include "main_window.h"

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QCloseEvent>
#include <QDir>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QKeySequence>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QSplitter>
#include <QStandardPaths>
#include <QStatusBar>

#include <algorithm>

#include "app_theme.h"
#include "backend/chat_backend.h"
#include "backend/null_backend.h"
#include "chat/chat_controller.h"
#include "chat/chat_panel.h"
#include "chat/chat_view.h"
#include "chat/message_model.h"
#include "chat/prompt_input.h"
#include "export/export_dialog.h"
#include "inspector_dock.h"
#include "model/model_info_panel.h"
#include "model/saved_servers.h"
#include "model/server_dialog.h"
#include "settings/conversation_settings_dialog.h"
#include "settings/gpu_choice.h"
#include "settings/gpu_dialog.h"
#include "settings/gpu_picker.h"
#include "sidebar/conversation_list_model.h"
#include "sidebar/sidebar.h"
#include "status/status_panel.h"

namespace dsv2::ui {
namespace {
const QString kRecentKey = QStringLiteral("model/recent");
const QString kLastModelKey = QStringLiteral("model/last");
const QString kBackendKey = QStringLiteral("model/backend");
const QString kFontKey = QStringLiteral("view/fontPointSize");
const QString kThemeKey = QStringLiteral("view/theme");
}  // namespace

MainWindow::MainWindow(ChatBackend* backend, QWidget* parent) : QMainWindow(parent), m_backend(backend) {
    setWindowTitle(QStringLiteral("dsv2-chat"));
    setObjectName(QStringLiteral("mainWindow"));
    if (!m_backend) m_backend = new NullBackend(this);

    m_sidebar = new Sidebar(m_backend, this);
    m_chatPanel = new ChatPanel(this);
    m_messages = new MessageModel(this);
    m_chatPanel->view()->setMessageModel(m_messages);
    m_controller = new ChatController(m_backend, m_messages, m_chatPanel, this);

    m_splitter = new QSplitter(Qt::Horizontal, this);
    m_splitter->setObjectName(QStringLiteral("mainSplitter"));
    m_splitter->addWidget(m_sidebar);
    m_splitter->addWidget(m_chatPanel);
    m_splitter->setStretchFactor(0, 0);
    m_splitter->setStretchFactor(1, 1);
    m_splitter->setSizes({260, 760});
    setCentralWidget(m_splitter);

    m_modelInfo = new ModelInfoPanel(this);
    m_modelDock = new QDockWidget(tr("Model"), this);
    m_modelDock->setObjectName(QStringLiteral("modelDock"));
    m_modelDock->setWidget(m_modelInfo);
    addDockWidget(Qt::RightDockWidgetArea, m_modelDock);
    m_modelDock->hide();

    m_inspectorDock = new InspectorDock(m_backend, m_chatPanel->view(), m_messages, this);
    addDockWidget(Qt::RightDockWidgetArea, m_inspectorDock);
    m_inspectorDock->hide();  // until View → Inspector (then remembered with the window state)

    m_status = new StatusPanel(m_backend, statusBar());
    buildMenus();
    connectBackend();

    connect(m_sidebar, &Sidebar::newChatRequested, m_controller, &ChatController::newChat);
    connect(m_sidebar, &Sidebar::conversationActivated, m_controller,
            [this](qint64 id) { m_controller->openConversation(id); });
    connect(m_sidebar, &Sidebar::searchHitActivated, m_controller,
            [this](qint64 conversation, qint64 message) { m_controller->openConversation(conversation, message); });
    connect(m_sidebar, &Sidebar::exportRequested, this, [this](qint64 id) { showExportDialog(id); });
    connect(m_controller, &ChatController::conversationShown, this, &MainWindow::onConversationShown);
    connect(m_controller, &ChatController::statusMessage, this,
            [this](const QString& text) { statusBar()->showMessage(text, 4000); });
    connect(m_chatPanel, &ChatPanel::settingsRequested, this, &MainWindow::showSettingsDialog);
    connect(m_chatPanel, &ChatPanel::openModelRequested, this, &MainWindow::chooseModelFolder);
    connect(m_modelInfo, &ModelInfoPanel::openModelRequested, this, &MainWindow::chooseModelFolder);

    QSettings settings;
    m_lastExportDir = QStandardPaths::writableLocation(QStandardPaths::DocumentsLocation);
    if (settings.contains(kFontKey)) setFontPointSize(settings.value(kFontKey).toInt());
    resize(1100, 720);
    restoreWindowState();
    m_chatPanel->input()->setFocus();
}

MainWindow::~MainWindow() = default;

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    QAction* newChat = file->addAction(tr("&New chat"), m_controller, &ChatController::newChat);
    newChat->setShortcut(QKeySequence::New);
    QAction* exportAction = file->addAction(tr("&Export…"), this, [this] { showExportDialog(); });
    exportAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
    QAction* importAction = file->addAction(tr("&Import…"), this, &MainWindow::chooseImportFile);
    importAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_I));
    file->addSeparator();
    QAction* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
    quit->setShortcut(QKeySequence::Quit);

    QMenu* edit = menuBar()->addMenu(tr("&Edit"));
    QAction* find = edit->addAction(tr("&Search conversations"), m_sidebar, &Sidebar::focusSearch);
    find->setShortcut(QKeySequence::Find);
    QAction* rename = edit->addAction(tr("&Rename conversation"), m_sidebar, &Sidebar::renameCurrent);
    rename->setShortcut(QKeySequence(Qt::Key_F2));
    edit->addAction(tr("&Delete conversation…"), this,
                    [this] { m_sidebar->requestDelete(m_controller->conversationId()); });

    QMenu* chat = menuBar()->addMenu(tr("&Chat"));
    m_stopAction = chat->addAction(tr("S&top generating"), m_controller, [this] { m_controller->escape(); });
    m_stopAction->setShortcut(QKeySequence(Qt::Key_Escape));
    // Esc belongs to the chat area (elsewhere it closes editors and clears the search box); the
    // window's keyPressEvent catches it from anywhere else.
    m_stopAction->setShortcutContext(Qt::WidgetWithChildrenShortcut);
    m_chatPanel->addAction(m_stopAction);
    m_regenerateAction = chat->addAction(tr("&Regenerate last answer"), m_controller, &ChatController::regenerateLast);
    m_regenerateAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_R));
    QAction* editLast = chat->addAction(tr("&Edit last prompt"), m_controller, &ChatController::editLastPrompt);
    editLast->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_E));
    chat->addSeparator();
    QAction* settingsAction = chat->addAction(tr("Conversation &settings…"), this, &MainWindow::showSettingsDialog);
    settingsAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Comma));

    buildModelMenu(menuBar()->addMenu(tr("&Model")));
    buildViewMenu(menuBar()->addMenu(tr("&View")));

    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&About dsv2-chat"), this, [this] {
        QMessageBox::about(this, tr("About dsv2-chat"),
                           tr("<h3>dsv2-chat %1</h3><p>Chat locally with DeepSeek-V2-family models, on our own "
                              "inference engine (CUDA or CPU).</p><p>History: %2</p>")
                               .arg(QApplication::applicationVersion(), m_backend->historyPath().toHtmlEscaped()));
    });
}

void MainWindow::buildModelMenu(QMenu* menu) {
    QAction* open = menu->addAction(tr("&Open model folder…"), this, &MainWindow::chooseModelFolder);
    open->setShortcut(QKeySequence::Open);
    m_recentMenu = menu->addMenu(tr("&Recent models"));
    rebuildRecentMenu();
    QAction* server = menu->addAction(tr("&Connect to a server…"), this, &MainWindow::chooseServer);
    server->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O));
    m_serversMenu = menu->addMenu(tr("&Servers"));
    rebuildServersMenu();
    menu->addAction(tr("Re&load model"), this, [this] {
        if (!m_backend->hasModel()) return;
        if (const auto s = m_backend->model().server)
            connectServer(*s);
        else
            loadModel(m_backend->model().path);
    });
    QMenu* backendMenu = menu->addMenu(tr("&Backend"));
    m_backendGroup = new QActionGroup(this);
    const QString saved = QSettings().value(kBackendKey, QStringLiteral("auto")).toString();
    const std::pair<QString, QString> choices[] = {{QStringLiteral("auto"), tr("&Automatic (CUDA when available)")},
                                                   {QStringLiteral("cpu"), tr("&CPU")},
                                                   {QStringLiteral("cuda"), tr("C&UDA")}};
    for (const auto& [id, label] : choices) {
        QAction* a = backendMenu->addAction(label);
        a->setCheckable(true);
        a->setData(id);
        a->setChecked(id == saved);
        m_backendGroup->addAction(a);
    }
    connect(m_backendGroup, &QActionGroup::triggered, this, [this](QAction* a) {
        QSettings().setValue(kBackendKey, a->data());
        if (m_backend->hasModel() && !m_backend->model().server) {
            statusBar()->showMessage(tr("Reloading the model on the chosen backend…"), 4000);
            loadModel(m_backend->model().path);
        }
    });
    QAction* gpus = menu->addAction(tr("&GPUs…"), this, &MainWindow::showGpuDialog);
    gpus->setObjectName(QStringLiteral("gpusAction"));
    menu->addSeparator();
    QAction* info = m_modelDock->toggleViewAction();
    info->setText(tr("Model &information"));
    info->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_I));
    menu->addAction(info);
}

void MainWindow::buildViewMenu(QMenu* menu) {
    QMenu* theme = menu->addMenu(tr("&Theme"));
    m_themeGroup = new QActionGroup(this);
    for (Theme t : {Theme::System, Theme::Light, Theme::Dark}) {
        const QString label = t == Theme::System ? tr("&System") : t == Theme::Light ? tr("&Light") : tr("&Dark");
        QAction* a = theme->addAction(label);
        a->setCheckable(true);
        a->setData(themeName(t));
        a->setChecked(t == currentTheme());
        m_themeGroup->addAction(a);
    }
    connect(m_themeGroup, &QActionGroup::triggered, this, [](QAction* a) {
        const Theme t = themeFromName(a->data().toString());
        applyTheme(t);
        QSettings().setValue(kThemeKey, themeName(t));
    });
    menu->addSeparator();
    QAction* larger = menu->addAction(tr("&Larger text"), this, [this] { setFontPointSize(fontPointSize() + 1); });
    larger->setShortcuts({QKeySequence::ZoomIn, QKeySequence(Qt::CTRL | Qt::Key_Equal)});
    QAction* smaller = menu->addAction(tr("&Smaller text"), this, [this] { setFontPointSize(fontPointSize() - 1); });
    smaller->setShortcut(QKeySequence::ZoomOut);
    QAction* reset = menu->addAction(tr("&Default text size"), this, [this] {
        setFontPointSize(QApplication::font().pointSize());
        QSettings().remove(kFontKey);
    });
    reset->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_0));
    menu->addSeparator();
    QAction* inspector = m_inspectorDock->toggleViewAction();
    inspector->setText(tr("&Inspector (routing, KV cache)"));
    inspector->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_R));
    menu->addAction(inspector);
}

void MainWindow::connectBackend() {
    connect(m_backend, &ChatBackend::failed, this, &MainWindow::showError);
    connect(m_backend, &ChatBackend::modelLoadFailed, this, &MainWindow::onModelLoadFailed);
    connect(m_backend, &ChatBackend::historyFailed, this, &MainWindow::onHistoryFailed);
    connect(m_backend, &ChatBackend::historyReady, this, [this](const QString&, qint64 last) {
        if (last != 0 && m_controller->conversationId() == 0 && m_messages->rowCount() == 0)
            m_controller->openConversation(last);
    });
    connect(m_backend, &ChatBackend::modelLoaded, this, &MainWindow::onModelLoaded);
    connect(m_backend, &ChatBackend::modelGpusChanged, m_modelInfo, &ModelInfoPanel::setGpus);
    connect(m_backend, &ChatBackend::gpusListed, this, &MainWindow::onGpusListed);
    connect(m_backend, &ChatBackend::modelLoadStarted, this, [this] { m_modelInfo->setNoModel(tr("Loading…")); });
    connect(m_backend, &ChatBackend::modelLoadCancelled, this,
            [this] { m_modelInfo->setNoModel(tr("Loading was cancelled. Open a model folder to chat.")); });
    connect(m_backend, &ChatBackend::exportFinished, this,
            [this](const QString& path, bool ok, const QString& message) {
                if (ok)
                    statusBar()->showMessage(tr("Exported to %1").arg(path), 6000);
                else
                    showError(tr("Export failed"), tr("Could not export to %1: %2").arg(path, message));
                Q_EMIT exportDone(path, ok);
            });
    connect(m_backend, &ChatBackend::importFinished, this, &MainWindow::onImportFinished);
    connect(m_backend, &ChatBackend::generatingChanged, this,
            [this](bool generating) { m_regenerateAction->setEnabled(!generating); });
}

void MainWindow::setBackendDescription(const QString& text) { m_status->setBackendDescription(text); }

BackendPreference MainWindow::backendPreference() const {
    const QString id = m_backendGroup->checkedAction() ? m_backendGroup->checkedAction()->data().toString() : QString();
    if (id == QLatin1String("cpu")) return BackendPreference::Cpu;
    if (id == QLatin1String("cuda")) return BackendPreference::Cuda;
    return BackendPreference::Auto;
}

void MainWindow::loadModel(const QString& dir) {
    if (dir.isEmpty()) return;
    m_connectingServer.reset();
    m_backend->loadModel(dir, backendPreference(), savedGpuSelection());
}

void MainWindow::showGpuDialog() {
    if (m_gpuDialog) {
        m_gpuDialog->raise();
        m_gpuDialog->activateWindow();
        return;
    }
    auto* dialog = new GpuDialog(this);  // (through the QPointer, GCC's Release build saw a possible null)
    m_gpuDialog = dialog;
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QDialog::accepted, this,
            [this, dialog] { onGpuChoiceAccepted(dialog->selection(), dialog->picker()->checkedIndexes()); });
    dialog->open();
    m_backend->requestGpus(++m_gpuTag);  // answered on the GUI thread by onGpusListed
}

void MainWindow::onGpusListed(quint64 tag, const GpuList& gpus) {
    if (tag == m_gpuTag && m_gpuDialog) m_gpuDialog->setGpus(gpus, savedGpuSelection());
}

void MainWindow::onGpuChoiceAccepted(const GpuSelection& selection, const QVector<int>& devices) {
    if (selection != savedGpuSelection()) saveGpuSelection(selection);
    // A reload is offered when the model runs elsewhere than on the GPUs now checked (and could run
    // on them: a local model, the backend not forced to the CPU).
    const bool onCuda = backendPreference() != BackendPreference::Cpu;
    if (!m_backend->hasModel() || m_backend->model().server || !onCuda) return;
    QVector<int> current = m_backend->model().devices;
    std::sort(current.begin(), current.end());
    if (current == devices) return;
    auto* box = new QMessageBox(QMessageBox::Question, tr("Reload the model?"),
                                tr("The model runs on the GPUs chosen before. Reload it on the new choice now?"),
                                QMessageBox::NoButton, this);
    box->setObjectName(QStringLiteral("gpuReloadDialog"));
    QPushButton* reload = box->addButton(tr("Reload now"), QMessageBox::AcceptRole);
    box->addButton(tr("Later"), QMessageBox::RejectRole);
    box->setAttribute(Qt::WA_DeleteOnClose);
    connect(box, &QMessageBox::buttonClicked, this, [this, reload](QAbstractButton* b) {
        if (b != reload || !m_backend->hasModel() || m_backend->model().server) return;
        statusBar()->showMessage(tr("Reloading the model on the chosen GPUs…"), 4000);
        loadModel(m_backend->model().path);
    });
    box->open();
}

void MainWindow::chooseServer() {
    const QVector<ServerEntry> saved = savedServers();
    auto* dialog = new ServerDialog(saved.isEmpty() ? ServerEntry{} : saved.first(), this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QDialog::accepted, this, [this, dialog] { connectServer(dialog->entry()); });
    dialog->open();
}

void MainWindow::connectServer(const ServerEntry& server) {
    if (!server.isValid()) return;
    m_connectingServer = server;
    m_backend->connectServer(server);
}

void MainWindow::onModelLoaded(const ModelSummary& s) {
    m_modelInfo->setModel(s);
    m_connectingServer.reset();
    if (s.server) {
        // Remembered as typed by the person (an empty model stays "the server's first").
        rememberServer(*s.server);
        setLastServer(*s.server);
        rebuildServersMenu();
        return;
    }
    setLastServer(std::nullopt);
    rememberModel(s.path);
}

void MainWindow::rebuildServersMenu() {
    m_serversMenu->clear();
    const QVector<ServerEntry> servers = savedServers();
    for (const ServerEntry& s : servers)
        m_serversMenu->addAction(serverLabel(s) + QStringLiteral("  (") + s.url + QLatin1Char(')'), this,
                                 [this, s] { connectServer(s); });
    if (!servers.isEmpty()) {
        m_serversMenu->addSeparator();
        m_serversMenu->addAction(tr("&Forget these servers"), this, [this] {
            forgetServers();
            rebuildServersMenu();
        });
    }
    m_serversMenu->setEnabled(!servers.isEmpty());
}

QStringList MainWindow::recentModels() const { return QSettings().value(kRecentKey).toStringList(); }

void MainWindow::rememberModel(const QString& dir) {
    QSettings settings;
    QStringList recent = recentModels();
    recent.removeAll(dir);
    recent.prepend(dir);
    while (recent.size() > kMaxRecentModels) recent.removeLast();
    settings.setValue(kRecentKey, recent);
    settings.setValue(kLastModelKey, dir);
    rebuildRecentMenu();
}

void MainWindow::rebuildRecentMenu() {
    m_recentMenu->clear();
    const QStringList recent = recentModels();
    for (const QString& dir : recent)
        m_recentMenu->addAction(QFileInfo(dir).fileName() + QStringLiteral("  (") + dir + QLatin1Char(')'), this,
                                [this, dir] { loadModel(dir); });
    m_recentMenu->setEnabled(!recent.isEmpty());
}

void MainWindow::chooseModelFolder() {
    const QStringList recent = recentModels();
    const QString start = recent.isEmpty() ? QDir::homePath() : QFileInfo(recent.first()).absolutePath();
    const QString dir = QFileDialog::getExistingDirectory(
        this, tr("Open a model folder (config.json, *.safetensors, tokenizer.json)"), start);
    if (!dir.isEmpty()) loadModel(dir);
}

void MainWindow::setFontPointSize(int points) {
    points = std::clamp(points, 7, 32);
    QFont f = m_chatPanel->font();
    f.setPointSize(points);
    m_chatPanel->setFont(f);
    QSettings().setValue(kFontKey, points);
}

int MainWindow::fontPointSize() const { return m_chatPanel->font().pointSize(); }

void MainWindow::showSettingsDialog() {
    auto* dialog = new ConversationSettingsDialog(m_controller->settings(), m_backend->model().defaults, this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QDialog::accepted, this, [this, dialog] { m_controller->setSettings(dialog->settings()); });
    dialog->open();
}

void MainWindow::showExportDialog(qint64 conversationId) {
    if (conversationId < 0) conversationId = m_controller->conversationId();
    const QString title = conversationId == m_controller->conversationId()
                              ? m_controller->title()
                              : m_sidebar->conversations()->titleOf(conversationId);
    auto* dialog = new ExportDialog(conversationId, title, m_lastExportDir, this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QDialog::accepted, this, [this, dialog] { startExport(dialog->request()); });
    dialog->open();
}

void MainWindow::startExport(const ExportRequest& request) {
    if (request.filePath.isEmpty()) return;
    m_lastExportDir = QFileInfo(request.filePath).absolutePath();
    statusBar()->showMessage(tr("Exporting to %1…").arg(request.filePath));
    m_backend->exportConversations(request);
}

void MainWindow::chooseImportFile() {
    const QString start = m_lastImportDir.isEmpty() ? m_lastExportDir : m_lastImportDir;
    const QString file = QFileDialog::getOpenFileName(this, tr("Import conversations (a dsv2-chat JSON export)"), start,
                                                      tr("dsv2-chat export (*.json);;All files (*)"));
    if (!file.isEmpty()) startImport(file);
}

void MainWindow::startImport(const QString& filePath) {
    if (filePath.isEmpty()) return;
    m_lastImportDir = QFileInfo(filePath).absolutePath();
    statusBar()->showMessage(tr("Importing %1…").arg(filePath));
    m_backend->importConversations(filePath);  // on the storage thread; onImportFinished answers
}

void MainWindow::onImportFinished(const ImportOutcome& o) {
    Q_EMIT importDone(o);
    if (!o.ok) {
        statusBar()->clearMessage();
        auto* box = new QMessageBox(QMessageBox::Warning, tr("Import failed"),
                                    tr("Nothing was imported from %1.").arg(o.filePath), QMessageBox::Close, this);
        box->setObjectName(QStringLiteral("importErrorDialog"));
        box->setInformativeText(o.errorText + QStringLiteral("\n\n") +
                                tr("dsv2-chat imports the JSON files that File → Export… (format JSON) and "
                                   "`dsv2 history export` write. Your history was not changed."));
        QPushButton* other = box->addButton(tr("Choose another file…"), QMessageBox::ActionRole);
        box->setAttribute(Qt::WA_DeleteOnClose);
        connect(box, &QMessageBox::buttonClicked, this, [this, other](QAbstractButton* b) {
            if (b == other) chooseImportFile();
        });
        box->open();
        return;
    }
    if (o.imported == 0) {
        auto* box = new QMessageBox(
            QMessageBox::Information, tr("Nothing new to import"),
            o.skipped == 1
                ? tr("The conversation in %1 is already in your history.").arg(o.filePath)
                : tr("All %1 conversations in %2 are already in your history.").arg(o.skipped).arg(o.filePath),
            QMessageBox::Ok, this);
        if (o.skipped == 0) box->setText(tr("%1 contains no conversations.").arg(o.filePath));
        box->setObjectName(QStringLiteral("importNothingDialog"));
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->open();
        statusBar()->clearMessage();
        return;
    }
    QString text = o.imported == 1 ? tr("Imported 1 conversation (%1 messages)").arg(o.messages)
                                   : tr("Imported %1 conversations (%2 messages)").arg(o.imported).arg(o.messages);
    if (o.skipped > 0) text += tr("; %1 already present, skipped").arg(o.skipped);
    statusBar()->showMessage(text, 8000);
    // Show what came in: the first imported conversation.
    if (!m_backend->isGenerating()) m_controller->openConversation(o.firstImportedId);
}

void MainWindow::showError(const QString& title, const QString& message) {
    auto* box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, this);
    box->setObjectName(QStringLiteral("errorDialog"));
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();
}

void MainWindow::onModelLoadFailed(const QString& dir, const QString& message) {
    const bool server = m_connectingServer.has_value();
    m_connectingServer.reset();
    m_modelInfo->setNoModel(server ? tr("Connecting failed.") : tr("Loading failed."));
    auto* box = new QMessageBox(QMessageBox::Warning,
                                server ? tr("The server could not be used") : tr("The model could not be loaded"),
                                server ? tr("dsv2-chat could not use the server at %1.").arg(dir)
                                       : tr("dsv2-chat could not load the model in %1.").arg(dir),
                                QMessageBox::Close, this);
    box->setObjectName(QStringLiteral("modelLoadErrorDialog"));
    box->setInformativeText(message);
    QPushButton* otherServer =
        server ? box->addButton(tr("Connect to another server…"), QMessageBox::ActionRole) : nullptr;
    QPushButton* other = box->addButton(tr("Open another folder…"), QMessageBox::ActionRole);
    QPushButton* fallback = nullptr;
    if (!m_fallbackModel.isEmpty() &&
        QFileInfo(m_fallbackModel).canonicalFilePath() != QFileInfo(dir).canonicalFilePath())
        fallback = box->addButton(tr("Use the built-in model"), QMessageBox::ActionRole);
    box->setAttribute(Qt::WA_DeleteOnClose);
    connect(box, &QMessageBox::buttonClicked, this, [this, other, otherServer, fallback](QAbstractButton* b) {
        if (otherServer && b == otherServer) chooseServer();
        if (b == other) chooseModelFolder();
        if (fallback && b == fallback) loadModel(m_fallbackModel);
    });
    box->open();
}

void MainWindow::onHistoryFailed(const QString& path, const QString& message) {
    auto* box =
        new QMessageBox(QMessageBox::Critical, tr("The chat history could not be opened"),
                        tr("dsv2-chat could not open its history at %1.").arg(path), QMessageBox::NoButton, this);
    box->setObjectName(QStringLiteral("historyErrorDialog"));
    box->setInformativeText(message + QStringLiteral("\n\n") +
                            tr("Nothing was changed in that file. You can try again (for example after closing "
                               "another dsv2-chat), or chat with a temporary history that is not kept."));
    QPushButton* retry = box->addButton(tr("Retry"), QMessageBox::AcceptRole);
    QPushButton* temporary = box->addButton(tr("Use a temporary history"), QMessageBox::ActionRole);
    box->addButton(tr("Quit"), QMessageBox::RejectRole);
    box->setAttribute(Qt::WA_DeleteOnClose);
    connect(box, &QMessageBox::buttonClicked, this, [this, retry, temporary, path](QAbstractButton* b) {
        if (b == retry) {
            m_backend->openHistory(path);
        } else if (b == temporary) {
            const QString dir = QStandardPaths::writableLocation(QStandardPaths::TempLocation);
            m_backend->openHistory(QDir(dir).filePath(
                QStringLiteral("dsv2-chat-temporary-%1.sqlite").arg(QApplication::applicationPid())));
        } else {
            close();
        }
    });
    box->open();
}

void MainWindow::onConversationShown(qint64 conversationId, const QString& title) {
    m_sidebar->setCurrentConversation(conversationId);
    m_inspectorDock->inspectLastAnswer();
    setWindowTitle(conversationId == 0 || title.isEmpty() ? QStringLiteral("dsv2-chat")
                                                          : title + QStringLiteral(" — dsv2-chat"));
}

void MainWindow::keyPressEvent(QKeyEvent* event) {
    if (event->key() == Qt::Key_Escape && m_controller->escape()) {
        event->accept();
        return;
    }
    QMainWindow::keyPressEvent(event);
}

void MainWindow::restoreWindowState() {
    QSettings settings;
    if (settings.contains(QStringLiteral("window/geometry"))) {
        restoreGeometry(settings.value(QStringLiteral("window/geometry")).toByteArray());
        restoreState(settings.value(QStringLiteral("window/state")).toByteArray());
        m_splitter->restoreState(settings.value(QStringLiteral("window/splitter")).toByteArray());
    }
}

void MainWindow::saveWindowState() {
    QSettings settings;
    settings.setValue(QStringLiteral("window/geometry"), saveGeometry());
    settings.setValue(QStringLiteral("window/state"), saveState());
    settings.setValue(QStringLiteral("window/splitter"), m_splitter->saveState());
}

void MainWindow::closeEvent(QCloseEvent* event) {
    saveWindowState();
    event->accept();
}

}  // namespace dsv2::ui
