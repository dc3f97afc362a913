// StreamingWriter: the generation thread appends into an in-memory buffer (no disk I/O per token);
// batches are committed by a background thread at least every flushInterval, or early when the
// buffer is large. A failed commit (e.g. Busy) keeps the batch buffered and is retried.
#include "dsv2/storage/streaming_writer.h"

#include "dsv2/storage/conversation_store.h"

#include "connection.h"
#include "store_internal.h"
#include "token_codec.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace dsv2::storage {

using namespace detail;
using Clock = std::chrono::steady_clock;

struct StreamingWriter::Impl {
    struct Final {
        MessageStatus status;
        std::optional<GenerationStats> stats;
        std::string errorText;
    };

    std::shared_ptr<Connection> conn;
    MessageId messageId = 0;
    ConversationId conversationId = 0;
    WriterOptions options;

    // Producer side (append), guarded by pendingMutex.
    mutable std::mutex pendingMutex;
    std::string pendingText;
    std::vector<TokenRecord> pendingTokens;
    std::size_t pendingRecordBytes = 0;
    std::int64_t bytesAppended = 0;
    std::int64_t tokensAppended = 0;
    bool warnedBadRouting = false;
    std::optional<PromptRouting> pendingPrompt;  // written with the next commit

    // Commit side, guarded by flushMutex (one commit at a time, in order).
    std::mutex flushMutex;
    std::int64_t bytesCommitted = 0;
    std::int64_t tokensCommitted = 0;
    int batches = 0;
    int nextSeq = 0;
    std::atomic<Clock::rep> lastCommitTicks{Clock::now().time_since_epoch().count()};

    // Background committer.
    std::thread thread;
    std::mutex wakeMutex;
    std::condition_variable wake;
    bool stopping = false;
    bool urgent = false;

    std::atomic<bool> finished{false};
    mutable std::mutex errorMutex;
    std::optional<Error> lastError;

    Impl(std::shared_ptr<Connection> c, MessageId message, ConversationId conversation, WriterOptions o)
        : conn(std::move(c)), messageId(message), conversationId(conversation), options(std::move(o)) {
        if (options.flushInterval <= std::chrono::milliseconds(0)) options.flushInterval = std::chrono::milliseconds(1);
        if (options.backgroundFlush) thread = std::thread([this] { run(); });
    }

    ~Impl() { stopThread(); }

    void stopThread() {
        {
            std::lock_guard lock(wakeMutex);
            stopping = true;
        }
        wake.notify_all();
        if (thread.joinable()) thread.join();
    }

    void run() {
        std::unique_lock lock(wakeMutex);
        while (!stopping) {
            const auto deadline = Clock::time_point(Clock::duration(lastCommitTicks.load())) + options.flushInterval;
            wake.wait_until(lock, deadline, [&] { return stopping || urgent || Clock::now() >= deadline; });
            if (stopping) break;
            urgent = false;
            lock.unlock();
            (void)commit(nullptr);  // failures are latched in lastError and retried next time
            lock.lock();
        }
    }

    void append(std::string_view text, TokenRecord* token) {
        if (finished.load()) {
            spdlog::warn("storage: text appended to message {} after it was finished was dropped", messageId);
            return;
        }
        bool large = false;
        {
            std::lock_guard lock(pendingMutex);
            if (token) {
                token->textOffset = static_cast<std::uint32_t>(bytesAppended);
                token->textLength = static_cast<std::uint32_t>(text.size());
                const std::size_t n = std::size_t(token->moeLayers) * token->topK;
                if (token->expertIds.size() != n || token->expertWeights.size() != n) {
                    if (!warnedBadRouting) {
                        spdlog::warn(
                            "storage: routing of a token of message {} does not match its shape ({} x {}); "
                            "routing not stored for such tokens",
                            messageId, token->moeLayers, token->topK);
                        warnedBadRouting = true;
                    }
                    token->moeLayers = 0;
                    token->topK = 0;
                    token->expertIds.clear();
                    token->expertWeights.clear();
                }
                pendingRecordBytes += encodedSize(*token);
                pendingTokens.push_back(std::move(*token));
                ++tokensAppended;
            }
            pendingText.append(text);
            bytesAppended += static_cast<std::int64_t>(text.size());
            large = pendingText.size() + pendingRecordBytes >= options.maxPendingBytes ||
                    pendingTokens.size() >= options.maxPendingTokens;
        }
        if (options.backgroundFlush) {
            if (large) {
                {
                    std::lock_guard lock(wakeMutex);
                    urgent = true;
                }
                wake.notify_one();
            }
        } else {
            const auto last = Clock::time_point(Clock::duration(lastCommitTicks.load()));
            if (large || Clock::now() - last >= options.flushInterval) (void)commit(nullptr);
        }
    }

