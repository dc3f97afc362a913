#include "dsv2/status.h"

namespace dsv2 {

const char* statusCodeName(StatusCode code) {
    switch (code) {
    case StatusCode::Ok: return "Ok";
    case StatusCode::InvalidArgument: return "InvalidArgument";
    case StatusCode::NotFound: return "NotFound";
    case StatusCode::InvalidData: return "InvalidData";
    case StatusCode::Unsupported: return "Unsupported";
    case StatusCode::OutOfRange: return "OutOfRange";
    case StatusCode::ResourceExhausted: return "ResourceExhausted";
    case StatusCode::Cancelled: return "Cancelled";
    case StatusCode::Unavailable: return "Unavailable";
    case StatusCode::IoError: return "IoError";
    case StatusCode::Internal: return "Internal";
    }
    return "Unknown";
}

std::string Status::toString() const {
    if (isOk()) return "Ok";
    return std::string(statusCodeName(m_code)) + ": " + m_message;
}

Status Status::withContext(const std::string& context) const {
    if (isOk()) return *this;
    return {m_code, context + ": " + m_message};
}

}  // namespace dsv2
