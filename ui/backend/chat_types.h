#pragma once
// Plain Qt-side records that the UI shows. The app adapter (app/gui) fills them from the engine and
// storage; the UI never sees engine or storage types, so views can be tested without either.

#include <QMetaType>
#include <QString>
#include <QVector>

#include <cstdint>
#include <optional>
#include <vector>

#include "inspect/kv_figures.h"
#include "inspect/routing_table.h"

namespace dsv2::ui {

enum class MessageRole { System, User, Assistant };

// How a message ended, as the chat view shows it. Stopped = the user pressed Stop (complete text up
// to there); Interrupted = the app died while writing it (the text stops at the last saved batch).
enum class MessageState { Complete, Streaming, Stopped, Interrupted, Failed };

struct MessageStats {
    qint64 promptTokens = 0;
    qint64 generatedTokens = 0;
    double tokensPerSecond = 0.0;
    double timeToFirstTokenMs = 0.0;
    double totalMs = 0.0;
    QString stopReason;  // "eos", "max_tokens", "cancelled", "context_full", ...
    QString backend;
};

struct MessageItem {
    qint64 id = 0;
    qint64 parentId = 0;  // 0: a root
    MessageRole role = MessageRole::User;
    QString content;
    MessageState state = MessageState::Complete;
    QString errorText;
    int siblingIndex = 0;  // 0-based position among the messages with the same parent
    int siblingCount = 1;
    qint64 createdAtMs = 0;
    std::optional<MessageStats> stats;
};

struct ConversationItem {
    qint64 id = 0;
    QString title;
    QString modelName;
    qint64 updatedAtMs = 0;
    int messageCount = 0;
};

// Sampling choices of one conversation; an unset field means "the model's default"
// (generation_config.json).
struct GenerationSettings {
    QString systemPrompt;
    std::optional<double> temperature;
    std::optional<double> topP;
    std::optional<int> topK;
    std::optional<int> maxTokens;
    std::optional<double> repetitionPenalty;
    std::optional<quint64> seed;

