// Backup (SQLite online backup) and the integrity check.
#include "dsv2/storage/conversation_store.h"

#include "connection.h"
#include "schema.h"
#include "store_internal.h"
#include "token_codec.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

namespace dsv2::storage {

using namespace detail;

namespace detail {

void onlineBackup(Database& source, const std::filesystem::path& destination) {
    const std::string name = destination.string();
    if (std::filesystem::exists(destination)) {
        throwError(ErrorCode::InvalidArgument,
                   fmt::format("{} already exists; a backup never overwrites a file. Choose a new name.", name));
    }
    if (destination.has_parent_path() && !std::filesystem::is_directory(destination.parent_path())) {
        throwError(ErrorCode::NotFound, fmt::format("the folder of {} does not exist", name));
    }
    auto removePartial = [&] {
        std::error_code ec;
        std::filesystem::remove(destination, ec);
    };
    try {
        Database target(name, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, destination);
        sqlite3_backup* backup = sqlite3_backup_init(target.handle(), "main", source.handle(), "main");
        if (!backup) target.fail(sqlite3_errcode(target.handle()), "starting the backup");
        int rc = SQLITE_OK;
        // Page batches, sleeping briefly when another process holds a lock, so that a backup
        // taken while the app is chatting still completes.
        for (int busyRounds = 0;;) {
            rc = sqlite3_backup_step(backup, 256);
            if (rc == SQLITE_DONE) break;
            if (rc == SQLITE_OK) continue;
            if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && ++busyRounds < 500) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            break;
        }
        const int finishRc = sqlite3_backup_finish(backup);
        if (rc != SQLITE_DONE) target.fail(rc, "copying pages");
        if (finishRc != SQLITE_OK) target.fail(finishRc, "finishing the backup");
    } catch (...) {
        removePartial();
        throw;
    }
}

}  // namespace detail

Expected<void> ConversationStore::backupTo(const std::filesystem::path& destination) {
    return guarded(*m_conn, fmt::format("backing up {}", m_conn->path.string()), [&] {
        onlineBackup(m_conn->db, destination);
        spdlog::info("storage: backed up {} to {}", m_conn->path.string(), destination.string());
    });
}

Expected<IntegrityReport> ConversationStore::checkIntegrity() {
    return guarded(*m_conn, fmt::format("checking {}", m_conn->path.string()), [&] {
        Database& db = m_conn->db;
        IntegrityReport report;
        report.schemaVersion = static_cast<int>(db.queryInt("PRAGMA user_version"));
        auto problem = [&](std::string text) {
            report.ok = false;
            report.problems.push_back(std::move(text));
        };
        // A badly damaged file can fail a section outright; that is a finding, not an error of check.
        auto section = [&](const char* what, const auto& body) {
            try {
                body();
            } catch (const StorageException& e) {
                problem(fmt::format("{}: {}", what, e.error().message()));
            }
        };
        section("SQLite integrity check", [&] {
            Statement st(db, "PRAGMA integrity_check");
            while (st.step()) {
                const std::string line = st.columnText(0);
                if (line != "ok") problem("SQLite: " + line);
            }
        });
        section("foreign key check", [&] {
            Statement st(db, "PRAGMA foreign_key_check");
            while (st.step()) {
                problem(fmt::format("a row of {} (rowid {}) points to a missing row of {}", st.columnText(0),
                                    st.columnInt(1), st.columnText(2)));
            }
        });
        // FTS5's own check compares the index with the message text. It is phrased as an INSERT but
        // writes nothing.
        try {
            db.exec("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)");
        } catch (const StorageException& e) {
            if (e.error().code() == ErrorCode::ReadOnly) {
                spdlog::info("storage: full-text index not checked (read-only): {}", e.error().message());
            } else {
                problem("the search index does not match the messages (" + e.error().message() +
                        "); it can be rebuilt with INSERT INTO messages_fts(messages_fts) VALUES('rebuild')");
            }
        }
        const std::pair<const char*, const char*> treeChecks[] = {
            {"SELECT m.id FROM messages m JOIN messages p ON p.id = m.parent_id "
             "WHERE p.conversation_id <> m.conversation_id",
             "message {} has a parent in another conversation"},
            {"SELECT m.id FROM messages m JOIN messages c ON c.id = m.active_child_id WHERE c.parent_id IS NOT m.id",
             "message {} remembers an active child that is not its child"},
            {"SELECT c.id FROM conversations c JOIN messages m ON m.id = c.active_root_id "
             "WHERE m.parent_id IS NOT NULL OR m.conversation_id <> c.id",
             "conversation {} has an active root that is not one of its first messages"},
        };
        section("message tree check", [&] {
            for (const auto& [sql, text] : treeChecks) {
                Statement st(db, sql);
                while (st.step()) problem(fmt::format(fmt::runtime(text), st.columnInt(0)));
            }
        });
        section("token record check", [&] {
            // Token records: decodable, in order, and within their message's text.
            Statement st(db,
                         "SELECT t.message_id, t.seq, t.first_token, t.token_count, t.data, length(CAST(m.content AS BLOB)) "
                         "FROM token_chunks t JOIN messages m ON m.id = t.message_id ORDER BY t.message_id, t.seq");
            MessageId current = -1;
            std::int64_t expectedFirst = 0;
            while (st.step()) {
                const MessageId message = st.columnInt(0);
                if (message != current) {
                    current = message;
                    expectedFirst = 0;
                }
                const auto firstToken = st.columnInt(2);
                const auto count = st.columnInt(3);
                const auto contentBytes = st.columnInt(5);
                if (firstToken != expectedFirst) {
                    problem(fmt::format("message {}: token batch {} starts at token {}, expected {}", message,
                                        st.columnInt(1), firstToken, expectedFirst));
                }
                expectedFirst = firstToken + count;
                try {
                    const auto tokens = decodeTokenRecords(st.columnBlob(4));
                    if (static_cast<std::int64_t>(tokens.size()) != count) {
                        problem(fmt::format("message {}: token batch {} holds {} records, its row says {}", message,
                                            st.columnInt(1), tokens.size(), count));
                    }
                    for (const auto& t : tokens) {
                        if (std::int64_t(t.textOffset) + t.textLength > contentBytes) {
                            problem(fmt::format("message {}: a token's text lies past the end of the message",
                                                message));
                            break;
                        }
                    }
                    report.tokenRecords += static_cast<std::int64_t>(tokens.size());
                } catch (const StorageException& e) {
                    problem(fmt::format("message {}: token batch {}: {}", message, st.columnInt(1),
                                        e.error().message()));
                }
            }
        });
        section("counting", [&] {
            report.conversations = db.queryInt("SELECT count(*) FROM conversations");
            report.messages = db.queryInt("SELECT count(*) FROM messages");
        });
        return report;
    });
}

}  // namespace dsv2::storage