    void setError(std::optional<Error> error) {
        std::lock_guard lock(errorMutex);
        lastError = std::move(error);
    }

    // Commits what is committable; with `final`, everything, plus the final status in the same
    // transaction.
    Expected<void> commit(const Final* final) {
        std::lock_guard flushLock(flushMutex);
        lastCommitTicks.store(Clock::now().time_since_epoch().count());
        std::string text;
        std::vector<TokenRecord> tokens;
        std::size_t tokenBytes = 0;
        std::optional<PromptRouting> prompt;
        {
            std::lock_guard lock(pendingMutex);
            prompt = std::move(pendingPrompt);
            pendingPrompt.reset();
            // Text stops at a whole UTF-8 character, and a token goes with the batch that holds all of
            // its text, so that what a crash leaves behind is always consistent.
            const std::size_t cut = final ? pendingText.size() : utf8SafePrefix(pendingText);
            const auto committedEnd = bytesCommitted + static_cast<std::int64_t>(cut);
            std::size_t k = 0;
            while (k < pendingTokens.size() &&
                   (final || std::int64_t(pendingTokens[k].textOffset) + pendingTokens[k].textLength <= committedEnd)) {
                tokenBytes += encodedSize(pendingTokens[k]);
                ++k;
            }
            text = pendingText.substr(0, cut);
            pendingText.erase(0, cut);
            tokens.assign(std::make_move_iterator(pendingTokens.begin()),
                          std::make_move_iterator(pendingTokens.begin() + static_cast<std::ptrdiff_t>(k)));
            pendingTokens.erase(pendingTokens.begin(), pendingTokens.begin() + static_cast<std::ptrdiff_t>(k));
            pendingRecordBytes -= std::min(pendingRecordBytes, tokenBytes);
        }
        if (text.empty() && tokens.empty() && !prompt && !final) return {};

        auto result = guarded(*conn, fmt::format("saving the answer (message {})", messageId), [&] {
            Database& db = conn->db;
            const auto now = nowMs();
            Transaction tx(db);
            Statement update(db,
                             "UPDATE messages SET content = content || ?, updated_at = ? WHERE id = ? AND "
                             "status = 'streaming'");
            update.bind(1, text).bind(2, now).bind(3, messageId).run();
            if (db.changes() == 0) {
                throwError(ErrorCode::NotFound,
                           fmt::format("message {} was deleted or finished by someone else while it was being written",
                                       messageId));
            }
            if (!tokens.empty()) {
                Statement insert(db,
                                 "INSERT INTO token_chunks(message_id, seq, first_token, token_count, data) "
                                 "VALUES (?, ?, ?, ?, ?)");
                insert.bind(1, messageId)
                    .bind(2, nextSeq)
                    .bind(3, tokensCommitted)
                    .bind(4, static_cast<std::int64_t>(tokens.size()))
                    .bindBlob(5, encodeTokenRecords(tokens))
                    .run();
            }
            if (prompt) insertPromptRouting(db, messageId, *prompt);
            if (final) {
                if (final->stats) insertStats(db, messageId, *final->stats);
                Statement done(db, "UPDATE messages SET status = ?, error_text = ?, writer = NULL WHERE id = ?");
                done.bind(1, messageStatusName(final->status)).bind(2, final->errorText).bind(3, messageId).run();
            }
            touchConversation(db, conversationId, now);
            tx.commit();
        });

        if (!result) {
            if (result.error().code() == ErrorCode::NotFound) {
                finished.store(true);  // nothing left to write into
            } else {
                // Keep the batch: the next commit retries it.
                std::lock_guard lock(pendingMutex);
                pendingText.insert(0, text);
                pendingTokens.insert(pendingTokens.begin(), std::make_move_iterator(tokens.begin()),
                                     std::make_move_iterator(tokens.end()));
                pendingRecordBytes += tokenBytes;
                if (prompt && !pendingPrompt) pendingPrompt = std::move(prompt);
            }
            spdlog::warn("storage: {}", result.error().message());
            setError(result.error());
            return result;
        }
        bytesCommitted += static_cast<std::int64_t>(text.size());
        tokensCommitted += static_cast<std::int64_t>(tokens.size());
        if (!tokens.empty()) ++nextSeq;
        ++batches;
        setError(std::nullopt);
        if (options.onCommit) options.onCommit(CommitInfo{messageId, batches, tokensCommitted, bytesCommitted});
        return {};
    }

