// Full-text search: bm25 ranking, snippets, filters, and queries people actually type.
#include "storage_test_util.h"

#include "sqlite_db.h"

using namespace dsv2::storage;
using namespace dsv2::storage::test;

namespace {

struct Fixture {
    TempDir dir;
    ConversationStore store = openStore(dir / "h.sqlite");
    ConversationId moe = require(store.createConversation({.title = "Mixture of experts"}));
    ConversationId misc = require(store.createConversation({.title = "Misc"}));
    MessageId dense = require(store.appendUserMessage(moe, std::nullopt, "router router router"));
    MessageId sparse = require(store.appendMessage(
        moe, dense, Role::Assistant,
        "The router picks experts per token for each layer of the model, and the shared experts see every token."));
    MessageId unrelated = require(store.appendUserMessage(misc, std::nullopt, "Make a café list for Zürich, please."));
    MessageId code = require(store.appendMessage(misc, unrelated, Role::Assistant,
                                                 "Use `std::vector<int>` in C++ and 深度求索的模型 for Chinese."));

    std::vector<MessageId> ids(const std::string& text, std::optional<ConversationId> in = std::nullopt) {
        SearchQuery q;
        q.text = text;
        q.conversationId = in;
        std::vector<MessageId> out;
        for (const auto& hit : require(store.search(q))) out.push_back(hit.messageId);
        return out;
    }
};

}  // namespace

TEST_CASE("results are ranked by bm25: more and denser matches first") {
    Fixture f;
    CHECK(f.ids("router") == std::vector<MessageId>{f.dense, f.sparse});
    SearchQuery q;
    q.text = "router";
    const auto hits = require(f.store.search(q));
    REQUIRE(hits.size() == 2);
    CHECK(hits[0].rank < hits[1].rank);
    CHECK(hits[1].conversationId == f.moe);
    CHECK(hits[1].conversationTitle == "Mixture of experts");
    CHECK(hits[1].role == Role::Assistant);
    CHECK(hits[1].createdAt > 0);
}

TEST_CASE("snippets mark the matches") {
    Fixture f;
    SearchQuery q;
    q.text = "shared experts";
    q.highlightOpen = "<b>";
    q.highlightClose = "</b>";
    const auto hits = require(f.store.search(q));
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].snippet.find("<b>shared</b> <b>experts</b>") != std::string::npos);
    q.snippetTokens = 4;
    const auto shortHits = require(f.store.search(q));
    CHECK(shortHits[0].snippet.size() < hits[0].snippet.size());
    CHECK(shortHits[0].snippet.find("…") != std::string::npos);
}

TEST_CASE("queries people type: all words, phrases, prefixes, case, accents, code, CJK") {
    Fixture f;
    CHECK(f.ids("ROUTER experts") == std::vector<MessageId>{f.sparse});     // all words must match
    CHECK(f.ids("\"picks experts\"") == std::vector<MessageId>{f.sparse});  // phrase
    CHECK(f.ids("\"experts picks\"").empty());
    CHECK(f.ids("rout*").size() == 2);                                   // prefix
    CHECK(f.ids("cafe zurich") == std::vector<MessageId>{f.unrelated});  // accents folded
    CHECK(f.ids("C++ vector") == std::vector<MessageId>{f.code});        // punctuation is not syntax
    CHECK(f.ids("std::vector<int>") == std::vector<MessageId>{f.code});
    CHECK(f.ids("NOT router").empty());                           // words, not operators
    CHECK(f.ids("深度求索*") == std::vector<MessageId>{f.code});  // CJK runs match by prefix
    CHECK(f.ids("🙂").empty());                                 // nothing searchable: no error
    CHECK(f.ids("").empty());
    CHECK(f.ids("nonexistentword").empty());
}

TEST_CASE("filters: conversation, dates, trash, paging") {
    Fixture f;
    CHECK(f.ids("experts", f.moe) == std::vector<MessageId>{f.sparse});
    CHECK(f.ids("experts", f.misc).empty());

    {
        // Date the messages (created_at is set by the store; rewrite it directly for the test).
        dsv2::storage::detail::Database db((f.dir / "h.sqlite").string(), SQLITE_OPEN_READWRITE, f.dir / "h.sqlite");
        db.exec("UPDATE messages SET created_at = 1000 WHERE id = " + std::to_string(f.dense));
        db.exec("UPDATE messages SET created_at = 2000 WHERE id = " + std::to_string(f.sparse));
    }
    SearchQuery q;
    q.text = "router";
    q.from = 1500;
    auto hits = require(f.store.search(q));
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].messageId == f.sparse);
    q.from.reset();
    q.until = 1500;
    hits = require(f.store.search(q));
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].messageId == f.dense);
    q.until = 1000;  // until is exclusive
    CHECK(require(f.store.search(q)).empty());

    q = {};
    q.text = "router";
    q.limit = 1;
    CHECK(require(f.store.search(q)).at(0).messageId == f.dense);
    q.offset = 1;
    CHECK(require(f.store.search(q)).at(0).messageId == f.sparse);

    require(f.store.softDeleteConversation(f.moe));
    CHECK(f.ids("router").empty());
    CHECK(f.ids("cafe").size() == 1);
}

TEST_CASE("raw FTS5 syntax is passed through, and its errors are reported as such") {
    Fixture f;
    SearchQuery q;
    q.rawFts = true;
    q.text = "router NOT shared";
    auto hits = require(f.store.search(q));
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].messageId == f.dense);
    q.text = "router AND (";
    auto bad = f.store.search(q);
    REQUIRE_FALSE(bad.hasValue());
    CHECK(bad.error().code() == ErrorCode::InvalidArgument);
    CHECK(bad.error().message().find("FTS5") != std::string::npos);
}

TEST_CASE("an answer is searchable while it streams and after it is finished") {
    Fixture f;
    auto writer = require(f.store.beginAssistantMessage(f.misc, f.code, WriterOptions{.backgroundFlush = false}));
    writer->append("Latent attention ");
    require(writer->flush());
    CHECK(f.ids("latent") == std::vector<MessageId>{writer->messageId()});
    writer->append("compresses the cache.");
    require(writer->finish({}));
    CHECK(f.ids("latent compresses") == std::vector<MessageId>{writer->messageId()});
    CHECK(require(f.store.checkIntegrity()).ok);
}

TEST_CASE("ranking is limited to the newest matches when asked (bounded cost for very common words)") {
    TempDir dir;
    auto store = openStore(dir / "h.sqlite");
    const auto c = require(store.createConversation({}));
    const auto best = require(store.appendUserMessage(c, std::nullopt, "alpha alpha alpha"));  // oldest, densest
    std::optional<MessageId> parent = best;
    std::vector<MessageId> newer;
    for (int i = 0; i < 30; ++i) {
        parent =
            require(store.appendUserMessage(c, parent, "alpha and many other words to dilute it " + std::to_string(i)));
        newer.push_back(*parent);
    }
    SearchQuery q;
    q.text = "alpha";
    q.maxRankedMatches = 0;  // rank every match
    auto hits = require(store.search(q));
    REQUIRE(hits.size() == 31);
    CHECK(hits[0].messageId == best);
    q.maxRankedMatches = 10;
    hits = require(store.search(q));
    REQUIRE(hits.size() == 10);
    for (const auto& hit : hits) CHECK(hit.messageId >= newer[20]);
}
