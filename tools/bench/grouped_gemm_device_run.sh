#!/usr/bin/env bash
# GPU-machine step for the grouped MoE GEMM (wgmma) work, from the repo root (e.g. as
# DSV2_DEVICE_EXTRA="bash tools/bench/grouped_gemm_device_run.sh" of scripts/device_check.sh):
# builds tools/bench/grouped_gemm_bench.cu (nvcc, 4 files in parallel), runs it on every shape
# (mma.sync, wgmma with the cp.async loader, wgmma with TMA; cross-checks), then ncu on Lite 2K
# (both loaders, gate|up and down: SpeedOfLight, MemoryWorkloadAnalysis, WarpStateStats,
# SourceCounters). Writes $OUT/bench.txt and $OUT/ncu.txt. Knobs: BENCH_LIMIT, NCU_LIMIT (s),
# NCU=0 (skip ncu), BENCH_ARGS (e.g. --quick).
set -uo pipefail
OUT=${OUT:-/tmp}
dir=$(mktemp -d)
flags=(-std=c++20 -O3 -I engine -I engine/include)
nvcc "${flags[@]}" -gencode arch=compute_90a,code=sm_90a -c engine/cuda/moe_grouped_gemm_wgmma.cu -o "$dir/w.o" &
nvcc "${flags[@]}" -arch=sm_90 -c tools/bench/grouped_gemm_bench.cu -o "$dir/b.o" &
nvcc "${flags[@]}" -arch=sm_90 -c engine/cuda/moe_grouped_gemm.cu -o "$dir/g.o" &
nvcc "${flags[@]}" -arch=sm_90 -c engine/core/status.cpp -o "$dir/s.o" &
wait
nvcc -arch=sm_90 "$dir"/w.o "$dir"/b.o "$dir"/g.o "$dir"/s.o -o "$dir/bench" || exit 1
timeout "${BENCH_LIMIT:-80}" "$dir/bench" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.txt"
status=${PIPESTATUS[0]}
if [ "${NCU:-1}" = 1 ] && command -v ncu >/dev/null 2>&1; then
    timeout "${NCU_LIMIT:-90}" ncu --section SpeedOfLight --section MemoryWorkloadAnalysis \
        --section WarpStateStats --section SourceCounters -k regex:Wgmma -c 4 "$dir/bench" --profile \
        >"$OUT/ncu.txt" 2>&1
    grep -E "moeGroupedWgmma|^ +(Duration|Memory Throughput|DRAM Throughput|L2 Cache Throughput|L1/TEX Cache Throughput|Compute \(SM\) Throughput|Warp Cycles Per Issued Instruction|Issued Ipc Active)" \
        "$OUT/ncu.txt" | sed -E 's/\(dsv2::cuda::\(anonymous namespace\)::[^)]*\)//' | cut -c1-150
fi
exit "$status"
