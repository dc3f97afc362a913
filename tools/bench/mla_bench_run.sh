#!/usr/bin/env bash
# Builds and runs tools/bench/mla_decode_bench.cu on the GPU machine (from the repo root): timing
# with PDL on, then (MLA_BENCH_NCU=1, the default, when ncu is there) ncu of the decode kernels
# at 1K and 16K at real clocks with warm caches: stall reasons per SASS line (sass_*.csv, and the
# 25 lines with the most stall samples in top_*.txt) and the details page (ncu_*.txt).
# MLA_BENCH_NCU_KERNELS="mma sliced" picks the kernels (default: sliced only); MLA_BENCH_TIME=0
# skips the timing, MLA_BENCH_BUILD=0 reuses /tmp/mla_bench. Logs under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp}
export PATH=$PATH:/usr/local/cuda/bin
SRC="tools/bench/mla_decode_bench.cu engine/cuda/pdl.cu engine/cuda/mla_decode.cu engine/cuda/mla_decode_mma.cu engine/cuda/mla_decode_sliced.cu engine/cuda/mla_absorb_gemv.cu engine/cuda/attention_prologue_fused.cu engine/core/status.cpp"
# One nvcc per file, in parallel (the sliced and mma files take the longest), then the link.
mkdir -p /tmp/mla_bench_obj
[ "${MLA_BENCH_BUILD:-1}" = 0 ] && [ -x /tmp/mla_bench ] && SRC=""
pids=()
for f in $SRC; do
    nvcc -std=c++20 -O3 -arch=sm_90 -lineinfo -I engine -I engine/include -I .carry/include -c "$f" \
        -o "/tmp/mla_bench_obj/$(echo "$f" | tr / _).o" >"$OUT/build_$(basename "$f").log" 2>&1 &
    pids+=($!)
done
ok=1
for p in "${pids[@]}"; do wait "$p" || ok=0; done
if [ "$ok" = 1 ] && [ -n "$SRC" ]; then
    nvcc -arch=sm_90 /tmp/mla_bench_obj/*.o -o /tmp/mla_bench >"$OUT/build.log" 2>&1 || ok=0
fi
cat "$OUT"/build_*.log >>"$OUT/build.log" 2>/dev/null
rm -f "$OUT"/build_*.log
[ "$ok" = 1 ] || { tail -30 "$OUT/build.log"; exit 1; }
# The timing (the sliced variants' lines and the summary at the end included); the checks that
# failed, if any.
if [ "${MLA_BENCH_TIME:-1}" = 1 ]; then
    timeout "${MLA_BENCH_LIMIT:-240}" /tmp/mla_bench time 2>&1 | tee "$OUT/bench.log" | grep -v "check"
    grep "FAIL" "$OUT/bench.log" | head -20
fi
[ "${MLA_BENCH_NCU:-1}" = 1 ] || exit 0
command -v ncu >/dev/null || { echo "no ncu"; exit 0; }
# The sliced kernel in its default shape (DSV2_MLA_SLICED_VARIANT picks another) and, when asked,
# the tensor-core one, at 1K and 16K.
for k in ${MLA_BENCH_NCU_KERNELS:-sliced}; do
    if [ "$k" = mma ]; then name=mlaDecodeMma; mode=default; else name=mlaDecodeSliced; mode=sliced; fi
    for c in "1k 1" "16k 4"; do
        set -- $c
        DSV2_MLA_DECODE=$mode timeout "${MLA_BENCH_NCU_LIMIT:-60}" ncu --kernel-name "regex:$name" --launch-skip "$2" --launch-count 1 \
            --cache-control none --clock-control none --section SpeedOfLight --section LaunchStats \
            --section Occupancy --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
            --section SourceCounters --import-source yes -o "$OUT/mla_${k}_$1" /tmp/mla_bench ncu \
            >"$OUT/ncu_run_${k}_$1.log" 2>&1 || tail -5 "$OUT/ncu_run_${k}_$1.log"
        ncu --import "$OUT/mla_${k}_$1.ncu-rep" --page details >"$OUT/ncu_${k}_$1.txt" 2>&1
        ncu --import "$OUT/mla_${k}_$1.ncu-rep" --page source --csv --print-source sass >"$OUT/sass_${k}_$1.csv" 2>&1
        rm -f "$OUT/mla_${k}_$1.ncu-rep" "$OUT/ncu_run_${k}_$1.log"
        echo "== ncu $k $1"
        grep -E "Duration|Warp Cycles Per Issued|Issue Slots Busy|Memory Throughput|DRAM Through|L2 Hit|Achieved Occ|Block Limit" \
            "$OUT/ncu_${k}_$1.txt" | head -20
        python3 tools/bench/sass_top.py "$OUT/sass_${k}_$1.csv" 25 >"$OUT/top_${k}_$1.txt" 2>&1
        head -30 "$OUT/top_${k}_$1.txt"
    done
done
