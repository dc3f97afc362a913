#pragma once
// InspectionModel: the one message the inspection views show (its RoutingTable), the loads derived
// from it, the rest of its conversation for the conversation-wide load, and what the user selected
// (a token, an expert). Every inspection widget observes one model, so a click in one view moves
// the others. Lives on the GUI thread; fed by the chat window's adapter:
//   - a stored answer:  model->setTable(table)  (read with inspect::loadMessageRouting off-thread);
//   - a live answer:    model->beginLive(...), then appendRows(...) per token or per frame batch,
//                       then finishLive();
//   - the conversation: model->setConversationTables(...) (every stored answer of the branch).

#include <QMetaType>
#include <QObject>
#include <QVector>

#include <vector>

#include "load_stats.h"
#include "routing_table.h"

namespace dsv2::ui {

// An expert of one MoE layer (experts of different layers are unrelated), or of every layer.
struct ExpertSelection {
    int layer = -1;   // MoE layer index; -1: the same expert id in every layer
    int expert = -1;  // -1: nothing selected

    bool isValid() const { return expert >= 0; }
    bool matches(int cellLayer) const { return isValid() && (layer < 0 || layer == cellLayer); }
    bool operator==(const ExpertSelection&) const = default;
};

// Which tokens a load view counts: the shown message, or every answer of its conversation.
enum class LoadScope { Message, Conversation };

// Where a token's text sits in QString::fromStdString(table().content), in UTF-16 units: the
// chat view can colour the same characters.
struct TokenTextSpan {
    int row = 0;
    int start = 0;
    int length = 0;
    bool operator==(const TokenTextSpan&) const = default;
};

class InspectionModel : public QObject {
    Q_OBJECT
public:
    explicit InspectionModel(QObject* parent = nullptr);

    const inspect::RoutingTable& table() const { return m_table; }
    qint64 messageId() const { return m_table.messageId; }
    int tokenCount() const { return m_table.tokenCount(); }

    // Shows a stored message. Clears the selection and ends live mode.
    void setTable(inspect::RoutingTable table);
    void clear();

    // Live: an answer being generated. Rows must have layers × topK routing (or none); prompt rows
    // (isPrompt) are accepted only before the first answer row. Returns how many were appended.
    void beginLive(qint64 messageId, int layers, int topK, int experts, std::vector<std::int32_t> modelLayers = {});
    int appendRows(std::vector<inspect::TokenRow> rows);
    // Answer text that came without a token (a final detokenizer flush).
    void appendText(const std::string& text);
    void finishLive();
    bool isLive() const { return m_live; }

    // Every stored answer of the conversation's branch (the shown message may be among them: it is
    // counted once, from the live table).
    void setConversationTables(const std::vector<inspect::RoutingTable>& tables);
    int conversationMessageCount() const;

    const inspect::LoadMatrix& messageLoad(inspect::LoadMeasure measure) const;
    inspect::LoadMatrix conversationLoad(inspect::LoadMeasure measure) const;
    inspect::LoadMatrix load(LoadScope scope, inspect::LoadMeasure measure) const;

    int selectedToken() const { return m_selectedToken; }
    void setSelectedToken(int row);  // -1: none
    ExpertSelection selectedExpert() const { return m_selectedExpert; }
    void setSelectedExpert(ExpertSelection selection);

    // The rows routed to `selection`: those with the expert among their top-k in the selected
    // layer (any layer when selection.layer is -1).
    QVector<int> tokensRoutedTo(ExpertSelection selection) const;
    bool isRoutedTo(int row, ExpertSelection selection) const;

    // The answer rows' text in UTF-16 units of the content (rows without text are left out).
    QVector<TokenTextSpan> answerTextSpans() const;
    // The spans of the answer rows routed to `selection`: what the chat view colours.
    QVector<TokenTextSpan> routedAnswerSpans(ExpertSelection selection) const;
    // The answer row whose text covers UTF-16 position `pos` of the content; -1 if none.
    int rowAtTextPosition(int pos) const;
    QString contentText() const { return QString::fromStdString(m_table.content); }

Q_SIGNALS:
    void tableReset();
    void rowsAppended(int first, int count);
    void contentAppended();  // text without a token
    void liveChanged(bool live);
    void conversationChanged();
    void selectedTokenChanged(int row);
    void selectedExpertChanged(dsv2::ui::ExpertSelection selection);

private:
    void resetDerived();

    inspect::RoutingTable m_table;
    inspect::LoadMatrix m_countLoad;
    inspect::LoadMatrix m_weightLoad;
    // The conversation's answers as loads (small: layers × experts each), and their sum without
    // the shown message.
    struct ConversationEntry {
        qint64 messageId = 0;
        inspect::LoadMatrix count;
        inspect::LoadMatrix weight;
    };
    std::vector<ConversationEntry> m_conversation;
    inspect::LoadMatrix m_otherCountLoad;
    inspect::LoadMatrix m_otherWeightLoad;
    bool m_live = false;
    int m_selectedToken = -1;
    ExpertSelection m_selectedExpert;
};

}  // namespace dsv2::ui

Q_DECLARE_METATYPE(dsv2::ui::ExpertSelection)
Q_DECLARE_METATYPE(dsv2::inspect::RoutingTable)
Q_DECLARE_METATYPE(dsv2::inspect::TokenRow)
// What the adapter sends across threads: rows of a live answer, a conversation's stored answers.
Q_DECLARE_METATYPE(std::vector<dsv2::inspect::TokenRow>)
Q_DECLARE_METATYPE(std::vector<dsv2::inspect::RoutingTable>)
