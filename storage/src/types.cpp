// Names of the enums as stored in the database and in exports (never change them: files depend on it).
#include "dsv2/storage/conversation_store.h"
#include "dsv2/storage/error.h"
#include "dsv2/storage/types.h"

#include <fmt/format.h>

namespace dsv2::storage {

const char* errorCodeName(ErrorCode code) {
    switch (code) {
    case ErrorCode::InvalidArgument: return "InvalidArgument";
    case ErrorCode::NotFound: return "NotFound";
    case ErrorCode::Busy: return "Busy";
    case ErrorCode::ReadOnly: return "ReadOnly";
    case ErrorCode::Corrupt: return "Corrupt";
    case ErrorCode::NotADatabase: return "NotADatabase";
    case ErrorCode::NewerSchema: return "NewerSchema";
    case ErrorCode::OlderSchema: return "OlderSchema";
    case ErrorCode::InvalidData: return "InvalidData";
    case ErrorCode::DiskFull: return "DiskFull";
    case ErrorCode::Io: return "Io";
    case ErrorCode::Internal: return "Internal";
    }
    return "Unknown";
}

std::string Error::toString() const { return fmt::format("{}: {}", errorCodeName(m_code), m_message); }

Error Error::withContext(const std::string& context) const { return {m_code, context + ": " + m_message}; }

const char* roleName(Role role) {
    switch (role) {
    case Role::System: return "system";
    case Role::User: return "user";
    case Role::Assistant: return "assistant";
    }
    return "user";
}

std::optional<Role> roleFromName(std::string_view name) {
    if (name == "system") return Role::System;
    if (name == "user") return Role::User;
    if (name == "assistant") return Role::Assistant;
    return std::nullopt;
}

const char* messageStatusName(MessageStatus status) {
    switch (status) {
    case MessageStatus::Complete: return "complete";
    case MessageStatus::Streaming: return "streaming";
    case MessageStatus::Interrupted: return "interrupted";
    case MessageStatus::Error: return "error";
    }
    return "complete";
}

std::optional<MessageStatus> messageStatusFromName(std::string_view name) {
    if (name == "complete") return MessageStatus::Complete;
    if (name == "streaming") return MessageStatus::Streaming;
    if (name == "interrupted") return MessageStatus::Interrupted;
    if (name == "error") return MessageStatus::Error;
    return std::nullopt;
}

std::optional<ExportFormat> exportFormatFromName(std::string_view name) {
    if (name == "md" || name == "markdown") return ExportFormat::Markdown;
    if (name == "txt" || name == "text") return ExportFormat::Text;
    if (name == "json") return ExportFormat::Json;
    if (name == "html") return ExportFormat::Html;
    return std::nullopt;
}

}  // namespace dsv2::storage
