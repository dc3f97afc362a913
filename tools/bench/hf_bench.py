#!/usr/bin/env python3
"""HF transformers' speed on the same shapes `dsv2 bench --random-weights` measures (GPU machine).

Builds DeepseekV2ForCausalLM from a config.json with random bf16 weights (no files), then times, as a
chat would use it (batch 1, KV cache on, logits of the last position only):
  - prefill of a P-token random prompt (tok/s and time to first token), for each --prompt-len;
  - D greedy decode steps after a --decode-context-token prompt, one token per forward (tok/s).
Prints a table and writes --json (after every phase, so a run cut by `timeout` leaves what it measured).
Each timing is preceded by a warm-up of the same kind.

One GPU (--devices 1, the default): the model is built directly on cuda:0 with HF's own init.

Several GPUs (--devices N > 1), as HF users spread a model too big for one GPU
(`from_pretrained(..., device_map=...)`): the model is built on the meta device (no memory), the
decoder layers are split in order over cuda:0..N-1 (`--placement balanced`: contiguous, the largest
GPU share as small as possible by parameter bytes, embedding on the first GPU, norm + lm_head on the
last; `--placement auto`: what `device_map="auto"` computes, accelerate's balanced memory), each
module is materialised directly on its GPU (`to_empty`, then torch.nn.init.normal_(std 0.02) there,
RMSNorm weights 1; the router weight stays fp32 as from_pretrained keeps it) and accelerate's
`dispatch_model` adds the hooks that move activations between GPUs: HF's own forward code runs
unchanged, one GPU at a time (pipeline order, no overlap at batch 1). The construction is timed
(meta build, materialisation per GPU, dispatch) and the per-GPU memory peak is reported.

  python3 tools/bench/hf_bench.py --config tests/engine/cuda/configs/deepseek-v2-lite.json \
      --prompt-len 2048 --decode-context 1024 --decode-tokens 32 --json $OUT/hf_bench.json
  python3 tools/bench/hf_bench.py --config tests/engine/cuda/configs/deepseek-v2.json --devices 4 \
      --prompt-len 1024 2048 --decode-context 1024 --decode-tokens 16 --time-limit 200 --json $OUT/hf_v2x4.json

Local check without a GPU (tiny config, CPU, the multi-device placement and accelerate's hooks all
on "cpu"): add --cpu-test.
"""
import argparse
import json
import sys
import time

import torch

T_START = time.perf_counter()


class Timer:
    """Synchronises the devices in use before reading the clock (all of them: a multi-GPU forward
    ends on the last GPU, but a stray kernel elsewhere must not leak into the next timing)."""

    def __init__(self, devices):
        self.cuda = [torch.device(d) for d in devices if torch.device(d).type == "cuda"]

    def __call__(self):
        for d in self.cuda:
            torch.cuda.synchronize(d)
        return time.perf_counter()


# ----------------------------------------------------------------------------------------------
# Placement: which module goes to which device.

def placement_units(model):
    """The modules a device map is made of, in forward order: [(names, bytes)]. The embedding (and
    the rotary embedding, which has no weights) first, one unit per decoder layer, norm + lm_head last."""
    def nbytes(module):
        return sum(p.numel() * p.element_size() for p in module.parameters())

    base = model.model
    first = ["model.embed_tokens"] + (["model.rotary_emb"] if hasattr(base, "rotary_emb") else [])
    units = [(first, nbytes(base.embed_tokens))]
    for i, layer in enumerate(base.layers):
        units.append(([f"model.layers.{i}"], nbytes(layer)))
    units.append((["model.norm", "lm_head"], nbytes(base.norm) + nbytes(model.lm_head)))
    return units


def balanced_partition(sizes, n):
    """Split `sizes` (in order) into n contiguous non-empty groups minimising the largest group's
    sum (exact, dynamic programming). Returns the index of the first item of each group."""
    m = len(sizes)
    if not 1 <= n <= m:
        raise ValueError(f"cannot split {m} units over {n} devices")
    prefix = [0]
    for s in sizes:
        prefix.append(prefix[-1] + s)
    inf = float("inf")
    # best[k][j]: the smallest possible max group sum placing the first j items into k groups.
    best = [[inf] * (m + 1) for _ in range(n + 1)]
    cut = [[0] * (m + 1) for _ in range(n + 1)]
    best[0][0] = 0
    for k in range(1, n + 1):
        for j in range(k, m - (n - k) + 1):
            for i in range(k - 1, j):
                v = max(best[k - 1][i], prefix[j] - prefix[i])
                if v < best[k][j]:
                    best[k][j], cut[k][j] = v, i
    starts, j = [], m
    for k in range(n, 0, -1):
        j = cut[k][j]
        starts.append(j)
    return starts[::-1]


