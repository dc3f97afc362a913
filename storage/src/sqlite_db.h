#pragma once
// Small RAII wrappers over the SQLite C API: Database (a connection), Statement (a prepared
// statement), Transaction (BEGIN IMMEDIATE, or a SAVEPOINT when nested). Failures throw
// StorageException inside storage; the public API catches them (see guard.h).

#include "dsv2/storage/error.h"

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dsv2::storage::detail {

class StorageException : public std::runtime_error {
public:
    explicit StorageException(Error error) : std::runtime_error(error.message()), m_error(std::move(error)) {}
    const Error& error() const { return m_error; }

private:
    Error m_error;
};

[[noreturn]] void throwError(ErrorCode code, std::string message);

// Maps an SQLite result code to our ErrorCode and a message that names the file and what to do.
Error sqliteError(int rc, sqlite3* db, const std::filesystem::path& file, std::string_view context);

class Database {
public:
    Database() = default;
    // flags: SQLITE_OPEN_* ; `uri` may be a file: URI (needs SQLITE_OPEN_URI).
    Database(const std::string& uri, int flags, const std::filesystem::path& file);
    Database(Database&& other) noexcept;
    Database& operator=(Database&& other) noexcept;
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    ~Database();

    sqlite3* handle() const { return m_db; }
    const std::filesystem::path& file() const { return m_file; }
    void exec(const std::string& sql, std::string_view context = {});
    std::int64_t lastInsertId() const;
    int changes() const;
    bool inTransaction() const;
    [[noreturn]] void fail(int rc, std::string_view context) const;

    // Single-value helpers for pragmas and counts.
    std::int64_t queryInt(const std::string& sql);
    std::string queryText(const std::string& sql);

    // Prepared statements are kept per SQL text and reused (preparing costs more than running most
    // of our statements). Statement takes one from here and gives it back, reset, when done.
    sqlite3_stmt* takeStatement(std::string_view sql);
    void giveBack(const std::string& sql, sqlite3_stmt* statement);

private:
    void finalizeCached();

    sqlite3* m_db = nullptr;
    std::filesystem::path m_file;
    std::unordered_map<std::string, std::vector<sqlite3_stmt*>> m_cache;
};

class Statement {
public:
    Statement(Database& db, std::string_view sql);
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&&) = delete;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement();

    // Parameters are 1-based, like SQLite's.
    Statement& bind(int index, std::int64_t value);
    Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
    Statement& bind(int index, double value);
    Statement& bind(int index, std::string_view text);
    Statement& bind(int index, const std::string& text) { return bind(index, std::string_view(text)); }
    Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
    Statement& bind(int index, std::optional<std::int64_t> value);
    Statement& bindNull(int index);
    Statement& bindBlob(int index, const std::vector<std::uint8_t>& blob);

    // true: a row is available; false: done.
    bool step();
    // Steps to the end (for statements that return no rows).
    void run();
    void reset();

    bool isNull(int column) const;
    std::int64_t columnInt(int column) const;
    double columnDouble(int column) const;
    std::string columnText(int column) const;
    std::optional<std::int64_t> columnOptionalInt(int column) const;
    std::vector<std::uint8_t> columnBlob(int column) const;

private:
    Database* m_db;
    sqlite3_stmt* m_stmt = nullptr;
    std::string m_sql;
};

// BEGIN IMMEDIATE (takes the write lock up front, so a busy database fails here and not half-way),
// or SAVEPOINT when a transaction is already open. Rolls back unless committed.
class Transaction {
public:
    explicit Transaction(Database& db);
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction();
    void commit();

private:
    Database& m_db;
    bool m_nested = false;
    bool m_done = false;
};

// A read transaction (BEGIN DEFERRED): several queries see one consistent snapshot, while other
// processes keep writing (WAL). No-op inside an open transaction.
class ReadSnapshot {
public:
    explicit ReadSnapshot(Database& db);
    ReadSnapshot(const ReadSnapshot&) = delete;
    ReadSnapshot& operator=(const ReadSnapshot&) = delete;
    ~ReadSnapshot();

private:
    Database& m_db;
    bool m_own = false;
};

}  // namespace dsv2::storage::detail
