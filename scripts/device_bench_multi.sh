#!/usr/bin/env bash
# DeepSeek-V2 (236B, bf16, random weights) over 4 GPUs: our engine vs HF transformers vs the roofline
# (issue 13), on the nvidia-h200-x4 machine, as the extra step of scripts/device_check.sh (which builds
# $BUILD/app/dsv2 first):
#
#   DSV2_DEVICE_TESTS=0 DSV2_DEVICE_EXTRA="bash scripts/device_bench_multi.sh" bash scripts/device_check.sh
#
# Steps, each under `timeout`, all inside DSV2_MULTI_BUDGET seconds (default 360, cut to what is left
# of device_check's call):
#   0. the per-GPU bytes per token of our layout: `dsv2 inspect-model --devices 4 --json` on a folder
#      holding only the config (docs/multi-gpu.md's figures if that fails);
#   a. ours: dsv2 bench --random-weights tests/engine/cuda/configs/deepseek-v2.json --backend cuda
#      --devices 0,1,2,3 --prompt-len 1024,2048 --decode-tokens 32 --context 4096 --json
#      -> $OUT/bench_v2x4.json (at most DSV2_MULTI_OURS_LIMIT s, default 240, leaving >= 120 s for HF);
#   b. HF transformers, the same config over 4 GPUs (tools/bench/hf_bench.py --devices 4: layers split
#      in order as device_map does, accelerate's hooks), 16 decode tokens at 1K context first, then
#      prompts 1024 and 2048 -> $OUT/hf_v2x4.json, with whatever time is left (its JSON is written after every
#      phase, so a cut run still reports what it measured);
#   c. a table: ours vs HF vs three rooflines at batch 1 (weights + latent cache read once per
#      token at DSV2_GPU_TBS TB/s per GPU, default 4.26, the H200's measured bandwidth):
#        - our layout (TP attention/shared/dense/lm_head + EP experts): the busiest GPU's bytes;
#        - naive: all active bytes (20.85 B parameters x 2 B + an embedding row) over 4 GPUs' bandwidth;
#        - pipeline (HF device_map: one GPU works at a time): all active bytes at one GPU's bandwidth.
#      Prefill: 2 x active parameters FLOP per token at DSV2_GPU_TFLOPS (752) per GPU x 4.
#      -> $OUT/bench_multi.json.
# Knobs: DSV2_MULTI_HF=0 (skip HF), DSV2_MULTI_OURS=0 (skip ours; with both 0 the table is printed
#        again from the JSON files already in $OUT), DSV2_MULTI_DEVICES (0,1,2,3),
#        DSV2_MULTI_HF_DECODE (16), DSV2_MULTI_HF_PLACEMENT (balanced | auto).
# Expected: ours = random weights + upload of 472 GB + 2 prompts (depends on the --devices work);
# HF: ~20 s import, seconds to materialise 472 GB on the GPUs, 2 prefills + 16 decode steps: 1-3 min.
set -uo pipefail
BUILD=${BUILD:-build-device}
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
CFG=tests/engine/cuda/configs/deepseek-v2.json
DEVICES=${DSV2_MULTI_DEVICES:-0,1,2,3}
NDEV=$(awk -F, '{print NF}' <<<"$DEVICES")
DSV2=$BUILD/app/dsv2
T0=$SECONDS
export PYTHONUNBUFFERED=1

