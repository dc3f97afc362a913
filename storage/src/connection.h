#pragma once
// The shared state behind a ConversationStore and its StreamingWriters: one SQLite connection and
// the mutex that serialises every use of it (a writer's background thread commits through it too).

#include "sqlite_db.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <filesystem>
#include <mutex>
#include <new>
#include <string>
#include <type_traits>

namespace dsv2::storage::detail {

struct Connection {
    Database db;
    std::recursive_mutex mutex;  // recursive: transaction() bodies call public methods again
    std::filesystem::path path;
    bool readOnly = false;
    std::string writerIdentity;  // this process, as stored in messages.writer while streaming

    void requireWritable() const {
        if (readOnly) {
            throwError(ErrorCode::ReadOnly,
                       fmt::format("{} is open read-only (the file is write-protected, or opened only for "
                                   "viewing); nothing was changed.",
                                   path.string()));
        }
    }
};

// Runs `body` under the connection's lock and turns any exception into an Error, so that nothing
// escapes the public API. `context` is prefixed to the message ("renaming conversation 3: ...").
template <typename Body>
auto guarded(Connection& conn, const std::string& context, Body&& body) -> Expected<std::invoke_result_t<Body>> {
    using T = std::invoke_result_t<Body>;
    try {
        std::lock_guard lock(conn.mutex);
        if constexpr (std::is_void_v<T>) {
            body();
            return {};
        } else {
            return body();
        }
    } catch (const StorageException& e) {
        return context.empty() ? e.error() : e.error().withContext(context);
    } catch (const std::bad_alloc&) {
        return Error(ErrorCode::Internal, context + ": out of memory");
    } catch (const std::exception& e) {
        spdlog::error("storage: unexpected exception while {}: {}", context, e.what());
        return Error(ErrorCode::Internal, fmt::format("{}: unexpected error: {}", context, e.what()));
    }
}

}  // namespace dsv2::storage::detail
