#include "tokenizer/jinja_value.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace dsv2::jinja {

void fail(StatusCode code, const std::string& message) { throw Error{Status(code, message)}; }

void Str::append(const Str& other) {
    const size_t shift = text.size();
    text += other.text;
    for (const TextRange& r : other.data) {
        const TextRange moved{r.begin + shift, r.end + shift};
        if (!data.empty() && data.back().end == moved.begin) {
            data.back().end = moved.end;  // keep ranges non-adjacent
        } else {
            data.push_back(moved);
        }
    }
}

Str Str::substr(size_t pos, size_t len) const {
    Str out;
    if (pos >= text.size()) return out;
    const size_t end = len == std::string::npos || pos + len > text.size() ? text.size() : pos + len;
    out.text = text.substr(pos, end - pos);
    for (const TextRange& r : data) {
        const size_t b = r.begin > pos ? r.begin : pos;
        const size_t e = r.end < end ? r.end : end;
        if (b < e) out.data.push_back({b - pos, e - pos});
    }
    return out;
}

Value Value::undefined(std::string name) {
    Value v;
    v.m_name = std::move(name);
    return v;
}
Value Value::none() {
    Value v;
    v.m_kind = Kind::None;
    return v;
}
Value Value::boolean(bool b) {
    Value v;
    v.m_kind = Kind::Bool;
    v.m_bool = b;
    return v;
}
Value Value::integer(int64_t i) {
    Value v;
    v.m_kind = Kind::Int;
    v.m_int = i;
    return v;
}
Value Value::number(double d) {
    Value v;
    v.m_kind = Kind::Float;
    v.m_float = d;
    return v;
}
Value Value::string(Str s) {
    Value v;
    v.m_kind = Kind::String;
    v.m_str = std::move(s);
    return v;
}
Value Value::list(List items) {
    Value v;
    v.m_kind = Kind::Array;
    v.m_list = std::make_shared<List>(std::move(items));
    return v;
}
Value Value::tuple(List items) {
    Value v = list(std::move(items));
    v.m_tuple = true;
    return v;
}
Value Value::dict(Dict items, bool isNamespace) {
    Value v;
    v.m_kind = Kind::Map;
    v.m_namespace = isNamespace;
    v.m_dict = std::make_shared<Dict>(std::move(items));
    return v;
}
Value Value::function(std::string name, List bound) {
    Value v;
    v.m_kind = Kind::Function;
    v.m_name = std::move(name);
    v.m_list = std::make_shared<List>(std::move(bound));
    return v;
}

const Value* Value::find(std::string_view key) const {
    if (m_kind != Kind::Map) return nullptr;
    for (const auto& [k, v] : *m_dict) {
        if (k == key) return &v;
    }
    return nullptr;
}

void Value::set(const std::string& key, Value v) const {
    for (auto& [k, old] : *m_dict) {
        if (k == key) {
            old = std::move(v);
            return;
        }
    }
    m_dict->emplace_back(key, std::move(v));
}

bool Value::truthy() const {
    switch (m_kind) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return m_bool;
    case Kind::Int: return m_int != 0;
    case Kind::Float: return m_float != 0.0;
    case Kind::String: return !m_str.text.empty();
    case Kind::Array: return !m_list->empty();
    case Kind::Map: return !m_dict->empty();
    case Kind::Function: return true;
    }
    return false;
}

std::string formatFloat(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
    char buf[64];
    // Shortest representation that reads back exactly, as Python's repr does.
    for (int precision = 1; precision <= 17; ++precision) {
        std::snprintf(buf, sizeof(buf), "%.*e", precision - 1, d);
        if (std::strtod(buf, nullptr) == d) break;
    }
    // buf is "d.ddde[+-]XX": take digits and exponent, then lay out like Python.
    std::string s(buf);
    const size_t e = s.find('e');
    std::string mantissa = s.substr(0, e);
    const int exponent = std::atoi(s.c_str() + e + 1);
    const bool negative = mantissa[0] == '-';
    if (negative) mantissa.erase(0, 1);
    std::string digits;
    for (const char c : mantissa) {
        if (c != '.') digits.push_back(c);
    }
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    std::string out;
    if (exponent < -4 || exponent >= 16) {
        out = digits.substr(0, 1);
        if (digits.size() > 1) out.append(".").append(digits, 1);
        char exp[16];
        std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
        out += exp;
    } else if (exponent < 0) {
        out.assign("0.").append(static_cast<size_t>(-exponent - 1), '0').append(digits);
    } else {
        const auto intDigits = static_cast<size_t>(exponent + 1);
        if (digits.size() <= intDigits) {
            out = digits + std::string(intDigits - digits.size(), '0') + ".0";
        } else {
            out.assign(digits, 0, intDigits).append(".").append(digits, intDigits);
        }
    }
    if (negative) out.insert(out.begin(), '-');
    return out;
}

