// Conversations and the message tree: branches from edits and regenerations, the remembered active
// branch, the trash (soft delete, restore, purge), settings.
#include "storage_test_util.h"

using namespace dsv2::storage;
using namespace dsv2::storage::test;

namespace {

std::vector<std::string> contents(const std::vector<Message>& path) {
    std::vector<std::string> out;
    for (const auto& m : path) out.push_back(m.content);
    return out;
}

MessageId answer(ConversationStore& store, ConversationId c, MessageId parent, const std::string& text) {
    auto writer = require(store.beginAssistantMessage(c, parent));
    writer->append(text);
    require(writer->finish({.generatedTokens = 1, .stopReason = "eos"}));
    return writer->messageId();
}

}  // namespace

TEST_CASE("a conversation keeps its metadata") {
    TempDir dir;
    auto store = openStore(dir / "h.sqlite");
    ConversationMeta meta;
    meta.title = "Routing questions";
    meta.modelDir = "/models/DeepSeek-V2-Lite-Chat";
    meta.modelName = "DeepSeek-V2-Lite-Chat";
    meta.systemPrompt = "You are terse.";
    meta.sampling = {{"temperature", 0.7}, {"topP", 0.95}, {"seed", 42}};
    meta.settings = {{"showRouting", true}};
    const auto id = require(store.createConversation(meta));
    auto c = require(store.conversation(id));
    CHECK(c.meta.title == meta.title);
    CHECK(c.meta.modelDir == meta.modelDir);
    CHECK(c.meta.modelName == meta.modelName);
    CHECK(c.meta.systemPrompt == meta.systemPrompt);
    CHECK(c.meta.sampling == meta.sampling);
    CHECK(c.meta.settings == meta.settings);
    CHECK(c.uuid.size() == 36);
    CHECK(c.createdAt > 1600000000000);
    CHECK(c.createdAt == c.updatedAt);
    CHECK_FALSE(c.activeRootId.has_value());

    meta.title = "Renamed";
    meta.sampling["temperature"] = 0.2;
    require(store.updateConversationMeta(id, meta));
    c = require(store.conversation(id));
    CHECK(c.meta.title == "Renamed");
    CHECK(c.meta.sampling["temperature"] == 0.2);
    require(store.renameConversation(id, "Again"));
    CHECK(require(store.conversation(id)).meta.title == "Again");

    CHECK(store.conversation(id + 100).error().code() == ErrorCode::NotFound);
    CHECK(store.renameConversation(id + 100, "x").error().code() == ErrorCode::NotFound);
    CHECK(require(store.createConversation({})) != id);
    CHECK(require(store.conversation(id + 1)).uuid != c.uuid);
}

TEST_CASE("editing a prompt and regenerating keep every version; the active branch is remembered") {
    TempDir dir;
    auto store = openStore(dir / "h.sqlite");
    const auto c = require(store.createConversation({.title = "tree"}));
    const auto q1 = require(store.appendUserMessage(c, std::nullopt, "q1"));
    const auto a1 = answer(store, c, q1, "a1");
    const auto q2 = require(store.appendUserMessage(c, a1, "q2"));
    const auto a2 = answer(store, c, q2, "a2");
    CHECK(contents(require(store.activePath(c))) == std::vector<std::string>{"q1", "a1", "q2", "a2"});
    CHECK(require(store.activeLeaf(c)) == a2);

    // Regenerate the second answer: a sibling, now active.
    const auto a2b = answer(store, c, q2, "a2 again");
    CHECK(require(store.siblings(a2)) == std::vector<MessageId>{a2, a2b});
    CHECK(contents(require(store.activePath(c))) == std::vector<std::string>{"q1", "a1", "q2", "a2 again"});

    // Edit the first prompt: a new root with its own continuation.
    const auto q1b = require(store.editMessage(q1, "q1 edited"));
    CHECK(require(store.message(q1b)).parentId == std::nullopt);
    CHECK(require(store.siblings(q1)) == std::vector<MessageId>{q1, q1b});
    const auto a1b = answer(store, c, q1b, "a1b");
    CHECK(contents(require(store.activePath(c))) == std::vector<std::string>{"q1 edited", "a1b"});

    // Back to the first root: the branch chosen there last time (the regenerated answer) returns.
    require(store.setActiveMessage(q1));
    CHECK(contents(require(store.activePath(c))) == std::vector<std::string>{"q1", "a1", "q2", "a2 again"});
    // Pick the older answer deep in the tree: its ancestors follow.
    require(store.setActiveMessage(a1b));
    require(store.setActiveMessage(a2));
    CHECK(contents(require(store.activePath(c))) == std::vector<std::string>{"q1", "a1", "q2", "a2"});
    require(store.setActiveMessage(q1b));
    CHECK(contents(require(store.activePath(c))) == std::vector<std::string>{"q1 edited", "a1b"});

    // Nothing was lost.
    const auto all = require(store.allMessages(c));
    CHECK(all.size() == 7);
    CHECK(require(store.listConversations()).front().messageCount == 7);
    CHECK(require(store.checkIntegrity()).ok);
}

