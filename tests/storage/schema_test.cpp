// Migrations from every earlier version, and files we must refuse without changing a byte: not
// SQLite, truncated, damaged, newer, another program's, write-protected, locked.
#include "storage_test_util.h"

#include "schema.h"
#include "sqlite_db.h"
#include "token_codec.h"

#include <sqlite3.h>

#include <sys/stat.h>

using namespace dsv2::storage;
using namespace dsv2::storage::test;
namespace detail = dsv2::storage::detail;

namespace {

detail::Database rawOpen(const std::filesystem::path& file) {
    return detail::Database(file.string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, file);
}

// Writes the same small history with the SQL of schema version `version` (what an old build wrote).
void writeHistoryAtVersion(const std::filesystem::path& file, int version) {
    auto db = rawOpen(file);
    detail::migrate(db, version);
    REQUIRE(db.queryInt("PRAGMA user_version") == version);
    if (version < 1) return;
    db.exec(
        "INSERT INTO conversations(id, uuid, title, created_at, updated_at, model_name, system_prompt, "
        "sampling_json) VALUES (1, 'uuid-old', 'Old chat', 1000, 5000, 'DeepSeek-V2-Lite', 'Be brief.', "
        "'{\"temperature\":0.5}')");
    db.exec(
        "INSERT INTO messages(id, conversation_id, parent_id, role, content, created_at, updated_at) VALUES "
        "(1, 1, NULL, 'user', 'What is a mixture of experts?', 1000, 1000),"
        "(2, 1, 1, 'assistant', 'A router picks experts per token.', 2000, 2000),"
        "(3, 1, NULL, 'user', 'Explain multi-head latent attention', 3000, 3000),"
        "(4, 1, 3, 'assistant', 'It compresses keys and values.', 4000, 4000)");
    db.exec("UPDATE messages SET active_child_id = 2 WHERE id = 1");
    db.exec("UPDATE messages SET active_child_id = 4 WHERE id = 3");
    db.exec("UPDATE conversations SET active_root_id = 3 WHERE id = 1");
    if (version < 2) return;
    db.exec(
        "INSERT INTO generation_stats(message_id, generated_tokens, tokens_per_second, stop_reason, backend) "
        "VALUES (4, 7, 31.5, 'eos', 'cpu')");
    const std::vector<TokenRecord> tokens = {makeRecord(0), makeRecord(1)};
    detail::Statement chunk(db,
                            "INSERT INTO token_chunks(message_id, seq, first_token, token_count, data) "
                            "VALUES (4, 0, 0, 2, ?)");
    chunk.bindBlob(1, detail::encodeTokenRecords(tokens)).run();
}

void expectRefused(const std::filesystem::path& file, ErrorCode code, const std::string& phrase,
                   OpenMode mode = OpenMode::ReadWrite) {
    OpenOptions options;
    options.mode = mode;
    options.busyTimeout = std::chrono::milliseconds(100);
    auto store = ConversationStore::open(file, options);
    REQUIRE_FALSE(store.hasValue());
    CHECK(store.error().code() == code);
    CHECK_MESSAGE(store.error().message().find(phrase) != std::string::npos, store.error().message());
    CHECK_MESSAGE(store.error().message().find(file.string()) != std::string::npos, "the message names the file");
}

}  // namespace

TEST_CASE("a new file gets the latest schema, WAL, our application id") {
    TempDir dir;
    const auto file = dir / "sub" / "folder" / "history.sqlite";  // folders are created
    {
        auto store = openStore(file);
        CHECK(ConversationStore::latestSchemaVersion() == detail::latestSchemaVersion());
    }
    auto db = rawOpen(file);
    CHECK(db.queryInt("PRAGMA user_version") == detail::latestSchemaVersion());
    CHECK(db.queryInt("PRAGMA application_id") == detail::kApplicationId);
    CHECK(db.queryText("PRAGMA journal_mode") == "wal");
}

