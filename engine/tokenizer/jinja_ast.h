#pragma once
// The syntax tree of a parsed template: expressions and statements.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace dsv2::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
    enum class Kind {
        Literal,    // value
        Name,       // name
        ListLit,    // items
        DictLit,    // keys[i] : items[i]
        Attribute,  // items[0].name
        Index,      // items[0][items[1]]
        Slice,      // items[0][a:b:c]; missing bounds are null
        Call,       // items[0](items[1..], kwargs)
        Filter,     // items[0] | name(items[1..], kwargs)
        Test,       // items[0] is [not] name(items[1..])
        Unary,      // op items[0]: "not", "-", "+"
        Binary,     // items[0] op items[1]
        Conditional // items[0] if items[1] else items[2] (items[2] may be null)
    };
    Kind kind;
    int line = 0;
    Value value;
    std::string name;  // variable / attribute / filter / test name, or the operator
    bool negated = false;
    std::vector<ExprPtr> items;
    std::vector<ExprPtr> keys;
    std::vector<std::pair<std::string, ExprPtr>> kwargs;

    Expr(Kind k, int l) : kind(k), line(l) {}
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
    enum class Kind {
        Text,     // text
        Output,   // {{ expr }}
        If,       // branches: (cond, body)...; elseBody
        For,      // targets in expr [if cond]: body; elseBody
        Set,      // targets = expr, or target.attribute = expr, or a block body
        Break,
        Continue,
        Generation  // HF's {% generation %}: renders its body
    };
    Kind kind;
    int line = 0;
    std::string text;
    ExprPtr expr;
    ExprPtr cond;
    std::vector<std::string> targets;
    std::string attribute;  // {% set ns.attr = ... %}
    std::vector<std::pair<ExprPtr, Body>> branches;
    Body body;
    Body elseBody;

    Stmt(Kind k, int l) : kind(k), line(l) {}
};

}  // namespace dsv2::jinja
