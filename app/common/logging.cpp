#include "logging.h"

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <vector>

#include "dsv2/log.h"

namespace dsv2::app {
namespace {

// Forwards engine messages into spdlog's default logger.
class SpdlogSink final : public dsv2::LogSink {
public:
    void log(dsv2::LogLevel level, std::string_view message) override {
        spdlog::log(toSpdlog(level), "[engine] {}", message);
    }

private:
    static spdlog::level::level_enum toSpdlog(dsv2::LogLevel level) {
        switch (level) {
        case dsv2::LogLevel::Trace: return spdlog::level::trace;
        case dsv2::LogLevel::Debug: return spdlog::level::debug;
        case dsv2::LogLevel::Info: return spdlog::level::info;
        case dsv2::LogLevel::Warn: return spdlog::level::warn;
        case dsv2::LogLevel::Error: return spdlog::level::err;
        }
        return spdlog::level::info;
    }
};

}  // namespace

std::filesystem::path logDirectory() {
    namespace fs = std::filesystem;
    if (const char* state = std::getenv("XDG_STATE_HOME"); state && *state && fs::path(state).is_absolute()) {
        return fs::path(state) / "dsv2-chat" / "log";
    }
    if (const char* home = std::getenv("HOME"); home && *home) {
        return fs::path(home) / ".local" / "state" / "dsv2-chat" / "log";
    }
    return fs::temp_directory_path() / "dsv2-chat" / "log";
}

std::filesystem::path initLogging(const LoggingOptions& options) {
    std::vector<spdlog::sink_ptr> sinks;
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    console->set_level(options.quietConsole && !options.verbose ? spdlog::level::warn
                       : options.verbose                        ? spdlog::level::debug
                                                                : spdlog::level::info);
    console->set_pattern("%^[%l]%$ %v");
    sinks.push_back(console);

    std::filesystem::path logFile;
    std::string fileError;
    if (options.toFile) {
        std::error_code ec;
        const auto dir = logDirectory();
        std::filesystem::create_directories(dir, ec);
        logFile = dir / (options.appName + ".log");
        try {
            // 5 MiB per file, 3 files kept.
            auto file = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(logFile.string(), 5 * 1024 * 1024, 3);
            file->set_level(spdlog::level::debug);
            file->set_pattern("%Y-%m-%d %H:%M:%S.%e [%l] [thread %t] %v");
            sinks.push_back(file);
        } catch (const spdlog::spdlog_ex& e) {
            fileError = e.what();
            logFile.clear();
        }
    }
    auto logger = std::make_shared<spdlog::logger>(options.appName, sinks.begin(), sinks.end());
    logger->set_level(spdlog::level::debug);
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(logger);
    spdlog::flush_every(std::chrono::seconds(2));
    if (!fileError.empty()) spdlog::warn("cannot write the log file ({}); logging to the console only", fileError);

    dsv2::setLogLevel(options.verbose ? dsv2::LogLevel::Debug : dsv2::LogLevel::Info);
    dsv2::setLogSink(std::make_shared<SpdlogSink>());
    return logFile;
}

}  // namespace dsv2::app
