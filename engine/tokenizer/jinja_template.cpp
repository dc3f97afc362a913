#include "tokenizer/jinja_template.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <optional>
#include <unordered_map>

#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_parser.h"
#include "tokenizer/utf8.h"

namespace dsv2::jinja {
namespace {

// Limits that keep a hostile template from exhausting memory or time.
constexpr size_t kMaxOutputBytes = 64u << 20;
constexpr int64_t kMaxLoopIterations = 10'000'000;
constexpr int kMaxEvalDepth = 400;

[[noreturn]] void errorAt(StatusCode code, int line, const std::string& message) {
    fail(code, "chat template line " + std::to_string(line) + ": " + message);
}

class Interpreter {
public:
    explicit Interpreter(const std::vector<std::pair<std::string, Value>>& globals) {
        m_scopes.emplace_back();
        for (const auto& [k, v] : globals) m_scopes.back()[k] = v;
    }

    Str run(const Body& body) {
        exec(body);
        return std::move(m_out);
    }

private:
    enum class Flow { Normal, Break, Continue };
    using Scope = std::unordered_map<std::string, Value>;

    Flow exec(const Body& body) {
        for (const StmtPtr& s : body) {
            const Flow f = execOne(*s);
            if (f != Flow::Normal) return f;
        }
        return Flow::Normal;
    }

    void emit(const Str& s) {
        if (m_out.text.size() + s.text.size() > kMaxOutputBytes) {
            fail(StatusCode::OutOfRange, "chat template output exceeds 64 MiB");
        }
        m_out.append(s);
    }

    Flow execOne(const Stmt& s) {
        switch (s.kind) {
        case Stmt::Kind::Text: emit(Str(s.text)); return Flow::Normal;
        case Stmt::Kind::Output: emit(eval(*s.expr).toStr()); return Flow::Normal;
        case Stmt::Kind::If:
            for (const auto& [cond, body] : s.branches) {
                if (eval(*cond).truthy()) return exec(body);
            }
            return exec(s.elseBody);
        case Stmt::Kind::For: return execFor(s);
        case Stmt::Kind::Set: execSet(s); return Flow::Normal;
        case Stmt::Kind::Break: return Flow::Break;
        case Stmt::Kind::Continue: return Flow::Continue;
        case Stmt::Kind::Generation: return exec(s.body);
        }
        return Flow::Normal;
    }

    void assign(const std::vector<std::string>& targets, const Value& value, int line) {
        if (targets.size() == 1) {
            m_scopes.back()[targets[0]] = value;
            return;
        }
        const List items = iterate(value, line);
        if (items.size() != targets.size()) {
            errorAt(StatusCode::InvalidData, line, "cannot unpack " + std::to_string(items.size()) + " values into " +
                                                       std::to_string(targets.size()) + " names");
        }
        for (size_t i = 0; i < targets.size(); ++i) m_scopes.back()[targets[i]] = items[i];
    }

    void execSet(const Stmt& s) {
        Value value;
        if (s.expr) {
            value = eval(*s.expr);
        } else {
            // {% set x %}...{% endset %}: capture the body's output.
            Str saved = std::move(m_out);
            m_out = Str();
            exec(s.body);
            value = Value::string(std::move(m_out));
            m_out = std::move(saved);
        }
        if (!s.attribute.empty()) {
            const Value target = lookup(s.targets[0]);
            if (!target.isNamespace()) {
                errorAt(StatusCode::InvalidData, s.line, "cannot set '" + s.attribute + "' on '" + s.targets[0] +
                                                             "': only namespace() objects take attributes");
            }
            target.set(s.attribute, std::move(value));
            return;
        }
        assign(s.targets, value, s.line);
    }

