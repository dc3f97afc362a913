// Streaming persistence: batched commits (time and size), consistent batches (whole characters, whole
// tokens), finish/fail/drop, crash recovery (a writer killed with SIGKILL), a second process.
#include "storage_test_util.h"

#include "process_identity.h"
#include "sqlite_db.h"
#include "store_internal.h"
#include "token_codec.h"

#include <sqlite3.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

using namespace dsv2::storage;
using namespace dsv2::storage::test;
using namespace std::chrono_literals;
namespace detail = dsv2::storage::detail;

namespace {

struct Chat {
    TempDir dir;
    std::filesystem::path file = dir / "h.sqlite";
    ConversationStore store = openStore(file);
    ConversationId conversation = require(store.createConversation({.title = "stream"}));
    MessageId prompt = require(store.appendUserMessage(conversation, std::nullopt, "go"));

    // What another process sees: a separate connection.
    Message seenByOthers(MessageId id) {
        auto other = openStore(file);
        return require(other.message(id));
    }
};

TokenRecord expectedRecord(int i, std::uint32_t offset, std::uint32_t length) {
    TokenRecord t = makeRecord(i);
    for (auto& w : t.expertWeights) w = detail::roundToHalf(w);
    t.textOffset = offset;
    t.textLength = length;
    return t;
}

std::string expectedText(int tokens) {
    std::string text;
    for (int i = 0; i < tokens; ++i) text += tokenText(i);
    return text;
}

}  // namespace

TEST_CASE("the answer exists from the start and is committed in batches, by size and by time") {
    Chat chat;
    std::vector<CommitInfo> commits;
    WriterOptions options;
    options.backgroundFlush = false;
    options.flushInterval = 1h;  // only the size rule applies here
    options.maxPendingTokens = 10;
    options.onCommit = [&](const CommitInfo& info) { commits.push_back(info); };
    auto writer = require(chat.store.beginAssistantMessage(chat.conversation, chat.prompt, options));

    auto m = chat.seenByOthers(writer->messageId());
    CHECK(m.status == MessageStatus::Streaming);
    CHECK(m.content.empty());
    CHECK(m.role == Role::Assistant);
    CHECK(m.parentId == chat.prompt);
    CHECK(require(chat.store.activeLeaf(chat.conversation)) == writer->messageId());

    for (int i = 0; i < 25; ++i) writer->append(tokenText(i), makeRecord(i));
    REQUIRE(commits.size() == 2);
    CHECK(commits[1].tokensCommitted == 20);
    CHECK(commits[1].bytesCommitted == static_cast<std::int64_t>(expectedText(20).size()));
    m = chat.seenByOthers(writer->messageId());
    CHECK(m.content == expectedText(20));
    CHECK(m.tokenCount == 20);

    require(writer->flush());
    CHECK(chat.seenByOthers(writer->messageId()).content == expectedText(25));
    CHECK(writer->tokensAppended() == 25);
    CHECK(writer->bytesAppended() == static_cast<std::int64_t>(expectedText(25).size()));

    SUBCASE("by bytes too") {
        WriterOptions bySize;
        bySize.backgroundFlush = false;
        bySize.flushInterval = 1h;
        bySize.maxPendingBytes = 1000;
        int count = 0;
        bySize.onCommit = [&](const CommitInfo&) { ++count; };
        auto w2 = require(chat.store.beginAssistantMessage(chat.conversation, chat.prompt, bySize));
        w2->append(std::string(999, 'a'));
        CHECK(count == 0);
        w2->append("b");
        CHECK(count == 1);
        require(w2->finish({}));
    }
    require(writer->finish({}));
}

