#include "dsv2/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace dsv2 {
namespace {

std::mutex g_sinkMutex;
std::shared_ptr<LogSink> g_sink;  // guarded by g_sinkMutex
std::atomic<LogLevel> g_level{LogLevel::Info};

const char* levelName(LogLevel level) {
    switch (level) {
    case LogLevel::Trace: return "trace";
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warning";
    case LogLevel::Error: return "error";
    }
    return "?";
}

}  // namespace

void setLogSink(std::shared_ptr<LogSink> sink) {
    std::lock_guard lock(g_sinkMutex);
    g_sink = std::move(sink);
}

void setLogLevel(LogLevel level) { g_level.store(level); }
LogLevel logLevel() { return g_level.load(); }

void log(LogLevel level, std::string_view message) {
    if (level < g_level.load()) return;
    std::shared_ptr<LogSink> sink;
    {
        std::lock_guard lock(g_sinkMutex);
        sink = g_sink;
    }
    if (sink) {
        sink->log(level, message);
    } else if (level >= LogLevel::Warn) {
        std::fprintf(stderr, "dsv2 %s: %.*s\n", levelName(level), static_cast<int>(message.size()), message.data());
    }
}

}  // namespace dsv2