    Flow execFor(const Stmt& s) {
        List items = iterate(eval(*s.expr), s.line);
        if (s.cond) {
            // The filter sees the loop variable; loop.length counts only what passes.
            List kept;
            for (const Value& item : items) {
                m_scopes.emplace_back();
                assign(s.targets, item, s.line);
                const bool pass = eval(*s.cond).truthy();
                m_scopes.pop_back();
                if (pass) kept.push_back(item);
            }
            items = std::move(kept);
        }
        if (items.empty()) return exec(s.elseBody);
        const auto n = static_cast<int64_t>(items.size());
        for (int64_t i = 0; i < n; ++i) {
            if (++m_iterations > kMaxLoopIterations) errorAt(StatusCode::OutOfRange, s.line, "too many loop iterations");
            m_scopes.emplace_back();  // each iteration has its own scope, as in Jinja
            assign(s.targets, items[static_cast<size_t>(i)], s.line);
            Dict loop{
                {"index", Value::integer(i + 1)},
                {"index0", Value::integer(i)},
                {"revindex", Value::integer(n - i)},
                {"revindex0", Value::integer(n - i - 1)},
                {"first", Value::boolean(i == 0)},
                {"last", Value::boolean(i == n - 1)},
                {"length", Value::integer(n)},
                {"previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("previtem")},
                {"nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("nextitem")},
                {"cycle", Value::function("cycle", {Value::integer(i)})},
            };
            m_scopes.back()["loop"] = Value::dict(std::move(loop));
            const Flow f = exec(s.body);
            m_scopes.pop_back();
            if (f == Flow::Break) break;
        }
        return Flow::Normal;
    }

    Value lookup(const std::string& name) const {
        for (auto it = m_scopes.rbegin(); it != m_scopes.rend(); ++it) {
            const auto found = it->find(name);
            if (found != it->end()) return found->second;
        }
        if (isGlobalFunction(name)) return Value::function(name);
        return Value::undefined(name);
    }

    struct DepthGuard {
        explicit DepthGuard(Interpreter& i, int line) : interp(i) {
            if (++interp.m_depth > kMaxEvalDepth) errorAt(StatusCode::OutOfRange, line, "expression evaluation too deep");
        }
        ~DepthGuard() { --interp.m_depth; }
        Interpreter& interp;
    };

    Args evalArgs(const Expr& e, size_t firstPositional, std::string what) {
        Args args;
        args.line = e.line;
        args.what = std::move(what);
        for (size_t i = firstPositional; i < e.items.size(); ++i) args.positional.push_back(eval(*e.items[i]));
        for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v));
        return args;
    }

    Value eval(const Expr& e) {
        DepthGuard guard(*this, e.line);
        switch (e.kind) {
        case Expr::Kind::Literal: return e.value;
        case Expr::Kind::Name: return lookup(e.name);
        case Expr::Kind::ListLit: {
            List items;
            for (const auto& item : e.items) items.push_back(eval(*item));
            return e.name == "tuple" ? Value::tuple(std::move(items)) : Value::list(std::move(items));
        }
        case Expr::Kind::DictLit: {
            Dict items;
            for (size_t i = 0; i < e.keys.size(); ++i) {
                const Value key = eval(*e.keys[i]);
                if (!key.isString()) errorAt(StatusCode::Unsupported, e.line, "dict keys must be strings");
                Value value = eval(*e.items[i]);
                bool replaced = false;
                for (auto& kv : items) {
                    if (kv.first == key.asStr().text) {
                        kv.second = value;
                        replaced = true;
                    }
                }
                if (!replaced) items.emplace_back(key.asStr().text, std::move(value));
            }
            return Value::dict(std::move(items));
        }
        case Expr::Kind::Attribute: return getAttribute(eval(*e.items[0]), e.name, e.line);
        case Expr::Kind::Index: return getItem(eval(*e.items[0]), eval(*e.items[1]), e.line);
        case Expr::Kind::Slice: return slice(e);
        case Expr::Kind::Call: return call(e);
        case Expr::Kind::Filter: {
            const Value target = eval(*e.items[0]);
            return applyFilter(e.name, target, evalArgs(e, 1, "filter '" + e.name + "'"));
        }
        case Expr::Kind::Test: {
            const Value target = eval(*e.items[0]);
            const bool result = applyTest(e.name, target, evalArgs(e, 1, "test '" + e.name + "'"));
            return Value::boolean(result != e.negated);
        }
        case Expr::Kind::Unary: {
            const Value v = eval(*e.items[0]);
            if (e.name == "not") return Value::boolean(!v.truthy());
            if (v.kind() == Value::Kind::Int) return Value::integer(e.name == "-" ? -v.asInt() : v.asInt());
            if (v.kind() == Value::Kind::Float) return Value::number(e.name == "-" ? -v.asDouble() : v.asDouble());
            errorAt(StatusCode::InvalidData, e.line, "unary '" + e.name + "' needs a number, got " + v.typeName());
        }
        case Expr::Kind::Binary: return binary(e);
        case Expr::Kind::Conditional:
            if (eval(*e.items[1]).truthy()) return eval(*e.items[0]);
            return e.items[2] ? eval(*e.items[2]) : Value::undefined();
        }
        return Value::undefined();
    }

