#!/usr/bin/env bash
# In-graph cost of each stage of a one-token decode step (Lite shape, 1K context), as device_check's
# extra step:
#   DSV2_DEVICE_TESTS=0 DSV2_DEVICE_EXTRA="bash scripts/decode_ablation.sh" bash scripts/device_check.sh
# Runs `dsv2 bench` once in full and once per stage with DSV2_DECODE_SKIP=<stage> (the stage is not
# launched; docs/cuda-engine.md), each DSV2_ABLATION_ROUNDS times (2) interleaved, and prints the
# step time and the drop against the full step: what the stage costs inside the CUDA graph.
set -uo pipefail
BUILD=${BUILD:-build-device}
OUT=${OUT:-$PWD/out}
CFG=tests/engine/cuda/configs/deepseek-v2-lite.json
stages=${DSV2_ABLATION_STAGES:-"norm qkv mla oproj router moe lmhead"}
status=0
step_us() {  # step_us [VAR=value]: µs per decode step at 1K context
    env "$@" "$BUILD/app/dsv2" bench --random-weights "$CFG" --backend cuda --prompt-len 1024 --decode-tokens 256 \
        --context 1400 --json 2>/dev/null | python3 -c "import json,sys; print(f\"{1e6/json.load(sys.stdin)['runs'][0]['decode_tok_s']:.1f}\")"
}
declare -A sum
for round in $(seq 1 "${DSV2_ABLATION_ROUNDS:-2}"); do
    t=$(step_us) || status=1
    sum[full]=$(python3 -c "print(${sum[full]:-0} + $t)")
    for s in $stages; do
        t=$(step_us DSV2_DECODE_SKIP="$s") || status=1
        sum[$s]=$(python3 -c "print(${sum[$s]:-0} + $t)")
    done
done
n=${DSV2_ABLATION_ROUNDS:-2}
full=$(python3 -c "print(${sum[full]} / $n)")
printf '%-10s %10s %10s\n' stage "step µs" "cost µs"
printf '%-10s %10.1f %10s\n' full "$full" -
for s in $stages; do
    python3 -c "t = ${sum[$s]} / $n; print(f'{\"$s\":<10} {t:10.1f} {$full - t:10.1f}')"
done
exit $status
