// Opening a history file: refuse what is not ours or is damaged before SQLite writes anything, then
// WAL, foreign keys, busy timeout, migrations (with a backup first) and crash recovery.
#include "dsv2/storage/conversation_store.h"

#include "connection.h"
#include "file_probe.h"
#include "process_identity.h"
#include "schema.h"
#include "store_internal.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cctype>

#include <sys/stat.h>
#include <unistd.h>

namespace dsv2::storage {

using namespace detail;

namespace {

// A file:// URI for the immutable fallback (every byte that is not unreserved is percent-encoded).
std::string fileUri(const std::filesystem::path& file, const char* query) {
    static const char* hex = "0123456789ABCDEF";
    std::string uri = "file:";
    for (unsigned char c : std::filesystem::absolute(file).string()) {
        if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
            uri += static_cast<char>(c);
        } else {
            uri += '%';
            uri += hex[c >> 4];
            uri += hex[c & 15];
        }
    }
    return uri + "?" + query;
}

// Root can write a chmod 444 file; we still treat a file without write bits as write-protected.
bool isWriteProtected(const std::filesystem::path& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return false;
    return (st.st_mode & 0222) == 0 || ::access(file.c_str(), W_OK) != 0;
}

void refuseBadFile(const std::filesystem::path& file, const FileProbe& probe, OpenMode mode) {
    const std::string name = file.string();
    switch (probe.kind) {
    case FileKind::Missing:
        if (mode == OpenMode::ReadOnly) {
            throwError(ErrorCode::NotFound,
                       fmt::format("{} does not exist (no history has been saved there yet).", name));
        }
        return;
    case FileKind::Empty:
        if (mode == OpenMode::ReadOnly) {
            throwError(ErrorCode::NotFound, fmt::format("{} is empty (no history has been saved there yet).", name));
        }
        return;
    case FileKind::NotSqlite:
        throwError(ErrorCode::NotADatabase,
                   fmt::format("{} is not a dsv2-chat history database: {}. It was not changed; choose another file "
                               "or move this one away to start a new history.",
                               name, probe.detail));
    case FileKind::Truncated:
        throwError(ErrorCode::Corrupt,
                   fmt::format("{} is damaged: {}. It was not changed; restore a backup (made with `dsv2 history "
                               "backup`) or move it away to start a new history.",
                               name, probe.detail));
    case FileKind::Unreadable: throwError(ErrorCode::Io, fmt::format("cannot read {}: {}.", name, probe.detail));
    case FileKind::Sqlite: return;
    }
}

// The first read. Errors here happen before anything was written.
struct Header {
    std::int64_t version = 0;
    std::int64_t applicationId = 0;
    std::int64_t objects = 0;
};

Header readHeader(Database& db) {
    Header h;
    h.version = db.queryInt("PRAGMA user_version");
    h.applicationId = db.queryInt("PRAGMA application_id");
    h.objects = db.queryInt("SELECT count(*) FROM sqlite_schema");
    return h;
}

std::filesystem::path backupNameFor(const std::filesystem::path& file, std::int64_t version) {
    auto candidate = file;
    candidate += fmt::format(".v{}.bak", version);
    for (int i = 1; std::filesystem::exists(candidate); ++i) {
        candidate = file;
        candidate += fmt::format(".v{}.bak.{}", version, i);
    }
    return candidate;
}

int recoverLocked(Connection& conn) {
    Database& db = conn.db;
    std::vector<MessageId> gone;
    {
        // A writer on another host (a shared folder, a container with a new name) cannot be asked;
        // one that has committed nothing for an hour is taken to be gone.
        constexpr TimestampMs kSilentForeignWriterMs = 60 * 60 * 1000;
        const TimestampMs now = nowMs();
        Statement st(db, "SELECT id, writer, updated_at FROM messages WHERE status = 'streaming'");
        while (st.step()) {
            const std::string writer = st.isNull(1) ? std::string() : st.columnText(1);
            const WriterState state = writer.empty() ? WriterState::Gone : writerState(writer);
            const bool silent = now - st.columnInt(2) > kSilentForeignWriterMs;
            if (state == WriterState::Gone || (state == WriterState::Unknown && silent))
                gone.push_back(st.columnInt(0));
        }
    }
    if (gone.empty()) return 0;
    Transaction tx(db);
    Statement mark(db,
                   "UPDATE messages SET status = 'interrupted', writer = NULL, updated_at = MAX(updated_at, ?) "
                   "WHERE id = ? AND status = 'streaming'");
    const auto now = nowMs();
    int count = 0;
    for (MessageId id : gone) {
        mark.reset();
        mark.bind(1, now).bind(2, id).run();
        count += db.changes();
    }
    tx.commit();
    spdlog::warn("storage: {} answer(s) in {} were cut off by a crash or kill; kept as interrupted", count,
                 conn.path.string());
    return count;
}

std::shared_ptr<Connection> openConnection(const std::filesystem::path& file, const OpenOptions& options) {
    if (file.empty()) throwError(ErrorCode::InvalidArgument, "no history database file was given");
    const bool readOnly = options.mode == OpenMode::ReadOnly;
    const FileProbe probe = probeDatabaseFile(file);
    refuseBadFile(file, probe, options.mode);
    if (!readOnly && probe.kind != FileKind::Missing && isWriteProtected(file)) {
        throwError(ErrorCode::ReadOnly,
                   fmt::format("{} is write-protected, so it was not opened for writing (nothing was changed). "
                               "Viewing, search and export still work (they open it read-only); fix its "
                               "permissions to keep chatting into it.",
                               file.string()));
    }
    if (!readOnly && probe.kind == FileKind::Missing && file.has_parent_path()) {
        std::error_code ec;
        std::filesystem::create_directories(file.parent_path(), ec);
        if (ec) {
            throwError(ErrorCode::Io, fmt::format("cannot create the folder {} for the history: {}",
                                                  file.parent_path().string(), ec.message()));
        }
    }

    auto conn = std::make_shared<Connection>();
    conn->path = file;
    conn->readOnly = readOnly;
    conn->writerIdentity = currentWriterIdentity();
    const int flags =
        SQLITE_OPEN_NOMUTEX | (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    conn->db = Database(file.string(), flags, file);
    sqlite3_busy_timeout(conn->db.handle(), static_cast<int>(options.busyTimeout.count()));

    Header header;
    try {
        header = readHeader(conn->db);
    } catch (const StorageException& e) {
        // A write-ahead-log file in a folder we cannot write cannot be opened read-only the usual way
        // (SQLite needs its -shm file); "immutable" reads the file as it is, without locks.
        const auto code = e.error().code();
        if (!readOnly || (code != ErrorCode::Io && code != ErrorCode::ReadOnly)) throw;
        spdlog::info("storage: opening {} as immutable ({})", file.string(), e.error().message());
        conn->db =
            Database(fileUri(file, "immutable=1"), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, file);
        header = readHeader(conn->db);
    }

    const int latest = latestSchemaVersion();
    if (header.version > latest) {
        throwError(ErrorCode::NewerSchema,
                   fmt::format("{} was written by a newer dsv2-chat (history format {}; this build knows up to {}). "
                               "It was not changed; update dsv2-chat to open it.",
                               file.string(), header.version, latest));
    }
    const bool blank = header.version == 0 && header.objects == 0 &&
                       (header.applicationId == 0 || header.applicationId == kApplicationId);
    if (!blank && header.applicationId != kApplicationId) {
        throwError(ErrorCode::NotADatabase,
                   fmt::format("{} is another program's SQLite database, not a dsv2-chat history. It was not "
                               "changed; choose another file.",
                               file.string()));
    }
    if (header.version == 0 && !blank) {
        throwError(ErrorCode::NotADatabase,
                   fmt::format("{} has dsv2-chat's mark but no history tables; it was not changed.", file.string()));
    }
    conn->db.exec("PRAGMA foreign_keys = ON");
    // 16 MiB of page cache (SQLite's default is 2 MiB): searches and long conversations stay in memory.
    conn->db.exec("PRAGMA cache_size = -16384");

    if (readOnly) {
        if (blank) {
            throwError(ErrorCode::NotFound, fmt::format("{} holds no history yet.", file.string()));
        }
        if (header.version < latest) {
            throwError(ErrorCode::OlderSchema,
                       fmt::format("{} uses an older history format ({}; now {}) and must be upgraded, which a "
                                   "read-only open cannot do. Open it once with write access (e.g. in dsv2-chat).",
                                   file.string(), header.version, latest));
        }
        return conn;
    }

    if (conn->db.queryText("PRAGMA journal_mode") != "wal") {
        const std::string mode = conn->db.queryText("PRAGMA journal_mode = WAL");
        if (mode != "wal")
            spdlog::warn("storage: {} stays in journal mode {} (WAL not available)", file.string(), mode);
    }
    // NORMAL in WAL mode: a commit survives a crash or kill of the process (only a power cut can lose
    // the last commits), at a fraction of FULL's cost per streamed batch.
    conn->db.exec("PRAGMA synchronous = NORMAL");

    if (header.version < latest) {
        if (!blank && options.backupBeforeMigration) {
            const auto backup = backupNameFor(file, header.version);
            onlineBackup(conn->db, backup);
            spdlog::info("storage: before upgrading {} from format {} a copy was saved as {}", file.string(),
                         header.version, backup.string());
        }
        migrate(conn->db, latest);
    }
    if (options.recoverInterrupted) recoverLocked(*conn);
    return conn;
}

}  // namespace

ConversationStore::ConversationStore(std::shared_ptr<Connection> connection) : m_conn(std::move(connection)) {}
ConversationStore::ConversationStore(ConversationStore&&) noexcept = default;
ConversationStore& ConversationStore::operator=(ConversationStore&&) noexcept = default;
ConversationStore::~ConversationStore() = default;

Expected<ConversationStore> ConversationStore::open(const std::filesystem::path& path, const OpenOptions& options) {
    try {
        return ConversationStore(openConnection(path, options));
    } catch (const StorageException& e) {
        return e.error();
    } catch (const std::exception& e) {
        return Error(ErrorCode::Internal, fmt::format("opening {}: unexpected error: {}", path.string(), e.what()));
    }
}

int ConversationStore::latestSchemaVersion() { return detail::latestSchemaVersion(); }
const std::filesystem::path& ConversationStore::path() const { return m_conn->path; }
bool ConversationStore::isReadOnly() const { return m_conn->readOnly; }

Expected<int> ConversationStore::recoverInterrupted() {
    return guarded(*m_conn, "recovering interrupted answers", [&] {
        m_conn->requireWritable();
        return recoverLocked(*m_conn);
    });
}

}  // namespace dsv2::storage
