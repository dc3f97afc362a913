#include "inspector_dock.h"

#include <QItemSelectionModel>
#include <QLabel>
#include <QTextDocument>
#include <QVBoxLayout>

#include "backend/chat_backend.h"
#include "chat/chat_view.h"
#include "chat/message_delegate.h"
#include "chat/message_model.h"
#include "inspect/inspector_panel.h"

namespace dsv2::ui {

InspectorDock::InspectorDock(ChatBackend* backend, ChatView* view, MessageModel* messages, QWidget* parent)
    : QDockWidget(tr("Inspector"), parent), m_backend(backend), m_view(view), m_messages(messages) {
    setObjectName(QStringLiteral("inspectorDock"));
    setAccessibleName(tr("Inspector: expert routing and KV cache"));
    auto* body = new QWidget(this);
    auto* layout = new QVBoxLayout(body);
    layout->setContentsMargins(0, 0, 0, 0);
    m_note = new QLabel(body);
    m_note->setObjectName(QStringLiteral("routingNote"));
    m_note->setWordWrap(true);
    m_note->setMargin(6);
    m_note->setFrameShape(QFrame::StyledPanel);
    m_note->setAccessibleName(tr("Why there is no routing"));
    m_note->hide();
    layout->addWidget(m_note);
    m_panel = new InspectorPanel(body);
    layout->addWidget(m_panel, 1);
    setWidget(body);

    connect(backend, &ChatBackend::modelLoaded, this, [this](const ModelSummary& s) {
        m_experts = static_cast<int>(s.routedExperts);
        m_moeLayers = s.moeLayers;
        if (s.shape) m_panel->setModelShape(*s.shape);
        // A stored answer shown before the model finished loading gets its layer labels now.
        InspectionModel* model = m_panel->model();
        if (!model->isLive() && model->table().modelLayers.empty() && model->tokenCount() > 0) {
            inspect::RoutingTable labelled = withModelLayers(model->table());
            if (!labelled.modelLayers.empty()) model->setTable(std::move(labelled));
        }
    });
    connect(backend, &ChatBackend::streamed, this, &InspectorDock::onStreamed);
    connect(backend, &ChatBackend::generationFinished, this, &InspectorDock::onFinished);
    connect(backend, &ChatBackend::routingLoaded, this, &InspectorDock::onRoutingLoaded);
    connect(view->selectionModel(), &QItemSelectionModel::currentChanged, this,
            [this](const QModelIndex& current) { onCurrentMessageChanged(current); });
    connect(m_panel, &InspectorPanel::highlightChanged, this, &InspectorDock::showHighlight);
    connect(view->messageDelegate(), &MessageDelegate::textClicked, this, &InspectorDock::onTextClicked);
}

void InspectorDock::inspectMessage(qint64 messageId) {
    if (messageId <= 0 || messageId == m_liveMessageId) return;
    m_backend->requestRouting(++m_routingTag, messageId, m_experts);
}

void InspectorDock::inspectLastAnswer() {
    for (int row = m_messages->rowCount() - 1; row >= 0; --row) {
        const MessageItem& m = m_messages->at(row);
        if (m.role != MessageRole::Assistant) continue;
        if (m.state != MessageState::Streaming) inspectMessage(m.id);
        return;
    }
}

void InspectorDock::onCurrentMessageChanged(const QModelIndex& index) {
    if (!index.isValid()) return;
    const MessageItem& m = m_messages->at(index.row());
    if (m.role == MessageRole::Assistant && m.state != MessageState::Streaming && m.id != m_panel->model()->messageId())
        inspectMessage(m.id);
}

void InspectorDock::onStreamed(const StreamUpdate& u) {
    InspectionModel* model = m_panel->model();
    if (u.routingShape) {
        // A new answer: the panel follows it, and any stored table still on its way is unwanted.
        ++m_routingTag;
        m_liveMessageId = u.messageId;
        const inspect::RoutingTable& t = *u.routingShape;
        setNote({});
        model->beginLive(u.messageId, t.layers, t.topK, t.experts, t.modelLayers);
    }
    if (u.messageId != m_liveMessageId || !model->isLive()) return;
    if (!u.routingRows.empty()) model->appendRows(u.routingRows);
    if (u.cache) m_panel->setCacheState(*u.cache);
}

void InspectorDock::onFinished(const GenerationOutcome& o) {
    if (o.messageId != m_liveMessageId) return;
    m_panel->model()->finishLive();
    m_liveMessageId = 0;
    setNote(o.routingNote);
    // What was stored is what is shown from now on (and the conversation load gains this answer).
    if (o.state != MessageState::Failed) inspectMessage(o.messageId);
}

void InspectorDock::onRoutingLoaded(quint64 tag, const RoutingData& routing) {
    if (tag != m_routingTag) return;  // the user moved on meanwhile
    if (!routing.errorText.isEmpty()) {
        m_panel->model()->clear();
        setNote({});
        return;
    }
    setNote(routing.note);
    m_panel->model()->setTable(withModelLayers(routing.table));
    std::vector<inspect::RoutingTable> conversation;
    conversation.reserve(routing.conversation.size());
    for (const inspect::RoutingTable& t : routing.conversation) conversation.push_back(withModelLayers(t));
    m_panel->model()->setConversationTables(conversation);
    Q_EMIT routingShown(routing.messageId);
}

inspect::RoutingTable InspectorDock::withModelLayers(inspect::RoutingTable table) const {
    if (table.modelLayers.empty() && !m_moeLayers.empty() && static_cast<int>(m_moeLayers.size()) == table.layers)
        table.modelLayers = m_moeLayers;
    return table;
}

void InspectorDock::setNote(const QString& note) {
    m_note->setText(note.isEmpty() ? QString() : tr("No routing for this answer: %1").arg(note));
    m_note->setVisible(!note.isEmpty());
}

QVector<TextRange> InspectorDock::renderedRanges(qint64 messageId, const QVector<TokenTextSpan>& spans) const {
    const int row = m_messages->rowOf(messageId);
    if (row < 0) return {};
    const auto doc = m_view->messageDelegate()->document(m_messages->index(row));
    if (!doc) return {};
    QVector<TextRange> raw;
    raw.reserve(spans.size());
    for (const TokenTextSpan& s : spans) raw.append({s.start, s.length});
    return mapSpansToRendered(m_messages->at(row).content, raw, doc->toPlainText());
}

void InspectorDock::showHighlight(qint64 messageId, const QVector<TokenTextSpan>& spans, const QColor& color) {
    MessageDelegate* delegate = m_view->messageDelegate();
    const qint64 before = delegate->highlightedMessage();
    delegate->setTokenHighlight(messageId, spans.isEmpty() ? QVector<TextRange>{} : renderedRanges(messageId, spans),
                                color);
    if (before != 0 || delegate->highlightedMessage() != 0) m_view->viewport()->update();
}

void InspectorDock::onTextClicked(const QModelIndex& index, int documentPosition) {
    InspectionModel* model = m_panel->model();
    if (!index.isValid() || m_messages->at(index.row()).id != model->messageId()) return;
    const QVector<TokenTextSpan> spans = model->answerTextSpans();
    const int i = rangeAt(renderedRanges(model->messageId(), spans), documentPosition);
    if (i >= 0) model->setSelectedToken(spans[i].row);
}

}  // namespace dsv2::ui
