// Export (JSON, Markdown, text, HTML) and import: the JSON round trip is identical byte for byte,
// whatever the text (unicode, code, huge, not even UTF-8) and with branches, stats and routing.
#include "storage_test_util.h"

#include <sstream>

using namespace dsv2::storage;
using namespace dsv2::storage::test;

namespace {

std::string exportAll(ConversationStore& store, ExportFormat format, std::vector<ConversationId> ids = {}) {
    std::ostringstream out;
    require(store.exportConversations(ids, format, out));
    return out.str();
}

const std::string kCode =
    "Here is the fix:\n\n```cpp\nint main() {\n    return a < b && c > d ? 0 : 1;  // \"quoted\"\n}\n```\n\nDone.";

// A history with everything a conversation can hold.
void fillRichHistory(ConversationStore& store) {
    ConversationMeta meta;
    meta.title = "Ünïcödé 深度求索 🙂 <b>not bold</b> & \"quotes\"";
    meta.modelDir = "/models/DeepSeek-V2-Lite-Chat";
    meta.modelName = "DeepSeek-V2-Lite-Chat";
    meta.systemPrompt = "Line one\nLine two with tab\tand backslash \\";
    meta.sampling = {{"temperature", 0.7}, {"topP", 0.95}, {"topK", 40}, {"seed", 1234567890123LL}};
    meta.settings = {{"showRouting", true}, {"nested", {{"a", {1, 2, 3}}}}};
    const auto c = require(store.createConversation(meta));
    const auto q1 = require(store.appendUserMessage(c, std::nullopt, kCode));
    MessageId a1 = 0;
    {
        auto w = require(store.beginAssistantMessage(c, q1, WriterOptions{.backgroundFlush = false}));
        w->setPromptRouting(makePromptRouting(0, 12, 26, 6));
        for (int i = 0; i < 300; ++i) w->append(tokenText(i), makeRecord(i, 26, 6));
        // A byte-level token that ends inside a character, completed by the next one.
        TokenRecord head = makeRecord(300, 26, 6);
        w->append(std::string("\xe6\xb7", 2), head);
        w->append(std::string("\xb1", 1), makeRecord(301, 26, 6));
        require(w->finish({.promptTokens = 12,
                           .generatedTokens = 302,
                           .tokensPerSecond = 23.456789,
                           .timeToFirstTokenMs = 120.25,
                           .totalMs = 12874.5,
                           .stopReason = "eos",
                           .backend = "cuda",
                           .extra = {{"kvCacheMiB", 87.5}}}));
        a1 = w->messageId();
    }
    // A regenerated answer (branch) that failed, and an edited prompt with a huge answer.
    {
        auto w = require(store.beginAssistantMessage(c, q1));
        w->append("partial");
        require(w->fail("CUDA out of memory"));
    }
    const auto q1b = require(store.editMessage(q1, "Edited prompt with emoji 👩‍💻 and RTL שלום"));
    std::string huge;
    while (huge.size() < 1024 * 1024) huge += "Line " + std::to_string(huge.size()) + " of a very long answer. ";
    require(store.appendMessage(c, q1b, Role::Assistant, huge));
    require(store.setActiveMessage(a1));  // the active branch is not the newest one

    // A second conversation with an interrupted answer and a system message.
    const auto c2 = require(store.createConversation({.title = ""}));
    // (the failed answer above has no prompt routing: the field is left out of its line)
    const auto s = require(store.appendMessage(c2, std::nullopt, Role::System, "system text"));
    const auto u = require(store.appendUserMessage(c2, s, "tell me a story"));
    {
        auto w = require(store.beginAssistantMessage(c2, u));
        w->append("Once upon a time:\n```python\nprint(1)\n");
        // Dropped without finish(): the answer is kept as interrupted.
    }
}

}  // namespace

