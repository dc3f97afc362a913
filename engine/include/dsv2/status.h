#pragma once
// Status / Result<T>: how the engine reports failure across its API. The engine never throws
// across the API and never exits; every failure is a Status with a message a person can act on.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace dsv2 {

enum class StatusCode {
    Ok = 0,
    InvalidArgument,    // the caller passed something unusable (bad token id, bad parameter)
    NotFound,           // a file, tensor or key that should exist does not
    InvalidData,        // a file exists but its content is malformed (bad JSON, lying header)
    Unsupported,        // valid but not handled yet (an fp8 checkpoint, a Jinja construct)
    OutOfRange,         // a limit was hit (context length, memory plan)
    ResourceExhausted,  // out of memory, disk, ...
    Cancelled,          // the caller asked us to stop
    Unavailable,        // no GPU, no driver, ...
    IoError,            // the OS said no
    Internal,           // a bug or a failed CUDA/cuBLAS call
};

const char* statusCodeName(StatusCode code);

class [[nodiscard]] Status {
public:
    Status() = default;
    Status(StatusCode code, std::string message) : m_code(code), m_message(std::move(message)) {}

    static Status ok() { return {}; }
    bool isOk() const { return m_code == StatusCode::Ok; }
    explicit operator bool() const { return isOk(); }
    StatusCode code() const { return m_code; }
    const std::string& message() const { return m_message; }

    // "InvalidData: model.safetensors: header length 9e18 exceeds file size 1234"
    std::string toString() const;

    // Adds context in front of the message: "loading layer 3: <old message>".
    Status withContext(const std::string& context) const;

private:
    StatusCode m_code = StatusCode::Ok;
    std::string m_message;
};

// Result<T>: a value or a non-ok Status (C++23's std::expected is not in GCC 12's library).
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : m_v(std::move(value)) {}  // NOLINT(google-explicit-constructor): like expected
    Result(Status status) : m_v(std::move(status)) { assert(!std::get<Status>(m_v).isOk()); }  // NOLINT

    bool isOk() const { return std::holds_alternative<T>(m_v); }
    explicit operator bool() const { return isOk(); }

    const Status& status() const {
        static const Status kOk;
        return isOk() ? kOk : std::get<Status>(m_v);
    }
    T& value() & { return std::get<T>(m_v); }
    const T& value() const& { return std::get<T>(m_v); }
    T&& value() && { return std::get<T>(std::move(m_v)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

private:
    std::variant<T, Status> m_v;
};

}  // namespace dsv2

// Return early from a function returning Status or Result<T> when `expr` is not ok.
#define DSV2_RETURN_IF_ERROR(expr)                     \
    do {                                               \
        ::dsv2::Status dsv2_status_ = (expr);          \
        if (!dsv2_status_.isOk()) return dsv2_status_; \
    } while (0)

#define DSV2_CONCAT_INNER_(a, b) a##b
#define DSV2_CONCAT_(a, b) DSV2_CONCAT_INNER_(a, b)
// DSV2_ASSIGN_OR_RETURN(auto x, makeX()); -> x is the value, or the function returns the Status.
#define DSV2_ASSIGN_OR_RETURN(lhs, expr) DSV2_ASSIGN_OR_RETURN_IMPL_(DSV2_CONCAT_(dsv2_result_, __LINE__), lhs, expr)
#define DSV2_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
    auto tmp = (expr);                              \
    if (!tmp.isOk()) return tmp.status();           \
    lhs = std::move(tmp).value()
