#include "tokenizer/regex.h"

#include <pcre2.h>

namespace dsv2 {
namespace {

// Unicode White_Space, as class contents (used inside [...]).
constexpr std::string_view kWhiteSpaceItems =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

}  // namespace

std::string translateWhiteSpaceClasses(std::string_view p) {
    std::string out;
    out.reserve(p.size() + 64);
    bool inClass = false;
    bool inQuote = false;  // \Q ... \E
    for (size_t i = 0; i < p.size(); ++i) {
        const char c = p[i];
        if (inQuote) {
            out.push_back(c);
            if (c == '\\' && i + 1 < p.size() && p[i + 1] == 'E') {
                out.push_back('E');
                ++i;
                inQuote = false;
            }
            continue;
        }
        if (c == '\\' && i + 1 < p.size()) {
            const char n = p[i + 1];
            ++i;
            if (n == 's') {
                if (inClass) {
                    out.append(kWhiteSpaceItems);
                } else {
                    out.append("[").append(kWhiteSpaceItems).append("]");
                }
                continue;
            }
            if (n == 'S' && !inClass) {
                out.append("[^").append(kWhiteSpaceItems).append("]");
                continue;
            }
            if (n == 'Q') inQuote = true;
            out.push_back('\\');
            out.push_back(n);
            continue;
        }
        if (!inClass && c == '[') {
            inClass = true;
            out.push_back(c);
            // A ']' right after '[' or '[^' is a literal member, not the end of the class.
            if (i + 1 < p.size() && p[i + 1] == '^') {
                out.push_back('^');
                ++i;
            }
            if (i + 1 < p.size() && p[i + 1] == ']') {
                out.push_back(']');
                ++i;
            }
            continue;
        }
        if (inClass && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
            // POSIX class [:alpha:] inside a class: copy through its closing ":]".
            const size_t close = p.find(":]", i + 2);
            if (close != std::string_view::npos) {
                out.append(p.substr(i, close + 2 - i));
                i = close + 1;
                continue;
            }
        }
        if (inClass && c == ']') inClass = false;
        out.push_back(c);
    }
    return out;
}

struct Regex::Code {
    pcre2_code* code = nullptr;
    bool jit = false;
    ~Code() {
        if (code) pcre2_code_free(code);
    }
};

Regex::MatchScratch::MatchScratch() : m_data(pcre2_match_data_create(1, nullptr)) {}
Regex::MatchScratch::~MatchScratch() { pcre2_match_data_free(static_cast<pcre2_match_data*>(m_data)); }

Result<Regex> Regex::compile(std::string_view pattern, bool literal) {
    std::string translated = literal ? std::string(pattern) : translateWhiteSpaceClasses(pattern);
    uint32_t options = PCRE2_UTF | PCRE2_UCP;
    options |= literal ? PCRE2_LITERAL : PCRE2_MULTILINE;
    int errorCode = 0;
    PCRE2_SIZE errorOffset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), options,
                                     &errorCode, &errorOffset, nullptr);
    if (!code) {
        PCRE2_UCHAR buffer[256];
        pcre2_get_error_message(errorCode, buffer, sizeof(buffer));
        return Status(StatusCode::InvalidData, "cannot compile the regex /" + std::string(pattern) + "/ (at offset " +
                                                   std::to_string(errorOffset) + "): " +
                                                   reinterpret_cast<const char*>(buffer));
    }
    auto holder = std::make_shared<Code>();
    holder->code = code;
    // The JIT is an optimization: without it (a build with JIT disabled) matching still works.
    holder->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    Regex regex;
    regex.m_code = std::move(holder);
    regex.m_pattern = std::string(pattern);
    return regex;
}

bool Regex::find(std::string_view subject, size_t start, MatchScratch& scratch, size_t& matchBegin,
                 size_t& matchEnd) const {
    auto* md = static_cast<pcre2_match_data*>(scratch.data());
    const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
    // The tokenizer validates (and repairs) its input once, so PCRE2 need not re-check it.
    const int rc = m_code->jit ? pcre2_jit_match(m_code->code, s, subject.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr)
                               : pcre2_match(m_code->code, s, subject.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) return false;  // no match, or a match limit hit: treat as no match
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    matchBegin = ov[0];
    matchEnd = ov[1];
    return true;
}

}  // namespace dsv2
