#!/usr/bin/env python3
"""Train dsv2-chat's embedded demo model: a small DeepSeek-V2 (MLA + DeepSeekMoE) on a chat corpus.

On the GPU machine (PyTorch 2.11, transformers 5.17, one H200, no network):

    PYTHONUNBUFFERED=1 python3 tools/demo_model/train.py --corpus demo-corpus --out $OUT/demo-model --seconds 240

CORPUS/carry holds what build_corpus.py and train_tokenizer.py wrote (chat.jsonl.gz, tokenizer.json,
tokenizer_config.json, words.txt, manifest.json). OUT gets a flat hub-layout model folder:
model.safetensors (bf16, the hub's per-expert tensor names), config.json (hub style),
generation_config.json, tokenizer.json, tokenizer_config.json and train_log.json.

What it does, in order:
 1. tokenizes the chat records (rendered with the V2 chat template) and packs the training split into
    one token stream cut into windows of --seq-len tokens (conversations run across window edges;
    bos/eos mark them); the loss is on EVERY token (user and assistant parts alike);
 2. builds DeepseekV2Config (MLA with q_lora_rank null and yarn rope scaling like V2-Lite; DeepSeekMoE
    with one dense lead layer, fine-grained routed experts and a shared expert, greedy top-k);
 3. trains with AdamW, bf16 autocast (CUDA), seeded, a warm-up + cosine schedule over a step count
    fixed up front from a timing calibration (--seconds) or given (--steps), capped at --max-epochs;
    adds DeepSeek's expert-level load-balancing loss (transformers' DeepseekV2 has no router aux
    loss, so it is computed from the gates' outputs through forward hooks);
 4. evaluates validation perplexity (held-out conversations) during and after training and keeps the
    best weights;
 5. saves with save_pretrained(safe_serialization=True) in bf16, rewrites the tensors to the hub's
    per-expert names (transformers 5 keeps experts fused: mlp.experts.gate_up_proj [E, 2I, H] and
    mlp.experts.down_proj [E, H, I]), writes hub-style config.json and the rest, and checks that
    from_pretrained loads the folder with no missing/unexpected keys and gives the same logits;
 6. samples chat answers (greedy and sampled), measures the share of dictionary words, and reports
    per-expert usage by text kind on held-out text (also for the untrained model, as a baseline).
"""

import argparse
import copy
import gzip
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
FETCH_LIMIT = 16 * 1024 * 1024 - 64 * 1024  # one file that comes back from the device: < 16 MiB (--max-file-mib)

# Model sizes. "demo" is the shipped model (bf16 ≈ 15.4 MiB, one file); "tiny" is for CPU tests.
PRESETS = {
    "demo": dict(hidden_size=256, num_hidden_layers=5, num_attention_heads=8, kv_lora_rank=64,
                 qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32, intermediate_size=640,
                 moe_intermediate_size=64, n_routed_experts=16, n_shared_experts=1, num_experts_per_tok=4),
    "tiny": dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, kv_lora_rank=32,
                 qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, intermediate_size=128,
                 moe_intermediate_size=32, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2),
}

SAMPLE_PROMPTS = [
    ("prose", "Tell me a fortune."),
    ("prose", "Give me a quote about computers."),
    ("verse", "Recite a poem."),
    ("verse", "Write a poem about love."),
    ("scripture", "Quote a verse about light."),
    ("scripture", "Read me Genesis 1:1-3."),
    ("definition", "Define love."),
    ("definition", "What does the Devil's Dictionary say about lawyer?"),
    ("definition", "What is hacker in hacker slang?"),
    ("docs", "How do I read a file in Python?"),
    ("code", "Write a Python function `reverse_words`. Return the words of a string in reverse order."),
    ("dialogue", "Tell me a riddle."),
    ("smalltalk", "Who are you?"),
    ("smalltalk", "Hello!"),
]

WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")


def log(msg):
    print(msg, flush=True)


def render_chat(turns, generation_prompt_for=None):
    out = [BOS]
    for user, assistant in turns:
        out.append("User: " + user + "\n\n")
        out.append("Assistant: " + assistant + EOS)
    if generation_prompt_for is not None:
        out.append("User: " + generation_prompt_for + "\n\nAssistant:")
    return "".join(out)