caller_left() {  # seconds left of device_check's call (its process started the clock), or nothing
    local pid=$$ limit=${DSV2_CALL_LIMIT:-600}
    while [ -n "$pid" ] && [ "$pid" -gt 1 ]; do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "device_check.sh"; then
            echo $((limit - 25 - $(ps -o etimes= -p "$pid" | tr -d ' '))); return
        fi
        pid=$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')
    done
}
BUDGET=${DSV2_MULTI_BUDGET:-360}
c=$(caller_left)
if [ -n "$c" ] && [ "$c" -lt "$BUDGET" ]; then BUDGET=$c; fi
left() { echo $((BUDGET - (SECONDS - T0))); }
lim() {  # lim WANT [RESERVE]: WANT seconds, or what is left minus RESERVE; at least 5
    local l=$(( $(left) - ${2:-10} ))
    [ "$l" -lt "$1" ] || l=$1
    [ "$l" -ge 5 ] || l=5
    echo "$l"
}
declare -a ROWS
status=0
step() {  # step NAME LIMIT CMD...: output to $OUT/NAME.log (tail shown on failure), a row for the table
    local name=$1 limit=$2 t0=$SECONDS rc=0; shift 2
    echo "== $name (limit ${limit} s)"
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1 || rc=$?
    if [ "$rc" = 0 ]; then ROWS+=("$name|ok|$((SECONDS - t0)) s")
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then ROWS+=("$name|TIMED OUT (${limit} s)|$((SECONDS - t0)) s"); status=1
    else ROWS+=("$name|FAILED (rc $rc)|$((SECONDS - t0)) s"); status=1; fi
    tail -n "$([ "$rc" = 0 ] && echo 12 || echo 30)" "$OUT/$name.log"
    return "$rc"
}
echo "== device_bench_multi: budget ${BUDGET} s, devices $DEVICES"
nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader 2>&1 | head -8
[ -x "$DSV2" ] || echo "no $DSV2: ours and the plan are skipped (build first: this is device_check.sh's extra step)"

# ---- 0. our layout's bytes per token per GPU
PLAN=$OUT/inspect_v2x4.json
rm -f "$PLAN"
if [ -x "$DSV2" ]; then
    mkdir -p /tmp/dsv2-v2cfg && cp "$CFG" /tmp/dsv2-v2cfg/config.json
    # rc 1 is expected: the folder has no weights and no tokenizer (listed as problems); the plan is there.
    timeout 30 "$DSV2" inspect-model /tmp/dsv2-v2cfg --devices "$NDEV" --json >"$PLAN" 2>/tmp/dsv2-inspect.err
    grep -q '"batch1_read_bytes"' "$PLAN" 2>/dev/null ||
        { echo "inspect-model gave no plan: the table uses docs/multi-gpu.md's figures"; tail -3 /tmp/dsv2-inspect.err; }
fi

# ---- a. ours
OURS=$OUT/bench_v2x4.json
if [ "${DSV2_MULTI_OURS:-1}" = 1 ] && [ -x "$DSV2" ]; then
    rm -f "$OURS"
    ours() {
        "$DSV2" bench --random-weights "$CFG" --backend cuda --devices "$DEVICES" --prompt-len 1024,2048 \
            --decode-tokens 32 --context 4096 --json >"$OURS"
    }
    export -f ours; export DSV2 CFG DEVICES OURS
    step ours_v2x4 "$(lim "${DSV2_MULTI_OURS_LIMIT:-240}" 130)" bash -c ours
    nvidia-smi --query-gpu=index,memory.used --format=csv,noheader 2>&1 | head -8  # freed again?
fi

# ---- b. HF transformers
HF=$OUT/hf_v2x4.json
if [ "${DSV2_MULTI_HF:-1}" = 1 ]; then
    rm -f "$HF"
    if [ "$(left)" -gt 45 ]; then
        L=$(lim 600 8)
        step hf_v2x4 "$L" python3 tools/bench/hf_bench.py --config "$CFG" --devices "$NDEV" \
            --placement "${DSV2_MULTI_HF_PLACEMENT:-balanced}" --prompt-len 1024 2048 --decode-context 1024 \
            --decode-tokens "${DSV2_MULTI_HF_DECODE:-16}" --decode-first --time-limit $((L - 15)) --json "$HF"
    else
        ROWS+=("hf_v2x4|skipped (no time left)|-")
    fi
fi

# ---- c. the table
python3 - "$CFG" "$OURS" "$HF" "$PLAN" "$NDEV" "${DSV2_GPU_TBS:-4.26}" "${DSV2_GPU_TFLOPS:-752}" \
    "$OUT/bench_multi.json" <<'PY' || status=1
