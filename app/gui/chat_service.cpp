#include "chat_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine_worker.h"
#include "model_summary.h"
#include "storage_worker.h"
#ifdef DSV2_HAVE_REMOTE
#include "remote_link.h"
#endif

namespace dsv2::gui {
namespace {

void registerTypes() {
    qRegisterMetaType<ui::MessageItem>();
    qRegisterMetaType<ui::ConversationItem>();
    qRegisterMetaType<QVector<ui::ConversationItem>>();
    qRegisterMetaType<ui::GenerationSettings>();
    qRegisterMetaType<ui::ConversationData>();
    qRegisterMetaType<ui::PathUpdate>();
    qRegisterMetaType<ui::SearchHitItem>();
    qRegisterMetaType<QVector<ui::SearchHitItem>>();
    qRegisterMetaType<ui::StreamUpdate>();
    qRegisterMetaType<ui::GenerationOutcome>();
    qRegisterMetaType<ui::ModelSummary>();
    qRegisterMetaType<ui::ExportRequest>();
    qRegisterMetaType<ui::ImportOutcome>();
    qRegisterMetaType<ui::RoutingData>();
    qRegisterMetaType<TurnRequest>();
    qRegisterMetaType<PreparedTurn>();
    qRegisterMetaType<GenerationJob>();
    qRegisterMetaType<LoadJob>();
    qRegisterMetaType<ui::ServerEntry>();
    qRegisterMetaType<ui::GpuList>();
}

int defaultCpuThreads() { return std::max(1, QThread::idealThreadCount() - 1); }

}  // namespace

ChatService::ChatService(int cpuThreads, GpuLister listGpus, QObject* parent)
    : ChatBackend(parent), m_listGpus(listGpus ? std::move(listGpus) : GpuLister(&dsv2::listGpus)) {
    registerTypes();
    m_engine = new EngineWorker(cpuThreads > 0 ? cpuThreads : defaultCpuThreads(), m_listGpus);
    m_storage = new StorageWorker;
    m_gpuContext = new QObject;
    m_engine->moveToThread(&m_engineThread);
    m_storage->moveToThread(&m_storageThread);
    m_gpuContext->moveToThread(&m_gpuThread);
    connect(&m_engineThread, &QThread::finished, m_engine, &QObject::deleteLater);
    connect(&m_storageThread, &QThread::finished, m_storage, &QObject::deleteLater);
    connect(&m_gpuThread, &QThread::finished, m_gpuContext, &QObject::deleteLater);
    m_engineThread.setObjectName(QStringLiteral("dsv2-engine"));
    m_storageThread.setObjectName(QStringLiteral("dsv2-storage"));
    m_gpuThread.setObjectName(QStringLiteral("dsv2-gpus"));
    connectWorkers();
#ifdef DSV2_HAVE_REMOTE
    m_remote = new RemoteLink;
    connect(m_remote, &RemoteLink::loaded, this, &ChatService::onLoaded);
    connect(m_remote, &RemoteLink::loadFailed, this, &ChatService::onLoadFailed);
    connect(m_remote, &RemoteLink::streamed, this, &ChatBackend::streamed);
    connect(m_remote, &RemoteLink::finished, this, &ChatService::onGenerationFinished);
#endif
    m_engineThread.start();
    m_storageThread.start();
    m_gpuThread.start();
    QMetaObject::invokeMethod(m_engine, &EngineWorker::lowerPriority, Qt::QueuedConnection);
}

ChatService::~ChatService() {
    // Stop what runs (the engine honours the flags within a token or a 64 MiB chunk of a load),
    // then let each thread drain its queue: an answer in progress is stored as stopped, not lost.
    if (m_cancel) m_cancel->store(true);
    if (m_loadCancel) m_loadCancel->store(true);
    m_gpuThread.quit();  // a query in progress finishes; its answer to this object is dropped
    m_gpuThread.wait();
    m_engineThread.quit();
    m_engineThread.wait();
#ifdef DSV2_HAVE_REMOTE
    delete m_remote;  // cancels its client and joins its thread, before storage goes
    m_remote = nullptr;
#endif
    m_storageThread.quit();
    m_storageThread.wait();
}

void ChatService::connectWorkers() {
    constexpr auto Q = Qt::QueuedConnection;
    // GUI → storage.
    connect(this, &ChatService::openHistoryRequested, m_storage, &StorageWorker::open, Q);
    connect(this, &ChatService::listRequested, m_storage, &StorageWorker::listConversations, Q);
    connect(this, &ChatService::openRequested, m_storage, &StorageWorker::openConversation, Q);
    connect(this, &ChatService::turnRequested, m_storage, &StorageWorker::prepareTurn, Q);
    connect(this, &ChatService::switchRequested, m_storage, &StorageWorker::switchBranch, Q);
    connect(this, &ChatService::renameRequested, m_storage, &StorageWorker::renameConversation, Q);
    connect(this, &ChatService::deleteRequested, m_storage, &StorageWorker::deleteConversation, Q);
    connect(this, &ChatService::restoreRequested, m_storage, &StorageWorker::restoreConversation, Q);
    connect(this, &ChatService::saveSettingsRequested, m_storage, &StorageWorker::saveSettings, Q);
    connect(this, &ChatService::searchRequested, m_storage, &StorageWorker::search, Q);
    connect(this, &ChatService::exportRequested, m_storage, &StorageWorker::exportConversations, Q);
    connect(this, &ChatService::importRequested, m_storage, &StorageWorker::importConversations, Q);
    connect(this, &ChatService::routingRequested, m_storage, &StorageWorker::loadRouting, Q);
    connect(this, &ChatService::touchRequested, m_storage, &StorageWorker::touchConversation, Q);
    // Storage → GUI.
    connect(
        m_storage, &StorageWorker::opened, this,
        [this](const QString& path, qint64 last) {
            m_historyPath = path;
            Q_EMIT historyReady(path, last);
        },
        Q);
    connect(m_storage, &StorageWorker::openFailed, this, &ChatBackend::historyFailed, Q);
    connect(m_storage, &StorageWorker::conversationsListed, this, &ChatBackend::conversationsListed, Q);
    connect(m_storage, &StorageWorker::conversationOpened, this, &ChatBackend::conversationOpened, Q);
    connect(m_storage, &StorageWorker::conversationUpdated, this, &ChatBackend::conversationUpdated, Q);
    connect(
        m_storage, &StorageWorker::conversationDeleted, this,
        [this](qint64 id, const QString& title) {
            Q_EMIT dropSessionRequested(id);
            Q_EMIT conversationDeleted(id, title);
        },
        Q);
    connect(m_storage, &StorageWorker::conversationRestored, this, &ChatBackend::conversationRestored, Q);
    connect(m_storage, &StorageWorker::pathChanged, this, &ChatBackend::pathChanged, Q);
    connect(m_storage, &StorageWorker::searchFinished, this, &ChatBackend::searchFinished, Q);
    connect(m_storage, &StorageWorker::exportFinished, this, &ChatBackend::exportFinished, Q);
    connect(m_storage, &StorageWorker::importFinished, this, &ChatBackend::importFinished, Q);
    connect(m_storage, &StorageWorker::routingLoaded, this, &ChatBackend::routingLoaded, Q);
    connect(m_storage, &StorageWorker::failed, this, &ChatBackend::failed, Q);
    connect(m_storage, &StorageWorker::turnPrepared, this, &ChatService::onTurnPrepared, Q);
    connect(m_storage, &StorageWorker::turnFailed, this, &ChatService::onTurnFailed, Q);
    // GUI → engine.
    connect(this, &ChatService::loadRequested, m_engine, &EngineWorker::load, Q);
    connect(this, &ChatService::generateRequested, m_engine, &EngineWorker::generate, Q);
    connect(this, &ChatService::countRequested, m_engine, &EngineWorker::countTokens, Q);
    connect(this, &ChatService::dropSessionRequested, m_engine, &EngineWorker::dropSession, Q);
    connect(this, &ChatService::unloadRequested, m_engine, &EngineWorker::unload, Q);
    // Engine → GUI.
    connect(m_engine, &EngineWorker::loadProgress, this, &ChatService::onLoadProgress, Q);
    connect(m_engine, &EngineWorker::loaded, this, &ChatService::onLoaded, Q);
    connect(m_engine, &EngineWorker::loadFailed, this, &ChatService::onLoadFailed, Q);
    connect(m_engine, &EngineWorker::streamed, this, &ChatBackend::streamed, Q);
    connect(m_engine, &EngineWorker::finished, this, &ChatService::onGenerationFinished, Q);
    connect(m_engine, &EngineWorker::tokensCounted, this, &ChatBackend::tokensCounted, Q);
}

void ChatService::openHistory(const QString& path) { Q_EMIT openHistoryRequested(path); }

void ChatService::loadModel(const QString& dir, ui::BackendPreference backend, const ui::GpuSelection& gpus) {
    if (m_cancel) m_cancel->store(true);  // a model change ends the answer in progress
    if (m_loadCancel) m_loadCancel->store(true);
    m_hasModel = false;
    ++m_modelEpoch;
    m_loadId = m_nextLoadId++;
    m_loadCancel = std::make_shared<std::atomic<bool>>(false);
    Q_EMIT modelLoadStarted(dir);
    Q_EMIT loadRequested({.loadId = m_loadId,
                          .dir = dir,
                          .backend = backend,
                          .gpus = gpus,
                          .cancel = m_loadCancel,
                          .probe = m_loadProbe,
                          .optionsProbe = m_optionsProbe});
}

void ChatService::listGpusThen(std::function<void(const ui::GpuList&)> done) {
    // The driver is asked on the GPU thread (listGpus calls cudaSetDevice there, which touches no
    // other thread's current device); the answer comes back queued to this object.
    QMetaObject::invokeMethod(
        m_gpuContext,
        [this, lister = m_listGpus, done = std::move(done)] {
            ui::GpuList list = toGpuList(lister());
            QMetaObject::invokeMethod(
                this, [done, list = std::move(list)] { done(list); }, Qt::QueuedConnection);
        },
        Qt::QueuedConnection);
}

void ChatService::requestGpus(quint64 tag) {
    listGpusThen([this, tag](const ui::GpuList& list) { Q_EMIT gpusListed(tag, list); });
}

void ChatService::refreshModelGpus() {
    if (!m_hasModel) return;
    if (m_modelIsRemote) {
        Q_EMIT modelGpusChanged({{}, tr("No GPU here: the model runs on the server.")});
        return;
    }
    listGpusThen([this, epoch = m_modelEpoch, devices = m_model.devices](const ui::GpuList& machine) {
        if (epoch == m_modelEpoch && m_hasModel) Q_EMIT modelGpusChanged(modelGpus(machine, devices));
    });
}

bool ChatService::canConnectServers() {
#ifdef DSV2_HAVE_REMOTE
    return true;
#else
    return false;
#endif
}

void ChatService::connectServer(const ui::ServerEntry& server) {
#ifdef DSV2_HAVE_REMOTE
    if (m_cancel) m_cancel->store(true);  // as loadModel: a model change ends the answer in progress
    if (m_loadCancel) m_loadCancel->store(true);
    m_remote->stop();
    m_hasModel = false;
    ++m_modelEpoch;
    m_loadId = m_nextLoadId++;
    m_loadCancel = std::make_shared<std::atomic<bool>>(false);
    Q_EMIT modelLoadStarted(server.url);
    Q_EMIT modelLoadProgress(tr("Connecting to %1").arg(server.url), -1);
    m_remote->connectServer(m_loadId, server, m_loadCancel);
#else
    // The loaded model stays: nothing replaced it.
    Q_EMIT failed(tr("Servers are not available"),
                  tr("This dsv2-chat was built without cpp-httplib, so it cannot connect to %1. Install "
                     "libcpp-httplib-dev and rebuild it.")
                      .arg(server.url));
#endif
}

void ChatService::cancelModelLoad() {
    if (m_loadId == 0) return;
    // The engine's progress callback sees the flag and stops the load at its next chunk; the window
    // is free right away either way.
    m_loadCancel->store(true);
    m_loadId = 0;
    // A load that finished just before the flag was set would leave its model on the engine thread
    // while the window has none: release whatever it produced, after it (queued behind the load).
    Q_EMIT unloadRequested();
    Q_EMIT modelLoadCancelled();
}

void ChatService::onLoadProgress(quint64 loadId, const QString& stage, int percent) {
    if (loadId == m_loadId) Q_EMIT modelLoadProgress(stage, percent);
}

void ChatService::onLoaded(quint64 loadId, const ui::ModelSummary& summary) {
    if (loadId != m_loadId) return;
    m_loadId = 0;
    m_hasModel = true;
    m_model = summary;
    m_modelIsRemote = summary.server.has_value();
    // The local model's memory is not needed while a server answers (it is loaded again on demand).
    if (m_modelIsRemote) Q_EMIT unloadRequested();
    Q_EMIT modelLoaded(summary);
    refreshModelGpus();
}

void ChatService::onLoadFailed(quint64 loadId, const QString& dir, const QString& message) {
    if (loadId != m_loadId) return;
    m_loadId = 0;
    Q_EMIT modelLoadFailed(dir, message);
}

void ChatService::requestConversations(int offset, int limit) { Q_EMIT listRequested(offset, limit); }

void ChatService::openConversation(quint64 tag, qint64 conversationId, qint64 focusMessageId) {
    Q_EMIT openRequested(tag, conversationId, focusMessageId);
}

void ChatService::renameConversation(qint64 conversationId, const QString& title) {
    Q_EMIT renameRequested(conversationId, title);
}

void ChatService::deleteConversation(qint64 conversationId) { Q_EMIT deleteRequested(conversationId); }
void ChatService::restoreConversation(qint64 conversationId) { Q_EMIT restoreRequested(conversationId); }

void ChatService::saveSettings(qint64 conversationId, const ui::GenerationSettings& settings) {
    Q_EMIT saveSettingsRequested(conversationId, settings);
}

void ChatService::setGenerating(bool generating) {
    if (m_generating == generating) return;
    m_generating = generating;
    Q_EMIT generatingChanged(generating);
}

void ChatService::startTurn(const TurnRequest& request) {
    if (m_generating) {
        Q_EMIT failed(tr("Busy"), tr("An answer is still being written. Stop it (Esc) or wait for it to finish."));
        return;
    }
    if (!m_hasModel) {
        Q_EMIT failed(tr("No model loaded"), tr("Open a model folder first (Model → Open model folder…, Ctrl+O)."));
        return;
    }
    m_cancel = std::make_shared<std::atomic<bool>>(false);
    setGenerating(true);
    TurnRequest r = request;
    r.modelDir = m_model.path;
    r.modelName = m_model.name;
    Q_EMIT turnRequested(r);
}

void ChatService::sendPrompt(quint64 tag, qint64 conversationId, qint64 parentId, const QString& text,
                             const ui::GenerationSettings& settings) {
    startTurn({.tag = tag,
               .kind = TurnKind::Send,
               .conversationId = conversationId,
               .messageId = parentId,
               .text = text,
               .settings = settings});
}

void ChatService::regenerate(quint64 tag, qint64 conversationId, qint64 assistantMessageId,
                             const ui::GenerationSettings& settings) {
    startTurn({.tag = tag,
               .kind = TurnKind::Regenerate,
               .conversationId = conversationId,
               .messageId = assistantMessageId,
               .settings = settings});
}

void ChatService::editPrompt(quint64 tag, qint64 conversationId, qint64 userMessageId, const QString& text,
                             const ui::GenerationSettings& settings) {
    startTurn({.tag = tag,
               .kind = TurnKind::Edit,
               .conversationId = conversationId,
               .messageId = userMessageId,
               .text = text,
               .settings = settings});
}

void ChatService::onTurnPrepared(const PreparedTurn& turn) {
    if (turn.createdConversation) Q_EMIT conversationUpdated(*turn.createdConversation);
    Q_EMIT pathChanged(turn.path);
#ifdef DSV2_HAVE_REMOTE
    if (m_modelIsRemote) {
        m_remote->generate({.turn = turn, .cancel = m_cancel});
        return;
    }
#endif
    Q_EMIT generateRequested({.turn = turn, .cancel = m_cancel});
}

void ChatService::onTurnFailed(quint64 tag, const QString& message) {
    Q_UNUSED(tag);
    setGenerating(false);
    Q_EMIT failed(tr("The message could not be saved"), message);
}

void ChatService::onGenerationFinished(const ui::GenerationOutcome& outcome) {
    setGenerating(false);
    Q_EMIT generationFinished(outcome);
    Q_EMIT touchRequested(outcome.conversationId);
    if (!m_modelIsRemote) refreshModelGpus();
    if (outcome.state == ui::MessageState::Failed)
        Q_EMIT failed(tr("The answer failed"), outcome.errorText);
    else if (!outcome.errorText.isEmpty())
        Q_EMIT failed(tr("The answer was not saved"), outcome.errorText);
}

void ChatService::switchBranch(quint64 tag, qint64 conversationId, qint64 messageId, int step) {
    Q_EMIT switchRequested(tag, conversationId, messageId, step);
}

void ChatService::stopGeneration() {
    if (m_cancel) m_cancel->store(true);
#ifdef DSV2_HAVE_REMOTE
    if (m_modelIsRemote && m_generating) m_remote->stop();  // breaks a wait for the next bytes
#endif
}

void ChatService::search(quint64 tag, const QString& text) { Q_EMIT searchRequested(tag, text); }
void ChatService::exportConversations(const ui::ExportRequest& request) { Q_EMIT exportRequested(request); }
void ChatService::importConversations(const QString& filePath) { Q_EMIT importRequested(filePath); }
void ChatService::requestRouting(quint64 tag, qint64 messageId, int experts) {
    Q_EMIT routingRequested(tag, messageId, experts);
}
void ChatService::countTokens(quint64 tag, const QString& text) {
    if (m_modelIsRemote) {
        Q_EMIT tokensCounted(tag, -1);  // the tokenizer is on the server
        return;
    }
    Q_EMIT countRequested(tag, text);
}

}  // namespace dsv2::gui
