#pragma once
// EngineWorker: the engine's home. It lives on its own QThread (the engine is not thread-safe per
// object: the Engine and its Sessions are only touched here) and is driven by queued signals.
// The GUI stops a generation or abandons a load by setting an atomic flag; it never waits here.
//
// Streaming: token text is written to the answer's StreamingWriter as it comes (storage commits it in
// batches) and sent to the GUI at most once per frame (kFrameMs), so a fast model cannot flood the
// GUI thread's event queue.

#include <QElapsedTimer>
#include <QObject>

#include <cstdint>
#include <list>
#include <memory>

#include "adapter_types.h"
#include "backend/chat_types.h"

namespace dsv2 {
class Engine;
class Session;
struct EngineOptions;
struct ModelInfo;
}  // namespace dsv2

namespace dsv2::gui {

class EngineWorker : public QObject {
    Q_OBJECT
public:
    static constexpr int kFrameMs = 16;
    static constexpr int kMaxSessions = 3;  // conversations whose KV cache stays warm

    // listGpus: how a load finds the machine's GPUs to resolve the GPU choice (empty: none asked).
    explicit EngineWorker(int cpuThreads = 0, GpuLister listGpus = {}, QObject* parent = nullptr);
    ~EngineWorker() override;

    // The options of a load: the backend, the CPU threads and, when the backend may be CUDA, the
    // devices the job's GPU choice resolves to on the GPUs `listGpus` reports (all of them unless
    // chosen otherwise; the choice of another machine falls back to all). No progress callback.
    static EngineOptions engineOptions(const LoadJob& job, int cpuThreads, const GpuLister& listGpus);

    // The engine runs below the window's priority (Linux nice +kNiceOffset for this thread; the CPU
    // backend's pool threads, created here, inherit it): on a machine with few cores the GUI thread
    // then gets a core when it wakes instead of queueing behind the matrix multiplications.
    static constexpr int kNiceOffset = 5;

    // The load bar: the engine's bytes done/total fill kLoadStartPercent..kLoadEndPercent; the rest
    // is releasing the previous model before and preparing the chat after.
    static constexpr int kLoadStartPercent = 5;
    static constexpr int kLoadEndPercent = 95;
    static int loadPercent(uint64_t bytesDone, uint64_t bytesTotal);

public Q_SLOTS:
    void lowerPriority();  // call once, on the engine thread, before loading
    void load(const dsv2::gui::LoadJob& job);
    void generate(const dsv2::gui::GenerationJob& job);
    void countTokens(quint64 tag, const QString& text);
    void dropSession(qint64 conversationId);
    void unload();  // frees the model (the window chats with a server now)

Q_SIGNALS:
    void loadProgress(quint64 loadId, const QString& stage, int percent);
    void loaded(quint64 loadId, const dsv2::ui::ModelSummary& summary);
    void loadFailed(quint64 loadId, const QString& dir, const QString& message);
    void loadAbandoned(quint64 loadId);
    void streamed(const dsv2::ui::StreamUpdate& update);
    void finished(const dsv2::ui::GenerationOutcome& outcome);
    void tokensCounted(quint64 tag, int tokens);

private:
    struct CachedSession {
        qint64 conversationId = 0;
        std::unique_ptr<Session> session;
    };
    Session* sessionFor(qint64 conversationId, QString* error);
    void releaseModel();

    int m_cpuThreads = 0;
    GpuLister m_listGpus;
    std::unique_ptr<Engine> m_engine;
    std::list<CachedSession> m_sessions;  // most recently used first
    int m_turnOverheadTokens = 0;         // what the chat template adds around one user message
};

}  // namespace dsv2::gui
