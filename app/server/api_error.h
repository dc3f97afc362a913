#pragma once
// An answer that is not a completion: the HTTP status and OpenAI's error object
// {"error": {"message", "type", "param", "code"}}, so that OpenAI clients raise their usual
// exceptions (BadRequestError, AuthenticationError, NotFoundError, RateLimitError...).

#include <string>
#include <variant>

namespace dsv2::server {

struct ApiError {
    int status = 400;
    std::string message;  // what was wrong and what to send instead
    std::string param;    // the offending field, when there is one
    std::string type = "invalid_request_error";
    std::string code;
};

inline ApiError badRequest(std::string message, std::string param = {}) {
    return {400, std::move(message), std::move(param), "invalid_request_error", ""};
}

template <typename T>
using ApiResult = std::variant<T, ApiError>;

}  // namespace dsv2::server
