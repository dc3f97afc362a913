#!/usr/bin/env python3
"""HF transformers' speed on the same shapes `dsv2 bench --random-weights` measures (GPU machine).

Builds DeepseekV2ForCausalLM from a config.json with random bf16 weights directly on the GPU (no
files), then times, as a chat would use it (batch 1, KV cache on, logits of the last position only):
  - prefill of a P-token random prompt (tok/s and time to first token), for each --prompt-len;
  - D greedy decode steps after a --decode-context-token prompt, one token per forward (tok/s).
Prints a table and writes --json. Each timing is preceded by a warm-up of the same kind.

  python3 tools/bench/hf_bench.py --config tests/engine/cuda/configs/deepseek-v2-lite.json \
      --prompt-len 2048 --decode-context 1024 --decode-tokens 32 --json $OUT/hf_bench.json
"""
import argparse
import json
import time

import torch


def sync_time():
    torch.cuda.synchronize()
    return time.perf_counter()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--prompt-len", type=int, nargs="+", default=[2048])
    ap.add_argument("--decode-context", type=int, default=1024)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()

    import transformers
    from transformers import DeepseekV2Config, DeepseekV2ForCausalLM

    with open(args.config) as f:
        cfg = DeepseekV2Config(**json.load(f))
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    with torch.device("cuda"):
        model = DeepseekV2ForCausalLM(cfg).to(torch.bfloat16)
    model.eval()
    build_s = sync_time() - t0
    vocab = min(cfg.vocab_size, 100000)

    def prompt(n):
        return torch.randint(0, vocab, (1, n), device="cuda")

    results = {"transformers": transformers.__version__, "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(0), "build_s": build_s, "prefill": [], "decode": {}}
    with torch.inference_mode():
        model(prompt(64), use_cache=True, logits_to_keep=1)  # warm-up
        for n in args.prompt_len:
            model(prompt(n), use_cache=True, logits_to_keep=1)  # warm-up at this length (kernel selection)
            ids = prompt(n)
            t = sync_time()
            model(ids, use_cache=True, logits_to_keep=1)
            dt = sync_time() - t
            results["prefill"].append({"prompt_tokens": n, "ttft_s": dt, "prefill_tok_s": n / dt})

        out = model(prompt(args.decode_context), use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        nxt = out.logits[:, -1:].argmax(-1)
        for _ in range(2):  # warm-up steps
            out = model(nxt, past_key_values=cache, use_cache=True)
            cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        t = sync_time()
        for _ in range(args.decode_tokens):
            out = model(nxt, past_key_values=cache, use_cache=True)
            cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        dt = sync_time() - t
        results["decode"] = {"context": args.decode_context, "tokens": args.decode_tokens,
                             "decode_tok_s": args.decode_tokens / dt}
    results["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    print(f"HF transformers {results['transformers']} on {results['gpu']} (model built in {build_s:.1f} s)")
    for r in results["prefill"]:
        print(f"  prefill {r['prompt_tokens']:6d} tokens: {r['prefill_tok_s']:10.1f} tok/s  TTFT {r['ttft_s']*1e3:8.2f} ms")
    d = results["decode"]
    print(f"  decode at {d['context']} context: {d['decode_tok_s']:.2f} tok/s ({d['tokens']} tokens)")


if __name__ == "__main__":
    main()
