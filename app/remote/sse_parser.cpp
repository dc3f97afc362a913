#include "remote/sse_parser.h"

namespace dsv2::remote {

bool SseParser::feed(std::string_view bytes) {
    for (char c : bytes) {
        if (m_lastWasCr) {
            m_lastWasCr = false;
            if (c == '\n') continue;  // the second half of \r\n
        }
        if (c == '\r' || c == '\n') {
            m_lastWasCr = c == '\r';
            const std::string text = std::move(m_line);
            m_line.clear();
            if (!line(text)) return false;
        } else {
            m_line += c;
        }
    }
    return true;
}

bool SseParser::line(std::string_view text) {
    if (text.empty()) {  // dispatch
        if (!m_hasData) {
            m_event.clear();
            return true;
        }
        SseEvent e{std::move(m_event), std::move(m_data)};
        m_event.clear();
        m_data.clear();
        m_hasData = false;
        return m_handler(e);
    }
    if (text.front() == ':') return true;  // comment (keep-alive)
    const size_t colon = text.find(':');
    std::string_view field = text.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "data") {
        if (m_hasData) m_data += '\n';
        m_data += value;
        m_hasData = true;
    } else if (field == "event") {
        m_event = value;
    }  // "id" and "retry" mean nothing to a one-shot completion stream
    return true;
}

}  // namespace dsv2::remote