TEST_CASE("a background commit happens on time even when tokens stop coming") {
    Chat chat;
    std::mutex mutex;
    std::vector<std::chrono::steady_clock::time_point> commitTimes;
    WriterOptions options;
    options.flushInterval = 100ms;
    options.onCommit = [&](const CommitInfo&) {
        std::lock_guard lock(mutex);
        commitTimes.push_back(std::chrono::steady_clock::now());
    };
    auto writer = require(chat.store.beginAssistantMessage(chat.conversation, chat.prompt, options));
    const auto start = std::chrono::steady_clock::now();
    writer->append(tokenText(0), makeRecord(0));
    // No more tokens: the one above must still reach the file within the interval (plus slack for a
    // loaded machine), without any further call.
    std::this_thread::sleep_for(1s);
    {
        std::lock_guard lock(mutex);
        REQUIRE(commitTimes.size() == 1);
        CHECK(commitTimes[0] - start < 900ms);
    }
    CHECK(chat.seenByOthers(writer->messageId()).content == tokenText(0));

    // Tokens every millisecond for ~0.6 s: commits are batched (not one per token) and regular.
    const auto streamStart = std::chrono::steady_clock::now();
    int i = 1;
    while (std::chrono::steady_clock::now() - streamStart < 600ms) {
        writer->append(tokenText(i), makeRecord(i));
        ++i;
        std::this_thread::sleep_for(1ms);
    }
    require(writer->finish({.generatedTokens = i}));
    std::lock_guard lock(mutex);
    const auto batches = commitTimes.size() - 1;  // the final commit included
    CHECK(batches >= 3);
    CHECK(batches <= 12);
    CHECK(static_cast<int>(batches) < i / 10);
    const auto m = chat.seenByOthers(writer->messageId());
    CHECK(m.content == expectedText(i));
    CHECK(m.tokenCount == i);
    CHECK(m.status == MessageStatus::Complete);
}

TEST_CASE("a batch never ends inside a character, and a token goes with all of its text") {
    Chat chat;
    auto writer = require(
        chat.store.beginAssistantMessage(chat.conversation, chat.prompt, WriterOptions{.backgroundFlush = false}));
    writer->append("a", makeRecord(0));
    writer->append(std::string("\xe6\xb7", 2), makeRecord(1));  // "深" split over two tokens
    require(writer->flush());
    auto m = chat.seenByOthers(writer->messageId());
    CHECK(m.content == "a");
    CHECK(m.tokenCount == 1);
    writer->append(std::string("\xb1", 1), makeRecord(2));
    require(writer->flush());
    m = chat.seenByOthers(writer->messageId());
    CHECK(m.content == "a深");
    CHECK(m.tokenCount == 3);
    const auto tokens = require(chat.store.tokens(writer->messageId()));
    REQUIRE(tokens.size() == 3);
    CHECK(tokens[0] == expectedRecord(0, 0, 1));
    CHECK(tokens[1] == expectedRecord(1, 1, 2));
    CHECK(tokens[2] == expectedRecord(2, 3, 1));
    require(writer->finish({}));
}

TEST_CASE("finish stores stats; fail keeps the error; a dropped writer leaves an interrupted answer") {
    Chat chat;
    MessageId done = 0, failed = 0, dropped = 0;
    {
        auto w = require(chat.store.beginAssistantMessage(chat.conversation, chat.prompt));
        done = w->messageId();
        w->append("complete answer", makeRecord(0));
        GenerationStats stats{.promptTokens = 5,
                              .generatedTokens = 1,
                              .tokensPerSecond = 42.5,
                              .timeToFirstTokenMs = 80,
                              .totalMs = 23.5,
                              .stopReason = "eos",
                              .backend = "cpu"};
        require(w->finish(stats));
        CHECK(w->isFinished());
        w->append("ignored after finish");
        CHECK(w->finish(stats).error().code() == ErrorCode::InvalidArgument);
    }
    {
        auto w = require(chat.store.beginAssistantMessage(chat.conversation, chat.prompt));
        failed = w->messageId();
        w->append("half an ans");
        require(w->fail("the GPU fell off the bus"));
    }
    {
        auto w = require(chat.store.beginAssistantMessage(chat.conversation, chat.prompt));
        dropped = w->messageId();
        w->append("cut off mid");
    }
    auto m = chat.seenByOthers(done);
    CHECK(m.status == MessageStatus::Complete);
    CHECK(m.content == "complete answer");
    REQUIRE(m.stats.has_value());
    CHECK(m.stats->tokensPerSecond == 42.5);
    CHECK(m.stats->stopReason == "eos");
    CHECK(m.stats->backend == "cpu");
    m = chat.seenByOthers(failed);
    CHECK(m.status == MessageStatus::Error);
    CHECK(m.errorText == "the GPU fell off the bus");
    CHECK(m.content == "half an ans");
    REQUIRE(m.stats.has_value());
    CHECK(m.stats->stopReason == "error");
    m = chat.seenByOthers(dropped);
    CHECK(m.status == MessageStatus::Interrupted);
    CHECK(m.content == "cut off mid");
    CHECK_FALSE(m.stats.has_value());
    CHECK(require(chat.store.siblings(done)).size() == 3);
}

