// dsv2: the command-line face of the engine (generate, chat, tokenize, logits, bench, inspect, ...).
#include <algorithm>
#include <iostream>
#include <string_view>

#include "command.h"
#include "common/logging.h"
#include "dsv2/version.h"

namespace dsv2::cli {

std::vector<CommandEntry>& commandRegistry() {
    static std::vector<CommandEntry> entries;
    return entries;
}

bool registerCommand(int order, CommandInstaller installer) {
    commandRegistry().push_back({order, installer});
    return true;
}

int fail(const std::string& message) {
    std::cerr << "error: " << message << '\n';
    return 1;
}

}  // namespace dsv2::cli

int main(int argc, char** argv) {
    using namespace dsv2::cli;
    CLI::App app{"dsv2: DeepSeek-V2 inference engine command line"};
    app.require_subcommand(0, 1);
    app.fallthrough();
    CliContext ctx;
    bool showVersion = false;
    app.add_flag("--version", showVersion, "Print the version, build and GPUs, then exit");
    app.add_flag("-v,--verbose", ctx.verbose, "Verbose logging to stderr");

    // Logging is needed inside subcommand callbacks, which CLI11 runs during parse(): look for the
    // verbose flag by hand first.
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "-v" || arg == "--verbose") ctx.verbose = true;
    }
    dsv2::app::initLogging({.appName = "dsv2", .toFile = false, .verbose = ctx.verbose, .quietConsole = true});

    auto& entries = commandRegistry();
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
    for (const auto& entry : entries) entry.install(app, ctx);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (showVersion) {
        std::cout << dsv2::versionReport("dsv2");
        return 0;
    }
    if (app.get_subcommands().empty()) {
        std::cout << app.help();
        return 0;
    }
    return ctx.exitCode;
}
