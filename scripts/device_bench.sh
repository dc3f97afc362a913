#!/usr/bin/env bash
# The speed measurements of docs/benchmarks.md, on the GPU machine, after scripts/device_check.sh
# has built the engine (it is that script's extra step):
#   DSV2_SANITIZE_KERNELS=0 DSV2_DEVICE_EXTRA="bash scripts/device_bench.sh" bash scripts/device_check.sh
# Steps: `dsv2 bench` on DeepSeek-V2-Lite-shaped random weights (decode at 1K and 16K context,
# prefill and TTFT at 1K and 2K) -> $OUT/bench.json; a per-kernel breakdown of the decode step and
# of a 2K prefill with nsys (NVTX ranges "prefill N" / "decode N" from dsv2 bench), printed here;
# HF transformers on the same shapes in the same call -> $OUT/hf_bench.json.
# Knobs: DSV2_BENCH_RUN=0 (skip dsv2 bench), DSV2_BENCH_PROFILE=0 (skip nsys/ncu), DSV2_BENCH_HF=0 (skip HF), DSV2_BENCH_DECODE (tokens, 64),
# DSV2_BENCH_NCU_REAL=1 (ncu at the GPU's own clocks with warm caches: kernel times as in the graph,
# without launch gaps; the default locks base clocks and flushes caches between kernels).
set -uo pipefail
BUILD=${BUILD:-build-device}
OUT=${OUT:-$PWD/out}
CFG=tests/engine/cuda/configs/deepseek-v2-lite.json
DECODE=${DSV2_BENCH_DECODE:-64}
status=0

if [ "${DSV2_BENCH_RUN:-1}" = 1 ]; then
echo "== dsv2 bench (Lite shape, random bf16 weights)"
"$BUILD/app/dsv2" bench --random-weights "$CFG" --backend cuda --prompt-len 1024,16384,2048 \
    --decode-tokens "$DECODE" --context $((16384 + DECODE)) --json >"$OUT/bench.json" || status=1
python3 - "$OUT/bench.json" <<'PY' || status=1
import json, sys
j = json.load(open(sys.argv[1]))
print(f"{j['backend']}: init {j['backend_init_s']:.1f} s, KV {j['kv_bytes_per_token']} B/token, "
      f"GPU memory {j['gpu_memory_in_use_bytes'] / 2**30:.2f} GiB in use (planned {j['gpu_memory_planned_bytes'] / 2**30:.2f})")
for r in j["runs"]:
    print(f"  prompt {r['prompt_tokens']:6d}: prefill {r['prefill_tok_s']:10.1f} tok/s, TTFT {r['ttft_s']*1e3:8.2f} ms, "
          f"decode {r['decode_tok_s']:8.2f} tok/s")
PY
fi

if [ "${DSV2_BENCH_PROFILE:-1}" = 1 ] && command -v nsys >/dev/null 2>&1; then
    echo "== nsys: kernels per NVTX range (prefill 2048, decode 16 steps at 2K context)"
    rm -f /tmp/dsv2-prof.*
    nsys profile --cuda-graph-trace=node -t cuda,nvtx -o /tmp/dsv2-prof --force-overwrite true \
        "$BUILD/app/dsv2" bench --random-weights "$CFG" --backend cuda --prompt-len 2048 --decode-tokens 16 \
        --context 4096 >/tmp/dsv2-prof.log 2>&1 || { tail -20 /tmp/dsv2-prof.log; status=1; }
    nsys stats -q --report nvtx_kern_sum --format column /tmp/dsv2-prof.nsys-rep 2>&1 | cut -c1-220 | head -120
elif [ "${DSV2_BENCH_PROFILE:-1}" = 1 ] && command -v ncu >/dev/null 2>&1; then
    echo "== ncu: kernel times per phase (decode 2 steps at 1K context, prefill 2048)"
    real=()
    [ "${DSV2_BENCH_NCU_REAL:-0}" = 1 ] && real=(--cache-control none --clock-control none)
    timeout 240 ncu "${real[@]}" --nvtx --nvtx-include "decode 1024/" --nvtx-include "prefill 2048/" \
        --metrics gpu__time_duration.sum --csv --page raw \
        "$BUILD/app/dsv2" bench --random-weights "$CFG" --backend cuda --prompt-len 1024,2048 --decode-tokens 2 \
        --context 4096 >/tmp/dsv2-ncu.csv 2>/tmp/dsv2-ncu.err || { tail -5 /tmp/dsv2-ncu.err; status=1; }
    python3 tools/bench/kernel_table.py /tmp/dsv2-ncu.csv --steps "decode 1024=2" || status=1
else
    echo "== profile: skipped (off, or neither nsys nor ncu installed)"
fi

if [ "${DSV2_BENCH_HF:-1}" = 1 ]; then
    echo "== HF transformers, same shapes"
    python3 tools/bench/hf_bench.py --config "$CFG" --prompt-len 1024 2048 --decode-context 1024 \
        --decode-tokens 32 --json "$OUT/hf_bench.json" || status=1
fi
exit $status
