#include "inspection_model.h"

#include <utility>

namespace dsv2::ui {

using inspect::LoadMatrix;
using inspect::LoadMeasure;
using inspect::RoutingTable;
using inspect::TokenRow;

InspectionModel::InspectionModel(QObject* parent) : QObject(parent) {
    qRegisterMetaType<dsv2::ui::ExpertSelection>();
    qRegisterMetaType<dsv2::inspect::RoutingTable>();
    qRegisterMetaType<dsv2::inspect::TokenRow>();
    qRegisterMetaType<std::vector<dsv2::inspect::TokenRow>>();
    qRegisterMetaType<std::vector<dsv2::inspect::RoutingTable>>();
}

void InspectionModel::resetDerived() {
    m_countLoad = LoadMatrix(m_table.layers, m_table.expertCount());
    m_weightLoad = m_countLoad;
    m_countLoad.add(m_table, LoadMeasure::Count);
    m_weightLoad.add(m_table, LoadMeasure::Weight);
    m_otherCountLoad = LoadMatrix();
    m_otherWeightLoad = LoadMatrix();
    for (const ConversationEntry& e : m_conversation) {
        if (e.messageId == m_table.messageId) continue;
        m_otherCountLoad.addMatrix(e.count);
        m_otherWeightLoad.addMatrix(e.weight);
    }
}

void InspectionModel::setTable(RoutingTable table) {
    const bool wasLive = m_live;
    m_live = false;
    m_table = std::move(table);
    m_selectedToken = -1;
    m_selectedExpert = {};
    resetDerived();
    Q_EMIT tableReset();
    Q_EMIT selectedTokenChanged(-1);
    Q_EMIT selectedExpertChanged(m_selectedExpert);
    if (wasLive) Q_EMIT liveChanged(false);
}

void InspectionModel::clear() { setTable(RoutingTable{}); }

void InspectionModel::beginLive(qint64 messageId, int layers, int topK, int experts,
                                std::vector<std::int32_t> modelLayers) {
    RoutingTable table;
    table.messageId = messageId;
    table.layers = layers;
    table.topK = topK;
    table.experts = experts;
    table.modelLayers = std::move(modelLayers);
    setTable(std::move(table));
    m_live = true;
    Q_EMIT liveChanged(true);
}

int InspectionModel::appendRows(std::vector<TokenRow> rows) {
    const int first = m_table.tokenCount();
    bool sawAnswer = first > 0 && !m_table.rows.back().isPrompt;
    for (TokenRow& row : rows) {
        if (!m_table.fits(row)) continue;
        if (row.isPrompt && sawAnswer) continue;
        if (!row.isPrompt) {
            sawAnswer = true;
            // The row's text is the next piece of the answer.
            row.textOffset = static_cast<std::uint32_t>(m_table.content.size());
            row.textLength = static_cast<std::uint32_t>(row.text.size());
            m_table.content += row.text;
        }
        m_table.rows.push_back(std::move(row));
    }
    const int count = m_table.tokenCount() - first;
    if (count == 0) return 0;
    m_countLoad.add(m_table, LoadMeasure::Count, inspect::TokenScope::All, first);
    m_weightLoad.add(m_table, LoadMeasure::Weight, inspect::TokenScope::All, first);
    Q_EMIT rowsAppended(first, count);
    return count;
}

void InspectionModel::appendText(const std::string& text) {
    if (text.empty()) return;
    m_table.content += text;
    Q_EMIT contentAppended();
}

void InspectionModel::finishLive() {
    if (!m_live) return;
    m_live = false;
    Q_EMIT liveChanged(false);
}

void InspectionModel::setConversationTables(const std::vector<RoutingTable>& tables) {
    m_conversation.clear();
    for (const RoutingTable& t : tables) {
        ConversationEntry e;
        e.messageId = t.messageId;
        e.count.add(t, LoadMeasure::Count);
        e.weight.add(t, LoadMeasure::Weight);
        m_conversation.push_back(std::move(e));
    }
    resetDerived();
    Q_EMIT conversationChanged();
}

int InspectionModel::conversationMessageCount() const {
    int n = m_table.isEmpty() ? 0 : 1;
    for (const ConversationEntry& e : m_conversation) n += e.messageId == m_table.messageId ? 0 : 1;
    return n;
}

const LoadMatrix& InspectionModel::messageLoad(LoadMeasure measure) const {
    return measure == LoadMeasure::Count ? m_countLoad : m_weightLoad;
}

LoadMatrix InspectionModel::conversationLoad(LoadMeasure measure) const {
    LoadMatrix sum = measure == LoadMeasure::Count ? m_otherCountLoad : m_otherWeightLoad;
    sum.addMatrix(messageLoad(measure));
    return sum;
}

LoadMatrix InspectionModel::load(LoadScope scope, LoadMeasure measure) const {
    return scope == LoadScope::Message ? messageLoad(measure) : conversationLoad(measure);
}

void InspectionModel::setSelectedToken(int row) {
    if (row < -1 || row >= m_table.tokenCount()) row = -1;
    if (row == m_selectedToken) return;
    m_selectedToken = row;
    Q_EMIT selectedTokenChanged(row);
}

void InspectionModel::setSelectedExpert(ExpertSelection selection) {
    if (!selection.isValid()) selection = {};
    if (selection == m_selectedExpert) return;
    m_selectedExpert = selection;
    Q_EMIT selectedExpertChanged(selection);
}

bool InspectionModel::isRoutedTo(int row, ExpertSelection selection) const {
    if (!selection.isValid()) return false;
    if (selection.layer >= 0) return m_table.routesTo(row, selection.layer, selection.expert);
    for (int l = 0; l < m_table.layers; ++l) {
        if (m_table.routesTo(row, l, selection.expert)) return true;
    }
    return false;
}

QVector<int> InspectionModel::tokensRoutedTo(ExpertSelection selection) const {
    QVector<int> rows;
    for (int t = 0; t < m_table.tokenCount(); ++t) {
        if (isRoutedTo(t, selection)) rows.push_back(t);
    }
    return rows;
}

QVector<TokenTextSpan> InspectionModel::answerTextSpans() const {
    QVector<TokenTextSpan> spans;
    const std::string& content = m_table.content;
    // Walk the content once, converting byte offsets to UTF-16 positions as we go.
    std::size_t bytePos = 0;
    qsizetype utf16Pos = 0;
    const auto advanceTo = [&](std::size_t target) {
        target = std::min(target, content.size());
        if (target > bytePos) {
            utf16Pos += QString::fromUtf8(content.data() + bytePos, static_cast<qsizetype>(target - bytePos)).size();
            bytePos = target;
        }
    };
    for (int t = 0; t < m_table.tokenCount(); ++t) {
        const TokenRow& row = m_table.rows[static_cast<std::size_t>(t)];
        if (row.isPrompt || row.textLength == 0 || row.textOffset < bytePos) continue;
        advanceTo(row.textOffset);
        const qsizetype start = utf16Pos;
        advanceTo(std::size_t{row.textOffset} + row.textLength);
        if (utf16Pos > start) spans.push_back({t, static_cast<int>(start), static_cast<int>(utf16Pos - start)});
    }
    return spans;
}

QVector<TokenTextSpan> InspectionModel::routedAnswerSpans(ExpertSelection selection) const {
    QVector<TokenTextSpan> spans;
    if (!selection.isValid()) return spans;
    for (const TokenTextSpan& s : answerTextSpans()) {
        if (isRoutedTo(s.row, selection)) spans.push_back(s);
    }
    return spans;
}

int InspectionModel::rowAtTextPosition(int pos) const {
    for (const TokenTextSpan& s : answerTextSpans()) {
        if (pos >= s.start && pos < s.start + s.length) return s.row;
    }
    return -1;
}

}  // namespace dsv2::ui