TEST_CASE("opening recovers answers whose writer is gone, and leaves live ones alone") {
    Chat chat;
    auto live = require(chat.store.beginAssistantMessage(chat.conversation, chat.prompt));
    live->append("still going");
    require(live->flush());
    MessageId deadPid = 0, otherBoot = 0, noWriter = 0, otherHost = 0, silentHost = 0;
    {
        // This process's identity ("host/boot/pid/start") with one field changed.
        const std::string me = detail::currentWriterIdentity();
        const auto startSlash = me.rfind('/');
        const auto pidSlash = me.rfind('/', startSlash - 1);
        const auto bootSlash = me.rfind('/', pidSlash - 1);
        const std::string host = me.substr(0, bootSlash);
        const std::string boot = me.substr(bootSlash + 1, pidSlash - bootSlash - 1);
        const std::string start = me.substr(startSlash + 1);
        detail::Database db(chat.file.string(), SQLITE_OPEN_READWRITE, chat.file);
        auto insert = [&](const char* writer, TimestampMs updatedAt) {
            detail::Statement st(db,
                                 "INSERT INTO messages(conversation_id, parent_id, role, content, status, writer, "
                                 "created_at, updated_at) VALUES (?, ?, 'assistant', 'partial', 'streaming', ?, 1, ?)");
            st.bind(1, chat.conversation).bind(2, chat.prompt).bind(4, updatedAt);
            if (writer) {
                st.bind(3, writer);
            } else {
                st.bindNull(3);
            }
            st.run();
            return db.lastInsertId();
        };
        const TimestampMs now = detail::nowMs();
        deadPid = insert((host + "/" + boot + "/2147483000/" + start).c_str(), now);  // no such process
        otherBoot = insert((host + "/0ther800/" + std::to_string(getpid()) + "/" + start).c_str(), now);
        noWriter = insert(nullptr, now);
        otherHost = insert("some-other-machine/b/1/1", now);
        silentHost = insert("some-other-machine/b/1/1", now - 2 * 3600 * 1000);
    }
    auto second = openStore(chat.file);  // what another process (or the next start) does
    CHECK(require(second.message(deadPid)).status == MessageStatus::Interrupted);
    CHECK(require(second.message(deadPid)).content == "partial");
    CHECK(require(second.message(otherBoot)).status == MessageStatus::Interrupted);
    CHECK(require(second.message(noWriter)).status == MessageStatus::Interrupted);
    CHECK(require(second.message(otherHost)).status == MessageStatus::Streaming);
    CHECK(require(second.message(silentHost)).status == MessageStatus::Interrupted);
    CHECK(require(second.message(live->messageId())).status == MessageStatus::Streaming);
    live->append(" and done");
    require(live->finish({}));
    CHECK(require(second.message(live->messageId())).content == "still going and done");
    CHECK(require(second.recoverInterrupted()) == 0);
}