TEST_CASE("a message cannot go under a parent of another conversation or into the trash") {
    TempDir dir;
    auto store = openStore(dir / "h.sqlite");
    const auto c1 = require(store.createConversation({}));
    const auto c2 = require(store.createConversation({}));
    const auto m1 = require(store.appendUserMessage(c1, std::nullopt, "in c1"));
    CHECK(store.appendUserMessage(c2, m1, "wrong parent").error().code() == ErrorCode::InvalidArgument);
    CHECK(store.appendUserMessage(c2, 9999, "no parent").error().code() == ErrorCode::NotFound);
    CHECK(store.appendUserMessage(9999, std::nullopt, "no conversation").error().code() == ErrorCode::NotFound);
    CHECK(store.beginAssistantMessage(c2, m1).error().code() == ErrorCode::InvalidArgument);
    require(store.softDeleteConversation(c1));
    CHECK(store.appendUserMessage(c1, m1, "into the trash").error().code() == ErrorCode::InvalidArgument);
    CHECK(require(store.allMessages(c2)).empty());
}

TEST_CASE("deleting is two-step: the trash can be restored, purging needs the trash and is final") {
    TempDir dir;
    auto store = openStore(dir / "h.sqlite");
    const auto keep = require(store.createConversation({.title = "keep"}));
    const auto drop = require(store.createConversation({.title = "drop"}));
    require(store.appendUserMessage(keep, std::nullopt, "kept words"));
    const auto q = require(store.appendUserMessage(drop, std::nullopt, "doomed words"));
    {
        auto w = require(store.beginAssistantMessage(drop, q));
        w->append("doomed answer", makeRecord(1));
        require(w->finish({.generatedTokens = 1}));
    }
    SearchQuery doomed;
    doomed.text = "doomed";
    CHECK(require(store.search(doomed)).size() == 2);

    // Purging something not in the trash is refused (the caller must confirm by deleting first).
    auto refused = store.purgeConversation(drop);
    REQUIRE_FALSE(refused.hasValue());
    CHECK(refused.error().code() == ErrorCode::InvalidArgument);
    CHECK(refused.error().message().find("trash") != std::string::npos);

    require(store.softDeleteConversation(drop));
    CHECK(require(store.listConversations()).size() == 1);
    ListOptions trash;
    trash.onlyDeleted = true;
    CHECK(require(store.listConversations(trash)).at(0).id == drop);
    CHECK(require(store.search(doomed)).empty());         // hidden from search
    CHECK(require(store.lastConversation()) == keep);
    CHECK(require(store.conversation(drop)).deletedAt.has_value());

    require(store.restoreConversation(drop));
    CHECK(require(store.listConversations()).size() == 2);
    CHECK(require(store.search(doomed)).size() == 2);

    require(store.softDeleteConversation(drop));
    require(store.purgeConversation(drop));
    CHECK(store.conversation(drop).error().code() == ErrorCode::NotFound);
    ListOptions everything;
    everything.includeDeleted = true;
    CHECK(require(store.listConversations(everything)).size() == 1);
    CHECK(require(store.search(doomed)).empty());
    // Messages, token records and stats went with it, and the search index agrees.
    const auto report = require(store.checkIntegrity());
    CHECK_MESSAGE(report.ok, (report.problems.empty() ? "" : report.problems.front()));
    CHECK(report.messages == 1);
    CHECK(report.tokenRecords == 0);
}

