#pragma once
// Values of the chat-template interpreter. Strings carry provenance: the byte ranges that came
// from caller data (message contents) rather than from the template, so that the renderer can
// keep data from ever forming control tokens.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dsv2/status.h"
#include "tokenizer/tokenizer.h"  // TextRange

namespace dsv2::jinja {

// Thrown inside the interpreter only; Template::render turns it into a Status.
struct Error {
    Status status;
};
[[noreturn]] void fail(StatusCode code, const std::string& message);

// A string and which of its bytes came from data (sorted, disjoint, non-adjacent ranges).
struct Str {
    std::string text;
    std::vector<TextRange> data;

    Str() = default;
    explicit Str(std::string t, bool fromData = false) : text(std::move(t)) {
        if (fromData && !text.empty()) data.push_back({0, text.size()});
    }
    bool hasData() const { return !data.empty(); }
    void append(const Str& other);
    void append(std::string_view templateText) { text.append(templateText); }
    Str substr(size_t pos, size_t len = std::string::npos) const;
    // A derived string (upper-cased, replaced, ...): all data if any input byte was data.
    static Str derived(std::string text, bool fromData) { return Str(std::move(text), fromData); }
};

class Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion-ordered, like Python's dict

class Value {
public:
    enum class Kind { Undefined, None, Bool, Int, Float, String, Array, Map, Function };

    Value() = default;
    static Value undefined(std::string name = {});
    static Value none();
    static Value boolean(bool b);
    static Value integer(int64_t i);
    static Value number(double d);
    static Value string(Str s);
    static Value string(std::string s, bool fromData = false) { return string(Str(std::move(s), fromData)); }
    static Value list(List items = {});
    static Value tuple(List items);  // a list that prints as Python's (a, b)
    static Value dict(Dict items = {}, bool isNamespace = false);
    // A built-in function, optionally with bound arguments (loop.cycle binds the index).
    static Value function(std::string name, List bound = {});

    Kind kind() const { return m_kind; }
    bool isUndefined() const { return m_kind == Kind::Undefined; }
    bool isNone() const { return m_kind == Kind::None; }
    bool isString() const { return m_kind == Kind::String; }
    bool isNumber() const { return m_kind == Kind::Int || m_kind == Kind::Float; }
    bool isNamespace() const { return m_kind == Kind::Map && m_namespace; }
    bool isTuple() const { return m_kind == Kind::Array && m_tuple; }

    bool asBool() const { return m_bool; }
    int64_t asInt() const { return m_int; }
    double asDouble() const { return m_kind == Kind::Int ? static_cast<double>(m_int) : m_float; }
    const Str& asStr() const { return m_str; }
    List& asList() const { return *m_list; }
    Dict& asDict() const { return *m_dict; }
    const std::string& name() const { return m_name; }  // function name, or the undefined variable's name
    const List& bound() const { return *m_list; }

    // Dict lookup (nullptr when absent).
    const Value* find(std::string_view key) const;
    void set(const std::string& key, Value v) const;

    bool truthy() const;
    // Jinja's {{ value }} text, with provenance.
    Str toStr() const;
    // Python's repr(), used inside lists and dicts.
    std::string repr() const;
    std::string typeName() const;

private:
    Kind m_kind = Kind::Undefined;
    bool m_bool = false;
    bool m_namespace = false;
    bool m_tuple = false;
    int64_t m_int = 0;
    double m_float = 0.0;
    Str m_str;
    std::string m_name;
    std::shared_ptr<List> m_list;
    std::shared_ptr<Dict> m_dict;
};

// Whether any string inside came from data (dict keys count as data: their origin is not tracked).
bool containsData(const Value& v);
bool equals(const Value& a, const Value& b);
// <0, 0, >0; fails on values Python cannot order.
int compare(const Value& a, const Value& b);
// Python's float repr (shortest round-trip: 1.0, 0.1, 1e+16, 1.5e-07).
std::string formatFloat(double d);

}  // namespace dsv2::jinja