def hub_config(preset, vocab_size, bos_id, eos_id):
    """config.json in the hub's style (the keys of DeepSeek-V2-Lite-Chat's config, toy sizes)."""
    c = {
        "architectures": ["DeepseekV2ForCausalLM"],
        "model_type": "deepseek_v2",
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "aux_loss_alpha": 0.001,
        "seq_aux": True,
        "scoring_func": "softmax",
        "moe_layer_freq": 1,
        "rope_theta": 10000,
        "rms_norm_eps": 1e-06,
        "tie_word_embeddings": False,
        "use_cache": True,
        "torch_dtype": "bfloat16",
        "initializer_range": 0.02,
        "max_position_embeddings": 163840,
        "pretraining_tp": 1,
        "vocab_size": vocab_size,
        "q_lora_rank": None,
        "first_k_dense_replace": 1,
        "topk_method": "greedy",
        "n_group": 1,
        "topk_group": 1,
        "routed_scaling_factor": 1.0,
        "norm_topk_prob": False,
        "rope_scaling": {
            "type": "yarn",
            "factor": 40,
            "beta_fast": 32,
            "beta_slow": 1,
            "mscale": 0.707,
            "mscale_all_dim": 0.707,
            "original_max_position_embeddings": 4096,
        },
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
    }
    p = PRESETS[preset]
    for k in ["hidden_size", "intermediate_size", "moe_intermediate_size", "num_hidden_layers",
              "num_attention_heads", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
              "n_routed_experts", "n_shared_experts", "num_experts_per_tok"]:
        c[k] = p[k]
    c["num_key_value_heads"] = p["num_attention_heads"]
    # same key order as tests/data/tiny-lite/config.json
    order = ["architectures", "model_type", "hidden_act", "attention_bias", "attention_dropout", "aux_loss_alpha",
             "seq_aux", "scoring_func", "moe_layer_freq", "rope_theta", "rms_norm_eps", "tie_word_embeddings",
             "use_cache", "torch_dtype", "initializer_range", "max_position_embeddings", "pretraining_tp",
             "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size", "num_hidden_layers",
             "num_attention_heads", "num_key_value_heads", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
             "qk_rope_head_dim", "v_head_dim", "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
             "first_k_dense_replace", "topk_method", "n_group", "topk_group", "routed_scaling_factor",
             "norm_topk_prob", "rope_scaling", "bos_token_id", "eos_token_id"]
    assert set(order) == set(c), set(order) ^ set(c)
    return {k: c[k] for k in order}


def hf_config(hub):
    from transformers import DeepseekV2Config
    kw = {k: v for k, v in hub.items() if k not in ("architectures", "model_type")}
    return DeepseekV2Config(**kw)


# ------------------------------------------------------------------------------------------------
# data


