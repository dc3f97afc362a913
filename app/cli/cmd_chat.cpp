// dsv2 chat --model DIR: an interactive terminal chat that streams the reply as it is generated.
// The conversation is kept across turns and the session's KV cache is reused (only the new turn
// is computed). Commands: /reset (new conversation), /quit. Ctrl-C stops the reply in progress.
//
// With --db FILE the conversation is stored as dsv2-chat stores it (same schema, same records:
// app/common/engine_records.h), streamed into the database while the reply is written.
// ChatLoop reports turns to a TurnObserver; the recorder is one, the terminal handling stays apart.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "command.h"
#include "engine_cli.h"
#include "sampling_cli.h"

#if DSV2_HAVE_STORAGE
#include "common/engine_records.h"
#include "dsv2/storage/conversation_store.h"
#include "dsv2/storage/streaming_writer.h"
#endif

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
    std::string db;  // --db FILE: persist the conversation
};

// Told what happens in the chat, in order: turnStarted, every event, then turnFailed on an error.
class TurnObserver {
public:
    virtual ~TurnObserver() = default;
    virtual void conversationReset() = 0;
    virtual void turnStarted(const std::string& userText) = 0;
    virtual void event(const GenerateEvent& e) = 0;
    virtual void turnFailed(const std::string& message) = 0;
};

class ChatLoop {
public:
    TurnObserver* observer = nullptr;

    ChatLoop(Engine& engine, Session& session, GenerateParams params, std::string system, bool showStats)
        : m_engine(engine),
          m_session(session),
          m_params(std::move(params)),
          m_system(std::move(system)),
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
        if (observer) observer->conversationReset();
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
        if (observer) observer->turnStarted(userText);
        auto result = m_session.generate(request, [&](const GenerateEvent& e) {
            if (observer) observer->event(e);
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
            if (observer) observer->turnFailed(result.status().message());
            m_turns.pop_back();
            out << '\n';
            std::cerr << "error: " << result.status().message() << '\n';
            // A full context is not fatal: the user can /reset.
            return result.status().code() == StatusCode::OutOfRange ||
                   result.status().code() == StatusCode::InvalidArgument;
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
                         static_cast<long long>(r.stats.promptTokens),
                         static_cast<long long>(r.stats.reusedPromptTokens), r.stats.prefillTokensPerSecond,
                         static_cast<long long>(cache.tokens), static_cast<long long>(cache.capacityTokens),
                         static_cast<double>(cache.bytesUsed) / 1024.0);
        }
        return true;
    }

    Engine& m_engine;
    Session& m_session;
    GenerateParams m_params;
    std::string m_system;
    bool m_showStats;
    std::vector<ChatTurn> m_turns;
};

#if DSV2_HAVE_STORAGE
// Stores the chat in the history database exactly as dsv2-chat does: a conversation created on
// the first prompt, user and assistant messages chained on the active branch, the answer streamed
// through a StreamingWriter (batched commits; a killed process leaves it marked interrupted).
class ChatRecorder final : public TurnObserver {
public:
    ChatRecorder(storage::ConversationStore& store, const Engine& engine, GenerateParams params, std::string system)
        : m_store(store), m_engine(engine), m_params(std::move(params)), m_system(std::move(system)) {}

    std::string lastError;  // the last storage failure, reported once per turn

    void conversationReset() override {
        m_conversation.reset();
        m_lastMessage.reset();
    }

    void turnStarted(const std::string& userText) override {
        m_writer.reset();
        m_atStart = true;
        if (!m_conversation) {
            storage::ConversationMeta meta;
            meta.title = app::autoTitle(userText);
            meta.modelDir = m_engine.info().path.string();
            meta.modelName = m_engine.info().name;
            meta.systemPrompt = m_system;
            meta.sampling = app::samplingToJson(m_params);
            auto id = m_store.createConversation(meta);
            if (!id) return report(id.error().toString());
            m_conversation = *id;
        }
        auto user = m_store.appendUserMessage(*m_conversation, m_lastMessage, userText);
        if (!user) return report(user.error().toString());
        m_lastMessage = *user;
        auto writer = m_store.beginAssistantMessage(*m_conversation, m_lastMessage);
        if (!writer) return report(writer.error().toString());
        m_writer = std::move(*writer);
        m_lastMessage = m_writer->messageId();
    }

