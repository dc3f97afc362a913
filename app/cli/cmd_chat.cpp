// dsv2 chat --model DIR: an interactive terminal chat that streams the reply as it is generated.
// The conversation is kept across turns and the session's KV cache is reused (only the new turn
// is computed). Commands: /reset (new conversation), /quit. Ctrl-C stops the reply in progress.
//
// The loop lives in ChatLoop so that later options (--db: persist the conversation) can hook
// into the places where a turn starts and finishes without touching the terminal handling.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "command.h"
#include "engine_cli.h"
#include "sampling_cli.h"

namespace dsv2::cli {
namespace {

std::atomic<bool> g_interrupt{false};
static_assert(std::atomic<bool>::is_always_lock_free, "touched from a signal handler");
extern "C" void onInterrupt(int) { g_interrupt.store(true); }

struct ChatArgs {
    EngineCliOptions engine;
    SamplingCliOptions sampling;
    std::string system;
    bool stats = false;
};

class ChatLoop {
public:
    // Hooks for extensions (storage): called with the whole conversation after each change.
    std::function<void(const std::vector<ChatTurn>&)> onConversationChanged;

    ChatLoop(Engine& engine, Session& session, GenerateParams params, std::string system, bool showStats)
        : m_engine(engine), m_session(session), m_params(std::move(params)), m_system(std::move(system)),
          m_showStats(showStats) {
        reset();
    }

    int run(std::istream& in, std::ostream& out) {
        out << "dsv2 chat: " << m_engine.info().name << " on " << m_engine.info().backend
            << ". /reset starts over, /quit leaves, Ctrl-C stops a reply.\n";
        std::string line;
        for (;;) {
            out << "\n> " << std::flush;
            if (!std::getline(in, line)) break;
            if (line == "/quit" || line == "/exit") break;
            if (line == "/reset") {
                reset();
                out << "(new conversation)\n";
                continue;
            }
            if (line.empty()) continue;
            if (line[0] == '/') {
                out << "commands: /reset, /quit\n";
                continue;
            }
            if (!turn(line, out)) return 1;
        }
        out << '\n';
        return 0;
    }

private:
    void reset() {
        m_turns.clear();
        if (!m_system.empty()) m_turns.push_back({"system", m_system});
        m_session.reset();
        if (onConversationChanged) onConversationChanged(m_turns);
    }

    bool turn(const std::string& userText, std::ostream& out) {
        m_turns.push_back({"user", userText});
        GenerateRequest request;
        request.messages = m_turns;
        request.params = m_params;
        request.cancel = &g_interrupt;
        g_interrupt = false;
        // Ctrl-C stops the reply while one is generated; at the prompt it ends the program as usual.
        auto previous = std::signal(SIGINT, onInterrupt);
        bool first = true;
        auto result = m_session.generate(request, [&](const GenerateEvent& e) {
            const std::string* delta = nullptr;
            if (const auto* t = std::get_if<TokenEvent>(&e)) delta = &t->textDelta;
            if (const auto* f = std::get_if<FinishedEvent>(&e)) delta = &f->textDelta;
            if (!delta) return;
            // The reply follows "Assistant:"; its leading space is the template's, not content.
            std::string_view text = *delta;
            if (first && !text.empty()) {
                text.remove_prefix(std::min(text.find_first_not_of(' '), text.size()));
                first = text.empty();
            }
            out << text << std::flush;
        });
        std::signal(SIGINT, previous);
        if (!result.isOk()) {
            m_turns.pop_back();
            out << '\n';
            std::cerr << "error: " << result.status().message() << '\n';
            // A full context is not fatal: the user can /reset.
            return result.status().code() == StatusCode::OutOfRange || result.status().code() == StatusCode::InvalidArgument;
        }
        const GenerateResult& r = *result;
        std::string reply = r.text;
        reply.erase(0, reply.find_first_not_of(' '));
        m_turns.push_back({"assistant", reply});
        if (r.reason == StopReason::Cancelled) out << " [stopped]";
        if (r.reason == StopReason::ContextFull) out << " [context full: /reset to start over]";
        out << '\n';
        if (m_showStats) {
            const CacheUsage cache = m_session.cacheUsage();
            std::fprintf(stderr,
                         "[%lld tokens at %.1f tok/s; prompt %lld (%lld reused) at %.1f tok/s; cache %lld/%lld tokens, "
                         "%.1f KiB]\n",
                         static_cast<long long>(r.stats.generatedTokens), r.stats.decodeTokensPerSecond,
                         static_cast<long long>(r.stats.promptTokens), static_cast<long long>(r.stats.reusedPromptTokens),
                         r.stats.prefillTokensPerSecond, static_cast<long long>(cache.tokens),
                         static_cast<long long>(cache.capacityTokens), static_cast<double>(cache.bytesUsed) / 1024.0);
        }
        if (onConversationChanged) onConversationChanged(m_turns);
        return true;
    }

    Engine& m_engine;
    Session& m_session;
    GenerateParams m_params;
    std::string m_system;
    bool m_showStats;
    std::vector<ChatTurn> m_turns;
};

int runChat(const ChatArgs& a) {
    auto engine = a.engine.load();
    if (!engine.isOk()) return fail(engine.status().toString());
    if (!(*engine)->info().hasChatTemplate)
        return fail((*engine)->info().name + " has no chat template (tokenizer_config.json); use dsv2 generate");
    auto session = (*engine)->createSession();
    if (!session.isOk()) return fail(session.status().toString());
    ChatLoop loop(**engine, **session, a.sampling.apply((*engine)->defaultParams()), a.system, a.stats);
    return loop.run(std::cin, std::cout);
}

void installChat(CLI::App& root, CliContext& ctx) {
    auto* cmd = root.add_subcommand("chat", "Interactive chat in the terminal (streams replies)");
    auto args = std::make_shared<ChatArgs>();
    args->engine.addTo(*cmd);
    args->sampling.addTo(*cmd);
    cmd->add_option("--system", args->system, "System message at the start of the conversation");
    cmd->add_flag("--stats", args->stats, "Print speed and cache use after each reply (stderr)");
    cmd->callback([args, &ctx] { ctx.exitCode = runChat(*args); });
}

}  // namespace

DSV2_CLI_COMMAND(20, installChat);

}  // namespace dsv2::cli
