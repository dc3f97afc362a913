#pragma once
// InspectorDock: the inspection views (InspectorPanel) docked beside the chat, and everything that
// connects them to it:
//   - a selected answer (or the last one of a conversation that opens) is read from storage on the
//     storage thread (ChatBackend::requestRouting) and shown when it arrives;
//   - while an answer streams, its rows arrive with the text (StreamUpdate: at most one batch per
//     frame) and are appended live, with the session's latent cache state;
//   - selecting an expert colours the routed tokens in the chat text; clicking a token in the chat
//     selects its row in the heatmap.
// The GUI thread never reads the database or waits here.

#include <QDockWidget>
#include <QPointer>

class QLabel;

#include "backend/chat_types.h"
#include "chat/token_span_mapping.h"

namespace dsv2::ui {

class ChatBackend;
class ChatView;
class InspectorPanel;
class MessageModel;
struct TokenTextSpan;

class InspectorDock : public QDockWidget {
    Q_OBJECT
public:
    InspectorDock(ChatBackend* backend, ChatView* view, MessageModel* messages, QWidget* parent = nullptr);

    InspectorPanel* panel() const { return m_panel; }
    // A stored answer: asks the storage thread for its routing; shown when it comes back.
    void inspectMessage(qint64 messageId);
    // The conversation's last answer (when a conversation opens), unless it is still streaming.
    void inspectLastAnswer();
    qint64 liveMessageId() const { return m_liveMessageId; }
    // Shown above the views when the answer on display has no routing and the reason is known (a
    // server that does not return routed experts); hidden otherwise.
    QLabel* noteLabel() const { return m_note; }

Q_SIGNALS:
    void routingShown(qint64 messageId);  // a stored table is on screen (tests wait on it)

private:
    void onStreamed(const StreamUpdate& update);
    void onFinished(const GenerationOutcome& outcome);
    void onRoutingLoaded(quint64 tag, const RoutingData& routing);
    void onCurrentMessageChanged(const QModelIndex& index);
    void showHighlight(qint64 messageId, const QVector<TokenTextSpan>& spans, const QColor& color);
    void onTextClicked(const QModelIndex& index, int documentPosition);
    void setNote(const QString& note);
    // The rendered-document ranges of `spans` of the chat's message `messageId`; empty if not shown.
    QVector<TextRange> renderedRanges(qint64 messageId, const QVector<TokenTextSpan>& spans) const;

    ChatBackend* m_backend = nullptr;
    ChatView* m_view = nullptr;
    MessageModel* m_messages = nullptr;
    InspectorPanel* m_panel = nullptr;
    QLabel* m_note = nullptr;
    quint64 m_routingTag = 0;               // the request whose answer is wanted
    qint64 m_liveMessageId = 0;             // the answer streaming into the panel, 0: none
    int m_experts = 0;                      // the loaded model's routed experts per layer
    std::vector<std::int32_t> m_moeLayers;  // the loaded model's MoE layer indices
    // A stored table does not carry the model's layer numbers (storage keeps MoE-layer order only):
    // label its columns with the loaded model's MoE layers when they match in count, as live tables are.
    inspect::RoutingTable withModelLayers(inspect::RoutingTable table) const;
};

}  // namespace dsv2::ui
