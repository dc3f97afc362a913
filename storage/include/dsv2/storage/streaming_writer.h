#pragma once
// StreamingWriter: persists an assistant answer while it is generated. Called per token from the
// generation thread (never the GUI thread). Text and token records are buffered in memory and
// committed in batches, by a background thread at least every flushInterval and sooner when the
// buffer is large, so a crash or kill loses at most the last interval. A message whose writer dies
// is found as 'streaming' by the next open() and marked interrupted.

#include "dsv2/storage/error.h"
#include "dsv2/storage/types.h"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

namespace dsv2::storage {

struct CommitInfo {
    MessageId messageId = 0;
    int batch = 0;                     // 1, 2, ...
    std::int64_t tokensCommitted = 0;  // token records durable so far
    std::int64_t bytesCommitted = 0;   // content bytes durable so far
};

struct WriterOptions {
    std::chrono::milliseconds flushInterval{250};
    std::size_t maxPendingBytes = 256 * 1024;  // text + records; commit early past this
    std::size_t maxPendingTokens = 1024;
    // true: a background thread commits on time even when tokens stop coming (default).
    // false: commits happen inside append()/flush()/finish() only (deterministic, for tests).
    bool backgroundFlush = true;
    // Called after each committed batch, on the committing thread. Must be quick.
    std::function<void(const CommitInfo&)> onCommit;
};

class StreamingWriter {
public:
    ~StreamingWriter();  // not finished: commits what is buffered and marks the answer interrupted
    StreamingWriter(const StreamingWriter&) = delete;
    StreamingWriter& operator=(const StreamingWriter&) = delete;

    MessageId messageId() const;
    ConversationId conversationId() const;

    // Appends text that has no token record (e.g. a detokenizer flush).
    void append(std::string_view text);
    // Appends one token's text with its record; textOffset/textLength are filled in here.
    void append(std::string_view text, TokenRecord token);

    // The routing of this answer's prompt tokens; stored with the next commit (replaces an earlier one).
    void setPromptRouting(PromptRouting routing);

    // Commits everything buffered so far (text stops at a whole UTF-8 character).
    Expected<void> flush();
    // Commits the rest, stores the stats and marks the message complete.
    Expected<void> finish(const GenerationStats& stats);
    // Commits the rest and marks the message as failed with `errorText`.
    Expected<void> fail(const std::string& errorText, const GenerationStats& stats = {});

    bool isFinished() const;
    std::int64_t tokensAppended() const;
    std::int64_t bytesAppended() const;
    // The last commit failure (e.g. Busy), if any; a failed batch stays buffered and is retried.
    std::optional<Error> lastError() const;

    struct Impl;

private:
    friend class ConversationStore;
    explicit StreamingWriter(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

}  // namespace dsv2::storage
