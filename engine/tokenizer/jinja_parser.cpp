#include "tokenizer/jinja_parser.h"

#include <algorithm>
#include <array>
#include <cstdlib>

#include "tokenizer/jinja_lexer.h"

namespace dsv2::jinja {
namespace {

constexpr std::array kFilters = {
    "abs",   "capitalize", "count",  "d",       "default", "e",        "escape",  "first",      "float",
    "indent", "int",       "items",  "join",    "last",    "length",   "list",    "lower",      "map",
    "max",   "min",        "reject", "rejectattr", "replace", "reverse", "round", "safe",       "select",
    "selectattr", "sort",  "string", "sum",     "title",   "tojson",   "trim",    "unique",     "upper",
};
constexpr std::array kTests = {
    "boolean", "callable", "defined", "divisibleby", "eq",   "equalto",  "even",     "false",   "float",
    "ge",      "gt",       "greaterthan", "in",      "integer", "iterable", "le",    "lower",   "lt",
    "lessthan", "mapping", "ne",      "none",        "number", "odd",      "sameas",  "sequence", "string",
    "true",    "undefined", "upper",
};
// Statements Jinja has that this subset does not.
constexpr std::array kUnsupportedStatements = {
    "macro", "call", "filter", "block", "extends", "include", "import", "from", "with", "autoescape", "raw", "do",
};
constexpr int kMaxDepth = 200;

[[noreturn]] void error(StatusCode code, int line, const std::string& message) {
    fail(code, "chat template line " + std::to_string(line) + ": " + message);
}

class Parser {
public:
    explicit Parser(std::vector<Token> tokens) : m_tokens(std::move(tokens)) {}

    Body parseTemplate() {
        std::string end;
        Body body = parseBody({}, end);
        return body;
    }

private:
    const Token& peek(size_t ahead = 0) const {
        const size_t i = std::min(m_pos + ahead, m_tokens.size() - 1);
        return m_tokens[i];
    }
    const Token& next() {
        const Token& t = m_tokens[m_pos];
        if (m_pos + 1 < m_tokens.size()) ++m_pos;
        return t;
    }
    bool isOp(std::string_view op, size_t ahead = 0) const {
        return peek(ahead).kind == Token::Kind::Operator && peek(ahead).text == op;
    }
    bool isName(std::string_view name, size_t ahead = 0) const {
        return peek(ahead).kind == Token::Kind::Name && peek(ahead).text == name;
    }
    void expectOp(std::string_view op) {
        if (!isOp(op)) error(StatusCode::InvalidData, peek().line, "expected '" + std::string(op) + "', found " + describe(peek()));
        next();
    }
    std::string expectName() {
        if (peek().kind != Token::Kind::Name) error(StatusCode::InvalidData, peek().line, "expected a name, found " + describe(peek()));
        return next().text;
    }
    void expectBlockClose() {
        if (peek().kind != Token::Kind::BlockClose) {
            error(StatusCode::InvalidData, peek().line, "expected '%}', found " + describe(peek()));
        }
        next();
    }
    static std::string describe(const Token& t) {
        switch (t.kind) {
        case Token::Kind::Text: return "template text";
        case Token::Kind::OutputOpen: return "'{{'";
        case Token::Kind::OutputClose: return "'}}'";
        case Token::Kind::BlockOpen: return "'{%'";
        case Token::Kind::BlockClose: return "'%}'";
        case Token::Kind::End: return "the end of the template";
        case Token::Kind::String: return "a string";
        default: return "'" + t.text + "'";
        }
    }

