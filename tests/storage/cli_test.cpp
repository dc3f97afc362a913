// `dsv2 history`, end to end: the binary run as a person would, on files made by the library.
#include "storage_test_util.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include <sys/stat.h>
#include <sys/wait.h>

using namespace dsv2::storage;
using namespace dsv2::storage::test;

namespace {

struct Run {
    int code = -1;
    std::string output;  // stdout and stderr
};

std::string quoted(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

Run runDsv2(const std::filesystem::path& db, const std::string& args) {
    const std::string command = quoted(DSV2_CLI_PATH) + " history --db " + quoted(db.string()) + " " + args + " 2>&1";
    Run run;
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) run.output.append(buf, n);
    const int status = pclose(pipe);
    run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

ConversationId fill(const std::filesystem::path& file) {
    auto store = openStore(file);
    const auto c =
        require(store.createConversation({.title = "Latent attention", .modelName = "DeepSeek-V2-Lite-Chat"}));
    const auto q = require(store.appendUserMessage(c, std::nullopt, "How does MLA compress the cache?"));
    auto w = require(store.beginAssistantMessage(c, q));
    w->setPromptRouting(makePromptRouting(0, 9));
    for (int i = 0; i < 20; ++i) w->append(tokenText(i), makeRecord(i));
    w->append(" It projects keys and values into a shared latent.");
    require(w->finish({.generatedTokens = 20, .tokensPerSecond = 12.5, .stopReason = "eos", .backend = "cpu"}));
    require(store.createConversation({.title = "Older chat"}));
    return c;
}

}  // namespace

TEST_CASE("list, show, search, check") {
    TempDir dir;
    const auto db = dir / "h.sqlite";
    const auto id = fill(db);
    auto r = runDsv2(db, "list");
    CHECK(r.code == 0);
    CHECK(contains(r.output, "Latent attention"));
    CHECK(contains(r.output, "Older chat"));
    r = runDsv2(db, "list --json");
    REQUIRE(r.code == 0);
    CHECK(nlohmann::json::parse(r.output).size() == 2);

    r = runDsv2(db, "show " + std::to_string(id));
    CHECK(r.code == 0);
    CHECK(contains(r.output, "How does MLA compress the cache?"));
    CHECK(contains(r.output, "shared latent."));
    CHECK(contains(r.output, "12.5 tok/s"));
    r = runDsv2(db, "show --last");  // "Older chat" was updated last
    CHECK(r.code == 0);
    CHECK(contains(r.output, "Older chat"));
    r = runDsv2(db, "show " + std::to_string(id) + " --json");
    REQUIRE(r.code == 0);
    auto store = openStore(db);
    std::ostringstream expected;
    require(store.exportConversations({id}, ExportFormat::Json, expected));
    CHECK(r.output == expected.str());
    r = runDsv2(db, "show 999");
    CHECK(r.code == 1);
    CHECK(contains(r.output, "conversation 999 does not exist"));

    r = runDsv2(db, "search 'latent keys'");
    CHECK(r.code == 0);
    CHECK(contains(r.output, "[latent]"));
    CHECK(contains(r.output, "Latent attention"));
    r = runDsv2(db, "search nothingmatches");
    CHECK(r.code == 0);
    CHECK(contains(r.output, "No messages match"));
    r = runDsv2(db, "search latent --since 2001-01-01 --until 2001-12-31");
    CHECK(contains(r.output, "No messages match"));
    r = runDsv2(db, "search latent --since yesterday");
    CHECK(r.code == 1);

    r = runDsv2(db, "check");
    CHECK(r.code == 0);
    CHECK(contains(r.output, "2 conversation(s), 2 message(s), 20 token record(s)"));
}

TEST_CASE("export, import, backup through the command line") {
    TempDir dir;
    const auto db = dir / "h.sqlite";
    fill(db);
    auto r = runDsv2(db, "export --all --format json -o " + quoted((dir / "all.json").string()));
    REQUIRE(r.code == 0);
    const auto copy = dir / "copy.sqlite";
    r = runDsv2(copy, "import " + quoted((dir / "all.json").string()));
    CHECK(r.code == 0);
    CHECK(contains(r.output, "imported 2 conversation(s), 2 message(s)"));
    r = runDsv2(copy, "export --all --format json -o " + quoted((dir / "again.json").string()));
    REQUIRE(r.code == 0);
    CHECK(fileBytes(dir / "all.json") == fileBytes(dir / "again.json"));
    // The answer's prompt routing (schema v4) went through the file into the copy.
    {
        auto copied = openStore(copy);
        const auto list = require(copied.listConversations());
        const auto chat =
            std::find_if(list.begin(), list.end(), [](const auto& c) { return c.title == "Latent attention"; });
        REQUIRE(chat != list.end());
        const auto path = require(copied.activePath(chat->id));
        REQUIRE(path.size() == 2);
        const auto prompt = require(copied.promptRouting(path[1].id));
        REQUIRE(prompt.has_value());
        CHECK(*prompt == makePromptRouting(0, 9));
    }

    for (const char* format : {"md", "txt", "html"}) {
        const auto out = dir / (std::string("last.") + format);
        r = runDsv2(db, std::string("export --last --format ") + format + " -o " + quoted(out.string()));
        CHECK(r.code == 0);
        CHECK(contains(fileBytes(out), "Older chat"));
    }
    r = runDsv2(db, "export --format pdf --all -o x");
    CHECK(r.code != 0);
    r = runDsv2(db, "export --all --format json -o " + quoted(db.string()));
    CHECK(r.code == 1);
    CHECK(contains(r.output, "the history database itself"));

    r = runDsv2(db, "backup " + quoted((dir / "backup.sqlite").string()));
    CHECK(r.code == 0);
    r = runDsv2(dir / "backup.sqlite", "check");
    CHECK(r.code == 0);
    r = runDsv2(db, "backup " + quoted((dir / "backup.sqlite").string()));
    CHECK(r.code == 1);
    CHECK(contains(r.output, "never overwrites"));
}

TEST_CASE("trash from the command line") {
    TempDir dir;
    const auto db = dir / "h.sqlite";
    const auto id = std::to_string(fill(db));
    CHECK(runDsv2(db, "purge " + id).code == 1);
    CHECK(runDsv2(db, "delete " + id).code == 0);
    CHECK_FALSE(contains(runDsv2(db, "list").output, "Latent attention"));
    CHECK(contains(runDsv2(db, "list --trash").output, "Latent attention"));
    CHECK(runDsv2(db, "restore " + id).code == 0);
    CHECK(contains(runDsv2(db, "list").output, "Latent attention"));
    CHECK(runDsv2(db, "delete " + id).code == 0);
    CHECK(runDsv2(db, "purge --trash").code == 0);
    CHECK(contains(runDsv2(db, "list --trash").output, "trash is empty"));
}

TEST_CASE("bad files get a clear message, exit code 1, and stay unchanged") {
    TempDir dir;
    const auto missing = dir / "missing.sqlite";
    auto r = runDsv2(missing, "list");
    CHECK(r.code == 1);
    CHECK(contains(r.output, "does not exist"));
    CHECK_FALSE(std::filesystem::exists(missing));

    const auto junk = dir / "junk.sqlite";
    writeFile(junk, std::string(5000, 'z'));
    r = runDsv2(junk, "check");
    CHECK(r.code == 1);
    CHECK(contains(r.output, "not a dsv2-chat history database"));
    CHECK(fileBytes(junk) == std::string(5000, 'z'));

    const auto newer = dir / "newer.sqlite";
    fill(newer);
    {
        sqlite3* raw = nullptr;
        REQUIRE(sqlite3_open(newer.c_str(), &raw) == SQLITE_OK);
        REQUIRE(sqlite3_exec(raw, "PRAGMA user_version = 1000", nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(raw);
    }
    const std::string bytes = fileBytes(newer);
    for (const char* command : {"list", "import /dev/null", "check"}) {
        r = runDsv2(newer, command);
        CHECK(r.code == 1);
        CHECK(contains(r.output, "newer dsv2-chat"));
    }
    CHECK(fileBytes(newer) == bytes);

    const auto locked = dir / "readonly.sqlite";
    fill(locked);
    REQUIRE(chmod(locked.c_str(), 0444) == 0);
    const std::string lockedBytes = fileBytes(locked);
    CHECK(runDsv2(locked, "list").code == 0);
    CHECK(runDsv2(locked, "search latent").code == 0);
    r = runDsv2(locked, "delete 1");
    CHECK(r.code == 1);
    CHECK(contains(r.output, "write-protected"));
    CHECK(fileBytes(locked) == lockedBytes);
}