    Expected<void> end(const Final& final) {
        if (finished.load()) {
            return Error(ErrorCode::InvalidArgument, fmt::format("message {} was already finished", messageId));
        }
        stopThread();
        auto result = commit(&final);
        if (result) finished.store(true);
        return result;
    }
};

StreamingWriter::StreamingWriter(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

StreamingWriter::~StreamingWriter() {
    if (!m_impl || m_impl->finished.load()) return;
    // Dropped without finish(): keep what was generated and say it was cut off.
    auto result = m_impl->end({MessageStatus::Interrupted, std::nullopt, {}});
    if (!result) {
        spdlog::error("storage: could not save the end of message {}: {}", m_impl->messageId, result.error().message());
    }
}

MessageId StreamingWriter::messageId() const { return m_impl->messageId; }
ConversationId StreamingWriter::conversationId() const { return m_impl->conversationId; }

void StreamingWriter::append(std::string_view text) { m_impl->append(text, nullptr); }
void StreamingWriter::append(std::string_view text, TokenRecord token) { m_impl->append(text, &token); }

void StreamingWriter::setPromptRouting(PromptRouting routing) {
    std::lock_guard lock(m_impl->pendingMutex);
    m_impl->pendingPrompt = std::move(routing);
}

Expected<void> StreamingWriter::flush() {
    if (m_impl->finished.load()) return {};
    return m_impl->commit(nullptr);
}

Expected<void> StreamingWriter::finish(const GenerationStats& stats) {
    return m_impl->end({MessageStatus::Complete, stats, {}});
}

Expected<void> StreamingWriter::fail(const std::string& errorText, const GenerationStats& stats) {
    GenerationStats s = stats;
    if (s.stopReason.empty()) s.stopReason = "error";
    return m_impl->end({MessageStatus::Error, s, errorText});
}

bool StreamingWriter::isFinished() const { return m_impl->finished.load(); }

std::int64_t StreamingWriter::tokensAppended() const {
    std::lock_guard lock(m_impl->pendingMutex);
    return m_impl->tokensAppended;
}

std::int64_t StreamingWriter::bytesAppended() const {
    std::lock_guard lock(m_impl->pendingMutex);
    return m_impl->bytesAppended;
}

std::optional<Error> StreamingWriter::lastError() const {
    std::lock_guard lock(m_impl->errorMutex);
    return m_impl->lastError;
}

// ConversationStore::beginAssistantMessage -----------------------------------------------------------

Expected<std::unique_ptr<StreamingWriter>> ConversationStore::beginAssistantMessage(ConversationId conversation,
                                                                                    std::optional<MessageId> parent) {
    return beginAssistantMessage(conversation, parent, WriterOptions{});
}

Expected<std::unique_ptr<StreamingWriter>> ConversationStore::beginAssistantMessage(ConversationId conversation,
                                                                                    std::optional<MessageId> parent,
                                                                                    const WriterOptions& options) {
    auto id = guarded(*m_conn, fmt::format("starting an answer in conversation {}", conversation), [&] {
        m_conn->requireWritable();
        Database& db = m_conn->db;
        Transaction tx(db);
        checkAppendTarget(db, conversation, parent);
        const auto now = nowMs();
        Statement st(db,
                     "INSERT INTO messages(conversation_id, parent_id, role, content, status, writer, created_at, "
                     "updated_at) VALUES (?, ?, 'assistant', '', 'streaming', ?, ?, ?)");
        st.bind(1, conversation).bind(2, parent).bind(3, m_conn->writerIdentity).bind(4, now).bind(5, now).run();
        const MessageId message = db.lastInsertId();
        makeActive(db, message);
        touchConversation(db, conversation, now);
        tx.commit();
        return message;
    });
    if (!id) return id.error();
    auto impl = std::make_unique<StreamingWriter::Impl>(m_conn, *id, conversation, options);
    return std::unique_ptr<StreamingWriter>(new StreamingWriter(std::move(impl)));
}

}  // namespace dsv2::storage
