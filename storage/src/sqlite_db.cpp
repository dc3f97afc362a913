#include "sqlite_db.h"

#include <fmt/format.h>

#include <utility>

namespace dsv2::storage::detail {

void throwError(ErrorCode code, std::string message) { throw StorageException(Error(code, std::move(message))); }

Error sqliteError(int rc, sqlite3* db, const std::filesystem::path& file, std::string_view context) {
    const std::string name = file.string();
    const char* detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    const std::string where = context.empty() ? std::string() : fmt::format(" ({})", context);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return {ErrorCode::Busy,
                fmt::format("{} is busy: another dsv2-chat or dsv2 process is using it{}. Close the other "
                            "program or try again.",
                            name, where)};
    case SQLITE_READONLY:
        return {ErrorCode::ReadOnly,
                fmt::format("{} cannot be written{}: {}. Check the file's permissions or open it read-only.", name,
                            where, detail)};
    case SQLITE_CORRUPT:
        return {ErrorCode::Corrupt,
                fmt::format("{} is damaged{}: {}. Run `dsv2 history --db {} check`; restore a backup if it fails.",
                            name, where, detail, name)};
    case SQLITE_NOTADB:
        return {ErrorCode::NotADatabase,
                fmt::format("{} is not a dsv2-chat history database{}: {}. It was not changed.", name, where, detail)};
    case SQLITE_FULL:
        return {ErrorCode::DiskFull,
                fmt::format("{}: the disk is full{}. Free some space and try again.", name, where)};
    case SQLITE_CANTOPEN:
        return {ErrorCode::Io, fmt::format("cannot open {}{}: {}. Check that the folder exists and is accessible.",
                                           name, where, detail)};
    case SQLITE_IOERR:
    case SQLITE_PERM:
    case SQLITE_AUTH: return {ErrorCode::Io, fmt::format("{}: input/output error{}: {}", name, where, detail)};
    case SQLITE_CONSTRAINT:
        return {ErrorCode::InvalidArgument, fmt::format("{}: rejected by the database{}: {}", name, where, detail)};
    case SQLITE_NOMEM: return {ErrorCode::Internal, fmt::format("{}: out of memory{}", name, where)};
    default: return {ErrorCode::Internal, fmt::format("{}: SQLite error {}{}: {}", name, rc, where, detail)};
    }
}

// Database -----------------------------------------------------------------------------------------

Database::Database(const std::string& uri, int flags, const std::filesystem::path& file) : m_file(file) {
    const int rc = sqlite3_open_v2(uri.c_str(), &m_db, flags | SQLITE_OPEN_EXRESCODE, nullptr);
    if (rc != SQLITE_OK) {
        Error error = sqliteError(rc, m_db, m_file, "opening");
        sqlite3_close_v2(m_db);
        m_db = nullptr;
        throw StorageException(std::move(error));
    }
}

Database::Database(Database&& other) noexcept
    : m_db(std::exchange(other.m_db, nullptr)), m_file(std::move(other.m_file)), m_cache(std::move(other.m_cache)) {}

Database& Database::operator=(Database&& other) noexcept {
    if (this != &other) {
        finalizeCached();
        if (m_db) sqlite3_close_v2(m_db);
        m_db = std::exchange(other.m_db, nullptr);
        m_file = std::move(other.m_file);
        m_cache = std::move(other.m_cache);
    }
    return *this;
}

Database::~Database() {
    finalizeCached();
    if (m_db) sqlite3_close_v2(m_db);
}

void Database::finalizeCached() {
    for (auto& [sql, statements] : m_cache) {
        for (sqlite3_stmt* st : statements) sqlite3_finalize(st);
    }
    m_cache.clear();
}

sqlite3_stmt* Database::takeStatement(std::string_view sql) {
    if (auto it = m_cache.find(std::string(sql)); it != m_cache.end() && !it->second.empty()) {
        sqlite3_stmt* st = it->second.back();
        it->second.pop_back();
        return st;
    }
    sqlite3_stmt* st = nullptr;
    const int rc =
        sqlite3_prepare_v3(m_db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &st, nullptr);
    if (rc != SQLITE_OK) fail(rc, "preparing a statement");
    return st;
}

void Database::giveBack(const std::string& sql, sqlite3_stmt* statement) {
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
    auto& pool = m_cache[sql];
    // A few per text is plenty (nesting is shallow); the rest are finalised.
    if (pool.size() >= 4) {
        sqlite3_finalize(statement);
    } else {
        pool.push_back(statement);
    }
}

void Database::fail(int rc, std::string_view context) const {
    throw StorageException(sqliteError(rc, m_db, m_file, context));
}

void Database::exec(const std::string& sql, std::string_view context) {
    const int rc = sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(rc, context);
}

std::int64_t Database::lastInsertId() const { return sqlite3_last_insert_rowid(m_db); }
int Database::changes() const { return sqlite3_changes(m_db); }
bool Database::inTransaction() const { return sqlite3_get_autocommit(m_db) == 0; }

