#include "model/problem_list.h"

namespace dsv2 {

void ProblemList::add(StatusCode code, std::string text) { m_items.push_back({code, std::move(text)}); }

Status ProblemList::toStatus(const std::string& title, size_t maxLines) const {
    if (m_items.empty()) return Status::ok();
    StatusCode code = m_items.front().code;
    for (const auto& item : m_items)
        if (item.code != code) code = StatusCode::InvalidData;
    if (m_items.size() == 1) return {code, title + ": " + m_items.front().text};
    std::string message = title + ": " + std::to_string(m_items.size()) + " problems:";
    for (size_t i = 0; i < m_items.size() && i < maxLines; ++i) message += "\n  - " + m_items[i].text;
    if (m_items.size() > maxLines) message += "\n  ... and " + std::to_string(m_items.size() - maxLines) + " more";
    return {code, message};
}

}  // namespace dsv2
