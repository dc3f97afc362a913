// dsv2 history [--db FILE] (list | show ID|--last [--json] [--tree] | search QUERY | export ID|--all
// --format md|txt|json|html --out PATH | import FILE.json | backup PATH | check | delete ID |
// restore ID | purge ID|--trash): the saved conversations, through the same storage code as the GUI.
// Commands that only read open the file read-only, so they work on a write-protected file and never
// change a byte; the others open it for writing (and upgrade an older format first).
#if DSV2_HAVE_STORAGE

#include <cstdio>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "command.h"
#include "dsv2/storage/conversation_store.h"
#include "dsv2/storage/paths.h"

namespace dsv2::cli {
namespace {

namespace fs = std::filesystem;
using namespace dsv2::storage;

struct HistoryArgs {
    std::string db;
    // list
    bool json = false;
    bool trash = false;
    int limit = -1;
    // show / export / delete / restore / purge
    std::optional<ConversationId> id;
    bool last = false;
    bool tree = false;
    bool all = false;
    // search
    std::string query;
    std::optional<ConversationId> in;
    std::string since;
    std::string until;
    bool raw = false;
    // export / import / backup
    std::string format;
    std::string out;
    std::string file;
};

fs::path dbPath(const HistoryArgs& a) { return a.db.empty() ? defaultDatabasePath() : fs::path(a.db); }

std::string localTime(TimestampMs ms) {
    const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    localtime_r(&seconds, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
    return buf;
}

// "2025-01-31" at local midnight, in ms; `nextDay` gives the end of that day (for --until).
std::optional<TimestampMs> parseDay(const std::string& text, bool nextDay) {
    std::tm tm{};
    int y = 0, m = 0, d = 0;
    char tail = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 || d < 1 || d > 31) {
        return std::nullopt;
    }
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d + (nextDay ? 1 : 0);
    tm.tm_isdst = -1;
    const std::time_t t = std::mktime(&tm);
    if (t == static_cast<std::time_t>(-1)) return std::nullopt;
    return static_cast<TimestampMs>(t) * 1000;
}

// Viewing opens read-only; a file in an older format is upgraded first when it can be written.
Expected<ConversationStore> openForReading(const fs::path& file) {
    OpenOptions options;
    options.mode = OpenMode::ReadOnly;
    auto store = ConversationStore::open(file, options);
    if (!store && store.error().code() == ErrorCode::OlderSchema) return ConversationStore::open(file);
    return store;
}

int withStore(const HistoryArgs& a, bool write, const std::function<int(ConversationStore&)>& body) {
    const fs::path file = dbPath(a);
    auto store = write ? ConversationStore::open(file) : openForReading(file);
    if (!store) return fail(store.error().message());
    return body(*store);
}

std::optional<ConversationId> resolveId(ConversationStore& store, const HistoryArgs& a, int& code) {
    if (a.id && a.last) {
        code = fail("give a conversation id or --last, not both");
        return std::nullopt;
    }
    if (a.id) return a.id;
    if (!a.last) {
        code = fail("which conversation? give its id (see `dsv2 history list`) or --last");
        return std::nullopt;
    }
    auto last = store.lastConversation();
    if (!last) {
        code = fail(last.error().message());
        return std::nullopt;
    }
    if (!*last) {
        code = fail(store.path().string() + " holds no conversations yet");
        return std::nullopt;
    }
    return **last;
}

int runList(const HistoryArgs& a) {
    return withStore(a, false, [&](ConversationStore& store) {
        ListOptions options;
        options.onlyDeleted = a.trash;
        options.limit = a.limit;
        auto list = store.listConversations(options);
        if (!list) return fail(list.error().message());
        if (a.json) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& c : *list) {
                out.push_back({{"id", c.id},
                               {"title", c.title},
                               {"model", c.modelName},
                               {"createdAt", c.createdAt},
                               {"updatedAt", c.updatedAt},
                               {"messages", c.messageCount}});
                if (c.deletedAt) out.back()["deletedAt"] = *c.deletedAt;
            }
            std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
            return 0;
        }
        if (list->empty()) {
            std::cout << (a.trash ? "The trash is empty.\n" : "No conversations yet.\n");
            return 0;
        }
        std::printf("%6s  %-16s  %5s  %s\n", "ID", "UPDATED", "MSGS", "TITLE");
        for (const auto& c : *list) {
            std::string title = c.title.empty() ? "(untitled)" : c.title;
            if (!c.modelName.empty()) title += "  [" + c.modelName + "]";
            std::printf("%6lld  %-16s  %5d  %s\n", static_cast<long long>(c.id), localTime(c.updatedAt).c_str(),
                        c.messageCount, title.c_str());
        }
        return 0;
    });
}

