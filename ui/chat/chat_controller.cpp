#include "chat/chat_controller.h"

#include <QLocale>

#include "chat/chat_panel.h"
#include "chat/chat_view.h"
#include "chat/message_model.h"
#include "chat/prompt_input.h"
#include "format.h"

namespace dsv2::ui {

ChatController::ChatController(ChatBackend* backend, MessageModel* model, ChatPanel* panel, QObject* parent)
    : QObject(parent), m_backend(backend), m_model(model), m_panel(panel) {
    m_countTimer.setSingleShot(true);
    m_countTimer.setInterval(250);  // count once typing pauses
    connect(&m_countTimer, &QTimer::timeout, this, &ChatController::requestTokenCount);

    connect(panel, &ChatPanel::sendRequested, this, &ChatController::send);
    connect(panel, &ChatPanel::stopRequested, this, &ChatController::stop);
    connect(panel, &ChatPanel::cancelEditRequested, this, &ChatController::cancelEdit);
    connect(panel, &ChatPanel::draftChanged, this, [this] { m_countTimer.start(); });
    connect(panel->view(), &ChatView::messageAction, this, &ChatController::onMessageAction);
    connect(panel->view(), &ChatView::copied, this, &ChatController::statusMessage);

    connect(backend, &ChatBackend::conversationOpened, this, &ChatController::onConversationOpened);
    connect(backend, &ChatBackend::pathChanged, this, &ChatController::onPathChanged);
    connect(backend, &ChatBackend::streamed, this, &ChatController::onStreamed);
    connect(backend, &ChatBackend::generationFinished, this, &ChatController::onFinished);
    connect(backend, &ChatBackend::generatingChanged, this, &ChatController::onGeneratingChanged);
    connect(backend, &ChatBackend::conversationDeleted, this, [this](qint64 id) {
        if (id == m_conversationId) newChat();
    });
    connect(backend, &ChatBackend::conversationUpdated, this, [this](const ConversationItem& item) {
        m_lastUpdated = item;
        if (item.id == m_conversationId && item.title != m_title) {
            m_title = item.title;
            Q_EMIT conversationShown(m_conversationId, m_title);
        }
    });
    connect(backend, &ChatBackend::tokensCounted, this, [this](quint64 tag, int tokens) {
        if (tag == m_countTag) showTokenInfo(tokens);
    });
    connect(backend, &ChatBackend::modelLoadStarted, this,
            [this] { m_panel->setModelState(ChatPanel::ModelState::Loading); });
    connect(backend, &ChatBackend::modelLoaded, this, &ChatController::onModelLoaded);
    connect(backend, &ChatBackend::modelLoadFailed, this, [this] {
        m_panel->setModelState(ChatPanel::ModelState::None);
        m_panel->setToyNote({});
    });
    connect(backend, &ChatBackend::modelLoadCancelled, this,
            [this] { m_panel->setModelState(ChatPanel::ModelState::None); });

    m_panel->setModelState(backend->hasModel() ? ChatPanel::ModelState::Ready : ChatPanel::ModelState::None);
    m_panel->setGenerating(backend->isGenerating());
    updateEmptyState();
}

void ChatController::setSettings(const GenerationSettings& settings) {
    m_settings = settings;
    if (m_conversationId != 0) m_backend->saveSettings(m_conversationId, settings);
}

void ChatController::newChat() {
    m_openTag = m_nextTag++;  // drops a pending open
    m_conversationId = 0;
    m_title.clear();
    m_settings = {};  // settings belong to a conversation: a new one starts from the model's defaults
    cancelEdit();
    m_model->clear();
    updateEmptyState();
    m_panel->input()->setFocus();
    Q_EMIT conversationShown(0, QString());
    requestTokenCount();
}

void ChatController::openConversation(qint64 conversationId, qint64 focusMessageId) {
    if (conversationId == m_conversationId && focusMessageId == 0) return;
    m_openTag = m_nextTag++;
    m_backend->openConversation(m_openTag, conversationId, focusMessageId);
}

void ChatController::onConversationOpened(quint64 tag, const ConversationData& data) {
    if (tag != m_openTag) return;
    cancelEdit();
    m_conversationId = data.id;
    m_title = data.title;
    m_settings = data.settings;
    QVector<MessageItem> messages = data.messages;
    // The answer being written here has more text than its last saved batch.
    for (MessageItem& m : messages)
        if (m.id == m_streamingMessageId) m.content = m_streamingText;
    m_model->setMessages(messages);
    updateEmptyState();
    if (data.focusMessageId != 0)
        m_panel->view()->scrollToMessage(data.focusMessageId);
    else
        m_panel->view()->setFollowing(true);
    Q_EMIT conversationShown(m_conversationId, m_title);
    requestTokenCount();
}

void ChatController::send(const QString& text) {
    if (text.trimmed().isEmpty()) return;
    if (!m_backend->hasModel() || m_backend->isGenerating()) {
        m_panel->input()->setPlainText(text);  // nothing is lost
        Q_EMIT statusMessage(m_backend->isGenerating() ? tr("Wait for the answer to finish, or stop it (Esc).")
                                                       : tr("No model is ready yet."));
        return;
    }
    m_turnTag = m_nextTag++;
    m_pendingText = text;
    if (m_editingId != 0) {
        const qint64 edited = m_editingId;
        cancelEdit();
        m_backend->editPrompt(m_turnTag, m_conversationId, edited, text, m_settings);
    } else {
        const qint64 parent = m_model->rowCount() > 0 ? m_model->at(m_model->rowCount() - 1).id : 0;
        m_backend->sendPrompt(m_turnTag, m_conversationId, parent, text, m_settings);
    }
    m_panel->view()->setFollowing(true);
}

void ChatController::stop() { m_backend->stopGeneration(); }

bool ChatController::escape() {
    if (m_backend->isGenerating()) {
        stop();
        return true;
    }
    if (m_editingId != 0) {
        cancelEdit();
        return true;
    }
    return false;
}

void ChatController::regenerate(qint64 messageId) {
    if (m_conversationId == 0 || m_backend->isGenerating() || !m_backend->hasModel()) return;
    m_turnTag = m_nextTag++;
    m_backend->regenerate(m_turnTag, m_conversationId, messageId, m_settings);
    m_panel->view()->setFollowing(true);
}

void ChatController::regenerateLast() {
    for (int row = m_model->rowCount() - 1; row >= 0; --row) {
        if (m_model->at(row).role == MessageRole::Assistant || m_model->at(row).role == MessageRole::User) {
            regenerate(m_model->at(row).id);
            return;
        }
    }
}

void ChatController::startEdit(qint64 messageId) {
    const int row = m_model->rowOf(messageId);
    if (row < 0 || m_model->at(row).role != MessageRole::User) return;
    m_editingId = messageId;
    m_panel->input()->setPlainText(m_model->at(row).content);
    m_panel->input()->moveCursor(QTextCursor::End);
    m_panel->input()->setFocus();
    m_panel->setEditing(true);
}

void ChatController::editLastPrompt() {
    for (int row = m_model->rowCount() - 1; row >= 0; --row) {
        if (m_model->at(row).role == MessageRole::User) {
            startEdit(m_model->at(row).id);
            return;
        }
    }
}

void ChatController::cancelEdit() {
    if (m_editingId == 0) return;
    m_editingId = 0;
    m_panel->setEditing(false);
    m_panel->input()->clear();
}

void ChatController::switchBranch(qint64 messageId, int step) {
    if (m_conversationId == 0) return;
    m_backend->switchBranch(m_nextTag++, m_conversationId, messageId, step);
}

void ChatController::onMessageAction(qint64 messageId, MessageDelegate::Action action) {
    switch (action) {
    case MessageDelegate::Action::Edit: startEdit(messageId); break;
    case MessageDelegate::Action::Regenerate: regenerate(messageId); break;
    case MessageDelegate::Action::PreviousBranch: switchBranch(messageId, -1); break;
    case MessageDelegate::Action::NextBranch: switchBranch(messageId, +1); break;
    default: break;
    }
}

void ChatController::onPathChanged(const PathUpdate& update) {
    const bool ours = update.tag != 0 && update.tag == m_turnTag;
    if (ours) m_pendingText.clear();
    // Remember the answer being started even if the user has moved to another conversation since:
    // coming back must show all of its text, not only what storage has committed.
    for (const MessageItem& m : update.tail) {
        if (m.state == MessageState::Streaming) {
            m_streamingMessageId = m.id;
            m_streamingText = m.content;
        }
    }
    if (update.conversationId != m_conversationId) {
        if (!(ours && m_conversationId == 0)) return;
        // The first prompt of a new chat created the conversation.
        m_conversationId = update.conversationId;
        m_openTag = m_nextTag++;
        m_title = m_lastUpdated.id == m_conversationId ? m_lastUpdated.title : QString();
        Q_EMIT conversationShown(m_conversationId, m_title);
    }
    m_model->replaceTail(update.keep, update.tail);
    updateEmptyState();
    if (ours) m_panel->view()->setFollowing(true);
    requestTokenCount();
}

void ChatController::onStreamed(const StreamUpdate& update) {
    if (update.messageId == m_streamingMessageId) m_streamingText += update.delta;
    if (update.conversationId == m_conversationId) m_model->appendText(update.messageId, update.delta);
}

void ChatController::onFinished(const GenerationOutcome& outcome) {
    if (outcome.messageId == m_streamingMessageId) {
        m_streamingMessageId = 0;
        m_streamingText.clear();
    }
    if (outcome.conversationId == m_conversationId)
        m_model->finishMessage(outcome.messageId, outcome.state, outcome.stats, outcome.errorText);
    if (outcome.contextLimit > 0) m_contextLimit = outcome.contextLimit;
    requestTokenCount();
}

void ChatController::onGeneratingChanged(bool generating) {
    m_panel->setGenerating(generating);
    if (!generating && !m_pendingText.isEmpty()) {
        // The turn failed before anything was stored: give the text back.
        if (m_panel->input()->toPlainText().isEmpty()) m_panel->input()->setPlainText(m_pendingText);
        m_pendingText.clear();
    }
}

void ChatController::onModelLoaded(const ModelSummary& summary) {
    m_contextLimit = summary.contextLimit;
    m_panel->setModelState(ChatPanel::ModelState::Ready);
    m_panel->setToyNote(summary.toyNote);
    requestTokenCount();
}

void ChatController::requestTokenCount() {
    const QString draft = m_panel->input()->toPlainText();
    if (!m_backend->hasModel()) {
        m_panel->setTokenInfo({});
        return;
    }
    if (draft.trimmed().isEmpty()) {
        showTokenInfo(0);
        return;
    }
    m_countTag = m_nextTag++;
    m_backend->countTokens(m_countTag, draft);
}

void ChatController::showTokenInfo(int draftTokens) {
    const QLocale locale;
    const qint64 context = m_model->contextTokensAtEnd() + std::max(0, draftTokens);
    const qint64 limit = m_contextLimit > 0 ? m_contextLimit : m_backend->model().contextLimit;
    // -1: nothing here can count them (a model on a server: its tokenizer is there).
    QString text = draftTokens > 0   ? tr("Draft: %1").arg(tokenCountText(draftTokens))
                   : draftTokens < 0 ? tr("Draft: not counted (the tokenizer is on the server)")
                                     : tr("Draft: empty");
    if (limit > 0)
        text += tr(" · context after sending ≈ %1 / %2 tokens (%3%)")
                    .arg(locale.toString(context), locale.toString(limit))
                    .arg(100.0 * static_cast<double>(context) / static_cast<double>(limit), 0, 'f', 1);
    m_panel->setTokenInfo(text);
}

void ChatController::updateEmptyState() { m_panel->setShowEmptyState(m_model->rowCount() == 0); }

}  // namespace dsv2::ui
