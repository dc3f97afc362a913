#pragma once
// Conversions between storage records and the UI's Qt records, and the small rules that go with
// them (how a message's state is shown, how a conversation is titled from its first prompt).

#include <QString>
#include <QVector>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "backend/chat_types.h"
#include "dsv2/storage/types.h"

namespace dsv2::gui {

inline QString toQString(const std::string& s) { return QString::fromStdString(s); }
inline std::string toStd(const QString& s) { return s.toStdString(); }

ui::MessageRole toUiRole(storage::Role role);
ui::MessageStats toUiStats(const storage::GenerationStats& stats);
// Complete answers that were stopped by the user show as Stopped.
ui::MessageState toUiState(const storage::Message& message);
ui::MessageItem toUiMessage(const storage::Message& message);
ui::ConversationItem toUiConversation(const storage::ConversationSummary& summary);
ui::ConversationItem toUiConversation(const storage::Conversation& conversation);

// The sampling JSON of a conversation ({"temperature":0.7,"topP":0.95,...}); unset fields are absent.
nlohmann::json settingsToJson(const ui::GenerationSettings& settings);
ui::GenerationSettings settingsFromJson(const nlohmann::json& json, const std::string& systemPrompt);

// "Explain the KV cache in two sentences" from the first line of the prompt, at most ~60 characters,
// cut at a word boundary.
QString autoTitle(const QString& prompt);

// Fills siblingIndex/siblingCount of `path` from every message of the conversation (creation order).
void fillSiblingInfo(QVector<ui::MessageItem>& path, const std::vector<storage::Message>& all);

}  // namespace dsv2::gui