const char* statusSuffix(MessageStatus status) {
    switch (status) {
    case MessageStatus::Interrupted: return " · interrupted";
    case MessageStatus::Streaming: return " · still being written";
    case MessageStatus::Error: return " · failed";
    case MessageStatus::Complete: return "";
    }
    return "";
}

void printMessage(const Message& m, const std::string& branch, const std::string& indent) {
    std::cout << indent << "[#" << m.id << " " << roleName(m.role) << " · " << localTime(m.createdAt) << branch
              << statusSuffix(m.status) << "]\n";
    if (indent.empty()) {
        std::cout << m.content;
        if (!m.content.empty() && m.content.back() != '\n') std::cout << '\n';
    } else {
        std::string::size_type start = 0;
        while (start < m.content.size()) {
            const auto end = m.content.find('\n', start);
            std::cout << indent << m.content.substr(start, end == std::string::npos ? std::string::npos : end - start)
                      << '\n';
            if (end == std::string::npos) break;
            start = end + 1;
        }
    }
    if (!m.errorText.empty()) std::cout << indent << "(error: " << m.errorText << ")\n";
    if (m.stats) {
        const auto& s = *m.stats;
        std::printf("%s(%lld tokens · %.1f tok/s · first token %.0f ms · stop: %s%s%s)\n", indent.c_str(),
                    static_cast<long long>(s.generatedTokens), s.tokensPerSecond, s.timeToFirstTokenMs,
                    s.stopReason.empty() ? "?" : s.stopReason.c_str(), s.backend.empty() ? "" : " · ",
                    s.backend.c_str());
    }
    std::cout << '\n';
}

int runShow(const HistoryArgs& a) {
    return withStore(a, false, [&](ConversationStore& store) {
        int code = 0;
        const auto id = resolveId(store, a, code);
        if (!id) return code;
        if (a.json) {
            auto result = store.exportConversations({*id}, ExportFormat::Json, std::cout);
            return result ? 0 : fail(result.error().message());
        }
        auto c = store.conversation(*id);
        if (!c) return fail(c.error().message());
        auto all = store.allMessages(*id);
        if (!all) return fail(all.error().message());
        auto path = store.activePath(*id);
        if (!path) return fail(path.error().message());

        std::cout << "# " << (c->meta.title.empty() ? "(untitled)" : c->meta.title) << "  (conversation " << c->id
                  << (c->deletedAt ? ", in the trash" : "") << ")\n";
        if (!c->meta.modelName.empty() || !c->meta.modelDir.empty()) {
            std::cout << "Model: " << c->meta.modelName << (c->meta.modelDir.empty() ? "" : "  " + c->meta.modelDir)
                      << '\n';
        }
        std::cout << "Created " << localTime(c->createdAt) << ", updated " << localTime(c->updatedAt) << '\n';
        if (!c->meta.systemPrompt.empty()) std::cout << "System prompt: " << c->meta.systemPrompt << '\n';
        std::cout << '\n';

        std::map<std::optional<MessageId>, std::vector<const Message*>> children;
        for (const auto& m : *all) children[m.parentId].push_back(&m);
        auto branchLabel = [&](const Message& m) -> std::string {
            const auto& siblings = children[m.parentId];
            if (siblings.size() < 2) return {};
            for (std::size_t i = 0; i < siblings.size(); ++i) {
                if (siblings[i]->id == m.id)
                    return " · version " + std::to_string(i + 1) + "/" + std::to_string(siblings.size());
            }
            return {};
        };
        if (!a.tree) {
            for (const auto& m : *path) printMessage(m, branchLabel(m), "");
            if (all->size() > path->size()) {
                std::cout << "(" << all->size() - path->size()
                          << " more messages on other branches: --tree shows them all)\n";
            }
            return 0;
        }
        std::map<MessageId, bool> active;
        for (const auto& m : *path) active[m.id] = true;
        std::function<void(std::optional<MessageId>, int)> walk = [&](std::optional<MessageId> parent, int depth) {
            for (const Message* m : children[parent]) {
                std::string indent(static_cast<std::size_t>(depth) * 2, ' ');
                printMessage(*m, branchLabel(*m) + (active.count(m->id) ? " · active" : ""), indent + "| ");
                walk(m->id, depth + 1);
            }
        };
        walk(std::nullopt, 0);
        return 0;
    });
}

