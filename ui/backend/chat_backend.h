#pragma once
// ChatBackend: what the window asks of the engine and the history, and what it hears back.
// Every request returns at once; answers arrive later as signals on the GUI thread (the adapter in
// app/gui runs the engine and the database on their own threads). Requests that change what is
// shown carry a `tag` that the answer echoes, so the window can drop answers it no longer wants
// (the user clicked another conversation meanwhile).

#include <QObject>

#include "backend/chat_types.h"

namespace dsv2::ui {

class ChatBackend : public QObject {
    Q_OBJECT
public:
    using QObject::QObject;

    // State the backend keeps on the GUI thread (no waiting).
    virtual bool hasModel() const = 0;
    virtual bool isLoadingModel() const = 0;
    virtual bool isGenerating() const = 0;
    virtual ModelSummary model() const = 0;
    virtual QString historyPath() const = 0;

    // History: opens (creating if needed) the database file; answers historyReady or historyFailed.
    virtual void openHistory(const QString& path) = 0;

    // Model. `gpus`: the GPUs chosen in Model → GPUs… (empty: all), used when the model runs on CUDA
    // (backend Auto or Cuda); a choice that no longer matches the machine's GPUs means all of them.
    virtual void loadModel(const QString& dir, BackendPreference backend, const GpuSelection& gpus) = 0;
    virtual void cancelModelLoad() = 0;
    // Chat with a model on an OpenAI-compatible server instead (it replaces the loaded model). The
    // same signals answer: modelLoadStarted(url), modelLoaded (summary.server set) or
    // modelLoadFailed(url, why). A backend that cannot reach servers says so through the latter.
    virtual void connectServer(const ServerEntry& server) {
        Q_EMIT modelLoadStarted(server.url);
        Q_EMIT modelLoadFailed(server.url, tr("This window cannot connect to servers."));
    }

    // The machine's GPUs with their memory now (the GPU picker); answers gpusListed with the tag.
    // The adapter asks the driver on a thread of its own: never the GUI thread.
    virtual void requestGpus(quint64 tag) {
        Q_EMIT gpusListed(tag, {{}, tr("This window has no engine to ask for GPUs.")});
    }

    // Conversations.
    virtual void requestConversations(int offset, int limit) = 0;
    virtual void openConversation(quint64 tag, qint64 conversationId, qint64 focusMessageId) = 0;
    virtual void renameConversation(qint64 conversationId, const QString& title) = 0;
    virtual void deleteConversation(qint64 conversationId) = 0;  // to the trash: restorable
    virtual void restoreConversation(qint64 conversationId) = 0;
    virtual void saveSettings(qint64 conversationId, const GenerationSettings& settings) = 0;

    // Turns. conversationId 0 creates a conversation titled from the prompt; parentId 0 = a root.
    virtual void sendPrompt(quint64 tag, qint64 conversationId, qint64 parentId, const QString& text,
                            const GenerationSettings& settings) = 0;
    virtual void regenerate(quint64 tag, qint64 conversationId, qint64 assistantMessageId,
                            const GenerationSettings& settings) = 0;
    virtual void editPrompt(quint64 tag, qint64 conversationId, qint64 userMessageId, const QString& text,
                            const GenerationSettings& settings) = 0;
    virtual void switchBranch(quint64 tag, qint64 conversationId, qint64 messageId, int step) = 0;
    // Sets the cancel flag the engine checks before every token; never waits.
    virtual void stopGeneration() = 0;

    // Search, export, token counts.
    virtual void search(quint64 tag, const QString& text) = 0;
    virtual void exportConversations(const ExportRequest& request) = 0;
    // Adds the conversations of a JSON export (File → Export…, `dsv2 history export`) to the
    // history; those already present are skipped. Answers importFinished.
    virtual void importConversations(const QString& filePath) = 0;
    // The stored routing of an answer (and of its conversation) for the inspector; `experts` is the
    // loaded model's routed experts per layer (0: inferred). Answers routingLoaded with the tag.
    virtual void requestRouting(quint64 tag, qint64 messageId, int experts) = 0;
    virtual void countTokens(quint64 tag, const QString& text) = 0;

Q_SIGNALS:
    void historyReady(const QString& path, qint64 lastConversationId);
    void historyFailed(const QString& path, const QString& message);

    void modelLoadStarted(const QString& dir);
    void modelLoadProgress(const QString& stage, int percent);  // percent -1: unknown
    void modelLoaded(const dsv2::ui::ModelSummary& summary);
    void modelLoadFailed(const QString& dir, const QString& message);
    void modelLoadCancelled();
    void gpusListed(quint64 tag, const dsv2::ui::GpuList& gpus);
    // The loaded model's GPUs with their memory (all processes), measured after each load and each
    // answer; none, with the reason in `message`, when it runs on the CPU or on a server.
    void modelGpusChanged(const dsv2::ui::GpuList& gpus);

    void conversationsListed(int offset, const QVector<dsv2::ui::ConversationItem>& items, bool more);
    void conversationUpdated(const dsv2::ui::ConversationItem& item);  // created, renamed or new activity
    void conversationDeleted(qint64 conversationId, const QString& title);
    void conversationRestored(const dsv2::ui::ConversationItem& item);
    void conversationOpened(quint64 tag, const dsv2::ui::ConversationData& data);
    void pathChanged(const dsv2::ui::PathUpdate& update);

    void generatingChanged(bool generating);
    void streamed(const dsv2::ui::StreamUpdate& update);
    void generationFinished(const dsv2::ui::GenerationOutcome& outcome);

    void searchFinished(quint64 tag, const QVector<dsv2::ui::SearchHitItem>& hits);
    void exportFinished(const QString& path, bool ok, const QString& message);
    void importFinished(const dsv2::ui::ImportOutcome& outcome);
    void routingLoaded(quint64 tag, const dsv2::ui::RoutingData& data);
    void tokensCounted(quint64 tag, int tokens);

    // Something a person should know about (shown as a dialog): what failed and what to do.
    void failed(const QString& title, const QString& message);
};

}  // namespace dsv2::ui