TEST_CASE("export -> import -> export is identical, with branches, stats, routing and odd text") {
    TempDir dir;
    auto source = openStore(dir / "a.sqlite");
    fillRichHistory(source);
    const std::string first = exportAll(source, ExportFormat::Json);

    auto target = openStore(dir / "b.sqlite");
    std::istringstream in(first);
    const auto report = require(target.importJson(in));
    CHECK(report.conversationsImported == 2);
    CHECK(report.conversationsSkipped == 0);
    CHECK(report.messagesImported == 8);
    const std::string second = exportAll(target, ExportFormat::Json);
    CHECK(first.size() == second.size());
    CHECK(first == second);

    // What the JSON says, checked field by field on the imported copy.
    const auto list = require(target.listConversations());
    REQUIRE(list.size() == 2);
    const auto ids = report.importedIds;
    const auto c = require(target.conversation(ids[0]));
    CHECK(c.meta.title == "Ünïcödé 深度求索 🙂 <b>not bold</b> & \"quotes\"");
    CHECK(c.meta.sampling["seed"] == 1234567890123LL);
    const auto path = require(target.activePath(ids[0]));
    REQUIRE(path.size() == 2);
    CHECK(path[0].content == kCode);
    CHECK(path[1].status == MessageStatus::Complete);
    REQUIRE(path[1].stats.has_value());
    CHECK(path[1].stats->tokensPerSecond == 23.456789);
    CHECK(path[1].stats->extra["kvCacheMiB"] == 87.5);
    CHECK(path[1].content.substr(path[1].content.size() - 3) == "深");
    const auto tokens = require(target.tokens(path[1].id));
    REQUIRE(tokens.size() == 302);
    CHECK(tokens[7].expertIds == makeRecord(7, 26, 6).expertIds);
    CHECK(tokens[7].expertWeights == makeRecord(7, 26, 6).expertWeights);
    CHECK(tokens[7].topLogprobs == makeRecord(7, 26, 6).topLogprobs);  // incl. -inf and partial UTF-8
    CHECK(tokens[300].textLength == 2);
    // The prompt routing (schema v4) came along, exactly, partial character included.
    const auto prompt = require(target.promptRouting(path[1].id));
    REQUIRE(prompt.has_value());
    CHECK(*prompt == makePromptRouting(0, 12, 26, 6));
    CHECK_FALSE(require(target.promptRouting(path[0].id)).has_value());
    CHECK(first.find("\"promptRouting\":{\"firstPosition\":0,\"promptTokens\":12,") != std::string::npos);
    const auto all = require(target.allMessages(ids[0]));
    CHECK(all.size() == 5);
    CHECK(all[2].status == MessageStatus::Error);
    CHECK(all[2].errorText == "CUDA out of memory");
    CHECK(all[4].content.size() >= 1024 * 1024);
    const auto second_path = require(target.activePath(ids[1]));
    REQUIRE(second_path.size() == 3);
    CHECK(second_path[2].status == MessageStatus::Interrupted);
    CHECK(require(target.checkIntegrity()).ok);
}

TEST_CASE("prompt routing without token texts (a remote answer: no tokenizer here) is stored and round-trips") {
    TempDir dir;
    auto source = openStore(dir / "a.sqlite");
    const auto c = require(source.createConversation({.title = "remote"}));
    const auto q = require(source.appendUserMessage(c, std::nullopt, "Hello"));
    PromptRouting prompt = makePromptRouting(0, 5, 2, 2);
    prompt.text.clear();
    for (TokenRecord& r : prompt.records) r.textOffset = r.textLength = 0;
    MessageId answer = 0;
    {
        auto w = require(source.beginAssistantMessage(c, q, {.backgroundFlush = false}));
        answer = w->messageId();
        w->setPromptRouting(prompt);
        w->append("hi", makeRecord(1, 2, 2));
        require(w->finish({}));
    }
    const auto stored = require(source.promptRouting(answer));
    REQUIRE(stored.has_value());
    CHECK(*stored == prompt);

    const std::string first = exportAll(source, ExportFormat::Json);
    auto target = openStore(dir / "b.sqlite");
    std::istringstream in(first);
    const auto report = require(target.importJson(in));
    CHECK(exportAll(target, ExportFormat::Json) == first);
    const auto path = require(target.activePath(report.importedIds.at(0)));
    REQUIRE(path.size() == 2);
    CHECK(require(target.promptRouting(path[1].id)) == prompt);
}

