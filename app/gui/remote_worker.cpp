#include "remote_worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/engine_records.h"
#include "dsv2/engine.h"
#include "dsv2/storage/streaming_writer.h"
#include "inspect/engine_routing.h"
#include "inspect/storage_routing.h"
#include "model_summary.h"
#include "storage_convert.h"

namespace dsv2::gui {
namespace {

// As EngineWorker: the reply follows the template's "Assistant:"; a first space belongs to it.
void stripLeadingSpaces(std::string& text, bool& atStart) {
    if (!atStart || text.empty()) return;
    text.erase(0, std::min(text.find_first_not_of(' '), text.size()));
    atStart = text.empty();
}

// Routing rows as storage and the views want them: vLLM sends expert ids without gate weights;
// they are stored as 0 (the views' weight modes then show nothing, the expert modes are exact).
void fillMissingWeights(TokenRouting& routing) {
    if (routing.weights.size() != routing.expertIds.size()) routing.weights.assign(routing.expertIds.size(), 0.0f);
}

// The whole prompt's routing (firstPosition 0): without the model's chat template on this side the
// part that earlier turns already stored cannot be told apart. Token texts are unknown here too
// (the tokenizer is on the server); the rows carry the ids.
storage::PromptRouting promptRouting(const remote::RemoteCompletion& c, int topK) {
    storage::PromptRouting prompt;
    prompt.firstPosition = 0;
    prompt.promptTokens = static_cast<std::int64_t>(c.promptTokenIds.size());
    for (std::size_t i = 0; i < c.promptRouting.size(); ++i) {
        storage::TokenRecord r;
        r.tokenId = c.promptTokenIds[i];
        TokenRouting routing = c.promptRouting[i];
        fillMissingWeights(routing);
        if (!routing.expertIds.empty()) {
            r.moeLayers = static_cast<std::uint16_t>(c.routingLayers.size());
            r.topK = static_cast<std::uint8_t>(topK);
            r.expertIds.assign(routing.expertIds.begin(), routing.expertIds.end());
            r.expertWeights = std::move(routing.weights);
        }
        prompt.records.push_back(std::move(r));
    }
    return prompt;
}

}  // namespace

RemoteWorker::RemoteWorker(QObject* parent) : QObject(parent) {}

remote::ClientOptions RemoteWorker::clientOptions(const ui::ServerEntry& server) {
    remote::ClientOptions o;
    o.baseUrl = toStd(server.url);
    o.apiKey = toStd(server.apiKey);
    return o;
}

void RemoteWorker::connectServer(const RemoteLoadJob& job) {
    spdlog::info("connecting to {}", toStd(job.server.url));
    remote::RemoteError error;
    const std::vector<remote::RemoteModel> models = job.client->listModels(error);
    if (job.cancel->load()) return;  // the window moved on; nobody waits for this answer
    if (!error.ok()) {
        spdlog::warn("server {}: {}", toStd(job.server.url), error.message);
        Q_EMIT loadFailed(job.loadId, job.server.url, toQString(error.message));
        return;
    }
    const auto chosen = std::find_if(models.begin(), models.end(), [&](const remote::RemoteModel& m) {
        return job.server.model.isEmpty() || m.id == toStd(job.server.model);
    });
    if (chosen == models.end()) {
        QStringList ids;
        for (const remote::RemoteModel& m : models) ids << toQString(m.id);
        Q_EMIT loadFailed(job.loadId, job.server.url,
                          models.empty() ? tr("The server lists no models.")
                                         : tr("The server has no model \"%1\"; it serves: %2. Leave the model empty "
                                              "to use its first one.")
                                               .arg(job.server.model, ids.join(QStringLiteral(", "))));
        return;
    }
    m_client = job.client;
    m_server = job.server;
    m_model = *chosen;

    ui::ModelSummary s;
    s.name = toQString(chosen->id);
    s.path = job.server.url;
    s.backend = tr("remote: %1").arg(job.server.url);
    s.contextLimit = chosen->maxModelLen;
    // dsv2 serve describes its model; other servers leave these 0 (shown as not reported).
    s.layers = chosen->numLayers;
    s.routedExperts = chosen->nRoutedExperts;
    s.expertsPerToken = chosen->expertsPerToken;
    s.hasChatTemplate = true;
    s.server = job.server;
    spdlog::info("using model {} on {}", chosen->id, toStd(job.server.url));
    Q_EMIT loaded(job.loadId, s);
}

void RemoteWorker::generate(const GenerationJob& job) {
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
    if (!m_client || !m_model) {
        failWith(tr("Not connected to a server. Connect to one (Model → Connect to a server…) and try again."));
        return;
    }

    remote::RemoteChatRequest request;
    request.model = m_model->id;
    request.messages = turn.turns;
    request.params = applySettings(GenerateParams{}, turn.settings);
    request.params.topNAlternatives = kAlternatives;

    // The first update makes the inspector follow this answer (a table without routing yet: the
    // tokens appear as they stream; their routing, if the server sends any, comes at the end).
    ui::StreamUpdate pending{.conversationId = turn.conversationId, .messageId = turn.assistantMessageId};
    pending.routingShape = inspect::RoutingTable{.messageId = turn.assistantMessageId};
    pending.contextLimit = m_model->maxModelLen;
    std::vector<TokenEvent> tokens;
    std::string tail;  // text the server's last event still held
    bool atStart = true;
    QElapsedTimer sinceEmit;
    bool emittedOnce = false;
    auto emitPending = [&] {
        Q_EMIT streamed(pending);
        pending.delta.clear();
        pending.routingShape.reset();
        pending.routingRows.clear();
        sinceEmit.restart();
        emittedOnce = true;
    };

    const remote::RemoteCompletion c = m_client->streamChat(
        request,
        [&](const GenerateEvent& event) {
            if (const auto* p = std::get_if<PromptProcessedEvent>(&event)) {
                pending.promptTokens = p->promptTokens;
                pending.contextTokens = p->promptTokens;
            } else if (const auto* t = std::get_if<TokenEvent>(&event)) {
                TokenEvent token = *t;
                stripLeadingSpaces(token.textDelta, atStart);
                pending.routingRows.push_back(inspect::tokenRow(token));
                pending.delta += QString::fromStdString(token.textDelta);
                tokens.push_back(std::move(token));
                const auto n = static_cast<qint64>(tokens.size());
                pending.generatedTokens = n;
                if (n == 1) pending.timeToFirstTokenMs = t->seconds * 1000.0;
                const double decodeSeconds = t->seconds - pending.timeToFirstTokenMs / 1000.0;
                if (n > 1 && decodeSeconds > 0) pending.tokensPerSecond = static_cast<double>(n - 1) / decodeSeconds;
                pending.contextTokens = pending.promptTokens + n;
                if (!emittedOnce || sinceEmit.elapsed() >= kFrameMs) emitPending();
            } else if (const auto* f = std::get_if<FinishedEvent>(&event)) {
                tail = f->textDelta;
                stripLeadingSpaces(tail, atStart);
                pending.delta += QString::fromStdString(tail);
            }
        },
        job.cancel.get());
    if (!pending.delta.isEmpty() || !pending.routingRows.empty() || !emittedOnce) emitPending();

    // Each token gets its routing row now that the answer is complete (token i, row i; vLLM sends
    // none for the last token).
    const bool routed = c.error.ok() && c.hasRouting && !c.routingLayers.empty();
    const int layers = static_cast<int>(c.routingLayers.size());
    int topK = 0;
    if (routed) {
        for (std::size_t i = 0; i < tokens.size() && i < c.routing.size(); ++i) {
            tokens[i].routing = c.routing[i];
            fillMissingWeights(tokens[i].routing);
            if (topK == 0 && !tokens[i].routing.expertIds.empty())
                topK = static_cast<int>(tokens[i].routing.expertIds.size()) / layers;
        }
        if (topK == 0 && !c.promptRouting.empty())
            topK = static_cast<int>(c.promptRouting[0].expertIds.size()) / layers;
    }
    ModelInfo info;  // what toTokenRecord reads: the routing's shape
    info.moeLayers = c.routingLayers;
    info.expertsPerToken = topK;
    const bool sentLogprobs = c.logprobs.size() == tokens.size();
    for (const TokenEvent& t : tokens) {
        storage::TokenRecord record = app::toTokenRecord(t, info);
        if (!sentLogprobs) record.logprob.reset();
        writer.append(t.textDelta, std::move(record));
    }
    if (!tail.empty()) writer.append(tail);

    if (!c.error.ok()) {
        spdlog::warn("remote answer failed ({}): {}", remote::remoteErrorKindName(c.error.kind), c.error.message);
        failWith(toQString(c.error.message));
        return;
    }

    ui::StreamUpdate routing{.conversationId = turn.conversationId, .messageId = turn.assistantMessageId};
    if (routed && topK > 0) {
        routing.routingShape = inspect::RoutingTable{
            .messageId = turn.assistantMessageId,
            .layers = layers,
            .topK = topK,
            .experts = static_cast<int>(m_model->nRoutedExperts),  // 0 (not reported): inferred from the ids
            .modelLayers = c.routingLayers};
        if (c.promptRouting.size() == c.promptTokenIds.size() && !c.promptRouting.empty()) {
            storage::PromptRouting prompt = promptRouting(c, topK);
            routing.routingRows = inspect::promptRowsFromStorage(prompt);
            writer.setPromptRouting(std::move(prompt));
        }
        for (const TokenEvent& t : tokens) routing.routingRows.push_back(inspect::tokenRow(t));
        Q_EMIT streamed(routing);
    }

    storage::GenerationStats stats = app::toStorageStats(c.stats, c.reason, "remote: " + toStd(m_server.url));
    stats.extra["server"] = toStd(m_server.url);
    stats.extra["model"] = m_model->id;
    if (!routed) {
        const std::string note = c.routingNote.empty() ? "the server returned no routing" : c.routingNote;
        stats.extra["routingNote"] = note;
        outcome.routingNote = toQString(note);
    }
    if (auto saved = writer.finish(stats); !saved) {
        spdlog::error("could not store answer {}: {}", outcome.messageId, saved.error().toString());
        outcome.errorText = tr("The answer could not be saved: %1").arg(toQString(saved.error().message()));
    }
    outcome.state = c.reason == StopReason::Cancelled ? ui::MessageState::Stopped : ui::MessageState::Complete;
    outcome.stats = toUiStats(stats);
    outcome.contextTokens = c.stats.promptTokens + c.stats.generatedTokens;
    outcome.contextLimit = m_model->maxModelLen;
    Q_EMIT finished(outcome);
}

}  // namespace dsv2::gui