// A snippet on one line: runs of whitespace (newlines of code blocks) become one space.
std::string oneLine(const std::string& text) {
    std::string out;
    bool space = false;
    for (char c : text) {
        const bool ws = c == '\n' || c == '\r' || c == '\t' || c == ' ';
        if (ws) {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += c;
    }
    return out;
}

int runSearch(const HistoryArgs& a) {
    SearchQuery q;
    q.text = a.query;
    q.rawFts = a.raw;
    q.conversationId = a.in;
    q.limit = a.limit > 0 ? a.limit : 20;
    if (!a.since.empty()) {
        q.from = parseDay(a.since, false);
        if (!q.from) return fail("--since wants a date like 2025-01-31, not \"" + a.since + "\"");
    }
    if (!a.until.empty()) {
        q.until = parseDay(a.until, true);
        if (!q.until) return fail("--until wants a date like 2025-01-31, not \"" + a.until + "\"");
    }
    const bool tty = isatty(STDOUT_FILENO) != 0;
    q.highlightOpen = tty ? "\033[1m" : "[";
    q.highlightClose = tty ? "\033[0m" : "]";
    return withStore(a, false, [&](ConversationStore& store) {
        auto hits = store.search(q);
        if (!hits) return fail(hits.error().message());
        if (a.json) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& h : *hits) {
                out.push_back({{"message", h.messageId},
                               {"conversation", h.conversationId},
                               {"title", h.conversationTitle},
                               {"role", roleName(h.role)},
                               {"createdAt", h.createdAt},
                               {"snippet", h.snippet},
                               {"rank", h.rank}});
            }
            std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
            return 0;
        }
        if (hits->empty()) {
            std::cout << "No messages match.\n";
            return 0;
        }
        for (const auto& h : *hits) {
            std::cout << "#" << h.messageId << " in \""
                      << (h.conversationTitle.empty() ? "(untitled)" : h.conversationTitle) << "\" (conversation "
                      << h.conversationId << ") · " << roleName(h.role) << " · " << localTime(h.createdAt) << "\n    "
                      << oneLine(h.snippet) << "\n";
        }
        return 0;
    });
}

int runExport(const HistoryArgs& a) {
    const auto format = exportFormatFromName(a.format);
    if (!format) return fail("--format must be md, txt, json or html");
    if (a.all == (a.id.has_value() || a.last)) return fail("give a conversation id, --last or --all");
    const fs::path file = dbPath(a);
    std::error_code ec;
    if (a.out != "-" && fs::exists(a.out) && fs::equivalent(a.out, file, ec)) {
        return fail("--out is the history database itself; choose another file");
    }
    return withStore(a, false, [&](ConversationStore& store) {
        std::vector<ConversationId> ids;
        if (!a.all) {
            int code = 0;
            const auto id = resolveId(store, a, code);
            if (!id) return code;
            ids.push_back(*id);
        }
        auto result =
            a.out == "-" ? store.exportConversations(ids, *format, std::cout) : store.exportToFile(ids, *format, a.out);
        if (!result) return fail(result.error().message());
        if (a.out != "-") {
            std::cerr << "exported "
                      << (a.all ? std::string("all conversations") : "conversation " + std::to_string(ids[0])) << " to "
                      << a.out << '\n';
        }
        return 0;
    });
}

int runImport(const HistoryArgs& a) {
    return withStore(a, true, [&](ConversationStore& store) {
        auto report = store.importJsonFile(a.file);
        if (!report) return fail(report.error().message());
        std::cout << "imported " << report->conversationsImported << " conversation(s), " << report->messagesImported
                  << " message(s)";
        if (report->conversationsSkipped > 0) std::cout << "; " << report->conversationsSkipped << " already present";
        std::cout << '\n';
        return 0;
    });
}

int runBackup(const HistoryArgs& a) {
    return withStore(a, false, [&](ConversationStore& store) {
        auto result = store.backupTo(a.file);
        if (!result) return fail(result.error().message());
        std::cout << "backed up " << store.path().string() << " to " << a.file << '\n';
        return 0;
    });
}

int runCheck(const HistoryArgs& a) {
    return withStore(a, false, [&](ConversationStore& store) {
        auto report = store.checkIntegrity();
        if (!report) return fail(report.error().message());
        std::cout << store.path().string() << ": format " << report->schemaVersion << ", " << report->conversations
                  << " conversation(s), " << report->messages << " message(s), " << report->tokenRecords
                  << " token record(s)\n";
        if (report->ok) {
            std::cout << "ok\n";
            return 0;
        }
        for (const auto& p : report->problems) std::cout << "problem: " << p << '\n';
        return fail(std::to_string(report->problems.size()) +
                    " problem(s) found; keep a copy (dsv2 history backup) before changing anything");
    });
}