    // Statements until one of `ends` (e.g. "elif", "else", "endif"); the keyword found is
    // stored in `found` and its block is left open for the caller (the name is consumed).
    Body parseBody(const std::vector<std::string>& ends, std::string& found) {
        Body body;
        while (true) {
            const Token& t = peek();
            if (t.kind == Token::Kind::End) {
                if (!ends.empty()) {
                    error(StatusCode::InvalidData, t.line, "missing {% " + ends.back() + " %} before the end of the template");
                }
                found.clear();
                return body;
            }
            if (t.kind == Token::Kind::Text) {
                auto s = std::make_unique<Stmt>(Stmt::Kind::Text, t.line);
                s->text = next().text;
                body.push_back(std::move(s));
                continue;
            }
            if (t.kind == Token::Kind::OutputOpen) {
                const int line = next().line;
                auto s = std::make_unique<Stmt>(Stmt::Kind::Output, line);
                s->expr = parseExpression(true);
                if (peek().kind != Token::Kind::OutputClose) {
                    error(StatusCode::InvalidData, peek().line, "expected '}}', found " + describe(peek()));
                }
                next();
                body.push_back(std::move(s));
                continue;
            }
            if (t.kind != Token::Kind::BlockOpen) error(StatusCode::InvalidData, t.line, "unexpected " + describe(t));
            next();
            const Token& keyword = peek();
            if (keyword.kind != Token::Kind::Name) {
                error(StatusCode::InvalidData, keyword.line, "expected a statement name after '{%', found " + describe(keyword));
            }
            if (std::find(ends.begin(), ends.end(), keyword.text) != ends.end()) {
                found = next().text;
                return body;
            }
            body.push_back(parseStatement());
        }
    }

    StmtPtr parseStatement() {
        const Token keyword = next();
        const std::string& k = keyword.text;
        const int line = keyword.line;
        if (k == "if") return parseIf(line);
        if (k == "for") return parseFor(line);
        if (k == "set") return parseSet(line);
        if (k == "break" || k == "continue") {
            if (m_loopDepth == 0) error(StatusCode::InvalidData, line, "'{% " + k + " %}' outside a for loop");
            expectBlockClose();
            return std::make_unique<Stmt>(k == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, line);
        }
        if (k == "generation") {
            expectBlockClose();
            auto s = std::make_unique<Stmt>(Stmt::Kind::Generation, line);
            std::string found;
            s->body = parseBody({"endgeneration"}, found);
            expectBlockClose();
            return s;
        }
        if (std::find(kUnsupportedStatements.begin(), kUnsupportedStatements.end(), k) != kUnsupportedStatements.end()) {
            error(StatusCode::Unsupported, line, "the '{% " + k + " %}' statement is not supported");
        }
        if (k.rfind("end", 0) == 0 || k == "elif" || k == "else") {
            error(StatusCode::InvalidData, line, "'{% " + k + " %}' without a matching opening statement");
        }
        error(StatusCode::Unsupported, line, "unknown statement '{% " + k + " %}'");
    }

    StmtPtr parseIf(int line) {
        auto s = std::make_unique<Stmt>(Stmt::Kind::If, line);
        ExprPtr cond = parseExpression(true);
        expectBlockClose();
        while (true) {
            std::string found;
            Body body = parseBody({"elif", "else", "endif"}, found);
            s->branches.emplace_back(std::move(cond), std::move(body));
            if (found == "elif") {
                cond = parseExpression(true);
                expectBlockClose();
                continue;
            }
            if (found == "else") {
                expectBlockClose();
                s->elseBody = parseBody({"endif"}, found);
            }
            expectBlockClose();
            return s;
        }
    }

    StmtPtr parseFor(int line) {
        auto s = std::make_unique<Stmt>(Stmt::Kind::For, line);
        s->targets.push_back(expectName());
        while (isOp(",")) {
            next();
            s->targets.push_back(expectName());
        }
        if (!isName("in")) error(StatusCode::InvalidData, peek().line, "expected 'in' in the for statement, found " + describe(peek()));
        next();
        s->expr = parseExpression(false);
        if (isName("if")) {
            next();
            s->cond = parseExpression(true);
        }
        if (isName("recursive")) error(StatusCode::Unsupported, line, "recursive for loops are not supported");
        expectBlockClose();
        ++m_loopDepth;
        std::string found;
        s->body = parseBody({"else", "endfor"}, found);
        --m_loopDepth;
        if (found == "else") {
            expectBlockClose();
            s->elseBody = parseBody({"endfor"}, found);
        }
        expectBlockClose();
        return s;
    }