TEST_CASE("a writer killed with SIGKILL while streaming: every committed batch is there after reopening") {
    Chat chat;
    const auto conversation = chat.conversation;
    const auto prompt = chat.prompt;
    const auto file = chat.file;
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // The child: a generation that never ends, reporting each durable batch to the parent.
        close(fds[0]);
        auto store = ConversationStore::open(file);
        if (!store) _exit(2);
        WriterOptions options;
        options.flushInterval = 20ms;
        const int out = fds[1];
        options.onCommit = [out](const CommitInfo& info) {
            const std::string line = std::to_string(info.messageId) + " " + std::to_string(info.tokensCommitted) + " " +
                                     std::to_string(info.bytesCommitted) + "\n";
            if (write(out, line.data(), line.size()) < 0) _exit(3);
        };
        auto writer = store->beginAssistantMessage(conversation, prompt, options);
        if (!writer) _exit(4);
        for (int i = 0;; ++i) {
            (*writer)->append(tokenText(i), makeRecord(i));
            usleep(300);
        }
    }
    close(fds[1]);
    FILE* in = fdopen(fds[0], "r");
    REQUIRE(in != nullptr);
    long long message = 0, tokens = 0, bytes = 0;
    int reports = 0;
    while (reports < 8 && std::fscanf(in, "%lld %lld %lld", &message, &tokens, &bytes) == 3) ++reports;
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    std::fclose(in);
    REQUIRE(reports == 8);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK(tokens > 8);

    // Reopen, as the app does after a crash.
    chat.store = openStore(file);
    const auto m = require(chat.store.message(message));
    CHECK(m.status == MessageStatus::Interrupted);
    // At least everything reported committed, and exactly the stream's prefix (whole tokens).
    CHECK(m.tokenCount >= tokens);
    CHECK(static_cast<long long>(m.content.size()) >= bytes);
    CHECK(m.content == expectedText(static_cast<int>(m.tokenCount)));
    const auto records = require(chat.store.tokens(message));
    REQUIRE(static_cast<std::int64_t>(records.size()) == m.tokenCount);
    std::uint32_t offset = 0;
    for (int i = 0; i < static_cast<int>(records.size()); ++i) {
        const auto length = static_cast<std::uint32_t>(tokenText(i).size());
        REQUIRE(records[i] == expectedRecord(i, offset, length));
        offset += length;
    }
    const auto report = require(chat.store.checkIntegrity());
    CHECK_MESSAGE(report.ok, (report.problems.empty() ? "" : report.problems.front()));
    CHECK(require(chat.store.activeLeaf(conversation)) == message);
}

TEST_CASE("two processes write to the same file at the same time") {
    Chat chat;
    const auto file = chat.file;
    const auto other = require(chat.store.createConversation({.title = "other process"}));
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        auto store = ConversationStore::open(file);
        if (!store) _exit(2);
        std::optional<MessageId> parent;
        for (int i = 0; i < 150; ++i) {
            auto id = store->appendUserMessage(other, parent, "child " + std::to_string(i));
            if (!id) _exit(3);
            parent = *id;
        }
        auto w = store->beginAssistantMessage(other, parent, WriterOptions{.flushInterval = 5ms});
        if (!w) _exit(4);
        for (int i = 0; i < 200; ++i) (*w)->append("x", makeRecord(i));
        _exit((*w)->finish({}) ? 0 : 5);
    }
    std::optional<MessageId> parent = chat.prompt;
    for (int i = 0; i < 150; ++i) parent = require(chat.store.appendUserMessage(chat.conversation, parent, "parent"));
    auto w = require(chat.store.beginAssistantMessage(chat.conversation, parent, WriterOptions{.flushInterval = 5ms}));
    for (int i = 0; i < 200; ++i) w->append("y", makeRecord(i));
    require(w->finish({}));
    int status = 0;
    waitpid(child, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(require(chat.store.allMessages(other)).size() == 151);
    CHECK(require(chat.store.allMessages(chat.conversation)).size() == 152);
    CHECK(require(chat.store.activePath(other)).back().content == std::string(200, 'x'));
    CHECK(require(chat.store.checkIntegrity()).ok);
}

TEST_CASE("a commit blocked by another process's lock is retried without losing text") {
    Chat chat;
    OpenOptions quick;
    quick.busyTimeout = 30ms;
    auto store = openStore(chat.file, quick);
    auto writer =
        require(store.beginAssistantMessage(chat.conversation, chat.prompt, WriterOptions{.backgroundFlush = false}));
    writer->append("before ");
    detail::Database other(chat.file.string(), SQLITE_OPEN_READWRITE, chat.file);
    other.exec("BEGIN IMMEDIATE");
    auto blocked = writer->flush();
    REQUIRE_FALSE(blocked.hasValue());
    CHECK(blocked.error().code() == ErrorCode::Busy);
    CHECK(writer->lastError().has_value());
    writer->append("after");
    other.exec("COMMIT");
    require(writer->finish({}));
    CHECK_FALSE(writer->lastError().has_value());
    CHECK(chat.seenByOthers(writer->messageId()).content == "before after");
}