TEST_CASE("migrations: every earlier version upgrades to the latest and keeps its data") {
    for (int from = 0; from < detail::latestSchemaVersion(); ++from) {
        CAPTURE(from);
        TempDir dir;
        const auto file = dir / "history.sqlite";
        writeHistoryAtVersion(file, from);
        const std::string before = fileBytes(file);

        auto store = openStore(file);
        {
            auto db = rawOpen(file);
            CHECK(db.queryInt("PRAGMA user_version") == detail::latestSchemaVersion());
        }
        if (from >= 1) {
            // The old file was copied before the upgrade, byte for byte the same data.
            const auto backup = dir / ("history.sqlite.v" + std::to_string(from) + ".bak");
            REQUIRE(std::filesystem::exists(backup));
            auto old = rawOpen(backup);
            CHECK(old.queryInt("PRAGMA user_version") == from);
            CHECK(old.queryInt("SELECT count(*) FROM messages") == 4);
            CHECK_FALSE(before.empty());

            const auto c = require(store.conversation(1));
            CHECK(c.uuid == "uuid-old");
            CHECK(c.meta.title == "Old chat");
            CHECK(c.meta.sampling["temperature"] == 0.5);
            CHECK(c.meta.settings == nlohmann::json::object());  // added by v2 with its default
            const auto path = require(store.activePath(1));
            REQUIRE(path.size() == 2);
            CHECK(path[0].id == 3);
            CHECK(path[1].content == "It compresses keys and values.");
            // Text written before full-text search existed is searchable after the upgrade.
            SearchQuery q;
            q.text = "router experts";
            const auto hits = require(store.search(q));
            REQUIRE(hits.size() == 1);
            CHECK(hits[0].messageId == 2);
            // v4: answers stored before it have no prompt routing, and the table takes new rows.
            CHECK_FALSE(require(store.promptRouting(4)).has_value());
            if (from >= 2) {
                const auto m = require(store.message(4));
                REQUIRE(m.stats.has_value());
                CHECK(m.stats->tokensPerSecond == 31.5);
                CHECK(require(store.tokens(4)) == std::vector<TokenRecord>{makeRecord(0), makeRecord(1)});
            }
        } else {
            CHECK(require(store.listConversations()).empty());
        }
        const auto report = require(store.checkIntegrity());
        CHECK_MESSAGE(report.ok, (report.problems.empty() ? "" : report.problems.front()));
        // The upgraded file works like a new one.
        const auto id = require(store.createConversation({.title = "new"}));
        require(store.appendUserMessage(id, std::nullopt, "hello after upgrade"));
    }
}

TEST_CASE("a migration that fails is rolled back and leaves the previous version") {
    TempDir dir;
    const auto file = dir / "history.sqlite";
    writeHistoryAtVersion(file, 2);
    {
        // Something already owns the name the v3 migration needs: its CREATE fails.
        auto db = rawOpen(file);
        db.exec("CREATE TABLE messages_fts(x)");
    }
    auto store = ConversationStore::open(file);
    REQUIRE_FALSE(store.hasValue());
    CHECK(store.error().message().find("schema version 3") != std::string::npos);
    auto db = rawOpen(file);
    CHECK(db.queryInt("PRAGMA user_version") == 2);
    CHECK(db.queryInt("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'") == 0);
    CHECK(db.queryInt("SELECT count(*) FROM messages") == 4);
}

TEST_CASE("two processes opening an old file at once upgrade it once") {
    TempDir dir;
    const auto file = dir / "history.sqlite";
    writeHistoryAtVersion(file, 1);
    auto a = openStore(file);
    auto b = openStore(file);  // finds it upgraded already
    CHECK(require(b.activePath(1)).size() == 2);
    CHECK(require(a.checkIntegrity()).ok);
}