TEST_CASE("emptying the trash purges only what was deleted before the cut-off") {
    TempDir dir;
    auto store = openStore(dir / "h.sqlite");
    const auto a = require(store.createConversation({.title = "a"}));
    const auto b = require(store.createConversation({.title = "b"}));
    const auto c = require(store.createConversation({.title = "c"}));
    require(store.softDeleteConversation(a));
    require(store.softDeleteConversation(b));
    const auto deletedAt = *require(store.conversation(b)).deletedAt;
    CHECK(require(store.purgeDeleted(deletedAt - 100000)) == 0);
    CHECK(require(store.purgeDeleted()) == 2);
    ListOptions everything;
    everything.includeDeleted = true;
    const auto left = require(store.listConversations(everything));
    REQUIRE(left.size() == 1);
    CHECK(left[0].id == c);
}

TEST_CASE("lists are ordered by last activity and can be paged") {
    TempDir dir;
    auto store = openStore(dir / "h.sqlite");
    std::vector<ConversationId> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(require(store.createConversation({.title = std::to_string(i)})));
    // Make the first one the most recently active.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    require(store.appendUserMessage(ids[0], std::nullopt, "new activity"));
    const auto list = require(store.listConversations());
    REQUIRE(list.size() == 5);
    CHECK(list[0].id == ids[0]);
    CHECK(list[0].messageCount == 1);
    CHECK(require(store.lastConversation()) == ids[0]);
    ListOptions page;
    page.limit = 2;
    page.offset = 1;
    const auto paged = require(store.listConversations(page));
    REQUIRE(paged.size() == 2);
    CHECK(paged[0].id == list[1].id);
    CHECK(paged[1].id == list[2].id);
}

TEST_CASE("settings are kept per key") {
    TempDir dir;
    const auto file = dir / "h.sqlite";
    {
        auto store = openStore(file);
        CHECK_FALSE(require(store.setting("theme")).has_value());
        require(store.setSetting("theme", "\"dark\""));
        require(store.setSetting("fontSize", "13"));
        require(store.setSetting("theme", "\"light\""));
    }
    auto store = openStore(file);
    CHECK(require(store.setting("theme")) == std::optional<std::string>("\"light\""));
    CHECK(require(store.allSettings()) == std::map<std::string, std::string>{{"fontSize", "13"}, {"theme", "\"light\""}});
    require(store.removeSetting("theme"));
    CHECK_FALSE(require(store.setting("theme")).has_value());
}

TEST_CASE("transaction() groups calls and rolls back when the body says so") {
    TempDir dir;
    auto store = openStore(dir / "h.sqlite");
    require(store.transaction([&] {
        for (int i = 0; i < 3; ++i) REQUIRE(store.createConversation({.title = "batch"}).hasValue());
        return true;
    }));
    require(store.transaction([&] {
        REQUIRE(store.createConversation({.title = "undone"}).hasValue());
        return false;
    }));
    const auto list = require(store.listConversations());
    CHECK(list.size() == 3);
    for (const auto& s : list) CHECK(s.title == "batch");
}

TEST_CASE("the default location follows XDG") {
    const char* saved = std::getenv("XDG_DATA_HOME");
    const std::string restore = saved ? saved : "";
    setenv("XDG_DATA_HOME", "/xdg/data", 1);
    CHECK(defaultDatabasePath() == std::filesystem::path("/xdg/data/dsv2-chat/history.sqlite"));
    setenv("XDG_DATA_HOME", "relative/ignored", 1);
    setenv("HOME", std::getenv("HOME") ? std::getenv("HOME") : "/root", 1);
    CHECK(defaultDatabasePath() == std::filesystem::path(std::getenv("HOME")) / ".local/share/dsv2-chat/history.sqlite");
    if (saved) {
        setenv("XDG_DATA_HOME", restore.c_str(), 1);
    } else {
        unsetenv("XDG_DATA_HOME");
    }
}
