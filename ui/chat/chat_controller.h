#pragma once
// ChatController: what the chat area does. It keeps the open conversation (its id, settings and
// active branch in MessageModel), turns the panel's requests into backend requests and applies the
// backend's answers: a path change, streamed text (appended to the last message only), the end of
// an answer. Answers for something the user has since left (another conversation) are dropped by tag.

#include <QObject>
#include <QTimer>

#include "backend/chat_backend.h"
#include "chat/message_delegate.h"

namespace dsv2::ui {

class ChatPanel;
class MessageModel;

class ChatController : public QObject {
    Q_OBJECT
public:
    ChatController(ChatBackend* backend, MessageModel* model, ChatPanel* panel, QObject* parent = nullptr);

    qint64 conversationId() const { return m_conversationId; }
    QString title() const { return m_title; }
    const GenerationSettings& settings() const { return m_settings; }
    void setSettings(const GenerationSettings& settings);  // saved with the conversation
    qint64 editingMessageId() const { return m_editingId; }

public Q_SLOTS:
    void newChat();
    void openConversation(qint64 conversationId, qint64 focusMessageId = 0);
    void send(const QString& text);
    void stop();
    void regenerate(qint64 messageId);
    void regenerateLast();
    void startEdit(qint64 messageId);
    void editLastPrompt();
    void cancelEdit();
    void switchBranch(qint64 messageId, int step);
    // Esc: stop an answer, else leave edit mode. Returns whether it did anything.
    bool escape();

Q_SIGNALS:
    void conversationShown(qint64 conversationId, const QString& title);  // 0: a new, unsaved chat
    void statusMessage(const QString& text);

private:
    void onConversationOpened(quint64 tag, const ConversationData& data);
    void onPathChanged(const PathUpdate& update);
    void onStreamed(const StreamUpdate& update);
    void onFinished(const GenerationOutcome& outcome);
    void onGeneratingChanged(bool generating);
    void onMessageAction(qint64 messageId, MessageDelegate::Action action);
    void onModelLoaded(const ModelSummary& summary);
    void requestTokenCount();
    void showTokenInfo(int draftTokens);
    void updateEmptyState();

    ChatBackend* m_backend;
    MessageModel* m_model;
    ChatPanel* m_panel;
    quint64 m_nextTag = 1;
    quint64 m_openTag = 0;  // the open request whose answer we want
    quint64 m_turnTag = 0;  // the turn whose path change may create the conversation
    quint64 m_countTag = 0;
    qint64 m_conversationId = 0;
    QString m_title;
    ConversationItem m_lastUpdated;  // the backend announces a new conversation just before its path
    GenerationSettings m_settings;
    qint64 m_editingId = 0;
    QString m_pendingText;  // sent but not yet stored: restored to the input if the turn fails
    // The answer being written (possibly in another conversation than the one shown).
    qint64 m_streamingMessageId = 0;
    QString m_streamingText;
    qint64 m_contextLimit = 0;
    QTimer m_countTimer;
};

}  // namespace dsv2::ui
