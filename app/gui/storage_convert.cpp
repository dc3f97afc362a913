#include "storage_convert.h"

#include <QHash>
#include <QRegularExpression>

namespace dsv2::gui {

ui::MessageRole toUiRole(storage::Role role) {
    switch (role) {
    case storage::Role::System: return ui::MessageRole::System;
    case storage::Role::User: return ui::MessageRole::User;
    case storage::Role::Assistant: return ui::MessageRole::Assistant;
    }
    return ui::MessageRole::User;
}

ui::MessageStats toUiStats(const storage::GenerationStats& s) {
    ui::MessageStats out;
    out.promptTokens = s.promptTokens;
    out.generatedTokens = s.generatedTokens;
    out.tokensPerSecond = s.tokensPerSecond;
    out.timeToFirstTokenMs = s.timeToFirstTokenMs;
    out.totalMs = s.totalMs;
    out.stopReason = toQString(s.stopReason);
    out.backend = toQString(s.backend);
    return out;
}

ui::MessageState toUiState(const storage::Message& m) {
    switch (m.status) {
    case storage::MessageStatus::Streaming: return ui::MessageState::Streaming;
    case storage::MessageStatus::Interrupted: return ui::MessageState::Interrupted;
    case storage::MessageStatus::Error: return ui::MessageState::Failed;
    case storage::MessageStatus::Complete: break;
    }
    if (m.stats && m.stats->stopReason == "cancelled") return ui::MessageState::Stopped;
    return ui::MessageState::Complete;
}

ui::MessageItem toUiMessage(const storage::Message& m) {
    ui::MessageItem item;
    item.id = m.id;
    item.parentId = m.parentId.value_or(0);
    item.role = toUiRole(m.role);
    item.content = toQString(m.content);
    item.state = toUiState(m);
    item.errorText = toQString(m.errorText);
    item.createdAtMs = m.createdAt;
    if (m.stats) item.stats = toUiStats(*m.stats);
    return item;
}

ui::ConversationItem toUiConversation(const storage::ConversationSummary& s) {
    return {.id = s.id,
            .title = toQString(s.title),
            .modelName = toQString(s.modelName),
            .updatedAtMs = s.updatedAt,
            .messageCount = s.messageCount};
}

ui::ConversationItem toUiConversation(const storage::Conversation& c) {
    return {.id = c.id,
            .title = toQString(c.meta.title),
            .modelName = toQString(c.meta.modelName),
            .updatedAtMs = c.updatedAt,
            .messageCount = 0};
}

nlohmann::json settingsToJson(const ui::GenerationSettings& s) {
    nlohmann::json j = nlohmann::json::object();
    if (s.temperature) j["temperature"] = *s.temperature;
    if (s.topP) j["topP"] = *s.topP;
    if (s.topK) j["topK"] = *s.topK;
    if (s.maxTokens) j["maxTokens"] = *s.maxTokens;
    if (s.repetitionPenalty) j["repetitionPenalty"] = *s.repetitionPenalty;
    if (s.seed) j["seed"] = *s.seed;
    return j;
}

ui::GenerationSettings settingsFromJson(const nlohmann::json& j, const std::string& systemPrompt) {
    ui::GenerationSettings s;
    s.systemPrompt = toQString(systemPrompt);
    if (!j.is_object()) return s;
    // A hand-edited or imported value of the wrong type is ignored rather than trusted.
    auto number = [&](const char* key) -> std::optional<double> {
        auto it = j.find(key);
        if (it == j.end() || !it->is_number()) return std::nullopt;
        return it->get<double>();
    };
    s.temperature = number("temperature");
    s.topP = number("topP");
    s.repetitionPenalty = number("repetitionPenalty");
    if (auto k = number("topK")) s.topK = static_cast<int>(*k);
    if (auto m = number("maxTokens")) s.maxTokens = static_cast<int>(*m);
    if (auto it = j.find("seed"); it != j.end() && it->is_number_unsigned()) s.seed = it->get<quint64>();
    return s;
}

QString autoTitle(const QString& prompt) {
    constexpr int kMax = 60;
    QString line;
    for (const QString& l : prompt.split(QLatin1Char('\n'))) {
        line = l.simplified();
        if (!line.isEmpty()) break;
    }
    // Markdown decoration at the start says nothing about the topic.
    static const QRegularExpression leading(QStringLiteral("^[#>*`\\-\\s]+"));
    line.remove(leading);
    if (line.isEmpty()) return QStringLiteral("New chat");
    if (line.size() <= kMax) return line;
    int cut = line.lastIndexOf(QLatin1Char(' '), kMax);
    if (cut < kMax / 2) cut = kMax;
    return line.left(cut).trimmed() + QChar(0x2026);
}

void fillSiblingInfo(QVector<ui::MessageItem>& path, const std::vector<storage::Message>& all) {
    QHash<qint64, QVector<qint64>> children;  // parent (0: roots) -> children in creation order
    for (const storage::Message& m : all) children[m.parentId.value_or(0)].append(m.id);
    for (ui::MessageItem& item : path) {
        const QVector<qint64> ids = children.value(item.parentId);
        const auto index = ids.indexOf(item.id);
        item.siblingIndex = index < 0 ? 0 : static_cast<int>(index);
        item.siblingCount = std::max<int>(1, static_cast<int>(ids.size()));
    }
}

}  // namespace dsv2::gui