def load_records(corpus):
    with gzip.open(os.path.join(corpus, "carry", "chat.jsonl.gz"), "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def tokenize_records(tok, records):
    texts = [render_chat(r["turns"]) for r in records]
    out = []
    step = 4096
    for i in range(0, len(texts), step):
        out.extend(e.ids for e in tok.encode_batch(texts[i:i + step], add_special_tokens=False))
    return out


def windows(stream, seq_len):
    """Start offsets of windows of seq_len + 1 tokens (inputs and shifted targets), non-overlapping."""
    n = (stream.numel() - 1) // seq_len
    return torch.arange(n, dtype=torch.long) * seq_len


# ------------------------------------------------------------------------------------------------
# router hooks: load balancing and routing statistics


class RouterTap:
    """Forward hooks on every MoE gate; keeps (router_logits fp32 [T, E], topk_idx [T, k]) per layer."""

    def __init__(self, model):
        from transformers.models.deepseek_v2.modeling_deepseek_v2 import DeepseekV2TopkRouter
        self.outputs = {}
        self.handles = []
        self.layers = []
        for name, mod in model.named_modules():
            if isinstance(mod, DeepseekV2TopkRouter):
                layer = int(re.search(r"layers\.(\d+)\.", name).group(1))
                self.layers.append(layer)
                self.handles.append(mod.register_forward_hook(self._hook(layer)))
        self.num_experts = None

    def _hook(self, layer):
        def fn(mod, inp, out):
            logits, _, idx = out
            self.num_experts = mod.num_experts
            self.outputs[layer] = (logits, idx)
        return fn

    def clear(self):
        self.outputs = {}

    def balance_loss(self):
        """DeepSeek's expert-level balance loss, sum_i f_i * P_i (1.0 when perfectly balanced), mean over layers."""
        losses = []
        for layer in self.layers:
            logits, idx = self.outputs[layer]
            e = logits.shape[-1]
            t, k = idx.shape
            probs = logits.float().softmax(-1).mean(0)
            counts = torch.zeros(e, device=logits.device, dtype=torch.float32)
            counts.scatter_add_(0, idx.reshape(-1), torch.ones(idx.numel(), device=logits.device))
            f = counts * (e / (k * t))
            losses.append((f * probs).sum())
        return torch.stack(losses).mean()

    @torch.no_grad()
    def load_stats(self):
        """Largest expert load relative to an even share (1.0 = balanced), and the number of (layer,
        expert) pairs that got under a tenth of an even share, on the last batch."""
        worst, starved = 0.0, 0
        for layer in self.layers:
            _, idx = self.outputs[layer]
            e = self.num_experts
            f = torch.bincount(idx.reshape(-1), minlength=e).float() * (e / idx.numel())
            worst = max(worst, float(f.max()))
            starved += int((f < 0.1).sum())
        return worst, starved

    def remove(self):
        for h in self.handles:
            h.remove()


# ------------------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def eval_loss(model, stream, seq_len, batch, device, autocast):
    """Mean next-token loss over all windows of the stream (every token counted once)."""
    model.eval()
    starts = windows(stream, seq_len)
    if starts.numel() == 0:  # short stream: one window of what there is
        x = stream.view(1, -1).to(device)
        with autocast():
            logits = model(input_ids=x[:, :-1]).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        model.train()
        return loss.item() / (x.shape[1] - 1)
    total, count = 0.0, 0
    ar = torch.arange(seq_len + 1)
    for i in range(0, starts.numel(), batch):
        idx = starts[i:i + batch, None] + ar[None, :]
        x = stream[idx].to(device)
        with autocast():
            logits = model(input_ids=x[:, :-1]).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += x[:, 1:].numel()
    model.train()
    return total / count


@torch.no_grad()
def routing_by_kind(model, tok, val_by_kind, device, max_tokens=20000, batch=16):
    """Per MoE layer: for each text kind, the share of routing slots each routed expert receives,
    counted on the assistant tokens of held-out single-turn chats of that kind. Chats are batched
    right-padded: with causal attention the padding never reaches a counted position."""
    model.eval()
    tap = RouterTap(model)
    counts = {}  # layer -> kind -> [E]
    ntok = {}
    for kind, recs in val_by_kind.items():
        items = []  # (ids, first counted position)
        seen = 0
        for r in recs:
            user, answer = r["turns"][0]
            prefix = tok.encode(render_chat([], generation_prompt_for=user), add_special_tokens=False).ids
            full = tok.encode(render_chat([[user, answer]]), add_special_tokens=False).ids[:512]
            if full[:len(prefix)] != prefix or len(full) <= len(prefix):
                continue
            items.append((full, len(prefix)))
            seen += len(full) - len(prefix)
            if seen >= max_tokens:
                break
        ntok[kind] = seen
        for i in range(0, len(items), batch):
            group = items[i:i + batch]
            width = max(len(ids) for ids, _ in group)
            x = torch.full((len(group), width), 0, dtype=torch.long)
            mask = torch.zeros((len(group), width), dtype=torch.bool)
            for j, (ids, start) in enumerate(group):
                x[j, :len(ids)] = torch.tensor(ids)
                mask[j, start:len(ids)] = True
            tap.clear()
            model(input_ids=x.to(device))
            flat = mask.reshape(-1).to(device)
            for layer in tap.layers:
                _, idx = tap.outputs[layer]
                sel = idx[flat]
                c = counts.setdefault(layer, {}).setdefault(kind, torch.zeros(tap.num_experts, dtype=torch.float64))
                c += torch.bincount(sel.reshape(-1).cpu(), minlength=tap.num_experts).double()
    tap.remove()
    model.train()
    stats = {"tokens": ntok, "layers": {}}
    for layer, by_kind in sorted(counts.items()):
        kinds = sorted(by_kind)
        share = {k: (v / v.sum()).tolist() for k, v in by_kind.items()}
        # mutual information between text kind (kinds weighted equally) and chosen expert, in bits
        p_e_given_k = torch.tensor([share[k] for k in kinds], dtype=torch.float64)
        p_e = p_e_given_k.mean(0)
        mi = 0.0
        for row in p_e_given_k:
            nz = row > 0
            mi += float((row[nz] * (row[nz] / p_e[nz]).log2()).sum()) / len(kinds)
        e = p_e_given_k.shape[1]
        top = {k: sorted(range(e), key=lambda i: -share[k][i])[:3] for k in kinds}
        stats["layers"][str(layer)] = {
            "share": {k: [round(x, 4) for x in share[k]] for k in kinds},
            "mutual_information_bits": round(mi, 4),
            "max_bits": round(math.log2(len(kinds)), 4),
            "top3": {k: [[i, round(share[k][i], 3)] for i in top[k]] for k in kinds},
        }
    return stats


def dictionary_fraction(texts, words):
    found = total = 0
    for t in texts:
        for w in WORD_RE.findall(t):
            total += 1
            if w.lower() in words:
                found += 1
    return found / total if total else 0.0, total


@torch.no_grad()
def generate(model, tok, prompt, device, greedy, max_new_tokens, temperature, top_p, gen, eos_id):
    """Plain sampling loop with transformers' KV cache (no generate(), no attention-mask inference)."""
    from transformers import DynamicCache
    ids = tok.encode(render_chat([], generation_prompt_for=prompt), add_special_tokens=False).ids
    x = torch.tensor([ids], device=device)
    cache = DynamicCache(config=model.config)
    out = []
    for _ in range(max_new_tokens):
        logits = model(input_ids=x, past_key_values=cache, use_cache=True).logits[0, -1].float().cpu()
        if greedy:
            nxt = int(logits.argmax())
        else:
            probs = (logits / temperature).softmax(-1)
            sp, si = probs.sort(descending=True)
            keep = (sp.cumsum(0) - sp) < top_p
            sp = sp * keep
            nxt = int(si[torch.multinomial(sp / sp.sum(), 1, generator=gen)].item())
        if nxt == eos_id:
            break
        out.append(nxt)
        x = torch.tensor([[nxt]], device=device)
    return tok.decode(out, skip_special_tokens=False).strip()


# ------------------------------------------------------------------------------------------------
# saving: hub per-expert names


def to_hub_names(tensors, cfg):
    """transformers 5 fused experts -> hub names (model.layers.N.mlp.experts.E.{gate,up,down}_proj.weight)."""
    out = {}
    m = cfg.moe_intermediate_size
    for name, t in tensors.items():
        g = re.fullmatch(r"(model\.layers\.\d+\.mlp\.experts)\.gate_up_proj", name)
        d = re.fullmatch(r"(model\.layers\.\d+\.mlp\.experts)\.down_proj", name)
        if g:
            assert t.dim() == 3 and t.shape[1] == 2 * m, (name, t.shape)
            for e in range(t.shape[0]):
                out[f"{g.group(1)}.{e}.gate_proj.weight"] = t[e, :m, :].contiguous()
                out[f"{g.group(1)}.{e}.up_proj.weight"] = t[e, m:, :].contiguous()
        elif d:
            assert t.dim() == 3 and t.shape[2] == m, (name, t.shape)
            for e in range(t.shape[0]):
                out[f"{d.group(1)}.{e}.down_proj.weight"] = t[e].contiguous()
        else:
            out[name] = t.contiguous()
    return out


def expected_hub_names(cfg):
    names = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for n in range(cfg.num_hidden_layers):
        p = f"model.layers.{n}."
        names |= {p + s + ".weight" for s in ["self_attn.q_proj", "self_attn.kv_a_proj_with_mqa",
                                               "self_attn.kv_a_layernorm", "self_attn.kv_b_proj",
                                               "self_attn.o_proj", "input_layernorm", "post_attention_layernorm"]}
        if n < cfg.first_k_dense_replace:
            names |= {p + f"mlp.{s}.weight" for s in ["gate_proj", "up_proj", "down_proj"]}
        else:
            names.add(p + "mlp.gate.weight")
            names |= {p + f"mlp.shared_experts.{s}.weight" for s in ["gate_proj", "up_proj", "down_proj"]}
            for e in range(cfg.n_routed_experts):
                names |= {p + f"mlp.experts.{e}.{s}.weight" for s in ["gate_proj", "up_proj", "down_proj"]}
    return names


def write_safetensors(tensors, out_dir, limit):
    """One model.safetensors when it fits what comes back from the device (< 16 MiB); else hub shards
    (model-0000i-of-0000n.safetensors + model.safetensors.index.json)."""
    from safetensors.torch import save_file
    names = sorted(tensors)
    total = sum(tensors[n].numel() * tensors[n].element_size() for n in names)
    if total + 64 * 1024 <= limit:
        save_file({n: tensors[n] for n in names}, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
        return ["model.safetensors"], total
    shards, cur, size = [], [], 0
    for n in names:
        b = tensors[n].numel() * tensors[n].element_size()
        if cur and size + b > limit - 256 * 1024:
            shards.append(cur)
            cur, size = [], 0
        cur.append(n)
        size += b
    shards.append(cur)
    files, weight_map = [], {}
    for i, group in enumerate(shards, 1):
        fn = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: tensors[n] for n in group}, os.path.join(out_dir, fn), metadata={"format": "pt"})
        files.append(fn)
        weight_map.update({n: fn for n in group})
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
    return files + ["model.safetensors.index.json"], total


