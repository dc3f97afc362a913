#pragma once
// RemoteWorker: the chat window's model on an OpenAI-compatible server (dsv2 serve, vLLM, SGLang),
// through the Qt-free client in app/remote. It lives on its own QThread like EngineWorker and takes
// the same jobs: the storage side of a turn is prepared the same way, only the tokens come from
// the network. The GUI stops an answer with the job's cancel flag and OpenAiClient::cancel()
// (which breaks a wait for bytes); it never waits here.
//
// Routing arrives once, after the last token (servers send routed_experts at the end), so tokens
// are shown as they come but written to storage when the answer is over: then each token gets its
// row of routing, the prompt's routing is stored, and the inspector gets the whole table at once.
// A failure (connection, timeout, HTTP error, the stream broken off) stores what arrived and the
// error, and the answer is shown as failed with that text kept.

#include <QElapsedTimer>
#include <QObject>

#include <memory>
#include <optional>

#include "adapter_types.h"
#include "backend/chat_types.h"
#include "remote/openai_client.h"

namespace dsv2::gui {

using RemoteClientPtr = std::shared_ptr<remote::OpenAiClient>;

struct RemoteLoadJob {
    quint64 loadId = 0;
    ui::ServerEntry server;
    RemoteClientPtr client;  // made on the GUI thread (no I/O), shared so that Stop can cancel()
    CancelFlag cancel;
};

class RemoteWorker : public QObject {
    Q_OBJECT
public:
    static constexpr int kFrameMs = 16;
    static constexpr int kAlternatives = 5;  // top logprobs asked per token, as the local engine keeps

    explicit RemoteWorker(QObject* parent = nullptr);

    // The client options a server entry gives (timeouts: 5 s to connect, 120 s of silence).
    static remote::ClientOptions clientOptions(const ui::ServerEntry& server);

public Q_SLOTS:
    void connectServer(const dsv2::gui::RemoteLoadJob& job);
    void generate(const dsv2::gui::GenerationJob& job);

Q_SIGNALS:
    void loaded(quint64 loadId, const dsv2::ui::ModelSummary& summary);
    void loadFailed(quint64 loadId, const QString& url, const QString& message);
    void streamed(const dsv2::ui::StreamUpdate& update);
    void finished(const dsv2::ui::GenerationOutcome& outcome);

private:
    RemoteClientPtr m_client;
    ui::ServerEntry m_server;
    std::optional<remote::RemoteModel> m_model;
};

}  // namespace dsv2::gui

Q_DECLARE_METATYPE(dsv2::gui::RemoteLoadJob)