std::int64_t Database::queryInt(const std::string& sql) {
    Statement st(*this, sql);
    return st.step() ? st.columnInt(0) : 0;
}

std::string Database::queryText(const std::string& sql) {
    Statement st(*this, sql);
    return st.step() ? st.columnText(0) : std::string();
}

// Statement ----------------------------------------------------------------------------------------

Statement::Statement(Database& db, std::string_view sql) : m_db(&db), m_sql(sql) { m_stmt = db.takeStatement(sql); }

Statement::Statement(Statement&& other) noexcept
    : m_db(other.m_db), m_stmt(std::exchange(other.m_stmt, nullptr)), m_sql(std::move(other.m_sql)) {}

Statement::~Statement() {
    if (m_stmt) m_db->giveBack(m_sql, m_stmt);
}

Statement& Statement::bind(int index, std::int64_t value) {
    const int rc = sqlite3_bind_int64(m_stmt, index, value);
    if (rc != SQLITE_OK) m_db->fail(rc, "binding a value");
    return *this;
}

Statement& Statement::bind(int index, double value) {
    const int rc = sqlite3_bind_double(m_stmt, index, value);
    if (rc != SQLITE_OK) m_db->fail(rc, "binding a value");
    return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
    // SQLITE_TRANSIENT: SQLite copies, so temporaries are safe.
    const int rc = sqlite3_bind_text64(m_stmt, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    if (rc != SQLITE_OK) m_db->fail(rc, "binding a value");
    return *this;
}

Statement& Statement::bind(int index, std::optional<std::int64_t> value) {
    return value ? bind(index, *value) : bindNull(index);
}

Statement& Statement::bindNull(int index) {
    const int rc = sqlite3_bind_null(m_stmt, index);
    if (rc != SQLITE_OK) m_db->fail(rc, "binding a value");
    return *this;
}

Statement& Statement::bindBlob(int index, const std::vector<std::uint8_t>& blob) {
    // An empty vector has no data pointer, which SQLite would bind as NULL: bind an empty blob.
    const int rc = blob.empty() ? sqlite3_bind_zeroblob(m_stmt, index, 0)
                                : sqlite3_bind_blob64(m_stmt, index, blob.data(), blob.size(), SQLITE_TRANSIENT);
    if (rc != SQLITE_OK) m_db->fail(rc, "binding a value");
    return *this;
}

bool Statement::step() {
    const int rc = sqlite3_step(m_stmt);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    sqlite3_reset(m_stmt);
    m_db->fail(rc, {});
}

void Statement::run() {
    while (step()) {
    }
}

void Statement::reset() {
    sqlite3_reset(m_stmt);
    sqlite3_clear_bindings(m_stmt);
}

bool Statement::isNull(int column) const { return sqlite3_column_type(m_stmt, column) == SQLITE_NULL; }
std::int64_t Statement::columnInt(int column) const { return sqlite3_column_int64(m_stmt, column); }
double Statement::columnDouble(int column) const { return sqlite3_column_double(m_stmt, column); }

std::string Statement::columnText(int column) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, column));
    const int bytes = sqlite3_column_bytes(m_stmt, column);
    return text ? std::string(text, static_cast<std::size_t>(bytes)) : std::string();
}

std::optional<std::int64_t> Statement::columnOptionalInt(int column) const {
    if (isNull(column)) return std::nullopt;
    return columnInt(column);
}

std::vector<std::uint8_t> Statement::columnBlob(int column) const {
    const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(m_stmt, column));
    const int bytes = sqlite3_column_bytes(m_stmt, column);
    return data ? std::vector<std::uint8_t>(data, data + bytes) : std::vector<std::uint8_t>();
}

// Transaction --------------------------------------------------------------------------------------

Transaction::Transaction(Database& db) : m_db(db), m_nested(db.inTransaction()) {
    m_db.exec(m_nested ? "SAVEPOINT dsv2_nested" : "BEGIN IMMEDIATE", "starting a transaction");
}

Transaction::~Transaction() {
    if (m_done) return;
    // Never throws from a destructor: a failed rollback leaves SQLite to roll back on close.
    if (m_nested) {
        sqlite3_exec(m_db.handle(), "ROLLBACK TO dsv2_nested; RELEASE dsv2_nested", nullptr, nullptr, nullptr);
    } else if (m_db.inTransaction()) {
        sqlite3_exec(m_db.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
}

void Transaction::commit() {
    m_db.exec(m_nested ? "RELEASE dsv2_nested" : "COMMIT", "committing");
    m_done = true;
}

ReadSnapshot::ReadSnapshot(Database& db) : m_db(db), m_own(!db.inTransaction()) {
    if (m_own) m_db.exec("BEGIN DEFERRED", "starting a read");
}

ReadSnapshot::~ReadSnapshot() {
    if (m_own && m_db.inTransaction()) sqlite3_exec(m_db.handle(), "COMMIT", nullptr, nullptr, nullptr);
}

}  // namespace dsv2::storage::detail