    static Value getAttribute(const Value& target, const std::string& name, int line) {
        if (target.kind() == Value::Kind::Map) {
            const Value* found = target.find(name);
            return found ? *found : Value::undefined(name);
        }
        if (target.isUndefined()) {
            errorAt(StatusCode::InvalidData, line, "'" + (target.name().empty() ? std::string("value") : target.name()) +
                                                       "' is undefined, so it has no attribute '" + name + "'");
        }
        // Jinja falls back to undefined for unknown attributes of other objects.
        return Value::undefined(name);
    }

    static Value getItem(const Value& target, const Value& key, int line) {
        switch (target.kind()) {
        case Value::Kind::Map: {
            if (!key.isString()) return Value::undefined();
            const Value* found = target.find(key.asStr().text);
            return found ? *found : Value::undefined(key.asStr().text);
        }
        case Value::Kind::Array:
        case Value::Kind::String: {
            if (key.kind() != Value::Kind::Int) {
                if (target.kind() == Value::Kind::Array) return Value::undefined();
                errorAt(StatusCode::InvalidData, line, "string indices must be integers");
            }
            const List items = target.kind() == Value::Kind::Array ? List() : iterate(target, line);
            const List& seq = target.kind() == Value::Kind::Array ? target.asList() : items;
            int64_t i = key.asInt();
            const auto n = static_cast<int64_t>(seq.size());
            if (i < 0) i += n;
            if (i < 0 || i >= n) return Value::undefined("index " + std::to_string(key.asInt()));
            return seq[static_cast<size_t>(i)];
        }
        case Value::Kind::Undefined:
            errorAt(StatusCode::InvalidData, line, "'" + (target.name().empty() ? std::string("value") : target.name()) +
                                                       "' is undefined, so it cannot be indexed");
        default: return Value::undefined();
        }
    }

    Value slice(const Expr& e) {
        const Value target = eval(*e.items[0]);
        auto bound = [&](size_t i) -> std::optional<int64_t> {
            if (!e.items[i]) return std::nullopt;
            const Value v = eval(*e.items[i]);
            if (v.isNone()) return std::nullopt;
            if (v.kind() != Value::Kind::Int) errorAt(StatusCode::InvalidData, e.line, "slice bounds must be integers");
            return v.asInt();
        };
        const auto start = bound(1);
        const auto stop = bound(2);
        const int64_t step = bound(3).value_or(1);
        if (step == 0) errorAt(StatusCode::InvalidData, e.line, "slice step cannot be zero");
        const List items = iterate(target, e.line);
        const auto n = static_cast<int64_t>(items.size());
        // Python's slice index rules.
        auto clampIndex = [&](std::optional<int64_t> v, int64_t fallback) {
            if (!v) return fallback;
            int64_t x = *v < 0 ? *v + n : *v;
            if (step > 0) return std::clamp<int64_t>(x, 0, n);
            return std::clamp<int64_t>(x, -1, n - 1);
        };
        const int64_t from = clampIndex(start, step > 0 ? 0 : n - 1);
        const int64_t to = clampIndex(stop, step > 0 ? n : -1);
        List out;
        for (int64_t i = from; step > 0 ? i < to : i > to; i += step) out.push_back(items[static_cast<size_t>(i)]);
        if (target.isString()) {
            Str s;
            for (const Value& c : out) s.append(c.asStr());
            return Value::string(std::move(s));
        }
        return Value::list(std::move(out));
    }

