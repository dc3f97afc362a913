// dsv2 serve --model DIR [--host 127.0.0.1] [--port 8000] [--backend auto|cpu|cuda] [--api-key KEY]
// [--served-model-name NAME] [--enable-return-routed-experts] [--max-waiting N] ...: an
// OpenAI-compatible server (docs/server.md). Prints "listening on http://HOST:PORT" on stdout once
// it accepts connections; SIGINT/SIGTERM stop it cleanly (the running generation is cancelled).
#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <thread>

#include "command.h"
#include "common/logging.h"
#include "engine_cli.h"
#include "server/openai_server.h"

namespace dsv2::cli {
namespace {

struct ServeArgs {
    EngineCliOptions engine;
    server::ServerOptions server;
    std::string apiKeyFile;
};

// The signal handler only writes a byte to a pipe (about all a handler may do); a watcher thread
// reads it and calls stop() from ordinary code. A handler rather than sigwait: threads started
// before this command (spdlog's flusher) would otherwise take the signal with its default action.
int g_stopPipe[2] = {-1, -1};

extern "C" void onStopSignal(int signal) {
    const char byte = static_cast<char>(signal);
    [[maybe_unused]] const ssize_t n = write(g_stopPipe[1], &byte, 1);
}

int runServe(ServeArgs& a, bool verbose) {
    // A server's log is its requests: info level on the console (the CLI's default is warnings).
    app::initLogging({.appName = "dsv2", .toFile = false, .verbose = verbose, .quietConsole = false});
    if (pipe(g_stopPipe) != 0) return fail("cannot create the shutdown pipe");
    struct sigaction action {};
    action.sa_handler = onStopSignal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not a dead server

    auto loaded = a.engine.load();
    if (!loaded.isOk()) return fail(loaded.status().toString());
    Engine& engine = **loaded;
    auto session = engine.createSession();
    if (!session.isOk()) return fail(session.status().toString());

    server::OpenAiServer srv(engine, **session, a.server);
    auto port = srv.bind();
    if (!port.isOk()) return fail(port.status().message());

    std::thread watcher([&srv] {
        char signal = 0;
        if (read(g_stopPipe[0], &signal, 1) == 1 && signal != 0) {
            std::fprintf(stderr, "dsv2 serve: %s, stopping\n", signal == SIGINT ? "SIGINT" : "SIGTERM");
            srv.stop();
        }
    });
    std::printf("dsv2 serve: model '%s' (%s), context %lld tokens\nlistening on http://%s:%d\n",
                srv.model().name.c_str(), engine.info().backend.c_str(), static_cast<long long>(srv.model().context),
                a.server.host.c_str(), *port);
    std::fflush(stdout);
    const Status served = srv.serve();
    // serve() also returns when listening failed: wake the watcher (a zero byte: no signal).
    const char wake = 0;
    [[maybe_unused]] const ssize_t n = write(g_stopPipe[1], &wake, 1);
    watcher.join();
    if (!served.isOk()) return fail(served.toString());
    std::fprintf(stderr, "dsv2 serve: stopped\n");
    return 0;
}

void installServe(CLI::App& root, CliContext& ctx) {
    auto* cmd = root.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API (docs/server.md)");
    auto args = std::make_shared<ServeArgs>();
    args->engine.addTo(*cmd);
    server::ServerOptions& s = args->server;
    cmd->add_option("--host", s.host, "Address to listen on (loopback by default; 0.0.0.0 for every interface)")
        ->capture_default_str();
    cmd->add_option("--port", s.port, "Port (0 = any free port, printed on stdout)")
        ->check(CLI::Range(0, 65535))
        ->capture_default_str();
    cmd->add_option("--api-key", s.apiKey, "Require 'Authorization: Bearer KEY' on /v1/ requests");
    cmd->add_option("--api-key-file", args->apiKeyFile, "Read the API key from this file (keeps it out of ps)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--served-model-name", s.servedModelName, "Model id in /v1/models (default: the folder's name)");
    cmd->add_flag("--enable-return-routed-experts", s.returnRouting,
                  "Return every token's routed experts (routed_experts, as vLLM does)");
    cmd->add_option("--max-waiting", s.maxWaiting, "Requests that may wait while one generates; more get 429")
        ->check(CLI::Range(0, 1000))
        ->capture_default_str();
    cmd->add_option("--max-body-bytes", s.maxBodyBytes, "Largest request body; larger ones get 413")
        ->check(CLI::Range(size_t{1024}, size_t{1} << 30))
        ->capture_default_str();
    cmd->add_option("--read-timeout", s.readTimeoutSeconds, "Seconds a client may take to send its request")
        ->check(CLI::Range(1, 3600))
        ->capture_default_str();
    cmd->add_option("--http-threads", s.threads, "Connections served at once")
        ->check(CLI::Range(2, 256))
        ->capture_default_str();
    cmd->callback([args, &ctx] {
        if (!args->apiKeyFile.empty()) {
            std::FILE* f = std::fopen(args->apiKeyFile.c_str(), "rb");
            if (!f) {
                ctx.exitCode = fail("cannot read --api-key-file " + args->apiKeyFile);
                return;
            }
            char buf[512];
            const size_t n = std::fread(buf, 1, sizeof buf, f);
            std::fclose(f);
            std::string key(buf, n);
            key.erase(key.find_last_not_of(" \t\r\n") + 1);
            args->server.apiKey = key;
        }
        ctx.exitCode = runServe(*args, ctx.verbose);
    });
}

}  // namespace

DSV2_CLI_COMMAND(15, installServe);

}  // namespace dsv2::cli
