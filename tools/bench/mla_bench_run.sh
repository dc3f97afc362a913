#!/usr/bin/env bash
# Builds and runs tools/bench/mla_decode_bench.cu on the GPU machine (from the repo root):
# default build with PDL on and off, and a build with the chain's small kernels at the maximum
# shared-memory carveout (DSV2_MLA_BENCH_MAX_CARVEOUT). Logs under $OUT (or /tmp).
set -uo pipefail
OUT=${OUT:-/tmp}
export PATH=$PATH:/usr/local/cuda/bin
SRC="tools/bench/mla_decode_bench.cu engine/cuda/pdl.cu engine/cuda/mla_decode.cu engine/cuda/mla_decode_mma.cu engine/cuda/mla_absorb_gemv.cu engine/cuda/attention_prologue_fused.cu engine/core/status.cpp"
FLAGS="-std=c++20 -O3 -arch=sm_90 -I engine -I engine/include -I .carry/include"
nvcc $FLAGS $SRC -o /tmp/mla_bench >"$OUT/build_a.log" 2>&1 &
a=$!
nvcc $FLAGS -DDSV2_MLA_BENCH_MAX_CARVEOUT $SRC -o /tmp/mla_bench_cv >"$OUT/build_b.log" 2>&1 &
b=$!
wait $a || { tail -20 "$OUT/build_a.log"; exit 1; }
wait $b || { tail -20 "$OUT/build_b.log"; exit 1; }
echo "== default, PDL on"; /tmp/mla_bench 2>&1 | tee "$OUT/bench_pdl.log"
echo "== default, PDL off"; DSV2_PDL=0 /tmp/mla_bench 2>&1 | grep -v "decode split\|check" | tee "$OUT/bench_nopdl.log"
echo "== max carveout, PDL on"; /tmp/mla_bench_cv 2>&1 | grep -v "decode split\|check" | tee "$OUT/bench_cv.log"