import json, os, sys
cfg_path, ours_path, hf_path, plan_path, ndev, tbs, tflops, out_path = sys.argv[1:9]
ndev, bw, flops = int(ndev), float(tbs) * 1e12, float(tflops) * 1e12
c = json.load(open(cfg_path))

def load(path):
    try:
        t = open(path).read()
        return json.loads(t[t.index("{"):])
    except (OSError, ValueError):
        return None

# Active parameters per token (as engine/parallel's batchOneReadBytes: bf16 weights each read once).
H, h = c["num_attention_heads"], c["hidden_size"]
nope, rope, v, kv, ql = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"], c["q_lora_rank"]
attn = (ql * h + ql + H * (nope + rope) * ql if ql else H * (nope + rope) * h) + (kv + rope) * h + kv \
    + H * (nope + v) * kv + h * H * v + 2 * h
dense = 3 * h * c["intermediate_size"]
moe = c["n_routed_experts"] * h + (c["num_experts_per_tok"] + c["n_shared_experts"]) * 3 * h * c["moe_intermediate_size"]
L, kdense = c["num_hidden_layers"], c["first_k_dense_replace"]
active = L * attn + kdense * dense + (L - kdense) * moe + c["vocab_size"] * h + 2 * h  # + lm_head, embedding row, norm
active_bytes = 2 * active
kv_token = L * (kv + rope) * 2  # latent cache bytes per token, on every device (TP keeps it whole)

plan = load(plan_path)
busiest = None
if plan and "parallel" in plan:
    reads = plan["parallel"]["batch1_read_bytes"]
    busiest = max(reads["tensor_parallel"])
    aggregate = sum(reads["data_parallel"])
    src = "dsv2 inspect-model --devices %d" % ndev
if busiest is None:  # docs/multi-gpu.md, 4 devices
    busiest, aggregate, src = 11.47e9, 41.70e9, "docs/multi-gpu.md (inspect-model unavailable)"
print(f"\nDeepSeek-V2 shape, {ndev} GPUs: active weights {active / 1e9:.2f} B parameters = {active_bytes / 1e9:.2f} GB "
      f"per token (formula; the plan's aggregate {aggregate / 1e9:.2f} GB); our layout's busiest GPU reads "
      f"{busiest / 1e9:.2f} GB ({src}); latent cache {kv_token:,} B per token per GPU")

def roof_decode(ctx):
    return {"ours_layout": bw / (busiest + kv_token * ctx),
            "naive_aggregate": ndev * bw / (aggregate + kv_token * ctx),
            "pipeline_one_gpu_at_a_time": bw / (aggregate + kv_token * ctx)}

ours, hf = load(ours_path), load(hf_path)
ours_runs = {r["prompt_tokens"]: r for r in (ours or {}).get("runs", [])}
hf_pre = {r["prompt_tokens"]: r for r in (hf or {}).get("prefill", [])}
hf_dec = (hf or {}).get("decode") or {}
prefill_roof = ndev * flops / (2 * active)

def f(x, spec="10.1f"):
    return format(x, spec) if isinstance(x, (int, float)) else f"{'-':>10s}"

rows = []
for n in (1024, 2048):
    o, p = ours_runs.get(n, {}), hf_pre.get(n, {})
    rows.append((f"prefill tok/s, {n // 1024}K prompt", o.get("prefill_tok_s"), p.get("prefill_tok_s"), prefill_roof, None, None))
for n in (1024, 2048):
    o, p = ours_runs.get(n, {}), hf_pre.get(n, {})
    rows.append((f"TTFT ms, {n // 1024}K prompt", o.get("ttft_s", 0) * 1e3 or None, p.get("ttft_s", 0) * 1e3 or None,
                 n / prefill_roof * 1e3, None, None))
for n in (1024, 2048):
    o = ours_runs.get(n, {})
    hv = hf_dec.get("decode_tok_s") if hf_dec.get("context") == n else None
    r = roof_decode(n)
    rows.append((f"decode tok/s, {n // 1024}K context", o.get("decode_tok_s"), hv, r["ours_layout"],
                 r["naive_aggregate"], r["pipeline_one_gpu_at_a_time"]))