TEST_CASE("readers on another thread while the writer streams") {
    Chat chat;
    auto writer =
        require(chat.store.beginAssistantMessage(chat.conversation, chat.prompt, WriterOptions{.flushInterval = 2ms}));
    std::atomic<bool> done{false};
    std::thread generator([&] {
        for (int i = 0; i < 1500; ++i) writer->append(tokenText(i), makeRecord(i));
        done = true;
    });
    std::size_t lastSize = 0;
    bool grewMonotonically = true;
    while (!done) {
        const auto path = require(chat.store.activePath(chat.conversation));
        const std::size_t size = path.back().content.size();
        grewMonotonically = grewMonotonically && size >= lastSize;
        lastSize = size;
    }
    generator.join();
    require(writer->finish({}));
    CHECK(grewMonotonically);
    CHECK(require(chat.store.message(writer->messageId())).content == expectedText(1500));
    CHECK(require(chat.store.tokens(writer->messageId())).size() == 1500);
}

TEST_CASE("an answer whose conversation is purged while streaming stops cleanly") {
    Chat chat;
    auto writer = require(
        chat.store.beginAssistantMessage(chat.conversation, chat.prompt, WriterOptions{.backgroundFlush = false}));
    writer->append("text");
    require(writer->flush());
    require(chat.store.softDeleteConversation(chat.conversation));
    require(chat.store.purgeConversation(chat.conversation));
    writer->append("more");
    auto result = writer->flush();
    REQUIRE_FALSE(result.hasValue());
    CHECK(result.error().code() == ErrorCode::NotFound);
    CHECK(writer->isFinished());
}

TEST_CASE("prompt routing is stored with the answer, read back exactly, replaced, and deleted with it") {
    Chat chat;
    PromptRouting prompt;
    prompt.firstPosition = 12;
    prompt.promptTokens = 15;
    for (int i = 0; i < 3; ++i) {
        TokenRecord r = makeRecord(i);
        r.logprob.reset();  // prompt tokens are given, not sampled
        r.topLogprobs.clear();
        r.textOffset = static_cast<std::uint32_t>(prompt.text.size());
        const std::string text = i == 1 ? std::string("\xe4\xb8", 2) : tokenText(i);  // a partial character too
        r.textLength = static_cast<std::uint32_t>(text.size());
        prompt.text += text;
        prompt.records.push_back(r);
    }
    MessageId id = 0;
    {
        auto w = require(chat.store.beginAssistantMessage(chat.conversation, chat.prompt, {.backgroundFlush = false}));
        id = w->messageId();
        PromptRouting first = prompt;
        first.firstPosition = 99;
        w->setPromptRouting(first);
        w->setPromptRouting(prompt);  // the later one wins
        w->append("answer", makeRecord(7));
        require(w->flush());
        // Durable before the answer ends: another connection sees it.
        auto other = openStore(chat.file, {.mode = OpenMode::ReadOnly});
        const auto stored = require(other.promptRouting(id));
        REQUIRE(stored.has_value());
        CHECK(*stored == prompt);
        require(w->finish({}));
    }
    CHECK_FALSE(require(chat.store.promptRouting(chat.prompt)).has_value());  // a user message has none
    CHECK(chat.store.promptRouting(987654).error().code() == ErrorCode::NotFound);
    require(chat.store.softDeleteConversation(chat.conversation));
    require(chat.store.purgeConversation(chat.conversation));
    CHECK(chat.store.promptRouting(id).error().code() == ErrorCode::NotFound);
    auto raw = dsv2::storage::detail::Database(chat.file.string(), SQLITE_OPEN_READONLY, chat.file);
    CHECK(raw.queryInt("SELECT count(*) FROM prompt_routing") == 0);  // deleted with its message
}
