#pragma once
// Logging for the executables: spdlog to the console (stderr) and, for the GUI, to a rotating file
// in the XDG state folder. Also connects the engine's LogSink to spdlog.

#include <filesystem>
#include <string>

namespace dsv2::app {

struct LoggingOptions {
    std::string appName = "dsv2";
    bool toFile = false;        // rotating file under logDirectory()
    bool verbose = false;       // debug level instead of info
    bool quietConsole = false;  // console shows warnings and errors only (CLI default)
};

// $XDG_STATE_HOME/dsv2-chat/log, or ~/.local/state/dsv2-chat/log.
std::filesystem::path logDirectory();

// Returns the log file path when toFile is set and the file could be opened, else empty.
std::filesystem::path initLogging(const LoggingOptions& options);

}  // namespace dsv2::app
