#!/usr/bin/env python3
"""HF `tokenizers` on the same text as tokenizer_bench, single-threaded, for comparison.

    pip install tokenizers
    python3 tools/tokenizer_bench/hf_bench.py TOKENIZER_JSON TEXT [--repeat 5] [--ids OUT.json]

Encodes the whole text in one `encode` call (add_special_tokens=False), which HF runs on one
thread; RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false make sure of it. Prints the best and
median wall time over --repeat runs; --ids writes the ids for tokenizer_bench --compare.
"""
import argparse
import json
import os
import statistics
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import tokenizers  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("tokenizer_json")
    parser.add_argument("text")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ids")
    args = parser.parse_args()
    tok = tokenizers.Tokenizer.from_file(args.tokenizer_json)
    text = open(args.text, encoding="utf-8").read()
    size = len(text.encode("utf-8"))
    times = []
    ids = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        times.append(time.perf_counter() - t0)
    best = min(times)
    median = statistics.median(times)
    print(f"HF tokenizers {tokenizers.__version__}: {size} bytes -> {len(ids)} tokens")
    print(f"  first {times[0]*1e3:8.1f} ms   best {best*1e3:8.1f} ms   median {median*1e3:8.1f} ms")
    print(f"  best {size/best/1e6:6.2f} MB/s  {len(ids)/best/1e6:6.2f} Mtok/s   median {size/median/1e6:6.2f} MB/s")
    if args.ids:
        with open(args.ids, "w") as f:
            json.dump(ids, f)


if __name__ == "__main__":
    main()