TEST_CASE("importing the same file twice adds nothing; a bad file changes nothing") {
    TempDir dir;
    auto source = openStore(dir / "a.sqlite");
    fillRichHistory(source);
    const auto file = dir / "export.json";
    require(source.exportToFile({}, ExportFormat::Json, file));
    CHECK_FALSE(std::filesystem::exists(dir / "export.json.partial"));

    auto target = openStore(dir / "b.sqlite");
    CHECK(require(target.importJsonFile(file)).conversationsImported == 2);
    const auto again = require(target.importJsonFile(file));
    CHECK(again.conversationsImported == 0);
    CHECK(again.conversationsSkipped == 2);
    CHECK(require(target.listConversations()).size() == 2);

    const std::string before = exportAll(target, ExportFormat::Json);
    auto expectRejected = [&](const std::string& text, ErrorCode code, const std::string& phrase) {
        std::istringstream in(text);
        auto result = target.importJson(in, "bad.json");
        REQUIRE_FALSE(result.hasValue());
        CHECK(result.error().code() == code);
        CHECK_MESSAGE(result.error().message().find(phrase) != std::string::npos, result.error().message());
        CHECK(result.error().message().find("bad.json") != std::string::npos);
    };
    const std::string good = fileBytes(file);
    expectRejected(good.substr(0, good.size() / 2), ErrorCode::InvalidData, "not valid JSON");
    expectRejected("{\"format\":\"something-else\"}", ErrorCode::InvalidData, "not a dsv2-chat history export");
    expectRejected("{\"format\":\"dsv2-chat-history\",\"version\":99,\"conversations\":[]}", ErrorCode::NewerSchema,
                   "newer dsv2-chat");
    // Valid first conversation, broken second one: all or nothing.
    expectRejected(R"({"format":"dsv2-chat-history","version":1,"conversations":[
        {"uuid":"fresh-1","createdAt":1,"updatedAt":1,"messages":[]},
        {"uuid":"fresh-2","createdAt":1,"updatedAt":1,"messages":[
            {"id":1,"parent":7,"role":"user","createdAt":1,"updatedAt":1,"content":"x"}]}]})",
                   ErrorCode::InvalidData, "parent 7 does not come before it");
    expectRejected(R"({"format":"dsv2-chat-history","version":1,"conversations":[
        {"uuid":"fresh-3","createdAt":1,"updatedAt":1,"messages":[
            {"id":1,"parent":null,"role":"wizard","createdAt":1,"updatedAt":1,"content":"x"}]}]})",
                   ErrorCode::InvalidData, "unknown role");
    // Prompt routing whose token text reaches past its text, or without its text.
    expectRejected(R"({"format":"dsv2-chat-history","version":1,"conversations":[
        {"uuid":"fresh-4","createdAt":1,"updatedAt":1,"messages":[
            {"id":1,"parent":null,"role":"assistant","createdAt":1,"updatedAt":1,"content":"x",
             "promptRouting":{"firstPosition":0,"promptTokens":1,"text":"ab",
                              "tokens":[{"id":5,"offset":1,"length":4}]}}]}]})",
                   ErrorCode::InvalidData,
                   "message 1.promptRouting, token 1: its text range ends past the prompt text");
    expectRejected(R"({"format":"dsv2-chat-history","version":1,"conversations":[
        {"uuid":"fresh-5","createdAt":1,"updatedAt":1,"messages":[
            {"id":1,"parent":null,"role":"assistant","createdAt":1,"updatedAt":1,"content":"x",
             "promptRouting":{"firstPosition":3,"promptTokens":4,"tokens":[]}}]}]})",
                   ErrorCode::InvalidData, "promptRouting");
    CHECK(exportAll(target, ExportFormat::Json) == before);
    CHECK(target.importJsonFile(dir / "missing.json").error().code() == ErrorCode::NotFound);
}

