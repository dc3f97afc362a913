#!/usr/bin/env bash
# Where the multi-GPU decode step's time goes (4-GPU machine, after scripts/device_check.sh built
# $BUILD): the latency of one NCCL all-reduce of a token's hidden state (eager and inside a CUDA
# graph, default protocol and LL), then `dsv2 bench` on DeepSeek-V2 over 4 GPUs with the default
# NCCL settings, with NCCL_PROTO=LL, and without CUDA graphs. Prints a table last.
#   DSV2_DEVICE_TESTS=0 DSV2_DEVICE_EXTRA="bash scripts/device_multi_ab.sh" bash scripts/device_check.sh
set -uo pipefail
BUILD=${BUILD:-build-device}
OUT=${OUT:-$PWD/out}
CFG=tests/engine/cuda/configs/deepseek-v2.json
export NCCL_NVLS_ENABLE=0
rows=()
for proto in default LL; do
    if [ "$proto" = default ]; then unset NCCL_PROTO; else export NCCL_PROTO=$proto; fi
    timeout 60 python3 tools/bench/nccl_latency.py --gpus 4 --json "/tmp/nccl_$proto.json" >"/tmp/nccl_$proto.log" 2>&1
    line=$(grep "^NCCL all-reduce" "/tmp/nccl_$proto.log" || { tail -3 "/tmp/nccl_$proto.log"; echo FAILED; })
    rows+=("all-reduce 20 KB, NCCL_PROTO=$proto|$line")
done
unset NCCL_PROTO
bench() {  # bench NAME [ENV...]
    local name=$1; shift
    env "$@" timeout 100 "$BUILD/app/dsv2" bench --random-weights "$CFG" --backend cuda --devices 0,1,2,3 \
        --prompt-len 1024 --decode-tokens 64 --context 4096 --json >"/tmp/ab_$name.json" 2>"/tmp/ab_$name.err" ||
        { tail -5 "/tmp/ab_$name.err"; rows+=("$name|FAILED"); return; }
    rows+=("$name|$(python3 -c "import json,sys; j=json.load(open('/tmp/ab_$name.json')); r=j['runs'][0]; print(f\"decode {r['decode_tok_s']:.1f} tok/s, prefill 1K {r['prefill_tok_s']:.0f} tok/s\")")")
}
bench default
bench nccl_ll NCCL_PROTO=LL
[ "${DSV2_AB_NO_GRAPHS:-1}" = 1 ] && bench no_graphs DSV2_CUDA_GRAPHS=0
cp /tmp/ab_default.json "$OUT/bench_v2x4_ab.json" 2>/dev/null
echo
for r in "${rows[@]}"; do printf '%-36s %s\n' "${r%%|*}" "${r#*|}"; done | tee "$OUT/ab_table.txt"