bool containsData(const Value& v) {
    switch (v.kind()) {
    case Value::Kind::String: return v.asStr().hasData();
    case Value::Kind::Array:
        for (const Value& item : v.asList()) {
            if (containsData(item)) return true;
        }
        return false;
    case Value::Kind::Map:
        // Dict keys may come from data too and their origin is not tracked: count them as data.
        if (!v.isNamespace() && !v.asDict().empty()) return true;
        for (const auto& kv : v.asDict()) {
            if (containsData(kv.second)) return true;
        }
        return false;
    default: return false;
    }
}

Str Value::toStr() const {
    switch (m_kind) {
    case Kind::Undefined: return Str();
    case Kind::String: return m_str;
    case Kind::Array:
    case Kind::Map: return Str::derived(repr(), containsData(*this));
    default: return Str(repr());
    }
}

namespace {

std::string quote(const std::string& s) {
    // Python picks single quotes unless the text has a ' and no ".
    const bool useDouble = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
    const char q = useDouble ? '"' : '\'';
    std::string out(1, q);
    for (const char c : s) {
        switch (c) {
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c == q) out += '\\';
            out += c;
        }
    }
    out += q;
    return out;
}

}  // namespace

std::string Value::repr() const {
    switch (m_kind) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return m_bool ? "True" : "False";
    case Kind::Int: return std::to_string(m_int);
    case Kind::Float: return formatFloat(m_float);
    case Kind::String: return quote(m_str.text);
    case Kind::Array: {
        std::string out = m_tuple ? "(" : "[";
        for (size_t i = 0; i < m_list->size(); ++i) out += (i ? ", " : "") + (*m_list)[i].repr();
        if (m_tuple && m_list->size() == 1) out += ",";
        return out + (m_tuple ? ")" : "]");
    }
    case Kind::Map: {
        std::string out = "{";
        bool first = true;
        for (const auto& [k, v] : *m_dict) {
            out += (first ? "" : ", ") + quote(k) + ": " + v.repr();
            first = false;
        }
        return out + "}";
    }
    case Kind::Function: return std::string("<function ").append(m_name).append(">");
    }
    return "";
}

std::string Value::typeName() const {
    switch (m_kind) {
    case Kind::Undefined: return "undefined";
    case Kind::None: return "none";
    case Kind::Bool: return "boolean";
    case Kind::Int: return "integer";
    case Kind::Float: return "float";
    case Kind::String: return "string";
    case Kind::Array: return "list";
    case Kind::Map: return m_namespace ? "namespace" : "dict";
    case Kind::Function: return "function";
    }
    return "?";
}

bool equals(const Value& a, const Value& b) {
    if (a.isNumber() && b.isNumber()) {
        if (a.kind() == Value::Kind::Int && b.kind() == Value::Kind::Int) return a.asInt() == b.asInt();
        return a.asDouble() == b.asDouble();
    }
    // Python: True == 1. Jinja templates rarely rely on it, but keep the semantics.
    if (a.kind() == Value::Kind::Bool && b.isNumber()) return equals(Value::integer(a.asBool()), b);
    if (b.kind() == Value::Kind::Bool && a.isNumber()) return equals(a, Value::integer(b.asBool()));
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return true;
    case Value::Kind::Bool: return a.asBool() == b.asBool();
    case Value::Kind::String: return a.asStr().text == b.asStr().text;
    case Value::Kind::Array: {
        if (a.asList().size() != b.asList().size()) return false;
        for (size_t i = 0; i < a.asList().size(); ++i) {
            if (!equals(a.asList()[i], b.asList()[i])) return false;
        }
        return true;
    }
    case Value::Kind::Map: {
        if (a.asDict().size() != b.asDict().size()) return false;
        for (const auto& [k, v] : a.asDict()) {
            const Value* other = b.find(k);
            if (!other || !equals(v, *other)) return false;
        }
        return true;
    }
    case Value::Kind::Function: return a.name() == b.name();
    default: return false;
    }
}

int compare(const Value& a, const Value& b) {
    auto numeric = [](const Value& v) { return v.isNumber() || v.kind() == Value::Kind::Bool; };
    if (numeric(a) && numeric(b)) {
        const double x = a.kind() == Value::Kind::Bool ? a.asBool() : a.asDouble();
        const double y = b.kind() == Value::Kind::Bool ? b.asBool() : b.asDouble();
        return x < y ? -1 : (x > y ? 1 : 0);
    }
    if (a.isString() && b.isString()) {
        const int c = a.asStr().text.compare(b.asStr().text);
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    if (a.kind() == Value::Kind::Array && b.kind() == Value::Kind::Array) {
        const List& x = a.asList();
        const List& y = b.asList();
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (!equals(x[i], y[i])) return compare(x[i], y[i]);
        }
        return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
    }
    fail(StatusCode::InvalidData, "cannot compare " + a.typeName() + " with " + b.typeName());
}

}  // namespace dsv2::jinja
