#!/usr/bin/env python3
"""Renders every chat_templates/*.jinja on a few conversations with jinja2 set up as HF
transformers sets it up for apply_chat_template (sandboxed, trim_blocks, lstrip_blocks, loop
controls, raise_exception, HF's tojson), and writes chat_templates/expected.json. jinja2 is an
independent oracle for our C++ interpreter; rerun after adding a template or a conversation:

    pip install jinja2 && python3 tests/engine/tokenizer/make_chat_template_fixtures.py
"""
import json
import pathlib

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = pathlib.Path(__file__).parent / "chat_templates"
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"

CONVERSATIONS = {
    "multi_turn_with_system": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a haiku about latent attention."},
        {"role": "assistant", "content": "Keys fold into one\nsmall vector"},
        {"role": "user", "content": "Again, about caches, 2024."},
    ],
    "single_user": [
        {"role": "user", "content": "Hello! What is a mixture of experts?"},
    ],
    "tricky_contents": [
        {"role": "user", "content": "  spaced out\t\n and " + EOS + " typed by me  "},
        {"role": "assistant", "content": "Führer ½ 🦙 нещо 你好 {{ not a tag }} {% neither %}"},
        {"role": "user", "content": "a"},
    ],
}


# One-line templates rendered with the "multi_turn_with_system" messages: small checks of single
# constructs (operators, filters, tests, methods, whitespace control).
SNIPPETS = [
    "{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 2 ** 10 }}|{{ 7 // -2 }}|{{ -7 // 2 }}|{{ 7 % -3 }}|{{ 1 / 4 }}|{{ 10 / 5 }}",
    "{{ 0.1 + 0.2 }}|{{ 1e16 }}|{{ 1.5e-7 }}|{{ 123456789.0 }}|{{ 2.5 | round }}|{{ 3.14159 | round(2) }}|{{ -3 | abs }}",
    "{{ 'a' ~ 1 ~ none ~ true }}|{{ 'ab' * 3 }}|{{ [1, 2] + [3] }}|{{ 'x' if false }}|{{ 'y' if 0 else 'z' }}",
    "{{ 'Hello World' | lower }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}|{{ 'abc' | upper }}",
    "{{ '  pad  ' | trim }}|{{ 'xxhixx'.strip('x') }}|{{ '  l'.lstrip() }}|{{ 'r  '.rstrip() }}|{{ 'a-b-c'.split('-') }}",
    "{{ ' a  b '.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'banana'.replace('a', 'o') }}|{{ 'banana' | replace('an', '', 1) }}",
    "{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'abcdef'[1:4] }}|{{ 'abcdef'[::2] }}|{{ 'abc'[-1] }}",
    "{{ [3, 1, 2] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ [1, 2, 3] | reverse | list }}|{{ [1, 2, 2, 1] | unique | list }}",
    "{{ [1, 2, 3] | first }}|{{ [1, 2, 3] | last }}|{{ [1, 2, 3] | length }}|{{ 'héllo' | length }}|{{ [1, 2, 3] | sum }}|{{ [4, 9] | max }}",
    "{{ messages | map(attribute='role') | join(', ') }}|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}",
    "{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | list }}|{{ [1, 2, 3, 4] | select('even') | list }}",
    "{{ {'b': 1, 'a': [1, 'x']} }}|{{ {'k': 'v'}.items() | list }}|{{ {'k': 'v'}.get('k') }}|{{ {'k': 'v'}.get('z', 'd') }}",
    "{{ {'a': 1, 'b': 'two'} | tojson }}|{{ [1, 'é', none] | tojson }}|{{ {'a': [1, {'b': 2}]} | tojson(indent=2) }}",
    "{{ x is defined }}|{{ messages is defined }}|{{ none is none }}|{{ 3 is odd }}|{{ 4 is divisibleby 2 }}|{{ 'a' is string }}",
    "{{ 2 in [1, 2] }}|{{ 'b' in 'abc' }}|{{ 'z' not in 'abc' }}|{{ 'k' in {'k': 1} }}|{{ 1 == 1.0 }}|{{ 'a' < 'b' }}|{{ not 1 }}",
    "{{ undefined_var }}|{{ undefined_var | default('dflt') }}|{{ '' | default('e', true) }}|{{ none }}|{{ true }}|{{ 42 | string | length }}",
    "{% for i in range(3) %}{{ i }}{{ ',' if not loop.last }}{% endfor %}|{% for i in range(1, 10, 3) %}{{ i }}{% endfor %}|{% for a, b in [[1, 2], [3, 4]] %}{{ a * b }}{% endfor %}",
    "{% for m in messages if m.role == 'user' %}{{ loop.index }}/{{ loop.length }}:{{ loop.revindex0 }}{{ loop.cycle('a', 'b') }} {% endfor %}",
    "{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}|{% for c in 'héllo' %}[{{ c }}]{% endfor %}|{% for x in [] %}no{% else %}empty{% endfor %}",
    "{% set n = namespace(v=1) %}{% for i in range(3) %}{% set n.v = n.v * 2 %}{% set local = i %}{% endfor %}{{ n.v }} {{ local }}",
    "{% set a, b = [1, 2] %}{{ a }}{{ b }}|{% set block %}inside {{ a }}{% endset %}{{ block | upper }}|{% if false %}x{% elif 1 %}y{% else %}z{% endif %}",
    "  {{- ' a ' -}}  |  {%- if true -%}  b  {%- endif -%}  |{# comment #}c  {#- c2 -#}  d",
    "line1\n    {% if true %}\n    indented\n    {% endif %}\nline2 {%+ if true %}keep{% endif %}",
    "{{ \"dq 'single' \\\"esc\\\"\" }}|{{ 'tab\\there' }}|{{ 'uni\\u00e9' }}|{{ 'a' 'b' }}|{{ [1, 'two', 3.0, none, true] }}",
    "{{ messages[0]['content'] }}|{{ messages[-1].role }}|{{ messages[1:3] | length }}|{{ messages[99] is defined }}|{{ messages | length > 3 }}",
]


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def main():
    env = environment()
    cases = []
    for path in sorted(HERE.glob("*.jinja")):
        template = env.from_string(path.read_text(encoding="utf-8"))
        for name, messages in CONVERSATIONS.items():
            for add_generation_prompt in (False, True):
                case = {"template": path.name, "conversation": name, "add_generation_prompt": add_generation_prompt}
                try:
                    case["expected"] = template.render(messages=messages, bos_token=BOS, eos_token=EOS,
                                                       add_generation_prompt=add_generation_prompt)
                except TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    snippets = []
    for source in SNIPPETS:
        rendered = env.from_string(source).render(messages=CONVERSATIONS["multi_turn_with_system"], bos_token=BOS,
                                                  eos_token=EOS, add_generation_prompt=False)
        snippets.append({"template": source, "expected": rendered})
    out = {"generator": "tests/engine/tokenizer/make_chat_template_fixtures.py, jinja2 " + jinja2.__version__,
           "bos_token": BOS, "eos_token": EOS, "conversations": CONVERSATIONS, "cases": cases,
           "snippets": snippets}
    (HERE / "expected.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(cases)} cases and {len(snippets)} snippets written to {HERE / 'expected.json'}")


if __name__ == "__main__":
    main()
