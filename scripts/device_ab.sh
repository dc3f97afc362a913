#!/usr/bin/env bash
# A/B of an environment knob on the Lite decode/prefill bench, as device_check's extra step:
#   DSV2_AB_KNOB="DSV2_PDL=0" DSV2_DEVICE_EXTRA="bash scripts/device_ab.sh" bash scripts/device_check.sh
# Runs `dsv2 bench` (1K prompt + 64 decode steps, and 16K decode unless DSV2_AB_SHORT=1) with the
# defaults, then with DSV2_AB_KNOB set (several: separated by ';', each "VAR=value[ VAR=value]"),
# DSV2_AB_ROUNDS times (2) interleaved, and prints one line per run.
set -uo pipefail
BUILD=${BUILD:-build-device}
OUT=${OUT:-$PWD/out}
CFG=tests/engine/cuda/configs/deepseek-v2-lite.json
lens=1024,2048
[ "${DSV2_AB_SHORT:-0}" = 1 ] || lens=1024,2048,16384
status=0
run() {  # run LABEL [VAR=value ...]
    local label=$1; shift
    env "$@" "$BUILD/app/dsv2" bench --random-weights "$CFG" --backend cuda --prompt-len "$lens" \
        --decode-tokens 64 --context 16448 --json >"$OUT/ab-$label.json" 2>"$OUT/ab-$label.err" || { tail -3 "$OUT/ab-$label.err"; status=1; return; }
    python3 - "$OUT/ab-$label.json" "$label" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:>24}: " + "  ".join(
    f"[{r['prompt_tokens']}] pf {r['prefill_tok_s']:8.0f} ttft {r['ttft_s']*1e3:6.1f}ms dec {r['decode_tok_s']:6.1f}"
    for r in j["runs"]))
PY
    # DSV2_STEP_TIMING=1 in a knob: the GPU time per decode-graph replay against the host's step
    grep -ho "[0-9]* decode-graph replays.*us from" "$OUT/ab-$label.err" | sed 's/^/      /' || true
}
IFS=';' read -ra knobs <<<"${DSV2_AB_KNOB:-DSV2_PDL=0}"
for i in $(seq 1 "${DSV2_AB_ROUNDS:-2}"); do
    run "default-$i"
    for k in "${!knobs[@]}"; do
        # shellcheck disable=SC2086  # a knob is one or more VAR=value words
        run "knob$k-$i" ${knobs[$k]}
    done
done
exit $status