int runTrash(const HistoryArgs& a, const std::string& action) {
    return withStore(a, true, [&](ConversationStore& store) {
        if (action == "purge" && a.all) {
            auto count = store.purgeDeleted();
            if (!count) return fail(count.error().message());
            std::cout << "purged " << *count << " conversation(s) from the trash\n";
            return 0;
        }
        if (!a.id) return fail("which conversation? give its id (see `dsv2 history list`)");
        auto result = action == "delete"    ? store.softDeleteConversation(*a.id)
                      : action == "restore" ? store.restoreConversation(*a.id)
                                            : store.purgeConversation(*a.id);
        if (!result) return fail(result.error().message());
        if (action == "delete") {
            std::cout << "moved conversation " << *a.id << " to the trash (`dsv2 history restore " << *a.id
                      << "` brings it back; `purge` removes it for good)\n";
        } else {
            std::cout << (action == "restore" ? "restored" : "purged") << " conversation " << *a.id << '\n';
        }
        return 0;
    });
}

void installHistory(CLI::App& root, CliContext& ctx) {
    auto* cmd =
        root.add_subcommand("history", "Saved conversations: list, show, search, export, import, backup, check");
    cmd->fallthrough();
    cmd->require_subcommand(1);
    auto a = std::make_shared<HistoryArgs>();
    cmd->add_option("--db", a->db, "History database (default: " + defaultDatabasePath().string() + ")");
    auto run = [&ctx](auto fn) { return [fn, &ctx] { ctx.exitCode = fn(); }; };

    auto* list = cmd->add_subcommand("list", "Conversations, most recent first");
    list->add_flag("--json", a->json, "As JSON");
    list->add_flag("--trash", a->trash, "The conversations in the trash");
    list->add_option("--limit", a->limit, "At most N");
    list->callback(run([a] { return runList(*a); }));

    auto* show = cmd->add_subcommand("show", "One conversation (its active branch)");
    show->add_option("id", a->id, "Conversation id");
    show->add_flag("--last", a->last, "The most recently updated conversation");
    show->add_flag("--json", a->json, "Full JSON (all branches, stats, routing of answers and prompts, logprobs)");
    show->add_flag("--tree", a->tree, "Every branch (edits and regenerations), indented");
    show->callback(run([a] { return runShow(*a); }));

    auto* search = cmd->add_subcommand("search", "Find messages (words must all match; \"phrases\", prefix*)");
    search->add_option("query", a->query, "What to look for")->required();
    search->add_option("--in", a->in, "Only in this conversation");
    search->add_option("--since", a->since, "From this day (YYYY-MM-DD)");
    search->add_option("--until", a->until, "Up to and including this day (YYYY-MM-DD)");
    search->add_option("--limit", a->limit, "At most N results (default 20)");
    search->add_flag("--raw", a->raw, "QUERY is SQLite FTS5 syntax (AND, OR, NOT, NEAR, ...)");
    search->add_flag("--json", a->json, "As JSON");
    search->callback(run([a] { return runSearch(*a); }));

    auto* exp =
        cmd->add_subcommand("export", "Write conversations as Markdown, text, JSON or a self-contained HTML page");
    exp->add_option("id", a->id, "Conversation id");
    exp->add_flag("--last", a->last, "The most recently updated conversation");
    exp->add_flag("--all", a->all, "Every conversation (not the trash)");
    exp->add_option("--format", a->format, "md, txt, json (full fidelity incl. routing, re-importable) or html")
        ->required();
    exp->add_option("-o,--out", a->out, "Output file (- for standard output)")->required();
    exp->callback(run([a] { return runExport(*a); }));

    auto* imp =
        cmd->add_subcommand("import", "Add the conversations of a JSON export (already present ones are skipped)");
    imp->add_option("file", a->file, "A file written by `dsv2 history export --format json`")->required();
    imp->callback(run([a] { return runImport(*a); }));

    auto* backup = cmd->add_subcommand("backup", "Copy the database with SQLite's online backup (safe while chatting)");
    backup->add_option("path", a->file, "New file to create (never overwritten)")->required();
    backup->callback(run([a] { return runBackup(*a); }));

    auto* check = cmd->add_subcommand("check", "Integrity check (read-only)");
    check->callback(run([a] { return runCheck(*a); }));

    auto* del = cmd->add_subcommand("delete", "Move a conversation to the trash (restorable)");
    del->add_option("id", a->id, "Conversation id")->required();
    del->callback(run([a] { return runTrash(*a, "delete"); }));
    auto* restore = cmd->add_subcommand("restore", "Bring a conversation back from the trash");
    restore->add_option("id", a->id, "Conversation id")->required();
    restore->callback(run([a] { return runTrash(*a, "restore"); }));
    auto* purge = cmd->add_subcommand("purge", "Remove a conversation in the trash for good");
    purge->add_option("id", a->id, "Conversation id (it must be in the trash)");
    purge->add_flag("--trash", a->all, "Empty the whole trash");
    purge->callback(run([a] { return runTrash(*a, "purge"); }));
}

}  // namespace

DSV2_CLI_COMMAND(60, installHistory);

}  // namespace dsv2::cli

#endif  // DSV2_HAVE_STORAGE