print(f"\n{'':26s} {'dsv2 (ours)':>12s} {'HF':>10s} {'roof: ours':>11s} {'naive':>10s} {'pipeline':>10s} {'ours/roof':>9s}")
for label, o, p, r1, r2, r3 in rows:
    pct = f"{100 * o / r1:8.0f}%" if isinstance(o, (int, float)) and r1 and "TTFT" not in label else f"{'':9s}"
    print(f"{label:26s} {f(o, '12.1f') if o else f'{chr(45):>12s}'} {f(p) if p else f'{chr(45):>10s}'} "
          f"{f(r1, '11.1f')} {f(r2) if r2 else f'{chr(45):>10s}'} {f(r3) if r3 else f'{chr(45):>10s}'} {pct}")
print("roof: ours = busiest GPU's bytes at one GPU's bandwidth (decode), 2 x active FLOP/token over all GPUs (prefill);\n"
      "naive = all active bytes over all GPUs' bandwidth; pipeline = all active bytes at one GPU's bandwidth (HF device_map)")
if ours:
    extra = {k: v for k, v in ours.items() if k not in ("runs", "model")}
    print(f"ours: {ours.get('backend')}; load {ours.get('load_s', 0):.1f} s + init {ours.get('backend_init_s', 0):.1f} s; "
          f"GPU memory in use {ours.get('gpu_memory_in_use_bytes', -1) / 2**30:.2f} GiB, planned "
          f"{ours.get('gpu_memory_planned_bytes', 0) / 2**30:.2f} GiB")
    per = ours.get("gpu_memory_per_device") or []
    if per and all(isinstance(d, dict) for d in per):
        print("ours GPU memory in use: " + ", ".join(f"GPU {d.get('device')} {d.get('in_use_bytes', 0) / 2**30:.1f} GiB"
                                                     for d in per))
    for k, val in extra.items():
        if isinstance(val, list) and k != "gpu_memory_per_device":
            print(f"  {k}: {val}")
    if ours.get("random_weights_pooled"):
        print("  (pooled random weights: windows of one random pool; shapes and bytes moved are V2's)")
else:
    print("ours: no result (see ours_v2x4.log)")
if hf:
    peaks = hf.get("peak_gpu_bytes_per_device") or []
    print(f"HF {hf.get('transformers')} (torch {hf.get('torch')}), attention {hf.get('attn_implementation')}, experts "
          f"{hf.get('experts_implementation')}: built in {hf.get('build_s', 0):.1f} s (materialise {hf.get('materialise_s', 0):.1f} s), "
          f"placement {hf.get('placement')}: " + "; ".join(f"GPU {r['device']} {r['param_bytes'] / 2**30:.1f} GiB {', '.join(r['modules'])}"
                                                       for r in hf.get("device_map", [])))
    if peaks:
        print("HF GPU memory peak: " + ", ".join(f"GPU {i} {b / 2**30:.1f} GiB" for i, b in enumerate(peaks)))
    if hf.get("skipped"):
        print(f"HF skipped: {hf['skipped']}")
else:
    print("HF: no result (see hf_v2x4.log)")
json.dump({"config": cfg_path, "devices": ndev, "gpu_tb_s": float(tbs), "gpu_tflops": float(tflops),
           "active_params": active, "active_bytes": active_bytes, "busiest_gpu_bytes": busiest,
           "aggregate_bytes": aggregate, "kv_bytes_per_token": kv_token,
           "rows": [dict(zip(("metric", "ours", "hf", "roofline_ours", "roofline_naive", "roofline_pipeline"), r))
                    for r in rows], "ours": ours, "hf": hf}, open(out_path, "w"), indent=2)
PY

printf '\n%-14s %-22s %s\n' step result time
for r in "${ROWS[@]}"; do IFS='|' read -r a b t <<<"$r"; printf '%-14s %-22s %s\n' "$a" "$b" "$t"; done
echo "device_bench_multi total $((SECONDS - T0)) s (budget ${BUDGET} s)"
exit $status
