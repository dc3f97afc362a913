#pragma once
// Records that travel between the adapter's workers (queued signals). They carry engine and storage
// types, so they stay in app/gui; the UI only ever sees the Qt records of ui/backend/chat_types.h.

#include <QMetaType>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "backend/chat_types.h"
#include "dsv2/generate.h"
#include "dsv2/version.h"

namespace dsv2 {
struct EngineOptions;
}
namespace dsv2::storage {
class StreamingWriter;
}

namespace dsv2::gui {

using CancelFlag = std::shared_ptr<std::atomic<bool>>;

enum class TurnKind { Send, Regenerate, Edit };

// What the GUI asked for: a new prompt, another answer to a prompt, or an edited prompt.
struct TurnRequest {
    quint64 tag = 0;
    TurnKind kind = TurnKind::Send;
    qint64 conversationId = 0;  // 0 (Send only): create one titled from the text
    qint64 messageId = 0;       // Send: the parent (0 = root); Regenerate: the answer or its prompt; Edit: the prompt
    QString text;
    ui::GenerationSettings settings;
    QString modelDir;
    QString modelName;
};

// The database side of a turn is done: the prompt is stored, the answer's row exists (streaming)
// and `writer` fills it. The engine worker takes it from here.
struct PreparedTurn {
    quint64 tag = 0;
    qint64 conversationId = 0;
    qint64 assistantMessageId = 0;
    std::optional<ui::ConversationItem> createdConversation;
    ui::PathUpdate path;
    std::vector<ChatTurn> turns;  // the prompt: system prompt + the active branch up to the new answer
    ui::GenerationSettings settings;
    std::shared_ptr<storage::StreamingWriter> writer;
};

struct GenerationJob {
    PreparedTurn turn;
    CancelFlag cancel;
};

// Called on the engine thread with each progress report of a load, before the cancel flag is read
// (tests use it to act at a known point of a load; the app leaves it empty).
using LoadProbe = std::function<void(std::uint64_t bytesDone, std::uint64_t bytesTotal)>;

// Called on the engine thread with the options of a load just before Engine::load (tests check the
// devices the GPU choice became; the app leaves it empty).
using OptionsProbe = std::function<void(const EngineOptions& options)>;

// Lists the machine's GPUs: dsv2::listGpus in the app; tests inject a machine. It may be called
// from the engine and the GPU threads at once, so it must be thread-safe (listGpus is).
using GpuLister = std::function<Result<std::vector<GpuInfo>>()>;

struct LoadJob {
    quint64 loadId = 0;
    QString dir;
    ui::BackendPreference backend = ui::BackendPreference::Auto;
    ui::GpuSelection gpus;  // Model → GPUs… (empty: all); only read when the backend may be CUDA
    CancelFlag cancel;      // read by the engine's progress callback: setting it aborts the load
    LoadProbe probe;
    OptionsProbe optionsProbe;
};

}  // namespace dsv2::gui

Q_DECLARE_METATYPE(dsv2::gui::TurnRequest)
Q_DECLARE_METATYPE(dsv2::gui::PreparedTurn)
Q_DECLARE_METATYPE(dsv2::gui::GenerationJob)
Q_DECLARE_METATYPE(dsv2::gui::LoadJob)
