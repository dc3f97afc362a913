#pragma once
// ChatService: the ChatBackend the window talks to. It owns two threads, one for the engine
// (EngineWorker) and one for the database (StorageWorker), and connects them with queued
// connections only; a third, small one asks the driver for the GPUs and their memory (the picker,
// the status bar), so that neither the window nor a busy engine thread waits for it. A turn goes
// GUI → storage (store the prompt, open the answer's writer) → GUI → engine (generate into the
// writer) → GUI. Stop and "cancel loading" set atomic flags; the GUI thread never blocks on a worker
// (except when the service is destroyed at exit, which cancels first and then joins the threads).

#include <QThread>

#include "adapter_types.h"
#include "backend/chat_backend.h"

namespace dsv2::gui {

class EngineWorker;
class RemoteLink;
class StorageWorker;

class ChatService : public ui::ChatBackend {
    Q_OBJECT
public:
    // cpuThreads 0: all cores but one (the window keeps a core to itself). listGpus: how the GPUs
    // are found (empty: dsv2::listGpus; tests inject a machine).
    explicit ChatService(int cpuThreads = 0, GpuLister listGpus = {}, QObject* parent = nullptr);
    ~ChatService() override;

    // Opens (creating if needed) the history database on the storage thread.
    void openHistory(const QString& path) override;

    bool hasModel() const override { return m_hasModel; }
    bool isLoadingModel() const override { return m_loadId != 0; }
    bool isGenerating() const override { return m_generating; }
    ui::ModelSummary model() const override { return m_model; }
    QString historyPath() const override { return m_historyPath; }

    void loadModel(const QString& dir, ui::BackendPreference backend, const ui::GpuSelection& gpus) override;
    // Tests: called on the engine thread with each progress report of the loads that follow.
    void setLoadProbe(LoadProbe probe) { m_loadProbe = std::move(probe); }
    // Tests: called on the engine thread with the EngineOptions of each load that follows.
    void setOptionsProbe(OptionsProbe probe) { m_optionsProbe = std::move(probe); }
    void requestGpus(quint64 tag) override;
    void cancelModelLoad() override;
    // A model on an OpenAI-compatible server replaces the local one (whose memory is released);
    // answers come from the remote worker's thread. Without cpp-httplib in the build this fails
    // with modelLoadFailed saying so.
    void connectServer(const ui::ServerEntry& server) override;
    static bool canConnectServers();

    void requestConversations(int offset, int limit) override;
    void openConversation(quint64 tag, qint64 conversationId, qint64 focusMessageId) override;
    void renameConversation(qint64 conversationId, const QString& title) override;
    void deleteConversation(qint64 conversationId) override;
    void restoreConversation(qint64 conversationId) override;
    void saveSettings(qint64 conversationId, const ui::GenerationSettings& settings) override;

    void sendPrompt(quint64 tag, qint64 conversationId, qint64 parentId, const QString& text,
                    const ui::GenerationSettings& settings) override;
    void regenerate(quint64 tag, qint64 conversationId, qint64 assistantMessageId,
                    const ui::GenerationSettings& settings) override;
    void editPrompt(quint64 tag, qint64 conversationId, qint64 userMessageId, const QString& text,
                    const ui::GenerationSettings& settings) override;
    void switchBranch(quint64 tag, qint64 conversationId, qint64 messageId, int step) override;
    void stopGeneration() override;

    void search(quint64 tag, const QString& text) override;
    void exportConversations(const ui::ExportRequest& request) override;
    void importConversations(const QString& filePath) override;
    void requestRouting(quint64 tag, qint64 messageId, int experts) override;
    void countTokens(quint64 tag, const QString& text) override;

Q_SIGNALS:
    // Requests to the workers (queued connections).
    void openHistoryRequested(const QString& path);
    void loadRequested(const dsv2::gui::LoadJob& job);
    void generateRequested(const dsv2::gui::GenerationJob& job);
    void countRequested(quint64 tag, const QString& text);
    void dropSessionRequested(qint64 conversationId);
    void listRequested(int offset, int limit);
    void openRequested(quint64 tag, qint64 conversationId, qint64 focusMessageId);
    void turnRequested(const dsv2::gui::TurnRequest& request);
    void switchRequested(quint64 tag, qint64 conversationId, qint64 messageId, int step);
    void renameRequested(qint64 conversationId, const QString& title);
    void deleteRequested(qint64 conversationId);
    void restoreRequested(qint64 conversationId);
    void saveSettingsRequested(qint64 conversationId, const dsv2::ui::GenerationSettings& settings);
    void searchRequested(quint64 tag, const QString& text);
    void exportRequested(const dsv2::ui::ExportRequest& request);
    void importRequested(const QString& filePath);
    void routingRequested(quint64 tag, qint64 messageId, int experts);
    void touchRequested(qint64 conversationId);
    void unloadRequested();

private:
    void connectWorkers();
    void startTurn(const TurnRequest& request);
    void setGenerating(bool generating);
    void onTurnPrepared(const PreparedTurn& turn);
    void onTurnFailed(quint64 tag, const QString& message);
    void onGenerationFinished(const ui::GenerationOutcome& outcome);
    void onLoadProgress(quint64 loadId, const QString& stage, int percent);
    void onLoaded(quint64 loadId, const ui::ModelSummary& summary);
    void onLoadFailed(quint64 loadId, const QString& dir, const QString& message);
    // Lists the GPUs on the GPU thread, then calls `done` on the GUI thread (dropped if this is gone).
    void listGpusThen(std::function<void(const ui::GpuList&)> done);
    void refreshModelGpus();  // after a load and after each answer: modelGpusChanged

    QThread m_engineThread;
    QThread m_storageThread;
    QThread m_gpuThread;
    QObject* m_gpuContext = nullptr;  // lives on m_gpuThread: the GPU queries run there
    GpuLister m_listGpus;
    quint64 m_modelEpoch = 0;            // bumped by each model change: older GPU answers are dropped
    EngineWorker* m_engine = nullptr;    // lives on m_engineThread
    RemoteLink* m_remote = nullptr;      // owned: the remote worker and its thread (null: no cpp-httplib)
    StorageWorker* m_storage = nullptr;  // lives on m_storageThread

    bool m_hasModel = false;
    bool m_modelIsRemote = false;  // turns go to the remote worker
    ui::ModelSummary m_model;
    quint64 m_loadId = 0;  // the load in flight, 0: none
    quint64 m_nextLoadId = 1;
    CancelFlag m_loadCancel;
    LoadProbe m_loadProbe;
    OptionsProbe m_optionsProbe;

    bool m_generating = false;
    CancelFlag m_cancel;  // of the turn in flight
    QString m_historyPath;
};

}  // namespace dsv2::gui