# ------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="folder written by build_corpus.py (with carry/)")
    ap.add_argument("--out", required=True, help="output model folder (flat)")
    ap.add_argument("--seconds", type=float, default=240, help="training wall-clock budget")
    ap.add_argument("--steps", type=int, default=0, help="fixed number of optimizer steps (overrides --seconds)")
    ap.add_argument("--max-epochs", type=float, default=16, help="cap on passes over the training stream")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32, help="sequences per step")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup", type=float, default=0.03, help="warm-up share of the steps")
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--aux-alpha", type=float, default=0.02, help="weight of the expert balance loss")
    ap.add_argument("--evals", type=int, default=10, help="validation evaluations during training")
    ap.add_argument("--experts", default="auto", choices=["auto", "grouped_mm", "eager"],
                    help="transformers experts implementation for training (auto: time both, keep the faster)")
    ap.add_argument("--sample-tokens", type=int, default=160)
    ap.add_argument("--routing-tokens", type=int, default=20000, help="held-out assistant tokens per kind")
    ap.add_argument("--val-max-tokens", type=int, default=0, help="cap on validation tokens (0: all; for quick tests)")
    ap.add_argument("--max-file-mib", type=float, default=FETCH_LIMIT / 2**20,
                    help="largest safetensors file; a larger model is written as hub shards + index")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                    help="auto: bf16 autocast on CUDA, fp32 on CPU")
    args = ap.parse_args()

    t_start = time.time()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local folders only; the GPU machine has no network
    import tokenizers
    import transformers
    from tokenizers import Tokenizer
    from transformers import DeepseekV2ForCausalLM

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          (args.device if args.device != "auto" else "cpu"))
    use_bf16 = device.type == "cuda" if args.precision == "auto" else args.precision == "bf16"
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(args.seed)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, "
        f"device {device} {gpu or ''}")

    def autocast():
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16)

    carry = os.path.join(args.corpus, "carry")
    tok = Tokenizer.from_file(os.path.join(carry, "tokenizer.json"))
    vocab = tok.get_vocab_size()
    bos_id, eos_id = tok.token_to_id(BOS), tok.token_to_id(EOS)
    assert bos_id == vocab - 2 and eos_id == vocab - 1, (bos_id, eos_id, vocab)
    with open(os.path.join(carry, "words.txt"), encoding="utf-8") as f:
        words = {w.strip().lower() for w in f if w.strip()}
    with open(os.path.join(carry, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)

    # ---- data
    t0 = time.time()
    records = load_records(args.corpus)
    train_recs = [r for r in records if r["split"] == "train"]
    val_recs = [r for r in records if r["split"] == "val"]
    train_ids = tokenize_records(tok, train_recs)
    val_ids = tokenize_records(tok, val_recs)
    train_stream = torch.tensor([t for ids in train_ids for t in ids], dtype=torch.long)
    val_stream = torch.tensor([t for ids in val_ids for t in ids], dtype=torch.long)
    val_kind_streams = {}
    val_by_kind = {}
    for r, ids in zip(val_recs, val_ids):
        val_kind_streams.setdefault(r["kind"], []).extend(ids)
        val_by_kind.setdefault(r["kind"], []).append(r)
    val_kind_streams = {k: torch.tensor(v, dtype=torch.long) for k, v in sorted(val_kind_streams.items())}
    if args.val_max_tokens:
        val_stream = val_stream[:args.val_max_tokens]
        val_kind_streams = {k: v[:max(args.val_max_tokens // 8, 2)] for k, v in val_kind_streams.items()}
    starts_all = windows(train_stream, args.seq_len)
    log(f"data: {len(train_recs)} train / {len(val_recs)} val conversations, {train_stream.numel():,} train tokens "
        f"({starts_all.numel()} windows of {args.seq_len}), {val_stream.numel():,} val tokens, "
        f"tokenized in {time.time() - t0:.1f}s")
    train_stream_dev = train_stream.to(device)

    # ---- model
    hub = hub_config(args.preset, vocab, bos_id, eos_id)
    cfg = hf_config(hub)
    model = DeepseekV2ForCausalLM(cfg).to(device)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    routed = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    per_expert = routed // (cfg.n_routed_experts * (cfg.num_hidden_layers - cfg.first_k_dense_replace))
    active = n_params - routed + per_expert * cfg.num_experts_per_tok * (cfg.num_hidden_layers - cfg.first_k_dense_replace)
    log(f"model: {n_params:,} parameters ({n_params * 2 / 2**20:.2f} MiB in bf16), {active:,} active per token; "
        f"experts implementation default {cfg._experts_implementation!r}")
    experts_modules = [m for n, m in model.named_modules() if n.endswith("mlp.experts")]
    assert all(m.config is model.config for m in experts_modules)

    tap = RouterTap(model)
    routing_init = routing_by_kind(model, tok, val_by_kind, device, max_tokens=args.routing_tokens)
    model.train()

    # ---- optimizer
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.dim() >= 2 and "embed_tokens" not in n else no_decay).append(p)
    opt_kw = dict(lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    if device.type == "cuda":
        opt_kw["fused"] = True
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], **opt_kw)

    ar = torch.arange(args.seq_len + 1, device=device)
    epoch_perm = {"epoch": -1, "perm": None}

    def batch_at(step):
        """Windows of epoch e in a seeded permutation; step s takes the next args.batch of them."""
        per_epoch = starts_all.numel() // args.batch
        e, j = divmod(step, per_epoch)
        if epoch_perm["epoch"] != e:
            g = torch.Generator().manual_seed(args.seed * 1000 + e)
            epoch_perm["perm"] = starts_all[torch.randperm(starts_all.numel(), generator=g)]
            epoch_perm["epoch"] = e
        s = epoch_perm["perm"][j * args.batch:(j + 1) * args.batch].to(device)
        return train_stream_dev[s[:, None] + ar[None, :]]

    def fwd_bwd(x):
        tap.clear()
        with autocast():
            logits = model(input_ids=x[:, :-1]).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        aux = tap.balance_loss()
        (loss + args.aux_alpha * aux).backward()
        return loss, aux

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    # ---- experts implementation: check and time (no optimizer steps, weights unchanged)
    x0 = batch_at(0)
    candidates = ["grouped_mm", "eager"] if args.experts == "auto" else [args.experts]
    timing, ref_loss = {}, None
    for impl in candidates:
        model.config._experts_implementation = impl
        try:
            with torch.no_grad(), autocast():
                l = F.cross_entropy(model(input_ids=x0[:, :-1]).logits.float().reshape(-1, vocab), x0[:, 1:].reshape(-1))
            if ref_loss is None:
                ref_loss = l.item()
            elif abs(l.item() - ref_loss) > 2e-2 * max(1.0, abs(ref_loss)):
                raise RuntimeError(f"loss {l.item():.4f} differs from {ref_loss:.4f}")
            reps = 2 if device.type == "cpu" else 6
            for i in range(reps + 2):
                if i == 2:
                    sync()
                    t = time.time()
                fwd_bwd(x0)
            sync()
            timing[impl] = (time.time() - t) / reps
            model.zero_grad(set_to_none=True)
        except Exception as exc:  # noqa: BLE001: any failure means: do not use this implementation
            log(f"experts implementation {impl!r} not usable here: {type(exc).__name__}: {str(exc)[:300]}")
            model.zero_grad(set_to_none=True)
    if not timing:
        sys.exit("no experts implementation works")
    impl = min(timing, key=timing.get)
    model.config._experts_implementation = impl
    step_time = timing[impl] * 1.08 + 0.002  # + optimizer step
    log("step time (forward+backward): " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in timing.items())
        + f"; training with {impl!r}")

    per_epoch_steps = starts_all.numel() // args.batch
    max_steps_epochs = int(args.max_epochs * per_epoch_steps)
    if args.steps:
        total_steps = args.steps
    else:
        eval_cost = 0.04  # share of the budget spent in validation passes, roughly
        total_steps = max(20, min(max_steps_epochs, int(args.seconds * (1 - eval_cost) / step_time)))
    warmup = max(10, int(args.warmup * total_steps))
    log(f"plan: {total_steps} steps of {args.batch}x{args.seq_len} tokens = "
        f"{total_steps * args.batch * args.seq_len / 1e6:.1f}M tokens, {total_steps / per_epoch_steps:.2f} epochs "
        f"(cap {args.max_epochs}); warm-up {warmup}; estimated {total_steps * step_time:.0f}s")

    def lr_at(step):
        if step < warmup:
            return args.lr * (step + 1) / warmup
        p = (step - warmup) / max(1, total_steps - warmup)
        return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))

    # ---- train
    loss_curve, val_curve = [], []
    eval_every = max(1, total_steps // max(1, args.evals))
    log_every = max(1, total_steps // 50)
    best = {"loss": float("inf"), "step": -1, "state": None}
    acc_loss = acc_aux = 0.0
    acc_n = 0
    t_train = time.time()
    stopped_early = False
    for step in range(total_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x = batch_at(step)
        loss, aux = fwd_bwd(x)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        acc_loss = acc_loss + loss.detach()  # summed on the device: no host sync per step
        acc_aux = acc_aux + aux.detach()
        acc_n += 1
        if (step + 1) % log_every == 0 or step == total_steps - 1:
            acc_loss, acc_aux = acc_loss.item(), acc_aux.item()
            worst, starved = tap.load_stats()
            el = time.time() - t_train
            tps = (step + 1) * args.batch * args.seq_len / el
            loss_curve.append({"step": step + 1, "seconds": round(el, 2), "loss": round(acc_loss / acc_n, 4),
                               "balance": round(acc_aux / acc_n, 4), "max_load": round(worst, 2),
                               "starved_experts": starved, "lr": round(lr_at(step), 6)})
            log(f"step {step + 1:6d}/{total_steps} {el:7.1f}s loss {acc_loss / acc_n:.4f} balance {acc_aux / acc_n:.3f} "
                f"max load {worst:.1f}x starved {starved} lr {lr_at(step):.2e} {tps / 1e3:.0f}k tok/s")
            acc_loss = acc_aux = 0.0
            acc_n = 0
        if (step + 1) % eval_every == 0 or step == total_steps - 1:
            vl = eval_loss(model, val_stream, args.seq_len, args.batch, device, autocast)
            val_curve.append({"step": step + 1, "seconds": round(time.time() - t_train, 2), "val_loss": round(vl, 4),
                              "val_ppl": round(math.exp(vl), 3)})
            log(f"  validation: loss {vl:.4f} perplexity {math.exp(vl):.2f}")
            if vl < best["loss"]:
                best = {"loss": vl, "step": step + 1,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if not args.steps and time.time() - t_train > args.seconds * 1.15:
            log(f"stopping at step {step + 1}: past the time budget by 15%")
            stopped_early = True
            break
    steps_done = step + 1
    if not val_curve or val_curve[-1]["step"] != steps_done:  # stopped early: evaluate the last weights too
        vl = eval_loss(model, val_stream, args.seq_len, args.batch, device, autocast)
        val_curve.append({"step": steps_done, "seconds": round(time.time() - t_train, 2), "val_loss": round(vl, 4),
                          "val_ppl": round(math.exp(vl), 3)})
        log(f"  validation: loss {vl:.4f} perplexity {math.exp(vl):.2f}")
        if vl < best["loss"]:
            best = {"loss": vl, "step": steps_done, "state": None}
    train_seconds = time.time() - t_train
    tap.remove()
    final_val = val_curve[-1]["val_loss"]
    if best["state"] is not None and best["step"] != steps_done:
        log(f"restoring the best validation weights (step {best['step']}, loss {best['loss']:.4f}; "
            f"final {final_val:.4f})")
        model.load_state_dict(best["state"])
    best["state"] = None

    # ---- save (bf16) with save_pretrained, then hub per-expert names
    out = args.out
    os.makedirs(out, exist_ok=True)
    for fn in os.listdir(out):
        if fn.startswith("model") and (fn.endswith(".safetensors") or fn.endswith(".json")):
            os.remove(os.path.join(out, fn))
    model.eval()
    bf16_model = copy.deepcopy(model).to(torch.bfloat16)
    from safetensors.torch import load_file
    with tempfile.TemporaryDirectory() as tmp:
        bf16_model.save_pretrained(tmp, safe_serialization=True)
        saved = {}
        for fn in sorted(os.listdir(tmp)):
            if fn.endswith(".safetensors"):
                saved.update(load_file(os.path.join(tmp, fn)))
    fused = sorted(n for n in saved if n.endswith("experts.gate_up_proj") or n.endswith("experts.down_proj"))
    log(f"save_pretrained wrote {len(saved)} tensors ({len(fused)} fused expert tensors); converting to hub names")
    hub_tensors = {k: v.to(torch.bfloat16) for k, v in to_hub_names(saved, cfg).items()}
    exp = expected_hub_names(cfg)
    if set(hub_tensors) != exp:
        sys.exit(f"tensor names differ from the hub layout: missing {sorted(exp - set(hub_tensors))[:5]} "
                 f"extra {sorted(set(hub_tensors) - exp)[:5]}")
    files, nbytes = write_safetensors(hub_tensors, out, int(args.max_file_mib * 2**20))
    for fn in files:
        os.chmod(os.path.join(out, fn), 0o644)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(hub, f, indent=2)
        f.write("\n")
    gen_cfg = {"bos_token_id": bos_id, "eos_token_id": eos_id, "do_sample": True, "temperature": 0.7, "top_p": 0.95}
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(gen_cfg, f, indent=2)
        f.write("\n")
    for fn in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copyfile(os.path.join(carry, fn), os.path.join(out, fn))
    log(f"wrote {', '.join(files)} ({sum(os.path.getsize(os.path.join(out, f)) for f in files) / 2**20:.2f} MiB)")

    # ---- verify: reload with transformers, same logits
    t0 = time.time()
    reloaded, info = DeepseekV2ForCausalLM.from_pretrained(out, dtype=torch.float32, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"from_pretrained reported: {problems}")
    reloaded.to(device).eval()
    reloaded.config._experts_implementation = impl
    ref = copy.deepcopy(model).eval()  # fp32 model with bf16-rounded parameters (buffers such as inv_freq stay fp32)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    ref.config._experts_implementation = impl
    xv = val_stream[: min(val_stream.numel(), 512)].view(1, -1).to(device)
    with torch.no_grad():
        a = ref(input_ids=xv).logits.float()
        b = reloaded(input_ids=xv).logits.float()
    max_diff = (a - b).abs().max().item()
    scale = a.abs().max().item()
    same_argmax = bool((a.argmax(-1) == b.argmax(-1)).all())
    log(f"reload check: no missing/unexpected/mismatched keys; max |logit diff| {max_diff:.2e} (of max {scale:.1f}), "
        f"same argmax {same_argmax} ({time.time() - t0:.1f}s)")
    if max_diff > 1e-3 * max(1.0, scale) or not same_argmax:
        sys.exit("reloaded model gives different logits")
    del ref, bf16_model
    from transformers import AutoTokenizer
    hf_tok = AutoTokenizer.from_pretrained(out)
    probe = [{"role": "user", "content": "Tell me a fortune."}]
    rendered = hf_tok.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    if rendered != render_chat([], generation_prompt_for="Tell me a fortune."):
        sys.exit(f"chat template renders {rendered!r}")
    hf_ids = hf_tok(rendered, add_special_tokens=False)["input_ids"]
    if list(hf_ids) != tok.encode(rendered, add_special_tokens=False).ids:
        sys.exit("AutoTokenizer and tokenizers disagree on the ids")

    # ---- final evaluation on the saved (bf16) weights, fp32 arithmetic
    val_loss = eval_loss(reloaded, val_stream, args.seq_len, args.batch, device, lambda: torch.autocast(device.type, enabled=False))
    val_kind = {k: round(math.exp(eval_loss(reloaded, s, args.seq_len, args.batch, device,
                                            lambda: torch.autocast(device.type, enabled=False))), 3)
                for k, s in val_kind_streams.items()}
    log(f"validation on the saved bf16 weights: loss {val_loss:.4f}, perplexity {math.exp(val_loss):.2f}")

    # ---- samples and the dictionary-word share
    samples = []
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    n_gen = 0
    for kind, prompt in SAMPLE_PROMPTS:
        for greedy in (True, False):
            text = generate(reloaded, tok, prompt, device, greedy, args.sample_tokens, 0.7, 0.95, g, eos_id)
            n_gen += len(tok.encode(text, add_special_tokens=False).ids)
            frac, nw = dictionary_fraction([text], words)
            samples.append({"kind": kind, "prompt": prompt, "decoding": "greedy" if greedy else "sampled t=0.7 p=0.95",
                            "text": text, "words": nw, "dictionary_share": round(frac, 3)})
    gen_seconds = time.time() - t0
    all_frac, all_words = dictionary_fraction([s["text"] for s in samples], words)
    nocode_frac, nocode_words = dictionary_fraction([s["text"] for s in samples if s["kind"] != "code"], words)

    # ---- routing by text kind
    routing = routing_by_kind(reloaded, tok, val_by_kind, device, max_tokens=args.routing_tokens)

    log_obj = {
        "model": {"preset": args.preset, "parameters": n_params, "active_parameters_per_token": active,
                  "bf16_bytes": nbytes, "files": files, "config": hub},
        "training": {"seconds": round(train_seconds, 1), "steps": steps_done, "planned_steps": total_steps,
                     "stopped_early": stopped_early, "batch": args.batch, "seq_len": args.seq_len,
                     "tokens_seen": steps_done * args.batch * args.seq_len,
                     "epochs": round(steps_done / per_epoch_steps, 3), "train_tokens": int(train_stream.numel()),
                     "val_tokens": int(val_stream.numel()), "loss_on": "all tokens (user and assistant)",
                     "lr": args.lr, "min_lr_ratio": args.min_lr_ratio, "warmup_steps": warmup,
                     "weight_decay": args.weight_decay, "aux_alpha": args.aux_alpha,
                     "balance_loss": "DeepSeek expert-level: sum_i f_i P_i per MoE layer, mean over layers",
                     "optimizer": "AdamW betas (0.9, 0.95), grad clip 1.0",
                     "precision": "bf16 autocast, fp32 master weights" if use_bf16 else "fp32",
                     "experts_implementation": impl, "step_ms": {k: round(v * 1000, 2) for k, v in timing.items()},
                     "best_val_step": best["step"], "seed": args.seed},
        "loss_curve": loss_curve,
        "val_curve": val_curve,
        "final": {"val_loss": round(val_loss, 4), "val_ppl": round(math.exp(val_loss), 3),
                  "val_ppl_by_kind": val_kind, "evaluated_on": "saved bf16 weights, fp32 arithmetic"},
        "samples": samples,
        "dictionary_words": {"share_all": round(all_frac, 4), "words_all": all_words,
                             "share_without_code_prompt": round(nocode_frac, 4), "words_without_code": nocode_words,
                             "word_list": "wamerican /usr/share/dict/american-english (case-insensitive)",
                             "generated_tokens": n_gen, "generation_seconds": round(gen_seconds, 1)},
        "routing_by_kind": routing,
        "routing_by_kind_untrained": {"layers": {l: {"mutual_information_bits": v["mutual_information_bits"]}
                                                 for l, v in routing_init["layers"].items()},
                                      "tokens": routing_init["tokens"]},
        "environment": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "tokenizers": tokenizers.__version__, "device": str(device), "gpu": gpu,
                        "python": sys.version.split()[0]},
        "corpus": {"records": manifest.get("records"), "kinds": {k: {"passages": v["passages"], "bytes": v["bytes"]}
                                                               for k, v in manifest.get("kinds", {}).items()},
                   "packages": manifest.get("packages"), "seed": manifest.get("seed")},
        "args": vars(args),
        "total_seconds": round(time.time() - t_start, 1),
    }
    with open(os.path.join(out, "train_log.json"), "w") as f:
        json.dump(log_obj, f, indent=1, ensure_ascii=False)
        f.write("\n")

    # ---- the short table, last
    log("")
    log("samples (greedy):")
    for s in samples:
        if s["decoding"] == "greedy":
            log(f"  [{s['kind']}] {s['prompt']}\n    -> {s['text'][:200]!r}")
    e = cfg.n_routed_experts
    last = str(max(int(l) for l in routing["layers"]))
    log("")
    log(f"routing share per expert (%) by text kind, layer {last} (uniform = {100 / e:.1f}%):")
    log("  " + "kind".ljust(11) + "".join(f"{i:>4d}" for i in range(e)))
    for k, row in routing["layers"][last]["share"].items():
        log("  " + k.ljust(11) + "".join(f"{100 * x:4.0f}" for x in row))
    log("")
    log(f"{'':2}{'item':44s}value")
    rows = [
        ("parameters (active per token)", f"{n_params:,} ({active:,})"),
        ("model files (bf16)", f"{', '.join(files)}: {nbytes / 2**20:.2f} MiB"),
        ("training", f"{steps_done} steps, {train_seconds:.0f}s, {steps_done * args.batch * args.seq_len / 1e6:.1f}M tokens, "
                     f"{steps_done / per_epoch_steps:.2f} epochs ({impl})"),
        ("train loss (last logged)", f"{loss_curve[-1]['loss']:.4f}"),
        ("validation perplexity (bf16 weights)", f"{math.exp(val_loss):.2f}"),
        ("validation perplexity by kind", ", ".join(f"{k} {v:.1f}" for k, v in val_kind.items())),
        ("dictionary words in samples", f"{100 * all_frac:.1f}% of {all_words} ({100 * nocode_frac:.1f}% without code)"),
        ("routing mutual information, bits", ", ".join(
            f"L{l} {v['mutual_information_bits']:.2f} (untrained {routing_init['layers'][l]['mutual_information_bits']:.2f})"
            for l, v in routing["layers"].items()) + f" / max {routing['layers'][last]['max_bits']:.2f}"),
        ("reload check", f"no missing/unexpected keys, max logit diff {max_diff:.1e}"),
        ("total time", f"{time.time() - t_start:.0f}s"),
    ]
    for k, v in rows:
        log(f"  {k:44s}{v}")


if __name__ == "__main__":
    main()
