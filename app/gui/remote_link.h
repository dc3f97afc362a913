#pragma once
// RemoteLink: ChatService's side of the remote worker. It owns the worker's thread and the client
// of the connected server, so that ChatService needs no HTTP types (and builds without
// cpp-httplib, where there is no RemoteLink). Requests are queued to the worker; stop() cancels
// the client directly, which breaks a wait for bytes at once and never blocks the caller.

#include <QObject>
#include <QThread>

#include "adapter_types.h"
#include "backend/chat_types.h"

namespace dsv2::remote {
class OpenAiClient;
}

namespace dsv2::gui {

class RemoteWorker;
struct RemoteLoadJob;

class RemoteLink : public QObject {
    Q_OBJECT
public:
    explicit RemoteLink(QObject* parent = nullptr);
    ~RemoteLink() override;  // cancels what runs, then joins the thread

    void connectServer(quint64 loadId, const ui::ServerEntry& server, const CancelFlag& cancel);
    void generate(const GenerationJob& job);
    void stop();

Q_SIGNALS:
    void loaded(quint64 loadId, const dsv2::ui::ModelSummary& summary);
    void loadFailed(quint64 loadId, const QString& url, const QString& message);
    void streamed(const dsv2::ui::StreamUpdate& update);
    void finished(const dsv2::ui::GenerationOutcome& outcome);
    // To the worker (queued).
    void connectRequested(const dsv2::gui::RemoteLoadJob& job);
    void generateRequested(const dsv2::gui::GenerationJob& job);

private:
    QThread m_thread;
    RemoteWorker* m_worker = nullptr;  // lives on m_thread
    // The client of the latest connect (and of the answer in flight): shared with the worker.
    std::shared_ptr<remote::OpenAiClient> m_client;
    std::shared_ptr<remote::OpenAiClient> m_connecting;
};

}  // namespace dsv2::gui