    void event(const GenerateEvent& e) override {
        if (!m_writer) return;
        if (const auto* t = std::get_if<TokenEvent>(&e)) {
            m_writer->append(stripLeading(t->textDelta), app::toTokenRecord(*t, m_engine.info()));
        } else if (const auto* f = std::get_if<FinishedEvent>(&e)) {
            m_writer->append(stripLeading(f->textDelta));
            auto done = m_writer->finish(app::toStorageStats(f->stats, f->reason, m_engine.info().backend));
            if (!done) report(done.error().toString());
            m_writer.reset();
        }
    }

    void turnFailed(const std::string& message) override {
        if (!m_writer) return;
        (void)m_writer->fail(message);
        m_writer.reset();
    }

private:
    // The reply follows the template's "Assistant:"; the model's first space belongs to the template
    // (the GUI stores it the same way).
    std::string stripLeading(const std::string& delta) {
        if (!m_atStart) return delta;
        const size_t start = delta.find_first_not_of(' ');
        if (start == std::string::npos) return {};
        m_atStart = false;
        return delta.substr(start);
    }

    void report(const std::string& message) {
        lastError = message;
        std::cerr << "warning: the conversation is not being saved: " << message << '\n';
    }

    storage::ConversationStore& m_store;
    const Engine& m_engine;
    GenerateParams m_params;
    std::string m_system;
    std::optional<storage::ConversationId> m_conversation;
    std::optional<storage::MessageId> m_lastMessage;
    std::unique_ptr<storage::StreamingWriter> m_writer;
    bool m_atStart = true;
};
#endif

int runChat(const ChatArgs& a) {
    auto engine = a.engine.load();
    if (!engine.isOk()) return fail(engine.status().toString());
    if (!(*engine)->info().hasChatTemplate)
        return fail((*engine)->info().name + " has no chat template (tokenizer_config.json); use dsv2 generate");
    auto session = (*engine)->createSession();
    if (!session.isOk()) return fail(session.status().toString());
    const GenerateParams params = a.sampling.apply((*engine)->defaultParams());
    ChatLoop loop(**engine, **session, params, a.system, a.stats);
#if DSV2_HAVE_STORAGE
    std::optional<storage::ConversationStore> store;
    std::unique_ptr<ChatRecorder> recorder;
    if (!a.db.empty()) {
        auto opened = storage::ConversationStore::open(a.db);
        if (!opened) return fail(opened.error().toString());
        store.emplace(std::move(*opened));
        recorder = std::make_unique<ChatRecorder>(*store, **engine, params, a.system);
        loop.observer = recorder.get();
    }
#else
    if (!a.db.empty()) return fail("this dsv2 was built without SQLite, so --db is not available");
#endif
    return loop.run(std::cin, std::cout);
}

void installChat(CLI::App& root, CliContext& ctx) {
    auto* cmd = root.add_subcommand("chat", "Interactive chat in the terminal (streams replies)");
    auto args = std::make_shared<ChatArgs>();
    args->engine.addTo(*cmd);
    args->sampling.addTo(*cmd);
    cmd->add_option("--system", args->system, "System message at the start of the conversation");
    cmd->add_flag("--stats", args->stats, "Print speed and cache use after each reply (stderr)");
    cmd->add_option("--db", args->db, "Save the conversation in this history database (as dsv2-chat does)");
    cmd->callback([args, &ctx] { ctx.exitCode = runChat(*args); });
}

}  // namespace

DSV2_CLI_COMMAND(20, installChat);

}  // namespace dsv2::cli
