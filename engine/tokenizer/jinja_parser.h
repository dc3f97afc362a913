#pragma once
// Recursive-descent parser for the Jinja subset, following Jinja2's own grammar and operator
// precedence. Unknown statements, filters and tests are rejected here, naming the construct.

#include <string_view>

#include "tokenizer/jinja_ast.h"

namespace dsv2::jinja {

// Throws jinja::Error: InvalidData for syntax errors, Unsupported for constructs outside the subset.
Body parse(std::string_view source);

// The filters and tests the interpreter implements (checked at parse time).
bool isKnownFilter(std::string_view name);
bool isKnownTest(std::string_view name);

}  // namespace dsv2::jinja
