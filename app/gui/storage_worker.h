#pragma once
// StorageWorker: owns the ConversationStore on its own thread, so the GUI thread never touches the
// disk. Every slot is called through a queued connection and answers with a signal; failures come
// back as text a person can act on (storage's messages name the file and the cause).

#include <QObject>
#include <QString>

#include <memory>

#include "adapter_types.h"
#include "backend/chat_types.h"

namespace dsv2::storage {
class ConversationStore;
}

namespace dsv2::gui {

class StorageWorker : public QObject {
    Q_OBJECT
public:
    explicit StorageWorker(QObject* parent = nullptr);
    ~StorageWorker() override;

public Q_SLOTS:
    void open(const QString& path);
    void listConversations(int offset, int limit);
    void openConversation(quint64 tag, qint64 conversationId, qint64 focusMessageId);
    void prepareTurn(const dsv2::gui::TurnRequest& request);
    void switchBranch(quint64 tag, qint64 conversationId, qint64 messageId, int step);
    void renameConversation(qint64 conversationId, const QString& title);
    void deleteConversation(qint64 conversationId);
    void restoreConversation(qint64 conversationId);
    void saveSettings(qint64 conversationId, const dsv2::ui::GenerationSettings& settings);
    void search(quint64 tag, const QString& text);
    void exportConversations(const dsv2::ui::ExportRequest& request);
    void importConversations(const QString& filePath);
    void loadRouting(quint64 tag, qint64 messageId, int experts);
    void touchConversation(qint64 conversationId);  // after an answer: move it to the top

Q_SIGNALS:
    void opened(const QString& path, qint64 lastConversationId);
    void openFailed(const QString& path, const QString& message);
    void conversationsListed(int offset, const QVector<dsv2::ui::ConversationItem>& items, bool more);
    void conversationOpened(quint64 tag, const dsv2::ui::ConversationData& data);
    void conversationUpdated(const dsv2::ui::ConversationItem& item);
    void conversationDeleted(qint64 conversationId, const QString& title);
    void conversationRestored(const dsv2::ui::ConversationItem& item);
    void turnPrepared(const dsv2::gui::PreparedTurn& turn);
    void turnFailed(quint64 tag, const QString& message);
    void pathChanged(const dsv2::ui::PathUpdate& update);
    void searchFinished(quint64 tag, const QVector<dsv2::ui::SearchHitItem>& hits);
    void exportFinished(const QString& path, bool ok, const QString& message);
    void importFinished(const dsv2::ui::ImportOutcome& outcome);
    void routingLoaded(quint64 tag, const dsv2::ui::RoutingData& data);
    void failed(const QString& title, const QString& message);

private:
    bool ensureOpen(const QString& what);
    void doPrepareTurn(const TurnRequest& request);

    std::unique_ptr<storage::ConversationStore> m_store;
};

}  // namespace dsv2::gui
