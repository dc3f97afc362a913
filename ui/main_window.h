#pragma once
// The main window: conversation sidebar on the left, the chat panel on the right, the model
// information dock, the status bar and the menus. It assembles the parts and routes between them;
// the chat logic is ChatController's, the threads are the backend's.

#include <QMainWindow>
#include <QPointer>

#include <optional>

#include "backend/chat_types.h"

class QAction;
class QActionGroup;
class QDockWidget;
class QMenu;
class QSplitter;

namespace dsv2::ui {

class ChatBackend;
class ChatController;
class ChatPanel;
class InspectorDock;
class MessageModel;
class ModelInfoPanel;
class GpuDialog;
class Sidebar;
class StatusPanel;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    static constexpr int kMaxRecentModels = 8;

    // backend null: a window without engine or history (nothing can be loaded).
    explicit MainWindow(ChatBackend* backend = nullptr, QWidget* parent = nullptr);
    ~MainWindow() override;

    // Shown in the status bar until a model reports its own: "CPU", "CUDA: NVIDIA H200", ...
    void setBackendDescription(const QString& text);
    // Where "Use the built-in model" points after a failed load (the demo model or tiny-lite).
    void setFallbackModel(const QString& dir) { m_fallbackModel = dir; }

    void loadModel(const QString& dir);  // with the backend and GPUs chosen in the Model menu
    // Model → GPUs…: the GPU picker, filled when the backend has listed the GPUs; a changed choice is
    // remembered and, with a local model on CUDA (or Automatic), a reload is offered.
    void showGpuDialog();
    // Model → Connect to a server…: the dialog, then connectServer. Tests call connectServer.
    void chooseServer();
    void connectServer(const ServerEntry& server);
    BackendPreference backendPreference() const;
    void setFontPointSize(int points);
    int fontPointSize() const;
    // Runs an export as the dialog would (tests use it with a prepared request).
    void startExport(const ExportRequest& request);
    void showExportDialog(qint64 conversationId = -1);  // -1: the open conversation
    // File → Import…: asks for a JSON export, then startImport. Tests call startImport directly.
    void chooseImportFile();
    void startImport(const QString& filePath);
    void showSettingsDialog();

    ChatBackend* backend() const { return m_backend; }
    ChatPanel* chatPanel() const { return m_chatPanel; }
    ChatController* controller() const { return m_controller; }
    MessageModel* messageModel() const { return m_messages; }
    Sidebar* sidebar() const { return m_sidebar; }
    ModelInfoPanel* modelInfo() const { return m_modelInfo; }
    InspectorDock* inspectorDock() const { return m_inspectorDock; }
    QStringList recentModels() const;

Q_SIGNALS:
    void exportDone(const QString& path, bool ok);
    void importDone(const dsv2::ui::ImportOutcome& outcome);

protected:
    void closeEvent(QCloseEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;

private:
    void buildMenus();
    void buildModelMenu(QMenu* menu);
    void buildViewMenu(QMenu* menu);
    void connectBackend();
    void rebuildRecentMenu();
    void rebuildServersMenu();
    void onModelLoaded(const ModelSummary& summary);
    void onGpusListed(quint64 tag, const GpuList& gpus);
    void onGpuChoiceAccepted(const GpuSelection& selection, const QVector<int>& devices);
    void rememberModel(const QString& dir);
    void chooseModelFolder();
    void showError(const QString& title, const QString& message);
    void onModelLoadFailed(const QString& dir, const QString& message);
    void onHistoryFailed(const QString& path, const QString& message);
    void onImportFinished(const ImportOutcome& outcome);
    void onConversationShown(qint64 conversationId, const QString& title);
    void restoreWindowState();
    void saveWindowState();

    ChatBackend* m_backend = nullptr;
    QSplitter* m_splitter = nullptr;
    Sidebar* m_sidebar = nullptr;
    ChatPanel* m_chatPanel = nullptr;
    MessageModel* m_messages = nullptr;
    ChatController* m_controller = nullptr;
    StatusPanel* m_status = nullptr;
    QDockWidget* m_modelDock = nullptr;
    ModelInfoPanel* m_modelInfo = nullptr;
    InspectorDock* m_inspectorDock = nullptr;
    QMenu* m_recentMenu = nullptr;
    QMenu* m_serversMenu = nullptr;
    std::optional<ServerEntry> m_connectingServer;  // the server being connected to, for its error dialog
    QActionGroup* m_backendGroup = nullptr;
    QActionGroup* m_themeGroup = nullptr;
    QAction* m_stopAction = nullptr;
    QAction* m_regenerateAction = nullptr;
    QPointer<GpuDialog> m_gpuDialog;
    quint64 m_gpuTag = 0;  // of the GPU list the dialog waits for
    QString m_fallbackModel;
    QString m_lastExportDir;
    QString m_lastImportDir;
};

}  // namespace dsv2::ui
