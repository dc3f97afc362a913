#include "remote_link.h"

#include "remote_worker.h"

namespace dsv2::gui {

RemoteLink::RemoteLink(QObject* parent) : QObject(parent) {
    qRegisterMetaType<RemoteLoadJob>();
    m_worker = new RemoteWorker;
    m_worker->moveToThread(&m_thread);
    connect(&m_thread, &QThread::finished, m_worker, &QObject::deleteLater);
    m_thread.setObjectName(QStringLiteral("dsv2-remote"));
    constexpr auto Q = Qt::QueuedConnection;
    connect(this, &RemoteLink::connectRequested, m_worker, &RemoteWorker::connectServer, Q);
    connect(this, &RemoteLink::generateRequested, m_worker, &RemoteWorker::generate, Q);
    connect(
        m_worker, &RemoteWorker::loaded, this,
        [this](quint64 loadId, const ui::ModelSummary& summary) {
            m_client = m_connecting;  // Stop now cancels this server's answers
            Q_EMIT loaded(loadId, summary);
        },
        Q);
    connect(m_worker, &RemoteWorker::loadFailed, this, &RemoteLink::loadFailed, Q);
    connect(m_worker, &RemoteWorker::streamed, this, &RemoteLink::streamed, Q);
    connect(m_worker, &RemoteWorker::finished, this, &RemoteLink::finished, Q);
    m_thread.start();
}

RemoteLink::~RemoteLink() {
    stop();
    if (m_connecting) m_connecting->cancel();
    m_thread.quit();
    m_thread.wait();
}

void RemoteLink::connectServer(quint64 loadId, const ui::ServerEntry& server, const CancelFlag& cancel) {
    // Making a client does no I/O (it parses the URL); listing the models happens on the worker.
    m_connecting = std::make_shared<remote::OpenAiClient>(RemoteWorker::clientOptions(server));
    Q_EMIT connectRequested({.loadId = loadId, .server = server, .client = m_connecting, .cancel = cancel});
}

void RemoteLink::generate(const GenerationJob& job) { Q_EMIT generateRequested(job); }

void RemoteLink::stop() {
    if (m_client) m_client->cancel();
}

}  // namespace dsv2::gui
