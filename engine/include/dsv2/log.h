#pragma once
// The engine's logging: it never picks a logging library itself. The application installs a
// LogSink (dsv2-chat and dsv2 forward to spdlog); without one, messages at Warn and above go to
// stderr. Thread-safe: the sink is called from whatever thread logs and must be safe for that.

#include <memory>
#include <string>
#include <string_view>

namespace dsv2 {

enum class LogLevel { Trace, Debug, Info, Warn, Error };

class LogSink {
public:
    virtual ~LogSink() = default;
    virtual void log(LogLevel level, std::string_view message) = 0;
};

// Installs the process-wide sink (nullptr restores the stderr default).
void setLogSink(std::shared_ptr<LogSink> sink);
// Messages below this level are dropped before reaching the sink (default Info).
void setLogLevel(LogLevel level);
LogLevel logLevel();

void log(LogLevel level, std::string_view message);
inline void logDebug(std::string_view m) { log(LogLevel::Debug, m); }
inline void logInfo(std::string_view m) { log(LogLevel::Info, m); }
inline void logWarn(std::string_view m) { log(LogLevel::Warn, m); }
inline void logError(std::string_view m) { log(LogLevel::Error, m); }

}  // namespace dsv2