    StmtPtr parseSet(int line) {
        auto s = std::make_unique<Stmt>(Stmt::Kind::Set, line);
        s->targets.push_back(expectName());
        if (isOp(".")) {
            next();
            s->attribute = expectName();
        } else {
            while (isOp(",")) {
                next();
                s->targets.push_back(expectName());
            }
        }
        if (isOp("=")) {
            next();
            s->expr = parseExpression(true);
            expectBlockClose();
            return s;
        }
        if (s->targets.size() != 1 || !s->attribute.empty()) {
            error(StatusCode::InvalidData, line, "a block {% set %} takes one plain name");
        }
        if (isOp("|")) error(StatusCode::Unsupported, line, "filtered block {% set x | filter %} is not supported");
        expectBlockClose();
        std::string found;
        s->body = parseBody({"endset"}, found);
        expectBlockClose();
        return s;
    }

    // ---- expressions (Jinja2's parser structure) ----

    ExprPtr make(Expr::Kind kind, int line) { return std::make_unique<Expr>(kind, line); }

    ExprPtr binary(std::string op, ExprPtr l, ExprPtr r) {
        auto e = make(Expr::Kind::Binary, l->line);
        e->name = std::move(op);
        e->items.push_back(std::move(l));
        e->items.push_back(std::move(r));
        return e;
    }

    struct DepthGuard {
        explicit DepthGuard(Parser& p) : parser(p) {
            if (++parser.m_depth > kMaxDepth) error(StatusCode::InvalidData, parser.peek().line, "expression nested too deeply");
        }
        ~DepthGuard() { --parser.m_depth; }
        Parser& parser;
    };

    ExprPtr parseExpression(bool withCondExpr) {
        DepthGuard guard(*this);
        if (!withCondExpr) return parseOr();
        ExprPtr e = parseOr();
        while (isName("if")) {
            const int line = next().line;
            auto c = make(Expr::Kind::Conditional, line);
            ExprPtr cond = parseOr();
            ExprPtr otherwise;
            if (isName("else")) {
                next();
                otherwise = parseExpression(true);
            }
            c->items.push_back(std::move(e));
            c->items.push_back(std::move(cond));
            c->items.push_back(std::move(otherwise));
            e = std::move(c);
        }
        return e;
    }

    ExprPtr parseOr() {
        ExprPtr e = parseAnd();
        while (isName("or")) {
            next();
            e = binary("or", std::move(e), parseAnd());
        }
        return e;
    }

    ExprPtr parseAnd() {
        ExprPtr e = parseNot();
        while (isName("and")) {
            next();
            e = binary("and", std::move(e), parseNot());
        }
        return e;
    }

    ExprPtr parseNot() {
        if (isName("not")) {
            DepthGuard guard(*this);
            const int line = next().line;
            auto e = make(Expr::Kind::Unary, line);
            e->name = "not";
            e->items.push_back(parseNot());
            return e;
        }
        return parseCompare();
    }

    ExprPtr parseCompare() {
        ExprPtr e = parseMath1();
        int comparisons = 0;
        while (true) {
            std::string op;
            if (peek().kind == Token::Kind::Operator &&
                (peek().text == "==" || peek().text == "!=" || peek().text == "<" || peek().text == "<=" ||
                 peek().text == ">" || peek().text == ">=")) {
                op = next().text;
            } else if (isName("in")) {
                next();
                op = "in";
            } else if (isName("not") && isName("in", 1)) {
                next();
                next();
                op = "not in";
            } else {
                return e;
            }
            if (++comparisons > 1) error(StatusCode::Unsupported, e->line, "chained comparisons (a < b < c) are not supported");
            e = binary(op, std::move(e), parseMath1());
        }
    }

    ExprPtr parseMath1() {
        ExprPtr e = parseConcat();
        while (isOp("+") || isOp("-")) {
            const std::string op = next().text;
            e = binary(op, std::move(e), parseConcat());
        }
        return e;
    }

    ExprPtr parseConcat() {
        ExprPtr e = parseMath2();
        while (isOp("~")) {
            next();
            e = binary("~", std::move(e), parseMath2());
        }
        return e;
    }

    ExprPtr parseMath2() {
        ExprPtr e = parsePow();
        while (isOp("*") || isOp("/") || isOp("//") || isOp("%")) {
            const std::string op = next().text;
            e = binary(op, std::move(e), parsePow());
        }
        return e;
    }

