#include "tokenizer/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "tokenizer/utf8.h"

namespace dsv2::jinja {
namespace {

std::string lineText(int line) { return "chat template line " + std::to_string(line) + ": "; }

// Byte offsets of each character start, plus the end.
std::vector<size_t> charStarts(std::string_view s) {
    std::vector<size_t> starts;
    size_t i = 0;
    while (i < s.size()) {
        starts.push_back(i);
        char32_t cp = 0;
        i += utf8::decode(s, i, cp);
    }
    starts.push_back(s.size());
    return starts;
}

bool isStripChar(char32_t cp, const std::u32string* chars) {
    if (!chars) return utf8::isWhiteSpace(cp);
    return chars->find(cp) != std::u32string::npos;
}

std::u32string codePoints(std::string_view s) {
    std::u32string out;
    size_t i = 0;
    while (i < s.size()) {
        char32_t cp = 0;
        i += utf8::decode(s, i, cp);
        out.push_back(cp);
    }
    return out;
}

Str strip(const Str& s, const Value* chars, bool left, bool right) {
    std::u32string set;
    const std::u32string* setPtr = nullptr;
    if (chars && chars->isString()) {
        set = codePoints(chars->asStr().text);
        setPtr = &set;
    }
    const std::vector<size_t> starts = charStarts(s.text);
    size_t b = 0;
    size_t e = starts.size() - 1;  // index of the end sentinel
    auto cpAt = [&](size_t k) {
        char32_t cp = 0;
        utf8::decode(s.text, starts[k], cp);
        return cp;
    };
    if (left) {
        while (b < e && isStripChar(cpAt(b), setPtr)) ++b;
    }
    if (right) {
        while (e > b && isStripChar(cpAt(e - 1), setPtr)) --e;
    }
    return s.substr(starts[b], starts[e] - starts[b]);
}

std::string caseMap(std::string_view s, int mode) {  // 0 lower, 1 upper, 2 title, 3 capitalize
    // ASCII case mapping; other characters pass through (Python would map them too, but the
    // chat templates of this family only case-map roles and ASCII keywords).
    std::string out(s);
    bool wordStart = true;
    for (size_t i = 0; i < out.size(); ++i) {
        const char c = out[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool upper = false;
        switch (mode) {
        case 1: upper = true; break;
        case 2: upper = wordStart; break;
        case 3: upper = i == 0; break;
        default: break;
        }
        if (alpha) out[i] = upper ? static_cast<char>(c & ~0x20) : static_cast<char>(c | 0x20);
        wordStart = !alpha && !(c >= '0' && c <= '9') && static_cast<unsigned char>(c) < 0x80;
    }
    return out;
}

Value replace(const Str& s, const Value& from, const Value& to, const Value* count) {
    if (!from.isString() || !to.isString()) fail(StatusCode::InvalidData, "replace() takes strings");
    const std::string& f = from.asStr().text;
    const std::string& t = to.asStr().text;
    int64_t remaining = count && count->kind() == Value::Kind::Int ? count->asInt() : -1;
    std::string out;
    size_t pos = 0;
    if (f.empty()) {
        // Python inserts `to` between characters.
        const auto starts = charStarts(s.text);
        for (size_t k = 0; k + 1 < starts.size(); ++k) {
            if (remaining-- != 0) out += t;
            out += s.text.substr(starts[k], starts[k + 1] - starts[k]);
        }
        if (remaining != 0) out += t;
    } else {
        while (remaining != 0) {
            const size_t hit = s.text.find(f, pos);
            if (hit == std::string::npos) break;
            out += s.text.substr(pos, hit - pos) + t;
            pos = hit + f.size();
            --remaining;
        }
        out += s.text.substr(pos);
    }
    return Value::string(Str::derived(out, s.hasData() || from.asStr().hasData() || to.asStr().hasData()));
}

Value split(const Str& s, const Value* sep, const Value* maxSplitArg) {
    int64_t maxSplit = maxSplitArg && maxSplitArg->kind() == Value::Kind::Int ? maxSplitArg->asInt() : -1;
    List parts;
    if (!sep || sep->isNone()) {
        // Runs of whitespace separate; leading and trailing whitespace gives no empty parts.
        const auto starts = charStarts(s.text);
        size_t k = 0;
        const size_t n = starts.size() - 1;
        auto isWs = [&](size_t idx) {
            char32_t cp = 0;
            utf8::decode(s.text, starts[idx], cp);
            return utf8::isWhiteSpace(cp);
        };
        while (k < n) {
            while (k < n && isWs(k)) ++k;
            if (k >= n) break;
            size_t end = k;
            if (maxSplit == 0) {
                end = n;
                // Python keeps the remainder as is, minus trailing whitespace.
                while (end > k && isWs(end - 1)) --end;
            } else {
                while (end < n && !isWs(end)) ++end;
            }
            parts.push_back(Value::string(s.substr(starts[k], starts[end] - starts[k])));
            if (maxSplit > 0) --maxSplit;
            k = end;
        }
        return Value::list(std::move(parts));
    }
    if (!sep->isString() || sep->asStr().text.empty()) fail(StatusCode::InvalidData, "split() separator must be a non-empty string");
    const std::string& d = sep->asStr().text;
    size_t pos = 0;
    while (maxSplit != 0) {
        const size_t hit = s.text.find(d, pos);
        if (hit == std::string::npos) break;
        parts.push_back(Value::string(s.substr(pos, hit - pos)));
        pos = hit + d.size();
        --maxSplit;
    }
    parts.push_back(Value::string(s.substr(pos)));
    return Value::list(std::move(parts));
}

void toJson(const Value& v, int indent, int depth, std::string& out) {
    auto newline = [&](int d) {
        if (indent < 0) return;
        out += '\n';
        out.append(static_cast<size_t>(indent * d), ' ');
    };
    auto quoteJson = [&](const std::string& s) {
        out += '"';
        for (const char c : s) {
            switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof(buf), "\\u%04x", c);
                    out += buf;
                } else {
                    out += c;  // ensure_ascii=False, as HF's tojson
                }
            }
        }
        out += '"';
    };
    switch (v.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: out += "null"; break;
    case Value::Kind::Bool: out += v.asBool() ? "true" : "false"; break;
    case Value::Kind::Int: out += std::to_string(v.asInt()); break;
    case Value::Kind::Float: out += formatFloat(v.asDouble()); break;
    case Value::Kind::String: quoteJson(v.asStr().text); break;
    case Value::Kind::Array: {
        out += '[';
        const List& l = v.asList();
        for (size_t i = 0; i < l.size(); ++i) {
            if (i) out += indent < 0 ? ", " : ",";
            newline(depth + 1);
            toJson(l[i], indent, depth + 1, out);
        }
        if (!l.empty()) newline(depth);
        out += ']';
        break;
    }
    case Value::Kind::Map: {
        out += '{';
        bool first = true;
        for (const auto& [k, item] : v.asDict()) {
            if (!first) out += indent < 0 ? ", " : ",";
            first = false;
            newline(depth + 1);
            quoteJson(k);
            out += ": ";
            toJson(item, indent, depth + 1, out);
        }
        if (!v.asDict().empty()) newline(depth);
        out += '}';
        break;
    }
    case Value::Kind::Function: fail(StatusCode::InvalidData, "tojson: a function is not JSON");
    }
}