TEST_CASE("files that are not ours or are damaged are refused and left byte-identical") {
    TempDir dir;
    SUBCASE("random bytes") {
        const auto file = dir / "random.sqlite";
        std::mt19937 rng(1);
        std::string bytes(8192, '\0');
        for (auto& c : bytes) c = static_cast<char>(rng());
        writeFile(file, bytes);
        expectRefused(file, ErrorCode::NotADatabase, "not a dsv2-chat history");
        expectRefused(file, ErrorCode::NotADatabase, "not a dsv2-chat history", OpenMode::ReadOnly);
        CHECK(fileBytes(file) == bytes);
    }
    SUBCASE("a text file") {
        const auto file = dir / "notes.txt";
        writeFile(file, "my notes\n");
        expectRefused(file, ErrorCode::NotADatabase, "It was not changed");
        CHECK(fileBytes(file) == "my notes\n");
    }
    SUBCASE("truncated") {
        const auto file = dir / "history.sqlite";
        {
            auto store = openStore(file);
            const auto id = require(store.createConversation({.title = "long"}));
            for (int i = 0; i < 200; ++i) require(store.appendUserMessage(id, std::nullopt, std::string(500, 'x')));
        }
        const std::string full = fileBytes(file);
        REQUIRE(full.size() > 64 * 1024);
        const std::string half = full.substr(0, full.size() / 2);
        writeFile(file, half);
        expectRefused(file, ErrorCode::Corrupt, "cut short");
        expectRefused(file, ErrorCode::Corrupt, "damaged", OpenMode::ReadOnly);
        CHECK(fileBytes(file) == half);
    }
    SUBCASE("pages overwritten with garbage") {
        const auto file = dir / "history.sqlite";
        {
            auto store = openStore(file);
            const auto id = require(store.createConversation({.title = "t"}));
            for (int i = 0; i < 50; ++i)
                require(store.appendUserMessage(id, std::nullopt, "message " + std::to_string(i)));
        }
        std::string bytes = fileBytes(file);
        std::mt19937 rng(2);
        for (std::size_t i = 4096; i < bytes.size(); ++i) bytes[i] = static_cast<char>(rng());  // all but page 1
        writeFile(file, bytes);
        OpenOptions options;
        auto store = ConversationStore::open(file, options);
        if (store) {
            // Opening may succeed (page 1 is fine); reading then reports the damage.
            auto list = store->listConversations();
            const auto report = store->checkIntegrity();
            CHECK((!list || !report || !report->ok));
        } else {
            CHECK(store.error().code() == ErrorCode::Corrupt);
        }
        CHECK(fileBytes(file) == bytes);
    }
    SUBCASE("another program's SQLite database") {
        const auto file = dir / "places.sqlite";
        {
            auto db = rawOpen(file);
            db.exec("CREATE TABLE bookmarks(url TEXT)");
        }
        const std::string bytes = fileBytes(file);
        expectRefused(file, ErrorCode::NotADatabase, "another program");
        CHECK(fileBytes(file) == bytes);
    }
    SUBCASE("written by a newer dsv2-chat") {
        const auto file = dir / "history.sqlite";
        {
            auto store = openStore(file);
            require(store.createConversation({.title = "from the future"}));
        }
        {
            auto db = rawOpen(file);
            db.exec("PRAGMA user_version = " + std::to_string(detail::latestSchemaVersion() + 1));
        }
        const std::string bytes = fileBytes(file);
        expectRefused(file, ErrorCode::NewerSchema, "newer dsv2-chat");
        expectRefused(file, ErrorCode::NewerSchema, "update dsv2-chat", OpenMode::ReadOnly);
        CHECK(fileBytes(file) == bytes);
    }
}

