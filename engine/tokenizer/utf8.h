#pragma once
// UTF-8 helpers for the tokenizer: decoding, lossy repair (U+FFFD for each maximal invalid
// subsequence, as Unicode and WHATWG recommend and as HF's from_utf8_lossy does), and finding
// where a byte stream stops being complete (for the streaming decoder).

#include <cstddef>
#include <string>
#include <string_view>

namespace dsv2::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Decodes the character at s[pos]. Returns the number of bytes it spans; on an invalid or
// truncated sequence returns the length of the maximal invalid subpart (>= 1) and sets
// codePoint to U+FFFD.
size_t decode(std::string_view s, size_t pos, char32_t& codePoint);

// Appends the UTF-8 form of a code point (U+FFFD for surrogates and values past U+10FFFF).
void append(std::string& out, char32_t codePoint);

bool isValid(std::string_view s);

// Appends `bytes`, each maximal invalid subsequence replaced by U+FFFD.
void appendLossy(std::string& out, std::string_view bytes);
inline std::string lossy(std::string_view bytes) {
    std::string out;
    appendLossy(out, bytes);
    return out;
}

// Length of the prefix of `bytes` that can be emitted now: everything except a trailing
// sequence that is valid so far but not finished (it may complete with the next bytes).
size_t completePrefixLength(std::string_view bytes);

// Unicode White_Space (the set HF's regex engines use for \s).
bool isWhiteSpace(char32_t codePoint);

}  // namespace dsv2::utf8