int64_t toInt(const Value& v, int64_t fallback) {
    switch (v.kind()) {
    case Value::Kind::Int: return v.asInt();
    case Value::Kind::Float: return static_cast<int64_t>(v.asDouble());
    case Value::Kind::Bool: return v.asBool();
    case Value::Kind::String: {
        const std::string& s = v.asStr().text;
        char* end = nullptr;
        const long long i = std::strtoll(s.c_str(), &end, 10);
        if (end && *end == '\0' && !s.empty()) return i;
        const double d = std::strtod(s.c_str(), &end);
        if (end && *end == '\0' && !s.empty()) return static_cast<int64_t>(d);
        return fallback;
    }
    default: return fallback;
    }
}

Value attribute(const Value& v, const std::string& path) {
    // "a.b" walks nested dicts; missing → undefined.
    Value current = v;
    size_t pos = 0;
    while (pos <= path.size()) {
        const size_t dot = path.find('.', pos);
        const std::string key = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
        const Value* found = current.find(key);
        if (!found) return Value::undefined(key);
        current = *found;
        if (dot == std::string::npos) break;
        pos = dot + 1;
    }
    return current;
}

// select/reject/selectattr/rejectattr: the test is args[first] (default: truthiness).
List filterItems(const List& items, const Args& args, size_t testIndex, bool keep, const std::string* attr) {
    List out;
    std::string test;
    Args testArgs;
    testArgs.line = args.line;
    if (args.positional.size() > testIndex) {
        if (!args.positional[testIndex].isString()) args.error(StatusCode::InvalidData, "the test name must be a string");
        test = args.positional[testIndex].asStr().text;
        testArgs.what = "test '" + test + "'";
        testArgs.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(testIndex) + 1, args.positional.end());
    }
    for (const Value& item : items) {
        const Value subject = attr ? attribute(item, *attr) : item;
        const bool passed = test.empty() ? subject.truthy() : applyTest(test, subject, testArgs);
        if (passed == keep) out.push_back(item);
    }
    return out;
}

