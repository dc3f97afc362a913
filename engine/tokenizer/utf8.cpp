#include "tokenizer/utf8.h"

namespace dsv2::utf8 {
namespace {

// For a lead byte: the sequence length (0 when it cannot start one) and the allowed range of
// the second byte, which excludes overlongs, surrogates and values past U+10FFFF.
struct LeadInfo {
    int length;
    unsigned char secondMin;
    unsigned char secondMax;
};

LeadInfo leadInfo(unsigned char b) {
    if (b < 0x80) return {1, 0, 0};
    if (b < 0xC2) return {0, 0, 0};
    if (b < 0xE0) return {2, 0x80, 0xBF};
    if (b == 0xE0) return {3, 0xA0, 0xBF};
    if (b == 0xED) return {3, 0x80, 0x9F};
    if (b < 0xF0) return {3, 0x80, 0xBF};
    if (b == 0xF0) return {4, 0x90, 0xBF};
    if (b < 0xF4) return {4, 0x80, 0xBF};
    if (b == 0xF4) return {4, 0x80, 0x8F};
    return {0, 0, 0};
}

// How many bytes from pos form a valid prefix of the sequence that s[pos] starts (>= 1 when
// the lead is valid), and whether the whole sequence is present.
size_t validRun(std::string_view s, size_t pos, const LeadInfo& info, bool& complete) {
    size_t n = 1;
    complete = false;
    for (int k = 1; k < info.length; ++k) {
        if (pos + n >= s.size()) return n;
        const auto c = static_cast<unsigned char>(s[pos + n]);
        const unsigned char lo = k == 1 ? info.secondMin : 0x80;
        const unsigned char hi = k == 1 ? info.secondMax : 0xBF;
        if (c < lo || c > hi) return n;
        ++n;
    }
    complete = true;
    return n;
}

}  // namespace

size_t decode(std::string_view s, size_t pos, char32_t& codePoint) {
    const auto b = static_cast<unsigned char>(s[pos]);
    if (b < 0x80) {
        codePoint = b;
        return 1;
    }
    const LeadInfo info = leadInfo(b);
    if (info.length == 0) {
        codePoint = 0xFFFD;
        return 1;
    }
    bool complete = false;
    const size_t n = validRun(s, pos, info, complete);
    if (!complete) {
        codePoint = 0xFFFD;
        return n;
    }
    char32_t cp = b & (0x7F >> info.length);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
    codePoint = cp;
    return n;
}

void append(std::string& out, char32_t cp) {
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) cp = 0xFFFD;
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

bool isValid(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        if (static_cast<unsigned char>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        char32_t cp = 0;
        const size_t n = decode(s, i, cp);
        if (cp == 0xFFFD && s.substr(i, n) != kReplacement) return false;
        i += n;
    }
    return true;
}

void appendLossy(std::string& out, std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        // Copy the ASCII run in one go: most text is mostly ASCII.
        size_t j = i;
        while (j < s.size() && static_cast<unsigned char>(s[j]) < 0x80) ++j;
        out.append(s.data() + i, j - i);
        i = j;
        if (i >= s.size()) break;
        char32_t cp = 0;
        const size_t n = decode(s, i, cp);
        if (cp == 0xFFFD && s.substr(i, n) != kReplacement) {
            out.append(kReplacement);
        } else {
            out.append(s.data() + i, n);
        }
        i += n;
    }
}

size_t completePrefixLength(std::string_view s) {
    // A pending sequence is at most 3 bytes long (a 4-byte character missing its last byte).
    const size_t lookback = s.size() < 3 ? s.size() : 3;
    for (size_t back = 1; back <= lookback; ++back) {
        const size_t pos = s.size() - back;
        const auto b = static_cast<unsigned char>(s[pos]);
        if ((b & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for its lead
        const LeadInfo info = leadInfo(b);
        if (info.length <= 1) return s.size();  // ASCII or an invalid lead: nothing pending
        bool complete = false;
        const size_t n = validRun(s, pos, info, complete);
        // Pending only when every byte after the lead is a valid continuation so far.
        if (!complete && n == back) return pos;
        return s.size();
    }
    return s.size();
}

bool isWhiteSpace(char32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85) return false;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace dsv2::utf8
