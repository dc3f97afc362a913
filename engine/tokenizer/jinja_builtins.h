#pragma once
// Filters, tests, methods and global functions of the Jinja subset. Each keeps string
// provenance: substrings (trim, split, slicing) keep it exactly; transformations (upper,
// replace, tojson) mark the whole result as data when any input was data.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace dsv2::jinja {

struct Args {
    std::vector<Value> positional;
    std::vector<std::pair<std::string, Value>> keyword;
    int line = 0;
    std::string what;  // "filter 'join'", for error messages

    // Positional argument `index`, else keyword `name`, else nullptr.
    const Value* get(size_t index, std::string_view name) const;
    [[noreturn]] void error(StatusCode code, const std::string& message) const;
};

Value applyFilter(const std::string& name, const Value& target, const Args& args);
bool applyTest(const std::string& name, const Value& target, const Args& args);
// target.name(args): string, dict and list methods.
Value callMethod(const Value& target, const std::string& name, const Args& args);
// A global function (namespace, range, raise_exception, dict, strftime_now) or a bound one (cycle).
Value callFunction(const Value& function, const Args& args);
bool isGlobalFunction(std::string_view name);

// The items a for loop walks: list items, dict keys, string characters; undefined → none.
List iterate(const Value& v, int line);
Str concat(const Value& a, const Value& b);  // the ~ operator

}  // namespace dsv2::jinja