    ExprPtr parsePow() {
        ExprPtr e = parseUnary(true);
        while (isOp("**")) {
            next();
            e = binary("**", std::move(e), parseUnary(true));
        }
        return e;
    }

    ExprPtr parseUnary(bool withFilter) {
        DepthGuard guard(*this);
        ExprPtr e;
        if (isOp("-") || isOp("+")) {
            const Token& t = next();
            e = make(Expr::Kind::Unary, t.line);
            e->name = t.text;
            e->items.push_back(parseUnary(false));
        } else {
            e = parsePostfix(parsePrimary());
        }
        return withFilter ? parseFilters(std::move(e)) : std::move(e);
    }

    ExprPtr parsePrimary() {
        const Token& t = peek();
        switch (t.kind) {
        case Token::Kind::Name: {
            next();
            auto e = make(Expr::Kind::Literal, t.line);
            if (t.text == "true" || t.text == "True") {
                e->value = Value::boolean(true);
            } else if (t.text == "false" || t.text == "False") {
                e->value = Value::boolean(false);
            } else if (t.text == "none" || t.text == "None") {
                e->value = Value::none();
            } else {
                e->kind = Expr::Kind::Name;
                e->name = t.text;
            }
            return e;
        }
        case Token::Kind::String: {
            auto e = make(Expr::Kind::Literal, t.line);
            std::string s = next().text;
            while (peek().kind == Token::Kind::String) s += next().text;  // "a" "b" concatenates
            e->value = Value::string(std::move(s));
            return e;
        }
        case Token::Kind::Integer: {
            next();
            auto e = make(Expr::Kind::Literal, t.line);
            errno = 0;
            const long long v = std::strtoll(t.text.c_str(), nullptr, 10);
            if (errno == ERANGE) error(StatusCode::Unsupported, t.line, "integer literal " + t.text + " does not fit in 64 bits");
            e->value = Value::integer(v);
            return e;
        }
        case Token::Kind::Float: {
            next();
            auto e = make(Expr::Kind::Literal, t.line);
            e->value = Value::number(std::strtod(t.text.c_str(), nullptr));
            return e;
        }
        case Token::Kind::Operator:
            if (t.text == "(") {
                next();
                ExprPtr first = parseExpression(true);
                if (isOp(",")) {  // a tuple
                    auto list = make(Expr::Kind::ListLit, t.line);
                    list->name = "tuple";
                    list->items.push_back(std::move(first));
                    while (isOp(",")) {
                        next();
                        if (isOp(")")) break;
                        list->items.push_back(parseExpression(true));
                    }
                    first = std::move(list);
                }
                expectOp(")");
                return first;
            }
            if (t.text == "[") {
                next();
                auto list = make(Expr::Kind::ListLit, t.line);
                while (!isOp("]")) {
                    list->items.push_back(parseExpression(true));
                    if (!isOp(",")) break;
                    next();
                }
                expectOp("]");
                return list;
            }
            if (t.text == "{") {
                next();
                auto dict = make(Expr::Kind::DictLit, t.line);
                while (!isOp("}")) {
                    dict->keys.push_back(parseExpression(true));
                    expectOp(":");
                    dict->items.push_back(parseExpression(true));
                    if (!isOp(",")) break;
                    next();
                }
                expectOp("}");
                return dict;
            }
            break;
        default: break;
        }
        error(StatusCode::InvalidData, t.line, "expected an expression, found " + describe(t));
    }

    ExprPtr parsePostfix(ExprPtr e) {
        while (true) {
            if (isOp(".")) {
                const int line = next().line;
                auto a = make(Expr::Kind::Attribute, line);
                if (peek().kind == Token::Kind::Integer) {
                    // x.0 is x[0] in Jinja.
                    auto index = make(Expr::Kind::Index, line);
                    auto key = make(Expr::Kind::Literal, line);
                    key->value = Value::integer(std::strtoll(next().text.c_str(), nullptr, 10));
                    index->items.push_back(std::move(e));
                    index->items.push_back(std::move(key));
                    e = std::move(index);
                    continue;
                }
                a->name = expectName();
                a->items.push_back(std::move(e));
                e = std::move(a);
            } else if (isOp("[")) {
                e = parseSubscript(std::move(e));
            } else if (isOp("(")) {
                e = parseCall(std::move(e));
            } else {
                return e;
            }
        }
    }

