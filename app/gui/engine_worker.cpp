#include "engine_worker.h"

#include <QStringList>
#include <QThread>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "common/engine_records.h"
#include "dsv2/engine.h"
#include "dsv2/storage/streaming_writer.h"
#include "format.h"
#include "inspect/engine_routing.h"
#include "inspect/storage_routing.h"
#include "model_summary.h"
#include "settings/gpu_choice.h"
#include "storage_convert.h"

namespace dsv2::gui {
namespace {

// The reply follows the template's "Assistant:"; the model's first space belongs to the template.
void stripLeadingSpaces(std::string& text, bool& atStart) {
    if (!atStart || text.empty()) return;
    text.erase(0, std::min(text.find_first_not_of(' '), text.size()));
    atStart = text.empty();
}

}  // namespace

EngineWorker::EngineWorker(int cpuThreads, GpuLister listGpus, QObject* parent)
    : QObject(parent), m_cpuThreads(cpuThreads), m_listGpus(std::move(listGpus)) {}

EngineOptions EngineWorker::engineOptions(const LoadJob& job, int cpuThreads, const GpuLister& listGpus) {
    EngineOptions o;
    o.threads = cpuThreads;
    switch (job.backend) {
    case ui::BackendPreference::Auto: o.backend = BackendChoice::Auto; break;
    case ui::BackendPreference::Cpu: o.backend = BackendChoice::Cpu; break;
    case ui::BackendPreference::Cuda: o.backend = BackendChoice::Cuda; break;
    }
    if (job.backend == ui::BackendPreference::Cpu || !listGpus) return o;
    // Before Engine::load, so listGpus' cudaSetDevice calls cannot matter: the CUDA backend selects
    // its own devices.
    const ui::GpuList machine = toGpuList(listGpus());
    if (machine.gpus.isEmpty()) {
        spdlog::info("no GPU to run the model on: {}", machine.message.toStdString());
        return o;
    }
    bool fellBack = false;
    const QVector<int> devices = ui::resolveGpuSelection(job.gpus, machine.gpus, &fellBack);
    if (fellBack)
        spdlog::warn("the GPUs chosen in Model > GPUs are not all in this machine any more: using all {}",
                     machine.gpus.size());
    applyDevices(o, devices);
    QStringList names;
    for (int d : devices) names << QString::number(d);
    spdlog::info("CUDA devices for the model: {}", names.join(QStringLiteral(", ")).toStdString());
    return o;
}

EngineWorker::~EngineWorker() { releaseModel(); }

void EngineWorker::lowerPriority() {
#ifdef __linux__
    const auto tid = static_cast<id_t>(syscall(SYS_gettid));
    errno = 0;
    const int current = getpriority(PRIO_PROCESS, tid);
    if (errno == 0 && setpriority(PRIO_PROCESS, tid, std::min(19, current + kNiceOffset)) == 0)
        spdlog::debug("engine thread at nice {}", std::min(19, current + kNiceOffset));
#endif
}

int EngineWorker::loadPercent(uint64_t bytesDone, uint64_t bytesTotal) {
    if (bytesTotal == 0) return kLoadEndPercent;
    const double fraction = static_cast<double>(std::min(bytesDone, bytesTotal)) / static_cast<double>(bytesTotal);
    return kLoadStartPercent + static_cast<int>(fraction * (kLoadEndPercent - kLoadStartPercent));
}

void EngineWorker::releaseModel() {
    m_sessions.clear();  // sessions before their engine
    m_engine.reset();
    m_turnOverheadTokens = 0;
}

void EngineWorker::load(const LoadJob& job) {
    const std::string dir = toStd(job.dir);
    spdlog::info("loading model {}", dir);
    Q_EMIT loadProgress(job.loadId, tr("Releasing the previous model"), 2);
    releaseModel();
    if (job.cancel->load()) {
        Q_EMIT loadAbandoned(job.loadId);
        return;
    }
    Q_EMIT loadProgress(job.loadId, tr("Reading the model folder"), kLoadStartPercent);
    // The engine reports bytes read (CPU) or uploaded (CUDA); the bar shows them between
    // kLoadStartPercent and kLoadEndPercent. Returning false when the flag is set makes Engine::load
    // stop at the next chunk (64 MiB) with StatusCode::Cancelled: the thread is free again at once.
    EngineOptions options = engineOptions(job, m_cpuThreads, m_listGpus);
    if (job.optionsProbe) job.optionsProbe(options);
    int lastPercent = -1;
    options.loadProgress = [&](uint64_t done, uint64_t total) {
        if (job.probe) job.probe(done, total);
        if (job.cancel->load()) return false;
        const int percent = loadPercent(done, total);
        if (percent != lastPercent) {
            lastPercent = percent;
            Q_EMIT loadProgress(
                job.loadId,
                tr("Loading weights: %1 of %2")
                    .arg(ui::formatBytes(static_cast<qint64>(done)), ui::formatBytes(static_cast<qint64>(total))),
                percent);
        }
        return true;
    };
    auto engine = Engine::load(dir, options);
    if (job.cancel->load() || (!engine.isOk() && engine.status().code() == StatusCode::Cancelled)) {
        spdlog::info("model load of {} cancelled{}", dir, engine.isOk() ? " (after it finished)" : "");
        Q_EMIT loadAbandoned(job.loadId);
        return;
    }
    if (!engine.isOk()) {
        spdlog::error("cannot load model {}: {}", dir, engine.status().toString());
        Q_EMIT loadFailed(job.loadId, job.dir, toQString(engine.status().message()));
        return;
    }
    m_engine = std::move(*engine);
    Q_EMIT loadProgress(job.loadId, tr("Preparing the chat"), kLoadEndPercent);
    if (m_engine->info().hasChatTemplate) {
        const std::vector<ChatTurn> empty;
        const std::vector<ChatTurn> one{{"user", ""}};
        auto base = m_engine->renderChat(empty, false);
        auto withTurn = m_engine->renderChat(one, true);
        if (base.isOk() && withTurn.isOk())
            m_turnOverheadTokens = static_cast<int>(withTurn->size()) - static_cast<int>(base->size());
    }
    const ui::ModelSummary summary = summarizeModel(*m_engine);
    spdlog::info("model {} loaded on {}", summary.name.toStdString(), summary.backend.toStdString());
    Q_EMIT loaded(job.loadId, summary);
}

Session* EngineWorker::sessionFor(qint64 conversationId, QString* error) {
    auto it = std::find_if(m_sessions.begin(), m_sessions.end(),
                           [&](const CachedSession& s) { return s.conversationId == conversationId; });
    if (it != m_sessions.end()) {
        m_sessions.splice(m_sessions.begin(), m_sessions, it);
        return m_sessions.front().session.get();
    }
    auto session = m_engine->createSession();
    if (!session.isOk()) {
        *error = toQString(session.status().message());
        return nullptr;
    }
    m_sessions.push_front({conversationId, std::move(*session)});
    while (static_cast<int>(m_sessions.size()) > kMaxSessions) m_sessions.pop_back();
    return m_sessions.front().session.get();
}

void EngineWorker::unload() {
    if (!m_engine) return;
    spdlog::info("local model released");
    releaseModel();
}

void EngineWorker::dropSession(qint64 conversationId) {
    m_sessions.remove_if([&](const CachedSession& s) { return s.conversationId == conversationId; });
}

void EngineWorker::generate(const GenerationJob& job) {
    const PreparedTurn& turn = job.turn;
    storage::StreamingWriter& writer = *turn.writer;
    ui::GenerationOutcome outcome;
    outcome.conversationId = turn.conversationId;
    outcome.messageId = turn.assistantMessageId;

    auto failWith = [&](const QString& message) {
        if (auto saved = writer.fail(toStd(message)); !saved)
            spdlog::error("could not store the failure of message {}: {}", outcome.messageId, saved.error().toString());
        outcome.state = ui::MessageState::Failed;
        outcome.errorText = message;
        Q_EMIT finished(outcome);
    };
    if (!m_engine) {
        failWith(tr("No model is loaded. Open a model folder (Model → Open model folder…) and try again."));
        return;
    }
    QString error;
    Session* session = sessionFor(turn.conversationId, &error);
    if (!session) {
        failWith(tr("Could not start a session: %1").arg(error));
        return;
    }

    GenerateRequest request;
    request.messages = turn.turns;
    request.params = applySettings(m_engine->defaultParams(), turn.settings);
    request.params.topNAlternatives = 5;      // kept with each token for the inspection views
    request.params.wantPromptRouting = true;  // this turn's prompt rows: stored and shown live
    request.cancel = job.cancel.get();

    const ModelInfo& info = m_engine->info();
    // The prompt's token ids (the engine renders the same messages); only this turn's part of it
    // is stored and shown: the rest belongs to the earlier answers.
    std::vector<int32_t> promptIds;
    if (auto rendered = m_engine->renderChat(turn.turns, true); rendered.isOk()) promptIds = std::move(*rendered);
    const std::size_t promptStart = app::turnPromptStart(*m_engine, turn.turns, promptIds);
    ui::StreamUpdate pending{.conversationId = turn.conversationId, .messageId = turn.assistantMessageId};
    pending.routingShape = inspect::liveTable(info, turn.assistantMessageId);
    QElapsedTimer sinceEmit;
    bool atStart = true;
    bool emittedOnce = false;
    auto emitPending = [&] {
        Q_EMIT streamed(pending);
        pending.delta.clear();
        pending.routingShape.reset();
        pending.routingRows.clear();
        sinceEmit.restart();
        emittedOnce = true;
    };

    auto result = session->generate(request, [&](const GenerateEvent& event) {
        if (const auto* p = std::get_if<PromptProcessedEvent>(&event)) {
            pending.promptTokens = p->promptTokens;
            pending.contextTokens = p->cache.tokens;
            pending.contextLimit = p->cache.capacityTokens;
            pending.cacheBytes = p->cache.bytesUsed;
            pending.cache = inspect::cacheState(p->cache);
            if (!p->routing.empty() && p->routing.size() == promptIds.size()) {
                storage::PromptRouting prompt = app::toPromptRouting(*m_engine, promptIds, p->routing, promptStart);
                for (std::vector<inspect::TokenRow> rows = inspect::promptRowsFromStorage(prompt);
                     inspect::TokenRow & row : rows)
                    pending.routingRows.push_back(std::move(row));
                writer.setPromptRouting(std::move(prompt));
            } else if (!p->routing.empty()) {
                spdlog::warn("prompt routing not stored: {} routed tokens for a prompt of {}", p->routing.size(),
                             promptIds.size());
            }
        } else if (const auto* t = std::get_if<TokenEvent>(&event)) {
            std::string text = t->textDelta;
            stripLeadingSpaces(text, atStart);
            writer.append(text, app::toTokenRecord(*t, info));
            inspect::TokenRow row = inspect::tokenRow(*t);
            row.text = text;  // as the chat shows it (the template's leading space dropped)
            pending.routingRows.push_back(std::move(row));
            pending.cache = inspect::cacheState(t->cache);
            pending.delta += QString::fromStdString(text);
            pending.generatedTokens = t->index + 1;
            if (t->index == 0) pending.timeToFirstTokenMs = t->seconds * 1000.0;
            const double decodeSeconds = t->seconds - pending.timeToFirstTokenMs / 1000.0;
            if (t->index > 0 && decodeSeconds > 0)
                pending.tokensPerSecond = static_cast<double>(t->index) / decodeSeconds;
            pending.contextTokens = t->cache.tokens;
            pending.contextLimit = t->cache.capacityTokens;
            pending.cacheBytes = t->cache.bytesUsed;
            // The first token goes out at once (time to first token is visible); then one update a frame.
            if (!emittedOnce || sinceEmit.elapsed() >= kFrameMs) emitPending();
        } else if (const auto* f = std::get_if<FinishedEvent>(&event)) {
            std::string text = f->textDelta;
            stripLeadingSpaces(text, atStart);
            if (!text.empty()) {
                writer.append(text);
                pending.delta += QString::fromStdString(text);
            }
        }
    });
    if (!pending.delta.isEmpty()) emitPending();

    if (!result.isOk()) {
        spdlog::warn("generation failed: {}", result.status().toString());
        failWith(toQString(result.status().message()));
        return;
    }
    const GenerateResult& r = *result;
    const storage::GenerationStats stats = app::toStorageStats(r.stats, r.reason, info.backend);
    if (auto saved = writer.finish(stats); !saved) {
        spdlog::error("could not store answer {}: {}", outcome.messageId, saved.error().toString());
        outcome.errorText = tr("The answer could not be saved: %1").arg(toQString(saved.error().message()));
    }
    outcome.state = r.reason == StopReason::Cancelled ? ui::MessageState::Stopped : ui::MessageState::Complete;
    outcome.stats = toUiStats(stats);
    const CacheUsage cache = session->cacheUsage();
    outcome.contextTokens = cache.tokens;
    outcome.contextLimit = cache.capacityTokens;
    Q_EMIT finished(outcome);
}

void EngineWorker::countTokens(quint64 tag, const QString& text) {
    if (!m_engine) {
        Q_EMIT tokensCounted(tag, -1);
        return;
    }
    const auto ids = m_engine->encode(toStd(text), false);
    Q_EMIT tokensCounted(tag, static_cast<int>(ids.size()) + m_turnOverheadTokens);
}

}  // namespace dsv2::gui