TEST_CASE("Markdown keeps code blocks and closes a fence left open by an interrupted answer") {
    TempDir dir;
    auto store = openStore(dir / "a.sqlite");
    fillRichHistory(store);
    const std::string md = exportAll(store, ExportFormat::Markdown);
    CHECK(md.find("# Ünïcödé 深度求索") != std::string::npos);
    CHECK(md.find(kCode) != std::string::npos);  // verbatim
    CHECK(md.find("## User · ") != std::string::npos);
    CHECK(md.find("*302 tokens · 23.5 tok/s · first token 120 ms · stop: eos · cuda*") != std::string::npos);
    CHECK(md.find("edited or regenerated turns") != std::string::npos);
    CHECK(md.find("# Untitled conversation") != std::string::npos);
    const auto cut = md.find("Once upon a time:\n```python\nprint(1)\n```\n");
    CHECK(cut != std::string::npos);
    CHECK(md.find("(interrupted: the answer was cut off)") != std::string::npos);
    // The non-active branch (the edited prompt and its huge answer) is not in the Markdown.
    CHECK(md.find("Edited prompt") == std::string::npos);
    CHECK(md.size() < 100000);

    const std::string txt = exportAll(store, ExportFormat::Text);
    CHECK(txt.find("[User · ") != std::string::npos);
    CHECK(txt.find(kCode) != std::string::npos);
    CHECK(txt.find("[System prompt]\nLine one\nLine two") != std::string::npos);
}

TEST_CASE("HTML is one self-contained page with everything escaped") {
    TempDir dir;
    auto store = openStore(dir / "a.sqlite");
    const auto c = require(store.createConversation({.title = "<script>alert('t')</script>"}));
    const auto q =
        require(store.appendUserMessage(c, std::nullopt, "<img src=x onerror=alert(1)> & \"hi\"\nsecond line"));
    require(store.appendMessage(c, q, Role::Assistant, "Text\n\n```html\n<div class=\"x\">&amp;</div>\n```\nafter"));
    const std::string html = exportAll(store, ExportFormat::Html);
    CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
    CHECK(html.find("<style>") != std::string::npos);
    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("<img") == std::string::npos);
    CHECK(html.find("<link") == std::string::npos);  // no external resources
    CHECK(html.find("http") == std::string::npos);
    CHECK(html.find("&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;") != std::string::npos);
    CHECK(html.find("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;hi&quot;<br>\nsecond line") != std::string::npos);
    CHECK(
        html.find(
            "<pre><code class=\"language-html\">&lt;div class=&quot;x&quot;&gt;&amp;amp;&lt;/div&gt;\n</code></pre>") !=
        std::string::npos);
    CHECK(html.find("<p>after</p>") != std::string::npos);
    CHECK(html.find("</html>") != std::string::npos);

    // Several conversations get a table of contents linking to each.
    require(store.createConversation({.title = "second"}));
    const std::string both = exportAll(store, ExportFormat::Html);
    CHECK(both.find("<nav>") != std::string::npos);
    CHECK(both.find("href=\"#c-") != std::string::npos);
}

TEST_CASE("exporting one conversation, and to a file that cannot be written") {
    TempDir dir;
    auto store = openStore(dir / "a.sqlite");
    fillRichHistory(store);
    const auto list = require(store.listConversations());
    const auto json = nlohmann::json::parse(exportAll(store, ExportFormat::Json, {list[0].id}));
    CHECK(json["format"] == "dsv2-chat-history");
    CHECK(json["version"] == 1);
    CHECK(json["conversations"].size() == 1);
    std::ostringstream sink;
    auto bad = store.exportToFile({}, ExportFormat::Json, dir / "no" / "such" / "folder" / "x.json");
    REQUIRE_FALSE(bad.hasValue());
    CHECK(bad.error().code() == ErrorCode::Io);
    CHECK(store.exportConversations({424242}, ExportFormat::Markdown, sink).error().code() == ErrorCode::NotFound);
}