def balanced_device_map(model, n):
    """{module name: device index}: contiguous, the largest share as small as possible."""
    units = placement_units(model)
    starts = balanced_partition([b for _, b in units], n) + [len(units)]
    device_map = {}
    for d in range(n):
        for names, _ in units[starts[d]:starts[d + 1]]:
            for name in names:
                device_map[name] = d
    return device_map


def auto_device_map(model, max_memory, balanced=True):
    """What from_pretrained(device_map="auto") computes (transformers' own helper where it exists):
    {module name: device index}. balanced=False skips accelerate's get_balanced_memory, which asks
    the GPUs (--cpu-test: max_memory is then taken as already balanced)."""
    from accelerate.utils import get_balanced_memory, infer_auto_device_map
    no_split = model._no_split_modules
    if not balanced:
        dm = infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=no_split)
    else:
        try:
            from transformers.integrations.accelerate import _get_device_map
            dm = _get_device_map(model, "auto", max_memory, None)
        except (ImportError, TypeError):  # the helper's name or signature differs in this version
            mm = get_balanced_memory(model, max_memory=max_memory, no_split_module_classes=no_split)
            dm = infer_auto_device_map(model, max_memory=mm, no_split_module_classes=no_split)
    for name, dev in dm.items():
        if not isinstance(dev, int):
            raise RuntimeError(f"device_map='auto' puts {name or 'the model'} on {dev}: it does not fit the GPUs")
    return dm


def device_map_summary(model, device_map, n):
    """Per device index: the modules (decoder layers as a range) and their parameter bytes."""
    rows = []
    for dev in range(n):
        names = [k for k, d in device_map.items() if d == dev]
        nbytes = sum(p.numel() * p.element_size() for k in names for p in model.get_submodule(k).parameters())
        layers = sorted(int(k.split(".")[2]) for k in names if k.startswith("model.layers."))
        other = [k for k in names if not k.startswith("model.layers.")]
        if layers:
            other.append(f"layers {layers[0]}-{layers[-1]}" if len(layers) > 1 else f"layer {layers[0]}")
        rows.append({"device": dev, "modules": other, "layers": len(layers), "param_bytes": nbytes})
    return rows


# ----------------------------------------------------------------------------------------------
# Construction.

def build_single(cfg):
    """Today's one-GPU path, unchanged: HF's own init, directly on the GPU."""
    from transformers import DeepseekV2ForCausalLM
    with torch.device("cuda"):
        model = DeepseekV2ForCausalLM(cfg).to(torch.bfloat16)
    model.eval()
    return model


def materialise(model, device_map, devices, std, timer):
    """Allocates each placed module's tensors on its device (`to_empty`) and fills them there:
    normal(0, std) for matrices, 1 for RMSNorm weights (1-D). Rotary embeddings are rebuilt where
    they landed: their inv_freq buffer is computed at construction, so on meta it held nothing."""
    per_device = [0.0] * len(devices)
    with torch.no_grad():
        for name, index in device_map.items():
            t0 = timer()
            module = model.get_submodule(name)
            module.to_empty(device=devices[index])
            for _, p in module.named_parameters():
                if p.dim() == 1:
                    p.fill_(1.0)
                else:
                    torch.nn.init.normal_(p, mean=0.0, std=std)
            per_device[index] += timer() - t0
        for name, module in list(model.named_modules()):
            if type(module).__name__.endswith("RotaryEmbedding"):
                where = next(module.buffers()).device
                parent, _, child = name.rpartition(".")
                with torch.device(where):
                    rebuilt = type(module)(getattr(module, "config", model.config))
                setattr(model.get_submodule(parent) if parent else model, child, rebuilt)
    left = [k for k, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"{len(left)} tensors still on the meta device after placement, e.g. {left[:3]}")
    return per_device