    ExprPtr parseSubscript(ExprPtr target) {
        const int line = next().line;  // '['
        std::array<ExprPtr, 3> parts;
        int colons = 0;
        while (true) {
            if (isOp("]")) break;
            if (isOp(":")) {
                if (++colons > 2) error(StatusCode::InvalidData, line, "too many ':' in a slice");
                next();
                continue;
            }
            if (parts[static_cast<size_t>(colons)]) error(StatusCode::InvalidData, line, "malformed subscript");
            parts[static_cast<size_t>(colons)] = parseExpression(true);
        }
        expectOp("]");
        if (colons == 0) {
            if (!parts[0]) error(StatusCode::InvalidData, line, "empty subscript []");
            auto e = make(Expr::Kind::Index, line);
            e->items.push_back(std::move(target));
            e->items.push_back(std::move(parts[0]));
            return e;
        }
        auto e = make(Expr::Kind::Slice, line);
        e->items.push_back(std::move(target));
        for (auto& p : parts) e->items.push_back(std::move(p));
        return e;
    }

    // Arguments after '(' up to ')': positional into items (after any already there), keyword into kwargs.
    void parseArguments(Expr& e) {
        expectOp("(");
        while (!isOp(")")) {
            if (peek().kind == Token::Kind::Name && isOp("=", 1)) {
                std::string key = next().text;
                next();
                e.kwargs.emplace_back(std::move(key), parseExpression(true));
            } else {
                if (!e.kwargs.empty()) error(StatusCode::InvalidData, peek().line, "positional argument after a keyword argument");
                e.items.push_back(parseExpression(true));
            }
            if (!isOp(",")) break;
            next();
        }
        expectOp(")");
    }

    ExprPtr parseCall(ExprPtr callee) {
        auto e = make(Expr::Kind::Call, callee->line);
        e->items.push_back(std::move(callee));
        parseArguments(*e);
        return e;
    }

    ExprPtr parseFilters(ExprPtr e) {
        while (true) {
            if (isOp("|")) {
                const int line = next().line;
                auto f = make(Expr::Kind::Filter, line);
                f->name = expectName();
                if (!isKnownFilter(f->name)) error(StatusCode::Unsupported, line, "filter '" + f->name + "' is not supported");
                f->items.push_back(std::move(e));
                if (isOp("(")) parseArguments(*f);
                e = std::move(f);
            } else if (isName("is")) {
                const int line = next().line;
                auto t = make(Expr::Kind::Test, line);
                if (isName("not")) {
                    next();
                    t->negated = true;
                }
                t->name = expectName();
                if (!isKnownTest(t->name)) error(StatusCode::Unsupported, line, "test '" + t->name + "' is not supported");
                t->items.push_back(std::move(e));
                if (isOp("(")) {
                    parseArguments(*t);
                } else if (peek().kind == Token::Kind::String || peek().kind == Token::Kind::Integer ||
                           peek().kind == Token::Kind::Float ||
                           (peek().kind == Token::Kind::Name && !isName("and") && !isName("or") && !isName("else") &&
                            !isName("if") && !isName("in") && !isName("not") && !isName("is"))) {
                    // Jinja allows one argument without parentheses: "x is divisibleby 3".
                    t->items.push_back(parseUnary(false));
                }
                e = std::move(t);
            } else {
                return e;
            }
        }
    }

    std::vector<Token> m_tokens;
    size_t m_pos = 0;
    int m_loopDepth = 0;
    int m_depth = 0;
};

}  // namespace

bool isKnownFilter(std::string_view name) {
    return std::find(kFilters.begin(), kFilters.end(), name) != kFilters.end();
}

bool isKnownTest(std::string_view name) {
    return std::find(kTests.begin(), kTests.end(), name) != kTests.end() || name == "==" || name == "!=";
}

Body parse(std::string_view source) { return Parser(tokenize(source)).parseTemplate(); }

}  // namespace dsv2::jinja
