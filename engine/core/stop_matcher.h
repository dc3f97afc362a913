#pragma once
// Streams generated text while watching for stop strings. Text that could still turn out to be
// the start of a stop string is held back, so a stop string never reaches the caller, not even
// in part; once a stop string appears, everything before it is released and matching ends.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsv2 {

class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stopStrings);

    // Adds decoded text; returns the text that is now safe to show.
    std::string push(std::string_view text);
    // The held-back text, released at the end (when no stop string matched).
    std::string flush();

    bool stopped() const { return m_matched.has_value(); }
    const std::string& matched() const { return *m_matched; }

private:
    std::vector<std::string> m_stops;
    std::string m_pending;
    std::optional<std::string> m_matched;
};

}  // namespace dsv2
