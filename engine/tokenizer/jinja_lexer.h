#pragma once
// Jinja lexer: template source → text and tag tokens, with whitespace control ({%- -%}) and
// HF's environment settings (trim_blocks and lstrip_blocks on) already applied to the text.

#include <string>
#include <string_view>
#include <vector>

namespace dsv2::jinja {

struct Token {
    enum class Kind {
        Text,        // literal template text
        OutputOpen,  // {{
        OutputClose, // }}
        BlockOpen,   // {%
        BlockClose,  // %}
        Name,
        String,
        Integer,
        Float,
        Operator,    // + - * / // % ** ~ == != < <= > >= = . , : | ( ) [ ] { }
        End,
    };
    Kind kind = Kind::End;
    std::string text;
    int line = 1;
};

// Throws jinja::Error (InvalidData) on an unterminated tag, string or comment.
std::vector<Token> tokenize(std::string_view source);

}  // namespace dsv2::jinja