const std::string& stringArg(const Args& args, size_t index, std::string_view name) {
    const Value* v = args.get(index, name);
    if (!v || !v->isString()) args.error(StatusCode::InvalidData, "argument '" + std::string(name) + "' must be a string");
    return v->asStr().text;
}

}  // namespace

const Value* Args::get(size_t index, std::string_view name) const {
    if (index < positional.size()) return &positional[index];
    for (const auto& [k, v] : keyword) {
        if (k == name) return &v;
    }
    return nullptr;
}

void Args::error(StatusCode code, const std::string& message) const {
    fail(code, lineText(line) + what + ": " + message);
}

Str concat(const Value& a, const Value& b) {
    Str out = a.toStr();
    out.append(b.toStr());
    return out;
}

List iterate(const Value& v, int line) {
    switch (v.kind()) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::Array: return v.asList();
    case Value::Kind::Map: {
        List keys;
        for (const auto& kv : v.asDict()) keys.push_back(Value::string(kv.first, true));
        return keys;
    }
    case Value::Kind::String: {
        List chars;
        const auto starts = charStarts(v.asStr().text);
        for (size_t k = 0; k + 1 < starts.size(); ++k) {
            chars.push_back(Value::string(v.asStr().substr(starts[k], starts[k + 1] - starts[k])));
        }
        return chars;
    }
    default: fail(StatusCode::InvalidData, lineText(line) + "cannot iterate over " + v.typeName());
    }
}

