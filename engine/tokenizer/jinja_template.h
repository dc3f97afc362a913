#pragma once
// A parsed Jinja template and its interpreter (the subset HF chat templates use, with HF's
// environment: trim_blocks, lstrip_blocks, loop controls). Immutable once parsed; render() may
// run concurrently from several threads.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dsv2/status.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace dsv2::jinja {

class Template {
public:
    // InvalidData for syntax errors, Unsupported (naming the construct) for what the subset lacks.
    static Result<std::shared_ptr<const Template>> parse(std::string source);

    // Renders with the given global variables. The result keeps the provenance of every byte.
    Result<Str> render(const std::vector<std::pair<std::string, Value>>& globals) const;

    const std::string& source() const { return m_source; }

private:
    std::string m_source;
    Body m_body;
};

}  // namespace dsv2::jinja