TEST_CASE("a write-protected file opens read-only for viewing and is never modified") {
    TempDir dir;
    const auto file = dir / "history.sqlite";
    ConversationId id = 0;
    {
        auto store = openStore(file);
        id = require(store.createConversation({.title = "kept"}));
        require(store.appendUserMessage(id, std::nullopt, "searchable words"));
    }
    REQUIRE(chmod(file.c_str(), 0444) == 0);
    const std::string bytes = fileBytes(file);

    expectRefused(file, ErrorCode::ReadOnly, "write-protected");  // even for root, which could write it

    OpenOptions ro;
    ro.mode = OpenMode::ReadOnly;
    auto store = openStore(file, ro);
    CHECK(store.isReadOnly());
    CHECK(require(store.listConversations()).size() == 1);
    SearchQuery q;
    q.text = "searchable";
    CHECK(require(store.search(q)).size() == 1);
    std::ostringstream out;
    require(store.exportConversations({}, ExportFormat::Json, out));
    CHECK(out.str().find("searchable words") != std::string::npos);
    CHECK(require(store.checkIntegrity()).ok);
    require(store.backupTo(dir / "copy.sqlite"));

    auto refused = store.createConversation({.title = "no"});
    REQUIRE_FALSE(refused.hasValue());
    CHECK(refused.error().code() == ErrorCode::ReadOnly);
    CHECK(store.appendUserMessage(id, std::nullopt, "no").error().code() == ErrorCode::ReadOnly);
    CHECK(store.setSetting("k", "v").error().code() == ErrorCode::ReadOnly);
    CHECK(fileBytes(file) == bytes);
}

TEST_CASE("a locked file: a clear Busy message, and it works once the lock is gone") {
    TempDir dir;
    const auto file = dir / "history.sqlite";
    { auto store = openStore(file); }
    OpenOptions quick;
    quick.busyTimeout = std::chrono::milliseconds(100);

    SUBCASE("another connection holds the write lock: reading works, writing says busy") {
        auto store = openStore(file, quick);
        auto other = rawOpen(file);
        other.exec("BEGIN IMMEDIATE");
        CHECK(require(store.listConversations()).empty());
        auto refused = store.createConversation({.title = "x"});
        REQUIRE_FALSE(refused.hasValue());
        CHECK(refused.error().code() == ErrorCode::Busy);
        CHECK(refused.error().message().find("another dsv2-chat or dsv2 process") != std::string::npos);
        other.exec("ROLLBACK");
        CHECK(store.createConversation({.title = "x"}).hasValue());
    }
    SUBCASE("another program holds an exclusive lock: even opening says busy, file untouched") {
        auto other = rawOpen(file);
        other.exec("PRAGMA locking_mode = EXCLUSIVE");
        other.exec("BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS lock_probe(x); COMMIT");
        const std::string bytes = fileBytes(file);
        expectRefused(file, ErrorCode::Busy, "busy");
        expectRefused(file, ErrorCode::Busy, "busy", OpenMode::ReadOnly);
        CHECK(fileBytes(file) == bytes);
    }
}

TEST_CASE("an empty file is a new history; a missing file is created only when writing") {
    TempDir dir;
    const auto empty = dir / "empty.sqlite";
    writeFile(empty, "");
    OpenOptions ro;
    ro.mode = OpenMode::ReadOnly;
    CHECK(ConversationStore::open(empty, ro).error().code() == ErrorCode::NotFound);
    CHECK(fileBytes(empty).empty());
    { auto store = openStore(empty); }
    CHECK_FALSE(fileBytes(empty).empty());

    const auto missing = dir / "missing.sqlite";
    CHECK(ConversationStore::open(missing, ro).error().code() == ErrorCode::NotFound);
    CHECK_FALSE(std::filesystem::exists(missing));
}

TEST_CASE("the integrity check finds what is wrong") {
    TempDir dir;
    const auto file = dir / "history.sqlite";
    auto store = openStore(file);
    const auto id = require(store.createConversation({.title = "t"}));
    const auto a = require(store.appendUserMessage(id, std::nullopt, "a"));
    const auto b = require(store.appendMessage(id, a, Role::Assistant, "b"));
    const auto report = require(store.checkIntegrity());
    CHECK(report.ok);
    CHECK(report.conversations == 1);
    CHECK(report.messages == 2);
    {
        auto db = rawOpen(file);
        db.exec("UPDATE messages SET active_child_id = " + std::to_string(a) + " WHERE id = " + std::to_string(b));
        db.exec("INSERT INTO token_chunks(message_id, seq, first_token, token_count, data) VALUES (" +
                std::to_string(b) + ", 0, 0, 1, x'0100')");
    }
    const auto bad = require(store.checkIntegrity());
    CHECK_FALSE(bad.ok);
    CHECK(bad.problems.size() == 2);
}
