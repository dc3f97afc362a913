#!/usr/bin/env python3
"""Builds the ~1 MB mixed text for the tokenizer benchmark: llama.cpp's 46 DeepSeek tokenizer
cases (multilingual text, emoji, odd whitespace, digits), C++ code (this repository's engine/
sources), and English prose (the license texts Debian ships in /usr/share/common-licenses,
falling back to the docstrings of Python's standard library). Deterministic for a given checkout
and machine; it prints what went in.

    python3 tools/tokenizer_bench/make_text.py /tmp/bench.txt [--bytes 1000000]
"""
import argparse
import inspect
import pathlib
import pydoc

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cases_text():
    raw = (ROOT / "tests/data/deepseek-tokenizer/cases.inp").read_text(encoding="utf-8")
    return "\n".join(c for c in raw.split("\n__ggml_vocab_test__\n") if c) + "\n"


def code_text():
    files = sorted(p for p in (ROOT / "engine").rglob("*") if p.suffix in {".h", ".cpp", ".cu", ".cuh"})
    return "".join(p.read_text(encoding="utf-8", errors="replace") for p in files)


def prose_text():
    licenses = pathlib.Path("/usr/share/common-licenses")
    names = ["GPL-3", "GPL-2", "LGPL-3", "LGPL-2.1", "Apache-2.0", "GFDL-1.3", "MPL-2.0", "Artistic"]
    text = "".join((licenses / n).read_text(encoding="utf-8", errors="replace") for n in names if (licenses / n).exists())
    if len(text) < 100_000:  # no Debian licenses here: use the standard library's own prose
        import collections, json, os, re, string, textwrap  # noqa: E401
        for module in (os, re, json, string, textwrap, collections, inspect, pydoc):
            text += pydoc.render_doc(module, renderer=pydoc.plaintext)
    return text


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--bytes", type=int, default=1_000_000)
    args = parser.parse_args()
    parts = {"cases": cases_text(), "code": code_text(), "prose": prose_text()}
    # Shares of the target size: 15 % cases (repeated), 40 % code, 45 % prose (repeated if short).
    shares = {"cases": 0.15, "code": 0.40, "prose": 0.45}
    out = []
    for name, share in shares.items():
        budget = int(args.bytes * share)
        chunk = ""
        while len(chunk.encode("utf-8")) < budget:
            chunk += parts[name]
        chunk = chunk.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
        out.append(chunk)
        print(f"{name:6s} {len(chunk.encode('utf-8')):8d} bytes (source {len(parts[name].encode('utf-8'))} bytes)")
    text = "\n".join(out)
    pathlib.Path(args.out).write_text(text, encoding="utf-8")
    print(f"total  {len(text.encode('utf-8')):8d} bytes -> {args.out}")


if __name__ == "__main__":
    main()