    bool operator==(const GenerationSettings&) const = default;
};

struct ConversationData {
    qint64 id = 0;
    QString title;
    GenerationSettings settings;
    QVector<MessageItem> messages;  // the active branch, root first
    qint64 focusMessageId = 0;      // scroll to and select this one (a search hit); 0: the end
};

// A change of the active branch: keep the first `keep` messages of the shown path, replace the rest
// with `tail`. Sending appends (keep = all), regenerating and editing cut the path at the branch
// point, switching branches replaces everything below the switched message.
struct PathUpdate {
    quint64 tag = 0;  // echoes the request that caused it (0: none)
    qint64 conversationId = 0;
    int keep = 0;
    QVector<MessageItem> tail;
};

struct SearchHitItem {
    qint64 messageId = 0;
    qint64 conversationId = 0;
    QString conversationTitle;
    MessageRole role = MessageRole::User;
    qint64 createdAtMs = 0;
    QString snippet;  // matches are wrapped in kHighlightOpen / kHighlightClose
};
inline constexpr QChar kHighlightOpen = QChar(0x2);
inline constexpr QChar kHighlightClose = QChar(0x3);

// Progress of the answer being generated (sent at most once per frame).
struct StreamUpdate {
    qint64 conversationId = 0;
    qint64 messageId = 0;
    QString delta;  // text since the last update
    qint64 promptTokens = 0;
    qint64 generatedTokens = 0;
    double tokensPerSecond = 0.0;
    double timeToFirstTokenMs = 0.0;
    qint64 contextTokens = 0;
    qint64 contextLimit = 0;
    qint64 cacheBytes = 0;
    // For the inspector: the answer's table shape (layers, topK, experts, model layers; no rows) in
    // the first update of an answer, then the rows since the last update: this turn's prompt rows
    // first (isPrompt), then one per generated token; and the session's latent cache after them.
    std::optional<inspect::RoutingTable> routingShape;
    std::vector<inspect::TokenRow> routingRows;
    std::optional<CacheState> cache;
};

struct GenerationOutcome {
    qint64 conversationId = 0;
    qint64 messageId = 0;
    MessageState state = MessageState::Complete;
    QString errorText;
    MessageStats stats;
    qint64 contextTokens = 0;
    qint64 contextLimit = 0;
    // Why the answer has no routing to inspect (a server that does not return routed experts);
    // empty when it has routing, or when the local engine wrote it.
    QString routingNote;
};

// The result of File → Import…: how many conversations came in and which was first, or why none did.
struct ImportOutcome {
    QString filePath;
    bool ok = false;
    int imported = 0;
    int skipped = 0;  // already in the history (same uuid)
    qint64 messages = 0;
    qint64 firstImportedId = 0;  // 0: none
    QString errorText;           // when !ok: what was wrong with the file
};

// A stored answer's routing for the inspector (read on the storage thread): its table (prompt rows,
// then answer rows) and every stored answer of its conversation's branch for the conversation load.
struct RoutingData {
    qint64 messageId = 0;
    inspect::RoutingTable table;
    std::vector<inspect::RoutingTable> conversation;
    QString errorText;  // non-empty: it could not be read
    QString note;       // stored with the answer: why it has no routing (a remote answer)
};

enum class BackendPreference { Auto, Cpu, Cuda };

// One GPU as the engine's listGpus() reports it; memory as of that moment (all processes).
struct GpuItem {
    int index = 0;  // the CUDA device index
    QString name;   // "NVIDIA H200"
    qint64 totalBytes = 0;
    qint64 freeBytes = 0;
    qint64 usedBytes() const { return totalBytes > freeBytes ? totalBytes - freeBytes : 0; }
    bool operator==(const GpuItem&) const = default;
};

// GPUs, or why there are none: `message` says it (no CUDA in this build, no driver, no device; for
// the model's GPUs also "the model runs on the CPU" or "on the server").
struct GpuList {
    QVector<GpuItem> gpus;
    QString message;
    bool operator==(const GpuList&) const = default;
};

// A GPU chosen to run the model, remembered by index and name so that a changed machine is noticed.
struct GpuKey {
    int index = 0;
    QString name;
    bool operator==(const GpuKey&) const = default;
};
// The GPUs chosen in Model → GPUs…; empty: all of them (the default).
using GpuSelection = QVector<GpuKey>;

// An OpenAI-compatible server to chat with instead of a local model (dsv2 serve, vLLM, SGLang).
struct ServerEntry {
    QString url;     // the API base, as OpenAI's base_url: "http://127.0.0.1:8000/v1"
    QString model;   // empty: the server's first model
    QString apiKey;  // empty: none
    bool isValid() const { return !url.isEmpty(); }
    bool operator==(const ServerEntry&) const = default;
};

struct ModelSummary {
    QString name;
    QString path;
    QString backend;  // "cpu fp32, 2 threads"
    QString dtype;    // of the checkpoint ("bfloat16")
    qint64 parametersTotal = 0;
    qint64 parametersActive = 0;
    qint64 layers = 0;
    qint64 routedExperts = 0;
    qint64 sharedExperts = 0;
    qint64 expertsPerToken = 0;
    std::vector<std::int32_t> moeLayers;  // model layer index of each MoE layer (the heatmap's column labels)
    qint64 contextLimit = 0;
    qint64 weightFileBytes = 0;
    qint64 cacheBytesPerToken = 0;
    QVector<int> devices;  // CUDA devices the model runs on (empty: the CPU backend, or a server)
    bool hasChatTemplate = false;
    bool isToy = false;
    QString toyNote;  // why it is a toy and what to do about it
    GenerationSettings defaults;
    std::optional<ModelShape> shape;    // for the inspector's KV-cache comparison (read on the engine thread)
    std::optional<ServerEntry> server;  // set: the model runs on this server (path is its URL)
};

enum class ExportFormat { Markdown, Text, Json, Html };

struct ExportRequest {
    QVector<qint64> conversationIds;  // empty: every conversation
    ExportFormat format = ExportFormat::Markdown;
    QString filePath;
};

}  // namespace dsv2::ui

Q_DECLARE_METATYPE(dsv2::ui::MessageItem)
Q_DECLARE_METATYPE(dsv2::ui::ConversationItem)
Q_DECLARE_METATYPE(dsv2::ui::GenerationSettings)
Q_DECLARE_METATYPE(dsv2::ui::ConversationData)
Q_DECLARE_METATYPE(dsv2::ui::PathUpdate)
Q_DECLARE_METATYPE(dsv2::ui::SearchHitItem)
Q_DECLARE_METATYPE(dsv2::ui::StreamUpdate)
Q_DECLARE_METATYPE(dsv2::ui::GenerationOutcome)
Q_DECLARE_METATYPE(dsv2::ui::ModelSummary)
Q_DECLARE_METATYPE(dsv2::ui::ExportRequest)
Q_DECLARE_METATYPE(dsv2::ui::ImportOutcome)
Q_DECLARE_METATYPE(dsv2::ui::RoutingData)
Q_DECLARE_METATYPE(dsv2::ui::ServerEntry)
Q_DECLARE_METATYPE(dsv2::ui::GpuList)
