#pragma once
// Error / Expected<T>: how storage reports failure. Storage is independent of the engine, so it has
// its own small types instead of dsv2::Status. Nothing in storage throws across its API: internal
// exceptions are turned into an Error at every public entry point.

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace dsv2::storage {

enum class ErrorCode {
    InvalidArgument,  // the caller passed something unusable (unknown id, empty path, bad query)
    NotFound,         // a conversation, message or file that should exist does not
    Busy,             // another process holds the database (locked past the busy timeout)
    ReadOnly,         // the file or the connection cannot be written
    Corrupt,          // the file is damaged (truncated, malformed pages)
    NotADatabase,     // the file is not SQLite, or is another application's SQLite file
    NewerSchema,      // written by a newer dsv2-chat: refused, never touched
    OlderSchema,      // needs an upgrade that a read-only open cannot do
    InvalidData,      // an import file or a stored record is malformed
    DiskFull,
    Io,        // the OS said no
    Internal,  // a bug
};

const char* errorCodeName(ErrorCode code);

class Error {
public:
    Error(ErrorCode code, std::string message) : m_code(code), m_message(std::move(message)) {}

    ErrorCode code() const { return m_code; }
    const std::string& message() const { return m_message; }
    // "Busy: history.sqlite is busy: ..."
    std::string toString() const;
    // Adds context in front: "exporting conversation 4: <old message>".
    Error withContext(const std::string& context) const;

private:
    ErrorCode m_code;
    std::string m_message;
};

// A value or an Error (GCC 12's library has no std::expected).
template <typename T>
class [[nodiscard]] Expected {
public:
    Expected(T value) : m_v(std::move(value)) {}      // NOLINT(google-explicit-constructor)
    Expected(Error error) : m_v(std::move(error)) {}  // NOLINT(google-explicit-constructor)

    bool hasValue() const { return std::holds_alternative<T>(m_v); }
    explicit operator bool() const { return hasValue(); }

    const Error& error() const {
        assert(!hasValue());
        return std::get<Error>(m_v);
    }
    T& value() & { return std::get<T>(m_v); }
    const T& value() const& { return std::get<T>(m_v); }
    T&& value() && { return std::get<T>(std::move(m_v)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

private:
    std::variant<T, Error> m_v;
};

template <>
class [[nodiscard]] Expected<void> {
public:
    Expected() = default;
    Expected(Error error) : m_error(std::move(error)) {}  // NOLINT(google-explicit-constructor)

    bool hasValue() const { return !m_error.has_value(); }
    explicit operator bool() const { return hasValue(); }
    const Error& error() const {
        assert(m_error);
        return *m_error;
    }

private:
    std::optional<Error> m_error;
};

}  // namespace dsv2::storage
