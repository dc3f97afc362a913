#!/usr/bin/env bash
# Builds and runs tools/bench/mla_decode_bench.cu on the GPU machine (from the repo root): timing
# with PDL on, then (MLA_BENCH_NCU=1, the default, when ncu is there) ncu of the tensor-core decode
# kernel at 1K and 16K at real clocks with warm caches: stall reasons per SASS line (sass_*.csv)
# and the details page (ncu_*.txt). Logs under $OUT (or /tmp).
set -uo pipefail
OUT=${OUT:-/tmp}
export PATH=$PATH:/usr/local/cuda/bin
SRC="tools/bench/mla_decode_bench.cu engine/cuda/pdl.cu engine/cuda/mla_decode.cu engine/cuda/mla_decode_mma.cu engine/cuda/mla_decode_sliced.cu engine/cuda/mla_absorb_gemv.cu engine/cuda/attention_prologue_fused.cu engine/core/status.cpp"
nvcc -std=c++20 -O3 -arch=sm_90 -lineinfo -I engine -I engine/include -I .carry/include $SRC -o /tmp/mla_bench \
    >"$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
# The timing (the sliced variants' lines and the summary at the end included); the checks that
# failed, if any.
/tmp/mla_bench time 2>&1 | tee "$OUT/bench.log" | grep -v "check"
grep "FAIL" "$OUT/bench.log" | head -20
[ "${MLA_BENCH_NCU:-1}" = 1 ] || exit 0
command -v ncu >/dev/null || { echo "no ncu"; exit 0; }
# The tensor-core kernel (mma) and the sliced one in its default shape (DSV2_MLA_SLICED_VARIANT
# picks another), at 1K and 16K.
for c in "1k 1 mma mlaDecodeMma default" "16k 4 mma mlaDecodeMma default" "1k 1 sliced mlaDecodeSliced sliced" \
    "16k 4 sliced mlaDecodeSliced sliced"; do
    set -- $c
    DSV2_MLA_DECODE=$5 timeout 60 ncu --kernel-name "regex:$4" --launch-skip "$2" --launch-count 1 --cache-control none \
        --clock-control none --section SpeedOfLight --section LaunchStats --section WarpStateStats \
        --section SchedulerStats --section MemoryWorkloadAnalysis --section SourceCounters --import-source yes \
        -o "$OUT/mla_$3_$1" /tmp/mla_bench ncu >"$OUT/ncu_run_$3_$1.log" 2>&1 || tail -5 "$OUT/ncu_run_$3_$1.log"
    ncu --import "$OUT/mla_$3_$1.ncu-rep" --page details >"$OUT/ncu_$3_$1.txt" 2>&1
    ncu --import "$OUT/mla_$3_$1.ncu-rep" --page source --csv --print-source sass >"$OUT/sass_$3_$1.csv" 2>&1
    echo "== ncu $3 $1"
    grep -E "Duration|Warp Cycles Per Issued|Issue Slots Busy|Memory Throughput|L2 Hit|Stall" "$OUT/ncu_$3_$1.txt" | head -20
done
