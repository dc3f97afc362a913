#include "tokenizer/jinja_lexer.h"

#include <cctype>

#include "tokenizer/jinja_value.h"
#include "tokenizer/utf8.h"

namespace dsv2::jinja {
namespace {

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

[[noreturn]] void syntaxError(int line, const std::string& message) {
    fail(StatusCode::InvalidData, "chat template line " + std::to_string(line) + ": " + message);
}

class Lexer {
public:
    explicit Lexer(std::string_view src) : m_src(src) {}

    std::vector<Token> run() {
        std::string text;
        bool stripNextText = false;  // a "-%}" before this text
        while (m_pos < m_src.size()) {
            const size_t open = findOpen(m_pos);
            std::string_view chunk = m_src.substr(m_pos, (open == std::string_view::npos ? m_src.size() : open) - m_pos);
            text.assign(chunk);
            if (stripNextText) {
                size_t k = 0;
                while (k < text.size() && isSpace(text[k])) ++k;
                text.erase(0, k);
                stripNextText = false;
            }
            countLines(chunk);
            if (open == std::string_view::npos) {
                pushText(text);
                m_pos = m_src.size();
                break;
            }
            m_pos = open;
            const char kind = m_src[m_pos + 1];  // '{', '%' or '#'
            m_pos += 2;
            const char modifier = m_pos < m_src.size() ? m_src[m_pos] : '\0';
            if (modifier == '-') {
                while (!text.empty() && isSpace(text.back())) text.pop_back();
                ++m_pos;
            } else if (modifier == '+') {
                ++m_pos;  // {%+ turns lstrip_blocks off for this tag
            } else if (kind != '{') {
                const size_t chunkStart = open - chunk.size();
                lstripBlock(text, chunkStart == 0 || m_src[chunkStart - 1] == '\n');
            }
            pushText(text);

            bool rightStrip = false;
            if (kind == '#') {
                rightStrip = skipComment();
            } else {
                m_tokens.push_back({kind == '{' ? Token::Kind::OutputOpen : Token::Kind::BlockOpen, "", m_line});
                rightStrip = lexTag(kind == '{' ? '}' : '%');
            }
            if (rightStrip) {
                stripNextText = true;
            } else if (kind != '{' && m_pos < m_src.size() && m_src[m_pos] == '\n') {
                ++m_pos;  // trim_blocks: the newline right after a block or comment tag goes
                ++m_line;
            }
        }
        m_tokens.push_back({Token::Kind::End, "", m_line});
        return std::move(m_tokens);
    }

private:
    size_t findOpen(size_t from) const {
        for (size_t i = m_src.find('{', from); i != std::string_view::npos; i = m_src.find('{', i + 1)) {
            if (i + 1 < m_src.size() && (m_src[i + 1] == '{' || m_src[i + 1] == '%' || m_src[i + 1] == '#')) return i;
        }
        return std::string_view::npos;
    }

    void countLines(std::string_view s) {
        for (const char c : s) m_line += c == '\n';
    }

    void pushText(const std::string& text) {
        if (!text.empty()) m_tokens.push_back({Token::Kind::Text, text, m_line});
    }

    // lstrip_blocks: spaces and tabs between the start of a line and a block tag go.
    // `atLineStart`: the text itself begins a line.
    static void lstripBlock(std::string& text, bool atLineStart) {
        size_t k = text.size();
        while (k > 0 && (text[k - 1] == ' ' || text[k - 1] == '\t')) --k;
        if ((k == 0 && atLineStart) || (k > 0 && text[k - 1] == '\n')) text.erase(k);
    }

    // Returns whether the comment ends with "-#}".
    bool skipComment() {
        const size_t close = m_src.find("#}", m_pos);
        if (close == std::string_view::npos) syntaxError(m_line, "unterminated comment ({# without #})");
        countLines(m_src.substr(m_pos, close - m_pos));
        const bool strip = close > m_pos && m_src[close - 1] == '-';
        m_pos = close + 2;
        return strip;
    }

    // Tokens up to the closing "}}" or "%}"; returns whether it was "-}}" / "-%}".
    bool lexTag(char closeChar) {
        const int startLine = m_line;
        while (true) {
            while (m_pos < m_src.size() && isSpace(m_src[m_pos])) {
                m_line += m_src[m_pos] == '\n';
                ++m_pos;
            }
            if (m_pos >= m_src.size()) {
                syntaxError(startLine, closeChar == '}' ? "unterminated {{ ... }}" : "unterminated {% ... %}");
            }
            const std::string_view rest = m_src.substr(m_pos);
            const std::string close = std::string(1, closeChar) + "}";
            if (rest.starts_with("-" + close) || rest.starts_with(close)) {
                const bool strip = rest[0] == '-';
                m_pos += strip ? 3 : 2;
                m_tokens.push_back({closeChar == '}' ? Token::Kind::OutputClose : Token::Kind::BlockClose, "", m_line});
                return strip;
            }
            lexOne();
        }
    }

