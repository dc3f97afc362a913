#!/usr/bin/env bash
# In-graph cost of each stage of a one-token decode step (Lite shape, 1K context), as device_check's
# extra step:
#   DSV2_DEVICE_TESTS=0 DSV2_DEVICE_EXTRA="bash scripts/decode_ablation.sh" bash scripts/device_check.sh
# Runs `dsv2 bench` once in full and once per stage with DSV2_DECODE_SKIP=<stage> (the stage is not
# launched; docs/cuda-engine.md), DSV2_ABLATION_ROUNDS times (2), and prints each run's step time
# and its drop against the round's full step: what the stage costs inside the CUDA graph. Each run
# is one process (~25 s on the H200 with its load and warm-up): 8 runs a round.
set -uo pipefail
BUILD=${BUILD:-build-device}
OUT=${OUT:-$PWD/out}
CFG=tests/engine/cuda/configs/deepseek-v2-lite.json
stages=${DSV2_ABLATION_STAGES:-"norm qkv mla oproj router moe lmhead"}
status=0
step_us() {  # step_us [VAR=value]: µs per decode step at 1K context
    env "$@" "$BUILD/app/dsv2" bench --random-weights "$CFG" --backend cuda --prompt-len 1024 --decode-tokens 128 \
        --context 1200 --json 2>/dev/null | python3 -c "import json,sys; print(f\"{1e6/json.load(sys.stdin)['runs'][0]['decode_tok_s']:.1f}\")"
}
# One line per run as it finishes (a call cut short still leaves the runs that ended).
full=""
for round in $(seq 1 "${DSV2_ABLATION_ROUNDS:-2}"); do
    t=$(step_us) || status=1
    full=${t:-$full}
    printf 'round %d %-10s %10s µs a step\n' "$round" full "$t"
    for s in $stages; do
        t=$(step_us DSV2_DECODE_SKIP="$s") || status=1
        [ -n "$full" ] && [ -n "$t" ] && cost=$(python3 -c "print(f'{$full - $t:.1f}')") || cost=?
        printf 'round %d %-10s %10s µs a step, the stage costs %s µs\n' "$round" "$s" "$t" "$cost"
    done
done
exit $status