Value applyFilter(const std::string& name, const Value& v, const Args& args) {
    const Value* a0 = args.get(0, "");
    if (name == "length" || name == "count") {
        switch (v.kind()) {
        case Value::Kind::Undefined: return Value::integer(0);
        case Value::Kind::String: return Value::integer(static_cast<int64_t>(charStarts(v.asStr().text).size() - 1));
        case Value::Kind::Array: return Value::integer(static_cast<int64_t>(v.asList().size()));
        case Value::Kind::Map: return Value::integer(static_cast<int64_t>(v.asDict().size()));
        default: args.error(StatusCode::InvalidData, v.typeName() + " has no length");
        }
    }
    if (name == "default" || name == "d") {
        const Value* fallback = args.get(0, "default_value");
        const Value* boolean = args.get(1, "boolean");
        const bool useFallback = v.isUndefined() || (boolean && boolean->truthy() && !v.truthy());
        if (!useFallback) return v;
        return fallback ? *fallback : Value::string("");
    }
    if (name == "safe") return v;
    if (name == "string") return Value::string(v.toStr());
    if (name == "trim") {
        if (!v.isString()) return Value::string(v.toStr());
        return Value::string(strip(v.asStr(), args.get(0, "chars"), true, true));
    }
    if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
        const Str s = v.toStr();
        const int mode = name == "lower" ? 0 : name == "upper" ? 1 : name == "title" ? 2 : 3;
        return Value::string(Str::derived(caseMap(s.text, mode), s.hasData()));
    }
    if (name == "replace") {
        const Value* count = args.get(2, "count");
        if (!a0 || !args.get(1, "new")) args.error(StatusCode::InvalidData, "needs the old and the new string");
        return replace(v.toStr(), *a0, *args.get(1, "new"), count);
    }
    if (name == "join") {
        const Value* sep = args.get(0, "d");
        const Value* attr = args.get(1, "attribute");
        Str out;
        bool first = true;
        for (const Value& item : iterate(v, args.line)) {
            if (!first && sep) out.append(sep->toStr());
            first = false;
            out.append((attr && attr->isString() ? attribute(item, attr->asStr().text) : item).toStr());
        }
        return Value::string(out);
    }
    if (name == "first" || name == "last") {
        const List items = iterate(v, args.line);
        if (items.empty()) return Value::undefined(name);
        return name == "first" ? items.front() : items.back();
    }
    if (name == "list") return Value::list(iterate(v, args.line));
    if (name == "items") {
        if (v.isUndefined()) return Value::list();
        if (v.kind() != Value::Kind::Map) args.error(StatusCode::InvalidData, "expects a dict, got " + v.typeName());
        List out;
        for (const auto& [k, item] : v.asDict()) out.push_back(Value::tuple({Value::string(k, true), item}));
        return Value::list(std::move(out));
    }
    if (name == "reverse") {
        if (v.isString()) {
            const auto starts = charStarts(v.asStr().text);
            std::string out;
            for (size_t k = starts.size() - 1; k > 0; --k) out += v.asStr().text.substr(starts[k - 1], starts[k] - starts[k - 1]);
            return Value::string(Str::derived(out, v.asStr().hasData()));
        }
        List items = iterate(v, args.line);
        std::reverse(items.begin(), items.end());
        return Value::list(std::move(items));
    }
    if (name == "int") {
        const Value* fallback = args.get(0, "default");
        return Value::integer(toInt(v, fallback ? toInt(*fallback, 0) : 0));
    }
    if (name == "float") {
        if (v.isNumber()) return Value::number(v.asDouble());
        if (v.isString()) {
            char* end = nullptr;
            const double d = std::strtod(v.asStr().text.c_str(), &end);
            if (end && *end == '\0' && !v.asStr().text.empty()) return Value::number(d);
        }
        const Value* fallback = args.get(0, "default");
        return Value::number(fallback && fallback->isNumber() ? fallback->asDouble() : 0.0);
    }
    if (name == "abs") {
        if (v.kind() == Value::Kind::Int) return Value::integer(v.asInt() < 0 ? -v.asInt() : v.asInt());
        if (v.kind() == Value::Kind::Float) return Value::number(std::fabs(v.asDouble()));
        args.error(StatusCode::InvalidData, "expects a number, got " + v.typeName());
    }
    if (name == "round") {
        if (!v.isNumber()) args.error(StatusCode::InvalidData, "expects a number, got " + v.typeName());
        const Value* precisionArg = args.get(0, "precision");
        const Value* methodArg = args.get(1, "method");
        const int64_t precision = precisionArg ? toInt(*precisionArg, 0) : 0;
        const std::string method = methodArg && methodArg->isString() ? methodArg->asStr().text : "common";
        const double scale = std::pow(10.0, static_cast<double>(precision));
        const double x = v.asDouble() * scale;
        // "common" is Python's round(): halves go to the even neighbour.
        const double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::nearbyint(x);
        return Value::number(r / scale);
    }
    if (name == "tojson") {
        const Value* indentArg = args.get(0, "indent");
        std::string out;
        toJson(v, indentArg && indentArg->kind() == Value::Kind::Int ? static_cast<int>(indentArg->asInt()) : -1, 0, out);
        return Value::string(Str::derived(out, containsData(v)));
    }
    if (name == "escape" || name == "e") {
        const Str s = v.toStr();
        std::string out;
        for (const char c : s.text) {
            switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&#34;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
            }
        }
        return Value::string(Str::derived(out, s.hasData()));
    }
    if (name == "indent") {
        const Value* widthArg = args.get(0, "width");
        const Value* firstArg = args.get(1, "first");
        const Value* blankArg = args.get(2, "blank");
        const std::string pad = widthArg && widthArg->isString() ? widthArg->asStr().text
                                                                 : std::string(static_cast<size_t>(widthArg ? toInt(*widthArg, 4) : 4), ' ');
        const Str s = v.toStr();
        std::string out;
        size_t pos = 0;
        bool firstLine = true;
        while (pos <= s.text.size()) {
            const size_t nl = s.text.find('\n', pos);
            const std::string lineStr = s.text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
            const bool indentThis = (!firstLine || (firstArg && firstArg->truthy())) && (!lineStr.empty() || (blankArg && blankArg->truthy()));
            if (!firstLine) out += '\n';
            if (indentThis) out += pad;
            out += lineStr;
            firstLine = false;
            if (nl == std::string::npos) break;
            pos = nl + 1;
        }
        return Value::string(Str::derived(out, s.hasData()));
    }
    if (name == "map") {
        const List items = iterate(v, args.line);
        List out;
        const Value* attr = nullptr;
        for (const auto& [k, val] : args.keyword) {
            if (k == "attribute") attr = &val;
        }
        if (attr) {
            const Value* fallback = nullptr;
            for (const auto& [k, val] : args.keyword) {
                if (k == "default") fallback = &val;
            }
            for (const Value& item : items) {
                Value mapped = attribute(item, attr->toStr().text);
                out.push_back(mapped.isUndefined() && fallback ? *fallback : mapped);
            }
            return Value::list(std::move(out));
        }
        if (!a0 || !a0->isString()) args.error(StatusCode::InvalidData, "expects a filter name or attribute=");
        Args inner;
        inner.line = args.line;
        inner.what = "filter '" + a0->asStr().text + "'";
        inner.positional.assign(args.positional.begin() + 1, args.positional.end());
        if (a0->asStr().text == "map") args.error(StatusCode::Unsupported, "map('map') is not supported");
        for (const Value& item : items) out.push_back(applyFilter(a0->asStr().text, item, inner));
        return Value::list(std::move(out));
    }
    if (name == "select" || name == "reject") return Value::list(filterItems(iterate(v, args.line), args, 0, name == "select", nullptr));
    if (name == "selectattr" || name == "rejectattr") {
        const std::string attr = stringArg(args, 0, "attribute");
        return Value::list(filterItems(iterate(v, args.line), args, 1, name == "selectattr", &attr));
    }
    if (name == "unique") {
        List out;
        for (const Value& item : iterate(v, args.line)) {
            if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return equals(o, item); })) out.push_back(item);
        }
        return Value::list(std::move(out));
    }
    if (name == "sort" || name == "min" || name == "max") {
        List items = iterate(v, args.line);
        const bool isSort = name == "sort";
        const Value* reverseArg = isSort ? args.get(0, "reverse") : nullptr;
        const Value* attrArg = args.get(isSort ? 2 : 1, "attribute");
        auto key = [&](const Value& item) { return attrArg && attrArg->isString() ? attribute(item, attrArg->asStr().text) : item; };
        std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) { return compare(key(a), key(b)) < 0; });
        if (isSort) {
            if (reverseArg && reverseArg->truthy()) std::reverse(items.begin(), items.end());
            return Value::list(std::move(items));
        }
        if (items.empty()) return Value::undefined(name);
        return name == "min" ? items.front() : items.back();
    }
    if (name == "sum") {
        const Value* attrArg = args.get(0, "attribute");
        const Value* startArg = args.get(1, "start");
        bool isFloat = startArg && startArg->kind() == Value::Kind::Float;
        int64_t isum = startArg && startArg->kind() == Value::Kind::Int ? startArg->asInt() : 0;
        double fsum = startArg && startArg->isNumber() ? startArg->asDouble() : 0.0;
        for (const Value& item : iterate(v, args.line)) {
            const Value x = attrArg && attrArg->isString() ? attribute(item, attrArg->asStr().text) : item;
            if (!x.isNumber()) args.error(StatusCode::InvalidData, "cannot add " + x.typeName());
            isFloat = isFloat || x.kind() == Value::Kind::Float;
            if (x.kind() == Value::Kind::Int) isum += x.asInt();
            fsum += x.asDouble();
        }
        return isFloat ? Value::number(fsum) : Value::integer(isum);
    }
    args.error(StatusCode::Unsupported, "filter '" + name + "' is not supported");
}

