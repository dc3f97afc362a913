#pragma once
// The dsv2 command line is a set of subcommands, one per file (cmd_*.cpp). Each file registers an
// installer with DSV2_CLI_COMMAND; main() runs them all against the root CLI11 app. A command's
// callback stores its exit code in the context rather than calling exit().

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace dsv2::cli {

struct CliContext {
    int exitCode = 0;
    bool verbose = false;
};

using CommandInstaller = void (*)(CLI::App& root, CliContext& ctx);

struct CommandEntry {
    int order;  // position in --help
    CommandInstaller install;
};

std::vector<CommandEntry>& commandRegistry();
bool registerCommand(int order, CommandInstaller installer);

// Prints "error: <message>" to stderr and returns the exit code for failures (1).
int fail(const std::string& message);

}  // namespace dsv2::cli

#define DSV2_CLI_COMMAND(order, installer) \
    static const bool dsv2_cli_registered_##installer = ::dsv2::cli::registerCommand(order, installer)
