#!/usr/bin/env bash
# One GPU call for the MLA decode kernels (device tool, from a devtree root, carry .carry inside):
# builds cuda_mla_test with CMake in the background while tools/bench/mla_bench_run.sh builds and
# times the bench, then runs cuda_mla_test, then ncu of the sliced kernel (MLA_BENCH_NCU=0: none).
# Logs: packed in $OUT/results.tgz at the end (bench.log, test.log, ncu_*.txt, top_*.txt, sass_*.csv,
# cmake.log, build.log); the summary lines on stdout.
#   MLA_TEST_LIMIT=s  cuda_mla_test's limit (default 60); MLA_BENCH_LIMIT=s the timing's (240)
set -uo pipefail
OUT=${OUT:-/tmp}
export OUT PATH=$PATH:/usr/local/cuda/bin
export CUDACXX=${CUDACXX:-$(command -v nvcc)}
NCCL_DIR=$(python3 -c 'import nvidia.nccl, os; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)
NCCL_INCLUDE=
[ -n "$NCCL_DIR" ] && [ -f "$NCCL_DIR/include/nccl.h" ] && NCCL_INCLUDE=$NCCL_DIR/include
(cmake -S . -B build-mla -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSV2_UI=OFF -DDSV2_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DDSV2_EXTRA_INCLUDE_DIR="$PWD/.carry/include" \
    -DDSV2_NCCL_INCLUDE_DIR="$NCCL_INCLUDE" >"$OUT/cmake.log" 2>&1 &&
    nice ninja -C build-mla cuda_mla_test >>"$OUT/cmake.log" 2>&1
    echo "build rc $?" >>"$OUT/cmake.log") &
build=$!
MLA_BENCH_NCU=0 bash tools/bench/mla_bench_run.sh >/tmp/mla_run.log 2>&1
echo "== bench rc $?"
grep -E "^summary|FAIL|all checks|error" /tmp/mla_run.log
wait "$build"
tail -2 "$OUT/cmake.log"
timeout "${MLA_TEST_LIMIT:-60}" build-mla/tests/engine/cuda_mla_test >"$OUT/test.log" 2>&1
echo "== cuda_mla_test rc $?"
grep -E "test cases|assertions|ERROR|FAILED" "$OUT/test.log" | head -20
[ "${MLA_BENCH_NCU:-1}" = 1 ] && MLA_BENCH_TIME=0 MLA_BENCH_BUILD=0 bash tools/bench/mla_bench_run.sh 2>&1 | tail -80
(cd "$OUT" && tar czf /tmp/results.tgz --exclude=results.tgz . && find . -type f ! -name results.tgz -delete &&
    mv /tmp/results.tgz .)
exit 0