bool applyTest(const std::string& name, const Value& v, const Args& args) {
    const Value* a0 = args.get(0, "");
    auto needArg = [&]() -> const Value& {
        if (!a0) args.error(StatusCode::InvalidData, "needs an argument");
        return *a0;
    };
    if (name == "defined") return !v.isUndefined();
    if (name == "undefined") return v.isUndefined();
    if (name == "none") return v.isNone();
    if (name == "string") return v.isString();
    if (name == "number") return v.isNumber();
    if (name == "integer") return v.kind() == Value::Kind::Int;
    if (name == "float") return v.kind() == Value::Kind::Float;
    if (name == "boolean") return v.kind() == Value::Kind::Bool;
    if (name == "true") return v.kind() == Value::Kind::Bool && v.asBool();
    if (name == "false") return v.kind() == Value::Kind::Bool && !v.asBool();
    if (name == "mapping") return v.kind() == Value::Kind::Map;
    if (name == "iterable") return v.kind() == Value::Kind::Array || v.kind() == Value::Kind::Map || v.isString();
    if (name == "sequence") return v.kind() == Value::Kind::Array || v.kind() == Value::Kind::Map || v.isString();
    if (name == "callable") return v.kind() == Value::Kind::Function;
    if (name == "lower") return v.isString() && caseMap(v.asStr().text, 0) == v.asStr().text;
    if (name == "upper") return v.isString() && caseMap(v.asStr().text, 1) == v.asStr().text;
    if (name == "even" || name == "odd") {
        if (v.kind() != Value::Kind::Int) args.error(StatusCode::InvalidData, "expects an integer, got " + v.typeName());
        return (v.asInt() % 2 == 0) == (name == "even");
    }
    if (name == "divisibleby") {
        const Value& d = needArg();
        if (v.kind() != Value::Kind::Int || d.kind() != Value::Kind::Int || d.asInt() == 0) {
            args.error(StatusCode::InvalidData, "expects non-zero integers");
        }
        return v.asInt() % d.asInt() == 0;
    }
    if (name == "eq" || name == "equalto" || name == "==") return equals(v, needArg());
    if (name == "ne" || name == "!=") return !equals(v, needArg());
    if (name == "sameas") {
        const Value& o = needArg();
        return v.kind() == o.kind() && (v.kind() == Value::Kind::None || v.kind() == Value::Kind::Undefined || equals(v, o));
    }
    if (name == "lt" || name == "lessthan") return compare(v, needArg()) < 0;
    if (name == "le") return compare(v, needArg()) <= 0;
    if (name == "gt" || name == "greaterthan") return compare(v, needArg()) > 0;
    if (name == "ge") return compare(v, needArg()) >= 0;
    if (name == "in") {
        const Value& container = needArg();
        if (container.isString()) return v.isString() && container.asStr().text.find(v.asStr().text) != std::string::npos;
        for (const Value& item : iterate(container, args.line)) {
            if (equals(item, v)) return true;
        }
        return false;
    }
    args.error(StatusCode::Unsupported, "test '" + name + "' is not supported");
}