    void lexOne() {
        const char c = m_src[m_pos];
        if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
            const size_t start = m_pos;
            while (m_pos < m_src.size() &&
                   (std::isalnum(static_cast<unsigned char>(m_src[m_pos])) || m_src[m_pos] == '_')) {
                ++m_pos;
            }
            m_tokens.push_back({Token::Kind::Name, std::string(m_src.substr(start, m_pos - start)), m_line});
            return;
        }
        if (std::isdigit(static_cast<unsigned char>(c))) {
            lexNumber();
            return;
        }
        if (c == '\'' || c == '"') {
            lexString(c);
            return;
        }
        static constexpr std::string_view kTwoChar[] = {"//", "**", "==", "!=", "<=", ">="};
        for (const std::string_view op : kTwoChar) {
            if (m_src.substr(m_pos, 2) == op) {
                m_tokens.push_back({Token::Kind::Operator, std::string(op), m_line});
                m_pos += 2;
                return;
            }
        }
        if (std::string_view("+-*/%~=<>.,:|()[]{}").find(c) != std::string_view::npos) {
            m_tokens.push_back({Token::Kind::Operator, std::string(1, c), m_line});
            ++m_pos;
            return;
        }
        syntaxError(m_line, std::string("unexpected character '") + c + "' in a tag");
    }

    void lexNumber() {
        const size_t start = m_pos;
        bool isFloat = false;
        auto digits = [&] {
            while (m_pos < m_src.size() && (std::isdigit(static_cast<unsigned char>(m_src[m_pos])) || m_src[m_pos] == '_')) {
                ++m_pos;
            }
        };
        digits();
        if (m_pos + 1 < m_src.size() && m_src[m_pos] == '.' && std::isdigit(static_cast<unsigned char>(m_src[m_pos + 1]))) {
            isFloat = true;
            ++m_pos;
            digits();
        }
        if (m_pos < m_src.size() && (m_src[m_pos] == 'e' || m_src[m_pos] == 'E')) {
            size_t k = m_pos + 1;
            if (k < m_src.size() && (m_src[k] == '+' || m_src[k] == '-')) ++k;
            if (k < m_src.size() && std::isdigit(static_cast<unsigned char>(m_src[k]))) {
                isFloat = true;
                m_pos = k;
                digits();
            }
        }
        std::string text;
        for (const char ch : m_src.substr(start, m_pos - start)) {
            if (ch != '_') text.push_back(ch);
        }
        m_tokens.push_back({isFloat ? Token::Kind::Float : Token::Kind::Integer, text, m_line});
    }

    void lexString(char quote) {
        const int line = m_line;
        ++m_pos;
        std::string value;
        while (true) {
            if (m_pos >= m_src.size()) syntaxError(line, "unterminated string literal");
            const char c = m_src[m_pos++];
            if (c == quote) break;
            if (c == '\n') ++m_line;
            if (c != '\\' || m_pos >= m_src.size()) {
                value.push_back(c);
                continue;
            }
            const char e = m_src[m_pos++];
            switch (e) {
            case 'n': value.push_back('\n'); break;
            case 't': value.push_back('\t'); break;
            case 'r': value.push_back('\r'); break;
            case '\\': value.push_back('\\'); break;
            case '\'': value.push_back('\''); break;
            case '"': value.push_back('"'); break;
            case '\n': ++m_line; break;  // line continuation
            case 'u':
            case 'U':
            case 'x': {
                const size_t width = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
                if (m_pos + width > m_src.size()) syntaxError(m_line, "truncated \\" + std::string(1, e) + " escape");
                const std::string hex(m_src.substr(m_pos, width));
                for (const char h : hex) {
                    if (!std::isxdigit(static_cast<unsigned char>(h))) syntaxError(m_line, "bad \\" + std::string(1, e) + " escape");
                }
                utf8::append(value, static_cast<char32_t>(std::stoul(hex, nullptr, 16)));
                m_pos += width;
                break;
            }
            default:
                // Python keeps unknown escapes as written.
                value.push_back('\\');
                value.push_back(e);
            }
        }
        m_tokens.push_back({Token::Kind::String, value, line});
    }

    std::string_view m_src;
    size_t m_pos = 0;
    int m_line = 1;
    std::vector<Token> m_tokens;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

}  // namespace dsv2::jinja
