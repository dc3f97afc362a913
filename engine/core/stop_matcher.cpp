#include "core/stop_matcher.h"

#include <algorithm>

namespace dsv2 {

StopMatcher::StopMatcher(std::vector<std::string> stopStrings) {
    for (auto& s : stopStrings)
        if (!s.empty()) m_stops.push_back(std::move(s));
}

std::string StopMatcher::push(std::string_view text) {
    if (m_matched) return {};
    m_pending += text;
    // The earliest stop string wins.
    size_t best = std::string::npos;
    const std::string* which = nullptr;
    for (const auto& stop : m_stops) {
        const size_t at = m_pending.find(stop);
        if (at < best) {
            best = at;
            which = &stop;
        }
    }
    if (which) {
        m_matched = *which;
        std::string out = m_pending.substr(0, best);
        m_pending.clear();
        return out;
    }
    // Hold back the longest tail of m_pending that begins some stop string.
    size_t hold = 0;
    for (const auto& stop : m_stops) {
        const size_t maxLen = std::min(stop.size() - 1, m_pending.size());
        for (size_t len = maxLen; len > hold; --len) {
            if (std::string_view(m_pending).substr(m_pending.size() - len) == std::string_view(stop).substr(0, len)) {
                hold = len;
                break;
            }
        }
    }
    std::string out = m_pending.substr(0, m_pending.size() - hold);
    m_pending.erase(0, m_pending.size() - hold);
    return out;
}

std::string StopMatcher::flush() {
    std::string out;
    out.swap(m_pending);
    return out;
}

}  // namespace dsv2