Value callMethod(const Value& target, const std::string& name, const Args& args) {
    const Value* a0 = args.get(0, "");
    if (target.isString()) {
        const Str& s = target.asStr();
        if (name == "strip") return Value::string(strip(s, a0, true, true));
        if (name == "lstrip") return Value::string(strip(s, a0, true, false));
        if (name == "rstrip") return Value::string(strip(s, a0, false, true));
        if (name == "split") return split(s, args.get(0, "sep"), args.get(1, "maxsplit"));
        if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
            const int mode = name == "lower" ? 0 : name == "upper" ? 1 : name == "title" ? 2 : 3;
            return Value::string(Str::derived(caseMap(s.text, mode), s.hasData()));
        }
        if (name == "startswith" || name == "endswith") {
            if (!a0) args.error(StatusCode::InvalidData, "needs an argument");
            List options = a0->kind() == Value::Kind::Array ? a0->asList() : List{*a0};
            for (const Value& o : options) {
                if (!o.isString()) args.error(StatusCode::InvalidData, "expects strings");
                const bool hit = name == "startswith" ? s.text.starts_with(o.asStr().text) : s.text.ends_with(o.asStr().text);
                if (hit) return Value::boolean(true);
            }
            return Value::boolean(false);
        }
        if (name == "replace") {
            if (!a0 || !args.get(1, "new")) args.error(StatusCode::InvalidData, "needs the old and the new string");
            return replace(s, *a0, *args.get(1, "new"), args.get(2, "count"));
        }
        if (name == "find") {
            if (!a0 || !a0->isString()) args.error(StatusCode::InvalidData, "needs a string");
            const size_t hit = s.text.find(a0->asStr().text);
            return Value::integer(hit == std::string::npos ? -1 : static_cast<int64_t>(charStarts(s.text.substr(0, hit)).size() - 1));
        }
        if (name == "count") {
            if (!a0 || !a0->isString() || a0->asStr().text.empty()) args.error(StatusCode::InvalidData, "needs a non-empty string");
            int64_t n = 0;
            for (size_t p = s.text.find(a0->asStr().text); p != std::string::npos; p = s.text.find(a0->asStr().text, p + a0->asStr().text.size())) ++n;
            return Value::integer(n);
        }
        if (name == "join") {
            Str out;
            bool first = true;
            for (const Value& item : iterate(a0 ? *a0 : Value::list(), args.line)) {
                if (!first) out.append(s);
                first = false;
                out.append(item.toStr());
            }
            return Value::string(out);
        }
        args.error(StatusCode::Unsupported, "string method '" + name + "' is not supported");
    }
    if (target.kind() == Value::Kind::Map && !target.isNamespace()) {
        if (name == "items") return applyFilter("items", target, Args{{}, {}, args.line, "items()"});
        if (name == "keys") return Value::list(iterate(target, args.line));
        if (name == "values") {
            List out;
            for (const auto& kv : target.asDict()) out.push_back(kv.second);
            return Value::list(std::move(out));
        }
        if (name == "get") {
            if (!a0 || !a0->isString()) args.error(StatusCode::InvalidData, "needs a string key");
            const Value* found = target.find(a0->asStr().text);
            if (found) return *found;
            const Value* fallback = args.get(1, "default");
            return fallback ? *fallback : Value::none();
        }
        args.error(StatusCode::Unsupported, "dict method '" + name + "' is not supported");
    }
    if (target.kind() == Value::Kind::Array && name == "append") {
        if (!a0) args.error(StatusCode::InvalidData, "needs an argument");
        target.asList().push_back(*a0);
        return Value::none();
    }
    if (target.isUndefined()) {
        args.error(StatusCode::InvalidData, "'" + target.name() + "' is undefined, so it has no method '" + name + "'");
    }
    args.error(StatusCode::Unsupported, target.typeName() + " method '" + name + "' is not supported");
}

