#pragma once
// A compiled PCRE2 pattern (8-bit, UTF + UCP, JIT when available) with the match semantics HF
// tokenizers gets from Oniguruma: \s is Unicode White_Space (PCRE2's \s would also take U+180E),
// ^ and $ match at line boundaries (Ruby syntax). Immutable after compile; safe to share between
// threads, each using its own MatchScratch.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "dsv2/status.h"

namespace dsv2 {

class Regex {
public:
    // Per-thread match state (PCRE2 match data).
    class MatchScratch {
    public:
        MatchScratch();
        ~MatchScratch();
        MatchScratch(const MatchScratch&) = delete;
        MatchScratch& operator=(const MatchScratch&) = delete;
        void* data() const { return m_data; }

    private:
        void* m_data = nullptr;
    };

    // literal: match the pattern text as a plain string.
    static Result<Regex> compile(std::string_view pattern, bool literal = false);

    // Finds the first match in subject at or after `start` (a byte offset on a character
    // boundary). The subject must be valid UTF-8. Returns false when there is none.
    bool find(std::string_view subject, size_t start, MatchScratch& scratch, size_t& matchBegin,
              size_t& matchEnd) const;

    const std::string& pattern() const { return m_pattern; }

private:
    struct Code;
    std::shared_ptr<const Code> m_code;
    std::string m_pattern;
};

// Rewrites \s and \S to Unicode White_Space classes, so that PCRE2 agrees with Oniguruma and
// Rust regex. Exposed for tests.
std::string translateWhiteSpaceClasses(std::string_view pattern);

}  // namespace dsv2