def build_multi(cfg, devices, placement, std, timer, cpu_test):
    from transformers import DeepseekV2ForCausalLM
    from accelerate import dispatch_model

    t0 = timer()
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # as from_pretrained(dtype=bf16): the router stays fp32 (its own dtype)
    try:
        with torch.device("meta"):
            model = DeepseekV2ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    model.eval()
    t_meta = timer()

    n = len(devices)
    if placement == "auto":
        if cpu_test:  # fake GPUs of equal size, a balanced share of the model each
            total = sum(p.numel() * p.element_size() for p in model.parameters())
            max_memory = {i: int(total / n * 2) for i in range(n)}
        else:
            max_memory = {i: torch.cuda.mem_get_info(i)[0] for i in range(n)}
        device_map = auto_device_map(model, max_memory, balanced=not cpu_test)
    else:
        device_map = balanced_device_map(model, n)
    summary = device_map_summary(model, device_map, n)
    t_map = timer()

    per_device = materialise(model, device_map, devices, std, timer)
    t_mat = timer()
    # As from_pretrained: accelerate's hooks move each module's inputs to its device; the KV cache
    # object is not moved (each layer's cache lives on that layer's GPU).
    skip = getattr(model, "_skip_keys_device_placement", None) or []
    skip = sorted(({skip} if isinstance(skip, str) else set(skip)) | {"past_key_values"})
    dispatch_map = {k: ("cpu" if cpu_test else i) for k, i in device_map.items()}
    model = dispatch_model(model, device_map=dispatch_map, skip_keys=skip, force_hooks=cpu_test)
    t_disp = timer()
    info = {"meta_build_s": t_meta - t0, "device_map_s": t_map - t_meta, "materialise_s": t_mat - t_map,
            "materialise_s_per_device": per_device, "dispatch_s": t_disp - t_mat, "placement": placement,
            "device_map": summary}
    return model, info


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--prompt-len", type=int, nargs="+", default=[2048])
    ap.add_argument("--decode-context", type=int, default=1024)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--devices", type=int, default=1, help="GPUs 0..N-1 (N > 1: the model is spread over them)")
    ap.add_argument("--placement", choices=["balanced", "auto"], default="balanced",
                    help="with --devices > 1: balanced contiguous split by parameter bytes, or device_map='auto'")
    ap.add_argument("--init-std", type=float, default=0.02)
    ap.add_argument("--experts-implementation", default=None,
                    help="HF's experts_implementation (eager, grouped_mm, batched_mm; default: HF's choice)")
    ap.add_argument("--time-limit", type=float, default=0,
                    help="seconds from start: a phase is skipped after 90%% of it, or when the previous "
                         "prefill says it would not fit (0 = none)")
    ap.add_argument("--decode-first", action="store_true",
                    help="measure decode before the prefills (what a short --time-limit should keep)")
    ap.add_argument("--cpu-test", action="store_true",
                    help="local check without a GPU: every 'device' is the CPU, hooks forced on")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.devices < 1:
        ap.error("--devices must be >= 1")

    import transformers
    from transformers import DeepseekV2Config
    transformers.DeepseekV2ForCausalLM  # the lazy import of the modeling code, before the build's clock

    with open(args.config) as f:
        raw = json.load(f)
    if args.experts_implementation:
        raw["experts_implementation"] = args.experts_implementation
    cfg = DeepseekV2Config(**raw)
    torch.manual_seed(args.seed)

    if args.cpu_test:
        devices = ["cpu"] * args.devices
        gpu_name = "CPU (--cpu-test)"
    else:
        if torch.cuda.device_count() < args.devices:
            sys.exit(f"--devices {args.devices}: only {torch.cuda.device_count()} GPU(s) visible")
        devices = [f"cuda:{i}" for i in range(args.devices)]
        gpu_name = torch.cuda.get_device_name(0)
    timer = Timer(devices)

    results = {"transformers": transformers.__version__, "torch": torch.__version__, "gpu": gpu_name,
               "devices": args.devices, "config": args.config, "prefill": [], "decode": {}, "skipped": []}

    def save():
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)

    def time_left(phase, estimate_s=0.0):
        used = time.perf_counter() - T_START
        if args.time_limit and (used > 0.9 * args.time_limit or used + estimate_s > args.time_limit):
            results["skipped"].append(f"{phase} (time limit {args.time_limit:.0f} s)")
            print(f"  {phase}: skipped, {used:.0f} s of --time-limit {args.time_limit:.0f} s used"
                  f"{f' and about {estimate_s:.0f} s needed' if estimate_s else ''}", flush=True)
            save()
            return False
        return True

    t0 = time.perf_counter()
    if args.devices == 1 and not args.cpu_test:
        model = build_single(cfg)
    else:
        model, info = build_multi(cfg, devices, args.placement, args.init_std, timer, args.cpu_test)
        results.update(info)
    build_s = timer() - t0
    results["build_s"] = build_s
    results["import_and_build_s"] = time.perf_counter() - T_START
    results["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
    results["experts_implementation"] = getattr(model.config, "_experts_implementation", None)
    print(f"HF transformers {results['transformers']} on {args.devices} x {gpu_name}: model built in {build_s:.1f} s "
          f"(attention {results['attn_implementation']}, experts {results['experts_implementation']})", flush=True)
    for row in results.get("device_map", []):
        print(f"  {devices[row['device']]:8s} {row['param_bytes'] / 2**30:8.2f} GiB  {', '.join(row['modules'])}", flush=True)
    save()

    vocab = min(cfg.vocab_size, 100000)
    first = devices[0]

    def prompt(n):
        return torch.randint(0, vocab, (1, n), device=first)

    def prefills():
        last = None  # (tokens, seconds) of the previous prefill: the next one's cost is estimated from it
        for n in args.prompt_len:
            est = 2.5 * last[1] * n / last[0] if last else 0  # warm-up + timed run, with a margin
            if not time_left(f"prefill {n}", est):
                continue
            model(prompt(n), use_cache=True, logits_to_keep=1)  # warm-up at this length (kernel selection)
            ids = prompt(n)
            t = timer()
            out = model(ids, use_cache=True, logits_to_keep=1)
            dt = timer() - t
            last = (n, dt)
            results["prefill"].append({"prompt_tokens": n, "ttft_s": dt, "prefill_tok_s": n / dt,
                                       "logits_finite": bool(torch.isfinite(out.logits).all())})
            print(f"  prefill {n:6d} tokens: {n / dt:10.1f} tok/s  TTFT {dt * 1e3:8.2f} ms", flush=True)
            save()

    def decode():
        if args.decode_tokens <= 0 or not time_left(f"decode at {args.decode_context}"):
            return
        out = model(prompt(args.decode_context), use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        nxt = out.logits[:, -1:].argmax(-1)
        for _ in range(2):  # warm-up steps
            out = model(nxt, past_key_values=cache, use_cache=True)
            cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        t = timer()
        for _ in range(args.decode_tokens):
            out = model(nxt, past_key_values=cache, use_cache=True)
            cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        dt = timer() - t
        results["decode"] = {"context": args.decode_context, "tokens": args.decode_tokens,
                             "decode_tok_s": args.decode_tokens / dt}
        print(f"  decode at {args.decode_context} context: {args.decode_tokens / dt:.2f} tok/s "
              f"({args.decode_tokens} tokens)", flush=True)
        save()

    with torch.inference_mode():
        model(prompt(64), use_cache=True, logits_to_keep=1)  # warm-up
        for phase in ((decode, prefills) if args.decode_first else (prefills, decode)):
            phase()

    if timer.cuda:
        peaks = [torch.cuda.max_memory_allocated(d) for d in timer.cuda]
        results["peak_gpu_bytes"] = max(peaks)
        results["peak_gpu_bytes_per_device"] = peaks
        results["reserved_gpu_bytes_per_device"] = [torch.cuda.max_memory_reserved(d) for d in timer.cuda]
    results["total_s"] = time.perf_counter() - T_START
    save()

    if timer.cuda:
        print("  GPU memory peak: " + ", ".join(f"{torch.device(x)} {b / 2**30:.2f} GiB"
                                                for x, b in zip(devices, results["peak_gpu_bytes_per_device"])))


if __name__ == "__main__":
    main()