bool isGlobalFunction(std::string_view name) {
    return name == "namespace" || name == "range" || name == "raise_exception" || name == "dict" || name == "strftime_now";
}

Value callFunction(const Value& function, const Args& args) {
    const std::string& name = function.name();
    if (name == "namespace" || name == "dict") {
        Dict items;
        if (!args.positional.empty()) {
            if (args.positional.size() != 1 || args.positional[0].kind() != Value::Kind::Map) {
                args.error(StatusCode::InvalidData, "takes keyword arguments or one dict");
            }
            items = args.positional[0].asDict();
        }
        for (const auto& [k, v] : args.keyword) items.emplace_back(k, v);
        return Value::dict(std::move(items), name == "namespace");
    }
    if (name == "range") {
        std::vector<int64_t> n;
        for (const Value& v : args.positional) {
            if (v.kind() != Value::Kind::Int) args.error(StatusCode::InvalidData, "takes integers");
            n.push_back(v.asInt());
        }
        if (n.empty() || n.size() > 3) args.error(StatusCode::InvalidData, "takes 1 to 3 integers");
        const int64_t start = n.size() == 1 ? 0 : n[0];
        const int64_t stop = n.size() == 1 ? n[0] : n[1];
        const int64_t step = n.size() == 3 ? n[2] : 1;
        if (step == 0) args.error(StatusCode::InvalidData, "step must not be zero");
        List out;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (out.size() >= 1'000'000) args.error(StatusCode::OutOfRange, "more than a million items");
            out.push_back(Value::integer(i));
        }
        return Value::list(std::move(out));
    }
    if (name == "raise_exception") {
        const std::string message = args.positional.empty() ? std::string("(no message)") : args.positional[0].toStr().text;
        fail(StatusCode::InvalidArgument, lineText(args.line) + "the chat template rejected the conversation: " + message);
    }
    if (name == "strftime_now") {
        const Value* format = args.get(0, "format");
        if (!format || !format->isString()) args.error(StatusCode::InvalidData, "needs a format string");
        const std::time_t now = std::time(nullptr);
        std::tm local{};
        localtime_r(&now, &local);
        char buf[256];
        const size_t n = std::strftime(buf, sizeof(buf), format->asStr().text.c_str(), &local);
        return Value::string(std::string(buf, n));
    }
    if (name == "cycle") {
        // loop.cycle(a, b, ...): bound[0] is the loop's index0.
        if (args.positional.empty()) args.error(StatusCode::InvalidData, "needs at least one value");
        const int64_t index = function.bound().empty() ? 0 : function.bound()[0].asInt();
        return args.positional[static_cast<size_t>(index) % args.positional.size()];
    }
    args.error(StatusCode::Unsupported, "function '" + name + "' is not supported");
}

}  // namespace dsv2::jinja