    Value call(const Expr& e) {
        const Expr& callee = *e.items[0];
        if (callee.kind == Expr::Kind::Attribute) {
            const Value target = eval(*callee.items[0]);
            // loop.cycle and namespace-held functions are values; everything else is a method.
            if (target.kind() == Value::Kind::Map) {
                const Value* member = target.find(callee.name);
                if (member && member->kind() == Value::Kind::Function) {
                    return callFunction(*member, evalArgs(e, 1, "function '" + callee.name + "'"));
                }
            }
            return callMethod(target, callee.name, evalArgs(e, 1, "method '" + callee.name + "'"));
        }
        const Value function = eval(callee);
        if (function.kind() != Value::Kind::Function) {
            const std::string what = callee.kind == Expr::Kind::Name ? "'" + callee.name + "'" : "this value";
            if (function.isUndefined()) {
                errorAt(StatusCode::Unsupported, e.line, "function " + what + " is not supported (it is not defined)");
            }
            errorAt(StatusCode::InvalidData, e.line, what + " is a " + function.typeName() + ", not a function");
        }
        return callFunction(function, evalArgs(e, 1, "function '" + function.name() + "'"));
    }

    Value binary(const Expr& e) {
        const std::string& op = e.name;
        if (op == "and") {
            Value l = eval(*e.items[0]);
            return l.truthy() ? eval(*e.items[1]) : l;
        }
        if (op == "or") {
            Value l = eval(*e.items[0]);
            return l.truthy() ? l : eval(*e.items[1]);
        }
        const Value l = eval(*e.items[0]);
        const Value r = eval(*e.items[1]);
        if (op == "==") return Value::boolean(equals(l, r));
        if (op == "!=") return Value::boolean(!equals(l, r));
        if (op == "<" || op == "<=" || op == ">" || op == ">=") {
            int c = 0;
            try {
                c = compare(l, r);
            } catch (const Error& err) {
                errorAt(StatusCode::InvalidData, e.line, err.status.message());
            }
            return Value::boolean(op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0);
        }
        if (op == "in" || op == "not in") {
            Args args;
            args.line = e.line;
            args.what = "'in'";
            args.positional.push_back(r);
            return Value::boolean(applyTest("in", l, args) == (op == "in"));
        }
        if (op == "~") return Value::string(concat(l, r));
        if (op == "+") {
            if (l.isString() && r.isString()) {
                Str s = l.asStr();
                s.append(r.asStr());
                return Value::string(std::move(s));
            }
            if (l.kind() == Value::Kind::Array && r.kind() == Value::Kind::Array) {
                List items = l.asList();
                items.insert(items.end(), r.asList().begin(), r.asList().end());
                return Value::list(std::move(items));
            }
        }
        if (op == "*" && (l.isString() || r.isString()) && (l.kind() == Value::Kind::Int || r.kind() == Value::Kind::Int)) {
            const Value& s = l.isString() ? l : r;
            const int64_t times = (l.isString() ? r : l).asInt();
            if (times > 0 && static_cast<uint64_t>(times) * s.asStr().text.size() > kMaxOutputBytes) {
                errorAt(StatusCode::OutOfRange, e.line, "string repetition too large");
            }
            Str out;
            for (int64_t i = 0; i < times; ++i) out.append(s.asStr());
            return Value::string(std::move(out));
        }
        if (op == "%" && l.isString()) errorAt(StatusCode::Unsupported, e.line, "printf-style '%' formatting is not supported");
        if (!l.isNumber() || !r.isNumber()) {
            errorAt(StatusCode::InvalidData, e.line, "cannot apply '" + op + "' to " + l.typeName() + " and " + r.typeName());
        }
        return arithmetic(op, l, r, e.line);
    }

    static Value arithmetic(const std::string& op, const Value& l, const Value& r, int line) {
        const bool ints = l.kind() == Value::Kind::Int && r.kind() == Value::Kind::Int;
        const double x = l.asDouble();
        const double y = r.asDouble();
        if ((op == "/" || op == "//" || op == "%") && y == 0.0) errorAt(StatusCode::InvalidData, line, "division by zero");
        int64_t result = 0;
        auto checked = [&](bool overflow) {
            if (overflow) errorAt(StatusCode::OutOfRange, line, "integer overflow in '" + op + "'");
            return Value::integer(result);
        };
        if (op == "+") return ints ? checked(__builtin_add_overflow(l.asInt(), r.asInt(), &result)) : Value::number(x + y);
        if (op == "-") return ints ? checked(__builtin_sub_overflow(l.asInt(), r.asInt(), &result)) : Value::number(x - y);
        if (op == "*") return ints ? checked(__builtin_mul_overflow(l.asInt(), r.asInt(), &result)) : Value::number(x * y);
        if (op == "/") return Value::number(x / y);
        if (op == "//") {
            if (ints) {
                if (l.asInt() == INT64_MIN && r.asInt() == -1) errorAt(StatusCode::OutOfRange, line, "integer overflow in '//'");
                const int64_t q = l.asInt() / r.asInt();
                return Value::integer((l.asInt() % r.asInt() != 0 && ((l.asInt() < 0) != (r.asInt() < 0))) ? q - 1 : q);
            }
            return Value::number(std::floor(x / y));
        }
        if (op == "%") {
            if (ints) {
                if (r.asInt() == -1) return Value::integer(0);
                const int64_t m = l.asInt() % r.asInt();
                return Value::integer(m != 0 && ((m < 0) != (r.asInt() < 0)) ? m + r.asInt() : m);
            }
            const double m = std::fmod(x, y);
            return Value::number(m != 0 && ((m < 0) != (y < 0)) ? m + y : m);
        }
        if (op == "**") {
            if (ints && r.asInt() >= 0) {
                const int64_t base = l.asInt();
                const int64_t exponent = r.asInt();
                if (base == 0 || base == 1) return Value::integer(exponent == 0 ? 1 : base);
                if (base == -1) return Value::integer(exponent % 2 ? -1 : 1);
                result = 1;  // |base| >= 2 overflows within 64 steps, so this loop is short
                for (int64_t i = 0; i < exponent; ++i) {
                    if (__builtin_mul_overflow(result, base, &result)) checked(true);
                }
                return Value::integer(result);
            }
            return Value::number(std::pow(x, y));
        }
        errorAt(StatusCode::Unsupported, line, "operator '" + op + "' is not supported");
    }

    std::vector<Scope> m_scopes;
    Str m_out;
    int64_t m_iterations = 0;
    int m_depth = 0;
};

}  // namespace

Result<std::shared_ptr<const Template>> Template::parse(std::string source) {
    if (!utf8::isValid(source)) return Status(StatusCode::InvalidData, "the chat template is not valid UTF-8");
    auto t = std::make_shared<Template>();
    try {
        t->m_body = jinja::parse(source);
    } catch (const Error& e) {
        return e.status;
    }
    t->m_source = std::move(source);
    return std::shared_ptr<const Template>(std::move(t));
}

Result<Str> Template::render(const std::vector<std::pair<std::string, Value>>& globals) const {
    try {
        Interpreter interpreter(globals);
        return interpreter.run(m_body);
    } catch (const Error& e) {
        return e.status;
    } catch (const std::bad_alloc&) {
        return Status(StatusCode::ResourceExhausted, "out of memory while rendering the chat template");
    }
}

}  // namespace dsv2::jinja
